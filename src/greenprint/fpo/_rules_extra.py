"""FPO rules for further ops a survey of real models found without one.

``nn.Bilinear`` (``_trilinear``), window functions, cross products, RReLU and the shrink
activations, fractional max pooling, the margin losses, ``affine_grid``, binary searches,
``unique``, ``bincount``, ``trace``, ``renorm``, ``polar``, ``sinc``, Bessel functions, weight
normalisation and the matrix exponential. Conventions as in :mod:`greenprint.fpo._rules_misc`;
each docstring derives its count.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []


def _expanded(shape: tuple[int, ...], expand: Any) -> list[int]:
    out = list(shape)
    for d in expand:
        out.insert(d, 1)
    return out


def _sumproduct_pair(
    left: list[int], right: list[int], sum_dims: list[int]
) -> tuple[int, list[int]]:
    """ATen's ``sumproduct_pair`` of two (unsqueezed) shapes: ``(FPO, result shape)``.

    No dimension summed: an elementwise product, 1 per element of the broadcast shape.
    Otherwise a summed dimension only one side has is summed on that side first (1 per
    element), then one ``bmm`` over the dimensions both have, ``2 * lro * lo * sum * ro``.
    """
    if not sum_dims:
        out = [max(a, b) for a, b in zip(left, right, strict=True)]
        return math.prod(out), out
    left, right, cost = list(left), list(right), 0
    both = lo = ro = summed = 1
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        if i in sum_dims:
            if a != 1 and b != 1:
                summed *= a
            elif a != 1:
                cost, left[i] = cost + math.prod(left), 1
            elif b != 1:
                cost, right[i] = cost + math.prod(right), 1
        elif a != 1 and b != 1:
            both *= a
        elif a != 1:
            lo *= a
        elif b != 1:
            ro *= b
    out = [
        1 if i in sum_dims else max(a, b) for i, (a, b) in enumerate(zip(left, right, strict=True))
    ]
    return cost + 2 * both * lo * summed * ro, out


@register_rule("aten._trilinear")
def trilinear_rule(
    i1: tuple[int, ...],
    i2: tuple[int, ...],
    i3: tuple[int, ...],
    expand1: Any,
    expand2: Any,
    expand3: Any,
    sumdim: Any,
    unroll_dim: int = 1,
    *args: Any,
    **kwargs: Any,
) -> int:
    """ATen's ``_trilinear``: per slice of ``unroll_dim``, two contractions and an add.

    For each slice ``k`` of the unrolled dimension, two ``sumproduct_pair`` calls and the add
    of their result into the output: ``i1 * i2`` summed over the summed dimensions ``i3``
    lacks, then times ``i3`` summed over the rest (see :func:`_sumproduct_pair`: an
    elementwise product where nothing is summed); the unrolled dimension is summed by those
    adds. ``nn.Bilinear`` (``x1 (B, I)``,
    ``W (O, I, J)``, ``x2 (B, J)``): ``2BOIJ + 2BOJ + BO``; its backward (three
    ``_trilinear`` calls): ``x1`` ``3BOIJ + BOI``, ``W`` ``2BOIJ + BOI + OIJ``, ``x2``
    ``2BOIJ + 2BOJ``.
    """
    s1, s2, s3 = (_expanded(tuple(s), e) for s, e in ((i1, expand1), (i2, expand2), (i3, expand3)))
    if 0 in s1 or 0 in s2 or 0 in s3:
        return 0
    summed, e3 = set(sumdim), set(expand3)
    first = [i for i in range(len(s1)) if i in e3 and i in summed and i != unroll_dim]
    second = [i for i in range(len(s1)) if i not in e3 and i in summed and i != unroll_dim]
    unroll = max(s1[unroll_dim], s2[unroll_dim], s3[unroll_dim])
    a, b, c = list(s1), list(s2), list(s3)
    a[unroll_dim] = b[unroll_dim] = c[unroll_dim] = 1
    cost1, buf = _sumproduct_pair(a, b, first)
    cost2, buf = _sumproduct_pair(buf, c, second)
    return unroll * (cost1 + cost2 + math.prod(buf))


register_rule(["aten.bartlett_window"])(
    lambda *a, out_shape=None, **k: 3 * numel(first_shape(out_shape))
)
register_rule(["aten.hann_window", "aten.hamming_window"])(
    lambda *a, out_shape=None, **k: 4 * numel(first_shape(out_shape))
)
register_rule(["aten.blackman_window"])(
    lambda *a, out_shape=None, **k: 8 * numel(first_shape(out_shape))
)


@register_rule("aten.linalg_cross")
def cross_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Two products and a subtract per output component: 3 per output element."""
    return 3 * numel(first_shape(out_shape))


