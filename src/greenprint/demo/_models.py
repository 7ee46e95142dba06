"""The demo's models and training loop (PyTorch, CPU): softmax regression, an MLP, a small CNN.

Imported only by :func:`greenprint.demo.run_demo`, after torch was found.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Data",
    "WARMUP_EPOCHS",
    "MedianPruner",
    "TrialOutcome",
    "build_model",
    "fpo_per_epoch",
    "startup_trials",
    "train",
]


@dataclass(frozen=True)
class Data:
    """The digits split: 8x8 images scaled to [0, 1], as float tensors and int labels.

    ``x_val``/``y_val`` is what a model is scored on: the validation split during the search,
    the held-out test split for the final model (:meth:`for_final`).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    def for_final(self) -> Data:
        """Train on training + validation data, score on the test split the search never saw."""
        if self.x_test is None or self.y_test is None:
            raise ValueError("this split has no test set")
        return Data(
            torch.cat([self.x_train, self.x_val]),
            torch.cat([self.y_train, self.y_val]),
            self.x_test,
            self.y_test,
        )

    @property
    def n_train(self) -> int:
        """Training examples."""
        return int(self.x_train.shape[0])

    def subsample(self, fraction: float, *, seed: int) -> Data:
        """A stratified ``fraction`` of the training set (the validation set is kept whole)."""
        if fraction >= 1.0:
            return self
        rng = np.random.default_rng(seed)
        labels = self.y_train.numpy()
        keep: list[int] = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            count = max(1, round(fraction * members.size))
            keep.extend(rng.choice(members, size=count, replace=False).tolist())
        index = torch.tensor(sorted(keep))
        return Data(
            self.x_train[index],
            self.y_train[index],
            self.x_val,
            self.y_val,
            self.x_test,
            self.y_test,
        )


