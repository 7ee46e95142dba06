"""Trainer.hyperparameter_search: the trials carry the objective the search optimised.

A real Trainer search (Optuna backend) of a tiny BERT built from a config, on CPU, offline.
The report must rank the trials the way the search did: by the value ``compute_objective``
returned, maximised or minimised as ``direction`` said, not by ``eval_loss`` minimised.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.report import build_report, render
from integrations._frameworks import frozen_heap, need_installed, one_thread

need_installed("transformers", "transformers")
need_installed("torch", "torch")
need_installed("optuna", "optuna")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import transformers (and torch) when this module's tests run, not at collection; train on
    one thread.

    Every pytest-xdist worker collects every module; these imports take seconds of CPU. The names
    are this module's globals, as a top-level import would make them. A tiny BERT gains nothing
    from torch's thread pool, whose threads spin for work: one thread halves the CPU training
    takes (the loaded 2-core suite), the figures are the same. The objects alive once they are
    imported are frozen out of the collector's reach (:func:`frozen_heap`).
    """
    global optuna, transformers, Trainer, TrainingArguments, GreenprintCallback, Tokens, tiny_bert
    import optuna
    import transformers
    from transformers import Trainer, TrainingArguments

    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with one_thread(), frozen_heap():
        yield


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
#: Learning rates of the trials, one per trial number. On this data the highest accuracy
#: (0.2) and the lowest evaluation loss (1e-4) are different trials: each ranking is visible.
RATES = [1e-4, 3e-2, 2e-1]


def _hp_space(trial):
    rate = RATES[trial.number]
    return {"learning_rate": trial.suggest_float("learning_rate", rate, rate)}


def _accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def _trainer(tmp_path: Path, *, metrics: bool, **kwargs) -> Trainer:
    options = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        max_steps=8,
        per_device_train_batch_size=8,
        logging_steps=4,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="no",
        disable_tqdm=True,
    )
    options.update(kwargs)
    return Trainer(
        model_init=tiny_bert,
        args=TrainingArguments(**options),
        train_dataset=Tokens(64),
        eval_dataset=Tokens(64, seed=1),
        compute_metrics=_accuracy if metrics else None,
    )


def _trials(db: Path, study: str) -> list[gp.RunRecord]:
    runs = gp.Ledger(db).runs(study=study)
    return sorted((r for r in runs if r.role == "trial"), key=lambda r: r.started_at)


def test_a_maximised_accuracy_search_is_ranked_by_its_objective_maximised(
    tmp_path: Path,
) -> None:
    """direction="maximize" on an accuracy objective: each evaluation's objective is logged as
    ``objective``; the report ranks by it, maximised, and its best trial is the search's best:
    the highest accuracy, not the lowest loss. The retrain then logs the objective too and is
    the final run, scored by it."""
    db = tmp_path / "gp.db"
    trainer = _trainer(tmp_path, metrics=True)
    GreenprintCallback(study="acc", ledger=db, **FAST).attach(trainer)
    best = trainer.hyperparameter_search(
        hp_space=_hp_space,
        compute_objective=lambda m: m["eval_accuracy"],
        direction="maximize",
        backend="optuna",
        n_trials=len(RATES),
    )
    trials = _trials(db, "acc")
    assert [r.params["learning_rate"] for r in trials] == RATES
    for trial in trials:  # the value the Trainer reported to Optuna, at each evaluation
        objective = [(p.step, p.value) for p in trial.metrics if p.name == "objective"]
        accuracy = [(p.step, p.value) for p in trial.metrics if p.name == "eval_accuracy"]
        assert objective == accuracy and [s for s, _ in objective] == [4, 8]
        assert "objective_loss" not in {p.name for p in trial.metrics}
    top = max(trials, key=lambda r: r.metric("eval_accuracy"))
    lowest_loss = min(trials, key=lambda r: r.metric("eval_loss"))
    assert top is not lowest_loss  # the data tells the two rankings apart
    assert top.params["learning_rate"] == best.hyperparameters["learning_rate"]
    assert top.metric("objective") == best.objective

    report = build_report(db, "acc")
    assert (report.metric, report.mode) == ("objective", "max")
    final = report.price_tag.final
    assert final is not None and (final.name, final.rule) == (top.name, "best-trial")
    assert final.score == top.metric("eval_accuracy")
    assert any("the objective the search optimised" in n for n in report.notes)
    md = render(report, "md", plots=False)
    assert "ranked by **objective** (higher is better)" in md

    # the retrain with the best hyper-parameters, in a final run: scored by the objective too
    trainer.args.learning_rate = best.hyperparameters["learning_rate"]
    with gp.track("final", study="acc", ledger=db, role="final", **FAST) as final_run:
        trainer.train()  # the Trainer's run: a part of the final run
    (retrain,) = [r for r in gp.Ledger(db).runs(study="acc") if r.parent_id == final_run.id]
    assert retrain.metric("objective") == retrain.metric("eval_accuracy")
    report = build_report(db, "acc")
    assert report.metric == "objective"
    final = report.price_tag.final
    assert final is not None and (final.name, final.rule, final.score_source) == (
        "final",
        "role",
        "parts",
    )
    assert final.score == retrain.metric("eval_accuracy")


