"""Tracking overhead, sampling cost and start/stop: greenprint beside codecarbon, both modes.

One run, same machine, same workload, same assumptions. codecarbon 3.3.2 runs as its
``OfflineEmissionsTracker`` (no API, no file written) in both its modes, ``tracking_mode="process"``
and ``"machine"``; every tracker samples every 1 s (greenprint's default; codecarbon with
``measure_power_secs=1``, and its 1 s ``monitor_power`` scheduler). Nothing here may open a
socket: an audit hook refuses (and counts) every socket creation, connection and name lookup,
in this process and in every probe (none is opened), and the figures list what was refused:
greenprint must attempt none.

* **sampling cost**: the CPU time (``time.process_time``: all threads of the process) each
  tracker takes while the tracked code sleeps, in ms of CPU per second tracked, and the CPU of
  its start and stop. Each tracker alone in a fresh interpreter, ``--probes`` probes each, the
  trackers alternating; the median and the range over probes, and the ratio greenprint /
  codecarbon of each round. ``--churn`` starts a short process every 0.25 s meanwhile (outside
  the probes): a machine where processes come and go, on which greenprint cannot skip its walk
  of the tree's children files;
* **the floor**: two more probes alternate with the trackers' (Linux): an empty thread that wakes
  once a second (what any 1 Hz sampler pays before it does anything), and the same thread making
  the ``/proc`` reads of one greenprint sample and nothing else (``floor-reads``);
* **where greenprint's time goes** (``--breakdown``): each part of its sampler (``/proc/stat``,
  the stat lines, the new-process check, the children walk, the tree sample, the meter set, the
  accounting, the ledger flush, the sampler thread as a whole) timed with ``time.thread_time``
  in ``--probes`` fresh interpreters: calls, median µs per call, ms per second tracked;
* **workload overhead**: the same CPU-bound job (one BLAS thread) bare, under ``gp.track`` and
  under codecarbon in each mode, in rounds whose order rotates; the overhead is the median over
  rounds of (tracked - bare) / bare within the round, in process CPU time and in wall time (the
  bare runs' spread is printed beside it); start and stop are inside the measured region;
* **energy**: every tracker's kWh for the same job, greenprint's CPU TDP and RAM power forced
  into codecarbon (``force_cpu_power``, ``force_ram_power``), the same intensity;
* start+stop latency of an empty run (median of 30, warm);
* ``python -X importtime -c "import greenprint"`` (cumulative import time of greenprint) and the
  wall time of ``greenprint --help`` beside ``python -c pass``.

Usage: ``.venv/bin/python benchmarks/bench_tracking.py [--seconds 6] [--rounds 6] [--probes 5]
[--idle 10] [--churn] [--skip-workload] [--breakdown] [--out FILE]``
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One BLAS thread: idle OpenBLAS workers spin for CPU time on some VMs, which would add noise to
# the CPU-time figures larger than either tracker's cost. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

INTENSITY = 400.0  # g CO2-eq/kWh, forced in both trackers
CODECARBON_MODES = ("process", "machine")

#: Socket audit events refused in this process and in every probe (name resolution included;
#: ``socket.gethostname`` reads the kernel's host name and is allowed).
_SOCKET_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.sendmsg",
    }
)
SOCKET_ATTEMPTS: list[str] = []
#: Attempts refused in the probes, by tracker (urllib3, which codecarbon imports through
#: requests, probes for IPv6 by creating a socket at import; refused, it assumes no IPv6).
REFUSED: set[str] = set()


def _no_sockets(event: str, args: tuple[object, ...]) -> None:
    if event in _SOCKET_EVENTS:
        SOCKET_ATTEMPTS.append(f"{event}{args!r:.120}")
        raise RuntimeError(f"benchmark guard: {event} refused (no network in benchmarks)")


sys.addaudithook(_no_sockets)


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
    kwh = {"total": run.energy_kwh, **run.energy_by_component}
    if body is None:  # the workload: its machine figure too (not read in the idle probes)
        kwh["machine"] = run.ledger.run(run.id).machine_energy_kwh or 0.0
    return elapsed, {**kwh, **extra}


def run_codecarbon(
    iterations: int,
    cpu_w: float,
    ram_w: float,
    outdir: str,
    body: float | None = None,
    mode: str = "process",
) -> tuple[float, dict[str, float]]:
    """Track the workload with codecarbon's offline tracker in ``mode`` ("process"/"machine")."""
    from codecarbon import OfflineEmissionsTracker

    t0 = time.perf_counter()
    tracker = OfflineEmissionsTracker(
        country_iso_code="DEU",
        measure_power_secs=1,
        tracking_mode=mode,
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
    VMs (about 10 ms/s on one), which would bury the trackers' own cost.
    """
    blas = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRINT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # import from .pyc, as an installed package does
    out = subprocess.run(
        [sys.executable, __file__, "--probe", name, "--idle", str(seconds)]
        + ["--cpu-w", str(cpu_w), "--ram-w", str(ram_w)],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **dict.fromkeys(blas, "1")},
    ).stdout
    sampling, start_stop, sockets = json.loads(out.strip().splitlines()[-1])
    if sockets and name == "greenprint":
        raise RuntimeError(f"greenprint tried to open sockets: {sockets}")
    REFUSED.update(f"{name}: {attempt}" for attempt in sockets)
    return float(sampling), float(start_stop)


def breakdown_probe(seconds: float) -> dict[str, Any]:
    """:func:`sample_breakdown` in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRINT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, __file__, "--probe", "greenprint-breakdown", "--idle", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


class Churn:
    """Starts a short-lived process every ``period_s`` on a thread, until stopped."""

    def __init__(self, period_s: float = 0.25) -> None:
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = 0

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            subprocess.run(["true"], check=False)
            self.started += 1

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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


TRACKERS = ("greenprint", *(f"codecarbon-{m}" for m in CODECARBON_MODES))
#: Probes that are not trackers: an empty thread that wakes once a second (what any 1 Hz
#: sampler pays on this machine before it does anything), and greenprint's sampler timed part by
#: part.
EXTRA_PROBES = ("floor", "floor-reads", "greenprint-breakdown")


def _proc_reads() -> Callable[[], None]:
    """The reads one greenprint sample makes for a one-process tree, with nothing around them.

    ``/proc/stat`` (the cpu line, parsed), this process's ``/proc/<pid>/stat`` (parsed),
    ``/proc/loadavg`` and the children file of each thread, through descriptors kept open.
    """
    me = os.getpid()
    machine = os.open("/proc/stat", os.O_RDONLY)
    own = os.open(f"/proc/{me}/stat", os.O_RDONLY)
    loadavg = os.open("/proc/loadavg", os.O_RDONLY)
    children = [
        os.open(f"/proc/{me}/task/{tid}/children", os.O_RDONLY)
        for tid in os.listdir(f"/proc/{me}/task")
    ]

    def read() -> None:
        data = os.pread(machine, 256, 0)
        ticks = [int(x) for x in data[: data.find(b"\n")].split()[1:9]]
        fields = os.pread(own, 1024, 0).rpartition(b")")[2].split()
        _ = (sum(ticks), int(fields[11]) + int(fields[12]), int(fields[21]))
        int(os.pread(loadavg, 256, 0).split()[-1])
        for fd in children:
            os.pread(fd, 65536, 0).split()

    return read


def floor_cost(seconds: float, reads: bool = False) -> float:
    """CPU ms per second of a thread that only wakes once a second (a timed lock acquire).

    With ``reads``, each wake-up also makes the reads of one greenprint sample
    (:func:`_proc_reads`, Linux only): what this design costs before any bookkeeping.
    """
    gate = threading.Lock()
    gate.acquire()
    ticks = [0]
    work = _proc_reads() if reads else (lambda: None)

    def loop() -> None:
        while not gate.acquire(timeout=1.0):
            work()
            ticks[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu_ms, wall_s = 1000.0 * (time.process_time() - c0), time.perf_counter() - w0
    gate.release()
    thread.join()
    return cpu_ms / wall_s


#: The parts of one greenprint tick timed by the breakdown probe: (label, owner, attribute).
_PARTS = (
    ("sampler thread, whole", "greenprint.tracking:Run", "_loop"),
    ("run: sample (meters + accounting)", "greenprint.tracking:Run", "_sample"),
    ("meter set: read", "greenprint.meters._set:MeterSet", "read"),
    ("process tree: sample", "greenprint.meters._attribution:ProcessTree", "sample"),
    ("machine CPU times (/proc/stat)", "greenprint.meters._attribution", "_machine_times"),
    ("process stat lines (/proc/<pid>/stat)", "greenprint.meters._attribution:_ProcStat", "read"),
    ("new-process check (/proc/loadavg)", "greenprint.meters._attribution", "_last_pid"),
    (
        "children walk (children files)",
        "greenprint.meters._attribution:ProcessTree",
        "_descendants",
    ),
    ("cost accounting", "greenprint._accounting:CostAccount", "add"),
    ("ledger flush (every 10 s)", "greenprint.tracking:Run", "_flush"),
)


def sample_breakdown(seconds: float, ledger: str) -> dict[str, Any]:
    """Where greenprint's sampling CPU goes: each part timed with ``time.thread_time``.

    Returns, per part, the number of calls, the median µs per call and the ms of CPU per second
    tracked; and the sampler thread's total, from which the rest (wake-up, loop, the timers
    themselves) is the difference. The timers add a few µs per call, so the parts sum to a
    little more than an untimed run costs.
    """
    import importlib

    import greenprint as gp

    timings: dict[str, list[float]] = {label: [] for label, _, _ in _PARTS}
    for label, where, name in _PARTS:
        module_name, _, cls = where.partition(":")
        owner: Any = importlib.import_module(module_name)
        if cls:
            owner = getattr(owner, cls)
        original = getattr(owner, name)

        def timed(*a: Any, _f: Any = original, _out: list[float] = timings[label], **k: Any) -> Any:
            t0 = time.thread_time_ns()
            try:
                return _f(*a, **k)
            finally:
                _out.append((time.thread_time_ns() - t0) / 1000.0)

        setattr(owner, name, timed)
    with gp.track("warm", study="bench", ledger=ledger, intensity=INTENSITY):
        time.sleep(0.5)
    for values in timings.values():
        values.clear()
    c0 = time.process_time()
    with gp.track("breakdown", study="bench", ledger=ledger, intensity=INTENSITY):
        w0 = time.perf_counter()
        time.sleep(seconds)
        wall_s = time.perf_counter() - w0
    process_ms = 1000.0 * (time.process_time() - c0)
    parts = {
        label: {
            "calls": len(v),
            "median_us": statistics.median(v) if v else 0.0,
            "ms_per_s": sum(v) / 1000.0 / wall_s,
        }
        for label, v in timings.items()
    }
    return {"seconds": wall_s, "process_ms_start_to_stop": process_ms, "parts": parts}


def _tracker(name: str, cpu_w: float, ram_w: float, ledger: str, tmp: str) -> Callable[..., Any]:
    """``f(iterations, body)`` that tracks the workload with the named tracker."""
    if name == "greenprint":
        return lambda it, body=None: run_greenprint(it, ledger, body)
    mode = name.split("-", 1)[1]
    return lambda it, body=None: run_codecarbon(it, cpu_w, ram_w, tmp, body, mode)


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model_name": model,
        "logical_cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="workload length")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the workload (>= 1)")
    parser.add_argument("--probes", type=int, default=5, help="idle probes per tracker (>= 1)")
    parser.add_argument("--idle", type=float, default=10.0, help="idle tracking length (s)")
    parser.add_argument("--churn", action="store_true", help="start a process every 0.25 s")
    parser.add_argument("--skip-workload", action="store_true", help="sampling cost only")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time greenprint's sampler part by part"
    )
    parser.add_argument("--probe", choices=TRACKERS + EXTRA_PROBES, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-w", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--ram-w", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    if args.probe in ("floor", "floor-reads"):
        cost = floor_cost(args.idle, reads=args.probe == "floor-reads")
        print(json.dumps([cost, 0.0, SOCKET_ATTEMPTS]))
        return
    if args.probe == "greenprint-breakdown":
        tmp = tempfile.mkdtemp(prefix="gp-bench-")
        print(json.dumps(sample_breakdown(args.idle, os.path.join(tmp, "probe.db"))))
        return
    if args.probe:
        tmp = tempfile.mkdtemp(prefix="gp-bench-")
        track = _tracker(args.probe, args.cpu_w, args.ram_w, os.path.join(tmp, "probe.db"), tmp)
        track(0, 0.5)  # warm: imports, ledger creation, tables
        sampling, start_stop = idle_cost(lambda body: track(0, body), args.idle)
        print(json.dumps([sampling, start_stop, SOCKET_ATTEMPTS]))
        return

    from greenprint.hardware import detect_hardware
    from greenprint.meters._discovery import cpu_estimate_for, ram_estimate_for

    load_before = os.getloadavg()
    hw = detect_hardware()
    tmp = tempfile.mkdtemp(prefix="gp-bench-")
    ledger = os.path.join(tmp, "bench.db")
    # greenprint's own assumptions, forced into codecarbon so that all model the same machine
    cpu_meter = cpu_estimate_for(hw)
    ram_meter = ram_estimate_for(hw)
    cpu_w = float(getattr(cpu_meter, "tdp_w", 0.0))
    ram_w = float(getattr(ram_meter, "power_w", 0.0))

    # sampling cost: each tracker alone in a fresh interpreter, alternating, --probes each
    floors = ("floor", "floor-reads") if sys.platform.startswith("linux") else ("floor",)
    probes: dict[str, list[tuple[float, float]]] = {n: [] for n in (*TRACKERS, *floors)}
    breakdowns: list[dict[str, Any]] = []
    churn = Churn() if args.churn else None
    if churn is not None:
        churn.__enter__()
    try:
        for _ in range(args.probes):
            for n in (*TRACKERS, *floors):
                probes[n].append(idle_probe(n, args.idle, cpu_w, ram_w))
        if args.breakdown:
            for _ in range(args.probes):
                breakdowns.append(breakdown_probe(args.idle))
    finally:
        if churn is not None:
            churn.__exit__()
    figures: dict[str, Any] = {
        **_machine(),
        "cpu_model": hw.cpu_model,
        "cpu_w": cpu_w,
        "cpu_w_source": cpu_meter.provenance,
        "ram_w": ram_w,
        "load_average_before": load_before,
        "churn_processes_started": churn.started if churn is not None else 0,
        "probes": args.probes,
        "idle_s": args.idle,
    }
    for n in TRACKERS:
        key = n.replace("-", "_")
        sampling = [p[0] for p in probes[n]]
        start_stop = [p[1] for p in probes[n]]
        figures[f"sampling_cpu_ms_per_s_{key}"] = statistics.median(sampling)
        figures[f"sampling_cpu_ms_per_s_{key}_range"] = [min(sampling), max(sampling)]
        figures[f"start_stop_cpu_ms_{key}"] = statistics.median(start_stop)
    for n, key in (("floor", "empty_1hz_thread"), ("floor-reads", "1hz_thread_with_the_reads")):
        if n in probes:
            floor = [p[0] for p in probes[n]]
            figures[f"floor_cpu_ms_per_s_{key}"] = statistics.median(floor)
            figures[f"floor_cpu_ms_per_s_{key}_range"] = [min(floor), max(floor)]
    if breakdowns:
        figures["breakdown_probes"] = len(breakdowns)
        for label in breakdowns[0]["parts"]:
            per_s = [b["parts"][label]["ms_per_s"] for b in breakdowns]
            per_call = [b["parts"][label]["median_us"] for b in breakdowns]
            calls = statistics.median(b["parts"][label]["calls"] for b in breakdowns)
            figures[f"breakdown: {label}"] = [
                statistics.median(per_s),
                statistics.median(per_call),
                calls,
            ]
    for mode in CODECARBON_MODES:
        ratios = [
            g[0] / c[0]
            for g, c in zip(probes["greenprint"], probes[f"codecarbon-{mode}"], strict=True)
        ]
        figures[f"sampling_ratio_greenprint_to_codecarbon_{mode}"] = statistics.median(ratios)
        figures[f"sampling_ratio_greenprint_to_codecarbon_{mode}_range"] = [
            min(ratios),
            max(ratios),
        ]

    if not args.skip_workload:
        figures.update(workload_figures(args, hw, cpu_w, ram_w, ledger, tmp))
    figures["start_stop_ms"] = 1000 * start_stop_latency(ledger)
    figures["import_greenprint_ms"] = import_time_ms()
    figures["greenprint_help_ms"] = wall_ms(
        [str(Path(sys.executable).parent / "greenprint"), "--help"]
    )
    figures["python_c_pass_ms"] = wall_ms([sys.executable, "-c", "pass"])
    figures["load_average_after"] = os.getloadavg()
    figures["socket_attempts_refused"] = sorted(REFUSED | set(SOCKET_ATTEMPTS))
    width = max(map(len, figures))
    for key, value in figures.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        if isinstance(value, (list, tuple)):
            shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
        print(f"{key:<{width}}  {shown}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))
    if any(a.startswith("greenprint") for a in REFUSED):
        raise SystemExit("greenprint attempted to open a socket")


def workload_figures(
    args: argparse.Namespace, hw: Any, cpu_w: float, ram_w: float, ledger: str, tmp: str
) -> dict[str, Any]:
    """The CPU-bound job bare and under each tracker, rotated rounds; overheads and energies."""
    iterations = calibrate(args.seconds)
    runners: dict[str, Callable[[], tuple[float, dict[str, float]]]] = {
        "bare": lambda: run_bare(iterations)
    }
    for n in TRACKERS:
        track = _tracker(n, cpu_w, ram_w, ledger, tmp)
        runners[n] = lambda track=track: track(iterations)
    for n in TRACKERS:
        runners[n]()  # warm: imports, ledger creation, codecarbon's tables
    names = list(runners)
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    energy: dict[str, list[dict[str, float]]] = {k: [] for k in TRACKERS}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
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

    out: dict[str, Any] = {
        "workload_s": statistics.median(times["bare"]),
        "rounds": args.rounds,
        "bare_wall_spread_pct": spread(times["bare"]),
        "bare_cpu_spread_pct": spread(cpu["bare"]),
    }
    for n in TRACKERS:
        key = n.replace("-", "_")
        out[f"{key}_cpu_overhead_pct"] = 100 * overhead(n, cpu)
        out[f"{key}_wall_overhead_pct"] = 100 * overhead(n, times)
        for part in ("total", "cpu", "ram"):
            out[f"{key}_{part}_kwh"] = kwh(n, part)
    out["greenprint_machine_kwh"] = kwh("greenprint", "machine")
    return out


if __name__ == "__main__":
    main()
