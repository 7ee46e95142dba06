"""The demo's pruner comparison: its random search, stopped per epoch or at equal FPO.

The demo's random search (``demo._study.random_search``) is stopped per epoch by the rule of
Optuna's ``MedianPruner`` (``demo._models.MedianPruner``: a trial is compared with the finished
ones *after the same epoch*). Its trials, read from the ledger, are the comparison's first arm.
The second trains the same configurations again, in the same order and from the same seeds
(so each trains as it did), as an Optuna study (the configurations enqueued) each trial a
greenprint run (``GreenprintCallback``), stopped by
:class:`~greenprint.greener.CostAwareOptunaPruner` (``cost="fpo"``): a trial is compared with
the others' best-so-far curves *at the same FPO spent*.

Both use the same warm-up (startup trials, and no trial stopped before the same epoch). FPO
is the cost axis here because it is exact and the same on every machine (energy on a shared
2-CPU VM is an estimate that moves with the load); the price tag of each search reports energy,
CO2-eq and FPO. The cost-aware search is a study of its own in the demo's ledger
(``<study>-cost-pruner``), not in the demo study's price tag.

Until 2026-12-06 the comparison ran Optuna's ``RandomSampler`` twice more, once with Optuna's
``MedianPruner`` (study ``<study>-median-pruner``): other configurations than the demo's search,
and a third search of 24 trials that the demo's own search now stands for.

Imported only by :func:`greenprint.demo.run_demo`, after torch and Optuna were found.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, cast

from greenprint._exceptions import ConfigError
from greenprint._format import count_of, format_emissions, format_energy, format_fpo

__all__ = ["PrunerComparison", "PrunerOutcome", "compare_pruners"]

METRIC = "val_accuracy"


@dataclass(frozen=True)
class PrunerOutcome:
    """One search's price tag and best score.

    Attributes:
        label: which pruner, e.g. ``"Optuna MedianPruner (per epoch)"``.
        study: the study its trials were recorded under.
        trials: trials run.
        pruned: trials stopped early.
        energy_kwh: IT energy of all its trials, kWh.
        emissions_kg: their CO2-eq, kg.
        fpo: their floating-point operations.
        duration_s: their summed duration, s.
        best_score: the best finished trial's validation accuracy (``None``: none finished).
        best_trial: that trial's run name.
        best_config: for a search that trained another's configurations again, the run name
            of the trial whose configuration its best trial trained (``None``: its own).
    """

    label: str
    study: str
    trials: int
    pruned: int
    energy_kwh: float
    emissions_kg: float
    fpo: int
    duration_s: float
    best_score: float | None
    best_trial: str | None
    best_config: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(vars(self))


def _less_or_more(saving_pct: float, what: str) -> str:
    """A saving in words: '49.6 % less FPO', '0.2 % more energy' (not '-0.2 % energy saved')."""
    if round(saving_pct, 1) == 0:
        return f"the same {what}"
    return f"{abs(saving_pct):.1f} % {'less' if saving_pct > 0 else 'more'} {what}"


def _score_change(delta: float) -> str:
    """The best score's change in words: 'best score 0.0056 lower', 'the same best score'."""
    if round(delta, 4) == 0:
        return "the same best score"
    return f"best score {abs(delta):.4f} {'higher' if delta > 0 else 'lower'}"


