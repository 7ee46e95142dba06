"""Issue 12, an eleventh outside check: study shapes through the integrations, stopped by hand.

Each study is built the way users build one, in a fresh empty directory with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), then read by ``greenprint
report`` (``--no-plots``: no figure's image is checked here, its data in the JSON is) and
``greenprint ledger export``. The scripts' ``gp.track`` runs are measured by a
constant-power meter (``tests/tracking/_meters.ConstantProcessPower``):

* **k-fold cross-validation with Lightning**: a ``gp.track`` trial per learning rate, a
  ``Trainer.fit`` per fold inside it through greenprint's Lightning callback, the trial
  scored by its folds' mean validation loss.
* **Ctrl-C in a loop of trials**: a user stops a trial of a hand-written search with Ctrl-C;
  the same inside a Lightning fit (the ``Trainer`` answers a ``KeyboardInterrupt`` with
  ``sys.exit(1)``), and in the middle of a scikit-learn ``GridSearchCV`` through
  ``track_search``.
* **scikit-learn with several scorers**: ``GridSearchCV(scoring={"acc": ..., "f1": ...},
  refit="f1")``: which scorer the trials' ``score`` is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report, in_every_format, report_text, run_in
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W.
WATTS = 360.0


def _searched(
    tmp_path_factory: pytest.TempPathFactory, name: str, text: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``text`` run as ``search.py`` in a new empty home, as a user runs a script."""
    home = _empty(tmp_path_factory, name)
    _script(home, "search.py", text)
    return home, run_in(home, sys.executable, "search.py")


def _script(home: Path, name: str, text: str) -> None:
    """``text`` (with the meter's folder and power filled in) written to ``home/name``."""
    text = text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / name).write_text(text, encoding="utf-8")


def _runs(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["runs"]}


# ------------------------------------------------------------ Lightning: k folds per trial
#: A tiny regression and a quiet CPU Trainer (the scripts below share them).
LIGHTNING_HEAD = """
import os, signal, sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
import greenprint as gp
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

torch.manual_seed(0)
X = torch.randn(120, 4)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(120, 1)
STOP_AT = None  # (lr, epoch) where the user presses Ctrl-C


class Regressor(pl.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        if STOP_AT == (self.hparams.lr, self.current_epoch):
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def trainer(name, study):
    return pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[GreenprintCallback(name, study=study)])
"""

KFOLD_SCRIPT = (
    LIGHTNING_HEAD
    + """
K = 3
for lr in (0.01, 0.1, 0.3):
    with gp.track(f"lr={lr}", study="kfold", params={"lr": lr},
                  meters=ConstantProcessPower(@WATTS@)) as run:
        losses = []
        for fold in range(K):
            val = torch.arange(120) % K == fold
            train = DataLoader(TensorDataset(X[~val], Y[~val]), batch_size=16)
            held = DataLoader(TensorDataset(X[val], Y[val]), batch_size=40)
            fit = trainer(f"lr={lr}-fold{fold}", "kfold")
            fit.fit(Regressor(lr), train, held)
            losses.append(float(fit.callback_metrics["val_loss"]))
        run.log(val_loss=sum(losses) / K)
"""
)


def test_lightning_folds_inside_a_trial_are_its_parts_and_the_trial_its_mean(tmp_path_factory):
    """A fit per fold (the Lightning callback) inside a ``gp.track`` trial per learning rate:
    three trials scored by their folds' mean loss, the nine fits their parts, the best trial
    the final run, and the price tag the three trials (each measured around its folds),
    counted once."""
    need_installed("lightning", "lightning")
    home, done = _searched(tmp_path_factory, "kfold", KFOLD_SCRIPT)
    assert done.returncode == 0, done.stderr
    report = _report(home, "--no-plots")
    runs = _runs(report)
    trials = {n: r for n, r in runs.items() if r["role"] == "trial"}
    assert set(trials) == {"lr=0.01", "lr=0.1", "lr=0.3"}
    folds = {n: r for n, r in runs.items() if "-fold" in n}
    assert len(folds) == 9 and {r["role"] for r in folds.values()} == {"part"}
    for name, fold in folds.items():
        assert fold["parent_id"] == runs[name.partition("-fold")[0]]["id"]
    for name, trial in trials.items():  # its own score: the mean the script logged
        parts = [f["score"] for n, f in folds.items() if n.startswith(f"{name}-")]
        assert trial["score"] == pytest.approx(sum(parts) / 3)
    best = min(trials.values(), key=lambda r: r["score"])
    assert [r["name"] for r in report["runs"] if r["is_final"]] == [best["name"]]
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in trials.values()))
    export_reads_as_the_report(home, "kfold", report)


