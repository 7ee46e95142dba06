"""Issue 12, a sixth outside check: study shapes the first five checks did not use.

Each study is built the way users build one, through the real frameworks and the CLI, in a
fresh empty directory with a clean environment (no ``GREENPRINT_*`` variable, no configuration),
then read in all four report formats and both exports. Where a script measures its runs itself,
its meter draws a known constant power (``tests/tracking/_meters.ConstantProcessPower``), so that
the truth of every energy figure is power x time:

* **a nested search**: an Optuna study whose objective runs a scikit-learn
  ``GridSearchCV(n_jobs=2)`` (loky worker processes) through greenprint's ``track_search`` per
  trial, through greenprint's Optuna callback, then a final refit (``role="final"``) scored on
  a held-out split;
* **an Optuna RDB study resumed after a crash**: the first process (greenprint's Optuna
  callback, a ``sqlite:///optuna.db`` storage, no ``greenprint run`` around it) is killed with
  SIGKILL in the middle of a trial, the second ``load_study``-s and goes on;
* **Ray Tune with** ``ASHAScheduler`` on a local Ray cluster, stopping trials early (its test
  in ``integrations/test_ray_scripts.py``: its script shares a driver and a local Ray cluster
  there);
* **the greener-techniques harness**: a baseline model, its dynamic-quantized and pruned
  variants through ``greenprint.greener.compare`` and ``greenprint greener``;
* **``greenprint run`` around a script that spawns two workers** (``multiprocessing`` with
  ``spawn``), each tracking its part of the work.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, at_constant_power, rows_by_name, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import evp_curves as _evp_curves
from _report_cli import export_reads_as_the_report as _export_reads_as_the_report
from _report_cli import in_every_format as _in_every_format
from _report_cli import price_tag_lines_have_units as _price_tag_lines_have_units
from _report_cli import report_text as _text
from _wait import wait_until
from greenprint.analysis import expected_max_performance
from integrations._frameworks import need_installed
from tracking._meters import READ_LAG_S

#: Where the constant-power meter of the tracker tests lives (the scripts import it).
METERS_DIR = str(Path(__file__).resolve().parent / "tracking")

#: The constant power every script's meter draws, in W: 1 s of run time is 1e-4 kWh.
WATTS = 360.0

NESTED_SCRIPT = """
import json, sys
sys.path.insert(0, @METERS@)
import optuna
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC
import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.integrations.sklearn import track_search
from _meters import ConstantProcessPower

optuna.logging.set_verbosity(optuna.logging.WARNING)
W = @WATTS@
X, y = load_digits(return_X_y=True)
X = X / 16
X_search, y_search, X_test, y_test = X[:300], y[:300], X[1500:], y[1500:]


def make(model, c):
    return SVC(C=c) if model == "svc" else LogisticRegression(C=c, max_iter=300)


out = {}


def objective(trial):
    model = trial.suggest_categorical("model", ["svc", "logreg"])
    c = trial.suggest_float("C", 0.01, 10, log=True)
    grid = {"gamma": [1e-3, 1e-2]} if model == "svc" else {"tol": [1e-4, 1e-3]}
    search = GridSearchCV(make(model, c), grid, cv=3, n_jobs=2)  # loky worker processes
    sweep = track_search(search, X_search, y_search, name=f"grid-{trial.number}")
    out[f"trial-{trial.number}"] = {"model": model, "best": float(search.best_score_),
                                    "sweep": sweep.id}
    return search.best_score_


