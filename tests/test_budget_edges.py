"""Budgets at a run's edges: a limit crossed in the last interval, and stopping without raising.

A run checks its budgets on the sampler thread and at ``run.log()``; a limit crossed after the
last of those is found by the final check in ``stop()``, which comes before the status is decided,
so the run is recorded the way a budget-stopped run is recorded anywhere else (``interrupted``,
``"BudgetExceeded: <reason>"``), or, for ``"warn"`` and callables, marked and told once.

Energy comes from a constant-power meter set: at 3600 W a run spends exactly 1e-3 kWh per
second. The sampler interval is 5 s, longer than any run here, so no sample (and no check)
happens between start and stop: only the final sample can cross the limit.
"""

from __future__ import annotations

import logging
import time

import pytest

import greenprint as gp
from greenprint._lifecycle import status_for
from tracking._meters import ConstantPowerMeters

#: no sample between start and stop: the final check is the first
LATE = {"sample_interval_s": 5.0, "flush_interval_s": 5.0}


def meters() -> ConstantPowerMeters:
    return ConstantPowerMeters(cpu_w=3600.0, ram_w=0.0, process_share=1.0)


@pytest.fixture
def ledger_path(tmp_path):
    return str(tmp_path / "ledger.db")


def over_budget_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "over budget" in r.getMessage()]


