"""The learning-curve figure: score and energy against training-set size."""

from __future__ import annotations

import math

import numpy as np

from greenprint._exceptions import AnalysisError
from greenprint.analysis import (
    LearningCurve,
    resolve_roles,
)
from greenprint.analysis._curves import curve_of, curve_points
from greenprint.report._figure_inputs import (
    FigureInputs,
    _score_label,
    _score_provenance,
    _tuple,
    energy_unit,
)
from greenprint.report._model import Figure, Panel, Series

__all__ = ["learning_curve_figure"]


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
    # with those given the role inside a trial (run_learning_curve in a trial's run); a
    # learning-curve run of no size of its own around runs of a size each (a script that
    # tracks one run per training-set size, run as `greenprint run --role learning-curve`):
    # those runs, its parts, are the curve's points
    chosen, inside = [], 0
    for p in curve_points(forest, roles):
        if "learning-curve" not in (roles[p], forest.runs[p].role):
            continue
        if sizes[p]:
            chosen.append(p)
        else:
            sized_parts = [c for c in forest.children[p] if sizes[c]]
            chosen += sized_parts
            inside += len(sized_parts)
    source = (
        "runs with role 'learning-curve'"
        if not inside
        else "runs inside a run with role 'learning-curve'"
        if inside == len(chosen)
        else "runs with role 'learning-curve' or inside one"
    )
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
