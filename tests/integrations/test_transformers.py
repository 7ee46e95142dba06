"""The Trainer callback on a real transformers Trainer: a tiny BERT built from a config, CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import ConfigError, LedgerError
from integrations._frameworks import frozen_heap, need_installed, one_thread

need_installed("transformers", "transformers")
need_installed("torch", "torch")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import torch and transformers when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; these imports take seconds of CPU. The names
    are this module's globals, as a top-level import would make them. Training runs on one
    thread (tiny models: the pool's spinning threads cost more CPU than they save); the objects
    alive once they are imported are frozen out of the collector's reach (:func:`frozen_heap`:
    the Trainer collects at each ``train()``).
    """
    global torch, transformers, Trainer, TrainerCallback, TrainingArguments, GreenprintCallback
    global add_co2_to_model_card, model_card_co2, Tokens, tiny_bert, Reporter
    import torch
    import transformers
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from greenprint.integrations.transformers import (
        GreenprintCallback,
        add_co2_to_model_card,
        model_card_co2,
    )
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    Reporter = _reporter_class()
    with one_thread(), frozen_heap():
        yield


def _args(tmp_path: Path, **kwargs) -> TrainingArguments:
    options = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=4,
        per_device_train_batch_size=8,
        logging_steps=2,
        eval_strategy="no",
        eval_steps=2,
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    options.update(kwargs)
    return TrainingArguments(**options)


def _reporter_class() -> type:
    class Reporter(TrainerCallback):
        """Stands for W&B or MLflow: a reporter that the Trainer lists before user callbacks."""

        def __init__(self) -> None:
            self.seen: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.seen.append(dict(logs or {}))

    return Reporter


def test_training_is_one_run_and_reporters_see_the_figures(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    reporter = Reporter()
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, eval_strategy="steps"),
        train_dataset=Tokens(),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[reporter],
    )
    cb = GreenprintCallback("bert", study="hf", ledger=db, role="final", **FAST).attach(trainer)
    assert trainer.callback_handler.callbacks[0] is cb
    trainer.train()

    (record,) = gp.Ledger(db).runs(study="hf")
    assert (record.name, record.status, record.role) == ("bert", "finished", "final")
    assert record.params["learning_rate"] == 1e-3 and record.params["max_steps"] == 4
    assert "num_train_epochs" not in record.params  # max_steps overrides it: it read 3.0
    assert record.dataset_size == 32  # the training set's examples (E x D x H)
    assert record.energy_kwh > 0
    names = {p.name for p in record.metrics}
    assert {"loss", "eval_loss", "learning_rate"} <= names
    assert not any(n.startswith("greenprint/") for n in names)  # the run's fields, not metrics
    # every training log the reporter saw carries greenprint's figures, added before it ran;
    # an evaluation's logs are the metrics evaluate() returns: the Trainer's own, untouched
    training = [logs for logs in reporter.seen if "eval_runtime" not in logs]
    evaluations = [logs for logs in reporter.seen if "eval_runtime" in logs]
    assert len(training) >= 2 and len(evaluations) == 2
    assert all("greenprint/emissions_kg" in logs for logs in training)
    assert not any(k.startswith("greenprint/") for logs in evaluations for k in logs)
    energies = [logs["greenprint/energy_kwh"] for logs in training]
    assert energies == sorted(energies) and energies[-1] <= record.energy_kwh
    assert all(logs["greenprint/power_w"] >= 0 for logs in training)
    # eval metrics are copied once per evaluation (on_evaluate), not twice; so is the epoch the
    # evaluation's logs carry (it was copied from on_log too: 3 points at step 2, 4 at step 4)
    assert [p.step for p in record.metrics if p.name == "eval_loss"] == [2, 4]
    assert [p.step for p in record.metrics if p.name == "epoch"] == [2, 2, 4, 4, 4]

    # evaluations after train() are the trained model's scores: on the run, at its last step
    # (they were dropped: the run had ended)
    tested = trainer.evaluate(Tokens(16, seed=2), metric_key_prefix="test")
    predicted = trainer.predict(Tokens(8, seed=3), metric_key_prefix="holdout").metrics
    runs = gp.Ledger(db).runs(study="hf")
    (record,) = [r for r in runs if r.name == "bert"]
    # each measured as a part of the training (s25), its metrics still on the training's run
    assert sorted(r.name for r in runs if r.parent_id == record.id) == [
        "bert-evaluate",
        "bert-predict",
    ]
    assert [(p.step, p.value) for p in record.metrics if p.name == "test_loss"] == [
        (4, pytest.approx(tested["test_loss"]))
    ]
    assert record.metric("holdout_loss") == pytest.approx(predicted["holdout_loss"])
    assert record.status == "finished" and [p.step for p in record.metrics][-1] == 4


