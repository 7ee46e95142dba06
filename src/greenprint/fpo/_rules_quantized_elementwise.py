"""int8 FPO rules of the elementwise QuantizedCPU kernels: activations, add, mul, softmax, ELU.

Each dequantizes, computes in float and requantizes (or requantizes an int32 result); the
conventions and the AVX2 costs are those of :mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_nn import softmax_fpo
from greenprint.fpo._rules_quantized_base import (
    DEQUANTIZE_VEC,
    FLOAT_LANES,
    QUANTIZE_PER_ELEMENT,
    QUANTIZE_SCALAR,
    QUANTIZE_VEC,
    _metadata,
    _torch,
    on_quantized,
)

__all__: list[str] = []


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
@register_rule(["quantized.clamp"])
def clamp_quantized_rule(
    x: Any, min: Any = None, max: Any = None, *args: Any, **kwargs: Any
) -> int:
    """6 per bound given: ``qclamp_kernel`` and its one-bound forms.

    Each float bound is quantized once (``quantize_val``, 6); the int8 values are clamped on
    integers (0). ``quantized.clamp`` (the TorchScript op) runs the same ``quantized_clamp``.
    """
    return QUANTIZE_SCALAR * ((min is not None) + (max is not None))


@on_quantized(["aten.hardtanh", "aten.hardtanh_"])
def hardtanh_quantized_rule(x: Any, *args: Any, **kwargs: Any) -> int:
    """12: ``hardtanh_quantized_cpu`` is the clamp of both bounds (``relu6`` too).

    The in-place form (``F.hardtanh(..., inplace=True)``, ``F.relu6(..., inplace=True)``)
    clamps to a new tensor and copies its integers back (0).
    """
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


#: the overloads of ``quantized.add`` and ``quantized.mul`` that take a Python number
_SCALAR_OVERLOADS = ("Scalar", "Scalar2", "Scalar_out")


@_metadata
def _add_scalar_branch(qa: Any, other: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"requantized": bool}``: whether adding ``other`` leaves the int8 range (then rescaled).

    The ``Scalar2`` overloads take the scalar first.
    """
    if not hasattr(qa, "dtype"):
        qa, other = other, qa
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
    [
        *(f"quantized.{op}.{o}" for op in ("add", "add_relu") for o in _SCALAR_OVERLOADS),
        # QFunctional.add_scalar's op and its fused and out forms: the same _add_scalar_out
        *(f"quantized.add_scalar{form}" for form in ("", "_relu", "_out", "_relu_out")),
    ],
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


def _mul_scalar_sign(qa: Any, other: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"sign": -1, 0 or 1}``: the branch of ``_mul_scalar_out`` the scalar takes."""
    if hasattr(other, "dtype") and not hasattr(qa, "dtype"):
        qa, other = other, qa  # Scalar2: the scalar first
    try:
        value = float(other)
    except (TypeError, ValueError, RuntimeError):
        return {}
    return {"sign": (value > 0) - (value < 0)}


@register_rule(
    [
        *(f"quantized.{op}.{o}" for op in ("mul", "mul_relu") for o in _SCALAR_OVERLOADS),
        *(f"quantized.mul_scalar{form}" for form in ("", "_relu", "_out", "_relu_out")),
    ],
    reads=_mul_scalar_sign,
)
def qmul_scalar_rule(qa: Any, *args: Any, sign: int = 1, **kwargs: Any) -> int:
    """2, or 4 for a negative scalar: ``_mul_scalar_out`` (``QFunctional.mul_scalar``).

    No float work per element: a positive scalar keeps the int8 values (a copy, a fused ReLU
    clamps integers) with the scale ``c * scale`` (``c > 0`` and the multiply: 2); 0 sets them
    to 0 (the compares ``> 0`` and ``== 0``: 2); a negative one flips them on integers with the
    scale ``|c| * scale`` (the two compares, ``abs``, the multiply: 4). The sign is read from
    the call (a traced scalar tensor too).
    """
    return 4 if sign < 0 else 2


@register_rule(["quantized.sigmoid"])
def qsigmoid_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``9N + 1``: ``nnq.Sigmoid``'s op runs ``qsigmoid_kernel`` to its given qparams.

    As ``torch.sigmoid`` on ``quint8`` (the same kernel, there to the fixed scale 1/256):
    ``(q - zp) * scale`` (2), ``neg``, ``exp``, ``1 +``, ``reciprocal`` (4), quantize (3); per
    call ``1 / output_scale`` (1).
    """
    return sigmoid_quantized_rule(x)


@register_rule(["quantized.relu6"])
def qrelu6_rule(x: Any, *args: Any, **kwargs: Any) -> int:
    """6: ``qrelu6_kernel`` (``nnq.ReLU6``, in place or not) quantizes 6.0 once (``quantize_val``).

    The values are clamped between the zero point and the quantized 6 on integers (0).
    """
    return QUANTIZE_SCALAR


@register_rule(["quantized.threshold"])
def qthreshold_rule(x: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``6N + 3``: ``qthreshold_kernel``, to the input's qparams.

    Per element: dequantize (2), ``x > threshold`` (1; the blend with ``value`` picks, 0),
    quantize (3); per call ``scale * -zp`` (2) and ``1 / output_scale`` (1).
    """
    return (DEQUANTIZE_VEC + 1 + QUANTIZE_VEC) * numel(x) + 3


@register_rule(["quantized.prelu"])
def qprelu_rule(x: Any, *args: Any, out_shape: Any = (), **kwargs: Any) -> int:
    """``2N + 9``: ``qprelu_out_kernel`` (``nnq.PReLU``), ``N`` output elements.

    The values split at the zero point, shifted and multiplied by the quantized 1 or the
    quantized slope on integers (0), then ``requantize_from_int`` (times the multiplier,
    rounded: 2). Per call ``1 / out_scale`` (1), ``multiplier = in_scale * w_scale * inv`` (2)
    and the quantized 1 (``quantize_val(w_scale, w_zp, 1.0)``: 6).
    """
    return 2 * numel(first_shape(out_shape)) + 1 + 2 + QUANTIZE_SCALAR


@register_rule(["quantized.softmax"])
def qsoftmax_rule(x: tuple[int, ...], dim: Any = -1, *args: Any, **kwargs: Any) -> int:
    """``9N + 1 - rows``: ``qsoftmax_naive``, the x86 engines' kernel (QNNPACK's aside).

    ``at::dequantize`` (N), the float ``softmax`` (``5N - rows``, its rule: 5N in earlier
    versions), ``quantize_per_tensor`` to the given qparams (``3N + 1``).
    """
    n = numel(x)
    return n + softmax_fpo(x, dim) + QUANTIZE_PER_ELEMENT * n + 1


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
