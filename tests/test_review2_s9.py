"""A second review of session 9's later changes: each defect found, reproduced first.

1. A Hugging Face Trainer whose logs hold an array (``trainer.log({"per_class_f1":
   np.array([0.5, 0.7])})``, as a custom callback or a ``compute_metrics`` logged by hand
   does; Hugging Face's own TensorBoard and W&B callbacks skip such values) crashed the
   training from greenprint's ``on_log``: ``metric_values`` called ``.item()`` on the array
   (``ValueError: can only convert an array of size 1 to a Python scalar``). Greenprint's
   bookkeeping never raises into a training: an entry that is not one number is left out.
2. ``greenprint report --study S`` without ``--out`` in a ledger of several studies writes
   ``./greenprint-report-SLUG`` (bd2583f); two studies whose names make the same slug
   (``cifar sweep`` and ``cifar/sweep``, or ``Sweep`` and ``sweep`` on a case-insensitive
   file system) shared one folder, the second's report replacing the first's: the very thing
   the per-study folder was made to prevent. Such a study's folder now ends in a short hash
   of its name.
3. A successive-halving search on an estimator's parameter (``resource="n_estimators"``):
   scikit-learn puts the resource's value of each iteration into the row's params (copies),
   so rows of one candidate never matched: 4 candidates over 3 iterations read 7 trials, the
   earlier iterations as trials of their own, ``pruned``. The rows are linked without the
   resource now (older than session 9; found checking ad180c4's ``dataset_size``).
4. Ray Tune results and configs in NumPy types: a trial reporting ``np.float32`` (a score
   computed on float32 data) or ``np.int64`` was left out of the run's metrics, since only
   ``int`` and ``float`` were taken (``np.float64`` is a float, ``np.float32`` is not): the
   trial read as unscored; a config value from ``np.arange`` left out of its params. Any real
   number is taken now (never a bool; text is skipped, as before). (Tested in
   ``tests/integrations/test_ray.py``, on its Ray cluster.)
5. ``integrations.mlflow.log_report`` of two studies into one MLflow run wrote both to
   ``greenprint/report/``: the second replaced the first (as ``greenprint report``'s default
   folder did before bd2583f). From a ledger of several studies the default artifact path is
   ``greenprint/report-STUDY`` now, the slug shared with the CLI (``study_slug``).
6. ``run.log(count=10**400)`` raised Python's ``OverflowError`` from ``float()`` (3a93817 reads
   every value with it), not a ``ConfigError`` naming the metric.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.cli import main

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


# 1. a framework's logs holding an array --------------------------------------------------------


def test_hf_trainer_log_of_an_array_does_not_stop_the_training(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    np = pytest.importorskip("numpy")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    class PerClass(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                trainer.log({"per_class_f1": np.array([0.5, 0.7]), "note": "warm", "x": None})

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=4,
        per_device_train_batch_size=8,
        logging_steps=2,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(), callbacks=[PerClass()])
    db = tmp_path / "gp.db"
    GreenprintCallback("bert", study="hf", ledger=db, **FAST).attach(trainer)
    trainer.train()  # raised ValueError from greenprint's on_log

    (record,) = gp.Ledger(db).runs(study="hf")
    assert record.status == "finished"
    names = {p.name for p in record.metrics}
    assert "loss" in names
    assert not {"per_class_f1", "note", "x"} & names  # not one number: left out


def test_metric_values_leaves_out_what_is_not_one_number() -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from greenprint.integrations._dl import metric_values

    metrics = {
        "array": np.array([0.5, 0.7]),
        "tensor": torch.tensor([0.5, 0.7]),
        "meta": torch.empty((), device="meta"),
        "text": "0.5",
        "none": None,
        "one": np.array([0.25]),
        "loss": torch.tensor(0.5, requires_grad=True),
        "int": np.int64(3),
    }
    assert metric_values(metrics) == {"one": 0.25, "loss": 0.5, "int": 3.0}


# 2. the report's default folder of studies whose names make the same slug ----------------------


def _study(db: str, study: str) -> None:
    with gp.track("t", study=study, ledger=db, **FAST) as run:
        run.log(accuracy=0.5)


def _reported(folder: Path) -> str:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))["study"]


def test_studies_of_one_slug_keep_their_own_default_folders(home: Path, capsys) -> None:
    studies = ["cifar sweep", "cifar/sweep", "Cifar-Sweep", "mnist"]
    for study in studies:
        _study("greenprint.db", study)
    args = ["report", "--format", "json", "--no-plots", "--study"]
    for study in studies:
        assert main([*args, study]) == 0
    assert "note:" not in capsys.readouterr().err  # no report replaced another's
    folders = sorted(p for p in home.iterdir() if p.name.startswith("greenprint-report"))
    reported = {_reported(p) for p in folders}
    assert reported == set(studies)
    assert len({p.name.lower() for p in folders}) == 4  # apart on a case-insensitive disk too
    assert (home / "greenprint-report-mnist").is_dir()  # a slug of its own: as before


# 3. a successive-halving search on an estimator's parameter -----------------------------------


def test_halving_on_an_estimator_parameter_is_one_trial_per_candidate(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    from greenprint.integrations.sklearn import track_search

    X, y = load_digits(return_X_y=True)
    search = HalvingGridSearchCV(
        RandomForestClassifier(random_state=0),
        {"max_depth": [2, 3, 4, 8]},
        resource="n_estimators",  # scikit-learn adds it to each row's params: 2, 4, 8
        min_resources=2,
        max_resources=8,
        factor=2,
        cv=2,
        random_state=0,
    )
    db = tmp_path / "h.db"
    track_search(search, X[:200], y[:200], ledger=db, study="halving", **FAST)
    assert list(search.n_candidates_) == [4, 2, 1]
    runs = gp.Ledger(db).runs(study="halving")
    trials = [r for r in runs if r.role == "trial"]
    # four candidates, four trials (rows of one candidate at 2, 4 and 8 estimators differ in
    # n_estimators, so they were taken for different candidates: more trials, wrong statuses)
    assert len(trials) == 4
    assert sorted(r.status for r in trials) == ["finished", "pruned", "pruned", "pruned"]
    (kept,) = [r for r in trials if r.status == "finished"]
    assert kept.params["n_estimators"] == 8
    assert kept.params["max_depth"] == search.best_params_["max_depth"]
    iterations = [
        r for r in runs if r.role == "part" and r.parent_id == kept.id and "iter" in r.params
    ]
    assert sorted(r.params["n_estimators"] for r in iterations) == [2, 4]
    assert all(r.dataset_size == 200 for r in trials)  # every sample, each iteration


# 4. Ray Tune results in NumPy types -------------------------------------------------------------


# Tested in tests/integrations/test_ray.py, on that module's Ray cluster: the trials of
# test_trials_that_share_a_reused_worker_are_runs_of_their_own have configs and results in
# NumPy types.


# 5. MLflow's log_report of two studies into one MLflow run --------------------------------------


def test_mlflow_log_report_of_two_studies_keeps_both(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from greenprint.integrations import mlflow as gp_mlflow

    db = str(tmp_path / "gp.db")
    for study in ("baseline", "sweep"):
        _study(db, study)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("two", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment)
    run_id = parent.info.run_id
    first = gp_mlflow.log_report("baseline", db, run_id=run_id, client=client, formats="json")
    second = gp_mlflow.log_report("sweep", db, run_id=run_id, client=client, formats="json")
    assert first != second  # both landed at greenprint/report/report.json: sweep's replaced
    for study, (path,) in (("baseline", first), ("sweep", second)):
        local = client.download_artifacts(run_id, path, str(tmp_path / "dl" / study))
        assert json.loads(Path(local).read_text(encoding="utf-8"))["study"] == study
    # a ledger of one study: where it always went
    one = str(tmp_path / "one.db")
    _study(one, "only")
    assert gp_mlflow.log_report("only", one, run_id=run_id, client=client, formats="json") == [
        "greenprint/report/report.json"
    ]


# 6. run.log of an integer beyond the largest float ----------------------------------------------


def test_run_log_of_an_integer_beyond_a_float_is_a_config_error(tmp_path: Path) -> None:
    with gp.track("big", ledger=tmp_path / "g.db", **FAST) as run:
        with pytest.raises(
            gp.ConfigError, match="metric 'count' must be a number a float can hold"
        ):
            run.log(count=10**400)  # float() raises OverflowError: it reached the caller
        run.log(count=1)
    assert [p.value for p in run.metrics if p.name == "count"] == [1.0]
