"""A run whose threads count more than it measured: the timeline ends at the price tag's total.

Runs inside a run that ran at the same time in one process (threads, each reading all of it)
share out their parent's reading; where they count more than it measured (a meter that lagged,
a process whose power varied), the price tag counts them: a parent of 20 J whose two threads
read 23 and 20 J over the same 10 s counts 23 J. The timeline drew the parent's own 20 J
(its energy curve 3 J short of the price tag, with no note); it now draws it at 23 J, said so.
"""

from __future__ import annotations

import json

import pytest

import greenprint as gp
from _hand_built import T0, measured_run
from _report_cli import GREENPRINT, empty_home, run_in

from .test_timeline_killed_s32 import _timeline_end

J = 1 / 3.6e6  # kWh per joule
LIFTED = "measured less energy than the runs inside it that ran at the same time in one process"


def _study(home, *, samples: bool) -> None:
    with gp.Ledger(home / "greenprint.db") as led:
        for name, parent, joules in (("main", None, 20), ("a", "main", 23), ("b", "main", 20)):
            record = measured_run(name, parent, joules * J, (0, 10), pid=1, study="lag")
            led.start_run(record)
            if samples:  # 1 s samples at the run's mean power (W = J / 10 s)
                drawn = [
                    gp.PowerSample(t0=T0 + t, t1=T0 + t + 1, cpu_w=joules / 10) for t in range(10)
                ]
                led.flush(record.id, samples=drawn)


@pytest.mark.parametrize("samples", [False, True], ids=["mean-power", "samples"])
def test_a_parent_below_its_threads_is_drawn_at_what_the_price_tag_counts(
    tmp_path_factory: pytest.TempPathFactory, samples: bool
) -> None:
    home = empty_home(tmp_path_factory, f"s33-threads-lag-{samples}")
    _study(home, samples=samples)
    done = run_in(home, GREENPRINT, "report", "--format", "json", "--no-plots", "--out", "rep")
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(23 * J, rel=1e-12)  # the larger thread's count, not main's 20
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-9)  # drawn 20 J before
    assert any(n.startswith(f"1 top-level run {LIFTED}") for n in timeline["notes"])
    assert any("its own part is 0 and their count is used" in n for n in report["notes"])
