"""A component that used no energy reads in its neighbours' unit, not always in mWh."""

from __future__ import annotations

import time

import greenprint as gp
from greenprint._reprs import run_html
from tracking._meters import ConstantPowerMeters


def test_a_component_at_zero_reads_in_the_unit_of_the_runs_energy(tmp_path):
    """A run's notebook table showed ``energy: ram  0 mWh`` under ``energy: cpu  1.4 µWh``:
    a reader compares the two at a glance, and a zero in another unit reads as a figure that
    was rounded away. It now reads ``0 µWh`` there (the unit of the run's energy)."""
    with gp.track(
        "tiny",
        study="s",
        ledger=tmp_path / "greenprint.db",
        # 1 W read as the process's: 14 µWh at 0.05 s, and in µWh up to 3.6 s of a busy
        # machine (at 100 W, a run slowed past 72 ms read in mWh and failed the test)
        meters=ConstantPowerMeters(cpu_w=2.0, ram_w=0.0),
    ) as run:
        time.sleep(0.05)
    html = run_html(run)
    assert run.energy_by_component["ram"] == 0 and "µWh" in html
    assert "0 mWh" not in html and "0 µWh" in html
