"""The end of what ``greenprint run``'s command writes on stderr, passed on unchanged.

A failed command's run records the line of its stderr that says why (a Python script's
exception line, ``ValueError: bad lr``: :func:`last_line`). When greenprint's stderr is not a
terminal (a log file, a pipe, a scheduler's output file), the command writes into a pipe read by
a small relay process that writes every chunk on to greenprint's stderr as it arrives, unchanged,
and keeps the last :data:`TAIL_BYTES` bytes (:class:`StderrTail`; the command's stdout too
where it is the same file, to keep their order). The relay is not greenprint:
it outlives a killed greenprint and processes the command left running, so that a write to
stderr never fails because greenprint has gone (``kill -9`` of greenprint, whose command then
cleans up on SIGTERM; a daemon the command started), and it ends when the last of them has closed
stderr. When stderr is a terminal the command gets it unchanged, as before: colours, progress
bars, an interactive shell's job control and the terminal's size need the terminal itself (a
pseudo-terminal in between would change them), and nothing is recorded.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable

__all__ = ["LINE_CHARS", "TAIL_BYTES", "StderrTail", "last_line"]


TAIL_BYTES = 32 * 1024
"""How much of the end of the command's stderr is kept (bytes): a Python traceback of a few dozen
frames, whose exception line :func:`last_line` reads, and never more however much is written."""

LINE_CHARS = 200
"""The longest stderr line recorded (characters); a longer one is cut, ending in ``…``."""

REPORT_WAIT_S = 3.0
"""Longest wait, once the command has ended, for the relay to hand over the tail (seconds): it
first writes on what the command wrote last, which a stalled reader of stderr can hold up."""

# The relay of the command's stderr. argv: [-c, tail bytes, control fd]; fd 0: the command's
# stderr pipe; fd 1: the report pipe to greenprint; fd 2: greenprint's stderr. It forks at once,
# so that greenprint neither waits for it nor leaves it a zombie; it runs in a session of its own
# (signals sent to greenprint's process group never reach it) and ignores the signals that stop
# greenprint and the command besides: it ends when the last writer has closed the pipe. It reports
# the tail once: when greenprint closes the control pipe (the command has ended, or greenprint
# is gone), after writing on what the command wrote before it ended; or at the end of the pipe.
# A refused write (EPIPE: stderr's reader is gone) ends it, so that the command's next write
# fails as it did when the command wrote there itself; other errors (a full disk) lose the
# chunk, as the command's own write would have. Standard library only (-I -S).
_RELAY = """\
import os, select, signal, sys
for name in ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
if os.fork():
    os._exit(0)
limit, control = int(sys.argv[1]), int(sys.argv[2])
tail, seen, reported = b"", 0, False

def relay(chunk):
    global tail, seen
    seen += len(chunk)
    tail = chunk[-limit:] if len(chunk) >= limit else (tail + chunk)[-limit:]
    view = memoryview(chunk)
    while view:
        try:
            view = view[os.write(2, view):]
        except BlockingIOError:
            select.select([], [2], [])
        except BrokenPipeError:
            return False
        except OSError:
            return True
    return True

def report():
    global reported
    if not reported:
        reported = True
        view = memoryview((b"1" if seen > len(tail) else b"0") + tail)
        try:
            while view:
                view = view[os.write(1, view):]
        except OSError:
            pass
        os.close(1)

def read():
    chunk = os.read(0, 65536)
    if not chunk or not relay(chunk):
        report()
        os._exit(0)

