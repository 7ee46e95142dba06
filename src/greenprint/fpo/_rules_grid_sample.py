"""FPO rules for ``F.grid_sample``: ``grid_sampler_2d``, ``grid_sampler_3d`` and their backward.

2-D bilinear, nearest and bicubic follow ATen's vectorised CPU kernel
(``cpu/GridSamplerKernel.cpp``); 3-D and the 2-D scalar fallback kernel
(``_grid_sampler_2d_cpu_fallback``, which ``grid_sampler_2d`` runs on float inputs whose
offsets overflow the vectorised kernel's 32-bit gathers) follow ATen's scalar code
(``GridSampler.cpp`` with the helpers of ``GridSampler.h``). On CUDA tensors the counts follow
ATen's CUDA kernels (``cuda/GridSampler.cu`` and ``GridSampler.cuh``: scalar kernels, one
thread per location, see :func:`_cuda_2d` and :func:`_cuda_3d`). One FPO per arithmetic op,
compare, floor or rounding, counted as the kernel's source writes them (a sum of products
written out, ``a*w + b*v``, is its multiplies and one add fewer; an accumulation into a zeroed
``res += v * w`` adds every product); corners outside the input (skipped by the kernels,
data-dependent) are counted, an upper bound.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []

_BILINEAR, _NEAREST, _BICUBIC = 0, 1, 2


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


_INT32_MAX = 2**31 - 1


def _gather_offset(tensor: Any) -> int:
    """The largest offset the vectorised kernel gathers at in a ``(N, C, H, W)`` tensor."""
    return (tensor.size(2) - 1) * tensor.stride(2) + (tensor.size(3) - 1) * tensor.stride(3)


def _falls_back(input: Any, grid: Any, grad_output: Any = None) -> dict[str, bool]:
    """Whether ``grid_sampler_2d(_backward)`` runs ATen's scalar fallback kernel on these tensors.

    ``grid_sampler_2d_cpu`` (``GridSampler.cpp``): a float (not double) input whose largest
    gather offset, ``(H - 1) sH + (W - 1) sW`` of the input (and, in the backward, of the
    gradient) or ``sW * (lanes - 1)`` of the grid (``lanes`` floats per vector: 16 with
    AVX-512, else 8), exceeds ``2^31 - 1`` goes to ``_grid_sampler_2d_cpu_fallback``, called
    inside the op (the counter sees ``grid_sampler_2d``). Real CPU tensors only.
    """
    import torch

    if input.device.type != "cpu" or input.dtype != torch.float32 or input.dim() != 4:
        return {}
    lanes = 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8
    offset = max(_gather_offset(input), grid.stride(2) * (lanes - 1))
    if grad_output is not None:
        offset = max(offset, _gather_offset(grad_output))
    return {"fallback": offset > _INT32_MAX}


def kernel_device(input: Any) -> str:
    """The device whose kernels run: ``"cuda"`` for a CUDA (or ROCm) tensor, else ``"cpu"``."""
    return "cuda" if input.device.type == "cuda" else "cpu"


def _forward_falls_back(input: Any, grid: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    if kernel_device(input) == "cuda":
        return {"device": "cuda"}
    return _falls_back(input, grid)


def _backward_falls_back(
    grad_output: Any, input: Any, grid: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    if kernel_device(input) == "cuda":
        return {"device": "cuda"}
    return _falls_back(input, grid, grad_output)


def _device_3d(input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"device": "cuda"} if kernel_device(input) == "cuda" else {}


def _device_3d_backward(grad_output: Any, input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _device_3d(input)


# The readers read the device, dtype and strides only (metadata): the counter calls them on
# meta and fake tensors too (see ``Rule.reads``), so a fake CUDA tensor counts the CUDA kernels
# (until s26 a count under FakeTensorMode on a "cuda" device counted the CPU kernels; a meta
# tensor has no device to read and counts as on the CPU, whose fallback it never takes).
for _reader in (_forward_falls_back, _backward_falls_back, _device_3d, _device_3d_backward):
    setattr(_reader, "metadata_only", True)  # noqa: B010
    # the count depends on the device: a count that read a meta tensor's (none, the CPU's
    # kernels) says so (FPOResult.assumptions["meta_device"])
    setattr(_reader, "reads_device", True)  # noqa: B010


_SAFE_DOWNGRADE = 3
"""CUDA's ``safe_downgrade_to_int_range`` after every coordinate: ``x > INT_MAX - 1``, ``x <
INT_MIN`` and ``isfinite`` (3 compares), which the CPU helpers do not have."""


def _cuda_coordinate(padding: int, align_corners: Any, gradient: bool) -> int:
    """One coordinate through CUDA's ``grid_sampler_compute_source_index(_set_grad)``.

    The CPU scalar helper's count (:func:`_coordinate_3d`: the same unnormalise, clip and
    reflection) + :data:`_SAFE_DOWNGRADE`.
    """
    return _coordinate_3d(padding, align_corners, gradient) + _SAFE_DOWNGRADE


def _cuda_2d(
    mode: int,
    padding: int,
    align_corners: Any,
    locations: int,
    outputs: int,
    backward: bool,
    input_grad: bool,
) -> int:
    """2-D grid sampling as ATen's CUDA kernels compute it.

    ``grid_sampler_2d_kernel`` and ``grid_sampler_2d_backward_kernel`` (``cuda/GridSampler.cu``).
    Per location both coordinates (:func:`_cuda_coordinate`). Forward: bilinear 2 floors and
    the four weights ``(ix_se - ix) * (iy_se - iy)`` (12), per output element ``*out = 0;
    *out += v * w`` for the 4 corners (8); nearest 2 ``round``; bicubic the coordinates
    unnormalised again, 2 floors, ``tx``, ``ty``, per output element 5 ``cubic_interp1d``
    (42 each: its coefficients and 4 taps) and per tap its position (3) and both coordinates
    through ``compute_coordinates`` (the clip + :data:`_SAFE_DOWNGRADE` each). Backward (the
    grid's gradient always, the input's when ``output_mask[0]``): bilinear 2 floors, 12, and
    ``gix_mult * gix``, ``giy_mult * giy`` (2) per location; per gradient element per corner
    the grid's ``gix -= v * (iy_se - iy) * g`` and ``giy`` (4 each: 32) and the input's ``w *
    g`` added atomically (2 per corner: 8). Nearest: when the input's gradient is needed, 2
    ``round`` per location and 1 add per element; else nothing past the coordinates. Bicubic:
    + the coordinates unnormalised again with their multipliers, 2 floors, ``tx``, ``ty``,
    both axes' coefficients (35 each) and derivatives (32 each), the 2 multipliers; per
    gradient element and tap (16) the grid's: the tap's position (4), its value's coordinates
    through ``compute_coordinates``, ``gix -= v * cx' * cy * g`` and ``giy`` (4 each); the
    input's: the position again (4), ``g * cx * cy`` (2), the coordinates, the atomic add (1).
    """
    coordinate = _cuda_coordinate(padding, align_corners, backward)
    per_location = 2 * coordinate
    clip = _scalar_clip(padding) + _SAFE_DOWNGRADE
    if not backward:
        if mode == _NEAREST:
            return locations * (per_location + 2)
        if mode == _BICUBIC:
            per_location += 2 * _scalar_unnormalise(align_corners) + 2 + 2
            per_tap = 3 + 2 * clip
            return locations * per_location + outputs * (16 * per_tap + 5 * _CUBIC_INTERP_1D)
        return locations * (per_location + 2 + 12) + outputs * 8
    if mode == _NEAREST:
        return locations * (per_location + (2 if input_grad else 0)) + (
            outputs if input_grad else 0
        )
    if mode == _BICUBIC:
        per_location += (
            2 * (_scalar_unnormalise(align_corners) + 1)
            + 2
            + 2
            + 2 * (_CUBIC_COEFFICIENTS + _CUBIC_GRADIENTS)
            + 2
        )
        per_tap = 4 + 2 * clip + 8 + ((4 + 2 + 2 * clip + 1) if input_grad else 0)
        return locations * per_location + outputs * 16 * per_tap
    return locations * (per_location + 2 + 12 + 2) + outputs * (32 + (8 if input_grad else 0))


def _cuda_3d(
    mode: int,
    padding: int,
    align_corners: Any,
    locations: int,
    outputs: int,
    backward: bool,
    input_grad: bool,
) -> int:
    """3-D grid sampling as ATen's CUDA kernels compute it.

    The CPU scalar kernel's arithmetic (:func:`grid_sampler_3d_rule`,
    :func:`grid_sampler_3d_backward_rule`) with each coordinate through
    :func:`_cuda_coordinate`; the nearest backward rounds the locations and adds the gradient
    only when the input's gradient is needed.
    """
    coordinates = 3 * _cuda_coordinate(padding, align_corners, backward)
    if not backward:
        if mode == _NEAREST:
            return locations * (coordinates + 3)
        return locations * (coordinates + _TRILINEAR_LOCATION) + 16 * outputs
    if mode == _NEAREST:
        if not input_grad:
            return locations * coordinates
        return locations * (coordinates + 3) + outputs
    per_location = coordinates + _TRILINEAR_LOCATION + 3
    return locations * per_location + outputs * (144 + (16 if input_grad else 0))


@register_rule("aten.grid_sampler_2d", reads=_forward_falls_back)
def grid_sampler_2d_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    *,
    fallback: bool = False,
    device: str = "cpu",
    **kwargs: Any,
) -> int:
    """2-D grid sampling as ATen's vectorised CPU kernel computes it (``GridSamplerKernel.cpp``).

    Per location (``L``), each of the two coordinates unnormalised (2 with align_corners, else
    3) and clipped by the padding mode (:func:`_clip_2d`). Bilinear: the interpolation
    parameters ``compute_interp_params``, 10 per location (2 floors, the four distances
    ``x - floor(x)``, ``1 - w``, ..., 4, the four corner weights, 4 products), then per output
    element ``nw*v + ne*v + sw*v + se*v`` as written, 7. Nearest: 2 ``round`` per location, 0
    per element (a gather). Bicubic: :func:`_bicubic_2d`. When ATen runs its scalar fallback
    instead (``fallback``, read from real tensors: see :func:`_falls_back`), as
    :func:`grid_sampler_2d_fallback_rule`. On CUDA (``device``, read from real tensors): as
    ATen's CUDA kernel, :func:`_cuda_2d`.
    """
    if device == "cuda":
        locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
        mode = int(interpolation_mode)
        return _cuda_2d(mode, padding_mode, align_corners, locations, outputs, False, False)
    if fallback:
        return grid_sampler_2d_fallback_rule(
            input, grid, interpolation_mode, padding_mode, align_corners
        )
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    if int(interpolation_mode) == _BICUBIC:
        return _bicubic_2d(locations, outputs, padding_mode, align_corners, False, False)
    coordinate = 2 * (_unnormalise(align_corners) + _clip_2d(padding_mode, align_corners, False))
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinate + 2)
    return locations * (coordinate + 10) + 7 * outputs


@register_rule("aten.grid_sampler_2d_backward", reads=_backward_falls_back)
def grid_sampler_2d_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    output_mask: Any = None,
    *,
    fallback: bool = False,
    device: str = "cpu",
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
    :func:`_bicubic_2d`. The scalar fallback (``fallback``, see :func:`_falls_back`) as
    :func:`grid_sampler_2d_fallback_backward_rule`. On CUDA: :func:`_cuda_2d`.
    """
    if device == "cuda":
        input_grad = True if output_mask is None else bool(list(output_mask)[0])
        locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
        mode = int(interpolation_mode)
        return _cuda_2d(mode, padding_mode, align_corners, locations, outputs, True, input_grad)
    if fallback:
        return grid_sampler_2d_fallback_backward_rule(
            grad_output, input, grid, interpolation_mode, padding_mode, align_corners
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


# -- ATen's scalar kernels: 2-D fallback and 3-D (GridSampler.cpp, GridSampler.h) -------------


def _scalar_unnormalise(align_corners: Any) -> int:
    """``grid_sampler_unnormalize`` of one coordinate: 3 with ``align_corners``, else 4.

    ``((x + 1) / 2) * (size - 1)`` or ``((x + 1) * size - 1) / 2``; ``size - 1`` is integer
    arithmetic.
    """
    return 3 if align_corners else 4


def _scalar_clip(padding: int) -> int:
    """``compute_coordinates`` of one coordinate: zeros 0, border 2, reflection 11.

    Border: ``clip_coordinates``, a max and a min. Reflection: ``reflect_coordinates``
    (``twice_low / 2``, ``span / 2``, ``in - min``, ``fabs``, ``fmod``, ``in / span``,
    ``floor``, then ``span - extra + min``: 2, an upper bound as an even number of flips adds
    only) 9, and the clip 2.
    """
    return {1: 2, 2: 11}.get(int(padding), 0)


def _coordinate_3d(padding: int, align_corners: Any, gradient: bool) -> int:
    """One grid coordinate to a source index (``grid_sampler_compute_source_index``).

    Unnormalise (:func:`_scalar_unnormalise`; the gradient's version also sets ``size / 2``,
    1), then :func:`_scalar_clip`. With the gradient, border: two compares and ``grad_in *
    grad_clip`` (3); reflection: the ``fabs`` is a compare and a negation (10), the clip's
    compares (2) and ``grad_in * grad_refl * grad_clip`` (2): 14. The 2-D fallback kernel uses
    the same helpers.
    """
    unnormalise = _scalar_unnormalise(align_corners) + (1 if gradient else 0)
    if not gradient:
        return unnormalise + _scalar_clip(padding)
    return unnormalise + {1: 3, 2: 14}.get(int(padding), 0)


_CUBIC_INTERP_1D = _CUBIC_COEFFICIENTS + 7
"""``cubic_interp1d`` (``UpSample.h``): ``get_cubic_upsample_coefficients`` (35, as
:data:`_CUBIC_COEFFICIENTS`) and ``x0 * c0 + x1 * c1 + x2 * c2 + x3 * c3`` as written (7)."""


@register_rule("aten._grid_sampler_2d_cpu_fallback")
def grid_sampler_2d_fallback_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    *args: Any,
    **kwargs: Any,
) -> int:
    """ATen's scalar 2-D kernel (``_grid_sampler_2d_cpu_fallback``, ``GridSampler.cpp``).

    Per location (``L``) both coordinates through ``grid_sampler_compute_source_index``
    (:func:`_coordinate_3d`), for every mode. Bilinear: 2 floors and the four corner weights
    ``(ix_se - ix) * (iy_se - iy)`` (3 each): + 14; per output element (``L * C``) ``res =
    0; res += v * w`` for the 4 corners: 8. Nearest: 2 ``nearbyint`` per location, 0 per
    element. Bicubic: the coordinates unnormalised again (not clipped), 2 floors and the
    fractions ``tx``, ``ty`` (2); per output element 4 rows of ``cubic_interp1d`` over 4 taps
    and one over the rows (:data:`_CUBIC_INTERP_1D`, 42 each: the coefficients are computed
    in every call), and per tap its position (``ix_nw - 1``, ``iy_nw - 1 + i``: 3) and its
    coordinates clipped (``get_value_bounded``, :func:`_scalar_clip` each). (It was counted
    as upsampling: 3 per coordinate + the padding, 9, 0 or 40 per output element.)
    """
    mode = int(interpolation_mode)
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    per_location = 2 * _coordinate_3d(padding_mode, align_corners, False)
    if mode == _NEAREST:
        return locations * (per_location + 2)
    if mode == _BICUBIC:
        per_location += 2 * _scalar_unnormalise(align_corners) + 2 + 2
        per_tap = 3 + 2 * _scalar_clip(padding_mode)
        return locations * per_location + outputs * (16 * per_tap + 5 * _CUBIC_INTERP_1D)
    return locations * (per_location + 2 + 12) + outputs * 8


