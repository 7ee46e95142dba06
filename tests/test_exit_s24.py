"""The end of a run whose ledger another process keeps locked, as a user meets it.

A real second process holds ``BEGIN EXCLUSIVE`` on the ledger's SQLite file from the middle of
the run on (a ``sqlite3`` shell left open in a transaction, a backup tool, another job's long
write). Before: leaving the ``with`` block waited for SQLite's retries (about 180 s measured:
the sampler's blocked flush, then the final one) and the interpreter's exit for about 120 s
more, before the run was saved apart. Now the end of the run waits 5 s for the ledger, the exit
3 s, and the run is saved in a ledger file of its own with one warning saying where and the
``greenprint ledger merge`` command that puts it back, every point and sample included. When
the lock goes while the program still runs, the run is written in the background instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in

#: Holds an exclusive write lock on the ledger once ``go`` exists, until ``release`` exists.
HOLDER = """
import os, sqlite3, sys, time
db, go, locked, release = sys.argv[1:5]
while not os.path.exists(go):
    time.sleep(0.01)
conn = sqlite3.connect(db, isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
open(locked, "w").close()
while not os.path.exists(release):
    time.sleep(0.01)
conn.execute("ROLLBACK")
"""

#: A run that logs 50 points written, then 100 while the ledger is locked; with ``release``,
#: the lock goes once the run has ended (its wait for the ledger over: 1 s there, the 5 s
#: without ``release``), 0.5 s before the program exits: the final record, written in the
#: background, lands about 0.1 s after it.
SCRIPT = """
import json, os, sys, time
import greenprint as gp

if "release" in sys.argv:  # the end waits 1 s, not its 5 s (held without release): the lock
    from greenprint import _run_persistence  # outlasts either, released once the run ended
    _run_persistence._FINAL_WRITE_S = 1.0

def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)

with gp.track("t", study="s", ledger="greenprint.db", params={"lr": 0.1},
              sample_interval_s=0.05, flush_interval_s=0.1) as run:
    for step in range(50):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.4)  # flushes that are written
    open("go", "w").close()
    wait_for("locked")
    for step in range(50, 150):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.5)  # flushes blocked on the lock
    left = time.monotonic()
ended_s = time.monotonic() - left
print(json.dumps({"id": run.id, "status": run.status, "energy_kwh": run.energy_kwh,
                  "end_s": ended_s}), flush=True)
if "release" in sys.argv:
    open("release", "w").close()
    time.sleep(0.5)
"""

LIST = """
import json, greenprint as gp
led = gp.Ledger("greenprint.db", create=False)
for r in led.runs():
    print(json.dumps({"id": r.id, "status": r.status, "points": len(r.metrics),
                      "energy_kwh": r.energy_kwh, "samples": len(led.samples(r.id))}))
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SQLite file locks of POSIX")


@contextmanager
def locked_ledger(home: Path, study: str) -> Iterator[dict[str, str]]:
    """``study`` written to ``home/study.py`` beside a process holding its ledger's lock.

    Starts :data:`HOLDER` on ``home/greenprint.db``; yields the script's environment (a new
    user's, its temporary folder ``home/tmp``); at the end tells the holder to release the
    lock and waits for it.
    """
    (home / "holder.py").write_text(HOLDER, encoding="utf-8")
    (home / "study.py").write_text(study, encoding="utf-8")
    (home / "tmp").mkdir()
    paths = [str(home / n) for n in ("greenprint.db", "go", "locked", "release")]
    holder = subprocess.Popen([sys.executable, str(home / "holder.py"), *paths])
    try:
        yield {**clean_env(), "TMPDIR": str(home / "tmp")}
    finally:
        (home / "release").touch()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - it polls every 10 ms
            holder.kill()
            holder.wait()


def _run(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float, dict]:
    """The script run with a holder of the ledger's lock: (its result, its wall time, its end)."""
    with locked_ledger(home, SCRIPT) as env:
        began = time.monotonic()
        # before: about 300 s (180 s leaving the with block, 120 s at exit)
        done = subprocess.run(
            [sys.executable, "study.py", *args],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        wall_s = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done, wall_s, json.loads(done.stdout.splitlines()[-1])


def _runs(home: Path) -> dict[str, dict]:
    (home / "list.py").write_text(LIST, encoding="utf-8")
    done = run_in(home, sys.executable, "list.py")
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in map(json.loads, done.stdout.splitlines())}


