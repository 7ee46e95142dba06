"""Studies where some roles are given and others not, as a new user records them (session 33).

Each is a script run in an empty directory with a clean environment, and ``greenprint report``
read in Markdown and JSON:

* a search through an integration (Optuna's callback, scikit-learn's ``track_search``: each
  trial given role ``trial``) and a learning curve written by hand, ``gp.track(f"lc-{frac}",
  params={**best, "fraction": frac}, dataset_size=n)`` with no role. The curve's runs read as
  four more trials: 12 trials, the final run ``lc-1.0`` (a point of the curve, scored on more
  data than the search's trials), with no word; a learning curve was inferred only in a study
  given no role at all. Now runs given no role beside a search given its roles are the curve
  (role ``learning-curve``, inferred), with the ``greenprint ledger set-role`` command that
  reads them as trials; a role given is never changed;
* an in-memory Optuna study run twice into one ledger (two ``trial-0``...): the report read one
  search of 8 trials with nothing to say that it is two; now a note says so, names the two
  processes and how to keep them apart, and the terminal's final-run line gives the final
  run's id (its name is shared);
* one Lightning ``Trainer.fit`` with no role, then ``trainer.test``: one inferred trial, the
  final run by the rule "the finished trial with the lowest val_loss" (there is no other) and
  an expected-best-score curve of one point, "what a smaller search would likely have found";
  now "the study's one trial", and no curve, with a note saying why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, cli_report, empty_home, report_text, run_in
from integrations._frameworks import need_installed

need_installed("optuna", "optuna")

SEARCH_AND_CURVE = """
import sys

import greenprint as gp

N = 1797
STUDY = sys.argv[2]


def work(n=20000):
    return sum(i * i for i in range(n))


if sys.argv[1] == "optuna":
    import optuna
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        trial.suggest_float("C", 0.1, 10.0, log=True)
        trial.suggest_float("gamma", 1e-4, 1e-2, log=True)
        work()
        return 0.8 + 0.01 * (trial.number % 5)  # trial-4 is the best: 0.84

    cb = GreenprintCallback()
    study = optuna.create_study(study_name=STUDY, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(cb.track(objective), n_trials=8, callbacks=[cb])
    best, metric = study.best_params, "value"
else:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0),
                          {"max_depth": [1, 2, 3, 4]}, cv=3)
    track_search(search, X, y, study=STUDY, method="apportion")
    best, metric = search.best_params_, "score"
for frac in (0.25, 0.5, 0.75, 1.0):  # the learning curve, by hand, no role
    with gp.track(f"lc-{frac}", study=STUDY, params={**best, "fraction": frac},
                  dataset_size=int(N * frac)) as run:
        work()
        run.log(**{metric: 0.7 + 0.25 * frac})  # lc-1.0 scores above every trial
"""

OPTUNA_IN_MEMORY = """
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)


def objective(trial):
    x = trial.suggest_float("x", -2, 2)
    return (x - 0.5) ** 2


cb = GreenprintCallback()
study = optuna.create_study(study_name="quad")  # in memory: trial numbers from 0 each time
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb])
"""

ONE_FIT = """
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from greenprint.integrations.lightning import GreenprintCallback


class Net(pl.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch, i):
        x, y = batch
        self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
x = torch.randn(64, 4)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False,
                     callbacks=[GreenprintCallback("mlp", study="mlp")])
model = Net()
trainer.fit(model, data, data)
trainer.test(model, data)
"""


def _script(home: Path, name: str, text: str, *args: str) -> None:
    (home / name).write_text(text, encoding="utf-8")
    done = run_in(home, sys.executable, name, *args)
    assert done.returncode == 0, done.stderr[-3000:]


def _report(home: Path, *args: str) -> tuple[dict, str]:
    """The study's report, JSON (parsed) and Markdown."""
    report = cli_report(home, "--format", "md,json", "--no-plots", *args)
    return report, report_text(home, "md")


def _rows(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["runs"]}


def _curve_ids(home: Path, study: str) -> str:
    runs = gp.Ledger(home / "greenprint.db").runs(study=study)
    return " ".join(
        r.id[:8] for r in sorted(runs, key=lambda r: r.started_at) if r.name[:3] == "lc-"
    )


def test_a_curve_by_hand_beside_an_optuna_search_is_a_learning_curve(
    tmp_path_factory: pytest.TempPathFactory,
):
    """Before: 12 trials, the final run lc-1.0 (0.95, a point of the curve), the note "roles
    inferred for 4 of 12 runs (4 trial)". Now 8 trials (Optuna's), the lc runs role
    learning-curve (inferred), the final run trial-4 (0.84, Optuna's best); the note names the
    curve and the command that reads it as trials, which works (12 trials, lc-1.0 final)."""
    home = empty_home(tmp_path_factory, "s33-optuna-lc")
    _script(home, "study.py", SEARCH_AND_CURVE, "optuna", "svc")
    report, md = _report(home)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 8
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("trial-4", "best-trial")
    rows = _rows(report)
    assert [rows[f"lc-{f}"]["role"] for f in (0.25, 0.5, 0.75, 1.0)] == ["learning-curve"] * 4
    assert {rows[f"trial-{i}"]["role"] for i in range(8)} == {"trial"}
    ids = _curve_ids(home, "svc")
    note = next(n for n in report["notes"] if n.startswith("roles inferred"))
    assert note.startswith("roles inferred for 4 of 12 runs (4 learning-curve runs)")
    assert "4 runs ('lc-0.25', 'lc-0.5', 'lc-0.75', 'lc-1.0') share one configuration" in note
    assert f"give them role='trial' (greenprint ledger set-role trial {ids})" in note
    assert "Study **svc**: 8 trials, ranked by **value**" in md
    assert "Final run trial-4 (the finished trial with the highest value" in md
    assert "| lc-1.0 (learning curve) | finished |" in md
    assert "trials drawn from the 8 trials of the study" in md
    # no trial recorded a dataset size: the E x D x H line says why it is missing
    assert "E x D x H is not given: none of the 8 trials recorded a dataset size" in md
    # as the note says: given role 'trial', they are trials again (a given role is kept)
    done = run_in(home, GREENPRINT, "ledger", "set-role", "trial", *ids.split())
    assert done.returncode == 0, done.stderr
    report, _ = _report(home)
    assert report["price_tag"]["total"]["trials"] == 12
    assert report["price_tag"]["final"]["name"] == "lc-1.0"
    assert "learning-curve" not in report["price_tag"]["by_role"]


