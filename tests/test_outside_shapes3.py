"""Issue 12, a fifth outside check: study shapes the first four checks did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration),
then read in all four report formats and both exports. Where a script measures its runs itself,
its meter draws a known constant power (``tests/tracking/_meters.ConstantProcessPower``), so that
the truth of every energy figure is power x time:

* **MLflow**: a hand-written search in which each trial is an MLflow run nested under the
  search's parent run, in a file store in the study's directory (no server), each beside a
  greenprint run followed by greenprint's MLflow logger (``autolog``); no role given (the search
  is read as a sweep of trials), one trial fails, and a retrain with ``role="final"``; what
  MLflow shows for each run is what the report says;
* **Lightning with** ``EarlyStopping``: a hand-written search of five trials through greenprint's
  Lightning callback (``count_fpo=True``), some stopped early (one because its loss diverged to
  infinity, as ``EarlyStopping(check_finite=True)`` stops it), then a retrain (``role="final"``);
* **Hugging Face Trainer, plain training**: four configurations in a loop, each evaluated every
  epoch with ``EarlyStoppingCallback`` and ``load_best_model_at_end=True`` (the best by
  accuracy) through greenprint's Trainer callback: each trial is scored as the model it keeps
  (the best checkpoint), by the metric it kept it by;
* **a shell loop of** ``greenprint run --role trial -- python train.py --lr ... --model ...``
  (one process per trial, the configuration on the command line and in the script's own run),
  then ``greenprint run --role final``; continued the next day into the same ledger by a second
  loop and a second final.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import evp_curves as _evp_curves
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import in_every_format as _in_every_format
from _report_cli import price_tag_lines_have_units as _price_tag_lines_have_units
from _report_cli import report_text as _text
from greenprint.analysis import efficiencies, expected_max_performance
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

MLFLOW_SCRIPT = """
import json, os, sys, time
sys.path.insert(0, @METERS@)
import mlflow
import greenprint as gp
from greenprint.integrations import mlflow as gp_mlflow
from _meters import ConstantProcessPower

W = @WATTS@
CONFIGS = [("mlp", 0.1), ("cnn", 0.01), ("mlp", 0.03), ("cnn", 0.3), ("mlp", 0.001)]
FAILS = 3  # trial 3's loss diverges in its second epoch


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


mlflow.set_tracking_uri("file:" + os.path.abspath("mlruns"))  # a file store, no server
mlflow.set_experiment("mlf-search")
used_async = False  # whether MLflow's asynchronous logging queue was started
with (mlflow.start_run(run_name="search"),
      gp.track("search", study="mlf", meters=ConstantProcessPower(W)) as sweep):
    gp_mlflow.autolog(sweep, every_flush=False)
    for k, (model, lr) in enumerate(CONFIGS):
        try:
            with (mlflow.start_run(run_name=f"trial-{k}", nested=True),
                  gp.track(f"trial-{k}", params={"model": model, "lr": lr},
                           meters=ConstantProcessPower(W)) as run):
                logger = gp_mlflow.autolog(run, every_flush=False)
                mlflow.log_params({"model": model, "lr": lr})
                for epoch in range(3):
                    busy(0.04)
                    if k == FAILS and epoch == 1:
                        raise FloatingPointError("loss diverged")
                    loss = abs(lr - 0.03) + (0.1 if model == "mlp" else 0.0) + 0.1 / (epoch + 1)
                    mlflow.log_metric("val_loss", loss, step=epoch)
                    run.log(val_loss=loss, step=epoch)
                    logger.log(step=epoch)
                    queue = mlflow.MlflowClient()._tracking_client.store._async_logging_queue
                    used_async = used_async or queue.is_active()
        except FloatingPointError:
            pass  # the search goes on; MLflow and greenprint both record the trial failed
with (mlflow.start_run(run_name="final"),
      gp.track("final", study="mlf", role="final", params={"model": "cnn", "lr": 0.03},
               meters=ConstantProcessPower(W)) as run):
    gp_mlflow.autolog(run, every_flush=False)
    busy(0.08)
    run.log(val_loss=0.12)
    mlflow.log_metric("val_loss", 0.12)

with mlflow.start_run(run_name="cost-report") as logged:  # the study's report, in MLflow
    gp_mlflow.log_report("mlf", "greenprint.db", group_by="params.model")
