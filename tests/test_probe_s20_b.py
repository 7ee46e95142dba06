"""What a new user of budgets, what-if, carbon, hardware and Prometheus found wrong (session 20).

Each test runs as a new user does (a script in an empty directory with a clean environment, the
CLI as typed) and checks a figure against its derivation from first principles, or the one line
a mistake gets.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint import prometheus
from greenprint.meters import MeterReading

#: Scrapes the process's own /metrics over loopback while a trial and its fold are open, then
#: writes a textfile once; prints what it read as JSON for the test.
NESTED_SCRAPE = """
import json, time, urllib.request
import greenprint as gp
from greenprint import prometheus
from prometheus_client.parser import text_string_to_metric_families

def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples]

def busy(seconds):
    t = time.time()
    while time.time() - t < seconds:
        sum(i * i for i in range(2000))

out = {}
with prometheus.serve(0) as server:
    with gp.track("trial", study="cv", region="DE", pue=1.2, sample_interval_s=0.1) as trial:
        busy(0.3)
        with gp.track("fold-0", role="part", sample_interval_s=0.1) as fold:
            busy(0.5)
            out["during"] = scrape(server.url)
            out["trial_j"] = trial.energy_kwh * 3.6e6
            out["fold_j"] = fold.energy_kwh * 3.6e6
        prometheus.write_textfile(".")
        out["last"] = scrape(server.url)
out["ids"] = {"trial": trial.id, "fold": fold.id}
json.dump(out, open("scraped.json", "w"))
"""


def test_prometheus_sums_no_nested_run_twice_and_leaves_no_stale_textfile(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/prometheus.md said "`sum by (study)` of the counters gives a study's live total",
    but a fold nested in its trial was exported beside it with nothing to tell them apart: the
    sum counted the fold's energy twice (trial 1.7 J + fold 2.3 J read 4.0 J while the trial,
    which holds the fold, had spent 1.7 J). Now every series has ``nested`` ("true" for the
    fold) and the sum of ``nested="false"`` is the trial's own figure. And the docs' example,
    ``prometheus.write_textfile("textfiles")``, left ``greenprint_<pid>.prom`` behind when the
    script ended: node_exporter reported the ended run, "runs_active 1", for ever. The file a
    process wrote is now removed when it exits."""
    home = empty_home(tmp_path_factory, "s20b-prom")
    (home / "script.py").write_text(NESTED_SCRAPE, encoding="utf-8")
    done = run_in(home, sys.executable, "script.py")
    assert done.returncode == 0, done.stderr
    out = json.loads((home / "scraped.json").read_text())
    ids = out["ids"]
    energy = [
        (labels, v) for name, labels, v in out["during"] if name.startswith("greenprint_energy")
    ]
    nested = {labels["run_id"]: labels["nested"] for labels, _ in energy}
    assert nested == {ids["trial"]: "false", ids["fold"]: "true"}
    top = sum(v for labels, v in energy if labels["nested"] == "false")
    trial_j = sum(v for labels, v in energy if labels["run_id"] == ids["trial"])
    fold_j = sum(v for labels, v in energy if labels["run_id"] == ids["fold"])
    assert top == trial_j and fold_j > 0
    # read just after the scrape, the trial's figure is at least the scraped one (1e-9 J: the
    # sum of components in J against their sum in kWh times 3.6e6)
    assert trial_j <= out["trial_j"] + 1e-9
    # the counters against the ledger: the ledger's final figures are at least the last scrape,
    # and CO2-eq is energy x PUE x Germany's 380.95 g/kWh
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db").runs(study="cv")}
    trial = runs["trial"]
    assert runs["fold-0"].energy_kwh < trial.energy_kwh  # the fold's work is inside the trial's
    last = {
        (name, labels.get("component")): v
        for name, labels, v in out["last"]
        if labels.get("run_id") == ids["trial"]
    }
    last_j = sum(v for (name, _), v in last.items() if name.startswith("greenprint_energy"))
    assert 0 < last_j <= trial.energy_kwh * 3.6e6 + 1e-9
    grams = last[("greenprint_emissions_grams_total", None)]
    assert grams == pytest.approx(last_j / 3.6e6 * 1.2 * 380.95, rel=1e-9)
    assert trial.emissions_kg * 1e3 == pytest.approx(trial.energy_kwh * 1.2 * 380.95, rel=1e-9)
    assert list(home.glob("*.prom")) == []  # the textfile went with its process