cb = GreenprintCallback(meters=ConstantProcessPower(W, per_thread=True))
study = optuna.create_study(study_name="nested", direction="maximize",
                            sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(cb.track(objective), n_trials=4, callbacks=[cb])
best = study.best_params
model = make(best["model"], best["C"])
with gp.track("final", study="nested", role="final", params=best,
              meters=ConstantProcessPower(W)) as run:
    model.fit(X_search, y_search)
    run.log(value=float(model.score(X_test, y_test)))
out["final"] = {"id": run.id, "value": float(model.score(X_test, y_test)),
                "best_trial": f"trial-{study.best_trial.number}"}
for t in study.trials:
    out[f"trial-{t.number}"]["run"] = t.user_attrs["greenprint_run_id"]
print(json.dumps(out))
"""

RESUMED_SCRIPT = """
import json, sys, time
sys.path.insert(0, @METERS@)
import optuna
from greenprint.integrations.optuna import GreenprintCallback
from _meters import ConstantProcessPower

optuna.logging.set_verbosity(optuna.logging.WARNING)
W = @WATTS@
KILL_AT, N = int(sys.argv[1]), int(sys.argv[2])  # the trial this process dies in (-1: none)


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def objective(trial):
    model = trial.suggest_categorical("model", ["mlp", "cnn"])
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    for step in range(3):
        busy(0.03)
        loss = abs(lr - 0.03) + (0.1 if model == "mlp" else 0.0) + 0.1 / (step + 1)
        trial.report(loss, step)
        if trial.number == KILL_AT and step == 1:
            open("killme", "w").close()
            while True:  # killed here, with SIGKILL (its meter reads the clock: no need to spin)
                time.sleep(0.05)
    return loss


cb = GreenprintCallback(meters=ConstantProcessPower(W, per_thread=True), metric_names=["val_loss"],
                        sample_interval_s=0.1, flush_interval_s=0.2)
if KILL_AT >= 0:
    study = optuna.create_study(study_name="resumed", storage="sqlite:///optuna.db",
                                sampler=optuna.samplers.RandomSampler(seed=1))
else:
    study = optuna.load_study(study_name="resumed", storage="sqlite:///optuna.db",
                              sampler=optuna.samplers.RandomSampler(seed=2))
study.optimize(cb.track(objective), n_trials=N, callbacks=[cb])
print(json.dumps([{"number": t.number, "state": t.state.name, "value": t.value,
                   "params": t.params, "run": t.user_attrs.get("greenprint_run_id"),
                   "steps": t.intermediate_values} for t in study.trials]))
"""


GREENER_MODELS = """
import torch
from torch import nn


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    return x, (x.sum(dim=1) > 0).long()


def trained():
    torch.manual_seed(0)
    x, y = data()
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    for _ in range(40):  # gradient descent by hand: torch.optim's first step imports
        model.zero_grad()  # torch._dynamo (1.3 s of CPU in `greenprint greener`'s process)
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    return model.eval()


def batches():
    x, y = data()
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
"""

GREENER_SCRIPT = """
import json
import torch
from torch import nn
import greenprint as gp
from greenprint import greener
from models import batches, data, trained

x, y = data()
with gp.track("train", study="green", role="baseline") as run:  # the model, trained
    model = trained()
    run.log(accuracy=(model(x).argmax(1) == y).float().mean().item())


def accuracy(m):
    with torch.inference_mode():
        return (m(x).argmax(dim=1) == y).float().mean().item()


def fine_tune(m):
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(m(x), y).backward()
        opt.step()


student = nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 2))
result = greener.compare(
    model, accuracy, x[:64],
    [greener.dynamic_int8(), greener.prune_unstructured(0.5, fine_tune=fine_tune),
     greener.distilled(student, batches(), epochs=3, lr=1e-2)],
    study="green", ledger="greenprint.db", metric="accuracy", min_time_s=0.1, num_threads=1)
print(json.dumps({"run": result.run_id, "front": list(result.front)}))
"""


WORKERS_SCRIPT = """
import json, multiprocessing as mp, time
import greenprint as gp


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def work(shard, out):  # a worker process: its share of the job, a part of the job's run
    with gp.track(f"shard-{shard}", role="part", params={"shard": shard}) as run:
        busy(0.05)
        run.log(val_loss=0.5 + 0.1 * shard)
    out.put({"shard": shard, "id": run.id, "parent": run.record.parent_id})


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=work, args=(shard, out)) for shard in range(2)]
    for w in workers:
        w.start()
    got = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    print(json.dumps(sorted(got, key=lambda g: g["shard"])))
