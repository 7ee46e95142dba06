"""Session 40, an outside check: a paper's study of two scikit-learn searches, read from the
README only, built as a researcher builds it.

A logistic regression and a random forest searched with ``RandomizedSearchCV`` through
``track_search`` into one study, a majority-class baseline, and the best configuration
retrained and scored on a held-out split (``role="final"``, ``params={"model": "logreg",
**search.best_params_}``). Before:

1. No EVP curve per model family could be drawn: each sweep records its estimator
   (``params.estimator``), each trial only the hyper-parameters it tried, and ``--group-by``
   read a trial and its parts only: ``--group-by params.estimator`` exited 2 ("no trial (nor
   any of its parts) has a value of it"). A trial now takes the value of the sweep it ran in,
   and without the flag the report's notes name it.
2. The Pareto plot's caption said "the star is the final run (or the trial whose configuration
   it retrained)" and drew no star: the retrain named its model beside the trial's ``C``, and
   only a trial with exactly the retrain's params was starred.
3. The script run a second time into the same ledger (a researcher's rerun): the note on one
   search run twice said "the final run is the best of them all", of a final run chosen as
   the last started of the runs given role 'final' (the second retrain).
4. ``--metric log_loss``, a metric only the baseline logged, noted "no finished or pruned trial
   has a value of 'log_loss'" without the metrics the trials did log, which docs/report.md
   promises (the trials' other metrics were not read: the baseline had the metric).

Each runs greenprint as a stranger does: in an empty directory with a clean environment.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from integrations._frameworks import need_installed

need_installed("sklearn", "sklearn")

STUDY = """
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV, train_test_split

import greenprint as gp
from greenprint.integrations.sklearn import track_search

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X[:400], y[:400], test_size=0.25, random_state=0)
with gp.track("majority", study="paper", role="baseline") as run:
    model = DummyClassifier().fit(Xtr, ytr)
    run.log(accuracy=model.score(Xtr, ytr), log_loss=2.3)
logreg = RandomizedSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0, 10.0]},
                            n_iter=3, cv=3, random_state=0)
forest = RandomizedSearchCV(RandomForestClassifier(random_state=0),
                            {"n_estimators": [4, 8, 16], "max_depth": [2, 4, 8]},
                            n_iter=3, cv=3, random_state=0)
track_search(logreg, Xtr, ytr, study="paper")
track_search(forest, Xtr, ytr, study="paper")
with gp.track("final", study="paper", role="final") as run:
    run.set(params={"model": "logreg", **logreg.best_params_})
    run.log(test_accuracy=logreg.best_estimator_.score(Xte, yte))
print(logreg.best_params_["C"])
"""

LOGREG, FOREST = "LogisticRegression(max_iter=500)", "RandomForestClassifier(random_state=0)"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study, recorded by the script in an empty directory, and its ledger exported."""
    home = empty_home(tmp_path_factory, "s40-families")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    made = run_in(home, sys.executable, "study.py")
    assert made.returncode == 0, made.stderr
    (home / "best_c.txt").write_text(made.stdout.strip(), encoding="utf-8")
    done = run_in(home, GREENPRINT, "ledger", "export", "--format", "json", "--out", "runs.json")
    assert done.returncode == 0, done.stderr
    return home


def _report(home: Path, out: str, *args: str) -> dict:
    done = run_in(home, GREENPRINT, "report", "--study", "paper", "--format", "json",
                  "--no-plots", "--out", out, *args)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((home / out / "report.json").read_text(encoding="utf-8"))


def _brute_force_with_replacement(scores: list[float], n: int) -> float:
    """E[max of n draws with replacement], over every one of the N^n draws, exactly."""
    exact = [Fraction(s) for s in scores]
    draws = list(itertools.product(exact, repeat=n))
    return float(sum(max(d) for d in draws) / len(draws))


