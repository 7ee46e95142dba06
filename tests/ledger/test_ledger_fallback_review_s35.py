"""Session 35 review of the fallback ledger file (a ledger that fails mid-study), as users meet it.

Found by scripts in empty folders with a clean environment:

* a study's workers (multiprocessing's ``Pool``, forked or spawned) whose parent process wrote
  to the ledger raised ``LedgerPathError`` into the trial when the ledger's folder was gone:
  what the parent knew of the ledger was kept per process id, so a child knew nothing (now
  inherited by a forked child, and by a started one through ``GREENPRINT_STUDY_LEDGERS``,
  keys of the URLs);
* the fallback file was made in the temporary folder, which every user of the machine shares,
  readable by all (0644: a run's command, host and parameters), under a name any user can
  compute (``sha256("<uid>:<url>")``): a folder or link of another user's at that name was
  written through;
* a user who missed the warnings had no way to learn later that runs wait in a fallback file:
  ``greenprint ledger ls`` and ``greenprint report`` read the ledger without them.

The fallback files are now in ``greenprint-<uid>`` in the temporary folder (0700, this user's
own, checked), and ``ledger ls`` and ``report`` say when runs meant for the ledger wait in it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _pg import PgServer, postgres_server  # tests/_pg.py
from _report_cli import GREENPRINT
from greenprint import _run_fallback


def _names(location: str | Path) -> list[str]:
    ledger = gp.Ledger(location, create=False)
    try:
        return sorted(r.name for r in ledger.runs())
    finally:
        ledger.close()


def _cli(*args: str, cwd: Path, temp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GREENPRINT, *args],
        capture_output=True,
        text=True,
        env={**clean_env(), "TMPDIR": str(temp)},
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder the fallback files go to, this test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(_run_fallback, "_FALLBACKS", {})  # none said at the session's end
    monkeypatch.setattr(_run_fallback, "_OWN_FOLDER", [])
    return folder


# -- a study's forked workers ----------------------------------------------------------------

FORKED_STUDY = """
import multiprocessing as mp, os, sys
import greenprint as gp

def trial(i):
    try:
        with gp.track(f"t{i}", study="s", ledger="runs/gp.db") as run:
            run.log(score=i)
        return "ok"
    except Exception as e:
        return f"raised {type(e).__name__}"

if __name__ == "__main__":
    os.mkdir("runs")
    with gp.track("t0", study="s", ledger="runs/gp.db"):
        pass
    os.rename("runs", "moved")  # the ledger's folder moved away mid-study
    with mp.get_context(sys.argv[1]).Pool(2) as pool:
        print(pool.map(trial, [1, 2, 3]))
"""


# fork: Linux's default to Python 3.13; spawn: macOS's, and forkserver Linux's from 3.14
@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux")
def test_a_pools_workers_of_a_study_go_on_in_the_fallback_file(tmp_path, start):
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = tmp_path / "search.py"
    script.write_text(FORKED_STUDY)
    done = subprocess.run(
        [sys.executable, str(script), start],
        capture_output=True,
        text=True,
        env={**clean_env(), "TMPDIR": str(temp)},
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    # before: ['raised LedgerPathError', 'raised LedgerPathError', 'raised LedgerPathError']
    assert "['ok', 'ok', 'ok']" in done.stdout, done.stdout + done.stderr
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == ["t1", "t2", "t3"]
    assert _names(tmp_path / "moved" / "gp.db") == ["t0"]


# -- the temporary folder is shared by the machine's users -----------------------------------


def _fail_midstudy(tmp_path: Path) -> gp.Run:
    folder = tmp_path / "runs"
    folder.mkdir()
    with gp.track("t0", study="s", ledger=folder / "gp.db"):
        pass
    folder.rename(tmp_path / "moved")
    with gp.track("t1", study="s", ledger=folder / "gp.db") as run:
        run.log(score=1.0)
    return run


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_the_fallback_file_is_readable_by_its_user_only(tmp_path, temp):
    run = _fail_midstudy(tmp_path)
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert run.ledger is not None and run.ledger.path == fallback
    # before: /tmp/greenprint-unsaved-<key>.db, mode 0644 in the machine's shared folder
    assert fallback.parent == temp / f"greenprint-{os.getuid()}"
    assert stat.S_IMODE(fallback.parent.stat().st_mode) == 0o700
    assert _names(fallback) == ["t1"]


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_a_link_at_the_users_folder_name_is_never_written_through(tmp_path, temp, caplog):
    # another user's doing: a link where the user's folder would be, to a folder they read
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (temp / f"greenprint-{os.getuid()}").symlink_to(theirs)
    run = _fail_midstudy(tmp_path)
    assert list(theirs.iterdir()) == []  # before: the runs were written into theirs
    assert run.ledger is not None and run.ledger.path is not None
    own = run.ledger.path.parent
    assert own.parent == temp and own.name.startswith(f"greenprint-{os.getuid()}-")
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert _names(run.ledger.path) == ["t1"]
    (said,) = [r.getMessage() for r in caplog.records if "not a folder of" in r.getMessage()]
    assert f"fallback files go to {own}" in said


# -- a user who missed the warnings ----------------------------------------------------------

STUDY = """
import os, sys
import greenprint as gp