"""


# ------------------------------------------------------------------------------- helpers
def _script(text: str) -> str:
    return text.replace("@METERS@", repr(METERS_DIR)).replace("@WATTS@", repr(WATTS))


# ------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def nested_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Four Optuna trials, each a GridSearchCV(n_jobs=2) through track_search, and a final."""
    need_installed("optuna", "optuna")
    need_installed("sklearn", "sklearn")
    home = _empty(tmp_path_factory, "shapes4-nested")
    (home / "search.py").write_text(_script(NESTED_SCRIPT), encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.splitlines()[-1])
    return home, built, _report(home, "--study", "nested", "--group-by", "params.model",
                                "--no-plots")  # fmt: skip


@pytest.fixture(scope="module")
def resumed_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Three trials, SIGKILL in trial 2, then ``load_study`` and three more."""
    need_installed("optuna", "optuna")
    home = _empty(tmp_path_factory, "shapes4-resumed")
    (home / "search.py").write_text(_script(RESUMED_SCRIPT), encoding="utf-8")
    first = subprocess.Popen([sys.executable, "search.py", "2", "5"], cwd=home, env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        started = wait_until(
            lambda: (home / "killme").exists() or first.poll() is not None, 120, every_s=0.05
        )
        assert started, "timed out waiting for trial 2"
        assert first.poll() is None, first.communicate()[1].decode()[-3000:]
        time.sleep(0.6)  # trial 2 flushes its cost so far every 0.2 s
    finally:
        first.send_signal(signal.SIGKILL)
        killed_at = time.time()
        first.communicate()
    done = run_in(home, sys.executable, "search.py", "-1", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    built = {"trials": json.loads(done.stdout.splitlines()[-1]), "killed_at": killed_at}
    return home, built, _report(home, "--study", "resumed", "--group-by", "params.model",
                                "--no-plots")  # fmt: skip


@pytest.fixture(scope="module")
def greener_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A trained model (a baseline run), ``greener.compare`` of its int8, pruned (fine-tuned)
    and distilled variants, then ``greenprint greener`` of its int8 and pruned ones."""
    need_installed("torch", "torch")
    home = _empty(tmp_path_factory, "shapes4-greener")
    (home / "models.py").write_text(GREENER_MODELS, encoding="utf-8")
    (home / "compare.py").write_text(GREENER_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "compare.py")
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.splitlines()[-1])
    done = run_in(home, GREENPRINT, "greener", "models.py:trained", "--data", "models.py:batches",
                  "--variants", "dynamic-int8,prune-50", "--min-time", "0.05", "--threads", "1",
                  "--study", "green", "--name", "greener-cli", "--out", "gout")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built["cli"] = json.loads((home / "gout" / "greener.json").read_text(encoding="utf-8"))
    return home, built, _report(home, "--study", "green", "--no-plots")


@pytest.fixture(scope="module")
def spawned_workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    """``greenprint run -- python train.py``: the script spawns two worker processes, each
    tracking its part (``role="part"``)."""
    home = _empty(tmp_path_factory, "shapes4-workers")
    (home / "train.py").write_text(WORKERS_SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "-q", "--study", "mp", "--name", "job", "--param",
                  "lr=0.1", "--", sys.executable, "train.py")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    built = json.loads(done.stdout.splitlines()[-1])
    return home, built, _report(home, "--study", "mp", "--no-plots")


