"""Issue 12, a third outside check: study shapes the first two checks did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration),
then read in all four report formats and both exports:

* **one data-parallel training** (``greenprint run -- python train.py``): the script starts two
  ranks with ``torch.multiprocessing.spawn`` that train one model together over
  ``torch.distributed`` (gloo on loopback, set up as PyTorch's DDP tutorial does: the master
  address and port in the environment, rank and world size given to ``init_process_group``),
  each rank a ``gp.track`` run that counts its FPO and logs its validation loss;
* **two "nodes" of one job** writing a ledger each (``GREENPRINT_JOB_ID``,
  ``GREENPRINT_NODE_RANK``, ``GREENPRINT_HOST`` as a batch script sets them), each node's
  ``greenprint run`` spawning two local ranks of one four-rank training, joined with
  ``greenprint ledger merge``;
* **Optuna multi-objective** (``directions=["maximize", "minimize"]``) through greenprint's
  Optuna callback, resumed in a second process on the same storage (``load_if_exists=True``);
* **scikit-learn** ``HalvingGridSearchCV``, ``RandomizedSearchCV(n_jobs=2)`` (loky worker
  processes) and nested cross-validation (a ``GridSearchCV`` per outer fold) through
  ``track_search``.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, export_rows, roots_sum_to_the_price_tag, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text as _text
from greenprint.analysis import expected_max_performance
from integrations._frameworks import need_installed

DDP_SCRIPT = """
import os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import greenprint as gp

NODE, NODES, LOCAL = int(os.environ.get("NODE", "0")), int(os.environ.get("NODES", "1")), 2


def worker(local, port, lr=0.05, prefix=""):
    os.environ["MASTER_ADDR"] = "127.0.0.1"  # as PyTorch's DDP tutorial sets them
    os.environ["MASTER_PORT"] = port
    rank = NODE * LOCAL + local
    dist.init_process_group("gloo", rank=rank, world_size=NODES * LOCAL)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    data = torch.Generator().manual_seed(100 + rank)  # this rank's shard
    with gp.track(f"{prefix}rank{rank}", params={"model": "linear", "lr": lr}) as run:
        with gp.FPOCounter() as counted:
            for step in range(20):
                x = torch.randn(32, 8, generator=data)
                loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
                model.zero_grad()
                loss.backward()
                for p in model.parameters():  # what DistributedDataParallel does
                    dist.all_reduce(p.grad)
                    p.grad /= NODES * LOCAL
                with torch.no_grad():  # what torch.optim.SGD does (whose first use imports
                    for p in model.parameters():  # torch._dynamo: 1.4 s of CPU a rank)
                        p -= lr * p.grad
        run.add_fpo(counted.total)
        with torch.no_grad():
            x = torch.randn(64, 8, generator=data)
            run.log(val_loss=float(((model(x) - x.sum(1, keepdim=True)) ** 2).mean()))
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1],), nprocs=LOCAL)
"""

OPTUNA_MO_SCRIPT = """
import json, sys, warnings
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.simplefilter("always")  # greenprint's warnings reach stderr in both processes


def objective(trial):
    model = trial.suggest_categorical("model", ["mlp", "cnn"])
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 3:
        raise FloatingPointError("diverged")
    if trial.number == 5:
        raise optuna.TrialPruned()
    return x, (1 - x) ** 2 + (0.1 if model == "mlp" else 0.0)  # accuracy, latency


cb = GreenprintCallback()  # objectives recorded as values_0 (maximised), values_1 (minimised)
study = optuna.create_study(
    study_name="mo", directions=["maximize", "minimize"], storage="sqlite:///optuna.db",
    load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[1])))
study.optimize(cb.track(objective), n_trials=int(sys.argv[2]), callbacks=[cb],
               catch=(FloatingPointError,))
print(json.dumps([{"number": t.number, "state": t.state.name, "values": t.values,
                   "model": t.params["model"], "run": t.user_attrs.get("greenprint_run_id")}
                  for t in study.trials]))
