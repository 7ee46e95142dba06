"""A Ray Tune experiment that ends before its trials (time_budget_s, Ctrl-C) on a real cluster.

Tune ends such an experiment by marking the trials still running ``TERMINATED`` without calling
``on_trial_complete``. A trial whose results the driver had seen was recorded ``interrupted``;
one whose first result the driver had not seen yet (a slow first epoch, or a result still on
its way when Ctrl-C came) was adopted by its name as a trial that "ended before its first
result" and recorded ``finished``: with Ctrl-C 2 s into two trials of 40 epochs, both read
``finished`` at epoch 1 of 40 (acc 0.99), a finished trial in the report's EVP and best trial.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from integrations._frameworks import need_installed

need_installed("ray.tune", "ray")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import ray

    home = tmp_path_factory.mktemp("ray-home")
    (home / "ray_bootstrap_config.yaml").write_text("{}\n")  # no cloud metadata probes
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_USAGE_STATS_REPORT_URL", "http://127.0.0.1:9/")
        tests_dir = str(Path(__file__).resolve().parents[1])
        mp.setenv("PYTHONPATH", os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")]))
        scratch = tempfile.mkdtemp(prefix="gp-ray-")  # short: AF_UNIX paths under it
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=scratch,
            log_to_driver=False,
        )
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(scratch, ignore_errors=True)


def _train(config: dict[str, Any]) -> None:
    from ray import tune

    if config["x"] == 1:  # quick: three results, then it returns
        for i in range(3):
            tune.report({"score": float(i)})
        return
    time.sleep(120)  # x=2: a first epoch longer than the experiment's time budget
    tune.report({"score": 10.0})


def test_a_trial_cut_before_its_first_result_reads_interrupted(
    ray_cluster: Any, tmp_path: Path
) -> None:
    from ray import tune

    from greenprint.integrations.ray import GreenprintTuneCallback, trainable

    ledger = tmp_path / "greenprint.db"
    started = time.monotonic()
    tune.Tuner(
        trainable(_train, ledger=ledger),
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(metric="score", mode="max", time_budget_s=6),
        run_config=tune.RunConfig(
            name="cut",
            storage_path=str(tmp_path / "tune"),
            callbacks=[GreenprintTuneCallback(ledger=ledger, study="cut")],
            verbose=0,
        ),
    ).fit()
    assert time.monotonic() - started < 60  # the time budget ended it, not the trial
    runs = {r.name: r for r in gp.Ledger(ledger).runs(study="cut")}
    (sweep,) = [r for r in runs.values() if r.role == "sweep"]
    trials = {r.params["x"]: r for r in runs.values() if r.role == "trial"}
    assert sorted(trials) == [1, 2]
    assert trials[1].status == "finished" and trials[1].metric("score") == 2.0
    cut = trials[2]
    assert (cut.status, cut.error) == ("interrupted", "the experiment ended before the trial")
    assert cut.metric("score") is None and cut.parent_id == sweep.id
    assert cut.ended_at is not None and cut.energy_kwh is not None
    # the experiment did not run to its end: its sweep is interrupted too (it read finished)
    assert (sweep.status, sweep.error) == (
        "interrupted",
        "the experiment ended before 1 of its 2 trials ended",
    )
