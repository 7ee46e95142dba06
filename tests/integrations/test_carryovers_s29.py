"""Session 29, helper H3: three integration defects carried over, as a user met them.

* Optuna, ``study.optimize(..., n_jobs=2)`` with one ``meters=`` object given to the callback:
  every trial's run started the same object, so a trial starting while another ran started it
  again under that one, whose next reading went backwards (its meter taken for failed, an
  estimate instead): a 0.6 s trial at 100 W recorded 31 J, and the price tag 59 J of the
  process's 100 J. Each run now reads the object from its own start.
* scikit-learn, several scorers and ``refit=False``: only the first scorer's direction was
  recorded, so ``greenprint report --metric mean_test_rmse`` (a negated error, higher is
  better) minimised it by its name and took the worst candidate for the best. Each scorer's
  direction is now recorded as such (``metric_directions``; see
  ``test_metric_directions_s29.py``), not as an objective of the search.
* Hugging Face Trainer under DDP (torchrun): ``trainer.evaluate()`` before ``trainer.train()``
  stayed a top-level part beside the training (counted, but not in the training's cost); it
  is now a part of the node's training run, as in one process. (Asserted in the torchrun test
  of ``test_transformers_fpo.py``: one framework start-up for both.)
* Lightning under DDP (``strategy="ddp"``): the same for ``trainer.validate(model)`` or
  ``trainer.test(model)`` before ``trainer.fit(model)``, and for a ``fast_dev_run`` fit before
  the real one: each stayed a top-level part beside the fit; an evaluation by another Trainer
  after the fit was linked to no fit. (Asserted in ``test_lightning_refit_ddp_s30.py``: one
  DDP launch for both sessions' Lightning scripts.)
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S, ConstantProcessPower

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

#: The constant power, in W, of the test meters.
WATTS = 100.0


def _covered_s(runs: list[gp.RunRecord]) -> float:
    """The time, in s, that the runs' spans cover together (overlaps once)."""
    covered, end = 0.0, -1.0
    for run in sorted(runs, key=lambda r: r.started_at):
        start = max(run.started_at, end)
        if run.ended_at is not None and run.ended_at > start:
            covered += run.ended_at - start
        end = max(end, run.ended_at or end)
    return covered


@pytest.mark.parametrize("kind", ["own object", "MeterSet"])
def test_one_meters_object_serves_trials_in_threads_each_from_its_own_start(
    tmp_path: Path, kind: str
) -> None:
    """``GreenprintCallback(meters=m)`` and ``n_jobs=2``, ``m`` a user's own meter object or a
    ``MeterSet``: each trial records the process's energy over its own span (``W`` x its time,
    its meter never taken for failed), the price tag the process's over the time the trials
    covered. Before: a trial's meter 'went backwards' when another trial started it again (own
    object: trial 0 recorded about half of its energy), or a MeterSet restarted under a trial
    read from the first trial's start on."""
    need_installed("optuna", "optuna")
    import optuna

    from greenprint.integrations.optuna import GreenprintCallback
    from greenprint.meters._set import guard_meters

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "g.db"
    meters: object = ConstantProcessPower(WATTS)  # one start time, not one per thread
    if kind == "MeterSet":
        meters = guard_meters(meters)  # a MeterSet, as detect_meters() gives

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.4 if trial.number % 2 == 0 else 0.2)
        return float(trial.number)

    cb = GreenprintCallback(ledger=db, meters=meters, **FAST)
    study = optuna.create_study(study_name="shared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the threads warning (test_optuna checks it)
        study.optimize(cb.track(objective), n_trials=4, n_jobs=2, callbacks=[cb])

    runs = gp.Ledger(db).runs(study="shared")
    assert sorted(r.status for r in runs) == ["finished"] * 4
    for run in runs:
        assert run.provenance["cpu"] == "test:constant-power", run.provenance["cpu"]
        measured_j = run.energy_kwh * 3.6e6
        assert measured_j == pytest.approx(WATTS * run.duration_s, abs=WATTS * READ_LAG_S)
    tag = price_tag(runs, metric="value")
    assert tag.total.energy_kwh * 3.6e6 == pytest.approx(
        WATTS * _covered_s(runs), abs=WATTS * READ_LAG_S
    )


def test_several_scorers_without_refit_are_each_ranked_as_scikit_learn_ranks_them(
    tmp_path: Path,
) -> None:
    """``scoring={"r2": "r2", "rmse": "neg_root_mean_squared_error"}, refit=False``: every
    scorer is higher-is-better, and the search ranked the candidates by each. Before, only
    ``mean_test_r2`` (the first) recorded its direction: ``--metric mean_test_rmse`` was
    minimised by its name and the worst candidate ranked first (``--mode max`` needed)."""
    need_installed("sklearn", "sklearn")
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
        scoring={"r2": "r2", "rmse": "neg_root_mean_squared_error"},
        refit=False,
    )
    sweep = track_search(search, X, y, ledger=db, study="no-refit", **FAST)
    runs = gp.Ledger(db).runs(study="no-refit")
    for metric in ("mean_test_rmse", "mean_test_r2", "score"):
        trials = study_trials(runs, metric=metric)
        assert trials.mode == "max", metric
        scored = {r.id: trials.score_of(r.id).score for r in trials.runs}
        best = max(scored, key=lambda run_id: scored[run_id])
        scorer = "r2" if metric == "score" else metric.removeprefix("mean_test_")
        first = list(search.cv_results_[f"rank_test_{scorer}"]).index(1)
        assert best == trial_id(sweep.id, first), metric
