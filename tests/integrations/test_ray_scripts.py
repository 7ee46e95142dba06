"""Ray Tune studies as users script them, several on one local Ray cluster started by one driver.

Each study is a user's Tune script (``study.py``) in a folder of its own, with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), read back with ``greenprint
report`` and both exports. The tests were written in other files (review s16, outside shapes 2
and 7, integrations s24 and s25), each script run as ``python study.py``, its own driver
starting its own local cluster: ~4.5 s of CPU for the cluster's daemons (GCS, raylet, the
dashboard, agent, log and autoscaler monitors) and ~3 s for the driver to import Ray Tune, for a
few seconds of trials. Here one driver (:data:`RUNNER`) starts one local cluster, as each
script did (``ray.init(num_cpus=2, ...)``), then runs each study's script in its folder as
``python study.py`` there runs it (``runpy``, as ``__main__``), one after another: every
experiment still a Tuner of its own, its trials in worker processes of their own, the cluster
the driver's child (its workers inside the sweep's process tree). What each test asserts is
what it asserted. A study whose script raised fails its own test only (``error.txt``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in, run_ray_script
from _report_cli import cli_report as _report
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import report_text as _text
from greenprint.analysis import expected_max_performance, price_tag
from integrations._frameworks import need_installed

#: One driver, one local cluster: every folder holding a ``study.py`` (by name) run there in
#: turn, its output in ``stdout.txt``, what it raised in ``error.txt``.
RUNNER = """
import contextlib, os, runpy, sys, traceback
import ray

folders = sorted(os.path.abspath(d) for d in os.listdir() if os.path.isfile(f"{d}/study.py"))
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
         _temp_dir=sys.argv[1], log_to_driver=False)  # a short path: Ray's sockets are there
for folder in folders:
    os.chdir(folder)
    with open("stdout.txt", "w") as out, contextlib.redirect_stdout(out):
        try:
            runpy.run_path("study.py", run_name="__main__")
        except BaseException:
            with open("error.txt", "w") as f:
                f.write(traceback.format_exc())
ray.shutdown()
"""

# ------------------------------------------------------------ Ray Tune, trials of one name
#: (review s16) Two samples per learning rate named by it, one configuration failing at once.
DUP_NAMES_SCRIPT = """
import json, os, time
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

HERE = os.getcwd()


def train(config):
    if config["copy"] == 2:
        raise ValueError("diverged before its first result")
    for step in range(3):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        tune.report({"score": config["lr"] * (step + 1) + 0.01 * config["copy"]})


tuner = tune.Tuner(
    trainable(train),
    param_space={"lr": tune.grid_search([0.1, 1.0]), "copy": tune.grid_search([0, 1, 2])},
    # one worker, not one per trial (~3 s of CPU each), the trials one after another; a failed
    # trial's is not reused: two in all
    tune_config=tune.TuneConfig(metric="score", mode="max",
                                trial_name_creator=lambda t: f"lr={t.config['lr']}",
                                reuse_actors=True, max_concurrent_trials=1),
    run_config=tune.RunConfig(name="dup", storage_path=os.path.join(HERE, "results"),
                              verbose=0, callbacks=[GreenprintTuneCallback(study="dup")]))
grid = tuner.fit()
print(json.dumps([{"copy": r.config["copy"], "error": r.error is not None} for r in grid]))
"""

# ------------------------------------------------------------ Ray Tune, a retried trial
#: (outside shapes 2) ``FailureConfig(max_failures=1)``: x=2's worker dies after its first
#: result, x=1 fails before any, each once.
RETRY_SCRIPT = """
import json, os, time
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

HERE = os.getcwd()


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def train(config):
    x = config["x"]
    for i in range(3):
        busy(0.05)
        marker = os.path.join(HERE, f"failed-{x}")
        # the first attempt of x=2 dies after its first result (its worker process is gone,
        # no final write: its run reads lost at once), that of x=1 fails before any
        if (x, i) in ((2, 1), (1, 0)) and not os.path.exists(marker):
            open(marker, "w").close()
            if x == 2:
                os._exit(1)
            raise ValueError("the data loader's worker died")
        tune.report({"score": float(x * (i + 1))})