@register_rule(["aten.rrelu_with_noise", "aten.rrelu_with_noise_"])
def rrelu_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """As leaky ReLU, with a random slope: compare and multiply, 2 per element (either way)."""
    return 2 * numel(first_shape(out_shape))


@register_rule("aten.rrelu_with_noise_backward")
def rrelu_backward_rule(
    grad_output: tuple[int, ...],
    self: Any = None,
    noise: Any = None,
    lower: Any = 0.125,
    upper: Any = 1 / 3,
    training: bool = False,
    *args: Any,
    **kwargs: Any,
) -> int:
    """RReLU's gradient: in training 1 per element, in eval 2.

    As ATen's ``rrelu_with_noise_backward`` computes it: in training ``noise * grad`` (the
    slopes the forward drew, 1 where ``x > 0``); in eval leaky ReLU's backward with the mean
    slope (compare, multiply).
    """
    return (1 if training else 2) * numel(grad_output)


@register_rule(["aten.hardshrink", "aten.hardshrink_backward", "aten.softshrink_backward"])
def shrink_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Two compares (``|x| > lambda``) per element; the backwards select the gradient alike."""
    return 2 * numel(first_shape(out_shape))


@register_rule("aten.softshrink")
def softshrink_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """4 per element: ATen's vectorised ``softshrink_kernel`` computes both shifted sides.

    ``(x > l) & (x - l) | (x < -l) & (x + l)``: two compares, the subtraction and the addition
    (the masks and the or move bits).
    """
    return 4 * numel(first_shape(out_shape))


@register_rule(["aten.fractional_max_pool2d", "aten.fractional_max_pool3d"])
def fractional_max_pool_rule(
    self: tuple[int, ...], kernel_size: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """One compare per window element per output element, + the windows' starts.

    ATen's ``generate_intervals`` places each plane's windows from its random sample ``u``,
    per pooled dimension of ``o > 1`` outputs: ``alpha = (in - k) / (o - 1)`` (1), then for
    each of the first ``o - 1`` starts ``int((i + u) alpha) - int(u alpha)`` (3 in floating
    point; the subtraction is of integers). The windows lie inside the input.
    """
    out = first_shape(out_shape)
    dims = len(kernel_size)
    planes = numel(tuple(out[: len(out) - dims]))
    starts = sum(1 + 3 * (o - 1) for o in out[-dims:] if o > 1)
    return numel(out) * math.prod(kernel_size) + planes * starts


@register_rule(["aten.fractional_max_pool2d_backward", "aten.fractional_max_pool3d_backward"])
def fractional_max_pool_backward_rule(grad_output: tuple[int, ...], *a: Any, **k: Any) -> int:
    """One add per gradient element (into the max's position)."""
    return numel(grad_output)


def _loss_reduce(n: int, reduction: int) -> int:
    return 0 if reduction == 0 else n + (1 if reduction == 1 else 0)


def _margin_rows(self: tuple[int, ...]) -> tuple[int, int]:
    """``(samples, classes)`` of a multi-margin input: ``(C,)`` or ``(N, C)``."""
    classes = self[-1] if self else 1
    return (numel(self[:-1]) if len(self) > 1 else 1), classes


@register_rule("aten.multi_margin_loss")
def multi_margin_loss_rule(
    self: tuple[int, ...],
    target: Any,
    p: Any = 1,
    margin: Any = 1,
    weight: Any = None,
    reduction: int = 1,
    **kwargs: Any,
) -> int:
    """Per sample ``(C - 1)(4 + [p = 2] + [weight]) + 1``, reduced.

    ATen's ``multi_margin_inner_sum_cpu`` skips the target class; for each of the ``C - 1``
    others ``z = margin - x[y] + x[i]`` (2), ``z > 0`` (1), squared for p = 2 (+1), weighted
    (+1), and added into the sample's sum (1; only where ``z > 0``: counted for every class,
    an upper bound); then the division by ``C``; the mean adds the samples and divides once.
    """
    rows, classes = _margin_rows(self)
    per = 4 + (1 if p == 2 else 0) + (1 if weight is not None else 0)
    return rows * ((classes - 1) * per + 1) + _loss_reduce(rows, reduction)


@register_rule("aten.multi_margin_loss_backward")
def multi_margin_loss_backward_rule(
    grad: Any,
    self: tuple[int, ...],
    target: Any = None,
    p: Any = 1,
    margin: Any = 1,
    weight: Any = None,
    *a: Any,
    **k: Any,
) -> int:
    """Per sample ``3C + (C - 1)(2 + 2[p = 2] + [weight])``.

    ATen's ``multi_margin_loss_backward_cpu_kernel`` computes ``z = margin - x[y] + x[i]`` for
    every class, the target's too (2 each); for the ``C - 1`` others ``z > 0`` (1), the
    gradient ``g`` or ``2 * g * z`` for p = 2 (+2), weighted (+1), subtracted from the
    target's (1); then every element is multiplied by the output's gradient (1 per element).
    """
    rows, classes = _margin_rows(self)
    per = 2 + (2 if p == 2 else 0) + (1 if weight is not None else 0)
    return rows * (3 * classes + (classes - 1) * per)


def _multilabel_pairs(self: Any, target: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
    """The (label, other class) pairs ATen's multilabel-margin kernels visit: ``{"pairs": n}``.

    Read from the target's values: per sample the ``T`` labels before the first ``-1``
    (repeats included) times the ``C - U`` classes that are not among its ``U`` distinct labels.
    """
    classes = target.shape[-1] if target.dim() else 1
    pairs = 0
    for row in target.reshape(-1, classes).tolist():
        labels = []
        for label in row:
            if label < 0:
                break
            labels.append(label)
        pairs += len(labels) * (classes - len(set(labels)))
    return {"pairs": pairs}


def _multilabel_shape(self: tuple[int, ...], pairs: int | None) -> tuple[int, int, int]:
    """``(samples, classes, pairs)``.

    Without values (meta, fake tensors) the most pairs a sample can have, ``C (C - 1)`` (every
    label slot holding one repeated class): an upper bound.
    """
    c = self[-1] if self else 1
    rows = numel(self) // max(1, c)
    return rows, c, rows * c * (c - 1) if pairs is None else pairs


def _multilabel_backward_pairs(grad: Any, self: Any, target: Any, *a: Any, **k: Any) -> Any:
    return _multilabel_pairs(self, target)


@register_rule("aten.multilabel_margin_loss_forward", reads=_multilabel_pairs)
def multilabel_margin_loss_rule(
    self: tuple[int, ...],
    target: Any,
    reduction: int = 1,
    *args: Any,
    pairs: int | None = None,
    **kwargs: Any,
) -> int:
    """ATen's ``multilabel_margin_loss_forward_out_frame``: 4 per pair, + 1 per sample, + 2.

    For each of a sample's labels (before the first ``-1``) and each class that is not one of
    its labels: ``z = 1 - x[label] + x[d]`` (2), ``z > 0`` (1) and ``sum += z`` (1, counted for
    every pair: an upper bound). The pairs are read from the target's values (on meta, which
    has none, ``C (C - 1)`` per sample, an upper bound). Then each sample's sum is added to the
    total (1 per sample) and divided by ``C`` (1), and by the number of samples for the mean
    (1); with ``reduction='none'`` each sample's sum is divided by ``C`` (1 per sample).
    """
    rows, _, pairs = _multilabel_shape(self, pairs)
    return 4 * pairs + rows + (0 if reduction == 0 else (2 if reduction == 1 else 1))


@register_rule("aten.multilabel_margin_loss_backward", reads=_multilabel_backward_pairs)
def multilabel_margin_loss_backward_rule(
    grad: Any, self: tuple[int, ...], *args: Any, pairs: int | None = None, **kwargs: Any
) -> int:
    """ATen's ``multilabel_margin_loss_backward_out_frame``: 5 per pair + 1 per element + 1.

    ``g = 1 / (N C)`` (or ``1 / C``) once (1); per pair ``z`` (2), ``z > 0`` (1) and, where it
    holds, ``g`` subtracted from the label's gradient and added to the class's (2, counted for
    every pair: an upper bound); then every element of the gradient times the output's
    gradient (1 per element). Pairs as the forward counts them.
    """
    _, _, pairs = _multilabel_shape(self, pairs)
    return 5 * pairs + numel(self) + 1


@register_rule("aten.soft_margin_loss")
def soft_margin_loss_rule(
    self: tuple[int, ...], target: Any, reduction: int = 1, **kwargs: Any
) -> int:
    """``log(1 + exp(-y x))``: multiply, negate, exp, log1p: 4 per element; reduced."""
    n = numel(self)
    return 4 * n + _loss_reduce(n, reduction)


@register_rule("aten.soft_margin_loss_backward")
def soft_margin_loss_backward_rule(grad: Any, self: tuple[int, ...], *a: Any, **k: Any) -> int:
    """``-norm y z / (1 + z) g`` with ``z = exp(-y x)``: 8 per element, as ATen runs it.

    ``soft_margin_loss_backward_out``: ``-y`` (1), ``* x`` (1), exp (1); ``y * z`` (1),
    ``* -norm`` (1, also for the sum, where ``norm`` is 1); ``z + 1`` (1), the division (1), the
    product with the output's gradient (1).
    """
    return 8 * numel(self)


@register_rule("aten.equal")
def equal_rule(self: tuple[int, ...], other: Any, **kwargs: Any) -> int:
    """One compare per element."""
    return numel(self)


@register_rule("aten.affine_grid_generator")
def affine_grid_rule(
    theta: tuple[int, ...], size: Any, *a: Any, out_shape: Any = None, **k: Any
) -> int:
    """``2 (d + 1)`` per output element, ``d`` the spatial dimensions (2 or 3).

    Each output coordinate is the dot product of a row of ``theta`` with ``(x, y, 1)``.
    """
    return 2 * theta[-1] * numel(first_shape(out_shape))


@register_rule("aten.affine_grid_generator_backward")
def affine_grid_backward_rule(grad: tuple[int, ...], size: Any, *a: Any, **k: Any) -> int:
    """``theta``'s gradient, the base grid transposed times the gradient: ``2 (d + 1)`` each.

    Per gradient element, ``d`` the spatial dimensions.
    """
    return 2 * (len(size) - 1) * numel(grad)


def _binary_search(values: Any, sorted_shape: Any) -> int:
    """``ceil(log2(n + 1))`` compares per value, ``n`` the sorted length."""
    n = sorted_shape[-1] if isinstance(sorted_shape, tuple) and sorted_shape else 1
    count = numel(values) if isinstance(values, tuple) else 1
    return count * max(1, math.ceil(math.log2(n + 1)))


@register_rule("aten.searchsorted")
def searchsorted_rule(sorted_sequence: Any, values: Any, *args: Any, **kwargs: Any) -> int:
    """Binary search of each value (see :func:`_binary_search`)."""
    return _binary_search(values, sorted_sequence)


@register_rule("aten.bucketize")
def bucketize_rule(values: Any, boundaries: Any, *args: Any, **kwargs: Any) -> int:
    """Binary search of each value among the boundaries (see :func:`_binary_search`)."""
    return _binary_search(values, boundaries)


@register_rule(["aten._unique2", "aten.unique_dim", "aten.unique_consecutive"])
def unique_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """Sort (``N ceil(log2 N)`` compares) and compare neighbours (``N``); integer data: 0."""
    n = numel(self)
    return n * max(1, math.ceil(math.log2(max(n, 2)))) + n


@register_rule("aten.bincount")
def bincount_rule(self: tuple[int, ...], weights: Any = None, *a: Any, **k: Any) -> int:
    """With weights, one add per element; counts of integers alone are not floating point."""
    return numel(self)


@register_rule("aten.trace")
def trace_rule(self: tuple[int, ...], **kwargs: Any) -> int:
    """One add per diagonal element."""
    return min(self) if self else 0


@register_rule(["aten.renorm", "aten.renorm_"])
def renorm_rule(self: tuple[int, ...], p: Any, dim: int, *a: Any, **k: Any) -> int:
    """``3N`` + 3 per slice along ``dim``.

    Per slice: its p-norm (2 per element + a root), the compare and the scale factor (2), then
    one multiply per element.
    """
    slices = self[dim % len(self)] if self else 1
    return 3 * numel(self) + 3 * slices


@register_rule("aten.polar")
def polar_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``abs * cos(angle)``, ``abs * sin(angle)``: 4 per element."""
    return 4 * numel(first_shape(out_shape))


register_rule(
    [
        "aten.angle",
        "aten.i0",
        "aten.i0_",
        "aten.special_i0e",
        "aten.special_i1",
        "aten.special_i1e",
        "aten.special_ndtri",
        "aten.special_erfcx",
        "aten.special_log_ndtr",
    ]
)(lambda *a, out_shape=None, **k: numel(first_shape(out_shape)))


@register_rule(["aten.sinc", "aten.sinc_"])
def sinc_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``sin(pi x) / (pi x)``: multiply, sin, divide, and the compare with 0: 4 per element."""
    return 4 * numel(first_shape(out_shape))


@register_rule("aten._weight_norm_interface")
def weight_norm_rule(v: tuple[int, ...], g: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``w = v * g / |v|`` per slice: ``3N`` + 2 per slice.

    The norm (2 per element + a root per slice), ``g / norm`` (1 per slice), the scaling (1 per
    element).
    """
    return 3 * numel(v) + 2 * numel(g)


@register_rule("aten._weight_norm_interface_backward")
def weight_norm_backward_rule(
    grad_w: tuple[int, ...], saved_v: Any, saved_g: tuple[int, ...], *args: Any, **kwargs: Any
) -> int:
    """``5N`` + 3 per slice.

    grad_g ``sum(grad_w * v) / norm`` (2N + 1 per slice); grad_v
    ``g / norm * (grad_w - v * grad_g / norm)`` (3N + 2 per slice).
    """
    return 5 * numel(grad_w) + 3 * numel(saved_g)


@register_rule("aten.linalg_matrix_exp")
def matrix_exp_rule(self: tuple[int, ...], **kwargs: Any) -> int:
    """``10 n^3`` per matrix: the five products of torch's degree-18 Taylor polynomial.

    Torch follows Bader, Blanes and Casas (2019).

    Matrices of small norm take a lower degree (fewer products); large norms add one squaring
    (``2 n^3``) per halving. Both depend on the data, which a shape cannot show.
    """
    n = self[-1]
    return math.prod(self[:-2]) * 10 * n**3