client = mlflow.MlflowClient()
client.download_artifacts(logged.info.run_id, "greenprint/report/report.json", "logged")
# greenprint's logs left MLflow's asynchronous queue unused: each mlflow.end_run() would
# otherwise wait about 1 s for its thread (5 s of the search's 6 s, on trials of 0.15 s)
idle = not used_async
experiment = client.get_experiment_by_name("mlf-search").experiment_id
print(json.dumps([{"name": r.info.run_name, "id": r.info.run_id, "status": r.info.status,
                   "parent": r.data.tags.get("mlflow.parentRunId"), "idle": idle,
                   "metrics": r.data.metrics, "tags": r.data.tags}
                  for r in client.search_runs([experiment])
                  if r.info.run_id != logged.info.run_id]))
"""

LIGHTNING_SCRIPT = """
import json, logging, sys, warnings
sys.path.insert(0, @METERS@)
import torch
import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset
import greenprint as gp
from greenprint.integrations.lightning import GreenprintCallback
from _meters import ConstantProcessPower

warnings.filterwarnings("ignore")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
W = @WATTS@


class Net(pl.LightningModule):
    def __init__(self, model="linear", lr=0.1):
        super().__init__()
        self.save_hyperparameters()  # the trial's configuration: the run's params
        self.layer = (torch.nn.Linear(4, 1) if model == "linear" else torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)))

    def forward(self, x):
        return self.layer(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


g = torch.Generator().manual_seed(0)
x = torch.randn(128, 4, generator=g)
y = x.sum(1, keepdim=True) + 0.1 * torch.randn(128, 1, generator=g)
train = DataLoader(TensorDataset(x[:96], y[:96]), batch_size=32)  # 3 batches an epoch
val = DataLoader(TensorDataset(x[96:], y[96:]), batch_size=32)


def step_fpo(model):  # one training step, counted on real tensors: forward, loss, backward
    net = Net(model)
    with gp.FPOCounter() as counted:
        net.training_step(next(iter(train)), 0).backward()
    return counted.total


def fit(name, model, lr, seed, role, epochs, early_stop):
    torch.manual_seed(seed)
    stop = EarlyStopping("val_loss", patience=2, min_delta=1e-3, mode="min")
    cb = GreenprintCallback(name, study="pl", role=role, count_fpo=True,
                            meters=ConstantProcessPower(W))
    csv = CSVLogger("logs", name=name) if role == "final" else False  # the final's metrics
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=csv,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False,
                         callbacks=[cb, stop] if early_stop else [cb])
    trainer.fit(Net(model, lr), train, val)
    last = float(trainer.callback_metrics["val_loss"])
    return {"run": cb.last_run_id, "model": model, "epochs": trainer.current_epoch,
            "batches": trainer.global_step, "stopped_early": early_stop and stop.stopped_epoch > 0,
            "last": last if last == last and abs(last) != float("inf") else None}


CONFIGS = [("linear", 0.1), ("mlp", 0.5), ("linear", 1e-4), ("mlp", 0.05), ("linear", 2.0)]
out = {f"trial-{k}": fit(f"trial-{k}", m, lr, k, "trial", 12, True)
       for k, (m, lr) in enumerate(CONFIGS)}
out["final"] = fit("final", "linear", 0.1, 0, "final", 5, False)
out["step_fpo"] = {m: step_fpo(m) for m in ("linear", "mlp")}
print(json.dumps(out))
"""

HF_SCRIPT = """
import json, sys, warnings
sys.path.insert(0, @METERS@)
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, EarlyStoppingCallback,
                          Trainer, TrainingArguments)
from transformers.utils import logging as hf_logging
from greenprint.integrations.transformers import GreenprintCallback
from _meters import ConstantProcessPower

warnings.filterwarnings("ignore")
hf_logging.set_verbosity_error()
W = @WATTS@
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=2)
g = torch.Generator().manual_seed(0)
data = [{"input_ids": torch.randint(0, 50, (8,), generator=g), "labels": torch.tensor(i % 2)}
        for i in range(64)]
for item in data:  # a signal to learn: the first token says the label
    item["input_ids"][0] = 1 + int(item["labels"])


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


