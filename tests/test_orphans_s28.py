"""Worker runs that ran on after their parent ended: their energy after its end is counted once.

A ``multiprocessing`` worker with its own ``gp.track`` run is a child of the main process's run,
inside its measurement (``contained``: the main run reads its process tree). When the main
process gets SIGTERM (``kill PID``, a scheduler preempting the head) or crashes while the
workers run on, the main run ends at T and the workers' runs go on to T+Δ. The price tag (and
a study budget's read of the ledger, its SQL) counted the workers as inside the main run
(``max(own, children's sum)``), so what they spent after T was counted nowhere. Now it adds:
what the workers measured after T, counted once: their energy split at T by their power
samples (session 33; prorated over their spans, exact at constant power only, for a run with
none) (:func:`greenprint._forest_beyond.beyond_sums`).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint.analysis import price_tag
from greenprint.analysis._common import RunForest
from greenprint.ledger._study_cost import study_cost

sys.path.insert(0, str(Path(__file__).parent))
from _clean_env import clean_env

_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp, sys, time
    from pathlib import Path
    import greenprint as gp

    FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

    def burn(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def worker(k, ledger):
        with gp.track(f"worker-{k}", study="orphans", ledger=ledger, role="part", **FAST):
            Path(f"started-{k}").touch()
            burn(2.0)

    if __name__ == "__main__":
        ledger = sys.argv[1]
        with gp.track("main", study="orphans", ledger=ledger, **FAST):
            workers = [mp.get_context("fork").Process(target=worker, args=(k, ledger))
                       for k in range(2)]
            for w in workers:
                w.start()
            burn(60)
    """
)


def test_workers_left_running_after_sigterm_are_counted(tmp_path):
    """The user's case: SIGTERM to the main process only, its fork workers' runs go on.

    The main process and its workers burn a CPU each. On a 2-CPU machine the workers draw up
    to 2.3 times as much after the main process's end as before (the CPUs are theirs then):
    prorated by time, too much of their energy fell before the end, where the main run's
    reading of its tree caps it, and the total fell short of the workers' own readings (6 of
    20 runs on session 32's machine, by 1 to 9 %; session 32 made the workers draw a tenth of
    a CPU to keep the premise). Split at the end by their power samples, what they drew after
    it is what they measured: the total is at least every run's own reading, under any load.
    """
    (tmp_path / "script.py").write_text(_SCRIPT)
    ledger = str(tmp_path / "g.db")
    proc = subprocess.Popen(
        [sys.executable, "script.py", ledger], cwd=tmp_path, env=clean_env(), text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"started-{k}").exists() for k in range(2)):
            assert proc.poll() is None and time.monotonic() < deadline, "workers never started"
            time.sleep(0.02)
        time.sleep(0.6)
        os.kill(proc.pid, signal.SIGTERM)  # the main process only, as `kill PID` does
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 60  # the workers, orphaned, run on and end their runs
    with gp.Ledger(ledger) as led:
        while len([r for r in led.runs(study="orphans") if r.ended_at is not None]) < 3:
            assert time.monotonic() < deadline, "the workers' runs never ended"
            time.sleep(0.05)
        runs = led.runs(study="orphans")
        spent = study_cost(led, "orphans")
        samples = {r.id: led.samples(r.id) for r in runs}
        tag = price_tag(runs, samples_of=led.samples)
    (main,) = [r for r in runs if r.name == "main"]
    workers = [r for r in runs if r.name != "main"]
    assert main.status == "interrupted" and main.ended_at is not None
    assert len(workers) == 2
    assert all(w.contained and w.parent_id == main.id and w.status == "finished" for w in workers)
    assert all(w.ended_at > main.ended_at + 0.5 for w in workers)  # they ran on
    # what was measured, once: the main run's tree until its end (or the workers' readings
    # before it, if more), each worker's samples after it
    split = [_split_at(samples[w.id], main.ended_at) for w in workers]
    inside = max(main.energy_kwh, math.fsum(b for b, _ in split))
    assert tag.total.energy_kwh == pytest.approx(inside + math.fsum(a for _, a in split), rel=1e-9)
    own = math.fsum(w.energy_kwh for w in workers)
    assert tag.total.energy_kwh >= max(main.energy_kwh, own) * (1 - 1e-12)
    assert math.fsum(c.energy_kwh for c in tag.by_status.values()) == pytest.approx(
        tag.total.energy_kwh, rel=1e-9
    )
    assert any("ran on after the run they are part of ended" in n for n in tag.notes)
    assert spent.energy_kwh == pytest.approx(tag.total.energy_kwh, rel=1e-9)  # the SQL read
    # the rule before: the workers' energy after the main run's end was counted nowhere
    forest = RunForest.build(runs)
    before = sum(forest.shared_sums("energy_kwh").exclusive)
    assert tag.total.energy_kwh > before * (1 + 1e-6)


