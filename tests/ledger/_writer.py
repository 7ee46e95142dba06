"""A writer process for the concurrency tests: opens one ledger and records runs into it.

Usage: python _writer.py LEDGER WORKER RUNS BARRIER_DIR

Waits at a file barrier (writes BARRIER_DIR/ready-WORKER, waits for BARRIER_DIR/go) so that every
process opens the ledger and writes at the same time, then for each run: start_run, then one
flush with a metric, a power sample and the final fields (as the tracker does).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from greenprint import MetricPoint, PowerSample, RunRecord
from greenprint.ledger import Ledger


def main() -> None:
    url, worker, runs, barrier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    (barrier / f"ready-{worker}").touch()
    deadline = time.monotonic() + 120
    while not (barrier / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier timeout")
        time.sleep(0.01)
    with Ledger(url) as led:
        for j in range(runs):
            run_id = f"w{worker:02d}r{j:03d}"
            now = time.time()
            led.start_run(
                RunRecord(id=run_id, name=run_id, study=f"study{worker % 3}", started_at=now)
            )
            led.flush(
                run_id,
                fields={
                    "status": "finished",
                    "ended_at": now,
                    "heartbeat_at": now,
                    "energy_kwh": worker + j / 1000,
                },
                metrics=[MetricPoint("acc", worker * 1000 + j, j, now)],
                samples=[PowerSample(now - 1.0, now, cpu_w=float(j))],
            )


if __name__ == "__main__":
    main()
