"""FPO rules for losses, pooling and interpolation.

Conventions as in :mod:`greenprint.fpo._rules_nn`: a reduction of n elements costs n FPO; each
rule's docstring gives its formula, ``N`` being the number of input elements.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule, zero

__all__: list[str] = []


# -- losses ----------------------------------------------------------------------------------


def _reduce(n: int, reduction: int) -> int:
    """Cost of reducing n per-element losses: 0 (none), n (sum), n + 1 (mean)."""
    return 0 if reduction == 0 else n + (1 if reduction == 1 else 0)


def _counted_targets(
    self: Any,
    target: Any,
    weight: Any = None,
    reduction: int = 1,
    ignore_index: int = -100,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    """How many targets ATen's NLL kernels compute (not ``ignore_index``): ``{"kept": n}``."""
    return {"kept": int((target != ignore_index).sum())}


def _counted_targets_backward(
    grad_output: Any,
    self: Any,
    target: Any,
    weight: Any = None,
    reduction: int = 1,
    ignore_index: int = -100,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _counted_targets(self, target, weight, reduction, ignore_index)


@register_rule(["aten.nll_loss_forward", "aten.nll_loss2d_forward"], reads=_counted_targets)
def nll_loss_rule(
    self: tuple[int, ...],
    target: tuple[int, ...],
    weight: Any = None,
    reduction: int = 1,
    *args: Any,
    kept: int | None = None,
    **kwargs: Any,
) -> int:
    """ATen's ``nll_loss_out_frame`` / ``nll_loss2d_forward_out_frame``, per target.

    Summed or averaged: the kernel subtracts each picked log-probability from its cascade sum
    (``loss_partial_sums[0] -= data``: the negation and the add are one op), 1 per target;
    with class weights ``-= data * w`` and ``weight_partial_sums[0] += w``, 3; the mean divides
    once (1). (It was 2 per target unweighted, a negation counted besides the sum; the carries
    between the cascade's levels, about 1 add per 8 targets, are the reduction's and not
    counted, as elsewhere: a reduction of n values costs n.) ``reduction="none"`` on a batch
    (2-D or 4-D input): ``-input * w`` per target, ``w`` 1 without weights (a multiply all the
    same), 2 (it was 1 unweighted). Targets equal to ``ignore_index`` (-100 by default:
    padding tokens in language-model labels) are skipped by the kernels
    (``if (cur_target == ignore_index) continue``) and cost nothing; how many are read from
    the target's values (on meta, which has none, every target counts: an upper bound).
    """
    t = numel(target) if kept is None else kept
    if reduction == 0 and len(self) >= 2:
        return 2 * t
    return t * (3 if weight is not None else 1) + (1 if reduction == 1 else 0)


@register_rule(
    ["aten.nll_loss_backward", "aten.nll_loss2d_backward"], reads=_counted_targets_backward
)
def nll_loss_backward_rule(
    grad_output: tuple[int, ...],
    self: tuple[int, ...],
    target: tuple[int, ...],
    weight: Any = None,
    reduction: int = 1,
    *args: Any,
    kept: int | None = None,
    **kwargs: Any,
) -> int:
    """ATen's ``nll_loss_backward_out_frame`` / ``nll_loss2d_backward_out_frame``.

    Summed or averaged: the kernel computes ``grad = -(g / total_weight)`` once (divide and
    negate, 2; a sum only negates, 1) and writes it into each kept target's entry of a zeroed
    gradient, times the class weight when there are weights (1 per target, else a copy).
    ``reduction="none"`` on a batch: ``-w * g`` per target, ``w`` 1 without weights (2). (It
    was 2 per target, 3 with weights, whatever the reduction: the scalar's division and
    negation counted for every target.) Targets equal to ``ignore_index`` are skipped, as in
    the forward.
    """
    t = numel(target) if kept is None else kept
    if reduction == 0 and len(self) >= 2:
        return 2 * t
    return (2 if reduction == 1 else 1) + (t if weight is not None else 0)


@register_rule("aten.mse_loss")
def mse_loss_rule(self: tuple[int, ...], target: Any, reduction: int = 1, **kw: Any) -> int:
    """2N (subtract, square), reduced."""
    n = numel(self)
    return 2 * n + _reduce(n, reduction)


@register_rule("aten.mse_loss_backward")
def mse_loss_backward_rule(
    grad_output: Any, self: tuple[int, ...], target: Any, reduction: int = 1, **kw: Any
) -> int:
    """3N ``2 * (x - t) * g``, + N for the mean's division."""
    n = numel(self)
    return 3 * n + (n if reduction == 1 else 0)


@register_rule(["aten.smooth_l1_loss", "aten.huber_loss", "aten.l1_loss"])
def smooth_l1_rule(
    self: tuple[int, ...], target: Any, reduction: int = 1, *a: Any, **k: Any
) -> int:
    """5N (subtract, abs, compare, square-and-scale or shift), reduced."""
    n = numel(self)
    return 5 * n + _reduce(n, reduction)


@register_rule(["aten.smooth_l1_loss_backward", "aten.huber_loss_backward"])
def smooth_l1_backward_rule(grad_output: Any, self: tuple[int, ...], *a: Any, **k: Any) -> int:
    """4N."""
    return 4 * numel(self)


@register_rule("aten.binary_cross_entropy")
def bce_rule(
    self: tuple[int, ...], target: Any, weight: Any = None, *args: Any, **kwargs: Any
) -> int:
    """9N, + N with weights, reduced (mean by default).

    torch's formula ``(t - 1) * max(log(1 - x), -100) - t * max(log(x), -100)``: t - 1,
    1 - x, two logs, two clamps, two products, the subtraction.
    """
    n = numel(self)
    reduction = args[-1] if args and isinstance(args[-1], int) else kwargs.get("reduction", 1)
    return 9 * n + (n if weight is not None else 0) + _reduce(n, reduction)


@register_rule("aten.binary_cross_entropy_with_logits")
def bce_with_logits_rule(
    self: tuple[int, ...],
    target: Any,
    weight: Any = None,
    pos_weight: Any = None,
    reduction: int = 1,
    **kwargs: Any,
) -> int:
    """9N as :func:`bce_rule`; with ``pos_weight`` + 3N + one subtract per ``pos_weight`` element.

    ``(1 - t) * x - log_sigmoid(x)``: log-sigmoid 6 (as ``log_sigmoid_forward``), 1 - t, the
    product, the subtraction. ``pos_weight`` scales the log-sigmoid term by ``(pos_weight - 1)
    * target + 1``: the subtract on ``pos_weight``, then a multiply, an add and the scaling
    multiply per element.
    """
    n = numel(self)
    extra = 3 * n + numel(pos_weight) if pos_weight is not None else 0
    return bce_rule(self, target, weight, reduction=reduction) + extra


@register_rule("aten.binary_cross_entropy_backward")
def bce_backward_rule(
    grad_output: Any,
    self: tuple[int, ...],
    target: Any = None,
    weight: Any = None,
    reduction: int = 1,
    **kwargs: Any,
) -> int:
    """6N: ``g * (x - t) / max((1 - x) * x, eps)``; + N with weights, + N for the mean."""
    n = numel(self)
    return 6 * n + (n if weight is not None else 0) + (n if reduction == 1 else 0)


# -- pooling ---------------------------------------------------------------------------------


def _per_dim(value: Any, dims: int, default: Any) -> list[int]:
    """A pooling argument (an int or a list of one or ``dims`` ints; empty: ``default``)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    v = list(value) if isinstance(value, (list, tuple)) else [value]
    return v * dims if len(v) == 1 else v[-dims:]


def _max_pool_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        ks = _per_dim(kernel_size, dims, 1)
        st = _per_dim(stride, dims, ks)
        pad, dil = _per_dim(padding, dims, 0), _per_dim(dilation, dims, 1)
        out = first_shape(out_shape)
        compares = numel(tuple(self[: len(self) - dims]))
        for i, o, k, s_, p, d in zip(self[-dims:], out[-dims:], ks, st, pad, dil, strict=True):
            compares *= sum(
                sum(1 for m in range(k) if 0 <= j * s_ - p + m * d < i) for j in range(o)
            )
        return compares

    rule.__doc__ = (
        f"{dims}-D max pooling: one compare per window element inside the input. ATen's CPU "
        "kernel starts each window at its first tap inside the input (``while (ih0 < 0) ih0 "
        "+= dilation``), ends it at the input's edge, and compares only those taps: padding "
        "and ``ceil_mode``'s overhang add none."
    )
    return rule


register_rule(["aten.max_pool2d_with_indices", "aten.max_pool2d"])(_max_pool_rule(2))
register_rule("aten.max_pool1d")(_max_pool_rule(1))
register_rule(["aten.max_pool3d_with_indices", "aten.max_pool3d"])(_max_pool_rule(3))


@register_rule(
    [
        "aten.max_pool2d_with_indices_backward",
        "aten.max_pool3d_with_indices_backward",
        "aten.adaptive_max_pool2d_backward",
        "aten.adaptive_max_pool3d_backward",
    ]
)
def max_pool_backward_rule(grad_output: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """One add per gradient element (scattered to the arg-max)."""
    return numel(grad_output)


def _avg_pool_fpo(
    input: tuple[int, ...],
    output: tuple[int, ...],
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
) -> int:
    """The adds and divisions of ATen's CPU average pooling (forward or backward).

    ``cpu_avg_pool`` clips each window to the input (``ih0 = max(o s - p, 0)``, ``ih1 =
    min(o s - p + k, in)``) and sums only the elements inside it, whatever
    ``count_include_pad`` says (that flag only picks the divisor); a window entirely in the
    padding (``ceil_mode``) is skipped. So per output one add per element of its clipped window
    and one division; the backward divides each gradient element once and adds it into the
    same elements. Windows are separable: the adds are the product over dimensions of the
    summed clipped lengths, the divisions the product of the non-empty windows' counts.
    """
    ks = _per_dim(kernel_size, dims, 1)
    st = _per_dim(stride, dims, ks)
    pad = _per_dim(padding, dims, 0)
    planes = numel(tuple(input[: len(input) - dims]))
    adds, divisions = planes, planes
    for i, o, k, s_, p in zip(input[-dims:], output[-dims:], ks, st, pad, strict=True):
        lengths = [max(0, min(j * s_ - p + k, i) - max(j * s_ - p, 0)) for j in range(o)]
        adds *= sum(lengths)
        divisions *= sum(1 for n in lengths if n > 0)
    return adds + divisions


def _avg_pool_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        return _avg_pool_fpo(self, first_shape(out_shape), dims, kernel_size, stride, padding)

    rule.__doc__ = (
        f"{dims}-D average pooling: per output one add per element of its window clipped to "
        "the input, and one division (see :func:`_avg_pool_fpo`)."
    )
    return rule


def _avg_pool_backward_rule(dims: int) -> Any:
    def rule(
        grad_output: tuple[int, ...],
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        *args: Any,
        **kwargs: Any,
    ) -> int:
        return _avg_pool_fpo(self, grad_output, dims, kernel_size, stride, padding)

    rule.__doc__ = (
        f"{dims}-D average pooling's backward: per gradient element one division and one add "
        "per element of its window clipped to the input (see :func:`_avg_pool_fpo`)."
    )
    return rule


register_rule("aten.avg_pool1d")(_avg_pool_rule(1))
register_rule("aten.avg_pool2d")(_avg_pool_rule(2))
register_rule("aten.avg_pool3d")(_avg_pool_rule(3))
register_rule("aten.avg_pool2d_backward")(_avg_pool_backward_rule(2))
register_rule("aten.avg_pool3d_backward")(_avg_pool_backward_rule(3))


def _adaptive_window_sum(in_size: int, out_size: int) -> int:
    """Sum of the adaptive pooling window lengths along one dimension (exact, overlaps too)."""
    return sum(
        -((-(j + 1) * in_size) // out_size) - (j * in_size) // out_size for j in range(out_size)
    )


def _adaptive_reads(input: tuple[int, ...], output: tuple[int, ...], dims: int) -> int:
    lead = numel(tuple(input[: len(input) - dims]))
    reads = lead
    for i, o in zip(input[-dims:], output[-dims:], strict=True):
        reads *= _adaptive_window_sum(i, o)
    return reads


def _size_dims(output_size: Any) -> int:
    return len(output_size) if isinstance(output_size, (list, tuple)) else 1


def _adaptive_avg_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...], output_size: Any, *, out_shape: Any = None, **kwargs: Any
    ) -> int:
        out = first_shape(out_shape)
        return _adaptive_reads(self, out, dims) + dims * numel(out)

    rule.__doc__ = (
        f"One add per element of every window, {dims} divisions per output element: ATen's "
        "kernel (CPU, contiguous, and CUDA) divides the sum by each window length in turn, "
        "``sum / kh / kw`` (``/ kd`` first in 3-D); a channels-last input divides once by the "
        "product, counted as contiguous."
    )
    return rule


def _adaptive_avg_backward_rule(dims: int) -> Any:
    def rule(grad_output: tuple[int, ...], self: tuple[int, ...], **kwargs: Any) -> int:
        return _adaptive_reads(self, grad_output, dims) + dims * numel(grad_output)

    rule.__doc__ = (
        f"The forward's count: {dims} divisions per gradient element (``g / kh / kw``), one add "
        "per window element. The pooled dimensions are the last "
        f"{dims}, batched or not."
    )
    return rule


register_rule("aten._adaptive_avg_pool2d")(_adaptive_avg_rule(2))
register_rule("aten._adaptive_avg_pool3d")(_adaptive_avg_rule(3))
register_rule("aten._adaptive_avg_pool2d_backward")(_adaptive_avg_backward_rule(2))
register_rule("aten._adaptive_avg_pool3d_backward")(_adaptive_avg_backward_rule(3))


@register_rule(["aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d"])
def adaptive_max_pool_rule(
    self: tuple[int, ...], output_size: Any, *, out_shape: Any = None, **k: Any
) -> int:
    """One compare per element of every window."""
    out = first_shape(out_shape)
    return _adaptive_reads(self, out, _size_dims(output_size))


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

_CUDA_THREADS = 1024
"""``maxThreadsPerBlock`` of the NVIDIA GPUs ATen's launch code asks (all since compute 2.0)."""
_CUDA_SHARED = 48 * 1024
"""``sharedMemPerBlock``, which sizes the antialiased forward's blocks (48 KiB on NVIDIA GPUs)."""
_CUDA_WARP = 32
_CUDA_MAX_GRID_Z = 65535


def _kernel_device(tensor: Any) -> str:
    """``"cuda"`` for a CUDA tensor (real or fake), else ``"cpu"``: see ``kernel_device``."""
    from greenprint.fpo import _rules_grid_sample

    return _rules_grid_sample.kernel_device(tensor)


def _last_pow2(n: int) -> int:
    """``lastPow2``: the largest power of 2 not above ``n`` (1 for ``n <= 1``)."""
    return 1 << (max(int(n), 1).bit_length() - 1)


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


_CUDA_AA = ("bilinear", "bicubic")
"""The antialiased modes with a CUDA kernel (``UpSampleBilinear2d.cu``)."""

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
