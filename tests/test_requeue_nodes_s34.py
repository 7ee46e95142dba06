"""A SLURM job requeued onto another node, each node writing a ledger of its own (s34).

``docs/distributed.md`` has each node write its own SQLite file (``--ledger
"/local/scratch/gp-$SLURMD_NODENAME.db"``), merged afterwards. A requeued job seldom runs on the
node it ran on: its restart finds no earlier attempt in its own node's ledger, so nothing links
the two, and the merged study read the one training as two trials, the attempt cut short one of
them. Before, the restart said nothing (a debug log); it now says so on stderr, with the command
that makes the earlier attempt its part once the ledgers are merged, and that command makes the
merged study one trial with both attempts' cost. Both attempts are ``greenprint run`` as SLURM
starts them (its variables set), the first stopped with SIGTERM as ``scontrol requeue`` does.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from _clean_env import clean_env
from _wait import wait_until
from greenprint import LedgerError
from greenprint.cli import main
from greenprint.ledger import Ledger

TRAIN = """
import time
import greenprint as gp
with gp.track("fit") as run:
    for step in range(20):
        time.sleep(0.1)
        run.log(loss=1 / (step + 1), step=step)
"""


def _attempt(home: Path, node: str, restarts: int) -> subprocess.Popen[str]:
    env = clean_env()
    env.update(SLURM_JOB_ID="4242", SLURM_NODEID="0", SLURM_LOCALID="0", SLURM_PROCID="0",
               SLURM_NTASKS="1", SLURMD_NODENAME=node, GREENPRINT_HOST=node)  # fmt: skip
    if restarts:
        env["SLURM_RESTART_COUNT"] = str(restarts)
    # as docs/distributed.md's requeue example: sbatch --requeue --wrap 'greenprint run --study
    # req --param lr=0.1 -- python train.py', each node's ledger named as its SLURM example does
    command = (
        'exec greenprint run --ledger "gp-$SLURMD_NODENAME.db" --study req --param lr=0.1 '
        "-- python train.py"
    )
    return subprocess.Popen(
        ["sh", "-c", command], cwd=home, env=env, stderr=subprocess.PIPE, text=True
    )


def test_a_job_requeued_on_another_node_is_one_training_after_the_command_given(
    tmp_path: Path, capsys
) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    first = _attempt(tmp_path, "node0", 0)

    def training() -> bool:
        try:
            with Ledger(tmp_path / "gp-node0.db", create=False) as led:
                return any(r.name == "fit" and r.metrics for r in led.runs())
        except LedgerError:
            return False

    assert wait_until(training, 60), "the first attempt never started training"
    first.send_signal(signal.SIGTERM)  # scontrol requeue
    _, err = first.communicate(timeout=60)
    assert first.returncode != 0 and "SLURM requeue" not in err
    second = _attempt(tmp_path, "node1", 1)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    said = [line for line in err.splitlines() if "SLURM requeue" in line]
    assert len(said) == 1 and "no earlier attempt" in said[0], err
    command = re.search(r"greenprint ledger set-role part EARLIER_ID .*?--ledger MERGED", said[0])
    assert command, said[0]

    merged = str(tmp_path / "merged.db")
    nodes = [str(tmp_path / f"gp-node{n}.db") for n in (0, 1)]
    assert main(["ledger", "merge", merged, *nodes]) == 0
    with Ledger(merged, create=False) as led:
        earlier = [r for r in led.runs(parent_id=None) if r.status == "interrupted"]
    assert len(earlier) == 1
    argv = command.group(0).replace("EARLIER_ID", earlier[0].id[:8]).replace("MERGED", merged)
    assert main(shlex.split(argv)[1:]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", "--ledger", merged, "--study", "req", "--format", "json",
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    total = report["price_tag"]["total"]
    assert total["runs"] == 4 and total["trials"] == 1  # one training, its two attempts
    roots = [r for r in report["runs"] if r["parent_id"] is None or r["contained"] is False]
    assert len(roots) == 2
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in roots))
