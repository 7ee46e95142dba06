"""run.prune(step=..., by=...) records when and why; the report reads it, or a run's last step.

A user's own early stopping (patience on a validation loss) in plain ``gp.track`` runs, and a
``TrialPruned`` raised where no integration records the step (an older greenprint's ledger
reads the same: no ``pruned_at_step``): the report then takes the run's last logged step.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint._exceptions import ConfigError
from greenprint.report import build_report

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


class TrialPruned(Exception):
    """Named as Optuna's and Ray's: a run it ends is ``pruned``."""


def _trial(db, name, epochs, *, stop_at=None, how="prune"):
    with gp.track(name, study="patience", ledger=db, role="trial", **FAST) as run:
        for epoch in range(1, epochs + 1):
            run.add_fpo(1_000)
            run.log(step=epoch, val_loss=1.0 / epoch)
            if epoch == stop_at:
                if how == "prune":
                    run.prune(step=epoch, by="patience 2 on val_loss")
                    break
                raise TrialPruned()
    return run


def test_prune_with_step_and_by_is_recorded_and_reported(tmp_path) -> None:
    db = tmp_path / "g.db"
    for k in range(2):
        _trial(db, f"full-{k}", 8)
    run = _trial(db, "stopped", 8, stop_at=2)
    assert run.status == "pruned"
    record = gp.Ledger(db).run(run.id)
    assert record.provenance["pruned_at_step"] == "2"
    assert record.provenance["pruned_by"] == "patience 2 on val_loss"
    s = build_report(db, "patience").pruning
    assert s is not None and s.by == ("patience 2 on val_loss",)
    assert s.full_steps == 8 and not s.from_zero  # steps 1..8
    (row,) = s.rows
    assert row.step == 2 and row.step_recorded and row.scale == 4.0
    assert s.saved_fpo == 6_000  # 2 of 8 epochs at 1,000 FPO each ran: 6 more
    text = " ".join(s.lines())
    assert "1 of 3 trials pruned by patience 2 on val_loss. Stopped at step 2 (median);" in text
    assert "a trial run to the end reached step 8." in text
    assert "they would have cost about" in text and "and 8 kFPO" in text


def test_a_pruned_run_that_recorded_no_step_is_read_at_its_last_logged_step(tmp_path) -> None:
    db = tmp_path / "g.db"
    _trial(db, "full", 6)
    with pytest.raises(TrialPruned):
        _trial(db, "raised", 6, stop_at=3, how="raise")
    [raised] = [r for r in gp.Ledger(db).runs(study="patience") if r.name == "raised"]
    assert raised.status == "pruned" and "pruned_at_step" not in raised.provenance
    report = build_report(db, "patience")
    (row,) = report.pruning.rows
    assert row.step == 3 and not row.step_recorded and row.by is None
    assert row.scale == 2.0 and report.pruning.saved_fpo == 3_000
    _, cells = report.pruning.table()
    assert cells[0][:3] == ["raised", "3 (logged)", "-"]
    assert " ".join(report.pruning.lines()).startswith("1 of 2 trials pruned. Stopped at step 3")


def test_no_estimate_without_a_finished_trial_to_compare_with(tmp_path) -> None:
    db = tmp_path / "g.db"
    with gp.track("alone", study="patience", ledger=db, role="trial", **FAST) as run:
        run.log(accuracy=0.5)
        run.prune(by="a look at the loss curve")
    s = build_report(db, "patience").pruning
    assert s.saved_energy_kwh is None and s.full_steps is None
    assert s.lines()[-1] == (
        "No estimate of the saving: no finished trial logged a step to compare with."
    )
    assert "when they stopped is unknown" in " ".join(s.lines())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"step": -1}, "step must be a finite number >= 0"),
        ({"step": True}, "step must be a number"),
        ({"step": float("nan")}, "step must be a finite number >= 0"),
        ({"by": ""}, "by must be a non-empty string"),
        ({"by": 3}, "by must be a non-empty string"),
    ],
)
def test_prune_refuses_a_bad_step_or_by(tmp_path, options, message) -> None:
    with gp.track("r", study="s", ledger=tmp_path / "g.db", **FAST) as run:
        with pytest.raises(ConfigError, match=message):
            run.prune(**options)
        assert run.status == "running"
    assert run.status == "finished"  # a refused prune() marks nothing
