"""The ``metric_marks`` table: where each run's metric holds the values a report reads.

A run that logs its loss at every step of a long training has thousands of points; a report
reads of each of its metrics six: the first point, the first that is not NaN, the first holding
its largest finite value, the first holding its smallest, the last, and the first holding its
largest step (:func:`~greenprint.ledger._rows.score_points_by_run` keeps exactly these). Schema
5 kept, for each ``(run_id, name)``, the ``seq`` of the first five points in ``metric_marks``,
so that a report fetches them by primary key instead of scanning every point (100,000 runs of
43 points: 3.95 million rows scanned became 564,000 fetched); schema 6 adds the sixth (a run
that logged its loss at steps 1 to 7 and once more without a step read as stopped at the step
of its best or worst value, not at step 7: see :mod:`greenprint._pruned`).

The database keeps the table itself, with triggers on ``metrics``: every insert (greenprint's
flushes, :meth:`~greenprint.Ledger.merge`, an ``INSERT`` by hand) folds its row into the marks
with an upsert whose every update is a minimum or a maximum over ``(value, seq)`` (or
``(step, seq)``), so the
result does not depend on the order in which concurrent writers commit. A deleted or updated
row that was a mark: on PostgreSQL, the marks of its ``(run_id, name)`` are computed again from
the rows left (its triggers run once the statement is done); on SQLite, which runs them as each
row goes, the metric's marks are removed and it is noted *stale* instead (see
:data:`SQLITE_TRIGGERS`). A row that was no mark changes no mark when deleted. Merge removes the
marks of the runs it replaces first, so their deletions note nothing.

What counts as a value (the reader's rule, ``float(value)`` on what is stored): NaN is no value
(SQLite stores it as the text ``'NaN'``, PostgreSQL natively); infinities are values but not
finite, so they are never the largest or smallest.

Pure Python (SQL text only): imported by the standard-library SQLite store and by the
SQLAlchemy schema.
"""

from __future__ import annotations

from greenprint._prediction import RESERVED_METRIC_PREFIX

__all__ = [
    "MARK_COLUMNS",
    "MARK_SEQS",
    "POSTGRESQL_STATEMENTS",
    "SQLITE_FILL",
    "SQLITE_TRIGGERS",
    "POSTGRESQL_FILL",
    "MARKS_WORTH_READING",
    "marked_points_sql",
]

#: The columns of ``metric_marks`` after ``run_id`` and ``name``: the ``seq`` of the first
#: point, of the first that is not NaN, of the first holding the largest finite value (and that
#: value), of the first holding the smallest (and that value), of the last, and of the first
#: holding the largest step (and that step; both NULL while no point has a step: schema 6).
MARK_COLUMNS: tuple[str, ...] = (
    "first_seq",
    "valid_seq",
    "high_seq",
    "high",
    "low_seq",
    "low",
    "last_seq",
    "step_seq",
    "max_step",
)

#: The columns of ``metric_marks`` that locate a point (a ``seq`` of ``metrics``).
MARK_SEQS: tuple[str, ...] = tuple(c for c in MARK_COLUMNS if c.endswith("_seq"))
# the marked points' seqs of a marks row aliased k, as an SQL list
_K_SEQS = ", ".join(f"k.{c}" for c in MARK_SEQS)

#: A read takes the marks when the ledger holds at least this many points per marked
#: ``(run_id, name)`` on average; below, reading every point is as cheap (a search whose runs
#: log a score once: one point per mark).
MARKS_WORTH_READING = 2.0

# ----------------------------------------------------------------------------------- SQLite
# A stored text is NaN when Python's float() reads it as NaN (greenprint writes 'NaN').
_SQLITE_VALID = "NOT (typeof({r}.value) = 'text' AND lower(trim({r}.value, ' +-')) = 'nan')"
_SQLITE_FINITE = (
    "(typeof({r}.value) IN ('real', 'integer') AND abs({r}.value) <= 1.7976931348623157e308)"
)


