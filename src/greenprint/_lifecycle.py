"""Process-wide bookkeeping of active runs: SIGTERM, uncaught exceptions, interpreter exit.

The tracker registers each run while it is measured. On SIGTERM every active run is stopped as
``interrupted`` (cost so far written) before the previous handler runs (by default the process still
terminates); an uncaught exception stops them as ``failed`` (or ``interrupted`` for
``KeyboardInterrupt``) before the previous ``sys.excepthook``; interpreter exit stops the rest as
``finished``, or ``interrupted`` where the thread that started the run is still running (a daemon
thread cut off: a Ray worker exiting because its driver died, its trial mid-work). Handlers are
installed on the first run, in the main thread only. A forked child (a ``multiprocessing`` worker)
inherits the handlers, but not the parent's runs: they are the parent's, still live there and
written by it (``Pool.terminate()``, ``with Pool() as pool:``, sends its workers SIGTERM, and each
one ended its parent's live run as ``interrupted`` in the ledger), and their copies in the child
stand still at the fork (no sampler thread), so the child's :func:`~greenprint.tracking.active_runs`
and its study budgets, which read them as live runs of the process, counted the parent's runs at
their cost at the fork instead of reading them from the ledger. The child's registry starts with its
own runs only. A process ``multiprocessing`` started (a pool's worker) has greenprint's SIGTERM
handler only while it has runs of its own to end: between them, SIGTERM's default action ends it
whatever its main thread waits on (:meth:`_Registry.release_sigterm`; ``Pool.terminate()`` hung
on an idle worker whose Python handler never ran).

SIGTERM landing while the main thread is inside a ledger write transaction (a run's flush, a run
starting; any transaction of an in-memory ledger) is acted on when that transaction ends
(:func:`write_section`, around each one): the handler writes the runs' records on another
connection, which waited on the lock its own thread held (SQLite: 30 s of busy timeout per try
for 120 s, then the records were given up and the runs read lost); an in-memory ledger's one
connection cannot begin a transaction inside another.

The runs ended together (by SIGTERM, an uncaught exception, the interpreter's exit) share one wait
for their ledger (:meth:`_Registry.ending_wait_left`): three nested runs left open at exit, their
ledger locked by another process, held the exit 5 s each (15 s) before they were saved apart;
now 5 s in all, whatever their number.

A process about to die of SIGTERM's default action (no handler of the user's) skips the
interpreter's exit handlers: the registry's ``before_death`` hooks run first instead
(:mod:`greenprint.tracking` saves apart the runs whose ledger did not take them, as at exit).

Ctrl-C (SIGINT) and SIGTERM landing while a run starts or ends are held until it has started
or ended: :mod:`greenprint._interrupts`, a floor above this one.

The registry knows runs only as :class:`Stoppable` (anything with ``stop(status, error)``), so
this module sits below :mod:`greenprint.tracking`, which lists its runs with ``active_runs()``.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from greenprint._exceptions import BudgetExceeded
from greenprint._forks import multiprocessing_child
from greenprint._records import RunStatus

__all__ = [
    "Stoppable",
    "registry",
    "status_for",
    "write_section",
]

_PRUNED_EXCEPTION_NAMES = frozenset({"TrialPruned"})

#: The error of a run whose thread was still running when the interpreter exited.
_CUT_OFF = "the process exited while the thread that started the run was still running"


class Stoppable(Protocol):
    """What the registry stops: a run (:class:`greenprint.tracking.Run`)."""

    def stop(self, status: str = "finished", error: str | None = None) -> None:
        """End the run with ``status``, recording ``error``; calling it again does nothing."""


def _is_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is asyncio's ``CancelledError`` (read without importing asyncio)."""
    return any(
        cls.__name__ == "CancelledError"
        and cls.__module__ in ("asyncio.exceptions", "concurrent.futures._base")
        for cls in type(exc).__mro__
    )


