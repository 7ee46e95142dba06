"""Expected maximum performance: the expected best score of n trials, for n = 1..N.

Dodge et al., "Show your work: improved reporting of experimental results" (EMNLP 2019), report
``E[max of n trials]`` as a function of n (or of the budget those n trials cost), so that a
result that took 500 trials is not compared with one that took 5 as if they were equal.

Two estimators from the N observed scores ``v_(1) <= ... <= v_(N)``:

* **with replacement** (Dodge et al.): the n trials are n independent draws from the empirical
  distribution, ``P(max <= v_(i)) = (i / N) ** n``;
* **without replacement**: the n trials are a random n-subset of the N observed ones,
  ``P(max <= v_(i)) = C(i, n) / C(N, n)``, so ``P(max = v_(i)) = C(i-1, n-1) / C(N, n)``
  and the curve reaches the observed maximum exactly at n = N.

Both use ``E[max] = v_(N) - sum_i (v_(i+1) - v_(i)) P(max <= v_(i))``, which handles ties
exactly (tied scores add zero-width steps) and needs only the N-1 gaps. No factorial or
binomial coefficient is ever formed (``C(10000, 5000)`` would overflow): with replacement each
row is ``exp(n log(i/N))`` followed by running products ``* i/N``; without replacement one chain
of running products ``* (i - n) / (N - n)`` starts from ``i / N`` at n = 1. Terms below
``exp(-40)`` (under double precision relative to the score range) are skipped, so the whole curve
for N = 10,000 costs a few million multiplications, and agrees with exact rational arithmetic to
about one ulp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from greenprint._exceptions import AnalysisError, ConfigError
from greenprint._format import count_of, count_out_of
from greenprint._records import RUN_STATUSES, RunRecord
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_choice,
    check_mode,
    check_statuses,
    finite_or_raise,
    frozen_array,
    json_float,
)
from greenprint.analysis._evp_inputs import _budgets, _no_value_of, _trial_costs
from greenprint.analysis._evp_kernels import evp_sorted
from greenprint.analysis._families import trial_family_labels
from greenprint.analysis._roles import study_trials

__all__ = [
    "BUDGET_UNITS",
    "EVPCurve",
    "GroupBy",
    "NanPolicy",
    "evp_by_budget",
    "expected_max_performance",
]

NanPolicy = Literal["worst", "omit", "raise"]
#: How trials are grouped into families: a dotted path into a run (``"params.model"``), a
#: function of a run, or (with plain scores) one label per score.
GroupBy = str | Callable[[RunRecord], Any] | Sequence[Any]

#: Cost names accepted by :func:`evp_by_budget` -> (RunRecord attribute, unit label).
BUDGET_UNITS: dict[str, tuple[str | None, str]] = {
    "trials": (None, "trials"),
    "energy_kwh": ("energy_kwh", "kWh"),
    "kwh": ("energy_kwh", "kWh"),
    "emissions_kg": ("emissions_kg", "kg CO2-eq"),
    "kg": ("emissions_kg", "kg CO2-eq"),
    "fpo": ("fpo", "FPO"),
    "duration_s": ("duration_s", "s"),
    "s": ("duration_s", "s"),
}


@dataclass(frozen=True, eq=False)
class EVPCurve:
    """Expected maximum performance of n trials and its standard deviation, n = 1..N.

    ``mean[k]`` and ``std[k]`` belong to ``n[k]`` trials; with the default ``budgets`` that is
    ``n = k + 1``, so ``mean[n - 1]`` is the expected best score of n trials. Arrays are
    read-only.

    Attributes:
        n: number of trials, ascending (int array).
        mean: expected best score of ``n`` trials (the score's unit).
        std: its standard deviation over the random choice of the ``n`` trials.
        budget: the x-axis in ``budget_unit``: ``n`` itself for trials, else the expected cost of
            ``n`` trials, ``n * mean cost per trial`` (kWh, kg CO2-eq, FPO or s).
        budget_unit: ``"trials"``, ``"kWh"``, ``"kg CO2-eq"``, ``"FPO"``, ``"s"`` or the
            caller's label.
        replacement: which estimator: with replacement (Dodge et al.) or without.
        mode: ``"max"`` (higher scores are better) or ``"min"`` (lower are better; ``mean`` is
            then the expected *minimum*).
        n_trials: N, the number of trials the curve is built from (after ``nan_policy``).
        n_missing: trials whose score was NaN (failed, or no metric logged).
        nan_policy: how those were handled: ``"worst"``, ``"omit"`` or ``"raise"``.
        fill_value: the score a missing trial counted as under ``"worst"`` (else ``None``).
        notes: caveats worth showing next to the curve.
        family: the family (``group_by`` value) the curve is for, else ``None``.
        mode_note: why ``mode`` was chosen when it was not given (a ``loss`` is minimised).
        scored_by_parts: trials whose score is the mean of their parts' (runs only).
    """

    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    budget: np.ndarray
    budget_unit: str = "trials"
    replacement: bool = True
    mode: Mode = "max"
    n_trials: int = 0
    n_missing: int = 0
    nan_policy: NanPolicy = "worst"
    fill_value: float | None = None
    notes: tuple[str, ...] = field(default=())
    family: str | None = None
    mode_note: str | None = None
    scored_by_parts: int = 0

    def __len__(self) -> int:
        return int(self.n.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists of floats; NaN would become ``None``)."""
        return {
            "n": [int(k) for k in self.n],
            "mean": [json_float(x) for x in self.mean],
            "std": [json_float(x) for x in self.std],
            "budget": [json_float(x) for x in self.budget],
            "budget_unit": self.budget_unit,
            "replacement": self.replacement,
            "mode": self.mode,
            "n_trials": self.n_trials,
            "n_missing": self.n_missing,
            "nan_policy": self.nan_policy,
            "fill_value": json_float(self.fill_value),
            "notes": list(self.notes),
            "family": self.family,
            "mode_note": self.mode_note,
            "scored_by_parts": self.scored_by_parts,
        }


@overload
def expected_max_performance(
    scores: ArrayLike,
    *,
    replacement: bool = ...,
    budgets: Sequence[int] | np.ndarray | None = ...,
    mode: Mode = ...,
    nan_policy: NanPolicy = ...,
    fill_value: float | None = ...,
    group_by: None = ...,
) -> EVPCurve: ...


@overload
def expected_max_performance(
    scores: ArrayLike,
    *,
    replacement: bool = ...,
    budgets: Sequence[int] | np.ndarray | None = ...,
    mode: Mode = ...,
    nan_policy: NanPolicy = ...,
    fill_value: float | None = ...,
    group_by: Sequence[Any],
) -> dict[str, EVPCurve]: ...


def expected_max_performance(
    scores: ArrayLike,
    *,
    replacement: bool = True,
    budgets: Sequence[int] | np.ndarray | None = None,
    mode: Mode = "max",
    nan_policy: NanPolicy = "worst",
    fill_value: float | None = None,
    group_by: Sequence[Any] | None = None,
    metric: str | None = None,
) -> EVPCurve | dict[str, EVPCurve]:
    """Expected best score of n trials, and its standard deviation, for n = 1..N.

    NaN scores are trials that produced no result (failed, crashed, never logged the metric).
    They still cost a trial, so by default (``nan_policy="worst"``) each counts as a trial that
    returned the worst score: the lowest finite score observed (the highest with
    ``mode="min"``), or ``fill_value`` when given (e.g. chance accuracy). ``"omit"`` drops them
    (N shrinks; the curve then overstates what a budget buys) and ``"raise"`` refuses them.
    Infinite scores are always an error.

    Args:
        scores: one score per trial, in any order.
        replacement: ``True`` for Dodge et al.'s estimator (n independent draws from the observed
            scores, defined for any n); ``False`` for exact sampling without replacement
            (n <= N, reaches the observed best at n = N).
        budgets: the trial counts n at which to evaluate, each in 1..N (any order, duplicates
            dropped); default every n from 1 to N.
        mode: ``"max"`` if higher scores are better, ``"min"`` if lower are better (the curve is
            then the expected minimum).
        nan_policy: ``"worst"`` (default), ``"omit"`` or ``"raise"``; see above.
        fill_value: the score a NaN trial counts as under ``"worst"``; default the worst finite
            score observed.
        group_by: one family label per score (e.g. the model of each trial): one curve per
            family, as Dodge et al. draw them, each from that family's trials only. Under
            ``"worst"`` a trial without a score counts as the worst score of every family
            together (or ``fill_value``), the same in each family's curve.
        metric: the scores' name, said in the curve's notes (``"1 of 4 trials had no score
            and counts as the worst acc (0.71)"``); ``None``: ``"... the worst (0.71)"``.

    Returns:
        The :class:`EVPCurve`, with ``budget`` equal to ``n`` (unit ``"trials"``); with
        ``group_by``, ``{family: EVPCurve}`` in order of first appearance.

    Raises:
        AnalysisError: no scores, an infinite score, a NaN under ``"raise"``, no finite score
            under ``"worst"`` without ``fill_value``, or a budget outside 1..N.
        ConfigError: an unknown ``mode`` or ``nan_policy``, a ``replacement`` not a bool.

    Example:
        >>> scores = [0.71, 0.80, 0.78, float("nan")]  # the NaN (a failed trial) counts as 0.71
        >>> expected_max_performance(scores).mean.round(3).tolist()
        [0.75, 0.771, 0.783, 0.789]
        >>> expected_max_performance(scores, replacement=False).mean.round(3).tolist()
        [0.75, 0.778, 0.795, 0.8]
        >>> curves = expected_max_performance([0.7, 0.8, 0.6], group_by=["mlp", "cnn", "mlp"])
        >>> {family: curve.mean.round(3).tolist() for family, curve in curves.items()}
        {'mlp': [0.65, 0.675], 'cnn': [0.8]}
    """
    curve = partial(
        _evp,
        replacement=replacement,
        budgets=budgets,
        mode=mode,
        nan_policy=nan_policy,
        fill_value=fill_value,
        metric=metric,
    )
    if group_by is None:
        return curve(scores)
    values = finite_or_raise(scores, "scores")
    labels = _labels(group_by, values.size)
    families = np.array(labels, dtype=object)
    if fill_value is None and nan_policy == "worst":
        curve = partial(curve, fill_value=_study_worst(values, mode))
    return {
        family: replace(curve(values[families == family]), family=family)
        for family in dict.fromkeys(labels)
    }


def _study_worst(values: np.ndarray, mode: Mode) -> float | None:
    """The worst finite score of every family together (``None``: none is finite).

    A trial without a score counts as this in each family's curve, as in the whole study's: a
    failed trial of a strong family is not worth more than one of a weak family.
    """
    finite = values[~np.isnan(values)]
    if not finite.size:
        return None
    return float(finite.min() if check_mode(mode) == "max" else finite.max())


def _labels(group_by: Any, size: int) -> list[str]:
    if isinstance(group_by, str) or callable(group_by):
        raise AnalysisError(
            "with plain scores, group_by must give one family label per score "
            "(a path such as 'params.model' needs runs)"
        )
    labels = [str(label) for label in group_by]
    if len(labels) != size:
        raise AnalysisError(f"{len(labels)} group_by labels for {size} scores: give one per score")
    return labels


def _evp(
    scores: ArrayLike,
    *,
    replacement: bool,
    budgets: Sequence[int] | np.ndarray | None,
    mode: Mode,
    nan_policy: NanPolicy,
    fill_value: float | None,
    metric: str | None = None,
) -> EVPCurve:
    mode = check_mode(mode)
    policy = check_choice(nan_policy, "nan_policy", ("worst", "omit", "raise"))
    if not isinstance(replacement, (bool, np.bool_)):  # "no" would be taken as True
        raise ConfigError(f"replacement must be True or False, not {replacement!r}")
    values = finite_or_raise(scores, "scores")
    if values.size == 0:
        raise AnalysisError("no scores: expected maximum performance needs at least one trial")
    missing = np.isnan(values)
    n_missing = int(missing.sum())
    used_fill: float | None = None
    if n_missing:
        if policy == "raise":
            raise AnalysisError(f"{n_missing} of {values.size} scores are NaN (nan_policy='raise')")
        if policy == "omit":
            values = values[~missing]
            if values.size == 0:
                raise AnalysisError("every score is NaN: nothing left after nan_policy='omit'")
        else:
            if fill_value is not None:
                used_fill = float(fill_value)
                if not math.isfinite(used_fill):
                    raise AnalysisError(f"fill_value must be finite, not {fill_value!r}")
            elif n_missing == values.size:
                raise AnalysisError(
                    "every score is NaN: give fill_value (the score of a failed trial)"
                )
            else:
                finite = values[~missing]
                used_fill = float(finite.min() if mode == "max" else finite.max())
            values = np.where(missing, used_fill, values)
    total = int(values.size)
    ns = _budgets(budgets, total, replacement)
    signed = values if mode == "max" else -values
    mean, std = evp_sorted(np.sort(signed), ns, replacement=replacement)
    if mode == "min":
        mean = -mean
    notes: list[str] = []
    if n_missing and policy == "worst":
        count = "counts" if n_missing == 1 else "count"
        worst = f"the worst {metric}" if metric else "the worst"
        notes.append(
            f"{count_out_of(n_missing, total, 'trial')} had no score and {count} as {worst} "
            f"({used_fill:g})"
        )
    elif n_missing:
        were = "was" if n_missing == 1 else "were"
        notes.append(f"{count_of(n_missing, 'trial')} without a score {were} left out")
    return EVPCurve(
        n=frozen_array(ns),
        mean=frozen_array(mean),
        std=frozen_array(std),
        budget=frozen_array(ns.astype(float)),
        budget_unit="trials",
        replacement=bool(replacement),
        mode=mode,
        n_trials=total,
        n_missing=n_missing,
        nan_policy="worst" if policy == "worst" else ("omit" if policy == "omit" else "raise"),
        fill_value=used_fill,
        notes=tuple(notes),
    )


@overload
def evp_by_budget(
    runs_or_scores: Sequence[RunRecord] | ArrayLike,
    costs: str | ArrayLike = ...,
    *,
    metric: str | None = ...,
    unit: str | None = ...,
    mode: Mode | None = ...,
    reduce: Reduce = ...,
    replacement: bool = ...,
    budgets: Sequence[int] | np.ndarray | None = ...,
    nan_policy: NanPolicy = ...,
    fill_value: float | None = ...,
    scored_statuses: Sequence[str] = ...,
    group_by: None = ...,
) -> EVPCurve: ...


@overload
def evp_by_budget(
    runs_or_scores: Sequence[RunRecord] | ArrayLike,
    costs: str | ArrayLike = ...,
    *,
    metric: str | None = ...,
    unit: str | None = ...,
    mode: Mode | None = ...,
    reduce: Reduce = ...,
    replacement: bool = ...,
    budgets: Sequence[int] | np.ndarray | None = ...,
    nan_policy: NanPolicy = ...,
    fill_value: float | None = ...,
    scored_statuses: Sequence[str] = ...,
    group_by: GroupBy,
) -> dict[str, EVPCurve]: ...


def evp_by_budget(
    runs_or_scores: Sequence[RunRecord] | ArrayLike,
    costs: str | ArrayLike = "energy_kwh",
    *,
    metric: str | None = None,
    unit: str | None = None,
    mode: Mode | None = None,
    reduce: Reduce = "last",
    replacement: bool = True,
    budgets: Sequence[int] | np.ndarray | None = None,
    nan_policy: NanPolicy = "worst",
    fill_value: float | None = None,
    scored_statuses: Sequence[str] = ("finished", "pruned"),
    group_by: GroupBy | None = None,
) -> EVPCurve | dict[str, EVPCurve]:
    """Expected best score against the expected cost of the trials that bought it.

    The x-axis (``budget``) is the expected cost of n random trials, ``n * mean cost per
    trial`` (the same for both estimators), in trials, kWh, kg CO2-eq, FPO or seconds.

    From runs: the trials are the runs with role ``trial`` (given or inferred, see
    :func:`~greenprint.analysis.resolve_roles`: never a fold or other part, a sweep, a
    baseline, the final run or a learning-curve run), except runs still ``running``. A trial's
    score is its own ``metric`` (last logged, or best with ``reduce="best"``), else the mean of
    its parts' (e.g. cross-validation folds; ``scored_by_parts`` counts them), when its status
    is in ``scored_statuses``; failed, interrupted and lost trials produced no usable model and
    count as NaN, handled by ``nan_policy`` (by default as the worst score: they cost a trial).
    A trial's cost includes its parts'. Trials with an unknown FPO are given the mean FPO of the
    others (noted on the curve); a trial's FPO is known when its own is, or when all its
    parts' are (as the price tag counts it). Run time likewise: a trial recorded without a
    duration (``duration_s`` 0.0, a run built through the ledger API) is unknown, never 0 s,
    and is given the mean of the others' (``"2 of 5 trials had no recorded run time; given
    the mean"``).

    Args:
        runs_or_scores: RunRecords, or one score per trial.
        costs: with runs, which cost: ``"trials"``, ``"energy_kwh"`` (or ``"kwh"``),
            ``"emissions_kg"`` (``"kg"``), ``"fpo"``, ``"duration_s"`` (``"s"``); or one cost
            per trial (same order as the scores; required with scores).
        metric: the metric to rank runs by (required with runs); with scores, their name,
            said in the curve's notes as :func:`expected_max_performance` says it.
        unit: label of the budget axis for explicit costs (default ``"cost"``).
        mode: ``"max"`` if higher scores are better, else ``"min"``; ``None`` infers it from
            ``metric``'s name (``loss``, ``error``... are minimised, and ``mode_note`` says so).
        reduce: ``"last"`` or ``"best"`` logged value of each run's metric.
        replacement: the estimator (see :func:`expected_max_performance`).
        budgets: trial counts n at which to evaluate (default 1..N).
        nan_policy: ``"worst"``, ``"omit"`` (also drops those trials' cost) or ``"raise"``.
        fill_value: score of a trial without one under ``"worst"``.
        scored_statuses: statuses whose logged score counts (``None``: every status; one
            status may be a string).
        group_by: families of trials, one curve each: with runs a dotted path
            (``"params.model"``) or a function of a run; with scores one label per score. A
            trial without a score counts as the worst of all families' scores (or
            ``fill_value``) in its family's curve.

    Returns:
        The :class:`EVPCurve` with ``budget`` and ``budget_unit`` set; with ``group_by``,
        ``{family: EVPCurve}`` in order of first appearance.

    Raises:
        AnalysisError: no trials, no trial with the metric, costs of the wrong length, negative
            or non-finite costs, or no known FPO; plus the errors of
            :func:`expected_max_performance`.
        ConfigError: an unknown cost name or option.

    Example:
        >>> from greenprint import MetricPoint, RunRecord
        >>> runs = [
        ...     RunRecord(id=f"t{k}", name=f"t{k}", status="finished", energy_kwh=0.1,
        ...               params={"model": model}, metrics=(MetricPoint("loss", loss),))
        ...     for k, (model, loss) in enumerate([("mlp", 0.5), ("cnn", 0.3), ("mlp", 0.4)])
        ... ]
        >>> curves = evp_by_budget(runs, "trials", metric="loss", group_by="params.model")
        >>> {family: curve.mean.round(3).tolist() for family, curve in curves.items()}
        {'mlp': [0.45, 0.425], 'cnn': [0.3]}
        >>> curves["mlp"].mode_note
        "'loss' is minimised: its name says lower is better (to maximise it: --mode max, or
        mode='max' in Python)"
    """
    notes: list[str] = []
    mode_note: str | None = None
    from_parts = np.zeros(0, dtype=bool)
    labels: list[str] | None = None
    given: Any = runs_or_scores
    items = list(given) if not isinstance(given, np.ndarray) else None
    if items == [] or (isinstance(given, np.ndarray) and given.size == 0):
        # not "give costs as one number per trial": an empty study has neither runs nor scores
        raise AnalysisError("no runs or scores: evp_by_budget needs at least one trial")
    if items and all(isinstance(r, RunRecord) for r in items):
        if metric is None:
            raise AnalysisError("evp_by_budget on runs needs metric= (the score to rank by)")
        study = study_trials(
            RunForest.build(r for r in items if isinstance(r, RunRecord)),
            metric=metric,
            mode=mode,
            reduce=reduce,
        )
        mode, mode_note = study.mode, study.mode_note
        forest = study.forest
        positions = [p for p in study.positions if forest.runs[p].status != "running"]
        if not positions:
            raise AnalysisError("no finished or ended trial to build the curve from")
        trials = [forest.runs[p] for p in positions]
        scored = check_statuses(scored_statuses, "scored_statuses")
        scores = np.array(
            [
                study.scores[p].score
                if scored is None or forest.runs[p].status in scored
                else math.nan
                for p in positions
            ]
        )
        from_parts = np.array([study.scores[p].source == "parts" for p in positions], dtype=bool)
        if np.isnan(scores).all():
            raise AnalysisError(
                _no_value_of(metric, items, RUN_STATUSES if scored is None else scored)
            )
        if isinstance(costs, str):
            key = check_choice(costs.lower(), "costs", BUDGET_UNITS)
            attribute, label = BUDGET_UNITS[key]
            raw = _trial_costs(forest, positions, attribute)
            cost = np.array([math.nan if c is None else float(c) for c in raw])
            unknown = int(np.isnan(cost).sum())
            timed = attribute == "duration_s"  # a run recorded without one: unknown, not 0 s
            # a run with no energy meter (meters=[]): its energy and CO2-eq unknown, not 0
            metered = attribute in ("energy_kwh", "emissions_kg")
            if unknown == cost.size:
                what = (
                    "recorded run time (duration_s)"
                    if timed
                    else f"{key} (no energy meter recorded any)"
                    if metered
                    else key
                )
                raise AnalysisError(
                    f"no trial has a known {what}: cannot put it on the budget axis"
                )
            if unknown:
                cost = np.where(np.isnan(cost), np.nanmean(cost), cost)
                what = (
                    "recorded run time"
                    if timed
                    else "energy recorded (no energy meter)"
                    if metered
                    else label
                )
                notes.append(
                    f"{count_out_of(unknown, cost.size, 'trial')} had no {what}; given the mean"
                )
        else:
            label = unit or "cost"
            cost = finite_or_raise(costs, "costs")
        if group_by is not None:
            if isinstance(group_by, str) or callable(group_by):
                labels = trial_family_labels(forest, positions, group_by)
            else:
                labels = _labels(group_by, len(trials))
    else:
        mode = "max" if mode is None else check_mode(mode)
        if isinstance(costs, str):
            if costs.lower() != "trials":
                raise AnalysisError("with plain scores, give costs as one number per trial")
            label = "trials"
            cost = np.ones(np.asarray(runs_or_scores).shape[0] if items is None else len(items))
        else:
            label = unit or "cost"
            cost = finite_or_raise(costs, "costs")
        scores = finite_or_raise(runs_or_scores, "scores")
        if group_by is not None:
            labels = _labels(group_by, scores.size)
    if cost.shape != scores.shape:
        raise AnalysisError(f"{cost.size} costs for {scores.size} scores: give one per trial")
    if np.isnan(cost).any() or (cost < 0).any():
        raise AnalysisError("costs must be finite and non-negative")

    def curve_of(keep: np.ndarray, family: str | None) -> EVPCurve:
        part_scores, part_cost = scores[keep], cost[keep]
        if nan_policy == "omit":
            part_cost = part_cost[~np.isnan(part_scores)]
        curve = _evp(
            part_scores,
            replacement=replacement,
            budgets=budgets,
            mode=mode,
            nan_policy=nan_policy,
            fill_value=fill_value,
            metric=metric,
        )
        per_trial = float(part_cost.mean()) if part_cost.size else 0.0
        return replace(
            curve,
            budget=frozen_array(curve.n * per_trial),
            budget_unit=label,
            notes=curve.notes + tuple(notes) + ((mode_note,) if mode_note else ()),
            family=family,
            mode_note=mode_note,
            scored_by_parts=int(from_parts[keep].sum()) if from_parts.size else 0,
        )

    if labels is None:
        return curve_of(np.ones(scores.size, dtype=bool), None)
    if fill_value is None and nan_policy == "worst":
        fill_value = _study_worst(scores, mode)
    families = np.array(labels, dtype=object)
    return {family: curve_of(families == family, family) for family in dict.fromkeys(labels)}
