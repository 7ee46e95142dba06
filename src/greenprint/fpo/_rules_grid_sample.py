"""FPO rules for ``F.grid_sample``: ``grid_sampler_2d``, ``grid_sampler_3d`` and their backward.

2-D bilinear, nearest and bicubic follow ATen's vectorised CPU kernel
(``cpu/GridSamplerKernel.cpp``), 3-D its scalar kernel (``GridSampler.cpp`` with the helpers of
``GridSampler.h``); the 2-D fallback kernel is counted as upsampling with the same
interpolation. One FPO per arithmetic op, compare, floor or rounding; corners outside the input
(skipped by the kernels, data-dependent) are counted, an upper bound.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []

_BILINEAR, _NEAREST, _BICUBIC = 0, 1, 2
# per output element, as the interpolation rules count upsampling: linear in 2 or 3 dims, cubic
_SAMPLE = {(_BILINEAR, 2): 9, (_BILINEAR, 3): 21, (_NEAREST, 2): 0, (_NEAREST, 3): 0}
_SAMPLE_BICUBIC = 40
_PADDING = {0: 0, 1: 2, 2: 6}  # zeros, border (clip: 2 compares), reflection, per coordinate


def _grid_costs(
    input: tuple[int, ...], grid: tuple[int, ...], mode: int, padding: int
) -> tuple[int, int, int]:
    """``(locations, output elements, per-element cost)`` of one grid sample.

    A location costs 3 per coordinate to unnormalise (``((x + 1) * size - 1) / 2``) plus the
    padding mode's clipping; each of the ``C`` output elements at a location costs what
    upsampling with the same interpolation costs (bilinear 9, trilinear 21, bicubic 40,
    nearest 0).
    """
    dims = grid[-1]
    locations = numel(grid[:-1])
    outputs = locations * input[1]
    per = _SAMPLE_BICUBIC if mode == _BICUBIC else _SAMPLE.get((int(mode), dims), 0)
    return locations, outputs, per


def _unnormalise(align_corners: Any) -> int:
    """Unnormalising a grid coordinate: 2 with ``align_corners``, else 3.

    ``(x + 1) * (size - 1) / 2`` (add, multiply: the factor is a constant) or
    ``(x + 1) * size / 2 - 0.5`` (add, multiply, subtract).
    """
    return 2 if align_corners else 3


def _clip_2d(padding: int, align_corners: Any, gradient: bool) -> int:
    """Per coordinate, the padding mode of ATen's vectorised CPU kernel (``ComputeLocation``).

    Border: ``clamp_max(clamp_min(x))``, 2 (with the gradient ``maximum``, ``minimum``, and
    integer compares: 2). Reflection (``reflect_coordinates``): ``abs``, ``/ twice_span``,
    ``trunc``, ``* twice_span``, subtract, ``twice_span - extra``, ``minimum``: 7, + 2 without
    align_corners (``- low``, ``+ low``), then the border clip 2; with the gradient
    (``reflect_coordinates_get_grad``) + the sign compare and the flip compare instead of
    ``minimum`` (8, or 10), the multiplier ``grad_refl * scaling`` 1 and the clip 2.
    """
    if padding == 1:
        return 2
    if padding == 2:
        reflect = (8 if gradient else 7) + (0 if align_corners else 2)
        return reflect + 2 + (1 if gradient else 0)
    return 0


_CUBIC_COEFFICIENTS = 35
"""``get_cubic_coefficients`` of one axis: the four taps' weights from ``t = x - floor(x)``.