def test_a_locked_ledger_holds_the_end_and_the_exit_seconds_and_the_run_is_saved_apart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = empty_home(tmp_path_factory, "locked-at-exit")
    done, wall_s, ended = _run(home)
    assert ended["status"] == "finished"
    assert ended["end_s"] < 8.0, done.stderr  # leaving the with block: 5 s for the ledger
    # the whole program (interpreter start, the run's 1.5 s, 5 s at its end, 3 s at exit)
    assert wall_s < 30.0, done.stderr
    saved = home / "tmp" / f"greenprint-{os.getuid()}" / f"greenprint-unsaved-{ended['id']}.db"
    assert saved.is_file(), done.stderr
    said = [line for line in done.stderr.splitlines() if "saved in" in line]
    assert len(said) == 1, done.stderr  # one line: where, and the command that merges it
    command = re.search(r"`(greenprint ledger merge [^`]+)`", said[0])
    assert command is not None, done.stderr
    assert command.group(1) == f"greenprint ledger merge {home / 'greenprint.db'} {saved}"
    before = _runs(home)[ended["id"]]
    assert before["status"] == "lost" and before["points"] == 50  # written before the lock
    merged = run_in(home, GREENPRINT, *command.group(1).split()[1:])
    assert merged.returncode == 0, merged.stderr
    after = _runs(home)[ended["id"]]
    # nothing recorded is lost: every point, the samples written before and after the lock
    assert (after["status"], after["points"]) == ("finished", 150)
    assert after["samples"] > before["samples"] > 0
    assert after["energy_kwh"] == pytest.approx(ended["energy_kwh"], rel=1e-12)


