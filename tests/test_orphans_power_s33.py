"""Workers that ran on after their main process ended, drawing more power then (session 33).

A ``multiprocessing`` worker's run is inside its main run's measurement (the main run reads
its process tree) until the main run ends; what the worker measured after that end is counted
once beside it (:func:`greenprint._forest_beyond.beyond_sums`). That part was its energy
prorated by time over its span: exact at constant power only. Workers get more of the machine
once their main process is gone (1.4 to 2.3 times the power on a 2-CPU machine), so the
proration put too much of their energy before the end, inside the main run's reading, and the
study's total fell 1 to 9 % below what its runs measured themselves (the workers' own sum).
Now the worker's power samples split its energy and CO2-eq at that end, exactly; the time
split is left for a run that recorded no samples, and the note says which was used.

Proved two ways: runs built by hand whose every joule is known (power doubling at the main
run's end, one sample straddling it), read by the price tag, the study budget's read of the
ledger (both stores' queries), ``greenprint report --format json`` and ``greenprint run
--study-budget-kwh``; and real ``gp.track`` runs in real processes whose workers switch from a
tenth of a CPU to a whole one when their main process dies, read against their own samples.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _hand_built import T0, measured_run
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint._forest_beyond import split_by_samples
from greenprint.analysis import price_tag
from greenprint.analysis._common import RunForest
from greenprint.ledger._study_cost import read_study_cost, study_cost, study_cost_of_records

J = 1 / 3.6e6  # kWh per joule
#: g CO2-eq/kWh over the hand-built samples: 400 before the main run's end, 200 after (the
#: grid's next hour), 300 for the sample that straddles it
BEFORE_G, AFTER_G, STRADDLE_G = 400.0, 200.0, 300.0
END = 10  # the main run's end, s from T0


def _samples(*spans: tuple[int, int, float, float]) -> list[gp.PowerSample]:
    """Power samples ``(t0, t1, watts, g/kWh)``, times in s from :data:`T0`."""
    return [
        gp.PowerSample(t0=T0 + a, t1=T0 + b, cpu_w=w, intensity_g_per_kwh=g) for a, b, w, g in spans
    ]


# worker-0, [2, 16]: 1 s samples, 2 W before the main run's end, 4 W after: 16 J + 24 J
W0 = _samples(
    *((t, t + 1, 2.0, BEFORE_G) for t in range(2, END)),
    *((t, t + 1, 4.0, AFTER_G) for t in range(END, 16)),
)
# worker-1, [3, 16]: 2 s samples, one straddling the end at 3 W: 12 + 3 J before, 3 + 20 after
W1 = _samples(
    (3, 5, 2.0, BEFORE_G), (5, 7, 2.0, BEFORE_G), (7, 9, 2.0, BEFORE_G),
    (9, 11, 3.0, STRADDLE_G),
    (11, 13, 4.0, AFTER_G), (13, 15, 4.0, AFTER_G), (15, 16, 4.0, AFTER_G),
)  # fmt: skip
# the main process drew 3 W over [0, 10]; its run read its tree: 30 + 16 + 15 = 61 J
MAIN_J = 30 + 16 + 15
MAIN = _samples(*((t, t + 1, 6.1, BEFORE_G) for t in range(0, END)))
# by hand: the main run's reading, and what each worker drew after its end, once
TRUTH_J = MAIN_J + 24 + (3 + 20)  # 108 J
TRUTH_KG = (MAIN_J * BEFORE_G + 24 * AFTER_G + 3 * STRADDLE_G + 20 * AFTER_G) * J / 1000
# the time split (before): each worker's energy prorated over its span, 6 of its 14 or 13 s
BY_TIME_J = MAIN_J + 40 * 6 / 14 + 38 * 6 / 13  # 95.68 J: 11 % short


def _hand_built(ledger: gp.Ledger, *, samples: bool = True, study: str = "ddp") -> None:
    """The study: the main run (SIGTERM at 10 s) and its two workers, which ran on to 16 s."""
    kg = {
        "main": MAIN_J * BEFORE_G * J / 1000,
        "worker-0": (16 * BEFORE_G + 24 * AFTER_G) * J / 1000,
        "worker-1": (12 * BEFORE_G + 6 * STRADDLE_G + 20 * AFTER_G) * J / 1000,
    }
    for name, parent, spent, span, pid, drawn in (
        ("main", None, MAIN_J * J, (0, END), 100, MAIN),
        ("worker-0", "main", 40 * J, (2, 16), 101, W0),
        ("worker-1", "main", 38 * J, (3, 16), 102, W1),
    ):
        fields = {"status": "interrupted"} if parent is None else {"contained": True}
        record = measured_run(name, parent, spent, span, pid=pid, study=study, **fields)
        record = dataclasses.replace(record, emissions_kg=kg[name])
        if parent is not None:
            record = dataclasses.replace(record, role="part")
        ledger.start_run(record)
        if samples:
            ledger.flush(record.id, samples=drawn)


def test_the_samples_split_a_worker_at_its_parents_end_as_it_drew(tmp_path):
    """The price tag is the hand-counted joules: the main run's reading and what each worker
    drew after its end, at twice the power; never below what the runs measured themselves."""
    with gp.Ledger(tmp_path / "g.db") as led:
        _hand_built(led)
        runs = led.runs(study="ddp")
        tag = price_tag(runs, samples_of=led.samples)
        spent = study_cost(led, "ddp")
        by_records = study_cost_of_records(runs, samples_of=led.samples)
        by_time = price_tag(runs)
    total = tag.total
    assert total.energy_kwh == pytest.approx(TRUTH_J * J, rel=1e-12, abs=0)
    assert total.emissions_kg == pytest.approx(TRUTH_KG, rel=1e-12, abs=0)
    main = next(r for r in runs if r.name == "main")
    workers = math.fsum(r.energy_kwh for r in runs if r.name != "main")
    assert total.energy_kwh >= main.energy_kwh and total.energy_kwh >= workers
    # the breakdowns: the workers are parts of the interrupted main run, their cost its
    assert list(tag.by_status) == ["interrupted"] and list(tag.by_role) == ["trial"]
    assert tag.by_status["interrupted"].energy_kwh == total.energy_kwh
    (note,) = [n for n in tag.notes if "ran on after" in n]
    assert "2 runs ('worker-0', 'worker-1')" in note
    assert "split at that end by their power samples" in note
    # the study budget's read of the ledger, and the same rule over records: the same total
    assert spent.energy_kwh == pytest.approx(total.energy_kwh, rel=1e-12, abs=0)
    assert spent.emissions_kg == pytest.approx(total.emissions_kg, rel=1e-12, abs=0)
    assert by_records == spent
    # given no samples, the proration by time (as before), and the note says how to split
    assert by_time.total.energy_kwh == pytest.approx(BY_TIME_J * J, rel=1e-12)
    (note,) = [n for n in by_time.notes if "ran on after" in n]
    assert "prorated over their spans" in note and "samples_of=ledger.samples" in note


def test_the_sqlalchemy_read_splits_by_the_samples_too(tmp_path):
    """PostgreSQL's read (SQLAlchemy Core, here on a SQLite file) gives the same total."""
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._target import resolve_target

    path = tmp_path / "g.db"
    with gp.Ledger(path) as led:
        _hand_built(led)
        native = study_cost(led, "ddp")
    store = SQLStore(resolve_target(str(path)), create=False)
    try:
        assert read_study_cost(store, "ddp", []) == native
    finally:
        store.close()
    assert native.energy_kwh == pytest.approx(TRUTH_J * J, rel=1e-12, abs=0)


