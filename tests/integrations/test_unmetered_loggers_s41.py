"""A run with no energy meter logs no energy and no CO2-eq to the trackers: unknown, never 0.

``gp.track(..., meters=[])`` records no energy (``RunRecord.energy_recorded`` false); until
2026-12-06 MLflow, W&B, TensorBoard and Prometheus were given 0 kWh and 0 kg for it. Each
tracker is the real library, as its own tests set it up: the metric is absent (and the run's
``energy`` tag says why), its duration still there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import greenprint as gp
from greenprint import prometheus

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
ENERGY = {"greenprint/energy_kwh", "greenprint/emissions_kg", "greenprint/power_w"}
UNKNOWN = "unknown (no energy meter)"


def test_mlflow_leaves_the_energy_out_and_tags_it_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow = pytest.importorskip("mlflow")
    from greenprint.integrations import mlflow as gp_mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("nometer", artifact_location=str(tmp_path / "art"))
    ml = client.create_run(experiment)
    with gp.track("probe", ledger=tmp_path / "gp.db", meters=[], **FAST) as run:
        logger = gp_mlflow.autolog(run, client=client, run_id=ml.info.run_id)
        at_step = logger.log(step=1)
    assert not ENERGY & set(at_step)
    data = client.get_run(ml.info.run_id).data
    assert not ENERGY & set(data.metrics)  # no 0 kWh in the runs table
    assert data.metrics["greenprint/duration_s"] == pytest.approx(run.duration_s)
    assert data.tags["greenprint.energy"] == UNKNOWN


def test_wandb_offline_summary_has_no_energy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DISABLE_GIT": "true",
    }.items():
        monkeypatch.setenv(key, value)
    wandb = pytest.importorskip("wandb")
    from greenprint.integrations import wandb as gp_wandb
    from integrations.test_wandb import _read_run

    settings = wandb.Settings(console="off", x_disable_stats=True)
    with (
        wandb.init(project="gp", name="probe", dir=str(tmp_path), settings=settings) as wb,
        gp.track("probe", ledger=tmp_path / "gp.db", meters=[], **FAST) as run,
    ):
        logger = gp_wandb.autolog(run)
        wb.log({"loss": 1.0, **logger.figures()}, step=0)
    history, summary = _read_run(Path(wb.dir).parent)
    assert not ENERGY & {key for row in history for key in row}
    assert not ENERGY & set(summary)
    assert summary["greenprint/duration_s"] == pytest.approx(run.duration_s)
    assert summary["greenprint/energy"] == UNKNOWN


def test_tensorboard_writes_no_energy_scalar(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("torch")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from greenprint.integrations import tensorboard as gp_tensorboard

    logdir = tmp_path / "tb"
    with (
        SummaryWriter(str(logdir)) as writer,
        gp.track("probe", ledger=tmp_path / "gp.db", meters=[], **FAST) as run,
    ):
        gp_tensorboard.autolog(run, writer).log(step=1)
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert "greenprint/duration_s" in scalars and not ENERGY & scalars
    (provenance,) = events.Tensors("greenprint/provenance/text_summary")
    assert f"| energy | {UNKNOWN} |" in provenance.tensor_proto.string_val[0].decode()


def test_prometheus_textfile_has_no_energy_or_emissions_series(tmp_path: Path) -> None:
    with gp.track("probe", ledger=False, meters=[]) as run:
        run._sample()
        path = prometheus.write_textfile(tmp_path, filename="probe.prom")
        text = path.read_text()
    series = [line for line in text.splitlines() if run.id in line]
    assert [line.split("{")[0] for line in series] == ["greenprint_run_duration_seconds"]
    # a metered run beside it still has its CO2-eq series, 0 g before its first sample
    with gp.track("metered", ledger=False) as metered:
        assert f'greenprint_emissions_grams_total{{run_id="{metered.id}"' in prometheus.render()


def test_a_ledger_record_has_no_energy_figure_and_says_unknown(tmp_path: Path) -> None:
    from greenprint.integrations._loggers import provenance_tags, total_figures

    with gp.track("probe", ledger=tmp_path / "gp.db", meters=[]):
        pass
    (record,) = gp.Ledger(tmp_path / "gp.db").runs()
    assert set(total_figures(record)) == {"greenprint/duration_s"}
    assert provenance_tags(record)["greenprint.energy"] == UNKNOWN


def test_lightning_logs_no_energy_to_its_loggers(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("lightning")
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from integrations._lightning_kit import lightning_kit

    kit = lightning_kit()
    callback = kit["Callback"]("probe", ledger=tmp_path / "gp.db", meters=[], **FAST)

    csv = CSVLogger(str(tmp_path), name="csv")
    trainer = pl.Trainer(
        accelerator="cpu",
        callbacks=[callback],
        logger=csv,
        max_epochs=2,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(kit["Regressor"](), kit["train"]())
    header = Path(csv.log_dir, "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train_loss" in header
    assert not [name for name in header if name.startswith("greenprint/")]
    assert not [name for name in trainer.callback_metrics if name.startswith("greenprint/")]
    assert callback.run.status == "finished" and not callback.run.record.energy_recorded
    # the epochs' progress predicts the time only: until session 43 a predicted 0 kWh and 0 kg
    # went to the ledger (greenprint.predicted_energy_kwh...), their 0-wide intervals read by
    # the report as holding the run's energy
    run = callback.run
    names = {point.name for point in run.record.metrics}
    assert "greenprint.predicted_duration_s" in names
    assert not [name for name in names if name.startswith("greenprint.predicted_e")]
    assert run.predicted_energy_kwh is None and run.predicted_emissions_kg is None
    assert run.predicted_duration_s is not None
    # and the prediction itself holds no energy or CO2-eq (it held 0 with a 0-wide interval)
    for prediction in (run.prediction, run.first_prediction):
        assert prediction.energy_kwh is None and prediction.emissions_kg is None


def test_a_rank_of_a_node_with_no_meter_logs_no_zero_share(tmp_path: Path) -> None:
    """Under DDP a rank other than its node's first records a part with no meter of its own.
    Of a metered node it reads as metered, its share 0 of a known figure; of a node with
    ``meters=[]`` it had the same stand-in, so each rank logged a 0 share (Lightning summed
    them to 0 kWh over ``sync_dist``; Hugging Face put 0 in its logs). Now it has no meter,
    as its node: no figures, energy unknown."""
    from greenprint.integrations._dl import LiveFigures, NoMeters, energy_metered, rank_meters

    assert isinstance(rank_meters(None), NoMeters)  # the node's default meters: metered
    for node_meters, metered in ((None, True), ([], False)):
        with gp.track("rank1", ledger=tmp_path / "gp.db", meters=rank_meters(node_meters)) as run:
            assert energy_metered(run) is metered
            figures = LiveFigures(run).read()
        assert (set(figures) >= {"energy_kwh", "power_w"}) is metered
        assert not run.record.energy_recorded  # no energy of its own in either case


def test_optuna_user_attrs_say_none_for_the_energy_of_a_trial_with_no_meter(
    tmp_path: Path,
) -> None:
    """Optuna's dashboard shows a trial's user attributes: 0.0 kWh read as measured."""
    optuna = pytest.importorskip("optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="nometer")
    for meters in ([], None):  # no meter, then the machine's
        extra = {"meters": meters} if meters is not None else {}
        cb = GreenprintCallback(ledger=tmp_path / "gp.db", **extra, **FAST)
        study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1)), n_trials=1, callbacks=[cb])
    unmetered, metered = study.trials
    assert unmetered.user_attrs["energy_kwh"] is None
    assert unmetered.user_attrs["emissions_kg"] is None
    assert metered.user_attrs["energy_kwh"] > 0.0
    run = gp.Ledger(tmp_path / "gp.db").run(unmetered.user_attrs["greenprint_run_id"])
    assert not run.energy_recorded
