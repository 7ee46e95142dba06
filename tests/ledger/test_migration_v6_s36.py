"""The migration from schema 5 to 6 on real ledgers: random ones, killed, raced, written to.

Schema 6 computes every metric's marks again from its points and replaces schema 5's triggers
(``ledger._schema._v5_to_v6``). A schema 5 ledger here is the committed v5 fixture, its marks
kept by schema 5's own triggers (frozen: ``fixtures/_v5_marks_sql.py``) while random points
are inserted, deleted and updated (their step alone included, which schema 5's triggers did not
watch); migrated, every mark is the brute-force reading of the points, and a report's read
through the marks equals its read of every point (SQLite files and a real PostgreSQL).

A migration is one transaction: a process killed (SIGKILL) in the middle of it leaves the
ledger at schema 5 as it was, and the next open migrates it; two processes opening one schema 5
ledger at once: one migrates, the other waits for it and reads schema 6; points written while a
ledger migrates (by a process that opened it at schema 5, through schema 5's SQL, as an older
greenprint does) are all kept and marked.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import greenprint as gp

from .fixtures import _v5_marks_sql as frozen
from .fixtures.make_v1 import T0
from .fixtures.make_v5 import V5_PATH, load_v5
from .test_metric_marks import _figures, _point, _same, _step, brute_marks, marks_read, stored_marks

#: A run of the v5 fixture whose row the random runs copy (a trial of study ``patience``).
_MODEL_RUN = "9a7e0000000000000000000000000001"
_RUNS = ("r1", "r2")
_STUDY = "random"

_operation = st.one_of(
    st.tuples(st.just("insert"), st.lists(_point, min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 200)),
    st.tuples(st.just("update"), st.integers(0, 200), _point),
    st.tuples(st.just("step"), st.integers(0, 200), _step),  # schema 5 did not watch the step
)
_operations = st.lists(_operation, min_size=1, max_size=20)

_MARK_COLUMNS_SQL = (
    "run_id, name, first_seq, valid_seq, high_seq, high, low_seq, low, last_seq, step_seq, max_step"
)


def _statements(operations: list[Any], seqs: list[int]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each operation as the statements of one transaction (``seqs``: the points' seqs now)."""
    out: list[list[tuple[str, dict[str, Any]]]] = []
    for operation in operations:
        kind = operation[0]
        if kind == "insert":
            out.append(
                [
                    (
                        "INSERT INTO metrics (run_id, name, step, value, time) "
                        "VALUES (:r, :n, :s, :v, 0)",
                        {"r": r, "n": n, "s": s, "v": v},
                    )
                    for r, n, v, s in operation[1]
                ]
            )
            continue
        seq = seqs[operation[1] % len(seqs)]
        if kind == "delete":
            out.append([("DELETE FROM metrics WHERE seq = :q", {"q": seq})])
        elif kind == "step":
            out.append(
                [("UPDATE metrics SET step = :s WHERE seq = :q", {"s": operation[2], "q": seq})]
            )
        else:
            r, n, v, s = operation[2]
            out.append(
                [
                    (
                        "UPDATE metrics SET run_id = :r, name = :n, value = :v, step = :s "
                        "WHERE seq = :q",
                        {"r": r, "n": n, "v": v, "s": s, "q": seq},
                    )
                ]
            )
    return out


def _apply_sqlite(path: Path, operations: list[Any]) -> None:
    """The operations on a schema 5 SQLite file, one transaction each, as greenprint 5 stored
    values (NaN as the text 'NaN'); schema 5's triggers keep its marks. Not synced to disk
    (a commit each, as a flush, without its fsync): the file is this example's alone."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TEMP TABLE model AS SELECT * FROM runs WHERE id = ?", (_MODEL_RUN,))
        for run_id in _RUNS:
            conn.execute(
                "UPDATE model SET id = ?, name = ?, study = ?, parent_id = NULL",
                (run_id, run_id, _STUDY),
            )
            conn.execute("INSERT INTO runs SELECT * FROM model")
        conn.commit()
        for operation in operations:
            seqs = [s for (s,) in conn.execute("SELECT seq FROM metrics ORDER BY seq")]
            for sql, params in _statements([operation], seqs)[0]:
                bound = {
                    k: ("NaN" if isinstance(v, float) and v != v else v) for k, v in params.items()
                }
                conn.execute(sql, bound)
            conn.commit()
    finally:
        conn.close()


def _check_migrated(url: str) -> None:
    """The ledger at ``url`` (schema 5) opened: schema 6, every mark that of the points, and a
    report's read through the marks equal to the read of every point, run by run."""
    import sqlalchemy as sa

    with gp.Ledger(url) as led:
        assert led.schema_version == 6
        engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text("SELECT seq, run_id, name, value, step FROM metrics")
                ).all()
                marks = conn.execute(sa.text(f"SELECT {_MARK_COLUMNS_SQL} FROM metric_marks")).all()
        finally:
            engine.dispose()
        _same(stored_marks(marks), brute_marks(rows))
        assert marks_read(led._store)  # the fixture's long series: the read takes the marks
        every = {r.id: r for r in led.runs()}
        read = {r.id: r for r in led._read(points="score")}
        assert read.keys() == every.keys()
        for run_id, full in every.items():
            assert _figures(read[run_id].metrics) == _figures(full.metrics), run_id


