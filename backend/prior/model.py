"""The denoiser of the pose prior and its weights file.

A residual MLP over the flattened pose (``[J, 3]`` -> ``3J``), time-embedded with sinusoidal
features and FiLM (scale/shift) in every block, predicting x0 ("x0-prediction"): the guidance of
:mod:`backend.prior.guidance` acts on x0 estimates directly, and x0-prediction is stable at high noise.
Poses are in the world frame (Z up, metres, pelvis at the origin) divided by
:attr:`PriorConfig.data_scale`, so the network sees roughly unit-variance inputs.

Weights are stored with safetensors; the config travels in the file's metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from backend.prior import fast_linear
from backend.prior.guidance import GuidanceWeights
from backend.skeleton import JOINT_NAMES, NUM_JOINTS

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "prior.safetensors"


@dataclass
class PriorConfig:
    """Architecture and data convention of a prior (saved in the weights' metadata)."""

    num_joints: int = NUM_JOINTS
    width: int = 768
    depth: int = 4
    time_dim: int = 128
    cond_dim: int = 256
    dropout: float = 0.0
    diffusion_steps: int = 1000
    data_scale: float = 0.3  # metres per model unit
    #: what the network's output is: "x0" (prior-v1/v2: the clean pose itself) or "v" (the velocity
    #: of Salimans & Ho 2022, x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v); the forward pass returns x0
    #: either way, so guidance and samplers do not depend on it. Measured (2026-12-06): a v prior
    #: trained on prior-v2's data and recipe (25k steps) has a lower held-out x0 error at every t (t = 0:
    #: 4.0 vs 16.3 mm; t = 100: 41.3 vs 43.4) yet is worse downstream on S9/S11 (lab lift best-of-20 exact
    #: 29.3 vs 28.9, completion legs 83.5 vs 70.1, photo away 24 mm 56.3 vs 52.3), also with its guidance
    #: re-tuned on S8; so it is not shipped. Averaging the two priors' x0 (an ensemble, twice the
    #: denoiser time) on S8 lab lift, best-of-1 / best-of-20: exact 38.8 / 24.9 -> 38.0 / 25.9, noisy
    #: 62.1 / 42.7 -> 55.4 / 42.4, limbs 70.6 / 47.8 -> 68.7 / 53.3; held-out 5 lab clips' track 34.6 /
    #: 3.66 -> 34.1 / 3.86 (MPJPE / accel): not kept either.
    parameterization: str = "x0"
    joint_names: list[str] = field(default_factory=lambda: list(JOINT_NAMES))
    version: str = "untrained"


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of integer timesteps ``[B] -> [B, dim]`` (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, width: int, cond_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(cond_dim, 2 * width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``h`` ``[B, width]``, ``c`` ``[B, cond_dim]`` or ``[1, cond_dim]`` (one timestep for the batch)."""
        if self.training or torch.is_grad_enabled():
            scale, shift = self.film(c).chunk(2, dim=-1)
            y = self.norm(h) * (1 + scale) + shift
            y = self.fc2(self.drop(self.act(self.fc1(self.act(y)))))
            return h + y
        # inference: the same arithmetic through oneDNN (backend.prior.fast_linear), fc1 + SiLU fused
        scale, shift = fast_linear.linear(self.film, c).chunk(2, dim=-1)
        y = torch.addcmul(shift, self.norm(h), 1 + scale)
        y = fast_linear.linear(self.fc2, fast_linear.linear(self.fc1, self.act(y), silu=True))
        return h + y


class PoseDenoiser(nn.Module):
    """x0-predicting denoiser: ``forward(x_t [B, J, 3], t [B]) -> x0_hat [B, J, 3]`` (model units).

    With ``cfg.parameterization == "v"`` the network predicts v (Salimans & Ho 2022, "Progressive
    Distillation for Fast Sampling of Diffusion Models", sec. 4) and ``forward`` returns
    ``x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v``: the skip from ``x_t`` that EDM's preconditioning
    gives a VP model (Karras et al. 2022, table 1, ``c_skip``/``c_out`` with unit data variance). A
    plain x0-predicting MLP has to rebuild the pose through its layers even when ``x_t`` is nearly
    clean: prior-v2 returns a held-out pose given at t = 0 (4 mm of noise) 16 mm off per joint.

    Raises:
        ValueError: an unknown ``cfg.parameterization``.
    """

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.parameterization not in ("x0", "v"):
            raise ValueError(f"prior parameterization {cfg.parameterization!r}: expected 'x0' or 'v'")
        if cfg.parameterization == "v":
            from backend.prior.schedule import NoiseSchedule

            ab = NoiseSchedule(cfg.diffusion_steps).alphas_cumprod.float()
            # not in the state dict: derived from the config
            self.register_buffer("skip", ab.sqrt(), persistent=False)
            self.register_buffer("cout", (1 - ab).sqrt(), persistent=False)
        d_in = cfg.num_joints * 3
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_dim, cfg.cond_dim), nn.SiLU(), nn.Linear(cfg.cond_dim, cfg.cond_dim)
        )
        self.inp = nn.Linear(d_in, cfg.width)
        self.blocks = nn.ModuleList(ResBlock(cfg.width, cfg.cond_dim, cfg.dropout) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, d_in)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        if not self.training and not torch.is_grad_enabled():
            return self._infer(x_t, t)
        c = self.time_mlp(timestep_embedding(t, self.cfg.time_dim))
        h = self.inp(x_t.reshape(b, -1))
        for blk in self.blocks:
            h = blk(h, c)
        x0 = self._to_x0(self.out(self.out_norm(h)).view(b, self.cfg.num_joints, 3), x_t, t)
        return x0 - x0[:, :1]  # pelvis at the origin by construction

    def _to_x0(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output ``[B, J, 3]`` as x0 (see the class docstring)."""
        if self.cfg.parameterization == "x0":
            return out
        t = t.long()
        return self.skip[t].view(-1, 1, 1) * x_t - self.cout[t].view(-1, 1, 1) * out

    def _infer(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without autograd: the same function, faster on the CPU. A batch at one
        timestep (every sampling step) computes the time embedding and each block's FiLM once
        (``[1, ...]``, broadcast over the rows: a quarter of the denoiser's multiply-adds), and the
        linears run through :mod:`backend.prior.fast_linear`."""
        b = x_t.shape[0]
        if b > 1 and bool((t == t[:1]).all()):
            t = t[:1]
        tb = t
        e = timestep_embedding(t, self.cfg.time_dim)
        c = fast_linear.linear(self.time_mlp[2], fast_linear.linear(self.time_mlp[0], e, silu=True))
        h = fast_linear.linear(self.inp, x_t.reshape(b, -1))
        for blk in self.blocks:
            h = blk(h, c)
        x0 = self._to_x0(fast_linear.linear(self.out, self.out_norm(h)).view(b, self.cfg.num_joints, 3), x_t, tb)
        return x0 - x0[:, :1]  # pelvis at the origin by construction


def pick_device(device: str | None = None) -> torch.device:
    """``"cuda"`` when available (or asked for), else CPU.

    Raises:
        ValueError: if CUDA is asked for but not available.
    """
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU (install a CUDA build of torch)")
    return dev


def save_prior(model: PoseDenoiser, path: Path, extra: dict | None = None, guidance: dict | None = None) -> None:
    """Write weights (safetensors) with the config (and ``extra``, e.g. training info) as metadata.

    ``guidance``: settings of :class:`backend.prior.guidance.GuidanceWeights` this prior was tuned
    with (:meth:`~backend.prior.guidance.GuidanceWeights.for_prior`), e.g. ``{"prior_cap": 800}``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": json.dumps(asdict(model.cfg))}
    if extra:
        meta["extra"] = json.dumps(extra)
    if guidance:
        meta["guidance"] = json.dumps(GuidanceWeights.check_stored(guidance))
    # float16 on disk halves the file (the shipped prior is ~13 MB); loading casts back to float32
    state = {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)
    path.chmod(0o644)


def load_prior(path: Path | str | None = None, device: str | torch.device | None = None) -> PoseDenoiser:
    """Load a prior saved by :func:`save_prior` (default: the shipped ``backend/weights/prior.safetensors``).

    Raises:
        FileNotFoundError: if the file is missing (train one with ``posediff train``).
        ValueError: its stored guidance settings are not valid (:meth:`GuidanceWeights.check_stored`).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path else DEFAULT_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prior weights; train them with 'posediff train'")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    cfg = PriorConfig(**json.loads(meta.get("config", "{}")))
    model = PoseDenoiser(cfg)
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    dev = device if isinstance(device, torch.device) else pick_device(device)
    model.extra = json.loads(meta.get("extra", "{}"))
    try:
        model.guidance = GuidanceWeights.check_stored(json.loads(meta.get("guidance", "{}")))
    except (ValueError, json.JSONDecodeError) as e:  # JSONDecodeError is a ValueError; say which file
        raise ValueError(f"{path}: {e}") from e
    return model.to(dev).eval()
