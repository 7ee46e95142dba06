"""FPO rules for int8 inference: quantize, dequantize, and the float steps of the int8 kernels.

An int8 model (``torch.ao.quantization``'s dynamic or static quantization) still does floating
point work: it quantizes float activations, its int8 kernels turn their int32 sums back into
float or into int8 with float scales (and add a float bias), and it dequantizes its outputs.
The counts follow the kernels of PyTorch's x86 CPU builds (FBGEMM, which the ``x86`` and
``fbgemm`` quantized engines run), read from their source: ATen's ``qlinear_dynamic.cpp``,
``qlinear.cpp``, ``QuantUtils.h`` and ``QuantizedOpKernels.cpp``; FBGEMM's
``QuantUtilsAvx2.cc`` and ``PackAWithQuantRowOffset.cc``.

Conventions as in docs/fpo.md: a float add, subtract, multiply, divide, compare (min, max) or
rounding counts 1 (the float-to-int32 conversion that rounds, ``cvtps2dq``, is a rounding).
Integer work is not FPO: the int8 products and their int32 sums, the zero-point offsets, integer
clamps and saturating packs (``greenprint.greener`` counts the products apart, as integer
operations), nor converting an int32 to float (no arithmetic).

The int8 kernels' tensors are quantized (``quint8``, ``qint8``): the counter applies the rules of
ops of the ``quantized`` namespace whatever their tensors' dtypes (the static kernels take and
return only quantized tensors). An ``aten`` op on quantized tensors runs ATen's QuantizedCPU
kernel, not the float one: those that dequantize, compute in float and requantize, or scale an
int32 sum by a float multiplier (``sigmoid``, ``hardsigmoid``, ``tanh``, ``gelu``,
``leaky_relu``, ``avg_pool2d``, ``_adaptive_avg_pool2d``, ``avg_pool3d``,
``_adaptive_avg_pool3d``, ``mean``, ``upsample_bilinear2d``, ``cat``) are counted by the rules of
:data:`ON_QUANTIZED`, which the counter applies in place of the float rule when a quantized tensor
is among the op's inputs (``clamp`` and ``hardtanh`` clamp the integers but quantize their float
bounds once per call); any other ``aten`` op on quantized tensors only (``aten.relu`` on ``quint8``
clamps integers, nearest upsampling and max pooling copy and compare them) counts 0 as integer
work.

The elementwise QuantizedCPU kernels (``cpu_kernel_vec``) run 32 ``quint8`` values at a time
(AVX2): ``Vectorized<quint8>::dequantize`` is one fused multiply-add (2) or a subtract and a
multiply (2) per element, ``Vectorized<quint8>::quantize`` ATen's ``QuantizeAvx2`` (the multiply by
``1 / scale``, the clip, the rounding: 3, as ``quantize_per_tensor``). The scalar tail of each
contiguous run a thread gets (fewer than 64 elements: ``dequantize_val`` 1, FBGEMM's scalar
``Quantize`` 6) is counted as the vector path, so those counts do not depend on the thread count;
where a kernel's tail is fixed by a dimension (the channels of a channels-last pooling, a layer
norm's row), it is counted as the kernel runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from greenprint.fpo._registry import Rule, first_shape, numel, register_rule, shapes_in, zero

__all__: list[str] = []

#: per element of ``quantize_per_tensor`` (FBGEMM's ``Quantize``, not legacy): ``x * inv_scale``,
#: the clip below int32's largest float (a min), the rounding conversion; the zero point is added
#: and the result clamped on integers
QUANTIZE_PER_ELEMENT = 3
#: per element of a dynamic int8 linear's input: its min and max (``FindMinMax``, 2 compares), then
#: quantized by ``QuantizeAvx2<uint8_t, LEGACY=true>``: ``x * inv_scale + zero_point`` (a fused
#: multiply-add, 2), the clip (1) and the rounding conversion (1)
DYNAMIC_INPUT_PER_ELEMENT = 6
#: per call of a dynamic int8 linear: ATen's ``ChooseQuantizationParams`` on the input's min and
#: max (22: ``min(min, 0)``, ``max(max, 0)`` and the ``min <= max`` check 3, the scale
#: ``(max - min) / (qmax - qmin)`` 2, its checks ``== 0``, ``1 / scale``, ``isinf``, ``> 0`` and
#: ``< SMALL_SCALE_THRESHOLD`` 5, the zero point from either end ``q - x / scale`` 2 + 2, their
#: errors ``|q| - |x / scale|`` 2 + 2, the error compare 1, the nudge's two compares and
#: ``nearbyint`` 3), the input's ``1 / scale`` (1) and the output multiplier ``act_scale *
#: w_scale`` (1)
DYNAMIC_PER_CALL = 24


def _packed_weights(x: Any, packed: Any, *args: Any, **kwargs: Any) -> dict[str, bool]:
    """What the packed weights hold: ``{"bias": bool, "per_channel": bool}`` (their ``unpack()``).

    Read from the real call (a ``LinearPackedParamsBase`` or ``Conv*dPackedParamsBase``);
    without it the rules assume a bias and the default qconfigs' weights (per tensor for
    dynamic int8, per channel for the x86 engine's static int8).
    """
    try:
        weight, bias = packed.unpack()[:2]
    except (RuntimeError, AttributeError, TypeError, ValueError):  # weights released (mobile)
        return {}
    return {
        "bias": bias is not None,
        "per_channel": str(weight.qscheme()).startswith("torch.per_channel"),
    }


def _dynamic(x: tuple[int, ...], out_shape: Any, bias: bool, per_channel: bool, relu: bool) -> int:
    k = x[-1] if x else 0
    rows = numel(x) // k if k else 0
    outputs = numel(first_shape(out_shape))
    # per output element: the int32 sum (offsets corrected on integers) converted, times the
    # multiplier (per channel: act_scale * w_scale[j] computed per element), + bias, ReLU's max
    per_output = 1 + int(per_channel) + int(bias) + int(relu)
    return DYNAMIC_INPUT_PER_ELEMENT * rows * k + per_output * outputs + DYNAMIC_PER_CALL


@register_rule(["quantized.linear_dynamic"], reads=_packed_weights)
def linear_dynamic_rule(
    x: tuple[int, ...],
    *args: Any,
    out_shape: Any = (),
    bias: bool = True,
    per_channel: bool = False,
    **kwargs: Any,
) -> int:
    """Dynamic int8 ``nn.Linear`` (FBGEMM): ``6MK + 2MN + 24`` for ``M x K`` in, ``M x N`` out.

    Per input element 6 (its min and max, then quantized to uint8: multiply-add, clip,
    rounding; see ``DYNAMIC_INPUT_PER_ELEMENT``). The ``2MNK`` products are uint8 x int8 and
    their sums int32: integer work. Per output element ``ReQuantizeForFloat`` converts the
    corrected int32 sum, multiplies it by ``act_scale * w_scale`` (1) and adds the float bias
    (1; without one 0); per-channel weights compute ``act_scale * w_scale[j]`` per element
    (+1). Per call 24 (see ``DYNAMIC_PER_CALL``). Bias and scheme are read from the packed
    weights of a real call.
    """
    return _dynamic(x, out_shape, bias, per_channel, relu=False)


@register_rule(["quantized.linear_relu_dynamic"], reads=_packed_weights)
def linear_relu_dynamic_rule(
    x: tuple[int, ...],
    *args: Any,
    out_shape: Any = (),
    bias: bool = True,
    per_channel: bool = False,
    **kwargs: Any,
) -> int:
    """As ``quantized.linear_dynamic``, + 1 per output element: the fused ReLU's float max."""
    return _dynamic(x, out_shape, bias, per_channel, relu=True)


