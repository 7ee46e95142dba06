"""Session 30: a Hugging Face model trained again with other ``TrainingArguments`` is one training.

A fine-tune of a trained model by a second Trainer changes what a fine-tune changes: the
learning rate, the epoch count (or ``max_steps``), the output folder, the seed. The weights the
first training left are trained on: one training. The callback linked the two trainings only
when every param was equal, and its params are those TrainingArguments: such a fine-tune read
as a trial of its own, at a fraction of what training the model cost (Lightning compares the
module's hyper-parameters and leaves out its ``trainer.*`` params). A search whose
``model_init`` makes a new model for each trial keeps a trial per model.

A tiny BERT built from a config, on CPU, one thread, offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._frameworks import frozen_heap, need_installed, one_thread

need_installed("transformers", "transformers")
need_installed("torch", "torch")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import transformers (and torch) when this module's tests run, not at collection; train on
    one thread (a tiny BERT: the pool's spinning threads cost more CPU than they save); the
    objects alive once they are imported frozen out of the collector's reach (:func:`frozen_heap`:
    the Trainer collects at each ``train()``)."""
    global transformers, Trainer, TrainingArguments, GreenprintCallback, Tokens, tiny_bert
    import transformers
    from transformers import Trainer, TrainingArguments

    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    with one_thread(), frozen_heap():
        yield


def _args(tmp_path: Path, out: str, **kwargs: Any) -> TrainingArguments:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path / out),
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=8,
        logging_steps=2,
        save_strategy="no",
        disable_tqdm=True,
    )
    options.update(kwargs)
    return TrainingArguments(**options)


def _train(tmp_path: Path, model: Any, args: TrainingArguments, **options: Any) -> str:
    """Train ``model`` by a new Trainer with a new attached callback; its run id."""
    trainer = Trainer(model=model, args=args, train_dataset=Tokens(n=16))
    cb = GreenprintCallback("bert-ft", study="hf", ledger=tmp_path / "gp.db", **FAST, **options)
    cb.attach(trainer)
    trainer.train()
    assert cb.last_run_id is not None
    return cb.last_run_id


def _runs(tmp_path: Path) -> dict[str, gp.RunRecord]:
    return {r.id: r for r in gp.Ledger(tmp_path / "gp.db").runs(study="hf")}


def test_a_fine_tune_with_other_training_arguments_is_one_trial_costing_both(
    tmp_path: Path,
) -> None:
    """A second Trainer fine-tunes the trained model with another learning rate, epochs in
    place of max_steps, another seed, weight decay and output folder: its run takes the first
    training's as a part (contained false), one trial whose cost is both trainings'. Before:
    two trials, the fine-tuned model's at a fraction of what training it cost."""
    model = tiny_bert()
    first_id = _train(tmp_path, model, _args(tmp_path, "pre", learning_rate=1e-3, max_steps=4))
    second_id = _train(
        tmp_path,
        model,
        _args(tmp_path, "ft", learning_rate=1e-4, num_train_epochs=2, seed=7, weight_decay=0.01),
    )
    runs = _runs(tmp_path)
    first, second = runs[first_id], runs[second_id]
    assert first.params["learning_rate"] == 1e-3 and first.params["max_steps"] == 4
    assert second.params["learning_rate"] == 1e-4 and second.params["num_train_epochs"] == 2
    assert (first.role, first.parent_id, first.contained) == ("part", second.id, False)
    assert (second.role, second.parent_id) == (None, None)
    tag = price_tag(runs.values(), metric="loss", mode="min")
    both = first.energy_kwh + second.energy_kwh
    assert first.energy_kwh > 0 and second.energy_kwh > 0
    assert (tag.total.runs, tag.total.trials) == (2, 1)
    assert tag.final is not None and tag.final.run_id == second.id
    assert tag.final.energy_kwh == pytest.approx(both, rel=1e-9)
    assert tag.total.energy_kwh == pytest.approx(both, rel=1e-9)


def test_a_loop_over_learning_rates_of_one_model_object_is_one_training(tmp_path: Path) -> None:
    """A loop that trains one model object at each learning rate trains the weights the last
    rate left: one training (a chain of runs, one trial), as the docs say. A new model for
    each rate is a trial per rate; your own params, when they differ, keep the runs apart."""
    model = tiny_bert()
    same = [
        _train(tmp_path, model, _args(tmp_path, f"lr{rate}", learning_rate=rate, max_steps=2))
        for rate in (1e-3, 1e-4, 1e-5)
    ]
    runs = _runs(tmp_path)
    assert [runs[k].parent_id for k in same] == [same[1], same[2], None]
    fresh = [
        _train(tmp_path, tiny_bert(), _args(tmp_path, f"new{r}", learning_rate=r, max_steps=2))
        for r in (1e-3, 1e-4)
    ]
    model = tiny_bert()
    declared = [
        _train(
            tmp_path,
            model,
            _args(tmp_path, f"own{rate}", learning_rate=rate, max_steps=2),
            params={"sweep_lr": rate},
        )
        for rate in (1e-3, 1e-4)
    ]
    runs = _runs(tmp_path)
    assert all((runs[k].parent_id, runs[k].role) == (None, None) for k in fresh + declared)
    tag = price_tag(runs.values(), metric="loss", mode="min")
    assert (tag.total.runs, tag.total.trials) == (7, 5)


def test_a_model_init_search_keeps_a_trial_per_model(tmp_path: Path) -> None:
    """``trainer.hyperparameter_search`` makes each trial's model with ``model_init``: 3 trials
    of 3 learning rates are 3 trials, none a part of another, whatever their arguments."""
    need_installed("optuna", "optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rates = [1e-4, 3e-2, 2e-1]

    def space(trial: Any) -> dict[str, float]:
        rate = rates[trial.number]
        return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}

    trainer = Trainer(
        model_init=tiny_bert,
        args=_args(tmp_path, "search", max_steps=2),
        train_dataset=Tokens(n=16),
        eval_dataset=Tokens(n=8, seed=1),
    )
    cb = GreenprintCallback("bert-ft", study="hf", ledger=tmp_path / "gp.db", **FAST)
    cb.attach(trainer)
    trainer.hyperparameter_search(
        hp_space=space, backend="optuna", n_trials=3, direction="minimize"
    )
    trials = [r for r in _runs(tmp_path).values() if r.role == "trial"]
    assert sorted(r.params["learning_rate"] for r in trials) == rates
    assert all(r.parent_id is None for r in trials)
    parts = [r for r in _runs(tmp_path).values() if r.role == "part"]
    assert all(r.parent_id in {t.id for t in trials} for r in parts)  # their evaluations
