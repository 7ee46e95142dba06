"""Stored rows into columns and metric points: the read mapping both stores share.

:class:`~greenprint.ledger._sqlite.SQLiteStore` (the standard library's ``sqlite3``) and
:class:`~greenprint.ledger._sql.SQLStore` (SQLAlchemy, for PostgreSQL) fetch the same rows;
what they hand to :class:`~greenprint.Ledger` is built here, so the two paths cannot drift apart.

Pure Python (no SQLAlchemy). Columns, not one dictionary per row: a study of 100,000 runs is read
as one list per field, decoded one field at a time (``_fields.ColumnDecoder``), a batch of rows
at a time (:func:`decoded_columns`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from itertools import chain, islice
from typing import Any, Literal, Protocol

from greenprint._frozen import slot_constructor
from greenprint._prediction import RESERVED_METRIC_PREFIX
from greenprint._records import MetricPoint, PowerSample
from greenprint.ledger._fields import FIELD_KINDS, ColumnDecoder

__all__ = [
    "METRIC_COLUMNS",
    "READ_BATCH_ROWS",
    "REPEATED_COLUMNS",
    "RUN_COLUMNS",
    "SCAN_ALL_METRICS_SHARE",
    "SHARED_COLUMNS",
    "Fetcher",
    "SharedValues",
    "PointsRead",
    "columns_of_rows",
    "decoded_columns",
    "rows_in_batches",
    "points_by_run",
    "samples_by_run",
    "read_points",
    "score_points_by_run",
    "sqlite_samples",
]

#: The ``runs`` columns a read selects, in this order (every stored RunRecord field).
RUN_COLUMNS: tuple[str, ...] = tuple(FIELD_KINDS)

#: Which metric points a read returns: ``"all"`` of them, or ``"score"``, those a report reads
#: (:func:`score_points_by_run`).
PointsRead = Literal["all", "score"]

#: The ``metrics`` columns a read selects, in this order (rows ordered by ``seq``).
METRIC_COLUMNS: tuple[str, ...] = ("run_id", "name", "value", "step", "time")

#: When the runs read are at least this share of the ledger's, their metrics are found by one
#: scan of the whole ``metrics`` table in logged order, the other runs' rows skipped here: one
#: sequential read instead of an index lookup per run and a sort (100,000 runs: 0.2 s less).
SCAN_ALL_METRICS_SHARE = 0.5


#: ``MetricPoint(*values)`` at half the cost (see :func:`greenprint._frozen.slot_constructor`).
_make_point = slot_constructor(MetricPoint)


def columns_of_rows(rows: Sequence[Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """The rows of a ``SELECT`` of :data:`RUN_COLUMNS`, column by column (stored values).

    Args:
        rows: one tuple per run, values in the order of :data:`RUN_COLUMNS`.

    Returns:
        Field name -> that field's stored values, one per run, as the tuple the transposition
        made (not copied into a list: 100,000 runs 40 ms less); empty without rows.
    """
    if not rows:
        return {name: () for name in RUN_COLUMNS}
    return dict(zip(RUN_COLUMNS, zip(*rows, strict=True), strict=True))


class Fetcher(Protocol):
    """A query's result read in batches: a ``sqlite3`` cursor, a SQLAlchemy result."""

    def fetchmany(self, size: int, /) -> Sequence[Sequence[Any]]:
        """Up to ``size`` more rows; none at the end."""
        ...  # pragma: no cover


#: Rows of ``runs`` transposed and decoded at a time by :func:`decoded_columns`.
READ_BATCH_ROWS = 500

#: ``NOT NULL`` text columns whose value the runs of a study usually share (the study, its
#: host, command, versions, hardware, environment, provenance...). The SQLite store reads them
#: as ``NULLIF(column, value of the first run)``: the driver then hands out ``None`` instead of
#: making the same string again for each run, and the decoder reads ``None`` as that value
#: (``ColumnDecoder(nulls_stand_for=...)``). 100,000 runs: 70 ms less (1.52 -> 1.45 s CPU).
REPEATED_COLUMNS: tuple[str, ...] = tuple(
    name
    for name, (kind, nullable) in FIELD_KINDS.items()
    if not nullable and kind in ("str", "status", "json") and name not in ("id", "name", "params")
)


