"""Ray Tune studies as users script them, several on one local Ray cluster started by one driver.

Each study is a user's Tune script (``study.py``) in a folder of its own, with a clean
environment (no ``GREENPRINT_*`` variable, no configuration), read back with ``greenprint
report`` and both exports. The tests were written in other files (review s16, outside shapes 2,
4 and 7, outside reports, integrations s24 and s25, ledger path pinned s34), each script run as
``python study.py`` (outside shapes 4's on a 1-CPU cluster: here one trial at a time), its own
driver starting its own local cluster: ~4.5 s of CPU for the cluster's daemons (GCS, raylet, the
dashboard, agent, log and autoscaler monitors) and ~3 s for the driver to import Ray Tune, for a
few seconds of trials. Here one driver (:data:`RUNNER`) starts one local cluster, as each
script did (``ray.init(num_cpus=2, ...)``), then runs each study's script in its folder as
``python study.py`` there runs it (``runpy``, as ``__main__``), one after another: every
experiment still a Tuner of its own, its trials in worker processes of their own, the cluster
the driver's child (its workers inside the sweep's process tree). A study's second driver
(``then.py``: the moved experiment's restore, its own local cluster before) runs after every
study, in a new process on the same cluster (``ray.init(address=...)``), as test_ray.py's
killed and merged drivers do. What each test asserts is what it asserted. A study whose
script raised fails its own test only (``error.txt``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import (
    GREENPRINT,
    at_constant_power,
    empty_home,
    figure_of,
    rows_by_name,
    run_in,
    run_ray_script,
    runs_by_name,
    series_of,
)
from _report_cli import cli_report as _report
from _report_cli import evp_curves as _evp_curves
from _report_cli import export_csv as _export_csv
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import in_every_format as _in_every_format
from _report_cli import price_tag_lines_have_units as _price_tag_lines_have_units
from _report_cli import report_text as _text
from _report_cli import roots_sum_to_the_price_tag as _roots_sum_to_the_price_tag
from greenprint.analysis import expected_max_performance, price_tag
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S

#: pytest-timeout's limit for this file's tests: the first to ask for :func:`studies` waits for
#: its driver, whose own limit is 900 s. The suite's 300 s killed the fixture on a loaded
#: runner (load 20-30) and every test of the file errored; the driver takes ~40 s quiet.
pytestmark = pytest.mark.timeout(960)

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent.parent / "tracking")

#: The constant power the ASHA study's meters draw, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

#: One driver, one local cluster: every folder holding a ``study.py`` (by name) run there in
#: turn, its output in ``stdout.txt``, what it raised in ``error.txt``; then each folder's
#: ``then.py``, a new driver process on the cluster (``python then.py ADDRESS``), its output in
#: ``then.txt``, its stderr and exit status in ``then-error.txt`` when it failed. The folder of
#: the test meters (``tests/tracking``) is on its path and its cluster's (``PYTHONPATH``), as a
#: script importing them is run (``ConstantProcessPower``: Ray's workers unpickle it).
RUNNER = """
import contextlib, os, runpy, subprocess, sys, traceback
import ray

