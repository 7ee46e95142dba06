"""The report's what-if section: the study's energy, counted once, priced in reference regions."""

from __future__ import annotations

import json

import pytest

from greenprint._records import MetricPoint, RunRecord
from greenprint.ledger import Ledger
from greenprint.report import build_report, write_report
from greenprint.report._whatif import REPORT_REGIONS


def _run(run_id: str, energy_kwh: float, pue: float, **fields: object) -> RunRecord:
    return RunRecord(
        id=run_id,
        name=run_id,
        study="s",
        status="finished",
        started_at=1_700_000_000.0,
        duration_s=60.0,
        energy_kwh=energy_kwh,
        pue=pue,
        intensity_g_per_kwh=400.0,
        emissions_kg=energy_kwh * pue * 0.4,
        metrics=(MetricPoint("accuracy", 0.9, 1, 1_700_000_060.0),),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.start_run(_run("a", 1.0, 1.2))
        led.start_run(_run("b", 3.0, 1.0))
        led.start_run(_run("b-part", 2.0, 1.0, parent_id="b"))  # inside b's energy
    return path


def test_the_study_is_priced_once_with_its_energy_weighted_pue(ledger):
    section = build_report(ledger, "s").whatif
    assert section is not None
    # IT energy counted once: a (1 kWh) + b (3 kWh); its part is inside b
    assert section.energy_kwh == pytest.approx(4.0)
    # PUE weighted by energy: (1 x 1.2 + 3 x 1.0) / 4 = 1.05; facility energy 4.2 kWh
    assert section.pue == pytest.approx(1.05)
    assert section.facility_energy_kwh == pytest.approx(4.2)
    # recorded: (1 x 1.2 + 3 x 1.0) x 0.4 kg/kWh = 1.68 kg
    assert section.emissions_kg == pytest.approx(1.68)
    assert [r.region for r in section.regions] == list(REPORT_REGIONS)
    fr = next(r for r in section.regions if r.region == "FR")
    assert fr.emissions_kg == pytest.approx(4.2 * 56.039 / 1000)
    assert fr.saving_kg == pytest.approx(1.68 - 4.2 * 56.039 / 1000)


def test_every_format_shows_it(ledger, tmp_path):
    files = write_report(build_report(ledger, "s"), tmp_path / "out", plots=False)
    assert "## What if it ran elsewhere?" in files["md"].read_text()
    assert "FR (France)" in files["md"].read_text()
    assert 'id="whatif"' in files["html"].read_text()
    assert "What if it ran elsewhere?" in files["latex"].read_text()
    data = json.loads(files["json"].read_text())
    assert data["whatif"]["facility_energy_kwh"] == pytest.approx(4.2)
    assert {r["region"] for r in data["whatif"]["regions"]} == set(REPORT_REGIONS)


def test_no_energy_no_section(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.start_run(_run("a", 0.0, 1.0))
    assert build_report(path, "s").whatif is None


def test_a_small_difference_is_not_shown_as_zero_percent(ledger, tmp_path):
    """Found as a new user: a region 0.1 % cleaner than recorded read "0.0038 mg CO2-eq (0 %)";
    below 10 % one decimal is shown, as `greenprint whatif` does."""
    section = build_report(ledger, "s").whatif
    assert section is not None
    # US: 4.2 kWh x 369.473 g/kWh = 1.5518 kg against 1.68 kg recorded: 7.63 % saved
    us = next(r for r in section.regions if r.region == "US")
    assert us.saving_pct == pytest.approx(100 * (1.68 - 4.2 * 0.369473) / 1.68)
    header, rows = section.table()
    (us_row,) = [row for row in rows if row[0].startswith("US ")]
    assert us_row[3].endswith("(7.6 %)")
    (fr_row,) = [row for row in rows if row[0].startswith("FR ")]
    assert fr_row[3].endswith("(86 %)")  # 1 - 4.2 x 56.039 / 1680 = 86.0 %
    files = write_report(build_report(ledger, "s"), tmp_path / "out", plots=False)
    assert "(7.6 \\%)" in files["latex"].read_text()
