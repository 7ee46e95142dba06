"""The figures' data, computed from the runs with :mod:`greenprint.analysis`.

Each builder returns a :class:`~greenprint.report._model.Figure` (numbers only; plotting is in
``_plots.py``) or ``None`` with the reason, which the report shows instead of the figure.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal

import numpy as np

from greenprint._exceptions import AnalysisError
from greenprint._format import count_of, format_energy
from greenprint._records import PowerSample, RunRecord
from greenprint._units import JOULES_PER_KWH
from greenprint.analysis import (
    EVPCurve,
    LearningCurve,
    PriceTag,
    evp_by_budget,
    pareto_front,
    resolve_roles,
)
from greenprint.analysis._beyond import BeyondSums, beyond_sums
from greenprint.analysis._common import Mode, Reduce, RunForest
from greenprint.analysis._curves import curve_of, curve_points
from greenprint.report._model import Figure, Panel, Series, SeriesKind

__all__ = [
    "FigureInputs",
    "energy_unit",
    "evp_figures",
    "learning_curve_figure",
    "pareto_figure",
    "timeline_figure",
]

# Above this many trials the EVP curve is evaluated on a log-spaced grid of n (exact at each n).
_EVP_GRID_ABOVE = 1000
_EVP_GRID_POINTS = 400
# Statuses whose score counts in the EVP (as evp_by_budget's default scored_statuses).
_SCORED = ("finished", "pruned")
# Gaps in the power timeline up to max(this, share x span) are bridged in the drawing.
_BRIDGE_GAP_S = 1.0
_BRIDGE_GAP_SHARE = 0.01
# Above this many time segments the power timeline is averaged over equal bins.
_TIMELINE_MAX_SEGMENTS = 2000
_TIMELINE_BINS = 1000


@dataclass(frozen=True)
class FigureInputs:
    """What the figure builders share: the runs, their nesting and scores, the options."""

    runs: tuple[RunRecord, ...]
    forest: RunForest
    scores: Mapping[str, float]  # run id -> score (NaN: none)
    metric: str
    mode: Mode
    reduce: Reduce
    price_tag: PriceTag
    final_id: str | None
    energy_provenance: tuple[str, ...]  # lines: measured/estimated, intensity, PUE
    trials: tuple[int, ...] = ()  # positions of the trials (role "trial"), in the order given
    baselines: tuple[int, ...] = ()  # positions of the baselines (role "baseline")
    learning_curves: tuple[int, ...] = ()  # positions of the runs with role "learning-curve"
    families: tuple[str, ...] = ()  # one family label per trial (``group_by``), or none
    group_by: str | None = None  # what the families are, e.g. "params.model"

    @cached_property
    def trial_columns(self) -> TrialColumns:
        """The trials' ids, statuses, scores and energies as columns, read once for all figures.

        The EVP and Pareto figures both walked the 100,000 trials of a big study run by run
        (status, score lookup, energy; 40 ms in EVP, 180 ms with the Pareto figure's lists of
        points); the columns cost about 30 ms, once (measured, CPU time).
        """
        return TrialColumns.of(self)


@dataclass(frozen=True)
class TrialColumns:
    """The trials of a :class:`FigureInputs` (its ``trials`` order), one array per field.

    Attributes:
        positions: each trial's position in ``forest.runs`` (int array).
        ids: each trial's run id.
        score: each trial's score (``scores``; NaN: none).
        energy_kwh: each trial's energy with its parts' (kWh), as the price tag counts it:
            trials that ran at the same time share their sweep's measurement
            (:meth:`~greenprint.analysis._common.RunForest.shared_sums`).
        finished: whether its status is ``"finished"`` (bool array); ``pruned`` and
            ``running`` likewise.
    """

    positions: np.ndarray
    ids: list[str]
    score: np.ndarray
    energy_kwh: np.ndarray
    finished: np.ndarray
    pruned: np.ndarray
    running: np.ndarray

    @classmethod
    def of(cls, inputs: FigureInputs) -> TrialColumns:
        """Read the columns of ``inputs``' trials.

        From the forest's columns (``RunForest.column``), which the price tag and roles have
        read already, not from the records again.
        """
        forest, trials = inputs.forest, inputs.trials
        all_ids, statuses = forest.column("id"), forest.column("status")
        energies = forest.shared_sums("energy_kwh").inclusive  # the price tag's, computed once
        ids = [all_ids[p] for p in trials]
        status = np.array([statuses[p] for p in trials], dtype=object)
        size = len(trials)
        return cls(
            positions=np.array(trials, dtype=np.int64),
            ids=ids,
            score=np.fromiter(map(inputs.scores.get, ids, repeat(math.nan)), float, size),
            energy_kwh=np.array([energies[p] for p in trials], dtype=float),
            finished=np.asarray(status == "finished", dtype=bool),
            pruned=np.asarray(status == "pruned", dtype=bool),
            running=np.asarray(status == "running", dtype=bool),
        )


def energy_unit(max_kwh: float) -> tuple[float, str]:
    """Display unit for energies up to ``max_kwh``: (factor to multiply kWh by, unit).

    Down to nWh, as the text writes energies (``_format.ENERGY_UNITS``): a study of short runs
    (a notebook's, a test's) read ``1e-05 mWh`` on its axes beside ``10.3 nWh`` in its tables.
    """
    if max_kwh >= 1.0:
        return 1.0, "kWh"
    if max_kwh >= 1e-3:
        return 1e3, "Wh"
    if max_kwh >= 1e-6 or not max_kwh > 0:  # nothing measured: as before
        return 1e6, "mWh"
    if max_kwh >= 1e-9:
        return 1e9, "µWh"
    return 1e12, "nWh"


def _time_unit(span_s: float) -> tuple[float, str]:
    if span_s >= 3 * 3600:
        return 1 / 3600, "h"
    if span_s >= 300:
        return 1 / 60, "min"
    return 1.0, "s"


def _tuple(values: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(np.asarray(values, dtype=float).tolist())  # Python floats


def _score_label(inputs: FigureInputs) -> str:
    better = "higher" if inputs.mode == "max" else "lower"
    return f"{inputs.metric} ({better} is better)"


def _score_provenance(
    inputs: FigureInputs, curve: EVPCurve | None = None, *, of: str = "trial"
) -> str:
    """Where the scores come from: ``of`` is what each point is (a trial, a run)."""
    how = "last logged" if inputs.reduce == "last" else "best logged"
    text = f"scores: {how} value of {inputs.metric!r} of each {of}"
    if curve is not None and curve.n_missing:
        # how many, and the worst score they count as, are the curve's note (said once: the
        # caption read '... count as the worst score (16.96). 1 of 12 trials had no score and
        # count as the worst (16.9626)')
        text += (
            "; a trial without a score (failed, interrupted, lost, never logged, or a last "
            "value that is NaN: a diverged loss) counts as the worst score"
        )
    return text


# ------------------------------------------------------------------------------------- EVP
def evp_figures(inputs: FigureInputs) -> tuple[list[Figure], list[str]]:
    """Expected max performance against trials and against energy (Dodge et al., 2019).

    Returns:
        The figures (none if no trial has a score) and notes saying why any is missing.
    """
    columns = inputs.trial_columns
    ended = ~columns.running
    positions = columns.positions[ended]
    if not positions.size:
        return [], ["no expected-max-performance curve: no trial has ended"]
    if len(columns.positions) == 1:  # one training: the curve is its one score
        return [], [
            "no expected-max-performance curve: the study has one trial (one training, no "
            "search): the best of n trials drawn from it is its own score"
        ]
    grid = None
    if positions.size > _EVP_GRID_ABOVE:
        grid = np.unique(
            np.concatenate(
                [np.round(np.geomspace(1, positions.size, _EVP_GRID_POINTS)), [positions.size]]
            ).astype(np.int64)
        )
    # As evp_by_budget on runs: finished and pruned trials (_SCORED) score, the others count as
    # NaN (nan_policy "worst"); the scores were computed once, so arrays are passed.
    scored = columns.finished | columns.pruned
    scores = np.where(scored, columns.score, math.nan)[ended]
    if np.isnan(scores).all():
        return [], [_no_score_note(inputs, columns.positions[scored & ended].tolist())]
    costs = columns.energy_kwh[ended]
    curves: dict[bool, EVPCurve] = {
        replacement: evp_by_budget(
            scores,
            costs,
            unit="kWh",
            metric=inputs.metric,
            mode=inputs.mode,
            replacement=replacement,
            budgets=grid,
        )
        for replacement in (True, False)
    }
    dodge, exact = curves[True], curves[False]
    n = _tuple(dodge.n)
    scale: Literal["linear", "log"] = "log" if positions.size > 50 else "linear"
    factor, unit = energy_unit(float(np.max(dodge.budget)) if len(dodge) else 0.0)
    notes = list(dodge.notes)
    if inputs.price_tag.mode_note:  # e.g. a loss minimised because of its name
        notes.append(inputs.price_tag.mode_note)
    if grid is not None:
        notes.append(f"evaluated at {len(grid)} log-spaced trial counts (exact at each)")
    provenance = (_score_provenance(inputs, dodge),)

    # The band is mean ± std, clipped to the observed scores (the best of n trials can be
    # neither better than the best observed nor worse than the worst).
    observed = [float(np.min(dodge.mean)), float(np.max(dodge.mean))]
    observed += scores[~np.isnan(scores)].tolist()
    if dodge.fill_value is not None:
        observed.append(dodge.fill_value)
    low_bound, high_bound = min(observed), max(observed)
    notes.append("the shaded band is ±1 standard deviation, clipped to the observed scores")

    family_curves, unscored = _family_curves(
        inputs, positions, scores, costs, grid, dodge.fill_value
    )
    if inputs.group_by is not None and not family_curves:
        notes.append(_no_family_note(inputs))
    if family_curves:
        notes.append(
            f"one curve per {inputs.group_by} (with replacement): "
            + ", ".join(
                f"{name} ({count_of(curve.n_trials, 'trial')})" for name, curve in family_curves
            )
            + (
                "; no curve for "
                + ", ".join(
                    f"{name} ({count_of(n, 'trial')}, none with a score: failed, "
                    "interrupted, lost or never logged it)"
                    for name, n in unscored
                )
                if unscored
                else ""
            )
        )
    baselines = _baseline_scores(inputs)

    def series(x: tuple[float, ...], *, energy: bool = False) -> tuple[Series, ...]:
        mean = np.asarray(dodge.mean)
        std = np.asarray(dodge.std)
        extra: list[Series] = []
        for k, (name, curve) in enumerate(family_curves):
            fx = np.asarray(curve.budget) * factor if energy else np.asarray(curve.n, dtype=float)
            extra.append(
                Series(
                    f"{name} ({curve.n_trials})",
                    "line",
                    _tuple(fx),
                    _tuple(curve.mean),
                    role=f"family{k % _FAMILY_STYLES}",
                )
            )
        extra += _baseline_lines(baselines, (min(x), max(x)) if x else (0.0, 1.0))
        return (
            *_overall(mean, std, x),
            *extra,
        )

    def _overall(mean: np.ndarray, std: np.ndarray, x: tuple[float, ...]) -> tuple[Series, ...]:
        return (
            Series(
                "±1 std (with replacement)",
                "band",
                x,
                y_low=_tuple(np.clip(mean - std, low_bound, high_bound)),
                y_high=_tuple(np.clip(mean + std, low_bound, high_bound)),
                role="std",
            ),
            Series(
                "all trials, with replacement (Dodge et al.)"
                if family_curves
                else "with replacement (Dodge et al.)",
                "line",
                x,
                _tuple(mean),
                role="mean",
            ),
            Series("without replacement", "line", x, _tuple(exact.mean), role="exact"),
        )

    y_label = f"expected best {_score_label(inputs)}"
    by_trials = Figure(
        id="evp_trials",
        title="Expected best score against trials",
        caption=(
            f"Expected best {inputs.metric} of n trials drawn from the "
            f"{count_of(dodge.n_trials, 'trial')} of the study, for n = 1..N: what a smaller "
            "search would likely have found"
            + (
                f"; one curve per {inputs.group_by} beside the whole search's"
                if family_curves
                else ""
            )
            + ("; horizontal lines are the baselines" if baselines else "")
            + "."
        ),
        panels=(
            Panel(
                x_label="trials (n)",
                y_label=y_label,
                x_unit="trials",
                y_unit=inputs.metric,
                series=series(n),
                x_scale=scale,
            ),
        ),
        provenance=provenance,
        notes=tuple(notes),
    )
    mean_kwh = float(dodge.budget[0] / dodge.n[0]) if len(dodge) else 0.0
    by_energy = Figure(
        id="evp_energy",
        title="Expected best score against energy",
        caption=(
            f"The same curve against the expected energy of n trials (n x the mean trial's "
            f"{mean_kwh * factor:.3g} {unit}"
            + ("; each family's x is n x its own mean trial" if family_curves else "")
            + "). "
            + _left_out(inputs.price_tag)
            + ("; horizontal lines are the baselines' scores" if baselines else "")
            + "."
        ),
        panels=(
            Panel(
                x_label=f"energy ({unit})",
                y_label=y_label,
                x_unit=unit,
                y_unit=inputs.metric,
                series=series(_tuple(np.asarray(dodge.budget) * factor), energy=True),
                x_scale=scale,
            ),
        ),
        provenance=provenance + inputs.energy_provenance,
        notes=tuple(notes),
    )
    return [by_trials, by_energy], []


_FAMILY_STYLES = 6  # family0..family5 in the plot styles (cycled)
_MAX_FAMILIES = 8  # more families than this are not drawn one by one (a note says so)


#: How the energy axis's caption names what it leaves out, per role (the price tag's words).
_LEFT_OUT = {
    "sweep": "the sweep's own overhead",
    "baseline": "the baselines",
    "final": "the final model",
    "learning-curve": "the learning curve",
    "greener": "the greener variants",
    "part": "the steps outside any trial",
}


#: How many metric names the note on a missing EVP curve lists at most.
_METRICS_LISTED = 10


def _no_score_note(inputs: FigureInputs, scored: Sequence[int]) -> str:
    """Why no EVP curve: no scored trial (finished or pruned, at ``scored``) has the metric.

    Names the metrics those trials did log (nearest to the metric first, at most
    :data:`_METRICS_LISTED`), which ``--metric`` ranks by, as the CLI's unknown-metric error
    lists them; or, where no trial finished or was pruned, how the trials ended.
    """
    from greenprint._metric_choice import metrics_logged
    from greenprint._suggest import nearest

    head = "no expected-max-performance curve"
    if not scored:
        statuses = Counter(inputs.forest.column("status")[p] for p in inputs.trials)
        ended = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
        return (
            f"{head}: no trial finished or was pruned ({ended}); a failed, interrupted or lost "
            "trial has no score"
        )
    text = f"{head}: no finished or pruned trial has a value of {inputs.metric!r}"
    logged = metrics_logged(inputs.forest, scored)
    if not logged:  # none (or, ranked by a metric a finished run has, the others unread)
        return text
    close = nearest(inputs.metric, logged, n=3)
    ordered = [*close, *(name for name in logged if name not in close)]
    listing = ", ".join(map(repr, ordered[:_METRICS_LISTED]))
    if len(ordered) > _METRICS_LISTED:
        listing += f" and {len(ordered) - _METRICS_LISTED} more"
    return f"{text}; metrics they logged: {listing} (rank by one with --metric, metric= in Python)"


def _left_out(tag: PriceTag) -> str:
    """What the EVP energy axis, the trials' energy, leaves out of the study, role by role.

    The roles the study has, each with its energy, and their sum (the price tag by role has
    them), so that a reader knows how far the axis is from the study's total.
    """
    # (a part counts apart only at the top level: a step of the study, such as its data
    # preparation; any other part is in its trial's, baseline's... cost)
    others = [(role, cost) for role, cost in tag.by_role.items() if role != "trial"]
    if not others:
        return "The energy axis counts the trials, the whole study"
    left = sum(cost.energy_kwh for _, cost in others)
    named = [f"{_LEFT_OUT.get(role, role)} ({format_energy(c.energy_kwh)})" for role, c in others]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return (
        f"The energy axis counts the trials only: it leaves out {format_energy(left)} of the "
        f"study's {format_energy(tag.total.energy_kwh)}, {listed} (see the price tag by role)"
    )


#: Param names that name a model family, hinted before any other param (:func:`family_hint`).
_FAMILY_NAMES = frozenset({"model", "model_type", "model_name", "arch", "architecture", "family"})


def family_hint(inputs: FigureInputs) -> str | None:
    """A note naming the flag that draws one EVP curve per family, when none was asked for.

    The trials (ended ones) vary a param by name, not number (``params.model``: ``"mlp"``,
    ``"cnn"``): two to :data:`_MAX_FAMILIES` values, one of them held by two trials or more
    (Dodge et al. draw one curve per model family). ``None`` when ``group_by`` was given or
    no param is such.
    """
    if inputs.group_by is not None:
        return None
    params = inputs.forest.column("params")
    trials = [params[p] for p in inputs.trials]
    # a param at a time, each a few passes in C (100,000 trials: 0.10 s CPU, 0.16 s looping
    # over each trial's params)
    names: set[str] = set().union(*trials)
    # a model family's name first (Dodge et al.'s families), then in name order
    for key in sorted(names, key=lambda k: (k.lower() not in _FAMILY_NAMES, k)):
        values = [given[key] for given in trials if key in given]
        if set(map(type, values)) != {str} and not all(isinstance(v, str) for v in values):
            continue  # a number (or None) somewhere: not a family's name
        counts = Counter(values)
        if 2 <= len(counts) <= _MAX_FAMILIES and max(counts.values()) >= 2:
            named = sorted(counts)
            return (
                f"the trials vary params.{key} ({', '.join(named[:4])}"
                f"{', ...' if len(named) > 4 else ''}): greenprint report --group-by "
                f"params.{key} draws one expected-best-score curve per {key}"
            )
    return None


def _no_family_note(inputs: FigureInputs) -> str:
    """Why ``group_by`` drew no curve per family (one family, or too many)."""
    names = list(dict.fromkeys(inputs.families))
    if len(names) > _MAX_FAMILIES:
        return (
            f"no curve per {inputs.group_by}: the trials fall into {len(names)} families, more "
            f"than the {_MAX_FAMILIES} a figure draws one by one"
        )
    if names == [f"(no {inputs.group_by})"]:
        return f"no curve per {inputs.group_by}: no trial has a value of {inputs.group_by}"
    return f"no curve per {inputs.group_by}: every trial is in one family ({', '.join(names[:3])})"


def _family_curves(
    inputs: FigureInputs,
    positions: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    grid: np.ndarray | None,
    fill_value: float | None = None,
) -> tuple[list[tuple[str, EVPCurve]], list[tuple[str, int]]]:
    """One EVP curve (with replacement, against energy) per family of trials, if grouped.

    ``positions`` are the trials' (in ``forest.runs``), ``scores`` and ``costs`` theirs. A
    trial without a score counts as ``fill_value`` (the whole study's worst score) in its
    family's curve too, as the figure's note says. A family none of whose trials has a score
    (a model whose every trial crashed) gets no curve: drawn at the study's worst score it
    would read as a result that family never had. Returns the curves and, for the families
    left out so, their names and trial counts.
    """
    if not inputs.families or inputs.group_by is None:
        return [], []
    label_of = dict(zip(inputs.trials, inputs.families, strict=True))
    labels = [label_of[p] for p in positions.tolist()]
    names = list(dict.fromkeys(labels))
    if len(names) < 2 or len(names) > _MAX_FAMILIES:
        return [], []
    out = []
    unscored = []
    array = np.array(labels)
    for name in names:
        keep = array == name
        n_family = int(keep.sum())
        if np.isnan(scores[keep]).all():
            unscored.append((name, n_family))
            continue
        budgets = None if grid is None else np.unique(np.minimum(grid, n_family))
        curve = evp_by_budget(
            scores[keep],
            costs[keep],
            unit="kWh",
            metric=inputs.metric,
            mode=inputs.mode,
            replacement=True,
            budgets=budgets,
            fill_value=fill_value,
        )
        out.append((name, curve))
    return out, unscored


def _baseline_scores(inputs: FigureInputs) -> list[tuple[str, float]]:
    """(name, score) of each baseline with a finite score."""
    out = []
    for position in inputs.baselines:
        run = inputs.forest.runs[position]
        score = inputs.scores.get(run.id, math.nan)
        if math.isfinite(score):
            out.append((run.name, score))
    return out


def _baseline_lines(
    baselines: Sequence[tuple[str, float]], span: tuple[float, float]
) -> list[Series]:
    """Baselines as horizontal reference lines across the panel's x range."""
    return [
        Series(
            f"{'' if name.lower().startswith('baseline') else 'baseline '}{name} ({score:.4g})",
            "line",
            (float(span[0]), float(span[1])),
            (score, score),
            role="baseline",
        )
        for name, score in baselines
    ]


# ----------------------------------------------------------------------------------- Pareto
def pareto_figure(inputs: FigureInputs) -> tuple[Figure | None, str | None]:
    """Score against energy of every scored trial, with the front of the finished ones."""
    columns = inputs.trial_columns
    energy, score = columns.energy_kwh, columns.score
    measured = np.isfinite(score) & np.isfinite(energy)
    # the points of each group, in the trials' order
    groups = {
        "finished": np.flatnonzero(measured & columns.finished),
        "pruned": np.flatnonzero(measured & columns.pruned),
    }
    finished = groups["finished"]
    everything = np.concatenate([finished, groups["pruned"]])
    if not everything.size:
        return None, "no Pareto plot: no finished or pruned trial has a score"
    factor, unit = energy_unit(float(np.max(energy[everything])))
    old_factor = factor

    def points(label: str, rows: np.ndarray, role: str, kind: SeriesKind) -> Series:
        """The trials at ``rows`` (of the columns) as a series of (energy, score) points."""
        return Series(
            label,
            kind,
            _tuple(energy[rows] * factor),
            _tuple(score[rows]),
            role=role,
            run_ids=tuple([columns.ids[k] for k in rows.tolist()]),
        )

    front_series: list[Series] = []
    if finished.size:
        direction = "maximize" if inputs.mode == "max" else "minimize"
        front = finished[
            pareto_front(
                np.column_stack([score[finished], energy[finished]]),
                directions=(direction, "minimize"),
            )
        ]
        # by energy, then score; np.lexsort is stable, so tied points keep the trials' order
        on_front = front[np.lexsort((score[front], energy[front]))]
        front_series.append(points("Pareto front (finished)", on_front, "front", "step"))
    series: list[Series] = []
    for status in ("pruned", "finished"):  # finished drawn over pruned
        rows = groups[status]
        if rows.size:
            series.append(points(f"{status} ({rows.size})", rows, status, "scatter"))
    series.extend(front_series)
    final: tuple[float, float, str] | None = None
    final_position = None if inputs.final_id is None else inputs.forest.index.get(inputs.final_id)
    energy_of = inputs.forest.shared_sums("energy_kwh").inclusive  # as the trials' points
    if final_position is not None:
        row = np.flatnonzero(columns.positions[everything] == final_position)
        if row.size:  # the final run is one of the points
            run = inputs.forest.runs[final_position]
            final = (energy_of[final_position], inputs.scores.get(run.id, math.nan), run.id)
    if final is None and final_position is not None:  # e.g. a retrained final run
        run = inputs.forest.runs[final_position]
        final_score = inputs.scores.get(run.id, math.nan)
        final_kwh = float(energy_of[final_position])
        if math.isfinite(final_score) and math.isfinite(final_kwh):
            final = (final_kwh, final_score, run.id)
            factor, unit = energy_unit(max(final[0], float(np.max(energy[everything]))))
            series = [_rescale(s, factor, old_factor) for s in series]
            old_factor = factor
    final_label = "final run"
    if final is None and final_position is not None:
        # a final run scored on another split (e.g. a retrain scored on the test set): star
        # the finished trial whose configuration it retrained, and say so
        run = inputs.forest.runs[final_position]
        twin = next(
            (
                k
                for k in reversed(finished.tolist())
                if inputs.forest.runs[int(columns.positions[k])].params == run.params
            ),
            None,
        )
        if twin is not None and run.params:
            twin_run = inputs.forest.runs[int(columns.positions[twin])]
            twin_kwh = energy_of[int(columns.positions[twin])]
            final = (twin_kwh, inputs.scores.get(twin_run.id, math.nan), twin_run.id)
            final_label = f"final run's configuration ({twin_run.name})"
    baselines = _baseline_scores(inputs)
    if baselines:
        xs = [v for s in series for v in s.x] or [0.0, 1.0]
        series.extend(_baseline_lines(baselines, (min(xs), max(xs))))
    if final is not None:
        series.append(
            Series(
                final_label,
                "scatter",
                (final[0] * factor,),
                (final[1],),
                role="final",
                run_ids=(final[2],),
            )
        )
    energies = energy[everything]
    log_x = bool(np.all(energies > 0)) and float(energies.max()) > 30 * float(energies.min())
    figure = Figure(
        id="pareto",
        title="Score against energy",
        caption=(
            "Each trial's score against the energy it used (finished drawn over pruned); the "
            "front joins the finished trials that no other finished trial beats on both at "
            "once; the star is the final run (or the trial whose configuration it retrained)"
            + ("; horizontal lines are the baselines" if baselines else "")
            + "."
        ),
        panels=(
            Panel(
                x_label=f"energy per trial ({unit})",
                y_label=_score_label(inputs),
                x_unit=unit,
                y_unit=inputs.metric,
                series=tuple(series),
                x_scale="log" if log_x else "linear",
            ),
        ),
        provenance=(_score_provenance(inputs),) + inputs.energy_provenance,
    )
    return figure, None


def _rescale(series: Series, factor: float, old_factor: float) -> Series:
    """A series with its x values (energies) moved from one display unit to another."""
    if factor == old_factor:
        return series
    return dataclasses.replace(series, x=tuple(v / old_factor * factor for v in series.x))


# --------------------------------------------------------------------------- learning curve
def learning_curve_figure(inputs: FigureInputs) -> tuple[Figure | None, str | None]:
    """Score and energy against training-set size.

    Uses the runs whose role is ``learning-curve`` (as the roles read them, or given to a run
    inside a trial: :func:`greenprint.analysis._curves.curve_points`) with a dataset size, when
    they have two sizes or more; else the runs made by
    :func:`greenprint.analysis.run_learning_curve` (a ``fraction`` parameter and a dataset
    size); else every run with a dataset size that is neither a part nor a container (a sweep,
    a greener comparison). Any other part (a fold, a fit run as a child run) is never a
    point: each run is scored as a trial is (its own score, else the mean of its parts') and
    costs its energy with its parts', as the price tag counts it
    (:func:`greenprint.analysis._curves.curve_of`).
    """
    forest = inputs.forest
    sizes = forest.column("dataset_size")
    given = inputs.price_tag.roles
    roles = (given or resolve_roles(forest, metric=inputs.metric or None)).roles
    # with those given the role inside a trial (run_learning_curve in a trial's run)
    chosen = [
        p
        for p in curve_points(forest, roles)
        if sizes[p] and "learning-curve" in (roles[p], forest.runs[p].role)
    ]
    source = "runs with role 'learning-curve'"
    if len({sizes[p] for p in chosen}) < 2:
        children = forest.children
        sized = [  # neither a part nor a container (a sweep, a greener comparison)
            p
            for p in range(len(forest.runs))
            if sizes[p]
            and roles[p] != "part"
            and not (children[p] and roles[p] in ("sweep", "greener"))
        ]
        chosen = [p for p in sized if "fraction" in forest.runs[p].params]
        source = "runs with a 'fraction' parameter (run_learning_curve)"
        if len({sizes[p] for p in chosen}) < 2:
            chosen, source = sized, "trials with a dataset_size"
    if len({sizes[p] for p in chosen}) < 2:
        return None, "no learning curve: fewer than two training-set sizes among the runs"
    ids = forest.column("id")
    try:
        curve = curve_of(
            forest,
            chosen,
            [inputs.scores.get(rid, math.nan) for rid in ids],
            metric=inputs.metric,
        )
    except AnalysisError as e:
        if "no run carries" in str(e):
            return None, f"no learning curve: {e}"
        raise
    if len(curve) < 2:
        return None, "no learning curve: fewer than two training-set sizes with a score"
    return _learning_figure(curve, inputs, source), None


def _learning_figure(curve: LearningCurve, inputs: FigureInputs, source: str) -> Figure:
    sizes = _tuple(curve.dataset_size)
    score = np.asarray(curve.score_mean)
    spread = np.nan_to_num(np.asarray(curve.score_std), nan=0.0)
    factor, unit = energy_unit(float(np.nanmax(curve.energy_kwh_mean)))
    score_series = [Series(f"mean {inputs.metric}", "line", sizes, _tuple(score), role="mean")]
    if np.any(spread > 0):
        score_series.insert(
            0,
            Series(
                "±1 std over repeats",
                "band",
                sizes,
                y_low=_tuple(score - spread),
                y_high=_tuple(score + spread),
                role="std",
            ),
        )
    log_x = sizes[-1] > 20 * sizes[0]
    return Figure(
        id="learning_curve",
        title="Learning curve: score and energy against training-set size",
        caption=(
            (
                f"Each run's {inputs.metric} (left) and energy (right)"
                if np.all(np.asarray(curve.n_runs) == 1)  # one run per size: no mean to take
                else f"Mean {inputs.metric} (left) and energy per run (right) over the runs of "
                "each size"
            )
            + " against the number of training examples, from "
            f"{int(np.sum(curve.n_runs))} {source}."
        ),
        panels=(
            Panel(
                x_label="training examples",
                y_label=_score_label(inputs),
                x_unit="examples",
                y_unit=inputs.metric,
                series=tuple(score_series),
                x_scale="log" if log_x else "linear",
            ),
            Panel(
                x_label="training examples",
                y_label=f"energy per run ({unit})",
                x_unit="examples",
                y_unit=unit,
                series=(
                    Series(
                        "energy",
                        "line",
                        sizes,
                        _tuple(np.asarray(curve.energy_kwh_mean) * factor),
                        role="energy",
                    ),
                ),
                x_scale="log" if log_x else "linear",
            ),
        ),
        provenance=(_score_provenance(inputs, of="run"),) + inputs.energy_provenance,
        notes=curve.notes,
    )


# --------------------------------------------------------------------------------- timeline
def _unique_times(times: np.ndarray) -> np.ndarray:
    """``np.unique(times)`` (NaNs kept as one, last), by a stable sort.

    Runs' start and end times each come nearly in order, which the stable sort (timsort) merges
    in about linear time: 0.4 ms against np.unique's 20 ms quicksort for the 200,000 times of a
    100,000-run study (measured).
    """
    ordered = np.sort(times, kind="stable")
    keep = np.empty(ordered.size, dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    if ordered.size and np.isnan(ordered[-1]):  # as np.unique(equal_nan=True): one NaN
        first_nan = int(np.searchsorted(ordered, ordered[-1], side="left"))
        keep[first_nan] = True
        keep[first_nan + 1 :] = False
    return ordered[keep]


def _below_its_runs(forest: RunForest, positions: Sequence[int]) -> np.ndarray:
    """Whether the price tag counts each run above what it recorded: at the runs inside it.

    A job killed after a flush whose trials ran on and flushed later: its children, each
    measured alone, keep what they measured (:meth:`RunForest.shared_sums`), and their sum is
    above the job's reading. Children that ran at the same time (threads of one process, each
    reading all of it) share out their parent's reading instead: never below it.
    """
    shared = forest.shared_sums("energy_kwh")
    runs, children, inclusive = forest.runs, forest.children, shared.inclusive
    below = np.zeros(len(positions), dtype=bool)
    for k, p in enumerate(positions):
        inside = [c for c in children[p] if not forest.adds(c)]
        if inside and p not in shared.scaled:
            own = runs[p].energy_kwh or 0.0
            theirs = math.fsum(inclusive[c] for c in inside)
            below[k] = own > 0.0 and theirs > own * (1.0 + 1e-9)
    return below


def _sample_rows(samples: Sequence[PowerSample]) -> np.ndarray:
    """A run's power samples as rows ``(t0, t1, cpu, gpu, ram, other)`` (s, W)."""
    return np.array(
        [
            (s.t0, s.t1, s.cpu_w or 0.0, s.gpu_w or 0.0, s.ram_w or 0.0, 0.0)
            for s in samples
            if s.t1 > s.t0
        ],
        dtype=float,
    ).reshape(-1, 6)


def _clip_rows(
    rows: np.ndarray, *, until: float | None = None, since: float | None = None
) -> np.ndarray:
    """Rows cut to the time before ``until`` or after ``since``.

    A row straddling it is cut there, at its power (as
    :func:`~greenprint.analysis._beyond.split_by_samples` splits a sample).
    """
    rows = rows.copy()
    if until is not None:
        rows = rows[rows[:, 0] < until]
        rows[:, 1] = np.minimum(rows[:, 1], until)
    if since is not None:
        rows = rows[rows[:, 1] > since]
        rows[:, 0] = np.maximum(rows[:, 0], since)
    return rows


def _cut_rows(
    rows: np.ndarray,
    where: Sequence[int],
    spans: Mapping[int, tuple[float, float, float]],
    whole: Sequence[RunRecord],
    cut: Sequence[RunRecord],
) -> None:
    """Rows at mean power of runs that ran on, in place: up to the end of the runs around them.

    Each such row spans the run's start to that end, at what it measured before it (its cut
    record's energy, by component as its whole record's).
    """
    for k, p in enumerate(where):
        if p not in spans:
            continue
        start, until, _ = spans[p]
        energy, before = whole[p].energy_kwh, cut[k].energy_kwh
        if not (energy and before and until > start):
            continue
        row = _mean_power_rows([whole[p]])[0][0]
        row[2:] *= (before / energy) * (row[1] - row[0]) / (until - start)
        row[1] = until
        rows[k] = row


def _beyond_rows(
    beyond: BeyondSums,
    runs: Sequence[RunRecord],
    samples_of: Callable[[str], list[PowerSample]] | None,
) -> list[np.ndarray]:
    """What runs that ran on measured after the runs around them ended, as rows (s, W).

    Each at what the price tag counts of it (:attr:`BeyondSums.counted`): its samples after
    that end where the price tag split it by them (``samples_of`` given), else its mean power
    after it, by component as its record; scaled to that amount (runs that read one process
    or machine count each stretch once).
    """
    out: list[np.ndarray] = []
    spans = beyond.spans or {}
    for p, kwh in beyond.counted.items():
        if not kwh > 0:
            continue
        _, since, end = spans[p]
        rows = None
        if samples_of is not None and p in beyond.sampled:
            rows = _clip_rows(_sample_rows(samples_of(runs[p].id)), since=since)
        if rows is None or not rows.size:
            rows = _mean_power_rows([runs[p]])[0][:1].copy()
            rows[0, 0], rows[0, 1] = since, end
        joules = float(np.sum((rows[:, 1] - rows[:, 0]) * rows[:, 2:].sum(axis=1)))
        if not joules > 0:
            continue
        rows[:, 2:] *= kwh * JOULES_PER_KWH / joules
        out.append(rows)
    return out


def _mean_power_rows(runs: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Each run drawn at its mean power over its span, and which runs can be.

    Returns:
        ``(rows, drawn)``: one row per run, ``(t0, t1, cpu, gpu, ram, other)`` (s since the
        epoch, W), and a bool array, false for a run without energy over a positive duration
        (its row is then meaningless). Energy not by component is ``other``.

    Column by column rather than run by run: about 35 ms less at 100,000 runs (measured).
    """
    size = len(runs)

    def column(name: str, *, none_as_zero: bool = False) -> np.ndarray:
        values: Iterable[Any] = map(attrgetter(name), runs)
        if none_as_zero:
            values = (v or 0.0 for v in values)
        return np.fromiter(values, float, size)

    started, duration, energy = (column(n) for n in ("started_at", "duration_s", "energy_kwh"))
    cpu, gpu, ram = (
        column(n, none_as_zero=True) for n in ("energy_cpu_kwh", "energy_gpu_kwh", "energy_ram_kwh")
    )
    drawn = ~((duration <= 0) | (energy <= 0))  # NaN is drawn, as NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        watts = JOULES_PER_KWH / duration
        other = np.maximum(energy - cpu - gpu - ram, 0.0)
        rows = np.column_stack(
            [started, started + duration, cpu * watts, gpu * watts, ram * watts, other * watts]
        )
    return rows, drawn


def timeline_figure(
    inputs: FigureInputs,
    samples_of: Callable[[str], list[PowerSample]],
    *,
    max_sampled_runs: int,
) -> tuple[Figure | None, str | None]:
    """Power (W) and cumulative energy over the study's wall-clock time.

    Only top-level runs are drawn (a parent's samples contain its children's). Their power
    samples are read from the ledger when there are at most ``max_sampled_runs`` of them; a run
    without samples, or every run above that limit, is drawn at its mean power over its span
    (its energy / its duration), which the figure's notes say. A top-level run that recorded
    no energy over a positive duration but has runs inside it (a job killed before its first
    flush, or one still running that has not flushed yet: the price tag counts its children's
    sum) is drawn as those runs, likewise, with a note. Top-level runs in threads of one
    process (each read all of it) are drawn at what the price tag counts of them, each stretch
    of their time once (:attr:`~greenprint.analysis._common.SharedSums.roots`), with a note.
    A run inside another that ran on after the runs around it ended (a worker process left
    running when its main process was stopped) is drawn as the price tag counts it
    (:func:`~greenprint.analysis._beyond.beyond_sums`): inside the runs around it up to that
    end, and after it at what the price tag counts (its samples there, or its mean power),
    with a note.
    """
    # runs that ran on after the runs around them ended (workers left running when their main
    # process was stopped): the price tag reads the runs with only what they measured before
    # that end (beyond.cut), and counts what they measured after it once (beyond.counted);
    # drawn alike, what is inside from the cut runs, the rest after it
    beyond = beyond_sums(inputs.forest, samples_of)[0]
    forest = beyond.cut if beyond.counted and beyond.cut is not None else inputs.forest
    spans = (beyond.spans or {}) if forest is not inputs.forest else {}
    where = list(forest.roots)  # the positions of the runs drawn
    roots = [forest.runs[p] for p in where]
    mean_rows, drawn = _mean_power_rows(roots)
    hollow = 0  # top-level runs that recorded nothing, drawn as the runs inside them
    under = 0  # top-level runs that recorded less than the runs inside them, drawn as those
    below = _below_its_runs(forest, where)
    if not drawn.all() or below.any():
        positions: list[int] = []
        batch = list(forest.roots)
        recorded = drawn & ~below
        # a run that recorded nothing, or less than the runs inside it (killed after a flush,
        # they ran on: the price tag counts their sum), is drawn as them (theirs likewise)
        while batch:
            inner: list[int] = []
            for p, ok in zip(batch, recorded, strict=True):
                inside = () if ok else [c for c in forest.children[p] if not forest.adds(c)]
                if inside:
                    if forest.parents[p] is None:
                        if (forest.runs[p].energy_kwh or 0.0) > 0.0:
                            under += 1
                        else:
                            hollow += 1
                    inner.extend(inside)
                else:
                    positions.append(p)
            batch = inner
            recorded = _mean_power_rows([forest.runs[p] for p in batch])[1]
            recorded &= ~_below_its_runs(forest, batch)
        if hollow or under:
            where = positions
            roots = [forest.runs[p] for p in where]
            mean_rows, drawn = _mean_power_rows(roots)
    if spans:  # a run drawn that ran on: its row up to that end, at what it measured before it
        _cut_rows(mean_rows, where, spans, inputs.forest.runs, roots)
    # top-level runs in threads of one process each read all of it: drawn at what the price
    # tag counts of them (each stretch of their time once), their power scaled alike
    threads = forest.shared_sums("energy_kwh").roots
    scale = np.ones(len(roots))
    if threads is not None:
        for k, p in enumerate(where):
            scale[k] = threads.factors.get(p, 1.0)
        mean_rows[:, 2:] *= scale[:, None]
    use_samples = len(roots) <= max_sampled_runs
    if use_samples:
        # each run's samples, or its row at mean power, in the runs' order
        parts: list[np.ndarray] = []
        averaged = 0
        for k, run in enumerate(roots):
            found = samples_of(run.id)
            if found:
                sampled = _sample_rows(found)
                if where[k] in spans:  # up to the end of the runs around it
                    sampled = _clip_rows(sampled, until=spans[where[k]][1])
                sampled[:, 2:] *= scale[k]
                parts.append(sampled)
            elif drawn[k]:
                averaged += 1
                parts.append(mean_rows[k : k + 1])
        parts.extend(_beyond_rows(beyond, inputs.forest.runs, samples_of))
        data = np.concatenate(parts) if parts else np.zeros((0, 6))
    else:
        data = mean_rows[drawn]
        averaged = int(data.shape[0])
        if spans:
            data = np.concatenate([data, *_beyond_rows(beyond, inputs.forest.runs, None)])
    rows = data.shape[0]
    if not rows:
        return None, "no power timeline: no run recorded energy over a positive duration"
    start = float(np.min(data[:, 0]))
    times = _unique_times(np.concatenate([data[:, 0], data[:, 1]]))
    first = np.searchsorted(times, data[:, 0])
    last = np.searchsorted(times, data[:, 1])

    def level(values: np.ndarray) -> np.ndarray:
        steps = np.zeros(times.size)
        np.add.at(steps, first, values)
        np.add.at(steps, last, -values)
        return np.cumsum(steps)[:-1]

    covered = level(np.ones(rows)) > 0.5
    power = {name: level(data[:, k + 2]) for k, name in enumerate(("cpu", "gpu", "ram", "other"))}
    binned_s = None
    if times.size - 1 > _TIMELINE_MAX_SEGMENTS:
        # Mean power over equal bins (energy-preserving: the cumulative energy at each bin edge
        # is exact), so that a long study draws and serialises a readable number of steps.
        offsets = times - times[0]  # small numbers: interpolation keeps full precision
        edges = np.linspace(0.0, offsets[-1], _TIMELINE_BINS + 1)
        binned_s = float(edges[1])
        steps = np.diff(offsets)

        def mean_over_bins(levels: np.ndarray) -> np.ndarray:
            integral = np.concatenate([[0.0], np.cumsum(levels * steps)])
            return np.diff(np.interp(edges, offsets, integral)) / binned_s

        covered = mean_over_bins(covered.astype(float)) > 0
        power = {name: mean_over_bins(values) for name, values in power.items()}
        times = edges + times[0]
    # Short gaps (between one run and the next) are drawn at the level before them, so that
    # the power line is not cut into dashes; the energy curve counts them as 0 W.
    bridge_s = max(_BRIDGE_GAP_S, _BRIDGE_GAP_SHARE * float(times[-1] - times[0]))
    widths = np.diff(times - times[0])
    short = ~covered & (widths <= bridge_s)
    short[0] = False
    if binned_s is not None:
        short[:] = False
    bridged = int(short.sum())
    total = power["cpu"] + power["gpu"] + power["ram"] + power["other"]
    energy = np.concatenate([[0.0], np.cumsum(total * widths)]) / JOULES_PER_KWH
    time_factor, time_unit = _time_unit(float(times[-1] - start))
    x = _tuple((times - start) * time_factor)
    factor, unit = energy_unit(float(energy[-1]))

    def stepped(values: np.ndarray) -> tuple[float, ...]:
        shown = np.where(covered, values, np.nan)
        for k in np.flatnonzero(short):  # ascending: a run of short gaps carries the level on
            shown[k] = shown[k - 1]
        return _tuple(np.concatenate([shown, [np.nan]]))

    power_series = [Series("total", "step", x, stepped(total), role="total")]
    for name in ("cpu", "gpu", "ram", "other"):
        if np.any(power[name] > 0):
            label = name.upper() if name != "other" else "not by component"
            power_series.append(Series(label, "step", x, stepped(power[name]), role=name))
    notes = []
    if bool((scale != 1.0).any()):
        notes.append(
            f"{count_of(int((scale != 1.0).sum()), 'top-level run')} in threads of one process "
            "drawn at the share the price tag counts (each measured the whole process)"
        )
    if hollow:
        notes.append(
            f"{count_of(hollow, 'top-level run')} recorded no energy (killed before its first "
            "flush, or not flushed yet): drawn as the runs inside it, which the price tag counts"
        )
    if under:
        notes.append(
            f"{count_of(under, 'top-level run')} recorded less energy than the runs inside it "
            "(killed after a flush while they ran on): drawn as those runs, whose sum the price "
            "tag counts"
        )
    if spans:
        ran_on = len(beyond.counted)
        how = (
            "by their power samples"
            if len(beyond.sampled) == ran_on and use_samples
            else "at their mean power after it"
            if not beyond.sampled or not use_samples
            else f"by the power samples of {len(beyond.sampled)}, at mean power for the rest"
        )
        notes.append(
            f"{count_of(ran_on, 'run')} ran on after the run "
            f"{'they are' if ran_on > 1 else 'it is'} part of ended (a worker process left "
            "running when its main process was stopped or crashed): drawn inside it up to that "
            f"end, and after it {how}, at what the price tag counts"
        )
    if averaged:
        why = (
            f"the study has more than {max_sampled_runs} top-level runs"
            if not use_samples
            else "they have no power samples in the ledger"
        )
        their = "its" if averaged == 1 else "their"
        notes.append(
            f"{count_of(averaged, 'run')} drawn at {their} mean power over {their} span, "
            f"because {why}"
        )
    if binned_s is not None:
        notes.append(
            f"power is the mean over {_TIMELINE_BINS} equal intervals of {binned_s:.3g} s "
            "(idle time between runs included)"
        )
    if bridged:
        notes.append(
            f"{count_of(bridged, 'gap')} of at most {bridge_s:.2g} s between runs "
            f"{'is' if bridged == 1 else 'are'} drawn at the power before "
            f"{'it' if bridged == 1 else 'them'} (the energy curve counts "
            f"{'it' if bridged == 1 else 'them'} as 0 W)"
        )
    if not (covered | short).all():
        notes.append("gaps in the power line are times when no run of the study was measured")
    return (
        Figure(
            id="timeline",
            title="Power and energy over time",
            caption=(
                "Power drawn by the study's runs (process share, before PUE) and the energy "
                "used so far, against time since the first run started."
            ),
            panels=(
                Panel(
                    x_label=f"time since start ({time_unit})",
                    y_label="power (W)",
                    x_unit=time_unit,
                    y_unit="W",
                    series=tuple(power_series),
                ),
                Panel(
                    x_label=f"time since start ({time_unit})",
                    y_label=f"cumulative energy ({unit})",
                    x_unit=time_unit,
                    y_unit=unit,
                    series=(Series("energy", "line", x, _tuple(energy * factor), role="energy"),),
                ),
            ),
            provenance=inputs.energy_provenance,
            notes=tuple(notes),
        ),
        None,
    )
