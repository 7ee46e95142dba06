"""Outside checks, session 22: two study shapes the report read wrong for four sessions.

Each study is built the way users build one, in a fresh empty directory with a clean
environment (no configuration; only the variables the user sets), then read by ``greenprint
report`` (JSON, and a sentence of the Markdown):

* **A sweep inside a distributed job.** ``GREENPRINT_JOB_ID=sweep torchrun --nproc-per-node 2
  train.py`` where each rank trains three learning rates one after another (data-parallel over gloo,
  the gradients all-reduced as DistributedDataParallel does), each training a ``gp.track("train")``
  with no params, or params on rank 0 only, or on every rank with one rank slower to close its run
  (a shared node, where every rank counts its own process). One trial per training, each with the
  other rank as its part, every rank's cost counted once. Before: without params the job read as 1
  trial (the later trainings parts of the first, scored by it alone); with params on every rank on a
  shared node, as 1 trial too (the slow rank's run overlapped the next training's, which chained
  them into one).
* **A Hugging Face ``hyperparameter_search`` killed in the middle of a trial and run again**
  on the same Optuna storage (``load_if_exists=True``), with greenprint's Transformers callback
  attached: the killed trial keeps its cost; rerun plainly, Optuna keeps it ``RUNNING`` and runs
  new trials (one trial each, as Optuna counts them); with Optuna's
  ``RetryFailedTrialCallback`` (heartbeat storage) it is retried with its params as a new trial,
  which is the same configuration: one trial, the killed attempt its part, ``interrupted``
  (before: two trials).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text, run_in
from _script_fork import run_torchrun
from integrations._frameworks import need_installed
from test_outside_shapes11 import _heartbeats_stale

#: The tiny BERT and token data of the Hugging Face tests (the scripts import them).
HF_DIR = str(Path(__file__).resolve().parent / "integrations")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job_env(**extra: str) -> dict[str, str]:
    """A new user's environment without the test runner's own scheduler variables, if any."""
    env = {
        key: value
        for key, value in clean_env().items()
        if not key.startswith(("SLURM_", "TORCHELASTIC_"))
        and key not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    }
    env.update(extra)
    return env


# ----------------------------------------------------- a sweep inside a distributed job
#: One rank of ``torchrun``: three trainings one after another (lr 0.1, 0.01, 0.001), each
#: data-parallel over gloo in a ``gp.track("train")`` run; the ranks log the same validation
#: loss (the all-reduced mean). The gradients are all-reduced and averaged and the step taken
#: by hand, as DistributedDataParallel and torch.optim.SGD do: either's first use imports
#: torch._dynamo, 1.3 s of CPU in each of the file's six ranks (greenprint reads the job from
#: torchrun's environment and torch.distributed, not from the wrapper or the optimizer).
#: ``argv[1]``: which ranks give the run params (none, rank0, all); ``argv[2]``: "slow" makes
#: rank 1 close each run once rank 0 has started its next training.
TRAIN = """
import sqlite3, sys, time
import torch
import torch.distributed as dist
import greenprint as gp

who, slow = sys.argv[1], sys.argv[2:] == ["slow"]
dist.init_process_group("gloo")
rank = dist.get_rank()
give_up = time.time() + 60
torch.manual_seed(0)
x = torch.randn(64, 8)
y = x.sum(1, keepdim=True)
for k, lr in enumerate((0.1, 0.01, 0.001)):
    params = {"lr": lr} if who == "all" or (who == "rank0" and rank == 0) else None
    with gp.track("train", study="sweep", params=params) as run:
        model = torch.nn.Linear(8, 1)
        for p in model.parameters():  # what DistributedDataParallel does: rank 0's weights
            dist.broadcast(p.data, 0)
        for step in range(20):
            model.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            for p in model.parameters():  # what DistributedDataParallel does
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()
            with torch.no_grad():  # what torch.optim.SGD does
                for p in model.parameters():
                    p -= lr * p.grad
        val = loss.detach().clone()
        dist.all_reduce(val)
        run.log(val_loss=round(float(val) / 2, 6))
        while slow and rank == 1 and k < 2 and time.time() < give_up:
            # rank 0 starts its next training while this run is still open: its run is in the
            # ledger (the two ranks' runs of each training so far, and that one)
            with sqlite3.connect("greenprint.db", timeout=60) as db:
                if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 2 * k + 2:
                    break
            time.sleep(0.01)
