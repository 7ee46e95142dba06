"""``greenprint run`` and signals: Ctrl-C reaches the command once, SIGTERM is forwarded once,
a killed greenprint takes its command down, a signal death is recorded by name.

greenprint runs as a real process in a session of its own, so that signalling its process group
(what a terminal does on Ctrl-C) reaches greenprint and the command, and nothing else.
"""

import os
import platform
import signal
import subprocess
import sys
import time

import psutil
import pytest

import greenprint as gp
from greenprint import _process
from greenprint.cli import main
from greenprint.ledger._base import STALE_GRACE_S, derive_status

GP = [sys.executable, "-m", "greenprint.cli"]
FAST = ["--sample-interval", "0.05", "--flush-interval", "0.1"]

# On its first SIGINT: "cleanup started", one second of work, "cleanup done", exit 130. A second
# SIGINT during that second raises KeyboardInterrupt again and aborts the cleanup.
CHECKPOINTING_TRAINER = """\
import pathlib, sys, time
out = pathlib.Path(sys.argv[1])
try:
    print("up", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    (out / "cleanup started").touch()
    time.sleep(1.0)
    (out / "cleanup done").touch()
    sys.exit(130)
"""

# Counts the SIGTERMs it receives (one line each), waits half a second for a duplicate, then dies
# of SIGTERM as a program with the default handler would.
SIGTERM_COUNTER = """\
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    with open(out / "sigterm", "a") as f:
        f.write("SIGTERM\\n")
    time.sleep(0.5)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
signal.signal(signal.SIGTERM, on_term)
print("up", flush=True)
while True:
    time.sleep(1)
"""


