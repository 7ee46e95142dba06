"""Ledger merge: per-node SQLite files into one ledger (SQLite or a real PostgreSQL), idempotent.

The target is parametrised over both backends; the inputs are per-node SQLite files, as nodes
without a shared database write them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import MetricPoint, PowerSample
from greenprint.cli import main
from greenprint.ledger import Ledger, MergeConflictError, MergeSummary, _merge
from greenprint.ledger._fields import FIELD_KINDS
from greenprint.ledger._fs import filesystem_type, is_network_fs, warn_if_network_fs

from .conftest import make_record
from .fixtures.make_v1 import V1_PATH
from .fixtures.make_v2 import V2_PATH
from .test_store import full_record, same


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def node_file(path: Path, host: str, ids: list[str]) -> Path:
    """A node's ledger: finished runs with metrics and power samples."""
    with Ledger(path) as led:
        for i, run_id in enumerate(ids):
            t = 1_700_000_000.0 + i
            led.start_run(
                make_record(
                    run_id,
                    host=host,
                    status="finished",
                    started_at=t,
                    ended_at=t + 10,
                    heartbeat_at=t + 10,
                    energy_kwh=0.001 * (i + 1),
                    emissions_kg=0.0004 * (i + 1),
                )
            )
            led.flush(
                run_id,
                metrics=[MetricPoint("loss", 1.0 / (i + 1), 0, t + 1)],
                samples=[PowerSample(t, t + 5, 20.0 + i, None, 3.0, 300.0)],
            )
    return path


def snapshot(led: Ledger) -> list[tuple[gp.RunRecord, list[PowerSample]]]:
    return [(r, led.samples(r.id)) for r in led.runs()]


@pytest.fixture
def nodes(tmp_path: Path) -> tuple[Path, Path]:
    a = node_file(tmp_path / "node-a.db", "node-a", ["a0000001", "a0000002", "a0000003"])
    b = node_file(tmp_path / "node-b.db", "node-b", ["b0000001", "b0000002"])
    return a, b


def test_merge_copies_runs_metrics_and_samples(ledger_url, nodes):
    a, b = nodes
    with Ledger(ledger_url) as out:
        summary = out.merge(a, b)
        assert summary == MergeSummary(added=5, updated=0, unchanged=0, metrics=5, samples=5)
        merged = {r.id: r for r in out.runs()}
        for path in nodes:
            with Ledger(path, create=False) as node:
                for r in node.runs():
                    assert same(merged[r.id], r)
                    assert out.samples(r.id) == node.samples(r.id)


@pytest.mark.parametrize("chunk", [500, 1], ids=["by-id", "whole-target"])
def test_merge_twice_changes_nothing(ledger_url, nodes, chunk, monkeypatch):
    # chunk=1: more overlapping runs than 4 chunks, so the target is read in one pass
    monkeypatch.setattr(_merge, "_CHUNK", chunk)
    a, b = nodes
    with Ledger(ledger_url) as out:
        out.merge(a, b)
        before = snapshot(out)
        again = out.merge(b, a)
        assert again == MergeSummary(added=0, updated=0, unchanged=5, metrics=0, samples=0)
        out.merge_from(a)
        assert same(snapshot(out), before)


def test_every_column_is_copied(ledger_url, tmp_path):
    record = full_record()
    node = tmp_path / "node.db"
    with Ledger(node) as led:
        led.start_run(record)
        led.flush(record.id, samples=[PowerSample(1.0, 2.0, float("nan"), None, 1.5, 300.0)])
    with Ledger(ledger_url) as out:
        out.merge(node)
        got = out.run(record.id)
        for name in FIELD_KINDS:  # whatever columns the schema has, not a hand list
            assert same(getattr(got, name), getattr(record, name)), name
        assert same(got.metrics, record.metrics)
        assert same(out.samples(record.id), [PowerSample(1.0, 2.0, float("nan"), None, 1.5, 300.0)])
        # NaN in params and metrics is the same value on a second merge, not a conflict
        assert out.merge(node).unchanged == 1