folders = sorted(os.path.abspath(d) for d in os.listdir() if os.path.isfile(f"{d}/study.py"))
# the test meters (tests/tracking/_meters.py), importable by the driver and by Ray's workers
sys.path.insert(0, @METERS@)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [@METERS@, os.environ.get("PYTHONPATH")]))
# no idle workers prestarted beside the first trial's (two, ~0.35 s of CPU each, never used: Tune
# starts each trial's actor in a worker of its own); Ray's worker pool, not the scripts' shape
os.environ.update(RAY_prestart_worker_first_driver="0", RAY_enable_worker_prestart="0")
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
address = ray.get_runtime_context().gcs_address
for folder in folders:
    if not os.path.isfile(f"{folder}/then.py") or os.path.exists(f"{folder}/error.txt"):
        continue
    os.chdir(folder)
    try:
        done = subprocess.run([sys.executable, "then.py", address], capture_output=True,
                              text=True, timeout=300)
        with open("then.txt", "w") as f:
            f.write(done.stdout)
        if done.returncode != 0:
            with open("then-error.txt", "w") as f:
                f.write(f"exit status {done.returncode}\\n{done.stderr[-3000:]}")
    except BaseException:
        with open("then-error.txt", "w") as f:
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
        end = time.process_time() + 0.02
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
        busy(0.02)
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
        end = time.process_time() + 0.02
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
#: A new driver (``python then.py ADDRESS`` once the first has ended; on the cluster the first
#: ran on, where it started its own local cluster before) restoring the experiment its user
#: moved first: ``train_<date>`` to ``moved/sweep``.
RESTORE_SCRIPT = (
    MOVED_HEAD
    + """
with open("stdout.txt") as f:  # what the first driver printed: where its experiment is
    first = json.loads(f.read().strip().splitlines()[-1])
os.mkdir(os.path.join(HERE, "moved"))
os.rename(first["path"], os.path.join(HERE, "moved", "sweep"))
ray.init(address=sys.argv[1], log_to_driver=False)
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

# ------------------------------------------------------------ Ray Tune, ASHA with CV folds
#: (outside reports) Six trials of an ASHA search, each running three CV folds per iteration as
#: child runs (``gp.track`` inside the trainable), one failing, some stopped early (pruned),
#: and a retrain outside the tuner with ``role="final"``.
FOLDS_SCRIPT = """
import json, os, time
from ray import tune
from ray.tune.schedulers import ASHAScheduler
import greenprint as gp
from greenprint.integrations.ray import GreenprintTuneCallback, trainable

# x -> the loss scale: at iteration i fold f logs LOSS[x] / (i + 1) + 0.01 f and the trial
# reports the mean of its folds; ASHA (max_t 4, grace 1, factor 2) stops the weak ones early
LOSS = {1: 0.9, 2: 0.4, 3: 0.5, 4: 2.0, 5: 0.45, 6: 2.2}
MODEL = {1: "mlp", 2: "cnn", 3: "mlp", 4: "cnn", 5: "mlp", 6: "cnn"}
FAIL = 3  # fails in its first iteration, second fold: before it reports, so before any
# decision of ASHA's (failing later, it could be stopped first when faster trials reported first)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def train(config):
    x = config["x"]
    for i in range(4):
        losses = []
        for f in range(3):
            with gp.track(f"x{x}-it{i}-fold{f}") as fold:  # a child of the trial's run
                busy(0.005)
                if x == FAIL and (i, f) == (0, 1):
                    raise ValueError(f"x={x} diverged")
                loss = LOSS[x] / (i + 1) + 0.01 * f
                fold.log(val_loss=loss)
                losses.append(loss)
        tune.report({"val_loss": sum(losses) / 3})


if __name__ == "__main__":
    tuner = tune.Tuner(
        trainable(train),
        param_space={"x": tune.grid_search(list(LOSS)),
                     "model": tune.sample_from(lambda config: MODEL[config["x"]])},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min",
            scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
            # one worker reused, not one per trial (~3 s of CPU each), one trial at a time;
            # the failed trial's is not reused: two in all
            reuse_actors=True, max_concurrent_trials=1),
        run_config=tune.RunConfig(
            name="ray-exp", storage_path=os.path.abspath("tune"), verbose=0,
            callbacks=[GreenprintTuneCallback()],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    results = tuner.fit()
    best = results.get_best_result()
    with gp.track("retrain", study="ray-exp", role="final", params=best.config) as run:
        busy(0.02)
        run.log(val_loss=0.1)
    print(json.dumps([{"x": r.config["x"], "error": r.error is not None,
                       "iterations": (r.metrics or {}).get("training_iteration")}
                      for r in results]))
"""

# ------------------------------------------------------------ Ray Tune, ASHA at a known power
#: (outside shapes 4) ASHA stopping trials early; every run (the driver's sweep, each trial in
#: its worker process) at a known constant power (``ConstantProcessPower``).
POWER_SCRIPT = """
import json, os, time
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from greenprint.integrations.ray import GreenprintTuneCallback, trainable
from _meters import ConstantProcessPower  # on the path: Ray's workers import it too

W = @WATTS@
LOSS = {1: 0.9, 2: 0.4, 3: 2.0, 4: 2.2}  # x -> its loss scale: 3 and 4 come last, worst
MODEL = {1: "mlp", 2: "cnn", 3: "mlp", 4: "cnn"}


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def train(config):
    for i in range(4):
        busy(0.02)
        tune.report({"val_loss": LOSS[config["x"]] / (i + 1)})


if __name__ == "__main__":
    tuner = tune.Tuner(
        trainable(train, meters=ConstantProcessPower(W)),
        param_space={"x": tune.grid_search(list(LOSS)),
                     "model": tune.sample_from(lambda config: MODEL[config["x"]])},
        tune_config=tune.TuneConfig(
            metric="val_loss", mode="min",
            scheduler=ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
            # one trial at a time, in one worker Tune reuses (a worker costs ~3 s of CPU to
            # start): the trials' run times lie one after another inside the sweep's, which
            # each run draws W for whatever runs beside it, so the trials' energy sums to less
            # than the sweep's
            reuse_actors=True, max_concurrent_trials=1),
        run_config=tune.RunConfig(
            name="asha", storage_path=os.path.abspath("tune"), verbose=0,
            callbacks=[GreenprintTuneCallback(meters=ConstantProcessPower(W))]),
    )
    results = tuner.fit()
    print(json.dumps([{"x": r.config["x"], "model": r.config["model"],
                       "iterations": r.metrics["training_iteration"],
                       "val_loss": r.metrics["val_loss"], "run": r.metrics["greenprint/run_id"]}
                      for r in results]))
"""

# ------------------------------------------- Hugging Face Trainer search on Ray Tune's backend
#: (ledger path pinned, s34) docs/integrations.md's search with Ray Tune's backend: Ray runs each
#: trial in a working folder of its own (``.../working_dirs/_objective_<id>/``), where the
#: pickled callback opened ``greenprint.db`` before: no run reached the ledger the script named.
HF_RAY_SCRIPT = """
import torch
from ray import tune
from transformers import (AutoModelForSequenceClassification, BertConfig, Trainer,
                          TrainingArguments)

from greenprint.integrations.transformers import GreenprintCallback

torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, num_labels=2)
data = [{"input_ids": torch.randint(1, 100, (16,)), "labels": torch.tensor(i % 2)}
        for i in range(32)]
args = TrainingArguments(output_dir="bert-ray", report_to="none", use_cpu=True, max_steps=2,
                         per_device_train_batch_size=16, eval_strategy="steps", eval_steps=2,
                         save_strategy="no", disable_tqdm=True)
trainer = Trainer(model_init=lambda: AutoModelForSequenceClassification.from_config(config),
                  args=args, train_dataset=data, eval_dataset=data[:16])
GreenprintCallback(study="hf-ray", ledger="greenprint.db").attach(trainer)
best = trainer.hyperparameter_search(
    hp_space=lambda t: {"learning_rate": tune.loguniform(1e-4, 1e-2)}, backend="ray",
    n_trials=1, direction="minimize", resources_per_trial={"cpu": 1})
print(best.objective)
"""

#: Each study's folder and script.
SCRIPTS = {
    "dup": DUP_NAMES_SCRIPT,
    "retry": RETRY_SCRIPT,
    "pbt": PBT_SCRIPT,
    "restored": MOVED_SCRIPT,
    "studies": STUDIES_SCRIPT,
    "folds": FOLDS_SCRIPT,
    "power": POWER_SCRIPT.replace("@WATTS@", repr(WATTS)),
    "hf-ray": HF_RAY_SCRIPT,
}
#: A study's second driver, run after every study's first (:data:`RUNNER`).
THEN = {"restored": RESTORE_SCRIPT}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every study of :data:`SCRIPTS` run by :data:`RUNNER` (one driver, one local cluster)."""
    need_installed("ray.tune", "ray")
    home = empty_home(tmp_path_factory, "ray-scripts")
    for name, text in SCRIPTS.items():
        (home / name).mkdir()
        (home / name / "study.py").write_text(text, encoding="utf-8")
    for name, text in THEN.items():
        (home / name / "then.py").write_text(text, encoding="utf-8")
    # as run_ray_script runs any Ray script, with more time: seven studies, ~100 s alone on a
    # loaded 2-core VM
    runner = RUNNER.replace("@METERS@", repr(METERS_DIR))
    done = run_ray_script(home, "run.py", runner, timeout=900)
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
    # then.py (RESTORE_SCRIPT), a new driver, moved it to moved/sweep and restored it there
    error = home / "then-error.txt"
    assert not error.exists(), error.read_text(encoding="utf-8")
    assert not Path(first["path"]).exists() and (home / "moved" / "sweep").is_dir()
    restored = (home / "then.txt").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert json.loads(restored)["errors"] == [False, False]

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


# ------------------------------------------------------------ Ray Tune, ASHA with CV folds


@pytest.fixture(scope="module")
def ray_study(studies: Path) -> tuple[Path, list[dict], dict]:
    """Ray Tune with ASHA, CV folds as child runs of each trial, and a final retrain."""
    home, printed = _ran(studies, "folds")
    tune_results = json.loads(printed)
    return home, tune_results, _report(home, "--study", "ray-exp", "--group-by", "params.model",
                                       "--no-plots")  # fmt: skip


def test_ray_trials_statuses_are_tunes_and_folds_are_parts(ray_study):
    home, tune_results, report = ray_study
    rows = rows_by_name(report)
    trials = {row["name"]: row for row in report["runs"] if row["is_trial"]}
    assert len(trials) == 6
    by_x: dict[int, dict] = {}
    runs = runs_by_name(home, "ray-exp")
    for name, row in trials.items():
        by_x[runs[name].params["x"]] = row
    errored = {r["x"] for r in tune_results if r["error"]}
    assert errored == {3} and by_x[3]["status"] == "failed"
    # ASHA stopped early (pruned) every trial that did not reach max_t, the others finished
    for r in tune_results:
        if r["x"] in errored:
            continue
        expected = "finished" if r["iterations"] == 4 else "pruned"
        assert by_x[r["x"]]["status"] == expected, r
    tag = report["price_tag"]
    counts: dict[str, int] = {}
    for row in trials.values():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    assert {s: v["trials"] for s, v in tag["by_status"].items() if v["trials"]} == counts
    # every fold is a part (inferred) of its trial, whatever Tune did to the trial
    folds = [row for name, row in rows.items() if "-fold" in name]
    assert folds and all(r["role"] == "part" and r["role_inferred"] for r in folds)
    assert tag["roles"]["counts"] == {"trial": 6, "part": len(folds), "final": 1, "sweep": 1}
    final = tag["final"]
    assert final["name"] == "retrain" and final["rule"] == "role"
    for fmt in ("md", "html", "latex"):
        text = _text(home, fmt).replace("&#x27;", "'")
        assert "Final run retrain (the run with role 'final') scored val" in text, fmt


def test_ray_evp_counts_the_failed_trial_as_the_worst_and_pareto_holds_trials(ray_study):
    _, _, report = ray_study
    trials = [row for row in report["runs"] if row["is_trial"]]
    scored = [r["score"] for r in trials if r["status"] in ("finished", "pruned")]
    every = [r["score"] if r["status"] in ("finished", "pruned") else max(scored) for r in trials]
    evp = figure_of(report, "evp_trials")
    assert evp is not None
    (mean,) = series_of(evp, "mean")
    reference = expected_max_performance(every, mode="min").mean.tolist()
    assert sorted(mean["y"]) == pytest.approx(sorted(reference), abs=1e-12)
    worst = f"counts as the worst {report['metric']} ({max(scored):g})"
    assert f"1 of 6 trials had no score and {worst}" in evp["notes"]
    pareto = figure_of(report, "pareto")
    assert pareto is not None
    by_id = {row["id"]: row for row in report["runs"]}
    plotted = {i for s in pareto["panels"][0]["series"] for i in s.get("run_ids", ())}
    assert {by_id[i]["name"] for i in plotted if not by_id[i]["is_trial"]} == {"retrain"}
    assert sum(by_id[i]["is_trial"] for i in plotted) == 5  # not the failed one


def test_ray_exports_sum_to_the_price_tag(ray_study):
    home, _, report = ray_study
    rows = _export_csv(home, "ray-exp")
    _roots_sum_to_the_price_tag(rows, report)
    assert {r["role"] for r in rows if r["parent_id"] == ""} == {"sweep", "final"}


def test_ray_run_times_read_as_recorded(ray_study):
    """Every run time in the Markdown runs table and the final-run sentence is the recorded
    duration to two significant digits (the trials took 0.1-0.3 s: '0.2 s' for 0.16 s, or
    '0.1 s' for 0.051 s, is up to twice the time)."""
    home, _, report = ray_study
    md = _text(home, "md")
    table = md[md.index("## Runs") :].split("\n\n", 2)[2]
    by_id = {row["id"][:8]: row for row in report["runs"]}
    checked = 0
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.split("|")]
        shown, recorded = cells[7], by_id[cells[-2]]["duration_s"]
        if recorded < 60:
            assert shown.endswith(" s"), line
            assert float(shown[:-2]) == pytest.approx(recorded, rel=0.05), line
            checked += 1
    assert checked == len(report["runs"])
    final = report["price_tag"]["final"]
    sentence = md[md.index("Final run retrain") :].split("\n", 1)[0]
    found = re.search(r"and ([\d.e-]+) s of run time", sentence)
    assert found and float(found.group(1)) == pytest.approx(final["duration_s"], rel=0.05)


