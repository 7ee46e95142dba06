"""TensorBoard: a greenprint run's figures in a real event file, read back with TensorBoard's own
``EventAccumulator`` (the reader behind its dashboards) and its HParams plugin's data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from integrations._frameworks import need

need("tensorboard", "tensorboard")
need("torch", "torch")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint import ConfigError  # noqa: E402
from greenprint.integrations import tensorboard as gp_tensorboard  # noqa: E402
from tracking._meters import ConstantPowerMeters  # noqa: E402

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _events(logdir: Path) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_scalars_per_step_totals_and_hparams(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    db = tmp_path / "gp.db"
    with (
        SummaryWriter(str(logdir)) as writer,
        gp.track(
            "resnet",
            study="cifar",
            ledger=db,
            params={"lr": 0.1, "layers": [1, 2]},
            meters=ConstantPowerMeters(),
            **FAST,
        ) as run,
    ):
        gp_tensorboard.autolog(run, writer)
        time.sleep(0.5)  # a few flushes: scalars written from the sampler thread
    record = gp.Ledger(db).runs(study="cifar")[0]

    events = _events(logdir)
    scalars = events.Tags()["scalars"]
    assert {
        "greenprint/energy_kwh",
        "greenprint/emissions_kg",
        "greenprint/power_w",
        "greenprint/cpu_energy_kwh",
        "greenprint/ram_energy_kwh",
        "greenprint/duration_s",
    } <= set(scalars)
    assert "greenprint/fpo" not in scalars  # unknown FPO is not written as 0
    energy = events.Scalars("greenprint/energy_kwh")
    steps = [e.step for e in energy]
    assert len(steps) >= 3 and steps == sorted(steps) == list(range(len(steps)))
    values = [e.value for e in energy]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(record.energy_kwh, rel=1e-6)  # float32 in the file
    (duration,) = events.Scalars("greenprint/duration_s")
    assert duration.step == steps[-1] and duration.value == pytest.approx(record.duration_s)
    (power,) = [e for e in events.Scalars("greenprint/power_w") if e.step == steps[-1]]
    assert power.value == pytest.approx(55.0, rel=0.2)  # half of the constant 110 W

    # add_hparams: the run's params (a list as text) and the totals as its metrics
    plugin = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(0.1)
    assert hparams["layers"].string_value == "[1, 2]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/experiment"])
    metrics = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"greenprint/energy_kwh", "greenprint/emissions_kg"} <= metrics

    text = events.Tensors("greenprint/provenance/text_summary")[0]
    table = text.tensor_proto.string_val[0].decode()
    assert "| provenance.cpu | test:constant |" in table
    assert f"| run_id | {run.id} |" in table


def test_steps_of_your_own_and_a_failed_run(tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    writer = SummaryWriter(str(logdir))
    with pytest.raises(RuntimeError, match="diverged"):
        with gp.track("crash", ledger=False, meters=ConstantPowerMeters(), **FAST) as run:
            logger = gp_tensorboard.autolog(run, writer, every_flush=False, hparams={"bs": 32})
            for epoch in (0, 5):
                logger.log(step=epoch)
            raise RuntimeError("diverged")
    writer.close()
    events = _events(logdir)
    assert [e.step for e in events.Scalars("greenprint/energy_kwh")] == [0, 5, 6]
    table = events.Tensors("greenprint/provenance/text_summary")[0].tensor_proto.string_val[0]
    assert b"| status | failed |" in table


def test_bad_input_is_a_clear_greenprint_error(tmp_path: Path) -> None:
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        with gp.track("x", ledger=False, **FAST) as run:
            with pytest.raises(ConfigError, match="SummaryWriter"):
                gp_tensorboard.autolog(run, str(tmp_path / "tb"))
            with pytest.raises(ConfigError, match="running greenprint run"):
                gp_tensorboard.autolog(writer, run)  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match="hparams must be a mapping"):
                gp_tensorboard.autolog(run, writer, hparams=[("lr", 0.1)])  # type: ignore[arg-type]
            logger = gp_tensorboard.autolog(run, writer)
            with pytest.raises(ConfigError, match="step must be a non-negative integer"):
                logger.log(step=-1)
        with pytest.raises(ConfigError, match="has ended"):
            logger.log()
        with pytest.raises(ConfigError, match="already ended"):
            gp_tensorboard.autolog(run, writer)
        with pytest.raises(ConfigError, match="not started"):
            gp_tensorboard.autolog(gp.track("later", ledger=False), writer)
