"""What predictions and budgets cost per call: ``run.step()``, ``run.log()``, ``run.progress()``.

Each figure is the median over rounds of the mean time of a call, measured in a running run with
a constant-power meter set (no hardware read on the caller's thread either way), beside the same
call in a run without budgets. A study budget's cost is the ledger read the sampler thread does
once per flush interval (less often when a read takes over 1 % of it): timed on studies of
``--study-runs`` runs (every 5th a part of the run before it), before (every run read into Python
and summed there, as until the one-query read) and after (one SQL sum,
``greenprint.ledger._study_cost``); the two must agree.

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


def make_study(led: gp.Ledger, study_runs: int) -> None:
    """A study of ``study_runs`` runs written as trials write them: every 5th a part (a fold) of
    the run before it, three logged points each, FPO on every other run."""
    t = 1_700_000_000.0
    parent = None
    for k in range(study_runs):
        run_id = f"{k:012x}"
        nested = k % 5 == 4 and parent is not None
        led.start_run(
            gp.RunRecord(
                id=run_id,
                name=f"t{k}",
                study="s",
                status="finished",
                started_at=t,
                ended_at=t + 60.0,
                duration_s=60.0,
                energy_kwh=1e-3 * (1 + k % 7),
                emissions_kg=4e-4 * (1 + k % 7),
                fpo=10**15 * (k % 3) if k % 2 else None,
                parent_id=parent if nested else None,
                params={"lr": 0.1, "layers": k % 8},
                metrics=tuple(gp.MetricPoint("accuracy", 0.5, s, t + s) for s in (1, 2, 3)),
            )
        )
        parent = None if nested else run_id
        t += 61.0


def before_read(led: gp.Ledger, study: str) -> Spent:
    """The read before the one-query sum: every run of the study (with its metrics) into
    Python, top-level runs found and summed there (the code this replaced, unchanged)."""
    records = led.runs(study=study)
    ids = {r.id for r in records}
    live = {run.id for run in active_runs()}
    roots = [r for r in records if r.parent_id is None or r.parent_id not in ids]
    base = Spent()
    for r in roots:
        if r.id not in live:
            cost = (r.energy_kwh or 0.0, r.emissions_kg or 0.0, r.fpo or 0, r.duration_s)
            base = base + Spent(cost[0], cost[1], float(cost[2]), cost[3] or 0.0)
    return base


def study_read_ms(study_runs: int, repeat: int = 5) -> tuple[float, float]:
    """(before, after) in ms: the median time of one read of a study of ``study_runs`` runs."""
    with tempfile.TemporaryDirectory() as tmp:
        led = gp.Ledger(str(Path(tmp) / "l.db"))
        make_study(led, study_runs)
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
        before, after = study_read_ms(n)
        print(
            f"study budget, one read of a {n:,}-run study's cost: {before:.1f} ms before "
            f"(every run into Python), {after:.2f} ms after (one SQL sum): {before / after:.0f}x"
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
