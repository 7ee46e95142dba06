"""The expected maximum of n draws from a study's sorted scores, exactly, in blocks.

Dodge et al.'s expected validation performance: for each budget n, the mean and standard
deviation of the best of n trials drawn (with or without replacement) from the N observed
scores, :func:`evp_sorted` over the sorted scores. Every term is exact; terms whose probability
is below ``exp(-40)`` of the score range, under double precision's rounding of the result, are
left out, and the probabilities are built a block of budgets at a time (at most 16 MiB).
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

__all__ = ["evp_sorted", "running_products"]

# Terms with P(max <= v_(i)) < exp(-_CUTOFF) are dropped: their sum is below
# exp(-40) * (score range) ~ 4e-18 * range, under double-precision rounding of the result.
_CUTOFF = 40.0
# Largest probability block materialised at once (float64 elements, 16 MiB).
_BLOCK_ELEMENTS = 1 << 21
# Blocks at least this wide take their running products one row at a time (_running_products).
_ROW_BY_ROW_WIDTH = 160


def evp_sorted(
    values: np.ndarray, ns: np.ndarray, *, replacement: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the max of n trials from sorted ``values`` (ascending), for each n."""
    total = values.shape[0]
    top = values[-1]
    gaps = np.diff(values)  # gaps[i-1] = v_(i+1) - v_(i), i = 1..N-1
    keep = np.nonzero(gaps > 0)[0]
    positions = keep + 1  # i: P(max <= v_(i)) multiplies the gap above v_(i)
    shifted = values - top  # w <= 0, w_(N) = 0: keeps E[w^2] - E[w]^2 well conditioned
    weights = np.empty((keep.size, 2))
    weights[:, 0] = gaps[keep]  # E[w] = -sum gap * P
    weights[:, 1] = shifted[keep] ** 2 - shifted[keep + 1] ** 2  # E[w^2] = sum (w_i^2-w_{i+1}^2) P
    sums = np.zeros((ns.size, 2))
    if keep.size:
        fill = _sums_with_replacement if replacement else _sums_without_replacement
        fill(positions, weights, ns, total, sums)
    mean = top - sums[:, 0]
    var = sums[:, 1] - sums[:, 0] ** 2
    return mean, np.sqrt(np.maximum(var, 0.0))


def running_products(out: np.ndarray) -> None:
    """``np.cumprod(out, axis=0, out=out)``, bit for bit, faster for wide blocks.

    ``cumprod`` along the rows runs one column's chain of products at a time (about 3.5 ns per
    element, bound by the multiplication's latency); one ``multiply`` per row does the same
    products, ``out[r] = out[r - 1] * out[r]``, across the columns at once (about 0.4 ns per
    element plus 0.5 us a call), so it wins from about 160 columns. The products and their order
    are the same, so the results are identical. For the 90,000 trials of the 100,000-run
    report it saves about 105 ms of the two curves' 240 ms (measured, CPU time).
    """
    if out.shape[1] < _ROW_BY_ROW_WIDTH:
        np.cumprod(out, axis=0, out=out)
        return
    multiply = np.multiply
    for previous, current in pairwise(list(out)):  # views: one per row
        multiply(previous, current, out=current)


def _window(positions: np.ndarray, n: int, total: int) -> int:
    """First column that matters for n trials or more: P(max <= v_(i)) <= (i/N)^n."""
    return int(np.searchsorted(positions, total * math.exp(-_CUTOFF / n), side="left"))


def _block_rows(n: int, width: int) -> int:
    """Rows per block: about n/4 (so a block's window is nearly right), capped in memory."""
    return max(1, min(math.ceil(n * 0.25), _BLOCK_ELEMENTS // width))


def _sums_with_replacement(
    positions: np.ndarray, weights: np.ndarray, ns: np.ndarray, total: int, sums: np.ndarray
) -> None:
    """``sums[k] = sum_i P(max of ns[k] draws <= v_(i)) * weights[i]``, P = (i/N)^n."""
    log_ratio = np.log(positions / total)
    start = 0
    while start < ns.size:
        first = int(ns[start])
        lo = _window(positions, first, total)
        width = positions.size - lo
        if width == 0:
            return  # every remaining n has P(max = v_(N)) = 1 to double precision
        rows = _block_rows(first, width)
        stop = start + int(np.searchsorted(ns[start:], first + rows))
        block = ns[start:stop]
        out = np.empty((block.size, width))
        # exp(n log(i/N)): relative error ~ eps * |n log(i/N)| <= eps * cutoff
        out[0] = np.exp(first * log_ratio[lo:])
        if block.size > 1:
            if block[-1] - first == block.size - 1:  # consecutive n: (i/N)^(n+1) = (i/N)^n i/N
                out[1:] = positions[lo:] / total
                running_products(out)
            else:
                np.exp(block[1:, None] * log_ratio[None, lo:], out=out[1:])
        sums[start:stop] = out @ weights[lo:]
        start = stop


def _sums_without_replacement(
    positions: np.ndarray, weights: np.ndarray, ns: np.ndarray, total: int, sums: np.ndarray
) -> None:
    """Same with P = C(i, n) / C(N, n), by one chain of products over n = 1..max(ns).

    ``C(i, n+1) / C(N, n+1) = C(i, n) / C(N, n) * (i - n) / (N - n)``, starting from
    ``i / N`` at n = 1: no factorial or binomial is formed (none overflows), and the relative
    rounding error after n steps is about ``sqrt(n)`` ulps.
    """
    last = int(ns[-1])
    previous: np.ndarray | None = None
    previous_lo = 0
    n = 1
    while n <= last:
        lo = _window(positions, n, total)
        width = positions.size - lo
        if width == 0:
            return
        rows = min(_block_rows(n, width), last - n + 1)
        i = positions[lo:].astype(float)
        out = np.empty((rows, width))
        if previous is None:
            out[0] = i / total
        else:
            step = np.maximum(i - (n - 1), 0.0) / (total - (n - 1))
            np.multiply(previous[lo - previous_lo :], step, out=out[0])
        if rows > 1:
            before = np.arange(n, n + rows - 1, dtype=float)
            np.subtract(i[None, :], before[:, None], out=out[1:])
            if i[0] < before[-1]:  # only near n = N: the clip skipped is 20% of the curve's time
                np.maximum(out[1:], 0.0, out=out[1:])
            out[1:] *= (1.0 / (total - before))[:, None]
            running_products(out)
        lo_k, hi_k = np.searchsorted(ns, [n, n + rows])
        if hi_k > lo_k:
            sums[lo_k:hi_k] = out[ns[lo_k:hi_k] - n] @ weights[lo:]
        previous, previous_lo = out[-1].copy(), lo
        n += rows
