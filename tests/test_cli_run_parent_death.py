"""A killed greenprint sends its command SIGTERM once, whatever greenprint's threads are doing.

The kernel's parent-death signal (``PR_SET_PDEATHSIG``) follows the thread that forked the
command: it was sent when that thread ended while greenprint lived on, and once more for each
greenprint thread the command was handed to as they died after ``kill -9`` (two SIGTERMs in 13
runs of 20, the second one in the middle of the command's checkpoint). A watcher process now
sends the SIGTERM once every thread of greenprint has gone (see ``greenprint._process``).

The commands log each SIGTERM they get to a file; greenprint runs as a real process.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from _clean_env import BIN, clean_env
from _report_cli import empty_home
from greenprint import _process

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death guard is Linux only"
)

# Logs each SIGTERM (one line, with the time), then saves its checkpoint for half a second and
# exits 0. A second SIGTERM during the save starts the handler again: two lines.
COMMAND = """\
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    with open(out / "sigterms", "a") as f:
        f.write(f"SIGTERM {time.time():.3f}\\n")
    time.sleep(0.5)
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
(out / "ready").touch()
time.sleep(120)
"""

# A program using greenprint's start() as the CLI does, from a thread that then ends, with six
# other threads alive: prints the command's pid, then waits to be killed.
THREADED_PARENT = """\
import sys, threading, time
from greenprint import _process
for _ in range(6):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
started = []
starter = threading.Thread(target=lambda: started.append(_process.start(sys.argv[1:])))
starter.start()
starter.join()
print(started[0].pid, flush=True)
time.sleep(3600)
"""


def _wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _sigterms(out: Path) -> list[str]:
    path = out / "sigterms"
    return path.read_text().splitlines() if path.exists() else []


def _kill_and_count(parent: subprocess.Popen[bytes], command_pid: int, out: Path) -> list[str]:
    """``kill -9`` of ``parent``; the SIGTERMs its command logged by the time it has ended."""
    parent.kill()
    parent.wait(timeout=30)
    _wait_for(lambda: _ended(command_pid))
    return _sigterms(out)


@linux_only
def test_the_command_outlives_the_thread_that_started_it_and_gets_one_sigterm(tmp_path):
    """The thread that forked the command ended: the command runs on, untouched, with no
    process of greenprint's beside it; ``kill -9`` of the program then sends it one SIGTERM."""
    parent = subprocess.Popen(
        [sys.executable, "-c", THREADED_PARENT, sys.executable, "-c", COMMAND, str(tmp_path)],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    command_pid = int(parent.stdout.readline())
    _wait_for(lambda: (tmp_path / "ready").exists() or _ended(command_pid))
    time.sleep(0.3)
    # the kernel's parent-death signal came as the starting thread ended
    assert not _ended(command_pid), "the command ended while greenprint ran"
    assert _sigterms(tmp_path) == []
    assert [p.pid for p in psutil.Process(parent.pid).children(recursive=True)] == [command_pid]
    lines = _kill_and_count(parent, command_pid, tmp_path)
    assert len(lines) == 1, lines


@linux_only
def test_kill_9_of_greenprint_with_stderr_a_terminal_sends_one_sigterm(tmp_path_factory):
    """``greenprint run --budget-s`` (four threads) on a terminal: one SIGTERM after ``kill -9``;
    the command, not greenprint, wrote what the terminal shows."""
    home = empty_home(tmp_path_factory, "tty")
    (home / "cmd.py").write_text(COMMAND, encoding="utf-8")
    primary, terminal = pty.openpty()
    try:
        greenprint = subprocess.Popen(
            [str(BIN / "greenprint"), "run", "-q", "--budget-s", "3600", "--"]
            + [sys.executable, "cmd.py", str(home)],
            cwd=home,
            env=clean_env(),
            stderr=terminal,
        )
        _wait_for(lambda: (home / "ready").exists())
        (command,) = psutil.Process(greenprint.pid).children()
        lines = _kill_and_count(greenprint, command.pid, home)
    finally:
        os.close(terminal)
        os.close(primary)
    assert len(lines) == 1, lines


@linux_only
def test_the_watcher_ends_with_the_command(tmp_path):
    """A command that ends by itself leaves no process of greenprint's running: the watcher
    that would have sent SIGTERM ends with it."""

    def watchers() -> list[int]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if _process._TRAMPOLINE in cmdline and str(os.getpid()) in cmdline:
                found.append(proc.pid)
        return found

    child = _process.start([sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert len(watchers()) == 1
    assert child.wait(timeout=30) == 0
    _wait_for(lambda: not watchers(), timeout_s=5)
