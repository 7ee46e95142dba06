"""Outside checks, session 22: an Optuna trial killed and retried is one trial.

A study measured by greenprint's Optuna callback (``study.optimize(cb.track(objective),
callbacks=[cb])``) on a SQLite storage with a heartbeat and Optuna's
``RetryFailedTrialCallback``, built the way users build one: a script run in a fresh empty
directory with a clean environment, killed in the middle of a trial (``kill -9``, or SIGTERM as
a scheduler's preemption), then run again with ``load_if_exists=True``. Optuna fails the killed
trial and retries its params as a new trial (system attribute ``failed_trial``). One
configuration is one trial: the killed attempt's run is a ``part`` of the retry's,
``interrupted`` (a ``lost`` run read as interrupted at its last heartbeat), its cost counted
once, its params kept; the report's trial count is Optuna's completed trials. Before: every
attempt a trial of its own (4 trials where Optuna completed 3), the ``kill -9`` one ``lost``
with params ``{}`` when it died before its first flush, not linked to its retry.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _docs_fork import ForkServer
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text, run_in
from integrations._frameworks import need_installed

#: An Optuna search measured by greenprint: 8 steps of 5 ms per trial, each reported.
#: ``argv[1]``: "KILL" or "TERM" kills this process with that signal in the trial numbered
#: ``argv[2]`` at step ``argv[3]`` (0: right after its suggest, before the run's first flush,
#: once Optuna has its first heartbeat: a kill before that was a trial Optuna never retries);
#: ``argv[4]``: "retry" gives the storage a heartbeat and RetryFailedTrialCallback(max_retry=2),
#: "plain" a storage without either; ``argv[5]``: the number of trials to run.
SEARCH = """
import json, os, signal, sqlite3, sys, time, warnings
warnings.simplefilter("ignore")
import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from greenprint.integrations.optuna import GreenprintCallback

optuna.logging.set_verbosity(optuna.logging.ERROR)
kill, number, at, how, n_trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    sys.argv[4], int(sys.argv[5])
storage = "sqlite:///optuna.db"
if how == "retry":
    storage = RDBStorage(storage, heartbeat_interval=1, grace_period=1,
                         failed_trial_callback=RetryFailedTrialCallback(max_retry=2))


def heartbeat_recorded(trial):
    # Optuna's heartbeat thread has written this trial's first beat: Optuna fails and retries
    # only a trial with one (killed before it, the trial stays RUNNING for ever)
    with sqlite3.connect("optuna.db", timeout=60) as db:
        return db.execute("SELECT 1 FROM trial_heartbeats WHERE trial_id = ?",
                          (trial._trial_id,)).fetchone() is not None


def flushed(trial):
    # greenprint's run of this trial has flushed (every 0.1 s) its cost so far and its params
    # (the callback puts them at one flush, the next writes them) to its ledger
    with sqlite3.connect("greenprint.db", timeout=60) as db:
        row = db.execute("SELECT energy_kwh, params FROM runs WHERE study = 'hp' AND name = ?",
                         (f"trial-{trial.number}",)).fetchone()
    return row is not None and (row[0] or 0) > 0 and "lr" in json.loads(row[1] or "{}")


def objective(trial):
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    loss = 1.0
    for step in range(8):
        if kill != "none" and trial.number == number and step == at:
            if at:  # mid-trial: once its run has flushed its cost so far, busy box or not, and
                # (retry) Optuna's thread has beaten; up to 60 s
                give_up = time.time() + 60
                while time.time() < give_up and not (
                        flushed(trial) and (how != "retry" or heartbeat_recorded(trial))):
                    time.sleep(0.01)
            elif how == "retry":  # right after the suggest, once Optuna's thread has beaten
                while not heartbeat_recorded(trial):
                    time.sleep(0.002)
            os.kill(os.getpid(), getattr(signal, "SIG" + kill))
        t = time.time()
        while time.time() - t < 0.005:
            pass
        loss *= 1 - lr
        trial.report(loss, step)
    return loss


