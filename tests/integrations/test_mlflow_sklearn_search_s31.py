"""Session 31: the MLflow child runs of ``mlflow.sklearn.autolog`` carry greenprint's trial costs.

``mlflow.sklearn.autolog()`` makes a child run per candidate of a search (the best 5 by
default), built from ``cv_results_`` after the fit, with no cost; ``track_search`` writes a
greenprint trial per row of ``cv_results_`` with its cost. Nothing joined the two: the MLflow
runs a user browses had no energy or CO2-eq. ``gp_mlflow.log_search(search, sweep)`` now logs
the sweep into the parent run and each trial into its child run, the child matched to its row
by the fit times, scores and params autolog logged from that row.

The searches run in one script, as a user runs them (a subprocess: autolog patches
scikit-learn for the whole process), with MLflow's file store (no server); the test reads the
store and the ledger back.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _clean_env import clean_env
from greenprint import ConfigError
from integrations._frameworks import need_installed

need_installed("mlflow", "mlflow")
need_installed("sklearn", "sklearn")

SCRIPT = """
import json, os, sys

import mlflow
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, RandomizedSearchCV
from sklearn.svm import SVC

from greenprint.integrations import mlflow as gp_mlflow
from greenprint.integrations.sklearn import track_search

mlflow.set_tracking_uri("file:" + os.path.abspath("mlruns"))
mlflow.set_experiment("searches")
X, y = load_digits(return_X_y=True)
out = {}

# every candidate a child run, inside the user's own run
mlflow.sklearn.autolog(max_tuning_runs=None, log_models=False, log_datasets=False)
search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.01, 0.1, 1.0]}, cv=3)
with mlflow.start_run() as parent:
    sweep = track_search(search, X[:240], y[:240], ledger="greenprint.db", study="grid")
    out["grid"] = {"parent": parent.info.run_id, "sweep": sweep.id,
                   "logged": gp_mlflow.log_search(search, sweep)}

# a random search with no run around it: the run autolog makes of its own
search = RandomizedSearchCV(SVC(), {"C": [0.1, 1, 10, 100], "gamma": [1e-3, 1e-2]}, n_iter=4,
                            cv=3, random_state=0)
sweep = track_search(search, X[:240], y[:240], ledger="greenprint.db", study="random")
out["random"] = {"parent": mlflow.last_active_run().info.run_id, "sweep": sweep.id,
                 "logged": gp_mlflow.log_search(search, sweep)}

# a halving search: MLflow makes no child runs of it; the parent gets the sweep's cost
search = HalvingGridSearchCV(SVC(), {"C": [0.1, 1, 10, 100], "gamma": [1e-3, 1e-2]}, cv=3,
                             factor=2, random_state=0)
with mlflow.start_run() as parent:
    sweep = track_search(search, X[:240], y[:240], ledger="greenprint.db", study="halving")
    out["halving"] = {"parent": parent.info.run_id, "sweep": sweep.id,
                      "logged": gp_mlflow.log_search(search, sweep)}

# autolog's default: the best 5 candidates of 7 get a child run
mlflow.sklearn.autolog(log_models=False, log_datasets=False)
search = GridSearchCV(LogisticRegression(max_iter=100),
                      {"C": [1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0]}, cv=2)
with mlflow.start_run() as parent:
    sweep = track_search(search, X[:240], y[:240], ledger="greenprint.db", study="top5")
    out["top5"] = {"parent": parent.info.run_id, "sweep": sweep.id,
                   "logged": gp_mlflow.log_search(search, sweep)}