tuner = tune.Tuner(
    trainable(train),
    param_space={"x": tune.grid_search([1, 2, 3])},
    # one worker reused, not one per trial (~3 s of CPU each), the trials one after another; a
    # failed attempt's is not reused: three in all
    tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True,
                                max_concurrent_trials=1),
    run_config=tune.RunConfig(
        name="retry", storage_path=os.path.join(HERE, "results"), verbose=0,
        callbacks=[GreenprintTuneCallback(study="retry")],
        failure_config=tune.FailureConfig(max_failures=1)))
grid = tuner.fit()
print(json.dumps([{"x": r.config["x"], "score": (r.metrics or {}).get("score"),
                   "error": r.error is not None} for r in grid]))
"""

# ------------------------------------------------------------ Ray Tune's PBT
#: (outside shapes 7) Four trials PBT pauses every 2 steps, each resumed from its checkpoint.
PBT_SCRIPT = """
import json, os, tempfile, time
from ray import tune
from ray.tune import Checkpoint
from ray.tune.schedulers import PopulationBasedTraining
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

HERE = os.getcwd()


def train(config):
    step, score = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            with open(os.path.join(d, "state.json")) as f:
                step, score = json.load(f)
    while step < 4:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        step, score = step + 1, score + config["lr"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump([step, score], f)
            tune.report({"score": score}, checkpoint=Checkpoint.from_directory(d))


pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                              hyperparam_mutations={"lr": [0.1, 0.5, 1.0, 2.0]})
tuner = tune.Tuner(
    trainable(train),
    param_space={"lr": tune.grid_search([0.1, 0.5, 1.0, 2.0])},
    tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=pbt,
                                reuse_actors=True),  # a worker per CPU, not per stretch
    run_config=tune.RunConfig(name="pbt", storage_path=os.path.join(HERE, "results"),
                              verbose=0, callbacks=[GreenprintTuneCallback(study="pbt")]))
grid = tuner.fit()
print(json.dumps([{"name": os.path.basename(r.path), "error": r.error is not None}
                  for r in grid]))
"""

# ------------------------------------------------------------------ Ray Tune: a moved restore
#: (integrations s24) An experiment given no name (Tune names it ``train_<date>``) and no study
#: (greenprint's default: the experiment's name); x=1 fails once. :data:`RESTORE_SCRIPT`
#: resumes it, errored trial included, from the folder the user moved it to
#: (``Tuner.restore`` names the experiment after the folder it restores: a copy synced from
#: another machine, a folder renamed).
MOVED_HEAD = """
import json, os, sys, time
import ray
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

HERE = os.getcwd()


def train(config):
    marker = os.path.join(config["folder"], "failed-once")
    for i in range(3):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
        if config["x"] == 1 and i == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError("x=1 fails once")
        tune.report({"score": float(config["x"] * (i + 1))})

"""
MOVED_SCRIPT = (
    MOVED_HEAD
    + """
tuner = tune.Tuner(
    trainable(train),
    # x=2, then x=1 in x=2's worker (one in all: a failed trial's is not reused after it)
    param_space={"x": tune.grid_search([2, 1]), "folder": HERE},
    tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True,
                                max_concurrent_trials=1),
    run_config=tune.RunConfig(storage_path=os.path.join(HERE, "results"), verbose=0,
                              callbacks=[GreenprintTuneCallback()]))
grid = tuner.fit()
print(json.dumps({"path": grid.experiment_path,
                  "errors": sorted(r.error is not None for r in grid)}))
"""
)
#: A new driver (``python restore.py``, its own local cluster) restoring the moved experiment.
RESTORE_SCRIPT = (
    MOVED_HEAD
    + """
ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
         _temp_dir=sys.argv[1], log_to_driver=False)  # a short path: Ray's sockets are there
tuner = tune.Tuner.restore(os.path.join(HERE, "moved", "sweep"), trainable(train),
                           resume_errored=True)
grid = tuner.fit()
print(json.dumps({"path": grid.experiment_path,
                  "errors": sorted(r.error is not None for r in grid)}))