#: An Optuna search of 30 trials of about 0.3 s each under a study budget of 1 s, with
#: ``catch=(gp.BudgetExceeded,)`` (as the docs say, to go on after a trial's own budget): one
#: objective that logs its loss through its run every 0.05 s, one that never calls its run.
OPTUNA_SWEEP = """
import json, time
import optuna
import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback
from greenprint.tracking import active_runs

optuna.logging.set_verbosity(optuna.logging.ERROR)
out = {}
for study_name, logs in (("logged", True), ("silent", False)):
    cap = gp.Budget(s=1.0, per="study", on_exceed="stop")
    cb = GreenprintCallback(study=study_name, budget=cap, sample_interval_s=0.05,
                            flush_interval_s=0.1)

    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        for step in range(6):
            time.sleep(0.05)  # one training step
            if logs:
                list(active_runs())[-1].log(loss=(x - 1) ** 2, step=step)
        return (x - 1) ** 2

    study = optuna.create_study(study_name=study_name)
    study.optimize(cb.track(objective), n_trials=30, callbacks=[cb],
                   catch=(gp.BudgetExceeded,))
    out[study_name] = len(study.trials)
json.dump(out, open("trials.json", "w"))
"""


def test_a_study_budget_ends_an_optuna_search_that_catches_budget_exceeded(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/integrations.md: pass ``catch=(gp.BudgetExceeded,)`` to go on after a trial's
    budget, and "with a study budget the next trial raises before its objective is called, so
    the search stops there". Under that catch it did not stop: a 30-trial search over a study
    budget of 1 s ran every remaining trial, each raising at its start, and left 27 empty
    'interrupted' runs in the ledger (Optuna: 30 trials, 27 FAIL). The search now ends after
    the trial that crossed the study budget (the one that went over it while its objective
    logged; the next one, raised at its start, when the objective never calls its run)."""
    home = empty_home(tmp_path_factory, "s20b-optuna")
    (home / "search.py").write_text(OPTUNA_SWEEP, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    trials = json.loads((home / "trials.json").read_text())
    ledger = gp.Ledger(home / "greenprint.db")
    for study, extra in (("logged", 0), ("silent", 1)):
        runs = sorted(ledger.runs(study=study), key=lambda r: r.started_at)
        finished = [r for r in runs if r.status == "finished"]
        # each trial takes about 0.3 s: the third or fourth crosses 1 s
        assert 3 <= len(finished) + 1 <= 5, [(r.name, r.status) for r in runs]
        assert len(runs) == len(finished) + 1 + extra == trials[study]
        assert all(r.status == "interrupted" for r in runs[len(finished) :])
        assert all("study budget_s 1 s" in (r.error or "") for r in runs[len(finished) :])
        # the price tag's time stops within one step (0.05 s) of 1 s: a run's own time
        spent = sum(r.duration_s for r in runs)
        assert 1.0 <= spent < (1.5 if extra == 0 else 1.6)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_the_metrics_endpoint_binds_ipv6_loopback(tmp_path_factory: pytest.TempPathFactory):
    """``greenprint run --prometheus-port 9464 --prometheus-host ::1`` (an IPv6-only node)
    read "greenprint: error: cannot serve Prometheus metrics on ::1:9464: Address family for
    hostname not supported", exit 2: the server was IPv4 only, though its URL is written with
    brackets for IPv6. It now binds the host's address family and the command scrapes itself
    at http://[::1]:PORT/metrics."""
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    home = empty_home(tmp_path_factory, "s20b-ipv6")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    scrape = (
        "import urllib.request, sys\n"
        f"url = 'http://[::1]:{port}/metrics'\n"
        "open('scraped.txt', 'w').write(urllib.request.urlopen(url, timeout=10).read().decode())\n"
    )
    (home / "scrape.py").write_text(scrape, encoding="utf-8")
    done = run_in(
        home, GREENPRINT, "run", "--study", "v6", "--prometheus-port", str(port),
        "--prometheus-host", "::1", "--", sys.executable, "scrape.py",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Prometheus metrics at http://[::1]:{port}/metrics" in done.stderr
    (run,) = gp.Ledger(home / "greenprint.db").runs(study="v6")
    assert f'run_id="{run.id}"' in (home / "scraped.txt").read_text()


#: A training loop given an FPO budget that records no FPO, then one that does.
FPO_UNRECORDED = """
import greenprint as gp

with gp.track("forgot", study="fpo", budget_fpo=1e12, on_exceed="stop") as run:
    for step in range(3):
        run.log(loss=1 / (step + 1), step=step)
with gp.track("counted", study="fpo", budget_fpo=1e12, on_exceed="stop") as run:
    for step in range(3):
        run.add_fpo(10**9)
        run.log(loss=1 / (step + 1), step=step)
"""


def test_an_fpo_budget_on_a_run_that_records_no_fpo_says_it_never_acted(
    tmp_path_factory: pytest.TempPathFactory,
):
    """``gp.track(..., budget_fpo=1e12, on_exceed="stop")`` on a loop that never calls
    ``run.add_fpo`` (FPO is only what the run records) ended ``finished`` without a word: the
    user believed the loop capped at 1 TFPO. The run now says once, at its end, that it
    recorded no FPO and the budget was never checked, and how to record it; a run that records
    its FPO hears nothing."""
    home = empty_home(tmp_path_factory, "s20b-fpo")
    (home / "loop.py").write_text(FPO_UNRECORDED, encoding="utf-8")
    done = run_in(home, sys.executable, "loop.py")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "FPO" in line]
    (forgot,) = [r for r in gp.Ledger(home / "greenprint.db").runs(study="fpo") if r.fpo is None]
    assert lines == [
        f"greenprint: run {forgot.id[:8]} recorded no FPO, so its budget_fpo 1 TFPO was never "
        "checked: record its FPO with run.add_fpo(...) or run.set(fpo=...) "
        "(greenprint.count_fpo or training_fpo count a PyTorch model's)"
    ]
    assert forgot.status == "finished"


def test_a_time_budget_stops_the_command_when_it_runs_out_not_at_the_next_sample(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/budgets.md's ``greenprint run --budget-s 0.6 ... -- python train.py`` read "over
    budget: time 1.01 s > budget_s 0.6 s": the budget was checked at meter samples only (1 s
    apart by default), though a run's time is known at every instant; with
    ``--sample-interval 5`` a 0.5 s budget let the command run 5 s. The time budget is now
    checked when it runs out: the command gets SIGTERM at 0.5 s, whatever the sample interval,
    and the run records about 0.5 s."""
    home = empty_home(tmp_path_factory, "s20b-deadline")
    done = run_in(
        home, GREENPRINT, "run", "--study", "deadline", "--budget-s", "0.5",
        "--sample-interval", "5", "--flush-interval", "5", "--",
        sys.executable, "-c", "import time; time.sleep(30)",
    )  # fmt: skip
    assert done.returncode == 143, done.stderr  # SIGTERM
    (run,) = gp.Ledger(home / "greenprint.db").runs(study="deadline")
    assert run.status == "interrupted"
    assert 0.5 <= run.duration_s < 1.5
    (line,) = [x for x in done.stderr.splitlines() if "is over budget" in x and "sending" in x]
    spent = float(line.split("time ", 1)[1].split(" s >", 1)[0])
    assert 0.5 < spent < 1.0 and "budget_s 0.5 s" in line


class _TenWatts:
    """The CPU at 10 W, all of it the run's: J = 10 x the seconds since start()."""

    components = ("cpu",)
    provenance = {"cpu": "test:10 W"}

    def __init__(self) -> None:
        self.t0 = 0.0

    def start(self) -> None:
        self.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        joules = 10.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self) -> None:
        pass


