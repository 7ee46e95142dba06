"""What the Ray Tune callback knows of one trial, and how the trial ended.

:class:`_TrialState` per trial on the driver; a trial's experiment, name and configuration key
(across its attempts); whether its own stopping criteria were met; its error; its final status
by the rule of :mod:`greenprint.integrations.ray` (finished, pruned, failed, interrupted); and
what in the experiment may stop a trial early (:func:`_early_stoppers`); and what the callback
notes of a trial's results and attempts (:class:`_TrialNotes`, a mixin of the callback).

Private: :mod:`greenprint.integrations.ray` is the public module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from greenprint._provenance import OBJECTIVES_KEY, objectives_text
from greenprint._pruned import pruned_provenance
from greenprint.integrations._ray_workers import _BUDGET


@dataclass
class _TrialState:
    """What the callback knows of one trial."""

    run_id: str
    worker: str = ""
    stopped_by_tune: bool = False
    criteria_met: bool = False
    progress: float = 0.0
    ended: str | None = None  # "complete" or "error"
    error: str | None = None
    written: bool = False  # the driver wrote (relay mode) or re-parented the run
    relayed: bool = False  # the driver writes the run (the worker keeps it in memory)
    steps: int = 0
    budget_error: str | None = None  # "BudgetExceeded: ..." of a "stop" budget in the worker


def _experiment_name(trial: Any) -> str:
    for getter in (
        lambda: trial.storage.experiment_dir_name,
        lambda: trial.experiment_dir_name,
    ):
        try:
            name = getter()
        except AttributeError:
            continue
        if isinstance(name, str) and name:
            return name
    return "ray-tune"


def _trial_name(trial: Any) -> str:
    """The trial's name, the name of its run."""
    return str(getattr(trial, "trial_name", None) or str(trial))


def _attempt_key(trial: Any) -> str:
    """What names a configuration across its attempts: its experiment tag, else its id."""
    tag = getattr(trial, "experiment_tag", None)
    return tag if isinstance(tag, str) and tag else f"id:{trial.trial_id}"


def _criteria_met(trial: Any, result: Mapping[str, Any]) -> bool:
    """Whether the trial's own stopping criteria (``RunConfig(stop={...})``) are met."""
    criteria = getattr(trial, "stopping_criterion", None) or {}
    for key, limit in criteria.items():
        value = result.get(key)
        try:
            if value is not None and value >= limit:
                return True
        except TypeError:
            continue
    return False


def _error_text(trial: Any) -> str:
    for attr in ("error_msg", "error_message"):
        text = getattr(trial, attr, None)
        if isinstance(text, str) and text:
            return text.strip().splitlines()[-1][:2000]
    # Tune 2.x keeps the error in the trial's error file on the driver (each failure appended:
    # "Failure # 1 (occurred at ...)", then the worker's traceback, its last line the error)
    try:
        path = getattr(trial, "error_file", None)
        lines = Path(path).read_text(errors="replace").strip().splitlines() if path else []
    except (OSError, TypeError, ValueError):
        lines = []
    if lines and not lines[-1].startswith("Failure # "):
        return lines[-1].strip()[:2000]
    return "Ray Tune marked the trial ERROR"


def _final_status(state: _TrialState, furthest: float) -> tuple[str, str | None]:
    """The trial's status by the rule in the module docstring.

    A trial whose worker raised a ``"stop"`` budget's :class:`~greenprint.BudgetExceeded` is
    recorded as the worker records it, ``interrupted`` with that reason, whatever Tune says
    (``ERROR`` for the exception, ``TERMINATED`` when the trainable caught it). Tune's error
    text does not say which exception ended a trial, so one that caught the stop and then
    raised another is recorded so too (in-process it would be ``failed``).
    """
    if state.budget_error is not None:
        return "interrupted", state.budget_error
    if state.ended == "error":
        return "failed", state.error or "Ray Tune marked the trial ERROR"
    if state.ended is None:
        return "interrupted", "the experiment ended before the trial"
    if not state.stopped_by_tune or state.criteria_met:
        return "finished", None
    if state.progress >= furthest:
        return "finished", None
    return "pruned", None


#: How far up from :meth:`GreenprintTuneCallback.setup` Tune's
#: ``TuneController.setup_experiments`` is looked for (it calls ``CallbackList.setup``, which
#: calls the callback: two frames in Ray 2.41 to 2.60).
_SETUP_FRAMES = 6

#: Stoppers that stop no trial early: none given, each trial at its last iteration (it then
#: reads ``finished``), the experiment's ``time_budget_s`` (its cut trials read ``interrupted``).
_NOT_EARLY = frozenset({"NoopStopper", "MaximumIterationStopper", "TimeoutStopper"})