def test_a_run_that_progressed_keeps_its_newest_state(ledger_url, tmp_path):
    live = tmp_path / "node.db"
    now = time.time()
    with Ledger(live) as led:
        led.start_run(make_record("c0ffee01", started_at=now - 20, heartbeat_at=now - 10))
        led.flush("c0ffee01", metrics=[MetricPoint("loss", 0.9, 0, now - 15)])
        led.flush("c0ffee01", samples=[PowerSample(now - 20, now - 10, 30.0, None, 2.0, 250.0)])
    early = tmp_path / "early-copy.db"
    with Ledger(live, create=False) as led, Ledger(early) as copy:
        copy.merge(led)  # a copy taken while the run was still running
    with Ledger(live, create=False) as led:
        led.flush(
            "c0ffee01",
            fields={"status": "finished", "ended_at": now, "heartbeat_at": now, "energy_kwh": 0.5},
            metrics=[MetricPoint("loss", 0.5, 1, now - 1)],
            samples=[PowerSample(now - 10, now, 31.0, None, 2.0, 250.0)],
        )
    with Ledger(ledger_url) as out:
        assert out.merge(early).added == 1
        assert out.run("c0ffee01").status == "running"
        summary = out.merge(live)
        assert (summary.added, summary.updated, summary.metrics, summary.samples) == (0, 1, 2, 2)
        run = out.run("c0ffee01")
        assert run.status == "finished" and run.energy_kwh == 0.5
        assert [p.value for p in run.metrics] == [0.9, 0.5]  # no duplicates
        assert [s.cpu_w for s in out.samples(run.id)] == [30.0, 31.0]
        # the older copy merged again (or in the same call, either order) changes nothing
        assert out.merge(early).unchanged == 1
        assert out.merge(early, live).unchanged == 1
        assert out.run("c0ffee01").status == "finished"


def test_conflict_names_the_runs_and_writes_nothing(ledger_url, nodes, tmp_path):
    a, _ = nodes
    rogue = tmp_path / "rogue.db"
    with Ledger(rogue) as led:
        led.start_run(make_record("a0000002", name="someone-else", status="finished"))
        led.start_run(make_record("d0000001", status="finished"))
    with Ledger(ledger_url) as out:
        out.merge(a)
        before = snapshot(out)
        with pytest.raises(MergeConflictError, match="a0000002") as info:
            out.merge(rogue)
        assert info.value.run_ids == ("a0000002",)
        assert "name" in str(info.value) and "nothing was written" in str(info.value)
        assert same(snapshot(out), before)  # not even the new run d0000001
        assert isinstance(info.value, gp.LedgerError)


def test_conflict_between_two_inputs(ledger_url, tmp_path):
    one = tmp_path / "one.db"
    two = tmp_path / "two.db"
    for path, energy in ((one, 0.1), (two, 0.2)):
        with Ledger(path) as led:
            led.start_run(make_record("e0000001", status="finished", energy_kwh=energy))
    with Ledger(ledger_url) as out:
        with pytest.raises(MergeConflictError, match="e0000001.*energy_kwh"):
            out.merge(one, two)
        assert out.runs() == []


def test_older_schema_inputs_are_migrated_in_a_copy(ledger_url, tmp_path):
    v1 = shutil.copy(V1_PATH, tmp_path / "v1.db")
    v2 = shutil.copy(V2_PATH, tmp_path / "v2.db")
    hashes = [digest(Path(v1)), digest(Path(v2))]
    with Ledger(ledger_url) as out:
        summary = out.merge(v1, v2)
        assert summary.added == len(out.runs()) > 0
        assert out.merge(v1, v2).unchanged == summary.added
        assert "process" in {r.scope for r in out.runs()}  # v1 runs gained v2's default
        assert {r.role for r in out.runs()} == {None}  # no stored role before v3
    assert [digest(Path(v1)), digest(Path(v2))] == hashes  # the inputs were not migrated


def test_refusals(tmp_path, nodes):
    a, _ = nodes
    with Ledger(a, create=False) as led:
        with pytest.raises(gp.ConfigError, match="into itself"):
            led.merge(a)
    with Ledger(":memory:") as mem:
        with pytest.raises(gp.ConfigError, match="memory"):
            mem.merge(a)
    with Ledger(tmp_path / "out.db") as out:
        with pytest.raises(gp.LedgerPathError, match="no ledger at"):
            out.merge(tmp_path / "missing.db")
        notes = tmp_path / "notes.txt"
        notes.write_text("not a ledger\n")
        with pytest.raises(gp.NotALedgerError, match="notes.txt"):
            out.merge(notes)
        assert out.runs() == []


