"""``greenprint run``: a failed command's run records the line of its stderr that says why.

A failed trial found in the ledger a week later said only "exit status 1"; its run now records
"exit status 1: ValueError: bad lr", as ``gp.track`` records the exception ("ValueError: bad
lr"). The command's stderr still reaches greenprint's caller byte for byte and as it is written
(through a relay process, when it is not a terminal), a huge one costs little time and no
memory, and a terminal is left to the command as it was (nothing recorded then).

Every test runs ``greenprint run`` as a user does: a real process in an empty directory with a
new user's environment.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from _report_cli import empty_home
from greenprint import _stderr_tail
from greenprint.cli._run import _outcome
from greenprint.ledger._target import mask_passwords
from greenprint.report import build_report, render

GREENPRINT = str(BIN / "greenprint")
posix_only = pytest.mark.skipif(os.name != "posix", reason="the relay is POSIX only")


def _greenprint_run(home: Path, *args: str, **kwargs) -> subprocess.Popen[bytes]:
    """``greenprint run -q ARGS`` started in ``home`` (stdout and stderr as ``kwargs`` say)."""
    return subprocess.Popen(
        [GREENPRINT, "run", "-q", *args], cwd=home, env=clean_env(), **kwargs
    )  # fmt: skip


def _only_run(home: Path):
    (run,) = gp.Ledger(str(home / "greenprint.db")).runs()
    return run


def _read_until(fd: int, wanted: bytes, timeout_s: float = 60.0) -> bytes:
    """Bytes read from ``fd`` until ``wanted`` is among them (fails after ``timeout_s``)."""
    got = b""
    deadline = time.monotonic() + timeout_s
    while wanted not in got:
        left_s = deadline - time.monotonic()
        assert left_s > 0, f"{wanted!r} not read within {timeout_s} s: {got[-200:]!r}"
        poller = select.poll()  # not select(): a worker may hold over 1,024 descriptors
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if poller.poll(left_s * 1000):
            chunk = os.read(fd, 65536)
            assert chunk, f"end of output before {wanted!r}: {got[-200:]!r}"
            got += chunk
    return got


def _wait_for(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@posix_only
def test_a_failing_python_script_records_its_exception_as_gp_track_does(tmp_path_factory):
    """The run's error, the price tag, ``ledger show`` and the report give the exception line,
    as a run of ``gp.track`` around the same code records the exception."""
    home = empty_home(tmp_path_factory, "fails")
    (home / "train.py").write_text(
        "import sys\n"
        "print('epoch 1 loss 0.52', file=sys.stderr)\n"
        "def fit(lr):\n"
        "    raise ValueError(f'bad lr: {lr}')\n"
        "fit(-1)\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [GREENPRINT, "run", "--study", "s", "--", sys.executable, "train.py"],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    run = _only_run(home)
    assert (run.status, run.error) == ("failed", "exit status 1: ValueError: bad lr: -1")
    assert "\nValueError: bad lr: -1\n" in done.stderr  # the traceback, still shown
    assert "failed (exit status 1: ValueError: bad lr: -1) in " in done.stderr
    shown = subprocess.run(
        [GREENPRINT, "ledger", "show", run.id[:8]],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "failed (exit status 1: ValueError: bad lr: -1)" in shown.stdout
    report = render(build_report(str(home / "greenprint.db"), "s"), "md", plots=False)
    assert "- **exit status 1: ValueError: bad lr: -1**: 1 trial failed: train.py (" in report
    with pytest.raises(ValueError):
        with gp.track("fit", ledger=str(home / "api.db"), sample_interval_s=0.5):
            raise ValueError("bad lr: -1")
    (api,) = gp.Ledger(str(home / "api.db")).runs()
    assert run.error == f"exit status 1: {api.error}"


@posix_only
def test_the_line_is_the_exception_after_shutdown_noise_masked_and_short(tmp_path_factory):
    """Lines written after the traceback (an atexit logger) do not hide the exception; the
    password of a URL in it is masked before the line is cut to 200 characters."""
    home = empty_home(tmp_path_factory, "noise")
    (home / "train.py").write_text(
        "import atexit, sys\n"
        "atexit.register(print, 'wandb: Waiting for W&B process to finish... (failed 1).',\n"
        "                file=sys.stderr)\n"
        "raise ConnectionError('postgresql://bob:hunter2@db.example/gp refused ' + 'x' * 300)\n",
        encoding="utf-8",
    )
    proc = _greenprint_run(home, "--", sys.executable, "train.py", stderr=subprocess.PIPE)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert stderr.endswith(b"(failed 1).\n")  # the command's own stderr, as written
    error = _only_run(home).error
    assert error.startswith(
        "exit status 1: ConnectionError: postgresql://bob:***@db.example/gp refused xxx"
    )
    assert error.endswith("x…") and len(error) == len("exit status 1: ") + _stderr_tail.LINE_CHARS
    assert "hunter2" not in error


@posix_only
def test_stderr_reaches_the_caller_byte_for_byte_and_as_it_is_written(tmp_path_factory):
    """Every byte (invalid UTF-8, escapes, carriage returns, no final newline) arrives as the
    command wrote it, the first half while the command waits for the caller to have read it;
    a command that succeeds is recorded as before."""
    home = empty_home(tmp_path_factory, "bytes")
    payload = bytes(range(256)) + b"\r 50%\r100%\x1b[31m red\x1b[0m\n\xff\xfe no newline"
    half = len(payload) // 2
    (home / "payload.bin").write_bytes(payload)
    (home / "cmd.py").write_text(
        "import os, sys, time\n"
        "data = open('payload.bin', 'rb').read()\n"
        f"os.write(2, data[:{half}])\n"
        "while not os.path.exists('go'):\n"  # until the caller has read the first half
        "    time.sleep(0.01)\n"
        f"os.write(2, data[{half}:])\n",
        encoding="utf-8",
    )
    proc = _greenprint_run(home, "--", sys.executable, "cmd.py", stderr=subprocess.PIPE)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    got = _read_until(fd, payload[:half])
    (home / "go").touch()
    while chunk := os.read(fd, 65536):
        got += chunk
    assert proc.wait(timeout=60) == 0
    proc.stderr.close()
    assert got == payload
    run = _only_run(home)
    assert (run.status, run.error) == ("finished", None)


@posix_only
def test_stdout_and_stderr_into_one_file_keep_the_order_they_were_written_in(tmp_path_factory):
    """``> train.log 2>&1`` (Slurm's one output file): lines written alternately to stdout and
    stderr are in the file in that order; a relayed stderr beside a direct stdout came late, an
    error line even split in two by an output line."""
    home = empty_home(tmp_path_factory, "merged")
    (home / "cmd.py").write_text(
        "import sys\n"
        "for i in range(300):\n"
        "    print(f'out {i}', flush=True)\n"
        "    print(f'err {i}', file=sys.stderr, flush=True)\n"
        "sys.exit('bad config')\n",
        encoding="utf-8",
    )
    log = home / "train.log"
    with log.open("wb") as out:
        proc = _greenprint_run(home, "--", sys.executable, "cmd.py", stdout=out, stderr=out)
        assert proc.wait(timeout=120) == 1
    written = "".join(f"out {i}\nerr {i}\n" for i in range(300)) + "bad config\n"
    assert log.read_text() == written
    assert _only_run(home).error == "exit status 1: bad config"


@posix_only
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_huge_stderr_costs_little_time_and_no_memory(tmp_path_factory):
    """128 MiB written to stderr: all of it in greenprint's stderr file, the command's writes
    not much slower than straight into the file, the relay's peak memory that of an idle
    Python (it keeps 32 KiB), and the line written last still recorded."""
    home = empty_home(tmp_path_factory, "huge")
    (home / "cmd.py").write_text(
        "import os, sys, time\n"
        "chunk = (b'x' * 1023 + b'\\n') * 1024\n"
        "t0 = time.perf_counter()\n"
        "for _ in range(128):\n"
        "    os.write(2, chunk)\n"
        "os.write(2, b'RuntimeError: the end of a huge stderr\\n')\n"
        "print(time.perf_counter() - t0, flush=True)\n"
        "if len(sys.argv) > 1:\n"  # under greenprint: until the caller has read the relay
        "    while not os.path.exists('go'):\n"
        "        time.sleep(0.01)\n"
        "sys.exit(1)\n",
        encoding="utf-8",
    )
    direct_file = home / "direct.txt"
    with direct_file.open("wb") as err:
        direct = subprocess.run(
            [sys.executable, "cmd.py"], cwd=home, stdout=subprocess.PIPE, stderr=err, timeout=120
        )
    direct_s = float(direct.stdout)
    relayed_file = home / "relayed.txt"
    with relayed_file.open("wb") as err:
        proc = _greenprint_run(
            home, "--", sys.executable, "cmd.py", "wait", stdout=subprocess.PIPE, stderr=err
        )
    assert proc.stdout is not None
    relayed_s = float(proc.stdout.readline())  # the command has written all of it
    relays = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if _is_relay_of(pid, relayed_file)
    ]
    assert len(relays) == 1
    peak_kb = _peak_rss_kb(relays[0])
    (home / "go").touch()
    assert proc.wait(timeout=120) == 1
    proc.stdout.close()
    assert relayed_file.stat().st_size == direct_file.stat().st_size == 128 * 2**20 + 39
    assert relayed_file.read_bytes() == direct_file.read_bytes()
    assert peak_kb < 40_000, peak_kb  # 128 MiB passed through it
    assert relayed_s < 3 * direct_s + 1.0, (relayed_s, direct_s)
    assert _only_run(home).error == "exit status 1: RuntimeError: the end of a huge stderr"


def _is_relay_of(pid: int, stderr_file: Path) -> bool:
    """Whether process ``pid`` is a stderr relay writing to ``stderr_file``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        return _stderr_tail._RELAY.encode() in argv and os.readlink(f"/proc/{pid}/fd/2") == str(
            stderr_file
        )
    except OSError:
        return False


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        (line,) = (line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1])


