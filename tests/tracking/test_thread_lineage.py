"""Runs in several threads of one process: each keeps its own parent, the environment its own.

A worker thread's run with no run of its own around it nests in the main thread's active run
(see ``test_worker_thread_parent.py``), never in a sibling worker thread's.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import greenprint as gp
from greenprint import _lineage


def test_concurrent_thread_runs_are_not_each_others_children() -> None:
    before = {k: os.environ.get(k) for k in _lineage._KEYS}
    started = threading.Barrier(2)
    release = threading.Event()
    runs: dict[str, gp.Run] = {}

    def worker(name: str) -> None:
        with gp.track(name, ledger=False) as run:
            runs[name] = run
            started.wait(5)
            # the other thread's run is active and exported: a new run here nests in ours
            with gp.track(f"{name}-inner", ledger=False) as inner:
                runs[inner.name] = inner
            release.wait(5)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert runs["a"].parent_id is None and runs["b"].parent_id is None
    assert runs["a-inner"].parent_id == runs["a"].id
    assert runs["b-inner"].parent_id == runs["b"].id
    assert {k: os.environ.get(k) for k in _lineage._KEYS} == before


def test_runs_ending_out_of_order_leave_the_newest_still_running_exported() -> None:
    first = gp.track("first", ledger=False).start()
    saved_first = os.environ[_lineage.PARENT_ENV]
    holder: dict[str, gp.Run] = {}
    t = threading.Thread(
        target=lambda: holder.update(second=gp.track("second", ledger=False).start())
    )
    t.start()
    t.join(10)
    second = holder["second"]
    # the main thread's run measures the whole process, the worker thread too: second is its
    # contained child (as top-level runs both, the price tag would count second twice)
    assert second.parent_id == first.id and second.record.contained is True
    first.stop()  # the older run ends first: the newer one stays exported
    assert os.environ[_lineage.PARENT_ENV] == second.id != saved_first
    second.stop()
    assert _lineage.PARENT_ENV not in os.environ


_CHILD = "import greenprint as gp\nwith gp.track('child'):\n    pass\n"


def _start_child(env: dict[str, str] | None = None) -> None:
    """A child process whose run links to the parent its environment names (a real one)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True, timeout=120)


def test_a_child_process_of_a_thread_pooled_trial_is_never_linked_to_another_trial(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.db"
    both_live = threading.Barrier(2)
    seen: dict[str, str | None] = {}

    def trial(k: int) -> None:
        with gp.track(f"trial-{k}", ledger=ledger, role="trial") as run:
            both_live.wait(30)
            seen[run.name] = os.environ.get(_lineage.PARENT_ENV)
            _start_child()  # the process's environment: the closest run around both trials
            _start_child(run.child_env())  # linked to this trial, whatever else runs
            both_live.wait(30)

    with gp.track("sweep", ledger=ledger, role="sweep") as sweep:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(trial, range(2)))
        assert os.environ[_lineage.PARENT_ENV] == sweep.id
    runs = {r.id: r for r in gp.Ledger(ledger).runs()}
    trials = {r.name: r.id for r in runs.values() if r.name.startswith("trial-")}
    # while both trials ran, the environment named their sweep, never one of them
    assert seen == {"trial-0": sweep.id, "trial-1": sweep.id}
    parents = sorted(runs[r.parent_id].name for r in runs.values() if r.name == "child")
    assert parents == ["sweep", "sweep", "trial-0", "trial-1"]
    assert all(runs[t].parent_id == sweep.id for t in trials.values())


def test_the_environment_names_the_innermost_run_of_one_thread_and_no_run_of_two_unrelated() -> (
    None
):
    before = os.environ.get(_lineage.PARENT_ENV)
    one_live = threading.Event()
    both_live = threading.Barrier(2)
    names: dict[str, str | None] = {}
    holder: dict[str, gp.Run] = {}

    def worker() -> None:  # a top-level run of a worker thread (no main-thread run around it)
        with gp.track("other", ledger=False) as run:
            holder["other"] = run
            one_live.set()
            both_live.wait(10)
            both_live.wait(10)

    with gp.track("outer", ledger=False) as outer, gp.track("inner", ledger=False) as inner:
        assert inner.parent_id == outer.id
        assert os.environ[_lineage.PARENT_ENV] == inner.id  # nested in one thread: innermost
    assert os.environ.get(_lineage.PARENT_ENV) == before
    thread = threading.Thread(target=worker)
    thread.start()
    one_live.wait(10)
    assert os.environ[_lineage.PARENT_ENV] == holder["other"].id  # alone: it is named
    with gp.track("mine", ledger=False) as mine:
        assert mine.parent_id is None  # never the other thread's child
        both_live.wait(10)
        # two live runs with no run around both: a child could not say which started it
        names["both"] = os.environ.get(_lineage.PARENT_ENV)
        assert mine.child_env()[_lineage.PARENT_ENV] == mine.id
        both_live.wait(10)
        thread.join(10)
        names["mine alone"] = os.environ.get(_lineage.PARENT_ENV)
    assert names == {"both": before, "mine alone": mine.id}
    assert os.environ.get(_lineage.PARENT_ENV) == before


def test_child_env_names_a_running_run_only() -> None:
    run = gp.track("later", ledger=False)
    with pytest.raises(gp.GreenprintError, match="child_env"):
        run.child_env()
    with run:
        env = run.child_env()
        assert env[_lineage.PARENT_ENV] == run.id and env[_lineage.PARENT_STUDY_ENV] == run.study
    with pytest.raises(gp.GreenprintError, match="stopped"):
        run.child_env()