def test_two_searches_draw_one_evp_curve_per_estimator(home: Path):
    runs = json.loads((home / "runs.json").read_text(encoding="utf-8"))["runs"]
    by_id = {r["id"]: r for r in runs}
    trials = [r for r in runs if r["role"] == "trial"]
    assert len(trials) == 6  # 3 candidates a search; the 18 folds are parts
    assert sum(r["role"] == "part" for r in runs) == 18
    family_scores: dict[str, list[float]] = {}
    for trial in trials:
        estimator = by_id[trial["parent_id"]]["params"]["estimator"]
        accuracy = [m for m in trial["metrics"] if m["name"] == "accuracy"][-1]["value"]
        family_scores.setdefault(estimator, []).append(accuracy)
    assert sorted(family_scores) == [LOGREG, FOREST]

    plain = _report(home, "rep-plain")
    assert (
        "the runs the trials are inside (their sweeps) vary params.estimator "
        f"({LOGREG}, {FOREST}): greenprint report --group-by params.estimator draws one "
        "expected-best-score curve per estimator"
    ) in plain["notes"]

    report = _report(home, "rep", "--group-by", "params.estimator")
    assert not any("group-by" in note for note in report["notes"])  # the hint is gone
    (evp,) = [f for f in report["figures"] if f["id"] == "evp_trials"]
    families = {
        s["label"]: s["y"] for s in evp["panels"][0]["series"] if s["role"].startswith("family")
    }
    assert sorted(families) == [f"{LOGREG} (3)", f"{FOREST} (3)"]
    for estimator, scores in family_scores.items():
        expected = [_brute_force_with_replacement(scores, n) for n in (1, 2, 3)]
        assert families[f"{estimator} (3)"] == pytest.approx(expected, rel=1e-12)
    baselines = [s["label"] for s in evp["panels"][0]["series"] if s["role"] == "baseline"]
    assert len(baselines) == 1 and baselines[0].startswith("baseline majority")


def test_a_path_no_run_has_names_the_sweeps_keys(home: Path):
    done = run_in(home, GREENPRINT, "report", "--study", "paper", "--group-by", "params.model",
                  "--no-plots", "--out", "rep-bad")  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("greenprint: error: group_by 'params.model': no trial")
    assert "params.estimator" in line
    assert not (home / "rep-bad").exists()


def test_the_retrained_configuration_is_starred(home: Path):
    report = _report(home, "rep-star")
    assert report["price_tag"]["final"]["name"] == "final"
    (pareto,) = [f for f in report["figures"] if f["id"] == "pareto"]
    (star,) = [s for s in pareto["panels"][0]["series"] if s["role"] == "final"]
    runs = {r["id"]: r for r in report["runs"]}
    (starred,) = star["run_ids"]
    assert runs[starred]["role"] == "trial"
    assert runs[starred]["params"] == {"C": float((home / "best_c.txt").read_text())}
    assert "the star is the final run" in pareto["caption"]


def test_a_metric_only_the_baseline_logged_lists_the_trials_metrics(home: Path):
    report = _report(home, "rep-loss", "--metric", "log_loss")
    (note,) = [n for n in report["notes"] if n.startswith("no expected-max-performance curve")]
    assert note.startswith(
        "no expected-max-performance curve: no finished or pruned trial has a value of "
        "'log_loss'; metrics they logged: "
    )
    assert "'accuracy'" in note and "'score'" in note


def test_the_script_run_again_keeps_its_last_retrain_as_the_final_run(
    home: Path, tmp_path_factory: pytest.TempPathFactory
):
    again = empty_home(tmp_path_factory, "s40-again")
    for name in ("study.py", "greenprint.db"):
        shutil.copy(home / name, again / name)
    made = run_in(again, sys.executable, "study.py")
    assert made.returncode == 0, made.stderr
    report = _report(again, "rep")
    finals = sorted((r["started_at"], r["id"]) for r in report["runs"] if r["name"] == "final")
    assert len(finals) == 2 and report["price_tag"]["final"]["run_id"] == finals[-1][1]
    (note,) = [n for n in report["notes"] if n.startswith("the study holds one search run")]
    assert "the study's 12 trials" in note
    assert "best of them all" not in note
    assert "the final run is named by its run id where its name repeats" in note
