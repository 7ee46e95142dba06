"""``metric_marks``: the database keeps, for each run's metric, where its report values are.

The marks (first point, first not NaN, first largest and smallest finite value, last point,
first point holding the largest step: ``ledger._marks``) are kept by triggers on ``metrics``.
Proved against a brute-force reading of the ``metrics`` table after random inserts in flush
batches, deletions and updates (hypothesis, on SQLite and on a real PostgreSQL), after
concurrent writers, a migration from an older schema and a merge; and a report's read
through the marks equals its read of every point.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint._prediction import metric_name
from greenprint._pruned import step_bounds
from greenprint.ledger._marks import MARK_COLUMNS, SQLITE_TRIGGERS, marked_points_sql
from greenprint.ledger._rows import score_points_by_run
from greenprint.ledger._sqlite import CREATE_STATEMENTS

T0 = 1_700_000_000.0
PREDICTED = metric_name("predicted_energy_kwh")


def brute_marks(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The marks of ``(seq, run_id, name, value, step)`` rows, read as the reader reads values.

    Returns:
        ``(run_id, name)`` -> ``(first_seq, valid_seq, high_seq, high, low_seq, low, last_seq,
        step_seq, max_step)``.
    """
    out: dict[tuple[str, str], list[Any]] = {}
    for seq, run_id, name, stored, step in sorted(rows):
        value = float(stored)  # SQLite's text 'NaN' included
        marks = out.get((run_id, name))
        if marks is None:
            marks = out[(run_id, name)] = [seq, None, None, None, None, None, seq, None, None]
        marks[6] = seq
        if step is not None and (marks[8] is None or step > marks[8]):
            marks[7], marks[8] = seq, step
        if value != value:
            continue
        if marks[1] is None:
            marks[1] = seq
        if math.isfinite(value):
            if marks[3] is None or value > marks[3]:
                marks[2], marks[3] = seq, value
            if marks[5] is None or value < marks[5]:
                marks[4], marks[5] = seq, value
    return {key: tuple(marks) for key, marks in out.items()}


def stored_marks(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """``metric_marks`` rows (``run_id, name, *MARK_COLUMNS``) keyed as :func:`brute_marks`."""
    return {
        (r[0], r[1]): tuple(
            None if v is None else float(v) if i in (3, 5) else int(v) for i, v in enumerate(r[2:])
        )
        for r in rows
    }


def _same(stored: dict[Any, tuple[Any, ...]], brute: dict[Any, tuple[Any, ...]]) -> None:
    assert stored.keys() == brute.keys()
    for key, marks in brute.items():
        got = stored[key]
        # the seqs and steps exactly; the values as the floats they are (0.0 equals -0.0)
        assert got[:3] + got[4:5] + got[6:] == marks[:3] + marks[4:5] + marks[6:], key
        assert got[3] == marks[3] and got[5] == marks[5], key


# ------------------------------------------------------------------------------ operations
_value = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 0.5, 0.5, 1.0, -2.0, 1e308]),
    st.floats(-3, 3),
)
# a step: none (a value logged without one), or one of a few, repeated, rising and falling
_step = st.one_of(st.none(), st.integers(0, 6))
_point = st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["acc", "loss"]), _value, _step)
_operation = st.one_of(
    st.tuples(st.just("insert"), st.lists(_point, min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 40)),
    st.tuples(st.just("update"), st.integers(0, 40), _point),
)
_operations = st.lists(_operation, min_size=1, max_size=25)


def _apply_sqlite(conn: sqlite3.Connection, operations: list[Any]) -> None:
    for operation in operations:
        kind = operation[0]
        if kind == "insert":  # one flush: a transaction of several rows
            conn.executemany(
                "INSERT INTO metrics (run_id, name, step, value, time) VALUES (?, ?, ?, ?, 0)",
                [(r, n, s, "NaN" if v != v else v) for r, n, v, s in operation[1]],
            )
        else:
            seqs = [s for (s,) in conn.execute("SELECT seq FROM metrics ORDER BY seq")]
            if not seqs:
                continue
            seq = seqs[operation[1] % len(seqs)]
            if kind == "delete":
                conn.execute("DELETE FROM metrics WHERE seq = ?", (seq,))
            else:
                r, n, v, s = operation[2]
                conn.execute(
                    "UPDATE metrics SET run_id = ?, name = ?, value = ?, step = ? WHERE seq = ?",
                    (r, n, "NaN" if v != v else v, s, seq),
                )
        conn.commit()


