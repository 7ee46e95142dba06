"""Issue 12 as an outside checker meets it: study shapes the first new-user check did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration:
the ledger is ``./greenprint.db``), then read in all four report formats and both exports:

* **worker processes and threads** (``greenprint run --role sweep -- python sweep.py``): the
  script runs three trials in a ``ProcessPoolExecutor`` and three in a ``ThreadPoolExecutor``,
  each trial a child run of the sweep (through the environment ``greenprint run`` sets), its
  three folds grandchildren; one trial fails in a fold; some trials log ``accuracy`` beside
  ``val_loss``;
* **Ray Tune on a local Ray cluster** (``greenprint.integrations.ray``): six trials of an ASHA
  search, each running three CV folds per iteration as child runs (``gp.track`` inside the
  trainable), one failing, some stopped early (pruned), and a retrain outside the tuner with
  ``role="final"`` (its tests in
  ``integrations/test_ray_scripts.py``: its script shares a driver and a local Ray cluster
  there);
* **Lightning inside a hand-written loop**: trials ``gp.track(..., role="trial")`` each holding
  a ``Trainer.fit`` (the Lightning callback's run is the trial's part), two baselines, a
  learning curve at four training-set sizes (``role="learning-curve"``, each holding its fit),
  and a final retrain;
* **a plain cross-validation loop**: top-level trials with their configuration as params and
  their folds as children, no sweep, no role anywhere.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

from _report_cli import (
    GREENPRINT,
    export_csv,
    figure_of,
    rows_by_name,
    run_in,
    runs_by_name,
    series_of,
)
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text as _text
from _report_cli import roots_sum_to_the_price_tag as _roots_sum_to_the_price_tag
from greenprint.analysis import expected_max_performance
from integrations._frameworks import need_installed

POOL_SCRIPT = """
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import greenprint as gp

# trial -> (family, fold losses, fold accuracies or None); trial 3 fails in its second fold
TRIALS = {
    0: ("mlp", [0.40, 0.42, 0.44], [0.80, 0.81, 0.79]),
    1: ("cnn", [0.30, 0.34, 0.32], None),
    2: ("mlp", [0.50, 0.52, 0.54], [0.70, 0.71, 0.72]),
    3: ("cnn", [0.35, None], None),
    4: ("cnn", [0.36, 0.38, 0.40], [0.77, 0.78, 0.76]),
    5: ("mlp", [0.33, 0.35, 0.31], None),
}


def trial(k):
    family, losses, accuracies = TRIALS[k]
    try:
        with gp.track(f"trial-{k}", params={"model": family, "k": k}):
            for f, loss in enumerate(losses):
                with gp.track(f"trial-{k}-fold{f}") as fold:
                    if loss is None:
                        raise FloatingPointError("loss diverged")
                    fold.log(val_loss=loss)
                    if accuracies:
                        fold.log(accuracy=accuracies[f])
    except FloatingPointError:
        pass


if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:  # worker processes
        list(pool.map(trial, [0, 1, 2]))
    with ThreadPoolExecutor(3) as pool:  # threads of this process
        list(pool.map(trial, [3, 4, 5]))
"""

#: The fold losses of the trials that finished (trial 3 failed: no score), and their families.
POOL_FOLDS = {
    0: [0.40, 0.42, 0.44],
    1: [0.30, 0.34, 0.32],
    2: [0.50, 0.52, 0.54],
    4: [0.36, 0.38, 0.40],
    5: [0.33, 0.35, 0.31],
}
POOL_FAMILY = {0: "mlp", 1: "cnn", 2: "mlp", 3: "cnn", 4: "cnn", 5: "mlp"}

LIGHTNING_SCRIPT = """
import warnings
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
import greenprint as gp
from greenprint.integrations.lightning import GreenprintCallback

warnings.filterwarnings("ignore")
torch.manual_seed(0)
X = torch.randn(256, 4)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(256, 1)
TRAIN, VAL = (X[:192], Y[:192]), (X[192:], Y[192:])


class Net(pl.LightningModule):
    def __init__(self, lr=0.1, hidden=0, fail_at=-1):
        super().__init__()
        self.save_hyperparameters()
        self.net = (torch.nn.Linear(4, 1) if hidden == 0 else torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        if self.global_step == self.hparams.fail_at:
            raise FloatingPointError("loss is NaN")
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def fit(name, n=192, epochs=3, **hparams):
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[GreenprintCallback(name)],  # inside a gp.track block: a child run of it
    )
    trainer.fit(Net(**hparams),
                DataLoader(TensorDataset(TRAIN[0][:n], TRAIN[1][:n]), batch_size=32),
                DataLoader(TensorDataset(*VAL), batch_size=64))


