"""Reading a user-supplied hourly intensity CSV (``timestamp,g_per_kwh``)."""

from __future__ import annotations

import csv
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from greenprint._exceptions import IntensityCSVError, InvalidIntensityError
from greenprint.carbon._intensity import Intensity, validate_intensity

__all__ = ["load_intensity_csv", "parse_timestamp"]

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_OFFSET_RE = re.compile(r"([+-])(\d{2}):?(\d{2})?$")
_MIN_UNIX_S = -62_135_596_800.0  # 0001-01-01T00:00:00Z
_MAX_UNIX_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z


def parse_timestamp(text: str) -> float:
    """Parse a CSV timestamp into Unix seconds.

    Args:
        text: Unix seconds (``1700000000`` or ``1700000000.5``), or ISO 8601
            (``2024-03-01T13:00:00Z``, ``2024-03-01 13:00+01:00``, ``2024-03-01``). A timestamp
            without an offset is taken as UTC.

    Returns:
        Seconds since the Unix epoch.

    Raises:
        ValueError: the text is neither.
    """
    text = text.strip()
    if _NUMBER_RE.match(text):
        value = float(text)
        if not _MIN_UNIX_S <= value <= _MAX_UNIX_S:
            raise ValueError(f"Unix time out of range (years 1-9999): {text!r}")
        return value
    iso = text
    if iso[-1:] in ("Z", "z"):
        iso = iso[:-1] + "+00:00"
    if "T" in iso or " " in iso or "t" in iso:
        # Python 3.10's fromisoformat wants "+HH:MM"; accept "+HHMM" and "+HH" too.
        date_part, _, time_part = re.split(r"([Tt ])", iso, maxsplit=1)
        match = _OFFSET_RE.search(time_part)
        if match and len(time_part) > len(match.group(0)):
            sign, hours, minutes = match.groups()
            time_part = time_part[: match.start()] + f"{sign}{hours}:{minutes or '00'}"
        iso = f"{date_part}T{time_part}"
    parsed = datetime.fromisoformat(iso)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def load_intensity_csv(path: str | os.PathLike[str], *, source: str | None = None) -> Intensity:
    """Read an hourly (or any-interval) grid-intensity series.

    The file has a header naming the columns ``timestamp`` and ``g_per_kwh`` (any order, other
    columns ignored), then one row per interval: its start time and its intensity in
    g CO2-eq/kWh. Timestamps are Unix seconds or ISO 8601 (with an offset or ``Z``; without one
    they are UTC), strictly increasing. Blank lines and lines starting with ``#`` are skipped.
    Each value holds until the next row's timestamp (see :class:`Intensity` for the edges).

    Args:
        path: the CSV file.
        source: provenance to record (default ``"csv:<absolute path>"``).

    Returns:
        A series :class:`Intensity`; ``g_per_kwh`` is the mean of the sample values.

    Raises:
        IntensityCSVError: the file cannot be read, or a row is malformed (bad timestamp, bad or
            out-of-range number, missing column, unsorted or duplicate timestamp); the message
            names the file and line.
    """
    file = Path(path)
    label = str(file)
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            lines = list(enumerate(fh, start=1))
    except (OSError, UnicodeDecodeError) as e:
        raise IntensityCSVError(f"cannot read intensity CSV {label}: {e}") from e
    rows = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise IntensityCSVError(f"{label}: empty file; expected a header 'timestamp,g_per_kwh'")
    header_line, header_text = rows[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    missing = [c for c in ("timestamp", "g_per_kwh") if c not in header]
    if missing:
        raise IntensityCSVError(
            f"{label}:{header_line}: header must name the columns 'timestamp' and 'g_per_kwh' "
            f"(missing {', '.join(missing)}), got {header_text.strip()!r}"
        )
    t_col, v_col = header.index("timestamp"), header.index("g_per_kwh")
    series: list[tuple[float, float]] = []
    previous_line = header_line
    for line_no, text in rows[1:]:
        fields = next(csv.reader([text]))
        where = f"{label}:{line_no}"
        if len(fields) <= max(t_col, v_col):
            raise IntensityCSVError(
                f"{where}: expected {len(header)} columns ({', '.join(header)}), "
                f"got {len(fields)}: {text.strip()!r}"
            )
        raw_t, raw_v = fields[t_col].strip(), fields[v_col].strip()
        try:
            t = parse_timestamp(raw_t)
        except (ValueError, IndexError, OverflowError):
            raise IntensityCSVError(
                f"{where}: bad timestamp {raw_t!r} (use ISO 8601 such as 2024-03-01T13:00:00Z, "
                "or Unix seconds)"
            ) from None
        try:
            value = validate_intensity(raw_v, what="g_per_kwh")
        except InvalidIntensityError as e:
            raise IntensityCSVError(f"{where}: {e}") from None
        if series and t <= series[-1][0]:
            kind = "duplicate" if t == series[-1][0] else "unsorted"
            raise IntensityCSVError(
                f"{where}: {kind} timestamp {raw_t!r}: must be later than the one on line "
                f"{previous_line}"
            )
        series.append((t, value))
        previous_line = line_no
    if not series:
        raise IntensityCSVError(f"{label}: no data rows after the header")
    mean = math.fsum(v for _, v in series) / len(series)
    first_year = datetime.fromtimestamp(series[0][0], tz=timezone.utc).year
    return Intensity(
        g_per_kwh=mean,
        source=source or f"csv:{file.resolve()}",
        region=None,
        year=first_year,
        is_default=False,
        series=tuple(series),
    )
