"""`greenprint demo`, reduced (6 trials of 4 epochs, 2 learning-curve fractions), end to end."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.cli import main

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.mark.slow
def test_reduced_demo_end_to_end(tmp_path):
    out = tmp_path / "report"
    exe = Path(sys.executable).with_name("greenprint")
    done = subprocess.run(
        [
            str(exe),
            "demo",
            "--out",
            str(out),
            "--trials",
            "6",
            "--epochs",
            "4",
            "--fractions",
            "0.25,1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("greenprint demo: done") :]
    for label in (
        "best score",
        "whole study",
        "final model",
        "measured",
        "report",
        "ledger",
        "took",
    ):
        assert f"  {label}" in summary
    assert "the whole study cost" in summary

    (ledger_path,) = out.glob("demo-ledger-*.db")
    assert str(ledger_path) in summary
    runs = gp.Ledger(ledger_path, create=False).runs(study="digits-demo")
    names = [r.name for r in runs]
    assert names[:2] == ["baseline-majority", "baseline-logreg"]  # baselines first
    trials = [r for r in runs if r.name.startswith("trial-")]
    assert len(trials) == 6
    assert {r.params["model"] for r in trials} == {"mlp", "cnn"}
    pruned = [r for r in trials if r.status == "pruned"]
    assert pruned and all(r.energy_kwh > 0 and r.duration_s > 0 for r in pruned)
    assert all(r.status in ("finished", "pruned") for r in runs)
    # FPO from the counter: every trained run has it, a pruned trial only its epochs' share
    assert all(r.fpo and r.fpo > 0 for r in runs if r.name != "baseline-majority")
    for run in pruned:
        epochs = len([p for p in run.metrics if p.name == "val_accuracy"])
        assert epochs < run.params["epochs"]
        twin = [r for r in trials if r.params == run.params and r is not run]
        assert not twin or twin[0].fpo > run.fpo
    assert all(r.dataset_size == 1347 for r in trials)
    curve = [r for r in runs if r.name.startswith("learning-curve")]
    assert [r.params["fraction"] for r in curve] == [0.25, 1.0]
    assert curve[0].dataset_size < curve[1].dataset_size == 1347

    for name in ("report.html", "report.md", "report.tex", "report.json"):
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) == 5
    assert len(list((out / "figures").glob("*.pdf"))) == 5
    data = json.loads((out / "report.json").read_text())
    assert data["study"] == "digits-demo" and data["metric"] == "val_accuracy"
    # every run is a trial except the learning curve's (run_learning_curve gives them that role)
    assert data["price_tag"]["total"]["trials"] == len(runs) - len(curve)
    assert data["price_tag"]["by_role"]["learning-curve"]["runs"] == len(curve)
    assert data["price_tag"]["by_status"]["pruned"]["energy_kwh"] > 0
    assert {f["id"] for f in data["figures"]} == {
        "evp_trials",
        "evp_energy",
        "pareto",
        "learning_curve",
        "timeline",
    }


def test_demo_refuses_a_ledger_that_already_has_the_study(tmp_path, capsys):
    path = tmp_path / "l.db"
    led = gp.Ledger(path)
    led.start_run(gp.RunRecord(id="0123456789abcdef", name="old", study="digits-demo"))
    led.close()
    assert main(["demo", "--ledger", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a study 'digits-demo'" in err[0]
    assert [r.name for r in gp.Ledger(path, create=False).runs()] == ["old"]  # nothing lost


def test_plain_display_lines():
    from greenprint.demo._display import PlainDisplay

    stream = io.StringIO()
    show = PlainDisplay(stream)
    show.phase("random search", 12)
    show.status("ignored")
    show.done("trial-01 finished")
    show.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("random search (12)")
    assert lines[1].endswith(" 1/12 trial-01 finished")
