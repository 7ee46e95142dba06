"""A parent's reading shared out among its children: :class:`ForestShares`, a mixin of RunForest.

The loop that sums a cost over the forest without double counting (:meth:`ForestShares._sums`,
behind :meth:`RunForest.nested_sum <greenprint._forest.RunForest.nested_sum>` and
:meth:`RunForest.shared_sums <greenprint._forest.RunForest.shared_sums>`, whose docstring gives
the rule), and, for energy and CO2-eq, the sharing of a parent's measurement among children that
ran at the same time: their spans and groups (:meth:`~ForestShares.time_groups`,
:meth:`~ForestShares.outlived`), what each group gets (:meth:`~ForestShares._share_out`, with
:func:`~greenprint._forest_sums._fill`), and the scaling of the runs inside each parent, by a
factor or by a rate that changed over a run's span (:meth:`~ForestShares._scale_down`). Threads
of one process are :mod:`greenprint._forest_threads`'. Pure Python at import, as
:mod:`greenprint._forest`: numpy is imported by the methods that use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import AnalysisError
from greenprint._forest_sums import (
    _ROOTS,
    ShareOut,
    TimeGroup,
    _fill,
    _less,
    _nonfinite,
    _Threads,
    _threads_only,
    run_end,
)
from greenprint._records import RunRecord
from greenprint._validate import FPO_MAX

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from greenprint._forest_stretches import StretchProfile

__all__ = ["ForestShares"]


class ForestShares:
    """How a forest's sums share a parent's reading out among its concurrent children.

    A mixin of :class:`~greenprint._forest.RunForest`: its fields and the methods declared here
    under ``TYPE_CHECKING`` are RunForest's, or
    :class:`~greenprint._forest_threads.ForestThreads`'.
    """

    if TYPE_CHECKING:  # RunForest's fields and what the other parts define
        runs: tuple[RunRecord, ...]
        children: tuple[tuple[int, ...], ...]
        kinds: tuple[str, ...]

        @property
        def inner_order(self) -> tuple[int, ...]: ...
        @property
        def _remote(self) -> bool: ...
        @property
        def _apart(self) -> tuple[bool, ...]: ...
        @property
        def _thread_parents(self) -> frozenset[int]: ...
        @property
        def _root_chains(self) -> list[list[tuple[float, float, int]]]: ...
        def column(self, name: str) -> tuple[Any, ...]: ...
        def adds(self, pos: int, *, fpo: bool = False) -> bool: ...
        def _beyond_float(
            self, values: Sequence[float | int | None], *, fpo: bool
        ) -> AnalysisError: ...
        def _thread_share(
            self, pos: int, inclusive: Sequence[Any], far: Sequence[Any] | None
        ) -> _Threads | None: ...
        def _root_share(
            self, inclusive: Sequence[Any], far: Sequence[Any] | None
        ) -> ShareOut | None: ...

    def concurrent(self, pos: int) -> bool:
        """Whether two children inside the run at ``pos`` ran at the same time.

        Inside: not a child that adds to it (:meth:`adds`). Each child's span runs from its
        ``started_at`` to its ``ended_at`` (a running run's: :func:`run_end`). Two spans overlap
        when they share some time: spans that only touch (one ends when the next starts), or a
        span of no length, do not. A child with no start time (``started_at`` 0, a hand-built
        :class:`~greenprint.RunRecord`'s default: every run greenprint records has its clock's)
        has no known span and overlaps nothing. (Whether :meth:`time_groups` finds a group.)
        """
        return bool(self._groups(pos, self._inside_spans(pos))[1])

    def time_groups(self, pos: int) -> tuple[list[int], list[TimeGroup]]:
        """The children inside the run at ``pos``: those that ran alone, and groups of the rest.

        A group is a set of children whose spans chain by overlaps (as :meth:`concurrent`
        judges them: two of a group may not overlap, but a third overlaps both), so it spans
        one stretch of time, from its first start to its last end; different groups, and a
        child that ran alone, share no time. A child with no known span (no start time) or a
        span of no length ran alone.

        Returns:
            ``(alone, groups)``: positions of the children that ran alone, in the order of
            ``children[pos]``; the groups of two or more, in order of time, each with its
            members in the order of ``children[pos]``.
        """
        return self._groups(pos, self._inside_spans(pos))

    def _groups(
        self, pos: int, spans: list[tuple[float, float, int]]
    ) -> tuple[list[int], list[TimeGroup]]:
        """:meth:`time_groups`, from the spans :meth:`_inside_spans` gave."""
        groups: list[TimeGroup] = []
        members: list[int] = []
        first = latest = lengths = -math.inf
        spans.sort()
        for start, end, child in spans:
            if not end > start:  # no time: shares none
                continue
            if start < latest:
                members.append(child)
                if end > latest:
                    latest = end
                lengths += end - start
                continue
            if len(members) > 1:
                members.sort()
                groups.append(TimeGroup(tuple(members), latest - first, lengths))
            members, first, latest, lengths = [child], start, end, end - start
        if len(members) > 1:
            members.sort()
            groups.append(TimeGroup(tuple(members), latest - first, lengths))
        inside = self.children[pos]
        if self._remote:
            inside = tuple(c for c in inside if not self.adds(c))
        if len(groups) == 1 and len(groups[0].members) == len(inside):  # all at once
            return [], groups
        grouped = {c for group in groups for c in group.members}
        return [c for c in inside if c not in grouped], groups

    def outlived(self, pos: int) -> bool:
        """Whether a child inside the run at ``pos`` ended after it (the run has ended).

        A main-thread run stopped while its worker threads' runs went on (threads not joined, a
        signal): what they spent after the parent's ``ended_at`` is in no measurement of the
        parent's. A child's end is its ``ended_at`` (a running one's: :func:`run_end`); a child
        with no start time has no known span (see :meth:`concurrent`); a running parent has not
        ended (its children's last heartbeats may lead its own by a flush).
        """
        return self._outlived(pos, self._inside_spans(pos))

    def _outlived(self, pos: int, spans: list[tuple[float, float, int]]) -> bool:
        """:meth:`outlived`, from the spans :meth:`_inside_spans` gave."""
        parent_end = self.column("ended_at")[pos]
        return parent_end is not None and any(end > parent_end for _, end, _ in spans)

    def _inside_spans(self, pos: int) -> list[tuple[float, float, int]]:
        """``(start, end, position)`` of each child inside the run at ``pos`` with a known start.

        Inside: not a child that adds to it (:meth:`adds`: only a remote link adds energy). A
        child's end is its ``ended_at`` (a running one's: :func:`run_end`); a child with no
        start time (``started_at`` 0) has no known span and is left out.
        """
        starts, ends, runs = self._spans_columns
        return [
            (starts[child], run_end(runs[child]) if ends[child] is None else ends[child], child)
            for child in self.children[pos]
            if starts[child] > 0.0 and not (self._remote and self.adds(child))
        ]

    @cached_property
    def _spans_columns(self) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[RunRecord, ...]]:
        """``started_at`` and ``ended_at`` of every run, and the runs (:meth:`_inside_spans`)."""
        return self.column("started_at"), self.column("ended_at"), self.runs

    def _share_out(
        self,
        pos: int,
        own: Any,
        inside: Any,
        inclusive: Sequence[Any],
        far: Sequence[Any] | None,
        threads: _Threads | None = None,
    ) -> ShareOut | None:
        """How the run at ``pos`` shares ``own`` out (:meth:`shared_sums`), or ``None``.

        ``None`` when no two children inside it ran at the same time, or when one of them ended
        after it did (:meth:`outlived`). ``inside``: its inside children's inclusive amounts
        less what adds to them (``far``), summed; ``inclusive``: every run's inclusive amount,
        its children's final. ``threads``: its children that read one process at the same
        time, and what they count (:meth:`_thread_share`): each of their groups shares the
        parent's measurement as a group of the rule does, weighed at its count, capped at it
        and floored at its largest member's amount (never above its count).
        """
        if threads is not None and threads.everyone:  # every child in a threads' group
            parent_end = self.column("ended_at")[pos]
            if parent_end is not None and threads.latest > parent_end:
                return None  # outlived: no truth for the whole
            alone: list[int] = []
            groups: list[TimeGroup] = []
        else:
            spans = self._inside_spans(pos)
            if self._outlived(pos, spans):
                return None  # no truth for the whole
            if threads is not None:
                spans = [span for span in spans if span[2] not in threads.factors]
            alone, groups = self._groups(pos, spans)
            if threads is not None:
                alone = [c for c in alone if c not in threads.factors]
            elif not groups:
                return None

        # a child's amount inside this parent's measurement
        amount = inclusive.__getitem__ if far is None else _less(inclusive, far)
        if threads is None and not alone and len(groups) == 1:  # one group (the usual case)
            members = groups[0].members
            largest = max(map(amount, members))
            # the old rule, float for float (``inside`` as the caller summed it), or the floor
            shared = own if own >= largest else largest
            return ShareOut(
                own=own,
                kept=0,
                alone=(),
                together=members,
                measured=inside,
                shared=shared,
                floored=own < largest,
                factors=dict.fromkeys(members, shared / inside),
            )
        kept: Any = sum(map(amount, alone)) if alone else 0
        measured = [sum(map(amount, group.members)) for group in groups]
        largest_of = [max(map(amount, group.members)) for group in groups]
        weights = [
            min(max(m * group.span_s / group.lengths_s, low), m)
            for m, low, group in zip(measured, largest_of, groups, strict=True)
        ]
        if threads is None:
            amounts, floored = _fill(own - kept, weights, largest_of, measured)
        else:  # the threads' groups beside them: weighed and capped at their count
            counts = [count for _, count, _ in threads.groups]
            amounts, floored = _fill(
                own - kept,
                weights + counts,
                largest_of + [min(big, count) for _, count, big in threads.groups],
                measured + counts,
            )
            amounts, threaded = amounts[: len(groups)], amounts[len(groups) :]
        factors: dict[int, Any] = {}
        for group, m, got in zip(groups, measured, amounts, strict=True):
            factor = 1 if got == m else got / m  # got < m: m > 0 (a group of zeros: 1)
            factors.update(dict.fromkeys(group.members, factor))
        if threads is None:
            return ShareOut(
                own=own,
                kept=kept,
                alone=tuple(alone),
                together=tuple(c for group in groups for c in group.members),
                measured=measured[0] if len(measured) == 1 else sum(measured),
                shared=amounts[0] if len(amounts) == 1 else sum(amounts),
                floored=floored,
                factors=factors,
            )
        for (members, count, _), got in zip(threads.groups, threaded, strict=True):
            for child in members:  # its part of its group's count, the group scaled to got
                factors[child] = threads.factors[child] * (1 if got == count else got / count)
        return ShareOut(
            own=own,
            kept=kept,
            alone=tuple(alone),
            together=tuple(c for group in groups for c in group.members),
            measured=sum(measured),
            shared=sum(amounts),
            floored=floored,
            factors=factors,
            threads=threads.members,
            threads_measured=threads.measured,
            threads_shared=sum(threaded),
            threads_counted=threads.shared,
            short=floored,
            profiles=threads.profiles,
        )

    def _sums(
        self, values: Sequence[float | int | None], *, fpo: bool, shared: bool
    ) -> tuple[list[Any], list[Any], dict[int, ShareOut], list[Any] | None]:
        """:meth:`nested_sum`, the runs whose concurrent children were scaled, and what is far.

        Returns:
            ``(inclusive, exclusive, shares, far)``; ``shares``: position of a parent whose
            concurrent children shared its measurement out -> how (:class:`ShareOut`);
            ``far``: :attr:`SharedSums.far` (``None`` when no run adds to its parent).
        """
        import numpy as np

        if shared and _nonfinite(values):  # no measurement: NaN, never shared (shared_sums)
            values = [v if v is None or math.isfinite(v) else math.nan for v in values]
        if not self.inner_order:
            try:
                as_float = np.asarray(values, dtype=float)
            except OverflowError:  # an integer beyond every float
                raise self._beyond_float(values, fpo=fpo) from None
            if bool((as_float > 0).all()) and not (shared and self._root_chains):
                # no run has children and every amount is known and positive (a search of
                # trials, none in threads of one process at once): both are the amounts
                # (100,000 runs: 3 ms where the loop takes 11)
                return list(values), list(values), {}, None
        # Every run as a leaf first, in one pass: its own amount, 0 when unknown or negative,
        # with the arithmetic of the loop below; then the runs with children, children before
        # parents. A leaf's inclusive amount is its exclusive one except for -0.0 (``-0.0 +
        # 0`` is ``0.0``): a copy when no amount is zero.
        exclusive: list[Any] = [0 if v is None or v < 0 else v - 0 for v in values]
        inclusive: list[Any] = (
            exclusive.copy()
            if 0 not in exclusive
            else [0 if v is None or v < 0 else v + 0 for v in values]
        )
        if fpo and exclusive and max(exclusive) > FPO_MAX:  # 100,000 runs: 1 ms
            raise self._beyond_float(values, fpo=fpo)
        children = self.children
        scale: dict[int, ShareOut] = {}  # shared: parent -> how it shared its amount out
        # shared: parents with children that read one process at the same time (threads)
        threaded = self._thread_parents if shared else frozenset()
        # with children that add to their parent (other hosts; for FPO, a node meter's peer
        # ranks): each run's inclusive amount from what adds to it or to a run inside it, in
        # no measurement of the runs above (no scaling touches it, no parent's figure holds it)
        # A run that adds to its parent here but recorded itself inside its own parent's
        # measurement (a rank read under its training's rank 0, both in a sweep's process
        # tree) is outside only the run it adds to: what it adds is far no higher.
        links = set(self.kinds)
        adding = "remote" in links or (fpo and "peer" in links)
        far: list[Any] | None = [0] * len(values) if adding else None
        apart = self._apart if adding else ()
        for pos in self.inner_order:
            # outside: what adds to the runs inside this one (in no figure of its own);
            # beyond: what adds to it that is outside the runs above it too
            below = added = outside = beyond = 0
            for child in children[pos]:
                if self.adds(child, fpo=fpo):
                    added += inclusive[child]
                    if far is not None:  # outside the runs above too (adds_far), or not
                        beyond += inclusive[child] if apart[child] else far[child]
                else:
                    below += inclusive[child]
                    if far is not None:
                        outside += far[child]
            if far is not None:
                far[pos] = beyond + outside
            own = values[pos]
            if shared:
                if below != below or own != own or added != added:  # NaN: never shared
                    inclusive[pos] = exclusive[pos] = math.nan
                    continue
                threads = self._thread_share(pos, inclusive, far) if pos in threaded else None
                if threads is not None:  # runs of one process at once: each stretch once
                    below = threads.below
                if own is not None and below - outside > own > 0:
                    # concurrent children share their parent's measurement out (not outlived)
                    share = self._share_out(pos, own, below - outside, inclusive, far, threads)
                    if share is not None:
                        scale[pos] = share
                        if not share.floored:
                            inclusive[pos] = own + outside + added
                        elif threads is None:
                            inclusive[pos] = share.kept + share.shared + outside + added
                        else:
                            inclusive[pos] = (
                                share.kept + share.shared + share.threads_shared + outside + added
                            )
                        exclusive[pos] = own - own
                        continue
                if threads is not None:  # the parent keeps the rest, never less than 0
                    scale[pos] = _threads_only(
                        own,
                        threads.factors,
                        threads.members,
                        threads.measured,
                        threads.shared,
                        short=own is not None and below - outside > own,
                        profiles=threads.profiles,
                    )
            # a run on another host under a run inside this one (a remote worker of a trial
            # in the sweep's process) is in no figure of this run's: it adds, never maxed away
            total: Any
            if own is None:
                total = below
                exclusive[pos] = total - below
            elif not outside:  # nothing far inside it: the rule as always, float for float
                total = max(own, below)
                exclusive[pos] = total - below
            else:
                inside = below - outside
                total = max(own, inside) + outside
                # its own part from what it measured, not total - below: (a - b) + b can round
                # past a, and a parent that measured no more than its children held -1e-16
                exclusive[pos] = max(own, inside) - inside
            inclusive[pos] = total + added
        if shared:  # top-level runs in threads of one process: each stretch once
            roots = self._root_share(inclusive, far)
            if roots is not None:
                scale[_ROOTS] = roots
        if scale:
            self._scale_down(inclusive, exclusive, scale, far)
        return inclusive, exclusive, scale, far

    def _scale_down(
        self,
        inclusive: list[Any],
        exclusive: list[Any],
        scale: Mapping[int, ShareOut],
        far: list[Any] | None,
    ) -> None:
        """Scale the runs inside each parent in ``scale`` by their factors, in place.

        Parents before children: a run inside a parent that shared its amount out has its
        exclusive amount, and the part of its inclusive amount inside its own measurement,
        multiplied by its factor there (1 for a child that ran alone) times the factors of the
        runs above it; what adds to it (``far``) is kept. The top-level runs in threads
        (``scale[_ROOTS]``) are multiplied by their own factors, their descendants with them.

        A run in threads whose rate of counting changed over its span (another thread started
        or ended within it: :attr:`ShareOut.profiles`) passes no single factor down: each run
        inside it takes the rate's mean over its own span (a trial that ran while a sweep in
        another thread ran too counts half of it, not its sweep's mean over a span it partly
        ran alone); its descendants with it. Such a run's own part is what is left of its
        count beyond theirs; where they would count more than it, they are scaled down to it
        (its own part 0).
        """
        children = self.children
        remote = self._remote
        apart = self._apart if remote else ()
        roots = scale.get(_ROOTS)  # top-level runs in threads: their own factors
        # a run below a scaled parent (or a top-level run in threads) -> its factor
        factor: dict[int, Any] = {} if roots is None else dict(roots.factors)
        # a run counting by a rate that changed over the span of a run in threads (that run or
        # one inside it) -> (the rate, the run's factor per unit of the rate's mean)
        rated: dict[int, tuple[StretchProfile, Any]] = {}
        self._prepare_rates(scale)
        if roots is not None:
            for root, rates in roots.profiles.items():
                self._rate(rated, root, rates, factor[root])
        # a run whose own part is what its count leaves beyond the runs inside it -> that part
        rests: dict[int, Any] = {}
        for pos in reversed(self.inner_order):  # parents before children
            above = factor.get(pos)
            share = scale.get(pos)
            if share is None and above is None:
                continue
            own = {} if share is None else share.factors
            profiles = {} if share is None else share.profiles
            rate = rated.get(pos)
            inside: list[int] = []
            for child in children[pos]:
                if remote and self.adds(child) and (far is None or apart[child]):
                    continue  # outside every measurement above: never scaled
                # inside this run, or adding to it but inside the runs above (a rank its job
                # linked under its training's rank 0, in the sweep's process tree): scaled
                # with it, by the factor from above (it is in no share of this run's own)
                inside.append(child)
                f = own.get(child)
                if rate is None:
                    base = above
                else:  # the rate's mean over the child's span (worked out ahead)
                    mean = rate[0].known.get(child)
                    base = above if mean is None else rate[1] * mean
                if f is None:
                    if base is not None:
                        factor[child] = base
                        if rate is not None:
                            rated[child] = rate
                    continue
                factor[child] = f if base is None else base * f
                profile = profiles.get(child)
                if profile is not None:
                    self._rate(rated, child, profile, factor[child])
                elif rate is not None:
                    rated[child] = (rate[0], rate[1] * f)
            if rate is not None and inside:  # their factors are final from here
                rests[pos] = self._fit(pos, inside, factor, rated, inclusive, far)
        for pos, f in factor.items():
            rest = rests.get(pos)
            exclusive[pos] = exclusive[pos] * f if rest is None else rest
            if far is None or not far[pos]:
                inclusive[pos] *= f
            else:
                inclusive[pos] = (inclusive[pos] - far[pos]) * f + far[pos]

    def _prepare_rates(self, scale: Mapping[int, ShareOut]) -> None:
        """Work out the rates' means over the spans of the runs that will ask for them.

        Each run with a rate (:attr:`ShareOut.profiles`) and every run inside it, in one numpy
        pass per rate (:meth:`~greenprint._forest_stretches.StretchProfile.prepare`).
        """
        import numpy as np

        asking: dict[int, tuple[StretchProfile, list[int]]] = {}
        children = self.children
        for share in scale.values():
            for member, profile in share.profiles.items():
                found = asking.setdefault(id(profile), (profile, []))[1]
                stack = [member]
                while stack:  # the member and every run inside it
                    pos = stack.pop()
                    found.append(pos)
                    stack.extend(children[pos])
        if not asking:
            return
        starts, ends = self._span_arrays
        for profile, positions in asking.values():
            at = np.asarray(positions, dtype=np.int64)
            profile.prepare(positions, starts[at], ends[at])

    @cached_property
    def _span_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Each run's start and end (a running run's last heartbeat), s; NaN where unknown."""
        import numpy as np

        starts, ends, runs = self._spans_columns
        begin = np.fromiter(starts, dtype=float, count=len(starts))
        last = [run_end(r) if e is None else e for e, r in zip(ends, runs, strict=True)]
        finish = np.fromiter(last, dtype=float, count=len(last))
        unknown = ~((begin > 0.0) & (finish > begin))
        begin[unknown] = np.nan
        finish[unknown] = np.nan
        return begin, finish

    def _rate(
        self,
        rated: dict[int, tuple[StretchProfile, Any]],
        pos: int,
        profile: StretchProfile,
        factor: Any,
    ) -> None:
        """Record that the runs inside ``pos`` count by ``profile`` (``pos`` counts ``factor``)."""
        mean = profile.known.get(pos)  # worked out ahead (_prepare_rates)
        if mean:
            rated[pos] = (profile, factor / mean)

    def _fit(
        self,
        pos: int,
        inside: Sequence[int],
        factor: dict[int, Any],
        rated: dict[int, tuple[StretchProfile, Any]],
        inclusive: Sequence[Any],
        far: Sequence[Any] | None,
    ) -> Any:
        """Scale the runs inside ``pos`` down to its count where, by its rate, they exceed it.

        Returns:
            What its count leaves beyond theirs: its own part (0 when they were scaled down).
        """
        get = factor.get
        if far is None:
            theirs = sum(inclusive[c] * get(c, 1) for c in inside)
            mine = inclusive[pos] * factor[pos]
        else:
            theirs = sum((inclusive[c] - far[c]) * get(c, 1) for c in inside)
            mine = (inclusive[pos] - far[pos]) * factor[pos]
        if not theirs > mine:
            return mine - theirs
        ratio = mine / theirs
        for child in inside:
            factor[child] = get(child, 1) * ratio
            found = rated.get(child)
            if found is not None:
                rated[child] = (found[0], found[1] * ratio)
        return mine - mine
