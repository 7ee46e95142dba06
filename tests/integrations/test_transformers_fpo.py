"""``GreenprintCallback(count_fpo=True)``: the FPO of a Hugging Face Trainer's training.

A real Trainer on a tiny BERT built from a config, CPU, offline. The run's FPO must be what
``greenprint.count_fpo`` counts for each micro-batch the Trainer trained (its forward and
backward, from the loss the model returns), summed: gradient accumulation, a last short batch
and padded batches of different lengths included; an FPO budget then stops training.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import ConfigError
from greenprint.analysis import price_tag
from integrations._frameworks import frozen_heap, need_installed, one_thread

need_installed("transformers", "transformers")
need_installed("torch", "torch")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
#: The constant power, in W, of the test meter in the torchrun test's processes.
WATTS = 360.0


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import torch and transformers when this module's tests run, not at collection; train on
    one thread (a tiny BERT gains nothing from torch's thread pool); the objects alive once they
    are imported frozen out of the collector's reach (:func:`frozen_heap`: the Trainer collects
    at each ``train()``)."""
    global torch, transformers, Trainer, TrainingArguments, GreenprintCallback, count_fpo
    global Tokens, tiny_bert
    import torch
    import transformers
    from transformers import Trainer, TrainingArguments

    from greenprint.fpo import count_fpo
    from greenprint.integrations.transformers import GreenprintCallback
    from integrations._hf import Tokens, tiny_bert

    transformers.logging.set_verbosity_error()
    with one_thread(), frozen_heap():
        yield


def _args(tmp_path: Path, **kwargs) -> TrainingArguments:
    options = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=8,
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    options.update(kwargs)
    return TrainingArguments(**options)


class Recorder:
    """A data collator that stacks the examples and keeps a copy of each batch it made.

    The Trainer's loader calls it once per micro-batch, in training order (no workers; it
    may collate one batch ahead: the tests that read the batches train every batch made).
    """

    def __init__(self, *, mask: bool = True, pad_to_longest: bool = False) -> None:
        self.mask = mask
        self.pad_to_longest = pad_to_longest
        self.batches: list[dict] = []

    def __call__(self, items: list[dict]) -> dict:
        if self.pad_to_longest:  # dynamic padding: each batch as long as its longest example
            longest = max(len(i["input_ids"]) for i in items)
            ids = torch.zeros(len(items), longest, dtype=torch.long)
            mask = torch.zeros(len(items), longest, dtype=torch.long)
            for row, item in enumerate(items):
                ids[row, : len(item["input_ids"])] = item["input_ids"]
                mask[row, : len(item["input_ids"])] = 1
            batch = {"input_ids": ids, "attention_mask": mask}
        else:
            batch = {k: torch.stack([i[k] for i in items]) for k in ("input_ids", "attention_mask")}
        batch["labels"] = torch.stack([i["labels"] for i in items])
        if not self.mask:
            del batch["attention_mask"]
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch


def _examples(n: int, lengths: list[int] | None = None) -> list[dict]:
    """``n`` examples (of these token lengths, else 8 each): random tokens, binary labels.

    Token ids 1..49: none is BERT's padding id 0, whose rows an embedding's backward skips
    (a count that reads the batch's values would differ by a few FPO from batch to batch).
    """
    gen = torch.Generator().manual_seed(0)
    lengths = lengths or [8] * n
    return [
        {
            "input_ids": torch.randint(1, 50, (length,), generator=gen),
            "attention_mask": torch.ones(length, dtype=torch.long),
            "labels": torch.tensor(k % 3 % 2),
        }
        for k, length in enumerate(lengths)
    ]


def _batch(size: int = 8) -> dict:
    """``size`` examples, stacked as the Trainer's collator does."""
    items = _examples(size)
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


