"""Optuna: every trial of a study is a greenprint run, finished, pruned and failed ones too.

Usage::

    from greenprint.integrations.optuna import GreenprintCallback

    cb = GreenprintCallback(ledger="greenprint.db")
    study = optuna.create_study(study_name="mnist-lr", direction="maximize")
    study.optimize(cb.track(objective), n_trials=50, callbacks=[cb])

Why both: Optuna calls its callbacks only after a trial has ended, and a trial that fails with
an exception not in ``catch`` never reaches them, so the cost must be measured around the
objective (:meth:`GreenprintCallback.track`); the callback then reads the state Optuna gave the
trial (it is the authority on ``COMPLETE``/``PRUNED``/``FAIL``) and corrects the run's status
if it differs.

Each trial is one run: name ``trial-<number>``, ``role="trial"``, study = the Optuna study's
name, ``params`` = ``trial.params``, the objective value(s) as metrics (``value``, or
``values_0``, ``values_1``... for a multi-objective study, or the names given in
``metric_names``, else those of ``study.set_metric_names``), intermediate values
(``trial.report(value, step)``) as that metric's steps, and status
``finished``/``pruned``/``failed`` (a pruned trial's provenance says when and why:
``pruned_at_step``, its last reported step, and ``pruned_by``, ``"Optuna MedianPruner"``;
every trial's, its ``last_step`` and ``step_metric``, the metric its steps are logged as);
its provenance names the study's objectives, each metric
with its direction (``objectives``: ``"values_0: maximize; values_1: minimize"``), which
``greenprint report`` names beside the metric it ranks by. The trial gets the user attributes
``energy_kwh``, ``emissions_kg`` and ``greenprint_run_id`` (the last one when it starts).

A trial killed mid-run (SIGKILL, an OOM kill, a node lost) keeps its configuration: at each
flush of its run (``flush_interval_s``) the callback puts ``trial.params`` so far and the
intermediate values not yet logged on the run, and they go out with the next flush; the run
then reads ``lost`` with them. Each step is logged once (the objective's end logs only what
the flushes had not).

A killed trial retried: on a storage with a heartbeat and Optuna's ``RetryFailedTrialCallback``
(``RDBStorage(..., heartbeat_interval=..., failed_trial_callback=...)``), the study run again
(``load_if_exists=True``) fails the killed trial and adds a new one with its params, its user
attributes and the system attribute ``failed_trial``. That is one configuration, one trial:
the retry's run takes the killed attempt's run (named by the inherited ``greenprint_run_id``)
as a ``part``, ``interrupted`` at its last heartbeat if it read ``lost``, its cost added once
(``contained`` false), its params the retry's if it was killed before its first flush. Optuna
lists the killed attempt ``FAIL``; the report counts the trials Optuna completed.

The study itself is not a run: its cost is the sum of its trials (the sampler's own work
between trials, milliseconds for TPE, is not measured). To measure that too, wrap
``study.optimize`` in ``gp.track(..., role="sweep")`` in the same thread: the trials become its
children, and the price tag counts the sweep once (it contains them).

Parallel trials: with ``n_jobs > 1`` Optuna runs trials in threads of one process. Every trial
is still recorded, but meters attribute energy to processes, not threads: each concurrent
trial's record holds the whole process's energy over its span (a warning says so once). Each
run names the process it read, so the price tag, the report and a study budget count each
stretch of the trials' time once, split equally among the trials that ran in it (exact at
constant power), with or without a sweep run around ``study.optimize`` (docs/analysis.md,
"Price tag"). A ``meters=`` object given to the callback is shared by every trial's run: it is
started once for the trials that run together and each run reads it from its own start, as
it would meters of its own (:mod:`greenprint.integrations._optuna_meters`). Process-parallel
workers (several processes or machines on one RDB storage) each measure their own trials and
write them to the same ledger. Each trial measures its own process
(``node_meter=False``) unless ``scope`` is given: workers started as the tasks of one job
(``srun -n 3 python search.py``) are not ranks of one training, and local rank 0's trials
would otherwise meter the whole machine, the other workers' trials in it (see
docs/distributed.md).

Child processes: a child links to its run through environment variables, one set per process
for all its threads. Each trial's run exports itself as any run does (:mod:`greenprint._lineage`):
the environment names a trial's run (or a run nested in it) while that trial runs alone, and
while two or more run at once, their closest common run: what the environment named around
``study.optimize`` (the sweep run, the trials' common parent, or no run), never a run inside
one of them, so a child is never linked to a trial that did not start it. Such a child
is the sweep's part (counted once in the study, not per trial) or a run of its own.
:meth:`GreenprintCallback.child_env` gives the environment that links a child to its own trial
whatever else runs: ``subprocess.run(cmd, env=cb.child_env(trial))``.

Budgets (``GreenprintCallback(budget_kwh=..., on_exceed="stop")``, or ``budget=gp.Budget(...,
per="study")`` for the whole search) are given to every trial's run. With ``"stop"``,
:class:`~greenprint.BudgetExceeded` is raised in the objective at its next ``run.log()``,
``step()``, ``progress()`` or ``add_fpo()`` on the trial's run (``list(active_runs())[-1]``, see
:func:`greenprint.tracking.active_runs`); the run ends ``interrupted`` with its cost, and Optuna
fails the trial and re-raises, which ends ``study.optimize`` (right for a study budget). To go on
with the next trial instead, pass ``catch=(gp.BudgetExceeded,)`` to ``study.optimize``. The
callback keeps such a run ``interrupted`` whatever state Optuna gives the trial. An objective that
never calls its run is not stopped: its run ends ``interrupted`` when the objective returns, and
the next trial of a study over its budget raises before its objective is called.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from greenprint._imports import require

require("optuna", extra="optuna", purpose="greenprint.integrations.optuna")

import optuna  # noqa: E402
from optuna.trial import FrozenTrial, Trial, TrialState  # noqa: E402

from greenprint import _lineage  # noqa: E402
from greenprint._exceptions import (  # noqa: E402
    BudgetExceeded,
    ConfigError,
    GreenprintError,
    UnknownRunError,
)
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint._provenance import OBJECTIVES_KEY, objectives_text  # noqa: E402
from greenprint.integrations._common import (  # noqa: E402
    WarnOnce,
    check_run_options,
    default_ledger,
    ledger_now,
    pinned_ledger,
)
from greenprint.integrations._dl import continue_from  # noqa: E402
from greenprint.integrations._optuna_meters import SharedMeters  # noqa: E402
from greenprint.integrations._optuna_recorder import _log, _Recorder  # noqa: E402
from greenprint.integrations._pruned_trials import (  # noqa: E402
    optuna_pruned_notes,
    optuna_step_notes,
)

__all__ = ["GreenprintCallback"]

logger = logging.getLogger(__name__)

#: The trial's user attribute that names its run (set when the trial starts).
RUN_ID_ATTR = "greenprint_run_id"

#: Optuna's trial states and the run status each becomes.
_STATUS = {
    TrialState.COMPLETE: "finished",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}

_THREADS_WARNING = (
    "greenprint: trials run in parallel threads (study.optimize(n_jobs>1)); each is recorded, "
    "but energy is attributed per process, not per thread, so every concurrent trial records "
    "the whole process's energy over its span (the records added up count the overlap more "
    "than once; the price tag, the report and a study budget count each stretch of the "
    "trials' time once, split equally among the trials that ran in it: exact at constant "
    "power). Use process-parallel "
    "workers on a shared storage to measure each trial on its own. A child process started "
    "while trials run at once is linked to their common parent (the run around "
    "study.optimize, or no run), not to a trial: its cost is counted in the study, not per "
    "trial; give it env=cb.child_env(trial) to link it to its trial."
)

_AUTO_NAME_PREFIX = "no-name-"


class GreenprintCallback:
    """Measure every trial of an Optuna study into a greenprint ledger.

    Use both halves: ``study.optimize(cb.track(objective), ..., callbacks=[cb])``.

    Args:
        ledger: where the runs go: a path, URL or :class:`~greenprint.Ledger` (``None``: the
            configured ledger, ``./greenprint.db`` by default).
        study: the greenprint study (default: the Optuna study's name; a study created
            without a name, ``no-name-<uuid>``, is refused: name one of them).
        metric_names: names of the objective values, one per direction (default: the
            study's own, ``study.set_metric_names([...])``, else ``value`` for one objective,
            ``values_0``, ``values_1``... for several).
        **run_options: passed to each run: ``region``, ``intensity``, ``pue``, ``scope``,
            ``meters``, ``sample_interval_s``, ``flush_interval_s``, ``budget_kwh``,
            ``budget_kg``, ``budget_fpo``, ``budget_s``, ``on_exceed``, ``budget`` (see
            :func:`greenprint.track`; a budget is each trial's, or the study's with
            ``gp.Budget(per="study")``; one ``meters`` object serves every trial, each run
            reading it from its own start, also trials in threads).

    Raises:
        ConfigError: an unknown or bad option, ``metric_names`` that are not distinct
            non-empty strings.
        LedgerError: the ledger cannot be used (a closed :class:`~greenprint.Ledger`, a path
            that is not a ledger).
    """

    def __init__(
        self,
        ledger: Any = None,
        *,
        study: str | None = None,
        metric_names: Sequence[str] | None = None,
        **run_options: Any,
    ) -> None:
        self._options = check_run_options(
            run_options, where="GreenprintCallback", ledger=ledger, study=study
        )
        # a relative path is where the user named it, not in a folder a trial moved to
        self._ledger = pinned_ledger(ledger)
        self._default_ledger = default_ledger() if ledger is None else None
        self._study = study
        # one meters= object for every trial's run: started once for the trials running
        # together, each run reading it from its own start (n_jobs > 1 restarted it under them)
        given = self._options.get("meters")
        self._meters = SharedMeters(given) if given is not None else None
        self._metric_names = _check_metric_names(metric_names)
        self._lock = threading.Lock()
        self._running = 0
        # the trials' runs between their start and their objective's end (child_env)
        self._live: dict[tuple[str, int], Any] = {}
        # (study name, trial number) -> (run id, ledger, recorded status), until the callback
        self._measured: dict[tuple[str, int], tuple[str, Any, str]] = {}
        self._warn = WarnOnce()

    # ------------------------------------------------------------------ the objective
    def track(self, objective: Callable[[Trial], Any]) -> Callable[[Trial], Any]:
        """Wrap ``objective`` so that each call (one trial) is measured as a run.

        The run enclosing this call, if any (e.g. ``gp.track(..., role="sweep")``), becomes
        the parent of every trial, also of trials run in other threads (``n_jobs > 1``).

        Raises:
            ConfigError: ``objective`` is not callable.
        """
        if not callable(objective):
            raise ConfigError(
                f"GreenprintCallback.track needs the objective function, not {objective!r}"
            )
        parent = _lineage.innermost()

        @functools.wraps(objective)
        def tracked(trial: Trial) -> Any:
            return self._run_trial(objective, trial, parent)

        return tracked

    def _run_trial(self, objective: Callable[[Trial], Any], trial: Trial, parent: Any) -> Any:
        from greenprint.tracking import Run

        if not isinstance(trial, Trial):
            raise ConfigError(
                "a GreenprintCallback-tracked objective must be called by study.optimize with an "
                f"optuna.trial.Trial, not {type(trial).__name__}"
            )
        study_name = self._study_name(trial.study)
        names = self._names(trial.study)
        with self._lock:
            self._running += 1
            concurrent = self._running > 1
        if concurrent:
            self._warn("threads", _THREADS_WARNING, stacklevel=4)
        try:
            run = Run(
                f"trial-{trial.number}",
                study=study_name,
                ledger=ledger_now(self._ledger, self._default_ledger),
                role="trial",
                parent=parent,
                **self._node_meter(),
                **self._run_options(),
            )
            recorder = _Recorder(trial, run, names[0])
            run.add_listener(recorder.on_event)
            run.start()
            _record_objectives(run, names, trial.study.directions)
            key = (study_name, trial.number)
            try:
                with self._lock:
                    self._live[key] = run
                try:
                    _continue_retried(run, trial)  # before the id is this run's
                    trial.set_user_attr(RUN_ID_ATTR, run.id)  # also if the trial dies
                    # a study already over a "stop" budget (read as the run started) ends the
                    # search here, before the objective: one that only calls trial.report()
                    # would never meet the exception, and every later trial ran whole
                    run._enforce_budgets()
                    result = objective(trial)
                finally:
                    with self._lock:
                        del self._live[key]
            except BaseException as e:
                ended, why = status_for(e)
                self._finish(run, recorder, study_name, names, ended, why, None)
                if isinstance(e, BudgetExceeded) and e.per == "study" and e.study == study_name:
                    # the search ends after this trial also under catch=(gp.BudgetExceeded,),
                    # which is there to go on after a trial's own budget: else every later
                    # trial started, raised at once and left an empty interrupted run
                    with contextlib.suppress(RuntimeError):  # called outside study.optimize
                        trial.study.stop()
                raise
            status, error, values = _check_result(result, names)
            self._finish(run, recorder, study_name, names, status, error, values)
            return result
        finally:
            with self._lock:
                self._running -= 1

    def _run_options(self) -> dict[str, Any]:
        """The options of one trial's run: a ``meters=`` object as a view for that run.

        The object is shared by every trial (see :class:`SharedMeters`): trials running at
        the same time (``n_jobs > 1``) each read it from their own start, as they would each
        read meters of their own.
        """
        if self._meters is None:
            return self._options
        return {**self._options, "meters": self._meters.view()}

    def _node_meter(self) -> dict[str, Any]:
        """``node_meter=False`` unless ``scope`` was given: a trial measures its own process.

        In a job of several processes (``srun -n 3 python search.py``: workers of one study),
        local rank 0's trials would otherwise meter the whole machine, the other workers'
        trials included, and read as that job's ranks. ``scope="machine"`` meters the node.
        """
        return {} if "scope" in self._options else {"node_meter": False}

    def child_env(self, trial: Trial) -> dict[str, str]:
        """The environment for a child process of ``trial``, with the trial's run as its parent.

        ``subprocess.run(cmd, env=cb.child_env(trial))`` inside the objective: the child's runs
        (``gp.track`` there, ``greenprint run``) are the trial's parts, also while other trials
        run in other threads (``n_jobs > 1``), when the process's own environment names no
        trial.

        Returns:
            A copy of ``os.environ`` with the trial's run, study, ledger and process tree in
            the ``GREENPRINT_PARENT_*`` variables.

        Raises:
            ConfigError: ``trial`` is not a trial this callback is running now (call it inside
                the tracked objective, with the trial it was given).
        """
        run = None
        if isinstance(trial, Trial):
            with self._lock:
                run = self._live.get((self._study_name(trial.study), trial.number))
        if run is None:
            number = getattr(trial, "number", None)
            raise ConfigError(
                f"trial {number} is not running under this GreenprintCallback: call "
                "cb.child_env(trial) inside the tracked objective, with the trial it was given"
            )
        return _lineage.child_environ(*run._child_env())

    def _finish(
        self,
        run: Any,
        recorder: _Recorder,
        study_name: str,
        names: Sequence[str],
        status: str,
        error: str | None,
        values: Sequence[float] | None,
    ) -> None:
        trial = recorder.trial
        recorder.record(final=True)
        if values is not None:
            _log(run, dict(zip(names, values, strict=True)))
        # its last reported step, on every trial: a finished one's is what a pruned one is set
        # against; a pruned one's says when, and by which pruner
        run._note_pruned(optuna_step_notes(trial, names[0]))
        if status == "pruned":
            run._note_pruned(optuna_pruned_notes(trial, metric=names[0]))
        run.stop(status=status, error=error)
        with self._lock:
            self._measured[(study_name, trial.number)] = (run.id, run.ledger, run.status)
        # a run with no energy meter (meters=[]): unknown, never 0 (None: JSON's null)
        unmetered = run._unmetered
        trial.set_user_attr("energy_kwh", None if unmetered else run.energy_kwh)
        trial.set_user_attr("emissions_kg", None if unmetered else run.emissions_kg)
        trial.set_user_attr(RUN_ID_ATTR, run.id)

    # ------------------------------------------------------------------ the callback
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After a trial: make its run's status the state Optuna recorded.

        Raises:
            ConfigError: not called by Optuna with a study and a frozen trial.
        """
        if not isinstance(study, optuna.Study) or not isinstance(trial, FrozenTrial):
            raise ConfigError(
                "GreenprintCallback is called by study.optimize(..., callbacks=[cb]) with a "
                f"study and a FrozenTrial, not {type(study).__name__} and {type(trial).__name__}"
            )
        with self._lock:
            measured = self._measured.pop((self._study_name(study), trial.number), None)
        if measured is None:
            if RUN_ID_ATTR in trial.user_attrs:  # recorded: called for it again (ask-and-tell)
                return
            self._warn(
                "unmeasured",
                f"greenprint: trial {trial.number} of study {study.study_name!r} was not "
                "measured: pass the objective through the callback too: "
                "study.optimize(cb.track(objective), ..., callbacks=[cb])",
            )
            return
        run_id, ledger, recorded = measured
        status = _STATUS.get(trial.state)
        if status is None or status == recorded or ledger is None:
            return
        if recorded == "interrupted":
            # a budget stopped the run (Optuna then says FAIL, or COMPLETE when the objective
            # caught BudgetExceeded and returned): the run keeps that reason
            return
        error = None if status != "failed" else f"Optuna marked the trial {trial.state.name}"
        fields: dict[str, Any] = {"status": status, "error": error}
        try:
            if status == "pruned":  # when and by which pruner, beside what the run recorded
                notes = optuna_pruned_notes(trial, study, self._names(study)[0])
                if notes:
                    fields["provenance"] = {**ledger.run(run_id).provenance, **notes}
            ledger.flush(run_id, fields=fields)
        except GreenprintError as e:  # the record stays as measured; never stop the study
            logger.warning("greenprint: could not update trial %d's status: %s", trial.number, e)

    # ------------------------------------------------------------------ helpers
    def _study_name(self, study: optuna.Study) -> str:
        if self._study is not None:
            return self._study
        name = study.study_name
        if name.startswith(_AUTO_NAME_PREFIX):
            raise ConfigError(
                f"the Optuna study has no name (Optuna called it {name!r}, new in every "
                "process); name it, optuna.create_study(study_name=...), or give "
                "GreenprintCallback(study=...)"
            )
        return name

    def _names(self, study: optuna.Study) -> tuple[str, ...]:
        n = len(study.directions)
        if self._metric_names is not None:
            if len(self._metric_names) != n:
                raise ConfigError(
                    f"metric_names {list(self._metric_names)} has {len(self._metric_names)} "
                    f"name(s) but study {study.study_name!r} has {n} objective(s)"
                )
            return self._metric_names
        named = _study_metric_names(study, n)
        if named is not None:
            return named
        return ("value",) if n == 1 else tuple(f"values_{i}" for i in range(n))


