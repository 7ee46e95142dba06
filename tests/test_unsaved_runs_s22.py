"""A run whose ledger cannot take its final record (a full disk, a quota, a database that stays
locked, a server down) loses nothing that can still be saved.

The ledger's file is stopped from growing with ``RLIMIT_FSIZE`` (the kernel then refuses the
writes that would extend it, ``EFBIG``, as a full disk or an exhausted quota refuses them) while
the run is running, so its flushes and its final record fail for real. Before: the run read
``lost`` in the ledger for good, with none of its metrics, and its cost since the last flush
was gone. Now its record is kept in memory and written when the next run of the process starts
(room again); one still not written at the interpreter's exit is saved in a ledger file of its
own, and ``greenprint ledger merge LEDGER FILE`` (the command the warning gives) puts it in the
ledger as it ended.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE refusing writes: Linux"
)

#: A study of three runs: t0 fills the ledger's write-ahead log; t1's ledger stops growing
#: while it runs (its flushes and final record fail); then, with ``free``, the room comes back
#: and t2 runs; with ``late``, t1 also logs a test score after its end, before the room is back.
SCRIPT = """
import os, resource, signal, sys, time
import greenprint as gp

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails (EFBIG), as a full disk
ledger = "greenprint.db"
with gp.track("t0", study="s", ledger=ledger, sample_interval_s=0.05) as run:
    for step in range(3000):
        run.log(loss=1 / (step + 1), step=step)
with gp.track("t1", study="s", ledger=ledger, params={"lr": 0.1}, sample_interval_s=0.05,
              flush_interval_s=0.1) as run:
    time.sleep(0.3)  # flushes that are written
    limit = os.path.getsize(ledger + "-wal")  # the ledger cannot grow from here on
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    for step in range(300):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.3)  # flushes that fail
if "late" in sys.argv:
    run.log(test_accuracy=0.91)  # after the run's end: refused too
print(json.dumps({"id": run.id, "status": run.status, "energy_kwh": run.energy_kwh}))
if "free" in sys.argv:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with gp.track("t2", study="s", ledger=ledger) as later:
        later.log(loss=0.5)
""".replace("import os,", "import json, os,")

#: What prints the runs of the ledger as JSON lines (id, name, status, points, samples, kWh).
LIST = """
import json, greenprint as gp
led = gp.Ledger("greenprint.db", create=False)
for r in led.runs():
    print(json.dumps({"id": r.id, "name": r.name, "status": r.status, "points": len(r.metrics),
                      "names": sorted({p.name for p in r.metrics}), "energy_kwh": r.energy_kwh,
                      "samples": len(led.samples(r.id)), "params": r.params}))
"""


def _script(home: Path, *args: str) -> tuple[dict, str]:
    (home / "study.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py", *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def _runs(home: Path) -> dict[str, dict]:
    (home / "list.py").write_text(LIST, encoding="utf-8")
    done = run_in(home, sys.executable, "list.py")
    assert done.returncode == 0, done.stderr
    return {r["name"]: r for r in map(json.loads, done.stdout.splitlines())}


def test_a_run_the_ledger_refused_at_its_end_is_written_when_the_next_run_starts(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The ledger refuses t1's flushes and final record; t1 ends normally in the user's code
    (no exception), a warning says once that what it records is kept; when t2 starts, the
    ledger has room again and t1 is written whole: finished, its 300 points, its cost as it
    ended. Before: t1 read ``lost`` with no metric."""
    home = empty_home(tmp_path_factory, "unsaved-next-run")
    ended, stderr = _script(home, "free")
    assert ended["status"] == "finished"
    refused = [line for line in stderr.splitlines() if "could not write run" in line]
    assert len(refused) == 1, stderr  # once, not at every flush that failed
    assert "kept and written at its next flush" in refused[0]
    assert f"run {ended['id'][:8]} ('t1') is in the ledger now" in stderr
    runs = _runs(home)
    t1 = runs["t1"]
    assert (t1["status"], t1["points"], t1["params"]) == ("finished", 300, {"lr": 0.1})
    assert t1["energy_kwh"] == pytest.approx(ended["energy_kwh"], rel=1e-12)
    assert runs["t2"]["status"] == "finished"