@posix_only
def test_a_process_the_command_left_running_writes_to_stderr_after_greenprint_ends(
    tmp_path_factory,
):
    """A background process of the command writes its line after greenprint has ended (and
    greenprint did not wait for it): the line reaches stderr; the run records the command's."""
    home = empty_home(tmp_path_factory, "left")
    script = (
        "(while [ ! -e go ]; do sleep 0.02; done; echo late line >&2) & "
        "echo 'error: the early line' >&2; exit 3"
    )
    err_file = home / "err.txt"
    with err_file.open("wb") as err:
        proc = _greenprint_run(home, "--", "sh", "-c", script, stderr=err)
        assert proc.wait(timeout=120) == 3
    assert _only_run(home).error == "exit status 3: error: the early line"
    assert err_file.read_bytes() == b"error: the early line\n"
    (home / "go").touch()
    _wait_for(lambda: err_file.read_bytes().endswith(b"late line\n"))


@posix_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_a_command_cleaning_up_after_greenprint_was_killed_still_writes_to_stderr(
    tmp_path_factory,
):
    """``kill -9`` of greenprint: the command gets SIGTERM (Linux), once, and its cleanup's
    lines reach stderr, as they did when it wrote there itself (a relay in greenprint died with
    it). A second SIGTERM would start the cleanup again in the middle of the first."""
    home = empty_home(tmp_path_factory, "killed")
    (home / "cmd.py").write_text(
        "import signal, sys, time\n"
        "def cleanup(*_):\n"
        "    with open('sigterms', 'a') as f:\n"
        "        f.write('SIGTERM\\n')\n"
        "    for i in range(3):\n"
        "        print(f'saving checkpoint {i}', file=sys.stderr)\n"
        "        time.sleep(0.05)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, cleanup)\n"
        "print('started', file=sys.stderr)\n"
        "time.sleep(120)\n",
        encoding="utf-8",
    )
    err_file = home / "err.txt"
    with err_file.open("wb") as err:
        proc = _greenprint_run(home, "--", sys.executable, "cmd.py", stderr=err)
    _wait_for(lambda: b"started" in err_file.read_bytes())
    proc.kill()
    proc.wait(timeout=60)
    _wait_for(lambda: b"saving checkpoint 2\n" in err_file.read_bytes())
    assert (home / "sigterms").read_text() == "SIGTERM\n"
    assert err_file.read_bytes() == b"started\n" + b"".join(
        b"saving checkpoint %d\n" % i for i in range(3)
    )


