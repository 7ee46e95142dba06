"""Runs in several threads of one process: each keeps its own parent, the environment its own.

A worker thread's run with no run of its own around it nests in the main thread's active run
(see ``test_worker_thread_parent.py``), never in a sibling worker thread's.
"""

from __future__ import annotations

import os
import threading

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
