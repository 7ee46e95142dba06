"""Predictions of a run's totals: the maths (against first principles and scipy), what a run
logs as it goes, and the error it records at the end.

Energy comes from a constant-power meter set (3600 W: 1e-3 kWh per second), so a run that works
at an even pace has a true total the prediction can be held to.
"""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import greenprint as gp
from greenprint._prediction import (
    Estimate,
    Predictor,
    is_reserved_metric,
    metric_name,
    t_quantile,
)

from ._meters import ConstantPowerMeters


def _sampled(run, timeout_s: float = 30.0) -> None:
    """Wait for the run's first meter sample (its thread first records the environment, which
    can take longer than a few sample intervals on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while run.energy_kwh <= 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.energy_kwh > 0, "no meter sample"


def fast(**kw):
    meters = ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)
    return {"sample_interval_s": 0.02, "flush_interval_s": 0.05, "meters": meters, **kw}


@pytest.fixture
def ledger_path(tmp_path):
    return str(tmp_path / "ledger.db")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 30, 199, 200, 201, 1000, 100_000])
@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99])
def test_t_quantile_matches_scipy(df, confidence):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.t.ppf((1 + confidence) / 2, df)
    assert t_quantile(df, confidence) == pytest.approx(expected, rel=1e-7)


def test_t_quantile_closed_forms():
    # df=1 is Cauchy: tan(pi c / 2); df=2: 2c / sqrt(2 (1 - c^2))
    assert t_quantile(1, 0.9) == pytest.approx(math.tan(math.pi * 0.45), rel=1e-9)
    assert t_quantile(2, 0.9) == pytest.approx(2 * 0.9 / math.sqrt(2 * (1 - 0.81)), rel=1e-9)


def test_an_even_pace_predicts_exactly_with_no_spread():
    predictor = Predictor()
    for k in range(1, 5):
        predictor.observe(k / 10, 0.5 * k, 0.2 * k, 3.0 * k)
    p = predictor.predict()
    assert p.energy_kwh.value == pytest.approx(5.0)
    assert p.emissions_kg.value == pytest.approx(2.0)
    assert p.duration_s.value == pytest.approx(30.0)
    assert p.energy_kwh.low == pytest.approx(5.0) and p.energy_kwh.high == pytest.approx(5.0)
    assert p.fraction == 0.4 and p.reports == 4


def test_the_first_prediction_has_no_interval_and_is_kept():
    predictor = Predictor()
    predictor.observe(0.1, 1.0, 0.5, 10.0)
    first = predictor.first
    assert first.energy_kwh.value == pytest.approx(10.0)
    assert first.energy_kwh.low is None and first.energy_kwh.covers(10.0) is None
    predictor.observe(0.2, 2.5, 1.0, 20.0)
    assert predictor.first is first and predictor.predict().energy_kwh.low is not None


def test_the_interval_is_the_formula_of_the_method():
    # increments (df, dq): (0.1, 1), (0.1, 2), (0.2, 3); q = 6, f = 0.4, mu = 15
    predictor = Predictor(confidence=0.9)
    for f, q in ((0.1, 1.0), (0.2, 3.0), (0.4, 6.0)):
        predictor.observe(f, q, 0.0, 0.0)
    mu = 6.0 / 0.4
    s2 = ((1 - mu * 0.1) ** 2 / 0.1 + (2 - mu * 0.1) ** 2 / 0.1 + (3 - mu * 0.2) ** 2 / 0.2) / 2
    half = t_quantile(2, 0.9) * math.sqrt(s2 * 0.6 / 0.4)
    e = predictor.predict().energy_kwh
    assert e.value == pytest.approx(15.0)
    assert e.high == pytest.approx(15.0 + half) and e.low == pytest.approx(max(15.0 - half, 6.0))


def test_repeated_or_backward_reports_are_ignored():
    predictor = Predictor()
    assert predictor.observe(0.5, 1.0, 1.0, 1.0)
    assert not predictor.observe(0.5, 2.0, 2.0, 2.0)
    assert not predictor.observe(0.4, 2.0, 2.0, 2.0)
    assert predictor.reports == 1 and predictor.predict().energy_kwh.value == pytest.approx(2.0)


@given(
    st.lists(st.tuples(st.floats(1e-3, 1.0), st.floats(0.0, 1e3)), min_size=1, max_size=30),
    st.floats(0.5, 0.999),
)
def test_the_interval_brackets_the_point_and_never_goes_below_what_is_spent(steps, confidence):
    total_df = sum(df for df, _ in steps) * 1.0001
    predictor = Predictor(confidence=confidence)
    fraction = spent = 0.0
    for df, dq in steps:
        fraction += df / total_df
        spent += dq
        predictor.observe(fraction, spent, spent, spent)
        for _, e in predictor.predict().items():
            assert e.value == pytest.approx(spent / fraction)
            if e.low is not None:
                assert spent - 1e-9 * spent <= e.low <= e.value * (1 + 1e-12) + 1e-12
                assert e.high >= e.value * (1 - 1e-12)


def test_reserved_metric_names():
    assert metric_name("predicted_energy_kwh") == "greenprint.predicted_energy_kwh"
    assert is_reserved_metric("greenprint.progress") and not is_reserved_metric("accuracy")


def test_a_run_with_steps_logs_its_predictions_and_records_its_error(ledger_path):
    total = 20
    with gp.track("stepped", ledger=ledger_path, **fast()) as run:
        assert run.prediction is None
        run.expect(total_steps=total)
        for k in range(total):
            time.sleep(0.02)
            run.step()
            run.log(loss=1.0 / (k + 1), step=k)
    assert run.status == "finished"
    first = run.first_prediction
    # predictions start at the first step after the first meter sample (0.02 s in)
    assert first.fraction in (1 / total, 2 / total, 3 / total)
    # 3600 W: the predicted energy is the predicted time at 1e-3 kWh per second
    assert first.energy_kwh.value == pytest.approx(first.duration_s.value * 1e-3, rel=0.2)
    rec = gp.Ledger(ledger_path).run(run.id)
    assert rec.metric("loss") == pytest.approx(1 / total)
    k0 = round(first.fraction * total)
    for quantity in ("energy_kwh", "emissions_kg", "duration_s"):
        predicted = [p for p in rec.metrics if p.name == f"greenprint.predicted_{quantity}"]
        # every step is 5 % of the run (more than 1 %): each one logged, by its step
        assert [p.step for p in predicted] == list(range(k0, total + 1))
        lows = [p for p in rec.metrics if p.name == f"greenprint.predicted_{quantity}_low"]
        assert [p.step for p in lows] == list(range(k0 + 1, total + 1))  # two reports at least
    # at the end the prediction is the truth
    assert rec.metric("greenprint.predicted_energy_kwh") == pytest.approx(rec.energy_kwh, rel=0.05)
    # the error of the first prediction against the actual total, relative and signed
    error = rec.metric("greenprint.prediction_error_energy_kwh")
    assert error == pytest.approx((first.energy_kwh.value - run.energy_kwh) / run.energy_kwh)
    assert rec.metric("greenprint.prediction_error_duration_s") == pytest.approx(
        (first.duration_s.value - run.duration_s) / run.duration_s
    )
    assert rec.metric("greenprint.prediction_first_fraction") == pytest.approx(first.fraction)


def test_progress_by_epoch_predicts_energy_time_and_co2_against_first_principles(ledger_path):
    with gp.track("epochs", ledger=ledger_path, intensity=500, pue=1.2, **fast()) as run:
        for epoch in range(4):
            time.sleep(0.1)
            run.progress((epoch + 1) / 4)
            p = run.prediction
            # 1e-3 kWh per second for 4 epochs of the pace so far; CO2 = kWh x PUE x g/kWh
            assert p.energy_kwh.value == pytest.approx(
                1e-3 * run.duration_s * 4 / (epoch + 1), rel=0.1
            )
            assert p.emissions_kg.value == pytest.approx(p.energy_kwh.value * 1.2 * 0.5, rel=0.1)
            assert p.duration_s.value == pytest.approx(run.duration_s * 4 / (epoch + 1), rel=0.1)
    rec = gp.Ledger(ledger_path).run(run.id)
    assert [p.value for p in rec.metrics if p.name == "greenprint.progress"] == [0.25, 0.5, 0.75, 1]
    assert abs(rec.metric("greenprint.prediction_error_energy_kwh")) < 0.3
    assert rec.metric("greenprint.prediction_error_emissions_kg") is not None


def test_an_interrupted_or_unfinished_run_records_no_prediction_error(ledger_path):
    with pytest.raises(KeyboardInterrupt):
        with gp.track("cut", ledger=ledger_path, **fast()) as cut:
            _sampled(cut)
            cut.progress(0.5)
            raise KeyboardInterrupt
    with gp.track("early-exit", ledger=ledger_path, **fast()) as short:
        _sampled(short)
        short.progress(0.5)  # finished at half of what it said
    for run in (cut, short):
        rec = gp.Ledger(ledger_path).run(run.id)
        assert rec.metric("greenprint.predicted_energy_kwh") is not None
        assert rec.metric("greenprint.prediction_error_energy_kwh") is None


def test_predictions_are_never_taken_for_a_score(ledger_path):
    from greenprint.report import build_report

    with gp.track("scored", study="s", ledger=ledger_path, **fast()) as run:
        _sampled(run)
        run.progress(0.5)
        run.progress(1.0)
        run.log(accuracy=0.9)
    with gp.track("unscored", study="s", ledger=ledger_path, **fast()) as run:
        _sampled(run)
        run.progress(1.0)
    runs = gp.Ledger(ledger_path).runs(study="s")
    assert all(r.metric("greenprint.predicted_energy_kwh") is not None for r in runs)
    report = build_report(ledger_path, "s")
    assert report.metric == "accuracy"
    assert not any("greenprint." in note for note in report.notes)


def test_a_run_with_no_energy_meter_predicts_its_time_only(ledger_path, caplog):
    """``meters=[]``: energy and CO2-eq unknown, so the prediction holds ``None`` for them.

    Until session 43's follow-up ``run.prediction`` and ``run.first_prediction`` held an energy
    and CO2-eq of 0 with a 0-wide interval (``p.energy_kwh.value`` printed 0 µWh), a budget
    on them was compared with that 0, and the report read a ledger's 0-wide intervals at 0 kWh
    as holding the run's energy.
    """
    import dataclasses

    from greenprint._budget import BudgetGuard, Spent
    from greenprint._records import MetricPoint
    from greenprint.report._prediction import prediction_summary

    predictor = Predictor(metered=False)
    for k in (1, 2, 3):
        predictor.observe(k / 4, 0.0, 0.0, 2.0 * k)
    p = predictor.predict()
    assert p.energy_kwh is None and p.emissions_kg is None and predictor.first.energy_kwh is None
    assert p.duration_s.value == pytest.approx(8.0) and [q for q, _ in p.items()] == ["duration_s"]

    # a first sample a minute away: a run with no meter predicts its time from the clock at
    # once (it waited for a meter sample, with nothing to read from it: a fit whose epochs all
    # ended before its first sample predicted nothing)
    slow = fast(meters=[], sample_interval_s=60.0, flush_interval_s=60.0)
    with gp.track("unmetered", study="u", ledger=ledger_path, **slow) as run:
        run.progress(0.25)
        assert run.prediction is not None and run.predicted_duration_s is not None
        for fraction in (0.5, 0.75, 1.0):
            time.sleep(0.01)
            run.progress(fraction)
    for p in (run.prediction, run.first_prediction):
        assert p.energy_kwh is None and p.emissions_kg is None and p.duration_s.value > 0
    assert run.prediction.duration_s.low is not None  # time still has its interval
    assert run.predicted_energy_kwh is None and run.predicted_emissions_kg is None
    rec = gp.Ledger(ledger_path).run(run.id)
    names = {point.name for point in rec.metrics}
    assert "greenprint.prediction_error_duration_s" in names
    assert not [n for n in names if "energy" in n or "emissions" in n]

    # a budget: energy and CO2-eq limits are not checked against a prediction (never "within
    # budget" from a 0: a study at 0.9 of 1 kWh read 0.9 + 0 predicted), time still is
    budgets = [gp.Budget(kwh=1.0, kg=1.0, per="study"), gp.Budget(kwh=1e-9, s=10.0)]
    guard = BudgetGuard(budgets, study="u")
    guard.study_base = Spent(kwh=0.9, kg=0.9)
    unmetered = predictor.predict()
    timed = dataclasses.replace(unmetered, duration_s=Estimate(20.0))
    assert guard.check_predicted(unmetered, Spent(s=1.0), Spent(s=1.0)) == []
    (event,) = guard.check_predicted(timed, Spent(s=1.0), Spent(s=1.0))
    assert event.budget is budgets[1] and "time 20 s in all" in event.message

    # the report: the run predicted (by its time), no energy error; a ledger of before the fix
    # holds 0-wide energy intervals at 0 kWh, which held no unknown energy
    (row,) = prediction_summary([rec]).rows
    assert row.errors["energy_kwh"] is None and row.errors["duration_s"] is not None
    old = [MetricPoint("greenprint.progress", 0.5, 2, 1.0)]
    for edge in ("low", "high"):
        old.append(MetricPoint(f"greenprint.predicted_energy_kwh_{edge}", 0.0, 2, 1.0))
    summary = prediction_summary([dataclasses.replace(rec, metrics=rec.metrics + tuple(old))])
    assert (summary.intervals, summary.covered) == (0, 0)
    assert summary.table()[1][0][-1] == "-"
