"""Session 31: an MLflow run followed by ``autolog`` ends with its greenprint run's status.

A job killed by its scheduler (SLURM sends SIGTERM, then SIGKILL) ended its greenprint run
``interrupted`` (greenprint's SIGTERM handler writes the cost so far), but the MLflow run beside
it stayed ``RUNNING`` for good: SIGTERM's default action skips MLflow's exit hook, and nothing
else ends an MLflow run. Now the MLflow run, still running when its greenprint run ends
``interrupted`` or ``failed``, ends ``KILLED`` or ``FAILED``.

Each case is a script run as a user runs it (``python job.py CASE``, in a child of a fork
server that imported MLflow; MLflow's file store: no server), killed with SIGTERM where it says
so; the MLflow run's status is read back with ``MlflowClient``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from _clean_env import clean_env
from _docs_fork import ForkServer, StartedChild
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
    # what pytest-xdist's workers give (conftest), here too when the file runs alone: OpenBLAS,
    # which MLflow's pandas loads, starts no thread in the fork server (the scripts do no math)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([METERS_DIR, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _first_line(child: StartedChild, timeout_s: float) -> str:
    """The first line the child wrote to its stdout, once it is whole; ``""`` if the child
    ended without one (its stderr then says why)."""
    deadline = time.monotonic() + timeout_s
    path = child.paths["stdout"]
    while time.monotonic() < deadline:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if "\n" in text:
            return text.split("\n", 1)[0]
        try:
            os.kill(child.pid, 0)
        except ProcessLookupError:  # ended (its server reaps it at once)
            return ""
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    raise TimeoutError(f"no line from the script in {timeout_s} s (killed)")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each case run in a folder of its own, one after another; SIGTERM once it is training.

    Each case is ``python job.py CASE`` run in a child of a fork server that imported MLflow
    (:mod:`_docs_fork`; about 1.7 s of CPU of each script's 2.5): what a fresh process there
    would be (its cwd and environment, ``__main__``, SIGTERM's default action, a normal exit
    with atexit handlers run, the exit status ``subprocess`` gives: ``-15`` for SIGTERM), and
    greenprint imported fresh by the script itself. The server imports nothing of this project
    and has one thread (a fork copies one).

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
    server = ForkServer(tmp_path_factory.mktemp("server"), _env(), [["mlflow"]])
    found: dict[str, dict[str, object]] = {}
    try:
        assert server.ready["project_modules"] == [], server.ready
        # one thread but jemalloc's background thread (pyarrow's allocator, under MLflow's
        # pandas), which jemalloc itself stops in a forked child
        tasks = Path(f"/proc/{server.pid}/task")  # Linux; elsewhere the server counts none
        if tasks.is_dir():
            others = [t for t in tasks.iterdir() if t.name != str(server.pid)]
            threads = [(t / "comm").read_text().strip() for t in others]
            assert set(threads) <= {"jemalloc_bg_thd"}, threads
        for case in cases:
            home = tmp_path_factory.mktemp(case)
            (home / "job.py").write_text(SCRIPT, encoding="utf-8")
            child = server.start_script("job.py", [case], home, _env())
            ids: list[str] = []
            if case.startswith("sigterm"):
                ids = _first_line(child, timeout_s=120).split()  # training
                if ids:  # else it ended first: its stderr is in the assertion below
                    os.kill(child.pid, signal.SIGTERM)
            done = server.wait(child, timeout=120)
            ids = ids or done.stdout.split()
            assert len(ids) == 2, (case, done.stdout, done.stderr[-3000:])
            ml_id, gp_id = ids
            with pytest.MonkeyPatch.context() as env:  # the file store, read back here too
                env.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
                ml_run = mlflow.MlflowClient(f"file:{home / 'mlruns'}").get_run(ml_id)
            with gp.Ledger(home / "greenprint.db") as ledger:
                record = ledger.run(gp_id)
            found[case] = {
                "rc": done.returncode,
                "stderr": done.stderr,
                "mlflow": ml_run.info.status,
                "tags": ml_run.data.tags,
                "metrics": ml_run.data.metrics,
                "greenprint": record.status,
                "error": record.error,
            }
    finally:
        server.close()
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
