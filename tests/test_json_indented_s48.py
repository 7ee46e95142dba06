"""The JSON the ``greenprint`` commands print and export is the standard library's, faster.

``json_text`` (``ledger show --json``, ``ledger ls --json``, ``whatif --json``, the JSON export)
was ``json.dumps(json_safe(value), indent=2, allow_nan=False)``: the standard library's pure
Python encoder, 19 s of the export of 100,000 runs. ``indented_json`` writes it in one pass and
``texts_at`` many values a field at a time; both must give that text character for character,
on any JSON-like value (NaN and infinities, integers past 64 bits, keys that are no strings,
text that needs escaping, tuples), with orjson writing the floats and without it, and must
refuse what ``json.dumps`` refuses.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _export_runs import export_run
from greenprint import MetricPoint, PowerSample
from greenprint._format import json_safe
from greenprint.cli._cells import DATA_FIELDS, json_text, record_dict, sample_dict
from greenprint.cli._json_indented import indented_json, texts_at


def _reference(value: Any, newline: str = "\n") -> str:
    """What ``json_text`` always wrote, placed at ``newline``'s depth."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False).replace("\n", newline)


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1.5e-7, 1.5e-5, 0.000015, 10.000015, 1e16, 1e22, 1.7976931348623157e308, 5e-324]
)
TEXTS = st.text(max_size=8) | st.sampled_from(['"', "\\", "\n", "\x00", "é", "😀", "{}", "a{b}"])
SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | FLOATS | TEXTS
)
KEYS = TEXTS | st.integers(-3, 3) | st.booleans() | st.none() | st.floats(-2, 2, width=16)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=20,
)
NEWLINES = st.integers(0, 3).map(lambda depth: "\n" + "  " * depth)


@settings(max_examples=400, deadline=None)
@given(value=VALUES)
def test_any_json_like_value_is_written_as_json_dumps_writes_it(value: Any) -> None:
    assert indented_json(value) == _reference(value)
    assert json_text(value) == _reference(value)


@st.composite
def _same_keys(draw: st.DrawFn) -> list[Any]:
    """Dictionaries with the same keys (a run's fields), some held more than once."""
    keys = draw(st.lists(TEXTS, min_size=0, max_size=5, unique=True))
    columns = [
        draw(st.sampled_from([FLOATS, st.integers(-(2**70), 2**70), TEXTS, SCALARS, VALUES]))
        for _ in keys
    ]
    count = draw(st.integers(1, 6))
    made = [
        {key: draw(column) for key, column in zip(keys, columns, strict=True)} for _ in range(count)
    ]
    # the same dictionary object in several places (a study's runs share their hardware's)
    return [made[draw(st.integers(0, count - 1))] for _ in range(draw(st.integers(1, 9)))]


COLUMNS = (
    st.lists(SCALARS, min_size=1, max_size=8)
    | st.lists(FLOATS | st.none(), min_size=1, max_size=8)
    | st.lists(st.integers(-(2**70), 2**70) | st.none(), min_size=1, max_size=8)
    | st.lists(st.sampled_from(["a", "b", None]), min_size=1, max_size=12)
    | _same_keys()
    | st.lists(_same_keys() | st.just([]), min_size=1, max_size=4)  # a run's points each
    | st.lists(st.lists(VALUES, max_size=3).map(tuple), min_size=1, max_size=4)
    | st.lists(VALUES, min_size=1, max_size=6)
)


@settings(max_examples=400, deadline=None)
@given(values=COLUMNS, newline=NEWLINES)
def test_many_values_at_once_are_each_written_at_their_depth(
    values: list[Any], newline: str, float_writer: str
) -> None:
    assert texts_at(values, newline) == [_reference(v, newline) for v in values]


def _point(draw: st.DrawFn) -> MetricPoint:
    return MetricPoint(draw(TEXTS), draw(FLOATS), draw(st.none() | st.integers(0, 10)), 1.5)


def _sample(draw: st.DrawFn) -> PowerSample:
    powers = st.none() | FLOATS
    return PowerSample(draw(FLOATS), 2.0, draw(powers), draw(powers), draw(powers), draw(powers))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), newline=NEWLINES)
def test_points_and_samples_are_written_as_their_dictionaries(
    data: st.DataObject, newline: str, float_writer: str
) -> None:
    """The export's runs hold their points and samples as objects (no dictionary each)."""
    draw = data.draw
    runs = []
    for _ in range(draw(st.integers(1, 4))):
        points = [_point(draw) for _ in range(draw(st.integers(0, 3)))]
        samples = [_sample(draw) for _ in range(draw(st.integers(0, 3)))]
        mixed = draw(st.booleans())  # a list of a point and a dictionary: each on its own
        runs.append(
            {"metrics": points, "samples": tuple(samples), "other": [*points[:1], {"k": 1}]}
            if mixed
            else {"metrics": points, "samples": tuple(samples)}
        )
    plain = [
        {
            key: [
                {name: getattr(item, name) for name in DATA_FIELDS[type(item)]}
                if type(item) in DATA_FIELDS
                else item
                for item in items
            ]
            for key, items in run.items()
        }
        for run in runs
    ]
    assert texts_at(runs, newline, DATA_FIELDS) == [_reference(r, newline) for r in plain]
    point = MetricPoint("loss", 0.5, 3, 7.0)
    assert texts_at([point], newline, DATA_FIELDS) == [
        _reference(record_dict_point(point), newline)
    ]
    sample = PowerSample(1.0, 2.0, cpu_w=float("nan"))
    assert texts_at([sample], newline, DATA_FIELDS) == [_reference(sample_dict(sample), newline)]


def record_dict_point(point: MetricPoint) -> dict[str, Any]:
    """A point as ``record_dict`` writes it in a run's ``metrics``."""
    return {"name": point.name, "value": point.value, "step": point.step, "time": point.time}


def test_points_and_samples_are_written_with_the_fields_their_dictionaries_have() -> None:
    record = export_run("r", "a")
    assert [list(p) for p in record_dict(record)["metrics"]] == [list(DATA_FIELDS[MetricPoint])] * 2
    assert list(sample_dict(PowerSample(1.0, 2.0))) == list(DATA_FIELDS[PowerSample])
    assert texts_at([record_dict(record, points=False)], "\n", DATA_FIELDS) == [
        _reference(record_dict(record))
    ]


def test_values_of_other_types_are_written_or_refused_as_json_dumps_does() -> None:
    value = {"x": np.float64(0.25), "n": [np.float64("nan")], "t": (1, 2)}
    assert indented_json(value) == _reference(value)
    assert texts_at([value, value], "\n  ") == [_reference(value, "\n  ")] * 2
    for bad in ({"a": object()}, [np.int64(3)], {1, 2}):
        with pytest.raises(TypeError) as ours:
            indented_json(bad)
        with pytest.raises(TypeError) as theirs:
            _reference(bad)
        assert str(ours.value) == str(theirs.value)


def test_a_field_of_few_values_is_looked_up_with_zero_and_minus_zero_apart(
    float_writer: str,
) -> None:
    """A field with few distinct values is written by a lookup of each one's text; ``0.0`` and
    ``-0.0`` are one key and two texts, so such a field is not looked up."""
    for values in (
        [0.0, -0.0, None] * 40,
        [1.5, 2.5, None] * 40,
        ["on", "off"] * 50,
        [3, None, 4] * 30,
        [True, False] * 40,
    ):
        assert texts_at(values, "\n  ") == [_reference(v, "\n  ") for v in values]
