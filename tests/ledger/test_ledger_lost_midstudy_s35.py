"""Session 35: a ledger that fails mid-study loses nothing and stops nothing.

A ledger this process already wrote a run to that cannot take the next one (its PostgreSQL
server stopped, its disk full, its file replaced by one that is not a ledger) raised into the
user's code as that run started (``LedgerPathError``, ``LedgerError: database or disk is full``,
``NotALedgerError``): the loop of runs stopped. Now the run is made in a fallback ledger file of
the process (``greenprint-unsaved-<key>.db`` in the temporary folder), one warning names
it and the ``greenprint ledger merge`` command, the next run tries the ledger again, and a
ledger that takes runs again is said to. The same path never written by the process is still
the user's input: its specific error is raised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


def _merge(into: str | Path, *sources: Path) -> None:
    done = subprocess.run(
        [GREENPRINT, "ledger", "merge", str(into), *map(str, sources)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder the fallback files go to, this test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    # this test's fallbacks only: none said again at the end of the test session
    monkeypatch.setattr(_run_fallback, "_FALLBACKS", {})
    return folder


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- a PostgreSQL server stopped mid-study, then started again -------------------------------


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own: stopping the session's would fail the other tests."""
    with postgres_server() as server:
        yield server


def _stop(server: PgServer) -> None:
    import pgserver

    inner = server.server
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=inner.pgdata, user=inner.system_user)


@pytest.mark.postgres
def test_runs_go_on_in_a_fallback_while_the_postgres_server_is_down(own_server, temp, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    url = own_server.new_database()
    for name in ("t0", "t1"):
        with gp.track(name, study="s", ledger=url) as run:
            run.log(score=1.0)
    _stop(own_server)
    for name in ("t2", "t3"):  # before: LedgerPathError 'cannot use ledger ...: connection ...'
        with gp.track(name, study="s", ledger=url) as run:
            run.log(score=2.0)
    own_server.server.ensure_postgres_running()
    with gp.track("t4", study="s", ledger=url) as run:
        run.log(score=3.0)
    assert _names(url) == ["t0", "t1", "t4"]
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == ["t2", "t3"]
    (down,) = _said(caplog, "cannot take runs")  # once, not for each run
    assert f"they are saved in {fallback} until it can (the study goes on)" in down
    command = f'greenprint ledger merge "$LEDGER_URL" {fallback}'
    assert f"`{command}` (set LEDGER_URL to the ledger's URL, with its password)" in down
    (back,) = _said(caplog, "takes runs again")
    assert f"the 2 runs made while it could not are in {fallback}" in back
    # the command as printed, pasted in another folder with LEDGER_URL set (it printed a bare
    # LEDGER_URL: pasted, the runs went into a new file ./LEDGER_URL, exit 0)
    elsewhere = temp / "elsewhere"
    elsewhere.mkdir()
    pasted = subprocess.run(
        ["bash", "-c", command], cwd=elsewhere, env={**clean_env(), "LEDGER_URL": url},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pasted.returncode == 0 and "2 runs added" in pasted.stdout, pasted.stderr
    assert list(elsewhere.iterdir()) == []
    assert _names(url) == ["t0", "t1", "t2", "t3", "t4"]


# -- a full disk ------------------------------------------------------------------------------

#: Runs t0 and t1 written; then the ledger's files cannot grow (RLIMIT_FSIZE: the kernel refuses
#: a write past the size, EFBIG, as a full disk or an exhausted quota does) and t2, t3 start.
#: The limit is the process's, on every file: the fallback file stays under it.
FULL_SCRIPT = """
import os, resource, signal
import greenprint as gp

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write fails (EFBIG), as a full disk
ledger = "runs/gp.db"
for name in ("t0", "t1"):
    with gp.track(name, study="s", ledger=ledger) as run:
        for step in range(2000):
            run.log(loss=1 / (step + 1), step=step)
limit = max(os.path.getsize(ledger + x) for x in ("", "-wal") if os.path.exists(ledger + x))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
for name in ("t2", "t3"):  # small: the fallback file's own growth stays under the limit
    with gp.track(name, study="s", ledger=ledger) as run:
        for step in range(20):
            run.log(loss=1 / (step + 1), step=step)
print("ran 4")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE: Linux")
def test_a_script_goes_on_when_its_ledger_disk_fills(tmp_path):
    (tmp_path / "runs").mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "study.py").write_text(FULL_SCRIPT)
    env = {**clean_env(), "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "study.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    # before: LedgerError 'ledger ...: database or disk is full' raised as t2 started
    assert done.returncode == 0, done.stderr
    assert "ran 4" in done.stdout
    ledger = tmp_path / "runs" / "gp.db"
    assert _names(ledger) == ["t0", "t1"]
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == ["t2", "t3"]
    lines = [line for line in done.stderr.splitlines() if line.startswith("greenprint:")]
    assert len(lines) == 2, done.stderr  # the fall-back, and the count at exit
    assert "cannot take runs (disk I/O error)" in lines[0]  # SQLite's word for EFBIG
    assert f"`greenprint ledger merge {ledger} {fallback}`" in lines[0]
    assert f"2 runs meant for ledger {ledger} are saved in {fallback}" in lines[1]
    _merge(ledger, fallback)
    ledger_now = gp.Ledger(ledger, create=False)
    try:
        runs = ledger_now.runs()
        assert sorted(r.name for r in runs) == ["t0", "t1", "t2", "t3"]
        assert all(r.status == "finished" for r in runs)
        points = {r.name: sum(p.name == "loss" for p in r.metrics) for r in runs}
        assert points == {"t0": 2000, "t1": 2000, "t2": 20, "t3": 20}
    finally:
        ledger_now.close()


# -- a ledger file replaced by one that is not a ledger ---------------------------------------


def test_a_ledger_replaced_by_another_file_mid_study_is_left_alone(tmp_path, temp, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    ledger = tmp_path / "gp.db"
    for name in ("t0", "t1"):
        with gp.track(name, ledger=str(ledger)):
            pass
    for suffix in ("", "-wal", "-shm"):  # the user moves it, and a file of theirs takes its name
        if Path(f"{ledger}{suffix}").exists():
            os.rename(f"{ledger}{suffix}", tmp_path / f"kept.db{suffix}")
    ledger.write_text("my notes\n" * 50)
    notes = hashlib.sha256(ledger.read_bytes()).hexdigest()
    for name in ("t2", "t3"):  # before: NotALedgerError at t2
        with gp.track(name, ledger=str(ledger)):
            pass
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == notes
    assert _names(tmp_path / "kept.db") == ["t0", "t1"]
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == ["t2", "t3"]
    (line,) = _said(caplog, "cannot take runs")
    assert "is not a greenprint ledger" in line


def test_a_missing_folder_is_still_the_users_error_at_the_first_run(tmp_path, temp):
    with pytest.raises(gp.LedgerPathError, match="does not exist; create it first"):
        gp.track("first", ledger=str(tmp_path / "missing" / "gp.db"))
    assert not list(temp.iterdir())


def test_a_ledger_its_user_closed_is_still_refused_at_the_next_run(tmp_path, temp):
    ledger = gp.Ledger(tmp_path / "gp.db")
    with gp.track("first", ledger=ledger):
        pass
    ledger.close()  # the user's own object, closed by the user: not a measurement's failure
    with pytest.raises(gp.LedgerError, match="is closed"):
        gp.track("second", ledger=ledger).start()
    assert not list(temp.iterdir())
