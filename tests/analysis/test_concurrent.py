"""Children that ran at the same time inside their parent share its measurement, not more.

A meter reads a whole process over a run's span: trials run in threads of one process
(``study.optimize(n_jobs=2)``) each record the whole process's energy over their span, so their
sum counts the overlap more than once. When such children add up to more than their parent
measured, the parent's measurement is the truth (RunForest.shared_sums); children that ran one
after another keep the old rule (their sum wins, with a note).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import MetricPoint, RunRecord
from greenprint.analysis import evp_by_budget, pareto_runs, price_tag
from greenprint.analysis._common import RunForest


def _overlap(spans: list[tuple[float, float]]) -> bool:
    """Whether two of the spans share some time (plainly: every pair); a span starting at 0
    (no start time recorded) is not known, and shares none."""
    known = [span for span in spans if span[0] > 0]
    return any(
        max(a[0], b[0]) < min(a[1], b[1]) for i, a in enumerate(known) for b in known[i + 1 :]
    )


def _end(run: RunRecord) -> float:
    return run.ended_at if run.ended_at is not None else run.started_at + run.duration_s


@st.composite
def forests(draw: Any, *, sequential: bool = False, remote: bool = False) -> list[RunRecord]:
    """Runs nested at random with energies, CO2-eq and spans drawn to overlap (or never).

    ``sequential``: the children of a run never overlap (one after another). ``remote``: some
    runs add to their parent (``contained`` false: another host).
    """
    count = draw(st.integers(1, 12))
    parents: list[int | None] = [None]
    for k in range(1, count):
        parents.append(draw(st.sampled_from([None, *range(k)])))  # mostly nested
    slot = [0] * count  # sequential: each child of a parent takes the next slot of 10 s
    runs = []
    for k in range(count):
        if sequential:
            p = parents[k]
            key = -1 if p is None else p
            start = 10.0 * slot[key] if key >= 0 else 10.0 * k
            if key >= 0:
                slot[key] += 1
            duration = draw(st.sampled_from([0.0, 1.0, 5.0, 10.0]))
        else:
            start = float(draw(st.integers(0, 4)))
            duration = draw(st.sampled_from([0.0, 1.0, 2.0, 5.0]))
        running = draw(st.booleans())  # no ended_at: its end is started_at + duration_s
        energy = draw(st.one_of(st.sampled_from([0.0, 0.25, 1.0, 3.0]), st.floats(1e-6, 5.0)))
        runs.append(
            RunRecord(
                id=f"r{k}",
                name=f"run {k}",
                parent_id=None if parents[k] is None else f"r{parents[k]}",
                status="running" if running else "finished",
                started_at=start,
                ended_at=None if running else start + duration,
                duration_s=duration,
                energy_kwh=energy,
                emissions_kg=energy * draw(st.sampled_from([0.1, 0.4])),
                contained=False if remote and draw(st.booleans()) else None,
            )
        )
    return runs


def _subtree(forest: RunForest, pos: int) -> list[RunRecord]:
    out, stack = [], [pos]
    while stack:
        p = stack.pop()
        out.append(forest.runs[p])
        stack.extend(forest.children[p])
    return out


def _alone(forest: RunForest, pos: int, name: str) -> float:
    """What the run at ``pos`` measured with its descendants, before any ancestor shares it."""
    runs = _subtree(forest, pos)
    return RunForest.build(runs).shared_sums(name).inclusive[0]


def _inside(forest: RunForest, pos: int) -> list[int]:
    return [c for c in forest.children[pos] if not forest.adds(c)]


@settings(max_examples=300, deadline=None)
@given(forests(remote=True), st.sampled_from(["energy_kwh", "emissions_kg"]))
def test_nothing_is_lost_or_counted_twice(runs: list[RunRecord], name: str) -> None:
    forest = RunForest.build(runs)
    sums = forest.shared_sums(name)
    total = math.fsum(sums.inclusive[r] for r in forest.roots)
    assert math.fsum(sums.exclusive) == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert all(x >= 0 for x in sums.exclusive)
    for pos in forest.inner_order:
        added = math.fsum(sums.inclusive[c] for c in forest.children[pos] if forest.adds(c))
        below = math.fsum(sums.inclusive[c] for c in _inside(forest, pos))
        # the runs inside a parent never hold more than it does (its effective own amount)
        assert below <= (sums.inclusive[pos] - added) * (1 + 1e-9) + 1e-12


@settings(max_examples=300, deadline=None)
@given(forests(), st.sampled_from(["energy_kwh", "emissions_kg"]))
def test_concurrent_children_share_their_parents_measurement_in_proportion(
    runs: list[RunRecord], name: str
) -> None:
    """The rule from first principles, parent by parent, on runs that all share one process."""
    forest = RunForest.build(runs)
    sums = forest.shared_sums(name)
    values = forest.column(name)
    alone = [_alone(forest, p, name) for p in range(len(runs))]
    for root in forest.roots:  # nothing above a root shares it out
        assert sums.inclusive[root] == pytest.approx(alone[root], rel=1e-12)
    for pos in forest.inner_order:
        kids = forest.children[pos]
        measured = math.fsum(alone[c] for c in kids)
        together = _overlap([(runs[c].started_at, _end(runs[c])) for c in kids])
        ended = runs[pos].ended_at  # a child that ended after its ended parent: not inside it all
        outlived = ended is not None and any(
            runs[c].started_at > 0 and _end(runs[c]) > ended for c in kids
        )
        own = values[pos]
        factor = sums.inclusive[pos] / alone[pos] if alone[pos] > 0 else 1.0
        if together and not outlived and measured > own > 0:
            # the parent's measurement is the truth: its children get it all, in proportion
            assert alone[pos] == pytest.approx(own, rel=1e-12)
            assert sums.exclusive[pos] == 0
            for c in kids:
                share = alone[c] / measured * sums.inclusive[pos]
                assert sums.inclusive[c] == pytest.approx(share, rel=1e-9, abs=1e-300)
            assert pos in sums.scaled and sums.scaled[pos][1] == own
        else:  # old rule: max(own, children's sum); the children keep their parent's factor
            assert alone[pos] == pytest.approx(max(own, measured), rel=1e-12)
            for c in kids:
                assert sums.inclusive[c] == pytest.approx(alone[c] * factor, rel=1e-9)
            assert pos not in sums.scaled


@settings(max_examples=300, deadline=None)
@given(forests(sequential=True, remote=True), st.sampled_from(["energy_kwh", "emissions_kg"]))
def test_children_one_after_another_give_exactly_the_old_sums(
    runs: list[RunRecord], name: str
) -> None:
    forest = RunForest.build(runs)
    sums = forest.shared_sums(name)
    assert not any(forest.concurrent(p) for p in forest.inner_order)
    old = forest.nested_sum(forest.column(name))  # max(own, children's sum)
    assert repr((sums.inclusive, sums.exclusive)) == repr(old)
    assert not sums.scaled


@settings(max_examples=200, deadline=None)
@given(forests(remote=True), st.data())
def test_unknown_amounts_keep_their_rule(runs: list[RunRecord], data: Any) -> None:
    """An unknown own amount counts as its children's sum; it is never shared out."""
    forest = RunForest.build(runs)
    values = [data.draw(st.one_of(st.none(), st.just(r.energy_kwh))) for r in runs]
    inclusive, exclusive = forest.nested_sum(values, shared=True)
    assert math.fsum(exclusive) == pytest.approx(
        math.fsum(inclusive[r] for r in forest.roots), rel=1e-9, abs=1e-12
    )
    for pos in forest.inner_order:
        if values[pos] is None:
            assert exclusive[pos] == 0


