"""Shared pieces of the int8 FPO rules: per-element costs, ``ON_QUANTIZED``, oneDNN's weights.

The AVX2 kernels' per-element costs, the rules of QuantizedCPU kernels (:data:`ON_QUANTIZED`),
and which packed weights PyTorch runs on oneDNN's kernels (:func:`onednn_assumed`). The rule
families (``_rules_quantized``: quantize, linear and convolution, embeddings;
``_rules_quantized_elementwise``; ``_rules_quantized_pool``; ``_rules_quantized_norm``;
``_rules_quantized_rnn``; ``_rules_quantized_convert``) count with these constants; their
conventions are those of :mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from greenprint.fpo._registry import ASSUMED, Rule, first_shape

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


#: The name under which a count's assumptions (``FPOResult.assumptions``) say that an int8 linear
#: or convolution ran on oneDNN's kernels, and :data:`ONEDNN_INT8_COUNTED` what it was counted as
ONEDNN_INT8 = "onednn_int8"
ONEDNN_INT8_COUNTED = "counted as FBGEMM runs them (oneDNN's float epilogue differs, not derived)"
#: ``should_use_onednn_quant``'s largest group count for oneDNN (ATen's ``OnednnUtils.h``)
ONEDNN_MAX_GROUPS = 100


def onednn_assumed(packed: Any, weight: Any = None) -> dict[str, Any]:
    """What a reader of int8 packed weights adds for the counter when oneDNN runs them.

    ``{ASSUMED: {ONEDNN_INT8: ONEDNN_INT8_COUNTED}}`` when :func:`runs_onednn` says PyTorch
    runs ``packed`` (whose unpacked weight ``weight`` is, if the reader has it) on oneDNN's
    kernels, else ``{}``: the rules count FBGEMM's float epilogue and the count's assumptions
    say so (``FPOResult.assumptions["onednn_int8"]``).
    """
    return {ASSUMED: {ONEDNN_INT8: ONEDNN_INT8_COUNTED}} if runs_onednn(packed, weight) else {}


def runs_onednn(packed: Any, weight: Any = None) -> bool:
    """Whether PyTorch runs the int8 packed weights ``packed`` on oneDNN's kernels, not FBGEMM's.

    ``packed`` is a ``LinearPackedParamsBase`` or ``Conv*dPackedParamsBase`` (``weight``, if
    given, its ``unpack()``-ed weight: not unpacked again). It does not say which library
    packed it: PyTorch chooses when it packs (``quantized::linear_prepack``, ``conv*_prepack``,
    and again when a saved model's packed weights are loaded), by the quantized engine
    (``torch.backends.quantized.engine``). The ``onednn`` engine packs every
    int8 linear and convolution for oneDNN (it refuses weights with a zero point); ``x86``
    packs linears for FBGEMM and a convolution for oneDNN where ATen's
    ``should_use_onednn_quant`` says (:func:`onednn_convolution`); ``fbgemm`` and ``qnnpack``
    never use oneDNN. The engine at count time stands for the one at packing time (the same
    unless the code set another engine after packing). fp16 weights (float, not quantized)
    are FBGEMM's. False when the weights cannot be read (released on a mobile build).
    """
    torch = _torch()
    engine = torch.backends.quantized.engine
    if engine not in ("onednn", "x86"):
        return False
    try:
        if weight is None:
            weight = packed.unpack()[0]
        if not weight.is_quantized:
            return False
        if engine == "onednn":
            return True
        if not packed._has_method("groups"):  # a linear: the x86 engine packs it for FBGEMM
            return False
        return onednn_convolution(
            weight,
            transpose=bool(packed.transpose()),
            groups=int(packed.groups()),
            output_padding=[int(p) for p in packed.output_padding()],
        )
    except (RuntimeError, AttributeError, TypeError, ValueError):
        return False


def onednn_convolution(
    weight: Any, *, transpose: bool, groups: int, output_padding: list[int]
) -> bool:
    """Whether the ``x86`` engine packs an int8 convolution for oneDNN, not FBGEMM.

    ATen's ``should_use_onednn_quant`` (``OnednnUtils.h``, PyTorch 2.13): on Linux, on a CPU
    with AVX-512 VNNI (:func:`avx512_vnni`), with at most 100 groups, symmetric weights (per
    tensor a zero point of 0; per channel every zero point 0, and not a transposed
    convolution) and every output padding 0. Otherwise FBGEMM. ``weight``: the ``qint8``
    weight.
    """
    if not sys.platform.startswith("linux") or not avx512_vnni():
        return False
    if groups > ONEDNN_MAX_GROUPS or any(p != 0 for p in output_padding):
        return False
    torch = _torch()
    scheme = weight.qscheme()
    if scheme == torch.per_tensor_affine:
        return int(weight.q_zero_point()) == 0
    if scheme == torch.per_channel_affine and not transpose:
        return not bool(weight.q_per_channel_zero_points().any())
    return False


@functools.cache
def avx512_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI, as PyTorch's ``cpuinfo`` reads it (cached).

    ``torch.cpu.get_capabilities()["avx512_vnni"]``: the ``cpuinfo_has_x86_avx512vnni()`` that
    ``should_use_onednn_quant`` reads. False where torch has no such query.
    """
    capabilities = getattr(_torch().cpu, "get_capabilities", None)
    if capabilities is None:
        return False
    try:
        return bool(capabilities().get("avx512_vnni", False))
    except (RuntimeError, AttributeError, TypeError):
        return False


#: The name under which a count's assumptions say that int8 ops were counted while the quantized
#: engine was ``qnnpack``, and :data:`QNNPACK_INT8_COUNTED` what they were counted as
QNNPACK_INT8 = "qnnpack_int8"
QNNPACK_INT8_COUNTED = (
    "counted as the x86 kernels (FBGEMM's, ATen's) run them (QNNPACK's float work differs, "
    "not derived)"
)


def qnnpack_engine() -> bool:
    """Whether the quantized engine (``torch.backends.quantized.engine``) is ``qnnpack`` now.

    Under it PyTorch runs int8 linears and convolutions (packed for QNNPACK: the engine at
    count time stands for the one at packing, as for :func:`runs_onednn`) and several other
    int8 kernels (add, pooling, sigmoid, hardswish...) on QNNPACK's kernels, whose float work
    differs from the x86 kernels the int8 rules count: QNNPACK quantizes a linear's bias once
    per call and adds it to the int32 sum, so its requantization is about 2 FPO per output
    element, not FBGEMM's 4 (not derived).
    """
    try:
        return bool(_torch().backends.quantized.engine == "qnnpack")
    except (RuntimeError, AttributeError):
        return False
