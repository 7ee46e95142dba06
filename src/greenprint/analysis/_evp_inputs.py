"""The inputs of :mod:`greenprint.analysis._evp` checked and gathered: budgets, trial costs.

Split out of :mod:`greenprint.analysis._evp` (the estimators and curves): the trial counts a
curve is evaluated at (:func:`_budgets`), each trial's cost by the price tag's rule
(:func:`_trial_costs`), and the message when no trial has a value of the metric ranked by
(:func:`_no_value_of`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from greenprint._exceptions import AnalysisError
from greenprint._forest_sums import SHARED_COSTS
from greenprint.analysis._common import RunForest


def _trial_costs(forest: RunForest, positions: Sequence[int], attribute: str | None) -> list[Any]:
    """Each trial's cost, its parts' included (a trial's own record normally contains them)."""
    if attribute is None:
        return [1.0] * len(positions)
    if attribute in ("fpo", "duration_s"):  # the price tag's rule: known when complete
        # (RunForest.known_sums); a duration of 0.0 is a run recorded without one: unknown
        sums = forest.fpo_sums if attribute == "fpo" else forest.duration_sums
        return [sums.inclusive[p] if sums.complete[p] else None for p in positions]
    inclusive = forest.cost_sums(attribute)  # the price tag's (concurrent children share)
    if attribute in SHARED_COSTS and not forest.energy_all_recorded:  # a run with no meter:
        known = forest.energy_sums.complete  # its energy and CO2-eq unknown, never 0
        return [inclusive[p] if known[p] else None for p in positions]
    values = [getattr(r, attribute) for r in forest.runs]
    below = [False] * len(values)
    for pos in forest.order:  # children before parents: whether any descendant knows its cost
        below[pos] = any(values[c] is not None or below[c] for c in forest.children[pos])
    return [inclusive[p] if values[p] is not None or below[p] else None for p in positions]


#: How many metric names the "no trial has a value of metric" message lists at most.
_METRICS_LISTED = 10


def _no_value_of(metric: str, runs: Sequence[Any], scored: Collection[str]) -> str:
    """Why no trial has a score of ``metric``, with the metrics the runs logged (nearest first).

    A name typed wrong (``accuracy`` for ``val_accuracy``) gets "did you mean" and the names
    logged (greenprint's own ``greenprint.*`` left out); a metric only runs that are not scored
    trials logged (the sweep around them, failed trials) says which runs those are.
    """
    from greenprint._prediction import is_reserved_metric
    from greenprint._suggest import nearest, suggestion

    message = f"no trial has a value of metric {metric!r} to rank by"
    holders = [r for r in runs if any(p.name == metric and p.value == p.value for p in r.metrics)]
    if holders:  # logged, but by no trial whose status is scored
        shown = ", ".join(f"{r.name!r} ({r.status})" for r in holders[:3])
        more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
        statuses = " or ".join(sorted(scored))
        return (
            f"no {statuses} trial has a value of metric {metric!r} to rank by; "
            f"runs that logged it: {shown}{more}"
        )
    logged = list(
        dict.fromkeys(
            p.name
            for r in runs
            for p in r.metrics
            if p.value == p.value and not is_reserved_metric(p.name)
        )
    )
    if not logged:
        return f"{message}; the runs logged no metric"
    close = nearest(metric, logged, n=3) if isinstance(metric, str) else []
    hint = suggestion(close)
    ordered = [*close, *(name for name in logged if name not in close)]
    listing = ", ".join(map(repr, ordered[:_METRICS_LISTED]))
    if len(ordered) > _METRICS_LISTED:
        listing += f" and {len(ordered) - _METRICS_LISTED} more"
    return f"{message}{hint}; metrics logged: {listing}"


# ---------------------------------------------------------------------------------- internals
def _budgets(budgets: Any, total: int, replacement: bool) -> np.ndarray:
    if budgets is None:
        return np.arange(1, total + 1, dtype=np.int64)
    raw = np.asarray(budgets)
    if raw.ndim != 1 or raw.size == 0:
        raise AnalysisError("budgets must be a non-empty sequence of trial counts")
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.issubdtype(raw.dtype, np.floating) or not np.all(raw == np.round(raw)):
            raise AnalysisError("budgets must be whole numbers of trials")
    ns = np.unique(raw.astype(np.int64))
    upper = np.iinfo(np.int64).max if replacement else total
    if ns[0] < 1 or ns[-1] > upper:
        where = "1 or more" if replacement else f"in 1..{total} (sampling without replacement)"
        raise AnalysisError(f"budgets must be {where}, got {int(ns[0])}..{int(ns[-1])}")
    return ns
