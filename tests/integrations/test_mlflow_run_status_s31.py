"""Session 31: an MLflow run followed by ``autolog`` ends with its greenprint run's status.

A job killed by its scheduler (SLURM sends SIGTERM, then SIGKILL) ended its greenprint run
``interrupted`` (greenprint's SIGTERM handler writes the cost so far), but the MLflow run beside
it stayed ``RUNNING`` for good: SIGTERM's default action skips MLflow's exit hook, and nothing
else ends an MLflow run. Now the MLflow run, still running when its greenprint run ends
``interrupted`` or ``failed``, ends ``KILLED`` or ``FAILED``.

Each case is a script run as a user runs it (a subprocess, MLflow's file store: no server),
killed with SIGTERM where it says so; the MLflow run's status is read back with
``MlflowClient``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env
from integrations._frameworks import need_installed

need_installed("mlflow", "mlflow")

#: Where the constant-power meter of the tracker tests lives (the script imports it).
METERS_DIR = str(Path(__file__).resolve().parent.parent / "tracking")

SCRIPT = """
import os, signal, sys, time

import mlflow

import greenprint as gp
from greenprint.integrations import mlflow as gp_mlflow
from _meters import ConstantProcessPower

case = sys.argv[1]
mlflow.set_tracking_uri("file:" + os.path.abspath("mlruns"))
mlflow.set_experiment("job")


def track(name):
    return gp.track(name, study="job", ledger="greenprint.db", sample_interval_s=0.05,
                    meters=ConstantProcessPower(100.0))


def ready(ml_run_id, gp_run_id):
    print(ml_run_id, gp_run_id, flush=True)
    time.sleep(60)  # training, until the scheduler's SIGTERM


if case == "sigterm":  # the documented nesting; SIGTERM's default action
    with mlflow.start_run() as ml, track("train") as run:
        gp_mlflow.autolog(run)
        ready(ml.info.run_id, run.id)
elif case == "sigterm-exit":  # the user's handler exits: MLflow's with-block says FAILED
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    with mlflow.start_run() as ml, track("train") as run:
        gp_mlflow.autolog(run)
        ready(ml.info.run_id, run.id)
elif case == "sigterm-script":  # mlflow.start_run() without `with`: MLflow's exit hook
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    ml = mlflow.start_run()
    with track("train") as run:
        gp_mlflow.autolog(run)
        ready(ml.info.run_id, run.id)
elif case == "sigterm-by-id":  # an MLflow run made by the client, followed by its id
    client = mlflow.MlflowClient()
    ml = client.create_run(mlflow.get_experiment_by_name("job").experiment_id)
    with track("train") as run:
        gp_mlflow.autolog(run, run_id=ml.info.run_id, client=client)
        ready(ml.info.run_id, run.id)
elif case == "failed-by-id":  # an exception ends the greenprint run; no SIGTERM
    client = mlflow.MlflowClient()
    ml = client.create_run(mlflow.get_experiment_by_name("job").experiment_id)
    print(ml.info.run_id, flush=True)
    with track("train") as run:
        gp_mlflow.autolog(run, run_id=ml.info.run_id, client=client)
        print(run.id, flush=True)
        time.sleep(0.2)
        raise RuntimeError("diverged")
elif case == "finished-by-id":  # a run that ends well leaves the MLflow run to its owner
    client = mlflow.MlflowClient()
    ml = client.create_run(mlflow.get_experiment_by_name("job").experiment_id)
    with track("train") as run:
        gp_mlflow.autolog(run, run_id=ml.info.run_id, client=client)
        time.sleep(0.2)
    print(ml.info.run_id, run.id, flush=True)
