"""`greenprint ledger ls|show|export`: output, and one-line errors (exit 2) that change nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import greenprint as gp
from greenprint import MetricPoint, PowerSample
from greenprint.cli import main
from greenprint.ledger import Ledger

from .conftest import make_record


@pytest.fixture
def ledger_path(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    now = time.time()
    with Ledger(path) as led:
        led.start_run(
            make_record(
                "aaaa1111000000000000000000000000",
                name="baseline",
                study="cifar",
                status="finished",
                started_at=now - 120,
                duration_s=95.5,
                energy_kwh=0.0123,
                emissions_kg=0.0047,
                params={"lr": 0.1, "optim": {"name": "adam"}},
                provenance={"cpu": "estimate:tdp:Intel Xeon (150 W)", "intensity": "table:DE"},
                metrics=(
                    MetricPoint("accuracy", 0.91, 1, now - 60),
                    MetricPoint("loss", float("nan"), 1, now - 60),
                ),
            )
        )
        led.flush("aaaa1111000000000000000000000000", samples=[PowerSample(now - 2, now - 1, 15.0)])
        led.start_run(
            make_record(
                "aaab2222000000000000000000000000",
                name="wide",
                study="cifar",
                status="failed",
                error="RuntimeError: boom",
                started_at=now - 100,
            )
        )
        led.start_run(
            make_record("cccc3333000000000000000000000000", name="mnist-1", study="mnist")
        )
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenprint: error: "), err
    return lines[0]


def test_ls_table(ledger_path, capsys):
    assert main(["ledger", "ls", "--ledger", str(ledger_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "STUDY", "NAME", "STATUS"]
    # three runs, and under them the line on the one still running (its row: its last flush)
    assert len(lines) == 5 and lines[4].startswith("running: DURATION, ENERGY, CO2-EQ and METRIC")
    assert lines[1].startswith("aaaa1111 ") and "baseline" in lines[1] and "finished" in lines[1]
    # 0.0123 kWh and 0.0047 kg, in the report's units
    assert "12.3 Wh" in lines[1] and "4.7 g" in lines[1] and "accuracy=0.91" in lines[1]
    assert "1m 36s" in lines[1]  # 95.5 s, as the price tag and the report write it


def test_ls_filters_and_json(ledger_path, capsys):
    assert main(["ledger", "ls", "--ledger", str(ledger_path), "--study", "cifar", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in items] == ["baseline", "wide"]
    assert items[0]["main_metric"] == {"name": "accuracy", "value": 0.91}
    argv = ["ledger", "ls", "--ledger", str(ledger_path), "--status", "failed", "--json"]
    assert main(argv) == 0
    assert [i["name"] for i in json.loads(capsys.readouterr().out)] == ["wide"]
    argv = [
        "ledger",
        "ls",
        "--ledger",
        str(ledger_path),
        "--status",
        "failed",
        "--status",
        "running",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wide" in out and "mnist-1" in out and "baseline" not in out


def test_ls_shows_a_score_not_the_epoch_every_training_logs(tmp_path, capsys):
    # Hugging Face trainings log `epoch` in every run: it was the study's METRIC column
    db = tmp_path / "hf.db"
    for k in range(3):
        with gp.track(f"t{k}", study="hf", ledger=db) as run:
            run.log(epoch=1.0, learning_rate=1e-4, step=1)
            if k:
                run.log(eval_accuracy=(0.8, 0.9)[k - 1], step=1)
    assert main(["ledger", "ls", "--ledger", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["main_metric"] for r in listed] == [
        {"name": "epoch", "value": 1.0},  # it logged nothing else
        {"name": "eval_accuracy", "value": 0.8},
        {"name": "eval_accuracy", "value": 0.9},
    ]


def test_ls_empty_ledger(tmp_path, capsys):
    Ledger(tmp_path / "empty.db").close()
    assert main(["ledger", "ls", "--ledger", str(tmp_path / "empty.db")]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no runs" in captured.err


def test_show_by_prefix(ledger_path, capsys):
    assert main(["ledger", "show", "aaaa", "--ledger", str(ledger_path)]) == 0
    out = capsys.readouterr().out
    assert "run aaaa1111000000000000000000000000" in out
    assert "estimate:tdp:Intel Xeon (150 W)" in out  # provenance
    assert "accuracy" in out and "loss" in out and "lr" in out
    assert main(["ledger", "show", "aaab", "--ledger", str(ledger_path)]) == 0
    assert "RuntimeError: boom" in capsys.readouterr().out


def test_show_json_has_everything(ledger_path, capsys):
    assert main(["ledger", "show", "aaaa1111", "--ledger", str(ledger_path), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)  # plain JSON: NaN written as a string
    assert item["provenance"]["intensity"] == "table:DE"
    assert item["params"]["optim"] == {"name": "adam"}
    assert [m["value"] for m in item["metrics"]] == [0.91, "NaN"]
    assert item["sample_count"] == 1 and item["status"] == "finished"


def test_export_csv(ledger_path, capsys):
    assert main(["ledger", "export", "--ledger", str(ledger_path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["baseline", "wide", "mnist-1"]
    first = rows[0]
    assert first["params.lr"] == "0.1" and first["params.optim.name"] == "adam"
    assert first["provenance.cpu"] == "estimate:tdp:Intel Xeon (150 W)"
    assert first["metric.accuracy"] == "0.91" and first["metric.loss"] == "nan"
    assert first["energy_kwh"] == "0.0123" and rows[1]["error"] == "RuntimeError: boom"
    assert rows[1]["params.lr"] == "" and rows[1]["git_commit"] == ""


def test_export_json_with_samples_to_a_file(ledger_path, tmp_path, capsys):
    out = tmp_path / "export.json"
    argv = [
        "ledger",
        "export",
        "--ledger",
        str(ledger_path),
        "--format",
        "json",
        "--study",
        "cifar",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "wrote 2 runs" in capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["schema_version"] == 6
    assert [r["name"] for r in data["runs"]] == ["baseline", "wide"]
    assert data["runs"][0]["samples"][0]["cpu_w"] == 15.0
    assert data["runs"][0]["metrics"][0]["name"] == "accuracy"


def test_export_refuses_to_overwrite_the_ledger(ledger_path, capsys):
    before = digest(ledger_path)
    argv = ["ledger", "export", "--ledger", str(ledger_path), "--out", str(ledger_path)]
    assert main(argv) == 2
    assert "the ledger itself" in one_error_line(capsys)
    assert digest(ledger_path) == before


def test_export_to_an_unwritable_place(ledger_path, capsys):
    argv = ["ledger", "export", "--ledger", str(ledger_path), "--out", "/proc/gp-export.csv"]
    assert main(argv) == 2
    assert "cannot write" in one_error_line(capsys)


@pytest.mark.parametrize("sub", [["ls"], ["show", "aaaa"], ["export"]])
def test_missing_ledger_is_one_line_and_not_created(tmp_path, capsys, sub):
    missing = tmp_path / "missing.db"
    assert main(["ledger", *sub, "--ledger", str(missing)]) == 2
    assert "no ledger at" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sub", [["ls"], ["show", "aaaa"], ["export"]])
def test_non_ledger_file_is_one_line_and_untouched(tmp_path, capsys, sub):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: eggs, milk\n")
    before = digest(notes)
    assert main(["ledger", *sub, "--ledger", str(notes)]) == 2
    assert "not a greenprint ledger" in one_error_line(capsys)
    assert digest(notes) == before and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_directory_ledger_is_one_line(tmp_path, capsys):
    assert main(["ledger", "ls", "--ledger", str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys)


def test_newer_schema_is_one_line_and_untouched(ledger_path, capsys):
    engine = sa.create_engine(f"sqlite:///{ledger_path}")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (7, 0, '9.0.0')"))
    engine.dispose()
    before = digest(ledger_path)
    assert main(["ledger", "ls", "--ledger", str(ledger_path)]) == 2
    assert "upgrade greenprint" in one_error_line(capsys)
    assert digest(ledger_path) == before


def test_unknown_study_and_run(ledger_path, capsys):
    assert main(["ledger", "ls", "--ledger", str(ledger_path), "--study", "imagenet"]) == 2
    line = one_error_line(capsys)
    assert "no study 'imagenet'" in line and "'cifar', 'mnist'" in line
    assert main(["ledger", "export", "--ledger", str(ledger_path), "--study", "imagenet"]) == 2
    one_error_line(capsys)
    assert main(["ledger", "show", "zzzz", "--ledger", str(ledger_path)]) == 2
    assert "no run with id 'zzzz'" in one_error_line(capsys)
    assert main(["ledger", "show", "aaa", "--ledger", str(ledger_path)]) == 2
    assert "at least 4" in one_error_line(capsys)


def test_usage_errors_exit_2(ledger_path, capsys):
    assert main(["ledger", "ls", "--ledger", str(ledger_path), "--status", "exploded"]) == 2
    assert main(["ledger", "export", "--ledger", str(ledger_path), "--format", "xml"]) == 2
    assert main(["ledger", "show", "--ledger", str(ledger_path)]) == 2
    assert main(["ledger", "frobnicate"]) == 2


def test_default_ledger_from_environment_and_cwd(ledger_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREENPRINT_LEDGER", str(ledger_path))
    assert main(["ledger", "ls"]) == 0
    assert "baseline" in capsys.readouterr().out
    monkeypatch.delenv("GREENPRINT_LEDGER")
    ledger_path.rename(tmp_path / "greenprint.db")
    for suffix in ("-wal", "-shm"):
        Path(str(ledger_path) + suffix).unlink(missing_ok=True)
    assert main(["ledger", "ls"]) == 0
    assert "baseline" in capsys.readouterr().out


def test_through_a_real_subprocess(ledger_path, tmp_path):
    exe = Path(sys.executable).with_name("greenprint")
    ok = subprocess.run(
        [str(exe), "ledger", "ls", "--ledger", str(ledger_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)) == 3
    notes = tmp_path / "notes.txt"
    notes.write_text("not a ledger")
    bad = subprocess.run(
        [str(exe), "ledger", "ls", "--ledger", str(notes)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("greenprint: error: ") and len(bad.stderr.splitlines()) == 1
    assert notes.read_text() == "not a ledger"


def test_show_lists_each_meter_detected_on_a_line_of_its_own(tmp_path, capsys):
    """A real run's hardware holds the meters detected at its start: one line each, usable or
    not and why, the fix under an unusable one (it was one list of dicts on one line)."""
    import greenprint as gp

    with gp.track("one", ledger=tmp_path / "l.db") as run:
        pass
    assert main(["ledger", "show", run.id[:8], "--ledger", str(tmp_path / "l.db")]) == 0
    out = capsys.readouterr().out
    meters = run.record.hardware["meters"]
    assert meters and any(m["usable"] for m in meters)
    assert "[{" not in out
    for meter in meters:
        state = "usable" if meter["usable"] else "not usable"
        assert f"meter {meter['name']}" in out
        line = next(ln for ln in out.splitlines() if ln.split()[:2] == ["meter", meter["name"]])
        assert line.split(None, 2)[2].startswith(state)
