"""Issue 13, a ninth outside check: study shapes the first eight checks did not use.

Each study is built the way users build one, in a fresh empty directory with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), then read by ``greenprint
report`` and ``greenprint ledger export``. The scripts' runs are measured by a constant-power
meter (``tests/tracking/_meters.ConstantProcessPower``), so that the truth of every energy
figure is power x time:

* **k-fold cross-validation written by hand, each fold a top-level run**: ``for lr in ...:
  for fold in range(5): with gp.track(f"lr={lr}", params={"lr": lr, "fold": fold})``, no run
  around a configuration's folds; the same with a ``seed`` (one configuration's repeated
  seeds), and the folds inside one ``gp.track("search")``.
* **Ray Tune's PopulationBasedTraining** with greenprint's Ray integration on a local Ray
  cluster: PBT pauses each trial every ``perturbation_interval`` steps and resumes it from a
  checkpoint (its own, or a better trial's it exploits), which calls the function trainable
  again: a run per stretch of a trial, each named as the trial (its test in
  ``integrations/test_ray_scripts.py``: its script shares a driver and a local Ray cluster there).
* **Two-stage fine-tuning with Hugging Face's Trainer**: ``Trainer(model=model, ...).train()``
  with the encoder frozen, then a new ``Trainer`` on the same model unfrozen.
* **A hand-written search that retrains its best configuration** in a run of its own,
  ``gp.track("best-model", params=best)``, scored on the test set, with no role given.
* **Two-stage fine-tuning with Lightning**: ``trainer.fit`` with the backbone frozen, then a
  second ``trainer.fit`` of the same module with it unfrozen, greenprint's Lightning callback
  on both Trainers.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, evp_curves, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from greenprint.analysis import expected_max_performance
from integrations._frameworks import need_installed

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

# ------------------------------------------------------------ folds as top-level runs
#: Three learning rates, five folds each, every fold its own top-level run (study
#: ``cv-roots``); the same with five seeds (``seed-roots``); the folds inside one search run
#: (``cv-search``).
FOLDS_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower


def accuracy(lr, k):
    return {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}[lr] + 0.004 * ((k * 7) % 5 - 2)


def folds(study, param, named=False):
    for lr in (0.01, 0.1, 1.0):
        for k in range(5):
            name = f"lr={lr}-{param}{k}" if named else f"lr={lr}"
            with gp.track(name, study=study, params={"lr": lr, param: k},
                          meters=ConstantProcessPower(@WATTS@)) as run:
                sum(i * i for i in range(20000))
                run.log(accuracy=accuracy(lr, k))


folds("cv-roots", "fold")
folds("cv-named", "fold", named=True)
folds("seed-roots", "seed")
with gp.track("search", study="cv-search", meters=ConstantProcessPower(@WATTS@)):
    folds("cv-search", "fold")
"""


@pytest.fixture(scope="module")
def folds_home(tmp_path_factory):
    """The folds script run once in an empty directory."""
    home = _empty(tmp_path_factory, "cv-roots")
    script = FOLDS_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "cv.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "cv.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def _accuracy(lr: float, k: int) -> float:
    return {0.01: 0.80, 0.1: 0.86, 1.0: 0.81}[lr] + 0.004 * ((k * 7) % 5 - 2)


def _note(report: dict, text: str) -> str:
    (found,) = [n for n in report["notes"] if text in n]
    return found


