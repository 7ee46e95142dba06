"""What a run holds, and the figures read from it: :class:`RunState`.

:class:`greenprint.tracking.Run` is this state with one mixin per concern, each in a module of
its own, and each a :class:`RunState`:

* :mod:`greenprint._run_lifecycle`: start and stop (``with``, ``start()``, ``stop()``);
* :mod:`greenprint._run_sampler`: the sampler thread, which reads the meters and flushes;
* :mod:`greenprint._run_metrics`: what the user records (``log``, ``set``, ``add_fpo``);
* :mod:`greenprint._run_predictions`: progress and the predicted totals;
* :mod:`greenprint._run_budgets`: budgets, checked and acted on;
* :mod:`greenprint._run_persistence`: ledger writes, the runs kept unsaved, saved apart at exit;
* :mod:`greenprint._run_lineage`: the parent, the job, what child processes inherit;
* :mod:`greenprint._run_provenance`: where each figure comes from;
* :mod:`greenprint._run_listeners`: the listeners called at each flush and at the end;
* :mod:`greenprint._run_pruning`: ``prune()``, and where and by what the run was stopped.

:class:`RunState` declares the attributes ``Run.__init__`` sets (for the type checker: nothing
is set here) and, under ``TYPE_CHECKING``, the methods one concern calls on another (each
defined by the mixin that owns it); it holds the live figures and the record, which every
concern reads. None of these modules imports :mod:`greenprint.tracking`: a run they name is
``Self`` (the :class:`~greenprint.tracking.Run` at run time).
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from greenprint._accounting import CostAccount
from greenprint._budget import BudgetEvent, BudgetGuard, Spent
from greenprint._exceptions import BudgetExceeded
from greenprint._jobs import JobInfo
from greenprint._prediction import Predictor
from greenprint._records import MetricPoint, PowerSample, RunRecord
from greenprint._run_tree import RunNode
from greenprint._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

    from greenprint.carbon import PUE, Intensity
    from greenprint.ledger import Ledger

__all__ = ["RunState"]


class RunState:
    """A run's state (set by ``Run.__init__``), its live figures and its record."""

    # what it was given, resolved (Run.__init__)
    _options: dict[str, Any]
    _scope_given: bool
    _intensity: Intensity
    _pue: PUE
    _carbon_given: dict[str, str]
    _ledger_location: Ledger | str | os.PathLike[str] | None
    _ledger: Ledger | None
    _study: str
    _explicit_name: str | None
    name: str
    _scope: str
    _sample_s: float
    _flush_s: float
    # what the user recorded
    _params: dict[str, Any]
    _dataset_size: int | None
    _role: str | None
    _fpo: int | None
    _fpo_unknown_ops: dict[str, int]
    _fpo_complex_ops: dict[str, int]
    _fpo_assumptions: dict[str, str]
    _param_count: int | None
    _metrics: list[MetricPoint]
    # its life
    _lock: threading.RLock
    _sample_lock: threading.Lock
    _stop_lock: threading.Lock
    _thread: threading.Thread | None
    _state: Literal["new", "running", "stopped"]
    _pid: int
    _child_said: bool
    _status: str
    _prune_requested: bool
    _pruned_notes: dict[str, str]
    _error: str | None
    id: str
    parent_id: str | None
    _meters: Any
    _account: CostAccount | None
    _started_at: float
    _ended_at: float | None
    # budgets and predictions
    _guard: BudgetGuard | None
    _stop_owned: bool
    _predictor: Predictor | None
    _total_steps: int | None
    _steps: int
    _logged_fraction: float
    _live_t: float
    _live_cost: tuple[float, float]
    _live_rate: tuple[float, float]
    _study_read_at: float
    _study_read_every_s: float
    # ledger writes
    _pending_metrics: list[MetricPoint]
    _pending_samples: list[PowerSample]
    _pending_fields: dict[str, Any]
    _final_written: bool
    _ledger_done: bool
    _write_error: str | None
    _flush_lock: threading.Lock
    _in_flight: dict[int, tuple[dict[str, Any], list[MetricPoint], list[PowerSample]]]
    _writer: threading.Thread | None
    _write_result: bool | None
    _gone_said: str | None
    # where it runs, its provenance, its place among runs
    _provenance: dict[str, str]
    _measured_process: str | None
    _environment: Any
    _hardware: dict[str, Any]
    _saved_env: dict[str, str | None]
    _ctx_token: contextvars.Token[tuple[Any, ...]] | None
    _listeners: list[Callable[[Self, str], None]]
    _listener_said: set[tuple[int, str, str]]
    _listener_failures: dict[int, int]
    _host: str
    _contained: bool | None
    _parent_here: bool
    _parent_run: Self | None
    _node: RunNode | None
    _guarded_up: tuple[Self, ...]
    _outer_stop: BudgetExceeded | None
    _job: JobInfo

    @property
    def status(self) -> str:
        """``"new"`` before start, ``"running"``, then the final status."""
        return self._status

    @property
    def study(self) -> str:
        """The study this run belongs to."""
        return self._study

    @property
    def duration_s(self) -> float:
        """Wall time in seconds so far (final once stopped)."""
        if not self._started_at:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.time()
        return max(end - self._started_at, 0.0)

    @property
    def energy_by_component(self) -> dict[str, float]:
        """IT energy in kWh per measured component (``"cpu"``, ``"gpu"``, ``"ram"``)."""
        with self._lock:
            return self._account.energy_by_component if self._account else {}

    @property
    def energy_kwh(self) -> float:
        """IT energy in kWh (before PUE), attributed per ``scope``.

        0.0 for a run with no energy meter (``meters=[]``): unknown, not 0 kWh;
        :attr:`energy_recorded` tells them apart.
        """
        with self._lock:
            return self._account.energy_kwh if self._account else 0.0

    @property
    def energy_recorded(self) -> bool:
        """Whether the run measures its energy: ``False`` once started with ``meters=[]``.

        As :attr:`RunRecord.energy_recorded <greenprint.RunRecord.energy_recorded>` reads the
        stored run: with no meter, :attr:`energy_kwh` and :attr:`emissions_kg` read 0.0 but
        are unknown, and reports, exports and trackers say "unknown", never "0 mWh".
        """
        return not self._unmetered

    @property
    def emissions_kg(self) -> float:
        """CO2-eq in kg: energy x PUE x grid intensity, integrated interval by interval."""
        with self._lock:
            return self._account.emissions_kg if self._account else 0.0

    @property
    def fpo(self) -> int | None:
        """Floating-point operations recorded with :meth:`set` or :meth:`add_fpo`, or ``None``."""
        return self._fpo

    @property
    def role(self) -> str | None:
        """The run's role in its study as given (``None``: to be inferred when analysed)."""
        return self._role

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters recorded so far."""
        return dict(self._params)

    @property
    def metrics(self) -> list[MetricPoint]:
        """Every metric value logged so far."""
        with self._lock:
            return list(self._metrics)

    @property
    def provenance(self) -> dict[str, str]:
        """Where each figure comes from: meters per component, intensity, PUE, scope."""
        with self._lock:
            return dict(self._provenance)

    @property
    def intensity_g_per_kwh(self) -> float:
        """The grid intensity in g CO2-eq/kWh (representative value for a series)."""
        return self._intensity.g_per_kwh

    @property
    def pue(self) -> float:
        """The power usage effectiveness applied."""
        return self._pue.value

    @property
    def record(self) -> RunRecord:
        """A snapshot of the run as the ledger stores it.

        While the run is running, its ``duration_s`` is the time up to its last meter sample, the
        time its energy covers (as a flush writes it), not the time so far of :attr:`duration_s`.
        """
        with self._lock:
            return replace(self._base_record(), **self._cost_fields(), metrics=tuple(self._metrics))

    def __repr__(self) -> str:
        """One line: name, study, status, cost so far once started, id.

        As a REPL or a log prints it: ``<Run 'resnet' study='cifar' finished 1.2 Wh,
        0.58 g CO2-eq, 12 s, id 1a2b3c4d>``.
        """
        from greenprint._format import format_duration, format_emissions, format_energy

        head = f"<Run {self.name!r} study={self._study!r} {self._status}"
        if self._status != "new":
            cost = f"{format_energy(self.energy_kwh)}, {format_emissions(self.emissions_kg)}"
            if self._unmetered:  # meters=[]: its energy is unknown, never "0 mWh"
                cost = "energy and CO2-eq unknown (no energy meter)"
            elif self._unsampled:  # a notebook cell that ends at run.start(): not 0 mWh
                cost = "energy and CO2-eq not sampled yet"
            head += f" {cost}, {format_duration(self.duration_s)}"
        if self.id:
            head += f", id {self.id[:8]}"
        return head + ">"

    @property
    def _unmetered(self) -> bool:
        """Whether the run was started with no energy meter (``meters=[]``): no energy known.

        Its meter set has no component; a metered run before its first sample has them.
        """
        return self._meters is not None and not getattr(self._meters, "components", True)

    @property
    def _unsampled(self) -> bool:
        """Whether the run is running and its meters have not been read since its start."""
        account = self._account
        return self._status == "running" and (account is None or account.last_t <= account.t0)

    def _repr_html_(self) -> str:
        """The run's figures as an HTML table, for notebooks (every name escaped)."""
        from greenprint._reprs import run_html

        return run_html(self)

    @property
    def _last_sample_t(self) -> float:
        return self._account.last_t if self._account is not None else 0.0

    def _base_record(self) -> RunRecord:
        env = self._environment
        return RunRecord(
            id=self.id,
            name=self.name,
            study=self._study,
            parent_id=self.parent_id,
            status=self._status,
            started_at=self._started_at,
            ended_at=self._ended_at,
            heartbeat_at=self._last_sample_t,
            flush_interval_s=self._flush_s,
            host=env.host if env else self._host,
            command=env.command if env else (self._options.get("command") or ""),
            git_commit=env.git_commit if env else None,
            git_dirty=env.git_dirty if env else None,
            python_version=env.python_version if env else sys.version.split()[0],
            greenprint_version=__version__,
            torch_version=env.torch_version if env else None,
            hardware=self._hardware,
            env=env.env if env else {},
            params=dict(self._params),
            dataset_size=self._dataset_size,
            fpo=self._fpo,
            param_count=self._param_count,
            role=self._role,
            scope=self._scope,
            pue=self._pue.value,
            intensity_g_per_kwh=self._intensity.g_per_kwh,
            intensity_source=self._intensity.source,
            provenance=dict(self._provenance),
            error=self._error,
            job_id=self._job.job_id,
            node_rank=self._job.node_rank,
            local_rank=self._job.local_rank,
            node_meter=self._job.node_meter if self._job.job_id or self._job.node_meter else None,
            contained=self._contained,
        )

    def _cost_fields(self) -> dict[str, Any]:
        fields = self._account.fields() if self._account is not None else {}
        if self._ended_at is None and self._started_at and self._last_sample_t:
            # a live run's cost as of its last meter sample, which its energy covers: a flush
            # that comes later (a busy machine, a budget check) must not add time without
            # energy; a run killed before its end keeps that consistent pair
            fields["duration_s"] = max(self._last_sample_t - self._started_at, 0.0)
        else:
            fields["duration_s"] = self.duration_s
        fields["heartbeat_at"] = self._last_sample_t
        fields["provenance"] = dict(self._provenance)
        fields["status"] = self._status
        return fields

    if TYPE_CHECKING:  # pragma: no cover - what one concern calls on another, defined there
        # _run_lifecycle
        def stop(self, status: str = "finished", error: str | None = None) -> None: ...

        # _run_sampler
        def _loop(self) -> None: ...
        def _sample(self, *, wait_s: float | None = None) -> None: ...
        def _collect_environment(self) -> None: ...

        # _run_budgets
        def _check_budgets(self) -> None: ...
        def _enforce_budgets(self) -> None: ...
        def _final_budget_check(self) -> None: ...
        def _final_status(self, status: str, error: str | None) -> tuple[str, str | None]: ...
        def _spent(self) -> Spent: ...
        def _live_roots(self) -> Spent: ...
        def _read_study_cost(self) -> None: ...
        def _act_on_budgets(self, events: list[BudgetEvent]) -> None: ...

        # _run_predictions
        def _record_prediction_error(self, status: str) -> None: ...

        # _run_persistence
        def _flush(self, *, quiet: bool = False) -> bool: ...
        def _write_late(self) -> None: ...
        def _write_final(self, wait_s: float, *, quiet: bool = False) -> bool | None: ...
        def _spill(self) -> None: ...
        def _needs_ledger(self) -> bool: ...

        # _run_lineage (and greenprint.tracking.Run: _resolve_parent)
        def _resolve_parent(self) -> str | None: ...
        def _join_job(self) -> None: ...
        def _continue_restarted(self) -> None: ...
        def _measures_process(self) -> bool: ...
        def _export_env(self) -> None: ...
        def _release(self) -> None: ...

        # _run_provenance
        def _meter_sources(self) -> dict[str, str]: ...
        def _build_provenance(self) -> dict[str, str]: ...
        def _note_fpo_bound(self) -> None: ...

        # _run_listeners
        def _notify(self, event: str) -> None: ...
