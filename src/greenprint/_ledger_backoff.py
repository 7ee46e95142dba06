"""A known-good ledger that took long to fail is not waited for again at each run: a backoff.

A PostgreSQL server that stops answering (hung, ``SIGSTOP``-ed, a host that takes the TCP
connection and says nothing) fails a run's start only when its timeout runs out
(``connect_timeout``, 10 s): a study's loop of runs waited it again at every run before each
fell back (10 runs: 40 s measured with the server stopped). A failure that took
:data:`SLOW_FAILURE_S` or more is remembered: the process's next runs for that ledger go
straight to its fallback file (:mod:`greenprint._run_fallback`) until :data:`FIRST_RETRY_S`
have passed, then one run tries the ledger again; each retry that fails as slowly doubles the
wait, up to :data:`LONGEST_RETRY_S`. A ledger that takes a run again is tried by every run (the
usual "takes runs again" line says so); one that fails at once (a deleted folder, a refused
connection) is tried by every run too: trying costs nothing then. The state is the process's
and a forked worker's (a fork Pool started after the failure skips the ledger too).
"""

from __future__ import annotations

import threading
import time

from greenprint._exceptions import GreenprintError
from greenprint._forks import renew_after_fork

__all__ = [
    "FIRST_RETRY_S",
    "LONGEST_RETRY_S",
    "SLOW_FAILURE_S",
    "answered",
    "failed",
    "retry_in",
    "skipped",
    "waiting",
]

#: A ledger's failure that took this long, in s, or more is not waited for again at once
SLOW_FAILURE_S = 1.0
#: Seconds until a ledger that failed slowly is tried again
FIRST_RETRY_S = 30.0
#: The longest wait, in s, between two tries of a ledger that keeps failing slowly
LONGEST_RETRY_S = 300.0


class _Waiting:
    """A ledger not tried until ``retry_at`` (``time.monotonic``)."""

    __slots__ = ("error", "failed_in_s", "interval_s", "retry_at")

    def __init__(self, error: GreenprintError, failed_in_s: float, interval_s: float) -> None:
        self.error = error  # why it failed: the runs meanwhile fall back for that reason
        self.failed_in_s = failed_in_s
        self.interval_s = interval_s
        self.retry_at = time.monotonic() + interval_s


# ledger URL (with its password) -> its wait
_WAITING: dict[str, _Waiting] = {}
_LOCK = threading.Lock()
renew_after_fork(globals(), "_LOCK")


def waiting() -> bool:
    """Whether any ledger waits its retry (read without the lock: a hint for the fast path)."""
    return bool(_WAITING)


def skipped(url: str, *, retry: bool = True) -> GreenprintError | None:
    """The error the ledger at ``url`` last failed with while it waits its retry, else ``None``.

    Only for a ledger a run may fall back from (:func:`greenprint._run_fallback.can_fall_back`).
    ``None`` when it is to be tried: no wait, or its retry is due. ``retry``: the caller's
    try is then the retry (the other threads' runs meanwhile do not wait for it either);
    ``False`` for a step before it (opening a ledger already open costs nothing, and the
    run's first write is the retry then).
    """
    with _LOCK:
        wait = _WAITING.get(url)
        if wait is None:
            return None
        now = time.monotonic()
        if now < wait.retry_at:
            return wait.error
        if retry:
            wait.retry_at = now + wait.interval_s
        return None


def failed(url: str, error: GreenprintError, took_s: float) -> None:
    """The ledger at ``url`` failed with ``error`` after ``took_s``: a slow failure waits."""
    with _LOCK:
        before = _WAITING.pop(url, None)
        if took_s < SLOW_FAILURE_S:  # trying costs nothing: every run tries
            return
        interval_s = (
            FIRST_RETRY_S if before is None else min(before.interval_s * 2, LONGEST_RETRY_S)
        )
        _WAITING[url] = _Waiting(error, took_s, interval_s)


def answered(url: str) -> None:
    """The ledger at ``url`` took a run: every run tries it again."""
    if _WAITING:  # read without the lock: a run's start pays nothing in the usual case
        with _LOCK:
            _WAITING.pop(url, None)


def retry_in(url: str) -> tuple[float, float] | None:
    """``(seconds its failure took, seconds until its retry)`` for a ledger that waits one."""
    with _LOCK:
        waiting = _WAITING.get(url)
        if waiting is None:
            return None
        return waiting.failed_in_s, max(waiting.retry_at - time.monotonic(), 0.0)
