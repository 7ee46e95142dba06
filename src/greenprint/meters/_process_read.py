"""Reading one process's CPU times and memory, for :mod:`greenprint.meters._attribution`.

On Linux through ``/proc/<pid>/stat`` and the process's CPU clock (:class:`_ProcStat`, with a
descriptor kept open where the tree allows); elsewhere through psutil (:class:`_PsutilProc`).
Both give one process's figures as a :data:`_Figures` tuple; :class:`_Proc` is one process of
a tree, with its CPU times at first sight. The clock tick the figures are read in
(:data:`TICK_S`) and whether ``/proc`` can be read (``_PROCFS``) are decided here, once.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import TYPE_CHECKING

try:
    import resource
except ImportError:  # pragma: no cover - Windows (the psutil path: not used there)
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    import psutil


#: One process's figures: (ppid, own CPU s, reaped children's CPU s, RSS bytes, start time s,
#: threads; -1 when unknown).
_Figures = tuple[int, float, float, float, float, int]


class _Unreadable(Exception):
    """A process that exists but whose figures this process may not read."""


def _exists(pid: int) -> bool:
    """Whether ``pid`` is a live process (signal 0: denied means it exists, as another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's
        return True
    return True


def _fine_times(pid: int) -> tuple[float | None, float | None]:
    """``pid``'s own and reaped children's CPU seconds at a resolution finer than a clock tick.

    Own: the process's CPU clock (``CLOCK_PROCESS_CPUTIME_ID`` for this process, the clock id
    ``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`` for another: Linux lets any process read it),
    the sum over its threads, ended ones too, in ns: the figure ``/proc/<pid>/stat`` truncates
    to clock ticks. Reaped children's: ``getrusage(RUSAGE_CHILDREN)`` (µs), for this process
    only. ``None`` for a figure that cannot be read so (a zombie's clock; a kernel or sandbox
    without pid clocks): the caller keeps the tick figure. Read before the process's ``stat``
    line, so that a ``stat`` still bound to the process after it proves that the pid was its.
    """
    if pid == os.getpid():
        try:
            own: float | None = time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID)
            usage = resource.getrusage(resource.RUSAGE_CHILDREN) if resource else None
        except OSError:  # pragma: no cover - both are there on Linux
            return None, None
        return own, None if usage is None else usage.ru_utime + usage.ru_stime
    try:
        return time.clock_gettime(((~pid) << 3) | _CPUCLOCK_SCHED), None
    except (OSError, OverflowError):
        return None, None


def _procfs_available() -> bool:
    """Whether this is Linux with a readable ``/proc/<pid>/stat`` for this process."""
    return sys.platform.startswith("linux") and os.path.exists(f"/proc/{os.getpid()}/stat")


_PROCFS = _procfs_available()
_CLK_TCK = float(os.sysconf("SC_CLK_TCK")) if _PROCFS else 100.0
_PAGE_BYTES = float(os.sysconf("SC_PAGE_SIZE")) if _PROCFS else 4096.0
_O_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: ``CPUCLOCK_SCHED``: the clock of a process's CPU time (all its threads, ended ones too) that
#: ``clock_gettime`` reads, in ns, for a pid of Linux's ``MAKE_PROCESS_CPUCLOCK``
_CPUCLOCK_SCHED = 2
#: Machine CPU time (``/proc/stat``) and the CPU time ``/proc/<pid>/stat`` gives are in clock
#: ticks: a figure read from them is exact to this many seconds (10 ms at ``USER_HZ`` 100)
TICK_S = 1.0 / _CLK_TCK


def _parse_stat(data: bytes, prefix: bytes) -> _Figures | None:
    """The figures in one ``/proc/<pid>/stat`` line, or ``None`` (empty: the process is gone).

    ``prefix`` (``b"<pid> ("``) guards against a descriptor number that was closed behind our
    back and reused for another file.
    """
    if not data.startswith(prefix):
        return None
    rest = data.rpartition(b")")[2].split()  # the name may hold spaces and parentheses
    try:
        return (
            int(rest[1]),
            (int(rest[11]) + int(rest[12])) / _CLK_TCK,
            (int(rest[13]) + int(rest[14])) / _CLK_TCK,
            int(rest[21]) * _PAGE_BYTES,
            int(rest[19]) / _CLK_TCK,
            int(rest[17]),
        )
    except (IndexError, ValueError):
        return None


