"""Top-level runs in threads of one process (no run around them) count each stretch once.

``study.optimize(cb.track(objective), n_jobs=2, callbacks=[cb])`` with greenprint's Optuna
callback and no ``gp.track("search", role="sweep")`` around it records its trials as top-level
runs. Each read the whole process over its span (a meter reads a process, not a thread), so
before, the price tag's total counted the time two trials ran together twice, and so did each
trial's figure. Now top-level runs of one host that name the same process (provenance
``"process"``) and ran at the same time share each stretch of their time as the children of
one parent do (tests/analysis/test_threads_share.py): its energy counted once, at their mean
power, split equally among the runs in it. At constant power each counts that power times its
own share of the time, and together the power times the union of their spans. Top-level runs
in other processes, on other hosts, of machine scope, recorded before runs named their
process, or one after another keep what they measured, float for float.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _clean_env import BIN, clean_env, configured_above
from greenprint import RunRecord
from greenprint._format import format_energy
from greenprint.analysis import price_tag
from greenprint.analysis._common import RunForest
from tracking._meters import ConstantProcessPower

from .test_threads_share import ONE, OTHER, _chains, _counted, _run, _share_time_s, _union_s

KWH_J = 3.6e6


def _root(rid: str, kwh: float, start: float, end: float, **kw: Any) -> RunRecord:
    return _run(rid, kwh, parent=None, start=start, end=end, **kw)


def _counted_with_floor(spans: list[tuple[float, float]], amounts: list[float]) -> list[float]:
    """The rule from first principles (:func:`_counted`), each chain at least its largest."""
    rule = _counted(spans, amounts)
    for chain in _chains(spans):
        largest, total = max(amounts[i] for i in chain), math.fsum(rule[i] for i in chain)
        if len(chain) > 1 and total < largest:
            for i in chain:
                rule[i] *= largest / total
    return rule


# --------------------------------------------------------------------- hand-built studies
def test_two_top_level_trials_fully_together_each_count_half() -> None:
    """The defect: two trials in threads, no run around them, each read the process's 1 kWh
    over the same 100 s. The total was 2 kWh (each trial 1): it is 1, half each, and a note
    says why."""
    runs = [_root("t0", 1.0, 1000.0, 1100.0, acc=0.8), _root("t1", 1.0, 1000.0, 1100.0, acc=0.9)]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == [0.5, 0.5] and sums.exclusive == [0.5, 0.5]  # was [1, 1]
    assert sums.roots is not None and sums.roots.threads == (0, 1)
    tag = price_tag(runs, metric="acc")
    assert tag.total.energy_kwh == 1.0  # was 2.0
    assert tag.total.emissions_kg == pytest.approx(0.4, rel=1e-12)  # was 0.8
    assert tag.final is not None and tag.final.name == "t1" and tag.final.energy_kwh == 0.5
    (note,) = [n for n in tag.notes if "one process" in n]
    assert note.startswith(
        "the 2 top-level trials ('t0', 't1') ran at the same time in one process "
        "(threads or asyncio tasks), each measuring the whole process over its span: each "
        "stretch of their time is counted once"
    )
    assert "their measured energies, 2 kWh in all, count 1 kWh" in note
    assert "their CO2-eq likewise, 800 g to 400 g" in note  # the unit that fits, as the report's
    assert note.endswith("run them inside one, gp.track(..., role='sweep'))")


def test_staggered_top_level_trials_share_each_stretch_by_who_ran_in_it() -> None:
    """1 kWh per 100 s: t0 0-100 s, t1 50-150 s, t2 100-200 s (each reads 1 kWh). As under a
    parent: t0 0.75, t1 0.5, t2 0.75; 2 kWh in all (was 3), the process's over its 200 s. A
    trial after them (300-400 s) and one in another process keep theirs, float for float."""
    runs = [
        _root("t0", 1.0, 1000.0, 1100.0),
        _root("t1", 1.0, 1050.0, 1150.0),
        _root("t2", 1.0, 1100.0, 1200.0),
        _root("later", 0.3, 1300.0, 1400.0),
        _root("elsewhere", 0.7, 1000.0, 1100.0, process=OTHER),
        _root("machine", 0.9, 1000.0, 1100.0),
    ]
    runs[5] = dataclasses.replace(runs[5], scope="machine")
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive[:3] == pytest.approx([0.75, 0.5, 0.75], rel=1e-12)
    assert sums.inclusive[3:] == [0.3, 0.7, 0.9]
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(2.0 + 0.3 + 0.7 + 0.9, rel=1e-12)
    (note,) = [n for n in tag.notes if "top-level" in n]
    assert "the 3 top-level trials ('t0', 't1', 't2')" in note
    assert "3 kWh in all, count 2 kWh" in note


def test_a_top_level_trials_folds_go_with_it() -> None:
    """A trial's folds (one after another, in its thread) are scaled with it."""
    runs = [
        _root("t0", 1.0, 1000.0, 1100.0),
        _run("t0-f0", 0.25, parent="t0", start=1000.0, end=1025.0),
        _run("t0-f1", 0.75, parent="t0", start=1025.0, end=1100.0),
        _root("t1", 1.0, 1000.0, 1100.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([0.5, 0.125, 0.375, 0.5], rel=1e-12)
    assert math.fsum(sums.exclusive) == pytest.approx(1.0, rel=1e-12)
    assert price_tag(runs).total.energy_kwh == pytest.approx(1.0, rel=1e-12)


def test_threads_in_two_processes_and_on_two_hosts_count_apart() -> None:
    """Two pairs of threads at the same time: one pair per process (on one host), and the
    same process name on another host (another machine): each pair shares its own stretch."""
    runs = [
        _root("a0", 1.0, 1000.0, 1100.0),
        _root("a1", 1.0, 1000.0, 1100.0),
        _root("b0", 3.0, 1000.0, 1100.0, process=OTHER),
        _root("b1", 3.0, 1000.0, 1100.0, process=OTHER),
        _root("c0", 2.0, 1000.0, 1100.0, host="node-b"),
        _root("c1", 2.0, 1000.0, 1100.0, host="node-b"),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([0.5, 0.5, 1.5, 1.5, 1.0, 1.0], rel=1e-12)
    (note,) = [n for n in price_tag(runs).notes if "top-level" in n]
    assert "the 6 top-level trials (" in note
    assert "in threads (or asyncio tasks) of 3 processes" in note


def test_a_top_level_run_that_is_not_a_number_shares_nothing() -> None:
    """An energy that is no measurement: its sums are NaN and its chain keeps what it read."""
    runs = [_root("t0", math.nan, 1000.0, 1100.0), _root("t1", 1.0, 1000.0, 1100.0)]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert math.isnan(sums.inclusive[0]) and sums.inclusive[1] == 1.0
    assert sums.roots is None and sums.nonfinite == (0,)


# ------------------------------------------------------------------------------ properties
@st.composite
def top_level_runs(draw: Any) -> tuple[list[RunRecord], dict[Any, float]]:
    """2-10 top-level runs at random times in 1-3 processes on two hosts, each process at a
    constant power (kWh per s): a run reads its process's power x its span's length."""
    keys = [("node-a", ONE), ("node-a", OTHER), ("node-b", ONE)][: draw(st.integers(1, 3))]
    power = {k: draw(st.sampled_from([1e-4, 0.01, 1.0, 3.7])) for k in range(len(keys))}
    runs = []
    for k in range(draw(st.integers(2, 10))):
        which = draw(st.integers(0, len(keys) - 1))
        host, process = keys[which]
        start = 1000.0 + draw(st.integers(0, 40)) * draw(st.sampled_from([0.5, 1.0, 2.5]))
        length = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0, 25.0]))
        runs.append(
            _root(f"r{k}", power[which] * length, start, start + length, host=host,
                  process=process)
        )  # fmt: skip
    return runs, {keys[k][0] + keys[k][1]["process"]: p for k, p in power.items()}


