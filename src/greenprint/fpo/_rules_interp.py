"""FPO rules for interpolation: linear, bilinear, trilinear, bicubic and nearest upsampling.

``upsample_linear1d``, ``upsample_bilinear2d``, ``upsample_trilinear3d``, ``upsample_bicubic2d``
and ``upsample_nearest{1,2,3}d`` (and ``_upsample_nearest_exact``), forward and backward, as
ATen's CPU kernels compute them and, on CUDA tensors, its CUDA kernels. The scale, source-index
and weight helpers here are shared with the antialiased resizes,
:mod:`greenprint.fpo._rules_interp_aa`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule, zero

__all__: list[str] = []


# -- interpolation ---------------------------------------------------------------------------
#
# Besides the per-element interpolation, ATen's CPU kernels compute each dimension's scale
# (``area_pixel_compute_scale``) and, per output index along each dimension, its source index
# and weights (``compute_source_index_and_lambda``, the cubic coefficients, the antialias
# filter): O(output size along each axis), counted here as the source writes them (a compare, a
# floor, a ceil: 1 each; integer index arithmetic and casts: 0).


def _f32(value: float) -> float:
    """``value`` rounded to float32, as the kernels hold their scales and weights."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _scale_fpo(size_in: int, size_out: int, align_corners: Any, scale: Any) -> int:
    """FPO of ``area_pixel_compute_scale``, once per dimension.

    ``(in - 1) / (out - 1)`` with ``align_corners`` (1; 0 for one output), else
    ``compute_scales_value``: ``1 / scale`` after the ``scale > 0`` compare when a scale factor
    was given (2), ``in / out`` otherwise (1).
    """
    if align_corners:
        return 1 if size_out > 1 else 0
    return 2 if scale is not None else 1


def _same(value: float) -> float:
    """``value`` as a double: the kernels of a float64 input hold their weights in double."""
    return value


def _scale_value(
    size_in: int, size_out: int, align_corners: Any, scale: Any, round_: Any = _f32
) -> float:
    """The value ``area_pixel_compute_scale`` returns, rounded by ``round_``.

    ``round_``: :func:`_f32` (float32), or :func:`_same` (double, a float64 input's kernel).
    """
    if align_corners:
        return round_((size_in - 1) / (size_out - 1)) if size_out > 1 else 0.0
    if scale is not None and scale > 0:
        return round_(1.0 / scale)
    return round_(round_(float(size_in)) / size_out)


def _lambda_fpo(size_in: int, size_out: int, align_corners: Any) -> int:
    """``compute_source_index_and_lambda`` for one output index (linear modes).

    Unchanged size: a copy, 0. Otherwise the source index (``area_pixel_compute_source_index``:
    ``scale * i`` with ``align_corners``, 1; else ``scale * (i + 0.5) - 0.5`` and the ``< 0``
    compare, 4), ``guard_index_and_lambda`` (the floor, ``x - index``, its clamp to [0, 1]: 4)
    and ``lambda0 = 1 - lambda1`` (1): 6 with ``align_corners``, 9 without.
    """
    if size_in == size_out:
        return 0
    return 6 if align_corners else 9


_CUBIC_COEFFICIENTS = 35
"""``get_cubic_upsample_coefficients``: ``x1 + 1``, ``cubic_convolution2`` (9),
``cubic_convolution1`` (7), ``1 - t``, ``cubic_convolution1``, ``x2 + 1``, ``cubic_convolution2``
(``A + 2``, ``5 * A``, ... computed in the loop, as the source writes them)."""


def _cubic_index_fpo(align_corners: Any) -> int:
    """FPO of one output index of bicubic's forward weights: 40 or 42.

    ``HelperInterpCubic::compute_indices_weights``: the source index (``scale * i``, 1;
    ``scale * (i + 0.5) - 0.5``, 3: the cubic path has no ``< 0`` compare),
    ``guard_index_and_lambda`` (4) and the coefficients (35).
    """
    return (1 if align_corners else 3) + 4 + _CUBIC_COEFFICIENTS


