"""Of two finished trials with the best score, one known to be cheap wins over one whose energy
no meter recorded (session 52).

A trial tracked with ``meters=[]`` records 0.0 of energy, which reads as unknown everywhere,
never 0; the final run's tie-break (the least energy, then the earliest start) took it as 0 and
chose it over a trial known to have used 0.5 kWh.
"""

from __future__ import annotations

import math

import greenprint as gp
from greenprint.analysis import price_tag


def _trial(rid: str, kwh: float, start: float) -> gp.RunRecord:
    return gp.RunRecord(
        id=rid, name=rid, role="trial", status="finished", energy_kwh=kwh, params={"lr": rid},
        started_at=start, ended_at=start + 100, duration_s=100,
        metrics=(gp.MetricPoint("accuracy", 0.9),),
    )  # fmt: skip


def test_a_known_energy_wins_the_tie() -> None:
    runs = [_trial("a", 0.5, 1000), _trial("b", 0.0, 2000)]  # b: no meter
    assert not runs[1].energy_recorded
    tag = price_tag(runs, metric="accuracy")
    assert tag.final is not None and tag.final.run_id == "a"
    assert tag.final.energy_kwh == 0.5


def test_two_unknown_energies_fall_to_the_earliest_start() -> None:
    runs = [_trial("late", 0.0, 2000), _trial("early", 0.0, 1000)]
    tag = price_tag(runs, metric="accuracy")
    assert tag.final is not None and tag.final.run_id == "early"
    assert math.isnan(tag.final.energy_kwh)


def test_known_energies_still_decide() -> None:
    runs = [_trial("dear", 0.7, 1000), _trial("cheap", 0.2, 2000)]
    tag = price_tag(runs, metric="accuracy")
    assert tag.final is not None and tag.final.run_id == "cheap"
