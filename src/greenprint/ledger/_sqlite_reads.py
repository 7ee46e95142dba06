"""The reads of a SQLite ledger: runs column by column, their points, a study's cost, samples.

Split out of :mod:`greenprint.ledger._sqlite`: :class:`SQLiteReads` is the read half of
:class:`~greenprint.ledger._sqlite.SQLiteStore` (which supplies ``transaction`` and ``target``:
each read is one read transaction, inside the fork gate and the store's retries). The values
runs usually share are read once (``NULLIF`` against the first run's); a report's read takes of
each metric only the points it ranks by (the marks, see :mod:`greenprint.ledger._marks`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from greenprint._prediction import RESERVED_METRIC_PREFIX
from greenprint._records import MetricPoint, PowerSample
from greenprint.ledger._fields import CorruptValueError
from greenprint.ledger._marks import MARKS_WORTH_READING, marked_points_sql
from greenprint.ledger._rows import (
    METRIC_COLUMNS,
    REPEATED_COLUMNS,
    RUN_COLUMNS,
    SCAN_ALL_METRICS_SHARE,
    SHARED_COLUMNS,
    PointsRead,
    SharedValues,
    decoded_columns,
    read_points,
    rows_in_batches,
    samples_by_run,
    sqlite_samples,
)
from greenprint.ledger._study_cost import StudyCost, sqlite_study_cost

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger._target import Target

__all__ = ["SQLiteReads"]

T = TypeVar("T")

#: The first run's values of the columns read once: the NULLIF ones, then the other shared ones.
_FIRST_COLUMNS = (*REPEATED_COLUMNS, *(c for c in SHARED_COLUMNS if c not in REPEATED_COLUMNS))

_SELECT_FIRST = "SELECT " + ", ".join(_FIRST_COLUMNS) + " FROM runs"

#: Every column, those of REPEATED_COLUMNS as NULL where they equal the first run's (given).
_SELECT_RUNS_SHARING = (
    "SELECT "
    + ", ".join(f"NULLIF({c}, ?)" if c in REPEATED_COLUMNS else c for c in RUN_COLUMNS)
    + " FROM runs"
)

#: At most this many distinct combinations of the shared columns are read as combinations
#: (``_rows.SharedValues``); runs with more are read column by column
#: (:data:`_SELECT_RUNS_SHARING`).
_MOST_COMBINATIONS = 16

#: The combinations of the shared columns are looked for among one run in this many (by row id:
#: a prime, so that runs written in turn by a few processes are all seen). 100,000 runs: 15 ms,
#: against 94 ms for every run. A combination that none of those runs has is looked up for
#: each run that has it (:func:`_shared_of`); one that a few hundred runs have is seen.
_SAMPLE_EVERY = 61

#: Distinct combinations of the shared columns among the sampled runs (one more than read as
#: such: too many).
_SELECT_COMBINATIONS = "SELECT DISTINCT " + ", ".join(SHARED_COLUMNS) + " FROM runs"

#: The shared columns of the runs of some ids (a run none of the combinations read has).
_SELECT_SHARED = "SELECT id, " + ", ".join(SHARED_COLUMNS) + " FROM runs WHERE id IN "


def _select_runs_combined(combinations: int) -> str:
    """The runs' columns but the shared ones, then which combination of them the run has.

    The columns as :data:`_SELECT_RUNS_SHARING` reads them; then of ``combinations``
    combinations of the shared columns (their values given in order after the NULLIF ones),
    NULL for the first, ``k`` for the ``k``-th, -1 for none (SQL's ``IS``: the same type and
    value, or both NULL).
    """
    same = " AND ".join(f"{c} IS ?" for c in SHARED_COLUMNS)
    return (
        "SELECT "
        + ", ".join(
            f"NULLIF({c}, ?)" if c in REPEATED_COLUMNS else c
            for c in RUN_COLUMNS
            if c not in SHARED_COLUMNS
        )
        + ", CASE "
        + " ".join(f"WHEN {same} THEN {'NULL' if k == 0 else k}" for k in range(combinations))
        + " ELSE -1 END FROM runs"
    )


_SELECT_METRICS = "SELECT " + ", ".join(METRIC_COLUMNS) + " FROM metrics"

_SELECT_SAMPLES = "SELECT run_id, t0, t1, cpu_w, gpu_w, ram_w, intensity_g_per_kwh FROM samples"


class SQLiteReads:
    """The reads of :class:`~greenprint.ledger._sqlite.SQLiteStore`, each one transaction."""

    target: Target

    if TYPE_CHECKING:  # supplied by SQLiteStore

        def transaction(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T: ...

    # ------------------------------------------------------------------ reads
    def find_ids(self, prefix: str, *, limit: int) -> list[str]:
        """The run id equal to ``prefix``, else up to ``limit`` ids starting with it."""

        def do(conn: sqlite3.Connection) -> list[str]:
            exact = conn.execute("SELECT id FROM runs WHERE id = ?", (prefix,)).fetchone()
            if exact is not None:
                return [exact[0]]
            rows = conn.execute(
                "SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
                (len(prefix), prefix, limit),
            )
            return [row[0] for row in rows]

        return self.transaction(do, write=False)

    def find_named(self, name: str, *, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` runs named ``name``: (id, study) pairs (an unknown id's hint).

        A scan of ``runs`` (no index on names): on the error path only.
        """

        def do(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT id, study FROM runs WHERE name = ? ORDER BY started_at, id LIMIT ?",
                (name, limit),
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

        See :mod:`greenprint.ledger._rows` (shared with the SQLAlchemy store): the values are
        those of the RunRecord fields (:func:`~greenprint.ledger._rows.decoded_columns`).
        ``points="score"``: only the points a report reads
        (:func:`~greenprint.ledger._rows.score_points_by_run`). ``metrics``: only the points of
        these metric names and of greenprint's reserved ones (``None``: of every metric).
        """
        conditions: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            conditions.append("id = ?")
            params.append(run_id)
        if study is not None:
            conditions.append("study = ?")
            params.append(study)
        if statuses is not None:
            wanted = list(statuses)
            conditions.append(f"status IN ({', '.join('?' * len(wanted))})" if wanted else "0")
            params.extend(wanted)
        if top_level:
            conditions.append("parent_id IS NULL")
        elif parent_id is not None:
            conditions.append("parent_id = ?")
            params.append(parent_id)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""

        def do(
            conn: sqlite3.Connection,
        ) -> tuple[dict[str, list[Any]], dict[str, list[MetricPoint]]]:
            found = conn.execute(_SELECT_FIRST + where + " LIMIT 1", params).fetchone()
            if found is None:
                return {name: [] for name in RUN_COLUMNS}, {}
            # the values runs usually share read as NULL where they equal the first run's, and
            # the few combinations of the shared columns once (SharedValues): the driver makes
            # no value for each run
            first = dict(zip(_FIRST_COLUMNS, found, strict=True))
            stand_for = {c: first[c] for c in REPEATED_COLUMNS}
            combinations = [tuple(first[c] for c in SHARED_COLUMNS)]
            sampled = conn.execute(
                _SELECT_COMBINATIONS
                + (where + " AND" if where else " WHERE")
                + f" rowid % {_SAMPLE_EVERY} = 0 LIMIT {_MOST_COMBINATIONS + 1}",
                params,
            )
            combinations += [c for c in sampled if c != combinations[0]]
            shared = None
            if len(combinations) <= _MOST_COMBINATIONS:
                nullif = [stand_for[c] for c in REPEATED_COLUMNS if c not in SHARED_COLUMNS]
                selected = conn.execute(
                    _select_runs_combined(len(combinations)) + where,
                    [*nullif, *(v for values in combinations for v in values), *params],
                )
                shared = SharedValues(combinations, lambda ids: _shared_of(conn, ids), stand_for)
            else:
                selected = conn.execute(
                    _SELECT_RUNS_SHARING + where, [*stand_for.values(), *params]
                )
            try:
                columns = decoded_columns(selected, stand_for, shared)
            except CorruptValueError as e:  # names the run and column: and the ledger
                raise e.in_ledger(self.target.display) from e.__cause__
            ids = columns["id"]
            if not ids:
                return columns, {}
            every_run = not where or len(ids) >= SCAN_ALL_METRICS_SHARE * _count_runs(conn)
            if points == "score" and _marks_worth_reading(conn):
                runs, names = "1 = 1", "1 = 1"
                by_run: list[Any] = []
                if not every_run:
                    runs, by_run = f"k.run_id IN (SELECT id FROM runs{where})", params
                if metrics is not None:
                    names = f"k.name IN ({', '.join('?' * len(metrics))})"
                wanted = list(metrics or ())
                selected = conn.execute(
                    marked_points_sql(runs, names), [*by_run, *wanted, *by_run, *by_run, *wanted]
                )
                return columns, read_points(rows_in_batches(selected), ids, points)
            named, by_name = "", []
            if metrics is not None:  # the names, and greenprint's reserved ones (their prefix)
                named = f"(name IN ({', '.join('?' * len(metrics))}) OR substr(name, 1, ?) = ?)"
                by_name = [*metrics, len(RESERVED_METRIC_PREFIX), RESERVED_METRIC_PREFIX]
            if every_run:
                selected = conn.execute(
                    _SELECT_METRICS + (f" WHERE {named}" if named else "") + " ORDER BY seq",
                    by_name,
                )
            else:
                selected = conn.execute(
                    _SELECT_METRICS
                    + f" WHERE run_id IN (SELECT id FROM runs{where})"
                    + (f" AND {named}" if named else "")
                    + " ORDER BY seq",
                    [*params, *by_name],
                )
            return columns, read_points(rows_in_batches(selected), ids, points)

        return self.transaction(do, write=False)

    def select_study_cost(self, study: str, exclude: Sequence[str]) -> StudyCost:
        """The cost of a study's runs but ``exclude``'s, by the price tag's rule, in one read.

        See :mod:`greenprint.ledger._study_cost` (the rule, and the queries of both stores).
        """

        def do(conn: sqlite3.Connection) -> StudyCost:
            return sqlite_study_cost(conn, study, list(exclude))

        return self.transaction(do, write=False)

    def select_studies(self) -> list[str]:
        """Distinct study names."""

        def do(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT DISTINCT study FROM runs")]

        return self.transaction(do, write=False)

    def select_metric_names(self, study: str | None) -> list[str]:
        """The names of the metrics the study's runs logged (``None``: every run's), unordered.

        A point of any value counts. From the marks, one row per run and metric, and the metrics
        noted stale (their marks removed: ``_marks.SQLITE_TRIGGERS``), not from every point
        (100,012 runs of 43 points: the 275,751 marks, 25 ms for every run's, 0.1 s for a
        study's).
        """

        def do(conn: sqlite3.Connection) -> list[str]:
            # a stale metric whose points were all deleted is noted until its next point
            left = (
                "EXISTS (SELECT 1 FROM metrics AS m WHERE m.run_id = s.run_id AND m.name = s.name)"
            )
            if study is None:
                query = (
                    "SELECT name FROM metric_marks "
                    f"UNION SELECT name FROM metric_marks_stale AS s WHERE {left}"
                )
                return [row[0] for row in conn.execute(query)]
            rows = conn.execute(  # a join: half the time of run_id IN (...) for 100,012 runs
                "SELECT k.name FROM metric_marks AS k JOIN runs AS r ON r.id = k.run_id "
                "WHERE r.study = ? UNION SELECT s.name FROM metric_marks_stale AS s "
                f"JOIN runs AS r ON r.id = s.run_id WHERE r.study = ? AND {left}",
                [study, study],
            )
            return [row[0] for row in rows]

        return self.transaction(do, write=False)

    def select_provenances(self, study: str, status: str) -> list[Any]:
        """The distinct stored provenances (JSON text) of the study's runs of ``status``."""

        def do(conn: sqlite3.Connection) -> list[Any]:
            query = "SELECT DISTINCT provenance FROM runs WHERE study = ? AND status = ?"
            return [row[0] for row in conn.execute(query, [study, status])]

        return self.transaction(do, write=False)

    def select_unscored_logging(self, study: str, metric: str, names: Sequence[str]) -> bool:
        """Whether a run of the study with no finite value of ``metric`` logged one of ``names``.

        From the marks (a finite value: a ``high_seq``); ``True`` where a metric of the study
        is noted stale (its marks removed: not known without its points).
        """

        def do(conn: sqlite3.Connection) -> bool:
            stale = conn.execute(
                "SELECT 1 FROM metric_marks_stale AS s JOIN runs AS r ON r.id = s.run_id "
                "WHERE r.study = ? LIMIT 1",
                [study],
            )
            if stale.fetchone() is not None:
                return True
            if not names:
                return False
            found = conn.execute(
                "SELECT 1 FROM metric_marks AS k JOIN runs AS r ON r.id = k.run_id "
                f"WHERE r.study = ? AND k.name IN ({', '.join('?' * len(names))}) "
                "AND NOT EXISTS (SELECT 1 FROM metric_marks AS j WHERE j.run_id = k.run_id "
                "AND j.name = ? AND j.high_seq IS NOT NULL) LIMIT 1",
                [study, *names, metric],
            )
            return found.fetchone() is not None

        return self.transaction(do, write=False)

    def select_samples(self, run_id: str) -> list[PowerSample]:
        """A run's power samples ordered by ``t0`` (then by insertion)."""

        def do(conn: sqlite3.Connection) -> list[PowerSample]:
            return sqlite_samples(conn, run_id)

        return self.transaction(do, write=False)

    def select_samples_by_run(self, study: str | None) -> dict[str, list[PowerSample]]:
        """Every run's power samples (of ``study``'s runs; ``None``: all), by run id, in one read.

        Each run's ordered as :meth:`select_samples` orders them
        (:func:`~greenprint.ledger._rows.samples_by_run`).
        """

        def do(conn: sqlite3.Connection) -> dict[str, list[PowerSample]]:
            if study is None:
                selected = conn.execute(_SELECT_SAMPLES + " ORDER BY seq")
                return samples_by_run(rows_in_batches(selected))
            ids = [row[0] for row in conn.execute("SELECT id FROM runs WHERE study = ?", [study])]
            if len(ids) >= SCAN_ALL_METRICS_SHARE * _count_runs(conn):
                # most of the ledger: one scan in logged order, the other runs' rows skipped
                # (100,000 runs, 500,000 samples: 0.68 s against 1.1 s for an index lookup
                # per run and a sort)
                selected = conn.execute(_SELECT_SAMPLES + " ORDER BY seq")
                return samples_by_run(rows_in_batches(selected), ids)
            selected = conn.execute(
                _SELECT_SAMPLES
                + " WHERE run_id IN (SELECT id FROM runs WHERE study = ?) ORDER BY seq",
                [study],
            )
            return samples_by_run(rows_in_batches(selected))

        return self.transaction(do, write=False)


def _shared_of(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """Run id -> its stored :data:`SHARED_COLUMNS`.

    Of runs whose combination the sample did not find (fewer than a few hundred runs have it).
    """
    rows = conn.execute(_SELECT_SHARED + f"({', '.join('?' * len(ids))})", list(ids))
    return {row[0]: row[1:] for row in rows}


def _marks_worth_reading(conn: sqlite3.Connection) -> bool:
    """Whether the ledger's points are many per mark (see ``_marks.MARKS_WORTH_READING``).

    Both counts from the tables' largest row ids (no scan): rows deleted since leave them
    high, which at worst reads every point, as before schema 5.
    """
    points, marks = conn.execute(
        "SELECT (SELECT max(seq) FROM metrics), (SELECT max(rowid) FROM metric_marks)"
    ).fetchone()
    return bool(points and marks and points >= MARKS_WORTH_READING * marks)


def _count_runs(conn: sqlite3.Connection) -> int:
    """How many runs the ledger holds (a scan of its smallest index)."""
    return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