@settings(max_examples=300, deadline=None)
@given(_operations)
def test_sqlite_triggers_keep_the_marks_of_every_point(operations: list[Any]) -> None:
    """Every metric has the marks of its points, or is stale (a mark of it was deleted or
    updated: no marks until its next point); a read through the marks gives, for every run,
    what all its points give."""
    conn = sqlite3.connect(":memory:")
    for statement in (*CREATE_STATEMENTS, *SQLITE_TRIGGERS):
        conn.execute(statement)
    _apply_sqlite(conn, operations)
    rows = list(conn.execute("SELECT seq, run_id, name, value, step FROM metrics"))
    brute = brute_marks(rows)
    stale = set(conn.execute("SELECT run_id, name FROM metric_marks_stale"))
    stored = stored_marks(conn.execute("SELECT * FROM metric_marks"))
    assert not stored.keys() & stale
    _same(stored, {key: marks for key, marks in brute.items() if key not in stale})
    every = list(conn.execute("SELECT run_id, name, value, step, time FROM metrics ORDER BY seq"))
    read = list(conn.execute(marked_points_sql("1 = 1", "1 = 1")))
    assert set(read) <= set(every)
    for run_id in ("r1", "r2"):
        full = score_points_by_run(every, [run_id]).get(run_id, [])
        kept = score_points_by_run(read, [run_id]).get(run_id, [])
        assert _figures(kept) == _figures(full)
        assert list(_figures(kept)) == list(_figures(full))  # names in logged order


def _figures(points: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    """Each metric's last value, largest and smallest finite ones, first valid point's step
    and largest step (where a pruned run stopped: ``_pruned.step_bounds``)."""
    record = gp.RunRecord(id="r", name="r", metrics=tuple(points))
    return {
        name: (
            *(repr(record.metric(name, mode=mode)) for mode in ("last", "max", "min")),
            next((p.step for p in points if p.name == name and p.value == p.value), None),
            step_bounds((record,), name)[1],
        )
        for name in record.metric_names
    }


def _two_runs(url: str) -> None:
    with gp.Ledger(url) as led:
        for run_id in ("r1", "r2"):
            led.start_run(gp.RunRecord(id=run_id, name=run_id, study="s", status="finished"))


@pytest.mark.postgres
def test_postgresql_trigger_keeps_the_marks_of_every_point(pg_server: Any) -> None:
    import sqlalchemy as sa

    url = pg_server.new_database()
    _two_runs(url)
    engine = sa.create_engine(url)
    insert = sa.text(
        "INSERT INTO metrics (run_id, name, step, value, time) VALUES (:r, :n, :s, :v, 0)"
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_operations)
    def check(operations: list[Any]) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM metrics"))
            assert conn.execute(sa.text("SELECT count(*) FROM metric_marks")).scalar() == 0
        for operation in operations:
            with engine.begin() as conn:  # one transaction each, as a flush
                if operation[0] == "insert":
                    conn.execute(
                        insert, [{"r": r, "n": n, "v": v, "s": s} for r, n, v, s in operation[1]]
                    )
                    continue
                seqs = list(conn.execute(sa.text("SELECT seq FROM metrics ORDER BY seq")).scalars())
                if not seqs:
                    continue
                seq = seqs[operation[1] % len(seqs)]
                if operation[0] == "delete":
                    conn.execute(sa.text("DELETE FROM metrics WHERE seq = :s"), {"s": seq})
                else:
                    r, n, v, s = operation[2]
                    conn.execute(
                        sa.text(
                            "UPDATE metrics SET run_id = :r, name = :n, value = :v, step = :t "
                            "WHERE seq = :s"
                        ),
                        {"r": r, "n": n, "v": v, "t": s, "s": seq},
                    )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, run_id, name, value, step FROM metrics")).all()
            stored = conn.execute(sa.text("SELECT * FROM metric_marks")).all()
        _same(stored_marks(stored), brute_marks(rows))

    try:
        check()
    finally:
        engine.dispose()


def test_concurrent_writers_leave_the_marks_of_every_point(ledger_url: str) -> None:
    """Four threads flush points of the same runs at once (commit order is not seq order on
    PostgreSQL: every mark is a minimum or maximum over (value, seq), so it does not matter)."""
    _two_runs(ledger_url)

    def write(worker: int) -> None:
        with gp.Ledger(ledger_url, create=False) as led:
            for k in range(30):
                value = math.nan if k % 7 == 0 else math.sin(worker * 31 + k)
                led.flush(
                    ("r1", "r2")[k % 2],
                    metrics=[
                        gp.MetricPoint("loss", value, k, T0 + k),
                        gp.MetricPoint("acc", float(k % 5), k, T0 + k),
                    ],
                )

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows, marks = _tables(ledger_url)
    assert len(rows) == 4 * 30 * 2
    _same(stored_marks(marks), brute_marks(rows))


def _tables(url: str) -> tuple[list[Any], list[Any]]:
    """The ``(seq, run_id, name, value, step)`` rows of ``metrics`` and every marks row."""
    import sqlalchemy as sa

    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, run_id, name, value, step FROM metrics")).all()
            marks = conn.execute(
                sa.text(f"SELECT run_id, name, {', '.join(MARK_COLUMNS)} FROM metric_marks")
            ).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows], [tuple(r) for r in marks]


