"""Session 25: what the integrations still left unmeasured (helper Z).

* Hugging Face: ``trainer.evaluate()`` and ``trainer.predict()`` after ``train()`` sent their
  metrics to the ended training run, but their energy and time were in no run: the study's
  price tag left them out. Each is now a run of its own, ``<name>-evaluate`` (``-predict``),
  as Lightning's ``validate``/``test``/``predict`` are: a part of the run that trained the model
  when that is known, else a top-level part (counted, never a trial) that the model's next
  training takes as its part; the metrics still reach the training's run.

The Ray Tune test of this session (one study whichever side names it) is in
``test_ray_scripts.py``: its script shares a driver and a local Ray cluster there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._frameworks import frozen_heap, need_installed, one_thread
from tracking._meters import READ_LAG_S, ConstantProcessPower

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent.parent / "tracking")

#: The test meter's constant power, in W.
WATTS = 360.0
FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


# ------------------------------------------------------------------ Hugging Face evaluations
@pytest.fixture(scope="module")
def hf() -> Iterator[dict]:
    """transformers, torch and the tiny BERT kit, imported when these tests run (not at
    collection); training on one thread; the objects alive once they are imported frozen out of
    the collector's reach (:func:`frozen_heap`: the Trainer collects at each ``train()``)."""
    need_installed("transformers", "transformers")
    need_installed("torch", "torch")
    import transformers
    from transformers import Trainer, TrainingArguments

    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    kit = {
        "Trainer": Trainer,
        "TrainingArguments": TrainingArguments,
        "Callback": GreenprintCallback,
        "Tokens": Tokens,
        "tiny_bert": tiny_bert,
    }
    with one_thread(), frozen_heap():
        yield kit


def _hf_trainer(hf: dict, tmp_path: Path, callbacks: list | None = None):
    args = hf["TrainingArguments"](
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        eval_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
    )
    return hf["Trainer"](
        model=hf["tiny_bert"](),
        args=args,
        train_dataset=hf["Tokens"](16),
        eval_dataset=hf["Tokens"](16, seed=1),
        callbacks=callbacks,
    )


def _by_name(db: Path, study: str) -> dict[str, list[gp.RunRecord]]:
    out: dict[str, list[gp.RunRecord]] = {}
    for record in gp.Ledger(db).runs(study=study):
        out.setdefault(record.name, []).append(record)
    return out


def _at_the_meters_power(run: gp.RunRecord) -> None:
    """The run's energy is the test meter's power x its time (> 0: it was measured)."""
    assert run.energy_kwh > 0
    assert run.energy_kwh * 3.6e6 == pytest.approx(WATTS * run.duration_s, abs=WATTS * READ_LAG_S)


@pytest.mark.parametrize("attached", [True, False], ids=["attached", "callback-only"])
def test_hf_evaluations_outside_train_are_runs_in_the_price_tag(hf, tmp_path, attached):
    """Before: one run (the training); the evaluation of the untrained model, the evaluation
    and the prediction after ``train()`` were in no run, and the price tag left them out. Now
    each is a finished ``part`` of the training's run (``contained`` false: added once), its
    energy the meter's power x its time; the price tag is every run's energy, one trial; the
    metrics still reach the training's run as before."""
    db = tmp_path / "gp.db"
    meters = ConstantProcessPower(WATTS)
    cb = hf["Callback"]("bert", study="hf-eval", ledger=db, meters=meters, **FAST)
    trainer = _hf_trainer(hf, tmp_path, None if attached else [cb])
    if attached:
        cb.attach(trainer)
    before = trainer.evaluate()  # the untrained model: taken by its training
    trainer.train()
    tested = trainer.evaluate(hf["Tokens"](16, seed=2), metric_key_prefix="test")
    predicted = trainer.predict(hf["Tokens"](8, seed=3), metric_key_prefix="holdout").metrics

    runs = _by_name(db, "hf-eval")
    assert sorted((name, len(each)) for name, each in runs.items()) == [
        ("bert", 1),
        ("bert-evaluate", 2),
        ("bert-predict", 1),
    ]
    (training,) = runs["bert"]
    assert (training.status, training.role, training.parent_id) == ("finished", None, None)
    evaluations = runs["bert-evaluate"] + runs["bert-predict"]
    for run in evaluations:
        assert (run.status, run.role) == ("finished", "part")
        assert (run.parent_id, run.contained) == (training.id, False)
        assert run.params["per_device_train_batch_size"] == 8  # the training's params
        _at_the_meters_power(run)
    first, after = sorted(runs["bert-evaluate"], key=lambda r: r.started_at)
    assert first.ended_at <= training.started_at
    assert first.metric("eval_loss") == pytest.approx(before["eval_loss"])
    assert after.metric("test_loss") == pytest.approx(tested["test_loss"])
    assert runs["bert-predict"][0].metric("holdout_loss") == pytest.approx(
        predicted["holdout_loss"]
    )
    # the metrics after train() still score the training's run, at its last step
    assert [(p.step, p.value) for p in training.metrics if p.name == "test_loss"] == [
        (2, pytest.approx(tested["test_loss"]))
    ]
    assert training.metric("holdout_loss") == pytest.approx(predicted["holdout_loss"])
    assert cb.last_evaluation_id == runs["bert-predict"][0].id

    tag = price_tag(gp.Ledger(db).runs(study="hf-eval"))
    assert (tag.total.runs, tag.total.trials) == (4, 1)
    every = training.energy_kwh + sum(r.energy_kwh for r in evaluations)
    assert tag.total.energy_kwh == pytest.approx(every, rel=1e-9)


