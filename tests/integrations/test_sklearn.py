"""scikit-learn: every fit of a real search, joblib worker processes included, in the ledger."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from greenprint._exceptions import ConfigError, LedgerError
from greenprint.analysis import price_tag
from integrations._frameworks import need_installed, one_blas_thread

need_installed("sklearn", "sklearn")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import scikit-learn when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; scikit-learn and SciPy take about 2 s of CPU
    to import. The names are this module's globals, as a top-level import would make them. Fits
    run on one BLAS thread (small fits: spinning pool threads cost more CPU than they save).
    """
    global load_digits, LogisticRegression, GridSearchCV, RandomizedSearchCV, make_pipeline
    global StandardScaler, DecisionTreeClassifier, gp_sklearn, track_search, trial_id
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations import sklearn as gp_sklearn
    from greenprint.integrations.sklearn import track_search, trial_id

    with one_blas_thread():
        yield


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:240], y[:240]


def _runs(db: Path, study: str) -> list[gp.RunRecord]:
    return gp.Ledger(db).runs(study=study)


def _check_tree(runs: list[gp.RunRecord], search: object, n_splits: int) -> None:
    """One sweep; a trial per cv_results_ row with its folds as parts; the refit final."""
    roles = Counter(r.role for r in runs)
    results = search.cv_results_  # type: ignore[attr-defined]
    n_rows = len(results["params"])
    assert roles == {"sweep": 1, "trial": n_rows, "part": n_rows * n_splits, "final": 1}
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.parent_id is None and sweep.status == "finished"
    trials = {r.id: r for r in runs if r.role == "trial"}
    for row in range(n_rows):
        trial = trials[trial_id(sweep.id, row)]
        assert trial.parent_id == sweep.id
        for key, value in results["params"][row].items():
            assert trial.params[key] == value
        assert trial.metric("score") == pytest.approx(results["mean_test_score"][row])
        parts = [r for r in runs if r.parent_id == trial.id]
        assert sorted(p.params["fold"] for p in parts) == list(range(n_splits))
        for part in parts:
            fold = part.params["fold"]
            assert part.metric("score") == pytest.approx(results[f"split{fold}_test_score"][row])
        # a measured trial costs what its folds cost
        assert trial.energy_kwh == pytest.approx(sum(p.energy_kwh for p in parts))
        assert trial.emissions_kg == pytest.approx(sum(p.emissions_kg for p in parts))
    (final,) = [r for r in runs if r.role == "final"]
    assert final.parent_id == sweep.id
    assert final.params == search.best_params_  # type: ignore[attr-defined]
    assert final.metric("cv_score") == pytest.approx(search.best_score_)  # type: ignore[attr-defined]
    # the trials' metric too: the CV score of its parameters, as scikit-learn reports it
    assert final.metric("score") == search.best_score_  # type: ignore[attr-defined]


def test_the_installed_scikit_learn_takes_the_callback_path() -> None:
    import sklearn

    has_api = hasattr(GridSearchCV, "set_callbacks")
    assert gp_sklearn.METHOD == ("callbacks" if has_api else "apportion"), sklearn.__version__


def test_grid_search_with_two_worker_processes(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.01, 1.0]}, cv=3, n_jobs=2)
    sweep = track_search(search, X, y, ledger=db, study="grid", **FAST)
    assert search.best_params_ in ({"C": 0.01}, {"C": 1.0})  # fitted as by search.fit
    assert sweep.status == "finished" and sweep.role == "sweep"
    runs = _runs(db, "grid")
    _check_tree(runs, search, 3)
    # the folds were measured where they ran: joblib's worker processes, not this one
    parts = [r for r in runs if r.role == "part"]
    assert all(r.provenance.get("scope") == "process" for r in parts)
    assert sweep.params["method"] == gp_sklearn.METHOD


def test_randomized_search_in_process(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    search = RandomizedSearchCV(
        make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)),
        {
            "decisiontreeclassifier__max_depth": [2, 4, 8],
            "decisiontreeclassifier__min_samples_leaf": [1, 5],
        },
        n_iter=3,
        cv=2,
        random_state=0,
    )
    track_search(search, X, y, ledger=db, study="random", name="tree-search", **FAST)
    runs = _runs(db, "random")
    _check_tree(runs, search, 2)
    # the pipeline on one line (its repr spans three: it read "...StandardScaler()),\n    ...")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.params["estimator"] == (
        "Pipeline(steps=[('standardscaler', StandardScaler()), ('decisiontreeclassifier', "
        "DecisionTreeClassifier(random_state=0))])"
    )
    assert {r.name for r in runs if r.role == "trial"} == {f"tree-search-c{i}" for i in range(3)}
    # the data searched on is each trial's dataset size, so the report's E x D x H line
    # appears (it never did for a scikit-learn search); the refit trains on all of it too
    assert {r.role: r.dataset_size for r in runs if r.role != "part"} == {
        "sweep": 240,
        "trial": 240,
        "final": 240,
    }
    edh = price_tag(runs, metric="score").edh
    assert edh is not None and (edh.trials, edh.dataset_size) == (3, 240)
    trials = [r for r in runs if r.role == "trial"]
    assert edh.energy_kwh == pytest.approx(sum(r.energy_kwh for r in trials), rel=1e-9)


