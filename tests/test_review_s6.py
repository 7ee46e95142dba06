"""Issue 12, an outside review of session 6's changes: inputs built as users build them.

Each test here first failed on the code it checks (see the commit that fixed it).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``greenprint ARGS`` as a new user runs it in ``cwd``: a clean environment, no config."""
    done = subprocess.run(
        [str(GREENPRINT), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_an_export_of_every_study_gives_a_run_under_another_studys_run_its_own_studys_role(
    tmp_path: Path,
) -> None:
    """Runs of study B tracked inside a run of study A: B's report has them as its trials
    (their parent is not in B). Exporting every study at once called them A's run's parts,
    though the export says each run's role is the one its study's report infers."""
    ledger = str(tmp_path / "l.db")
    with gp.track("outer", study="A", ledger=ledger, **FAST) as outer:
        outer.log(accuracy=0.9)
        for k in range(2):
            with gp.track(f"inner{k}", study="B", ledger=ledger, **FAST) as inner:
                inner.log(accuracy=0.5 + k / 10)
    _cli(tmp_path, "report", "--ledger", ledger, "--study", "B", "--format", "json", "--out", "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    reported = {r["name"]: r["role"] for r in report["runs"]}
    assert reported == {"inner0": "trial", "inner1": "trial"}
    for options in ([], ["--metric", "accuracy"]):
        done = _cli(tmp_path, "ledger", "export", "--ledger", ledger, "--format", "json", *options)
        exported = {r["name"]: r["role"] for r in json.loads(done.stdout)["runs"]}
        assert exported == {"outer": "trial", **reported}


def _subsample_fit(fraction: float) -> float:
    """A learning-curve point whose training is a child run that counts its FPO."""
    with gp.track("fit", **FAST) as fit:
        fit.add_fpo(int(1000 * fraction))
    return 0.5 + fraction / 4


def test_a_learning_curve_run_inside_a_trial_is_still_read_as_its_point(tmp_path: Path) -> None:
    """``run_learning_curve`` called inside a trial's run (how much data this configuration
    needs): its runs are the trial's parts for cost, but they are the learning curve's points.
    ``learning_curve`` over the study's runs raised "no run carries both a dataset_size and a
    value" (every point a part) and the report drew no learning curve, though
    ``run_learning_curve`` itself returned the curve."""
    from greenprint.analysis import learning_curve, run_learning_curve

    ledger = str(tmp_path / "l.db")
    with gp.track("trial", study="s", ledger=ledger, params={"lr": 0.1}, **FAST) as trial:
        made = run_learning_curve(
            _subsample_fit, [0.25, 0.5, 1.0], metric="accuracy", full_size=1000, study="s",
            ledger=ledger, track_options=FAST,
        )  # fmt: skip
        trial.log(accuracy=0.75)
    with gp.Ledger(ledger) as led:
        curve = learning_curve(led.runs(study="s"), metric="accuracy")
    assert curve.dataset_size.tolist() == made.dataset_size.tolist() == [250, 500, 1000]
    assert curve.score_mean.tolist() == made.score_mean.tolist()
    assert curve.fpo_mean.tolist() == made.fpo_mean.tolist() == [250.0, 500.0, 1000.0]
    assert curve.n_skipped == 0 and curve.notes == ()  # the trial holds the points: no point
    _cli(tmp_path, "report", "--ledger", ledger, "--study", "s", "--format", "json", "--out", "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    figures = {f["id"]: f for f in report["figures"]}
    assert "learning_curve" in figures, report["notes"]
    assert "from 3 runs with role 'learning-curve'" in figures["learning_curve"]["caption"]


def test_the_pruner_judges_on_what_it_knew_when_the_ledger_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FPO pruner reads a trial's ended folds from its ledger. When that read fails
    (another process wrote a value no reader can decode), it logged a warning, then said the
    trial "recorded no FPO" (or that its cost went down) with a ConfigError raised in the
    objective: the trial failed for a measurement failure. Its cost is cumulative: what was
    known before stands, and a trial with nothing known yet is not judged at that step."""
    optuna = pytest.importorskip("optuna")
    from greenprint.greener import CostAwareOptunaPruner
    from greenprint.integrations.optuna import GreenprintCallback

    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = tmp_path / "l.db"
    cb = GreenprintCallback(study="s", ledger=str(ledger), **FAST)
    pruner = CostAwareOptunaPruner(cost="fpo", n_warmup_reports=0, n_min_trials=1)
    costs: dict[int, list[float]] = {}

    def _set_params(value: str) -> None:  # as another process would write them
        with sqlite3.connect(ledger) as conn:
            conn.execute("UPDATE runs SET params = ? WHERE name = 't0-fold0'", (value,))

    def objective(trial: Any) -> float:
        for k in range(3):
            with gp.track(f"t{trial.number}-fold{k}", role="part", **FAST) as fold:
                fold.add_fpo(1000)
                fold.log(accuracy=0.5)
            if trial.number == 0 and k == 1:  # a row no reader can decode, for one step
                _set_params("{")
            trial.report(0.5 + k / 100, k)
            if trial.should_prune():
                raise optuna.TrialPruned()
            if trial.number == 0 and k == 1:
                _set_params("{}")
            decision = pruner.pruner_for(trial.study).decision(trial.number)
            costs.setdefault(trial.number, []).append(decision and decision.cost)
        return 0.5

    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # trial 0 at step 1: its ended folds unreadable, what it knew stands (not 0, not "no FPO")
    assert costs == {0: [1000.0, 1000.0, 3000.0], 1: [1000.0, 2000.0, 3000.0]}


FOLD_PROCESS = """
import pathlib, sys, time
import greenprint as gp

here = pathlib.Path(sys.argv[1])
with gp.track("fold", role="part", sample_interval_s=0.05, flush_interval_s=0.1) as fold:
    (here / "started").write_text(fold.id)  # its run is in the ledger; no FPO counted yet
    deadline = time.monotonic() + 60  # never left behind by a test that failed
    while not (here / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    fold.add_fpo(1000)
    fold.log(accuracy=0.5)
"""


def test_the_fpo_pruner_waits_for_a_fold_in_a_child_process_to_count(tmp_path: Path) -> None:
    """A trial whose fold runs in a child process (a worker, a spawned training) reports an
    intermediate value while the fold has started but counted no FPO yet: the pruner raised
    "trial 0's run recorded no FPO, nor did any run nested in it" into the objective, though a
    run nested in it was counting. Not judged at that step; judged on the fold's FPO after."""
    optuna = pytest.importorskip("optuna")
    import sys
    import time

    from greenprint.greener import CostAwareOptunaPruner
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    script = tmp_path / "fold.py"
    script.write_text(FOLD_PROCESS, encoding="utf-8")
    cb = GreenprintCallback(study="s", ledger=str(tmp_path / "l.db"), **FAST)
    pruner = CostAwareOptunaPruner(cost="fpo", n_warmup_reports=0, n_min_trials=1)
    costs: list[float | None] = []

    def objective(trial: Any) -> float:
        child = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)]
        )  # its parent: the trial
        while not (tmp_path / "started").exists():
            assert child.poll() is None
            time.sleep(0.02)
        trial.report(0.4, 0)  # the fold runs, and has counted nothing yet
        try:
            assert not trial.should_prune()
        finally:
            (tmp_path / "go").write_text("")
        decision = pruner.pruner_for(trial.study).decision(trial.number)
        costs.append(decision and decision.cost)
        assert child.wait(timeout=60) == 0
        trial.report(0.5, 1)
        assert not trial.should_prune()
        costs.append(pruner.pruner_for(trial.study).decision(trial.number).cost)
        return 0.5

    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective), n_trials=1, callbacks=[cb])
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    assert costs == [None, 1000.0]


