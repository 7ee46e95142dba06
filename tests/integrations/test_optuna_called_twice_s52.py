"""The Optuna callback called again for a trial it recorded says nothing (session 52).

Ask-and-tell with the callback called by hand, twice for one told trial (a retry loop, or
``callbacks=[cb]`` beside a manual call): the second call warned that the trial "was not
measured", though its run was in the ledger; and as that warning is given once per callback,
a later trial that really was not measured got none.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback


def test_a_second_call_for_a_recorded_trial_is_quiet_and_a_real_miss_still_warns(
    tmp_path: Path,
) -> None:
    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    ledger = tmp_path / "greenprint.db"
    callback = GreenprintCallback(ledger=str(ledger))
    study = optuna.create_study(study_name="twice")
    measured = callback.track(lambda t: t.suggest_float("x", 0, 1))
    trial = study.ask()
    told = study.tell(trial, measured(trial))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        callback(study, told)
        callback(study, told)
    (run,) = gp.Ledger(str(ledger)).runs(study="twice")
    assert (run.name, run.status) == ("trial-0", "finished")
    # a trial whose objective was not passed through the callback: the warning, as ever
    with pytest.warns(UserWarning, match="trial 1 of study 'twice' was not measured"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1, callbacks=[callback])
    assert len(gp.Ledger(str(ledger)).runs(study="twice")) == 1
