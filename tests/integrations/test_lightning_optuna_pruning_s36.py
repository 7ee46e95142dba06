"""Optuna's own Lightning pruning callback beside greenprint's: the recipe users copy.

``optuna_integration.PyTorchLightningPruningCallback`` reports the monitored metric at each
validation end and raises ``TrialPruned`` inside ``trainer.fit`` (on one process); the
documented greenprint usage wraps the objective (``cb.track(objective)``) and puts
greenprint's Lightning callback on the trainer. The pruned trial is then one ``trial`` run
stopped at the epoch Optuna's pruner stopped it, named by that pruner, with the fit as its
``part`` (pruned too); the report's pruning section counts Optuna's pruned trials and scales
each one's cost by the epochs a full trial ran over those it ran.

The study is deterministic: two enqueued learning rates train well, two barely move, and a
``ThresholdPruner`` stops the latter at epoch 1 (its first step after the warm-up).
"""

from __future__ import annotations

import pytest

from integrations._frameworks import need, need_installed, one_thread

optuna = need("optuna", "optuna")
need_installed("lightning", "lightning")
need_installed("optuna_integration", "dev")

import greenprint as gp  # noqa: E402

EPOCHS = 5  # reported as epochs 0..4
LRS = [0.1, 1e-5, 0.05, 1e-5]  # trials 1 and 3 stay above the threshold: pruned at epoch 1


@pytest.fixture(scope="module")
def study_ledger(tmp_path_factory):
    import lightning.pytorch as pl
    import torch
    from optuna_integration import PyTorchLightningPruningCallback

    from _tiny_lightning import quiet_trainer
    from greenprint.integrations.lightning import GreenprintCallback as LightningCallback
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    path = tmp_path_factory.mktemp("pl-optuna") / "gp.db"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))

    class Regressor(pl.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.lr = lr

        def training_step(self, batch, batch_idx):
            inputs, targets = batch
            return torch.nn.functional.mse_loss(self.layer(inputs), targets)

        def validation_step(self, batch, batch_idx):
            inputs, targets = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(inputs), targets))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-6, 1.0, log=True)
        torch.manual_seed(0)
        pruning = PyTorchLightningPruningCallback(trial, monitor="val_loss")
        trainer = quiet_trainer(
            LightningCallback(sample_interval_s=0.05), pruning, max_epochs=EPOCHS
        )
        loader = torch.utils.data.DataLoader(data, batch_size=16)
        trainer.fit(Regressor(lr), loader, loader)
        pruning.check_pruned()
        return trainer.callback_metrics["val_loss"].item()

    study = optuna.create_study(
        study_name="pl-pruned",
        direction="minimize",
        pruner=optuna.pruners.ThresholdPruner(upper=2.0, n_warmup_steps=1),
    )
    for lr in LRS:
        study.enqueue_trial({"lr": lr})
    cb = GreenprintCallback(ledger=str(path), sample_interval_s=0.05)
    with one_thread():
        study.optimize(cb.track(objective), n_trials=len(LRS), callbacks=[cb])
    return study, path


def test_optuna_prunes_the_slow_learners_at_epoch_1(study_ledger):
    study, _ = study_ledger
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]
    assert [t.last_step for t in study.trials] == [EPOCHS - 1, 1, EPOCHS - 1, 1]


def test_each_pruned_trial_is_one_trial_run_stopped_where_and_by_what_optuna_says(study_ledger):
    _, path = study_ledger
    with gp.Ledger(path, create=False) as led:
        runs = led.runs(study="pl-pruned")
    trials = {r.name: r for r in runs if r.role == "trial"}
    assert sorted(trials) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    for name in ("trial-1", "trial-3"):
        run = trials[name]
        assert run.status == "pruned"
        assert run.provenance["pruned_at_step"] == "1"  # provenance values are text
        assert run.provenance["pruned_by"] == "Optuna ThresholdPruner"
        (fit,) = [r for r in runs if r.parent_id == run.id]
        assert fit.role == "part" and fit.status == "pruned"  # the fit raised TrialPruned
    for name in ("trial-0", "trial-2"):
        assert trials[name].status == "finished"
        assert trials[name].provenance["last_step"] == str(EPOCHS - 1)
    # the trial runs' Optuna values are the fits' last validation losses
    for t in (trials["trial-0"], trials["trial-2"]):
        (fit,) = [r for r in runs if r.parent_id == t.id]
        assert t.metric("value") == pytest.approx(fit.metric("val_loss"))


def test_the_report_counts_optunas_pruned_trials_and_scales_by_epochs(study_ledger, tmp_path):
    from greenprint.report import build_report

    _, path = study_ledger
    report = build_report(path, "pl-pruned")
    pruning = report.pruning
    assert pruning is not None
    summary = pruning.to_dict()
    assert (summary["trials"], summary["finished"], summary["pruned"]) == (4, 2, 2)
    assert summary["by"] == ["Optuna ThresholdPruner"]
    assert summary["steps"]["max"] == 1 and summary["steps"]["full"] == EPOCHS - 1
    with gp.Ledger(path, create=False) as led:
        pruned = [r for r in led.runs(study="pl-pruned") if r.name in ("trial-1", "trial-3")]
    # epochs 0..1 ran of 0..4: each pruned trial's cost x (5 / 2 - 1)
    spent = sum(r.energy_kwh for r in pruned)
    assert summary["energy_kwh"] == pytest.approx(spent)
    assert summary["estimate"]["saved_energy_kwh"] == pytest.approx(spent * (EPOCHS / 2 - 1))
    assert [row["scale"] for row in summary["rows"]] == [EPOCHS / 2] * 2
