"""docs/analysis.md's functions checked by brute force, and their ``statuses`` (session 37).

``evp_by_budget`` on runs (a failed trial counts as the worst score; the x-axis is n x the mean
cost of a trial) and ``learning_curve``'s per-size means and sample deviations are recomputed
by enumeration on small random studies. What a new user met that was wrong: one status given
as a string, ``learning_curve(runs, metric="acc", statuses="finished")`` (as
``ledger.runs(status="finished")`` takes it), was the set of its letters, which kept no run;
the error then said ``no run carries both a dataset_size and a value of metric 'acc': set
run.set(dataset_size=...) when tracking`` about runs that carried both. So did a study whose
runs all failed: the advice to set a dataset size was wrong, their status left them out.
"""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

import greenprint as gp
from greenprint import AnalysisError, ConfigError
from greenprint.analysis import efficiencies, evp_by_budget, learning_curve


def _trial(k: int, status: str, kwh: float, acc: float | None, size: int | None = None):
    return gp.RunRecord(
        id=f"t{k}", name=f"t{k}", status=status, energy_kwh=kwh, emissions_kg=kwh * 0.4,
        duration_s=10.0 * (k + 1), started_at=1000.0 * (k + 1), ended_at=1000.0 * (k + 1) + 10,
        dataset_size=size, metrics=() if acc is None else (gp.MetricPoint("acc", acc),),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_evp_by_budget_on_runs_matches_enumerating_every_draw(seed: int):
    rng = random.Random(seed)
    statuses = ["finished", "finished", "pruned", "failed", "interrupted"]
    runs = [
        _trial(k, rng.choice(statuses), round(rng.uniform(0.01, 1), 3), round(rng.random(), 3))
        for k in range(rng.randint(2, 6))
    ]
    runs[0] = _trial(0, "finished", runs[0].energy_kwh, 0.5)  # at least one scored trial
    curve = evp_by_budget(runs, "energy_kwh", metric="acc")
    scored = [r.metrics[0].value if r.status in ("finished", "pruned") else None for r in runs]
    worst = min(s for s in scored if s is not None)
    scores = [worst if s is None else s for s in scored]
    mean_kwh = sum(r.energy_kwh for r in runs) / len(runs)
    for n in range(1, len(runs) + 1):
        best = [max(draw) for draw in itertools.product(scores, repeat=n)]
        assert curve.mean[n - 1] == pytest.approx(sum(best) / len(best), abs=1e-12)
        assert curve.std[n - 1] == pytest.approx(float(np.std(best)), abs=1e-12)
        assert curve.budget[n - 1] == pytest.approx(n * mean_kwh)  # kWh of n random trials


@pytest.mark.parametrize("seed", range(8))
def test_learning_curve_means_and_sample_stds_per_size_by_hand(seed: int):
    rng = random.Random(100 + seed)
    sizes = rng.sample([100, 200, 400, 800], rng.randint(1, 3))
    runs = [
        _trial(k, rng.choice(["finished", "finished", "failed"]), round(rng.uniform(0.01, 1), 3),
               round(rng.random(), 3), rng.choice(sizes))
        for k in range(rng.randint(2, 9))
    ]  # fmt: skip
    runs[0] = _trial(0, "finished", 0.5, 0.5, sizes[0])
    curve = learning_curve(runs, metric="acc")
    by_size: dict[int, list[gp.RunRecord]] = {}
    for r in runs:
        if r.status == "finished":
            by_size.setdefault(r.dataset_size or 0, []).append(r)
    assert curve.dataset_size.tolist() == sorted(by_size)
    for i, size in enumerate(sorted(by_size)):
        for values, mean, std in (
            ([r.metrics[0].value for r in by_size[size]], curve.score_mean, curve.score_std),
            ([r.energy_kwh for r in by_size[size]], curve.energy_kwh_mean, curve.energy_kwh_std),
        ):
            assert mean[i] == pytest.approx(sum(values) / len(values))
            if len(values) > 1:
                assert std[i] == pytest.approx(float(np.std(values, ddof=1)))
            else:
                assert math.isnan(std[i])  # one run says nothing of spread
        assert curve.n_runs[i] == len(by_size[size])


RUNS = [
    _trial(0, "failed", 0.2, 0.80, 100),
    _trial(1, "failed", 0.3, 0.85, 200),
    _trial(2, "pruned", 0.1, 0.70, 100),
]


def test_all_runs_left_out_by_status_says_so_not_set_a_dataset_size():
    with pytest.raises(AnalysisError) as caught:
        learning_curve(RUNS, metric="acc")
    message = str(caught.value)
    # the report reads a message that opens so as "no learning curve" (a note, not a crash)
    assert message.startswith("no run carries both a dataset_size and a value of metric 'acc'")
    assert "2 failed, 1 pruned" in message and "statuses=None" in message
    assert "set run.set(dataset_size" not in message
    assert learning_curve(RUNS, metric="acc", statuses=None).dataset_size.tolist() == [100, 200]


def test_one_status_as_a_string_is_that_status():
    curve = learning_curve(RUNS, metric="acc", statuses="failed")
    assert curve.dataset_size.tolist() == [100, 200]
    assert [e.run_id for e in efficiencies(RUNS, metric="acc", statuses="pruned")] == ["t2"]
    # scored_statuses="failed": the failed trials' scores count, the pruned one is the worst
    curve = evp_by_budget(RUNS, "trials", metric="acc", scored_statuses="failed")
    assert curve.mean[0] == pytest.approx((0.80 + 0.85 + 0.80) / 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: learning_curve(RUNS, metric="acc", statuses=("finshed",)),
        lambda: efficiencies(RUNS, metric="acc", statuses=["done"]),
        lambda: evp_by_budget(RUNS, "trials", metric="acc", scored_statuses=("ok",)),
        lambda: learning_curve(RUNS, metric="acc", statuses=5),
    ],
)
def test_an_unknown_status_is_a_config_error_listing_the_known_ones(call):
    with pytest.raises(ConfigError, match="finished"):
        call()