def test_without_attach_the_callback_still_records(tmp_path: Path) -> None:
    cb = GreenprintCallback(ledger=False, **FAST)
    args = _args(tmp_path, eval_strategy="steps", max_steps=-1, num_train_epochs=1)  # 4 steps
    trainer = Trainer(model=tiny_bert(), args=args,
                      train_dataset=Tokens(), eval_dataset=Tokens(16), callbacks=[cb])  # fmt: skip
    trainer.train()
    assert cb.run is not None and cb.run.status == "finished"
    assert cb.run.name == "BertForSequenceClassification"
    # trained by epochs: those are its params, not max_steps=-1 (which it read)
    assert cb.run.record.params["num_train_epochs"] == 1 and "max_steps" not in cb.run.record.params


def test_an_exception_caught_around_train_still_ends_the_run_failed(tmp_path: Path) -> None:
    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise RuntimeError("CUDA out of memory")

    db = tmp_path / "gp.db"
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path), train_dataset=Tokens(),
                      callbacks=[Boom()])  # fmt: skip
    cb = GreenprintCallback("oom", study="hf", ledger=db, **FAST).attach(trainer)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train()
    assert cb.run.status == "failed"
    (record,) = gp.Ledger(db).runs(study="hf")
    assert record.status == "failed" and "RuntimeError: CUDA out of memory" in record.error


CRASH_SCRIPT = """
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, Trainer,
                          TrainerCallback, TrainingArguments)
from greenprint.integrations.transformers import GreenprintCallback


class Boom(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:  # after the checkpoint of step 2
            raise RuntimeError("loss is NaN")


data = [{"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)}
        for i in range(32)]
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16, num_labels=2)
args = TrainingArguments(output_dir="out", report_to="none", use_cpu=True, max_steps=4,
                         per_device_train_batch_size=8, save_strategy="steps", save_steps=2,
                         disable_tqdm=True)
cb = GreenprintCallback("crash", study="hf", ledger="gp.db", sample_interval_s=0.05,
                        flush_interval_s=0.1)
trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                  train_dataset=data, callbacks=[cb, Boom()])
trainer.train()  # not attached: greenprint's own excepthook ends the run
"""


def test_a_crash_that_ends_the_program_ends_the_run_failed(tmp_path: Path) -> None:
    """And the training resumed from its checkpoint in a new process is one training (issue
    12): the crashed run, which wrote its id beside each checkpoint, becomes a part of the
    resumed run (failed, its error and cost kept, added once: it ran before), not a second
    trial."""
    from _report_cli import run_in

    (tmp_path / "crash.py").write_text(CRASH_SCRIPT)
    # ``python crash.py`` with a new user's environment (this module's offline settings, the
    # worker's one thread): in a child of the Transformers fork server of this pytest process
    # when one is up (_script_fork), its uncaught error reaching greenprint's excepthook as ever
    done = run_in(tmp_path, sys.executable, "crash.py", timeout=240)
    assert done.returncode == 1 and "RuntimeError: loss is NaN" in done.stderr
    (record,) = gp.Ledger(tmp_path / "gp.db").runs(study="hf")
    assert (record.name, record.status) == ("crash", "failed")
    assert "RuntimeError: loss is NaN" in record.error
    assert record.energy_kwh > 0
    assert (tmp_path / "out" / "checkpoint-2" / "greenprint_run.json").is_file()

    from greenprint.analysis import price_tag

    # resumed here, as a new process would (a new trainer and callback, the same ledger)
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path, save_strategy="steps",
                      save_steps=2), train_dataset=Tokens())  # fmt: skip
    cb = GreenprintCallback("crash", study="hf", ledger=tmp_path / "gp.db", **FAST)
    cb.attach(trainer)
    trainer.train(resume_from_checkpoint=True)
    runs = {r.id: r for r in gp.Ledger(tmp_path / "gp.db").runs(study="hf")}
    assert len(runs) == 2
    resumed, earlier = runs[cb.last_run_id], runs[record.id]
    assert resumed.status == "finished" and resumed.parent_id is None
    assert (earlier.role, earlier.parent_id, earlier.contained) == ("part", resumed.id, False)
    assert earlier.status == "failed" and "loss is NaN" in earlier.error
    assert earlier.energy_kwh == record.energy_kwh  # its cost kept
    tag = price_tag(list(runs.values()))
    assert tag.total.trials == 1 and tag.by_status["failed"].runs == 1
    assert tag.total.energy_kwh == pytest.approx(resumed.energy_kwh + earlier.energy_kwh)

    # a training resumed from a checkpoint given by its path, one without the file (pushed to
    # the Hub before the callback wrote it, copied from elsewhere), is one of its own: the
    # checkpoint of the same step in output_dir is another training's
    assert (tmp_path / "out" / "checkpoint-4" / "greenprint_run.json").is_file()  # resumed's
    shutil.copytree(tmp_path / "out" / "checkpoint-4", tmp_path / "hub" / "last-checkpoint")
    (tmp_path / "hub" / "last-checkpoint" / "greenprint_run.json").unlink()
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path), train_dataset=Tokens())
    other = GreenprintCallback("crash", study="hf", ledger=tmp_path / "gp.db", **FAST)
    other.attach(trainer)
    trainer.train(resume_from_checkpoint=str(tmp_path / "hub" / "last-checkpoint"))
    assert {r.id: r.parent_id for r in gp.Ledger(tmp_path / "gp.db").runs(study="hf")} == {
        earlier.id: resumed.id,
        resumed.id: None,
        other.last_run_id: None,
    }


