"""Merge ledgers: per-node SQLite files (or any ledgers) into one, idempotently.

Nodes without a shared database each write their own SQLite file; :func:`merge_ledgers` copies
their runs, metrics and power samples into one target ledger (SQLite or PostgreSQL):

* **Run ids are unique**: a run already in the target with the same content is left alone, so
  merging the same files twice changes nothing.
* **A run that progressed** is the expected difference: a node file copied while its run was
  still ``running`` and the same run later finished (or sent later heartbeats). When the two
  rows agree on the run's identity (``host``, ``started_at``), the older one is stored as
  ``running`` and its metrics and power samples are a prefix of the newer one's, the newer state
  wins: its row replaces the older one and its metrics and samples are stored. Its name and
  study may differ: a running run is renamed (``run.set(name=...)``) or moved into its sweep's
  study (Ray Tune's callback adopting a trial) while it runs. Its
  samples may also all come after the older one's (a run saved apart when its ledger refused
  its last writes holds the samples that ledger lacks): the two are then stored end to end.
* **A role given afterwards** (``ledger set-role``: ``role``, and with ``--part-of``
  ``parent_id`` and ``contained``; it records when in the provenance, ``role_given_at``): of two
  copies of an ended run that differ by those fields only, the one given its role last is kept,
  the target's when neither says (``roles_kept``), an input's given later replacing it
  (``roles_taken``).
* **Anything else that differs is a conflict**: :class:`~greenprint.ledger.MergeConflictError`
  names the runs and the fields that differ, and nothing is written (one transaction).

Every column of the ``runs`` table is copied, read from the schema (``FIELD_KINDS``), never from a
hand-written list. SQLite inputs are read from a snapshot taken with SQLite's online backup (so a
node still writing does not tear the copy) into a temporary file; an input of an older schema
version is migrated there, and the input file itself is never modified.

Imported only by ``Ledger.merge`` and ``greenprint ledger merge``: this module imports SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from greenprint._exceptions import (
    ConfigError,
    LedgerError,
    LedgerPathError,
    MergeConflictError,
    NotALedgerError,
)
from greenprint._format import count_of
from greenprint.ledger._base import BaseLedger
from greenprint.ledger._fields import (
    FIELD_KINDS,
    ROLE_GIVEN_AT,
    CorruptValueError,
    decode_columns,
    encode_field,
)
from greenprint.ledger._merge_summary import MergeSummary
from greenprint.ledger._schema import metric_marks as marks_t
from greenprint.ledger._schema import metrics as metrics_t
from greenprint.ledger._schema import runs as runs_t
from greenprint.ledger._schema import samples as samples_t
from greenprint.ledger._sql import SQLStore
from greenprint.ledger._sqlite_forks import FORK_GATE
from greenprint.ledger._target import Target, resolve_target

__all__ = [
    "IDENTITY_FIELDS",
    "ROLE_FIELDS",
    "MergeInputs",
    "MergeSummary",
    "merge_ledgers",
    "read_inputs",
    "write_merged",
]

logger = logging.getLogger(__name__)

#: Fields on which two copies of a run must agree for the newer one to count as its progress.
#: Not its name or study: both change while a run runs (``run.set(name=...)``, a Ray Tune trial
#: or sweep moved into the experiment's study), and a node file merged before such a change and
#: again after it was a conflict, its run's final state never merged.
IDENTITY_FIELDS = ("host", "started_at")

#: The fields ``ledger set-role`` writes (``--part-of``: the parent and ``contained`` too): a
#: role given afterwards in the target is kept when the inputs still hold the run as it ran.
ROLE_FIELDS = frozenset({"role", "parent_id", "contained"})

_MAX_LISTED = 10  # conflicting runs named in the message
_CHUNK = 500  # ids per IN (...) list: under SQLite's and PostgreSQL's parameter limits

_Metric = tuple[str, float, int | None, float]  # name, value, step, time
_Sample = tuple[float, float, float | None, float | None, float | None, float | None]


@dataclasses.dataclass
class _Run:
    """One run as stored: its decoded row, metrics in logged order, samples by ``t0``."""

    row: dict[str, Any]
    metrics: list[_Metric]
    samples: list[_Sample]
    source: str

    @property
    def last_seen(self) -> float:
        """The latest time the run wrote (s since the epoch)."""
        times = [self.row.get(k) for k in ("ended_at", "heartbeat_at", "started_at")]
        return max(float(t) for t in times if t is not None)


# ---------------------------------------------------------------------------------- comparing


def _same(a: Any, b: Any) -> bool:
    """Equality that takes NaN as equal to NaN, also inside tuples, lists and dicts."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _same_list(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))