def test_the_sharing_note_counts_one_run_that_ran_alone_in_the_singular() -> None:
    """A search whose baseline ran alone before two trials ran together in threads: the note
    read "beyond the 1 trials that ran alone"."""
    from greenprint import MetricPoint, RunRecord
    from greenprint.analysis import price_tag

    def run(rid: str, kwh: float, start: float, end: float, parent: str | None = "search") -> Any:
        return RunRecord(
            id=rid, name=rid, parent_id=parent, status="finished", started_at=start,
            ended_at=end, duration_s=end - start, energy_kwh=kwh, emissions_kg=kwh * 0.4,
            metrics=(MetricPoint("acc", 0.5),),
        )  # fmt: skip

    runs = [
        run("search", 2.0, 1000.0, 1200.0, parent=None),
        run("baseline", 1.0, 1000.0, 1100.0),
        run("t0", 1.0, 1100.0, 1200.0),
        run("t1", 1.0, 1100.0, 1200.0),
    ]
    (note,) = [n for n in price_tag(runs, metric="acc").notes if "same time" in n]
    assert "beyond the 1 part that ran alone (1 kWh, kept whole)" in note, note


def test_a_learning_curve_counts_one_run_left_out_in_the_singular() -> None:
    """Read "1 runs without a dataset_size or a 'acc' score were left out"."""
    from greenprint import MetricPoint, RunRecord
    from greenprint.analysis import learning_curve

    runs = [
        RunRecord(
            id=f"r{k}",
            name=f"r{k}",
            status="finished",
            dataset_size=size,
            duration_s=10.0,  # timed: an untimed run is said too (session 37)
            energy_kwh=0.001,  # metered and counted: an unknown one is said too (session 52)
            fpo=1000,
            metrics=(MetricPoint("acc", 0.5),),
        )  # fmt: skip
        for k, size in enumerate([100, 200, None])
    ]
    curve = learning_curve(runs, metric="acc")
    assert curve.notes == ("1 run without a dataset_size or a 'acc' score was left out",)