def test_ray_no_fpo_counted_never_reads_as_zero(ray_study):
    """No run counted FPO: every status reads "FPO unknown" (the pruned trials, whose folds
    hold their FPO, read '0 FPO' before b399d62)."""
    home, _, report = ray_study
    assert all(r["fpo"] is None for r in report["runs"])  # no run counted any
    # nor does the JSON price tag read a 0 for any status or role ("fpo": 0 before)
    tag = report["price_tag"]
    groups = [*tag["by_status"].values(), *tag["by_role"].values()]
    assert all(c["fpo"] is None or (c["fpo"], c["fpo_unknown"] > 0) == (0, True) for c in groups)
    assert tag["by_status"]["pruned"]["fpo"] is None and tag["by_role"]["sweep"]["fpo"] is None
    md = _text(home, "md")
    assert f"FPO unknown (none of the {tag['total']['runs']} runs counted FPO)" in md
    assert not re.search(r"(?<![\d.])0 FPO", md)


# ------------------------------------------------------------ Ray Tune, ASHA at a known power


@pytest.fixture(scope="module")
def asha_study(studies: Path) -> tuple[Path, list[dict], dict]:
    """Ray Tune on a local Ray cluster, ASHA stopping trials early; every run (the driver's
    sweep, each trial in its worker process) at a known constant power."""
    home, printed = _ran(studies, "power")
    built = json.loads(printed)
    return home, built, _report(home, "--study", "asha", "--group-by", "params.model",
                                "--no-plots")  # fmt: skip