# ------------------------------------------------------------------------- the price tag
def _run(
    rid: str,
    kwh: float,
    *,
    parent: str | None = None,
    start: float = 0.0,
    end: float = 100.0,
    acc: float | None = None,
    status: str = "finished",
) -> RunRecord:
    return RunRecord(
        id=rid,
        name=rid,
        parent_id=parent,
        status=status,
        started_at=start,
        ended_at=end,
        duration_s=end - start,
        energy_kwh=kwh,
        emissions_kg=kwh * 0.4,
        fpo=1000,
        dataset_size=100,
        metrics=() if acc is None else (MetricPoint("acc", acc),),
    )


def _threads() -> list[RunRecord]:
    """A sweep of 0.3 kWh over 100 s whose 3 trials ran at once, each reading 0.3 kWh."""
    return [
        _run("sweep", 0.3, end=100.0),
        _run("t0", 0.3, parent="sweep", start=1.0, end=99.0, acc=0.8),
        _run("t1", 0.3, parent="sweep", start=1.0, end=99.0, acc=0.9, status="failed"),
        _run("t2", 0.3, parent="sweep", start=2.0, end=99.0, acc=0.7),
    ]


def test_equal_trials_that_ran_together_get_a_third_each() -> None:
    tag = price_tag(_threads(), metric="acc")
    assert tag.total.energy_kwh == pytest.approx(0.3, rel=1e-12)  # the sweep's own
    assert tag.total.emissions_kg == pytest.approx(0.12, rel=1e-12)
    assert tag.by_status["failed"].energy_kwh == pytest.approx(0.1)  # t1's third
    assert tag.by_status["finished"].energy_kwh == pytest.approx(0.2)  # the sweep's part is 0
    assert tag.by_role["trial"].energy_kwh == pytest.approx(0.3)
    assert tag.by_role["sweep"].energy_kwh == 0
    final = tag.final
    assert final is not None and final.run_id == "t0"  # t1 failed
    assert final.energy_kwh == pytest.approx(0.1) and final.energy_share == pytest.approx(1 / 3)
    assert final.emissions_kg == pytest.approx(0.04)
    assert tag.edh is not None and tag.edh.energy_kwh == pytest.approx(0.3)
    # durations are run-seconds (parallel runs add up) and FPO are counted per run: not shared
    assert tag.total.duration_s == pytest.approx(98 + 98 + 97)
    assert tag.total.fpo == 3000 and final.fpo == 1000  # the trials', each whole
    (note,) = [n for n in tag.notes if "same time" in n]
    assert "the 3 trials of run 'sweep' ran at the same time" in note
    assert "0.9 kWh in all, are scaled to the 0.3 kWh their parent measured (x0.333)" in note
    assert "CO2-eq likewise, 0.36 to 0.12 kg" in note
    assert not any("less energy than their children" in n for n in tag.notes)


