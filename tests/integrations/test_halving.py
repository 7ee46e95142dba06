"""scikit-learn's successive halving searches read as Optuna's and Ray Tune's pruned trials.

A halving search evaluates each candidate once per iteration it reaches (a row of
``cv_results_`` each time) and eliminates the worse ones at every iteration. A candidate is one
trial: its row at its last iteration, ``finished`` when that is the search's last iteration,
else ``pruned``; its earlier rows are its parts. Real searches, real ledger, real report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._frameworks import need_installed

need_installed("sklearn", "sklearn")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> None:
    """Import scikit-learn when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; scikit-learn and SciPy take about 2 s of CPU
    to import. The names are this module's globals, as a top-level import would make them.
    """
    global load_digits, HalvingGridSearchCV, HalvingRandomSearchCV, SVC, DecisionTreeClassifier
    global gp_sklearn, track_search, trial_id
    from sklearn.datasets import load_digits
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations import sklearn as gp_sklearn
    from greenprint.integrations.sklearn import track_search, trial_id


@pytest.fixture
def callback_api() -> None:
    """Skip a test where scikit-learn has no callback API (known once it is imported)."""
    if gp_sklearn.METHOD != "callbacks":
        pytest.skip("no scikit-learn callback API")


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
GRID = {"C": [0.01, 0.1, 1, 10], "gamma": [1e-3, 1e-2]}  # 8 candidates


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:240], y[:240]


def _key(params: dict) -> tuple:
    """A candidate's identity: its parameters without the halving iteration's."""
    return tuple(sorted((k, v) for k, v in params.items() if k not in ("iter", "n_resources")))


def _expected(search) -> dict[tuple, tuple[int, str]]:
    """Candidate -> (its last row, its status), read from cv_results_["iter"] alone."""
    results = search.cv_results_
    iters = [int(i) for i in results["iter"]]
    last: dict[tuple, int] = {}
    for row, params in enumerate(results["params"]):
        last[_key(params)] = row  # rows are in iteration order: the last one wins
    top = max(iters)
    return {k: (row, "finished" if iters[row] == top else "pruned") for k, row in last.items()}


def _check_candidates(runs: list[gp.RunRecord], search, n_splits: int) -> gp.RunRecord:
    """One trial per candidate with the status cv_results_ says; earlier rows are its parts;
    every row keeps its folds; a trial costs what its subtree measured. Returns the sweep."""
    results = search.cv_results_
    n_rows = len(results["params"])
    expected = _expected(search)
    (sweep,) = [r for r in runs if r.role == "sweep"]
    roles = Counter(r.role for r in runs)
    n_candidates = len(expected)
    assert n_candidates == search.n_candidates_[0]
    assert roles == {
        "sweep": 1,
        "trial": n_candidates,
        "part": (n_rows - n_candidates) + n_rows * n_splits,  # earlier rows + every row's folds
        "final": 1,
    }
    trials = {_key(r.params): r for r in runs if r.role == "trial"}
    assert trials.keys() == expected.keys()
    by_id = {r.id: r for r in runs}
    for key, (row, status) in expected.items():
        trial = trials[key]
        assert trial.id == trial_id(sweep.id, row) and trial.parent_id == sweep.id
        assert (trial.status, trial.error) == (status, None)
        assert trial.params["iter"] == results["iter"][row]
        assert trial.params["n_resources"] == results["n_resources"][row]
        assert trial.metric("score") == pytest.approx(results["mean_test_score"][row])
        # its earlier iterations: parts of it, each with its own folds and score
        earlier = [r for r in runs if r.parent_id == trial.id and "fold" not in r.params]
        rows = [k for k, p in enumerate(results["params"]) if _key(p) == key and k != row]
        assert sorted(r.id for r in earlier) == sorted(trial_id(sweep.id, k) for k in rows)
        for part in earlier:
            k = rows[[trial_id(sweep.id, j) for j in rows].index(part.id)]
            assert (part.role, part.status) == ("part", "finished")
            assert part.params["iter"] == results["iter"][k] < trial.params["iter"]
            assert part.metric("score") == pytest.approx(results["mean_test_score"][k])
        # every row keeps its folds; the trial costs what all of them cost
        folds = []
        for k in (*rows, row):
            mine = [r for r in runs if r.parent_id == trial_id(sweep.id, k) and "fold" in r.params]
            assert sorted(r.params["fold"] for r in mine) == list(range(n_splits))
            folds.extend(mine)
        assert trial.energy_kwh == pytest.approx(sum(f.energy_kwh for f in folds), rel=1e-9)
        assert trial.emissions_kg == pytest.approx(sum(f.emissions_kg for f in folds), rel=1e-9)
        assert all(by_id[f.parent_id].role in ("trial", "part") for f in folds)
    return sweep


@pytest.mark.usefixtures("callback_api")
def test_halving_grid_search_candidates_are_trials_pruned_as_iter_says(
    tmp_path: Path, digits
) -> None:
    """8 candidates on 60 examples, the best 4 on 120, the best 2 on 240: 8 trials, the 2 that
    reached the last iteration finished, the 6 eliminated pruned; the report says so, its best
    finished trial is scored on all the data, and the price tag's total is still the search's."""
    from greenprint.report import build_report, render

    X, y = digits
    db = tmp_path / "g.db"
    search = HalvingGridSearchCV(SVC(), GRID, cv=3, factor=2, random_state=0)
    sweep_run = track_search(search, X, y, ledger=db, study="halving", name="halving", **FAST)
    assert list(search.n_candidates_) == [8, 4, 2]
    assert list(search.n_resources_) == [60, 120, 240]
    runs = gp.Ledger(db).runs(study="halving")
    sweep = _check_candidates(runs, search, 3)
    statuses = Counter(r.status for r in runs if r.role == "trial")
    assert statuses == {"finished": 2, "pruned": 6}

    # the price tag sums the search once, as before: its measured cost
    tag = price_tag(runs, metric="score")
    assert tag.total.energy_kwh == pytest.approx(sweep_run.energy_kwh, rel=1e-9)
    assert tag.total.energy_kwh == pytest.approx(sweep.energy_kwh, rel=1e-9)
    assert tag.total.trials == 8
    assert {k: v.trials for k, v in tag.by_status.items() if v.trials} == {
        "finished": 2,
        "pruned": 6,
    }
    # the table by status: the pruned line is what the eliminated candidates cost, their
    # finished folds included (it read 0 kWh: the folds' cost sat under "finished")
    pruned_ids = {r.id for r in runs if r.role == "trial" and r.status == "pruned"}
    pruned_kwh = sum(r.energy_kwh for r in runs if r.id in pruned_ids)
    assert pruned_kwh > 0
    assert tag.by_status["pruned"].energy_kwh == pytest.approx(pruned_kwh, rel=1e-9)
    # the pruned trials' cost is in the total: every trial's and the refit's sum to the folds'
    measured = sum(r.energy_kwh for r in runs if r.role == "part" and "fold" in r.params)
    final = next(r for r in runs if r.role == "final")
    trials = sum(r.energy_kwh for r in runs if r.role == "trial")
    assert trials == pytest.approx(measured, rel=1e-9)
    assert tag.total.energy_kwh >= trials + final.energy_kwh - 1e-12

    # without the refit, the best trial is the best finished one: scikit-learn's best_score_,
    # a candidate scored on all 240 examples (not a candidate's luckier score on 60)
    best = price_tag([r for r in runs if r.role != "final"], metric="score").final
    assert best is not None and best.rule == "best-trial"
    assert best.score == pytest.approx(search.best_score_)
    chosen = next(r for r in runs if r.id == best.run_id)
    assert (chosen.status, chosen.params["n_resources"]) == ("finished", 240)
    # each candidate trained on its last iteration's samples: its dataset size (E x D x H)
    assert all(r.dataset_size == r.params["n_resources"] for r in runs if r.role == "trial")
    assert tag.edh is not None and (tag.edh.dataset_size_min, tag.edh.dataset_size_max) == (
        60,
        240,
    )

    report = build_report(db, "halving")
    assert report.metric == "score" and report.price_tag.final.name == "halving-refit"
    assert "comprised 8 trials (2 finished, 6 pruned)" in report.compute_statement
    md = render(report, "md", plots=False)
    assert "8 trials (2 finished, 6 pruned)" in md


def test_halving_apportioned_candidates_share_the_search_once(tmp_path: Path, digits) -> None:
    """The apportion method: the same trials and statuses; a trial's share is its rows' shares,
    and the trials' and refit's shares add up to no more than the search measured."""
    X, y = digits
    db = tmp_path / "g.db"
    search = HalvingGridSearchCV(SVC(), GRID, cv=3, factor=2, random_state=0)
    sweep_run = track_search(
        search, X, y, ledger=db, study="shares", name="h", method="apportion", **FAST
    )
    runs = gp.Ledger(db).runs(study="shares")
    expected = _expected(search)
    trials = [r for r in runs if r.role == "trial"]
    assert Counter(r.status for r in trials) == Counter(s for _, s in expected.values())
    assert all("earlier halving iteration" in r.provenance["trial"] for r in trials
               if r.params["iter"] > 0)  # fmt: skip
    rows = [r for r in runs if r.role == "part" and "fold" not in r.params]
    assert len(rows) == len(search.cv_results_["params"]) - len(expected)
    # shares of what the search had measured when its trials were written: no more than it
    shared = sum(r.energy_kwh for r in runs if r.role in ("trial", "final"))
    assert 0 < shared <= gp.Ledger(db).run(sweep_run.id).energy_kwh * 1.0001
    tag = price_tag(runs, metric="score")
    assert tag.total.energy_kwh == pytest.approx(sweep_run.energy_kwh, rel=1e-9)


@pytest.mark.usefixtures("callback_api")
def test_halving_random_search_in_worker_processes(tmp_path: Path, digits) -> None:
    """Folds of later iterations measured in joblib's worker processes find their rows; each
    candidate is one trial with the status its last iteration says."""
    X, y = digits
    db = tmp_path / "g.db"
    search = HalvingRandomSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4, 5, 6]},
        n_candidates=6,
        factor=2,
        cv=2,
        random_state=0,
        min_resources=40,
        n_jobs=2,  # rows of later iterations are found from the worker's pickled search
    )
    track_search(search, X, y, ledger=db, study="halving", **FAST)
    runs = gp.Ledger(db).runs(study="halving")
    _check_candidates(runs, search, 2)
    trials = [r for r in runs if r.role == "trial"]
    assert max(r.params["iter"] for r in trials) >= 1
    assert {r.status for r in trials} == {"finished", "pruned"}
