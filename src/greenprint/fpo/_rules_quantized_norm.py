"""int8 FPO rules of the normalisations: layer, batch, group and instance norm.

``quantized_normalize_kernel``, its NHWC twin and ``q_batch_norm_kernel`` compute their
statistics and affine parameters in float and requantize each value; the conventions and the
AVX2 costs are those of :mod:`greenprint.fpo._rules_quantized`.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import numel, register_rule
from greenprint.fpo._rules_quantized_base import (
    DEQUANTIZE_VEC,
    FLOAT_LANES,
    INT8_LANES,
    QUANTIZE_SCALAR,
    QUANTIZE_VEC,
    _metadata,
    _torch,
)

__all__: list[str] = []


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