with gp.track("predict-mean", study="reg", role="baseline") as b:
    b.log(val_loss=float(((VAL[1] - TRAIN[1].mean()) ** 2).mean()))
with gp.track("lstsq", study="reg", role="baseline") as b:
    w = torch.linalg.lstsq(TRAIN[0], TRAIN[1]).solution
    b.log(val_loss=float(((VAL[0] @ w - VAL[1]) ** 2).mean()))

CONFIGS = [("linear", 0.01, 0), ("linear", 0.1, 0), ("mlp", 0.01, 8), ("mlp", 0.1, 8),
           ("mlp", 0.5, 8)]
for k, (family, lr, hidden) in enumerate(CONFIGS):
    try:
        with gp.track(f"trial-{k}", study="reg", role="trial",
                      params={"model": family, "lr": lr, "hidden": hidden}):
            fit(f"fit-{k}", lr=lr, hidden=hidden, fail_at=3 if k == 4 else -1)
    except FloatingPointError:
        pass

for n in (24, 48, 96, 192):
    with gp.track(f"lc-{n}", study="reg", role="learning-curve", dataset_size=n,
                  params={"model": "linear", "lr": 0.1}):
        fit(f"lc-fit-{n}", n=n, lr=0.1)

with gp.track("final", study="reg", role="final", dataset_size=192,
              params={"model": "linear", "lr": 0.1}):
    fit("final-fit", epochs=5, lr=0.1)
"""

HF_SCRIPT = """
import warnings
from transformers import Trainer, TrainingArguments
import greenprint as gp
from greenprint.integrations.transformers import GreenprintCallback
from hf_tiny import Tokens, tiny_bert

warnings.filterwarnings("ignore")
train, val = Tokens(64, seed=0), Tokens(32, seed=1)


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


for k, lr in enumerate([1e-4, 1e-3, 1e-2]):
    with gp.track(f"trial-{k}", study="hf", role="trial", params={"lr": lr}):
        args = TrainingArguments(
            output_dir=f"out{k}", learning_rate=lr, num_train_epochs=2, logging_steps=2,
            per_device_train_batch_size=16, eval_strategy="epoch", save_strategy="no",
            report_to=[], use_cpu=True, disable_tqdm=True)
        trainer = Trainer(model=tiny_bert(), args=args, train_dataset=train, eval_dataset=val,
                          compute_metrics=accuracy)
        GreenprintCallback(f"hf-{k}").attach(trainer)  # the Trainer's run: the trial's part
        trainer.train()
"""

CV_LOOP_SCRIPT = """
import greenprint as gp

FOLDS = {0.1: [0.30, 0.32, 0.31], 0.01: [0.40, 0.41, 0.42], 0.001: [0.60, 0.62, 0.61]}
for lr, losses in FOLDS.items():
    with gp.track(f"lr-{lr}", study="cv", params={"lr": lr}):  # one configuration
        for f, loss in enumerate(losses):
            with gp.track(f"lr-{lr}-fold{f}") as fold:  # its folds
                fold.log(val_loss=loss)

# one search per family: each holds trials that repeat the family and bring their own lr
for family, losses in {"mlp": [0.5, 0.4], "cnn": [0.3, 0.35]}.items():
    with gp.track(f"{family}-search", study="families", params={"model": family}):
        for k, loss in enumerate(losses):
            with gp.track(f"{family}-{k}", params={"model": family, "lr": 10.0 ** -k}) as t:
                t.log(val_loss=loss)