def test_runs_with_no_samples_are_prorated_by_time_and_the_note_says_so(tmp_path):
    """A ledger whose runs recorded no samples (written by hand, merged without them)."""
    with gp.Ledger(tmp_path / "g.db") as led:
        _hand_built(led, samples=False)
        runs = led.runs(study="ddp")
        tag = price_tag(runs, samples_of=led.samples)
        spent = study_cost(led, "ddp")
    assert tag.total.energy_kwh == pytest.approx(BY_TIME_J * J, rel=1e-12)
    assert spent.energy_kwh == pytest.approx(tag.total.energy_kwh, rel=1e-12)
    (note,) = [n for n in tag.notes if "ran on after" in n]
    assert "prorated over their spans: they recorded no power samples" in note


def test_one_worker_with_samples_and_one_without(tmp_path):
    with gp.Ledger(tmp_path / "g.db") as led:
        _hand_built(led)
        runs = led.runs(study="ddp")
        w1 = next(r.id for r in runs if r.name == "worker-1")

        def samples_of(run_id: str) -> list[gp.PowerSample]:
            return [] if run_id == w1 else led.samples(run_id)

        tag = price_tag(runs, samples_of=samples_of)
    assert tag.total.energy_kwh == pytest.approx((MAIN_J + 24 + 38 * 6 / 13) * J, rel=1e-12)
    (note,) = [n for n in tag.notes if "ran on after" in n]
    assert "by the power samples of 1, prorated over their spans for the 1 that" in note