def test_the_v4_fixture_is_committed_and_version_4() -> None:
    from .fixtures.make_v4 import V4_METRICS, V4_PATH

    conn = sqlite3.connect(f"file:{V4_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (4,)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert "metric_marks" not in tables
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (len(V4_METRICS),)
        nan = conn.execute("SELECT count(*) FROM metrics WHERE value = 'NaN'").fetchone()[0]
        assert nan == 4  # as schema 4 stored NaN on SQLite
    finally:
        conn.close()


def test_the_v5_fixture_is_committed_and_version_5() -> None:
    from .fixtures.make_v4 import V4_METRICS
    from .fixtures.make_v5 import V5_METRICS, V5_PATH

    conn = sqlite3.connect(f"file:{V5_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (5,)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(metric_marks)")]
        assert columns == ["run_id", "name", *MARK_COLUMNS[:7]]  # no step marks
        count = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
        assert count == len(V4_METRICS) + len(V5_METRICS)
        # schema 5's marks of the pruned trials: none holds its furthest step (20, 7)
        marked = conn.execute(
            "SELECT max(m.step) FROM metric_marks AS k JOIN metrics AS m ON m.seq IN "
            "(k.first_seq, k.valid_seq, k.high_seq, k.low_seq, k.last_seq) "
            "WHERE k.run_id LIKE '9a7e%' GROUP BY k.run_id ORDER BY k.run_id"
        ).fetchall()
        assert marked == [(24,), (24,), (4,), (4,)]
    finally:
        conn.close()


def test_a_v5_ledger_migrated_reads_its_pruned_runs_at_their_furthest_step(v5_url: str) -> None:
    """Schema 5 read the fixture's pruned trials (no step recorded; a point without a step or
    at a lower one after their last step) as stopped at step 4, the step of their worst value;
    migrated, at steps 20 and 7 of 24."""
    from greenprint.report import build_report

    from .fixtures.make_v5 import FULL_STEPS, STUDY

    with gp.Ledger(v5_url) as led:
        assert led.schema_version == 6
        s = build_report(led, STUDY).pruning
    assert s is not None and s.full_steps == FULL_STEPS
    assert {r.name: (r.step, r.step_recorded) for r in s.rows} == {
        "stopped-long": (20.0, False),
        "stopped-short": (7.0, False),
    }
    assert s.saved_fpo == 4_000 + 17_000  # 1,000 FPO an epoch short of 24


