"""What a read of the ledger pays for telling a killed run ``lost`` at once.

    .venv/bin/python benchmarks/bench_liveness.py [--runs 1000] [--repeat 7]

A ``running`` run whose writer process is known to be gone (same host, boot and pid namespace,
pid gone or reused: :mod:`greenprint._liveness`) reads ``lost`` at once; before, only a stale
heartbeat made it ``lost``. Three ledgers of ``--runs`` ``running`` runs with fresh heartbeats
are read with ``Ledger.runs``, with the check (the code as it is) and with the heartbeat rule
alone (the code before it), and the statuses read are shown:

* every run written by another dead process (a batch of killed workers: one ``/proc`` lookup
  per pid);
* every run written by this process (alive: one lookup in all);
* no writer recorded (runs written before the check existed: no lookup).

A read of runs none of which is ``running`` takes the same path as before (the derivation is
skipped when no stored status is ``running``), so it is not measured here; ``bench_report.py``
reads 100,012 finished runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import greenprint as gp
from greenprint import _liveness
from greenprint._jobs import node_host
from greenprint.ledger import _store
from greenprint.ledger._base import is_stale

_CHECKED = _store.derive_statuses


def heartbeat_only(records: Sequence[gp.RunRecord], *, now: float) -> list[gp.RunRecord]:
    """The derivation before the check: a stale heartbeat alone makes a run ``lost``."""
    return [
        dataclasses.replace(r, status="lost") if r.status == "running" and is_stale(r, now=now)
        else r
        for r in records
    ]  # fmt: skip


def dead_pids(n: int) -> list[int]:
    """``n`` pids that name no process now."""
    found, pid = [], 300_000
    while len(found) < n:
        if not os.path.exists(f"/proc/{pid}"):
            found.append(pid)
        pid += 1
    return found


def running_ledger(path: Path, writers: Sequence[str | None]) -> None:
    """A ledger of one ``running`` run per writer, each with a fresh heartbeat."""
    now, host = time.time(), node_host()
    with gp.Ledger(path) as led:
        for k, writer in enumerate(writers):
            provenance = {"cpu": "estimate:tdp"}
            if writer is not None:
                provenance["writer"] = writer
            led.start_run(
                gp.RunRecord(
                    id=f"{k:032x}",
                    name=f"t{k}",
                    study="s",
                    status="running",
                    started_at=now - 60 + k * 1e-3,
                    heartbeat_at=now,
                    flush_interval_s=600.0,
                    host=host,
                    provenance=provenance,
                )  # fmt: skip
            )


def timed(path: Path, derive: Callable[..., list[gp.RunRecord]], repeat: int) -> tuple[float, dict]:
    """Median wall ms of ``Ledger.runs`` with ``derive``, and the statuses it read."""
    _store.derive_statuses = derive
    try:
        with gp.Ledger(path, create=False) as led:
            led.runs()  # warm
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                runs = led.runs()
                times.append(time.perf_counter() - start)
    finally:
        _store.derive_statuses = _CHECKED
    statuses = {s: sum(r.status == s for r in runs) for s in ("running", "lost")}
    return statistics.median(times) * 1e3, statuses


def _read(statuses: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {s}" for s, n in statuses.items() if n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    own = _liveness.writer_identity()
    if own is None:
        raise SystemExit("this machine records no writer identity (no /proc): nothing to measure")
    rest = own.split()[2:]  # tick, uid, boot and pid namespace: this machine's
    work = Path(tempfile.mkdtemp(prefix="gp-bench-liveness-"))
    ledgers = {
        "writers dead (one pid each)": [
            " ".join(["pid", str(p), *rest]) for p in dead_pids(args.runs)
        ],
        "writer alive (this process)": [own] * args.runs,
        "no writer recorded (old runs)": [None] * args.runs,
    }
    print(f"# {args.runs:,} running runs a ledger, Ledger.runs, median of {args.repeat} (wall ms)")
    print(f"# load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| ledger | heartbeat rule alone | read | with the process check | read |")
    print("| --- | ---: | --- | ---: | --- |")
    for k, (name, writers) in enumerate(ledgers.items()):
        path = work / f"l{k}.db"
        running_ledger(path, writers)
        before, old = timed(path, heartbeat_only, args.repeat)
        after, new = timed(path, _CHECKED, args.repeat)
        print(f"| {name} | {before:.1f} | {_read(old)} | {after:.1f} | {_read(new)} |")


if __name__ == "__main__":
    main()
