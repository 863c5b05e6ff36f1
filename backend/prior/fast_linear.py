"""Inference-only fully connected layers through oneDNN on the CPU (the denoiser's matrix products).

PyTorch's ``nn.Linear`` on the CPU calls MKL's sgemm, which on this machine's AMD EPYC runs its
AVX2 kernels; oneDNN (``torch.ops.mkldnn``, the kernels TorchInductor uses for CPU linears) runs
AVX-512 with the weight pre-packed once into its blocked layout. The arithmetic is the same
float32 ``x W^T + b`` (results differ by float round-off, ~1e-6 relative). Measured for the
denoiser's ``[960, 768] x [768, 768]`` layer on one thread: 15-17 ms with MKL, 11-12 ms with
oneDNN; ``[960, 256] x [256, 1536]``: 11.7 -> 8.5 ms.

Used only where it cannot change anything but speed: CPU tensors, no autograd (sampling runs
under ``torch.no_grad``; training and the DPS step keep ``nn.Linear``), oneDNN available; any
failure of the private op turns the fast path off for the process and falls back to
``nn.Linear``. The packed weight is cached on the layer and re-packed when the weight tensor
changes (``data_ptr`` or in-place version: ``load_state_dict``, optimiser or EMA steps).
"""

from __future__ import annotations

import torch
from torch import nn

_ENABLED = bool(torch.backends.mkldnn.is_available())


def enabled() -> bool:
    """Whether the oneDNN path is in use (False after a failure, or without oneDNN)."""
    return _ENABLED


def _packed(layer: nn.Linear) -> torch.Tensor:
    w = layer.weight
    key = (w.data_ptr(), w._version, w.dtype)
    cache = layer.__dict__.get("_onednn_packed")
    if cache is None or cache[0] != key:
        cache = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), None))
        layer.__dict__["_onednn_packed"] = cache  # not a parameter or buffer: not in the state dict
    return cache[1]


def linear(layer: nn.Linear, x: torch.Tensor, silu: bool = False) -> torch.Tensor:
    """``layer(x)`` (then SiLU when ``silu``), ``x`` ``[N, in]`` -> ``[N, out]``; oneDNN when it applies."""
    global _ENABLED
    if (_ENABLED and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 2 and x.shape[0] > 0
            and not torch.is_grad_enabled() and layer.weight.dtype == torch.float32):
        try:
            b = layer.bias.detach() if layer.bias is not None else None
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), _packed(layer), b, "swish" if silu else "none", [], "")
        except (RuntimeError, AttributeError):  # op missing or unsupported in this torch build
            _ENABLED = False
    y = layer(x)
    return torch.nn.functional.silu(y) if silu else y
