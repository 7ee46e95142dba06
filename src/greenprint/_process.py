"""The command of ``greenprint run``: starting it, relaying signals to it, naming how it ended.

Signals: a terminal sends SIGINT (Ctrl-C) and SIGQUIT (Ctrl-backslash) to every process of its
foreground process group, and the command normally shares greenprint's group, so it already has
the signal; forwarding it again would deliver it twice (and abort a trainer that saves a
checkpoint on its first Ctrl-C). ``siginfo`` cannot tell the cases apart: ``kill(pid)`` and
``kill(-pgid)`` both arrive as ``SI_USER``. The rule is therefore by signal, the rule a shell
follows for its foreground job ("wait and cooperative exit") and ``uv run`` for its child:

* SIGINT and SIGQUIT are not forwarded while the command is in greenprint's process group;
  greenprint notes them and goes on waiting (and measuring) while the command cleans up. Sent to
  greenprint alone (``kill -INT <greenprint pid>``) they therefore do not reach the command:
  signal the command, or send SIGTERM to greenprint. If the command moved to a process group of
  its own (``setsid``), they are forwarded.
* SIGTERM and SIGHUP are forwarded: each one greenprint receives reaches the command once. Sent
  to the whole group (``kill -TERM -<pgid>``, a scheduler signalling every process) the command
  gets it directly and once more from greenprint.
* A signal that greenprint ignored when it started (``nohup`` ignores SIGHUP) stays ignored.

Budgets: ``greenprint run --budget-kwh X`` stops the command when the run goes over budget
(:class:`ChildStopper`): SIGTERM to the command itself, then SIGKILL once a grace period has
passed without it ending; each is said in one line on stderr. Processes the command started and
left running when it ended (a shell script's foreground job survives the shell's SIGTERM) then
get SIGTERM, and SIGKILL after the same grace.

Parent death: on Linux the command starts through a small trampoline (``python -I -S -c``,
about 15 ms once per run) that starts a watcher, checks that greenprint is still its parent
(closing the race with a parent that died first), and ``exec``-s the command in the same process
with greenprint's environment. If greenprint is killed, even with ``kill -9``, the watcher sends
the command SIGTERM, once, instead of it running on unmetered; the run then reads ``lost`` (at
once on this machine: see ``greenprint._liveness``; elsewhere once its heartbeat is stale). The
watcher is the trampoline forked twice, so that it is neither greenprint's child nor the
command's (nothing in the measured process tree, nothing a shell command could ``wait`` for), in
a session of its own with every file descriptor closed; it waits on pidfds of greenprint and of
the command (Linux 5.3) and ends with the command. A pidfd is readable once every thread of the
process has exited. The kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), used where
pidfds are missing, is not: it follows the thread that forked the command, so it came when that
thread ended while greenprint lived on, and once more for each greenprint thread the command was
handed to as they died one after another (two SIGTERMs in 13 runs of 20 after ``kill -9``, the
second in the middle of the command's checkpoint). Only the command itself gets the signal, not
processes it started (it normally takes them down). ``preexec_fn`` is not used: it is unsafe
while greenprint's sampler thread runs. Elsewhere (macOS, Windows) no such guard exists.

Standard error: ``greenprint run`` gives :func:`start` the pipe of a
:class:`greenprint._stderr_tail.StderrTail` as the command's stderr when greenprint's is not a
terminal (see that module).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType, TracebackType
from typing import Any

__all__ = [
    "FORWARDED_SIGNALS",
    "ChildStopper",
    "TERMINAL_SIGNALS",
    "SignalRelay",
    "describe_exit",
    "exit_status",
    "signal_name",
    "STOP_SIGNALS",
    "start",
]


def _signals(*names: str) -> tuple[int, ...]:
    return tuple(int(getattr(signal, name)) for name in names if hasattr(signal, name))


TERMINAL_SIGNALS: tuple[int, ...] = _signals("SIGINT", "SIGQUIT")
"""Signals a terminal sends to its whole foreground process group (Ctrl-C, Ctrl-backslash)."""

FORWARDED_SIGNALS: tuple[int, ...] = _signals("SIGTERM", "SIGHUP")
"""Signals forwarded to the command each time greenprint receives one."""

WAIT_TICK_S = 0.5
"""Longest the main thread waits for the command at a stretch before it runs the handlers of
signals another thread took (seconds; see :meth:`SignalRelay.wait`)."""

STOP_SIGNALS: frozenset[int] = frozenset(TERMINAL_SIGNALS + FORWARDED_SIGNALS)
"""Signals that ask a command to stop: a death by one of them is an interruption, not a failure."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# argv: [-c, parent pid, environment pipe fd, error pipe fd, command...]. Runs in the child before
# the command: standard library only, nothing read from the user's environment (-I -S). The
# command gets greenprint's environment as sent through the pipe, not the trampoline's own
# (which Python may have changed at start-up, e.g. coercing a C locale to LC_CTYPE=C.UTF-8).
# guard() starts the watcher (see the module docstring): it forks twice, so that the watcher is
# neither the command's child nor greenprint's, and the first fork is reaped before the exec.
_TRAMPOLINE = """\
import os, select, signal, sys
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
for name in ("SIGPIPE", "SIGXFSZ"):
    signal.signal(getattr(signal, name), signal.SIG_DFL)
parent = int(sys.argv[1])

def watch(greenprint, command):
    os.setsid()  # out of the terminal's job: Ctrl-C, Ctrl-Z and a hangup do not reach it
    low, high = sorted((greenprint, command))
    os.closerange(0, low)  # the command's stdio and pipes: a reader waits for their end
    os.closerange(low + 1, high)
    os.closerange(high + 1, 1 << 20)
    poller = select.poll()
    poller.register(greenprint, select.POLLIN)
    poller.register(command, select.POLLIN)
    ended = {fd for fd, _ in poller.poll()}
    if command not in ended:  # greenprint, every thread of it, has gone: the command has not
        try:
            signal.pidfd_send_signal(command, signal.SIGTERM)
        except OSError:
            pass

def guard():
    try:
        fds = os.pidfd_open(parent), os.pidfd_open(os.getpid())
    except (AttributeError, OSError):  # Linux < 5.3: no pidfd
        return False
    try:
        middle = os.fork()
        if not middle:
            try:
                if not os.fork():
                    watch(*fds)
                os._exit(0)
            finally:
                os._exit(1)
        return os.waitpid(middle, 0)[1] == 0
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)

if not guard():  # the kernel's guard instead: SIGTERM once per greenprint thread it outlives
    try:
        import ctypes
        ctypes.CDLL(None).prctl(%d, int(signal.SIGTERM), 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # best effort: the command runs unguarded
        pass
if os.getppid() != parent:
    os._exit(128 + signal.SIGTERM)
with os.fdopen(int(sys.argv[2]), "rb") as f:
    env = dict(item.split(b"=", 1) for item in f.read().split(b"\\0") if item)
fd = int(sys.argv[3])
os.set_inheritable(fd, False)
try:
    os.execvpe(sys.argv[4], sys.argv[4:], env)
except OSError as e:
    os.write(fd, b"%%d:%%s" %% (e.errno or 0, (e.strerror or str(e)).encode()))
    os._exit(127)
""" % (_PR_SET_PDEATHSIG,)


