"""The demo's pruner comparison over several seeds: what pruning at equal FPO saves.

For each seed, the demo's random search (24 trials of up to 15 epochs on scikit-learn's digits,
MLPs and CNNs) runs twice with Optuna's ``RandomSampler`` (the same configurations, the same
initial weights): stopped by Optuna's ``MedianPruner`` per epoch, and by greenprint's
``CostAwareOptunaPruner(cost="fpo")`` at equal FPO, both with 5 startup trials and no trial
stopped before epoch 3. Printed: each search's pruned trials, FPO, energy (estimated on a VM
without RAPL), wall time of its runs and best validation accuracy, and the differences.

Usage::

    .venv/bin/python benchmarks/bench_pruner.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="seeds, separated by commas")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    import torch

    from greenprint.demo._display import PlainDisplay
    from greenprint.demo._pruning import run_comparison
    from greenprint.demo._study import _load_digits
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
            started = time.perf_counter()
            c = run_comparison(
                led,
                "bench",
                _load_digits(seed),
                PlainDisplay(io.StringIO()),
                trials=args.trials,
                max_epochs=args.epochs,
                seed=seed,
            )
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