def test_an_export_of_every_study_by_a_metric_reads_a_study_without_it_as_its_report(
    tmp_path: Path,
) -> None:
    """``ledger export --metric accuracy`` over two studies, one of which logged no accuracy
    (a cross-validation run and its folds log a loss): its report cannot rank by accuracy, and
    reads the run as a trial by its loss; the export judged it by accuracy, found none, and
    called it a sweep of trials."""
    ledger = str(tmp_path / "l.db")
    with gp.track("search", study="s", ledger=ledger, **FAST):
        for k in range(2):
            with gp.track(f"t{k}", **FAST) as trial:
                trial.log(accuracy=0.5 + k / 10)
    with gp.track("cv", study="o", ledger=ledger, **FAST) as cv:
        for k in range(2):
            with gp.track(f"fold{k}", **FAST) as fold:
                fold.log(loss=0.5 + k / 10)
        cv.log(loss=0.55)
    _cli(tmp_path, "report", "--ledger", ledger, "--study", "o", "--format", "json", "--out", "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    reported = {r["name"]: r["role"] for r in report["runs"]}
    assert reported == {"cv": "trial", "fold0": "part", "fold1": "part"}
    done = _cli(tmp_path, "ledger", "export", "--ledger", ledger, "--format", "json",
                "--metric", "accuracy")  # fmt: skip
    exported = {r["name"]: r["role"] for r in json.loads(done.stdout)["runs"]}
    assert exported == {"search": "sweep", "t0": "trial", "t1": "trial", **reported}


def test_a_family_of_one_trial_is_counted_in_the_singular(tmp_path: Path) -> None:
    """``greenprint report --group-by params.model`` with one trial of a model: the EVP note
    read "one curve per params.model (with replacement): mlp (2 trials), cnn (1 trials)"."""
    from greenprint.report import build_report

    ledger = str(tmp_path / "l.db")
    for k, model in enumerate(["mlp", "mlp", "cnn"]):
        with gp.track(f"t{k}", study="s", ledger=ledger, params={"model": model}, **FAST) as t:
            t.log(accuracy=0.5 + k / 10)
    report = build_report(ledger, "s", metric="accuracy", group_by="params.model")
    notes = [n for f in report.figures for n in f.notes if n.startswith("one curve per")]
    assert notes and all("mlp (2 trials), cnn (1 trial)" in n for n in notes), notes