def _is_prefix(short: Sequence[Any], long: Sequence[Any]) -> bool:
    return len(short) <= len(long) and _same_list(short, long[: len(short)])


def _is_suffix(short: Sequence[Any], long: Sequence[Any]) -> bool:
    return len(short) <= len(long) and _same_list(short, long[len(long) - len(short) :])


def _differing_fields(a: _Run, b: _Run) -> list[str]:
    fields = [name for name in FIELD_KINDS if not _same(a.row.get(name), b.row.get(name))]
    if not _same_list(a.metrics, b.metrics):
        fields.append("metrics")
    if not _same_list(a.samples, b.samples):
        fields.append("samples")
    return fields


def _role_given_later(a: _Run, b: _Run) -> _Run | None:
    """Of two copies of a run that differ only by a role given afterwards, the later one.

    ``greenprint ledger set-role`` on the merged ledger (a baseline named, a failed attempt made
    a part of its rerun), then the node files merged again with new runs: each such run was a
    conflict, and the documented re-merge wrote nothing. The other way round, a role given in a
    node's file after a merge (the baseline named where the student first looked) was dropped
    by the next merge, the merged ledger keeping the role it had. Each ``set-role`` records when
    (provenance ``role_given_at``): the copy given its role last wins, ``a`` when neither says
    (roles given before greenprint recorded it, or when the runs ran). Both copies must have
    ended (set-role refuses a running run) and agree on everything else. ``None``: they differ
    otherwise (or not at all).
    """
    if "running" in (a.row["status"], b.row["status"]):
        return None
    differing = _differing_fields(a, b)
    if "provenance" in differing:
        if not _same(_without_role_time(a), _without_role_time(b)):
            return None
        differing.remove("provenance")
    elif not differing:
        return None
    if not ROLE_FIELDS.issuperset(differing):
        return None
    return b if _role_given_at(b) > _role_given_at(a) else a


def _without_role_time(run: _Run) -> dict[str, Any]:
    provenance = run.row.get("provenance") or {}
    return {k: v for k, v in provenance.items() if k != ROLE_GIVEN_AT}


def _role_given_at(run: _Run) -> str:
    """When ``ledger set-role`` gave the run its role (ISO 8601 text), else ``""``."""
    given = (run.row.get("provenance") or {}).get(ROLE_GIVEN_AT)
    return given if isinstance(given, str) else ""


def _continues(short: Sequence[_Sample], long: Sequence[_Sample]) -> bool:
    """Whether the samples ``long`` all come after those of ``short`` (none overlapping).

    A run saved apart when its ledger refused its last writes (``greenprint-unsaved-<id>.db``)
    holds the samples its ledger lacks, and the earlier ones only when that ledger could still
    be read (a PostgreSQL server down could not).
    """
    return bool(short) and bool(long) and long[0][0] >= short[-1][1]


def _progressed(older: _Run, newer: _Run) -> bool:
    """Whether ``newer`` is a later state of the same run as ``older`` (see the module doc)."""
    return (
        older.row["status"] == "running"
        and all(_same(older.row[k], newer.row[k]) for k in IDENTITY_FIELDS)
        and newer.last_seen >= older.last_seen
        and _is_prefix(older.metrics, newer.metrics)
        and (_is_prefix(older.samples, newer.samples) or _continues(older.samples, newer.samples))
    )


