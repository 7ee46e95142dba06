"""MLflow: a greenprint run's figures, provenance and record land in a real local tracking store.

The store is MLflow's SQLite one (``sqlite:///`` in a temporary folder; the file store is
deprecated), read back with ``MlflowClient``. Creating a store runs MLflow's migrations (seconds),
so the module shares one store and each test has its own experiment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenprint as gp
from _wait import wait_until
from greenprint import ConfigError
from integrations._frameworks import need_installed
from tracking._meters import ConstantPowerMeters

need_installed("mlflow", "mlflow")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import MLflow when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; MLflow takes 2-3 s of CPU to import. The
    names are this module's globals, as a top-level import would make them.
    """
    global mlflow, gp_mlflow
    with pytest.MonkeyPatch.context() as env:
        # no usage reports, even off CI (set at import, it stayed in every xdist worker's
        # environment, which collects every module, for all later tests)
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        from greenprint.integrations import mlflow as gp_mlflow

        yield


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def client(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> mlflow.MlflowClient:
    """An experiment of the test's own, its artifacts in tmp_path (not ./mlruns)."""
    client = mlflow.MlflowClient(store)
    client.create_experiment(request.node.name, artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(request.node.name)
    return client


def _history(client: mlflow.MlflowClient, run_id: str, key: str) -> list:
    return sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step))


