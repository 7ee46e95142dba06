"""A run whose stored value cannot be read back (a hand edit, a crashed tool): one clear error.

``UPDATE runs SET params = '{bad'`` made every read of the ledger (``Ledger.runs``, ``report``,
``ledger show/ls/export``, merge) raise a raw ``json.JSONDecodeError``. Now the read raises a
:class:`~greenprint.LedgerError` whose one line names the ledger, the run, the column and what is
wrong, and gives the SQL that resets the value; the CLI prints it and exits 2. Running that SQL
makes the ledger readable again with every other run's values as they were stored: nothing else
is lost. Both backends (SQLite and PostgreSQL through a real pgserver), raw SQL as a user's.
"""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from greenprint import LedgerError, MetricPoint
from greenprint.cli import main
from greenprint.ledger import Ledger
from greenprint.ledger._fields import FIELD_KINDS, ColumnDecoder, CorruptValueError
from greenprint.ledger._rows import READ_BATCH_ROWS

from .conftest import make_record

JSON_COLUMNS = [name for name, (kind, _) in FIELD_KINDS.items() if kind == "json"]
IDS = [f"{i:04d}" + "ab" * 14 for i in range(3)]
#: the SQL the message gives to reset the value
_RESET = re.compile(r"\((UPDATE runs SET \w+ = \S+ WHERE id = '\w+')\)")


def _fill(url: str, ids: list[str] = IDS) -> dict[str, dict]:
    """Runs of study ``sweep``, each with its own params, hardware, env and provenance."""
    now = time.time()
    with Ledger(url) as led:
        for i, run_id in enumerate(ids):
            led.start_run(
                make_record(
                    run_id,
                    status="finished",
                    started_at=now - 100 + i,
                    heartbeat_at=now,
                    energy_kwh=0.01 * (i + 1),
                    emissions_kg=0.004 * (i + 1),
                    params={"lr": 0.1 * (i + 1)},
                    hardware={"cpu": "Xeon"},
                    env={"CUDA": str(i % 2)},
                    provenance={"cpu": "estimate:tdp"},
                    metrics=(MetricPoint("accuracy", 0.5 + i / 100, 1, now - 50),),
                )
            )
        return {r.id: _values(r) for r in led.runs()}


def _values(record) -> dict:
    return {name: getattr(record, name) for name in FIELD_KINDS} | {"metrics": record.metrics}


def _sql(url: str, statement: str, **params) -> None:
    """Raw SQL on the ledger, as a user's hand edit (``url``: a SQLite path or a URL)."""
    engine = sa.create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def _where(url: str) -> str:
    with Ledger(url, create=False) as led:
        return led._target.display


def _check_message(message: str, *, url: str, run_id: str, column: str) -> str:
    """The message is one line naming all it must; returns the SQL it gives."""
    assert "\n" not in message
    assert f"ledger {_where(url)}: run {run_id} has a corrupt {column} column" in message
    reset = _RESET.search(message)
    assert reset is not None, message
    assert f"UPDATE runs SET {column} = " in reset.group(1)
    return reset.group(1)


@pytest.mark.parametrize("column", JSON_COLUMNS)
def test_corrupt_json_names_the_run_and_repairs_by_the_given_sql(ledger_url, column):
    stored = _fill(ledger_url)
    bad = IDS[1]
    _sql(ledger_url, f"UPDATE runs SET {column} = '{{bad' WHERE id = :id", id=bad)
    with Ledger(ledger_url, create=False) as led:
        for read in (led.runs, lambda: led.runs(study="sweep"), lambda: led.run(bad)):
            with pytest.raises(LedgerError) as caught:
                read()
            assert type(caught.value) is LedgerError  # the public class, not the decoder's
            reset = _check_message(str(caught.value), url=ledger_url, run_id=bad, column=column)
            assert "Expecting property name" in str(caught.value)  # what is wrong
        assert led.run(IDS[0]).params == {"lr": 0.1}  # a run read alone: still readable
    _sql(ledger_url, reset)
    with Ledger(ledger_url, create=False) as led:
        runs = {r.id: _values(r) for r in led.runs()}
    assert runs[bad][column] == {}
    assert runs[bad] | {column: stored[bad][column]} == stored[bad]
    assert {k: v for k, v in runs.items() if k != bad} == {
        k: v for k, v in stored.items() if k != bad
    }


def test_a_value_the_runs_share_is_corrupt(ledger_url):
    """Every run's hardware (SQLite reads the value the runs share once): the first run named."""
    stored = _fill(ledger_url)
    _sql(ledger_url, "UPDATE runs SET hardware = '[1, 2'")
    for fixed in IDS:
        with Ledger(ledger_url, create=False) as led, pytest.raises(LedgerError) as caught:
            led.runs()
        reset = _check_message(str(caught.value), url=ledger_url, run_id=fixed, column="hardware")
        _sql(ledger_url, reset)
    with Ledger(ledger_url, create=False) as led:
        runs = {r.id: _values(r) for r in led.runs()}
    assert runs == {k: v | {"hardware": {}} for k, v in stored.items()}


