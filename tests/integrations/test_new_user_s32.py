"""Session 32: the integrations as a new user meets them, following docs/integrations.md.

A model fitted twice with a role given. The Lightning docs' first example gives its callback
``role="final"``; "A module fitted again" then says a second ``fit`` of the same module is one
training. Both together (the same callback, its Trainer's ``max_epochs`` raised and the module
fitted again, as a user fine-tunes the model they report) left two runs of role ``final``:
``trained_again`` linked only runs given no role. The report took the final run of the lowest
``val_loss`` of the two and priced the final model at the last fit alone (24% of the study's
energy in the user's script, whose model both fits trained). A first stage given no role then a
last one given ``role="final"`` still reads as a trial beside the final model (it may be a
search's best configuration trained on). Now a later training given the same role as the
earlier, none or ``trial``, ``final`` or ``baseline``, continues it (the earlier becomes its
``part``, ``contained`` false); a learning curve's points (``role="learning-curve"``) and two
roles that differ stay apart.

Each script runs in an empty directory with a clean environment, its runs measured by a
constant-power meter, so the truth of each energy figure is power x time.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import _script_fork
import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parents[1] / "tracking")

#: The constant power of the scripts' meter, in W.
WATTS = 360.0

#: One module per study, fitted twice (a Trainer per fit, one epoch each, the second for 2):
#: ``final-twice`` (the docs' callback with ``role="final"`` on both fits, the same Trainer),
#: ``then-final`` (stage 1 given no role, stage 2 ``role="final"``), ``curve`` (each fit a point
#: of a learning curve over epochs, the same name) and ``final-then-none`` (stage 1 ``final``,
#: stage 2 no role).
LIGHTNING_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
train, val = DataLoader(data, batch_size=16), DataLoader(data, batch_size=32)


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def callback(study, role):
    return GreenprintCallback("regressor", study=study, ledger="greenprint.db", role=role,
                              meters=ConstantProcessPower(@WATTS@))


def trainer(cb, epochs):
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", callbacks=[cb], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)


model = Regressor()
t = trainer(callback("final-twice", "final"), 1)
t.fit(model, train, val)
t.fit_loop.max_epochs = 2  # more epochs on the fitted model
t.fit(model, train, val)

for study, roles in (("then-final", (None, "final")), ("curve", ("learning-curve",) * 2),
                     ("final-then-none", ("final", None))):
    model = Regressor()
    for epochs, role in zip((1, 2), roles):
        trainer(callback(study, role), epochs).fit(model, train, val)
print("done")
"""


@pytest.fixture(scope="module")
def fitted_twice(tmp_path_factory):
    """The Lightning script run once in an empty directory."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "fitted-twice")
    script = LIGHTNING_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "fit.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "fit.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "greenprint:" not in done.stderr
    return home


def _stages(home: Path, study: str) -> list[gp.RunRecord]:
    runs = gp.Ledger(home / "greenprint.db").runs(study=study)
    return sorted(runs, key=lambda r: r.started_at)


def _root_energy_kwh(home: Path, study: str) -> float:
    """The study's energy as sqlite3 reads the ledger: runs with no parent, and parts recorded
    outside their parent's measurement (``contained`` false)."""
    with sqlite3.connect(home / "greenprint.db") as db:
        (total,) = db.execute(
            "SELECT sum(energy_kwh) FROM runs WHERE study = ? "
            "AND (parent_id IS NULL OR contained = 0)",
            (study,),
        ).fetchone()
    return float(total)


