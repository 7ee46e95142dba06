"""Overhead of the Lightning and Hugging Face Trainer callbacks beside the bare framework.

    .venv/bin/python benchmarks/bench_integrations_dl.py [--rounds 5]

The same tiny training job runs bare and with greenprint's callback, alternating, ``--rounds``
times, at two lengths (``E`` and ``2E`` events: epoch ends for Lightning, ``on_log`` calls for
the Trainer, which logs every step here: the worst case). From the differences of the medians:
the cost per event (the slope: a meter read and the logging of greenprint's figures) and the
fixed cost per run (the intercept: starting and stopping a run, writing it to the ledger).

Jobs this small are all overhead; what matters is that cost *extrapolated* to a 30 s job:
``(fixed + per_event x events in 30 s) / 30 s`` (the issue's target: < 1%), for a job with an
event every second (30) and every 0.1 s (300), more often than real training logs (the
Trainer's default is every 500 steps; Lightning's figures come once per epoch).

The ledger is an SQLite file in a temporary directory; meters are whatever this machine has (the
estimate from the CPU's TDP where there is no RAPL). Offline: models are built from configs.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from _overhead import alternate

TARGET_JOB_S = 30.0
#: events in the 30 s job: one per second (an epoch or a log line a second, already frequent)
#: and one every 0.1 s (far more often than real training logs)
EVENTS_IN_TARGET = (30, 300)


_LIGHTNING_HOOKS = (
    "on_fit_start",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_validation_end",
    "on_fit_end",
    "teardown",
)
_TRANSFORMERS_HOOKS = ("on_train_begin", "on_log", "on_evaluate", "on_train_end")


def _report(what: str, events: int, long_events: int, short: tuple, long: tuple) -> None:
    d_short = short[1] - short[0]
    d_long = long[1] - long[0]
    per_event = max((d_long - d_short) / (long_events - events), 0.0)
    fixed = max(d_short - per_event * events, 0.0)
    print(
        f"{what:<34} {events:3d} events: bare {short[0] * 1e3:7.1f} ms, greenprint "
        f"{short[1] * 1e3:7.1f} ms | {long_events:3d} events: bare {long[0] * 1e3:7.1f} ms, "
        f"greenprint {long[1] * 1e3:7.1f} ms\n{'':<34} fixed {fixed * 1e3:6.1f} ms/run, "
        f"{per_event * 1e3:5.2f} ms/event -> of a {TARGET_JOB_S:.0f} s job: "
        + _shares(fixed, per_event)
    )


def _shares(fixed_s: float, per_event_s: float) -> str:
    """What a run's fixed cost and per-event cost come to in each job of EVENTS_IN_TARGET."""
    return ", ".join(
        f"{(fixed_s + per_event_s * n) / TARGET_JOB_S:.3%} with {n} events"
        for n in EVENTS_IN_TARGET
    )


class _HookClock:
    """Wall time spent inside a callback's hooks: greenprint's own code, timed directly.

    Less noisy than a difference of two whole jobs on a loaded machine (it leaves out the
    sampler thread, which runs once a second and whose cost is in BENCHMARKS.md).
    """

    def __init__(self, callback: object, hooks: tuple[str, ...]) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(hooks, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(hooks, 0)
        for hook in hooks:
            setattr(callback, hook, self._timed(hook, getattr(callback, hook)))

    def _timed(self, hook: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[hook] += time.perf_counter() - start
                self.calls[hook] += 1

        return timed

    def line(self, what: str, event_hook: str, start_end: tuple[str, ...]) -> None:
        fixed = sum(self.seconds[h] for h in start_end)
        per_event = self.seconds[event_hook] / max(self.calls[event_hook], 1)
        other = sum(self.seconds.values()) - fixed - self.seconds[event_hook]
        print(
            f"{what:<34} in the hooks: start+end {fixed * 1e3:6.2f} ms/run, "
            f"{event_hook} {per_event * 1e3:5.3f} ms x {self.calls[event_hook]}, "
            f"other hooks {other * 1e3:5.2f} ms -> " + _shares(fixed + other, per_event)
        )


def bench_lightning(rounds: int, epochs: int, tmp: Path) -> None:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    from greenprint.integrations.lightning import GreenprintCallback

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Regressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = DataLoader(TensorDataset(torch.randn(64, 8), torch.randn(64, 1)), batch_size=16)

    def fit(n_epochs: int, callbacks: list) -> None:
        trainer = pl.Trainer(
            max_epochs=n_epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
        )
        trainer.fit(Regressor(), loader)

    for label, extra in (("lightning", {}), ("lightning count_fpo=True", {"count_fpo": True})):
        ledger = tmp / f"{label.replace(' ', '_')}.db"
        results = []
        for n in (epochs, 2 * epochs):
            results.append(
                alternate(
                    lambda n=n: fit(n, []),
                    lambda n=n, db=ledger, kw=extra: fit(n, [GreenprintCallback(ledger=db, **kw)]),
                    rounds,
                )
            )
        _report(label, epochs, 2 * epochs, *results)
        cb = GreenprintCallback(ledger=ledger, **extra)
        clock = _HookClock(cb, _LIGHTNING_HOOKS)
        fit(2 * epochs, [cb])
        clock.line(label, "on_train_epoch_end", ("on_fit_start", "on_fit_end", "teardown"))


def bench_transformers(rounds: int, steps: int, tmp: Path) -> None:
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        Trainer,
        TrainingArguments,
    )

    from greenprint.integrations.transformers import GreenprintCallback

    transformers.logging.set_verbosity_error()
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    data = [
        {"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)} for i in range(32)
    ]
    ledger = tmp / "transformers.db"

    def train(n_steps: int, tracked: bool, clock: bool = False) -> None:
        args = TrainingArguments(
            output_dir=str(tmp / "out"),
            report_to="none",
            use_cpu=True,
            max_steps=n_steps,
            per_device_train_batch_size=8,
            logging_steps=1,
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=AutoModelForSequenceClassification.from_config(config),
            args=args,
            train_dataset=data,
        )
        trainer.remove_callback(transformers.PrinterCallback)
        if tracked:
            cb = GreenprintCallback(ledger=ledger).attach(trainer)
            timer = _HookClock(cb, _TRANSFORMERS_HOOKS) if clock else None
        trainer.train()
        if tracked and timer is not None:
            timer.line("transformers", "on_log", ("on_train_begin", "on_train_end"))

    results = [
        alternate(lambda n=n: train(n, False), lambda n=n: train(n, True), rounds)
        for n in (steps, 2 * steps)
    ]
    _report("transformers (on_log every step)", steps + 1, 2 * steps + 1, *results)
    train(2 * steps, True, clock=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="Lightning epochs (and twice)")
    parser.add_argument("--steps", type=int, default=40, help="Trainer steps (and twice)")
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, {options.rounds} rounds (medians)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench_lightning(options.rounds, options.epochs, Path(tmp))
        bench_transformers(options.rounds, options.steps, Path(tmp))


if __name__ == "__main__":
    main()
