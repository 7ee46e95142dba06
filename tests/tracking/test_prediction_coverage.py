"""The prediction interval, proved by simulation: it holds the true total as often as it says,
and it narrows as the run goes.

Each simulated run has N steps whose costs are drawn independently (the model's assumption);
the predictor sees the cumulative cost after each step, as ``run.step()`` feeds it, and at a few
checkpoints its interval is compared with the run's true total. With normal step costs the
interval is exact (the pivot is Student-t distributed), so its coverage must match the nominal
90 % within Monte-Carlo error (3 standard errors: 0.9 +- 0.02 over 2,000 runs); with skewed
(gamma) costs and with uneven progress reports it is approximate, and must stay within 0.05.
Seeds are fixed: the figures are the same at every run.
"""

from __future__ import annotations

import numpy as np
import pytest

from greenprint._prediction import DEFAULT_CONFIDENCE, Predictor

RUNS = 2000
STEPS = 40
CHECKPOINTS = (3, 5, 10, 20, 35)  # steps done when the prediction is read


def simulate(costs: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and mean relative width of the energy interval at each checkpoint.

    Args:
        costs: (runs, steps) cost of each step.
        fractions: (steps,) cumulative fraction done after each step (ends at 1).
    """
    covered = np.zeros(len(CHECKPOINTS))
    widths = np.zeros(len(CHECKPOINTS))
    totals = costs.sum(axis=1)
    cumulative = costs.cumsum(axis=1)
    for run in range(costs.shape[0]):
        predictor = Predictor()
        for step in range(costs.shape[1]):
            spent = float(cumulative[run, step])
            predictor.observe(float(fractions[step]), spent, spent / 2, spent * 3)
            if step + 1 in CHECKPOINTS:
                k = CHECKPOINTS.index(step + 1)
                estimate = predictor.predict().energy_kwh
                covered[k] += estimate.low <= totals[run] <= estimate.high
                widths[k] += (estimate.high - estimate.low) / totals[run]
    return covered / costs.shape[0], widths / costs.shape[0]


def test_normal_step_costs_are_covered_at_the_nominal_rate_and_the_interval_narrows():
    rng = np.random.default_rng(20261130)
    costs = rng.normal(1.0, 0.3, size=(RUNS, STEPS))
    coverage, width = simulate(costs, np.arange(1, STEPS + 1) / STEPS)
    assert coverage == pytest.approx(np.full(len(CHECKPOINTS), DEFAULT_CONFIDENCE), abs=0.02)
    assert np.all(np.diff(width) < 0), width  # narrower at every later checkpoint
    # first principles at 20 of 40 steps: 2 t_{19} * 0.3 * sqrt(40 * 20 / 20) / 40
    assert width[3] == pytest.approx(2 * 1.729 * 0.3 * np.sqrt(40.0) / 40, rel=0.05)


def test_skewed_step_costs_are_covered_close_to_the_nominal_rate():
    rng = np.random.default_rng(7)
    costs = rng.gamma(shape=4.0, scale=0.25, size=(RUNS, STEPS))  # skewness 1
    coverage, width = simulate(costs, np.arange(1, STEPS + 1) / STEPS)
    assert np.all(np.abs(coverage - DEFAULT_CONFIDENCE) < 0.05), coverage
    assert np.all(np.diff(width) < 0), width


def test_uneven_reports_weighted_by_their_length_are_covered():
    rng = np.random.default_rng(11)
    lengths = rng.uniform(0.2, 1.8, size=STEPS)  # epochs of different sizes
    fractions = lengths.cumsum() / lengths.sum()
    fractions[-1] = 1.0
    shares = np.diff(np.concatenate([[0.0], fractions]))
    # a step's cost: mean and variance in proportion to its length (the model's increments)
    costs = rng.normal(shares * 100, np.sqrt(shares) * 3, size=(RUNS, STEPS))
    coverage, _ = simulate(costs, fractions)
    assert coverage == pytest.approx(np.full(len(CHECKPOINTS), DEFAULT_CONFIDENCE), abs=0.025)


def test_the_interval_closes_on_the_truth_at_the_end():
    rng = np.random.default_rng(3)
    costs = rng.normal(1.0, 0.3, size=STEPS)
    predictor = Predictor()
    for step, spent in enumerate(costs.cumsum(), start=1):
        predictor.observe(step / STEPS, float(spent), 0.0, 0.0)
    estimate = predictor.predict().energy_kwh
    assert estimate.low == estimate.value == estimate.high == pytest.approx(costs.sum())
