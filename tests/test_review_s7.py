"""Review of session 7's changes: reproducers of the defects found, each with its fix.

Threads of one process (``analysis/_common.py``, ``RunForest._count_chains``): a run that read
nothing (0 kWh: a trial killed before its first flush) is no reading of the process and keeps
its 0; the runs that read must then chain by their own overlaps, not through it. Two groups of
threads that a run of 0 joined were counted as one group, and a group counts at least its
largest member's amount: the floor of the joined group hid the floor of one of them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint import MetricPoint, RunRecord
from greenprint.analysis import price_tag
from greenprint.analysis._common import RunForest
from tracking._meters import ConstantProcessPower

ONE = {"cpu": "test:constant", "scope": "process", "process": "pid 4242 started 1000.00"}


def _run(rid: str, kwh: float, start: float, end: float, parent: str | None = None) -> RunRecord:
    return RunRecord(
        id=rid,
        name=rid,
        parent_id=parent,
        status="finished",
        started_at=start,
        ended_at=end,
        duration_s=end - start,
        host="node-a",
        energy_kwh=kwh,
        emissions_kg=kwh * 0.4,
        provenance=dict(ONE),
        contained=None if parent is None else True,
        metrics=(MetricPoint("acc", 0.5),),
    )


def _groups() -> list[RunRecord]:
    """Two groups of threads 100 s apart: 'a' and 'b' disagree (1 and 0.2 kWh over the same
    100 s: their stretches count 0.6, 0.3 each, below 'a''s 1 kWh, so the group counts 1,
    0.5 each), 'c' and 'd'
    agree (2 kWh each over the same 100 s: 2 kWh in all)."""
    return [
        _run("a", 1.0, 1000.0, 1100.0),
        _run("b", 0.2, 1000.0, 1100.0),
        _run("c", 2.0, 1200.0, 1300.0),
        _run("d", 2.0, 1200.0, 1300.0),
    ]


def test_a_run_that_read_nothing_does_not_join_two_groups_of_threads() -> None:
    """A run of 0 kWh spanning both groups (a trial killed before its first flush) read
    nothing: the total stays 3 kWh, each group floored at its own largest member (was 2.6:
    one group of four, 0.6 + 2 above its largest, 2, so 'a' and 'b' lost their floor)."""
    alone = price_tag(_groups(), metric="acc").total.energy_kwh
    assert alone == pytest.approx(3.0, rel=1e-12)
    joined = [*_groups(), _run("z", 0.0, 1050.0, 1250.0)]
    assert price_tag(joined, metric="acc").total.energy_kwh == pytest.approx(3.0, rel=1e-12)
    sums = RunForest.build(joined).shared_sums("energy_kwh")
    assert sums.inclusive[:2] == pytest.approx([0.5, 0.5], rel=1e-12)  # 0.3 each, floored to 1
    assert sums.inclusive[2:] == pytest.approx([1.0, 1.0, 0.0], rel=1e-12)


def test_runs_that_never_ran_together_are_not_called_threads() -> None:
    """Under a parent, 't0' and 't2' ran one after another, joined only by 't1', which read 0
    kWh: they are no group of threads (the note said 'the 2 parts of run 's' ran at the same
    time in one process'); what ran together is told by the rule for concurrent runs."""
    runs: list[Any] = [
        _run("s", 1.5, 990.0, 1300.0),
        _run("t0", 1.0, 1000.0, 1100.0, parent="s"),
        _run("t1", 0.0, 1050.0, 1200.0, parent="s"),
        _run("t2", 1.0, 1150.0, 1250.0, parent="s"),
    ]
    forest = RunForest.build(runs)
    share = forest.shared_sums("energy_kwh").shares[0]
    assert share.threads == ()
    assert not [n for n in price_tag(runs, metric="acc").notes if "2 parts" in n]


# ------------------------------------------------------------------- every machine named
def _on(rid: str, host: str, hardware: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=rid,
        name=rid,
        host=host,
        hardware=hardware,
        status="finished",
        started_at=1000.0,
        ended_at=1010.0,
        duration_s=10.0,
        energy_kwh=0.1,
    )


def test_a_machine_whose_runs_recorded_no_hardware_is_named_too() -> None:
    """The compute statement of a study on 2 machines named 1 ('2 machines: host a: Xeon ...'):
    host b's runs recorded no hardware (a ledger merged from an older greenprint, records built
    by hand). Each machine is named, with what is known of it."""
    from greenprint.report._text import _machines, hardware_descriptions

    xeon = {"cpu_model": "Xeon", "logical_cores": 8, "ram_gb": 32}
    runs = [_on("r0", "a", xeon), _on("r1", "b", {}), _on("r2", "b", {})]
    said = hardware_descriptions(runs)
    assert said == (
        "host b: hardware not recorded (2 runs)",
        "host a: Xeon (8 logical CPUs, 32 GB RAM), no GPU (1 run)",
    )
    assert _machines(runs, said).startswith("2 machines: host b: hardware not recorded")
    bare = [_on("r0", "a", {}), _on("r1", "b", {})]  # was '2 machines: unknown (the runs ...)'
    assert hardware_descriptions(bare) == (
        "host a: hardware not recorded (1 run)",
        "host b: hardware not recorded (1 run)",
    )
    # one machine: runs that recorded no hardware beside others are left out, as before
    assert hardware_descriptions([_on("r0", "a", xeon), _on("r1", "a", {})]) == (
        "Xeon (8 logical CPUs, 32 GB RAM), no GPU",
    )


# ------------------------------------------------------- a study budget's live part, threads
def test_a_study_budget_counts_live_trials_in_threads_of_one_process_once(
    tmp_path: Path,
) -> None:
    """Two top-level runs of a study in threads of this process (Optuna n_jobs=2 with no sweep
    run), each reading the whole process at 3.6 kW (1e-3 kWh a second) for 1.2 s together: the
    study has spent about 1.2e-3 kWh, under its 1.8e-3 kWh budget. Its live part summed both
    runs' readings, each the whole process (about 2.4e-3 kWh): the budget stopped them both
    at about 0.9 s, as the ledger's read (each stretch once) would not have."""
    db = tmp_path / "l.db"
    budget = gp.Budget(kwh=1.8e-3, per="study", on_exceed="stop")
    together = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []
    spent: list[float] = []

    def trial(name: str) -> None:
        try:
            with gp.track(name, study="s", ledger=db, budget=budget,
                          meters=ConstantProcessPower(3600.0), sample_interval_s=0.02,
                          flush_interval_s=0.05) as run:  # fmt: skip
                together.wait()
                deadline = time.time() + 1.2
                while time.time() < deadline:
                    run.log(loss=1.0)
                    time.sleep(0.01)
            spent.append(run.energy_kwh)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=trial, args=(f"t{k}",)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(spent) == 2 and all(kwh > 1.1e-3 for kwh in spent)  # each read the process
    tag = price_tag(gp.Ledger(db).runs(study="s"))
    assert tag.total.energy_kwh < 1.8e-3  # the ledger's read: each stretch once


# ----------------------------------------------------------- the timeline of threads' runs
def test_the_timeline_of_top_level_runs_in_threads_ends_at_the_price_tags_total(
    tmp_path: Path,
) -> None:
    """Two top-level trials in threads of one process (Optuna n_jobs=2, no sweep run), each
    reading the process's 1 kWh over the same 100 s: the price tag counts 1 kWh; the timeline
    drew 2 kWh at 72 kW (each run's reading stacked), it draws 1 kWh at 36 kW, with a note."""
    from greenprint.report import build_report

    db = tmp_path / "l.db"
    with gp.Ledger(db) as ledger:
        for k in range(2):
            run = _run(f"t{k}", 1.0, 1000.0, 1100.0)
            ledger.start_run(dataclasses.replace(run, study="s"))
    report = build_report(db, "s", metric="acc")
    assert report.price_tag.total.energy_kwh == pytest.approx(1.0, rel=1e-12)
    timeline = report.figure("timeline")
    assert timeline is not None
    power, energy = timeline.panels[0], timeline.panels[1]
    assert energy.y_unit == "kWh" and energy.series[0].y[-1] == pytest.approx(1.0, rel=1e-9)
    total = next(s for s in power.series if s.role == "total")
    assert max(v for v in total.y if v == v) == pytest.approx(36_000.0, rel=1e-9)
    assert any("in threads of one process" in n for n in timeline.notes)


# ------------------------------------------------- a halving candidate's run time, sklearn
def test_a_sequential_halving_searchs_trials_take_no_more_run_time_than_the_search(
    tmp_path: Path,
) -> None:
    """A halving candidate's trial spanned its first iteration to its last, the other
    candidates' iterations in between: a sequential search of 8 candidates (0.38 s) read 0.61
    run-seconds in the price tag. A trial's time is its rows' (each its folds' span), so the
    trials, which ran one after another, add up to no more than the search's own time."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV
    from sklearn.svm import SVC

    from greenprint.integrations.sklearn import track_search

    X, y = load_digits(return_X_y=True)
    db = tmp_path / "g.db"
    grid = {"C": [0.01, 0.1, 1, 10], "gamma": [1e-3, 1e-2]}
    search = HalvingGridSearchCV(SVC(), grid, cv=3, factor=2, random_state=0)
    sweep = track_search(search, X[:240], y[:240], ledger=db, study="h", name="h",
                         sample_interval_s=0.05, flush_interval_s=0.1)  # fmt: skip
    runs = gp.Ledger(db).runs(study="h")
    trials = [r for r in runs if r.role == "trial"]
    assert len(trials) == 8
    assert sum(t.duration_s for t in trials) <= sweep.duration_s
    tag = price_tag(runs, metric="score")
    assert tag.total.duration_s == pytest.approx(sweep.duration_s, rel=1e-9)
    by_id = {r.id: r for r in runs}
    for trial in trials:  # its rows: itself and its earlier iterations (its parts)
        rows = [r for r in runs if r.parent_id == trial.id and "fold" not in r.name]
        own = [r for r in runs if r.parent_id == trial.id and "fold" in r.name]
        own_s = max(f.ended_at for f in own) - min(f.started_at for f in own)
        want = own_s + sum(r.duration_s for r in rows)
        assert trial.duration_s == pytest.approx(want, rel=1e-9), by_id[trial.id].name


def test_runs_of_one_process_name_it_the_same_way_whatever_the_boot_time_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psutil derives a process's start time from the boot time, which Linux recomputes from
    the clock on each read: a step of the clock between two threads' run starts gave the same
    process two names, and their overlap was counted twice again. The key is read once per
    process (a forked child, another pid, reads its own)."""
    import os

    import psutil

    from greenprint import _run_provenance, tracking

    # the cached key is a global of the module _process_key lives in (re-exported by tracking)
    monkeypatch.setattr(_run_provenance, "_own_process_key", None)
    first = tracking._process_key(os.getpid())
    assert first is not None and first.startswith(f"pid {os.getpid()} started ")
    real = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 1.0)
    assert tracking._process_key(os.getpid()) == first
    with gp.track("a", ledger=False) as a, gp.track("b", ledger=False) as b:
        pass
    assert a.provenance["process"] == b.provenance["process"] == first
    parent = psutil.Process(os.getppid())  # another process: read as it is now
    assert tracking._process_key(parent.pid) == f"pid {parent.pid} started {real(parent) + 1:.2f}"
