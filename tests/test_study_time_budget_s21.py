"""A study's wall-time budget stops ``greenprint run``'s command when it runs out (session 21).

Session 20 made ``--budget-s`` act when the run's time runs out instead of at the next meter
sample; ``--study-budget-s`` was still checked at samples only, so with ``--sample-interval 5``
a study with 0.5 s left let the command run 5 s. Run as a new user does: the CLI as typed, in an
empty directory with a clean environment.
"""

from __future__ import annotations

import sys

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in

SLOW_SAMPLES = ["--sample-interval", "5", "--flush-interval", "5"]


def test_a_study_time_budget_stops_the_command_when_the_study_runs_out_of_time(
    tmp_path_factory: pytest.TempPathFactory,
):
    home = empty_home(tmp_path_factory, "s21-study-deadline")
    first = run_in(
        home, GREENPRINT, "run", "--study", "deadline", *SLOW_SAMPLES, "--",
        sys.executable, "-c", "import time; time.sleep(1)",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    (before,) = gp.Ledger(home / "greenprint.db").runs(study="deadline")
    limit = before.duration_s + 0.5  # the study has 0.5 s left
    done = run_in(
        home, GREENPRINT, "run", "--study", "deadline", "--study-budget-s", f"{limit:.6f}",
        *SLOW_SAMPLES, "--", sys.executable, "-c", "import time; time.sleep(30)",
    )  # fmt: skip
    assert done.returncode == 143, done.stderr  # SIGTERM, at 0.5 s, not at the 5 s sample
    runs = gp.Ledger(home / "greenprint.db").runs(study="deadline")
    (second,) = [r for r in runs if r.id != before.id]
    assert second.status == "interrupted"
    assert 0.5 <= second.duration_s < 1.5
    assert "budget_s" in (second.error or "")
    (line,) = [x for x in done.stderr.splitlines() if "over budget" in x and "sending" in x]
    spent = float(line.split("time ", 1)[1].split(" s >", 1)[0])
    assert limit < spent < limit + 0.5, line  # the study's time: both runs'


def test_a_study_within_its_time_budget_is_not_touched(tmp_path_factory: pytest.TempPathFactory):
    home = empty_home(tmp_path_factory, "s21-study-deadline-ok")
    done = run_in(
        home, GREENPRINT, "run", "--study", "ok", "--study-budget-s", "60", *SLOW_SAMPLES,
        "--", sys.executable, "-c", "print('up')",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = gp.Ledger(home / "greenprint.db").runs(study="ok")
    assert run.status == "finished" and run.error is None
