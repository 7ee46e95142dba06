"""FPO rules for losses, pooling and interpolation.

Conventions as in :mod:`greenprint.fpo._rules_nn`: a reduction of n elements costs n FPO; each
rule's docstring gives its formula, ``N`` being the number of input elements.
"""

from __future__ import annotations

import math
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

_UPSAMPLE_FORWARD = {
    "upsample_linear1d": 3,
    "upsample_bilinear2d": 9,
    "upsample_trilinear3d": 21,
    "upsample_bicubic2d": 35,
}
"""FPO per output element, as ATen's CPU kernel (``upsample_generic_Nd_kernel_impl``) writes
the interpolation along each dimension, ``output = t_0 * w_0; output += t_j * w_j``: ``2k -
1`` for ``k`` taps (the 2-tap ``t0 * w0 + t1 * w1`` is 3). Linear 3; bilinear: two
interpolations along W and one along H, 9; trilinear 21; bicubic: four 4-tap interpolations
along W and one along H, 7 each, 35 (from s9 to s24 it was 40, 8 per 4-tap interpolation,
counting an add into a zeroed accumulator the kernel does not perform). The weights are
computed once per output row and column, not per element, and not counted."""


def _upsample(cost: int) -> Any:
    def rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return cost * numel(first_shape(out_shape))

    rule.__doc__ = f"{cost} FPO per output element."
    return rule


_UPSAMPLE_BACKWARD = {
    "upsample_linear1d": 4,
    "upsample_bilinear2d": 12,
    "upsample_trilinear3d": 32,
    "upsample_bicubic2d": 48,
}
"""FPO per gradient element, as ATen's CPU backward kernels scatter it: each of the ``2^d``
corners (bicubic: the 4 x 4 taps) gets ``weight_1 * ... * weight_d * g`` added into the input's
gradient, ``d`` multiplies and an add: linear 2 x 2 = 4, bilinear 4 x 3 = 12, trilinear 8 x 4 =
32, bicubic 16 x 3 = 48 (``out_value * y_coeffs[j] * x_coeffs[i]``). The forward's separable
lerps share their products between corners; the scatter does not."""


