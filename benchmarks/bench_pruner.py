"""The demo's pruner comparison over several seeds: what pruning at equal FPO saves.

For each seed, the demo's random search (24 trials of up to 15 epochs on scikit-learn's digits,
MLPs and CNNs alternating), stopped per epoch by the rule of Optuna's ``MedianPruner``, then its
configurations trained again (the same order, the same seeds and initial weights) under
greenprint's ``CostAwareOptunaPruner(cost="fpo")`` at equal FPO, both with 5 startup trials and
no trial stopped before epoch 3 (what ``greenprint demo`` does; until 2026-12-06 both arms were
Optuna searches of their own, on ``RandomSampler``'s configurations). Printed: each search's
pruned trials, FPO, energy (estimated on a VM without RAPL), wall time of its runs and best
validation accuracy, and the differences.

With ``--overhead``, instead: the pruner's own cost per decision, against 1,000 completed
trials of 20 reports each (plain ``CostAwarePruner.report``), and per ``trial.should_prune()``
in an in-memory Optuna study of 300 trials of 20 steps, beside Optuna's ``MedianPruner``.

Usage::

    .venv/bin/python benchmarks/bench_pruner.py --seeds 0,1,2
    .venv/bin/python benchmarks/bench_pruner.py --overhead
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path


def overhead() -> None:
    """Time the pruner's decisions (no training: costs and scores are synthetic)."""
    import random

    import optuna

    from greenprint.greener import CostAwareOptunaPruner, CostAwarePruner

    rng = random.Random(0)
    pruner = CostAwarePruner(n_startup_trials=10**9)  # all 1,000 complete: warm-up all along
    for t in range(1000):
        rate, gain = rng.uniform(0.5, 2.0), rng.uniform(0.02, 0.05)
        for step in range(1, 21):
            if pruner.report(t, rate * step, min(1.0, gain * step)):
                break
        else:
            pruner.finish(t)
    pruner.n_startup_trials = 5
    started = time.perf_counter()
    n = 0
    for t in range(1000, 1100):
        for step in range(1, 21):
            n += 1
            if pruner.report(t, 1.0 * step, 0.04 * step):
                break
    per = (time.perf_counter() - started) / n
    print(
        f"CostAwarePruner.report against {pruner.n_complete} completed trials: "
        f"{per * 1e6:.0f} us per call ({n} calls)"
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        rate, gain = trial.suggest_float("rate", 0.5, 2.0), trial.suggest_float("gain", 0.02, 0.05)
        for step in range(1, 21):
            trial.set_user_attr("greenprint_cost", rate * step)
            trial.report(min(1.0, gain * step), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return min(1.0, gain * 20)

    for label, make in (
        ("Optuna MedianPruner", lambda: optuna.pruners.MedianPruner(n_startup_trials=5)),
        ("CostAwareOptunaPruner", lambda: CostAwareOptunaPruner(n_startup_trials=5)),
    ):
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0), pruner=make()
        )
        calls = [0.0, 0]
        original = study.pruner.prune

        def timed(
            study_: optuna.Study, trial: optuna.trial.FrozenTrial, f=original, calls=calls
        ) -> bool:
            t0 = time.perf_counter()
            try:
                return f(study_, trial)
            finally:
                calls[0] += time.perf_counter() - t0
                calls[1] += 1

        study.pruner.prune = timed  # type: ignore[method-assign]
        study.optimize(objective, n_trials=300)
        print(
            f"{label}, 300 trials x 20 steps in memory: {calls[0] / calls[1] * 1e6:.0f} us per "
            f"prune() ({calls[1]} calls)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="seeds, separated by commas")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--overhead", action="store_true", help="time the decisions only")
    args = parser.parse_args()
    if args.overhead:
        overhead()
        return

    import torch

    from greenprint.demo._display import PlainDisplay
    from greenprint.demo._pruning import run_comparison
    from greenprint.demo._study import _load_digits, random_search
    from greenprint.ledger import Ledger

    torch.set_num_threads(1)
    print(
        "| seed | pruned (median / cost-aware) | FPO, GFPO | energy, mWh | best val_accuracy | "
        "FPO saved | energy saved | best score | comparison wall time |"
    )
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    fpo_saved, energy_saved, deltas = [], [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            led = Ledger(Path(tmp) / "bench.db")
            started = time.perf_counter()  # both searches
            data, show = _load_digits(seed), PlainDisplay(io.StringIO())
            random_search(
                led, "bench", data, show, trials=args.trials, max_epochs=args.epochs, seed=seed
            )
            c = run_comparison(led, "bench", data, show, seed=seed)
            wall = time.perf_counter() - started
            led.close()
        assert c is not None, "Optuna is needed"
        m, a = c.median, c.cost_aware
        delta = (a.best_score or 0.0) - (m.best_score or 0.0)
        fpo_saved.append(c.fpo_saving_pct or 0.0)
        energy_saved.append(c.energy_saving_pct or 0.0)
        deltas.append(delta)
        print(
            f"| {seed} | {m.pruned} / {a.pruned} | {m.fpo / 1e9:.0f} / {a.fpo / 1e9:.0f} | "
            f"{m.energy_kwh * 1e6:.1f} / {a.energy_kwh * 1e6:.1f} | "
            f"{m.best_score:.4f} / {a.best_score:.4f} | {c.fpo_saving_pct:.1f} % | "
            f"{c.energy_saving_pct:.1f} % | {delta:+.4f} | {wall:.1f} s |"
        )
    print(
        f"\nmean over {len(deltas)} seeds: FPO saved {statistics.fmean(fpo_saved):.1f} %, "
        f"energy saved {statistics.fmean(energy_saved):.1f} %, best score "
        f"{statistics.fmean(deltas):+.4f}"
    )


if __name__ == "__main__":
    main()
