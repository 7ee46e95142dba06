"""Session 41, outside check of the "spend less" features as a practitioner uses them.

A scikit-learn sweep on the digits data capped by a study budget, and a learning curve of
subsamples by ``run_learning_curve``, each run as a script in an empty directory with a clean
environment, read back with the CLI:

* a study budget on FPO given to a sweep whose trials count none (scikit-learn: no FPO counter)
  never saw a figure and said nothing, where a run's FPO budget says so at the run's end: the
  sweep ran every trial under a limit that checked nothing. Now said once for the sweep;
* the learning curve's energy panel drew each size's mean energy alone, where the score panel
  draws the spread over repeats: a size whose two repeats cost 87 and 15 µWh (one slowed by a
  busy machine) read as a rise of the cost with the data. Now its ±1 std band is drawn too;
* run_learning_curve without full_size dropped the score of the training it had run;
* a cost-aware pruner's reasons read "at cost 1.34177e-08 kWh" (now "13.4 µWh");
* budgets on energy of a run with no energy meter never acted, without a word;
  ``meters=["rapl"]`` read as no meter;
* whatif could not price a run at another facility's PUE (``--pue``), nor a whole study
  in the regions one names (``--study``);
* a "stop" study budget does not stop a scikit-learn search already fitting (docs now say so).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in

pytest.importorskip("sklearn")

#: A sweep of logistic regressions with one study budget, on FPO (``sys.argv[1]``: ``count``
#: records 1 GFPO per trial with run.add_fpo, ``none`` records none, as scikit-learn gives none).
SWEEP = """
import sys
import warnings

import greenprint as gp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)
cap = gp.Budget(fpo=2.5e9, per="study", on_exceed="stop")
done = []
for C in (0.01, 0.1, 1.0, 10.0):
    try:
        with gp.track(f"C={C}", study=sys.argv[1], budget=cap, params={"C": C}) as run:
            model = LogisticRegression(C=C, max_iter=30).fit(X[:300], y[:300])
            if sys.argv[1] == "count":
                run.add_fpo(10**9)
            run.log(val_accuracy=model.score(X[300:600], y[300:600]))
        done.append(C)
    except gp.BudgetExceeded as e:
        print(f"stopped|{e.limit}|{e.spent}|{e.run_id[:8]}")
        break
print("done", done)
with gp.track("own", study="own", budget_fpo=1e9, on_exceed="stop") as run:
    run.log(val_accuracy=0.5)
"""


def test_a_study_fpo_budget_that_counted_nothing_says_so_once(tmp_path_factory):
    home = empty_home(tmp_path_factory, "fpo-sweep")
    (home / "sweep.py").write_text(SWEEP)

    done = run_in(home, "python", "sweep.py", "none")
    assert done.returncode == 0, done.stderr
    assert "done [0.01, 0.1, 1.0, 10.0]" in done.stdout  # nothing to stop it: no FPO
    said = [line for line in done.stderr.splitlines() if "FPO" in line]
    assert len(said) == 2, done.stderr  # once for the sweep's four trials, once for 'own'
    assert said[0].startswith("greenprint: no run of study 'none' has recorded FPO (run ")
    assert "so its budget_fpo 2.5 GFPO has not been checked: record its FPO with" in said[0]
    assert said[1].startswith("greenprint: run ")
    assert "recorded no FPO, so its budget_fpo 1 GFPO was never checked" in said[1]

    done = run_in(home, "python", "sweep.py", "count")
    assert done.returncode == 0, done.stderr
    # 1 GFPO a trial against 2.5 GFPO: the third trial crosses it, in its add_fpo
    assert "done [0.01, 0.1]" in done.stdout
    stopped = next(line for line in done.stdout.splitlines() if line.startswith("stopped|"))
    _, limit, spent, run_id = stopped.split("|")
    assert (limit, float(spent)) == ("study budget_fpo", 3e9)
    assert "has not been checked" not in done.stderr
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--study", "count")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(row[2], row[3]) for row in rows] == [
        ("C=0.01", "finished"),
        ("C=0.1", "finished"),
        ("C=1.0", "interrupted"),
    ]
    assert rows[2][0] == run_id


#: A learning curve of subsamples, two repeats a fraction; the second repeat of a fraction does
#: the fit three times (a machine busy for one of them), so each size's energies differ.
CURVE = """
import warnings

import numpy as np
from greenprint.analysis import run_learning_curve
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)