def test_autolog_steps_totals_tags_and_record(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with (
        mlflow.start_run() as ml,
        gp.track(
            "resnet", study="cifar", ledger=db, role="trial", meters=ConstantPowerMeters(), **FAST
        ) as run,
    ):
        logger = gp_mlflow.autolog(run)
        assert logger.run_id == ml.info.run_id
        # a few flushes: figures logged from the sampler thread (its first loop records the
        # environment first, slow on a loaded machine: waited for, not a fixed sleep)
        wait_until(
            lambda: len(_history(client, ml.info.run_id, "greenprint/energy_kwh")) >= 2,
            60,
            every_s=0.05,
        )
        at_epoch = logger.log(step=100)
        run.log(accuracy=0.9)
    assert at_epoch["greenprint/energy_kwh"] > 0
    assert set(at_epoch) >= {
        "greenprint/energy_kwh",
        "greenprint/emissions_kg",
        "greenprint/power_w",
        "greenprint/cpu_energy_kwh",
        "greenprint/ram_energy_kwh",
    }
    assert "greenprint/fpo" not in at_epoch  # unknown FPO is not logged as 0

    energy = _history(client, ml.info.run_id, "greenprint/energy_kwh")
    assert len(energy) >= 4  # >= 2 flushes, the user's step, the total
    values = [m.value for m in energy]
    assert values == sorted(values)  # energy so far never decreases
    assert 100 in [m.step for m in energy]
    # the latest value (MLflow's runs table) is the run's total, as the ledger has it
    data = client.get_run(ml.info.run_id).data
    record = gp.Ledger(db).runs(study="cifar")[0]
    assert data.metrics["greenprint/energy_kwh"] == pytest.approx(record.energy_kwh)
    assert data.metrics["greenprint/emissions_kg"] == pytest.approx(record.emissions_kg)
    assert data.metrics["greenprint/duration_s"] == pytest.approx(record.duration_s)
    power = record.energy_kwh * 3.6e6 / record.duration_s
    assert data.metrics["greenprint/power_w"] == pytest.approx(power)
    # the constant meters: 110 W on the machine, half of it the process's
    assert power == pytest.approx(55.0, rel=0.2)

    tags = data.tags
    assert tags["greenprint.run_id"] == run.id
    assert tags["greenprint.study"] == "cifar"
    assert tags["greenprint.status"] == "finished"
    assert tags["greenprint.role"] == "trial"
    assert tags["greenprint.provenance.cpu"] == "test:constant"
    assert tags["greenprint.provenance.intensity"] == run.provenance["intensity"]

    (info,) = client.list_artifacts(ml.info.run_id, "greenprint")
    assert info.path == "greenprint/run.json"
    local = client.download_artifacts(ml.info.run_id, info.path, str(tmp_path))
    stored = json.loads(Path(local).read_text())
    assert stored["id"] == run.id
    assert stored["status"] == "finished"
    assert stored["energy_kwh"] == pytest.approx(record.energy_kwh)
    assert [m["name"] for m in stored["metrics"]] == ["accuracy"]


def test_a_failed_run_is_logged_with_its_cost(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    with mlflow.start_run() as ml:
        with pytest.raises(RuntimeError, match="diverged"):
            with gp.track("crash", ledger=tmp_path / "gp.db", **FAST) as run:
                gp_mlflow.autolog(run, every_flush=False)
                time.sleep(0.2)
                raise RuntimeError("diverged")
    data = client.get_run(ml.info.run_id).data
    assert data.tags["greenprint.status"] == "failed"
    assert "greenprint/energy_kwh" in data.metrics
    assert data.metrics["greenprint/duration_s"] == pytest.approx(run.duration_s)
    # every_flush=False: only the total, at step 0
    assert [m.step for m in client.get_metric_history(ml.info.run_id, "greenprint/duration_s")] == [
        0
    ]


def test_greenprint_outside_the_mlflow_run_and_by_run_id(client: mlflow.MlflowClient) -> None:
    """gp.track may enclose mlflow.start_run: the totals still land after the MLflow run ended."""
    with gp.track("outer", ledger=False, **FAST) as run:
        with mlflow.start_run() as ml:
            gp_mlflow.autolog(run, every_flush=False)
    assert mlflow.active_run() is None
    assert client.get_run(ml.info.run_id).data.tags["greenprint.run_id"] == run.id

    other = client.create_run(
        client.get_experiment_by_name(
            "test_greenprint_outside_the_mlflow_run_and_by_run_id"
        ).experiment_id
    )
    with gp.track("by-id", ledger=False, **FAST) as run2:
        gp_mlflow.autolog(run2, run_id=other.info.run_id, client=client, every_flush=False)
    assert client.get_run(other.info.run_id).data.tags["greenprint.name"] == "by-id"


def test_log_run_from_the_ledger_and_log_report(
    client: mlflow.MlflowClient, tmp_path: Path
) -> None:
    db = tmp_path / "gp.db"
    for lr in (0.1, 0.01):
        with gp.track(f"lr{lr}", study="sweep", ledger=db, params={"lr": lr}, **FAST) as run:
            run.log(accuracy=1 - lr)
    records = gp.Ledger(db).runs(study="sweep")
    with mlflow.start_run() as ml:
        for record in records:
            with mlflow.start_run(nested=True):
                gp_mlflow.log_run(record)
        paths = gp_mlflow.log_report("sweep", db)
    assert paths == ["greenprint/report/report.html", "greenprint/report/report.json"]
    local = client.download_artifacts(ml.info.run_id, "greenprint/report", str(tmp_path / "dl"))
    report = json.loads((Path(local) / "report.json").read_text())
    assert {row["name"] for row in report["runs"]} == {"lr0.1", "lr0.01"}
    children = client.search_runs(
        [ml.info.experiment_id], f"tags.mlflow.parentRunId = '{ml.info.run_id}'"
    )
    assert {c.data.tags["greenprint.run_id"] for c in children} == {r.id for r in records}


def test_bad_input_is_a_clear_greenprint_error(client: mlflow.MlflowClient, tmp_path: Path) -> None:
    with gp.track("x", ledger=False, **FAST) as run:
        with pytest.raises(ConfigError, match="no active MLflow run"):
            gp_mlflow.autolog(run)
        with pytest.raises(ConfigError, match="no MLflow run 'nope'"):
            gp_mlflow.autolog(run, run_id="nope")
        with mlflow.start_run():
            with pytest.raises(ConfigError, match="running greenprint run"):
                gp_mlflow.autolog("not a run")  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match="MlflowClient"):
                gp_mlflow.autolog(run, client="sqlite:///x.db")
            with pytest.raises(ConfigError, match="has ended"):
                gp_mlflow.log_run(run)  # still running
    with mlflow.start_run():
        with pytest.raises(ConfigError, match="already ended"):
            gp_mlflow.autolog(run)
        with pytest.raises(ConfigError, match="not started"):
            gp_mlflow.autolog(gp.track("later", ledger=False))
        led = gp.Ledger(tmp_path / "closed.db")
        led.close()
        with pytest.raises(gp.LedgerError):
            gp_mlflow.log_report("s", led)


def test_a_log_racing_the_runs_end_is_the_documented_error_not_a_crash(
    client: mlflow.MlflowClient,
) -> None:
    """``logger.log()`` from a training thread while the run stops: its check of the run's end
    could pass just before the stop shut the writer down; it then raised the executor's
    RuntimeError ('cannot schedule new futures after shutdown') into the training. The check
    is now made under the writer's lock: the ConfigError ``log()`` documents for an ended run.
    The interleaving is forced by calling the step that writes, after the stop."""
    with mlflow.start_run():
        with gp.track("racing", ledger=False, meters=ConstantPowerMeters(), **FAST) as run:
            logger = gp_mlflow.autolog(run, every_flush=False)
            logger.log(step=1)  # the writer thread exists
        with pytest.raises(gp.ConfigError, match="has ended"):
            logger._log_figures(2, fresh=True)  # what log() runs, reached after the stop