def test_evp_and_pareto_on_energy_read_the_shared_amounts() -> None:
    runs = [  # trial a's two folds ran at once, each reading a's whole 1 kWh; b had none
        _run("a", 1.0, acc=0.9),
        _run("a-f0", 1.0, parent="a", start=1.0, end=99.0),
        _run("a-f1", 1.0, parent="a", start=1.0, end=99.0),
        _run("b", 1.5, start=200.0, end=300.0, acc=0.8),
    ]
    curve = evp_by_budget(runs, "energy_kwh", metric="acc")
    assert curve.budget[0] == pytest.approx((1.0 + 1.5) / 2)  # not (2.0 + 1.5) / 2
    co2 = evp_by_budget(runs, "emissions_kg", metric="acc")
    assert co2.budget[0] == pytest.approx((0.4 + 0.6) / 2)
    # a is better and, counted once, cheaper: b is off the front (with a at 2 kWh it was on)
    assert [r.id for r in pareto_runs(runs, metric="acc")] == ["a"]
    assert [r.id for r in pareto_runs(runs, metric="acc", cost="duration_s")] == ["a", "b"]


def test_children_one_after_another_keep_their_sum_and_the_old_note() -> None:
    runs = [
        _run("sweep", 0.3, end=300.0),
        _run("t0", 0.3, parent="sweep", start=0.0, end=100.0),
        _run("t1", 0.3, parent="sweep", start=100.0, end=200.0),  # starts as t0 ends
        _run("t2", 0.3, parent="sweep", start=200.0, end=300.0),
    ]
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(0.9)
    assert any("less energy than their children" in n for n in tag.notes)
    assert not any("same time" in n for n in tag.notes)