@pytest.mark.parametrize("study", ["cv-roots", "cv-named"])
def test_folds_as_top_level_runs_say_they_are_read_as_trials_and_the_fix(folds_home, study):
    """Before: 15 trials, the expected best score drawn over single folds and the final run
    the best fold (0.868 of a configuration whose folds' mean is 0.86), with nothing said. The
    read stays (nothing links the folds: they may be meant as trials), but a note says that
    the 15 trials are 3 configurations run 5 times, differing by 'fold' only, and gives the
    commands that make each configuration one trial; run as the note says, the report reads 3
    trials, each scored by its 5 folds' mean and costing them all, the total unchanged. The
    same with each fold named apart (f"lr={lr}-fold{k}")."""
    home = folds_home
    report = _report(home, "--study", study, "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    assert "15 trials are 3 configurations run 5 times each" in note
    assert "'fold'" in note and "greenprint ledger set-role part" in note
    runs = gp.Ledger(home / "greenprint.db").runs(study=study)
    by_lr: dict[float, list[gp.RunRecord]] = {}
    for run in sorted(runs, key=lambda r: r.started_at):
        by_lr.setdefault(run.params["lr"], []).append(run)
    first = by_lr[0.01]
    assert f"--part-of {first[0].id[:8]}" in note
    assert " ".join(r.id[:8] for r in first[1:]) in note
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)

    for group in by_lr.values():  # what the note says, once per configuration
        ids = [r.id[:8] for r in group]
        done = run_in(home, GREENPRINT, "ledger", "set-role", "part", *ids[1:],
                      "--part-of", ids[0])  # fmt: skip
        assert done.returncode == 0, done.stderr
    report = _report(home, "--study", study, "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (15, 3)
    assert tag["total"]["energy_kwh"] == pytest.approx(total, rel=1e-9)
    assert not [n for n in report["notes"] if "configurations run" in n]
    assert _note(report, "each trial's score is the mean of its own and its repeats'")
    rows = {r["id"]: r for r in report["runs"]}
    means = {}
    for lr, group in by_lr.items():
        row = rows[group[0].id]
        means[lr] = math.fsum(_accuracy(lr, k) for k in range(5)) / 5
        assert (row["role"], row["score_source"]) == ("trial", "parts")
        assert row["score"] == pytest.approx(means[lr], abs=1e-12)
    best = by_lr[0.1]
    assert (tag["final"]["name"], tag["final"]["run_id"]) == (best[0].name, best[0].id)
    assert tag["final"]["score"] == pytest.approx(means[0.1], abs=1e-12)
    assert tag["final"]["energy_kwh"] == pytest.approx(sum(r.energy_kwh for r in best), rel=1e-9)
    curve = evp_curves(report)["with replacement (Dodge et al.)"]
    expected = expected_max_performance(list(means.values()), mode="max").mean.tolist()
    assert curve == pytest.approx(expected, abs=1e-12)
    _export_reads_as_the_report(home, study, report)


def test_seeds_as_top_level_runs_say_so_too(folds_home):
    """One configuration's repeated seeds, each a top-level run: read as 15 trials (seeds may
    be meant as draws of the search, as Dodge et al. 2020 draw them), with the note naming
    'seed'."""
    report = _report(folds_home, "--study", "seed-roots", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    assert "15 trials are 3 configurations run 5 times each" in note and "'seed'" in note


def test_folds_inside_a_search_run_say_to_track_a_run_per_configuration(folds_home):
    """The folds inside one search run are its 15 trials, as before; the note says so, and as
    a fold measured inside the search cannot be made a part of another run afterwards
    (set-role refuses), it gives the fix: a run per configuration around its folds."""
    report = _report(folds_home, "--study", "cv-search", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 15
    note = _note(report, "configurations")
    said = note[note.index("15 trials are 3 configurations run 5 times each") :]
    assert "set-role" not in said and "one run per configuration" in said


# ------------------------------------------------------------ Lightning, two-stage fine-tuning
TWO_STAGE_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

torch.manual_seed(0)


class Net(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.backbone = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.relu(self.backbone(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        trained = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.SGD(trained, lr=self.hparams.lr)


data = TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
train, val = DataLoader(data, batch_size=16), DataLoader(data, batch_size=64)


def fit(model, study, epochs=2):
    cb = GreenprintCallback("finetune", study=study, meters=ConstantProcessPower(@WATTS@))
    pl.Trainer(max_epochs=epochs, accelerator="cpu", callbacks=[cb], logger=False,
               enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(model, train, val)


model = Net()
model.backbone.requires_grad_(False)  # stage 1: the head only
fit(model, "two-stage")
model.backbone.requires_grad_(True)  # stage 2: the whole model, from stage 1's weights
fit(model, "two-stage", epochs=3)  # for longer: trainer.max_epochs is the stage's, not a config
fit(Net(), "two-models")  # two models trained apart: two trials
fit(Net(), "two-models")
"""


@pytest.fixture(scope="module")
def two_stage_home(tmp_path_factory):
    """The two-stage script run once in an empty directory."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "two-stage")
    script = TWO_STAGE_SCRIPT.replace("@METERS@", repr(METERS_DIR))
    (home / "ft.py").write_text(script.replace("@WATTS@", repr(WATTS)), encoding="utf-8")
    done = run_in(home, sys.executable, "ft.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def test_a_module_fitted_twice_is_one_training_scored_by_its_last_fit(two_stage_home):
    """Before: two trials of one name and params, the final run stage 2 at half the study's
    energy, though its model is stage 1's weights trained further (stage 2 runs 3 epochs to stage
    1's 2: trainer.max_epochs is the stage's, not a configuration). Now the second fit of the
    same module takes the first fit's run as its part (contained false: measured apart, added
    once): one trial, scored by stage 2's val_loss, costing both stages."""
    home = two_stage_home
    first, second = sorted(
        gp.Ledger(home / "greenprint.db").runs(study="two-stage"), key=lambda r: r.started_at
    )
    assert (first.parent_id, first.role, first.contained) == (second.id, "part", False)
    assert first.ended_at <= second.started_at
    report = _report(home, "--study", "two-stage", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (2, 1)
    assert (tag["final"]["run_id"], tag["final"]["score_source"]) == (second.id, "own")
    assert tag["final"]["score"] == second.metric("val_loss")
    both = first.energy_kwh + second.energy_kwh
    assert tag["total"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert tag["final"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert both == pytest.approx(WATTS * (first.duration_s + second.duration_s) / 3.6e6, rel=0.05)
    _export_reads_as_the_report(home, "two-stage", report)


def test_two_modules_fitted_apart_stay_two_trials(two_stage_home):
    """Two new modules, one fit each: two trainings, two trials, as before."""
    runs = gp.Ledger(two_stage_home / "greenprint.db").runs(study="two-models")
    assert [(r.parent_id, r.role) for r in runs] == [(None, None), (None, None)]
    report = _report(two_stage_home, "--study", "two-models", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 2


# ------------------------------------------------------------ the best configuration retrained
RETRAIN_SCRIPT = """
import sys
sys.path.insert(0, @METERS@)
import greenprint as gp
from _meters import ConstantProcessPower

scores = {}
for lr in (0.001, 0.01, 0.1):
    with gp.track(f"lr={lr}", study="hand", params={"lr": lr},
                  meters=ConstantProcessPower(@WATTS@)) as run:
        sum(i * i for i in range(20000))
        scores[lr] = {0.001: 0.80, 0.01: 0.90, 0.1: 0.85}[lr]
        run.log(val_acc=scores[lr])
best = max(scores, key=scores.get)
with gp.track("best-model", study="hand", params={"lr": best},
              meters=ConstantProcessPower(@WATTS@)) as run:
    sum(i * i for i in range(40000))
    run.log(test_acc=0.88)
"""


def test_a_retrain_of_the_best_configuration_says_how_to_make_it_final(tmp_path_factory):
    """Before: the retrain, which logged test_acc and no val_acc, read as a fourth trial with
    no score (counted as the worst in the expected best score) and the final run the trial
    lr=0.01, with nothing said. The read stays (nothing says it is not a trial that forgot its
    score), but a note names it, the trial whose params it reran, and the command; run as the
    note says, the report reads 3 trials and the retrain as the final run."""
    home = _empty(tmp_path_factory, "retrain")
    script = RETRAIN_SCRIPT.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))
    (home / "s.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "s.py")
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "hand", "--no-plots", "--format", "json")
    assert report["price_tag"]["total"]["trials"] == 4
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db").runs(study="hand")}
    note = _note(report, "logged no 'val_acc' but test_acc")
    said = note[note.index("1 trial ('best-model')") :]
    assert "(e.g. 'lr=0.01')" in said
    assert f"greenprint ledger set-role final {runs['best-model'].id[:8]}" in said
    done = run_in(home, GREENPRINT, "ledger", "set-role", "final", runs["best-model"].id[:8])
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "hand", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["trials"], tag["final"]["name"], tag["final"]["rule"]) == (
        3,
        "best-model",
        "role",
    )
    assert not [n for n in report["notes"] if "logged no 'val_acc' but" in n]
    curve = evp_curves(report)["with replacement (Dodge et al.)"]
    expected = expected_max_performance([0.80, 0.90, 0.85], mode="max").mean.tolist()
    assert curve == pytest.approx(expected, abs=1e-12)
    _export_reads_as_the_report(home, "hand", report)


# ------------------------------------------------------------ Hugging Face, two-stage fine-tuning
HF_TWO_STAGE_SCRIPT = """
import sys
sys.path.insert(0, @TESTS@)
from transformers import Trainer, TrainingArguments
from greenprint.integrations.transformers import GreenprintCallback
from integrations._hf import Tokens, tiny_bert


def train(model, out):
    args = TrainingArguments(out, num_train_epochs=1, per_device_train_batch_size=8,
                             report_to=[], use_cpu=True, eval_strategy="epoch",
                             save_strategy="no", logging_strategy="epoch", disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=Tokens(), eval_dataset=Tokens(seed=1),
            callbacks=[GreenprintCallback("bert-ft", study="hf-two-stage")]).train()


model = tiny_bert()
model.bert.requires_grad_(False)  # stage 1: the classifier head only
train(model, "stage1")
model.bert.requires_grad_(True)  # stage 2: the whole model, from stage 1's weights
train(model, "stage2")
"""


def test_a_hf_model_trained_twice_is_one_training_scored_by_its_last_train(tmp_path_factory):
    """Before: two trials 'bert-ft' of one params, the final run stage 2 at about half the
    study's energy. Now the second train() of the same model takes the first's run as its part
    (contained false): one trial, scored by stage 2's eval_loss, costing both stages."""
    need_installed("transformers", "transformers")
    home = _empty(tmp_path_factory, "hf-two-stage")
    tests_dir = str(Path(__file__).resolve().parent)
    script = HF_TWO_STAGE_SCRIPT.replace("@TESTS@", repr(tests_dir))
    (home / "ft.py").write_text(script, encoding="utf-8")
    done = run_in(home, sys.executable, "ft.py")
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = sorted(
        gp.Ledger(home / "greenprint.db").runs(study="hf-two-stage"), key=lambda r: r.started_at
    )
    assert (first.parent_id, first.role, first.contained) == (second.id, "part", False)
    report = _report(home, "--study", "hf-two-stage", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"], tag["final"]["run_id"]) == (
        2,
        1,
        second.id,
    )
    assert tag["final"]["score"] == second.metric("eval_loss")
    both = first.energy_kwh + second.energy_kwh
    assert tag["final"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    assert tag["total"]["energy_kwh"] == pytest.approx(both, rel=1e-9)
    _export_reads_as_the_report(home, "hf-two-stage", report)
