"""A study's cost as a study budget reads it, on SQLite and PostgreSQL: the price tag's total.

Held to the price tag (:func:`greenprint.analysis.price_tag`, the rule the report reads a study
with) and to first principles: random studies of nested runs (folds that count the FPO their
trial did not, remote children that add to their parent, unknown and NaN figures, parallel
children, parts of another study's runs, dangling parents) are written to a real ledger, and
the read (:func:`greenprint.ledger._study_cost.study_cost`: one query of sums where that is
exact, the rule over a few columns where not) must give the price tag's total of the runs left
after taking out the live runs' subtrees, NaN counted as 0. Hand-worked cases show each defect
of the old read (the top-level runs' own figures summed) and what the rule gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint.analysis import price_tag, resolve_roles
from greenprint.ledger._study_cost import StudyCost, study_cost, study_cost_of_records

from .conftest import make_record

_numbers = itertools.count()
T0 = 1_700_000_000.0  # a fixed clock: spans decide which children ran at the same time

#: a figure: mostly finite, sometimes NaN (not measured: counts as 0)
figure = st.one_of(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    st.just(0.0),
    st.just(float("nan")),
)
#: FPO: none (unknown), small, or beyond 64 bits (kept as decimal text)
fpo_value = st.one_of(st.none(), st.integers(0, 10**12), st.integers(2**63, 10**22))


@st.composite
def studies(draw: st.DrawFn) -> list[dict]:
    """Runs of one study (and one of another): each with its parent, link and figures.

    A parent is none, an earlier run of the study (nesting of any depth: folds, grandchildren;
    inside it, or adding to it from another host), a run of the other study (so this run is
    top-level here), or an id no run has. Spans start and end on a coarse grid, so children
    run one after another, at the same time, or past their parent's end. Most runs name the
    process they read (provenance ``"process"``: one of two, on one of two hosts; some of
    machine scope, some recorded before runs named it): runs in threads of one process at the
    same time, top-level or children of one parent, each stretch of their time counted once.
    """
    n = draw(st.integers(0, 12))
    runs: list[dict] = []
    for k in range(n):
        kind = draw(st.sampled_from(["root", "nested", "nested", "other-study", "dangling"]))
        parent = None
        if kind == "nested" and runs:
            parent = runs[draw(st.integers(0, len(runs) - 1))]["id"]
        elif kind == "other-study":
            parent = "other"
        elif kind == "dangling":
            parent = "missing"
        start = draw(st.integers(0, 6))
        length = draw(st.integers(0, 6))
        runs.append(
            {
                "id": f"r{k}",
                "parent": parent,
                "contained": draw(st.sampled_from([None, True, False])) if parent else None,
                "energy_kwh": draw(figure),
                "emissions_kg": draw(figure),
                "fpo": draw(fpo_value),
                "duration_s": draw(figure),
                "status": draw(st.sampled_from(["finished", "failed", "pruned", "running"])),
                "started_at": T0 + start,
                "ended_at": draw(st.sampled_from([T0 + start + length, None])),
                "process": draw(st.sampled_from([None, *PROCESSES, PROCESSES[0]])),
                "host": draw(st.sampled_from(["node-a", "node-a", "node-b"])),
                "scope": draw(st.sampled_from(["process", "process", "process", "machine"])),
            }
        )
    return runs


#: Two processes runs name (provenance "process", as greenprint.tracking records it).
PROCESSES = ("pid 4242 started 1000.00", "pid 4343 started 1000.00")


def _write(ledger: gp.Ledger, runs: list[dict], tag: str) -> tuple[str, dict[str, str]]:
    """Write the runs under a fresh study; returns (study, generated id -> stored id)."""
    study = f"s{tag}"
    ids = {run["id"]: f"{tag}-{run['id']}" for run in runs}
    ids["other"] = f"{tag}-other"
    ids["missing"] = f"{tag}-missing"  # never written
    ledger.start_run(make_record(ids["other"], study=f"o{tag}", energy_kwh=1e9, fpo=10**9))
    for run in runs:
        ledger.start_run(
            make_record(
                ids[run["id"]],
                study=study,
                parent_id=None if run["parent"] is None else ids[run["parent"]],
                contained=run["contained"],
                status=run["status"],
                energy_kwh=run["energy_kwh"],
                emissions_kg=run["emissions_kg"],
                fpo=run["fpo"],
                duration_s=run["duration_s"],
                started_at=run["started_at"],
                ended_at=run["ended_at"],
                heartbeat_at=run["started_at"] + 1.0,
                host=run["host"],
                scope=run["scope"],
                provenance={"cpu": "test", "scope": run["scope"]}
                | ({} if run["process"] is None else {"process": run["process"]}),
            )
        )
    return study, ids


def _left(records: list[gp.RunRecord], excluded: set[str]) -> tuple[list, frozenset[str]]:
    """The records the study budget reads from the ledger, NaN as 0; excluded top-level ids.

    From first principles: a run is top-level when its parent is not a run of the study; an
    excluded top-level run is counted from memory, every run nested in it with it.
    """
    ids = {r.id for r in records}
    top = {r.id for r in records if r.parent_id not in ids}
    gone = top & excluded
    changed = True
    while changed:
        more = {r.id for r in records if r.parent_id in gone} - gone
        changed = bool(more)
        gone |= more

    def zero(x: float) -> float:
        return 0.0 if math.isnan(x) else x

    left = [
        dataclasses.replace(
            r,
            energy_kwh=zero(r.energy_kwh),
            emissions_kg=zero(r.emissions_kg),
            duration_s=zero(r.duration_s),
        )
        for r in records
        if r.id not in gone
    ]
    return left, frozenset(top & excluded)


def _tag_total(records: list[gp.RunRecord], excluded: set[str]) -> StudyCost:
    """The price tag's total of what the ledger is read for (the reference)."""
    left, top_level = _left(records, excluded)
    if not left:
        return StudyCost(top_level=top_level)
    total = price_tag(left).total
    ids = {r.id for r in left}
    roots = sum(r.parent_id not in ids for r in left)
    return StudyCost(
        total.energy_kwh, total.emissions_kg, total.fpo, total.duration_s, roots, top_level
    )


