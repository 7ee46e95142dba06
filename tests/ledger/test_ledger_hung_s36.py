"""Session 36: a ledger that hangs mid-study, and a study's workers that fall back together.

Found by scripts in empty folders with a clean environment:

* a PostgreSQL server that stops answering while its socket stays open (``SIGSTOP``-ed, hung)
  hung a study's next run for ever: the pooled connection's ping (SQLAlchemy's
  ``pool_pre_ping``) waits for its answer with no limit (10 minutes measured, then killed);
  once that wait was bounded, each run of a 10-run loop waited its own timeout again before
  falling back (40 s for 10 runs, 10 s a run: the ping's, then a new connection's);
* a ``Pool(4)``'s workers each said the same fallback warning: 4 copies (forked), 4 more
  lines at their exit (spawned).

Now the ping waits ``connect_timeout`` at most, a ledger that took long to fail is not waited
for again until a retry after an interval (:mod:`greenprint._ledger_backoff`), and one process
of a study says the warning (:mod:`greenprint._fallback_said`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _pg import PgServer, postgres_server  # tests/_pg.py
from greenprint import _ledger_backoff, _run_fallback


def _names(location: str | Path) -> list[str]:
    ledger = gp.Ledger(location, create=False)
    try:
        return sorted(r.name for r in ledger.runs())
    finally:
        ledger.close()


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder the fallback files go to, this test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(_run_fallback, "_FALLBACKS", {})  # none said at the session's end
    monkeypatch.setattr(_ledger_backoff, "_WAITING", {})
    return folder


# -- a PostgreSQL server that stops answering ------------------------------------------------


@contextmanager
def _hung(server: PgServer) -> Iterator[None]:
    """The server's processes stopped (``SIGSTOP``): its socket takes connections, no answer.

    Only this server's processes (its postmaster and their children); started again at the
    end, and by a watchdog after 120 s so that a run waiting for ever fails the test.
    """
    import psutil

    pid = int((Path(server.server.pgdata) / "postmaster.pid").read_text().split()[0])
    postmaster = psutil.Process(pid)
    processes = [postmaster, *postmaster.children(recursive=True)]

    def go_on() -> None:
        for process in processes:
            try:
                process.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass

    for process in processes:
        process.send_signal(signal.SIGSTOP)
    watchdog = threading.Timer(120, go_on)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        go_on()


def _runs(url: str, names: list[str]) -> None:
    for name in names:
        with gp.track(name, study="s", ledger=url) as run:
            run.log(score=1.0)


class _Clock:
    """The backoff's clock (its ``time.monotonic``), moved on by the test alone.

    The interval before a retry passes when the test says so, not while a busy machine takes
    its time over the runs: with a real 1 s interval, nine runs that took over 1 s under load
    had one of them try the server again, and wait its 2 s, as the backoff says it should.
    """

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


@pytest.mark.postgres
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="SIGSTOP: POSIX")
def test_a_hung_postgres_server_costs_a_study_loop_its_timeout_once(temp, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="greenprint")
    clock = _Clock()
    monkeypatch.setattr(_ledger_backoff, "time", clock)
    waited: list[float] = []  # the seconds of each try of the ledger that failed
    fail = _ledger_backoff.failed

    def failed(url: str, error: gp.GreenprintError, took_s: float) -> None:
        waited.append(took_s)
        fail(url, error, took_s)

    monkeypatch.setattr(_ledger_backoff, "failed", failed)
    retry_s = _ledger_backoff.FIRST_RETRY_S
    with postgres_server() as server:  # its own: the session's is not stopped
        url = server.new_database() + "&connect_timeout=2"
        _runs(url, ["t0", "t1"])
        with _hung(server):
            # before: h0 waited for ever (the pooled connection's ping); then, bounded,
            # each of the 10 runs waited 2 s (the ping's, then a new connection's timeout)
            _runs(url, [f"h{i}" for i in range(10)])
            assert len(waited) == 1 and waited[0] > 1.5, waited  # h0's; h1-h9 straight to the file
            clock.now += retry_s  # the interval passes: one run tries the ledger again
            _runs(url, ["r0", "r1"])
            assert len(waited) == 2 and waited[1] > 1.5, waited  # r0's; r1 to the file
        clock.now += 2 * retry_s  # the next interval (twice as long): the server answers again
        _runs(url, ["back"])
        assert len(waited) == 2, waited
        (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
        kept = ["h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "r0", "r1"]
        assert _names(fallback) == kept  # nothing lost
        assert _names(url) == ["back", "t0", "t1"]
        (down,) = _said(caplog, "cannot take runs")  # once
        assert "timeout expired (no answer from the server in 2 s per attempt" in down
        assert (
            f"it took {waited[0]:.0f} s to fail, so the next runs go to the file without "
            f"waiting for it, and it is tried again in {retry_s:.0f} s"
        ) in down
        assert f'`greenprint ledger merge "$LEDGER_URL" {fallback}`' in down
        (again,) = _said(caplog, "takes runs again")
        assert f"the 12 runs made while it could not are in {fallback}" in again
        merged = subprocess.run(
            ["bash", "-c", f'greenprint ledger merge "$LEDGER_URL" {fallback}'],
            env={**clean_env(), "LEDGER_URL": url, "PATH": _path()},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert merged.returncode == 0, merged.stderr
        assert _names(url) == sorted(["back", "t0", "t1", *kept])


def _path() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


# -- a Pool's workers fall back together ----------------------------------------------------

POOL_TRIAL = """
import multiprocessing as mp, os, sys, time
import greenprint as gp

