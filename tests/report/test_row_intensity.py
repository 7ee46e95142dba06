"""A run priced by an hourly intensity series shows the intensity that applied to it.

The run records the file's plain mean as its intensity; what priced its CO2-eq is the series'
energy-weighted mean over the run, ``emissions / (energy x PUE)``. The report's run table (and
so its JSON and CSV) shows that, saying so in the source; a constant intensity is shown as
recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.report import build_report, render

T0 = 1_700_000_000.0


def test_hourly_priced_run_shows_its_own_intensity(tmp_path: Path) -> None:
    ledger = tmp_path / "hourly.db"
    # 0.5 kWh drawn at 100 g/kWh and 0.5 kWh at 500 g/kWh, PUE 1.2: 360 g CO2-eq in all;
    # the file's mean over its whole day was 833 g/kWh
    energy, pue = 1.0, 1.2
    emissions_kg = (0.5 * 100 + 0.5 * 500) * pue / 1000
    with gp.Ledger(ledger) as led:
        for run_id, source, recorded, kg in (
            ("hourly", "csv:/data/grid.csv", 833.0, emissions_kg),
            ("constant", "table:DE:2023", 380.0, energy * pue * 380 / 1000),
        ):
            led.start_run(
                gp.RunRecord(
                    id=run_id,
                    name=run_id,
                    study="s",
                    status="finished",
                    started_at=T0,
                    ended_at=T0 + 7200,
                    duration_s=7200.0,
                    energy_kwh=energy,
                    pue=pue,
                    emissions_kg=kg,
                    intensity_g_per_kwh=recorded,
                    intensity_source=source,
                    metrics=(gp.MetricPoint("accuracy", 0.9),),
                )
            )
    report = build_report(ledger, "s")
    rows = {r.id: r for r in report.runs}
    assert rows["hourly"].intensity_g_per_kwh == pytest.approx(300.0)
    assert rows["hourly"].intensity_source == "mean over the run; csv:/data/grid.csv"
    assert rows["constant"].intensity_g_per_kwh == 380.0
    assert rows["constant"].intensity_source == "table:DE:2023"
    written = {r["id"]: r for r in json.loads(render(report, "json"))["runs"]}
    assert written["hourly"]["intensity_g_per_kwh"] == pytest.approx(300.0)
