"""Session 37, an outside check: a study mixing a scikit-learn search with an Optuna search,
and learning curves whose sizes come from runs of several kinds, built as a user builds them.

Before: ``track_search``'s trials logged their score as ``score`` only, while the Optuna search
of the same study logged ``accuracy``: the report ranked by ``accuracy`` and counted the finished
scikit-learn trials as scoreless ("4 of 9 trials had no score"), their EVP curve dragged to the
worst value. Now each trial (its folds and the refit too) also logs its score under its scorer's
name (``accuracy`` for an unscored classifier or ``scoring="accuracy"``, ``refit``'s with several
scorers, ``neg_log_loss`` as scikit-learn names it) or the name given as ``metric=``; an
scikit-learn-only study is still ranked by ``score``. And a learning curve drawn from the runs
inside a ``learning-curve`` run of a size of its own, or below a search inside it, was "no
learning curve: fewer than two training-set sizes among the runs" though the runs had three.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, cli_report, report_text, run_in
from _report_cli import empty_home as _empty
from integrations._frameworks import need_installed

need_installed("optuna", "optuna")
need_installed("sklearn", "sklearn")

OPTUNA = """
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
ACC = [0.80, 0.86, 0.83, 0.84, 0.85]
cb = GreenprintCallback(ledger="gp.db", study="mixed", metric_names=["accuracy"])
study = optuna.create_study(study_name="mixed", direction="maximize")
study.optimize(cb.track(lambda t: ACC[t.number] + 0 * t.suggest_float("alpha", 1e-3, 1.0)),
               n_trials=5, callbacks=[cb])
"""

SKLEARN = """
import sys
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
study, scoring, metric = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
refit = "accuracy" if isinstance(scoring, list) else True
search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]},
                      cv=3, n_jobs=1, scoring=scoring, refit=refit)
track_search(search, X, y, ledger="gp.db", study=study, metric=metric)
print(float(search.best_score_))
"""


def _report(home: Path, *args: str) -> dict[str, object]:
    """``greenprint report`` in the two formats the tests read (JSON, Markdown), no plots: the
    JSON's figures are the same data with or without them, the Markdown the same text but the
    image links."""
    return cli_report(home, *args, "--format", "json,md", "--no-plots")


def _ok(done):
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def built_homes() -> dict[tuple[str, ...], Path]:
    """``(NAME, text, *ARGS)``: a home where ``python NAME ARGS`` ran (``text``), its ledger
    ``gp.db`` left there (by :func:`ledger_of`, or by :func:`searched` beforehand)."""
    return {}


@pytest.fixture(scope="module")
def ledger_of(tmp_path_factory, built_homes) -> Callable[[Path, str, str, tuple[str, ...]], None]:
    """``ledger_of(home, name, text, args)``: ``home/gp.db`` as ``python NAME ARGS`` (``text``)
    run in an empty home leaves it. The script runs once per file for each name and arguments
    (in a home of its own, as a user runs it) and its ledger is copied into each case's home:
    the runs that case's own run of it would have written there (the cases that start alike:
    Optuna's 5 trials of study 'mixed', the search of study 'lc' or of study 'alone')."""
    built = built_homes

    def copy_into(home: Path, name: str, text: str, args: tuple[str, ...] = ()) -> None:
        key = (name, text, *args)
        if key not in built:
            first = _empty(tmp_path_factory, "ledger")
            (first / name).write_text(text, encoding="utf-8")
            _ok(run_in(first, sys.executable, name, *args))
            built[key] = first
        for file in ("gp.db", "gp.db-wal"):  # the writer has ended: its WAL holds no reader
            if (built[key] / file).exists():
                shutil.copyfile(built[key] / file, home / file)

    return copy_into


#: The scoring and metric= of the searches beside Optuna's (``python sk.py mixed SCORING METRIC``)
MIXED_CASES = [
    ("None", "None"),
    ("'accuracy'", "None"),
    ("['accuracy', 'f1_macro']", "None"),
    ("'balanced_accuracy'", "'accuracy'"),
]

