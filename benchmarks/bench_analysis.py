"""Benchmark greenprint.analysis against its peers, side by side, with ratios.

    .venv/bin/python benchmarks/bench_analysis.py [--repeat 7]

* Expected max performance (EVP) of 10,000 scores, both estimators (target < 50 ms), against
  (a) the dense O(N^2) numpy formula (the probability matrix built row block by row block) and
  (b) the algorithm of Dodge et al.'s public "show your work" / allentune code: a pure-Python
  double loop over n and i, with replacement only (run at N = 1,000: at 10,000 it takes minutes).
* Hypervolume of 10,000 2-D points (target < 50 ms) against moocore (C, the reference
  implementation of the hypervolume literature) and Optuna's ``compute_hypervolume``; 3-D and
  4-D fronts too.
* Pareto front of 10,000 2-D points against moocore and Optuna; 10,000 points on a 3-, 4- and
  5-D front against moocore's ``is_nondominated``.
* Price tag of a synthetic study of 10,000 runs (no peer computes one).
* Reading a study's shape at scale (no peer): the roles of 100,000 trials drawn over 4 sizes,
  the rerun pairs of 30,000 trials of one name, and the parents of 40,000 runs of 2,000 sweeps
  whose reused workers name the first sweep (each target < 2 s of CPU; a quadratic scan takes
  minutes). These were timed assertions in the unit tests once; timing belongs here.

Peers that are not installed are reported as such (``pip install moocore optuna``). Every peer's
result is checked against greenprint's before its time is shown.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from greenprint import MetricPoint, RunRecord
from greenprint._forest import RunForest
from greenprint.analysis import (
    expected_max_performance,
    hypervolume,
    pareto_front,
    price_tag,
    resolve_roles,
)


def timeit(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in seconds over ``repeat`` calls (after one warm-up), and the result."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def dense_evp(scores: np.ndarray, replacement: bool) -> np.ndarray:
    """E[max of n] for every n from the full N x N probability matrix, in row blocks."""
    v = np.sort(scores)
    total = v.size
    i = np.arange(1, total + 1, dtype=float)
    log_fact = np.array([math.lgamma(k + 1.0) for k in range(total + 1)])
    out = np.empty(total)
    for start in range(0, total, 256):
        n = np.arange(start + 1, min(start + 257, total + 1), dtype=float)[:, None]
        if replacement:
            cdf = np.exp(n * np.log(i / total))
        else:
            k = np.maximum(i[None, :] - n, 0).astype(int)
            log_c = log_fact[i.astype(int)][None, :] - log_fact[k] - log_fact[total]
            log_c = log_c + log_fact[(total - n).astype(int)]
            cdf = np.where(i[None, :] >= n, np.exp(log_c), 0.0)
        pdf = np.diff(cdf, axis=1, prepend=0.0)
        out[start : start + n.shape[0]] = pdf @ v
    return out


def dodge_reference_evp(scores: list[float]) -> list[float]:
    """The algorithm of Dodge et al.'s reference code: Python loops over n and i (with repl.)."""
    values = sorted(scores)
    total = len(values)
    means = []
    for n in range(1, total + 1):
        previous = 0.0
        mean = 0.0
        for i in range(1, total + 1):
            cdf = (i / total) ** n
            mean += values[i - 1] * (cdf - previous)
            previous = cdf
        means.append(mean)
    return means


def synthetic_study(count: int, seed: int = 0) -> list[RunRecord]:
    """``count`` trials under one parent run, mixed statuses, scores, FPO and provenance."""
    rng = np.random.default_rng(seed)
    statuses = rng.choice(["finished", "failed", "pruned"], size=count, p=[0.7, 0.1, 0.2])
    energy = rng.gamma(2.0, 0.01, size=count)
    runs = [
        RunRecord(
            id="study",
            name="study",
            status="finished",
            energy_kwh=float(energy.sum()) * 1.01,
            emissions_kg=float(energy.sum()) * 0.404,
            duration_s=count * 60.0,
        )
    ]
    for k in range(count):
        runs.append(
            RunRecord(
                id=f"t{k}",
                name=f"trial-{k}",
                parent_id="study",
                status=str(statuses[k]),
                started_at=60.0 * k,
                ended_at=60.0 * k + 55.0,
                duration_s=55.0,
                energy_kwh=float(energy[k]),
                energy_cpu_kwh=float(energy[k]),
                emissions_kg=float(energy[k]) * 0.4,
                fpo=int(rng.integers(10**12, 10**13)),
                dataset_size=1797,
                provenance={"cpu": "estimate:tdp:65W", "intensity": "table:DE:2023"},
                metrics=(MetricPoint("accuracy", float(rng.beta(8, 2)), step=0),),
            )
        )
    return runs