Taps 0 and 3 ``((A x - 5A) x + 8A) x - 4A`` (9, with ``A`` times its constants computed as
vector ops) after ``x = t + 1`` or ``2 - t`` (1): 10 each; taps 1 and 2
``((A + 2) x - (A + 3)) x x + 1`` (7), tap 2 after ``x = 1 - t`` (1): 7 and 8.
"""

_CUBIC_GRADIENTS = 32
"""``get_cubic_coefficients_grad`` of one axis: ``x`` from ``t`` (1) and 7 for each tap."""


def _bicubic_2d(
    locations: int, outputs: int, padding: int, align_corners: Any, backward: bool, input_grad: bool
) -> int:
    """2-D bicubic grid sampling as ATen's vectorised CPU kernel (``ApplyGridSample<Bicubic>``).

    Forward, per location: the two coordinates unnormalised (not clipped: the kernel clips
    each tap), 2 floors, ``x - floor(x)`` and ``y - floor(y)`` (2), the coefficients of both
    axes (:data:`_CUBIC_COEFFICIENTS`, 70). Per output element, 4 rows of 4 taps: each tap's
    position ``ix + k`` and ``iy + k`` (2) and its two coordinates clipped by the padding
    (``compute_coordinates``, :func:`_clip_2d`; zeros 0), the row ``c0 v0 + c1 v1 + c2 v2 +
    c3 v3`` (7); then the column across the 4 rows, 7: ``4 (15 + 8 clip) + 7``, 67 with zeros.
    Backward, per location: as the forward with ``x - floor(x)`` taken twice more, the
    coefficients' derivatives (:data:`_CUBIC_GRADIENTS`, 64) and ``gx * gx_mult``, ``gy *
    gy_mult`` (2); per gradient element and tap (16) the tap's position (2), its value read
    with its coordinates clipped (2 clip) and the grid's ``gx -= v g cx' cy`` and ``gy`` alike
    (4 each); the input's gradient when asked for re-clips the tap (2 clip) and scatters
    ``g cx cy`` (2 products, the add: 3). The clipping's own gradient is not applied by this
    kernel (its multiplier is the scaling alone), so it costs as in the forward.
    """
    clip = _clip_2d(padding, align_corners, False)
    unnormalise = 2 * _unnormalise(align_corners)
    if not backward:
        return locations * (unnormalise + 4 + 2 * _CUBIC_COEFFICIENTS) + outputs * (
            4 * (15 + 8 * clip) + 7
        )
    per_location = unnormalise + 2 + 4 + 2 * (_CUBIC_COEFFICIENTS + _CUBIC_GRADIENTS) + 2
    per_tap = 10 + 2 * clip + ((3 + 2 * clip) if input_grad else 0)
    return locations * per_location + outputs * 16 * per_tap


def _grid_2d_vectorised(mode: int) -> bool:
    """Whether the 2-D rules below derive the mode from the vectorised CPU kernel (all do)."""
    return int(mode) in (_BILINEAR, _NEAREST, _BICUBIC)


@register_rule("aten.grid_sampler_2d")
def grid_sampler_2d_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    **kwargs: Any,
) -> int:
    """2-D grid sampling as ATen's vectorised CPU kernel computes it (``GridSamplerKernel.cpp``).

    Per location (``L``), each of the two coordinates unnormalised (2 with align_corners, else
    3) and clipped by the padding mode (:func:`_clip_2d`). Bilinear: the interpolation
    parameters ``compute_interp_params``, 10 per location (2 floors, the four distances
    ``x - floor(x)``, ``1 - w``, ..., 4, the four corner weights, 4 products), then per output
    element ``nw*v + ne*v + sw*v + se*v``, 7. Nearest: 2 ``round`` per location, 0 per
    element (a gather). Bicubic: :func:`_bicubic_2d` (it was counted as upsampling, 40 per
    output element and 3 per coordinate).
    """
    if not _grid_2d_vectorised(interpolation_mode):
        return grid_sampler_rule(input, grid, interpolation_mode, padding_mode)
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    if int(interpolation_mode) == _BICUBIC:
        return _bicubic_2d(locations, outputs, padding_mode, align_corners, False, False)
    coordinate = 2 * (_unnormalise(align_corners) + _clip_2d(padding_mode, align_corners, False))
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinate + 2)
    return locations * (coordinate + 10) + 7 * outputs


@register_rule("aten.grid_sampler_2d_backward")
def grid_sampler_2d_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    output_mask: Any = None,
    **kwargs: Any,
) -> int:
    """2-D grid sampling's backward as ATen's vectorised CPU kernel computes it.

    The kernel always computes the grid's gradient (its comment: "grid gradient is always
    computed"), the input's when ``output_mask[0]``. Bilinear, per location: the coordinates
    with their gradient multipliers (unnormalise + :func:`_clip_2d` with the gradient, per
    coordinate), the interpolation parameters 10, and ``gx * gx_mult``, ``gy * gy_mult`` 2;
    per gradient element the grid's ``gx += ((ne - nw) * s + (se - sw) * n) * g`` and ``gy``
    alike, 7 each, and for the input four ``w * g`` scattered with an add each, 8. Nearest: the
    grid's gradient is set to zero; the input's recomputes the locations (as the forward,
    + 2 ``round``) and adds each gradient element into its pixel, 1. Bicubic:
    :func:`_bicubic_2d` (it was counted from upsampling: 40 per gradient element for the
    input, 80 for the grid, 6 per location).
    """
    if not _grid_2d_vectorised(interpolation_mode):
        return grid_sampler_backward_rule(
            grad_output, input, grid, interpolation_mode, padding_mode, align_corners, output_mask
        )
    input_grad = True if output_mask is None else bool(list(output_mask)[0])
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    if int(interpolation_mode) == _BICUBIC:
        return _bicubic_2d(locations, outputs, padding_mode, align_corners, True, input_grad)
    if int(interpolation_mode) == _NEAREST:
        if not input_grad:
            return 0
        coordinate = 2 * (
            _unnormalise(align_corners) + _clip_2d(padding_mode, align_corners, False)
        )
        return locations * (coordinate + 2) + outputs
    coordinate = 2 * (_unnormalise(align_corners) + _clip_2d(padding_mode, align_corners, True))
    return locations * (coordinate + 10 + 2) + outputs * (14 + (8 if input_grad else 0))


@register_rule("aten._grid_sampler_2d_cpu_fallback")
def grid_sampler_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Per location ``(3 + padding) * dims``; per output element the interpolation's cost."""
    locations, outputs, per = _grid_costs(input, grid, interpolation_mode, padding_mode)
    coordinate = (3 + _PADDING.get(int(padding_mode), 0)) * grid[-1]
    return locations * coordinate + outputs * per