def test_first_run_corrupt_others_share_a_good_value(tmp_path):
    """The first run's value stands for the others' on SQLite: its own run is named."""
    path = str(tmp_path / "l.db")
    _fill(path)
    _sql(path, "UPDATE runs SET provenance = 'nan!' WHERE id = :id", id=IDS[0])
    with Ledger(path, create=False) as led, pytest.raises(LedgerError) as caught:
        led.runs()
    _check_message(str(caught.value), url=path, run_id=IDS[0], column="provenance")


def test_corrupt_run_in_a_later_batch(tmp_path):
    path = str(tmp_path / "l.db")
    ids = [f"{i:05d}" + "cd" * 14 for i in range(READ_BATCH_ROWS + 40)]
    _fill(path, ids)
    bad = ids[READ_BATCH_ROWS + 7]
    _sql(path, "UPDATE runs SET env = '{\"a\": 1' WHERE id = :id", id=bad)
    with Ledger(path, create=False) as led, pytest.raises(LedgerError) as caught:
        led.runs()
    _check_message(str(caught.value), url=path, run_id=bad, column="env")


def test_corrupt_fpo_text_is_named_too(tmp_path):
    path = str(tmp_path / "l.db")
    _fill(path)
    _sql(path, "UPDATE runs SET fpo = 'lots' WHERE id = :id", id=IDS[2])
    with Ledger(path, create=False) as led, pytest.raises(LedgerError) as caught:
        led.runs()
    reset = _check_message(str(caught.value), url=path, run_id=IDS[2], column="fpo")
    assert reset == f"UPDATE runs SET fpo = NULL WHERE id = '{IDS[2]}'"


def test_decoder_names_run_and_column_and_pickles():
    columns = {name: [None, None] for name in FIELD_KINDS}
    columns["id"] = ["good", "bad"]
    columns["params"] = ['{"lr": 1}', '{"lr": ']
    with pytest.raises(CorruptValueError) as caught:
        ColumnDecoder().decode(columns)
    error = caught.value
    assert (error.run_id, error.column) == ("bad", "params")
    assert isinstance(error.__cause__, json.JSONDecodeError)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again)) == (CorruptValueError, str(error))
    assert str(error.in_ledger("x.db")).startswith("ledger x.db: run bad has a corrupt params")


def test_merge_names_the_input_ledger(tmp_path):
    source = str(tmp_path / "in.db")
    _fill(source)
    _sql(source, "UPDATE runs SET params = '{bad' WHERE id = :id", id=IDS[1])
    with Ledger(tmp_path / "out.db") as out, pytest.raises(LedgerError) as caught:
        out.merge(source)
    assert f"ledger {Path(source)}: run {IDS[1]} has a corrupt params column" in str(caught.value)
    with Ledger(tmp_path / "out.db") as out:
        assert out.runs() == []  # nothing merged


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--study", "sweep", "--format", "md"],
        ["ledger", "show", IDS[1][:8]],
        ["ledger", "ls"],
        ["ledger", "export"],
    ],
)
def test_cli_one_line_exit_2(tmp_path, capsys, args):
    path = str(tmp_path / "l.db")
    _fill(path)
    _sql(path, "UPDATE runs SET params = '{bad' WHERE id = :id", id=IDS[1])
    out_dir = ["--out", str(tmp_path / "out")] if args[0] == "report" else []
    assert main([*args, "--ledger", path, *out_dir]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("greenprint: error: ledger "), err
    assert "Traceback" not in err
    reset = _check_message(err.strip(), url=path, run_id=IDS[1], column="params")
    _sql(path, reset)
    assert main([*args, "--ledger", path, *out_dir]) == 0


_GOOD = {"json": '{"a": 1}', "bigint": "12", "float": 1.5}
_BAD = {"json": ["{bad", "[1,", "", "nan!"], "bigint": ["lots", "1.5"], "float": ["x1"]}
_CHECKED = [name for name, (kind, _) in FIELD_KINDS.items() if kind in _BAD]


@given(
    runs=st.integers(1, 12),
    corrupt=st.lists(
        st.tuples(st.sampled_from(_CHECKED), st.integers(0, 11), st.integers(0, 3)),
        min_size=1,
        max_size=5,
    ),
    shared=st.booleans(),
)
def test_decoder_names_the_first_corrupt_value(runs, corrupt, shared):
    """Whatever is corrupt, the error names the first bad value, column by column, then run."""
    ids = [f"run{i}" for i in range(runs)]
    columns = {name: [None] * runs for name in FIELD_KINDS}
    columns["id"] = ids
    for name in _CHECKED:
        columns[name] = [_GOOD[FIELD_KINDS[name][0]]] * runs
    bad = set()
    for name, row, which in corrupt:
        row %= runs
        choices = _BAD[FIELD_KINDS[name][0]]
        columns[name][row] = choices[which % len(choices)]
        bad.add((_CHECKED.index(name), row))
    stand_for = {}
    if shared:  # as the SQLite store reads it: a None where a run has the first run's value
        stand_for = {name: columns[name][0] for name in ("hardware", "provenance")}
        for name, value in stand_for.items():
            columns[name] = [None if v == value else v for v in columns[name]]
    with pytest.raises(CorruptValueError) as caught:
        ColumnDecoder(stand_for).decode(columns)
    column, row = min(bad)
    assert (caught.value.column, caught.value.run_id) == (_CHECKED[column], ids[row])