#: Columns whose values the runs of a study share in practice: the machine, the software and
#: the grid they ran on, how they were metered and distributed (the columns that vary from run to
#: run in the ledgers users make: its times, energy, parameters, parents, roles, heartbeats,
#: provenance, are not among them; nor is the command, which differs for each run of a shell
#: loop of ``greenprint run``: such a study's runs would have as many combinations). The SQLite
#: store reads their few distinct combinations once, and of each run which of them it has
#: (:class:`SharedValues`): each value the driver hands out costs as much when it is NULL.
#: 100,000 runs: the runs' fetch and decoding 0.89-1.08 -> 0.73-0.82 s.
SHARED_COLUMNS: tuple[str, ...] = (
    "study",
    "flush_interval_s",
    "host",
    "git_commit",
    "git_dirty",
    "python_version",
    "greenprint_version",
    "torch_version",
    "hardware",
    "env",
    "scope",
    "pue",
    "intensity_g_per_kwh",
    "intensity_source",
    "job_id",
    "node_rank",
    "local_rank",
    "node_meter",
)


class SharedValues:
    """The :data:`SHARED_COLUMNS` of a read's runs, each run's given as which of a few it has.

    The rows a read fetches then hold the other columns of :data:`RUN_COLUMNS` (in that order,
    :attr:`others`) and a last value: ``None`` for the first of ``combinations``, ``k`` for
    the ``k``-th, a negative number for a run that has none of them, whose shared values are
    looked up by its id (:attr:`lookup`, a query of its own).

    Args:
        combinations: the shared columns' stored values that runs have, each in the order of
            :data:`SHARED_COLUMNS`; at least one.
        lookup: run ids -> each of those runs' stored shared values, in the order of
            :data:`SHARED_COLUMNS`.
        nulls_stand_for: as :func:`decoded_columns`' (the decoder's): a combination's value
            that a column's NULL stands for is given to the decoder as ``None``, one value for
            the batch instead of one for each run.
    """

    __slots__ = ("_combinations", "lookup", "others")

    def __init__(
        self,
        combinations: Sequence[Sequence[Any]],
        lookup: Callable[[list[Any]], Mapping[Any, Sequence[Any]]],
        nulls_stand_for: Mapping[str, Any] | None = None,
    ) -> None:
        stand_for = nulls_stand_for or {}
        self._combinations = [
            tuple(
                None if name in stand_for and value == stand_for[name] else value
                for name, value in zip(SHARED_COLUMNS, combination, strict=True)
            )
            for combination in combinations
        ]
        self.lookup = lookup
        #: The columns a row holds before its last value, in the order of RUN_COLUMNS.
        self.others: tuple[str, ...] = tuple(c for c in RUN_COLUMNS if c not in SHARED_COLUMNS)

    def columns(self, rows: Sequence[Sequence[Any]]) -> dict[str, Sequence[Any]]:
        """The stored columns of a batch of rows, every column of :data:`RUN_COLUMNS`."""
        *values, which = zip(*rows, strict=True)
        out: dict[str, Sequence[Any]] = dict(zip(self.others, values, strict=True))
        count = len(rows)
        combinations = self._combinations
        if which.count(None) == count:  # the runs of a study, usually: one value a column
            for name, value in zip(SHARED_COLUMNS, combinations[0], strict=True):
                out[name] = [value] * count
            return out
        ids = out["id"]
        unknown = [rid for rid, k in zip(ids, which, strict=True) if k is not None and k < 0]
        found = self.lookup(unknown) if unknown else {}
        first = combinations[0]
        stored = [
            first if k is None else combinations[k] if k >= 0 else found[rid]
            for rid, k in zip(ids, which, strict=True)
        ]
        for at, name in enumerate(SHARED_COLUMNS):
            out[name] = [own[at] for own in stored]
        return out


