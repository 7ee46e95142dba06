"""int8 FPO rules of pooling, mean, upsampling and concatenation of quantized tensors.

The ``aten`` ops' QuantizedCPU kernels (:data:`ON_QUANTIZED`) scale integer window sums by float
multipliers or dequantize and requantize; the conventions and the AVX2 costs are those of
:mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_quantized_base import (
    DEQUANTIZE_VEC,
    FLOAT_LANES,
    INT8_LANES,
    QUANTIZE_PER_ELEMENT,
    QUANTIZE_SCALAR,
    QUANTIZE_VEC,
    _channels_last,
    _metadata,
    _nhwc_channels,
    _pool_args,
    _torch,
    on_quantized,
)

__all__: list[str] = []


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
    return _cat_layout(tensors, dim, scale, zero_point, relu=False)


@_metadata
def _cat_relu_qparams(
    tensors: Any, dim: int = 0, scale: Any = None, zero_point: Any = None, **kw: Any
) -> Any:
    """As ``_cat_qparams``; with a fused ReLU the NHWC kernel rescales every input (no copy)."""
    return _cat_layout(tensors, dim, scale, zero_point, relu=True)


def _cat_layout(tensors: Any, dim: int, scale: Any, zero_point: Any, relu: bool) -> Any:
    if hasattr(scale, "q_scale"):  # the _out forms: the output tensor's qparams
        scale, zero_point = scale.q_scale(), scale.q_zero_point()
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
            if fast and (relu or not (t.q_scale() == out_scale and t.q_zero_point() == out_zp))
        ]
    except (AttributeError, IndexError, RuntimeError, TypeError, ValueError, ZeroDivisionError):
        return {}
    return {"fast": fast, "rescaled": rescaled}


def _qcat(out_shape: Any, fast: bool, rescaled: list[tuple[int, int]], relu: bool = False) -> int:
    if not fast:
        # each input dequantized (1 per element), the float cat (0), quantize_per_tensor
        return (1 + QUANTIZE_PER_ELEMENT) * numel(first_shape(out_shape)) + 1
    # qcat_nhwc_kernel: an input with the output's qparams is copied (memcpy, 0); another is
    # rescaled pixel by pixel over its channels
    return 1 + sum(_qcat_pixel(channels, relu) * pixels for channels, pixels in rescaled)


def _qcat_pixel(channels: int, relu: bool = False) -> int:
    """Float work of ``qcat_nhwc_kernel`` on one pixel of an input rescaled, by its channels.

    A fused ReLU (``qcat_relu_nhwc``) adds the float max of each value computed in a float
    vector (the whole 32 of a block, the float vectors holding values of a rest) and of each
    value past them.
    """
    blocks, rest = divmod(channels, INT8_LANES)
    # blocks of 32: scale * -zp once (2), dequantize (2), the ReLU's max and quantize (3) per
    # channel
    per_lane = DEQUANTIZE_VEC + int(relu) + QUANTIZE_VEC
    work = (2 + blocks * INT8_LANES * per_lane) if blocks else 0
    if rest >= FLOAT_LANES:
        # 8 to 31 more: scale * -zp (2), one 32-lane buffer dequantized and quantized whole,
        # the ReLU on the float vectors holding values
        work += 2 + INT8_LANES * (DEQUANTIZE_VEC + QUANTIZE_VEC)
        work += int(relu) * (rest // FLOAT_LANES) * FLOAT_LANES
        rest %= FLOAT_LANES
    # past them one by one: dequantize_val (1), the ReLU's max and quantize_val (6)
    return work + rest * (1 + int(relu) + QUANTIZE_SCALAR)


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


register_rule(["quantized.cat", "quantized.cat_out"], reads=_cat_qparams)(cat_quantized_rule)


@register_rule(["quantized.cat_relu", "quantized.cat_relu_out"], reads=_cat_relu_qparams)
def qcat_relu_rule(
    tensors: Any, *args: Any, out_shape: Any = (), fast: bool = False, rescaled: Any = (), **kw: Any
) -> int:
    """``4N + 1`` as ``quantized.cat`` (the ReLU clamps the quantized output on integers).

    Channels last along dim 1 (``qcat_relu_nhwc``): every input is rescaled, none copied, as
    ``quantized.cat``'s rescaled inputs, + the float max of each value computed in a float
    vector and of each one past them.
    """
    return _qcat(out_shape, fast, list(rescaled), relu=True)


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