def _tune_setup() -> tuple[Any, Mapping[str, Any]]:
    """Tune's ``TuneController`` that calls the callbacks' ``setup``, and its caller's locals.

    Called from the callback's ``setup``: Tune's ``TuneController.setup_experiments`` calls
    ``CallbackList.setup``, which calls the callback, and ``tune.run`` (which ``Tuner.fit``
    calls) calls ``setup_experiments`` with the experiment's ``metric`` and ``mode`` among its
    locals. ``(None, {})`` where no ``TuneController`` calls (another Ray).
    """
    frame: FrameType | None = sys._getframe(1)  # the callback's setup
    for _ in range(_SETUP_FRAMES):
        if frame is None:
            break
        found = frame.f_locals.get("self")
        if frame.f_code.co_name == "setup_experiments" and hasattr(found, "scheduler_alg"):
            caller = frame.f_back
            return found, (dict(caller.f_locals) if caller is not None else {})
        frame = frame.f_back
    return None, {}


def _early_stoppers(controller: Any) -> tuple[str, ...]:
    """What may stop the experiment's trials early: its scheduler and stoppers, by class name.

    Tune tells callbacks neither (their ``setup`` gets the experiment's ``stop`` dict, ``{}``
    for a ``Stopper``, and ``time_budget_s``; its own progress output is handed the
    scheduler's class name by ``tune.run``), nor which of them stopped a trial (its result
    reads ``done`` either way). Read from the ``TuneController`` that calls the callbacks'
    ``setup`` (:func:`_tune_setup`): its ``scheduler_alg`` and its ``_stopper`` (the
    ``RunConfig``'s ``stop`` Stopper, a ``CombinedStopper`` with ``time_budget_s``'s). The
    scheduler as Tune's progress output names it (``ASHAScheduler`` is
    ``AsyncHyperBandScheduler``), unless ``FIFOScheduler`` (it stops none); then each stopper
    that may stop a trial early (not those of :data:`_NOT_EARLY`).

    Returns:
        ``("AsyncHyperBandScheduler",)``, ``("TrialPlateauStopper",)``, both; empty where no
        ``TuneController`` calls (another Ray) or nothing but a stopper of the experiment's end.
    """
    if controller is None:
        return ()
    names: list[str] = []
    scheduler = controller.scheduler_alg
    if scheduler is not None and type(scheduler).__name__ != "FIFOScheduler":
        names.append(type(scheduler).__name__)
    for stopper in _stoppers(getattr(controller, "_stopper", None)):
        name = type(stopper).__name__
        if name not in _NOT_EARLY and name not in names:
            names.append(name)
    return tuple(names)


#: The attribute of a function :func:`~greenprint.integrations.ray.trainable` returns that holds
#: what it carries to the workers (its ``_TrialSpec``).
_SPEC_ATTR = "_greenprint_trial_spec"


def _trainable_ledger(fn: Any) -> str | None:
    """The ledger the experiment's trainable writes its trial runs to, for a callback given none.

    ``fn`` is ``tune.run``'s ``run_or_experiment`` (:func:`_tune_setup`): the function
    :func:`~greenprint.integrations.ray.trainable` returned, or ``tune.with_parameters``'
    wrapper around it (which calls it from its closure). A callback given no ledger wrote the
    sweep to the configured ``./greenprint.db`` while ``trainable(train, ledger=URL)`` wrote
    the trials to the team's PostgreSQL ledger: the study split in two, the trials without
    their sweep or their pruned status, and a warning for each trial. ``None`` (the configured
    ledger, as before) when no wrapped trainable is found, or its runs stay in memory.
    """
    ledger = getattr(_trainable_spec(fn), "ledger", None)
    return ledger if isinstance(ledger, str) else None


def _trainable_spec(fn: Any) -> Any:
    """What the trainable ``fn`` (or the one ``tune.with_parameters`` wraps) carries, or ``None``.

    The ``_TrialSpec`` :func:`~greenprint.integrations.ray.trainable` marks the function it
    returns with; ``None``: no such trainable (another trainable, or an earlier greenprint's).
    """
    spec = getattr(fn, _SPEC_ATTR, None)
    if spec is None:
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                spec = getattr(cell.cell_contents, _SPEC_ATTR, None)
            except ValueError:  # an empty cell
                continue
            if spec is not None:
                break
    return spec


#: Tune's name for "no metric given" (``ray.tune.result.DEFAULT_METRIC``).
_NO_METRIC = "_metric"


