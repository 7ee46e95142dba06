"""Crash safety across processes: kill -9, SIGTERM, and children that inherit their parent run."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time

import greenprint as gp
from greenprint.ledger import STALE_GRACE_S
from greenprint.ledger._base import derive_status, is_stale

WORKER = textwrap.dedent(
    """
    import sys, time
    import greenprint as gp
    ledger, flush = sys.argv[1], float(sys.argv[2])
    with gp.track("worker", study="crash", ledger=ledger,
                  sample_interval_s=flush / 4, flush_interval_s=flush) as run:
        print(run.id, flush=True)
        x = 0
        while True:  # busy, so the estimate has something to attribute
            x += 1
    """
)


def _start_worker(ledger: str, flush_s: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, ledger, str(flush_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    run_id = proc.stdout.readline().strip()
    assert run_id, "worker did not start"
    return proc, run_id


def _kill(proc: subprocess.Popen) -> None:
    """Leave no busy worker behind when a test fails (it would spin until the machine stops)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _wait_for_flushes(led: gp.Ledger, run_id: str, n: int, flush_s: float) -> gp.RunRecord:
    deadline = time.time() + 30
    first = led.run(run_id).heartbeat_at
    while time.time() < deadline:
        rec = led.run(run_id)
        if rec.heartbeat_at and first and rec.heartbeat_at - first >= n * flush_s * 0.9:
            return rec
        time.sleep(flush_s / 4)
    raise AssertionError("run never flushed")


def test_kill_9_leaves_a_lost_run_with_its_cost_so_far(tmp_path):
    ledger = str(tmp_path / "l.db")
    flush_s = 0.4
    proc, run_id = _start_worker(ledger, flush_s)
    led = gp.Ledger(ledger)
    try:
        seen = _wait_for_flushes(led, run_id, 3, flush_s)
    finally:
        proc.kill()  # SIGKILL: nothing in the worker runs
        proc.wait()
    killed_at = time.time()
    rec = led.run(run_id)
    assert rec.status == "lost"  # its process is gone: lost at once on this machine
    assert not is_stale(dataclasses.replace(rec, status="running"))  # heartbeat still fresh
    # everything flushed before the kill is there...
    assert rec.heartbeat_at >= seen.heartbeat_at and rec.energy_kwh >= seen.energy_kwh > 0
    # ...and what is missing is about one flush interval (slack for a loaded CI machine)
    assert killed_at - rec.heartbeat_at <= flush_s + flush_s / 4 + 2.0
    assert rec.duration_s > 2 * flush_s
    # elsewhere (another host) readers call a run lost once its heartbeat is 3 flushes +
    # STALE_GRACE_S old: ask the ledger's own rule at that time instead of waiting for it
    rec = dataclasses.replace(rec, status="running", host="another-host")
    later = rec.heartbeat_at + 3 * rec.flush_interval_s + STALE_GRACE_S + 0.5
    assert not is_stale(rec, now=later - 1.0)
    lost = derive_status(rec, now=later)
    assert lost.status == "lost"
    assert lost.energy_kwh == rec.energy_kwh > 0 and lost.emissions_kg > 0
    assert derive_status(rec, now=later - 1.0).status == "running"
    assert [derive_status(r, now=later).status for r in led.runs(study="crash")] == ["lost"]


def test_sigterm_marks_interrupted_with_cost_so_far(tmp_path):
    ledger = str(tmp_path / "l.db")
    proc, run_id = _start_worker(ledger, 0.4)
    led = gp.Ledger(ledger)
    try:
        _wait_for_flushes(led, run_id, 1, 0.4)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM  # the default action still happens
    finally:
        _kill(proc)
    rec = led.run(run_id)
    assert rec.status == "interrupted"
    assert rec.error and "SIGTERM" in rec.error
    assert rec.energy_kwh > 0
    assert rec.ended_at is not None


def test_sigint_marks_interrupted(tmp_path):
    ledger = str(tmp_path / "l.db")
    proc, run_id = _start_worker(ledger, 0.4)
    led = gp.Ledger(ledger)
    try:
        _wait_for_flushes(led, run_id, 1, 0.4)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) != 0
    finally:
        _kill(proc)
    assert led.run(run_id).status == "interrupted"


def test_child_process_inherits_its_parent_run(tmp_path):
    ledger = str(tmp_path / "l.db")
    child_code = (
        "import greenprint as gp\n"
        "with gp.track('child', sample_interval_s=0.05, flush_interval_s=0.1) as r:\n"
        "    print(r.id)\n"
    )
    with gp.track(
        "parent", study="family", ledger=ledger, sample_interval_s=0.05, flush_interval_s=0.1
    ) as parent:
        out = subprocess.run(
            [sys.executable, "-c", child_code],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path / "..",
        )
    child_id = out.stdout.strip()
    led = gp.Ledger(ledger)
    child = led.run(child_id)
    assert child.parent_id == parent.id
    assert child.study == "family"
    assert {r.id for r in led.runs(study="family")} == {parent.id, child_id}


def test_slurm_variables_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    ledger = str(tmp_path / "l.db")
    with gp.track("slurm", ledger=ledger, sample_interval_s=0.05, flush_interval_s=0.1) as run:
        time.sleep(0.2)
    rec = gp.Ledger(ledger).run(run.id)
    assert rec.env["SLURM_JOB_ID"] == "4242"
    assert rec.env["SLURM_ARRAY_TASK_ID"] == "7"
    assert rec.host == os.uname().nodename