dist.destroy_process_group()
"""


def _swept(home: Path, who: str, *, shared: bool = False, slow: bool = False) -> dict:
    """``train.py`` run by ``torchrun --nproc-per-node 2`` in ``home`` (job ``sweep``) and
    reported; the JSON report."""
    (home / "train.py").write_text(TRAIN, encoding="utf-8")
    env = _job_env(GREENPRINT_JOB_ID="sweep", GREENPRINT_SHARED_NODE="1" if shared else "0")
    port = str(_free_port())
    args = ["--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port]
    args += ["train.py", who, *(["slow"] if slow else [])]
    # the launcher in a child of a server that imported torch once for the three jobs
    done = run_torchrun(home, args, env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return _report(home, "--study", "sweep", "--format", "json", "--format", "md", "--no-plots")


def _reads_as_three_trainings(home: Path, report: dict) -> None:
    """Three trials, each with the other rank's run of its training as its one part (the same
    score: the ranks logged one all-reduced loss), the best training the final run, and the
    job's cost: every node meter once (a whole node), or every rank (a shared node)."""
    rows = report["runs"]
    trials = [r for r in rows if r["role"] == "trial"]
    parts = [r for r in rows if r["role"] == "part"]
    assert len(rows) == 6 and len(trials) == 3 and len(parts) == 3
    assert report["price_tag"]["total"]["trials"] == 3
    assert len({t["score"] for t in trials}) == 3  # three trainings, none folded into another
    by_id = {r["id"]: r for r in rows}
    assert sorted(p["parent_id"] for p in parts) == sorted(t["id"] for t in trials)
    assert all(by_id[p["parent_id"]]["score"] == p["score"] for p in parts)
    final = next(r for r in rows if r["is_final"])
    assert final["role"] == "trial" and final["score"] == min(t["score"] for t in trials)
    with gp.Ledger(home / "greenprint.db") as led:
        runs = led.runs(study="sweep")
    assert len(runs) == 6 and {r.job_id for r in runs} == {"sweep"}
    counted = [r for r in runs if r.node_meter] or runs  # the node's meter, else every rank
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(
        sum(r.energy_kwh for r in counted), rel=1e-9
    )
    assert any("ran 3 trainings one after another" in n for n in report["notes"])
    md = report_text(home, "md")
    assert "Study **sweep**: 3 trials, ranked by **val\\_loss** (lower is better)." in md


@pytest.mark.parametrize("who", ["none", "rank0"])
def test_a_jobs_ranks_training_three_learning_rates_without_params_read_as_three_trials(
    tmp_path_factory, who
):
    """No params (or params on rank 0 only) on a node the job has to itself: rank 0 meters
    the node, rank 1 is its part in each training. Before, without params: 1 trial of 6 runs,
    scored by the first training alone; now 3 trials, the job's energy the same."""
    need_installed("torch", "torch")
    home = _empty(tmp_path_factory, f"sweep-{who}")
    _reads_as_three_trainings(home, _swept(home, who))


def test_a_rank_slow_to_close_its_run_does_not_fold_the_next_training_into_its_own(
    tmp_path_factory,
):
    """Params on every rank, a shared node (each rank counts its own process, so every run of
    the job is a root to group by time) and rank 1 closing each run after rank 0 has started
    its next training: the overlap no longer chains the trainings (before: 1
    trial of the job's 6 runs; a process runs one training at a time)."""
    need_installed("torch", "torch")
    home = _empty(tmp_path_factory, "sweep-slow")
    report = _swept(home, "all", shared=True, slow=True)
    _reads_as_three_trainings(home, report)
    rows = {r["id"]: r for r in report["runs"]}
    for row in rows.values():  # each part with its own training's params
        if row["role"] == "part":
            assert row["params"] == rows[row["parent_id"]]["params"]


