"""FPO rules for antialiased resizes: ``_upsample_{bilinear,bicubic,lanczos}2d_aa`` and backward.

The filter is stretched by the scale when downsampling. Counted as ATen's CPU kernel
(``upsample_separable_Nd_kernel_impl``, one pass per resized dimension) and, for bilinear and
bicubic on CUDA tensors, its CUDA kernel (``upsample_gen2d_aa_out_frame``) compute them; the
scales, float32 rounding and tensor readers are those of :mod:`greenprint.fpo._rules_interp`.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_interp import (
    _f32,
    _kernel_device,
    _metadata_only,
    _same,
    _scale_fpo,
    _scale_value,
)

__all__: list[str] = []

# -- on CUDA tensors: ATen's CUDA kernel (cuda/UpSampleBilinear2d.cu), as in _rules_interp ------

_CUDA_THREADS = 1024
"""``maxThreadsPerBlock`` of the NVIDIA GPUs ATen's launch code asks (all since compute 2.0)."""
_CUDA_SHARED = 48 * 1024
"""``sharedMemPerBlock``, which sizes the antialiased forward's blocks (48 KiB on NVIDIA GPUs)."""
_CUDA_WARP = 32
_CUDA_MAX_GRID_Z = 65535


def _last_pow2(n: int) -> int:
    """``lastPow2``: the largest power of 2 not above ``n`` (1 for ``n <= 1``)."""
    return 1 << (max(int(n), 1).bit_length() - 1)


def _cuda_aa_filter(mode: str, x: float, round_: Any) -> tuple[float, int]:
    """``BilinearFilterFunctor`` / ``BicubicFilterFunctor`` at ``x``: ``(value, FPO)``.

    ``x < 0`` and, when true, ``x = -x`` (1 + 1); bilinear ``x < 1``, ``1 - x`` (2, else 1);
    bicubic ``x < 1``, ``((a + 2) x - (a + 3)) x x + 1`` (8), else ``x < 2``,
    ``(((x - 5) x + 8) x - 4) a`` (8), else 2.
    """
    fpo = 1
    if x < 0.0:
        x, fpo = -x, 2
    if mode == "bilinear":
        return (round_(1.0 - x), fpo + 2) if x < 1.0 else (0.0, fpo + 1)
    a = -0.5
    if x < 1.0:
        return round_(((a + 2) * x - (a + 3)) * x * x + 1), fpo + 8
    if x < 2.0:
        return round_((((x - 5) * x + 8) * x - 4) * a), fpo + 8
    return 0.0, fpo + 2


def _cuda_aa_support(mode: str, scale: float, round_: Any) -> tuple[float, int, int]:
    """One dimension's antialias support: ``(support, interp_size, FPO)``.

    ``scale >= 1`` (1), ``(size * 0.5) * scale`` (2, else ``size * 0.5``, 1), ``ceilf`` (1).
    """
    taps = _AA_TAPS[mode]
    if scale >= 1.0:
        support, fpo = round_(taps * 0.5 * scale), 4
    else:
        support, fpo = taps * 0.5, 3
    return support, 2 * math.ceil(support) + 1, fpo


def _cuda_aa_indices(
    mode: str, size_in: int, size_out: int, scale: float, support: float, round_: Any
) -> list[tuple[int, int]]:
    """Per output index ``(window, FPO of its weights)``, as ``_compute_weights`` computes them.

    The window (``_compute_weights_span``: ``center = scale * (i + 0.5)``, its ends ``center
    -/+ support + 0.5``; counted per thread, not here); the weights: ``xmin - center`` (1),
    ``invscale`` (the compare, and ``1 / scale`` when ``scale >= 1``), per tap the filter's
    argument ``(j + xmin_m_center + 0.5) * invscale`` (3), the filter and ``total_w += w``
    (1), then per tap the ``total_w != 0`` compare and, when not 0, ``w /= total_w`` (2).
    """
    out = []
    invscale = round_(1.0 / scale) if scale >= 1.0 else 1.0
    for i in range(size_out):
        center = round_(scale * round_(i + 0.5))
        xmin = max(int(round_(round_(center - support) + 0.5)), 0)
        xsize = min(int(round_(round_(center + support) + 0.5)), size_in) - xmin
        xmin_m_center = round_(xmin - center)
        fpo, total = 2 + (1 if scale >= 1.0 else 0), 0.0
        for j in range(max(xsize, 0)):
            arg = round_(round_(round_(j + xmin_m_center) + 0.5) * invscale)
            w, filter_fpo = _cuda_aa_filter(mode, arg, round_)
            fpo += 3 + filter_fpo + 1
            total = round_(total + w)
        fpo += max(xsize, 0) * (2 if total != 0.0 else 1)
        out.append((max(xsize, 0), fpo))
    return out


