"""SQLite ledgers across ``fork``: no greenprint thread is inside SQLite when the process forks.

SQLite keeps process-wide state (its memory and file-list mutexes, each open file's lock
record) that ``fork`` copies as it stands: a child forked while another thread of its parent
was inside SQLite (a run's sampler flushing, a ledger opened or closed on another thread, as a
``multiprocessing`` pool or a DataLoader forks its workers) may get a mutex held by a thread
it does not have, and its first SQLite call waits on it for good. Python's ``sqlite3`` does
nothing about fork. So every SQLite call of greenprint's (each transaction, and opening,
setting up, closing and pooling connections) passes :data:`FORK_GATE`, which ``os.fork`` (its
``before`` handler) closes, waiting for the calls inside to end; :func:`after_fork` then sets
the parent's pooled connections of every store aside in the child, to be closed
(:func:`close_inherited`) before the child opens its first connection of its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from typing import Protocol

from greenprint._forks import renew_after_fork

__all__ = [
    "FORK_GATE",
    "FORK_WAIT_S",
    "INHERITED",
    "ForkGate",
    "ForkedStore",
    "close_inherited",
    "close_orphans",
    "orphan",
    "set_aside",
    "watch_store",
]

logger = logging.getLogger("greenprint.ledger._sqlite")


class ForkedStore(Protocol):
    """A store whose locks a forked child makes anew (:class:`~._sqlite.SQLiteStore`)."""

    def after_fork_in_child(self) -> tuple[str, list[sqlite3.Connection]]:
        """Make its locks anew; its database, and the parent's pooled connections taken out."""
        ...  # pragma: no cover


#: This process's stores, whose locks a forked child makes anew.
_STORES: weakref.WeakSet[ForkedStore] = weakref.WeakSet()


def watch_store(store: ForkedStore) -> None:
    """Have a forked child make ``store``'s locks anew and set its pooled connections aside."""
    _STORES.add(store)


#: How long a fork waits at most for this process's SQLite calls to end, s. A flush is
#: milliseconds, the read of a 100,000-run report about 1.3 s; a call that waits on a ledger
#: another process has locked waits at most ``BUSY_TIMEOUT_S`` (30 s) before it leaves the gate
#: to retry. Past this bound the fork goes ahead with a warning (its child may then wait for
#: good if it uses SQLite): a bound, so that a lock this file does not know of never hangs the
#: parent instead.
FORK_WAIT_S = 120.0


class ForkGate:
    """Forks wait for this process's SQLite calls to end (at most :data:`FORK_WAIT_S`).

    Every SQLite call of greenprint's passes the gate (``with FORK_GATE:``): a transaction,
    and opening, setting up, closing or pooling a connection. ``os.fork`` (its ``before``
    handler) closes it to new calls and waits for those inside to end, then forks; it opens
    again in the parent, and the child starts with none inside. Without it, a child forked
    while a thread was inside SQLite waited for good on a mutex that thread held (4 of 200
    forks beside two threads opening and closing ledgers), or saw the ledger locked by a
    transaction it would never see end (6 of 30 workers beside a thread writing).

    A thread already inside passes again (re-entrant), and the forking thread's own calls pass
    while it forks (a fork from a signal handler, or from a function run inside a transaction
    of its own, is never waited for: it would wait on itself). The gate's own lock is
    re-entrant too: a finalizer run by the garbage collector inside it on the same thread
    passes. Subprocesses (``subprocess``, ``posix_spawn``) run no fork handlers and are never
    delayed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._inside: dict[int, int] = {}  # thread id -> its calls inside the gate
        self._forking: set[int] = set()  # the forking threads' ids, while they fork

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._forking and me not in self._inside and self._forking != {me}:
                self._cond.wait()
            self._inside[me] = self._inside.get(me, 0) + 1

    def enter_now(self) -> bool:
        """Enter as ``__enter__`` does, unless that would wait (a fork in progress): ``False``."""
        me = threading.get_ident()
        with self._cond:
            if self._forking and me not in self._inside and self._forking != {me}:
                return False
            self._inside[me] = self._inside.get(me, 0) + 1
            return True

    def __exit__(self, *_: object) -> None:
        me = threading.get_ident()
        with self._cond:
            left = self._inside.get(me, 1) - 1
            if left > 0:
                self._inside[me] = left
            else:
                self._inside.pop(me, None)
                if self._forking:  # a fork waits for the last one out
                    self._cond.notify_all()

    def before_fork(self) -> None:
        """Close the gate and wait for the other threads' calls, at most FORK_WAIT_S."""
        me = threading.get_ident()
        deadline = time.monotonic() + FORK_WAIT_S
        with self._cond:
            self._forking.add(me)
            while any(tid != me for tid in self._inside):
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning(
                        "greenprint: forking while another thread has been inside SQLite for "
                        "%.0f s; the child may wait for good if it uses SQLite",
                        FORK_WAIT_S,
                    )
                    break
                self._cond.wait(left)

    def after_fork_in_parent(self) -> None:
        """Open the gate again."""
        with self._cond:
            self._forking.discard(threading.get_ident())
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """The child's gate: open, nothing inside (the parent's threads are not here)."""
        self._cond = threading.Condition(threading.RLock())
        self._inside = {}
        self._forking = set()


