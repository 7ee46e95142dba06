"""A figure's values in the JSON report: NaN and infinities are ``null``, every other value as
it is, whether the values are written one by one or (all finite floats) as they are."""

from __future__ import annotations

import json
import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from greenprint._run_scores import json_float
from greenprint.report._model import Series, _floats

values = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-1e308, max_value=1e308),  # finite, whose sum may overflow
        st.integers(-(2**53), 2**53),
        st.builds(np.float64, st.floats()),
        st.just(-0.0),
    ),
    max_size=30,
).map(tuple)


def _same(a: list, b: list) -> bool:
    """Equal values of equal types, ``-0.0`` told from ``0.0``."""
    return [(type(x), None if x is None else struct.pack("<d", x)) for x in a] == [
        (type(y), None if y is None else struct.pack("<d", y)) for y in b
    ]


@given(values)
def test_each_value_is_what_json_float_gives(drawn):
    assert _same(_floats(drawn), [json_float(v) for v in drawn])


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30))
def test_a_series_writes_null_for_each_value_that_is_not_finite(ys):
    series = Series("s", "line", tuple(range(len(ys))), tuple(ys))
    written = json.loads(json.dumps(series.to_dict()))
    assert written["y"] == [y if np.isfinite(y) else None for y in ys]
