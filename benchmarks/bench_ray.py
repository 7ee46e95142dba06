"""Overhead of greenprint's Ray Tune wrapper and callback on a small experiment.

The same experiment (``--trials`` trials of ``--iterations`` results, each iteration
``--work-s`` seconds of CPU) runs bare and through ``trainable(fn)`` + ``GreenprintTuneCallback``
on one local cluster (``ray.init(num_cpus=2)``), alternately, ``--repeats`` times each:

* ``fit wall``: ``tuner.fit()`` wall time, median (Ray's own scheduling dominates it);
* ``report``: the time the trial's function spends in ``tune.report``, mean per result, measured
  inside the trial (bare: Ray's own; wrapped: Ray's plus greenprint's figures, one meter read and
  the run's log);
* ``trial``: the worker's wall time of the whole trial as Tune sees it (``time_total_s``).

Run: ``.venv/bin/python benchmarks/bench_ray.py`` (about a minute); writes
``benchmarks/results/ray.md``. Ray is kept off the network as in the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _make_trial(iterations: int, work_s: float) -> Any:
    from ray import tune

    def trial(config: dict[str, Any]) -> None:
        spent = 0.0
        for i in range(iterations):
            _busy(work_s)
            t0 = time.perf_counter()
            tune.report({"score": float(config["x"] * (i + 1)), "report_s": spent / max(i, 1)})
            spent += time.perf_counter() - t0

    return trial


def _fit(fn: Any, trials: int, storage: Path, callbacks: list[Any]) -> tuple[float, Any]:
    from ray import tune

    tuner = tune.Tuner(
        fn,
        param_space={"x": tune.grid_search(list(range(1, trials + 1)))},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(storage_path=str(storage), callbacks=callbacks, verbose=0),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    return time.perf_counter() - t0, results


def _direct(ledger: Path, n: int = 200) -> tuple[float, float]:
    """Greenprint's own part, timed in this process: (ms per result, ms per trial start+end)."""
    from greenprint.integrations._dl import LiveFigures
    from greenprint.integrations.ray import _TrialRun, _TrialSpec
    from greenprint.tracking import Run

    spec = _TrialSpec(str(ledger), "bench", "worker", "host", os.getpid(), {})
    starts = []
    per_result = []
    for _ in range(5):
        t0 = time.perf_counter()
        trial = _TrialRun(spec, {"x": 1})
        trial.run = Run("t", study="bench", ledger=str(ledger), role="trial").start()
        trial._figures = LiveFigures(trial.run)
        t1 = time.perf_counter()
        for i in range(n):
            trial._annotate({"score": float(i)})
        t2 = time.perf_counter()
        trial.run.stop()
        t3 = time.perf_counter()
        starts.append((t1 - t0) + (t3 - t2))
        per_result.append((t2 - t1) / n)
    return statistics.median(per_result) * 1e3, statistics.median(starts) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--work-s", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ray.md"))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="gp-bench-ray-"))
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")
    os.environ.update(
        HOME=str(home),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_USAGE_STATS_REPORT_URL="http://127.0.0.1:9/",
        RAY_AUTH_MODE="disabled",
    )
    import ray

    from greenprint.integrations.ray import GreenprintTuneCallback, trainable

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    bare_fn = _make_trial(args.iterations, args.work_s)
    figures: dict[str, list[float]] = {k: [] for k in ("bare", "wrapped")}
    reports: dict[str, list[float]] = {k: [] for k in ("bare", "wrapped")}
    trial_s: dict[str, list[float]] = {k: [] for k in ("bare", "wrapped")}
    try:
        for repeat in range(args.repeats):
            for kind in ("bare", "wrapped"):
                storage = home / f"tune-{kind}-{repeat}"
                ledger = home / f"gp-{repeat}.db"
                if kind == "bare":
                    wall, results = _fit(bare_fn, args.trials, storage, [])
                else:
                    fn = trainable(bare_fn, ledger=ledger)
                    cb = GreenprintTuneCallback(ledger=ledger)
                    wall, results = _fit(fn, args.trials, storage, [cb])
                figures[kind].append(wall)
                for result in results:
                    reports[kind].append(result.metrics["report_s"])
                    trial_s[kind].append(result.metrics["time_total_s"])
                print(f"{kind:8s} repeat {repeat}: fit {wall:.2f} s", flush=True)
    finally:
        ray.shutdown()

    result_ms, trial_ms = _direct(home / "direct.db")

    def med(values: list[float]) -> float:
        return statistics.median(values)

    work = args.iterations * args.work_s
    report_extra_ms = (statistics.mean(reports["wrapped"]) - statistics.mean(reports["bare"])) * 1e3
    trial_extra_s = med(trial_s["wrapped"]) - med(trial_s["bare"])
    result_pct = result_ms / (args.work_s * 1e3) * 100
    trial_pct = trial_ms / (work * 1e3) * 100
    lines = [
        "# Ray Tune wrapper overhead",
        "",
        f"{args.trials} trials x {args.iterations} results, {args.work_s} s CPU per result "
        f"({work:.1f} s per trial), local cluster of 2 CPUs, {args.repeats} repeats "
        "(`benchmarks/bench_ray.py`).",
        "",
        "| | bare | wrapped | difference |",
        "| --- | --- | --- | --- |",
        f"| fit wall, median (s) | {med(figures['bare']):.2f} | {med(figures['wrapped']):.2f} | "
        f"{med(figures['wrapped']) - med(figures['bare']):+.2f} |",
        f"| trial wall (time_total_s), median (s) | {med(trial_s['bare']):.3f} | "
        f"{med(trial_s['wrapped']):.3f} | {trial_extra_s:+.3f} |",
        f"| tune.report, mean per result (ms) | {statistics.mean(reports['bare']) * 1e3:.2f} | "
        f"{statistics.mean(reports['wrapped']) * 1e3:.2f} | {report_extra_ms:+.2f} |",
        "",
        "The walls move by tenths of a second per trial between runs of this script on a shared "
        "2-vCPU VM (the differences changed sign across runs); a trial's time includes, in a "
        "fresh worker, importing greenprint and detecting the hardware. Timed directly in one "
        "process (SQLite ledger, estimated meters): greenprint's part of a result (a meter "
        f"read, the run's log, the figures) {result_ms:.2f} ms, {result_pct:.2f}% of a "
        f"{args.work_s} s iteration; a trial's run start and end {trial_ms:.1f} ms, "
        f"{trial_pct:.2f}% of a {work:.1f} s trial.",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
