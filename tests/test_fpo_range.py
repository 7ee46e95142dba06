"""An FPO beyond the float range: refused where it is set or stored, named where it is read.

Every figure of the analyses and reports is a float. ``run.set(fpo=10**400)`` was stored, then
``greenprint report`` crashed with a raw ``OverflowError``. The rule: an FPO is at most the
largest float (``sys.float_info.max``, about 1.8e308; no computation ever counted that many
operations): ``run.set``, ``run.add_fpo`` and a RunRecord stored through a Ledger refuse a larger
one with a ConfigError giving its size, and change nothing. A ledger that already holds one
(an older greenprint, raw SQL) is reported as an AnalysisError naming the run and the SQL that
makes its FPO unknown: one line and exit 2 from the CLI, the ledger untouched.
"""

from __future__ import annotations

import math
import sqlite3
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import greenprint as gp
from greenprint import AnalysisError, ConfigError, MetricPoint, RunRecord
from greenprint._validate import FPO_MAX, check_fpo
from greenprint.analysis import price_tag
from greenprint.cli import main
from greenprint.report import build_report

HUGE = 10**400
#: the smallest integer that has no float: 2**1024 - 2**970 rounds up to 2**1024 (IEEE 754)
NO_FLOAT = 2**1024 - 2**970


def test_the_bound_is_the_largest_float():
    assert float(FPO_MAX) == sys.float_info.max
    assert FPO_MAX == (2 - 2**-52) * 2**1023  # the largest binary64, from its definition
    with pytest.raises(OverflowError):
        float(NO_FLOAT)
    assert float(NO_FLOAT - 1) == sys.float_info.max


@given(st.integers(min_value=0, max_value=2**1100))
def test_accepted_fpo_always_has_a_float(value):
    try:
        check_fpo("fpo", value)
    except ConfigError as e:
        assert value > FPO_MAX
        assert f"an integer of {len(str(value))} digits" in str(e)
    else:
        assert value <= FPO_MAX and math.isfinite(float(value))


def test_run_set_and_add_fpo_refuse_and_change_nothing(tmp_path):
    with gp.track("r", study="s", ledger=tmp_path / "l.db") as run:
        run.set(fpo=10**20)
        with pytest.raises(ConfigError, match=r"at most 1\.8e\+308.*401 digits"):
            run.set(fpo=HUGE, dataset_size=5)
        assert run.fpo == 10**20  # nothing of the call recorded (dataset_size: below)
        with pytest.raises(ConfigError, match="run's total"):
            run.add_fpo(FPO_MAX)  # the total would be above the bound
        assert run.fpo == 10**20
        run.add_fpo(5)
        run.set(fpo=FPO_MAX)  # the bound itself is a float: accepted
    with gp.Ledger(tmp_path / "l.db", create=False) as led:
        (record,) = led.runs()
    assert (record.fpo, record.dataset_size) == (FPO_MAX, None)


def test_ledger_refuses_a_record_with_it(tmp_path):
    with gp.Ledger(tmp_path / "l.db") as led:
        with pytest.raises(ConfigError, match="401 digits"):
            led.start_run(RunRecord(id="abcd1234", name="n", study="s", fpo=HUGE))
        led.start_run(RunRecord(id="abcd1234", name="n", study="s", fpo=1))
        with pytest.raises(ConfigError, match="fpo must be at most"):
            led.flush("abcd1234", fields={"fpo": NO_FLOAT})
        assert [r.fpo for r in led.runs()] == [1]


def _study(path, *, nested: bool) -> list[str]:
    """Three finished trials (the second also a parent of a part, if ``nested``)."""
    now = time.time()
    ids = [f"{i:04d}" + "ef" * 14 for i in range(3)]
    with gp.Ledger(path) as led:
        for i, run_id in enumerate(ids):
            led.start_run(
                RunRecord(
                    id=run_id,
                    name=f"t{i}",
                    study="s",
                    status="finished",
                    started_at=now - 100 + i,
                    ended_at=now - 50,
                    energy_kwh=0.01,
                    emissions_kg=0.004,
                    fpo=10**12 * (i + 1),
                    metrics=(MetricPoint("accuracy", 0.5 + i / 10, 1, now - 60),),
                )
            )
        if nested:
            led.start_run(
                RunRecord(
                    id="part" + "0" * 28,
                    name="fold",
                    study="s",
                    parent_id=ids[1],
                    status="finished",
                    started_at=now - 99,
                    fpo=10**11,
                )
            )
    # as an older greenprint (or a hand edit) wrote it
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET fpo = ? WHERE id = ?", (str(HUGE), ids[1]))
    return ids


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_report_of_a_ledger_holding_one_names_the_run(tmp_path, nested):
    path = tmp_path / "l.db"
    ids = _study(path, nested=nested)
    with gp.Ledger(path, create=False) as led:
        runs = led.runs(study="s")
    assert runs[1].fpo == HUGE  # read back as stored: nothing lost or changed
    expected = rf"run {ids[1]} \('t1'\) records an FPO of 401 digits, above the largest float"
    with pytest.raises(AnalysisError, match=expected):
        price_tag(runs, metric="accuracy")
    with pytest.raises(AnalysisError, match=expected):
        build_report(path, "s", metric="accuracy")


def test_cli_report_one_line_exit_2_then_repaired(tmp_path, capsys):
    path = tmp_path / "l.db"
    ids = _study(path, nested=False)
    args = ["report", "--study", "s", "--ledger", str(path), "--out", str(tmp_path / "out")]
    assert main([*args, "--format", "md"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"greenprint: error: run {ids[1]} "), err
    assert main(["ledger", "show", ids[1][:8], "--ledger", str(path)]) == 0
    assert "an integer of 401 digits (corrupt: above the largest float)" in capsys.readouterr().out
    # the repair the message gives
    fix = err.split("(UPDATE", 1)[1].split(")", 1)[0]
    assert fix == f" runs SET fpo = NULL WHERE id = '{ids[1]}'"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE" + fix)
    assert main([*args, "--format", "json"]) == 0
    with gp.Ledger(path, create=False) as led:
        assert [r.fpo for r in led.runs()] == [10**12, None, 3 * 10**12]
