"""Tracking overhead, start/stop latency and start-up cost: greenprint beside codecarbon.

One run, same machine, same workload, interleaved repetitions:

* the workload bare, under ``gp.track`` and under codecarbon's ``OfflineEmissionsTracker`` with the
  same assumptions (greenprint's matched CPU TDP and RAM power forced into codecarbon, the same
  grid intensity, 1 s sampling in both, process tracking mode);
* start+stop latency of an empty run (median of 30, warm);
* ``python -X importtime -c "import greenprint"`` (cumulative import time of greenprint) and the
  wall time of ``greenprint --help`` beside ``python -c pass``.

Usage: ``.venv/bin/python benchmarks/bench_tracking.py [--seconds 8] [--reps 5] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

INTENSITY = 400.0  # g CO2-eq/kWh, forced in both trackers


def workload(iterations: int) -> float:
    """A CPU-bound job: repeated 256x256 matrix products (fixed work, so time shows overhead)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256))
    acc = 0.0
    for _ in range(iterations):
        a = np.tanh(a @ a.T / 256.0)
        acc += float(a[0, 0])
    return acc


def calibrate(seconds: float) -> int:
    t0 = time.perf_counter()
    workload(50)
    per_iter = (time.perf_counter() - t0) / 50
    return max(50, int(seconds / per_iter))


def run_bare(iterations: int) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    workload(iterations)
    return time.perf_counter() - t0, None


def run_greenprint(iterations: int, ledger: str) -> tuple[float, float | None]:
    import greenprint as gp

    t0 = time.perf_counter()
    with gp.track("bench", study="bench", ledger=ledger, intensity=INTENSITY) as run:
        workload(iterations)
    return time.perf_counter() - t0, run.energy_kwh


def run_codecarbon(iterations: int, cpu_w: float, ram_w: float, outdir: str) -> tuple[float, float]:
    from codecarbon import OfflineEmissionsTracker

    t0 = time.perf_counter()
    tracker = OfflineEmissionsTracker(
        country_iso_code="DEU",
        measure_power_secs=1,
        tracking_mode="process",
        force_cpu_power=cpu_w,
        force_ram_power=ram_w,
        force_carbon_intensity_g_co2e_kwh=INTENSITY,
        save_to_file=False,
        output_dir=outdir,
        log_level="error",
        allow_multiple_runs=True,
    )
    tracker.start()
    workload(iterations)
    tracker.stop()
    elapsed = time.perf_counter() - t0
    return elapsed, float(tracker.final_emissions_data.energy_consumed)


def start_stop_latency(ledger: str, n: int = 30) -> float:
    import greenprint as gp

    with gp.track("warm", study="latency", ledger=ledger):
        pass
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with gp.track("latency", study="latency", ledger=ledger):
            pass
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def import_time_ms() -> float:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import greenprint"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    total = 0
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(2) == "greenprint":
            total = int(m.group(1))
    return total / 1000.0


def wall_ms(cmd: list[str], n: int = 10) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="workload length")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)

    from greenprint.hardware import detect_hardware

    hw = detect_hardware()
    tmp = tempfile.mkdtemp(prefix="gp-bench-")
    ledger = os.path.join(tmp, "bench.db")
    iterations = calibrate(args.seconds)
    # greenprint's own assumptions, forced into codecarbon so that both model the same machine
    with __import__("greenprint").track("probe", ledger=False, intensity=INTENSITY) as probe:
        time.sleep(1.2)
    cpu_w = float(hw.cpu_tdp_w or 0.0)
    ram_prov = probe.provenance.get("ram", "")
    ram_w = probe.energy_by_component.get("ram", 0.0) * 3.6e6 / max(probe.duration_s, 1e-9)
    m = re.search(r"([\d.]+)\s*W/GB x ([\d.]+) GB", ram_prov)
    if m:
        ram_w = float(m.group(1)) * float(m.group(2))

    times: dict[str, list[float]] = {"bare": [], "greenprint": [], "codecarbon": []}
    energy: dict[str, list[float]] = {"greenprint": [], "codecarbon": []}
    for _ in range(args.reps):
        times["bare"].append(run_bare(iterations)[0])
        t, e = run_greenprint(iterations, ledger)
        times["greenprint"].append(t)
        energy["greenprint"].append(e or 0.0)
        t, e = run_codecarbon(iterations, cpu_w, ram_w, tmp)
        times["codecarbon"].append(t)
        energy["codecarbon"].append(e)

    bare = statistics.median(times["bare"])
    gp_t = statistics.median(times["greenprint"])
    cc_t = statistics.median(times["codecarbon"])
    gp_over = (gp_t - bare) / bare
    cc_over = (cc_t - bare) / bare
    figures = {
        "cpu_model": hw.cpu_model,
        "cpu_tdp_w": cpu_w,
        "ram_w": ram_w,
        "workload_s": bare,
        "reps": args.reps,
        "greenprint_overhead_pct": 100 * gp_over,
        "codecarbon_overhead_pct": 100 * cc_over,
        "overhead_ratio_gp_over_cc": gp_over / cc_over if cc_over > 0 else None,
        "greenprint_energy_kwh": statistics.median(energy["greenprint"]),
        "codecarbon_energy_kwh": statistics.median(energy["codecarbon"]),
        "start_stop_ms": 1000 * start_stop_latency(ledger),
        "import_greenprint_ms": import_time_ms(),
        "greenprint_help_ms": wall_ms([str(Path(sys.executable).parent / "greenprint"), "--help"]),
        "python_c_pass_ms": wall_ms([sys.executable, "-c", "pass"]),
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