@register_rule("aten._grid_sampler_2d_cpu_fallback_backward")
def grid_sampler_2d_fallback_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The scalar 2-D kernel's backward (``_grid_sampler_2d_cpu_fallback_backward``).

    It has no output mask: the input's gradient is always computed, and the grid's except for
    nearest (zero-filled). Per location both coordinates with their gradient multipliers
    (``grid_sampler_compute_source_index_set_grad``, :func:`_coordinate_3d`). Bilinear: 2
    floors, the four weights (12) and ``gix_mult * gix``, ``giy_mult * giy`` (2); per gradient
    element the input's ``w * g`` added into 4 corners (8) and the grid's ``gix -= v * (iy_se
    - iy) * g`` and ``giy`` alike for each corner (4 each: 32): 40. Nearest: 2 ``nearbyint``;
    1 per gradient element. Bicubic, per location: the coordinates unnormalised again with
    their multipliers (``grid_sampler_unnormalize_set_grad``, + 1 each), 2 floors, ``tx``,
    ``ty`` (2), both axes' coefficients (35 each) and their derivatives (32 each), the 2
    multipliers; per gradient element and tap (16): its position written in both calls
    (``ix_nw - 1 + i``, ``iy_nw - 1 + j``: 4 each), the input's ``g * cx * cy`` added (3)
    and the grid's ``gix -= v * cx' * cy * g`` and ``giy`` (4 each), each call clipping both
    coordinates (:func:`_scalar_clip`). (It was counted from upsampling.)
    """
    mode = int(interpolation_mode)
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    per_location = 2 * _coordinate_3d(padding_mode, align_corners, True)
    if mode == _NEAREST:
        return locations * (per_location + 2) + outputs
    if mode == _BICUBIC:
        per_location += (
            2 * (_scalar_unnormalise(align_corners) + 1)
            + 2
            + 2
            + 2 * (_CUBIC_COEFFICIENTS + _CUBIC_GRADIENTS)
            + 2
        )
        per_tap = 8 + 3 + 8 + 4 * _scalar_clip(padding_mode)
        return locations * per_location + outputs * 16 * per_tap
    return locations * (per_location + 2 + 12 + 2) + outputs * 40


# -- 3-D: ATen's scalar kernel (grid_sampler_3d_cpu_impl) ------------------------------------

_TRILINEAR_LOCATION = 3 + 8 * 5  # 3 floors; 8 corner weights of 3 differences and 2 products


@register_rule("aten.grid_sampler_3d", reads=_device_3d)
def grid_sampler_3d_rule(
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    *,
    device: str = "cpu",
    **kwargs: Any,
) -> int:
    """3-D grid sampling as ATen's CPU kernel (``grid_sampler_3d_cpu_impl``) computes it.

    Per location (``L``) its three coordinates (:func:`_coordinate_3d`). Trilinear: 3 floors
    and the 8 corner weights, each ``(x1 - x) * (y1 - y) * (z1 - z)`` (3 subtractions, 2
    products): 43 per location; per output element (``L * C``) ``out += value * weight`` for
    the 8 corners: 16. Nearest: 3 ``nearbyint`` per location, 0 per element (a gather). (It
    was counted as trilinear upsampling: 9 per location, 21 per element, whatever the
    padding.) On CUDA: :func:`_cuda_3d`.
    """
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    if device == "cuda":
        mode = int(interpolation_mode)
        return _cuda_3d(mode, padding_mode, align_corners, locations, outputs, False, False)
    coordinates = 3 * _coordinate_3d(padding_mode, align_corners, False)
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinates + 3)
    return locations * (coordinates + _TRILINEAR_LOCATION) + 16 * outputs


@register_rule("aten.grid_sampler_3d_backward", reads=_device_3d_backward)
def grid_sampler_3d_backward_rule(
    grad_output: tuple[int, ...],
    input: tuple[int, ...],
    grid: tuple[int, ...],
    interpolation_mode: int = 0,
    padding_mode: int = 0,
    align_corners: Any = False,
    output_mask: Any = None,
    *,
    device: str = "cpu",
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
    each gradient element into its voxel (1). On CUDA: :func:`_cuda_3d`.
    """
    input_grad = True if output_mask is None else bool(list(output_mask)[0])
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * input[1]
    if device == "cuda":
        mode = int(interpolation_mode)
        return _cuda_3d(mode, padding_mode, align_corners, locations, outputs, True, input_grad)
    coordinates = 3 * _coordinate_3d(padding_mode, align_corners, True)
    if int(interpolation_mode) == _NEAREST:
        return locations * (coordinates + 3) + (outputs if input_grad else 0)
    per_location = coordinates + _TRILINEAR_LOCATION + 3
    return locations * per_location + outputs * (144 + (16 if input_grad else 0))


