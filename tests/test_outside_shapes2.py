"""Issue 12, a fourth outside check: study shapes the first three checks did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration),
then read in all four report formats and both exports:

* **process-parallel Optuna**: two worker processes started at the same time on one Optuna RDB
  storage (``sqlite:///optuna.db``, ``load_if_exists=True``), each under
  ``greenprint run --role sweep``, both writing through greenprint's Optuna callback into one
  greenprint ledger (a SQLite file; a PostgreSQL ledger in a slow test);
* **a search resumed after a crash**: ``greenprint run -- python search.py`` (an Optuna search)
  killed with SIGKILL, the whole job, in the middle of a trial, then run again to completion;
* **scikit-learn** ``GridSearchCV`` under ``joblib.parallel_backend("threading", n_jobs=2)``
  through greenprint's ``track_search``, inside ``greenprint run --role sweep``;
* **a data-scaling study**: ``run_learning_curve`` at four training-set sizes (two repeats),
  two baselines started as ``greenprint run --role baseline -- python baseline.py`` and a final
  retrain as ``greenprint run --role final -- python final.py``, all in one study and no trial;
* **Ray Tune with** ``FailureConfig(max_failures=1)``: a trainable that fails once and succeeds
  when Tune retries it (its test in ``integrations/test_ray_scripts.py``: its script shares a
  driver and a local Ray cluster there).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import price_tag_lines_have_units as _price_tag_lines_have_units
from _report_cli import report_text as _text
from _wait import wait_until
from greenprint.analysis import expected_max_performance
from integrations._frameworks import need_installed

#: One worker of a process-parallel search: ``python search.py SEED N_TRIALS LEDGER``.
PARALLEL_SCRIPT = """
import os, sys, time
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
seed, n, ledger = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
open(f"ready-{seed}", "w").close()  # both workers search at the same time, whatever the load
deadline = time.monotonic() + 120
while not all(os.path.exists(f"ready-{k}") for k in (0, 1)) and time.monotonic() < deadline:
    time.sleep(0.01)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def objective(trial):
    model = trial.suggest_categorical("model", ["mlp", "cnn"])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if trial.number % 5 == 4:  # Optuna numbers trials across both workers: 4 and 9 fail
        raise FloatingPointError("loss diverged")
    loss = 1.0
    for step in range(3):
        busy(0.01)
        loss = (abs(lr - 0.01) + (0.2 if model == "mlp" else 0.0)) / (step + 1)
        trial.report(loss, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


cb = GreenprintCallback(ledger=ledger, metric_names=["val_loss"])
study = optuna.create_study(
    study_name="par", direction="minimize", storage="sqlite:///optuna.db", load_if_exists=True,
    sampler=optuna.samplers.RandomSampler(seed=seed),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
study.optimize(cb.track(objective), n_trials=n, callbacks=[cb], catch=(FloatingPointError,))
"""


#: A search that the test kills (the whole job) in the middle of trial 3, the first time.
CRASH_SCRIPT = """
import os, sys, time
import optuna
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(3):
        busy(0.01)
        trial.report(x * (step + 1), step)
        if trial.number == 3 and step == 1 and not os.path.exists("resumed"):
            open("killme", "w").close()  # the test kills the whole job now
            time.sleep(120)  # its sampler flushes on meanwhile (spinning cost 2 s of CPU)
    return x * 3


cb = GreenprintCallback(sample_interval_s=0.5, flush_interval_s=0.5)  # loses 0.5 s at most
study = optuna.create_study(
    study_name="crash", direction="maximize", storage="sqlite:///optuna.db",
    load_if_exists=True, sampler=optuna.samplers.RandomSampler(seed=len(sys.argv)))
study.optimize(cb.track(objective), n_trials=int(sys.argv[1]), callbacks=[cb])
"""

GRID_SCRIPT = """
import json
from joblib import parallel_backend
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
from greenprint.integrations.sklearn import track_search

X, y = load_digits(return_X_y=True)
X, y = X[:300], y[:300]
search = GridSearchCV(SVC(), {"C": [0.1, 1, 10], "kernel": ["rbf", "linear"]}, cv=3)
with parallel_backend("threading", n_jobs=2):  # the folds in two threads of this process
    track_search(search, X, y, name="grid")
print(json.dumps({"params": search.cv_results_["params"],
                  "scores": search.cv_results_["mean_test_score"].tolist(),
                  "best": search.best_score_}))
"""

SCALE_COMMON = """
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
"""

SCALE_CURVE = """
import json
from sklearn.linear_model import LogisticRegression
from greenprint.analysis import run_learning_curve
from common import Xtr, Xte, ytr, yte


def train(fraction, seed=0):
    n = int(len(Xtr) * fraction)
    model = LogisticRegression(max_iter=100).fit(Xtr[:n], ytr[:n])
    return float(model.score(Xte, yte)), n


curve = run_learning_curve(train, [0.1, 0.25, 0.5, 1.0], study="scale", seed=0, repeats=2,
                           metric="accuracy")
print(json.dumps({"size": curve.dataset_size.tolist(), "score": curve.score_mean.tolist()}))
"""

SCALE_BASELINE = """
import json, sys
import greenprint as gp
from sklearn.dummy import DummyClassifier
from sklearn.naive_bayes import GaussianNB
from common import Xtr, Xte, ytr, yte

model = {"majority": DummyClassifier(), "bayes": GaussianNB()}[sys.argv[1]]
with gp.track(sys.argv[1]) as run:
    model.fit(Xtr, ytr)
    run.log(accuracy=float(model.score(Xte, yte)))
print(json.dumps(float(model.score(Xte, yte))))
"""

SCALE_FINAL = """
import json
import greenprint as gp
from sklearn.linear_model import LogisticRegression
from common import Xtr, Xte, ytr, yte

with gp.track("retrain", params={"C": 1.0}) as run:
    model = LogisticRegression(max_iter=100).fit(Xtr, ytr)
    run.log(accuracy=float(model.score(Xte, yte)))
    run.set(dataset_size=len(Xtr))
print(json.dumps(float(model.score(Xte, yte))))
"""


# ------------------------------------------------------------------------------- helpers
def _rows(report: dict) -> dict[str, dict]:
    return {row["name"]: row for row in report["runs"]}


def _runs(ledger: str | Path, study: str) -> list[gp.RunRecord]:
    with gp.Ledger(ledger, create=False) as led:
        return list(led.runs(study=study))


def _optuna_storage(home: Path) -> str:
    """The Optuna storage the scripts in ``home`` use (``sqlite:///optuna.db`` there)."""
    return f"sqlite:///{home / 'optuna.db'}"


def _optuna_trials(home: Path, study: str) -> list[dict]:
    """Optuna's own reading of ``study`` on the scripts' storage, read in this process (no
    python started to import Optuna and its storage's SQLAlchemy and Alembic again)."""
    import optuna

    loaded = optuna.load_study(study_name=study, storage=_optuna_storage(home))
    return [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
         "run": t.user_attrs.get("greenprint_run_id")}
        for t in loaded.trials
    ]  # fmt: skip


# ------------------------------------------------------------------------------- fixtures
def _parallel_search(home: Path, ledger: str) -> list[dict]:
    """Two workers of one Optuna study started together, six trials each; Optuna's trials."""
    (home / "search.py").write_text(PARALLEL_SCRIPT, encoding="utf-8")
    # the storage created once before the workers race to create it (Optuna's advice)
    import optuna

    optuna.create_study(study_name="par", direction="minimize", storage=_optuna_storage(home))
    run = [GREENPRINT, "run", "-q", "--ledger", ledger, "--study", "par", "--role", "sweep"]
    workers = [  # each worker as a user starts it on a machine: under greenprint run
        subprocess.Popen(
            [*run, "--name", f"worker-{k}", "--", sys.executable, "search.py", str(k), "6", ledger],
            cwd=home,
            env=clean_env(),
            stderr=subprocess.PIPE,
        )
        for k in (0, 1)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
    return _optuna_trials(home, "par")


@pytest.fixture(scope="module")
def parallel_optuna(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """Process-parallel Optuna into one SQLite ledger."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "shapes2-parallel")
    trials = _parallel_search(home, "greenprint.db")
    return home, trials, _report(home, "--study", "par", "--group-by", "params.model")


@pytest.fixture(scope="module")
def crashed_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """``greenprint run -- python search.py`` killed (SIGKILL, the whole job) in trial 3, then
    run again to completion; read once the killed trial's heartbeat is stale (lost)."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "shapes2-crash")
    (home / "search.py").write_text(CRASH_SCRIPT, encoding="utf-8")
    # the job flushes at its first sample (1 s in), then every 60 s
    command = [GREENPRINT, "run", "-q", "--flush-interval", "60", "--study", "crash", "--name",
               "search", "--", sys.executable, "search.py"]  # fmt: skip
    job = subprocess.Popen([*command, "6"], cwd=home, env=clean_env(), start_new_session=True,
                           stderr=subprocess.PIPE)  # fmt: skip
    try:
        started = wait_until(
            lambda: (home / "killme").exists() or job.poll() is not None, 120, every_s=0.1
        )
        assert started, "timed out waiting for trial 3"
        assert job.poll() is None, job.communicate()[1].decode()[-3000:]

        def flushed() -> bool:  # trial 3 flushes its cost so far every 0.5 s
            runs = _runs(home / "greenprint.db", "crash")
            return any(r.name == "trial-3" and r.energy_kwh for r in runs)

        assert wait_until(flushed, 60, every_s=0.1), "timed out waiting for trial 3's flush"
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # as a batch system ends a job: every process
        job.communicate()
    (home / "resumed").touch()
    done = run_in(home, *command, "3", "again")
    assert done.returncode == 0, done.stderr[-3000:]

    def lost() -> bool:
        return any(r.status == "lost" for r in _runs(home / "greenprint.db", "crash"))

    assert wait_until(lost, 30, every_s=0.1), "timed out waiting for the killed trial to read lost"
    return home, _optuna_trials(home, "crash"), _report(home, "--study", "crash", "--no-plots")


@pytest.fixture(scope="module")
def threaded_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """GridSearchCV with the threading backend under ``greenprint run --role sweep``."""
    need_installed("sklearn", "sklearn")
    home = _empty(tmp_path_factory, "shapes2-grid")
    (home / "search.py").write_text(GRID_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "grid", "--role", "sweep",
                  "--name", "job", "--", sys.executable, "search.py")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.splitlines()[-1])
    return (
        home,
        built,
        _report(home, "--study", "grid", "--group-by", "params.kernel", "--no-plots"),
    )


@pytest.fixture(scope="module")
def scaling_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Baselines and a final retrain through ``greenprint run --role``, a learning curve
    through ``run_learning_curve``: one study, no trial."""
    need_installed("sklearn", "sklearn")
    home = _empty(tmp_path_factory, "shapes2-scale")
    for name, text in (("common", SCALE_COMMON), ("curve", SCALE_CURVE),
                       ("baseline", SCALE_BASELINE), ("final", SCALE_FINAL)):  # fmt: skip
        (home / f"{name}.py").write_text(text, encoding="utf-8")
    built: dict = {}
    for name in ("majority", "bayes"):
        command = ["run", "-q", "--study", "scale", "--role", "baseline", "--name", f"base-{name}"]
        done = run_in(home, GREENPRINT, *command, "--", sys.executable, "baseline.py", name)
        assert done.returncode == 0, done.stderr[-3000:]
        built[name] = json.loads(done.stdout.splitlines()[-1])
    done = run_in(home, sys.executable, "curve.py")
    assert done.returncode == 0, done.stderr[-3000:]
    built["curve"] = json.loads(done.stdout.splitlines()[-1])
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "scale", "--role", "final",
                  "--name", "final", "--", sys.executable, "final.py")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built["final"] = json.loads(done.stdout.splitlines()[-1])
    return home, built, _report(home, "--study", "scale", "--no-plots")


# ------------------------------------------------------------ process-parallel Optuna
def _reads_as_optunas_trials(home: Path, trials: list[dict], report: dict) -> None:
    """The report's trials are Optuna's, with its states, values, final run and families."""
    states = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}
    rows = _rows(report)
    assert len(trials) == 12 and {t["state"] for t in trials} >= {"COMPLETE", "FAIL"}
    assert sorted(r["name"] for r in report["runs"] if r["is_trial"]) == sorted(
        f"trial-{t['number']}" for t in trials
    )
    for t in trials:
        row = rows[f"trial-{t['number']}"]
        assert (row["id"], row["status"], row["role"]) == (t["run"], states[t["state"]], "trial")
        assert row["params"] == t["params"]
        if t["state"] != "FAIL":  # a pruned trial: its last reported value, as Optuna's
            assert row["score"] == pytest.approx(t["value"], rel=1e-12)
    tag = report["price_tag"]
    counts = {states[s]: sum(t["state"] == s for t in trials) for s in states}
    assert {k: v["trials"] for k, v in tag["by_status"].items()} == {
        k: v for k, v in counts.items() if v
    }
    assert tag["roles"]["counts"] == {"sweep": 2, "trial": 12}
    for worker in ("worker-0", "worker-1"):  # each worker's trials are its sweep's children
        assert rows[worker]["role"] == "sweep" and rows[worker]["role_inferred"] is False
    assert (report["metric"], report["mode"]) == ("val_loss", "min")
    assert "--mode max" in tag["mode_note"]  # how a CLI user says otherwise (read mode='max')
    best = min((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert (tag["final"]["name"], tag["final"]["rule"]) == (f"trial-{best['number']}", "best-trial")
    # the two workers ran at the same time: more run-seconds than wall-clock seconds
    assert tag["total"]["duration_s"] > tag["elapsed_s"]
    # the HTML runs table lists each trial under its worker: not start order (the workers'
    # trials interleave), and its note says which order it is (read 'in start order')
    html = _text(home, "html")
    listed = re.findall(r"<td>([0-9a-f]{8})</td></tr>", html)
    started = {row["id"][:8]: row["started_at"] for row in report["runs"]}
    assert len(listed) == 14 and [started[i] for i in listed] != sorted(started.values())
    assert "in start order;" not in html and "each right under the run it ran in" in html
    assert tag["total"]["fpo"] is None and tag["total"]["fpo_unknown"] == 12
    md = _text(home, "md")
    assert f"- **FPO**: unknown (none of the {tag['total']['runs']} runs counted FPO)\n" in md
    assert "0 FPO" not in md and "0 FPO" not in _text(home, "html")
    # LaTeX: no FPO unit over columns of dashes, no legend for a sign no cell carries
    tex = _text(home, "latex")
    assert not re.search(r"\([kMGTPE]FPO\)|& \(FPO\) &", tex) and r"$\geq$" not in tex
    _price_tag_lines_have_units(md)
    # EVP per family from Optuna's values (a failed trial counts as the worst)
    scores = [math.nan if t["state"] == "FAIL" else t["value"] for t in trials]
    worst = max(v for v in scores if not math.isnan(v))
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    curves = {s["label"]: s["y"] for panel in evp["panels"] for s in panel["series"]}
    for family in ("mlp", "cnn"):
        members = [worst if math.isnan(v) else v for v, t in zip(scores, trials, strict=True)
                   if t["params"]["model"] == family]  # fmt: skip
        expected = expected_max_performance(members, mode="min").mean.tolist()
        assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, abs=1e-12)
    # against energy: each family's x is n times its own mean trial's energy, in the axis' unit
    (panel,) = next(f for f in report["figures"] if f["id"] == "evp_energy")["panels"]
    per_kwh = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[panel["x_unit"]]
    assert panel["x_label"] == f"energy ({panel['x_unit']})"
    xs = {s["label"]: s["x"] for s in panel["series"]}
    for family in ("mlp", "cnn"):
        kwh = [r["energy_kwh"] for r in report["runs"]
               if r["is_trial"] and r["params"]["model"] == family]  # fmt: skip
        mean = sum(kwh) / len(kwh) * per_kwh
        assert xs[f"{family} ({len(kwh)})"] == pytest.approx(
            [n * mean for n in range(1, len(kwh) + 1)], rel=1e-9
        )


def test_two_worker_processes_read_as_one_optuna_study(parallel_optuna):
    """Twelve trials from two processes on one storage and one ledger: Optuna's trials,
    states and values, the best finished trial final, EVP per family, units everywhere."""
    home, trials, report = parallel_optuna
    _reads_as_optunas_trials(home, trials, report)
    _export_reads_as_the_report(home, "par", report)


@pytest.mark.slow  # two more workers into a PostgreSQL database: about 10 s
@pytest.mark.postgres
def test_two_worker_processes_into_one_postgresql_ledger(tmp_path_factory, pg_server):
    """The same search with both workers writing to one PostgreSQL ledger reads the same (a
    database of its own on the worker's server, tests/conftest.py's pg_server)."""
    need_installed("optuna", "optuna")
    url = pg_server.new_database()
    home = _empty(tmp_path_factory, "shapes2-parallel-pg")
    trials = _parallel_search(home, url)
    # its figures' data in the JSON; their drawing is the SQLite study's (parallel_optuna)
    report = _report(home, "--ledger", url, "--study", "par", "--group-by", "params.model",
                     "--no-plots")  # fmt: skip
    _reads_as_optunas_trials(home, trials, report)
    _export_reads_as_the_report(home, "par", report, "--ledger", url)


# ------------------------------------------------------------ a search resumed after a crash
def test_a_search_killed_and_resumed_reads_its_lost_trial(crashed_search):
    """Optuna leaves the killed trial RUNNING; greenprint reads it lost, with the cost it had
    flushed; the six finished trials are Optuna's; the price tag is both jobs'."""
    home, trials, report = crashed_search
    rows = _rows(report)
    states = {t["number"]: t["state"] for t in trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE", 3: "RUNNING",
                      4: "COMPLETE", 5: "COMPLETE", 6: "COMPLETE"}  # fmt: skip
    assert (rows["trial-3"]["status"], rows["trial-3"]["is_trial"]) == ("lost", True)
    assert rows["trial-3"]["energy_kwh"] > 0  # what it flushed before the kill
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 7
    trials_by_status = {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]}
    assert trials_by_status == {"finished": 6, "lost": 1}
    assert tag["roles"]["counts"] == {"sweep": 2, "trial": 7}
    best = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert tag["final"]["name"] == f"trial-{best['number']}"
    for t in trials:
        if t["state"] == "COMPLETE":
            assert rows[f"trial-{t['number']}"]["score"] == pytest.approx(t["value"])
    md = _text(home, "md")
    assert "comprised 7 trials (6 finished, 1 lost) in 9 runs" in md
    # the timeline's energy curve ends at the price tag's total (not the resumed job's alone)
    timeline = next(f for f in report["figures"] if f["id"] == "timeline")
    energy = next(p for p in timeline["panels"] if p["y_label"].startswith("cumulative energy"))
    per_kwh = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[energy["y_unit"]]
    (curve,) = energy["series"]
    assert curve["y"][-1] == pytest.approx(tag["total"]["energy_kwh"] * per_kwh, rel=1e-6)
    # the job flushes at its first sample (1 s in), long before trial 3: it recorded energy,
    # so no top-level run is drawn as its trials; one killed before that sample would be (a
    # note says so)
    silent = [r for r in report["runs"] if r["depth"] == 0 and not r["energy_kwh"]]
    said = [n for n in timeline["notes"] if "recorded no energy" in n]
    assert bool(said) == bool(silent), (silent, said)
    _export_reads_as_the_report(home, "crash", report)


def test_energy_a_killed_sweep_takes_from_its_trials_keeps_their_provenance(crashed_search):
    """The killed job never flushed (killed before its first flush): its cost is its trials',
    whose energy is estimated. The report says 100% estimated, not '26% of unknown origin'."""
    home, _, report = crashed_search
    provenance = report["price_tag"]["provenance"]
    assert provenance["unknown_share"] == pytest.approx(0.0, abs=1e-9)
    assert provenance["estimated_share"] == pytest.approx(1.0)
    for fmt in ("md", "html", "latex"):
        assert "unknown origin" not in _text(home, fmt), fmt


# ------------------------------------------------------------ GridSearchCV in threads
def test_threaded_grid_search_in_a_cli_sweep_reads_as_its_cv_results(threaded_grid):
    """Six candidates whose folds ran in two threads: six trials scored as scikit-learn
    scored them, their folds parts, the refit final, EVP per kernel from cv_results_."""
    home, built, report = threaded_grid
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"sweep": 2, "trial": 6, "part": 18, "final": 1}
    assert tag["roles"]["inferred"] == 0
    for k, (params, score) in enumerate(zip(built["params"], built["scores"], strict=True)):
        row = rows[f"grid-c{k}"]
        assert (row["is_trial"], row["params"]) == (True, params)
        assert row["score"] == pytest.approx(score)
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("grid-refit", "role")
    assert tag["final"]["score"] == pytest.approx(built["best"])
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    curves = {s["label"]: s["y"] for panel in evp["panels"] for s in panel["series"]}
    for kernel in ("rbf", "linear"):
        members = [s for p, s in zip(built["params"], built["scores"], strict=True)
                   if p["kernel"] == kernel]  # fmt: skip
        expected = expected_max_performance(members, mode="max").mean.tolist()
        assert curves[f"{kernel} (3)"] == pytest.approx(expected, abs=1e-12)
    job = next(r for r in _runs(home / "greenprint.db", "grid") if r.name == "job")
    assert tag["total"]["energy_kwh"] == pytest.approx(job.energy_kwh, rel=1e-9)
    _export_reads_as_the_report(home, "grid", report)


# ------------------------------------------------------------ a data-scaling study
def test_data_scaling_study_reads_its_roles_and_curve(scaling_study):
    """Baselines and the final retrain given by ``greenprint run --role``, the learning curve
    by run_learning_curve; the scripts' runs inside are inferred parts, and the report says
    so; the curve is run_learning_curve's; each role's cost is its roots'."""
    home, built, report = scaling_study
    rows = _rows(report)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"part": 3, "baseline": 2, "final": 1, "learning-curve": 8}
    assert tag["roles"]["inferred"] == 3 and "(3 parts)" in tag["roles"]["note"]
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("final", "role")
    assert tag["final"]["score"] == pytest.approx(built["final"])
    for name in ("majority", "bayes"):  # scored by the run inside (its part)
        assert (rows[f"base-{name}"]["role"], rows[name]["role"]) == ("baseline", "part")
        assert rows[f"base-{name}"]["score"] == pytest.approx(built[name])
    curve = next(f for f in report["figures"] if f["id"] == "learning_curve")
    score = next(s for p in curve["panels"] for s in p["series"] if s["role"] == "mean")
    assert score["x"] == built["curve"]["size"]
    assert score["y"] == pytest.approx(built["curve"]["score"])
    runs = {r.name: r for r in _runs(home / "greenprint.db", "scale")}
    for role, names in (("baseline", ["base-majority", "base-bayes"]), ("final", ["final"])):
        kwh = sum(runs[n].energy_kwh for n in names)
        assert tag["by_role"][role]["energy_kwh"] == pytest.approx(kwh, rel=1e-9)
    md = _text(home, "md")
    _price_tag_lines_have_units(md)
    # the scripts' runs under their baseline and final runs read as their parts
    for name in ("majority", "bayes", "retrain"):
        assert f"  ↳ {name} (part) |" in md
        assert f"↳ {name} (part)</td>" in _text(home, "html")
    _export_reads_as_the_report(home, "scale", report)


def test_a_study_without_trials_says_so_without_empty_brackets(scaling_study):
    """No trial: the compute statement and the CLI summary read '0 trials in 14 runs' (read
    '0 trials () in 14 runs'), LaTeX's table of runs is not 'The 0 best trials ... out of 0',
    and the model card's source counts the runs it sums."""
    home, _, report = scaling_study
    for fmt in ("md", "html", "latex"):
        text = _text(home, fmt)
        assert "()" not in text, fmt
        assert "comprised 0 trials in 14 runs" in text, fmt
    assert "0 best trials" not in _text(home, "latex")
    assert "out of 0" not in _text(home, "latex")
    source = report["model_card"]["co2_eq_emissions"]["source"]
    assert "0 trials (failed and pruned included)" not in source
    assert "14 runs" in source
    done = run_in(home, GREENPRINT, "report", "--study", "scale", "--format", "json",
                  "--no-plots", "--out", "again")  # fmt: skip
    assert done.stdout.startswith("0 trials in 14 runs\n"), done.stdout


def test_learning_curve_provenance_names_runs_not_trials(scaling_study):
    """The learning curve's points are learning-curve runs, not trials: its provenance line
    does not say 'of each trial'."""
    _, _, report = scaling_study
    curve = next(f for f in report["figures"] if f["id"] == "learning_curve")
    assert not any("of each trial" in line for line in curve["provenance"]), curve["provenance"]