def start_greenprint(tmp_path, *cmd, prefix=()):
    """greenprint run -- cmd, in a new session; returns once the command printed its first line.

    With faulthandler on (``PYTHONFAULTHANDLER=1``): a greenprint that does not exit is sent
    SIGABRT by :func:`wait_for`, and the test fails with every thread's stack.
    """
    proc = subprocess.Popen(
        [*prefix, *GP, "run", "--ledger", str(tmp_path / "l.db"), *FAST, "--", *cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    first = proc.stdout.readline().strip()
    assert first, proc.stderr.read()
    return proc, first


def wait_for(proc, timeout=30.0):
    """``proc.wait(timeout)``; past it, the stacks of greenprint's threads as the failure (one
    run in the whole suite under load once did not exit in 30 s, with nothing to say why)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler dumps every thread to stderr, then aborts
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"greenprint run did not exit in {timeout:g} s; its stderr:\n{err[-8000:]}")


def script(tmp_path, name, code):
    path = tmp_path / name
    path.write_text(code)
    return str(path)


def test_ctrl_c_to_the_process_group_reaches_the_command_once(tmp_path):
    trainer = script(tmp_path, "trainer.py", CHECKPOINTING_TRAINER)
    proc, first = start_greenprint(tmp_path, sys.executable, trainer, str(tmp_path))
    assert first == "up"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    rc = wait_for(proc)
    stderr = proc.stderr.read()
    assert (tmp_path / "cleanup started").exists()
    assert (tmp_path / "cleanup done").exists(), stderr  # not aborted by a second SIGINT
    assert rc == 130
    assert "KeyboardInterrupt" not in stderr and "Traceback" not in stderr
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.status == "interrupted"
    assert rec.error == "SIGINT, then exit status 130"
    assert rec.duration_s >= 1.0  # the cleanup was measured too
    assert "interrupted (SIGINT, then exit status 130)" in stderr


def test_sigterm_to_greenprint_alone_is_forwarded_once(tmp_path):
    counter = script(tmp_path, "counter.py", SIGTERM_COUNTER)
    proc, _ = start_greenprint(tmp_path, sys.executable, counter, str(tmp_path))
    proc.send_signal(signal.SIGTERM)  # kill -TERM <greenprint pid>
    rc = wait_for(proc)
    assert (tmp_path / "sigterm").read_text() == "SIGTERM\n"
    assert rc == 128 + signal.SIGTERM
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.status == "interrupted"
    assert rec.error == "SIGTERM, which killed the command"


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="tgkill: a signal sent to one thread of another process (Linux syscall numbers)",
)
def test_a_sigterm_that_another_thread_of_greenprint_takes_is_forwarded(tmp_path):
    """The kernel gives a signal sent to a process to any of its threads that does not block
    it; Python runs the handler in the main thread, which a signal taken by another thread does
    not wake from waitpid(). Under load the meters' sampler thread took a SIGTERM: greenprint
    waited for the command and the command for the signal (a whole-suite run hung 30 s)."""
    import ctypes

    counter = script(tmp_path, "counter.py", SIGTERM_COUNTER)
    proc, _ = start_greenprint(tmp_path, sys.executable, counter, str(tmp_path))
    others = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid]
    assert others, "greenprint run has a thread besides its main one (the meters' sampler)"
    tgkill = {"x86_64": 234, "aarch64": 131}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(tgkill, proc.pid, others[0], int(signal.SIGTERM)) == 0
    assert wait_for(proc, timeout=10) == 128 + signal.SIGTERM
    assert (tmp_path / "sigterm").read_text() == "SIGTERM\n"


def test_sigint_reaches_a_command_in_a_process_group_of_its_own(tmp_path):
    trainer = script(
        tmp_path, "trainer.py", "import os\nos.setpgid(0, 0)\n" + CHECKPOINTING_TRAINER
    )
    proc, _ = start_greenprint(tmp_path, sys.executable, trainer, str(tmp_path))
    os.killpg(proc.pid, signal.SIGINT)  # greenprint's group no longer holds the command
    assert wait_for(proc) == 130
    assert (tmp_path / "cleanup done").exists()
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.status == "interrupted"


def test_a_signal_greenprint_was_started_ignoring_stays_ignored(tmp_path):
    # what nohup does: SIGHUP ignored before greenprint starts
    ignore_hup = [
        sys.executable,
        "-c",
        "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
        "os.execv(sys.argv[1], sys.argv[1:])",
    ]
    proc, _ = start_greenprint(
        tmp_path,
        sys.executable,
        "-c",
        "import time; print('up', flush=True); time.sleep(60)",
        prefix=ignore_hup,
    )
    proc.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)  # neither greenprint nor the command stopped
    proc.send_signal(signal.SIGTERM)
    assert wait_for(proc) == 128 + signal.SIGTERM
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.error == "SIGTERM, which killed the command"


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_killed_greenprint_takes_its_command_down_and_the_run_reads_lost(tmp_path):
    proc, first = start_greenprint(
        tmp_path,
        sys.executable,
        "-c",
        "import os, time; print(os.getpid(), flush=True); time.sleep(60)",
    )
    command_pid = int(first)
    assert psutil.Process(command_pid).ppid() == proc.pid  # the command itself, no trampoline
    time.sleep(0.3)  # a few flushes with heartbeats
    proc.kill()  # kill -9: greenprint cannot clean up
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not gone(command_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(command_pid)
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.ended_at is None and rec.status in ("running", "lost")
    stale_at = rec.heartbeat_at + 3 * rec.flush_interval_s + STALE_GRACE_S + 1
    assert derive_status(rec, now=stale_at).status == "lost"


def test_a_signal_death_is_recorded_by_name(tmp_path, capsys):
    ledger = str(tmp_path / "l.db")
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    rc = main(["run", "--ledger", ledger, *FAST, "--", sys.executable, "-c", crash])
    assert rc == 128 + signal.SIGSEGV
    (rec,) = gp.Ledger(ledger).runs()
    assert rec.status == "failed"
    assert rec.error == "killed by SIGSEGV"
    assert "failed (killed by SIGSEGV) in" in capsys.readouterr().err


def test_a_command_killed_by_sigterm_from_elsewhere_is_interrupted(tmp_path):
    ledger = str(tmp_path / "l.db")
    quit_ = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    rc = main(["run", "--ledger", ledger, "-q", "--", sys.executable, "-c", quit_])
    assert rc == 128 + signal.SIGTERM
    (rec,) = gp.Ledger(ledger).runs()
    assert rec.status == "interrupted" and rec.error == "killed by SIGTERM"


def test_a_command_that_cannot_be_executed_is_one_line_exit_2(tmp_path):
    program = tmp_path / "not-a-program"
    program.write_bytes(b"\x7fELF garbage")
    program.chmod(0o755)
    out = subprocess.run(
        [*GP, "run", "--ledger", str(tmp_path / "l.db"), "--", str(program)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("greenprint: error: could not start ")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert rec.status == "failed" and "could not start" in rec.error


def test_the_command_gets_greenprints_environment_as_is(tmp_path):
    # a C locale whose coercion the user turned off: the trampoline's own interpreter must not
    # hand its coerced LC_CTYPE to the command
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_CTYPE")}
    env.update(LANG="C", PYTHONCOERCECLOCALE="0", GP_ODD="a=b\nc d")
    out = subprocess.run(
        [*GP, "run", "-q", "--ledger", str(tmp_path / "l.db"), "--", "env", "-0"],
        capture_output=True,
        env=env,
        check=True,
    )
    seen = dict(item.split(b"=", 1) for item in out.stdout.split(b"\0") if item)
    (rec,) = gp.Ledger(str(tmp_path / "l.db")).runs()
    assert seen[b"GREENPRINT_PARENT_RUN"] == rec.id.encode()
    assert seen[b"GP_ODD"] == b"a=b\nc d"
    assert b"LC_CTYPE" not in seen
    assert {k.encode(): v.encode() for k, v in env.items()}.items() <= seen.items()


@pytest.mark.parametrize(
    ("returncode", "described", "status"),
    [(0, "exit status 0", 0), (3, "exit status 3", 3), (-11, "killed by SIGSEGV", 139)],
)
def test_exit_descriptions(returncode, described, status):
    assert _process.describe_exit(returncode) == described
    assert _process.exit_status(returncode) == status


def test_signal_names():
    assert _process.signal_name(signal.SIGINT) == "SIGINT"
    assert _process.signal_name(0) == "signal 0"