def _same(got: StudyCost, want: StudyCost) -> None:
    for name in ("energy_kwh", "emissions_kg", "fpo", "duration_s"):
        # NaN on both sides agrees (the price tag's CO2-eq of a child with a subnormal 2e-313 kg
        # and no energy, which hypothesis found)
        want_value = pytest.approx(getattr(want, name), rel=1e-9, abs=1e-9, nan_ok=True)
        assert getattr(got, name) == want_value, name
    assert (got.runs, got.top_level) == (want.runs, want.top_level)


@pytest.fixture
def ledger(ledger_url: str):
    led = gp.Ledger(ledger_url)
    yield led
    led.close()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=studies(), data=st.data())
def test_the_read_is_the_price_tags_total_of_the_runs_not_live_here(ledger, runs, data):
    tag = f"{next(_numbers)}"
    study, ids = _write(ledger, runs, tag)
    stored = [ids[r["id"]] for r in runs]
    chosen = data.draw(st.lists(st.sampled_from(stored), unique=True) if stored else st.just([]))
    excluded = {*chosen, f"{tag}-not-a-run", ids["other"]}  # unknown and other-study ids too
    got = study_cost(ledger, study, exclude=excluded)
    records = ledger.runs(study=study) if runs else []
    _same(got, _tag_total(records, excluded))
    _same(got, study_cost_of_records(records, excluded))  # the rule over whole records


def test_nested_runs_are_counted_once_and_an_unknown_study_costs_nothing(ledger):
    # trial -> fold -> step (each inside its parent's figures), a second trial, and a part of
    # another study's run (top-level here): the one-query sums
    ledger.start_run(make_record("t1", study="s", energy_kwh=1.0, fpo=10, duration_s=30.0))
    ledger.start_run(make_record("f1", study="s", parent_id="t1", energy_kwh=0.7))
    ledger.start_run(make_record("g1", study="s", parent_id="f1", energy_kwh=0.5))
    ledger.start_run(make_record("t2", study="s", energy_kwh=2.0, fpo=20, duration_s=1.0))
    ledger.start_run(make_record("x1", study="x", energy_kwh=9.0))
    ledger.start_run(make_record("p1", study="s", parent_id="x1", energy_kwh=0.25))
    cost = study_cost(ledger, "s")
    assert (cost.energy_kwh, cost.fpo, cost.runs) == (3.25, 30.0, 3)
    assert cost.duration_s == 30.0 + 1.0 + 30.0  # make_record's default 30 s for p1
    assert study_cost(ledger, "s", exclude=["t2", "f1", "g1"]) == StudyCost(
        1.25, 0.0, 10.0, 60.0, 2, frozenset({"t2"})
    )
    assert study_cost(ledger, "nobody") == StudyCost()


def test_folds_that_count_the_fpo_count_in_their_ended_trial(ledger):
    """Old read: 0 FPO for the trial (it counted none of its own); now its folds' sum."""
    ledger.start_run(make_record("t1", study="cv", status="finished", energy_kwh=1.0))
    for k, fpo in enumerate((1000, 2000, 3000)):
        ledger.start_run(make_record(f"f{k}", study="cv", parent_id="t1", fpo=fpo))
    ledger.start_run(make_record("t2", study="cv", status="finished", fpo=500))  # no folds
    cost = study_cost(ledger, "cv")
    assert (cost.fpo, cost.energy_kwh, cost.runs) == (6500.0, 1.0, 2)
    # a trial that counted more than its folds (it adds their sum to its own too): its own
    ledger.start_run(make_record("t3", study="cv", fpo=10_000))
    ledger.start_run(make_record("f3", study="cv", parent_id="t3", fpo=4000))
    assert study_cost(ledger, "cv").fpo == 16_500.0
    # a live trial here (its ended folds are in its figure from memory): none counted twice
    assert study_cost(ledger, "cv", exclude=["t1", "f0"]) == StudyCost(
        0.0, 0.0, 10_500.0, 60.0, 2, frozenset({"t1"})
    )


