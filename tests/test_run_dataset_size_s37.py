"""Session 37: ``greenprint run --dataset-size N``, a learning curve of commands.

A learning curve run as one command per training-set size could not be drawn from the shell:
``greenprint run`` had no way to give its run a ``dataset_size``, so ``--role learning-curve``
commands made no curve (the outside check of session 37). Now ``--dataset-size N`` records it,
and each such command is a point of the curve, scored by the run its script tracks inside it.
"""

from __future__ import annotations

import sys

import greenprint as gp
from _report_cli import GREENPRINT, cli_report, empty_home, report_text, run_in

FIT = """
import sys
import greenprint as gp

size = int(sys.argv[1])
with gp.track("fit") as run:  # under greenprint run: a part of the command's run
    run.log(accuracy=0.5 + size / 10_000)
"""


def test_learning_curve_commands_given_their_sizes_are_its_points(tmp_path_factory):
    home = empty_home(tmp_path_factory, "run-dataset-size")
    (home / "fit.py").write_text(FIT, encoding="utf-8")
    for size in ("300", "600", "1200"):
        done = run_in(
            home, GREENPRINT, "run", "-q", "--study", "lc", "--role", "learning-curve",
            "--dataset-size", size, "--", sys.executable, "fit.py", size,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = run_in(
        home, GREENPRINT, "run", "-q", "--study", "lc", "--param", "lr=0.1", "--",
        sys.executable, "fit.py", "2000",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ledger = gp.Ledger(home / "greenprint.db", create=False)
    try:
        commands = ledger.runs(study="lc", parent_id=None)
    finally:
        ledger.close()
    sizes = {r.dataset_size for r in commands if r.role == "learning-curve"}
    assert sizes == {300, 600, 1200}
    report = cli_report(home, "--study", "lc", "--format", "json,md")
    (curve,) = [f for f in report["figures"] if f["id"] == "learning_curve"]
    assert "from 3 runs with role 'learning-curve'" in curve["caption"]
    (series,) = curve["panels"][0]["series"]
    assert series["x"] == [300.0, 600.0, 1200.0]
    assert series["y"] == [0.53, 0.56, 0.62]  # each command scored by its script's run
    assert "Learning curve" in report_text(home, "md")


def test_a_bad_dataset_size_is_one_line_and_status_2_before_anything_runs(tmp_path_factory):
    home = empty_home(tmp_path_factory, "run-dataset-size-bad")
    for value in ("-5", "1.5", "many"):
        done = run_in(home, GREENPRINT, "run", "--dataset-size", value, "--", "true")
        assert done.returncode == 2, (value, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("greenprint: error: Invalid value for '--dataset-size'"), line
    assert not (home / "greenprint.db").exists()  # nothing ran, nothing recorded