def train(fraction, seed):
    rng = np.random.default_rng(seed)
    idx = rng.choice(1200, size=round(fraction * 1200), replace=False)
    for _ in range(1 + 2 * (seed % 2)):
        model = LogisticRegression(max_iter=40).fit(X[idx], y[idx])
    return model.score(X[1200:], y[1200:]), len(idx)

run_learning_curve(train, [0.25, 1.0], study="lc", seed=0, repeats=2, metric="val_accuracy")
"""


def test_the_learning_curve_draws_the_energy_spread_over_repeats(tmp_path_factory):
    home = empty_home(tmp_path_factory, "lc")
    (home / "curve.py").write_text(CURVE)
    done = run_in(home, "python", "curve.py")
    assert done.returncode == 0, done.stderr
    done = run_in(
        home, GREENPRINT, "report", "--study", "lc", "--format", "json", "--no-plots",
        "--out", "report",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "report" / "report.json").read_text(encoding="utf-8"))
    (figure,) = [f for f in report["figures"] if f["id"] == "learning_curve"]
    score, energy = figure["panels"]
    band, line = energy["series"]
    assert (band["kind"], band["label"], line["role"]) == ("band", "±1 std over repeats", "energy")
    assert [s["kind"] for s in score["series"]] == ["band", "line"]

    # by hand from the runs' energies in the report, in the panel's unit
    factor = {"µWh": 1e9, "mWh": 1e6, "Wh": 1e3, "nWh": 1e12}[energy["y_unit"]]
    by_size: dict[float, list[float]] = {}
    for run in report["runs"]:
        by_size.setdefault(float(run["dataset_size"]), []).append(run["energy_kwh"] * factor)
    assert sorted(by_size) == line["x"] == [300.0, 1200.0]
    for k, size in enumerate(line["x"]):
        mean, std = statistics.mean(by_size[size]), statistics.stdev(by_size[size])
        assert math.isclose(line["y"][k], mean, rel_tol=1e-9)
        assert math.isclose(band["y_high"][k], mean + std, rel_tol=1e-9)
        assert math.isclose(band["y_low"][k], max(mean - std, 0.0), rel_tol=1e-9, abs_tol=1e-12)


#: A hurried user's learning curve: fn returns a bare score and full_size is forgotten, then
#: the fractions given as one string.
HURRIED_CURVE = """
import sys

import greenprint as gp
from greenprint.analysis import run_learning_curve

def train(fraction):
    return 0.5 + fraction / 3  # the score of an hour's training

try:
    run_learning_curve(train, [0.5, 1.0], study="lc")
except gp.AnalysisError as e:
    print(f"AnalysisError|{e}")
try:
    run_learning_curve(train, "0.5", study="lc", full_size=1000)
except gp.ConfigError as e:
    print(f"ConfigError|{e}")
"""


def test_a_learning_curve_without_full_size_keeps_the_score_it_trained(tmp_path_factory):
    home = empty_home(tmp_path_factory, "lc-hurried")
    (home / "curve.py").write_text(HURRIED_CURVE)
    done = run_in(home, "python", "curve.py")
    assert done.returncode == 0, done.stderr
    (analysis,) = [line for line in done.stdout.splitlines() if line.startswith("Analysis")]
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--study", "lc")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert (row[2], row[3], row[-1]) == ("learning-curve-0.5", "failed", "score=0.6667")
    assert analysis == (
        f"AnalysisError|fn returned a bare score (0.6667, logged as 'score' on run {row[0]} "
        "'learning-curve-0.5', marked failed: it has no dataset size): give full_size= or "
        "return (score, dataset_size)"
    )
    assert "ConfigError|fractions must be a list of subsample fractions in (0, 1], not '0.5'" in (
        done.stdout
    )


#: The same random search of scikit-learn MLPs on the digits data (widths 8, 32 and 128, one
#: epoch a step, its FPO recorded), stopped by Optuna's MedianPruner or by greenprint's
#: CostAwareOptunaPruner at equal FPO or energy: one study each of ``sys.argv[1:]`` (``median``,
#: ``fpo``, ``energy``), one after another in one process, and each cost-aware decision's reason.
PRUNED_SEARCH = """
import sys
import warnings

import numpy as np
import optuna
from greenprint.greener import CostAwareOptunaPruner
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.tracking import active_runs
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.WARNING)
X, y = load_digits(return_X_y=True)
X = X / 16