def decoded_columns(
    result: Fetcher,
    nulls_stand_for: Mapping[str, Any] | None = None,
    shared: SharedValues | None = None,
) -> dict[str, list[Any]]:
    """The runs of a ``SELECT`` of :data:`RUN_COLUMNS`, decoded, column by column.

    Rows are fetched, transposed and decoded :data:`READ_BATCH_ROWS` at a time, while the
    values the driver has just made are still in the processor's cache: column by column over
    every run at once, each value read is a cache miss (the values of one run lie together,
    those of one field do not). 100,000 runs: 0.15 s less than the whole fetch transposed
    and decoded at once (1.42 -> 1.27 s CPU; batches of 250 to 2,000 rows within 40 ms of
    each other, 500 the fastest), and only one batch of raw rows held at a time.

    Args:
        result: the rows, values in the order of :data:`RUN_COLUMNS`.
        nulls_stand_for: column -> the stored value a ``None`` stands for (columns of
            :data:`REPEATED_COLUMNS` read with ``NULLIF``).
        shared: the :data:`SHARED_COLUMNS` read as :class:`SharedValues` reads them (the rows
            then hold the other columns and the value that says which of the combinations the
            run has); ``None``: every column is in the rows.

    Returns:
        Field name -> the decoded values (:class:`~greenprint.ledger._fields.ColumnDecoder`:
        as ``decode_field`` would give them), one per run; empty lists without rows.
    """
    decoder = ColumnDecoder(nulls_stand_for)
    out: dict[str, list[Any]] = {name: [] for name in RUN_COLUMNS}
    while rows := result.fetchmany(READ_BATCH_ROWS):
        decoded = decoder.decode(columns_of_rows(rows) if shared is None else shared.columns(rows))
        del rows  # the raw values of the batch: only those kept by the decoded columns stay
        for name, column in out.items():
            column += decoded[name]
    return out


def rows_in_batches(result: Fetcher) -> Iterator[Sequence[Any]]:
    """Every row of a query's result, fetched :data:`READ_BATCH_ROWS` at a time.

    The driver steps through a batch, then the caller reads it: each runs in turn on warm
    caches. The ``metrics`` scan of a 100,000-run report's read (276,000 rows): 0.30 s with
    the points made, against 0.36 s iterating the cursor row by row.
    """
    return chain.from_iterable(iter(partial(result.fetchmany, READ_BATCH_ROWS), []))


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


def read_points(
    rows: Iterable[Sequence[Any]], run_ids: Sequence[str], points: PointsRead
) -> dict[str, list[MetricPoint]]:
    """The points a read returns, by run id (both stores' reads end here).

    :func:`points_by_run` for ``"all"``, :func:`score_points_by_run` for ``"score"``.
    """
    if points == "score":
        return score_points_by_run(rows, run_ids)
    return points_by_run(rows, run_ids)