def _split_at(samples: list[gp.PowerSample], at: float) -> tuple[float, float]:
    """kWh a run's samples hold before and after ``at`` (one straddling it split by time)."""
    before = after = 0.0
    for s in samples:
        kwh = s.energy_kwh
        cut = min(max(at, s.t0), s.t1)
        before += kwh * (cut - s.t0) / (s.t1 - s.t0)
        after += kwh * (s.t1 - cut) / (s.t1 - s.t0)
    return before, after


# ------------------------------------------------------------------ random trees, brute force
T0 = 1_600_000_000.0  # long ago: a run that recorded no end and stopped flushing reads lost
UNIT_S = 1.0  # one step of the spans' grid, s


@st.composite
def worlds(draw: st.DrawFn) -> list[dict]:
    """Runs over processes of constant power: each run reads its own process and, inside it,
    its contained children's processes (its process tree on its host) over its span.

    A run is a root, a contained child (same host, started while its parent ran, its process
    in its parent's tree), a remote child (another host: outside every measurement of its
    parent's; ``contained`` false as a child process told its parent records it, or none
    recorded: ``gp.track(parent=id)`` on that host, also by a node of a distributed job: its
    parent's job when its parent is a rank, else the job of its parent's ranks), or a rank of
    a distributed training its
    parent's process spawned (``torch.multiprocessing.spawn``: contained, one job per parent;
    the price tag links a job's ranks under their rank 0 when the parent holds other runs
    too, outside rank 0's measurement but inside its parent's). A run's process draws power
    only over its own span. Any run may run on past the runs around it unless it has
    contained children or is a rank (its energy is then not at constant power over its span,
    which the record cannot tell; a rank keeps its job's rules: only leaves and runs whose
    children are all remote may run on, as a worker does). Some parents recorded no end and
    stopped flushing (killed with SIGKILL: lost) at their span's end.
    """
    n = draw(st.integers(1, 8))
    links = []
    for k in range(n):
        kind = (
            draw(
                st.sampled_from(
                    ["root", "contained", "contained", "remote", "byid", "byid-node", "rank"]
                )
            )
            if k
            else "root"
        )
        parent = None if kind == "root" else draw(st.integers(0, k - 1))
        links.append((kind if parent is not None else "root", parent))
    has_contained = [False] * n
    for kind, parent in links:
        if kind in ("contained", "rank") and parent is not None:
            has_contained[parent] = True
    runs: list[dict] = []
    for k, (kind, parent) in enumerate(links):
        if parent is None:
            start = draw(st.integers(1, 4))
            host = f"host-{k}"
        else:
            above = runs[parent]
            start = draw(st.integers(above["start"], above["end"] - 1))
            host = above["host"] if kind in ("contained", "rank") else f"host-{k}"
        if kind == "rank" or (has_contained[k] and kind == "contained"):  # ends inside what
            end = draw(st.integers(start + 1, _reach(runs, parent)))  # measures it
        else:
            end = start + draw(st.integers(1, 8))
        runs.append(
            {
                "id": f"r{k}",
                "parent": parent,
                "kind": kind,
                "host": host,
                "start": start,
                "end": end,
                "power": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])) * 1e-3,
                "lost": draw(st.booleans()) and draw(st.booleans()),
            }
        )
    return runs


def _reach(runs: list[dict], pos: int | None) -> int:
    """The latest end of the measurements a contained child of ``pos`` is inside."""
    reach = 0
    while pos is not None:
        reach = max(reach, runs[pos]["end"])
        pos = None if runs[pos]["kind"] not in ("contained", "rank") else runs[pos]["parent"]
    return reach


def _contained_below(runs: list[dict], k: int) -> list[int]:
    """``k`` and every run inside its measurement (through contained links only)."""
    found, todo = [k], [k]
    while todo:
        at = todo.pop()
        for j, r in enumerate(runs):
            if r["parent"] == at and r["kind"] in ("contained", "rank"):
                found.append(j)
                todo.append(j)
    return found