def drawn_trials(count: int) -> list[RunRecord]:
    """``count`` trials, each an lr and one of 4 dataset sizes: no size group, no curve."""
    import random

    draw = random.Random(0)
    return [
        RunRecord(
            id=f"t{k}",
            name=f"t{k}",
            status="finished",
            dataset_size=draw.choice([250, 500, 750, 1000]),
            params={"lr": draw.random()},
        )
        for k in range(count)
    ]


def rerun_trials(count: int) -> list[RunRecord]:
    """``count`` trials all named "run", each configuration run twice; one in 20 failed."""
    return [
        RunRecord(
            id=f"{i:08d}",
            name="run",
            study="s",
            status="failed" if i % 20 == 0 else "finished",
            started_at=float(i),
            params={"lr": i // 2, "seed": 0} if i % 2 else {"seed": 0, "lr": i // 2},
        )
        for i in range(count)
    ]


def reused_worker_runs(sweeps: int) -> list[RunRecord]:
    """``sweeps`` searches in one driver, 20 trials each in two reused workers that name the
    first sweep as their parent."""
    runs, now = [], 0.0
    for s in range(sweeps):
        runs.append(
            RunRecord(
                id=f"s{s:06d}",
                name="search",
                study="x",
                status="finished",
                started_at=now,
                ended_at=now + 20.5,
                host="h",
                provenance={"writer": "driver"},
            )  # fmt: skip
        )
        for k in range(20):
            now += 1.0
            runs.append(
                RunRecord(
                    id=f"t{s:06d}{k:03d}",
                    name="trial",
                    study="x",
                    status="finished",
                    started_at=now,
                    ended_at=now + 0.5,
                    parent_id="s000000",
                    host="h",
                    provenance={"writer": f"worker-{k % 2}"},
                    params={"k": k},
                )  # fmt: skip
            )
        now += 1.0
    return runs


def cpu_time(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of one call (the unit the old timed tests used), and the result."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def row(name: str, ours: float, theirs: float | None, note: str = "") -> str:
    if theirs is None:
        return f"| {name} | {ours * 1e3:.2f} | n/a | n/a | {note} |"
    return f"| {name} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {theirs / ours:.1f}x | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per case (median)")
    args = parser.parse_args()
    rep = args.repeat
    rng = np.random.default_rng(42)
    lines = [
        f"machine: {platform.processor() or platform.machine()}, python "
        f"{platform.python_version()}, numpy {np.__version__}",
        "",
        "| case | greenprint (ms) | peer (ms) | peer / greenprint | peer |",
        "| --- | ---: | ---: | ---: | --- |",
    ]

    # ------------------------------------------------------------------ EVP
    scores = rng.beta(8, 2, size=10_000)
    for replacement in (True, False):
        label = "with" if replacement else "without"
        ours, curve = timeit(
            lambda r=replacement: expected_max_performance(scores, replacement=r), rep
        )
        theirs, dense = timeit(lambda r=replacement: dense_evp(scores, r), max(1, rep // 3))
        error = float(np.abs(dense - curve.mean).max())
        lines.append(
            row(
                f"EVP, 10,000 scores, {label} replacement",
                ours,
                theirs,
                f"dense O(N^2) numpy; max abs diff {error:.1e}",
            )
        )
    small = scores[:1_000]
    ours, curve = timeit(lambda: expected_max_performance(small), rep)
    theirs, reference = timeit(lambda: dodge_reference_evp(small.tolist()), 1)
    error = float(np.abs(np.array(reference) - curve.mean).max())
    lines.append(
        row(
            "EVP, 1,000 scores, with replacement",
            ours,
            theirs,
            f"Dodge et al. reference algorithm (Python loops); max abs diff {error:.1e}",
        )
    )

    # ------------------------------------------------------------------ hypervolume / front
    try:
        import moocore
    except ImportError:
        moocore = None
    try:
        from optuna._hypervolume import compute_hypervolume as optuna_hv
        from optuna.study._multi_objective import _is_pareto_front as optuna_front
    except ImportError:
        optuna_hv = optuna_front = None

    t = np.sort(rng.random(10_000))
    on_front = np.column_stack([t, 1.0 - np.sqrt(t)])  # all 10,000 on the front (worst case)
    cloud = rng.random((10_000, 2))  # mostly dominated
    ref2 = np.array([1.1, 1.1])
    for label, pts in (("all on the front", on_front), ("random cloud", cloud)):
        ours, hv = timeit(lambda p=pts: hypervolume(p, ref2, directions=("min", "min")), rep)
        for peer, fn in (
            (
                "moocore",
                None if moocore is None else lambda p=pts: moocore.hypervolume(p, ref=ref2),
            ),
            ("optuna", None if optuna_hv is None else lambda p=pts: optuna_hv(p, ref2)),
        ):
            if fn is None:
                lines.append(
                    row(
                        f"hypervolume, 10,000 2-D points, {label}",
                        ours,
                        None,
                        f"{peer} not installed",
                    )
                )
                continue
            theirs, value = timeit(fn, rep)
            lines.append(
                row(
                    f"hypervolume, 10,000 2-D points, {label}",
                    ours,
                    theirs,
                    f"{peer}; rel diff {abs(value - hv) / hv:.1e}",
                )
            )
    for label, pts in (("all on the front", on_front), ("random cloud", cloud)):
        ours, front = timeit(lambda p=pts: pareto_front(p, directions=("min", "min")), rep)
        for peer, fn in (
            (
                "moocore",
                None
                if moocore is None
                else lambda p=pts: np.nonzero(moocore.is_nondominated(p))[0],
            ),
            (
                "optuna",
                None
                if optuna_front is None
                else lambda p=pts: np.nonzero(optuna_front(p, assume_unique_lexsorted=False))[0],
            ),
        ):
            if fn is None:
                continue
            theirs, indices = timeit(fn, rep)
            same = "same front" if np.array_equal(np.sort(indices), front) else "DIFFERENT front"
            lines.append(
                row(f"Pareto front, 10,000 2-D points, {label}", ours, theirs, f"{peer}; {same}")
            )

    for d in (3, 4, 5):
        sphere = np.abs(rng.normal(size=(10_000, d)))
        sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)  # every point on the front
        dirs = ("min",) * d
        ours, front = timeit(lambda p=sphere, s=dirs: pareto_front(p, directions=s), rep)
        if moocore is None:
            lines.append(row(f"Pareto front, 10,000 {d}-D points on a front", ours, None, ""))
            continue
        theirs, indices = timeit(lambda p=sphere: np.nonzero(moocore.is_nondominated(p))[0], rep)
        same = "same front" if np.array_equal(indices, front) else "DIFFERENT front"
        lines.append(
            row(
                f"Pareto front, 10,000 {d}-D points on a front",
                ours,
                theirs,
                f"moocore is_nondominated; {same} ({len(front):,} points)",
            )
        )

    for count, d in ((10_000, 3), (200, 4)):
        sphere = np.abs(rng.normal(size=(count, d)))
        sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)  # every point on the front
        ref = np.full(d, 1.1)
        dirs = ("min",) * d
        ours, hv = timeit(lambda p=sphere, r=ref, s=dirs: hypervolume(p, r, directions=s), 3)
        for peer, fn in (
            (
                "moocore",
                None if moocore is None else lambda p=sphere, r=ref: moocore.hypervolume(p, ref=r),
            ),
            ("optuna", None if optuna_hv is None else lambda p=sphere, r=ref: optuna_hv(p, r)),
        ):
            if fn is None:
                continue
            theirs, value = timeit(fn, 3)
            lines.append(
                row(
                    f"hypervolume, {count:,} {d}-D points on a front",
                    ours,
                    theirs,
                    f"{peer}; rel diff {abs(value - hv) / hv:.1e}",
                )
            )

    # ------------------------------------------------------------------ price tag
    study = synthetic_study(10_000)
    ours, tag = timeit(lambda: price_tag(study, metric="accuracy"), max(1, rep // 2))
    lines.append(
        row(
            "price tag, 10,001 runs (1 parent, 10,000 trials)",
            ours,
            None,
            f"no peer; {tag.total.trials} trials, {tag.total.energy_kwh:.2f} kWh",
        )
    )

    # ------------------------------------------------------------------ a study's shape
    trials = drawn_trials(100_000)
    used, study = cpu_time(lambda: resolve_roles(trials))
    lines.append(
        row(
            "roles of 100,000 trials over 4 sizes (CPU ms, target < 2,000)",
            used,
            None,
            f"no peer; {len(study.trials):,} trials, {len(study.size_curves)} size curves",
        )
    )
    reruns = resolve_roles(rerun_trials(30_000))
    reruns.trials  # noqa: B018 - the trials are read apart from the rerun note
    used, pairs = cpu_time(lambda: reruns.reruns)
    lines.append(
        row(
            "rerun pairs of 30,000 trials of one name (CPU ms, target < 2,000)",
            used,
            None,
            f"no peer; {len(pairs):,} failed trials paired with their rerun",
        )
    )
    forest_runs = reused_worker_runs(2_000)
    used, forest = cpu_time(lambda: RunForest.build(forest_runs))
    lines.append(
        row(
            "parents of 42,000 runs, reused workers (CPU ms, target < 2,000)",
            used,
            None,
            f"no peer; {len(forest.runs):,} runs, {len(forest.notes)} note",
        )
    )

    print("\n".join(lines))


if __name__ == "__main__":
    main()