"""


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pool_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Trials in worker processes and threads under ``greenprint run --role sweep``."""
    home = _empty(tmp_path_factory, "outside-pool")
    (home / "sweep.py").write_text(POOL_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "pool", "--role", "sweep",
                  "--name", "sweep", "--", sys.executable, "sweep.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return home, _report(home, "--study", "pool", "--group-by", "params.model", "--no-plots")


@pytest.fixture(scope="module")
def lightning_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Lightning fits inside hand-written trials, baselines, a learning curve, a retrain, the
    whole script under ``greenprint run`` (no role: a sweep, inferred)."""
    need_installed("lightning", "lightning")
    home = _empty(tmp_path_factory, "outside-lightning")
    (home / "study.py").write_text(LIGHTNING_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "reg", "--name", "script", "--",
                  sys.executable, "study.py")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the four formats, the figures drawn where the tests read them (the HTML's inline SVG; the
    # JSON's figure data is the same either way); the Markdown and LaTeX are read as text, the
    # same without their PNG and PDF figures but for the lines that link them (1.8 s of CPU)
    report = _report(home, "--study", "reg", "--group-by", "params.model", "--format", "json,html")
    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--study", "reg", "--group-by",
                  "params.model", "--format", "md,latex", "--no-plots")  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return home, report


# ------------------------------------------------------------ processes and threads (CLI)
def test_pool_trials_in_processes_and_threads_are_the_sweeps_trials(pool_study):
    home, report = pool_study
    runs = runs_by_name(home, "pool")
    sweep = runs["sweep"]
    assert sweep.role == "sweep"
    for k in range(6):  # processes and threads alike: children of the `greenprint run` run
        assert runs[f"trial-{k}"].parent_id == sweep.id, k
        assert runs[f"trial-{k}-fold0"].parent_id == runs[f"trial-{k}"].id, k
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 6 and tag["total"]["runs"] == len(runs) == 24
    assert {s: v["trials"] for s, v in tag["by_status"].items() if v["trials"]} == {
        "finished": 5,
        "failed": 1,
    }
    assert tag["roles"]["counts"] == {"trial": 6, "part": 17, "sweep": 1}
    rows = rows_by_name(report)
    assert (rows["sweep"]["role"], rows["sweep"]["role_inferred"]) == ("sweep", False)
    for k, losses in POOL_FOLDS.items():
        row = rows[f"trial-{k}"]
        assert (row["role"], row["role_inferred"], row["score_source"]) == ("trial", True, "parts")
        assert row["score"] == pytest.approx(math.fsum(losses) / 3, abs=1e-12)
    assert rows["trial-3"]["score"] is None
    # val_loss is what every fold logged; accuracy only some: ranked by the loss, minimised
    assert (report["metric"], report["mode"]) == ("val_loss", "min")
    assert any("also logged: accuracy" in n for n in report["notes"])
    final = tag["final"]
    assert final["name"] == "trial-1" and final["rule"] == "best-trial"
    md = _text(home, "md")
    assert "Final run trial-1 (the finished trial with the lowest val\\_loss" in md


def test_pool_evp_per_family_from_the_fold_means(pool_study):
    _, report = pool_study
    scores = {k: math.fsum(v) / 3 for k, v in POOL_FOLDS.items()}
    worst = max(scores.values())  # the failed trial counts as the study's worst
    evp = figure_of(report, "evp_trials")
    assert evp is not None
    (mean,) = series_of(evp, "mean")
    every = [scores.get(k, math.nan) for k in range(6)]
    assert mean["y"] == pytest.approx(
        expected_max_performance(every, mode="min").mean.tolist(), abs=1e-12
    )
    families = {s["label"]: s["y"] for p in evp["panels"] for s in p["series"]}
    for family in ("mlp", "cnn"):
        members = [scores.get(k, worst) for k, f in POOL_FAMILY.items() if f == family]
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert families[f"{family} (3)"] == pytest.approx(expected, abs=1e-12), family


def test_pool_latex_says_the_scores_are_fold_means_and_which_roles_were_inferred(pool_study):
    """The LaTeX report, like the Markdown and HTML ones, says where a trial's score comes from
    (its folds' mean) and which roles were inferred, not only the numbers."""
    home, report = pool_study
    tex = _text(home, "latex")
    table = tex[tex.index("best trials by val\\_loss") :].split("\\end{tabular}", 1)[0]
    caption = table.split("}", 1)[0]
    assert "for 5 of 6 trials, val\\_loss is the mean of their parts'" in caption, caption
    notes = tex[tex.index("% ---- END PAPER") :]
    for note in report["notes"]:
        assert note.split(":")[0].replace("_", "\\_") in notes, note
    assert "roles inferred for 23 of 24 runs" in notes
    for fmt in ("md", "html"):
        assert "roles inferred for 23 of 24 runs" in _text(home, fmt), fmt


def test_pool_runs_table_marks_the_sweep(pool_study):
    home, _ = pool_study
    for fmt in ("md", "html"):
        text = _text(home, fmt)
        assert "sweep (sweep)" in text[text.index("Runs (24)") :], fmt


def test_pool_price_tag_says_fpo_unknown_once(pool_study):
    """No run counted FPO: the price tag's FPO line reads 'unknown for N runs', not 'FPO: FPO
    unknown for N runs'."""
    home, report = pool_study
    unknown = report["price_tag"]["total"]["fpo_unknown"]
    assert unknown > 0
    runs = report["price_tag"]["total"]["runs"]  # none counted: said of them all
    assert f"- **FPO**: unknown (none of the {runs} runs counted FPO)\n" in _text(home, "md")
    card = f'<div class="v">unknown (none of the {runs} runs counted FPO)</div>'
    card += '<div class="k">FPO</div>'
    assert card in _text(home, "html")


def test_pool_exports_sum_to_the_price_tag(pool_study):
    home, report = pool_study
    rows = export_csv(home, "pool")
    _roots_sum_to_the_price_tag(rows, report)
    assert sum(r["role"] == "trial" for r in rows) == 6
    assert {r["role"] for r in rows if "fold" in r["name"]} == {"part"}
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", "pool", "--format", "json")
    assert done.returncode == 0, done.stderr
    items = {i["name"]: i for i in json.loads(done.stdout)["runs"]}
    assert (items["trial-4"]["role"], items["trial-4"]["role_inferred"]) == ("trial", True)
    assert items["trial-4-fold2"]["parent_id"] == items["trial-4"]["id"]


def test_pool_what_if_at_the_grid_it_ran_on_saves_nothing(pool_study):
    """No region was set: the study was priced at the world average, so the world row of the
    what-if table differs by nothing, not by a rounding residue ('-1.06e-16 mg (-0.0 %)')."""
    home, report = pool_study
    (world,) = [r for r in report["whatif"]["regions"] if r["region"] == "WORLD"]
    assert world["saving_kg"] == 0 and world["saving_pct"] == 0
    md = _text(home, "md")
    row = next(line for line in md.splitlines() if line.startswith("| WORLD "))
    # ... in the unit of the other rows' differences, not "0 mg" beside µg (session 31)
    differences = [
        line.split(" | ")[3]
        for line in md.splitlines()
        if line.startswith("| ") and " %) | " in line
    ]
    unit = row.split(" | ")[3].split()[1]
    assert row.split(" | ")[3] == f"0 {unit} CO2-eq (0.0 %)", row
    assert any(d.split()[1] == unit for d in differences if not d.startswith("0 ")), differences
    tex = _text(home, "latex")
    row = next(line for line in tex.splitlines() if line.startswith("WORLD &"))
    assert "e-" not in row and "-0.0" not in row, row


# ------------------------------------------------------- Lightning inside hand-written trials
def test_lightning_trials_baselines_and_final_read_right(lightning_study):
    home, report = lightning_study
    rows = rows_by_name(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {
        "trial": 5,
        "part": 10,
        "baseline": 2,
        "final": 1,
        "learning-curve": 4,
        "sweep": 1,
    }
    assert (rows["script"]["role"], rows["script"]["role_inferred"]) == ("sweep", True)
    assert {s: v["trials"] for s, v in tag["by_status"].items() if v["trials"]} == {
        "finished": 4,
        "failed": 1,
    }
    for k in range(4):  # each trial's score is its Lightning fit's (its one part)
        assert rows[f"trial-{k}"]["score"] == rows[f"fit-{k}"]["score"]
        assert rows[f"trial-{k}"]["score_source"] == "parts"
    # the Lightning callback gives a fit inside a trial its role (7c5cd21): not inferred
    assert rows["fit-0"]["role"] == "part" and not rows["fit-0"]["role_inferred"]
    final = tag["final"]
    assert final["name"] == "final" and final["score"] == rows["final-fit"]["score"]
    for key in ("evp_trials", "evp_energy", "pareto"):
        figure = figure_of(report, key)
        assert figure is not None
        labels = sorted(s["label"] for s in series_of(figure, "baseline"))
        assert [label.split(" (")[0] for label in labels] == [
            "baseline lstsq",
            "baseline predict-mean",
        ], key
    md = _text(home, "md")
    assert " predict-mean (baseline) |" in md and " lstsq (baseline) |" in md
    tex = _text(home, "latex")
    assert "predict-mean $\\dagger$" in tex and "final $\\star$" in tex


def test_lightning_learning_curve_is_drawn_from_the_learning_curve_runs(lightning_study):
    """Four runs given role 'learning-curve' at four sizes, each scored by its fit (a part)."""
    home, report = lightning_study
    rows = rows_by_name(report)
    figure = figure_of(report, "learning_curve")
    assert figure is not None, [n for n in report["notes"] if "learning curve" in n]
    (mean,) = series_of(figure, "mean")
    sizes = [24, 48, 96, 192]
    assert mean["x"] == [float(n) for n in sizes]
    assert mean["y"] == pytest.approx([rows[f"lc-fit-{n}"]["score"] for n in sizes])
    (energy,) = series_of(figure, "energy")
    kwh = [rows[f"lc-{n}"]["energy_kwh"] for n in sizes]  # the learning-curve run's cost
    assert energy["y"] == pytest.approx([e / kwh[0] * energy["y"][0] for e in kwh])
    assert "from 4 runs with role 'learning-curve'" in figure["caption"]
    assert not any(n.startswith("no learning curve") for n in report["notes"])
    assert "Learning curve" in _text(home, "md")


# ---------------------------------------------------- Hugging Face Trainer inside trials
def test_hf_trainer_trials_are_ranked_by_a_held_out_metric_not_the_training_loss(
    tmp_path_factory,
):
    """No metric given: every Trainer run logged the training loss, the learning rate, the
    epoch... as often as its evaluation metrics; the report ranks by an evaluation metric."""
    need_installed("transformers", "transformers")
    home = _empty(tmp_path_factory, "outside-hf")
    here = Path(__file__).parent / "integrations" / "_hf.py"
    (home / "hf_tiny.py").write_text(here.read_text(encoding="utf-8"), encoding="utf-8")
    (home / "study.py").write_text(HF_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "hf", "--format", "json,md", "--no-plots")
    assert (report["metric"], report["mode"]) == ("eval_loss", "min")
    assert any(n.startswith("runs ranked by 'eval_loss'") for n in report["notes"])
    rows = rows_by_name(report)
    runs = runs_by_name(home, "hf")
    for k in range(3):
        evals = [p.value for p in runs[f"hf-{k}"].metrics if p.name == "eval_loss"]
        assert rows[f"trial-{k}"]["score"] == pytest.approx(evals[-1])
    best = min(range(3), key=lambda k: rows[f"trial-{k}"]["score"])
    assert report["price_tag"]["final"]["name"] == f"trial-{best}"


def test_lightning_runs_table_marks_every_role_that_is_not_a_trial(lightning_study):
    """A reader of the runs table tells the learning-curve runs from the trials (both are
    top-level runs with a score), as the baselines and the final run are told apart."""
    home, report = lightning_study
    for fmt in ("md", "html"):
        text = _text(home, fmt)
        runs = text[text.index("Runs (23)") :]
        for n in (24, 48, 96, 192):
            assert f"lc-{n} (learning curve)" in runs, (fmt, n)
        assert "predict-mean (baseline)" in runs and "final ★" in runs, fmt
        assert "(learning curve) a learning-curve run" in runs, fmt
        assert "trial-0 (" not in runs and "fit-0 (" not in runs, fmt


def test_lightning_evp_plot_counts_whole_trials(lightning_study):
    """The EVP plot's x axis counts trials: its ticks are whole numbers (not '1.5 trials')."""
    home, _ = lightning_study
    html = _text(home, "html")
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    (evp,) = [svg for svg in svgs if ">trials (n)<" in svg]
    ticks = re.findall(r"text-anchor: middle\"[^>]*>([-\d.]+)<", evp)
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks


# --------------------------------------------------------------- a plain cross-validation loop
def test_a_plain_cv_loop_reads_as_trials_with_their_folds(tmp_path_factory):
    """Top-level runs with params (a configuration) whose children, folds, have none: trials."""
    home = _empty(tmp_path_factory, "outside-cv")
    (home / "cv.py").write_text(CV_LOOP_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "cv.py")
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "cv", "--format", "json,md", "--no-plots")
    rows = rows_by_name(report)
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == [
        "lr-0.001",
        "lr-0.01",
        "lr-0.1",
    ]
    assert all(r["role"] == "part" for n, r in rows.items() if "fold" in n)
    assert rows["lr-0.1"]["score"] == pytest.approx(0.31) and rows["lr-0.1"]["score_source"] == (
        "parts"
    )
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 3 and "sweep" not in tag["roles"]["counts"]
    assert tag["final"]["name"] == "lr-0.1" and tag["final"]["rule"] == "best-trial"
    # a search per family whose trials repeat its params and vary their own: sweeps
    done = run_in(home, GREENPRINT, "report", "--study", "families", "--format", "json",
                  "--no-plots", "--out", "families")  # fmt: skip
    assert done.returncode == 0, done.stderr
    families = json.loads((home / "families" / "report.json").read_text(encoding="utf-8"))
    assert families["price_tag"]["roles"]["counts"] == {"trial": 4, "sweep": 2}
    assert families["price_tag"]["final"]["name"] == "cnn-0"