@register_rule(["aten.quantize_per_tensor"])
def quantize_per_tensor_rule(self: Any, *args: Any, **kwargs: Any) -> int:
    """``3N + 1`` per tensor: ``x * inv_scale``, a clip and a rounding per element; ``1 / scale``.

    FBGEMM's ``Quantize`` (not legacy): the product is clipped below int32's largest float (a
    min) and converted with rounding; the zero point is added and the uint8/int8 range
    clamped on integers (0). ``quantize_per_tensor.tensors`` counts each tensor.
    """
    return sum(QUANTIZE_PER_ELEMENT * numel(shape) + 1 for shape in shapes_in(self))


def _quantized_inputs(self: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
    """Elements of the quantized tensors among the inputs: ``{"elements": n}``.

    ``dequantize`` of a float tensor returns it unchanged (0 FPO); the dtype is metadata, read
    from meta and fake tensors too.
    """
    tensors = self if isinstance(self, (list, tuple)) else [self]
    return {"elements": sum(t.numel() for t in tensors if getattr(t, "is_quantized", False))}


_quantized_inputs.metadata_only = True  # type: ignore[attr-defined]


@register_rule(["aten.dequantize"], reads=_quantized_inputs)
def dequantize_rule(
    self: Any, *args: Any, out_shape: Any = (), elements: int | None = None, **kwargs: Any
) -> int:
    """``N``: ``scale * (q - zero_point)``, the subtraction on integers, one float multiply.

    FBGEMM's ``Dequantize`` (ATen's ``dequantize_val`` likewise): ``q - zero_point`` in int32,
    converted (0), times the scale (1). A float tensor passes through (0).
    """
    if elements is not None:
        return elements
    return sum(numel(shape) for shape in shapes_in(self))


register_rule(
    ["aten.quantized_max_pool1d", "aten.quantized_max_pool2d", "aten.quantized_max_pool3d"]
)(zero)  # compares of uint8 values: integer work


def _static(outputs: int, channels: int, bias: bool, per_channel: bool) -> int:
    # per output element: the corrected int32 sum converted (0); with a float bias, the bias
    # scaled to the sum's units (bias * 1/(act_scale*w_scale), or / per channel: 1) and added
    # (1); times the requantization multiplier (1); rounded to int32 (1); the zero point added
    # and clamped (a fused ReLU: clamped at the zero point) on integers (0)
    per_output = 2 + 2 * int(bias)
    # per call: act_scale * w_scale and its / out_scale per channel, or once per tensor with
    # 1 / (act_scale * w_scale)
    per_call = 2 * channels if per_channel else 3
    return per_output * outputs + per_call


def _static_linear(
    x: Any, *args: Any, out_shape: Any = (), bias: bool = True, per_channel: bool = True, **kw: Any
) -> int:
    """Static int8 linear (FBGEMM ``ReQuantizeOutput``): ``(2 + 2b) MN`` + ``2N`` per channel.

    Per output element: the int32 sum's float bias, scaled to its units and added (2, for a
    bias), the requantization multiply (1) and the rounding to int32 (1); ``b`` is 1 with a
    bias. Per call: ``act_scale * w_scale`` and ``/ out_scale`` per output channel (per-tensor
    weights: 3). A fused ReLU clamps integers (0).
    """
    out = first_shape(out_shape)
    return _static(numel(out), out[-1] if out else 1, bias, per_channel)


def _static_conv(
    x: Any, *args: Any, out_shape: Any = (), bias: bool = True, per_channel: bool = True, **kw: Any
) -> int:
    """Static int8 convolution: as the linear's, per output element and output channel.

    FBGEMM's ``fbgemmConv`` ends with the same ``ReQuantizeOutput``; oneDNN, which the x86
    engine runs for some convolutions (symmetric weights on a VNNI CPU), applies the same
    scales and float bias in its epilogue.
    """
    out = first_shape(out_shape)
    return _static(numel(out), out[1] if len(out) > 1 else 1, bias, per_channel)


register_rule(["quantized.linear", "quantized.linear_relu"], reads=_packed_weights)(_static_linear)
register_rule(
    [f"quantized.conv{d}d{relu}" for d in (1, 2, 3) for relu in ("", "_relu")],
    reads=_packed_weights,
)(_static_conv)


#: int8 ops that do no float arithmetic at all: packing and unpacking int8 weights, reading a
#: quantized tensor's integers or parameters, making one. Their rule is 0; a count that lists one
#: with no rule (a user's registry without it) misses no FPO (``greener``'s ``counted_as``).
INTEGER_INT8_OPS = frozenset(
    {
        "aten.int_repr",
        "aten.q_scale",
        "aten.q_zero_point",
        "aten.qscheme",
        "aten.q_per_channel_scales",
        "aten.q_per_channel_zero_points",
        "aten.q_per_channel_axis",
        "aten._empty_affine_quantized",
        "aten._empty_per_channel_affine_quantized",
        "aten._make_per_tensor_quantized_tensor",
        "aten._make_per_channel_quantized_tensor",
        "quantized.linear_prepack",
        "quantized.linear_unpack",
        *(f"quantized.conv{d}d_{step}" for d in (1, 2, 3) for step in ("prepack", "unpack")),
    }
)
register_rule(sorted(INTEGER_INT8_OPS))(zero)

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


@on_quantized(["aten.sigmoid"])
def sigmoid_quantized_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``9N + 1``: ``qsigmoid_kernel`` (the x86 engines; QNNPACK's table lookup is not counted).

    Per element: ``(q - zp) * scale`` (2), ``neg``, ``exp``, ``1 +``, ``reciprocal`` (4, the
    kernel's vector steps), ``quantize`` to the fixed output scale 1/256 (3). Per call ``1 /
    output_scale`` (1).
    """
    return (DEQUANTIZE_VEC + 4 + QUANTIZE_VEC) * numel(x) + 1


@on_quantized(["aten.hardsigmoid"])
def hardsigmoid_quantized_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``9N + 3``: ``qhardsigmoid_kernel``.

    Per element: dequantize (a fused multiply-add, 2), ``min(max(x + 3, 0), 6) / 6`` (4, as the
    float kernel), quantize to the fixed output scale 1/256 (3); per call ``scale * -zp`` (2) and
    ``1 / output_scale`` (1).
    """
    return (DEQUANTIZE_VEC + 4 + QUANTIZE_VEC) * numel(x) + 3


@on_quantized(["aten.tanh"])
def tanh_quantized_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``6N + 3``: ``qtanh_kernel``.

    Per element: dequantize (2), ``tanh`` (1, as the float rule), quantize to the fixed output
    scale 2/256 (3); per call ``scale * -zp`` (2) and ``1 / output_scale`` (1).
    """
    return (DEQUANTIZE_VEC + 1 + QUANTIZE_VEC) * numel(x) + 3


@on_quantized(["aten.gelu"])
def gelu_quantized_rule(
    x: tuple[int, ...], *args: Any, approximate: str = "none", **kwargs: Any
) -> int:
    """``10N + 3`` (tanh form ``14N + 3``): ``qgelu_kernel``, to the input's qparams.

    Per element: dequantize (2), ``x * 0.5 * (1 + erf(x * M_SQRT1_2))`` (5; the tanh form ``0.5 *
    x * (1 + tanh(beta * (x + kappa * x**3)))``, 9: as the float rule), quantize (3); per call
    ``scale * -zp`` (2) and ``1 / output_scale`` (1).
    """
    form = 9 if (args[0] if args else approximate) == "tanh" else 5
    return (DEQUANTIZE_VEC + form + QUANTIZE_VEC) * numel(x) + 3


@on_quantized(["aten.clamp"])
def clamp_quantized_rule(
    x: Any, min: Any = None, max: Any = None, *args: Any, **kwargs: Any
) -> int:
    """6 per bound given: ``qclamp_kernel`` and its one-bound forms.

    Each float bound is quantized once (``quantize_val``, 6); the int8 values are clamped on
    integers (0).
    """
    return QUANTIZE_SCALAR * ((min is not None) + (max is not None))


@on_quantized(["aten.hardtanh"])
def hardtanh_quantized_rule(x: Any, *args: Any, **kwargs: Any) -> int:
    """12: ``hardtanh_quantized_cpu`` is the clamp of both bounds (``relu6`` too)."""
    return 2 * QUANTIZE_SCALAR


def _leaky(x: tuple[int, ...]) -> int:
    # dequantize 2, the compare with 0 (the blend picks 1 or the slope: 0), the multiply, quantize
    return (DEQUANTIZE_VEC + 2 + QUANTIZE_VEC) * numel(x) + 3


@on_quantized(["aten.leaky_relu"])
def leaky_relu_quantized_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``7N + 3``: ``leaky_qrelu_out_kernel``, to the input's qparams.

    Per element: dequantize (2), ``x > 0`` (1), times 1 or the slope (1; the choice is a blend,
    0), quantize (3); per call ``1 / out_scale`` (1) and ``scale * -zp`` (2).
    """
    return _leaky(x)


@register_rule(["quantized.leaky_relu"])
def qleaky_relu_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``7N + 3``: the kernel of ``aten.leaky_relu`` on ``quint8``, to the given qparams."""
    return _leaky(x)


@register_rule(["quantized.hardswish"])
def qhardswish_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``10N + 3``: ``qhardswish_kernel``.

    Per element: dequantize (2), ``x * min(max(x + 3, 0), 6) / 6`` (5, as the float kernel),
    quantize (3); per call ``scale * -zp`` (2) and ``1 / out_scale`` (1).
    """
    return (DEQUANTIZE_VEC + 5 + QUANTIZE_VEC) * numel(x) + 3


def _qadd(out_shape: Any, relu: bool) -> int:
    # per output element: both inputs dequantized (2 + 2), the add, the fused ReLU's float max,
    # quantize (3); per call 1 / out_scale and the two scale * -zp
    per = 2 * DEQUANTIZE_VEC + 1 + int(relu) + QUANTIZE_VEC
    return per * numel(first_shape(out_shape)) + 5


@register_rule(["quantized.add.default", "quantized.add.out"])
def qadd_rule(qa: Any, qb: Any, *args: Any, out_shape: Any = (), **kwargs: Any) -> int:
    """``8N + 5`` for ``N`` output elements: ``qadd_kernel``.

    Per element: both inputs dequantized (2 + 2), added (1), quantized (3); per call ``1 /
    scale`` (1) and each input's ``scale * -zp`` (2 + 2).
    """
    return _qadd(out_shape, relu=False)


@register_rule(["quantized.add_relu.default", "quantized.add_relu.out"])
def qadd_relu_rule(qa: Any, qb: Any, *args: Any, out_shape: Any = (), **kwargs: Any) -> int:
    """``9N + 5``: as ``quantized.add``, + the fused ReLU's float max per element."""
    return _qadd(out_shape, relu=True)


@_metadata
def _add_scalar_branch(qa: Any, other: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"requantized": bool}``: whether adding ``other`` leaves the int8 range (then rescaled)."""
    try:
        torch = _torch()
        q_min, q_max = {
            torch.quint8: (0, 255),
            torch.qint8: (-128, 127),
            torch.qint32: (-(2**31), 2**31 - 1),
        }[qa.dtype]
        shift = qa.q_zero_point() - round(float(other) / qa.q_scale())
    except (AttributeError, KeyError, RuntimeError, TypeError, ValueError, ZeroDivisionError):
        return {}
    return {"requantized": not q_min <= shift <= q_max}


@register_rule(
    [f"quantized.{op}.{o}" for op in ("add", "add_relu") for o in ("Scalar", "Scalar_out")],
    reads=_add_scalar_branch,
)
def qadd_scalar_rule(
    qa: Any, *args: Any, out_shape: Any = (), requantized: bool = True, **kwargs: Any
) -> int:
    """``_add_scalar_out``: 2, or ``2N + 8`` when the sum leaves the int8 range.

    ``c / scale`` rounded (2); when the shifted zero point stays in range, a copy with new
    qparams (0); else the new scale (4: ``(q_max - (z - c_q)) / (q_max - q_min) * s``), ``1 /
    scale`` and the multiplier (2) and ``requantize_from_int`` per element (multiply, round: 2).
    The branch is read from the tensor (without it, the rescaling one).
    """
    if not requantized:
        return 2
    return 2 + 4 + 2 + 2 * numel(first_shape(out_shape))


@register_rule(["quantized.mul.default", "quantized.mul.out"])
@register_rule(["quantized.mul_relu.default", "quantized.mul_relu.out"])
def qmul_rule(qa: Any, qb: Any, *args: Any, out_shape: Any = (), **kwargs: Any) -> int:
    """``2N + 3``: ``qmul_kernel``, two tensors.

    The zero-point-shifted int8 values are multiplied on integers (0), then
    ``requantize_from_int`` (the int32 product times the multiplier, rounded: 2); per call ``1 /
    scale`` and ``self_scale * other_scale * inv_scale`` (3). A fused ReLU clamps integers.
    """
    return 2 * numel(first_shape(out_shape)) + 3


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


@on_quantized(["aten.avg_pool2d"], reads=_channels_last)
def avg_pool2d_quantized_rule(
    x: Any, *args: Any, out_shape: Any = (), channels_last: bool = False, **kwargs: Any
) -> int:
    """``4 out + 1`` (NCHW: ``avg_pool2d_out_frame``); channels last ``qavg_pool2d_nhwc_kernel``.

    NCHW: per call ``input_scale / output_scale`` (1); per output element the integer window sum
    (0), ``multiplier = scale_factor / divide_factor`` (1), ``sum * multiplier + zero_point`` (2)
    and ``nearbyint`` (1). Channels last (AVX2): per output pixel ``input_scale / output_scale /
    divide_factor`` (2); per element of the channel blocks of 8 ``QuantizeAvx2`` (3); per channel
    past them ``1 / multiplier`` and the scalar ``quantize_val`` (7; ``acc * 1.0`` is folded).
    """
    b, c, h, w = _pool_args(out_shape)
    if channels_last:
        return b * h * w * (2 + _nhwc_channels(c, FLOAT_LANES * QUANTIZE_VEC, 1 + QUANTIZE_SCALAR))
    return 4 * b * c * h * w + 1


@on_quantized(["aten._adaptive_avg_pool2d"], reads=_channels_last)
def adaptive_avg_pool2d_quantized_rule(
    x: Any, *args: Any, out_shape: Any = (), channels_last: bool = False, **kwargs: Any
) -> int:
    """NCHW ``adaptive_avg_pool_single_out_frame``: ``7 out + 5 BC oH + 5 BC`` (``out`` elements).

    The window bounds are computed in float: ``floor((float)(o * in) / out)`` and the ``ceil`` of
    the next (2 + 2 per bound pair). Per channel (of the batch): the depth bounds (4) and ``1 /
    kD`` (1); per output row the height bounds (4) and ``/ kH`` (1); per output element the width
    bounds (4), ``/ kW`` (1), ``sum * kDHWr`` (1) and ``nearbyint`` (1); the output keeps the
    input's qparams. Channels last (``_qadaptive_avg_pool_kernel``, AVX2), per batch element: the
    depth bounds (4), per output row the height bounds (4), per output pixel the width bounds (4)
    and ``input_scale / output_scale / size`` (2); per block of 8 channels ``1 / multiplier`` (1)
    and FBGEMM's vector ``Quantize`` (``1 / scale`` 1 + 3 per element); per channel past them
    ``1 / multiplier`` and the scalar ``quantize_val`` (7).
    """
    b, c, h, w = _pool_args(out_shape)
    if channels_last:
        pixel = 6 + _nhwc_channels(c, 2 + FLOAT_LANES * QUANTIZE_VEC, 1 + QUANTIZE_SCALAR)
        return b * (4 + h * (4 + w * pixel))
    return 7 * b * c * h * w + 5 * b * c * h + 5 * b * c


@_metadata
def _mean_path(x: Any, dim: Any = None, keepdim: bool = False, dtype: Any = None, **kw: Any) -> Any:
    """``{"fast": bool}``: whether ``mean_out_quantized_cpu`` takes its inner-dims path.

    That is a contiguous input, the reduced dims the innermost ones, no other dtype; else it
    dequantizes, means and requantizes.
    """
    try:
        ndim = x.dim()
        dims = sorted((d % ndim for d in (dim or range(ndim))), reverse=True) if ndim else []
    except (AttributeError, TypeError):
        return {}
    inner = all(d == ndim - 1 - i for i, d in enumerate(dims))
    return {"fast": bool(x.is_contiguous() and inner and (dtype is None or dtype == x.dtype))}


@on_quantized(["aten.mean"], reads=_mean_path)
def mean_quantized_rule(
    x: tuple[int, ...], *args: Any, out_shape: Any = (), fast: bool = False, **kwargs: Any
) -> int:
    """``2M`` for ``M`` outputs on the innermost dims, else ``2N + 4M + 1``.

    Innermost dims (``qmean_inner_dim_kernel``): the integer sum (0) ``/ N`` (1) and
    ``nearbyint`` (1). Otherwise ``dequantize`` (N), the float mean (``N + M``, its rule),
    ``quantize_per_tensor`` (``3M + 1``).
    """
    outputs = numel(first_shape(out_shape))
    if fast:
        return 2 * outputs
    return 2 * numel(x) + 4 * outputs + 1


@_metadata
def _upsample_args(
    x: Any, output_size: Any, align_corners: bool = False, *args: Any, **kw: Any
) -> Any:
    scales = [s for s in args if s is not None]
    found = _channels_last(x)
    found.update(align_corners=bool(align_corners), scales_given=len(scales))
    return found


@on_quantized(["aten.upsample_bilinear2d"], reads=_upsample_args)
def upsample_bilinear2d_quantized_rule(
    x: tuple[int, ...],
    *args: Any,
    out_shape: Any = (),
    channels_last: bool = False,
    align_corners: bool = False,
    scales_given: int = 0,
    **kwargs: Any,
) -> int:
    """NCHW ``upsample_bilinear2d_out_frame`` (the same size: a copy, 0).

    Per call ``output_scale / input_scale`` (1) and each axis's ratio (1, and ``scale > 0`` when
    a scale factor is given). Each source index (``area_pixel_compute_source_index``): ``scale *
    (dst + 0.5) - 0.5`` and its ``max`` with 0 (4; ``align_corners``: ``scale * dst``, 1), then
    the truncation to the source row or column (1, the floor), ``lambda1 = src - floor`` and
    ``lambda0 = 1 - lambda1`` (2): per output column once, per output row of each channel once.
    Per output element ``h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d) - zero_point`` (10) and
    the scalar ``quantize_val`` (6). Channels last
    (``qupsample_bilinear2d_nhwc_kernel``): both indices per output pixel; per block of 8
    channels the 10 per element and FBGEMM's vector ``Quantize`` (1 + 3 per element); per channel
    past them 16.
    """
    b, c, oh, ow = _pool_args(out_shape)
    if tuple(x[-2:]) == (oh, ow) and not channels_last:
        return 0
    index = (1 if align_corners else 4) + 3
    per_call = 1 + 2 + (0 if align_corners else scales_given)
    if channels_last:
        block = 1 + FLOAT_LANES * (10 + QUANTIZE_VEC)
        pixel = 2 * index + _nhwc_channels(c, block, 10 + QUANTIZE_SCALAR)
        return per_call + b * oh * ow * pixel
    return per_call + index * ow + index * b * c * oh + (10 + QUANTIZE_SCALAR) * b * c * oh * ow


@_metadata
def _cat_qparams(
    tensors: Any, dim: int = 0, scale: Any = None, zero_point: Any = None, **kw: Any
) -> Any:
    """``{"fast": bool, "rescaled": [(channels, pixels) of the inputs rescaled]}``.

    ``fast``: ``qcat_nhwc_kernel``'s path (dim 1, 4-d channels-last inputs); ``rescaled``: its
    inputs whose qparams differ from the output's.
    """
    try:
        tensors = list(tensors)
        first = tensors[0]
        out_scale = first.q_scale() if scale is None else float(scale)
        out_zp = first.q_zero_point() if zero_point is None else int(zero_point)
        ndim = first.dim()
        fast = (dim % ndim == 1) and all(
            t.dim() == 4 and t.is_contiguous(memory_format=_torch().channels_last) for t in tensors
        )
        rescaled = [
            (t.shape[1], t.shape[0] * t.shape[2] * t.shape[3])
            for t in tensors
            if fast and not (t.q_scale() == out_scale and t.q_zero_point() == out_zp)
        ]
    except (AttributeError, IndexError, RuntimeError, TypeError, ValueError, ZeroDivisionError):
        return {}
    return {"fast": fast, "rescaled": rescaled}


def _qcat(out_shape: Any, fast: bool, rescaled: list[tuple[int, int]]) -> int:
    if not fast:
        # each input dequantized (1 per element), the float cat (0), quantize_per_tensor
        return (1 + QUANTIZE_PER_ELEMENT) * numel(first_shape(out_shape)) + 1
    # qcat_nhwc_kernel: an input with the output's qparams is copied (memcpy, 0); another is
    # rescaled pixel by pixel over its channels
    return 1 + sum(_qcat_pixel(channels) * pixels for channels, pixels in rescaled)


def _qcat_pixel(channels: int) -> int:
    """Float work of ``qcat_nhwc_kernel`` on one pixel of an input rescaled, by its channels."""
    blocks, rest = divmod(channels, INT8_LANES)
    # blocks of 32: scale * -zp once (2), dequantize (2) and quantize (3) per channel
    work = (2 + blocks * INT8_LANES * (DEQUANTIZE_VEC + QUANTIZE_VEC)) if blocks else 0
    if rest >= FLOAT_LANES:
        # 8 to 31 more: scale * -zp (2), one 32-lane buffer dequantized and quantized whole
        work += 2 + INT8_LANES * (DEQUANTIZE_VEC + QUANTIZE_VEC)
        rest %= FLOAT_LANES
    # past them one by one: dequantize_val (1) and quantize_val (6)
    return work + rest * (1 + QUANTIZE_SCALAR)


@on_quantized(["aten.cat"], reads=_cat_qparams)
def cat_quantized_rule(
    tensors: Any, *args: Any, out_shape: Any = (), fast: bool = False, rescaled: Any = (), **kw: Any
) -> int:
    """``4N + 1`` for ``N`` output elements (``cat_quantized_cpu``), to the first input's qparams.

    The generic path: each input dequantized (1 per element), the float cat,
    ``quantize_per_tensor`` (3 per element + 1). Channels last along dim 1
    (``qcat_nhwc_kernel``): the inputs with the output's qparams are copied (0), the others
    rescaled per pixel: channels in blocks of 32 dequantized (2) and quantized (3) each with
    ``scale * -zp`` once (2); 8 to 31 more as one whole 32-lane block (2 + 5 x 32); each channel
    past them ``dequantize_val`` and ``quantize_val`` (7); + 1 per call (``1 / scale``).
    """
    return _qcat(out_shape, fast, list(rescaled))


register_rule(["quantized.cat"], reads=_cat_qparams)(cat_quantized_rule)


@register_rule(["quantized.layer_norm"])
def qlayer_norm_rule(x: tuple[int, ...], normalized_shape: Any, *args: Any, **kwargs: Any) -> int:
    """``quantized_normalize_kernel`` (elementwise affine), rows of ``N = prod(normalized_shape)``.

    Per row: the integer sums of ``q`` and ``q**2`` (0), the mean ``/ N`` and ``- zp`` (2), the
    variance ``sumsq / N - mean**2`` clamped at 0 (4), ``scale / sqrt(var * scale * scale + eps)``
    (5). Per element in blocks of 32: dequantize (2), ``(x - mean) * rstd * gamma + beta`` (4) and
    the block quantized once per float vector of it (the kernel's ``quantize`` sits in the loop
    over the block's 4 float vectors: 4 x 3); per element past the blocks ``dequantize_val`` (1),
    the 4 and ``quantize_val`` (6). Per call ``1 / y_scale`` and ``1.0 * -zp`` (3).
    """
    n = math.prod(
        int(d)
        for d in (
            normalized_shape if isinstance(normalized_shape, (list, tuple)) else [normalized_shape]
        )
    )
    rows = numel(x) // n if n else 0
    blocks, tail = divmod(n, INT8_LANES)
    per_row = 11 + blocks * INT8_LANES * (DEQUANTIZE_VEC + 4 + 4 * QUANTIZE_VEC)
    per_row += tail * (1 + 4 + QUANTIZE_SCALAR)
    return rows * per_row + 3


@register_rule(["quantized.batch_norm2d", "quantized.batch_norm2d_relu"])
def qbatch_norm2d_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``q_batch_norm2d_impl`` on the channels-last copy of the input (``N x C x H x W``).

    Per channel (``compute_fused_params``): ``1 / sqrt(var + eps)`` (3), ``alpha = inv_sigma *
    weight * (in_scale / out_scale)`` (3), ``beta = (bias - mean * inv_sigma * weight) /
    out_scale`` (4). Per pixel, channels in blocks of 32 (``q_batch_norm_kernel``): dequantize
    with scale 1 (2), ``fmadd(alpha, x, beta)`` (2), quantize (3); a rest of 8 to 31 channels
    runs one more block's dequantize and quantize over all 32 lanes (2 x 32 + 3 x 32) with the
    multiply-add on its float vectors (2 x 8 each); each channel past that ``alpha * (q - zp) +
    beta`` and ``lrintf`` (3). Per call ``1.0 * -zp`` (2). A fused ReLU clamps integers.
    """
    channels = x[1] if len(x) > 1 else 1
    pixels = numel(x) // channels if channels else 0
    blocks, rest = divmod(channels, INT8_LANES)
    per_pixel = blocks * INT8_LANES * (DEQUANTIZE_VEC + 2 + QUANTIZE_VEC)
    vectors, tail = divmod(rest, FLOAT_LANES)
    if vectors:
        per_pixel += INT8_LANES * (DEQUANTIZE_VEC + QUANTIZE_VEC) + vectors * FLOAT_LANES * 2
    else:
        tail = rest
    per_pixel += 3 * tail
    return pixels * per_pixel + 10 * channels + 2


# q_batch_norm{1d,3d}_impl (and quantized.batch_norm, which picks one by the input's rank) run
# the same q_batch_norm_kernel on a channels-last copy, over N x (L or D x H x W) pixels
register_rule(
    [f"quantized.batch_norm{d}{relu}" for d in ("", "1d", "3d") for relu in ("", "_relu")]
)(qbatch_norm2d_rule)


@register_rule(["quantized.softmax"])
def qsoftmax_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``9N + 1``: ``qsoftmax_naive``, the x86 engines' kernel (QNNPACK's table lookup aside).

    ``at::dequantize`` (N), the float ``softmax`` (5N, its rule), ``quantize_per_tensor`` to the
    given qparams (``3N + 1``).
    """
    n = numel(x)
    return n + 5 * n + QUANTIZE_PER_ELEMENT * n + 1


@register_rule(["quantized.matmul"])
def qmatmul_rule(
    a: tuple[int, ...], b: tuple[int, ...], *args: Any, out_shape: Any = (), **kw: Any
) -> int:
    """``N_a + N_b + 2BMNK + 3BMN + 1``: ``qmatmul`` of x86 builds (no Ruy).

    Both inputs dequantized (1 per element), the float ``matmul`` (``2MNK`` per matrix of the
    batch), ``quantize_per_tensor`` of the ``B x M x N`` output (3 per element + 1).
    """
    out = numel(first_shape(out_shape))
    k = a[-1] if a else 0
    return numel(a) + numel(b) + 2 * out * k + QUANTIZE_PER_ELEMENT * out + 1


def _elu_vectors(x: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
    """``{"branching": n}``: the 8-lane float vectors of ``qelu_kernel`` with a lane <= 0.

    The kernel takes the ``expm1`` branch for a whole vector of 8 dequantized values when any
    of them is not above 0 (``(value > 0).zero_mask()``). The values are read in memory order
    (a contiguous or channels-last tensor), vectors from its start; the sign of ``fmadd(scale,
    q, scale * -zp)`` is computed exactly (in double). Real tensors only.
    """
    torch = _torch()
    try:
        q = x.int_repr()
        if (
            not q.is_contiguous()
            and q.dim() == 4
            and q.is_contiguous(memory_format=torch.channels_last)
        ):
            q = q.permute(0, 2, 3, 1)
        flat = q.reshape(-1).double()
        scale = torch.tensor(x.q_scale(), dtype=torch.float32)
        premul = scale * torch.tensor(-float(x.q_zero_point()), dtype=torch.float32)
        positive = flat * scale.double() + premul.double() > 0
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return {}
    pad = (-positive.numel()) % FLOAT_LANES
    lanes = torch.cat([positive, torch.ones(pad, dtype=torch.bool)]).view(-1, FLOAT_LANES)
    return {"branching": int((~lanes.all(dim=1)).sum())}


def _qelu(x: tuple[int, ...], branching: int | None) -> int:
    n = numel(x)
    vectors = -(-n // FLOAT_LANES)
    taken = vectors if branching is None else branching
    # per element: dequantize (2), value > 0 (1), * scale_coef (1), quantize (3); per vector
    # that branches, on its 8 lanes: * 1.0, * input_scale, expm1, * alpha and the compare of
    # the blend (5); per call scale * -zp (2) and 1 / out_scale (1)
    return (DEQUANTIZE_VEC + 1 + 1 + QUANTIZE_VEC) * n + 5 * FLOAT_LANES * taken + 3


@register_rule(["quantized.elu"], reads=_elu_vectors)
def qelu_rule(x: tuple[int, ...], *args: Any, branching: int | None = None, **kwargs: Any) -> int:
    """``7N + 40V + 3``: ``qelu_kernel``, ``V`` the 8-lane vectors that take the ``expm1`` branch.

    Per element: dequantize (2), ``value > 0`` (1), ``* scale`` (1; ELU's ``scale`` argument,
    1 by default, is still multiplied), quantize to the given qparams (3). A vector of 8 with
    any value <= 0 computes the negative part on all 8 lanes: ``* 1.0``, ``* input_scale``,
    ``expm1``, ``* alpha`` and the blend's compare (5 each). Per call ``scale * -zp`` (2) and
    ``1 / out_scale`` (1). ``V`` is read from the values (meta or fake tensors: every vector,
    ``12N + 3`` for whole vectors, what inputs of both signs cost).
    """
    return _qelu(x, branching)


@register_rule(["quantized.celu"], reads=_elu_vectors)
def qcelu_rule(x: tuple[int, ...], *args: Any, branching: int | None = None, **kwargs: Any) -> int:
    """As ``quantized.elu``, + 1: ``quantized_celu`` computes ``1 / alpha`` (the input scale)."""
    return _qelu(x, branching) + 1


@_metadata
def _norm_layout(x: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"channels_last": bool, "threads": n}``: the group-norm kernel's path and threads.

    ``quantized_group_norm_impl`` takes ``quantized_groupnorm_nhwc_kernel`` for an input
    contiguous in channels-last format; its second implementation (``H x W >= 512``) adds
    per-thread partial sums, ``torch.get_num_threads()`` of them.
    """
    torch = _torch()
    try:
        return {
            "channels_last": bool(
                x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
            ),
            "threads": int(torch.get_num_threads()),
        }
    except (AttributeError, RuntimeError, TypeError):
        return {}


#: per group, the statistics of ``quantized_normalize_kernel`` and its NHWC twin: ``sum / N``,
#: ``- zp`` (2), ``max(sumsq / N - mean * mean, 0)`` (4), ``scale / sqrt(var * scale * scale +
#: eps)`` (5)
NORM_STATS = 11
#: the NHWC kernels' group-norm sizes at which they switch to per-thread partial sums
NHWC_FEATURE_MAP_THRESHOLD = 512


def _group_norm(x: tuple[int, ...], groups: int, channels_last: bool, threads: int) -> int:
    if len(x) < 3 or not groups:
        return 0
    batch, channels = x[0], x[1]
    pixels = numel(x) // (batch * channels) if batch and channels else 0
    per_group = channels // groups
    per_element = DEQUANTIZE_VEC + 2 + QUANTIZE_VEC  # dequantize, x * scale + bias, quantize
    per_scalar = 1 + 2 + QUANTIZE_SCALAR  # dequantize_val, x * scale + bias, quantize_val
    if not channels_last:
        # quantized_normalize_kernel, per channel of a group: gamma_p = rstd * gamma (1); its
        # values in vectors of 32: dequantize (2), (x - mean) * gamma_p + beta (3), quantize
        # (3); a rest of 1 to 31 loaded into one vector: dequantized and quantized whole (2 +
        # 3 per lane), the 3 on each float vector holding the rest
        blocks, rest = divmod(pixels, INT8_LANES)
        channel = 1 + blocks * INT8_LANES * (DEQUANTIZE_VEC + 3 + QUANTIZE_VEC)
        if rest:
            vectors = -(-rest // FLOAT_LANES)
            channel += INT8_LANES * (DEQUANTIZE_VEC + QUANTIZE_VEC) + 3 * FLOAT_LANES * vectors
        return batch * groups * (NORM_STATS + per_group * channel) + 3
    blocks, rest = divmod(per_group, INT8_LANES)
    if pixels < NHWC_FEATURE_MAP_THRESHOLD:
        # per group: the statistics, per channel scale = rstd * gamma and bias = -scale * mean +
        # beta (4); per pixel the group's channels in vectors of 32 and one by one
        pixel = blocks * INT8_LANES * per_element + rest * per_scalar
        return batch * groups * (NORM_STATS + 4 * per_group + pixels * pixel) + 3
    # per element its float sums of x and x * x (2); per group the threads' partial sums (2
    # per thread and channel) and the statistics; per channel scale and bias (4); per pixel
    # all channels in vectors of 32 and one by one
    blocks, rest = divmod(channels, INT8_LANES)
    pixel = blocks * INT8_LANES * per_element + rest * per_scalar
    statistics = batch * groups * (2 * threads * per_group + NORM_STATS)
    return 2 * numel(x) + statistics + 4 * batch * channels + batch * pixels * pixel + 3


@register_rule(["quantized.group_norm"], reads=_norm_layout)
def qgroup_norm_rule(
    x: tuple[int, ...],
    num_groups: int = 1,
    *args: Any,
    channels_last: bool = False,
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """``quantized_group_norm_impl``: groups of ``N = C / G x H x W`` values, ``M = B x G``.

    Contiguous input (``quantized_normalize_kernel``, affine per channel): per group the
    statistics (11: ``sum / N``, ``- zp``, ``max(sumsq / N - mean**2, 0)``, ``scale / sqrt(var *
    scale * scale + eps)``; the sums are integer); per channel ``rstd * gamma`` (1), its ``H x
    W`` values in vectors of 32: dequantize (2), ``(x - mean) * gamma_p + beta`` (3), quantize
    (3); a rest of 1 to 31 values loaded into one vector, dequantized and quantized whole (5 x
    32) and the 3 on each of its float vectors holding values. Channels-last input
    (``quantized_groupnorm_nhwc_kernel``), ``H x W < 512``: per group the statistics, per
    channel ``scale = rstd * gamma`` and ``bias = -scale * mean + beta`` (4), per pixel the
    group's channels in vectors of 32 (7 each: dequantize, ``x * scale + bias``, quantize) and
    one by one (9: ``dequantize_val``, 2, ``quantize_val``); ``H x W >= 512``: per element the
    float sums of ``x`` and ``x * x`` (2), per group the threads' partial sums (2 per thread
    and channel) and the statistics, per channel 4, per pixel all ``C`` channels as above.
    Per call ``1 / y_scale`` and ``1.0 * -zp`` (3).
    """
    return _group_norm(x, int(num_groups), channels_last, threads)


@register_rule(["quantized.instance_norm"], reads=_norm_layout)
def qinstance_norm_rule(
    x: tuple[int, ...], *args: Any, channels_last: bool = False, threads: int = 1, **kwargs: Any
) -> int:
    """``quantized_instance_norm_impl``: ``quantized.group_norm`` with one group per channel."""
    return _group_norm(x, x[1] if len(x) > 1 else 1, channels_last, threads)


def _pool3d_args(out_shape: Any) -> tuple[int, int, int, int, int]:
    out = first_shape(out_shape)
    if len(out) == 4:
        out = (1, *out)
    b, c, d, h, w = out[-5:]
    return b, c, d, h, w


@_metadata
def _channels_last_3d(x: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"channels_last": bool}``: whether the input takes the kernel's NDHWC fast path.

    ``_adaptive_avg_pool`` asks ``is_contiguous(ChannelsLast)`` or ``(ChannelsLast3d)``: the
    first holds for 4-d (unbatched) inputs only, the second for 5-d ones.
    """
    torch = _torch()
    try:
        formats = {4: torch.channels_last, 5: torch.channels_last_3d}
        fmt = formats.get(x.dim())
        return {"channels_last": fmt is not None and x.is_contiguous(memory_format=fmt)}
    except (AttributeError, RuntimeError, TypeError):
        return {}


@on_quantized(["aten.avg_pool3d"])
def avg_pool3d_quantized_rule(x: Any, *args: Any, out_shape: Any = (), **kwargs: Any) -> int:
    """``q_avg_pool3d``: always ``qavg_pool3d_nhwc_kernel`` on a channels-last copy.

    As the channels-last ``avg_pool2d``: per output voxel ``input_scale / output_scale /
    divide_factor`` (2); per element of the channel blocks of 8 ``QuantizeAvx2`` (3); per
    channel past them ``1 / multiplier`` and the scalar ``quantize_val`` (7).
    """
    b, c, d, h, w = _pool3d_args(out_shape)
    return b * d * h * w * (2 + _nhwc_channels(c, FLOAT_LANES * QUANTIZE_VEC, 1 + QUANTIZE_SCALAR))


@on_quantized(["aten._adaptive_avg_pool3d"], reads=_channels_last_3d)
def adaptive_avg_pool3d_quantized_rule(
    x: Any, *args: Any, out_shape: Any = (), channels_last: bool = False, **kwargs: Any
) -> int:
    """As ``_adaptive_avg_pool2d``'s rule with a depth: ``B C oD (5 + oH (5 + 7 oW))``.

    Contiguous input (``adaptive_avg_pool_single_out_frame``): per channel of the batch and
    output depth the depth bounds (4) and ``1 / kD`` (1); per output row the height bounds (4)
    and ``/ kH`` (1); per output element the width bounds (4), ``/ kW`` (1), ``sum * kDHWr``
    (1), ``nearbyint`` (1). Channels last 3-d (``_qadaptive_avg_pool_kernel``): per batch
    element and output depth the depth bounds (4), per row 4, per output voxel the width bounds
    (4) and the multiplier (2), per block of 8 channels ``1 / multiplier`` and FBGEMM's vector
    ``Quantize`` (2 + 3 per element), per channel past them 7.
    """
    b, c, d, h, w = _pool3d_args(out_shape)
    if channels_last:
        pixel = 6 + _nhwc_channels(c, 2 + FLOAT_LANES * QUANTIZE_VEC, 1 + QUANTIZE_SCALAR)
        return b * d * (4 + h * (4 + w * pixel))
    return b * c * d * (5 + h * (5 + 7 * w))
