"""What a study's runs have spent, by the price tag's rule: a study budget's read.

A study budget (``gp.Budget(..., per="study")``) compares the cost of the study with its limits,
re-read every flush interval on the run's sampler thread. The cost is the price tag's total
(:func:`greenprint.analysis.price_tag`) over the study's runs, less those this process adds from
memory: every run counted, none twice, by
:class:`~greenprint._forest.RunForest`'s rule (no second copy of it here):

* a run nested in another run of the study is inside its parent's measurement, and the study
  sums its *top-level* runs (no parent, or a parent that is not a run of the study: a part of
  another study's run is this study's cost), each with what its descendants add;
* a run that counted no FPO of its own but has children inside it counts their sum (a trial
  whose folds count the FPO), and a parent's own figure contains its children's: each run
  counts ``max(own, its inside children's sum)``, so children that add up to more than their
  parent recorded are never lost (parallel folds' run-seconds, a parent that flushed less);
  concurrent children share their parent's energy and CO2-eq out as the price tag does, and
  runs in threads of one process (children of one parent, or top-level runs with no run around
  them) count each stretch of their time once (the rule reads each run's scope, host and the
  process its provenance names);
* children that add to their parent (``contained`` false: another host, outside its process
  tree; none recorded by a child of another host than its parent's, given its id; a job's
  nodes under its head; for FPO, a node meter's peer ranks) are outside its measurement and
  add to it;
* a nested run that ran on after the runs around it ended (a worker process left running when
  its main process got SIGTERM or crashed) adds what it measured after that end, its energy
  and CO2-eq split there by its power samples (table ``samples``, read for such runs only),
  prorated over its span where it recorded none
  (:func:`greenprint._forest_beyond.beyond_sums`): in no measurement of its parent's,
  counted once;
* the runs of ``exclude`` that are top-level (this process's live runs, whose cost the caller
  adds from memory, their nested runs' with it) are left out with every run nested in them,
  ended ones too (a live trial's ended folds are in its figure from memory: never counted
  twice); which they are is returned, for the caller to add those once. A run of ``exclude``
  nested in a run that is not left out stays in its parent's sum, at its last flushed figures
  (the caller does not add it);
* every status counts (failed, pruned, interrupted, lost and running runs have spent too);
* a figure that is NaN (not measured), infinite or NULL counts as 0 (the price tag's total
  would be NaN or unknown), and an FPO beyond the largest float (corrupt) as unknown.

Two ways to the same figures. Most studies (trials, or trials over folds that count no FPO of
their own, each parent having recorded at least what its children did) need no tree: every
top-level run's own figures are its figures with its descendants', and the database sums them
in one ``SELECT`` (100,000 runs: tens of ms). One ``EXISTS`` query tells the rest (a nested run
with FPO of its own; children whose energy, CO2-eq or run time add up to more than their
parent's; a run that adds to its parent, belongs to a distributed job or ended after its parent
(:data:`_SQLITE_OUTLIVES`); two top-level runs
of one host and process at the same time: see :data:`_SQLITE_SCAN`), and for those the
columns the rule reads are fetched for the study's runs (no metrics; the provenance's JSON
read once per distinct text) and the rule is applied to them. Both stores: SQLite through the
standard library's ``sqlite3`` (no SQLAlchemy), here; PostgreSQL (and SQLite) through
SQLAlchemy Core, in :mod:`greenprint.ledger._study_cost_sql`. :func:`study_cost_of_records` is
the same rule over records (what the tests hold both stores to, beside the price tag itself).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

    from greenprint._records import PowerSample, RunRecord

    #: A run's power samples by its id (``greenprint._forest_beyond.SamplesOf``).
    SamplesOf = Callable[[str], Sequence[PowerSample]]

__all__ = [
    "RULE_COLUMNS",
    "StudyCost",
    "read_study_cost",
    "sqlite_study_cost",
    "study_cost",
    "study_cost_by_rule",
    "study_cost_of_records",
]


class _Store(Protocol):
    """What both ledger stores have for this (the stores import this module, not the reverse)."""

    def select_study_cost(self, study: str, exclude: Sequence[str]) -> StudyCost: ...


class StudyCost(NamedTuple):
    """What a study's top-level runs have spent, some runs left out.

    Attributes:
        energy_kwh: summed IT energy in kWh.
        emissions_kg: summed CO2-eq in kg.
        fpo: summed floating-point operations (as a float).
        duration_s: summed run time in s (run-seconds: parallel runs add up).
        runs: how many top-level runs were summed (a distributed job's nodes: one, its head).
        top_level: the ids among those left out that are top-level runs of the study.
    """

    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    fpo: float = 0.0
    duration_s: float = 0.0
    runs: int = 0
    top_level: frozenset[str] = frozenset()


#: The RunRecord fields the rule reads (RunForest: nesting, job links, spans; the four costs),
#: in the order the rule path selects them.
RULE_COLUMNS = (
    "id",
    "parent_id",
    "energy_kwh",
    "emissions_kg",
    "fpo",
    "duration_s",
    "started_at",
    "ended_at",
    "heartbeat_at",
    "host",
    "job_id",
    "node_rank",
    "local_rank",
    "node_meter",
    "contained",
    "scope",
    "provenance",
    "flush_interval_s",
)


def study_cost_of_records(
    records: Iterable[RunRecord],
    exclude: Collection[str] = (),
    samples_of: SamplesOf | None = None,
) -> StudyCost:
    """The rule of this module over a study's records (all of them, as ``ledger.runs(study=)``).

    Args:
        records: every run of one study.
        exclude: ids of runs to leave out, with the runs nested in them (see the module).
        samples_of: a run's power samples by its id (``ledger.samples``), for a run that ran
            on after the runs around it ended (``None``: prorated by time, as the price tag
            given none).

    Returns:
        The sums, and which of ``exclude`` are top-level runs of the study.

    Raises:
        LedgerError: the runs' parents form a cycle (a hand-edited ledger).
    """
    rows = ([getattr(r, name) for name in RULE_COLUMNS] for r in records)
    return study_cost_by_rule(rows, exclude, samples_of)


def study_cost_by_rule(
    rows: Iterable[Sequence[Any]],
    exclude: Collection[str] = (),
    samples_of: SamplesOf | None = None,
) -> StudyCost:
    """The rule over rows of :data:`RULE_COLUMNS`, one per run of the study (the rule path).

    Each row becomes a partial :class:`~greenprint.RunRecord` (the fields RunForest reads; a
    figure that is not a finite number, 0; an FPO beyond the largest float, unknown), the
    top-level runs of ``exclude`` are left out with the runs nested in them, and the price
    tag's sums (:meth:`RunForest.shared_sums` for energy and CO2-eq, :attr:`RunForest.fpo_sums`,
    :meth:`RunForest.nested_sum` of run time) are added up over what is left, as its total is.

    Args:
        rows: the runs' :data:`RULE_COLUMNS` values, any order of runs.
        exclude: ids of runs to leave out.
        samples_of: a run's power samples by its id, read only for a run that ran on after
            the runs around it ended (:func:`~greenprint._forest_beyond.beyond_sums`).

    Returns:
        The sums, and which of ``exclude`` are top-level runs of the study.

    Raises:
        LedgerError: the runs' parents form a cycle (a hand-edited ledger).
    """
    from greenprint._exceptions import AnalysisError, LedgerError
    from greenprint._forest import RunForest
    from greenprint._forest_beyond import beyond_sums

    records = _partials(rows)
    ids = {r.id for r in records}
    kids: dict[str, list[str]] = {}
    top = []
    for r in records:
        if r.parent_id is not None and r.parent_id in ids:
            kids.setdefault(r.parent_id, []).append(r.id)
        else:
            top.append(r.id)
    left_out = frozenset(exclude)
    top_level = frozenset(i for i in top if i in left_out)
    if top_level:  # each with every run nested in it, by parent_id
        dropped = set(top_level)
        todo = list(top_level)
        while todo:
            for kid in kids.get(todo.pop(), ()):
                if kid not in dropped:
                    dropped.add(kid)
                    todo.append(kid)
        records = [r for r in records if r.id not in dropped]
    if not records:
        return StudyCost(top_level=top_level)
    try:
        forest = RunForest.build(records)
        energy_sums, co2_sums = beyond_sums(forest, samples_of)
        energy, co2 = energy_sums.exclusive, co2_sums.exclusive
        fpo = forest.fpo_sums.exclusive
        _, duration = forest.nested_sum(forest.column("duration_s"))
    except AnalysisError as e:  # a cycle of parents: no tree to sum (the last figures stand)
        raise LedgerError(f"the study's runs cannot be summed: {e}") from e
    return StudyCost(
        float(sum(energy)),
        float(sum(co2)),
        float(sum(fpo)),
        float(sum(duration)),
        len(forest.roots),
        top_level,
    )


def _partials(rows: Iterable[Sequence[Any]]) -> list[RunRecord]:
    """RunRecords with only the rule's fields (:data:`RULE_COLUMNS`), one per row of them.

    Built column by column (100,000 runs: about 0.3 s, where the constructor, which fills every
    field, takes 0.9 s); a field that is not one of :data:`RULE_COLUMNS` is left unset, so a
    reader of any other field fails loudly rather than reading a default.
    """
    import numpy as np

    from greenprint._records import RunRecord
    from greenprint._validate import FPO_MAX

    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return []
    columns: dict[str, list[Any]] = {
        name: list(map(itemgetter(k), rows)) for k, name in enumerate(RULE_COLUMNS)
    }
    for name in ("energy_kwh", "emissions_kg", "duration_s", "started_at"):
        figures = np.asarray(columns[name], dtype=float)  # NULL, SQLite's 'NaN' text: NaN
        columns[name] = np.where(np.isfinite(figures), figures, 0.0).tolist()
    flush = np.asarray(columns["flush_interval_s"], dtype=float)  # NULL: NaN
    columns["flush_interval_s"] = np.where(np.isfinite(flush), flush, 10.0).tolist()
    for name in ("ended_at", "heartbeat_at"):
        columns[name] = [None if v is None else float(v) for v in columns[name]]
    fpo: list[Any] = [None if v is None else int(v) for v in columns["fpo"]]
    if any(v is not None and v > FPO_MAX for v in fpo):  # corrupt (RunForest refuses it)
        fpo = [None if v is not None and v > FPO_MAX else v for v in fpo]
    columns["fpo"] = fpo
    columns["host"] = [v or "" for v in columns["host"]]
    columns["scope"] = [v or "process" for v in columns["scope"]]
    columns["provenance"] = _provenances(columns["provenance"])
    for name in ("node_meter", "contained"):
        columns[name] = [None if v is None else bool(v) for v in columns[name]]
    columns["name"] = [""] * len(rows)
    records: list[RunRecord] = list(map(object.__new__, repeat(RunRecord, len(rows))))
    for name, values in columns.items():  # each slot set in C (a frozen RunRecord's setattr
        deque(map(getattr(RunRecord, name).__set__, records, values), maxlen=0)  # refuses)
    return records


def _provenances(values: list[Any]) -> list[Any]:
    """Each run's provenance as the rule reads it: the process it names (threads of one process).

    A record's provenance (a dict) is kept; a ledger's JSON text is read once per distinct
    text (a study's runs share a few), as ``{"process": ...}`` or ``{}`` (no process named,
    or text that is not a JSON object: no process known), one dict per text.
    """
    try:
        distinct = set(values)
    except TypeError:  # dicts: records (study_cost_of_records)
        return values
    read: dict[Any, dict[str, str]] = {}
    for text in distinct:
        try:
            found = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            found = None
        read[text] = (
            {k: v for k in _RULE_PROVENANCE if isinstance(v := found.get(k), str)}
            if isinstance(found, dict)
            else {}
        )
    return list(map(read.__getitem__, values))


#: What the rule reads of a provenance: the process a run read (threads of one process), and
#: the process that wrote it with those it was started under (a pool's worker made before its
#: parent process's run: RunForest reads its runs inside that run).
_RULE_PROVENANCE = ("process", "writer", "ancestors")


def _started_under_a_run(rows: Iterable[Sequence[Any]]) -> bool:
    """Whether a top-level run was started under a process that wrote a run reading its tree.

    Rows of ``host, writer, ancestors`` (``ancestors`` only for top-level runs). RunForest may
    then read that run inside the other (``_pool_workers``), which only the rule's read does;
    whether it started while that run was open is left to the rule.
    """
    from greenprint._liveness import parse_ancestors, writer_place

    writers: set[tuple[Any, ...]] = set()
    started_under: list[tuple[Any, ...]] = []
    for host, writer, ancestors in rows:
        where = writer_place(writer)
        if where is None:
            continue
        pid, tick, boot, pidns = where
        writers.add((host, pid, tick, boot, pidns))
        for up_pid, up_tick in parse_ancestors(ancestors):
            started_under.append((host, up_pid, up_tick, boot, pidns))
    return any(key in writers for key in started_under)


def study_cost(ledger: Any, study: str, *, exclude: Collection[str] = ()) -> StudyCost:
    """What ``study``'s runs in ``ledger`` have spent, by the price tag's rule (see the module).

    Args:
        ledger: an open :class:`~greenprint.Ledger` (SQLite or PostgreSQL).
        study: the study (no run of it: every sum is 0).
        exclude: ids of runs left out (a process's live runs, counted apart), with the runs
            nested in those of them that are top-level.

    Returns:
        The sums, and which of ``exclude`` are top-level runs of the study.

    Raises:
        LedgerError: the ledger is closed or cannot be read, or the study's runs' parents
            form a cycle.
    """
    return read_study_cost(ledger._live(), study, exclude)


def read_study_cost(store: _Store, study: str, exclude: Collection[str] = ()) -> StudyCost:
    """The study's cost by the rule of this module, read in one transaction.

    Args:
        store: the ledger's store (SQLite through ``sqlite3``, or SQLAlchemy).
        study: the study.
        exclude: ids of runs to leave out.

    Returns:
        The sums (zero for a study with no runs), and which of ``exclude`` are top-level.

    Raises:
        LedgerError: the ledger cannot be read, or the runs' parents form a cycle.
    """
    return store.select_study_cost(study, sorted(set(exclude)))


# SQLite: TOTAL() is a float sum that is 0.0 over no rows, never overflows, and reads the text
# 'NaN' (how a NaN is stored in a REAL column) as 0; FPO is decimal text, cast to REAL.
#
# One scan of the study's runs, each with its parent when that is a run of the study, gives the
# sums of the top-level runs' own figures (``k``: counted) and what tells whether they are the
# rule's: ``a``, a run in a job, or a nested run that adds to its parent or counts FPO of its
# own; ``n``, a nested run. Only with nested runs (and no ``a``) is the second query asked:
# whether children add up to more than their parent recorded (each parent's own figure is
# repeated once per child by the join: its TOTAL is COUNT(*) times the figure; NaN text: 0).
# which of the ids left out are top-level runs of the study (``+r.study``: looked up by id, not
# by a scan of the study's index: 50 ms -> 0.1 ms at 100,000 runs)
_SQLITE_TOP_LEVEL_IDS = (
    "SELECT r.id FROM runs AS r WHERE r.id IN ({marks}) AND +r.study = ? AND (r.parent_id IS "
    "NULL OR NOT EXISTS (SELECT 1 FROM runs AS p WHERE p.id = r.parent_id AND p.study = r.study))"
)
#
# Top-level runs in threads of one process (no run around them) count each stretch of their
# time once (RunForest): where two top-level runs overlap, the sums are not the rule. ``o``:
# a top-level run that the next top-level run of the study *in rowid order* starts before it
# ends (its end as ``run_end``, never before its start). Complete: if no such pair, the
# starts rise with the rowids and no two spans overlap; a pair out of order only sends the
# read on to the exact check (1 B-tree seek per run: 100,000 runs, +40 ms, where a window
# function over them costs +100 and more). The exact check (``_SQLITE_THREADS``) then asks
# whether two of one host and process overlap (a process-parallel study's runs do not).
_SQLITE_END = (
    "MAX(COALESCE({r}.ended_at, MAX({r}.started_at + {r}.duration_s, COALESCE({r}.heartbeat_at,"
    " {r}.started_at))), {r}.started_at)"
)
_SQLITE_TOP = (
    "({r}.parent_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs AS q WHERE q.id = {r}.parent_id"
    " AND q.study = {r}.study))"
)
#: A nested run ``r`` whose end (as ``run_end``'s, never before its start) is after its parent
#: ``p``'s: its ``ended_at``, or for a parent with none its last sign of life plus two flush
#: intervals (the price tag's rule counts what the run spent after the runs around it ended:
#: ``beyond_sums``; this finds every study it may touch, and a few more)
_SQLITE_OUTLIVES = (
    "(r.started_at > 0 AND "
    + _SQLITE_END.format(r="r")
    + " > COALESCE(p.ended_at, MAX(p.started_at + p.duration_s, COALESCE(p.heartbeat_at, "
    "p.started_at)) + 2 * p.flush_interval_s))"
)
_SQLITE_SCAN = (
    "SELECT TOTAL(CASE WHEN k THEN e END), TOTAL(CASE WHEN k THEN g END), "
    "TOTAL(CASE WHEN k THEN CAST(f AS REAL) END), TOTAL(CASE WHEN k THEN d END), "
    "TOTAL(k), TOTAL(n), MAX(a), MAX(o) FROM (SELECT r.energy_kwh AS e, r.emissions_kg AS g, "
    "r.fpo AS f, r.duration_s AS d, p.id IS NULL{left_out} AS k, p.id IS NOT NULL AS n, "
    "(r.job_id IS NOT NULL OR (p.id IS NOT NULL AND (r.contained = 0 OR r.fpo IS NOT NULL "
    "OR (r.contained IS NULL AND r.host <> p.host) OR " + _SQLITE_OUTLIVES + "))) "
    "AS a, (p.id IS NULL AND (SELECT b.started_at FROM runs AS b WHERE b.rowid > r.rowid AND "
    "+b.study = r.study AND "
    + _SQLITE_TOP.format(r="b")
    + " ORDER BY b.rowid LIMIT 1) < "
    + _SQLITE_END.format(r="r")
    + ") AS o FROM runs AS r LEFT JOIN runs AS p ON p.id = r.parent_id AND p.study = r.study "
    "WHERE r.study = ? LIMIT -1)"  # a LIMIT: not flattened, each k worked out once (40 ms)
)
#: the process a run names (provenance "process"), as RunForest keys it: NULL when none
_SQLITE_PROCESS = (
    "CASE WHEN r.scope = 'process' AND json_valid(r.provenance) THEN "
    "json_extract(r.provenance, '$.process') END"
)
_SQLITE_THREADS = (
    "SELECT EXISTS (SELECT 1 FROM (SELECT r.started_at AS s, MAX("
    + _SQLITE_END.format(r="r")
    + ") OVER (PARTITION BY COALESCE(r.host, ''), "
    + _SQLITE_PROCESS
    + " ORDER BY r.started_at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach, "
    + _SQLITE_PROCESS
    + " AS process FROM runs AS r WHERE r.study = ? AND "
    + _SQLITE_TOP.format(r="r")
    + ") WHERE process IS NOT NULL AND s < reach)"
)
#: Each process that wrote runs of the study that read its tree, with the processes it was
#: started under when it wrote a run with no parent (see _started_under_a_run)
_SQLITE_PROCESSES = (
    "SELECT DISTINCT r.host, json_extract(r.provenance, '$.writer'), CASE WHEN r.parent_id IS "
    "NULL THEN json_extract(r.provenance, '$.ancestors') END FROM runs AS r WHERE r.study = ? "
    "AND r.scope = 'process' AND json_valid(r.provenance)"
)
_SQLITE_MORE_THAN_PARENT = (
    "SELECT EXISTS (SELECT 1 FROM runs AS c JOIN runs AS p ON p.id = c.parent_id "
    "WHERE c.study = ? AND p.study = c.study GROUP BY c.parent_id HAVING "
    + " OR ".join(
        f"TOTAL(c.{x}) * COUNT(*) > TOTAL(p.{x})"
        for x in ("energy_kwh", "emissions_kg", "duration_s")
    )
    + ")"
)
_SQLITE_RULE_ROWS = "SELECT " + ", ".join(RULE_COLUMNS) + " FROM runs WHERE study = ?"


def _sqlite_samples(conn: sqlite3.Connection) -> SamplesOf:
    """A run's power samples by its id, read in the caller's transaction (SQLite)."""
    from greenprint.ledger._rows import sqlite_samples

    return partial(sqlite_samples, conn)


def sqlite_study_cost(conn: sqlite3.Connection, study: str, left_out: list[str]) -> StudyCost:
    """The read on SQLite through ``sqlite3`` (``SQLiteStore.select_study_cost``).

    The caller holds one read transaction around it (every query sees one state).
    """
    marks = ", ".join("?" * len(left_out))
    scan = _SQLITE_SCAN.format(left_out=f" AND r.id NOT IN ({marks})" if left_out else "")
    kwh, kg, fpo, s, runs, nested, adds, overlap = conn.execute(scan, [*left_out, study]).fetchone()
    if (
        adds
        or (nested and conn.execute(_SQLITE_MORE_THAN_PARENT, [study]).fetchone()[0])
        or (overlap and conn.execute(_SQLITE_THREADS, [study]).fetchone()[0])
        or (overlap and _started_under_a_run(conn.execute(_SQLITE_PROCESSES, [study])))
    ):
        every = conn.execute(_SQLITE_RULE_ROWS, [study]).fetchall()
        return study_cost_by_rule(every, left_out, _sqlite_samples(conn))
    top_level: frozenset[str] = frozenset()
    if left_out:
        rows = conn.execute(_SQLITE_TOP_LEVEL_IDS.format(marks=marks), [*left_out, study])
        top_level = frozenset(row[0] for row in rows)
    return StudyCost(float(kwh), float(kg), float(fpo), float(s), int(runs), top_level)