os.makedirs("runs", exist_ok=True)
for i in range(4):
    if i == 2 and sys.argv[1] == "fail":
        os.rename("runs", "away")  # a synced folder unmounted, a clean-up script...
    with gp.track(f"trial{i}", study="s", ledger="runs/gp.db") as trial:
        for k in range(2):
            with gp.track(f"fold{k}") as fold:
                fold.log(acc=0.5 + 0.1 * i + 0.01 * k)
        trial.log(acc=0.5 + 0.1 * i)
"""


def _price_tag(cwd: Path, temp: Path, ledger: str) -> tuple[dict, float, int]:
    out = cwd / f"report-{ledger.replace('/', '-')}"
    done = _cli(
        "report", "--ledger", ledger, "--study", "s", "--format", "json", "--out", str(out),
        cwd=cwd, temp=temp,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (written,) = out.glob("*.json")
    total = json.loads(written.read_text())["price_tag"]["total"]
    exported = _cli("ledger", "export", "--ledger", ledger, "--format", "csv", cwd=cwd, temp=temp)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    roots = sum(float(r["energy_kwh"]) for r in rows if not r["parent_id"])
    return total, roots, len(rows)


def test_ls_and_report_say_runs_wait_in_the_fallback_until_merged(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**clean_env(), "TMPDIR": str(temp)}
    script = tmp_path / "study.py"
    script.write_text(STUDY)
    for how in ("ok", "fail"):  # the same study, once whole, once failing after 2 trials
        cwd = tmp_path / how
        cwd.mkdir()
        done = subprocess.run(
            [sys.executable, str(script), how], env=env, cwd=cwd, capture_output=True,
            text=True, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    # the line at exit counts the trials' parts made in the file too (before: 2 of its 6)
    assert "greenprint: 6 runs meant for ledger" in done.stderr, done.stderr
    failed = tmp_path / "fail"
    (failed / "away").rename(failed / "runs")  # the folder back
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    command = f"`greenprint ledger merge {failed / 'runs' / 'gp.db'} {fallback}`"

    listed = _cli("ledger", "ls", "--ledger", "runs/gp.db", cwd=failed, temp=temp)
    assert listed.returncode == 0, listed.stderr
    # before: nothing said; the ledger listed 6 of the study's 12 runs
    (note,) = [line for line in listed.stderr.splitlines() if "wait in" in line]
    assert note == (
        f"note: 6 runs meant for this ledger wait in {fallback} (its ledger could not take "
        f"them when they ran): {command} puts them in it"
    )
    reported = _cli(
        "report", "--ledger", "runs/gp.db", "--study", "s", "--format", "md", cwd=failed, temp=temp
    )
    assert note in reported.stderr.splitlines(), reported.stderr

    for _ in range(2):  # the command the note gives, twice: the second adds nothing
        merged = _cli("ledger", "merge", "runs/gp.db", str(fallback), cwd=failed, temp=temp)
        assert merged.returncode == 0, merged.stderr
    assert "0 runs added, 0 updated, 6 already there" in merged.stdout
    listed = _cli("ledger", "ls", "--ledger", "runs/gp.db", cwd=failed, temp=temp)
    assert "wait in" not in listed.stderr, listed.stderr

    # the merged ledger reads as the study that never failed: 12 runs, 4 trials, the price tag
    # the sum of the root rows
    whole, whole_roots, whole_rows = _price_tag(tmp_path / "ok", temp, "runs/gp.db")
    total, roots, rows = _price_tag(failed, temp, "runs/gp.db")
    assert (rows, total["runs"], total["trials"]) == (whole_rows, whole["runs"], 4) == (12, 12, 4)
    assert total["energy_kwh"] == pytest.approx(roots, rel=1e-9)
    assert whole["energy_kwh"] == pytest.approx(whole_roots, rel=1e-9)


def test_a_notebook_giving_a_new_mistyped_ledger_is_still_refused(tmp_path, temp):
    with gp.track("a", ledger=tmp_path / "a.db"):
        pass
    with pytest.raises(gp.LedgerPathError, match="does not exist"):
        with gp.track("b", ledger=tmp_path / "typo" / "b.db"):
            pass
    assert not list(temp.iterdir())  # no fallback for the user's input


# -- a PostgreSQL server restarted between runs ----------------------------------------------


@pytest.mark.postgres
def test_a_postgres_server_restarted_between_runs_takes_the_next_run(temp):
    with postgres_server() as server:  # its own: the session's is not restarted
        url = server.new_database()
        _restart_between(server, url)
    assert not list(temp.glob("greenprint-*/*.db"))  # nothing diverted


def _restart_between(server: PgServer, url: str) -> None:
    import pgserver

    inner = server.server
    with gp.track("t0", study="s", ledger=url):
        pass
    pgserver.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=inner.pgdata, user=inner.system_user)
    with gp.track("t1", study="s", ledger=url):
        pass
    assert _names(url) == ["t0", "t1"]


# -- a full disk that the temporary folder is on too -----------------------------------------

#: t0 and t1 written; then no file of the process may grow (RLIMIT_FSIZE of 1 byte: the kernel
#: refuses each write, EFBIG, as a full disk does), the ledger's and the fallback file's alike,
#: as when the temporary folder is on the ledger's full disk; t2 and t3 run; room comes back
#: (the limit raised again) and t4 runs.
FULL_EVERYWHERE = """
import resource, signal, tempfile
import greenprint as gp

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails (EFBIG)
tempfile.gettempdir()  # read before the disk fills, as a process that imported torch did
for name in ("t0", "t1"):
    with gp.track(name, study="s", ledger="runs/gp.db") as run:
        run.log(loss=1.0, step=0)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
