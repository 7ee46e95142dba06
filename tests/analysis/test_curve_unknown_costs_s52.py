"""A learning curve says how many runs its FPO and energy means leave out (session 52).

At one size three repeats, one that counted no FPO and one that no meter measured: the curve
said ``n_runs [3]``, ``fpo_mean [20]`` and ``energy_kwh_mean [0.2]`` (each a mean of two) with
no note, where a run recorded without a duration was already said.
"""

from __future__ import annotations

import math

import pytest

import greenprint as gp
from greenprint.analysis import learning_curve


def _run(rid: str, *, fpo: int | None, kwh: float) -> gp.RunRecord:
    return gp.RunRecord(
        id=rid, name=rid, role="learning-curve", status="finished", dataset_size=100,
        energy_kwh=kwh, fpo=fpo, duration_s=10.0, started_at=1000.0, ended_at=1010.0,
        metrics=(gp.MetricPoint("accuracy", 0.8),),
    )  # fmt: skip


def test_the_runs_left_out_of_each_mean_are_said() -> None:
    runs = [_run("a", fpo=10, kwh=0.1), _run("b", fpo=None, kwh=0.3), _run("c", fpo=30, kwh=0.0)]
    curve = learning_curve(runs, metric="accuracy")
    assert list(curve.n_runs) == [3]
    assert list(curve.fpo_mean) == [20.0]  # a and c
    assert list(curve.energy_kwh_mean) == pytest.approx([0.2])  # a and b: c had no meter
    assert any(n.startswith("1 run that counted no FPO is left out") for n in curve.notes)
    assert any(n.startswith("1 run that no meter measured is left out") for n in curve.notes)


def test_all_known_says_nothing_and_none_known_is_nan() -> None:
    known = learning_curve([_run("a", fpo=10, kwh=0.1)], metric="accuracy")
    assert known.notes == ()
    unknown = learning_curve([_run("a", fpo=None, kwh=0.0)], metric="accuracy")
    assert math.isnan(unknown.fpo_mean[0]) and math.isnan(unknown.energy_kwh_mean[0])
    assert len(unknown.notes) == 2
