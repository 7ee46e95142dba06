"""One rank of a test job: a run with constant-power meters, FPO and a metric; optional gloo.

Run as a script by tests/test_jobs.py (directly, through torchrun, or under ``greenprint run``). The
test passes its settings through the environment:

* ``GP_TEST_LEDGER``: the ledger path;
* ``GP_TEST_SECONDS``: how long the rank works (default 0.4 s);
* ``GP_TEST_GLOO=1``: join a gloo process group (torchrun's variables) and all_reduce a few
  times inside the run;
* ``GP_TEST_REAL_METERS=1``: detect the meters instead of the constant ones;
* ``GP_TEST_HANG=1``: never end (the test kills the process: a lost node).

The constant meters are given to ``gp.track(meters=...)`` here, in the test's own script: the
library has no test hook.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tracking"))

from _meters import ConstantPowerMeters

import greenprint as gp

#: Machine power of the constant meters: cpu + ram, in W; a process sees a quarter of it.
MACHINE_W = 110.0
PROCESS_SHARE = 0.25
FPO_PER_STEP = 1_000


def main() -> None:
    """Run one rank."""
    meters = None
    if os.environ.get("GP_TEST_REAL_METERS") != "1":
        meters = ConstantPowerMeters(cpu_w=100.0, ram_w=10.0, process_share=PROCESS_SHARE)
    seconds = float(os.environ.get("GP_TEST_SECONDS", "0.4"))
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    with gp.track(
        f"rank{rank}",
        study="jobs",
        ledger=os.environ["GP_TEST_LEDGER"],
        meters=meters,
        sample_interval_s=0.05,
        flush_interval_s=0.1,
    ) as run:
        steps = 3
        if os.environ.get("GP_TEST_GLOO") == "1":
            import torch
            import torch.distributed as dist

            dist.init_process_group("gloo")
            value = torch.ones(4) * (rank + 1)
            for _ in range(steps):
                dist.all_reduce(value)
            total = float(value[0])
            run.log(allreduced=total)
            dist.barrier()
            dist.destroy_process_group()
        for step in range(steps):
            run.add_fpo(FPO_PER_STEP * (rank + 1))
            run.log(loss=1.0 / (step + 1), step=step)
        time.sleep(seconds)
        if os.environ.get("GP_TEST_HANG") == "1":
            print("ready", flush=True)
            time.sleep(600)
        print(run.id, flush=True)


if __name__ == "__main__":
    main()
