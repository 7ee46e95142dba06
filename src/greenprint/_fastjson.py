"""Float texts in C: orjson when it is installed, the standard library's text always.

The JSON report writes each finite float as the standard library's encoder does
(``float.__repr__``: the shortest text that reads back as the same float). At 100,000 runs
that is a floor of pure Python: the runs' 800,000 float texts at 0.7 µs each, and the figures'
200,000 more (a 2-vCPU VM). orjson (a dependency of greenprint, optional at run time) writes a
list of floats in C, 17 times as fast, and is used only where its text is exactly the encoder's.

orjson writes the same digits as ``float.__repr__`` (both the shortest round trip; checked on
12 million doubles, random bit patterns and decimals) but spells two ranges differently:
exponents -6 to -9 without the padding zero (``1.5e-7`` for ``1.5e-07``), and values in
[1e-5, 1e-4) without an exponent (``0.000015`` for ``1.5e-05``). Both are respelled here. The
result is checked once per process against ``float.__repr__`` on every spelling boundary and
random doubles; an orjson that writes anything else is not used.

Without orjson (or with one whose floats do not check out) the standard library writes them,
and the text is the same: tests run both ways.

orjson's reading was tried for the runs' parameters (``json``'s scanner, 0.2 s at 100,000
runs) and not kept: with the checks that make it read as ``json`` reads (integers beyond 64
bits it reads as floats), 10 ms less.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["all_finite", "float_texts", "orjson_used", "scalar_texts"]

logger = logging.getLogger(__name__)

#: orjson's ``dumps`` once looked for (``None``: not installed, or its float texts do not
#: check out); ``False`` until then.
_DUMPS: Callable[[Any], bytes] | None | bool = False

_float_repr = float.__repr__
#: A value in [1e-5, 1e-4) written without an exponent (the digits after ``0.0000``), or the
#: end of a larger number's text (``10.00001``: told apart by the character before it). Its
#: literal start lets ``re`` skip to each ``0.0000``: a look-behind first tried at every
#: character (70,000 floats: 32 ms instead of 1).
_NO_EXPONENT = re.compile(r"0\.0000([1-9])(\d*)")


def _with_exponent(match: re.Match[str]) -> str:
    """``0.000015`` as ``float.__repr__`` writes it: ``1.5e-05``; ``10.000015``'s end as it is."""
    start = match.start()
    if start and match.string[start - 1] not in ",-":
        return match.group(0)
    rest = match.group(2)
    return f"{match.group(1)}.{rest}e-05" if rest else f"{match.group(1)}e-05"


def _respelled(body: str) -> str:
    """The text orjson wrote for floats (no brackets) as ``float.__repr__`` spells it."""
    if "e-" in body:
        # orjson writes the exponents -6 to -9 with one digit (checked once a process, with
        # every exponent from -12 to 24, by _orjson_dumps), each ending at a comma or at the
        # end: one str.replace per digit, in C (a regex's template is expanded in Python for
        # each match: 100,000 floats with exponents 0.09 -> 0.035 s)
        for digit in "6789":
            body = body.replace(f"e-{digit},", f"e-0{digit},")
        if body[-3:-1] == "e-" and body[-1] in "6789":
            body = body[:-1] + "0" + body[-1]
    if "0.0000" in body:
        body = _NO_EXPONENT.sub(_with_exponent, body)
    return body


