"""Sums of an amount some runs did not record: :class:`ForestKnown`, a mixin of RunForest.

Split out of :mod:`greenprint._forest`: the rule for an unknown (``None``) amount, such as the
FPO of a run that counted none. Which runs are unknown, which runs' amounts are covered by an
ancestor that knows its own (:meth:`ForestKnown.covered`), which inclusive sums are complete
(:meth:`ForestKnown.known_sums`), and the runs' FPO read by that rule once for every reader
(:attr:`ForestKnown.fpo_sums`). Pure Python at import, as :mod:`greenprint._forest`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from greenprint._forest_sums import KnownSums
from greenprint._format import known_duration
from greenprint._records import RunRecord

__all__ = ["ForestKnown"]


class ForestKnown:
    """Which runs' amounts are unknown and which sums are complete.

    A mixin of :class:`~greenprint._forest.RunForest`: its fields and the methods declared here
    under ``TYPE_CHECKING`` are RunForest's.
    """

    if TYPE_CHECKING:  # RunForest's fields and what the other parts define
        runs: tuple[RunRecord, ...]
        children: tuple[tuple[int, ...], ...]
        kinds: tuple[str, ...]

        @property
        def inner_order(self) -> tuple[int, ...]: ...
        def column(self, name: str) -> tuple[Any, ...]: ...
        def adds(self, pos: int, *, fpo: bool = False) -> bool: ...
        def nested_sum(
            self, values: Sequence[float | int | None], *, fpo: bool = False, shared: bool = False
        ) -> tuple[list[Any], list[Any]]: ...
        def cost_sums(self, name: str) -> list[Any]: ...

    def covered(self, known: Sequence[bool], *, fpo: bool = False) -> list[bool]:
        """For each run, whether some ancestor whose amount contains it has ``known`` true.

        The chain stops at a child that adds to its parent (see :meth:`adds`).
        """
        out = [False] * len(self.runs)
        for pos in reversed(self.inner_order):  # parents before children; leaves set nothing
            if out[pos] or known[pos]:
                for child in self.children[pos]:
                    if not self.adds(child, fpo=fpo):
                        out[child] = True
        return out

    def known_sums(self, values: Sequence[float | int | None], *, fpo: bool = False) -> KnownSums:
        """:meth:`nested_sum` of ``values``, with which runs are unknown and which sums complete.

        The rule for an unknown (``None``) amount. A run with no amount of its own but with
        children inside it (children that do not add to it: :meth:`adds`) counts as the sum of
        those children (as :meth:`nested_sum` takes it), so it is not unknown itself; of its
        children, those that are unknown are counted instead, each once. So a sweep container
        whose trials all know their FPO, or a trial whose folds all counted theirs, is not
        unknown. A run is *unknown* when it has no amount of its own, no ancestor whose amount
        contains it knows its own (:meth:`covered`), and no child is inside it (a run whose
        children all add to it, such as a node meter over its ranks, stays unknown). A run's
        inclusive sum is *complete* (its amount with its descendants' is known) when its own
        amount is known or it has children inside it whose sums are all complete, and the sum
        of every run that adds to it, or to a run inside it, is complete too. A run inside a
        parent that knows its own amount is not unknown, but its own sum is not complete
        unless it or its children know theirs.

        Args:
            values: one amount per run (same order as ``runs``), ``None`` when unknown.
            fpo: the amounts are FPO (a peer rank's add to its node meter's).

        Returns:
            The :class:`KnownSums`.

        Raises:
            AnalysisError: as :meth:`nested_sum`.
        """
        inclusive, exclusive = self.nested_sum(values, fpo=fpo)
        known = [v is not None for v in values]
        if not self.inner_order:  # no run has children: each is its own leaf of knowledge
            unknown = [not k for k in known]
            return KnownSums(inclusive, exclusive, unknown, known)
        covered = self.covered(known, fpo=fpo)
        unknown = [not k and not c for k, c in zip(known, covered, strict=True)]
        children = self.children
        links = set(self.kinds)
        plain = "remote" not in links and not (fpo and "peer" in links)  # no child adds
        if plain:  # every child is inside its parent: a parent is never unknown
            for pos in self.inner_order:
                unknown[pos] = False
        elif True in unknown:
            for pos in self.inner_order:
                if unknown[pos] and not all(self.adds(c, fpo=fpo) for c in children[pos]):
                    unknown[pos] = False  # a container: its unknown children are counted
        if False not in known:  # every run counted its own
            return KnownSums(inclusive, exclusive, unknown, known)
        complete = known.copy()  # a leaf's: its own
        if plain:  # 100,000 runs nested in 20,000 trials: 40 ms where the loop below takes 60
            for pos in self.inner_order:  # children before parents
                if not complete[pos]:
                    complete[pos] = all(map(complete.__getitem__, children[pos]))
            return KnownSums(inclusive, exclusive, unknown, complete)
        remote = [True] * len(values)  # whether every run that adds to it or under it is known
        for pos in self.inner_order:  # children before parents
            whole = inside = True
            contains = False
            for child in children[pos]:
                if self.adds(child, fpo=fpo):
                    whole = whole and complete[child]
                else:
                    contains = True
                    whole = whole and remote[child]
                    inside = inside and complete[child]
            remote[pos] = whole
            complete[pos] = whole and (known[pos] or (contains and inside))
        return KnownSums(inclusive, exclusive, unknown, complete)

    @cached_property
    def fpo_sums(self) -> KnownSums:
        """:meth:`known_sums` of the runs' FPO (computed once: the report's readers share it).

        Raises:
            AnalysisError: an FPO above the largest float (see :meth:`nested_sum`).
        """
        return self.known_sums(self.column("fpo"), fpo=True)

    @cached_property
    def duration_sums(self) -> KnownSums:
        """:meth:`known_sums` of the runs' durations, a run that recorded none unknown.

        A ``duration_s`` of 0.0 (or NaN) is a run recorded without one (built by hand through
        the ledger API, imported), as the price tag reads it: never a run that took 0 s.
        Computed once, shared by the readers of a time axis (EVP by time, Pareto on time,
        learning curves).
        """
        return self.known_sums(list(map(known_duration, self.column("duration_s"))))

    @cached_property
    def energy_sums(self) -> KnownSums:
        """:meth:`known_sums` of the runs' energy, a run that recorded none unknown.

        A run with no meter (``meters=[]``: :attr:`RunRecord.energy_recorded` false) holds
        0.0 kWh and 0.0 kg CO2-eq, which mean unknown, never 0: it is unknown unless a parent
        that recorded its own contains it, and a run's energy with its descendants' is known
        when :attr:`KnownSums.complete` says so. Only the flags are read: the amounts are
        :meth:`shared_sums`' (concurrent children share their parent's reading), whose sums
        hold the unknown runs' 0.0. CO2-eq is known where energy is.
        """
        return self.known_sums([r.energy_kwh if r.energy_recorded else None for r in self.runs])

    @cached_property
    def energy_all_recorded(self) -> bool:
        """Whether every run recorded its energy (then no energy is unknown)."""
        return all(r.energy_recorded for r in self.runs)

    def known_cost_sums(self, name: str) -> list[Any]:
        """:meth:`cost_sums` of ``"energy_kwh"`` or ``"emissions_kg"``, NaN where unknown.

        A run's energy with its descendants' is unknown where :attr:`energy_sums` is not
        complete (no meter recorded it: ``meters=[]``): NaN, never the 0.0 its record holds,
        so that a ratio (score per kWh), an axis or a mean leaves it out. The shared list
        itself when every run recorded its energy: do not mutate.
        """
        sums = self.cost_sums(name)
        if self.energy_all_recorded:
            return sums
        known = self.energy_sums.complete
        return [v if k else math.nan for v, k in zip(sums, known, strict=True)]
