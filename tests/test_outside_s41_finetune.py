"""Session 41, an outside check: a fine-tuning paper's study, built as its author would.

A stranger's study in an empty directory with a clean environment, as README.md and
docs/integrations.md show it: a Hugging Face search (``trainer.hyperparameter_search`` with the
callback attached, ranked by the search's ``objective``), a learning curve of Trainers of their
own (role ``learning-curve``, subsampled data), a Lightning baseline, and the final model
retrained by a new Trainer and scored on a held-out test split. What the report got wrong:

- the final run "scored test_loss = 0.6721, test_accuracy = 1, test_runtime = 0.0087,
  test_samples_per_second = 7377, test_steps_per_second = 922.1": the evaluation's seconds and
  rates read as scores, numbers without units, in the price tag's sentence and the compute
  statement;
- "no learning curve: of the 3 runs with role 'learning-curve', no run carries both a
  dataset_size and a value of metric 'objective': set run.set(dataset_size=...) when tracking",
  though all three had one (32 to 128 examples): they lacked the metric, which the note now says,
  naming the metrics they logged;
- the final run's row in the runs table showed its ``test_loss`` (``0.6721 (test_loss)``) where
  the efficiency table showed its ``test_accuracy``, the study maximising: the held-out scores
  of the study's direction now come first;
- the Lightning baseline, which logged ``eval_accuracy`` and not ``objective``, was left out of
  the reference lines and the efficiency table without a word: a note now names it;
- ``Trainer(callbacks=[cb, cb])`` (Hugging Face only logs a warning) ran each hook twice: the
  second ``on_train_begin`` ended the training's run ``failed`` ("training ended without
  on_train_end (an exception)") and started another, and the report listed "2 parts failed".
  The callback now keeps itself once, with a warning;
- with ``count_fpo=True`` the callback's own evaluation runs (a search trial's objective
  evaluation, ``trial-0-evaluate``; the final model's test, ``final-evaluate``), parts of the
  runs whose training it counted, counted none: every trial and the final model read "FPO
  unknown" (the price tag "8.73 MFPO + unknown for 2 runs" for a 2-trial search). Their
  forwards are now counted, as ``greenprint.count_fpo`` counts them;
- the Lightning callback with ``count_fpo=True`` counted the first batch's step and added it
  for every batch: a last short batch (40 examples in batches of 16) counted as a full one;
  and a ``trainer.test()`` of the fitted module, a part of the fit's run, counted none. Both
  are now counted by batch shape, as ``greenprint.count_fpo`` counts them;
- Trainers given no ``eval_dataset`` (study "twice") log only ``train_loss``: the report ranked
  the trials by it and named a final run without saying it is no held-out score; a note says
  so now;
- ``greenprint ledger ls`` showed the final run's METRIC as ``train_runtime=0.0603`` (the
  first metric it logged): now its first held-out score.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in
from integrations._frameworks import need_installed

need_installed("transformers", "transformers")
need_installed("lightning", "lightning")

STUDY = """
import optuna
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from transformers import AutoModelForSequenceClassification, BertConfig, Trainer, TrainingArguments

import greenprint as gp
from greenprint.integrations.lightning import GreenprintCallback as LightningCallback
from greenprint.integrations.transformers import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=2)


def make(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(1, 100, (8,), generator=g), "labels": torch.tensor(i % 2)}
            for i in range(n)]


train, val, test = make(32, 1), make(16, 2), make(16, 3)


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


def args(out, **kw):
    return TrainingArguments(output_dir=out, report_to="none", use_cpu=True, max_steps=2,
                             per_device_train_batch_size=16, save_strategy="no",
                             disable_tqdm=True, **kw)


# no evaluation during training: the search evaluates each trial after it (its objective)
trainer = Trainer(model_init=lambda: AutoModelForSequenceClassification.from_config(config),
                  args=args("search"), train_dataset=train, eval_dataset=val,
                  compute_metrics=accuracy)