def test_children_on_other_hosts_add_to_their_parent(ledger):
    """Old read: the parent's own 1 kWh; children outside its measurement add: 1 + 2 + 0.5."""
    ledger.start_run(make_record("head", study="job", energy_kwh=1.0, emissions_kg=0.4, fpo=10))
    ledger.start_run(
        make_record("n1", study="job", parent_id="head", contained=False, energy_kwh=2.0, fpo=20)
    )
    ledger.start_run(
        make_record("n2", study="job", parent_id="head", contained=False, energy_kwh=0.5)
    )
    cost = study_cost(ledger, "job")
    assert (cost.energy_kwh, cost.emissions_kg, cost.fpo, cost.duration_s) == (
        3.5,
        0.4,
        30.0,
        90.0,
    )
    assert cost.runs == 1


def test_a_jobs_nodes_and_ranks_count_as_its_price_tag_does(ledger):
    """A job's runs with no parent: node 1 adds to the head; a rank is inside its node meter.

    Old read: every run top-level, the rank's energy counted beside its node meter's machine
    reading (1 + 0.4 + 2 kWh); the price tag: the machines once (1 + 2), every rank's FPO.
    """
    job = {"study": "ddp", "job_id": "slurm:7", "started_at": T0, "ended_at": T0 + 10}
    ledger.start_run(
        make_record(
            "m0",
            host="a",
            node_meter=True,
            node_rank=0,
            local_rank=0,
            energy_kwh=1.0,
            fpo=100,
            **job,
        )
    )
    ledger.start_run(
        make_record(
            "r1",
            host="a",
            node_meter=False,
            node_rank=0,
            local_rank=1,
            energy_kwh=0.4,
            fpo=100,
            **job,
        )
    )
    ledger.start_run(
        make_record(
            "m1",
            host="b",
            node_meter=True,
            node_rank=1,
            local_rank=0,
            energy_kwh=2.0,
            fpo=100,
            **job,
        )
    )
    cost = study_cost(ledger, "ddp")
    assert (cost.energy_kwh, cost.fpo, cost.runs) == (3.0, 300.0, 1)
    want = _tag_total(ledger.runs(study="ddp"), set())
    _same(cost, want._replace(runs=1))  # the job's head is its one root (not by parent_id)


def test_a_jobs_trainings_one_after_another_count_as_its_price_tag_does(ledger):
    """Two trainings of a two-node job one after another (each its own trial), and a restart
    of the second after it failed: the study budget's read (which reads no params or status)
    counts every node meter once, as the price tag does (it once failed on the partial
    records)."""
    spans = {"t1": (0, 10, 0.1, "finished"), "t2": (20, 30, 0.01, "failed"),
             "t3": (40, 50, 0.01, "finished")}  # fmt: skip
    for name, (start, end, lr, status) in spans.items():
        for node, host in enumerate("ab"):
            ledger.start_run(
                make_record(f"{name}{host}", study="loop", job_id="slurm:8", host=host,
                            node_meter=True, node_rank=node, local_rank=0, energy_kwh=1.0 + node,
                            fpo=10, started_at=T0 + start, ended_at=T0 + end,
                            heartbeat_at=T0 + end, status=status, params={"lr": lr})
            )  # fmt: skip
    runs = ledger.runs(study="loop")
    assert resolve_roles(runs).counts == {"trial": 2, "part": 4}
    cost = study_cost(ledger, "loop")
    assert (cost.energy_kwh, cost.fpo) == (9.0, 60.0)
    _same(cost, _tag_total(runs, set())._replace(runs=cost.runs))


def test_parallel_folds_add_their_run_seconds(ledger):
    """Old read: the trial's 10 s of wall time; the price tag sums run-seconds: 2 x 8 s."""
    ledger.start_run(
        make_record(
            "t", study="par", started_at=T0, ended_at=T0 + 10, duration_s=10.0, energy_kwh=1.0
        )
    )
    for k in range(2):
        ledger.start_run(
            make_record(
                f"f{k}",
                study="par",
                parent_id="t",
                started_at=T0 + 1,
                ended_at=T0 + 9,
                duration_s=8.0,
                energy_kwh=0.9,
            )
        )
    cost = study_cost(ledger, "par")
    # the two folds each read the whole process: they share the trial's 1 kWh out
    assert (cost.duration_s, cost.energy_kwh, cost.runs) == (16.0, 1.0, 1)


