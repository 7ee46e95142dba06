"""PostgreSQL reads on the driver's own cursor (``_sql_reads._fetched``): the same runs as SQLite.

A PostgreSQL read skips SQLAlchemy's processing of each value and runs on psycopg's cursor in
binary format; the values are decoded by ``_rows``, as those ``sqlite3`` hands to
``SQLiteStore``. Two stores, two drivers, one decoder: the SQLite read (another code path) is
the reference, on runs holding every kind of stored value. A read the server refuses is still
one ``LedgerError`` naming the ledger (one line, exit 2 from the CLI).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from _shared_runs import write_shared_runs
from greenprint.ledger._rows import REPEATED_COLUMNS

T0 = 1_700_000_000.0

pytestmark = pytest.mark.postgres


def _runs() -> list[tuple[gp.RunRecord, list[gp.MetricPoint]]]:
    """Runs with every kind of value a column stores, values shared by runs and not."""
    out = []
    for k in range(7):
        record = gp.RunRecord(
            id=f"run-{k}",
            name=f"trial ü {k}",
            study="s" if k < 6 else "other",
            status=("finished", "failed", "pruned", "interrupted")[k % 4],
            role=(None, "trial", "part", "baseline")[k % 4],
            parent_id="run-0" if k in (2, 5) else None,
            contained=(None, True, False)[k % 3] if k in (2, 5) else None,
            started_at=T0 + k,
            ended_at=T0 + k + 0.5,
            duration_s=0.5,
            host="node-a" if k < 4 else "node-b",
            params={"lr": 10.0**-k, "layers": [k, 2 * k], "name": "x\u00e9\"'", "on": k % 2 == 0},
            dataset_size=1000 + k if k else None,
            fpo=2**70 + k if k != 3 else None,  # beyond 64 bits: stored as text
            param_count=12_345 * k,
            energy_kwh=1e-6 * (k + 1),
            energy_cpu_kwh=float("nan") if k == 4 else 1e-7,
            emissions_kg=float("inf") if k == 5 else 4e-7,
            pue=1.2,
            intensity_g_per_kwh=345.0,
            intensity_source="config:region=DE",
            provenance={"energy": "estimate:tdp", "k": k} if k % 2 else {"energy": "rapl"},
            error="Trace\nback" if k == 1 else None,
            job_id="job-1" if k in (3, 4) else None,
            node_rank=0 if k == 3 else None,
            local_rank=1 if k == 4 else None,
            node_meter=k == 3 if k in (3, 4) else None,
        )
        points = [
            gp.MetricPoint("accuracy", v, step, T0 + k + step)
            for step, v in enumerate((0.5, float("nan"), 0.25 * k, float("-inf")))
        ]
        points.append(gp.MetricPoint("loss", 1.0 / (k + 1), 0, T0 + k))
        out.append((record, points))
    return out


def _write(url: str) -> None:
    with gp.Ledger(url) as led:
        for record, points in _runs():
            led.start_run(record)
            led.flush(record.id, metrics=points)


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a RunRecord's NaN energy is not equal to itself)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return type(a) is type(b) and a == b


def test_every_kind_of_value_reads_from_postgresql_as_from_sqlite(
    pg_server: Any, tmp_path: Path
) -> None:
    url = pg_server.new_database()
    path = tmp_path / "l.db"
    _write(url)
    _write(str(path))
    with gp.Ledger(url, create=False) as pg, gp.Ledger(path, create=False) as lite:
        for read in (
            {},
            {"study": "s"},
            {"study": "s", "points": "score"},
            {"study": "s", "points": "score", "metrics": ["accuracy"]},
            {"study": "s", "status": ["failed", "pruned"]},
            {"parent_id": None},
            {"parent_id": "run-0"},
        ):
            from_pg, from_lite = pg._read(**read), lite._read(**read)
            assert [r.id for r in from_pg] == [r.id for r in from_lite], read
            assert _same(from_pg, from_lite), read
        (record,) = pg.runs(study="other")
        assert record.fpo == 2**70 + 6 and record.params["layers"] == [6, 12]
        assert math.isnan(pg.run("run-4").energy_cpu_kwh or 0.0)
        assert pg.run("run-5").emissions_kg == math.inf and pg.run("run-5").contained is False
        values = [p.value for p in pg.run("run-2").metrics]
        assert values[0] == 0.5 and math.isnan(values[1]) and values[2:] == [0.5, -math.inf, 1 / 3]


def test_a_read_the_server_refuses_is_one_ledger_error(pg_server: Any, tmp_path: Path) -> None:
    """A role that may read only some columns of ``runs`` (a team's ledger, a reader granted
    what an older greenprint read): the read on the driver's cursor fails inside the
    transaction; it raises LedgerError naming the ledger, and ``greenprint report`` says so
    in one line, exit 2."""
    import subprocess

    import sqlalchemy as sa

    url = pg_server.new_database()
    _write(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP ROLE IF EXISTS gp_no_runs"))
        conn.execute(sa.text("CREATE ROLE gp_no_runs LOGIN"))
        conn.execute(sa.text("GRANT SELECT ON schema_version, metrics, samples TO gp_no_runs"))
        # the columns of the first query (the values runs share), not the others
        shared = ", ".join(REPEATED_COLUMNS)
        conn.execute(sa.text(f"GRANT SELECT ({shared}) ON runs TO gp_no_runs"))
    engine.dispose()
    reader = url.replace("://postgres:", "://gp_no_runs:", 1)
    assert reader != url
    with gp.Ledger(reader, create=False) as led:
        with pytest.raises(gp.LedgerError, match="permission denied for table runs") as caught:
            led.runs(study="s")
        assert str(caught.value).startswith("ledger postgresql")
        assert "\n" not in str(caught.value)
    done = subprocess.run(
        [str(BIN / "greenprint"), "report", "--ledger", reader, "--study", "s", "--format", "json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied for table runs" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    # nothing was lost: the owner reads every run
    with gp.Ledger(url, create=False) as led:
        assert len(led.runs()) == 7


def test_runs_whose_shared_columns_differ_read_from_postgresql_as_from_sqlite(
    pg_server: Any, tmp_path: Path
) -> None:
    """Runs that differ from the first run in each of the columns a study's runs share (the
    SQLite store reads those as a few combinations, ``_rows.SharedValues``; PostgreSQL as
    ``NULLIF`` against the first run's, every run's values): each run reads from PostgreSQL as
    from SQLite (tested against its stored rows in ``test_decoded_columns.py``)."""
    url, path = pg_server.new_database(), tmp_path / "l.db"
    for target in (url, str(path)):
        with gp.Ledger(target) as led:
            write_shared_runs(led)
    with gp.Ledger(url, create=False) as pg, gp.Ledger(path, create=False) as lite:
        for study in ("s", "t", None):
            from_pg, from_lite = pg._read(study=study), lite._read(study=study)
            assert [r.id for r in from_pg] == [r.id for r in from_lite], study
            assert _same(from_pg, from_lite), study
        assert math.isnan(pg.run("s024").pue)
