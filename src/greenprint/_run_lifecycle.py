"""A run's start and end: :class:`RunLifecycle` (``with``, ``start()``, ``stop()``).

Starting opens the ledger, resolves the parent and the job, starts the meters, writes the
run's first record and starts the sampler thread (:mod:`greenprint._run_sampler`); ending
stops the sampler, takes a final sample, checks the budgets once more, decides the status and
writes the final record, waiting :data:`~greenprint._run_persistence._FINAL_WRITE_S` at most
(:mod:`greenprint._run_persistence`). A ``SIGINT`` or ``SIGTERM`` half-way through either is
held until it is done (:func:`greenprint._interrupts.interrupts_held`), so that a run is never
left written ``running`` by its own start or end. See :mod:`greenprint.tracking` for how a
run ends; :mod:`greenprint._lifecycle` holds the process's registry of live runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from greenprint import _lineage, _run_persistence
from greenprint._accounting import CostAccount
from greenprint._exceptions import ConfigError, GreenprintError
from greenprint._interrupts import interrupts_held
from greenprint._lifecycle import registry, status_for
from greenprint._liveness import writer_identity
from greenprint._notebook_cells import Cell, cell_of_caller, is_rerun
from greenprint._run_fallback import (
    attempted,
    can_fall_back,
    counted,
    fallback_ledger,
    held,
    is_fallback,
    written_to,
)
from greenprint._run_metrics import _NeverStarted
from greenprint._run_persistence import (
    _forget_unsaved,
    _keep_unsaved,
    _open_ledger,
    _write_unsaved,
)
from greenprint._run_provenance import _process_key
from greenprint._run_state import RunState
from greenprint._run_tree import RunNode

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

    from greenprint.ledger import Ledger

__all__ = ["RunLifecycle"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


def _new_run_id() -> str:
    """A random UUID (version 4) as 32 hex digits: ``uuid.uuid4().hex`` without importing uuid.

    ``uuid`` imports ``platform``: 1.7 ms of CPU, a few per cent of a run's first start.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


#: Longest wait, in s, for the sampler thread when a run stops (a meter read in progress returns
#: within the meters' own deadline, 0.4 s), so that leaving ``with`` takes about a second at most.
_SAMPLER_JOIN_S = 0.6


