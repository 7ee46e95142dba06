"""Runs that read one process at the same time: :class:`ForestThreads`, a mixin of RunForest.

A run of scope ``"process"`` names the process its meters read (provenance ``"process"``);
runs of one host and process whose spans overlap ran in threads of that process, and each read
all of it over its span. Which runs did (:meth:`ForestThreads.thread_groups`, for every parent
at once :attr:`~ForestThreads._thread_parents`; top-level runs with no run around them:
:attr:`~ForestThreads._root_chains`), and what each counts when each stretch of their time
counts once (:meth:`~ForestThreads._count_chains`, with
:func:`greenprint._forest_stretches.group_counts`). :meth:`RunForest.shared_sums
<greenprint._forest.RunForest.shared_sums>` reads them. Pure Python at import, as
:mod:`greenprint._forest`: numpy and :mod:`greenprint._forest_stretches` are imported by the
methods that use them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from greenprint._forest_sums import _PROCESS, ShareOut, _less, _Threads, _threads_only, run_end
from greenprint._records import RunRecord

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._forest_stretches import StretchProfile

__all__ = ["ForestThreads"]


class ForestThreads:
    """Which children of a run, or which top-level runs, read one process at the same time.

    A mixin of :class:`~greenprint._forest.RunForest`: its fields and the methods declared here
    under ``TYPE_CHECKING`` are RunForest's, or
    :class:`~greenprint._forest_shares.ForestShares`'.
    """

    if TYPE_CHECKING:  # RunForest's fields and what the other parts define
        runs: tuple[RunRecord, ...]
        children: tuple[tuple[int, ...], ...]
        roots: tuple[int, ...]
        parents: tuple[int | None, ...]

        @property
        def inner_order(self) -> tuple[int, ...]: ...
        @property
        def _remote(self) -> bool: ...
        @property
        def _spans_columns(
            self,
        ) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[RunRecord, ...]]: ...
        def column(self, name: str) -> tuple[Any, ...]: ...
        def adds(self, pos: int, *, fpo: bool = False) -> bool: ...
        def _inside_spans(self, pos: int) -> list[tuple[float, float, int]]: ...

    def thread_groups(self, pos: int) -> list[tuple[int, ...]]:
        """Children inside the run at ``pos`` that read one process at the same time.

        A run of scope ``"process"`` records which process its meters read (provenance
        ``"process"``: the pid and start time of its tree's root, see
        :mod:`greenprint.tracking`). Children of one host with the same process whose spans
        chain by overlaps (as :meth:`concurrent` judges them) ran in threads of that process
        and each read all of it over its span. Children with no known span, no process
        recorded (runs recorded before runs said it), of machine scope, or that add to the
        parent (:meth:`adds`) are in no group.

        Returns:
            The groups of two or more, in order of time, each with its members in the order
            of ``children[pos]``.
        """
        return [tuple(sorted(child for _, _, child in chain)) for chain in self._chains(pos)]

    def _chains(self, pos: int) -> list[list[tuple[float, float, int]]]:
        """:meth:`thread_groups` as ``(start, end, position)`` of each member, by start.

        Kept per run (energy and CO2-eq ask for the same); do not mutate.
        """
        if pos not in self._thread_parents:
            return []
        found = self._chains_found.get(pos)
        if found is not None:
            return found
        keys = self._process_keys
        spans = [s for s in self._inside_spans(pos) if keys[s[2]] is not None and s[1] > s[0]]
        named = {keys[s[2]] for s in spans}
        by_key: dict[Any, list[tuple[float, float, int]]]
        if len(named) == 1:  # the usual case: one process
            by_key = {named.pop(): spans}
        else:
            by_key = {}
            for span in spans:
                by_key.setdefault(keys[span[2]], []).append(span)
        found = self._chains_found[pos] = _overlap_chains(by_key.values())
        return found

    @cached_property
    def _chains_found(self) -> dict[int, list[list[tuple[float, float, int]]]]:
        return {}

    def _thread_share(
        self, pos: int, inclusive: Sequence[Any], far: Sequence[Any] | None
    ) -> _Threads | None:
        """What the children of :meth:`thread_groups` count (:func:`stretch_shares`).

        Each child's amount inside the parent (its inclusive amount less what adds to it) is
        read over its span (:meth:`_count_chains`). ``None`` when no group of two remains.
        """
        counts, measured, groups, profiles = self._count_chains(self._chains(pos), inclusive, far)
        if not counts:
            return None
        others = [c for c in self.children[pos] if c not in counts]  # inside, not in a group
        if others and self._remote:
            others = [c for c in others if not self.adds(c)]
        if far is None:
            below: Any = sum(counts.values())
        else:
            below = sum(counts[c] + far[c] for c in counts)
        if others:
            below += sum(map(inclusive.__getitem__, others))
        return _Threads(
            members=tuple(counts),
            factors={c: counts[c] / measured[c] for c in counts},
            measured=sum(measured.values()),
            shared=sum(counts.values()),
            below=below,
            groups=tuple(groups),
            latest=max(span[1] for chain in self._chains(pos) for span in chain),
            everyone=not others,
            profiles=profiles,
        )

    def _count_chains(
        self,
        chains: Sequence[Sequence[tuple[float, float, int]]],
        inclusive: Sequence[Any],
        far: Sequence[Any] | None,
    ) -> tuple[
        dict[int, Any],
        dict[int, Any],
        list[tuple[tuple[int, ...], Any, Any]],
        dict[int, StretchProfile],
    ]:
        """What the runs of each chain (runs of one process that ran at once) count.

        Each run's amount (its inclusive amount less what adds to it, ``far``) is read over
        its span, each stretch of the chain's time counted once (:func:`stretch_shares`); a
        run that read nothing (0) is no reading of the process and keeps its 0, and the runs
        that read chain again by their own overlaps (two that a run of 0 joined but that never
        ran at the same time are no group: each ran alone). A group counts at least what its
        largest member read, its members scaled up alike (:func:`group_counts`).

        Returns:
            ``(counts, measured, groups, profiles)``: position -> what it counts, and what it
            measured, for the runs in a group of two or more that read; each group's members,
            count (summed) and largest amount; of each member with runs inside it whose rate
            of counting changes over its span (another member started or ended within it),
            that rate (:class:`~greenprint._forest_stretches.StretchProfile`: the runs
            inside it count by it, :meth:`_scale_down`).
        """
        amount = inclusive.__getitem__ if far is None else _less(inclusive, far)
        counts: dict[int, Any] = {}
        measured: dict[int, Any] = {}
        groups: list[tuple[tuple[int, ...], Any, Any]] = []
        from greenprint._forest_stretches import group_counts, stretch_profile

        profiles: dict[int, StretchProfile] = {}
        read: list[Sequence[tuple[float, float, int]]] = []
        for chain in chains:
            amounts = [amount(child) for _, _, child in chain]
            if 0 in amounts or min(amounts) < 0:  # a run that read nothing: no reading;
                # the runs that read, chained by their own overlaps (not through it)
                spans = [span for span, spent in zip(chain, amounts, strict=True) if spent > 0]
                read += _overlap_chains([spans])
            else:
                read.append(chain)
        for chain in read:
            amounts = [amount(child) for _, _, child in chain]
            members = [child for _, _, child in chain]
            bounds = [(start, end) for start, end, _ in chain]
            got = group_counts(bounds, amounts)
            groups.append((tuple(members), sum(got), max(amounts)))
            measured.update(zip(members, amounts, strict=True))
            counts.update(zip(members, got, strict=True))
            # members with runs inside: those count by the member's rate over their own span
            holders = [span for span in chain if self.children[span[2]]]
            if holders:
                profile = stretch_profile(bounds, amounts)
                starts = [start for start, _, _ in holders]
                ends = [end for _, end, _ in holders]
                for (_, _, child), varies in zip(
                    holders, profile.varying(starts, ends), strict=True
                ):
                    if varies:
                        profiles[child] = profile
        return counts, measured, groups, profiles

    @cached_property
    def _root_chains(self) -> list[list[tuple[float, float, int]]]:
        """Top-level runs that read one process at the same time, as :meth:`_chains` gives them.

        Runs with no parent in the set (trials in threads with no run around them), of one
        host and process (:attr:`_process_keys`), with a known span, whose spans chain by
        overlaps. First, whether any two top-level runs overlap at all, whatever their
        processes: one numpy pass over their spans sorted by start (100,000 trials one after
        another: a few ms); only then are their processes looked at.
        """
        import numpy as np

        roots = self.roots
        if len(roots) < 2:
            return []
        starts, ends, runs = self._spans_columns
        if len(roots) != len(runs):
            starts = tuple(map(starts.__getitem__, roots))
            ends = tuple(map(ends.__getitem__, roots))
            runs = tuple(map(runs.__getitem__, roots))
        last: Sequence[Any] = ends
        if None in ends:  # running runs: their last heartbeat
            last = [run_end(r) if e is None else e for e, r in zip(ends, runs, strict=True)]
        # np.fromiter: a third of np.asarray's time on a tuple of floats (100,000: 2 ms)
        begin = np.fromiter(starts, dtype=float, count=len(starts))
        finish = np.fromiter(last, dtype=float, count=len(last))
        order = np.argsort(begin, kind="stable")
        order = order[((begin > 0.0) & (finish > begin))[order]]  # a known span, by start
        if len(order) < 2:
            return []
        begin, finish = begin[order], finish[order]
        if not bool((np.maximum.accumulate(finish[:-1]) > begin[1:]).any()):
            return []  # one after another (sorted by start: a run overlaps an earlier one
            # when it starts before the latest end so far)
        keys = self._process_keys
        by_key: dict[Any, list[tuple[float, float, int]]] = {}
        for start, end, k in zip(begin.tolist(), finish.tolist(), order.tolist(), strict=True):
            key = keys[roots[k]]
            if key is not None:
                by_key.setdefault(key, []).append((start, end, roots[k]))
        return _overlap_chains(by_key.values())

    def _root_share(self, inclusive: Sequence[Any], far: Sequence[Any] | None) -> ShareOut | None:
        """What the top-level runs of :attr:`_root_chains` count (:attr:`SharedSums.roots`).

        Each stretch of their time once (:meth:`_count_chains`); no run measured them all, so
        nothing caps their count. A chain with an amount that is not a number is left as it
        is (nothing is shared out around it). ``None`` when no group of two remains.
        """
        chains = self._root_chains
        if not chains:
            return None
        chains = [c for c in chains if all(inclusive[p] == inclusive[p] for _, _, p in c)]
        counts, measured, _, profiles = self._count_chains(chains, inclusive, far)
        if not counts:
            return None
        return _threads_only(
            None,
            {c: counts[c] / measured[c] for c in counts},
            tuple(counts),
            sum(measured.values()),
            sum(counts.values()),
            profiles=profiles,
        )

    @cached_property
    def _process_keys(self) -> tuple[Any, ...]:
        """Each run's ``(host, process)`` when it read a process it names, else ``None``.

        The process is the run's provenance ``"process"`` (scope ``"process"`` only). A study's
        runs share a few provenance dictionaries: each is looked at once. Records built with
        only the fields of the rule before runs named their process (a study budget's read of
        the ledger, ``greenprint.ledger._study_cost``) have no provenance: no process known.
        """
        try:
            provenances = self.column("provenance")
        except AttributeError:  # a partial record: its provenance slot was never set
            return (None,) * len(self.runs)
        named: dict[int, Any] = {}
        for dict_id, provenance in zip(map(id, provenances), provenances, strict=True):
            if dict_id not in named:
                named[dict_id] = provenance.get(_PROCESS) if provenance else None
        if not any(named.values()):
            return (None,) * len(provenances)
        keys = tuple(map(named.__getitem__, map(id, provenances)))
        scopes, hosts = self.column("scope"), self.column("host")
        if set(scopes) == {"process"} and len(set(hosts)) == 1:  # one host: the key alone
            return keys
        return tuple(
            None if key is None or scope != "process" else (host, key)
            for key, scope, host in zip(keys, scopes, hosts, strict=True)
        )

    @cached_property
    def _thread_parents(self) -> frozenset[int]:
        """Positions of the runs with two children that read one process at the same time.

        Whether :meth:`thread_groups` finds a group, for every run in one pass: the children
        with a process, sorted by parent, process and start; two in a row of one parent and
        process overlap when the first ends after the second starts (sorted by start, a span
        that overlaps a later one overlaps the next one too).
        """
        import numpy as np

        if not self.inner_order:
            return frozenset()
        keys = self._process_keys
        if keys.count(None) == len(keys):
            return frozenset()
        starts, ends, runs = self._spans_columns
        ids = {key: k for k, key in enumerate(set(keys))}  # a process -> a number
        ids[None] = -1
        key_ids = np.fromiter(map(ids.__getitem__, keys), dtype=np.int64, count=len(keys))
        parents = np.asarray(self.parents, dtype=float)  # a root's None: NaN, never >= 0
        begin = np.asarray(starts, dtype=float)
        finish = np.asarray(
            ends if None not in ends else [run_end(r) if e is None else e for e, r in zip(
                ends, runs, strict=True)],
            dtype=float,
        )  # fmt: skip
        known = (key_ids >= 0) & (parents >= 0) & (begin > 0.0) & (finish > begin)
        if self._remote:
            known &= np.fromiter((not self.adds(c) for c in range(len(keys))), dtype=bool)
        rows = np.flatnonzero(known)
        if len(rows) < 2:
            return frozenset()
        rows = rows[np.lexsort((begin[rows], key_ids[rows], parents[rows]))]
        first, then = rows[:-1], rows[1:]
        overlap = (
            (parents[first] == parents[then])
            & (key_ids[first] == key_ids[then])
            & (finish[first] > begin[then])
        )
        return frozenset(parents[first[overlap]].astype(np.int64).tolist())


def _overlap_chains(
    spans_by_key: Iterable[list[tuple[float, float, int]]],
) -> list[list[tuple[float, float, int]]]:
    """Each list's spans that chain by overlaps, in chains of two or more, in order of time.

    Each list is of one process's ``(start, end, position)`` spans of known length, sorted
    here in place; two overlap when they share some time (one that ends when the next starts
    does not).
    """
    found: list[list[tuple[float, float, int]]] = []
    for spans in spans_by_key:
        if len(spans) < 2:
            continue
        spans.sort()
        chain: list[tuple[float, float, int]] = []
        latest = -math.inf
        for span in spans:
            if span[0] < latest:
                chain.append(span)
                if span[1] > latest:
                    latest = span[1]
                continue
            if len(chain) > 1:
                found.append(chain)
            chain, latest = [span], span[1]
        if len(chain) > 1:
            found.append(chain)
    if len(found) > 1:
        found.sort()
    return found
