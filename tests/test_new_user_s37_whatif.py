"""``greenprint whatif`` / ``greener.whatif`` checked from first principles (session 37).

The best start hour is checked against a brute-force integration of the hourly file itself
(minute by minute, not through greenprint's profile arithmetic). What a new user met that was
wrong:

* a ``RunRecord`` built by hand has ``started_at=0`` (no start recorded): ``whatif(...,
  hourly=...)`` priced its "actual start" at 00:00 UTC of 1 January 1970 and, with the example
  file's cleanest hour at 00:00, told the user the run had already started at the best hour,
  "saving 0 g CO2-eq (0.0 %)";
* a run whose duration is NaN crashed ``whatif(..., hourly=...)`` with ``ValueError: cannot
  convert float NaN to integer``;
* a run whose recorded CO2-eq is NaN read ``n/a CO2-eq (nan %)`` in every row of the savings.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from greenprint import AnalysisError, RunRecord
from greenprint.carbon import Intensity
from greenprint.cli import main
from greenprint.greener import whatif
from greenprint.ledger import Ledger

DAY = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()


def _day_series(values: list[float], days: int = 2) -> Intensity:
    return Intensity(
        g_per_kwh=sum(values) / 24,
        source="made-up days",
        series=tuple((DAY + 3600 * k, values[k % 24]) for k in range(24 * days)),
    )


def _brute_force_kg(values: list[float], start_s: float, duration_s: float, kwh: float) -> float:
    """kWh spread evenly over [start, start + duration], charged minute by minute (midpoints)."""
    steps = max(1, round(duration_s / 60))
    total = 0.0
    for i in range(steps):
        t = start_s + (i + 0.5) * duration_s / steps
        total += values[int(t % 86400 // 3600)]
    return kwh * total / steps / 1000


@pytest.mark.parametrize("seed", range(6))
def test_the_best_start_hour_is_the_least_co2_of_the_24_starts_by_brute_force(seed: int):
    rng = random.Random(seed)
    values = [round(rng.uniform(20, 900), 1) for _ in range(24)]
    duration = rng.choice([60.0, 3600.0, 5.5 * 3600, 30 * 3600.0])  # 30 h: wraps past a day
    run = RunRecord(
        id="r1", name="train", status="finished", energy_kwh=2.0, pue=1.25, emissions_kg=1.0,
        started_at=DAY + 86400 + rng.randrange(0, 86400, 60), duration_s=duration,
    )  # fmt: skip
    result = whatif(run, regions=["DE"], hourly=_day_series(values))
    brute = [_brute_force_kg(values, h * 3600, duration, 2.5) for h in range(24)]
    best_hour = min(range(24), key=lambda h: (round(brute[h], 9), h))
    assert result.best is not None
    assert result.best.start_hour == best_hour
    assert result.best.emissions_kg == pytest.approx(brute[best_hour], rel=1e-3)
    actual = _brute_force_kg(values, run.started_at, duration, 2.5)
    assert result.actual_start_emissions_kg == pytest.approx(actual, rel=1e-3)
    assert result.hour_saving_kg == pytest.approx(actual - brute[best_hour], rel=1e-3, abs=1e-9)


def test_a_record_with_no_start_time_has_a_best_hour_and_no_actual_start():
    """The 1970 midnight is no start: the best hour stands, the actual start and saving are
    unknown (None, null in JSON), and a note says why."""
    values = [100.0 if h < 2 else 400.0 for h in range(24)]
    run = RunRecord(id="r2", name="train", energy_kwh=1.0, emissions_kg=0.4, duration_s=7200.0)
    result = whatif(run, regions=["DE"], hourly=_day_series(values))
    assert result.best is not None and result.best.start_hour == 0
    assert result.best.emissions_kg == pytest.approx(0.1)  # 1 kWh x 100 g/kWh
    assert result.actual_start_emissions_kg is None
    assert result.hour_saving_kg is None and result.hour_saving_pct is None
    assert result.actual_start_hour is None and result.actual_start_hour_utc is None
    hourly = result.to_dict()["hourly"]
    assert hourly["actual_start_hour"] is None and hourly["saving_kg"] is None
    assert any("recorded no start time" in note for note in result.notes)


def test_a_nan_duration_with_an_hourly_file_is_an_analysis_error_naming_the_run():
    run = RunRecord(
        id="d00d1234", name="train", status="finished", energy_kwh=1.0, emissions_kg=0.4,
        started_at=DAY, duration_s=math.nan,
    )  # fmt: skip
    with pytest.raises(AnalysisError, match=r"run d00d1234 \('train', finished\) has no duration"):
        whatif(run, regions=["DE"], hourly=_day_series([300.0] * 24))
    # the regions alone need no duration
    (fr,) = whatif(run, regions=["FR"]).regions
    assert fr.emissions_kg == pytest.approx(1.0 * 56.039 / 1000)


def test_an_unknown_recorded_co2_gives_unknown_savings_not_nan_percent(tmp_path: Path, capsys):
    path = tmp_path / "runs.db"
    run = RunRecord(
        id="beef1234ab", name="train", status="finished", energy_kwh=2.0, emissions_kg=math.nan,
        started_at=DAY, duration_s=60.0,
    )  # fmt: skip
    with Ledger(path) as led:
        led.start_run(run)
    (fr,) = whatif(run, regions=["FR"]).regions
    assert fr.emissions_kg == pytest.approx(2.0 * 56.039 / 1000)  # known: energy x intensity
    assert fr.saving_pct is None
    assert main(["whatif", "--run", "beef", "--ledger", str(path), "--regions", "FR,DE"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "n/a" not in out, out
    assert "recorded  unknown CO2-eq" in out
    rows = [line for line in out.splitlines() if line.startswith(("FR ", "DE "))]
    assert len(rows) == 2 and all("unknown" in row for row in rows), out
    assert "112 g CO2-eq" in rows[0]  # 2 kWh x 56.039 g/kWh
    # --json is strict JSON (a bare NaN is not: jq and JSON.parse refuse it)
    args = ["whatif", "--run", "beef", "--ledger", str(path), "--regions", "FR", "--json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert data["emissions_kg"] == "NaN" and data["regions"][0]["saving_pct"] is None


def _refuse(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


def test_a_start_between_whole_hours_cleaner_than_all_of_them_is_said_so(tmp_path: Path, capsys):
    """1.5 h from 00:30 UTC (0.5 h at 100 g/kWh, 1 h at 50) emits 66.7 g per kWh; the best
    whole hour, 00:00 (1 h at 100, 0.5 h at 50), 83.3 g. The text read 'saving -16.7 g CO2-eq
    (-25 %) by starting at 00:00 UTC': a "best" start that saves a negative amount."""
    values = [100.0, 50.0, 900.0] + [1000.0] * 21
    csv = tmp_path / "hourly.csv"
    rows = [f"{DAY + 3600 * k:.0f},{values[k % 24]}" for k in range(48)]
    csv.write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    run = RunRecord(
        id="cafe1234ab", name="train", status="finished", energy_kwh=1.0, emissions_kg=0.4,
        started_at=DAY + 86400 + 1800, duration_s=5400.0,
    )  # fmt: skip
    result = whatif(run, regions=["DE"], hourly=csv)
    assert result.best is not None and result.best.start_hour == 0
    assert result.best.emissions_kg == pytest.approx(0.125 / 1.5)  # (100 + 25) g / 1.5 h
    assert result.actual_start_emissions_kg == pytest.approx(0.1 / 1.5)  # (50 + 50) g / 1.5 h
    assert result.hour_saving_kg == pytest.approx(-0.025 / 1.5)
    path = tmp_path / "runs.db"
    with Ledger(path) as led:
        led.start_run(run)
    args = ["whatif", "--run", "cafe", "--ledger", str(path), "--regions", "DE"]
    assert main([*args, "--hourly", str(csv)]) == 0
    (actual,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("actual ")]
    assert actual == (
        "actual      00:30 UTC: 66.7 g CO2-eq; cleaner than every whole-hour start: the best "
        "of them, 00:00 UTC, emits 16.7 g CO2-eq (25 % more)"
    )