def test_in_memory_ledger_as_input(tmp_path):
    with Ledger(":memory:") as mem, Ledger(tmp_path / "out.db") as out:
        mem.start_run(make_record("f0000001", status="finished"))
        mem.flush("f0000001", samples=[PowerSample(1.0, 2.0, 5.0, None, None, None)])
        assert out.merge(mem).added == 1
        assert out.samples("f0000001") == mem.samples("f0000001")


# ---------------------------------------------------------------------------------- CLI


def test_cli_merge(tmp_path, nodes, capsys):
    out = tmp_path / "all.db"
    assert main(["ledger", "merge", str(out), *map(str, nodes)]) == 0
    line = capsys.readouterr().out
    assert "5 runs added" in line and "0 already there" in line
    assert main(["ledger", "merge", str(out), *map(str, nodes)]) == 0
    assert "0 runs added, 0 updated, 5 already there" in capsys.readouterr().out


def test_cli_conflict_is_one_line_exit_2_and_no_output_file(tmp_path, nodes, capsys):
    a, _ = nodes
    rogue = tmp_path / "rogue.db"
    with Ledger(rogue) as led:
        led.start_run(make_record("a0000001", status="failed"))
    out = tmp_path / "all.db"
    assert main(["ledger", "merge", str(out), str(a), str(rogue)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("greenprint: error: cannot merge"), err
    assert "a0000001" in err[0]
    assert not out.exists()


def test_cli_merge_in_a_subprocess(tmp_path, nodes):
    out = tmp_path / "all.db"
    done = subprocess.run(
        [sys.executable, "-m", "greenprint", "ledger", "merge", str(out), *map(str, nodes)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with Ledger(out, create=False) as led:
        assert len(led.runs()) == 5


# ---------------------------------------------------------------------------------- NFS


MOUNTS = """\
sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,relatime,vers=4.2 0 0
/dev/sdb1 /shared/local ext4 rw 0 0
user@host:/data /mnt/my\\040drive fuse.sshfs rw 0 0
/dev/sdc1 /scratch lustre rw 0 0
"""


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/shared/team/greenprint.db", "nfs4", True),
        ("/shared/local/greenprint.db", "ext4", False),  # a local mount inside the NFS one
        ("/sharedother/greenprint.db", "ext4", False),  # a prefix of the name is not inside
        ("/mnt/my drive/greenprint.db", "fuse.sshfs", True),
        ("/scratch/x.db", "lustre", True),
        ("/home/me/greenprint.db", "ext4", False),
    ],
)
def test_filesystem_type_from_a_mount_table(mounts, path, fstype, network):
    assert filesystem_type(path, mounts=mounts) == fstype
    assert is_network_fs(filesystem_type(path, mounts=mounts)) is network


def test_network_filesystem_warned_once(mounts, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint.ledger._fs")
    path = "/shared/team/warn-once.db"
    assert warn_if_network_fs(path, mounts=mounts) is True
    assert warn_if_network_fs(path, mounts=mounts) is True
    warnings = [r for r in caplog.records if "network filesystem" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "nfs4" in message and "ledger merge" in message and "PostgreSQL" in message
    assert warn_if_network_fs("/home/me/x.db", mounts=mounts) is False


def test_no_mount_table_means_no_warning(tmp_path):
    assert filesystem_type(tmp_path / "x.db", mounts=tmp_path / "absent") is None
    assert warn_if_network_fs(tmp_path / "x.db", mounts=tmp_path / "absent") is False


def test_local_ledger_opens_without_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with Ledger(tmp_path / "local.db"):
        pass
    assert not [r for r in caplog.records if "network filesystem" in r.getMessage()]


def test_summary_is_a_frozen_record():
    summary = MergeSummary(added=1, updated=0, unchanged=0, metrics=0, samples=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.added = 2  # type: ignore[misc]