def _upsample_backward(cost: int) -> Any:
    def rule(grad_output: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
        return cost * numel(grad_output)

    rule.__doc__ = f"{cost} FPO per gradient element (see ``_UPSAMPLE_BACKWARD``)."
    return rule


for _name, _cost in _UPSAMPLE_FORWARD.items():
    register_rule(f"aten.{_name}")(_upsample(_cost))
    register_rule(f"aten.{_name}_backward")(_upsample_backward(_UPSAMPLE_BACKWARD[_name]))

# -- antialiased interpolation: the filter is stretched by the scale when downsampling ---------

_AA_TAPS = {"bilinear": 2, "bicubic": 4, "lanczos": 6}
"""The filter's width in input samples at scale 1 (triangle, cubic, Lanczos-3)."""


def _aa_windows(
    size_in: int,
    size_out: int,
    taps: int,
    align_corners: Any,
    scale: Any,
    skip_unchanged: bool = True,
) -> list[int]:
    """Inputs read by each output index along one dimension, as torch's antialiased kernels.

    ``scale`` is input / output (``1 / scale_factor`` when one is given, ``(in - 1) /
    (out - 1)`` with ``align_corners``); when downsampling the filter is stretched to
    ``support = taps / 2 * scale`` samples each side, so a 4x bilinear downsample reads about 8
    inputs per output. Output ``i`` reads ``[int(c - support + 0.5), int(c + support + 0.5))``
    clipped to the input, ``c = scale * (i + 0.5)``. A dimension whose size does not change is
    copied by the forward (torch skips it): no window, returned as an empty list, unless
    ``skip_unchanged`` is False (the backward weighs it too).
    """
    if size_in == size_out and skip_unchanged:
        return []
    if align_corners:
        ratio = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale is not None and scale > 0 else size_in / size_out
    support = taps * 0.5 * ratio if ratio >= 1.0 else taps * 0.5
    widest = 2 * math.ceil(support) + 1
    windows = []
    for i in range(size_out):
        center = ratio * (i + 0.5)
        first = max(int(center - support + 0.5), 0)
        last = min(int(center + support + 0.5), size_in)
        windows.append(min(max(last - first, 0), widest))
    return windows


def _aa_fpo(
    planes: int, size_in: Any, size_out: Any, taps: int, align_corners: Any, scales: Any
) -> int:
    """FPO of an antialiased 2-D resize of ``planes`` (N * C) planes, forward.

    As ATen's CPU kernel runs it (``separable_upsample_generic_Nd_kernel_impl``): one pass per
    dimension whose size changes, W first over every input row (``H_in`` rows of ``W_out``
    outputs), then H over that result (``W_out`` columns of ``H_out`` outputs); an unchanged
    dimension is skipped (both unchanged: a copy). Each output of a pass is
    ``interpolate_aa_single_dim`` over its window of ``k`` inputs, ``output = t_0 * w_0;
    output += t_j * w_j``: ``2k - 1``. So ``H_in * sum(2 kw - 1) + W_out * sum(2 kh - 1)`` per
    plane. (Until s24 it was counted as a direct loop, ``kh`` interpolations along W for each
    output element and ``2k`` per window: 672 FPO for a (1, 2, 8, 8) -> (2, 2) bilinear
    downsample where the kernel performs 440.)
    """
    (h, w), (oh, ow) = (int(v) for v in size_in), (int(v) for v in size_out)
    scale_h, scale_w = scales
    rows = _aa_windows(h, oh, taps, align_corners, scale_h)
    cols = _aa_windows(w, ow, taps, align_corners, scale_w)
    along_w = h * sum(2 * k - 1 for k in cols)
    along_h = ow * sum(2 * k - 1 for k in rows)
    return planes * (along_w + along_h)


def _aa_backward_fpo(
    planes: int, size_in: Any, size_out: Any, taps: int, align_corners: Any, scales: Any
) -> int:
    """FPO of an antialiased 2-D resize's backward: ``3 kh kw`` per gradient element.

    ATen's ``cpu_upsample_genNd_backward_aa`` adds ``wx[x] * wy[y] * g`` into every input of
    the output's ``kh x kw`` window (two multiplies and an add), not separably; it weighs an
    unchanged dimension too (its window at scale 1: 2 taps for bilinear, clipped at the edges),
    where the forward copies it.
    """
    (h, w), (oh, ow) = (int(v) for v in size_in), (int(v) for v in size_out)
    scale_h, scale_w = scales
    rows = _aa_windows(h, oh, taps, align_corners, scale_h, skip_unchanged=False)
    cols = _aa_windows(w, ow, taps, align_corners, scale_w, skip_unchanged=False)
    return planes * 3 * sum(rows) * sum(cols)


def _aa_rule(mode: str) -> Any:
    taps = _AA_TAPS[mode]

    def rule(
        self: tuple[int, ...],
        output_size: Any,
        align_corners: Any = False,
        scales_h: Any = None,
        scales_w: Any = None,
        *,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        if isinstance(scales_h, list):  # the .vec overload: scale_factors, output_size maybe None
            scales_h, scales_w = ([*scales_h, None, None])[:2]
        size_out = first_shape(out_shape)[-2:] if out_shape is not None else output_size
        planes = numel(self[:-2])
        return _aa_fpo(planes, self[-2:], size_out, taps, align_corners, (scales_h, scales_w))

    def backward(
        grad_output: tuple[int, ...],
        output_size: Any,
        input_size: Any,
        align_corners: Any = False,
        scales_h: Any = None,
        scales_w: Any = None,
        **kwargs: Any,
    ) -> int:
        planes = numel(tuple(input_size)[:-2])
        size_in = tuple(input_size)[-2:]
        scales = (scales_h, scales_w)
        return _aa_backward_fpo(planes, size_in, output_size, taps, align_corners, scales)

    rule.__doc__ = f"Antialiased {mode} resize: see :func:`_aa_fpo` ({taps}-sample filter)."
    backward.__doc__ = "Its backward, scattered per window element: :func:`_aa_backward_fpo`."
    return rule, backward


for _mode in _AA_TAPS:
    _forward, _backward = _aa_rule(_mode)
    register_rule(f"aten._upsample_{_mode}2d_aa")(_forward)
    register_rule(f"aten._upsample_{_mode}2d_aa_backward")(_backward)

register_rule(
    [
        f"aten.{kind}{d}"
        for kind in ("upsample_nearest", "_upsample_nearest_exact")
        for d in ("1d", "2d", "3d")
    ]
)(zero)
register_rule(
    [
        f"aten.{kind}{d}_backward"
        for kind in ("upsample_nearest", "_upsample_nearest_exact")
        for d in ("1d", "2d", "3d")
    ]
)(_upsample_backward(1))
