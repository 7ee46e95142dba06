"""Session 26: a Hugging Face training's run misses what ``train()`` does first (helper G).

``Trainer.train`` makes the model (``model_init``: for a real model, its loading from disk and
onto the GPU), sets a search trial's hyper-parameters, frees memory (a garbage collection),
builds the data loader and the optimizer before it calls ``on_train_begin``, where the run
started: that time and energy were in no run. In a 3-trial tiny-BERT Optuna search the trials'
runs held 2.7 % of the search's wall time; each is now measured from the ``train`` call (with
``attach``): 35 %. Most of the rest is Hugging Face's memory release after each trial's
objective (two garbage collections) and Optuna's own work, outside ``train()``: a
``gp.track(..., role="sweep")`` around the search holds it (99.7 %).

Ray Tune's backend pickles the trainer, callbacks and wrapped methods included, inside the
search and sends the copy to its workers: the callback's copy forgot its trainer (so the
wrapped methods measured nothing more than the hooks do) and, pickled inside a ``train()``
call, believed itself inside one (its trial's objective evaluation was in no run). Tested here
with a ``cloudpickle`` round trip, as Ray's, and the copy run as a Ray worker runs it, no
cluster.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations import test_integrations_s25 as s25
from integrations._frameworks import need_installed
from integrations.test_integrations_s25 import FAST, WATTS, _at_the_meters_power, _by_name
from tracking._meters import ConstantProcessPower

#: transformers, torch and the tiny BERT kit, on one thread (session 25's fixture).
hf = s25.hf

#: How long the test's ``model_init`` takes, in s (a model loaded from disk, in miniature).
LOAD_S = 0.3
#: The learning rate of each trial, by trial number.
RATES = [1e-4, 3e-2]


def _slow_model_init(hf, log: Path, fail_after: int | None = None):
    """A ``model_init`` that takes :data:`LOAD_S` and notes in ``log`` when each call began.

    A file, not a list: a pickled trainer's copy (Ray's) notes its calls in the same place.
    """

    def model_init():
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{time.time()!r}\n")
        if fail_after is not None and len(_calls(log)) > fail_after:
            raise RuntimeError("no such checkpoint")
        time.sleep(LOAD_S)
        return hf["tiny_bert"]()

    return model_init


def _calls(log: Path) -> list[float]:
    """When each call of a :func:`_slow_model_init` began (seconds since the epoch)."""
    return [float(line) for line in log.read_text(encoding="utf-8").split()]


def _args(hf, tmp_path):
    return hf["TrainingArguments"](
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=1,
        per_device_train_batch_size=8,
        eval_strategy="no",  # the search evaluates each trial after its training
        save_strategy="no",
        disable_tqdm=True,
    )


def _callback_of(trainer):
    """The greenprint callback among a trainer's callbacks."""
    from greenprint.integrations.transformers import GreenprintCallback

    (cb,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, GreenprintCallback)]
    return cb


def _hp_space(trial):
    rate = RATES[trial.number]
    return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}


