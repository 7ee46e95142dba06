"""`greenprint whatif`: a run priced in two regions and at the best hour; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from greenprint._records import RunRecord
from greenprint.cli import main
from greenprint.ledger import Ledger

GREENPRINT = Path(sys.executable).with_name("greenprint")
DAY = datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()

#: 10 kWh x PUE 1.5 over 2 h from 22:30 UTC, recorded at 380 g/kWh: 5.7 kg
RUN = RunRecord(
    id="abcd1234ef",
    name="train-resnet",
    status="finished",
    started_at=DAY + 22.5 * 3600,
    duration_s=7200.0,
    energy_kwh=10.0,
    pue=1.5,
    intensity_g_per_kwh=380.0,
    intensity_source="table:DE:2023",
    emissions_kg=5.7,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    with Ledger(path) as led:
        led.start_run(RUN)
    return path


@pytest.fixture
def hourly(tmp_path: Path) -> Path:
    """Two days, 100 + 10 h then 200 + 10 h g/kWh at UTC hour h: the profile is 150 + 10 h."""
    path = tmp_path / "hourly.csv"
    rows = [f"{DAY + k * 3600:.0f},{100 * (1 + k // 24) + 10 * (k % 24)}" for k in range(48)]
    path.write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    return path


def test_prices_the_run_in_two_regions_and_at_the_best_hour(ledger, hourly, capsys):
    args = ["whatif", "--run", "abcd", "--ledger", str(ledger), "--regions", "FR,DE"]
    assert main([*args, "--hourly", str(hourly)]) == 0
    out = capsys.readouterr().out
    assert "10 kWh x PUE 1.5 = 15 kWh over 2h" in out
    assert "5.7 kg CO2-eq at 380 g CO2-eq/kWh" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    # FR: 15 kWh x 56.039 g/kWh = 0.841 kg, saving 4.86 kg (85 %)
    assert "841 g CO2-eq" in lines["FR"] and "4.86 kg CO2-eq (85 %)" in lines["FR"]
    # DE: 15 x 380.95 = 5.71 kg, 14.3 g more than recorded
    assert "5.71 kg CO2-eq" in lines["DE"] and "-14.2 g CO2-eq (-0.2 %)" in lines["DE"]
    # best start 00:00 UTC: mean 155 g/kWh, 2.33 kg; actual 22:30 UTC: 4.8 kg; saving 2.475 kg
    assert "best start  00:00 UTC: 2.33 kg CO2-eq (mean 155.0 g CO2-eq/kWh" in out
    assert "actual      22:30 UTC: 4.8 kg CO2-eq; saving 2.47 kg CO2-eq (52 %)" in out


def test_json(ledger, hourly, capsys):
    args = ["whatif", "--run", RUN.id, "--ledger", str(ledger), "--regions", "FR,DE", "--json"]
    assert main([*args, "--hourly", str(hourly)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["facility_energy_kwh"] == 15.0
    assert [r["region"] for r in data["regions"]] == ["FR", "DE"]
    assert data["regions"][0]["emissions_kg"] == pytest.approx(0.840585)
    assert data["hourly"]["best"] == {
        "start_hour": 0,
        "mean_g_per_kwh": pytest.approx(155.0),
        "emissions_kg": pytest.approx(2.325),
    }
    assert data["hourly"]["saving_kg"] == pytest.approx(2.475)
    assert data["hourly"]["saving_pct"] == pytest.approx(51.5625)


def test_default_regions_without_hourly(ledger, capsys):
    assert main(["whatif", "--run", RUN.id, "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "aws:eu-north-1" in out and "WORLD" in out and "best start" not in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--regions", "FR,Narnia"], "unknown region 'Narnia'"),
        (["--regions", " , "], "--regions needs region codes"),
        (["--hourly", "missing.csv"], "cannot read intensity CSV"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(ledger, capsys, extra, message):
    assert main(["whatif", "--run", RUN.id, "--ledger", str(ledger), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("greenprint: error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_bad_hourly_rows_name_the_line(ledger, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,g_per_kwh\n2024-03-01T00:00Z,100\n2024-03-01T01:00Z,lots\n")
    assert main(["whatif", "--run", RUN.id, "--ledger", str(ledger), "--hourly", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenprint: error: ") and "bad.csv:3" in err


def test_unknown_run_missing_ledger_and_missing_option(ledger, tmp_path, capsys):
    assert main(["whatif", "--run", "zzzz9999", "--ledger", str(ledger)]) == 2
    assert "no run with id 'zzzz9999'" in capsys.readouterr().err
    missing = tmp_path / "none.db"
    assert main(["whatif", "--run", RUN.id, "--ledger", str(missing)]) == 2
    assert capsys.readouterr().err.startswith("greenprint: error: ")
    assert not missing.exists()
    assert main(["whatif"]) == 2
    assert "--run" in capsys.readouterr().err
    # found as a new user: "run must be a RunRecord or a run id, not ''" (the API's words)
    assert main(["whatif", "--run", " ", "--ledger", str(ledger)]) == 2
    assert capsys.readouterr().err == (
        "greenprint: error: --run needs a run id (or a unique prefix of one), not ' '\n"
    )


def test_the_installed_command_prints_no_traceback(ledger):
    proc = subprocess.run(
        [str(GREENPRINT), "whatif", "--run", RUN.id, "--ledger", str(ledger), "--regions", "XX"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("greenprint: error: unknown region 'XX'")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_a_run_priced_by_an_hourly_file_shows_the_intensity_that_applied(tmp_path, capsys):
    """Found as a new user: a run tracked with intensity="hourly.csv" records the file's mean
    (its representative value) as its intensity, and whatif printed "recorded 0.012 mg at 322.5
    g/kWh" for a run charged 495 g/kWh. 2 kWh x PUE 1.25 charged 1.2 kg: 480 g/kWh applied."""
    run = RunRecord(
        id="feed5678aa",
        name="hourly-priced",
        status="finished",
        started_at=DAY,
        duration_s=3600.0,
        energy_kwh=2.0,
        pue=1.25,
        intensity_g_per_kwh=322.5,  # the file's mean
        intensity_source="csv:hourly.csv",
        emissions_kg=1.2,
    )
    path = tmp_path / "runs.db"
    with Ledger(path) as led:
        led.start_run(run)
    assert main(["whatif", "--run", "feed", "--ledger", str(path), "--regions", "FR"]) == 0
    out = capsys.readouterr().out
    assert "recorded  1.2 kg CO2-eq at 480 g CO2-eq/kWh (mean over the run; csv:hourly.csv)" in out
    assert "322.5" not in out


