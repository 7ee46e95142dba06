"""Timing helpers the integration benchmarks share (bench_integrations*.py).

Imported by the benchmark scripts as a sibling module: ``python benchmarks/bench_x.py`` puts
``benchmarks/`` first on ``sys.path``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def alternate(
    bare: Callable[[], object], tracked: Callable[[], object], rounds: int
) -> tuple[float, float]:
    """Median wall times (s) of ``bare`` and ``tracked``, run alternately after a warm-up each.

    Alternating spreads a busy machine's noise over both sides instead of one.
    """
    bare()
    tracked()
    b, t = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        bare()
        b.append(time.perf_counter() - start)
        start = time.perf_counter()
        tracked()
        t.append(time.perf_counter() - start)
    return statistics.median(b), statistics.median(t)


def median_ms(fn: Callable[[int], object], steps: int) -> float:
    """Median wall time (ms) of ``fn(step)`` over ``step = 0 .. steps - 1``."""
    times = []
    for step in range(steps):
        start = time.perf_counter()
        fn(step)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def timed_ms(fn: Callable[[], object]) -> float:
    """Wall time (ms) of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3
