"""Float texts written in C are, character for character, the standard library encoder's.

``greenprint._fastjson.float_texts`` writes a list of floats with orjson and respells what
orjson spells otherwise; the JSON report relies on its text being ``float.__repr__``'s (the
report is the same file with or without orjson). Proved here against ``float.__repr__`` on
every double hypothesis draws, on random bit patterns, and on the spelling boundaries, both
with orjson and without it; an orjson that spells floats any other way is not used.
"""

from __future__ import annotations

import math
import random
import struct
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import _fastjson
from greenprint._fastjson import float_texts, orjson_used

_FINITE = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FINITE, st.none()), max_size=60))
def test_any_finite_floats_are_written_as_repr(
    float_writer: str, values: list[float | None]
) -> None:
    expected = ["null" if v is None else repr(v) for v in values]
    assert float_texts(values) == expected
    assert float_texts(tuple(values)) == expected


def _doubles(count: int, seed: int) -> list[float]:
    """Finite doubles from random bit patterns: every exponent, subnormals, both signs."""
    draw = random.Random(seed)
    out: list[float] = []
    while len(out) < count:
        value = struct.unpack("<d", draw.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            out.append(value)
    return out


def test_random_doubles_and_decimals_are_written_as_repr(float_writer: str) -> None:
    draw = random.Random(7)
    values = _doubles(60_000, 7)
    # decimals near every spelling boundary (orjson spells 1e-5..1e-4 and e-6..e-9 otherwise)
    values += [draw.random() * 10.0 ** draw.randint(-12, 20) for _ in range(30_000)]
    values += [-round(draw.random(), draw.randint(1, 8)) * 10.0 ** draw.randint(-9, 17)
               for _ in range(30_000)]  # fmt: skip
    draw.shuffle(values)
    assert float_texts(values) == list(map(repr, values))


@pytest.mark.parametrize(
    "value",
    [
        0.0, -0.0, 1e-05, 1.5e-05, 9.999999999999999e-05, 0.0001, -1e-05, 1e-06, 1.5e-09,
        1e-10, 1e16, 9999999999999998.0, 1.2345678901234568e17, 5e-324, 2.2250738585072014e-308,
        1.7976931348623157e308, 0.1, 10.00001, 100.000015, 1e-300, 123456.00001,
    ],
)  # fmt: skip
def test_spelling_boundaries(float_writer: str, value: float) -> None:
    # alone, first, last, after a negative and after a larger number sharing its digits
    for values in ([value], [value, 1.0], [2.0, value], [-3.0, value, -value], [10.0, value]):
        assert float_texts(values) == list(map(repr, values)), values


def test_an_orjson_that_spells_floats_otherwise_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Otherwise:  # as an orjson that wrote "1E-07" would
        @staticmethod
        def dumps(values: object) -> bytes:
            return orjson.dumps(values).replace(b"e", b"E")

    monkeypatch.setitem(sys.modules, "orjson", Otherwise)
    monkeypatch.setattr(_fastjson, "_DUMPS", False)
    assert not orjson_used()
    assert float_texts([1e-07, 0.5]) == ["1e-07", "0.5"]