"""


SKLEARN_SCRIPT = """
import json, warnings
import greenprint as gp
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (GridSearchCV, HalvingGridSearchCV, KFold,
                                     RandomizedSearchCV)
from sklearn.svm import SVC
from greenprint.integrations.sklearn import track_search

warnings.filterwarnings("ignore")  # the failed fits' FitFailedWarning
X, y = load_digits(return_X_y=True)
X, y = X[:300], y[:300]
out = {}

# successive halving: 8 candidates on 60 examples, the best 4 on 120, the best 2 on 240
halving = HalvingGridSearchCV(SVC(), {"C": [0.01, 0.1, 1, 10], "gamma": [1e-3, 1e-2]}, cv=3,
                              factor=2, random_state=0)
track_search(halving, X, y, study="halving", name="halving")
out["halving"] = {"rows": len(halving.cv_results_["params"]), "best": halving.best_score_}

# a random search whose folds run in two loky worker processes
rand = RandomizedSearchCV(LogisticRegression(max_iter=300), {"C": [0.001, 0.01, 0.1, 1, 10]},
                          n_iter=4, cv=3, n_jobs=2, random_state=0)
track_search(rand, X, y, study="random", name="random")
out["random"] = {"scores": list(map(float, rand.cv_results_["mean_test_score"])),
                 "C": [p["C"] for p in rand.cv_results_["params"]], "best": rand.best_score_}

# the same with candidates that fail to fit (lbfgs has no l1 penalty: error_score=nan)
fails = RandomizedSearchCV(LogisticRegression(max_iter=300),
                           {"C": [0.01, 1], "penalty": ["l2", "l1"]}, n_iter=4, cv=3, n_jobs=2,
                           random_state=0)
track_search(fails, X, y, study="fails", name="fails")
out["fails"] = {"penalty": [p["penalty"] for p in fails.cv_results_["params"]],
                "scores": [float(v) for v in fails.cv_results_["mean_test_score"]],
                "best": fails.best_score_}

# nested cross-validation: a grid search per outer fold, scored on the fold it left out
outer_scores = []
with gp.track("nested-cv", study="nested") as outer:
    for k, (tr, te) in enumerate(KFold(3, shuffle=True, random_state=0).split(X)):
        search = GridSearchCV(SVC(), {"C": [0.1, 1, 10], "gamma": [1e-3]}, cv=3)
        track_search(search, X[tr], y[tr], name=f"outer{k}")
        outer_scores.append(float(search.score(X[te], y[te])))
    outer.log(accuracy=sum(outer_scores) / 3)
out["nested"] = outer_scores
print(json.dumps(out))
"""


#: Two trainings one after another on the same master port, each spawning its two ranks.
DDP_SWEEP_SCRIPT = """
import sys
import torch.multiprocessing as mp
import greenprint as gp
from train import worker

if __name__ == "__main__":
    for lr in (0.05, 0.01):
        mp.spawn(worker, args=(sys.argv[1], lr, f"lr{lr}-"), nprocs=2)
"""


HF_SEARCH_SCRIPT = """
import json, warnings
import optuna
from transformers import Trainer, TrainingArguments
import greenprint as gp
from greenprint.integrations.transformers import GreenprintCallback
from hf_tiny import Tokens, tiny_bert

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


def hp_space(trial):
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)}


args = TrainingArguments(output_dir="out", num_train_epochs=1, eval_strategy="epoch",
                         save_strategy="no", logging_steps=2, report_to=[], use_cpu=True,
                         disable_tqdm=True)  # one epoch, one evaluation: the trial's objective
trainer = Trainer(model_init=tiny_bert, args=args, train_dataset=Tokens(32, seed=0),
                  eval_dataset=Tokens(16, seed=1), compute_metrics=accuracy)