ray.shutdown()
"""
)

# ------------------------------------------------------------------ Ray Tune: one study
#: (integrations s25) Three experiments of 2 tiny trials each: the callback given a study and
#: the trainable none (``one``), the two given different studies (``cb-two``, ``fn-two``), the
#: trainable given one and the callback none (``fn-only``). Prints each experiment's name and
#: the warnings the driver gave.
STUDIES_SCRIPT = """
import json, os, time, warnings
from ray import tune
from greenprint.integrations.ray import GreenprintTuneCallback, trainable


def train(config):
    for i in range(2):
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass
        tune.report({"score": float(config["x"] * (i + 1))})


out = {}
for key, callback_study, trainable_study in (("one", "one", None), ("two", "cb-two", "fn-two"),
                                              ("fn", None, "fn-only")):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = tune.Tuner(
            trainable(train, study=trainable_study),
            param_space={"x": tune.grid_search([1, 2])},
            tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True,
                                        max_concurrent_trials=1),
            run_config=tune.RunConfig(
                name=f"exp-{key}", storage_path=os.path.join(os.getcwd(), "results"), verbose=0,
                callbacks=[GreenprintTuneCallback(study=callback_study)])).fit()
    out[key] = {"errors": [r.error is not None for r in grid],
                "warnings": [str(w.message) for w in caught if "greenprint" in str(w.message)]}
print(json.dumps(out))
"""

#: Each study's folder and script.
SCRIPTS = {
    "dup": DUP_NAMES_SCRIPT,
    "retry": RETRY_SCRIPT,
    "pbt": PBT_SCRIPT,
    "restored": MOVED_SCRIPT,
    "studies": STUDIES_SCRIPT,
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every study of :data:`SCRIPTS` run by :data:`RUNNER` (one driver, one local cluster)."""
    need_installed("ray.tune", "ray")
    home = empty_home(tmp_path_factory, "ray-scripts")
    for name, text in SCRIPTS.items():
        (home / name).mkdir()
        (home / name / "study.py").write_text(text, encoding="utf-8")
    done = run_ray_script(home, "run.py", RUNNER)
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def _ran(studies: Path, name: str) -> tuple[Path, str]:
    """The study's folder and the last line its script printed (what it raised fails here)."""
    folder = studies / name
    error = folder / "error.txt"
    assert not error.exists(), error.read_text(encoding="utf-8")[-3000:]
    return folder, (folder / "stdout.txt").read_text(encoding="utf-8").strip().splitlines()[-1]