def test_a_closed_ledger_is_a_ledger_error(ledger):
    ledger.close()
    with pytest.raises(gp.LedgerError):
        study_cost(ledger, "s")


@pytest.mark.parametrize("nested_fpo", [False, True], ids=["sums", "rule"])
def test_the_sqlalchemy_read_gives_the_same_on_a_sqlite_file(tmp_path, nested_fpo):
    """The PostgreSQL read (SQLAlchemy) run on SQLite, NaN stored as text there, agrees."""
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._study_cost import read_study_cost
    from greenprint.ledger._target import resolve_target

    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        led.start_run(make_record("t1", study="s", energy_kwh=1.5, fpo=2**70))
        led.start_run(make_record("t2", study="s", energy_kwh=float("nan"), emissions_kg=0.5))
        led.start_run(
            make_record(
                "c1",
                study="s",
                parent_id="t1",
                energy_kwh=1.0,
                duration_s=20.0,
                fpo=7 if nested_fpo else None,
            )
        )
        native = study_cost(led, "s", exclude=["t2"])
    store = SQLStore(resolve_target(str(path)), create=False)
    try:
        assert read_study_cost(store, "s", ["t2"]) == native
        assert native == StudyCost(1.5, 0.0, float(2**70), 30.0, 1, frozenset({"t2"}))
    finally:
        store.close()


def test_a_cycle_of_parents_is_a_ledger_error_the_budget_logs(ledger):
    """Hand-edited parents in a cycle (each run nested in the other) with FPO: no tree to sum."""
    ledger.start_run(make_record("a", study="cyc", parent_id="b", fpo=1))
    ledger.start_run(make_record("b", study="cyc", parent_id="a", fpo=1))
    with pytest.raises(gp.LedgerError, match="cycle"):
        study_cost(ledger, "cyc")


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
        (trial,) = led.runs(study="cap", parent_id=None)
        assert spent.runs == 1 and spent.energy_kwh == pytest.approx(trial.energy_kwh)
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


@pytest.mark.parametrize(
    ("shape", "by_sums"),
    [
        ("trials", True),
        ("folds-without-fpo", True),
        ("folds-with-fpo", False),
        ("remote-child", False),
        ("job", False),
        ("parallel-folds", False),
        ("trials-in-processes-of-their-own", True),
        ("trials-in-threads-of-one-process", False),
    ],
)
def test_the_sums_are_read_where_they_are_the_rule(tmp_path, shape, by_sums):
    """Which studies the one-query sums serve (the common ones), and which need the rule."""
    import sqlite3

    from greenprint.ledger._study_cost import (
        _SQLITE_MORE_THAN_PARENT,
        _SQLITE_SCAN,
        _SQLITE_THREADS,
    )

    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        for k in range(3):
            if shape.startswith("trials-in-"):  # at the same time, each reading a process
                process = PROCESSES[0] if "threads" in shape else f"pid {k} started 1.00"
                led.start_run(
                    make_record(
                        f"t{k}", study="s", energy_kwh=1.0, started_at=T0, ended_at=T0 + 9.0,
                        host="node-a", provenance={"process": process},
                    )
                )  # fmt: skip
                continue
            led.start_run(make_record(f"t{k}", study="s", energy_kwh=1.0, fpo=100))
        fold: dict = {"study": "s", "parent_id": "t0", "energy_kwh": 0.4, "duration_s": 10.0}
        if shape == "folds-without-fpo":
            led.start_run(make_record("f1", **fold))
            led.start_run(make_record("f2", **fold))
        elif shape == "folds-with-fpo":
            led.start_run(make_record("f1", fpo=50, **fold))
        elif shape == "remote-child":
            led.start_run(make_record("f1", contained=False, **fold))
        elif shape == "job":
            led.start_run(make_record("j1", study="s", job_id="slurm:1"))
        elif shape == "parallel-folds":  # 4 x 10 s of run time in a 30 s trial
            for k in range(4):
                led.start_run(make_record(f"f{k}", **{**fold, "energy_kwh": 0.1}))
    with sqlite3.connect(path) as conn:
        *_, nested, adds, overlap = conn.execute(_SQLITE_SCAN.format(left_out=""), ["s"]).fetchone()
        more = conn.execute(_SQLITE_MORE_THAN_PARENT, ["s"]).fetchone()[0] if nested else 0
        threads = conn.execute(_SQLITE_THREADS, ["s"]).fetchone()[0] if overlap else 0
    assert (not adds and not more and not threads) is by_sums
    with gp.Ledger(path) as led:  # and the read is the price tag's total either way
        _same(study_cost(led, "s"), _tag_total(led.runs(study="s"), set()))
