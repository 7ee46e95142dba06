"""A node's ledger merged while its run runs, and again after: a renamed run is its progress (s34).

``greenprint ledger merge`` takes the later state of a run it merged while ``running`` when the
two copies are the same run. It used to require the same name and study as well, but both change
while a run runs: ``run.set(name=f"lr={lr}")`` once a script knows what names it, and Ray Tune's
callback moves its sweep and trials into the experiment's study. A node file merged before such
a change and again after it was a conflict (one line, exit status 2, nothing written): the run's
final state, cost and metrics never reached the merged ledger, and every later merge of that
node failed too. The run is written as a user's script writes it, in a process of its own; the
merge is the CLI, into SQLite and a real PostgreSQL (``ledger_url``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _clean_env import clean_env
from _wait import wait_until
from greenprint import LedgerError
from greenprint.cli import main
from greenprint.ledger import Ledger

SCRIPT = """
import os, sys, time
import greenprint as gp

ledger, gate = sys.argv[1], sys.argv[2]
with gp.track("warmup", study="llm", ledger=ledger, flush_interval_s=1) as run:
    run.log(val_loss=1.0, step=0)
    while not os.path.exists(gate):  # the test merges the file here, the run still running
        time.sleep(0.05)
    run.set(name="lr=0.1")  # named once the script knows what it runs
    run.log(val_loss=0.5, step=1)
"""


def _runs(url: str) -> list[tuple[str, str, str, int, float, int]]:
    with Ledger(url, create=False) as led:
        return [
            (r.name, r.study, r.status, len(r.metrics), r.energy_kwh or 0.0, len(led.samples(r.id)))
            for r in led.runs()
        ]


def test_a_run_renamed_after_a_merge_is_merged_again(ledger_url, tmp_path: Path, capsys) -> None:
    node = tmp_path / "gp-node0.db"
    gate = tmp_path / "go"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    job = subprocess.Popen(
        [sys.executable, str(script), str(node), str(gate)], cwd=tmp_path, env=clean_env()
    )
    try:

        def flushed() -> bool:
            try:
                with Ledger(node, create=False) as led:
                    return any(r.metrics for r in led.runs())
            except LedgerError:  # not made yet, or made and still empty
                return False

        assert wait_until(flushed, 60), "the run's first flush (its first point) never came"
        assert main(["ledger", "merge", ledger_url, str(node)]) == 0
        assert "1 run added" in capsys.readouterr().out
        assert [(n, s) for n, s, *_ in _runs(ledger_url)] == [("warmup", "llm")]
    finally:
        gate.touch()
        assert job.wait(60) == 0
    assert main(["ledger", "merge", ledger_url, str(node)]) == 0
    out, err = capsys.readouterr()
    assert "0 runs added, 1 updated, 0 already there" in out, err
    assert main(["ledger", "merge", ledger_url, str(node)]) == 0  # again: nothing changes
    assert "0 runs added, 0 updated, 1 already there" in capsys.readouterr().out
    # the merged ledger holds the run as it ended, as the node's own file does
    merged = _runs(ledger_url)
    assert merged == _runs(str(node))
    ((name, study, status, points, energy_kwh, samples),) = merged
    assert (name, study, status, points) == ("lr=0.1", "llm", "finished", 2)
    assert energy_kwh > 0 and samples >= 1
