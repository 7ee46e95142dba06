"""CostAwarePruner: decisions on hand-built curves, judged at equal cost and checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint._exceptions import ConfigError
from greenprint.greener import CostAwarePruner, PruneDecision
from greenprint.greener._pruner import _Curve, percentile_of


def _completed(pruner: CostAwarePruner, trial: str, points: list[tuple[float, float]]) -> None:
    for cost, score in points:
        assert pruner.report(trial, cost, score) is False
    pruner.finish(trial)


def test_a_trial_dominated_at_equal_energy_is_pruned():
    pruner = CostAwarePruner(n_startup_trials=1)
    _completed(pruner, "a", [(0.1, 0.50), (0.2, 0.70), (0.4, 0.80)])
    assert pruner.report("b", 0.2, 0.40) is True
    decision = pruner.decision("b")
    assert isinstance(decision, PruneDecision)
    assert (decision.threshold, decision.references, decision.cost) == (0.70, 1, 0.2)
    assert "median" in decision.reason and "at cost 200 Wh" in decision.reason  # 0.2 kWh
    assert pruner.status("b") == "pruned"


def test_a_slow_trial_that_is_better_per_kwh_is_kept():
    # two expensive trials: 1 kWh per epoch, 0.2 accuracy more per epoch
    pruner = CostAwarePruner(n_startup_trials=2)
    for name in ("wide-1", "wide-2"):
        _completed(pruner, name, [(float(e), 0.2 * e) for e in range(1, 5)])
    # a small model: 0.1 kWh per epoch, slower per epoch but far better per kWh
    for epoch in range(1, 11):
        cost, score = 0.1 * epoch, 0.06 * epoch
        assert pruner.report("small", cost, score) is False, (epoch, pruner.decision("small"))
    # after 10 epochs (1 kWh) it has 0.6 where the wide ones had 0.2 at 1 kWh; a step-based
    # median would have stopped it after epoch 1 (0.06 < 0.2)
    decision = pruner.decision("small")
    assert decision is not None
    assert decision.threshold == pytest.approx(0.2) and decision.score == pytest.approx(0.6)


def test_scores_of_references_are_interpolated_linearly_in_cost():
    pruner = CostAwarePruner(n_startup_trials=1)
    _completed(pruner, "a", [(0.0, 0.2), (1.0, 0.6)])
    assert pruner.score_at(0.25) == [pytest.approx(0.3)]  # 0.2 + (0.6 - 0.2) * 0.25
    assert pruner.report("below", 0.25, 0.29) is True
    assert pruner.report("above", 0.25, 0.31) is False


def test_a_completed_curve_holds_its_best_beyond_its_cost_a_running_one_says_nothing():
    pruner = CostAwarePruner(n_startup_trials=0)
    _completed(pruner, "done", [(1.0, 0.5), (2.0, 0.7)])
    pruner.report("running", 1.0, 0.9)
    assert pruner.score_at(5.0) == [0.7]  # "running" has not reached 5 kWh
    assert pruner.score_at(1.5) == [pytest.approx(0.6)]  # nor 1.5
    assert sorted(pruner.score_at(1.0)) == [0.5, 0.9]


def test_a_running_curve_covers_only_the_costs_it_has_reached():
    curve = _Curve()
    curve.add(1.0, 0.9, maximize=True)
    assert curve.at(1.0) == 0.9
    assert curve.at(1.5) is None
    assert curve.at(0.5) is None
    curve.status = "complete"
    assert curve.at(1.5) == 0.9


def test_the_trial_is_judged_on_its_best_score_so_far():
    pruner = CostAwarePruner(n_startup_trials=1)
    _completed(pruner, "a", [(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)])
    assert pruner.report("b", 1.0, 0.8) is False
    # a dip to 0.3 at 2 kWh: judged on 0.8, its best, against 0.6
    assert pruner.report("b", 2.0, 0.3) is False
    assert pruner.decision("b").score == 0.8
    assert pruner.curve("b") == ((1.0, 0.8), (2.0, 0.8))


def test_median_and_percentile_thresholds_by_hand():
    values = [0.1, 0.2, 0.3, 0.4]

    def pruner_with(**options: object) -> CostAwarePruner:
        pruner = CostAwarePruner(n_startup_trials=4, **options)  # type: ignore[arg-type]
        for k, v in enumerate(values):
            _completed(pruner, k, [(1.0, v)])
        return pruner

    median = pruner_with()
    assert median.report("x", 1.0, 0.24) is True  # median of 0.1..0.4 is 0.25
    assert median.decision("x").threshold == pytest.approx(0.25)
    assert median.report("y", 1.0, 0.26) is False
    # keep the best 25 %: the threshold is the 75th percentile, 0.3 + 0.25 * 0.1 = 0.325
    top = pruner_with(rule="percentile", percentile=25.0)
    assert top.report("x", 1.0, 0.32) is True
    assert top.decision("x").threshold == pytest.approx(0.325)
    assert top.report("y", 1.0, 0.33) is False


def test_minimize_prunes_losses_above_the_median():
    pruner = CostAwarePruner(direction="minimize", n_startup_trials=2)
    _completed(pruner, "a", [(1.0, 2.0), (2.0, 1.0)])
    _completed(pruner, "b", [(1.0, 3.0), (2.0, 1.4)])
    # at 1.5 kWh: a 1.5, b 2.2, median 1.85
    assert pruner.report("worse", 1.5, 1.9) is True
    assert pruner.decision("worse").threshold == pytest.approx(1.85)
    assert pruner.report("better", 1.5, 1.8) is False


def test_warm_up_startup_trials_min_cost_and_min_references():
    pruner = CostAwarePruner(n_startup_trials=2, min_cost=0.5, n_min_trials=2)
    _completed(pruner, "a", [(0.1, 0.9), (1.0, 0.9)])
    assert pruner.report("b", 0.2, 0.0) is False
    assert "1 of 2 startup trials" in pruner.decision("b").reason
    pruner.finish("b")
    assert pruner.report("c", 0.2, 0.0) is False  # under min_cost
    assert "min_cost" in pruner.decision("c").reason
    # at 0.6 kWh: "a" (0.9) and "b" (0.0, completed at 0.2: holds 0.0) give 2 references
    assert pruner.report("c", 0.6, 0.46) is False
    assert pruner.decision("c").threshold == pytest.approx(0.45)
    assert pruner.report("d", 0.6, 0.44) is True


def test_too_few_references_keep_the_trial():
    pruner = CostAwarePruner(n_startup_trials=1, n_min_trials=2)
    _completed(pruner, "a", [(1.0, 0.9)])
    assert pruner.report("b", 1.0, 0.1) is False
    assert pruner.decision("b").references == 1


def test_pruned_and_failed_trials_are_not_references():
    pruner = CostAwarePruner(n_startup_trials=1)
    _completed(pruner, "a", [(1.0, 0.5)])
    assert pruner.report("low", 1.0, 0.1) is True
    pruner.report("failed", 1.0, 0.6)
    pruner.finish("failed", "failed")
    assert pruner.score_at(1.0) == [0.5]


def test_nan_scores_are_skipped_and_reports_after_the_end_refused():
    pruner = CostAwarePruner(n_startup_trials=0)
    assert pruner.report("a", 1.0, math.nan) is False
    assert pruner.curve("a") == ()
    pruner.finish("a")
    with pytest.raises(ConfigError, match="already complete"):
        pruner.report("a", 2.0, 0.5)


def test_cost_is_cumulative():
    pruner = CostAwarePruner()
    pruner.report("a", 2.0, 0.5)
    with pytest.raises(ConfigError, match="went down from 2 to 1"):
        pruner.report("a", 1.0, 0.6)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"direction": "up"}, "direction"),
        ({"rule": "mean"}, "rule"),
        ({"rule": "percentile", "percentile": 100.0}, "percentile"),
        ({"rule": "median", "percentile": 30.0}, "rule='percentile'"),
        ({"n_startup_trials": -1}, "n_startup_trials"),
        ({"n_min_trials": 0}, "n_min_trials"),
        ({"min_cost": math.inf}, "min_cost"),
        ({"min_cost": "1"}, "min_cost"),
    ],
)
def test_bad_options_raise_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        CostAwarePruner(**options)


@pytest.mark.parametrize(
    ("cost", "score"), [(-1.0, 0.5), (math.nan, 0.5), (1.0, math.inf), (1.0, "0.5"), (True, 0.5)]
)
def test_bad_reports_raise_config_errors(cost, score):
    with pytest.raises(ConfigError):
        CostAwarePruner().report("a", cost, score)


def test_finish_refuses_unknown_statuses():
    with pytest.raises(ConfigError, match="status"):
        CostAwarePruner().finish("a", "running")


@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
    st.floats(0.0, 100.0),
)
def test_percentile_matches_numpy(values, q):
    assert percentile_of(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-6)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 10.0), st.floats(-1.0, 1.0)),
        min_size=2,
        max_size=20,
    ),
    st.floats(0.0, 10.0),
)
def test_interpolated_best_so_far_lies_between_its_neighbours(points, cost):
    curve = _Curve()
    for c, s in sorted(points):
        curve.add(c, s, maximize=True)
    curve.status = "complete"
    value = curve.at(cost)
    if cost < curve.costs[0]:
        assert value is None
        return
    assert value is not None
    below = max(b for c, b in zip(curve.costs, curve.best, strict=True) if c <= cost)
    above = [b for c, b in zip(curve.costs, curve.best, strict=True) if c >= cost]
    assert below - 1e-9 <= value <= (above[0] if above else below) + 1e-9
    # best-so-far never goes down
    assert all(b1 >= b0 for b0, b1 in zip(curve.best, curve.best[1:], strict=False))


def test_warm_up_reports_are_never_judged():
    pruner = CostAwarePruner(n_startup_trials=1, n_warmup_reports=2)
    _completed(pruner, "a", [(1.0, 0.9), (2.0, 0.9), (3.0, 0.9)])
    assert pruner.report("b", 1.0, 0.1) is False
    assert pruner.report("b", 2.0, 0.1) is False
    assert "report 2 of 2" in pruner.decision("b").reason
    assert pruner.report("b", 3.0, 0.1) is True  # the third report is judged