#: Three points of r1 after the fixture's 156 (their indices: 156, 157, 158).
_THREE = ("insert", [("r1", "loss", 0.5, 1), ("r1", "loss", 0.4, 2), ("r1", "loss", 0.6, 3)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_operations)
# the last point's step raised by hand (schema 5's marks stay as they were), then another's
# lowered to none; the smallest deleted (schema 5: the metric stale, no point after it); a
# marked point moved to another run and made NaN
@example([_THREE, ("step", 158, 9), ("step", 157, None)])
@example([_THREE, ("delete", 157)])
@example([_THREE, ("update", 156, ("r2", "acc", math.nan, None)), ("delete", 156)])
def test_a_random_v5_sqlite_ledger_migrates_to_the_marks_of_its_points(
    operations: list[Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v5.db"
        shutil.copyfile(V5_PATH, path)
        _apply_sqlite(path, operations)
        _check_migrated(str(path))


def _load_random_v5(url: str, operations: list[Any]) -> None:
    """Schema 5 on PostgreSQL (the fixture's rows, schema 5's trigger), then the operations."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
            conn.exec_driver_sql("GRANT USAGE ON SCHEMA public TO PUBLIC")  # as a new database
            load_v5(conn)
            conn.execute(
                sa.text("CREATE TEMP TABLE model AS SELECT * FROM runs WHERE id = :i"),
                {"i": _MODEL_RUN},
            )
            for run_id in _RUNS:
                conn.execute(
                    sa.text("UPDATE model SET id = :i, name = :i, study = :s, parent_id = NULL"),
                    {"i": run_id, "s": _STUDY},
                )
                conn.exec_driver_sql("INSERT INTO runs SELECT * FROM model")
            conn.exec_driver_sql("DROP TABLE model")
        for operation in operations:
            with engine.begin() as conn:  # one transaction each, as a flush
                seqs = list(conn.execute(sa.text("SELECT seq FROM metrics ORDER BY seq")).scalars())
                for sql, params in _statements([operation], seqs)[0]:
                    conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_random_v5_postgresql_ledger_migrates_to_the_marks_of_its_points(
    pg_server: Any,
) -> None:
    url = pg_server.new_database()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_operations)
    @example([_THREE, ("step", 158, 9), ("step", 157, None)])
    @example([_THREE, ("update", 156, ("r2", "acc", math.nan, None)), ("delete", 156)])
    def check(operations: list[Any]) -> None:
        _load_random_v5(url, operations)
        _check_migrated(url)

    check()


# ------------------------------------------------------------------------------ processes
def _big_v5(path: Path, runs: int, points: int) -> None:
    """A schema 5 SQLite ledger: the v5 fixture and ``runs`` runs of ``points`` points of
    ``loss`` (NaN, no step, falling and rising steps among them), marked by schema 5's SQL."""
    shutil.copyfile(V5_PATH, path)
    rng = random.Random(5)
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TEMP TABLE model AS SELECT * FROM runs WHERE id = ?", (_MODEL_RUN,))
        ids = [f"big{k:05d}" for k in range(runs)]
        for run_id in (*ids, *_RUNS):  # r1 and r2 without points
            conn.execute(
                "UPDATE model SET id = ?, name = ?, study = ?, parent_id = NULL",
                (run_id, run_id, "big" if run_id in ids else _STUDY),
            )
            conn.execute("INSERT INTO runs SELECT * FROM model")
        conn.execute("DROP TRIGGER metric_marks_insert")  # schema 5's fill marks them at once
        conn.executemany(
            "INSERT INTO metrics (run_id, name, step, value, time) VALUES (?, 'loss', ?, ?, ?)",
            (
                (
                    run_id,
                    None if s % 17 == 5 else s - (s % 11 == 3) * 3,
                    "NaN" if s % 23 == 7 else rng.random(),
                    T0 + s,
                )
                for run_id in ids
                for s in range(points)
            ),
        )
        conn.execute("DELETE FROM metric_marks")
        conn.execute(frozen.SQLITE_FILL)
        conn.execute(frozen.SQLITE_TRIGGERS[1])
        conn.commit()
    finally:
        conn.close()


def _state(path: Path) -> tuple[int, Any]:
    """The file's schema version and everything a migration changes (schema, marks, points)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return version, (
            conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
            conn.execute("SELECT * FROM metric_marks ORDER BY run_id, name").fetchall(),
            conn.execute("SELECT * FROM metric_marks_stale ORDER BY run_id, name").fetchall(),
            conn.execute("SELECT count(*), sum(seq), max(seq) FROM metrics").fetchall(),
        )
    finally:
        conn.close()


def _marks_are_of_the_points(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, run_id, name, value, step FROM metrics").fetchall()
        marks = conn.execute(f"SELECT {_MARK_COLUMNS_SQL} FROM metric_marks").fetchall()
    finally:
        conn.close()
    _same(stored_marks(marks), brute_marks(rows))


#: A process that opens a ledger (migrating it), logging what greenprint says at INFO.
_OPENER = (
    "import logging, sys, greenprint as gp\n"
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr, format='%(message)s')\n"
    "with gp.Ledger(sys.argv[1]) as led:\n"
    "    print(led.schema_version, len(led.runs(study='patience')), flush=True)\n"
)


def _opener(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _OPENER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_migration_start(process: subprocess.Popen[str]) -> float:
    """Read the opener's log until it says it migrates; the time it said so."""
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("greenprint: migrating ledger"):
            return time.monotonic()
    raise AssertionError(f"never migrated: {process.wait()}")


@pytest.mark.slow
def test_a_migration_killed_at_random_leaves_schema_5_as_it_was(tmp_path: Path) -> None:
    """SIGKILL at a random moment of the migration (after it began), five times: each time the
    file is schema 5 unchanged, or schema 6 complete; opened again, it is schema 6 with the
    marks of its points and every run.

    The marks are worked out by brute force once, on the copy migrated whole; each killed copy
    (the same points) is then that migrated file again: its schema, marks, stale marks and
    points (``_state``) equal to it."""
    original = tmp_path / "v5.db"
    _big_v5(original, runs=2_000, points=100)  # 200,000 points: a migration of about 0.5 s
    before = _state(original)
    assert before[0] == 5
    # how long one migration takes here, from its log line to the process' end
    timed = tmp_path / "timed.db"
    shutil.copyfile(original, timed)
    process = _opener(timed)
    began = _wait_for_migration_start(process)
    process.wait()
    duration = time.monotonic() - began
    _marks_are_of_the_points(timed)
    migrated = _state(timed)
    assert migrated[0] == 6 and migrated[1][3] == before[1][3]  # the same points
    rng = random.Random(36)
    outcomes = []
    for k in range(5):
        copy = tmp_path / f"killed-{k}.db"
        shutil.copyfile(original, copy)
        process = _opener(copy)
        _wait_for_migration_start(process)
        time.sleep(rng.uniform(0.0, 0.6) * duration)  # the commit comes near its end
        process.send_signal(signal.SIGKILL)
        process.communicate()
        version, state = _state(copy)
        if version == 5:
            assert (version, state) == before, k
            outcomes.append("v5")
        else:
            assert (version, state) == migrated, k
            outcomes.append("v6")
        with gp.Ledger(copy) as led:
            assert led.schema_version == 6
            assert len(led._read(study="big", points="score")) == 2_000  # every run, read
        assert _state(copy) == migrated, k  # the marks of its points
    assert "v5" in outcomes, (outcomes, duration)  # at least one kill landed inside it


@pytest.mark.slow
def test_two_processes_opening_a_v5_ledger_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    _big_v5(path, runs=1_000, points=100)
    processes = [_opener(path) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert [out.split() for out, _ in outputs] == [["6", "4"], ["6", "4"]]
    said = [err.count("migrating ledger") for _, err in outputs]
    assert sorted(said) == [0, 1], outputs  # one migrated; the other waited and read schema 6
    _marks_are_of_the_points(path)


def _write_as_schema_5(url: str, stop: threading.Event, written: list[int]) -> None:
    """Points inserted as an older greenprint that opened the ledger at schema 5 does (a plain
    INSERT into ``metrics``: the database's triggers keep the marks), one flush at a time, a
    moment apart (back to back, the migrating process's SQLite busy handler lost the lock to them
    at times for seconds: 9.9 s and 1,888 flushes once, before a migration of 0.2 s)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _busy(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout = 60000")

    nan: Any = "NaN" if engine.dialect.name == "sqlite" else math.nan  # as greenprint binds it
    insert = sa.text(
        "INSERT INTO metrics (run_id, name, step, value, time) VALUES ('r1', :n, :s, :v, 0)"
    )
    try:
        k = 0
        while not stop.is_set():
            with engine.begin() as conn:
                conn.execute(
                    insert,
                    [
                        {"n": "loss", "s": k, "v": nan if k % 9 == 4 else math.cos(k)},
                        {"n": "acc", "s": None if k % 4 else k, "v": k % 7},
                    ],
                )
            written.append(k)
            k += 1
            time.sleep(0.005)
    finally:
        engine.dispose()


def _migrate_while_written(url: str) -> None:
    import sqlalchemy as sa

    stop = threading.Event()
    written: list[int] = []
    writer = threading.Thread(target=_write_as_schema_5, args=(url, stop, written))
    writer.start()
    try:
        while len(written) < 20:  # some flushes before the migration, under schema 5's triggers
            assert writer.is_alive()
            time.sleep(0.01)
        with gp.Ledger(url) as led:
            assert led.schema_version == 6
        during = len(written)
        time.sleep(0.3)  # and after it, under schema 6's
    finally:
        stop.set()
        writer.join()
    assert len(written) > during
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, run_id, name, value, step FROM metrics")).all()
            marks = conn.execute(sa.text(f"SELECT {_MARK_COLUMNS_SQL} FROM metric_marks")).all()
    finally:
        engine.dispose()
    mine = [r for r in rows if r[1] == "r1"]
    assert len(mine) == 2 * len(written)  # no flush lost
    _same(stored_marks(marks), brute_marks(rows))


def test_points_written_as_schema_5_while_a_sqlite_ledger_migrates_are_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v5.db"
    _big_v5(path, runs=300, points=100)
    _migrate_while_written(str(path))


@pytest.mark.postgres
def test_points_written_as_schema_5_while_a_postgresql_ledger_migrates_are_kept(
    pg_server: Any,
) -> None:
    url = pg_server.new_database()
    _load_random_v5(url, [("insert", [("r2", "loss", 0.5, s) for s in range(30)])])
    _migrate_while_written(url)


# --------------------------------------------------------------------------------- notice
_FAR_SEQ = 1_500_000  # a ledger whose points reach this seq: a migration of seconds


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``greenprint ARGS`` as a new user runs it: a clean environment, no GREENPRINT_* vars."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": os.path.dirname(sys.executable)}
    env["PATH"] += ":/usr/bin:/bin"
    return subprocess.run(
        [sys.executable, "-m", "greenprint", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_big_migration_is_said_on_stderr_a_small_one_is_not(tmp_path: Path) -> None:
    """A ledger of 1.5 million points migrates for seconds, its writers waiting: the command
    that opens it says so, once, with the count; the v5 fixture's (hundreds) says nothing."""
    small, big = tmp_path / "small.db", tmp_path / "big.db"
    shutil.copyfile(V5_PATH, small)
    shutil.copyfile(V5_PATH, big)
    conn = sqlite3.connect(big)
    conn.execute(
        "INSERT INTO metrics (seq, run_id, name, step, value, time) "
        f"VALUES ({_FAR_SEQ}, ?, 'val_loss', 30, 0.25, ?)",
        (_MODEL_RUN, T0),
    )
    conn.commit()
    conn.close()
    quiet = _cli("ledger", "ls", "--ledger", str(small), cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    said = _cli("ledger", "ls", "--ledger", str(big), cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert said.stderr.splitlines() == [
        f"greenprint: migrating ledger {big} from schema 5 to 6 (1,500,000 metric points: its "
        "marks are computed again, once; other processes wait for it)"
    ]
    again = _cli("ledger", "ls", "--ledger", str(big), cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""  # once
    assert again.stdout == said.stdout
    _marks_are_of_the_points(big)


@pytest.mark.postgres
def test_a_big_postgresql_migration_is_said(
    pg_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlalchemy as sa

    url = pg_server.new_database()
    _load_random_v5(url, [])
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO metrics (seq, run_id, name, step, value, time) "
                f"VALUES ({_FAR_SEQ}, :r, 'val_loss', 30, 0.25, :t)"
            ),
            {"r": _MODEL_RUN, "t": T0},
        )
    engine.dispose()
    with caplog.at_level("WARNING", logger="greenprint"):
        _check_migrated(url)
    said = [r.getMessage() for r in caplog.records if "migrating ledger" in r.getMessage()]
    assert len(said) == 1 and "from schema 5 to 6 (1,500,000 metric points" in said[0], said


@pytest.mark.postgres
def test_a_role_granted_the_tables_is_told_that_their_owner_migrates(pg_server: Any) -> None:
    """A team's schema 5 ledger, a writer role granted its tables (docs/ledger.md, Roles): the
    writer's new greenprint may not migrate it (not the tables' owner): the one-line error says
    who can and how, the ledger is left at schema 5; once the owner opened it, the writer writes
    runs and their marks are kept (the trigger's function runs with its owner's rights)."""
    import sqlalchemy as sa

    url = pg_server.new_database()
    _load_random_v5(url, [])
    role = f"gp_v5_writer_{sa.engine.make_url(url).database}"  # one per database
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(
            f"GRANT SELECT, INSERT, UPDATE ON runs, metrics, samples, schema_version TO {role}"
        )
        conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    writer = url.replace("://postgres:", f"://{role}:", 1)
    assert writer != url
    try:
        with pytest.raises(gp.SchemaVersionError) as refused:
            gp.Ledger(writer)
        message = str(refused.value)
        assert "\n" not in message
        assert "from schema 5 to 6: must be owner of" in message
        assert message.endswith(
            "the ledger was left unchanged; only the role that owns its tables may migrate it: "
            "open it once as that role with this greenprint (e.g. greenprint ledger ls --ledger "
            "URL); until then the other roles keep the greenprint they had"
        )
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar() == 5
        with gp.Ledger(url) as led:  # the owner
            assert led.schema_version == 6
        with gp.Ledger(writer, create=False) as led:
            for k in range(20):
                led.flush("r1", metrics=[gp.MetricPoint("loss", 1.0 / (k + 1), k, T0 + k)])
            led.flush("r1", metrics=[gp.MetricPoint("loss", 0.5, None, T0 + 20)])
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT seq, run_id, name, value, step FROM metrics").all()
            marks = conn.exec_driver_sql(f"SELECT {_MARK_COLUMNS_SQL} FROM metric_marks").all()
            assert (
                conn.exec_driver_sql(
                    "SELECT max_step FROM metric_marks WHERE run_id = 'r1'"
                ).scalar()
                == 19
            )
        _same(stored_marks(marks), brute_marks(rows))
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        engine.dispose()


@pytest.mark.postgres
def test_two_clients_opening_a_v5_postgresql_ledger_at_once_migrate_it_once(
    pg_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Both see schema 5; the advisory lock lets one migrate, the other then reads schema 6."""
    url = pg_server.new_database()
    _load_random_v5(url, [("insert", [("r1", "loss", float(s % 3), s) for s in range(50)])])
    barrier = threading.Barrier(2)
    versions: list[int] = []

    def open_it() -> None:
        barrier.wait()
        with gp.Ledger(url) as led:
            versions.append(led.schema_version)

    with caplog.at_level("INFO", logger="greenprint"):
        threads = [threading.Thread(target=open_it) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert versions == [6, 6]
    said = [r for r in caplog.records if "migrating ledger" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    _check_migrated(url)


def test_a_merge_of_a_big_v5_file_says_no_migration(tmp_path: Path) -> None:
    """``ledger merge`` reads an older input through a private copy migrated to schema 6: not
    the migration of a ledger others wait for (the input stays schema 5), so not said."""
    node, target = tmp_path / "node.db", tmp_path / "all.db"
    shutil.copyfile(V5_PATH, node)
    conn = sqlite3.connect(node)
    conn.execute(
        "INSERT INTO metrics (seq, run_id, name, step, value, time) "
        f"VALUES ({_FAR_SEQ}, ?, 'val_loss', 30, 0.25, ?)",
        (_MODEL_RUN, T0),
    )
    conn.commit()
    conn.close()
    before = node.read_bytes()
    merged = _cli("ledger", "merge", str(target), str(node), cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert merged.stderr == ""
    assert merged.stdout.startswith("merged 1 ledger into ")
    assert node.read_bytes() == before
    _marks_are_of_the_points(target)


# ------------------------------------------------------------- a session holding the tables
def _idle_in_transaction(url: str) -> Any:
    """A session that read ``metrics`` and left its transaction open (a notebook, psql after
    BEGIN): it holds the table's lock until it ends."""
    import psycopg

    holder = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    holder.execute("SELECT count(*) FROM metrics").fetchone()
    return holder


@pytest.mark.postgres
def test_a_session_idle_in_transaction_delays_the_migration_not_the_team(
    pg_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration waited for such a session with no limit, and every writer of the ledger
    queued behind it (the previous greenprint's runs included). Now each try waits 2 s (1 s
    here), the writers go on between tries, the session is named once, and the ledger migrates
    when it ends."""
    import sqlalchemy as sa

    from greenprint.ledger import _pg_migration

    monkeypatch.setattr(_pg_migration, "LOCK_WAIT_S", 1.0)
    url = pg_server.new_database()
    _load_random_v5(url, [("insert", [("r1", "loss", 0.5, s) for s in range(5)])])
    holder = _idle_in_transaction(url)
    holder_pid = holder.info.backend_pid
    releaser = threading.Timer(4.5, holder.close)
    opened: list[float] = []

    def migrate() -> None:
        started = time.monotonic()
        with gp.Ledger(url) as led:
            assert led.schema_version == 6
        opened.append(time.monotonic() - started)

    engine = sa.create_engine(url)
    try:
        with caplog.at_level("WARNING", logger="greenprint"):
            releaser.start()
            migrator = threading.Thread(target=migrate)
            migrator.start()
            time.sleep(2.1)  # the migrator waits for the session (named, it tries again)
            started = time.monotonic()
            with engine.begin() as conn:  # a writer, as schema 5's greenprint writes a flush
                conn.execute(
                    sa.text(
                        "INSERT INTO metrics (run_id, name, step, value, time) "
                        "VALUES ('r1', 'loss', 9, 0.1, 0)"
                    )
                )
            wrote_s = time.monotonic() - started
            migrator.join(timeout=60)
        assert not migrator.is_alive() and opened
        assert wrote_s < 1.6, wrote_s  # not until the session ended (2.4 s more)
        assert opened[0] >= 3.5  # it waited for the session, then migrated
        said = [r.getMessage() for r in caplog.records if "waiting to migrate" in r.getMessage()]
        assert len(said) == 1, said
        assert f"session {holder_pid} (user " in said[0]
        assert "idle in transaction since " in said[0]
        assert "'SELECT count(*) FROM metrics') holds its tables" in said[0]
    finally:
        releaser.cancel()
        holder.close()
        engine.dispose()
    _check_migrated(url)


@pytest.mark.postgres
def test_a_migration_held_up_too_long_gives_up_naming_the_session(
    pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the wait (120 s; 3 s here, its tries 0.5 s each) the migration gives up in one line
    that names the session and how to end it; the ledger stays at schema 5, usable by the
    previous greenprint."""
    import sqlalchemy as sa

    from greenprint.ledger import _pg_migration

    monkeypatch.setattr(_pg_migration, "MIGRATION_WAIT_S", 3.0)
    monkeypatch.setattr(_pg_migration, "LOCK_WAIT_S", 0.5)
    url = pg_server.new_database()
    _load_random_v5(url, [])
    holder = _idle_in_transaction(url)
    holder_pid = holder.info.backend_pid
    releaser = threading.Timer(30.0, holder.close)  # a bound, should it wait for ever again
    releaser.start()
    try:
        with pytest.raises(gp.SchemaVersionError) as refused:
            gp.Ledger(url)
    finally:
        releaser.cancel()
        holder.close()
    message = str(refused.value)
    assert "\n" not in message
    assert f"from schema 5 to 6: session {holder_pid} (user " in message
    assert "idle in transaction since " in message
    assert message.endswith(
        "held its tables for 3 s; the ledger was left unchanged; end that transaction (COMMIT or "
        "ROLLBACK in it, or SELECT pg_terminate_backend(PID)) and open the ledger again"
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT max(version) FROM schema_version").scalar() == 5
    engine.dispose()
    with gp.Ledger(url) as led:  # the session gone
        assert led.schema_version == 6
