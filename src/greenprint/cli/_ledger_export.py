"""``greenprint ledger export``: runs as CSV or JSON rows, each as its study's report reads it.

Role, parent and containment are the report's (:func:`._ledger_roles.roles_as_read`), so that
summing the rows gives the price tag; a CSV cell a spreadsheet would run as a formula is quoted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from greenprint._exceptions import ConfigError
from greenprint._format import count_of, json_safe, known_duration
from greenprint._gc import gc_paused, gc_paused_call
from greenprint._records import PowerSample, RunRecord
from greenprint.cli._cells import (
    DATA_FIELDS,
    json_text,
    open_ledger,
    record_dict,
    unmetered,
)
from greenprint.cli._common import TEXT, Choice, applied_intensity, ledger_option, study_option
from greenprint.cli._json_indented import texts_at
from greenprint.cli._ledger_roles import roles_as_read

__all__ = ["export_command"]

_JSON_FIELDS = ("hardware", "env", "params", "provenance")
_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))


#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(json_safe(value))
    else:
        out[prefix] = value


def _priced_at(record: RunRecord) -> tuple[float | None, str]:
    """The intensity an export gives for ``record``, g CO2-eq/kWh, and its source.

    What the run's CO2-eq was computed at, as ``ledger show``, ``whatif`` and the report's
    run rows give it: for a run priced by an hourly file (which records the file's plain
    mean), the energy-weighted mean over the run, its source ``"mean over the run; csv:..."``,
    so that ``energy_kwh * pue * intensity_g_per_kwh / 1000`` is the row's ``emissions_kg``;
    a constant intensity as recorded. Where the setting came from stays in
    ``provenance.intensity``.
    """
    return applied_intensity(
        energy_kwh=record.energy_kwh,
        pue=record.pue,
        emissions_kg=record.emissions_kg,
        recorded_g_per_kwh=record.intensity_g_per_kwh,
        source=record.intensity_source,
    )


#: Runs written to a CSV piece at a time (the text of 100,000 runs is never one string).
_CSV_CHUNK_RUNS = 1000


def _csv_pieces(records: Sequence[RunRecord], metric: str | None) -> Iterator[str]:
    """The CSV export of ``records``: its header, then its rows, a few runs a piece.

    :data:`_CSV_CHUNK_RUNS` runs a piece, built a column at a time (a list per field,
    formula-like text escaped by :func:`_csv_cell` in the columns that hold text), then written
    by the ``csv`` module's writer (C): 100,000 runs, 10 s and 643 MB of RSS before, when a
    dictionary per run was made and written. Every run is read before the first piece: the
    header names every parameter, metric and hardware field any run has.
    """
    base = [
        f.name for f in dataclasses.fields(RunRecord) if f.name not in ("metrics", *_JSON_FIELDS)
    ]
    base.insert(base.index("role") + 1, "role_inferred")
    base.insert(base.index("parent_id") + 1, "parent_inferred")
    resolved = roles_as_read(records, metric)
    count = len(records)
    columns: dict[str, list[Any]] = {
        name: list(map(operator.attrgetter(name), records)) for name in base if name in _FIELDS
    }
    columns["duration_s"] = [known_duration(r.duration_s) for r in records]
    for at, record in enumerate(records):
        for name, value in unmetered(record).items():  # empty: no energy meter, never 0
            columns[name][at] = value
    priced = list(map(_priced_at, records))
    columns["intensity_g_per_kwh"] = [g for g, _ in priced]
    columns["intensity_source"] = [source for _, source in priced]
    read_as = [resolved[r.id] for r in records]
    for k, name in enumerate(
        ("role", "role_inferred", "parent_id", "parent_inferred", "contained")
    ):
        columns[name] = [values[k] for values in read_as]
    extra: dict[str, dict[str, list[Any]]] = {name: {} for name in (*_JSON_FIELDS, "metric")}
    for name in _JSON_FIELDS:
        shared: dict[int, dict[str, Any]] = {}  # a dictionary runs share, flattened once
        for at, record in enumerate(records):
            value = getattr(record, name)
            flat = shared.get(id(value))
            if flat is None:
                flat = {}
                _flatten(name, value, flat)
                if isinstance(value, dict):
                    shared[id(value)] = flat
            _place(extra[name], at, flat, count)
    for at, record in enumerate(records):
        flat = {f"metric.{n}": record.metric(n) for n in record.metric_names}
        _place(extra["metric"], at, flat, count)
    names = [*base, *(key for group in extra.values() for key in sorted(group))]
    columns.update(column for group in extra.values() for column in group.items())
    ordered = [_csv_column(columns[name]) for name in names]
    del columns, extra
    buffer = io.StringIO()
    # RFC 4180 line ends: the writer quotes any field holding \r or \n, so a name with a bare
    # carriage return cannot end a row early in a spreadsheet. None is written as an empty cell.
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(names)
    for start in range(0, count, _CSV_CHUNK_RUNS):
        writer.writerows(
            zip(*(column[start : start + _CSV_CHUNK_RUNS] for column in ordered), strict=True)
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if not count:  # the header alone
        yield buffer.getvalue()


def _place(columns: dict[str, list[Any]], at: int, flat: Mapping[str, Any], count: int) -> None:
    """Run ``at``'s flattened cells into ``columns`` (of ``count`` runs, empty for the others)."""
    for key, cell in flat.items():
        column = columns.get(key)
        if column is None:
            column = columns[key] = [None] * count
        column[at] = cell


