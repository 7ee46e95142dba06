"""A bulk read decodes the stored runs a batch of rows at a time, as one field at a time would.

``ledger._rows.decoded_columns`` fetches, transposes and decodes ``READ_BATCH_ROWS`` rows at a
time (``_fields.ColumnDecoder``); every value must be what ``decode_field`` makes of it, however
the rows fall into batches, equal strings must share one object across batches, and a JSON
column repeated across runs must share one dictionary. Proved on random stored rows (hypothesis:
every kind of field, NULLs, SQLite's 'NaN' text, FPO's decimal text, JSON that is not an
object), and on a real ledger read with batches of every size against the one-by-one read.
The points a report reads (``score_points_by_run``: made at once while a run is short, streamed
once it is long) are proved against the rule that names them.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import greenprint as gp
import greenprint.ledger._rows as rows_module
import greenprint.ledger._sqlite_reads as sqlite_reads
from _shared_runs import OTHER_SHARED, RUNS_A_STUDY, write_shared_runs
from greenprint._prediction import RESERVED_METRIC_PREFIX, metric_name
from greenprint.ledger._fields import FIELD_KINDS, CorruptValueError, decode_columns, decode_field
from greenprint.ledger._rows import (
    _BUFFERED_POINTS,
    REPEATED_COLUMNS,
    RUN_COLUMNS,
    SHARED_COLUMNS,
    SharedValues,
    decoded_columns,
    score_points_by_run,
)

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


@settings(max_examples=100, deadline=None)
@given(st.lists(_row, max_size=30), st.integers(1, 8), st.booleans())
def test_every_batch_size_decodes_as_one_field_at_a_time(
    rows: list[tuple[Any, ...]], batch: int, sharing: bool
) -> None:
    """Also with the shared columns read as the SQLite store reads them: NULL where a value
    equals the first run's (``NULLIF``), the decoder told what NULL stands for."""
    given_rows, stand_for = rows, None
    if sharing and rows:
        at = [RUN_COLUMNS.index(name) for name in REPEATED_COLUMNS]
        stand_for = {name: rows[0][k] for name, k in zip(REPEATED_COLUMNS, at, strict=True)}
        given_rows = [
            tuple(None if k in at and v == rows[0][k] else v for k, v in enumerate(row))
            for row in rows
        ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rows_module, "READ_BATCH_ROWS", batch)
        decoded = decoded_columns(_Batches(given_rows), stand_for)
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


@settings(max_examples=100, deadline=None)
@given(st.lists(_row, max_size=30), st.integers(1, 8), st.data())
def test_shared_columns_read_as_combinations_decode_as_one_field_at_a_time(
    rows: list[tuple[Any, ...]], batch: int, data: st.DataObject
) -> None:
    """The shared columns as the SQLite store reads them (``SharedValues``): each row holds the
    other columns and which of a few combinations of the shared columns the run has (NULL for
    the first), or -1 for none, its values then looked up by id. Runs that have the first
    run's, another's, none of those read; in batches of any size: each decodes as each of
    its values alone does."""
    if rows:  # many runs given another run's shared values, as the runs of a study are
        donors = data.draw(
            st.lists(st.integers(0, len(rows) - 1), min_size=len(rows), max_size=len(rows))
        )
        rows = [
            tuple(
                rows[donor][k] if name in SHARED_COLUMNS else value
                for k, (name, value) in enumerate(zip(RUN_COLUMNS, row, strict=True))
            )
            for row, donor in zip(rows, donors, strict=True)
        ]
        rows = [(f"{k}:{row[0]}", *row[1:]) for k, row in enumerate(rows)]  # ids unique
    at = {name: RUN_COLUMNS.index(name) for name in RUN_COLUMNS}
    first = {name: rows[0][at[name]] for name in RUN_COLUMNS} if rows else {}
    stand_for = {name: first[name] for name in REPEATED_COLUMNS} if rows else None
    others = [name for name in RUN_COLUMNS if name not in SHARED_COLUMNS]

    def shared_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[at[name]] for name in SHARED_COLUMNS)

    def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:  # SQL's IS, value by value
        return all(
            (x is None and y is None) or (type(x) is type(y) and x == y)
            for x, y in zip(a, b, strict=True)
        )

    # the combinations read: the first run's and some others' (not every one: the rest -1)
    known = [shared_of(rows[0])] if rows else []
    for row in rows:
        if data.draw(st.booleans()) and not any(same(shared_of(row), c) for c in known):
            known.append(shared_of(row))

    def which(row: tuple[Any, ...]) -> int | None:
        for k, combination in enumerate(known):
            if same(shared_of(row), combination):
                return None if k == 0 else k
        return -1

    given_rows = [
        (
            *(
                None if name in REPEATED_COLUMNS and row[at[name]] == first[name] else row[at[name]]
                for name in others
            ),
            which(row),
        )
        for row in rows
    ]
    looked_up: list[list[Any]] = []

    def lookup(ids: list[Any]) -> dict[Any, tuple[Any, ...]]:
        looked_up.append(ids)
        by_id = {row[0]: row for row in rows}
        return {rid: shared_of(by_id[rid]) for rid in ids}

    shared = SharedValues(known or [[None] * len(SHARED_COLUMNS)], lookup, stand_for)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rows_module, "READ_BATCH_ROWS", batch)
        decoded = decoded_columns(_Batches(given_rows), stand_for, shared)
    assert list(decoded) == list(RUN_COLUMNS)
    for k, name in enumerate(RUN_COLUMNS):
        assert len(decoded[name]) == len(rows)
        for row, got in zip(rows, decoded[name], strict=True):
            assert _same(got, decode_field(name, row[k])), (name, row[k], got)
    # only the runs that have none of the combinations are looked up, each once
    unknown = [row[0] for row, given in zip(rows, given_rows, strict=True) if given[-1] == -1]
    assert sorted(rid for ids in looked_up for rid in ids) == sorted(unknown)


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
    # a JSON column without a value reads as empty dictionaries (never None)
    assert decode_columns({**stored, "env": [None] * 10})["env"] == [{}] * 10