def test_hyperparameter_search_trials_are_trials_pruned_and_failed_too(
    tmp_path: Path, require_component
) -> None:
    require_component(_has("optuna"), "optuna is not installed (greenprint[optuna])")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rates = [1e-3, 2e-3, 0.9, 3e-3]  # trial 1 is pruned, trial 2 diverges

    class FailBigSteps(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.trial_params and state.trial_params["learning_rate"] > 0.5:
                raise ValueError("diverged")

    class PruneSecond(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number == 1

    def hp_space(trial):
        rate = rates[trial.number]
        return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}

    db = tmp_path / "gp.db"
    trainer = Trainer(
        model_init=tiny_bert,
        args=_args(tmp_path, eval_strategy="steps"),
        train_dataset=Tokens(),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[FailBigSteps()],
    )
    GreenprintCallback(study="hpo", ledger=db, **FAST).attach(trainer)
    trainer.hyperparameter_search(
        hp_space=hp_space,
        direction="minimize",
        backend="optuna",
        n_trials=4,
        pruner=PruneSecond(),
        catch=(ValueError,),
    )
    records = sorted(gp.Ledger(db).runs(study="hpo"), key=lambda r: r.started_at)
    assert [(r.name, r.role, r.status) for r in records] == [
        ("trial-0", "trial", "finished"),
        ("trial-1", "trial", "pruned"),
        ("trial-2", "trial", "failed"),
        ("trial-3", "trial", "finished"),
    ]
    assert [r.params["learning_rate"] for r in records] == rates
    assert "ValueError: diverged" in records[2].error
    # the objective minimised (the default: the evaluation loss), as the pruner judged it
    for record in (records[0], records[1], records[3]):
        assert record.metric("objective_loss") == record.metric("eval_loss") is not None
    assert all(r.energy_kwh > 0 for r in records)
    # when and by what trial 1 was pruned: the last step the Trainer reported to Optuna
    # (trial.report(objective, global_step): the steps of the run's objective_loss)
    reported = [p.step for p in records[1].metrics if p.name == "objective_loss"]
    assert reported and records[1].provenance["pruned_at_step"] == str(max(reported))
    assert records[1].provenance["pruned_by"] == "Optuna PruneSecond"
    assert "pruned_at_step" not in records[0].provenance


def _has(module: str) -> bool:
    from greenprint._imports import is_available

    return is_available(module)


def test_model_card_gets_co2_eq_emissions_in_grams(tmp_path: Path) -> None:
    trainer = Trainer(model=tiny_bert(), args=_args(tmp_path), train_dataset=Tokens(64))
    cb = GreenprintCallback(ledger=False, region="DE", **FAST).attach(trainer)
    trainer.train()
    # max_steps=4 of 8 examples reach 32 of the 64 (it read 64: E x D x H's D)
    assert cb.run.record.dataset_size == 32
    path = cb.create_model_card(trainer, model_name="tiny", training_type="fine-tuning")
    from huggingface_hub import ModelCard

    card = ModelCard.load(path)
    block = card.data.co2_eq_emissions
    assert block["emissions"] == pytest.approx(cb.run.emissions_kg * 1000, rel=1e-5)
    assert block["training_type"] == "fine-tuning"
    assert block["geographical_location"] == "DE"  # a place, as a report's card says it
    assert block["source"].startswith("greenprint ")
    assert "generated_from_trainer" in card.data.tags  # the Trainer's card is kept
    assert model_card_co2(cb.run.record) == {k: v for k, v in block.items() if k != "training_type"}


def test_bad_input_is_a_greenprint_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PUE|pue"):
        GreenprintCallback(ledger=tmp_path / "gp.db", pue=0)
    with pytest.raises(ConfigError, match="sets pid itself"):
        GreenprintCallback(pid=1)
    ledger = gp.Ledger(tmp_path / "gp.db")
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        GreenprintCallback(ledger=ledger)
    cb = GreenprintCallback(ledger=False)
    with pytest.raises(ConfigError, match="transformers.Trainer"):
        cb.attach(object())
    with pytest.raises(ConfigError, match="TrainingArguments"):
        cb.on_train_begin({"lr": 1}, None, None)
    with pytest.raises(ConfigError, match="after trainer.train"):
        cb.create_model_card(Trainer(model=tiny_bert(), args=_args(tmp_path)))
    with pytest.raises(ConfigError, match="Run or RunRecord"):
        model_card_co2({"emissions_kg": 1})
    with pytest.raises(ConfigError, match="no model card"):
        add_co2_to_model_card(tmp_path / "missing.md", gp.track(ledger=False))
    t1 = Trainer(model=tiny_bert(), args=_args(tmp_path))
    cb.attach(t1)
    cb.attach(t1)  # again: still first, wrapped once
    assert [c for c in t1.callback_handler.callbacks if c is cb] == [cb]
    with pytest.raises(ConfigError, match="another Trainer"):
        cb.attach(Trainer(model=tiny_bert(), args=_args(tmp_path)))


def test_without_transformers_the_import_error_names_the_extra(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["transformers"] = None
        from greenprint import MissingDependencyError
        try:
            import greenprint.integrations.transformers
        except MissingDependencyError as e:
            print(e)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pip install 'greenprint[transformers]'" in done.stdout


@pytest.mark.parametrize("attached", [True, False])
def test_a_real_reporter_logs_the_figures_only_when_attached(
    tmp_path: Path, attached: bool, require_component, monkeypatch
) -> None:
    require_component(_has("tensorboard"), "tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(logs))
    args = _args(tmp_path, report_to=["tensorboard"])
    cb = GreenprintCallback(ledger=False, **FAST)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(),
                      callbacks=[] if attached else [cb])  # fmt: skip
    if attached:
        cb.attach(trainer)
    trainer.train()
    events = EventAccumulator(str(logs))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    figures = {"train/greenprint/energy_kwh", "train/greenprint/power_w"}
    if attached:  # first in the list: TensorBoard's reporter saw greenprint's figures
        assert figures <= tags
        energy = [e.value for e in events.Scalars("train/greenprint/energy_kwh")]
        assert energy == sorted(energy) and 0 < energy[-1] <= cb.run.energy_kwh
    else:  # the Trainer lists its reporters before user callbacks: they log before ours
        assert not figures & tags and "train/loss" in tags


def test_the_callback_pickles_with_its_warnings_given_and_warns_once_after() -> None:
    """Ray-backed searches pickle the callback with the trainer: its warning state goes along
    (no lock in the pickle), and a warning already given is not given again by the copy."""
    import pickle
    import warnings

    cb = GreenprintCallback(ledger=False)
    with pytest.warns(UserWarning, match="first"):
        cb._warn_once("k", "greenprint: first")
    copy = pickle.loads(pickle.dumps(cb))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy._warn_once("k", "greenprint: again")  # given already: silent
    with pytest.warns(UserWarning, match="other"):
        copy._warn_once("other", "greenprint: other")