class _CNN(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(2 * channels * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


def build_model(params: Mapping[str, Any]) -> nn.Module:
    """The model a trial's hyper-parameters describe (``params["model"]``)."""
    kind = params["model"]
    if kind == "logreg":
        return nn.Linear(64, 10)
    if kind == "mlp":
        layers: list[nn.Module] = []
        width_in = 64
        for _ in range(int(params["layers"])):
            layers += [nn.Linear(width_in, int(params["hidden"])), nn.ReLU()]
            if params.get("dropout", 0.0):
                layers.append(nn.Dropout(float(params["dropout"])))
            width_in = int(params["hidden"])
        return nn.Sequential(*layers, nn.Linear(width_in, 10))
    if kind == "cnn":
        return _CNN(int(params["channels"]))
    raise ValueError(f"unknown demo model {kind!r}")


def _optimizer(params: Mapping[str, Any]) -> Callable[..., torch.optim.Optimizer]:
    return functools.partial(
        torch.optim.Adam, lr=float(params["lr"]), weight_decay=float(params.get("wd", 0.0))
    )


def fpo_per_epoch(
    model: nn.Module,
    params: Mapping[str, Any],
    data: Data,
    *,
    steps: bool = True,
    validation: bool = True,
) -> int:
    """FPO of one epoch: every training step and one validation pass.

    Training steps (forward, loss, backward, Adam) are counted by greenprint's FPO counter on a
    meta copy of the model (nothing is run); the validation pass on the model itself.
    ``steps=False`` or ``validation=False`` leaves that part out (the final model trains its
    epochs unscored, then is scored once).
    """
    from greenprint.fpo import count_fpo, training_fpo

    batch = int(params["batch"])
    full, rest = divmod(data.n_train, batch)
    # A plain model's count depends on its layers (their repr: kinds and sizes), its dtypes,
    # whether Adam decays weights, and the shape of what it is given; never on learning rates,
    # weights or how many steps an epoch has. Trials of a search repeat architectures, and a
    # learning curve or the final retrain changes only the last, shorter batch: each step and
    # each validation pass is counted once (the demo counted 78 epochs, 7 s; then 27 distinct
    # epochs, 54 training steps and 27 validation passes; the steps and passes repeat). A
    # pruned model (masks, hooks: its count follows its zeros) is counted every time.
    plain = not any(
        m._forward_pre_hooks or m._forward_hooks or any(True for _ in m.buffers(recurse=False))
        for m in model.modules()
    )
    model_key = (
        repr(model),
        tuple(sorted({str(p.dtype) for p in model.parameters()})),
        float(params.get("wd", 0.0)) != 0.0,
    )

    def counted(key: tuple[Any, ...], count: Callable[[], int]) -> int:
        known = _FPO_COUNTS.get(key) if plain else None
        if known is None:
            known = count()
            if plain:
                _FPO_COUNTS[key] = known
        return known

    def step(size: int) -> int:  # one training step: forward, loss, backward, Adam
        x, y = data.x_train[:size], data.y_train[:size]
        loss = nn.functional.cross_entropy
        result = training_fpo(model, x, 1, target=y, loss_fn=loss, optimizer=_optimizer(params))
        return int(result.total)

    def validation_pass() -> int:
        model.eval()
        with torch.no_grad():
            total = count_fpo(model, data.x_val, backward=False).total
        model.train()
        return int(total)

    total = 0
    for size, count in ((batch, full), (rest, 1 if rest else 0)) if steps else ():
        if count:
            shape = (size, *data.x_train.shape[1:])
            total += count * counted(("step", *model_key, shape), functools.partial(step, size))
    if not validation:
        return total
    shape = tuple(data.x_val.shape)
    return total + counted(("validation", *model_key, shape), validation_pass)


#: fpo_per_epoch's counts of one training step and of one validation pass, by model structure,
#: dtypes, weight decay and input shape.
_FPO_COUNTS: dict[tuple[Any, ...], int] = {}


@dataclass
class MedianPruner:
    """Stops a trial whose best score so far is below the finished trials' median at its epoch.

    The rule of Optuna's ``MedianPruner`` (``PercentilePruner`` at 50): after epoch ``e`` a trial
    is stopped when its best validation accuracy over epochs ``1..e`` is below the median of the
    finished trials' accuracy after epoch ``e``, once ``startup_trials`` trials have finished and
    from epoch ``warmup_epochs`` on (Optuna's ``n_warmup_steps``, epochs counted from 1). A NaN
    score is left out of both, and a trial whose scores are all NaN is stopped, as Optuna does.
    So the demo's search makes the decisions Optuna's pruner would make on the same trials,
    and the pruner comparison (``demo._pruning``) reads it as its per-epoch arm (until
    2026-12-06 this compared the trial's latest score, not its best so far).

    Attributes:
        startup_trials: finished trials needed before any trial is pruned.
        warmup_epochs: no trial is pruned before this epoch.
        history: epoch -> finished trials' validation accuracy after it.
    """

    startup_trials: int = 4
    warmup_epochs: int = 2
    history: dict[int, list[float]] = field(default_factory=dict)
    _best: float = field(default=math.nan, init=False, repr=False)

    def should_prune(self, epoch: int, score: float) -> bool:
        """Whether a trial scoring ``score`` after ``epoch`` (1-based) should stop.

        Called after each epoch of one trial in turn; epoch 1 begins a new trial.
        """
        if epoch == 1 or math.isnan(self._best):
            self._best = score
        elif not math.isnan(score):
            self._best = max(self._best, score)
        logged = self.history.get(epoch, [])  # a NaN score counts as a finished trial
        if epoch < self.warmup_epochs or len(logged) < self.startup_trials:
            return False
        seen = [v for v in logged if not math.isnan(v)]
        if math.isnan(self._best):
            return True
        return bool(seen) and self._best < statistics.median(seen)

    def record(self, scores: list[float]) -> None:
        """Remember a finished trial's score after each epoch."""
        for epoch, score in enumerate(scores, start=1):
            self.history.setdefault(epoch, []).append(score)


def startup_trials(trials: int) -> int:
    """Finished trials before the search's pruner stops any: ``min(5, max(1, trials // 4))``."""
    return min(5, max(1, trials // 4))


#: No trial of the search is stopped before this epoch (counted from 1).
WARMUP_EPOCHS = 3


@dataclass(frozen=True)
class TrialOutcome:
    """How a training run ended."""

    scores: list[float]
    pruned: bool
    epochs: int


def _accuracy(model: nn.Module, data: Data) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(data.x_val).argmax(dim=1)
    model.train()
    return float((predicted == data.y_val).float().mean())


def train(
    model: nn.Module,
    params: Mapping[str, Any],
    data: Data,
    run: Any,
    *,
    seed: int,
    pruner: MedianPruner | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    score_name: str = "val_accuracy",
    score_each_epoch: bool = True,
) -> TrialOutcome:
    """Train with Adam, logging ``score_name`` and ``train_loss`` after every epoch.

    ``score_name`` is the accuracy on ``data.x_val`` (``test_accuracy`` for the final model,
    whose ``x_val`` is the held-out test split). ``score_each_epoch=False`` (the final model):
    ``train_loss`` after every epoch and the score once, after the last, so that the test split
    is scored once, as a test split is, and never watched along the training.

    FPO are added to the run as the epochs go (``run.add_fpo``), so a pruned trial records
    exactly what it did. With a pruner, a trial below the median is marked pruned and stopped
    (before its last epoch: a trial that ran every epoch is finished).

    Raises:
        FloatingPointError: the training loss became NaN or infinite (the run is then failed).
    """
    torch.manual_seed(seed)
    per_epoch = fpo_per_epoch(model, params, data, validation=score_each_epoch)
    optimizer = _optimizer(params)(model.parameters())
    batch = int(params["batch"])
    generator = torch.Generator().manual_seed(seed)
    scores: list[float] = []
    epochs = int(params["epochs"])
    for epoch in range(1, epochs + 1):
        order = torch.randperm(data.n_train, generator=generator)
        total_loss = 0.0
        for start in range(0, data.n_train, batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x_train[index]), data.y_train[index])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * index.numel()
        mean_loss = total_loss / data.n_train
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss is {mean_loss} at epoch {epoch}")
        run.add_fpo(per_epoch)
        if not score_each_epoch:
            run.log(step=epoch, train_loss=mean_loss)
            continue
        score = _accuracy(model, data)
        scores.append(score)
        run.log(step=epoch, train_loss=mean_loss, **{score_name: score})
        if on_epoch is not None:
            on_epoch(epoch, score)
        # never after the last epoch: the trial ran in full, stopping it would save nothing
        if pruner is not None and epoch < epochs and pruner.should_prune(epoch, score):
            run.prune(step=epoch, by="demo MedianPruner")
            return TrialOutcome(scores, pruned=True, epochs=epoch)
    if not score_each_epoch:  # scored once, after the last epoch
        run.add_fpo(fpo_per_epoch(model, params, data, steps=False))
        scores.append(_accuracy(model, data))
        run.log(step=epochs, **{score_name: scores[-1]})
    return TrialOutcome(scores, pruned=False, epochs=epochs)
