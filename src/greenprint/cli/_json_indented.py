"""JSON indented by two spaces, as the standard library writes it, several times as fast.

``json.dumps(value, indent=2)`` is the standard library's pure-Python encoder (its C encoder
writes compact text only, up to Python 3.13): a generator per container, a ``yield`` per
token. ``greenprint ledger export --format json`` wrote 100,000 runs with their points and
samples, 350 MB of text, in 19 s that way. :func:`indented_json` writes the same text in one
pass that appends to a list: no generator, the scalars of a dictionary written inline, NaN and
infinities spelled as :func:`~greenprint._format.json_safe` spells them (without its copy of
the whole value first). :func:`texts_at` writes many values at once, a field at a time (the
export's runs: 4 s).

The text is ``json.dumps(json_safe(value), indent=2, allow_nan=False)``'s, character for
character (tests compare them on any JSON-like value); a value of any other type (a subclass,
a numpy number, an object) is written by that call itself, indented to its place, so that it is
written, or refused, as it always was.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, islice
from json.encoder import encode_basestring_ascii as _ascii_text
from operator import attrgetter
from typing import Any

from greenprint._fastjson import scalar_texts
from greenprint._format import json_safe

__all__ = ["indented_json", "texts_at", "write_indented"]

_float_repr = float.__repr__
_int_repr = int.__repr__

#: The text of a float that is not finite, as ``json_safe`` turns it into a string.
_NOT_FINITE = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}
#: The text of the scalars written as constants.
_CONSTANTS = {True: "true", False: "false"}


def indented_json(value: Any) -> str:
    """``json.dumps(json_safe(value), indent=2, allow_nan=False)``, written in one pass.

    Raises:
        TypeError: as ``json.dumps`` does, a value it cannot write.
    """
    kind = type(value)
    if (kind is list or kind is tuple) and value:  # many values (runs): a field at a time
        return "[\n  " + ",\n  ".join(texts_at(value, "\n  ")) + "\n]"
    out: list[str] = []
    write_indented(value, "\n", out)
    return "".join(out)


def write_indented(value: Any, newline: str, out: list[str]) -> None:
    """Append to ``out`` the text of ``value`` at the depth ``newline`` opens.

    Args:
        value: what to write (JSON-like: dicts, lists, tuples, strings, numbers, bools, None).
        newline: a line break and the indentation of the line ``value`` starts on (two
            spaces a level): a container's items go one level deeper.
        out: the texts so far.
    """
    kind = type(value)
    if kind is str:
        out.append(_ascii_text(value))
    elif kind is float:
        out.append(_float_text(value))
    elif kind is int:
        out.append(_int_repr(value))
    elif kind is bool:
        out.append(_CONSTANTS[value])
    elif value is None:
        out.append("null")
    elif kind is dict:
        _write_dict(value, newline, out)
    elif kind is list or kind is tuple:
        _write_items(value, newline, out)
    else:  # a subclass, another type: as json.dumps writes it (or refuses it), in its place
        out.append(json.dumps(json_safe(value), indent=2, allow_nan=False).replace("\n", newline))


def _float_text(value: float) -> str:
    """A float's text: ``float.__repr__`` when finite, else ``json_safe``'s string."""
    if value - value == 0.0:  # NaN and infinities give NaN
        return _float_repr(value)
    return _NOT_FINITE[_float_repr(value)]


def _write_dict(value: dict[Any, Any], newline: str, out: list[str]) -> None:
    """A dictionary's text, its items one level deeper (its keys as ``str(key)`` reads)."""
    if not value:
        out.append("{}")
        return
    items: Iterable[tuple[Any, Any]] = value.items()
    if not all(type(key) is str for key in value):
        # json_safe's rule: each key as str(key); of keys equal as text, the last value
        items = {str(key): item for key, item in items}.items()
    inner = newline + "  "
    separator = "{" + inner
    append = out.append
    for key, item in items:
        kind = type(item)
        # the scalars inline (most of a run's values): one append each
        if kind is str:
            append(separator + _ascii_text(key) + ": " + _ascii_text(item))
        elif kind is float:
            append(separator + _ascii_text(key) + ": " + _float_text(item))
        elif kind is int:
            append(separator + _ascii_text(key) + ": " + _int_repr(item))
        elif item is None:
            append(separator + _ascii_text(key) + ": null")
        elif kind is bool:
            append(separator + _ascii_text(key) + ": " + _CONSTANTS[item])
        else:
            append(separator + _ascii_text(key) + ": ")
            write_indented(item, inner, out)
        separator = "," + inner
    append(newline + "}")


def _write_items(value: list[Any] | tuple[Any, ...], newline: str, out: list[str]) -> None:
    """A list's (or a tuple's) text, its items one level deeper."""
    if not value:
        out.append("[]")
        return
    inner = newline + "  "
    separator = "[" + inner
    for item in value:
        out.append(separator)
        write_indented(item, inner, out)
        separator = "," + inner
    out.append(newline + "]")