# -- cuDNN: F.grid_sample's bilinear, zeros, align_corners=True on a 4-D CUDA input -----------


@register_rule("aten.cudnn_grid_sampler")
def cudnn_grid_sampler_rule(
    self: tuple[int, ...], grid: tuple[int, ...], *args: Any, **kwargs: Any
) -> int:
    """The cuDNN grid sampler (``cudnn_grid_sampler``), counted as ATen's CUDA 2-D kernel.

    ``grid_sampler`` (``GridSampler.cpp``) calls it for bilinear sampling with zeros padding
    and ``align_corners=True`` when ``cond_cudnn_grid_sampler`` holds: a 4-D float, double
    or half input and grid that cuDNN accepts (CUDA tensors, cuDNN enabled), indexable in 32
    bits, with at most 1,024 channels. cuDNN's kernel is closed source; it computes what
    ATen's CUDA ``grid_sampler_2d_kernel`` computes for those arguments, so it is counted as
    that kernel (:func:`_cuda_2d`: bilinear, zeros, ``align_corners``): per location both
    coordinates (3 to unnormalise, ``((x + 1) / 2) * (size - 1)``, and the 3 compares of
    ``safe_downgrade_to_int_range``: 6 each), 2 floors and the four weights (12), per output
    element 8: a (1, 2, 4, 5) input by a (1, 3, 3, 2) grid is ``9 * 26 + 18 * 8`` = 378. The
    count says so (``FPOResult.assumptions["cudnn_grid_sampler"]``).
    """
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * self[1]
    return _cuda_2d(_BILINEAR, 0, True, locations, outputs, False, False)


@register_rule("aten.cudnn_grid_sampler_backward")
def cudnn_grid_sampler_backward_rule(
    self: tuple[int, ...],
    grid: tuple[int, ...],
    grad_output: tuple[int, ...],
    *args: Any,
    **kwargs: Any,
) -> int:
    """The cuDNN grid sampler's backward, counted as ATen's CUDA 2-D backward kernel.

    It returns both gradients (``grad_self, grad_grid``; autograd's formula calls it whenever
    the output has a gradient), so it is counted as ``grid_sampler_2d_backward_kernel`` with
    the input's gradient (:func:`_cuda_2d`, bilinear, zeros, ``align_corners``): per
    location the coordinates with their multipliers (7 each), 2 floors, the four weights and
    the two multiplier products (16), per gradient element the grid's 32 and the input's 8:
    ``9 * 30 + 18 * 40`` = 990 for the forward's example.
    """
    locations, outputs = numel(grid[:-1]), numel(grid[:-1]) * self[1]
    return _cuda_2d(_BILINEAR, 0, True, locations, outputs, True, True)
