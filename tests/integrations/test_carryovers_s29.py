"""Session 29, helper H3: three integration defects carried over, as a user met them.

* Optuna, ``study.optimize(..., n_jobs=2)`` with one ``meters=`` object given to the callback:
  every trial's run started the same object, so a trial starting while another ran started it
  again under that one, whose next reading went backwards (its meter taken for failed, an
  estimate instead): a 0.6 s trial at 100 W recorded 31 J, and the price tag 59 J of the
  process's 100 J. Each run now reads the object from its own start.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S, ConstantProcessPower

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

#: The constant power, in W, of the test meters.
WATTS = 100.0


def _covered_s(runs: list[gp.RunRecord]) -> float:
    """The time, in s, that the runs' spans cover together (overlaps once)."""
    covered, end = 0.0, -1.0
    for run in sorted(runs, key=lambda r: r.started_at):
        start = max(run.started_at, end)
        if run.ended_at is not None and run.ended_at > start:
            covered += run.ended_at - start
        end = max(end, run.ended_at or end)
    return covered


def test_one_meters_object_serves_trials_in_threads_each_from_its_own_start(
    tmp_path: Path,
) -> None:
    """``GreenprintCallback(meters=m)`` and ``n_jobs=2``: each trial records the process's
    energy over its own span (``W`` x its time, its meter never taken for failed), the price
    tag the process's over the time the trials covered, and the object is closed at the end.
    Before: trial 0 (0.4 s) recorded about half of its energy, its meter 'went backwards'."""
    need_installed("optuna", "optuna")
    import optuna

    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "g.db"
    meters = ConstantProcessPower(WATTS)  # one start time: a user's own meter, not per thread

    def objective(trial: optuna.Trial) -> float:
        time.sleep(0.4 if trial.number % 2 == 0 else 0.2)
        return float(trial.number)

    cb = GreenprintCallback(ledger=db, meters=meters, **FAST)
    study = optuna.create_study(study_name="shared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the threads warning (test_optuna checks it)
        study.optimize(cb.track(objective), n_trials=4, n_jobs=2, callbacks=[cb])

    runs = gp.Ledger(db).runs(study="shared")
    assert sorted(r.status for r in runs) == ["finished"] * 4
    for run in runs:
        assert run.provenance["cpu"] == "test:constant-power", run.provenance["cpu"]
        measured_j = run.energy_kwh * 3.6e6
        assert measured_j == pytest.approx(WATTS * run.duration_s, abs=WATTS * READ_LAG_S)
    tag = price_tag(runs, metric="value")
    assert tag.total.energy_kwh * 3.6e6 == pytest.approx(
        WATTS * _covered_s(runs), abs=WATTS * READ_LAG_S
    )