# ------------------------------------ a Hugging Face search killed in a trial, run again
#: ``trainer.hyperparameter_search`` over a tiny BERT on an Optuna SQLite storage, loaded if it
#: exists. ``argv[1]``: "TERM" or "KILL" kills this process with that signal at the 4th step of
#: its second trial; ``argv[2]``: "retry" gives the storage a heartbeat and Optuna's
#: RetryFailedTrialCallback; ``argv[3]``: the number of trials to run.
SEARCH = """
import json, os, signal, sqlite3, sys, time
sys.path.insert(0, @HF@)
import optuna
import transformers
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from transformers import Trainer, TrainerCallback, TrainingArguments

from greenprint.integrations.transformers import GreenprintCallback
from _hf import Tokens, tiny_bert

transformers.logging.set_verbosity_error()
optuna.logging.set_verbosity(optuna.logging.ERROR)
kill, retry, n_trials = sys.argv[1], sys.argv[2] == "retry", int(sys.argv[3])


def flushed():
    # trial 1's run has flushed (every 0.1 s) its cost so far and its params to its ledger, and
    # (retry) Optuna's thread has beaten for it: Optuna retries only a trial with a heartbeat
    with sqlite3.connect("greenprint.db", timeout=60) as db:
        row = db.execute("SELECT energy_kwh, params FROM runs WHERE study = 'hp' AND name = "
                         "'trial-1'").fetchone()
    if row is None or not (row[0] or 0) > 0 or "learning_rate" not in json.loads(row[1] or "{}"):
        return False
    if not retry:
        return True
    with sqlite3.connect("optuna.db", timeout=60) as db:
        return db.execute("SELECT 1 FROM trial_heartbeats JOIN trials USING (trial_id) "
                          "WHERE number = 1").fetchone() is not None


class KillInSecondTrial(TrainerCallback):
    trainings = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainings += 1

    def on_step_end(self, args, state, control, **kwargs):
        if kill != "none" and self.trainings == 2 and state.global_step == 4:
            give_up = time.time() + 60  # a condition, not a fixed wait: a busy box takes longer
            while time.time() < give_up and not flushed():
                time.sleep(0.01)
            os.kill(os.getpid(), getattr(signal, "SIG" + kill))


args = TrainingArguments(output_dir="out", report_to="none", use_cpu=True, max_steps=8,
                         per_device_train_batch_size=8, eval_strategy="steps", eval_steps=4,
                         save_strategy="steps", save_steps=4, disable_tqdm=True)
trainer = Trainer(model_init=tiny_bert, args=args, train_dataset=Tokens(64),
                  eval_dataset=Tokens(64, seed=1), callbacks=[KillInSecondTrial()])
GreenprintCallback(study="hp", sample_interval_s=0.05, flush_interval_s=0.1).attach(trainer)
storage = "sqlite:///optuna.db"
if retry:
    storage = RDBStorage(storage, heartbeat_interval=1, grace_period=1,
                         failed_trial_callback=RetryFailedTrialCallback(max_retry=1))
trainer.hyperparameter_search(
    hp_space=lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-4, 1e-1, log=True)},
    backend="optuna", n_trials=n_trials, direction="minimize", storage=storage,
    study_name="hp", load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=0))
"""