def _study_metric_names(study: optuna.Study, n: int) -> tuple[str, ...] | None:
    """The names the study gave its objectives (``study.set_metric_names``), if usable.

    Optuna's dashboard and ``trials_dataframe`` show them in place of ``values_0``...: the
    runs log the objective values under the same names. ``None`` when the study named none
    (or not one distinct non-empty name per objective, or an Optuna before 3.2, without them).
    """
    try:
        named = study.metric_names
    except AttributeError:  # an Optuna without metric names
        return None
    if not isinstance(named, Sequence) or isinstance(named, str) or len(named) != n:
        return None
    names = tuple(named)
    if not all(isinstance(m, str) and m.strip() for m in names) or len(set(names)) != n:
        return None
    return names


def _continue_retried(run: Any, trial: Trial) -> None:
    """Make the run of the killed attempt that ``trial`` retries a part of ``run``.

    Optuna's ``RetryFailedTrialCallback`` (``RetryHeartbeatStaleTrialCallback``, on a storage
    with a heartbeat) fails a trial whose process died and adds a new trial with its params, its
    user attributes (the killed attempt's ``greenprint_run_id``) and the system attribute
    ``failed_trial``. One configuration is one trial: the killed attempt's run becomes a
    ``part`` of ``run``, ``interrupted`` at its last heartbeat if it read ``lost``, with its
    cost, ``contained`` false (counted once), and the params it ran if it was killed before
    its first flush wrote them (see :func:`~greenprint.integrations._dl.continue_from`). Any
    other trial (not a retry, a run not in this ledger or study): nothing changes.
    """
    earlier = trial.user_attrs.get(RUN_ID_ATTR)
    if not isinstance(earlier, str) or not earlier or earlier == run.id:
        return
    retried = _retried_trial(trial)
    ledger = run.ledger
    if retried is None or ledger is None:
        return
    try:
        ledger.run(earlier)
    except UnknownRunError:
        # the killed attempt ran on another machine whose worker writes a ledger of its own:
        # nothing links the two until the ledgers are merged, and the report would read the
        # configuration as two trials, the killed one a lost trial of its own
        logger.warning(
            "greenprint: trial %d retries trial %d, whose run %s is not in ledger %s (a worker "
            "with a ledger of its own, on another machine?): the two read as two trials until "
            "linked; once the ledgers are merged: greenprint ledger set-role part %s "
            "--part-of %s --ledger MERGED",
            trial.number,
            retried,
            earlier[:8],
            ledger.url,
            earlier[:8],
            run.id[:8],
        )
        return
    except GreenprintError:
        pass  # continue_from says why at debug level
    how = f"Optuna's retry of trial {retried} (as trial {trial.number})"
    continue_from(run, earlier, how=how, resumed="ran it again")
    try:
        record = ledger.run(earlier)
        if record.parent_id == run.id and not record.params and trial.params:
            ledger.flush(earlier, fields={"params": dict(trial.params)})
    except GreenprintError as e:  # the killed attempt keeps what it recorded
        logger.warning("greenprint: could not give run %s its params: %s", earlier[:8], e)


