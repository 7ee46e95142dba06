"""The expected-max-performance figures (Dodge et al., 2019).

Against trials and against energy, by model family where the trials have some, with the
baselines' scores.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from greenprint._format import and_list, count_of, format_energy
from greenprint.analysis import (
    EVPCurve,
    PriceTag,
    evp_by_budget,
)
from greenprint.report._figure_inputs import (
    EveryMetricNeeded,
    FigureInputs,
    _baseline_lines,
    _baseline_scores,
    _score_label,
    _score_provenance,
    _tuple,
    energy_unit,
)
from greenprint.report._model import Figure, Panel, Series

__all__ = ["evp_figures", "family_hint"]


# Above this many trials the EVP curve is evaluated on a log-spaced grid of n (exact at each n).
_EVP_GRID_ABOVE = 1000
_EVP_GRID_POINTS = 400
# Statuses whose score counts in the EVP (as evp_by_budget's default scored_statuses).
_SCORED = ("finished", "pruned")


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
    # a trial whose energy is unknown (no meter: NaN) is given the mean trial's, as
    # evp_by_budget does on runs; none known: no figure against energy, and a note says why
    unmetered = np.isnan(costs)
    unknown = int(unmetered.sum())
    if unknown:
        costs = np.where(unmetered, np.nanmean(costs) if unknown < costs.size else 0.0, costs)
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
    if unknown == costs.size:  # no trial recorded its energy: never an axis of 0 mWh
        return [by_trials], [
            "no expected-best-score-against-energy figure: no trial recorded its energy "
            "(tracked with no energy meter, meters=[]): it is unknown, not 0"
        ]
    if unknown:
        notes.append(
            f"{unknown} of {count_of(costs.size, 'trial')} recorded no energy (no meter): "
            "given the mean trial's"
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
    if inputs.narrowed:  # what they logged instead: every metric's points are read
        raise EveryMetricNeeded
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
    named = [f"{_left_out_name(tag, role)} ({format_energy(c.energy_kwh)})" for role, c in others]
    listed = and_list(named)
    return (
        f"The energy axis counts the trials only: it leaves out {format_energy(left)} of the "
        f"study's {format_energy(tag.total.energy_kwh)}, {listed} (see the price tag by role)"
    )


def _left_out_name(tag: PriceTag, role: str) -> str:
    """A role as the caption names it: the final model's row with what else it holds."""
    if role == "final" and tag.final_role is not None:  # "the final model and 2 refits"
        return tag.final_role.words
    return _LEFT_OUT.get(role, role)


#: Param names that name a model family, hinted before any other param (:func:`family_hint`).
_FAMILY_NAMES = frozenset({"model", "model_type", "model_name", "arch", "architecture", "family"})


def family_hint(inputs: FigureInputs) -> str | None:
    """A note naming the flag that draws one EVP curve per family, when none was asked for.

    The trials (ended ones) vary a param by name, not number (``params.model``: ``"mlp"``,
    ``"cnn"``): two to :data:`_MAX_FAMILIES` values, one of them held by two trials or more
    (Dodge et al. draw one curve per model family); else the runs they are inside do (two
    scikit-learn searches in one study, each sweep's ``params.estimator`` its model family),
    which ``--group-by`` reads for a trial that has no value of its own. ``None`` when
    ``group_by`` was given or no param is such.
    """
    if inputs.group_by is not None:
        return None
    params = inputs.forest.column("params")
    trials = [params[p] for p in inputs.trials]
    if hint := _varied_name(trials, "the trials vary"):
        return hint
    around = _params_around(inputs)
    if not any(around):
        return None
    # what a trial takes from the runs around it: the keys it has no value of itself
    taken = [
        outer
        if own.keys().isdisjoint(outer)  # the common case: the sweep's keys are not a trial's
        else {key: value for key, value in outer.items() if key not in own}
        for own, outer in zip(trials, around, strict=True)
    ]
    return _varied_name(taken, "the runs the trials are inside (their sweeps) vary")


def _varied_name(trials: Sequence[Mapping[str, object]], lead: str) -> str | None:
    """The hint for the first param (a family's name first) the trials vary by name, or None."""
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
            named = sorted(map(str, counts))
            return (
                f"{lead} params.{key} ({', '.join(named[:4])}"
                f"{', ...' if len(named) > 4 else ''}): greenprint report --group-by "
                f"params.{key} draws one expected-best-score curve per {key}"
            )
    return None


def _params_around(inputs: FigureInputs) -> list[dict[str, object]]:
    """Each trial's params of the runs it is inside, the nearest's value of a key first."""
    forest = inputs.forest
    if not forest.parents:
        return [{} for _ in inputs.trials]
    params = forest.column("params")
    merged: dict[int, dict[str, object]] = {}  # a run -> its params over its outer runs'

    def of(pos: int) -> dict[str, object]:
        path = []
        at: int | None = pos
        while at is not None and at not in merged:
            path.append(at)
            at = forest.parents[at]
        outer = {} if at is None else merged[at]
        for run in reversed(path):  # the outermost first, each over the one around it
            own = params[run]
            outer = {**outer, **own} if own else outer
            merged[run] = outer
        return merged[pos]

    return [{} if (parent := forest.parents[p]) is None else of(parent) for p in inputs.trials]


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