def test_hf_evaluation_of_a_model_no_run_trained_is_a_top_level_run(hf, tmp_path):
    """A trainer given a model trained elsewhere (no training known in this process): its
    evaluation is a top-level run, ``part`` by default (counted, never a trial), ``final``
    when the callback is given that role; a prediction is a part whatever the role."""
    db = tmp_path / "gp.db"
    trainer = _hf_trainer(hf, tmp_path)
    meters = ConstantProcessPower(WATTS)
    cb = hf["Callback"]("ready", study="hf-final", ledger=db, role="final", meters=meters, **FAST)
    cb.attach(trainer)
    metrics = trainer.evaluate()
    trainer.predict(hf["Tokens"](8, seed=3))
    runs = _by_name(db, "hf-final")
    (evaluated,) = runs["ready-evaluate"]
    (predicted,) = runs["ready-predict"]
    assert (evaluated.role, evaluated.parent_id, evaluated.status) == ("final", None, "finished")
    assert evaluated.metric("eval_loss") == pytest.approx(metrics["eval_loss"])
    assert (predicted.role, predicted.parent_id) == ("part", None)
    _at_the_meters_power(evaluated)
    _at_the_meters_power(predicted)
    tag = price_tag(gp.Ledger(db).runs(study="hf-final"))
    assert tag.total.energy_kwh == pytest.approx(evaluated.energy_kwh + predicted.energy_kwh)
    assert tag.total.trials == 0


# ------------------------------------------------------------------ Lightning DDP evaluations
#: A test on 2 CPU ranks, forked (``ddp_fork``: spawned ranks would each import Lightning
#: again), each rank's meter the test meter. No fit first: forked ranks would know none (each
#: call forks new ones), and a fit forks its own (seconds more on a loaded VM).
LIGHTNING_DDP = """
import os, sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower


class M(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def test_step(self, batch, i):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y), sync_dist=True)



if __name__ == "__main__":
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=16)
    cb = GreenprintCallback("ddp", study="ddp", ledger=os.path.abspath("gp.db"),
                            meters=ConstantProcessPower(@WATTS@), sample_interval_s=0.05,
                            flush_interval_s=0.1)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_fork",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    trainer.test(M(), data, verbose=False)
"""


@pytest.mark.slow  # 2 forked ranks and their process group: about 10 s on a 2-vCPU VM
def test_lightning_test_under_ddp_is_measured_once_per_node(tmp_path_factory):
    """Before: a ``trainer.test()`` with several processes made no run (a debug log said so):
    its cost was in no price tag. Now it is measured as the fit is: local rank 0 meters the
    node (a top-level ``part``: counted, never a trial), the other rank a part of it with no
    energy of its own; the study's price tag counts the node's."""
    from _report_cli import empty_home, run_in

    need_installed("lightning", "lightning")
    home = empty_home(tmp_path_factory, "lit-ddp")
    script = LIGHTNING_DDP.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "ddp.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "ddp.py")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r.name: r for r in gp.Ledger(home / "gp.db").runs(study="ddp")}
    assert set(runs) == {"ddp-test", "ddp-test-rank1"}  # was empty
    node, rank1 = runs["ddp-test"], runs["ddp-test-rank1"]
    assert (node.status, node.role, node.parent_id) == ("finished", "part", None)
    assert (rank1.status, rank1.role, rank1.parent_id) == ("finished", "part", node.id)
    _at_the_meters_power(node)
    assert rank1.energy_kwh == 0  # one meter per node
    assert node.metric("test_loss") is not None and rank1.metric("test_loss") is not None
    tag = price_tag(gp.Ledger(home / "gp.db").runs(study="ddp"))
    assert (tag.total.runs, tag.total.trials) == (2, 0)
    assert tag.total.energy_kwh == pytest.approx(node.energy_kwh, rel=1e-9)
