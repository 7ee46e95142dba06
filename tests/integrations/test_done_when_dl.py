"""Issue 13's "done when" for Lightning and the Trainer: one ledger, read by `greenprint report`.

Two Trainer trials (one finishes; one crashes in its own program, without ``attach``, and is
ended by greenprint's excepthook) and a Lightning fit of the final model land in one ledger with
their roles and statuses, and the CLI's JSON report reads them right.

Both programs run as ``python script.py ARGS`` in children of one fork server
(``tests/_docs_fork.py``) that imported torch, Lightning and the Trainer once: each program
spent 7-10 s of CPU importing them before a second of training (the file: about 20 -> 14 s of
CPU). A child is what ``python script.py ARGS`` there is (its cwd, environment, ``sys.argv``,
``__main__``, an uncaught exception through ``sys.excepthook`` and Python's exit status); never
greenprint preloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from _docs_fork import ForkServer
from integrations._frameworks import need_installed

need_installed("lightning", "lightning")  # looked up, not imported: the scripts below import them
need_installed("transformers", "transformers")

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

TRAINER = """
import sys
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, Trainer,
                          TrainerCallback, TrainingArguments)
from greenprint.integrations.transformers import GreenprintCallback

name, crash = sys.argv[1], sys.argv[2] == "crash"


class Boom(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if crash and state.global_step == 2:
            raise RuntimeError("loss is NaN")


torch.manual_seed(0)
data = [{"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)}
        for i in range(32)]
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16, num_labels=2)
args = TrainingArguments(output_dir="out-" + name, report_to="none", use_cpu=True, max_steps=4,
                         per_device_train_batch_size=8, eval_strategy="steps", eval_steps=2,
                         save_strategy="no", disable_tqdm=True)
trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                  train_dataset=data, eval_dataset=data[:16], callbacks=[Boom()])
cb = GreenprintCallback(name, study="dl", ledger="gp.db", role="trial", sample_interval_s=0.05,
                        flush_interval_s=0.1)
trainer.add_callback(cb)   # not attached: a crash is ended by greenprint's excepthook
trainer.train()
"""

LIGHTNING = """
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

    def validation_step(self, batch, i):
        x, y = batch
        self.log("eval_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
cb = GreenprintCallback("lightning-final", study="dl", ledger="gp.db", role="final",
                        sample_interval_s=0.05, flush_interval_s=0.1)
trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, callbacks=[cb])
trainer.fit(M(), data, data)
"""


#: What both programs import that takes seconds: torch (and torch._dynamo, which the first
#: optimizer step imports), Lightning, and the Trainer with the classes TRAINER takes from it
#: (transformers loads them on first access).
PRELOAD = [
    ["torch"],
    ["torch._dynamo"],
    ["lightning.pytorch"],
    ["transformers", "AutoModelForSequenceClassification", "BertConfig", "Trainer",
     "TrainerCallback", "TrainingArguments"],
]  # fmt: skip

Program = Callable[..., subprocess.CompletedProcess[str]]


@contextmanager
def _programs(tmp_path: Path) -> Iterator[Program]:
    """``run(script, *args)``: ``script`` written to ``tmp_path/script.py`` and run there as
    ``python script.py ARGS`` (one torch thread: tiny models), in a child of a fork server that
    imported :data:`PRELOAD`, else (the server has threads, or imported a project module) in a
    fresh process."""
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": "1"}
    server: ForkServer | None = ForkServer(tmp_path, env, PRELOAD)
    if server.ready["project_modules"] or server.ready["threads"] != 1:
        server.close()
        server = None

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "script.py").write_text(script)
        if server is not None:
            return server.run_script("script.py", list(args), tmp_path, env, timeout=240)
        return subprocess.run(
            [sys.executable, "script.py", *args],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
            env=env,
        )

    try:
        yield run
    finally:
        if server is not None:
            server.close()


@pytest.mark.slow
def test_lightning_fit_and_crashed_trainer_run_in_one_ledger_reported_right(
    tmp_path: Path,
) -> None:
    with _programs(tmp_path) as python:
        crashed = python(TRAINER, "hf-crash", "crash")
        assert crashed.returncode == 1 and "RuntimeError: loss is NaN" in crashed.stderr
        # the trial that finishes and the final fit in one program
        done = python(TRAINER + LIGHTNING, "hf-trial", "ok")
    assert done.returncode == 0, done.stderr[-2000:]

    done = subprocess.run(
        [sys.executable, "-m", "greenprint", "report", "--ledger", "gp.db", "--study", "dl",
         "--format", "json", "--out", "report", "--no-plots"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "report").glob("*.json")
    report = json.loads(path.read_text())
    rows = {r["name"]: r for r in report["runs"]}
    assert {name: (r["role"], r["status"]) for name, r in rows.items()} == {
        "hf-trial": ("trial", "finished"),
        "hf-crash": ("trial", "failed"),
        "lightning-final": ("final", "finished"),
    }
    assert not any(r["role_inferred"] for r in rows.values())
    assert rows["lightning-final"]["is_final"]
    assert report["metric"] == "eval_loss"
    tag = report["price_tag"]
    assert set(tag["by_status"]) == {"finished", "failed"}
    assert tag["total"]["trials"] == 2
    # every root run is in the price tag once, the crashed one with its cost so far
    assert tag["total"]["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows.values()))
    assert rows["hf-crash"]["energy_kwh"] > 0
