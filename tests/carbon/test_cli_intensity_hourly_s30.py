"""``greenprint intensity`` and an hourly file: what a run started now is priced at (session 30).

docs/carbon.md: "``greenprint intensity`` with no argument shows what would apply in the
current directory". With ``intensity = "grid.csv"`` configured it said ``intensity: 150 g
CO2-eq/kWh (mean of the hourly series)``, while a run started then was priced at 200 g/kWh (the
file's last value: the file ended before it); nothing said what the file covers. And
``greenprint intensity grid.csv``, the way to check a file before a run, said ``unknown region
'grid.csv'``. Run as a new user does: the CLI in an empty directory with a clean environment.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in

#: Two hours of 2024, ended long before any run of this test: 100 g/kWh, then 200.
GRID = "timestamp,g_per_kwh\n2024-03-01T00:00:00Z,100\n2024-03-01T01:00:00Z,200\n"


def _home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    home = empty_home(tmp_path_factory, name)
    (home / "grid.csv").write_text(GRID, encoding="utf-8")
    return home


def test_intensity_says_what_a_run_started_now_is_priced_at(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = _home(tmp_path_factory, "s30-intensity-now")
    (home / "greenprint.toml").write_text('intensity = "grid.csv"\n', encoding="utf-8")
    shown = run_in(home, GREENPRINT, "intensity")
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split(":", 1) for line in shown.stdout.splitlines() if ":" in line)
    assert lines["intensity"].strip() == "150 g CO2-eq/kWh (mean of the hourly series)"
    assert lines["now"].strip().startswith("200 g CO2-eq/kWh (after the series ends")
    assert lines["covers"].strip() == "2024-03-01 00:00:00 to 2024-03-01 02:00:00 UTC (2 rows)"
    data = json.loads(run_in(home, GREENPRINT, "intensity", "--json").stdout)
    assert (data["g_per_kwh"], data["now_g_per_kwh"]) == (150.0, 200.0)
    assert data["span_s"] == [1709251200.0, 1709258400.0]

    # and a run started now is priced as it said
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "now", "--", sys.executable, "-c", "0")
    assert done.returncode == 0, done.stderr
    (run,) = gp.Ledger(home / "greenprint.db").runs(study="now")
    assert run.emissions_kg * 1000 / (run.energy_kwh * run.pue) == pytest.approx(200.0)


def test_intensity_of_a_csv_file_checks_and_shows_it(tmp_path_factory: pytest.TempPathFactory):
    home = _home(tmp_path_factory, "s30-intensity-file")
    shown = run_in(home, GREENPRINT, "intensity", "grid.csv")
    assert shown.returncode == 0, shown.stderr
    assert "unknown region" not in shown.stderr
    out = shown.stdout
    assert "intensity: 150 g CO2-eq/kWh (mean of the hourly series)" in out
    assert "covers:    2024-03-01 00:00:00 to 2024-03-01 02:00:00 UTC (2 rows)" in out
    assert f"source:    csv:{home / 'grid.csv'}" in out
    assert "note:      nothing configured" not in out  # the file was given
    data = json.loads(run_in(home, GREENPRINT, "intensity", "grid.csv", "--json").stdout)
    assert data["is_series"] is True and data["now_g_per_kwh"] == 200.0

    # a file covering now says the value of the hour now
    hour = int(time.time()) // 3600 * 3600
    rows = [f"{hour - 3600 * k},{300 + k}" for k in (2, 1, 0)]
    (home / "today.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(rows) + "\n")
    now = run_in(home, GREENPRINT, "intensity", "today.csv", "--json")
    assert json.loads(now.stdout)["now_g_per_kwh"] == 300.0  # the row of this hour

    (home / "bad.csv").write_text(GRID + "2024-03-01T00:30:00Z,300\n", encoding="utf-8")
    bad = run_in(home, GREENPRINT, "intensity", "bad.csv")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "bad.csv:4: unsorted timestamp" in bad.stderr
    missing = run_in(home, GREENPRINT, "intensity", "nope.csv")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nope.csv" in missing.stderr and "unknown region" not in missing.stderr