# ------------------------------------------------------------ Ctrl-C in a loop of trials
LOOP_SCRIPT = """
import os, signal, sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

ACC = {0.001: 0.81, 0.01: 0.86, 0.1: 0.84}
for lr, acc in ACC.items():
    with gp.track(f"lr={lr}", study="loop", params={"lr": lr},
                  meters=ConstantProcessPower(@WATTS@)) as run:
        for epoch in range(3):
            sum(i * i for i in range(20000))
            run.log(val_acc=acc - 0.1 * (2 - epoch), step=epoch)
            if lr == 0.1 and epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C
"""


def test_a_trial_stopped_by_ctrl_c_is_interrupted_counted_and_unranked(tmp_path_factory):
    """Ctrl-C in the third trial of a loop: that trial is ``interrupted`` (its cost counted,
    no score: its half-trained val_acc is not its result), the best finished trial the final
    run, and the compute statement says 2 finished, 1 interrupted."""
    home, done = _searched(tmp_path_factory, "loop", LOOP_SCRIPT)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    report = _report(home, "--no-plots")
    stopped = _runs(report)["lr=0.1"]
    assert (stopped["role"], stopped["status"], stopped["error"], stopped["score"]) == (
        "trial", "interrupted", "KeyboardInterrupt", None)  # fmt: skip
    assert [r["name"] for r in report["runs"] if r["is_final"]] == ["lr=0.01"]
    in_every_format(home, "3 trials (2 finished, 1 interrupted)")
    export_reads_as_the_report(home, "loop", report)


CTRL_C_FIT_SCRIPT = (
    LIGHTNING_HEAD
    + """
train = DataLoader(TensorDataset(X[:80], Y[:80]), batch_size=16)
held = DataLoader(TensorDataset(X[80:], Y[80:]), batch_size=40)
STOP_AT = (0.1, 1)
for lr in (0.01, 0.03, 0.1):
    with gp.track(f"lr={lr}", study="fits", params={"lr": lr},
                  meters=ConstantProcessPower(@WATTS@)) as run:
        fit = trainer("fit", "fits")
        fit.fit(Regressor(lr), train, held)
        run.log(val_loss=float(fit.callback_metrics["val_loss"]))
"""
)


def test_a_ctrl_c_in_a_lightning_fit_interrupts_the_trial_around_it(tmp_path_factory):
    """Ctrl-C during the third trial's fit. Lightning catches the ``KeyboardInterrupt``, ends
    the fit (the callback: ``interrupted``) and calls ``sys.exit(1)``. Before: the trial around
    the fit read ``failed`` with ``SystemExit: 1`` (the status table a 'failed' row, the
    compute statement '1 failed'), where the user stopped it. Now it is ``interrupted``
    (``KeyboardInterrupt``), as its fit."""
    need_installed("lightning", "lightning")
    home, done = _searched(tmp_path_factory, "fits", CTRL_C_FIT_SCRIPT)
    assert done.returncode == 1, done.stderr  # Lightning's sys.exit(1)
    report = _report(home, "--no-plots")
    by_parent = {r["parent_id"]: r for r in report["runs"] if r["parent_id"]}
    stopped = _runs(report)["lr=0.1"]
    assert (stopped["status"], stopped["error"]) == ("interrupted", "KeyboardInterrupt")
    assert by_parent[stopped["id"]]["status"] == "interrupted"
    assert {r["status"] for r in report["runs"]} == {"finished", "interrupted"}
    assert [r["name"] for r in report["runs"] if r["is_final"]] == ["lr=0.03"]
    in_every_format(home, "3 trials (2 finished, 1 interrupted)")
    for fmt in ("md", "html", "latex"):
        assert "SystemExit" not in report_text(home, fmt)
    export_reads_as_the_report(home, "fits", report)