#: ``python searches.py HOME STUDY SCORING METRIC ...``: in each HOME, what ``python sk.py STUDY
#: SCORING METRIC`` run there does (its folder its cwd, its arguments), one after another in one
#: process (scikit-learn imported once, not once per search)
SEARCHES = """
import os, runpy, sys

args = sys.argv[1:]
for home, study, scoring, metric in zip(args[::4], args[1::4], args[2::4], args[3::4]):
    os.chdir(home)
    sys.argv = [os.path.join(home, "sk.py"), study, scoring, metric]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def searched(
    tmp_path_factory, ledger_of, built_homes
) -> dict[tuple[str, str, str], tuple[Path, float]]:
    """``(STUDY, SCORING, METRIC)``: the home where ``python sk.py STUDY SCORING METRIC`` ran,
    and the ``best_score_`` it printed: the searches beside Optuna's 5 trials of study 'mixed'
    (in a home holding them), the neg_log_loss one alone, and those of studies 'lc' and 'alone'
    whose ledgers :func:`ledger_of` copies into the cases' homes."""
    cases = [("mixed", *case) for case in MIXED_CASES]
    cases += [("nll", "'neg_log_loss'", "None"), ("lc", "None", "None"), ("alone", "None", "None")]
    homes = []
    for study, *_ in cases:
        home = _empty(tmp_path_factory, study)
        if study == "mixed":
            ledger_of(home, "opt.py", OPTUNA)  # python opt.py: the Optuna search's 5 trials
        (home / "sk.py").write_text(SKLEARN, encoding="utf-8")
        homes.append(home)
    runner = _empty(tmp_path_factory, "runner")
    (runner / "searches.py").write_text(SEARCHES, encoding="utf-8")
    args = [a for home, case in zip(homes, cases, strict=True) for a in (str(home), *case)]
    done = _ok(run_in(runner, sys.executable, "searches.py", *args))
    bests = [float(v) for v in done.stdout.split()]
    for home, case in zip(homes, cases, strict=True):
        if case[0] in ("lc", "alone"):  # as ledger_of would have run it
            built_homes[("sk.py", SKLEARN, *case)] = home
    return {case: (home, best) for case, home, best in zip(cases, homes, bests, strict=True)}


@pytest.mark.parametrize(("scoring", "metric"), MIXED_CASES)
def test_a_search_beside_optuna_ranks_its_trials_by_the_studys_metric(searched, scoring, metric):
    """Optuna's 5 trials log accuracy; the search's 4 trials log it too (by the scorer's name,
    or the one given as metric=): all 9 are scored, the EVP over 9 trials reaches the best of
    both, and the refit's accuracy is scikit-learn's best_score_."""
    home, best = searched[("mixed", scoring, metric)]
    report = _report(home, "--ledger", "gp.db", "--study", "mixed")
    assert report["metric"] == "accuracy"
    notes = " ".join(report["notes"])
    assert "had no score" not in notes
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    (exact,) = [s for p in evp["panels"] for s in p["series"] if s["role"] == "exact"]
    assert len(exact["x"]) == 9  # every trial drawn: the best of all 9 is the last point
    assert exact["y"][-1] == pytest.approx(max(0.86, best))
    assert "9 trials" in evp["caption"]
    md = report_text(home, "md")
    assert "had no score" not in md
    assert "accuracy" in md


def test_neg_log_loss_keeps_its_name_and_direction_and_score_still_ranks_alone(searched):
    """scoring='neg_log_loss': the trials log neg_log_loss (negated, as scikit-learn ranks it,
    read higher-is-better) beside score; a scikit-learn-only study is ranked by score, as
    before, and --metric neg_log_loss ranks the same best trial."""
    home, best = searched[("nll", "'neg_log_loss'", "None")]  # python sk.py nll ... in home
    assert best < 0
    report = _report(home, "--ledger", "gp.db", "--study", "nll")
    assert report["metric"] == "score"
    assert any("runs ranked by 'score'" in n and "neg_log_loss" in n for n in report["notes"])
    by = _report(home, "--ledger", "gp.db", "--study", "nll", "--metric", "neg_log_loss")
    assert by["metric"] == "neg_log_loss"
    evp = next(f for f in by["figures"] if f["id"] == "evp_trials")
    (exact,) = [s for p in evp["panels"] for s in p["series"] if s["role"] == "exact"]
    assert exact["y"][-1] == pytest.approx(best)  # the highest (least negative) is the best


def test_a_bad_metric_name_is_refused_before_anything_is_fitted(tmp_path_factory):
    home = _empty(tmp_path_factory, "bad")
    (home / "sk.py").write_text(SKLEARN, encoding="utf-8")
    done = run_in(home, sys.executable, "sk.py", "bad", "None", "'mean_test_score'")
    assert done.returncode == 1
    assert "ConfigError: metric must name the trials' score" in done.stderr
    assert (
        not (home / "gp.db").exists()
        or "GridSearchCV"
        not in run_in(home, GREENPRINT, "ledger", "ls", "--ledger", "gp.db").stdout
    )


LC_SIZED = """
import greenprint as gp
for fraction, acc in {0.25: 0.70, 0.5: 0.78, 1.0: 0.84}.items():
    with gp.track(f"lc-{fraction}", params={"fraction": fraction},
                  dataset_size=int(1200 * fraction)) as run:
        run.log(accuracy=acc)
"""

LC_OWN_SIZE = (
    """
import greenprint as gp
with gp.track("curve", role="learning-curve", dataset_size=1200):
"""
    + "\n".join("    " + line for line in LC_SIZED.splitlines()[2:])
    + """
"""
)

LC_PARTS = (
    """
import greenprint as gp
with gp.track("tree", params={"model": "tree"}) as trial:
"""
    + "\n".join(
        "    " + line.replace("params=", 'role="part", params=')
        for line in LC_SIZED.splitlines()[2:]
    )
    + """
    trial.log(accuracy=0.84)
"""
)