def test_a_run_started_at_the_best_hour_saves_zero_in_the_unit_beside_it(hourly, tmp_path, capsys):
    """Found as a new user (docs/whatif.md's example): a run of micrograms started at the best
    hour read 'actual 00:29 UTC: 21 µg CO2-eq; saving 0 mg CO2-eq (0.0 %)', a zero in another
    unit than the figures beside it, as the regions' table no longer does."""
    path = tmp_path / "small.db"
    small = RunRecord(
        id="0123abcd99",
        name="tiny",
        status="finished",
        started_at=DAY + 24 * 3600 + 60,  # 00:01 UTC: the best start hour, 00:00
        duration_s=120.0,
        energy_kwh=1e-7,
        intensity_g_per_kwh=380.0,
        intensity_source="table:DE:2023",
        emissions_kg=3.8e-8,
    )
    with Ledger(path) as led:
        led.start_run(small)
    args = ["whatif", "--run", "0123", "--ledger", str(path), "--regions", "FR"]
    assert main([*args, "--hourly", str(hourly)]) == 0
    out = capsys.readouterr().out
    (actual,) = [line for line in out.splitlines() if line.startswith("actual ")]
    assert actual.startswith("actual      00:01 UTC: 15 µg CO2-eq; saving 0 µg CO2-eq (0.0 %)"), out
    assert " mg " not in out, out


def test_the_actual_start_reads_the_minute_it_started_not_the_next_hour(hourly, tmp_path, capsys):
    """Found as a new user (docs/whatif.md's example run at 06:59:50 UTC): the text read
    'actual 07:00 UTC' (rounded) while its CO2-eq was priced in the 06:00 hour of the profile."""
    path = tmp_path / "edge.db"
    run = RunRecord(
        id="5555abcd99",
        name="tiny",
        status="finished",
        started_at=DAY + 6 * 3600 + 59 * 60 + 50.2,  # 06:59:50.2 UTC
        duration_s=0.6,
        energy_kwh=1e-7,
        intensity_g_per_kwh=380.0,
        intensity_source="table:DE:2023",
        emissions_kg=3.8e-8,
    )
    with Ledger(path) as led:
        led.start_run(run)
    args = ["whatif", "--run", "5555", "--ledger", str(path), "--regions", "FR"]
    assert main([*args, "--hourly", str(hourly)]) == 0
    out = capsys.readouterr().out
    (actual,) = [line for line in out.splitlines() if line.startswith("actual ")]
    # profile hour 6 is 150 + 60 = 210 g/kWh: 1e-7 kWh x 210 g/kWh = 21 µg, all in 06:59
    assert actual.startswith("actual      06:59 UTC: 21 µg CO2-eq;"), out
    # the same start on a half-hour zone's clock: 06:59:50 UTC is 12:29 in Asia/Kolkata
    assert main([*args, "--hourly", str(hourly), "--timezone", "Asia/Kolkata"]) == 0
    out = capsys.readouterr().out
    (actual,) = [line for line in out.splitlines() if line.startswith("actual ")]
    assert actual.startswith("actual      12:29 Asia/Kolkata: 21 µg CO2-eq;"), out
    assert "best start  06:00 Asia/Kolkata (00:30 UTC)" in out, out
