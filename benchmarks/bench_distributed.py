"""Beyond one machine: ledger ingest from many writers, ledger merge (and, later, Ray Tune).

* **ingest**: ``--runs`` runs (default 100,000) written by ``--writers`` processes (default 16)
  into one ledger, on SQLite (one WAL file) and on PostgreSQL (a local server started by
  pgserver, unix socket). Each run is what a tracked run sends: ``start_run``, one periodic
  flush (heartbeat, cost so far, a metric point, a power sample) and the final flush (status
  ``finished``). Reported: runs/s over the wall time from the common start to the last writer's
  end, and the p50/p99/max latency of a flush call (both flushes of every run).
* **merge**: ``--nodes`` per-node SQLite files (default 10) of ``--runs-per-node`` runs each
  (default 10,000; one metric point and one power sample per run) merged with
  ``Ledger.merge`` into a new SQLite file and into a new PostgreSQL database; then the same merge
  again (idempotent: every run already there, nothing written).
* **Ray Tune overhead**: see the section marked ``RAY TUNE`` below (added with the Ray
  integration).

``--scale 0.02`` divides every count by 50 for a quick check. Nothing here opens a network
socket: PostgreSQL listens on a unix socket only.

Usage: ``.venv/bin/python benchmarks/bench_distributed.py [--scale 1] [--writers 16]
[--skip-postgres] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import greenprint as gp
from greenprint import MetricPoint, PowerSample, RunRecord
from greenprint.ledger import Ledger

HARDWARE = {"cpu_model": "AMD EPYC 7763", "cores": 64, "gpus": [{"name": "A100-SXM4-80GB"}]}


def _record(run_id: str, host: str, t: float) -> RunRecord:
    return RunRecord(
        id=run_id,
        name=f"trial-{run_id[-6:]}",
        study="bench-distributed",
        status="running",
        started_at=t,
        heartbeat_at=t,
        flush_interval_s=10.0,
        host=host,
        command="python train.py --lr 0.1",
        python_version="3.11.7",
        greenprint_version=gp.__version__,
        hardware=HARDWARE,
        env={"SLURM_JOB_ID": "4242"},
        params={"lr": 0.1, "batch_size": 64},
        scope="process",
        energy_kwh=0.0,
        pue=1.2,
        intensity_g_per_kwh=380.0,
        intensity_source="table:DE:2023",
        emissions_kg=0.0,
        provenance={"cpu": "rapl", "intensity": "table:DE:2023"},
    )


# ---------------------------------------------------------------------------------- ingest


def _writer(url: str, index: int, count: int, barrier: Any, results: Any) -> None:
    """One writer process: its runs, each started, flushed once and finished."""
    led = Ledger(url)  # imports and connection done before the common start
    latencies: list[float] = []
    barrier.wait()
    t_begin = time.time()
    for i in range(count):
        run_id = f"{index:04x}{i:028x}"
        t = time.time()
        led.start_run(_record(run_id, f"node-{index:02d}", t))
        s = time.perf_counter()
        led.flush(
            run_id,
            fields={"heartbeat_at": t + 10, "energy_kwh": 0.01, "emissions_kg": 0.0046},
            metrics=[MetricPoint("loss", 0.5, 0, t + 5)],
            samples=[PowerSample(t, t + 10, 85.0, 250.0, 4.0, 380.0)],
        )
        latencies.append(time.perf_counter() - s)
        s = time.perf_counter()
        led.flush(
            run_id,
            fields={"status": "finished", "ended_at": t + 20, "heartbeat_at": t + 20},
            metrics=[MetricPoint("accuracy", 0.9, 1, t + 20)],
        )
        latencies.append(time.perf_counter() - s)
    t_end = time.time()
    led.close()
    results.put((latencies, t_begin, t_end))


def bench_ingest(url: str, runs: int, writers: int) -> dict[str, Any]:
    Ledger(url).close()  # create the schema before the clock starts
    per = [runs // writers + (1 if w < runs % writers else 0) for w in range(writers)]
    ctx = mp.get_context("spawn")  # fresh interpreters, as separate jobs would be
    barrier = ctx.Barrier(writers)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, w, n, barrier, queue)) for w, n in enumerate(per)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a writer failed (exit status {p.exitcode})")
    latencies = sorted(x for lat, _, _ in results for x in lat)
    wall_s = max(end for _, _, end in results) - min(begin for _, begin, _ in results)
    with Ledger(url, create=False) as led:
        stored = len(led.runs())
    if stored != runs:
        raise SystemExit(f"ingest lost runs: {stored} stored of {runs}")
    return {
        "runs": runs,
        "writers": writers,
        "wall_s": wall_s,
        "runs_per_s": runs / wall_s,
        "flush_p50_ms": 1e3 * latencies[len(latencies) // 2],
        "flush_p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "flush_max_ms": 1e3 * latencies[-1],
    }


# ---------------------------------------------------------------------------------- merge


def _node_file(path: Path, node: int, count: int) -> None:
    """A node's SQLite ledger of ``count`` finished runs, written in one transaction."""
    from greenprint.ledger._fields import FIELD_KINDS
    from greenprint.ledger._merge import _insert, _Run
    from greenprint.ledger._sql import SQLStore

    with Ledger(path) as led:
        base = time.time() - 86_400
        runs = []
        for i in range(count):
            t = base + i
            record = _record(f"{node:04x}{i:028x}", f"node-{node:02d}", t)
            row = {name: getattr(record, name) for name in FIELD_KINDS}
            row.update(status="finished", ended_at=t + 20, heartbeat_at=t + 20, energy_kwh=0.01)
            runs.append(
                _Run(
                    row,
                    [("loss", 0.5, 0, t + 5)],
                    [(t, t + 10, 85.0, 250.0, 4.0, 380.0)],
                    str(path),
                )
            )
        store = SQLStore(led._target, create=False)
        try:
            store.transaction(lambda conn: _insert(conn, runs), write=True)
        finally:
            store.close()


