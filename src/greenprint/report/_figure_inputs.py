"""What the figure builders share.

Their inputs (:class:`FigureInputs`), the trials' columns, the display units, the score's
label and provenance, and the baselines' reference lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat

import numpy as np

from greenprint._records import RunRecord
from greenprint.analysis import (
    EVPCurve,
    PriceTag,
)
from greenprint.analysis._common import Mode, Reduce, RunForest
from greenprint.report._model import Series

__all__ = ["EveryMetricNeeded", "FigureInputs", "TrialColumns", "energy_unit"]


class EveryMetricNeeded(Exception):
    """A report of a study read with one metric's points reached a note listing what was logged.

    The report of a metric given by name reads that metric's points alone
    (``_study_read._narrow_read``); a note that names the metrics some runs logged instead (no
    scored trial, no learning-curve run, no baseline has a value of it) needs every metric's:
    the report is built again from the study read whole.
    """


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
    narrowed: bool = False  # the runs hold the points of ``metric`` alone (EveryMetricNeeded)

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
            (:meth:`~greenprint.analysis._common.RunForest.shared_sums`); NaN for a trial
            whose energy is unknown (no meter recorded it, nor every run inside it:
            ``RunForest.energy_sums``), never 0.
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
        # the price tag's, computed once; NaN where no meter recorded it (meters=[])
        energies = forest.known_cost_sums("energy_kwh")
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
