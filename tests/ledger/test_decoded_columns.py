"""A bulk read decodes the stored runs a batch of rows at a time, as one field at a time would.

``ledger._rows.decoded_columns`` fetches, transposes and decodes ``READ_BATCH_ROWS`` rows at a
time (``_fields.ColumnDecoder``); every value must be what ``decode_field`` makes of it, however
the rows fall into batches, equal strings must share one object across batches, and a JSON
column repeated across runs must share one dictionary. Proved on random stored rows (hypothesis:
every kind of field, NULLs, SQLite's 'NaN' text, FPO's decimal text, JSON that is not an
object), and on a real ledger read with batches of every size against the one-by-one read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenprint as gp
import greenprint.ledger._rows as rows_module
from greenprint.ledger._fields import FIELD_KINDS, decode_columns, decode_field
from greenprint.ledger._rows import RUN_COLUMNS, decoded_columns

_TEXTS = ["a", "b", "big-sweep", "", "x" * 40]
_JSON = ['{"lr": 0.1}', '{"lr": 0.1}', "{}", '{"a": NaN, "b": [1, 2]}', "[1, 2]", "3", ' {"s": 1} ']

_STORED: dict[str, st.SearchStrategy[Any]] = {
    "str": st.sampled_from(_TEXTS),
    "status": st.sampled_from(["finished", "running", "failed"]),
    "role": st.sampled_from(["trial", "part"]),
    "float": st.one_of(st.floats(allow_nan=False), st.just("NaN"), st.integers(-5, 5)),
    "int": st.one_of(st.integers(-(2**63), 2**63 - 1), st.booleans()),
    "bigint": st.one_of(st.integers(0, 10**30).map(str), st.integers(0, 10**6)),
    "bool": st.sampled_from([0, 1, True, False]),
    "json": st.sampled_from(_JSON),
}


def _value(name: str) -> st.SearchStrategy[Any]:
    kind, nullable = FIELD_KINDS[name]
    if name == "id":
        return st.text(min_size=1, max_size=8)
    strategy = _STORED[kind]
    return st.one_of(st.none(), strategy) if nullable else strategy


_row = st.tuples(*(_value(name) for name in RUN_COLUMNS))


class _Batches:
    """A query's result as a cursor hands it out, ``fetchmany`` at a time."""

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._rows = list(rows)

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        batch, self._rows = self._rows[:size], self._rows[size:]
        return batch


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same type (a float stays a float, a bool a bool)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(st.lists(_row, max_size=30), st.integers(1, 8))
def test_every_batch_size_decodes_as_one_field_at_a_time(
    rows: list[tuple[Any, ...]], batch: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rows_module, "READ_BATCH_ROWS", batch)
        decoded = decoded_columns(_Batches(rows))
    assert list(decoded) == list(RUN_COLUMNS)
    for k, name in enumerate(RUN_COLUMNS):
        column = decoded[name]
        assert len(column) == len(rows)
        for row, got in zip(rows, column, strict=True):
            assert _same(got, decode_field(name, row[k])), (name, row[k], got)
    # equal strings share one object, whichever batch they came in
    for name, (kind, _) in FIELD_KINDS.items():
        if kind in ("str", "status", "role") and name != "id":
            first: dict[str, str] = {}
            for value in decoded[name]:
                if value is not None:
                    assert first.setdefault(value, value) is value


def test_a_repeated_json_text_is_one_dictionary_across_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hardware = json.dumps({"cpu_model": "X", "gpus": [{"name": "G"}]})
    stored = {name: [None] * 10 for name in RUN_COLUMNS}
    stored.update(
        id=[f"r{k}" for k in range(10)],
        study=["s"] * 10,
        hardware=[hardware] * 10,
        params=[json.dumps({"lr": k}) for k in range(10)],  # all distinct: decoded one by one
    )
    rows = list(zip(*(stored[name] for name in RUN_COLUMNS), strict=True))
    monkeypatch.setattr(rows_module, "READ_BATCH_ROWS", 3)
    decoded = decoded_columns(_Batches(rows))
    assert len({id(d) for d in decoded["hardware"]}) == 1
    assert decoded["hardware"][0] == {"cpu_model": "X", "gpus": [{"name": "G"}]}
    assert decoded["params"] == [{"lr": k} for k in range(10)]
    assert len({id(s) for s in decoded["study"]}) == 1
    assert decoded_columns(_Batches([])) == {name: [] for name in RUN_COLUMNS}


def test_bad_json_raises_as_the_whole_column_decoded_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = {
        name: ["{}"] * 4 if FIELD_KINDS[name][0] == "json" else [None] * 4 for name in RUN_COLUMNS
    }
    stored.update(id=["a", "b", "c", "d"], params=["{}", "{}", '{"lr": ', "{}"])
    rows = list(zip(*(stored[name] for name in RUN_COLUMNS), strict=True))
    monkeypatch.setattr(rows_module, "READ_BATCH_ROWS", 2)
    with pytest.raises(json.JSONDecodeError) as batched:
        decoded_columns(_Batches(rows))
    with pytest.raises(json.JSONDecodeError) as whole:
        decode_columns(stored)
    assert str(batched.value) == str(whole.value)


def test_a_ledger_read_in_batches_of_any_size_equals_the_runs_read_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        for k in range(7):
            led.start_run(
                gp.RunRecord(
                    id=f"{k:08x}",
                    name=f"trial-{k % 3}",
                    study="s",
                    status="finished" if k % 2 else "running",
                    started_at=1_700_000_000.0 + k // 2,
                    heartbeat_at=1_700_000_000.0,
                    hardware={"cpu_model": "X"},
                    params={"lr": 10.0**-k, "nan": math.nan} if k % 3 else {},
                    fpo=10**25 + k,
                    energy_kwh=math.nan if k == 3 else 0.5 * k,
                    git_dirty=bool(k % 2),
                    metrics=(gp.MetricPoint("acc", 0.1 * k, 1, 1_700_000_000.0 + k),),
                )
            )
        one_by_one = [repr(led.run(f"{k:08x}")) for k in range(7)]
        for batch in (1, 2, 3, 7, 100):
            monkeypatch.setattr(rows_module, "READ_BATCH_ROWS", batch)
            runs = led.runs(study="s")
            assert sorted(repr(r) for r in runs) == sorted(one_by_one)
            assert [r.status for r in runs].count("lost") == 4  # stale 'running' runs read lost
            assert len({id(r.study) for r in runs}) == 1
            # one dictionary, once a batch has shown the text repeated
            assert len({id(r.hardware) for r in runs}) == (7 if batch == 1 else 1)