# ------------------------------------------------------------------------------- nested search
def test_nested_grid_searches_are_parts_of_their_optuna_trials(nested_search):
    """Each Optuna trial holds a whole GridSearchCV (its sweep, two candidates with three folds
    each from loky workers, its refit): four trials scored by Optuna's value, the search's
    runs their parts (the note says they were given roles inside a trial), the refit final."""
    home, built, report = nested_search
    rows = rows_by_name(report)
    tag = report["price_tag"]
    # per trial: the sweep, 2 candidates, 6 folds, the refit
    assert tag["roles"]["counts"] == {"trial": 4, "part": 40, "final": 1}
    assert tag["roles"]["inferred"] == 16 and tag["roles"]["note"].startswith(
        "16 of 45 runs were given a role but ran inside a trial"
    )
    for k in range(4):
        trial = built[f"trial-{k}"]
        row = rows[f"trial-{k}"]
        assert (row["id"], row["role"], row["status"]) == (trial["run"], "trial", "finished")
        assert row["score"] == pytest.approx(trial["best"], rel=1e-12)
        assert row["score_source"] == "own"
        sweep = next(r for r in report["runs"] if r["id"] == trial["sweep"])
        assert (sweep["parent_id"], sweep["role"], sweep["is_trial"]) == (row["id"], "part", False)
        folds = [r for r in report["runs"] if r["name"].startswith(f"grid-{k}-c")
                 and "-fold" in r["name"]]  # fmt: skip
        assert len(folds) == 6 and all(r["role"] == "part" for r in folds)
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("final", "role")
    assert tag["final"]["score"] == pytest.approx(built["final"]["value"], rel=1e-12)
    assert rows["final"]["params"]["model"] == rows[built["final"]["best_trial"]]["params"]["model"]
    assert (report["metric"], report["mode"]) == ("value", "max")
    curves = _evp_curves(report)
    for family in ("svc", "logreg"):
        members = [t["best"] for n, t in built.items() if n != "final" and t["model"] == family]
        if members:
            expected = expected_max_performance(members, mode="max").mean.tolist()
            assert curves[f"{family} ({len(members)})"] == pytest.approx(expected, rel=1e-12)
    at_constant_power(report, [f"trial-{k}" for k in range(4)] + ["final"], WATTS, READ_LAG_S)
    _in_every_format(home, "comprised 4 trials (4 finished) in 45 runs")
    _price_tag_lines_have_units(_text(home, "md"))
    _export_reads_as_the_report(home, "nested", report)


# ------------------------------------------------------------------------------- resumed study
def test_a_trial_killed_mid_run_is_lost_counted_and_scores_nothing(resumed_study):
    """SIGKILL in trial 2: Optuna leaves it RUNNING; greenprint reads it lost with its params
    and the cost it flushed (power x time, up to its last flush before the kill), counted in
    the price tag; the value it reported before dying is no score of a trial (it produced no
    model): not in the runs table, the JSON, EVP, nor the best trials."""
    home, built, report = resumed_study
    rows = rows_by_name(report)
    tag = report["price_tag"]
    states = {t["number"]: t["state"] for t in built["trials"]}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "RUNNING", 3: "COMPLETE", 4: "COMPLETE",
                      5: "COMPLETE"}  # fmt: skip
    killed = next(t for t in built["trials"] if t["number"] == 2)
    lost = rows["trial-2"]
    assert (lost["id"], lost["status"], lost["is_trial"]) == (killed["run"], "lost", True)
    assert lost["params"] == killed["params"]  # flushed while it ran
    assert {k: v["trials"] for k, v in tag["by_status"].items() if v["trials"]} == {
        "finished": 5,
        "lost": 1,
    }
    assert tag["by_status"]["lost"]["energy_kwh"] == pytest.approx(lost["energy_kwh"], rel=1e-12)
    # its run time ends at its last flush, at most a flush interval (and a sample) before the
    # kill
    end = lost["started_at"] + lost["duration_s"]
    assert built["killed_at"] - 0.5 < end <= built["killed_at"]
    at_constant_power(report, [f"trial-{k}" for k in range(6) if k != 2], WATTS, READ_LAG_S)
    # its energy: the power over its time up to its last meter sample (every 0.1 s), which
    # its last flush wrote with that energy (a flush's duration ends at its last sample)
    kwh, lag = WATTS * lost["duration_s"] / 3.6e6, WATTS * READ_LAG_S / 3.6e6
    assert lost["energy_kwh"] == pytest.approx(kwh, rel=1e-3, abs=lag)
    assert lost["score"] is None  # its last reported value, as if a finished trial
    for t in built["trials"]:
        if t["state"] == "COMPLETE":
            assert rows[f"trial-{t['number']}"]["score"] == pytest.approx(t["value"], rel=1e-12)
    md = _text(home, "md")
    table = md[md.index("## Runs") :]
    line = next(x for x in table.splitlines() if x.startswith("| trial-2 |"))
    assert line.split(" | ")[2] == "-", line
    best = min((t for t in built["trials"] if t["state"] == "COMPLETE"), key=lambda t: t["value"])
    assert (tag["final"]["name"], tag["final"]["rule"]) == (f"trial-{best['number']}", "best-trial")
    assert (report["metric"], report["mode"]) == ("val_loss", "min")
    _in_every_format(home, "comprised 6 trials (5 finished, 1 lost) in 6 runs")
    _price_tag_lines_have_units(md)
    _export_reads_as_the_report(home, "resumed", report)


