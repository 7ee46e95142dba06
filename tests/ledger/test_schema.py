"""Schema versions: migration from the committed v1 and v2 fixtures, refusal of newer schemas."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import sqlalchemy as sa

import greenprint as gp
from greenprint import MetricPoint, PowerSample
from greenprint.ledger import Ledger, _schema

from .fixtures.make_v1 import V1_METRICS, V1_PATH, V1_RUNS
from .fixtures.make_v2 import SWEEP, TRIALS, V2_METRICS, V2_PATH, V2_RUNS, V2_SAMPLES


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def columns(url: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (type family, nullable), as the database reports them."""
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    try:
        inspector = sa.inspect(engine)
        out = {}
        for table in inspector.get_table_names():
            out[table] = {
                c["name"]: (type(c["type"]).__name__.upper(), bool(c["nullable"]))
                for c in inspector.get_columns(table)
            }
        return out
    finally:
        engine.dispose()


def test_migrations_cover_every_version():
    assert len(_schema.MIGRATIONS) == _schema.SCHEMA_VERSION - 1
    assert _schema.SCHEMA_VERSION == 6


def test_the_v1_fixture_is_committed_and_version_1():
    import sqlite3

    conn = sqlite3.connect(f"file:{V1_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {"schema_version", "runs", "metrics"}
    finally:
        conn.close()


def test_v1_is_migrated_with_every_row_preserved(v1_url, backend, ledger_url):
    with Ledger(v1_url) as led:
        assert led.schema_version == 6
        by_id = {r.id: r for r in led.runs()}
        assert set(by_id) == {r["id"] for r in V1_RUNS}
        for row in V1_RUNS:
            run = by_id[row["id"]]
            for key in (
                "name",
                "study",
                "parent_id",
                "started_at",
                "ended_at",
                "heartbeat_at",
                "duration_s",
                "host",
                "command",
                "git_commit",
                "git_dirty",
                "python_version",
                "torch_version",
                "dataset_size",
                "param_count",
                "energy_cpu_kwh",
                "energy_gpu_kwh",
                "energy_ram_kwh",
                "energy_kwh",
                "pue",
                "intensity_g_per_kwh",
                "intensity_source",
                "emissions_kg",
                "error",
            ):
                assert getattr(run, key) == row[key], key
            assert run.fpo == (None if row["fpo"] is None else int(row["fpo"]))
            assert run.hardware["cpu_model"] == "Intel Xeon Gold 6148"
            assert run.params == {"lr": 0.1, "layers": [64, 64]}
            # new in v2: defaults for old rows
            assert run.scope == "process"
            assert run.machine_energy_kwh is None
            assert run.role is None  # new in v3: not given
        # status: the killed v1 run (old heartbeat) reads as lost; others as stored
        assert by_id[V1_RUNS[2]["id"]].status == "lost"
        assert by_id[V1_RUNS[1]["id"]].status == "failed"
        first = by_id[V1_RUNS[0]["id"]]
        values = [p.value for p in first.metrics]
        assert values[:2] == [0.81, 0.93] and math.isnan(values[2]) and values[3] == math.inf
        assert first.metric("accuracy") == 0.93
        assert len([m for m in V1_METRICS if m["run_id"] == first.id]) == len(first.metrics)
        assert led.run("c9d8").metrics == (
            MetricPoint("accuracy", 0.5, None, V1_METRICS[4]["time"]),
        )
        # v2 features work on the migrated ledger
        assert led.samples(first.id) == []
        led.flush(first.id, samples=[PowerSample(1.0, 2.0, cpu_w=5.0)], fields={"scope": "machine"})
        assert led.samples(first.id)[0].cpu_w == 5.0 and led.run(first.id).scope == "machine"
    engine = sa.create_engine(v1_url if backend == "postgres" else f"sqlite:///{v1_url}")
    with engine.connect() as conn:
        versions = [
            r[0]
            for r in conn.execute(sa.text("SELECT version FROM schema_version ORDER BY version"))
        ]
    engine.dispose()
    assert versions == [1, 2, 3, 4, 5, 6]


def test_a_migrated_ledger_has_the_same_schema_as_a_new_one(v1_url, backend, tmp_path, request):
    Ledger(v1_url).close()
    if backend == "sqlite":
        fresh = str(tmp_path / "fresh.db")
    else:
        fresh = request.getfixturevalue("pg_server").new_database()
    Ledger(fresh).close()
    migrated, created = columns(v1_url), columns(fresh)
    assert migrated == created


def test_a_failed_migration_leaves_the_ledger_unchanged(v1_url, backend, monkeypatch):
    before = columns(v1_url)

    def broken(conn):  # adds a column, then fails: the whole migration must roll back
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN scope TEXT NOT NULL DEFAULT 'process'")
        conn.exec_driver_sql("ALTER TABLE no_such_table ADD COLUMN x TEXT")

    monkeypatch.setattr(_schema, "MIGRATIONS", [broken])
    with pytest.raises(gp.SchemaVersionError, match="cannot migrate.*left unchanged"):
        Ledger(v1_url)
    monkeypatch.undo()
    assert columns(v1_url) == before
    assert "scope" not in before["runs"] and "samples" not in before
    # the transactional DDL was rolled back: the real migration still works afterwards
    with Ledger(v1_url) as led:
        assert led.schema_version == 6 and len(led.runs()) == len(V1_RUNS)


def test_a_newer_schema_is_refused_untouched(ledger_url, backend):
    with Ledger(ledger_url) as led:
        led.start_run(gp.RunRecord(id="future00", name="x"))
    engine = sa.create_engine(ledger_url if backend == "postgres" else f"sqlite:///{ledger_url}")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (99, 0, '9.9.9')"))
    engine.dispose()
    before = digest(Path(ledger_url)) if backend == "sqlite" else None
    for create in (True, False):
        with pytest.raises(gp.SchemaVersionError, match="version 99.*upgrade greenprint"):
            Ledger(ledger_url, create=create)
    if backend == "sqlite":
        assert digest(Path(ledger_url)) == before


def test_a_database_with_other_tables_is_not_a_ledger(ledger_url, backend):
    engine = sa.create_engine(ledger_url if backend == "postgres" else f"sqlite:///{ledger_url}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(sa.text("INSERT INTO customers VALUES (1, 'Ada')"))
    engine.dispose()
    before = digest(Path(ledger_url)) if backend == "sqlite" else None
    for create in (True, False):
        with pytest.raises(gp.NotALedgerError, match="not a greenprint ledger"):
            Ledger(ledger_url, create=create)
    if backend == "sqlite":
        assert digest(Path(ledger_url)) == before
    engine = sa.create_engine(ledger_url if backend == "postgres" else f"sqlite:///{ledger_url}")
    assert sa.inspect(engine).get_table_names() == ["customers"]
    engine.dispose()


def test_an_empty_database_is_not_created_when_create_is_false(ledger_url, backend):
    if backend == "sqlite":
        with pytest.raises(gp.LedgerPathError, match="no ledger"):
            Ledger(ledger_url, create=False)
        assert not Path(ledger_url).exists()
    else:
        with pytest.raises(gp.LedgerPathError, match="no ledger"):
            Ledger(ledger_url, create=False)
        engine = sa.create_engine(ledger_url)
        assert sa.inspect(engine).get_table_names() == []
        engine.dispose()


def test_the_v2_fixture_is_committed_and_version_2():
    import sqlite3

    conn = sqlite3.connect(f"file:{V2_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (2,)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert names == {"schema_version", "runs", "metrics", "samples"}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        assert "scope" in columns and "role" not in columns
    finally:
        conn.close()


def test_v2_is_migrated_with_every_row_preserved_and_roles_not_given(v2_url, backend):
    with Ledger(v2_url) as led:
        assert led.schema_version == 6
        by_id = {r.id: r for r in led.runs()}
        assert set(by_id) == {r["id"] for r in V2_RUNS}
        for row in V2_RUNS:
            run = by_id[row["id"]]
            for key in ("name", "study", "parent_id", "status", "energy_kwh", "scope", "error"):
                assert getattr(run, key) == row[key], key
            assert run.machine_energy_kwh == row["machine_energy_kwh"]
            assert run.role is None  # older runs: not given
        assert sum(len(r.metrics) for r in by_id.values()) == len(V2_METRICS)
        assert [s.cpu_w for s in led.samples(SWEEP)] == [s["cpu_w"] for s in V2_SAMPLES]
        # roles can be stored on the migrated ledger
        led.flush(TRIALS[0], fields={"role": "trial"})
        assert led.run(TRIALS[0]).role == "trial"
        with pytest.raises(gp.ConfigError, match="unknown run role 'fold'.*trial, part"):
            led.flush(TRIALS[0], fields={"role": "fold"})
        assert led.run(TRIALS[0]).role == "trial"

    from greenprint.analysis import resolve_roles

    with Ledger(v2_url) as led:
        roles = resolve_roles(led.runs(study="cv-sweep")).as_dict()
    assert roles[SWEEP] == ("sweep", True)
    assert roles[TRIALS[0]] == ("trial", False) and roles[TRIALS[1]] == ("trial", True)
    folds = [r["id"] for r in V2_RUNS if r["parent_id"] in TRIALS]
    assert all(roles[f] == ("part", True) for f in folds)
    engine = sa.create_engine(v2_url if backend == "postgres" else f"sqlite:///{v2_url}")
    with engine.connect() as conn:
        versions = [
            r[0]
            for r in conn.execute(sa.text("SELECT version FROM schema_version ORDER BY version"))
        ]
    engine.dispose()
    assert versions == [1, 2, 3, 4, 5, 6]


def test_a_migrated_v2_ledger_has_the_same_schema_as_a_new_one(v2_url, backend, tmp_path, request):
    Ledger(v2_url).close()
    if backend == "sqlite":
        fresh = str(tmp_path / "fresh.db")
    else:
        fresh = request.getfixturevalue("pg_server").new_database()
    Ledger(fresh).close()
    assert columns(v2_url) == columns(fresh)
    assert columns(fresh)["runs"]["role"] == ("TEXT", True)


def test_roles_round_trip_on_every_backend(ledger_url):
    from .conftest import make_record

    with Ledger(ledger_url) as led:
        led.start_run(make_record("r0le0001", role="baseline"))
        led.start_run(make_record("r0le0002"))
        led.flush("r0le0002", fields={"role": "learning-curve"})
        led.start_run(make_record("r0le0003"))
        assert [r.role for r in led.runs()] == ["baseline", "learning-curve", None]
        with pytest.raises(gp.ConfigError, match="roles: trial, part, baseline, final"):
            led.start_run(make_record("r0le0004", role="winner"))
        assert len(led.runs()) == 3


def test_the_v3_fixture_is_committed_and_version_3():
    import sqlite3

    from .fixtures.make_v3 import V3_PATH

    conn = sqlite3.connect(f"file:{V3_PATH}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (3,)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        assert "role" in columns and "job_id" not in columns and "contained" not in columns
    finally:
        conn.close()


def test_v3_is_migrated_with_jobs_unknown_and_price_tag_unchanged(v3_url, backend, tmp_path):
    from greenprint.analysis import price_tag

    from .fixtures.make_v3 import V3_ROLES

    with Ledger(v3_url) as led:
        assert led.schema_version == 6
        runs = led.runs()
        assert {r.id for r in runs} == {r["id"] for r in V2_RUNS}
        for run in runs:
            assert run.role == V3_ROLES.get(run.id)
            assert (run.job_id, run.node_rank, run.local_rank) == (None, None, None)
            assert run.node_meter is None and run.contained is None
        # job columns can be written on the migrated ledger
        led.flush(TRIALS[1], fields={"job_id": "slurm:42", "node_rank": 1, "contained": False})
        moved = led.run(TRIALS[1])
        assert (moved.job_id, moved.node_rank, moved.contained) == ("slurm:42", 1, False)
        led.flush(TRIALS[1], fields={"job_id": None, "node_rank": None, "contained": None})
        tag = price_tag(led.runs())
    # contained unknown reads as inside the parent: the sweep's roots only, as in version 3
    roots = [r for r in V2_RUNS if r["parent_id"] is None]
    assert tag.total.energy_kwh == pytest.approx(sum(r["energy_kwh"] for r in roots))
    fresh = str(tmp_path / "fresh.db") if backend == "sqlite" else None
    if fresh is not None:
        Ledger(fresh).close()
        assert columns(v3_url) == columns(fresh)