def test_samples_are_read_only_for_runs_that_ran_on(tmp_path):
    """A study with no run past its parent's end reads no samples (100,000 runs stay fast)."""
    runs = [
        measured_run("main", None, 61 * J, (0, 10), pid=100),
        measured_run("fold", "main", 16 * J, (2, 10), pid=101, contained=True),
    ]

    def samples_of(run_id: str) -> list[gp.PowerSample]:
        raise AssertionError(f"samples of {run_id} read")

    assert price_tag(runs, samples_of=samples_of).total.energy_kwh == pytest.approx(61 * J)
    asked: list[str] = []
    with gp.Ledger(tmp_path / "g.db") as led:
        _hand_built(led)
        price_tag(led.runs(study="ddp"), samples_of=lambda i: asked.append(i) or led.samples(i))
    assert sorted(asked) == ["id-worker-0", "id-worker-1"]


def test_a_sample_straddling_the_end_is_split_by_time_within_it():
    shares = split_by_samples(W1, T0 + END)
    assert shares is not None
    (early, late), (early_g, late_g) = shares
    assert late == pytest.approx(23 / 38, rel=1e-15) and early + late == pytest.approx(1.0)
    weighted = 12 * BEFORE_G + 6 * STRADDLE_G + 20 * AFTER_G
    assert late_g == pytest.approx((3 * STRADDLE_G + 20 * AFTER_G) / weighted, rel=1e-15)
    assert split_by_samples([], T0) is None  # nothing to split by: the time split stands
    assert split_by_samples(_samples((0, 1, 0.0, BEFORE_G)), T0) is None
    # a sample with no intensity: CO2-eq split as the energy is
    (energy, co2) = split_by_samples(_samples((0, 2, 1.0, BEFORE_G), (2, 4, 3.0, math.nan)), T0 + 2)
    assert energy == co2 == (0.25, 0.75)


def test_the_report_and_a_study_budget_read_the_samples(tmp_path_factory):
    """``greenprint report --format json`` and ``greenprint run --study-budget-kwh`` as a new
    user runs them: a budget of 100 J, above the time split's 95.7 J and below the study's
    108 J, stops the next command at once."""
    home = empty_home(tmp_path_factory, "s33-orphans-power")
    with gp.Ledger(home / "greenprint.db") as led:
        _hand_built(led)
    done = run_in(home, GREENPRINT, "report", "--study", "ddp", "--format", "json", "--out", "rep")
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] == pytest.approx(TRUTH_J * J, rel=1e-12, abs=0)
    assert total["emissions_kg"] == pytest.approx(TRUTH_KG, rel=1e-12, abs=0)
    assert any(
        "split at that end by their power samples" in n for n in report["price_tag"]["notes"]
    )
    started = time.monotonic()
    done = run_in(
        home, GREENPRINT, "run", "--study", "ddp", "--study-budget-kwh", repr(100 * J), "--",
        sys.executable, "-c", "import time; time.sleep(30)",
    )  # fmt: skip
    assert done.returncode == 143, done.stderr  # SIGTERM: the study was over already
    assert any("over budget" in x and "study budget_kwh" in x for x in done.stderr.splitlines())
    assert time.monotonic() - started < 20