def _key(run: RunRecord) -> str:
    return run.host + run.provenance["process"]


@settings(max_examples=100, deadline=None)
@given(top_level_runs())
def test_at_constant_power_each_top_level_run_counts_power_times_its_own_share(
    case: tuple[list[RunRecord], dict[str, float]],
) -> None:
    """No double counting: each process's runs hold its power x the union of their spans,
    each run its power x its own share of the time (a stretch k ran in: a k-th each)."""
    runs, power = case
    forest = RunForest.build(runs)
    sums = forest.shared_sums("energy_kwh")
    want = [0.0] * len(runs)
    total = 0.0
    for key, watts in power.items():
        mine = [k for k, r in enumerate(runs) if _key(r) == key]
        spans = [(runs[k].started_at, runs[k].ended_at or 0.0) for k in mine]
        for k, share_s in zip(mine, _share_time_s(spans), strict=True):
            want[k] = watts * share_s
        total += watts * _union_s(spans)
    assert sums.inclusive == pytest.approx(want, rel=1e-9)
    assert sums.exclusive == sums.inclusive
    assert math.fsum(sums.exclusive) == pytest.approx(total, rel=1e-9)
    assert price_tag(runs).total.energy_kwh == pytest.approx(total, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(top_level_runs(), st.data())
def test_any_readings_of_top_level_threads_count_by_the_rule(
    case: tuple[list[RunRecord], dict[str, float]], data: Any
) -> None:
    """Readings at random (the power varied): each process's runs count by the rule (a chain
    at least its largest reading), never more than they measured; the sums add up."""
    runs, power = case
    runs = [dataclasses.replace(r, energy_kwh=data.draw(st.floats(1e-6, 5.0))) for r in runs]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    for key in power:
        mine = [k for k, r in enumerate(runs) if _key(r) == key]
        spans = [(runs[k].started_at, runs[k].ended_at or 0.0) for k in mine]
        amounts = [runs[k].energy_kwh for k in mine]
        got = [sums.inclusive[k] for k in mine]
        assert got == pytest.approx(_counted_with_floor(spans, amounts), rel=1e-9)
        assert math.fsum(got) <= math.fsum(amounts) * (1 + 1e-9)
        for chain in _chains(spans):  # alone: what it measured, float for float
            if len(chain) == 1:
                assert got[chain[0]] == amounts[chain[0]]
    assert all(x >= 0 for x in sums.exclusive)
    assert math.fsum(sums.exclusive) == pytest.approx(math.fsum(sums.inclusive), rel=1e-12)


@st.composite
def apart(draw: Any) -> list[RunRecord]:
    """Top-level runs that never read one process at once: one after another in one process
    (touching or with gaps), or at any time in processes of their own, of machine scope, or
    recorded before runs named their process; random figures, some 0."""
    runs = []
    clock = 1000.0
    for k in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["sequential", "sequential", "own", "machine", "old"]))
        length = draw(st.sampled_from([0.0, 1.0, 5.0, 10.0]))
        kwh = draw(st.one_of(st.sampled_from([0.0, 0.25, 1.0]), st.floats(1e-6, 5.0)))
        if kind == "sequential":
            start = clock + draw(st.sampled_from([0.0, 0.0, 2.0]))
            clock = start + length
            run = _root(f"r{k}", kwh, start, start + length)
        else:
            start = 1000.0 + draw(st.integers(0, 30))
            process = {**ONE, "process": f"pid {k} started 1.00"} if kind == "own" else ONE
            run = _root(f"r{k}", kwh, start, start + length,
                        process=None if kind == "old" else process)  # fmt: skip
            if kind == "machine":
                run = dataclasses.replace(run, scope="machine")
        runs.append(run)
    return runs