def _combine(a: _Run, b: _Run, conflicts: list[tuple[str, str]]) -> _Run:
    """The state to keep of two copies of one run; a conflict is appended and ``a`` kept."""
    differing = _differing_fields(a, b)
    if not differing:
        return a
    if differing == ["samples"]:
        # a saved-apart run merged before: the target holds its samples end to end with the
        # earlier ones, the file its later ones only; merging the file again was a conflict
        longer, shorter = (a, b) if len(a.samples) >= len(b.samples) else (b, a)
        if _is_suffix(shorter.samples, longer.samples):
            return longer
    later = _role_given_later(a, b)
    if later is not None:  # a node's file given a role, and an older copy of it
        return later
    older, newer = (a, b) if a.last_seen <= b.last_seen else (b, a)
    if _progressed(older, newer):
        if _is_prefix(older.samples, newer.samples):
            return newer
        return dataclasses.replace(newer, samples=[*older.samples, *newer.samples])
    conflicts.append(
        (
            a.row["id"],
            f"run {a.row['id']} ({a.source} vs {b.source}: {', '.join(differing[:6])}"
            f"{', ...' if len(differing) > 6 else ''} differ)",
        )
    )
    return a


# ---------------------------------------------------------------------------------- reading


def _read_runs(conn: Connection, source: str, ids: Sequence[str] | None = None) -> list[_Run]:
    """Runs with their metrics and samples (every run, or those of ``ids``), one transaction."""
    if ids is None:
        chunks: list[Sequence[str] | None] = [None]
    else:
        chunks = [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
    out: list[_Run] = []
    for chunk in chunks:
        where_runs = [] if chunk is None else [runs_t.c.id.in_(list(chunk))]
        rows = [r._mapping for r in conn.execute(sa.select(runs_t).where(*where_runs))]
        if not rows:
            continue
        try:
            decoded = decode_columns({name: [row[name] for row in rows] for name in FIELD_KINDS})
        except CorruptValueError as e:  # names the run and column: and the ledger
            raise e.in_ledger(source) from e.__cause__
        metrics: dict[str, list[_Metric]] = {}
        where_m = [] if chunk is None else [metrics_t.c.run_id.in_(list(chunk))]
        for m in conn.execute(sa.select(metrics_t).where(*where_m).order_by(metrics_t.c.seq)):
            step = None if m.step is None else int(m.step)
            metrics.setdefault(m.run_id, []).append((m.name, float(m.value), step, float(m.time)))
        samples: dict[str, list[_Sample]] = {}
        where_s = [] if chunk is None else [samples_t.c.run_id.in_(list(chunk))]
        query = sa.select(samples_t).where(*where_s).order_by(samples_t.c.t0, samples_t.c.seq)
        for s in conn.execute(query):
            samples.setdefault(s.run_id, []).append(
                (
                    float(s.t0),
                    float(s.t1),
                    s.cpu_w,
                    s.gpu_w,
                    s.ram_w,
                    s.intensity_g_per_kwh,
                )
            )
        for i, run_id in enumerate(decoded["id"]):
            row = {name: decoded[name][i] for name in FIELD_KINDS}
            out.append(_Run(row, metrics.get(run_id, []), samples.get(run_id, []), source))
    return out


@contextlib.contextmanager
def _snapshot(path: Path) -> Iterator[Target]:
    """A consistent copy of a SQLite ledger in a temporary file (the input is not modified).

    Raises:
        LedgerPathError: the file is missing or unreadable.
        NotALedgerError: the file is not a SQLite database.
    """
    if not path.is_file():
        raise LedgerPathError(f"no ledger at {path}")
    with tempfile.TemporaryDirectory(prefix="greenprint-merge-") as tmp:
        copy = Path(tmp) / "snapshot.db"
        with FORK_GATE:  # a fork waits for the copy (_sqlite_forks.ForkGate)
            _copy(path, copy)
        yield resolve_target(copy)


def _copy(path: Path, copy: Path) -> None:
    """Copy the SQLite ledger at ``path`` to ``copy`` with SQLite's backup."""
    try:
        src = _reader(path)
    except sqlite3.Error as e:
        raise LedgerPathError(f"cannot read ledger {path}: {e}") from e
    try:
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise NotALedgerError(
                f"{path} is not a greenprint ledger (not a SQLite database); left untouched"
            ) from e
        raise LedgerPathError(f"cannot read ledger {path}: {e}") from e
    finally:
        src.close()


def _reader(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and, closed, leaves no ``-wal``/``-shm`` file behind.

    A read-only connection to a ledger in WAL mode creates the two files (readers need the
    shared-memory index) and, unable to checkpoint, leaves them next to the input after the
    merge. A read-write connection that writes nothing changes no byte of the database and,
    the last one to close, removes them (as any other read of the ledger does). A file or
    folder the user may not write is read read-only instead.
    """
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True)
        conn.execute("PRAGMA schema_version").fetchone()  # opens the file: fails if read-only
        return conn
    except sqlite3.Error:
        pass
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)


def _retarget(error: LedgerError, snapshot: Target, shown: str) -> LedgerError:
    """The same error, naming the input instead of its temporary snapshot."""
    message = str(error).replace(snapshot.display, shown)
    return type(error)(message)


def _target_of(source: str | os.PathLike[str] | BaseLedger) -> Target:
    """Where a ledger lives: a path or URL resolved, or an open ledger's own target."""
    if isinstance(source, BaseLedger):
        target = getattr(source, "_target", None)
        if not isinstance(target, Target):
            raise ConfigError(f"cannot merge {source!r}: not a greenprint Ledger")
        return target
    return resolve_target(source)


def _same_ledger(a: Target, b: Target) -> bool:
    """Whether two targets are one ledger: the same URL, or one SQLite file by two names.

    A link to the target (``ln -s merged.db link.db``, a hard link, a bind-mounted folder)
    was merged into it as another ledger: every run read as already there.
    """
    if a == b:
        return True
    if a.path is None or b.path is None:
        return False
    try:
        return os.path.samefile(a.path, b.path)
    except OSError:  # one of them is missing: not one file
        return False


def _read_input(source: str | os.PathLike[str] | BaseLedger) -> tuple[str, list[_Run]]:
    """Every run of one input ledger, and a name for it in messages."""
    target = _target_of(source)
    shown = target.display
    if target.memory:
        if not isinstance(source, BaseLedger):
            raise ConfigError("an in-memory ledger can only be merged as a Ledger object")
        return shown, _read_store_runs(source, shown)
    if target.path is not None:
        with _snapshot(target.path) as snap:
            try:
                # migrates the copy if it is older (the input is left as it is: not said)
                store = SQLStore(snap, create=False, migration_notice=False)
            except LedgerError as e:
                raise _retarget(e, snap, shown) from e
            try:
                return shown, store.transaction(lambda c: _read_runs(c, shown), write=False)
            finally:
                store.close()
    store = SQLStore(target, create=False)
    try:
        return shown, store.transaction(lambda c: _read_runs(c, shown), write=False)
    finally:
        store.close()


def _read_store_runs(ledger: BaseLedger, shown: str) -> list[_Run]:
    """Every run of an open ledger through its store (an in-memory SQLite ledger)."""
    store = ledger._live()  # type: ignore[attr-defined]
    decoded, by_run = store.select_runs()  # decoded as RunRecord fields
    out: list[_Run] = []
    for i, run_id in enumerate(decoded["id"]):
        row = {name: decoded[name][i] for name in FIELD_KINDS}
        points: list[_Metric] = [
            (p.name, float(p.value), p.step, float(p.time)) for p in by_run.get(run_id, [])
        ]
        power: list[_Sample] = [
            (s.t0, s.t1, s.cpu_w, s.gpu_w, s.ram_w, s.intensity_g_per_kwh)
            for s in store.select_samples(run_id)
        ]
        out.append(_Run(row, points, power, shown))
    return out


# ---------------------------------------------------------------------------------- writing


def _insert(conn: Connection, runs: Sequence[_Run]) -> tuple[int, int]:
    """Insert runs with their metrics and samples; the numbers of metrics and samples written."""
    if not runs:
        return 0, 0
    conn.execute(
        runs_t.insert(),
        [{name: encode_field(name, r.row[name]) for name in FIELD_KINDS} for r in runs],
    )
    points = [
        {"run_id": r.row["id"], "name": n, "value": v, "step": s, "time": t}
        for r in runs
        for n, v, s, t in r.metrics
    ]
    if points:
        conn.execute(metrics_t.insert(), points)
    power = [
        {
            "run_id": r.row["id"],
            "t0": t0,
            "t1": t1,
            "cpu_w": cpu,
            "gpu_w": gpu,
            "ram_w": ram,
            "intensity_g_per_kwh": intensity,
        }
        for r in runs
        for t0, t1, cpu, gpu, ram, intensity in r.samples
    ]
    if power:
        conn.execute(samples_t.insert(), power)
    return len(points), len(power)


def _delete(conn: Connection, ids: Sequence[str]) -> None:
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        # the marks first: the points' deletions then compute no marks again (_marks)
        conn.execute(marks_t.delete().where(marks_t.c.run_id.in_(chunk)))
        conn.execute(metrics_t.delete().where(metrics_t.c.run_id.in_(chunk)))
        conn.execute(samples_t.delete().where(samples_t.c.run_id.in_(chunk)))
        conn.execute(runs_t.delete().where(runs_t.c.id.in_(chunk)))


def _conflict_error(conflicts: list[tuple[str, str]], target: str) -> MergeConflictError:
    listed = "; ".join(text for _, text in conflicts[:_MAX_LISTED])
    more = f"; and {len(conflicts) - _MAX_LISTED} more" if len(conflicts) > _MAX_LISTED else ""
    return MergeConflictError(
        f"cannot merge into {target}: {count_of(len(conflicts), 'run')} "
        f"{'differs' if len(conflicts) == 1 else 'differ'} between ledgers: "
        f"{listed}{more}; nothing was written",
        run_ids=tuple(run_id for run_id, _ in conflicts),
    )


def _existing(conn: Connection, shown: str, merged: dict[str, _Run]) -> dict[str, _Run]:
    """The target's copies of the runs being merged (one scan of ids first)."""
    present = {row[0] for row in conn.execute(sa.select(runs_t.c.id))}
    overlap = sorted(present.intersection(merged))
    if not overlap:
        return {}
    if len(overlap) <= 4 * _CHUNK:
        runs = _read_runs(conn, shown, ids=overlap)
    else:  # a re-merge: one pass over each table beats many IN lists (and stale statistics)
        wanted = set(overlap)
        runs = [r for r in _read_runs(conn, shown) if r.row["id"] in wanted]
    return {r.row["id"]: r for r in runs}


@dataclasses.dataclass(frozen=True)
class MergeInputs:
    """The runs of a merge's inputs, read and combined: what :func:`write_merged` writes."""

    runs: dict[str, _Run]
    count: int  # how many ledgers were read


def read_inputs(
    target: Target, sources: Sequence[str | os.PathLike[str] | BaseLedger]
) -> MergeInputs:
    """Read and combine every input of a merge into ``target``, writing nothing anywhere.

    ``greenprint ledger merge`` reads its inputs with this before it opens OUT, so an input that
    cannot be merged (not a ledger, a newer schema, a server that is down, two inputs that
    conflict) leaves OUT as it was: no file made, no tables made in an empty PostgreSQL database.

    Raises:
        MergeConflictError: a run differs between two inputs other than by progress.
        ConfigError: a source is the target itself, or the target is an in-memory ledger.
        LedgerPathError, NotALedgerError, SchemaVersionError: a source cannot be read.
    """
    if target.memory:
        raise ConfigError("merge into a SQLite file or a PostgreSQL ledger, not into :memory:")
    merged: dict[str, _Run] = {}
    conflicts: list[tuple[str, str]] = []
    for source in sources:
        src_target = _target_of(source)
        if _same_ledger(src_target, target):
            via = "" if src_target == target else f" (as {src_target.display})"
            raise ConfigError(f"cannot merge ledger {target.display} into itself{via}")
        _, runs = _read_input(source)
        for run in runs:
            seen = merged.get(run.row["id"])
            merged[run.row["id"]] = run if seen is None else _combine(seen, run, conflicts)
    if conflicts:
        raise _conflict_error(conflicts, target.display)
    return MergeInputs(merged, len(sources))


def merge_ledgers(
    target: BaseLedger, sources: Sequence[str | os.PathLike[str] | BaseLedger]
) -> MergeSummary:
    """Merge the runs of ``sources`` into ``target`` in one transaction.

    Args:
        target: the open ledger to merge into (a SQLite file or PostgreSQL).
        sources: ledgers to read: paths, URLs or open ledgers. They are not modified.

    Returns:
        What was written.

    Raises:
        MergeConflictError: a run differs between two ledgers other than by progress (the
            message names the runs and fields); nothing is written.
        ConfigError: a source is the target itself, or the target is an in-memory ledger.
        LedgerPathError, NotALedgerError, SchemaVersionError: a source cannot be read.
    """
    return write_merged(target, read_inputs(_target_of(target), sources))


def write_merged(target: BaseLedger, inputs: MergeInputs) -> MergeSummary:
    """Write the runs :func:`read_inputs` read into ``target``, in one transaction.

    Raises:
        MergeConflictError: a run differs from the target's copy other than by progress (or a
            role given there); nothing is written.
        ConfigError: the target is an in-memory ledger.
    """
    tgt = _target_of(target)
    if tgt.memory:
        raise ConfigError("merge into a SQLite file or a PostgreSQL ledger, not into :memory:")
    merged = inputs.runs
    # The target's own store is the stdlib SQLite one for files: merge through SQLAlchemy.
    store = target._live()  # type: ignore[attr-defined]
    own = isinstance(store, SQLStore)
    sql_store: SQLStore = store if isinstance(store, SQLStore) else SQLStore(tgt, create=False)

    def do(conn: Connection) -> MergeSummary:
        existing = _existing(conn, tgt.display, merged)
        new: list[_Run] = []
        replaced: list[_Run] = []
        unchanged = roles_kept = roles_taken = 0
        found: list[tuple[str, str]] = []
        for run_id, run in merged.items():
            old = existing.get(run_id)
            if old is None:
                new.append(run)
                continue
            later = _role_given_later(old, run)
            if later is old:
                roles_kept += 1
                unchanged += 1
                continue
            if later is run:  # given its role in the input after the target's
                roles_taken += 1
                replaced.append(run)
                continue
            kept = _combine(old, run, found)
            if kept is old:
                unchanged += 1
            else:
                replaced.append(kept)
        if found:
            raise _conflict_error(found, tgt.display)
        _delete(conn, [r.row["id"] for r in replaced])
        n_metrics, n_samples = _insert(conn, new + replaced)
        return MergeSummary(
            added=len(new),
            updated=len(replaced),
            unchanged=unchanged,
            metrics=n_metrics,
            samples=n_samples,
            roles_kept=roles_kept,
            roles_taken=roles_taken,
        )

    try:
        summary = sql_store.transaction(do, write=True)
    finally:
        if not own:
            sql_store.close()
    logger.info(
        "merged %s into %s: %d runs added, %d updated, %d unchanged",
        count_of(inputs.count, "ledger"),
        tgt.display,
        summary.added,
        summary.updated,
        summary.unchanged,
    )
    return summary
