"""What a user read in the report and the ledger commands, and misread (session 31).

1. A run of a few milliseconds read ``0.0103 µWh``: energy stopped at µWh while CO2-eq went on
   to ng. It reads ``10.3 nWh`` in ``ledger ls``, ``ledger show`` and the report (the LaTeX
   columns too), and the what-if table's zero reads in its neighbours' unit (``0 ng``, not
   ``0 mg`` beside ng).
2. The report's note on a missing expected-max-performance curve ("no finished or pruned trial
   has a value of 'accuracy'") did not say which metrics those trials did log: it names them,
   as the CLI's unknown-metric error does; where no trial finished, it says how they ended.
3. ``ledger show`` of a distributed job's head said ``finished`` where the report read the job
   ``failed`` (another node's run failed): it says the job's status beside its own.

Each runs greenprint as a stranger does: in an empty directory with a clean environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, report_text, run_in
from greenprint import Ledger, RunRecord
from greenprint._format import format_emissions, format_energy
from test_job_reads_s30 import _node, _runs


def test_a_run_of_milliseconds_reads_in_nanowatt_hours(tmp_path_factory: pytest.TempPathFactory):
    assert format_energy(1.03e-11) == "10.3 nWh"  # was "0.0103 µWh"
    assert format_energy(5e-13) == "0.5 nWh"
    assert format_energy(9.996e-10) == "1 µWh"  # rounds up into the unit above
    assert format_energy(1.16e-9) == "1.16 µWh" and format_energy(0.0) == "0 mWh"
    home = empty_home(tmp_path_factory, "s31-nanowatt-hours")
    kwh = 1.03e-11  # 37 µJ: a run of a few milliseconds on a RAM estimate
    with Ledger(home / "greenprint.db") as led:
        led.start_run(
            RunRecord(
                id="c" * 32, name="tiny", study="s", status="finished", started_at=1.7e9,
                ended_at=1.7e9 + 0.01, duration_s=0.01, energy_kwh=kwh, pue=1.0,
                intensity_g_per_kwh=380.95, intensity_source="table:DE:2023",
                emissions_kg=kwh * 380.95 / 1000,
            )
        )  # fmt: skip
    assert format_emissions(kwh * 380.95 / 1000) == "3.92 ng CO2-eq"
    listed = run_in(home, GREENPRINT, "ledger", "ls")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert row[header.index("ENERGY") :].startswith("10.3 nWh  3.92 ng  "), row
    shown = run_in(home, GREENPRINT, "ledger", "show", "cccc")
    assert "  energy                  10.3 nWh" in shown.stdout.splitlines(), shown.stdout
    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "md,latex", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert "10.3 nWh, 3.92 ng CO2-eq" in done.stdout, done.stdout
    md = report_text(home, "md")
    assert "- **energy (IT)**: 10.3 nWh" in md and "µWh" not in md
    # the recorded region's zero difference, in the unit of the others (was "0 mg CO2-eq")
    assert "| DE (Germany) | 380.9 | 3.92 ng CO2-eq | 0 ng CO2-eq (0.0 %) |" in md, md
    assert " mg CO2-eq" not in md
    tex = report_text(home, "latex")
    assert "(nWh)" in tex and "10.3 &" in tex and "DE & 380.9 & 3.92 ng & 0 ng (0.0 \\%)" in tex
    assert "0.0103" not in tex + md
    # every figure in a unit; the model card's grams are a number for machines (YAML)
    assert [line for line in md.splitlines() if "e-0" in line] == ["  emissions: 3.92378e-09"]
    assert "e-0" not in tex


#: Two trials finished logging a loss; a third logged accuracy, then failed.
ONE_FAILED = """
import greenprint as gp
for k in range(2):
    with gp.track(f"t{k}", study="s") as run:
        run.log(train_loss=1.0 - k / 10, val_loss=0.9, lr=0.1)
try:
    with gp.track("t2", study="s") as run:
        run.log(accuracy=0.9)
        raise RuntimeError("boom")
except RuntimeError:
    pass
for k in range(2):  # a study whose every trial failed
    try:
        with gp.track(f"f{k}", study="failed") as run:
            run.log(accuracy=0.5)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
"""


def test_the_missing_evp_curve_names_the_metrics_the_scored_trials_logged(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s31-evp-note")
    (home / "make.py").write_text(ONE_FAILED, encoding="utf-8")
    made = run_in(home, sys.executable, "make.py")
    assert made.returncode == 0, made.stderr
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--metric", "accuracy",
                  "--format", "json", "--no-plots", "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))["notes"]
    (note,) = [n for n in notes if n.startswith("no expected-max-performance curve")]
    # the nearest first (val_loss: 'accuracy' is close to none), then in logged order
    assert note == (
        "no expected-max-performance curve: no finished or pruned trial has a value of "
        "'accuracy'; metrics they logged: 'train_loss', 'val_loss', 'lr' (rank by one with "
        "--metric, metric= in Python)"
    )
    done = run_in(home, GREENPRINT, "report", "--study", "failed", "--format", "json",
                  "--no-plots", "--out", "rep2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = json.loads((home / "rep2" / "report.json").read_text(encoding="utf-8"))["notes"]
    assert (
        "no expected-max-performance curve: no trial finished or was pruned (2 failed); a "
        "failed, interrupted or lost trial has no score"
    ) in notes, notes


def test_ledger_show_says_the_jobs_status_where_the_report_reads_another(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
):
    """Node a (the job's head) finished, node b failed: the report reads one failed training
    (tests/test_job_reads_s30.py); ``ledger show`` of node a's run said only ``finished``."""
    Ledger(tmp_path / "mn.db").close()  # created once, before the nodes race to
    runs = _runs(tmp_path, _node(tmp_path, "node-a", 0), _node(tmp_path, "node-b", 1, FAIL="1"),
                 fails=1)  # fmt: skip
    by_host = {r.host: r for r in runs}
    head, failed = by_host["node-a"], by_host["node-b"]
    home = empty_home(tmp_path_factory, "s31-job-status")
    ledger = ("--ledger", str(tmp_path / "mn.db"))
    shown = run_in(home, GREENPRINT, "ledger", "show", head.id[:8], *ledger)
    assert shown.returncode == 0, shown.stderr
    (status,) = [line for line in shown.stdout.splitlines() if line.startswith("  status ")]
    assert status.split(None, 1)[1] == (
        f"finished (its job exp7 reads failed: 'train-node-b' ({failed.id[:8]}, node 1) failed)"
    )
    shown = run_in(home, GREENPRINT, "ledger", "show", failed.id[:8], *ledger)
    (status,) = [line for line in shown.stdout.splitlines() if line.startswith("  status ")]
    assert status.split(None, 1)[1] == "failed (RuntimeError: CUDA out of memory on node b)"
    # --json is the record as it is: its own status
    shown = run_in(home, GREENPRINT, "ledger", "show", head.id[:8], "--json", *ledger)
    assert json.loads(shown.stdout)["status"] == "finished"
    # ls lists each run's own status, in the columns it always had
    listed = run_in(home, GREENPRINT, "ledger", "ls", *ledger)
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STUDY", "NAME", "STATUS"]
    assert {row.split()[2]: row.split()[3] for row in rows} == {
        "train-node-a": "finished",
        "train-node-b": "failed",
    }
