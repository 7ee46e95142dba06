"""A running Optuna trial's params and intermediate values, put on its run as it flushes.

Split out of :mod:`greenprint.integrations.optuna` (the callback and the objective's wrapper):
:class:`_Recorder` is the run's listener that records what a trial has so far at each flush,
so that a trial killed mid-run keeps its configuration and reported values in the ledger;
:func:`_log` and :func:`_intermediate_values` are what it and the callback record with.

Private: :mod:`greenprint.integrations.optuna` is the public module.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import BudgetExceeded, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import Trial

# the public module's logger: its warnings read as they did before the split
logger = logging.getLogger("greenprint.integrations.optuna")


class _Recorder:
    """Puts a running trial's params and intermediate values on its run, each step once.

    Called at each flush of the run (on its sampler thread), so that a trial killed mid-run
    (SIGKILL, an OOM kill, a node lost) keeps in the ledger the configuration it ran and the
    values it reported: what is new goes out with the run's next flush. Called once more when
    the objective has ended (:meth:`GreenprintCallback._finish`), for what came after.
    """

    def __init__(self, trial: Trial, run: Any, metric: str) -> None:
        self.trial = trial
        self._run = run
        self._metric = metric
        self._lock = threading.Lock()  # the sampler thread's flush and the objective's end
        self._params: dict[str, Any] = {}
        self._steps: set[int] = set()

    def on_event(self, run: Any, event: str) -> None:
        """The run's listener: record what is new at each flush."""
        if event == "flush":
            self.record(final=False)

    def record(self, *, final: bool) -> None:
        """Set the trial's params if they changed, log its intermediate values not yet logged.

        Args:
            final: the objective has ended: a param name greenprint cannot store is warned
                about, and the values are logged as :func:`_log` does (a "stop" budget crossed
                meanwhile ends the run ``interrupted``); else (a flush, on the sampler thread)
                budgets are left to the objective's own calls and the run's end.
        """
        trial = self.trial
        with self._lock:
            try:
                params = trial.params
            except RuntimeError:  # a suggest_* in the objective's thread grew it meanwhile:
                params = self._params  # the next flush reads it
            if params != self._params:
                try:
                    self._run.set(params=params)
                    self._params = params
                except ConfigError as e:  # a parameter name greenprint cannot store
                    if final:
                        logger.warning(
                            "greenprint: trial %d's params not recorded: %s", trial.number, e
                        )
            new = sorted(
                (step, value)
                for step, value in _intermediate_values(trial).items()
                if step not in self._steps
            )
            logged = self._logged() if new else {}
            for step, value in new:
                self._steps.add(step)
                if logged.get(int(step)) == value:  # the objective logged it itself
                    continue
                if final:
                    _log(self._run, {self._metric: value}, step=int(step))
                else:
                    self._run._add_metrics(int(step), {self._metric: value})

    def _logged(self) -> dict[int, float]:
        """Step -> value of the points of the trial's metric the run has already.

        An objective that logs its score at each epoch (``run.log(step=epoch,
        val_accuracy=score)``) and reports it to Optuna (``trial.report(score, epoch)``)
        stored each point twice, the same step and value: once by itself, once from
        Optuna's intermediate values.
        """
        run = self._run
        with run._lock:
            return {
                p.step: p.value
                for p in run._metrics
                if p.name == self._metric and p.step is not None
            }


def _log(run: Any, values: dict[str, float], *, step: int | None = None) -> None:
    """Record the trial's values on its ended objective's run, whatever its budgets say.

    A ``"stop"`` budget crossed after the objective's last call on its run raises at the
    first of these logs (once, after recording the values); the objective is over, so there is
    nothing left to stop: the run ends ``interrupted`` with the reason anyway (:meth:`Run.stop`).
    """
    try:
        run.log(step=step, **values)
    except BudgetExceeded:
        pass


def _intermediate_values(trial: Trial) -> dict[int, float]:
    """What ``trial.report`` recorded: Optuna keeps it on the trial's cached frozen trial.

    Read from another thread than the objective's too (a flush): ``dict()`` of a dict copies
    it in one step, under the interpreter lock.
    """
    cached = getattr(trial, "_cached_frozen_trial", None)
    if cached is not None:
        return dict(cached.intermediate_values)
    return dict(trial.storage.get_trial(trial._trial_id).intermediate_values)