out = {}
for k, (lr, family) in enumerate([(5e-3, "wide"), (1e-1, "wide"), (1e-4, "narrow"),
                                  (2e-3, "narrow")]):
    torch.manual_seed(k)
    args = TrainingArguments(
        output_dir=f"out-{k}", report_to="none", use_cpu=True, num_train_epochs=8,
        learning_rate=lr, per_device_train_batch_size=16, eval_strategy="epoch",
        save_strategy="epoch", logging_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model="accuracy", save_total_limit=1, disable_tqdm=True)
    trainer = Trainer(model=AutoModelForSequenceClassification.from_config(config), args=args,
                      train_dataset=data[:48], eval_dataset=data[48:], compute_metrics=accuracy,
                      callbacks=[EarlyStoppingCallback(early_stopping_patience=1)])
    cb = GreenprintCallback(f"trial-{k}", study="hf", role="trial", params={"family": family},
                            meters=ConstantProcessPower(W)).attach(trainer)
    trainer.train()
    evaluations = [h for h in trainer.state.log_history if "eval_loss" in h]
    kept = trainer.evaluate()  # the model train() returned with: the best checkpoint
    out[f"trial-{k}"] = {"run": cb.last_run_id, "family": family, "epochs": len(evaluations),
                         "best": trainer.state.best_metric, "kept": kept["eval_accuracy"],
                         "last_loss": evaluations[-1]["eval_loss"], "kept_loss": kept["eval_loss"]}
print(json.dumps(out))
"""

CLI_TRAIN = """
import argparse, json, time
import greenprint as gp

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--model")
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


with gp.track("fit", params={"lr": args.lr, "model": args.model}) as run:
    for epoch in range(args.epochs):
        busy(0.01)
        loss = abs(args.lr - 0.01) * 10 + (0.2 if args.model == "mlp" else 0.0) + 0.1 / (epoch + 1)
        run.log(val_loss=loss, step=epoch)
print(json.dumps({"lr": args.lr, "model": args.model, "val_loss": loss}))
"""

#: One day of the search: a trial per ``lr:model`` argument, then the final retrain; with
#: ``--param`` as second argument each trial records its configuration itself too.
CLI_DAY = """
set -e
final=$1; with_params=$2; shift 2
for config in "$@"; do
  lr=${config%:*}; model=${config#*:}
  params=""
  [ "$with_params" = "--param" ] && params="--param lr=$lr --param model=$model"
  greenprint run -q --study cli --role trial --name "trial-$model-$lr" $params -- \\
    python train.py --lr "$lr" --model "$model"
done
greenprint run -q --study cli --role final --name "$final" -- \\
  python train.py --lr 0.01 --model cnn --epochs 5
"""


#: One user's trials into a shared ledger: ``bash user.sh URL USER lr:model...``.
PG_USER = """
set -e
url=$1; user=$2; shift 2
for config in "$@"; do
  lr=${config%:*}; model=${config#*:}
  greenprint run -q --ledger "$url" --study shared --role trial --name "$user-$model-$lr" \\
    --param lr="$lr" --param model="$model" -- python train.py --lr "$lr" --model "$model"
done
"""


# ------------------------------------------------------------------------------- helpers
def _script(text: str) -> str:
    return text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))


def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["runs"]}


def _at_constant_power(report: dict) -> None:
    """Every run drew WATTS for its run time: its energy is power x time (a meter of known
    power), its CO2-eq that energy at its grid intensity, and the total the roots' sum."""
    for row in report["runs"]:
        kwh = WATTS * row["duration_s"] / 3.6e6
        lag = WATTS * READ_LAG_S / 3.6e6  # the meter's clock a moment after the run's stamp
        assert row["energy_kwh"] == pytest.approx(kwh, rel=1e-3, abs=lag), row["name"]
        co2 = row["energy_kwh"] * row["pue"] * row["intensity_g_per_kwh"] / 1000
        assert row["emissions_kg"] == pytest.approx(co2, rel=1e-9), row["name"]
    # the roots, and the parts whose cost is outside their parent's (an evaluation after its
    # training: HF's trainer.evaluate() is measured since s25)
    counted = [r for r in report["runs"] if r["parent_id"] is None or r["contained"] is False]
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in counted), rel=1e-9)


def _ledger_runs(ledger: Path, study: str) -> list[gp.RunRecord]:
    with gp.Ledger(ledger, create=False) as led:
        return list(led.runs(study=study))