# ------------------------------------------------------------ scikit-learn
CTRL_C_SEARCH_SCRIPT = """
import os, signal, time
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from greenprint.integrations.sklearn import track_search

FITS = [0]


class Model(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        FITS[0] += 1
        if FITS[0] == 7:  # the third candidate's first fold: the user presses Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return super().fit(X, y, sample_weight)


X, y = load_iris(return_X_y=True)
search = GridSearchCV(Model(max_iter=300), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3)
track_search(search, X, y, study="stopped")
"""


def test_a_ctrl_c_in_a_grid_search_interrupts_the_candidates_it_stopped(tmp_path_factory):
    """Ctrl-C in the third candidate's first fold of a ``GridSearchCV`` through
    ``track_search``. Before: the three candidates measured so far read ``failed`` ('the
    search failed before this candidate was scored'): the status table '2 trials failed',
    beside an interrupted sweep. Now they are ``interrupted`` (``KeyboardInterrupt``), their
    cost counted, and nothing reads failed."""
    need_installed("sklearn", "sklearn")
    home, done = _searched(tmp_path_factory, "stopped", CTRL_C_SEARCH_SCRIPT)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    report = _report(home, "--no-plots")
    trials = [r for r in report["runs"] if r["role"] == "trial"]
    assert len(trials) == 3
    for trial in trials:
        assert trial["status"] == "interrupted"
        assert trial["error"].startswith("KeyboardInterrupt")
    folds = [r for r in report["runs"] if r["role"] == "part"]
    assert sorted(r["status"] for r in folds) == ["finished"] * 6 + ["interrupted"]
    assert "failed" not in {r["status"] for r in report["runs"]}
    in_every_format(home, "3 trials (3 interrupted)")
    export_reads_as_the_report(home, "stopped", report)


MULTI_SCORER_SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.01, 0.1, 1.0]}, cv=3,
                      scoring={"acc": "accuracy", "f1": "f1_macro"}, refit="f1")
track_search(search, X, y, study="scorers")
best = search.best_score_
# the same search refitting by none of them (study "no-refit"), in the same script: one
# scikit-learn import for both
search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.01, 0.1, 1.0]}, cv=3,
                      scoring={"acc": "accuracy", "f1": "f1_macro"}, refit=False)