# ------------------------------------------------------------------------------- greener
#: A number with an energy or a CO2-eq unit, as the reports write them.
_ENERGY = r"\d+(?:\.\d+)? (?:nWh|µWh|mWh|Wh|kWh|MWh)"
_CO2 = r"\d+(?:\.\d+)? (?:ng|µg|mg|g|kg|t) CO2-eq"


def _per_inference(row: dict) -> float:
    return row["energy_kwh_per_1000"] / 1000


def test_greener_break_evens_add_up_by_hand(greener_study):
    """Each variant's break-even is its extra training energy over its saving per inference
    against the baseline (never without a saving, trained or not; else 0 without training),
    in the JSON and the tables; the comparisons' runs are the price tag's greener role, the
    trained model its baseline; both comparisons (the API's and the CLI's) are in the report."""
    home, built, report = greener_study
    compared = {g["run_id"]: g for g in report["greener"]}
    assert sorted(compared) == sorted([built["run"], built["cli"]["run_id"]])
    md = _text(home, "md")
    for result in compared.values():
        rows = {r["name"]: r for r in result["rows"]}
        base = _per_inference(rows["baseline"])
        # the baseline timed twice: a variant within twice its two loops' distance is noise
        assert result["noise_fraction"] == rows["baseline"]["noise_fraction"] >= 0
        noise = 2 * result["noise_fraction"] * base
        for name, row in rows.items():
            if name == "baseline":
                assert row["break_even_inferences"] is None
                continue
            saving = base - _per_inference(row)
            training = row["training_energy_kwh"]
            assert row["within_noise"] is (abs(saving) <= noise), name
            if row["within_noise"]:  # no saving or loss told apart: no break-even
                assert row["break_even_inferences"] is None, name
            elif saving <= 0:  # saves nothing per inference, trained or not: never
                assert row["break_even_inferences"] is None, name
            elif not training:
                assert row["break_even_inferences"] == 0.0, name
            else:
                expected = training / saving
                assert row["break_even_inferences"] == pytest.approx(expected, rel=1e-9), name
        section = md[md.index(f"\n## Greener variants (run {result['run_id'][:8]})\n") :]
        section = section[: section.index("Provenance:")]
        for name, row in rows.items():
            line = next(x for x in section.splitlines() if x.startswith("| ") and f" {name} |" in x)
            cell = line.rstrip(" |").rsplit(" | ", 1)[1]
            if name == "baseline":
                assert cell == "-"
            elif row["within_noise"]:
                assert cell == "within noise", (name, cell)
            elif row["break_even_inferences"] is None:  # the table's word is the JSON's null
                assert cell == "never", (name, cell)
            elif not row["training_energy_kwh"]:
                assert cell == "0", (name, cell)
    api = {r["name"]: r for r in compared[built["run"]]["rows"]}
    assert (
        api["prune-50%"]["training_energy_kwh"] > 0 and api["distilled"]["training_energy_kwh"] > 0
    )
    tag = report["price_tag"]
    assert tag["roles"]["counts"]["baseline"] == 1 and tag["total"]["trials"] == 0
    greener_roots = [r for r in report["runs"] if r["role"] == "greener" and r["parent_id"] is None]
    assert sorted(r["id"] for r in greener_roots) == sorted(compared)
    assert tag["by_role"]["greener"]["energy_kwh"] == pytest.approx(
        sum(r["energy_kwh"] for r in greener_roots), rel=1e-9
    )
    _price_tag_lines_have_units(md)
    _export_reads_as_the_report(home, "green", report)


