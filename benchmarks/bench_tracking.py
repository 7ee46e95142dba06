"""Tracking overhead, start/stop latency and start-up cost: greenprint beside codecarbon.

One run, same machine, same workload, same assumptions:

* **sampling cost**: the CPU time each tracker's sampling thread takes while it tracks
  ``time.sleep`` (1 s sampling in both), in ms of CPU per second tracked, and the CPU time of its
  start and stop: the cost a tracker adds to any job, free of the workload's timing noise
  (median of three probes each, alternating, each in a fresh interpreter);
* **workload overhead**: the same CPU-bound job (one BLAS thread) bare, under ``gp.track`` and
  under codecarbon's ``OfflineEmissionsTracker``, in rounds whose order rotates (bare/gp/cc,
  cc/bare/gp, ...); the overhead is the median over rounds of (tracked - bare) / bare within the
  round, in process CPU time (what the tracker takes from the machine; robust to a shared VM's
  steal) and in wall time (noisy on a shared VM: the bare runs' spread is printed beside it);
  start and stop are inside the measured region;
* **energy**: both trackers' kWh for the same job, greenprint's CPU estimate and RAM power forced
  into codecarbon (``force_cpu_power``, ``force_ram_power``), the same intensity, process mode;
* start+stop latency of an empty run (median of 30, warm);
* ``python -X importtime -c "import greenprint"`` (cumulative import time of greenprint) and the
  wall time of ``greenprint --help`` beside ``python -c pass``.

Usage: ``.venv/bin/python benchmarks/bench_tracking.py [--seconds 6] [--rounds 6] [--out FILE]``
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
from collections.abc import Callable
from pathlib import Path

# One BLAS thread: idle OpenBLAS workers spin for CPU time on some VMs, which would add noise to
# the CPU-time figures larger than either tracker's cost. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

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


def run_bare(iterations: int) -> tuple[float, dict[str, float]]:
    t0 = time.perf_counter()
    workload(iterations)
    return time.perf_counter() - t0, {}


def run_greenprint(
    iterations: int, ledger: str, body: float | None = None
) -> tuple[float, dict[str, float]]:
    """Track the workload (or ``time.sleep(body)``); elapsed s and kWh by component."""
    import greenprint as gp

    t0 = time.perf_counter()
    with gp.track("bench", study="bench", ledger=ledger, intensity=INTENSITY) as run:
        extra = _body(iterations, body)
    elapsed = time.perf_counter() - t0
    machine = run.ledger.run(run.id).machine_energy_kwh or 0.0
    kwh = {"total": run.energy_kwh, "machine": machine, **run.energy_by_component}
    return elapsed, {**kwh, **extra}


def run_codecarbon(
    iterations: int, cpu_w: float, ram_w: float, outdir: str, body: float | None = None
) -> tuple[float, dict[str, float]]:
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
    extra = _body(iterations, body)
    tracker.stop()
    elapsed = time.perf_counter() - t0
    data = tracker.final_emissions_data
    return elapsed, {
        "total": float(data.energy_consumed),
        "cpu": float(data.cpu_energy),
        "ram": float(data.ram_energy),
        **extra,
    }


def _body(iterations: int, sleep_s: float | None) -> dict[str, float]:
    """Run the workload, or sleep and return the CPU ms per s the process used meanwhile."""
    if sleep_s is None:
        workload(iterations)
        return {}
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(sleep_s)
    return {"cpu_ms_per_s": 1000.0 * (time.process_time() - c0) / (time.perf_counter() - w0)}


def idle_cost(
    track: Callable[[float], tuple[float, dict[str, float]]], seconds: float
) -> tuple[float, float]:
    """CPU cost of tracking ``time.sleep(seconds)``: sampling in ms per s, start+stop in ms."""
    c0 = time.process_time()
    elapsed, data = track(seconds)
    total_ms = 1000.0 * (time.process_time() - c0)
    sampling = data["cpu_ms_per_s"]
    return sampling, total_ms - sampling * seconds


def idle_probe(name: str, seconds: float, cpu_w: float, ram_w: float) -> tuple[float, float]:
    """:func:`idle_cost` of one tracker, measured in a fresh interpreter.

    BLAS is held to one thread there: idle OpenBLAS worker threads spin for CPU time on some
    VMs (about 10 ms/s on this one), which would bury both trackers' own cost.
    """
    blas = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    out = subprocess.run(
        [sys.executable, __file__, "--probe", name, "--idle", str(seconds)]
        + ["--cpu-w", str(cpu_w), "--ram-w", str(ram_w)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **dict.fromkeys(blas, "1")},
    ).stdout
    sampling, start_stop = json.loads(out.strip().splitlines()[-1])
    return float(sampling), float(start_stop)


def spread(values: list[float]) -> float:
    """(max - min) / min, in %."""
    return 100.0 * (max(values) - min(values)) / min(values)


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


def import_time_ms(n: int = 7) -> float:
    """Median over ``n`` fresh interpreters of greenprint's cumulative import time, in ms."""
    totals = []
    for _ in range(n):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import greenprint"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in out.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if m and m.group(2) == "greenprint":
                totals.append(int(m.group(1)) / 1000.0)
    return statistics.median(totals)


