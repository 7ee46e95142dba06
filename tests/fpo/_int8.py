"""Inputs and float steps shared by the int8 FPO tests (``test_quantized_ops_s2*``, ``s30``)."""

from __future__ import annotations

import torch

S, Z = 0.05, 128  # the input's qparams


def q(*shape: int, scale: float = S, zp: int = Z, seed: int = 0) -> torch.Tensor:
    """A quint8 tensor of ``shape`` from ``randn`` under ``seed``."""
    torch.manual_seed(seed)
    return torch.quantize_per_tensor(torch.randn(*shape), scale, zp, torch.quint8)


def t(v: float) -> torch.Tensor:
    """``v`` as a one-element float tensor (a scalar step counted as the kernel's)."""
    return torch.tensor([v])


def quantize(y: torch.Tensor, inv: torch.Tensor, zp: int) -> torch.Tensor:
    """FBGEMM's QuantizeAvx2: ``x * inv_scale``, the clip below int32's largest float, the
    rounding (3 FPO); the zero point and the uint8 clamp on integers (0)."""
    r = torch.round(torch.clamp_max(y * inv, 2147483520.0)).to(torch.int32)
    return (r + zp).clamp(0, 255)
