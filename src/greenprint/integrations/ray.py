"""Ray Tune: every trial a greenprint run on the node it runs on; the experiment a sweep.

Usage::

    from ray import tune
    from greenprint.integrations.ray import GreenprintTuneCallback, trainable

    tuner = tune.Tuner(
        trainable(train_fn, ledger="/shared/greenprint.db"),          # worker side
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=ASHAScheduler()),
        run_config=tune.RunConfig(callbacks=[GreenprintTuneCallback(ledger="/shared/greenprint.db")]),
    )
    tuner.fit()

**Worker side.** :func:`trainable` wraps a function trainable: each call (one trial) runs under
a run in the Ray worker process that executes it (``scope="process"``: that worker's process
tree only), named after the trial, with ``role="trial"`` and the trial's config (its numbers,
strings and booleans) as ``params``. Every result the trial reports (``tune.report(...)``,
``ray.train.report(...)`` or a returned/yielded dict) is also logged to the run and gets
``greenprint/energy_kwh`` and ``greenprint/emissions_kg`` (cumulative), ``greenprint/power_w``
(mean power since the previous result) and ``greenprint/run_id`` added, so schedulers, searchers
and Tune's loggers see the cost. The function ending normally ends the run ``finished``; an
exception ends it ``failed`` (cost so far kept) and is re-raised for Tune; Tune stopping the
trial (a scheduler such as ASHA, or a stopping criterion) raises ``SystemExit`` inside
``tune.report`` in the trial's thread, which ends the run and is re-raised; the driver callback
then decides between ``finished`` and ``pruned``.

**Driver side.** :class:`GreenprintTuneCallback` (``tune.RunConfig(callbacks=[...])``) records the
experiment as a run with ``role="sweep"`` measured on the driver, makes every trial run its
child, and sets each trial's final status when the experiment ends:

* ``failed``: Tune marked the trial ``ERROR`` (an exception, or its worker died: the run keeps
  the cost of its last write); an attempt that Tune retries (``FailureConfig(max_failures=...)``)
  ends ``failed`` too but is a ``part`` of the sweep, its cost counted, the trial being the
  attempt that ends it (one configuration, one trial); likewise a trial Tune pauses and
  resumes from a checkpoint (PBT, HyperBand) runs the function once per stretch: the run that
  reports its last result is the trial, the others (one resumed at the last step that reports
  nothing too) ``part`` s of the sweep, ``interrupted`` where Tune ended the worker first;
* ``finished``: the function returned, or Tune stopped it on a stopping criterion of the trial
  (``RunConfig(stop={...})``) or once it had gone as far (``time_attr``, by default
  ``training_iteration``) as the furthest trial of the experiment (ASHA's ``max_t``, a
  ``MaximumIterationStopper``);
* ``pruned``: Tune stopped it before that (a scheduler's early stop, a plateau stopper); its
  provenance says how far it went (``pruned_at_step``: its last ``time_attr``, ``full_steps``:
  the furthest trial's, ``step_unit``: ``time_attr``) and what may have stopped it
  (``pruned_by``: ``"Ray Tune AsyncHyperBandScheduler"`` for ``ASHAScheduler``, named as Tune's
  own output names it, ``"Ray Tune TrialPlateauStopper"``, ``"Ray Tune MedianStoppingRule or
  TrialPlateauStopper"`` where the experiment has both: Tune does not tell which stopped it;
  ``"Ray Tune"`` where the experiment's scheduler and stoppers cannot be read);
* ``interrupted``: it had not ended when the experiment did (``time_budget_s``, Ctrl-C; error
  ``"the experiment ended before the trial"``, also for a trial whose first result the driver
  had not seen yet), or a ``"stop"`` budget given to :func:`trainable` stopped it (error
  ``"BudgetExceeded: ..."``, as in-process, also when the driver writes the trial).

The sweep run ends ``interrupted`` when the experiment ended before some of its trials (error
``"the experiment ended before 2 of its 4 trials ended"``: those cut, and those never run),
else ``finished``.

Tune itself does not tell these apart: a trial stopped by ASHA and one that ran to the end are
both ``TERMINATED`` (ray-project/ray#54564), hence the rule above.

**A restored experiment** (``Tuner.restore(path, trainable, ...)`` in a new driver, after a crash,
a Ctrl-C or errored trials) reads as one study, one configuration one trial. The new driver's sweep
becomes a child of the first driver's (``contained`` false: its measurement is later, so its cost
adds); an earlier driver's sweep left without a final status (a killed driver) ends ``interrupted``
with its cost so far. A trial Tune runs again (``resume_errored``, ``restart_errored``, which gives
it a new id and name, or ``resume_unfinished`` for one still running, or not yet saved as ended,
when the driver stopped) is the attempt that ends it; each earlier attempt becomes a ``part`` of
the sweep it ran under, with its status, error and cost (one that was running when its driver died
ends ``interrupted``), counted once and never as a trial. A trial restored and not run again keeps
its one run; its status is judged with the others' at the end, from the last result Tune restored
(how far it went counts in how far the experiment went). The callback finds the earlier attempts
through the state Tune saves with the experiment (:meth:`GreenprintTuneCallback.get_state`: the
first sweep, and the names each configuration ran under, by experiment tag; saved from Tune's first
snapshot on, so only a restore has it) and the ledger: trial runs named as the trial under the
first sweep (the one the saved state names; where it names none, as when Tune's last snapshot came
before the first trial, the latest sweep of the same name in the study) and the sweeps that resumed
it, or under none since it started. Neither a new experiment nor a restored one takes an earlier
experiment's trials of the same names for its own. Earlier runs not in the ledger (another ledger,
deleted): the experiment is recorded as a new one, as before, and a debug log says so. Tune names
a restored experiment after the folder it restores: restored from a folder moved or copied since,
the sweep keeps the first sweep's name and study (when the callback was given none), and the
trial runs its workers write under the folder's name (``trainable`` given no study) are moved
into that study as they are adopted: one study, not two.

**One experiment, one study**: the sweep's, the container of its trials. The trial runs take
the study given to :class:`GreenprintTuneCallback`; given only to :func:`trainable`, the sweep
takes that one (it moves there at the first trial's first result); given to neither, the
experiment's name. A trial run its worker wrote under another study (a trainable given no
study writes under the experiment's name) is moved into the sweep's study as it is adopted, and
when the callback and the trainable name two different studies a warning says so, once:
``greenprint report --study`` of either no longer shows a sweep without trials, or trials whose
sweep is in another study.

**Who writes the trial runs** (``trainable(..., write=...)``):

* ``"auto"`` (default): the worker writes its run itself when it can reach the ledger, a
  PostgreSQL URL, or a SQLite file on the driver's host (the worker's host name is the
  driver's); otherwise the driver does;
* ``"worker"``: the worker writes (a SQLite file on a shared filesystem you know is safe);
* ``"driver"``: the worker keeps its run in memory and each result carries the run's record
  (``greenprint/record``, JSON); the driver callback writes it. Only the driver needs the
  ledger then, but the cost after a trial's last result, and all of it for a worker that dies
  before its first, is not recorded.

A worker that writes flushes every ``flush_interval_s`` (10 s), so a trial whose worker dies
keeps its cost up to the last flush and the callback marks it failed.

**No double counting.** The sweep run measures the driver's process tree. With a local cluster
(``ray.init()`` on one machine) Ray's raylet and its worker processes are children of the
driver, so the sweep contains the trials (its own cost is Ray's overhead); a trial on another
node, or in a cluster the driver only connected to (``ray start`` then ``ray.init(address=...)``),
is outside it. The callback records which (the run's ``contained`` field, where the ledger has
it), and :func:`greenprint.analysis.price_tag` counts a contained trial inside its sweep and
adds one that is not.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from greenprint._imports import require

require("ray.tune", extra="ray", purpose="greenprint.integrations.ray", package="ray")

from ray import tune  # noqa: E402

from greenprint._exceptions import ConfigError, GreenprintError  # noqa: E402
from greenprint.integrations._common import (  # noqa: E402
    WarnOnce,
    check_run_options,
    stopped_by_budget,
)
from greenprint.integrations._ray_ledger import _TrialLedger  # noqa: E402
from greenprint.integrations._ray_restore import _RestoredDrivers, _Resume  # noqa: E402
from greenprint.integrations._ray_trials import (  # noqa: E402
    _SPEC_ATTR,
    _attempt_key,
    _early_stoppers,
    _error_text,
    _experiment_name,
    _experiment_objective,
    _final_status,
    _trainable_ledger,
    _trainable_spec,
    _trial_name,
    _TrialNotes,
    _TrialState,
    _tune_setup,
)
from greenprint.integrations._ray_workers import (  # noqa: E402
    _RECORD,
    _RUN_ID,
    _WORKER,
    FIGURE_PREFIX,
    _host,
    _ledger_url,
    _publish_ledger,
    _unpublish_ledger,
)

# the worker side's classes keep their old names here: a trainable pickled by an earlier
# greenprint (a Tune experiment saved to restore) names them in this module
from greenprint.integrations._ray_workers import _TrialRun as _TrialRun  # noqa: E402
from greenprint.integrations._ray_workers import _TrialSpec as _TrialSpec  # noqa: E402

__all__ = ["FIGURE_PREFIX", "GreenprintTuneCallback", "trainable"]

logger = logging.getLogger(__name__)


WriteMode = Literal["auto", "worker", "driver"]
_WRITE_MODES = ("auto", "worker", "driver")


# ------------------------------------------------------------------------------- worker side
def trainable(
    fn: Callable[..., Any],
    *,
    ledger: Any = None,
    study: str | None = None,
    write: WriteMode = "auto",
    **run_options: Any,
) -> Callable[..., Any]:
    """Wrap a Ray Tune function trainable so that each trial is measured where it runs.

    Call it on the driver, where the ledger is checked; the returned function is what you give
    ``tune.Tuner`` (also through ``tune.with_parameters``, either way round).

    Args:
        fn: the function trainable, ``fn(config)`` (or ``fn(config, **parameters)``); a
            generator function works too.
        ledger: where the trial runs go: a path, URL or :class:`~greenprint.Ledger` (only its
            location travels to the workers); ``None``: the ledger given to the experiment's
            :class:`GreenprintTuneCallback`, where its sweep goes, else the configured ledger
            (``./greenprint.db`` of the driver's working directory by default). A relative path
            is made absolute here, on the driver (Tune changes a trial's working directory).
        study: the study (default: the Tune experiment's name, as the callback's default). The
            experiment is one study, its sweep's: given a study and a callback given none, the
            sweep moves into this one; given a study and a callback given another, the trials
            are recorded in the callback's (a warning says so, once); given none and a callback
            given one, the trials go into the callback's (see :class:`GreenprintTuneCallback`).
        write: who writes the trial runs: ``"auto"``, ``"worker"`` or ``"driver"`` (see the
            module).
        **run_options: passed to each trial's run: ``region``, ``intensity``, ``pue``,
            ``scope``, ``meters``, ``sample_interval_s``, ``flush_interval_s``,
            ``budget_kwh``, ``budget_kg``, ``budget_fpo``, ``budget_s``, ``on_exceed``,
            ``budget`` (see :func:`greenprint.track`). With ``on_exceed="stop"``, a trial over
            its budget raises :class:`~greenprint.BudgetExceeded` at its next report (after the
            report reaches Tune, which carries the reason as ``greenprint/budget_stop``); its
            run ends ``interrupted`` with ``"BudgetExceeded: <reason>"`` and stays so, although
            Tune marks the trial ``ERROR``, whoever writes it (the driver, with
            ``write="driver"``, from that report).

    Returns:
        The wrapped trainable.

    Raises:
        ConfigError: ``fn`` is not callable, an unknown ``write``, or a bad run option.
        LedgerError: the ledger cannot be a ledger.
    """
    if not callable(fn) or isinstance(fn, type):
        raise ConfigError(
            "greenprint.integrations.ray.trainable wraps a function trainable, fn(config), "
            f"not {fn!r}"
        )
    if write not in _WRITE_MODES:
        raise ConfigError(f"write must be one of {', '.join(_WRITE_MODES)}, not {write!r}")
    options = check_run_options(run_options, where="trainable", ledger=ledger, study=study)
    spec = _TrialSpec(
        ledger=_ledger_url(ledger),
        study=study,
        write=write,
        driver_host=_host(),
        driver_pid=os.getpid(),
        options=options,
        ledger_given=ledger is not None,
        token=uuid.uuid4().hex,
    )
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_trial(config: dict[str, Any], **parameters: Any) -> Iterator[Any]:
            with _TrialRun(spec, config):
                yield from fn(config, **parameters)

        setattr(generator_trial, _SPEC_ATTR, spec)  # for the callback (_trainable_ledger)
        return generator_trial

    @functools.wraps(fn)
    def trial(config: dict[str, Any], **parameters: Any) -> Any:
        with _TrialRun(spec, config):
            return fn(config, **parameters)

    setattr(trial, _SPEC_ATTR, spec)  # for the callback (_trainable_ledger)
    return trial


# ------------------------------------------------------------------------------- driver side


class GreenprintTuneCallback(_TrialLedger, _RestoredDrivers, _TrialNotes, tune.Callback):
    """Record a Ray Tune experiment as a ``sweep`` run whose children are its trials.

    Use it with :func:`trainable`: ``tune.RunConfig(callbacks=[GreenprintTuneCallback()])``.

    Args:
        ledger: where the sweep (and, when the driver writes them, the trials) go; a
            :func:`trainable` given no ledger writes its trials here too (``None``: the ledger
            the experiment's :func:`trainable` writes to, else the configured ledger).
        study: the study of the sweep and of its trials, which are moved into it as they are
            adopted (default: the study given to :func:`trainable`, else the experiment's
            name). A study given to :func:`trainable` that is another one warns, once.
        name: the sweep run's name (default: the experiment's name).
        time_attr: the result key that says how far a trial went, to tell a trial stopped at
            the end (``finished``) from one stopped early (``pruned``); use your scheduler's
            ``time_attr`` (default ``training_iteration``).
        **run_options: passed to the sweep run (see :func:`greenprint.track`). A budget there
            warns (or calls its ``on_exceed``), and with ``"stop"`` the sweep ends
            ``interrupted``, but nothing stops Tune: no code of yours runs in the sweep run.
            To stop trials, give the budget to :func:`trainable`.

    Raises:
        ConfigError: a bad option or ``time_attr``.
        LedgerError: the ledger cannot be used.
    """

    def __init__(
        self,
        ledger: Any = None,
        *,
        study: str | None = None,
        name: str | None = None,
        time_attr: str = "training_iteration",
        **run_options: Any,
    ) -> None:
        if not isinstance(time_attr, str) or not time_attr:
            raise ConfigError(f"time_attr must be a result key, not {time_attr!r}")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"name must be a non-empty string, not {name!r}")
        self._options = check_run_options(
            run_options, where="GreenprintTuneCallback", ledger=ledger, study=study
        )
        self._ledger = ledger
        self._given_ledger = ledger  # None: the trainable's (setup), else the configured one
        self._published: str | None = None  # the key a trainable given no ledger reads
        self._study = study
        self._name = name
        self._time_attr = time_attr
        self._sweep: Any = None
        self._trials: dict[str, _TrialState] = {}
        self._paused: list[str] = []  # runs of trials' earlier stretches (paused, resumed)
        # how each trial this driver started ended, as Tune told it ("complete", "error"): a
        # trial started here and absent at the end was still running when the experiment ended
        self._started: set[str] = set()
        self._ended: dict[str, str] = {}
        # when each trial's latest attempt started and, if it failed, ended (s since the epoch):
        # the times of a run the driver records for an attempt that failed before its first
        # result, which no worker wrote (_TrialLedger._record_unwritten)
        self._attempt_times: dict[str, tuple[float, float | None]] = {}
        self._warn = WarnOnce()
        self._resume = _Resume()
        self._experiment = ""  # the experiment's name, once the sweep starts
        self._study_checked = False  # the study a trial run was written in was looked at
        self._stoppers: tuple[str, ...] = ()  # what may stop a trial early (setup)
        # the metric the experiment optimised, its direction ("minimize"; setup): the
        # objectives of the sweep's and its trials' provenance
        self._objective: tuple[str, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What Tune pickles with the run config (the settings; no run, no lock)."""
        state = dict(self.__dict__)
        state.update(_sweep=None, _trials={}, _paused=[], _warn=None, _resume=_Resume())
        state.update(_started=set(), _ended={}, _attempt_times={})
        state.update(_experiment="", _study_checked=False, _stoppers=(), _objective=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._warn = WarnOnce()

    @property
    def sweep(self) -> Any:
        """The sweep :class:`~greenprint.Run` (``None`` before the first trial starts)."""
        return self._sweep

    # ---------------------------------------------------------------- Tune's hooks
    def get_state(self) -> dict[str, Any]:
        """What Tune saves with the experiment's state, for :meth:`set_state` on a restore.

        The sweep this experiment's runs hang under and the names each trial ran under (a
        trial Tune restarts after ``Tuner.restore(..., restart_errored=True)`` gets a new id
        and name; its experiment tag stays).
        """
        sweep = self._resume.root or (self._sweep.id if self._sweep is not None else None)
        # never None, even before the first trial: Tune saves it with its first snapshot, so a
        # restore of a driver killed at any point finds it and knows it is a restore
        return {
            "greenprint_sweep": sweep or self._resume.restored_sweep,
            "attempts": {key: list(names) for key, names in self._resume.attempts.items()},
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Take the state :meth:`get_state` saved, in the driver of ``Tuner.restore``."""
        if not isinstance(state, Mapping) or "attempts" not in state:
            return
        self._resume.restored = True
        sweep = state.get("greenprint_sweep")
        self._resume.restored_sweep = sweep if isinstance(sweep, str) else None
        attempts = state.get("attempts")
        if isinstance(attempts, Mapping):
            self._resume.attempts = {
                str(key): [str(name) for name in names]
                for key, names in attempts.items()
                if isinstance(names, list)
            }

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        """Note the experiment's scheduler, stoppers and objective (before the first trial)."""
        controller, run_locals = _tune_setup()
        self._stoppers = _early_stoppers(controller)
        self._objective = _experiment_objective(controller, run_locals)
        # given none: the ledger the experiment's trainable writes to (a callback pickled by an
        # earlier greenprint, restored with its experiment, has no _given_ledger: its own)
        fn = run_locals.get("run_or_experiment")
        if getattr(self, "_given_ledger", self._ledger) is None:
            self._ledger = _trainable_ledger(fn)
        # a trainable given no ledger writes its trials to this one, the sweep's, till the end
        self._published = _publish_ledger(_trainable_spec(fn), _ledger_url(self._ledger))

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Start the sweep run with the first trial (the experiment's name is known then).

        In the driver of ``Tuner.restore``, the first start also finds the runs the earlier
        drivers wrote, and each trial that starts turns its earlier attempts into parts.
        """
        if self._sweep is None:
            self._start_sweep(_experiment_name(trial))
        self._started.add(trial.trial_id)
        self._ended.pop(trial.trial_id, None)  # started again (resumed): not ended yet
        self._attempt_times[trial.trial_id] = (time.time(), None)
        names = self._resume.attempts.setdefault(_attempt_key(trial), [])
        if _trial_name(trial) not in names:
            names.append(_trial_name(trial))
        ledger = self._sweep.ledger
        if ledger is None:
            return
        if self._resume.restored and not self._resume.looked:
            self._resume.looked = True
            self._find_earlier(ledger, trials)
        self._supersede(ledger, trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """Adopt the trial's run, write it when the driver writes, note a stop by Tune."""
        run_id = result.get(_RUN_ID)
        if not isinstance(run_id, str):
            self._warn(
                "unwrapped",
                "greenprint: a trial's results carry no greenprint/run_id: wrap the trainable, "
                "tune.Tuner(greenprint.integrations.ray.trainable(fn), ...)",
            )
            return
        if self._sweep is None:
            self._start_sweep(_experiment_name(trial))
        state = self._trials.get(trial.trial_id)
        if state is None or state.run_id != run_id:
            earlier, state = state, _TrialState(run_id)
            self._trials[trial.trial_id] = state
            if earlier is not None:  # paused and resumed (PBT, HyperBand): a new run
                state.progress = earlier.progress
                self._segments_before(earlier)
        state.worker = str(result.get(_WORKER, state.worker))
        state.steps += 1
        self._note_result(state, trial, result)
        try:
            if isinstance(result.get(_RECORD), str):
                state.relayed = True
                self._write_relayed(state, result)
            elif not state.written:
                state.written = True  # tried once: a ledger without the run will not get it
                self._adopt(state)
        except GreenprintError as e:  # the experiment goes on; the trial stays as written
            self._warn(
                f"write:{trial.trial_id}",
                f"greenprint: could not record trial {trial.trial_id} in the sweep's ledger "
                f"(give trainable() and GreenprintTuneCallback the same ledger): {e}",
            )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Note that the trial ended without an error (its status is set at the end)."""
        self._ended[trial.trial_id] = "complete"
        state = self._trials.get(trial.trial_id)
        if state is not None:
            state.ended = "complete"

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A failed attempt Tune retries (``FailureConfig(max_failures=...)``): a part.

        The attempt's run ends ``failed`` with the error and becomes a ``part`` of the sweep
        (its cost stays in the price tag) instead of a trial: the trial is one configuration,
        recorded by the attempt that ends it, not one more trial counted as the worst score.
        """
        self._attempt_failed(trial)
        state = self._trials.pop(trial.trial_id, None)
        ledger = None if self._sweep is None else self._sweep.ledger
        if ledger is None:
            return
        if state is None:  # it failed before its first result: its worker wrote it
            state = self._silent_attempt(ledger, trial)
            if state is None and trial.trial_id in self._started:  # nobody did: the driver
                state = self._record_unwritten(ledger, trial, "part")
            if state is None:
                return
        try:
            current = ledger.run(state.run_id)
            fields_: dict[str, Any] = {**self._link_fields(state), "role": "part"}
            if current.status in ("running", "lost"):  # the worker died: no final write
                fields_.update(status="failed", ended_at=current.heartbeat_at or time.time())
            if not current.error:
                fields_["error"] = _error_text(trial)
            ledger.flush(state.run_id, fields=fields_)
        except GreenprintError as e:
            logger.warning("greenprint: could not record trial run %s's retry: %s", state.run_id, e)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Note that the trial failed (its worker raised, or died)."""
        self._ended[trial.trial_id] = "error"
        self._attempt_failed(trial)
        state = self._trials.get(trial.trial_id)
        if state is not None:
            state.ended = "error"
            state.error = _error_text(trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Give every trial run its final status and end the sweep run."""
        _unpublish_ledger(getattr(self, "_published", None))  # a callback set up before it
        if self._sweep is None:
            return
        ledger = self._sweep.ledger
        if self._resume.restored:
            self._restored_ended(trials)
        furthest = max((s.progress for s in self._trials.values()), default=0.0)
        if ledger is not None:
            candidates = self._study_runs(ledger) if trials else []
            self._find_silent(ledger, trials, candidates)
            self._find_tails(ledger, trials, candidates)
            self._settle(ledger)
            self._end_paused(ledger)
        for state in self._trials.values():
            status, error = _final_status(state, furthest)
            if ledger is None:
                continue
            try:
                current = ledger.run(state.run_id)
                if stopped_by_budget(current.status, current.error):
                    continue  # its worker recorded why it ended (Tune says ERROR)
                fields_: dict[str, Any] = {}
                if current.status != status:
                    fields_["status"] = status
                    if current.ended_at is None:
                        fields_["ended_at"] = current.heartbeat_at or time.time()
                if stopped_by_budget(status, error):  # as the worker would have recorded it
                    fields_["error"] = error
                elif status in ("failed", "interrupted") and not current.error and error:
                    fields_["error"] = error  # interrupted: "the experiment ended before ..."
                elif status != "failed" and current.error and status != current.status:
                    fields_["error"] = None
                notes = self._objective_notes()  # the metric Tune optimised, and how
                if status == "pruned":  # how far it went, against the furthest trial
                    notes.update(self._pruned_notes(state, furthest))
                if any(current.provenance.get(k) != v for k, v in notes.items()):
                    fields_["provenance"] = {**current.provenance, **notes}
                if fields_:
                    ledger.flush(state.run_id, fields=fields_)
            except GreenprintError as e:
                logger.warning(
                    "greenprint: could not set trial run %s's status: %s", state.run_id, e
                )
        cut = self._cut_short(trials)
        if cut:  # time_budget_s, Ctrl-C, an experiment stopper: as its cut trials, interrupted
            self._sweep.stop(
                status="interrupted",
                error=f"the experiment ended before {cut} of its {len(trials)} trials ended",
            )
        else:
            self._sweep.stop()

    # ---------------------------------------------------------------- helpers
    def _start_sweep(self, experiment: str) -> None:
        """Start the sweep run, named (and in the study named) after the experiment.

        In the driver of ``Tuner.restore``, the experiment is the one the first driver ran:
        with no ``name``/``study`` given, those of the first sweep (Tune's saved state names
        it), also when the experiment's folder was moved or copied since (``Tuner.restore``
        names the experiment after the folder it restores): the restored trials, whose workers
        write their runs under the new name, are moved into that study as they are adopted, as
        are those of a trainable given no study when the callback was given one (see
        :meth:`_one_study`).
        """
        from greenprint.tracking import Run

        def sweep(name: str, study: str, ledger: Any) -> Any:
            return Run(name, study=study, ledger=ledger, role="sweep", **self._options)

        run = sweep(self._name or experiment, self._study or experiment, self._ledger)
        first = self._first_sweep(run.ledger) if self._name is None or self._study is None else None
        if first is not None and (first.name, first.study) != (run.name, run.study):
            run = sweep(self._name or first.name, self._study or first.study, run.ledger)
            logger.debug(
                "greenprint: experiment %r restored from a folder of another name: sweep %r "
                "in study %r, as the first driver's",
                experiment,
                run.name,
                run.study,
            )
        self._experiment = experiment
        if run.study != experiment:  # a trainable given no study writes under the experiment's
            self._resume.moved = experiment
        self._sweep = run.start()
        notes = self._objective_notes()
        if notes:
            with self._sweep._lock:  # the run's provenance, written with its next flush
                self._sweep._provenance.update(notes)