cb = GreenprintCallback(sample_interval_s=0.05, flush_interval_s=0.1)
study = optuna.create_study(study_name="hp", storage=storage, load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=0))
study.optimize(cb.track(objective), n_trials=n_trials, callbacks=[cb])
"""


#: What every run of the search imports before it starts: Optuna with its RDB storage
#: (SQLAlchemy, Alembic), about 0.9 s of CPU of a run's 1.9 s. The file's 13 runs are children
#: of one fork server that imported them (:mod:`_docs_fork`, as ``_script_fork`` serves the
#: Lightning scripts): each what ``python search.py ARGS`` in its directory would be, its
#: environment the new user's, killed by its own signal as a fresh process is.
OPTUNA_PRELOAD = [
    ["optuna"],
    ["optuna.storages._rdb.storage"],
    ["optuna.storages._rdb.models"],
    ["alembic.command"],
    ["alembic.migration"],
    ["alembic.script"],
    ["sqlalchemy.dialects.sqlite"],
]


@pytest.fixture(scope="module")
def optuna_server(tmp_path_factory):
    """A fork server that imported :data:`OPTUNA_PRELOAD`, or ``None`` where one cannot serve
    (a thread started, a module of this project imported): the runs are fresh processes."""
    need_installed("optuna", "optuna")
    server = ForkServer(tmp_path_factory.mktemp("optuna-server"), clean_env(), OPTUNA_PRELOAD)
    if server.ready["project_modules"] or server.ready["threads"] != 1:
        server.close()
        server = None
    yield server
    if server is not None:
        server.close()


def _search(home: Path, server: ForkServer | None, *args: str, killed: bool) -> None:
    if server is not None:
        done = server.run_script("search.py", list(args), home, clean_env(), timeout=300)
    else:
        done = run_in(home, sys.executable, "search.py", *args)
    if killed:
        assert done.returncode != 0, done.stderr[-3000:]
        if args[3] == "retry":  # a storage without a heartbeat ("plain") has no grace period
            _heartbeats_stale(home)
    else:
        assert done.returncode == 0, done.stderr[-3000:]


def _heartbeats_stale(home: Path, grace_s: float = 1.0, limit_s: float = 60.0) -> None:
    """Wait until no running trial's last heartbeat is within the storage's grace period
    (``grace_s``, the script's 1 s) of the database's clock, as Optuna reads it when the search
    runs again (``RDBStorage._get_stale_trial_ids``: ``now() - heartbeat > grace``; SQLite keeps
    both to the second, so 1 to 2 s after the last beat), instead of a fixed wait. Up to
    ``limit_s``."""
    give_up = time.monotonic() + limit_s
    with closing(sqlite3.connect(home / "optuna.db", timeout=60)) as db:
        while time.monotonic() < give_up:
            beats = db.execute(
                "SELECT h.heartbeat FROM trial_heartbeats h JOIN trials t USING (trial_id)"
                " WHERE t.state = 'RUNNING'"
            ).fetchall()
            (now,) = db.execute("SELECT CURRENT_TIMESTAMP").fetchone()
            grace = timedelta(seconds=grace_s)
            if all(
                datetime.fromisoformat(now) - datetime.fromisoformat(beat) > grace
                for (beat,) in beats
            ):
                return
            time.sleep(0.05)


def _searched(
    home: Path, server: ForkServer | None, *kills: tuple[str, int, int], how: str = "retry"
) -> tuple[dict, list]:
    """The search killed as each of ``kills`` says (signal, trial number, step), three trials
    asked the first time and two each time after, then run to its end for two more; the JSON
    report and Optuna's trials."""
    (home / "search.py").write_text(SEARCH, encoding="utf-8")
    for i, (signal, number, step) in enumerate(kills):
        n_trials = "3" if i == 0 else "2"
        _search(home, server, signal, str(number), str(step), how, n_trials, killed=True)
    _search(home, server, "none", "0", "0", how, "2", killed=False)
    import optuna

    study = optuna.load_study(study_name="hp", storage=f"sqlite:///{home / 'optuna.db'}")
    report = _report(home, "--study", "hp", "--format", "json", "--format", "md", "--no-plots")
    return report, study.trials


def _by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["runs"]}


def _counted_once(home: Path, report: dict, trials: list) -> None:
    """The price tag's trials are Optuna's completed ones, its energy every attempt's once."""
    total = report["price_tag"]["total"]
    assert total["trials"] == sum(t.state.name == "COMPLETE" for t in trials) == 3
    assert total["runs"] == len(trials) == len(report["runs"])
    # an attempt killed before its first flush recorded no energy: null, unknown, never 0
    # (session 41), counted beside the sum of the others
    known = [r["energy_kwh"] for r in report["runs"] if r["energy_kwh"] is not None]
    assert total["energy_kwh"] == pytest.approx(sum(known))
    assert total["energy_unknown"] == len(report["runs"]) - len(known)
    assert "Study **hp**: 3 trials" in report_text(home, "md")


