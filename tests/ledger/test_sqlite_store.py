"""SQLite ledgers on the standard library: the same schema as SQLAlchemy's, no SQLAlchemy import."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.dialects.sqlite  # sa.dialects.sqlite below, whatever the test order

from greenprint import MetricPoint, PowerSample
from greenprint.ledger import Ledger, _schema
from greenprint.ledger._sqlite import CREATE_STATEMENTS, SCHEMA_VERSION

from .conftest import make_record


def master(path: Path) -> set[tuple[str, str, str | None]]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT type, name, sql FROM sqlite_master"))
    finally:
        conn.close()


def test_the_statements_are_sqlalchemys_compilation_of_the_schema():
    dialect = sa.dialects.sqlite.dialect()
    compiled = []
    for table in _schema.metadata.sorted_tables:
        compiled.append(str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip())
        for index in table.indexes:
            compiled.append(str(sa.schema.CreateIndex(index).compile(dialect=dialect)).strip())
    assert sorted(compiled) == sorted(CREATE_STATEMENTS)
    assert SCHEMA_VERSION == _schema.SCHEMA_VERSION


def test_a_new_ledger_has_the_schema_sqlalchemy_creates(tmp_path):
    Ledger(tmp_path / "stdlib.db").close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'sqlalchemy.db'}")
    with engine.begin() as conn:
        _schema.create_current(conn)
    engine.dispose()
    assert master(tmp_path / "stdlib.db") == master(tmp_path / "sqlalchemy.db")


def test_rows_written_here_read_the_same_through_sqlalchemy(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        led.start_run(make_record("abcd0001", fpo=3 * 10**23, git_dirty=True, energy_kwh=0.5))
        led.flush(
            "abcd0001",
            fields={"emissions_kg": float("nan")},
            metrics=[MetricPoint("loss", float("nan"), 1, 1.0), MetricPoint("acc", math.inf)],
            samples=[PowerSample(1.0, 2.0, cpu_w=float("nan"), ram_w=3.0)],
        )
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        run = conn.execute(sa.select(_schema.runs)).one()
        values = [m.value for m in conn.execute(sa.select(_schema.metrics))]
        sample = conn.execute(sa.select(_schema.samples)).one()
    engine.dispose()
    assert run.fpo == str(3 * 10**23) and run.git_dirty is True and run.energy_kwh == 0.5
    assert math.isnan(run.emissions_kg)
    assert math.isnan(values[0]) and values[1] == math.inf
    assert math.isnan(sample.cpu_w) and sample.ram_w == 3.0 and sample.gpu_w is None


def test_opening_and_writing_a_sqlite_ledger_does_not_import_sqlalchemy(tmp_path):
    code = (
        "import sys, greenprint as gp\n"
        f"led = gp.Ledger({str(tmp_path / 'l.db')!r})\n"
        "led.start_run(gp.RunRecord(id='abcd0001', name='x'))\n"
        "led.flush('abcd0001', fields={'energy_kwh': 1.0})\n"
        "assert led.run('abcd').energy_kwh == 1.0 and len(led.runs()) == 1\n"
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_sqlite_library_too_old_for_the_triggers_is_refused_in_one_line() -> None:
    """SQLite before 3.24 (2018) has no upsert, which the metric_marks triggers use: the
    ledger says so, and what to use instead, rather than a syntax error from a trigger."""
    import pytest

    from greenprint import LedgerError
    from greenprint.ledger._sqlite import check_sqlite_library

    check_sqlite_library("x.db")  # this Python's library
    check_sqlite_library("x.db", (3, 24, 0))
    with pytest.raises(LedgerError, match=r"SQLite library is 3\.22\.0, older than 3\.24") as e:
        check_sqlite_library("x.db", (3, 22, 0))
    assert "\n" not in str(e.value) and "PostgreSQL" in str(e.value)


def test_a_signal_handler_on_the_thread_inside_the_pool_lock_does_not_wait_on_itself(
    tmp_path,
) -> None:
    """SIGTERM's handler ends the process's runs and writes their records, on the main thread,
    which may be inside the connection pool's lock (taking or returning a connection) when the
    signal lands: a plain lock made the handler wait on its own thread for good. Forced here by
    writing from inside the lock, on a thread that is given 10 s."""
    import threading

    from greenprint import RunRecord

    led = Ledger(tmp_path / "l.db")
    store = led._store
    led.start_run(RunRecord(id="a" * 32, name="warm", study="s"))  # a connection in the pool
    done = threading.Event()

    def inside_the_lock() -> None:
        with store._pool_lock:  # where the handler interrupts the thread
            led.start_run(RunRecord(id="b" * 32, name="from-the-handler", study="s"))
        done.set()

    worker = threading.Thread(target=inside_the_lock, daemon=True)
    worker.start()
    worker.join(10)
    assert done.is_set(), "the write waited on the pool lock its own thread holds"
    assert {r.name for r in led.runs()} == {"warm", "from-the-handler"}
    led.close()