def texts_at(
    values: Sequence[Any], newline: str, fields_of: Mapping[type, Sequence[str]] | None = None
) -> list[str]:
    """The text of each value, each as :func:`write_indented` writes it at ``newline``.

    Many values at once, a field at a time where they are dictionaries of the same keys (the
    runs of an export, their points, their samples, a search's parameters): each field's
    values converted together by what their types call for (floats by
    :func:`~greenprint._fastjson.float_texts`, in C), then each dictionary's text made by one
    ``str.format`` of a template of its keys; a list of such dictionaries (a run's points)
    from the texts of every list's items at once. A dictionary that several values hold (the
    hardware a study's runs share) is written once. 100,000 runs with their points and
    samples: 19 s of text before (``json.dumps(..., indent=2)``), 4 s after.

    ``fields_of``: type -> field names, for objects (of exactly that type, among the values
    or inside them) written as the dictionary ``{name: getattr(obj, name) ...}`` would be
    (a run's points and samples, without a dictionary made for each).
    """
    count = len(values)
    if not count:
        return []
    texts = scalar_texts(values, _SCALARS)
    if texts is not None:
        return texts
    kinds = set(map(type, values))
    if kinds <= _FLOAT_OR_NONE:  # some not finite: as json_safe spells them
        return [_float_text(v) if v is not None else "null" for v in values]
    if len(kinds) == 1:
        (kind,) = kinds
        if kind is dict:
            return _dict_texts(values, newline, fields_of)
        if kind is list or kind is tuple:
            return _list_texts(values, newline, fields_of)
        if fields_of and kind in fields_of:
            names = fields_of[kind]
            if not names:
                return ["{}"] * count
            columns = [list(map(attrgetter(name), values)) for name in names]
            return _fields_texts(names, columns, newline, fields_of)
    return [_text_of(value, newline, fields_of) for value in values]  # a mix: each alone


def _plain(value: Any, fields_of: Mapping[type, Sequence[str]]) -> Any:
    """``value`` with every object of a type of ``fields_of`` (in it too) as its dictionary."""
    kind = type(value)
    if kind in fields_of:
        return {name: _plain(getattr(value, name), fields_of) for name in fields_of[kind]}
    if kind is dict:
        return {key: _plain(item, fields_of) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_plain(item, fields_of) for item in value]
    return value


_FLOAT_OR_NONE = frozenset({float, type(None)})
#: The writers of the scalars other than floats, by type.
_SCALARS: dict[type, Any] = {str: _ascii_text, int: _int_repr, bool: _CONSTANTS.__getitem__}


def _text_of(
    value: Any, newline: str, fields_of: Mapping[type, Sequence[str]] | None = None
) -> str:
    """One value's text at ``newline`` (its objects of ``fields_of`` as their dictionaries)."""
    if fields_of:
        value = _plain(value, fields_of)
    out: list[str] = []
    write_indented(value, newline, out)
    return "".join(out)


def _dict_texts(
    values: Sequence[dict[Any, Any]], newline: str, fields_of: Mapping[type, Sequence[str]] | None
) -> list[str]:
    """The texts of dictionaries at ``newline``: by field when they have the same string keys.

    The same dictionary held by several values is written once (an id is kept only while
    ``values`` holds its dictionary).
    """
    distinct = {id(value): value for value in values}
    if len(distinct) * 2 <= len(values):  # shared: each written once, then looked up
        texts = {key: _text_of(value, newline, fields_of) for key, value in distinct.items()}
        return [texts[id(value)] for value in values]
    shapes = set(map(tuple, values))
    if len(shapes) != 1:
        return [_text_of(value, newline, fields_of) for value in values]
    (keys,) = shapes
    if not keys:
        return ["{}"] * len(values)
    if any(type(key) is not str for key in keys):
        return [_text_of(value, newline, fields_of) for value in values]
    return _fields_texts(keys, zip(*map(dict.values, values), strict=True), newline, fields_of)


def _fields_texts(
    keys: Sequence[str],
    columns: Iterable[Sequence[Any]],
    newline: str,
    fields_of: Mapping[type, Sequence[str]] | None,
) -> list[str]:
    """The texts of dictionaries of the string ``keys`` at ``newline``, given by field."""
    inner = newline + "  "
    # "{" inner "key": {} "," inner "key": {} ... newline "}" (braces of the text doubled)
    template = (
        "{{"
        + ",".join(
            (inner + _ascii_text(key) + ": ").replace("{", "{{").replace("}", "}}") + "{}"
            for key in keys
        )
        + newline
        + "}}"
    )
    return list(map(template.format, *(texts_at(column, inner, fields_of) for column in columns)))


def _list_texts(
    values: Sequence[Sequence[Any]], newline: str, fields_of: Mapping[type, Sequence[str]] | None
) -> list[str]:
    """The texts of lists at ``newline``: every list's items written together, then joined."""
    inner = newline + "  "
    items = texts_at(list(chain.from_iterable(values)), inner, fields_of)
    opened, between, closed = "[" + inner, "," + inner, newline + "]"
    texts: list[str] = []
    at = iter(items)
    for value in values:
        if value:
            texts.append(opened + between.join(islice(at, len(value))) + closed)
        else:
            texts.append("[]")
    return texts