def _records(runs: list[dict], study: str) -> list[gp.RunRecord]:
    """Each run's record: what its meter read (its process tree over its span)."""
    records = []
    for k, run in enumerate(runs):
        energy = 0.0
        for j in _contained_below(runs, k):
            other = runs[j]
            overlap = min(run["end"], other["end"]) - max(run["start"], other["start"])
            energy += other["power"] * max(overlap, 0)
        start, end = T0 + run["start"] * UNIT_S, T0 + run["end"] * UNIT_S
        lost = run["lost"] and any(r["parent"] == k for r in runs)
        kind, parent = run["kind"], run["parent"]
        rank = kind == "rank"  # of its parent's job, numbered in order
        local = sum(r["kind"] == "rank" and r["parent"] == parent for r in runs[:k])
        job = f"{study}-job{parent}" if rank else None
        if kind == "byid-node":  # another node of its parent's job (session 30: read nested)
            above = runs[parent]
            job = f"{study}-job{above['parent'] if above['kind'] == 'rank' else parent}"
        records.append(
            gp.RunRecord(
                id=f"{study}-{run['id']}",
                name=run["id"],
                study=study,
                parent_id=None if run["parent"] is None else f"{study}-{runs[run['parent']]['id']}",
                status="running" if lost else "finished",
                started_at=start,
                ended_at=None if lost else end,
                heartbeat_at=end,
                flush_interval_s=0.1,
                duration_s=end - start,
                host=run["host"],
                scope="process",
                energy_kwh=energy,
                energy_cpu_kwh=energy,  # its meter's component: the provenance's measured
                emissions_kg=energy * 0.4,
                contained=None if kind in ("root", "byid", "byid-node") else kind != "remote",
                job_id=job,
                node_rank=0 if rank else 1 if job else None,
                local_rank=local if rank else 0 if job else None,
                provenance={"cpu": "rapl", "process": f"pid {k + 100} started 1.00"},
            )
        )
    return records


_studies = iter(range(10**9))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=worlds())
def test_every_run_measured_once_whatever_ran_on(tmp_path, runs):
    """The price tag and the ledger's read agree, and count each process's energy once."""
    study = f"w{next(_studies)}"
    truth = math.fsum(r["power"] * (r["end"] - r["start"]) for r in runs)
    path = tmp_path / "w.db"
    with gp.Ledger(path) as led:
        for record in _records(runs, study):
            led.start_run(record)
        stored = led.runs(study=study)
        spent = study_cost(led, study)
    tag = price_tag(stored)
    assert tag.total.energy_kwh == pytest.approx(truth, rel=1e-9, abs=1e-15)
    assert tag.total.emissions_kg == pytest.approx(truth * 0.4, rel=1e-9, abs=1e-15)
    assert spent.energy_kwh == pytest.approx(tag.total.energy_kwh, rel=1e-9, abs=1e-15)
    assert spent.emissions_kg == pytest.approx(tag.total.emissions_kg, rel=1e-9, abs=1e-15)
    by_status = math.fsum(c.energy_kwh for c in tag.by_status.values())
    assert by_status == pytest.approx(tag.total.energy_kwh, rel=1e-9, abs=1e-15)
    # the breakdown: each process's energy once, in the role of the run its cost belongs to
    # (where no run inside its parent ran on into a reading further up: what it spent after
    # its parent's end is in its grandparent's figure, by the rule)
    by_role = math.fsum(c.energy_kwh for c in tag.by_role.values())
    assert by_role == pytest.approx(tag.total.energy_kwh, rel=1e-9, abs=1e-15)
    if all(
        r["end"] <= runs[r["parent"]]["end"]
        or _reach(runs, r["parent"]) == runs[r["parent"]]["end"]
        for r in runs
        if r["kind"] in ("contained", "rank")
    ):
        roles = tag.roles
        owner = {run.name: roles.roles[roles.owners[p]] for p, run in enumerate(stored)}
        for role, cost in tag.by_role.items():
            spent = math.fsum(
                r["power"] * (r["end"] - r["start"]) for r in runs if owner[r["id"]] == role
            )
            assert cost.energy_kwh == pytest.approx(spent, rel=1e-9, abs=1e-15), role
    # where the energy came from: every counted kWh once (each meter's component)
    source = tag.provenance
    assert source.measured_kwh + source.estimated_kwh + source.unknown_kwh == pytest.approx(
        tag.total.energy_kwh, rel=1e-9, abs=1e-15
    )


def test_the_sqlalchemy_read_counts_a_worker_that_ran_on(tmp_path):
    """The PostgreSQL read (SQLAlchemy Core, here on SQLite) takes the rule for such a study."""
    from greenprint.ledger._sql import SQLStore
    from greenprint.ledger._study_cost import read_study_cost
    from greenprint.ledger._target import resolve_target

    world = [
        {"id": "main", "parent": None, "kind": "root", "host": "h", "start": 1, "end": 5,
         "power": 2e-3, "lost": False},
        {"id": "w", "parent": 0, "kind": "contained", "host": "h", "start": 2, "end": 9,
         "power": 1e-3, "lost": False},
    ]  # fmt: skip
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        for record in _records(world, "s"):
            led.start_run(record)
        native = study_cost(led, "s")
    store = SQLStore(resolve_target(str(path)), create=False)
    try:
        assert read_study_cost(store, "s", []) == native
    finally:
        store.close()
    # main 4 steps at 2e-3, the worker 7 at 1e-3: all of it measured once
    assert native.energy_kwh == pytest.approx(4 * 2e-3 + 7 * 1e-3, rel=1e-12)
