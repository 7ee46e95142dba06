"""Studies that start runs: helpers above tracking and analysis.

:func:`run_learning_curve` trains on growing subsamples, each call tracked by
:func:`greenprint.track`, and returns the :class:`~greenprint.analysis.LearningCurve` of the runs,
read as :func:`~greenprint.analysis.learning_curve` reads the study: each run's cost with the
runs nested in it (the Lightning fit that counted the FPO, folds that called ``run.add_fpo``).
It starts runs, so it sits above :mod:`greenprint.tracking` and :mod:`greenprint.analysis`
(which only reads runs and never imports the tracker); its public name stays
``greenprint.analysis.run_learning_curve``, which loads this module on first use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from greenprint._exceptions import AnalysisError, ConfigError, LedgerError
from greenprint._records import RunRecord
from greenprint._types import LedgerLike
from greenprint.analysis._common import Mode, RunForest, check_mode
from greenprint.analysis._curves import (
    LearningCurve,
    check_fraction,
    curve_of,
    subsample_size,
)
from greenprint.analysis._roles import study_trials
from greenprint.tracking import Run, track

__all__ = ["run_learning_curve"]

logger = logging.getLogger(__name__)


def run_learning_curve(
    fn: Callable[..., Any],
    fractions: Sequence[float],
    *,
    study: str,
    ledger: LedgerLike = None,
    name: str = "learning-curve",
    seed: int | None = None,
    full_size: int | None = None,
    metric: str = "score",
    repeats: int = 1,
    mode: Mode = "max",
    track_options: Mapping[str, Any] | None = None,
) -> LearningCurve:
    """Train on growing subsamples, each run tracked, and return the learning curve.

    For each fraction (and each repeat), opens ``greenprint.track(...)`` in ``study``, calls
    ``fn(fraction)`` (or ``fn(fraction, seed=seed + repeat)`` when ``seed`` is given) and logs
    the score it returns. ``fn`` returns the score, or ``(score, dataset_size)`` with the number
    of training examples it used; a bare score needs ``full_size`` (the size of the whole
    training set: the run records ``round(fraction * full_size)``). Each run records
    ``params={"fraction": f}`` (plus ``"seed"``), ``dataset_size`` and the role
    ``"learning-curve"`` (so the study's analyses never take these runs for trials; another role
    can be given in ``track_options``). An exception from ``fn``
    marks that run failed (its cost is kept) and propagates.

    The curve is read as :func:`~greenprint.analysis.learning_curve` reads the study: each of
    these runs costs its own with the runs nested in it (runs ``fn`` opens, in this process or
    in child processes: a Lightning fit with ``count_fpo``, folds that call ``run.add_fpo``).
    With a ledger, the study is read back from it, so the curve equals
    ``learning_curve(ledger.runs(study=study), metric=metric)`` when the study holds only
    these runs (other runs of the study are no points of this curve, but they are read too);
    without one (``ledger=False``), from the runs as they stand in memory.

    Args:
        fn: the training function.
        fractions: subsample fractions, each in (0, 1].
        study: the study the runs belong to.
        ledger: where to record them (path, URL, Ledger; ``None``: the configured ledger;
            ``False``: in memory only), as for :func:`greenprint.track`.
        name: prefix of the run names (``"<name>-<fraction>"``, ``"-r<repeat>"`` with repeats).
        seed: base seed passed to ``fn`` (``seed + repeat``); ``None`` calls ``fn(fraction)``.
        full_size: the size of the full training set, examples.
        metric: the name the score is logged under.
        repeats: runs per fraction (>= 1).
        mode: ``"max"`` or ``"min"``: whether a higher score is better.
        track_options: more keyword arguments for :func:`greenprint.track` (``region``,
            ``pue``, ``sample_interval_s``...).

    Returns:
        The :class:`LearningCurve` of the runs just made, each with its nested runs' cost.

    Raises:
        ConfigError: an empty or invalid ``fractions``, ``repeats`` < 1, or a bad ``full_size``.
        AnalysisError: ``fn`` returned something that is not a finite score (the run is marked
            failed), or a bare score without ``full_size``.
        MissingDependencyError: tracking is not available.
    """
    mode = check_mode(mode)
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Iterable):
        raise ConfigError(  # '0.5' read as the fractions '0', '.', '5': "not '0'"
            f"fractions must be a list of subsample fractions in (0, 1], not {fractions!r}"
        )
    values = [check_fraction(f) for f in fractions]
    if not values:
        raise ConfigError("fractions is empty: give at least one subsample fraction in (0, 1]")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be a positive integer, not {repeats!r}")
    if full_size is not None:
        subsample_size(1.0, full_size)  # validates it
    options = {"role": "learning-curve", **(track_options or {})}
    clash = {"study", "ledger", "params", "dataset_size"} & set(options)
    if clash:
        raise ConfigError(f"track_options cannot set {', '.join(sorted(clash))}")
    records: list[RunRecord] = []  # the runs made and the runs nested in them, as they ended
    made: list[str] = []
    last: Run | None = None
    for fraction in values:
        for repeat in range(repeats):
            params: dict[str, Any] = {"fraction": fraction}
            if seed is not None:
                params["seed"] = seed + repeat
            run_name = f"{name}-{fraction:g}" + (f"-r{repeat}" if repeats > 1 else "")
            size = None if full_size is None else subsample_size(fraction, full_size)
            with track(
                run_name, study=study, ledger=ledger, params=params, dataset_size=size, **options
            ) as run:
                if run._node is not None:
                    run._node.collect()  # the runs fn opens here, with their FPO
                result = fn(fraction) if seed is None else fn(fraction, seed=seed + repeat)
                score, used = _unpack(result, size)
                logged: dict[str, Any] = {metric: score}
                if used is None:  # the score is kept: the training that made it is not lost
                    run.log(**logged)
                    raise AnalysisError(
                        f"fn returned a bare score ({score:.4g}, logged as {metric!r} on run "
                        f"{run.id[:8]} {run_name!r}, marked failed: it has no dataset size): "
                        "give full_size= or return (score, dataset_size)"
                    )
                run.set(dataset_size=used)
                run.log(**logged)
            records.append(run.record)
            if run._node is not None and run._node.collected:
                records.extend(run._node.collected)
            made.append(run.id)
            last = run
    return _curve(_study_runs(last, study, metric, records), made, metric=metric, mode=mode)


def _study_runs(
    run: Run | None, study: str, metric: str, records: list[RunRecord]
) -> list[RunRecord]:
    """The study's runs as its ledger holds them (other processes' too), else ``records``.

    ``records``: the runs made and the runs nested in them, as they stand in memory.
    """
    led = None if run is None else run.ledger
    if led is None:
        return records
    try:  # a report's read: the points a score is read from, of this metric only
        return list(led._read(study=study, points="score", metrics=(metric,)))
    except LedgerError as e:  # the runs are recorded; the curve is still the runs' own
        logger.warning(
            "greenprint: could not read study %r back from %s (%s): the learning curve reads "
            "the runs of this process only",
            study,
            led.url,
            e,
        )
        return records


def _curve(runs: list[RunRecord], made: list[str], *, metric: str, mode: Mode) -> LearningCurve:
    """``learning_curve``'s reading of a study, its points only the runs ``made``."""
    forest = RunForest.build(runs)
    trials = study_trials(forest, metric=metric, mode=mode, reduce="last")
    index = trials.forest.index
    positions = [index[rid] for rid in made if rid in index]
    scores = [s.score for s in trials.scores]
    return curve_of(trials.forest, positions, scores, metric=metric)


def _unpack(result: Any, size: int | None) -> tuple[float, int | None]:
    """The score and training-set size ``fn`` returned (``None``: a bare score, no size)."""
    used: Any = size
    if isinstance(result, tuple):
        if len(result) != 2:
            raise AnalysisError("fn must return a score or (score, dataset_size)")
        result, used = result
        if isinstance(used, bool) or not isinstance(used, (int, np.integer)) or used < 1:
            raise AnalysisError(f"fn returned dataset_size {used!r}: a positive integer expected")
    try:
        score = float(result)
    except (TypeError, ValueError) as e:
        raise AnalysisError(f"fn must return a number (the score), not {result!r}") from e
    if not math.isfinite(score):
        raise AnalysisError(f"fn returned a score of {score}: scores must be finite")
    return score, None if used is None else int(used)