def status_for(exc: BaseException | None) -> tuple[RunStatus, str | None]:
    """The final status and error text for a run ended by ``exc`` (``None``: normal end).

    A non-zero ``SystemExit`` raised while a ``KeyboardInterrupt`` was being handled is that
    Ctrl-C: Lightning's ``Trainer`` answers one during ``fit`` with ``sys.exit(1)``, so a run
    around the fit (``gp.track``, an Optuna trial, a notebook cell, a search's candidate) ends
    ``interrupted`` (``"KeyboardInterrupt"``), as the fit's own run does, not ``failed`` with
    ``"SystemExit: 1"``. A coroutine cancelled (asyncio's ``CancelledError``: ``task.cancel()``,
    ``asyncio.wait_for``'s timeout, the loop shutting down) ends ``interrupted`` too.
    """
    if exc is None:
        return "finished", None
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "KeyboardInterrupt"
    if _is_cancelled(exc):  # asyncio's task.cancel(), wait_for's timeout, the loop's shutdown
        return "interrupted", "CancelledError"
    if _raised_on_sigterm(exc):
        return "interrupted", "SIGTERM"
    if isinstance(exc, SystemExit):
        if exc.code in (0, None):
            return "finished", None
        if _handling_ctrl_c(exc):
            return "interrupted", "KeyboardInterrupt"
    if isinstance(exc, BudgetExceeded):  # a budget stopped it: the cost so far is kept
        return "interrupted", f"BudgetExceeded: {exc}"[:2000]
    if type(exc).__name__ in _PRUNED_EXCEPTION_NAMES:
        return "pruned", None
    message = f"{type(exc).__name__}: {_text(exc)}"
    return "failed", message[:2000]


def _text(exc: BaseException) -> str:
    """``str(exc)``, or what Python's own traceback prints when that raises.

    An exception whose ``__str__`` raised made the end of its run raise that error instead of
    the user's exception, and the run, never ended there, was recorded ``finished`` at exit.
    """
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def _raised_on_sigterm(exc: BaseException) -> bool:
    """Whether ``exc`` came out of greenprint's SIGTERM handler (the user's, which it calls).

    A run ending while its start had not registered it yet (SIGTERM while the start's hold was
    being set up, the user's handler raising ``SystemExit(143)``) was ended by that exception,
    not by greenprint's handler: it read ``failed`` with ``"SystemExit: 143"``.
    """
    handler = _Registry._on_sigterm.__code__
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is handler:
            return True
        tb = tb.tb_next
    return False


