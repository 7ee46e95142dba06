"""Budgets in training frameworks: a "stop" budget ends training the framework's own way.

A real Hugging Face Trainer on a tiny BERT built from a config and a real Lightning Trainer on a
linear module, on CPU. With ``on_exceed="stop"`` the callbacks set the framework's stop flag
(``control.should_training_stop``, ``trainer.should_stop``), as early stopping does: training
returns normally with a usable model, and the run is recorded as a budget stop anywhere else is
(``interrupted``, ``"BudgetExceeded: <reason>"``). ``"warn"`` only warns.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from integrations._frameworks import need_installed, one_thread

need_installed("torch", "torch")
need_installed("transformers", "transformers")
need_installed("lightning.pytorch", "lightning")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
MANY_STEPS = 5_000  # far more than any budget here lets run (about 0.5 s of steps)


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import torch, transformers and Lightning when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; Lightning alone takes 6-9 s of CPU to import.
    The names are this module's globals, as a top-level import would make them. Training runs on
    one thread (tiny models: the pool's spinning threads cost more CPU than they save).
    """
    global torch, transformers, pl, DataLoader, TensorDataset
    global AutoModelForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
    global LightningCallback, HFCallback, Tokens, tiny_bert, SetsFpo, Regressor
    import lightning.pytorch as pl
    import torch
    import transformers
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import (
        AutoModelForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from greenprint.integrations.lightning import GreenprintCallback as LightningCallback
    from greenprint.integrations.transformers import GreenprintCallback as HFCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    SetsFpo, Regressor = _sets_fpo(), _regressor()
    with one_thread():
        yield


# ----------------------------------------------------------------------------- Hugging Face
def hf_args(tmp_path: Path, **kwargs) -> TrainingArguments:
    options = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=MANY_STEPS,
        per_device_train_batch_size=8,
        logging_steps=MANY_STEPS,
        eval_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    options.update(kwargs)
    return TrainingArguments(**options)


def test_hf_a_stop_budget_ends_training_cleanly_with_a_usable_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    # a regular save every MANY_STEPS: the only checkpoint is the one the stop asks for
    args = hf_args(tmp_path, save_strategy="steps", save_steps=MANY_STEPS)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens())
    cb = HFCallback("capped", study="hf", ledger=db, budget_s=0.5, on_exceed="stop", **FAST)
    cb.attach(trainer)

    output = trainer.train()  # returns: no BudgetExceeded reaches the caller

    step = trainer.state.global_step
    assert 1 <= step < MANY_STEPS and output.global_step == step
    assert trainer.control.should_training_stop
    (record,) = gp.Ledger(db).runs(study="hf")
    assert record.status == "interrupted"
    assert record.error.startswith("BudgetExceeded: run ") and "budget_s" in record.error
    assert record.energy_kwh > 0 and record.duration_s >= 0.5  # the cost so far is kept
    # the step reached was saved, and it is the trained model: it loads and predicts
    checkpoint = tmp_path / "out" / f"checkpoint-{step}"
    assert checkpoint.is_dir()
    loaded = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    batch = Tokens(4, seed=3)[0]
    logits = loaded(input_ids=batch["input_ids"][None]).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def _sets_fpo() -> type:
    class SetsFpo(TrainerCallback):
        """After the greenprint callback's step-end check: record FPO over the budget at a step.

        ``run.set`` does not check budgets, so the crossing is found by the ``run.log`` of the
        Trainer's next log (same step): the callback must stop training there too.
        """

        def __init__(self, cb: HFCallback, at_step: int) -> None:
            self.cb, self.at_step = cb, at_step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.at_step:
                self.cb.run.set(fpo=1_000)

    return SetsFpo


def test_hf_a_stop_budget_crossed_at_a_log_stops_at_that_step(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = HFCallback("logged", study="hf", ledger=db, budget_fpo=100, on_exceed="stop", **FAST)
    trainer = Trainer(
        model=tiny_bert(),
        args=hf_args(tmp_path, logging_steps=2),
        train_dataset=Tokens(),
        callbacks=[cb, SetsFpo(cb, at_step=2)],  # not attached: the hooks alone do it
    )
    trainer.train()
    assert trainer.state.global_step == 2
    (record,) = gp.Ledger(db).runs(study="hf")
    assert record.status == "interrupted" and "budget_fpo" in record.error
    assert record.metric("loss") is not None  # the log that crossed it was recorded


def test_hf_warn_only_warns_and_training_runs_to_the_end(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="greenprint")
    db = tmp_path / "gp.db"
    trainer = Trainer(
        model=tiny_bert(),
        args=hf_args(tmp_path, max_steps=6, logging_steps=2),
        train_dataset=Tokens(),
    )
    cb = HFCallback("warned", study="hf", ledger=db, budget_s=0.01, **FAST).attach(trainer)
    trainer.train()
    assert trainer.state.global_step == 6
    (record,) = gp.Ledger(db).runs(study="hf")
    assert record.status == "finished" and record.error is None
    assert cb.run.over_budget
    assert len([r for r in caplog.records if "over budget" in r.getMessage()]) == 1


# ----------------------------------------------------------------------------- Lightning
def _regressor() -> type:
    class Regressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.layer(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return Regressor


def _data() -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen))
    return DataLoader(ds, batch_size=16)