try:
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(control, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd == 0:
                read()
            elif not reported:
                poller.unregister(control)
                os.set_blocking(0, False)
                for _ in range(64):
                    try:
                        read()
                    except BlockingIOError:
                        break
                os.set_blocking(0, True)
                report()
except Exception:
    report()
    os.set_blocking(0, True)
    while True:
        try:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            os.write(2, chunk)
        except OSError:
            pass
"""


class StderrTail:
    """The end of what the command writes on stderr, passed on unchanged (see the module docstring).

    :meth:`open` starts the relay, or returns ``None`` where stderr is left to the command as it
    is (a terminal, a closed stderr, not POSIX). Give :attr:`fd` to the command as its stderr
    (:func:`greenprint._process.start`'s ``stderr``), call :meth:`started` once it has started
    (or failed to), and :meth:`finish` once it has ended.

    Where greenprint's stdout is the same file or pipe as its stderr (``> log 2>&1``, ``2>&1 |
    tee log``), the command's stdout is the same pipe too: its output and its errors reach the
    file in the order it wrote them (a relayed stderr beside a direct stdout came late, a stderr
    line even split by stdout's), and the line recorded is the last of either.

    Attributes:
        fd: the write end of the pipe, for the command.
        stdout_too: whether the command's stdout is the pipe too.
    """

    def __init__(
        self,
        helper: subprocess.Popen[bytes],
        fd: int,
        control: int,
        report: int,
        *,
        stdout_too: bool = False,
    ):
        self.fd = fd
        self.stdout_too = stdout_too
        self._helper = helper
        self._control = control
        self._report = report
        self._finished = False

    @classmethod
    def open(cls) -> StderrTail | None:
        """Start the relay to this process's stderr; ``None`` where none is wanted or possible."""
        if os.name != "posix" or not sys.executable:
            return None
        try:
            stderr = os.fstat(2)  # closed (2>&-): the command gets none either
            if os.isatty(2):
                return None
        except OSError:
            return None
        try:
            stdout = os.fstat(1)
        except OSError:
            shared = False
        else:
            shared = (stdout.st_dev, stdout.st_ino) == (stderr.st_dev, stderr.st_ino)
        data_read, data_write = os.pipe()
        control_read, control_write = os.pipe()
        report_read, report_write = os.pipe()
        try:
            helper = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _RELAY, str(TAIL_BYTES), str(control_read)],
                stdin=data_read,
                stdout=report_write,
                pass_fds=(control_read,),
                # out of greenprint's process group from its first instruction: a Ctrl-C sent
                # to the group while it still imported `signal` (before it ignores SIGINT)
                # printed a KeyboardInterrupt traceback on greenprint's stderr and ended it
                start_new_session=True,
            )
        except OSError:  # no Python to run (a deleted venv): the command writes as it did
            for fd in (data_write, control_write, report_read):
                os.close(fd)
            return None
        finally:
            for fd in (data_read, control_read, report_write):
                os.close(fd)
        return cls(helper, data_write, control_write, report_read, stdout_too=shared)

    def started(self) -> None:
        """Close this process's copy of the command's end of the pipe (the command has its own)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._helper.poll()  # reaped as soon as it has forked: no zombie in the measured tree

    def finish(self, wait_s: float = REPORT_WAIT_S) -> bytes | None:
        """The last :data:`TAIL_BYTES` bytes the command wrote on stderr, once it has ended.

        The relay first writes on what the command wrote last, then reports, and goes on
        relaying what processes the command left running write. A tail that lost its start
        begins at its first whole line (``…`` before it when it has none).

        Args:
            wait_s: how long to wait for the report (seconds).

        Returns:
            The tail; ``None`` if the relay did not report within ``wait_s``, or when called again.
        """
        if self._finished:
            return None
        self._finished = True
        self.started()
        os.close(self._control)  # the relay's cue (it gets the same when greenprint dies)
        data = bytearray()
        complete = False
        deadline = time.monotonic() + wait_s
        poller = select.poll()
        poller.register(self._report, select.POLLIN)
        try:
            while (left_s := deadline - time.monotonic()) > 0:
                if not poller.poll(left_s * 1000):
                    break
                chunk = os.read(self._report, 65536)
                if not chunk:
                    complete = True
                    break
                data += chunk
        finally:
            os.close(self._report)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._helper.wait(wait_s)  # it forked at once: long gone
        if not complete or not data:
            return None
        cut, tail = data[:1] == b"1", bytes(data[1:])
        if cut:
            first_end = tail.find(b"\n")
            tail = tail[first_end + 1 :] if first_end >= 0 else "…".encode() + tail
        return tail


#: Terminal escape sequences (colours, cursor moves, titles) in a captured line.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_TRACEBACK = "Traceback (most recent call last):"


#: A notice greenprint printed in the command's own process (a script importing greenprint):
#: a logged ``greenprint: ...`` line (not the CLI's ``greenprint: error: ...``), or a warning's
#: first line (``train.py:3: UserWarning: greenprint: ...``), which the line of source after it
#: belongs to.
_NOTICE = re.compile(r"greenprint: (?!error:)|\S.*:\d+: \w*Warning: greenprint: ")


def _notices(lines: list[str]) -> set[int]:
    """The indexes of ``lines`` that are greenprint's own notices, not the command's words."""
    found: set[int] = set()
    for at, line in enumerate(lines):
        if _NOTICE.match(line):
            found.add(at)
            source = lines[at + 1] if at + 1 < len(lines) else ""
            if "Warning: greenprint: " in line and source[:1].isspace():
                found.add(at + 1)  # the warning's line of source
    return found


def last_line(tail: bytes, *, mask: Callable[[str], str] | None = None) -> str | None:
    """The line of the command's stderr that says why it failed, as one short line of text.

    The exception line of the last Python traceback in ``tail`` (``ValueError: bad lr``), even
    with lines written after it (a logger's shutdown messages); else its last non-blank line
    that is not a notice of greenprint's own (a script that imports greenprint: ``greenprint:
    gp.current_run() is None...``; :data:`_NOTICE`), of a progress bar redrawn after a
    carriage return its last state. Terminal escape
    sequences and control characters are removed; a line longer than :data:`LINE_CHARS`
    characters is cut, ending in ``…``, after ``mask`` (a password cut in two would not be
    recognised).

    Args:
        tail: the end of the command's stderr (:meth:`StderrTail.finish`).
        mask: rewrites the whole line before it is cut (masks passwords).

    Returns:
        The line, or ``None`` if ``tail`` has none that is not blank.
    """
    lines = _ESCAPES.sub("", tail.decode("utf-8", errors="replace")).splitlines()
    chosen = None
    for at in range(len(lines) - 1, -1, -1):
        if lines[at].rstrip().endswith(_TRACEBACK):
            chosen = next(
                (line for line in lines[at + 1 :] if line.strip() and not line[0].isspace()), None
            )
            break
    if chosen is None:
        notices = _notices(lines)
        chosen = next(
            (lines[at] for at in range(len(lines) - 1, -1, -1)
             if lines[at].strip() and at not in notices),
            None,
        )  # fmt: skip
    if chosen is None:
        return None
    line = _CONTROLS.sub(" ", chosen).strip()
    if mask is not None:
        line = mask(line)
    if not line:
        return None
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