def _writes_to(pid: int, path: Path) -> bool:
    """Whether process ``pid``'s stderr is the file ``path`` (a relay of another test's: no)."""
    try:
        return path.samefile(f"/proc/{pid}/fd/2")
    except OSError:  # gone meanwhile, or not ours to read
        return False


@posix_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_relay_is_out_of_greenprints_process_group_from_its_start(tmp_path_factory):
    """A terminal's Ctrl-C goes to greenprint's whole process group. The relay was in it: a
    Ctrl-C that came while it still imported ``signal`` (before it ignores SIGINT; a loaded
    machine, the command already running) printed a ``KeyboardInterrupt`` traceback on
    greenprint's stderr (twice in the suite's runs under CI's load) and ended the relay. It
    now starts in a session of its own: no signal sent to greenprint's group reaches it."""
    import psutil

    home = empty_home(tmp_path_factory, "relay-session")
    (home / "cmd.py").write_text(
        "import sys, time\nprint('up', file=sys.stderr, flush=True)\ntime.sleep(120)\n",
        encoding="utf-8",
    )
    err_file = home / "err.txt"
    with err_file.open("wb") as err:
        proc = _greenprint_run(
            home, "--", sys.executable, "cmd.py", stderr=err, start_new_session=True
        )  # fmt: skip
    try:
        _wait_for(lambda: b"up" in err_file.read_bytes())
        relays = [
            p
            for p in psutil.process_iter(["cmdline"])
            if _stderr_tail._RELAY in (p.info["cmdline"] or ()) and _writes_to(p.pid, err_file)
        ]
        assert len(relays) == 1
        relay = relays[0].pid
        assert os.getpgid(relay) != os.getpgid(proc.pid) == proc.pid
        assert os.getsid(relay) != os.getsid(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # greenprint and its command, as a scheduler does
        proc.wait(timeout=60)
    _wait_for(lambda: not any(p.is_running() for p in relays))


@posix_only
def test_a_command_whose_stderr_reader_is_gone_ends_as_before(tmp_path_factory):
    """``greenprint run -- sh -c 'yes >&2' 2>&1 | head``: the reader gone, the command's write
    fails (SIGPIPE) as before, rather than the relay swallowing its output forever."""
    home = empty_home(tmp_path_factory, "gone")
    proc = _greenprint_run(home, "--", "sh", "-c", "yes >&2", stderr=subprocess.PIPE)
    assert proc.stderr is not None
    proc.stderr.close()
    assert proc.wait(timeout=120) == 128 + signal.SIGPIPE


@posix_only
def test_a_terminal_is_left_to_the_command_and_nothing_is_recorded(tmp_path_factory):
    """Standard error a terminal: the command sees the terminal (colours, progress bars), as
    before, and its run keeps "exit status 1" (the documented limit)."""
    import pty

    home = empty_home(tmp_path_factory, "tty")
    cmd = "import os, sys; print(os.isatty(2), os.ttyname(2)); sys.exit('bad config')"
    primary, terminal = pty.openpty()
    name = os.ttyname(terminal)
    try:
        proc = _greenprint_run(
            home, "--", sys.executable, "-c", cmd, stdout=subprocess.PIPE, stderr=terminal
        )
        out, _ = proc.communicate(timeout=120)
        seen = _read_until(primary, b"bad config")
    finally:
        os.close(terminal)
        os.close(primary)
    assert proc.returncode == 1
    assert out.decode().split() == ["True", name]
    assert b"bad config" in seen
    assert _only_run(home).error == "exit status 1"


@posix_only
def test_sigkill_keeps_its_name_and_another_signal_gets_the_line(tmp_path_factory):
    """A death by SIGKILL says nothing the command wrote (the out-of-memory killer); SIGABRT
    comes after the message a C++ runtime writes before it aborts."""
    home = empty_home(tmp_path_factory, "signals")
    abort = (
        'import os, sys; print("terminate called after throwing: what(): CUDA error", '
        "file=sys.stderr, flush=True); os.abort()"
    )
    for name, cmd in (
        ("kill", ["sh", "-c", "echo epoch 3 loss 0.2 >&2; kill -9 $$"]),
        ("abort", [sys.executable, "-c", abort]),
    ):
        proc = _greenprint_run(home, "--name", name, "--", *cmd, stderr=subprocess.DEVNULL)
        proc.wait(timeout=120)
    errors = {run.name: run.error for run in gp.Ledger(str(home / "greenprint.db")).runs()}
    assert errors == {
        "kill": "killed by SIGKILL",
        "abort": "killed by SIGABRT: terminate called after throwing: what(): CUDA error",
    }


def test_an_interruption_keeps_its_signal_and_a_success_records_nothing():
    tail = b'Traceback (most recent call last):\n  File "x", line 1\nKeyboardInterrupt\n'
    assert _outcome(-int(signal.SIGINT), [], tail) == ("interrupted", "killed by SIGINT")
    assert _outcome(130, [int(signal.SIGINT)], tail) == (
        "interrupted",
        "SIGINT, then exit status 130",
    )
    assert _outcome(0, [], b"a warning\n") == ("finished", None)
    assert _outcome(2, [], b"\n  \n") == ("failed", "exit status 2")
    assert _outcome(2, [], None) == ("failed", "exit status 2")


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 9, in <module>\n'
    "    fit(lr)\n"
    "    ~~~^^^^\n"
    "ValueError: bad lr\n"
)


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        (TRACEBACK, "ValueError: bad lr"),
        # lines after it: shutdown noise, a warning's source line
        (TRACEBACK + "wandb: Synced 5 W&B file(s)\n  warnings.warn(\n\n", "ValueError: bad lr"),
        # a chained exception: the last traceback's
        (
            TRACEBACK + "\nDuring handling of the above exception, another exception occurred:"
            "\n\n" + TRACEBACK.replace("ValueError: bad lr", "OSError: [Errno 28] No space"),
            "OSError: [Errno 28] No space",
        ),
        # a message of several lines: its first
        (TRACEBACK.replace("bad lr", "bad lr\nsee the docs"), "ValueError: bad lr"),
        # a progress bar on the line the traceback starts on
        (" 40%|####  | 4/10\r" + TRACEBACK, "ValueError: bad lr"),
        # no traceback: the last line that is not blank
        (
            "usage: train.py [-h]\ntrain.py: error: argument --lr\n\n \n",
            "train.py: error: argument --lr",
        ),
        ("no newline at the end", "no newline at the end"),
        # a progress bar redrawn: its last state; colours and controls removed
        ("\r 10%\r 20%\r\x1b[31m 30%\x1b[0m\x07", "30%"),
        ("\ttab\x00and nul\n", "tab and nul"),
        ("", None),
        ("\n\r\n   \n", None),
        ("\x1b[0m\n", None),
    ],
)
def test_last_line(tail, line):
    assert _stderr_tail.last_line(tail.encode()) == line


def test_last_line_of_bytes_that_are_not_utf8_masked_then_cut():
    assert _stderr_tail.last_line(b"caf\xe9 \xff\n") == "caf\ufffd \ufffd"
    long = b"x" * 150 + b" postgresql://bob:hunter2@db/gp " + b"y" * 100
    shown = _stderr_tail.last_line(long, mask=mask_passwords)
    assert shown is not None and len(shown) == _stderr_tail.LINE_CHARS
    assert shown == ("x" * 150 + " postgresql://bob:***@db/gp " + "y" * 100)[:199] + "…"
