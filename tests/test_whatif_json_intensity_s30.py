"""``greenprint whatif --json`` gives the intensity a run's CO2-eq was computed at (session 30).

A run priced by an hourly file records the file's plain mean as its intensity. Session 9 made
whatif's text show what applied ("at 450 g CO2-eq/kWh (mean over the run; csv:...)"); its JSON
still said ``"intensity_g_per_kwh": 322.5`` (the 48-hour file's mean) with the source
``"csv:..."``, so ``facility_energy_kwh * intensity_g_per_kwh / 1000`` read 28 % below the
``emissions_kg`` beside it, and the text and the JSON of one command disagreed. Run as a new
user does: a script with ``gp.track(intensity="hourly.csv")`` and the CLI, in an empty
directory with a clean environment.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from _report_cli import GREENPRINT, HOURLY_CSV_SCRIPT, empty_home, run_in

SCRIPT = (
    HOURLY_CSV_SCRIPT
    + """\
with gp.track("train", study="hourly", intensity="hourly.csv", pue=1.2) as run:
    sum(i * i for i in range(300_000))
print(run.id)
"""
)


def test_whatif_json_gives_the_intensity_the_run_was_priced_at(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s30-whatif-json")
    (home / "train.py").write_text(SCRIPT, encoding="utf-8")
    tracked = run_in(home, sys.executable, "train.py")
    assert tracked.returncode == 0, tracked.stderr
    run_id = tracked.stdout.split()[-1]

    done = run_in(home, GREENPRINT, "whatif", "--run", run_id, "--regions", "FR", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    applied = result["emissions_kg"] * 1000 / result["facility_energy_kwh"]  # g/kWh
    assert result["intensity_g_per_kwh"] == pytest.approx(applied, rel=1e-9)
    assert result["intensity_g_per_kwh"] != pytest.approx(322.5)  # not the file's mean
    # within the file's range (a run at 23:00 UTC reads 495 as 495.00000000000006)
    assert 150 * (1 - 1e-12) <= result["intensity_g_per_kwh"] <= 495 * (1 + 1e-12)
    assert result["intensity_source"].startswith("mean over the run; csv:")
    assert result["intensity_source"].endswith("hourly.csv")

    text = run_in(home, GREENPRINT, "whatif", "--run", run_id, "--regions", "FR")
    assert text.returncode == 0, text.stderr
    (recorded,) = [line for line in text.stdout.splitlines() if line.startswith("recorded")]
    shown = re.search(r" at ([0-9.]+) g CO2-eq/kWh \((.*)\)$", recorded)
    assert shown is not None, recorded
    assert float(shown[1]) == pytest.approx(result["intensity_g_per_kwh"], rel=1e-4)
    assert shown[2] == result["intensity_source"]  # said once, as in the JSON