GreenprintCallback(study="hf-hpo").attach(trainer)
best = trainer.hyperparameter_search(hp_space=hp_space, direction="maximize", backend="optuna",
                                     n_trials=3, sampler=optuna.samplers.RandomSampler(seed=0))
trainer.args.learning_rate = best.hyperparameters["learning_rate"]
with gp.track("final", study="hf-hpo", role="final", params=best.hyperparameters):
    trainer.train()  # the Trainer's run of the retrain: a part of it
print(json.dumps(best.hyperparameters))
"""


# ------------------------------------------------------------------------------- helpers
def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _runs(db: Path, study: str) -> dict[str, gp.RunRecord]:
    with gp.Ledger(db, create=False) as led:
        return {r.name: r for r in led.runs(study=study)}


def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["runs"]}


def _export(home: Path, study: str, *args: str) -> tuple[list[dict[str, str]], dict[str, dict]]:
    """``greenprint ledger export`` of ``study``: the CSV rows and the JSON items by name."""
    rows, items = export_rows(home, study, *args)
    return rows, {i["name"]: i for i in items}


def _export_reads_as_the_report(home: Path, study: str, report: dict, *args: str) -> None:
    """Both exports give every run the report's role, and their root rows sum to its price
    tag (each root the larger of what it recorded and what its children add up to)."""
    rows, items = _export(home, study, *args)
    by_name = _rows(report)
    assert {r["name"]: r["role"] for r in rows} == {n: r["role"] for n, r in by_name.items()}
    assert {n: i["role"] for n, i in items.items()} == {n: r["role"] for n, r in by_name.items()}
    roots_sum_to_the_price_tag(rows, report)


def _tree_order_holds(text: str, report: dict) -> None:
    """In the runs table (Markdown or HTML) every run is listed, each right under its parent
    and one level deeper (the label's indent, two spaces a level)."""
    parent = {row["id"][:8]: (row["parent_id"] or "")[:8] for row in report["runs"]}
    text = text[text.index(f"Runs ({len(parent)})") :]
    listed = re.findall(r"\n\| ( *)(?:↳ )?[^|]*\|.*\| ([0-9a-f]{8}) \|", text)
    if not listed:  # HTML: <td class="name">(indent)↳ name</td> ... <td>id</td>
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", text, flags=re.S)
        listed = [
            (m.group(1).replace("&nbsp;", " "), re.findall(r">([0-9a-f]{8})<", row)[-1])
            for row in rows
            if (m := re.search(r"<td[^>]*>((?:&nbsp;| )*)(?:↳ )?", row))
            and re.findall(r">([0-9a-f]{8})<", row)
        ]
    stack: list[str] = []
    for indent, run_id in listed:
        depth = len(indent) // 2
        del stack[depth:]
        assert (stack[-1] if stack else "") == parent[run_id], (run_id, listed)
        stack.append(run_id)
    assert sorted(i for _, i in listed) == sorted(parent)


def _report_in(home: Path, out: str, *args: str) -> dict:
    """``greenprint report ARGS --out OUT`` under ``home``; the JSON report, parsed."""
    done = run_in(home, GREENPRINT, "report", *args, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads((home / out / "report.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ddp_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two ranks of one training spawned by a script under ``greenprint run``."""
    need_installed("torch.distributed", "torch")
    home = _empty(tmp_path_factory, "shapes-ddp")
    (home / "train.py").write_text(DDP_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "ddp", "--name", "job", "--",
                  sys.executable, "train.py", _free_port())  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return home, _report(home, "--study", "ddp")


@pytest.fixture(scope="module")
def ddp_sweeps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of two such trainings one after another on one master port, on its own (the
    study "default") and under ``greenprint run --role sweep`` (the study "ddp-sweep")."""
    need_installed("torch.distributed", "torch")
    home = _empty(tmp_path_factory, "shapes-ddp-sweeps")
    (home / "train.py").write_text(DDP_SCRIPT, encoding="utf-8")
    (home / "sweep.py").write_text(DDP_SWEEP_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "sweep.py", _free_port())
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "ddp-sweep", "--role", "sweep",
                  "--name", "sweep", "--", sys.executable, "sweep.py", _free_port())  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def nodes_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One four-rank training on two "nodes", each a ``greenprint run`` with its own ledger
    (the batch script's job id, node rank and host name in its environment), merged."""
    need_installed("torch.distributed", "torch")
    home = _empty(tmp_path_factory, "shapes-nodes")
    (home / "train.py").write_text(DDP_SCRIPT, encoding="utf-8")
    port, nodes = _free_port(), []
    for k in (0, 1):
        env = clean_env()
        env.update(GREENPRINT_JOB_ID="exp7", GREENPRINT_NODE_RANK=str(k),
                   GREENPRINT_HOST=f"node{k}", NODE=str(k), NODES="2")  # fmt: skip
        command = [GREENPRINT, "run", "-q", "--study", "ddp", "--name", f"node{k}", "--ledger",
                   f"node{k}.db", "--", sys.executable, "train.py", port]  # fmt: skip
        nodes.append(subprocess.Popen(command, cwd=home, env=env, stderr=subprocess.PIPE))
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err.decode()[-3000:]
    done = run_in(home, GREENPRINT, "ledger", "merge", "all.db", "node0.db", "node1.db")
    assert done.returncode == 0, done.stderr
    return home, _report(home, "--ledger", "all.db", "--study", "ddp", "--no-plots")


@pytest.fixture(scope="module")
def optuna_mo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], str, dict]:
    """A two-objective Optuna study: 6 trials, then 4 more in a second process (resumed)."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "shapes-optuna-mo")
    (home / "study.py").write_text(OPTUNA_MO_SCRIPT, encoding="utf-8")
    warned = ""
    for seed, n in ((0, 6), (1, 4)):
        done = run_in(home, sys.executable, "study.py", str(seed), str(n))
        assert done.returncode == 0, done.stderr[-3000:]
        warned += done.stderr
    trials = json.loads(done.stdout.splitlines()[-1])
    return home, trials, warned, _report(home, "--study", "mo", "--group-by", "params.model",
                                         "--no-plots")  # fmt: skip


@pytest.fixture(scope="module")
def sklearn_studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Halving, a random search in worker processes and nested cross-validation."""
    need_installed("sklearn", "sklearn")
    home = _empty(tmp_path_factory, "shapes-sklearn")
    (home / "study.py").write_text(SKLEARN_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout.splitlines()[-1])


# ------------------------------------------------------------------- one data-parallel training
def test_ddp_ranks_are_parts_of_one_training(ddp_study):
    """Two ranks training one model are one trial (the job, scored by its ranks' mean), not
    two trials of a sweep with one rank as the final model."""
    home, report = ddp_study
    rows = _rows(report)
    runs = _runs(home / "greenprint.db", "ddp")
    assert runs["rank0"].job_id is not None and runs["rank0"].job_id == runs["rank1"].job_id
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1 and tag["roles"]["counts"] == {"trial": 1, "part": 2}
    assert (rows["job"]["role"], rows["job"]["is_trial"]) == ("trial", True)
    assert all(rows[f"rank{k}"]["role"] == "part" for k in (0, 1))
    losses = [runs[f"rank{k}"].metric("val_loss") for k in (0, 1)]
    assert rows["job"]["score"] == pytest.approx(sum(losses) / 2)
    assert rows["job"]["score_source"] == "parts"
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("job", "best-trial")
    # the job's FPO is its ranks' (each counted its own share of the training)
    assert tag["total"]["fpo"] == runs["rank0"].fpo + runs["rank1"].fpo > 0
    assert tag["total"]["energy_kwh"] == pytest.approx(runs["job"].energy_kwh, rel=1e-9)
    _export_reads_as_the_report(home, "ddp", report)


@pytest.mark.slow  # two greenprint runs of three processes each, with torch: 15-30 s
def test_two_nodes_merged_read_as_one_training_listed_under_its_head(nodes_study):
    """Node 1's run is linked under node 0's (the job's head sums its nodes): the runs table
    lists it under node 0 as its depth says, not above it as a child of nothing."""
    home, report = nodes_study
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1 and tag["roles"]["counts"] == {"trial": 1, "part": 5}
    assert (tag["final"]["name"], rows["node0"]["is_trial"]) == ("node0", True)
    runs = _runs(home / "all.db", "ddp")
    assert tag["total"]["fpo"] == sum(runs[f"rank{k}"].fpo for k in range(4))
    nodes_kwh = runs["node0"].energy_kwh + runs["node1"].energy_kwh  # two hosts: they add
    assert tag["total"]["energy_kwh"] == pytest.approx(nodes_kwh, rel=1e-9)
    # each row right under the row of its parent, one level deeper
    by_id = {row["id"]: row for row in report["runs"]}
    assert rows["node1"]["parent_id"] == rows["node0"]["id"]
    for row in report["runs"]:
        parent = by_id.get(row["parent_id"] or "")
        assert row["depth"] == (0 if parent is None else parent["depth"] + 1), row["name"]
    for fmt in ("md", "html"):
        _tree_order_holds(_text(home, fmt), report)
    _export_reads_as_the_report(home, "ddp", report, "--ledger", "all.db")


# ------------------------------------------------------------ Optuna, two objectives, resumed
def test_optuna_resumed_study_reads_as_optunas_trials(optuna_mo):
    """Trials of two processes on one storage: one study, Optuna's states, each trial's first
    objective as its score, the best by it the final run, the roles given by the callback."""
    home, trials, _, report = optuna_mo
    states = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}
    assert len(trials) == 10
    rows = _rows(report)
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == sorted(
        f"trial-{t['number']}" for t in trials
    )
    for t in trials:
        row = rows[f"trial-{t['number']}"]
        assert (row["id"], row["status"]) == (t["run"], states[t["state"]])
        assert row["role_inferred"] is False
        if t["values"]:
            assert row["score"] == pytest.approx(t["values"][0])
    tag = report["price_tag"]
    assert tag["by_status"]["failed"]["trials"] == tag["by_status"]["pruned"]["trials"] == 1
    assert (report["metric"], report["mode"]) == ("values_0", "max")
    best = max((t for t in trials if t["values"]), key=lambda t: t["values"][0])
    assert (tag["final"]["name"], tag["final"]["rule"]) == (f"trial-{best['number']}", "best-trial")
    assert not any(n.startswith("roles inferred") for n in report["notes"])
    # no trial counted FPO: unknown for all 10, null (not 0) for each status in the JSON
    assert tag["total"]["fpo"] is None and tag["total"]["fpo_unknown"] == 10
    assert all(v["fpo"] is None for v in tag["by_status"].values())
    none = f"none of the {tag['total']['runs']} runs counted FPO"
    assert f"- **FPO**: unknown ({none})\n" in _text(home, "md")
    _export_reads_as_the_report(home, "mo", report)
    # EVP per family (--group-by params.model) from Optuna's values; no value: the worst
    scores = [t["values"][0] if t["values"] else math.nan for t in trials]
    worst = min(v for v in scores if not math.isnan(v))
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    curves = {s["label"]: s["y"] for panel in evp["panels"] for s in panel["series"]}
    for family in ("mlp", "cnn"):
        members = [worst if math.isnan(v) else v for v, t in zip(scores, trials, strict=True)
                   if t["model"] == family]  # fmt: skip
        expected = expected_max_performance(members, mode="max").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, abs=1e-12)