def _sqlite_row(r: str) -> str:
    """The marks of the single metrics row ``r`` (``NEW`` or a table alias), as a select list."""
    valid, finite = _SQLITE_VALID.format(r=r), _SQLITE_FINITE.format(r=r)
    return (
        f"{r}.run_id, {r}.name, {r}.seq, CASE WHEN {valid} THEN {r}.seq END, "
        f"CASE WHEN {finite} THEN {r}.seq END, CASE WHEN {finite} THEN {r}.value END, "
        f"CASE WHEN {finite} THEN {r}.seq END, CASE WHEN {finite} THEN {r}.value END, {r}.seq, "
        f"CASE WHEN {r}.step IS NOT NULL THEN {r}.seq END, {r}.step"
    )


def _sqlite_extreme(seq: str, value: str, beats: str) -> str:
    """The fold of an extreme mark (``high``, ``low``, ``max_step``), in SQLite.

    ``value`` kept where the new one ``beats`` (``>``, ``<``) the stored one, and ``seq`` the
    first point holding it (the lower seq on a tie).
    """
    return (
        f"{seq} = CASE WHEN excluded.{value} IS NULL THEN {seq} "
        f"WHEN {value} IS NULL OR excluded.{value} {beats} {value} "
        f"OR (excluded.{value} = {value} AND excluded.{seq} < {seq}) THEN excluded.{seq} "
        f"ELSE {seq} END, "
        f"{value} = CASE WHEN excluded.{value} IS NULL THEN {value} "
        f"WHEN {value} IS NULL OR excluded.{value} {beats} {value} THEN excluded.{value} "
        f"ELSE {value} END"
    )


# Unqualified names are the stored marks, excluded.* the row folded in. Every result is a
# minimum or a maximum over (value, seq) or (step, seq): folding rows in any order gives the
# same marks. (SQLite's SET reads every column as it was before the update.)
_SQLITE_FOLD = (
    "ON CONFLICT (run_id, name) DO UPDATE SET "
    "first_seq = min(first_seq, excluded.first_seq), "
    "valid_seq = coalesce(min(valid_seq, excluded.valid_seq), valid_seq, excluded.valid_seq), "
    f"{_sqlite_extreme('high_seq', 'high', '>')}, "
    f"{_sqlite_extreme('low_seq', 'low', '<')}, "
    "last_seq = max(last_seq, excluded.last_seq), "
    f"{_sqlite_extreme('step_seq', 'max_step', '>')}"
)

_INSERT_MARKS = "INSERT INTO metric_marks (run_id, name, " + ", ".join(MARK_COLUMNS) + ") "

#: The marks of every row of ``metrics`` (a ledger migrated to schema 6).
SQLITE_FILL = (
    _INSERT_MARKS + f"SELECT {_sqlite_row('m')} FROM metrics AS m WHERE true {_SQLITE_FOLD}"
)

_SQLITE_OLD_IS_MARK = (
    "EXISTS (SELECT 1 FROM metric_marks AS k WHERE k.run_id = OLD.run_id AND k.name = OLD.name "
    f"AND OLD.seq IN ({_K_SEQS}))"
)
# NEW's (run_id, name) when it is stale: its marks from all its points (NEW among them)
# (from the stale row: a key lookup that finds none for almost every point; from the points
# with an EXISTS, SQLite scanned the run's points for each one inserted)
_SQLITE_REFOLD_NEW = (
    _INSERT_MARKS + f"SELECT {_sqlite_row('m')} FROM metric_marks_stale AS s "
    "CROSS JOIN metrics AS m ON m.run_id = s.run_id AND m.name = s.name "
    "WHERE s.run_id = NEW.run_id AND s.name = NEW.name "
    f"{_SQLITE_FOLD}"
)
_SQLITE_FOLD_NEW = (
    f"{_SQLITE_REFOLD_NEW}; "
    "DELETE FROM metric_marks_stale WHERE run_id = NEW.run_id AND name = NEW.name; "
    + _INSERT_MARKS
    + f"VALUES ({_sqlite_row('NEW')}) {_SQLITE_FOLD}"
)