@settings(max_examples=100, deadline=None)
@given(apart(), st.sampled_from(["energy_kwh", "emissions_kg"]))
def test_top_level_runs_that_never_ran_in_one_process_at_once_keep_what_they_measured(
    runs: list[RunRecord], name: str
) -> None:
    """Float for float: what each measured, and the total the price tag summed before."""
    sums = RunForest.build(runs).shared_sums(name)
    values = [getattr(r, name) for r in runs]
    assert sums.inclusive == values and sums.exclusive == values and sums.roots is None
    old = RunForest.build([dataclasses.replace(r, provenance={}) for r in runs]).shared_sums(name)
    assert sums.inclusive == old.inclusive and sums.exclusive == old.exclusive
    tag = price_tag(runs)
    assert getattr(tag.total, name) == float(sum(values))
    assert not any("top-level" in n for n in tag.notes)


# ------------------------------------------------- a real Optuna study in threads, the CLI
def test_an_optuna_study_in_threads_without_a_sweep_run_counts_its_overlap_once(
    tmp_path: Path,
) -> None:
    """study.optimize(cb.track(objective), n_jobs=2, callbacks=[cb]), no run around it, every
    meter at 3.6 kW (1e-3 kWh per s): the trials are top-level runs of one process that ran
    two at a time. The price tag's total is 3.6 kW x the union of their spans (was: their
    measured sum, about twice that), each trial 3.6 kW x its own share of the time;
    ``greenprint report --format json`` shows the same total and the note."""
    optuna = pytest.importorskip("optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    above = configured_above(tmp_path)
    if above:
        pytest.skip(f"greenprint configuration above the temporary dir: {above}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "l.db"
    kwh_per_s = 3600.0 / KWH_J
    cb = GreenprintCallback(ledger=db, study="roots",
                            meters=ConstantProcessPower(3600.0, per_thread=True),
                            sample_interval_s=0.05, flush_interval_s=0.1)  # fmt: skip

    def objective(trial: Any) -> float:
        time.sleep(0.3 + 0.15 * (trial.number % 3))  # staggered: stretches of one and two
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study(study_name="roots", direction="maximize")
    with pytest.warns(UserWarning, match="threads"):
        study.optimize(cb.track(objective), n_trials=5, n_jobs=2, callbacks=[cb])
    import greenprint as gp

    with gp.Ledger(db) as led:
        runs = led.runs(study="roots")
    assert len(runs) == 5 and {r.parent_id for r in runs} == {None}
    assert len({r.provenance["process"] for r in runs}) == 1
    spans = [(r.started_at, r.ended_at or 0.0) for r in runs]
    measured = [r.energy_kwh for r in runs]
    for (start, end), kwh in zip(spans, measured, strict=True):  # the meter: P x its span
        assert kwh == pytest.approx(kwh_per_s * (end - start), rel=0.05)
    union = kwh_per_s * _union_s(spans)
    assert math.fsum(measured) > 1.4 * union  # the defect: the overlap counted twice

    forest = RunForest.build(runs)
    got = forest.shared_sums("energy_kwh").inclusive
    assert got == pytest.approx(_counted_with_floor(spans, measured), rel=1e-9)  # the rule
    truth = [kwh_per_s * s for s in _share_time_s(spans)]  # first principles
    assert got == pytest.approx(truth, rel=0.05)
    tag = price_tag(runs, metric="value")
    assert tag.total.energy_kwh == pytest.approx(math.fsum(got), rel=1e-9)
    assert tag.total.energy_kwh == pytest.approx(union, rel=0.05)
    assert tag.by_role["trial"].energy_kwh == tag.total.energy_kwh
    best = max(runs, key=lambda r: r.metric("value") or 0.0)
    assert tag.final is not None and tag.final.name == best.name
    assert tag.final.energy_kwh == got[forest.index[best.id]]
    (note,) = [n for n in tag.notes if "top-level" in n]
    assert note.startswith("the 5 top-level trials ('trial-")  # in the ledger's order
    assert "and 2 more) ran at the same time in one process (threads or asyncio tasks)" in note
    in_all, count = math.fsum(measured), math.fsum(got)
    assert f"{format_energy(in_all)} in all, count {format_energy(count, unit_of=in_all)}" in note

    done = subprocess.run(
        [str(BIN / "greenprint"), "report", "--ledger", "l.db", "--study", "roots", "--format",
         "json", "--out", "rep", "--no-plots", "--metric", "value"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    shown = report["price_tag"]
    assert shown["total"]["energy_kwh"] == pytest.approx(tag.total.energy_kwh, rel=1e-9)
    assert shown["total"]["energy_kwh"] < 0.75 * math.fsum(measured)  # was: their sum
    assert shown["final"]["energy_kwh"] == pytest.approx(tag.final.energy_kwh, rel=1e-9)
    assert note in shown["notes"]
