"""A forked worker's runs reach the ledger after its parent died (ledger/_sqlite.py, _after_fork).

SQLite keeps one record per open file and process: which locks the process holds on it, and
its mapping of the WAL index. A worker forked from a process with the ledger open (the main
run's store) copied that record, and its own new connections joined it: they held none of
the locks that every WAL connection holds for as long as it is open, since the kernel had
given them to the parent. Once the parent was gone (SIGTERM to the main process of a
``multiprocessing`` job, ``kill PID``), the next process to close the ledger (a report, a
second look) took its connection for the last one, checkpointed the WAL and deleted it; the
worker went on writing to the deleted file, and its run's end never reached the ledger (read
``lost``). The next process to open it took itself for the first and truncated the WAL
index: a worker writing then died of SIGBUS. Measured on session 32's code: the script below
lost the worker's run 3 of 3 times; tests/test_orphans_s28.py's SIGTERM case lost a worker
1 run in 20 (SIGBUS in its sampler's flush), its run's end never recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")

_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp, os, sys, time
    from pathlib import Path
    import greenprint as gp

    def worker(ledger):
        with gp.track("worker", study="s", ledger=ledger, role="part", sample_interval_s=0.05):
            Path("started").touch()
            deadline = time.monotonic() + 30
            while not Path("go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        Path("done").touch()

    if __name__ == "__main__":
        ledger = sys.argv[1]
        with gp.track("main", study="s", ledger=ledger, sample_interval_s=0.05):
            child = mp.get_context("fork").Process(target=worker, args=(ledger,))
            child.start()
            Path("worker.pid").write_text(str(child.pid))
            time.sleep(60)
    """
)


def _wait_for(path: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path.name} within {limit_s:g} s"
        time.sleep(0.02)


def test_a_worker_whose_parent_died_records_its_run_after_another_process_read_the_ledger(
    tmp_path: Path,
) -> None:
    (tmp_path / "script.py").write_text(_SCRIPT)
    ledger = str(tmp_path / "g.db")
    proc = subprocess.Popen(
        [sys.executable, "script.py", ledger], cwd=tmp_path, env=clean_env(), text=True
    )
    worker = None
    try:
        _wait_for(tmp_path / "started", 60)
        worker = int((tmp_path / "worker.pid").read_text())
        os.kill(proc.pid, signal.SIGTERM)  # the main process only: its worker runs on
        proc.wait(timeout=60)
        with gp.Ledger(ledger) as led:  # a look at the ledger meanwhile, closed again
            (main,) = [r for r in led.runs(study="s") if r.name == "main"]
            assert main.status == "interrupted"
        (tmp_path / "go").touch()
        _wait_for(tmp_path / "done", 60)
    finally:
        for pid in (proc.pid, worker):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    with gp.Ledger(ledger) as led:
        (run,) = [r for r in led.runs(study="s") if r.name == "worker"]
    assert run.status == "finished" and run.ended_at is not None
    assert run.ended_at > main.ended_at
