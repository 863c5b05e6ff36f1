"""``posediff train``: fit the unconditional pose prior (x0-prediction DDPM) on 3D mocap.

Data specs (``--data``, repeatable):

* ``h36m`` - Human3.6M training subjects S1 S5 S6 S7 S8 from ``shared/data`` (S9/S11 never).
* ``PATH@MAPPING`` - BVH mocap (a .bvh file, a folder, a .zip or ``zip::prefix``) with a joint
  mapping (a name in ``backend/mappings/`` or a .toml path), e.g. your own CMU download:
  ``posediff train --data ~/cmu_bvh@cmu --out my_prior.safetensors``.
* ``default`` - h36m + the Bandai-Namco and CMU sets of ``shared/data`` (the shipped prior).
* ``cmu`` - the CMU sets only (commercially usable data).

Each source gets a share of every batch (``--h36m-share`` for Human3.6M, the rest split by
size), poses are normalised to the canonical skeleton, yaw-rotated and mirrored at random.
``--parameterization v`` trains a v-predicting network (:class:`~backend.prior.model.PoseDenoiser`);
the loss stays on its x0. Loss: mean squared x0 error over the joints each source actually has (per-joint mask), each
sample weighted by ``clamp(SNR_t, 1, --snr-weight)`` (1 = every timestep alike, as the v1/v2
legs). Uniform x0 weighting spends the network on the high-noise steps, where the error is
largest; the low-noise steps that decide the final pose's precision (a real pose given as x_t at
t = 0 comes back ~16 mm off per joint from prior-v2) weigh little. Clamping the weight at 1 from
below keeps the high-noise steps as they were (Min-SNR weighting, Hang et al. 2023, "Efficient
Diffusion Training via Min-SNR Weighting Strategy", eq. 7, caps the SNR from above for the same
reason; here it is also held at 1 from below).
Weights: EMA of the parameters, written with safetensors plus a JSON copy of the config.
``--init WEIGHTS`` starts from an existing prior (fine-tuning) instead of random weights; the
written file records that prior's training sources under ``init`` (its licence carries over:
:mod:`backend.prior.registry`).
Multi-GPU: ``torchrun --nproc_per_node=N -m backend train ...`` (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from backend.mocap import datasets as D

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "prior.safetensors"

SHARED = D.SHARED_DATA
DEFAULT_SPECS = {
    "default": ["h36m", f"{SHARED}/bandai_bvh.zip@bandai", f"{SHARED}/cmu_more.zip::bvh_aclstm/@cmu_aclstm",
                f"{SHARED}/cmu_more.zip::bvh_przestr/@cmu_przestr", f"{SHARED}/cmu_more.zip::amc/@cmu_amc",
                f"{SHARED}/cmu_bvh@cmu"],
    "cmu": [f"{SHARED}/cmu_more.zip::amc/@cmu_amc", f"{SHARED}/cmu_more.zip::bvh_aclstm/@cmu_aclstm", f"{SHARED}/cmu_more.zip::bvh_przestr/@cmu_przestr",
            f"{SHARED}/cmu_bvh@cmu"],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", default=None,
                   help="h36m | PATH@MAPPING | default | cmu (repeatable; default: 'default')")
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS, help="weights file (.safetensors)")
    p.add_argument("--workdir", type=Path, default=Path("out/train"), help="checkpoints and logs")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this long")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--h36m-share", type=float, default=0.5)
    p.add_argument("--parameterization", choices=("x0", "v"), default="x0",
                   help="the network's output: x0 (prior-v1/v2) or v (x0 = sqrt(abar) x_t - sqrt(1 - abar) v)")
    p.add_argument("--snr-weight", type=float, default=1.0,
                   help="gamma: x0 loss weight clamp(SNR_t, 1, gamma) (1 = uniform over timesteps)")
    p.add_argument("--fps", type=float, default=12.5, help="mocap frames per second kept")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    p.add_argument("--init", type=Path, default=None,
                   help="start from these prior weights (.safetensors, same width/depth) instead of random ones: "
                        "fine-tune the shipped prior on your own mocap, or train it longer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--version", default=None, help="version string stored in the weights")


def load_sources(specs: list[str], fps: float) -> list[D.PoseSet]:
    """Resolve ``--data`` specs into normalised :class:`PoseSet` s (one per spec)."""
    out = []
    for spec in specs:
        if spec in DEFAULT_SPECS:
            out.extend(load_sources(DEFAULT_SPECS[spec], fps))
        elif spec == "h36m":
            out.append(D.h36m_poseset(D.TRAIN_SUBJECTS, stride=max(1, round(25 / fps))))
        elif "@" in spec:
            path, mapping = spec.rsplit("@", 1)
            out.append(D.mocap_poseset(path, mapping, stride_fps=fps, name=spec))
        else:
            raise SystemExit(f"--data {spec!r}: expected h36m, default, cmu or PATH@MAPPING")
    return out


def sampling_weights(sets: list[D.PoseSet], h36m_share: float) -> np.ndarray:
    """Per-pose sampling probabilities: H3.6M gets ``h36m_share`` of each batch, others by size."""
    sizes = np.array([len(s) for s in sets], np.float64)
    is_h = np.array([s.names == ["h36m"] for s in sets])
    share = np.where(is_h, 0.0, sizes)
    if is_h.any() and (~is_h).any():
        share = share / share.sum() * (1 - h36m_share)
        share[is_h] = h36m_share / is_h.sum()
    else:
        share = sizes / sizes.sum()
    return np.concatenate([np.full(len(s), w / len(s)) for s, w in zip(sets, share)])


def train(args: argparse.Namespace) -> Path:
    """Run training; returns the path of the written weights.

    Gradients are switched on for the run (a loaded :class:`~backend.service.PoseService` in the
    same process turns them off globally for inference).
    """
    import torch

    with torch.enable_grad():
        return _train(args)


def _train(args: argparse.Namespace) -> Path:
    import torch

    from backend.prior.model import PoseDenoiser, PriorConfig, pick_device, save_prior
    from backend.prior.schedule import NoiseSchedule

    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if ddp:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank = dist.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
    else:
        device = pick_device(args.device)
    torch.manual_seed(args.seed + rank)
    rng = np.random.default_rng(args.seed + rank)

    specs = args.data or ["default"]
    t0 = time.time()
    sets = load_sources(specs, args.fps)
    allset = D.PoseSet.concat(sets)
    probs = sampling_weights(sets, args.h36m_share)
    cfg = PriorConfig(width=args.width, depth=args.depth, parameterization=args.parameterization,
                      version=args.version or time.strftime("prior-%Y%m%d-%H%M"))
    config = {"prior": asdict(cfg), "train": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                              if k not in ("func",)},
              "data": {s.names[0]: len(s) for s in sets}}
    if rank == 0:
        print(json.dumps(config, indent=1), flush=True)
        print(f"loaded {len(allset)} poses from {len(sets)} sources in {time.time() - t0:.1f} s", flush=True)
        args.workdir.mkdir(parents=True, exist_ok=True)
        (args.workdir / "config.json").write_text(json.dumps(config, indent=1))

    model = PoseDenoiser(cfg).to(device)
    init_info = None
    if args.init is not None:
        from backend.prior.model import load_prior

        start = load_prior(args.init, device="cpu")
        if (start.cfg.width, start.cfg.depth, start.cfg.parameterization) != (cfg.width, cfg.depth, cfg.parameterization):
            raise SystemExit(f"--init {args.init}: width/depth/parameterization {start.cfg.width}/{start.cfg.depth}/"
                             f"{start.cfg.parameterization} differ from --width/--depth/--parameterization "
                             f"{cfg.width}/{cfg.depth}/{cfg.parameterization}")
        model.load_state_dict(start.state_dict())
        # the starting prior's own sources travel on: its licence binds the fine-tuned weights too
        init_info = {"path": str(args.init), "version": start.cfg.version,
                     **{k: start.extra[k] for k in ("data", "init", "steps") if k in start.extra}}
        if rank == 0:
            print(f"initialised from {args.init} ({start.extra.get('steps', '?')} steps)", flush=True)
    ema = PoseDenoiser(cfg).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    net = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = NoiseSchedule(cfg.diffusion_steps)
    step = 0
    ckpt = args.workdir / "checkpoint.pt"
    if args.resume and ckpt.exists():
        st = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        if rank == 0:
            print(f"resumed from {ckpt} at step {step}", flush=True)

    probs_t = torch.from_numpy(probs)
    warmup = 500
    import sys

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, disable=rank != 0, desc="train", dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)
    t_start = time.time()
    losses = []
    while step < args.steps:
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.5 * (1 + math.cos(math.pi * min(step / args.steps, 1.0))) * 0.99 + 0.01)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.multinomial(probs_t, args.batch_size, replacement=True).numpy()
        x0, m = D.augment(allset.poses[idx], allset.mask[idx], rng)
        x0 = torch.from_numpy(x0).to(device) / cfg.data_scale
        m = torch.from_numpy(m).to(device).float()
        t = torch.randint(0, cfg.diffusion_steps, (len(idx),), device=device)
        noise = torch.randn_like(x0)
        xt = sched.q_sample(x0, t, noise)
        pred = net(xt, t)
        err = ((pred - x0) ** 2).sum(-1)  # [B, J]
        if args.snr_weight > 1:
            err = err * sched.snr(t).clamp(1.0, args.snr_weight)[:, None]
        loss = (err * m).sum() / m.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        step += 1
        losses.append(loss.item())
        if rank == 0:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", lr=f"{lr:.1e}")
        stop = args.max_minutes is not None and (time.time() - t_start) > 60 * args.max_minutes
        if rank == 0 and (step % args.checkpoint_every == 0 or step == args.steps or stop):
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "step": step, "config": config}, ckpt)
        if stop:
            break
    bar.close()
    if rank == 0:
        info = {"steps": step, "minutes": round((time.time() - t_start) / 60, 1), "final_loss": float(np.mean(losses[-200:])),
                "data": config["data"], "device": str(device)}
        if init_info:
            info["init"] = init_info
        save_prior(ema.cpu(), args.out, extra=info)
        args.out.with_suffix(".json").write_text(json.dumps({**config, "result": info}, indent=1))
        print(f"wrote {args.out} ({info})", flush=True)
    if ddp:
        import torch.distributed as dist

        dist.destroy_process_group()
    return args.out