class _ProcStat:
    """One process read through ``/proc/<pid>/stat`` (Linux).

    With a kept descriptor the kernel ties every read to the process it was opened for; without
    one, a read of a pid that now belongs to another process is told by its start time.
    """

    __slots__ = ("_fd", "_prefix", "exact", "pid", "started_s")

    def __init__(self, pid: int, started_s: float, fd: int) -> None:
        self._fd = fd  # first: a signal later in here still leaves it to close()
        self.pid = pid
        self.started_s = started_s
        self._prefix = b"%d (" % pid
        #: which figures of the last read are finer than a clock tick: 1 own, 2 reaped
        self.exact = 0

    def _refined(self, figures: _Figures, fine: tuple[float | None, float | None]) -> _Figures:
        """``figures`` with the CPU times of :func:`_fine_times` where it read them."""
        own_s, reaped_s = fine
        own, reaped = figures[1], figures[2]
        exact = 0
        if own_s is not None:
            own, exact = max(own, own_s), 1  # the tick figure: truncated, never above
        if reaped_s is not None:
            reaped, exact = max(reaped, reaped_s), exact | 2
        self.exact = exact
        return figures[0], own, reaped, figures[3], figures[4], figures[5]

    @classmethod
    def open(cls, pid: int, *, keep: bool) -> tuple[_ProcStat, _Figures] | None:
        """Open ``pid``; ``None`` when it does not exist.

        Raises:
            _Unreadable: it exists, but its ``stat`` is denied (or hidden: ``hidepid=2``).
        """
        path = f"/proc/{pid}/stat"
        try:
            fd = os.open(path, _O_FLAGS)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise _Unreadable(f"permission denied reading {path}") from e
            if e.errno == errno.ENOENT and _exists(pid):
                raise _Unreadable(f"{path} hidden (/proc mounted with hidepid)") from e
            return None
        fine = _fine_times(pid)
        try:
            figures = _parse_stat(os.pread(fd, 1024, 0), b"%d (" % pid)
        except OSError:
            figures = None
        if figures is None or not keep:
            os.close(fd)
            fd = -1
        if figures is None:
            return None
        handle = cls(pid, figures[4], fd)
        return handle, handle._refined(figures, fine)

    def read(self) -> _Figures | None:
        """The process's figures now; ``None`` once it is gone (reaped, or its pid reused)."""
        if self._fd >= 0:
            fine = _fine_times(self.pid)
            try:
                data = os.pread(self._fd, 1024, 0)
            except OSError as e:
                if e.errno == errno.ESRCH:  # reaped: the descriptor outlives its process
                    self.close()
                    return None
                data = None  # closed behind our back (EBADF): read by path below
                self._fd = -1
            if data is not None:
                figures = _parse_stat(data, self._prefix)
                if figures is not None:
                    return self._refined(figures, fine)
                if not data:  # gone (kernels that read nothing for a reaped process)
                    self.close()
                    return None
                # another file now has this descriptor number: not ours to close
                self._fd = -1
        try:
            opened = _ProcStat.open(self.pid, keep=False)
        except _Unreadable:  # read before: now another user's (its pid reused), not ours
            return None
        if opened is None or opened[1][4] != self.started_s:
            return None
        self.exact = opened[0].exact
        return opened[1]

    @property
    def kept(self) -> int:
        """Descriptors kept open for this process (0 or 1)."""
        return int(self._fd >= 0)

    def close(self) -> None:
        """Release the descriptor, if one is kept. Idempotent.

        Safe on a half-built handle (``__init__`` interrupted by a signal or Ctrl-C before its
        descriptor was set), which ``__del__`` closes too: nothing to release there.
        """
        fd = getattr(self, "_fd", -1)
        self._fd = -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - closed behind our back
                pass

    def __del__(self) -> None:
        self.close()


class _PsutilProc:
    """One process read through psutil (macOS, Windows, Linux without ``/proc`` files)."""

    __slots__ = ("pid", "proc", "started_s")

    #: psutil's CPU times are finer than a clock tick except on Linux (where it reads ``/proc``)
    exact = 0 if sys.platform.startswith("linux") else 3

    def __init__(self, proc: psutil.Process, started_s: float) -> None:
        self.pid = proc.pid
        self.proc = proc
        self.started_s = started_s

    @classmethod
    def open(cls, pid: int, *, keep: bool) -> tuple[_PsutilProc, _Figures] | None:
        """Open ``pid``; ``None`` when it does not exist.

        Raises:
            _Unreadable: it exists, but psutil may not read it (access denied).
        """
        import psutil

        try:
            proc = psutil.Process(pid)
            handle = cls(proc, proc.create_time())
            # macOS gives another user's start time but not its CPU times: denied here too
            figures = handle._figures()
        except psutil.AccessDenied as e:
            raise _Unreadable(f"access denied to process {pid}") from e
        except psutil.Error:
            return None
        return None if figures is None else (handle, figures)

    def read(self) -> _Figures | None:
        """The process's figures now; ``None`` once it is gone (or cannot be read)."""
        import psutil

        try:
            return self._figures()
        except psutil.Error:
            return None

    def _figures(self) -> _Figures | None:
        """As :meth:`read`, but psutil's errors raised (``AccessDenied``)."""
        import psutil

        proc = self.proc
        if not proc.is_running():  # gone, or its pid now names another process
            return None
        with proc.oneshot():
            times = proc.cpu_times()
            ppid = proc.ppid()
            try:
                rss = float(proc.memory_info().rss)
            except psutil.Error:  # zombies have no memory
                rss = 0.0
        own = times.user + times.system
        reaped = getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
        return ppid, own, reaped, rss, self.started_s, -1

    kept = 0

    def close(self) -> None:
        return None


if TYPE_CHECKING:  # pragma: no cover
    _Handle = _ProcStat | _PsutilProc


class _Proc:
    """One process of the tree: its handle, CPU times at first sight (baseline) and now, in s."""

    __slots__ = ("base_own", "base_reaped", "handle", "own", "ppid", "reaped", "threads")

    def __init__(self, handle: _Handle, figures: _Figures, *, existed: bool) -> None:
        self.handle = handle
        self.ppid = figures[0]
        self.own = figures[1]
        self.reaped = figures[2]
        self.threads = figures[5]
        self.base_own = self.own if existed else 0.0
        self.base_reaped = self.reaped if existed else 0.0

    @property
    def used(self) -> float:
        return (self.own - self.base_own) + (self.reaped - self.base_reaped)
