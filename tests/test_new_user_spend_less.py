"""Issue 15's features as a new user meets them: an empty directory, a clean environment.

A messy study is built the way users build one (an Optuna search stopped by the cost-aware
pruner, trials that crash, a baseline, a final run that predicts its cost, a ``greenprint run``
child stopped by its budget, a run killed with ``kill -9``), then ``greenprint report`` writes
all four formats and ``greenprint whatif`` prices a run. The figures are checked from first
principles (the shipped region table read as a CSV, the recorded metrics), and bad input to the
new options is one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env, configured_above

GREENPRINT = str(BIN / "greenprint")
REGIONS_CSV = Path(gp.__file__).parent / "carbon" / "data" / "regions.csv"

STUDY_SCRIPT = """
import os, time
import optuna
import greenprint as gp
from greenprint.greener import CostAwareOptunaPruner
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.tracking import active_runs

optuna.logging.set_verbosity(optuna.logging.ERROR)

def objective(trial):
    width = trial.suggest_int("width", 1, 8)
    run = list(active_runs())[-1]
    if trial.number == 2:
        raise RuntimeError("CUDA out of memory (simulated)")
    if trial.number % 2 == 0:
        run.expect(total_steps=4)
    for epoch in range(1, 5):
        time.sleep(0.005)
        if trial.number % 2 == 0:
            run.step()
        score = 1 - 0.5 / epoch - 0.01 * abs(width - 4)
        trial.set_user_attr("greenprint_cost", 0.1 * width * epoch)
        run.log(val_accuracy=score, step=epoch)
        trial.report(score, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return score

cb = GreenprintCallback(region="DE", pue=1.25, sample_interval_s=0.05)
study = optuna.create_study(
    study_name="messy", direction="maximize",
    sampler=optuna.samplers.RandomSampler(seed=0),
    pruner=CostAwareOptunaPruner(n_startup_trials=2),
)
study.optimize(cb.track(objective), n_trials=6, callbacks=[cb], catch=(RuntimeError,))

with gp.track("baseline", study="messy", role="baseline", region="DE", pue=1.25) as run:
    run.log(val_accuracy=0.7)
with gp.track("final", study="messy", role="final", region="DE", pue=1.25,
              sample_interval_s=0.05) as run:
    for epoch in range(5):
        time.sleep(0.06)
        run.progress((epoch + 1) / 5)
    run.log(val_accuracy=0.95)
print(run.id, flush=True)  # the process is killed below: nothing buffered survives it

lost = gp.track("killed", study="messy", flush_interval_s=0.1, sample_interval_s=0.05)
lost.start()
lost.expect(total_steps=10)
for _ in range(3):
    time.sleep(0.08)  # a meter sample before each step: each step predicts
    lost.step()
time.sleep(0.4)  # flushed
os.kill(os.getpid(), 9)
"""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("new-user-spend-less")
    if configured_above(home):
        pytest.skip(f"greenprint configuration above the temporary dir: {configured_above(home)}")
    pytest.importorskip("optuna")
    built = run_in(home, sys.executable, "-c", STUDY_SCRIPT)
    assert built.returncode == -signal.SIGKILL, built.stderr  # the last run was killed
    (home / "final_id.txt").write_text(built.stdout.split()[0])
    child = run_in(
        home,
        GREENPRINT, "run", "--study", "messy", "--name", "sleeper", "--sample-interval", "0.1",
        "--budget-s", "0.5", "--budget-grace-s", "2", "--",
        sys.executable, "-c", "import time; time.sleep(30)",
    )  # fmt: skip
    assert child.returncode == 128 + signal.SIGTERM, child.stderr
    assert "Traceback" not in child.stderr
    return home


def run_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=directory, env=clean_env(), capture_output=True, text=True, timeout=180
    )


def _runs(directory: Path) -> dict[str, gp.RunRecord]:
    with gp.Ledger(directory / "greenprint.db", create=False) as led:
        return {r.name: r for r in led.runs(study="messy")}


def test_the_study_holds_every_kind_of_run(study_dir):
    runs = _runs(study_dir)
    statuses = {name: r.status for name, r in runs.items()}
    assert statuses["trial-2"] == "failed"
    assert "pruned" in statuses.values()
    assert statuses["sleeper"] == "interrupted"
    assert statuses["killed"] in ("running", "lost")
    sleeper = runs["sleeper"]
    assert sleeper.error is not None and "budget_s 0.5 s; SIGTERM sent" in sleeper.error
    assert sleeper.energy_kwh > 0 and 0.5 <= sleeper.duration_s < 30  # the cost is kept


def test_every_report_format_reads_right(study_dir):
    done = run_in(study_dir, GREENPRINT, "report", "--study", "messy", "--no-plots")
    assert done.returncode == 0, done.stderr
    out = study_dir / "greenprint-report"
    md = (out / "report.md").read_text()
    for text in (md, (out / "report.html").read_text(), (out / "report.tex").read_text()):
        assert "Cost predictions" in text and "What if it ran elsewhere?" in text
        assert "nan" not in text.lower().split() and "None" not in text
    report = json.loads((out / "report.json").read_text())
    runs = _runs(study_dir)

    # predictions: a row for each run that finished with all its progress reported, its error
    # the recorded (first predicted - actual) / actual; none for the killed or pruned ones
    prediction = report["prediction"]
    rows = {row["name"]: row for row in prediction["rows"]}
    assert "final" in rows and "killed" not in rows
    assert prediction["predicted_runs"] >= len(rows) + 1  # the killed run predicted too
    final = runs["final"]
    first = next(m.value for m in final.metrics if m.name == "greenprint.predicted_energy_kwh")
    expected = (first - final.energy_kwh) / final.energy_kwh
    assert rows["final"]["errors"]["energy_kwh"] == pytest.approx(expected)
    assert final.metric("greenprint.progress") == 1.0

    # what-if: the study's energy x its energy-weighted PUE x each region's table intensity
    table = {row["code"]: float(row["g_per_kwh"]) for row in csv.DictReader(REGIONS_CSV.open())}
    whatif = report["whatif"]
    assert whatif["energy_kwh"] == pytest.approx(report["price_tag"]["total"]["energy_kwh"])
    assert 1.0 <= whatif["pue"] <= 1.25
    facility = whatif["energy_kwh"] * whatif["pue"]
    for region in whatif["regions"]:
        kg = facility * table[region["region"]] / 1000
        assert region["emissions_kg"] == pytest.approx(kg, rel=1e-12)
        assert region["saving_kg"] == pytest.approx(whatif["emissions_kg"] - kg, rel=1e-9)
    assert "| SE (Sweden) | 40.7 |" in md


def test_whatif_prices_the_budget_stopped_run(study_dir):
    sleeper = _runs(study_dir)["sleeper"]
    done = run_in(study_dir, GREENPRINT, "whatif", "--run", sleeper.id[:8], "--regions", "FR,PL")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert set(lines) >= {"run", "recorded", "FR", "PL"}
    assert "(-" in lines["PL"]  # dirtier than the world average it was recorded at: a cost


@pytest.mark.parametrize(
    "args",
    [
        ["whatif", "--run", "zzzz9999"],
        ["whatif", "--run", " "],
        ["whatif", "--run", "final", "--regions", "Narnia"],
        ["whatif", "--run", "final", "--hourly", "missing.csv"],
        ["report", "--study", "messy", "--final", "nosuch"],
        ["report", "--study", "nosuch"],
        ["report", "--ledger", "nowhere.db"],
        ["run", "--budget-kwh", "-1", "--", "true"],
        ["run", "--budget-s", "nan", "--", "true"],
        ["run", "--budget-grace-s", "-1", "--", "true"],
        ["run", "--budget-kg", "lots", "--", "true"],
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(study_dir, args):
    if args[:3] == ["whatif", "--run", "final"]:
        args = [*args[:2], (study_dir / "final_id.txt").read_text(), *args[3:]]
    before = {p.name: p.stat().st_mtime_ns for p in study_dir.iterdir() if p.is_file()}
    done = run_in(study_dir, GREENPRINT, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("greenprint: error: ") and done.stderr.count("\n") == 1
    assert done.stdout == ""
    after = {p.name: p.stat().st_mtime_ns for p in study_dir.iterdir() if p.is_file()}
    assert after == before
