"""The SQL side of a ledger: one SQLAlchemy Core code path for SQLite and PostgreSQL.

SQLite: WAL journal, a busy timeout, write transactions opened with ``BEGIN IMMEDIATE`` (so two
writers queue instead of dead-locking on a lock upgrade), DDL inside real transactions (pysqlite's
own transaction handling is turned off), and retries with backoff when the file stays locked.
PostgreSQL: psycopg 3; schema creation and migration serialised by an advisory lock; retries on
serialisation failures and deadlocks.

Imported only when a ledger is opened: this module imports SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from greenprint._exceptions import (
    LedgerError,
    LedgerPathError,
    NotALedgerError,
    SchemaVersionError,
)
from greenprint._imports import require
from greenprint._lifecycle import write_section
from greenprint._records import MetricPoint, PowerSample
from greenprint.ledger import _pg_migration, _schema
from greenprint.ledger._layout import BUSY_TIMEOUT_S, RETRY_DEADLINE_S, check_layout
from greenprint.ledger._pg_ping import bounded_ping
from greenprint.ledger._schema import metrics as metrics_t
from greenprint.ledger._schema import runs as runs_t
from greenprint.ledger._schema import samples as samples_t
from greenprint.ledger._sql_reads import SQLReads
from greenprint.ledger._sqlite_forks import FORK_GATE
from greenprint.ledger._target import Target

__all__ = ["SQLStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ADVISORY_LOCK_KEY = 0x67726E70  # "grnp": serialises schema creation/migration on PostgreSQL
_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL: "must be owner of relation metrics"
_WRITE = "greenprint_write"

#: A migration of a ledger of at least this many metric points (its largest ``seq``) is said
#: on stderr (a warning), not only logged: its marks take about 1.3 s of CPU per million points.
MIGRATION_NOTICE_POINTS = 1_000_000


#: How long a PostgreSQL connection may take to open, in seconds, unless the URL says
#: (``?connect_timeout=N``): libpq's default is to wait for ever, and a host that accepts the
#: TCP connection and never answers (a stuck server, a port of another service) hung every
#: command and ``gp.track`` on it.
CONNECT_TIMEOUT_S = 10


def _create_engine(target: Target) -> Engine:
    if target.backend == "postgresql":
        require("psycopg", extra="postgres", purpose="a PostgreSQL ledger")  # SQLAlchemy's driver
        try:
            url = sa.engine.make_url(target.url)
            connect_args = {}
            if "connect_timeout" not in url.query:
                connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
            engine = sa.create_engine(url, connect_args=connect_args)
        except (sa.exc.ArgumentError, ValueError) as e:
            # a message of SQLAlchemy's own may quote the whole URL: never its password
            raise LedgerPathError(f"bad ledger URL {target.display}: {type(e).__name__}") from e
        # a pooled connection is pinged, its answer awaited as long as a new one's (a server
        # that stops answering hung the next run for ever: greenprint.ledger._pg_ping)
        bounded_ping(engine, url, CONNECT_TIMEOUT_S)
        return engine
    if target.memory:
        engine = sa.create_engine(
            "sqlite://",
            poolclass=sa.pool.StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        url = sa.engine.URL.create("sqlite", database=str(target.path))
        engine = sa.create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (transactional DDL)
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: safe against process crashes
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _is_transient(error: sa.exc.DBAPIError) -> bool:
    orig = error.orig
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    message = str(orig).lower()
    return isinstance(error, sa.exc.OperationalError) and (
        "database is locked" in message
        or "database table is locked" in message
        or "busy" in message
    )


class SQLStore(SQLReads):
    """Tables, transactions and queries of one ledger database. Thread-safe."""

    def __init__(self, target: Target, *, create: bool, migration_notice: bool = True) -> None:
        self.target = target
        # False: a migration of a big ledger is not said on stderr (a merge's private snapshot
        # of an input: neither waited for by other processes nor migrated once)
        self._migration_notice = migration_notice
        self._engine = _create_engine(target)
        self._writer = self._engine.execution_options(**{_WRITE: True})
        # SQLite: the writers of one process queue here rather than in SQLite's busy handler;
        # an in-memory ledger has a single connection, so every access queues. PostgreSQL
        # handles concurrent transactions itself.
        lock = threading.RLock()
        unlocked: contextlib.nullcontext[None] = contextlib.nullcontext()
        self._write_lock = lock if target.backend == "sqlite" else unlocked
        self._read_lock = lock if target.memory else unlocked
        # SQLite: a fork waits for every call of this store to end (_sqlite_forks.ForkGate)
        self._gate: Any = FORK_GATE if target.backend == "sqlite" else unlocked
        self._pid = os.getpid()
        _STORES.add(self)  # a forked child makes its lock anew (_after_fork)
        try:
            self.schema_version = self._open(create=create)
        except BaseException:
            with self._gate:
                self._engine.dispose()
            raise

    # ------------------------------------------------------------------ transactions
    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # a forked child must not share the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    def transaction(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        """Run ``fn(conn)`` in one transaction, retrying it while the database is busy.

        Raises:
            LedgerPathError: the ledger cannot be written (read-only file, no permission).
            LedgerError: any other database error (the message names the ledger).
        """
        self._check_fork()
        deadline = time.monotonic() + RETRY_DEADLINE_S
        delay_s = 0.005
        engine = self._writer if write else self._engine
        lock = self._write_lock if write else self._read_lock
        # SIGTERM's handler writes on another connection (an in-memory ledger: this one),
        # which may wait on this transaction: it waits for the transaction to end instead,
        # and for the lock to be let go (a sampler waiting on it to flush must stop first)
        held: Any = write_section() if write or self.target.memory else contextlib.nullcontext()
        while True:
            try:
                with held, lock, self._gate, engine.begin() as conn:
                    return fn(conn)
            except sa.exc.DBAPIError as e:
                if _is_transient(e) and time.monotonic() < deadline:
                    logger.debug("ledger %s busy, retrying in %.3f s", self.target.display, delay_s)
                    time.sleep(delay_s * random.uniform(0.5, 1.5))
                    delay_s = min(delay_s * 2, 0.5)
                    continue
                raise self._translate(e) from e

    def _translate(self, error: sa.exc.DBAPIError) -> LedgerError:
        message = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        where = self.target.display
        lowered = message.lower()
        if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
            return LedgerPathError(f"cannot write ledger {where}: {message}")
        if isinstance(error, sa.exc.OperationalError) and self.target.backend == "postgresql":
            if "timeout expired" in lowered:
                given = sa.engine.make_url(self.target.url).query.get("connect_timeout")
                message += (
                    f" (no answer from the server in {given or CONNECT_TIMEOUT_S} s per attempt: "
                    "is it a PostgreSQL server? ?connect_timeout=SECONDS in the URL waits longer)"
                )
            return LedgerPathError(f"cannot use ledger {where}: {message}")
        return LedgerError(f"ledger {where}: {message}")

    # ------------------------------------------------------------------ opening
    def _inspect(self, conn: Connection) -> tuple[set[str], int | None]:
        """Tables present and the recorded schema version (``None``: no valid version table)."""
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        if "schema_version" not in tables:
            return tables, None
        columns = {c["name"] for c in inspector.get_columns("schema_version")}
        if "version" not in columns:
            return tables, None
        version = conn.execute(sa.select(sa.func.max(_schema.schema_version.c.version))).scalar()
        return tables, int(version) if version is not None else None

    def _read_layout(self) -> tuple[set[str], int | None]:
        try:
            return self.transaction(self._inspect, write=False)
        except LedgerError as e:
            if self.target.backend == "sqlite" and "not a database" in str(e):
                raise NotALedgerError(
                    f"{self.target.display} is not a greenprint ledger (not a readable SQLite "
                    "database); left untouched"
                ) from e
            raise

    def _check_layout(self, tables: set[str], version: int | None) -> int:
        return check_layout(tables, version, where=self.target.display)

    def _open(self, *, create: bool) -> int:
        tables, version = self._read_layout()
        if not tables:
            if not create:
                raise LedgerPathError(f"no ledger at {self.target.display} (no tables)")
            self._set_wal()
            self.transaction(self._create_if_empty, write=True)
            tables, version = self._read_layout()
        version = self._check_layout(tables, version)
        if self.target.path is not None:
            self._set_wal()
        if version < _schema.SCHEMA_VERSION:
            version = self._migrate_when_free()
        return version

    def _migrate_when_free(self) -> int:
        """Migrate, trying again while other PostgreSQL sessions hold the tables.

        Says so once, naming them, and gives up after a while with their description (see
        :mod:`greenprint.ledger._pg_migration`). SQLite: one try, waiting as any write does.
        """
        deadline = time.monotonic() + _pg_migration.MIGRATION_WAIT_S
        told = False
        while True:
            try:
                return self.transaction(self._migrate, write=True)
            except _pg_migration.TablesHeld as held:
                who = _pg_migration.holders(self._engine)
                if time.monotonic() >= deadline:
                    raise SchemaVersionError(
                        f"cannot migrate ledger {self.target.display} from schema "
                        f"{held.from_version} to {_schema.SCHEMA_VERSION}: {who} held its tables "
                        f"for {_pg_migration.MIGRATION_WAIT_S:.0f} s; the ledger was left "
                        "unchanged; end that transaction (COMMIT or ROLLBACK in it, or SELECT "
                        "pg_terminate_backend(PID)) and open the ledger again"
                    ) from held
                if not told:
                    told = True
                    logger.warning(
                        "greenprint: ledger %s: waiting to migrate it from schema %d to %d: %s "
                        "holds its tables; trying again for %.0f s (its other users wait "
                        "%.0f s at most meanwhile)",
                        self.target.display,
                        held.from_version,
                        _schema.SCHEMA_VERSION,
                        who,
                        _pg_migration.MIGRATION_WAIT_S,
                        _pg_migration.LOCK_WAIT_S,
                    )
                time.sleep(random.uniform(0.5, 1.5))

    def _set_wal(self) -> None:
        if self.target.path is None:
            return

        def pragma() -> None:
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.close()
            finally:
                raw.close()

        deadline = time.monotonic() + RETRY_DEADLINE_S
        while True:
            try:
                with self._gate:
                    pragma()
                return
            except sqlite3.Error as e:
                if "locked" in str(e).lower() and time.monotonic() < deadline:
                    time.sleep(random.uniform(0.005, 0.05))
                    continue
                raise LedgerError(f"cannot open ledger {self.target.display}: {e}") from e

    def _lock_schema(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))

    def _create_if_empty(self, conn: Connection) -> None:
        self._lock_schema(conn)
        tables, _ = self._inspect(conn)
        if not tables:  # nobody created it while we waited for the lock
            _schema.create_current(conn)

    def _migrate(self, conn: Connection) -> int:
        self._lock_schema(conn)
        tables, version = self._inspect(conn)
        version = self._check_layout(tables, version)
        if version == _schema.SCHEMA_VERSION:
            return version
        if conn.dialect.name == "postgresql":  # after the advisory lock: see _pg_migration
            _pg_migration.bound_lock_waits(conn)
        # every migration to schema 6 computes every metric's marks from the points, the
        # ledger's writers waiting (4 million points: 5.3 s of CPU, 14 s at a load of 9 on 2
        # CPUs); a big one is said, so that nobody takes it for a hang
        points = conn.execute(sa.select(sa.func.max(metrics_t.c.seq))).scalar() or 0
        big = self._migration_notice and points >= MIGRATION_NOTICE_POINTS
        log = logger.warning if big else logger.info
        log(
            "greenprint: migrating ledger %s from schema %d to %d (%s metric points: its marks "
            "are computed again, once; other processes wait for it)",
            self.target.display,
            version,
            _schema.SCHEMA_VERSION,
            f"{points:,}",
        )
        try:
            return _schema.migrate(conn, version)
        except sa.exc.DBAPIError as e:
            if getattr(e.orig, "sqlstate", None) == _pg_migration.LOCK_NOT_AVAILABLE:
                raise _pg_migration.TablesHeld(version) from e
            # a team's role granted the tables (docs/ledger.md, Roles) is not their owner: the
            # first of them to upgrade greenprint could not use the ledger, told only why
            owner = getattr(e.orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE
            raise SchemaVersionError(
                f"cannot migrate ledger {self.target.display} from schema {version} to "
                f"{_schema.SCHEMA_VERSION}: {e.orig}; the ledger was left unchanged"
                + (
                    "; only the role that owns its tables may migrate it: open it once as that "
                    "role with this greenprint (e.g. greenprint ledger ls --ledger URL); until "
                    "then the other roles keep the greenprint they had"
                    if owner
                    else ""
                )
            ) from e

    def close(self) -> None:
        """Release every pooled connection."""
        with self._gate:
            self._engine.dispose()

    # ------------------------------------------------------------------ writes
    def insert_run(self, values: Mapping[str, Any], points: Sequence[MetricPoint]) -> bool:
        """Insert a run and its metrics; ``False`` if a run with this id already exists."""

        def do(conn: Connection) -> bool:
            exists = conn.execute(sa.select(runs_t.c.id).where(runs_t.c.id == values["id"])).first()
            if exists is not None:
                return False
            conn.execute(runs_t.insert().values(**values))
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

        def do(conn: Connection) -> bool:
            if not self.update_fields(conn, run_id, values):
                return False
            self._insert_points(conn, run_id, points, power)
            return True

        return self.transaction(do, write=True)

    @staticmethod
    def update_fields(conn: Connection, run_id: str, values: Mapping[str, Any]) -> bool:
        """Set a run's fields in the transaction of ``conn``; ``False`` if it does not exist.

        ``values``: stored values, as ``encode_field`` returns them; none only checks that the
        run exists.
        """
        if not values:
            found = conn.execute(sa.select(runs_t.c.id).where(runs_t.c.id == run_id)).first()
            return found is not None
        result = conn.execute(runs_t.update().where(runs_t.c.id == run_id).values(**values))
        return bool(result.rowcount)

    @staticmethod
    def _insert_points(
        conn: Connection,
        run_id: str,
        points: Sequence[MetricPoint],
        power: Sequence[PowerSample],
    ) -> None:
        if points:
            conn.execute(
                metrics_t.insert(),
                [
                    {
                        "run_id": run_id,
                        "name": p.name,
                        "step": p.step,
                        "value": p.value,
                        "time": p.time,
                    }
                    for p in points
                ],
            )
        if power:
            conn.execute(
                samples_t.insert(),
                [
                    {
                        "run_id": run_id,
                        "t0": s.t0,
                        "t1": s.t1,
                        "cpu_w": s.cpu_w,
                        "gpu_w": s.gpu_w,
                        "ram_w": s.ram_w,
                        "intensity_g_per_kwh": s.intensity_g_per_kwh,
                    }
                    for s in power
                ],
            )


#: This process's stores, whose lock a forked child makes anew.
_STORES: weakref.WeakSet[SQLStore] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: every store's lock anew (a parent's thread may have held it)."""
    for store in list(_STORES):
        lock = threading.RLock()
        if store.target.backend == "sqlite":
            store._write_lock = lock
        if store.target.memory:
            store._read_lock = lock


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