def bench_merge(files: list[Path], target_url: str) -> dict[str, Any]:
    with Ledger(target_url) as out:
        t = time.perf_counter()
        first = out.merge(*files)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        again = out.merge(*files)
        again_s = time.perf_counter() - t
    if again.unchanged != first.added or again.added or again.updated:
        raise SystemExit(f"merge is not idempotent: {again}")
    return {
        "files": len(files),
        "runs": first.added,
        "merge_s": first_s,
        "runs_per_s": first.added / first_s,
        "again_s": again_s,
    }


# ---------------------------------------------------------------------------------- RAY TUNE
# The Ray Tune integration's overhead (wrapper per trial, callback per experiment) goes here:
# a bench_ray(...) returning a dict, called from main() under its own flag, its figures added
# to the printed table and to BENCHMARKS.md's "Distributed" section.


# ---------------------------------------------------------------------------------- main


def _postgres() -> tuple[Any, Path] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        print("pgserver is not installed: PostgreSQL skipped (pip install -e '.[dev]')")
        return None
    parent = "/tmp" if os.geteuid() == 0 else None
    pgdata = Path(tempfile.mkdtemp(prefix="gp-bench-pg-", dir=parent))
    return pgserver.get_server(pgdata, cleanup_mode="delete"), pgdata


def _pg_url(server: Any, database: str) -> str:
    server.psql(f"CREATE DATABASE {database};")
    uri = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)
    return str(uri.replace("/postgres?", f"/{database}?", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs-per-node", type=int, default=10_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true", help="the merge section only")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    runs = max(args.writers, int(args.runs * args.scale))
    per_node = max(1, int(args.runs_per_node * args.scale))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}",
        "python": sys.version.split()[0],
        "greenprint": gp.__version__,
    }
    tmp = Path(tempfile.mkdtemp(prefix="gp-bench-dist-"))
    pg = None if args.skip_postgres else _postgres()
    try:
        if not args.skip_ingest:
            print(f"ingest: {runs:,} runs from {args.writers} writers")
            results["ingest_sqlite"] = bench_ingest(str(tmp / "ingest.db"), runs, args.writers)
            print("  sqlite    ", results["ingest_sqlite"])
        if pg is not None and not args.skip_ingest:
            url = _pg_url(pg[0], "ingest")
            results["ingest_postgres"] = bench_ingest(url, runs, args.writers)
            print("  postgresql", results["ingest_postgres"])
        print(f"merge: {args.nodes} node files of {per_node:,} runs")
        files = []
        for node in range(args.nodes):
            path = tmp / f"node-{node:02d}.db"
            _node_file(path, node, per_node)
            files.append(path)
        results["merge_sqlite"] = bench_merge(files, str(tmp / "merged.db"))
        print("  into sqlite    ", results["merge_sqlite"])
        if pg is not None:
            results["merge_postgres"] = bench_merge(files, _pg_url(pg[0], "merged"))
            print("  into postgresql", results["merge_postgres"])
    finally:
        if pg is not None:
            pg[0].cleanup()
            shutil.rmtree(pg[1], ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