def _retried_trial(trial: Trial) -> int | None:
    """The number of the killed trial that Optuna's retry callback retries as ``trial``, if any.

    The last of the trial's ``retry_history`` (``RetryFailedTrialCallback.retry_history``: a
    retry of a retry retries the attempt killed last, whose run id it inherited), else its
    ``failed_trial`` (``retried_trial_number``). A ``Trial`` has no system attributes of its
    own: they are read from its frozen trial.
    """
    frozen = getattr(trial, "_cached_frozen_trial", None)
    try:
        if frozen is None:
            frozen = trial.storage.get_trial(trial._trial_id)
        attrs = frozen.system_attrs
    except Exception:  # another Optuna's internals: as a trial of its own
        return None
    history = attrs.get("retry_history")
    retried = history[-1] if isinstance(history, list) and history else attrs.get("failed_trial")
    return retried if isinstance(retried, int) and not isinstance(retried, bool) else None


def _record_objectives(run: Any, names: Sequence[str], directions: Sequence[Any]) -> None:
    """Put the study's objectives, each metric with its direction, in the run's provenance.

    ``"values_0: maximize; values_1: minimize"`` (:data:`~greenprint._provenance.OBJECTIVES_KEY`):
    the report names them and the one it ranks by, and says when it ranks one the other way.
    """
    pairs = [
        (name, "minimize" if d == optuna.study.StudyDirection.MINIMIZE else "maximize")
        for name, d in zip(names, directions, strict=True)
    ]
    with run._lock:  # the run's provenance, written with its next flush
        run._provenance[OBJECTIVES_KEY] = objectives_text(pairs)


def _check_metric_names(names: Sequence[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        names = (names,)
    checked = tuple(names)
    if (
        not checked
        or not all(isinstance(n, str) and n.strip() for n in checked)
        or len(set(checked)) != len(checked)
    ):
        raise ConfigError(
            f"metric_names must be distinct non-empty strings, one per objective, not {names!r}"
        )
    return checked


def _check_result(
    result: Any, names: Sequence[str]
) -> tuple[str, str | None, tuple[float, ...] | None]:
    """The status, error and values of an objective's return value, as Optuna will judge it.

    Optuna fails a trial whose objective returns something that is not a number, NaN, or the
    wrong number of values; the run records the same (and the callback confirms it).
    """
    raw = result if isinstance(result, Sequence) and not isinstance(result, str) else (result,)
    if len(raw) != len(names):
        return (
            "failed",
            f"the objective returned {len(raw)} value(s) for {len(names)} objective(s)",
            None,
        )
    values = []
    for value in raw:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "failed", f"the objective returned {value!r}, not a number", None
        if math.isnan(number):
            return "failed", "the objective returned NaN", None
        values.append(number)
    return "finished", None, tuple(values)
