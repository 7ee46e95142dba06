"""FPO rules for int8 inference: quantize, dequantize, and the float steps of the int8 kernels.

An int8 model (``torch.ao.quantization``'s dynamic or static quantization) still does floating
point work: it quantizes float activations, its int8 kernels turn their int32 sums back into
float or into int8 with float scales (and add a float bias), and it dequantizes its outputs.
The counts follow the kernels of PyTorch's x86 CPU builds (FBGEMM, which the ``x86`` and
``fbgemm`` quantized engines run), read from their source: ATen's ``qlinear_dynamic.cpp``,
``qlinear.cpp``, ``QuantUtils.h`` and ``QuantizedOpKernels.cpp``; FBGEMM's
``QuantUtilsAvx2.cc`` and ``PackAWithQuantRowOffset.cc``. Linears and convolutions whose packed
weights PyTorch runs on oneDNN's kernels instead (the ``onednn`` engine; the ``x86`` engine's
convolutions with symmetric weights on an AVX-512 VNNI CPU) are counted as FBGEMM's too, and the
count's assumptions say so (``"onednn_int8"``: ``_rules_quantized_base.runs_onednn``).

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

This module holds quantize and dequantize, the linear, convolution and matmul kernels (int8,
transposed, fp16, dynamic) and the embedding bags; the elementwise kernels, pooling and the
normalisations, the dynamic recurrent layers, and quantizing per channel or dynamically and
packing embedding tables are in its sibling modules (``_rules_quantized_elementwise``, ``_pool``,
``_norm``, ``_rnn``, ``_convert``, sharing ``_rules_quantized_base``), which it loads.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo import (  # the families register their rules when imported
    _rules_quantized_convert,
    _rules_quantized_elementwise,
    _rules_quantized_norm,
    _rules_quantized_pool,
    _rules_quantized_rnn,
)
from greenprint.fpo._registry import first_shape, numel, register_rule, shapes_in, zero
from greenprint.fpo._rules_quantized_base import (
    CHOOSE_QPARAMS,
    DYNAMIC_INPUT_PER_ELEMENT,
    DYNAMIC_PER_CALL,
    QUANTIZE_PER_ELEMENT,
    onednn_assumed,
)
from greenprint.fpo._rules_quantized_base import ON_QUANTIZED as ON_QUANTIZED  # the counter's

__all__: list[str] = []


def _packed_weights(x: Any, packed: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """What the packed weights hold: ``{"bias": bool, "per_channel": bool}`` (their ``unpack()``).

    Read from the real call (a ``LinearPackedParamsBase`` or ``Conv*dPackedParamsBase``);
    without it the rules assume a bias and the default qconfigs' weights (per tensor for
    dynamic int8, per channel for the x86 engine's static int8). When PyTorch runs the weights
    on oneDNN's kernels (``_rules_quantized_base.runs_onednn``), the count, FBGEMM's, says so
    (``FPOResult.assumptions["onednn_int8"]``).
    """
    try:
        weight, bias = packed.unpack()[:2]
    except (RuntimeError, AttributeError, TypeError, ValueError):  # weights released (mobile)
        return {}
    return {
        "bias": bias is not None,
        "per_channel": str(weight.qscheme()).startswith("torch.per_channel"),
        **onednn_assumed(packed, weight),
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
    [
        "aten.quantized_max_pool1d",
        "aten.quantized_max_pool2d",
        "aten.quantized_max_pool3d",
        # the quantized namespace's (PT2E/inductor x86 graphs, also on plain uint8 tensors):
        # ATen's QMaxPool_arr_args runs the same kernels, quantized_max_pool1d/2d
        "quantized.max_pool1d",
        "quantized.max_pool2d",
    ]
)(zero)  # compares of uint8 values, the output keeping the input's qparams: integer work


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

    FBGEMM's ``fbgemmConv`` ends with the same ``ReQuantizeOutput``. The ``x86`` engine runs
    some convolutions on oneDNN instead (symmetric weights on an AVX-512 VNNI CPU:
    ``_rules_quantized_base.onednn_convolution``), whose epilogue works on 16-lane vectors
    with the output channels padded to them and applies only the scales and zero points that
    are not 1 and 0: not derived, so such a call is counted as FBGEMM's and the count's
    assumptions say so (``"onednn_int8"``).
    """
    out = first_shape(out_shape)
    return _static(numel(out), out[1] if len(out) > 1 else 1, bias, per_channel)


register_rule(["quantized.linear", "quantized.linear_relu"], reads=_packed_weights)(_static_linear)
register_rule(
    [f"quantized.conv{d}d{relu}" for d in (1, 2, 3) for relu in ("", "_relu")],
    reads=_packed_weights,
)(_static_conv)
# FBGEMM's transposed convolutions (fbgemmConv on a transposed conv_param_t) end with the same
# ReQuantizeOutput, per output element and output channel
register_rule([f"quantized.conv_transpose{d}d" for d in (1, 2, 3)], reads=_packed_weights)(
    _static_conv
)