def _experiment_objective(controller: Any, run_locals: Mapping[str, Any]) -> tuple[str, str] | None:
    """The metric the experiment optimised and its direction: ``("score", "minimize")``.

    ``TuneConfig(metric=..., mode=...)`` (``tune.run``'s locals), else the scheduler's own
    (``ASHAScheduler(metric=..., mode=...)``), else the searcher's (``OptunaSearch(metric=...,
    mode=...)``), each ``mode`` taken where its metric is that one or none. Tune tells
    callbacks neither. ``None`` when no metric with a mode is found: the report then ranks by
    the metric's name, as for any run.
    """
    scheduler = getattr(controller, "scheduler_alg", None)
    search = getattr(controller, "search_alg", None)
    sources = [
        (run_locals.get("metric"), run_locals.get("mode")),
        (getattr(scheduler, "_metric", None), getattr(scheduler, "_mode", None)),
        (
            getattr(getattr(search, "searcher", None), "metric", None),
            getattr(getattr(search, "searcher", None), "mode", None),
        ),
    ]
    named = [m for m, _ in sources if isinstance(m, str) and m and m != _NO_METRIC]
    if not named:
        return None
    metric = named[0]
    for name, mode in sources:
        if name in (None, _NO_METRIC, metric) and mode in ("min", "max"):
            return metric, "minimize" if mode == "min" else "maximize"
    return None


def _stoppers(stopper: Any) -> list[Any]:
    """The stoppers a ``CombinedStopper`` combines (its ``_stoppers``), or ``[stopper]``."""
    if stopper is None:
        return []
    inner = getattr(stopper, "_stoppers", None)
    if isinstance(inner, (list, tuple)):
        return [s for each in inner for s in _stoppers(each)]
    return [stopper]


class _TrialNotes:
    """What the callback notes of trials as Tune reports them, and how many were cut short.

    A mixin of :class:`~greenprint.integrations.ray.GreenprintTuneCallback`, whose ``__init__``
    sets the attributes declared here.
    """

    if TYPE_CHECKING:  # GreenprintTuneCallback's
        _time_attr: str
        _started: set[str]
        _ended: dict[str, str]
        _attempt_times: dict[str, tuple[float, float | None]]
        _stoppers: tuple[str, ...]
        _objective: tuple[str, str] | None

    def _objective_notes(self) -> dict[str, str]:
        """The experiment's objective as provenance: ``{"objectives": "score: minimize"}``.

        The metric and mode Tune optimised (``TuneConfig(metric=..., mode=...)``, else the
        scheduler's or searcher's), which Tune tells no callback and its results do not carry:
        the report ranks the metric the way the experiment did, as an Optuna study's
        (``score``, minimised by Tune, had been maximised: the worst trial the final model).
        Empty when the experiment named none.
        """
        if self._objective is None:
            return {}
        return {OBJECTIVES_KEY: objectives_text([self._objective])}

    def _cut_short(self, trials: list[Any]) -> int:
        """How many of the experiment's trials had not ended when it ended.

        Those this driver started that Tune never said ended (it marks them ``TERMINATED`` at
        the end of an experiment cut short without calling :meth:`on_trial_complete`) and
        those that never ran to an end (``PENDING``, ``PAUSED``). A trial of a restored
        experiment that an earlier driver ran is not counted.
        """
        return sum(
            1
            for t in trials
            if (t.trial_id in self._started and t.trial_id not in self._ended)
            or str(getattr(t, "status", "")) in ("PENDING", "PAUSED")
        )

    def _attempt_failed(self, trial: Any) -> None:
        """Note when the trial's latest attempt failed (for a run recorded by the driver)."""
        started, _ = self._attempt_times.get(trial.trial_id, (time.time(), None))
        self._attempt_times[trial.trial_id] = (started, time.time())

    def _pruned_notes(self, state: _TrialState, furthest: float) -> dict[str, str]:
        """A pruned trial's provenance: its last ``time_attr`` against the furthest trial's.

        ``pruned_by``: ``"Ray Tune"`` and what may have stopped it (:func:`_early_stoppers`).
        """
        step = state.progress if state.progress > 0 else None
        full = furthest if furthest > 0 else None
        by = " ".join(("Ray Tune", " or ".join(self._stoppers))).strip()
        return pruned_provenance(step=step, by=by, full_steps=full, unit=self._time_attr)

    def _note_result(self, state: _TrialState, trial: Any, result: Mapping[str, Any]) -> None:
        """Note what a trial's result tells of its end, as its status is judged at the end.

        How far it went, whether Tune stopped it (and on its own stopping criteria), a
        ``"stop"`` budget's reason: a result seen as it came, or a restored trial's last.
        """
        progress = result.get(self._time_attr)
        if isinstance(progress, (int, float)) and not isinstance(progress, bool):
            state.progress = max(state.progress, float(progress))
        if result.get("done"):
            state.stopped_by_tune = True
            state.criteria_met = _criteria_met(trial, result)
        if isinstance(result.get(_BUDGET), str):
            state.budget_error = result[_BUDGET]
