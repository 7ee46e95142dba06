"""A study budget's read through SQLAlchemy Core: PostgreSQL (and SQLite), ``SQLStore``'s.

The same queries as the SQLite read through ``sqlite3`` in :mod:`greenprint.ledger._study_cost`
(the rule, when its sums are the rule, and the columns fetched when they are not), built with
SQLAlchemy Core: the scan of the study's runs (:func:`sqlalchemy_study_cost`), whether children
add up to more than their parent (:func:`_more_than_parent`), whether two top-level runs
overlap (:func:`_top_level_overlap`), whether a nested run ran on after its parent
(:func:`_outlives`, :func:`_run_end`), and a run's power samples (:func:`sqlalchemy_samples`).
SQLAlchemy is imported when a read runs, never at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenprint.ledger._study_cost import RULE_COLUMNS, StudyCost, study_cost_by_rule

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from greenprint._records import PowerSample

__all__ = ["sqlalchemy_samples", "sqlalchemy_study_cost"]


def sqlalchemy_study_cost(conn: Any, study: str, left_out: list[str]) -> StudyCost:
    """The read through SQLAlchemy Core, PostgreSQL or SQLite (``SQLStore.select_study_cost``).

    The same queries as on SQLite (see :data:`_SQLITE_SCAN`); the caller holds one transaction
    around them.
    """
    import sqlalchemy as sa

    from greenprint.ledger._schema import runs as runs_t

    r, p, c = runs_t.alias("r"), runs_t.alias("p"), runs_t.alias("c")

    def nan_free(column: Any) -> Any:
        # NULLIF(x, NaN): PostgreSQL's SUM would be NaN; the bound NaN is typed as the column
        # (NonFiniteFloat binds it as SQLite stores it), so this also runs on SQLite
        return sa.func.nullif(column, sa.bindparam(None, float("nan"), type_=column.type))

    def total(value: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(value), 0.0)

    nested = p.c.id.is_not(None)
    counted = (
        p.c.id.is_(None) if not left_out else sa.and_(p.c.id.is_(None), r.c.id.not_in(left_out))
    )

    def top(value: Any) -> Any:
        return total(sa.case((counted, value)))

    adds = sa.or_(
        r.c.job_id.is_not(None),
        sa.and_(
            nested,
            sa.or_(
                r.c.contained.is_(False),
                r.c.fpo.is_not(None),
                # a child given its parent's id on another host: it adds (RunForest's rule)
                sa.and_(r.c.contained.is_(None), r.c.host != p.c.host),
                _outlives(r, p, nan_free),
            ),
        ),
    )
    scan = (
        sa.select(
            top(nan_free(r.c.energy_kwh)),
            top(nan_free(r.c.emissions_kg)),
            top(sa.cast(r.c.fpo, sa.Double)),
            top(nan_free(r.c.duration_s)),
            sa.func.count(sa.case((counted, 1))),
            sa.func.count(p.c.id),
            sa.func.count(sa.case((adds, 1))),
        )
        .select_from(r.outerjoin(p, sa.and_(p.c.id == r.c.parent_id, p.c.study == r.c.study)))
        .where(r.c.study == study)
    )
    kwh, kg, fpo, s, runs, nested_runs, adding = conn.execute(scan).one()
    if (
        adding
        or (
            nested_runs
            and conn.execute(sa.select(_more_than_parent(c, p, study, nan_free, total))).scalar()
        )
        or conn.execute(sa.select(_top_level_overlap(study, nan_free))).scalar()
    ):
        columns = [runs_t.c[name] for name in RULE_COLUMNS]
        rows = conn.execute(sa.select(*columns).where(runs_t.c.study == study)).all()
        return study_cost_by_rule(rows, left_out, sqlalchemy_samples(conn))
    top_level: frozenset[str] = frozenset()
    if left_out:
        parent_here = sa.exists().where(p.c.id == r.c.parent_id, p.c.study == r.c.study)
        is_top = sa.and_(r.c.study == study, sa.or_(r.c.parent_id.is_(None), ~parent_here))
        ids = conn.execute(sa.select(r.c.id).where(is_top, r.c.id.in_(left_out)))
        top_level = frozenset(row[0] for row in ids)
    return StudyCost(float(kwh), float(kg), float(fpo), float(s), int(runs), top_level)


def sqlalchemy_samples(conn: Any) -> Callable[[str], list[PowerSample]]:
    """A run's power samples by its id, read in the caller's transaction (SQLAlchemy Core)."""
    import sqlalchemy as sa

    from greenprint._records import PowerSample
    from greenprint.ledger._schema import samples as samples_t

    c = samples_t.c
    columns = (c.t0, c.t1, c.cpu_w, c.gpu_w, c.ram_w, c.intensity_g_per_kwh)

    def samples_of(run_id: str) -> list[PowerSample]:
        query = sa.select(*columns).where(c.run_id == run_id).order_by(c.t0, c.seq)
        return [PowerSample(*row) for row in conn.execute(query)]

    return samples_of


def _run_end(r: Any, nan_free: Any) -> Any:
    """``run_end`` of the runs of alias ``r`` in SQLAlchemy Core, never before their start."""
    import sqlalchemy as sa

    start = r.c.started_at
    beat = sa.func.coalesce(r.c.heartbeat_at, start)
    timed = start + sa.func.coalesce(nan_free(r.c.duration_s), 0.0)
    ended = sa.func.coalesce(r.c.ended_at, sa.case((timed > beat, timed), else_=beat))
    return sa.case((ended > start, ended), else_=start)


def _outlives(r: Any, p: Any, nan_free: Any) -> Any:
    """:data:`_SQLITE_OUTLIVES` in SQLAlchemy Core: run ``r`` ran on after its parent ``p``."""
    import sqlalchemy as sa

    beat = sa.func.coalesce(p.c.heartbeat_at, p.c.started_at)
    timed = p.c.started_at + sa.func.coalesce(nan_free(p.c.duration_s), 0.0)
    last = sa.case((timed > beat, timed), else_=beat) + 2 * p.c.flush_interval_s
    return sa.and_(r.c.started_at > 0, _run_end(r, nan_free) > sa.func.coalesce(p.c.ended_at, last))


def _top_level_overlap(study: str, nan_free: Any) -> Any:
    """Whether two top-level runs of the study on one host overlap (an EXISTS).

    Top-level runs in threads of one process count each stretch of their time once
    (:data:`_SQLITE_SCAN`): where two overlap, the sums may not be the rule. Whatever
    processes they name (the JSON is not read here): a process-parallel study takes the
    rule's read on this path, exact either way. A window function: each run's start against
    the latest end of the runs that started before it, its end as ``run_end``'s.
    """
    import sqlalchemy as sa

    from greenprint.ledger._schema import runs as runs_t

    r, q = runs_t.alias("r"), runs_t.alias("q")
    start = r.c.started_at
    beat = sa.func.coalesce(r.c.heartbeat_at, start)
    timed = start + sa.func.coalesce(nan_free(r.c.duration_s), 0.0)
    ended = sa.func.coalesce(r.c.ended_at, sa.case((timed > beat, timed), else_=beat))
    end = sa.case((ended > start, ended), else_=start)
    parent_here = sa.exists().where(q.c.id == r.c.parent_id, q.c.study == r.c.study)
    spans = (
        sa.select(
            start.label("s"),
            sa.func.max(end)
            .over(partition_by=sa.func.coalesce(r.c.host, ""), order_by=start, rows=(None, -1))
            .label("reach"),
        )
        .where(
            r.c.study == study,
            r.c.scope == "process",
            sa.or_(r.c.parent_id.is_(None), ~parent_here),
        )
        .subquery()
    )
    return sa.exists(sa.select(sa.literal(1)).where(spans.c.s < spans.c.reach))


def _more_than_parent(c: Any, p: Any, study: str, nan_free: Any, total: Any) -> Any:
    """:data:`_SQLITE_MORE_THAN_PARENT` in SQLAlchemy Core: an EXISTS."""
    import sqlalchemy as sa

    count = sa.func.count()
    more = [
        total(nan_free(c.c[x])) * count > total(nan_free(p.c[x]))
        for x in ("energy_kwh", "emissions_kg", "duration_s")
    ]
    parents = (
        sa.select(sa.literal(1))
        .select_from(c.join(p, p.c.id == c.c.parent_id))
        .where(c.c.study == study, p.c.study == c.c.study)
        .group_by(c.c.parent_id)
        .having(sa.or_(*more))
    )
    return sa.exists(parents)
