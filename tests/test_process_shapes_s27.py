"""Outside checks, session 27: runs under the process and thread shapes real training code has.

Scripts written as users write them, run in an empty directory with a clean environment (no
``GREENPRINT_*`` variable), then read back from the ledger:

* **A child forked while a run's thread imports.** A tracked script that forks (``os.fork``,
  ``multiprocessing``'s ``fork`` pool) just after its run started: the run's sampler thread
  imported ``greenprint._environment`` on its first tick, and a child forked then got that
  module's import lock held by a thread it does not have (CPython). The child's own run, at its
  end, imported the module and waited for ever (1 hang in 5 of a plain fork + ``gp.track`` in
  the child, always when the fork falls in that import). Now the run imports it on the thread
  that starts it, and a run's threads import nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import empty_home

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork and POSIX signals")


def _script(home: Path, text: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """``text`` run as ``script.py`` in ``home`` with a new user's environment."""
    (home / "script.py").write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "script.py", *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ledger(home: Path) -> dict[str, dict]:
    """The runs of ``home``'s ledger by name: status, parent, containment, energy (J)."""
    import greenprint as gp

    led = gp.Ledger(home / "greenprint.db", create=False)
    try:
        return {
            r.name: {
                "id": r.id,
                "status": r.status,
                "parent_id": r.parent_id,
                "contained": r.contained,
                "energy_j": None if r.energy_kwh is None else r.energy_kwh * 3.6e6,
                "error": r.error,
                "provenance": r.provenance,
            }
            for r in led.runs()
        }
    finally:
        led.close()


#: A run whose thread takes 0.5 s over each module it imports (its import lock held, as a slow
#: disk or a big module holds it); the script forks while that thread imports, and the child
#: runs a ``gp.track`` of its own. Prints the modules the run's threads imported, and whether
#: the child hung (waited 5 s for, then killed).
FORK_WHILE_IMPORTING = """
import importlib.abc, json, os, sys, threading, time

importing = threading.Event()
imported_in_threads = []


class SlowInThreads(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if threading.current_thread() is not threading.main_thread():
            imported_in_threads.append(name)
            importing.set()
            time.sleep(0.5)
        return None


sys.meta_path.insert(0, SlowInThreads())
import greenprint as gp

with gp.track("parent", study="s", ledger="greenprint.db", sample_interval_s=0.05):
    importing.wait(1.0)  # the run's thread is importing: fork now
    pid = os.fork()
    if pid == 0:
        with gp.track("child"):
            pass
        os._exit(0)
    deadline = time.time() + 5
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("child hung")
            break
        time.sleep(0.02)
print(json.dumps(imported_in_threads))
"""


def test_a_child_forked_while_the_runs_thread_imports_ends_its_own_run(tmp_path_factory):
    home = empty_home(tmp_path_factory, "fork-importing")
    done = _script(home, FORK_WHILE_IMPORTING)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child hung" not in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []  # a run's threads import nothing
    runs = _ledger(home)
    assert runs["child"]["status"] == "finished"
    assert runs["child"]["parent_id"] == runs["parent"]["id"] and runs["child"]["contained"]
    assert runs["parent"]["status"] == "finished"