def _interp_args(args: tuple[Any, ...], kwargs: dict[str, Any], dims: int) -> tuple[Any, list[Any]]:
    """``(align_corners, scales)`` of an upsample op (or its backward, after ``input_size``).

    ``scales`` has one entry per interpolated dimension (None: not given); the ``.vec``
    overloads pass them as one list, ``scale_factors``.
    """
    align = args[0] if args else kwargs.get("align_corners", False)
    rest = list(args[1:])
    for key in ("scales_d", "scales_h", "scales_w", "scales", "scale_factors"):
        if key in kwargs:
            rest.append(kwargs[key])
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = list(rest[0])
    if len(rest) == 1 and rest[0] is None:
        rest = []
    scales = [*rest, *([None] * dims)][:dims] if len(rest) <= dims else rest[-dims:]
    return bool(align), scales


def _sizes(shape: Any, dims: int) -> list[int]:
    return [int(v) for v in tuple(shape)[-dims:]]


def _upsample_forward_fpo(
    mode: str,
    dims: int,
    size_in: list[int],
    out: tuple[int, ...],
    align: bool,
    scales: list[Any],
    channels_last: bool = False,
) -> int:
    """FPO of a linear or bicubic upsample's forward on a CPU tensor.

    As ATen's kernel that runs computes them (see :func:`_upsample_rule`); ``channels_last``:
    the input is contiguous in the channels-last memory format (``channels_last_3d`` for 5-D).
    """
    size_out = _sizes(out, dims)
    n = numel(out)
    setup = sum(
        _scale_fpo(i, o, align, s) for i, o, s in zip(size_in, size_out, scales, strict=True)
    )
    if mode == "bicubic":
        return setup + sum(size_out) * _cubic_index_fpo(align) + 35 * n
    if mode in ("bilinear", "trilinear") and _linear_channels_last_kernel(out, channels_last):
        return (
            setup
            + _channels_last_weights(size_in, out, align, 4 if dims == 2 else 16)
            + ((7 if dims == 2 else 15) * n)
        )
    lambdas = sum(o * _lambda_fpo(i, o, align) for i, o in zip(size_in, size_out, strict=True))
    return setup + lambdas + {1: 3, 2: 9, 3: 21}[dims] * n


def _channels_last_weights(
    size_in: list[int], out: tuple[int, ...], align: bool, corner_products: int
) -> int:
    """The weights ATen's channels-last linear kernels compute inside their loops.

    ``cpu_upsample_linear_channels_last`` (forward) and
    ``cpu_upsample_linear_backward_channels_last``: per batch and index of each output
    dimension, that dimension's weights (:func:`_lambda_fpo`) at every index of the loops
    around it (depth per batch, rows per batch and depth, columns per pixel), then per
    output pixel the corners' products ``h_i w_j`` (4) or ``d_i h_j w_k`` (2 each, 16):
    ``corner_products``.
    """
    size_out = _sizes(out, len(size_in))
    total, outer = 0, int(out[0])
    for i, o in zip(size_in, size_out, strict=True):
        outer *= o
        total += outer * _lambda_fpo(i, o, align)
    return total + outer * corner_products


def _linear_channels_last_kernel(out: tuple[int, ...], channels_last: bool) -> bool:
    """Whether ATen runs its channels-last linear kernel (``cpu_upsample_linear_channels_last``).

    Bilinear (``upsample_bilinear2d_kernel_impl_float``, ``UpSampleKernel.cpp``): for a
    channels-last input of more than 3 channels or a small output (``H_out + W_out <= 128``:
    ``_use_vectorized_kernel_cond_2d``), and on one thread for 3 channels; trilinear
    (``_use_vectorized_kernel_cond_3d``): for a ``channels_last_3d`` input of more than 3
    channels only. Otherwise the generic kernel, whatever the memory format.
    """
    wide = int(out[1]) > 3
    if len(out) == 5:
        return channels_last and wide
    if len(out) != 4:
        return False
    if (channels_last and wide) or int(out[-2]) + int(out[-1]) <= 128:
        return True
    import torch

    return int(out[1]) == 3 and torch.get_num_threads() == 1


