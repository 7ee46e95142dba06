"""The SQLite side of a ledger on the standard library's ``sqlite3``: no SQLAlchemy on this path.

Opening and writing a SQLite ledger is what every tracked run does first; importing SQLAlchemy
costs about 150 ms of CPU, far more than the run's own work, so SQLite ledgers are read and
written here with plain SQL. The behaviour is that of :mod:`greenprint.ledger._sql`, the
SQLAlchemy path that PostgreSQL ledgers keep:

* the schema is SQLAlchemy's (:mod:`greenprint.ledger._schema`) compiled for SQLite; the
  statements below are that compilation, and a test checks that they still are;
* WAL journal, a busy timeout, ``BEGIN IMMEDIATE`` for write transactions, transactional DDL,
  retries with backoff while the file stays locked, the writers of one process queued on a lock;
* NaN in a ``NonFiniteFloat`` column is stored as the text ``'NaN'`` and read back as NaN;
* an older ledger is migrated by the SQLAlchemy path (imported only then), in one transaction.

Pooling: connections are reused (a small pool, as SQLAlchemy's), so a thread that ends leaves
its connection to the next; an in-memory ledger has one connection that every call queues for.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from greenprint._exceptions import (
    ConfigError,
    LedgerError,
    LedgerPathError,
    NotALedgerError,
)
from greenprint._lifecycle import write_section
from greenprint._records import MetricPoint, PowerSample
from greenprint._version import __version__
from greenprint.ledger._fields import FIELD_KINDS, SCHEMA_VERSION
from greenprint.ledger._handles import file_identity, store_closed, store_opened
from greenprint.ledger._layout import BUSY_TIMEOUT_S, RETRY_DEADLINE_S, check_layout
from greenprint.ledger._marks import SQLITE_TRIGGERS
from greenprint.ledger._sqlite_forks import (
    FORK_GATE,
    INHERITED,
    ORPHANS,
    close_inherited,
    close_orphans,
    orphan,
    set_aside,
    watch_store,
)
from greenprint.ledger._sqlite_reads import SQLiteReads
from greenprint.ledger._sqlite_schema import CREATE_STATEMENTS, check_sqlite_library
from greenprint.ledger._target import Target

__all__ = ["CREATE_STATEMENTS", "SCHEMA_VERSION", "SQLiteStore", "check_sqlite_library"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_POOL_SIZE = 5

#: How long a transaction waits on a locked ledger before greenprint says so (once), s. The
#: waiting itself goes on as before (:data:`BUSY_TIMEOUT_S` a statement, retried until
#: :data:`RETRY_DEADLINE_S`).
TELL_LOCKED_AFTER_S = 3.0
_BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT_S * 1000)


# Columns of type NonFiniteFloat: NaN is bound as the text 'NaN' and every value read as float.
_NONFINITE_RUN_COLUMNS = frozenset(n for n, (kind, _) in FIELD_KINDS.items() if kind == "float")
_INSERT_METRIC = "INSERT INTO metrics (run_id, name, step, value, time) VALUES (?, ?, ?, ?, ?)"
_INSERT_SAMPLE = (
    "INSERT INTO samples (run_id, t0, t1, cpu_w, gpu_w, ram_w, intensity_g_per_kwh) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _bind_float(value: Any) -> Any:
    """A NonFiniteFloat as SQLite keeps it: NaN as ``'NaN'`` (SQLite would store NULL)."""
    if value is None:
        return None
    value = float(value)
    return "NaN" if math.isnan(value) else value


def _columns(values: Mapping[str, Any]) -> list[str]:
    unknown = [name for name in values if name not in FIELD_KINDS]
    if unknown:  # never reached through Ledger, which checks names first
        raise ConfigError(f"unknown ledger field {unknown[0]!r}")
    return list(values)


def _bound(name: str, value: Any) -> Any:
    return _bind_float(value) if name in _NONFINITE_RUN_COLUMNS else value


def _is_transient(error: sqlite3.Error) -> bool:
    message = str(error).lower()
    return isinstance(error, sqlite3.OperationalError) and (
        "database is locked" in message
        or "database table is locked" in message
        or "busy" in message
    )


def read_only_uri(path: Path, display: str) -> str | None:
    """How to read an existing ledger in a folder this process cannot write, else ``None``.

    A WAL database is opened with its ``-shm`` index beside it, which SQLite creates when
    missing: in a read-only folder (a read-only mount, a snapshot, another user's archive)
    the usual open fails with "unable to open database file". With ``-shm`` there, SQLite
    reads it read-only (``mode=ro``: a writer elsewhere still coordinates through it). With
    none, no connection has the file open in WAL mode (each keeps ``-shm`` while open), so
    the file is read as it is (``immutable=1``, no locks), unless its ``-wal`` holds changes
    (copied without its ``-shm``), which that would leave out: ``LedgerPathError``.

    Returns:
        A SQLite URI (``sqlite3.connect(..., uri=True)``), or ``None``: the folder can be
        written, or there is no file (the usual open says what is wrong).
    """
    folder = path.parent
    if os.access(folder, os.W_OK) or not path.is_file():
        return None
    uri = path.resolve().as_uri()
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    if shm.is_file():
        return uri + "?mode=ro"
    try:
        pending = wal.stat().st_size > 0
    except OSError:  # no -wal: every change is in the file
        pending = False
    if pending:
        raise LedgerPathError(
            f"cannot read ledger {display}: its folder cannot be written and its changes in "
            f"{wal.name} are read only with {shm.name}, which is not there: copy the file "
            "and its -wal to a writable folder and read the copy"
        )
    return uri + "?immutable=1"


class SQLiteStore(SQLiteReads):
    """Tables, transactions and queries of one SQLite ledger. Thread-safe.

    The same methods as :class:`greenprint.ledger._sql.SQLStore`, which :class:`Ledger` uses
    for PostgreSQL.
    """

    def __init__(self, target: Target, *, create: bool) -> None:
        check_sqlite_library(target.display)
        self.target = target
        self._database = ":memory:" if target.path is None else str(target.path)
        # a ledger in a folder this process cannot write (a read-only mount, an archive) is
        # read as it is (read_only_uri); every write then fails as "cannot write ledger"
        self.read_only = False
        if not create and target.path is not None:
            uri = read_only_uri(target.path, target.display)
            if uri is not None:
                self._database, self.read_only = uri, True
        self._idle: list[sqlite3.Connection] = []  # changed in place (see _close_collected)
        self._closed = False  # close() was called: a connection returned then is closed
        # re-entrant: a signal handler on the thread inside _acquire/_release (SIGTERM ending
        # its runs writes their records) takes it again instead of waiting on itself for good
        self._pool_lock = threading.RLock()
        # The writers of one process queue here rather than in SQLite's busy handler; an
        # in-memory ledger has a single connection, so every access queues.
        self._write_lock = threading.RLock()
        self._told_locked = False  # that the ledger is locked by another process (said once)
        self._memory: sqlite3.Connection | None = None
        self._memory_held: list[sqlite3.Connection] = []  # the same, for _close_collected
        self._pid = os.getpid()
        # a store nobody closed: its connections closed inside the fork gate when collected
        # (dropped there, they would close on whatever thread, while another may fork); not
        # at exit, where they close as the interpreter ends, as before
        weakref.finalize(
            self, _close_collected, self._database, self._idle, self._memory_held
        ).atexit = False
        watch_store(self)  # a forked child makes its locks anew (_sqlite_forks)
        # the file this store holds open: no handle of this process on it is closed meanwhile
        # (closing one would release this store's locks: see _handles)
        identity = None if target.path is None else file_identity(target.path)
        store_opened(identity)
        # released once: by close(), or when a store nobody closed is collected (else its
        # file would count as open for good, and a new file given its inode number later
        # would skip the header check)
        self._release_file = weakref.finalize(self, store_closed, identity)
        try:
            self.schema_version = self._open(create=create)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connections
    def _connect(self, wait_ms: int = _BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        """A new connection whose busy timeout is ``wait_ms`` (its pragmas may wait on a lock).

        Called inside :data:`~greenprint.ledger._sqlite_forks.FORK_GATE`, as every SQLite call
        here. In a forked child, the connections to this file it inherited are closed first
        (:func:`~greenprint.ledger._sqlite_forks.close_inherited`).
        """
        if INHERITED:
            close_inherited(self._database)
        conn = sqlite3.connect(
            self._database,
            timeout=wait_ms / 1000,
            check_same_thread=False,
            isolation_level=None,  # we emit BEGIN ourselves (transactional DDL)
            uri=self.read_only,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: safe against process crashes
        except BaseException:  # a ledger locked by another process past the wait
            conn.close()
            raise
        return conn

    def _acquire(self, wait_ms: int = _BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        """An idle connection, else a new one that waits ``wait_ms`` for its first locks."""
        if self.target.memory:
            if self._memory is None:
                self._memory = self._connect()
                self._memory_held.append(self._memory)
            return self._memory
        with self._pool_lock:
            try:
                return self._idle.pop()
            except IndexError:  # none idle (or a handler on this thread took the last)
                pass
        return self._connect(wait_ms)

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn is self._memory:
            return
        with self._pool_lock:
            if not self._closed and len(self._idle) < _POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def after_fork_in_child(self) -> tuple[str, list[sqlite3.Connection]]:
        """In a forked child: the store's locks anew; its parent's pooled connections, taken out.

        A thread of the parent inside a transaction at the fork is not in the child, but its
        hold on the write lock is. The connections returned are closed before the child opens
        its first own to this file (:mod:`~greenprint.ledger._sqlite_forks`); an in-memory
        ledger's one connection is not pooled.
        """
        self._pool_lock = threading.RLock()
        self._write_lock = threading.RLock()
        idle = list(self._idle)
        self._idle.clear()
        return self._database, idle

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # a forked child must not share the parent's connections
            with self._pool_lock:
                # the parent's, taken at the fork: closed before the child's first
                set_aside(self._database, list(self._idle))
                self._idle.clear()
            self._pid = os.getpid()

    # ------------------------------------------------------------------ transactions
    def transaction(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``fn(conn)`` in one transaction, retrying it while the database is busy.

        Raises:
            LedgerPathError: the ledger cannot be written (read-only file, no permission).
            LedgerError: any other database error (the message names the ledger).
        """
        self._check_fork()
        started = time.monotonic()
        deadline = started + RETRY_DEADLINE_S
        delay_s = 0.005
        lock: Any = self._write_lock if write or self.target.memory else _NO_LOCK
        while True:
            try:
                if lock is _NO_LOCK:
                    return self._once(fn, write=write, started=started)
                # SIGTERM's handler would write on another connection (an in-memory
                # ledger: this one): it waits for this transaction to end, and for the
                # lock to be let go (a sampler waiting on it to flush must stop first)
                with write_section(), lock:
                    return self._once(fn, write=write, started=started)
            except sqlite3.Error as e:
                if _is_transient(e) and time.monotonic() < deadline:
                    self._tell_locked(started, deadline)
                    logger.debug("ledger %s busy, retrying in %.3f s", self.target.display, delay_s)
                    time.sleep(delay_s * _jitter(0.5, 1.5))
                    delay_s = min(delay_s * 2, 0.5)
                    continue
                raise self._translate(e) from e

    def _tell_locked(self, started: float, deadline: float) -> None:
        """Say once that the ledger is locked, when a transaction has waited for it a while.

        Args:
            started: when the transaction began (``time.monotonic()``), s.
            deadline: when it stops retrying, s; a last try may wait :data:`BUSY_TIMEOUT_S` more.
        """
        now = time.monotonic()
        if self._told_locked or now - started < TELL_LOCKED_AFTER_S:
            return
        self._told_locked = True
        logger.warning(
            "greenprint: ledger %s is locked by another process; waiting for it, at most %.0f s "
            "more",
            self.target.display,
            max(deadline - now, 0.0) + BUSY_TIMEOUT_S,
        )

    def _busy_wait_ms(self, started: float) -> int:
        """The busy timeout of a try begun now, ms.

        Until the time to say the ledger is locked (:data:`TELL_LOCKED_AFTER_S` after
        ``started``, while not said yet), else the usual (:data:`BUSY_TIMEOUT_S`).
        """
        if not self._told_locked and self.target.path is not None:
            left_s = started + TELL_LOCKED_AFTER_S - time.monotonic()
            if left_s > 0:
                return max(int(left_s * 1000), 1)
        return int(BUSY_TIMEOUT_S * 1000)

    def _once(self, fn: Callable[[sqlite3.Connection], T], *, write: bool, started: float) -> T:
        # a fork waits for the transaction to end (a mutex of SQLite's, or its lock state,
        # copied mid-transaction, would hang the child's SQLite calls): _sqlite_forks.ForkGate
        with FORK_GATE:
            if ORPHANS:  # connections of stores collected unclosed
                close_orphans()
            return self._once_inside(fn, write=write, started=started)

    def _once_inside(
        self, fn: Callable[[sqlite3.Connection], T], *, write: bool, started: float
    ) -> T:
        wait_ms = self._busy_wait_ms(started)
        conn = self._acquire(wait_ms)
        if wait_ms != _BUSY_TIMEOUT_MS:
            conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except BaseException:
            # a connection left mid-transaction (COMMIT or ROLLBACK failed) is not reused
            if conn.in_transaction:
                self._discard(conn)
            else:
                self._usual_wait(conn, wait_ms)
                self._release(conn)
            raise
        self._usual_wait(conn, wait_ms)
        self._release(conn)
        return result

    def _usual_wait(self, conn: sqlite3.Connection, wait_ms: int) -> None:
        """Give ``conn`` back its usual busy timeout after a try with a shorter one."""
        if wait_ms != _BUSY_TIMEOUT_MS:
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            except sqlite3.Error:  # pragma: no cover - a pragma that takes no lock
                pass  # a shorter wait, retried until the deadline: never the transaction's error

    def _discard(self, conn: sqlite3.Connection) -> None:
        if conn is self._memory:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def _translate(self, error: sqlite3.Error) -> LedgerError:
        text = str(error).strip()
        message = text.splitlines()[0] if text else type(error).__name__
        where = self.target.display
        lowered = message.lower()
        if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
            return LedgerPathError(f"cannot write ledger {where}: {message}")
        return LedgerError(f"ledger {where}: {message}")

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _inspect(conn: sqlite3.Connection) -> tuple[set[str], int | None]:
        """Tables present and the recorded schema version (``None``: no valid version table)."""
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite~_%' ESCAPE '~'"
            )
        }
        if "schema_version" not in tables:
            return tables, None
        columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_version)")}
        if "version" not in columns:
            return tables, None
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return tables, int(version) if version is not None else None

    def _read_layout(self) -> tuple[set[str], int | None]:
        try:
            return self.transaction(self._inspect, write=False)
        except LedgerError as e:
            if "not a database" in str(e):
                raise NotALedgerError(
                    f"{self.target.display} is not a greenprint ledger (not a readable SQLite "
                    "database); left untouched"
                ) from e
            raise

    def _check_layout(self, tables: set[str], version: int | None) -> int:
        return check_layout(tables, version, where=self.target.display)

    def _open(self, *, create: bool) -> int:
        tables, version = self._read_layout()
        wal = False
        if not tables:
            if not create:
                raise LedgerPathError(f"no ledger at {self.target.display} (no tables)")
            self._set_wal()
            wal = True
            tables, version = self.transaction(self._create_if_empty, write=True)
        version = self._check_layout(tables, version)
        if self.read_only:
            if version < SCHEMA_VERSION:  # migrated in place only
                raise LedgerPathError(
                    f"cannot read ledger {self.target.display}: its layout is an older one "
                    f"(version {version}, greenprint's is {SCHEMA_VERSION}), which greenprint "
                    "updates in place, and its folder cannot be written: copy the file to a "
                    "writable folder and read the copy"
                )
            return version
        if not wal:
            self._set_wal()
        if version < SCHEMA_VERSION:
            version = self._migrate()
        return version

    def _migrate(self) -> int:
        """Migrate an older file ledger with the SQLAlchemy path (imported only here)."""
        from greenprint.ledger._sql import SQLStore

        store = SQLStore(self.target, create=False)  # migrates in one transaction, or raises
        try:
            return store.schema_version
        finally:
            store.close()

    def _set_wal(self) -> None:
        if self.target.path is None:
            return
        started = time.monotonic()
        deadline = started + RETRY_DEADLINE_S
        while True:
            try:
                with FORK_GATE:  # a fork waits for it, as for a transaction
                    self._set_wal_once(self._busy_wait_ms(started))
                return
            except sqlite3.Error as e:
                if "locked" in str(e).lower() and time.monotonic() < deadline:
                    self._tell_locked(started, deadline)
                    time.sleep(_jitter(0.005, 0.05))
                    continue
                raise LedgerError(f"cannot open ledger {self.target.display}: {e}") from e

    def _set_wal_once(self, wait_ms: int) -> None:
        conn = self._acquire(wait_ms)
        try:
            if wait_ms != _BUSY_TIMEOUT_MS:
                conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        finally:
            self._usual_wait(conn, wait_ms)
            self._release(conn)

    def _create_if_empty(self, conn: sqlite3.Connection) -> tuple[set[str], int | None]:
        """Create the schema unless someone did meanwhile; the layout now (as ``_inspect``)."""
        tables, version = self._inspect(conn)
        if not tables:  # nobody created it while we waited for the lock
            for statement in (*CREATE_STATEMENTS, *SQLITE_TRIGGERS):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at, greenprint_version) "
                "VALUES (?, ?, ?)",
                (SCHEMA_VERSION, time.time(), __version__),
            )
            return self._inspect(conn)
        return tables, version

    def close(self) -> None:
        """Close every pooled connection (a connection in use closes when it is returned)."""
        with self._pool_lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
        with FORK_GATE:  # a fork waits for the closes (each takes SQLite's mutexes)
            for conn in idle:
                conn.close()
            if self._memory is not None:
                self._memory.close()
                self._memory = None
                self._memory_held.clear()
        self._release_file()  # once: close() may be called again

    # ------------------------------------------------------------------ writes
    def insert_run(self, values: Mapping[str, Any], points: Sequence[MetricPoint]) -> bool:
        """Insert a run and its metrics; ``False`` if a run with this id already exists."""
        names = _columns(values)
        statement = f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        params = [_bound(n, values[n]) for n in names]

        def do(conn: sqlite3.Connection) -> bool:
            found = conn.execute("SELECT id FROM runs WHERE id = ?", (values["id"],)).fetchone()
            if found is not None:
                return False
            conn.execute(statement, params)
            self._insert_points(conn, values["id"], points, ())
            return True

        return self.transaction(do, write=True)

    def update_run(
        self,
        run_id: str,
        values: Mapping[str, Any],
        points: Sequence[MetricPoint],
        power: Sequence[PowerSample],
    ) -> bool:
        """Update fields and append metrics and samples; ``False`` if the run does not exist."""

        def do(conn: sqlite3.Connection) -> bool:
            if not self.update_fields(conn, run_id, values):
                return False
            self._insert_points(conn, run_id, points, power)
            return True

        return self.transaction(do, write=True)

    @staticmethod
    def update_fields(conn: sqlite3.Connection, run_id: str, values: Mapping[str, Any]) -> bool:
        """Set a run's fields in the transaction of ``conn``; ``False`` if it does not exist.

        ``values``: stored values, as ``encode_field`` returns them; none only checks that the
        run exists.
        """
        names = _columns(values)
        if not names:
            found = conn.execute("SELECT id FROM runs WHERE id = ?", (run_id,)).fetchone()
            return found is not None
        statement = f"UPDATE runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
        params = [_bound(n, values[n]) for n in names] + [run_id]
        return bool(conn.execute(statement, params).rowcount)

    @staticmethod
    def _insert_points(
        conn: sqlite3.Connection,
        run_id: str,
        points: Sequence[MetricPoint],
        power: Sequence[PowerSample],
    ) -> None:
        if points:
            conn.executemany(
                _INSERT_METRIC,
                [(run_id, p.name, p.step, _bind_float(p.value), p.time) for p in points],
            )
        if power:
            conn.executemany(
                _INSERT_SAMPLE,
                [
                    (
                        run_id,
                        s.t0,
                        s.t1,
                        _bind_float(s.cpu_w),
                        _bind_float(s.gpu_w),
                        _bind_float(s.ram_w),
                        _bind_float(s.intensity_g_per_kwh),
                    )
                    for s in power
                ],
            )


def _close_collected(
    database: str, idle: list[sqlite3.Connection], memory: list[sqlite3.Connection]
) -> None:
    """The connections of a store collected unclosed, closed inside the fork gate.

    A finalizer, run by the garbage collector on any thread: while a fork waits at the gate
    (which this must not wait for: it may run inside a lock a fork handler takes), they are
    left to the next SQLite call (:func:`~greenprint.ledger._sqlite_forks.orphan`).
    """
    if not idle and not memory:
        return
    if not FORK_GATE.enter_now():
        orphan(database, idle)
        orphan(database, memory)
        return
    try:
        for held in (idle, memory):
            while held:
                held.pop().close()
    finally:
        FORK_GATE.__exit__()


def _jitter(low: float, high: float) -> float:
    """A random delay factor, for retries only (``random`` is imported on the first retry)."""
    import random

    return random.uniform(low, high)


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