# ------------------------------------------------------------------------------- fixtures
def _study(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    script: str,
    *report_args: str,
    env: dict[str, str] | None = None,
) -> tuple[Path, Any, dict]:
    """``script`` run as ``search.py`` in a new user's empty directory: the directory, what
    the script printed last (JSON) and ``greenprint report`` with ``report_args``."""
    home = _empty(tmp_path_factory, name)
    (home / "search.py").write_text(_script(script), encoding="utf-8")
    done = run_in(home, sys.executable, "search.py", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout.splitlines()[-1]), _report(home, *report_args)


@pytest.fixture(scope="module")
def mlflow_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """Five trials as MLflow runs nested under the search's, a failure, a final retrain."""
    pytest.importorskip("mlflow")
    env = clean_env()  # MLflow's file store, as its docs allow it; no usage reports
    env.update(MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_DISABLE_TELEMETRY="true")
    return _study(tmp_path_factory, "shapes3-mlflow", MLFLOW_SCRIPT,
                  "--study", "mlf", "--group-by", "params.model", "--no-plots",
                  env=env)  # fmt: skip


@pytest.fixture(scope="module")
def lightning_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Five Lightning trials with EarlyStopping, one diverging, and a retrain."""
    need_installed("lightning", "lightning")
    return _study(tmp_path_factory, "shapes3-lightning", LIGHTNING_SCRIPT,
                  "--study", "pl", "--group-by", "params.model", "--no-plots")  # fmt: skip


@pytest.fixture(scope="module")
def hf_trainings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Four Trainer trainings evaluated each epoch, early stopping, best model kept."""
    need_installed("transformers", "transformers")
    return _study(tmp_path_factory, "shapes3-hf", HF_SCRIPT,
                  "--study", "hf", "--group-by", "params.family", "--no-plots")  # fmt: skip


@pytest.fixture(scope="module")
def cli_loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict, dict]:
    """Day one: four ``greenprint run --role trial`` and a final; day two: two more, a final.

    Returns the home, each trial's configuration and loss by name, and the JSON reports after
    day one and after day two.
    """
    home = _empty(tmp_path_factory, "shapes3-cli")
    (home / "train.py").write_text(CLI_TRAIN, encoding="utf-8")
    (home / "day.sh").write_text(CLI_DAY, encoding="utf-8")
    built: dict[str, dict] = {}
    reports = []
    for final, flag, configs in (
        ("final", "-", ["0.1:mlp", "0.01:cnn", "0.03:mlp", "0.001:cnn"]),
        ("final-day2", "--param", ["0.005:cnn", "0.3:mlp"]),
    ):
        done = run_in(home, "bash", "day.sh", final, flag, *configs)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        for config, line in zip(configs, lines, strict=False):
            lr, model = config.split(":")
            built[f"trial-{model}-{lr}"] = line
        built[final] = lines[-1]
        reports.append(_report(home, "--study", "cli", "--group-by", "params.model", "--no-plots"))
    return home, built, reports[0], reports[1]


# ------------------------------------------------------------------------------- MLflow
def test_mlflow_nested_runs_read_as_a_sweep_of_trials(mlflow_search):
    """No role given: the parent is read as a sweep and its nested runs as its trials (and the
    report says it inferred them); the failed trial counts; the retrain is final."""
    home, _, report = mlflow_search
    tag = report["price_tag"]
    rows = _rows(report)
    assert tag["roles"]["counts"] == {"sweep": 1, "trial": 5, "final": 1}
    assert tag["roles"]["inferred"] == 6 and "(5 trials, 1 sweep)" in tag["roles"]["note"]
    assert rows["search"]["role_inferred"] and not rows["final"]["role_inferred"]
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {
        "finished": 4,
        "failed": 1,
    }
    assert rows["trial-3"]["status"] == "failed"
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("final", "role")
    assert (report["metric"], report["mode"]) == ("val_loss", "min")
    _in_every_format(home, "comprised 5 trials (4 finished, 1 failed) in 7 runs")
    md = _text(home, "md")
    _price_tag_lines_have_units(md)
    assert "- **FPO**: unknown (none of the 7 runs counted FPO)\n" in md and "0 FPO" not in md
    timeline = next(f for f in report["figures"] if f["id"] == "timeline")
    power, energy = timeline["panels"]  # one process at a constant power: WATTS drawn once
    peak = max(v for s in power["series"] for v in s["y"] if v is not None)
    assert (power["y_unit"], peak) == ("W", pytest.approx(WATTS, rel=1e-3))  # not 2x nested
    per_kwh = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[energy["y_unit"]]
    last = energy["series"][0]["y"][-1]
    assert last == pytest.approx(tag["total"]["energy_kwh"] * per_kwh, rel=1e-9)
    for note in timeline["notes"]:  # 'one gap ... is drawn', not '1 gaps ... are drawn'
        assert not re.match(r"1 gaps\b", note), note
    # EVP per model from the trials' losses; the failed trial counts as the worst
    losses = {
        k: abs(lr - 0.03) + (0.1 if m == "mlp" else 0.0) + 0.1 / 3
        for k, (m, lr) in enumerate(
            [("mlp", 0.1), ("cnn", 0.01), ("mlp", 0.03), ("cnn", 0.3), ("mlp", 0.001)]
        )  # fmt: skip
    }
    worst = max(v for k, v in losses.items() if k != 3)
    curves = _evp_curves(report)
    for family, members in (("mlp", [0, 2, 4]), ("cnn", [1, 3])):
        scores = [worst if k == 3 else losses[k] for k in members]
        expected = expected_max_performance(scores, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, abs=1e-12)
    for k, score in losses.items():
        if k != 3:
            assert rows[f"trial-{k}"]["score"] == pytest.approx(score, rel=1e-12)
    _at_constant_power(report)
    _export_reads_as_the_report(home, "mlf", report)


