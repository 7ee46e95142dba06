"""Weights & Biases: a greenprint run's figures in a real W&B run, offline, read back from disk.

W&B runs offline here (``mode="offline"``, no network: wandb-core talks to this process over a
Unix socket only). Nothing offline reads a run back (``wandb.Api`` needs the server), so the test
reads the run's ``.wandb`` file: W&B's LevelDB-style log of ``wandb_internal_pb2.Record``
protobufs, as ``wandb sync`` reads it.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint import ConfigError
from integrations._frameworks import need_installed
from tracking._meters import ConstantPowerMeters

need_installed("wandb", "wandb")

#: W&B offline and quiet while this module's tests run (set at import, they stayed in every
#: xdist worker's environment, which collects every module, for all later tests)
WANDB_ENV = {
    "WANDB_MODE": "offline",
    "WANDB_SILENT": "true",
    "WANDB_ERROR_REPORTING": "false",  # no crash reports to Sentry
    "WANDB_DISABLE_GIT": "true",
}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import W&B when this module's tests run, not at collection, in W&B's offline settings.

    Every pytest-xdist worker collects every module; W&B takes about 1 s of CPU to import. The
    names are this module's globals, as a top-level import would make them.
    """
    global wandb, gp_wandb
    with pytest.MonkeyPatch.context() as env:
        for key, value in WANDB_ENV.items():
            env.setenv(key, value)
        import wandb

        from greenprint.integrations import wandb as gp_wandb

        yield


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
_BLOCK = 32768  # the log's block size; a record header is 7 bytes


def _records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``.wandb`` file (LevelDB log format after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B"
    pos, parts = 7, []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's zero-filled trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        parts.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def _read_run(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A W&B run's history rows and final summary, once wandb-core has written its exit."""
    (log,) = run_dir.glob("*.wandb")
    deadline = time.monotonic() + 30
    while True:  # wandb-core writes the file on its own; finish() may return before it is done
        history, summary, ended = [], {}, False
        for record in _records(log):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "summary":
                summary.update({_key(u): json.loads(u.value_json) for u in record.summary.update})
            elif kind == "exit":
                ended = True
        if ended or time.monotonic() > deadline:
            return history, summary
        time.sleep(0.05)


def _init(tmp_path: Path, name: str) -> Any:
    return wandb.init(
        project="greenprint-test",
        name=name,
        mode="offline",
        dir=str(tmp_path),
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


def test_figures_at_the_users_steps_totals_in_summary(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with (
        _init(tmp_path, "resnet") as wb,
        gp.track(
            "resnet", study="cifar", ledger=db, role="trial", meters=ConstantPowerMeters(), **FAST
        ) as run,
    ):
        logger = gp_wandb.autolog(run)
        for epoch in range(3):
            run._sample()  # as an epoch of work would: the meters move on
            wb.log({"loss": 1.0 / (epoch + 1), **logger.figures()}, step=epoch)
        logged = logger.log(step=3)
        run.log(loss=0.25)
    run_dir = Path(wb.dir).parent
    history, summary = _read_run(run_dir)
    rows = [row for row in history if "greenprint/energy_kwh" in row]
    assert [row["_step"] for row in rows] == [0, 1, 2, 3]
    assert [row.get("loss") for row in rows] == [1.0, 0.5, pytest.approx(1 / 3), None]
    energy = [row["greenprint/energy_kwh"] for row in rows]
    assert energy == sorted(energy)
    assert all(row["greenprint/cpu_energy_kwh"] > 0 for row in rows)
    assert "greenprint/fpo" not in rows[0]  # unknown FPO is not logged as 0

    record = gp.Ledger(db).runs(study="cifar")[0]
    # the row still open when the run ended (step 3) got the totals
    assert logged["greenprint/energy_kwh"] <= energy[-1] == pytest.approx(record.energy_kwh)
    assert summary["greenprint/energy_kwh"] == pytest.approx(record.energy_kwh)
    assert summary["greenprint/emissions_kg"] == pytest.approx(record.emissions_kg)
    assert summary["greenprint/duration_s"] == pytest.approx(record.duration_s)
    assert summary["greenprint/power_w"] == pytest.approx(55.0, rel=0.2)  # half of 110 W
    assert summary["greenprint/run_id"] == run.id
    assert summary["greenprint/status"] == "finished"
    assert summary["greenprint/role"] == "trial"
    assert summary["greenprint/provenance"]["cpu"] == "test:constant"
    # numbers, not the text of tags (session 52): the runs table filters and plots them
    assert summary["greenprint/pue"] == record.pue == 1.0
    assert summary["greenprint/intensity_g_per_kwh"] == record.intensity_g_per_kwh
    assert isinstance(summary["greenprint/intensity_g_per_kwh"], float)
    stored = json.loads((Path(wb.dir) / gp_wandb.RECORD_FILE).read_text())
    assert stored["id"] == run.id and stored["status"] == "finished"


def test_a_failed_run_and_log_run_from_the_ledger(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    with _init(tmp_path, "crash") as wb:
        with pytest.raises(RuntimeError, match="diverged"):
            with gp.track("crash", study="s", ledger=db, **FAST) as run:
                gp_wandb.autolog(run, wb)
                raise RuntimeError("diverged")
    _, summary = _read_run(Path(wb.dir).parent)
    assert summary["greenprint/status"] == "failed"
    assert summary["greenprint/duration_s"] == pytest.approx(run.duration_s)

    (record,) = gp.Ledger(db).runs(study="s")
    with _init(tmp_path, "later") as wb2:
        gp_wandb.log_run(record)
    _, summary2 = _read_run(Path(wb2.dir).parent)
    assert summary2["greenprint/run_id"] == record.id
    assert summary2["greenprint/energy_kwh"] == pytest.approx(record.energy_kwh)


def test_wandb_finished_first_warns_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with gp.track("outer", ledger=False, **FAST) as run:
        with _init(tmp_path, "inner"):
            gp_wandb.autolog(run)
    assert run.status == "finished"
    assert "finished before greenprint run" in caplog.text


def test_bad_input_is_a_clear_greenprint_error(tmp_path: Path) -> None:
    with gp.track("x", ledger=False, **FAST) as run:
        assert wandb.run is None
        with pytest.raises(ConfigError, match=r"no W&B run: call wandb.init\(\)"):
            gp_wandb.autolog(run)
        with pytest.raises(ConfigError, match="must be a W&B run"):
            gp_wandb.autolog(run, "my-run")
        with _init(tmp_path, "bad") as wb:
            with pytest.raises(ConfigError, match="running greenprint run"):
                gp_wandb.autolog(object())  # type: ignore[arg-type]
            with pytest.raises(ConfigError, match="has ended"):
                gp_wandb.log_run(run)  # still running
        with pytest.raises(ConfigError, match="has finished"):
            gp_wandb.autolog(run, wb)
    with _init(tmp_path, "after") as wb:
        with pytest.raises(ConfigError, match="already ended"):
            gp_wandb.autolog(run, wb)
        with pytest.raises(ConfigError, match="not started"):
            gp_wandb.autolog(gp.track("later", ledger=False), wb)
