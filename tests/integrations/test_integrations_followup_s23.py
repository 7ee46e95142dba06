"""Follow-ups of session 23's integrations probe (helper Q), as a user's script meets them.

* Lightning's ``Trainer(overfit_batches=...)``, the check that a model can overfit a few
  batches (validated on those same training batches), was recorded as a trial scored by that
  training-set ``val_loss``: the study's best trial, by far. A ``limit_train_batches`` fit
  (a training on part of the data) stays a trial, now with that limit among its params (two
  fits of one configuration on 10% and on all the data read as the same configuration).
* ``trainer.validate(other_module)`` by a Trainer that fitted a module added the other
  module's ``val_loss`` to the fit's run (a baseline's score as the trained model's).
* MLflow: a greenprint run given no role carried no ``greenprint.role`` tag, though the
  report reads it as a trial (or a sweep): the runs table could not filter the trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.report import build_report
from integrations._frameworks import installed, one_thread

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _need(module: str, extra: str) -> None:
    from integrations._frameworks import _missing

    if not installed(module):
        _missing(module, extra)


# ---------------------------------------------------------------------- Lightning
@pytest.fixture(scope="module")
def lightning() -> Iterator[dict[str, object]]:
    _need("lightning", "lightning")
    _need("torch", "torch")
    from integrations._lightning_kit import lightning_kit  # tests/integrations/_lightning_kit.py

    with one_thread():
        yield lightning_kit()


def test_an_overfit_batches_check_is_no_trial_and_a_limited_fit_is_one(
    tmp_path: Path, lightning
) -> None:
    """Each configuration: overfit 2 batches (the sanity check), then the real fit."""
    db = tmp_path / "gp.db"
    Regressor, Callback = lightning["Regressor"], lightning["Callback"]
    trainer = lightning["trainer"]
    train, held_out = lightning["train"], lightning["held_out"]
    for lr in (0.1, 0.01):
        model = Regressor(lr)
        check = Callback(f"lr{lr}", study="of", ledger=db, **FAST)
        trainer(check, overfit_batches=2, max_epochs=8).fit(model, train(), held_out())
        real = Callback(f"lr{lr}", study="of", ledger=db, **FAST)
        trainer(real, max_epochs=2, limit_train_batches=0.5).fit(model, train(), held_out())
    runs = gp.Ledger(db).runs(study="of")
    checks = [r for r in runs if "trainer.overfit_batches" in r.params]
    assert sorted(r.name for r in checks) == ["lr0.01-overfit_batches", "lr0.1-overfit_batches"]
    assert {r.role for r in checks} == {"part"}
    assert {r.params["trainer.overfit_batches"] for r in checks} == {2}
    fits = [r for r in runs if r.role != "part"]
    # each real fit of that module takes its check as its part (it ran before, outside it)
    assert {(r.parent_id, r.contained) for r in checks} == {(f.id, False) for f in fits}
    # a training on half the data: a trial, the limit named among its params
    assert {r.params.get("trainer.limit_train_batches") for r in fits} == {0.5}
    assert all("trainer.limit_val_batches" not in r.params for r in fits)  # the whole set

    report = build_report(db, "of")
    assert report.price_tag.total.trials == 2  # was 4: the overfit checks among the trials
    assert report.price_tag.final is not None
    assert "overfit" not in report.price_tag.final.name


def test_a_validation_of_another_module_is_no_score_of_the_fit(tmp_path: Path, lightning) -> None:
    db = tmp_path / "gp.db"
    Regressor, Callback = lightning["Regressor"], lightning["Callback"]
    trainer = lightning["trainer"]
    train, held_out = lightning["train"], lightning["held_out"]
    cb = Callback("model", study="v", ledger=db, **FAST)
    t = trainer(cb, max_epochs=1)
    fitted = Regressor(0.1)
    t.fit(fitted, train(), held_out())
    (before,) = gp.Ledger(db).runs(study="v")
    t.validate(Regressor(0.5), held_out(), verbose=False)  # a fresh baseline: not the fit's
    # (each validation is a run of its own since session 24: the fit's run is the one named so)
    (after,) = [r for r in gp.Ledger(db).runs(study="v") if r.name == "model"]
    assert [p.value for p in after.metrics if p.name == "val_loss"] == [
        p.value for p in before.metrics if p.name == "val_loss"
    ]
    (scored,) = t.validate(fitted, held_out(), verbose=False)  # the fit's module: its score
    (after,) = [r for r in gp.Ledger(db).runs(study="v") if r.name == "model"]
    assert after.metric("val_loss") == pytest.approx(scored["val_loss"])


# ---------------------------------------------------------------------- MLflow
@pytest.fixture
def mlflow_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    _need("mlflow", "mlflow")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    client.create_experiment("roles", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment("roles")
    try:
        yield client
    finally:
        mlflow.set_tracking_uri(previous)


def test_mlflow_tags_the_role_a_report_infers(tmp_path: Path, mlflow_client) -> None:
    """A hand-written search: a sweep run (no role) around two trials (no role), in MLflow."""
    import mlflow

    from greenprint.integrations import mlflow as gp_mlflow
    from tracking._meters import ConstantPowerMeters

    db = tmp_path / "gp.db"
    tags: dict[str, dict[str, str]] = {}
    with mlflow.start_run() as outer, gp.track("search", study="s", ledger=db, **FAST) as sweep:
        gp_mlflow.autolog(sweep)
        for lr in (0.1, 0.01):
            with (
                mlflow.start_run(nested=True) as inner,
                gp.track(
                    f"lr{lr}",
                    study="s",
                    ledger=db,
                    parent=sweep,
                    meters=ConstantPowerMeters(),
                    **FAST,
                ) as trial,
            ):
                gp_mlflow.autolog(trial)
                trial.log(accuracy=0.9 - lr)
            # it ended inside a running run given no role: its role is not known yet
            assert "greenprint.role" not in mlflow_client.get_run(inner.info.run_id).data.tags
            tags[trial.id] = {"mlflow_run": inner.info.run_id}
    tags[sweep.id] = mlflow_client.get_run(outer.info.run_id).data.tags
    for trial_id in [k for k in tags if k != sweep.id]:  # tagged once the sweep has ended
        tags[trial_id] = mlflow_client.get_run(tags[trial_id]["mlflow_run"]).data.tags

    # the report's reading: a score-less root with children a sweep, its children trials
    report = build_report(db, "s")
    assert report.price_tag.total.trials == 2
    assert tags[sweep.id]["greenprint.role"] == "sweep"
    assert tags[sweep.id]["greenprint.role_inferred"] == "true"
    for trial_id in [k for k in tags if k != sweep.id]:
        assert tags[trial_id]["greenprint.run_id"] == trial_id
        assert (tags[trial_id]["greenprint.role"], tags[trial_id]["greenprint.role_inferred"]) == (
            "trial",
            "true",
        )

    # a run given its role keeps it, not marked inferred; a lone run is a trial
    with mlflow.start_run() as given, gp.track("b", study="s", ledger=db, role="baseline") as run:
        gp_mlflow.autolog(run)
    with mlflow.start_run() as lone, gp.track("one", study="s", ledger=db) as run:
        gp_mlflow.autolog(run)
        run.log(accuracy=0.5)
    given_tags = mlflow_client.get_run(given.info.run_id).data.tags
    assert given_tags["greenprint.role"] == "baseline"
    assert "greenprint.role_inferred" not in given_tags
    lone_tags = mlflow_client.get_run(lone.info.run_id).data.tags
    assert (lone_tags["greenprint.role"], lone_tags["greenprint.role_inferred"]) == (
        "trial",
        "true",
    )
