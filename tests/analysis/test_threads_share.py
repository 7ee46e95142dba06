"""Runs in threads of one process that ran at the same time count each stretch of it once.

A meter reads a whole process over a run's span: trials run in threads of one process
(``study.optimize(n_jobs=2)``, a thread pool of ``gp.track`` runs) each read the whole process,
so two that ran fully together each hold the process's energy over that time. A run records
which process its meters read (provenance ``"process"``: pid and start time); children of a
parent on one host with the same process that ran at the same time share each stretch of
their time (cut at every start and end): its energy is counted once, at the mean power of the
runs that ran in it, and split equally among them (RunForest.shared_sums). Exact when the
process draws constant power over each stretch. Children in other processes or on other
machines measured different things and keep the rule of tests/analysis/test_concurrent.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _clean_env import BIN, clean_env, configured_above
from greenprint import MetricPoint, RunRecord
from greenprint.analysis import price_tag
from greenprint.analysis._common import RunForest
from tracking._meters import ConstantProcessPower

KWH_J = 3.6e6

#: One process (the key greenprint.tracking records) and another.
ONE = {"cpu": "test:constant", "scope": "process", "process": "pid 4242 started 1000.00"}
OTHER = {"cpu": "test:constant", "scope": "process", "process": "pid 4343 started 1000.00"}


def _run(
    rid: str,
    kwh: float,
    *,
    parent: str | None = "search",
    start: float = 1000.0,
    end: float = 1100.0,
    process: dict[str, str] | None = ONE,
    host: str = "node-a",
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
        host=host,
        energy_kwh=kwh,
        emissions_kg=kwh * 0.4,
        provenance=dict(process) if process is not None else {},
        contained=None if parent is None else True,
        metrics=() if acc is None else (MetricPoint("acc", acc),),
    )


def _share_time_s(spans: list[tuple[float, float]]) -> list[float]:
    """Each span's own share of time, from first principles: the time line cut at every start
    and end; a piece covered by k spans gives each of them 1/k of its length."""
    cuts = sorted({t for span in spans for t in span})
    out = [0.0] * len(spans)
    for a, b in zip(cuts, cuts[1:], strict=False):
        inside = [i for i, (s, e) in enumerate(spans) if s <= a and b <= e]
        for i in inside:
            out[i] += (b - a) / len(inside)
    return out


def _union_s(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -math.inf
    for s, e in sorted(spans):
        if e > reach:
            total += e - max(s, reach)
            reach = e
    return total


# --------------------------------------------------------------------- hand-built studies
def test_two_trials_fully_together_in_one_process_each_count_half() -> None:
    """The defect: under ``greenprint run`` the parent measured the start-up too (3 kWh), so
    its children's sum (2 x 1 kWh, the same 100 s of the same process) stayed below it and
    no sharing happened: each trial kept the whole process's 1 kWh, twice the truth."""
    runs = [
        _run("search", 3.0, parent=None, start=800.0, end=1100.0),
        _run("t0", 1.0, acc=0.8),
        _run("t1", 1.0, acc=0.9),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([3.0, 0.5, 0.5], rel=1e-12)  # was [3, 1, 1]
    assert sums.exclusive == pytest.approx([2.0, 0.5, 0.5], rel=1e-12)  # the start-up: 2
    tag = price_tag(runs, metric="acc")
    assert tag.total.energy_kwh == pytest.approx(3.0, rel=1e-12)
    assert tag.by_role["trial"].energy_kwh == pytest.approx(1.0, rel=1e-12)
    assert tag.final is not None and tag.final.energy_kwh == pytest.approx(0.5, rel=1e-12)
    assert tag.final.emissions_kg == pytest.approx(0.2, rel=1e-12)
    (note,) = [n for n in tag.notes if "one process" in n]
    assert note.startswith("the 2 trials of run 'search' ran at the same time in one process")
    assert "their measured energies, 2 kWh in all, count 1 kWh" in note
    assert "their CO2-eq likewise, 800 g to 400 g" in note
    assert not any("less energy" in n or "measured less" in n for n in tag.notes)


def test_staggered_trials_share_each_stretch_by_who_ran_in_it() -> None:
    """The process at 1 kWh per 100 s: t0 from 0 to 100 s, t1 from 50 to 150 s, t2 from 100
    to 200 s (each reads 1 kWh). Stretches: 0-50 t0 alone (0.5), 50-100 t0 and t1 (0.5, a
    quarter each), 100-150 t1 and t2, 150-200 t2 alone. Each counts power x its own-share
    time: t0 0.75, t1 0.5, t2 0.75; 2 kWh in all, the process's over its 200 s."""
    runs = [
        _run("search", 2.5, parent=None, start=900.0, end=1200.0),
        _run("t0", 1.0, start=1000.0, end=1100.0),
        _run("t1", 1.0, start=1050.0, end=1150.0),
        _run("t2", 1.0, start=1100.0, end=1200.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([2.5, 0.75, 0.5, 0.75], rel=1e-12)
    assert sums.exclusive == pytest.approx([0.5, 0.75, 0.5, 0.75], rel=1e-12)


def test_unequal_readings_share_each_stretch_at_their_mean_power() -> None:
    """t0 from 0 to 100 s read 1 kWh, t1 from 50 to 150 s read 1.5 (the power rose): 0-50 s
    at t0's power (0.5), 50-100 s at their mean, 0.0125 kWh/s (0.625, half each), 100-150 s
    at t1's (0.75). Fully together, readings that disagree (1.2 and 0.8 kWh: a short lag)
    count their mean, 1 kWh, but t0 read 1.2 of the whole process: at least that, half each."""
    runs = [
        _run("search", 3.0, parent=None, start=900.0, end=1150.0),
        _run("t0", 1.0, start=1000.0, end=1100.0),
        _run("t1", 1.5, start=1050.0, end=1150.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([3.0, 0.8125, 1.0625], rel=1e-12)
    runs[1:] = [_run("t0", 1.2), _run("t1", 0.8)]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([3.0, 0.6, 0.6], rel=1e-12)


def test_children_alone_and_in_other_processes_keep_their_rule() -> None:
    """A baseline alone keeps what it measured (float for float); two runs of another process
    (each its own process: different keys) keep theirs too; the two threads of one process
    share their stretch. Old records with no process key keep the old rule."""
    runs = [
        _run("search", 10.0, parent=None, start=900.0, end=1400.0),
        _run("baseline", 1.0, start=900.0, end=1000.0),
        _run("t0", 1.0, start=1000.0, end=1100.0),
        _run("t1", 1.0, start=1000.0, end=1100.0),
        _run("w0", 0.7, start=1100.0, end=1200.0, process=OTHER),
        _run("w1", 0.3, start=1100.0, end=1200.0,
             process={**OTHER, "process": "pid 4444 started 1000.00"}),
        _run("elsewhere", 0.4, start=1000.0, end=1100.0, host="node-b"),
    ]  # fmt: skip
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive[1:] == pytest.approx([1.0, 0.5, 0.5, 0.7, 0.3, 0.4], rel=1e-12)
    assert sums.inclusive[1] == 1.0 and sums.inclusive[4] == 0.7 and sums.inclusive[6] == 0.4
    assert sums.inclusive[0] == 10.0
    assert sums.exclusive[0] == pytest.approx(10.0 - 3.4, rel=1e-12)
    # the same runs recorded before runs said their process: the old rule, float for float
    old = [dataclasses.replace(r, provenance={}) for r in runs]
    plain = RunForest.build(old)
    assert (
        plain.shared_sums("energy_kwh").inclusive == plain.nested_sum(plain.column("energy_kwh"))[0]
    )


def test_a_parent_short_of_its_threads_share_keeps_their_count_and_says_so() -> None:
    """The parent read 0.8 kWh, below the 1 kWh its two threads count once (a meter that
    lagged): its own part would be negative. It is 0, the children's count stands, a note."""
    runs = [
        _run("search", 0.8, parent=None, start=1000.0, end=1100.0),
        _run("t0", 1.0),
        _run("t1", 1.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([1.0, 0.5, 0.5], rel=1e-12)
    assert sums.exclusive == pytest.approx([0.0, 0.5, 0.5], rel=1e-12)
    assert sums.shares[0].short
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(1.0, rel=1e-12)
    (note,) = [n for n in tag.notes if "measured less" in n]
    assert note.startswith(
        "run 'search' measured less energy (800 Wh) than its children that ran at the same "
        "time in one process count (1 kWh)"
    )


def test_threads_counting_more_than_their_parent_measured_are_scaled_to_it() -> None:
    """The parent read the process over the same 150 s (1.1 kWh); its threads' stretches
    count 1.2 (t0 at 1 kWh per 100 s over 0-100 s, t1 at 0.6 over 50-150 s: 0.5 + 0.4 + 0.3):
    the power varied, and the parent's reading is the truth for the whole. The threads are
    scaled to it (x11/12), never below what the larger of them read (1 kWh: the floor)."""
    runs = [
        _run("search", 1.1, parent=None, start=1000.0, end=1150.0),
        _run("t0", 1.0, start=1000.0, end=1100.0),
        _run("t1", 0.6, start=1050.0, end=1150.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([1.1, 0.7 * 11 / 12, 0.5 * 11 / 12], rel=1e-12)
    assert sums.exclusive[0] == 0
    share = sums.shares[0]
    assert share.threads_counted == pytest.approx(1.2, rel=1e-12)
    assert share.threads_shared == pytest.approx(1.1, rel=1e-12) and not share.short
    (note,) = [n for n in price_tag(runs).notes if "one process" in n]
    assert (
        "1.6 kWh in all, count 1.1 kWh (1.2 kWh by their stretches, scaled to what their "
        "parent measured)" in note
    )
    # below the floor: the parent read less than t0 alone did
    runs[0] = _run("search", 0.9, parent=None, start=1000.0, end=1150.0)
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([1.0, 0.7 / 1.2, 0.5 / 1.2], rel=1e-12)
    assert sums.shares[0].short
    assert any("run 'search' measured less energy (900 Wh)" in n for n in price_tag(runs).notes)


def test_a_threads_folds_go_with_it() -> None:
    """A trial's folds (sequential, in its thread) are scaled with it: the trial's share of
    the process, split as its folds measured."""
    runs = [
        _run("search", 3.0, parent=None, start=900.0, end=1100.0),
        _run("t0", 1.0),
        _run("t0-f0", 0.25, parent="t0", start=1000.0, end=1025.0),
        _run("t0-f1", 0.75, parent="t0", start=1025.0, end=1100.0),
        _run("t1", 1.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([3.0, 0.5, 0.125, 0.375, 0.5], rel=1e-12)
    assert math.fsum(sums.exclusive) == pytest.approx(3.0, rel=1e-12)


def test_a_staggered_threads_folds_count_what_ran_beside_each_of_them() -> None:
    """The process at 1 kWh per 100 s; t0 from 0 to 100 s (folds 0-50 and 50-100), t1 from
    50 to 150 s (folds 50-100 and 100-150), each run read the whole process over its span.
    First principles: 0-50 s t0's first fold alone (0.5 kWh), 50-100 s t0's second fold beside
    t1's first (0.25 each), 100-150 s t1's second fold alone (0.5). Each trial counts 0.75.
    Before, each fold took its trial's mean factor over the trial's span (0.75): 0.375 each,
    the fold that ran alone counted as though it had shared its time."""
    runs = [
        _run("search", 1.5, parent=None, start=1000.0, end=1150.0),
        _run("t0", 1.0, start=1000.0, end=1100.0),
        _run("t0-f0", 0.5, parent="t0", start=1000.0, end=1050.0),
        _run("t0-f1", 0.5, parent="t0", start=1050.0, end=1100.0),
        _run("t1", 1.0, start=1050.0, end=1150.0),
        _run("t1-f0", 0.5, parent="t1", start=1050.0, end=1100.0),
        _run("t1-f1", 0.5, parent="t1", start=1100.0, end=1150.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([1.5, 0.75, 0.5, 0.25, 0.75, 0.25, 0.5], rel=1e-12)
    assert sums.exclusive == pytest.approx([0.0, 0.0, 0.5, 0.25, 0.0, 0.25, 0.5], abs=1e-12)


def test_trials_in_two_sweeps_that_ran_in_threads_count_their_own_stretch() -> None:
    """Two sweeps with no run around them, in threads of one process at 1 kWh per 100 s:
    sweep-0 from 0 to 200 s, its trial from 100 s; sweep-1 and its trial from 100 to 200 s.
    First principles: 0-100 s is sweep-0's own (1 kWh), 100-200 s the two trials' (0.5 each).
    Before, sweep-0's trial took its sweep's mean factor over 0-200 s: 0.75."""
    runs = [
        _run("sweep-0", 2.0, parent=None, start=1000.0, end=1200.0),
        _run("trial-0", 1.0, parent="sweep-0", start=1100.0, end=1200.0),
        _run("sweep-1", 1.0, parent=None, start=1100.0, end=1200.0),
        _run("trial-1", 1.0, parent="sweep-1", start=1100.0, end=1200.0),
    ]
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    assert sums.inclusive == pytest.approx([1.5, 0.5, 0.5, 0.5], rel=1e-12)
    assert sums.exclusive == pytest.approx([1.0, 0.5, 0.0, 0.5], abs=1e-12)
    assert math.fsum(sums.exclusive) == pytest.approx(2.0, rel=1e-12)
    roles = {"sweep-0": "sweep", "sweep-1": "sweep", "trial-0": "trial", "trial-1": "trial"}
    runs = [dataclasses.replace(r, role=roles[r.id]) for r in runs]
    runs[1] = dataclasses.replace(runs[1], metrics=(MetricPoint("acc", 0.8),))
    (note,) = [n for n in price_tag(runs, metric="acc").notes if "top-level" in n]
    assert note.startswith("the 2 top-level runs ('sweep-0', 'sweep-1') ran at the same time")
    # they are sweeps already: the hint is a run around them, not role='sweep' (it said so)
    assert note.endswith("track the process in one run around them, gp.track(...))"), note


# ------------------------------------------------------------------------------ properties
@st.composite
def pools(draw: Any) -> tuple[list[RunRecord], float]:
    """A parent over 2-9 children in one process at constant power (kWh per s), at random
    times; the parent measured the process over its span, which holds theirs."""
    power = draw(st.sampled_from([1e-4, 0.01, 1.0, 3.7]))
    count = draw(st.integers(2, 9))
    kids = []
    for k in range(count):
        start = 1000.0 + draw(st.integers(0, 40)) * draw(st.sampled_from([0.5, 1.0, 2.5]))
        length = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0, 25.0]))
        end = start + length
        kids.append(_run(f"c{k}", power * length, start=start, end=end))
    first = min(k.started_at for k in kids) - draw(st.sampled_from([0.0, 5.0]))
    last = max(k.ended_at or 0.0 for k in kids) + draw(st.sampled_from([0.0, 5.0]))
    spans = [(k.started_at, k.ended_at or 0.0) for k in kids]
    own = power * (_union_s(spans) + (min(s for s, _ in spans) - first) + (last - max(
        e for _, e in spans)))  # fmt: skip
    return [_run("search", own, parent=None, start=first, end=last), *kids], power


@settings(max_examples=100, deadline=None)
@given(pools())
def test_at_constant_power_each_child_counts_power_times_its_own_share_of_time(
    case: tuple[list[RunRecord], float],
) -> None:
    runs, power = case
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    kids = runs[1:]
    spans = [(k.started_at, k.ended_at or 0.0) for k in kids]
    for k, share_s in enumerate(_share_time_s(spans), start=1):
        assert sums.inclusive[k] == pytest.approx(power * share_s, rel=1e-9)
    # never counted twice: the children hold the process's energy over their union, once
    assert math.fsum(sums.inclusive[1:]) == pytest.approx(power * _union_s(spans), rel=1e-9)
    # the parent keeps what it measured; its own part is the rest, never negative
    assert sums.inclusive[0] == pytest.approx(runs[0].energy_kwh, rel=1e-9)
    assert sums.exclusive[0] >= -1e-12 * runs[0].energy_kwh
    assert math.fsum(sums.exclusive) == pytest.approx(runs[0].energy_kwh, rel=1e-9)


def _own_time_s(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """The share of time of a run inside one of ``spans`` from ``start`` to ``end``, from first
    principles: each piece between two cuts gives it 1/k of its length, k the spans over it."""
    cuts = sorted({t for span in spans for t in span} | {start, end})
    total = 0.0
    for a, b in zip(cuts, cuts[1:], strict=False):
        if start <= a and b <= end:
            total += (b - a) / sum(1 for s, e in spans if s <= a and b <= e)
    return total


@settings(max_examples=100, deadline=None)
@given(pools(), st.lists(st.integers(1, 4), min_size=9, max_size=9), st.booleans())
def test_at_constant_power_each_fold_of_a_thread_counts_its_own_share_of_time(
    case: tuple[list[RunRecord], float], folds: list[int], sweep: bool
) -> None:
    """Each child split into 1-4 folds one after another, in its thread: a fold counts the
    power times its own share of time (what ran beside it while it ran), under a sweep run or
    with none around the threads; the folds of a thread sum to it, nothing counted twice."""
    runs, power = case
    kids = runs[1:]
    if not sweep:
        kids = [dataclasses.replace(k, parent_id=None, contained=None) for k in kids]
        runs = list(kids)
    spans = [(k.started_at, k.ended_at or 0.0) for k in kids]
    expected: dict[str, float] = {}
    for kid, pieces in zip(kids, folds, strict=False):
        start, end = kid.started_at, kid.ended_at or 0.0
        step = (end - start) / pieces
        for j in range(pieces):
            a, b = start + j * step, (end if j == pieces - 1 else start + (j + 1) * step)
            name = f"{kid.id}-f{j}"
            runs.append(_run(name, power * (b - a), parent=kid.id, start=a, end=b))
            expected[name] = power * _own_time_s(spans, a, b)
    sums = RunForest.build(runs).shared_sums("energy_kwh")
    at = {r.id: k for k, r in enumerate(runs)}
    for name, want in expected.items():
        assert sums.inclusive[at[name]] == pytest.approx(want, rel=1e-9, abs=1e-15), name
    for kid, share_s in zip(kids, _share_time_s(spans), strict=True):
        assert sums.inclusive[at[kid.id]] == pytest.approx(power * share_s, rel=1e-9)
        assert sums.exclusive[at[kid.id]] == pytest.approx(0.0, abs=1e-9 * kid.energy_kwh)
    assert math.fsum(sums.exclusive) == pytest.approx(sums.inclusive[0] if sweep else math.fsum(
        sums.inclusive[at[k.id]] for k in kids), rel=1e-9)  # fmt: skip


def _counted(spans: list[tuple[float, float]], amounts: list[float]) -> list[float]:
    """The rule as written, plainly: each piece of time between two starts or ends, where k
    runs ran, counts the mean of their powers x its length, a k-th to each."""
    cuts = sorted({t for span in spans for t in span})
    out = [0.0] * len(spans)
    for a, b in zip(cuts, cuts[1:], strict=False):
        inside = [i for i, (s, e) in enumerate(spans) if s <= a and b <= e]
        if inside:
            mean = math.fsum(amounts[i] / (spans[i][1] - spans[i][0]) for i in inside) / len(inside)
            for i in inside:
                out[i] += mean * (b - a) / len(inside)
    return out


@settings(max_examples=100, deadline=None)
@given(pools(), st.data())
def test_any_readings_count_by_the_rule_and_the_parent_holds_them(
    case: tuple[list[RunRecord], float], data: Any
) -> None:
    """Readings at random (the power varied): each child counts by the rule (a group at least
    its largest reading); when their count is more than the parent measured, they are scaled
    to it (floored at each group's largest reading); the parent's own part is never negative;
    the total is the parent's or, below the floor, the floor."""
    runs, _ = case
    kids = [dataclasses.replace(k, energy_kwh=data.draw(st.floats(1e-6, 5.0))) for k in runs[1:]]
    own = data.draw(st.floats(1e-6, 20.0))
    runs = [dataclasses.replace(runs[0], energy_kwh=own), *kids]
    forest = RunForest.build(runs)
    sums = forest.shared_sums("energy_kwh")
    spans = [(k.started_at, k.ended_at or 0.0) for k in kids]
    amounts = [k.energy_kwh for k in kids]
    # one chain of overlaps or several: each chain is a group, its count the rule's
    rule = _counted(spans, amounts)
    groups = _chains(spans)
    for g in groups:  # a group counts at least what its largest member read
        largest, total = max(amounts[i] for i in g), math.fsum(rule[i] for i in g)
        if len(g) > 1 and total < largest:
            for i in g:
                rule[i] *= largest / total
    counted = math.fsum(rule)
    floor = math.fsum(max(amounts[i] for i in g) for g in groups)
    got = sums.inclusive[1:]
    if all(len(g) == 1 for g in groups):  # one after another: the old rule, each its own
        assert got == amounts and 0 not in sums.shares
        assert sums.inclusive[0] == max(own, math.fsum(amounts)) or math.isclose(
            sums.inclusive[0], max(own, math.fsum(amounts)), rel_tol=1e-12
        )
    elif counted <= own:  # the parent holds them: each counts by the rule
        assert got == pytest.approx(rule, rel=1e-9)
        assert sums.exclusive[0] == pytest.approx(own - counted, rel=1e-9, abs=1e-12)
    elif floor <= own:  # scaled to the parent's reading
        assert math.fsum(got) == pytest.approx(own, rel=1e-9)
        assert sums.exclusive[0] <= own * 1e-9  # 0, or what rounding left
    else:  # below the floor: the parent is short, each group at its largest reading
        assert sums.inclusive[0] == pytest.approx(floor, rel=1e-9)
        assert sums.shares[0].short
    assert all(x >= 0 for x in sums.exclusive)
    assert math.fsum(sums.exclusive) == pytest.approx(sums.inclusive[0], rel=1e-9)


def _chains(spans: list[tuple[float, float]]) -> list[list[int]]:
    """Indices of the spans chained by overlaps (a span alone: a chain of one)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    chains: list[list[int]] = []
    reach = -math.inf
    for i in order:
        if spans[i][0] < reach:
            chains[-1].append(i)
        else:
            chains.append([i])
        reach = max(reach, spans[i][1]) if spans[i][0] < reach else spans[i][1]
    return chains


@st.composite
def trees(draw: Any, *, keys: str) -> list[RunRecord]:
    """Runs nested at random, children of a parent one after another, or (``keys="other"``)
    at random times each in a process of its own; ``keys`` also ``"one"``: all one process."""
    count = draw(st.integers(1, 12))
    parents: list[int | None] = [None]
    for k in range(1, count):
        parents.append(draw(st.sampled_from([None, *range(k)])))
    slot = [0] * count
    runs = []
    for k in range(count):
        p = parents[k]
        if keys == "other":
            start = 1000.0 + draw(st.integers(0, 4))
        else:
            start = 1000.0 + (10.0 * slot[p] if p is not None else 100.0 * k)
            if p is not None:
                slot[p] += 1
        duration = draw(st.sampled_from([0.0, 1.0, 5.0, 10.0]))
        energy = draw(st.one_of(st.sampled_from([0.0, 0.25, 1.0, 3.0]), st.floats(1e-6, 5.0)))
        process = {**ONE, "process": f"pid {k} started 1.00"} if keys == "other" else ONE
        runs.append(
            _run(f"r{k}", energy, parent=None if p is None else f"r{p}", start=start,
                 end=start + duration, process=process)
        )  # fmt: skip
    return runs


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(trees(keys="one"), trees(keys="other")),
    st.sampled_from(["energy_kwh", "emissions_kg"]),
)
def test_children_one_after_another_or_in_other_processes_keep_the_old_sums(
    runs: list[RunRecord], name: str
) -> None:
    """Float for float: what the rule gave before runs recorded their process."""
    new = RunForest.build(runs).shared_sums(name)
    old = RunForest.build([dataclasses.replace(r, provenance={}) for r in runs]).shared_sums(name)
    assert new.inclusive == old.inclusive and new.exclusive == old.exclusive
    assert new.scaled == old.scaled


@st.composite
def mixed(draw: Any) -> list[RunRecord]:
    """Runs nested at random, at random times, in a few processes on two hosts (some named,
    some not, some of machine scope), some on another host adding to their parent."""
    count = draw(st.integers(1, 14))
    runs = []
    for k in range(count):
        parent = draw(st.sampled_from([None, *range(k)])) if k else None
        start = 1000.0 + draw(st.integers(0, 6))
        duration = draw(st.sampled_from([0.0, 1.0, 2.0, 5.0]))
        process = draw(st.sampled_from([ONE, ONE, ONE, OTHER, None]))
        run = _run(
            f"r{k}", draw(st.sampled_from([0.0, 0.3, 1.0, 2.5])), parent=None if parent is None
            else f"r{parent}", start=start, end=start + duration, process=process,
            host=draw(st.sampled_from(["node-a", "node-a", "node-b"])),
            status=draw(st.sampled_from(["finished", "running"])),
        )  # fmt: skip
        if draw(st.integers(0, 5)) == 0:
            run = dataclasses.replace(run, scope="machine")
        if parent is not None and draw(st.integers(0, 5)) == 0:
            run = dataclasses.replace(run, contained=False)  # another host: adds
        runs.append(run)
    return runs


@settings(max_examples=100, deadline=None)
@given(mixed(), st.sampled_from(["energy_kwh", "emissions_kg"]))
def test_nothing_is_lost_or_counted_twice_with_threads_among_the_runs(
    runs: list[RunRecord], name: str
) -> None:
    """Whatever the mix: no negative part, the parts add up to the roots, and what is inside a
    parent never holds more than the parent counts."""
    forest = RunForest.build(runs)
    sums = forest.shared_sums(name)
    total = math.fsum(sums.inclusive[r] for r in forest.roots)
    assert math.fsum(sums.exclusive) == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert all(x >= -1e-15 for x in sums.exclusive)
    for pos in forest.inner_order:
        added = math.fsum(sums.inclusive[c] for c in forest.children[pos] if forest.adds(c))
        inside = math.fsum(sums.inclusive[c] for c in forest.children[pos] if not forest.adds(c))
        assert inside <= (sums.inclusive[pos] - added) * (1 + 1e-9) + 1e-12
        for group in forest.thread_groups(pos):  # one process, one host, overlapping
            keys = {(runs[c].host, runs[c].provenance.get("process")) for c in group}
            assert len(keys) == 1 and None not in {k[1] for k in keys}
            assert all(runs[c].scope == "process" and not forest.adds(c) for c in group)


# ---------------------------------------------------------- real threads, a constant power
def _by_the_rule(a: tuple[float, float, float], b: tuple[float, float, float]) -> list[float]:
    """Two runs' ``(start, end, kWh)``, shared by the rule worked out by hand: the stretch only
    one ran at its own power, the stretch both ran at their mean power, halved."""
    (s0, e0, k0), (s1, e1, k1) = a, b
    w0, w1 = k0 / (e0 - s0), k1 / (e1 - s1)
    both = max(0.0, min(e0, e1) - max(s0, s1))
    mean = (w0 + w1) / 2
    return [w0 * (e0 - s0 - both) + mean * both / 2, w1 * (e1 - s1 - both) + mean * both / 2]


def test_real_threads_of_one_process_count_their_overlap_once(tmp_path: Path) -> None:
    """gp.track in two real threads under a search in the main thread, every meter at 1 kW:
    the search reads its start-up (0.6 s) and the trials; trial 1 starts 0.15 s after
    trial 0, each runs 0.5 s. Before: the search's reading stayed above the trials' sum, so
    each kept the whole process over its span (0.5 kJ... twice the overlap). Now each counts
    1 kW x its own share of the time."""
    import greenprint as gp

    ledger = tmp_path / "l.db"
    fast = {"sample_interval_s": 0.02, "flush_interval_s": 0.05, "intensity": 400, "pue": 1.0}
    go = threading.Event()
    second_started = threading.Event()

    def trial(k: int, search: Any) -> None:
        go.wait(timeout=30)
        time.sleep(0.15 * k)
        with gp.track(f"trial-{k}", ledger=ledger, study="s", role="trial", parent=search,
                      meters=ConstantProcessPower(1000.0), **fast) as run:  # fmt: skip
            started = time.monotonic()
            if k == 1:
                second_started.set()
            else:  # trial 0 ends after trial 1 started, however slow the machine (they overlap)
                second_started.wait(timeout=30)
            time.sleep(max(0.5 - (time.monotonic() - started), 0.05))
            run.log(acc=0.8 + k / 10)

    with gp.track("search", ledger=ledger, study="s", role="sweep",
                  meters=ConstantProcessPower(1000.0), **fast) as search:  # fmt: skip
        time.sleep(0.6)  # start-up: imports, data
        threads = [threading.Thread(target=trial, args=(k, search)) for k in range(2)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join()
    with gp.Ledger(ledger) as led:
        runs = {r.name: r for r in led.runs(study="s")}
    t0, t1, whole = runs["trial-0"], runs["trial-1"], runs["search"]
    assert t0.provenance["process"] == t1.provenance["process"] == whole.provenance["process"]
    assert t0.ended_at is not None and t1.ended_at is not None
    assert t1.started_at < t0.ended_at  # they ran at the same time
    measured = t0.energy_kwh + t1.energy_kwh
    assert measured < whole.energy_kwh  # the defect's case: no sharing under the old rule
    spans = [(t0.started_at, t0.ended_at), (t1.started_at, t1.ended_at)]
    forest = RunForest.build(list(runs.values()))
    sums = forest.shared_sums("energy_kwh")
    got = [sums.inclusive[forest.index[r.id]] for r in (t0, t1)]
    # the rule, from the recorded figures, and the truth: 1 kW x each one's share of time
    rule = _by_the_rule((*spans[0], t0.energy_kwh), (*spans[1], t1.energy_kwh))
    assert got == pytest.approx(rule, rel=1e-9)
    truth = [1000.0 * s / KWH_J for s in _share_time_s(spans)]
    assert got == pytest.approx(truth, rel=0.02)
    assert math.fsum(got) == pytest.approx(1000.0 * _union_s(spans) / KWH_J, rel=0.02)
    assert math.fsum(got) < measured * 0.9  # the overlap (0.35 s of 1 s) counted once
    tag = price_tag(list(runs.values()), metric="acc")
    assert tag.total.energy_kwh == pytest.approx(whole.energy_kwh, rel=1e-9)
    assert tag.by_role["trial"].energy_kwh == pytest.approx(math.fsum(got), rel=1e-9)
    assert tag.final is not None and tag.final.name == "trial-1"
    assert tag.final.energy_kwh == pytest.approx(got[1], rel=1e-9)


# ------------------------------------------------------------------------------ the CLI
SCRIPT = """
import threading, time
import greenprint as gp
from greenprint.meters._base import MeterReading


class Power:  # a meter of constant power: 1 W x the time since it started
    components = ("cpu",)
    provenance = {"cpu": "test:constant-power"}

    def start(self):
        self.t0 = time.time()

    def read(self):
        joules = 1.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self):
        pass


end = time.process_time() + 0.5
while time.process_time() < end:  # start-up, measured by greenprint run's own run
    pass


def trial(k):
    time.sleep(0.2 * k)
    with gp.track(f"trial-{k}", role="trial", meters=Power(), sample_interval_s=0.05) as run:
        time.sleep(0.6)
        run.log(acc=0.8 + k / 10)


threads = [threading.Thread(target=trial, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_greenprint_run_around_two_threads_reports_each_stretch_once(tmp_path: Path) -> None:
    """``greenprint run -- python search.py`` (2 trials in threads, 1 W each while running,
    the second 0.2 s after the first, 0.6 s each) and ``greenprint report --format json``:
    the trials count 1 W x their own share of the time; the run's total is what
    ``greenprint run`` measured of the whole process (start-up included)."""
    above = configured_above(tmp_path)
    if above:
        pytest.skip(f"greenprint configuration above the temporary dir: {above}")
    (tmp_path / "search.py").write_text(SCRIPT, encoding="utf-8")
    greenprint = str(BIN / "greenprint")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    done = run(greenprint, "run", "--name", "search", "--study", "cli", "--ledger", "l.db",
               "--role", "sweep", "--", sys.executable, "search.py")  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run(greenprint, "report", "--ledger", "l.db", "--study", "cli", "--format", "json",
               "--out", "rep", "--no-plots", "--metric", "acc")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text(encoding="utf-8"))
    import greenprint as gp

    with gp.Ledger(tmp_path / "l.db", create=False) as led:
        runs = {r.name: r for r in led.runs(study="cli")}
    t0, t1, search = runs["trial-0"], runs["trial-1"], runs["search"]
    assert t0.parent_id == t1.parent_id == search.id
    assert t0.provenance["process"] == t1.provenance["process"]
    assert t0.ended_at is not None and t1.ended_at is not None
    spans = [(t0.started_at, t0.ended_at), (t1.started_at, t1.ended_at)]
    measured = t0.energy_kwh + t1.energy_kwh
    assert measured < search.energy_kwh  # the parent measured the start-up too
    truth = [1.0 * s / KWH_J for s in _share_time_s(spans)]
    tag = report["price_tag"]
    assert tag["total"]["energy_kwh"] == pytest.approx(search.energy_kwh, rel=1e-9)
    assert tag["by_role"]["trial"]["energy_kwh"] == pytest.approx(math.fsum(truth), rel=0.02)
    assert tag["by_role"]["trial"]["energy_kwh"] < measured * 0.9  # was: measured
    assert tag["final"]["name"] == "trial-1"
    assert tag["final"]["energy_kwh"] == pytest.approx(truth[1], rel=0.02)
    assert any("in one process" in n for n in tag["notes"])
