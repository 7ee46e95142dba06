"""Curves drawn inside one run: a learning or validation curve logged as the steps of a run.

A user who loops over training-set sizes inside one ``gp.track`` run (``run.log(train_size=n,
val_acc=s, step=k)``), or calls scikit-learn's ``learning_curve`` or ``validation_curve`` in one
tracked run and logs each point, records a curve the report cannot draw: its points are runs
(a learning curve's, each with its ``dataset_size``; a validation curve's, each with the
value of the param it varies), and this run is read as one trial, scored by its last point.
:func:`one_run_curves` finds such runs, and :func:`one_run_curve_notes` says what the report
made of them and which API records each point as a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from greenprint._metric_names import is_bookkeeping_metric, is_curve_x, is_size_metric
from greenprint._prediction import is_reserved_metric
from greenprint._records import RunRecord
from greenprint.analysis._common import RunForest


@dataclass(frozen=True)
class OneRunCurve:
    """A curve a run logged as its steps.

    Attributes:
        position: the run's position in the forest.
        kind: ``"learning"`` (its x is a training-set size) or ``"validation"`` (its x is a
            param the study's runs vary, e.g. ``C``, or one named ``param_*``).
        x: the name of the metric the run logged as the curve's x.
        low, high: the lowest and highest value of ``x`` it logged.
        points: how many values of the score it logged (as read: a report reads a long
            series thinned).
    """

    position: int
    kind: Literal["learning", "validation"]
    x: str
    low: float
    high: float
    points: int


def one_run_curves(
    forest: RunForest, positions: Sequence[int], metric: str | None
) -> list[OneRunCurve]:
    """The runs among ``positions`` that logged a curve as their steps (see the module).

    A run logged ``metric`` two times or more, and beside it another metric (not greenprint's
    own, not a training's bookkeeping) with two values or more that is a training-set size by
    its name (a learning curve) or the name of a param of the study's runs (``C``, ``alpha``)
    or ``param_*`` (a validation curve).
    """
    if metric is None:
        return []
    runs = forest.runs
    # two points of the score and two of another metric at least; a search's trial logs a few
    # (100,000 trials: 0.01 s CPU, 0.22 s reading every point of every trial)
    scored_twice = [
        p
        for p in positions
        if len(runs[p].metrics) >= 4 and sum(point.name == metric for point in runs[p].metrics) >= 2
    ]
    # the names those runs logged that can be a curve's x: none, and no run is read further (a
    # study logging a loss and a learning rate at every step beside its score: 100,000 trials
    # 0.61-0.68 -> 0.16-0.25 s of CPU)
    names = {
        name
        for name in {point.name for p in scored_twice for point in runs[p].metrics}
        if name != metric and not is_reserved_metric(name) and not is_bookkeeping_metric(name)
    }
    axes = {name for name in names if is_curve_x(name)}
    if names - axes:
        axes |= (names - axes) & _param_names(runs)
    if not axes:
        return []
    found = []
    for p in scored_twice:
        metrics = runs[p].metrics
        values: dict[str, list[float]] = {}
        for point in metrics:
            if math.isfinite(point.value) and not is_reserved_metric(point.name):
                values.setdefault(point.name, []).append(point.value)
        scored = values.pop(metric, [])
        if len(scored) < 2:
            continue
        for name, logged in values.items():
            if name not in axes or len(set(logged)) < 2:
                continue
            kind: Literal["learning", "validation"] = (
                "learning" if is_size_metric(name) else "validation"
            )
            found.append(OneRunCurve(p, kind, name, min(logged), max(logged), len(scored)))
            break
    return found


def _param_names(runs: Sequence[RunRecord]) -> set[str]:
    """The name of every param of ``runs``."""
    return {name for run in runs for name in run.params}


def one_run_curve_notes(
    forest: RunForest, curves: Sequence[OneRunCurve], metric: str, *, drawn: bool
) -> list[str]:
    """A note per curve logged in one run: how the report read it, and how to record one.

    ``drawn``: whether the report drew a learning curve (of other runs): a learning curve in
    one run then adds to it nothing, and the note says so without "no learning curve".
    """
    runs = forest.runs
    notes = []
    for curve in curves:
        run = runs[curve.position]
        logged = (
            f"{run.name!r} logged {curve.x} ({curve.low:g} to {curve.high:g}) with {metric} at "
            "each step"
        )
        read = f"read as one trial, scored by its last {metric}"
        if curve.kind == "learning":
            head = "" if drawn else "no learning curve: "
            notes.append(
                f"{head}{logged}: a learning curve inside one run, {read}; a learning curve's "
                "points are runs, one per training-set size with its dataset_size: "
                "greenprint.analysis.run_learning_curve(fn, fractions, study=...) tracks them, "
                "or one gp.track(..., role='learning-curve') run per size with "
                "run.set(dataset_size=n)"
            )
        else:
            notes.append(
                f"{logged}: a validation curve inside one run (e.g. scikit-learn's "
                f"validation_curve), {read} (its last {curve.x}) among the search's trials; "
                f"to rank each {curve.x} as a trial, track each value in a run of its own "
                f"(gp.track(..., params={{'{curve.x}': value}}) logging {metric})"
            )
    return notes