def _checked_values() -> list[float]:
    """Floats whose texts tell whether orjson's respelled are ``float.__repr__``'s."""
    import random
    import struct

    edges = [0.0, -0.0, 0.1, 1 / 3, 100.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    for exponent in range(-12, 25):  # every spelling boundary, both signs, one digit or many
        for mantissa in (1.0, 1.5, 9.999999999999998, 1.2345678901234567):
            edges.append(float(f"{mantissa}e{exponent}"))
            edges.append(-edges[-1])
    draw = random.Random(12)
    while len(edges) < 1500:
        value = struct.unpack("<d", draw.getrandbits(64).to_bytes(8, "little"))[0]
        if value == value and abs(value) != float("inf"):
            edges.append(value)
    return edges


def _orjson_dumps() -> Callable[[Any], bytes] | None:
    """The ``dumps`` of orjson when it is installed and its float texts check out."""
    global _DUMPS
    if _DUMPS is False:
        _DUMPS = None
        try:
            import orjson
        except ImportError:
            return None
        values = _checked_values()
        try:
            texts = _respelled(orjson.dumps(values).decode("ascii")[1:-1]).split(",")
        except Exception:  # an orjson that cannot write a list of floats: not used
            texts = []
        if texts == list(map(_float_repr, values)):
            _DUMPS = orjson.dumps
        else:
            logger.debug(
                "greenprint: orjson %s spells floats otherwise; the standard library writes them",
                getattr(orjson, "__version__", "?"),
            )
    return _DUMPS if callable(_DUMPS) else None


def orjson_used() -> bool:
    """Whether :func:`float_texts` uses orjson in this process."""
    return _orjson_dumps() is not None


def float_texts(values: Sequence[float | None]) -> list[str]:
    """The JSON text of each value, as ``json``'s encoder writes it (``null`` for ``None``).

    Args:
        values: finite floats (of type ``float`` exactly) and ``None``s; a NaN or an infinity
            is the caller's to write (``json`` refuses them, orjson writes ``null``).

    Returns:
        One text per value: ``float.__repr__``'s for a float, ``"null"`` for ``None``.
    """
    dumps = _orjson_dumps()
    if dumps is None:
        return [_float_repr(v) if v is not None else "null" for v in values]
    if not values:
        return []
    return _respelled(dumps(values).decode("ascii")[1:-1]).split(",")


_NONE = type(None)


def all_finite(values: Sequence[float | None]) -> bool:
    """Whether floats (and ``None``s) are all finite: whether their sum is.

    A NaN or an infinity makes the sum NaN or infinite; a sum that overflows only sends the
    values the slow way.
    """
    return math.isfinite(sum(filter(None, values)))


#: A field whose first values hold at most a quarter as many distinct ones is tried for
#: :func:`_looked_up`.
_SAMPLE = 64


def _looked_up(values: Sequence[Any], write: Callable[[Any], str]) -> Callable[[Any], str] | None:
    """A lookup of the text of each distinct value, for a field with few (a PUE, a status).

    A float's text takes 0.45 µs, a lookup 0.04: 100,000 runs' PUE and intensity, 0.07 s. The
    values are all of one type (floats: finite); ``None`` when they are many, or when a zero
    float is among them (``0.0`` and ``-0.0`` are one key, two texts).
    """
    if len(set(values[:_SAMPLE])) > _SAMPLE // 4:
        return None
    distinct = set(values)
    distinct.discard(None)
    if len(distinct) > len(values) // 4 or (write is _float_repr and 0.0 in distinct):
        return None
    return {value: write(value) for value in distinct}.__getitem__


def scalar_texts(
    values: Sequence[Any], writers: Mapping[type, Callable[[Any], str]]
) -> list[str] | None:
    """The JSON text of each value when all are of one scalar type, ``None`` among them or not.

    Finite floats as ``float.__repr__`` writes them (:func:`float_texts`), the values of a type
    of ``writers`` by its writer; looked up when the field has few distinct values; ``None``
    as ``null``. Returns ``None`` for anything else (a mix of types, a float that is not
    finite, a type ``writers`` lacks): the caller writes those one value at a time. The JSON
    report's rows (its encoder's texts) and the ledger commands' indented JSON (strings in
    ASCII) share it, each with its own ``writers``.
    """
    kinds = set(map(type, values))
    with_none = _NONE in kinds
    kinds.discard(_NONE)
    if not kinds:
        return ["null"] * len(values)
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    if kind is float:
        if not all_finite(values):
            return None
        write = _looked_up(values, _float_repr)
        if write is None:
            return float_texts(values)  # None as null
    else:
        writer = writers.get(kind)
        if writer is None:
            return None
        write = _looked_up(values, writer) or writer
    if with_none:
        return [write(value) if value is not None else "null" for value in values]
    return list(map(write, values))
