"""Session 23's probe of the integrations as their users write studies (helper L's findings).

Each test builds its ledger the way a user's script does, through the integration, and asserts
what the user reads back from the ledger and the report:

* Lightning's ``Trainer(fast_dev_run=True)``, the "unit test" of the loops that a script runs
  before the real fit (or that a user runs once with a ``--fast-dev-run`` flag), was recorded
  as a trial of its own: a study of two configurations read as 4 trials, each dev run scored
  by the ``val_loss`` of one batch (it could be the study's best trial).
* A scikit-learn search stopped by a fit that raises (``error_score="raise"``) or by Ctrl-C
  wrote its candidates with no params: the configuration that broke the estimator was not
  named; every candidate begun read ``failed`` ('3 trials (3 failed)' where one configuration
  raised); a fold that joblib killed in another worker read ``lost``; a halving search's
  candidate was a trial per iteration begun.
* ``mlflow.pytorch.autolog()`` of a Lightning fit left MLflow's ``greenprint/energy_kwh`` at
  the last epoch end's figure (78-85% of the run's energy).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from greenprint.report import build_report
from integrations._frameworks import installed, one_thread

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _need(module: str, extra: str) -> None:
    from integrations._frameworks import _missing

    if not installed(module):
        _missing(module, extra)


def _root_energy(runs: list[gp.RunRecord]) -> float:
    """The energy the price tag sums: root runs, and parts recorded outside their parent's."""
    return sum(r.energy_kwh or 0.0 for r in runs if r.parent_id is None or r.contained is False)


# ---------------------------------------------------------------------- Lightning
@pytest.fixture(scope="module")
def lightning() -> Iterator[dict[str, object]]:
    _need("lightning", "lightning")
    _need("torch", "torch")
    from integrations._lightning_kit import lightning_kit  # tests/integrations/_lightning_kit.py

    with one_thread():
        yield lightning_kit()


def test_a_fast_dev_run_before_each_fit_is_no_trial(tmp_path: Path, lightning) -> None:
    """A loop of configurations, each smoke-tested with fast_dev_run and then fitted."""
    db = tmp_path / "gp.db"
    Regressor, Callback, trainer, loader = (
        lightning["Regressor"],
        lightning["Callback"],
        lightning["trainer"],
        lightning["loader"],
    )
    for lr in (0.1, 0.01):  # new objects each time, as a script run twice would make
        dev = Callback(f"lr{lr}", study="dev", ledger=db, **FAST)
        trainer(dev, fast_dev_run=True).fit(Regressor(lr), loader(), loader())
        real = Callback(f"lr{lr}", study="dev", ledger=db, **FAST)
        trainer(real, max_epochs=2).fit(Regressor(lr), loader(), loader())
    runs = gp.Ledger(db).runs(study="dev")
    dev_runs = [r for r in runs if r.params.get("trainer.fast_dev_run")]
    assert sorted(r.name for r in dev_runs) == ["lr0.01-fast_dev_run", "lr0.1-fast_dev_run"]
    assert {r.role for r in dev_runs} == {"part"}
    assert all(r.status == "finished" and (r.energy_kwh or 0) > 0 for r in dev_runs)

    report = build_report(db, "dev")
    total = report.price_tag.total
    assert total.trials == 2 and total.runs == 4  # was 4 trials: the dev runs among them
    assert total.energy_kwh == pytest.approx(_root_energy(runs), rel=1e-9)  # counted, once
    assert report.metric == "val_loss"
    assert report.price_tag.final is not None
    assert "fast_dev_run" not in report.price_tag.final.name


def test_a_fast_dev_run_of_the_module_then_fitted_is_a_part_of_that_fit(
    tmp_path: Path, lightning
) -> None:
    """One callback (given role='final'), one module: smoke test, then the real fit."""
    db = tmp_path / "gp.db"
    Regressor, Callback, trainer, loader = (
        lightning["Regressor"],
        lightning["Callback"],
        lightning["trainer"],
        lightning["loader"],
    )
    model = Regressor(0.05)
    cb = Callback("model", study="one", ledger=db, role="final", **FAST)
    trainer(cb, fast_dev_run=2).fit(model, loader(), loader())
    dev_id = cb.last_run_id
    trainer(cb, max_epochs=2).fit(model, loader(), loader())
    ledger = gp.Ledger(db)
    dev, fit = ledger.run(dev_id), ledger.run(cb.last_run_id)
    assert dev.name == "model-fast_dev_run" and dev.params["trainer.fast_dev_run"] == 2
    # never the final model (the callback's role is the real fit's), a part of that fit
    assert (dev.role, dev.parent_id, dev.contained) == ("part", fit.id, False)
    assert fit.role == "final" and fit.parent_id is None
    runs = ledger.runs(study="one")
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(
        (fit.energy_kwh or 0) + (dev.energy_kwh or 0), rel=1e-9
    )
    assert tag.total.energy_kwh == pytest.approx(_root_energy(runs), rel=1e-9)


