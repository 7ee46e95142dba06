"""Issue 13's "done when" for the loggers: MLflow and W&B offline runs in one greenprint ledger.

Runs logged to MLflow (a real SQLite store), W&B (offline) and TensorBoard land in one ledger
with the roles and statuses they ended with, the loggers say the same, and the CLI's JSON
report reads them right. A last test checks what the network guard cannot see: W&B's
``wandb-core`` is a Go binary, so ``strace`` watches it for network connections.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from integrations._frameworks import need_installed

need_installed("mlflow", "mlflow")
need_installed("wandb", "wandb")
need_installed("tensorboard", "tensorboard")

#: MLflow without usage reports, W&B offline and quiet, while this module's tests run (set at
#: import, they stayed in every xdist worker's environment for all later tests)
LOGGERS_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "WANDB_DISABLE_GIT": "true",
}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import MLflow, W&B and TensorBoard's writer when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; these imports take seconds of CPU. The names
    are this module's globals, as a top-level import would make them.
    """
    global mlflow, wandb, SummaryWriter, gp_mlflow, gp_tensorboard, gp_wandb
    with pytest.MonkeyPatch.context() as env:
        for key, value in LOGGERS_ENV.items():
            env.setenv(key, value)
        import mlflow
        import wandb
        from torch.utils.tensorboard import SummaryWriter

        from greenprint.integrations import mlflow as gp_mlflow
        from greenprint.integrations import tensorboard as gp_tensorboard
        from greenprint.integrations import wandb as gp_wandb

        yield


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _report(db: Path, study: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "greenprint", "report", "--ledger", str(db), "--study", study]
        + ["--format", "json", "--out", str(out), "--no-plots"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def _wandb(tmp_path: Path, name: str):
    return wandb.init(
        project="greenprint-done-when",
        name=name,
        mode="offline",
        dir=str(tmp_path),
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


def test_mlflow_and_wandb_runs_in_one_ledger_reported_right(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    study = "logged"
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment(study, artifact_location=str(tmp_path / "artifacts"))
    mlflow_status = {}
    for name, fail in (("mlflow-ok", False), ("mlflow-crash", True)):
        ml = client.create_run(experiment, run_name=name)
        try:
            with gp.track(name, study=study, ledger=db, role="trial", **FAST) as run:
                gp_mlflow.autolog(run, run_id=ml.info.run_id, client=client)
                run.log(accuracy=0.8)
                if fail:
                    raise RuntimeError("diverged")
        except RuntimeError:
            pass
        mlflow_status[name] = client.get_run(ml.info.run_id).data.tags["greenprint.status"]

    with _wandb(tmp_path, "wandb-pruned") as wb:
        with gp.track("wandb-pruned", study=study, ledger=db, role="trial", **FAST) as run:
            logger = gp_wandb.autolog(run, wb)
            wb.log({"accuracy": 0.5, **logger.figures()})
            run.log(accuracy=0.5)
            run.prune()
    with _wandb(tmp_path, "wandb-final") as wb_final:
        with gp.track("wandb-final", study=study, ledger=db, role="final", **FAST) as run:
            gp_wandb.autolog(run, wb_final)
            run.log(accuracy=0.9)
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        with gp.track("tb-baseline", study=study, ledger=db, role="baseline", **FAST) as run:
            gp_tensorboard.autolog(run, writer)
            run.log(accuracy=0.6)

    assert mlflow_status == {"mlflow-ok": "finished", "mlflow-crash": "failed"}
    stored = json.loads((Path(wb_final.dir) / gp_wandb.RECORD_FILE).read_text())
    assert (stored["role"], stored["status"]) == ("final", "finished")

    report = _report(db, study, tmp_path / "report")
    rows = {r["name"]: r for r in report["runs"]}
    assert {name: (r["role"], r["status"]) for name, r in rows.items()} == {
        "mlflow-ok": ("trial", "finished"),
        "mlflow-crash": ("trial", "failed"),
        "wandb-pruned": ("trial", "pruned"),
        "wandb-final": ("final", "finished"),
        "tb-baseline": ("baseline", "finished"),
    }
    assert not any(r["role_inferred"] for r in rows.values())
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 3
    assert set(tag["by_status"]) == {"finished", "failed", "pruned"}
    assert tag["final"]["score"] == pytest.approx(0.9)
    assert rows["wandb-final"]["is_final"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_offline_wandb_opens_no_network_connection(tmp_path: Path) -> None:
    """The guard sees Python sockets only; wandb-core (Go) is watched with strace -f."""
    script = tmp_path / "offline.py"
    script.write_text(
        "import wandb, greenprint as gp\n"
        "from greenprint.integrations import wandb as gp_wandb\n"
        f"with wandb.init(project='p', mode='offline', dir={str(tmp_path)!r}) as wb:\n"
        "    with gp.track('x', ledger=False, sample_interval_s=0.05, flush_interval_s=0.1)"
        " as run:\n"
        "        logger = gp_wandb.autolog(run, wb)\n"
        "        wb.log(logger.figures())\n"
    )
    trace = tmp_path / "trace.txt"
    done = subprocess.run(
        # --seccomp-bpf: only the traced calls stop the processes (every call did: 15 s of CPU
        # for the test, 9 s now); the same calls are traced, children included
        ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect,sendto,sendmsg"]
        + ["-o", str(trace), sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    calls = trace.read_text().splitlines()
    assert any("AF_UNIX" in line for line in calls)  # wandb-core was traced: it was reached
    inet = [
        line
        for line in calls
        if ("AF_INET" in line) and not ("127.0.0.1" in line or '"::1"' in line)
    ]
    assert inet == []