def test_the_power_gauge_scraped_between_samples_reads_the_measured_power():
    """Scraped more often than the run samples its meters (a 5 s scrape of a run sampled
    every 10 s; here every 0.05 s against 0.3 s), ``greenprint_power_watts`` of a CPU drawing a
    steady 10 W read 0 W, 0 W, 0 W, then about 60 W: the energy counter moves at samples
    only, and the gauge divided its steps by the wall time between scrapes. The power is now
    taken between the meter samples: 10 W at every scrape once the first sample is in, and
    0 W once the run has ended."""
    collector = prometheus.Collector()

    def watts(run: gp.Run) -> list[float]:
        text = collector.render([run])
        return [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("greenprint_power_watts{")
        ]

    readings = []
    with gp.track("steady", ledger=False, meters=_TenWatts(), sample_interval_s=0.3) as run:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            readings.extend(watts(run))
            time.sleep(0.05)
    assert len(readings) >= 10  # none before the first sample: no energy series yet
    assert readings == pytest.approx([10.0] * len(readings), rel=0.1)
    assert watts(run)[-1] == pytest.approx(10.0, rel=0.1)  # the samples up to its end
    assert watts(run) == [0.0]  # ended: no more energy


#: Five folds of a trial in two worker threads, each adding 0.1 GFPO ten times, under the
#: trial's stop budget of 2.5 GFPO.
THREADED_FOLDS = """
import time
from concurrent.futures import ThreadPoolExecutor
import greenprint as gp

def fold(k):
    with gp.track(f"fold-{k}", role="part") as run:
        for _ in range(10):
            time.sleep(0.02)  # one batch
            run.add_fpo(10**8)

try:
    with gp.track("trial", study="cv", budget_fpo=2.5e9, on_exceed="stop") as trial:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(fold, range(5)))
except gp.BudgetExceeded as e:
    print(f"stopped: {e}")
"""


