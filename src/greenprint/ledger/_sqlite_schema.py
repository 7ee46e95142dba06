"""A SQLite ledger's tables as created, and the SQLite library a ledger needs.

:data:`CREATE_STATEMENTS` is what SQLAlchemy's ``metadata.create_all`` emits on SQLite for the
schema of :mod:`greenprint.ledger._schema` (a test checks that it still is), so that a SQLite
ledger is created without importing SQLAlchemy; the ``metric_marks`` triggers
(:data:`~greenprint.ledger._marks.SQLITE_TRIGGERS`) follow them.
"""

from __future__ import annotations

import sqlite3

from greenprint._exceptions import LedgerError
from greenprint.ledger._fields import FIELD_KINDS

__all__ = ["CREATE_STATEMENTS", "MIN_SQLITE", "check_sqlite_library"]


def _ddl_runs() -> str:
    types = {
        "str": "TEXT",
        "status": "TEXT",
        "role": "TEXT",
        "float": "DOUBLE",
        "int": "BIGINT",
        "bigint": "TEXT",
        "bool": "BOOLEAN",
        "json": "TEXT",
    }
    lines = [
        f"\t{name} {types[kind]}{'' if nullable else ' NOT NULL'}, \n"
        for name, (kind, nullable) in FIELD_KINDS.items()
    ]
    return "CREATE TABLE runs (\n" + "".join(lines) + "\tPRIMARY KEY (id)\n)"


#: What SQLAlchemy's ``metadata.create_all`` emits on SQLite for the current schema, in order.
CREATE_STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE schema_version (\n\tversion INTEGER NOT NULL, \n\tapplied_at DOUBLE NOT NULL, "
    "\n\tgreenprint_version TEXT NOT NULL, \n\tPRIMARY KEY (version)\n)",
    _ddl_runs(),
    "CREATE INDEX ix_runs_parent_id ON runs (parent_id)",
    "CREATE INDEX ix_runs_study ON runs (study)",
    "CREATE INDEX ix_runs_started_at ON runs (started_at)",
    "CREATE TABLE metrics (\n\tseq INTEGER NOT NULL, \n\trun_id TEXT NOT NULL, \n\tname TEXT NOT "
    "NULL, \n\tstep BIGINT, \n\tvalue DOUBLE NOT NULL, \n\ttime DOUBLE NOT NULL, \n\tPRIMARY KEY "
    "(seq), \n\tFOREIGN KEY(run_id) REFERENCES runs (id)\n)",
    "CREATE INDEX ix_metrics_run_id ON metrics (run_id)",
    "CREATE TABLE samples (\n\tseq INTEGER NOT NULL, \n\trun_id TEXT NOT NULL, \n\tt0 DOUBLE NOT "
    "NULL, \n\tt1 DOUBLE NOT NULL, \n\tcpu_w DOUBLE, \n\tgpu_w DOUBLE, \n\tram_w DOUBLE, "
    "\n\tintensity_g_per_kwh DOUBLE, \n\tPRIMARY KEY (seq), \n\tFOREIGN KEY(run_id) REFERENCES "
    "runs (id)\n)",
    "CREATE INDEX ix_samples_run_id ON samples (run_id)",
    "CREATE TABLE metric_marks (\n\trun_id TEXT NOT NULL, \n\tname TEXT NOT NULL, \n\tfirst_seq "
    "BIGINT NOT NULL, \n\tvalid_seq BIGINT, \n\thigh_seq BIGINT, \n\thigh DOUBLE, \n\tlow_seq "
    "BIGINT, \n\tlow DOUBLE, \n\tlast_seq BIGINT NOT NULL, \n\tstep_seq BIGINT, \n\tmax_step "
    "BIGINT, \n\tPRIMARY KEY (run_id, name)\n)",
)


#: The oldest SQLite library a ledger works with: the ``metric_marks`` triggers upsert (3.24).
MIN_SQLITE = (3, 24, 0)


def check_sqlite_library(where: str, version: tuple[int, ...] | None = None) -> None:
    """Refuse a SQLite library too old for the ledger's triggers, with what to do instead.

    Args:
        where: the ledger's location as shown to the user.
        version: the library's version (default: the one Python's ``sqlite3`` is linked with).

    Raises:
        LedgerError: the library is older than :data:`MIN_SQLITE`.
    """
    found = sqlite3.sqlite_version_info if version is None else version
    if tuple(found) < MIN_SQLITE:
        raise LedgerError(
            f"cannot open ledger {where}: this Python's SQLite library is "
            f"{'.'.join(map(str, found))}, older than 3.24 (2018) that greenprint's ledger needs; "
            "use a Python built with a newer SQLite (python.org, conda, a current distribution) "
            "or a PostgreSQL ledger"
        )
