"""Session 41: a Trainer given two GreenprintCallbacks says so, once.

A hurried user puts ``GreenprintCallback()`` in ``Trainer(callbacks=[...])`` and then follows
the docs' ``GreenprintCallback(...).attach(trainer)`` (or lists two): a Hugging Face Trainer
takes both, with no warning, and each records the training, a run with meters of its own,
the later opened inside the earlier (a part of it: the totals count it once), so the training
is metered twice over. Lightning refuses two at the Trainer's making; here they are kept, with
one warning per Trainer naming them and what to do. A tiny BERT built from a config (no
download), on one thread.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

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
    """Import torch and transformers when this module's tests run, not at collection."""
    global Trainer, TrainingArguments, GreenprintCallback, Tokens, tiny_bert
    import transformers
    from transformers import Trainer, TrainingArguments

    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    with one_thread(), frozen_heap():
        yield


def _trainer(tmp_path: Path, callbacks: list) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, max_steps=2,
        per_device_train_batch_size=8, logging_steps=1, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    return Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(16), callbacks=callbacks)


def _ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "GreenprintCallbacks" in str(w.message)]


def test_a_callback_given_and_another_attached_are_named_once(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        given = GreenprintCallback("given", study="two", ledger=db, **FAST)
        trainer = _trainer(tmp_path, [given])
        assert _ours(caught) == []  # one callback so far
        attached = GreenprintCallback("attached", study="two", ledger=db, **FAST).attach(trainer)
        trainer.train()
    assert _ours(caught) == [
        "greenprint: this Trainer has 2 GreenprintCallbacks ('attached' and 'given'): each "
        "records the training as a run of its own with meters of its own, so it is metered "
        "twice over (in one study, the later runs are parts of the first); keep one: attach "
        "the one given in callbacks=, or leave it out of them"
    ]  # at attach(), not again at each hook of either

    # both kept, as the warning says: the given one's run inside the attached one's
    with gp.Ledger(db) as led:
        runs = {r.name: r for r in led.runs(study="two")}
    assert sorted(runs) == ["attached", "given"]
    assert runs["attached"].id == attached.last_run_id
    assert (runs["given"].parent_id, runs["given"].contained) == (runs["attached"].id, True)
    tag = price_tag(runs.values())
    assert tag.total.energy_kwh == pytest.approx(runs["attached"].energy_kwh)  # counted once


def test_two_callbacks_listed_are_named_once_when_the_trainer_is_made(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = GreenprintCallback(study="listed", ledger=db, **FAST)
        b = GreenprintCallback("b", study="listed", ledger=db, **FAST)
        trainer = _trainer(tmp_path, [a, b])
        assert len(_ours(caught)) == 1  # at the Trainer's making
        assert "has 2 GreenprintCallbacks ('b' and 1 unnamed)" in _ours(caught)[0]
        trainer.train()
        assert len(_ours(caught)) == 1
    with gp.Ledger(db) as led:
        assert len(led.runs(study="listed")) == 2


def test_one_callback_added_after_another_is_named_when_training_starts(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer(tmp_path, [GreenprintCallback("a", study="added", ledger=db, **FAST)])
        trainer.add_callback(GreenprintCallback("b", study="added", ledger=db, **FAST))
        assert _ours(caught) == []
        trainer.train()
    (said,) = _ours(caught)
    assert said.startswith("greenprint: this Trainer has 2 GreenprintCallbacks ('a' and 'b')")
