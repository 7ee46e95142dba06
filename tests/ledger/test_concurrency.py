"""Many processes writing to one ledger at once lose nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from greenprint import LedgerError
from greenprint.ledger import Ledger
from greenprint.ledger._base import derive_status

WRITER = Path(__file__).with_name("_writer.py")


def run_writers(url: str, processes: int, runs: int, barrier: Path) -> None:
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), url, str(i), str(runs), str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(barrier.glob("ready-*"))) < processes:
            assert time.monotonic() < deadline, "writers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.02)
        (barrier / "go").touch()
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_everything_is_there(url: str, processes: int, runs: int) -> None:
    with Ledger(url, create=False) as led:
        records = led.runs()
        assert len(records) == processes * runs
        expected = {f"w{i:02d}r{j:03d}" for i in range(processes) for j in range(runs)}
        assert {r.id for r in records} == expected
        for r in records:
            worker, j = int(r.id[1:3]), int(r.id[4:])
            assert r.status == "finished"
            assert r.energy_kwh == worker + j / 1000
            assert [(p.name, p.value, p.step) for p in r.metrics] == [("acc", worker * 1000 + j, j)]
        assert sorted(led.studies()) == [f"study{k}" for k in range(min(processes, 3))]
        assert led.samples("w00r000")[0].cpu_w == 0.0
        path = led.path
    engine = sa.create_engine(url if path is None else f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM metrics")).scalar() == processes * runs
        assert conn.execute(sa.text("SELECT count(*) FROM samples")).scalar() == processes * runs
        assert conn.execute(sa.text("SELECT count(DISTINCT run_id) FROM samples")).scalar() == (
            processes * runs
        )
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_16_processes_x_50_runs_to_one_sqlite_ledger_lose_nothing(tmp_path):
    url = str(tmp_path / "shared.db")  # created by the writers themselves, concurrently
    run_writers(url, 16, 50, tmp_path / "barrier")
    check_everything_is_there(url, 16, 50)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_concurrent_writers_to_one_postgres_ledger_lose_nothing(pg_server, tmp_path):
    url = pg_server.new_database()  # empty: the writers race to create the schema
    run_writers(url, 8, 25, tmp_path / "barrier")
    check_everything_is_there(url, 8, 25)


KILLED_WRITER = """
import sys, time
from greenprint import MetricPoint, PowerSample, RunRecord
from greenprint.ledger import Ledger
led = Ledger(sys.argv[1])
led.start_run(RunRecord(id="killed00", name="k", started_at=time.time(), flush_interval_s=0.5))
i = 0
while True:
    i += 1
    now = time.time()
    led.flush(
        "killed00",
        fields={"energy_kwh": float(i), "heartbeat_at": now},
        metrics=[MetricPoint("step", float(i), i, now)],
        samples=[PowerSample(now - 0.01, now, cpu_w=float(i))],
    )
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_mid_flush_keeps_every_flush_whole(backend, tmp_path, request):
    """Each flush is one transaction: after SIGKILL, fields, metrics and samples agree."""
    if backend == "sqlite":
        url = str(tmp_path / "killed.db")
    else:
        url = request.getfixturevalue("pg_server").new_database()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, url], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer never flushed"
            try:
                with Ledger(url, create=False) as led:
                    if len(led.run("killed00").metrics) >= 50:
                        break
            except LedgerError:  # not created yet
                pass
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    with Ledger(url, create=False) as led:
        run = led.run("killed00")
        flushes = int(run.energy_kwh)
        assert flushes >= 50
        assert [p.step for p in run.metrics] == list(range(1, flushes + 1))
        assert [s.cpu_w for s in led.samples("killed00")] == [
            float(i) for i in range(1, flushes + 1)
        ]
        assert run.status == "running"  # heartbeat still fresh
        later = dataclasses.replace(run, heartbeat_at=run.heartbeat_at - 60)
        assert derive_status(later).status == "lost"