def wall_ms(cmd: list[str], n: int = 10) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="workload length")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of bare/gp/cc (>= 1)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle tracking length (s)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument("--probe", choices=["greenprint", "codecarbon"], help=argparse.SUPPRESS)
    parser.add_argument("--cpu-w", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--ram-w", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    if args.probe:
        tmp = tempfile.mkdtemp(prefix="gp-bench-")
        probes: dict[str, Callable[[float], tuple[float, dict[str, float]]]] = {
            "greenprint": lambda s: run_greenprint(0, os.path.join(tmp, "probe.db"), s),
            "codecarbon": lambda s: run_codecarbon(0, args.cpu_w, args.ram_w, tmp, s),
        }
        probes[args.probe](0.5)  # warm: imports, ledger creation, tables
        print(json.dumps(idle_cost(probes[args.probe], args.idle)))
        return

    from greenprint.hardware import detect_hardware
    from greenprint.meters._discovery import cpu_estimate_for, ram_estimate_for

    hw = detect_hardware()
    tmp = tempfile.mkdtemp(prefix="gp-bench-")
    ledger = os.path.join(tmp, "bench.db")
    iterations = calibrate(args.seconds)
    # greenprint's own assumptions, forced into codecarbon so that both model the same machine
    cpu_meter = cpu_estimate_for(hw)
    ram_meter = ram_estimate_for(hw)
    cpu_w = float(getattr(cpu_meter, "tdp_w", 0.0))
    ram_w = float(getattr(ram_meter, "power_w", 0.0))

    runners: dict[str, Callable[[], tuple[float, dict[str, float]]]] = {
        "bare": lambda: run_bare(iterations),
        "greenprint": lambda: run_greenprint(iterations, ledger),
        "codecarbon": lambda: run_codecarbon(iterations, cpu_w, ram_w, tmp),
    }
    runners["greenprint"]()  # warm: imports, ledger creation, codecarbon's tables
    runners["codecarbon"]()
    # each tracker alone in a fresh interpreter, so that neither pays for the other's threads
    # three probes each, alternating; the median of each figure
    probes: dict[str, list[tuple[float, float]]] = {"greenprint": [], "codecarbon": []}
    for _ in range(3):
        for n in probes:
            probes[n].append(idle_probe(n, args.idle, cpu_w, ram_w))
    idle = {
        n: (statistics.median(p[0] for p in v), statistics.median(p[1] for p in v))
        for n, v in probes.items()
    }
    names = list(runners)
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    energy: dict[str, list[dict[str, float]]] = {"greenprint": [], "codecarbon": []}
    for r in range(args.rounds):
        order = names[r % 3 :] + names[: r % 3]
        for name in order:
            c0 = time.process_time()
            elapsed, kwh = runners[name]()
            cpu[name].append(time.process_time() - c0)
            times[name].append(elapsed)
            if name in energy:
                energy[name].append(kwh)

    def overhead(name: str, of: dict[str, list[float]]) -> float:
        return statistics.median((t - b) / b for t, b in zip(of[name], of["bare"], strict=True))

    def kwh(name: str, part: str) -> float:
        return statistics.median(e.get(part, 0.0) for e in energy[name])

    gp_over, cc_over = overhead("greenprint", times), overhead("codecarbon", times)
    gp_cpu, cc_cpu = overhead("greenprint", cpu), overhead("codecarbon", cpu)
    figures = {
        "cpu_model": hw.cpu_model,
        "cpu_w": cpu_w,
        "cpu_w_source": cpu_meter.provenance,
        "ram_w": ram_w,
        "workload_s": statistics.median(times["bare"]),
        "rounds": args.rounds,
        "sampling_cpu_ms_per_s_greenprint": idle["greenprint"][0],
        "sampling_cpu_ms_per_s_codecarbon": idle["codecarbon"][0],
        "start_stop_cpu_ms_greenprint": idle["greenprint"][1],
        "start_stop_cpu_ms_codecarbon": idle["codecarbon"][1],
        "greenprint_cpu_overhead_pct": 100 * gp_cpu,
        "codecarbon_cpu_overhead_pct": 100 * cc_cpu,
        "greenprint_wall_overhead_pct": 100 * gp_over,
        "codecarbon_wall_overhead_pct": 100 * cc_over,
        "bare_wall_spread_pct": spread(times["bare"]),
        "bare_cpu_spread_pct": spread(cpu["bare"]),
        "greenprint_energy_kwh": kwh("greenprint", "total"),
        "greenprint_cpu_kwh": kwh("greenprint", "cpu"),
        "greenprint_ram_kwh": kwh("greenprint", "ram"),
        "greenprint_machine_kwh": kwh("greenprint", "machine"),
        "codecarbon_energy_kwh": kwh("codecarbon", "total"),
        "codecarbon_cpu_kwh": kwh("codecarbon", "cpu"),
        "codecarbon_ram_kwh": kwh("codecarbon", "ram"),
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
