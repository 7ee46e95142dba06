"""Pareto fronts and hypervolumes of score-against-cost points, for any number of objectives.

Each objective is maximised or minimised (``directions``). Internally everything is turned into
minimisation by negating the maximised objectives. Point ``a`` dominates ``b`` when ``a`` is at
least as good in every objective and strictly better in one; so identical points never dominate
each other, and duplicates on the front are all kept.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from greenprint._exceptions import AnalysisError, ConfigError
from greenprint._forest_sums import SHARED_COSTS
from greenprint._format import count_of
from greenprint._records import RunRecord
from greenprint.analysis._common import Mode, Reduce, RunForest, check_choice, check_logged
from greenprint.analysis._evp import BUDGET_UNITS
from greenprint.analysis._roles import study_trials

logger = logging.getLogger(__name__)

__all__ = ["hypervolume", "pareto_front", "pareto_runs"]

_DIRECTIONS = {"maximize": -1.0, "max": -1.0, "minimize": 1.0, "min": 1.0}
# In 4+ objectives the front is found with bitsets of the points each point's coordinates are
# not beaten by (d - 1 tables of n x n bits) while they take at most this many bytes; above, by
# a sweep against the front found so far.
_BITSET_MAX_BYTES = 256 * 2**20


def pareto_front(
    points: ArrayLike,
    *,
    directions: Sequence[str] = ("maximize", "minimize"),
) -> np.ndarray:
    """Indices of the non-dominated points (the Pareto front).

    Two objectives take one sort, O(n log n); three a sort and a sweep that keeps the 2-D
    staircase of the points seen (Kung et al., 1975), O(n log n) plus list updates; four or more
    intersect, for each point, the bitsets of the points no worse in each objective (n^2 (d - 1)
    bit operations, 64 at a time), or for very large sets sweep against the front found so far.
    Identical points do not dominate each other: duplicates on the front are all returned.

    Args:
        points: an ``(n, d)`` array, one row per point (e.g. ``[[accuracy, energy_kwh], ...]``).
        directions: for each of the d objectives, ``"maximize"`` or ``"minimize"`` (also
            ``"max"``/``"min"``).

    Returns:
        The indices of the front points, ascending (int array; empty for no points).

    Raises:
        AnalysisError: points that are not an ``(n, d)`` array of finite numbers, or ``d`` not
            matching ``directions``.
        ConfigError: an unknown direction.

    Example:
        >>> pareto_front([[0.9, 2.0], [0.8, 1.0], [0.7, 1.5]]).tolist()
        [0, 1]
    """
    minimised = _to_minimisation(points, directions)
    if minimised.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(_front_min(minimised))


def hypervolume(
    points: ArrayLike,
    reference: ArrayLike,
    *,
    directions: Sequence[str] = ("maximize", "minimize"),
) -> float:
    """Exact hypervolume dominated by the points and bounded by a reference point.

    The volume of the region that is dominated by at least one point and dominates the
    reference (its unit is the product of the objectives' units). Points that do not strictly
    dominate the reference in every objective add nothing and are ignored; dominated and
    duplicate points change nothing. One objective is a length; two are a sort and a sweep,
    O(n log n); three are a sweep along the third objective that keeps the 2-D front and its area
    up to date (Beume et al., 2009), O(n log n) plus list updates; four or more use the WFG
    recursion (While et al., 2012): the exclusive volume of each point, slicing along the last
    objective, down to the 3-D sweep. It is exact for any dimension; in four or more objectives
    it is meant for fronts of up to a few hundred points.

    Args:
        points: an ``(n, d)`` array of finite numbers.
        reference: the d coordinates of the reference point (worse than the points that count:
            lower for maximised objectives, higher for minimised ones).
        directions: ``"maximize"`` or ``"minimize"`` for each objective.

    Returns:
        The hypervolume (0.0 when no point dominates the reference).

    Raises:
        AnalysisError: points or reference not finite or of mismatched dimension.
        ConfigError: an unknown direction.

    Example:
        >>> round(hypervolume([[0.9, 2.0], [0.8, 1.0]], [0.0, 4.0]), 9)  # accuracy up, kWh down
        2.6
    """
    minimised = _to_minimisation(points, directions)
    d = minimised.shape[1]
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (d,):
        raise AnalysisError(f"reference must have {d} coordinates, got shape {ref.shape}")
    if not np.isfinite(ref).all():
        raise AnalysisError("reference must be finite")
    ref = ref * np.array([_DIRECTIONS[x.lower()] for x in directions])
    inside = minimised[(minimised < ref).all(axis=1)]
    if inside.shape[0] == 0:
        return 0.0
    return float(_hv(inside, ref))


#: Cost names :func:`pareto_runs` takes -> RunRecord attribute: :data:`BUDGET_UNITS`'s but
#: ``"trials"`` (every trial costs one: no front).
_COSTS: dict[str, str] = {name: a for name, (a, _) in BUDGET_UNITS.items() if a is not None}


def pareto_runs(
    runs: Sequence[RunRecord],
    *,
    metric: str,
    cost: str = "energy_kwh",
    mode: Mode | None = None,
    reduce: Reduce = "last",
) -> list[RunRecord]:
    """The trials on the front of score against cost: none is better and cheaper at once.

    Only trials are candidates (runs with role ``trial``, given or inferred: never a fold or
    other part, a sweep, a baseline, the final run or a learning-curve run). A trial's score is
    its own, else the mean of its parts'; its cost includes its parts'. Trials without a finite
    score or without a known cost (``None``; a trial recorded without a duration, ``duration_s``
    0.0, has no known run time) are left out.

    Args:
        runs: the runs (e.g. ``ledger.runs(study=...)``).
        metric: the score's metric name.
        cost: a RunRecord cost attribute: ``"energy_kwh"`` (or ``"kwh"``), ``"emissions_kg"``
            (``"kg"``), ``"fpo"`` or ``"duration_s"`` (``"s"``), always minimised: the names
            :func:`~greenprint.analysis.evp_by_budget` takes, but ``"trials"``.
        mode: ``"max"`` if higher scores are better, else ``"min"``; ``None`` infers it from
            ``metric``'s name (``loss``, ``error``... are minimised).
        reduce: ``"last"`` or ``"best"`` logged value of each run's metric.

    Returns:
        The front's runs, best score first.

    Raises:
        ConfigError: an unknown cost (the message lists the names) or mode.
        AnalysisError: ``metric`` is a name none of ``runs`` logged while they logged others (a
            name typed wrong: the message lists them, the nearest first); runs that logged no
            metric give an empty front.
    """
    # the cost names evp_by_budget takes (aliases included, any case), but "trials"
    cost = _COSTS[check_choice(cost.lower() if isinstance(cost, str) else cost, "cost", _COSTS)]
    runs = list(runs)
    check_logged(runs, metric)
    study = study_trials(RunForest.build(runs), metric=metric, mode=mode, reduce=reduce)
    mode = study.mode
    forest = study.forest
    values = [getattr(r, cost) for r in forest.runs]
    if cost in ("fpo", "duration_s"):  # the price tag's rule: known when complete
        # (RunForest.known_sums); a duration of 0.0 is a run recorded without one: unknown
        sums = forest.fpo_sums if cost == "fpo" else forest.duration_sums
        inclusive, known = sums.inclusive, sums.complete
    else:  # as the price tag sums them (energy and CO2-eq: concurrent children share)
        inclusive = forest.cost_sums(cost)
        known = [v is not None for v in values]
        if cost in SHARED_COSTS and not forest.energy_all_recorded:  # no meter: unknown
            known = forest.energy_sums.complete
    kept: list[RunRecord] = []
    rows: list[tuple[float, float]] = []
    unknown = 0  # scored trials left out for want of a known cost
    statuses = forest.column("status")  # a job's head: its job's
    for position in study.positions:
        run = forest.runs[position]
        score = study.scores[position].score
        value = inclusive[position] if known[position] else None
        # finished and pruned trials only, as EVP scores them: a trial that failed (or was
        # interrupted, or lost) made no model, and cheap for having stopped, the score it
        # logged before the crash put it on the front, over every finished trial
        if math.isnan(score) or statuses[position] not in _CANDIDATES:
            continue
        if value is None or not math.isfinite(float(value)):
            unknown += 1
            continue
        kept.append(run)
        rows.append((score, float(value)))
    if unknown:  # said, as the price tag says a run of unknown FPO or time: never a silent gap
        what = {
            "duration_s": "run time (recorded without a duration)",
            "energy_kwh": "energy (no meter recorded it)",
            "emissions_kg": "CO2-eq (no meter recorded its energy)",
        }.get(cost, cost)
        logger.warning(
            "pareto_runs: %s with a score left out of the front, %s %s unknown",
            count_of(unknown, "trial"),
            "its" if unknown == 1 else "their",
            what,
        )
    if not kept:
        return []
    direction = "maximize" if mode == "max" else "minimize"
    front = pareto_front(np.array(rows), directions=(direction, "minimize"))
    sign = -1.0 if mode == "max" else 1.0
    ranked = sorted(front.tolist(), key=lambda k: (sign * rows[k][0], rows[k][1]))
    return [kept[k] for k in ranked]


#: The statuses of the trials that are candidates for the front (as EVP scores trials).
_CANDIDATES = frozenset({"finished", "pruned"})


# ---------------------------------------------------------------------------------- internals
def _to_minimisation(points: ArrayLike, directions: Sequence[str]) -> np.ndarray:
    if isinstance(directions, str):
        raise ConfigError("directions must be a sequence, e.g. ('maximize', 'minimize')")
    signs = []
    for direction in directions:
        sign = _DIRECTIONS.get(direction.lower()) if isinstance(direction, str) else None
        if sign is None:
            raise ConfigError(f"each direction must be 'maximize' or 'minimize', not {direction!r}")
        signs.append(sign)
    try:
        array = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as e:
        raise AnalysisError(f"points must be an (n, d) array of numbers: {e}") from e
    d = len(signs)
    if array.size == 0 and array.ndim <= 2:
        return np.zeros((0, d))
    if array.ndim != 2 or array.shape[1] != d:
        raise AnalysisError(
            f"points must have shape (n, {d}) for {d} directions, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise AnalysisError("points must be finite (no NaN or infinity): drop runs without them")
    return array * np.array(signs)


def _front_min(pts: np.ndarray) -> np.ndarray:
    """Indices (unsorted) of the non-dominated rows of ``pts`` (all objectives minimised)."""
    n, d = pts.shape
    if d == 1:
        return np.nonzero(pts[:, 0] == pts[:, 0].min())[0]
    order = np.lexsort(pts.T[::-1])  # lexicographic: first objective, then the next...
    srt = pts[order]
    if d == 2:
        # Only an earlier point (lexicographically) can dominate a later one. Points identical to
        # their predecessor share its fate; a group's first point is dominated iff some earlier
        # point has a second objective <= its own.
        same = np.zeros(n, dtype=bool)
        same[1:] = (srt[1:] == srt[:-1]).all(axis=1)
        prefix = np.empty(n)
        prefix[0] = np.inf
        np.minimum.accumulate(srt[:-1, 1], out=prefix[1:])
        dominated = prefix <= srt[:, 1]
        group = np.cumsum(~same) - 1
        firsts = np.nonzero(~same)[0]
        dominated = dominated[firsts][group]
        return order[~dominated]
    if d == 3:
        return order[_staircase_keep(srt)]
    unique, inverse = np.unique(srt, axis=0, return_inverse=True)
    if (d - 1) * unique.shape[0] * (unique.shape[0] + 63) // 8 <= _BITSET_MAX_BYTES:
        return order[~_bitset_dominated(unique)[inverse.reshape(-1)]]
    return order[_sweep_keep(srt)]


def _same_as_previous(srt: np.ndarray) -> np.ndarray:
    same = np.zeros(srt.shape[0], dtype=bool)
    same[1:] = (srt[1:] == srt[:-1]).all(axis=1)
    return same


def _staircase_keep(srt: np.ndarray) -> np.ndarray:
    """Which rows of lexicographically sorted 3-D points (minimised) no other row dominates.

    A point can only be dominated by an earlier one (its first coordinate is no larger), and an
    earlier point different from it dominates it iff its second and third coordinates are no
    larger. The staircase of the earlier front points' (second, third) coordinates, second
    ascending and third descending, answers that by one binary search; a new front point
    replaces the steps it covers. Duplicates share the fate of their first copy.
    """
    same = _same_as_previous(srt)
    keep = np.zeros(srt.shape[0], dtype=bool)
    ys: list[float] = []
    zs: list[float] = []
    kept = False
    for k, (_, y, z) in enumerate(srt.tolist()):
        if same[k]:
            keep[k] = kept
            continue
        i = bisect_right(ys, y)
        if i and zs[i - 1] <= z:  # the lowest third coordinate among steps with second <= y
            kept = False
            continue
        j = i
        while j < len(zs) and zs[j] >= z:
            j += 1  # steps[i:j] have second > y and third >= z: covered by the new point
        ys[i:j] = [y]
        zs[i:j] = [z]
        keep[k] = kept = True
    return keep


def _bitset_dominated(unique: np.ndarray) -> np.ndarray:
    """Which of distinct, lexicographically sorted points (minimised, d >= 2) are dominated.

    Point q dominates distinct point p iff q is no worse in every objective. In lexicographic
    order every earlier point is no worse in the first objective and no later one dominates, so
    p's dominators are the earlier points whose other coordinates are each no larger: for each
    objective the points no larger than p are a prefix of that objective's sorted order, kept as
    a bitset (one cumulative OR builds them all), and p is dominated iff the AND of its d - 1
    bitsets has a bit below p's own index.
    """
    m, d = unique.shape
    words = (m + 63) // 64
    one = np.uint64(1)
    tables = []
    ranks = []
    for k in range(1, d):
        column = unique[:, k]
        by_value = np.argsort(column, kind="stable")
        table = np.zeros((m, words), dtype=np.uint64)
        table[np.arange(m), by_value // 64] = one << (by_value % 64).astype(np.uint64)
        np.bitwise_or.accumulate(table, axis=0, out=table)
        tables.append(table)
        # the last position in sorted order of p's value: ties are no worse
        ranks.append(np.searchsorted(column[by_value], column, side="right") - 1)
    dominated = np.zeros(m, dtype=bool)
    block = 1024
    for start in range(0, m, block):
        stop = min(start + block, m)
        end_word = (stop - 1) // 64 + 1  # bits at and after p's own index are masked out below
        acc = tables[0][ranks[0][start:stop], :end_word]
        for table, rank in zip(tables[1:], ranks[1:], strict=True):
            acc &= table[rank[start:stop], :end_word]
        first_word = start // 64
        bases = np.arange(first_word, end_word, dtype=np.int64) * 64
        allowed = np.clip(np.arange(start, stop)[:, None] - bases[None, :], 0, 64)
        mask = np.where(
            allowed >= 64,
            ~np.uint64(0),
            (one << np.minimum(allowed, 63).astype(np.uint64)) - one,
        )
        acc[:, first_word:end_word] &= mask
        dominated[start:stop] = acc.any(axis=1)
    return dominated


def _sweep_keep(srt: np.ndarray) -> np.ndarray:
    """Sweep: a point is dominated iff a front point found so far dominates it (transitivity)."""
    n, d = srt.shape
    front = np.empty((n, d))
    size = 0
    keep = np.zeros(n, dtype=bool)
    for k in range(n):
        p = srt[k]
        f = front[:size]
        if size and ((f <= p).all(axis=1) & (f < p).any(axis=1)).any():
            continue
        front[size] = p
        size += 1
        keep[k] = True
    return keep


def _hv(pts: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of ``pts`` (minimised, every point strictly inside ``ref``)."""
    d = pts.shape[1]
    if pts.shape[0] == 0:
        return 0.0
    if d == 1:
        return float(ref[0] - pts[:, 0].min())
    if d == 2:
        return _hv2d(pts, ref)
    if d == 3:
        return _hv3d(pts, ref)
    pts = np.unique(pts, axis=0)
    pts = pts[_front_min(pts)]
    if pts.shape[0] == 1:
        return float(np.prod(ref - pts[0]))
    # WFG with slicing: worst last objective first. The points after p are all at least as good
    # as p in the last objective, so limiting them by p puts them all at p's last coordinate, and
    # p's exclusive volume is (ref_d - p_d) * (its (d-1)-box - the (d-1)-volume of that set).
    pts = pts[np.argsort(-pts[:, -1], kind="stable")]
    total = 0.0
    head = pts[:, :-1]
    for k in range(pts.shape[0]):
        p = head[k]
        box = float(np.prod(ref[:-1] - p))
        rest = head[k + 1 :]
        if rest.shape[0]:
            limited = np.maximum(rest, p)
            limited = limited[(limited < ref[:-1]).all(axis=1)]
            box -= _hv(limited, ref[:-1])
        total += (ref[-1] - pts[k, -1]) * box
    return total


def _hv2d(pts: np.ndarray, ref: np.ndarray) -> float:
    """2-D hypervolume by a sweep along the first objective (dominated points cost nothing)."""
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    x = pts[order, 0]
    best_y = np.minimum.accumulate(pts[order, 1])
    widths = np.diff(np.append(x, ref[0]))
    return float(np.dot(widths, ref[1] - best_y))


def _hv3d(pts: np.ndarray, ref: np.ndarray) -> float:
    """3-D hypervolume: sweep up the third objective, keeping the 2-D front and its area.

    The front is two lists, x ascending and y descending; inserting a point removes the points
    it dominates (a contiguous run) and updates the area locally, so each point costs a binary
    search plus the removals (amortised O(1) each).
    """
    order = np.argsort(pts[:, 2], kind="stable")
    rx, ry, rz = (float(c) for c in ref)
    xs: list[float] = []
    ys: list[float] = []
    area = 0.0
    volume = 0.0
    previous_z = 0.0
    for x, y, z in pts[order].tolist():
        volume += area * (z - previous_z)
        previous_z = z
        i = bisect_left(xs, x)
        if i > 0 and ys[i - 1] <= y:
            continue  # dominated by a point to its left
        if i < len(xs) and xs[i] == x and ys[i] <= y:
            continue  # dominated by a point with the same x
        k = i
        while k < len(ys) and ys[k] >= y:
            k += 1  # xs[i:k] are dominated by (x, y): x <= theirs, y <= theirs
        right = xs[k] if k < len(xs) else rx
        removed = 0.0
        for j in range(i, k):
            nxt = xs[j + 1] if j + 1 < len(xs) else rx
            removed += (nxt - xs[j]) * (ry - ys[j])
        if i > 0:  # the left neighbour's step now ends at x instead of at xs[i] (or rx)
            old_end = xs[i] if i < len(xs) else rx
            removed += (old_end - x) * (ry - ys[i - 1])
        area += (right - x) * (ry - y) - removed
        xs[i:k] = [x]
        ys[i:k] = [y]
    return volume + area * (rz - previous_z)