def test_optuna_every_objective_is_ranked_as_the_study_optimised_it(optuna_mo):
    """The second objective is minimised under a name that does not say so (values_1): the
    trials recorded the study's directions, so the report names both objectives and ranks
    values_1, when asked, lowest first, as the study did (it ranked it highest first, and
    the callback warned, before the directions were recorded)."""
    home, _, warned, report = optuna_mo
    assert "rank the other way" not in warned
    assert any("2 objectives, values_0 (maximised) and values_1 (minimised)" in n
               for n in report["notes"])  # fmt: skip
    by_values_1 = _report(home, "--study", "mo", "--metric", "values_1", "--no-plots")
    assert (by_values_1["metric"], by_values_1["mode"]) == ("values_1", "min")
    assert any(n.startswith("'values_1' is minimised, as the search that ran the trials")
               for n in by_values_1["notes"])  # fmt: skip


def test_a_study_of_one_trial_says_one_trial(ddp_study):
    """One training is one trial: every sentence counts it in the singular ('1 trials' read in
    the heading line, the compute statement, the model card source, LaTeX's best-trials
    caption and the CLI summary)."""
    home, report = ddp_study
    md = _text(home, "md")
    assert "Study **ddp**: 1 trial, ranked by **val\\_loss** (lower is better)." in md
    assert "comprised 1 trial (1 finished) in 3 runs" in md
    assert "greenprint 0.1.0: 1 trial (failed and pruned included)" in md.replace(
        gp.__version__, "0.1.0"
    )
    assert "Study <strong>ddp</strong>: 1 trial, ranked by" in _text(home, "html")
    tex = _text(home, "latex")
    assert "The best trial by val\\_loss out of 1" in tex
    assert "comprised 1 trial (1 finished) in 3 runs" in tex
    for fmt in ("md", "html", "latex"):
        assert not re.search(r"\b1 (trials|runs)\b", _text(home, fmt)), fmt
    done = run_in(home, GREENPRINT, "report", "--study", "ddp", "--format", "json", "--no-plots",
                  "--out", "again")  # fmt: skip
    assert done.stdout.startswith("1 trial (1 finished) in 3 runs\n"), done.stdout


