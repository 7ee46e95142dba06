"""The JSON report: every run and every figure's data, in a versioned layout.

The layout is ``docs/report-schema.json`` (``"schema": "greenprint.report/2"``).

Strict JSON: NaN and infinities are written as ``null`` (figures) or strings (parameters), never
as the non-standard ``NaN`` token. Written compact (no indentation): a study of 10,000 trials
makes a file of a few MB; ``python -m json.tool report.json`` pretty-prints it.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from greenprint._gc import gc_paused
from greenprint.report._model import Report, RunRow, _json_params
from greenprint.report._plots import FigureRenderer

__all__ = ["ROW_KEYS", "params_json", "render_json", "row_json", "write_json"]


def render_json(report: Report, plots: FigureRenderer | None = None) -> str:
    """The report as a JSON document (UTF-8 text; ``plots`` is not used)."""
    out = io.StringIO()
    write_json(report, plots, out)
    return out.getvalue()


def write_json(report: Report, plots: FigureRenderer | None, handle: TextIO) -> None:
    """Write the JSON document to a text file, a chunk of runs at a time.

    The runs are encoded and written a thousand at a time, so the whole document never sits
    in memory as dictionaries or as one string (100,000 runs: about 75 MB of text). Each run is
    written by :func:`row_json`, the same text as encoding :meth:`RunRow.to_dict`.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    rows = report.runs
    with gc_paused():  # a dict per run (see gc_paused)
        head = encoder.encode(report.to_dict(with_runs=False))
        handle.write(head[:-1] + ',"runs":[')
        for start in range(0, len(rows), _CHUNK_ROWS):
            if start:
                handle.write(",")
            chunk = rows[start : start + _CHUNK_ROWS]
            params = params_json(chunk, encoder)
            handle.write(
                ",".join([row_json(row, encoder, p) for row, p in zip(chunk, params, strict=True)])
            )
        handle.write("]}\n")


#: Put between the runs' parameters when a chunk's are encoded in one call (then split on it).
_MARK = "\x00greenprint: next run\x00"


def params_json(rows: Sequence[RunRow], encoder: json.JSONEncoder) -> list[str]:
    """The JSON text of each run's parameters, as ``row_json`` writes them, in one encoder call.

    The parameters of the chunk are encoded as one list with a marker string between runs
    (encoded with its control characters escaped) and the text is split on the marker. A
    parameter value holding the marker's exact encoded form would only add pieces: then (and
    only then) the count differs and each run's parameters are encoded on their own.
    """
    separator = "," + encoder.encode(_MARK) + ","
    interleaved: list[Any] = []
    for row in rows:
        interleaved.append(_json_params(row.params))
        interleaved.append(_MARK)
    if not interleaved:
        return []
    interleaved.pop()
    pieces = encoder.encode(interleaved)[1:-1].split(separator)
    if len(pieces) == len(rows):
        return pieces
    return [encoder.encode(_json_params(row.params)) for row in rows]


#: Runs written per write call (about 1 MB of text).
_CHUNK_ROWS = 1000

#: The keys of a run in the JSON document, in order: those of :meth:`RunRow.to_dict`.
ROW_KEYS = (
    "id", "name", "parent_id", "depth", "is_trial", "is_final", "role", "role_inferred",
    "score_source", "status", "score", "started_at", "duration_s", "energy_kwh", "emissions_kg",
    "fpo", "dataset_size", "param_count", "params", "energy_source", "pue",
    "intensity_g_per_kwh", "intensity_source", "score_per_kwh", "score_per_gflop", "error",
)  # fmt: skip

_text = json.encoder.encode_basestring  # a JSON string, non-ASCII kept (ensure_ascii=False)
_float_repr = float.__repr__  # what the encoder writes for a float
_isfinite = math.isfinite


def row_json(row: RunRow, encoder: json.JSONEncoder, params: str | None = None) -> str:
    """``encoder.encode(row.to_dict())``, written directly: a third of the time.

    A report of 100,000 runs spends most of its JSON time making a dictionary per run and
    walking it; here the keys are constants and each value is written by its kind, the way
    the encoder writes it (a test compares the two on every kind of value). ``encoder`` must be
    compact, with ``ensure_ascii=False`` and ``allow_nan=False``; it writes the parameters
    (unless ``params``, their text from :func:`params_json`, is given) and any value of an
    unexpected type.
    """
    enc = encoder.encode
    return (
        f'{{"id":{_str(row.id, enc)},"name":{_str(row.name, enc)},'
        f'"parent_id":{_opt_str(row.parent_id, enc)},"depth":{_plain(row.depth, enc)},'
        f'"is_trial":{_plain(row.is_trial, enc)},"is_final":{_plain(row.is_final, enc)},'
        f'"role":{_str(row.role, enc)},"role_inferred":{_plain(row.role_inferred, enc)},'
        f'"score_source":{_str(row.score_source, enc)},"status":{_str(row.status, enc)},'
        f'"score":{_num(row.score)},"started_at":{_num(row.started_at)},'
        f'"duration_s":{_num(row.duration_s)},"energy_kwh":{_num(row.energy_kwh)},'
        f'"emissions_kg":{_num(row.emissions_kg)},"fpo":{_plain(row.fpo, enc)},'
        f'"dataset_size":{_plain(row.dataset_size, enc)},'
        f'"param_count":{_plain(row.param_count, enc)},'
        f'"params":{enc(_json_params(row.params)) if params is None else params},'
        f'"energy_source":{_str(row.energy_source, enc)},"pue":{_num(row.pue)},'
        f'"intensity_g_per_kwh":{_num(row.intensity_g_per_kwh)},'
        f'"intensity_source":{_str(row.intensity_source, enc)},'
        f'"score_per_kwh":{_num(row.score_per_kwh)},'
        f'"score_per_gflop":{_num(row.score_per_gflop)},"error":{_opt_str(row.error, enc)}}}'
    )


def _str(value: Any, enc: Callable[[Any], str]) -> str:
    return _text(value) if type(value) is str else enc(value)


def _opt_str(value: Any, enc: Callable[[Any], str]) -> str:
    if value is None:
        return "null"
    return _text(value) if type(value) is str else enc(value)


def _plain(value: Any, enc: Callable[[Any], str]) -> str:
    """A value the dictionary holds as it is (an int, a bool, ``None``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return int.__repr__(value) if type(value) is int else enc(value)


def _num(value: Any) -> str:
    """As :func:`~greenprint.analysis._common.json_float` then the encoder: non-finite is null."""
    if value is None:
        return "null"
    number = float(value)
    return _float_repr(number) if _isfinite(number) else "null"
