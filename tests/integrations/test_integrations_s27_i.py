"""Session 27, helper I: scikit-learn and Optuna studies as a new user builds them.

* A fit that failed under a numeric ``error_score`` was not told apart from one that worked:
  with ``error_score=0`` (a score of 0 for a fit that raised) the candidate and its folds read
  ``finished``; when every fit failed (scikit-learn raises "All the N fits failed") each fold
  read ``finished`` and each candidate "the search failed before this candidate was scored";
  with ``np.nan`` the fit's error was lost ("the fit failed (error_score)"). Each fold run now
  ends ``failed`` with its fit's error, and its candidate names it. A fold whose fit worked but
  whose score is undefined (``roc_auc`` on a test fold of one class) said 'the fit failed'.
* A scorer named for an error (``scoring={"rmse": "neg_root_mean_squared_error"}``) is
  negated by scikit-learn, higher is better; ``greenprint report --metric mean_test_rmse``
  ranked it lowest first (by its name), the worst candidate the best. The trials now record
  that their search maximised ``mean_test_<refit>``.
* In a job of several tasks (``srun -n 2 python search.py``) local rank 0's sweep, folds and
  refit each metered the whole machine: every fold the other worker's fold and the other
  task's search with it. Each now measures its own process, as outside a job.
* An in-memory ledger (``gp.Ledger(":memory:")``) with ``n_jobs=2``: the folds measured in
  joblib's worker processes were written to ledgers of their own, lost; the search is now
  measured whole and shared out to its fits, with a warning that says why.
* Optuna: the names a study gives its objectives (``study.set_metric_names``) name the runs'
  metrics (they were ``values_0``, ``values_1``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from integrations._frameworks import need, need_installed, one_blas_thread

need_installed("sklearn", "sklearn")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """scikit-learn imported when these tests run, not at collection; fits on one BLAS thread."""
    with one_blas_thread():
        yield


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:120], y[:120]


def _by_role(db: Path, study: str, role: str) -> list[gp.RunRecord]:
    return [r for r in gp.Ledger(db).runs(study=study) if r.role == role]


def test_a_fit_that_failed_under_a_numeric_error_score_is_a_failed_fold_with_its_error(
    tmp_path: Path, digits
) -> None:
    """``error_score=0``: the tree refuses ``max_depth=0`` at fit time, and scikit-learn
    scores that candidate 0 (its ``cv_results_``). Before: that candidate and its folds read
    ``finished``, scored 0. Now its two folds are ``failed`` with the fit's error, the
    candidate ``failed`` naming it; the other candidate is ``finished``, scored as
    scikit-learn scored it."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [0, 3]}, cv=2, error_score=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's FitFailedWarning
        track_search(search, X, y, ledger=db, study="zero", **FAST)
    trials = {r.params["max_depth"]: r for r in _by_role(db, "zero", "trial")}
    results = search.cv_results_
    assert trials[3].status == "finished"
    assert trials[3].metric("score") == pytest.approx(results["mean_test_score"][1])
    bad = trials[0]
    assert bad.status == "failed" and "max_depth" in (bad.error or "")
    assert bad.error.startswith("a fold failed to fit (error_score): InvalidParameterError")
    folds = [r for r in _by_role(db, "zero", "part") if r.parent_id == bad.id]
    assert len(folds) == 2
    for fold in folds:
        assert fold.status == "failed"
        assert (fold.error or "").startswith("InvalidParameterError: The 'max_depth' parameter")
        assert fold.metric("score") == 0.0  # scikit-learn's error_score, as cv_results_ has it


