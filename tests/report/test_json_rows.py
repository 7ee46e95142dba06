"""The JSON writer's runs, written a field at a time, are exactly the encoder's text.

``rows_json`` converts each field's values for a chunk of runs at once, by what their types
call for, looks up the text of a field with few distinct values, and writes the parameters a
parameter at a time when every run's have the same keys. Each of those choices must give the
text of ``json.JSONEncoder`` on ``RunRow.to_dict()``, run by run, for any mix of values: the
property below draws chunks whose fields repeat a few values (so that lookups are taken), mix
types, hold NaN, infinities, ``-0.0`` beside ``0.0``, and sums that overflow.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenprint.report import build_report, render
from greenprint.report._json import ROW_KEYS, _columns, head_json, row_json, rows_json
from greenprint.report._model import RunRow

from .test_scale_paths import STUDY, build_messy

ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

#: Every test with the float texts written by orjson and without it (``conftest.float_writer``).
pytestmark = pytest.mark.usefixtures("float_writer")

_NUMBERS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.1, 345.0, 1e308, -1e308, 5e-324]),
    st.integers(-(10**6), 10**6),
    st.booleans(),
)
_TEXTS = st.one_of(st.text(max_size=8), st.sampled_from(["trial", 'é\u2028"\\<', "\x00"]))
#: Values a dictionary holds as they are; a float here must be finite (the encoder refuses
#: NaN in a field that is not a number: checked apart below).
_PLAIN = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXTS,
)
_PARAM_VALUES = st.one_of(
    _PLAIN,
    st.floats(allow_nan=True, allow_infinity=True),  # written as "nan", "inf" strings
    st.lists(st.floats(allow_nan=True), max_size=2),
    st.tuples(st.integers(), _TEXTS),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), st.integers(), max_size=2),
    st.just({1, 2}),  # repr'ed
)
_FIELD_VALUES: dict[str, Any] = {
    "id": _TEXTS,
    "name": _TEXTS,
    "parent_id": st.one_of(st.none(), _TEXTS),
    "depth": _PLAIN,
    "is_trial": _PLAIN,
    "status": _PLAIN,
    "fpo": st.one_of(st.none(), st.integers(0, 10**30)),
    "dataset_size": _PLAIN,
    "param_count": _PLAIN,
    "energy_source": _PLAIN,
    "intensity_source": _PLAIN,
    "error": st.one_of(st.none(), _TEXTS),
    "is_final": _PLAIN,
    "role": _PLAIN,
    "role_inferred": _PLAIN,
    "score_source": _PLAIN,
    "fpo_lower_bound": _PLAIN,
    "job_id": st.one_of(st.none(), _TEXTS),
    "node_rank": _PLAIN,
    "local_rank": _PLAIN,
    "node_meter": _PLAIN,
    "contained": _PLAIN,
    # what a run's FPO assumed: a few shared mappings (rows of one provenance share one)
    "fpo_assumptions": st.one_of(
        st.just({}), st.dictionaries(_TEXTS, _TEXTS, min_size=1, max_size=2)
    ),
}
_NUMBER_FIELDS = (
    "score", "started_at", "duration_s", "energy_kwh", "emissions_kg", "pue",
    "intensity_g_per_kwh", "score_per_kwh", "score_per_gflop",
)  # fmt: skip
_NAMES = st.lists(st.one_of(st.text(max_size=4), st.integers(0, 3)), max_size=4, unique=True)


@st.composite
def chunks(draw: st.DrawFn) -> list[RunRow]:
    """Runs whose fields each take one of a few drawn values (or many, when the pool is big)."""
    count = draw(st.integers(0, 90))
    rng = random.Random(draw(st.integers(0, 2**32)))
    pools: dict[str, list[Any]] = {}
    for field in dataclasses.fields(RunRow):
        if field.name == "params":
            continue
        values = _NUMBERS if field.name in _NUMBER_FIELDS else _FIELD_VALUES[field.name]
        pools[field.name] = draw(st.lists(values, min_size=1, max_size=draw(st.integers(1, 40))))
    # parameters: one shape for every run (the per-parameter path) or a few shapes
    shapes = draw(st.lists(_NAMES, min_size=1, max_size=draw(st.integers(1, 2))))
    param_values = draw(st.lists(_PARAM_VALUES, min_size=1, max_size=6))
    rows = []
    for _ in range(count):
        fields = {name: rng.choice(pool) for name, pool in pools.items()}
        fields["params"] = {key: rng.choice(param_values) for key in rng.choice(shapes)}
        rows.append(RunRow(**fields))
    return rows


def _encoded(rows: list[RunRow]) -> str:
    return ",".join(ENCODER.encode(row.to_dict()) for row in rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks())
def test_rows_json_is_the_encoded_row_dicts(rows: list[RunRow]) -> None:
    try:
        expected = _encoded(rows)
    except (ValueError, OverflowError) as e:  # NaN outside a number field; a huge int
        with pytest.raises(type(e)):
            rows_json(rows, ENCODER)
        return
    assert rows_json(rows, ENCODER) == expected
    assert [row_json(row, ENCODER) for row in rows] == [ENCODER.encode(r.to_dict()) for r in rows]


def _row(**fields: Any) -> RunRow:
    base = RunRow("a", "b", None, 0, True, "finished", 0.5, 1.0, 2.0, 0.1, 0.04, 10**15,
                  50_000, None, {"lr": 0.1}, "measured", 1.1, 345.0, "table:DE:2023", 5.0,
                  5e-07, None)  # fmt: skip
    return dataclasses.replace(base, **fields)


@pytest.mark.parametrize(
    "values",
    [
        [0.0, -0.0] * 50,  # one key, two texts: never looked up
        [1.1] * 99 + [-0.0],
        [1.5] * 99 + [math.nan],  # NaN: null
        [1e308] * 100,  # the sum overflows: written one at a time
        [2.0] * 50 + [None] * 50,
        [1] * 50 + [1.0] * 50,  # an int in a number field is written as a float
        [True] * 100,
    ],
)
def test_a_number_field_with_few_values(values: list[Any]) -> None:
    rows = [_row(pue=v, intensity_g_per_kwh=v, score=v) for v in values]
    assert rows_json(rows, ENCODER) == _encoded(rows)


@pytest.mark.parametrize(
    "values",
    [
        [1] * 50 + [True] * 50,  # equal keys of a lookup, different texts
        [0] * 50 + [False] * 50,
        ["x"] * 99 + [None],
        [None] * 100,
        [1.0] * 100,  # a float where an int is expected is written as the encoder does
    ],
)
def test_a_field_with_few_values(values: list[Any]) -> None:
    rows = [_row(depth=v, dataset_size=v, status=v, is_final=v) for v in values]
    assert rows_json(rows, ENCODER) == _encoded(rows)


@pytest.mark.parametrize(
    "params",
    [
        [{"lr": 0.1, "model": "cnn"}] * 10 + [{"model": "cnn", "lr": 0.1}],  # same keys, order
        [{"lr": math.nan}, {"lr": math.inf}, {"lr": 0.5}],  # non-finite: strings
        [{1: "a", "b": 2}] * 3,  # a key that is not a string
        [{True: 1}, {None: 2}],
        [{}] * 5,
        [{"a": [1.0, math.nan], "b": {"c": (1, 2)}}] * 3,
        [{"a": object()}] * 2,  # repr'ed
    ],
)
def test_parameters(params: list[dict[Any, Any]]) -> None:
    rows = [_row(params=p) for p in params]
    assert rows_json(rows, ENCODER) == _encoded(rows)


def test_columns_are_the_fields_in_row_key_order() -> None:
    row = RunRow(*(f"value of field {k}" for k in range(len(dataclasses.fields(RunRow)))))
    assert _columns([row, row]) == [(getattr(row, key),) * 2 for key in ROW_KEYS]
    assert sorted(ROW_KEYS) == sorted(f.name for f in dataclasses.fields(RunRow))


def test_no_rows() -> None:
    assert rows_json([], ENCODER) == ""


def test_a_chunk_like_a_search() -> None:
    """A thousand runs of one study: every lookup and the per-parameter path taken."""
    rng = random.Random(3)
    rows = [
        _row(
            id=f"{k:016x}",
            score=None if k % 12 == 0 else rng.random(),
            started_at=1.7e9 + 600 * k,
            energy_kwh=rng.uniform(0.001, 0.03),
            status=rng.choice(["finished", "pruned", "failed"]),
            params={
                "model": rng.choice(["cnn", "vit"]),
                "lr": 10 ** rng.uniform(-5, -1),
                "batch": rng.choice([32, 64]),
            },  # fmt: skip
            error=None if k % 12 else "ValueError: boom",
        )
        for k in range(1000)
    ]
    assert rows_json(rows, ENCODER) == _encoded(rows)


@pytest.mark.parametrize("in_job", [1, 3, 1000], ids=["one-job-run", "a-third", "all"])
def test_a_chunk_like_a_job(in_job: int) -> None:
    """A job's ranks (one run in ``in_job`` of the chunk): ranks, meters and links."""
    rows = []
    for k in range(1000):
        job = k % in_job == 0
        rows.append(
            _row(
                id=f"{k:016x}",
                job_id="torchrun:h:29500" if job else None,
                node_rank=k // 8 % 4 if job else None,
                local_rank=k % 8 if job else None,
                node_meter=k % 8 == 0 if job else None,
                contained=None if k == 0 else k % 8 != 0 if job else True,
            )
        )
    assert rows_json(rows, ENCODER) == _encoded(rows)