def _first_principles(batches: list[dict], accumulation: int) -> list[int]:
    """``count_fpo(model, **batch)`` (forward + backward from the loss) of each micro-batch.

    As the Trainer calls the model: with ``num_items_in_batch``, the labels of the micro-batch's
    accumulation group (the loss is summed and divided by it, so that accumulated gradients are
    those of the whole group).
    """
    model = tiny_bert().train()
    counts = []
    for start in range(0, len(batches), accumulation):
        group = batches[start : start + accumulation]
        items = torch.tensor(sum(len(b["labels"]) for b in group))
        counts += [count_fpo(model, **b, num_items_in_batch=items).total for b in group]
    return counts


@pytest.mark.parametrize("mask", [True, False], ids=["attention-mask", "no-mask"])
def test_each_micro_batch_trained_is_counted_forward_and_backward(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, mask: bool
) -> None:
    """20 examples in batches of 8 with gradient accumulation 2: micro-batches of 8, 8 and a
    last short one of 4, two optimizer steps. The run's FPO is the sum of each micro-batch's
    forward and backward (the optimizer not counted), exact, counted live whether the model
    reads its attention mask or not, the report's price tag says so, and the model is left with
    no hook."""
    from _report_cli import cli_report, empty_home

    home = empty_home(tmp_path_factory, f"hf-fpo-{mask}")
    collate = Recorder(mask=mask)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, num_train_epochs=1, gradient_accumulation_steps=2),
        train_dataset=_examples(20),
        data_collator=collate,
    )
    cb = GreenprintCallback("bert", count_fpo=True, study="fpo", ledger=home / "greenprint.db",
                            **FAST).attach(trainer)  # fmt: skip
    trainer.train()

    assert trainer.state.global_step == 2
    assert [len(b["labels"]) for b in collate.batches] == [8, 8, 4]
    counts = _first_principles(collate.batches, accumulation=2)
    (record,) = gp.Ledger(home / "greenprint.db").runs(study="fpo")
    assert record.fpo == sum(counts) == cb.run.fpo
    # the figure is each micro-batch's own: the short one is not counted as a full one
    assert counts[0] == counts[1] != counts[2]
    assert "fpo" not in record.provenance  # every op had a rule: exact, not a lower bound
    assert not trainer.model._forward_pre_hooks
    # the report's JSON is what is read (its figures' data in it): no figure drawn
    total = cli_report(home, "--no-plots")["price_tag"]["total"]
    assert total["fpo"] == sum(counts) and total["fpo_unknown"] == 0


def test_padded_batches_of_different_lengths_are_each_counted(tmp_path: Path) -> None:
    """Dynamic padding: each batch padded to its longest example. Two batches of one shape,
    one padded and one not, differ (the model skips a mask that pads nothing): each batch is
    counted as it ran, not as the first batch times the number of batches."""
    lengths = [8, 8, 8, 8] + [8, 5, 8, 3] + [4, 4, 2, 3] + [6, 6, 6, 6]
    collate = Recorder(pad_to_longest=True)
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(
            tmp_path,
            num_train_epochs=1,
            per_device_train_batch_size=4,
            train_sampling_strategy="sequential",
        ),
        train_dataset=_examples(len(lengths), lengths),
        data_collator=collate,
    )
    cb = GreenprintCallback("bert", count_fpo=True, ledger=False, **FAST).attach(trainer)
    trainer.train()

    shapes = [tuple(b["input_ids"].shape) for b in collate.batches]
    assert shapes == [(4, 8), (4, 8), (4, 4), (4, 6)]
    counts = _first_principles(collate.batches, accumulation=1)
    assert counts[0] != counts[1]  # same shape, one padded
    assert cb.run.fpo == sum(counts)


def test_counting_leaves_the_training_as_it_was(tmp_path: Path) -> None:
    """The count is of the micro-batches that train, as they train: with dropout on and
    gradient accumulation, the trained weights are exactly those of the same training without
    the callback (random numbers, gradients, buffers as they were)."""

    def train(callback: bool) -> dict:
        torch.manual_seed(0)
        model = tiny_bert()  # dropout 0.1
        trainer = Trainer(
            model=model,
            args=_args(tmp_path, max_steps=3, gradient_accumulation_steps=2, seed=1),
            train_dataset=Tokens(48),
        )
        if callback:
            GreenprintCallback(count_fpo=True, ledger=False, **FAST).attach(trainer)
        trainer.train()
        return {k: v.clone() for k, v in model.state_dict().items()}

    counted, plain = train(True), train(False)
    assert all(torch.equal(counted[k], plain[k]) for k in plain)


