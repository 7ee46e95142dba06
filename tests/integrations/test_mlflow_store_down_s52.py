"""A tracking store that is down is warned of once, not at every write (session 52).

``autolog``'s logger writes at every flush (every 10 s by default) and at every step logged: a
store that went down printed a warning line at each, for as long as it stayed down (20 lines in
2 s of an outside check's job). As the docs promise for ``Run.add_listener`` failures, it is
now one warning per kind of error, the same failure again at debug level, and at the run's end
one line that counts the rest. Training is never stopped by it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import empty_home

SCRIPT = """
import logging, time
logging.getLogger("mlflow").setLevel(logging.ERROR)
import mlflow
import greenprint as gp
from mlflow.exceptions import MlflowException
from greenprint.integrations import mlflow as gp_mlflow

mlflow.set_tracking_uri("sqlite:///mlflow.db")


class Down(mlflow.MlflowClient):  # the store goes down after autolog found the run
    def log_batch(self, *args, **kwargs):
        raise MlflowException("store is down")


with mlflow.start_run() as active:
    with gp.track("job", study="down", sample_interval_s=0.05, flush_interval_s=0.1) as run:
        logger = gp_mlflow.autolog(run, client=Down(), run_id=active.info.run_id)
        for epoch in range(8):
            time.sleep(0.1)
            logger.log(step=epoch)
print("trained")
"""


def test_a_store_that_is_down_is_one_warning_and_a_count(tmp_path_factory):
    pytest.importorskip("mlflow")
    home = empty_home(tmp_path_factory, "mlflow-down")
    (home / "job.py").write_text(SCRIPT, encoding="utf-8")
    env = clean_env()
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    done = subprocess.run(
        [sys.executable, "job.py"], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "trained"  # the training went on
    lines = done.stderr.splitlines()
    first = [line for line in lines if "could not log figures to MLflow run" in line]
    assert len(first) == 1, done.stderr
    assert "store is down" in first[0] and "said once" in first[0]
    counted = [line for line in lines if "more writes of figures to MLflow run" in line]
    assert len(counted) == 1, done.stderr
    more = int(counted[0].split("greenprint: ", 1)[1].split()[0])
    assert more >= 7  # 8 steps logged, and the flushes between them, all failed but one
    assert "(the last: MlflowException: store is down)" in counted[0]
    (run,) = gp.Ledger(str(home / "greenprint.db")).runs(study="down")
    assert run.status == "finished"
