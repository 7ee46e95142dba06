"""What the RAPL wrap watcher costs: a meter's start and close, a read, and the watcher's wake-ups.

    .venv/bin/python benchmarks/bench_meters_watch.py [--seconds 10] [--repeat 200]

A RAPL counter wraps at its ``max_energy_range_uj`` (262 kJ on most Intel servers, 65.5 kJ on
AMD and on DRAM domains): reads further apart than its wrap time at the most power a domain can
draw would miss whole wraps, so :class:`~greenprint.meters._rapl.RaplMeter` starts a watcher
thread that reads the counters itself whenever no read came for a quarter of that time (5.5 s
for 65.5 kJ, 22 s for 262 kJ; never more often than every 0.05 s). This script measures, on a
fake powercap tree of two packages with DRAM (greenprint.testing: the same sysfs files the
meter reads on a real machine), with the watcher and without it (``watch_period_s = None``):

* a meter's ``start()`` + ``close()`` (starting and joining the thread), median of ``--repeat``;
* one ``read()`` (the sampler's, every ``sample_interval_s``);
* the process's CPU time over ``--seconds`` while a meter is open and nothing else runs: at the
  real periods (the watcher sleeps: a few wake-ups) and at the shortest period, 0.05 s, where it
  reads the counters at every wake-up (the worst case: a sampler that never reads).

No peer has a watcher (codecarbon reads RAPL once per ``measure_power_secs``, 15 s by default,
and misses a wrap between two of its reads of a 65.5 kJ counter above 4.4 kW); the figures are
what greenprint adds for its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from greenprint.meters._rapl import RaplMeter, probe_rapl
from greenprint.testing import make_fake_rapl


def _meter(root: Path, *, watch: float | None | str) -> RaplMeter:
    probe = probe_rapl(root)
    meter = RaplMeter("cpu", probe.package + probe.dram)
    if watch != "default":
        meter.watch_period_s = watch  # type: ignore[assignment]
    return meter


def _median_s(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cycle(meter: RaplMeter) -> None:
    meter.start()
    meter.close()


def _idle_cpu_s(meter: RaplMeter, seconds: float) -> tuple[float, int]:
    """Process CPU seconds while ``meter`` is open and the main thread sleeps; watcher reads."""
    meter.start()
    cpu0 = time.process_time()
    time.sleep(seconds)
    cpu = time.process_time() - cpu0
    reads = meter.watch_reads
    meter.close()
    return cpu, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="gp-bench-watch-"))
    rows = []
    for label, range_uj in (
        ("262 kJ (Intel package)", 262_143_328_850),
        ("65.5 kJ", 65_532_610_987),
    ):
        root = work / label.split()[0]
        make_fake_rapl(root, packages=2, dram=True, max_energy_range_uj=range_uj)
        with_watch, without = _meter(root, watch="default"), _meter(root, watch=None)
        period = with_watch.watch_period_s

        start_on = _median_s(partial(_cycle, with_watch), args.repeat)
        start_off = _median_s(partial(_cycle, without), args.repeat)
        with_watch.start()
        read_s = _median_s(with_watch.read, args.repeat)
        with_watch.close()
        idle_on, reads_on = _idle_cpu_s(_meter(root, watch="default"), args.seconds)
        idle_off, _ = _idle_cpu_s(_meter(root, watch=None), args.seconds)
        rows.append((label, period, start_on, start_off, read_s, idle_on, reads_on, idle_off))
    root = work / "262"
    worst, reads = _idle_cpu_s(_meter(root, watch=0.05), args.seconds)
    print("| counter range | watch period | start + close, watcher / none | read() | "
          f"CPU over {args.seconds:g} s idle, watcher (its reads) / none |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, period, on, off, read_s, idle_on, reads_on, idle_off in rows:
        print(f"| {label} | {period:.1f} s | {on * 1e6:.0f} / {off * 1e6:.0f} us | "
              f"{read_s * 1e6:.0f} us | {idle_on * 1e3:.2f} ms ({reads_on}) / "
              f"{idle_off * 1e3:.2f} ms |")  # fmt: skip
    per_read = worst / reads * 1e6 if reads else float("nan")
    print(
        f"| worst case: period 0.05 s, no sampler | 0.05 s | | | {worst * 1e3:.1f} ms "
        f"({reads} reads, {per_read:.0f} us each: {worst / args.seconds:.2%} of a core) | |"
    )


if __name__ == "__main__":
    main()