def test_an_fpo_budget_stops_training_at_the_step_that_crosses_it(tmp_path: Path) -> None:
    """budget_fpo of 2.5 micro-batches, gradient accumulation 2: the third micro-batch (in
    the second optimizer step) crosses it; training stops at that step's end, after its
    fourth micro-batch; train() returns, the run ends interrupted by the budget."""
    per = _first_principles([_batch(), _batch()], accumulation=2)[0]
    trainer = Trainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=10, gradient_accumulation_steps=2),
        train_dataset=_examples(160),
    )
    cb = GreenprintCallback(count_fpo=True, ledger=False, budget_fpo=2.5 * per,
                            on_exceed="stop", **FAST).attach(trainer)  # fmt: skip
    trainer.train()

    assert trainer.state.global_step == 2
    assert cb.run.fpo == 4 * per  # two steps of two micro-batches
    assert cb.run.status == "interrupted"
    assert cb.run.record.error.startswith("BudgetExceeded") and "budget_fpo" in cb.run.record.error


def test_each_trial_of_a_hyperparameter_search_counts_its_own_training(
    tmp_path: Path, require_component
) -> None:
    """trainer.hyperparameter_search with model_init: a new model per trial, each trial's run
    has the FPO of its own micro-batches (two steps of 8), and no trial's model keeps a hook."""
    from greenprint._imports import is_available

    require_component(is_available("optuna"), "optuna is not installed (greenprint[optuna])")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    models: list = []

    def model_init(trial=None):
        models.append(tiny_bert())
        return models[-1]

    db = tmp_path / "gp.db"
    trainer = Trainer(
        model_init=model_init,
        args=_args(tmp_path, max_steps=2),
        train_dataset=_examples(32),
        eval_dataset=Tokens(8, seed=1),
    )
    GreenprintCallback(count_fpo=True, study="hpo", ledger=db, **FAST).attach(trainer)
    trainer.hyperparameter_search(
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-3)},
        direction="minimize",
        backend="optuna",
        n_trials=2,
    )
    per = _first_principles([_batch()], accumulation=1)[0]
    records = gp.Ledger(db).runs(study="hpo")
    # each trial's objective evaluation after its training: a part of it, its forwards counted
    # (one batch of 8, the loss included: the model's forward, as count_fpo counts it); they
    # were not until session 41, and each trial's FPO read unknown
    evaluation = Tokens(8, seed=1)
    eval_batch = {k: torch.stack([evaluation[i][k] for i in range(8)]) for k in evaluation[0]}
    with torch.no_grad():
        forward = count_fpo(tiny_bert().eval(), **eval_batch, backward=False).total
    assert sorted((r.role, r.fpo) for r in records) == [
        ("part", forward),
        ("part", forward),
        ("trial", 2 * per),
        ("trial", 2 * per),
    ]
    assert all(not m._forward_pre_hooks for m in models)


def test_forwards_the_callback_cannot_see_are_said_and_no_fpo_is_recorded(tmp_path: Path):
    """A training whose forwards run where the hook is not (a compiled model, torch_compile:
    its graph runs no Python hook; here a compute_loss that calls ``model.forward``, which skips
    hooks): one warning at the first step's end, and the run records no FPO rather than a
    wrong figure."""

    class Direct(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = model.forward(**inputs)
            return (out.loss, out) if return_outputs else out.loss

    trainer = Direct(model=tiny_bert(), args=_args(tmp_path, max_steps=3), train_dataset=Tokens())
    cb = GreenprintCallback(count_fpo=True, ledger=False, **FAST).attach(trainer)
    with pytest.warns(UserWarning, match="count_fpo saw no training forward") as seen:
        trainer.train()

    assert len([w for w in seen if "count_fpo" in str(w.message)]) == 1
    assert trainer.state.global_step == 3 and cb.run.status == "finished"
    assert cb.run.fpo is None
    assert not trainer.model._forward_pre_hooks


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_count_fpo_must_be_true_or_false(bad) -> None:
    with pytest.raises(ConfigError, match="count_fpo must be True or False"):
        GreenprintCallback(count_fpo=bad, ledger=False)


class Forwards:
    """Counts the model's forwards (training ones and all) and keeps each training forward's
    tensors, as the model received them."""

    def __init__(self, model) -> None:
        self.all = 0
        self.training: list[dict] = []
        model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs) -> None:
        self.all += 1
        if module.training and torch.is_grad_enabled():
            keep = ("input_ids", "attention_mask", "labels")
            self.training.append({k: kwargs[k].clone() for k in keep if k in kwargs})


