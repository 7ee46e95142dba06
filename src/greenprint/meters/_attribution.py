"""Process-tree attribution: how much of the machine's CPU time and memory the tracked tree used.

A :class:`ProcessTree` samples, with psutil, the whole machine's CPU times and the CPU time and
resident memory of a process and all its descendants. Meters turn each sample into a share of the
machine's energy:

* CPU: ``cpu_share = tree CPU seconds / machine busy CPU seconds`` over the interval;
* RAM: ``ram_share = tree RSS / installed RAM`` at the sample.

CPU time of processes that exit between samples is kept:

* a child reaped by a parent inside the tree shows up in that parent's ``children_user`` and
  ``children_system`` times (the kernel adds a waited-for child's total to its parent), so
  short-lived children that were never sampled (compilers under ``make``, data-loader workers)
  are counted in full;
* a process whose parent is not in the tree (the root itself, or an orphan re-parented to init)
  keeps the last CPU time seen for it;
* the cumulative tree CPU time never decreases.

Processes started before :meth:`ProcessTree.start` count from their CPU time at the start.
Descendants are found, on Linux, through the ``children`` file of each thread of each process of
the tree (``/proc/<pid>/task/<tid>/children``), elsewhere through
``psutil.Process.children(recursive=True)``, which reads the stat file of every process on the
machine; on Linux the walk is skipped while the last process id the kernel handed out
(``/proc/loadavg``) has not changed, since no new process can have joined the tree then. A
process once seen stays tracked after it is re-parented (daemonised), but its later children
are not found.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

__all__ = ["ProcessTree", "UsageSample", "fresh_usage"]

logger = logging.getLogger(__name__)


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


class _Proc:
    """One process of the tree: its CPU times at first sight (baseline) and now, in s."""

    __slots__ = ("base_own", "base_reaped", "own", "ppid", "proc", "reaped")

    def __init__(
        self,
        *,
        proc: psutil.Process,
        ppid: int,
        base_own: float,
        base_reaped: float,
        own: float,
        reaped: float,
    ) -> None:
        self.proc = proc
        self.ppid = ppid
        self.base_own = base_own
        self.base_reaped = base_reaped
        self.own = own
        self.reaped = reaped

    @property
    def used(self) -> float:
        return (self.own - self.base_own) + (self.reaped - self.base_reaped)


def _busy_and_total(times: object) -> tuple[float, float]:
    """Busy and total CPU seconds from ``psutil.cpu_times()`` (guest time is inside user)."""
    fields = dict(times._asdict())  # type: ignore[attr-defined]
    fields.pop("guest", None)
    fields.pop("guest_nice", None)
    total = sum(fields.values())
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0) + fields.get("steal", 0.0)
    return total - idle, total


def _last_pid() -> int | None:
    """The last process id the kernel handed out (Linux ``/proc/loadavg``), else ``None``."""
    try:
        with open("/proc/loadavg", "rb") as fh:
            return int(fh.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


class ProcessTree:
    """Samples the CPU time and memory of a process tree against the whole machine.

    Args:
        pid: root of the tree (default: this process).
        clock: monotonic clock in seconds (injectable for tests).

    Not thread-safe: one sampler thread calls :meth:`sample`.
    """

    def __init__(self, pid: int | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.pid = os.getpid() if pid is None else pid
        self._clock = clock
        self._procs: dict[int, _Proc] = {}
        self._departed_s = 0.0
        self._tree_cpu_s = 0.0
        self._machine: tuple[float, float] = (0.0, 0.0)
        self._start_wall = 0.0
        self._started = False
        self._root: psutil.Process | None = None
        self._walked_at_pid: int | None = None
        self.total_ram_bytes = float(psutil.virtual_memory().total)
        self.last = UsageSample(0, clock(), 0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def started(self) -> bool:
        """True once :meth:`start` has taken the baseline."""
        return self._started

    def start(self) -> UsageSample:
        """Take the baseline; CPU time is counted from here. Returns the baseline sample."""
        self._start_wall = time.time()
        try:
            self._root = psutil.Process(self.pid)
        except psutil.Error as e:
            logger.warning("process %d not found for attribution: %s", self.pid, e)
            self._root = None
        self._procs.clear()
        self._walked_at_pid = None
        self._departed_s = 0.0
        self._tree_cpu_s = 0.0
        self._machine = _busy_and_total(psutil.cpu_times())
        pids, rss = self._scan(baseline=True)
        self._started = True
        self.last = UsageSample(0, self._clock(), 0.0, 0.0, 0.0, self._share_of_ram(rss), 0.0, pids)
        return self.last

    def sample(self) -> UsageSample:
        """Sample now; returns the usage over the interval since the previous sample."""
        if not self._started:
            return self.start()
        now = self._clock()
        busy, total = _busy_and_total(psutil.cpu_times())
        d_busy = busy - self._machine[0]
        d_total = total - self._machine[1]
        self._machine = (busy, total)
        previous_cpu = self._tree_cpu_s
        pids, rss = self._scan(baseline=False)
        d_tree = self._tree_cpu_s - previous_cpu
        util = _clamp01(d_busy / d_total) if d_total > 0 else 0.0
        if d_busy > 0:
            share = _clamp01(d_tree / d_busy)
        else:
            share = 1.0 if d_tree > 0 else 0.0
        prev = self.last
        dt = max(now - prev.t, 0.0)
        ram_share = self._share_of_ram(rss)
        self.last = UsageSample(
            seq=prev.seq + 1,
            t=now,
            dt_s=dt,
            machine_util=util,
            cpu_share=share,
            ram_share=ram_share,
            tree_cpu_s=self._tree_cpu_s,
            pids=pids,
            elapsed_s=prev.elapsed_s + dt,
            busy_s=prev.busy_s + util * dt,
            share_s=prev.share_s + share * dt,
            tree_busy_s=prev.tree_busy_s + util * share * dt,
            ram_share_s=prev.ram_share_s + 0.5 * (prev.ram_share + ram_share) * dt,
        )
        return self.last

    def _share_of_ram(self, rss: float) -> float:
        return _clamp01(rss / self.total_ram_bytes) if self.total_ram_bytes else 0.0

    def _members(self) -> dict[int, psutil.Process]:
        members: dict[int, psutil.Process] = {}
        root = self._root
        last_pid = _last_pid()
        quiet = last_pid is not None and last_pid == self._walked_at_pid
        if quiet:
            # no process was created since the last walk: the tree can only have shrunk, and no
            # pid can have been reused (a process that exited fails its read in _scan)
            root = None
        else:
            self._walked_at_pid = last_pid  # read before the walk: a later fork walks again
        if root is not None:
            try:
                if root.is_running():
                    members[root.pid] = root
                    for child in _descendants(root):
                        members[child.pid] = child
            except psutil.Error:
                pass
        # processes seen before but re-parented out of the tree (daemonised) stay tracked
        for pid, entry in self._procs.items():
            if pid not in members:
                if quiet:
                    members[pid] = entry.proc
                    continue
                try:
                    if entry.proc.is_running():
                        members[pid] = entry.proc
                except psutil.Error:
                    continue
        return members

    def _scan(self, *, baseline: bool) -> tuple[frozenset[int], float]:
        members = self._members()
        rss_total = 0.0
        alive: set[int] = set()
        for pid, proc in members.items():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    ppid = proc.ppid()
                    try:
                        rss_total += proc.memory_info().rss
                    except psutil.Error:  # zombies have no memory
                        pass
            except psutil.Error:
                continue
            own = times.user + times.system
            reaped = getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)
            entry = self._procs.get(pid)
            if entry is not None and entry.proc is not proc and not _same_process(entry.proc, proc):
                self._departed_s += entry.used  # the pid was reused: the old process is gone
                entry = None
            if entry is None:
                existed = baseline or _started_before(proc, self._start_wall)
                entry = _Proc(
                    proc=proc,
                    ppid=ppid,
                    base_own=own if existed else 0.0,
                    base_reaped=reaped if existed else 0.0,
                    own=own,
                    reaped=reaped,
                )
                self._procs[pid] = entry
            entry.own = max(entry.own, own)
            entry.reaped = max(entry.reaped, reaped)
            entry.ppid = ppid
            alive.add(pid)
        for pid in [p for p in self._procs if p not in alive]:
            gone = self._procs.pop(pid)
            if gone.ppid not in alive:
                # nobody in the tree reaped it: keep the CPU time last seen
                self._departed_s += gone.used
        used = self._departed_s + sum(entry.used for entry in self._procs.values())
        self._tree_cpu_s = max(self._tree_cpu_s, used)
        return frozenset(alive), rss_total


def _proc_children_supported() -> bool:
    """Whether Linux lists each task's children (``/proc/<pid>/task/<tid>/children``)."""
    try:
        return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    except OSError:  # pragma: no cover
        return False