@pytest.mark.parametrize(("signal", "step"), [("KILL", 0), ("KILL", 4), ("TERM", 4)])
def test_an_optuna_trial_killed_and_retried_is_one_trial_its_killed_attempt_a_part(
    tmp_path_factory, optuna_server, signal, step
):
    """Trial 1 killed (``kill -9`` right after its suggest, before its run's first flush, or
    mid-trial; SIGTERM mid-trial), the search run again: Optuna fails trial 1 and retries its
    params as trial 2. The report: trial-2 the trial of that configuration, trial-1 its part,
    ``interrupted`` (lost: at its last heartbeat, the error naming the retry; SIGTERM: as it
    recorded), with its params and its cost added once; 3 trials, Optuna's 3 completed, of 4
    runs. Before: 4 trials, trial-1 ``lost`` with params ``{}`` (killed before a flush)."""
    home = _empty(tmp_path_factory, f"optuna-retry-{signal}-{step}")
    report, trials = _searched(home, optuna_server, (signal, 1, step))
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].system_attrs["failed_trial"] == 1
    rows = _by_name(report)
    killed, retried = rows["trial-1"], rows["trial-2"]
    assert killed["role"] == "part" and killed["parent_id"] == retried["id"]
    assert killed["status"] == "interrupted"
    if signal == "KILL":
        assert killed["error"] == (
            "its process ended without a final write; Optuna's retry of trial 1 (as trial 2) "
            "ran it again"
        )
        with gp.Ledger(home / "greenprint.db") as led:
            record = led.run(killed["id"])
        assert record.ended_at == (record.heartbeat_at or record.started_at)  # its last beat
    else:
        assert killed["error"] == "SIGTERM"
    assert killed["params"] == retried["params"] == {"lr": pytest.approx(trials[1].params["lr"])}
    if step > 0:
        assert killed["energy_kwh"] > 0  # the cost it had flushed
    assert retried["role"] == "trial" and retried["status"] == "finished"
    assert [r["name"] for r in report["runs"] if r["role"] == "trial"] == [
        "trial-0",
        "trial-2",
        "trial-3",
    ]
    assert trials[2].user_attrs["greenprint_run_id"] == retried["id"]
    _counted_once(home, report, trials)


def test_an_optuna_trial_killed_twice_is_one_trial_each_attempt_a_part(
    tmp_path_factory, optuna_server
):
    """Trial 1 killed, its retry (trial 2) killed too, the search run a third time: Optuna
    retries trial 2 as trial 3 (retry history [1, 2]). One configuration, one trial: trial-3,
    trial-2 its part, trial-1 trial-2's, both ``interrupted``, each naming the attempt that ran
    it again; 3 trials of 5 runs, every attempt's cost once. Before: 5 trials."""
    home = _empty(tmp_path_factory, "optuna-retry-twice")
    report, trials = _searched(home, optuna_server, ("KILL", 1, 4), ("KILL", 2, 4))
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[3].system_attrs["retry_history"] == [1, 2]
    rows = _by_name(report)
    first, second, last = rows["trial-1"], rows["trial-2"], rows["trial-3"]
    assert last["role"] == "trial" and last["status"] == "finished"
    assert second["role"] == "part" and second["parent_id"] == last["id"]
    assert first["role"] == "part" and first["parent_id"] == second["id"]
    assert first["status"] == second["status"] == "interrupted"
    assert "Optuna's retry of trial 1 (as trial 2)" in first["error"]
    assert "Optuna's retry of trial 2 (as trial 3)" in second["error"]
    assert first["params"] == second["params"] == last["params"]
    _counted_once(home, report, trials)


def test_an_optuna_trial_killed_and_not_retried_stays_a_trial_of_its_own(
    tmp_path_factory, optuna_server
):
    """No heartbeat, no retry callback: Optuna keeps the killed trial 1 ``RUNNING`` and the
    search run again runs new trials. Nothing retries trial 1, so nothing links it: 4 trials
    as Optuna's 4, trial-1 ``lost`` with the params it flushed. (Pinned: it read so already.)"""
    home = _empty(tmp_path_factory, "optuna-plain")
    report, trials = _searched(home, optuna_server, ("KILL", 1, 4), how="plain")
    assert [t.state.name for t in trials] == ["COMPLETE", "RUNNING", "COMPLETE", "COMPLETE"]
    rows = _by_name(report)
    assert sorted(rows) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert all(r["role"] == "trial" and r["parent_id"] is None for r in rows.values())
    killed = rows["trial-1"]
    assert killed["status"] == "lost"
    assert killed["params"] == {"lr": pytest.approx(trials[1].params["lr"])}
    assert report["price_tag"]["total"]["trials"] == 4