def test_json_report_is_the_encoded_document(tmp_path: Path) -> None:
    """The streamed document is, byte for byte, the encoder's text of ``Report.to_dict()``."""
    path = tmp_path / "messy.db"
    build_messy(path)
    report = build_report(path, STUDY, metric="accuracy")
    assert render(report, "json") == ENCODER.encode(report.to_dict()) + "\n"


_FIGURE_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-05, 1.5e-05, -9.5e-05, 1e-07, 1e16, 0.0, -0.0, 10.00001]),
    st.none(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_FIGURE_VALUES, min_size=250, max_size=600),
    st.lists(st.one_of(_FIGURE_VALUES, st.integers(), st.text(max_size=3)), max_size=300),
    st.booleans(),
)
def test_a_documents_figures_are_the_encoders_text(
    floats: list[float | None], mixed: list[Any], as_tuple: bool
) -> None:
    """Long lists of floats under ``figures`` (lists or tuples, ``None`` among them) are
    written at once; everything else as the encoder writes it, whatever the text."""
    series = {"x": tuple(floats) if as_tuple else floats, "y": floats[::-1], "labels": mixed}
    document = {
        "schema": "greenprint.report/2",
        "figures": [{"panels": [{"series": [series, {"x": floats[:10]}]}]}, {"panels": []}],
        "price_tag": {"fpo": 10**21, "energy_kwh": floats[0]},
    }
    assert head_json(document, ENCODER) == ENCODER.encode(document)


def test_a_string_that_spells_a_marker_leaves_the_document_as_the_encoder_writes_it() -> None:
    marker = "\x00greenprint float list 0\x00"
    floats = [k / 7 for k in range(300)]
    for document in (
        {"figures": [{"name": marker, "x": floats}]},
        {"figures": [{"x": floats, "name": marker}]},
        {"figures": [{"x": floats}], "study": marker},
        {"figures": [{"x": floats, "y": floats}], "study": "\x00greenprint float list 1\x00"},
    ):
        assert head_json(document, ENCODER) == ENCODER.encode(document)


def test_non_finite_floats_in_a_figure_are_refused_as_the_encoder_refuses_them() -> None:
    for bad in (math.nan, math.inf):
        document = {"figures": [{"x": [0.5] * 300 + [bad]}]}
        with pytest.raises(ValueError):
            ENCODER.encode(document)
        with pytest.raises(ValueError):
            head_json(document, ENCODER)
