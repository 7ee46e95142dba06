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
        "final score",
        "whole study",
        "final model",
        "provenance",
        "report",
        "ledger",
        "took",
    ):
        assert f"  {label}" in summary
    assert "the whole study cost" in summary
    # the pruner comparison: the same search stopped two ways (tests/greener/test_pruner_demo.py)
    assert "  pruners        the same random search of 6 trials" in summary
    assert "CostAwarePruner (at equal FPO)" in summary

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
    # 1,797 digits: 20% held out for the final model's test, the rest split 75/25 train/val
    assert all(r.dataset_size == 1077 for r in trials)
    curve = [r for r in runs if r.name.startswith("learning-curve")]
    assert [r.params["fraction"] for r in curve] == [0.25, 1.0]
    assert curve[0].dataset_size < curve[1].dataset_size == 1077
    # roles as given: baselines, trials, learning curve, and the final retrain
    roles = {r.name: r.role for r in runs}
    assert roles["baseline-majority"] == roles["baseline-logreg"] == "baseline"
    assert {roles[r.name] for r in trials} == {"trial"}
    assert {roles[r.name] for r in curve} == {"learning-curve"}
    (final,) = [r for r in runs if r.role == "final"]
    assert final.name == "final-retrain"
    assert [r for r in runs if r.role != "greener"][-1] is final  # then the greener variants
    assert final.dataset_size == 1077 + 360  # retrained on training + validation data
    assert final.metric("val_accuracy") is None  # scored only on the held-out test split
    assert 0.5 < final.metric("test_accuracy") <= 1.0
    assert f"test_accuracy = {final.metric('test_accuracy'):.4f}" in summary
    # and the report states it too: the price tag's sentence and the compute statement
    md = (out / "report.md").read_text()
    assert f"scored test\\_accuracy = {final.metric('test_accuracy'):.4g} (not val" in md
    data_text = json.loads((out / "report.json").read_text())["compute_statement"]
    assert f"test_accuracy = {final.metric('test_accuracy'):.4g}) alone used" in data_text
    finished = [r for r in trials if r.status == "finished"]
    best = max(finished, key=lambda r: r.metric("val_accuracy"))
    assert final.params == best.params  # the best configuration of the search

    for name in ("report.html", "report.md", "report.tex", "report.json"):
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) == 6
    assert len(list((out / "figures").glob("*.pdf"))) == 6
    data = json.loads((out / "report.json").read_text())
    assert data["study"] == "digits-demo" and data["metric"] == "val_accuracy"
    # the search's trials only: not the baselines, the learning curve or the final retrain
    assert data["price_tag"]["total"]["trials"] == len(trials) == 6
    by_role = data["price_tag"]["by_role"]
    assert by_role["learning-curve"]["runs"] == len(curve)
    assert by_role["baseline"]["runs"] == 2 and by_role["final"]["runs"] == 1
    assert data["price_tag"]["final"]["name"] == "final-retrain"
    assert data["model_card"]["co2_eq_emissions"]["training_type"] == "pre-training"
    figures = {f["id"]: f for f in data["figures"]}
    for fid in ("evp_trials", "evp_energy"):  # one EVP curve per model family, baselines
        series = figures[fid]["panels"][0]["series"]
        labels = [s["label"] for s in series if s["role"].startswith("family")]
        assert [label.split(" ")[0] for label in labels] == ["mlp", "cnn"], labels
        baselines = [s for s in series if s["role"] == "baseline"]
        assert [s["label"].split(" ")[0] for s in baselines] == [
            "baseline-majority",
            "baseline-logreg",
        ]
        assert all(len(set(s["y"])) == 1 for s in baselines)  # horizontal
    pareto = figures["pareto"]["panels"][0]["series"]
    assert [s["role"] for s in pareto].count("baseline") == 2
    (star,) = [s for s in pareto if s["role"] == "final"]
    assert "final run's configuration" in star["label"]
    assert next(r for r in runs if r.id == star["run_ids"][0]).params == final.params
    assert data["price_tag"]["by_status"]["pruned"]["energy_kwh"] > 0
    assert {f["id"] for f in data["figures"]} == {
        "evp_trials",
        "evp_energy",
        "pareto",
        "learning_curve",
        "timeline",
        "greener",
    }
    # the greener variants of the best CNN: distilled, quantized, pruned, with break-even
    (greener,) = data["greener"]
    rows = {r["name"]: r for r in greener["rows"]}
    assert list(rows)[0] == "baseline" and rows["baseline"]["technique"] == "baseline"
    techniques = {r["technique"] for r in rows.values()}
    assert {"dynamic-int8", "static-int8", "prune-unstructured", "distilled"} <= techniques
    (student,) = [r for r in rows.values() if r["technique"] == "distilled"]
    assert (
        student["training_energy_kwh"] > 0
        and student["param_count"] < rows["baseline"]["param_count"]
    )
    assert greener["front"] and all(rows[n]["on_front"] for n in greener["front"])
    assert by_role["greener"]["runs"] == len([r for r in runs if r.role == "greener"])
    assert "  greener        best CNN variants, front:" in summary
    # each variant's line in the unit the trials' lines use, not "1.63e-05 Wh/1000 inferences"
    variants = [ln for ln in done.stdout.splitlines() if "per 1,000 inferences" in ln]
    assert len(variants) == len(rows) and not any("e-0" in ln for ln in variants), variants
    assert "Greener variants" in (out / "report.md").read_text()
    assert any(n.startswith("pruner comparison: ") for n in data["notes"])
    assert (
        "pruner comparison: the same random search of 6 trials" in (out / "report.md").read_text()
    )


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