def test_a_trials_stop_budget_stops_its_folds_in_other_threads_too(
    tmp_path_factory: pytest.TempPathFactory,
):
    """A cross-validation in a thread pool (two folds at a time) under its trial's
    ``budget_fpo=2.5e9, on_exceed="stop"``: the budget was raised once, in the fold that
    crossed it; the fold running beside it went on to its end, and the pool then ran the last
    fold whole, 'finished': 4.3 GFPO recorded against 2.5 GFPO. The stop is now raised once in
    each nested run, so every fold running then, or started after, stops at its next call:
    2.8 GFPO at most (the crossing step, one more step of the fold beside it, the first of the
    one started after)."""
    home = empty_home(tmp_path_factory, "s20b-threads")
    (home / "cv.py").write_text(THREADED_FOLDS, encoding="utf-8")
    done = run_in(home, sys.executable, "cv.py")
    assert done.returncode == 0, done.stderr
    assert "stopped: run " in done.stdout and "> budget_fpo 2.5 GFPO" in done.stdout
    runs = {r.name: r for r in gp.Ledger(home / "greenprint.db").runs(study="cv")}
    assert runs["trial"].status == "interrupted"
    folds = [runs[f"fold-{k}"] for k in range(5)]
    assert [f.status for f in folds[:2]] == ["finished", "finished"]  # 2 GFPO: under
    assert [f.status for f in folds[2:]] == ["interrupted"] * 3
    assert all(f.error == runs["trial"].error for f in folds[2:])
    assert 2.5e9 < sum(f.fpo or 0 for f in folds) <= 2.8e9
