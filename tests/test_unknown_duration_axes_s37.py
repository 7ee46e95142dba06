"""A run of unknown duration is left out of every time axis, and the reader is told (session 37).

A run recorded without a duration (``RunRecord.duration_s`` 0.0: written through the ledger API
as docs/ledger.md's merge example does, or imported) was "unknown" in the price tag's totals
(tests/test_unknown_durations_s37.py) but 0 s on every axis of time: ``evp_by_budget(runs,
"duration_s")`` averaged it in as a free trial (the budget of n trials too small),
``pareto_runs(cost="duration_s")`` put it on the front as the cheapest trial, the learning
curve's ``duration_s_mean`` took it as 0 s, and the report's power timeline dropped its energy
without a word. Each now does what it does for an unknown FPO: EVP gives it the others' mean and
says so, the Pareto front leaves it out and says how many, the learning curve's time leaves it
out and says how many, and the timeline says it is not drawn.
"""

from __future__ import annotations

import html
import json
import logging
import math
import sys

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint.analysis import evp_by_budget, learning_curve, pareto_runs


def _run(
    name: str, seconds: float, acc: float, *, parent: str | None = None, size: int | None = None
) -> gp.RunRecord:
    return gp.RunRecord(
        id=name, name=name, study="s", parent_id=parent, status="finished", started_at=1e9,
        duration_s=seconds, energy_kwh=0.001, dataset_size=size,
        metrics=(gp.MetricPoint("acc", acc),),
    )  # fmt: skip


#: two timed trials and the best one, written by hand with no duration
RUNS = [_run("slow", 20.0, 0.8), _run("fast", 10.0, 0.7), _run("hand", 0.0, 0.9)]


def test_evp_by_time_gives_a_trial_of_unknown_time_the_mean_and_says_so():
    curve = evp_by_budget(RUNS, "duration_s", metric="acc")
    # n trials cost n x 15 s (the mean of 20 and 10), not n x 10 s (the hand trial as 0 s)
    assert curve.budget.tolist() == pytest.approx([15.0, 30.0, 45.0])
    assert curve.budget_unit == "s"
    assert "1 of 3 trials had no recorded run time; given the mean" in curve.notes
    assert curve.to_dict()["notes"] == list(curve.notes)
    every = evp_by_budget(RUNS[:2], "duration_s", metric="acc")
    assert every.notes == () and every.budget.tolist() == pytest.approx([15.0, 30.0])


def test_evp_by_time_refuses_a_study_no_trial_of_which_knows_its_time():
    untimed = [_run(f"h{k}", 0.0, 0.5 + k / 10) for k in range(3)]
    with pytest.raises(
        gp.AnalysisError, match=r"no trial has a known recorded run time \(duration_s\)"
    ):
        evp_by_budget(untimed, "s", metric="acc")


def test_the_pareto_front_on_time_leaves_out_a_trial_of_unknown_time_and_says_how_many(caplog):
    with caplog.at_level(logging.WARNING, logger="greenprint.analysis._pareto"):
        front = pareto_runs(RUNS, metric="acc", cost="duration_s")
    # "hand" (0.9 at "0 s") was the whole front, as if the best trial had cost nothing
    assert [r.name for r in front] == ["slow", "fast"]
    assert (
        "pareto_runs: 1 trial with a score left out of the front, its run time (recorded "
        "without a duration) unknown" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="greenprint.analysis._pareto"):
        on_energy = pareto_runs(RUNS, metric="acc", cost="energy_kwh")
    assert [r.name for r in on_energy] == ["hand"] and not caplog.text  # its energy is known


def test_a_trial_that_recorded_no_time_but_whose_parts_did_is_timed_by_them():
    runs = [
        _run("trial", 0.0, 0.9),  # no time of its own: its folds'
        _run("fold0", 6.0, 0.9, parent="trial"),
        _run("fold1", 4.0, 0.9, parent="trial"),
        _run("other", 20.0, 0.8),
    ]
    assert [r.name for r in pareto_runs(runs, metric="acc", cost="s")] == ["trial"]
    curve = evp_by_budget(runs, "duration_s", metric="acc")
    assert curve.notes == () and curve.budget[0] == pytest.approx(15.0)  # (10 + 20) / 2


def test_the_learning_curve_leaves_a_run_of_unknown_time_out_of_its_time_and_says_so():
    runs = [
        _run("a", 10.0, 0.7, size=100),
        _run("b", 0.0, 0.8, size=100),  # hand-built: its time is unknown, not 0 s
        _run("c", 0.0, 0.9, size=200),
    ]
    curve = learning_curve(runs, metric="acc")
    assert curve.duration_s_mean[0] == 10.0  # was 5.0
    assert math.isnan(curve.duration_s_std[0])  # one known time at that size
    assert math.isnan(curve.duration_s_mean[1])  # none known: not 0 s
    assert curve.energy_kwh_mean.tolist() == pytest.approx([0.001, 0.001])  # known: used
    assert curve.duration_unknown == 2
    note = (
        "2 runs recorded without a duration are left out of the run time "
        "(duration_s_mean/std; NaN at a size where no run's is known)"
    )
    assert note in curve.notes
    data = curve.to_dict()
    assert data["duration_s_mean"] == [10.0, None] and data["duration_unknown"] == 2
    timed = learning_curve(
        [_run("a", 10.0, 0.7, size=100), _run("d", 30.0, 0.8, size=200)], metric="acc"
    )
    assert timed.duration_unknown == 0
    # no run note but the FPO's (these runs counted none: said since session 52)
    assert [n for n in timed.notes if "counted no FPO" not in n] == []


STUDY = """\
import time

import greenprint as gp

for k, acc in enumerate([0.7, 0.8]):
    with gp.track(f"tracked{k}", study="s", ledger="greenprint.db") as run:
        time.sleep(0.05)
        run.log(accuracy=acc)
now = time.time()
with gp.Ledger("greenprint.db") as led:  # a run merged in by hand: energy, no duration
    led.start_run(gp.RunRecord(id="hand-0001", name="hand", study="s", started_at=now))
    led.flush("hand-0001", fields={"status": "finished", "energy_kwh": 0.001},
              metrics=[gp.MetricPoint("accuracy", 0.9, time=now)])
print("ok")
"""

TIMELINE_NOTE = (
    "1 run recorded without a duration (its time unknown) and without power samples is not "
    "drawn: its energy is in the price tag's total, not under this curve"
)


def test_the_report_timeline_says_a_run_of_unknown_time_is_not_drawn(tmp_path_factory):
    home = empty_home(tmp_path_factory, "untimed-timeline")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py", env=clean_env())
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--format", "all")
    assert done.returncode == 0, done.stderr
    out = home / "rep"
    data = json.loads((out / "report.json").read_text("utf-8"))
    timeline = next(f for f in data["figures"] if f["id"] == "timeline")
    assert TIMELINE_NOTE in timeline["notes"]
    for fmt in ("md", "html", "tex"):
        text = html.unescape((out / f"report.{fmt}").read_text("utf-8"))
        assert TIMELINE_NOTE in text.replace("\n", " "), fmt
