"""A process tree's usage sample, and the shares and notes read from two samples.

:class:`UsageSample` holds the cumulative integrals a meter turns into energy;
:func:`share_between` gives the tree's share of the machine over any interval of one series of
samples, :func:`resolution_note` what the clock-tick resolution of CPU times leaves rough in
it. The samples are taken by :class:`~greenprint.meters._attribution.ProcessTree`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from greenprint.meters._process_read import TICK_S


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
        wall: wall-clock time of the sample, in s since the epoch (read beside ``t``; 0.0 where
            not recorded): the time a run's reading of this sample is stamped with (see
            :attr:`~greenprint.meters.MeterSet.read_at`).

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
    wall: float = 0.0


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


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