print(json.dumps(out))
"""


def _file_store_env() -> dict[str, str]:
    return {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The script's folder and what it printed: each search's parent run, sweep and logged."""
    home = tmp_path_factory.mktemp("mlflow-sklearn")
    (home / "searches.py").write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "searches.py"],
        cwd=home,
        env={**clean_env(), **_file_store_env()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "match no candidate" not in done.stderr  # every child run matched its row
    return home, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def store(home: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An ``MlflowClient`` of the script's file store."""
    for key, value in _file_store_env().items():
        monkeypatch.setenv(key, value)
    import mlflow

    return mlflow.MlflowClient(f"file:{home[0] / 'mlruns'}")


def _children(client: Any, parent: str) -> list[Any]:
    experiment = client.get_run(parent).info.experiment_id
    return list(
        client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    )


@pytest.mark.parametrize(
    ("search", "children"), [("grid", 3), ("random", 4), ("top5", 5), ("halving", 0)]
)
def test_each_child_run_carries_the_cost_of_its_candidate(
    home: tuple[Path, dict[str, Any]], store: Any, search: str, children: int
) -> None:
    """Each child run: the greenprint trial of its row (the same params), with its cost; the
    parent run the sweep's (a halving search: the parent only, MLflow makes no child runs)."""
    import greenprint as gp

    folder, out = home
    got = out[search]
    found = _children(store, got["parent"])
    assert len(found) == children
    assert len(got["logged"]) == children
    with gp.Ledger(folder / "greenprint.db") as ledger:
        for child in found:
            tags, metrics, params = child.data.tags, child.data.metrics, child.data.params
            assert got["logged"][child.info.run_id] == tags["greenprint.run_id"]
            record = ledger.run(tags["greenprint.run_id"])
            assert record.study == search
            assert record.role == "trial"
            for key, value in record.params.items():
                assert params[key] == str(value)
            assert metrics["greenprint/energy_kwh"] == pytest.approx(record.energy_kwh)
            assert metrics["greenprint/emissions_kg"] == pytest.approx(record.emissions_kg)
            assert record.metric("mean_test_score") == pytest.approx(metrics["mean_test_score"])
            assert tags["greenprint.status"] == record.status
            assert tags["greenprint.role"] == record.role
        sweep = ledger.run(got["sweep"])
        trials = [r for r in ledger.runs(study=search) if r.role == "trial"]
    parent = store.get_run(got["parent"]).data
    assert parent.tags["greenprint.run_id"] == sweep.id
    assert parent.tags["greenprint.role"] == "sweep"
    assert parent.metrics["greenprint/energy_kwh"] == pytest.approx(sweep.energy_kwh)
    # the candidates' costs are the sweep's, less its own work (a trial holds its parts')
    assert sum(t.energy_kwh for t in trials) <= sweep.energy_kwh * (1 + 1e-9)


def test_a_candidate_without_a_child_run_keeps_its_cost_in_the_ledger(
    home: tuple[Path, dict[str, Any]],
) -> None:
    """autolog's default ``max_tuning_runs=5``: the two worst of 7 have no child run."""
    import greenprint as gp

    folder, out = home
    with gp.Ledger(folder / "greenprint.db") as ledger:
        trials = [r for r in ledger.runs(study="top5") if r.role == "trial"]
    worst = sorted(trials, key=lambda r: r.metric("rank_test_score") or 0.0)[5:]
    assert len(trials) == 7
    assert {r.id for r in worst}.isdisjoint(out["top5"]["logged"].values())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_search_fitted_again_gets_no_child_run_of_the_earlier_fit(
    home: tuple[Path, dict[str, Any]], store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Another fit of the same grid matches no child run: its fit times differ; none is
    mislabeled, and a warning says which child runs were left alone."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    import greenprint as gp
    from greenprint.integrations import mlflow as gp_mlflow

    folder, out = home
    X, y = load_digits(return_X_y=True)
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.01, 0.1, 1.0]}, cv=3)
    search.fit(X[:240], y[:240])
    db = folder / "greenprint.db"
    with gp.Ledger(db) as ledger:
        sweep = ledger.run(out["grid"]["sweep"])
    with caplog.at_level(logging.WARNING, logger="greenprint.integrations.mlflow"):
        logged = gp_mlflow.log_search(
            search, sweep, run_id=out["grid"]["parent"], ledger=db, client=store
        )
    assert logged == {}
    assert "3 MLflow child runs of run" in caplog.text
    assert "match no candidate of the search" in caplog.text