def test_when_every_fit_fails_the_folds_and_candidates_fail_with_the_fits_error(
    tmp_path: Path, digits
) -> None:
    """Every fit refused, in joblib's worker processes (``n_jobs=2``): scikit-learn raises
    "All the 4 fits failed". Before: the four fold runs read ``finished`` and each candidate
    'the search failed before this candidate was scored'. Now each fold is ``failed`` with its
    fit's error (read in the worker), each candidate with its folds' error; the sweep is
    ``failed`` with scikit-learn's."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(DecisionTreeClassifier(), {"max_depth": [0, -1]}, cv=2, n_jobs=2)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="All the 4 fits failed"):
        warnings.simplefilter("ignore")
        track_search(search, X, y, ledger=db, study="all-failed", **FAST)
    (sweep,) = _by_role(db, "all-failed", "sweep")
    assert sweep.status == "failed" and "All the 4 fits failed" in (sweep.error or "")
    folds = _by_role(db, "all-failed", "part")
    assert len(folds) == 4
    assert {f.status for f in folds} == {"failed"}
    assert all("'max_depth' parameter" in (f.error or "") for f in folds)
    trials = _by_role(db, "all-failed", "trial")
    assert sorted(t.params["max_depth"] for t in trials) == [-1, 0]
    for trial in trials:
        assert trial.status == "failed"
        assert "'max_depth' parameter" in (trial.error or "")
        assert f"Got {trial.params['max_depth']} instead" in (trial.error or "")


def test_a_fold_whose_score_is_undefined_is_not_said_to_have_failed_to_fit(tmp_path: Path) -> None:
    """``scoring="roc_auc"`` and a last test fold of one class: the fits work, and that fold's
    AUC is undefined (NaN; scikit-learn warns why), so is each candidate's mean. Before: the
    fold read 'the fit failed (error_score)' and its candidate 'a fold failed to fit'. Now the
    fold says its score is NaN though its fit did not raise, and the candidate points to it;
    both stay ``failed`` (no score), the other folds ``finished``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, KFold

    from greenprint.integrations.sklearn import track_search

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.r_[np.tile([0, 1], 20), np.zeros(20, dtype=int)]  # the last third: one class
    db = tmp_path / "g.db"
    search = GridSearchCV(LogisticRegression(), {"C": [1.0]}, scoring="roc_auc", cv=KFold(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's: AUC undefined, non-finite scores
        track_search(search, X, y, ledger=db, study="auc", **FAST)
    assert np.isnan(search.cv_results_["split2_test_score"][0])
    (trial,) = _by_role(db, "auc", "trial")
    assert trial.status == "failed"
    assert trial.error.startswith("a fold has no score: its score is NaN though its fit did not")
    folds = {r.params["fold"]: r for r in _by_role(db, "auc", "part")}
    assert [folds[k].status for k in range(3)] == ["finished", "finished", "failed"]
    assert folds[2].error.startswith("no score: its score is NaN though its fit did not raise")


def test_a_scorer_named_for_an_error_is_ranked_as_scikit_learn_ranks_it(tmp_path: Path) -> None:
    """``scoring={"rmse": "neg_root_mean_squared_error", "r2": "r2"}, refit="rmse"``:
    scikit-learn negates the error, and its best candidate has the highest
    ``mean_test_rmse``. Before: ranked by ``mean_test_rmse`` (the report lists it beside
    ``score``), greenprint minimised it by its name and took the worst candidate for the
    best. Now the trials record that their search maximised it: the best is scikit-learn's."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV

    from greenprint.analysis import study_trials
    from greenprint.integrations.sklearn import track_search, trial_id

    X, y = load_diabetes(return_X_y=True)
    db = tmp_path / "g.db"
    search = GridSearchCV(
        Ridge(),
        {"alpha": [0.01, 1.0, 100.0]},
        cv=2,
        scoring={"rmse": "neg_root_mean_squared_error", "r2": "r2"},
        refit="rmse",
    )
    sweep = track_search(search, X, y, ledger=db, study="errors", **FAST)
    runs = gp.Ledger(db).runs(study="errors")
    trials = study_trials(runs, metric="mean_test_rmse")
    assert trials.mode == "max"
    assert "maximised, as the search that ran the trials maximised it" in (trials.mode_note or "")
    scored = {r.id: trials.score_of(r.id).score for r in trials.runs}
    best = max(scored, key=lambda run_id: scored[run_id])
    assert best == trial_id(sweep.id, int(search.best_index_))
    assert scored[best] == pytest.approx(search.best_score_)


def test_in_a_job_of_several_tasks_each_run_of_a_search_measures_its_own_process(
    tmp_path: Path, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srun -n 2 python search.py``, task 0 (local rank 0, the node its job's): before, its
    sweep, folds and refit each metered the whole machine (``scope="machine"``), every fold
    the other task's search with it. Now each measures its own process (the sweep with its
    worker processes), as outside a job; ``scope="machine"`` still meters the machine."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    for key, value in {
        "SLURM_JOB_ID": "4242",
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "GREENPRINT_SHARED_NODE": "0",
    }.items():
        monkeypatch.setenv(key, value)
    X, y = digits
    db = tmp_path / "g.db"
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2)
    track_search(search, X, y, ledger=db, study="task0", **FAST)
    runs = gp.Ledger(db).runs(study="task0")
    assert sorted(r.role for r in runs) == ["final", *["part"] * 4, "sweep", "trial", "trial"]
    assert {(r.provenance.get("scope"), bool(r.node_meter)) for r in runs} == {("process", False)}
    track_search(search, X, y, ledger=db, study="machine", scope="machine", **FAST)
    (sweep,) = _by_role(db, "machine", "sweep")
    assert sweep.provenance.get("scope") == "machine"


def test_an_in_memory_ledger_with_worker_processes_shares_out_the_measured_search(
    digits, caplog: pytest.LogCaptureFixture
) -> None:
    """``gp.Ledger(":memory:")`` and ``n_jobs=2``: before, each fold was measured in a joblib
    worker and written to an in-memory ledger of that worker's own, lost, and the trials fell
    back to shares of the search with a warning that the search 'reported no fold fits to
    its callbacks'. Now the search is measured whole and shared out from the start (its
    ``method`` param says ``apportion``), with a warning that says why; asked for
    ``method="callbacks"``, a ConfigError before anything is fitted or written."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint._exceptions import ConfigError
    from greenprint.integrations.sklearn import track_search

    X, y = digits
    ledger = gp.Ledger(":memory:")
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [2, 3]}, cv=2, n_jobs=2
    )
    with pytest.raises(ConfigError, match="cannot write to an in-memory ledger"):
        track_search(search, X, y, ledger=ledger, study="memory", method="callbacks", **FAST)
    assert ledger.studies() == []  # nothing written
    with caplog.at_level("WARNING", logger="greenprint"):
        sweep = track_search(search, X, y, ledger=ledger, study="memory", **FAST)
    assert "reported no fold fits" not in caplog.text
    assert "cannot write to an in-memory ledger" in caplog.text
    runs = ledger.runs(study="memory")
    assert sweep.params["method"] == "apportion"
    trials = [r for r in runs if r.role == "trial"]
    assert len(trials) == 2 and all(r.provenance["trial"].startswith("apportioned") for r in trials)
    assert sorted(r.role for r in runs) == ["final", *["part"] * 4, "sweep", "trial", "trial"]
    ledger.close()


