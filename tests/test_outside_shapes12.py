"""Session 37, an outside check: one thesis chapter's study spread over three ledgers, merged.

Built the way a user builds it, in a fresh empty directory with a clean environment (no
``GREENPRINT_*`` variable, no configuration), as on three machines, each its own ledger:

* ``a.db``: ``greenprint run --role baseline -- python baseline.py``, then an Optuna search
  through greenprint's callback (8 trials, a ``MedianPruner`` that prunes 2, one trial raising,
  each trial 3 cross-validation folds as child runs);
* ``b.db``: a scikit-learn ``RandomizedSearchCV(n_jobs=2)`` through ``track_search`` (its refit
  a ``final`` run inside the sweep), and ``greenprint run --role learning-curve`` around a
  script that tracks one run per training-set fraction;
* ``c.db``: the final retrain (``role="final"``, scored on a held-out split), a trial killed
  with SIGKILL (``lost``) and a ``greenprint run`` stopped by SIGTERM (``interrupted``);

then merged (``greenprint ledger merge a.db b.db c.db``, twice) and read by ``greenprint
report`` and ``greenprint ledger export``. The price tag is checked against the exported rows
summed here, not by greenprint. Before: the learning curve, whose points are the parts of the
``learning-curve`` run (it has no ``dataset_size`` of its own), was not drawn ("no learning
curve: no run carries both a dataset_size and a value of metric 'accuracy'"); and the final
run was the search's refit (inside its sweep, scored by cross-validation) when machine C's
held-out retrain had started before it ("the last started of the 2 runs with role 'final'").
"""

from __future__ import annotations

import csv
import json
import math
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, in_every_format, report_text, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from integrations._frameworks import need_installed

need_installed("optuna", "optuna")
need_installed("sklearn", "sklearn")

STUDY = "thesis-ch3"

BASELINE = """
import greenprint as gp
with gp.track("majority") as run:  # under greenprint run --role baseline: its part
    sum(i * i for i in range(20000))
    run.log(accuracy=0.5)
"""

#: Trials 0-4 finish; 5 raises; 6 and 7 score below the median at their first fold: pruned.
OPTUNA = """
import optuna
import greenprint as gp
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
ACC = [0.80, 0.86, 0.83, 0.84, 0.85, 0.9, 0.60, 0.70]


def objective(trial):
    alpha = trial.suggest_float("alpha", 1e-8, 10.0, log=True)
    if trial.number == 5:
        raise ValueError("diverged: loss is NaN")
    scores = []
    for k in range(3):
        with gp.track(f"fold{k}", params={"fold": k}) as fold:
            sum(i * i for i in range(20000))
            fold.log(accuracy=ACC[trial.number] + 0.01 * (k - 1))
        scores.append(ACC[trial.number] + 0.01 * (k - 1))
        trial.report(sum(scores) / len(scores), k)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return sum(scores) / len(scores)


cb = GreenprintCallback(ledger="a.db", study="thesis-ch3", metric_names=["accuracy"])
study = optuna.create_study(study_name="thesis-ch3", direction="maximize",
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
for number in range(8):
    study.enqueue_trial({"alpha": 10.0 ** -number})
study.optimize(cb.track(objective), n_trials=8, callbacks=[cb], catch=(ValueError,))
"""

SKLEARN = """
from sklearn.datasets import load_iris
from sklearn.model_selection import RandomizedSearchCV
from sklearn.tree import DecisionTreeClassifier
from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
search = RandomizedSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4]},
                            n_iter=2, cv=3, n_jobs=2, random_state=0)
track_search(search, X, y, ledger="b.db", study="thesis-ch3")
"""

LEARNING_CURVE = """
import greenprint as gp
for fraction, acc in {0.25: 0.70, 0.5: 0.78, 1.0: 0.84}.items():
    with gp.track(f"lc-{fraction}", params={"alpha": 0.1, "fraction": fraction},
                  dataset_size=int(1200 * fraction)) as run:
        sum(i * i for i in range(20000))
        run.log(accuracy=acc)
"""

FINAL = """
import greenprint as gp
with gp.track("final-retrain", study="thesis-ch3", ledger="c.db", role="final",
              params={"alpha": 0.1}, dataset_size=1200) as run:
    sum(i * i for i in range(20000))
    run.log(test_accuracy=0.87)
"""