#: The table and triggers that keep ``metric_marks`` on SQLite, in creation order. SQLite runs
#: a row's triggers as the row is deleted, so computing a deleted mark's metric again from the
#: rows left would take, for a run whose points are deleted one statement, time in the square
#: of its points; instead the metric's marks are removed and the metric is noted as *stale*
#: (``metric_marks_stale``): a read takes every point of a stale metric, and its next inserted
#: point computes its marks again from all its points.
SQLITE_TRIGGERS: tuple[str, ...] = (
    "CREATE TABLE metric_marks_stale (run_id TEXT NOT NULL, name TEXT NOT NULL, "
    "PRIMARY KEY (run_id, name))",
    f"CREATE TRIGGER metric_marks_insert AFTER INSERT ON metrics BEGIN {_SQLITE_FOLD_NEW}; END",
    "CREATE TRIGGER metric_marks_delete AFTER DELETE ON metrics "
    f"WHEN {_SQLITE_OLD_IS_MARK} BEGIN "
    "DELETE FROM metric_marks WHERE run_id = OLD.run_id AND name = OLD.name; "
    "INSERT OR IGNORE INTO metric_marks_stale (run_id, name) VALUES (OLD.run_id, OLD.name); "
    "END",
    "CREATE TRIGGER metric_marks_update AFTER UPDATE OF run_id, name, value, step ON metrics "
    "BEGIN "
    "INSERT OR IGNORE INTO metric_marks_stale (run_id, name) "
    f"SELECT OLD.run_id, OLD.name WHERE {_SQLITE_OLD_IS_MARK}; "
    "DELETE FROM metric_marks WHERE run_id = OLD.run_id AND name = OLD.name "
    f"AND {_SQLITE_OLD_IS_MARK}; "
    f"{_SQLITE_FOLD_NEW}; END",
)

# ------------------------------------------------------------------------------- PostgreSQL
_PG_FINITE = "value NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"
_PG_AGGREGATE = (
    "SELECT run_id, name, min(seq), min(seq) FILTER (WHERE value <> 'NaN'::float8), "
    f"(array_agg(seq ORDER BY value DESC, seq) FILTER (WHERE {_PG_FINITE}))[1], "
    f"max(value) FILTER (WHERE {_PG_FINITE}), "
    f"(array_agg(seq ORDER BY value, seq) FILTER (WHERE {_PG_FINITE}))[1], "
    f"min(value) FILTER (WHERE {_PG_FINITE}), max(seq), "
    "(array_agg(seq ORDER BY step DESC, seq) FILTER (WHERE step IS NOT NULL))[1], max(step) "
    "FROM metrics"
)

#: The marks of every row of ``metrics`` (a ledger migrated to schema 6).
POSTGRESQL_FILL = _INSERT_MARKS + _PG_AGGREGATE + " GROUP BY run_id, name"


def _pg_extreme(seq: str, value: str, beats: str) -> str:
    """``seq``'s fold of an extreme mark (``high``, ``low``, ``max_step``), in PostgreSQL.

    The first point holding the ``value`` the new one ``beats`` (``>``, ``<``) or ties with a
    lower seq; the value itself is folded with GREATEST or LEAST.
    """
    return (
        f"{seq} = CASE WHEN EXCLUDED.{value} IS NULL THEN metric_marks.{seq}\n"
        f"                WHEN metric_marks.{value} IS NULL OR EXCLUDED.{value} {beats} "
        f"metric_marks.{value}\n"
        f"                OR (EXCLUDED.{value} = metric_marks.{value}\n"
        f"                    AND EXCLUDED.{seq} < metric_marks.{seq}) THEN EXCLUDED.{seq}\n"
        f"                ELSE metric_marks.{seq} END"
    )


