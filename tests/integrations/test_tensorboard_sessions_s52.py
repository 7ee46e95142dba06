"""TensorBoard's HParams session ends with the run's status, in the writer's own event file.

``add_hparams`` (torch's and tensorboardX's) ends every session ``STATUS_SUCCESS``: a failed run
read as a success in the HParams tab, which filters by status. It also writes through a second
writer on the same folder: tensorboardX names event files by the second, so a run of under a
second lost its first file, its totals and hparams with it (session 52, an outside check).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from integrations._frameworks import need

need("tensorboard", "tensorboard")
need("torch", "torch")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.integrations import tensorboard as gp_tensorboard  # noqa: E402
from tracking._meters import ConstantPowerMeters  # noqa: E402

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _session_status(logdir: Path) -> str:
    events = EventAccumulator(str(logdir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    end = plugin_data_pb2.HParamsPluginData.FromString(content)
    return api_pb2.Status.Name(end.session_end_info.status)


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (None, "STATUS_SUCCESS"),
        (RuntimeError, "STATUS_FAILURE"),
        (KeyboardInterrupt, "STATUS_UNKNOWN"),
    ],
)
def test_the_session_ends_with_the_runs_status(tmp_path: Path, raised, status: str) -> None:
    logdir = tmp_path / "tb"
    writer = SummaryWriter(str(logdir))
    try:
        with gp.track(
            "fit", ledger=False, params={"lr": 0.1}, meters=ConstantPowerMeters(), **FAST
        ) as run:
            gp_tensorboard.autolog(run, writer, every_flush=False)
            if raised is not None:
                raise raised("stopped")
    except (RuntimeError, KeyboardInterrupt):
        pass
    writer.close()
    assert _session_status(logdir) == status
    events = EventAccumulator(str(logdir))
    events.Reload()
    (total,) = events.Scalars("greenprint/energy_kwh")  # once: not twice by two writers
    assert total.value == pytest.approx(run.record.energy_kwh, rel=1e-6)


def test_a_tensorboardx_run_of_under_a_second_keeps_its_totals_and_hparams(tmp_path: Path) -> None:
    tensorboardx = pytest.importorskip("tensorboardX")
    logdir = tmp_path / "tbx"
    while time.time() % 1 > 0.5:  # early in a wall-clock second: the run ends inside it
        time.sleep(0.05)
    with (
        tensorboardx.SummaryWriter(str(logdir)) as writer,
        gp.track(
            "short", ledger=False, params={"lr": 0.1}, meters=ConstantPowerMeters(), **FAST
        ) as run,
    ):
        gp_tensorboard.autolog(run, writer, every_flush=False).log(step=0)
    events = EventAccumulator(str(logdir))
    events.Reload()
    steps = [(e.step, e.value) for e in events.Scalars("greenprint/energy_kwh")]
    assert [step for step, _ in steps] == [0, 1]
    assert steps[-1][1] == pytest.approx(run.record.energy_kwh, rel=1e-6)
    assert "greenprint/duration_s" in events.Tags()["scalars"]
    assert _session_status(logdir) == "STATUS_SUCCESS"


def test_a_name_with_a_bar_and_a_line_break_keeps_the_provenance_table_whole(
    tmp_path: Path,
) -> None:
    logdir = tmp_path / "tb"
    writer = SummaryWriter(str(logdir))
    with gp.track("a|b\nc", ledger=False, meters=ConstantPowerMeters(), **FAST) as run:
        gp_tensorboard.autolog(run, writer, every_flush=False)
    writer.close()
    events = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    events.Reload()
    table = events.Tensors("greenprint/provenance/text_summary")[0].tensor_proto.string_val[0]
    rows = table.decode().splitlines()
    assert "| name | a\\|b c |" in rows
    assert all(row.count("|") - row.count("\\|") == 3 for row in rows), rows
