"""Session 26: Hugging Face evaluations that were still in no run (helper E).

* ``trainer.hyperparameter_search`` (Optuna): with no evaluation during a trial's training,
  Hugging Face's objective calls ``trainer.evaluate()`` after ``train(trial=...)`` returned, to
  compute the trial's objective. That evaluation ran after the trial's run ended and was not
  measured: its cost was in no run (a tiny search of 3 trials with a constant meter: 15.7 % of
  the study's energy). It is now ``<trial>-evaluate``, a ``part`` of its trial's run
  (``contained`` false: the price tag adds it once); the trials stay the search's trials.
* With several processes, an evaluation outside training is measured one meter per node, as
  training is: tested in test_transformers_fpo.py's ``torchrun`` test (an extra evaluation in
  its script, no second launch).
* Lightning: ``Tuner(trainer).lr_find`` under DDP (``strategy="ddp"``) trained the model in no
  run (the finder's run was single-process only): now metered once per node, a part of the
  node's fit (2 CPU ranks, an lr_find of 6 steps before an 8-step fit: 63 % of the energy).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations import test_integrations_s25 as s25
from integrations._frameworks import need_installed
from integrations.test_integrations_s25 import FAST, WATTS, _at_the_meters_power, _by_name
from tracking._meters import ConstantProcessPower

#: transformers, torch and the tiny BERT kit, on one thread (session 25's fixture).
hf = s25.hf

#: The learning rate of each trial, by trial number.
RATES = [1e-4, 3e-2]


def _hp_space(trial):
    rate = RATES[trial.number]
    return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}


@pytest.mark.parametrize("attached", [True, False], ids=["attached", "callback-only"])
def test_a_trials_objective_evaluation_is_a_part_of_the_trial(hf, tmp_path, attached):
    """Before: two runs, the trials; each trial's evaluation after its training (the search's
    objective) was in no run, and the price tag left it out. Now each is ``trial-<n>-evaluate``,
    a finished ``part`` of its trial (``contained`` false), with the trial's params, its energy
    the meter's power x its time; the study still has two trials, whose metrics (and, attached,
    the objective) are as before, and the price tag counts the four runs' energy."""
    need_installed("optuna", "optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "gp.db"
    meters = ConstantProcessPower(WATTS)
    cb = hf["Callback"](study="hp-eval", ledger=db, meters=meters, **FAST)
    args = hf["TrainingArguments"](
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=8,
        eval_strategy="no",  # the search evaluates each trial after its training
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = hf["Trainer"](
        model_init=hf["tiny_bert"],
        args=args,
        train_dataset=hf["Tokens"](16),
        eval_dataset=hf["Tokens"](16, seed=1),
        callbacks=None if attached else [cb],
    )
    if attached:
        cb.attach(trainer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not attached: the objective's warning (tested apart)
        trainer.hyperparameter_search(
            hp_space=_hp_space,
            hp_name=lambda trial: f"trial-{trial.number}",  # not attached: names none
            backend="optuna",
            n_trials=len(RATES),
        )

    runs = _by_name(db, "hp-eval")
    assert sorted(runs) == ["trial-0", "trial-0-evaluate", "trial-1", "trial-1-evaluate"]
    for k, rate in enumerate(RATES):
        (trial,) = runs[f"trial-{k}"]
        (evaluation,) = runs[f"trial-{k}-evaluate"]
        assert (trial.status, trial.role, trial.parent_id) == ("finished", "trial", None)
        assert (evaluation.status, evaluation.role) == ("finished", "part")
        assert (evaluation.parent_id, evaluation.contained) == (trial.id, False)
        assert evaluation.started_at >= trial.ended_at  # after the trial's training
        assert evaluation.params["learning_rate"] == trial.params["learning_rate"] == rate
        _at_the_meters_power(evaluation)
        # the evaluation's metrics: on its run, and on the trial's at its last step, as before
        assert evaluation.metric("eval_loss") == trial.metric("eval_loss") is not None
        if attached:
            assert trial.metric("objective_loss") == trial.metric("eval_loss")
    assert cb.last_evaluation_id == runs["trial-1-evaluate"][0].id

    records = gp.Ledger(db).runs(study="hp-eval")
    tag = price_tag(records)
    assert (tag.total.runs, tag.total.trials) == (4, 2)  # the trials: the search's two
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in records), rel=1e-9)


# ------------------------------------------------------------------ Lightning lr_find under DDP
#: ``Tuner(trainer).lr_find`` then ``fit`` on 2 CPU ranks with ``strategy="ddp"`` (Lightning
#: starts rank 1 as a new run of this script; ``ddp_spawn`` and ``ddp_fork`` fail inside
#: Lightning 2.6's ``lr_find``), each rank's meter the test meter.
LIGHTNING_LR_FIND_DDP = """
import os, sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower


class M(pl.LightningModule):
    def __init__(self, lr=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=4)
    cb = GreenprintCallback("ddp", study="ddp", ledger=os.path.abspath("gp.db"),
                            meters=ConstantProcessPower(@WATTS@), sample_interval_s=0.05,
                            flush_interval_s=0.1)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    model = M()
    Tuner(trainer).lr_find(model, data, min_lr=1e-4, max_lr=1e-2, num_training=6)
    trainer.fit(model, data)
    torch.distributed.destroy_process_group()
"""


@pytest.mark.slow  # 2 ranks, each importing Lightning: about 15 s on a 2-vCPU VM
def test_lightning_lr_find_under_ddp_is_a_part_of_the_fit_metered_once_per_node(
    tmp_path_factory,
):
    """Before: under DDP the finder's training made no run (``setup`` returned with several
    processes): its cost was in no price tag. Now it is measured as the fit is: local rank 0's
    ``ddp-lr_find`` meters the node, a ``part`` of the node's fit (``contained`` false: added
    once), rank 1's ``ddp-lr_find-rank1`` a part of it with no energy of its own; one trial."""
    from _clean_env import clean_env
    from _report_cli import empty_home

    need_installed("lightning", "lightning")
    home = empty_home(tmp_path_factory, "lit-lr-ddp")
    script = LIGHTNING_LR_FIND_DDP.replace("@METERS@", repr(s25.METERS_DIR))
    (home / "lr.py").write_text(script.replace("@WATTS@", repr(WATTS)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "lr.py"],
        cwd=home,
        env={**clean_env(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = gp.Ledger(home / "gp.db").runs(study="ddp")
    runs = {r.name: r for r in records}
    assert set(runs) == {"ddp", "ddp-rank1", "ddp-lr_find", "ddp-lr_find-rank1"}  # was 2
    fit, finder, rank1 = runs["ddp"], runs["ddp-lr_find"], runs["ddp-lr_find-rank1"]
    assert (fit.status, fit.role, fit.parent_id) == ("finished", None, None)
    assert (finder.status, finder.role) == ("finished", "part")
    assert (finder.parent_id, finder.contained) == (fit.id, False)
    assert finder.ended_at <= fit.started_at
    _at_the_meters_power(finder)
    assert (rank1.status, rank1.role, rank1.parent_id) == ("finished", "part", finder.id)
    assert rank1.energy_kwh == 0  # one meter per node
    tag = price_tag(records)
    assert (tag.total.runs, tag.total.trials) == (4, 1)
    assert tag.total.energy_kwh == pytest.approx(fit.energy_kwh + finder.energy_kwh, rel=1e-9)