def score_points_by_run(
    rows: Iterable[Sequence[Any]], run_ids: Sequence[str]
) -> dict[str, list[MetricPoint]]:
    """The metric points a report reads, by run id: what a run is ranked by, not every step.

    A run that logs its loss at every step of a long training has thousands of points; a
    report reads of each metric its last value, its best finite value in either direction,
    whether it has a value that is not NaN, the order in which the names were first logged
    and its furthest step (where a pruned run stopped). So of each metric of a run this keeps,
    in logged order, its first point, its first that is not NaN, the first holding its finite
    maximum, the first holding its finite minimum, its last and the first holding its largest
    step (at most six: the last may have no step, or a lower one, when a run logs its best
    value again at its end); and every point of greenprint's reserved metrics
    (predictions, read whole). A run of at most :data:`_BUFFERED_POINTS` points keeps them all
    (nothing to gain: most runs of a search log a few). On the kept points,
    :meth:`RunRecord.metric` (``last``, ``max``, ``min``), :attr:`RunRecord.metric_names`,
    each metric's largest step (:func:`greenprint._pruned.step_bounds`) and every score, role
    and choice of metric of :mod:`greenprint.analysis` and the report equal those of all the
    run's points.

    Args:
        rows: ``metrics`` rows (:data:`METRIC_COLUMNS`) in logged (``seq``) order; rows of other
            runs are skipped.
        run_ids: the runs whose points are wanted.

    Returns:
        Run id -> its kept points in logged order (runs that logged none are left out).
    """
    wanted = set(run_ids)
    buffered: dict[str, list[MetricPoint]] = {}  # runs with few points so far: all of them
    streamed: dict[str, _KeptPoints] = {}  # runs past _BUFFERED_POINTS: only what is kept
    names: dict[str, str] = {}  # one string object per metric name
    name_of = names.setdefault
    point = _make_point
    get = buffered.get
    for row in rows:
        rid, name, value, step, at = row
        found = get(rid)
        if found is None:
            kept = streamed.get(rid)
            if kept is not None:
                kept.add(name, value, step, row)
                continue
            if rid not in wanted:
                continue
            found = buffered[rid] = []
        # the point made at once, not the row held for a second pass: 100,000 runs 40 ms less
        if type(value) is not float:
            value = float(value)  # SQLite's text 'NaN'
        found.append(point(name_of(name, name), value, step, at))
        if len(found) > _BUFFERED_POINTS:
            started = streamed[rid] = _KeptPoints()
            for made in found:
                started.add(made.name, made.value, made.step, made)
            del buffered[rid]
    by_run = buffered
    for rid, kept in streamed.items():
        by_run[rid] = kept.points(name_of)
    return by_run


#: Points of a run held whole while the table is scanned; past this many, only the points
#: :func:`score_points_by_run` keeps are held (a run's first rows are few; long series stream).
_BUFFERED_POINTS = 16


class _KeptPoints:
    """The points of one run that :func:`score_points_by_run` keeps, fed in logged order.

    Each is fed as its name, its value, its step and its source: the ``metrics`` row (its
    point is made only if it is kept) or the point already made while the run was held whole.
    """

    __slots__ = ("count", "marks", "reserved", "steps")

    def __init__(self) -> None:
        self.count = 0
        # metric name -> [first, first not NaN, first finite max, first finite min, last,
        # first largest step], each (position in the run, source, value), and the largest step
        self.marks: dict[str, list[Any]] = {}
        self.steps: dict[str, int] = {}
        self.reserved: list[tuple[int, Sequence[Any] | MetricPoint, float]] = []

    def add(
        self, name: str, value: Any, step: int | None, source: Sequence[Any] | MetricPoint
    ) -> None:
        """Feed the run's next point: its metric name, its value, its step and its source.

        Args:
            name: the metric's name.
            value: its value as stored (SQLite's text ``'NaN'``, an integer: read as floats).
            step: its step (``None``: logged without one).
            source: the ``metrics`` row (``run_id, name, value, step, time``) or the point.
        """
        k = self.count
        self.count = k + 1
        if type(value) is not float:
            value = float(value)
        item = (k, source, value)
        if name.startswith(RESERVED_METRIC_PREFIX):
            self.reserved.append(item)
            return
        marks = self.marks.get(name)
        if marks is None:
            marks = self.marks[name] = [item, None, None, None, item, None]
        else:
            marks[4] = item
        if step is not None:
            furthest = self.steps.get(name)
            if furthest is None or step > furthest:
                self.steps[name] = step
                marks[5] = item
        if value != value:  # NaN
            return
        if marks[1] is None:
            marks[1] = item
        if value - value == 0.0:  # finite (an infinity less itself is NaN)
            high, low = marks[2], marks[3]
            if high is None or value > high[2]:
                marks[2] = item
            if low is None or value < low[2]:
                marks[3] = item

    def points(self, name_of: Callable[[str, str], str]) -> list[MetricPoint]:
        """The kept points in logged order (a row's made with its name from ``name_of``)."""
        kept = {item[0]: item for marks in self.marks.values() for item in marks if item}
        kept.update((item[0], item) for item in self.reserved)
        point = _make_point
        return [
            source
            if type(source) is MetricPoint
            else point(name_of(source[1], source[1]), value, source[3], source[4])
            for _, (_, source, value) in sorted(kept.items())
        ]