FORK_GATE = ForkGate()


#: The connections a forked child inherited from its parent's pools, by database, each file's
#: until the child's first own connection to it.
INHERITED: dict[str, list[sqlite3.Connection]] = {}
_INHERITED_LOCK = threading.Lock()
renew_after_fork(globals(), "_INHERITED_LOCK")


def close_inherited(database: str) -> None:
    """Close the connections to ``database`` this forked child inherited (before its own).

    Called inside :data:`FORK_GATE` (by ``SQLiteStore._connect``). See :func:`_after_fork`.
    Closing one in the child releases none of the parent's locks (POSIX locks belong to a
    process); like any close, it checkpoints and deletes the WAL only when no other connection
    holds its shared lock on the file (the parent's do while it keeps the file open).
    """
    with _INHERITED_LOCK:
        inherited = INHERITED.pop(database, [])
    for conn in inherited:
        try:
            conn.close()
        except sqlite3.Error as e:  # pragma: no cover - a close that fails leaves it to exit
            logger.debug("greenprint: closing a connection inherited at a fork: %s", e)


def set_aside(database: str, connections: list[sqlite3.Connection]) -> None:
    """Set aside a child's inherited connections to ``database``: closed before its own."""
    if connections:
        with _INHERITED_LOCK:
            INHERITED.setdefault(database, []).extend(connections)


#: The connections of stores collected unclosed (with their database), until the next SQLite
#: call closes them.
ORPHANS: list[tuple[str, sqlite3.Connection]] = []


def orphan(database: str, connections: list[sqlite3.Connection]) -> None:
    """A store of ``database`` collected unclosed: its ``connections`` closed at the next call.

    A finalizer (``weakref.finalize``), run by the garbage collector on whatever thread, at
    any point: it makes no SQLite call (a connection dropped there would close outside
    :data:`FORK_GATE`) and never waits (it may run inside a lock a fork handler takes).
    """
    ORPHANS.extend((database, conn) for conn in connections)
    connections.clear()


def close_orphans() -> None:
    """Close the connections of stores collected unclosed (called inside :data:`FORK_GATE`)."""
    while ORPHANS:
        try:
            _, conn = ORPHANS.pop()
        except IndexError:  # another thread took the last one
            return
        try:
            conn.close()
        except sqlite3.Error as e:  # pragma: no cover - a close that fails leaves it to exit
            logger.debug("greenprint: closing a connection of a collected ledger: %s", e)


def _after_fork() -> None:
    """In a forked child: every store's locks anew, its parent's connections set aside.

    A thread of the parent inside a transaction at the fork (a run's sampler flushing) is not
    in the child, but its hold on the store's write lock is: the child's first write to that
    store (a ``Ledger`` object it inherited) waited on it for good.

    SQLite keeps, per process, one record of each open file: the locks its connections hold
    on it and the mapping of its WAL index (``-shm``), and a new connection to the file joins
    that record. A child's new connections joined the one copied from its parent: a record
    that says the process holds the shared locks every WAL connection holds for as long as it
    is open (on the database file, and on the WAL index's "dead man's switch"), which the
    kernel gave the parent, not the child. Once the parent ended (SIGTERM to the main process
    of a ``multiprocessing`` pool, a crash), the child's connections held no lock at all: the
    next process to open the ledger took itself for the first (it truncated the WAL index
    under the child's mapping: the child died of SIGBUS in its next write, its runs read
    ``lost``), and one closing it took itself for the last (it checkpointed and deleted the
    WAL: what the child wrote after that went to a deleted file, its runs' ends never in the
    ledger). So the parent's pooled connections are taken out of the pools here and, file by
    file, closed before the child opens its first own connection to that file
    (:meth:`~._sqlite.SQLiteStore._connect`): the record then goes with them, and the child's
    connections take their locks themselves. Not here, and not those of files the child does
    not open: they stay open, unused, for the child's life. Closing the last connection of
    the child's copied record to a file the parent had closed since the fork checkpointed and
    deleted its WAL and WAL index while the parent opened the file again (a thread of it
    tracking runs into a dozen ledgers, which greenprint opens and closes as runs need them):
    the parent's next connection failed with "disk I/O error" (2 of 7 scripts of 300 forks).
    A connection in use at the fork (the gate stopped waiting for it) is in no pool: it stays.
    The connections of the parent's stores collected unclosed (:data:`ORPHANS`) go with them.
    """
    FORK_GATE.after_fork_in_child()
    for store in list(_STORES):
        database, idle = store.after_fork_in_child()
        INHERITED.setdefault(database, []).extend(idle)
    for database, conn in ORPHANS:
        INHERITED.setdefault(database, []).append(conn)
    ORPHANS.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=FORK_GATE.before_fork,
        after_in_parent=FORK_GATE.after_fork_in_parent,
        after_in_child=_after_fork,
    )
