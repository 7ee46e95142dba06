"""Budgets that act: a run's and a study's limits warn, stop the run, or call back.

Energy comes from a constant-power meter set: at 3600 W a run spends exactly 1 Wh (1e-3 kWh)
per second, so every limit below is a number of seconds of work.
"""

from __future__ import annotations

import logging
import pickle
import sys
import time

import pytest

import greenprint as gp
from greenprint._lifecycle import status_for

from ._meters import ConstantPowerMeters

KWH_PER_S = 1e-3  # 3600 W


def meters() -> ConstantPowerMeters:
    return ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)


def fast(**kw):
    return {"sample_interval_s": 0.02, "flush_interval_s": 0.05, "meters": meters(), **kw}


@pytest.fixture
def ledger_path(tmp_path):
    return str(tmp_path / "ledger.db")


def log_until_raised(run, limit_s=5.0):
    """Call run.log() in a loop (the user's training loop) until it raises; return the error."""
    deadline = time.time() + limit_s
    step = 0
    while time.time() < deadline:
        step += 1
        run.log(loss=1.0 / step, step=step)
        time.sleep(0.01)
    raise AssertionError("no BudgetExceeded within the time limit")


def test_stop_raises_at_the_next_log_and_the_run_ends_interrupted_with_its_cost(ledger_path):
    with pytest.raises(gp.BudgetExceeded) as caught:
        with gp.track(
            "capped", ledger=ledger_path, budget_kwh=1e-4, on_exceed="stop", **fast()
        ) as run:
            log_until_raised(run)
    err = caught.value
    assert err.limit == "budget_kwh" and err.per == "run" and err.budget == 1e-4
    assert err.spent > 1e-4
    assert "over budget" in str(err) and "budget_kwh" in str(err)
    (rec,) = gp.Ledger(ledger_path).runs()
    assert rec.status == "interrupted"
    assert rec.error.startswith("BudgetExceeded: ") and "budget_kwh" in rec.error
    # the cost is kept: at least what had been spent when it was noticed, and it adds up
    assert rec.energy_kwh >= err.spent
    assert rec.energy_kwh == pytest.approx(rec.duration_s * KWH_PER_S, rel=0.1)
    assert rec.metric("loss") is not None  # metrics logged before the stop are kept


def test_a_caught_stop_still_ends_the_run_interrupted(ledger_path):
    with gp.track("caught", ledger=ledger_path, budget_s=0.1, on_exceed="stop", **fast()) as run:
        with pytest.raises(gp.BudgetExceeded) as caught:
            log_until_raised(run)
        run.log(loss=0.0)  # raised once only: the user may save and leave
    assert caught.value.limit == "budget_s"
    assert run.status == "interrupted"
    assert gp.Ledger(ledger_path).run(run.id).error.startswith("BudgetExceeded: ")