# ---------------------------------------------------------------------- scikit-learn
def test_a_search_stopped_by_a_raising_fit_names_each_candidates_params(tmp_path: Path) -> None:
    """GridSearchCV(n_jobs=2, error_score="raise"): which configuration broke the estimator?"""
    _need("sklearn", "sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    X, y = load_digits(return_X_y=True)
    db = tmp_path / "gp.db"
    # max_depth=0 is refused by the tree at fit time: the search stops there
    search = GridSearchCV(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [3, 0, 5]},
        cv=2,
        n_jobs=2,
        error_score="raise",
    )
    with pytest.raises(ValueError, match="max_depth"):
        track_search(search, X[:200], y[:200], ledger=db, study="raised", **FAST)
    runs = gp.Ledger(db).runs(study="raised")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.status == "failed"
    trials = [r for r in runs if r.role == "trial"]
    assert trials and all("max_depth" in r.params for r in trials)  # were {}
    (broken,) = [r for r in trials if r.params["max_depth"] == 0]
    assert broken.status == "failed" and "max_depth" in (broken.error or "")
    # the others were only stopped by it: one configuration failed, not every one begun
    for stopped in (r for r in trials if r is not broken):
        assert stopped.status == "interrupted"  # was failed
        assert "in another candidate's fit" in (stopped.error or "")
    # a fold that the other worker was fitting when joblib killed it is not left 'lost'
    assert "lost" not in {r.status for r in runs}
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(sweep.energy_kwh, rel=1e-9)
    assert np.isfinite(tag.total.energy_kwh) and tag.total.trials == len(trials)