def _handling_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a ``KeyboardInterrupt`` was handled (its contexts)."""
    seen: set[int] = set()
    cause = exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


class _Registry:
    """The runs active in this process, for SIGTERM, uncaught exceptions and interpreter exit."""

    def __init__(self) -> None:
        self._runs: list[Stoppable] = []
        self._owners: dict[int, int] = {}  # id(run) -> the pid of the process that added it
        self._threads: dict[int, threading.Thread] = {}  # id(run) -> the thread that added it
        # an RLock: a SIGTERM handler (stop_all) may run while this thread is inside add/discard
        self._lock = threading.RLock()
        self._installed = False
        self._sigterm_installed = False
        # a run was added from a thread that is not the main one: the handler, which only the
        # main thread installs, stays (:meth:`release_sigterm`)
        self._threaded = False
        self._previous_sigterm: Any = None
        self._previous_excepthook: Any = None
        # the main thread's depth of ledger write transactions, and a SIGTERM held meanwhile
        self._writing = 0
        self._held_sigterm: tuple[int, Any] | None = None
        # the monotonic time, in s, when the registry began to end this process's runs together
        self._ending_since: float | None = None
        #: called after SIGTERM stopped the runs, when the process is about to die of it (no
        #: handler of the user's): what interpreter exit would do and a signal's death skips
        #: (:mod:`greenprint.tracking` saves apart the runs its ledger did not take)
        self.before_death: list[Callable[[], None]] = []
        #: whether the process has something SIGTERM's handler does beyond ending its runs
        #: (:mod:`greenprint.tracking`: runs kept unsaved, saved apart before a death): the
        #: handler is kept installed meanwhile (:meth:`release_sigterm`)
        self.keep_sigterm: list[Callable[[], bool]] = []
        #: called in a forked child before the SIGTERM handler gives way
        #: (:mod:`greenprint._interrupts`: a hold of the signals the fork copied ends there)
        self.in_forked_child: list[Callable[[], None]] = []

    def add(self, run: Stoppable) -> None:
        with self._lock:
            self._runs.append(run)
            self._owners[id(run)] = os.getpid()
            self._threads[id(run)] = threading.current_thread()
            if threading.current_thread() is not threading.main_thread():
                self._threaded = True
            if not self._installed:
                self._install()
            self.install_sigterm()

    def discard(self, run: Stoppable) -> None:
        with self._lock:
            if run in self._runs:
                self._runs.remove(run)
                self._owners.pop(id(run), None)
                self._threads.pop(id(run), None)

    def active(self) -> list[Stoppable]:
        with self._lock:
            return list(self._runs)

    def _own(self) -> list[tuple[Stoppable, threading.Thread | None]]:
        """This process's runs, latest last, each with the thread that started it.

        A forked child leaves its parent's runs to the parent.
        """
        pid = os.getpid()
        with self._lock:
            return [
                (run, self._threads.get(id(run)))
                for run in self._runs
                if self._owners.get(id(run), pid) == pid
            ]

    def ending_wait_left(self, wait_s: float) -> float | None:
        """What is left, in s, of one wait of ``wait_s`` shared by the runs ended together.

        While the registry ends this process's runs together (SIGTERM, an uncaught exception,
        the interpreter's exit), a run ending waits for its ledger only what is left of
        ``wait_s`` counted from when the first of them began to end (0 once it is spent), so
        that N runs whose ledger is locked hold the process ``wait_s`` in all, not N times it.

        Args:
            wait_s: the longest wait of one run ending on its own, in s.

        Returns:
            The wait left, in s; ``None`` when no runs are being ended together (``wait_s``
            applies as it is).
        """
        since = self._ending_since
        if since is None:
            return None
        return max(since + wait_s - time.monotonic(), 0.0)

    def _stop_together(self, stops: list[tuple[Stoppable, str, str | None]]) -> None:
        """Stop each run with its status and error, sharing one wait (:meth:`ending_wait_left`)."""
        first = self._ending_since is None  # else inside another ending (SIGTERM at exit)
        if first:
            self._ending_since = time.monotonic()
        try:
            for run, status, error in stops:
                run.stop(status=status, error=error)
        finally:
            if first:
                self._ending_since = None

    def stop_all(self, status: str, error: str | None) -> None:
        """Stop this process's runs (a forked child leaves its parent's runs to the parent)."""
        self._stop_together([(run, status, error) for run, _ in reversed(self._own())])

    def _at_exit(self) -> None:
        """Interpreter exit: each run still open ends ``finished``, or ``interrupted`` if cut off.

        Cut off: the thread that started it is still running (a daemon thread stopped mid-work:
        a Ray worker whose driver died exits while its trial's thread sleeps or trains).
        """
        main = threading.main_thread()
        self._stop_together(
            [
                (run, "interrupted", _CUT_OFF)
                if thread is not None and thread is not main and thread.is_alive()
                else (run, "finished", None)
                for run, thread in reversed(self._own())
            ]
        )

    def _before_fork(self) -> None:
        """Before a fork with greenprint's SIGTERM handler installed: SIGTERM blocked.

        Only in the forking thread, until the fork is done (:meth:`_after_fork_in_parent`); the
        child inherits that thread's mask, and :meth:`_after_fork` unblocks it there. See
        :meth:`_after_fork` for the signal this keeps.
        """
        _fork_mask.blocked = None
        if not self._sigterm_installed or not hasattr(signal, "pthread_sigmask"):
            return
        try:
            _fork_mask.blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        except (ValueError, OSError):  # pragma: no cover - a platform without it
            _fork_mask.blocked = None

    def _after_fork_in_parent(self) -> None:
        """After a fork, in the parent: the forking thread's mask as it was."""
        _unblock_after_fork()

    def _after_fork(self) -> None:
        """In a forked child: none of the parent's runs; a lock its other threads held, anew.

        The child has no run of its own to stop on SIGTERM: the handler greenprint installed
        gives way to the one it replaced (the default action, unless the user had one), and is
        installed again when the child's own first run starts in its main thread. A
        ``multiprocessing`` pool's ``terminate()`` (``with Pool() as pool:``) sends SIGTERM to
        a worker that may not have run yet since its fork: such a signal reached CPython's C
        handler before the child's interpreter cleared the signals it had noted (they are the
        parent's, it assumes), and was lost, so that the worker lived on, waiting on the pool's
        queue, and the pool's end waited for it for good (1 fork in 30 to 75 at load 3 on 2
        cores; 20 of 20 forks on one CPU). SIGTERM is blocked across the fork
        (:meth:`_before_fork`) and unblocked here, last: one sent meanwhile is delivered now,
        and kills the child by its default action.
        """
        self._lock = threading.RLock()
        self._runs = []
        self._owners = {}
        self._threads = {}
        self._threaded = False
        self._writing = 0
        self._held_sigterm = None
        self._ending_since = None
        for hook in list(self.in_forked_child):  # a hold the fork copied ends (_interrupts)
            hook()
        if self._sigterm_installed:
            self._sigterm_installed = False
            try:
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    previous = self._previous_sigterm
                    signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            except (ValueError, OSError):  # forked from a thread that is not the main one
                pass
        _unblock_after_fork()

    def _install(self) -> None:
        self._installed = True
        atexit.register(self._at_exit)
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook

    def install_sigterm(self) -> None:
        """SIGTERM's handler, installed from the main thread (elsewhere: nothing).

        Called when a run starts or ends in the main thread: a process whose first run was a
        worker thread's (a ``ThreadPoolExecutor`` of trials) had none, and SIGTERM left its
        later main-thread runs ``lost`` instead of ``interrupted``. In a pool's worker, put back
        as it was once the worker has nothing left for it to end (:meth:`release_sigterm`).
        """
        if self._sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        # marked installed last: a Ctrl-C half-way leaves it to be installed at the next call
        # (which finds greenprint's own handler if it got that far: never its own previous)
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous != self._on_sigterm:
                self._previous_sigterm = previous
                signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreter)
            self._previous_sigterm = None
        self._sigterm_installed = True

    def release_sigterm(self) -> None:
        """SIGTERM's handler as it was before greenprint's, while nothing is left for it to do.

        From the main thread, when a run has ended there (the outermost hold's end) and the
        process has no run of its own left, nor anything the handler would do before a death
        (:attr:`keep_sigterm`): installed again by the next run. A ``multiprocessing`` pool's
        idle worker kept greenprint's Python handler after its trials' runs, and Python runs a
        Python handler only between two instructions of the main thread: the worker waits on
        the pool's queue lock (``sem_wait``), and a SIGTERM that lands as that wait is woken
        without the lock (the pool's ``terminate()`` takes it meanwhile) is noted by CPython's C
        handler, but the wait goes on (woken, not interrupted: no ``EINTR``), and the Python
        handler never runs. The worker lived on, and ``terminate()`` (``with Pool() as pool:``)
        waited for it for good (10 of 90 studies of 8 fallback runs at load 2 on 2 cores). With
        the default action the kernel ends the process, whatever it waits on. A handler the
        user set after greenprint's is theirs and stays, as before.

        Only in a process ``multiprocessing`` started (a pool's worker, any start method): one
        whose end another process waits for. Elsewhere, and in a worker that made runs in other
        threads, greenprint's stays as before: only the main thread can install it, and a
        ``ThreadPoolExecutor``'s runs after a main-thread run read ``lost`` on SIGTERM without it.
        """
        if not self._sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        if not multiprocessing_child() or self._threaded or self._own():
            return
        if any(keep() for keep in list(self.keep_sigterm)):
            return
        try:
            if signal.getsignal(signal.SIGTERM) != self._on_sigterm:
                return  # the user's, set since: theirs for good (greenprint's not set again)
            previous = self._previous_sigterm
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        except (ValueError, OSError):  # pragma: no cover - not allowed here (embedded)
            return
        self._sigterm_installed = False

    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        status, error = status_for(exc)
        self.stop_all(status, error)
        self._previous_excepthook(exc_type, exc, tb)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._writing:  # inside a write transaction: acted on when it ends (_WriteSection)
            self._held_sigterm = (signum, frame)
            return
        self.stop_all("interrupted", "SIGTERM")
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous in (signal.SIG_DFL, None):
            for hook in list(self.before_death):  # no atexit after a signal's default action
                hook()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        # SIG_IGN: the process goes on, as it would have without greenprint