GreenprintCallback(study="ft", params={"model": "bert"}, count_fpo=True).attach(trainer)
best = trainer.hyperparameter_search(
    hp_space=lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-4, 1e-2, log=True)},
    compute_objective=lambda m: m["eval_accuracy"], direction="maximize", backend="optuna",
    n_trials=2)

for n in (16, 32):  # the learning curve: the best configuration on subsampled data
    t = Trainer(model=AutoModelForSequenceClassification.from_config(config),
                args=args("lc", eval_strategy="steps", eval_steps=2, **best.hyperparameters),
                train_dataset=train[:n], eval_dataset=val, compute_metrics=accuracy)
    GreenprintCallback(f"lc-{n}", study="ft", role="learning-curve").attach(t)
    t.train()


class BoW(pl.LightningModule):  # a simple baseline first
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(100, 2)

    def training_step(self, batch, i):
        return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

    def validation_step(self, batch, i):
        self.log("eval_accuracy", (self.net(batch[0]).argmax(1) == batch[1]).float().mean())

    def test_step(self, batch, i):
        self.log("test_accuracy", (self.net(batch[0]).argmax(1) == batch[1]).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def bow(d):
    x = torch.zeros(len(d), 100)
    for i, e in enumerate(d):
        x[i, e["input_ids"]] = 1.0
    return TensorDataset(x, torch.stack([e["labels"] for e in d]))


fit = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                 enable_progress_bar=False, enable_model_summary=False,
                 callbacks=[LightningCallback("bow", study="ft", role="baseline", count_fpo=True)])
module = BoW()
# 40 examples in batches of 16: the last batch has 8; the test split in batches of 12 and 4
fit.fit(module, DataLoader(bow(train + val[:8]), batch_size=16),
        DataLoader(bow(val), batch_size=16))
fit.test(module, DataLoader(bow(test), batch_size=12))


class Step(torch.nn.Module):  # what BoW's training_step computes, for gp.count_fpo
    def __init__(self, net, test=False):
        super().__init__()
        self.net, self.test = net, test

    def forward(self, x, y):
        if self.test:
            return (self.net(x).argmax(1) == y).float().mean()
        return torch.nn.functional.cross_entropy(self.net(x), y)


def bow_fpo(n, test=False):
    x, y = torch.zeros(n, 100), torch.zeros(n, dtype=torch.long)
    with torch.no_grad() if test else torch.enable_grad():
        return gp.count_fpo(Step(module.net, test), x, y, backward=not test).total


with open("bow_fpo.txt", "w") as f:
    f.write(f"{2 * bow_fpo(16) + bow_fpo(8)} {bow_fpo(12, True) + bow_fpo(4, True)}")

final = Trainer(model=AutoModelForSequenceClassification.from_config(config),
                args=args("final", **best.hyperparameters), train_dataset=train + val,
                compute_metrics=accuracy)
GreenprintCallback("final", study="ft", role="final", count_fpo=True).attach(final)
final.train()
final.evaluate(test, metric_key_prefix="test")  # two batches of 8 (the default eval batch)
model = final.model.eval()
with torch.no_grad():
    batch = gp.count_fpo(model, input_ids=torch.stack([e["input_ids"] for e in test[:8]]),
                         labels=torch.stack([e["labels"] for e in test[:8]]), backward=False)
with open("evaluation_fpo.txt", "w") as f:
    f.write(str(2 * batch.total))

# a hurried user lists the callback twice, and another attaches one listed twice
cb = GreenprintCallback("twice", study="twice")
Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args("twice"),
        train_dataset=train, callbacks=[cb, cb]).train()
cb2 = GreenprintCallback("attached", study="twice")
t = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args("twice"),
            train_dataset=train, callbacks=[cb2, cb2])
