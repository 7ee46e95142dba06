"""Shared pieces of the int8 FPO rules: the AVX2 kernels' per-element costs and ``ON_QUANTIZED``.

The rule families (``_rules_quantized``: quantize, linear and convolution, embeddings;
``_rules_quantized_elementwise``; ``_rules_quantized_pool``; ``_rules_quantized_norm``;
``_rules_quantized_rnn``; ``_rules_quantized_convert``) count with these constants; their
conventions are those of :mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenprint.fpo._registry import Rule, first_shape

__all__: list[str] = []

#: per element of ``quantize_per_tensor`` (FBGEMM's ``Quantize``, not legacy): ``x * inv_scale``,
#: the clip below int32's largest float (a min), the rounding conversion; the zero point is added
#: and the result clamped on integers
QUANTIZE_PER_ELEMENT = 3
#: per element of a dynamic int8 linear's input: its min and max (``FindMinMax``, 2 compares), then
#: quantized by ``QuantizeAvx2<uint8_t, LEGACY=true>``: ``x * inv_scale + zero_point`` (a fused
#: multiply-add, 2), the clip (1) and the rounding conversion (1)
DYNAMIC_INPUT_PER_ELEMENT = 6
#: ATen's ``ChooseQuantizationParams`` on an input's min and max (see ``DYNAMIC_PER_CALL``)
CHOOSE_QPARAMS = 22
#: per call of a dynamic int8 linear: ATen's ``ChooseQuantizationParams`` on the input's min and
#: max (22: ``min(min, 0)``, ``max(max, 0)`` and the ``min <= max`` check 3, the scale
#: ``(max - min) / (qmax - qmin)`` 2, its checks ``== 0``, ``1 / scale``, ``isinf``, ``> 0`` and
#: ``< SMALL_SCALE_THRESHOLD`` 5, the zero point from either end ``q - x / scale`` 2 + 2, their
#: errors ``|q| - |x / scale|`` 2 + 2, the error compare 1, the nudge's two compares and
#: ``nearbyint`` 3), the input's ``1 / scale`` (1) and the output multiplier ``act_scale *
#: w_scale`` (1)
DYNAMIC_PER_CALL = CHOOSE_QPARAMS + 2
#: per element of the vectorised dequantize-compute-requantize kernels: ``dequantize`` (2) and
#: ``quantize`` (3); see the module's docstring
DEQUANTIZE_VEC = 2
QUANTIZE_VEC = QUANTIZE_PER_ELEMENT
#: FBGEMM's scalar ``Quantize<T, LEGACY=false>`` (``quantize_val``): ``1 / scale``, ``x *
#: inv_scale``, ``nearbyint``, ``+ zero_point`` (a float add) and the clamp in double (2)
QUANTIZE_SCALAR = 6
#: float lanes of an AVX2 vector: the channel blocks of the channels-last pooling kernels
FLOAT_LANES = 8
#: ``quint8`` lanes of an AVX2 vector (4 float vectors): the blocks of the layer-norm kernel
INT8_LANES = 32

ON_QUANTIZED: dict[str, Rule] = {}
"""``aten`` op name -> the rule of its QuantizedCPU kernel, applied when a quantized tensor is
among the op's inputs (the float rule counts the float kernel)."""


def on_quantized(
    names: list[str], reads: Callable[..., dict[str, Any]] | None = None
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register the rule of ``names``' QuantizedCPU kernels in :data:`ON_QUANTIZED`."""

    def wrap(fn: Callable[..., int]) -> Callable[..., int]:
        for name in names:
            ON_QUANTIZED[name] = Rule(fn=fn, reads=reads)
        return fn

    return wrap


def _metadata(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    fn.metadata_only = True  # type: ignore[attr-defined]
    return fn


@_metadata
def _channels_last(x: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"channels_last": bool}``: whether the input takes the kernels' NHWC fast path."""
    try:
        return {
            "channels_last": x.dim() == 4
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=_torch().channels_last)
        }
    except (AttributeError, RuntimeError, TypeError):
        return {}


def _torch() -> Any:
    import torch

    return torch


def _pool_args(out_shape: Any) -> tuple[int, int, int, int]:
    out = first_shape(out_shape)
    if len(out) == 3:
        out = (1, *out)
    b, c, h, w = out[-4:]
    return b, c, h, w


def _nhwc_channels(channels: int, per_block: int, per_tail: int) -> int:
    """Float work over one pixel's channels: blocks of 8 in vectors, the rest one by one."""
    blocks, tail = divmod(channels, FLOAT_LANES)
    return blocks * per_block + tail * per_tail
