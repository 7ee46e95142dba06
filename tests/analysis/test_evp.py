"""Expected maximum performance: exactness against enumeration, Monte Carlo, properties, NaNs."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import AnalysisError, ConfigError, MetricPoint, RunRecord
from greenprint.analysis import EVPCurve, evp_by_budget, expected_max_performance

# Few distinct values, so that ties are common.
tied_scores = st.lists(st.integers(0, 4).map(float), min_size=1, max_size=5)
real_scores = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=40
)
any_scores = st.one_of(tied_scores, real_scores)


def brute_force(scores: list[float], replacement: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the max over every n-tuple (with) or n-subset (without replacement)."""
    means, stds = [], []
    for n in range(1, len(scores) + 1):
        if replacement:
            maxima = [max(t) for t in itertools.product(scores, repeat=n)]
        else:
            maxima = [max(c) for c in itertools.combinations(scores, n)]
        means.append(np.mean(maxima))
        stds.append(np.std(maxima))
    return np.array(means), np.array(stds)


@settings(max_examples=150, deadline=None)
@given(scores=st.one_of(tied_scores, st.lists(st.floats(-5, 5), min_size=1, max_size=5)))
def test_both_estimators_equal_brute_force_enumeration(scores):
    for replacement in (True, False):
        curve = expected_max_performance(scores, replacement=replacement)
        mean, std = brute_force(scores, replacement)
        np.testing.assert_allclose(curve.mean, mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(curve.std, std, rtol=1e-6, atol=1e-6)


def test_without_replacement_matches_enumeration_with_many_ties():
    scores = [0.5, 0.7, 0.7, 0.7, 0.9, 0.9, 0.5, 0.1, 0.7, 0.9, 0.3, 0.3]
    curve = expected_max_performance(scores, replacement=False)
    mean, std = brute_force(scores, replacement=False)
    np.testing.assert_allclose(curve.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(curve.std, std, atol=1e-9)


@pytest.mark.parametrize("replacement", [True, False])
def test_agrees_with_monte_carlo(replacement):
    rng = np.random.default_rng(7)
    scores = np.round(rng.beta(5, 2, size=40), 2)  # rounded: ties
    curve = expected_max_performance(scores, replacement=replacement)
    draws = 40_000
    for n in (1, 2, 5, 13, 40):
        if replacement:
            sample = rng.choice(scores, size=(draws, n), replace=True)
        else:
            sample = np.take(scores, np.argsort(rng.random((draws, scores.size)), axis=1)[:, :n])
        maxima = sample.max(axis=1)
        sigma = max(maxima.std(), 1e-12)
        assert abs(curve.mean[n - 1] - maxima.mean()) < 5 * sigma / math.sqrt(draws) + 1e-12
        assert curve.std[n - 1] == pytest.approx(maxima.std(), rel=0.05, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(scores=any_scores, replacement=st.booleans())
def test_monotone_in_n_and_bounded_by_the_scores(scores, replacement):
    curve = expected_max_performance(scores, replacement=replacement)
    lo, hi = min(scores), max(scores)
    slack = 1e-9 * max(1.0, abs(lo), abs(hi))
    assert np.all(np.diff(curve.mean) >= -slack)
    assert np.all(curve.mean >= lo - slack) and np.all(curve.mean <= hi + slack)
    assert np.all(curve.std >= 0) and np.all(curve.std <= (hi - lo) / 2 + slack)
    assert curve.n.tolist() == list(range(1, len(scores) + 1))
    assert curve.budget.tolist() == [float(k) for k in curve.n]


@settings(max_examples=200, deadline=None)
@given(scores=any_scores)
def test_estimators_agree_at_one_trial_and_without_replacement_ends_at_the_max(scores):
    with_r = expected_max_performance(scores, replacement=True)
    without = expected_max_performance(scores, replacement=False)
    scale = max(1.0, max(abs(s) for s in scores))
    assert with_r.mean[0] == pytest.approx(np.mean(scores), abs=1e-9 * scale)
    assert without.mean[0] == pytest.approx(np.mean(scores), abs=1e-9 * scale)
    assert with_r.std[0] == pytest.approx(np.std(scores), abs=1e-6 * scale)
    assert without.mean[-1] == max(scores)
    assert without.std[-1] == 0.0
    # without replacement is never behind: no trial is drawn twice
    assert np.all(without.mean >= with_r.mean - 1e-9 * scale)


@settings(max_examples=100, deadline=None)
@given(scores=any_scores, replacement=st.booleans())
def test_mode_min_mirrors_mode_max(scores, replacement):
    low = expected_max_performance(scores, replacement=replacement, mode="min")
    high = expected_max_performance([-s for s in scores], replacement=replacement)
    np.testing.assert_allclose(low.mean, -high.mean, atol=1e-12)
    np.testing.assert_allclose(low.std, high.std, atol=1e-12)
    assert np.all(np.diff(low.mean) <= 1e-9 * max(1.0, max(map(abs, scores))))


@settings(max_examples=60, deadline=None)
@given(scores=any_scores, order=st.randoms(use_true_random=False))
def test_order_of_the_trials_does_not_matter(scores, order):
    shuffled = list(scores)
    order.shuffle(shuffled)
    for replacement in (True, False):
        a = expected_max_performance(scores, replacement=replacement)
        b = expected_max_performance(shuffled, replacement=replacement)
        np.testing.assert_array_equal(a.mean, b.mean)


@pytest.mark.parametrize("replacement", [True, False])
def test_ten_thousand_scores_are_exact_and_stable(replacement):
    rng = np.random.default_rng(3)
    scores = rng.normal(0.8, 0.05, size=10_000)
    curve = expected_max_performance(scores, replacement=replacement)
    assert len(curve) == 10_000
    assert np.isfinite(curve.mean).all() and np.isfinite(curve.std).all()
    assert np.all(np.diff(curve.mean) >= -1e-12)
    assert curve.mean[0] == pytest.approx(scores.mean(), rel=1e-12)
    if not replacement:
        assert curve.mean[-1] == scores.max() and curve.std[-1] == 0.0
    # spot-check a few n against the plain formula P(max = v_(i)), computed independently
    v = np.sort(scores)
    i = np.arange(1, v.size + 1)
    log_fact = np.array([math.lgamma(k + 1.0) for k in range(v.size + 1)])
    for n in (2, 17, 400, 9_999):
        if replacement:
            cdf = (i / v.size) ** n
        else:
            log_c = log_fact[i] - log_fact[np.maximum(i - n, 0)] - log_fact[-1] + log_fact[-1 - n]
            cdf = np.where(i >= n, np.exp(log_c), 0.0)
        p = np.diff(np.concatenate([[0.0], cdf]))
        mean = p @ v
        assert curve.mean[n - 1] == pytest.approx(mean, rel=1e-12, abs=1e-10)
        assert curve.std[n - 1] == pytest.approx(math.sqrt(p @ (v - mean) ** 2), abs=1e-8)


def test_budgets_pick_trial_counts_and_match_the_full_curve():
    scores = np.linspace(0, 1, 50) ** 2
    full = expected_max_performance(scores, replacement=False)
    some = expected_max_performance(scores, replacement=False, budgets=[50, 3, 3, 10, 1])
    assert some.n.tolist() == [1, 3, 10, 50]
    np.testing.assert_allclose(some.mean, full.mean[[0, 2, 9, 49]], rtol=1e-12)
    np.testing.assert_allclose(some.std, full.std[[0, 2, 9, 49]], atol=1e-12)
    beyond = expected_max_performance(scores, budgets=[100, 1000])  # with replacement: any n
    assert beyond.mean[-1] <= 1.0 and beyond.mean[-1] > full.mean[-2]
    with pytest.raises(AnalysisError, match="1..50"):
        expected_max_performance(scores, replacement=False, budgets=[51])
    with pytest.raises(AnalysisError):
        expected_max_performance(scores, budgets=[0])
    with pytest.raises(AnalysisError, match="whole"):
        expected_max_performance(scores, budgets=[1.5])
    # runs, not scores: the message says how to get their scores
    runs = [RunRecord(id="a", name="a", metrics=(MetricPoint("accuracy", 0.5),))]
    with pytest.raises(AnalysisError, match=r"r.metric\('accuracy'\) for r in runs"):
        expected_max_performance(runs)


def test_nan_counts_as_the_worst_score_by_default():
    curve = expected_max_performance([0.9, float("nan"), 0.7, float("nan")])
    reference = expected_max_performance([0.9, 0.7, 0.7, 0.7])
    np.testing.assert_array_equal(curve.mean, reference.mean)
    assert curve.n_missing == 2 and curve.n_trials == 4 and curve.fill_value == 0.7
    assert curve.notes and "worst" in curve.notes[0]


def test_nan_with_fill_value_omit_and_raise():
    scores = [0.9, float("nan"), 0.7]
    filled = expected_max_performance(scores, fill_value=0.1)
    assert filled.mean[0] == pytest.approx((0.9 + 0.1 + 0.7) / 3)
    omitted = expected_max_performance(scores, nan_policy="omit")
    assert omitted.n_trials == 2 and omitted.mean[0] == pytest.approx(0.8)
    with pytest.raises(AnalysisError, match="NaN"):
        expected_max_performance(scores, nan_policy="raise")
    low = expected_max_performance([1.0, float("nan"), 3.0], mode="min")
    assert low.fill_value == 3.0  # the worst when lower is better


@pytest.mark.parametrize(
    "scores, options, message",
    [
        ([], {}, "no scores"),
        ([0.5, float("inf")], {}, "infinite"),
        ([0.5, -float("inf")], {"nan_policy": "omit"}, "infinite"),
        ([float("nan")] * 3, {}, "fill_value"),
        ([float("nan")] * 3, {"nan_policy": "omit"}, "every score is NaN"),
        ([0.5, float("nan")], {"fill_value": float("inf")}, "finite"),
        ([[0.1, 0.2]], {}, "one-dimensional"),
        (["a", "b"], {}, "numbers"),
    ],
)
def test_bad_scores_raise_analysis_error(scores, options, message):
    with pytest.raises(AnalysisError, match=message):
        expected_max_performance(scores, **options)


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="nan_policy"):
        expected_max_performance([1.0], nan_policy="ignore")
    with pytest.raises(ConfigError, match="mode"):
        expected_max_performance([1.0], mode="maximize")


def test_all_equal_scores_and_a_single_trial():
    flat = expected_max_performance([0.5] * 7, replacement=False)
    assert flat.mean.tolist() == [0.5] * 7 and flat.std.tolist() == [0.0] * 7
    one = expected_max_performance([0.25])
    assert one.mean.tolist() == [0.25] and one.std.tolist() == [0.0]


def test_curve_is_read_only_and_json_ready():
    curve = expected_max_performance([0.1, 0.5, float("nan")])
    with pytest.raises(ValueError):
        curve.mean[0] = 1.0
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["n"] == [1, 2, 3] and data["n_missing"] == 1 and data["budget_unit"] == "trials"
    assert isinstance(curve, EVPCurve)


def _trial(i, status, acc, kwh, fpo=None, parent=None):
    metrics = () if acc is None else (MetricPoint("acc", acc, step=0), MetricPoint("acc", acc))
    return RunRecord(
        id=f"r{i}",
        name=f"trial-{i}",
        status=status,
        parent_id=parent,
        energy_kwh=kwh,
        emissions_kg=kwh * 0.4,
        fpo=fpo,
        started_at=100.0 * i,  # one after another (ended by started_at + duration_s)
        duration_s=10.0 * (i + 1),
        metrics=metrics,
    )


def test_evp_by_budget_from_runs_counts_failed_trials_and_their_cost():
    runs = [
        _trial(0, "finished", 0.8, 0.2, fpo=100),
        _trial(1, "failed", 0.95, 0.1),  # logged a score, but failed: no usable model
        _trial(2, "pruned", 0.6, 0.05, fpo=40),  # pruned: its score so far counts
        _trial(3, "finished", 0.9, 0.25, fpo=120),
        _trial(4, "running", 0.99, 1.0),  # not a finished trial yet: left out
        RunRecord(id="sweep", name="sweep", status="finished", energy_kwh=0.6),
    ]
    runs = [r if r.id == "sweep" else _with_parent(r, "sweep") for r in runs]
    curve = evp_by_budget(runs, "energy_kwh", metric="acc")
    plain = expected_max_performance([0.8, 0.6, 0.6, 0.9])  # the failed trial counts as worst
    np.testing.assert_allclose(curve.mean, plain.mean)
    assert curve.budget_unit == "kWh"
    np.testing.assert_allclose(curve.budget, curve.n * (0.2 + 0.1 + 0.05 + 0.25) / 4)
    co2 = evp_by_budget(runs, "emissions_kg", metric="acc")
    np.testing.assert_allclose(co2.budget, curve.budget * 0.4)
    fpo = evp_by_budget(runs, "fpo", metric="acc")
    assert fpo.budget_unit == "FPO" and any("no FPO" in note for note in fpo.notes)
    np.testing.assert_allclose(fpo.budget, fpo.n * (100 + 40 + 120 + 260 / 3) / 4)
    trials = evp_by_budget(runs, "trials", metric="acc", replacement=False)
    assert trials.budget.tolist() == [1.0, 2.0, 3.0, 4.0] and trials.mean[-1] == 0.9


def _with_parent(run, parent):
    from dataclasses import replace

    return replace(run, parent_id=parent)


def test_evp_by_budget_with_plain_scores_and_costs():
    curve = evp_by_budget([0.1, 0.4, 0.3], [1.0, 2.0, 3.0], unit="GPU-hours")
    assert curve.budget_unit == "GPU-hours"
    np.testing.assert_allclose(curve.budget, [2.0, 4.0, 6.0])
    omitted = evp_by_budget([0.1, float("nan"), 0.3], [1.0, 5.0, 3.0], nan_policy="omit")
    np.testing.assert_allclose(omitted.budget, [2.0, 4.0])
    with pytest.raises(AnalysisError, match="one per trial"):
        evp_by_budget([0.1, 0.4], [1.0])
    with pytest.raises(AnalysisError, match="non-negative"):
        evp_by_budget([0.1, 0.4], [1.0, -1.0])
    with pytest.raises(AnalysisError, match="one number per trial"):
        evp_by_budget([0.1, 0.4], "energy_kwh")


def test_evp_by_budget_bad_runs():
    runs = [_trial(0, "finished", None, 0.1), _trial(1, "failed", None, 0.1)]
    with pytest.raises(AnalysisError, match="metric"):
        evp_by_budget(runs, metric="acc")
    with pytest.raises(AnalysisError, match="metric="):
        evp_by_budget(runs)
    with pytest.raises(ConfigError, match="costs"):
        evp_by_budget([_trial(0, "finished", 0.5, 0.1)], "joules", metric="acc")
    with pytest.raises(AnalysisError, match="known fpo"):
        evp_by_budget([_trial(0, "finished", 0.5, 0.1)], "fpo", metric="acc")


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(1, 12),
    width=st.sampled_from([1, 3, 159, 160, 161, 700]),  # both sides of the row-by-row width
    seed=st.integers(0, 2**32 - 1),
)
def test_running_products_are_cumprod_bit_for_bit(rows, width, seed):
    from greenprint.analysis._evp_kernels import running_products as _running_products

    rng = np.random.default_rng(seed)
    block = rng.random((rows, width))
    block[rng.random((rows, width)) < 0.1] = 0.0  # P(max <= v_(i)) is 0 for i < n
    expected = np.cumprod(block, axis=0)
    _running_products(block)
    assert block.tobytes() == expected.tobytes()


@pytest.mark.parametrize("replacement", [True, False])
def test_a_grid_of_trial_counts_reads_the_full_curve(replacement):
    """The report's log-spaced grid (above 1,000 trials) gives the full curve's values."""
    rng = np.random.default_rng(5)
    scores = np.round(rng.normal(0.8, 0.05, size=3_000), 4)  # ties, as accuracies have
    full = expected_max_performance(scores, replacement=replacement)
    grid = np.unique(np.round(np.geomspace(1, scores.size, 60)).astype(np.int64))
    some = expected_max_performance(scores, replacement=replacement, budgets=grid)
    # with replacement a grid's n are not consecutive (exp(n log(i/N)), not running products);
    # without, the products are the same but the sums are taken over other row sets
    np.testing.assert_allclose(some.mean, full.mean[grid - 1], rtol=1e-13)
    np.testing.assert_allclose(some.std, full.std[grid - 1], rtol=1e-9, atol=1e-13)


def test_a_curve_names_the_metric_a_trial_without_a_score_counts_as_the_worst_of():
    """The note names the score it speaks of: the report said '... counts as the worst (0.7)'
    and named the metric by editing that text; every caller now gives the name."""
    nan = math.nan
    assert expected_max_performance([0.7, 0.9, nan], metric="val_acc").notes == (
        "1 of 3 trials had no score and counts as the worst val_acc (0.7)",
    )
    assert expected_max_performance([0.7, 0.9, nan]).notes == (
        "1 of 3 trials had no score and counts as the worst (0.7)",
    )
    runs = [
        RunRecord(id=f"t{k}", name=f"t{k}", status=status, energy_kwh=0.1, metrics=points)
        for k, (status, points) in enumerate(
            [
                ("finished", (MetricPoint("loss", 0.4),)),
                ("finished", (MetricPoint("loss", 0.3),)),
                ("failed", ()),
            ]
        )
    ]
    curve = evp_by_budget(runs, "trials", metric="loss")
    assert isinstance(curve, EVPCurve)
    assert curve.notes[0] == "1 of 3 trials had no score and counts as the worst loss (0.4)"
    families = expected_max_performance([0.7, nan, 0.5], group_by=["a", "a", "b"], metric="f1")
    assert isinstance(families, dict)
    assert families["a"].notes == ("1 of 2 trials had no score and counts as the worst f1 (0.5)",)
