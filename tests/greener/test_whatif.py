"""whatif(): a run's energy priced in other regions and at other start hours, checked by hand."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint._exceptions import (
    ConfigError,
    IntensityCSVError,
    LedgerPathError,
    UnknownRegionError,
    UnknownRunError,
)
from greenprint._records import RunRecord
from greenprint.carbon import Intensity
from greenprint.greener import WhatIf, whatif
from greenprint.greener._whatif import DEFAULT_REGIONS, hourly_profile, profile_emissions_kg
from greenprint.ledger import Ledger

DAY = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()
START = DAY + 22.5 * 3600  # 2024-03-01T22:30Z

#: 10 kWh of IT energy, PUE 1.5, 2 h, at Germany's 380 g/kWh: 10 x 1.5 x 0.38 = 5.7 kg
RUN = RunRecord(
    id="run-0001",
    name="train",
    status="finished",
    started_at=START,
    ended_at=START + 7200.0,
    duration_s=7200.0,
    energy_kwh=10.0,
    pue=1.5,
    intensity_g_per_kwh=380.0,
    intensity_source="table:DE:2023",
    emissions_kg=5.7,
)


def write_hourly(path, hours: int = 48) -> None:
    """Day 1: 100 + 10 h g/kWh at UTC hour h; day 2: 200 + 10 h. Profile: 150 + 10 h."""
    lines = ["timestamp,g_per_kwh"]
    for k in range(hours):
        lines.append(f"{DAY + k * 3600:.0f},{100 * (1 + k // 24) + 10 * (k % 24)}")
    path.write_text("\n".join(lines) + "\n")


def test_the_same_energy_priced_in_two_regions():
    result = whatif(RUN, regions=["FR", "germany"])
    assert isinstance(result, WhatIf)
    assert result.facility_energy_kwh == 15.0
    fr, de = result.regions
    assert (fr.region, de.region) == ("FR", "DE")
    # 15 kWh x 56.039 g/kWh = 0.840585 kg; saving 5.7 - 0.840585 = 4.859415 kg, 85.25 %
    assert fr.emissions_kg == pytest.approx(0.840585)
    assert fr.saving_kg == pytest.approx(4.859415)
    assert fr.saving_pct == pytest.approx(100 * 4.859415 / 5.7)
    # 15 kWh x 380.95 g/kWh = 5.71425 kg: a little more than recorded (380 g/kWh)
    assert de.emissions_kg == pytest.approx(5.71425)
    assert de.saving_kg == pytest.approx(-0.01425)
    assert fr.source.startswith("table:FR:2023") and fr.year == 2023


def test_default_regions_and_a_region_given_twice():
    assert [r.region for r in whatif(RUN).regions] == list(DEFAULT_REGIONS)
    assert [r.region for r in whatif(RUN, regions=["FR", "fra", "France"]).regions] == ["FR"]


def test_cloud_regions_keep_the_runs_pue_and_say_so():
    result = whatif(RUN, regions=["aws:eu-north-1"])
    (aws,) = result.regions
    assert aws.kind == "cloud"
    assert aws.emissions_kg == pytest.approx(15.0 * aws.g_per_kwh / 1000)
    assert any("PUE (1.5)" in note for note in result.notes)


def test_best_start_hour_by_hand(tmp_path):
    csv = tmp_path / "hourly.csv"
    write_hourly(csv)
    result = whatif(RUN, regions=["FR"], hourly=csv)
    assert len(result.hours) == 24 and result.notes == ()
    # starting at 00:00 UTC the 2 h run sees 150 and 160: mean 155, 15 kWh x 155 g = 2.325 kg
    assert result.best is not None
    assert (result.best.start_hour, result.best.mean_g_per_kwh) == (0, pytest.approx(155.0))
    assert result.best.emissions_kg == pytest.approx(2.325)
    # at 23:00: 380 then 150 (the profile wraps around midnight)
    assert result.hours[23].mean_g_per_kwh == pytest.approx(265.0)
    # actual start 22:30: 0.5 h at 370, 1 h at 380, 0.5 h at 150 -> 640 / 2 = 320 g/kWh
    assert result.actual_start_hour == pytest.approx(22.5)
    assert result.actual_start_emissions_kg == pytest.approx(4.8)
    assert result.hour_saving_kg == pytest.approx(2.475)
    assert result.hour_saving_pct == pytest.approx(51.5625)
    assert result.hourly_source == f"csv:{csv.resolve()}"
    data = result.to_dict()
    assert data["hourly"]["best"]["start_hour"] == 0
    assert data["hourly"]["saving_kg"] == pytest.approx(2.475)


def test_a_run_of_a_whole_day_gains_nothing_from_its_start_hour(tmp_path):
    csv = tmp_path / "hourly.csv"
    write_hourly(csv)
    day_run = RunRecord(
        id="r2",
        name="long",
        started_at=START,
        duration_s=86400.0,
        energy_kwh=24.0,
        emissions_kg=1.0,
    )
    result = whatif(day_run, regions=["FR"], hourly=csv)
    # every start hour sees the profile's daily mean: 150 + 10 x 11.5 = 265 g/kWh
    assert [h.mean_g_per_kwh for h in result.hours] == pytest.approx([265.0] * 24)
    assert result.best.start_hour == 0  # ties go to the earliest hour
    assert result.hour_saving_kg == pytest.approx(0.0, abs=1e-9)


def test_a_profile_from_a_day_and_a_half_says_so_and_less_than_a_day_is_refused(tmp_path):
    csv = tmp_path / "hourly.csv"
    write_hourly(csv, hours=36)
    profile, notes = hourly_profile(_series(csv))
    assert profile[0] == pytest.approx(150.0)  # 00:00 seen on both days: (100 + 200) / 2
    assert profile[20] == pytest.approx(300.0)  # 20:00 only on day 1
    assert notes and "1-2 days" in notes[0]
    short = tmp_path / "short.csv"
    write_hourly(short, hours=20)
    with pytest.raises(IntensityCSVError, match="does not cover every hour"):
        whatif(RUN, hourly=short)


def _series(path) -> Intensity:
    from greenprint.carbon import load_intensity_csv

    return load_intensity_csv(path)


def test_a_constant_intensity_is_not_an_hourly_profile():
    with pytest.raises(IntensityCSVError, match="constant"):
        whatif(RUN, hourly=Intensity(g_per_kwh=100.0, source="argument"))


@given(
    st.lists(st.floats(1.0, 1000.0), min_size=24, max_size=24),
    st.floats(0.0, 86400.0),
    st.floats(1.0, 5 * 86400.0),
)
def test_profile_emissions_equal_a_fine_riemann_sum(profile, start, duration):
    kg, mean = profile_emissions_kg(profile, start, duration, 1000.0)
    assert kg == pytest.approx(mean)  # 1,000 kWh: kg = g/kWh
    # integrate by brute force on a fine grid of the step function
    n = 20_000
    dt = duration / n
    total = math.fsum(profile[int(((start + (i + 0.5) * dt) % 86400) // 3600)] for i in range(n))
    assert mean == pytest.approx(total / n, rel=2e-3)
    # a mean of the profile's hours, within rounding (189.0000000010001 for a peak of 189)
    slack = 1e-9 * max(profile)
    assert min(profile) - slack <= mean <= max(profile) + slack


def test_zero_duration_is_charged_at_its_start_hour():
    profile = [float(100 + h) for h in range(24)]
    assert profile_emissions_kg(profile, 5.5 * 3600, 0.0, 2.0) == (pytest.approx(0.21), 105.0)


def test_a_run_read_from_a_ledger_by_id_prefix(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.start_run(RUN)
    result = whatif("run-00", regions=["FR"], ledger=path)
    assert result.run_id == "run-0001" and result.regions[0].emissions_kg == pytest.approx(0.840585)
    with pytest.raises(UnknownRunError):
        whatif("nope-nope", ledger=path)
    missing = tmp_path / "missing.db"
    with pytest.raises(LedgerPathError):
        whatif("run-0001", ledger=missing)
    assert not missing.exists()


def test_bad_input_raises_specific_errors():
    with pytest.raises(UnknownRegionError, match="did you mean"):
        whatif(RUN, regions=["Frnace"])
    with pytest.raises(ConfigError, match="non-empty list"):
        whatif(RUN, regions=[])
    with pytest.raises(ConfigError, match="RunRecord or a run id"):
        whatif(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="hourly"):
        whatif(RUN, hourly=3.0)  # type: ignore[arg-type]


def test_24_hours_that_start_at_half_past_cover_every_hour(tmp_path):
    """Found as a new user: 24 hourly rows from 05:30 UTC (a grid at UTC+05:30 exports its
    local hours) were refused, "give at least 24 consecutive hours". Each hour of the day now
    takes the part of the span it overlaps: 05:00 is half 05:30-06:00 (row 0) and half
    05:00-05:30 the next day (row 23, held for as long as the rows before it)."""
    csv = tmp_path / "half.csv"
    rows = [f"{DAY + 5.5 * 3600 + k * 3600:.0f},{100 + 10 * k}" for k in range(24)]
    csv.write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    profile, notes = hourly_profile(_series(csv))
    assert notes == ()  # every hour of the day covered for one hour in all
    # 06:00-07:00 is half row 0 (100) and half row 1 (110)
    assert profile[6] == pytest.approx(105.0)
    # 05:00 is 05:30-06:00 of row 0 (100) and 05:00-05:30 of row 23 (330)
    assert profile[5] == pytest.approx(215.0)
    # the file's time-weighted mean is kept: 24 hours, each row held one hour
    assert sum(profile) / 24 == pytest.approx(sum(100 + 10 * k for k in range(24)) / 24)
    result = whatif(RUN, regions=["FR"], hourly=csv)
    # a 2 h run is cleanest from 06:00: (105 + 115) / 2 = 110 g/kWh, 15 kWh x 0.110 = 1.65 kg
    assert result.best is not None and result.best.start_hour == 6
    assert result.best.mean_g_per_kwh == pytest.approx(110.0)
    assert result.best.emissions_kg == pytest.approx(1.65)


def test_a_lost_run_is_priced_with_a_note():
    """Found as a new user: a run whose process was killed (status lost) was priced as if whole."""
    import dataclasses

    lost = dataclasses.replace(RUN, status="lost", ended_at=None)
    result = whatif(lost, regions=["FR"])
    assert result.regions[0].emissions_kg == pytest.approx(15 * 0.056039)
    assert result.notes == (
        "run 'train' was lost (its process died unrecorded): the energy of its last flush is "
        "priced",
    )
    assert whatif(RUN, regions=["FR"]).notes == ()
