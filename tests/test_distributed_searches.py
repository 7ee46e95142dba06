"""Issue 12: a search whose trials run in several processes at once reads as one study.

Each study is built the way a team runs a sweep on a cluster, in a fresh empty directory with a
clean environment: three Optuna workers started at the same time, as ``srun -n 3`` starts the
tasks of one SLURM job (``SLURM_JOB_ID``, ``SLURM_NTASKS=3``, ``SLURM_PROCID``,
``SLURM_LOCALID``, ``SLURM_NODEID`` in each one's environment), on one shared Optuna storage
(``JournalStorage(JournalFileBackend(...))``) and one greenprint ledger, some trials pruned and
one failing, then a final retrain as a job of its own (``greenprint run --role final``):

* each worker under ``greenprint run`` (``srun -n 3 greenprint run -- python search.py``): the
  job's three runs are one sweep (worker 0 its head, the others linked under it by the job),
  and the trials each worker ran are the sweep's trials, not its workers' parts;
* each worker a plain ``python search.py`` (``srun -n 3 python search.py``): every trial is a
  run of the job, and reads as a trial of its own, not as a rank of one training.

What a reader relies on: exactly Optuna's trials (names, run ids, states), one sweep, the final
job's share, the price tag by status, and EVP over every trial from Optuna's own values.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import evp_curves as _evp_curves
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import export_rows as _export_rows
from greenprint.analysis import expected_max_performance, price_tag, resolve_roles
from greenprint.analysis._common import RunForest

#: One worker: ``python search.py WORKER LEDGER``; four trials each, trial 5 fails.
SEARCH_SCRIPT = """
import os, sys, time
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
worker, ledger = int(sys.argv[1]), sys.argv[2]
open(f"ready-{worker}", "w").close()  # the workers search at the same time, whatever the load
deadline = time.monotonic() + 120
while not all(os.path.exists(f"ready-{k}") for k in range(3)) and time.monotonic() < deadline:
    time.sleep(0.01)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if trial.number == 5:
        raise RuntimeError("CUDA out of memory")
    loss = 1.0
    for step in range(3):
        busy(0.02)
        loss = abs(lr - 0.01) * 10 + 0.1 / (step + 1)
        trial.report(loss, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


storage = JournalStorage(JournalFileBackend("journal.log"))
study = optuna.create_study(
    study_name="dist", direction="minimize", storage=storage, load_if_exists=True,
    sampler=optuna.samplers.RandomSampler(seed=worker),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
cb = GreenprintCallback(ledger=ledger, metric_names=["val_loss"])
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb], catch=(RuntimeError,))
"""

#: The final retrain of the best trial's configuration, and Optuna's own reading of the study.
FINAL_SCRIPT = """
import json
import optuna
import greenprint as gp
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

storage = JournalStorage(JournalFileBackend("journal.log"))
study = optuna.load_study(study_name="dist", storage=storage)
with gp.track("retrain", params=study.best_params) as run:
    run.log(val_loss=study.best_value * 0.9)
print(json.dumps([{"number": t.number, "state": t.state.name, "value": t.value,
                   "run": t.user_attrs.get("greenprint_run_id")} for t in study.trials]))
