"""What :class:`~greenprint._forest.RunForest`'s sums hand back, and when a run ended.

:class:`KnownSums` (:meth:`~greenprint._forest.RunForest.known_sums`), :class:`SharedSums` and
:class:`ShareOut` (:meth:`~greenprint._forest.RunForest.shared_sums`: how a parent's reading
was shared out among its children), :class:`TimeGroup`
(:meth:`~greenprint._forest.RunForest.time_groups`), a parent's threads of one process
(:class:`_Threads`), :data:`SHARED_COSTS`, :func:`run_end`, and :func:`_fill` (the amounts of
groups that share a reading: one level for all, within floors and caps). Pure Python at import, as
:mod:`greenprint._forest`, which re-exports the public names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from greenprint._records import RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._forest_stretches import StretchProfile

__all__ = [
    "KnownSums",
    "SHARED_COSTS",
    "ShareOut",
    "SharedSums",
    "TimeGroup",
    "run_end",
]


@dataclass(frozen=True)
class KnownSums:
    """Amounts of a forest's runs summed without double counting, and what is unknown.

    See :meth:`RunForest.known_sums` for the rule. Every list has one entry per run, in the
    order of ``RunForest.runs``; they are shared (:attr:`RunForest.fpo_sums`): do not mutate.

    Attributes:
        inclusive: each run's amount with its descendants' (:meth:`RunForest.nested_sum`).
        exclusive: each run's own part of it (summed over all runs: the total).
        unknown: whether the run counts as unknown (a leaf of what is not known: never a
            container whose children inside it are summed instead, never a run inside a
            parent that knows its own amount).
        complete: whether the run's inclusive amount is known: counted from its own amount
            or its children's, with every run that adds to it known.
    """

    inclusive: list[Any]
    exclusive: list[Any]
    unknown: list[bool]
    complete: list[bool]


class TimeGroup(NamedTuple):
    """Children inside one parent whose spans chain by overlaps (:meth:`RunForest.time_groups`).

    Attributes:
        members: their positions (two or more).
        span_s: the length of the stretch of time they cover, first start to last end, s.
        lengths_s: their spans' lengths summed, s (more than ``span_s``: they overlap).
    """

    members: tuple[int, ...]
    span_s: float
    lengths_s: float


class ShareOut(NamedTuple):
    """How one parent shared its measurement out among its concurrent children.

    See :meth:`RunForest.shared_sums` for the rule. Amounts are the parts inside the
    parent's measurement (what adds to a child from another host is in none). A named tuple:
    one is made per sharing parent (100,000 runs in 20,000 trials over parallel folds: 20,000),
    where a frozen dataclass costs ten times as much to make.

    Attributes:
        own: the parent's own amount (``None`` for the top-level runs of
            :attr:`SharedSums.roots`: no parent).
        kept: the amounts of the children inside it that ran alone, summed (kept whole).
        alone: positions of those children.
        together: positions of the children in groups that ran at the same time.
        measured: their amounts summed, as measured.
        shared: what they were scaled to, summed: ``own - kept``, or the floor.
        floored: whether the parent measured less than the least its children spent (``own
            - kept`` below the sum of each group's largest amount): each group counts its
            largest amount, and the parent's sum, ``kept + shared``, is above ``own``.
        factors: position of each child in a group -> its factor (``shared`` over
            ``measured`` for a single group); of each child in :attr:`threads`, its count
            over what it measured.
        threads: positions of the children that read one process at the same time
            (:meth:`RunForest.thread_groups`): each stretch of their time counted once. They
            are in neither ``alone`` nor ``together``, nor in ``kept``, ``measured`` or
            ``shared`` (the groups of the rule above, whose ``own - kept`` leaves them out).
        threads_measured: what they measured, summed.
        threads_shared: what they count, summed: :attr:`threads_counted`, or less where
            that was more than the parent measured beyond its other children (scaled to it).
        threads_counted: what they count by :func:`stretch_shares`, summed.
        short: the parent measured less than its children count (with the threads at their
            count, or at their largest members' amounts: the floor): its own part would be
            negative; it is 0 and the children's count stands.
        profiles: of each child in :attr:`threads` with runs inside it whose rate of
            counting changed over its span, that rate: the runs inside count by it over their
            own spans (:meth:`RunForest._scale_down`).
    """

    own: Any
    kept: Any
    alone: tuple[int, ...]
    together: tuple[int, ...]
    measured: Any
    shared: Any
    floored: bool
    factors: Mapping[int, Any]
    threads: tuple[int, ...] = ()
    threads_measured: Any = 0
    threads_shared: Any = 0
    threads_counted: Any = 0
    short: bool = False
    profiles: Mapping[int, StretchProfile] = MappingProxyType({})


def _threads_only(
    own: Any,
    factors: Mapping[int, Any],
    members: tuple[int, ...],
    measured: Any,
    counted: Any,
    *,
    short: bool = False,
    profiles: Mapping[int, StretchProfile] = MappingProxyType({}),
) -> ShareOut:
    """A :class:`ShareOut` of threads alone, no group sharing a parent's measurement out.

    ``members`` measured ``measured`` and count ``counted``, each by its factor.
    """
    return ShareOut(
        own=own,
        kept=0,
        alone=(),
        together=(),
        measured=0,
        shared=0,
        floored=False,
        factors=factors,
        threads=members,
        threads_measured=measured,
        threads_shared=counted,
        threads_counted=counted,
        short=short,
        profiles=profiles,
    )


@dataclass(frozen=True)
class SharedSums:
    """Energy or CO2-eq of a forest's runs, concurrent children sharing their parent's out.

    See :meth:`RunForest.shared_sums` for the rule. The lists have one entry per run, in the
    order of ``RunForest.runs``; they are shared: do not mutate.

    Attributes:
        inclusive: each run's amount with its descendants' (:meth:`RunForest.nested_sum`),
            concurrent children scaled to their parent's measurement.
        exclusive: each run's own part of it (summed over all runs: the total).
        scaled: position of each parent whose concurrent children were scaled ->
            ``(their amounts' sum as measured, what they were scaled to)``: the parent's own
            amount less what its children that ran alone kept (or the floor: see
            ``shares``), with its threads of one process at their count; what adds to them
            from other hosts is in neither.
        shares: the same parents -> how each shared its amount out (:class:`ShareOut`).
        nonfinite: positions of the runs whose own amount is not a finite number (read as
            NaN: every sum that contains one is NaN).
        roots: how the top-level runs that read one process at the same time (threads with
            no run around them: ``study.optimize(n_jobs=2)`` without a sweep run) count each
            stretch of their time once (:class:`ShareOut`: ``threads``, ``factors``,
            ``threads_measured``, ``threads_shared``; ``own`` is ``None``: no run measured
            them all), or ``None`` when no two did.
        far: each run's part of its inclusive amount that is outside the measurements of
            the runs above it (what adds below it far: :meth:`RunForest.adds_far`, at any
            depth; a remote worker of a trial in a sweep's process), never scaled; the rule's
            own list, which :meth:`RunForest.outside` reads. ``None`` when no run adds to its
            parent.
    """

    inclusive: list[Any]
    exclusive: list[Any]
    scaled: Mapping[int, tuple[Any, Any]]
    shares: Mapping[int, ShareOut] = field(default_factory=dict)
    nonfinite: tuple[int, ...] = ()
    roots: ShareOut | None = None
    far: list[Any] | None = None


#: Costs a meter reads for a whole process or machine over a run's span, which concurrent
#: children share out (:meth:`RunForest.shared_sums`): energy and CO2-eq.
SHARED_COSTS = frozenset({"energy_kwh", "emissions_kg"})

#: Where :meth:`RunForest._sums` keeps the top-level runs' share among the parents' (no run
#: has this position): :attr:`SharedSums.roots`.
_ROOTS = -1

#: The provenance key naming the process whose tree a run's meters read (``"pid 4242 started
#: 1796133461.76"``, recorded by :mod:`greenprint.tracking` for scope ``"process"``).
_PROCESS = "process"


class _Threads(NamedTuple):
    """A parent's children that read one process at the same time (:meth:`RunForest._thread_share`).

    Attributes:
        members: their positions.
        factors: position -> what it counts over what it measured.
        measured: what they measured, summed.
        shared: what they count, summed.
        below: the parent's inside children's inclusive amounts summed, these at their count.
        groups: each group's members, count (summed) and largest amount measured.
        latest: the last end of a member of a group, s.
        everyone: whether every child inside the parent is in a group.
        profiles: the members' rates of counting that change over their spans
            (:meth:`RunForest._count_chains`).
    """

    members: tuple[int, ...]
    factors: dict[int, Any]
    measured: Any
    shared: Any
    below: Any
    groups: tuple[tuple[tuple[int, ...], Any, Any], ...] = ()
    latest: float = -math.inf
    everyone: bool = False
    profiles: Mapping[int, StretchProfile] = MappingProxyType({})


def run_end(run: RunRecord) -> float:
    """When a run ended (Unix time, s).

    Its ``ended_at``, or for a run without one (running, or lost) the later of
    ``started_at + duration_s`` and its last heartbeat.
    """
    if run.ended_at is not None:
        return run.ended_at
    return max(run.started_at + run.duration_s, run.heartbeat_at or run.started_at)


def _nonfinite(values: Sequence[float | int | None]) -> tuple[int, ...]:
    """Positions of the amounts that are infinite or NaN (``None``: unknown, not counted)."""
    known: Sequence[Any] = values if None not in values else [v for v in values if v is not None]
    if math.isfinite(sum(known, 0.0)):  # one pass in C: finite unless one is not (or overflow)
        return ()
    return tuple(p for p, v in enumerate(values) if v is not None and not math.isfinite(v))


def _less(amounts: Sequence[Any], away: Sequence[Any]) -> Callable[[int], Any]:
    """Position -> ``amounts[position] - away[position]``."""
    return lambda pos: amounts[pos] - away[pos]


def _fill(
    room: Any, weights: Sequence[Any], floors: Sequence[Any], caps: Sequence[Any]
) -> tuple[list[Any], bool]:
    """Amounts summing to ``room``: ``clamp(level x weight, floor, cap)``, one level for all.

    Each group's amount is ``level x weight`` within its ``floor`` and ``cap`` (a group at its
    floor or cap leaves the rest to the others), the level chosen so that the amounts sum to
    ``room``. The caller has ``room < sum(caps)``, ``0 <= floor <= weight <= cap``.

    Returns:
        ``(amounts, floored)``; ``floored``: ``room`` is below the floors' sum, and the
        amounts are the floors.
    """
    least = sum(floors)
    if room <= least:
        return list(floors), room < least
    if len(weights) == 1:
        return [room], False
    bounds = list(zip(weights, floors, caps, strict=True))

    def total(level: float) -> Any:
        return sum(min(max(level * w, low), cap) for w, low, cap in bounds)

    # the amounts' sum grows piecewise linearly with the level, bending where a group leaves
    # its floor or reaches its cap: find the piece where it reaches room
    points = sorted({b / w for w, low, cap in bounds if w > 0 for b in (low, cap)})
    first, last = 0, len(points)  # the first point where the sum reaches room, by bisection
    while first < last:
        middle = (first + last) // 2
        if total(points[middle]) >= room:
            last = middle
        else:
            first = middle + 1
    lower = points[first - 1] if first else 0.0
    upper = points[first] if first < len(points) else math.inf
    fixed = free = 0
    for w, low, cap in bounds:
        if w <= 0 or cap / w <= lower:  # at its cap over the piece (a group of zeros: 0)
            fixed += cap
        elif low / w >= upper:  # at its floor over the piece
            fixed += low
        else:
            free += w
    if not free:  # only by rounding: the piece ends where the sum reaches room
        return [min(max(upper * w, low), cap) for w, low, cap in bounds], False
    level = (room - fixed) / free
    return [min(max(level * w, low), cap) for w, low, cap in bounds], False