# -------------------------------------------------------------------------------- scikit-learn
def test_random_search_in_worker_processes_reads_as_its_cv_results(sklearn_studies):
    """Four candidates whose folds ran in loky worker processes: four trials scored as
    scikit-learn scored them, their folds parts, the refit final, the search counted once."""
    home, built = sklearn_studies
    report = _report(home, "--study", "random", "--no-plots")  # all four formats
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 4, "part": 12, "final": 1, "sweep": 1}
    assert tag["roles"]["inferred"] == 0
    candidates = zip(built["random"]["scores"], built["random"]["C"], strict=True)
    for k, (score, c) in enumerate(candidates):
        row = rows[f"random-c{k}"]
        assert (row["is_trial"], row["params"]["C"]) == (True, c)
        assert row["score"] == pytest.approx(score)
        folds = [rows[f"random-c{k}-fold{f}"]["score"] for f in range(3)]
        assert sum(folds) / 3 == pytest.approx(score)
    final = tag["final"]
    assert (final["name"], final["rule"]) == ("random-refit", "role")
    assert final["score"] == pytest.approx(built["random"]["best"])
    sweep = _runs(home / "greenprint.db", "random")["random"]
    assert tag["total"]["energy_kwh"] == pytest.approx(sweep.energy_kwh, rel=1e-9)
    for fmt in ("md", "html", "latex"):
        text = _text(home, fmt).replace("&#x27;", "'")
        assert "Final run random-refit (the run with role 'final') scored score = 0.97" in text
    _export_reads_as_the_report(home, "random", report)