def test_search_trials_span_their_train_call_here_and_in_a_ray_workers_copy(hf, tmp_path):
    """Before: each trial's run started at ``on_train_begin``, after ``model_init`` (0.3 s
    here) had run: shorter than the model's making. Now it starts at the ``train`` call: it
    holds ``model_init``, its energy the meter's power x its time; named by your ``hp_name``
    (which reads the trial's params, set after the call), the trial's params, one trial each.
    A copy of the trainer pickled inside the search (in a trial's ``train()``, as Ray Tune
    pickles it inside the search) and run as a Ray worker runs a trial records that trial the
    same way, its objective evaluation a part of it (before: no evaluation run, the run from
    ``on_train_begin``)."""
    need_installed("optuna", "optuna")
    need_installed("cloudpickle", "cloudpickle")  # Ray's pickler
    need_installed("ray", "ray")  # the Trainer reads a dict trial as Ray Tune's only with Ray
    import cloudpickle
    import optuna
    from transformers.trainer_utils import HPSearchBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "gp.db"
    cb = hf["Callback"](study="span", ledger=db, meters=ConstantProcessPower(WATTS), **FAST)
    log = tmp_path / "model_init.log"
    trainer = hf["Trainer"](
        model_init=_slow_model_init(hf, log),
        args=_args(hf, tmp_path),
        train_dataset=hf["Tokens"](16),
        eval_dataset=hf["Tokens"](16, seed=1),
    )
    cb.attach(trainer)
    copies = []

    def hp_space(trial):
        if not copies:  # inside the search and inside trial 0's train()
            # accelerate's process-wide GradientState keeps weak references to the data loaders
            # of earlier trainings in this process left unfinished (earlier tests'), which no
            # pickler takes, Ray's neither: a driver that trained nothing before has none
            gradients = getattr(trainer.accelerator, "gradient_state", None)
            if gradients is not None:
                gradients._dataloader_references_ref = [None]
            copies.append(cloudpickle.loads(cloudpickle.dumps(trainer)))
        return _hp_space(trial)

    trainer.hyperparameter_search(
        hp_space=hp_space,
        hp_name=lambda trial: f"lr={trial.params['learning_rate']:g}",
        backend="optuna",
        n_trials=len(RATES),
    )

    calls = _calls(log)
    runs = _by_name(db, "span")
    assert sorted(runs) == ["lr=0.0001", "lr=0.0001-evaluate", "lr=0.03", "lr=0.03-evaluate"]
    for k, rate in enumerate(RATES):
        name = f"lr={rate:g}"
        (trial,) = runs[name]
        (evaluation,) = runs[f"{name}-evaluate"]
        assert (trial.status, trial.role, trial.parent_id) == ("finished", "trial", None)
        assert trial.params["learning_rate"] == rate
        # calls[0] is the Trainer's own, when it was made; then one per trial
        assert trial.started_at <= calls[k + 1]
        assert trial.duration_s >= LOAD_S  # was less: model_init was outside it
        _at_the_meters_power(trial)
        assert (evaluation.parent_id, evaluation.contained) == (trial.id, False)
        assert evaluation.started_at >= trial.ended_at
    tag = price_tag(gp.Ledger(db).runs(study="span"))
    assert (tag.total.runs, tag.total.trials) == (4, 2)

    # a Ray worker's trial: local_trainer.train(trial=<dict>), then evaluate and the objective
    (worker,) = copies
    worker.hp_search_backend = HPSearchBackend.RAY
    worker.hp_name = lambda trial: f"ray-lr={trial['learning_rate']:g}"  # a Ray trial: a dict
    worker.objective = None
    called = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray: "get_trial_id ... outside a Tuner": no cluster
        worker.train(trial={"learning_rate": 2e-2})
    metrics = worker.evaluate()
    objective = worker.compute_objective(metrics)

    (trial,) = [
        r for r in gp.Ledger(db).runs(study="span") if r.id == _callback_of(worker).last_run_id
    ]
    assert (trial.name, trial.status, trial.role) == ("ray-lr=0.02", "finished", "trial")
    assert trial.params["learning_rate"] == 2e-2
    assert called <= trial.started_at <= _calls(log)[-1]  # was after: at on_train_begin
    assert trial.duration_s >= LOAD_S
    _at_the_meters_power(trial)
    (evaluation,) = [r for r in gp.Ledger(db).runs(study="span") if r.parent_id == trial.id]
    assert (evaluation.name, evaluation.role) == (f"{trial.name}-evaluate", "part")
    assert evaluation.contained is False
    assert evaluation.metric("eval_loss") == metrics["eval_loss"]  # was no evaluation run
    assert trial.metric("objective_loss") == objective  # the search's objective, minimised


def test_a_training_starts_at_the_train_call_and_a_model_init_that_raises_is_a_failed_run(
    hf, tmp_path
):
    """Before: the run of ``trainer.train()`` started after ``model_init`` and a ``model_init``
    that raised left no run (its cost in no price tag). Now, attached, the run spans the call:
    named after the model's class, with its params as before, holding ``model_init``; one that
    raises there ends ``failed`` with the error and its cost, and the exception reaches you."""
    db = tmp_path / "gp.db"
    cb = hf["Callback"](study="call", ledger=db, meters=ConstantProcessPower(WATTS), **FAST)
    log = tmp_path / "model_init.log"
    trainer = hf["Trainer"](
        model_init=_slow_model_init(hf, log, fail_after=2),
        args=_args(hf, tmp_path),
        train_dataset=hf["Tokens"](16),
    )
    cb.attach(trainer)
    trainer.train()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="no such checkpoint"):
        warnings.simplefilter("ignore")
        trainer.train()

    calls = _calls(log)
    (trained, failed) = gp.Ledger(db).runs(study="call")
    assert trained.name == failed.name == "BertForSequenceClassification"
    assert (trained.status, trained.role, trained.parent_id) == ("finished", None, None)
    assert trained.params["learning_rate"] == failed.params["learning_rate"] == 5e-5
    assert trained.params["max_steps"] == 1
    assert trained.dataset_size == 8  # one step of 8 examples
    assert trained.started_at <= calls[1]
    assert trained.duration_s >= LOAD_S
    _at_the_meters_power(trained)
    assert (failed.status, failed.parent_id) == ("failed", None)  # was no run
    assert "RuntimeError: no such checkpoint" in failed.error
    assert failed.started_at <= calls[2]
    assert failed.energy_kwh > 0
