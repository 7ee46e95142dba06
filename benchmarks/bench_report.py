"""Benchmark ``greenprint report`` on a synthetic ledger of 10,000 trials, beside its peers.

    .venv/bin/python benchmarks/bench_report.py [--trials 10000] [--repeat 3]
    .venv/bin/python benchmarks/bench_report.py --scale 10000,100000 [--repeat 3] [--postgres]

Targets from issue 6: JSON report < 2 s, HTML report < 5 s, each timed end to end from the
ledger file on disk (open read-only, read every run, analyse, render, write the file).

``--scale``: issue 12's targets at 100,000 runs (JSON report < 5 s and < 500 MB peak RSS, HTML
< 10 s, reading the ledger a small part of it). Each measurement runs in a fresh interpreter
(as ``greenprint report`` does: imports included), reports wall and CPU seconds and the
process's peak RSS, and the median of ``--repeat`` runs is shown. The largest size is then
measured again with each run logging a loss and a learning rate at each of 20 steps (43 points
a run, as a training logged step by step), and 1,000 runs logging them at each of 2,000 steps (a
long training: 4 million points); the SQLite driver's own fetch of every run and point is shown
as the floor of any Python reader of them all (a report reads fewer: of each metric of a run,
the six points its ``metric_marks`` row locates since schema 6; five before).

Peers (there is no tool that writes a study's price-tag report; these are the floors a report
is compared with): a raw JSON dump of the same runs (``Ledger.runs`` + ``json.dumps``, what
``greenprint ledger export`` does), and pandas ``DataFrame.to_json`` / ``to_html`` of a table of
the runs (a table only: no analysis, no plots). The breakdown shows where the time goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenprint as gp
from greenprint.report import build_report, render, write_report
from greenprint.report._plots import FigureRenderer

T0 = 1_700_000_000.0


def make_ledger(path: Path, trials: int, *, seed: int = 0, series: int = 0) -> None:
    """A sweep of ``trials`` runs: 70% finished, 20% pruned, 8% failed, 2% interrupted; three
    logged points each, FPO, dataset size, hyper-parameters, 5 power samples; plus a learning
    curve of 12 runs over 4 fractions.

    ``series``: each run that did not fail also logs ``loss`` and ``lr`` at each of this many
    steps (a training logged step by step: 2 x ``series`` more points a run).
    """
    rng = random.Random(seed)
    led = gp.Ledger(path)
    t = T0
    for k in range(trials + 12):
        curve = k >= trials
        status = (
            "finished"
            if curve
            else rng.choices(["finished", "pruned", "failed", "interrupted"], [70, 20, 8, 2])[0]
        )
        duration = rng.uniform(20, 600)
        watts = rng.uniform(80, 350)
        energy = watts * duration / 3.6e6
        fraction = (0.125, 0.25, 0.5, 1.0)[(k - trials) % 4] if curve else 1.0
        score = 0.6 + 0.35 * rng.random() ** 0.3 * (fraction**0.1)
        steps = 1 if status == "failed" else 3
        metrics = tuple(
            gp.MetricPoint("accuracy", score * (0.7 + 0.1 * s), s, t + duration * s / 3)
            for s in range(1, steps + 1)
            if status != "failed"
        )
        if series and status != "failed":
            metrics += tuple(
                gp.MetricPoint(name, value, s, t + duration * s / series)
                for s in range(1, series + 1)
                for name, value in (("loss", 2.0 / (s + 1) + 0.01 * rng.random()), ("lr", 1e-3))
            )
        params: dict[str, Any] = {
            "model": rng.choice(["mlp", "cnn", "vit"]),
            "lr": 10 ** rng.uniform(-5, -1),
            "batch": rng.choice([32, 64, 128]),
            "layers": rng.randint(1, 8),
        }
        if curve:
            params = {"fraction": fraction}
        run_id = f"{k:08x}{rng.getrandbits(32):08x}"
        led.start_run(
            gp.RunRecord(
                id=run_id,
                name=f"learning-curve-{fraction:g}" if curve else f"trial-{k:05d}",
                study="big-sweep",
                status=status,
                started_at=t,
                ended_at=t + duration,
                duration_s=duration,
                energy_cpu_kwh=energy * 0.3,
                energy_gpu_kwh=energy * 0.6,
                energy_ram_kwh=energy * 0.1,
                energy_kwh=energy,
                emissions_kg=energy * 0.38,
                pue=1.1,
                intensity_g_per_kwh=345.0,
                intensity_source="table:DE:2023 (Our World in Data / Ember)",
                provenance={
                    "cpu": "rapl",
                    "gpu": "nvml:energy",
                    "ram": "rapl:dram",
                    "intensity": "table:DE:2023 (Our World in Data / Ember)",
                    "pue": "argument",
                },
                hardware={
                    "cpu_model": "Synthetic CPU",
                    "logical_cores": 64,
                    "ram_gb": 512.0,
                    "gpus": [{"name": "Synthetic GPU"}],
                },
                params=params,
                dataset_size=int(50_000 * fraction),
                fpo=int(rng.uniform(1e14, 1e16) * fraction),
                metrics=metrics,
                error="CUDA out of memory" if status == "failed" else None,
                role="learning-curve" if curve else "trial",
            )
        )
        step = duration / 5
        led.flush(
            run_id,
            samples=[
                gp.PowerSample(
                    t0=t + j * step,
                    t1=t + (j + 1) * step,
                    cpu_w=watts * 0.3,
                    gpu_w=watts * 0.6,
                    ram_w=watts * 0.1,
                    intensity_g_per_kwh=345.0,
                )
                for j in range(5)
            ],
        )
        t += duration + rng.uniform(0, 5)
    led.close()


def timeit(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time in seconds over ``repeat`` calls (after one warm-up), and the result."""
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