def test_halving_search_reads_one_trial_per_candidate_pruned_where_eliminated(sklearn_studies):
    """As the integration documents: each candidate is a trial, its row of cv_results_ at its
    last iteration (``iter``, ``n_resources``); the 2 that reached the last iteration finished,
    the 6 eliminated before are pruned (their earlier rows are parts); the refit is final."""
    home, built = sklearn_studies
    report = _report_in(home, "rep-halving", "--study", "halving", "--format", "json,md",
                        "--no-plots")  # fmt: skip
    trials = [r for r in report["runs"] if r["is_trial"]]
    assert built["halving"]["rows"] == 14 and len(trials) == 8
    assert sorted((r["status"], r["params"]["n_resources"]) for r in trials) == [
        ("finished", 240), ("finished", 240), *[("pruned", 60)] * 4, *[("pruned", 120)] * 2
    ]  # fmt: skip
    final = report["price_tag"]["final"]
    assert (final["name"], final["score"]) == ("halving-refit", built["halving"]["best"])
    _export_reads_as_the_report(home, "halving", report)


def test_nested_cross_validation_is_one_trial_of_its_outer_loop(sklearn_studies):
    """The outer loop logs the nested estimate: it is the one trial; the searches of its
    folds, with their trials and refits, are its parts (the report says they were given roles
    but ran inside a trial), and it is the final run."""
    home, built = sklearn_studies
    report = _report_in(home, "rep-nested", "--study", "nested", "--format", "json,md",
                        "--no-plots")  # fmt: skip
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1 and rows["nested-cv"]["is_trial"]
    assert {r["role"] for n, r in rows.items() if n != "nested-cv"} == {"part"}
    assert rows["nested-cv"]["score"] == pytest.approx(sum(built["nested"]) / 3)
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("nested-cv", "best-trial")
    assert any("were given a role but ran inside a trial" in n for n in report["notes"])
    md = (home / "rep-nested" / "report.md").read_text(encoding="utf-8")
    assert "Study **nested**: 1 trial, ranked by **accuracy** (higher is better)." in md
    _export_reads_as_the_report(home, "nested", report)