def objective(trial):
    width = trial.suggest_categorical("width", [8, 32, 128])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    run = list(active_runs())[-1]
    model = MLPClassifier(hidden_layer_sizes=(width,), learning_rate_init=lr, random_state=0)
    for epoch in range(6):
        model.partial_fit(X[:600], y[:600], classes=np.arange(10))
        run.add_fpo(6 * width * 74 * 600)  # forward and backward of one epoch
        trial.report(model.score(X[600:900], y[600:900]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return model.score(X[600:900], y[600:900])

for name in sys.argv[1:]:
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if name == "median"
        else CostAwareOptunaPruner(cost=name, n_startup_trials=3, n_warmup_reports=1)
    )
    cb = GreenprintCallback()
    study = optuna.create_study(
        study_name=name, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner,
    )
    study.optimize(cb.track(objective), n_trials=8, callbacks=[cb])
    if name != "median":
        for t in study.trials:
            print(f"reason|{name}|{t.number}|{pruner.decision(study, t.number).reason}")
"""


def test_cost_aware_pruning_beside_the_median_pruner_priced_from_the_ledger(tmp_path_factory):
    pytest.importorskip("optuna")
    home = empty_home(tmp_path_factory, "pruned")
    (home / "search.py").write_text(PRUNED_SEARCH)
    priced = 0
    studies = ("median", "fpo", "energy")
    searched = run_in(home, "python", "search.py", *studies)  # one process, importing once
    assert searched.returncode == 0, searched.stderr
    said = [line.split("|", 3) for line in searched.stdout.splitlines() if "|" in line]
    for study in studies:
        reasons = [line[3] for line in said if line[1] == study]
        judged = [r for r in reasons if "median" in r]
        assert bool(judged) is (study != "median"), searched.stdout
        unit = r"[0-9.]+ (µWh|mWh|nWh)" if study == "energy" else r"[0-9.]+ (k|M|G)FPO"
        for reason in judged:  # as the report writes them: '13.4 µWh', not '1.34177e-08 kWh'
            assert re.search(r"at cost " + unit + "$", reason), reason

        done = run_in(
            home, GREENPRINT, "report", "--study", study, "--format", "json", "--no-plots",
            "--out", study,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = json.loads((home / study / "report.json").read_text(encoding="utf-8"))
        pruning = report["pruning"]
        if pruning is None:
            continue
        priced += 1
        runs = {run["id"]: run for run in report["runs"]}
        # by hand: what the pruned trials cost in the ledger, and that cost scaled by the
        # 6 epochs of a full trial over the epochs each ran (steps counted from 0)
        rows, estimate = pruning["rows"], pruning["estimate"]
        assert pruning["fpo"] == sum(runs[r["run_id"]]["fpo"] for r in rows)
        assert estimate["saved_fpo"] == pytest.approx(
            sum(runs[r["run_id"]]["fpo"] * (6 / (r["step"] + 1) - 1) for r in rows)
        )
        energy = [runs[r["run_id"]]["energy_kwh"] for r in rows]
        assert pruning["energy_kwh"] == pytest.approx(sum(energy), rel=1e-9)
        assert estimate["saved_energy_kwh"] == pytest.approx(
            sum(e * (6 / (r["step"] + 1) - 1) for e, r in zip(energy, rows, strict=True)),
            rel=1e-9,
        )
    assert priced >= 2


#: A run meant to use RAPL alone, and runs with no energy meter under energy budgets.
UNMETERED = """
import greenprint as gp

try:
    gp.track("rapl-only", study="m", meters=["rapl"])
except gp.ConfigError as e:
    print(f"ConfigError|{e}")
with gp.track("own", study="m", meters=[], budget_kwh=1e-9, on_exceed="stop") as run:
    run.log(acc=0.5)
print(f"status|{run.status}")
cap = gp.Budget(kg=1e-9, per="study", on_exceed="stop")
for i in range(3):
    with gp.track(f"t{i}", study="sweep", meters=[], budget=cap, params={"i": i}) as run:
        run.log(acc=i / 3)
print(f"status|{run.status}")
"""


def test_energy_budgets_of_a_run_with_no_energy_meter_say_they_cannot_act(tmp_path_factory):
    home = empty_home(tmp_path_factory, "unmetered")
    (home / "unmetered.py").write_text(UNMETERED)
    done = run_in(home, "python", "unmetered.py")
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == (
        "ConfigError|meters must be a meter set (greenprint.meters.detect_meters(), your own), "
        "[] for no energy meter, or left out (every meter that works here), not ['rapl']"
    )
    assert out[1:] == ["status|finished", "status|finished"]  # unknown never crosses a limit
    said = [line for line in done.stderr.splitlines() if "no energy meter" in line]
    assert len(said) == 2, done.stderr  # once for the run, once for the sweep's three trials
    assert said[0].endswith(
        "has no energy meter (meters=[]): its energy and CO2-eq are unknown, so its "
        "budget_kwh 1 µWh can never be crossed; leave meters out to measure them"
    )
    assert "so the budget_kg 1 µg CO2-eq of study 'sweep' counts none of its cost" in said[1]
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--study", "sweep")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[2] for line in listed.stdout.splitlines()[1:]] == ["t0", "t1", "t2"]


#: A training tracked in Germany in a facility of PUE 1.2, priced by greenprint whatif.
TRACKED_IN_DE = """
import greenprint as gp

with gp.track("train", study="whatif", region="DE", pue=1.2) as run:
    sum(i * i for i in range(300_000))  # the training
print(run.id)
"""


def test_whatif_prices_a_run_at_another_pue_by_hand(tmp_path_factory):
    home = empty_home(tmp_path_factory, "whatif-pue")
    (home / "train.py").write_text(TRACKED_IN_DE)
    done = run_in(home, "python", "train.py")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]

    def whatif(*args: str) -> dict:
        done = run_in(home, GREENPRINT, "whatif", "--run", run_id[:8], "--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    recorded = whatif("--regions", "DE")
    energy, (de,) = recorded["energy_kwh"], recorded["regions"]
    assert (recorded["pue"], recorded["recorded_pue"], de["g_per_kwh"]) == (1.2, 1.2, 380.95)
    assert recorded["emissions_kg"] == pytest.approx(energy * 1.2 * 380.95 / 1000, rel=1e-9)
    assert de["saving_kg"] == pytest.approx(0.0, abs=1e-15)
    # the same run in a facility of PUE 1.1 ('google'), in Germany and in France
    other = whatif("--regions", "DE,FR", "--pue", "google")
    de, fr = other["regions"]
    assert (other["pue"], other["recorded_pue"]) == (1.1, 1.2)
    assert de["emissions_kg"] == pytest.approx(energy * 1.1 * 380.95 / 1000, rel=1e-9)
    assert fr["emissions_kg"] == pytest.approx(energy * 1.1 * fr["g_per_kwh"] / 1000, rel=1e-9)
    assert de["saving_pct"] == pytest.approx(100 * (1 - 1.1 / 1.2), rel=1e-9)  # 8.3 %
    assert other["notes"] == [
        "priced at PUE 1.1, where the run recorded PUE 1.2: the savings against what it "
        "recorded include the facility's"
    ]
    short = run_id[:8]
    text = run_in(home, GREENPRINT, "whatif", "--run", short, "--regions", "DE", "--pue", "1.1")
    assert text.returncode == 0, text.stderr
    assert " x PUE 1.1 (recorded at PUE 1.2) = " in text.stdout.splitlines()[0]

    for args, said in (
        (("--pue", "0.5"), "PUE must be a finite number with 1 <= x <= 3, got '0.5'"),
        (("--regions", "XX"), "unknown region 'XX' (all regions: greenprint intensity --list)"),
    ):
        done = run_in(home, GREENPRINT, "whatif", "--run", short, *args)
        assert (done.returncode, done.stderr, done.stdout) == (
            2,
            f"greenprint: error: {said}\n",
            "",
        )


#: Two grid searches under one study budget of run time (50 ms), the first crossing it as it fits.
#: A busy machine can spend the budget in the first sweep's own start: that search is then
#: refused before it fits (as a study over budget is), and the pair is tried again in a new
#: study with four times the budget, until the first search starts.
SEARCHES = """
import warnings

import greenprint as gp
from greenprint.integrations.sklearn import track_search
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)
budget_s = 0.05
for attempt in range(4):
    cap = gp.Budget(s=budget_s, per="study", on_exceed="stop")
    for i, Cs in enumerate(([0.01, 0.1], [1.0, 10.0])):
        search = GridSearchCV(LogisticRegression(max_iter=30), {"C": Cs}, cv=3)
        try:
            sweep = track_search(
                search, X[:600], y[:600], study=f"sk{attempt}", budget=cap, name=f"grid{i}"
            )
            print(f"search|{i}|{sweep.status}|{hasattr(search, 'best_estimator_')}")
        except gp.BudgetExceeded as e:
            print(f"stopped|{i}|{hasattr(search, 'best_estimator_')}|{e.spent:.3f}")
            if i == 0:
                break
    else:
        break
    budget_s *= 4