def test_apportion_path_shares_the_measured_search(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.01, 1.0]}, cv=2)
    sweep = track_search(
        search, X, y, ledger=db, study="shared", method="apportion", dataset_size=200, **FAST
    )
    runs = _runs(db, "shared")
    roles = Counter(r.role for r in runs)
    assert roles == {"sweep": 1, "trial": 2, "part": 4, "final": 1}
    # a dataset size given wins over X's 240 samples
    assert {r.dataset_size for r in runs if r.role in ("sweep", "trial", "final")} == {200}
    children = [r for r in runs if r.parent_id == sweep.id]
    assert sum(r.energy_kwh for r in children) <= gp.Ledger(db).run(sweep.id).energy_kwh * 1.0001
    assert all("apportioned" in r.provenance["trial"] for r in runs if r.role != "sweep")
    # shares of the search's reading over one span, not readings of the process: the price tag
    # keeps each trial's share (read as threads of one process, they were split equally)
    tag = price_tag(runs, metric="score")
    assert not any("at the same time" in note for note in tag.notes)
    trials = [r for r in runs if r.role == "trial"]
    assert tag.by_role["trial"].energy_kwh == pytest.approx(
        sum(r.energy_kwh for r in trials), rel=1e-9
    )
    (final,) = [r for r in runs if r.role == "final"]
    assert final.metric("score") == final.metric("cv_score") == search.best_score_


def test_failed_fits_make_failed_folds_and_trials(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    # max_depth=0 is refused by the tree at fit time: that candidate's folds fail
    search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [0, 3]}, cv=2, error_score=np.nan)
    with pytest.warns(UserWarning):
        track_search(search, X, y, ledger=db, study="broken", **FAST)
    runs = _runs(db, "broken")
    statuses = {r.params.get("max_depth"): r.status for r in runs if r.role == "trial"}
    assert statuses == {0: "failed", 3: "finished"}
    bad = next(r for r in runs if r.role == "trial" and r.status == "failed")
    assert {r.status for r in runs if r.parent_id == bad.id} == {"failed"}

    raising = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [0]}, cv=2, error_score="raise")
    with pytest.raises(Exception, match="max_depth"):
        track_search(raising, X, y, ledger=db, study="raised", **FAST)
    runs = _runs(db, "raised")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.status == "failed" and "max_depth" in (sweep.error or "")
    # the fold whose fit raised is failed with its error, as is its trial (it read finished)
    (fold,) = [r for r in runs if r.role == "part"]
    assert fold.status == "failed" and "max_depth" in (fold.error or "")
    (trial,) = [r for r in runs if r.role == "trial"]
    assert trial.status == "failed" and trial.error == fold.error


def test_bad_input_is_a_clear_greenprint_error(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    with pytest.raises(ConfigError, match="scikit-learn search"):
        track_search(LogisticRegression(), X, y, ledger=db)
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, cv=2)
    with pytest.raises(ConfigError, match="method"):
        track_search(search, X, y, ledger=db, method="guess")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ledger=False"):
        track_search(search, X, y, ledger=False)
    with pytest.raises(ConfigError, match="unknown option"):
        track_search(search, X, y, ledger=db, colour="green")
    closed = gp.Ledger(tmp_path / "closed.db")
    closed.close()
    with pytest.raises(LedgerError, match="closed"):
        track_search(search, X, y, ledger=closed)
    assert not hasattr(search, "cv_results_")  # nothing was fitted
    assert not db.exists()  # nothing was written