def test_asha_stopped_trials_are_pruned_and_their_cost_counted(asha_study):
    """ASHA stops the weak trials early: each trial Tune stopped before max_t reads pruned,
    the others finished, each scored by the last loss it reported (EVP per model from those);
    every trial and the sweep drew a known power for its run time (power x time), the
    sweep contains its trials (a local cluster), so the price tag is the sweep's own reading,
    and the pruned trials' cost is in it (by status, their own readings)."""
    home, built, report = asha_study
    rows = {r["id"]: r for r in report["runs"]}
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"sweep": 1, "trial": 4}
    pruned = [t for t in built if t["iterations"] < 4]
    assert pruned and len(pruned) < 4
    for t in built:
        row = rows[t["run"]]
        assert row["status"] == ("pruned" if t["iterations"] < 4 else "finished"), t
        assert row["params"] == {"x": t["x"], "model": t["model"]}
        assert row["score"] == pytest.approx(t["val_loss"], rel=1e-12)
    statuses = {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]}
    assert statuses == {"finished": 4 - len(pruned), "pruned": len(pruned)}
    sweep = next(r for r in report["runs"] if r["role"] == "sweep")
    at_constant_power(report, [r["name"] for r in report["runs"]], WATTS, READ_LAG_S)
    assert tag["total"]["energy_kwh"] == pytest.approx(sweep["energy_kwh"], rel=1e-12)
    assert sum(rows[t["run"]]["energy_kwh"] for t in built) < sweep["energy_kwh"]
    pruned_kwh = sum(rows[t["run"]]["energy_kwh"] for t in pruned)
    assert tag["by_status"]["pruned"]["energy_kwh"] == pytest.approx(pruned_kwh, rel=1e-9)
    best = min((t for t in built if t["iterations"] == 4), key=lambda t: t["val_loss"])
    assert (tag["final"]["run_id"], tag["final"]["rule"]) == (best["run"], "best-trial")
    curves = _evp_curves(report)
    for family in ("mlp", "cnn"):
        members = [t["val_loss"] for t in built if t["model"] == family]
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-12)
    n = len(pruned)
    _in_every_format(home, f"comprised 4 trials ({4 - n} finished, {n} pruned) in 5 runs")
    _price_tag_lines_have_units(_text(home, "md"))
    _export_reads_as_the_report(home, "asha", report)


# ------------------------------------------- Hugging Face Trainer search on Ray Tune's backend
def test_transformers_search_on_ray_writes_its_trials_to_the_named_ledger(studies):
    """(ledger path pinned, s34) A relative ledger path names the ledger where the callback was
    made. Before: each trial's run in a greenprint.db under Ray's session folder, none in the
    script's folder. (Its own driver and cluster before: moved here from
    ``test_ledger_path_pinned_s34.py``.)"""
    need_installed("transformers", "transformers")
    home, printed = _ran(studies, "hf-ray")
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*.db")) == ["greenprint.db"]
    runs = gp.Ledger(home / "greenprint.db").runs(study="hf-ray")
    assert [(r.role, r.status) for r in runs] == [("trial", "finished")]
    best = float(printed)
    assert min(r.metric("objective_loss") for r in runs) == pytest.approx(best)
