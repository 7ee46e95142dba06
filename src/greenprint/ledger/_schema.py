"""The ledger's tables (SQLAlchemy Core), its schema version and the migrations to reach it.

Schema history:
    * **1**: ``schema_version``, ``runs`` (no ``scope``, no ``machine_energy_kwh``), ``metrics``.
    * **2**: ``runs.scope`` (``"process"`` for older runs), ``runs.machine_energy_kwh`` (unknown,
      NULL, for older runs) and the ``samples`` table (power samples).
    * **3**: ``runs.role`` (``trial``, ``part``, ``baseline``, ``final``, ``learning-curve``,
      ``sweep``; NULL when not given, as for every older run: the analysis infers it).
    * **4**: distributed jobs: ``runs.job_id``, ``runs.node_rank``, ``runs.local_rank``,
      ``runs.node_meter`` and ``runs.contained`` (NULL for older runs: no job, and a child's
      measurement read as inside its parent's, as before).
    * **5**: the ``metric_marks`` table and the triggers on ``metrics`` that keep it
      (:mod:`greenprint.ledger._marks`): where each run's metric holds its first, first valid,
      largest, smallest and last value, so that a report does not scan every point.
    * **6**: ``metric_marks.step_seq`` and ``metric_marks.max_step``: the first point holding a
      metric's largest step, and that step (a run that logged a point without a step, or at a
      lower step, after its last step was read at the step of another mark). The marks of
      every metric are computed again from the points held, and the triggers made anew: a
      migrated ledger, from schema 4 or 5, has the marks of schema 6.

A migration is a function of an open connection, run inside the transaction that also records the
new version, so a failed migration leaves the ledger as it was. Migrations define the tables they
create themselves (frozen at their version), never from the current schema.

Imported only when a ledger is opened: this module imports SQLAlchemy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from greenprint._version import __version__
from greenprint.ledger._fields import FIELD_KINDS, SCHEMA_VERSION
from greenprint.ledger._marks import (
    POSTGRESQL_FILL,
    POSTGRESQL_STATEMENTS,
    SQLITE_FILL,
    SQLITE_TRIGGERS,
)

__all__ = [
    "DecimalText",
    "MIGRATIONS",
    "NonFiniteFloat",
    "SCHEMA_VERSION",
    "create_current",
    "metadata",
    "metric_marks",
    "metrics",
    "migrate",
    "record_version",
    "runs",
    "samples",
    "schema_version",
]


class NonFiniteFloat(sa.types.TypeDecorator[float]):
    """A double that keeps NaN and +/-infinity on every backend.

    PostgreSQL stores them natively. SQLite turns a bound NaN into NULL, so on SQLite NaN is
    stored as the text ``'NaN'`` (a REAL column keeps text it cannot parse as a number) and read
    back as ``float('nan')``; infinities are native REALs there too.
    """

    impl = sa.Double
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: Any) -> Any:  # the impl's own processor would turn "NaN" back
            if value is None:
                return None
            value = float(value)
            return "NaN" if math.isnan(value) else value

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        return None if value is None else float(value)


class DecimalText(sa.types.TypeDecorator[str]):
    """An integer of any size, stored as its decimal text (FPO can exceed 64 bits)."""

    impl = sa.Text
    cache_ok = True


def _id_type() -> sa.types.TypeEngine[int]:
    # SQLite only autoincrements "INTEGER PRIMARY KEY"; PostgreSQL gets BIGSERIAL.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


_KIND_TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "str": sa.Text,
    "status": sa.Text,
    "role": sa.Text,
    "float": NonFiniteFloat,
    "int": sa.BigInteger,
    "bigint": DecimalText,
    "bool": sa.Boolean,
    "json": sa.Text,
}

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Double, nullable=False),
    sa.Column("greenprint_version", sa.Text, nullable=False),
)


def _run_columns() -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = []
    for name, (kind, nullable) in FIELD_KINDS.items():
        if name == "id":
            columns.append(sa.Column("id", sa.Text, primary_key=True))
        else:
            columns.append(sa.Column(name, _KIND_TYPES[kind](), nullable=nullable))
    return columns


runs = sa.Table(
    "runs",
    metadata,
    *_run_columns(),
    sa.Index("ix_runs_study", "study"),
    sa.Index("ix_runs_parent_id", "parent_id"),
    sa.Index("ix_runs_started_at", "started_at"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("seq", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=True),
    sa.Column("value", NonFiniteFloat, nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Index("ix_metrics_run_id", "run_id"),
)

metric_marks = sa.Table(
    "metric_marks",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("valid_seq", sa.BigInteger, nullable=True),
    sa.Column("high_seq", sa.BigInteger, nullable=True),
    sa.Column("high", sa.Double, nullable=True),
    sa.Column("low_seq", sa.BigInteger, nullable=True),
    sa.Column("low", sa.Double, nullable=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("step_seq", sa.BigInteger, nullable=True),
    sa.Column("max_step", sa.BigInteger, nullable=True),
)

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("seq", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("t0", sa.Double, nullable=False),
    sa.Column("t1", sa.Double, nullable=False),
    sa.Column("cpu_w", NonFiniteFloat, nullable=True),
    sa.Column("gpu_w", NonFiniteFloat, nullable=True),
    sa.Column("ram_w", NonFiniteFloat, nullable=True),
    sa.Column("intensity_g_per_kwh", NonFiniteFloat, nullable=True),
    sa.Index("ix_samples_run_id", "run_id"),
)


def record_version(conn: Connection, version: int) -> None:
    """Record that the ledger is now at ``version`` (inside the caller's transaction)."""
    conn.execute(
        schema_version.insert().values(
            version=version, applied_at=time.time(), greenprint_version=__version__
        )
    )


def create_current(conn: Connection) -> None:
    """Create every table (and trigger) of the current schema and record its version."""
    metadata.create_all(conn)
    _create_mark_triggers(conn)
    record_version(conn, SCHEMA_VERSION)


def _create_mark_triggers(conn: Connection) -> None:
    """The triggers that keep ``metric_marks`` (:mod:`greenprint.ledger._marks`)."""
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):  # pragma: no cover - the two stores greenprint has
        raise NotImplementedError(f"metric marks on {name}")
    for statement in SQLITE_TRIGGERS if name == "sqlite" else POSTGRESQL_STATEMENTS:
        conn.exec_driver_sql(statement)


