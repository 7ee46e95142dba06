"""The learning-curve figure: score and energy against training-set size."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from greenprint._exceptions import AnalysisError
from greenprint._format import count_of
from greenprint._metric_names import is_bookkeeping_metric
from greenprint._prediction import is_reserved_metric
from greenprint.analysis import (
    LearningCurve,
    resolve_roles,
)
from greenprint.analysis._curves import curve_of, curve_points
from greenprint.report._figure_inputs import (
    EveryMetricNeeded,
    FigureInputs,
    _score_label,
    _score_provenance,
    _tuple,
    energy_unit,
)
from greenprint.report._model import Figure, Panel, Series

if TYPE_CHECKING:
    from greenprint._forest import RunForest

__all__ = ["learning_curve_figure"]


def learning_curve_figure(inputs: FigureInputs) -> tuple[Figure | None, str | None]:
    """Score and energy against training-set size.

    The points are the first of these with two training-set sizes or more: the runs whose role
    is ``learning-curve`` (as the roles read them, or given to a run inside a trial:
    :func:`greenprint.analysis._curves.curve_points`), each by its own dataset size, or, one
    with no size of its own, by the runs inside it that have one (the first sized on each path
    down: a script that tracks one run, or one search, per training-set size, run as
    ``greenprint run --role learning-curve``); the runs inside the learning-curve runs
    that have a size (one of a size of its own around runs of several sizes); the runs made by
    :func:`greenprint.analysis.run_learning_curve` (a ``fraction`` parameter and a dataset
    size); every run with a dataset size that is neither a part nor a container (a sweep, a
    greener comparison). Any other part (a fold, a fit run as a child run) is never a point:
    each run is scored as a trial is (its own score, else the mean of its parts') and costs
    its energy with its parts', as the price tag counts it
    (:func:`greenprint.analysis._curves.curve_of`). Without a curve, the note says which runs
    were read and the sizes they have.
    """
    forest = inputs.forest
    sizes = forest.column("dataset_size")
    given = inputs.price_tag.roles
    roles = (given or resolve_roles(forest, metric=inputs.metric or None)).roles
    tried: list[tuple[list[int], str]] = []  # the sources read, up to the first of two sizes
    for chosen, source in _sources(forest, roles, sizes):
        tried.append((chosen, source))
        if len({sizes[p] for p in chosen}) >= 2:
            break
    else:
        return None, _no_sizes_note(forest, roles, sizes, tried)
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
            if inputs.narrowed:  # what they logged instead: every metric's points are read
                raise EveryMetricNeeded from e
            logged = _metrics_logged(forest, chosen)
            return None, f"no learning curve: of the {len(chosen)} {source}, {e}" + (
                f"; they logged {', '.join(logged)}: --metric NAME (metric= in Python) "
                "ranks the study by NAME and draws the curve by it"
                if logged
                else ""
            )
        raise
    if len(curve) < 2:
        return None, (
            f"no learning curve: fewer than two training-set sizes with a score among the "
            f"{len(chosen)} {source} ({_sizes_text(sizes, chosen)})"
        )
    return _learning_figure(curve, inputs, source), None


def _sources(
    forest: RunForest, roles: Sequence[str], sizes: Sequence[Any]
) -> Iterator[tuple[list[int], str]]:
    """The runs a learning curve may be drawn from, in the order tried, each with its name.

    Each source is found when the one before it has fewer than two sizes: a study whose
    learning-curve runs draw the curve reads no other (100,000 runs: 0.11 -> 0.055 s).
    """
    runs, children = forest.runs, forest.children

    def sized_inside(p: int) -> list[int]:  # the first run with a size on each path down (a
        # search inside it of a size: the search, scored by its best trial, costing them all)
        found: list[int] = []
        for c in children[p]:
            found += [c] if sizes[c] else sized_inside(c)
        return found

    curve = [p for p in curve_points(forest, roles) if "learning-curve" in (roles[p], runs[p].role)]
    chosen, inside = [], 0
    for p in curve:
        if sizes[p]:
            chosen.append(p)
        else:  # a learning-curve run of no size of its own: the runs inside it are its points
            parts = sized_inside(p)
            chosen += parts
            inside += len(parts)
    source = (
        "runs with role 'learning-curve'"
        if not inside
        else "runs inside a run with role 'learning-curve'"
        if inside == len(chosen)
        else "runs with role 'learning-curve' or inside one"
    )
    yield chosen, source
    every = [p for p, role in enumerate(roles) if "learning-curve" in (role, runs[p].role)]
    within = [c for p in every for c in sized_inside(p)]
    if within and set(within) != set(chosen):  # one of its own size around runs of several
        yield within, "runs inside a run with role 'learning-curve'"
    sized = [  # neither a part nor a container (a sweep, a greener comparison)
        p
        for p in range(len(runs))
        if sizes[p] and roles[p] != "part" and not _container(forest, roles, p)
    ]
    fraction = [p for p in sized if "fraction" in runs[p].params]
    yield fraction, "runs with a 'fraction' parameter (run_learning_curve)"
    every_trial = all(roles[p] == "trial" for p in sized)  # else a baseline, a final run...
    yield sized, f"{'trials' if every_trial else 'runs'} with a dataset_size"


def _container(forest: RunForest, roles: Sequence[str], p: int) -> bool:
    """Whether run ``p`` is a sweep of trials or a greener comparison: never a point."""
    return bool(forest.children[p]) and roles[p] in ("sweep", "greener")


def _no_sizes_note(
    forest: RunForest,
    roles: Sequence[str],
    sizes: Sequence[Any],
    tried: Sequence[tuple[Sequence[int], str]],
) -> str:
    """Why no curve: the runs of each kind it is drawn from have one size at most (which)."""
    every = [p for p in range(len(forest.runs)) if sizes[p]]
    if not every:
        return (
            "no learning curve: no run has a dataset_size (gp.track(..., dataset_size=n) or "
            "run.set(dataset_size=n), one run per training-set size)"
        )
    read = [f"{_count(len(c), s)} ({_sizes_text(sizes, c)})" for c, s in tried if c]
    seen = {p for c, _ in tried for p in c}
    others = [  # a sweep or greener comparison of a size is read by its trials
        p for p in every if p not in seen and not _container(forest, roles, p)
    ]
    text = "no learning curve: fewer than two training-set sizes among "
    text += "; ".join(read) if read else "the runs it is drawn from"
    if others and len({sizes[p] for p in others} | {sizes[p] for p in seen}) >= 2:
        kinds = sorted({roles[p] for p in others})
        text += (
            f"; the {count_of(len(others), 'other run')} with a dataset_size "
            f"({_sizes_text(sizes, others)}) {'is' if len(others) == 1 else 'are'} "
            f"{' or '.join(repr(k) for k in kinds)} runs, never a point: give the runs of a "
            "learning curve role 'learning-curve' (gp.track(..., role='learning-curve'), "
            "greenprint ledger set-role learning-curve RUN_ID...)"
        )
    return text


def _metrics_logged(forest: RunForest, positions: Sequence[int]) -> list[str]:
    """The scores the runs at ``positions`` or their parts logged, most runs first.

    A learning curve by Hugging Face Trainers of their own logs ``eval_accuracy`` but not the
    ``objective`` of the search beside it (only the searching trainer's trainings do): the
    note then names what they did log, not ``set run.set(dataset_size=...)`` (they have one).
    Not the bookkeeping (``eval_runtime``, ``epoch``) nor greenprint's own.
    """
    counts: dict[str, int] = {}
    for p in positions:
        names: set[str] = set()
        for q in (p, *forest.children[p]):
            names.update(point.name for point in forest.runs[q].metrics)
        for name in names:
            if not is_bookkeeping_metric(name) and not is_reserved_metric(name):
                counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda name: (-counts[name], name))


def _count(count: int, source: str) -> str:
    """``"1 trial with a dataset_size"``, ``"5 trials with a dataset_size"``: a source counted.

    ``source`` names its runs in the plural, its first word ``runs`` or ``trials``.
    """
    if count == 1:
        first, _, rest = source.partition(" ")
        source = f"{first.removesuffix('s')} {rest}"
    return f"{count} {source}"


def _sizes_text(sizes: Sequence[Any], positions: Sequence[int]) -> str:
    """The training-set sizes of the runs at ``positions``: ``150 examples``, ``300 to 1200``."""
    found = sorted({int(sizes[p]) for p in positions if sizes[p]})
    if not found:
        return "none with a dataset_size"
    if len(found) == 1:
        return f"{found[0]:,} examples"
    return f"{found[0]:,} to {found[-1]:,} examples"


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
                series=_energy_series(curve, sizes, factor),
                x_scale="log" if log_x else "linear",
            ),
        ),
        provenance=(_score_provenance(inputs, of="run"),) + inputs.energy_provenance,
        notes=curve.notes,
    )


def _energy_series(
    curve: LearningCurve, sizes: tuple[float, ...], factor: float
) -> tuple[Series, ...]:
    """The energy per run of each size, with its spread over repeats as the score has.

    A size whose repeats cost 87 and 15 µWh (one of them slowed by a busy machine) reads as a
    mean of 51 µWh: without the band it looked like a rise of the cost with the data.
    """
    energy = np.asarray(curve.energy_kwh_mean) * factor
    spread = np.nan_to_num(np.asarray(curve.energy_kwh_std), nan=0.0) * factor
    line = Series("energy", "line", sizes, _tuple(energy), role="energy")
    if not np.any(spread > 0):
        return (line,)
    band = Series(
        "±1 std over repeats",
        "band",
        sizes,
        y_low=_tuple(np.maximum(energy - spread, 0.0)),
        y_high=_tuple(energy + spread),
        role="std",
    )
    return band, line
