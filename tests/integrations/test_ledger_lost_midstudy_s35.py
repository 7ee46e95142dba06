"""Session 35: a ledger that fails mid-study never stops the training or the search.

Before, a study's next trial after its ledger's folder went away (deleted, or moved by the user
or a clean-up script) raised ``LedgerPathError`` into the user's code: Optuna's
``study.optimize`` stopped after 2 of 4 trials, Lightning's ``fit`` failed. A ledger this
process already wrote a run to that fails later is a failure of the measurement: the next runs
are made in a fallback ledger file in the temporary folder, one warning (once, not per trial)
names it with the ``greenprint ledger merge`` command that puts them back, and every trial runs.
A ledger that is bad input when the callback is made (a directory, a file that is not a ledger)
still raises its specific error there.

Each script runs in an empty directory with a clean environment, as a new user runs it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import empty_home as _empty
from integrations._frameworks import need_installed

#: 4 Optuna trials; after the second, a study callback moves the ledger's folder away.
OPTUNA_SCRIPT = """
import os
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)


def objective(trial):
    return (trial.suggest_float("x", -10, 10) - 2) ** 2


def move_after_second(study, trial):
    if trial.number == 1:
        os.rename("runs", "moved")


cb = GreenprintCallback(ledger="runs/gp.db", study="moves")
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb, move_after_second])
print("states", [t.state.name for t in study.trials])
"""

#: 4 Lightning fits with one callback; after the second, the ledger's folder is moved away.
LIGHTNING_SCRIPT = """
import os
import torch
import lightning.pytorch as pl
from greenprint.integrations.lightning import GreenprintCallback


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
loader = torch.utils.data.DataLoader(data, batch_size=8)
cb = GreenprintCallback(ledger="runs/gp.db", study="fits")
fitted = 0
for i in range(4):
    if i == 2:
        os.rename("runs", "moved")
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    trainer.fit(Regressor(), loader)
    fitted += 1
print("fitted", fitted)
"""


def _study_in(home: Path, script: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``script`` run in ``home`` with its ledger folder ``runs/``; its temporary folder."""
    (home / "runs").mkdir()
    (home / "study.py").write_text(script)
    temp = home / "tmp"
    temp.mkdir()
    env = {**clean_env(), "TMPDIR": str(temp)}
    done = run_in(home, sys.executable, "study.py", env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return done, temp


def _names(location: Path) -> list[str]:
    ledger = gp.Ledger(location, create=False)
    try:
        return sorted(r.name for r in ledger.runs())
    finally:
        ledger.close()


def _check_fallback(home: Path, temp: Path, stderr: str, first: list[str], then: list[str]):
    """2 runs in the moved ledger, 2 in one fallback file that one warning names, and the
    command that warning gives brings the ledger to 4."""
    moved = home / "moved" / "gp.db"
    assert _names(moved) == first
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    assert _names(fallback) == then
    ledger = home / "runs" / "gp.db"
    said = [line for line in stderr.splitlines() if "cannot take runs" in line]
    assert len(said) == 1, stderr  # once for the study, not once per trial
    (line,) = said
    assert line.startswith(f"greenprint: ledger {ledger} cannot take runs (cannot create it: ")
    assert f"they are saved in {fallback} until it can (the study goes on)" in line
    assert f"`greenprint ledger merge {ledger} {fallback}` puts them in it" in line
    # at exit, once more with the count (the first line may be far back in a long study)
    assert f"greenprint: 2 runs meant for ledger {ledger} are saved in {fallback}" in stderr
    assert not re.search(r"Traceback|LedgerPathError", stderr), stderr
    # the command, as the user runs it once the folder is back where the ledger was
    (home / "moved").rename(home / "runs")
    merged = subprocess.run(
        [GREENPRINT, "ledger", "merge", str(ledger), str(fallback)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert merged.returncode == 0, merged.stderr
    assert _names(ledger) == sorted(first + then)


def test_an_optuna_study_runs_every_trial_when_its_ledger_folder_goes_away(tmp_path_factory):
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "optuna-moved")
    done, temp = _study_in(home, OPTUNA_SCRIPT)
    assert "states ['COMPLETE', 'COMPLETE', 'COMPLETE', 'COMPLETE']" in done.stdout, done.stderr
    _check_fallback(home, temp, done.stderr, ["trial-0", "trial-1"], ["trial-2", "trial-3"])


def test_lightning_fits_go_on_when_their_ledger_folder_goes_away(tmp_path_factory):
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "lightning-moved")
    done, temp = _study_in(home, LIGHTNING_SCRIPT)
    assert "fitted 4" in done.stdout, done.stderr
    moved = home / "moved" / "gp.db"
    first = _names(moved)
    (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
    then = _names(fallback)
    assert len(first) == len(then) == 2, (first, then)
    _check_fallback(home, temp, done.stderr, first, then)


# -- bad input where the callback is made still raises its own error ------------------------


def test_a_callback_given_a_directory_or_a_non_ledger_file_still_refuses_it(tmp_path):
    need_installed("optuna", "optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    with pytest.raises(gp.LedgerPathError, match="is a directory"):
        GreenprintCallback(ledger=str(tmp_path))
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n" * 20)
    with pytest.raises(gp.NotALedgerError):
        GreenprintCallback(ledger=str(notes))
    with pytest.raises(gp.LedgerPathError, match="does not exist"):
        GreenprintCallback(ledger=str(tmp_path / "missing" / "gp.db"))
