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
* ``pruned``: Tune stopped it before that (a scheduler's early stop, a plateau stopper);
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
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Literal

from greenprint._imports import require

require("ray.tune", extra="ray", purpose="greenprint.integrations.ray", package="ray")

from ray import tune  # noqa: E402

from greenprint import _jobs  # noqa: E402
from greenprint._exceptions import BudgetExceeded, ConfigError, GreenprintError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint.integrations._common import (  # noqa: E402
    WarnOnce,
    check_run_options,
    interrupted_at_heartbeat,
    stopped_by_budget,
)

__all__ = ["FIGURE_PREFIX", "GreenprintTuneCallback", "trainable"]

logger = logging.getLogger(__name__)

#: The prefix of the figures added to every result a wrapped trial reports.
FIGURE_PREFIX = "greenprint/"

_RUN_ID = FIGURE_PREFIX + "run_id"
_WORKER = FIGURE_PREFIX + "worker"  # "<host> <pid>" of the trial's worker process
_RECORD = FIGURE_PREFIX + "record"  # the run's record, JSON, when the driver writes it
_BUDGET = FIGURE_PREFIX + "budget_stop"  # the error of a "stop" budget raised at this report
_DUPLICATE = "__duplicate__"  # ray.tune.result.RESULT_DUPLICATE: the repeat of a last result

WriteMode = Literal["auto", "worker", "driver"]
_WRITE_MODES = ("auto", "worker", "driver")

#: How long, in s, the callback waits at the end for workers still writing their final record.
_SETTLE_S = 5.0

#: Longest wait, in s, for a meter read in progress on the run's sampler thread at a report.
_SAMPLE_WAIT_S = 0.05

#: Tune's own result keys, not logged to the trial's run as metrics.
_TUNE_KEYS = frozenset(
    {
        "done",
        "training_iteration",
        "time_this_iter_s",
        "time_total_s",
        "timestamp",
        "iterations_since_restore",
        "time_since_restore",
        "timesteps_since_restore",
        "timesteps_total",
        "episodes_total",
        "checkpoint_dir_name",
        "should_checkpoint",
        "pid",
        "node_ip",
        "hostname",
        "trial_id",
        "date",
    }
)


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
            location travels to the workers); ``None``: the configured ledger
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
    )
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator_trial(config: dict[str, Any], **parameters: Any) -> Iterator[Any]:
            with _TrialRun(spec, config):
                yield from fn(config, **parameters)

        return generator_trial

    @functools.wraps(fn)
    def trial(config: dict[str, Any], **parameters: Any) -> Any:
        with _TrialRun(spec, config):
            return fn(config, **parameters)

    return trial


@dataclass(frozen=True)
class _TrialSpec:
    """What a wrapped trainable carries to the workers (picklable)."""

    ledger: str | None  # a path or URL the workers can open; None: in memory only
    study: str | None
    write: str
    driver_host: str
    driver_pid: int
    options: dict[str, Any]