"""


def _env() -> dict[str, str]:
    env = clean_env()
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the file store, deprecated, is refused without it
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONPATH"] = os.pathsep.join([METERS_DIR, *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each case run in a folder of its own, all at once; SIGTERM once it is training.

    For each case: the exit status, stderr, the MLflow run's status and greenprint tags, and
    the greenprint run's status in the ledger.
    """
    import mlflow

    import greenprint as gp

    cases = [
        "sigterm",
        "sigterm-exit",
        "sigterm-script",
        "sigterm-by-id",
        "failed-by-id",
        "finished-by-id",
    ]
    procs: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for case in cases:
        home = tmp_path_factory.mktemp(case)
        (home / "job.py").write_text(SCRIPT, encoding="utf-8")
        procs[case] = (
            home,
            subprocess.Popen(
                [sys.executable, "job.py", case],
                cwd=home,
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    ids: dict[str, list[str]] = {}
    for case, (_, proc) in procs.items():
        assert proc.stdout is not None
        if case.startswith("sigterm"):
            line = proc.stdout.readline()  # training: the runs are going
            ids[case] = line.split()
            proc.send_signal(signal.SIGTERM)
    found: dict[str, dict[str, object]] = {}
    for case, (home, proc) in procs.items():
        out, err = proc.communicate(timeout=120)
        ids.setdefault(case, out.split())
        assert len(ids[case]) == 2, (case, out, err[-3000:])
        ml_id, gp_id = ids[case]
        with pytest.MonkeyPatch.context() as env:  # the file store, read back here too
            env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
            ml_run = mlflow.MlflowClient(f"file:{home / 'mlruns'}").get_run(ml_id)
        with gp.Ledger(home / "greenprint.db") as ledger:
            record = ledger.run(gp_id)
        found[case] = {
            "rc": proc.returncode,
            "stderr": err,
            "mlflow": ml_run.info.status,
            "tags": ml_run.data.tags,
            "metrics": ml_run.data.metrics,
            "greenprint": record.status,
            "error": record.error,
        }
    return found


@pytest.mark.parametrize(
    ("case", "rc"),
    [
        ("sigterm", -signal.SIGTERM),
        ("sigterm-exit", 143),
        ("sigterm-script", 143),
        ("sigterm-by-id", -signal.SIGTERM),
    ],
)
def test_a_job_killed_by_sigterm_leaves_its_mlflow_run_killed(
    outcomes: dict[str, dict[str, object]], case: str, rc: int
) -> None:
    """SIGTERM: the greenprint run ``interrupted``, its MLflow run ``KILLED``, not RUNNING.

    Also when the user's SIGTERM handler exits: MLflow's ``with mlflow.start_run()`` marks any
    exception ``FAILED``, and its exit hook marks a run started without ``with`` ``FINISHED``;
    the run had ended ``KILLED`` first, and stays so.
    """
    got = outcomes[case]
    assert got["rc"] == rc, got["stderr"]
    assert "Traceback" not in str(got["stderr"])
    assert (got["greenprint"], got["error"]) == ("interrupted", "SIGTERM")
    assert got["mlflow"] == "KILLED"
    tags = got["tags"]
    assert isinstance(tags, dict)
    assert tags["greenprint.status"] == "interrupted"
    assert "greenprint/energy_kwh" in got["metrics"]  # type: ignore[operator]


def test_a_failed_run_ends_its_mlflow_run_failed(outcomes: dict[str, dict[str, object]]) -> None:
    """An MLflow run made by the client (MLflow's exit hook never ends it) ends ``FAILED``."""
    got = outcomes["failed-by-id"]
    assert got["rc"] == 1
    assert "RuntimeError: diverged" in str(got["stderr"])
    assert got["greenprint"] == "failed"
    assert got["mlflow"] == "FAILED"


def test_a_finished_run_leaves_the_mlflow_run_to_its_owner(
    outcomes: dict[str, dict[str, object]],
) -> None:
    """A run that ends well does not end the MLflow run: its owner ends it (still RUNNING)."""
    got = outcomes["finished-by-id"]
    assert got["rc"] == 0, got["stderr"]
    assert got["greenprint"] == "finished"
    assert got["mlflow"] == "RUNNING"