@pytest.mark.slow  # four trainings of two ranks, with torch: 10-20 s
def test_ddp_trainings_on_their_own_are_one_trial_each_metered_once(ddp_sweeps):
    """Two trainings one after another on one master port, no run around them: two jobs
    (one key per process group, not per port), two trials; in each, rank 0 meters the machine
    and rank 1 is its part (its local rank is its rank: torch.multiprocessing.spawn sets no
    LOCAL_RANK), not two node meters of one host with a note that one was dropped."""
    home = ddp_sweeps
    runs = _runs(home / "greenprint.db", "default")
    jobs = {runs[f"lr{lr}-rank{k}"].job_id for lr in (0.05, 0.01) for k in (0, 1)}
    assert len(jobs) == 2 and None not in jobs
    for lr in (0.05, 0.01):
        zero, one = runs[f"lr{lr}-rank0"], runs[f"lr{lr}-rank1"]
        assert zero.job_id == one.job_id
        assert (zero.local_rank, zero.node_meter, zero.scope) == (0, True, "machine")
        assert (one.local_rank, one.node_meter, one.scope) == (1, False, "process")
    report = _report_in(home, "rep-alone", "--study", "default", "--format", "json,md",
                        "--no-plots")  # fmt: skip
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 2, "part": 2}
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == [
        "lr0.01-rank0",
        "lr0.05-rank0",
    ]
    machine = runs["lr0.05-rank0"].energy_kwh + runs["lr0.01-rank0"].energy_kwh
    assert tag["total"]["energy_kwh"] == pytest.approx(machine, rel=1e-9)
    assert not any("metered host" in n for n in report["notes"] + tag["notes"])


