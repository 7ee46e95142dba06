"""What a study's top-level runs have spent, summed by the database: a study budget's read.

A study budget (``gp.Budget(..., per="study")``) compares the cost of every top-level run of the
study with its limits, re-read every flush interval on the run's sampler thread. Reading every run
(with its metrics) to add four numbers in Python costs a study of 100,000 runs seconds; here it is
one ``SELECT`` of sums, in SQLite (the standard library's ``sqlite3``, no SQLAlchemy) and in
PostgreSQL (SQLAlchemy Core), and :func:`study_cost_of_records` is the same rule over records (the
reference the tests hold both queries to).

The rule:

* a run is **top-level in its study** when it has no parent, or its parent is not a run of the same
  study (a part of another study's run is this study's cost): a nested run (a fold, a rank, a
  grandchild) is inside its parent's measurement and is not counted again;
* the runs of ``exclude`` (this process's live runs, whose cost the caller adds from memory) are
  left out of the sums; which of them are top-level is returned, for the caller to add those once;
* every status counts (failed, pruned, interrupted, lost and running runs have spent too);
* a figure that is NaN (not measured) or NULL counts as 0; FPO is summed as a float (kept as
  decimal text in the ledger, it can exceed 64 bits).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

    from greenprint._records import RunRecord

__all__ = [
    "StudyCost",
    "read_study_cost",
    "sqlalchemy_study_cost",
    "sqlite_study_cost",
    "study_cost",
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
        duration_s: summed wall time in s.
        runs: how many top-level runs were summed.
        top_level: the ids among those left out that are top-level runs of the study.
    """

    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    fpo: float = 0.0
    duration_s: float = 0.0
    runs: int = 0
    top_level: frozenset[str] = frozenset()


def study_cost_of_records(records: Iterable[RunRecord], exclude: Collection[str] = ()) -> StudyCost:
    """The rule of this module over a study's records (all of them, as ``ledger.runs(study=)``).

    Args:
        records: every run of one study.
        exclude: ids of runs to leave out of the sums.

    Returns:
        The sums, and which of ``exclude`` are top-level runs of the study.
    """
    records = list(records)
    ids = {r.id for r in records}
    left_out = set(exclude)
    kwh = kg = fpo = s = 0.0
    runs = 0
    top_level = set()
    for r in records:
        if r.parent_id is not None and r.parent_id in ids:
            continue
        if r.id in left_out:
            top_level.add(r.id)
            continue
        runs += 1
        kwh += _figure(r.energy_kwh)
        kg += _figure(r.emissions_kg)
        fpo += _figure(r.fpo)
        s += _figure(r.duration_s)
    return StudyCost(kwh, kg, fpo, s, runs, frozenset(top_level))


def _figure(value: float | None) -> float:
    """A stored figure as summed: NULL and NaN (not measured) count as 0."""
    if value is None:
        return 0.0
    value = float(value)
    return 0.0 if math.isnan(value) else value


def study_cost(ledger: Any, study: str, *, exclude: Collection[str] = ()) -> StudyCost:
    """What ``study``'s top-level runs in ``ledger`` have spent, by one query (see the module).

    Args:
        ledger: an open :class:`~greenprint.Ledger` (SQLite or PostgreSQL).
        study: the study (no run of it: every sum is 0).
        exclude: ids of runs left out of the sums (a process's live runs, counted apart).

    Returns:
        The sums, and which of ``exclude`` are top-level runs of the study.

    Raises:
        LedgerError: the ledger is closed or cannot be read.
    """
    return read_study_cost(ledger._live(), study, exclude)


def read_study_cost(store: _Store, study: str, exclude: Collection[str] = ()) -> StudyCost:
    """The study's cost by the rule of this module, summed by the database in one transaction.

    Args:
        store: the ledger's store (SQLite through ``sqlite3``, or SQLAlchemy).
        study: the study.
        exclude: ids of runs to leave out of the sums.

    Returns:
        The sums (zero for a study with no runs), and which of ``exclude`` are top-level.

    Raises:
        LedgerError: the ledger cannot be read.
    """
    return store.select_study_cost(study, sorted(set(exclude)))


# SQLite: TOTAL() is a float sum that is 0.0 over no rows, never overflows, and reads the text
# 'NaN' (how a NaN is stored in a REAL column) as 0; FPO is decimal text, cast to REAL.
_SQLITE_TOP_LEVEL = (
    "r.study = ? AND (r.parent_id IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM runs AS p WHERE p.id = r.parent_id AND p.study = r.study))"
)
_SQLITE_SUMS = (
    "SELECT TOTAL(r.energy_kwh), TOTAL(r.emissions_kg), TOTAL(CAST(r.fpo AS REAL)), "
    "TOTAL(r.duration_s), COUNT(*) FROM runs AS r WHERE " + _SQLITE_TOP_LEVEL
)


def sqlite_study_cost(conn: sqlite3.Connection, study: str, left_out: list[str]) -> StudyCost:
    """The query on SQLite through ``sqlite3`` (``SQLiteStore.select_study_cost``)."""
    marks = ", ".join("?" * len(left_out))
    query = _SQLITE_SUMS + (f" AND r.id NOT IN ({marks})" if left_out else "")
    kwh, kg, fpo, s, runs = conn.execute(query, [study, *left_out]).fetchone()
    top_level: frozenset[str] = frozenset()
    if left_out:
        rows = conn.execute(
            f"SELECT r.id FROM runs AS r WHERE r.id IN ({marks}) AND " + _SQLITE_TOP_LEVEL,
            [*left_out, study],
        )
        top_level = frozenset(row[0] for row in rows)
    return StudyCost(float(kwh), float(kg), float(fpo), float(s), int(runs), top_level)


def sqlalchemy_study_cost(conn: Any, study: str, left_out: list[str]) -> StudyCost:
    """The query through SQLAlchemy Core, PostgreSQL or SQLite (``SQLStore.select_study_cost``)."""
    import sqlalchemy as sa

    from greenprint.ledger._schema import runs as runs_t

    r, p = runs_t.alias("r"), runs_t.alias("p")
    parent_here = sa.exists().where(p.c.id == r.c.parent_id, p.c.study == r.c.study)
    top = sa.and_(r.c.study == study, sa.or_(r.c.parent_id.is_(None), ~parent_here))

    def total(column: Any) -> Any:
        # NULLIF(x, NaN): PostgreSQL's SUM would be NaN; the bound NaN is typed as the column
        # (NonFiniteFloat binds it as SQLite stores it), so this also runs on SQLite
        nan = sa.bindparam(None, float("nan"), type_=column.type)
        return sa.func.coalesce(sa.func.sum(sa.func.nullif(column, nan)), 0.0)

    fpo = sa.func.coalesce(sa.func.sum(sa.cast(r.c.fpo, sa.Double)), 0.0)
    query = sa.select(
        total(r.c.energy_kwh), total(r.c.emissions_kg), fpo, total(r.c.duration_s), sa.func.count()
    ).where(top)
    if left_out:
        query = query.where(r.c.id.not_in(left_out))
    kwh, kg, fpo_sum, s, runs = conn.execute(query).one()
    top_level: frozenset[str] = frozenset()
    if left_out:
        rows = conn.execute(sa.select(r.c.id).where(top, r.c.id.in_(left_out)))
        top_level = frozenset(row[0] for row in rows)
    return StudyCost(float(kwh), float(kg), float(fpo_sum), float(s), int(runs), top_level)
