"""int8 FPO rules of the ops that turn float tensors into int8 ones and back, outside a kernel.

Quantizing per channel and dynamically (``torch.quantize_per_channel``,
``torch.quantize_per_tensor_dynamic``), and FBGEMM's row-wise embedding formats: packing a float
embedding table into 8-, 4- or 2-bit rows with a scale and a bias each
(``quantized.embedding_bag_byte_prepack``, ``_4bit_prepack``, ``_2bit_prepack``), unpacking
them back to floats, and packing an already quantized table (``quantized.embedding_bag_prepack``,
what ``nnq.EmbeddingBag`` stores). The counts follow ATen's ``QuantizedOpKernels.cpp``,
``AffineQuantizerBase.cpp``, ``QTensor.cpp``, ``qembeddingbag_prepack.cpp`` and
``qembeddingbag_unpack.cpp``, and FBGEMM's ``QuantUtilsAvx2.cc`` (the AVX2 kernels x86 builds
run). Conventions as in :mod:`greenprint.fpo._rules_quantized`; converting between float and
fp16 counts 0, as the float rule of ``.to(torch.float16)`` does.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_quantized_base import (
    CHOOSE_QPARAMS,
    FLOAT_LANES,
    INT8_LANES,
    QUANTIZE_PER_ELEMENT,
    QUANTIZE_SCALAR,
    _metadata,
)

__all__: list[str] = []

#: per element of ``quantize_val_float_qparams`` (float zero points): ``scale == 0``, ``1 /
#: scale``, ``x * inv_scale + zero_point`` (2) and ``lrintf``; the clamp is on integers
QUANTIZE_FLOAT_QPARAMS = 5
#: per row of FBGEMM's row-wise min and max (AVX2): the 8-lane vectors' ``min`` and ``max`` are 2
#: per element of the row; then each buffer of 8 lanes is reduced into ``FLT_MAX`` and
#: ``-FLT_MAX`` one lane at a time (2 x 8)
ROW_MIN_MAX_REDUCE = 2 * FLOAT_LANES
#: per row of ``FloatOrHalfToFused8BitRowwiseQuantizedSBFloatAvx2``, from the min and max:
#: ``range = max - min``, ``range / 255``, ``range + 1e-8`` and ``255 / (range + 1e-8)``
BYTE_ROW_PARAMS = 4
#: per row of ``FloatOrHalfToFusedNBitRowwiseQuantizedSBHalfAvx2``: ``range = max - min``, ``range
#: == 0``, ``range / (2^bits - 1)``, the fp16 ``scale == 0``, ``1 / scale`` and ``isinf``
NBIT_ROW_PARAMS = 6
#: per element of the row-wise kernels: ``(x - min) * inverse_scale`` rounded to an integer (3)
ROW_QUANTIZE = 3


@_metadata
def _zero_points_dtype(
    self: Any, scales: Any, zero_points: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """``{"float_qparams": bool}``: whether the zero points are float (the float-qparams kernel)."""
    try:
        return {"float_qparams": bool(zero_points.is_floating_point())}
    except AttributeError:
        return {}


@register_rule(["aten.quantize_per_channel"], reads=_zero_points_dtype)
def quantize_per_channel_rule(
    self: tuple[int, ...], *args: Any, float_qparams: bool = False, **kwargs: Any
) -> int:
    """``6N``; ``5N`` with float zero points: each element's ``quantize_val``, one by one.

    x86 builds run the generic loop of ``quantize_tensor_per_channel_impl`` (the vector one is
    ARM's): ``quantize_val`` per element, FBGEMM's scalar ``Quantize`` (``1 / scale``, ``x *
    inv_scale``, ``nearbyint``, ``+ zero_point``, the clamp in double: 6). Float zero points
    (``per_channel_affine_float_qparams``, the embedding weights' scheme; ``quint4x2`` too) run
    ``quantize_val_float_qparams``: ``scale == 0``, ``1 / scale``, ``x * inv + zp``,
    ``lrintf`` (5; the clamp on integers). The zero points' dtype is read from the call.
    """
    return (QUANTIZE_FLOAT_QPARAMS if float_qparams else QUANTIZE_SCALAR) * numel(self)


@register_rule(["aten.quantize_per_tensor_dynamic"])
def quantize_per_tensor_dynamic_rule(
    self: tuple[int, ...], dtype: Any = None, *args: Any, **kwargs: Any
) -> int:
    """``5N + 23``: the input's min and max, ``ChooseQuantizationParams``, ``quantize_per_tensor``.

    ``min()`` and ``max()`` (1 compare per element each, as their float rules),
    ``ChooseQuantizationParams`` (22, see ``CHOOSE_QPARAMS``), then ``quantize_per_tensor``
    (``3N + 1``). ``dtype=torch.float16`` is a conversion (0).
    """
    if "float16" in str(dtype) or "Half" in str(dtype):
        return 0
    n = numel(self)
    return 2 * n + CHOOSE_QPARAMS + QUANTIZE_PER_ELEMENT * n + 1


def _rows(weight: Any) -> tuple[int, int]:
    """``(rows, columns)`` of a table whose last dim is a row (batched tables: all rows)."""
    shape = first_shape(weight)
    columns = shape[-1] if shape else 0
    return (numel(shape) // columns if columns else 0), columns


@register_rule(["quantized.embedding_bag_byte_prepack"])
def embedding_bag_byte_prepack_rule(weight: Any, *args: Any, **kwargs: Any) -> int:
    """``R (5D + 20)`` for ``R`` rows of ``D`` values (``FloatOrHalfToFused8BitRowwise...``).

    Per row: its min and max (2 per value, + 16 to reduce the two 8-lane vectors), ``max -
    min``, the scale ``range / 255``, ``255 / (range + 1e-8)`` (4); per value ``(x - min) *
    inverse_scale`` rounded (3; vectors of 32 and 8, the rest one by one, the same steps). An
    fp16 table is widened (0).
    """
    rows, columns = _rows(weight)
    return rows * ((2 + ROW_QUANTIZE) * columns + ROW_MIN_MAX_REDUCE + BYTE_ROW_PARAMS)


@register_rule(["quantized.embedding_bag_byte_prepack_with_rowwise_min_max"])
def embedding_bag_byte_prepack_min_max_rule(weight: Any, *args: Any, **kwargs: Any) -> int:
    """``R (3D + 4)``: as ``embedding_bag_byte_prepack`` with each row's min and max given."""
    rows, columns = _rows(weight)
    return rows * (ROW_QUANTIZE * columns + BYTE_ROW_PARAMS)


def _nbit_prepack(weight: Any, given_min_max: bool) -> int:
    rows, columns = _rows(weight)
    min_max = 0 if given_min_max else 2 * columns + ROW_MIN_MAX_REDUCE
    return rows * (min_max + NBIT_ROW_PARAMS + ROW_QUANTIZE * columns)


@register_rule(["quantized.embedding_bag_4bit_prepack", "quantized.embedding_bag_2bit_prepack"])
def embedding_bag_nbit_prepack_rule(weight: Any, *args: Any, **kwargs: Any) -> int:
    """``R (5D + 22)``: FBGEMM's ``FloatOrHalfToFusedNBitRowwiseQuantizedSBHalfAvx2`` (4, 2 bits).

    Per row: min and max (``2D + 16``, as the 8-bit kernel), the fp16 bias ``min`` (a
    conversion, 0), ``max - min``, ``range == 0``, ``range / 15`` (or ``/ 3``), the fp16 scale's
    ``== 0``, ``1 / scale`` and ``isinf`` (6); per value ``(x - min) * inverse_scale`` rounded
    (3; the clamp to 4 or 2 bits and the packing are integer). ``optimized_qparams=True`` runs
    ATen's scalar loop after ``choose_qparams_optimized``'s greedy search of each row's range,
    whose passes over the row are not counted: its count is this one, a lower bound.
    """
    return _nbit_prepack(weight, given_min_max=False)


@register_rule(
    [
        "quantized.embedding_bag_4bit_prepack_with_rowwise_min_max",
        "quantized.embedding_bag_2bit_prepack_with_rowwise_min_max",
    ]
)
def embedding_bag_nbit_prepack_min_max_rule(weight: Any, *args: Any, **kwargs: Any) -> int:
    """``R (3D + 6)``: as ``embedding_bag_4bit_prepack`` with each row's min and max given."""
    return _nbit_prepack(weight, given_min_max=True)


@register_rule(["quantized.embedding_bag_byte_unpack"])
def embedding_bag_byte_unpack_rule(packed: Any, *args: Any, out_shape: Any = (), **kw: Any) -> int:
    """``2 R D``: ``q * scale + bias`` per value with its row's float scale and bias.

    FBGEMM's ``Fused8BitRowwiseQuantizedSBFloatToFloatOrHalfAvx2``: a fused multiply-add per
    value (2) in vectors of 8, the rest ``q * scale + bias`` in double (2).
    """
    return 2 * numel(first_shape(out_shape))


@register_rule(["quantized.embedding_bag_4bit_unpack", "quantized.embedding_bag_2bit_unpack"])
def embedding_bag_nbit_unpack_rule(packed: Any, *args: Any, out_shape: Any = (), **kw: Any) -> int:
    """``64 R ceil(D / 32)``: per row, blocks of 32 values, a partial one computed whole.

    FBGEMM's ``FusedNBitRowwiseQuantizedSBHalfToFloatOrHalfAvx2`` widens the fp16 scale and bias
    (0) and computes ``fmadd(scale, q, bias)`` (2) on four 8-lane vectors per block of 32; the
    row's last ``D mod 32`` values are one more such block, all 32 lanes computed, their store
    masked.
    """
    rows, columns = _rows(first_shape(out_shape))
    return 2 * INT8_LANES * rows * -(-columns // INT8_LANES)


@register_rule(["quantized.embedding_bag_prepack"])
def embedding_bag_prepack_rule(qweight: Any, *args: Any, **kwargs: Any) -> int:
    """``2R``: ``nnq.EmbeddingBag``'s packing of a quantized table (``PackedEmbeddingBagWeight``).

    The values are copied (0); per row the bias ``zero_point * scale * -1`` (2) from the
    float-qparams scheme's scale and zero point.
    """
    rows, _ = _rows(qweight)
    return 2 * rows
