"""The Pareto figure: score against energy of every scored trial, with the finished ones' front."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from greenprint._format import count_of
from greenprint._records import RunRecord
from greenprint.analysis import (
    pareto_front,
)
from greenprint.report._figure_inputs import (
    FigureInputs,
    _baseline_lines,
    _baseline_scores,
    _score_label,
    _score_provenance,
    _tuple,
    energy_unit,
)
from greenprint.report._model import Figure, Panel, Series, SeriesKind

__all__ = ["pareto_figure"]


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
        if np.any(np.isfinite(score) & (columns.finished | columns.pruned)):
            return None, (
                "no Pareto plot: no scored trial recorded its energy (tracked with no energy "
                "meter, meters=[]): its energy is unknown, not 0"
            )
        return None, "no Pareto plot: no finished or pruned trial has a score"
    # scored trials whose energy is unknown (no meter): left out of the plot, and said
    scored = np.isfinite(score) & (columns.finished | columns.pruned)
    unplaced = int(np.sum(scored & np.isnan(energy)))
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
    energy_of = inputs.forest.known_cost_sums("energy_kwh")  # as the trials' points (NaN:
    # no meter recorded it)
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
        twin = _retrained_trial(inputs, [int(columns.positions[k]) for k in finished], run)
        if twin is not None and run.params and math.isfinite(energy_of[twin]):
            twin_run = inputs.forest.runs[twin]
            twin_kwh = energy_of[twin]
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
            "once"
            + (
                "; the star is the final run (or the trial whose configuration it retrained)"
                if final is not None
                else ""
            )
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
        notes=(
            (
                f"{count_of(unplaced, 'scored trial')} left out: no meter recorded "
                f"{'its' if unplaced == 1 else 'their'} energy (unknown, not 0)",
            )
            if unplaced
            else ()
        ),
    )
    return figure, None


def _rescale(series: Series, factor: float, old_factor: float) -> Series:
    """A series with its x values (energies) moved from one display unit to another."""
    if factor == old_factor:
        return series
    return dataclasses.replace(series, x=tuple(v / old_factor * factor for v in series.x))


def _retrained_trial(inputs: FigureInputs, finished: Sequence[int], final: RunRecord) -> int | None:
    """The finished trial (a position) whose configuration ``final`` retrained, if one is.

    The last with the final run's params, else, of those whose params the final run has with
    the same values beside others of its own, the last with the most params: a retrain that
    names its model (``params={"model": "logreg", **search.best_params_}``) of a scikit-learn
    search's trial that records only ``C``.
    """
    runs = inputs.forest.runs
    for k in reversed(finished):
        if runs[k].params == final.params:
            return k
    given = final.params
    best, most = None, 0
    for k in finished:
        params = runs[k].params
        if (
            len(params) >= most
            and params
            and all(key in given and given[key] == v for key, v in params.items())
        ):
            best, most = k, len(params)
    return best
