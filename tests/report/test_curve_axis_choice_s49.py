"""A curve's x logged beside the score is never the metric a study is ranked by.

A new user who loops over training-set sizes inside one run logs ``run.log(train_size=n,
accuracy=s)``: both names are logged by every trial, as often, and the tie went to the first
logged, so ``greenprint report`` ranked the study by ``train_size`` (its largest size "best"),
called it a training metric, and never noted the learning curve inside the runs. A size
(``train_size``, ``n_train``...), a ``param_*`` column or the name of a param the runs record
(``run.log(C=c, accuracy=s)``: a validation curve inside a run) is a curve's x: the study is
ranked by the score beside it, and the note says why the x was set aside. Alone, it is still
what the runs logged.
"""

from __future__ import annotations

import json
from pathlib import Path

import greenprint as gp
from _clean_env import BIN
from _report_cli import GREENPRINT, cli_report, run_in
from greenprint import MetricPoint, RunRecord
from greenprint._metric_choice import pick_metric
from greenprint._metric_names import is_size_metric


def test_a_learning_curve_logged_in_each_run_ranks_by_its_score(home: Path) -> None:
    """The new user's script, in an empty folder, reported by the CLI with no setting."""
    (home / "curve.py").write_text(
        "import greenprint as gp\n"
        "for t in range(3):\n"
        "    with gp.track(study='sizes', name=f't{t}', params={'lr': 0.1 * (t + 1)}) as run:\n"
        "        for i, n in enumerate((100, 200, 400)):\n"
        "            run.log(train_size=n, accuracy=0.5 + 0.1 * i - 0.01 * t, step=i)\n"
    )
    done = run_in(home, str(BIN / "python"), "curve.py")
    assert done.returncode == 0, done.stderr
    report = cli_report(home, "--format", "json")
    assert report["metric"] == "accuracy"
    notes = report["notes"]
    assert any(
        n.startswith("runs ranked by 'accuracy'")
        and "'train_size' is the x of a curve (a training-set size or a param's value)" in n
        for n in notes
    ), notes
    assert not any("a training metric" in n for n in notes), notes
    # each run's learning curve is noted, and the best trial is the best accuracy (t0's 0.7)
    assert sum("logged train_size (100 to 400) with accuracy" in n for n in notes) == 3, notes
    final = report["price_tag"]["final"]
    assert final["name"] == "t0" and abs(final["score"] - 0.7) < 1e-12


def _run(rid: str, points: dict[str, list[float]], params: dict | None = None) -> RunRecord:
    return RunRecord(
        id=rid,
        name=rid,
        status="finished",
        params=params or {},
        metrics=tuple(
            MetricPoint(name, value, step)
            for name, values in points.items()
            for step, value in enumerate(values)
        ),
    )


def test_a_param_logged_as_a_metric_is_a_validation_curves_x() -> None:
    """``run.log(C=c, accuracy=s)`` in runs that record param ``C``, and ``param_alpha``."""
    runs = [
        _run(f"r{k}", {"C": [0.1, 1.0], "accuracy": [0.6, 0.7 + k / 100]}, {"C": 1.0})
        for k in range(3)
    ]
    chosen, note = pick_metric(runs, None, "s")
    assert chosen == "accuracy"
    assert note is not None and "'C' is the x of a curve" in note
    runs = [_run(f"r{k}", {"param_alpha": [1.0], "f1": [0.5]}) for k in range(2)]
    assert pick_metric(runs, None, "s")[0] == "f1"
    # several set aside, named together
    runs = [_run(f"r{k}", {"n_train": [10.0], "param_C": [1.0], "score": [0.5]}) for k in range(2)]
    chosen, note = pick_metric(runs, None, "s")
    assert chosen == "score"
    assert note is not None and "'n_train', 'param_C' are the x of a curve" in note


def test_a_size_alone_is_still_what_the_runs_logged() -> None:
    """Nothing else logged: the size is ranked by, as any lone metric (no note to set aside)."""
    runs = [_run(f"r{k}", {"train_size": [100.0 * (k + 1)], "lr": [0.1]}) for k in range(2)]
    chosen, note = pick_metric(runs, None, "s")
    assert chosen == "train_size"
    assert note is not None and "x of a curve" not in note
    # a metric given by name is the user's choice, whatever its name
    assert pick_metric(runs, "train_size", "s") == ("train_size", None)


def test_size_names() -> None:
    for name in ("train_size", "train_sizes_abs", "n_train", "num_train_samples", "dataset_size"):
        assert is_size_metric(name), name
        assert is_size_metric(name.upper()), name
    for name in ("n_samples", "fraction", "accuracy", "train_loss", "size"):
        assert not is_size_metric(name), name


def test_the_ledger_listing_shows_the_score(home: Path) -> None:
    """``greenprint ledger ls`` shows each run's value of the same metric the report ranks by."""
    with gp.Ledger(home / "greenprint.db") as led:
        for k in range(2):
            led.start_run(_run(f"r{k}", {"train_size": [100.0, 200.0], "accuracy": [0.5, 0.8]}))
    done = run_in(home, GREENPRINT, "ledger", "ls", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [row["main_metric"]["name"] for row in listed] == ["accuracy", "accuracy"]


def test_a_schedule_named_as_a_param_is_no_curve(tmp_path: Path) -> None:
    """A Trainer's trial records its ``learning_rate`` param and logs its decaying
    ``learning_rate`` at each step beside ``eval_accuracy``: a schedule, no validation curve
    inside the run (the name of a param logged as a metric is a curve's x only when it is no
    training's bookkeeping); a param ``C`` logged the same way is one."""
    ledger = tmp_path / "l.db"
    for t, name in enumerate(("learning_rate", "C")):
        with gp.track(f"t{t}", ledger=ledger, study="s", meters=[], params={name: 5e-5}) as run:
            for step in range(4):
                run.log(eval_accuracy=0.5 + step / 10 + t / 100, step=step)
                run.log(**{name: 5e-5 * (1 - step / 4)}, step=step)
    from greenprint.report import build_report

    notes = build_report(ledger, "s").notes
    curves = [n for n in notes if "a validation curve inside one run" in n]
    assert len(curves) == 1 and curves[0].startswith("'t1' logged C"), notes