def signal_name(signum: int) -> str:
    """The name of signal ``signum`` (``"SIGSEGV"``), or ``"signal N"`` for an unnamed one."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(returncode: int) -> str:
    """How a process ended, from its :attr:`subprocess.Popen.returncode`.

    Returns:
        ``"exit status 3"``, or ``"killed by SIGSEGV"`` for a negative ``returncode``.
    """
    return (
        f"killed by {signal_name(-returncode)}" if returncode < 0 else f"exit status {returncode}"
    )


def exit_status(returncode: int) -> int:
    """The exit status a shell reports for ``returncode``: itself, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def start(
    cmd: Sequence[str], *, stdout: int | None = None, stderr: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as a child in this process group, with stdin/stdout/stderr inherited.

    On Linux the child gets the parent-death signal SIGTERM (see the module docstring); the
    call returns once the command is executing.

    Args:
        cmd: the program and its arguments; the program is looked up on ``PATH``.
        stdout: a file descriptor to give the command as its standard output instead of this
            process's.
        stderr: a file descriptor to give the command as its standard error (a
            :class:`~greenprint._stderr_tail.StderrTail`'s pipe) instead of this process's.

    Returns:
        The child, whose pid is the command's.

    Raises:
        OSError: the command could not be executed (not found, not executable, bad format).
    """
    if not sys.platform.startswith("linux") or not sys.executable:
        return subprocess.Popen(list(cmd), stdout=stdout, stderr=stderr)
    env_read, env_write = os.pipe()
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), str(env_read)]
            + [str(write_fd), *cmd],
            pass_fds=(env_read, write_fd),
            stdout=stdout,
            stderr=stderr,
        )
    except BaseException:
        os.close(read_fd)
        os.close(env_write)
        raise
    finally:
        os.close(env_read)
        os.close(write_fd)
    environment = b"\0".join(key + b"=" + value for key, value in os.environb.items())
    with os.fdopen(env_write, "wb") as pipe:
        try:
            pipe.write(environment)
        except BrokenPipeError:  # the trampoline ended early (its parent check): reported below
            pass
    with os.fdopen(read_fd, "rb") as pipe:  # EOF when exec succeeds (close-on-exec) or fails
        report = pipe.read()
    if report:
        child.wait()
        errno, _, strerror = report.decode(errors="replace").partition(":")
        raise OSError(int(errno) if errno.isdigit() else 0, strerror, cmd[0])
    return child


def _shares_group(child: subprocess.Popen[bytes]) -> bool:
    """Whether ``child`` is in this process's group (so a terminal's signal reaches it too)."""
    if not hasattr(os, "getpgid"):  # Windows: Ctrl-C reaches every process of the console
        return True
    try:
        return os.getpgid(child.pid) == os.getpgrp()
    except ProcessLookupError:  # already reaped: nothing to forward to
        return True


class SignalRelay:
    """Relays signals to the command while it runs, by the rule in the module docstring.

    Used as a context manager around starting and waiting for the command, in the main
    thread (elsewhere Python cannot install handlers and it does nothing). Signals that arrive
    before :meth:`attach` are forwarded (if the rule says so) when the child is attached.

    Attributes:
        received: the signals received, in order.
        forwarded: the signals forwarded to the command, in order.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.forwarded: list[int] = []
        self._child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalRelay:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in TERMINAL_SIGNALS + FORWARDED_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # ignored when greenprint started (nohup): the command ignores it too
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def attach(self, child: subprocess.Popen[bytes]) -> None:
        """Relay to ``child`` from now on, and forward what arrived before it started."""
        self._child = child
        for signum in list(self.received):
            self._relay(signum)

    def wait(self, child: subprocess.Popen[bytes]) -> int:
        """``child.wait()``, waking at least every :data:`WAIT_TICK_S` to relay signals.

        The kernel gives a signal sent to the process to any of its threads that does not
        block it, and Python runs the handler in the main thread at its next instruction. A
        main thread blocked in ``waitpid()`` is woken only by a signal given to it: a SIGTERM
        that the meters' sampler thread took was never relayed, greenprint waiting for the
        command and the command for the signal (a ``tgkill`` test reproduces it). Waiting with
        a timeout, the main thread runs pending handlers between polls (``Popen.wait`` sleeps
        at most 50 ms between them).

        Returns:
            The command's return code (negative: killed by that signal).
        """
        while True:
            try:
                return child.wait(timeout=WAIT_TICK_S)
            except subprocess.TimeoutExpired:
                continue

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._child is not None:
            self._relay(signum)

    def _relay(self, signum: int) -> None:
        child = self._child
        if child is None:
            return
        if signum in TERMINAL_SIGNALS and _shares_group(child):
            return  # the terminal delivered it to the command as well
        if child.poll() is None:  # never signal a reaped pid
            child.send_signal(signum)
            self.forwarded.append(signum)


class ChildStopper:
    """Stops the command when asked to (a budget crossed): SIGTERM, then SIGKILL after a grace.

    :meth:`request` may be called from any thread (the run's sampler thread calls it) and before
    the command is attached; the signals are sent from a thread of the stopper's own, so the
    caller never waits. The command itself is signalled; what it started and left running when
    it ended is stopped after it.

    Args:
        grace_s: seconds between SIGTERM and SIGKILL.
        say: prints one line for the user (on stderr).

    Attributes:
        sent: the signals sent, in order.
        left_stopped: how many processes the command started and left running were stopped
            after it ended (see :meth:`_stop_left`).
    """

    def __init__(self, grace_s: float, *, say: Callable[[str], None]) -> None:
        self.grace_s = grace_s
        self.sent: list[int] = []
        self.left_stopped = 0
        self._say = say
        self._reason: str | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._program = ""
        self._asked = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def reason(self) -> str | None:
        """Why the command was asked to stop (the first request's reason), or ``None``."""
        return self._reason

    def request(self, reason: str) -> None:
        """Ask for the command to be stopped; only the first request counts."""
        if self._reason is None:
            self._reason = reason
            self._asked.set()

    def attach(self, child: subprocess.Popen[bytes], program: str) -> None:
        """Stop ``child`` when asked (at once if already asked)."""
        self._child = child
        self._program = program
        self._thread = threading.Thread(target=self._watch, name="greenprint-budget", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (the command has ended); waits for a SIGKILL decision in progress."""
        self._closed = True
        self._asked.set()
        if self._thread is not None:
            self._thread.join()

    def describe(self) -> str | None:
        """What the stopper did, for the run's error; ``None`` when it sent nothing.

        Returns:
            ``"BudgetExceeded: <reason>; SIGTERM sent"`` or ``"...; SIGTERM sent, then SIGKILL
            after 10 s"``: a budget stop's error as every other budget stop records it.
        """
        if not self.sent:
            return None
        text = f"BudgetExceeded: {self._reason}; SIGTERM sent"
        if len(self.sent) > 1:
            text += f", then SIGKILL after {self.grace_s:g} s"
        if self.left_stopped:
            text += f" ({self.left_stopped} process(es) it started and left running stopped too)"
        return text

    def _watch(self) -> None:
        self._asked.wait()
        child = self._child
        if self._closed or child is None or child.poll() is not None:
            return
        self._say(
            f"greenprint: {self._reason}: sending SIGTERM to {self._program} (pid {child.pid}); "
            f"SIGKILL in {self.grace_s:g} s if it has not ended"
        )
        started = _descendants(child.pid)  # before SIGTERM: the command may not wait for them
        child.send_signal(signal.SIGTERM)
        self.sent.append(int(signal.SIGTERM))
        try:
            child.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            if child.poll() is None:
                self._say(
                    f"greenprint: {self._program} (pid {child.pid}) still running "
                    f"{self.grace_s:g} s after SIGTERM: sending SIGKILL"
                )
                started += _descendants(child.pid)
                child.kill()
                self.sent.append(int(getattr(signal, "SIGKILL", 9)))
        self._stop_left(started)

    def _stop_left(self, started: list[Any]) -> None:
        """Stop the processes the command started and left running, a line each.

        ``bash train.sh`` does not take its foreground job down on SIGTERM, so the training
        would go on, unmetered, after the budget stopped the command: SIGTERM, then SIGKILL
        after the grace.
        """
        import psutil

        left = {p.pid: p for p in started if _running(p)}
        if not left:
            return
        self.left_stopped = len(left)
        self._say(
            f"greenprint: {len(left)} process(es) {self._program} started still running "
            f"(pid {', '.join(map(str, left))}): sending SIGTERM; SIGKILL in {self.grace_s:g} s"
        )
        for proc in left.values():
            with contextlib.suppress(psutil.Error):
                proc.terminate()  # psutil checks the pid was not reused
        _, alive = psutil.wait_procs(list(left.values()), timeout=self.grace_s)
        alive = [p for p in alive if _running(p)]
        if alive:
            self._say(
                f"greenprint: pid {', '.join(str(p.pid) for p in alive)} still running "
                f"{self.grace_s:g} s after SIGTERM: sending SIGKILL"
            )
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def _descendants(pid: int) -> list[Any]:
    """The processes under ``pid`` now (``psutil.Process`` objects), ``[]`` if it is gone."""
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _running(proc: Any) -> bool:
    """Whether a ``psutil.Process`` still runs (a zombie has ended)."""
    import psutil

    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
