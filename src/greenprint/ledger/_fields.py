"""How each :class:`~greenprint.RunRecord` field is checked, stored and read back.

Pure Python (no SQLAlchemy), so the checks run before any database is touched. The stored form of
a value is what the SQL layer binds: floats stay floats (NaN and infinities included; the SQL
layer takes care of SQLite, which cannot store NaN as a REAL), dictionaries become JSON text, FPO
becomes a decimal string (it outgrows 64-bit integers for large models).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

from greenprint._exceptions import ConfigError, LedgerError
from greenprint._records import RUN_STATUSES, MetricPoint, PowerSample, RunRecord, check_role
from greenprint._validate import INT64_MAX, check_fpo

__all__ = [
    "FIELD_KINDS",
    "ROLE_GIVEN_AT",
    "SCHEMA_VERSION",
    "ColumnDecoder",
    "CorruptValueError",
    "check_metric",
    "check_sample",
    "decode_columns",
    "decode_field",
    "encode_field",
    "encode_record",
    "json_dumps",
]

#: The provenance key where ``Ledger.set_role`` records when it gave a run its role (ISO 8601,
#: UTC, to the microsecond: its text sorts as its time); ``ledger merge`` keeps the role given last.
ROLE_GIVEN_AT = "role_given_at"

logger = logging.getLogger(__name__)

#: The ledger schema this greenprint writes (its history and migrations: ``_schema``). The one
#: definition: the SQLAlchemy schema and the standard-library SQLite path both import it.
SCHEMA_VERSION = 6

# field -> (kind, nullable). Kinds: "str", "status", "role", "float", "int", "bigint", "bool",
# "json".
FIELD_KINDS: dict[str, tuple[str, bool]] = {
    "id": ("str", False),
    "name": ("str", False),
    "study": ("str", False),
    "parent_id": ("str", True),
    "status": ("status", False),
    "started_at": ("float", False),
    "ended_at": ("float", True),
    "heartbeat_at": ("float", True),
    "flush_interval_s": ("float", False),
    "duration_s": ("float", False),
    "host": ("str", False),
    "command": ("str", False),
    "git_commit": ("str", True),
    "git_dirty": ("bool", True),
    "python_version": ("str", False),
    "greenprint_version": ("str", False),
    "torch_version": ("str", True),
    "hardware": ("json", False),
    "env": ("json", False),
    "params": ("json", False),
    "dataset_size": ("int", True),
    "fpo": ("bigint", True),
    "param_count": ("int", True),
    "scope": ("str", False),
    "energy_cpu_kwh": ("float", True),
    "energy_gpu_kwh": ("float", True),
    "energy_ram_kwh": ("float", True),
    "energy_kwh": ("float", False),
    "machine_energy_kwh": ("float", True),
    "pue": ("float", False),
    "intensity_g_per_kwh": ("float", True),
    "intensity_source": ("str", False),
    "emissions_kg": ("float", False),
    "provenance": ("json", False),
    "error": ("str", True),
    "role": ("role", True),
    "job_id": ("str", True),
    "node_rank": ("int", True),
    "local_rank": ("int", True),
    "node_meter": ("bool", True),
    "contained": ("bool", True),
}


class CorruptValueError(LedgerError):
    """A stored value of a run that cannot be read back (hand-edited, written by a broken tool).

    Raised by :class:`ColumnDecoder`, which does not know the ledger: a reader turns it into a
    :class:`~greenprint.LedgerError` naming the ledger too (:meth:`in_ledger`), so this class
    never reaches a user.

    Attributes:
        run_id: the run whose value it is.
        column: the ``runs`` column that holds it.
        problem: what is wrong with it (the decoder's error, and the start of the value).
    """

    def __init__(self, *, run_id: str, column: str, problem: str) -> None:
        super().__init__(_corrupt_message("the ledger", run_id, column, problem))
        self.run_id = run_id
        self.column = column
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_corrupt, (self.run_id, self.column, self.problem)

    def in_ledger(self, ledger: str) -> LedgerError:
        """The error a reader raises: the same one-line message, naming ``ledger``."""
        return LedgerError(
            _corrupt_message(f"ledger {ledger}", self.run_id, self.column, self.problem)
        )


def _rebuild_corrupt(run_id: str, column: str, problem: str) -> CorruptValueError:
    return CorruptValueError(run_id=run_id, column=column, problem=problem)


def _corrupt_message(where: str, run_id: str, column: str, problem: str) -> str:
    """One line: where, the run, the column, what is wrong and how to repair it."""
    kind, nullable = FIELD_KINDS[column]
    fix = "'{}'" if kind == "json" else "NULL" if nullable else "<value>"
    return (
        f"{where}: run {run_id} has a corrupt {column} column ({problem}); repair the value "
        f"by hand or reset it (UPDATE runs SET {column} = {fix} WHERE id = '{run_id}'), "
        "then read again; the other runs are untouched"
    )


def _json_default(obj: Any) -> Any:
    """Make numpy scalars/arrays, paths, sets and tuples JSON-able; anything else by ``str``."""
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    logger.warning("greenprint: storing a %s as its string form in the ledger", type(obj).__name__)
    return str(obj)


def json_dumps(value: Any) -> str:
    """JSON text of a value; NaN and infinities are written as ``NaN``/``Infinity``."""
    return json.dumps(value, default=_json_default, allow_nan=True)


def _bad(field: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"ledger field {field!r} must be {expected}, got {type(value).__name__} {value!r:.80}"
    )


def storable(text: str) -> str:
    r"""``text`` as every ledger can store it: lone surrogates and NUL characters escaped.

    Python decodes a file name or argument that is not valid UTF-8 with surrogates
    ("surrogateescape"): a run's command of ``python train.py`` given a Latin-1 file name would
    otherwise keep every write of the run from landing (the ledger stores UTF-8). The original
    bytes are written as ``\xff`` escapes, any other lone surrogate as ``\udXXX``, and a NUL
    (which PostgreSQL's text cannot hold) as ``\x00``. Other text is returned as is.

    Example:
        >>> storable("train.py caf\udce9.txt")
        'train.py caf\\xe9.txt'
        >>> storable("a\x00b")
        'a\\x00b'
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_field(field: str, value: Any) -> Any:
    """Check one RunRecord field's value and return its stored form.

    Args:
        field: the RunRecord field name.
        value: the value to store.

    Returns:
        The value to bind in SQL.

    Raises:
        ConfigError: an unknown field (or ``metrics``), or a value of the wrong type.
    """
    spec = FIELD_KINDS.get(field)
    if spec is None:
        known = ", ".join(sorted(FIELD_KINDS))
        raise ConfigError(f"unknown ledger field {field!r}; known fields: {known}")
    kind, nullable = spec
    if value is None:
        if nullable:
            return None
        raise _bad(field, f"a {kind} (not None)", value)
    if kind == "str":
        if not isinstance(value, str):
            raise _bad(field, "a string", value)
        return storable(value)
    if kind == "status":
        if value not in RUN_STATUSES:
            raise ConfigError(
                f"ledger field 'status' must be one of {', '.join(RUN_STATUSES)}, got {value!r}"
            )
        return str(value)
    if kind == "role":
        return check_role(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _bad(field, "a number", value)
        return float(value)
    if kind in ("int", "bigint"):
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
            as_float = float(value)
            if math.isfinite(as_float) and as_float.is_integer():
                value = int(as_float)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _bad(field, "an integer", value)
        number = int(value)
        if kind == "bigint":
            return str(check_fpo(field, number))
        if abs(number) > INT64_MAX:
            raise _bad(field, "an integer within 64 bits", value)
        return number
    if kind == "bool":
        if not isinstance(value, (bool, numbers.Integral)):
            raise _bad(field, "a bool", value)
        return bool(value)
    # json
    if not isinstance(value, Mapping):
        raise _bad(field, "a dict", value)
    return json_dumps(dict(value))


def decode_field(field: str, stored: Any) -> Any:
    """The RunRecord value of a stored column value (inverse of :func:`encode_field`)."""
    kind, _ = FIELD_KINDS[field]
    if stored is None:
        return {} if kind == "json" else None
    if kind == "json":
        decoded = json.loads(stored)
        return decoded if isinstance(decoded, dict) else {}
    if kind == "bigint":
        return int(stored)
    if kind == "bool":
        return bool(stored)
    if kind == "float":
        return float(stored)
    if kind == "int":
        return int(stored)
    return stored


def decode_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, Sequence[Any]]:
    """Every field of many runs, decoded column by column (as :func:`decode_field`).

    Args:
        columns: field name -> the stored values of that field, one per run (every field of
            :data:`FIELD_KINDS`).

    Returns:
        Field name -> the decoded values (see :class:`ColumnDecoder`).
    """
    return ColumnDecoder().decode(columns)


class ColumnDecoder:
    """Decodes the stored columns of runs (as :func:`decode_field`), a batch of runs at a time.

    One pass per field over plain sequences; a column that needs no conversion is returned as
    it was given (a list or a tuple, not copied). Over every batch a decoder is given, equal
    strings share one object (a study's runs share their study, host, command, versions and
    statuses: 100,000 runs, tens of MB fewer) and a JSON text repeated across runs (the
    hardware, the environment and the provenance of a study's runs) is decoded once and its
    dictionary shared by those runs (records' dictionaries are read-only by contract).

    Args:
        nulls_stand_for: column -> the stored value that a ``None`` of that column stands for
            (a ``NOT NULL`` column read with ``NULLIF(column, value)``: see
            ``_rows.REPEATED_COLUMNS``); text or JSON columns only.
    """

    def __init__(self, nulls_stand_for: Mapping[str, Any] | None = None) -> None:
        # column -> one object per distinct string; column -> JSON text -> its dictionary
        self._strings: dict[str, dict[Any, Any]] = {}
        self._json: dict[str, dict[Any, dict[str, Any]]] = {}
        # column -> the decoded value a None of the column is read as
        self._null: dict[str, Any] = {name: None for name in FIELD_KINDS}
        # column -> its stand-for value that cannot be decoded, and the error: raised (naming
        # a run) by the first batch with a None in that column
        self._bad_null: dict[str, tuple[Any, Exception]] = {}
        for name, value in (nulls_stand_for or {}).items():
            if FIELD_KINDS[name][0] == "json":
                try:
                    decoded = _decode_json_dict(value)
                except (ValueError, TypeError) as e:
                    self._bad_null[name] = (value, e)
                    continue
                self._json[name] = {None: decoded, value: decoded}
            else:
                decoded = value
                self._strings[name] = {None: value, value: value}
            self._null[name] = decoded

    def decode(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, Sequence[Any]]:
        """The decoded values of one batch of runs.

        Args:
            columns: field name -> the stored values of that field, one per run of the batch
                (every field of :data:`FIELD_KINDS`).

        Returns:
            Field name -> the decoded values, in the order given.

        Raises:
            CorruptValueError: a value cannot be decoded (a JSON column's text that is not
                JSON, an FPO's text that is not a number...): the first such value of the
                batch, naming its run and column. Decoded values are not checked one by one:
                the batch's error is caught here, then the batch searched for its culprit.
        """
        try:
            if self._bad_null:
                self._check_nulls(columns)
            return self._decode(columns)
        except (ValueError, TypeError) as error:
            culprit = self._culprit(columns)
            if culprit is None:  # pragma: no cover - not a stored value's fault: a bug
                raise
            raise culprit from error

    def _check_nulls(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Raise the error of a stand-for value that cannot be decoded, if a run has it."""
        for name, (_, error) in self._bad_null.items():
            if None in columns[name]:
                raise error

    def _culprit(self, columns: Mapping[str, Sequence[Any]]) -> CorruptValueError | None:
        """The first value of a batch that cannot be decoded, as an error naming its run."""
        ids = columns["id"]
        for name in FIELD_KINDS:
            for run_id, value in zip(ids, columns[name], strict=True):
                if value is None:
                    if name not in self._bad_null:
                        continue
                    value, error = self._bad_null[name]  # the value a None stands for
                else:
                    try:
                        decode_field(name, value)
                        continue
                    except (ValueError, TypeError) as e:
                        error = e
                detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                return CorruptValueError(
                    run_id=str(run_id), column=name, problem=f"{detail}: {value!r:.40}"
                )
        return None

    def _decode(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, Sequence[Any]]:
        """:meth:`decode` of a batch, its values not checked one by one."""
        out: dict[str, Sequence[Any]] = {}
        for name, (kind, _) in FIELD_KINDS.items():
            stored = columns[name]
            # Most columns need no conversion at all (the driver returns floats, ints, None):
            # a pass in C finds which (set(map(type, ...))); only the others are converted.
            if name == "id":  # the primary key: every value differs, nothing to share
                out[name] = _as_stored(stored)
            elif (
                stored
                and stored[0] is None
                and stored.count(None) == len(stored)
                and (kind != "json" or self._null[name] is not None)  # else each None is {}
            ):
                # a column every run of the batch leaves NULL, or has the value its NULL
                # stands for: one value, without a pass per value (100,000 runs: 23 of the 41
                # columns of a study; the read 1.41 -> 1.34 s)
                out[name] = [self._null[name]] * len(stored)
            elif kind in ("str", "status", "role"):
                strings = self._strings.setdefault(name, {})
                out[name] = list(map(strings.setdefault, stored, stored))
            elif kind == "float":
                if set(map(type, stored)) <= _FLOAT_TYPES:
                    out[name] = _as_stored(stored)
                else:  # SQLite's text 'NaN', an integer...
                    out[name] = [None if v is None else float(v) for v in stored]
            elif kind == "json":
                distinct = dict.fromkeys(stored)  # in order: the first bad text raises first
                memo = self._json.setdefault(name, {})
                if not memo and 10 * len(distinct) > 9 * len(stored):
                    # nearly all distinct, and no text repeated in an earlier batch: no memo
                    decode = _decode_json_dict
                    out[name] = [{} if text is None else decode(text) for text in stored]
                    continue
                for text in distinct:
                    if text not in memo:
                        memo[text] = {} if text is None else _decode_json_dict(text)
                out[name] = list(map(memo.__getitem__, stored))
            elif kind in ("int", "bigint"):
                if set(map(type, stored)) <= _INT_TYPES:
                    out[name] = _as_stored(stored)
                else:  # FPO's decimal text, a bool...
                    out[name] = [None if v is None else int(v) for v in stored]
            elif kind == "bool":
                out[name] = [None if v is None else bool(v) for v in stored]
            else:  # pragma: no cover - every kind is handled above
                out[name] = [decode_field(name, v) for v in stored]
        return out


def _as_stored(stored: Sequence[Any]) -> Sequence[Any]:
    """The stored values: the caller's list or tuple itself (it is not changed), else a list."""
    return stored if type(stored) in (list, tuple) else list(stored)


_FLOAT_TYPES = frozenset({float, type(None)})
_INT_TYPES = frozenset({int, type(None)})
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _decode_json_dict(text: str) -> dict[str, Any]:
    """``decode_field`` of a JSON column: its dictionary (``{}`` for any other JSON value).

    The decoder's scanner directly (the text is one JSON value, as ``json_dumps`` wrote it):
    half the cost of ``json.loads``, which is used for anything else (spaces around the value,
    bad JSON: its error).
    """
    try:
        decoded, end = _scan_json(text, 0)
    except StopIteration:
        decoded, end = None, -1
    if end != len(text):
        decoded = json.loads(text)
    return decoded if isinstance(decoded, dict) else {}


def encode_record(record: RunRecord) -> dict[str, Any]:
    """Every stored column of a run (all RunRecord fields except ``metrics``), checked."""
    if not isinstance(record, RunRecord):
        raise ConfigError(f"expected a RunRecord, got {type(record).__name__}")
    if not record.id:
        raise ConfigError("a run's id must be a non-empty string")
    return {name: encode_field(name, getattr(record, name)) for name in FIELD_KINDS}


def check_metric(point: MetricPoint) -> MetricPoint:
    """A metric point with plain Python types, or ConfigError if it cannot be stored."""
    if not isinstance(point, MetricPoint):
        raise ConfigError(f"expected a MetricPoint, got {type(point).__name__}")
    if not isinstance(point.name, str) or not point.name:
        raise ConfigError(f"a metric name must be a non-empty string, got {point.name!r}")
    value = point.value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"metric {point.name!r} must have a numeric value, got {value!r:.80}")
    step = point.step
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise ConfigError(f"metric {point.name!r} step must be an integer, got {step!r}")
        if abs(int(step)) > INT64_MAX:
            raise ConfigError(f"metric {point.name!r} step {step} does not fit in 64 bits")
        step = int(step)
    if isinstance(point.time, bool) or not isinstance(point.time, numbers.Real):
        raise ConfigError(f"metric {point.name!r} time must be a number, got {point.time!r}")
    return MetricPoint(name=point.name, value=float(value), step=step, time=float(point.time))


def check_sample(sample: PowerSample) -> PowerSample:
    """A power sample with plain float values, or ConfigError if it cannot be stored."""
    if not isinstance(sample, PowerSample):
        raise ConfigError(f"expected a PowerSample, got {type(sample).__name__}")
    values: dict[str, float | None] = {}
    for name in ("t0", "t1", "cpu_w", "gpu_w", "ram_w", "intensity_g_per_kwh"):
        value = getattr(sample, name)
        if value is None and name not in ("t0", "t1"):
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"power sample {name} must be a number, got {value!r:.80}")
        values[name] = number = float(value)
        if name in ("t0", "t1") and not math.isfinite(number):
            # SQLite stores a NaN as NULL, which its NOT NULL times refused as a LedgerError
            # for the whole flush; PostgreSQL took it: a time is a number of seconds either way
            raise ConfigError(
                f"power sample {name} must be a finite time (seconds since the epoch), "
                f"got {value!r:.80}"
            )
    return PowerSample(**values)  # type: ignore[arg-type]