_PROBE = """
import resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
what, ledger, out = sys.argv[1:4]
if what == "floor" and "://" in ledger:
    # the PostgreSQL driver alone (psycopg, binary): the same rows fetched, nothing decoded
    import psycopg
    with psycopg.connect(ledger.replace("+psycopg", "", 1)) as con:
        cur = con.cursor(binary=True)
        runs = cur.execute("SELECT * FROM runs WHERE study = 'big-sweep'").fetchall()
        points = cur.execute(
            "SELECT run_id, name, value, step, time FROM metrics ORDER BY seq"
        ).fetchall()
    n = len(runs) + len(points)
elif what == "floor":
    # the SQLite driver alone: the same rows fetched, nothing decoded, no objects built
    import sqlite3
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    runs = con.execute("SELECT * FROM runs WHERE study = 'big-sweep'").fetchall()
    points = con.execute(
        "SELECT run_id, name, value, step, time FROM metrics ORDER BY seq"
    ).fetchall()
    n = len(runs) + len(points)
elif what == "read":
    from greenprint.ledger import Ledger
    with Ledger(ledger, create=False) as led:
        n = len(led.runs(study="big-sweep"))
else:
    from greenprint.ledger import Ledger
    from greenprint.report import build_report, write_report
    # the report's own read of the ledger (its part of the wall time), timed where it happens
    read = Ledger._read
    def timed_read(self, **kwargs):
        start = time.perf_counter()
        try:
            return read(self, **kwargs)
        finally:
            n.append(time.perf_counter() - start)
    n = []
    Ledger._read = timed_read
    # "json-chosen": the metric not given, so the report chooses it (and reads every metric)
    metric = None if what == "json-chosen" else "accuracy"
    fmt = "json" if what == "json-chosen" else what
    write_report(build_report(ledger, "big-sweep", metric=metric), out, fmt)
    n = sum(n)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(time.perf_counter() - t0, time.process_time() - c0, rss, n if what != "read" else 0)
"""


def probe(
    what: str, ledger: Path | str, out: Path, repeat: int
) -> tuple[float, float, float, float]:
    """Median (wall s, CPU s, peak RSS MB, the report's own read s) of ``what`` in fresh
    interpreters (the read: the wall time inside ``Ledger._read`` of a JSON or HTML report).
    ``ledger``: a SQLite file or a PostgreSQL URL."""
    import subprocess

    results = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, what, str(ledger), str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall, cpu, rss, read = (float(v) for v in done.stdout.split())
        results.append((wall, cpu, rss, read))
    return tuple(statistics.median(r[k] for r in results) for k in range(4))  # type: ignore[return-value]


