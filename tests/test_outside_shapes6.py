"""Issue 12, an eighth outside check: study shapes the first seven checks did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration),
then read by ``greenprint report`` and ``greenprint ledger export``. The scripts' runs are
measured by a constant-power meter (``tests/tracking/_meters.ConstantProcessPower``), so that
the truth of every energy figure is power x time:

* **Lightning's learning-rate finder before the fit**: ``Tuner(trainer).lr_find(...)``, then
  ``trainer.fit(...)`` and ``trainer.test(...)`` by the same Trainer with greenprint's
  Lightning callback; and the same finder given as a ``LearningRateFinder`` callback (before
  or after greenprint's: Lightning moves it first). The finder trains the model for up to 100
  steps (then restores it): work done before greenprint's ``on_fit_start``, which the
  callback never measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

# ------------------------------------------------------------ Lightning's lr finder
#: ``Tuner.lr_find`` then fit and test (study ``lit-tuner``); a ``LearningRateFinder`` callback
#: before greenprint's (study ``lit-cb``), and after it (``lit-first``: Lightning runs its
#: finders before every other callback whatever the order given); the finder by one Trainer
#: and callback, the fit by new ones (``lit-new``).
LR_FIND_SCRIPT = """
import json
import sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

torch.manual_seed(0)


class Regressor(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.lr = lr
        self.layer = torch.nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


data = TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
train, val = DataLoader(data, batch_size=16), DataLoader(data, batch_size=64)


def trainer(study, *before, after=()):
    cb = GreenprintCallback("regressor", study=study, meters=ConstantProcessPower(@WATTS@))
    return pl.Trainer(max_epochs=2, accelerator="cpu", callbacks=[*before, cb, *after],
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)


t = trainer("lit-tuner")
model = Regressor()
Tuner(t).lr_find(model, train, val, num_training=60)
t.fit(model, train, val)
t.test(model, val)
trainer("lit-cb", LearningRateFinder(num_training_steps=60)).fit(Regressor(), train, val)
trainer("lit-first", after=[LearningRateFinder(num_training_steps=60)]).fit(
    Regressor(), train, val
)
t = trainer("lit-new")
Tuner(t).lr_find(Regressor(), train, val, num_training=60)
trainer("lit-new").fit(Regressor(), train, val)  # a new Trainer and callback fit
"""


@pytest.fixture(scope="module")
def lr_find_home(tmp_path_factory):
    """The lr-finder script run once in an empty directory."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "lr-find")
    script = LR_FIND_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "train.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "train.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.mark.parametrize("study", ["lit-tuner", "lit-cb", "lit-first"])
def test_the_lr_finders_training_is_a_part_of_the_fit_it_tuned(lr_find_home, study):
    """Before: one run, the fit; the finder's 60 training steps before it were measured by
    nobody (a third of the wall time of this tuning and fit, 0.10 of 0.29 s with 100 steps on
    a new user's script). Now the finder is a run of its own, finished, a part of the fit's
    run outside its measurement (contained false), so the price tag adds it once: one trial,
    and the study's energy is both runs' power x time. A ``LearningRateFinder`` given after
    greenprint's callback is run first all the same (Lightning orders its finders first)."""
    runs = {r.name: r for r in gp.Ledger(lr_find_home / "greenprint.db").runs(study=study)}
    tested = runs.pop("regressor-test", None)  # lit-tuner's test after the fit (session 24)
    assert (tested is not None) == (study == "lit-tuner")
    assert set(runs) == {"regressor", "regressor-lr_find"}
    fit, finder = runs["regressor"], runs["regressor-lr_find"]
    assert (finder.parent_id, finder.role, finder.contained, finder.status) == (
        fit.id,
        "part",
        False,
        "finished",
    )
    assert finder.ended_at <= fit.started_at
    assert finder.energy_kwh == pytest.approx(WATTS * finder.duration_s / 3.6e6, rel=0.05)
    report = _report(lr_find_home, "--study", study, "--no-plots", "--format", "json")
    total = report["price_tag"]["total"]
    tested_kwh = tested.energy_kwh if tested is not None else 0.0
    assert (total["runs"], total["trials"]) == (2 + (tested is not None), 1)
    assert total["energy_kwh"] == pytest.approx(
        fit.energy_kwh + finder.energy_kwh + tested_kwh, rel=1e-9
    )
    roles = {row["name"]: row["role"] for row in report["runs"]}
    assert roles == {
        "regressor": "trial",
        "regressor-lr_find": "part",
        **({"regressor-test": "part"} if tested is not None else {}),
    }
    _export_reads_as_the_report(lr_find_home, study, report)


def test_the_test_after_the_fit_scores_the_fits_run(lr_find_home):
    """``trainer.test`` after the tuned fit adds ``test_loss`` to the fit's run, not to the
    finder's; its cost is a run of its own (since session 24), a part of the fit's run
    outside its measurement."""
    runs = {r.name: r for r in gp.Ledger(lr_find_home / "greenprint.db").runs(study="lit-tuner")}
    assert runs["regressor"].metric("test_loss")
    assert not runs["regressor-lr_find"].metric("test_loss")
    tested, fit = runs["regressor-test"], runs["regressor"]
    assert (tested.parent_id, tested.role, tested.contained) == (fit.id, "part", False)


# ------------------------------------------------------------ HF: the retrain after a search
#: ``Trainer.hyperparameter_search(backend="optuna", n_trials=3)`` with Hugging Face's
#: defaults (no ``compute_metrics``: the objective is the evaluation loss, minimised), then the
#: retrain as Hugging Face's documentation writes it (each best hyper-parameter set on
#: ``trainer.args``, ``trainer.train()``), no run of greenprint's around it; then one more
#: training with another learning rate.
HF_RETRAIN_SCRIPT = """
import json, warnings
import optuna
from transformers import Trainer, TrainingArguments
from greenprint.integrations.transformers import GreenprintCallback
from hf_tiny import Tokens, tiny_bert

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def hp_space(trial):
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)}


args = TrainingArguments(output_dir="out", num_train_epochs=1, eval_strategy="epoch",
                         save_strategy="no", logging_steps=2, report_to=[], use_cpu=True,
                         disable_tqdm=True)
trainer = Trainer(model_init=tiny_bert, args=args, train_dataset=Tokens(32, seed=0),
                  eval_dataset=Tokens(32, seed=1))
GreenprintCallback(study="hf-retrain").attach(trainer)
best = trainer.hyperparameter_search(hp_space=hp_space, backend="optuna", n_trials=3,
                                     sampler=optuna.samplers.RandomSampler(seed=0))
for name, value in best.hyperparameters.items():
    setattr(trainer.args, name, value)
trainer.train()
trainer.args.learning_rate = best.hyperparameters["learning_rate"] / 10
trainer.train()
print(json.dumps(best.hyperparameters))
"""


@pytest.fixture(scope="module")
def hf_retrain_home(tmp_path_factory):
    """The search-then-retrain script run once in an empty directory."""
    need_installed("transformers", "transformers")
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "hf-retrain")
    here = Path(__file__).parent / "integrations" / "_hf.py"
    (home / "hf_tiny.py").write_text(here.read_text(encoding="utf-8"), encoding="utf-8")
    (home / "study.py").write_text(HF_RETRAIN_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout.splitlines()[-1])


