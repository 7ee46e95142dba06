"""Learning curves: score and cost against training-set size.

:func:`learning_curve` reads runs that carry ``dataset_size`` (repeats at one size are
aggregated: mean and sample standard deviation). :func:`~greenprint.analysis.run_learning_curve`
produces such runs by tracking a user function over subsample fractions; it starts runs, so it
lives a floor up, in :mod:`greenprint._studies`.

A study's runs are read as the price tag and the report read them
(:class:`~greenprint.analysis._common.RunForest`, :mod:`~greenprint.analysis._roles`): a part
(the Lightning fit of a learning-curve run, a fold of a trial) is never a point of its own, its
score and cost are its run's; a run's score is its own, else the mean of its parts', and its
cost is its own with its parts' (FPO known only when every run under it counted its own;
energy and CO2-eq shared among children that ran at the same time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenprint._exceptions import AnalysisError, ConfigError
from greenprint._format import count_of
from greenprint._records import RunRecord
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_logged,
    check_mode,
    check_statuses,
    frozen_array,
    json_float,
)
from greenprint.analysis._roles import study_trials

__all__ = [
    "LearningCurve",
    "check_fraction",
    "curve_of",
    "curve_points",
    "learning_curve",
    "subsample_size",
]


@dataclass(frozen=True, eq=False)
class LearningCurve:
    """Score and cost against training-set size, one entry per distinct size (ascending).

    Standard deviations are sample ones (``ddof=1``) over the repeats at a size, NaN where there
    is a single run. Each run's cost is its own with its parts' (see the module). FPO figures
    are over the runs whose FPO with their parts' is known (NaN where none is). Durations are
    run-seconds, as the price tag's (a run's children that ran in parallel add up), over the
    runs whose duration is known: a run recorded without one (``duration_s`` 0.0, built
    through the ledger API) is left out of them, never counted as 0 s, and a note says how
    many were (NaN where none is known). Arrays are read-only.

    Attributes:
        metric: the score's metric name.
        dataset_size: training-set sizes, examples (int array).
        n_runs: runs at each size.
        score_mean: mean score.
        score_std: score standard deviation.
        energy_kwh_mean: mean IT energy per run (with its parts'), kWh.
        energy_kwh_std: its standard deviation, kWh.
        emissions_kg_mean: mean emissions per run, kg CO2-eq.
        emissions_kg_std: its standard deviation, kg CO2-eq.
        fpo_mean: mean FPO per run.
        fpo_std: its standard deviation, FPO.
        duration_s_mean: mean run duration, s (of the runs whose duration is known).
        duration_s_std: its standard deviation, s.
        n_skipped: runs left out (no ``dataset_size`` or no score of ``metric``; a part is
            not left out: it is inside its run's point, nor is a run above points, such as a
            sweep of trials).
        notes: caveats.
        duration_unknown: runs used whose duration is unknown (recorded without one), left
            out of ``duration_s_mean`` and ``duration_s_std`` only.
    """

    metric: str
    dataset_size: np.ndarray
    n_runs: np.ndarray
    score_mean: np.ndarray
    score_std: np.ndarray
    energy_kwh_mean: np.ndarray
    energy_kwh_std: np.ndarray
    emissions_kg_mean: np.ndarray
    emissions_kg_std: np.ndarray
    fpo_mean: np.ndarray
    fpo_std: np.ndarray
    duration_s_mean: np.ndarray
    duration_s_std: np.ndarray
    n_skipped: int = 0
    notes: tuple[str, ...] = ()
    duration_unknown: int = 0

    def __len__(self) -> int:
        return int(self.dataset_size.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""
        out: dict[str, Any] = {"metric": self.metric}
        out["dataset_size"] = [int(x) for x in self.dataset_size]
        out["n_runs"] = [int(x) for x in self.n_runs]
        for name in (
            "score_mean",
            "score_std",
            "energy_kwh_mean",
            "energy_kwh_std",
            "emissions_kg_mean",
            "emissions_kg_std",
            "fpo_mean",
            "fpo_std",
            "duration_s_mean",
            "duration_s_std",
        ):
            out[name] = [json_float(x) for x in getattr(self, name)]
        out["n_skipped"] = self.n_skipped
        out["notes"] = list(self.notes)
        out["duration_unknown"] = self.duration_unknown
        return out


def learning_curve(
    runs: Iterable[RunRecord],
    *,
    metric: str,
    mode: Mode = "max",
    reduce: Reduce = "last",
    statuses: Sequence[str] | None = ("finished",),
    scores: Mapping[str, float] | None = None,
) -> LearningCurve:
    """Score and cost (kWh, kg CO2-eq, FPO, s) against training-set size.

    The runs may be a whole study (``ledger.runs(study=...)``): they are read as the report
    reads them (see the module). A part (a learning-curve run's Lightning fit, a trial's fold)
    is never a point: its run is, once, scored by its own value else its parts' mean, and
    costing its own with its parts'. A part given role ``"learning-curve"`` is
    (:func:`~greenprint.analysis.run_learning_curve` inside a trial's run), and the runs above
    such points are none (:func:`curve_points`). A set of runs without nesting reads each run's
    own fields.

    Args:
        runs: the runs; those that may be points (:func:`curve_points`), with a status in
            ``statuses``, a ``dataset_size`` and a score of ``metric`` are used (the others
            that may be points are counted in ``n_skipped`` when their status is kept).
        metric: the score's metric name.
        mode: ``"max"`` or ``"min"`` (used by ``reduce="best"``).
        reduce: ``"last"`` or ``"best"`` logged value of each run's metric.
        statuses: statuses to use (``None``: all; one status may be a string).
        scores: each run's score by run id, when it is not the one read here (its own logged
            value, else the mean of its parts'); a run not in it, or NaN there, is scored as
            read here.

    Returns:
        The :class:`LearningCurve`.

    Raises:
        AnalysisError: ``metric`` is a name none of ``runs`` logged while they logged others
            (the message lists them, the nearest first), no run carries both a dataset size
            and a score (when runs that do were left out by ``statuses``, it names their
            statuses), a score is infinite, two runs share an id or parents form a cycle.
        ConfigError: an unknown ``mode``, ``reduce`` or status in ``statuses``.
    """
    mode = check_mode(mode)
    check_statuses(statuses)
    runs = list(runs)
    if scores is None:  # a name typed wrong: not "set run.set(dataset_size=...)"
        check_logged(runs, metric)
    study = study_trials(RunForest.build(runs), metric=metric, mode=mode, reduce=reduce)
    roles = study.roles.roles
    read = [s.score for s in study.scores]
    if scores is not None:
        ids = study.forest.column("id")
        for pos, rid in enumerate(ids):
            given = scores.get(rid, math.nan)
            if not math.isnan(given):
                read[pos] = float(given)
    positions = curve_points(study.forest, roles)
    return curve_of(study.forest, positions, read, metric=metric, statuses=statuses, time_note=True)


def curve_points(forest: RunForest, roles: Sequence[str]) -> list[int]:
    """The positions of the runs that may be points of a study's learning curve, in order.

    Every run but a part, and a part given role ``"learning-curve"``
    (:func:`~greenprint.analysis.run_learning_curve` inside a trial's run: the trial's parts
    for cost, the curve's points); but never a run above another of them (a sweep of trials,
    the trial around those learning-curve runs): its runs are the points.

    Args:
        forest: the runs arranged by nesting.
        roles: each run's role (:func:`~greenprint.analysis.resolve_roles`).
    """
    runs, parents = forest.runs, forest.parents
    points = [p for p, role in enumerate(roles) if role != "part" or runs[p].role == _CURVE]
    above: set[int] = set()  # the runs above a point
    for pos in points:
        parent = parents[pos]
        while parent is not None and parent not in above:
            above.add(parent)
            parent = parents[parent]
    return [p for p in points if p not in above] if above else points


_CURVE = "learning-curve"


def curve_of(
    forest: RunForest,
    positions: Sequence[int],
    scores: Sequence[float],
    *,
    metric: str,
    statuses: Sequence[str] | None = ("finished",),
    time_note: bool = False,
) -> LearningCurve:
    """The learning curve of some runs of a forest, each costing its own with its parts'.

    For a caller that chooses the points itself (the report's figure: the study's
    learning-curve runs) and reads their cost within the whole study.

    Args:
        forest: the runs arranged by nesting (the study's).
        positions: the positions of the runs to use, in order; none should be inside another.
        scores: one score per run of the forest (NaN: none).
        metric: the score's metric name.
        statuses: statuses to use (``None``: all).
        time_note: say in the notes how many runs of unknown duration the run time leaves
            out (:func:`learning_curve` does; the report's figure draws no run time, and
            ``duration_unknown`` counts them either way).

    Returns:
        The :class:`LearningCurve`.

    Raises:
        AnalysisError: no run carries both a dataset size and a score, or a score is infinite.
    """
    keep = check_statuses(statuses)
    fpo = forest.fpo_sums  # RunForest's rules, as the price tag's: one reading of a cost
    # NaN where no meter recorded it (meters=[]): left out of the means, never a 0 kWh
    costs = [forest.known_cost_sums(name) for name in ("energy_kwh", "emissions_kg")]
    times = forest.duration_sums  # a run recorded without a duration: unknown, never 0 s
    untimed = 0  # points whose run time is unknown: left out of duration_s_mean/std
    uncounted = unmetered = 0  # points whose FPO, energy is unknown: left out of its mean/std
    groups: dict[int, list[tuple[float, ...]]] = {}
    skipped = 0
    unscored = 0  # runs kept with a size but no score: what the error says when no point is left
    left_out: dict[str, int] = {}  # runs with a size and a score whose status is not kept
    for pos in positions:
        run = forest.runs[pos]
        score = float(scores[pos])  # NaN: no score (never logged, diverged to NaN or inf)
        size = run.dataset_size if run.dataset_size is not None else 0
        sized = size > 0 and not math.isnan(score)
        if keep is not None and run.status not in keep:
            if sized:
                left_out[run.status] = left_out.get(run.status, 0) + 1
            continue
        if not sized:
            skipped += 1
            unscored += size > 0
            continue
        known_fpo = float(fpo.inclusive[pos]) if fpo.complete[pos] else math.nan
        energy, emissions = (float(c[pos]) for c in costs)
        duration = float(times.inclusive[pos]) if times.complete[pos] else math.nan
        untimed += math.isnan(duration)
        uncounted += math.isnan(known_fpo)
        unmetered += math.isnan(energy)
        groups.setdefault(int(size), []).append((score, energy, emissions, known_fpo, duration))
    if not groups:
        if left_out:  # they have sizes and scores: their status is what left them out
            # "no run carries" opens both messages: the report reads it as "no curve to draw"
            kept = " or ".join(sorted(keep or ()))
            found = ", ".join(f"{n} {status}" for status, n in sorted(left_out.items()))
            raise AnalysisError(
                f"no run carries both a dataset_size and a value of metric {metric!r} among "
                f"those with status {kept}; runs of other statuses do: {found} "
                "(statuses=None keeps every status)"
            )
        if unscored:  # they have sizes: the metric is what they lack, not a dataset_size
            have = "has" if unscored == 1 else "have"
            raise AnalysisError(
                f"no run carries both a dataset_size and a value of metric {metric!r}: the "
                f"{count_of(unscored, 'run')} with a dataset_size {have} no value of "
                f"{metric!r} (log it on each, or choose a metric they logged)"
            )
        raise AnalysisError(
            f"no run carries both a dataset_size and a value of metric {metric!r}: "
            "set run.set(dataset_size=...) when tracking"
        )
    sizes = sorted(groups)
    columns: dict[str, list[float]] = {}
    names = ("score", "energy_kwh", "emissions_kg", "fpo", "duration_s")
    for size in sizes:
        for k, name in enumerate(names):
            array = np.array([member[k] for member in groups[size]], dtype=float)
            known = array[~np.isnan(array)]
            columns.setdefault(f"{name}_mean", []).append(
                float(known.mean()) if known.size else math.nan
            )
            columns.setdefault(f"{name}_std", []).append(
                float(known.std(ddof=1)) if known.size > 1 else math.nan
            )
    notes = []
    if skipped:
        were = "was" if skipped == 1 else "were"
        notes.append(
            f"{count_of(skipped, 'run')} without a dataset_size or a {metric!r} score {were} "
            "left out"
        )
    if untimed and time_note:
        notes.append(untimed_note(untimed))
    # a mean over the runs that know it, said as the run time's is: not a mean of all of them
    if uncounted:
        notes.append(
            f"{count_of(uncounted, 'run')} that counted no FPO {'is' if uncounted == 1 else 'are'} "
            "left out of the FPO (fpo_mean/std; NaN at a size where no run counted it)"
        )
    if unmetered:
        notes.append(
            f"{count_of(unmetered, 'run')} that no meter measured "
            f"{'is' if unmetered == 1 else 'are'} left out of the energy and CO2-eq "
            "(energy_kwh_mean/std, emissions_kg_mean/std; NaN at a size where none was measured)"
        )
    arrays = {k: frozen_array(np.array(v)) for k, v in columns.items()}
    return LearningCurve(
        metric=metric,
        dataset_size=frozen_array(np.array(sizes, dtype=np.int64)),
        n_runs=frozen_array(np.array([len(groups[s]) for s in sizes], dtype=np.int64)),
        score_mean=arrays["score_mean"],
        score_std=arrays["score_std"],
        energy_kwh_mean=arrays["energy_kwh_mean"],
        energy_kwh_std=arrays["energy_kwh_std"],
        emissions_kg_mean=arrays["emissions_kg_mean"],
        emissions_kg_std=arrays["emissions_kg_std"],
        fpo_mean=arrays["fpo_mean"],
        fpo_std=arrays["fpo_std"],
        duration_s_mean=arrays["duration_s_mean"],
        duration_s_std=arrays["duration_s_std"],
        n_skipped=skipped,
        notes=tuple(notes),
        duration_unknown=untimed,
    )


def untimed_note(count: int) -> str:
    """The curve's note on ``count`` runs of unknown duration left out of its run time."""
    are = "is" if count == 1 else "are"
    return (
        f"{count_of(count, 'run')} recorded without a duration {are} left out of the run time "
        "(duration_s_mean/std; NaN at a size where no run's is known)"
    )


def subsample_size(fraction: float, full_size: int) -> int:
    """Training examples in a ``fraction`` of ``full_size`` (rounded, at least 1).

    Raises:
        ConfigError: ``fraction`` is not in (0, 1] or ``full_size`` is not a positive integer.
    """
    check_fraction(fraction)
    if isinstance(full_size, bool) or not isinstance(full_size, (int, np.integer)):
        raise ConfigError(f"full_size must be a positive integer, not {full_size!r}")
    if full_size < 1:
        raise ConfigError(f"full_size must be a positive integer, not {full_size!r}")
    return max(1, round(fraction * int(full_size)))


def check_fraction(fraction: float) -> float:
    """Return ``fraction`` as a float if it is in (0, 1], else raise :class:`ConfigError`."""
    try:
        value = float(fraction)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"a fraction must be a number in (0, 1], not {fraction!r}") from e
    if not (0.0 < value <= 1.0):
        raise ConfigError(f"a fraction must be in (0, 1], not {fraction!r}")
    return value