KILLED = """
import os, signal, time
import greenprint as gp
with gp.track("long-alpha1e-3", study="thesis-ch3", ledger="c.db", role="trial",
              params={"alpha": 1e-3}, sample_interval_s=0.1, flush_interval_s=0.1) as run:
    run.log(accuracy=0.5, step=1)
    time.sleep(0.5)  # a few flushes: its cost so far is in the ledger
    os.kill(os.getpid(), signal.SIGKILL)
"""

SLOW = """
import pathlib, time
pathlib.Path("slow.started").touch()
time.sleep(60)
"""


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def thesis(tmp_path_factory):
    """The study on three "machines", each ledger then merged into ``a.db`` (a copy of each
    node's ledger kept as ``node-*.db``): the report's JSON and the two exports."""
    home = _empty(tmp_path_factory, "thesis")
    for name, text in [("baseline.py", BASELINE), ("search_optuna.py", OPTUNA),
                       ("search_sklearn.py", SKLEARN), ("lc.py", LEARNING_CURVE),
                       ("final.py", FINAL), ("killed.py", KILLED), ("slow.py", SLOW)]:  # fmt: skip
        (home / name).write_text(text, encoding="utf-8")
    run = [GREENPRINT, "run", "-q", "--study", STUDY]
    # machine A
    _ok(run_in(home, *run, "--ledger", "a.db", "--role", "baseline", "--", sys.executable,
               "baseline.py"))  # fmt: skip
    _ok(run_in(home, sys.executable, "search_optuna.py"))
    # machine C's retrain started before machine B's search (and its refit)
    _ok(run_in(home, sys.executable, "final.py"))
    # machine B
    _ok(run_in(home, sys.executable, "search_sklearn.py"))
    _ok(run_in(home, *run, "--ledger", "b.db", "--role", "learning-curve", "--name",
               "learning-curve", "--", sys.executable, "lc.py"))  # fmt: skip
    # machine C
    killed = run_in(home, sys.executable, "killed.py")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    slow = subprocess.Popen([*run, "--ledger", "c.db", "--param", "alpha=0.01", "--name",
                             "long-alpha1e-2", "--", sys.executable, "slow.py"], cwd=home,
                            env=clean_env(), stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (home / "slow.started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    slow.send_signal(signal.SIGTERM)  # a scheduler's preemption
    assert slow.wait(timeout=60) == 128 + signal.SIGTERM, slow.stderr.read()[-3000:]  # type: ignore[union-attr]
    for node in "abc":  # each node's ledger as it was, copied for the PostgreSQL merge
        with closing(sqlite3.connect(home / f"{node}.db")) as db:
            with closing(sqlite3.connect(home / f"node-{node}.db")) as copy:
                db.backup(copy)
    merged = [run_in(home, GREENPRINT, "ledger", "merge", "a.db", "b.db", "c.db") for _ in "12"]
    for done in merged:
        _ok(done)
    # no figure's image is checked: its data is the JSON's (the same with or without plots)
    report = _report(home, "--ledger", "a.db", "--study", STUDY, "--no-plots")
    return home, merged, report, _exports(home, "a.db")


def _exports(home: Path, ledger: str) -> tuple[list[dict[str, str]], list[dict]]:
    """``greenprint ledger export`` of the study as CSV and as JSON."""
    for fmt in ("csv", "json"):
        _ok(run_in(home, GREENPRINT, "ledger", "export", "--ledger", ledger, "--study", STUDY,
                   "--format", fmt, "--out", f"runs.{fmt}"))  # fmt: skip
    with (home / "runs.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    items = json.loads((home / "runs.json").read_text(encoding="utf-8"))["runs"]
    return rows, items


def _sums(rows: list[dict], key: str) -> float:
    return sum(float(r[key] or 0) for r in rows)


def test_three_ledgers_merged_price_the_study_as_the_sum_of_its_root_rows(thesis):
    """Merged twice: the second adds nothing. Every run read once: the price tag's energy,
    CO2-eq and run time are the sums of the exported root rows (folds, candidates, pool workers
    and the learning curve's runs inside them), by status too; the trials are those that ran,
    by status; the final run is the retrain given role 'final'; the baseline is a reference;
    the learning curve is drawn from the runs inside the 'learning-curve' run."""
    home, merged, report, (rows, items) = thesis
    assert "0 runs added, 0 updated" in merged[1].stdout
    assert {r["id"]: r["energy_kwh"] for r in rows} == {
        i["id"]: repr(i["energy_kwh"]) if i["energy_kwh"] is not None else "" for i in items
    }
    tag = report["price_tag"]
    ids = {r["id"] for r in rows}
    assert len(rows) == tag["total"]["runs"]
    roots = [r for r in rows if not r["parent_id"]]
    assert all(r["parent_id"] in ids and r["contained"] == "True" for r in rows if r["parent_id"])
    for key in ("energy_kwh", "emissions_kg", "duration_s"):
        assert tag["total"][key] == pytest.approx(_sums(roots, key), rel=1e-9), key
        by_status: dict[str, float] = defaultdict(float)
        for r in roots:
            by_status[r["status"]] += float(r[key] or 0)
        for status, spent in by_status.items():
            assert tag["by_status"][status][key] == pytest.approx(spent, rel=1e-9), (key, status)
        by_role = sum(v[key] for v in tag["by_role"].values())
        assert by_role == pytest.approx(tag["total"][key], rel=1e-9), key
    trials = {s: v["trials"] for s, v in tag["by_status"].items() if v["trials"]}
    assert trials == {"finished": 7, "failed": 1, "pruned": 2, "lost": 1, "interrupted": 1}
    counted: dict[str, int] = defaultdict(int)
    for r in rows:
        counted[r["role"]] += r["role"] == "trial"
    assert tag["total"]["trials"] == counted["trial"] == 12
    by_name = {r["name"]: r for r in rows}
    final = by_name["final-retrain"]
    assert (tag["final"]["run_id"], tag["final"]["role"]) == (final["id"], "final")
    rule = "the one not inside a sweep of the 2 runs with role 'final', none with a value of "
    assert tag["final"]["rule_text"] == rule + "'accuracy'"
    refit = next(r for r in rows if r["name"].endswith("-refit"))
    assert tag["by_role"]["final"]["energy_kwh"] == pytest.approx(
        _sums([final, refit], "energy_kwh"), rel=1e-9
    )
    for role, name in (("baseline", "baseline.py"), ("learning-curve", "learning-curve")):
        assert tag["by_role"][role]["energy_kwh"] == pytest.approx(
            float(by_name[name]["energy_kwh"]), rel=1e-9
        )
    # expected max performance over the 12 trials only, the baseline a reference line
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    series = [s for panel in evp["panels"] for s in panel["series"]]
    assert max(len(s["x"]) for s in series) == 12
    assert any(s["role"] == "baseline" and s["y"][0] == 0.5 for s in series)
    assert "| baseline.py (baseline) |" in report_text(home, "md")
    curve = next(f for f in report["figures"] if f["id"] == "learning_curve")
    (mean,) = [s for s in curve["panels"][0]["series"] if s["role"] == "mean"]
    assert (mean["x"], mean["y"]) == ([300, 600, 1200], [0.70, 0.78, 0.84])
    assert "3 runs inside a run with role 'learning-curve'" in curve["caption"]
    assert not [n for n in report["notes"] if "no learning curve" in n]
    # A: baseline 2, Optuna 8 trials + 17 folds; B: sweep, 2 candidates, 6 folds, refit,
    # learning curve 4; C: 3
    assert tag["total"]["runs"] == 44
    in_every_format(
        home, "12 trials (7 finished, 1 failed, 1 interrupted, 2 pruned, 1 lost) in 44 runs"
    )


@pytest.mark.slow  # a PostgreSQL server: about 5 s more
@pytest.mark.postgres
def test_the_node_ledgers_merged_into_postgresql_report_as_the_sqlite_merge(thesis, pg_server):
    """The three node ledgers merged into a fresh PostgreSQL ledger (and again: nothing added)
    report the study as the SQLite merge does, and export the same rows."""
    home, _, sqlite_report, (sqlite_rows, _) = thesis
    sqlite_report = dict(sqlite_report)
    url = pg_server.new_database()
    for _ in "12":
        nodes = (f"node-{n}.db" for n in "abc")
        done = run_in(home, GREENPRINT, "ledger", "merge", url, *nodes)
        _ok(done)
    assert "0 runs added, 0 updated, 44 already there" in done.stdout
    report = _report(home, "--ledger", url, "--study", STUDY, "--format", "json")
    rows, _ = _exports(home, url)
    for key in ("ledger", "generated_at"):
        report.pop(key), sqlite_report.pop(key)
    assert json.loads(json.dumps(report)) == json.loads(json.dumps(sqlite_report))
    assert rows == sqlite_rows
    assert not math.isnan(report["price_tag"]["total"]["energy_kwh"])
