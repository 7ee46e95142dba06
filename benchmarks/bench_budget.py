"""What predictions and budgets cost per call: ``run.step()``, ``run.log()``, ``run.progress()``.

Each figure is the median over rounds of the mean time of a call, measured in a running run with
a constant-power meter set (no hardware read on the caller's thread either way), beside the same
call in a run without budgets. A study budget's cost is the ledger read the sampler thread does
once per flush interval (less often when a read takes over 1 % of it): timed on studies of
``--study-runs`` runs (every 5th a part of the run before it), before (every run read into Python
and the price tag's rule applied there) and after (``greenprint.ledger._study_cost``: one SQL sum
where the folds count no FPO of their own, the rule over a few columns where they do); the two
must agree.

Usage::

    .venv/bin/python benchmarks/bench_budget.py [--calls 20000] [--rounds 5] [--study-runs 1000]
    .venv/bin/python benchmarks/bench_budget.py --study-only --study-runs 1000 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import greenprint as gp
from greenprint._budget import Spent
from greenprint.ledger._study_cost import study_cost_of_records
from greenprint.meters._base import MeterReading
from greenprint.tracking import active_runs


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


#: The studies timed: (name, every 5th run a fold of the run before it, the folds count FPO).
SHAPES = (("trials", False, False), ("folds", True, False), ("folds count FPO", True, True))


def make_study(
    led: gp.Ledger, study_runs: int, *, folds: bool = True, folds_count: bool = False
) -> None:
    """A study of ``study_runs`` runs written as trials write them, three logged points each:
    with ``folds``, every 5th a part (a fold) of the run before it (half its energy, CO2-eq and
    time); FPO on every other trial, or (``folds_count``) on the folds only (the rule's read)."""
    t = 1_700_000_000.0
    parent = None
    for k in range(study_runs):
        run_id = f"{k:012x}"
        nested = folds and k % 5 == 4 and parent is not None
        share = 0.5 if nested else 1.0
        kwh = 1e-3 * (1 + (k - 1 if nested else k) % 7) * share
        if folds_count:
            fpo = 10**12 * (1 + k % 3) if nested else None
        else:
            fpo = None if nested or not k % 2 else 10**15 * (k % 3)
        led.start_run(
            gp.RunRecord(
                id=run_id,
                name=f"t{k}",
                study="s",
                status="finished",
                started_at=t - 61.0 + 10.0 if nested else t,
                ended_at=t - 61.0 + 40.0 if nested else t + 60.0,
                duration_s=60.0 * share,
                energy_kwh=kwh,
                emissions_kg=0.4 * kwh,
                fpo=fpo,
                parent_id=parent if nested else None,
                params={"lr": 0.1, "layers": k % 8},
                metrics=tuple(gp.MetricPoint("accuracy", 0.5, s, t + s) for s in (1, 2, 3)),
            )
        )
        parent = None if nested else run_id
        t += 61.0


def before_read(led: gp.Ledger, study: str) -> Spent:
    """The read without the database's help: every run of the study (with its metrics) into
    Python, the price tag's rule applied there (``study_cost_of_records``), live runs left out."""
    records = led.runs(study=study)
    live = {run.id for run in active_runs()}
    cost = study_cost_of_records(records, live)
    return Spent(cost.energy_kwh, cost.emissions_kg, cost.fpo, cost.duration_s)


def study_read_ms(
    study_runs: int, repeat: int = 5, *, folds: bool = True, folds_count: bool = False
) -> tuple[float, float]:
    """(before, after) in ms: the median time of one read of a study of ``study_runs`` runs."""
    with tempfile.TemporaryDirectory() as tmp:
        led = gp.Ledger(str(Path(tmp) / "l.db"))
        make_study(led, study_runs, folds=folds, folds_count=folds_count)
        budget = gp.Budget(kwh=1e9, per="study")
        with gp.track("probe", study="s", ledger=led, meters=ConstantPower(), budget=budget) as r:
            before, after = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                old = before_read(led, "s")
                before.append(time.perf_counter() - started)
                started = time.perf_counter()
                r._read_study_cost()
                after.append(time.perf_counter() - started)
            new = r._guard.study_base if r._guard is not None else Spent()
            if any(abs(a - b) > 1e-9 * max(abs(a), 1.0) for a, b in zip(old, new, strict=True)):
                raise SystemExit(f"the two reads disagree: {old} != {new}")
        led.close()
        return statistics.median(before) * 1e3, statistics.median(after) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--study-runs", type=int, nargs="+", default=[1000])
    parser.add_argument("--study-only", action="store_true", help="only the study reads")
    args = parser.parse_args()
    for n in args.study_runs:
        for name, folds, folds_count in SHAPES:
            before, after = study_read_ms(n, folds=folds, folds_count=folds_count)
            print(
                f"study budget, one read of a {n:,}-run study's cost ({name}): {before:.1f} ms "
                f"with every run into Python, {after:.2f} ms read: {before / after:.1f}x"
            )
    if args.study_only:
        return
    budgets = {"budget_kwh": 1e9, "budget_s": 1e9, "on_exceed": "stop"}
    for call in ("step", "log", "progress"):
        bare = per_call_us(args.calls, args.rounds, call)
        with_budgets = per_call_us(args.calls, args.rounds, call, **budgets)
        print(f"run.{call}(): {bare:.2f} us without budgets, {with_budgets:.2f} us with two")


if __name__ == "__main__":
    main()
