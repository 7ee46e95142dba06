"""Process-tree attribution: how much of the machine's CPU time and memory the tracked tree used.

A :class:`ProcessTree` samples the whole machine's CPU times and the CPU time and resident
memory of a process and all its descendants. Meters turn each sample into a share of the
machine's energy:

* CPU: ``cpu_share = tree CPU seconds / machine busy CPU seconds`` over the interval;
* RAM: ``ram_share = tree RSS / installed RAM`` at the sample.

**Short runs.** ``/proc/stat`` and ``/proc/<pid>/stat`` count CPU time in clock ticks
(:data:`TICK_S`, 10 ms), which a run of 5 ms reads as 0, 1 or 2 of them (its CPU energy read 0
or twice the truth). So a process's own CPU time comes from its CPU clock (``clock_gettime``, in
ns; this process's reaped children from ``getrusage``, in µs), the tick figure only where that
cannot be read; and an interval's machine CPU seconds are ``cpus x dt`` (:attr:`ProcessTree.cpus`,
wall seconds), not ``/proc/stat``'s total. Neither the tree nor the machine's busy time can
exceed that (the tree's excess, read a moment after the clock, is the next interval's), and the
machine was busy at least as long as the tree. The machine's busy time stays in ticks:
:func:`resolution_note` says when a run is too short for it, and for CPU time of the tree read in
ticks (:attr:`UsageSample.coarse_cpu_s`). An estimate's busy part, ``tree CPU s / cpus``, is then
exact; only the idle floor's share and a measured counter's share rest on the ticks.

CPU time of processes that exit between samples is kept:

* a child reaped by a parent inside the tree shows up in that parent's ``children_user`` and
  ``children_system`` times (the kernel adds a waited-for child's total to its parent), so
  short-lived children that were never sampled (compilers under ``make``, data-loader workers)
  are counted in full;
* a process whose parent is not in the tree (the root itself, or an orphan re-parented to init)
  keeps the last CPU time seen for it, and so does a child the kernel reaped (its parent
  ignores SIGCHLD, ``SigIgn`` in ``/proc/<pid>/status``: its time reaches no one's reaped
  children's times); what such a child spent after its last sample, or a child that started
  and ended between two samples, is not seen (docs/hardware.md);
* the cumulative tree CPU time never decreases.

Processes started before :meth:`ProcessTree.start` count from their CPU time at the start. A
process once seen stays tracked after it is re-parented (daemonised), but its later children
are not found.

A process of the tree that exists but cannot be read (``/proc`` mounted with ``hidepid`` and a
child run as another user: its ``stat`` is denied, or hidden and reads as absent while the
process answers signal 0) is left out, its children with it: the tree's share is then a lower
bound, and :attr:`ProcessTree.unreadable` counts those processes (a meter set's provenance says
so). A root that cannot be read gives no share at all: :attr:`ProcessTree.root_unreadable` says
why, and a meter set counts the whole machine's energy instead of a share of 0.

**How it reads, on Linux.** A sample runs once a second for the whole run, so it is a few
``pread`` calls on descriptors kept open (for a one-process tree: four, about 0.2 ms of CPU on the
2-vCPU VM of ``BENCHMARKS.md``, where a read costs 5-30 µs once a second's sleep has cooled the
caches), and psutil is not imported:

* the machine's CPU times: the ``cpu`` line of ``/proc/stat``;
* each process of the tree: its ``/proc/<pid>/stat`` line (CPU times, reaped children's
  times, parent, threads, start time and resident pages are all in it) and its CPU clock, read
  just before it (one ``clock_gettime``, about 1 µs; for this process a ``getrusage`` too).
  The first :data:`KEPT_OPEN` descriptors of a tree stay open; a kept descriptor is bound to its
  process (once the process is reaped it reads ``ESRCH``, never another process that got the
  same pid).
  Beyond that, files are opened per read and a reused pid is told by its start time;
* descendants: the ``children`` file of each thread of each process of the tree
  (``/proc/<pid>/task/<tid>/children``), kept open between walks; the thread list is read again
  when the process's thread count changes, and every :data:`_RELIST_EVERY` walks. The walk is
  skipped while the last process id the kernel handed out (``/proc/loadavg``) has not changed,
  since no new process can have joined the tree then.

**Runs inside runs.** The runs of one process that track the same process share one tree
(:func:`shared_tree`) and so one series of samples: each run's sampler adds its samples to it,
and each run's figures are differences of the same cumulative integrals between a sample taken
at its start and one taken at its end. A run nested in another (started after it, stopped
before it) therefore never gets more of any integral, hence of any estimated energy, than its
parent, and runs one after another inside a parent never get more together than the parent:
the integrands are non-negative. (Ratios taken over two different sample grids would not add
up so.) The tree is reset only when no run uses it; the last user releases its descriptors.

**Elsewhere** (macOS, Windows, a Linux without these files) the same figures come from psutil:
``cpu_times()`` of the machine and of each process (``oneshot``), ``memory_info().rss``, and
``children(recursive=True)`` for the walk.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

try:
    import resource
except ImportError:  # pragma: no cover - Windows (the psutil path: not used there)
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:  # pragma: no cover
    import psutil

__all__ = [
    "KEPT_OPEN",
    "ProcessTree",
    "UsageSample",
    "ROUGH_BELOW_TICKS",
    "ROUGH_RUN_S",
    "TICK_S",
    "fresh_usage",
    "resolution_note",
    "shared_tree",
    "share_between",
    "total_ram_bytes",
]

logger = logging.getLogger(__name__)

#: Descriptors one tree keeps open between samples (``/proc/<pid>/stat`` files and the children
#: files of their threads, the root's first); the rest are opened at each read, so that a tree
#: of thousands of processes cannot exhaust the descriptors of the process that tracks it.
KEPT_OPEN = 32

#: A process's thread list is read again at least every this many walks, even when its thread
#: count has not changed (a thread that ended and one that started between two walks).
_RELIST_EVERY = 10

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


@dataclass(frozen=True)
class UsageSample:
    """Machine and process-tree usage over one sampling interval.

    Attributes:
        seq: sample number, 0 for the baseline taken by :meth:`ProcessTree.start`.
        t: monotonic time of the sample, in s.
        dt_s: seconds since the previous sample (0 for the baseline).
        machine_util: busy fraction of all CPUs over the interval, in [0, 1].
        cpu_share: the tree's share of the machine's busy CPU time over the interval, in [0, 1].
        ram_share: the tree's resident memory over installed RAM at the sample, in [0, 1].
        tree_cpu_s: cumulative CPU seconds of the tree since the start.
        pids: the tree's live process ids at the sample.
        elapsed_s: cumulative seconds since the start (sum of ``dt_s``).
        busy_s: cumulative ``machine_util * dt_s``: seconds of the whole machine busy.
        share_s: cumulative ``cpu_share * dt_s``.
        tree_busy_s: cumulative ``machine_util * cpu_share * dt_s``.
        ram_share_s: cumulative ``ram_share * dt_s`` (trapezoid over the interval).
        busy_cpu_s: cumulative busy CPU seconds of the whole machine (all CPUs) since the start:
            ``cpu_share`` over several samples is the change of ``tree_cpu_s`` over the change
            of this (see :func:`share_between`). Read in clock ticks (:data:`TICK_S`).
        coarse_cpu_s: cumulative CPU seconds of the tree that were read only in clock ticks
            (see :attr:`ProcessTree.coarse_cpu_s`).

    The cumulative integrals let an estimate turn power models into energy without missing an
    interval, however often it reads: e.g. CPU energy = ``idle_w * elapsed_s + (tdp_w - idle_w)
    * busy_s``.
    """

    seq: int
    t: float
    dt_s: float
    machine_util: float
    cpu_share: float
    ram_share: float
    tree_cpu_s: float
    pids: frozenset[int] = field(default_factory=frozenset)
    elapsed_s: float = 0.0
    busy_s: float = 0.0
    share_s: float = 0.0
    tree_busy_s: float = 0.0
    ram_share_s: float = 0.0
    busy_cpu_s: float = 0.0
    coarse_cpu_s: float = 0.0


def share_between(prev: UsageSample, now: UsageSample, kind: str = "cpu") -> float:
    """The tree's share of the machine from sample ``prev`` to sample ``now``, in [0, 1].

    When ``now`` follows ``prev`` directly this is ``now``'s own ``cpu_share`` (or
    ``ram_share``); over several samples (other runs sampled the same tree in between) it is
    the share over the whole interval: CPU, the tree's CPU seconds over the machine's busy CPU
    seconds; RAM, the time-weighted mean of the RSS share.

    Args:
        prev: the earlier sample of the tree.
        now: the later sample.
        kind: ``"cpu"`` or ``"ram"``.
    """
    if now.seq != prev.seq + 1 and now.seq > prev.seq:
        if kind == "cpu":
            d_busy = now.busy_cpu_s - prev.busy_cpu_s
            d_tree = now.tree_cpu_s - prev.tree_cpu_s
            if d_busy > 0:
                return _clamp01(d_tree / d_busy)
            return 1.0 if d_tree > 0 else 0.0
        d_elapsed = now.elapsed_s - prev.elapsed_s
        if d_elapsed > 0:
            return _clamp01((now.ram_share_s - prev.ram_share_s) / d_elapsed)
    return now.cpu_share if kind == "cpu" else now.ram_share


#: A CPU figure read in clock ticks is called rough over a run when it is under this many ticks
#: (100 ms at ``USER_HZ`` 100): one tick more or less is then more than 10 % of it.
ROUGH_BELOW_TICKS = 10
#: The machine's busy time is called rough only over runs shorter than this, in s (ten ticks of
#: wall time): the runs whose interval the ticks cannot resolve. (A longer run on a quiet machine
#: can read few busy ticks too; its share is small then, and so is what a tick more moves.)
ROUGH_RUN_S = ROUGH_BELOW_TICKS * TICK_S


def resolution_note(base: UsageSample, now: UsageSample, *, estimate: bool) -> str:
    """What the clock-tick resolution of CPU times leaves rough in a run's CPU share, or ``""``.

    Over a run from sample ``base`` to sample ``now`` of one tree: the machine's busy CPU time
    (``/proc/stat``) is read in ticks, so a run of a few ms cannot tell how busy the rest of the
    machine was, and of a measured CPU energy (RAPL) the share is rough; of an estimate only the
    idle floor's share is (the busy part is the tree's CPU seconds). CPU time of the tree read
    in ticks (a child's reaped children) is rough too. Nothing is rough once each figure holds
    :data:`ROUGH_BELOW_TICKS` ticks, nor the machine's busy time over a run of
    :data:`ROUGH_RUN_S` or more.

    Args:
        base: the run's first sample.
        now: its latest sample of the same series.
        estimate: the CPU figure is an estimate (else a measured energy shared out).

    Returns:
        e.g. ``"idle-floor share rough: machine busy CPU time under 100 ms, read in 10 ms
        ticks"``: the same words for every run, so that the provenances of a study of short
        trials stay few distinct texts.
    """
    if now.seq <= base.seq or now.t < base.t:
        return ""
    rough = ROUGH_BELOW_TICKS * TICK_S
    within = f"under {_ms(rough)}, read in {_ms(TICK_S)} ticks"
    notes = []
    busy_s = now.busy_cpu_s - base.busy_cpu_s
    if busy_s < rough and now.elapsed_s - base.elapsed_s < ROUGH_RUN_S:
        what = "idle-floor share" if estimate else "process share"
        notes.append(f"{what} rough: machine busy CPU time {within}")
    coarse_s = now.coarse_cpu_s - base.coarse_cpu_s
    if coarse_s > 0 and now.tree_cpu_s - base.tree_cpu_s < rough:
        notes.append(f"CPU time of child processes rough: {within}")
    return "; ".join(notes)


def _ms(seconds: float) -> str:
    """``"10 ms"``, ``"100 ms"``, ``"4 ms"`` (a kernel of ``USER_HZ`` 250)."""
    return f"{seconds * 1000:.3g} ms"


# ---------------------------------------------------------------------------- reading processes


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


# ---------------------------------------------------------------------------- the machine


class _SharedFile:
    """A ``/proc`` file kept open and read from offset 0 at each call (one per process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def read(self, size: int = 256) -> bytes | None:
        for _ in range(2):
            if self._fd < 0:
                try:
                    self._fd = os.open(self.path, _O_FLAGS)
                except OSError:
                    return None
            try:
                return os.pread(self._fd, size, 0)
            except OSError:  # closed behind our back: reopen once
                self._fd = -1
        return None


_PROC_STAT = _SharedFile("/proc/stat")
_PROC_LOADAVG = _SharedFile("/proc/loadavg")


def _busy_and_total(times: object) -> tuple[float, float]:
    """Busy and total CPU seconds from ``psutil.cpu_times()`` (guest time is inside user)."""
    fields = dict(times._asdict())  # type: ignore[attr-defined]
    fields.pop("guest", None)
    fields.pop("guest_nice", None)
    total = sum(fields.values())
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0) + fields.get("steal", 0.0)
    return total - idle, total


def _machine_times(procfs: bool) -> tuple[float, float] | None:
    """Busy and total CPU seconds of the whole machine since boot; ``None`` if unreadable.

    Linux: the ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq softirq steal
    guest guest_nice, in clock ticks; guest time is already inside user and nice, idle time is
    idle + iowait + steal), as psutil's ``cpu_times()`` reads it.
    """
    if procfs:
        data = _PROC_STAT.read()
        if data is not None and data.startswith(b"cpu "):
            end = data.find(b"\n")
            line = (data if end < 0 else data[:end]).split()  # the cpu line only
            try:
                ticks = [int(x) for x in line[1:9]]
            except ValueError:
                ticks = []
            if len(ticks) >= 4:
                ticks += [0] * (8 - len(ticks))
                total = sum(ticks) / _CLK_TCK
                return total - (ticks[3] + ticks[4] + ticks[7]) / _CLK_TCK, total
    import psutil

    try:
        return _busy_and_total(psutil.cpu_times())
    except (psutil.Error, OSError) as e:
        logger.debug("machine CPU times unreadable: %s", e)
        return None


def _cpu_count(procfs: bool) -> float:
    """Logical CPUs whose times the machine's CPU times add up; at least 1.

    The ``cpuN`` lines of ``/proc/stat`` (a container's own where lxcfs shows it its CPUs), else
    the online CPUs.
    """
    if procfs:
        try:
            with open("/proc/stat", "rb") as f:
                n = sum(1 for line in f if line[:3] == b"cpu" and line[3:4].isdigit())
            if n:
                return float(n)
        except OSError:
            pass
    try:
        n = os.sysconf("SC_NPROCESSORS_ONLN")
    except (AttributeError, OSError, ValueError):
        n = os.cpu_count() or 1
    return float(max(n, 1))


def _last_pid() -> int | None:
    """The last process id the kernel handed out (Linux ``/proc/loadavg``), else ``None``."""
    data = _PROC_LOADAVG.read()
    try:
        return None if data is None else int(data.split()[-1])
    except (ValueError, IndexError):
        return None


def total_ram_bytes(procfs: bool | None = None) -> float:
    """Installed memory in bytes: Linux ``sysconf`` (``MemTotal``, without psutil), else psutil.

    Args:
        procfs: read it as on Linux (default: when this is Linux with ``/proc``).
    """
    if _PROCFS if procfs is None else procfs:
        try:
            return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (OSError, ValueError):  # pragma: no cover - sysconf names are there on Linux
            pass
    import psutil

    return float(psutil.virtual_memory().total)


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


# ---------------------------------------------------------------------------- the tree


class ProcessTree:
    """Samples the CPU time and memory of a process tree against the whole machine.

    Args:
        pid: root of the tree (default: this process).
        clock: monotonic clock in seconds (injectable for tests).

    Thread-safe: the sampler threads of several runs sharing the tree (see
    :func:`shared_tree`) call :meth:`sample` in turn. Its users :meth:`attach` and
    :meth:`detach`; the first resets it, later ones add a sample as their baseline. On Linux it
    holds up to :data:`KEPT_OPEN` descriptors of ``/proc`` files while it runs; :meth:`close`
    releases them (the last :class:`~greenprint.meters.MeterSet` using the tree closes it;
    dropping the tree does too).
    """

    def __init__(self, pid: int | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.pid = os.getpid() if pid is None else pid
        self._clock = clock
        self._procfs = _PROCFS
        self._procs: dict[int, _Proc] = {}
        self._children: dict[int, _Children] = {}
        self._departed_s = 0.0
        self._tree_cpu_s = 0.0
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._start_ref = 0.0
        self._started = False
        self._root_alive = False
        self._walked_at_pid: int | None = None
        self._lock = threading.RLock()
        self._users = 0
        self._unreadable: dict[int, str] = {}
        self._cpus = _cpu_count(self._procfs)
        self._coarse_s = 0.0
        self.total_ram_bytes = total_ram_bytes(self._procfs)
        self.last = UsageSample(0, clock(), 0.0, 0.0, 0.0, 0.0, 0.0)
        _LIVE.add(self)

    @property
    def started(self) -> bool:
        """True once :meth:`start` has taken the baseline."""
        return self._started

    @property
    def users(self) -> int:
        """How many attached users (meter sets) share the tree now."""
        return self._users

    @property
    def unreadable(self) -> dict[int, str]:
        """Processes of the tree that exist but could not be read since :meth:`start`.

        pid -> why (``"permission denied reading /proc/123/stat"``); each is left out with its
        children.
        """
        with self._lock:
            return dict(self._unreadable)

    @property
    def cpus(self) -> float:
        """Logical CPUs whose time the machine's CPU times add up (read again at :meth:`start`)."""
        return self._cpus

    @property
    def coarse_cpu_s(self) -> float:
        """CPU seconds counted since the start that were read only in clock ticks (:data:`TICK_S`).

        0 while every CPU second counted came from a finer clock: on Linux, the CPU clock of
        each process of the tree and this process's ``getrusage``. The reaped children of a
        child (their time reaches it in clock ticks only), or a process whose clock cannot be
        read, add to it.
        """
        return self._coarse_s

    @property
    def root_unreadable(self) -> str | None:
        """Why the root cannot be read (it exists), or ``None``: the tree has no share then."""
        with self._lock:
            return self._unreadable.get(self.pid)

    def attribution_note(self) -> str:
        """What the provenance of an attributed figure says about unread processes, or ``""``.

        ``"process share a lower bound: 2 processes of the tree could not be read (permission
        denied reading /proc/123/stat), nor their children"``; for an unreadable root, ``"not
        attributed: permission denied reading /proc/123/stat"``.
        """
        with self._lock:
            root = self._unreadable.get(self.pid)
            if root is not None:
                return f"not attributed: {root}"
            if not self._unreadable:
                return ""
            n = len(self._unreadable)
            first = self._unreadable[min(self._unreadable)]
            noun = "process" if n == 1 else "processes"
            return (
                f"process share a lower bound: {n} {noun} of the tree could not be read "
                f"({first}), nor their children"
            )

    def attach(self) -> UsageSample:
        """Begin using the tree: the first user resets it (:meth:`start`), later ones sample.

        Returns:
            The sample taken now: the caller's baseline, on the series every user shares.
        """
        with self._lock:
            self._users += 1
            if self._users == 1 or not self._started:
                return self.start()
            return self.sample()

    def detach(self) -> None:
        """Stop using the tree; the last user releases its descriptors (:meth:`close`)."""
        with self._lock:
            self._users = max(self._users - 1, 0)
            if self._users == 0:
                self.close()

    def start(self) -> UsageSample:
        """Take the baseline; CPU time is counted from here. Returns the baseline sample."""
        with self._lock:
            return self._start()

    def _start(self) -> UsageSample:
        self._close()
        self._procs.clear()
        self._children.clear()
        self._procfs = _PROCFS
        # the clock process start times are on: boot time on Linux, the epoch for psutil
        self._start_ref = time.clock_gettime(time.CLOCK_BOOTTIME) if self._procfs else time.time()
        self._walked_at_pid = None
        self._departed_s = 0.0
        self._tree_cpu_s = 0.0
        self._unreadable.clear()
        self._coarse_s = 0.0
        self._cpus = _cpu_count(self._procfs)
        self._machine = _machine_times(self._procfs) or (0.0, 0.0)
        self._root_alive = self._add(self.pid, existed=True) is not None
        if self.pid in self._unreadable:
            logger.warning(
                "process %d cannot be read for attribution (%s): its share is unknown",
                self.pid,
                self._unreadable[self.pid],
            )
        elif not self._root_alive:
            logger.warning("process %d not found for attribution", self.pid)
        pids, rss = self._scan(baseline=True)
        self._started = True
        self.last = UsageSample(0, self._clock(), 0.0, 0.0, 0.0, self._share_of_ram(rss), 0.0, pids)
        return self.last

    def sample(self) -> UsageSample:
        """Sample now; returns the usage over the interval since the previous sample."""
        with self._lock:
            if not self._started:
                return self._start()
            return self._sample()

    def _sample(self) -> UsageSample:
        now = self._clock()
        machine = _machine_times(self._procfs)
        if machine is None:  # unreadable now: an interval of no machine time
            machine = self._machine
        d_busy = machine[0] - self._machine[0]
        self._machine = machine
        pids, rss = self._scan(baseline=False)
        prev = self.last
        dt = max(now - prev.t, 0.0)
        # The machine's CPU seconds over the interval are its CPUs times the wall seconds, not
        # /proc/stat's total: that is in 10 ms ticks, and over a run of a few ms reads 0, 1 or 2
        # of them. Neither the tree nor the machine can have used more (the tree's CPU time
        # read a moment after the clock may: the excess is the next interval's); the machine
        # was busy at least as long as the tree (its busy ticks can read less).
        cap = self._cpus * dt
        d_tree = min(max(self._tree_cpu_s - prev.tree_cpu_s, 0.0), cap)
        d_busy = min(max(d_busy, d_tree), cap)
        util = d_busy / cap if cap > 0 else 0.0
        share = d_tree / d_busy if d_busy > 0 else 0.0
        ram_share = self._share_of_ram(rss)
        self.last = UsageSample(
            seq=prev.seq + 1,
            t=now,
            dt_s=dt,
            machine_util=util,
            cpu_share=share,
            ram_share=ram_share,
            tree_cpu_s=prev.tree_cpu_s + d_tree,
            pids=pids,
            elapsed_s=prev.elapsed_s + dt,
            busy_s=prev.busy_s + util * dt,
            share_s=prev.share_s + share * dt,
            tree_busy_s=prev.tree_busy_s + util * share * dt,
            ram_share_s=prev.ram_share_s + 0.5 * (prev.ram_share + ram_share) * dt,
            busy_cpu_s=prev.busy_cpu_s + d_busy,
            coarse_cpu_s=self._coarse_s,
        )
        return self.last

    def close(self) -> None:
        """Release the descriptors the tree keeps open. Idempotent.

        The tree can still be sampled: each file is then read by path (and the descriptors are
        kept again from the next walk on).
        """
        with self._lock:
            self._close()

    def _close(self) -> None:
        for entry in self._procs.values():
            entry.handle.close()
        for reader in self._children.values():
            reader.close()

    def _kept(self) -> int:
        """Descriptors the tree keeps open now."""
        return sum(e.handle.kept for e in self._procs.values()) + sum(
            r.kept for r in self._children.values()
        )

    def _descendants(self) -> list[int]:
        """Every descendant of the root (Linux: children files kept open between walks)."""
        if not (self._procfs and _PROC_CHILDREN):
            return _descendant_pids(self.pid, self._procfs)
        found: list[int] = []
        seen = {self.pid}
        queue = [self.pid]
        kept = self._kept()
        while queue:
            pid = queue.pop()
            reader = self._children.get(pid)
            if reader is None:
                reader = self._children[pid] = _Children(pid)
            entry = self._procs.get(pid)
            kept -= reader.kept
            pids = reader.read(entry.threads if entry is not None else -1, KEPT_OPEN - kept)
            kept += reader.kept
            if pids is None:  # a file that should be there is unreadable: psutil walks
                return _descendant_pids(self.pid, False)
            for child in pids:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
                    found.append(child)
        return found

    def _share_of_ram(self, rss: float) -> float:
        return _clamp01(rss / self.total_ram_bytes) if self.total_ram_bytes else 0.0

    def _add(self, pid: int, *, existed: bool | None, keep: bool = True) -> _Figures | None:
        """Start tracking ``pid``; its figures, or ``None`` if it cannot be read.

        Args:
            pid: the process.
            existed: whether it ran before the baseline (its earlier CPU time is not the
                tree's); ``None``: decide from its start time.
            keep: keep its stat file open (Linux).
        """
        try:
            opened = (_ProcStat if self._procfs else _PsutilProc).open(pid, keep=keep)
        except _Unreadable as e:
            if pid not in self._unreadable:
                logger.info("process %d of the tree left out: %s", pid, e)
            self._unreadable[pid] = str(e)
            return None
        if opened is None:
            return None
        handle, figures = opened
        if existed is None:
            # Linux start times are in clock ticks; psutil's epoch times round boot time to 1 s
            slack_s = 2.0 / _CLK_TCK if self._procfs else 1.0
            existed = figures[4] < self._start_ref - slack_s
        self._procs[pid] = _Proc(handle, figures, existed=existed)
        if not existed:
            self._coarse_s += (0.0 if handle.exact & 1 else figures[1]) + (
                0.0 if handle.exact & 2 else figures[2]
            )
        return figures

    def _scan(self, *, baseline: bool) -> tuple[frozenset[int], float]:
        rss_total = 0.0
        alive: set[int] = set()
        gone: list[int] = []
        for pid, entry in self._procs.items():
            figures = entry.handle.read()
            if figures is None:
                gone.append(pid)
                continue
            exact = entry.handle.exact
            if exact != 3:  # a figure in ticks: what it adds is counted to the tick
                if not exact & 1 and figures[1] > entry.own:
                    self._coarse_s += figures[1] - entry.own
                if not exact & 2 and figures[2] > entry.reaped:
                    self._coarse_s += figures[2] - entry.reaped
            entry.own = max(entry.own, figures[1])
            entry.reaped = max(entry.reaped, figures[2])
            entry.ppid = figures[0]
            entry.threads = figures[5]
            rss_total += figures[3]
            alive.add(pid)
        for pid in gone:
            entry = self._procs.pop(pid)
            entry.handle.close()
            reader = self._children.pop(pid, None)
            if reader is not None:
                reader.close()
            if pid == self.pid:
                self._root_alive = False
            if entry.ppid not in alive or (self._procfs and _ignores_sigchld(entry.ppid)):
                # nobody in the tree reaped it, or the kernel did (its parent ignores SIGCHLD:
                # its time never reaches the parent's reaped children's): keep the CPU time
                # last seen
                self._departed_s += entry.used
        if self._root_alive:
            last_pid = _last_pid()
            # no process created since the last walk: the tree can only have shrunk
            if last_pid is None or last_pid != self._walked_at_pid:
                self._walked_at_pid = last_pid  # read before the walk: a later fork walks again
                for pid in self._descendants():
                    if pid in alive:
                        continue
                    keep = self._kept() < KEPT_OPEN
                    figures = self._add(pid, existed=True if baseline else None, keep=keep)
                    if figures is not None:
                        rss_total += figures[3]
                        alive.add(pid)
                for pid in [p for p in self._children if p not in self._procs]:
                    self._children.pop(pid).close()  # listed, but ended before it was read
        used = self._departed_s + sum(entry.used for entry in self._procs.values())
        self._tree_cpu_s = max(self._tree_cpu_s, used)
        return frozenset(alive), rss_total


# ---------------------------------------------------------------------------- the walk


def _proc_children_supported() -> bool:
    """Whether Linux lists each task's children (``/proc/<pid>/task/<tid>/children``)."""
    try:
        return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    except OSError:  # pragma: no cover
        return False


_PROC_CHILDREN = _PROCFS and _proc_children_supported()


class _Children:
    """One process's children, from the children files of its threads (Linux), kept open.

    The thread list is read again when the process's thread count (from its stat line) differs
    from the list's, and at least every :data:`_RELIST_EVERY` walks; between those, each walk
    is one ``pread`` per thread.
    """

    __slots__ = ("_fds", "_listed", "_walks", "pid")

    def __init__(self, pid: int) -> None:
        self._fds: list[int] = []
        self.pid = pid
        self._listed = -1  # threads when the list was read
        self._walks = 0

    @property
    def kept(self) -> int:
        """Descriptors kept open (one per thread, or none)."""
        return len(self._fds)

    def read(self, threads: int, budget: int) -> list[int] | None:
        """The children now, or ``None`` when a file that should be there cannot be read.

        Args:
            threads: the process's thread count now (-1: unknown: list the threads).
            budget: descriptors it may keep open.
        """
        self._walks += 1
        if self._fds and threads == self._listed and self._walks % _RELIST_EVERY:
            try:
                return [int(pid) for fd in self._fds for pid in _pread_all(fd).split()]
            except (OSError, ValueError):  # closed behind our back: list again
                pass
        self.close()
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return []
        except OSError:
            return None
        keep = 0 < len(tids) <= budget
        pids: list[int] = []
        for tid in tids:
            try:
                fd = os.open(f"/proc/{self.pid}/task/{tid}/children", _O_FLAGS)
            except FileNotFoundError:  # the thread (or the process) ended meanwhile
                continue
            except OSError:
                self.close()
                return None
            try:
                pids.extend(int(pid) for pid in _pread_all(fd).split())
            except (OSError, ValueError):
                os.close(fd)
                self.close()
                return None
            if keep:
                self._fds.append(fd)
            else:
                os.close(fd)
        self._listed = len(tids) if keep else -1
        return pids

    def close(self) -> None:
        """Release the descriptors. Idempotent; safe on a half-built one (see ``_ProcStat``)."""
        fds = getattr(self, "_fds", None) or []
        self._fds = []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - closed behind our back
                pass

    def __del__(self) -> None:
        self.close()


def _ignores_sigchld(pid: int) -> bool:
    """Whether ``pid`` ignores SIGCHLD (``SigIgn`` of ``/proc/<pid>/status``; Linux).

    Its children are then reaped by the kernel as they exit (``signal(SIGCHLD, SIG_IGN)``),
    and their CPU time is added to no one's reaped children's times. ``False`` when the file
    cannot be read. (A parent that set ``SA_NOCLDWAIT`` with a handler is reaped for too, but
    ``/proc`` does not show that flag.)
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (_SIGCHLD - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


#: SIGCHLD's number (17 on x86 and ARM Linux; 18 on MIPS, 20 on SPARC)
_SIGCHLD = int(getattr(signal, "SIGCHLD", 17))


def _pread_all(fd: int) -> bytes:
    """The whole content of a ``/proc`` file from offset 0."""
    data = os.pread(fd, 65536, 0)
    while len(data) % 65536 == 0 and data:
        more = os.pread(fd, 65536, len(data))
        if not more:
            break
        data += more
    return data


def _child_pids(pid: int) -> list[int] | None:
    """Direct children of ``pid``, from the children file of each of its threads.

    ``None`` when a file that should be there cannot be read (the caller falls back to psutil);
    an empty list when the process is gone.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    pids: list[int] = []
    for tid in tids:
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", _O_FLAGS)
        except FileNotFoundError:  # the thread (or the process) ended meanwhile
            continue
        except OSError:
            return None
        try:
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
            pids.extend(int(field) for field in data.split())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
    return pids


def _descendant_pids(root: int, procfs: bool = True) -> list[int]:
    """Every descendant of ``root``, as psutil's ``children(recursive=True)`` lists them.

    On Linux the tree is walked through the children files of its own threads (a few small
    reads for a small tree) instead of psutil's read of the stat file of every process on the
    machine (about 1.5 ms with 100 processes, far more on a busy node). A child that exits while
    a sibling is being listed can hide that sibling from one walk (the kernel's list shifts
    under the read); such a process is found at the next walk, with all its CPU time (it counts
    from its own start), and if it ends first its time reaches the tree through its parent's
    ``children_user/children_system``.
    """
    if procfs and _PROC_CHILDREN:
        found: list[int] = []
        seen = {root}
        queue = [root]
        while queue:
            pids = _child_pids(queue.pop())
            if pids is None:
                break  # unreadable: psutil below
            for pid in pids:
                if pid not in seen:
                    seen.add(pid)
                    queue.append(pid)
                    found.append(pid)
        else:
            return found
    import psutil

    try:
        return [p.pid for p in psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []


def fresh_usage(tree: ProcessTree, seen_seq: int) -> UsageSample:
    """The tree's newest sample, taking one if none is newer than ``seen_seq``.

    Meters in a :class:`~greenprint.meters.MeterSet` share one sample per tick (the set samples
    first); a meter used on its own samples the tree itself.
    """
    if not tree.started:
        tree.start()
    if tree.last.seq > seen_seq:
        return tree.last
    return tree.sample()


# ---------------------------------------------------------------------------- one tree a process

#: Every tree of this process (their locks are made anew in a forked child).
_LIVE: weakref.WeakSet[ProcessTree] = weakref.WeakSet()
#: (root pid, clock) -> the tree the meter sets of this process share for it.
_SHARED: weakref.WeakValueDictionary[tuple[int, Callable[[], float]], ProcessTree] = (
    weakref.WeakValueDictionary()
)
_SHARED_LOCK = threading.Lock()


def shared_tree(
    pid: int | None = None, *, clock: Callable[[], float] = time.monotonic
) -> ProcessTree:
    """The process tree of ``pid`` that every meter set of this process shares.

    Runs nested in one another (or side by side in threads) then read one series of samples,
    so that a nested run's figures are a part of its parent's (see the module's docstring). The
    tree lives while a meter set holds it; a forked child gets trees of its own.

    Args:
        pid: root of the tree (default: this process).
        clock: monotonic clock in s; meter sets on different clocks get different trees.
    """
    key = (os.getpid() if pid is None else pid, clock)
    with _SHARED_LOCK:
        tree = _SHARED.get(key)
        if tree is None:
            tree = _SHARED[key] = ProcessTree(key[0], clock=clock)
        return tree


def _after_fork_in_child() -> None:
    """A forked child shares no tree with its parent, and no lock a parent's thread held."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()
    for tree in list(_LIVE):
        tree._lock = threading.RLock()
        tree._users = 0


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
