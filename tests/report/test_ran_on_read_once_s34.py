"""A report reads what workers that ran on after their main run spent once (session 34).

The price tag and the timeline each worked out which runs ran on after the runs around them
ended (:func:`greenprint._forest_beyond.beyond_sums`), and each read those runs' power samples
to split them at that end; the timeline then read them a third time to draw them after it, and
a fourth where it drew them as their main run (one that recorded no energy). Now the report
works it out once, the price tag and the timeline share it, and the timeline draws from the
samples the split read: each run's samples are read once per report, and the report is the
same (its price tag, the timeline's curve ending at the price tag's total).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

import greenprint as gp
from greenprint._forest import RunForest
from greenprint._forest_beyond import beyond_sums
from greenprint.analysis import price_tag
from greenprint.analysis._pricetag import forest_price_tag
from greenprint.report import build_report, render
from test_orphans_power_s33 import TRUTH_J, J, _hand_built

from .test_timeline_killed_s32 import _timeline_end


class _CountingLedger(gp.Ledger):
    """A ledger that counts whose power samples are read (the SQLite ledger, unchanged)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: Counter[str] = Counter()

    def samples(self, run_id: str) -> list[gp.PowerSample]:
        self.reads[run_id] += 1
        return super().samples(run_id)


def _report_and_reads(tmp_path, *, hollow: bool = False) -> tuple[dict, dict[str, int]]:
    path = tmp_path / "g.db"
    with gp.Ledger(path) as led:
        _hand_built(led, study="orphans")
        if hollow:  # the main run recorded no energy: drawn as its workers
            main = next(r for r in led.runs(study="orphans") if r.name == "main")
            fields = {"energy_kwh": 0.0, "energy_cpu_kwh": 0.0, "emissions_kg": 0.0}
            led.flush(main.id, fields=fields)
    with _CountingLedger(path) as led:
        report = build_report(led, study="orphans")
        names = {r.id: r.name for r in led.runs(study="orphans")}
        reads = {names[run_id]: n for run_id, n in led.reads.items()}
    return json.loads(render(report, "json")), reads


def test_each_runs_samples_are_read_once_and_the_curve_ends_at_the_price_tag(tmp_path):
    """Main run 61 J to its end at 10 s; two workers ran on to 16 s (108 J in all): the
    workers' samples were read 3 times each (the price tag's split, the timeline's, its
    drawing), the main run's once (its drawing)."""
    report, reads = _report_and_reads(tmp_path)
    assert reads == {"main": 1, "worker-0": 1, "worker-1": 1}
    total = report["price_tag"]["total"]["energy_kwh"]
    assert total == pytest.approx(TRUTH_J * J, rel=1e-12)
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(total, rel=1e-9)
    assert any("drawn inside it up to that end" in n for n in timeline["notes"])


def test_workers_drawn_as_their_hollow_main_run_are_read_once(tmp_path):
    """The main run recorded no energy: the timeline draws its workers in its place, up to its
    end, and after it; their samples were read 4 times each (the main run's: none drawn)."""
    report, reads = _report_and_reads(tmp_path, hollow=True)
    assert reads == {"worker-0": 1, "worker-1": 1}
    timeline, end_kwh = _timeline_end(report)
    assert end_kwh == pytest.approx(report["price_tag"]["total"]["energy_kwh"], rel=1e-9)
    assert any("recorded no energy" in n for n in timeline["notes"])


def test_the_price_tag_of_a_forest_given_its_beyond_sums_is_the_price_tag(tmp_path):
    """What the report calls (the sums worked out once) is ``price_tag`` of the same runs."""
    with gp.Ledger(tmp_path / "g.db") as led:
        _hand_built(led, study="orphans")
        runs = led.runs(study="orphans")
        forest = RunForest.build(runs)
        shared = forest_price_tag(forest, beyond=beyond_sums(forest, led.samples))
        alone = price_tag(runs, samples_of=led.samples)
    for field in dataclasses.fields(alone):  # roles: of another forest, the same runs
        if field.name != "roles":
            assert getattr(shared, field.name) == getattr(alone, field.name), field.name
    assert shared.roles.roles == alone.roles.roles
    assert shared.total.energy_kwh == pytest.approx(TRUTH_J * J, rel=1e-12)