@dataclass(frozen=True)
class PrunerComparison:
    """The two searches side by side.

    Attributes:
        median: the demo's own search, stopped per epoch by the rule of Optuna's ``MedianPruner``.
        cost_aware: its configurations trained again, stopped by the cost-aware pruner (at
            equal FPO).
        trials: trials per search.
        max_epochs: epochs of a trial that is not stopped.
        seed: the search's seed (trial ``k`` trained from ``seed + k``).
    """

    median: PrunerOutcome
    cost_aware: PrunerOutcome
    trials: int
    max_epochs: int
    seed: int

    @property
    def energy_saving_pct(self) -> float | None:
        """Energy the cost-aware search saved against the median one, percent."""
        base = self.median.energy_kwh
        return None if base <= 0 else 100.0 * (base - self.cost_aware.energy_kwh) / base

    @property
    def fpo_saving_pct(self) -> float | None:
        """FPO the cost-aware search saved against the median one, percent."""
        base = self.median.fpo
        return None if base <= 0 else 100.0 * (base - self.cost_aware.fpo) / base

    def lines(self) -> list[str]:
        """One line per search and one for the difference (the terminal and the report)."""
        out = [
            f"this study's random search of {count_of(self.trials, 'trial')} (seed {self.seed}, "
            f"up to {count_of(self.max_epochs, 'epoch')}), stopped per epoch, and its "
            f"configurations trained again, stopped at equal FPO, as study "
            f"{self.cost_aware.study} (not in this study's price tag):"
        ]
        for o in (self.median, self.cost_aware):
            score = "-" if o.best_score is None else f"{o.best_score:.4f}"
            again = "" if o.best_config is None else f", {o.best_config}'s configuration"
            out.append(
                f"{o.label}: {o.pruned}/{o.trials} pruned, {format_energy(o.energy_kwh)}, "
                f"{format_emissions(o.emissions_kg)}, {format_fpo(o.fpo)}; best {METRIC} "
                f"{score} ({o.best_trial or '-'} of study {o.study}{again})"
            )
        energy, fpo = self.energy_saving_pct, self.fpo_saving_pct
        if energy is not None and fpo is not None:
            a, b = self.median.best_score, self.cost_aware.best_score
            delta = "" if a is None or b is None else f", {_score_change(b - a)}"
            out.append(
                f"cost-aware against median: {_less_or_more(fpo, 'FPO')}, "
                f"{_less_or_more(energy, 'energy')}{delta}"
            )
        return out

    def note(self) -> str:
        """The comparison as one note of the report."""
        first, *rest = self.lines()
        return f"pruner comparison: {first} " + "; ".join(rest)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "trials": self.trials,
            "max_epochs": self.max_epochs,
            "seed": self.seed,
            "median": self.median.to_dict(),
            "cost_aware": self.cost_aware.to_dict(),
            "energy_saving_pct": self.energy_saving_pct,
            "fpo_saving_pct": self.fpo_saving_pct,
        }


def _suggest(trial: Any, max_epochs: int) -> dict[str, Any]:
    """The demo's search space (``demo._study._sample``), as Optuna records it.

    The configurations are enqueued (``study.enqueue_trial``): each ``suggest_*`` returns the
    demo search's value.
    """
    kind = trial.suggest_categorical("model", ["mlp", "cnn"])
    params: dict[str, Any] = {
        "model": kind,
        "lr": trial.suggest_float("lr", 1e-4, 10**-1.5, log=True),
        "batch": trial.suggest_categorical("batch", [32, 64, 128]),
        "wd": trial.suggest_float("wd", 1e-6, 1e-3, log=True),
        "epochs": max_epochs,
    }
    if kind == "mlp":
        params.update(
            hidden=trial.suggest_categorical("hidden", [32, 64, 128, 256]),
            layers=trial.suggest_int("layers", 1, 2),
            dropout=trial.suggest_categorical("dropout", [0.0, 0.2]),
        )
    else:
        params.update(channels=trial.suggest_categorical("channels", [8, 16, 32]))
    return params


