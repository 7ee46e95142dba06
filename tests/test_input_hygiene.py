"""Bad input is refused before anything is written; a deleted ledger is noticed and recreated.

Every bad setting or argument: the API raises a greenprint exception (a ConfigError), the CLI
prints one line and exits 2, and no ledger file is created. These run in an empty directory with
a clean environment (tests/conftest.py strips GREENPRINT_* variables).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import greenprint as gp
from greenprint._config import load_config
from greenprint._validate import finite_number, number_or_name
from greenprint.cli import main
from greenprint.meters._base import MeterReading


class ConstantMeters:
    """100 W of CPU by the clock, all of it this process's."""

    components = ("cpu",)
    provenance = {"cpu": "test:constant"}

    def __init__(self) -> None:
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        joules = 100.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self) -> None:
        pass


@pytest.fixture
def empty_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------------------- settings
BAD_SETTINGS = [
    ("GREENPRINT_CPU_TDP_W", "abc", "cpu_tdp_w must be a finite number of W"),
    ("GREENPRINT_CPU_TDP_W", "-5", "cpu_tdp_w must be a finite number of W with 0 < x <= 5600"),
    ("GREENPRINT_CPU_TDP_W", "nan", "cpu_tdp_w"),
    ("GREENPRINT_PUE", "7", "PUE (env:GREENPRINT_PUE) must be a finite number with 1 <= x <= 3"),
    ("GREENPRINT_PUE", "goggle", "did you mean google"),
    ("GREENPRINT_INTENSITY", "-1", "g CO2-eq/kWh with 0 < x <= 2000"),
    ("GREENPRINT_INTENSITY", "inf", "g CO2-eq/kWh with 0 < x <= 2000"),
    ("GREENPRINT_REGION", "XX-NOWHERE", "unknown region"),
]


