"""Trials run as asyncio tasks at once: one process read by each, counted once, named so.

``@gp.track`` on an ``async def``: each task's run spans its coroutine, and tasks gathered at
once each read the whole process over their spans, as threads do. The price tag counts each
stretch of their time once, and its note said they ran "in one process (threads)": a user of
asyncio, who started no thread, was told of threads. It now says "(threads or asyncio tasks)".
Real runs, a real ledger, real CPU work.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import greenprint as gp
from greenprint.analysis import price_tag


def test_trials_gathered_as_asyncio_tasks_are_counted_once_and_named_as_tasks(tmp_path):
    ledger = tmp_path / "l.db"

    @gp.track(study="async", ledger=ledger, sample_interval_s=0.02)
    async def trial(lr: float) -> float:
        gp.current_run().set(params={"lr": lr})
        for _ in range(3):
            end = time.thread_time() + 0.02
            while time.thread_time() < end:  # CPU work, then the other tasks' turn
                pass
            await asyncio.sleep(0.005)
        gp.current_run().log(accuracy=lr)
        return lr

    async def search() -> list[float]:
        with gp.track("search", study="async", ledger=ledger, sample_interval_s=0.02):
            return await asyncio.gather(*(trial(lr) for lr in (0.1, 0.2, 0.3)))

    assert asyncio.run(search()) == [0.1, 0.2, 0.3]
    with gp.Ledger(ledger, create=False) as led:
        runs = led.runs(study="async")
    (sweep,) = [r for r in runs if r.name == "search"]
    trials = [r for r in runs if r is not sweep]
    assert len(trials) == 3 and all(r.parent_id == sweep.id for r in trials)
    tag = price_tag(runs, metric="accuracy")
    assert tag.total.trials == 3
    assert tag.total.energy_kwh == pytest.approx(sweep.energy_kwh, rel=1e-9)
    # each read the whole process: what they measured adds up to more than the search's
    assert sum(r.energy_kwh for r in trials) > sweep.energy_kwh
    assert tag.by_role["trial"].energy_kwh <= sweep.energy_kwh * (1 + 1e-9)
    (note,) = [n for n in tag.notes if "same time" in n]
    assert note.startswith(
        "the 3 trials of run 'search' ran at the same time in one process "
        "(threads or asyncio tasks), each measuring the whole process over its span"
    )