def test_greener_sections_write_every_number_with_its_unit(greener_study):
    """The lines under each greener table give the extra training as the report writes
    energy and CO2-eq ('775 µWh, 373 µg CO2-eq', read '0.000775 Wh, 0.000373 g CO2-eq'); each
    comparison's figure says which run it is (two read the same title); with a baseline that
    scored and no trial, the final run is not identified because there is no trial and no
    run with role 'final' (read 'no finished run has a score': the baseline and every
    variant had one)."""
    home, built, report = greener_study
    md = _text(home, "md")
    details = [x for x in md.splitlines() if x.startswith("- ") and "training " in x]
    assert len(details) == 2  # prune-50% (fine-tuned) and distilled
    for line in details:
        assert re.search(rf"training {_ENERGY}, {_CO2} \(runs ", line), line
    titles = [f["title"] for f in report["figures"] if f["id"].startswith("greener")]
    assert len(titles) == 2 and len(set(titles)) == 2, titles
    for run_id in (built["run"], built["cli"]["run_id"]):
        assert any(run_id[:8] in t for t in titles), titles
    for fmt in ("md", "html", "latex"):
        page = _text(home, fmt)
        assert "no finished run has a score" not in page, fmt
    assert "no finished trial has a score and no run has role 'final'" in md


# ------------------------------------------------------------------------------- workers
def test_spawned_workers_are_parts_of_one_trial_counted_once(spawned_workers):
    """Two ``spawn`` workers each tracked ``role="part"``: both link to the job's run (through
    the environment ``greenprint run`` set), which is one trial (read: a sweep of no trial,
    as its parts' shard varies and it logged no score of its own; the report then found no
    trial and no final run), scored by its parts' mean; their cost is inside the job's and
    counted once (the price tag is the job's own reading)."""
    home, built, report = spawned_workers
    rows = rows_by_name(report)
    job = rows["job"]
    for worker in built:
        row = rows[f"shard-{worker['shard']}"]
        assert (row["id"], row["parent_id"]) == (worker["id"], job["id"])
        assert worker["parent"] == job["id"]
        assert (row["role"], row["role_inferred"], row["is_trial"]) == ("part", False, False)
    tag = report["price_tag"]
    assert tag["roles"]["counts"] == {"trial": 1, "part": 2}
    assert (job["role"], job["role_inferred"], job["is_trial"]) == ("trial", True, True)
    assert job["score"] == pytest.approx(0.55, rel=1e-12) and job["score_source"] == "parts"
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("job", "best-trial")
    # the job's run measured its process tree, its workers in it: counted once, at the job's
    # reading (workers that ran at the same time share it out). Their own readings may add up
    # to more under load (the job's sampler missed part of their CPU: 0.607 against their
    # 0.673 uWh in one run of the whole suite): the price tag is the job's reading all the same
    assert tag["total"]["energy_kwh"] == pytest.approx(job["energy_kwh"], rel=1e-12)
    assert tag["total"]["runs"] == 3
    _in_every_format(home, "comprised 1 trial (1 finished) in 3 runs")
    _price_tag_lines_have_units(_text(home, "md"))
    _export_reads_as_the_report(home, "mp", report)
