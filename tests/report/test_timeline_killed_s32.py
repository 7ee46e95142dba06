"""The timeline's energy curve ends at the price tag's total when a job was killed mid-study.

``greenprint run --flush-interval 60 -- python search.py`` killed (SIGKILL to the whole job, as
a batch system ends it) while a trial runs: the job's run recorded its reading at its first
flush (1 s in) and no more, its trial flushed every 0.2 s until the kill. The price tag counts
the job at its trials' sum (``max(own, children's sum)``); the timeline drew the job's own
samples, and its energy curve ended below the total (2.158 against 2.211 µWh in the suite's
run of the killed-and-resumed Optuna search: a load-dependent failure of
test_outside_shapes2). Such a run is now drawn as the runs inside it, with a note.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from _wait import wait_until


def _timeline_end(report: dict) -> tuple[dict, float]:
    """The report's timeline figure and where its cumulative energy curve ends, kWh."""
    timeline = next(f for f in report["figures"] if f["id"] == "timeline")
    energy = next(p for p in timeline["panels"] if p["y_label"].startswith("cumulative energy"))
    per_kwh = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[energy["y_unit"]]
    (curve,) = energy["series"]
    return timeline, curve["y"][-1] / per_kwh


SEARCH = """\
import time
from pathlib import Path
import greenprint as gp

with gp.track("trial-0", sample_interval_s=0.1, flush_interval_s=0.2) as run:
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        pass
    run.log(accuracy=0.9)
    Path("ready").touch()
    while True:
        pass
"""


def test_a_job_killed_after_its_flush_draws_its_trials_to_the_price_tags_total(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = empty_home(tmp_path_factory, "s32-killed-timeline")
    (home / "search.py").write_text(SEARCH, encoding="utf-8")
    command = [GREENPRINT, "run", "-q", "--flush-interval", "60", "--study", "killed",
               "--name", "job", "--", sys.executable, "search.py"]  # fmt: skip
    job = subprocess.Popen(command, cwd=home, env=clean_env(), start_new_session=True)
    try:
        assert wait_until(lambda: (home / "ready").exists(), 120), "the trial never got going"
        started = wait_until(lambda: job.poll() is not None, 0.6)  # its next flushes
        assert not started, "the job ended on its own"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=60)
    done = run_in(home, GREENPRINT, "report", "--study", "killed", "--format", "json",
                  "--no-plots", "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    rows = {row["name"]: row for row in report["runs"]}
    # the premise: the job's reading stopped at its first flush, its trial's went on
    assert rows["trial-0"]["energy_kwh"] > rows["job"]["energy_kwh"] > 0
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(rows["trial-0"]["energy_kwh"], rel=1e-9)
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-6)
    assert any("recorded less energy than the runs inside it" in n for n in timeline["notes"])


THREADS = """\
import threading, time
import greenprint as gp

FAST = {"sample_interval_s": 0.1, "flush_interval_s": 0.2}


def trial(k):
    with gp.track(f"t{k}", params={"k": k}, **FAST) as run:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
        run.log(accuracy=k / 10)


with gp.track("sweep", study="threads", **FAST):
    workers = [threading.Thread(target=trial, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
"""


def test_trials_in_threads_are_not_drawn_for_their_sweep(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Trials in threads of one process each read all of it: their sum is above their sweep's
    reading, which the price tag shares out among them. The sweep is drawn, not its trials
    (drawn, the curve ended at 2.8x the total)."""
    home = empty_home(tmp_path_factory, "s32-threads-timeline")
    (home / "sweep.py").write_text(THREADS, encoding="utf-8")
    done = run_in(home, sys.executable, "sweep.py")
    assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "report", "--format", "json", "--no-plots", "--out", "rep")
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    rows = {row["name"]: row for row in report["runs"]}
    # the premise: the trials' own readings add up to more than the sweep's
    assert sum(rows[f"t{k}"]["energy_kwh"] for k in range(3)) > rows["sweep"]["energy_kwh"]
    total = report["price_tag"]["total"]["energy_kwh"]
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-6)
    assert not any("recorded less energy" in n for n in timeline["notes"])
