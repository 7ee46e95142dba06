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

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable

from greenprint.meters._machine import _PROC_LOADAVG as _PROC_LOADAVG
from greenprint.meters._machine import _busy_and_total as _busy_and_total
from greenprint.meters._machine import _cpu_count, _last_pid, _machine_times, total_ram_bytes
from greenprint.meters._process_read import (
    _CLK_TCK,
    _PROCFS,
    TICK_S,
    _Figures,
    _Proc,
    _ProcStat,
    _PsutilProc,
    _Unreadable,
)
from greenprint.meters._tree_walk import (
    _PROC_CHILDREN,
    _Children,
    _descendant_pids,
    _ignores_sigchld,
)
from greenprint.meters._tree_walk import _RELIST_EVERY as _RELIST_EVERY
from greenprint.meters._usage import (
    ROUGH_BELOW_TICKS,
    ROUGH_RUN_S,
    UsageSample,
    _clamp01,
    resolution_note,
    share_between,
)

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

# ProcessTree looks up _PROCFS, _PROC_CHILDREN, _machine_times and _last_pid in this module at
# call time (tests and benchmarks patch them here; _descendant_pids reads _tree_walk's
# _PROC_CHILDREN); _RELIST_EVERY, _PROC_LOADAVG and _busy_and_total are re-exported for them.

#: Descriptors one tree keeps open between samples (``/proc/<pid>/stat`` files and the children
#: files of their threads, the root's first); the rest are opened at each read, so that a tree
#: of thousands of processes cannot exhaust the descriptors of the process that tracks it.
KEPT_OPEN = 32


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
        pids, rss, (now, wall) = self._scan(baseline=True)
        self._started = True
        self.last = UsageSample(
            0, now, 0.0, 0.0, 0.0, self._share_of_ram(rss), 0.0, pids, wall=wall
        )
        return self.last

    def sample(self) -> UsageSample:
        """Sample now; returns the usage over the interval since the previous sample."""
        with self._lock:
            if not self._started:
                return self._start()
            return self._sample()

    def _sample(self) -> UsageSample:
        machine = _machine_times(self._procfs)
        if machine is None:  # unreadable now: an interval of no machine time
            machine = self._machine
        d_busy = machine[0] - self._machine[0]
        self._machine = machine
        pids, rss, (now, wall) = self._scan(baseline=False)
        prev = self.last
        dt = max(now - prev.t, 0.0)
        # The machine's CPU seconds over the interval are its CPUs times the wall seconds, not
        # /proc/stat's total: that is in 10 ms ticks, and over a run of a few ms reads 0, 1 or 2
        # of them. Neither the tree nor the machine can have used more (the tree's CPU time
        # may: a process the walk found is read after the clock; the excess is the next
        # interval's); the machine was busy at least as long as the tree (its busy ticks can
        # read less).
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
            wall=wall,
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

    def _scan(self, *, baseline: bool) -> tuple[frozenset[int], float, tuple[float, float]]:
        """The tree's live pids, its resident bytes, and the sample's time.

        The time, ``(clock, wall)``, is when the known processes' CPU times were read.
        """
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
        # the sample's time: its processes' CPU times were read just now (the walk below, the
        # I/O before, may wait for the GIL beside threads running Python: 0.1-0.3 s seen)
        read_at = (self._clock(), time.time())
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
        return frozenset(alive), rss_total, read_at


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
