"""Helpers shared by the analysis modules: option checks, run scores, the tree of nested runs.

The tree of nested runs (:class:`RunForest`), the option checks and the run scores live in
:mod:`greenprint._forest` (pure Python at import: ``greenprint ledger ls`` reads a study's roles
and its report's metric without numpy) and are re-exported here under their names; the array
helpers the analyses share are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from greenprint._exceptions import AnalysisError, ConfigError
from greenprint._forest import (
    LOWER_IS_BETTER_WORDS,
    SHARED_COSTS,
    KnownSums,
    Mode,
    Reduce,
    RunForest,
    SharedSums,
    ShareOut,
    TimeGroup,
    check_choice,
    check_mode,
    infinite_last,
    json_float,
    lower_is_better,
    own_tree_writer,
    resolve_mode,
    run_end,
    run_score,
    score_of,
)
from greenprint._forest import _link_kind as _link_kind  # tests check a link's kind
from greenprint._forest_stretches import stretch_shares
from greenprint._records import RunRecord, check_statuses
from greenprint._suggest import did_you_mean

__all__ = [
    "LOWER_IS_BETTER_WORDS",
    "KnownSums",
    "Mode",
    "Reduce",
    "RunForest",
    "SHARED_COSTS",
    "ShareOut",
    "SharedSums",
    "TimeGroup",
    "check_choice",
    "check_logged",
    "check_metric_name",
    "check_mode",
    "check_statuses",
    "finite_or_raise",
    "frozen_array",
    "infinite_last",
    "json_float",
    "lower_is_better",
    "own_tree_writer",
    "resolve_mode",
    "run_end",
    "run_score",
    "score_of",
    "stretch_shares",
]


def check_metric_name(metric: object, *, optional: bool = False) -> None:
    """Refuse a ``metric`` that is no metric name (``None`` too, unless ``optional``).

    Raises:
        ConfigError: not a non-empty string (``metric=5`` raised TypeError from a regular
            expression, ``metric=None`` AttributeError).
    """
    if metric is None and optional:
        return
    if not isinstance(metric, str) or not metric.strip():
        raise ConfigError(f"metric must be a metric name such as 'accuracy', not {metric!r}")


def finite_or_raise(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D float array with no infinity (NaN allowed); raise AnalysisError else."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        hint = ""
        if any(
            isinstance(v, RunRecord) for v in (values if isinstance(values, list | tuple) else ())
        ):
            hint = (
                "; for runs, pass their scores ([r.metric('accuracy') for r in runs]) or use "
                "evp_by_budget(runs, metric='accuracy'), which reads a study's trials"
            )
        raise AnalysisError(f"{what} must be numbers: {e}{hint}") from e
    if array.ndim != 1:
        raise AnalysisError(f"{what} must be one-dimensional, got shape {array.shape}")
    if np.isinf(array).any():
        raise AnalysisError(f"{what} contain an infinite value; they must be finite (or NaN)")
    return array


def frozen_array(array: Any) -> np.ndarray:
    """A contiguous, read-only copy-or-view of ``array`` (results must not be mutated)."""
    out = np.ascontiguousarray(array)
    out.setflags(write=False)
    return out


def check_logged(runs: Sequence[RunRecord], metric: str) -> None:
    """Raise when ``metric`` is a name none of ``runs`` logged but they logged others.

    A name typed wrong would otherwise give an empty result (no efficiency, no Pareto front),
    read as "no run has a score".

    Raises:
        AnalysisError: no run logged ``metric``; the message lists the metrics they logged,
            the nearest one first as "did you mean".
        ConfigError: ``metric`` is not a non-empty string (``None``: an AttributeError).
    """
    check_metric_name(metric)
    if not runs or any(metric in run.metric_names for run in runs):
        return
    logged = [  # greenprint's own (its predictions) are never a score
        name
        for name in dict.fromkeys(name for run in runs for name in run.metric_names)
        if not name.startswith("greenprint.")
    ]
    if not logged:
        return  # nothing scored yet: no entry, as for runs that logged no value of it
    listed = ", ".join(repr(name) for name in logged)
    raise AnalysisError(
        f"{'the one run' if len(runs) == 1 else f'none of the {len(runs)} runs'} logged "
        f"{'no ' if len(runs) == 1 else ''}metric {metric!r}{did_you_mean([metric], logged)}"
        f" (metrics logged: {listed})"
    )
