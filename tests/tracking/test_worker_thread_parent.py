"""A run started in a worker thread while the main thread's run is active is that run's child.

Threads do not inherit context variables, so before this rule a trial run in a
``ThreadPoolExecutor`` under ``with gp.track("search", role="sweep")`` was recorded top-level,
while the search measured the whole process (the threads included): the price tag, which sums
root runs, counted the trials twice. Now such a run takes the main thread's innermost active run
that measures this process as its parent (a contained, in-process child, inheriting its study
and ledger). Never a sibling worker thread's run; ``parent=`` and an enclosing run of the
thread's own context keep precedence. No mocks: real runs, real threads, a real ledger, and the
user's script run as a new user runs it (empty directory, clean environment).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env, configured_above
from greenprint import _lineage

GREENPRINT = str(BIN / "greenprint")

#: The search a user writes: trials in a thread pool, each with two folds; one trial in the main
#: thread (an in-context child, to compare with); the search's own work in the main thread is far
#: longer than the trials', so the trials' energies sum below the search's.
SCRIPT = """
import time
from concurrent.futures import ThreadPoolExecutor
import greenprint as gp


def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def train(p):
    with gp.track(f"trial-{p}", role="trial", params={"p": p}) as trial:
        for f in range(2):
            with gp.track(f"trial-{p}-fold{f}") as fold:
                busy(0.01)
                fold.log(score=p / 10 + f / 100)
    return trial.id


with gp.track("search", study="grid", ledger="runs.db", role="sweep"):
    busy(1.0)  # the search's own work: loading data, the sampler...
    train(9)  # one trial in the main thread: a child in the search's own context
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(train, range(6)))
"""


def _fast(**options: Any) -> dict[str, Any]:
    return {"ledger": False, "sample_interval_s": 0.01, "flush_interval_s": 0.01, **options}


def _in_thread(target: Any) -> Any:
    """``target()`` in a new (worker) thread; its result, or its exception raised here."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = target()
        except BaseException as e:  # raised again on the test's thread
            box["error"] = e

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(30)
    if "error" in box:
        raise box["error"]
    return box["value"]


