"""Ledger text as the ``greenprint ledger`` commands print it: escaped, aligned, in units.

One line per cell, never a control sequence from a run's name (:func:`safe`); energy, CO2-eq,
FPO and durations as the report writes them; times on the local clock, which they name.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from greenprint._format import (
    format_emissions,
    format_energy,
    format_fpo,
    known_duration,
    run_time_text,
)
from greenprint._records import MetricPoint, PowerSample, RunRecord
from greenprint._validate import FPO_MAX
from greenprint.cli._json_indented import indented_json

__all__ = [
    "DATA_FIELDS",
    "MAX_CELL",
    "aligned_table",
    "clock_zone",
    "duration_text",
    "emissions_text",
    "energy_text",
    "fpo_text",
    "json_text",
    "local_time",
    "name_cell",
    "num_text",
    "open_ledger",
    "rank_text",
    "record_dict",
    "safe",
    "unmetered",
    "zoned_time",
]


#: Widest a name-like cell (study, name, metric) of ``ledger ls`` gets, in characters.
MAX_CELL = 40
#: Characters escaped on the terminal besides the C0/C1 controls: line and paragraph separators
#: and the bidirectional overrides and isolates, which can reorder what a row shows.
_INVISIBLE = frozenset(
    "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").


def open_ledger(ledger: str | None) -> Any:
    from greenprint.ledger import Ledger

    return Ledger(ledger, create=False)


def safe(text: object, *, limit: int | None = None) -> str:
    r"""Text from a ledger as it may reach a terminal: one line, no control sequences.

    Control characters (``\n``, ``\r``, ``\x1b``...), line separators and bidirectional
    overrides are shown as escapes, so a run name cannot start a new row, move the cursor or
    colour the terminal. With ``limit``, text longer than ``limit`` characters is cut and ends
    with an ellipsis.
    """
    out = []
    for char in str(text):
        code = ord(char)
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif char in _INVISIBLE:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    safe = "".join(out)
    if limit is not None and len(safe) > limit:
        safe = safe[: limit - 1] + "\u2026"
    return safe


def name_cell(text: object) -> str:
    """A name-like cell of ``ledger ls``: escaped and at most :data:`MAX_CELL` characters."""
    return safe(text, limit=MAX_CELL)


def num_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def unmetered(record: RunRecord) -> dict[str, None]:
    """The cost fields of a run with no energy meter, as ``None``: ``{}`` for any other run.

    A run tracked with ``meters=[]`` (:attr:`RunRecord.energy_recorded` false) holds 0.0 kWh
    and 0.0 kg: unknown, never 0. ``ls``, ``show`` and ``export`` write them as ``-``,
    ``null`` or an empty CSV cell, as the report's JSON does.
    """
    if record.energy_recorded:
        return {}
    out: dict[str, None] = {"energy_kwh": None, "emissions_kg": None}
    if not record.machine_energy_kwh:  # 0.0 too: no meter read the machine either
        out["machine_energy_kwh"] = None
    return out


def energy_text(kwh: float | None) -> str:
    """An energy as the report writes it (``12.3 Wh``, ``0.873 mWh``); ``-`` when none."""
    return "-" if kwh is None else format_energy(kwh)


def emissions_text(kg: float | None) -> str:
    """CO2-eq as the report writes it, without the unit's ``CO2-eq`` (the column says it)."""
    return "-" if kg is None else format_emissions(kg).removesuffix(" CO2-eq")


def fpo_text(fpo: int | None) -> str:
    """An FPO as the report writes it (``3.1 PFPO``); one above the largest float as its digits.

    greenprint refuses to record such an FPO; one in a ledger was written by an older
    greenprint or by hand (``report`` names it and says how to repair it).
    """
    if fpo is None:
        return "unknown"  # not counted, as the report writes it
    if abs(fpo) > FPO_MAX:
        return f"an integer of {len(str(abs(fpo)))} digits (corrupt: above the largest float)"
    return format_fpo(fpo)


def rank_text(rank: int | None) -> str:
    return "-" if rank is None else str(rank)


def local_time(timestamp: float | None) -> str:
    if timestamp is None or not math.isfinite(timestamp) or timestamp <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def zoned_time(timestamp: float | None) -> str:
    """``local_time`` with the offset of the local clock then: ``2026-12-03 23:43:45 UTC+05:30``.

    A time read beside ``whatif``'s UTC hours then says which clock it is on.
    """
    when = local_time(timestamp)
    if when == "-" or timestamp is None:
        return when
    return f"{when} {clock_zone(timestamp)}"


def clock_zone(timestamp: float) -> str:
    """The local clock's offset at ``timestamp`` (s since the epoch): ``UTC+05:30``, ``UTC``."""
    offset = time.localtime(timestamp).tm_gmtoff
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}" if offset else "UTC"


def duration_text(seconds: float) -> str:
    """A duration (s) as the price tag and the report write it: ``0.04 s``, ``1m 35s``.

    ``-`` when unknown (:func:`~greenprint._format.run_time_text`): a record without one holds
    0.0, which is no run of no time.
    """
    return run_time_text(seconds)


def json_text(value: Any) -> str:
    """``json.dumps(json_safe(value), indent=2, allow_nan=False)``, written in one pass.

    (:func:`~greenprint.cli._json_indented.indented_json`: the same text, several times as
    fast as the standard library's indenting encoder.)
    """
    return indented_json(value)


def aligned_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def record_dict(record: RunRecord, *, points: bool = True) -> dict[str, Any]:
    """A run's fields as a dictionary, its points too (as ``dataclasses.asdict``, shallow).

    The run's own dictionaries (parameters, hardware, provenance...) are its, not copies:
    ``asdict`` copied each value deeply, 0.14 ms a run (an export of 100,000 runs: 14 s). The
    caller writes it out (``json_text``) and leaves them as they are. ``points=False``: the
    points as the record holds them (:class:`MetricPoint` objects; :data:`DATA_FIELDS` says
    how each is written).
    """
    out = {name: getattr(record, name) for name in _RECORD_FIELDS}
    out["duration_s"] = known_duration(record.duration_s)  # null: none recorded
    out.update(unmetered(record))  # null: no energy meter (meters=[])
    if points:
        out["metrics"] = [
            {name: getattr(p, name) for name in _POINT_FIELDS} for p in record.metrics
        ]
    return out


def sample_dict(sample: PowerSample) -> dict[str, Any]:
    """A power sample's fields as a dictionary (as ``dataclasses.asdict``, at a tenth of it)."""
    return {name: getattr(sample, name) for name in _SAMPLE_FIELDS}


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RunRecord))
_POINT_FIELDS = tuple(f.name for f in dataclasses.fields(MetricPoint))
_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(PowerSample))

#: How a point and a sample are written as JSON: the dictionaries ``record_dict`` and
#: ``sample_dict`` make of them (``texts_at``'s ``fields_of``).
DATA_FIELDS: dict[type, tuple[str, ...]] = {MetricPoint: _POINT_FIELDS, PowerSample: _SAMPLE_FIELDS}