def _lightning(cb: LightningCallback, **kwargs) -> pl.Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[cb],
    )
    options.update(kwargs)
    return pl.Trainer(**options)


def test_lightning_a_time_budget_stops_fit_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    cb = LightningCallback("capped", study="lit", ledger=db, budget_s=0.5, on_exceed="stop", **FAST)
    trainer = _lightning(cb, max_epochs=MANY_STEPS)
    model = Regressor()
    trainer.fit(model, _data())  # returns: no BudgetExceeded reaches the caller
    assert trainer.should_stop and 1 <= trainer.global_step < 4 * MANY_STEPS
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.status == "interrupted" and "budget_s" in record.error
    trainer.save_checkpoint(tmp_path / "stopped.ckpt")  # the module trained so far is usable
    restored = Regressor.load_from_checkpoint(tmp_path / "stopped.ckpt")
    assert torch.equal(restored.layer.weight, model.layer.weight)
    assert math.isfinite(float(restored(torch.zeros(1, 4))))


def test_lightning_warn_only_warns_and_the_fit_runs_to_the_end(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="greenprint")
    db = tmp_path / "gp.db"
    cb = LightningCallback("warned", study="lit", ledger=db, budget_s=0.01, **FAST)
    trainer = _lightning(cb, max_epochs=2)
    trainer.fit(Regressor(), _data())
    assert trainer.global_step == 8 and not trainer.should_stop
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.status == "finished" and cb.run.over_budget
    assert len([r for r in caplog.records if "over budget" in r.getMessage()]) == 1


# ----------------------------------------------------------------------------- several processes
#: (Hugging Face's processes under torchrun stopping together when one is over its budget: in
#: test_transformers_fpo.py, whose torchrun launch runs that study too; a launch of its own was
#: two processes importing transformers, about 14 s of CPU.)

PL_DDP_SCRIPT = """
import os
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback


class M(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    ds = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    cb = GreenprintCallback("ddp", study="ddp", ledger=os.path.abspath("gp.db"), budget_kwh=1e-12,
                            on_exceed="stop", sample_interval_s=0.05, flush_interval_s=0.1)
    trainer = pl.Trainer(max_epochs=100_000, accelerator="cpu", devices=2, strategy="ddp_fork",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    trainer.fit(M(), DataLoader(ds, batch_size=16))
"""


def _ddp_records(tmp_path: Path) -> tuple:
    records = {r.name: r for r in gp.Ledger(tmp_path / "gp.db").runs(study="ddp")}
    assert set(records) == {"ddp", "ddp-rank1"}
    return records["ddp"], records["ddp-rank1"]


@pytest.mark.slow
def test_lightning_ddp_ranks_stop_together_when_one_is_over_its_budget(tmp_path: Path) -> None:
    """The ranks are forked (``ddp_fork``): spawned ones would each import Lightning again (6-9 s
    of CPU a process); test_lightning.py's DDP test spawns them, and the test below checks that
    the copy of the callback a spawned rank gets keeps its budget."""
    from _report_cli import run_in

    (tmp_path / "ddp.py").write_text(PL_DDP_SCRIPT)
    # ``python ddp.py`` with a new user's environment: in a child of the Lightning fork server
    # of this pytest process when one is up (_script_fork), which forks the ranks
    done = run_in(tmp_path, sys.executable, "ddp.py", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]  # 100,000 epochs would not end in time
    node, part = _ddp_records(tmp_path)
    assert node.status == "interrupted" and "budget_kwh" in node.error
    assert part.status == "finished" and node.duration_s < 120


def test_lightning_a_callback_pickled_as_ddp_spawn_sends_it_keeps_its_budget(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gp.db"
    cb = LightningCallback(
        "copy", study="lit", ledger=db, budget_kwh=1e-12, on_exceed="stop", **FAST
    )
    copy = pickle.loads(pickle.dumps(cb))  # what ddp_spawn does to send it to each rank
    trainer = _lightning(copy, max_epochs=MANY_STEPS)
    trainer.fit(Regressor(), _data())
    assert trainer.should_stop and trainer.global_step < 4 * MANY_STEPS
    (record,) = gp.Ledger(db).runs(study="lit")
    assert record.status == "interrupted" and "budget_kwh" in record.error
