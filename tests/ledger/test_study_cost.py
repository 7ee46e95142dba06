"""A study's cost summed by the database (a study budget's read), on SQLite and PostgreSQL.

Held to first principles: random studies of nested runs are generated with their parents known,
the top-level runs and their sums worked out from the generation (never from the ledger), and
the one-query read (:func:`greenprint.ledger._study_cost.study_cost`) must give the same sums as
that and as the same rule applied to the records ``ledger.runs()`` returns.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint.ledger._study_cost import StudyCost, study_cost, study_cost_of_records

from .conftest import make_record

_numbers = itertools.count()

#: a figure: mostly finite, sometimes NaN (not measured: counts as 0)
figure = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    st.just(float("nan")),
)
#: FPO: none, small, or beyond 64 bits (kept as decimal text)
fpo_value = st.one_of(st.none(), st.integers(0, 10**12), st.integers(2**63, 10**22))


@st.composite
def studies(draw: st.DrawFn) -> list[dict]:
    """Runs of one study (and a few of another): each with its parent and figures.

    A parent is none, an earlier run of the study (nesting of any depth), a run of the other
    study (so this run is top-level here), or an id no run has.
    """
    n = draw(st.integers(0, 14))
    runs: list[dict] = []
    for k in range(n):
        kind = draw(st.sampled_from(["root", "root", "nested", "other-study", "dangling"]))
        parent = None
        if kind == "nested" and runs:
            parent = runs[draw(st.integers(0, len(runs) - 1))]["id"]
        elif kind == "other-study":
            parent = "other"
        elif kind == "dangling":
            parent = "missing"
        runs.append(
            {
                "index": k,
                "parent": parent,
                "energy_kwh": draw(figure),
                "emissions_kg": draw(figure),
                "fpo": draw(fpo_value),
                "duration_s": draw(figure),
                "status": draw(st.sampled_from(["finished", "failed", "pruned", "running"])),
                "id": f"r{k}",
            }
        )
    return runs


def _write(ledger: gp.Ledger, runs: list[dict], tag: str) -> tuple[str, dict[str, str]]:
    """Write the runs under a fresh study; returns (study, generated id -> stored id)."""
    study = f"s{tag}"
    other = f"o{tag}"
    ids = {run["id"]: f"{tag}-{run['id']}" for run in runs}
    ids["other"] = f"{tag}-other"
    ids["missing"] = f"{tag}-missing"  # never written
    ledger.start_run(make_record(ids["other"], study=other, energy_kwh=1e9))
    for run in runs:
        ledger.start_run(
            make_record(
                ids[run["id"]],
                study=study,
                parent_id=None if run["parent"] is None else ids[run["parent"]],
                status=run["status"],
                energy_kwh=run["energy_kwh"],
                emissions_kg=run["emissions_kg"],
                fpo=run["fpo"],
                duration_s=run["duration_s"],
            )
        )
    return study, ids


def _expected(runs: list[dict], excluded: set[str], ids: dict[str, str]) -> StudyCost:
    """From the generation: top-level = no parent, or a parent outside the study's runs."""
    own = {run["id"] for run in runs}

    def value(x: float | None) -> float:
        return 0.0 if x is None or math.isnan(x) else float(x)

    top = [run for run in runs if run["parent"] is None or run["parent"] not in own]
    summed = [run for run in top if ids[run["id"]] not in excluded]
    return StudyCost(
        energy_kwh=math.fsum(value(r["energy_kwh"]) for r in summed),
        emissions_kg=math.fsum(value(r["emissions_kg"]) for r in summed),
        fpo=math.fsum(value(r["fpo"]) for r in summed),
        duration_s=math.fsum(value(r["duration_s"]) for r in summed),
        runs=len(summed),
        top_level=frozenset(ids[r["id"]] for r in top if ids[r["id"]] in excluded),
    )


def _same(got: StudyCost, want: StudyCost) -> None:
    for name in ("energy_kwh", "emissions_kg", "fpo", "duration_s"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-9, abs=1e-12), name
    assert (got.runs, got.top_level) == (want.runs, want.top_level)


@pytest.fixture
def ledger(ledger_url: str):
    led = gp.Ledger(ledger_url)
    yield led
    led.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=studies(), data=st.data())
