"""What predictions and budgets cost per call: ``run.step()``, ``run.log()``, ``run.progress()``.

Each figure is the median over rounds of the mean time of a call, measured in a running run with
a constant-power meter set (no hardware read on the caller's thread either way), beside the same
call in a run without budgets. A study budget's cost is the ledger read the sampler thread does
once per flush interval: timed on a study of ``--study-runs`` runs.

Usage::

    .venv/bin/python benchmarks/bench_budget.py [--calls 20000] [--rounds 5] [--study-runs 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import greenprint as gp
from greenprint.meters._base import MeterReading


class ConstantPower:
    components = ("cpu",)
    provenance = {"cpu": "bench:constant"}

    def start(self) -> None:
        self.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        joules = 100.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self) -> None:
        pass


def per_call_us(calls: int, rounds: int, call: str, **options: object) -> float:
    means = []
    for _ in range(rounds):
        with gp.track("bench", ledger=False, meters=ConstantPower(), **options) as run:
            time.sleep(1.1)  # a meter sample first (predictions start after it)
            run.expect(total_steps=calls)
            fn = {
                "step": run.step,
                "log": lambda: run.log(loss=0.5),
                "progress": None,
            }[call]
            started = time.perf_counter()
            if call == "progress":
                for k in range(1, calls + 1):
                    run.progress(k / calls)
            else:
                for _ in range(calls):
                    fn()
            means.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(means)


def study_read_ms(study_runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = str(Path(tmp) / "l.db")
        led = gp.Ledger(ledger)
        for k in range(study_runs):
            with gp.track(f"t{k}", study="s", ledger=led, meters=ConstantPower()) as run:
                run.log(accuracy=0.5)
        budget = gp.Budget(kwh=1e9, per="study")
        with gp.track("probe", study="s", ledger=led, meters=ConstantPower(), budget=budget) as r:
            times = []
            for _ in range(5):
                started = time.perf_counter()
                r._read_study_cost()
                times.append(time.perf_counter() - started)
        led.close()
        return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--study-runs", type=int, default=1000)
    args = parser.parse_args()
    budgets = {"budget_kwh": 1e9, "budget_s": 1e9, "on_exceed": "stop"}
    for call in ("step", "log", "progress"):
        bare = per_call_us(args.calls, args.rounds, call)
        with_budgets = per_call_us(args.calls, args.rounds, call, **budgets)
        print(f"run.{call}(): {bare:.2f} us without budgets, {with_budgets:.2f} us with two")
    print(
        f"study budget, ledger read of {args.study_runs} runs: "
        f"{study_read_ms(args.study_runs):.1f} ms per flush interval (sampler thread)"
    )


if __name__ == "__main__":
    main()