class RunLifecycle(RunState):
    """Start and stop a run; a run is started once."""

    _unstarted: _NeverStarted | None  # (_run_metrics) marked started here
    #: The notebook cell and line that started the run (None outside IPython).
    _cell: Cell | None = None

    def __enter__(self) -> Self:
        new = self._state == "new"
        try:
            return self.start()
        except BaseException as exc:
            # a signal's handler as start() returned (the interpreter checks after each call):
            # the with statement never runs __exit__, so the run ends here
            if new and self._state == "running":
                self.stop(*status_for(exc))
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        # as stop(), with the status read from exc inside the hold: a signal's handler at the
        # call of a function before the hold took came out of __exit__, the run never ended
        try:
            held = interrupts_held()
            held.__enter__()
        except BaseException as interrupt:
            self._stop(*status_for(interrupt))
            raise
        try:
            self._stop(*status_for(exc))
        finally:
            held.__exit__()
        held.deliver()
        return False

    def start(self) -> Self:
        """Start measuring. Returns the run itself.

        Raises:
            GreenprintError: the run was already started.
            LedgerError: the ledger refused the new run.
        """
        begun = False
        if self._state == "new":
            self._cell = cell_of_caller()
            self._end_replaced()
        try:
            with self._lock:
                if self._state != "new":
                    raise GreenprintError(
                        "a Run can be started only once; call gp.track(...) again for a new run"
                    )
                if self._unstarted is not None:
                    self._unstarted.started = True
                # Ctrl-C or SIGTERM half-way through left a run written 'running' (read
                # 'lost'), current for every later run
                with interrupts_held() as held:
                    self._begin()
                    begun = True
            held.deliver()  # KeyboardInterrupt now: the run has started, and ends interrupted
        except BaseException as exc:
            # a held signal delivered, or one whose handler ran after the hold (the interpreter
            # checks after each call: the lock's release, the hold's end)
            if begun and self._state == "running":
                self.stop(*status_for(exc))
            raise
        return self

    def _end_replaced(self) -> None:
        """End the open run this one replaces: its notebook cell run again before its stop().

        ``run = gp.track("fit"); run.start()`` run twice rebinds ``run``; the first run, left
        open, would be measuring still and the new run's parent. It ends ``interrupted``.
        """
        old = _lineage.innermost()
        while (
            isinstance(old, RunLifecycle)
            and old._state == "running"
            and (old.name, old._study) == (self.name, self._study)
            and is_rerun(self._cell, old._cell)
        ):
            logger.warning(
                "greenprint: run %r (%s) ends 'interrupted': its notebook cell was run again "
                "before run.stop(); the new run replaces it",
                old.name,
                old.id[:8],
            )
            old.stop("interrupted", "its notebook cell was run again before run.stop()")
            old = _lineage.innermost()

    def stop(self, status: str = "finished", error: str | None = None) -> None:
        """Stop measuring and write the final record. Calling it again does nothing.

        Args:
            status: ``"finished"``, ``"failed"``, ``"interrupted"`` or ``"pruned"``.
                ``"finished"`` becomes ``"pruned"`` after :meth:`prune`. The budgets are
                checked once more first (after the final sample): a ``"stop"`` budget crossed,
                now or before, makes ``"finished"`` and ``"pruned"`` end ``"interrupted"`` with
                ``"BudgetExceeded: <reason>"`` as the error.
            error: what went wrong, for failed and interrupted runs.
        """
        if status not in ("finished", "failed", "interrupted", "pruned"):
            raise ConfigError(f"unknown final status {status!r}")
        # Ctrl-C or SIGTERM half-way through left the run 'running' (read 'lost') and current
        try:
            held = interrupts_held()
            held.__enter__()
        except BaseException as exc:
            # the signal's handler ran before the hold took (its KeyboardInterrupt, a handler's
            # SystemExit): the run still ends, as that says, and the exception goes on
            self._stop(*status_for(exc))
            raise
        try:
            self._stop(status, error)
        finally:
            held.__exit__()
        held.deliver()

    def _stop(self, status: str, error: str | None) -> None:
        """:meth:`stop`'s work (SIGINT held)."""
        with self._lock:
            if self._state != "running":
                return
            self._state = "stopped"
        if self._pid != os.getpid():  # a forked child: the run is its parent's, still live
            self._release()
            return
        if self._stop_lock.locked():
            self._stop_lock.release()  # wakes the sampler, which then ends
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # a read in progress returns within the meters' deadline; never wait much longer
            thread.join(_SAMPLER_JOIN_S)
            if thread.is_alive():
                logger.warning(
                    "greenprint: run %s's sampler did not stop within %.1f s; leaving it behind",
                    self.id[:8],
                    _SAMPLER_JOIN_S,
                )
        try:
            self._sample(wait_s=_SAMPLER_JOIN_S)
        except Exception:  # accounting must not raise into user code either
            logger.exception("greenprint: the final sample of run %s failed", self.id[:8])
        if self._guard is not None:  # a limit crossed since the last check, before the status
            self._final_budget_check()
        status, error = self._final_status(status, error)
        if self._environment is None:  # a run shorter than one sample interval
            # after the final sample: greenprint's own git call is not the run's cost
            try:
                self._collect_environment()
            except Exception:  # never raise into user code for a missing host name or git
                logger.exception("greenprint: could not record run %s's environment", self.id[:8])
        with self._lock:
            self._ended_at = self._last_sample_t
            self._status = status
            self._error = error
            self._pending_fields.update(status=status, ended_at=self._ended_at, error=error)
            self._record_prediction_error(status)
        # on a thread of its own, waited for _FINAL_WRITE_S at most: a database another process
        # keeps locked never holds the user's code (written when it frees, else saved apart);
        # the runs the process's end stops (at exit, SIGTERM) share one such wait; read from
        # its one binding when the run ends (a patch of it holds for every wait of the run)
        wait_s = _run_persistence._FINAL_WRITE_S
        left_s = registry.ending_wait_left(wait_s)
        written = self._write_final(wait_s if left_s is None else left_s)
        if written is None:
            where = getattr(self._ledger, "path", None) or getattr(self._ledger, "url", "")
            within = f"within {wait_s:g} s"
            if left_s is not None:
                within = f"within the {wait_s:g} s shared by the runs ended with the process"
            with self._lock:
                if self._write_error is None:
                    self._write_error = f"no answer {within}: locked by another process?"
            logger.warning(
                "greenprint: run %s: ledger %s did not take its final record %s "
                "(another process holding a write lock?); written when it frees, else saved "
                "apart at exit",
                self.id[:8],
                where,
                within,
            )
        if written is not True:  # a full disk, a locked database: tried again, then kept apart
            _keep_unsaved(self)
            if self._final_written:  # written meanwhile (said so: _forget_unsaved)
                _forget_unsaved(self)
        if self._node is not None:  # its FPO with its children's goes to its parent's figure
            node = self._node
            record = self.record if node.collecting() else None
            node.end(self._ledger, record)
        if self._meters is not None:
            try:
                self._meters.close()
            except Exception:  # a meter set of the user's own: its close must not raise here
                logger.exception("greenprint: closing run %s's meters failed", self.id[:8])
        self._release()
        self._notify("stop")
        # done with its ledger once it took everything (a shared one may be closed then)
        self._ledger_done = True

    def _start_in_ledger(self, ledger: Ledger) -> None:
        """Write the run's first record into ``ledger``, or into its fallback.

        A ledger this process wrote a run to that refuses it now (a full disk, a server
        stopped, a file replaced) is a failure of the measurement: the run is made in the
        ledger's fallback file instead (:mod:`greenprint._run_fallback`), never an error in the
        user's code. If the fallback file cannot take it either (a full disk that the temporary
        folder is on too), the run goes on, kept in memory: each flush tries to write it into
        ``ledger`` again, and at the interpreter's exit it is saved apart as a run its ledger
        refused (:mod:`greenprint._run_persistence`). Any other ledger's error is raised.
        """
        try:
            attempted(ledger, lambda: ledger.start_run(self._base_record()))
            if is_fallback(ledger):  # made there by _begin, or a part of a run made there
                counted(ledger)
        except GreenprintError as e:
            if not can_fall_back(ledger):
                raise
            try:
                fallback = fallback_ledger(ledger, self, e)
                fallback.start_run(self._base_record())
                counted(fallback)
            except GreenprintError as again:  # said by fallback_ledger, or here
                held(ledger, e, again)
                with self._lock:
                    self._row_missing = True
                    self._write_error = str(e)
                return
            ledger = self._ledger = fallback
        written_to(ledger)

    def _begin(self) -> None:
        from greenprint.hardware import detect_hardware

        if self._ledger is None and self._ledger_location is not None:
            location = self._ledger_location
            try:  # before anything starts
                self._ledger = attempted(
                    location, lambda: _open_ledger(location, self), retry=False
                )
            except GreenprintError as e:  # one this process wrote to, failing: its fallback
                self._ledger = fallback_ledger(self._ledger_location, self, e)
        self.id = _new_run_id()
        self.parent_id = self._resolve_parent()
        self._join_job()
        outer = self._parent_run._node if self._parent_run is not None else None
        guard = self._guard
        reads = self._ledger is not None and guard is not None and guard.counts_fpo
        self._node = RunNode(self, self.id, outer, reads_ledger=reads)
        # a forked child's copy of its parent's run stands still at the fork: its budgets are
        # the parent's to check (it reads this run from the ledger, as a child process's)
        self._guarded_up = tuple(
            node.run
            for node in self._node.ancestors()
            if node.run._guard is not None and node.run._pid == os.getpid()
        )
        from greenprint.meters._discovery import with_configured_tdp
        from greenprint.meters._estimate import configured_cpu_tdp
        from greenprint.meters._set import detect_meters, guard_meters

        given = self._options.get("meters")
        pid = self._options.get("pid")
        self._meters = detect_meters(pid=pid) if given is None else guard_meters(given, pid=pid)
        # the estimate:cpu status as the meters take it: a configured TDP, not the table's
        self._hardware = with_configured_tdp(detect_hardware(), configured_cpu_tdp()).to_dict()
        # what the provenance names that does not depend on the meters' readings, found before
        # they start: a process's first run was charged psutil's import (0.07-0.2 s) otherwise
        self._measured_process = (
            _process_key(self._options.get("pid") or os.getpid())
            if self._scope == "process"
            else None
        )
        writer_identity()
        # where the run runs (its git call), found here, on the thread that starts the run,
        # before the meters start (not the run's cost): on the sampler thread, a process forked
        # meanwhile (multiprocessing's fork) could get the module's import lock held by a thread
        # it does not have (CPython: its own run hung at its end, importing it), and a git
        # started there while the main thread forked a Pool's workers hung the pool's end
        try:
            self._collect_environment()
        except Exception:  # never raise into user code for a missing host name or git
            logger.exception("greenprint: could not record run %s's environment", self.id[:8])

        self._meters.start()
        self._started_at = getattr(self._meters, "read_at", None) or time.time()
        self._pid = os.getpid()  # the process that ends it (not a forked child: see stop)
        self._account = CostAccount(
            scope=self._scope, intensity=self._intensity, pue=self._pue.value, t0=self._started_at
        )
        self._provenance = self._build_provenance()
        self._status = "running"
        self._state = "running"
        if self._ledger is not None:
            try:
                self._start_in_ledger(self._ledger)
            except BaseException as e:  # a full disk, a locked or read-only ledger
                # the run never started: not 'running' (a stop() then saved it apart as a
                # finished run the ledger had never had), its meters not left open
                self._state = "stopped"
                self._status = "failed"
                self._error = f"{type(e).__name__}: {e}"[:2000]
                try:
                    self._meters.close()
                except Exception:  # a meter set of the user's own: its close must not hide e
                    logger.exception("greenprint: closing run %s's meters failed", self.id[:8])
                raise
            # runs it could not take: room again? Once this run is in it: a ledger that
            # hangs is not waited for twice (the run then falls back; they wait for it)
            _write_unsaved(into=self._ledger)
            if self.parent_id is None:
                self._continue_restarted()
        if self._guard is not None:
            self._guard.run_id = self.id
            if self._unmetered:  # meters=[]: an energy or CO2-eq budget never sees a figure
                for message in self._guard.unmetered():
                    logger.warning("%s", message)
            if self._guard.needs_study:
                self._read_study_cost()  # a study already over budget is known at once
        self._ctx_token = _lineage.enter(self, measures_process=self._measures_process())
        registry.add(self)
        self._export_env()
        self._stop_lock.acquire()
        self._thread = threading.Thread(
            target=self._loop, name=f"greenprint-sampler-{self.id[:8]}", daemon=True
        )
        self._thread.start()