cb2.attach(t)
assert [c for c in t.callback_handler.callbacks if c is cb2] == [cb2]
t.train()
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study, recorded by the script in an empty directory; its report in four formats."""
    home = empty_home(tmp_path_factory, "s41-finetune")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    made = run_in(home, sys.executable, "study.py")
    assert made.returncode == 0, made.stderr
    (home / "study.stderr").write_text(made.stderr, encoding="utf-8")
    done = run_in(home, GREENPRINT, "report", "--study", "ft", "--no-plots", "--out", "rep")
    assert done.returncode == 0, done.stderr
    return home


def _report(home: Path) -> tuple[dict, dict[str, str]]:
    texts = {ext: (home / "rep" / f"report.{ext}").read_text("utf-8") for ext in ("md", "tex")}
    return json.loads((home / "rep" / "report.json").read_text("utf-8")), texts


def test_the_final_models_test_scores_leave_out_the_evaluations_seconds_and_rates(home: Path):
    report, texts = _report(home)
    assert report["metric"] == "objective"
    assert report["price_tag"]["final"]["name"] == "final"
    # its scores on the test split, the number a paper reports; not test_runtime (seconds) nor
    # test_samples_per_second (a rate), which read as scores without their units
    assert sorted(report["final_scores"]) == ["test_accuracy", "test_loss"]
    # the study maximises: its better-higher test score first, the one the runs table shows,
    # as the efficiency table does (the runs table read "0.6721 (test_loss)" beside it)
    assert list(report["final_scores"]) == ["test_accuracy", "test_loss"]
    (row,) = [line for line in texts["md"].splitlines() if line.startswith("| final ★ |")]
    assert "(test\\_accuracy)" in row
    (efficiency,) = [r for r in report["efficiency"]["rows"] if r["name"] == "final"]
    assert efficiency["metric"] == "test_accuracy"
    for text in (report["compute_statement"], texts["md"], texts["tex"]):
        assert "test_accuracy = " in text.replace("\\_", "_")
        assert "runtime" not in text.replace("\\_", "_").split("test_accuracy")[1][:200]
        assert "_per_second =" not in text.replace("\\_", "_")


def test_a_learning_curve_without_the_studys_metric_says_so_not_set_a_dataset_size(home: Path):
    report, _ = _report(home)
    (note,) = [n for n in report["notes"] if n.startswith("no learning curve")]
    # the runs have sizes (16 and 32 examples): the metric is what they lack
    assert "set run.set(dataset_size" not in note
    assert "the 2 runs with a dataset_size have no value of 'objective'" in note
    assert "they logged eval_accuracy, eval_loss" in note and "--metric" in note
    # the way out the note gives draws the curve
    done = run_in(
        home, GREENPRINT, "report", "--study", "ft", "--no-plots", "--format", "json",
        "--metric", "eval_accuracy", "--out", "by-accuracy",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    again = json.loads((home / "by-accuracy" / "report.json").read_text("utf-8"))
    assert "learning_curve" in [f["id"] for f in again["figures"]]


def test_a_baseline_with_no_score_of_the_metric_is_named_not_dropped_silently(home: Path):
    report, texts = _report(home)
    (bow,) = [r for r in report["runs"] if r["name"] == "bow"]
    assert bow["role"] == "baseline" and bow["score"] is None
    (note,) = [n for n in report["notes"] if "baseline has no score" in n]
    assert note.startswith("1 baseline has no score of 'objective': no reference line")
    assert f"bow ({bow['id'][:8]})" in note and "it logged eval_accuracy" in note
    assert "bow" not in [row["name"] for row in report["efficiency"]["rows"]]
    assert "1 baseline has no score of" in texts["md"]


def test_a_callback_listed_twice_records_one_training_not_a_failed_one(home: Path):
    import greenprint as gp

    stderr = (home / "study.stderr").read_text("utf-8")
    assert "this GreenprintCallback was 2 times in the Trainer's callbacks" in stderr
    led = gp.Ledger(home / "greenprint.db")
    try:
        runs = led.runs(study="twice")
    finally:
        led.close()
    # each training one run, finished: no phantom failed part, no second run of one training
    assert sorted((r.name, r.status, r.parent_id) for r in runs) == [
        ("attached", "finished", None),
        ("twice", "finished", None),
    ]
    study = {r.name: r for r in runs}
    assert study["twice"].metric("train_loss") is not None


def test_count_fpo_counts_the_evaluations_it_records_so_no_trial_reads_fpo_unknown(home: Path):
    report, texts = _report(home)
    runs = {r["id"]: r for r in report["runs"]}
    (final,) = [r for r in runs.values() if r["name"] == "final"]
    (test,) = [r for r in runs.values() if r["name"] == "final-evaluate"]
    assert test["parent_id"] == final["id"] and test["role"] == "part"
    # the test split's two batches of 8, forward with the loss, as gp.count_fpo counts them
    assert test["fpo"] == int((home / "evaluation_fpo.txt").read_text())
    # the final model's FPO are known: its training's and its test's
    tag = report["price_tag"]
    assert tag["final"]["fpo"] == final["fpo"] and final["fpo"] > test["fpo"] > 0
    trials = [r for r in runs.values() if r["role"] == "trial"]
    evaluations = [r for r in runs.values() if r["name"].endswith("-evaluate") and r is not test]
    assert len(trials) == 2 and sorted(r["parent_id"] for r in evaluations) == sorted(
        r["id"] for r in trials
    )
    assert all(r["fpo"] > 0 for r in trials + evaluations)
    # no unknown FPO in the search: only the runs that counted none (the LC, the baseline)
    assert tag["by_role"]["trial"]["fpo"] is not None
    assert tag["by_role"]["trial"]["fpo_unknown"] == 0
    assert "FPO unknown" not in texts["md"].split("## Runs")[0].split("Final run")[1][:400]


def test_lightning_counts_a_short_last_batch_as_it_is_and_the_test_of_the_fit(home: Path):
    report, _ = _report(home)
    runs = {r["id"]: r for r in report["runs"]}
    (fit,) = [r for r in runs.values() if r["name"] == "bow"]
    (test,) = [r for r in runs.values() if r["name"] == "bow-test"]
    training, testing = (int(n) for n in (home / "bow_fpo.txt").read_text().split())
    import greenprint as gp

    led = gp.Ledger(home / "greenprint.db")
    try:
        recorded = led.run(fit["id"]).fpo
    finally:
        led.close()
    # batches of 16, 16 and 8 (the short one was counted as a 16 before: 3 x 16)
    assert recorded == training
    # its test, a part of the fit's run (batches of 12 and 4), forward only; the fit's row in
    # the report holds its part's FPO too (it counted none: the row read its fit's alone)
    assert test["parent_id"] == fit["id"] and test["fpo"] == testing
    assert fit["fpo"] == training + testing


def test_a_study_with_no_evaluation_is_ranked_by_its_training_loss_with_a_note(home: Path):
    # the hurried user's Trainers in study "twice" had no eval_dataset: only train_loss
    done = run_in(
        home, GREENPRINT, "report", "--study", "twice", "--no-plots", "--format", "json",
        "--out", "twice",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "twice" / "report.json").read_text("utf-8"))
    assert report["metric"] == "train_loss" and report["mode"] == "min"
    (note,) = [n for n in report["notes"] if "a training metric" in n]
    assert note.startswith("runs ranked by 'train_loss', a training metric: no run logged a")
    assert "eval_dataset" in note and "validation_step" in note
    # a study that logged a held-out score has no such note; nor has a training metric given
    # by name (the user's choice)
    assert not [n for n in _report(home)[0]["notes"] if "a training metric" in n]
    ranked = run_in(
        home, GREENPRINT, "report", "--study", "twice", "--no-plots", "--format", "json",
        "--metric", "train_loss", "--out", "by-train-loss",
    )  # fmt: skip
    assert ranked.returncode == 0, ranked.stderr
    again = json.loads((home / "by-train-loss" / "report.json").read_text("utf-8"))
    assert not [n for n in again["notes"] if "a training metric" in n]


def test_ledger_ls_shows_a_final_runs_test_score_not_its_training_runtime(home: Path):
    done = run_in(home, GREENPRINT, "ledger", "ls", "--study", "ft")
    assert done.returncode == 0, done.stderr
    (final,) = [line for line in done.stdout.splitlines() if line.split()[2:3] == ["final"]]
    # it logged train_runtime first (Hugging Face's training summary), then its test scores
    assert "runtime" not in final and final.split()[-1].startswith("test_")
