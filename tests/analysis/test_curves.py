"""Learning curves and efficiency metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from greenprint import AnalysisError, ConfigError, MetricPoint, RunRecord
from greenprint.analysis import (
    FPO_PER_GFLOP,
    efficiencies,
    efficiency,
    learning_curve,
    run_learning_curve,
    score_per_cost,
)


def _run(rid, size, acc, kwh, status="finished", fpo=None, duration_s=10.0):
    metrics = () if acc is None else (MetricPoint("acc", acc),)
    return RunRecord(
        id=rid,
        name=rid,
        status=status,
        dataset_size=size,
        energy_kwh=kwh,
        emissions_kg=kwh * 0.5,
        fpo=fpo,
        duration_s=duration_s,
        metrics=metrics,
    )


def test_learning_curve_aggregates_repeats_by_size():
    runs = [
        _run("a1", 100, 0.60, 0.01, fpo=10**9),
        _run("a2", 100, 0.64, 0.03, fpo=3 * 10**9),
        _run("b1", 400, 0.80, 0.04),
        _run("c1", 1600, 0.90, 0.16, fpo=16 * 10**9, duration_s=40.0),
        _run("c2", 1600, 0.92, 0.18, fpo=18 * 10**9, duration_s=44.0),
        _run("c3", 1600, 0.94, 0.20, fpo=20 * 10**9, duration_s=48.0),
        _run("x", None, 0.99, 1.0),  # no dataset size: skipped
        _run("y", 400, None, 1.0),  # no score: skipped
        _run("z", 400, 0.1, 1.0, status="failed"),  # not finished: not used, not counted
    ]
    curve = learning_curve(runs, metric="acc")
    assert curve.dataset_size.tolist() == [100, 400, 1600]
    assert curve.n_runs.tolist() == [2, 1, 3]
    np.testing.assert_allclose(curve.score_mean, [0.62, 0.80, 0.92])
    np.testing.assert_allclose(curve.score_std[[0, 2]], [np.std([0.6, 0.64], ddof=1), 0.02])
    assert math.isnan(curve.score_std[1])  # a single run has no spread
    np.testing.assert_allclose(curve.energy_kwh_mean, [0.02, 0.04, 0.18])
    np.testing.assert_allclose(curve.emissions_kg_mean, [0.01, 0.02, 0.09])
    assert curve.fpo_mean[0] == 2e9 and math.isnan(curve.fpo_mean[1])
    np.testing.assert_allclose(curve.duration_s_mean, [10.0, 10.0, 44.0])
    assert curve.n_skipped == 2 and "2 runs" in curve.notes[0]
    assert len(curve) == 3
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["score_std"][1] is None and data["fpo_mean"][1] is None
    with pytest.raises(ValueError):
        curve.score_mean[0] = 1.0
    every = learning_curve(runs, metric="acc", statuses=None)
    assert every.n_runs.tolist() == [2, 2, 3]


def test_learning_curve_without_usable_runs():
    with pytest.raises(AnalysisError, match="dataset_size"):
        learning_curve([_run("x", None, 0.5, 0.1)], metric="acc")
    # a diverged run (its last score infinite) has no score, as a NaN: no point from it alone
    with pytest.raises(AnalysisError, match="dataset_size"):
        learning_curve([_run("x", 10, math.inf, 0.1)], metric="acc")
    curve = learning_curve([_run("x", 10, math.inf, 0.1), _run("y", 10, 0.5, 0.1)], metric="acc")
    assert curve.n_runs.tolist() == [1] and curve.score_mean.tolist() == [0.5]


def test_efficiency_per_gflop_kwh_and_kg():
    run = _run("a", 100, 0.9, 0.5, fpo=3 * 10**9)
    eff = efficiency(run, metric="acc")
    assert FPO_PER_GFLOP == 1e9 and eff.gflop == 3.0
    assert eff.score_per_gflop == pytest.approx(0.3)
    assert eff.score_per_kwh == pytest.approx(1.8)
    assert eff.score_per_kg == pytest.approx(3.6)
    unmeasured = efficiency(_run("b", 100, 0.9, 0.0), metric="acc")
    assert unmeasured.score_per_kwh is None and unmeasured.score_per_gflop is None
    assert efficiency(_run("c", 100, None, 1.0), metric="acc").score is None
    assert json.dumps(eff.to_dict())


def test_efficiencies_over_runs_keep_scored_runs_with_chosen_statuses():
    runs = [
        _run("a", 1, 0.9, 0.5),
        _run("b", 1, None, 0.5),
        _run("c", 1, 0.4, 0.1, status="pruned"),
    ]
    assert [e.run_id for e in efficiencies(runs, metric="acc")] == ["a"]
    assert [e.run_id for e in efficiencies(runs, metric="acc", statuses=None)] == ["a", "c"]


@pytest.mark.parametrize(
    "score, cost, expected",
    [
        (1.0, 2.0, 0.5),
        (1.0, 0.0, None),
        (None, 1.0, None),
        (1.0, None, None),
        (math.nan, 1.0, None),
        (1.0, math.inf, None),
        (1.0, -1.0, None),
    ],
)
def test_score_per_cost(score, cost, expected):
    assert score_per_cost(score, cost) == expected


def test_run_learning_curve_validates_before_tracking():
    with pytest.raises(ConfigError, match="empty"):
        run_learning_curve(lambda f: 1.0, [], study="s", ledger=False)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        run_learning_curve(lambda f: 1.0, [0.5, 1.5], study="s", ledger=False)
    with pytest.raises(ConfigError, match="repeats"):
        run_learning_curve(lambda f: 1.0, [0.5], study="s", ledger=False, repeats=0)
    with pytest.raises(ConfigError, match="full_size"):
        run_learning_curve(lambda f: 1.0, [0.5], study="s", ledger=False, full_size=0)
    with pytest.raises(ConfigError, match="track_options"):
        run_learning_curve(
            lambda f: 1.0, [0.5], study="s", ledger=False, track_options={"study": "x"}
        )


def test_run_learning_curve_tracks_each_fraction(tracking, tmp_path):
    calls = []

    def train(fraction, seed):
        calls.append((fraction, seed))
        return 0.5 + 0.4 * fraction + seed * 1e-3

    curve = run_learning_curve(
        train,
        [0.25, 1.0, 0.5],
        study="lc",
        ledger=False,
        full_size=1000,
        repeats=2,
        seed=10,
        metric="acc",
        track_options={"sample_interval_s": 0.05},
    )
    assert calls == [(0.25, 10), (0.25, 11), (1.0, 10), (1.0, 11), (0.5, 10), (0.5, 11)]
    assert curve.dataset_size.tolist() == [250, 500, 1000]
    assert curve.n_runs.tolist() == [2, 2, 2]
    np.testing.assert_allclose(curve.score_mean, [0.6105, 0.7105, 0.9105])
    assert np.all(curve.energy_kwh_mean >= 0) and np.all(curve.duration_s_mean > 0)


def test_run_learning_curve_sizes_from_fn_and_failures(tracking):
    curve = run_learning_curve(
        lambda f: (f, int(f * 64)),
        [0.5, 1.0],
        study="lc",
        ledger=False,
        track_options={"sample_interval_s": 0.05},
    )
    assert curve.dataset_size.tolist() == [32, 64]
    with pytest.raises(AnalysisError, match="full_size"):
        run_learning_curve(lambda f: 0.5, [0.5], study="lc", ledger=False)
    with pytest.raises(AnalysisError, match="finite"):
        run_learning_curve(lambda f: math.nan, [0.5], study="lc", ledger=False, full_size=10)
    with pytest.raises(RuntimeError, match="boom"):
        run_learning_curve(_boom, [0.5], study="lc", ledger=False, full_size=10)


def _boom(fraction):
    raise RuntimeError("boom")


def test_tracked_study_through_a_real_ledger(tracking, tmp_path):
    """A small nested study tracked into a SQLite ledger, read back and priced."""
    ledger_mod = pytest.importorskip("greenprint.ledger")
    from greenprint.analysis import evp_by_budget, price_tag

    path = tmp_path / "gp.db"
    run_learning_curve(
        lambda f: 0.5 + 0.4 * f,
        [0.5, 1.0],
        study="lc",
        ledger=str(path),
        full_size=100,
        track_options={"sample_interval_s": 0.05},
    )
    with tracking("sweep", study="lc", ledger=str(path), sample_interval_s=0.05) as parent:
        for k in range(3):
            with tracking(f"t{k}", study="lc", ledger=str(path), sample_interval_s=0.05) as t:
                t.log(acc=0.6 + 0.1 * k)
    runs = ledger_mod.Ledger(str(path)).runs(study="lc")
    assert len(runs) == 6
    assert sum(r.parent_id == parent.id for r in runs) == 3
    curve = learning_curve(runs, metric="score")
    assert curve.dataset_size.tolist() == [50, 100]
    np.testing.assert_allclose(curve.score_mean, [0.7, 0.9])
    tag = price_tag(runs, metric="acc")
    # the learning-curve runs are not trials (run_learning_curve gives them that role)
    assert tag.total.runs == 6 and tag.total.trials == 3
    assert tag.by_role["learning-curve"].runs == 2
    assert tag.final is not None and tag.final.name == "t2"
    roots = [r for r in runs if r.parent_id is None]
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in roots), rel=1e-6)
    evp = evp_by_budget(runs, "trials", metric="acc")
    assert evp.n_trials == 3 and evp.n_missing == 0