def test_concurrent_children_within_what_their_parent_measured_are_left_alone() -> None:
    runs = [
        _run("sweep", 1.0),
        _run("t0", 0.3, parent="sweep", start=1.0, end=99.0),
        _run("t1", 0.3, parent="sweep", start=1.0, end=99.0),
    ]
    tag = price_tag(runs)
    assert tag.total.energy_kwh == 1.0
    assert tag.by_role["sweep"].energy_kwh == pytest.approx(0.4)
    assert not [n for n in tag.notes if "same time" in n or "less energy" in n]


def test_a_parent_that_measured_nothing_is_not_the_truth() -> None:
    """A parent that read 0 kWh measured nothing: its children's sum stands, as before."""
    runs = [
        _run("sweep", 0.0),
        _run("t0", 0.3, parent="sweep", start=1.0, end=99.0),
        _run("t1", 0.3, parent="sweep", start=1.0, end=99.0),
    ]
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(0.6)
    assert any("less energy than their children" in n for n in tag.notes)


def test_several_parents_are_named_in_one_note() -> None:
    runs = []
    for k in range(1, 6):
        runs += [
            _run(f"trial{k - 1}", 1.0, start=1000.0 * k, end=1000.0 * k + 100, acc=0.5),
            _run(f"f{k}a", 1.0, parent=f"trial{k - 1}", start=1000.0 * k, end=1000.0 * k + 50),
            _run(f"f{k}b", 1.0, parent=f"trial{k - 1}", start=1000.0 * k + 10, end=1000.0 * k + 60),
        ]
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(5.0)
    (note,) = [n for n in tag.notes if "same time" in n]
    assert note.startswith(
        "the parts of 5 runs ('trial0', 'trial1', 'trial2' and 2 more) ran at the same time"
    )
    assert "10 kWh in all, are scaled to the 5 kWh their parents measured (x0.5 to x0.5)" in note


# ------------------------------------------------------------------------- a real study
def test_an_optuna_study_in_threads_costs_what_its_search_run_measured(tmp_path: Path) -> None:
    """Trials of study.optimize(n_jobs=2), in threads, inside gp.track(role="sweep")."""
    optuna = pytest.importorskip("optuna")
    import greenprint as gp
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "l.db"
    fast = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
    cb = GreenprintCallback(ledger=db, study="thr", **fast)

    def objective(trial: Any) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.4:  # busy Python: both threads share the process
            sum(i * i for i in range(2000))
        return trial.suggest_float("x", 0, 1)

    with (
        gp.track("search", ledger=db, study="thr", role="sweep", **fast) as search,
        pytest.warns(UserWarning, match="threads"),
    ):
        study = optuna.create_study(study_name="thr")
        study.optimize(cb.track(objective), n_trials=4, n_jobs=2, callbacks=[cb])
    runs = gp.Ledger(db).runs(study="thr")
    search_kwh = next(r for r in runs if r.id == search.id).energy_kwh
    trials = [r for r in runs if r.parent_id == search.id]
    assert len(trials) == 4
    assert _overlap([(r.started_at, _end(r)) for r in trials])
    measured = sum(r.energy_kwh for r in trials)
    assert measured > search_kwh > 0  # each trial read the whole process over its span
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(search_kwh, rel=1e-12)
    assert tag.by_role["trial"].energy_kwh == pytest.approx(search_kwh, rel=1e-12)
    (note,) = [n for n in tag.notes if "same time" in n]
    assert "the 4 trials of run 'search' ran at the same time" in note
    assert f"{measured:.3g} kWh in all, are scaled to the {search_kwh:.3g} kWh" in note


