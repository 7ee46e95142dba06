"""SQLite ledgers across ``fork``: forks wait for transactions; children close what they inherit.

A process that forks (a ``multiprocessing`` pool, a DataLoader's workers) while a thread is
inside a SQLite transaction hands its child a lock state that no thread of the child will ever
let go; a child that opens the ledger through connections copied from its parent shares a lock
record that the kernel gave the parent only. :class:`ForkGate` makes a fork wait for the
transactions of this process (at most :data:`FORK_WAIT_S`), and :func:`after_fork` sets the
parent's pooled connections of every store aside in the child, to be closed
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
    "set_aside",
    "watch_store",
]

logger = logging.getLogger("greenprint.ledger._sqlite")


class ForkedStore(Protocol):
    """A store whose locks a forked child makes anew (:class:`~._sqlite.SQLiteStore`)."""

    def after_fork_in_child(self) -> list[sqlite3.Connection]:
        """Make its locks anew; return the parent's pooled connections, taken out of its pool."""
        ...  # pragma: no cover


#: This process's stores, whose locks a forked child makes anew.
_STORES: weakref.WeakSet[ForkedStore] = weakref.WeakSet()


def watch_store(store: ForkedStore) -> None:
    """Have a forked child make ``store``'s locks anew and set its pooled connections aside."""
    _STORES.add(store)


#: How long a fork waits at most for this process's SQLite transactions to end, s. A flush is
#: milliseconds; a merge or a report's read of a large study may take longer, and the fork then
#: goes ahead (its child may find that ledger busy, as before the gate).
FORK_WAIT_S = 5.0


class ForkGate:
    """Forks wait for this process's SQLite transactions to end (at most :data:`FORK_WAIT_S`).

    SQLite keeps each open file's lock state in the process (which connection holds which
    lock), and ``fork`` copies it: forked while another thread was in a transaction (a run's
    sampler flushing, as a ``multiprocessing`` pool or a DataLoader forks its workers), the
    child sees that file locked by a connection it will never see let go, and every one of its
    own connections to it waits busy (120 s of retries, then ``LedgerError``: the child's runs
    saved apart, not in the ledger). So each transaction passes this gate; ``os.fork`` (its
    ``before`` handler) closes it to new transactions and waits for those inside to end, then
    forks; it opens again in the parent, and the child starts with none inside.

    A transaction of the forking thread itself (a fork from a signal handler or a function run
    inside one) is never waited for, and that thread's transactions pass while it forks.
    Subprocesses (``subprocess``, ``posix_spawn``) run no fork handlers and are never delayed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside: dict[int, int] = {}  # thread id -> its transactions inside the gate
        self._forking: set[int] = set()  # the forking threads' ids, while they fork

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._forking - {me} and me not in self._inside:
                self._cond.wait()
            self._inside[me] = self._inside.get(me, 0) + 1

    def __exit__(self, *_: object) -> None:
        me = threading.get_ident()
        with self._cond:
            left = self._inside.get(me, 1) - 1
            if left > 0:
                self._inside[me] = left
            else:
                self._inside.pop(me, None)
            self._cond.notify_all()

    def before_fork(self) -> None:
        """Close the gate and wait for the other threads' transactions, at most FORK_WAIT_S."""
        me = threading.get_ident()
        deadline = time.monotonic() + FORK_WAIT_S
        with self._cond:
            self._forking.add(me)
            while any(tid != me for tid in self._inside):
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.debug("greenprint: forking while a ledger transaction is in progress")
                    break
                self._cond.wait(left)

    def after_fork_in_parent(self) -> None:
        """Open the gate again."""
        with self._cond:
            self._forking.discard(threading.get_ident())
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        """The child's gate: open, nothing inside (the parent's threads are not here)."""
        self._cond = threading.Condition(threading.Lock())
        self._inside = {}
        self._forking = set()


FORK_GATE = ForkGate()


#: The connections a forked child inherited from its parent's pools, until its first own one.
INHERITED: list[sqlite3.Connection] = []
_INHERITED_LOCK = threading.Lock()
renew_after_fork(globals(), "_INHERITED_LOCK")


def close_inherited() -> None:
    """Close the connections this forked child inherited (before it opens one of its own).

    See :func:`_after_fork`. Closing one in the child releases none of the parent's locks
    (POSIX locks belong to a process); like any close, it checkpoints and deletes the WAL only
    when no other connection holds its shared lock on the file (the parent's do while it lives).
    """
    with _INHERITED_LOCK:
        inherited = list(INHERITED)
        INHERITED.clear()
    for conn in inherited:
        try:
            conn.close()
        except sqlite3.Error as e:  # pragma: no cover - a close that fails leaves it to exit
            logger.debug("greenprint: closing a connection inherited at a fork: %s", e)


def set_aside(connections: list[sqlite3.Connection]) -> None:
    """Set aside the parent's connections a store of a forked child held: closed before its own."""
    with _INHERITED_LOCK:
        INHERITED.extend(connections)


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
    ledger). So the parent's pooled connections are taken out of the pools here and closed
    before the child opens its first own connection (:meth:`~._sqlite.SQLiteStore._connect`): the
    record then goes with them, and the child's connections take their locks themselves.
    Not here: a child that never opens the ledger leaves them alone (closing takes SQLite's
    process-wide mutexes, which a thread of the parent's, using SQLite outside greenprint, may
    have held at the fork: only a child that uses SQLite itself could wait on them). A
    connection in use at the fork (the gate stopped waiting for it) is in no pool: it stays.
    """
    FORK_GATE.after_fork_in_child()
    for store in list(_STORES):
        INHERITED.extend(store.after_fork_in_child())


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(
        before=FORK_GATE.before_fork,
        after_in_parent=FORK_GATE.after_fork_in_parent,
        after_in_child=_after_fork,
    )