def test_the_retrain_with_the_searchs_best_hyperparameters_is_the_final_run(hf_retrain_home):
    """Before: the retrain read as a fourth trial of the search (4 trials where Optuna ran 3,
    the best configuration twice in the EVP), and the final run the best of the four by the
    rule 'best trial'. Now the training of the attached trainer after its search with exactly
    the search's best hyper-parameters has role 'final' (given by the integration): 3 trials
    of the search, the final run chosen by its role, scored by the objective as the trials
    are; a training with other hyper-parameters after it is a trial of its own."""
    home, best = hf_retrain_home
    report = _report(home, "--study", "hf-retrain", "--no-plots", "--format", "json")
    rows = {row["id"]: row for row in report["runs"]}
    runs = gp.Ledger(home / "greenprint.db").runs(study="hf-retrain")
    searched = [r for r in runs if r.name.startswith("trial-")]
    retrain, other = (r for r in runs if not r.name.startswith("trial-"))
    assert len(searched) == 3 and all(r.role == "trial" for r in searched)
    assert retrain.role == "final" and retrain.params["learning_rate"] == best["learning_rate"]
    assert other.role is None and rows[other.id]["role"] == "trial"
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 4, "final": 1}
    assert (tag["final"]["run_id"], tag["final"]["rule"]) == (retrain.id, "role")
    assert report["metric"] == "objective_loss" and report["mode"] == "min"
    assert tag["final"]["score"] == pytest.approx(retrain.metric("objective_loss"))
    _export_reads_as_the_report(home, "hf-retrain", report)