@pytest.mark.slow  # shares the fixture above
def test_ddp_trainings_spawned_in_a_sweep_are_one_trial_each(ddp_sweeps):
    """The sweep script under ``greenprint run --role sweep``: each training's two ranks are
    children of the sweep; the training is one trial (its rank 0, summing rank 1), not two
    trials with a rank as the final model."""
    home = ddp_sweeps
    report = _report_in(home, "rep-sweep", "--study", "ddp-sweep", "--format", "json,md",
                        "--no-plots")  # fmt: skip
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"sweep": 1, "trial": 2, "part": 2}
    for lr in (0.05, 0.01):
        assert rows[f"lr{lr}-rank0"]["is_trial"] and rows[f"lr{lr}-rank1"]["role"] == "part"
        assert rows[f"lr{lr}-rank1"]["parent_id"] == rows[f"lr{lr}-rank0"]["id"]
    assert tag["final"]["name"] in ("lr0.05-rank0", "lr0.01-rank0")
    runs = _runs(home / "greenprint.db", "ddp-sweep")
    assert tag["total"]["energy_kwh"] == pytest.approx(runs["sweep"].energy_kwh, rel=1e-9)
    assert tag["total"]["fpo"] == sum(r.fpo for r in runs.values() if r.name != "sweep")
    _tree_order_holds((home / "rep-sweep" / "report.md").read_text(encoding="utf-8"), report)
    _export_reads_as_the_report(home, "ddp-sweep", report)


def test_a_search_with_failed_candidates_is_ranked_by_its_score_not_its_ranks(sklearn_studies):
    """Two of four candidates fail to fit (scikit-learn's error_score, NaN): they log no
    score, only the worst rank_test_score. The report ranks by the trials' score, as with no
    failure, not by the rank (counted by the failed trials too: the worst candidate read best,
    maximised, and the refit had no score)."""
    home, built = sklearn_studies
    report = _report_in(home, "rep-fails", "--study", "fails", "--format", "json,md",
                        "--no-plots")  # fmt: skip
    assert (report["metric"], report["mode"]) == ("score", "max")
    rows = _rows(report)
    failed = {k for k, pen in enumerate(built["fails"]["penalty"]) if pen == "l1"}
    assert len(failed) == 2
    for k, score in enumerate(built["fails"]["scores"]):
        row = rows[f"fails-c{k}"]
        assert row["status"] == ("failed" if k in failed else "finished")
        if k not in failed:
            assert row["score"] == pytest.approx(score)
    final = report["price_tag"]["final"]
    assert (final["name"], final["score"]) == ("fails-refit", built["fails"]["best"])
    worst = min(s for k, s in enumerate(built["fails"]["scores"]) if k not in failed)
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    note = f"2 of 4 trials had no score and count as the worst {report['metric']} ({worst:g})"
    assert note in evp["notes"]
    _export_reads_as_the_report(home, "fails", report)


# ------------------------------------------- Hugging Face Trainer.hyperparameter_search (Optuna)
@pytest.mark.slow  # three tiny BERT trainings of one epoch and a retrain: about 5 s
def test_hf_hyperparameter_search_reads_as_its_trials_and_the_retrain(tmp_path_factory):
    """Trainer.hyperparameter_search(backend="optuna") with the callback attached: each trial
    is a trial with its hyper-parameters, the retrain in a run with role 'final' is the final
    run (the Trainer's run inside it its part, which gives it its score); the report ranks by
    the objective the search maximised."""
    need_installed("transformers", "transformers")
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "shapes-hf")
    here = Path(__file__).parent / "integrations" / "_hf.py"
    (home / "hf_tiny.py").write_text(here.read_text(encoding="utf-8"), encoding="utf-8")
    (home / "study.py").write_text(HF_SEARCH_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr[-3000:]
    best = json.loads(done.stdout.splitlines()[-1])
    report = _report(home, "--study", "hf-hpo", "--no-plots")
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 3, "final": 1, "part": 1}
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == [
        "trial-0",
        "trial-1",
        "trial-2",
    ]
    assert all("learning_rate" in rows[f"trial-{k}"]["params"] for k in range(3))
    final = tag["final"]
    assert (final["name"], final["rule"], final["score_source"]) == ("final", "role", "parts")
    assert rows["final"]["params"]["learning_rate"] == best["learning_rate"]
    # ranked as the search ranked (direction="maximize", the default objective: the accuracy),
    # the retrain scored by the same objective of its evaluation
    assert (report["metric"], report["mode"]) == ("objective", "max")
    assert final["score"] == rows["final"]["score"] is not None
    _export_reads_as_the_report(home, "hf-hpo", report)