track_search(search, X, y, study="no-refit")
print(best)
"""


@pytest.fixture(scope="module")
def scorers_home(tmp_path_factory):
    need_installed("sklearn", "sklearn")
    home, done = _searched(tmp_path_factory, "scorers", MULTI_SCORER_SCRIPT)
    assert done.returncode == 0, done.stderr
    return home, float(done.stdout.split()[-1]), _report(home, "--study", "scorers", "--no-plots")


def test_a_search_with_several_scorers_says_which_one_score_is(scorers_home):
    """``refit="f1"`` of two scorers: the trials' ``score`` is each candidate's mean F1
    (``mean_test_f1``), the refit's scikit-learn's ``best_score_``; the sweep's param
    ``score_metric`` says which scorer ``score`` is (before: nothing did, and the report's
    'ranked by score' read as the estimator's accuracy)."""
    home, best, report = scorers_home
    runs = report["runs"]
    (sweep,) = [r for r in runs if r["role"] == "sweep"]
    assert sweep["params"]["score_metric"] == "mean_test_f1"
    (final,) = [r for r in runs if r["is_final"]]
    assert (final["role"], final["score"]) == ("final", pytest.approx(best))
    export_reads_as_the_report(home, "scorers", report)


def test_the_report_says_score_is_the_refit_scorer(scorers_home):
    """The ranking note names the scorer the trials' ``score`` holds."""
    _, _, report = scorers_home
    assert any("'score' is scikit-learn's mean_test_f1" in n for n in report["notes"])
    assert any("the search's refit scorer;" in n for n in report["notes"])


def test_with_refit_false_the_report_says_score_is_the_first_scorer(scorers_home):
    """``refit=False`` of two scorers: no scorer refits, ``score`` holds the first's mean
    (scikit-learn's order); the note called it "the search's refit scorer", which there is
    none of."""
    home, _, _ = scorers_home
    report = _report(home, "--study", "no-refit", "--no-plots")
    (sweep,) = [r for r in report["runs"] if r["role"] == "sweep"]
    assert (sweep["params"]["score_metric"], sweep["params"]["refit"]) == ("mean_test_acc", False)
    (note,) = [n for n in report["notes"] if "'score' is scikit-learn's" in n]
    assert "mean_test_acc (the search's first scorer, as it refit by none of them;" in note
    assert "refit scorer" not in note


CTRL_C_OPTUNA_SCRIPT = (
    LIGHTNING_HEAD
    + """
import optuna
from greenprint.integrations.optuna import GreenprintCallback as OptunaCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
train = DataLoader(TensorDataset(X[:80], Y[:80]), batch_size=16)
held = DataLoader(TensorDataset(X[80:], Y[80:]), batch_size=40)


def objective(trial):
    global STOP_AT
    lr = trial.suggest_float("lr", 1e-3, 0.3, log=True)
    if trial.number == 2:
        STOP_AT = (lr, 1)
    fit = trainer("fit", "optc")
    fit.fit(Regressor(lr), train, held)
    return float(fit.callback_metrics["val_loss"])


callback = OptunaCallback()
study = optuna.create_study(study_name="optc", direction="minimize")
study.optimize(callback.track(objective), n_trials=4, callbacks=[callback])
"""
)


def test_a_ctrl_c_in_a_lightning_fit_interrupts_its_optuna_trial(tmp_path_factory):
    """Ctrl-C in the third Optuna trial's Lightning fit (greenprint's Optuna and Lightning
    callbacks): the trial is ``interrupted`` (``KeyboardInterrupt``) as its fit, not
    ``failed`` with ``SystemExit: 1``."""
    need_installed("lightning", "lightning")
    need_installed("optuna", "optuna")
    home, done = _searched(tmp_path_factory, "optc", CTRL_C_OPTUNA_SCRIPT)
    assert done.returncode == 1, done.stderr
    report = _report(home, "--no-plots")
    stopped = _runs(report)["trial-2"]
    assert (stopped["status"], stopped["error"]) == ("interrupted", "KeyboardInterrupt")


WRAPPED_SEARCH_SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
import greenprint as gp
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
with gp.track("experiment", study="wrapped") as run:  # the whole script, tracked
    search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.01, 0.1, 1.0]}, cv=3)
    track_search(search, X_train, y_train, study="wrapped")
    run.log(test_accuracy=search.score(X_test, y_test))
"""


def test_a_run_around_a_grid_search_is_its_sweep_not_its_one_trial(tmp_path_factory):
    """``gp.track("experiment")`` around the whole script: a ``GridSearchCV`` through
    ``track_search`` (a sweep, its candidates trials, its refit final) and the refitted
    model's test accuracy logged on the experiment. The report read '1 trial (of 15 runs)',
    the experiment the final run (its test accuracy), the three candidates and the refit its
    parts ('study / final model: 1x'). It should read the three candidates as the trials,
    the refit as the final run, and the experiment as the sweep around the search."""
    need_installed("sklearn", "sklearn")
    home, done = _searched(tmp_path_factory, "wrapped", WRAPPED_SEARCH_SCRIPT)
    assert done.returncode == 0, done.stderr
    report = _report(home, "--no-plots")
    runs = _runs(report)
    assert runs["experiment"]["role"] == "sweep"
    trials = sorted(n for n, r in runs.items() if r["role"] == "trial")
    assert trials == [f"GridSearchCV-LogisticRegression-c{k}" for k in range(3)]
    assert [r["name"] for r in report["runs"] if r["is_final"]] == [
        "GridSearchCV-LogisticRegression-refit"
    ]
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] == pytest.approx(runs["experiment"]["energy_kwh"])
