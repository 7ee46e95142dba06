"""A run's FPO with its children's, live: what a per-run FPO budget counts.

A budget on a run covers everything inside it (see ``docs/budgets.md``). Energy, CO2-eq and time
are: the run's meter reads its process (or machine) over its whole span, children and their child
processes included. Floating-point operations are not: each run counts its own (``run.add_fpo``,
``run.set(fpo=)``, an integration's ``count_fpo``), so the folds of a trial, or the Lightning fit
inside a learning-curve run, count operations that the trial itself never sees. A
:class:`RunNode` per run keeps, in this process, which runs are nested in it, and sums their
FPO by the rule the price tag and the report read a study with
(:meth:`greenprint._forest.RunForest.nested_sum`): a parent's own count contains the
counts of the runs inside it (an integration that counts a nested fit and adds it to the trial
too, ``greener.compare``'s container that adds its variants' sum), so a run's FPO with its
children's is ``max(own, sum of its children's)``, plus what its children on another host (or
outside its process tree: ``contained`` false) add to it. Nothing is counted twice, and the
figure a budget stops at is the one the report will show for the run.

Children in this process (the same thread, worker threads, asyncio tasks) are read from memory
as they count. Children in other processes (a script started with ``subprocess`` inside the run,
``greenprint run`` inside it: ``GREENPRINT_PARENT_RUN``) record their FPO in the ledger, flushed
every ``flush_interval_s``; a run with a per-run FPO budget and a ledger reads them there, for
itself and for the runs of this process nested in it, every flush interval (less often when a
read takes more than 1 % of it) and once more at its final budget check, and each run nested in
such a run reads its own once more when it ends. Their figure lags by up to their flush
interval. A ledger that cannot be read keeps the last figures (logged, never raised).

This module keeps no reference to a run that has ended: an ended child's FPO with its
children's is folded into its parent's :attr:`RunNode.ended_fpo`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import LedgerError
from greenprint._forks import renew_after_fork

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord

__all__ = ["RunNode", "outside_fpo"]

logger = logging.getLogger(__name__)

#: Guards every node's ``kids`` and ``ended_fpo`` (held for a few attribute updates only, never
#: around a run's lock or a ledger read).
_LOCK = threading.Lock()
renew_after_fork(globals(), "_LOCK")  # a forked child starts with a free lock


class RunNode:
    """One run's place among this process's runs, for the FPO its budgets count.

    Args:
        run: the run (anything with an ``_fpo`` attribute: its own count, or ``None``).
        run_id: its id.
        parent: the node of its parent when the parent is a run of this process, else ``None``.
        reads_ledger: whether the run reads its children in other processes from its ledger
            (it has a per-run FPO budget and a ledger).

    Attributes:
        run: the run.
        run_id: its id.
        parent: its parent's node, or ``None``.
        kids: the nodes of its children in this process that have not ended.
        ended_fpo: the FPO of its children in this process that have ended, each with its
            children's.
        outside: the FPO of its children in other processes, each with its own descendants',
            from the ledger: ``(inside, adding)`` (inside its measurement, or added to it).
        inner_ids: the ids of the runs of this process nested in the run that reads the
            ledger for it (shared with that run's node), or ``None`` when no run does.
        collected: records of the runs nested in it as they end, when asked for
            (:meth:`collect`), else ``None``.
    """

    __slots__ = (
        "collected",
        "ended_fpo",
        "inner_ids",
        "kids",
        "outside",
        "parent",
        "read_at",
        "read_every_s",
        "run",
        "run_id",
    )

    def __init__(
        self, run: Any, run_id: str, parent: RunNode | None, *, reads_ledger: bool = False
    ) -> None:
        self.run = run
        self.run_id = run_id
        self.parent = parent
        self.kids: set[RunNode] = set()
        self.ended_fpo = 0
        self.outside: tuple[int, int] = (0, 0)
        self.collected: list[RunRecord] | None = None
        self.read_at = 0.0
        self.read_every_s = 0.0
        inherited = parent.inner_ids if parent is not None else None
        if inherited is None and reads_ledger:
            inherited = set()
        self.inner_ids: set[str] | None = inherited
        if parent is not None:
            with _LOCK:
                parent.kids.add(self)
                if inherited is not None:
                    inherited.add(run_id)

    def ancestors(self) -> Iterable[RunNode]:
        """Its parent, its parent's parent... in this process."""
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def fpo(self) -> int:
        """The run's FPO with its children's, as the report will read it (see the module)."""
        with _LOCK:
            kids = list(self.kids)
            ended = self.ended_fpo
        inside, adding = self.outside
        inside += ended + sum(kid.fpo() for kid in kids)
        own = self.run._fpo or 0
        return max(own, inside) + adding

    def collect(self) -> None:
        """Keep the records of the runs nested in this one as they end (:attr:`collected`)."""
        self.collected = []

    def collecting(self) -> bool:
        """Whether a run this one is nested in keeps the records of its nested runs."""
        return any(node.collected is not None for node in self.ancestors())

    def read_outside(self, ledger: Any, *, every_s: float, force: bool = False) -> None:
        """Read the FPO of its and its live nested runs' children in other processes.

        Args:
            ledger: the ledger they write to (``None``: nothing is read).
            every_s: the least time between two reads, s (a read after the first that takes
                more than 1 % of it spaces them out further).
            force: read now, however recent the last read.
        """
        now = time.time()
        if ledger is None or self.inner_ids is None:
            return
        if not force and now < self.read_at + self.read_every_s:
            return
        started = time.perf_counter()
        first = self.read_at == 0.0
        self.read_at = now
        for node in self._live_subtree():
            node._read(ledger)
        took_s = time.perf_counter() - started
        # a run's first read may pay once for its query (compiled and cached by a process's
        # first: 18 ms for a 2 ms read), which spaced the next out to 1.8 s for a 0.2 s interval
        self.read_every_s = every_s if first else max(every_s, 100 * took_s)

    def end(self, ledger: Any, record: RunRecord | None) -> None:
        """The run ended: fold its FPO with its children's into its parent's figure.

        A run nested in one that reads the ledger reads its own children in other processes
        once more first; ``record`` (its final record) goes to the ancestors that collect.
        """
        if ledger is not None and self.inner_ids is not None:
            self._read(ledger)
        total = self.fpo()
        parent = self.parent
        with _LOCK:
            if parent is not None and self in parent.kids:
                parent.kids.discard(self)
                parent.ended_fpo += total
            for node in self.ancestors():
                if node.collected is not None and record is not None:
                    node.collected.append(record)

    def _live_subtree(self) -> list[RunNode]:
        out = [self]
        for node in out:  # grows as it goes: breadth first
            with _LOCK:
                out.extend(node.kids)
        return out

    def _read(self, ledger: Any) -> None:
        try:
            self.outside = outside_fpo(ledger, self.run_id, self.inner_ids or set())
        except LedgerError as e:  # the next read tries again; the last figures stand
            logger.warning(
                "greenprint: could not read the FPO of run %s's children in other processes: %s",
                self.run_id[:8],
                e,
            )


def outside_fpo(ledger: Any, run_id: str, here: set[str]) -> tuple[int, int]:
    """The FPO of a run's children in other processes, each with its descendants', from a ledger.

    Children whose id is in ``here`` (runs of this process, counted from memory) are left out
    with their descendants. Each other child counts ``max(own, its children inside it)`` plus
    its children that add to it (``contained`` false), as :func:`RunNode.fpo` does.

    Args:
        ledger: an open :class:`~greenprint.Ledger`.
        run_id: the run.
        here: ids of the runs of this process nested in it.

    Returns:
        ``(inside, adding)``: the sums over the children inside the run's measurement
        (``contained`` true or unknown) and over those that add to it.

    Raises:
        LedgerError: the ledger cannot be read.
    """
    by_parent: dict[str, list[RunRecord]] = {}
    frontier = [run_id]
    seen = {run_id}
    while frontier:
        found: list[RunRecord] = []
        for parent in frontier:
            children = [
                r for r in _children(ledger, parent) if r.id not in here and r.id not in seen
            ]
            by_parent[parent] = children
            found.extend(children)
        seen.update(r.id for r in found)
        frontier = [r.id for r in found]

    def total(record: RunRecord) -> int:
        inside = adding = 0
        for child in by_parent.get(record.id, ()):
            if child.contained is False:
                adding += total(child)
            else:
                inside += total(child)
        return max(record.fpo or 0, inside) + adding

    inside = adding = 0
    for child in by_parent[run_id]:
        if child.contained is False:
            adding += total(child)
        else:
            inside += total(child)
    return inside, adding


def _children(ledger: Any, run_id: str) -> list[RunRecord]:
    """A run's children in the ledger, without their metric points (only the FPO is needed)."""
    read = getattr(ledger, "_read", None)
    if read is None:  # pragma: no cover - a ledger of another kind
        return list(ledger.runs(parent_id=run_id))
    return list(read(parent_id=run_id, points="score", metrics=()))
