"""When and why a pruned run was stopped: the keys of its provenance, and how to read them.

A run stopped early (status ``pruned``) records, in its provenance (no schema change: the
provenance is a dict of strings written with every flush):

* ``pruned_at_step``: the step it was stopped at, its last reported step (Optuna's
  ``FrozenTrial.last_step``, Ray Tune's ``training_iteration``, a halving search's resources);
* ``pruned_by``: what stopped it (``"Optuna MedianPruner"``, ``"Ray Tune"``,
  ``"HalvingGridSearchCV"``);
* ``full_steps``: the step a trial run to its end reaches, where the stopper knows it (a
  halving search's last ``n_resources``, the furthest Ray Tune trial); the report otherwise
  takes the furthest finished trial's last step;
* ``step_unit``: what a step counts when it is not the logged step (``"training_iteration"``,
  ``"n_samples"``).

Integrations write them (:func:`pruned_provenance`), and so does
:meth:`greenprint.Run.prune` with its ``step`` and ``by``. :func:`pruned_at` reads them back,
and falls back, for a run that recorded no step (an older greenprint, a ``TrialPruned`` raised
in a plain ``gp.track``), on its last logged step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from greenprint._exceptions import ConfigError
from greenprint._prediction import RESERVED_METRIC_PREFIX
from greenprint._records import RunRecord

__all__ = [
    "FULL_STEPS_KEY",
    "PRUNED_BY_KEY",
    "PRUNED_KEYS",
    "PRUNED_STEP_KEY",
    "STEP_UNIT_KEY",
    "PrunedAt",
    "last_step",
    "logged_steps",
    "pruned_at",
    "pruned_provenance",
]

PRUNED_STEP_KEY = "pruned_at_step"
PRUNED_BY_KEY = "pruned_by"
FULL_STEPS_KEY = "full_steps"
STEP_UNIT_KEY = "step_unit"
#: Every key :func:`pruned_provenance` may write.
PRUNED_KEYS = (PRUNED_STEP_KEY, PRUNED_BY_KEY, FULL_STEPS_KEY, STEP_UNIT_KEY)


def _step_text(value: object, what: str) -> str:
    """A step as the provenance stores it: ``"3"``, ``"2.5"``; ConfigError if not a step."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number (a step, an epoch), not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{what} must be a finite number >= 0, not {value!r}")
    return str(int(number)) if number.is_integer() else repr(number)


def pruned_provenance(
    *,
    step: float | None = None,
    by: str | None = None,
    full_steps: float | None = None,
    unit: str | None = None,
) -> dict[str, str]:
    """The provenance entries of a pruned run (only those given).

    Args:
        step: the step it was stopped at (its last reported step), >= 0.
        by: what stopped it, e.g. ``"Optuna MedianPruner"``.
        full_steps: the step a trial that is not stopped reaches, when known.
        unit: what a step counts, when not the logged step (``"n_samples"``).

    Raises:
        ConfigError: a step that is not a finite number >= 0, ``by`` or ``unit`` not a
            non-empty string.
    """
    out: dict[str, str] = {}
    if step is not None:
        out[PRUNED_STEP_KEY] = _step_text(step, "step")
    if full_steps is not None:
        out[FULL_STEPS_KEY] = _step_text(full_steps, "full_steps")
    for key, text, what in ((PRUNED_BY_KEY, by, "by"), (STEP_UNIT_KEY, unit, "unit")):
        if text is None:
            continue
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{what} must be a non-empty string, not {text!r}")
        out[key] = " ".join(text.split())[:200]
    return out


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def logged_steps(runs: Iterable[RunRecord]) -> Iterator[int]:
    """The steps of the runs' logged metrics, greenprint's own left out (one pass, no list)."""
    reserved = RESERVED_METRIC_PREFIX
    return (
        p.step
        for run in runs
        for p in run.metrics
        if p.step is not None and not p.name.startswith(reserved)
    )


def last_step(run: RunRecord) -> float | None:
    """The largest step of the run's logged metrics (greenprint's own left out), or ``None``."""
    last = max(logged_steps((run,)), default=None)
    return None if last is None else float(last)


@dataclass(frozen=True)
class PrunedAt:
    """Where a run stopped, as it recorded it.

    Attributes:
        step: the step it was stopped at (recorded, else its last logged step), or ``None``.
        recorded: whether ``step`` was recorded when it was pruned (else its last logged step).
        by: what stopped it, or ``None`` (not recorded).
        full_steps: the step a trial run to its end reaches, as the stopper recorded it.
        unit: what a step counts, when recorded.
    """

    step: float | None
    recorded: bool
    by: str | None
    full_steps: float | None
    unit: str | None


def pruned_at(run: RunRecord) -> PrunedAt:
    """Where ``run`` stopped: its recorded ``pruned_at_step``, else its last logged step."""
    provenance = run.provenance
    step = _number(provenance.get(PRUNED_STEP_KEY))
    recorded = step is not None
    if step is None:
        step = last_step(run)
    return PrunedAt(
        step=step,
        recorded=recorded,
        by=provenance.get(PRUNED_BY_KEY) or None,
        full_steps=_number(provenance.get(FULL_STEPS_KEY)),
        unit=provenance.get(STEP_UNIT_KEY) or None,
    )
