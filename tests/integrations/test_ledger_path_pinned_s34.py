"""Session 34: a relative ledger path names the ledger where the callback was made.

docs/integrations.md gives every callback ``ledger="greenprint.db"`` (or no ledger: the
configured ``./greenprint.db``). A training script that changes directory between its runs
(Hydra runs each job in an output folder of its own; an Optuna objective that ``os.chdir``s into
its trial's folder to write checkpoints there) had each later run open ``greenprint.db`` in
the folder it was in: a 4-trial Optuna study whose objective moved into ``outputs/trial<n>``
wrote trial 0 to the ledger it named and trials 1-3 to three ledgers of their own, and
``greenprint report`` in the script's folder read 1 trial of 4. The Optuna, Lightning and
Hugging Face callbacks now pin a relative SQLite path, the default ledger included, to the
directory they were made in. A callback given no ledger still writes inside a run of the
user's into that run's ledger, as a run given none does.

Each script runs in an empty directory with a clean environment, as a new user runs it. The
Hugging Face search on Ray Tune's backend is tested in ``test_ray_scripts.py``, whose one driver
and local cluster run it beside the other Ray Tune scripts (a cluster of its own: about 20 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import run_in
from integrations._frameworks import need_installed

#: An objective that moves into its trial's output folder (and stays there), 4 trials; the
#: callback given ``ledger=@LEDGER@``.
OPTUNA_SCRIPT = """
import os
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
home = os.getcwd()


def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    folder = os.path.join(home, "outputs", f"trial{trial.number}")
    os.makedirs(folder, exist_ok=True)
    os.chdir(folder)  # the trial's checkpoints go there
    return (x - 2) ** 2


cb = GreenprintCallback(@LEDGER@)
study = optuna.create_study(study_name="moves", sampler=optuna.samplers.RandomSampler(0))
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb])
print("done")
"""


def _ledgers(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*.db"))


@pytest.mark.parametrize(
    "ledger", ['ledger="greenprint.db"', 'ledger="sqlite:///greenprint.db"', ""]
)
def test_optuna_trials_that_change_directory_stay_in_the_named_ledger(tmp_path_factory, ledger):
    """Before: 1 trial in ./greenprint.db and one ledger in each of outputs/trial0..2."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "optuna-moves")
    (home / "search.py").write_text(OPTUNA_SCRIPT.replace("@LEDGER@", ledger), encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ledgers(home) == ["greenprint.db"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="moves")
    assert sorted(r.name for r in runs) == [f"trial-{n}" for n in range(4)]
    report = _report(home, "--study", "moves", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 4


def test_optuna_callback_given_no_ledger_still_writes_into_the_sweep_runs_ledger(tmp_path):
    """A callback given no ledger, its study inside a sweep run of another ledger: the trials
    are the sweep's children in the sweep's ledger, as before (the default is only pinned)."""
    optuna = pytest.importorskip("optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cb = GreenprintCallback()
    study = optuna.create_study(study_name="in-sweep")
    path = tmp_path / "sweep.db"
    with gp.track("search", study="in-sweep", ledger=path, role="sweep") as sweep:
        study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1)), n_trials=2, callbacks=[cb])
    runs = gp.Ledger(path).runs(study="in-sweep")
    assert sorted((r.name, r.parent_id) for r in runs if r.role == "trial") == [
        ("trial-0", sweep.id),
        ("trial-1", sweep.id),
    ]


#: Hydra's way: each job's fit runs in its own output folder, made after the callback.
LIGHTNING_SCRIPT = """
import os
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

from greenprint.integrations.lightning import GreenprintCallback

torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 8), torch.randn(64, 1))


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


cb = GreenprintCallback("regressor", study="moves", ledger="greenprint.db")
home = os.getcwd()
for lr in (0.1, 0.01):
    os.makedirs(os.path.join(home, "outputs", f"lr{lr}"))
    os.chdir(os.path.join(home, "outputs", f"lr{lr}"))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", callbacks=[cb], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    model = Regressor(lr)
    trainer.fit(model, DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
    trainer.test(model, DataLoader(data, batch_size=32))
print("done")
"""


def test_lightning_fits_in_output_folders_stay_in_the_named_ledger(tmp_path_factory):
    """Before: each fit and its test in outputs/lr<lr>/greenprint.db, none in ./greenprint.db."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "lightning-moves")
    (home / "fit.py").write_text(LIGHTNING_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "fit.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ledgers(home) == ["greenprint.db"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="moves")
    fits = {r.id: r for r in runs if r.name == "regressor"}
    assert sorted(r.params["lr"] for r in fits.values()) == [0.01, 0.1]
    tests = [r for r in runs if r.name == "regressor-test"]
    assert len(tests) == 2 and all(t.parent_id in fits and t.role == "part" for t in tests)
    assert all(r.metric("test_loss") is not None for r in fits.values())


#: The Trainer made and attached in the script's folder, trained and evaluated in another.
HF_SCRIPT = """
import os
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, Trainer,
                          TrainingArguments)

from greenprint.integrations.transformers import GreenprintCallback

torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, num_labels=2)
data = [{"input_ids": torch.randint(1, 100, (16,)), "labels": torch.tensor(i % 2)}
        for i in range(32)]
args = TrainingArguments(output_dir="bert-tiny", report_to="none", use_cpu=True,
                         num_train_epochs=1, per_device_train_batch_size=16,
                         save_strategy="no", disable_tqdm=True)
trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                  train_dataset=data, eval_dataset=data[:16])
GreenprintCallback("bert-tiny", study="moves").attach(trainer)   # the default ledger
os.makedirs("job")
os.chdir("job")
trainer.train()
trainer.evaluate()
print("done")
"""


def test_transformers_training_in_another_folder_stays_in_the_default_ledger(tmp_path_factory):
    """Before: the training and its evaluation in job/greenprint.db."""
    need_installed("transformers", "transformers")
    home = _empty(tmp_path_factory, "hf-moves")
    (home / "train.py").write_text(HF_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "train.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _ledgers(home) == ["greenprint.db"]
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db").runs(study="moves")}
    assert sorted(runs) == ["bert-tiny", "bert-tiny-evaluate"]
    assert runs["bert-tiny-evaluate"].parent_id == runs["bert-tiny"].id
    assert runs["bert-tiny"].status == "finished"
