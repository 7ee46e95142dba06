"""The analysis API on what a new user's study leaves in the ledger (session 31).

* ``pareto_runs(runs, metric="val")`` on trials that logged ``value`` returned ``[]``: a name
  typed wrong read as "no trial is on the front", where ``efficiencies`` and ``evp_by_budget``
  name the metrics logged.
* ``price_tag(runs, metric="val_acc")`` on a study whose every trial logged ``val_acc`` but none
  finished (each stopped by its budget, one failed: a Ray Tune run with ``budget_s``) raised
  "no finished trial has a value of metric 'val_acc' to rank by ...; metrics logged:
  'val_acc'": no price tag for a study that cost energy, and a message that names the metric
  it says is missing. ``greenprint report`` priced the same study (it has no final run).
* ``evp_by_budget([], metric="acc")`` (an empty study) said "with plain scores, give costs as
  one number per trial".
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

import greenprint as gp
from greenprint import AnalysisError, MetricPoint, RunRecord
from greenprint.analysis import (
    efficiencies,
    evp_by_budget,
    learning_curve,
    pareto_runs,
    price_tag,
)


def _trial(k: int, status: str, kwh: float, metrics: dict[str, float]) -> RunRecord:
    return RunRecord(
        id=f"t{k}",
        name=f"trial-{k}",
        role="trial",
        status=status,
        energy_kwh=kwh,
        emissions_kg=kwh * 0.4,
        duration_s=kwh * 3600,
        started_at=float(k),
        ended_at=float(k) + 0.5,
        metrics=tuple(MetricPoint(name, value) for name, value in metrics.items()),
    )


def _optuna_like() -> list[RunRecord]:
    # as GreenprintCallback records trials: the objective value as "value"
    return [
        _trial(0, "finished", 0.010, {"value": 0.89}),
        _trial(1, "finished", 0.020, {"value": 0.90}),
        _trial(2, "pruned", 0.004, {"value": 0.72}),
        _trial(3, "failed", 0.001, {}),
    ]


def test_pareto_runs_with_a_metric_no_run_logged_names_those_logged() -> None:
    runs = _optuna_like()
    assert [r.name for r in pareto_runs(runs, metric="value")] == [
        "trial-1",
        "trial-0",
        "trial-2",
    ]
    with pytest.raises(AnalysisError) as info:
        pareto_runs(runs, metric="val")
    assert str(info.value) == (
        "none of the 4 runs logged metric 'val'; did you mean 'value'? (metrics logged: 'value')"
    )
    # the same words as efficiencies, which already refused it
    with pytest.raises(AnalysisError) as same:
        efficiencies(runs, metric="val")
    assert str(same.value) == str(info.value)
    # runs that logged no metric at all have no front (nothing scored yet): not an error
    assert pareto_runs([_trial(0, "finished", 0.01, {})], metric="value") == []
    assert pareto_runs([], metric="value") == []


def _stopped_by_budgets() -> list[RunRecord]:
    # a Ray Tune sweep whose trials were each stopped by budget_s, one failed: none finished
    sweep = RunRecord(
        id="s",
        name="rt2",
        role="sweep",
        status="finished",
        energy_kwh=2.75e-6,
        emissions_kg=1.32e-6,
        duration_s=4.6,
        started_at=0.0,
        ended_at=4.6,
    )
    trials = [
        _trial(0, "interrupted", 43.2e-9, {"val_acc": 0.925}),
        _trial(1, "failed", 19.3e-9, {"val_acc": 0.955}),
        _trial(2, "interrupted", 29.1e-9, {"val_acc": 0.9925}),
    ]
    return [sweep, *(replace(t, parent_id="s") for t in trials)]


def test_price_tag_of_a_study_whose_trials_all_stopped_has_no_final_run() -> None:
    runs = _stopped_by_budgets()
    tag = price_tag(runs, metric="val_acc")
    assert tag.final is None
    # the cost is all there: the sweep contains its trials, counted once
    assert tag.total.energy_kwh == pytest.approx(2.75e-6)
    assert tag.total.trials == 3
    assert sum(c.energy_kwh for c in tag.by_status.values()) == pytest.approx(2.75e-6)
    assert tag.metric == "val_acc"
    note = (
        "no finished trial has a value of 'val_acc' and no run has role 'final': the final run "
        "is not identified (runs that logged it: 'trial-0' (interrupted), 'trial-1' (failed), "
        "'trial-2' (interrupted))"
    )
    assert note in tag.notes
    assert tag.summary().splitlines()[-1] == note
    # a name no run logged is still refused, with the names logged
    with pytest.raises(AnalysisError, match="metrics logged: 'val_acc'$"):
        price_tag(runs, metric="val_ac")


def test_price_tag_of_a_budget_stopped_study_from_the_ledger(tmp_path) -> None:
    # the same from real runs: every trial stopped by its budget_s, each logged a score first
    ledger = tmp_path / "greenprint.db"
    for k in range(2):
        with pytest.raises(gp.BudgetExceeded):
            with gp.track(
                f"trial-{k}",
                study="stopped",
                ledger=ledger,
                role="trial",
                budget_s=0.05,
                on_exceed="stop",
                sample_interval_s=0.01,
            ) as run:
                for step in range(200):
                    run.log(val_acc=0.5 + k / 10 + step / 1000, step=step)
                    time.sleep(0.005)
    runs = gp.Ledger(ledger).runs(study="stopped")
    assert [r.status for r in runs] == ["interrupted", "interrupted"]
    tag = price_tag(runs, metric="val_acc")
    assert tag.final is None
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in runs))
    assert "the final run is not identified (runs that logged it: 'trial-0'" in tag.summary()


def test_evp_by_budget_of_an_empty_study_says_it_is_empty() -> None:
    for empty in ([], ()):
        with pytest.raises(AnalysisError) as info:
            evp_by_budget(empty, metric="accuracy")
        assert str(info.value) == "no runs or scores: evp_by_budget needs at least one trial"


def test_learning_curve_with_a_metric_no_run_logged_names_those_logged() -> None:
    # was: "no run carries both a dataset_size and a value of metric 'acc': set
    # run.set(dataset_size=...) when tracking", though every run carried one
    runs = [
        replace(_trial(k, "finished", 0.01 * (k + 1), {"accuracy": 0.5 + k / 10}), dataset_size=n)
        for k, n in enumerate([100, 200, 400])
    ]
    assert learning_curve(runs, metric="accuracy").dataset_size.tolist() == [100, 200, 400]
    with pytest.raises(AnalysisError) as info:
        learning_curve(runs, metric="acc")
    assert str(info.value) == "none of the 3 runs logged metric 'acc' (metrics logged: 'accuracy')"