def test_a_stop_budget_crossed_in_the_last_interval_is_recorded_as_a_budget_stop(
    ledger_path, caplog
):
    caplog.set_level(logging.WARNING, logger="greenprint")
    with gp.track(
        "late", ledger=ledger_path, budget_kwh=5e-5, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        time.sleep(0.1)  # 1e-4 kWh: over 5e-5 only at the final sample
    record = gp.Ledger(ledger_path).run(run.id)
    assert run.status == record.status == "interrupted"
    assert run.over_budget
    # the same text as when BudgetExceeded ends a run (status_for), naming the limit
    assert record.error.startswith("BudgetExceeded: ") and "budget_kwh" in record.error
    assert "over budget" in record.error
    # the cost is the whole run's (nothing dropped by the late check)
    assert record.energy_kwh == pytest.approx(record.duration_s * 1e-3, rel=0.05)
    assert record.energy_kwh > 5e-5
    assert len(over_budget_warnings(caplog)) == 1  # told once, as a crossing seen earlier


def test_the_late_verdict_matches_an_uncaught_budget_exceeded(ledger_path):
    """A stop seen at stop() and one raised through the ``with`` block are recorded alike."""
    with pytest.raises(gp.BudgetExceeded) as caught:
        with gp.track(
            "raised", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters()
        ) as raised:
            time.sleep(0.1)
            raised.log(loss=1.0)
    with gp.track(
        "late", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters(), **LATE
    ) as late:
        time.sleep(0.1)
    ledger = gp.Ledger(ledger_path)
    a, b = ledger.run(raised.id), ledger.run(late.id)
    assert (a.status, a.error) == status_for(caught.value)
    assert b.status == a.status == "interrupted"
    prefix = "BudgetExceeded: run "
    assert a.error.startswith(prefix) and b.error.startswith(prefix)
    assert a.error.split(" is over budget: ")[1].split()[0] == "time"
    assert b.error.split(" is over budget: ")[1].split()[0] == "time"


def test_a_pruned_run_over_a_stop_budget_at_the_end_is_interrupted(ledger_path):
    with gp.track(
        "pruned", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        time.sleep(0.1)
        run.prune()
    assert run.status == "interrupted" and run.record.error.startswith("BudgetExceeded: ")


def test_a_pruned_run_within_its_budget_stays_pruned(ledger_path):
    with gp.track(
        "pruned", ledger=ledger_path, budget_s=60.0, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        run.prune()
    assert run.status == "pruned" and run.record.error is None and not run.over_budget


def test_warn_and_callables_crossed_in_the_last_interval_keep_the_status(ledger_path, caplog):
    caplog.set_level(logging.WARNING, logger="greenprint")
    with gp.track("warned", ledger=ledger_path, budget_kwh=5e-5, meters=meters(), **LATE) as warned:
        time.sleep(0.1)
    calls = []
    with gp.track(
        "called",
        ledger=ledger_path,
        budget_kwh=5e-5,
        on_exceed=lambda run, exceeded: calls.append((run, exceeded)),
        meters=meters(),
        **LATE,
    ) as called:
        time.sleep(0.1)
    ledger = gp.Ledger(ledger_path)
    for run in (warned, called):
        assert run.status == ledger.run(run.id).status == "finished"
        assert run.over_budget and ledger.run(run.id).error is None
    assert len(over_budget_warnings(caplog)) == 1  # the warn budget's; the callable tells itself
    assert len(calls) == 1 and calls[0][0] is called
    assert isinstance(calls[0][1], gp.BudgetExceeded) and calls[0][1].limit == "budget_kwh"


def test_an_exception_or_ctrl_c_keeps_its_own_status_and_error(ledger_path):
    with pytest.raises(ValueError):
        with gp.track(
            "boom", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters(), **LATE
        ) as failed:
            time.sleep(0.1)
            raise ValueError("bad batch")
    with pytest.raises(KeyboardInterrupt):
        with gp.track(
            "ctrl-c", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters(), **LATE
        ) as stopped:
            time.sleep(0.1)
            raise KeyboardInterrupt
    assert (failed.status, failed.record.error) == ("failed", "ValueError: bad batch")
    assert (stopped.status, stopped.record.error) == ("interrupted", "KeyboardInterrupt")
    assert failed.over_budget and stopped.over_budget  # still marked


def test_a_study_budget_crossed_in_the_last_interval_stops_with_the_study_reason(ledger_path):
    with gp.track("first", study="s", ledger=ledger_path, meters=meters(), **LATE):
        time.sleep(0.1)
    spent = gp.Ledger(ledger_path).runs(study="s")[0].energy_kwh
    budget = gp.Budget(kwh=spent + 5e-5, per="study", on_exceed="stop")
    with gp.track(
        "second", study="s", ledger=ledger_path, budget=budget, meters=meters(), **LATE
    ) as run:
        run.log(loss=1.0)  # not over yet: the study has spent ~1e-4 of spent + 5e-5
        time.sleep(0.1)
    record = gp.Ledger(ledger_path).run(run.id)
    assert record.status == "interrupted"
    assert record.error.startswith("BudgetExceeded: study 's'")
    assert "study budget_kwh" in record.error


def test_stop_called_directly_decides_the_status_after_the_final_check(ledger_path):
    run = gp.track(
        "direct", ledger=ledger_path, budget_s=0.05, on_exceed="stop", meters=meters(), **LATE
    ).start()
    time.sleep(0.1)
    run.stop()  # "finished" asked for; the budget says otherwise
    assert run.status == "interrupted"
    run.stop(status="failed", error="again")  # a second stop changes nothing
    assert gp.Ledger(ledger_path).run(run.id).status == "interrupted"


# ---------------------------------------------------------------------------- check_budgets()
def test_check_budgets_returns_the_stop_instead_of_raising_it(ledger_path):
    with gp.track(
        "framework", ledger=ledger_path, budget_s=0.5, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        # within the budget: 0.5 s, not 0.1 s, a loaded machine can take from the run's start
        assert run.check_budgets() is None
        time.sleep(0.55)
        verdict = run.check_budgets()
        assert isinstance(verdict, gp.BudgetExceeded) and verdict.limit == "budget_s"
        assert run.check_budgets() is verdict  # the same verdict every time
        run.log(loss=1.0)  # taken by the caller: log() no longer raises it
        run.step()
        run.add_fpo(10)
    record = gp.Ledger(ledger_path).run(run.id)
    assert record.status == "interrupted"
    assert record.error == status_for(verdict)[1]
    assert record.metric("loss") == 1.0  # the metrics after the verdict are kept


def test_after_a_first_check_budgets_call_log_never_raises_the_stop(ledger_path):
    """The caller that checks owns the stop: a crossing that log() finds is returned next."""
    with gp.track(
        "owner", ledger=ledger_path, budget_s=0.5, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        assert run.check_budgets() is None  # within its 0.5 s (0.05 s before: a race at load)
        time.sleep(0.55)
        run.log(loss=1.0)  # finds the crossing (no sampler check ran): no exception
        verdict = run.check_budgets()
        assert isinstance(verdict, gp.BudgetExceeded) and run.over_budget
    assert run.status == "interrupted" and run.record.error == status_for(verdict)[1]


def test_check_budgets_is_none_for_warn_callables_and_runs_without_budgets(ledger_path):
    calls = []
    with gp.track("warn", ledger=ledger_path, budget_s=0.01, meters=meters(), **LATE) as warn:
        time.sleep(0.05)
        assert warn.check_budgets() is None and warn.over_budget
    with gp.track(
        "call",
        ledger=ledger_path,
        budget_s=0.01,
        on_exceed=lambda run, e: calls.append(e),
        meters=meters(),
        **LATE,
    ) as call:
        time.sleep(0.05)
        assert call.check_budgets() is None and len(calls) == 1
    with gp.track("none", ledger=ledger_path, meters=meters(), **LATE) as plain:
        assert plain.check_budgets() is None
    assert (warn.status, call.status, plain.status) == ("finished",) * 3


def test_a_stop_already_raised_is_still_returned_by_check_budgets(ledger_path):
    with gp.track(
        "raised", ledger=ledger_path, budget_fpo=100, on_exceed="stop", meters=meters(), **LATE
    ) as run:
        with pytest.raises(gp.BudgetExceeded) as caught:
            run.add_fpo(1_000)
        assert run.check_budgets() is caught.value
    assert run.status == "interrupted"


# ---------------------------------------------------------------------------- study budgets
def test_a_study_budget_counts_a_live_parent_once_not_its_live_part_too(ledger_path):
    """Earlier runs from the ledger (one query) + this process's live top-level run only."""
    # a meter set per run: one object started by a nested run would restart its parent's clock
    fast = {"sample_interval_s": 0.02, "flush_interval_s": 0.05}
    with gp.track("earlier", study="nest", ledger=ledger_path, meters=meters(), **fast):
        with gp.track("earlier-fold", study="nest", ledger=ledger_path, meters=meters(), **fast):
            time.sleep(0.1)
    earlier = gp.Ledger(ledger_path).runs(study="nest", parent_id=None)[0].energy_kwh
    budget = gp.Budget(kwh=earlier + 1e-4, per="study", on_exceed="stop")
    with gp.track("trial", study="nest", ledger=ledger_path, meters=meters(), **fast) as trial:
        with gp.track(
            "fold", study="nest", ledger=ledger_path, budget=budget, meters=meters(), **fast
        ) as fold:
            with pytest.raises(gp.BudgetExceeded) as caught:
                for step in range(500):
                    fold.log(loss=1.0, step=step)
                    time.sleep(0.01)
    own = caught.value.spent - earlier  # what the study had spent besides the earlier runs
    # the live trial, not trial + fold (about twice as much): at most the trial's final cost
    assert 1e-4 < own <= trial.energy_kwh + 1e-9
    assert fold.status == "interrupted" and trial.status == "finished"