def test_the_names_an_optuna_study_gives_its_objectives_name_the_metrics(tmp_path: Path) -> None:
    """``study.set_metric_names(["accuracy", "latency_ms"])``, as Optuna's dashboard and
    ``trials_dataframe`` show them. Before: the runs logged ``values_0`` and ``values_1``.
    Now ``accuracy`` and ``latency_ms``, with the study's directions; names given to the
    callback still win."""
    optuna = need("optuna", "optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / "g.db"

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    study = optuna.create_study(study_name="named", directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is experimental
        study.set_metric_names(["accuracy", "latency_ms"])
    cb = GreenprintCallback(ledger=db)
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    runs = {r.name: r for r in gp.Ledger(db).runs(study="named")}
    for t in study.trials:
        run = runs[f"trial-{t.number}"]
        assert run.metric("accuracy") == t.values[0]
        assert run.metric("latency_ms") == t.values[1]
        assert run.provenance["objectives"] == "accuracy: maximize; latency_ms: minimize"
    given = GreenprintCallback(ledger=db, study="given", metric_names=["acc", "ms"])
    study.optimize(given.track(objective), n_trials=1, callbacks=[given])
    (run,) = gp.Ledger(db).runs(study="given")
    assert run.metric("acc") == study.trials[-1].values[0]
