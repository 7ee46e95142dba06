"""Calls into hardware with a deadline, so that a meter that blocks cannot hang a run.

A hardware read (a sysfs file on a wedged driver, an NVML call during a GPU reset, a user's own
meter) can block for ever. :class:`DeadlineWorker` runs such calls on one daemon thread and waits
for each at most a deadline. The deadline is the meter's: it runs from the moment the worker
thread calls it, not from the hand-off, so that a machine too loaded to schedule the worker at
once does not fail a healthy meter; the caller still never waits more than twice the deadline in
all. A call that overruns is abandoned: the caller gets
:class:`MeterTimeoutError` (a :class:`~greenprint.MeterError`, so the meter set degrades to an
estimate), the stuck thread is left to finish or block on its own (it is a daemon thread and
never delays interpreter exit), and the next call starts a fresh thread. One thread is reused for
every call that returns in time, so a healthy meter costs one hand-off per tick, not one thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from greenprint._exceptions import MeterError

__all__ = ["DEFAULT_READ_TIMEOUT_S", "DeadlineWorker", "MeterTimeoutError"]

logger = logging.getLogger(__name__)

#: Longest wait for one hardware call, in s. Healthy RAPL and NVML reads take microseconds to a
#: few milliseconds; this leaves room for a loaded machine and keeps ``with`` exits under ~1 s.
DEFAULT_READ_TIMEOUT_S = 0.4

T = TypeVar("T")


class MeterTimeoutError(MeterError):
    """A meter call did not return within its deadline; the meter is treated as failed."""


class _Job(Generic[T]):
    __slots__ = ("done", "error", "fn", "started_at", "value")

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None  # monotonic time the worker called fn


def _serve(jobs: queue.SimpleQueue[_Job[object] | None]) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        job.started_at = time.monotonic()
        try:
            job.value = job.fn()
        except BaseException as e:  # handed to the caller, who decides
            job.error = e
        finally:
            job.done.set()


class DeadlineWorker:
    """One daemon thread that runs calls for a caller who waits at most a deadline.

    Not meant to be shared between threads: one caller at a time (the meter set is read by one
    sampler thread at a time).

    Args:
        name: thread name prefix, for debugging.
    """

    def __init__(self, name: str = "greenprint-meter") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job[object] | None] | None = None
        self._thread: threading.Thread | None = None
        self.abandoned = 0  # threads left behind in a call that overran
        self._started: list[threading.Thread] = []

    def call(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn()`` on the worker thread and return its result.

        Args:
            fn: the call; its exception is re-raised here.
            timeout_s: the deadline, in s, counted from the moment the worker calls ``fn``; the
                caller waits at most ``2 * timeout_s`` in all (a worker that is not scheduled
                within ``timeout_s`` gets another ``timeout_s`` to start and finish).

        Raises:
            MeterTimeoutError: ``fn`` did not return within ``timeout_s`` of being called (or
                was not done ``2 * timeout_s`` after the hand-off); the thread running it is
                abandoned and the next call gets a new one.
        """
        jobs = self._ensure()
        job: _Job[T] = _Job(fn)
        jobs.put(job)  # type: ignore[arg-type]
        if not job.done.wait(timeout_s):
            started = job.started_at
            # started late (a loaded machine): the call gets its own full deadline
            extra_s = timeout_s if started is None else started + timeout_s - time.monotonic()
            if extra_s <= 0 or not job.done.wait(extra_s):
                self._abandon()
                raise MeterTimeoutError(f"no answer within {timeout_s:g} s")
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[return-value]

    def alive_threads(self) -> list[threading.Thread]:
        """This worker's threads still alive: the current one and any abandoned, still stuck."""
        return [t for t in self._started if t.is_alive()]

    def close(self) -> None:
        """Let the thread end once it is idle. Never waits."""
        if self._jobs is not None:
            self._jobs.put(None)
        self._jobs = None
        self._thread = None

    def _ensure(self) -> queue.SimpleQueue[_Job[object] | None]:
        if self._jobs is None or self._thread is None:
            self._jobs = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=_serve, args=(self._jobs,), name=self._name, daemon=True
            )
            self._thread.start()
            self._started = [t for t in self._started if t.is_alive()] + [self._thread]
        return self._jobs

    def _abandon(self) -> None:
        # The stuck thread keeps its own queue; the None queued behind the stuck job ends it if
        # the call ever returns.
        self.abandoned += 1
        logger.debug("abandoning %s: a call overran its deadline", self._name)
        self.close()