def test_what_mlflow_shows_is_what_the_report_says(mlflow_search):
    """Each MLflow run carries its greenprint run's energy, CO2-eq, time and status, equal to
    the report's row; the nested runs are the sweep's trials in both."""
    _, shown, report = mlflow_search
    rows = {row["id"]: row for row in report["runs"]}
    statuses = {"FINISHED": "finished", "FAILED": "failed"}
    by_name = {r["name"]: r for r in shown}
    assert all(r["idle"] for r in shown)  # MLflow's async queue unused: end_run does not wait
    for name in ("search", "final"):  # and the step figures logged at each epoch are there
        assert "greenprint/energy_kwh" in by_name[name]["metrics"]
    assert sorted(by_name) == sorted(row["name"] for row in report["runs"])
    for run in shown:
        row = rows[run["tags"]["greenprint.run_id"]]
        assert row["name"] == run["name"]
        assert (run["tags"]["greenprint.status"], statuses[run["status"]]) == (row["status"],) * 2
        metrics = run["metrics"]
        assert metrics["greenprint/energy_kwh"] == pytest.approx(row["energy_kwh"], rel=1e-12)
        assert metrics["greenprint/emissions_kg"] == pytest.approx(row["emissions_kg"], rel=1e-12)
        assert metrics["greenprint/duration_s"] == pytest.approx(row["duration_s"], rel=1e-9)
        # the mean power of its last window, by the meter's clock, read a moment after the
        # run's stamp (as _at_constant_power allows: a loaded machine, 358 W over 0.12 s)
        lag_w = WATTS * READ_LAG_S / row["duration_s"]
        assert metrics["greenprint/power_w"] == pytest.approx(WATTS, rel=1e-3, abs=lag_w)
        assert "greenprint/fpo" not in metrics  # unknown, never 0
        parent = by_name["search"]["id"] if row["parent_id"] else None
        assert run["parent"] == parent
        # a given role is tagged; one the report infers too, marked inferred (6f0e315)
        assert run["tags"].get("greenprint.role") == row["role"]
        assert (run["tags"].get("greenprint.role_inferred") == "true") == bool(row["role_inferred"])


