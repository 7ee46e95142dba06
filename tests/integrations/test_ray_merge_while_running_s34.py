"""A Ray Tune experiment's ledger merged while it runs, and again after it ends (s34).

A team fetches a node's ledger with ``greenprint ledger merge`` while its experiment still runs
(a periodic copy to shared storage, a look at the study so far), and again at the end. The
trials' workers write their runs under the experiment's name; the callback moves the sweep and
each trial into the study it was given once it sees the trial's first result. A copy merged
before that move and the run's later state differed by study, which the merge took for another
run: a conflict, exit status 2, and the experiment's final state never reached the merged
ledger (every later merge of the node failed too). The script is a user's Tune script on a local
cluster of its own; the merges are the CLI's, from this process, as another process's would be.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _clean_env import clean_env
from _report_cli import empty_home
from _wait import wait_until
from greenprint import LedgerError
from greenprint.cli import main
from greenprint.ledger import Ledger
from integrations._frameworks import need_installed

need_installed("ray.tune", "ray")

SCRIPT = """
import os, sys, time
import ray
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

gate = os.path.abspath("go")


def train(config):
    while not os.path.exists(gate):  # the test merges the ledger here, every trial running
        time.sleep(0.05)
    for epoch in range(2):
        tune.report({"loss": config["lr"] / (epoch + 1)})


ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
         _temp_dir=sys.argv[1], log_to_driver=False)
tuner = tune.Tuner(
    trainable(train, ledger="node.db"),  # no study: the workers write under the experiment's
    param_space={"lr": tune.grid_search([0.1, 0.01])},
    tune_config=tune.TuneConfig(metric="loss", mode="min"),
    run_config=tune.RunConfig(name="exp", storage_path=os.path.abspath("tune"),
                              callbacks=[GreenprintTuneCallback(ledger="node.db", study="lr")]),
)
tuner.fit()
"""


def _runs(url: Path) -> list[tuple[str, str, str | None, str, int]]:
    with Ledger(url, create=False) as led:
        return sorted((r.id, r.study, r.role, r.status, len(r.metrics)) for r in led.runs())


def test_a_tune_ledger_merged_while_the_experiment_runs_and_after(tmp_path_factory, capsys):
    import shutil
    import tempfile

    home = empty_home(tmp_path_factory, "ray-merge")
    (home / "ray-home").mkdir()
    (home / "ray-home" / "ray_bootstrap_config.yaml").write_text("{}\n")
    (home / "study.py").write_text(SCRIPT)
    env = clean_env()
    env.update(HOME=str(home / "ray-home"), RAY_USAGE_STATS_ENABLED="0",
               RAY_USAGE_STATS_REPORT_URL="http://127.0.0.1:9/")  # fmt: skip
    ray_tmp = tempfile.mkdtemp(prefix="gp-ray-", dir="/tmp")
    node, merged = home / "node.db", home / "merged.db"
    script = subprocess.Popen(
        [sys.executable, "study.py", ray_tmp], cwd=home, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def both_trials_started() -> bool:
            try:
                with Ledger(node, create=False) as led:
                    return sum(r.role == "trial" for r in led.runs()) == 2
            except LedgerError:  # not made yet
                return False

        assert wait_until(both_trials_started, 120), "the trials never started"
        assert main(["ledger", "merge", str(merged), str(node)]) == 0
        early = _runs(merged)
        assert {status for *_, status, _ in early} == {"running"}
        assert "exp" in {study for _, study, *_ in early}  # written before the move
    finally:
        (home / "go").touch()
        try:
            _, err = script.communicate(timeout=240)
        finally:
            script.kill()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    assert script.returncode == 0, err[-3000:]
    capsys.readouterr()
    assert main(["ledger", "merge", str(merged), str(node)]) == 0, capsys.readouterr().err
    assert main(["ledger", "merge", str(merged), str(node)]) == 0  # again: nothing changes
    assert "0 run(s) added, 0 updated, 3 already there" in capsys.readouterr().out
    final = _runs(merged)
    assert final == _runs(node)
    assert sorted((study, role, status, n) for _, study, role, status, n in final) == sorted(
        [("lr", "sweep", "finished", 0)] + [("lr", "trial", "finished", 2)] * 2
    )
