"""A study already over its energy or CO2-eq budget stops a new run at once (session 30).

docs/budgets.md: a sweep of commands "stops where the study goes over: ... one started after
that gets it at once". The study's cost was read from the ledger when the run started, but the
energy and CO2-eq budgets were first compared with it at the run's first meter sample, one
``--sample-interval`` later: with ``--sample-interval 5`` a command of a study already over
``--study-budget-kwh`` ran 5 s (1 s at the default) before its SIGTERM. Run as a new user does:
the CLI as typed, in an empty directory with a clean environment.
"""

from __future__ import annotations

import sys
import time

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in

SLOW_SAMPLES = ["--sample-interval", "5", "--flush-interval", "5"]


@pytest.mark.parametrize(
    ("option", "limit"), [("--study-budget-kwh", "kWh"), ("--study-budget-kg", "kg")]
)
def test_a_command_of_a_study_already_over_budget_is_stopped_at_once(
    tmp_path_factory: pytest.TempPathFactory, option: str, limit: str
):
    home = empty_home(tmp_path_factory, "s30-over-at-start")
    first = run_in(
        home, GREENPRINT, "run", "-q", "--study", "spent", "--",
        sys.executable, "-c", "sum(i * i for i in range(300_000))",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    (before,) = gp.Ledger(home / "greenprint.db").runs(study="spent")
    assert before.energy_kwh > 0 and before.emissions_kg > 0
    started = time.monotonic()
    done = run_in(
        home, GREENPRINT, "run", "--study", "spent", option, "1e-15", *SLOW_SAMPLES,
        "--", sys.executable, "-c", "import time; time.sleep(30)",
    )  # fmt: skip
    took_s = time.monotonic() - started
    assert done.returncode == 143, done.stderr  # SIGTERM
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "over budget" in x and "sending" in x]
    assert f"study budget_{limit.lower()}" in line, line
    runs = gp.Ledger(home / "greenprint.db").runs(study="spent")
    (second,) = [r for r in runs if r.id != before.id]
    assert second.status == "interrupted"
    assert f"study budget_{limit.lower()}" in (second.error or "")
    # at once: well before the first meter sample, 5 s in (the whole command, greenprint's
    # start included, took 5.6 s before)
    assert second.duration_s < 2.0, second.duration_s
    assert took_s < 4.5, took_s


def test_a_callable_on_exceed_hears_of_a_study_over_budget_at_the_start(tmp_path):
    ledger = tmp_path / "greenprint.db"
    with gp.track("spent", study="over", ledger=ledger) as run:
        sum(i * i for i in range(300_000))
    assert run.energy_kwh > 0
    heard: list[tuple[float, str]] = []
    cap = gp.Budget(
        kwh=1e-15, per="study", on_exceed=lambda r, e: heard.append((time.monotonic(), e.limit))
    )
    started = time.monotonic()
    with gp.track("next", study="over", ledger=ledger, budget=cap, sample_interval_s=5):
        time.sleep(0.5)
    (at, limit) = heard[0]
    assert limit == "study budget_kwh"
    assert at - started < 0.4  # at the start, not at the run's end (its first sample)