def test_what_adds_from_another_host_is_never_shared_out() -> None:
    """A run on another host under one of the threads is outside the parent's measurement."""
    runs = [
        _run("sweep", 1.0),
        _run("t0", 1.0, parent="sweep", start=1.0, end=99.0),
        _run("t1", 1.0, parent="sweep", start=1.0, end=99.0),
        dataclasses.replace(_run("remote", 5.0, parent="t0"), contained=False),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    # the threads measured 2 kWh of the sweep's 1: halved; the remote run's 5 kWh kept whole
    assert sums.inclusive == pytest.approx([6.0, 5.5, 0.5, 5.0])
    assert sums.exclusive == pytest.approx([0.0, 0.5, 0.5, 5.0])
    assert sums.scaled == {0: (2.0, 1.0)}
    assert price_tag(runs).total.energy_kwh == pytest.approx(6.0)


def test_children_without_start_times_are_not_judged_concurrent() -> None:
    """Hand-built records with no times (``started_at`` 0, the default) have no known spans:
    their parent keeps the old rule (its children's sum when that is more), not a share."""
    parent = RunRecord(id="p", name="p", status="finished", energy_kwh=1.0, emissions_kg=0.1)
    kids = [
        RunRecord(id=f"c{k}", name=f"c{k}", parent_id="p", status="finished",
                     duration_s=10.0, energy_kwh=0.75, emissions_kg=0.075)
        for k in range(2)
    ]  # fmt: skip
    tag = price_tag([parent, *kids])
    assert tag.total.energy_kwh == 1.5
    assert not any("at the same time" in note for note in tag.notes)


def test_children_that_outlived_their_parent_keep_their_sum() -> None:
    """A search stopped while its two trials' threads went on: it measured 0.1 kWh over its
    10 s, they 1 kWh each over 100 s together. Its measurement holds nothing of their last 90 s,
    so it is no truth to share out (that would read 0.1 kWh for 1 kWh spent at least): their
    sum stands, as before the rule, with the old note."""
    runs = [
        _run("search", 0.1, start=1.0, end=11.0),
        _run("t0", 1.0, parent="search", start=2.0, end=102.0, acc=0.8),
        _run("t1", 1.0, parent="search", start=2.0, end=101.0, acc=0.9),
    ]
    forest = RunForest.build(runs)
    assert forest.concurrent(0) and forest.outlived(0)
    tag = price_tag(runs, metric="acc")
    assert tag.total.energy_kwh == pytest.approx(2.0)
    assert not any("same time" in n for n in tag.notes)
    assert any("less energy than their children" in n for n in tag.notes)
    # the same children inside the parent's span: shared out, as the rule says
    runs[0] = _run("search", 0.1, start=1.0, end=103.0)
    assert price_tag(runs, metric="acc").total.energy_kwh == pytest.approx(0.1)
    # a running parent (no end yet: a live report) keeps sharing out
    runs[0] = dataclasses.replace(runs[0], status="running", ended_at=None, duration_s=10.0)
    assert not RunForest.build(runs).outlived(0)


def test_a_main_run_stopped_before_its_worker_threads_trials_is_no_truth(tmp_path: Path) -> None:
    """Real threads: the main thread's run ends while the trials it parents still run; the
    price tag is never less than what a trial measured of the whole process alone."""
    import threading

    import greenprint as gp

    ledger = str(tmp_path / "l.db")
    started = threading.Barrier(3)

    def trial(k: int) -> None:
        with gp.track(f"trial-{k}", ledger=ledger, study="s", role="trial") as run:
            started.wait()
            end = time.perf_counter() + 0.6
            while time.perf_counter() < end:  # busy: the estimate reads CPU time
                pass
            run.log(acc=0.5 + k / 10)

    with gp.track("search", ledger=ledger, study="s", role="sweep"):
        threads = [threading.Thread(target=trial, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        started.wait()
    for thread in threads:
        thread.join()
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="s")
    search = next(r for r in runs if r.name == "search")
    trials = [r for r in runs if r.role == "trial"]
    assert all(t.parent_id == search.id and t.ended_at > search.ended_at for t in trials)
    tag = price_tag(runs, metric="acc")
    assert tag.total.energy_kwh >= max(t.energy_kwh for t in trials)
    assert tag.total.energy_kwh == pytest.approx(
        max(search.energy_kwh, sum(t.energy_kwh for t in trials)), rel=1e-9
    )