# ---------------------------------------------------------------------------------- migrations


def _v1_to_v2(conn: Connection) -> None:
    """v2 adds ``runs.scope``, ``runs.machine_energy_kwh`` and the ``samples`` table."""
    dialect = conn.dialect
    text_type = sa.Text().compile(dialect=dialect)
    double_type = sa.Double().compile(dialect=dialect)
    conn.exec_driver_sql(
        f"ALTER TABLE runs ADD COLUMN scope {text_type} NOT NULL DEFAULT 'process'"
    )
    conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN machine_energy_kwh {double_type}")
    frozen = sa.MetaData()
    sa.Table("runs", frozen, sa.Column("id", sa.Text, primary_key=True))
    v2_samples = sa.Table(
        "samples",
        frozen,
        sa.Column("seq", _id_type(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("t0", sa.Double, nullable=False),
        sa.Column("t1", sa.Double, nullable=False),
        sa.Column("cpu_w", sa.Double, nullable=True),
        sa.Column("gpu_w", sa.Double, nullable=True),
        sa.Column("ram_w", sa.Double, nullable=True),
        sa.Column("intensity_g_per_kwh", sa.Double, nullable=True),
        sa.Index("ix_samples_run_id", "run_id"),
    )
    v2_samples.create(conn)


def _v2_to_v3(conn: Connection) -> None:
    """v3 adds ``runs.role`` (NULL for older runs: not given)."""
    text_type = sa.Text().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN role {text_type}")


def _v3_to_v4(conn: Connection) -> None:
    """v4 adds the distributed-job columns (NULL for older runs)."""
    dialect = conn.dialect
    text_type = sa.Text().compile(dialect=dialect)
    int_type = sa.BigInteger().compile(dialect=dialect)
    bool_type = sa.Boolean().compile(dialect=dialect)
    for name, kind in (
        ("job_id", text_type),
        ("node_rank", int_type),
        ("local_rank", int_type),
        ("node_meter", bool_type),
        ("contained", bool_type),
    ):
        conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _v4_to_v5(conn: Connection) -> None:
    """v5 adds ``metric_marks``, as schema 5 had it, left empty.

    Schema 5 filled it and created the triggers that keep it; here the migration to v6, which
    follows in the same transaction, does both with the current schema's marks (schema 5's
    triggers are not kept: this greenprint never leaves a ledger at version 5).
    """
    frozen = sa.MetaData()
    sa.Table(
        "metric_marks",
        frozen,
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("valid_seq", sa.BigInteger, nullable=True),
        sa.Column("high_seq", sa.BigInteger, nullable=True),
        sa.Column("high", sa.Double, nullable=True),
        sa.Column("low_seq", sa.BigInteger, nullable=True),
        sa.Column("low", sa.Double, nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    ).create(conn)


#: Schema 5's objects that keep ``metric_marks``, dropped by the v6 migration (they may be
#: absent: a v4 ledger's v5 migration makes none).
_V5_MARK_OBJECTS = {
    "sqlite": (
        "DROP TRIGGER IF EXISTS metric_marks_insert",
        "DROP TRIGGER IF EXISTS metric_marks_delete",
        "DROP TRIGGER IF EXISTS metric_marks_update",
        "DROP TABLE IF EXISTS metric_marks_stale",
    ),
    "postgresql": ("DROP TRIGGER IF EXISTS metric_marks_change ON metrics",),
}


def _v5_to_v6(conn: Connection) -> None:
    """v6 adds the mark of each metric's largest step: every mark computed again, new triggers.

    The marks are computed from the points held, not only the new columns: a schema 5 metric
    that was stale (SQLite: a mark deleted by hand) gets its marks back too.
    """
    name = conn.dialect.name
    if name not in _V5_MARK_OBJECTS:  # pragma: no cover - the two stores greenprint has
        raise NotImplementedError(f"metric marks on {name}")
    int_type = sa.BigInteger().compile(dialect=conn.dialect)
    for statement in _V5_MARK_OBJECTS[name]:
        conn.exec_driver_sql(statement)
    conn.exec_driver_sql(f"ALTER TABLE metric_marks ADD COLUMN step_seq {int_type}")
    conn.exec_driver_sql(f"ALTER TABLE metric_marks ADD COLUMN max_step {int_type}")
    conn.exec_driver_sql("DELETE FROM metric_marks")
    conn.exec_driver_sql(SQLITE_FILL if name == "sqlite" else POSTGRESQL_FILL)
    _create_mark_triggers(conn)


# MIGRATIONS[i] takes a ledger from version i + 1 to version i + 2.
MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_to_v2,
    _v2_to_v3,
    _v3_to_v4,
    _v4_to_v5,
    _v5_to_v6,
]


def migrate(conn: Connection, from_version: int) -> int:
    """Apply the migrations from ``from_version`` up to :data:`SCHEMA_VERSION` on ``conn``.

    Returns:
        The version reached (always :data:`SCHEMA_VERSION`).
    """
    version = from_version
    while version < SCHEMA_VERSION:
        MIGRATIONS[version - 1](conn)
        version += 1
        record_version(conn, version)
    return version