@pytest.mark.parametrize(("var", "value", "message"), BAD_SETTINGS)
def test_a_bad_setting_raises_before_a_ledger_file_is_created(
    empty_dir, monkeypatch, var, value, message
):
    monkeypatch.setenv(var, value)
    with pytest.raises(gp.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gp.track("x", ledger="new.db")
    with pytest.raises(gp.ConfigError):
        gp.track("x")  # the default ledger, ./greenprint.db
    assert _files(empty_dir) == []


@pytest.mark.parametrize(("var", "value", "message"), BAD_SETTINGS)
def test_cli_run_with_a_bad_setting_is_one_line_and_writes_nothing(
    empty_dir, monkeypatch, capsys, var, value, message
):
    monkeypatch.setenv(var, value)
    assert main(["run", "--ledger", "new.db", "--", "true"]) == 2
    assert main(["run", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and all(
        line.startswith("greenprint: error: ") for line in err.splitlines()
    )
    assert message in err or "did you mean" in err or "unknown region" in err
    assert _files(empty_dir) == []


def test_cli_run_with_a_bad_interval_is_one_line_and_writes_nothing(empty_dir, capsys):
    assert main(["run", "--sample-interval", "nan", "--", "true"]) == 2
    assert main(["run", "--sample-interval", "1", "--flush-interval", "0.5", "--", "true"]) == 2
    err = capsys.readouterr().err.splitlines()
    # the options as the user typed them, not the API's parameter names
    assert err[0].startswith("greenprint: error: --sample-interval must be a finite number")
    assert err[1].startswith("greenprint: error: --flush-interval")
    assert _files(empty_dir) == []


def test_a_bad_tdp_is_refused_even_with_meters_given(empty_dir, monkeypatch):
    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", "0")
    with pytest.raises(gp.ConfigError, match="cpu_tdp_w"):
        gp.track("x", ledger="new.db", meters=ConstantMeters())
    assert _files(empty_dir) == []


# ---------------------------------------------------------------------------- greenprint.toml
BAD_TOML = [
    ("[ledger]\na = 1\n", "ledger must be a string (a path or URL), not a TOML table"),
    ("ledger = 1\n", "ledger must be a string (a path or URL), not a TOML integer"),
    ("study = ['a']\n", "study must be a string, not a TOML array"),
    ("region = 49\n", "region must be a string"),
    ("pue = true\n", "pue must be a number or a string (a preset name), not a TOML boolean"),
    ("intensity = 2024-01-01\n", "intensity must be a number of g CO2-eq/kWh or a string"),
    ("cpu_tdp_w = [65]\n", "cpu_tdp_w must be a number of W, not a TOML array"),
    ("cpu_tdp_w = 'sixty'\n", "cpu_tdp_w must be a finite number of W"),
    ("cpu_tdp_w = nan\n", "cpu_tdp_w must be a finite number of W"),
    ("pue = 0.5\n", "must be a finite number with 1 <= x <= 3"),
]


@pytest.mark.parametrize(("toml", "message"), BAD_TOML)
def test_a_config_value_of_the_wrong_type_is_one_error_and_writes_nothing(
    empty_dir, capsys, toml, message
):
    (empty_dir / "greenprint.toml").write_text(toml)
    with pytest.raises(gp.ConfigError) as info:
        gp.track("x")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert main(["run", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("greenprint: error: ") and message in err
    assert _files(empty_dir) == ["greenprint.toml"]


def test_a_type_error_names_the_file_and_the_key(empty_dir):
    (empty_dir / "greenprint.toml").write_text("[ledger]\na = 1\n")
    with pytest.raises(gp.ConfigError) as info:
        load_config()
    assert str(info.value).startswith(f"{empty_dir / 'greenprint.toml'}: ledger must be")


def test_numbers_and_text_of_the_right_types_are_read(empty_dir):
    (empty_dir / "greenprint.toml").write_text(
        'pue = 1.2\ncpu_tdp_w = 65\nintensity = 300\nstudy = "s"\nledger = "l.db"\n'
    )
    config = load_config()
    assert config.values == {
        "pue": "1.2",
        "cpu_tdp_w": "65",
        "intensity": "300",
        "study": "s",
        "ledger": "l.db",
    }
    with gp.track("x", meters=ConstantMeters()) as run:
        pass
    assert run.pue == 1.2 and run.intensity_g_per_kwh == 300 and run.study == "s"
    assert gp.Ledger("l.db").run(run.id).pue == 1.2


def test_an_unknown_config_key_is_warned_about_once_with_a_suggestion(empty_dir, caplog):
    (empty_dir / "greenprint.toml").write_text('regoin = "DE"\n')
    with caplog.at_level(logging.WARNING, logger="greenprint._config"):
        load_config()
        load_config()
    warnings = [r.getMessage() for r in caplog.records if "regoin" in r.getMessage()]
    assert len(warnings) == 1
    assert "did you mean 'region'" in warnings[0] and "greenprint.toml" in warnings[0]
    assert load_config().values == {}


# ---------------------------------------------------------------------------- API arguments
BAD_ARGUMENTS = [
    ({"dataset_size": -3}, "dataset_size must be a non-negative integer"),
    ({"dataset_size": 1.5}, "dataset_size must be a non-negative integer"),
    ({"dataset_size": True}, "dataset_size must be a non-negative integer"),
    ({"dataset_size": "100"}, "dataset_size must be a non-negative integer"),
    ({"params": "x"}, "params must be a mapping"),
    ({"params": [("lr", 0.1)]}, "params must be a mapping"),
    ({"params": {1: 2}}, "params keys must be strings"),
    ({"parent": 123}, "parent must be a Run, a run id"),
    ({"parent": ""}, "parent must be a Run, a run id"),
    ({"pid": "dead"}, "no such process"),
    ({"pid": 0}, "pid must be a positive integer"),
    ({"pid": -1}, "pid must be a positive integer"),
    ({"pid": True}, "pid must be a positive integer"),
    ({"pid": "1"}, "pid must be a positive integer"),
    ({"study": 3}, "study must be a string"),
    ({"study": b"s"}, "study must be a string"),
    ({"command": ["python"]}, "command must be a string"),
    ({"region": 49}, "region must be a string"),
    ({"scope": "galaxy"}, "scope must be"),
    ({"sample_interval_s": True}, "sample_interval_s must be a finite number of s with x > 0"),
    ({"sample_interval_s": math.nan}, "sample_interval_s must be a finite number"),
    ({"sample_interval_s": math.inf}, "sample_interval_s must be a finite number"),
    ({"sample_interval_s": "1"}, "sample_interval_s must be a finite number"),
    ({"sample_interval_s": 0}, "sample_interval_s must be a finite number"),
    ({"sample_interval_s": -1}, "sample_interval_s must be a finite number"),
    ({"sample_interval_s": None}, "sample_interval_s must be a finite number"),
    ({"flush_interval_s": 0.5}, "flush_interval_s (at least sample_interval_s)"),
    ({"flush_interval_s": math.nan}, "flush_interval_s"),
    ({"budget_kwh": -1}, "budget_kwh must be a finite number of kWh with x > 0"),
    ({"budget_kwh": math.nan}, "budget_kwh must be a finite number"),
    ({"budget_kwh": "5"}, "budget_kwh must be a finite number"),
    ({"budget_kg": True}, "budget_kg must be a finite number of kg CO2-eq"),
    ({"budget_kg": math.inf}, "budget_kg must be a finite number"),
    ({"pue": True}, "PUE must be a finite number"),
    ({"pue": "nope"}, "neither a number"),
    ({"intensity": [300]}, "intensity must be a finite number of g CO2-eq/kWh"),
    ({"intensity": math.nan}, "intensity must be a finite number"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
def test_a_bad_argument_is_a_greenprint_error_and_writes_nothing(empty_dir, kwargs, message):
    if kwargs.get("pid") == "dead":
        kwargs = {"pid": _dead_pid()}
    with pytest.raises(gp.ConfigError) as info:
        gp.track("x", ledger="new.db", **kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, gp.GreenprintError)
    assert _files(empty_dir) == []


@pytest.mark.parametrize("name", [3, b"x", ["x"]])
def test_a_name_that_is_not_text_is_refused(empty_dir, name):
    with pytest.raises(gp.ConfigError, match="name must be a string"):
        gp.track(name, ledger="new.db")
    assert _files(empty_dir) == []


def test_good_arguments_of_every_accepted_type_are_taken(empty_dir):
    with gp.track("parent", ledger="l.db", meters=ConstantMeters()) as parent:
        pass
    with gp.track(
        "x",
        ledger="l.db",
        meters=ConstantMeters(),
        dataset_size=np.int64(50_000),
        params={"lr": 0.1},
        parent=parent.id,
        pid=os.getpid(),
        sample_interval_s=np.float32(0.5),
        flush_interval_s=2,
        budget_kwh=1,
        budget_kg=0.5,
        pue="google",
        intensity="250",
    ) as run:
        pass
    record = gp.Ledger("l.db").run(run.id)
    assert record.dataset_size == 50_000 and type(record.dataset_size) is int
    assert record.parent_id == parent.id and record.params == {"lr": 0.1}
    assert run.pue == 1.10 and run.intensity_g_per_kwh == 250


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": "x"}, "params must be a mapping"),
        ({"params": {1: 2}}, "params keys must be strings"),
        ({"dataset_size": -3}, "dataset_size must be a non-negative integer"),
        ({"dataset_size": 2.0}, "dataset_size must be a non-negative integer"),
        ({"fpo": True}, "fpo must be a non-negative integer"),
        ({"param_count": "1000"}, "param_count must be a non-negative integer"),
        ({"params": {"lr": 1}, "fpo": -1}, "fpo must be a non-negative integer"),
        ({"colour": "green"}, "unknown run field"),
        # a status is not set: the message says what sets it
        ({"status": "pruned"}, r"unknown run field.*run\.prune\(\) for a trial stopped early"),
    ],
)
def test_run_set_refuses_bad_fields_and_records_none_of_them(tmp_path, fields, message):
    ledger = str(tmp_path / "l.db")
    with gp.track("x", ledger=ledger, meters=ConstantMeters(), params={"lr": 0.5}) as run:
        with pytest.raises(gp.ConfigError, match=message):
            run.set(**fields)
        run.set(dataset_size=np.int32(7), param_count=None)
    record = gp.Ledger(ledger).run(run.id)
    assert record.params == {"lr": 0.5} and record.fpo is None and record.dataset_size == 7


# ---------------------------------------------------------------------------- the validators
def test_finite_number_messages_are_uniform():
    with pytest.raises(gp.ConfigError) as info:
        finite_number("cpu_tdp_w", "-5", low=0, high=5600, low_open=True, unit="W", source="env:X")
    assert (
        str(info.value)
        == "cpu_tdp_w must be a finite number of W with 0 < x <= 5600, got '-5' (env:X)"
    )
    with pytest.raises(gp.InvalidPUEError) as pue:
        finite_number(
            "PUE", "x", low=1, high=3, alternative="or a preset name", error=gp.InvalidPUEError
        )
    assert (
        str(pue.value) == "PUE must be a finite number with 1 <= x <= 3 or a preset name, got 'x'"
    )
    with pytest.raises(gp.ConfigError, match=r"x >= 2, got 1"):
        finite_number("flush", 1, low=2)
    with pytest.raises(gp.ConfigError, match=r"x < 1, got 1"):
        finite_number("share", 1, high=1, high_open=True)
    with pytest.raises(gp.ConfigError, match="got '2'"):
        finite_number("interval", "2", low=0, text=False)
    assert finite_number("n", " 2.5 ", low=0) == 2.5


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.floats(0, 1e6),
    st.booleans(),
    st.booleans(),
)
def test_finite_number_accepts_exactly_the_finite_numbers_in_range(value, low, width, lo, hi):
    high = low + width
    inside = (
        math.isfinite(value)
        and (value > low if lo else value >= low)
        and (value < high if hi else value <= high)
    )
    for given_as in (value, repr(value)):
        try:
            got = finite_number("v", given_as, low=low, high=high, low_open=lo, high_open=hi)
        except gp.ConfigError:
            assert not inside
        else:
            assert inside and got == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (2, 2.0), (" 1.2 ", 1.2), ("1e3", 1000.0), (" google ", "google"), ("", "")],
)
def test_number_or_name(value, expected):
    assert number_or_name(value) == expected


def test_number_or_name_reads_nan_as_a_number_for_the_validator_to_refuse():
    assert math.isnan(number_or_name("nan"))  # type: ignore[arg-type]
    with pytest.raises(gp.ConfigError):
        number_or_name(True)


# ---------------------------------------------------------------------------- a deleted ledger
def _wait_for(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _remove_ledger(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_ledger_deleted_under_a_run_is_recreated_with_the_whole_run(tmp_path, caplog):
    path = tmp_path / "gone.db"
    caplog.set_level(logging.WARNING, logger="greenprint.tracking")
    fast = {"sample_interval_s": 0.1, "flush_interval_s": 0.2}
    with gp.track("victim", ledger=str(path), meters=ConstantMeters(), **fast) as run:
        run.log(loss=1.0, step=1)
        run.set(params={"lr": 0.1})
        assert _wait_for(lambda: gp.Ledger(path).run(run.id).metric("loss") == 1.0)
        _remove_ledger(path)
        run.log(loss=0.5, step=2)
        assert _wait_for(
            lambda: any("deleted or replaced" in r.getMessage() for r in caplog.records)
        )
        run.log(loss=0.25, step=3)
    messages = [r.getMessage() for r in caplog.records if "deleted or replaced" in r.getMessage()]
    assert len(messages) == 1 and str(path) in messages[0] and run.id[:8] in messages[0]
    record = gp.Ledger(path).run(run.id)
    assert record.status == "finished"
    assert record.energy_kwh == pytest.approx(run.energy_kwh)
    assert record.emissions_kg == pytest.approx(run.emissions_kg)
    assert record.params == {"lr": 0.1}
    assert [p.value for p in record.metrics] == [1.0, 0.5, 0.25]
    assert record.ended_at is not None


def test_a_ledger_that_cannot_be_recreated_says_the_run_cannot_be_saved(
    tmp_path, caplog, monkeypatch
):
    """(Since session 35 such a run goes on, whole, in its ledger's fallback file, which the
    warning names, instead of being saved apart only at the interpreter's exit.)"""
    from greenprint import _run_fallback, tracking

    folder = tmp_path / "runs"
    folder.mkdir()
    path = folder / "gone.db"
    temp = tmp_path / "tmp"
    temp.mkdir()
    # the run is saved apart in the temporary folder: this test's, not the machine's /tmp
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(_run_fallback, "_FALLBACKS", {})  # none said again at the session's end
    caplog.set_level(logging.WARNING, logger="greenprint.tracking")
    fast = {"sample_interval_s": 0.1, "flush_interval_s": 0.2}
    with gp.track("victim", ledger=str(path), meters=ConstantMeters(), **fast) as run:
        _remove_ledger(path)
        folder.rmdir()
        assert _wait_for(lambda: any("cannot take runs" in r.getMessage() for r in caplog.records))
    (said,) = [r.getMessage() for r in caplog.records if "cannot take runs" in r.getMessage()]
    assert str(path) in said
    assert not folder.exists()
    (spilled,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert f"they are saved in {spilled}" in said
    saved = gp.Ledger(spilled)
    try:
        assert saved.run(run.id).status == "finished"
    finally:
        saved.close()
    assert run not in tracking._UNSAVED
