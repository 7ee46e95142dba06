"""A study budget counts what the study's price tag will show: folds' FPO in their trials.

Before: a study's cost was read from the ledger as each top-level run's own figures, so a trial
whose folds counted the FPO (the trial itself counted none) read 0 once it had ended, and a
study FPO budget never stopped a search of such trials (its figure even dropped at each
trial's end: the live trial counted its folds from memory, the ended one nothing). Now the
read is the price tag's total (:mod:`greenprint.ledger._study_cost`). Real runs, a real ledger.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint.analysis import price_tag

FAST: dict[str, Any] = {"sample_interval_s": 0.02, "flush_interval_s": 0.05}


def _objective(trial_number: int, ledger: Path, budget: gp.Budget, seen: list[float]) -> float:
    """An Optuna-like objective: a trial over 3 cross-validation folds that count the FPO."""
    with gp.track(
        f"trial-{trial_number}", study="cv-search", ledger=ledger, budget=budget, **FAST
    ) as trial:
        scores = []
        for k in range(3):
            with gp.track(f"trial-{trial_number}-fold-{k}", **FAST) as fold:
                fold.add_fpo(100)
                time.sleep(0.06)  # a flush interval: the study is read again meanwhile
                fold.log(accuracy=0.9)
                scores.append(0.9)
            seen.append(trial._guard.study_base.fpo)  # what the ledger gave, trial excluded
        trial.log(accuracy=sum(scores) / len(scores))
        return sum(scores) / len(scores)


def test_a_study_fpo_budget_stops_a_search_whose_folds_count_the_fpo(tmp_path: Path) -> None:
    db = tmp_path / "gp.db"
    budget = gp.Budget(fpo=1000, per="study", on_exceed="stop")  # one object for every trial
    seen: list[float] = []
    done = 0
    with pytest.raises(gp.BudgetExceeded) as caught:
        for number in range(20):  # the old read never stopped it: every trial ran
            _objective(number, db, budget, seen)
            done += 1
    # trials 0-2 spent 900; trial 3's second fold crosses: 900 + 200 > 1000
    assert done == 3
    stop = caught.value
    assert (stop.per, stop.limit, stop.spent) == ("study", "study budget_fpo", 1100.0)
    runs = gp.Ledger(db).runs(study="cv-search")
    assert {r.name: r.status for r in runs}["trial-3"] == "interrupted"
    # what it stopped at is the study's price tag, and the ledger never gave less for an
    # ended trial than its folds (the old read gave 0 for each)
    assert price_tag(runs).total.fpo == 1100
    assert seen[2::3][:3] == [0.0, 300.0, 600.0] and seen[-1] == 900.0


def test_a_live_trials_ended_folds_count_once(tmp_path: Path) -> None:
    """The trial is live here: its ended folds, in the ledger, are in its figure from memory."""
    db = tmp_path / "gp.db"
    budget = gp.Budget(fpo=250, per="study", on_exceed="stop")
    with pytest.raises(gp.BudgetExceeded) as caught:
        with gp.track("trial", study="cv-live", ledger=db, budget=budget, **FAST):
            for k in range(5):
                with gp.track(f"fold-{k}", **FAST) as fold:
                    fold.add_fpo(100)
                    time.sleep(0.12)  # flushed, and the study read again, before the next
    assert caught.value.spent == 300.0  # not 300 + the ended folds again
    assert price_tag(gp.Ledger(db).runs(study="cv-live")).total.fpo == 300


_FOLD = textwrap.dedent(
    """
    import sys, time
    import greenprint as gp

    with gp.track("fold", sample_interval_s=0.05, flush_interval_s=0.1) as run:
        run.add_fpo(int(sys.argv[1]))
        time.sleep(float(sys.argv[2]))
    """
)


def _fold_process(fpo: int, linger_s: float) -> subprocess.Popen[bytes]:
    """A fold in a child process (its parent run, study and ledger inherited from this one)."""
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_START"}
    return subprocess.Popen([sys.executable, "-c", _FOLD, str(fpo), str(linger_s)], env=env)


def test_a_live_trials_folds_in_child_processes_count(tmp_path: Path) -> None:
    """Folds in child processes of the live trial: in the ledger under it (left out with it),
    read there for its figure as a per-run FPO budget reads them; counted once, ended or not."""
    db = tmp_path / "gp.db"
    seen: list[gp.BudgetExceeded] = []
    budget = gp.Budget(fpo=10**6, per="study", on_exceed=lambda run, e: seen.append(e))
    with gp.track("trial", study="cv-proc", ledger=db, budget=budget, **FAST) as trial:
        assert _fold_process(6 * 10**5, 0.0).wait(timeout=60) == 0  # ended: 600,000
        child = _fold_process(6 * 10**5, 20.0)  # running: 1,200,000 with the first
        deadline = time.monotonic() + 30
        while not trial.over_budget and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = child.poll() is None
        child.terminate()
        child.wait(timeout=30)
    assert trial.over_budget and still_running  # seen while the second fold still ran
    assert seen[0].spent == 12 * 10**5  # each fold once
