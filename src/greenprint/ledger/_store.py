"""``Ledger``: the runs of every study, in a SQLite file or a PostgreSQL database."""

from __future__ import annotations

import dataclasses
import itertools
import operator
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import (
    ConfigError,
    GreenprintError,
    LedgerError,
    LedgerPathError,
    UnknownRunError,
    UnknownStudyError,
)
from greenprint._frozen import slot_constructor
from greenprint._gc import gc_paused
from greenprint._records import (
    MetricPoint,
    PowerSample,
    RunRecord,
    check_statuses,
)
from greenprint.ledger._base import BaseLedger, derive_statuses
from greenprint.ledger._fields import (
    check_metric,
    check_sample,
    decode_field,
    encode_field,
    encode_record,
)
from greenprint.ledger._handles import file_identity
from greenprint.ledger._store_roles import LedgerRoles
from greenprint.ledger._target import Target, mask_passwords, mask_url, resolve_target

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger._merge_summary import MergeSummary
    from greenprint.ledger._rows import PointsRead
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._sqlite import SQLiteStore

__all__ = ["Ledger", "MIN_PREFIX_LEN", "get_ledger"]

MIN_PREFIX_LEN = 4


class Ledger(LedgerRoles, BaseLedger):
    """The runs of every study: a SQLite file or a PostgreSQL database.

    SQLite is read and written with the standard library's ``sqlite3`` (so tracking a run never
    imports SQLAlchemy); PostgreSQL with SQLAlchemy Core. Both share one schema, defined with
    SQLAlchemy in ``greenprint.ledger._schema``.

    Opening checks the location first and refuses, without modifying anything, a directory, a
    path that cannot be created (:class:`~greenprint.LedgerPathError`), a file or database that
    is not a greenprint ledger (:class:`~greenprint.NotALedgerError`) and a ledger written by a
    newer greenprint (:class:`~greenprint.SchemaVersionError`). A ledger with an older schema is
    migrated forward in one transaction.

    See :class:`~greenprint.ledger.BaseLedger` for the contract (thread and process safety,
    immutable records, the derived ``lost`` status).

    Args:
        url_or_path: a file path (SQLite), ``":memory:"``, ``"sqlite:///PATH"`` or
            ``"postgresql+psycopg://USER:PASSWORD@HOST/DB"``; ``None`` for the configured ledger
            (``GREENPRINT_LEDGER``, ``greenprint.toml``, else ``./greenprint.db``).
        create: create the ledger if it does not exist. With ``False`` a missing (or empty)
            ledger raises :class:`~greenprint.LedgerPathError` and no file is created.

    Raises:
        LedgerPathError: see above; also an unsupported URL or an unreachable server.
        NotALedgerError: see above.
        SchemaVersionError: see above, or a migration failed (the ledger is left as it was).
        MissingDependencyError: a PostgreSQL URL without psycopg installed (extra ``postgres``).

    Example:
        >>> import greenprint as gp
        >>> with gp.Ledger(":memory:") as led:
        ...     led.start_run(gp.RunRecord(id="3f2a9c0d", name="baseline", study="demo"))
        ...     [r.name for r in led.runs(study="demo")]
        ['baseline']
    """

    def __init__(
        self, url_or_path: str | os.PathLike[str] | None = None, *, create: bool = True
    ) -> None:
        if url_or_path is None:
            from greenprint._config import load_config

            url_or_path = load_config().ledger
        target = resolve_target(url_or_path)
        self._target: Target = target
        self._closed = False
        self._unneeded = False  # closed by greenprint as no run needed it (_close_unneeded)
        self._close_lock = threading.Lock()
        self._store: SQLStore | SQLiteStore = _opened(target, create=create)
        # the (device, inode) of the file opened: an open connection keeps writing to a deleted
        # file without an error, so writers compare it with what the path holds now
        self._identity = file_identity(target.path)
        if create and target.path is not None:  # writers: SQLite's locks fail on NFS & co
            from greenprint.ledger._fs import warn_if_network_fs

            warn_if_network_fs(target.path)

    # ------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        """The ledger's URL (``sqlite:////abs/path.db`` or PostgreSQL), password masked."""
        return mask_url(self._target.url)

    @property
    def url_unmasked(self) -> str:
        """The URL with its password: for child processes that must open the same ledger."""
        return self._target.url

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for PostgreSQL and in-memory ledgers."""
        return self._target.path

    @property
    def schema_version(self) -> int:
        """The schema version of the ledger (current after opening)."""
        return self._store.schema_version

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    def _file_replaced(self) -> bool:
        """True when a SQLite ledger's file was deleted or replaced since it was opened.

        Writes through this object would then go to the deleted file and be lost; a tracked run
        checks this before each flush and writes itself into a new ledger at the path (one
        ``stat`` call). Always false for PostgreSQL and in-memory ledgers.
        """
        return self._identity is not None and file_identity(self._target.path) != self._identity

    # ------------------------------------------------------------------ writes
    def start_run(self, record: RunRecord) -> None:
        """Insert a new run and any metrics in ``record.metrics``.

        Raises:
            LedgerError: a run with this id exists already, or the ledger cannot be written.
            ConfigError: a field of the record has a value of the wrong type.
        """
        values = _masked(encode_record(record))
        points = [check_metric(p) for p in record.metrics]
        if not self._live().insert_run(values, points):
            raise LedgerError(f"a run with id {record.id!r} is already in ledger {self.url}")

    def flush(
        self,
        run_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        metrics: Sequence[MetricPoint] = (),
        samples: Sequence[PowerSample] = (),
    ) -> None:
        """Update fields and append metrics and power samples in one transaction.

        Args:
            run_id: the run's full id.
            fields: RunRecord field -> new value (any field but ``id`` and ``metrics``).
            metrics: metric points to append (``time`` in seconds since the epoch).
            samples: power samples to append (power in W, times in seconds since the epoch).

        Raises:
            UnknownRunError: no run with id ``run_id``.
            ConfigError: an unknown or read-only field, or a value of the wrong type.
            LedgerError: the ledger cannot be written.
        """
        values: dict[str, Any] = {}
        for name, value in (fields or {}).items():
            if name == "id":
                raise ConfigError("a run's id cannot be changed by flush")
            if name == "metrics":
                raise ConfigError(
                    "metrics are appended with flush(metrics=...), not set as a field"
                )
            values[name] = encode_field(name, value)
        values = _masked(values)
        points = [check_metric(p) for p in metrics]
        power = [check_sample(s) for s in samples]
        if not self._live().update_run(run_id, values, points, power):
            raise UnknownRunError(f"no run with id {run_id!r} in ledger {self.url}")

    # ------------------------------------------------------------------ reads
    def resolve_id(self, run_id: str) -> str:
        """The full id of the run that ``run_id`` names (full id or unique prefix >= 4 chars).

        Ids are lowercase hex; ``run_id`` may be in any case (``447D`` finds ``447d...``).

        Raises:
            UnknownRunError: no match, a prefix shorter than 4 characters, or several matches.
        """
        if not isinstance(run_id, str) or not run_id:
            raise UnknownRunError(f"a run id must be a non-empty string, got {run_id!r}")
        given = run_id
        ids = self._live().find_ids(run_id, limit=6)
        if not ids and run_id.lower() != run_id:
            # an id copied in upper case (a report, a spreadsheet): ids are written lower case
            run_id = run_id.lower()
            ids = self._live().find_ids(run_id, limit=6)
        if len(ids) == 1 and (ids[0] == run_id or len(run_id) >= MIN_PREFIX_LEN):
            return ids[0]
        if not ids:
            short = (
                f" (a run id prefix needs at least {MIN_PREFIX_LEN} characters)"
                if len(run_id) < MIN_PREFIX_LEN
                else ""
            )
            raise UnknownRunError(
                f"no run with id {given!r} in ledger {self.url}{short}" + self._named_hint(given)
            )
        if len(run_id) < MIN_PREFIX_LEN:
            raise UnknownRunError(
                f"run id prefix {given!r} is too short: give at least {MIN_PREFIX_LEN} characters"
            )
        shown = ", ".join(i[:12] for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise UnknownRunError(
            f"run id prefix {given!r} is ambiguous: it matches {shown}; give more characters"
        )

    def _named_hint(self, name: str) -> str:
        """What to add to an unknown id's message when runs have it as their name."""
        named = self._live().find_named(name, limit=6)
        if not named:
            return ""
        studies = {study for _, study in named}
        where = f" of study {next(iter(studies))!r}" if len(studies) == 1 else ""
        if len(named) == 1:
            return f"; {name!r} is the name of run {named[0][0][:8]}{where}: give its id"
        shown = ", ".join(i[:8] for i, _ in named[:5]) + (", ..." if len(named) > 5 else "")
        count = f"{len(named)} runs" if len(named) < 6 else "6 or more runs"
        return f"; {name!r} is the name of {count}{where} ({shown}): give one's id"

    def run(self, run_id: str) -> RunRecord:
        """One run with its metrics, by full id or unique prefix (at least 4 characters).

        Raises:
            UnknownRunError: no run matches, the prefix is too short, or it is ambiguous.
        """
        full_id = self.resolve_id(run_id)
        columns, by_run = self._live().select_runs(run_id=full_id)
        if not columns["id"]:  # pragma: no cover - the run existed; runs are never deleted
            raise UnknownRunError(f"no run with id {run_id!r} in ledger {self.url}")
        return _records(columns, by_run, now=time.time())[0]

    def runs(
        self,
        *,
        study: str | None = None,
        status: str | Sequence[str] | None = None,
        parent_id: str | None | EllipsisType = ...,
    ) -> list[RunRecord]:
        """Runs with their metrics, ordered by ``started_at`` then ``id``.

        Args:
            study: only this study's runs (``None``: all).
            status: a status or statuses to keep, compared with the derived status (so
                ``"lost"`` finds silent ``running`` runs and ``"running"`` excludes them).
            parent_id: ``...``: any; ``None``: top-level runs only; an id: that run's children.

        Raises:
            UnknownStudyError: no run has this study (the message names the nearest
                study first and lists at most ten of the known ones).
            ConfigError: an unknown status.
        """
        return self._read(study=study, status=status, parent_id=parent_id)

    def _read(
        self,
        *,
        study: str | None = None,
        status: str | Sequence[str] | None = None,
        parent_id: str | None | EllipsisType = ...,
        points: PointsRead = "all",
        metrics: Sequence[str] | None = None,
    ) -> list[RunRecord]:
        """:meth:`runs`, or with ``points="score"`` a report's read.

        A report's read: of each metric a run logged, only the points that a score, a choice
        of metric or a role is read from, and every point of greenprint's reserved metrics
        (see :func:`~greenprint.ledger._rows.score_points_by_run`): a run that logged a metric
        at each of 10,000 steps is read as a few points. ``metrics``: only the points of these
        metric names (and of the reserved ones) are read at all, the others left in the ledger
        by the query (a report ranked by a metric it was given reads no other).
        """
        wanted = check_statuses(status, "status")
        stored: list[str] | None = None
        if wanted is not None:
            stored = sorted(wanted | ({"running"} if "lost" in wanted else set()))
        store = self._live()
        with gc_paused():
            columns, by_run = store.select_runs(
                study=study,
                statuses=stored,
                parent_id=parent_id if isinstance(parent_id, str) else None,
                top_level=parent_id is None,
                points=points,
                metrics=None if metrics is None else tuple(metrics),
            )
            found = bool(columns["id"])
            records = _records(columns, by_run, now=time.time())
            # Runs are mostly stored in the order they started: when their start times strictly
            # increase they are in (started_at, id) order already, and the sort is skipped
            # (100,000 runs: 5 ms to check instead of 33 ms to sort).
            started = columns["started_at"]
            in_order = all(map(operator.lt, started, itertools.islice(started, 1, None)))
            del columns, by_run, started  # the columns and point lists: the records hold them
            if wanted is not None:
                records = [r for r in records if r.status in wanted]
            if not in_order:
                records.sort(key=operator.attrgetter("started_at", "id"))
        if study is not None and not found and study not in store.select_studies():
            raise UnknownStudyError(_unknown_study(study, self.studies(), self.url))
        return records

    def studies(self) -> list[str]:
        """The names of the studies in the ledger, sorted."""
        return sorted(self._live().select_studies())

    def _metric_names(self, study: str | None = None) -> list[str]:
        """The names of the metrics ``study``'s runs logged (``None``: every run's), sorted.

        A point of any value counts. One row a run and metric (the marks), not every point:
        what a report ranked by a metric it was given checks before it reads that metric's
        points alone.
        """
        return sorted(self._live().select_metric_names(study))

    def _provenances(self, study: str, status: str) -> list[dict[str, Any]]:
        """The distinct provenances of ``study``'s runs stored with ``status`` (``"pruned"``).

        Without reading the runs (100,012 runs, 19,750 pruned: 60 ms against 0.4 s). One that
        is no JSON object reads as ``{}`` (the read of its run names it).
        """
        found = []
        for stored in self._live().select_provenances(study, status):
            try:
                found.append(decode_field("provenance", stored))
            except (TypeError, ValueError):
                found.append({})
        return found

    def _unscored_logging(self, study: str, metric: str, names: Sequence[str]) -> bool:
        """Whether a run of ``study`` with no finite value of ``metric`` logged one of ``names``.

        Without reading the runs (the marks): what a report given ``metric``, reading its points
        alone, checks before it reads a run with another score as one that logged none (a
        retrain scored on a test split, a helper that logged nothing).
        """
        return self._live().select_unscored_logging(study, metric, list(names))

    def samples(self, run_id: str) -> list[PowerSample]:
        """A run's power samples (W over ``[t0, t1]``), ordered by ``t0``.

        Raises:
            UnknownRunError: no run matches ``run_id`` (full id or unique prefix).
        """
        return self._live().select_samples(self.resolve_id(run_id))

    def _samples_by_run(self, study: str | None = None) -> dict[str, list[PowerSample]]:
        """Every run's power samples by run id (of ``study``'s runs; ``None``: every run's).

        One read, where :meth:`samples` per run is a read (and an id lookup) each: an export
        of 100,000 runs' samples read them in 10 s that way. Each run's as :meth:`samples`
        gives them; runs without samples are left out.
        """
        return self._live().select_samples_by_run(study)

    def close(self) -> None:
        """Release the ledger's connections; later calls raise LedgerError. Idempotent."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._store.close()

    def _close_unneeded(self) -> None:
        """Close a shared ledger that no run needs (``ledger._shared``): its next use reopens it."""
        with self._close_lock:
            if not self._closed:
                self._unneeded = True
        self.close()

    # ------------------------------------------------------------------ merge
    def merge(self, *others: str | os.PathLike[str] | Ledger) -> MergeSummary:
        """Copy the runs, metrics and power samples of other ledgers into this one.

        Idempotent: a run already here with the same content is left alone. A run here (or in
        an earlier input) still ``running`` whose later state another ledger holds is replaced
        by that state; any other difference is a conflict. All in one transaction; the other
        ledgers are read from snapshots and never modified (an older schema is migrated in the
        snapshot). See ``docs/ledger.md``.

        Args:
            *others: paths, URLs or open ledgers (SQLite or PostgreSQL).

        Returns:
            How many runs were added, updated and already present.

        Raises:
            MergeConflictError: a run differs otherwise (the message names it); nothing written.
            ConfigError: this ledger is in memory, or one of ``others`` is this ledger.
            LedgerPathError, NotALedgerError, SchemaVersionError: an input cannot be read.
        """
        from greenprint.ledger._merge import merge_ledgers

        return merge_ledgers(self, others)

    def merge_from(self, other: str | os.PathLike[str] | Ledger) -> MergeSummary:
        """Merge one ledger into this one: ``merge(other)``."""
        return self.merge(other)

    # ------------------------------------------------------------------ internals
    def _live(self) -> SQLStore | SQLiteStore:
        if self._closed:
            if self._unneeded:
                return self._reopen()
            raise LedgerError(f"ledger {self.url} is closed")
        return self._store

    def _reopen(self) -> SQLStore | SQLiteStore:
        """The store of a ledger greenprint closed (``ledger._shared``: no run needed it), anew.

        The user's ``led = run.ledger`` reads on: it raised 'closed' once other ledgers were
        opened since (in a thread pool, between two of its reads). Opened again here, on the
        file now at its path, it is the user's to keep (it is not counted among the shared).

        Raises:
            LedgerError: the ledger cannot be opened again (its file deleted: a LedgerPathError).
        """
        with self._close_lock:
            if self._closed and self._unneeded:
                try:
                    self._target.prepare(create=False)
                    store = _open_store(self._target, create=False)
                except GreenprintError as e:
                    raise LedgerError(
                        f"ledger {self.url} was closed by greenprint (its run had ended and "
                        f"other ledgers were opened since) and cannot be opened again: {e}"
                    ) from e
                self._store = store
                self._identity = file_identity(self._target.path)
                self._unneeded = False
                self._closed = False
            if self._closed:  # closed by its user meanwhile
                raise LedgerError(f"ledger {self.url} is closed")
            return self._store


def _records(
    columns: Mapping[str, Sequence[Any]],
    by_run: Mapping[str, list[MetricPoint]],
    *,
    now: float,
) -> list[RunRecord]:
    """Records of stored runs given column by column, decoded (``_rows.decoded_columns``)."""
    empty: list[MetricPoint] = []
    get = by_run.get
    metrics = [tuple(get(run_id, empty)) for run_id in columns["id"]]
    ordered = [metrics if name == "metrics" else columns[name] for name in _RECORD_FIELDS]
    # Positional, in the dataclass's field order: a third of the cost of keyword arguments.
    # map() hands each record's values from the columns to the constructor without a tuple of
    # 42 values per record first (zip): 100,000 runs 60 ms less.
    records = list(map(_make_record, *ordered))
    if "running" in columns["status"]:
        records = derive_statuses(records, now=now)
    return records


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
#: ``RunRecord(*values)`` at a third of the cost (see :func:`greenprint._frozen.slot_constructor`).
_make_record = slot_constructor(RunRecord)


#: The run columns of free text that may quote a URL with its password.
_MASKED_COLUMNS = ("command", "error")


def _masked(values: dict[str, Any]) -> dict[str, Any]:
    """Encoded run columns with the password of any URL in the command or error masked.

    A script given its ledger (or any database) as a URL on its command line recorded that
    URL's password in the run's ``command``, which ``ledger show``, exports and reports print.
    A run that failed on such a URL recorded it in its ``error`` (the exception's message:
    ``OperationalError: connection to postgresql://bob:pw@db/gp failed``) the same way.
    """
    for column in _MASKED_COLUMNS:
        text = values.get(column)
        if isinstance(text, str):
            masked = mask_passwords(text)
            if masked != text:
                values = {**values, column: masked}
    return values


#: How long a reader waits, in seconds, for a ledger file that another process made just now
#: to get its tables (a run makes the file, then its tables: a read in between found "the file
#: is empty" or "no tables", and ``greenprint ledger ls`` in a second terminal as a training
#: started failed).
BEING_MADE_S = 2.0


def _opened(target: Target, *, create: bool) -> SQLStore | SQLiteStore:
    """The store of ``target``, prepared and opened.

    Reading, a file that another process made just now (empty, or without tables yet) is
    waited for, up to :data:`BEING_MADE_S`.

    Raises:
        LedgerPathError: as :meth:`Target.prepare` and the stores (no ledger there: a file
            missing, or empty or without tables and not written in the last BEING_MADE_S s).
    """
    deadline = time.monotonic() + BEING_MADE_S
    while True:
        created = False
        try:
            created = target.prepare(create=create)
            return _open_store(target, create=create)
        except BaseException as e:
            if created and target.path is not None:
                _remove_if_empty(target.path)
            waited = isinstance(e, LedgerPathError) and not create
            if not waited or not _being_made(target.path) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def _being_made(path: Path | None) -> bool:
    """Whether the file ``path`` (or its WAL) was written in the last :data:`BEING_MADE_S` s."""
    if path is None:
        return False
    latest = 0.0
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            latest = max(latest, candidate.stat().st_mtime)
        except OSError:
            continue
    return time.time() - latest < BEING_MADE_S


def _open_store(target: Target, *, create: bool) -> SQLStore | SQLiteStore:
    """SQLite through the standard library (no SQLAlchemy import); PostgreSQL through SQLAlchemy."""
    if target.backend == "sqlite":
        from greenprint.ledger._sqlite import SQLiteStore

        return SQLiteStore(target, create=create)
    from greenprint.ledger._sql import SQLStore

    return SQLStore(target, create=create)


def _remove_if_empty(path: Path) -> None:
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def get_ledger(ledger: None | str | os.PathLike[str] | Ledger, *, create: bool = True) -> Ledger:
    """A ledger from ``None`` (the configured one), a path or URL, or a ledger object.

    Args:
        ledger: ``None``, a path, a URL, or an open :class:`Ledger` (returned as it is).
        create: create a missing ledger (ignored for an open ledger).

    Returns:
        The :class:`Ledger`.

    Raises:
        LedgerPathError, NotALedgerError, SchemaVersionError: as :class:`Ledger` does.
    """
    if isinstance(ledger, Ledger):
        return ledger
    return Ledger(ledger, create=create)


#: How many study names the "no study" message lists at most (a ledger may hold hundreds).
_STUDIES_LISTED = 10


def _unknown_study(study: str, known: list[str], url: str) -> str:
    """The "no study" message: the nearest names first, then at most a few of the others."""
    if not known:
        return f"no study {study!r} in ledger {url}: the ledger is empty (no run yet)"
    from greenprint._suggest import nearest, suggestion

    close = nearest(study, known, n=3) if isinstance(study, str) else []
    hint = suggestion(close)
    shown = [*close, *(s for s in known if s not in close)][: max(_STUDIES_LISTED, len(close))]
    more = len(known) - len(shown)
    listing = ", ".join(map(repr, shown)) + (
        f" and {more} more (Ledger.studies() lists them all)" if more else ""
    )
    if hint:  # "...; did you mean 'a'? Its studies: ..." (one clause each, no "?;")
        return f"no study {study!r} in ledger {url}{hint} Its studies: {listing}"
    return f"no study {study!r} in ledger {url}; its studies: {listing}"
