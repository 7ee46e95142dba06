"""A child forked by another thread while a run starts or ends in the main thread (session 37).

While a run starts or ends, the main thread holds Ctrl-C and SIGTERM (greenprint._interrupts:
each signal's handler swapped for one that notes it). A thread that forks then (a data loader's
worker, a pool made in a thread) copies the hold into the child, whose main thread is the
forking thread: no run of its own starts or ends there, so nothing would give the handlers back,
and the child's Ctrl-C would be noted and never raised. The registry's fork hook ends a hold the
fork copied (``registry.in_forked_child``, d9238fe). Here the main thread waits inside a real
run's start (``Run._begin``, the hold taken) and a real run's end (``Run._stop``) while another
thread forks; the child reports its handlers, raises SIGINT at itself and runs a run of its own.
With the hook taken out (the control), the child keeps the hold: the fork did fall inside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork and POSIX signals")

#: ``argv[1]``: ``start`` or ``stop``, where the main thread waits for the fork; ``argv[2]``:
#: ``hook`` or ``no-hook`` (the control: the fork hook that ends the hold removed). Prints the
#: child's report, then the parent's.
FORK_IN_A_HOLD = """
import json, os, signal, sys, threading

import greenprint as gp
from greenprint import _interrupts
from greenprint._lifecycle import registry

where, hook = sys.argv[1], sys.argv[2]
if hook == "no-hook":
    registry.in_forked_child.remove(_interrupts._end_in_forked_child)
in_hold, forked = threading.Event(), threading.Event()
target = {"start": gp.Run._begin, "stop": gp.Run._stop}[where].__code__


def tracer(frame, event, arg):  # the main thread, at the call of _begin or _stop: hold taken
    if event == "call" and frame.f_code is target and not in_hold.is_set():
        in_hold.set()
        forked.wait(10)
    return None


def child_report():
    report = {
        "holding": _interrupts._holding is not None,
        "sigint_back": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    }
    try:
        signal.raise_signal(signal.SIGINT)
        report["ctrl_c"] = "noted, not raised"
    except KeyboardInterrupt:
        report["ctrl_c"] = "KeyboardInterrupt"
    if not report["holding"]:
        with gp.track("child-run", study="s", ledger="child.db") as run:
            pass
        report["child_run"] = run.status
    return report


def fork_in_the_hold():
    in_hold.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: this thread is its main thread
        try:
            print(json.dumps(child_report()), flush=True)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    forked.set()


forker = threading.Thread(target=fork_in_the_hold)
forker.start()
run = gp.track("parent", study="s", ledger="greenprint.db", sample_interval_s=0.05)
if where == "start":
    sys.settrace(tracer)
run.start()
sys.settrace(None)
if where == "stop":
    sys.settrace(tracer)
run.stop()
sys.settrace(None)
forker.join(10)
print(json.dumps({
    "in_hold": in_hold.is_set(), "status": run.status, "holding": _interrupts._holding is not None,
    "sigint_back": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
}))
"""


def _fork_in_a_hold(home: Path, where: str, hook: str) -> tuple[dict, dict]:
    (home / "script.py").write_text(FORK_IN_A_HOLD, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "script.py", where, hook],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    child, parent = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    return child, parent


@pytest.mark.parametrize("where", ["start", "stop"])
def test_a_child_forked_while_the_main_thread_holds_ctrl_c_has_it_back(tmp_path, where):
    child, parent = _fork_in_a_hold(tmp_path, where, "hook")
    assert child == {
        "holding": False,
        "sigint_back": True,  # Python's own: Ctrl-C raises KeyboardInterrupt again
        "sigterm_default": True,  # no run of its own: SIGTERM's default action
        "ctrl_c": "KeyboardInterrupt",
        "child_run": "finished",
    }
    # the parent's hold is its own: the run started and ended, the handlers given back
    assert parent == {"in_hold": True, "status": "finished", "holding": False, "sigint_back": True}


@pytest.mark.parametrize("where", ["start", "stop"])
def test_without_the_fork_hook_the_child_would_keep_the_hold(tmp_path, where):
    """The control: the fork did fall inside the main thread's hold."""
    child, parent = _fork_in_a_hold(tmp_path, where, "no-hook")
    assert child["holding"] and not child["sigint_back"]
    assert child["ctrl_c"] == "noted, not raised"
    assert parent["status"] == "finished" and not parent["holding"]
