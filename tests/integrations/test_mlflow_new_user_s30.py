"""Session 30: MLflow as its users nest runs, run as a user runs it (helper H8).

One script, run once in an empty directory with a new user's environment, writes a local MLflow
store (SQLite) and a greenprint ledger; the tests read both back, and ``greenprint report``.

* Nested MLflow runs three deep (a search, a run per trial, a run per fold of each trial), each
  beside a ``gp.track`` run given no role: the folds' MLflow runs never got the
  ``greenprint.role`` tag. A fold's role is not known when it ends (the search around it, given
  no role, is still running); its trial's end was the only time it was looked at again, and
  the trial's own role was not known then either; the search's end tagged its trials only.
  A hand-written search whose ``gp.track("search")`` has no MLflow run of its own (only the
  trials log to MLflow) left every trial untagged. Now a run whose role is not known at its end
  is tagged when the run above that holds it back ends, as TensorBoard's text already was.
* ``gp_mlflow.log_report(...)`` called inside the search's own runs, before they end (where a
  user logs the search's report: into the parent MLflow run): the report read the search's
  ledger row as last flushed (10 s apart; here at its first sample), so its price tag left out
  what the search cost beyond its trials, and a warning said "parent runs with less energy than
  their children". Now the running runs of this process that write to that ledger write their
  cost so far first.

The meters are the tracker tests' constant power (360 W: 1 s of run time is 1e-4 kWh), so each
run's energy is power x time exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import cli_report, empty_home, run_in
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the script imports it).
METERS_DIR = str(Path(__file__).resolve().parent.parent / "tracking")

#: The constant power of every run's meter, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

SCRIPT = """
import json, os, sys, time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as docs/integrations.md does
sys.path.insert(0, @METERS@)
import mlflow

import greenprint as gp
from greenprint.integrations import mlflow as gp_mlflow
from _meters import ConstantProcessPower

mlflow.set_tracking_uri("sqlite:///mlflow.db")
ids = {}


def track(name, study, **options):
    return gp.track(name, study=study, ledger="greenprint.db", sample_interval_s=0.05,
                    meters=ConstantProcessPower(@WATTS@), **options)


# 1. nested MLflow runs: search > trial > fold, none given a role
mlflow.set_experiment("cv")
with (
    mlflow.start_run(run_name="search") as outer,
    track("search", "cv", flush_interval_s=30) as search,
):
    gp_mlflow.autolog(search)
    time.sleep(0.3)  # the search's own work: loading the data
    for lr in (0.01, 0.1):
        with (
            mlflow.start_run(run_name=f"lr{lr}", nested=True),
            track(f"lr{lr}", "cv", params={"lr": lr}) as trial,
        ):
            gp_mlflow.autolog(trial)
            scores = []
            for fold in range(2):
                with (
                    mlflow.start_run(run_name=f"lr{lr}-fold{fold}", nested=True),
                    track(f"lr{lr}-fold{fold}", "cv", params={"fold": fold}) as part,
                ):
                    gp_mlflow.autolog(part)
                    time.sleep(0.1)
                    scores.append(0.9 - lr + fold / 100)
                    part.log(accuracy=scores[-1])
            trial.log(accuracy=sum(scores) / len(scores))
    gp_mlflow.log_report("cv", "greenprint.db")  # into the search's MLflow run, before its end
    ids["report_run"] = outer.info.run_id

# 2. a hand-written search with no MLflow run of its own: each trial is an MLflow run
mlflow.set_experiment("loop")
with track("search", "loop"):
    for lr in (0.01, 0.1):
        with mlflow.start_run(run_name=f"lr{lr}"), track(f"lr{lr}", "loop",
                                                        params={"lr": lr}) as trial:
            gp_mlflow.autolog(trial)
            time.sleep(0.05)
            trial.log(val_loss=lr)
print(json.dumps(ids))
""".replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The script run once in an empty directory; the MLflow run the report went into, and
    what the script wrote to stderr."""
    need_installed("mlflow", "mlflow")
    home = empty_home(tmp_path_factory, "mlflow-nested")
    (home / "search.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return home, {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def _mlflow_runs(home: Path, experiment: str) -> dict[str, object]:
    """The MLflow runs of ``experiment`` in the script's store, by run name."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {run.info.run_name: run for run in found}


@pytest.mark.parametrize("study", ["cv", "loop"])
def test_every_mlflow_run_is_tagged_with_the_role_the_report_reads(mlflow_home, study) -> None:
    """Each MLflow run carries its greenprint run's id and the role ``greenprint report``
    reads for it, marked inferred: the folds three levels down (before: no role tag), the
    trials of a search that has no MLflow run (before: no role tag); and its energy is the
    constant power x its duration."""
    home, _ = mlflow_home
    report = cli_report(home, "--study", study, "--no-plots", "--format", "json")
    read = {row["id"]: row["role"] for row in report["runs"]}
    runs = _mlflow_runs(home, study)
    expected_names = (
        {"search", "lr0.01", "lr0.1", "lr0.01-fold0", "lr0.01-fold1", "lr0.1-fold0", "lr0.1-fold1"}
        if study == "cv"
        else {"lr0.01", "lr0.1"}
    )
    assert set(runs) == expected_names
    tags = {name: run.data.tags for name, run in runs.items()}
    roles = {
        name: (t.get("greenprint.role"), t.get("greenprint.role_inferred"))
        for name, t in tags.items()
    }
    assert roles == {name: (read[t["greenprint.run_id"]], "true") for name, t in tags.items()}
    assert {role for role, _ in roles.values()} == (
        {"sweep", "trial", "part"} if study == "cv" else {"trial"}
    )
    for name, run in runs.items():
        metrics = run.data.metrics
        assert metrics["greenprint/energy_kwh"] == pytest.approx(
            WATTS * metrics["greenprint/duration_s"] / 3.6e6, rel=0.05
        ), name


def test_a_report_logged_inside_the_running_search_counts_the_search(mlflow_home) -> None:
    """The report logged into the search's MLflow run before the search ended: its price tag's
    total is the search's cost so far (its own 0.3 s of data loading included), not the sum of
    its trials (before: 0.3 s x 360 W = 3e-5 kWh short of it, and a note that parent runs
    recorded less energy than their children)."""
    import mlflow

    home, ids = mlflow_home
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    path = client.download_artifacts(ids["report_run"], "greenprint/report/report.json", str(home))
    logged = json.loads(Path(path).read_text(encoding="utf-8"))
    total = logged["price_tag"]["total"]["energy_kwh"]
    rows = {row["name"]: row for row in logged["runs"]}
    trials = sum(row["energy_kwh"] for row in rows.values() if row["role"] == "trial")
    assert rows["search"]["status"] == "running"
    assert total == pytest.approx(rows["search"]["energy_kwh"])
    assert total >= trials + WATTS * 0.3 / 3.6e6
    assert "less energy than their children" not in json.dumps(logged)
    assert "parent runs with less energy" not in ids["stderr"]  # the warning it logged
    # and it ended: the ledger's final row holds what it cost up to the report, and more
    final = cli_report(home, "--study", "cv", "--no-plots", "--format", "json")
    assert final["price_tag"]["total"]["energy_kwh"] > total