def test_a_curve_by_hand_beside_a_scikit_learn_search_is_a_learning_curve(
    tmp_path_factory: pytest.TempPathFactory,
):
    """track_search's candidates (role trial, inside its sweep) and its refit (role final), and
    the curve at the top level: 4 trials and the curve (before: 8 trials, the curve's runs
    among them: the expected best score drew them); the final run the refit, as before."""
    need_installed("sklearn", "sklearn")
    home = empty_home(tmp_path_factory, "s33-sklearn-lc")
    _script(home, "study.py", SEARCH_AND_CURVE, "sklearn", "tree")
    report, md = _report(home)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 4
    assert tag["by_role"]["learning-curve"]["runs"] == 4
    assert (tag["final"]["role"], tag["final"]["rule"]) == ("final", "role")
    assert "trials drawn from the 4 trials of the study" in md
    assert "| lc-0.25 (learning curve) | finished |" in md


def test_an_in_memory_optuna_study_run_twice_is_said_to_be_two(
    tmp_path_factory: pytest.TempPathFactory,
):
    """Two trial-0..trial-3: before, no word that the study holds two searches, and the
    terminal's line 'final run trial-3 (value=...)' did not say which. Now a note says so
    (both processes named by their first run) with how to keep them apart, and the final run
    is named by its id in the terminal, the notes, the price tag and the compute statement."""
    home = empty_home(tmp_path_factory, "s33-twice")
    for _ in range(2):
        _script(home, "search.py", OPTUNA_IN_MEMORY)
    # one report: its terminal lines, and the JSON and Markdown it wrote (cli_report's files)
    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "md,json", "--no-plots")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    md = report_text(home, "md")
    final = next(r for r in report["runs"] if r["is_final"])
    short = final["id"][:8]
    assert f"final run {final['name']} (run {short}, value=" in done.stdout
    firsts = sorted(
        (r["started_at"], r["id"][:8]) for r in report["runs"] if r["name"] == "trial-0"
    )
    again = next(n for n in report["notes"] if n.startswith("the study holds one search run"))
    assert again.startswith("the study holds one search run 2 times: 2 processes ('search.py'")
    assert all(f"4 trials, the first run {i}" in again for _, i in firsts)
    assert "4 names recorded twice or more, e.g. 'trial-0' 2 times" in again
    assert "the study's 8 trials" in again and "load_if_exists=True" in again
    assert "the study holds one search run 2 times" in md
    assert f"Final run {final['name']} (run {short}; the " in md  # one bracket, not two
    assert f"(run “{final['name']}”, id {short}, value = " in report["compute_statement"]


def test_searches_named_apart_or_one_trial_a_process_are_no_search_run_again(
    tmp_path_factory: pytest.TempPathFactory,
):
    """The note needs trial names repeated by two processes of two trials or more: a script
    that tracks one trial per command (``python train.py 0.1``, then ``0.2``, both 'train')
    reads as one search, with no note."""
    home = empty_home(tmp_path_factory, "s33-apart")
    text = (
        "import sys\nimport greenprint as gp\nlr = float(sys.argv[1])\n"
        "with gp.track('train', study='lr', params={'lr': lr}) as run:\n"
        "    run.log(acc=lr)\n"
    )
    for lr in ("0.1", "0.2", "0.3", "0.4"):
        _script(home, "train.py", text, lr)
    report, _ = _report(home)
    assert report["price_tag"]["total"]["trials"] == 4
    assert not any(n.startswith("the study holds one search run") for n in report["notes"])


def test_one_lightning_fit_reads_as_the_studys_one_trial(
    tmp_path_factory: pytest.TempPathFactory,
):
    """One fit with no role and its test: one trial (inferred) and the test its part. Before:
    'Final run mlp (the finished trial with the lowest val_loss, ...)' and an expected-best
    curve of one point 'drawn from the 1 trial of the study ... what a smaller search would
    likely have found'. Now 'the study's one trial', no curve, and a note saying why."""
    need_installed("lightning", "lightning")
    home = empty_home(tmp_path_factory, "s33-one-fit")
    _script(home, "train.py", ONE_FIT)
    report, md = _report(home)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1 and tag["total"]["runs"] == 2
    assert (tag["final"]["name"], tag["final"]["role"]) == ("mlp", "trial")
    assert tag["final"]["rule_text"] == "the study's one trial, as no run has role 'final'"
    assert "Final run mlp (the study's one trial, as no run has role 'final')" in md
    assert "- **study / final model**: 1x the energy" in md
    assert not [f for f in report["figures"] if f["id"].startswith("evp")]
    assert "drawn from the 1 trial" not in md
    assert (
        "no expected-max-performance curve: the study has one trial (one training, no search)" in md
    )
    assert {r["name"]: r["role"] for r in report["runs"]} == {"mlp": "trial", "mlp-test": "part"}