#: The first characters of text that a spreadsheet reads as a formula (one each).
_FORMULA_FIRST = frozenset(_FORMULA_START)


def _csv_column(values: list[Any]) -> list[Any]:
    """A column's cells as the writer is given them.

    Text: :func:`_csv_cell` of each, where some value of the column starts as a formula does
    (a set of first characters, one pass, finds whether one does). Anything else as it is: the
    writer writes numbers, and None as an empty cell.
    """
    if _FORMULA_FIRST.isdisjoint({v[:1] for v in values if type(v) is str}):
        return values
    return [_csv_cell(v) if type(v) is str else v for v in values]


def _csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows and never runs.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
    Excel, LibreOffice and Google Sheets; as OWASP recommends, such text gets a leading single
    quote (``'=HYPERLINK(...)``). Numbers are left as they are, negative ones included, and so
    is text that is itself a plain number (``"-3.5"``), which no spreadsheet runs.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


@click.command(name="export")
@ledger_option
@study_option
@click.option(
    "--format",
    "fmt",
    type=Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV: one row per run, flattened columns. JSON: runs with metrics and power samples.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Write to this file instead of standard output (-: standard output).",
)
@click.option(
    "--metric",
    type=TEXT,
    default=None,
    help="The metric the study's report ranks by, which inferred roles are judged by "
    "[default, and for a study that logged no value of it: the one the report chooses].",
)
@gc_paused_call  # every run's row or text made and dropped: no collection among them
def export_command(
    ledger: str | None, study: str | None, fmt: str, out: Path | None, metric: str | None
) -> None:
    """Export runs (all, or one study's) as CSV or JSON.

    Each run is exported as its study's report reads it:

    role: the role the report gives the run; role_inferred is true where none was given (roles
    are inferred from the nesting, judged by --metric or the metric the report chooses).

    parent_id: the run the report reads it under; parent_inferred is true where the ledger
    records another parent or none (a pool worker's run, a distributed job's rank).

    contained: false where the report adds the run's cost to the price tag outside every
    measurement above it (a part made with set-role --part-of, a child on another host, a
    job's other node); true where a measurement above it already holds its cost.

    Summing the rows with no parent among them and those with contained false gives the price
    tag's energy and CO2-eq, except for top-level runs that ran at the same time in threads of
    one process, each measuring all of it: the price tag counts each stretch of their time
    once, so their rows add up to more than its total. Where a parent recorded less than the
    runs inside it, the price tag takes their sum, or shares its own amount out among them.
    The price tag's notes name both cases (docs/ledger.md, "Export").
    """
    if out is not None and str(out) == "-":  # the usual name of standard output, not a file
        out = None
    with open_ledger(ledger) as led:
        if out is not None and led.path is not None and _same_file(out, led.path):
            raise ConfigError(f"--out {out} is the ledger itself; choose another file")
        if out is not None:
            _refuse_a_database(out)
        if fmt == "json":  # every point of every run
            records = led.runs(study=study)
            head = {"ledger": led.url, "schema_version": led.schema_version}
            resolved = roles_as_read(records, metric)  # before the file is opened: its errors
            pieces = _json_pieces(head, records, resolved, led._samples_by_run(study))
        else:  # of each metric its last value, and the roles: the points a report reads
            records = led._read(study=study, points="score")
            pieces = _csv_pieces(records, metric)
    if out is None:
        for piece in pieces:
            click.echo(piece, nl=False, color=True)  # data: never strip what looks like ANSI
        return
    try:
        with out.open("w", encoding="utf-8", newline="") as handle:
            for piece in pieces:
                handle.write(piece)
    except FileNotFoundError as e:
        folder = out.parent
        if folder.is_dir():  # /proc/x.csv: the folder is there and takes no new file
            raise ConfigError(f"cannot write {out}: {e.strerror or e}") from e
        raise ConfigError(
            f"cannot write {out}: directory {folder} does not exist; create it first "
            f"(mkdir -p {folder}) or give a path in an existing one"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}") from e
    click.echo(f"wrote {count_of(len(records), 'run')} to {out}", err=True)


def _json_pieces(
    head: dict[str, Any],
    records: Sequence[RunRecord],
    resolved: Mapping[str, tuple[Any, ...]],
    samples: Mapping[str, Sequence[PowerSample]],
) -> Iterator[str]:
    """The JSON export's text, a chunk of runs at a time: ``json_text`` of the whole document.

    ``{**head, "runs": [...]}`` as ``json_text`` writes it, plus a newline. Each chunk of
    :data:`_CHUNK_RUNS` runs is written by :func:`~greenprint.cli._json_indented.texts_at` (a
    field at a time, the same text), so the document never sits in memory whole: 100,000 runs
    with their points and samples are 350 MB of text (3.4 GB of RSS when it did).
    ``resolved``: :func:`roles_as_read` of the runs; ``samples``: their power samples by id.
    """
    empty = json_text({**head, "runs": []})
    if not records:
        yield empty + "\n"
        return
    yield empty[: -len("[]\n}")] + "[\n"
    for start, stop in _chunks(records, samples):
        items = []
        for record in records[start:stop]:
            item = record_dict(record, points=False)
            item["intensity_g_per_kwh"], item["intensity_source"] = _priced_at(record)
            role, role_inferred, parent_id, parent_inferred, contained, _ = resolved[record.id]
            item.update(role=role, role_inferred=role_inferred, parent_id=parent_id)
            item["contained"] = contained
            item["parent_inferred"] = parent_inferred
            item["samples"] = samples.get(record.id, ())
            items.append(item)
        with gc_paused():  # millions of strings made and dropped: no collection among them
            body = ",\n    ".join(texts_at(items, "\n    ", DATA_FIELDS))
        yield (",\n" if start else "") + "    " + body
    yield "\n  ]\n}\n"


#: Runs encoded at a time by ``_json_pieces`` (about 3.5 MB of text)...
_CHUNK_RUNS = 1000
#: ...or fewer, holding at most this many points and samples (more when one run does): a long
#: training's thousands of points a run made a thousand runs' text 400 MB at once (1,000 runs
#: of 4,000 points: 5.7 GB of RSS, then 2.2 GB with the text written a field at a time).
_CHUNK_VALUES = 50_000


def _chunks(
    records: Sequence[RunRecord], samples: Mapping[str, Sequence[PowerSample]]
) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each chunk of runs: :data:`_CHUNK_RUNS`, or :data:`_CHUNK_VALUES`."""
    start, count = 0, len(records)
    while start < count:
        stop, held = start, 0
        while stop < count and stop - start < _CHUNK_RUNS and held < _CHUNK_VALUES:
            record = records[stop]
            held += len(record.metrics) + len(samples.get(record.id, ()))
            stop += 1
        yield start, stop
        start = stop


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def _refuse_a_database(out: Path) -> None:
    """Refuse to write an export over a SQLite database: another ledger's runs would be lost.

    ``greenprint ledger export --ledger runs.db --out greenprint.db`` replaced the ledger
    ``greenprint.db`` with CSV text, every run it held gone.

    Raises:
        ConfigError: ``out`` is an existing SQLite database file.
    """
    try:
        with out.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError:  # not there (the usual case), or unreadable: writing it says why
        return
    if head == _SQLITE_HEADER:
        raise ConfigError(
            f"--out {out} is a SQLite database (a ledger?); an export would replace it: "
            "choose another file, or remove it first"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False