@pytest.mark.parametrize("metric", [None, 5, ""])
@pytest.mark.parametrize("name", ["pareto_runs", "efficiencies", "learning_curve", "price_tag"])
def test_a_metric_that_is_no_name_is_a_config_error(name: str, metric: object):
    """``pareto_runs(runs, metric=None)`` raised AttributeError ('NoneType' object has no
    attribute 'casefold'), ``price_tag(runs, metric=5)`` TypeError from a regular expression."""
    from greenprint import analysis

    if name == "price_tag" and metric is None:
        assert analysis.price_tag(RUNS).final is None  # no metric: a price tag without a final
        return
    with pytest.raises(ConfigError, match="metric must be a metric name"):
        getattr(analysis, name)(RUNS, metric=metric)


@pytest.mark.parametrize("replacement", ["no", "False", None, 0.0])
def test_a_replacement_that_is_no_bool_is_a_config_error_not_taken_as_true(replacement: object):
    # replacement="no" read as true: Dodge et al.'s estimator, not the one asked for
    runs = [_trial(0, "finished", 0.1, 0.5), _trial(1, "finished", 0.2, 0.7)]
    calls = (
        lambda: gp.analysis.expected_max_performance([0.5, 0.7], replacement=replacement),
        lambda: evp_by_budget(runs, "energy_kwh", metric="acc", replacement=replacement),
    )
    for call in calls:
        with pytest.raises(ConfigError, match=r"replacement must be True or False, not"):
            call()
    exact = gp.analysis.expected_max_performance([0.5, 0.7], replacement=np.bool_(False))
    assert exact.mean.tolist() == pytest.approx([0.6, 0.7])  # numpy's bool is a bool