class _TrialRun:
    """One trial's run in its worker: started on entry, reports patched, ended on exit."""

    def __init__(self, spec: _TrialSpec, config: Mapping[str, Any]) -> None:
        self.spec = spec
        self.config = config
        self.run: Any = None
        self._reports = 0
        self._session: Any = None
        self._figures: Any = None
        self._driver_writes = False
        self._contained: bool | None = None

    def __enter__(self) -> _TrialRun:
        from greenprint.integrations._dl import LiveFigures
        from greenprint.tracking import Run

        context = tune.get_context()
        experiment = _call(context, "get_experiment_name") or "ray-tune"
        name = _call(context, "get_trial_name") or "trial"
        spec = self.spec
        self._driver_writes = spec.write == "driver" or (
            spec.write == "auto" and not _worker_can_write(spec.ledger, spec.driver_host)
        )
        ledger: Any = False if self._driver_writes or spec.ledger is None else spec.ledger
        self.run = Run(
            name,
            study=spec.study or experiment,
            ledger=ledger,
            role="trial",
            params=_params(self.config),
            parent=None,
            **spec.options,
        )
        self.run.start()
        self._contained = _jobs.tree_contains(
            _jobs.parent_tree_value("process", spec.driver_pid, spec.driver_host), host=_host()
        )
        if self.run.ledger is not None and self._contained is not None:
            try:  # known before the first result: a trial that fails at once has it too
                self.run.ledger.flush(self.run.id, fields={"contained": self._contained})
            except GreenprintError as e:  # the callback sets it again at the first result
                logger.warning("greenprint: could not record trial run containment: %s", e)
        self._figures = LiveFigures(self.run)
        self._patch_reports()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._unpatch_reports()
        status, error = status_for(exc)
        if isinstance(exc, SystemExit) and status == "finished":
            # Tune stopped the trial inside tune.report (a scheduler or a stopping criterion);
            # the driver's callback decides between finished and pruned
            error = None
        self.run.stop(status=status, error=error)

    # ---------------------------------------------------------------- the trial's results
    def _patch_reports(self) -> None:
        """Route this trial's results through :meth:`_report` (its session's ``report``).

        ``tune.report``, ``ray.train.report`` and a returned or yielded dict all end in the
        trial session's ``report``; patching that one object (not the module functions) also
        covers ``from ray.tune import report`` done before.
        """
        session = _trial_session()
        if session is None or not callable(getattr(session, "report", None)):
            logger.warning(
                "greenprint: this Ray version's trial session was not found; trials are "
                "measured but their results carry no greenprint/ figures"
            )
            return
        original = session.report

        def report(metrics: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            stop = None
            if isinstance(metrics, dict) and _DUPLICATE not in metrics:
                metrics, stop = self._annotate(metrics)
            result = original(metrics, *args, **kwargs)
            if stop is not None:  # a "stop" budget: after Tune has the result
                raise stop
            return result

        setattr(session, "report", report)  # noqa: B010 - this session object only
        self._session = session

    def _unpatch_reports(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.__dict__.pop("report", None)

    def _annotate(self, metrics: dict[str, Any]) -> tuple[dict[str, Any], BudgetExceeded | None]:
        """The result with this trial's figures added; its numbers logged to the run.

        Returns:
            The result, and the :class:`~greenprint.BudgetExceeded` of a ``"stop"`` budget
            that logging crossed (to raise once Tune has the result), else ``None``.
        """
        run = self.run
        self._reports += 1
        step = self._reports  # the training_iteration Tune gives this result (from a fresh start)
        numbers = {
            key: float(value)
            for key, value in metrics.items()
            if key not in _TUNE_KEYS
            and not key.startswith(FIGURE_PREFIX)
            and isinstance(value, Real)  # NumPy's float32, int64 too (not int or float)
            and not isinstance(value, bool)
        }
        stop = None
        if numbers:
            try:
                run.log(step=step, **numbers)
            except BudgetExceeded as e:
                stop = e
        try:  # the figures as of now, not of the last sample (a report is once per epoch or so)
            run._sample(wait_s=_SAMPLE_WAIT_S)
        except Exception:  # measurement must never reach the trial's code
            logger.exception("greenprint: sampling trial run %s at a report failed", run.id[:8])
        # written now, not at the next flush interval: a trial Tune stops at this report (ASHA)
        # may have its actor killed before the run ends, which lost the result it was ranked by
        # (a pruned trial's score read None); a write per report, a report per epoch or so
        run._flush()
        figures = self._figures.read()
        out = dict(metrics)
        out[FIGURE_PREFIX + "energy_kwh"] = figures["energy_kwh"]
        out[FIGURE_PREFIX + "emissions_kg"] = figures["emissions_kg"]
        out[FIGURE_PREFIX + "power_w"] = figures["power_w"]
        out[_RUN_ID] = run.id
        out[_WORKER] = f"{_host()} {os.getpid()}"
        if stop is not None:  # the reason, for a driver that writes the run (or outlives it)
            out[_BUDGET] = status_for(stop)[1]
        if self._driver_writes:
            out[_RECORD] = _record_json(run, contained=self._contained)
        return out, stop


def _trial_session() -> Any:
    """The running trial's Ray session (private to Ray: ``None`` if this Ray has none)."""
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # pragma: no cover - another Ray layout: runs measured, no figures
        return None
    return get_session()


def _worker_can_write(ledger: str | None, driver_host: str) -> bool:
    """Whether a worker writes its run itself under ``write="auto"``."""
    if ledger is None:
        return False
    from greenprint.ledger._target import resolve_target

    target = resolve_target(ledger)
    if target.backend == "postgresql":
        return True
    return target.path is not None and _host() == driver_host


def _ledger_url(ledger: Any) -> str | None:
    """A location a worker can open: an absolute SQLite path or a URL; ``None``: no ledger."""
    if ledger is False:
        return None
    from greenprint.integrations._common import ledger_target

    target = ledger_target(ledger)
    if target.backend == "sqlite" and target.path is None:
        return None  # an in-memory ledger: the driver writes (ledger given to the callback)
    return str(target.path) if target.path is not None else target.url


def _host() -> str:
    return _jobs.node_host()


def _call(obj: Any, method: str) -> Any:
    try:
        return getattr(obj, method)()
    except (AttributeError, RuntimeError):  # outside a Tune session, or an older Ray
        return None


def _params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's plain values (numbers, strings, booleans), nested keys joined with ``/``."""
    out: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(f"{prefix}/{key}" if prefix else str(key), inner)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            out[prefix] = value
        elif isinstance(value, Integral):  # NumPy's int64 too (tune.grid_search(np.arange(3)))
            out[prefix] = int(value)
        elif isinstance(value, Real):
            value = float(value)
            out[prefix] = value if math.isfinite(value) else str(value)

    if isinstance(config, Mapping):
        visit("", config)
    return out


def _record_json(run: Any, *, contained: bool | None) -> str:
    """The run's record without metrics, as JSON (the driver logs metrics from the results)."""
    record = run.record
    data = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "metrics"}
    if contained is not None:
        data["contained"] = contained
    return json.dumps(data, default=str)


# ------------------------------------------------------------------------------- driver side
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


#: How far a worker node's clock may lag the driver's when a restore matches the trial runs its
#: workers started (in seconds): a run started that long before the first sweep is not its.
_WORKER_CLOCK_S = 60.0


@dataclass
class _Resume:
    """What the callback knows of the drivers it resumes (``Tuner.restore``)."""

    restored: bool = False  # Tune gave the state an earlier driver saved: Tuner.restore
    restored_sweep: str | None = None  # the first sweep, as Tune's saved state names it
    attempts: dict[str, list[str]] = field(default_factory=dict)  # attempt key -> names
    looked: bool = False  # the ledger was read for earlier runs
    root: str | None = None  # the first driver's sweep, this one's parent
    sweeps: list[Any] = field(default_factory=list)  # earlier sweeps, by start
    earlier: dict[str, list[tuple[str | None, Any]]] = field(default_factory=dict)  # name -> runs
    # the experiment's name, where it is not the sweep's study (a callback given a study, a
    # restore from a moved or copied folder): a trainable given no study writes its runs there
    moved: str | None = None
    # other studies the trial runs were written in (a trainable given a study of its own)
    elsewhere: set[str] = field(default_factory=set)


class GreenprintTuneCallback(tune.Callback):
    """Record a Ray Tune experiment as a ``sweep`` run whose children are its trials.

    Use it with :func:`trainable`: ``tune.RunConfig(callbacks=[GreenprintTuneCallback()])``.

    Args:
        ledger: where the sweep (and, when the driver writes them, the trials) go; give the
            same ledger as to :func:`trainable` (``None``: the configured ledger).
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
        self._warn = WarnOnce()
        self._resume = _Resume()
        self._experiment = ""  # the experiment's name, once the sweep starts
        self._study_checked = False  # the study a trial run was written in was looked at

    def __getstate__(self) -> dict[str, Any]:
        """What Tune pickles with the run config (the settings; no run, no lock)."""
        state = dict(self.__dict__)
        state.update(_sweep=None, _trials={}, _paused=[], _warn=None, _resume=_Resume())
        state.update(_started=set(), _ended={})
        state.update(_experiment="", _study_checked=False)
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

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Start the sweep run with the first trial (the experiment's name is known then).

        In the driver of ``Tuner.restore``, the first start also finds the runs the earlier
        drivers wrote, and each trial that starts turns its earlier attempts into parts.
        """
        if self._sweep is None:
            self._start_sweep(_experiment_name(trial))
        self._started.add(trial.trial_id)
        self._ended.pop(trial.trial_id, None)  # started again (resumed): not ended yet
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
        state = self._trials.pop(trial.trial_id, None)
        ledger = None if self._sweep is None else self._sweep.ledger
        if ledger is None:
            return
        if state is None:  # it failed before its first result: its worker wrote it
            state = self._silent_attempt(ledger, trial)
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
        state = self._trials.get(trial.trial_id)
        if state is not None:
            state.ended = "error"
            state.error = _error_text(trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Give every trial run its final status and end the sweep run."""
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

    # ---------------------------------------------------------------- helpers
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

    def _restored_ended(self, trials: list[Any]) -> None:
        """Note the trials a restored experiment did not run again, from their last results.

        Tune restores a trial that had ended (``TERMINATED``, ``ERROR``) with its last result;
        this driver never saw it run. Its status is judged with the others' at the end, by the
        same rule: how far it went counts in how far the experiment went (a rerun stopped early
        read ``finished`` when only this driver's trials were compared), and one whose driver
        died before the end (its worker's status kept: a trial a scheduler stopped read
        ``finished``) gets its status from Tune's.
        """
        seen = {state.run_id for state in self._trials.values()}
        for trial in trials:
            ended = {"TERMINATED": "complete", "ERROR": "error"}.get(getattr(trial, "status", ""))
            result = getattr(trial, "last_result", None)
            if ended is None or trial.trial_id in self._trials or not isinstance(result, dict):
                continue
            run_id = result.get(_RUN_ID)
            if not isinstance(run_id, str) or run_id in seen:
                continue
            state = self._trials[trial.trial_id] = _TrialState(run_id, ended=ended)
            self._note_result(state, trial, result)
            if ended == "error":
                state.error = _error_text(trial)

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

    def _first_sweep(self, ledger: Any) -> Any:
        """The first driver's sweep record, in the driver of ``Tuner.restore`` (else ``None``)."""
        first = self._resume.restored_sweep
        if ledger is None or first is None:
            return None
        try:
            return ledger.run(first)
        except GreenprintError as e:  # another ledger's, or deleted: as a new experiment
            logger.debug("greenprint: the restored experiment's sweep is not in the ledger: %s", e)
            return None

    def _contained(self, worker: str) -> bool | None:
        """Whether the worker process ``"<host> <pid>"`` is inside the sweep's process tree."""
        host, _, pid = worker.rpartition(" ")
        if not pid.isdigit():
            return None
        scope = str(self._options.get("scope") or "process")
        sweep_tree = _jobs.parent_tree_value(scope, os.getpid(), _host())
        return _jobs.tree_contains(sweep_tree, host=host, pid=int(pid))

    def _link_fields(self, state: _TrialState) -> dict[str, Any]:
        # the sweep's study: its worker may have written it under another (see _one_study)
        fields_: dict[str, Any] = {
            "parent_id": self._sweep.id,
            "role": "trial",
            "study": self._sweep.study,
        }
        contained = self._contained(state.worker)
        if contained is not None:
            fields_["contained"] = contained
        return fields_

    def _adopt(self, state: _TrialState) -> None:
        """Make a run the worker wrote a child of the sweep, in the sweep's study."""
        ledger = self._sweep.ledger
        if ledger is None:
            return
        if not self._study_checked:
            self._study_checked = True
            self._one_study(ledger.run(state.run_id).study)
        ledger.flush(state.run_id, fields=self._link_fields(state))

    def _one_study(self, study: str) -> None:
        """Keep the experiment in one study when its trial runs were written in ``study``.

        The sweep is the container of the trials: they are recorded in its study. A trainable
        given no study writes under the experiment's name (its default): moved into the
        sweep's study as they are adopted. A trainable given a study of its own: with a
        callback given none (and no earlier driver's sweep to follow), the sweep moves into
        that study, the one the user named; with a callback given another, the two name two
        studies for one experiment (a warning, once), and the trials are moved into the
        sweep's, the callback's.
        """
        sweep = self._sweep
        if study == sweep.study or study == self._experiment:
            return
        ledger = sweep.ledger
        if self._study is None and not self._resume.restored and ledger is not None:
            try:
                sweep._move_to_study(study)
            except GreenprintError as e:
                logger.warning("greenprint: could not move the sweep into study %r: %s", study, e)
                return
            self._resume.moved = self._experiment
            return
        self._resume.elsewhere.add(study)
        self._warn(
            "studies",
            f"greenprint: trainable(study={study!r}) and the GreenprintTuneCallback's study "
            f"{sweep.study!r} name two studies for one experiment; its trials are recorded "
            f"in the sweep's study {sweep.study!r}: give both the same study, or only one",
        )

    def _write_relayed(self, state: _TrialState, result: Mapping[str, Any]) -> None:
        """Write a run the worker keeps in memory from the record its result carries."""
        from greenprint._records import MetricPoint, RunRecord

        ledger = self._sweep.ledger
        if ledger is None:
            return
        data = json.loads(result[_RECORD])
        known = {f.name for f in fields(RunRecord)}
        values = {k: v for k, v in data.items() if k in known and k != "metrics"}
        if not self._study_checked and isinstance(values.get("study"), str):
            self._study_checked = True
            self._one_study(values["study"])
        values.update(self._link_fields(state))
        step = result.get("training_iteration")
        now = time.time()
        metrics = [
            MetricPoint(key, float(value), step if isinstance(step, int) else None, now)
            for key, value in result.items()
            if key not in _TUNE_KEYS
            and not key.startswith(FIGURE_PREFIX)
            and isinstance(value, Real)  # NumPy's float32, int64 too (not int or float)
            and not isinstance(value, bool)
        ]
        if not state.written:
            ledger.start_run(RunRecord(**values))
            state.written = True
            if metrics:
                ledger.flush(state.run_id, metrics=metrics)
            return
        values.pop("id", None)
        ledger.flush(state.run_id, fields=values, metrics=metrics)

    def _study_runs(self, ledger: Any) -> list[Any]:
        """The sweep's study's runs, read once at the experiment's end.

        :meth:`_find_silent` and :meth:`_find_tails` look among them; none when the ledger
        cannot be read (a warning says so).
        """
        try:
            return self._workers_runs(ledger)
        except GreenprintError as e:
            logger.warning("greenprint: could not look for the trials' runs: %s", e)
            return []

    def _workers_runs(self, ledger: Any) -> list[Any]:
        """The sweep's study's runs, and those the workers wrote under another study.

        The experiment's name (a trainable given no study, where the sweep's study is another)
        and a trainable's own study (see :meth:`_one_study`).

        Raises:
            GreenprintError: the ledger cannot be read.
        """
        from greenprint._exceptions import UnknownStudyError

        runs = list(ledger.runs(study=self._sweep.study))
        others = {self._resume.moved, *self._resume.elsewhere} - {None, self._sweep.study}
        for study in sorted(s for s in others if s is not None):
            try:
                runs += ledger.runs(study=study)
            except UnknownStudyError:  # no run written under it (yet)
                pass
        return runs

    def _find_silent(self, ledger: Any, trials: list[Any], candidates: list[Any]) -> None:
        """Adopt the runs of trials that ended before their first result (a worker wrote them).

        Such a run is found among ``candidates`` (the sweep's study's runs) by its name, the
        trial's name, among the runs no other sweep has adopted and no trial of this one has (a
        ``trial_name_creator`` may give trials one name: ``f"lr={t.config['lr']}"`` with
        ``num_samples=2``).
        """
        silent: dict[str, list[Any]] = {}
        for t in trials:
            if t.trial_id not in self._trials:
                silent.setdefault(_trial_name(t), []).append(t)
        if not silent:
            return
        known = {s.run_id for s in self._trials.values()}
        for run in candidates:
            named = silent.get(run.name)
            adopted = run.parent_id not in (None, self._sweep.id)  # another sweep's (resumed)
            if not named or run.role != "trial" or adopted or run.id in known:
                continue
            # of trials sharing the name, the one whose config gave the run its params
            trial = next((t for t in named if _params(t.config) == run.params), named[-1])
            state = self._trials[trial.trial_id] = _TrialState(run.id)
            state.ended = self._silent_end(trial)
            if state.ended == "error":
                state.error = _error_text(trial)
            try:
                self._adopt(state)
            except GreenprintError as e:
                logger.warning("greenprint: could not adopt trial run %s: %s", run.id, e)

    def _silent_end(self, trial: Any) -> str | None:
        """How a trial whose results this driver never saw ended: ``"error"``, ``"complete"``.

        ``None``: this driver started it and Tune never said it ended, so it was still running
        when the experiment ended (``time_budget_s``, Ctrl-C: Tune then marks it ``TERMINATED``
        without calling :meth:`on_trial_complete`), and it is recorded ``interrupted``. A trial
        another driver ran (an experiment restored) keeps the status Tune restored.
        """
        if str(getattr(trial, "status", "")) == "ERROR":
            return "error"
        if trial.trial_id in self._started and trial.trial_id not in self._ended:
            return None
        return "complete"

    def _segments_before(self, earlier: _TrialState) -> None:
        """Make the run of a trial's earlier stretch a ``part`` of the sweep.

        A trial Tune pauses and resumes from its checkpoint (PBT's exploit, HyperBand's
        brackets) calls the function again: a run per stretch, each named as the trial. The
        trial is one configuration: the run that reports its last result is the trial, each
        earlier one a ``part`` of the sweep (its status and cost kept), not one more trial.
        """
        ledger = self._sweep.ledger
        if ledger is None:
            return
        self._paused.append(earlier.run_id)
        try:
            ledger.flush(earlier.run_id, fields={**self._link_fields(earlier), "role": "part"})
        except GreenprintError as e:
            logger.warning(
                "greenprint: could not record trial run %s's resumption: %s", earlier.run_id, e
            )

    def _end_paused(self, ledger: Any) -> None:
        """End ``interrupted`` the earlier stretches whose worker ended before their last write.

        Tune ends the worker of a trial it pauses (PBT, HyperBand): a run whose final write did
        not come (it read ``lost``) ends at its last heartbeat with its cost so far, a later
        run of the trial having resumed it.
        """
        for run_id in self._paused:
            try:
                current = ledger.run(run_id)
                if current.status in ("running", "lost"):
                    ledger.flush(
                        run_id,
                        fields=interrupted_at_heartbeat(
                            current,
                            "Ray Tune paused the trial and ended its worker before the run "
                            "ended; a later run of the trial resumed it",
                        ),
                    )
            except GreenprintError as e:
                logger.warning("greenprint: could not end trial run %s: %s", run_id, e)

    def _find_tails(self, ledger: Any, trials: list[Any], candidates: list[Any]) -> None:
        """Make the runs of trials' stretches that reported nothing ``part`` s of the sweep.

        A trial resumed from a checkpoint taken at its last step (PBT pauses it there to
        exploit) calls the function once more, which returns at once: a run named as the
        trial with no result, never adopted, beside the run that reported the trial's last
        result (the trial). Found by the trial's name among ``candidates`` (the sweep's study's
        runs, read before :meth:`_find_silent` adopted any: those it adopted are trials' runs
        now): the trial runs not adopted by another sweep, started since this one (less a
        worker's clock offset), that are no trial's run: trials may share a name (a
        ``trial_name_creator`` of ``f"lr={t.config['lr']}"`` with ``num_samples=2``), each its
        own trial.
        """
        names = {_trial_name(t) for t in trials if t.trial_id in self._trials}
        if not names:
            return
        known = {s.run_id for s in self._trials.values()}
        sweep = self._sweep
        since = sweep.record.started_at - _WORKER_CLOCK_S
        for run in candidates:
            if (
                run.name not in names
                or run.role != "trial"
                or run.parent_id not in (None, sweep.id)
                or run.started_at < since
                or run.id in known
            ):
                continue
            try:
                fields_ = {"parent_id": sweep.id, "role": "part", "study": sweep.study}
                ledger.flush(run.id, fields=fields_)
            except GreenprintError as e:
                logger.warning("greenprint: could not adopt trial run %s: %s", run.id, e)

    def _silent_attempt(self, ledger: Any, trial: Any) -> _TrialState | None:
        """The run of an attempt that failed before its first result, or ``None``.

        Found by the trial's name, as :meth:`_find_silent` finds a trial's, among the runs not
        known already (the latest if several).
        """
        name = _trial_name(trial)
        known = {s.run_id for s in self._trials.values()}
        try:
            runs = self._workers_runs(ledger)
        except GreenprintError as e:
            logger.warning("greenprint: could not look for a retried trial's run: %s", e)
            return None
        found = [
            run
            for run in runs
            if run.name == name
            and run.role == "trial"
            and run.parent_id in (None, self._sweep.id)
            and run.id not in known
        ]
        if not found:
            return None
        return _TrialState(max(found, key=lambda run: run.started_at).id)

    def _find_earlier(self, ledger: Any, trials: list[Any]) -> None:
        """Index the trial runs of the drivers this one resumes (``Tuner.restore``) by name.

        Those are the trial runs under the first sweep of this experiment (the one Tune's
        saved state names, or, where it names none, the latest of the same name in the study
        started before this one; with the sweeps that resumed it), and the trial runs of the
        study no sweep adopted (their driver ended first) started since that sweep. The sweep
        of this driver becomes a child of the first sweep once one of them is a run of this
        experiment's trials (``contained`` false: a later measurement, added to it). Nothing
        found, or a ledger that cannot say: as a new experiment (a debug log says so).
        """
        sweep = self._sweep
        since = sweep.record.started_at
        resume = self._resume
        try:
            tops = ledger.runs(study=sweep.study, parent_id=None)
            # the sweep Tune's saved state names, and no other: an earlier experiment of the
            # same name (the same script run again, trial names of its own making) is not
            # this one. Where the state names none (Tune's last snapshot came before the first
            # trial started: a driver killed before the next one), the latest sweep of this
            # name started before this one
            named = resume.restored_sweep
            roots = [
                r
                for r in tops
                if r.role == "sweep"
                and r.id != sweep.id
                and r.started_at <= since
                and (r.id == named if named is not None else r.name == sweep.name)
            ]
            roots = sorted(roots, key=lambda r: r.started_at)[-1:]
            # unadopted trial runs since the first sweep started, less a worker's clock offset
            first = min((r.started_at - _WORKER_CLOCK_S for r in roots), default=since)
            found: list[tuple[str | None, Any]] = [
                (None, r) for r in tops if r.role == "trial" and first <= r.started_at < since
            ]
            for root in roots:
                resume.sweeps.append(root)
                below = [root.id]
                while below:
                    for run in ledger.runs(study=sweep.study, parent_id=below.pop()):
                        if run.role == "sweep":
                            resume.sweeps.append(run)
                            below.append(run.id)
                        elif run.role == "trial":
                            found.append((root.id, run))
        except GreenprintError as e:
            logger.debug("greenprint: no earlier drivers' runs read for this experiment: %s", e)
            return
        resume.sweeps.sort(key=lambda run: run.started_at)
        for root_id, run in found:
            resume.earlier.setdefault(run.name, []).append((root_id, run))
        restored = {_trial_name(t) for t in trials}
        for key_names in resume.attempts.values():
            restored.update(key_names)
        root = resume.restored_sweep if any(r.id == resume.restored_sweep for r in roots) else None
        if root is None:
            root = next(
                (rid for name in restored for rid, _ in resume.earlier.get(name, ()) if rid),
                None,
            )
        if root is None:
            logger.debug(
                "greenprint: no earlier run of this experiment's trials in the ledger: "
                "recorded as a new experiment"
            )
            return
        resume.root = root
        try:
            ledger.flush(sweep.id, fields={"parent_id": root, "contained": False})
        except GreenprintError as e:
            logger.warning("greenprint: could not link the sweep to the one it resumes: %s", e)
        # an earlier driver's sweep with no final status: that driver died (killed, its machine
        # lost), as its running trial attempts did; it ends interrupted with its cost so far,
        # as they do (else it read 'lost' beside its own restored experiment)
        for earlier in resume.sweeps:
            if earlier.status not in ("running", "lost"):
                continue
            try:
                ledger.flush(
                    earlier.id,
                    fields=interrupted_at_heartbeat(
                        earlier,
                        "the experiment's driver ended before the experiment; "
                        "Tuner.restore resumed it",
                    ),
                )
            except GreenprintError as e:
                logger.warning("greenprint: could not end the sweep it resumes: %s", e)

    def _supersede(self, ledger: Any, trial: Any) -> None:
        """Make the earlier drivers' attempts of a trial that starts again parts of its sweep.

        A trial Tune runs again after ``Tuner.restore`` (an errored one with
        ``resume_errored``/``restart_errored``, one still running when the driver died) is
        one configuration: the attempt that ends it is the trial, each earlier one a ``part``
        (its status, error and cost kept; one that was running when its driver died ends
        ``interrupted``). An attempt no sweep adopted goes under the earlier sweep that was
        running when it started, else under this one as not contained.
        """
        resume = self._resume
        names = {_trial_name(trial), *resume.attempts.get(_attempt_key(trial), ())}
        for name in sorted(names):
            for _, run in resume.earlier.pop(name, ()):
                fields_: dict[str, Any] = {"role": "part"}
                if run.parent_id is None:
                    under = [s for s in resume.sweeps if s.started_at <= run.started_at]
                    if under:
                        fields_["parent_id"] = under[-1].id
                    else:
                        fields_.update(parent_id=self._sweep.id, contained=False)
                if run.status in ("running", "lost"):  # its driver ended: no final status
                    fields_.update(
                        interrupted_at_heartbeat(
                            run,
                            "the experiment's driver ended before the trial; "
                            "Tuner.restore ran it again",
                        )
                    )
                try:
                    ledger.flush(run.id, fields=fields_)
                except GreenprintError as e:
                    logger.warning(
                        "greenprint: could not record trial run %s's resumption: %s", run.id, e
                    )

    def _settle(self, ledger: Any) -> None:
        """Wait a little for workers still writing their final record (Tune does not wait)."""
        deadline = time.monotonic() + _SETTLE_S
        pending = [s.run_id for s in self._trials.values() if not s.relayed]
        while pending and time.monotonic() < deadline:
            try:
                pending = [r for r in pending if ledger.run(r).status == "running"]
            except GreenprintError:
                return
            if pending:
                time.sleep(0.1)


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
