"""A failed trial is not on the score-against-cost front (session 52).

A trial that logged 0.95 on a validation batch and then crashed had cost little for having
stopped early: ``pareto_runs`` put it on the front, alone, over the finished trial (0.90), while
EVP reads a failed trial as no score. The front's candidates are now those EVP scores: finished
and pruned trials.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint.analysis import evp_by_budget, pareto_runs


def _trial(rid: str, status: str, kwh: float, accuracy: float) -> gp.RunRecord:
    return gp.RunRecord(
        id=rid, name=rid, role="trial", status=status, energy_kwh=kwh, params={"lr": rid},
        metrics=(gp.MetricPoint("accuracy", accuracy),),
    )  # fmt: skip


@pytest.mark.parametrize("stopped", ["failed", "interrupted", "lost"])
def test_a_trial_cut_short_is_no_candidate(stopped: str) -> None:
    runs = [_trial("ok", "finished", 1.0, 0.90), _trial("crashed", stopped, 0.2, 0.95)]
    assert [r.id for r in pareto_runs(runs, metric="accuracy", cost="energy_kwh")] == ["ok"]
    assert list(evp_by_budget(runs, "trials", metric="accuracy").mean) == [0.9, 0.9]


def test_a_pruned_trial_is_still_one() -> None:
    runs = [_trial("ok", "finished", 1.0, 0.90), _trial("stopped", "pruned", 0.2, 0.80)]
    front = [r.id for r in pareto_runs(runs, metric="accuracy", cost="energy_kwh")]
    assert front == ["ok", "stopped"]  # better, or cheaper