for name in ("t2", "t3"):
    with gp.track(name, study="s", ledger="runs/gp.db") as run:
        for step in range(5):
            run.log(loss=1 / (step + 1), step=step)
    print(name, "ran")
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
with gp.track("t4", study="s", ledger="runs/gp.db") as run:
    pass
print("t4 ran")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE: Linux")
def test_runs_are_kept_in_memory_when_the_fallback_file_is_refused_too(tmp_path):
    (tmp_path / "runs").mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FULL_EVERYWHERE],
        capture_output=True,
        text=True,
        env={**clean_env(), "TMPDIR": str(temp)},
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    # before: LedgerError 'ledger ...: database or disk is full' raised as t2 started
    assert done.returncode == 0, done.stderr
    assert "t2 ran\nt3 ran\nt4 ran" in done.stdout, done.stderr
    said = [line for line in done.stderr.splitlines() if "neither can a fallback file" in line]
    assert len(said) == 1, done.stderr  # once, not for each run
    assert "the run goes on, kept in memory, written when its ledger can take it" in said[0]
    ledger = gp.Ledger(tmp_path / "runs" / "gp.db", create=False)
    try:
        runs = {r.name: r for r in ledger.runs()}
    finally:
        ledger.close()
    assert sorted(runs) == ["t0", "t1", "t2", "t3", "t4"]
    assert runs["t3"].status == "finished"
    assert [p.step for p in runs["t3"].metrics] == [0, 1, 2, 3, 4]
    assert not list(temp.glob("greenprint-*/*.db"))
