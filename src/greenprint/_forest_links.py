"""How :meth:`RunForest.build <greenprint._forest.RunForest.build>` links a set's runs.

Each run's position by id (:func:`_index`), the order children before parents
(:func:`_post_order`), the kind of each recorded link (:func:`_link_kind`: ``"nested"``,
``"peer"``, ``"remote"``), and the runs of worker processes read under the run their process
had open: a reused pool's runs recorded under a parent that had ended (:func:`_reused_workers`),
and a pool made before its parent process's run (:func:`_pool_workers`,
:func:`own_tree_writer`). Pure Python at import, as :mod:`greenprint._forest`.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from greenprint._exceptions import AnalysisError
from greenprint._format import count_of
from greenprint._liveness import ANCESTORS_KEY, WRITER_KEY, parse_ancestors, writer_place
from greenprint._records import RunRecord

__all__ = ["own_tree_writer"]

_ID = operator.attrgetter("id")
_PARENT_ID = operator.attrgetter("parent_id")
_JOB_ID = operator.attrgetter("job_id")
_CONTAINED = operator.attrgetter("contained")
_HOST = operator.attrgetter("host")


def _post_order(roots: Sequence[int], kids: Mapping[int, list[int]]) -> list[int]:
    """The positions under ``roots``, children before parents (iteratively: deep chains)."""
    order: list[int] = []
    for root in roots:
        if root not in kids:  # a root without children (most runs of a big search)
            order.append(root)
            continue
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            pos, expanded = stack.pop()
            if expanded:
                order.append(pos)
                continue
            stack.append((pos, True))
            stack.extend((child, False) for child in reversed(kids.get(pos, ())))
    return order


_STARTED_AT = operator.attrgetter("started_at")
_PROVENANCE = operator.attrgetter("provenance")
_ENDED_AT = operator.attrgetter("ended_at")


def _writer(run: RunRecord) -> str | None:
    return run.provenance.get("writer")


def _reused_workers(items: Sequence[RunRecord], parents: list[int | None]) -> list[str]:
    """Re-parent, in place, the runs of a reused worker process recorded under a run that ended.

    A worker process takes its parent run from the environment it was started with: a pool that
    outlives the run it was started in (joblib's loky workers, reused by every later
    ``Parallel`` call of the process) names that run for every later run it holds. A run of
    another process that started after its recorded parent ended cannot be inside it: it is
    read as a child of the run that the same process (the parent's ``writer``) had live when
    it started, the innermost (the latest started), when there is one; else (or on another
    host than its parent, whose clock may differ) it keeps its parent. Returns a note for the
    report when any was re-parented.
    """
    ends = [end for p in set(parents) if p is not None and (end := items[p].ended_at) is not None]
    if not ends or min(ends) >= max(map(_STARTED_AT, items)):
        return []  # every parent ended after the last run started (a sweep around trials)
    started = list(map(_STARTED_AT, items))
    ended = list(map(_ENDED_AT, items))
    stale = [
        pos
        for pos, p in enumerate(parents)
        if p is not None and ended[p] is not None and started[pos] > ended[p]
    ]
    if not stale:
        return []
    by_writer: dict[str, list[int]] = {}
    for pos, run in enumerate(items):
        writer = _writer(run)
        if writer is not None:
            by_writer.setdefault(writer, []).append(pos)
    open_at = _OpenRuns(by_writer, started, ended)
    moved: dict[str, list[str]] = {}
    for pos in stale:
        old = parents[pos]
        writer = None if old is None else _writer(items[old])
        if old is None or writer is None or writer == _writer(items[pos]):
            continue  # a parent given in its own process (parent=run) stays its parent
        if items[old].host != items[pos].host:
            continue  # another host's clock: no telling which came first
        new = open_at.innermost(writer, started[pos], pos)
        if new is not None:
            parents[pos] = new
            moved.setdefault(items[new].id, []).append(items[old].id)
    if not moved:
        return []
    count = sum(map(len, moved.values()))
    names = _first_ids({r for ids in moved.values() for r in ids})
    into = _first_ids(moved)
    return [
        f"{count_of(count, 'run')} of a reused worker process (e.g. joblib's loky pool, "
        f"started during an earlier run) named run {names} as their parent, which had ended "
        f"before they started: read as children of run {into}, the run their parent's "
        "process had open when they started; give such runs parent= to link them yourself"
    ]


class _OpenRuns:
    """Which run of a group (a process's runs) was open at a time: the innermost, by bisection.

    Each group's runs in start order, with the latest end among its runs up to each: a run's
    open run is found by bisection, then walking back to the latest one still open (comparing
    each run with every run of the process was quadratic: 1,000 searches of 100 trials in one
    driver, 5 s).
    """

    def __init__(
        self,
        groups: Mapping[Any, Sequence[int]],
        started: Sequence[float],
        ended: Sequence[float | None],
    ) -> None:
        self._ended = ended
        self._runs: dict[Any, list[tuple[float, int]]] = {}
        self._reach: dict[Any, list[float]] = {}
        for key, positions in groups.items():
            runs = self._runs[key] = sorted((started[q], q) for q in positions)
            ends = [math.inf if (end := ended[q]) is None else end for _, q in runs]
            self._reach[key] = list(itertools.accumulate(ends, max))

    def innermost(self, key: Any, at: float, skip: int) -> int | None:
        """The latest-started run of group ``key`` open at ``at`` (not ``skip``), or ``None``."""
        runs = self._runs.get(key)
        if runs is None:
            return None
        reach, ended = self._reach[key], self._ended
        for i in range(bisect.bisect_left(runs, (at, -1)) - 1, -1, -1):
            if reach[i] < at:
                return None  # every run it started before had ended
            q = runs[i][1]
            end = ended[q]
            if q != skip and (end is None or end >= at):
                return q
        return None


def _pool_workers(items: Sequence[RunRecord], parents: list[int | None]) -> list[str]:
    """Link, in place, the runs of a worker process made before its parent process's run.

    A pool made before a run (``multiprocessing.Pool()`` at the top of a script, then a search
    around ``pool.map``) has workers that inherited no parent run: their runs are top-level,
    yet the run open in the process they were started under read their process tree, so each
    counted twice and a search of trials read as its trials beside an unscored run. A
    top-level run that records the processes it was started under (provenance ``"ancestors"``;
    reading its own process, not a distributed job's) is read as a child of the run open when it
    started in the nearest of them that has one, the innermost (the latest started): on the
    same host, boot and pid namespace, a run that read that process's tree (scope
    ``"process"``, its own process). Returns a note for the report when any was linked.
    """
    provenances = list(map(_PROVENANCE, items))
    distinct = {id(p): p for p in provenances}.values()  # a ledger's runs share their dicts
    if not any(ANCESTORS_KEY in p for p in distinct):
        return []  # no run records them (a ledger written before they were recorded)
    places: dict[Any, tuple[int, int, str, int] | None] = {}

    def place(writer: Any) -> tuple[int, int, str, int] | None:
        found = places.get(writer, False)
        if found is False:
            found = places[writer] = writer_place(writer)
        return found  # type: ignore[return-value]

    lineages: dict[Any, tuple[tuple[int, int], ...]] = {}  # a process's runs share one text

    def lineage(text: Any) -> tuple[tuple[int, int], ...]:
        found = lineages.get(text)
        if found is None:
            found = lineages[text] = parse_ancestors(text)
        return found

    # first, per distinct provenance (hosts and scopes aside): whether any process a run was
    # started under wrote a run of its own process (a search's 100,000 trials started under a
    # shell: nothing is looked up, 0.04 s as without them, instead of 0.3)
    readers: set[tuple[Any, ...]] = set()
    under: set[tuple[Any, ...]] = set()
    for prov in distinct:
        if (own := own_tree_writer(prov, place)) is not None:
            readers.add(own)
        if ANCESTORS_KEY in prov and (where := place(prov.get(WRITER_KEY))) is not None:
            under.update((*up, *where[2:]) for up in lineage(prov[ANCESTORS_KEY]))
    if readers.isdisjoint(under):
        return []
    trees: dict[tuple[Any, ...], list[int]] = {}  # (host, boot, pidns, pid, tick) -> its runs
    for pos, run in enumerate(items):
        if run.scope != "process" or (own := own_tree_writer(provenances[pos], place)) is None:
            continue
        pid, tick, boot, pidns = own
        trees.setdefault((run.host, boot, pidns, pid, tick), []).append(pos)
    if not trees:
        return []
    open_at = _OpenRuns(trees, list(map(_STARTED_AT, items)), list(map(_ENDED_AT, items)))
    linked: dict[str, list[str]] = {}
    moved: dict[str, list[str]] = {}  # from a parent run of another process, further up
    for pos, run in enumerate(items):
        prov = provenances[pos]
        if ANCESTORS_KEY not in prov:
            continue
        where = place(prov.get(WRITER_KEY))
        if where is None or run.job_id is not None or run.scope != "process":
            continue  # a job's runs are linked by the job; a machine's reading is not inside
        old = parents[pos]
        stop = None  # the process of the parent it names: no run up from there is nearer
        if old is not None:
            stop = place(_writer(items[old]))
            if stop is None or stop[:2] == where[:2]:
                continue  # a parent in its own process, or one of unknown process: kept
        for pid, tick in lineage(prov[ANCESTORS_KEY]):
            if stop is not None and (pid, tick) == stop[:2]:
                break
            new = open_at.innermost((run.host, where[2], where[3], pid, tick), run.started_at, pos)
            if new is not None:
                if old is None:
                    parents[pos] = new
                    linked.setdefault(items[new].id, []).append(run.id)
                elif _below(parents, new, old):  # inside the parent it names: the nearer
                    parents[pos] = new
                    moved.setdefault(items[new].id, []).append(run.id)
                break
    notes = []
    if linked:
        count = sum(map(len, linked.values()))
        notes.append(
            f"{count_of(count, 'run')} of worker processes made before their parent process's "
            f"run (e.g. a multiprocessing.Pool made before the search) named no parent run: "
            f"read as children of run {_first_ids(linked)}, the run open in the process they "
            "were started under, whose measurement holds theirs; give such runs parent= to "
            "link them yourself"
        )
    if moved:
        count = sum(map(len, moved.values()))
        notes.append(
            f"{count_of(count, 'run')} of worker processes made before their parent process's "
            f"run (e.g. a multiprocessing.Pool made before the search, under greenprint run) "
            f"named the run around the whole script as their parent: read as children of run "
            f"{_first_ids(moved)}, the run inside it open in the process they were started "
            "under; give such runs parent= to link them yourself"
        )
    return notes


def own_tree_writer(
    provenance: Mapping[str, Any],
    place: Callable[[Any], tuple[int, int, str, int] | None] = writer_place,
) -> tuple[int, int, str, int] | None:
    """The writer's ``(pid, start tick, boot, pid namespace)`` if the run read its own tree.

    Its ``"process"`` is its writer's pid, not ``pid=`` another's; else ``None``. ``place``
    reads a writer identity (a caller's memo of :func:`writer_place`).
    """
    where = place(provenance.get(WRITER_KEY))
    measured = provenance.get("process")
    if where is None or not isinstance(measured, str) or measured.split()[1:2] != [str(where[0])]:
        return None
    return where


def _below(parents: Sequence[int | None], pos: int, ancestor: int) -> bool:
    """Whether the run at ``pos`` is ``ancestor`` or nested below it (by ``parents``)."""
    seen = 0
    at: int | None = pos
    while at is not None and seen <= len(parents):
        if at == ancestor:
            return True
        at, seen = parents[at], seen + 1
    return False


def _first_ids(ids: Iterable[str], shown: int = 3) -> str:
    """Run ids for a note: the first ``shown`` (sorted, 8 characters each), then how many more.

    A note names a few runs, not all: 2,000 searches in one driver named each of their sweeps.
    """
    every = sorted({i[:8] for i in ids})
    more = f" and {len(every) - shown:,} more" if len(every) > shown else ""
    return ", ".join(every[:shown]) + more


def _index(items: Sequence[RunRecord]) -> dict[str, int]:
    """Run id -> position.

    Raises:
        AnalysisError: a run is not a RunRecord, or two runs share an id (the first in order).
    """
    index: dict[str, int]
    if all(issubclass(kind, RunRecord) for kind in set(map(type, items))):
        index = dict(zip(map(_ID, items), range(len(items)), strict=True))
        if len(index) == len(items):
            return index
    index = {}  # a run breaks a rule: the loop names the first that does
    for pos, run in enumerate(items):
        if not isinstance(run, RunRecord):
            raise AnalysisError(f"expected RunRecord objects, got {type(run).__name__}")
        if run.id in index:
            raise AnalysisError(f"run id {run.id!r} appears twice")
        index[run.id] = pos
    return index


def _elsewhere(hosts: Sequence[str | None], pos: int, recorded: int | None) -> bool:
    """Whether run ``pos`` ran on another host than its recorded parent (at ``recorded``).

    Both hosts known (a run recorded before hosts were has none); ``False`` without a parent.
    """
    if recorded is None:
        return False
    host, there = hosts[pos], hosts[recorded]
    return bool(host and there and host != there)


def _link_kind(run: RunRecord, items: Sequence[RunRecord], parent: int | None) -> str:
    """The kind of a recorded parent link (see :class:`~greenprint._forest.RunForest`).

    ``contained`` false: ``"remote"``, and so is a run that recorded no containment under a
    parent of another host (``gp.track(parent=...)`` given the id of a run on another machine,
    a rank of a job on another node given its trial's id: that machine's measurement is not
    inside the parent's, whatever job the run is of; nothing records a measurement of a whole
    job or cluster). A rank of a job linked by id to its node's meter on the same host, not
    known to be nested in it (an integration's part rank): ``"peer"``. Otherwise ``"nested"``.
    """
    if run.contained is False:
        return "remote"
    if parent is not None and run.contained is None:
        host, above = run.host, items[parent].host
        if host and above and host != above:
            return "remote"
    if parent is not None and run.contained is None and run.job_id is not None:
        up = items[parent]
        if up.job_id == run.job_id and up.node_meter and not run.node_meter and up.host == run.host:
            return "peer"
    return "nested"
