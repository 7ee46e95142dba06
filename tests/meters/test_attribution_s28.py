"""Process attribution: a handle interrupted while it was built, children the kernel reaped.

* A signal (Ctrl-C, SIGTERM turned into an exception) that lands inside ``_ProcStat.__init__``
  or ``_Children.__init__`` before their descriptor slots were set left a half-built object
  whose ``__del__`` raised AttributeError: Python printed "Exception ignored in ...
  AttributeError" on the user's stderr.
* A child reaped by the kernel (its parent ignores SIGCHLD) never reaches its parent's reaped
  children's times: the tree dropped the CPU time it had seen of it, and the tree's CPU time,
  which never decreases, then hid the next that much of the tree's CPU (the parent's 0.5 s
  after such a child read as 0.04 s).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import textwrap

import pytest

from greenprint.meters import _attribution
from greenprint.meters._attribution import _Children, _ProcStat

pytestmark = pytest.mark.skipif(not _attribution._PROCFS, reason="no /proc/<pid>/stat")


class _Signal(BaseException):
    """What a signal handler raises (KeyboardInterrupt, SystemExit...), here at a chosen line."""


def _interrupted_at(build, line_offset: int) -> object | None:
    """Call ``build()``, interrupted in the ``__init__`` it runs at its ``line_offset``-th line.

    :class:`_Signal` is raised there, as a signal handler's exception lands between two
    bytecodes. Returns the half-built object, or ``None`` if ``__init__`` has fewer lines.
    """
    built: list[object] = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name != "__init__":
            return None

        def lines(frame, event, arg):
            if event == "line":
                if frame.f_lineno - frame.f_code.co_firstlineno == line_offset:
                    built.append(frame.f_locals["self"])
                    raise _Signal
            return lines

        return lines

    sys.settrace(tracer)
    try:
        build()
    except _Signal:
        return built[0]
    finally:
        sys.settrace(None)
    return None


@pytest.mark.parametrize("cls", [_ProcStat, _Children])
def test_a_handle_interrupted_while_built_is_dropped_silently(cls):
    """Whatever line of ``__init__`` the interrupt lands on: no "Exception ignored" on the
    user's stderr when the half-built handle is dropped, and a descriptor it holds is closed."""
    caught: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, caught.append
    try:
        offset = 1
        while True:
            fd = os.open(f"/proc/{os.getpid()}/stat", os.O_RDONLY)
            if cls is _ProcStat:
                half = _interrupted_at(lambda fd=fd: _ProcStat(os.getpid(), 1.0, fd), offset)
            else:
                half = _interrupted_at(lambda: _Children(os.getpid()), offset)
            if half is None:  # ran to its end (a whole _ProcStat, dropped, closed it)
                with contextlib.suppress(OSError):
                    os.close(fd)
                break
            held = getattr(half, "_fd", None) == fd
            del half  # dropped: __del__ closes it
            gc.collect()
            if held:  # it took the descriptor: it released it
                with pytest.raises(OSError):
                    os.fstat(fd)
            else:
                os.close(fd)
            offset += 1
    finally:
        sys.unraisablehook = hook
    assert offset > 2  # the interrupts landed inside __init__, line after line
    assert caught == []


_SIG_IGN_CHILD = textwrap.dedent(
    """
    import os, signal, time
    from greenprint.meters._attribution import ProcessTree

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    tree = ProcessTree()
    tree.start()
    pid = os.fork()
    if pid == 0:
        burn(0.5)
        os._exit(0)
    while True:  # sampled while it runs, as a run's sampler does
        time.sleep(0.05)
        tree.sample()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
    tree.sample()
    seen = tree.last.tree_cpu_s
    started = time.process_time()
    burn(0.5)
    tree.sample()
    print(seen, tree.last.tree_cpu_s - seen, time.process_time() - started)
    """
)


def test_a_child_the_kernel_reaped_keeps_its_time_and_hides_none_after():
    """A child of 0.5 s of CPU, reaped through SIGCHLD=SIG_IGN, sampled every 0.05 s: what was
    seen of it stands, and the parent's 0.5 s after it counts in full."""
    out = subprocess.run(
        [sys.executable, "-c", _SIG_IGN_CHILD], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    seen, grew, burned = map(float, out.stdout.split())
    assert seen >= 0.5 - 0.05 - 0.05  # up to one sample interval of the child's end unseen
    assert grew == pytest.approx(burned, abs=0.05)  # was 0.04 s of 0.5 s