def test_a_final_model_fitted_twice_is_one_final_run_costing_both_fits(fitted_twice):
    """Before: two runs of role final, the report's final model the second fit alone. Now the
    first fit is the final run's part: the study has no trial, one final run scored by its
    last fit, and the final model costs the whole study."""
    home, study = fitted_twice, "final-twice"
    first, second = _stages(home, study)
    assert (first.parent_id, first.role, first.contained) == (second.id, "part", False)
    assert (second.parent_id, second.role, second.status) == (None, "final", "finished")
    report = _report(home, "--study", study, "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (2, 0)
    assert (tag["final"]["run_id"], tag["final"]["rule"]) == (second.id, "role")
    assert tag["final"]["score"] == second.metric("val_loss")
    both = first.energy_kwh + second.energy_kwh
    assert tag["total"]["energy_kwh"] == pytest.approx(_root_energy_kwh(home, study), rel=1e-9)
    assert tag["total"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert tag["final"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert both == pytest.approx(WATTS * (first.duration_s + second.duration_s) / 3.6e6, rel=0.05)
    _export_reads_as_the_report(home, study, report)
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--tree", "--study", study)
    assert listed.returncode == 0, listed.stderr
    assert "final*" not in listed.stdout and "part*" not in listed.stdout


def test_a_learning_curve_over_epochs_keeps_its_points(fitted_twice):
    """One module fitted for 1 then 2 epochs, each fit given role 'learning-curve' under one
    name: two points of the curve, linked to nothing, as before."""
    runs = _stages(fitted_twice, "curve")
    assert [(r.parent_id, r.role) for r in runs] == [(None, "learning-curve")] * 2


@pytest.mark.parametrize(
    ("study", "roles"), [("final-then-none", ("final", None)), ("then-final", (None, "final"))]
)
def test_two_roles_that_differ_are_kept(fitted_twice, study, roles):
    """Stage 1 given role 'final' and stage 2 none, or stage 1 none (a search's trial, maybe
    its best configuration) and stage 2 'final': nothing linked, as before."""
    runs = _stages(fitted_twice, study)
    assert [(r.parent_id, r.role) for r in runs] == [(None, roles[0]), (None, roles[1])]


# ------------------------------------------------------------ Optuna's ask-and-tell
#: Ask-and-tell as docs/integrations.md now writes it: the trial's work through ``cb.track``,
#: the trial ``tell`` returns given to the callback; trial 1 raises (told FAIL), trial 3 is
#: pruned. Optuna minimises (its default).
ASK_AND_TELL_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import optuna
from greenprint.integrations.optuna import GreenprintCallback
from _meters import ConstantProcessPower

optuna.logging.set_verbosity(optuna.logging.ERROR)
cb = GreenprintCallback(ledger="greenprint.db", meters=ConstantProcessPower(@WATTS@))
study = optuna.create_study(study_name="ask-and-tell", sampler=optuna.samplers.RandomSampler(0))


def work(trial):
    x = trial.suggest_float("x", -10, 10)
    trial.report((x - 2) ** 2 + 1, 0)
    if trial.number == 1:
        raise RuntimeError("diverged")
    if trial.number == 3:
        raise optuna.TrialPruned()
    sum(i * i for i in range(20000))
    return (x - 2) ** 2


measured = cb.track(work)
for _ in range(5):
    trial = study.ask()
    try:
        value = measured(trial)
    except optuna.TrialPruned:
        done = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    except RuntimeError:
        done = study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        done = study.tell(trial, value)
    cb(study, done)
print("best", study.best_trial.number, repr(study.best_value))
"""


def test_ask_and_tell_through_the_callback_records_each_trial_and_its_direction(
    tmp_path_factory,
):
    """Before, the docs' ask-and-tell recipe was a plain ``gp.track`` per trial with
    ``run.log(value=...)``: no direction recorded, so the report maximised ``value`` and took
    the worst trial of a minimising study for the final run. Through ``cb.track`` each trial
    is a run of role trial with its status (failed, pruned), params, value and the study's
    direction, and the final run is Optuna's best trial."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "ask-and-tell")
    script = ASK_AND_TELL_SCRIPT.replace("@METERS@", repr(METERS_DIR))
    (home / "at.py").write_text(script.replace("@WATTS@", repr(WATTS)), encoding="utf-8")
    done = run_in(home, sys.executable, "at.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "greenprint:" not in done.stderr
    best_number, best_value = done.stdout.split()[1:3]
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db").runs(study="ask-and-tell")}
    assert sorted(runs) == [f"trial-{n}" for n in range(5)]
    assert {n: (r.role, r.status) for n, r in runs.items()} == {
        "trial-0": ("trial", "finished"),
        "trial-1": ("trial", "failed"),
        "trial-2": ("trial", "finished"),
        "trial-3": ("trial", "pruned"),
        "trial-4": ("trial", "finished"),
    }
    assert runs["trial-1"].error.startswith("RuntimeError: diverged")
    assert all(set(r.params) == {"x"} for r in runs.values())
    assert {r.provenance.get("objectives") for r in runs.values()} == {"value: minimize"}
    best = runs[f"trial-{best_number}"]
    assert best.metric("value") == float(best_value)
    report = _report(home, "--study", "ask-and-tell", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (report["metric"], report["mode"]) == ("value", "min")
    assert (tag["final"]["run_id"], tag["final"]["rule"]) == (best.id, "best-trial")
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (5, 5)
    assert tag["roles"]["inferred"] == 0
    total = _root_energy_kwh(home, "ask-and-tell")
    assert tag["total"]["energy_kwh"] == pytest.approx(total, rel=1e-9)


# ------------------------------------------------------------ a training inside a trial's run
#: An Optuna study whose trials each fit a Lightning module (greenprint's Lightning callback on
#: the Trainer, given no role), pruned by a Lightning callback of the user's that raises
#: ``optuna.TrialPruned`` (trial 1 always, trial 2 fails in its fit); then two fits inside a
#: sweep run of the user's (study ``pl-sweep``) and a Hugging Face training inside a
#: ``gp.track(..., role="trial")`` (study ``hf-trial``).
NESTED_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import optuna
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from transformers import (AutoModelForSequenceClassification, BertConfig, Trainer,
                          TrainingArguments)

import greenprint as gp
from greenprint.integrations.lightning import GreenprintCallback as FitCallback
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.integrations.transformers import GreenprintCallback as HFCallback
from _meters import ConstantProcessPower

optuna.logging.set_verbosity(optuna.logging.ERROR)
torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
train, val = DataLoader(data, batch_size=16), DataLoader(data, batch_size=32)


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.lr > 1:
            raise FloatingPointError("diverged")
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Pruning(pl.Callback):
    def __init__(self, trial):
        self.trial = trial

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking and self.trial.number == 1:
            raise optuna.TrialPruned()


def fit(lr, *callbacks):
    cb = FitCallback("fit", meters=ConstantProcessPower(@WATTS@))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", callbacks=[cb, *callbacks],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(Regressor(lr), train, val)
    return trainer.callback_metrics["val_loss"].item()


def objective(trial):
    lr = {0: 0.01, 1: 0.1, 2: 10.0}[trial.number]
    trial.suggest_float("lr", lr, lr)
    return fit(lr, Pruning(trial))


cb = GreenprintCallback(ledger="greenprint.db", meters=ConstantProcessPower(@WATTS@))
study = optuna.create_study(study_name="pl-optuna")
study.optimize(cb.track(objective), n_trials=3, callbacks=[cb], catch=(FloatingPointError,))

with gp.track("search", study="pl-sweep", ledger="greenprint.db", role="sweep",
              meters=ConstantProcessPower(@WATTS@)):
    for lr in (0.01, 0.1):
        fit(lr)

config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=2)
rows = [{"input_ids": torch.randint(0, 50, (8,)), "labels": torch.tensor(i % 2)}
        for i in range(16)]
args = TrainingArguments(output_dir="hf", report_to="none", use_cpu=True, max_steps=1,
                         per_device_train_batch_size=8, save_strategy="no", disable_tqdm=True)
with gp.track("lr=5e-5", study="hf-trial", ledger="greenprint.db", role="trial",
              meters=ConstantProcessPower(@WATTS@)) as run:
    trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                      train_dataset=rows)
    HFCallback("bert", meters=ConstantProcessPower(@WATTS@)).attach(trainer)
    trainer.train()
    run.log(accuracy=0.5)

model = AutoModelForSequenceClassification.from_config(config)  # the final model, two stages
for stage in ("head", "all"):
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    HFCallback("bert", study="hf-final-twice", ledger="greenprint.db", role="final",
               meters=ConstantProcessPower(@WATTS@)).attach(trainer)
    trainer.train()
print("states", *(t.state.name for t in study.trials))
"""


def _run_beside_lightning(home: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT`` in ``home`` as :func:`run_in` runs a script importing Lightning and
    Transformers, in a child of a server forked from the Lightning server of this pytest
    process (which ran :func:`fitted_twice`'s script) and importing Transformers beside it
    (:func:`_script_fork.run_script_beside`): torch, torch._dynamo and Lightning are imported
    once in the file, not again by a server of both (with the suite's one OpenMP thread, the
    file took 14.3 s of CPU, 10.3 s now). A fresh process, as ``run_in`` gives, when no server
    can serve (threads started, as torch's pools are without ``OMP_NUM_THREADS``)."""
    done = _script_fork.run_script_beside(
        ("lightning",), _script_fork.PRELOADS["transformers"], home, script, clean_env(), 300
    )
    return run_in(home, sys.executable, script) if done is None else done


@pytest.fixture(scope="module")
def nested_home(tmp_path_factory):
    """The nested-trainings script run once in an empty directory."""
    need_installed("lightning", "lightning")
    need_installed("transformers", "transformers")
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "nested")
    script = NESTED_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "nested.py").write_text(script, encoding="utf-8")
    done = _run_beside_lightning(home, "nested.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "greenprint:" not in done.stderr
    assert done.stdout.split()[-3:] == ["COMPLETE", "PRUNED", "FAIL"]
    return home


def test_a_fit_inside_an_optuna_trial_is_said_to_be_its_part(nested_home):
    """Before, each trial's Lightning fit had no role (``part*`` in ``ledger ls --tree``, the
    report's note of roles inferred for 3 of 6 runs). Now each fit is a ``part`` of its trial,
    with the trial's status (pruned, failed with the error), and no role is inferred."""
    home = nested_home
    runs = gp.Ledger(home / "greenprint.db").runs(study="pl-optuna")
    trials = {r.name: r for r in runs if r.role == "trial"}
    fits = {r.parent_id: r for r in runs if r.name == "fit"}
    assert len(runs) == 6 and sorted(trials) == ["trial-0", "trial-1", "trial-2"]
    got = {n: (t.status, fits[t.id].role, fits[t.id].status) for n, t in trials.items()}
    assert got == {
        "trial-0": ("finished", "part", "finished"),
        "trial-1": ("pruned", "part", "pruned"),
        "trial-2": ("failed", "part", "failed"),
    }
    assert fits[trials["trial-2"].id].error.startswith("FloatingPointError: diverged")
    assert trials["trial-0"].metric("value") == fits[trials["trial-0"].id].metric("val_loss")
    report = _report(home, "--study", "pl-optuna", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert tag["roles"]["inferred"] == 0 and tag["roles"]["counts"] == {"trial": 3, "part": 3}
    assert (tag["final"]["run_id"], tag["final"]["rule"]) == (trials["trial-0"].id, "best-trial")
    total = _root_energy_kwh(home, "pl-optuna")
    assert tag["total"]["energy_kwh"] == pytest.approx(total, rel=1e-9)
    listed = run_in(home, GREENPRINT, "ledger", "ls", "--tree", "--study", "pl-optuna")
    assert listed.returncode == 0, listed.stderr
    assert "*" not in listed.stdout


def test_fits_inside_a_sweep_are_its_trials_and_a_training_inside_a_trial_its_part(
    nested_home,
):
    """The sweep's two fits are said to be trials; the Hugging Face training inside a run
    given role 'trial' is its part; nothing is inferred."""
    led = gp.Ledger(nested_home / "greenprint.db")
    sweep = led.runs(study="pl-sweep")
    assert sorted((r.name, r.role) for r in sweep) == [
        ("fit", "trial"),
        ("fit", "trial"),
        ("search", "sweep"),
    ]
    (trial,) = (r for r in led.runs(study="hf-trial") if r.parent_id is None)
    (training,) = (r for r in led.runs(study="hf-trial") if r.parent_id == trial.id)
    assert (trial.role, training.role, training.name) == ("trial", "part", "bert")
    for study in ("pl-sweep", "hf-trial"):
        report = _report(nested_home, "--study", study, "--no-plots", "--format", "json")
        assert report["price_tag"]["roles"]["inferred"] == 0


def test_a_hugging_face_model_trained_twice_with_role_final_is_one_final_run(nested_home):
    """The Hugging Face side of the first test: a model trained by a Trainer whose callback is
    given role 'final', then by a new Trainer (its callback 'final' too): the first training
    is the final run's part (contained false), the final model costs both."""
    home = nested_home
    first, second = _stages(home, "hf-final-twice")
    assert (first.parent_id, first.role, first.contained) == (second.id, "part", False)
    assert (second.parent_id, second.role) == (None, "final")
    report = _report(home, "--study", "hf-final-twice", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["trials"], tag["final"]["run_id"]) == (0, second.id)
    both = first.energy_kwh + second.energy_kwh
    assert tag["final"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert tag["total"]["energy_kwh"] == pytest.approx(_root_energy_kwh(home, "hf-final-twice"))
