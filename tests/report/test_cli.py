"""`greenprint report`: success, and every bad input as one line with exit status 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.cli import main

from .conftest import T0, Spec, add_run


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("greenprint: error: ")
    return lines[0]


def test_report_writes_the_formats_asked(study_ledger, tmp_path, capsys):
    path, spec = study_ledger
    out = tmp_path / "out"
    rc = main(
        [
            "report",
            "--ledger",
            str(path),
            "--study",
            "sweep",
            "--format",
            "json",
            "--format",
            "md",
            "--out",
            str(out),
            "--no-plots",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"{spec.trials} trials" in printed and str(out / "report.json") in printed
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]
    data = json.loads((out / "report.json").read_text())
    assert data["metric"] == "accuracy" and data["price_tag"]["total"]["runs"] == spec.runs


def test_metric_mode_and_final_options(study_ledger, tmp_path):
    path, spec = study_ledger
    out = tmp_path / "out"
    final = spec.ids[1]
    assert (
        main(
            [
                "report",
                "--ledger",
                str(path),
                "--format",
                "json",
                "--out",
                str(out),
                "--metric",
                "accuracy",
                "--mode",
                "min",
                "--final",
                final[:6],
            ]
        )
        == 0
    )
    data = json.loads((out / "report.json").read_text())
    assert data["mode"] == "min" and data["price_tag"]["final"]["run_id"] == final


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study", "nope"], "no study 'nope' in ledger"),
        (["--format", "pdf"], "unknown report format 'pdf'"),
        (["--metric", "loss"], "no run of study 'sweep' logged a value of metric 'loss'"),
        (["--final", "zzzzzzzz"], "no run with id 'zzzzzzzz'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(study_ledger, tmp_path, capsys, args, message):
    path, _ = study_ledger
    out = tmp_path / "out"
    rc = main(["report", "--ledger", str(path), "--out", str(out), *args])
    assert rc == 2
    assert message in _error_line(capsys)
    assert not out.exists()  # bad input is caught before anything is written


def test_unknown_study_lists_the_known_ones(study_ledger, capsys, tmp_path):
    path, _ = study_ledger
    assert main(["report", "--ledger", str(path), "--study", "x", "--out", str(tmp_path)]) == 2
    assert "; its studies: 'sweep'" in _error_line(capsys)


def test_missing_ledger_is_not_created(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--ledger", "missing.db", "--study", "s"]) == 2
    assert "no ledger at" in _error_line(capsys)
    assert main(["report", "--study", "s"]) == 2  # the configured default, ./greenprint.db
    _error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == []


def test_empty_study_and_no_metric(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    gp.Ledger(empty).close()
    assert main(["report", "--ledger", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "holds no runs" in _error_line(capsys)
    assert main(["report", "--ledger", str(empty), "--study", "s", "--out", str(tmp_path)]) == 2
    assert "the ledger is empty" in _error_line(capsys)
    led = gp.Ledger(tmp_path / "nometric.db")
    add_run(led, Spec(), name="quiet", start=T0)
    led.close()
    args = ["report", "--ledger", str(tmp_path / "nometric.db"), "--metric", "accuracy"]
    assert main([*args, "--out", str(tmp_path)]) == 2  # a metric asked for must be logged
    assert "logged a value of metric 'accuracy'" in _error_line(capsys)


def test_unwritable_output_directory(study_ledger, tmp_path, capsys):
    path, _ = study_ledger
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    assert main(["report", "--ledger", str(path), "--out", str(blocker / "sub")]) == 2
    assert "is under file" in _error_line(capsys)
    assert main(["report", "--ledger", str(path), "--out", str(blocker)]) == 2
    assert "not a directory" in _error_line(capsys)
    assert blocker.read_text() == "keep me"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["report", "--ledger", str(path), "--out", str(locked / "o")]) == 2
        assert "not writable" in _error_line(capsys)


def test_an_infinite_score_is_read_as_no_score_with_a_note(tmp_path, capsys):
    """A diverged training's last value is infinite: the report is written (it refused the
    whole study with an error), the run has no score and a note names it."""
    led, spec = gp.Ledger(tmp_path / "l.db"), Spec()
    add_run(led, spec, name="diverged", score=float("inf"), start=T0)
    add_run(led, spec, name="fine", score=0.7, start=T0 + 20)
    led.close()
    out = tmp_path / "o"
    assert main(["report", "--ledger", str(tmp_path / "l.db"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "('diverged') ended with an infinite 'accuracy'" in text


def test_report_through_a_real_subprocess(study_ledger, tmp_path):
    path, _ = study_ledger
    exe = Path(sys.executable).with_name("greenprint")
    done = subprocess.run(
        [str(exe), "report", "--ledger", str(path), "--format", "html", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.html").read_text().count("<svg") == 5
    bad = subprocess.run(
        [str(exe), "report", "--ledger", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
