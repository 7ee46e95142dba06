"""The reads of a SQLAlchemy ledger: runs column by column, their points, a study's cost, samples.

Split out of :mod:`greenprint.ledger._sql`: :class:`SQLReads` is the read half of
:class:`~greenprint.ledger._sql.SQLStore` (which supplies ``transaction`` and ``target``: each
read is one read transaction, with the store's retries), as
:class:`~greenprint.ledger._sqlite_reads.SQLiteReads` is that of
:class:`~greenprint.ledger._sqlite.SQLiteStore`. On psycopg the rows are fetched on the
driver's own cursor (:func:`_fetched`); a report's read of a PostgreSQL ledger takes of each
metric only the points it ranks by (:func:`_marked_points`).

Imported only when a ledger is opened: this module imports SQLAlchemy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from greenprint._prediction import RESERVED_METRIC_PREFIX
from greenprint._records import MetricPoint, PowerSample
from greenprint.ledger._fields import CorruptValueError
from greenprint.ledger._marks import MARK_SEQS, MARKS_WORTH_READING
from greenprint.ledger._rows import (
    METRIC_COLUMNS,
    REPEATED_COLUMNS,
    RUN_COLUMNS,
    Fetcher,
    PointsRead,
    decoded_columns,
    read_points,
    rows_in_batches,
    samples_by_run,
)
from greenprint.ledger._schema import metric_marks as marks_t
from greenprint.ledger._schema import metrics as metrics_t
from greenprint.ledger._schema import runs as runs_t
from greenprint.ledger._schema import samples as samples_t
from greenprint.ledger._study_cost import StudyCost
from greenprint.ledger._study_cost_sql import sqlalchemy_samples, sqlalchemy_study_cost

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger._target import Target

__all__ = ["SQLReads"]

T = TypeVar("T")


class SQLReads:
    """The reads of :class:`~greenprint.ledger._sql.SQLStore`, each one transaction."""

    target: Target

    if TYPE_CHECKING:  # supplied by SQLStore

        def transaction(self, fn: Callable[[Connection], T], *, write: bool) -> T: ...

    # ------------------------------------------------------------------ reads
    def find_ids(self, prefix: str, *, limit: int) -> list[str]:
        """The run id equal to ``prefix``, else up to ``limit`` ids starting with it."""

        def do(conn: Connection) -> list[str]:
            exact = conn.execute(sa.select(runs_t.c.id).where(runs_t.c.id == prefix)).first()
            if exact is not None:
                return [exact[0]]
            starts = sa.func.substr(runs_t.c.id, 1, len(prefix)) == prefix
            rows = conn.execute(
                sa.select(runs_t.c.id).where(starts).order_by(runs_t.c.id).limit(limit)
            )
            return [row[0] for row in rows]

        return self.transaction(do, write=False)

    def find_named(self, name: str, *, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` runs named ``name``: (id, study) pairs (an unknown id's hint)."""

        def do(conn: Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                sa.select(runs_t.c.id, runs_t.c.study)
                .where(runs_t.c.name == name)
                .order_by(runs_t.c.started_at, runs_t.c.id)
                .limit(limit)
            )
            return [(row[0], row[1]) for row in rows]

        return self.transaction(do, write=False)

    def select_runs(
        self,
        *,
        run_id: str | None = None,
        study: str | None = None,
        statuses: Sequence[str] | None = None,
        parent_id: str | None = None,
        top_level: bool = False,
        points: PointsRead = "all",
        metrics: Sequence[str] | None = None,
    ) -> tuple[dict[str, list[Any]], dict[str, list[MetricPoint]]]:
        """The matching runs' values column by column, decoded, and their metrics by run id.

        See :mod:`greenprint.ledger._rows` (shared with the SQLite store); ``points="score"``
        and ``metrics`` as there.
        """
        conditions: list[Any] = []
        if run_id is not None:
            conditions.append(runs_t.c.id == run_id)
        if study is not None:
            conditions.append(runs_t.c.study == study)
        if statuses is not None:
            conditions.append(runs_t.c.status.in_(list(statuses)))
        if top_level:
            conditions.append(runs_t.c.parent_id.is_(None))
        elif parent_id is not None:
            conditions.append(runs_t.c.parent_id == parent_id)

        def do(conn: Connection) -> tuple[dict[str, list[Any]], dict[str, list[MetricPoint]]]:
            repeated = sa.select(*(runs_t.c[name] for name in REPEATED_COLUMNS))
            first = conn.execute(repeated.where(*conditions).limit(1)).first()
            if first is None:
                return {name: [] for name in RUN_COLUMNS}, {}
            # the values runs usually share read as NULL where they equal the first run's (as
            # SQLiteStore reads them: the driver makes no string for each run)
            shared = dict(zip(REPEATED_COLUMNS, first, strict=True))
            selected = sa.select(
                *(
                    sa.func.nullif(runs_t.c[name], shared[name]).label(name)
                    if name in shared
                    else runs_t.c[name]
                    for name in RUN_COLUMNS
                )
            ).where(*conditions)
            try:
                with _fetched(conn, selected) as fetched:
                    columns = decoded_columns(fetched, shared)
            except CorruptValueError as e:  # names the run and column: and the ledger
                raise e.in_ledger(self.target.display) from e.__cause__
            ids = columns["id"]
            if not ids:
                return columns, {}
            if points == "score" and _marks_worth_reading(conn):
                with _fetched(conn, _marked_points(conditions, metrics)) as fetched:
                    return columns, read_points(rows_in_batches(fetched), ids, points)
            query = sa.select(*(metrics_t.c[name] for name in METRIC_COLUMNS))
            if conditions:
                query = query.where(
                    metrics_t.c.run_id.in_(sa.select(runs_t.c.id).where(*conditions))
                )
            if metrics is not None:  # the names, and greenprint's reserved ones (their prefix)
                reserved = sa.func.substr(metrics_t.c.name, 1, len(RESERVED_METRIC_PREFIX))
                query = query.where(
                    sa.or_(metrics_t.c.name.in_(list(metrics)), reserved == RESERVED_METRIC_PREFIX)
                )
            with _fetched(conn, query.order_by(metrics_t.c.seq)) as fetched:
                return columns, read_points(rows_in_batches(fetched), ids, points)

        return self.transaction(do, write=False)

    def select_study_cost(self, study: str, exclude: Sequence[str]) -> StudyCost:
        """The cost of a study's runs but ``exclude``'s, by the price tag's rule, in one read.

        See :mod:`greenprint.ledger._study_cost` (the rule, and the queries of both stores).
        """

        def do(conn: Connection) -> StudyCost:
            return sqlalchemy_study_cost(conn, study, list(exclude))

        return self.transaction(do, write=False)

    def select_studies(self) -> list[str]:
        """Distinct study names."""

        def do(conn: Connection) -> list[str]:
            return [r[0] for r in conn.execute(sa.select(runs_t.c.study).distinct())]

        return self.transaction(do, write=False)

    def select_metric_names(self, study: str | None) -> list[str]:
        """The names of the metrics the study's runs logged (``None``: every run's), unordered.

        A point of any value counts. From the marks (a row per run and metric) where the role
        may read them, else from the points.
        """

        def do(conn: Connection) -> list[str]:
            table = marks_t if _marks_readable(conn) else metrics_t
            query = sa.select(table.c.name).distinct()
            if study is not None:
                ids = sa.select(runs_t.c.id).where(runs_t.c.study == study)
                query = query.where(table.c.run_id.in_(ids))
            return [row[0] for row in conn.execute(query)]

        return self.transaction(do, write=False)

    def select_provenances(self, study: str, status: str) -> list[Any]:
        """The distinct stored provenances (JSON text) of the study's runs of ``status``."""
        c = runs_t.c
        query = sa.select(c.provenance).where(c.study == study, c.status == status).distinct()

        def do(conn: Connection) -> list[Any]:
            return [row[0] for row in conn.execute(query)]

        return self.transaction(do, write=False)

    def select_unscored_logging(self, study: str, metric: str, names: Sequence[str]) -> bool:
        """Whether a run of the study with no finite value of ``metric`` logged one of ``names``.

        From the marks (a finite value: a ``high_seq``) where the role may read them, else from
        the points.
        """

        def do(conn: Connection) -> bool:
            if not names:
                return False
            ids = sa.select(runs_t.c.id).where(runs_t.c.study == study)
            if _marks_readable(conn):
                k, j = marks_t.alias("k"), marks_t.alias("j")
                scored = sa.exists().where(
                    j.c.run_id == k.c.run_id, j.c.name == metric, j.c.high_seq.is_not(None)
                )
            else:
                k, j = metrics_t.alias("k"), metrics_t.alias("j")
                # finite: PostgreSQL orders NaN above infinity (where NaN = NaN is true)
                finite = sa.and_(j.c.value < float("inf"), j.c.value > float("-inf"))
                scored = sa.exists().where(j.c.run_id == k.c.run_id, j.c.name == metric, finite)
            query = (
                sa.select(sa.literal(1))
                .select_from(k)
                .where(k.c.run_id.in_(ids), k.c.name.in_(list(names)), ~scored)
                .limit(1)
            )
            return conn.execute(query).first() is not None

        return self.transaction(do, write=False)

    def select_samples(self, run_id: str) -> list[PowerSample]:
        """A run's power samples ordered by ``t0`` (then by insertion)."""

        def do(conn: Connection) -> list[PowerSample]:
            return sqlalchemy_samples(conn)(run_id)

        return self.transaction(do, write=False)

    def select_samples_by_run(self, study: str | None) -> dict[str, list[PowerSample]]:
        """Every run's power samples (of ``study``'s runs; ``None``: all), by run id, in one read.

        Each run's ordered as :meth:`select_samples` orders them
        (:func:`~greenprint.ledger._rows.samples_by_run`).
        """
        c = samples_t.c
        query = sa.select(c.run_id, c.t0, c.t1, c.cpu_w, c.gpu_w, c.ram_w, c.intensity_g_per_kwh)
        if study is not None:
            query = query.where(c.run_id.in_(sa.select(runs_t.c.id).where(runs_t.c.study == study)))

        def do(conn: Connection) -> dict[str, list[PowerSample]]:
            with _fetched(conn, query.order_by(c.seq)) as fetched:
                return samples_by_run(rows_in_batches(fetched))

        return self.transaction(do, write=False)


