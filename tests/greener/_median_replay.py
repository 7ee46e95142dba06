"""The demo search's recorded learning curves replayed through Optuna's own ``MedianPruner``.

The demo's search is stopped by ``demo._models.MedianPruner`` (the rule of Optuna's), and the
pruner comparison reads it as its per-epoch arm: replaying each trial's curve, in order, into an
Optuna study with Optuna's pruner must stop the same trials at the same epochs. A trial's scores
up to an epoch do not depend on whether it is stopped there, so the replay is exact without
training anything.
"""

from __future__ import annotations

from typing import Any


def optuna_median_stops(
    runs: list[Any], *, startup_trials: int, warmup_epochs: int
) -> list[int | None]:
    """The epoch Optuna's ``MedianPruner`` stops each trial at (``None``: it runs to its end).

    Args:
        runs: the search's trial runs, in the order they ran, each with ``val_accuracy``
            logged after every epoch it trained and ``params["epochs"]``.
        startup_trials: Optuna's ``n_startup_trials``.
        warmup_epochs: Optuna's ``n_warmup_steps`` (epochs counted from 1).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        ),
    )
    stops: list[int | None] = []
    for run in runs:
        points = sorted(
            (p.step, p.value)
            for p in run.metrics
            if p.name == "val_accuracy" and p.step is not None
        )
        scores = [value for _, value in points]
        trial = study.ask()
        stop = None
        # the last epoch is never asked about (a trial that ran every epoch is finished)
        for epoch, score in enumerate(scores[: int(run.params["epochs"]) - 1], start=1):
            trial.report(score, epoch)
            if trial.should_prune():
                stop = epoch
                break
        if stop is None:
            study.tell(trial, scores[-1])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        stops.append(stop)
    return stops


def demo_stops(runs: list[Any]) -> list[int | None]:
    """The epoch the demo's search stopped each trial at (``None``: it ran to its end)."""
    return [
        len([p for p in r.metrics if p.name == "val_accuracy" and p.step is not None])
        if r.status == "pruned"
        else None
        for r in runs
    ]