"""


def test_a_stop_budget_does_not_stop_a_scikit_learn_search_already_fitting(tmp_path_factory):
    """As docs/budgets.md now says: it runs to its end, and the next search fits nothing."""
    home = empty_home(tmp_path_factory, "sk-budget")
    (home / "searches.py").write_text(SEARCHES)
    done = run_in(home, "python", "searches.py")
    assert done.returncode == 0, done.stderr
    lines = [line.split("|") for line in done.stdout.splitlines()]
    assert len(lines) >= 2, done.stdout
    refused, (first, second) = lines[:-2], lines[-2:]
    # a first search whose study crossed the budget as its sweep started: refused, unfitted
    for attempt, (said, i, fitted, spent) in enumerate(refused):
        assert (said, i, fitted) == ("stopped", "0", "False"), done.stdout
        assert float(spent) > 0.05 * 4**attempt, done.stdout
    # then the pair: the first runs to its end, interrupted (the crossing), fitted; the next
    # fits nothing
    assert first == ["search", "0", "interrupted", "True"], done.stdout
    assert second[:3] == ["stopped", "1", "False"], done.stdout
    page = (Path(__file__).parents[1] / "docs" / "budgets.md").read_text(encoding="utf-8")
    assert "but one\nalready fitting is not stopped" in page


#: A small sweep tracked at PUE 1.2 in Germany, and a study of runs with no energy meter.
SWEEP_IN_DE = """
import greenprint as gp

