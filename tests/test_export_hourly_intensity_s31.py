"""``greenprint ledger export`` of a run priced by an hourly file gives what it was priced at (s31).

A run priced by an hourly intensity CSV records the file's plain mean as its intensity. The
export wrote that mean in ``intensity_g_per_kwh`` beside the source ``csv:...``, unmarked: for
the 48-hour file below, 322.5 g/kWh, while the run's CO2-eq was computed hour by hour (at 150 to
495 g/kWh), so ``energy_kwh * pue * intensity_g_per_kwh / 1000`` disagreed with the
``emissions_kg`` of the same row. Like ``whatif --json``, ``ledger show`` and the report's run
rows, the export now gives the energy-weighted mean over the run, its source saying so
(``mean over the run; csv:...``); a run priced at a constant intensity exports as before, and
the columns are the same. Run as a new user does: a script with ``gp.track`` and ``greenprint
run --intensity hourly.csv``, then the CLI, in an empty directory with a clean environment.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, HOURLY_CSV_SCRIPT, empty_home, export_rows, run_in
from greenprint._records import RunRecord
from greenprint.cli import main
from greenprint.ledger import Ledger

SCRIPT = (
    HOURLY_CSV_SCRIPT
    + """\
with gp.track("hourly", study="s31", intensity="hourly.csv", pue=1.2) as run:
    sum(i * i for i in range(300_000))
with gp.track("constant", study="s31", intensity=300) as run:
    sum(i * i for i in range(300_000))
"""
)


def test_export_gives_the_intensity_each_run_was_priced_at(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s31-export-hourly")
    (home / "train.py").write_text(SCRIPT, encoding="utf-8")
    tracked = run_in(home, sys.executable, "train.py")
    assert tracked.returncode == 0, tracked.stderr
    done = run_in(
        home, GREENPRINT, "run", "-q", "--name", "cli-hourly", "--study", "s31",
        "--intensity", "hourly.csv", "--", sys.executable, "-c", "sum(range(300_000))",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    rows, items = export_rows(home, "s31")
    csv_path = str((home / "hourly.csv").resolve())
    for name in ("hourly", "cli-hourly"):
        (row,) = [r for r in rows if r["name"] == name]
        (item,) = [i for i in items if i["name"] == name]
        for got in (
            {k: float(row[k]) for k in ("energy_kwh", "pue", "emissions_kg")}
            | {"intensity_g_per_kwh": float(row["intensity_g_per_kwh"])},
            item,
        ):
            priced = got["energy_kwh"] * got["pue"] * got["intensity_g_per_kwh"] / 1000
            assert priced == pytest.approx(got["emissions_kg"], rel=1e-9), name
            assert got["intensity_g_per_kwh"] != pytest.approx(322.5)  # not the file's mean
            # within the file's range (a run at 23:00 UTC reads 495 as 495.00000000000006)
            assert 150 * (1 - 1e-12) <= got["intensity_g_per_kwh"] <= 495 * (1 + 1e-12)
        assert row["intensity_source"] == item["intensity_source"]
        assert item["intensity_source"] == f"mean over the run; csv:{csv_path}", name
        # where the setting came from is still the ledger's, in the provenance
        assert row["provenance.intensity"] == item["provenance"]["intensity"]
        assert item["provenance"]["intensity"].endswith(f"csv:{csv_path}")

    # a constant intensity is exported as it was recorded
    (row,) = [r for r in rows if r["name"] == "constant"]
    (item,) = [i for i in items if i["name"] == "constant"]
    assert (row["intensity_g_per_kwh"], row["intensity_source"]) == ("300.0", "argument")
    assert (item["intensity_g_per_kwh"], item["intensity_source"]) == (300.0, "argument")


def test_export_columns_are_unchanged(tmp_path_factory: pytest.TempPathFactory):
    """The CSV's leading columns, as scripts read them (session 30's list): none renamed."""
    home = empty_home(tmp_path_factory, "s31-export-columns")
    (home / "train.py").write_text(SCRIPT, encoding="utf-8")
    assert run_in(home, sys.executable, "train.py").returncode == 0
    done = run_in(home, GREENPRINT, "ledger", "export")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split(",")
    assert header[: header.index("hardware.cpu_model")] == [
        "id", "name", "study", "parent_id", "parent_inferred", "status", "started_at",
        "ended_at", "heartbeat_at", "flush_interval_s", "duration_s", "host", "command",
        "git_commit", "git_dirty", "python_version", "greenprint_version", "torch_version",
        "dataset_size", "fpo", "param_count", "scope", "energy_cpu_kwh", "energy_gpu_kwh",
        "energy_ram_kwh", "energy_kwh", "machine_energy_kwh", "pue", "intensity_g_per_kwh",
        "intensity_source", "emissions_kg", "error", "role", "role_inferred", "job_id",
        "node_rank", "local_rank", "node_meter", "contained",
    ]  # fmt: skip


def test_a_run_with_nan_energy_is_not_said_to_have_drawn_none(tmp_path: Path, capsys):
    """An hourly run whose energy is NaN exports the file's mean, saying why, not 'no energy'."""
    ledger = tmp_path / "runs.db"
    run = RunRecord(
        id="nan0e0e0e0e0", name="nan", study="s31", energy_kwh=math.nan, pue=1.0,
        emissions_kg=math.nan, intensity_g_per_kwh=322.5, intensity_source="csv:/data/grid.csv",
    )  # fmt: skip
    with Ledger(ledger) as led:
        led.start_run(run)
    assert main(["ledger", "export", "--ledger", str(ledger)]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["intensity_g_per_kwh"] == "322.5"
    assert row["intensity_source"] == (
        "mean of the file, the run's energy or CO2-eq is not a number; csv:/data/grid.csv"
    )