@contextlib.contextmanager
def _fetched(conn: Connection, query: sa.Select[Any]) -> Iterator[Fetcher]:
    """A read's ``SELECT`` run in ``conn``'s transaction, its rows fetched in batches.

    On psycopg (PostgreSQL), the rows as the driver makes them: a read's columns need no
    conversion by SQLAlchemy (``_rows`` decodes the stored values, as it does those that
    ``sqlite3`` hands out), so its processing of each value (a call per value of the
    ``NonFiniteFloat`` columns) and a ``Row`` per row are left out, and the query runs on the
    driver's own cursor in binary format (numbers sent as numbers, not as text to parse). A
    100,000-run report's read from a local server: see ``BENCHMARKS.md``. Any other driver:
    SQLAlchemy's result.
    """
    if conn.dialect.driver != "psycopg":
        yield conn.execute(query)
        return
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    sql, params = str(compiled), compiled.params
    dbapi = conn.dialect.loaded_dbapi
    with conn.connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
        except dbapi.Error as e:  # as SQLAlchemy raises it: transaction() retries, translates
            raise sa.exc.DBAPIError.instance(sql, params, e, dbapi.Error) from e
        yield cursor


def _marks_worth_reading(conn: Connection) -> bool:
    """Whether the ledger's points are many per mark (see ``_marks.MARKS_WORTH_READING``).

    Never for a role that may not read ``metric_marks`` (a team's reader granted SELECT on the
    tables before schema 5): it reads every point, as before. PostgreSQL only: a SQLite ledger
    is read by ``SQLiteStore``, whose query also reads its stale metrics (``_marks``).
    """
    if not _marks_readable(conn):
        return False
    points = conn.execute(sa.select(sa.func.max(metrics_t.c.seq))).scalar()
    marks = conn.execute(sa.select(sa.func.count()).select_from(marks_t)).scalar()
    return bool(points and marks and points >= MARKS_WORTH_READING * marks)