class _WriteSection:
    """Around a ledger write transaction: SIGTERM's handler waits for it to end (main thread).

    Signal handlers run in the main thread, between two of its Python instructions: one that
    lands inside a write transaction of that thread (any transaction of an in-memory ledger,
    whose one connection the handler would use) is held, and run when the outermost such
    transaction has been committed or rolled back. Other threads' transactions hold nothing
    (the handler waits for them as any writer does).
    """

    __slots__ = ("_main",)

    def __enter__(self) -> None:
        self._main = threading.current_thread() is threading.main_thread()
        if self._main:
            registry._writing += 1

    def __exit__(self, *exc: object) -> None:
        if not self._main:
            return
        registry._writing -= 1
        held = registry._held_sigterm
        if held is not None and not registry._writing:
            registry._held_sigterm = None
            registry._on_sigterm(*held)


def write_section() -> _WriteSection:
    """A context manager around one ledger write transaction (see :class:`_WriteSection`)."""
    return _WriteSection()


class _ForkMask(threading.local):
    """The forking thread's signal mask before :meth:`_Registry._before_fork` blocked SIGTERM."""

    blocked: set[int | signal.Signals] | None = None


_fork_mask = _ForkMask()


def _unblock_after_fork() -> None:
    """The mask :meth:`_Registry._before_fork` changed, as it was (parent and child)."""
    blocked, _fork_mask.blocked = _fork_mask.blocked, None
    if blocked is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


registry = _Registry()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=registry._before_fork,
        after_in_parent=registry._after_fork_in_parent,
        after_in_child=registry._after_fork,
    )