LC_SEARCHES = """
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
for step in (2, 1):
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=3,
                          n_jobs=1)
    track_search(search, X[::step], y[::step], name=f"search-{150 // step}")
"""


@pytest.mark.parametrize("shape", ["own-size", "searches", "none"])
def test_a_learning_curve_of_runs_of_several_kinds_is_drawn_or_the_note_says_why(
    tmp_path_factory, searched, ledger_of, shape
):
    """Beside a search of 150 examples: the runs inside a learning-curve run given a size of
    its own (gp.track(role='learning-curve', dataset_size=1200) around them) are the curve (3
    points; was drawn from the search's trials and the curve run: 150 and 1200); a
    learning-curve run around a search per size draws the searches' trials (75 and 150); the
    same runs given role 'part' of a trial scored by itself are no curve, and the note says the
    sizes of the runs it read and of those it did not, and how to make them a curve."""
    home = _empty(tmp_path_factory, shape)
    ledger_of(home, "sk.py", SKLEARN, ("lc", "None", "None"))  # python sk.py lc None None
    script = {"own-size": LC_OWN_SIZE, "searches": LC_SEARCHES, "none": LC_PARTS}[shape]
    (home / "lc.py").write_text(script, encoding="utf-8")
    run = [GREENPRINT, "run", "-q", "--study", "lc", "--ledger", "gp.db", "--name", "curve"]
    if shape == "own-size":  # the learning-curve run is the script's, of 1200 examples
        run = run[:-2]
    elif shape == "searches":
        run += ["--role", "learning-curve"]
    else:  # the sized runs are given role 'part' of a trial scored by itself: no curve
        run = run[:-2]
    _ok(run_in(home, *run, "--", sys.executable, "lc.py"))
    report = _report(home, "--ledger", "gp.db", "--study", "lc")
    # the search's trials log score and accuracy as often; the learning curve's runs accuracy
    # (searches inside it: score and accuracy too, and scikit-learn's score is kept)
    assert report["metric"] == ("score" if shape == "searches" else "accuracy")
    if shape == "own-size":
        assert any(
            "the one the study's baselines and learning-curve runs logged too" in n
            for n in report["notes"]
        )
    curve = next((f for f in report["figures"] if f["id"] == "learning_curve"), None)
    notes = [n for n in report["notes"] if n.startswith("no learning curve")]
    if shape == "none":
        assert curve is None
        (note,) = notes
        assert "fewer than two training-set sizes among" in note
        assert "among 5 runs with a dataset_size (150 examples)" in note  # 4 trials, their refit
        assert "the 3 other runs with a dataset_size (300 to 1,200 examples) are 'part'" in note
        assert "role 'learning-curve'" in note
        assert "no learning curve" in report_text(home, "md")
        return
    assert not notes
    (mean,) = [s for s in curve["panels"][0]["series"] if s["role"] == "mean"]
    if shape == "own-size":
        assert mean["x"] == [300, 600, 1200]
        assert mean["y"] == pytest.approx([0.70, 0.78, 0.84])
        assert "from 3 runs inside a run with role 'learning-curve'" in curve["caption"]
    else:
        assert mean["x"] == [75, 150]
        assert "from 2 runs inside a run with role 'learning-curve'" in curve["caption"]
    assert "Learning curve" in report_text(home, "md")


BASELINE = """
import greenprint as gp
with gp.track("majority", study="alone", ledger="gp.db", role="baseline") as run:
    run.log(accuracy=0.33)
"""


@pytest.mark.parametrize("baseline", [False, True])
def test_a_search_alone_ranks_by_score_and_beside_a_baseline_by_its_accuracy(
    tmp_path_factory, searched, ledger_of, baseline
):
    """A search alone: its trials log score and accuracy (an unscored classifier), the report
    ranks by score, as before. Beside a baseline that logs accuracy: by accuracy, said so, and
    the baseline is a reference line of the expected max performance (it had no score)."""
    home = _empty(tmp_path_factory, "alone")
    ledger_of(home, "sk.py", SKLEARN, ("alone", "None", "None"))  # python sk.py alone None None
    if baseline:
        (home / "baseline.py").write_text(BASELINE, encoding="utf-8")
        _ok(run_in(home, sys.executable, "baseline.py"))
    report = _report(home, "--ledger", "gp.db", "--study", "alone")
    (ranked,) = [n for n in report["notes"] if n.startswith("runs ranked by")]
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    lines = [s for p in evp["panels"] for s in p["series"] if s["role"] == "baseline"]
    if not baseline:
        assert report["metric"] == "score"
        assert "accuracy" in ranked and not lines
        return
    assert report["metric"] == "accuracy"
    assert "the one the study's baselines and learning-curve runs logged too" in ranked
    assert [s["y"][0] for s in lines] == [0.33]
    assert "runs ranked by 'accuracy'" in report_text(home, "md")