def _marks_readable(conn: Connection) -> bool:
    """Whether this role reads ``metric_marks``: PostgreSQL, where it was granted SELECT on it.

    Not a SQLite file opened through SQLAlchemy: ``SQLiteStore`` reads those (its metrics noted
    stale, which the marks lack).
    """
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.execute(sa.text("SELECT has_table_privilege('metric_marks', 'SELECT')")).scalar()
    )


def _marked_points(conditions: Sequence[Any], metrics: Sequence[str] | None) -> sa.Select[Any]:
    """The points a report reads, through the marks (``_marks.marked_points_sql``'s query).

    PostgreSQL only (SQLite reads its marks through ``SQLiteStore``).
    """
    from sqlalchemy.dialects import postgresql  # the dialect in use: loaded already

    k, m = marks_t.alias("k"), metrics_t.alias("m")
    columns = (m.c.seq, *(m.c[name] for name in METRIC_COLUMNS))
    reserved = sa.func.substr(k.c.name, 1, len(RESERVED_METRIC_PREFIX)) == RESERVED_METRIC_PREFIX
    runs = [k.c.run_id.in_(sa.select(runs_t.c.id).where(*conditions))] if conditions else []
    named = [k.c.name.in_(list(metrics))] if metrics is not None else []
    # seq = ANY(ARRAY[...]): one index scan of the marked seqs per mark, where IN (...) made a
    # bitmap of each (schema 5's five: 100,012 runs' 184,080 marked points: 0.55 s against
    # 0.71-0.79 server-side)
    marked = m.c.seq == sa.any_(postgresql.array([k.c[c] for c in MARK_SEQS]))
    kept = sa.union_all(
        sa.select(*columns).select_from(k.join(m, marked)).where(*runs, *named, ~reserved),
        sa.select(*columns)
        .select_from(k.join(m, sa.and_(m.c.run_id == k.c.run_id, m.c.name == k.c.name)))
        .where(*runs, reserved),
    ).subquery("kept")
    return sa.select(*(kept.c[name] for name in METRIC_COLUMNS)).order_by(kept.c.seq)