# ------------------------------------------------------------------ the user's script, a ledger
@pytest.fixture(scope="module")
def grid_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, gp.RunRecord], dict]:
    """The script run in an empty directory with a clean environment; its runs and JSON report."""
    home = tmp_path_factory.mktemp("thread-trials")
    if configured_above(home):
        pytest.skip(f"greenprint configuration above the temporary dir: {configured_above(home)}")
    (home / "search.py").write_text(SCRIPT, encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=home, env=clean_env(), capture_output=True, text=True, timeout=300
        )

    done = run(sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    done = run(GREENPRINT, "report", "--ledger", "runs.db", "--study", "grid", "--format", "json",
               "--out", "rep", "--no-plots")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (home / "greenprint.db").exists()  # every run wrote to the search's ledger
    with gp.Ledger(home / "runs.db", create=False) as led:
        runs = {r.name: r for r in led.runs()}
    return runs, json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def test_thread_pool_trials_are_children_of_the_main_threads_search(grid_study):
    runs, _ = grid_study
    search = runs["search"]
    assert search.parent_id is None and search.study == "grid"
    assert len(runs) == 1 + 7 * 3
    for p in (*range(6), 9):
        trial = runs[f"trial-{p}"]
        assert trial.parent_id == search.id, p
        assert trial.study == "grid" and trial.status == "finished", p
        assert trial.contained is True, p  # inside the search's measurement: same process
        for f in range(2):  # the trial's own runs, in its thread: its children
            fold = runs[f"trial-{p}-fold{f}"]
            assert (fold.parent_id, fold.contained) == (trial.id, True), (p, f)


def test_a_worker_threads_trial_has_the_fields_of_an_in_context_child(grid_study):
    runs, _ = grid_study
    in_context = runs["trial-9"]  # started in the main thread, inside the search
    fields = ("contained", "job_id", "node_rank", "local_rank", "node_meter", "host", "scope")
    for p in range(6):
        trial = runs[f"trial-{p}"]
        assert {f: getattr(trial, f) for f in fields} == {
            f: getattr(in_context, f) for f in fields
        }, p


def test_the_price_tag_counts_the_search_once(grid_study):
    runs, report = grid_study
    search = runs["search"]
    trials = [runs[f"trial-{p}"] for p in (*range(6), 9)]
    trials_kwh = math.fsum(t.energy_kwh for t in trials)
    assert 0 < trials_kwh < search.energy_kwh  # the case the rule is about: children inside
    tag = report["price_tag"]
    total = tag["total"]
    # one root: the search, whose measurement holds its trials (before: search + trials again)
    assert total["energy_kwh"] == pytest.approx(search.energy_kwh, rel=1e-9)
    assert total["emissions_kg"] == pytest.approx(search.emissions_kg, rel=1e-9)
    assert total["runs"] == len(runs) == 22
    assert total["trials"] == 7
    assert tag["roles"]["counts"] == {"sweep": 1, "trial": 7, "part": 14}
    by_role = tag["by_role"]
    assert by_role["trial"]["trials"] == 7
    # the pool's trials ran in threads of one process, each reading all of it: each stretch
    # of their time counts once (tests/analysis/test_threads_share.py), so the trials count
    # less than they measured and the search keeps the rest
    counted = by_role["trial"]["energy_kwh"]
    assert 0 < counted < trials_kwh
    assert by_role["sweep"]["energy_kwh"] == pytest.approx(search.energy_kwh - counted, rel=1e-9)
    rows = {row["name"]: row for row in report["runs"]}
    assert sum(row["is_trial"] for row in rows.values()) == 7
    assert all(rows[f"trial-{p}"]["parent_id"] == search.id for p in range(6))


# ------------------------------------------------------------------------- the rule, in process
def test_a_worker_thread_run_takes_the_main_threads_innermost_run_and_its_study_and_ledger(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "runs.db"
    with gp.track("outer", study="s", ledger=ledger, sample_interval_s=0.01) as outer:
        with gp.track("inner", sample_interval_s=0.01) as inner:

            def trial() -> gp.Run:
                with gp.track("trial", sample_interval_s=0.01) as run:
                    with gp.track("fold", ledger=False) as fold:
                        pass
                assert fold.parent_id == run.id  # the thread's own context comes first
                return run

            run = _in_thread(trial)
    assert run.parent_id == inner.id != outer.id
    assert run.study == "s" and run.ledger is not None
    assert Path(run.ledger.url_unmasked.removeprefix("sqlite:///")) == ledger
    with gp.Ledger(ledger, create=False) as led:
        stored = {r.name: r for r in led.runs(study="s")}
    assert (stored["trial"].parent_id, stored["trial"].contained) == (inner.id, True)


def test_worker_threads_with_no_main_thread_run_stay_top_level() -> None:
    """Two worker threads' runs, active at once: neither is the other's child."""
    both = threading.Barrier(2)

    def trial(k: int) -> gp.Run:
        with gp.track(f"t{k}", **_fast()) as run:
            both.wait(10)  # the other thread's run is active now
            assert _lineage.main_thread_run() is None
            with gp.track(f"t{k}-late", **_fast()) as late:
                pass
            both.wait(10)
        assert late.parent_id == run.id
        return run

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(trial, range(2)))
    assert [r.parent_id for r in runs] == [None, None]
    assert all(r.record.contained is None for r in runs)


def test_a_main_thread_run_that_ended_is_no_parent() -> None:
    with gp.track("before", **_fast()):
        pass
    run = _in_thread(lambda: gp.track("after", **_fast()).start())
    try:
        assert run.parent_id is None and run.record.contained is None
    finally:
        run.stop()


def test_a_given_parent_wins_over_the_main_threads_run() -> None:
    with gp.track("outer", **_fast()) as outer:
        with gp.track("other", **_fast()) as other:
            pass
        given_run = _in_thread(lambda: gp.track("r", parent=other, **_fast()).start())
        given_id = _in_thread(lambda: gp.track("i", parent="0" * 32, **_fast()).start())
        given_run.stop()
        given_id.stop()
    assert given_run.parent_id == other.id != outer.id
    assert given_run.record.contained is True
    assert given_id.parent_id == "0" * 32 and given_id.record.contained is None


def test_a_main_thread_run_measuring_another_process_is_no_parent() -> None:
    """``pid=`` another process: the worker thread is outside its measurement."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with gp.track("outer", **_fast()) as outer:
            with gp.track("elsewhere", pid=sleeper.pid, **_fast()):
                run = _in_thread(lambda: gp.track("here", **_fast()).start())
                run.stop()
        assert run.parent_id == outer.id  # the innermost that measures this process
        with gp.track("elsewhere", pid=sleeper.pid, **_fast()):
            alone = _in_thread(lambda: gp.track("here", **_fast()).start())
            alone.stop()
        assert alone.parent_id is None
    finally:
        sleeper.kill()
        sleeper.wait(10)


def test_asyncio_tasks_of_the_main_thread_are_the_main_thread() -> None:
    """A task's run parents an executor thread's run; sibling tasks still do not nest."""

    async def main() -> tuple[gp.Run, gp.Run, gp.Run]:
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        async def task_a() -> tuple[gp.Run, gp.Run]:
            with gp.track("task-a", **_fast()) as run:
                worker = await loop.run_in_executor(
                    None, lambda: gp.track("in-executor", **_fast()).start()
                )
                # task b's run starts once the executor's has: a worker thread takes the main
                # thread's innermost run, which b's would be if it started first (a race that
                # failed under load)
                started.set()
                await asyncio.sleep(0.01)
                worker.stop()
                await asyncio.sleep(0.01)
            return run, worker

        async def task_b() -> gp.Run:
            await started.wait()
            with gp.track("task-b", **_fast()) as run:
                await asyncio.sleep(0)
            return run

        (a, worker), b = await asyncio.gather(task_a(), task_b())
        return a, worker, b

    a, worker, b = asyncio.run(main())
    assert worker.parent_id == a.id and worker.record.contained is True
    assert b.parent_id is None  # a sibling task's run is not a parent


def test_runs_ending_in_any_order_leave_no_main_thread_run_behind() -> None:
    first = gp.track("first", **_fast()).start()
    second = gp.track("second", **_fast()).start()
    first.stop()  # out of order: second is still the main thread's innermost run
    assert _in_thread(_lineage.main_thread_run) is second
    second.stop()
    assert _in_thread(_lineage.main_thread_run) is None
    stopped_elsewhere = gp.track("third", **_fast()).start()
    _in_thread(stopped_elsewhere.stop)  # stopped from another thread
    assert _in_thread(_lineage.main_thread_run) is None
    # nor in the main thread's own context: the next run there is not its child (it was, and
    # every later run of the process nested in the ended run)
    assert _lineage.innermost() is None
    with gp.track("after", **_fast()) as after:
        assert after.parent_id is None
        inner = gp.track("inner", **_fast()).start()
        _in_thread(inner.stop)
        assert _lineage.innermost() is after  # the ended inner run skipped, its parent still active
    assert _lineage.innermost() is None


# ---------------------------------------------------------------------------------------- fork
def _in_forked_child(check: Any) -> Any:
    """``check()`` in a forked child of the calling thread; its JSON-able result (or error)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            os.close(read_end)
            try:
                out: Any = {"value": check()}
            except BaseException as e:
                out = {"error": f"{type(e).__name__}: {e}"}
            with os.fdopen(write_end, "w") as f:
                json.dump(out, f)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    out = json.loads(text)
    assert "error" not in out, out["error"]
    return out["value"]


def _child_thread_parent() -> str | None:
    """In the forked child: the parent a new worker thread's run takes."""
    run = _in_thread(lambda: gp.track("child-thread", **_fast()).start())
    run.stop()
    return run.parent_id


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_keeps_the_main_threads_runs_even_while_a_thread_holds_the_lock():
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _lineage._main_lock:
            held.set()
            release.wait(10)

    with gp.track("outer", **_fast()) as outer:
        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(10)
        try:
            parent = _in_forked_child(_child_thread_parent)
        finally:
            release.set()
            holder.join(10)
    assert parent == outer.id  # the child is inside outer's process tree


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_by_a_worker_threads_trial_nests_its_threads_runs_in_that_trial():
    def trial() -> tuple[str, str | None]:
        with gp.track("trial", **_fast()) as run:
            return run.id, _in_forked_child(_child_thread_parent)

    with gp.track("search", **_fast()) as search:
        trial_id, parent = _in_thread(trial)
    assert parent == trial_id != search.id
    # and without a main-thread run: the forking thread's run, still
    trial_id, parent = _in_thread(trial)
    assert parent == trial_id
