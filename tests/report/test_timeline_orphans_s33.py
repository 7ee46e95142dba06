"""The timeline ends at the price tag's total when workers ran on after their main run (session 33).

A study's main process got SIGTERM and its ``multiprocessing`` workers (child runs, contained)
ran on: the price tag counts the main run's reading (what the workers measured before its end
is inside it) and, once, what each worker measured after that end, by its own power samples
(:func:`greenprint._forest_beyond.beyond_sums`). The timeline drew the main run as its
workers (their sum was above its reading) and its energy curve ended at the workers' whole
readings: 78 J (21.67 mWh) where the price tag says 108 J, with a note that the price tag
counted their sum, which it did not. Now it draws what the price tag counts: the main run up to
its end, the workers' samples after it; its curve ends at 108 J (30 mWh), and the note says so.
Checked on the hand-built study of tests/test_orphans_power_s33.py and on real runs killed
with SIGTERM (its script).
"""

from __future__ import annotations

import json

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from test_orphans_power_s33 import TRUTH_J, J, _hand_built, kill_the_main_process

from .test_timeline_killed_s32 import _timeline_end

RAN_ON = (
    "ran on after the run they are part of ended (a worker process left running when its main "
    "process was stopped or crashed): drawn inside it up to that end, and after it by their "
    "power samples, at what the price tag counts"
)


def _report(home) -> dict:
    done = run_in(home, GREENPRINT, "report", "--study", "orphans", "--format", "json",
                  "--no-plots", "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def test_the_hand_built_study_ends_at_the_price_tags_108_joules(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Main run 61 J to its end at 10 s; workers 40 and 38 J, 24 and 23 J of it after that end
    (twice the power): the price tag's 108 J, the timeline's too (it drew 78 J)."""
    home = empty_home(tmp_path_factory, "s33-orphans-timeline")
    with gp.Ledger(home / "greenprint.db") as led:
        _hand_built(led, study="orphans")
    report = _report(home)
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(TRUTH_J * J, rel=1e-12)
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-9)
    assert timeline["notes"] == [f"2 runs {RAN_ON}"]
    # the workers' whole readings (what was drawn) are not the price tag's
    workers = sum(r["energy_kwh"] for r in report["runs"] if r["name"] != "main")
    assert workers == pytest.approx(78 * J, rel=1e-12)


def test_real_workers_killed_with_their_main_process_end_at_the_price_tag(tmp_path) -> None:
    """SIGTERM to the main process (a whole CPU); its fork workers burn a CPU each once it is
    gone (tests/test_orphans_power_s33.py's script): the curve ends at the price tag's total."""
    ledger = tmp_path / "greenprint.db"
    kill_the_main_process(tmp_path, ledger)  # SIGTERM to the main process only
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="orphans")
    main = next(r for r in runs if r.name == "main")
    assert all(r.ended_at > main.ended_at + 1.0 for r in runs if r is not main)  # they ran on
    report = _report(tmp_path)
    total = report["price_tag"]["total"]["energy_kwh"]
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-9)
    assert f"2 runs {RAN_ON}" in timeline["notes"]
    assert not any("recorded less energy" in n for n in timeline["notes"])