def scale(sizes: list[int], repeat: int, *, postgres: bool = False) -> None:
    """Issue 12's scale targets, each size in fresh interpreters.

    The ledger-read share is the wall time the JSON report spends in its own read of the
    ledger (``Ledger._read``, timed inside the report) over the report's whole wall time.
    ``Ledger.runs`` (the public read: every point of every run, imports and opening included)
    is shown beside it. The floor is the standard library's SQLite driver fetching the same
    rows and doing nothing with them: no Python reader of the ledger can take less.
    """
    print(f"# load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    works: list[Path] = []  # each ledger is 150 MB at 100,000 runs: removed at the end
    try:
        print("| runs | step | wall (s) | CPU (s) | peak RSS (MB) | share of JSON | target |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
        steps = {
            "floor": "sqlite3 alone: fetch the same rows (no decoding, no objects)",
            "read": "read the ledger (Ledger.runs, every point)",
            "json": "JSON report, end to end",
            "json-read": "of which the report's own read of the ledger",
            "html": "HTML report, end to end",
            "json-chosen": "JSON report, the metric not given (chosen by the report)",
        }
        for size in sizes:
            work = _work(works, "scale")
            ledger = work / "ledger.db"
            make_ledger(ledger, size)
            targets = {"json": "< 5 s, < 500 MB", "html": "< 10 s", "json-read": "a small part"}
            measured = {
                what: probe(what, ledger, work / "out", repeat)
                for what in ("floor", "read", "json", "html")
            }
            _print_rows(f"{size + 12:,}", measured, steps, targets if size >= 100_000 else {})
        size = max(sizes)
        if postgres:
            postgres_scale(ledger, size, repeat, steps)
        work = _work(works, "series")
        ledger = work / "ledger.db"
        make_ledger(ledger, size, series=SERIES)
        measured = {what: probe(what, ledger, work / "out", repeat) for what in PER_STUDY}
        _print_rows(f"{size + 12:,}, {2 * SERIES + 3} points a run", measured, steps, {})
        # a long training: few runs, thousands of steps each (the report reads the marks)
        work = _work(works, "long")
        ledger = work / "ledger.db"
        make_ledger(ledger, LONG_TRIALS, series=LONG_STEPS)
        measured = {what: probe(what, ledger, work / "out", repeat) for what in PER_STUDY}
        _print_rows(f"{LONG_TRIALS + 12:,}, {2 * LONG_STEPS + 3} points a run", measured, steps, {})
        print(f"# load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)


def _work(works: list[Path], what: str) -> Path:
    """A new temporary folder for one of :func:`scale`'s ledgers, kept in ``works``."""
    works.append(Path(tempfile.mkdtemp(prefix=f"gp-bench-{what}-")))
    return works[-1]


def postgres_scale(ledger: Path, size: int, repeat: int, steps: dict[str, str]) -> None:
    """The largest study of ``--scale`` read from PostgreSQL: a team's ledger.

    A local server started by ``pgserver`` (unix socket, on this machine: its CPU time is not
    in the CPU column, which is the reading process's), the SQLite ledger merged into it
    (``Ledger.merge``), then the same steps as SQLite's; the floor is psycopg's own fetch of
    the same rows in binary format.
    """
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        print("# pgserver is not installed: PostgreSQL skipped (pip install -e '.[dev]')")
        return
    parent = "/tmp" if os.geteuid() == 0 else None  # a short unix socket path
    pgdata = Path(tempfile.mkdtemp(prefix="gp-bench-pg-", dir=parent))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
        start = time.perf_counter()
        with gp.Ledger(url) as led:
            led.merge(ledger)
        print(f"# PostgreSQL: {size + 12:,} runs merged in {time.perf_counter() - start:.0f} s")
        out = Path(tempfile.mkdtemp(prefix="gp-bench-pg-out-"))
        measured = {
            what: probe(what, url, out, repeat) for what in ("floor", "read", "json", "html")
        }
        targets = {"json": "< 5 s, < 500 MB", "html": "< 10 s", "json-read": "a small part"}
        _print_rows(f"{size + 12:,}, PostgreSQL", measured, steps, targets)
    finally:
        server.cleanup()


def _print_rows(
    runs: str,
    measured: dict[str, tuple[float, float, float, float]],
    steps: dict[str, str],
    targets: dict[str, str],
) -> None:
    """Rows of the ``--scale`` table: each step, and the JSON report's own read after it."""
    json_wall = measured["json"][0]
    for what, (wall, cpu, rss, read) in measured.items():
        share = f"{wall / json_wall:.0%}" if what in ("read", "floor") else ""
        if what == "json-chosen":
            share = f"{read / wall:.0%} read"
        print(f"| {runs} | {steps[what]} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {share} "
              f"| {targets.get(what, '')} |")  # fmt: skip
        if what == "json":
            print(f"| {runs} | {steps['json-read']} | {read:.2f} | | | {read / wall:.0%} "
                  f"| {targets.get('json-read', '')} |")  # fmt: skip


#: Steps of ``loss`` and ``lr`` logged by each run of the long-series ledger (``--scale``).
SERIES = 20
#: The long training of ``--scale``: this many runs, each logging ``loss`` and ``lr`` at each
#: of this many steps (4 million points).
LONG_TRIALS, LONG_STEPS = 1_000, 2_000
#: What ``--scale`` measures on the long-series ledgers.
PER_STUDY = ("floor", "read", "json", "json-chosen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--scale", default=None, help="comma-separated trial counts: issue 12's scale table"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="--scale: the largest study from PostgreSQL too"
    )
    args = parser.parse_args()
    if args.scale:
        print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
        scale([int(v) for v in args.scale.split(",")], args.repeat, postgres=args.postgres)
        return

    work = Path(tempfile.mkdtemp(prefix="gp-bench-report-"))
    ledger = work / "ledger.db"
    start = time.perf_counter()
    make_ledger(ledger, args.trials)
    setup_s = time.perf_counter() - start
    out = work / "out"

    def json_report() -> Any:
        return write_report(build_report(ledger, "big-sweep", metric="accuracy"), out, "json")

    def html_report() -> Any:
        return write_report(build_report(ledger, "big-sweep", metric="accuracy"), out, "html")

    def all_formats() -> Any:
        return write_report(build_report(ledger, "big-sweep", metric="accuracy"), out, "all")

    def raw_dump() -> int:
        with gp.Ledger(ledger, create=False) as led:
            text = json.dumps([dataclasses.asdict(r) for r in led.runs(study="big-sweep")])
        (work / "raw.json").write_text(text)
        return len(text)

    def read_only() -> int:
        with gp.Ledger(ledger, create=False) as led:
            return len(led.runs(study="big-sweep"))

    json_s, _ = timeit(json_report, args.repeat)
    html_s, _ = timeit(html_report, args.repeat)
    all_s, files = timeit(all_formats, max(1, args.repeat - 2))
    raw_s, _ = timeit(raw_dump, args.repeat)
    read_s, runs = timeit(read_only, args.repeat)
    report = build_report(ledger, "big-sweep", metric="accuracy")
    build_s, _ = timeit(lambda: build_report(ledger, "big-sweep", metric="accuracy"), args.repeat)
    render_json_s, _ = timeit(lambda: render(report, "json"), args.repeat)
    plots_s, _ = timeit(lambda: [FigureRenderer().svg(f) for f in report.figures], args.repeat)
    render_html_s, _ = timeit(lambda: render(report, "html"), args.repeat)

    rows = [
        ("JSON report, end to end (target < 2 s)", json_s, raw_s, "raw JSON dump of the runs"),
        ("HTML report, end to end (target < 5 s)", html_s, None, ""),
        ("all four formats + PNG/PDF figures", all_s, None, ""),
    ]
    try:
        import pandas as pd

        def frame() -> Any:
            with gp.Ledger(ledger, create=False) as led:
                return pd.DataFrame(
                    [
                        {
                            "id": r.id,
                            "name": r.name,
                            "status": r.status,
                            "accuracy": r.metric("accuracy"),
                            "energy_kwh": r.energy_kwh,
                            "emissions_kg": r.emissions_kg,
                            "fpo": r.fpo,
                            "duration_s": r.duration_s,
                            "params": json.dumps(r.params),
                        }
                        for r in led.runs(study="big-sweep")
                    ]
                )

        pd_json_s, _ = timeit(
            lambda: frame().to_json(work / "pd.json", orient="records"), args.repeat
        )
        pd_html_s, _ = timeit(lambda: frame().to_html(work / "pd.html"), args.repeat)
        rows[0:2] = [
            rows[0],
            (
                "JSON report, end to end (target < 2 s)",
                json_s,
                pd_json_s,
                f"pandas {pd.__version__} DataFrame.to_json (table only)",
            ),
            (
                "HTML report, end to end (target < 5 s)",
                html_s,
                pd_html_s,
                f"pandas {pd.__version__} DataFrame.to_html (table only, no plots)",
            ),
        ]
    except ImportError:
        print("pandas not installed: no pandas peer")

    sizes = {name: path.stat().st_size for name, path in files.items()}
    print(f"# {args.trials:,} trials + 12 learning-curve runs; ledger built in {setup_s:.1f} s")
    print(f"# {platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    print()
    print("| case | greenprint (s) | peer (s) | greenprint / peer | peer |")
    print("| --- | ---: | ---: | ---: | --- |")
    for case, ours, peer, what in rows:
        if peer is None:
            print(f"| {case} | {ours:.2f} | n/a | n/a | no peer writes this report |")
        else:
            print(f"| {case} | {ours:.2f} | {peer:.2f} | {ours / peer:.1f}x | {what} |")
    print()
    print("Breakdown (median seconds):")
    print(f"- read {runs:,} runs from the ledger (Ledger.runs): {read_s:.2f}")
    print(
        f"- build_report (read + price tag, EVP, Pareto, learning curve, timeline): {build_s:.2f}"
    )
    print(
        f"- render JSON: {render_json_s:.2f}; draw the {len(report.figures)} SVG figures: "
        f"{plots_s:.2f}; render HTML (with figures): {render_html_s:.2f}"
    )
    print("- file sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    print(
        f"- targets: JSON {'met' if json_s < 2 else 'MISSED'}, "
        f"HTML {'met' if html_s < 5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