def _metadata_only(reads: Any) -> Any:
    """Mark a rule's reader as reading metadata only (the counter calls it on meta tensors)."""
    reads.metadata_only = True
    return reads


@_metadata_only
def _reads_channels_last(tensor: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """An upsample's ``channels_last``: whether ATen's dispatch takes the channels-last path.

    ``tensor`` (the input, or the backward's gradient) is contiguous in the channels-last
    memory format (``channels_last_3d`` for 5-D), as ATen's dispatch asks
    (``is_contiguous(at::MemoryFormat::ChannelsLast)``).

    Memory formats are metadata: read from real, meta and fake tensors alike (a meta copy made
    with ``.to("meta")`` keeps the strides; a meta tensor created contiguous counts as one).
    ``device``: whose kernels run, ``"cuda"`` for a CUDA tensor, real or fake (a meta tensor
    has no device to read: counted as on the CPU).
    """
    import torch

    device = _kernel_device(tensor)
    dim = tensor.dim()
    if dim not in (4, 5):
        return {"channels_last": False, "device": device}
    fmt = torch.channels_last if dim == 4 else torch.channels_last_3d
    return {"channels_last": bool(tensor.is_contiguous(memory_format=fmt)), "device": device}


# the count depends on the device: a count that read a meta tensor's (none: the CPU's kernels)
# says so (FPOResult.assumptions["meta_device"])
_reads_channels_last.reads_device = True  # type: ignore[attr-defined]


# -- on CUDA tensors: ATen's CUDA kernels (cuda/UpSample*.cu, UpSample.cuh) --------------------
#
# One thread per output location (or element) computes its own source indices and weights, so
# the weights are counted per thread, not per output index as on the CPU; the CUDA kernels'
# index is a truncating cast (0 FPO) where the CPU's is a floor. The backward kernels add into
# the zeroed input gradient with atomic adds (``fastAtomicAdd``, ``gpuAtomicAddNoReturn``): 1
# FPO each. Launch shapes that decide how often a weight is recomputed follow the launch code
# with a device's usual limits (1024 threads per block, 48 KiB of shared memory per block, warps
# of 32); the counts were checked against Python ports of the kernels, not on a GPU.


def _kernel_device(tensor: Any) -> str:
    """``"cuda"`` for a CUDA tensor (real or fake), else ``"cpu"``: see ``kernel_device``."""
    from greenprint.fpo import _rules_grid_sample

    return _rules_grid_sample.kernel_device(tensor)


def _cuda_lambda_fpo(align_corners: Any) -> int:
    """One dimension's weights of one CUDA linear thread: 3, 6 without ``align_corners``.

    ``area_pixel_compute_source_index`` (``scale * i``, 1; ``scale * (i + 0.5) - 0.5`` and the
    ``< 0`` compare, 4), the index a cast (0), ``lambda1 = real - index`` and
    ``lambda0 = 1 - lambda1`` (2). Computed for an unchanged dimension too.
    """
    return (1 if align_corners else 4) + 2


def _cuda_cubic_index_fpo(align_corners: Any) -> int:
    """One axis of a CUDA bicubic thread: the source index (1, or 3), ``floorf`` and ``t``."""
    return (1 if align_corners else 3) + 2


def _cuda_upsample_fpo(
    mode: str,
    dims: int,
    size_in: list[int],
    out: tuple[int, ...],
    align: bool,
    scales: list[Any],
    channels_last: bool,
    backward: bool,
) -> int:
    """FPO of a linear or bicubic upsample (or its backward, ``out`` the gradient) on CUDA.

    The scales on the host (as on the CPU); an unchanged size is a copy (bilinear: 0, its
    host code copies before the scales; the others compute the scales, then copy per thread).
    Otherwise one thread per output location computes every dimension's weights
    (:func:`_cuda_lambda_fpo`) and loops over the planes: linear 3, bilinear 9, trilinear 21
    per element (``h0 (w0 a + w1 b) + h1 (w0 c + w1 d)``), bicubic 210 (``cubic_interp1d``
    five times, each computing its 35 coefficients again and 7 for the taps). Bilinear on a
    ``channels_last`` input of 16 channels or more runs ``upsample_bilinear2d_nhwc_out_frame``:
    one thread per element, its weights included. Backward: linear 4, bilinear 12,
    trilinear 32 per gradient element (each corner's weights times the gradient, and its
    atomic add); bilinear's backward runs one thread per gradient element, either layout
    (its weights per element); bicubic's both coefficient sets per location (70) and 16
    taps of ``g * y_i * x_j`` added (48).
    """
    size_out = _sizes(out, dims)
    n = numel(out)
    locations = numel(tuple(size_out))
    setup = sum(
        _scale_fpo(i, o, align, s) for i, o, s in zip(size_in, size_out, scales, strict=True)
    )
    if size_in == size_out:
        return 0 if mode == "bilinear" else setup
    if mode == "bicubic":
        weights = 2 * _cuda_cubic_index_fpo(align)
        if backward:
            return setup + locations * (weights + 2 * _CUBIC_COEFFICIENTS) + 48 * n
        return setup + locations * weights + 5 * (_CUBIC_COEFFICIENTS + 7) * n
    weights = dims * _cuda_lambda_fpo(align)
    per_element = ({1: 4, 2: 12, 3: 32} if backward else {1: 3, 2: 9, 3: 21})[dims]
    if mode == "bilinear" and (backward or (channels_last and int(out[1]) >= 16)):
        return setup + n * (weights + per_element)
    return setup + locations * weights + per_element * n


def _nearest_windows(size_in: int, size_out: int, scale: float, exact: bool) -> int:
    """How many gradient values one dimension's windows of the CUDA backward add up.

    ``nearest_neighbor(_exact)_bw_compute_source_index``: the window of input index ``i`` is
    ``[ceilf(i * s), ceilf((i + 1) * s))`` (``- 0.5`` for exact), capped at ``size_out``.
    """

    def bound(i: int) -> int:
        value = _f32(_f32(i * scale) - 0.5) if exact else _f32(i * scale)
        return min(math.ceil(value), size_out)

    return sum(max(bound(i + 1) - bound(i), 0) for i in range(size_in))


def _nearest_backward_cuda_fpo(
    exact: bool,
    dims: int,
    grad_output: tuple[int, ...],
    input_size: Any,
    scales: list[Any],
    channels_last: bool,
) -> int:
    """FPO of ``upsample_nearest{1,2,3}d_backward`` (and exact) on CUDA.

    One thread per channel and input location (per element for a ``channels_last`` 2-D
    gradient of 4 channels or more) computes both ends of each dimension's window,
    ``ceilf(i * scale)`` (2, exact 3 with ``- 0.5``), then per plane sums the window into a
    zeroed accumulator (1 per gradient value added: :func:`_nearest_windows`). The scales on
    the host (1 each); 2-D of unchanged sizes: a copy.
    """
    per = 3 if exact else 2
    size_in, size_out = _sizes(input_size, dims), _sizes(grad_output, dims)
    setup = dims  # compute_scales_value_backwards<float>: the > 0 compare, or out / in
    if dims == 2 and size_in == size_out:
        return setup
    adds = numel(tuple(grad_output)[:2])
    for i, o, s in zip(size_in, size_out, scales, strict=True):
        scale = _f32(s) if s is not None and s > 0 else _f32(_f32(float(o)) / i)
        adds *= _nearest_windows(i, o, scale, exact)
    threads = int(input_size[1]) * numel(tuple(size_in))
    if dims == 2 and channels_last and int(input_size[1]) >= 4:
        threads *= int(input_size[0])
    return setup + threads * dims * 2 * per + adds


def _upsample_rule(mode: str, dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        *args: Any,
        out_shape: Any = None,
        channels_last: bool = False,
        device: str = "cpu",
        **kwargs: Any,
    ) -> int:
        align, scales = _interp_args(args[1:], kwargs, dims)
        out = first_shape(out_shape)
        size_in = _sizes(self, dims)
        if device == "cuda":
            return _cuda_upsample_fpo(
                mode, dims, size_in, out, align, scales, channels_last, backward=False
            )
        return _upsample_forward_fpo(mode, dims, size_in, out, align, scales, channels_last)

    rule.__doc__ = (
        f"``upsample_{mode}``'s forward as ATen's CPU kernel runs it. Generic kernel "
        "(``upsample_non_separable_Nd_kernel_impl``): per dimension its scale (1 or 2) and per "
        "output index its source index and weights (linear: 9, 6 with ``align_corners``, 0 "
        "for an unchanged size; bicubic 42, 40), then per output element the interpolation "
        "along each dimension, ``t0 * w0 + t1 * w1`` (linear 3, bilinear 9, trilinear 21; "
        "bicubic 35). Bilinear on a small output (``H_out + W_out <= 128``) or a "
        "channels-last input of more than 3 channels (``channels_last``, read from the "
        "tensor's strides: :func:`_reads_channels_last`) runs "
        "``cpu_upsample_linear_channels_last`` instead: per batch and output row the row's "
        "weights, per output pixel the column's weights and their 4 products ``h_i * w_j``, "
        "then 7 per element (``x00 w00 + x01 w01 + x10 w10 + x11 w11``); trilinear on a "
        "``channels_last_3d`` input of more than 3 channels likewise, per batch and depth the "
        "depth's weights, per row the row's, per pixel the column's and the 8 products "
        "``d_i h_j w_k`` (16), then 15 per element (8 products, 7 adds). See "
        ":func:`_linear_channels_last_kernel`. On a CUDA tensor (``device``, read from real and "
        "fake tensors): ATen's CUDA kernel, :func:`_cuda_upsample_fpo`."
    )
    return rule


def _upsample_backward_rule(mode: str, dims: int) -> Any:
    def rule(
        grad_output: tuple[int, ...],
        output_size: Any,
        input_size: Any,
        *args: Any,
        channels_last: bool = False,
        device: str = "cpu",
        **kwargs: Any,
    ) -> int:
        align, scales = _interp_args(args, kwargs, dims)
        size_in, size_out = _sizes(input_size, dims), _sizes(grad_output, dims)
        if device == "cuda":
            return _cuda_upsample_fpo(
                mode, dims, size_in, tuple(grad_output), align, scales, channels_last, True
            )
        n = numel(grad_output)
        setup = sum(
            _scale_fpo(i, o, align, s) for i, o, s in zip(size_in, size_out, scales, strict=True)
        )
        if channels_last and mode in ("bilinear", "trilinear"):
            products = 4 if dims == 2 else 16
            weights = _channels_last_weights(size_in, tuple(grad_output), align, products)
            return setup + weights + (8 if dims == 2 else 16) * n
        if mode == "bicubic":
            if size_in == size_out:
                return 0
            # per plane and pixel: source index, guard_index_and_lambda's floor, subtract, max
            # and min, per axis; both coefficient sets
            per_pixel = 2 * ((1 if align else 3) + 4) + 2 * _CUBIC_COEFFICIENTS
            return setup + n * per_pixel + 48 * n
        lambdas, outer = 0, numel(tuple(grad_output)[: len(grad_output) - dims])
        for i, o in zip(size_in, size_out, strict=True):
            outer *= o
            lambdas += outer * _lambda_fpo(i, o, align)
        return setup + lambdas + {1: 4, 2: 12, 3: 32}[dims] * n

    rule.__doc__ = (
        f"``upsample_{mode}_backward`` as ATen's CPU kernel runs it. Linear modes "
        "(``cpu_upsample_linear_backward``): the scales once, then inside the loop over planes "
        "each dimension's weights again at every index of the loops around it (bilinear: per "
        "plane and output row the row's, per gradient element the column's), and per gradient "
        "element each corner's ``w_1 ... w_d g`` added into the input's gradient (linear 4, "
        "bilinear 12, trilinear 32). Bicubic (``upsample_bicubic2d_backward_out_frame``): "
        "unchanged sizes are a copy (0); otherwise, inside the loop over planes, per output "
        "pixel both source indices, ``guard_index_and_lambda``'s floor, fraction and clamps "
        "(4 per axis) and both coefficient sets (84, 80 with ``align_corners``; per pixel "
        "only, 80, before s25), and 16 taps of ``g * y_j * x_i`` added (48) per gradient "
        "element. A channels-last gradient (``channels_last``, read from its strides: "
        ":func:`_reads_channels_last`) of bilinear or trilinear runs "
        "``cpu_upsample_linear_backward_channels_last``: the weights as its forward "
        "(:func:`_channels_last_weights`: per batch and row the row's, per pixel the "
        "column's and the corners' products ``h_i w_j``, 4, or ``d_i h_j w_k``, 16), then per "
        "gradient element and corner ``gin += w * g`` (bilinear 8, trilinear 16). On a CUDA "
        "tensor (``device``): ATen's CUDA kernel, :func:`_cuda_upsample_fpo`."
    )
    return rule


for _name, _mode, _dims in (
    ("upsample_linear1d", "linear", 1),
    ("upsample_bilinear2d", "bilinear", 2),
    ("upsample_trilinear3d", "trilinear", 3),
    ("upsample_bicubic2d", "bicubic", 2),
):
    register_rule(f"aten.{_name}", reads=_reads_channels_last)(_upsample_rule(_mode, _dims))
    register_rule(f"aten.{_name}_backward", reads=_reads_channels_last)(
        _upsample_backward_rule(_mode, _dims)
    )


def _nearest_args(args: tuple[Any, ...], kwargs: dict[str, Any], dims: int) -> list[Any]:
    """A nearest op's scales (after its sizes): one per dimension, None where not given."""
    rest = list(args)
    for key in ("scales_d", "scales_h", "scales_w", "scales", "scale_factors"):
        if key in kwargs:
            rest.append(kwargs[key])
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = list(rest[0])
    if len(rest) == 1 and rest[0] is None:
        rest = []
    return [*rest, *([None] * dims)][:dims] if len(rest) <= dims else rest[-dims:]


def _nearest_backward_rule(exact: bool, dims: int) -> Any:
    def backward(
        grad_output: tuple[int, ...],
        output_size: Any,
        input_size: Any,
        *args: Any,
        channels_last: bool = False,
        device: str = "cpu",
        **kwargs: Any,
    ) -> int:
        if device != "cuda":
            return numel(grad_output)
        scales = _nearest_args(args, kwargs, dims)
        return _nearest_backward_cuda_fpo(
            exact, dims, grad_output, input_size, scales, channels_last
        )

    backward.__doc__ = (
        "1 FPO per gradient element (added into the input's gradient); on a CUDA tensor "
        "(``device``) the windows' ends too: :func:`_nearest_backward_cuda_fpo`."
    )
    return backward


# The forward ops have a decomposition (``torch._decomp``: an index gather), which the counter
# runs instead of the kernel on every device; their rule, 0, counts a copy.
register_rule(
    [
        f"aten.{kind}{d}"
        for kind in ("upsample_nearest", "_upsample_nearest_exact")
        for d in ("1d", "2d", "3d")
    ]
)(zero)
for _exact, _kind in ((False, "upsample_nearest"), (True, "_upsample_nearest_exact")):
    for _d in (1, 2, 3):
        register_rule(f"aten.{_kind}{_d}d_backward", reads=_reads_channels_last)(
            _nearest_backward_rule(_exact, _d)
        )
