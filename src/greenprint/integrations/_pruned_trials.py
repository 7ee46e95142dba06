"""Where and why an Optuna trial was pruned, read from the trial (no Optuna import).

Shared by :mod:`greenprint.integrations.optuna` and the Hugging Face search (its Optuna
backend prunes with ``trial.should_prune()`` and ``TrialPruned`` as an objective does). The
step is the trial's last reported step (Optuna's ``FrozenTrial.last_step``: the largest key of
``intermediate_values``), the stopper ``"Optuna <pruner class>"`` (``study.pruner``).

Private: the entries are :mod:`greenprint._pruned`'s.
"""

from __future__ import annotations

import logging
from typing import Any

from greenprint._pruned import pruned_provenance, reported_steps

__all__ = ["optuna_pruned_notes", "optuna_step_notes"]

logger = logging.getLogger(__name__)


def _intermediate_steps(trial: Any) -> list[int]:
    """The steps the trial reported (``trial.report(value, step)``), from a Trial or FrozenTrial."""
    values = getattr(trial, "intermediate_values", None)  # a FrozenTrial
    if values is None:
        cached = getattr(trial, "_cached_frozen_trial", None)  # a Trial (Optuna >= 3.1)
        if cached is not None:
            values = cached.intermediate_values
        else:
            values = trial.storage.get_trial(trial._trial_id).intermediate_values
    return [int(step) for step in dict(values)]


def optuna_pruned_notes(trial: Any, study: Any = None, metric: str | None = None) -> dict[str, str]:
    """The provenance entries of a pruned Optuna trial: its last reported step, its pruner.

    Args:
        trial: an ``optuna.trial.Trial`` (or ``FrozenTrial``).
        study: its study, when ``trial`` (a ``FrozenTrial``) does not name it.
        metric: the run's metric its reported steps are logged as (``step_metric``: the
            report reads a full trial's step on it, not on a loss logged at global steps).

    Returns:
        ``pruned_at_step`` (when the trial reported a step) and ``pruned_by``
        (``"Optuna MedianPruner"``); empty when the trial cannot be read (another Optuna's
        internals: the report then reads the run's last logged step).
    """
    try:
        steps = _intermediate_steps(trial)
        study = study if study is not None else trial.study
        pruner = getattr(study, "pruner", None)
    except Exception as e:  # another Optuna's internals: the run's last logged step stands
        logger.debug("greenprint: could not read the pruned trial's step: %s", e)
        return {}
    by = "Optuna" if pruner is None else f"Optuna {type(pruner).__name__}"
    return pruned_provenance(step=max(steps) if steps else None, by=by, metric=metric)


def optuna_step_notes(trial: Any, metric: str | None = None) -> dict[str, str]:
    """The provenance entries of any Optuna trial that reported steps: ``last_step``, its metric.

    The report reads a finished trial's furthest step from them (its read of the objective's
    points ends on the value logged without a step); empty when the trial reported no step or
    cannot be read.
    """
    try:
        steps = _intermediate_steps(trial)
    except Exception as e:  # another Optuna's internals: the run's logged steps stand
        logger.debug("greenprint: could not read the trial's steps: %s", e)
        return {}
    return reported_steps(max(steps) if steps else None, metric)
