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
import re
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from greenprint._fastjson import all_finite, float_texts, scalar_texts
from greenprint._gc import gc_paused
from greenprint.report._model import Report, RunRow, _json_params, _json_value
from greenprint.report._plots import FigureRenderer

__all__ = [
    "ROW_KEYS", "head_json", "params_json", "render_json", "row_json", "rows_json", "write_json"
]  # fmt: skip


def render_json(report: Report, plots: FigureRenderer | None = None) -> str:
    """The report as a JSON document (UTF-8 text; ``plots`` is not used)."""
    out = io.StringIO()
    write_json(report, plots, out)
    return out.getvalue()


def write_json(report: Report, plots: FigureRenderer | None, handle: TextIO) -> None:
    """Write the JSON document to a text file, a chunk of runs at a time.

    The runs are encoded and written a thousand at a time, so the whole document never sits
    in memory as dictionaries or as one string (100,000 runs: about 75 MB of text). The runs
    are written by :func:`rows_json`, the same text as encoding :meth:`RunRow.to_dict`.
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    rows = report.runs
    with gc_paused():  # a dict per run (see gc_paused)
        head = head_json(report.to_dict(with_runs=False), encoder)
        handle.write(head[:-1] + ',"runs":[')
        for start in range(0, len(rows), _CHUNK_ROWS):
            if start:
                handle.write(",")
            handle.write(rows_json(rows[start : start + _CHUNK_ROWS], encoder))
        handle.write("]}\n")


def head_json(document: dict[str, Any], encoder: json.JSONEncoder) -> str:
    """``encoder.encode(document)``, its figures' long lists of floats written a list at once.

    A figure of 100,000 runs holds their points (96,000 scores and as many costs, 0.13 s of
    float texts one at a time): each list of at least :data:`_FLOAT_LIST` finite floats (and
    ``None``) under ``"figures"`` is encoded as a marker string, then put in as
    :func:`~greenprint._fastjson.float_texts` writes it (the encoder's text). Where the
    markers do not come out once each, in order (a string of the document that holds one),
    the document is encoded whole.
    """
    figures = document.get("figures")
    found: list[list[str]] = []
    if isinstance(figures, list):
        figures = _floats_marked(figures, found)
    if not found:
        return encoder.encode(document)
    text = encoder.encode({**document, "figures": figures})
    pieces = _MARKED.split(text)
    if pieces[1::2] != [str(k) for k in range(len(found))]:
        return encoder.encode(document)
    pieces[1::2] = ["[" + ",".join(texts) + "]" for texts in found]
    return "".join(pieces)


#: A list under ``"figures"`` of at least this many floats is written at once by ``head_json``.
_FLOAT_LIST = 256
_MARKER = "\x00greenprint float list {}\x00"
#: The encoded marker (its NULs escaped), its number captured.
_MARKED = re.compile(r'"\\u0000greenprint float list (\d+)\\u0000"')
_FLOAT_OR_NONE = frozenset({float, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})


def _floats_marked(value: Any, found: list[list[str]]) -> Any:
    """``value`` with each long list (or tuple) of finite floats a marker string.

    The floats' texts go to ``found``; lists and tuples holding a dict, a list or a tuple are
    walked (as lists, which the encoder writes them as).
    """
    if type(value) is dict:
        return {key: _floats_marked(item, found) for key, item in value.items()}
    if type(value) is not list and type(value) is not tuple:
        return value
    kinds = set(map(type, value))
    if kinds.isdisjoint(_CONTAINERS):  # (a figure's run ids: not walked one by one)
        if len(value) >= _FLOAT_LIST and kinds <= _FLOAT_OR_NONE:
            if all_finite(value):
                found.append(float_texts(value))
                return _MARKER.format(len(found) - 1)
        return value
    return [_floats_marked(item, found) for item in value]


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
    "fpo_lower_bound", "fpo_assumptions", "job_id", "node_rank", "local_rank", "node_meter",
    "contained",
)  # fmt: skip

_text = json.encoder.encode_basestring  # a JSON string, non-ASCII kept (ensure_ascii=False)
_float_repr = float.__repr__  # what the encoder writes for a float
_isfinite = math.isfinite
#: What the encoder writes for each value of one of these exact types (a float: when finite).
_WRITERS: dict[type, Callable[[Any], str]] = {
    str: _text,
    int: int.__repr__,
    bool: {True: "true", False: "false"}.__getitem__,  # only ever given bools
}

#: The fields written as numbers: ``null`` when ``None`` or not finite (``json_float``, then
#: the encoder). Every other field is written as the encoder writes it.
_NUMBER_KEYS = frozenset(
    ("score", "started_at", "duration_s", "energy_kwh", "emissions_kg", "pue",
     "intensity_g_per_kwh", "score_per_kwh", "score_per_gflop")
)  # fmt: skip


def row_json(row: RunRow, encoder: json.JSONEncoder, params: str | None = None) -> str:
    """``encoder.encode(row.to_dict())``: one run as :func:`rows_json` writes it.

    ``params`` is the text of the row's parameters from :func:`params_json`; without it they
    are encoded here.
    """
    return rows_json((row,), encoder, None if params is None else (params,))


def rows_json(
    rows: Sequence[RunRow], encoder: json.JSONEncoder, params: Sequence[str] | None = None
) -> str:
    """``",".join(encoder.encode(row.to_dict()) for row in rows)``, written a field at a time.

    A report of 100,000 runs spent most of its JSON time making a dictionary per run and
    walking it, then (written a run at a time, with constant keys) calling a converter for
    each of its 2.5 million values. Here each field's values are converted for all the rows at
    once, by what their types call for (the encoder's own text of a float, an int, a string or
    a bool, ``null`` for ``None``; any other type, or a mix, per value as the encoder writes
    it), and the rows' text is put together by one ``join``. The parameters are written the
    same way, one parameter at a time, when every row's are a dict with the same string keys
    in the same order (a search's runs: 0.11 s instead of 0.2 at 100,000 runs); else by
    :func:`params_json`. A test compares the result with the encoder's on every kind of value
    and mixes of them. The whole JSON write of 100,000 runs: 0.93 s instead of 1.25 (wall,
    A/B interleaved; float reprs were 0.42 s of it). A field of floats with many distinct
    values is written by :func:`~greenprint._fastjson.float_texts` (orjson, the encoder's
    text): 100,000 runs' rows 1.06 -> 0.73 s (best of 5, a 2-vCPU VM).

    Args:
        rows: the runs.
        encoder: compact, with ``ensure_ascii=False`` and ``allow_nan=False``; it writes any
            value of an unexpected type.
        params: the text of each row's parameters, from :func:`params_json` (else they are
            written here).

    Returns:
        The rows' JSON objects, separated by commas (empty for no rows).
    """
    count = len(rows)
    if not count:
        return ""
    enc = encoder.encode

    def value(item: Any) -> str:
        return _value(item, enc)

    def param(item: Any) -> str:
        return _value(_json_value(item), enc)

    # (the text before a value, each row's value text) in the order they are written
    slots: list[tuple[str, Sequence[str]]] = []
    close = ""  # "}" after the parameters' object when written one parameter at a time
    for key, values in zip(ROW_KEYS, _columns(rows), strict=True):
        prefix = f'{close},"{key}":'
        close = ""
        if key in _NUMBER_KEYS:
            slots.append((prefix, _texts(values, _num)))
        elif key == "fpo_assumptions":
            slots.append((prefix, _shared_objects(values, enc)))
        elif key != "params":
            slots.append((prefix, _texts(values, value)))
        elif params is not None:
            slots.append((prefix, params))
        elif (by_name := _parameters(values)) is None:
            slots.append((prefix, params_json(rows, encoder)))
        elif not by_name:
            slots.append((prefix, ["{}"] * count))
        else:
            prefix += "{"
            for name, column in by_name:
                slots.append((f"{prefix}{_text(name)}:", _texts(column, param)))
                prefix = ","
            close = "}"
    # A field with one text for every row (null job fields outside a job, a constant PUE, no
    # error) is written with the key after it: its key and text go into the next field's
    # prefix, or after the row's last field (100,000 runs of a search: about a third of the fields).
    varying: list[tuple[str, Sequence[str]]] = []
    carry = ""  # the constant fields' keys and texts since the last varying field
    for prefix, texts in slots:
        first_text = texts[0]
        if texts[-1] == first_text and texts.count(first_text) == count:
            carry += prefix + first_text
        else:
            varying.append((carry + prefix, texts))
            carry = ""
    if not varying:  # every row the same text
        return ",".join(["{" + carry[1:] + "}"] * count)
    # Each row's key and value texts go into one list, in order, a field at a time (slice
    # assignments), and are joined once: a third of the time of a format string applied to
    # each row (100,000 runs: 0.04 s instead of 0.12 s).
    stride = 2 * len(varying)
    pieces: list[str] = [""] * (stride * count)
    for k, (prefix, texts) in enumerate(varying):
        pieces[2 * k :: stride] = [prefix] * count
        pieces[2 * k + 1 :: stride] = texts
    first = varying[0][0][1:]  # without its comma: each row's first key opens its object
    pieces[0::stride] = ["{" + first] + [carry + "},{" + first] * (count - 1)
    pieces.append(carry + "}")
    return "".join(pieces)


def _columns(rows: Sequence[RunRow]) -> list[tuple[Any, ...]]:
    """Each field's values, in :data:`ROW_KEYS` order (a test checks it).

    Read by one comprehension naming each attribute: half the time of an ``attrgetter`` per
    field (100,000 rows: 0.05 s instead of 0.1; Python specialises a named slot's read).
    """
    by_row = [
        (r.id, r.name, r.parent_id, r.depth, r.is_trial, r.is_final, r.role, r.role_inferred,
         r.score_source, r.status, r.score, r.started_at, r.duration_s, r.energy_kwh,
         r.emissions_kg, r.fpo, r.dataset_size, r.param_count, r.params, r.energy_source, r.pue,
         r.intensity_g_per_kwh, r.intensity_source, r.score_per_kwh, r.score_per_gflop, r.error,
         r.fpo_lower_bound, r.fpo_assumptions, r.job_id, r.node_rank, r.local_rank,
         r.node_meter, r.contained)
        for r in rows
    ]  # fmt: skip
    return list(zip(*by_row, strict=True))


def _shared_objects(values: Sequence[Any], enc: Callable[[Any], str]) -> list[str]:
    """The JSON text of each mapping, encoded once per distinct object.

    The report's rows share a few (:attr:`RunRow.fpo_assumptions`: one per distinct
    provenance, one empty mapping for all the rest), so the text is looked up by object:
    100,000 runs cost a few ms, not an encoder call each.
    """
    first = values[0]
    if all(value is first for value in values):
        return [enc(dict(first))] * len(values)
    texts = {id(value): value for value in values}
    looked_up = {key: enc(dict(value)) for key, value in texts.items()}
    return list(map(looked_up.__getitem__, map(id, values)))


def _parameters(params: Sequence[Any]) -> list[tuple[str, tuple[Any, ...]]] | None:
    """Each parameter's name and values when every run's are a dict of the same string keys.

    ``None`` when they are not (not all dicts, different keys or order, a key not a string):
    then :func:`params_json` writes them.
    """
    if set(map(type, params)) != {dict}:
        return None
    shapes = set(map(tuple, params))
    if len(shapes) != 1:
        return None
    (names,) = shapes
    if any(type(name) is not str for name in names):
        return None
    return list(zip(names, zip(*map(dict.values, params), strict=True), strict=True))


def _texts(values: Sequence[Any], slow: Callable[[Any], str]) -> list[str]:
    """The JSON text of each value of one field of the rows.

    Values all of one type that the encoder writes directly (finite floats, ints, strings,
    bools; ``None`` among them or not) are converted by that type's writer, or looked up when
    the field has few distinct values; any other type, or a mix of them, by ``slow``, one
    value at a time. ``slow`` is :func:`_num` for number fields (which writes ints and bools
    as floats: only floats are fast there).
    """
    texts = scalar_texts(values, _NO_WRITERS if slow is _num else _WRITERS)
    return list(map(slow, values)) if texts is None else texts


#: Number fields write ints and bools as floats (:func:`_num`): only floats are fast there.
_NO_WRITERS: dict[type, Callable[[Any], str]] = {}


def _value(value: Any, enc: Callable[[Any], str]) -> str:
    """As the encoder writes a value that the row's dictionary holds as it is."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    return _text(value) if type(value) is str else enc(value)


def _num(value: Any) -> str:
    """As :func:`~greenprint.analysis._common.json_float` then the encoder: non-finite is null."""
    if value is None:
        return "null"
    number = float(value)
    return _float_repr(number) if _isfinite(number) else "null"