def test_warn_warns_once_and_never_stops(ledger_path, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    with gp.track("warned", ledger=ledger_path, budget_kwh=5e-5, **fast()) as run:
        time.sleep(0.3)  # many samples over the budget
        run.log(loss=1.0)
    assert run.status == "finished" and run.over_budget
    warnings = [r for r in caplog.records if "over budget" in r.getMessage()]
    assert len(warnings) == 1


def test_a_callable_is_called_once_with_the_run_and_the_exception(ledger_path):
    calls = []
    with gp.track(
        "called",
        ledger=ledger_path,
        budget_kwh=5e-5,
        on_exceed=lambda run, exceeded: calls.append((run, exceeded)),
        **fast(),
    ) as run:
        time.sleep(0.3)
        run.log(loss=1.0)
    assert len(calls) == 1
    assert calls[0][0] is run and isinstance(calls[0][1], gp.BudgetExceeded)
    assert run.status == "finished"


def test_a_failing_callable_is_logged_not_raised(ledger_path, caplog):
    def broken(run, exceeded):
        raise RuntimeError("boom")

    with gp.track("broken", ledger=ledger_path, budget_s=0.05, on_exceed=broken, **fast()) as run:
        time.sleep(0.2)
        run.log(loss=1.0)
    assert run.status == "finished"
    assert any("on_exceed" in r.getMessage() for r in caplog.records)


def test_fpo_budget_stops_at_add_fpo(ledger_path):
    with gp.track("fpo", ledger=ledger_path, budget_fpo=1e9, on_exceed="stop", **fast()) as run:
        run.add_fpo(600_000_000)
        with pytest.raises(gp.BudgetExceeded) as caught:
            run.add_fpo(600_000_000)
    assert caught.value.limit == "budget_fpo" and caught.value.spent == 1.2e9
    assert run.status == "interrupted" and run.fpo == 1_200_000_000


def test_time_budget_stops_at_step(ledger_path):
    with pytest.raises(gp.BudgetExceeded, match="budget_s"):
        with gp.track("t", ledger=ledger_path, budget_s=0.1, on_exceed="stop", **fast()) as run:
            run.expect(total_steps=10_000)
            for _ in range(10_000):
                time.sleep(0.005)
                run.step()
    assert run.status == "interrupted"
    assert 0.1 < run.duration_s < 2.0


def study_of_three_roots(ledger_path, study):
    """Two earlier trials, the first with a part inside it: (sum over roots, the part's kWh)."""
    with gp.track("trial-a", study=study, ledger=ledger_path, **fast()) as a:
        with gp.track("fold-0", study=study, ledger=ledger_path, **fast()) as part:
            time.sleep(0.25)
    with gp.track("trial-b", study=study, ledger=ledger_path, **fast()) as b:
        time.sleep(0.1)
    return a.energy_kwh + b.energy_kwh, part.energy_kwh


def test_study_budget_sums_the_top_level_runs_of_the_ledger_once(ledger_path):
    roots_kwh, part_kwh = study_of_three_roots(ledger_path, "sweep")
    assert part_kwh > 2e-4  # counting the part again would put the study over at once
    budget = gp.Budget(kwh=roots_kwh + 1.5e-4, per="study", on_exceed="stop")
    # this run at a tenth of the power (1e-4 kWh a second): its 1.5e-4 kWh left are 1.5 s, not
    # 0.15 s a loaded machine can take before its first log; the part counted again would
    # still be over at once (> 2e-4)
    slow = fast(meters=ConstantPowerMeters(cpu_w=360.0, ram_w=0.0, process_share=1.0))
    with pytest.raises(gp.BudgetExceeded) as caught:
        with gp.track("trial-c", study="sweep", ledger=ledger_path, budget=budget, **slow) as run:
            run.log(loss=1.0)  # not over at the start: the part is inside its trial
            assert not run.over_budget
            log_until_raised(run)
    err = caught.value
    assert err.per == "study" and err.limit == "study budget_kwh" and err.study == "sweep"
    # what the study had spent: the two earlier trials plus this run so far (its own live cost)
    own = err.spent - roots_kwh
    assert 1.5e-4 < own < run.energy_kwh + 1e-9
    assert run.status == "interrupted"
    assert "study 'sweep'" in gp.Ledger(ledger_path).run(run.id).error


def test_a_study_already_over_budget_stops_the_next_run_at_its_first_log(ledger_path):
    roots_kwh, _ = study_of_three_roots(ledger_path, "spent")
    budget = gp.Budget(kwh=roots_kwh / 2, per="study", on_exceed="stop")
    with pytest.raises(gp.BudgetExceeded):
        with gp.track("late", study="spent", ledger=ledger_path, budget=budget, **fast()) as run:
            run.log(loss=1.0)
    assert run.status == "interrupted"
    assert run.duration_s < 1.0


def test_study_budget_ignores_other_studies(ledger_path):
    study_of_three_roots(ledger_path, "other")
    budget = gp.Budget(kwh=1e-4, per="study", on_exceed="stop")
    # the other study spent > 3.5e-4 kWh (over this budget if counted); this run draws 36 W
    # (1e-5 kWh a second): 10 s to its budget, not the 0.1 s a loaded machine could take
    low = fast(meters=ConstantPowerMeters(cpu_w=36.0, ram_w=0.0, process_share=1.0))
    with gp.track("alone", study="fresh", ledger=ledger_path, budget=budget, **low) as run:
        run.log(loss=1.0)
    assert run.status == "finished"


def test_a_predicted_overrun_warns_once_before_the_budget_is_crossed(ledger_path, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    with gp.track("early", ledger=ledger_path, budget_kwh=2e-3, **fast()) as run:
        for k in range(1, 4):
            time.sleep(0.05)
            run.progress(0.01 * k)  # 1 % per 0.05 s: about 5 s, 5e-3 kWh in all, over 2e-3
        over_then = run.over_budget  # about 0.15 s in: 1.5e-4 kWh spent
    predicted = [r for r in caplog.records if "predicted to go over budget" in r.getMessage()]
    assert len(predicted) == 1 and not over_then
    assert "budget_kwh" in predicted[0].getMessage()
    assert run.first_prediction.energy_kwh.value > 2e-3


def test_budget_objects_and_options_are_checked_before_anything_is_written(tmp_path):
    path = tmp_path / "never.db"
    bad = [
        {"budget_s": 0},
        {"budget_fpo": -1},
        {"budget_kwh": 1, "on_exceed": "explode"},
        {"budget": "5 kWh"},
        {"budget": [gp.Budget(kwh=1), 3]},
    ]
    for options in bad:
        with pytest.raises(gp.ConfigError):
            gp.track("x", ledger=str(path), **options)
    with pytest.raises(gp.ConfigError, match="needs a ledger"):
        gp.track("x", ledger=False, budget=gp.Budget(kwh=1, per="study"))
    with pytest.raises(gp.ConfigError, match="at least one limit"):
        gp.Budget()
    with pytest.raises(gp.ConfigError, match="per"):
        gp.Budget(kwh=1, per="team")  # type: ignore[arg-type]
    with pytest.raises(gp.ConfigError, match="budget_kg"):
        gp.Budget(kg=float("nan"))
    assert not path.exists()


def test_budget_exceeded_pickles_with_its_figures_and_means_interrupted():
    err = gp.BudgetExceeded(
        "over", limit="budget_kwh", budget=1.0, spent=1.5, per="study", run_id="ab", study="s"
    )
    copy = pickle.loads(pickle.dumps(err))
    assert vars(copy) == vars(err) and str(copy) == "over"
    assert isinstance(err, gp.GreenprintError)
    assert status_for(err) == ("interrupted", "BudgetExceeded: over")


def test_a_stop_limit_crossed_in_the_last_moments_ends_the_run_interrupted(ledger_path):
    # no sample and no log() after the limit: the final sample crosses it (more in
    # tests/test_budget_edges.py)
    options = fast(sample_interval_s=5.0, flush_interval_s=5.0)
    with gp.track("late", ledger=ledger_path, budget_s=0.05, on_exceed="stop", **options) as run:
        time.sleep(0.1)
    assert run.over_budget
    assert run.status == "interrupted"
    assert gp.Ledger(ledger_path).run(run.id).error.startswith("BudgetExceeded: ")


def _ended(raise_exit) -> BaseException:
    try:
        raise_exit()
    except BaseException as e:  # the exception a run's block would see
        return e
    raise AssertionError("nothing raised")


def test_an_exit_while_a_ctrl_c_is_handled_is_that_ctrl_c():
    """Lightning answers a Ctrl-C in ``fit`` with ``sys.exit(1)``: every run around it (a
    ``gp.track`` block, an Optuna trial, a notebook cell) reads it as the Ctrl-C; an exit of
    its own, or one while another error is handled, stays what it was."""

    def exit_in_handler(code):
        def raise_exit():
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                sys.exit(code)

        return raise_exit

    def exit_in_error_handler():
        try:
            raise ValueError("bad")
        except ValueError:
            sys.exit(3)

    assert status_for(_ended(exit_in_handler(1))) == ("interrupted", "KeyboardInterrupt")
    assert status_for(_ended(exit_in_handler(0))) == ("finished", None)
    assert status_for(_ended(lambda: sys.exit(2))) == ("failed", "SystemExit: 2")
    assert status_for(_ended(exit_in_error_handler)) == ("failed", "SystemExit: 3")