_PG_NEW_FINITE = "NEW.value NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION greenprint_metric_marks() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND EXISTS (
        SELECT 1 FROM metric_marks AS k WHERE k.run_id = OLD.run_id AND k.name = OLD.name
        AND OLD.seq IN ({_K_SEQS})
    ) THEN
        DELETE FROM metric_marks WHERE run_id = OLD.run_id AND name = OLD.name;
        {_INSERT_MARKS}{_PG_AGGREGATE}
            WHERE run_id = OLD.run_id AND name = OLD.name GROUP BY run_id, name;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_INSERT_MARKS}VALUES (
            NEW.run_id, NEW.name, NEW.seq,
            CASE WHEN NEW.value <> 'NaN'::float8 THEN NEW.seq END,
            CASE WHEN {_PG_NEW_FINITE} THEN NEW.seq END,
            CASE WHEN {_PG_NEW_FINITE} THEN NEW.value END,
            CASE WHEN {_PG_NEW_FINITE} THEN NEW.seq END,
            CASE WHEN {_PG_NEW_FINITE} THEN NEW.value END,
            NEW.seq,
            CASE WHEN NEW.step IS NOT NULL THEN NEW.seq END,
            NEW.step
        ) ON CONFLICT (run_id, name) DO UPDATE SET
            first_seq = LEAST(metric_marks.first_seq, EXCLUDED.first_seq),
            valid_seq = LEAST(metric_marks.valid_seq, EXCLUDED.valid_seq),
            {_pg_extreme("high_seq", "high", ">")},
            high = GREATEST(metric_marks.high, EXCLUDED.high),
            {_pg_extreme("low_seq", "low", "<")},
            low = LEAST(metric_marks.low, EXCLUDED.low),
            last_seq = GREATEST(metric_marks.last_seq, EXCLUDED.last_seq),
            {_pg_extreme("step_seq", "max_step", ">")},
            max_step = GREATEST(metric_marks.max_step, EXCLUDED.max_step);
    END IF;
    RETURN NULL;
END
$$
"""

#: The function and trigger that keep ``metric_marks`` on PostgreSQL, in creation order
#: (PostgreSQL's LEAST and GREATEST skip NULLs; its NaN equals NaN and sorts above every
#: number, hence the filters). The function runs with its owner's rights (``SECURITY DEFINER``,
#: its schema fixed at creation): a role a team granted INSERT on ``metrics`` before schema 5
#: keeps writing points without a grant on ``metric_marks``.
POSTGRESQL_STATEMENTS: tuple[str, ...] = (
    _PG_FUNCTION.strip(),
    "CREATE TRIGGER metric_marks_change AFTER INSERT OR DELETE OR UPDATE OF run_id, name, value, "
    "step ON metrics FOR EACH ROW EXECUTE FUNCTION greenprint_metric_marks()",
)


# ------------------------------------------------------------------------------------- reads
def marked_points_sql(runs: str, names: str) -> str:
    """A SQLite ``SELECT`` of the ``metrics`` rows a report reads, through the marks, in order.

    Of each metric of a run, its marked points (each once, however many marks it holds); of
    greenprint's reserved metrics (predictions, read whole), every point.

    Args:
        runs: an SQL condition on the marks' ``k.run_id`` (``"1 = 1"``: every run). It appears
            three times: its parameters are bound three times.
        names: an SQL condition on ``k.name`` choosing the metrics read (``"1 = 1"``: every
            one); reserved metrics are read whatever it says. It appears twice.

    Returns:
        The query, selecting :data:`~greenprint.ledger._rows.METRIC_COLUMNS` ordered by
        ``seq``. Parameters: ``runs``', ``names``', ``runs``', ``runs``', ``names``'.
    """
    reserved = f"substr(k.name, 1, {len(RESERVED_METRIC_PREFIX)}) = '{RESERVED_METRIC_PREFIX}'"
    columns = "m.seq, m.run_id, m.name, m.value, m.step, m.time"
    return (
        f"SELECT run_id, name, value, step, time FROM (SELECT {columns} FROM metric_marks AS k "
        f"JOIN metrics AS m ON m.seq IN ({_K_SEQS}) "
        f"WHERE ({runs}) AND ({names}) AND NOT {reserved} "
        # CROSS JOIN: SQLite then reads the marks first (else it scans every point for these)
        f"UNION ALL SELECT {columns} FROM metric_marks AS k "
        "CROSS JOIN metrics AS m ON m.run_id = k.run_id AND m.name = k.name "
        f"WHERE ({runs}) AND {reserved} "
        # a stale metric (its marks removed with a deleted point: SQLITE_TRIGGERS): every point
        f"UNION ALL SELECT {columns} FROM metric_marks_stale AS k "
        "CROSS JOIN metrics AS m ON m.run_id = k.run_id AND m.name = k.name "
        f"WHERE ({runs}) AND (({names}) OR {reserved})) AS kept ORDER BY seq"
    )