def _dynamic_conv(
    x: Any, *args: Any, out_shape: Any = (), bias: bool = True, per_channel: bool = True, **kw: Any
) -> int:
    """Dynamic int8 convolution: ``5 N_in + 23`` + the static kernel + ``N_out``.

    ATen quantizes the float input to uint8 as a step of its own: its min and max (FBGEMM's
    ``FindMinMax``, or oneDNN's ``min()`` and ``max()``: 2 per element),
    ``ChooseQuantizationParams`` (22), ``at::quantize_per_tensor`` (``3N + 1``); then runs the
    static kernel to the input's scale and zero point (as ``quantized.conv2d``) and
    ``at::dequantize``-s its output (1 per element). Bias and weight scheme are read from the
    packed weights.
    """
    inputs = numel(x) if isinstance(x, tuple) else 0
    static = _static_conv(x, out_shape=out_shape, bias=bias, per_channel=per_channel)
    quantize = QUANTIZE_PER_ELEMENT * inputs + 1
    return 2 * inputs + CHOOSE_QPARAMS + quantize + static + numel(first_shape(out_shape))


register_rule(
    [f"quantized.conv{kind}{d}d_dynamic" for kind in ("", "_transpose") for d in (1, 2, 3)],
    reads=_packed_weights,
)(_dynamic_conv)


def _fp16_bias(x: Any, packed: Any, *args: Any, **kwargs: Any) -> dict[str, bool]:
    """``{"bias": bool}``: whether the fp16 packed weights hold a bias (their ``unpack()``)."""
    try:
        return {"bias": packed.unpack()[1] is not None}
    except (RuntimeError, AttributeError, TypeError, ValueError, IndexError):
        return {}


def _fp16_linear(x: tuple[int, ...], out_shape: Any, bias: bool, relu: bool) -> int:
    outputs = numel(first_shape(out_shape))
    return 2 * outputs * (x[-1] if x else 0) + (int(bias) + int(relu)) * outputs


@register_rule(["quantized.linear_dynamic_fp16"], reads=_fp16_bias)
def linear_dynamic_fp16_rule(
    x: tuple[int, ...], *args: Any, out_shape: Any = (), bias: bool = True, **kwargs: Any
) -> int:
    """``2MNK + MN``: ``quantize_dynamic(..., dtype=torch.float16)``'s linear (FBGEMM).

    ``cblas_gemm_compute`` multiplies the float input by the fp16 weights, widened to float in
    registers (0), with float multiply-adds: ``2K`` per output element (``beta = 0``); then
    ``output.add_(bias)`` (1 per output element; 0 without a bias, read from the packed weights).
    Nothing is quantized: these are float products, counted in full.
    """
    return _fp16_linear(x, out_shape, bias, relu=False)


@register_rule(["quantized.linear_relu_dynamic_fp16"], reads=_fp16_bias)
def linear_relu_dynamic_fp16_rule(
    x: tuple[int, ...], *args: Any, out_shape: Any = (), bias: bool = True, **kwargs: Any
) -> int:
    """As ``quantized.linear_dynamic_fp16``, + 1 per output element: the ReLU's float max."""
    return _fp16_linear(x, out_shape, bias, relu=True)


def _embedding_bag_byte(
    weight: Any,
    indices: Any,
    offsets: Any = None,
    scale_grad_by_freq: bool = False,
    mode: int = 0,
    pruned_weights: bool = False,
    per_sample_weights: Any = None,
    *args: Any,
    out_shape: Any = (),
    **kwargs: Any,
) -> int:
    """``3 D I`` (+ ``2 I`` with per-sample weights): FBGEMM's ``EmbeddingSpMDM`` (8, 4, 2 bits).

    Each of the ``I`` indices adds its row of ``D`` uint8 values to its bag's float sum: ``out
    + bias`` and ``fma(scale, q, .)`` per value (3), with the row's float scale and bias; with
    per-sample weights ``scale * w`` and ``bias * w`` per index (2). ATen asks the kernel for
    no normalisation (``mode`` 1, mean, gives the sum too: read on PyTorch 2.13).
    ``embedding_byte`` is one index per bag.
    """
    out = first_shape(out_shape)
    width = out[-1] if out else 0
    count = numel(indices) if isinstance(indices, (tuple, list)) else 0
    return 3 * width * count + (2 * count if per_sample_weights is not None else 0)


# the 4-bit and 2-bit bags (EmbeddingSpMDMNBit; nnq.EmbeddingBag with quint4x2 weights) unpack
# each value's bits on integers and take the same float steps with their fp16 scale and bias
register_rule(
    [
        "quantized.embedding_byte",
        "quantized.embedding_bag_byte",
        "quantized.embedding_bag_byte_rowwise_offsets",
        "quantized.embedding_4bit",
        "quantized.embedding_bag_4bit",
        "quantized.embedding_bag_4bit_rowwise_offsets",
        "quantized.embedding_bag_2bit_rowwise_offsets",
    ]
)(_embedding_bag_byte)


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
        # returns its input, in training too (qdropout.cpp)
        "quantized.dropout",
        # copies the packed rows into a quantized tensor
        "quantized.embedding_bag_unpack",
        *(
            f"quantized.conv{kind}{d}d_{step}"
            for kind in ("", "_transpose")
            for d in (1, 2, 3)
            for step in ("prepack", "unpack")
        ),
    }
)
register_rule(sorted(INTEGER_INT8_OPS))(zero)


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


_FAMILIES = (
    _rules_quantized_convert,
    _rules_quantized_elementwise,
    _rules_quantized_norm,
    _rules_quantized_pool,
    _rules_quantized_rnn,
)  # loaded for effect