def test_a_run_still_refused_at_exit_is_saved_apart_and_merged_back_as_the_warning_says(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The room never comes back before the program exits: t1 is saved in a ledger file of
    its own in the temporary folder, and the warning gives the command that puts it in the
    ledger; run as given, ``greenprint ledger merge`` replaces t1's row (read ``lost``) by t1
    as it ended: finished, every point (those written before the refusal and the rest), its
    power samples, its cost."""
    home = empty_home(tmp_path_factory, "unsaved-at-exit")
    temp = home / "tmp"
    temp.mkdir()
    (home / "study.py").write_text(SCRIPT, encoding="utf-8")
    env = {**clean_env(), "TMPDIR": str(temp)}
    done = run_in(home, sys.executable, "study.py", env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])
    before = _runs(home)["t1"]
    assert before["status"] == "lost"  # until it is merged: a ledger row that never ended
    saved = temp / f"greenprint-{os.getuid()}" / f"greenprint-unsaved-{ended['id']}.db"
    assert saved.is_file(), done.stderr
    # in the user's own folder, as the fallback files: the shared temporary folder's other
    # users can neither read the run's record nor plant a file at its name (it was 0644 in /tmp)
    assert saved.parent.stat().st_mode & 0o777 == 0o700
    command = re.search(r"`(greenprint ledger merge [^`]+)`", done.stderr)
    assert command is not None, done.stderr
    assert command.group(1) == f"greenprint ledger merge {home / 'greenprint.db'} {saved}"
    merged = run_in(home, GREENPRINT, *command.group(1).split()[1:])
    assert merged.returncode == 0, merged.stderr
    assert "1 updated" in merged.stdout
    after = _runs(home)["t1"]
    assert (after["status"], after["points"]) == ("finished", 300)
    assert after["energy_kwh"] == pytest.approx(ended["energy_kwh"], rel=1e-12)
    assert after["samples"] >= before["samples"] > 0  # those written before, and the rest
    again = run_in(home, *command.group(1).split())  # merging twice changes nothing
    assert again.returncode == 0 and "0 runs added, 0 updated, 1 already there" in again.stdout


def test_a_score_logged_after_a_refused_end_is_written_with_the_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A test score logged after t1's end, while the ledger still refuses it, is not lost: it is
    written with t1's final record when t2 starts."""
    home = empty_home(tmp_path_factory, "unsaved-late")
    _script(home, "late", "free")
    t1 = _runs(home)["t1"]
    assert t1["status"] == "finished"
    assert t1["names"] == ["loss", "test_accuracy"] and t1["points"] == 301


def test_a_ledger_closed_under_a_running_run_gets_the_run_all_the_same(tmp_path: Path) -> None:
    """The user's code closes the ledger object a run writes to (the process's shared one):
    the run goes on into the same database, its end and its score written. Before: its final
    record failed ("ledger ... is closed") and the run read ``lost``."""
    import greenprint as gp

    db = tmp_path / "gp.db"
    with gp.track("trial", study="s", ledger=db, sample_interval_s=0.05) as run:
        run.ledger.close()
        run.log(acc=0.5)
    with gp.Ledger(db) as led:
        record = led.run(run.id)
    assert (record.status, record.metric("acc")) == ("finished", 0.5)


#: A run into a PostgreSQL ledger whose server goes down while it runs (the script stops it).
PG_SCRIPT = """
import json, sys, time
import pgserver
import greenprint as gp

url, pgdata, user = sys.argv[1], sys.argv[2], sys.argv[3] or None  # the server's user
with gp.track("t1", study="s", ledger=url, sample_interval_s=0.05, flush_interval_s=0.1) as run:
    time.sleep(0.3)
    pgserver.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)
    for step in range(100):
        run.log(loss=1 / (step + 1), step=step)
    time.sleep(0.3)
    ending = time.monotonic()
print(json.dumps({"id": run.id, "status": run.status, "energy_kwh": run.energy_kwh,
                  "end_s": time.monotonic() - ending}))
"""


def test_a_postgresql_server_down_at_the_end_costs_no_wait_and_the_run_is_saved_apart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The ledger's PostgreSQL server goes down in the middle of a run: the run's block ends
    at once in the user's code (no exception, no wait on the dead server), and at exit the run
    is saved in a ledger file of its own, whole (finished, its 100 points, its cost); the
    warning's merge command does not print the URL's password (a placeholder, said so)."""
    from _pg import postgres_server

    home = empty_home(tmp_path_factory, "unsaved-postgres")
    (home / "pg.py").write_text(PG_SCRIPT, encoding="utf-8")
    env = {**clean_env(), "TMPDIR": str(home)}
    with postgres_server() as pg:
        server = pg.server
        done = run_in(
            home, sys.executable, "pg.py", pg.url(), str(server.pgdata), server.system_user or "",
            env=env,
        )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["status"] == "finished" and ended["end_s"] < 5.0
    assert '`greenprint ledger merge "$LEDGER_URL" ' in done.stderr, done.stderr
    assert "set LEDGER_URL to the ledger's URL above, with its password" in done.stderr
    saved = home / f"greenprint-{os.getuid()}" / f"greenprint-unsaved-{ended['id']}.db"
    # the command as printed, pasted in another folder: without LEDGER_URL one line, exit 2,
    # nothing written (it read a bare LEDGER_URL: the run merged into a new file ./LEDGER_URL,
    # exit 0); with it, the run goes into the ledger it names
    command = re.search(r"`(greenprint ledger merge [^`]+)`", done.stderr).group(1)
    elsewhere = home / "elsewhere"
    elsewhere.mkdir()
    pasted = run_in(elsewhere, "bash", "-c", command)
    assert pasted.returncode == 2, pasted.stderr
    assert pasted.stderr.strip().splitlines() == [
        "greenprint: error: the ledger path is empty (an unset shell variable?)"
    ]
    assert list(elsewhere.iterdir()) == []
    into = f"sqlite:///{home / 'into.db'}"
    pasted = run_in(elsewhere, "bash", "-c", command, env={**clean_env(), "LEDGER_URL": into})
    assert pasted.returncode == 0 and "1 run added" in pasted.stdout, pasted.stderr
    assert list(elsewhere.iterdir()) == []
    (home / "greenprint.db").unlink(missing_ok=True)
    saved.rename(home / "greenprint.db")
    t1 = _runs(home)["t1"]
    assert (t1["status"], t1["points"]) == ("finished", 100)
    assert t1["energy_kwh"] == pytest.approx(ended["energy_kwh"], rel=1e-12)


def test_greenprint_run_says_its_ledger_refused_the_run_and_saves_it_apart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``greenprint run`` whose ledger stops taking its writes while the command runs: the
    command runs to its end, the price tag says the ledger refused the run's final record, and
    at exit the run is saved apart with the merge command that puts it back (finished)."""
    import os
    import resource
    import subprocess
    import time

    home = empty_home(tmp_path_factory, "unsaved-cli")
    # the command: a training that logs 3,000 points (the ledger's log grows), then more work
    (home / "work.py").write_text(
        "import pathlib, time\n"
        "import greenprint as gp\n"
        "with gp.track('t0', study='s') as run:\n"
        "    for step in range(3000):\n"
        "        run.log(loss=1 / (step + 1), step=step)\n"
        "pathlib.Path('trained').touch()\n"
        "time.sleep(2)\n"
        "print('done')\n",
        encoding="utf-8",
    )
    env = {**clean_env(), "TMPDIR": str(home)}
    command = [GREENPRINT, "run", "--study", "s", "--name", "job", "--sample-interval", "0.1",
               "--flush-interval", "0.2", "--", sys.executable, "work.py"]  # fmt: skip
    job = subprocess.Popen(command, cwd=home, env=env, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (home / "trained").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # from here the ledger cannot grow for greenprint run (the command is not limited)
        wal = os.path.getsize(home / "greenprint.db-wal")
        resource.prlimit(job.pid, resource.RLIMIT_FSIZE, (wal, resource.RLIM_INFINITY))
        out, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 0 and out.strip() == "done" and "Traceback" not in err, err
    assert "(refused the run's final record: kept to be written, see above and below)" in err
    merge = re.search(r"`(greenprint ledger merge [^`]+)`", err)
    assert merge is not None, err
    assert run_in(home, *merge.group(1).split()).returncode == 0
    runs = _runs(home)
    assert (runs["job"]["status"], runs["t0"]["status"]) == ("finished", "finished")


def test_a_run_saved_apart_without_its_earlier_samples_merges_end_to_end(tmp_path: Path) -> None:
    """A run saved apart while its ledger could not even be read (a PostgreSQL server down)
    holds only the power samples its ledger lacks: merged back, the ledger holds both parts end
    to end, the run finished. Samples that overlap are still a conflict, nothing written."""
    import greenprint as gp
    from greenprint.ledger import MergeConflictError

    def sample(t0: float) -> gp.PowerSample:
        return gp.PowerSample(t0=t0, t1=t0 + 1.0, cpu_w=10.0, gpu_w=None, ram_w=1.0)

    record = gp.RunRecord(id="0123456789abcdef", name="t1", study="s", started_at=100.0)
    with gp.Ledger(tmp_path / "main.db") as main:
        main.start_run(record)  # as the ledger holds it: running, its first two samples
        main.flush(record.id, samples=[sample(100.0), sample(101.0)])
    ended = gp.RunRecord(
        id=record.id, name="t1", study="s", started_at=100.0, status="finished",
        ended_at=104.0, duration_s=4.0, energy_kwh=1e-5, heartbeat_at=104.0,
    )  # fmt: skip
    with gp.Ledger(tmp_path / "saved.db") as saved:  # the rest, as Run._spill writes it
        saved.start_run(ended)
        saved.flush(record.id, samples=[sample(102.0), sample(103.0)])
    with gp.Ledger(tmp_path / "overlapping.db") as overlapping:
        overlapping.start_run(ended)
        overlapping.flush(record.id, samples=[sample(101.5)])
    with gp.Ledger(tmp_path / "main.db") as main:
        with pytest.raises(MergeConflictError, match="samples"):
            main.merge(tmp_path / "overlapping.db")
        assert main.run(record.id).status == "lost"  # nothing written: still its running row
        summary = main.merge(tmp_path / "saved.db")
        assert summary.updated == 1
        assert main.run(record.id).status == "finished"
        assert [s.t0 for s in main.samples(record.id)] == [100.0, 101.0, 102.0, 103.0]