@pytest.mark.slow
def test_ray_trials_sharing_a_name_stay_trials_each(studies):
    """Before: the tails of PBT's stretches were found by the trial's name, one trial id per
    name, so every other trial of that name (a ``trial_name_creator`` by learning rate, three
    configurations per rate) became a part of the sweep: 6 Tune trials read as 2, both the
    failed ones, no final run. Now each Tune trial is a trial, scored by its own runs, the
    two that failed before their first result failed."""
    home, printed = _ran(studies, "dup")
    results = json.loads(printed)
    assert sorted((r["copy"], r["error"]) for r in results) == [
        (0, False), (0, False), (1, False), (1, False), (2, True), (2, True)
    ]  # fmt: skip
    report = _report(home, "--study", "dup", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 6
    assert (tag["by_status"]["finished"]["trials"], tag["by_status"]["failed"]["trials"]) == (4, 2)
    runs = gp.Ledger(home / "greenprint.db").runs(study="dup")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    rows = {r["id"]: r for r in report["runs"]}
    for run in runs:
        if run is not sweep:
            assert (run.parent_id, run.role, rows[run.id]["role"]) == (sweep.id, "trial", "trial")
            copy = run.params["copy"]
            assert run.status == ("failed" if copy == 2 else "finished"), run
            if copy != 2:
                assert rows[run.id]["score"] == pytest.approx(run.params["lr"] * 3 + 0.01 * copy)
    assert (tag["final"]["name"], tag["final"]["score"]) == ("lr=1.0", pytest.approx(3.01))
    _export_reads_as_the_report(home, "dup", report)


@pytest.mark.slow
def test_ray_trial_retried_after_a_failure_is_one_trial(studies):
    """max_failures=1 and a trainable that fails once: Tune has three trials, all finished.
    The failed attempt's cost stays in the price tag (inside the sweep), but it is not a
    fourth trial scored as the worst in EVP."""
    home, printed = _ran(studies, "retry")
    results = json.loads(printed)
    assert sorted(r["score"] for r in results) == [3.0, 6.0, 9.0]
    assert not any(r["error"] for r in results)
    report = _report(home, "--study", "retry", "--no-plots")
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 3
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {"finished": 3}
    assert tag["by_status"]["failed"]["runs"] == 2  # the failed attempts, counted in the cost
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    mean = next(s for p in evp["panels"] for s in p["series"] if s["role"] == "mean")
    assert mean["y"] == pytest.approx(expected_max_performance([3.0, 6.0, 9.0]).mean.tolist())
    md = _text(home, "md")  # the retried attempt among the trials is marked
    for k in ("00000", "00001"):
        assert re.search(rf"\n\|   ↳ train\\_\w+\\_{k} \(part\) \| failed \|", md), md
    with gp.Ledger(home / "greenprint.db", create=False) as led:
        sweep = next(r for r in led.runs(study="retry") if r.role == "sweep")
    assert tag["total"]["energy_kwh"] == pytest.approx(sweep.energy_kwh, rel=1e-9)
    _export_reads_as_the_report(home, "retry", report)


@pytest.mark.slow
def test_ray_pbt_trials_resumed_from_checkpoints_are_one_trial_each(studies):
    """Before: every stretch of a trial between PBT's pauses was a trial of its own (23 trials
    for Tune's 4 in a probe of 8 steps), and the stretch resumed at the last step, which
    returns at once, was never adopted: a trial with no score, read under the sweep as a pool
    worker's run. Now each Tune trial is one trial, the run that reported its last result;
    its other runs are parts of the sweep, their cost kept; the total is what the sweep
    measured (a local cluster's workers are inside the driver's process tree)."""
    home, printed = _ran(studies, "pbt")
    results = json.loads(printed)
    assert len(results) == 4 and not any(r["error"] for r in results)
    report = _report(home, "--study", "pbt", "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["trials"], tag["by_status"]["finished"]["trials"]) == (4, 4)
    runs = gp.Ledger(home / "greenprint.db").runs(study="pbt")
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert tag["total"]["runs"] == len(runs) > 5  # PBT paused the trials: more runs than 4
    rows = {r["id"]: r for r in report["runs"]}
    trials = [r for r in runs if rows[r.id]["role"] == "trial"]
    assert sorted(r.name for r in trials) == sorted({r.name for r in runs if r is not sweep})
    for run in runs:
        if run is not sweep:
            assert run.parent_id == sweep.id and run.role in ("trial", "part"), run
    for trial in trials:  # the run that reported the trial's last result
        scored = [r for r in runs if r.name == trial.name and r.metric("score") is not None]
        last = max(scored, key=lambda r: max(p.time for p in r.metrics if p.name == "score"))
        assert last.id == trial.id
        assert rows[trial.id]["score"] == trial.metric("score")
    assert not [n for n in report["notes"] if "worker processes" in n]
    assert tag["total"]["energy_kwh"] == pytest.approx(sweep.energy_kwh, rel=1e-9)
    _export_reads_as_the_report(home, "pbt", report)


@pytest.mark.slow
def test_a_tune_experiment_restored_from_a_moved_folder_stays_one_study(studies):
    """Before: the restored driver named its sweep and study after the new folder ("sweep"):
    the study split in two, the first keeping x=1's failed attempt as a failed trial, the new
    one a second sweep and x=1's finished run; ``greenprint report`` of the first study read
    2 trials, one failed. Now the restored driver takes the first sweep's name and study (the
    state Tune saved names it), moves the workers' runs into it: one study, 2 finished
    trials, x=1's failed attempt a part of the first sweep, the restored sweep a part of it."""
    home, printed = _ran(studies, "restored")
    first = json.loads(printed)
    assert first["errors"] == [False, True]
    experiment = Path(first["path"]).name  # train_<date>: Tune's name
    (home / "moved").mkdir()
    Path(first["path"]).rename(home / "moved" / "sweep")
    done = run_ray_script(home, "restore.py", RESTORE_SCRIPT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["errors"] == [False, False]

    ledger = gp.Ledger(home / "greenprint.db")
    assert ledger.studies() == [experiment]  # was [experiment, "sweep"]
    runs = ledger.runs(study=experiment)
    sweeps = sorted((r for r in runs if r.role == "sweep"), key=lambda r: r.started_at)
    assert [s.name for s in sweeps] == [experiment, experiment]
    assert (sweeps[1].parent_id, sweeps[1].contained) == (sweeps[0].id, False)
    trials = {r.params["x"]: r for r in runs if r.role == "trial"}
    assert {x: r.status for x, r in trials.items()} == {1: "finished", 2: "finished"}
    assert trials[1].parent_id == sweeps[1].id and trials[2].parent_id == sweeps[0].id
    (failed,) = [r for r in runs if r.role == "part"]
    assert (failed.params["x"], failed.status, failed.parent_id) == (1, "failed", sweeps[0].id)

    report = _report(home, "--study", experiment, "--no-plots", "--format", "json")
    tag = report["price_tag"]
    assert (tag["total"]["runs"], tag["total"]["trials"]) == (5, 2)
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {"finished": 2}
    _export_reads_as_the_report(home, experiment, report)
    done = run_in(home, GREENPRINT, "ledger", "ls")
    assert done.returncode == 0, done.stderr
    assert " sweep " not in done.stdout  # no study, no sweep named after the moved folder


@pytest.mark.slow
def test_a_tune_experiment_is_one_study_whichever_side_names_it(studies):
    """Before: the sweep went to the callback's study (else the experiment's name) and the
    trials to the trainable's (else the experiment's name): ``GreenprintTuneCallback(study=
    "one")`` with ``trainable(fn)`` left study ``one`` a sweep with no trial (``greenprint
    report`` read 0 trials) and the trials in a study ``exp-one`` whose sweep was elsewhere.
    Now each experiment is one study: the callback's when it names one (the trials moved into
    it; a trainable naming another warns once), else the trainable's (the sweep moves there);
    each holds its sweep and its 2 finished trials, measured, and its price tag counts them."""
    home, printed = _ran(studies, "studies")
    out = json.loads(printed)
    assert {key: each["errors"] for key, each in out.items()} == {
        "one": [False, False],
        "two": [False, False],
        "fn": [False, False],
    }
    (warned,) = out["two"]["warnings"]  # once, for the two trials
    assert "fn-two" in warned and "cb-two" in warned and "two studies" in warned
    assert out["one"]["warnings"] == [] and out["fn"]["warnings"] == []

    ledger = gp.Ledger(home / "greenprint.db")
    assert ledger.studies() == ["cb-two", "fn-only", "one"]  # was also exp-one, fn-two, exp-fn
    for study, experiment in (("one", "exp-one"), ("cb-two", "exp-two"), ("fn-only", "exp-fn")):
        runs = ledger.runs(study=study)
        (sweep,) = [r for r in runs if r.role == "sweep"]
        assert (sweep.name, sweep.status, sweep.parent_id) == (experiment, "finished", None)
        trials = [r for r in runs if r.role == "trial"]
        assert len(runs) == 3 and len(trials) == 2
        for trial in trials:
            assert (trial.parent_id, trial.status) == (sweep.id, "finished")
            assert trial.energy_kwh > 0 and trial.metric("score") is not None
        total = price_tag(runs).total  # what `greenprint report --study` reads
        assert (total.runs, total.trials) == (3, 2)
        # the sweep's tree holds the trials its local cluster ran (contained); others add
        outside = sum(t.energy_kwh for t in trials if t.contained is False)
        assert total.energy_kwh == pytest.approx(sweep.energy_kwh + outside, rel=1e-9)