# ------------------------------------------------------------ a pool's workers in another study
#: A ``multiprocessing.Pool`` made before two searches (as ``test_distributed_searches``'s
#: pool script), whose worker's ``gp.track`` forgot ``study=``: the trials land in the study
#: ``default``, measured inside the searches of study ``mp`` all the same.
FORGOT_STUDY_SCRIPT = """
import multiprocessing as mp
import time
import greenprint as gp


def trial(x):
    with gp.track(f"x={x}", params={"x": x}) as run:  # no study=: the user forgot it
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        run.log(accuracy=x / 10)
    return x


if __name__ == "__main__":
    pool = mp.get_context("fork").Pool(2)
    for name, xs in (("search-a", [1, 2, 3]), ("search-b", [4, 5, 6])):
        with gp.track(name, study="mp"):
            pool.map(trial, xs)
    pool.close()
    pool.join()
"""


@pytest.fixture(scope="module")
def forgot_study_home(tmp_path_factory):
    """The pool script whose workers forgot ``study=``, run once in an empty directory."""
    home = _empty(tmp_path_factory, "forgot-study")
    (home / "search.py").write_text(FORGOT_STUDY_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def test_a_search_whose_workers_wrote_another_study_says_so(forgot_study_home):
    """Before: the report of study 'mp' read two unscored trials, 'no run logged a metric',
    and nothing said where the six trials went. Now a note names the runs of study 'default'
    that the searches measured (started in worker processes of their process trees), says
    that their cost is in this study's already, and how to read them as its trials. The
    price tag stays what the searches measured (links across studies are not guessed)."""
    home = forgot_study_home
    runs = gp.Ledger(home / "greenprint.db").runs()
    assert {r.study for r in runs} == {"mp", "default"}
    report = _report(home, "--study", "mp", "--no-plots", "--format", "json")
    (note,) = [n for n in report["notes"] if "study 'default'" in n]
    assert note.startswith("6 top-level runs of study 'default'")
    for search in ("search-a", "search-b"):
        run = next(r for r in runs if r.name == search)
        assert run.id[:8] in note
    assert "study='mp'" in note and "counts it twice" in note
    measured = sum(r.energy_kwh for r in runs if r.study == "mp")
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(measured, rel=1e-9)
    assert report["price_tag"]["total"]["runs"] == 2
    done = run_in(home, GREENPRINT, "report", "--study", "mp", "--format", "md", "--no-plots",
                  "--out", "md")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "study 'default'" in (home / "md" / "report.md").read_text(encoding="utf-8")


def test_the_workers_study_says_its_runs_ran_inside_another_studys(forgot_study_home):
    """Before: study 'default' read six trials and nothing said that study 'mp''s searches
    measured them too. Now a note names the searches that hold their cost, that adding both
    totals counts it twice, and the study= to give; its trials and total stay its own."""
    home = forgot_study_home
    runs = gp.Ledger(home / "greenprint.db").runs()
    report = _report(home, "--study", "default", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 6
    own = sum(r.energy_kwh for r in runs if r.study == "default")
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(own, rel=1e-9)
    (note,) = [n for n in report["notes"] if "study 'mp'" in n]
    assert note.startswith("6 top-level runs of this study (x=1, x=2, x=3 and 3 more)")
    for search in ("search-a", "search-b"):
        assert next(r for r in runs if r.name == search).id[:8] in note
    assert "counts it twice" in note and "study='mp'" in note


def test_scripts_started_from_one_shell_read_no_other_study(tmp_path_factory):
    """Two scripts of study 'one' started at once from one shell (two processes under one
    process that wrote no run, as a pool's workers: the other studies are read), then a
    script of study 'two': no run of either was measured inside the other's, so no note."""
    home = _empty(tmp_path_factory, "two-scripts")
    for name in ("one", "two"):
        (home / f"{name}.py").write_text(
            f"import greenprint as gp\nwith gp.track('{name}', study='{name}') as r:\n"
            "    r.log(accuracy=0.5)\n",
            encoding="utf-8",
        )
    python = sys.executable
    done = run_in(home, "sh", "-c", f"{python} one.py & {python} one.py & wait; {python} two.py")
    assert done.returncode == 0, done.stderr
    for name in ("one", "two"):
        report = _report(home, "--study", name, "--no-plots", "--format", "json")
        assert not [n for n in report["notes"] if "ran in worker processes" in n]


def test_a_finder_whose_fit_has_another_callback_is_a_part_of_no_run(lr_find_home):
    """The fit by a new Trainer and callback cannot take the finder's run: it stays a part of
    no run, counted in the price tag and no trial (one trial, the fit)."""
    runs = {r.name: r for r in gp.Ledger(lr_find_home / "greenprint.db").runs(study="lit-new")}
    fit, finder = runs["regressor"], runs["regressor-lr_find"]
    assert (finder.parent_id, finder.role) == (None, "part")
    report = _report(lr_find_home, "--study", "lit-new", "--no-plots", "--format", "json")
    total = report["price_tag"]["total"]
    assert (total["runs"], total["trials"]) == (2, 1)
    assert total["energy_kwh"] == pytest.approx(fit.energy_kwh + finder.energy_kwh, rel=1e-9)


# ------------------------------------------------------------ a search run around every role
#: One run around the whole study, no role given to it, logging the best trial's score at the
#: end (as a search script prints its best): a baseline (``role="baseline"``), three trials (no
#: role), a refit of the best (``role="final"``).
AROUND_ROLES_SCRIPT = """
import time
import greenprint as gp


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


with gp.track("search", study="around") as search:
    with gp.track("majority", role="baseline") as run:
        busy(0.02)
        run.log(accuracy=0.1)
    for lr in (0.1, 0.01, 0.001):
        with gp.track(f"lr={lr}", params={"lr": lr}) as run:
            busy(0.05)
            run.log(accuracy=0.5 + lr)
    with gp.track("refit", role="final", params={"lr": 0.1}) as run:
        busy(0.05)
        run.log(accuracy=0.62)
    search.log(accuracy=0.6)  # the best trial's score
"""


def test_a_run_around_a_baseline_trials_and_a_final_is_their_sweep(tmp_path_factory):
    """Before: the search (its score 0.6, not its best child's 0.62, the refit's) read as
    the one trial, the baseline and the refit given their roles demoted to its parts ('ran
    inside a trial'), and the final run the search itself at 100% of the study's energy.
    Now a run holding runs given role baseline, final or learning-curve is a container: the
    search is a sweep, the three runs without a role its trials, the roles given kept, the
    final run the refit by its role; the total is what the search measured."""
    home = _empty(tmp_path_factory, "around-roles")
    (home / "study.py").write_text(AROUND_ROLES_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "around", "--no-plots", "--format", "json")
    roles = {row["name"]: row["role"] for row in report["runs"]}
    assert roles == {"search": "sweep", "majority": "baseline", "lr=0.1": "trial",
                     "lr=0.01": "trial", "lr=0.001": "trial", "refit": "final"}  # fmt: skip
    tag = report["price_tag"]
    assert (tag["total"]["trials"], tag["final"]["name"], tag["final"]["rule"]) == (
        3,
        "refit",
        "role",
    )
    assert not [n for n in report["notes"] if "ran inside a trial" in n]
    (search,) = gp.Ledger(home / "greenprint.db").runs(study="around", parent_id=None)
    assert tag["total"]["energy_kwh"] == pytest.approx(search.energy_kwh, rel=1e-9)
    _export_reads_as_the_report(home, "around", report)


def test_a_training_with_its_test_given_final_or_a_trial_with_folds_stays_a_trial():
    """Records: a scored run holding a run given 'final' or 'baseline' beside children that
    do not vary a configuration (a training and its test evaluation; a trial's folds) is a
    trial, the given role read as its part, as before."""
    from greenprint.analysis import resolve_roles

    def run(rid, parent=None, *, role=None, params=None, acc=None):
        points = () if acc is None else (gp.MetricPoint("acc", acc),)
        return gp.RunRecord(id=rid, name=rid, parent_id=parent, role=role, params=params or {},
                            started_at=0.0, ended_at=1.0, status="finished",
                            metrics=points)  # fmt: skip

    training = [run("resnet", acc=0.9), run("test", "resnet", role="final", acc=0.88)]
    folds = [run("t", acc=0.8), *(run(f"t-f{k}", "t", params={"fold": k}) for k in range(3)),
             run("t-test", "t", role="final"), run("t-dummy", "t", role="baseline")]  # fmt: skip
    for runs in (training, folds):
        got = resolve_roles(runs).as_dict()
        assert got[runs[0].id] == ("trial", True)
        assert all(got[r.id][0] == "part" for r in runs[1:])