def test_bad_input_is_a_config_error(home: tuple[Path, dict[str, Any]], store: Any) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    import greenprint as gp
    from greenprint.integrations import mlflow as gp_mlflow

    folder, out = home
    parent = out["grid"]["parent"]
    unfitted = GridSearchCV(LogisticRegression(), {"C": [1.0]})
    db = folder / "greenprint.db"
    with gp.Ledger(db) as ledger:
        sweep = ledger.run(out["grid"]["sweep"])
        trial = ledger.run(out["grid"]["logged"][next(iter(out["grid"]["logged"]))])
        other = ledger.run(out["top5"]["sweep"])
    with pytest.raises(ConfigError, match="not GridSearchCV that has not been fitted"):
        gp_mlflow.log_search(unfitted, sweep, run_id=parent, ledger=db, client=store)
    with pytest.raises(ConfigError, match="fitted scikit-learn search.*not LogisticRegression"):
        gp_mlflow.log_search(LogisticRegression(), sweep, run_id=parent, ledger=db, client=store)
    fitted = GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0, 3.0]}, cv=2)
    fitted.fit([[0.0], [1.0], [0.1], [0.9]], [0, 1, 0, 1])
    with pytest.raises(ConfigError, match=r"the sweep run track_search returned.*'trial'"):
        gp_mlflow.log_search(fitted, trial, run_id=parent, ledger=db, client=store)
    with pytest.raises(ConfigError, match="has 7 candidates and this search's cv_results_ 3"):
        gp_mlflow.log_search(fitted, other, run_id=parent, ledger=db, client=store)
    with pytest.raises(ConfigError, match="no MLflow run 'nope'"):
        gp_mlflow.log_search(fitted, sweep, run_id="nope", ledger=db, client=store)
    with pytest.raises(ConfigError, match="no MLflow run began while the search ran"):
        gp_mlflow.log_search(fitted, sweep, ledger=db, client=store)  # no run_id, none active


def test_no_run_given_reads_no_other_tracking_store_than_the_clients(
    home: tuple[Path, dict[str, Any]], store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: with no run_id and no active run, ``log_search`` asked ``mlflow.last_active_run()``
    for autolog's run, which reads the fluent API's store, not the client's: where the process
    had ended a run before (here in another store) and the fluent API was left at its default,
    MLflow made ``./mlflow.db`` in the user's working directory (the suite left one in the
    checkout). Now that store is read only when it is the client's; the refusal names both."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    import greenprint as gp
    from greenprint.integrations import mlflow as gp_mlflow

    folder, out = home
    fitted = GridSearchCV(LogisticRegression(), {"C": [1.0, 2.0, 3.0]}, cv=2)
    fitted.fit([[0.0], [1.0], [0.1], [0.9]], [0, 1, 0, 1])
    with gp.Ledger(folder / "greenprint.db") as ledger:
        sweep = ledger.run(out["grid"]["sweep"])
    empty = tmp_path / "work"
    empty.mkdir()
    monkeypatch.chdir(empty)
    before = tracking_utils._tracking_uri  # the fluent API's setting, put back after
    try:
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
        # the process's last active run, in another store (an experiment of its own: one an
        # earlier test set active is in its own store)
        with mlflow.start_run(experiment_id=mlflow.create_experiment("other")):
            pass
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # MLflow's default: ./mlflow.db
        with pytest.raises(ConfigError, match="in the client's tracking store file:") as refused:
            gp_mlflow.log_search(fitted, sweep, ledger=folder / "greenprint.db", client=store)
    finally:
        mlflow.set_tracking_uri(before)
    assert "autolog's runs go to sqlite:///" in str(refused.value)
    assert list(empty.iterdir()) == []  # no store made in the working directory
