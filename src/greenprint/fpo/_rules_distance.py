"""FPO rules for pairwise distances: ``torch.cdist`` (both its paths) and ``F.pdist``.

Counted as ATen's CPU kernels compute them (``DistanceOpsKernel.cpp``): one FPO per arithmetic
op, compare or elementary function, per coordinate of each pair of vectors.
``F.pairwise_distance`` and ``F.cosine_similarity`` are composites of ops counted on their own
(norms, products, ``aten.dist``: :mod:`greenprint.fpo._rules_nn`).
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []


_SIGN = 7
"""FPO of the kernel's ``sign(v)``: ``min(max(0, ceil(v)), 1) + min(max(-1, floor(v)), 0)``.

``DistanceOpsKernel.cpp`` builds the sign from ceil, max, min, floor, max, min and an add (its
own TODO calls it inefficient): 7 vector ops, each counted.
"""


def _distance_per_pair(p: Any, m: int) -> int:
    """One p-norm distance between two ``m``-vectors, as ATen's CPU kernel computes it.

    ``DistanceOpsKernel.cpp`` folds ``map(|a - b|)`` into an accumulator per coordinate
    (``agg = red(agg, map(std::abs(a - b), p))``) and finishes once per pair. Per coordinate
    the difference and its abs (2), then: p = 1 the sum (1): 3m; inf the max (1): 3m; p = 2
    ``d * d`` and the sum (2): 4m + 1 with the square root; other p ``pow`` and the sum (2):
    4m + 1 with the root ``agg^(1/p)``; p = 0 ``min(ceil(|d|), 1)`` (abs again, ceil, min: 3)
    and the sum: 6m. (p = 2 was 3m + 1 before: the abs went uncounted.) ``pdist`` runs the
    same ``map``, ``red`` and ``finish`` on ``(a - b).abs()`` vectors.
    """
    if p in (1, math.inf):
        return 3 * m
    if p == 0:
        return 6 * m
    return 4 * m + 1


def _distance_backward_per_pair(p: Any, m: int) -> int:
    """The gradient of one distance with respect to the first vector, accumulated.

    ATen's ``backward_down_column_cdist``: per coordinate the difference (1), the norm's
    ``backward`` and the add into the gradient (1); a ``sign`` is :data:`_SIGN` (7).
    ``backward`` per coordinate: p = 1 ``g * sign(d)`` (8): 10m; p = 2 ``g * d / dist`` (2):
    4m + 1 (the test ``dist == 0`` once per pair); inf
    ``g * sign(d) * (1 - min(1, ceil(||d| - dist|)))`` (the sign, two multiplies, abs,
    subtract, abs, ceil, min, ``1 -``: 15): 17m; other p above 2
    ``d * |d|^(p - 2) * g / dist^(p - 1)`` (``p - 2``, ``p - 1`` and the powers are computed on
    vectors, per coordinate: 8): 10m + 1; p below 2 ``sign(d) * |d|^(p - 1) * g /
    dist^(p - 1)`` (the sign, abs, subtract, pow, two multiplies, subtract, pow, divide: 15),
    then zeroed where ``d == 0 and p < 1`` (two compares): 19m + 1. p = 0: the kernel does
    nothing (the gradient is zero): 0. (With the sign counted as 1, p = 1, inf and p below
    2 were 4m, 11m and 13m + 1.)
    """
    if p == 0:
        return 0
    if p == 1:
        return (3 + _SIGN) * m
    if p == 2:
        return 4 * m + 1
    if p == math.inf:
        return (10 + _SIGN) * m
    if p < 2:
        return (12 + _SIGN) * m + 1
    return 10 * m + 1


def _pairs(out_shape: Any) -> int:
    """The distances an op computes: the elements of its ``(*batch, P, R)`` result."""
    return numel(first_shape(out_shape))


@register_rule("aten._cdist_forward")
def cdist_rule(
    x1: tuple[int, ...],
    x2: tuple[int, ...],
    p: Any = 2.0,
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """One distance per pair (see :func:`_distance_per_pair`).

    ``(*B1, P, M)`` and ``(*B2, R, M)`` inputs: the batch dimensions broadcast (the kernel
    expands them), so ``numel(broadcast(B1, B2)) * P * R`` pairs, the output's elements.
    """
    return _pairs(out_shape) * _distance_per_pair(float(p), x1[-1])


@register_rule("aten._cdist_backward")
def cdist_backward_rule(
    grad: tuple[int, ...],
    x1: tuple[int, ...],
    x2: tuple[int, ...],
    p: Any = 2.0,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The gradient of ``x1``, per pair :func:`_distance_backward_per_pair`.

    ``grad`` has one element per pair, over the broadcast batch (the kernel expands ``x1``
    and ``x2``; autograd then sums a broadcast ``x1``'s gradient). Autograd calls the op
    again, with the inputs swapped, for the gradient of ``x2``.
    """
    return numel(grad) * _distance_backward_per_pair(float(p), x1[-1])


@register_rule("aten._euclidean_dist")
def euclidean_dist_rule(x1: tuple[int, ...], x2: tuple[int, ...], **kwargs: Any) -> int:
    """``cdist``'s matrix-product path (p = 2, more than 25 rows): ``|a|^2 - 2ab + |b|^2``.

    The squared norms (2 per element of each input) and ``-2 x1`` (1 per element of ``x1``),
    one product of ``(P, M + 2) x (M + 2, R)`` per batch with the norms folded in, then clamp
    and square root (2 per output).
    """
    batch = numel(x1[:-2])
    p, m, r = x1[-2], x1[-1], x2[-2]
    return 3 * numel(x1) + 2 * numel(x2) + batch * (2 * p * (m + 2) * r + 2 * p * r)


@register_rule("aten._pdist_forward")
def pdist_rule(self: tuple[int, ...], p: Any = 2.0, **kwargs: Any) -> int:
    """``N (N - 1) / 2`` pairs of rows of an ``(N, M)`` input, one distance each."""
    n, m = self
    return n * (n - 1) // 2 * _distance_per_pair(float(p), m)


@register_rule("aten._pdist_backward")
def pdist_backward_rule(
    grad: tuple[int, ...], self: tuple[int, ...], p: Any = 2.0, *args: Any, **kwargs: Any
) -> int:
    """Per pair: the gradient of one row, and one more add per coordinate for the other row.

    p = 0: the kernel does nothing (the gradient is zero).
    """
    n, m = self
    per_pair = _distance_backward_per_pair(float(p), m)
    return n * (n - 1) // 2 * (per_pair + m if per_pair else 0)