def test_counting_runs_no_forward_of_its_own_and_no_evaluation(tmp_path: Path) -> None:
    """Dynamic padding, every batch a new shape, an evaluation every second step: with
    count_fpo=True the model runs exactly the forwards it runs without (each micro-batch is
    counted as it trains, not run again), and the run's FPO is that of the training
    micro-batches only (the evaluations' forwards are not counted)."""
    lengths = [8, 3, 5, 7, 3, 8, 6, 4, 8, 8, 1, 5, 3, 3, 7, 6]  # (2, 8) padding 5 twice

    def train(count: bool) -> tuple[Forwards, GreenprintCallback]:
        model = tiny_bert()
        forwards = Forwards(model)
        trainer = Trainer(
            model=model,
            args=_args(
                tmp_path,
                max_steps=6,
                per_device_train_batch_size=2,
                eval_strategy="steps",
                eval_steps=2,
                per_device_eval_batch_size=4,
                train_sampling_strategy="sequential",
            ),
            train_dataset=_examples(len(lengths), lengths),
            eval_dataset=Tokens(8, seed=1),
            data_collator=Recorder(pad_to_longest=True),
        )
        cb = GreenprintCallback(count_fpo=count, ledger=False, **FAST).attach(trainer)
        trainer.train()
        return forwards, cb

    (counted, cb), (plain, _) = train(True), train(False)
    assert len(counted.training) == len(plain.training) == 6
    assert counted.all == plain.all > 6  # the evaluations' forwards, as many
    shapes = [tuple(b["input_ids"].shape) for b in counted.training]
    assert shapes == [(2, 8), (2, 7), (2, 8), (2, 6), (2, 8), (2, 5)]
    assert cb.run.fpo == sum(_first_principles(counted.training, accumulation=1))


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_training_that_raises_inside_a_counted_micro_batch_leaves_no_counter(
    tmp_path: Path, where: str
) -> None:
    """An exception in the first micro-batch (counted as it trains), after the model's forward
    or in the backward: train() raises it, the run ends failed, and no FPO counter is left
    active (torch's dispatch-mode stack is empty, no global module hook is left), nor a hook
    on the model; the next training of the model counts as usual."""
    from torch.nn.modules import module as nn_module

    class Boom(RuntimeError):
        pass

    def boom(grad):
        raise Boom("in the backward")

    class Failing(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            assert torch._C._len_torch_dispatch_stack() == 1  # counted: the counter is on
            if where == "forward":
                raise Boom("after the forward")
            loss.register_hook(boom)
            return loss

    model = tiny_bert()
    trainer = Failing(model=model, args=_args(tmp_path, max_steps=2), train_dataset=_examples(16))
    cb = GreenprintCallback(count_fpo=True, ledger=False, **FAST).attach(trainer)
    with pytest.raises(Boom):
        trainer.train()

    assert torch._C._len_torch_dispatch_stack() == 0
    assert not nn_module._global_forward_pre_hooks and not nn_module._global_forward_hooks
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert cb.run.status == "failed" and cb.run.fpo is None

    trainer = Trainer(model=model, args=_args(tmp_path, max_steps=2), train_dataset=_examples(16))
    cb = GreenprintCallback(count_fpo=True, ledger=False, **FAST).attach(trainer)
    trainer.train()
    assert cb.run.fpo == 2 * _first_principles([_batch()], accumulation=1)[0]
    assert torch._C._len_torch_dispatch_stack() == 0


DDP_SCRIPT = """
import json, os, sys
import torch, transformers
from transformers import Trainer, TrainingArguments
sys.path[:0] = [{tests!r}, {integrations!r}]
from integrations._hf import tiny_bert
from tracking._meters import ConstantProcessPower
from greenprint.fpo import count_fpo
from greenprint.integrations.transformers import GreenprintCallback

transformers.logging.set_verbosity_error()
# the objects alive once the frameworks are imported, out of the collector's reach (as the test
# process's frozen_heap): the Trainer runs gc.collect() at each train(), 0.2 s of CPU each
import gc
gc.freeze()
gen = torch.Generator().manual_seed(0)
examples = [
    {{"input_ids": torch.randint(1, 50, (8,), generator=gen),
      "attention_mask": torch.ones(8, dtype=torch.long), "labels": torch.tensor(k % 2)}}
    for k in range(32)
]
model = tiny_bert()
trained = []
model.register_forward_pre_hook(
    lambda m, a, k: trained.append({{n: k[n].clone() for n in ("input_ids", "attention_mask",
                                                               "labels")}}) if m.training else None,
    with_kwargs=True,
)
args = TrainingArguments(output_dir="out", report_to="none", use_cpu=True, ddp_backend="gloo",
                         per_device_train_batch_size=4, max_steps=2, save_strategy="no",
                         disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=examples)
options = dict(study="ddp", ledger="gp.db", meters=ConstantProcessPower({watts!r}),
               sample_interval_s=0.05, flush_interval_s=0.1)
GreenprintCallback("ddp", count_fpo=True, **options).attach(trainer)
trainer.train()
trainer.evaluate(examples[:8])  # the trained model: a part of the training's node run
# a callback not attached: measured from the first evaluation batch, on every process
Trainer(model=model, args=args, callbacks=[GreenprintCallback("bare", **options)]).evaluate(
    examples[:8])
alone = [count_fpo(tiny_bert().train(), **b).total for b in trained]
params = sum(p.numel() for p in model.parameters())
with open(f"rank{{args.process_index}}.json", "w") as f:
    json.dump({{"world": args.world_size, "alone": alone, "params": params}}, f)
# an evaluation before training, in a study of its own: other models and Trainers (evaluating
# the model above before its training would train it without its DistributedDataParallel)
options["study"] = "pre"
for name in ("attached", "bare"):
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=examples[:8],
                      eval_dataset=examples[:8])
    cb = GreenprintCallback(name, **options)
    if name == "attached":
        cb.attach(trainer)
    else:
        trainer.add_callback(cb)
    trainer.evaluate()  # the untrained model, before its training
    trainer.train()


# (session 30) a model trained by a Trainer, then fine-tuned by another Trainer (the same model
# object, the same arguments); another model (another configuration) trained by a third Trainer
def retrainer(name, model):
    cb = GreenprintCallback(name, study="retrain", ledger="gp.db",
                            meters=ConstantProcessPower({watts!r}), sample_interval_s=0.05,
                            flush_interval_s=0.1)
    return Trainer(model=model, args=args, train_dataset=examples[:16], callbacks=[cb])


model = tiny_bert()
retrainer("tune", model).train()
retrainer("tune", model).train()  # stage 2: the same model, another Trainer
retrainer("other", tiny_bert()).train()  # another model: a training of its own

# (session 43) no energy meter: no process adds energy figures to its logs (the other process
# added a 0 share); each writes the greenprint/ names its logs got to none-rank<k>.json
from transformers import TrainerCallback


class Seen(TrainerCallback):
    def __init__(self):
        self.names = set()

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.names.update(k for k in logs or {{}} if k.startswith("greenprint/"))


none_args = TrainingArguments(output_dir="out-none", report_to="none", use_cpu=True,
                              ddp_backend="gloo", per_device_train_batch_size=4, max_steps=2,
                              logging_steps=1, save_strategy="no", disable_tqdm=True)
trainer = Trainer(model=tiny_bert(), args=none_args, train_dataset=examples[:16])
GreenprintCallback("none", study="none", ledger="gp.db", meters=[], sample_interval_s=0.05,
                   flush_interval_s=0.1).attach(trainer)
seen = Seen()
trainer.add_callback(seen)  # after greenprint's: it sees what greenprint added
trainer.train()
with open(f"none-rank{{none_args.process_index}}.json", "w") as f:
    json.dump(sorted(seen.names), f)

# (budgets: moved from test_budget_integrations.py) only local rank 0 meters energy (the other
# records a part with none): only it crosses its budget, and both processes stop together
from transformers import AutoModelForSequenceClassification, BertConfig

config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16, num_labels=2)
gen = torch.Generator().manual_seed(0)
data = [{{"input_ids": torch.randint(0, 50, (8,), generator=gen), "labels": torch.tensor(i % 2)}}
        for i in range(64)]
args = TrainingArguments(output_dir="out-budget", report_to="none", use_cpu=True,
                         max_steps=100_000, per_device_train_batch_size=8, logging_steps=3,
                         save_strategy="no", disable_tqdm=True)
trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                  train_dataset=data)
cb = GreenprintCallback("ddp", study="budget", ledger=os.path.abspath("gp.db"), budget_kwh=1e-12,
                        on_exceed="stop", sample_interval_s=0.05, flush_interval_s=0.1)
out = cb.attach(trainer) and trainer.train()
# a file per rank: on the ranks' shared stdout a line could be cut by the other's log line
with open(f"steps-{{args.process_index}}", "w") as f:
    f.write(str(out.global_step))
# as torch's docs ask of every distributed script: without it, gloo's threads can outlive the
# interpreter and abort the process at exit ("terminate called without an active exception",
# pytorch/pytorch#190489)
torch.distributed.destroy_process_group()
"""


@pytest.fixture(scope="module")
def torchrun_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder :data:`DDP_SCRIPT` ran in, once, under torchrun with two CPU processes: the
    studies ``ddp`` and ``pre`` below, ``retrain`` (session 30's, moved here from
    ``test_transformers_retrain_ddp_s30.py``) and ``budget`` (moved here from
    ``test_budget_integrations.py``): one launch of two processes importing transformers
    instead of three."""
    import socket
    import subprocess
    import sys

    with socket.socket() as free:  # a port for the processes' rendezvous (loopback only)
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])

    home = tmp_path_factory.mktemp("hf-torchrun")
    here = Path(__file__).parent
    script = DDP_SCRIPT.format(tests=str(here.parent), integrations=str(here), watts=WATTS)
    (home / "ddp.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", port, "ddp.py"],
        capture_output=True, text=True, timeout=240, cwd=home,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.mark.slow
def test_two_processes_count_their_micro_batches_and_collectives_count_nothing(
    torchrun_home: Path,
) -> None:
    """torchrun, two CPU processes (gloo), DDP: each process counts its own micro-batches as
    they train, its gradients' all-reduce inside the counted backward counts 0 FPO and is no
    op without a rule (the FPO is exact, not a lower bound), and nothing hangs or raises. Each
    micro-batch is what count_fpo counts alone plus DDP's averaging of the all-reduced
    gradients (one division per parameter). The same processes then evaluate other models
    before training them: each evaluation is a part of its training (before: a top-level part
    beside it)."""
    import json

    home = torchrun_home
    every = gp.Ledger(home / "gp.db").runs(study="ddp")
    runs: dict[str, list[gp.RunRecord]] = {}
    for record in sorted(every, key=lambda r: r.started_at):
        runs.setdefault(record.name, []).append(record)
    # the evaluations outside training were in no run with several processes
    assert {name: len(each) for name, each in runs.items()} == {
        "ddp": 1,
        "ddp-rank1": 1,
        "ddp-evaluate": 1,
        "ddp-evaluate-rank1": 1,
        "bare-evaluate": 1,
        "bare-evaluate-rank1": 1,
    }
    records = {name: each[0] for name, each in runs.items()}
    for rank, name in enumerate(("ddp", "ddp-rank1")):
        seen = json.loads((home / f"rank{rank}.json").read_text())
        assert seen["world"] == 2 and len(seen["alone"]) == 2
        assert records[name].fpo == sum(seen["alone"]) + 2 * seen["params"]
        assert "fpo" not in records[name].provenance  # no op without a rule: exact

    # one meter per node, as for training: the node's runs (local process 0) measured, each a
    # part of the node's training run (it ran after it: contained false, added once); the
    # other process's runs parts of them with no energy of their own. (No evaluation before
    # train() here: under torchrun, transformers 5.25 then trains the model without its
    # DistributedDataParallel wrapper, and the FPO above would lose the gradients' averaging.)
    training = records["ddp"]
    nodes = runs["ddp-evaluate"] + runs["bare-evaluate"]
    for node in nodes:
        assert node.started_at >= training.ended_at
        assert (node.status, node.role) == ("finished", "part")
        assert (node.parent_id, node.contained) == (training.id, False)
        assert node.energy_kwh * 3.6e6 == pytest.approx(WATTS * node.duration_s, abs=WATTS * 0.05)
        assert node.energy_kwh > 0 and node.metric("eval_loss") is not None
    others = runs["ddp-evaluate-rank1"] + runs["bare-evaluate-rank1"]
    assert sorted(r.parent_id for r in others) == sorted(n.id for n in nodes)
    assert all(r.status == "finished" and r.energy_kwh == 0 for r in others)
    tag = price_tag(every)
    assert (tag.total.trials, tag.total.runs) == (1, len(every))
    counted = training.energy_kwh + sum(n.energy_kwh for n in nodes)
    assert tag.total.energy_kwh == pytest.approx(counted, rel=1e-9)

    # trainer.evaluate() then trainer.train(), the callback attached or not: the node's
    # evaluation run is a part of the node's training run (contained false: it ran before it,
    # added once), the other process's its part; the study is its trainings, each costing its
    # evaluation too. (Before: a top-level part beside the training, by_role had "part".)
    before = gp.Ledger(home / "gp.db").runs(study="pre")
    by_name = {r.name: r for r in before}
    assert sorted(by_name) == sorted(
        f"{name}{suffix}"
        for name in ("attached", "bare")
        for suffix in ("", "-rank1", "-evaluate", "-evaluate-rank1")
    )
    for name in ("attached", "bare"):
        training, evaluation = by_name[name], by_name[f"{name}-evaluate"]
        assert evaluation.ended_at <= training.started_at
        assert (evaluation.role, evaluation.parent_id) == ("part", training.id)
        assert evaluation.contained is False
        assert by_name[f"{name}-evaluate-rank1"].parent_id == evaluation.id
        assert evaluation.energy_kwh > 0
    tag = price_tag(before)
    assert set(tag.by_role) == {"trial"} and tag.total.trials == 2
    assert tag.by_role["trial"].energy_kwh == pytest.approx(
        sum(r.energy_kwh for r in before), rel=1e-9
    )


@pytest.mark.slow  # the module's torchrun launch
def test_under_torchrun_with_no_energy_meter_no_process_logs_energy(torchrun_home: Path) -> None:
    """``meters=[]`` under torchrun: the node's run has no meter, and the other process's part
    now has none either, so neither adds ``greenprint/energy_kwh`` (CO2-eq, power) to its logs.
    Before (session 43's find), the other process's part read as metered (the stand-in of a
    metered node) and added a 0 share at each log, which a logging callback there took as a
    measured 0."""
    import json

    for rank in (0, 1):
        assert json.loads((torchrun_home / f"none-rank{rank}.json").read_text()) == []
    runs = {r.name: r for r in gp.Ledger(torchrun_home / "gp.db").runs(study="none")}
    assert set(runs) == {"none", "none-rank1"}
    assert runs["none-rank1"].parent_id == runs["none"].id
    assert not [r.name for r in runs.values() if r.energy_recorded]


@pytest.mark.slow  # the module's torchrun launch
def test_under_torchrun_a_model_trained_again_is_one_trial_costing_both_trainings(
    torchrun_home: Path,
) -> None:
    """(Session 30, moved from ``test_transformers_retrain_ddp_s30.py``: this module's launch.)
    A second Hugging Face ``trainer.train()`` of one model under DDP, as a user met it:
    two-stage fine-tuning (``Trainer(model=model, ...).train()``, then another Trainer's
    ``train()`` of the same model) under ``torchrun`` with 2 CPU processes (gloo). In one
    process the later training's run takes the earlier one's as a ``part``; with several
    processes each ``train()`` stayed a trial of its own (``trained_again`` was told not to
    link), so the study read a trial per stage. Now: two trainings of one model (two
    Trainers) and one of another are two trials. The second training's node run is the
    model's trial, the first's node run its part (``contained`` false: it ran before, added
    once); each training's rank 1 run a part of its own training's node run with no energy of
    its own; the other model's training a trial of its own. The price tag's total is the sum
    of every row's measured energy, and the model's trial costs both node runs. Before: three
    trials, the fine-tuned model's at a fraction of what training it cost."""
    from integrations._ddp_reads import (
        assert_ranks_are_parts_of_their_nodes,
        assert_two_trials_the_stages_one,
        runs_by_name,
    )

    runs = gp.Ledger(torchrun_home / "gp.db").runs(study="retrain")
    by_name = runs_by_name(runs)
    assert {name: len(each) for name, each in by_name.items()} == {
        "tune": 2,
        "tune-rank1": 2,
        "other": 1,
        "other-rank1": 1,
    }
    assert all(r.status == "finished" for r in runs)
    first, last = by_name["tune"]
    assert (last.role, last.parent_id) == (None, None)
    assert (first.role, first.parent_id, first.contained) == ("part", last.id, False)
    (other,) = by_name["other"]
    assert (other.role, other.parent_id) == (None, None)
    # each training's rank 1 is a part of that training's node run, metered by it alone
    ranks = [*by_name["tune-rank1"], *by_name["other-rank1"]]
    assert_ranks_are_parts_of_their_nodes([first, last, other], ranks, WATTS)
    assert_two_trials_the_stages_one(runs, last)  # was one trial a stage


@pytest.mark.slow  # the module's torchrun launch
def test_hf_processes_stop_together_when_one_is_over_its_budget(torchrun_home: Path) -> None:
    """Rank 0 alone crosses its energy budget; both stop at the same step (no rank hangs).
    (Moved from ``test_budget_integrations.py``: this module's launch, its study ``budget``.)"""
    home = torchrun_home
    steps = {p.name.split("-")[1]: int(p.read_text()) for p in home.glob("steps-*")}
    assert set(steps) == {"0", "1"} and steps["0"] == steps["1"] < 100_000
    records = {r.name: r for r in gp.Ledger(home / "gp.db").runs(study="budget")}
    assert set(records) == {"ddp", "ddp-rank1"}
    node, part = records["ddp"], records["ddp-rank1"]
    assert node.status == "interrupted" and "budget_kwh" in node.error
    assert part.status == "finished" and part.energy_kwh == 0  # its own budget was not crossed


def test_the_arithmetic_of_the_models_own_forward_is_counted(tmp_path: Path) -> None:
    """A model whose top-level forward computes outside its submodules (its logits scaled, a
    functional cross-entropy): those ops and their backward count, exactly as count_fpo
    counts the model."""

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = tiny_bert()

        def forward(self, input_ids, attention_mask=None, labels=None):
            logits = self.bert(input_ids=input_ids, attention_mask=attention_mask).logits * 0.5
            loss = torch.nn.functional.cross_entropy(logits.softmax(-1), labels)
            return {"loss": loss, "logits": logits}

    model = Scaled()
    trainer = Trainer(model=model, args=_args(tmp_path, max_steps=2), train_dataset=_examples(16))
    cb = GreenprintCallback(count_fpo=True, ledger=False, **FAST).attach(trainer)
    trainer.train()

    alone = count_fpo(Scaled().train(), **_batch())
    assert alone.by_module[""] > alone.by_module["bert"]  # the forward's own arithmetic
    assert cb.run.fpo == 2 * alone.total