class _Reporter:
    """What the demo's training loop calls after each epoch: report to Optuna, ask to stop."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def should_prune(self, epoch: int, score: float) -> bool:
        self.trial.report(score, epoch)
        return bool(self.trial.should_prune())


def _objective(
    trial: Any, *, configs: list[dict[str, Any]], data: Any, seed: int, show: Any
) -> float:
    import optuna
    import torch

    from greenprint.demo._models import build_model, train
    from greenprint.tracking import active_runs

    params = configs[trial.number]
    suggested = _suggest(trial, int(params["epochs"]))
    if suggested != params:  # the enqueued values, as the demo's search drew them
        raise RuntimeError(f"trial {trial.number} drew {suggested}, not the search's {params}")
    run = list(active_runs())[-1]  # the run GreenprintCallback.track opened for this trial
    torch.manual_seed(seed + trial.number)  # the initial weights of the demo search's trial
    model = build_model(params)
    run.set(dataset_size=data.n_train, param_count=sum(p.numel() for p in model.parameters()))
    outcome = train(
        model,
        params,
        data,
        run,
        seed=seed + trial.number,
        pruner=cast(Any, _Reporter(trial)),  # train() asks only should_prune(epoch, score)
        on_epoch=lambda epoch, score: show.status(
            f"trial {trial.number} epoch {epoch}: {METRIC}={score:.3f}"
        ),
    )
    if outcome.pruned:
        raise optuna.TrialPruned()
    return outcome.scores[-1]


def _outcome(
    study: str, label: str, runs: list[Any], configs_of: list[str] | None = None
) -> PrunerOutcome:
    """A search's price tag and best finished trial, from its trials' runs.

    ``configs_of``: for a search that trained another's configurations again, the name of the
    trial whose configuration each run trained (its ``best_config``).
    """
    from greenprint.analysis import price_tag

    tag = price_tag(runs, metric=METRIC, mode="max")
    finished = [r for r in runs if r.status == "finished"]
    best = max(
        finished,
        key=lambda r: r.metric(METRIC) if r.metric(METRIC) is not None else -math.inf,
        default=None,
    )
    return PrunerOutcome(
        label=label,
        study=study,
        trials=len(runs),
        pruned=sum(1 for r in runs if r.status == "pruned"),
        energy_kwh=tag.total.energy_kwh,
        emissions_kg=tag.total.emissions_kg,
        fpo=tag.total.fpo,
        duration_s=tag.total.duration_s,
        best_score=None if best is None else best.metric(METRIC),
        best_trial=None if best is None else best.name,
        best_config=None if best is None or configs_of is None else configs_of[runs.index(best)],
    )


def _search(
    led: Any,
    study: str,
    label: str,
    pruner: Any,
    configs: list[dict[str, Any]],
    names: list[str],
    data: Any,
    show: Any,
    *,
    seed: int,
) -> PrunerOutcome:
    """Train ``configs`` in order as an Optuna study stopped by ``pruner``."""
    import optuna

    from greenprint.integrations.optuna import GreenprintCallback

    callback = GreenprintCallback(ledger=led, study=study, metric_names=[METRIC])
    search = optuna.create_study(
        study_name=study,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),  # unused: every trial is enqueued
        pruner=pruner,
    )
    for params in configs:
        search.enqueue_trial({k: v for k, v in params.items() if k != "epochs"})

    def after(study_: Any, trial: Any) -> None:
        callback(study_, trial)
        value = "-" if trial.value is None else f"{trial.value:.3f}"
        # a complete trial trained every epoch; its last one is never reported to the pruner
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        steps = int(configs[trial.number]["epochs"]) if complete else len(trial.intermediate_values)
        show.done(
            f"{label.split(' ')[0]} trial {trial.number:>2} ({names[trial.number]}) "
            f"{trial.state.name.lower():<9} {METRIC}={value} after {count_of(steps, 'epoch')}"
        )

    objective = functools.partial(_objective, configs=configs, data=data, seed=seed, show=show)
    search.optimize(callback.track(objective), n_trials=len(configs), callbacks=[after])
    # in the order they ran: run k trained configs[k], the search's trial names[k]
    return _outcome(study, label, led.runs(study=study), configs_of=names)


def compare_pruners(
    led: Any,
    study: str,
    data: Any,
    show: Any,
    *,
    seed: int,
) -> PrunerComparison:
    """The demo's search (stopped per epoch) against its configurations stopped at equal FPO.

    The per-epoch arm is the demo's random search as the ledger holds it: the trials of
    ``study`` (role ``trial``, in the order they ran), stopped by the rule of Optuna's
    ``MedianPruner`` (``demo._study.random_search``). The cost-aware arm trains the same
    configurations in the same order, trial ``k`` from seed ``seed + k`` as the search did,
    under :class:`~greenprint.greener.CostAwareOptunaPruner` (``cost="fpo"``) with the search's
    warm-up (``demo._models.startup_trials`` of the trials, and no trial stopped before epoch
    ``WARMUP_EPOCHS``, ``n_warmup_reports`` one less as epochs are counted from 1), as the study
    ``<study>-cost-pruner``.

    Args:
        led: the demo's ledger, holding the search's trials under ``study``.
        study: the demo's study name; the cost-aware search is ``<study>-cost-pruner``.
        data: the digits split the search trained on.
        show: the demo's display.
        seed: the search's seed (trial ``k`` trained with ``seed + k``).

    Returns:
        The :class:`PrunerComparison`.

    Raises:
        UnknownStudyError: the ledger has no study ``study``.
        ConfigError: ``study`` holds no trial.
    """
    import optuna

    from greenprint.demo._models import _FPO_COUNTS, WARMUP_EPOCHS, startup_trials
    from greenprint.greener import CostAwareOptunaPruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = [r for r in led.runs(study=study) if r.role == "trial"]
    if not runs:
        raise ConfigError(f"study {study!r} holds no trial to compare")
    configs = [dict(r.params) for r in runs]
    max_epochs = max(int(c["epochs"]) for c in configs)
    show.phase("pruner comparison", len(configs))
    median = _outcome(study, "MedianPruner (per epoch)", runs)
    # Each trial of the search counted its configuration's FPO inside its run (once per
    # architecture and batch: demo._models.fpo_per_epoch keeps the counts); the same trials
    # trained again would find every count kept and spend less energy for it alone (one MLP
    # trial of one epoch: 74 against 21 uWh). Forgotten, each arm counts what the other counts.
    _FPO_COUNTS.clear()
    cost_aware = _search(
        led,
        f"{study}-cost-pruner",
        "CostAwarePruner (at equal FPO)",
        CostAwareOptunaPruner(
            cost="fpo",
            n_startup_trials=startup_trials(len(runs)),
            n_warmup_reports=WARMUP_EPOCHS - 1,
        ),
        configs,
        [r.name for r in runs],
        data,
        show,
        seed=seed,
    )
    return PrunerComparison(
        median=median, cost_aware=cost_aware, trials=len(configs), max_epochs=max_epochs, seed=seed
    )


def run_comparison(
    led: Any, study: str, data: Any, show: Any, *, seed: int
) -> PrunerComparison | None:
    """:func:`compare_pruners`, or ``None`` (said) without Optuna."""
    from greenprint._imports import is_available

    if not is_available("optuna"):
        show.message("pruner comparison skipped: it needs Optuna (pip install 'greenprint[demo]')")
        return None
    return compare_pruners(led, study, data, show, seed=seed)


def with_comparison(report: Any, comparison: PrunerComparison | None) -> Any:
    """The report with the comparison's lines added to its notes (shown by every format)."""
    import dataclasses

    if comparison is None:
        return report
    return dataclasses.replace(report, notes=(*report.notes, comparison.note()))


def add_to_summary(summary: str, comparison: PrunerComparison) -> str:
    """The demo's closing note with the comparison's lines before its ``report`` line."""
    lines = comparison.lines()
    block = "\n".join([f"  pruners        {lines[0]}", *(f"{'':17}{x}" for x in lines[1:])])
    head, found, tail = summary.rpartition("\n  report ")
    return f"{head}\n{block}{found}{tail}" if found else f"{summary}\n{block}"