def _cuda_aa_fpo(
    planes: int,
    size_in: Any,
    size_out: Any,
    mode: str,
    align_corners: Any,
    scales: Any,
    itemsize: int,
    backward: bool,
) -> int:
    """FPO of an antialiased 2-D resize (or its backward) on CUDA.

    ``upsample_gen2d_aa_out_frame`` (``_backward_out_frame``): blocks of 32 x ``block_y``
    threads, one per output location, and ``min(65535, N * C)`` blocks along the planes, each
    block computing its own weights. On the host the scales, both windows' widths (``scale
    >= 1``, ``size * 0.5 * scale``, ``ceilf``) and, forward, the shared memory that sizes
    ``block_y`` (``sharedMemPerBlock * 1.0 / sizeof(scalar_t) - width * 32``: 3; ``block_y``
    the ``lastPow2`` of what fits, at most 8; backward always 8). Each thread: both supports
    and widths again, both windows (``_compute_weights_span``: 6 each); the threads of a
    block's first row compute their column's weights, those of its first column their row's
    (:func:`_cuda_aa_indices`). Forward per element: the window's ``ysize`` rows each
    interpolated along W (``2 xsize - 1``), then those along H (``2 ysize - 1``): no
    dimension is skipped. Backward: ``wx * wy * g`` added into each input of the window
    (``3 xsize ysize``); unchanged sizes are a copy per thread (the host's scales and widths
    only). ``itemsize``: bytes per element (float32 4), for the shared memory.
    """
    (h, w), (oh, ow) = (int(v) for v in size_in), (int(v) for v in size_out)
    double = itemsize == 8
    round_ = _same if double else _f32
    scale_h = _scale_value(h, oh, align_corners, scales[0], round_)
    scale_w = _scale_value(w, ow, align_corners, scales[1], round_)
    support_h, interp_h, sup_h = _cuda_aa_support(mode, scale_h, round_)
    support_w, interp_w, sup_w = _cuda_aa_support(mode, scale_w, round_)
    host = _scale_fpo(h, oh, align_corners, scales[0]) + _scale_fpo(w, ow, align_corners, scales[1])
    host += sup_h + sup_w
    if backward:
        block_y = min(_CUDA_THREADS, 256) // _CUDA_WARP
        if (h, w) == (oh, ow):
            return host
    else:
        host += 3
        numer = int(_CUDA_SHARED * 1.0 / itemsize - interp_w * _CUDA_WARP)
        denom = interp_h * (_CUDA_WARP + 1)
        block_y = min(min(_CUDA_THREADS, 256) // _CUDA_WARP, _last_pow2(numer // denom))
    grid_x, grid_y = -(-ow // _CUDA_WARP), -(-oh // block_y)
    grid_z = min(_CUDA_MAX_GRID_Z, planes)
    rows = _cuda_aa_indices(mode, h, oh, scale_h, support_h, round_)
    cols = _cuda_aa_indices(mode, w, ow, scale_w, support_w, round_)
    threads = oh * ow * grid_z * (sup_h + sup_w + 12)
    weights = grid_z * (grid_y * sum(f for _, f in cols) + grid_x * sum(f for _, f in rows))
    if backward:
        work = planes * 3 * sum(k for k, _ in rows) * sum(k for k, _ in cols)
    else:
        work = planes * sum(ky * (2 * kx - 1) + 2 * ky - 1 for ky, _ in rows for kx, _ in cols)
    return host + threads + weights + work


# -- antialiased interpolation: the filter is stretched by the scale when downsampling ---------

_AA_TAPS = {"bilinear": 2, "bicubic": 4, "lanczos": 6}
"""The filter's width in input samples at scale 1 (triangle, cubic, Lanczos-3)."""


def _aa_filter_fpo(mode: str, x: float) -> int:
    """One call of the antialias filter (``HelperInterp*::aa_filter``) at ``x``.

    Bilinear: ``|x|``, ``x < 1``, ``1 - x``: 3 (2 outside). Bicubic (Keys, ``a = -0.5``):
    ``|x|``, ``x < 1``, ``cubic_convolution1`` (7): 9; else ``x < 2``,
    ``cubic_convolution2`` (9): 12; else 3. Lanczos-3: ``|x|``, ``x < 3``, then
    ``sinc(x) * sinc(x / 3)``, each sinc its ``x == 0`` compare and, when not 0, ``x * pi``,
    the sine and the division (4): 12 (6 at 0); else 2.
    """
    x = abs(x)
    if mode == "bilinear":
        return 3 if x < 1.0 else 2
    if mode == "bicubic":
        if x < 1.0:
            return 2 + 7
        return 3 + 9 if x < 2.0 else 3
    if x < 3.0:
        return 2 + 1 + (1 if x == 0.0 else 4) + (1 if x == 0.0 else 4) + 1
    return 2


def _aa_index_weights(
    mode: str,
    size_in: int,
    size_out: int,
    scale: float,
    support: float,
    widest: int,
    round_: Any = _f32,
) -> list[tuple[int, int]]:
    """Per output index ``(window length, FPO)`` of ``_compute_indices_min_size_weights_aa``.

    In float32 as the kernel (``round_``; double for a float64 input): ``center = scale * (i
    + 0.5)`` (2), ``invscale`` (the compare, and ``1 / scale`` when ``scale >= 1``), the
    window's ends ``center -/+ support + 0.5`` (4); per tap the filter's argument ``(j + xmin
    - center + 0.5) * invscale`` (3), the filter and ``total_w += w`` (1); the ``total_w != 0``
    compare and, when not 0, per tap ``w /= total_w`` and ``wt_max = max(wt_max, w)`` (2).
    """
    out = []
    invscale = round_(1.0 / scale) if scale >= 1.0 else 1.0
    for i in range(size_out):
        center = round_(scale * (i + 0.5))
        xmin = max(int(round_(center - support) + 0.5), 0)
        xsize = min(int(round_(center + support) + 0.5), size_in) - xmin
        xsize = min(max(xsize, 0), widest)
        fpo = 7 + (1 if scale >= 1.0 else 0)
        total = 0.0
        for j in range(xsize):
            x = round_((round_(float(j + xmin) - center) + 0.5) * invscale)
            fpo += 3 + _aa_filter_fpo(mode, x) + 1
            total = round_(total + _aa_filter_value(mode, x, round_))
        fpo += 1 + (2 * xsize if total != 0.0 else 0)
        out.append((xsize, fpo))
    return out


def _aa_filter_value(mode: str, x: float, round_: Any = _f32) -> float:
    """The filter's value (rounded by ``round_``), for ``total_w != 0``."""
    x = abs(x)
    if mode == "bilinear":
        return round_(1.0 - x) if x < 1.0 else 0.0
    if mode == "bicubic":
        a = -0.5
        if x < 1.0:
            return round_(((a + 2) * x - (a + 3)) * x * x + 1)
        if x < 2.0:
            return round_(((a * x - 5 * a) * x + 8 * a) * x - 4 * a)
        return 0.0
    if x >= 3.0:
        return 0.0

    def sinc(v: float) -> float:
        return 1.0 if v == 0.0 else math.sin(v * math.pi) / (v * math.pi)

    return round_(sinc(x) * sinc(x / 3.0))


def _aa_dimension(
    mode: str, size_in: int, size_out: int, align_corners: Any, scale_arg: Any, double: bool
) -> tuple[list[tuple[int, int]], int]:
    """One dimension's antialias weights: per index ``(window, FPO)``, and the setup FPO.

    The setup is the scale and the support, ``(taps * 0.5) * scale`` when ``scale >= 1`` (the
    compare, 2 multiplies), else ``taps * 0.5`` (the compare, 1), and ``ceil(support)`` for
    the widest window (1). In float32, or in double for a float64 input (``double``): which
    taps fall inside a filter's support can differ at its edge.
    """
    taps = _AA_TAPS[mode]
    round_ = _same if double else _f32
    scale = _scale_value(size_in, size_out, align_corners, scale_arg, round_)
    if scale >= 1.0:
        support, setup = round_(taps * 0.5 * scale), 4
    else:
        support, setup = taps * 0.5, 3
    widest = 2 * math.ceil(support) + 1
    setup += _scale_fpo(size_in, size_out, align_corners, scale_arg)
    return _aa_index_weights(mode, size_in, size_out, scale, support, widest, round_), setup


def _aa_fpo(
    planes: int,
    size_in: Any,
    size_out: Any,
    mode: str,
    align_corners: Any,
    scales: Any,
    double: bool = False,
) -> int:
    """FPO of an antialiased 2-D resize of ``planes`` (N * C) planes, forward.

    As ATen's CPU kernel runs it (``upsample_separable_Nd_kernel_impl``): one pass per
    dimension whose size changes, W first over every input row (``H_in`` rows of ``W_out``
    outputs), then H over that result (``W_out`` columns of ``H_out`` outputs); an unchanged
    dimension is skipped (both unchanged: a copy). Each pass first computes its weights once
    (``_compute_index_ranges_weights``: see :func:`_aa_dimension` and
    :func:`_aa_index_weights`, + 1 per index for the running ``wt_max``). Each output of a pass
    is ``interpolate_aa_single_dim`` over its window of ``k`` inputs, ``output = t_0 * w_0;
    output += t_j * w_j``: ``2k - 1``. So ``H_in * sum(2 kw - 1) + W_out * sum(2 kh - 1)`` per
    plane, + the weights. (Until s24 it was counted as a direct loop, ``kh`` interpolations
    along W for each output element and ``2k`` per window: 672 FPO for a (1, 2, 8, 8) -> (2, 2)
    bilinear downsample where the kernel performs 440; until s25 without the weights.)
    """
    (h, w), (oh, ow) = (int(v) for v in size_in), (int(v) for v in size_out)
    scale_h, scale_w = scales
    total = 0
    if w != ow:
        cols, setup = _aa_dimension(mode, w, ow, align_corners, scale_w, double)
        total += setup + sum(f + 1 for _, f in cols) + planes * h * sum(2 * k - 1 for k, _ in cols)
    if h != oh:
        rows, setup = _aa_dimension(mode, h, oh, align_corners, scale_h, double)
        total += setup + sum(f + 1 for _, f in rows) + planes * ow * sum(2 * k - 1 for k, _ in rows)
    return total


def _aa_backward_fpo(
    planes: int,
    size_in: Any,
    size_out: Any,
    mode: str,
    align_corners: Any,
    scales: Any,
    double: bool = False,
) -> int:
    """FPO of an antialiased 2-D resize's backward: ``3 kh kw`` per gradient element + weights.

    ATen's ``upsample_separable_Nd_backward_aa`` adds ``wx[x] * wy[y] * g`` into every input of
    the output's ``kh x kw`` window (two multiplies and an add), not separably; it weighs an
    unchanged dimension too (its window at scale 1). Its weights are computed inside the loops,
    not stored: both scales and supports once (per parallel chunk of planes; once on one
    thread), a row's weights per output row, a column's per output pixel (``H_out`` times each).
    """
    (h, w), (oh, ow) = (int(v) for v in size_in), (int(v) for v in size_out)
    scale_h, scale_w = scales
    rows, setup_h = _aa_dimension(mode, h, oh, align_corners, scale_h, double)
    cols, setup_w = _aa_dimension(mode, w, ow, align_corners, scale_w, double)
    weights = setup_h + setup_w + sum(f for _, f in rows) + oh * sum(f for _, f in cols)
    return weights + planes * 3 * sum(k for k, _ in rows) * sum(k for k, _ in cols)


def _aa_rule(mode: str) -> Any:
    def rule(
        self: tuple[int, ...],
        output_size: Any,
        align_corners: Any = False,
        scales_h: Any = None,
        scales_w: Any = None,
        *,
        out_shape: Any = None,
        double: bool = False,
        device: str = "cpu",
        itemsize: int = 4,
        **kwargs: Any,
    ) -> int:
        if isinstance(scales_h, list):  # the .vec overload: scale_factors, output_size maybe None
            scales_h, scales_w = ([*scales_h, None, None])[:2]
        size_out = first_shape(out_shape)[-2:] if out_shape is not None else output_size
        planes = numel(self[:-2])
        scales = (scales_h, scales_w)
        if device == "cuda" and mode in _CUDA_AA:
            return _cuda_aa_fpo(
                planes, self[-2:], size_out, mode, align_corners, scales, itemsize, False
            )
        return _aa_fpo(planes, self[-2:], size_out, mode, align_corners, scales, double)

    def backward(
        grad_output: tuple[int, ...],
        output_size: Any,
        input_size: Any,
        align_corners: Any = False,
        scales_h: Any = None,
        scales_w: Any = None,
        *,
        double: bool = False,
        device: str = "cpu",
        itemsize: int = 4,
        **kwargs: Any,
    ) -> int:
        if isinstance(scales_h, list):
            scales_h, scales_w = ([*scales_h, None, None])[:2]
        planes = numel(tuple(input_size)[:-2])
        size_in = tuple(input_size)[-2:]
        scales = (scales_h, scales_w)
        size_out = grad_output[-2:]
        if device == "cuda" and mode in _CUDA_AA:
            return _cuda_aa_fpo(
                planes, size_in, size_out, mode, align_corners, scales, itemsize, True
            )
        return _aa_backward_fpo(planes, size_in, size_out, mode, align_corners, scales, double)

    rule.__doc__ = (
        f"Antialiased {mode} resize: see :func:`_aa_fpo`; on a CUDA tensor (``device``) "
        ":func:`_cuda_aa_fpo` (bilinear and bicubic: Lanczos has no CUDA kernel)."
    )
    backward.__doc__ = (
        "Its backward, scattered per window element: :func:`_aa_backward_fpo`; on a CUDA tensor "
        ":func:`_cuda_aa_fpo`."
    )
    return rule, backward


@_metadata_only
def _reads_double(tensor: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The antialias rules' ``double``: whether ``tensor`` is float64.

    Its kernel holds the weights in double (``scalar_t``). The dtype is metadata: read from
    real, meta and fake tensors alike (until s26 a meta count assumed float32), so a float64
    count on the meta device equals the real one. ``device`` and ``itemsize`` (bytes per
    element, which size the CUDA forward's blocks) for the CUDA kernels, read likewise.
    """
    return {
        "double": str(tensor.dtype) == "torch.float64",
        "device": _kernel_device(tensor),
        "itemsize": int(tensor.element_size()),
    }


_reads_double.reads_device = True  # type: ignore[attr-defined]  # as _reads_channels_last


for _aa_mode in _AA_TAPS:
    _forward, _backward = _aa_rule(_aa_mode)
    register_rule(f"aten._upsample_{_aa_mode}2d_aa", reads=_reads_double)(_forward)
    register_rule(f"aten._upsample_{_aa_mode}2d_aa_backward", reads=_reads_double)(_backward)


_CUDA_AA = ("bilinear", "bicubic")
"""The antialiased modes with a CUDA kernel (``UpSampleBilinear2d.cu``)."""
