"""Measure a run while it goes: ``gp.track()`` and :class:`Run`.

A run samples its meters on a background thread (every ``sample_interval_s``, 1 s by default), turns
energy into CO2-eq interval by interval (so an hourly intensity series is integrated, not averaged),
and flushes its cost so far, metrics and power samples to the ledger every ``flush_interval_s`` (10
s by default) together with a heartbeat, and once at its first sample (1 s in), so that a run killed
early has its cost and heartbeat in the ledger. A ``kill -9`` (the kernel's OOM killer, a node lost)
therefore loses at most one flush interval and one sample interval of cost, metrics and power
samples (a flush waits for the next sample: 11 s by default; the first sample interval, 1 s, for a
run killed before its first sample), and the ledger later reports the run as ``lost`` with the cost
of its last flush. A ledger that does not take a run's final record (a database another process
keeps locked) holds the end of the run :data:`~greenprint._run_persistence._FINAL_WRITE_S` and the
interpreter's exit :data:`~greenprint._run_persistence._EXIT_WRITE_S` at most (the runs still open
that the exit or SIGTERM ends share one ``_FINAL_WRITE_S``, whatever their number): the record is
written in the background when the ledger frees, else saved in a ledger file of its own at exit,
with a warning saying where and the ``greenprint ledger merge`` command that puts it back.

How a run ends:

* the ``with`` block (or decorated function) returns: ``finished`` (or ``pruned`` after
  :meth:`Run.prune`);
* an exception: ``failed``, with the error recorded, and the exception is re-raised; an exception
  class named ``TrialPruned`` (Optuna, Ray) gives ``pruned``;
* ``KeyboardInterrupt`` (SIGINT) or SIGTERM: ``interrupted``, with the cost so far. On SIGTERM the
  previous handler then runs (by default the process still terminates);
* a budget with ``on_exceed="stop"`` crossed (see :mod:`greenprint._budget`):
  :class:`~greenprint.BudgetExceeded` at the next ``run.log()``/``step()``, then
  ``interrupted`` with the reason, even if the exception is caught, never raised (a framework
  callback that stops training its own way after :meth:`Run.check_budgets`) or the limit
  crossed only in the run's last moments (the final sample is checked before the status);
* ``kill -9`` or power loss: the row stays ``running`` with a stale heartbeat and is reported as
  ``lost``, with the cost of the last flush.

Nesting: a run started inside another (same thread or task), or in a child process of one
(through ``GREENPRINT_PARENT_RUN``), records it as its parent. A parent's measurement contains its
children's, so totals must be summed over root runs only: :func:`greenprint.analysis.price_tag`
does so.

Measurement never raises into user code and never blocks it: meters are read on the sampler
thread without holding the lock that ``run.log()`` and the live figures take, each hardware read
has a deadline (0.4 s), and a meter that overruns it, raises, or returns NaN, infinite, negative or
decreasing energy is replaced by an estimate (the provenance says so); leaving ``with`` waits at
most about a second for the meters. A ledger that cannot be written is retried at the next
flush, and a ledger file deleted under the run is recreated with the whole run; only bad
configuration (an invalid PUE, an unknown region, a path that is not a ledger) raises, and it
does so when the run is created, before any user code runs (settings and arguments are checked
before the ledger is opened, so a refused run leaves no ledger file behind).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

from greenprint import _lineage
from greenprint._accounting import CostAccount
from greenprint._budget import Budget, OnExceed
from greenprint._exceptions import BudgetExceeded, ConfigError
from greenprint._jobs import JobInfo
from greenprint._lifecycle import registry, status_for
from greenprint._prediction import Predictor
from greenprint._records import MetricPoint, PowerSample
from greenprint._run_budgets import RunBudgets
from greenprint._run_lifecycle import RunLifecycle
from greenprint._run_lifecycle import _new_run_id as _new_run_id  # re-exported: tests use it
from greenprint._run_lineage import RunLineage
from greenprint._run_listeners import RunListeners
from greenprint._run_metrics import RunMetrics, _NeverStarted
from greenprint._run_options import _OPTIONS, checked
from greenprint._run_options import DEFAULT_FLUSH_INTERVAL_S as DEFAULT_FLUSH_INTERVAL_S
from greenprint._run_options import default_flush_interval_s as default_flush_interval_s
from greenprint._run_persistence import _UNSAVED as _UNSAVED  # re-exported: tests read it
from greenprint._run_persistence import RunPersistence
from greenprint._run_persistence import _write_unsaved as _write_unsaved  # re-exported
from greenprint._run_predictions import RunPredictions
from greenprint._run_provenance import RunProvenance
from greenprint._run_provenance import _process_key as _process_key  # re-exported
from greenprint._run_pruning import RunPruning
from greenprint._run_sampler import RunSampler
from greenprint._run_tree import RunNode
from greenprint._suggest import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._types import IntensityLike, LedgerLike, MeterSetLike, PUELike
    from greenprint.ledger import Ledger

__all__ = ["PARENT_ENV", "Run", "active_runs", "current_run", "track"]

#: The runs' logger: the modules of Run's concerns (listed in greenprint._run_state) log here too.
logger = logging.getLogger(__name__)


#: Environment variable through which a child process inherits its parent run (see _lineage).
PARENT_ENV = _lineage.PARENT_ENV


F = TypeVar("F", bound=Callable[..., Any])


@overload
def track(name: F, /) -> F: ...


@overload
def track(
    name: str | None = None,
    *,
    study: str | None = None,
    ledger: LedgerLike = None,
    region: str | None = None,
    intensity: IntensityLike = None,
    pue: PUELike = None,
    params: Mapping[str, Any] | None = None,
    dataset_size: int | None = None,
    parent: Run | str | None = None,
    scope: Literal["process", "machine"] | None = None,
    pid: int | None = None,
    command: str | None = None,
    sample_interval_s: float = 1.0,
    flush_interval_s: float | None = None,
    meters: MeterSetLike | None = None,
    budget_kwh: float | None = None,
    budget_kg: float | None = None,
    budget_fpo: float | None = None,
    budget_s: float | None = None,
    on_exceed: OnExceed = "warn",
    budget: Budget | Sequence[Budget] | None = None,
    role: str | None = None,
    node_meter: bool | None = None,
    **unknown: NoReturn,
) -> Run: ...


def track(
    name: str | Callable[..., Any] | None = None,
    *,
    study: str | None = None,
    ledger: LedgerLike = None,
    region: str | None = None,
    intensity: IntensityLike = None,
    pue: PUELike = None,
    params: Mapping[str, Any] | None = None,
    dataset_size: int | None = None,
    parent: Run | str | None = None,
    scope: Literal["process", "machine"] | None = None,
    pid: int | None = None,
    command: str | None = None,
    sample_interval_s: float = 1.0,
    flush_interval_s: float | None = None,
    meters: MeterSetLike | None = None,
    budget_kwh: float | None = None,
    budget_kg: float | None = None,
    budget_fpo: float | None = None,
    budget_s: float | None = None,
    on_exceed: OnExceed = "warn",
    budget: Budget | Sequence[Budget] | None = None,
    role: str | None = None,
    node_meter: bool | None = None,
    **unknown: NoReturn,
) -> Any:
    """Track a run's energy, CO2-eq, time and metrics into a ledger.

    Use it as a context manager (``with gp.track("name") as run:``) or a decorator
    (``@gp.track("name")``, ``@gp.track(study="s")`` or bare ``@gp.track``: each call of the
    function is a new run, named after the function unless a name is given). A decorated
    ``async def`` function's run spans the coroutine awaited, not the call that creates it; a
    generator function's (``def`` with ``yield``, or ``async def``) spans the iteration, from
    the first value asked for to its end or ``close()`` (the consumer's work between values
    included: the meters read the process over that time). A generator closed before its end,
    a loop left with ``break``, ends ``finished``: its consumer had what it asked for.

    Args:
        name: the run's name (default: the decorated function's qualified name, its
            ``<locals>`` left out: ``main.train``; else the script's).
        study: the study it belongs to (default: parent's, ``GREENPRINT_STUDY``, config,
            ``"default"``).
        ledger: a path, URL or :class:`~greenprint.Ledger`; ``None`` for the configured ledger
            (``./greenprint.db`` by default); ``False`` to keep the run in memory only.
        region: grid region code for the carbon intensity (e.g. ``"DE"``, ``"US-CA"``,
            ``"aws:eu-west-1"``).
        intensity: grid intensity in g CO2-eq/kWh, or a path to an hourly CSV
            (``timestamp,g_per_kwh``); give it or ``region``, not both (ConfigError).
        pue: data-centre power usage effectiveness (number in [1, 3] or preset name).
        params: hyper-parameters to record: a mapping, or a configuration object read as its
            fields (an ``argparse.Namespace``, a dataclass, an object with ``to_dict()`` or
            ``model_dump()``; likewise in :meth:`Run.set`).
        dataset_size: number of training examples.
        parent: the parent run (or its id); default: the enclosing run, else
            ``GREENPRINT_PARENT_RUN``.
        scope: ``"process"`` attributes energy to this process tree; ``"machine"`` records the
            whole machine's. Both are measured; the other is kept in ``machine_energy_kwh``.
            Default: ``"machine"`` for a node meter (see ``node_meter``), else ``"process"``.
        pid: root of the process tree to attribute (default: this process).
        command: command line to record (default: ``sys.argv``).
        sample_interval_s: seconds between meter reads.
        flush_interval_s: seconds between ledger writes (and heartbeats); at least
            ``sample_interval_s``. Default: 10, or ``sample_interval_s`` when that is longer.
        meters: a ready :class:`~greenprint.meters.MeterSet`, or any object with
            ``components``, ``provenance``, ``start()``, ``read()`` and ``close()`` (tests, fakes,
            your own meters: wrapped so that they get the same read deadline and checks);
            ``[]``: no energy meter (energy and CO2-eq unknown); default: detect. A list of
            names (``["rapl"]``) is refused.
        budget_kwh: an energy budget for this run in kWh (IT energy); crossing it sets
            :attr:`Run.over_budget` and does what ``on_exceed`` says.
        budget_kg: a CO2-eq budget for this run in kg, likewise.
        budget_fpo: a budget of floating-point operations (recorded with ``run.set(fpo=)`` or
            ``run.add_fpo``, by the run and the runs nested in it, counted as the report
            counts them: see :mod:`greenprint._run_tree`), likewise.
        budget_s: a wall-time budget in s, likewise.
        on_exceed: what crossing one of those four does: ``"warn"`` (one warning),
            ``"stop"`` (the warning, then :class:`~greenprint.BudgetExceeded` at the next
            ``run.log()``, ``step()``, ``progress()`` or ``add_fpo()``; the run ends
            ``interrupted`` with its cost), or a callable ``on_exceed(run, exceeded)``.
        budget: a :class:`~greenprint.Budget` or a list of them, for limits on the whole study
            (``per="study"``: its top-level runs' cost, read from the ledger) or with options of
            their own (see ``docs/budgets.md``).
        role: what the run is in its study: ``"trial"``, ``"part"`` (a fold, worker or
            sub-step of its parent), ``"baseline"``, ``"final"`` (the model reported),
            ``"learning-curve"`` or ``"sweep"`` (a container of trials); default ``None``:
            inferred when the study is analysed (see :func:`greenprint.analysis.resolve_roles`).
        node_meter: in a distributed job (torchrun, SLURM: see :mod:`greenprint._jobs`), whether
            this run meters its node (the whole machine, once for every rank on it); default
            ``None``: local rank 0 does, on a node the job has to itself, unless the run is
            nested in another on this host. ``True`` outside a job records the machine.
        **unknown: no other option is taken: one typed wrong is refused with the nearest
            name (a type checker flags it too).

    Returns:
        A :class:`Run`, not yet started; given a function (bare ``@gp.track``), that function
        tracked.

    Raises:
        ConfigError: an unknown option (the message names the nearest one: ``studdy=``,
            "did you mean 'study'?"), or an invalid argument or setting: PUE, intensity,
            region (or both an intensity and a region), scope, an interval or budget that
            is not a finite number in range (bools and text refused), a name, study or
            command that is not text, ``params`` that is not a mapping with string keys, a
            negative or non-integer ``dataset_size``, a ``parent`` that is neither a
            run nor a run id, a ``pid`` of no running process, or a bad ``cpu_tdp_w`` setting.
            A bad budget, ``on_exceed`` or ``budget``, or a study budget with
            ``ledger=False``. All are checked before the ledger is opened, so nothing is
            written then.
        LedgerError: the ledger path is not usable.
    """
    if unknown:  # typed as NoReturn: a type checker flags it; at run time, the nearest name
        raise ConfigError(
            f"unknown option(s) {sorted(unknown)} for a run{did_you_mean(unknown, _OPTIONS)}"
        )
    decorated = None
    if callable(name) and not isinstance(name, str):  # bare @gp.track (or gp.track(fn, ...))
        decorated, name = name, None
    run = Run(
        name,
        study=study,
        ledger=ledger,
        region=region,
        intensity=intensity,
        pue=pue,
        params=params,
        dataset_size=dataset_size,
        parent=parent,
        scope=scope,
        pid=pid,
        command=command,
        sample_interval_s=sample_interval_s,
        flush_interval_s=flush_interval_s,
        meters=meters,
        budget_kwh=budget_kwh,
        budget_kg=budget_kg,
        budget_fpo=budget_fpo,
        budget_s=budget_s,
        on_exceed=on_exceed,
        budget=budget,
        role=role,
        node_meter=node_meter,
    )
    return run if decorated is None else run(decorated)


def _tracked_iteration(run: Run, generator: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """``generator`` delegated to (values sent and thrown in included), within ``run``.

    The run starts at the first value asked for and ends with the iteration: ``finished`` at
    its end or at ``close()`` (a loop left with ``break``: the consumer had what it asked
    for), else as :func:`~greenprint._lifecycle.status_for` reads the exception.
    """
    run.start()
    try:
        result = yield from generator
    except GeneratorExit:
        run.stop(status="finished")
        raise
    except BaseException as e:
        run.stop(*status_for(e))
        raise
    run.stop(status="finished")
    return result


def _tracked_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]], name: str, options: dict[str, Any]
) -> Callable[..., AsyncGenerator[Any, Any]]:
    """``fn`` (an async generator function) with each iteration of its generators tracked.

    :func:`_tracked_iteration` for async generators (``asend``/``athrow`` delegated by hand:
    Python has no ``yield from`` there); the wrapper is an async generator function itself, as
    frameworks that inspect it expect.
    """

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        run = Run(name, **options).start()
        generator = fn(*args, **kwargs)
        try:
            value = await generator.__anext__()
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    await generator.aclose()
                    raise
                except BaseException as e:  # thrown in by athrow(): the generator's to handle
                    value = await generator.athrow(e)
                else:
                    value = await generator.asend(sent)
        except StopAsyncIteration:
            run.stop(status="finished")
        except GeneratorExit:
            run.stop(status="finished")
            raise
        except BaseException as e:
            run.stop(*status_for(e))
            raise

    return wrapper


class Run(
    RunLifecycle,
    RunPruning,
    RunMetrics,
    RunPredictions,
    RunBudgets,
    RunPersistence,
    RunSampler,
    RunLineage,
    RunProvenance,
    RunListeners,
):
    """One tracked run. Create it with :func:`track`; see the module docstring for its life.

    Live figures (``energy_kwh``, ``emissions_kg``, ``duration_s``...) can be read while the run
    goes and keep their final values after it ends. A run is started once.

    Its concerns are mixins, one module each (listed in :mod:`greenprint._run_state`); its
    arguments and settings are checked in :mod:`greenprint._run_options`, its parent here.
    """

    def __init__(self, name: str | None = None, **options: Any) -> None:
        # Every argument and setting is checked before the ledger is opened, so a bad one
        # leaves no ledger file behind (greenprint run inherits this): _run_options.checked
        settings = checked(name, options, run_class=Run)
        self._options = dict(options)
        self._scope_given = settings.scope_given
        self._intensity = settings.intensity
        self._pue = settings.pue
        #: the intensity, region and PUE given (or taken from the enclosing run), as text: what
        #: runs inside it take when given none (``_lineage.inherited_carbon``)
        self._carbon_given: dict[str, str] = settings.carbon_given
        # the ledger is checked now (nothing is created) and opened when the run starts, so
        # decorating a function at import time writes nothing
        self._ledger_location = settings.ledger_location
        self._ledger: Ledger | None = None
        self._study = settings.study
        self._explicit_name = name
        self.name = name or _default_name()
        self._scope: str = settings.scope
        self._sample_s = settings.sample_s
        self._flush_s = settings.flush_s
        self._params: dict[str, Any] = settings.params
        self._dataset_size: int | None = settings.dataset_size
        self._role: str | None = settings.role
        self._fpo: int | None = None
        #: ops the FPO recorded from count results could not count in full (a lower bound)
        self._fpo_unknown_ops: dict[str, int] = {}
        self._fpo_complex_ops: dict[str, int] = {}
        #: what the FPO recorded from count results assumed (FPOResult.assumptions, merged)
        self._fpo_assumptions: dict[str, str] = {}
        self._param_count: int | None = None
        self._lock = threading.RLock()  # guards the run's state; never held around a meter read
        self._sample_lock = threading.Lock()  # one meter read at a time (sampler thread, stop())
        # held while the run runs; the sampler waits on it between ticks and stop() releases it
        # (a timed lock acquire is one call per tick, cheaper than Event.wait's Condition)
        self._stop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: Literal["new", "running", "stopped"] = "new"
        # said at exit (or when the run is collected) if values were logged to it and it was
        # never started: nothing of it reaches the ledger (run = gp.track(...) without with)
        self._unstarted: _NeverStarted | None = None
        self._pid = 0  # the process that started it (0: not started)
        self._child_said = False  # a forked child's copy said it could not write (once)
        self._status = "new"
        self._prune_requested = False
        self._pruned_notes: dict[str, str] = {}  # where and why it was pruned (prune(step=...))
        self._guard = settings.guard  # its study is the run's
        self._stop_owned = False  # check_budgets() was called: the caller stops, nothing raises
        self._predictor: Predictor | None = None
        self._total_steps: int | None = None
        self._steps = 0
        self._logged_fraction = 0.0  # progress at the last prediction logged as metrics
        self._live_t = 0.0  # account time and figures at an earlier sample, for the live rate
        self._live_cost = (0.0, 0.0)
        self._live_rate = (0.0, 0.0)  # kWh/s, kg/s over the last samples
        self._study_read_at = 0.0
        self._study_read_every_s = self._flush_s  # longer when reading the study is slow
        self._error: str | None = None
        self.id = ""
        self.parent_id: str | None = None
        self._meters: Any = None
        self._account: CostAccount | None = None
        self._started_at = 0.0
        self._ended_at: float | None = None
        self._metrics: list[MetricPoint] = []
        self._pending_metrics: list[MetricPoint] = []
        self._pending_samples: list[PowerSample] = []
        self._pending_fields: dict[str, Any] = {}
        # whether the ledger took the run's final record (else kept by _keep_unsaved), and the
        # last write's error
        self._final_written = False
        self._write_error: str | None = None
        # whether the run has ended here (its last step done): its shared ledger may be closed
        # once it took everything (RunPersistence._needs_ledger)
        self._ledger_done = False
        # one flush at a time (the sampler's, the final one): the later writes the later state
        self._flush_lock = threading.Lock()
        # what flushes in progress took out of the pending lists (thread id -> fields, metrics,
        # samples): a run saved apart while one is blocked on the ledger keeps them
        self._in_flight: dict[int, tuple[dict[str, Any], list[MetricPoint], list[PowerSample]]]
        self._in_flight = {}
        self._writer: threading.Thread | None = None  # the thread of _write_final
        self._write_result: bool | None = None  # its outcome (None: none yet)
        self._provenance: dict[str, str] = {}
        self._measured_process: str | None = None  # its provenance "process" (_process_key)
        self._environment: Any = None
        self._hardware: dict[str, Any] = {}
        self._saved_env: dict[str, str | None] = {}
        self._ctx_token: contextvars.Token[tuple[Any, ...]] | None = None
        self._listeners: list[Callable[[Run, str], None]] = []
        # (listener, kind of error, event) logged with a traceback already, and each listener's
        # failures in all: the same failure again goes to the debug log (not one per flush)
        self._listener_said: set[tuple[int, str, str]] = set()
        self._listener_failures: dict[int, int] = {}
        self._host = ""
        self._contained: bool | None = None
        self._parent_here = False  # the parent is a run of this process (nested: contained)
        self._parent_run: Run | None = None  # that parent, when it is known as a Run here
        self._node: RunNode | None = None  # its FPO with its children's (budgets), once started
        self._guarded_up: tuple[Run, ...] = ()  # the runs it is nested in here that have budgets
        self._outer_stop: BudgetExceeded | None = None  # theirs, raised or returned here
        self._job = JobInfo()
        # why the run's deleted ledger could not be made again, as last said (each flush tries
        # again: a reason is said once, not at every flush; ten a second with a 0.1 s flush)
        self._gone_said: str | None = None

    # ------------------------------------------------------------------ decorator
    def __call__(self, fn: F) -> F:
        """Use the run as a decorator: every call of ``fn`` is tracked as a new run.

        A coroutine function's run spans the coroutine awaited; a generator function's (sync or
        async) spans its iteration (see :func:`track`).
        """
        # a nested function's qualified name without its '<locals>' ('main.train')
        name = self._explicit_name or ".".join(
            part for part in fn.__qualname__.split(".") if part != "<locals>"
        )
        options = self._options
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(fn):

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                with Run(name, **options):
                    return await fn(*args, **kwargs)

        elif inspect.isasyncgenfunction(fn):
            wrapper = _tracked_async_generator(fn, name, options)
        elif inspect.isgeneratorfunction(fn):

            def wrapper(*args: Any, **kwargs: Any) -> Any:  # a generator function, as fn is
                return (yield from _tracked_iteration(Run(name, **options), fn(*args, **kwargs)))

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with Run(name, **options):
                    return fn(*args, **kwargs)

        return functools.wraps(fn)(wrapper)  # type: ignore[return-value]

    # ------------------------------------------------------------------ internals
    def _move_to_study(self, study: str) -> None:
        """Move this started run into ``study``: its ledger row, then what the run keeps of it.

        For an integration whose container learns its study only after it started (Ray Tune's
        sweep, once its trials' study is known). The run's study budget, if any, is then
        checked against ``study``'s spending, read at once. Raises
        :class:`~greenprint.GreenprintError` when the ledger cannot be written (the run keeps
        its study).
        """
        if self._ledger is not None and self.id:
            self._ledger.flush(self.id, fields={"study": study})
        self._study = study
        if self._guard is not None:
            self._guard.study = study
            if self._guard.needs_study:
                self._read_study_cost()  # the new study's spending, not the old one's

    def _resolve_parent(self) -> str | None:
        """The parent given, else the enclosing run (in a worker thread, the main thread's).

        A run of this process as parent (given, or enclosing) sets ``_parent_here``.
        """
        parent = self._options.get("parent")
        self._parent_here = isinstance(parent, Run)
        if isinstance(parent, Run):
            self._parent_run = parent
            return parent.id or None
        if isinstance(parent, str) and parent:
            return parent
        enclosing = _lineage.enclosing()
        if enclosing is not None:
            self._parent_here = True
            self._parent_run = enclosing if isinstance(enclosing, Run) else None
            return str(enclosing.id)
        return _lineage.inherited_parent()


def current_run() -> Run | None:
    """The innermost run being measured here (this thread or asyncio task), or ``None``.

    How a function decorated with ``@gp.track`` reaches its run::

        @gp.track(study="sweep")
        def train(lr):
            ...
            gp.current_run().log(accuracy=0.93)

    A run stopped from elsewhere (another thread) is skipped: the one around it, if any, is
    returned. A worker thread with no run of its own gets ``None`` (its runs nest in the main
    thread's, but it does not log into them by accident).
    """
    run = _lineage.innermost()
    if isinstance(run, Run):
        return run
    _say_run_elsewhere()
    return None


#: Whether :func:`current_run` said, in this process, that its enclosing run is another's.
_elsewhere_said = False


def _say_run_elsewhere() -> None:
    """Say once why :func:`current_run` is ``None`` in a process run inside another's run.

    A script under ``greenprint run`` inherits the command's run, measured by that process:
    ``gp.current_run().log(...)`` failed on ``None`` (or, guarded, lost the score unsaid).
    """
    global _elsewhere_said
    parent = _lineage.inherited_parent()
    if _elsewhere_said or parent is None or any(True for _ in active_runs()):
        return
    _elsewhere_said = True
    logger.warning(
        "greenprint: gp.current_run() is None: this process runs inside run %s (greenprint "
        "run's, or its parent process's), which another process measures and records. Log a "
        'score in a run of this process: `with gp.track("fit") as run: run.log(accuracy=...)` '
        'nests in that run, as a part (docs/cli.md, "The command\'s score")',
        parent[:8],
    )


def active_runs() -> Iterator[Run]:
    """The runs currently being measured in this process, outermost first.

    A forked child (a ``multiprocessing`` worker) lists only the runs it started: its parent's
    are the parent's, measured and written there (the child reads them from the ledger).
    """
    return iter([run for run in registry.active() if isinstance(run, Run)])


def _default_name() -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script if script and script not in ("-c", "-m") else "run"