def test_bad_json_raises_as_the_whole_column_decoded_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = {
        name: ["{}"] * 4 if FIELD_KINDS[name][0] == "json" else [None] * 4 for name in RUN_COLUMNS
    }
    stored.update(id=["a", "b", "c", "d"], params=["{}", "{}", '{"lr": ', "{}"])
    rows = list(zip(*(stored[name] for name in RUN_COLUMNS), strict=True))
    monkeypatch.setattr(rows_module, "READ_BATCH_ROWS", 2)
    with pytest.raises(CorruptValueError) as batched:  # names run "c" (tests/ledger/
        decoded_columns(_Batches(rows))  # test_corrupt_rows.py: the stores add the ledger)
    with pytest.raises(CorruptValueError) as whole:
        decode_columns(stored)
    assert str(batched.value) == str(whole.value)
    assert (whole.value.run_id, whole.value.column) == ("c", "params")
    assert isinstance(whole.value.__cause__, json.JSONDecodeError)


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
                    host=f"h{k % 2}",  # shared values that differ from the first run's...
                    hardware={"cpu_model": "X" if k < 5 else "Y"},
                    provenance={"cpu": "rapl"} if k % 3 else {},
                    intensity_source="" if k == 6 else "table:DE:2023",  # ...and an empty one
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
            assert len({id(r.host) for r in runs}) == 2
            # one dictionary per distinct text (the first run's, whatever the batches)
            assert len({id(r.hardware) for r in runs}) == 2


@pytest.mark.parametrize(
    ("batch", "sample_every", "most", "read"),
    [
        (500, 61, 16, "looked up"),  # 50 runs: none sampled, every other combination looked up
        (3, 1, 64, "combinations"),  # every run sampled: every combination read as such
        (1, 3, 64, "both"),  # some combinations read, the others looked up
        (500, 1, 4, "columns"),  # too many combinations: every run's values read
    ],
)
def test_runs_whose_shared_columns_differ_read_as_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
    sample_every: int,
    most: int,
    read: str,
) -> None:
    """The SQLite store reads the few combinations of the columns a study's runs share once,
    and of each run which it has (``_rows.SharedValues``), a run with none of those it found
    among one run in ``_SAMPLE_EVERY`` looked up; with too many, every run's values. Each run,
    however its shared values differ from the first run's, reads as its own values: as the
    run read alone, and as its stored row decoded one value at a time; so does a read of
    every study (each run of the second differs in its study)."""
    monkeypatch.setattr(rows_module, "READ_BATCH_ROWS", batch)
    monkeypatch.setattr(sqlite_reads, "_SAMPLE_EVERY", sample_every)
    monkeypatch.setattr(sqlite_reads, "_MOST_COMBINATIONS", most)
    looked_up: list[str] = []
    shared_of = sqlite_reads._shared_of

    def spied(conn: Any, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        looked_up.extend(ids)
        return shared_of(conn, ids)

    monkeypatch.setattr(sqlite_reads, "_shared_of", spied)
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        write_shared_runs(led)
        alone = {
            r.id: repr(r)
            for r in (led.run(f"{s}{k:03d}") for s in "st" for k in range(RUNS_A_STUDY))
        }
        assert not looked_up  # a run read alone is its own first run
        for study in ("s", "t", None):
            looked_up.clear()
            runs = led.runs(study=study)
            if read in ("looked up", "both"):
                assert 0 < len(looked_up) < len(runs)
            else:
                assert not looked_up
            assert len(runs) == (2 if study is None else 1) * RUNS_A_STUDY
            assert {r.id: repr(r) for r in runs} == {
                rid: text for rid, text in alone.items() if study in (None, rid[0])
            }
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        stored = {row["id"]: row for row in conn.execute("SELECT * FROM runs")}
    with gp.Ledger(path) as led:
        for run in led.runs():
            for name in SHARED_COLUMNS:
                assert _same(getattr(run, name), decode_field(name, stored[run.id][name])), name
        differing = {r.id: r for r in led.runs(study="s")}
    # what each run was given, read back (the first run's values where it was given none)
    for k, other in enumerate(OTHER_SHARED, start=1):
        run = differing[f"s{k:03d}"]
        for name, value in other.items():
            if FIELD_KINDS[name][0] == "float" and value is not None:
                value = float(value)
            assert _same(getattr(run, name), value), (k, name)
    assert differing["s000"].intensity_g_per_kwh == 400.0
    assert differing["s023"].hardware == {"cpu_model": "X"}


# ------------------------------------------------------------------ points a report reads
_point_values = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 1.0, -2.0, 3]), st.floats(-4, 4)
)
_run_points = st.lists(
    st.tuples(st.sampled_from(["acc", "loss", metric_name("predicted_energy_kwh")]), _point_values),
    max_size=40,
)