_CTRL_C_SEARCH = """
import sys, time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV

from greenprint.integrations.sklearn import track_search


class Slow(BaseEstimator, ClassifierMixin):
    def __init__(self, s=0.1):
        self.s = s

    def fit(self, X, y):
        Path(sys.argv[1], f"fit-{time.time_ns()}").touch()  # a fit has begun
        time.sleep(self.s)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


X, y = np.arange(80.0).reshape(40, 2), np.arange(40) % 2
search = GridSearchCV(Slow(), {"s": [20.0, 21.0, 22.0]}, cv=2, n_jobs=2)
try:
    track_search(search, X, y, ledger=sys.argv[2], study="ctrl-c",
                 sample_interval_s=0.05, flush_interval_s=0.1)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_search_stopped_by_ctrl_c_keeps_params_and_its_killed_folds(tmp_path: Path) -> None:
    """Ctrl-C in a GridSearchCV(n_jobs=2) whose workers are fitting: joblib kills them."""
    _need("sklearn", "sklearn")

    script, marks, db = tmp_path / "search.py", tmp_path / "marks", tmp_path / "gp.db"
    script.write_text(_CTRL_C_SEARCH)
    marks.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the test's own (isolated) configuration
    child = subprocess.Popen(
        [sys.executable, str(script), str(marks), str(db)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180  # joblib's workers start in ~8 s on a quiet box
    while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:  # both workers fit
        time.sleep(0.1)
    time.sleep(0.5)  # their fold runs started
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    assert "interrupted" in out
    runs = gp.Ledger(db).runs(study="ctrl-c")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert (sweep.status, sweep.error) == ("interrupted", "KeyboardInterrupt")
    trials = [r for r in runs if r.role == "trial"]
    assert trials and {r.status for r in trials} == {"interrupted"}
    assert all(r.params.get("s") in (20.0, 21.0, 22.0) for r in trials)  # were {}
    folds = [r for r in runs if r.role == "part"]
    # the two folds the workers were fitting: interrupted when joblib killed them (were lost)
    assert len(folds) == 2 and {r.status for r in folds} == {"interrupted"}
    assert all("worker process was ended" in (r.error or "") for r in folds)
    assert price_tag(runs).total.energy_kwh == pytest.approx(sweep.energy_kwh, rel=1e-9)


def test_a_halving_search_stopped_by_a_raising_fit_has_one_trial_per_candidate(
    tmp_path: Path,
) -> None:
    """HalvingGridSearchCV(error_score="raise"), one candidate raising on more resources.

    Before: each row begun was a trial of its own (5 trials for 4 candidates: the raising
    candidate's first iteration an 'interrupted' trial beside its failed one), and the two
    candidates the search had eliminated read as stopped, not pruned.
    """
    _need("sklearn", "sklearn")
    from sklearn.datasets import load_digits
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    class Diverges(DecisionTreeClassifier):
        """A tree that refuses max_depth 9 on more than 60 samples (a diverging config)."""

        def fit(self, X, y, sample_weight=None, check_input=True):
            if self.max_depth == 9 and len(X) > 60:
                raise ValueError(f"max_depth=9 diverged on {len(X)} samples")
            return super().fit(X, y, sample_weight=sample_weight, check_input=check_input)

    X, y = load_digits(return_X_y=True)
    db = tmp_path / "gp.db"
    search = HalvingGridSearchCV(
        Diverges(random_state=0),
        {"max_depth": [1, 2, 9, 12]},
        cv=2,
        factor=2,
        min_resources=100,
        random_state=0,
        error_score="raise",
    )
    with pytest.raises(ValueError, match="diverged"):
        track_search(search, X[:400], y[:400], ledger=db, study="halving-raised", **FAST)
    runs = gp.Ledger(db).runs(study="halving-raised")
    listed = [r for r in runs if r.role == "trial"]
    trials = {r.params["max_depth"]: r for r in listed}
    assert len(listed) == 4 and sorted(trials) == [1, 2, 9, 12]  # one per candidate (were 5)
    assert trials[9].status == "failed" and "diverged" in (trials[9].error or "")
    assert trials[9].params["iter"] == 1  # its row of the iteration it reached
    (first,) = [r for r in runs if r.parent_id == trials[9].id and "iter" in r.params]
    assert (first.role, first.params["iter"], first.status) == ("part", 0, "finished")
    # the search had eliminated two candidates after iteration 0: pruned, as in a whole fit
    statuses = sorted(r.status for d, r in trials.items() if d != 9)
    assert statuses == ["interrupted", "pruned", "pruned"]
    tag = build_report(db, "halving-raised").price_tag
    assert tag.total.trials == 4
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert tag.total.energy_kwh == pytest.approx(sweep.energy_kwh, rel=1e-9)


# ---------------------------------------------------------------------- MLflow autolog
def test_mlflow_autolog_of_a_lightning_fit_ends_at_the_runs_energy(
    tmp_path: Path, lightning, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mlflow.pytorch.autolog()`` with the Lightning callback (MLflow is no logger then).

    MLflow's runs table showed the last epoch end's ``greenprint/energy_kwh`` (the last
    validation left out: 85% of a 3-epoch fit's energy); now its latest value is the run's.

    The fit runs in this process, whose Lightning the module's other tests imported (a script
    imported it again: about 8 s of CPU), into MLflow's file store (an SQLite store creates its
    tables first: 2.5 s of CPU); autolog's patches are reverted after, and MLflow's tracking
    URI and experiment are the test's alone.
    """
    _need("mlflow", "mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # MLflow's usage reports: off
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    import mlflow
    import mlflow.pytorch

    Regressor, Callback, trainer, loader = (
        lightning["Regressor"],
        lightning["Callback"],
        lightning["trainer"],
        lightning["loader"],
    )
    # MLflow's tracking URI and active experiment are the process's: the test's own here, put
    # back after (set_tracking_uri writes the URI into the environment too)
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking

    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "_tracking_uri", None)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("autolog").experiment_id
    mlflow.pytorch.autolog(log_models=False, checkpoint=False)
    try:
        cb = Callback("autologged", study="autolog", ledger=tmp_path / "gp.db", **FAST)
        trainer(cb, max_epochs=3).fit(Regressor(), loader(), lightning["held_out"]())
    finally:
        mlflow.pytorch.autolog(disable=True)  # Lightning's Trainer unpatched
    client = mlflow.MlflowClient(uri)
    (found,) = client.search_runs([experiment])
    history = client.get_metric_history(found.info.run_id, "greenprint/energy_kwh")
    latest = found.data.metrics["greenprint/energy_kwh"]
    energy = gp.Ledger(tmp_path / "gp.db").run(cb.last_run_id).energy_kwh
    assert latest == pytest.approx(energy, rel=1e-9)  # was the last epoch's
    # the epochs MLflow logged, then the totals after them
    assert [m.step for m in history] == [0, 1, 2, 3]