def test_the_report_logged_into_mlflow_is_the_cli_report(mlflow_search):
    """``log_report`` puts in MLflow the report ``greenprint report`` writes (same options)."""
    home, _, report = mlflow_search
    logged = json.loads((home / "logged" / "report.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in logged.items() if k != "generated_at"} == {
        k: v for k, v in report.items() if k != "generated_at"
    }


# ------------------------------------------------------------------------------- Lightning
def test_lightning_trials_stopped_early_are_finished_with_their_own_cost(lightning_search):
    """EarlyStopping ends a trial's fit normally: a finished trial, not a pruned one, with the
    cost and FPO of the epochs it ran (FPO = batches x one step's, counted on real tensors)."""
    home, built, report = lightning_search
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 5, "final": 1} and tag["roles"]["inferred"] == 0
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {"finished": 5}
    assert sum(built[f"trial-{k}"]["stopped_early"] for k in range(5)) >= 2
    for name in [f"trial-{k}" for k in range(5)] + ["final"]:
        row, fit = rows[name], built[name]
        assert (row["id"], row["status"]) == (fit["run"], "finished")
        assert row["params"]["model"] == fit["model"]
        assert row["fpo"] == fit["batches"] * built["step_fpo"][fit["model"]], name
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("final", "role")
    # the Trainer's own logger ends with the run's totals (read: the last training epoch's
    # end, 96% of it, the last validation left out)
    (logged,) = (home / "logs" / "final").glob("version_*/metrics.csv")
    with logged.open(encoding="utf-8") as f:
        energy = [r["greenprint/energy_kwh"] for r in csv.DictReader(f)]
    energy = [float(v) for v in energy if v]
    assert len(energy) == 6  # five epochs' figures, then the totals
    assert energy[-1] == pytest.approx(rows["final"]["energy_kwh"], rel=1e-12)
    fpo = sum(rows[n]["fpo"] for n in rows)
    assert tag["total"]["fpo"] == fpo and tag["total"]["fpo_unknown"] == 0
    _at_constant_power(report)
    _price_tag_lines_have_units(_text(home, "md"))
    _in_every_format(home, "comprised 5 trials (5 finished) in 6 runs")
    _export_reads_as_the_report(home, "pl", report)


def test_a_lightning_trial_whose_loss_diverged_scores_as_the_worst(lightning_search):
    """Trial 1's loss went to infinity and EarlyStopping stopped it there. Its score is not a
    stale finite loss of an earlier epoch (read 655.9, better than two trials that ran well):
    it has no score, counted as the worst, in the table and in EVP; the others score their
    last validation loss, Lightning's."""
    home, built, report = lightning_search
    rows = _rows(report)
    assert built["trial-1"]["last"] is None  # Lightning's last val_loss is not finite
    assert rows["trial-1"]["score"] is None
    scores = {k: built[f"trial-{k}"]["last"] for k in range(5)}
    for k, score in scores.items():
        if score is not None:
            assert rows[f"trial-{k}"]["score"] == pytest.approx(score, rel=1e-6)
    worst = max(s for s in scores.values() if s is not None)
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    assert "a last value that is NaN: a diverged loss" in evp["provenance"][0]  # why no score
    curves = _evp_curves(report)
    for family in ("linear", "mlp"):
        members = [worst if s is None else s for k, s in scores.items()
                   if built[f"trial-{k}"]["model"] == family]  # fmt: skip
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------- Hugging Face
def test_hf_trials_score_the_best_checkpoint_they_keep(hf_trainings):
    """load_best_model_at_end: train() returns the best checkpoint (by accuracy), so each trial
    is scored as that model: the report ranks by eval_accuracy, the metric the trials kept
    their model by (read: eval_loss, logged as often), each trial's score is the Trainer's
    best_metric, and its last eval_loss is the kept model's (what evaluate() then gives), not
    the last epoch's; EVP reads it; the params say the best model was kept and by what."""
    home, built, report = hf_trainings
    rows = _rows(report)
    tag = report["price_tag"]
    assert any(t["last_loss"] != t["kept_loss"] for t in built.values())  # stopped past best
    runs = {r.id: r for r in _ledger_runs(home / "greenprint.db", "hf")}
    for name, trial in built.items():
        row = rows[name]
        assert (row["id"], row["status"], row["role"]) == (trial["run"], "finished", "trial")
        assert trial["kept"] == pytest.approx(trial["best"], rel=1e-9)
        assert row["score"] == pytest.approx(trial["best"], rel=1e-9), name
        assert runs[row["id"]].metric("eval_loss") == pytest.approx(trial["kept_loss"], rel=1e-6)
        assert row["params"]["load_best_model_at_end"] is True
        assert row["params"]["metric_for_best_model"] == "eval_accuracy"
    assert (report["metric"], report["mode"]) == ("eval_accuracy", "max")
    assert any("metric_for_best_model" in note for note in report["notes"]), report["notes"]
    # of a tie on the best score, the cheapest (its energy with its parts'), then the earliest
    energy = {e.name: e.energy_kwh for e in efficiencies(runs.values(), metric="eval_accuracy")}
    best = min(built, key=lambda n: (-built[n]["best"], energy[n], int(n.split("-")[1])))
    assert (tag["final"]["name"], tag["final"]["rule"]) == (best, "best-trial")
    curves = _evp_curves(report)
    for family in ("wide", "narrow"):
        members = [t["best"] for t in built.values() if t["family"] == family]
        expected = expected_max_performance(members, mode="max").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-9)
    _at_constant_power(report)
    # each trial's trainer.evaluate() after its training: a part of it (s25)
    _in_every_format(home, "comprised 4 trials (4 finished) in 8 runs")
    _export_reads_as_the_report(home, "hf", report)