@pytest.mark.parametrize("fixture", ["v3_url", "v4_url", "v5_url"])
def test_a_migrated_ledger_has_the_marks_of_its_points(
    fixture: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """The v3 fixture (a point a run) and the v4 one (long series with NaN, an infinity, ties,
    -0.0, reserved metrics) migrated to schema 6, and the v5 one (those, with schema 5's marks,
    and runs whose last point has no step or a lower one); the v4 and v5 ones' reports are read
    through the marks and equal the report of every point."""
    url = request.getfixturevalue(fixture)
    with gp.Ledger(url) as led:
        assert led.schema_version == 6
        runs = led.runs()
        rows, marks = _tables(url)
        assert rows and len(marks) == len({(r[1], r[2]) for r in rows})
        _same(stored_marks(marks), brute_marks(rows))
        assert sum(len(r.metrics) for r in runs) == len(rows)
        if fixture == "v3_url":
            return
        assert marks_read(led._store)
        for study, named in sorted({(r.study, r.metric_names[0]) for r in runs if r.metrics}):
            for options in ({}, {"metric": named}, {"metric": named, "reduce": "best"}):
                _same_report(led, runs, study, options)


def _same_report(led: gp.Ledger, runs: list[Any], study: str, options: dict[str, Any]) -> None:
    """``build_report`` of ``study`` (read through the marks) equals the report of every point."""
    import dataclasses
    import json

    from greenprint.report import build_report
    from greenprint.report._build import _assemble

    built = build_report(led, study, **options)
    every = _assemble(
        tuple(r for r in runs if r.study == study),
        study=study,
        ledger_url=led.url,
        metric=options.get("metric"),
        mode=None,
        final=None,
        reduce=options.get("reduce", "last"),
        training_type=None,
        samples_of=led.samples,
        max_sampled_runs=300,
    )
    every = dataclasses.replace(every, generated_at=built.generated_at)
    assert json.dumps(built.to_dict(), sort_keys=True) == json.dumps(
        every.to_dict(), sort_keys=True
    ), options


def test_a_merge_keeps_the_marks_of_the_runs_it_replaces(tmp_path: Path) -> None:
    """A node's ledger copied while its run was running, merged again once it finished: the
    newer run replaces the older (its points deleted and written again)."""
    node, target = tmp_path / "node.db", tmp_path / "all.db"
    record = gp.RunRecord(
        id="run-on-node", name="n", study="s", status="running", started_at=T0, heartbeat_at=T0
    )
    with gp.Ledger(node) as led:
        led.start_run(record)
        led.flush(record.id, metrics=[gp.MetricPoint("loss", 3.0 - k, k, T0 + k) for k in range(3)])
    with gp.Ledger(target) as led:
        led.merge(node)
    with gp.Ledger(node) as led:
        led.flush(
            record.id,
            fields={"status": "finished", "ended_at": T0 + 99},
            metrics=[
                gp.MetricPoint("loss", v, 3 + k, T0 + 3 + k)
                for k, v in enumerate([math.nan, -5.0, 7.0, -5.0])
            ],
        )
    with gp.Ledger(target) as led:
        summary = led.merge(node)
        assert summary.updated == 1
        assert led.run(record.id).metric("loss", mode="min") == -5.0
    rows, marks = _tables(str(target))
    assert len(rows) == 7
    _same(stored_marks(marks), brute_marks(rows))


def test_a_report_read_through_the_marks_equals_the_read_of_every_point(
    ledger_url: str,
) -> None:
    """Runs of long series (the read goes through the marks) and of single points; reserved
    metrics whole, a metric given by name, a study among others."""
    with gp.Ledger(ledger_url) as led:
        for k in range(12):
            run = gp.RunRecord(
                id=f"run-{k:02d}",
                name=f"t{k}",
                study="s" if k < 10 else "other",
                status="finished",
                started_at=T0 + k,
            )
            led.start_run(run)
            points = [
                gp.MetricPoint("loss", (math.nan if s == 3 else 1.0 / (s + 1 + k % 3)), s, T0 + s)
                for s in range(25 if k % 4 else 1)
            ]
            points += [gp.MetricPoint("acc", 0.5 + 0.01 * (k % 5), 99, T0 + 99)]
            if k % 5 == 0:
                points += [gp.MetricPoint(PREDICTED, 0.1 * s, s, T0 + s) for s in range(4)]
            led.flush(run.id, metrics=points)
        store = led._store
        with_marks = marks_read(store)
        assert with_marks  # 25 points per (run, loss): the read takes the marks
        every = {r.id: r for r in led.runs()}
        for metrics in (None, ("acc",), ("loss",)):
            read = led._read(study="s", points="score", metrics=metrics)
            assert [r.id for r in read] == [r.id for r in every.values() if r.study == "s"]
            for got in read:
                full = every[got.id]
                rows = [
                    (full.id, p.name, p.value, p.step, p.time)
                    for p in full.metrics
                    if metrics is None or p.name in metrics or p.name == PREDICTED
                ]
                kept = score_points_by_run(rows, [full.id]).get(full.id, [])
                marked = [p for p in kept if p.name != PREDICTED]
                # the marks of every point: score_points_by_run of them, less what it keeps
                # whole in short runs
                assert [repr(p) for p in got.metrics if p.name == PREDICTED] == [
                    repr(p) for p in kept if p.name == PREDICTED
                ]
                for name in {p.name for p in marked}:
                    for mode in ("last", "max", "min"):
                        assert repr(got.metric(name, mode=mode)) == repr(
                            full.metric(name, mode=mode)
                        )
                assert list(got.metric_names) == list(
                    n
                    for n in full.metric_names
                    if metrics is None or n in metrics or n == PREDICTED
                )
                assert {repr(p) for p in got.metrics} <= {repr(p) for p in full.metrics}


def marks_read(store: Any) -> bool:
    """Whether the store's score read goes through the marks."""
    from greenprint.ledger import _sql_reads, _sqlite, _sqlite_reads

    if isinstance(store, _sqlite.SQLiteStore):
        return bool(store.transaction(_sqlite_reads._marks_worth_reading, write=False))
    return bool(store.transaction(_sql_reads._marks_worth_reading, write=False))


def test_a_run_deleted_by_hand_marks_first_leaves_the_other_runs_marks(tmp_path: Path) -> None:
    """A run deleted by hand on SQLite, its marks first (as merge does): the marks left are
    those of the points left, and the other run's marks are as they were."""
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        for rid in ("gone", "kept"):
            led.start_run(gp.RunRecord(id=rid, name=rid, study="s", started_at=T0))
            points = [gp.MetricPoint("loss", 1.0 / (k + 1), k, T0 + k) for k in range(50)]
            led.flush(rid, metrics=[*points, gp.MetricPoint("acc", math.nan, 0, T0)])
    before = stored_marks(_tables(str(path))[1])
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM metric_marks WHERE run_id = 'gone'")
            for table, key in (("metrics", "run_id"), ("samples", "run_id"), ("runs", "id")):
                conn.execute(f"DELETE FROM {table} WHERE {key} = 'gone'")
    finally:
        conn.close()
    rows, marks = _tables(str(path))
    _same(stored_marks(marks), brute_marks(rows))
    assert stored_marks(marks) == {k: v for k, v in before.items() if k[0] == "kept"}
    with gp.Ledger(path) as led:
        assert [r.id for r in led.runs()] == ["kept"] and len(led.runs()[0].metrics) == 51


@pytest.mark.postgres
def test_a_role_granted_the_tables_before_schema_5_writes_and_reads(pg_server: Any) -> None:
    """A team's PostgreSQL ledger: a writer role granted the tables it had (not
    ``metric_marks``, which schema 5 adds) keeps writing points (the trigger runs with its
    owner's rights) and reading reports (every point, when it may not read the marks)."""
    import sqlalchemy as sa

    from greenprint.report import build_report

    url = pg_server.new_database()
    _two_runs(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE ROLE gp_writer LOGIN"))
        conn.execute(
            sa.text(
                "GRANT SELECT, INSERT, UPDATE ON runs, metrics, samples, schema_version "
                "TO gp_writer"
            )
        )
        conn.execute(sa.text("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO gp_writer"))
    engine.dispose()
    writer = url.replace("://postgres:", "://gp_writer:", 1)
    assert writer != url
    with gp.Ledger(writer, create=False) as led:
        for k in range(40):
            led.flush("r1", metrics=[gp.MetricPoint("loss", 1.0 / (k + 1), k, T0 + k)])
        assert not marks_read(led._store)  # it may not read metric_marks: every point
        report = build_report(led, "s", metric="loss")
        assert report.price_tag.final is not None
        assert report.price_tag.final.score == pytest.approx(1.0 / 40)
    rows, marks = _tables(url)
    _same(stored_marks(marks), brute_marks(rows))
    with gp.Ledger(url, create=False) as led:
        assert marks_read(led._store)  # the owner reads through the marks


def test_points_deleted_by_hand_on_sqlite_leave_their_metric_stale_not_wrong(
    tmp_path: Path,
) -> None:
    """SQLite: deleting a run's points by hand (no marks deleted first) notes its metrics
    stale instead of computing their marks again for each deleted point (time in the square
    of the points); a report reads a stale metric's every point, and its next point computes
    its marks again."""
    from greenprint.report import build_report

    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        for rid, top in (("a", 2.0), ("b", 1.0)):
            led.start_run(
                gp.RunRecord(id=rid, name=rid, study="s", status="finished", started_at=T0)
            )
            points = [gp.MetricPoint("loss", top / (k + 1), k, T0 + k) for k in range(3000)]
            led.flush(rid, metrics=points)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM metrics WHERE run_id = 'b' AND step >= 1000")
        stale = conn.execute("SELECT run_id, name FROM metric_marks_stale").fetchall()
        assert stale == [("b", "loss")]
    finally:
        conn.close()
    with gp.Ledger(path) as led:
        assert marks_read(led._store)
        report = build_report(led, "s", metric="loss")  # lower is better: the name says so
        assert report.price_tag.final is not None
        assert report.price_tag.final.run_id == "a"  # 2/3000 beats b's 1/1000 now
        scores = {row.id: row.score for row in report.runs}
        assert scores == {"a": pytest.approx(2.0 / 3000), "b": pytest.approx(1.0 / 1000)}
        led.flush("b", metrics=[gp.MetricPoint("loss", 9.0, 5000, T0 + 5000)])
    rows, marks = _tables(str(path))
    assert stored_marks(marks).keys() == {("a", "loss"), ("b", "loss")}
    _same(stored_marks(marks), brute_marks(rows))