def _kept_by_rule(logged: list[tuple[str, float]]) -> list[int]:
    """Positions of the points kept, from the rule itself: all of a short run; else of each
    metric its first, first not NaN, first finite max, first finite min and last point, and
    every point of a reserved metric."""
    if len(logged) <= _BUFFERED_POINTS:
        return list(range(len(logged)))
    keep: set[int] = set()
    for name in {n for n, _ in logged}:
        at = [k for k, (n, _) in enumerate(logged) if n == name]
        if name.startswith(RESERVED_METRIC_PREFIX):
            keep.update(at)
            continue
        keep.update((at[0], at[-1]))
        seen = [k for k in at if not math.isnan(logged[k][1])]
        finite = [k for k in at if math.isfinite(logged[k][1])]
        if seen:
            keep.add(seen[0])
        if finite:
            keep.add(max(finite, key=lambda k: (logged[k][1], -k)))
            keep.add(min(finite, key=lambda k: (logged[k][1], k)))
    return sorted(keep)


@settings(max_examples=100, deadline=None)
@given(st.lists(_run_points, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_score_points_are_those_the_rule_keeps(
    runs: list[list[tuple[str, float]]], rng: Any
) -> None:
    """Made at once or streamed, each run's kept points are exactly those the rule names."""
    rows = [
        (f"r{r}", name, "NaN" if value != value else value, step, 1e9 + step)
        for r, logged in enumerate(runs)
        for step, (name, value) in enumerate(logged)
    ]
    # runs interleaved at random, each run's points in its logged order
    rows.sort(key=lambda row: (row[3], rng.random()))
    wanted = [f"r{r}" for r in range(len(runs)) if r % 3 != 2]  # some runs not asked for
    kept = score_points_by_run(rows, wanted)
    for r, logged in enumerate(runs):
        run_id = f"r{r}"
        if run_id not in wanted or not logged:
            assert run_id not in kept
            continue
        expected = [
            gp.MetricPoint(logged[k][0], float(logged[k][1]), k, 1e9 + k)
            for k in _kept_by_rule(logged)
        ]
        assert repr(kept[run_id]) == repr(expected)
        assert all(type(p.value) is float for p in kept[run_id])


# ------------------------------------------------------------------ order of a read
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([1.0, 2.0, 2.5, 3.0, math.nan, -math.inf]) | st.floats(0, 10),
            st.text("abc", min_size=1, max_size=3),
        ),
        max_size=12,
        unique_by=lambda run: run[1],
    )
)
@example([(math.nan, "aa"), (math.nan, "a")])  # NaN: as the sort leaves them, stored order
@example([(2.0, "b"), (1.0, "c"), (2.0, "a")])
def test_runs_are_read_in_start_order_then_id(runs: list[tuple[float, str]]) -> None:
    """Stored in any order (or already in order: the sort is then skipped), read as sorted."""
    with gp.Ledger(":memory:") as led:
        stored = [gp.RunRecord(id=run_id, name="n", started_at=at) for at, run_id in runs]
        for record in stored:
            led.start_run(record)
        # as read one by one, in the order stored (a NaN read is a new float each time)
        expected = sorted(
            (led.run(r.id) for r in stored), key=operator.attrgetter("started_at", "id")
        )
        assert [r.id for r in led.runs()] == [r.id for r in expected]
        assert [r.id for r in led._read(points="score")] == [r.id for r in expected]