def test_a_lock_that_goes_before_the_exit_lets_the_run_be_written_in_the_background(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = empty_home(tmp_path_factory, "locked-then-free")
    done, _, ended = _run(home, "release")
    assert ended["end_s"] < 8.0, done.stderr
    assert "did not take its final record within 1 s" in done.stderr
    assert f"run {ended['id'][:8]} ('t') is in the ledger now" in done.stderr
    assert "saved in" not in done.stderr, done.stderr
    assert not list((home / "tmp").glob("**/greenprint-unsaved-*"))
    run = _runs(home)[ended["id"]]
    assert (run["status"], run["points"]) == ("finished", 150)
    assert run["energy_kwh"] == pytest.approx(ended["energy_kwh"], rel=1e-12)


# -- a process killed outright (SIGKILL) -----------------------------------------------------

#: A run of the given options logging a point every 50 ms, printing its seconds so far.
KILLED = """
import json, sys, time
import greenprint as gp

with gp.track("k", ledger="greenprint.db", **json.loads(sys.argv[1])) as run:
    print(run.id, flush=True)
    step = 0
    while True:
        run.log(loss=1 / (step + 1), step=step)
        step += 1
        print(f"{run.duration_s:.3f}", flush=True)
        time.sleep(0.05)
"""


def _killed_at(home: Path, kill_at_s: float, **options: float) -> tuple[float, dict]:
    """A real child tracking a run, SIGKILLed ``kill_at_s`` into it: (its seconds, its row).

    Its seconds are the run's own clock at the kill: from its ``started_at`` to the moment
    the kill was sent, both wall clock, so that what the ledger kept is compared with when
    the child died. (Its last printed line is no measure of it: under load the lines wait in
    the pipe, the child runs on while this process reads them, and the run started before
    the child's own clock did.)
    """
    import signal

    from greenprint import Ledger

    (home / "killed.py").write_text(KILLED, encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, "killed.py", json.dumps(options)],
        cwd=home,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        elapsed_s = 0.0
        while elapsed_s < kill_at_s:
            line = child.stdout.readline()
            assert line, "the child ended before it was killed"
            elapsed_s = float(line)
        child.send_signal(signal.SIGKILL)
        killed_at = time.time()  # it runs no more code of its own after this
    finally:
        child.kill()
        child.wait()
    led = Ledger(home / "greenprint.db", create=False)
    try:
        run = led.run(run_id)
        samples = led.samples(run_id)
        row = {
            "duration_s": run.duration_s,
            "energy_kwh": run.energy_kwh,
            "points": len(run.metrics),
            "samples": len(samples),
            # the slowest meter read to the next on this machine now (the sample interval,
            # a flush's write and the thread's wake-up, as a busy machine stretches them)
            "slowest_sample_s": max((s.t1 - s.t0 for s in samples), default=0.0),
            "last_sample_s": samples[-1].t1 - run.started_at if samples else 0.0,
        }
    finally:
        led.close()
    return killed_at - run.started_at, row


def test_a_run_killed_before_its_first_flush_interval_keeps_its_first_sample(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Defaults (a sample every 1 s, a flush every 10 s), SIGKILL 2.5 s in. Before: the ledger
    held nothing of the run but its start (0 s, 0 kWh, no point: all 2.5 s lost, as any run
    killed in its first 10 s). Now the first sample is flushed at once: only what came after
    it (about 1.5 s) is lost."""
    home = empty_home(tmp_path_factory, "killed-early")
    killed_s, row = _killed_at(home, 2.5)
    assert row["duration_s"] >= 0.5 and row["energy_kwh"] > 0, row
    assert row["points"] > 0, row
    # the first sample (about 1 s in) and only it: the next flush was 10 s after it; the run's
    # time is that sample's, its energy covers it
    assert row["samples"] == 1 and row["duration_s"] == pytest.approx(row["last_sample_s"]), row
    assert 0.0 <= killed_s - row["duration_s"], (killed_s, row)


def test_a_kill_9_loses_at_most_one_flush_interval(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The bound the docs give: cost, points and samples up to the last flush are kept; what
    came after (one flush interval, plus the sample reads and the write around it, each as
    long as the slowest measured in the run) is what a kill -9 loses. Before: the kill was
    timed by the child's last line read, from after the run's start (under load the ledger
    then held 0.04 s more than the child had lived), with a fixed second for a busy machine."""
    home = empty_home(tmp_path_factory, "killed-late")
    flush_s, sample_s = 1.0, 0.2
    killed_s, row = _killed_at(home, 3.3, sample_interval_s=sample_s, flush_interval_s=flush_s)
    lost_s = killed_s - row["duration_s"]
    # the run's time is that of its last flushed sample, whose energy covers it
    assert row["duration_s"] == pytest.approx(row["last_sample_s"]), row
    # lost: from that sample to the end of the next flush, which comes at the first sample one
    # flush interval after the write of the last; each read to the next (write included) took
    # at most the slowest measured here (a sample interval when the machine is idle)
    slowest_s = max(row["slowest_sample_s"], sample_s)
    assert 0.0 <= lost_s <= flush_s + 3 * slowest_s, (killed_s, row)
    assert row["points"] > 0 and row["samples"] > 0 and row["energy_kwh"] > 0, row


#: A run whose ledger gets locked mid-run, then SIGTERMed (``ready`` printed) while running;
#: its end waits 1 s for the ledger and its exit 1 s, not their 5 s and 3 s (which the test of a
#: locked ledger at exit holds): the lock outlasts both.
TERMINATED = """
import os, sys, time
import greenprint as gp
from greenprint import _run_persistence

_run_persistence._FINAL_WRITE_S = _run_persistence._EXIT_WRITE_S = 1.0

def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.01)

with gp.track("t", ledger="greenprint.db", sample_interval_s=0.05, flush_interval_s=0.1) as run:
    for step in range(50):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.4)
    open("go", "w").close()
    wait_for("locked")
    for step in range(50, 150):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.3)
    print(run.id, flush=True)
    time.sleep(60)
"""


def test_a_run_sigtermed_while_its_ledger_is_locked_is_saved_apart_before_the_process_dies(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """SIGTERM's default action skips the exit handlers: the run was neither written nor saved
    (before, the handler waited about 180 s on the lock first). Now it waits 5 + 3 s (1 + 1
    here) and saves the run apart, interrupted, with every point, then the process dies of
    SIGTERM."""
    import signal

    home = empty_home(tmp_path_factory, "terminated-locked")
    with locked_ledger(home, TERMINATED) as env:
        child = subprocess.Popen(
            [sys.executable, "study.py"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        began = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            _, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
        died_s = time.monotonic() - began
    assert child.returncode == -signal.SIGTERM, stderr
    assert died_s < 20.0, stderr
    saved = home / "tmp" / f"greenprint-{os.getuid()}" / f"greenprint-unsaved-{run_id}.db"
    assert saved.is_file(), stderr
    said = [line for line in stderr.splitlines() if "saved in" in line]
    assert len(said) == 1 and "`greenprint ledger merge " in said[0], stderr
    merged = run_in(home, GREENPRINT, "ledger", "merge", str(home / "greenprint.db"), str(saved))
    assert merged.returncode == 0, merged.stderr
    run = _runs(home)[run_id]
    assert (run["status"], run["points"]) == ("interrupted", 150)