@register_rule("aten._grid_sampler_2d_cpu_fallback_backward")
def grid_sampler_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    output_mask: Any = None,
    **kwargs: Any,
) -> int:
    """The input's gradient and the grid's, each when asked for.

    grad_input: the interpolation's cost per gradient element (each weight times the
    gradient, added into the input; nearest: one add); grad_grid: twice that per gradient
    element (the weights' derivatives times the values and the gradient) + the coordinate
    chain rule, 3 per coordinate per location.
    """
    locations, outputs, per = _grid_costs(input, grid, interpolation_mode, padding_mode)
    mask = list(output_mask) if output_mask is not None else [True, True]
    total = outputs * max(per, 1) if mask[0] else 0
    if len(mask) > 1 and mask[1]:
        total += 2 * outputs * per + 3 * grid[-1] * locations
    return total


# -- 3-D: ATen's scalar kernel (GridSampler.cpp) ---------------------------------------------


def _coordinate_3d(padding: int, align_corners: Any, gradient: bool) -> int:
    """One grid coordinate to a source index (``grid_sampler_compute_source_index``).

    Unnormalise: ``((x + 1) / 2) * (size - 1)`` with ``align_corners`` (3), else
    ``((x + 1) * size - 1) / 2`` (4); the gradient's version also sets ``size / 2`` (1).
    Border: ``clip_coordinates``, a max and a min (2); with the gradient two compares and
    ``grad_in * grad_clip`` (3). Reflection: ``reflect_coordinates`` (``twice_low / 2``,
    ``span / 2``, ``in - min``, ``fabs``, ``fmod``, ``in / span``, ``floor``, then
    ``span - extra + min`` (2; an even number of flips adds only, 1): 9) and the clip (2): 11;
    with the gradient the ``fabs`` is a compare and a negation (10), the clip's compares (2) and
    ``grad_in * grad_refl * grad_clip`` (2): 14.
    """
    unnormalise = (3 if align_corners else 4) + (1 if gradient else 0)
    if int(padding) == 1:
        return unnormalise + (3 if gradient else 2)
    if int(padding) == 2:
        return unnormalise + (14 if gradient else 11)
    return unnormalise


_TRILINEAR_LOCATION = 3 + 8 * 5  # 3 floors; 8 corner weights of 3 differences and 2 products


@register_rule("aten.grid_sampler_3d")
def grid_sampler_3d_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    **kwargs: Any,
) -> int:
    """3-D grid sampling as ATen's CPU kernel (``grid_sampler_3d_cpu_impl``) computes it.

    Per location (``L``) its three coordinates (:func:`_coordinate_3d`). Trilinear: 3 floors
    and the 8 corner weights, each ``(x1 - x) * (y1 - y) * (z1 - z)`` (3 subtractions, 2
    products): 43 per location; per output element (``L * C``) ``out += value * weight`` for
    the 8 corners: 16. Nearest: 3 ``nearbyint`` per location, 0 per element (a gather). (It
    was counted as trilinear upsampling: 9 per location, 21 per element, whatever the
    padding.)
    """
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    coordinates = 3 * _coordinate_3d(padding_mode, align_corners, False)
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinates + 3)
    return locations * (coordinates + _TRILINEAR_LOCATION) + 16 * outputs


@register_rule("aten.grid_sampler_3d_backward")
def grid_sampler_3d_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    output_mask: Any = None,
    **kwargs: Any,
) -> int:
    """3-D grid sampling's backward as ATen's CPU kernel (``grid_sampler_3d_backward_cpu_impl``).

    Per location the three coordinates with their gradient multipliers
    (:func:`_coordinate_3d`). Trilinear: the floors and weights as the forward (43) and the
    grid's gradient ``gix_mult * gix`` for x, y, z (3); per gradient element the input's
    gradient when ``output_mask[0]`` (``w * g`` added into each of the 8 corners: 16) and the
    grid's always (the kernel computes it whether asked or not): per corner and coordinate
    ``gix -= value * (y1 - y) * (z1 - z) * g`` (2 subtractions, 3 products, the add: 6), 144.
    Nearest: 3 ``nearbyint`` per location; the grid's gradient is zero-filled; the input's adds
    each gradient element into its voxel (1).
    """
    input_grad = True if output_mask is None else bool(list(output_mask)[0])
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    coordinates = 3 * _coordinate_3d(padding_mode, align_corners, True)
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinates + 3) + (outputs if input_grad else 0)
    per_location = coordinates + _TRILINEAR_LOCATION + 3
    return locations * per_location + outputs * (144 + (16 if input_grad else 0))
