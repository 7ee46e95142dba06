"""What the logger integrations stand on: Run.add_listener and the figures they log."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import greenprint as gp
from _wait import wait_until
from greenprint import ConfigError
from greenprint.integrations._loggers import (
    StepFigures,
    check_record,
    provenance_tags,
    total_figures,
)
from tracking._meters import ConstantPowerMeters

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def test_listeners_hear_each_flush_then_the_stop_once() -> None:
    events: list[tuple[str, str, str]] = []
    with gp.track("x", ledger=False, **FAST) as run:
        run.add_listener(
            lambda r, event: events.append((event, r.status, threading.current_thread().name))
        )
        # two flushes (every 0.1 s), however late a loaded machine starts the sampler: it first
        # records the environment (it was a fixed 0.4 s)
        wait_until(lambda: sum(e[0] == "flush" for e in events) >= 2, 30, every_s=0.01)
    run.stop()  # again: nothing more
    flushes = [e for e in events if e[0] == "flush"]
    assert len(flushes) >= 2
    assert all(
        status == "running" and name.startswith("greenprint-sampler") for _, status, name in flushes
    )
    assert events[-1] == ("stop", "finished", threading.current_thread().name)
    assert [e[0] for e in events].count("stop") == 1


def test_a_failing_listener_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(run: gp.Run, event: str) -> None:
        raise RuntimeError(f"listener broke at {event}")

    with caplog.at_level(logging.ERROR, logger="greenprint.tracking"):
        with gp.track("x", ledger=False, **FAST) as run:
            run.add_listener(broken)
            time.sleep(0.25)
    assert run.status == "finished"
    assert "listener broke at flush" in caplog.text
    assert "listener broke at stop" in caplog.text
    with pytest.raises(ConfigError, match="callable"):
        run.add_listener("not callable")  # type: ignore[arg-type]


def test_step_figures_and_totals_agree_with_the_run(tmp_path) -> None:
    with gp.track("x", ledger=tmp_path / "gp.db", meters=ConstantPowerMeters(), **FAST) as run:
        figures = StepFigures(run)
        first = figures.read(fresh=True)
        time.sleep(0.2)
        second = figures.read(fresh=True)
        run.add_fpo(1000)
        third = figures.read()
    assert second["greenprint/energy_kwh"] >= first["greenprint/energy_kwh"]
    assert second["greenprint/power_w"] == pytest.approx(55.0, rel=0.2)  # half of 110 W
    assert "greenprint/fpo" not in second and third["greenprint/fpo"] == 1000.0
    record = check_record(run, "test")
    totals = total_figures(record)
    assert totals["greenprint/energy_kwh"] == record.energy_kwh
    assert totals["greenprint/cpu_energy_kwh"] + totals["greenprint/ram_energy_kwh"] == (
        pytest.approx(record.energy_kwh)
    )
    assert totals["greenprint/fpo"] == 1000.0
    tags = provenance_tags(record)
    assert (
        tags["greenprint.run_id"] == run.id and tags["greenprint.provenance.cpu"] == "test:constant"
    )
    assert "greenprint.role" not in tags  # not given: nothing invented