#: A run's power samples, by ``t0`` then by insertion (SQLite; the store's read and a study
#: budget's, in its own transaction).
_SQLITE_SAMPLES = (
    "SELECT t0, t1, cpu_w, gpu_w, ram_w, intensity_g_per_kwh FROM samples WHERE run_id = ? "
    "ORDER BY t0, seq"
)


def samples_by_run(
    rows: Iterable[Sequence[Any]], run_ids: Iterable[str] | None = None
) -> dict[str, list[PowerSample]]:
    """Power samples by run id, each run's ordered by ``t0`` then by insertion.

    Args:
        rows: ``samples`` rows ``(run_id, t0, t1, cpu_w, gpu_w, ram_w, intensity_g_per_kwh)``
            in insertion (``seq``) order. A power stored as SQLite's text ``'NaN'`` reads as
            NaN; an absent one as ``None`` (as :func:`sqlite_samples`).
        run_ids: the runs whose samples are wanted, the rows of others skipped (a scan of
            every sample: see :data:`SCAN_ALL_METRICS_SHARE`); ``None``: every row's run.

    Returns:
        Run id -> its samples, as :func:`sqlite_samples` reads them one run at a time (a
        stable sort by ``t0`` keeps insertion order among equal starts). Runs without
        samples are left out.
    """
    by_run: dict[str, list[PowerSample]] = {}
    get = by_run.get
    make, plain = _make_sample, _PLAIN_POWER
    wanted = None if run_ids is None else set(run_ids)
    for run_id, t0, t1, cpu_w, gpu_w, ram_w, intensity in rows:
        found = get(run_id)
        if found is None:
            if wanted is not None and run_id not in wanted:
                continue
            found = by_run[run_id] = []
        if (
            type(cpu_w) in plain
            and type(gpu_w) in plain
            and type(ram_w) in plain
            and type(intensity) in plain
        ):  # the powers as stored (REAL or NULL): no conversion, no keywords
            found.append(make(t0, t1, cpu_w, gpu_w, ram_w, intensity))
        else:
            found.append(_sample(t0, t1, cpu_w, gpu_w, ram_w, intensity))
    start = _START
    for found in by_run.values():
        if len(found) > 1:
            starts = list(map(start, found))
            try:  # already in order (samples are written as they are taken): no sort
                if all(map(operator.le, starts, islice(starts, 1, None))):
                    continue
            except TypeError:  # a start stored as text ('NaN') beside a number
                pass
            found.sort(key=_start_order)  # stable: insertion order among equal starts
    return by_run


#: ``PowerSample(*values)`` at a fraction of the cost (see
#: :func:`greenprint._frozen.slot_constructor`).
_make_sample = slot_constructor(PowerSample)
#: The types of a stored power (or intensity) that is read as it is.
_PLAIN_POWER = frozenset({float, type(None)})
_START = operator.attrgetter("t0")


def _start_order(sample: PowerSample) -> tuple[int, float]:
    """Where ``ORDER BY t0`` puts a sample: by its start, a NaN start after every number.

    A NaN start is SQLite's stored text ``'NaN'`` (read as it is stored) or PostgreSQL's NaN.
    """
    t0 = sample.t0
    return (0, t0) if isinstance(t0, (int, float)) and t0 == t0 else (1, 0.0)


def sqlite_samples(conn: Any, run_id: str) -> list[PowerSample]:
    """A run's power samples read on the ``sqlite3`` connection ``conn`` (W over ``[t0, t1]``).

    A power stored as SQLite's text ``'NaN'`` reads as NaN; an absent one as ``None``.
    """
    return [_sample(*row) for row in conn.execute(_SQLITE_SAMPLES, (run_id,))]


def _sample(t0: Any, t1: Any, *powers: Any) -> PowerSample:
    """A stored sample's values as a :class:`PowerSample` (a power's text ``'NaN'``: NaN)."""
    return PowerSample(t0, t1, *(None if v is None else float(v) for v in powers))