def test_a_search_class_without_callback_support_falls_back_to_shares(
    tmp_path: Path, digits, caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.model_selection._search import BaseSearchCV

    class TwoCandidates(BaseSearchCV):
        """A user's search whose _run_search predates the callback API."""

        def __init__(self, estimator, *, cv=2, n_jobs=None):
            super().__init__(estimator, cv=cv, n_jobs=n_jobs)

        def _run_search(self, evaluate_candidates):
            evaluate_candidates([{"max_depth": 2}, {"max_depth": 4}])

    X, y = digits
    db = tmp_path / "g.db"
    track_search(TwoCandidates(DecisionTreeClassifier(random_state=0)), X, y, ledger=db, **FAST)
    runs = gp.Ledger(db).runs()
    assert Counter(r.role for r in runs) == {"sweep": 1, "trial": 2, "part": 4, "final": 1}
    assert all("apportioned" in r.provenance["trial"] for r in runs if r.role == "trial")
    assert "no fold fits" in caplog.text


@pytest.mark.parametrize("method", ["callbacks", "apportion"])
def test_a_report_of_a_grid_search_says_what_the_final_run_scored(
    tmp_path: Path, digits, method: str
) -> None:
    """Ranked by ``score`` (what the trials logged), the refit is the final run and scored it."""
    from greenprint.report import build_report, render

    if method == "callbacks" and gp_sklearn.METHOD != "callbacks":
        pytest.skip("this scikit-learn has no callback API")
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.01, 1.0]}, cv=3)
    track_search(search, X, y, ledger=db, study="svc", name="svc", method=method, **FAST)
    report = build_report(db, "svc")
    assert report.metric == "score"
    final = report.price_tag.final
    assert final is not None and final.name == "svc-refit" and final.rule == "role"
    assert final.score == search.best_score_ and final.score_source == "own"
    md = render(report, "md", plots=False)
    sentence = md[md.index("Final run svc-refit") :].split("\n", 1)[0]
    assert f"scored score = {search.best_score_:.4g} and cost " in sentence, sentence
    data = json.loads(render(report, "json"))
    assert data["price_tag"]["final"]["score"] == search.best_score_
    assert data["price_tag"]["final"]["metric"] == "score"


def test_multi_metric_refit_logs_the_refit_metric(tmp_path: Path, digits) -> None:
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [2, 4, 8]},
        scoring={"acc": "accuracy", "f1": "f1_macro"},
        refit="f1",
        cv=2,
    )
    track_search(search, X, y, ledger=db, study="multi", **FAST)
    runs = _runs(db, "multi")
    (final,) = [r for r in runs if r.role == "final"]
    f1 = search.cv_results_["mean_test_f1"][search.best_index_]
    assert final.metric("score") == search.best_score_ == f1
    assert {r.metric("score") for r in runs if r.role == "trial"} == set(
        search.cv_results_["mean_test_f1"].tolist()
    )


def test_a_callable_refit_scores_the_chosen_candidate(tmp_path: Path, digits) -> None:
    """A callable refit sets no best_score_: the final run gets its candidate's mean score."""
    X, y = digits
    db = tmp_path / "g.db"

    def smallest_depth_within_a_tenth(results: dict) -> int:
        scores = results["mean_test_score"]
        return int(np.flatnonzero(scores >= scores.max() - 0.1)[0])

    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [2, 4, 8]},
        refit=smallest_depth_within_a_tenth,
        cv=2,
    )
    track_search(search, X, y, ledger=db, study="callable", **FAST)
    assert not hasattr(search, "best_score_")
    (final,) = [r for r in _runs(db, "callable") if r.role == "final"]
    chosen = search.cv_results_["mean_test_score"][search.best_index_]
    assert final.metric("score") == final.metric("cv_score") == chosen


def test_apportioned_trials_folds_and_refit_share_one_reading_of_the_search(
    tmp_path: Path, digits
) -> None:
    """Every apportioned record is a share of the same reading of the search: each trial's
    folds sum to the trial, and the trials with the refit to that reading. The folds read the
    search again after the trials were written (its sampler had moved on: a full suite under
    load read the trials' cost as 1.78e-7 kWh in the price tag by role against their own
    1.07e-7, the folds counting more than their trials)."""
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(
        LogisticRegression(max_iter=50), {"C": [10.0**k for k in range(-3, 3)]}, cv=3
    )
    # samples every 10 ms: the search's reading moves while its 6 trials and 18 folds are written
    track_search(search, X, y, ledger=db, study="one-reading", method="apportion",
                 sample_interval_s=0.01, flush_interval_s=0.05)  # fmt: skip
    runs = _runs(db, "one-reading")
    trials = [r for r in runs if r.role == "trial"]
    assert len(trials) == 6
    for trial in trials:
        folds = [r for r in runs if r.parent_id == trial.id]
        assert len(folds) == 3
        for cost in ("energy_kwh", "emissions_kg", "duration_s"):
            assert sum(getattr(f, cost) for f in folds) == pytest.approx(
                getattr(trial, cost), rel=1e-12
            ), cost
    (final,) = [r for r in runs if r.role == "final"]
    shares = [float(t.provenance["trial"].split()[1]) for t in [*trials, final]]
    reading = [t.energy_kwh / s for t, s in zip([*trials, final], shares, strict=True)]
    assert max(reading) == pytest.approx(min(reading), rel=1e-3)  # shares printed to 4 digits
    tag = price_tag(runs, metric="score")
    assert tag.by_role["trial"].energy_kwh == pytest.approx(
        sum(t.energy_kwh for t in trials), rel=1e-9
    )
