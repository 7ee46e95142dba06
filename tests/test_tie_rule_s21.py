"""A tie on the best score goes to the cheaper trial, everywhere the report names a best trial.

Session 20 noticed: the final-run rule broke a tie on the best score by the earliest start (a
trial that cost twice as much, started first, was "the final model"), while the report's best
trials table (the LaTeX runs table: ``top_runs``) ranked the cheaper one first and the
efficiency section named it the best trial. One rule now, the one a Green AI reader expects,
the cheaper of equal results: the best score, then the least energy (the trial's own with its
parts', as the price tag counts it), then the earliest start.

Each trial measures a set energy (``Joules``), whatever its duration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import greenprint as gp
from _set_energy import Joules  # tests/_set_energy.py
from greenprint.report import build_report
from greenprint.report._tables import top_runs

#: name, accuracy, J: three trials tie on 0.9; t0 (started first) costs twice t1 and t2
TRIALS = [("t0", 0.9, 7200.0), ("t1", 0.9, 3600.0), ("t2", 0.9, 3600.0), ("t3", 0.8, 1800.0)]
QUIET = {"sample_interval_s": 3600.0, "flush_interval_s": 3600.0}


def _study(db: Path, study: str, *, retrain: bool = False) -> None:
    for name, accuracy, joules in TRIALS:
        with gp.track(name, ledger=db, study=study, role="trial", meters=Joules(joules),
                      **QUIET) as run:  # fmt: skip
            run.log(accuracy=accuracy)
    if retrain:
        with gp.track("retrain", ledger=db, study=study, role="final", meters=Joules(900.0),
                      **QUIET) as run:  # fmt: skip
            run.log(accuracy=0.91)


def test_the_final_run_rule_takes_the_cheapest_of_the_tied_trials(tmp_path: Path) -> None:
    """t1 and t2 used 1 Wh, t0 2 Wh for the same 0.9: the final run is t1 (of the two cheapest,
    the earlier started), the best trials table lists t1, t2, then t0, and the efficiency
    section names t1 the best trial."""
    db = tmp_path / "g.db"
    _study(db, "tie")
    report = build_report(db, "tie", metric="accuracy")
    tag = report.price_tag
    assert tag.final.name == "t1" and tag.final.energy_kwh == pytest.approx(1e-3, rel=1e-9)
    assert "highest accuracy" in tag.final.rule_text
    assert [r.name for r in top_runs(report, 10)] == ["t1", "t2", "t0", "t3"]
    section = report.efficiency
    assert section is not None
    best = [r.name for r in section.rows if "best trial" in r.why]
    assert best == ["t1"]
    final = [r.name for r in section.rows if "final run" in r.why]
    assert final == ["t1"]


def test_with_a_final_retrain_the_best_trial_is_still_the_cheapest(tmp_path: Path) -> None:
    """A run with role final is the final run; the best trial the tables name is t1 all the
    same (the retrain is added after the best trials)."""
    db = tmp_path / "g.db"
    _study(db, "retrained", retrain=True)
    report = build_report(db, "retrained", metric="accuracy")
    assert report.price_tag.final.name == "retrain"
    assert [r.name for r in top_runs(report, 10)] == ["t1", "t2", "t0", "t3", "retrain"]
    assert [r.name for r in top_runs(report, 1)] == ["t1", "retrain"]
    section = report.efficiency
    assert section is not None
    assert [r.name for r in section.rows if "best trial" in r.why] == ["t1"]