def _searched_twice(home: Path, kill: str, how: str) -> tuple[dict, list]:
    """The search killed in its second trial, then run again for two trials; the JSON report
    and Optuna's trials (number, state, params)."""
    need_installed("transformers", "transformers")
    need_installed("optuna", "optuna")
    (home / "search.py").write_text(SEARCH.replace("@HF@", repr(HF_DIR)), encoding="utf-8")
    first = run_in(home, sys.executable, "search.py", kill, how, "3")
    assert first.returncode != 0  # killed
    if how == "retry":  # the killed trial's heartbeat is stale (grace period 1 s); a storage
        _heartbeats_stale(home)  # without a heartbeat has none to wait for
    again = run_in(home, sys.executable, "search.py", "none", how, "2")
    assert again.returncode == 0, again.stderr[-3000:]
    import optuna

    study = optuna.load_study(study_name="hp", storage=f"sqlite:///{home / 'optuna.db'}")
    report = _report(home, "--study", "hp", "--format", "json", "--format", "md", "--no-plots")
    return report, study.trials


def _by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["runs"]}


def test_a_search_killed_in_a_trial_and_run_again_counts_its_trials_as_optuna_does(
    tmp_path_factory,
):
    """SIGTERM (a scheduler's preemption) in trial 1, then the same search again on its
    storage for two more trials: Optuna has 4 trials, trial 1 ``RUNNING`` for ever (the
    Trainer never resumes a trial from its checkpoint); the report 4 trials, trial-1
    ``interrupted`` with the cost it had, counted in the total. (Pinned: it read so already.)"""
    home = _empty(tmp_path_factory, "hp-rerun")
    report, trials = _searched_twice(home, "TERM", "plain")
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "RUNNING", "COMPLETE", "COMPLETE"]
    rows = _by_name(report)
    assert sorted(rows) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert all(r["role"] == "trial" and r["parent_id"] is None for r in rows.values())
    killed = rows["trial-1"]
    assert killed["status"] == "interrupted" and killed["error"] == "SIGTERM"
    assert killed["energy_kwh"] > 0 and killed["params"]["learning_rate"] == (
        pytest.approx(trials[1].params["learning_rate"])
    )
    total = report["price_tag"]["total"]
    assert total["trials"] == len(trials) == 4
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows.values()))
    assert report["price_tag"]["by_status"]["interrupted"]["trials"] == 1
    md = report_text(home, "md")
    assert "Study **hp**: 4 trials" in md


def test_a_trial_killed_and_retried_by_optuna_is_one_trial_its_killed_attempt_a_part(
    tmp_path_factory,
):
    """``kill -9`` in trial 1; run again with Optuna's RetryFailedTrialCallback on a heartbeat
    storage: Optuna fails trial 1 and retries its params as trial 2. The report: trial-2 the
    trial of that configuration, trial-1 its part, ``interrupted`` (its process died without a
    last write) with its cost added once; 3 trials, Optuna's 3 completed configurations, of
    Optuna's 4 trials (one ``FAIL``). Before: 4 trials, the killed attempt one of
    them."""
    home = _empty(tmp_path_factory, "hp-retry")
    report, trials = _searched_twice(home, "KILL", "retry")
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].system_attrs["failed_trial"] == 1
    assert trials[2].params == trials[1].params
    rows = _by_name(report)
    killed, retried = rows["trial-1"], rows["trial-2"]
    assert killed["role"] == "part" and killed["parent_id"] == retried["id"]
    assert killed["status"] == "interrupted" and "Optuna's retry of trial 1" in killed["error"]
    assert killed["energy_kwh"] > 0
    assert retried["role"] == "trial" and retried["status"] == "finished"
    assert [r["name"] for r in report["runs"] if r["role"] == "trial"] == [
        "trial-0",
        "trial-2",
        "trial-3",
    ]
    total = report["price_tag"]["total"]
    assert total["trials"] == 3 == sum(t.state.name == "COMPLETE" for t in trials)
    assert total["runs"] == 4
    assert total["energy_kwh"] == pytest.approx(sum(r["energy_kwh"] for r in rows.values()))
    md = report_text(home, "md")
    assert "Study **hp**: 3 trials" in md