def test_one_query_sums_what_first_principles_and_the_records_give(ledger, runs, data):
    tag = f"{next(_numbers)}"
    study, ids = _write(ledger, runs, tag)
    stored = [ids[r["id"]] for r in runs]
    chosen = data.draw(st.lists(st.sampled_from(stored), unique=True) if stored else st.just([]))
    excluded = {*chosen, f"{tag}-not-a-run", ids["other"]}  # unknown and other-study ids too
    got = study_cost(ledger, study, exclude=excluded)
    _same(got, _expected(runs, excluded, ids))
    if runs:  # the same rule over the records the ledger returns (the read it replaces)
        _same(got, study_cost_of_records(ledger.runs(study=study), excluded))


def test_nested_runs_are_counted_once_and_an_unknown_study_costs_nothing(ledger):
    # trial -> fold -> step, a second trial, and a part of another study's run
    ledger.start_run(make_record("t1", study="s", energy_kwh=1.0, fpo=10, duration_s=5.0))
    ledger.start_run(make_record("f1", study="s", parent_id="t1", energy_kwh=0.7, fpo=7))
    ledger.start_run(make_record("g1", study="s", parent_id="f1", energy_kwh=0.5, fpo=5))
    ledger.start_run(make_record("t2", study="s", energy_kwh=2.0, fpo=20, duration_s=1.0))
    ledger.start_run(make_record("x1", study="x", energy_kwh=9.0))
    ledger.start_run(make_record("p1", study="s", parent_id="x1", energy_kwh=0.25))
    cost = study_cost(ledger, "s")
    assert (cost.energy_kwh, cost.fpo, cost.runs) == (3.25, 30.0, 3)
    assert cost.duration_s == 5.0 + 1.0 + 30.0  # make_record's default 30 s for p1
    assert study_cost(ledger, "s", exclude=["t2", "f1", "g1"]) == StudyCost(
        1.25, 0.0, 10.0, 35.0, 2, frozenset({"t2"})
    )
    assert study_cost(ledger, "nobody") == StudyCost()


def test_a_closed_ledger_is_a_ledger_error(ledger):
    ledger.close()
    with pytest.raises(gp.LedgerError):
        study_cost(ledger, "s")


def test_the_sqlalchemy_query_gives_the_same_on_a_sqlite_file(tmp_path):
    """The PostgreSQL query (SQLAlchemy) run on SQLite, NaN stored as text there, agrees."""
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._study_cost import read_study_cost
    from greenprint.ledger._target import resolve_target

    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        led.start_run(make_record("t1", study="s", energy_kwh=1.5, fpo=2**70))
        led.start_run(make_record("t2", study="s", energy_kwh=float("nan"), emissions_kg=0.5))
        led.start_run(make_record("c1", study="s", parent_id="t1", energy_kwh=4.0))
        native = study_cost(led, "s", exclude=["t2"])
    store = SQLStore(resolve_target(str(path)), create=False)
    try:
        assert read_study_cost(store, "s", ["t2"]) == native
        assert native == StudyCost(1.5, 0.0, float(2**70), 30.0, 1, frozenset({"t2"}))
    finally:
        store.close()


def test_a_study_budget_reads_its_study_on_every_backend(ledger_url):
    """End to end: earlier trials (one with a fold) in the ledger, then a run under a study cap."""
    import time

    from tracking._meters import ConstantPowerMeters  # 3600 W: 1e-3 kWh per second

    fast = {"sample_interval_s": 0.02, "flush_interval_s": 0.05}
    with gp.track(
        "a", study="cap", ledger=ledger_url, meters=ConstantPowerMeters(3600, 0, 1), **fast
    ):
        with gp.track(
            "fold", study="cap", ledger=ledger_url, meters=ConstantPowerMeters(3600, 0, 1), **fast
        ):
            time.sleep(0.1)
    with gp.Ledger(ledger_url) as led:
        spent = study_cost(led, "cap")
        assert (
            spent.runs == 1
            and spent.energy_kwh == led.runs(study="cap", parent_id=None)[0].energy_kwh
        )
    budget = gp.Budget(kwh=spent.energy_kwh + 1e-4, per="study", on_exceed="stop")
    with pytest.raises(gp.BudgetExceeded) as caught:
        with gp.track(
            "b",
            study="cap",
            ledger=ledger_url,
            budget=budget,
            meters=ConstantPowerMeters(3600, 0, 1),
            **fast,
        ) as run:
            for step in range(500):
                run.log(loss=1.0, step=step)
                time.sleep(0.01)
    assert caught.value.per == "study"
    assert 1e-4 < caught.value.spent - spent.energy_kwh <= run.energy_kwh + 1e-9
    assert run.status == "interrupted"