"""

STATES = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}


def _task_env(job: int, task: int | None = None) -> dict[str, str]:
    """A task's environment as ``srun -n 3`` sets it on one node (``task``), or a job's."""
    env = {**clean_env(), "SLURM_JOB_ID": str(job), "SLURM_NODEID": "0"}
    if task is not None:
        env.update(SLURM_NTASKS="3", SLURM_PROCID=str(task), SLURM_LOCALID=str(task))
    return env


def _search(home: Path, ledger: str, *, wrapped: bool) -> list[dict]:
    """Three workers of one job at once (each under ``greenprint run`` when ``wrapped``), then
    the final job; Optuna's trials."""
    (home / "search.py").write_text(SEARCH_SCRIPT, encoding="utf-8")
    (home / "final.py").write_text(FINAL_SCRIPT, encoding="utf-8")
    run = [GREENPRINT, "run", "-q", "--ledger", ledger, "--study", "dist"]
    wrap = [[*run, "--name", f"worker-{k}", "--"] if wrapped else [] for k in range(3)]
    workers = [
        subprocess.Popen(
            [*wrap[k], sys.executable, "search.py", str(k), ledger],
            cwd=home,
            env=_task_env(700, k),
            stderr=subprocess.PIPE,
        )
        for k in range(3)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
    command = [*run, "--role", "final", "--name", "final", "--", sys.executable, "final.py"]
    done = run_in(home, *command, env=_task_env(701))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = json.loads(done.stdout)
    assert len(trials) == 12 and {t["state"] for t in trials} >= {"COMPLETE", "FAIL"}
    return trials


def _reads_as_optunas_trials(report: dict, trials: list[dict]) -> None:
    """The report's trials are Optuna's (names, run ids, states), the final job is final, and
    EVP is over every trial from Optuna's values (the failed one as the worst)."""
    rows = {row["name"]: row for row in report["runs"]}
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == sorted(
        f"trial-{t['number']}" for t in trials
    )
    for t in trials:
        row = rows[f"trial-{t['number']}"]
        assert (row["id"], row["status"], row["role"]) == (t["run"], STATES[t["state"]], "trial")
        if t["state"] != "FAIL":
            assert row["score"] == pytest.approx(t["value"], rel=1e-12)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 12
    counts = {STATES[s]: sum(t["state"] == s for t in trials) for s in STATES}
    assert {k: v["trials"] for k, v in tag["by_status"].items()} == {
        k: v for k, v in counts.items() if v
    }
    assert (report["metric"], report["mode"]) == ("val_loss", "min")
    assert (tag["final"]["name"], rows["final"]["role"]) == ("final", "final")
    assert rows["retrain"]["role"] == "part"  # inside the final job
    scores = [math.nan if t["state"] == "FAIL" else t["value"] for t in trials]
    worst = max(v for v in scores if not math.isnan(v))
    expected = expected_max_performance(
        [worst if math.isnan(v) else v for v in scores], mode="min"
    ).mean.tolist()
    curve = _evp_curves(report)["with replacement (Dodge et al.)"]
    assert curve == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def srun_workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """``srun -n 3 greenprint run -- python search.py``: three wrapped workers of one job."""
    pytest.importorskip("optuna")
    home = _empty(tmp_path_factory, "distributed-wrapped")
    trials = _search(home, "greenprint.db", wrapped=True)
    return home, trials, _report(home, "--study", "dist", "--no-plots", "--format", "json")


@pytest.fixture(scope="module")
def srun_bare(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """``srun -n 3 python search.py``: every trial a run of the job, no run around them."""
    pytest.importorskip("optuna")
    home = _empty(tmp_path_factory, "distributed-bare")
    trials = _search(home, "greenprint.db", wrapped=False)
    return home, trials, _report(home, "--study", "dist", "--no-plots", "--format", "json")


def _workers_are_one_sweep(report: dict) -> None:
    rows = {row["name"]: row for row in report["runs"]}
    assert report["price_tag"]["roles"]["counts"] == {
        "sweep": 1,
        "part": 3,
        "trial": 12,
        "final": 1,
    }
    assert rows["worker-0"]["role"] == "sweep"  # the job's head: its workers' sweep
    assert rows["worker-1"]["role"] == rows["worker-2"]["role"] == "part"
    # every worker's cost is the sweep's overhead; no worker carries a score of its trials'
    by_role = report["price_tag"]["by_role"]
    assert by_role["sweep"]["runs"] == 3
    for worker in ("worker-0", "worker-1", "worker-2"):
        assert rows[worker]["score"] is None


def _export_gives_the_reports_roles(home: Path, report: dict, *args: str) -> None:
    """Both exports give every run the report's role (their root rows do not sum to the price
    tag here: worker 0 meters the node, the other workers' energy inside its reading)."""
    rows, items = _export_rows(home, "dist", *args)
    roles = {r["id"]: r["role"] for r in report["runs"]}
    assert {r["id"]: r["role"] for r in rows} == roles
    assert {i["id"]: i["role"] for i in items} == roles


def test_workers_of_one_job_under_greenprint_run_read_as_one_sweep(srun_workers):
    """The trials of workers 1 and 2 (linked under worker 0 by the job) were read as their
    parts: 4 trials (worker 0's own) and 8 parts; now Optuna's 12 trials in one sweep."""
    home, trials, report = srun_workers
    _reads_as_optunas_trials(report, trials)
    _workers_are_one_sweep(report)
    _export_gives_the_reports_roles(home, report)


def test_trials_of_a_job_without_a_run_around_them_are_trials(srun_bare):
    """Every trial a root run of job slurm:700, the first worker's first trial its head: read
    as 1 trial of 11 parts; now 12 trials, with a note saying how the job was read."""
    home, trials, report = srun_bare
    _reads_as_optunas_trials(report, trials)
    assert report["price_tag"]["roles"]["counts"] == {"trial": 12, "final": 1, "part": 1}
    note = (
        "job slurm:700: its processes ran 12 runs given role 'trial', one after another in a "
        "process: read as the trials of a search its processes ran"
    )
    assert any(n.startswith(note) for n in report["notes"]), report["notes"]
    _export_reads_as_the_report(home, "dist", report)


@pytest.mark.slow  # a PostgreSQL server and three more workers: about 12 s
@pytest.mark.postgres
def test_workers_of_one_job_into_one_postgresql_ledger(tmp_path_factory, pg_server):
    """The wrapped workers writing to one PostgreSQL ledger read the same."""
    pytest.importorskip("optuna")
    url = pg_server.new_database()
    home = _empty(tmp_path_factory, "distributed-pg")
    trials = _search(home, url, wrapped=True)
    report = _report(home, "--ledger", url, "--study", "dist", "--no-plots", "--format", "json")
    _reads_as_optunas_trials(report, trials)
    _workers_are_one_sweep(report)


# ------------------------------------------------------------ the job rule on records
def _trial(rid: str, start: float, params: dict, *, host: str = "h0", local: int = 0, **kw):
    return gp.RunRecord(
        id=rid,
        name=rid,
        host=host,
        job_id="slurm:9",
        node_rank=0,
        local_rank=local,
        role="trial",
        status="finished",
        started_at=start,
        ended_at=start + 1.0,
        params=params,
        metrics=(gp.MetricPoint("val_loss", float(len(rid))),),
        **kw,
    )


def test_one_trainings_ranks_tracked_as_trials_stay_one_trial_each_time():
    """Two nodes each tracking every training of a search as its trial, with the same params
    at the same time (a run per node: ``trainer.hyperparameter_search`` over two nodes): the
    ranks of one training, not a search's workers; each training one trial, its other node's
    run its part (before: the whole search one trial, linked by the job)."""
    runs = [
        _trial(f"n{n}-t{k}", 10.0 * k, {"lr": k}, host=f"h{n}", node_meter=False)
        for k in range(3)
        for n in range(2)
    ]
    tag = price_tag(runs)
    assert tag.roles.counts == {"trial": 3, "part": 3}
    read = resolve_roles(runs)
    assert [read.forest.runs[p].id for p in read.trials] == ["n0-t0", "n0-t1", "n0-t2"]
    assert not any("read as the trials of a search" in n for n in tag.notes)
    assert any("ran 3 trainings one after another" in n for n in tag.notes)


def test_trials_that_metered_the_node_stay_one_job_with_a_note_saying_how():
    """Worker 0's trials metered the machine (an older greenprint, or gp.track by hand): the
    other workers' energy is inside them, so the job is read as before, and a note says how
    to record such a search."""
    runs = [
        _trial(f"w{w}-t{k}", 10.0 * k + 0.3 * w, {"lr": 3 * k + w}, local=w, node_meter=w == 0)
        for k in range(2)
        for w in range(2)
    ]
    tag = price_tag(runs)
    assert tag.roles.counts == {"trial": 1, "part": 3}
    assert any(
        "some of them metered the node" in n and "node_meter=False" in n for n in tag.notes
    ), tag.notes


# ------------------------------------------------------------ a reused worker pool
#: Two searches one after the other in one script, each trial a task of joblib's default
#: (loky) pool: the pool's two worker processes, started in the first search, serve the second.
POOL_SCRIPT = """
import time
from joblib import Parallel, delayed
import greenprint as gp


def train(model, lr):
    with gp.track(f"{model}-lr={lr}", params={"model": model, "lr": lr}) as run:
        time.sleep(0.05)
        run.log(val_acc=1 - abs(lr - 0.01) * 5 - (0.05 if model == "mlp" else 0.0))


for model in ("mlp", "cnn"):
    with gp.track(f"search-{model}", study="pool", role="sweep"):
        Parallel(n_jobs=2)(delayed(train)(model, lr) for lr in (0.1, 0.01))
"""


def test_a_reused_worker_pools_runs_read_under_the_search_that_ran_them(tmp_path_factory):
    """The second search's trials named the first search, their workers' parent when the pool
    started, as their parent: search-cnn read with no trial and search-mlp with four; now
    each search holds its own two, and a note says how they were read."""
    pytest.importorskip("joblib")
    home = _empty(tmp_path_factory, "distributed-pool")
    (home / "search.py").write_text(POOL_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "pool", "--no-plots", "--format", "json")
    ids = {row["name"]: row["id"] for row in report["runs"]}
    for model in ("mlp", "cnn"):
        for lr in (0.1, 0.01):
            row = next(r for r in report["runs"] if r["name"] == f"{model}-lr={lr}")
            assert (row["parent_id"], row["role"]) == (ids[f"search-{model}"], "trial")
    assert any(n.startswith("2 runs of a reused worker process") for n in report["notes"])
    _export_reads_as_the_report(home, "pool", report)


def test_a_child_process_run_started_after_its_parent_ended_moves_to_the_run_open_then():
    """Records: a run of another process under a parent that had ended moves to the run the
    parent's process had open when it started (the innermost); a parent given in the run's
    own process, with no run open then, or on another host (another clock), stays."""
    main, worker = {"writer": "pid 1"}, {"writer": "pid 2"}

    def run(rid: str, start: float, end: float | None, parent=None, provenance=main, host="a"):
        return gp.RunRecord(id=rid, name=rid, parent_id=parent, started_at=start, ended_at=end,
                            status="finished", provenance=provenance, host=host)  # fmt: skip

    runs = [
        run("a", 0.0, 10.0),
        run("b", 11.0, 20.0),
        run("b-inner", 12.0, 19.0, parent="b"),
        run("late", 13.0, 14.0, parent="a", provenance=worker),  # -> b-inner
        run("own", 15.0, 16.0, parent="a"),  # parent=a given in its own process: stays
        run("after", 25.0, 26.0, parent="a", provenance=worker),  # nothing open then: stays
        run("remote", 13.0, 14.0, parent="a", provenance=worker, host="b"),  # stays
    ]
    forest = RunForest.build(runs)
    parents = zip(runs, forest.parents, strict=True)
    parent = {r.id: (None if p is None else runs[p].id) for r, p in parents}
    assert (parent["late"], parent["own"], parent["after"], parent["remote"]) == (
        "b-inner",
        "a",
        "a",
        "a",
    )
    assert forest.notes and "read as children of run b-inner" in forest.notes[0]


# ------------------------------------------------------------ a pool made before the searches
#: ``multiprocessing.Pool`` made at the top of the script, then two searches around
#: ``pool.map``: the workers were started before either search, so their trials name no parent
#: run, while each search's meters read the workers' process tree. ``START`` picks the start
#: method: under "forkserver" the workers are the fork server's children, the script's
#: grandchildren.
MP_POOL_SCRIPT = """
import multiprocessing as mp
import sys
import time
import greenprint as gp


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def trial(x):
    with gp.track(f"x={x}", study="mp", params={"x": x}) as run:
        busy(0.05)
        run.log(accuracy=x / 10)
    return x


if __name__ == "__main__":
    pool = mp.get_context(sys.argv[1]).Pool(2)
    for name, xs in (("search-a", [1, 2, 3]), ("search-b", [4, 5, 6])):
        with gp.track(name, study="mp"):
            pool.map(trial, xs)
    pool.close()
    pool.join()
    with gp.track("after", study="mp", params={"x": 0}) as run:  # a trial of the script's own
        run.log(accuracy=0.05)
"""


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_a_pool_made_before_the_searches_reads_as_their_trials_counted_once(
    tmp_path_factory, start
):
    """Before: 9 trials (the two searches unscored trials beside the six), and the energy of
    every worker trial counted twice (in its search's process-tree reading and as a top-level
    run). Now each search is a sweep of its three trials, with a note; the study's energy is
    what the searches and the script's own trial measured, in the report, in a study budget's
    read of the ledger (both of its paths) and in the exports."""
    home = _empty(tmp_path_factory, f"distributed-mp-{start}")
    (home / "search.py").write_text(MP_POOL_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py", start)
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "mp", "--no-plots", "--format", "json")
    rows = {row["name"]: row for row in report["runs"]}
    for search, xs in (("search-a", (1, 2, 3)), ("search-b", (4, 5, 6))):
        assert rows[search]["role"] == "sweep"
        for x in xs:
            assert (rows[f"x={x}"]["parent_id"], rows[f"x={x}"]["role"]) == (
                rows[search]["id"],
                "trial",
            )
    assert rows["after"]["parent_id"] is None and rows["after"]["role"] == "trial"
    assert report["price_tag"]["total"]["runs"] == 9
    trials = [r for r in report["runs"] if r["role"] == "trial"]
    assert len(trials) == 7
    runs = gp.Ledger(home / "greenprint.db").runs(study="mp")
    measured = sum(r.energy_kwh for r in runs if r.name in ("search-a", "search-b", "after"))
    every = sum(r.energy_kwh for r in runs)
    assert every > measured * 1.2  # the worker trials' own readings, inside the searches'
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(measured, rel=1e-9)
    note = next(n for n in report["notes"] if n.startswith("6 runs of worker processes"))
    assert "multiprocessing.Pool" in note and "parent=" in note
    with gp.Ledger(home / "greenprint.db") as led:
        assert led._live().select_study_cost("mp", []).energy_kwh == pytest.approx(measured)
    assert price_tag(runs).total.energy_kwh == pytest.approx(measured, rel=1e-9)
    # the exports link each worker's trial as the report does, and say the link was read: the
    # root rows' own figures are the price tag (a search that read less than its concurrent
    # trials' sum shares its own out: never more than it measured)
    csv_rows, items = _export_rows(home, "mp")
    for exported in (csv_rows, items):
        by_name = {r["name"]: r for r in exported}
        for name, row in rows.items():
            assert by_name[name]["parent_id"] in (
                row["parent_id"],
                None if row["parent_id"] else "",
            )
            assert by_name[name]["role"] == row["role"]
            assert str(by_name[name]["parent_inferred"]) == str(name.startswith("x="))
        roots = [r for r in exported if not r["parent_id"]]
        assert sum(float(r["energy_kwh"]) for r in roots) == pytest.approx(measured, rel=1e-9)


def test_a_pool_made_before_the_searches_under_greenprint_run_reads_as_its_sweeps(
    tmp_path_factory,
):
    """The same script under ``greenprint run``: the workers took the run around the whole
    script as their parent from their environment, so the searches read as unscored trials
    beside the six (9 trials, the total right: the script's run holds it all). Now the run
    around the script is a sweep of the two searches, each a sweep of its three trials."""
    home = _empty(tmp_path_factory, "distributed-mp-run")
    (home / "search.py").write_text(MP_POOL_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "--study", "mp", "--", sys.executable, "search.py",
                  "fork")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--study", "mp", "--no-plots", "--format", "json")
    rows = {row["name"]: row for row in report["runs"]}
    assert rows["search.py"]["role"] == "sweep"
    for search, xs in (("search-a", (1, 2, 3)), ("search-b", (4, 5, 6))):
        assert (rows[search]["parent_id"], rows[search]["role"]) == (rows["search.py"]["id"],
                                                                     "sweep")  # fmt: skip
        for x in xs:
            assert rows[f"x={x}"]["parent_id"] == rows[search]["id"]
            assert rows[f"x={x}"]["role"] == "trial"
    assert report["price_tag"]["total"]["trials"] == 7
    runs = gp.Ledger(home / "greenprint.db").runs(study="mp")
    root = next(r for r in runs if r.name == "search.py")
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(root.energy_kwh, rel=1e-9)
    assert any("named the run around the whole script" in n for n in report["notes"])
    _export_reads_as_the_report(home, "mp", report)


@pytest.mark.postgres
def test_a_pool_made_before_the_searches_into_a_postgresql_ledger(tmp_path_factory, pg_server):
    """The same study written to PostgreSQL: the report and a study budget's read of the
    ledger (the rule's read of the provenance there) count each worker's trial once."""
    url = pg_server.new_database()
    home = _empty(tmp_path_factory, "distributed-mp-pg")
    (home / "search.py").write_text(MP_POOL_SCRIPT, encoding="utf-8")
    env = {**clean_env(), "GREENPRINT_LEDGER": url}
    done = run_in(home, sys.executable, "search.py", "fork", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(home, "--ledger", url, "--study", "mp", "--no-plots", "--format", "json")
    with gp.Ledger(url) as led:
        runs = led.runs(study="mp")
        cost = led._live().select_study_cost("mp", [])
    measured = sum(r.energy_kwh for r in runs if not r.name.startswith("x="))
    assert [r["role"] for r in report["runs"]].count("trial") == 7
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(measured, rel=1e-9)
    assert cost.energy_kwh == pytest.approx(measured, rel=1e-9)


def test_a_worker_run_is_read_inside_its_parent_processs_run_only_when_that_one_held_it():
    """Records: a top-level run started under a process is read inside the run that process
    had open when it started (the innermost, from the nearest process up that had one), if
    that run read its own process's tree on the same host, boot and pid namespace. Stays
    top-level: started when no run of it was open, a run of another host, a run of a job, a
    machine-wide reading, a parent's run that read another process (``pid=``), a text that
    is not a list of processes."""
    boot = "pid {} tick {} uid 0 boot b0 pidns 7"

    def run(rid, start, end, writer, *, up=None, process=None, host="a", **fields):
        provenance = {"writer": boot.format(*writer)}
        if up is not None:
            provenance["ancestors"] = up
        provenance["process"] = process or f"pid {writer[0]} started 1.0"
        return gp.RunRecord(id=rid, name=rid, started_at=start, ended_at=end, status="finished",
                            provenance=provenance, host=host, **fields)  # fmt: skip

    under = "pid 10 tick 5; pid 1 tick 1"
    runs = [
        run("search", 0.0, 10.0, (10, 5)),
        run("inner", 1.0, 9.0, (10, 5), parent_id="search"),
        run("t1", 2.0, 3.0, (20, 6), up=under),  # -> inner (the innermost open)
        run("t2", 2.0, 3.0, (21, 6), up="pid 30 tick 9; pid 10 tick 5"),  # a fork server: inner
        run("late", 11.0, 12.0, (20, 6), up=under),  # nothing open then
        run("remote", 2.0, 3.0, (20, 6), up=under, host="b"),
        run("rank", 2.0, 3.0, (20, 6), up=under, job_id="j"),
        run("machine", 2.0, 3.0, (20, 6), up=under, scope="machine"),
        run("reused", 2.0, 3.0, (20, 6), up="pid 10 tick 4"),  # the pid of an older process
        run("garbage", 2.0, 3.0, (20, 6), up="pid ten tick 5"),
    ]
    forest = RunForest.build(runs)
    parent = {
        r.id: None if p is None else runs[p].id for r, p in zip(runs, forest.parents, strict=True)
    }
    assert parent == {"search": None, "inner": "search", "t1": "inner", "t2": "inner",
                      "late": None, "remote": None, "rank": None, "machine": None,
                      "reused": None, "garbage": None}  # fmt: skip
    other = [run("s", 0.0, 10.0, (10, 5), process="pid 99 started 1.0"),
             run("t", 2.0, 3.0, (20, 6), up=under)]  # fmt: skip
    assert RunForest.build(other).parents == (None, None)  # s read process 99's tree
    # a parent named from the environment (a run around the script, in process 1): a run of a
    # nearer process open then and inside that parent is nearer; one outside it is not
    around = [run("script", 0.0, 20.0, (1, 1)),
              run("search", 1.0, 9.0, (10, 5), parent_id="script"),
              run("t", 2.0, 3.0, (20, 6), up=under, parent_id="script"),
              run("alone", 0.0, 20.0, (11, 5)),
              run("u", 2.0, 3.0, (20, 6), up="pid 11 tick 5; pid 1 tick 1", parent_id="script"),
              run("own", 2.0, 3.0, (10, 5), parent_id="script")]  # fmt: skip
    read = RunForest.build(around)
    parent = {r.id: None if p is None else around[p].id for r, p in zip(around, read.parents,
                                                                          strict=True)}  # fmt: skip
    assert (parent["t"], parent["u"], parent["own"]) == ("search", "script", "script")


def test_a_run_names_the_processes_it_was_started_under():
    """The provenance of a top-level run names its parent process, then that one's parent
    (pid and start tick, as the writer identity names a process); a nested run's does not."""
    from greenprint._liveness import ancestors, parse_ancestors

    text = ancestors()
    found = parse_ancestors(text)
    assert found and found[0][0] == os.getppid()
    stat = Path(f"/proc/{os.getppid()}/stat").read_text().rpartition(")")[2].split()
    assert found[0][1] == int(stat[19])
    assert parse_ancestors("pid 1 tick 2; pid x tick 3") == () == parse_ancestors(None)
    with gp.track("outer", ledger=":memory:") as outer, gp.track("inner") as inner:
        pass
    assert outer.record.provenance["ancestors"] == text
    assert "ancestors" not in inner.record.provenance


# ------------------------------------------------------------ a worker killed before it flushed
def test_a_lost_run_that_recorded_nothing_is_named_as_missing_from_the_totals():
    """A pool's worker killed with the trial it had just started (joblib's loky pool ends every
    worker when one dies): the run recorded nothing, read as 0 Wh in every total with no word;
    now a note names it and how much of it is missing (one flush interval at most)."""
    common = dict(study="s", host="h", flush_interval_s=0.2, heartbeat_at=5.0)

    def lost(rid: str, start: float, duration_s: float, energy_kwh: float) -> gp.RunRecord:
        return gp.RunRecord(id=rid, name=rid, status="lost", started_at=start,
                            duration_s=duration_s, energy_kwh=energy_kwh, **common)  # fmt: skip

    runs = [
        lost("killed00", 0.0, 0.9, 2e-7),  # flushed before the kill: its cost so far
        lost("sibling0", 5.0, 0.0, 0.0),  # killed with it, before its first flush
        gp.RunRecord(
            id="done0000",
            name="done",
            status="finished",
            started_at=0.0,
            ended_at=1.0,
            duration_s=1.0,
            energy_kwh=3e-7,
            **common,
        ),  # fmt: skip
    ]
    notes = price_tag(runs).notes
    assert (
        "1 lost run (sibling0) recorded no cost (killed before its first flush): up to one "
        "flush interval (0.2 s) of it is in no total"
    ) in notes