# ------------------------------------------------------------------------------- CLI loop
def _cli_reads_right(home: Path, built: dict, report: dict, trials: list[str], final: str) -> None:
    rows = _rows(report)
    tag = report["price_tag"]
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == sorted(trials)
    runs = len(report["runs"])  # each trial and final holds its script's run, named "fit"
    finals = runs // 2 - len(trials)
    assert tag["roles"]["counts"] == {"trial": len(trials), "final": finals, "part": runs // 2}
    for name in trials:  # scored by the script's own run inside (its part), and the note says so
        assert rows[name]["score"] == pytest.approx(built[name]["val_loss"], rel=1e-12)
        assert rows[name]["score_source"] == "parts"
    assert (tag["final"]["name"], tag["final"]["rule"]) == (final, "role")
    assert tag["final"]["score"] == pytest.approx(built[final]["val_loss"], rel=1e-12)
    # EVP per model: the configuration the trial's only fit recorded is the trial's family
    curves = _evp_curves(report)
    for family in ("mlp", "cnn"):
        members = [built[n]["val_loss"] for n in trials if built[n]["model"] == family]
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-12)
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    assert not any(n.startswith("no curve per") for n in evp["notes"]), evp["notes"]
    for row in report["runs"]:  # each trial's process tree holds its script's run
        if row["parent_id"] is not None:
            parent = next(r for r in report["runs"] if r["id"] == row["parent_id"])
            assert parent["energy_kwh"] >= row["energy_kwh"]
    if len(trials) == len(built) - 2:  # the ledger as exported now holds both days
        _price_tag_lines_have_units(_text(home, "md"))
        _export_reads_as_the_report(home, "cli", report)


def test_cli_loop_of_trials_reads_its_trials_families_and_final(cli_loop):
    """Four trials, each a ``greenprint run --role trial`` around one fit, and a final: the
    trials score their fit's loss, EVP has a curve per model, the final is the retrain."""
    home, built, day1, _ = cli_loop
    trials = ["trial-mlp-0.1", "trial-cnn-0.01", "trial-mlp-0.03", "trial-cnn-0.001"]
    assert day1["price_tag"]["total"]["trials"] == 4
    _cli_reads_right(home, built, day1, trials, "final")


def test_cli_loop_continued_next_day_counts_both_days(cli_loop):
    """The second day's trials join the first's in one study: six trials, EVP over six, the
    final is the last retrain started (the report says it chose the last of two)."""
    home, built, _, day2 = cli_loop
    trials = ["trial-mlp-0.1", "trial-cnn-0.01", "trial-mlp-0.03", "trial-cnn-0.001",
              "trial-cnn-0.005", "trial-mlp-0.3"]  # fmt: skip
    _cli_reads_right(home, built, day2, trials, "final-day2")
    assert "the last started of the 2 runs" in day2["price_tag"]["final"]["rule_text"]
    rows = _rows(day2)  # day two gave each trial its configuration with --param
    assert rows["trial-cnn-0.005"]["params"] == {"lr": 0.005, "model": "cnn"}
    assert rows["trial-mlp-0.3"]["params"] == {"lr": 0.3, "model": "mlp"}
    assert rows["trial-mlp-0.1"]["params"] == {}  # day one's: on its script's run only
    _in_every_format(home, "comprised 6 trials (6 finished) in 16 runs")
    assert math.isclose(day2["price_tag"]["total"]["trials"], 6)


def test_cli_param_without_a_value_is_one_line_and_writes_nothing(cli_loop):
    """``--param lr`` (no ``=``) is refused before anything runs: one line, exit status 2."""
    home, _, _, day2 = cli_loop
    done = run_in(home, GREENPRINT, "run", "--study", "cli", "--param", "lr", "--",
                  sys.executable, "train.py", "--lr", "0.1", "--model", "cnn")  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "greenprint: error: --param 'lr': give it as KEY=VALUE, e.g. --param lr=0.1"
    ]
    with gp.Ledger(home / "greenprint.db", create=False) as ledger:
        assert len(ledger.runs(study="cli")) == len(day2["runs"])


