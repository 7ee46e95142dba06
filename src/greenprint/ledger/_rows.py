"""Stored rows into columns and metric points: the read mapping both stores share.

:class:`~greenprint.ledger._sqlite.SQLiteStore` (the standard library's ``sqlite3``) and
:class:`~greenprint.ledger._sql.SQLStore` (SQLAlchemy, for PostgreSQL) fetch the same rows;
what they hand to :class:`~greenprint.Ledger` is built here, so the two paths cannot drift apart.

Pure Python (no SQLAlchemy). Columns, not one dictionary per row: a study of 100,000 runs is read
as one list per field, decoded one field at a time (``_fields.decode_columns``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from greenprint._frozen import slot_constructor
from greenprint._records import MetricPoint
from greenprint.ledger._fields import FIELD_KINDS

__all__ = [
    "METRIC_COLUMNS",
    "RUN_COLUMNS",
    "SCAN_ALL_METRICS_SHARE",
    "columns_of_rows",
    "points_by_run",
]

#: The ``runs`` columns a read selects, in this order (every stored RunRecord field).
RUN_COLUMNS: tuple[str, ...] = tuple(FIELD_KINDS)

#: The ``metrics`` columns a read selects, in this order (rows ordered by ``seq``).
METRIC_COLUMNS: tuple[str, ...] = ("run_id", "name", "value", "step", "time")

#: When the runs read are at least this share of the ledger's, their metrics are found by one
#: scan of the whole ``metrics`` table in logged order, the other runs' rows skipped here: one
#: sequential read instead of an index lookup per run and a sort (100,000 runs: 0.2 s less).
SCAN_ALL_METRICS_SHARE = 0.5


#: ``MetricPoint(*values)`` at half the cost (see :func:`greenprint._frozen.slot_constructor`).
_make_point = slot_constructor(MetricPoint)


def columns_of_rows(rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """The rows of a ``SELECT`` of :data:`RUN_COLUMNS`, column by column (stored values).

    Args:
        rows: one tuple per run, values in the order of :data:`RUN_COLUMNS`.

    Returns:
        Field name -> that field's stored values, one per run (empty lists without rows).
    """
    if not rows:
        return {name: [] for name in RUN_COLUMNS}
    transposed = zip(*rows, strict=True)
    return {name: list(values) for name, values in zip(RUN_COLUMNS, transposed, strict=True)}


def points_by_run(
    rows: Iterable[Sequence[Any]], run_ids: Sequence[str]
) -> dict[str, list[MetricPoint]]:
    """The metric points of the runs ``run_ids``, in logged order, by run id.

    Args:
        rows: ``metrics`` rows (:data:`METRIC_COLUMNS`) in logged (``seq``) order; rows of other
            runs are skipped (see :data:`SCAN_ALL_METRICS_SHARE`).
        run_ids: the runs whose points are wanted.

    Returns:
        Run id -> its points (runs that logged none are left out). A value is a float
        (SQLite's stored text ``'NaN'`` included); equal metric names share one string.
    """
    wanted = set(run_ids)
    by_run: dict[str, list[MetricPoint]] = {}
    names: dict[str, str] = {}  # one string object per metric name
    point = _make_point
    get = by_run.get
    for rid, name, value, step, at in rows:
        found = get(rid)
        if found is None:
            if rid not in wanted:
                continue
            found = by_run[rid] = []
        found.append(point(names.setdefault(name, name), float(value), step, at))
    return by_run
