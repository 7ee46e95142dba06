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
  Tested in test_lightning_refit_ddp_s30.py, whose DDP launch runs it beside the other
  Lightning DDP studies (a launch of its own: two ranks importing Lightning, about 16 s of CPU).
"""

from __future__ import annotations

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