for lr in (0.1, 0.01, 0.001):
    with gp.track(f"lr={lr}", study="sweep", region="DE", pue=1.2, params={"lr": lr}) as run:
        sum(i * i for i in range(100_000))  # the training
        run.log(val_accuracy=0.9 - lr)
with gp.track("unmetered", study="blind", meters=[]) as run:
    run.log(val_accuracy=0.5)
"""


def test_whatif_prices_a_whole_study_as_its_report_does(tmp_path_factory):
    """'What would this study have emitted in France?' was answered for one run only."""
    home = empty_home(tmp_path_factory, "whatif-study")
    (home / "sweep.py").write_text(SWEEP_IN_DE)
    done = run_in(home, "python", "sweep.py")
    assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "whatif", "--study", "sweep", "--regions", "FR,DE", "--json")
    assert done.returncode == 0, done.stderr
    priced = json.loads(done.stdout)
    done = run_in(
        home, GREENPRINT, "report", "--study", "sweep", "--format", "json", "--no-plots",
        "--out", "report",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "report" / "report.json").read_text(encoding="utf-8"))
    # by hand from the runs' energy: counted once, at PUE 1.2, in each region's intensity
    energy = sum(run["energy_kwh"] for run in report["runs"])
    assert (priced["runs"], priced["trials"], priced["pue"]) == (3, 3, pytest.approx(1.2))
    assert priced["energy_kwh"] == pytest.approx(energy, rel=1e-9)
    assert priced["emissions_kg"] == pytest.approx(energy * 1.2 * 380.95 / 1000, rel=1e-9)
    fr, de = priced["regions"]
    assert fr["emissions_kg"] == pytest.approx(energy * 1.2 * 56.039 / 1000, rel=1e-9)
    assert de["saving_kg"] == pytest.approx(0.0, abs=1e-15)
    shown = {r["region"]: r["emissions_kg"] for r in report["whatif"]["regions"]}
    assert shown["FR"] == pytest.approx(fr["emissions_kg"], rel=1e-12)  # as the report prices it

    at_google = run_in(
        home, GREENPRINT, "whatif", "--study", "sweep", "--regions", "DE", "--pue", "google"
    )
    assert at_google.returncode == 0, at_google.stderr
    head = at_google.stdout.splitlines()[0]
    assert head.startswith("study     sweep (3 runs, energy counted once as in its price tag): ")
    assert " x PUE 1.1 (recorded at PUE 1.2) = " in head

    for args, said in (
        (("--study", "blind"), "study 'blind' has no energy to price: its one run recorded "
         "no energy (no energy meter)"),
        (("--study", "swep"), "no study 'swep' in ledger"),
        ((), "give --run ID (one run) or --study NAME (a whole study)"),
        (("--study", "sweep", "--hourly", "x.csv"), "--hourly and --timezone price one run's"),
    ):  # fmt: skip
        done = run_in(home, GREENPRINT, "whatif", *args)
        assert (done.returncode, done.stdout) == (2, ""), (args, done.stdout)
        assert done.stderr.startswith(f"greenprint: error: {said}"), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
