"""A killed run reads ``lost`` at once on the machine where it ran, and a live one never does.

A run records the process that writes it (provenance ``"writer"``: pid, start tick, user, boot
id, pid namespace). A reader on the same host, boot and pid namespace that finds a ``running``
run whose process is gone, or whose pid now names a process that started at another tick,
returns it as ``lost`` without waiting for its heartbeat to go stale; everywhere else the
heartbeat rule alone decides, as before. Real subprocesses running ``gp.track``, killed with
SIGKILL, read through ``Ledger.runs``, ``greenprint ledger ls`` and ``greenprint report``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env, configured_above
from greenprint import _liveness
from greenprint.ledger._base import STALE_GRACE_S, derive_status, derive_statuses, is_stale

GREENPRINT = str(BIN / "greenprint")

#: Busy a moment (0.2 s of CPU, so the estimate has a cost to flush), then waits for its first
#: flush to write that cost, tells the test (a file) and sleeps. (Busy until the flush, it
#: burnt 2 s of CPU a process.) A flush every 2 s: the heartbeat stays fresh for 3 x 2 + 5 =
#: 11 s after the last one, so a run read as lost within that time is lost by its process, not
#: by the heartbeat rule.
SLEEPER = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    import greenprint as gp

    ready = Path(sys.argv[1])
    options = {"ledger": sys.argv[2]} if len(sys.argv) > 2 else {}
    flushed = threading.Event()
    with gp.track("sleeper", study="kill", sample_interval_s=0.1, flush_interval_s=2.0,
                  **options) as run:
        run.add_listener(lambda run, event: event == "flush" and flushed.set())
        run.log(accuracy=0.5)
        busy = time.process_time() + 0.2
        while time.process_time() < busy:  # busy, so the estimate has a cost to flush
            pass
        flushed.wait()
        ready.write_text(run.id)
        time.sleep(600)
    """
)


def _start(tmp_path: Path, *args: str, cwd: Path | None = None, env=None) -> subprocess.Popen:
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, str(ready), *args], cwd=cwd or tmp_path, env=env
    )
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            raise AssertionError(f"the tracked process did not flush (exit {proc.returncode})")
        time.sleep(0.05)
    proc.run_id = ready.read_text()  # type: ignore[attr-defined]
    return proc


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A live process tracking a run into ``tmp_path / "g.db"`` (killed at the end)."""
    db = tmp_path / "g.db"
    proc = _start(tmp_path, str(db))
    try:
        yield proc, db
    finally:
        _kill(proc)


def _stored(run: gp.RunRecord) -> gp.RunRecord:
    """The run as its row holds it (readers derive ``lost`` from a stored ``running``)."""
    return dataclasses.replace(run, status="running")


def _writer(run: gp.RunRecord, **words: str) -> str:
    """``run``'s writer identity with some of its words replaced (``tick="42"``...)."""
    parts = run.provenance["writer"].split()
    for key, value in words.items():
        parts[parts.index(key) + 1] = value
    return " ".join(parts)


def _copy(led: gp.Ledger, run: gp.RunRecord, run_id: str, writer: str | None) -> None:
    """Store a copy of ``run``, still ``running``, with another writer identity (or none)."""
    provenance = {k: v for k, v in run.provenance.items() if k != "writer"}
    if writer is not None:
        provenance["writer"] = writer
    led.start_run(dataclasses.replace(_stored(run), id=run_id, provenance=provenance, metrics=()))