def test_the_default_objective_minimised_is_the_evaluation_loss(tmp_path: Path) -> None:
    """No compute_metrics, the default direction: Hugging Face's default objective is the
    evaluation loss, minimised; logged as ``objective_loss`` (a name the report minimises), its
    best trial the lowest loss. With no evaluation during training the Trainer evaluates after
    it: that evaluation and its objective land on the trial's ended run."""
    db = tmp_path / "gp.db"
    trainer = _trainer(tmp_path, metrics=False, eval_strategy="no")
    GreenprintCallback(study="loss", ledger=db, **FAST).attach(trainer)
    best = trainer.hyperparameter_search(hp_space=_hp_space, backend="optuna", n_trials=len(RATES))
    trials = _trials(db, "loss")
    assert [r.status for r in trials] == ["finished"] * len(RATES)
    for trial in trials:
        points = [
            (p.name, p.step) for p in trial.metrics if p.name in ("eval_loss", "objective_loss")
        ]
        assert points == [("eval_loss", 8), ("objective_loss", 8)]
        assert trial.metric("objective_loss") == trial.metric("eval_loss")
    lowest = min(trials, key=lambda r: r.metric("eval_loss"))
    assert lowest.params["learning_rate"] == best.hyperparameters["learning_rate"] == RATES[0]

    report = build_report(db, "loss")
    assert (report.metric, report.mode) == ("objective_loss", "min")
    final = report.price_tag.final
    assert final is not None and (final.name, final.rule) == (lowest.name, "best-trial")
    assert final.score == lowest.metric("eval_loss")


def test_a_multi_objective_search_logs_each_objective_by_its_direction(tmp_path: Path) -> None:
    """Two directions: ``objective_0`` (maximised) and ``objective_1_loss`` (minimised)."""
    db = tmp_path / "gp.db"
    trainer = _trainer(tmp_path, metrics=True, max_steps=4)
    GreenprintCallback(study="two", ledger=db, **FAST).attach(trainer)
    trainer.hyperparameter_search(
        hp_space=_hp_space,
        compute_objective=lambda m: [m["eval_accuracy"], m["eval_loss"]],
        direction=["maximize", "minimize"],
        backend="optuna",
        n_trials=1,
    )
    (trial,) = _trials(db, "two")
    assert trial.metric("objective_0") == trial.metric("eval_accuracy")
    assert trial.metric("objective_1_loss") == trial.metric("eval_loss")


def test_without_attach_the_search_warns_what_to_rank_by(tmp_path: Path) -> None:
    """The callback alone never sees the objective: it says so, once, with the options."""
    db = tmp_path / "gp.db"
    trainer = _trainer(tmp_path, metrics=False, max_steps=2, eval_steps=2)
    trainer.add_callback(GreenprintCallback(study="bare", ledger=db, **FAST))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.hyperparameter_search(
            hp_space=_hp_space, direction="maximize", backend="optuna", n_trials=2
        )
    ours = [str(w.message) for w in caught if "greenprint" in str(w.message)]
    assert len(ours) == 1
    assert "cb.attach(trainer)" in ours[0] and "--metric" in ours[0] and "--mode" in ours[0]
    assert all("objective" not in {p.name for p in r.metrics} for r in _trials(db, "bare"))


@pytest.mark.parametrize("attached", [True, False])
def test_the_search_optimises_its_own_objective_not_greenprints_figures(
    tmp_path: Path, attached: bool
) -> None:
    """Hugging Face's default objective sums every evaluation metric but the loss (the loss
    alone when there is none). greenprint's figures are not added to an evaluation's metrics,
    so the search minimises the evaluation loss, as without greenprint (it used to minimise
    the loss plus greenprint's power, energy and CO2-eq, added to the dict evaluate() returns)."""
    db = tmp_path / "gp.db"
    trainer = _trainer(tmp_path, metrics=False, max_steps=4, eval_steps=2)
    cb = GreenprintCallback(study="own", ledger=db, **FAST)
    if attached:
        cb.attach(trainer)
    else:
        trainer.add_callback(cb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without attach: the warning tested above
        best = trainer.hyperparameter_search(hp_space=_hp_space, backend="optuna", n_trials=1)
    (trial,) = _trials(db, "own")
    losses = [(p.step, p.value) for p in trial.metrics if p.name == "eval_loss"]
    assert [s for s, _ in losses] == [2, 4]
    assert best.objective == losses[-1][1]
    if attached:
        assert [(p.step, p.value) for p in trial.metrics if p.name == "objective_loss"] == losses
