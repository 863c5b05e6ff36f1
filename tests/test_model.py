"""backend.prior.model: weights file round trip, denoiser output convention, device choice, and the
shipped prior's samples (sane bone lengths, upright, seeded). Tolerances are those a reasonable
prior passes; they do not pin the numbers of one checkpoint."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.http import schemas
from backend.prior.model import DEFAULT_WEIGHTS, PoseDenoiser, PriorConfig, load_prior, pick_device, save_prior
from backend.prior.schedule import NoiseSchedule
from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, bone_lengths


def _small_model(seed: int = 0) -> PoseDenoiser:
    torch.manual_seed(seed)
    m = PoseDenoiser(PriorConfig(width=64, depth=2, time_dim=32, cond_dim=48, version="test-1"))
    with torch.no_grad():  # the residual branches start at zero: give them weights so every layer matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def test_denoiser_output_shape_and_pelvis_at_origin():
    m = _small_model()
    x = torch.randn(5, NUM_JOINTS, 3)
    t = torch.tensor([0, 10, 500, 900, 999])
    with torch.no_grad():
        y = m(x, t)
    assert y.shape == (5, NUM_JOINTS, 3)
    assert torch.isfinite(y).all()
    assert float(y[:, 0].abs().max()) == 0.0
    assert float((y[1:] - y[:1]).abs().max()) > 0  # depends on its input


def test_save_load_round_trip(tmp_path):
    m = _small_model()
    path = tmp_path / "sub" / "prior.safetensors"
    save_prior(m, path, extra={"epochs": 3, "data": ["h36m"]})
    assert path.exists()
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["config"]) == asdict(m.cfg)
    assert json.loads(meta["config"])["joint_names"] == list(JOINT_NAMES)

    loaded = load_prior(path, device="cpu")
    assert loaded.cfg == m.cfg and loaded.cfg.version == "test-1"
    assert loaded.extra == {"epochs": 3, "data": ["h36m"]}
    assert not loaded.training
    # weights travel as float16: the loaded model equals the original with half-rounded weights
    ref = _small_model()
    ref.load_state_dict({k: v.half().float() for k, v in m.state_dict().items()})
    x = torch.randn(4, NUM_JOINTS, 3)
    t = torch.tensor([1, 100, 600, 999])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), ref(x, t))
        assert float((loaded(x, t) - m(x, t)).abs().max()) < 0.05


def test_v_parameterization_returns_x0_with_the_skip_from_x_t(tmp_path):
    """A v-predicting prior's forward is ``sqrt(abar) x_t - sqrt(1 - abar) v`` (pelvis-centred), the
    same in training mode and in the no-grad inference path, and survives the weights file."""
    torch.manual_seed(1)
    cfg = PriorConfig(width=64, depth=2, time_dim=32, cond_dim=48, version="test-v", parameterization="v")
    m = PoseDenoiser(cfg).eval()
    x = torch.randn(4, NUM_JOINTS, 3)
    t = torch.tensor([0, 10, 500, 999])
    with torch.enable_grad():
        y_grad = m(x, t)
    with torch.no_grad():
        y = m(x, t)
        m.cfg.parameterization = "x0"
        v = m(x, t)  # the same network read as a plain x0 output: here it is v (pelvis-centred)
        m.cfg.parameterization = "v"
    ab = NoiseSchedule(cfg.diffusion_steps).abar(t).view(-1, 1, 1)
    want = ab.sqrt() * x - (1 - ab).sqrt() * v
    torch.testing.assert_close(y, want - want[:, :1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_grad.detach(), y, atol=1e-5, rtol=1e-5)
    # nearly clean input comes back nearly as it is: the skip, whatever the network outputs
    assert float((y[0] - (x[0] - x[0, :1])).norm(dim=-1).max()) < 0.05 * float(v[0].norm(dim=-1).max() + 1)
    path = tmp_path / "v.safetensors"
    save_prior(m, path)
    loaded = load_prior(path, device="cpu")
    assert loaded.cfg.parameterization == "v"
    with torch.no_grad():
        assert float((loaded(x, t) - y).abs().max()) < 0.05
    with pytest.raises(ValueError, match="parameterization"):
        PoseDenoiser(PriorConfig(width=8, depth=1, parameterization="eps"))


def test_weights_file_carries_the_guidance_settings_its_prior_was_tuned_with(tmp_path):
    """``save_prior(guidance=...)`` is read back by ``load_prior`` and applied by every sampler
    built for that prior; the shipped prior stores none (the defaults); a bad entry is refused."""
    from backend.prior.guidance import GuidanceWeights
    from backend.prior.sampler import GuidedSampler

    m = PoseDenoiser(PriorConfig(width=32, depth=1, time_dim=16, cond_dim=16, version="test-g")).eval()
    path = tmp_path / "g.safetensors"
    save_prior(m, path, guidance={"prior_cap": 900, "polish_prior": 1200.0, "inner_steps": 3})
    loaded = load_prior(path, device="cpu")
    w = GuidedSampler(loaded).w
    assert (w.prior_cap, w.polish_prior, w.inner_steps) == (900.0, 1200.0, 3) and isinstance(w.inner_steps, int)
    assert w.known_sigma == GuidanceWeights().known_sigma  # the rest: defaults
    assert GuidanceWeights.for_prior(loaded, dps_scale=0.5).dps_scale == 0.5  # the caller's overrides last
    assert GuidanceWeights.for_prior(load_prior(DEFAULT_WEIGHTS, device="cpu")) == GuidanceWeights()
    loaded.guidance = {"camera_prior": 1}
    with pytest.raises(ValueError, match="camera_prior"):
        GuidedSampler(loaded)
    with pytest.raises(ValueError, match="swap_limbs"):  # not storable: refused before anything is written
        save_prior(m, tmp_path / "bad.safetensors", guidance={"swap_limbs": False})
    assert not (tmp_path / "bad.safetensors").exists()
    # a file written by other tools with a bad entry fails when it is loaded (start-up), naming the file
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "other.safetensors"),
              metadata={"config": json.dumps(asdict(m.cfg)), "guidance": json.dumps({"prior_cap": "high"})})
    with pytest.raises(ValueError, match="other.safetensors.*prior_cap"):
        load_prior(tmp_path / "other.safetensors", device="cpu")


def test_load_prior_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="posediff train"):
        load_prior(tmp_path / "nope.safetensors")


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == expected
    assert pick_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="(?i)cuda"):
            pick_device("cuda")


# ------------------------------------------------------------------------------ shipped prior


@pytest.fixture(scope="module")
def generated(pose_service):
    req = schemas.GenerateRequest(num=16, seed=7, steps=15)
    return np.array(pose_service.generate(req).poses), req


def test_shipped_weights_load_with_their_config():
    assert DEFAULT_WEIGHTS.exists()
    m = load_prior(device="cpu")
    assert m.cfg.joint_names == list(JOINT_NAMES) and m.cfg.num_joints == NUM_JOINTS
    assert m.cfg.data_scale > 0


def test_generated_poses_have_sane_bones_and_are_upright(generated):
    poses, _ = generated
    assert poses.shape == (16, NUM_JOINTS, 3) and np.isfinite(poses).all()
    np.testing.assert_allclose(poses[:, 0], 0, atol=1e-6)
    err = np.abs(bone_lengths(poses)[:, 1:] - BONE_LENGTHS[1:])
    assert err.mean() < 0.03, f"mean bone-length error {err.mean() * 1000:.1f} mm"
    head_up = poses[:, JOINT_INDEX["head"], 2] > poses[:, 0, 2] + 0.3
    assert head_up.mean() >= 0.75
    # feet below the pelvis for a standing-to-ground pose, most of the time
    assert (poses[:, JOINT_INDEX["left_ankle"], 2] < 0).mean() >= 0.75
    # diverse: not one pose repeated
    d = np.linalg.norm(poses[:, None] - poses[None], axis=-1).mean(-1)
    assert d[~np.eye(16, dtype=bool)].min() > 0.01


def test_generation_is_deterministic_for_a_seed(pose_service, generated):
    poses, req = generated
    again = np.array(pose_service.generate(req).poses)
    np.testing.assert_array_equal(again, poses)
    other = np.array(pose_service.generate(req.model_copy(update={"seed": 8})).poses)
    assert np.abs(other - poses).max() > 0.05


def test_denoiser_cleans_a_slightly_noised_real_pose(pose_service, h36m_train_poses):
    """At a moderate noise level (t = 300, abar ~ 0.7) the shipped denoiser's x0 is closer to the
    clean pose than the rescaled noisy input (the dev checkpoint: ~240 vs ~360 mm)."""
    model = pose_service.model
    s = model.cfg.data_scale
    sched = NoiseSchedule(model.cfg.diffusion_steps)
    x0 = torch.tensor(h36m_train_poses[::5][:16]) / s
    g = torch.Generator().manual_seed(0)
    t = torch.full((len(x0),), 300)
    a = float(sched.alphas_cumprod[300])
    xt = sched.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    with torch.no_grad():
        x0_hat = model(xt, t)
    err_hat = float((x0_hat - x0).norm(dim=-1).mean()) * s
    err_in = float((xt / math.sqrt(a) - x0).norm(dim=-1).mean()) * s
    assert err_hat < 0.8 * err_in, f"denoised {err_hat * 1000:.0f} mm vs input {err_in * 1000:.0f} mm"


def test_generated_poses_keep_the_canonical_skeleton(generated):
    poses, _ = generated
    err = np.abs(bone_lengths(poses)[:, 1:] - BONE_LENGTHS[1:])
    assert err.max() < 0.01, f"max bone-length error {err.max() * 1000:.0f} mm"


# ------------------------------------------------------------------------------ training loop


def _train_args(tmp_path, name, **kw):
    import argparse

    from backend.prior import train

    p = argparse.ArgumentParser()
    train.add_arguments(p)
    fixture = Path(__file__).parent / "fixtures" / "cmu_02_01.bvh"
    argv = ["--data", f"{fixture}@cmu", "--steps", "15", "--batch-size", "64", "--lr", "2e-4",
            "--workdir", str(tmp_path / name), "--out", str(tmp_path / f"{name}.safetensors"), "--device", "cpu"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


def test_train_fine_tunes_from_init_weights_on_a_bvh_clip(tmp_path):
    """``posediff train --init`` starts from the shipped prior: on a real CMU clip its loss after a
    few steps is far below that of the same run from random weights, and the written prior loads
    with the config (including ``init``) stored next to it."""
    from backend.prior import train

    fine = train.train(_train_args(tmp_path, "fine", init=DEFAULT_WEIGHTS))
    scratch = train.train(_train_args(tmp_path, "scratch"))
    res_fine = json.loads(fine.with_suffix(".json").read_text())
    res_scratch = json.loads(scratch.with_suffix(".json").read_text())
    assert res_fine["train"]["init"] == str(DEFAULT_WEIGHTS)
    assert res_fine["result"]["steps"] == 15
    assert res_fine["result"]["final_loss"] < 0.5 * res_scratch["result"]["final_loss"], (res_fine["result"], res_scratch["result"])
    m = load_prior(fine, device="cpu")
    assert m.extra["steps"] == 15 and (m.cfg.width, m.cfg.depth) == (768, 4)


def test_train_init_with_other_architecture_says_so(tmp_path):
    from backend.prior import train

    with pytest.raises(SystemExit, match="width/depth"):
        train.train(_train_args(tmp_path, "bad", init=DEFAULT_WEIGHTS, width=256))
    with pytest.raises(SystemExit, match="parameterization"):
        train.train(_train_args(tmp_path, "bad_v", init=DEFAULT_WEIGHTS, parameterization="v"))


def test_train_v_parameterization_writes_a_v_prior(tmp_path):
    """``posediff train --parameterization v --snr-weight 5`` runs and writes a prior that loads as
    v-predicting; its loss is finite."""
    from backend.prior import train

    out = train.train(_train_args(tmp_path, "v", parameterization="v", snr_weight=5))
    res = json.loads(out.with_suffix(".json").read_text())
    assert math.isfinite(res["result"]["final_loss"])
    assert load_prior(out, device="cpu").cfg.parameterization == "v"


def test_inference_path_is_the_training_function():
    """Without autograd the denoiser takes its fast path (one FiLM per batch timestep, oneDNN
    linears, backend.prior.fast_linear); it computes the same function as the autograd path, for a
    shared timestep and for one timestep per row, and follows in-place weight changes (the packed
    weights are re-made)."""
    m = _small_model()
    x = torch.randn(7, NUM_JOINTS, 3)
    for t in (torch.full((7,), 321), torch.tensor([0, 5, 100, 321, 500, 900, 999])):
        with torch.enable_grad():
            ref = m(x, t).detach()
        with torch.no_grad():
            got = m(x, t)
        assert float((got - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    with torch.no_grad():
        m(x, t)  # packs the weights
        for p in m.parameters():
            p.mul_(1.1)
        got = m(x, t)
    with torch.enable_grad():
        ref = m(x, t).detach()
    assert float((got - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))


def test_freed_tensor_memory_is_reused_without_page_faults(pose_service):
    # the service (on the CPU) keeps freed memory in the heap: a sampling step's temporaries
    # (a few MB each) do not page-fault again on every allocation
    import resource
    import sys

    from backend.prior.cpu_heap import keep_freed_memory

    if not sys.platform.startswith("linux") or not keep_freed_memory():
        pytest.skip("glibc malloc settings apply on Linux only")
    x = torch.ones(960, 768)
    del x
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        x = torch.ones(960, 768)  # 2.9 MB: 720 pages each when freshly mapped
        del x
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 200