_PROC_CHILDREN = _proc_children_supported()


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
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                pids.extend(int(field) for field in fh.read().split())
        except FileNotFoundError:  # the thread (or the process) ended meanwhile
            continue
        except (OSError, ValueError):
            return None
    return pids


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    """Every descendant of ``root``, as ``root.children(recursive=True)`` lists them.

    On Linux the tree is walked through the children files of its own threads (a few small
    reads for a small tree) instead of psutil's read of the stat file of every process on the
    machine (about 1.5 ms with 100 processes, far more on a busy node). A child that exits while
    a sibling is being listed can hide that sibling from one walk (the kernel's list shifts
    under the read); such a process is found at the next walk, with all its CPU time (it counts
    from its own start), and if it ends first its time reaches the tree through its parent's
    ``children_user/children_system``.
    """
    if not _PROC_CHILDREN:
        return root.children(recursive=True)
    found: list[psutil.Process] = []
    seen = {root.pid}
    queue = [root.pid]
    while queue:
        pids = _child_pids(queue.pop())
        if pids is None:
            return root.children(recursive=True)
        for pid in pids:
            if pid in seen:
                continue
            seen.add(pid)
            queue.append(pid)
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
    return found


def _same_process(a: psutil.Process, b: psutil.Process) -> bool:
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False


def _started_before(proc: psutil.Process, wall: float) -> bool:
    """True when ``proc`` already ran at the baseline (so its earlier CPU time is not ours)."""
    try:
        return proc.create_time() < wall - 1.0
    except psutil.Error:
        return False


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
