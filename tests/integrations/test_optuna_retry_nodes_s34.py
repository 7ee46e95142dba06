"""An Optuna trial killed on one machine, retried on another, each with its own ledger (s34).

Workers on several machines share one Optuna storage (with a heartbeat and Optuna's
``RetryFailedTrialCallback``) and write each its node's SQLite ledger, merged afterwards. A
trial killed on node A is retried by node B's worker: one configuration, which the report reads
as one trial when the killed attempt's run is in the retry's ledger. Here it is not (it is in
node A's), so nothing links the two, and after the merge they read as two trials, the killed one
``lost``. Before, node B said only ``could not give run 90e566f8 its params: no run with id
...``; it now says what happened and gives the command that links them once the ledgers are
merged, and that command makes the merged study read as Optuna counts it. Each node is a user's
script in a process of its own, in a clean environment.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _clean_env import clean_env
from greenprint.cli import main
from integrations._frameworks import need_installed

need_installed("optuna", "optuna")

SEARCH = """
import os, signal, sys, time
import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
ledger, die, n_trials = sys.argv[1], sys.argv[2] == "die", int(sys.argv[3])
storage = RDBStorage("sqlite:///optuna.db", heartbeat_interval=1, grace_period=1,
                     failed_trial_callback=RetryFailedTrialCallback(max_retry=1))
cb = GreenprintCallback(ledger=ledger, sample_interval_s=0.05, flush_interval_s=0.1)


def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    for step in range(2):
        time.sleep(0.3)
        trial.report(x + step, step)
    if die:
        time.sleep(0.5)  # its run flushes its cost so far
        os.kill(os.getpid(), signal.SIGKILL)
    return x


study = optuna.create_study(study_name="retry", storage=storage, load_if_exists=True)
study.optimize(cb.track(objective), n_trials=n_trials, callbacks=[cb])
"""


def _node(home: Path, ledger: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "search.py", ledger, *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_trial_killed_on_one_node_and_retried_on_another_is_linked_by_the_command_given(
    tmp_path: Path, capsys
) -> None:
    import optuna

    (tmp_path / "search.py").write_text(SEARCH)
    killed = _node(tmp_path, "node-a.db", "die", "1")
    assert killed.returncode == -9, killed.stderr
    time.sleep(1.5)  # Optuna's grace period (1 s) since the killed trial's last heartbeat
    # node B: past the grace period, Optuna fails the killed trial and retries it, then one more
    retried = _node(tmp_path, "node-b.db", "live", "2")
    assert retried.returncode == 0, retried.stderr
    said = [line for line in retried.stderr.splitlines() if line.startswith("greenprint: ")]
    assert len(said) == 1 and "retries trial 0" in said[0], retried.stderr
    command = re.search(r"greenprint ledger set-role .*--ledger MERGED", said[0])
    assert command, said[0]

    trials = optuna.load_study(study_name="retry", storage=f"sqlite:///{tmp_path}/optuna.db").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    merged = str(tmp_path / "merged.db")
    assert (
        main(["ledger", "merge", merged, *(str(tmp_path / f) for f in ("node-a.db", "node-b.db"))])
        == 0
    )
    argv = shlex.split(command.group(0).replace("MERGED", merged))[1:]
    assert main(argv) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert (
        main(
            [
                "report",
                "--ledger",
                merged,
                "--study",
                "retry",
                "--format",
                "json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    total = report["price_tag"]["total"]
    # one configuration, one trial: Optuna's completed trials, the killed attempt their part
    assert total["runs"] == 3 and total["trials"] == 2
    rows = {r["name"]: r for r in report["runs"]}
    assert (
        rows["trial-0"]["role"] == "part" and rows["trial-0"]["parent_id"] == rows["trial-1"]["id"]
    )
    assert rows["trial-0"]["energy_kwh"] > 0
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows.values()))