def _cli(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [GREENPRINT, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_live_run_records_its_process_and_stays_running(sleeper) -> None:
    proc, db = sleeper
    (run,) = gp.Ledger(db).runs(study="kill")
    words = run.provenance["writer"].split()
    assert words[0::2] == ["pid", "tick", "uid", "boot", "pidns"]
    assert int(words[1]) == proc.pid
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert words[7] == boot and int(words[9]) == os.stat("/proc/self/ns/pid").st_ino
    tick = int(Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[19])
    assert int(words[3]) == tick  # the kernel's start time of that process, in ticks
    assert run.status == "running" and run.energy_kwh > 0
    # a paused process (SIGSTOP, a debugger) still exists: running, its heartbeat rule as ever
    proc.send_signal(signal.SIGSTOP)
    try:
        assert [r.status for r in gp.Ledger(db).runs()] == ["running"]
        assert gp.Ledger(db).runs(status="lost") == []
    finally:
        proc.send_signal(signal.SIGCONT)
    later = run.heartbeat_at + 3 * run.flush_interval_s + STALE_GRACE_S + 1
    assert derive_status(run, now=later).status == "lost"  # the heartbeat rule, unchanged


def test_a_killed_run_reads_lost_at_once_everywhere_with_its_cost(sleeper, tmp_path) -> None:
    proc, db = sleeper
    before = gp.Ledger(db).run(proc.run_id)
    assert before.status == "running" and before.energy_kwh > 0
    proc.kill()  # SIGKILL: the run's last word is its last flush
    proc.wait()
    (lost,) = gp.Ledger(db).runs(study="kill")
    assert lost.status == "lost"
    assert not is_stale(_stored(lost)), "the heartbeat is still fresh: the process decided"
    assert lost.ended_at is None
    assert lost.energy_kwh >= before.energy_kwh > 0 and lost.emissions_kg > 0
    assert lost.metric("accuracy") == 0.5
    led = gp.Ledger(db)
    assert [r.id for r in led.runs(status="lost")] == [proc.run_id]
    assert led.runs(status="running") == []
    assert led.run(proc.run_id[:8]).status == "lost"

    listed = json.loads(_cli("ledger", "ls", "--ledger", str(db), "--json", cwd=tmp_path))
    assert [(r["id"], r["status"]) for r in listed] == [(proc.run_id, "lost")]
    assert listed[0]["energy_kwh"] == pytest.approx(lost.energy_kwh)

    out = tmp_path / "rep"
    _cli("report", "--ledger", str(db), "--study", "kill", "--format", "json", "--out", str(out),
         "--no-plots", cwd=tmp_path)  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["lost"]
    by_status = report["price_tag"]["by_status"]
    assert set(by_status) == {"lost"}  # no "1 running" for a process that is gone
    assert by_status["lost"]["energy_kwh"] == pytest.approx(lost.energy_kwh)


def test_a_zombie_is_gone(sleeper) -> None:
    """Killed but not yet reaped by its parent: the process exists only as an exit status."""
    proc, db = sleeper
    proc.kill()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped
    assert Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    assert gp.Ledger(db).run(proc.run_id).status == "lost"


def test_a_pid_that_names_another_process_now_is_lost(sleeper) -> None:
    """A different start tick is another process: the pid was used again."""
    proc, db = sleeper
    led = gp.Ledger(db)
    run = led.run(proc.run_id)
    tick = int(run.provenance["writer"].split()[3])
    _copy(led, run, "a" * 32, _writer(run, tick=str(tick - 1)))  # the pid's earlier owner
    by_id = {r.id: r.status for r in gp.Ledger(db).runs()}
    assert by_id == {proc.run_id: "running", "a" * 32: "lost"}  # one pid looked up, two ticks


def test_elsewhere_the_heartbeat_rule_alone_decides(sleeper) -> None:
    """Another boot, pid namespace or host, or no identity: running until the heartbeat is stale."""
    proc, db = sleeper
    proc.kill()
    proc.wait()
    led = gp.Ledger(db)
    run = led.run(proc.run_id)
    assert run.status == "lost"
    _copy(led, run, "b" * 32, _writer(run, boot="00000000-0000-4000-8000-000000000000"))
    _copy(led, run, "c" * 32, _writer(run, pidns="1"))  # another container on this kernel
    _copy(led, run, "d" * 32, None)  # a run written before runs recorded their process
    led.start_run(dataclasses.replace(_stored(run), id="e" * 32, host="another-host", metrics=()))
    copies = [r for r in gp.Ledger(db).runs() if r.id != run.id]
    assert [r.status for r in copies] == ["running"] * 4
    stale_at = run.heartbeat_at + 3 * run.flush_interval_s + STALE_GRACE_S + 1
    assert [r.status for r in derive_statuses(copies, now=stale_at)] == ["lost"] * 4


def test_unreadable_proc_records_nothing_and_never_raises(tmp_path, monkeypatch) -> None:
    def unreadable(path: str) -> str:
        raise OSError(13, "Permission denied", path)

    monkeypatch.setattr(_liveness, "_read_text", unreadable)
    monkeypatch.setattr(_liveness, "_own_writer", None)  # read once per process: read again
    monkeypatch.setattr(_liveness, "_own_place", None)
    assert _liveness.writer_identity() is None
    with gp.track("sandboxed", study="s", ledger=tmp_path / "s.db") as run:
        assert "writer" not in run.provenance
    (stored,) = gp.Ledger(tmp_path / "s.db").runs()
    assert stored.status == "finished" and "writer" not in stored.provenance

    # a reader that cannot read /proc keeps the heartbeat rule for a run that has an identity
    monkeypatch.undo()
    with gp.track("here", study="s", ledger=tmp_path / "s.db") as run:
        identity = run.provenance["writer"]
    copy = dataclasses.replace(stored, id="f" * 32, status="running", host=run.record.host)
    copy = dataclasses.replace(copy, provenance={**copy.provenance, "writer": identity})
    tick = int(identity.split()[3])
    other = _writer(run, tick=str(tick + 1))  # this (live) process with another tick: not it
    gone = dataclasses.replace(copy, provenance={"writer": other})
    assert derive_status(gone).status == "lost"
    # a text that is not an identity is no identity: the heartbeat rule alone
    negative = _writer(run, pid="-1")  # a pid no process has
    for garbled in ("pid x", "", "pid 1 tick 2 uid 3 boot 4 pidns five", 42, negative):
        odd = dataclasses.replace(gone, provenance={"writer": garbled})  # type: ignore[dict-item]
        assert derive_status(odd).status == "running"
    monkeypatch.setattr(_liveness, "_read_text", unreadable)
    monkeypatch.setattr(_liveness, "_own_place", None)
    assert derive_status(gone).status == "running"
    assert derive_status(copy).status == "running"


def test_a_new_user_sees_a_killed_run_lost_at_once(tmp_path, require_component) -> None:
    """An empty directory, a clean environment, no configuration: ./greenprint.db."""
    home = tmp_path / "new-user"
    home.mkdir()
    found = configured_above(home)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    proc = _start(tmp_path, cwd=home, env=clean_env())
    try:
        listed = json.loads(_cli("ledger", "ls", "--json", cwd=home))
        assert [(r["id"], r["status"]) for r in listed] == [(proc.run_id, "running")]
    finally:
        _kill(proc)
    listed = json.loads(_cli("ledger", "ls", "--json", cwd=home))
    assert [(r["id"], r["status"]) for r in listed] == [(proc.run_id, "lost")]
    assert listed[0]["energy_kwh"] > 0