# ------------------------------------------------------------ real runs in real processes
_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import multiprocessing as mp
    from pathlib import Path
    import greenprint as gp

    FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

    def light(parent):  # a tenth of a CPU while the main process lives
        while os.getppid() == parent:
            busy = time.process_time() + 0.001
            while time.process_time() < busy:
                pass
            time.sleep(0.009)

    def burn(seconds):  # a whole CPU after
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def worker(k, ledger, parent):
        with gp.track(f"worker-{k}", study="orphans", ledger=ledger, role="part", **FAST):
            Path(f"started-{k}").touch()
            light(parent)
            burn(1.5)

    if __name__ == "__main__":
        ledger = sys.argv[1]
        with gp.track("main", study="orphans", ledger=ledger, **FAST):
            workers = [mp.get_context("fork").Process(target=worker,
                                                      args=(k, ledger, os.getpid()))
                       for k in range(2)]
            for w in workers:
                w.start()
            burn(60)
    """
)


def kill_the_main_process(home: Path, ledger: str | Path) -> None:
    """Run :data:`_SCRIPT` in ``home`` on ``ledger``, SIGTERM its main process once both
    workers started (the main process only, as ``kill PID`` does), and wait until the main
    run and both workers' runs have ended in the ledger."""
    (home / "script.py").write_text(_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "script.py", str(ledger)], cwd=home, env=clean_env(), text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not all((home / f"started-{k}").exists() for k in range(2)):
            assert proc.poll() is None and time.monotonic() < deadline, "workers never started"
            time.sleep(0.02)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 60
    with gp.Ledger(ledger) as led:
        while len([r for r in led.runs(study="orphans") if r.ended_at is not None]) < 3:
            assert time.monotonic() < deadline, "the workers' runs never ended"
            time.sleep(0.05)


def _integrate(samples: list[gp.PowerSample], at: float) -> tuple[float, float]:
    """Joules a run's samples hold before and after ``at`` (a straddling one split by time)."""
    before = after = 0.0
    for s in samples:
        joules = s.power_w * (s.t1 - s.t0)
        cut = min(max(at, s.t0), s.t1)
        before += joules * (cut - s.t0) / (s.t1 - s.t0)
        after += joules * (s.t1 - cut) / (s.t1 - s.t0)
    return before, after


def test_real_workers_that_draw_more_once_their_main_process_died(tmp_path):
    """SIGTERM to the main process, which burns a CPU; its fork workers, at a tenth of a CPU
    each, notice (their parent changes) and burn a CPU each from then on. The price tag is the
    main run's reading (or the workers' before its end, if more) plus what their samples hold
    after it, and at least every run's own."""
    ledger = str(tmp_path / "g.db")
    kill_the_main_process(tmp_path, ledger)
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="orphans")
        samples = {r.id: led.samples(r.id) for r in runs}
        tag = price_tag(runs, samples_of=led.samples)
        spent = study_cost(led, "orphans")
    (main,) = [r for r in runs if r.name == "main"]
    workers = [r for r in runs if r.name != "main"]
    assert main.status == "interrupted" and len(workers) == 2
    assert all(w.contained and w.parent_id == main.id and w.status == "finished" for w in workers)
    assert all(w.ended_at > main.ended_at + 1.0 for w in workers)  # they ran on
    split = [_integrate(samples[w.id], main.ended_at) for w in workers]
    for w, (before, after) in zip(workers, split, strict=True):
        assert (before + after) * J == pytest.approx(w.energy_kwh, rel=1e-9)  # samples: all
        # more power after the end than before: the time split was not exact
        assert after / (w.ended_at - main.ended_at) > before / (main.ended_at - w.started_at)
    inside = max(main.energy_kwh, J * math.fsum(b for b, _ in split))
    expected = inside + J * math.fsum(a for _, a in split)
    assert tag.total.energy_kwh == pytest.approx(expected, rel=1e-12)
    assert spent.energy_kwh == pytest.approx(tag.total.energy_kwh, rel=1e-12)
    own = math.fsum(w.energy_kwh for w in workers)
    assert tag.total.energy_kwh >= max(main.energy_kwh, own) * (1 - 1e-12)
    assert tag.total.energy_kwh > price_tag(runs).total.energy_kwh  # the time split: short
    old_rule = sum(RunForest.build(runs).shared_sums("energy_kwh").exclusive)
    assert tag.total.energy_kwh > old_rule * (1 + 1e-6)