def trial(i):
    with gp.track(f"t{i}", study="s", ledger="runs/gp.db") as run:
        run.log(score=i)
    time.sleep(0.1)  # each worker takes trials
    return i
"""

POOL_STUDY = (
    POOL_TRIAL
    + """
if __name__ == "__main__":
    os.mkdir("runs")
    with gp.track("t0", study="s", ledger="runs/gp.db"):
        pass
    os.rename("runs", "moved")  # the ledger's folder moved away mid-study
    pool = mp.get_context(sys.argv[1]).Pool(4)
    print(pool.map(trial, range(1, 9), chunksize=1))
    os.rename("moved", "runs")  # and back
    print(pool.map(trial, range(9, 17), chunksize=1))
    pool.terminate()  # as `with Pool() as pool:` ends (idle workers hung on it before 707209d)
    pool.join()
"""
)


def _study(
    folder: Path, temp: Path, start: str, script: str = POOL_STUDY
) -> subprocess.CompletedProcess[str]:
    folder.mkdir()
    (folder / "search.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "search.py", start],
        capture_output=True,
        text=True,
        env={**clean_env(), "TMPDIR": str(temp)},
        cwd=folder,
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux")
def test_a_pools_workers_say_the_fallback_once(tmp_path, start):
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = _study(tmp_path / "first", temp, start)
    lines = done.stderr.splitlines()
    # before: 4 copies of the warning (one per worker), and with spawn 4 lines at their exit
    assert len([x for x in lines if "cannot take runs" in x]) == 1, done.stderr
    assert len([x for x in lines if "takes runs again" in x]) == 1, done.stderr
    assert len([x for x in lines if "are saved in" in x and "cannot" not in x]) <= 1
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == [f"t{i}" for i in range(1, 9)]  # nothing lost
    assert "cannot take runs" in done.stderr and str(fallback) in done.stderr
    # a later study meets the same failure: it is said to it too
    again = _study(tmp_path / "second", temp, start)
    assert len([x for x in again.stderr.splitlines() if "cannot take runs" in x]) == 1


POOLS_IN_A_ROW = (
    POOL_TRIAL
    + """
if __name__ == "__main__":
    os.mkdir("runs")
    with gp.track("t0", study="s", ledger="runs/gp.db"):
        pass
    os.rename("runs", "moved")  # the ledger's folder moved away mid-study
    for k in range(3):  # a pool a round, as a search of rounds makes them
        with mp.get_context(sys.argv[1]).Pool(2) as pool:
            print(pool.map(trial, range(1 + 4 * k, 5 + 4 * k), chunksize=1))
"""
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux")
def test_the_later_pools_of_a_study_do_not_say_it_again(tmp_path):
    """Each pool's first worker said it (3 pools: 3 warnings): the worker that made the marker
    had exited with its pool, and the next pool's workers took it as said by no one."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = _study(tmp_path / "rounds", temp, "fork", POOLS_IN_A_ROW)
    assert len([x for x in done.stderr.splitlines() if "cannot take runs" in x]) == 1, done.stderr
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == sorted(f"t{i}" for i in range(1, 13))  # nothing lost
    # a later study of the same user, from the same parent, is told again
    again = _study(tmp_path / "later", temp, "fork", POOLS_IN_A_ROW)
    assert len([x for x in again.stderr.splitlines() if "cannot take runs" in x]) == 1


def test_a_single_process_says_it_each_time_it_falls_back(tmp_path, temp, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    ledger = tmp_path / "runs" / "gp.db"
    ledger.parent.mkdir()
    for turn in range(2):
        with gp.track(f"ok{turn}", study="s", ledger=ledger):
            pass
        ledger.parent.rename(tmp_path / f"moved{turn}")
        with gp.track(f"lost{turn}", study="s", ledger=ledger):
            pass
        ledger.parent.mkdir()
        with gp.track(f"back{turn}", study="s", ledger=ledger):
            pass
    assert len(_said(caplog, "cannot take runs")) == 2
    assert len(_said(caplog, "takes runs again")) == 2
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == ["lost0", "lost1"]