# ------------------------------------------------------------------------------- PostgreSQL
@pytest.mark.slow  # a PostgreSQL server and four greenprint runs: about 10 s
@pytest.mark.postgres
def test_two_users_into_one_postgresql_study_read_as_one_study(tmp_path_factory, pg_server):
    """Two users (two hosts, ``GREENPRINT_HOST``) run their trial loops at the same time into
    one study of a PostgreSQL ledger, then one adds a baseline: one study of three trials on
    two machines, each trial its own configuration and score, EVP per model, the best trial
    final, the baseline a reference and not a trial."""
    url = pg_server.new_database()
    home = _empty(tmp_path_factory, "shapes3-pg")
    (home / "train.py").write_text(CLI_TRAIN, encoding="utf-8")
    (home / "user.sh").write_text(PG_USER, encoding="utf-8")
    configs = {"alice": ["0.1:mlp", "0.01:cnn"], "bob": ["0.001:cnn"]}
    users = []
    for user, mine in configs.items():
        env = clean_env()
        env["GREENPRINT_HOST"] = f"{user}-ws"
        users.append(subprocess.Popen(["bash", "user.sh", url, user, *mine], cwd=home,
                                      env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    built: dict[str, dict] = {}
    for (user, mine), process in zip(configs.items(), users, strict=True):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        for config, line in zip(mine, out.splitlines(), strict=True):
            lr, model = config.split(":")
            built[f"{user}-{model}-{lr}"] = json.loads(line)
    env = clean_env()
    env["GREENPRINT_HOST"] = "bob-ws"
    done = run_in(home, GREENPRINT, "run", "-q", "--ledger", url, "--study", "shared",
                  "--role", "baseline", "--name", "bob-baseline", "--", sys.executable,
                  "train.py", "--lr", "1.0", "--model", "mlp", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    baseline = json.loads(done.stdout)["val_loss"]
    report = _report(home, "--ledger", url, "--study", "shared", "--group-by", "params.model",
                     "--no-plots")  # fmt: skip
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 3, "baseline": 1, "part": 4}
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {"finished": 3}
    for name, line in built.items():
        assert rows[name]["params"] == {"lr": line["lr"], "model": line["model"]}
        assert rows[name]["score"] == pytest.approx(line["val_loss"], rel=1e-12)
    best = min(built, key=lambda n: built[n]["val_loss"])
    assert (tag["final"]["name"], tag["final"]["rule"]) == (best, "best-trial")
    assert rows["bob-baseline"]["score"] == pytest.approx(baseline, rel=1e-12)
    assert not rows["bob-baseline"]["is_trial"]
    curves = _evp_curves(report)
    for family in ("mlp", "cnn"):
        members = [v["val_loss"] for v in built.values() if v["model"] == family]
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-12)
    assert "on 2 machines: host " in report["compute_statement"]
    for host, runs in (("alice-ws", 4), ("bob-ws", 4)):
        assert f"host {host}: " in report["compute_statement"]
        assert f"({runs} runs)" in report["model_card"]["co2_eq_emissions"]["hardware_used"]
    _in_every_format(home, "comprised 3 trials (3 finished) in 8 runs", "on 2 machines")
    _export_reads_as_the_report(home, "shared", report, "--ledger", url)


def test_cli_param_values_read_as_the_command_line_writes_them():
    """``--param`` numbers and booleans are recorded as such, anything else as its text."""
    from greenprint.cli._run_args import parsed_params as _params

    given = ("lr=0.1", "wd=1e-4", "layers=3", "neg=-2", "half=.5", "amp=true", "ddp=False",
             "model=cnn", "id=007", "n=1_000", "x=nan", "empty=", "eq=a=b", " pad =1")  # fmt: skip
    assert _params(given) == {
        "lr": 0.1, "wd": 1e-4, "layers": 3, "neg": -2, "half": 0.5, "amp": True, "ddp": False,
        "model": "cnn", "id": "007", "n": "1_000", "x": "nan", "empty": "", "eq": "a=b", "pad": 1,
    }  # fmt: skip
    for bad in ("lr", "=0.1", " =1"):
        with pytest.raises(gp.ConfigError, match="give it as KEY=VALUE"):
            _params((bad,))
