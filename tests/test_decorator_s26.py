"""``@gp.track`` as a new user writes it: bare, on ``async def``, on generators.

Before session 26, bare ``@gp.track`` raised "name must be a string, not function"; on an
``async def`` function or a generator function the run spanned only the call that creates the
coroutine or generator (a 0.3 s coroutine was recorded as 0.002 s, its cost nearly nothing);
and a decorated function had no public way to reach its run to log a score
(``gp.current_run()``). A cancelled coroutine's run read ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import run_in

SLEEP_S = 0.3


def _runs() -> dict[str, list[gp.RunRecord]]:
    by_name: dict[str, list[gp.RunRecord]] = {}
    for record in gp.Ledger("greenprint.db").runs():
        by_name.setdefault(record.name, []).append(record)
    return by_name


def test_an_async_function_is_measured_while_it_runs_and_logs_to_its_own_run(home: Path) -> None:
    @gp.track("train", study="s")
    async def train(lr: float) -> float:
        await asyncio.sleep(SLEEP_S)
        run = gp.current_run()
        assert run is not None and run.name == "train"
        run.log(lr_seen=lr)
        return lr * 2

    assert inspect.iscoroutinefunction(train)
    assert train.__name__ == "train"

    async def main() -> list[float]:
        return list(await asyncio.gather(train(0.1), train(0.2)))  # two tasks at once

    assert asyncio.run(main()) == [0.2, 0.4]
    runs = _runs()["train"]
    assert [r.status for r in runs] == ["finished", "finished"]
    assert all(r.duration_s >= SLEEP_S for r in runs)  # was about 0.002 s: only the call
    assert sorted(r.metrics[0].value for r in runs) == [0.1, 0.2]  # each task its own run
    assert all(r.parent_id is None for r in runs)  # siblings, not nested in each other


def test_a_coroutine_cancelled_by_a_timeout_is_interrupted(home: Path) -> None:
    @gp.track("slow", study="s")
    async def slow() -> None:
        await asyncio.sleep(30)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), timeout=0.2)

    asyncio.run(main())
    (run,) = _runs()["slow"]
    assert (run.status, run.error) == ("interrupted", "CancelledError")


def test_a_generator_is_measured_over_its_iteration(home: Path) -> None:
    @gp.track("batches", study="s")
    def batches(n: int):
        received = []
        for i in range(n):
            time.sleep(SLEEP_S / n)
            received.append((yield i))
        return received

    assert inspect.isgeneratorfunction(batches)
    assert list(batches(3)) == [0, 1, 2]

    def drive():  # send() and the return value reach through the wrapper
        return (yield from batches(2))

    driver = drive()
    assert next(driver) == 0
    assert driver.send("a") == 1
    with pytest.raises(StopIteration) as stop:
        driver.send("b")
    assert stop.value.value == ["a", "b"]

    for i in batches(10):  # the consumer leaves early: it had what it asked for
        if i == 1:
            break
    failing = batches(3)
    next(failing)
    with pytest.raises(ValueError, match="bad batch"):
        failing.throw(ValueError("bad batch"))

    runs = _runs()["batches"]
    assert [r.status for r in runs] == ["finished", "finished", "finished", "failed"]
    assert runs[0].duration_s >= SLEEP_S  # was about 0.001 s
    assert runs[3].error == "ValueError: bad batch"


def test_an_async_generator_is_measured_over_its_iteration(home: Path) -> None:
    @gp.track("stream", study="s")
    async def stream(n: int):
        for i in range(n):
            await asyncio.sleep(SLEEP_S / n)
            got = yield i
            if got is not None:
                yield f"echo {got}"

    assert inspect.isasyncgenfunction(stream)

    async def main() -> None:
        assert [i async for i in stream(3)] == [0, 1, 2]
        generator = stream(2)
        assert await generator.__anext__() == 0
        assert await generator.asend("x") == "echo x"
        async with contextlib.aclosing(stream(5)) as early:  # left early, closed at once
            async for i in early:
                if i == 1:
                    break

    asyncio.run(main())
    runs = _runs()["stream"]
    assert [r.status for r in runs][0] == "finished"
    assert runs[0].duration_s >= SLEEP_S
    # the generator driven by hand and never finished is closed by the loop at its end
    assert {r.status for r in runs[1:]} <= {"finished", "interrupted"}
    assert runs[2].status == "finished"


def test_current_run_is_the_innermost_run_here(home: Path) -> None:
    assert gp.current_run() is None
    with gp.track("outer", study="s") as outer:
        assert gp.current_run() is outer
        # printed in a REPL or a log: which run, and its cost so far (was "<...Run object at 0x>")
        assert repr(outer).startswith("<Run 'outer' study='s' running ")
        assert repr(outer).endswith(f"s, id {outer.id[:8]}>") and "CO2-eq" in repr(outer)
        with gp.track("inner", study="s") as inner:
            assert gp.current_run() is inner
        assert gp.current_run() is outer
    assert gp.current_run() is None


SCRIPT = """
import greenprint as gp

@gp.track
def baseline():
    gp.current_run().log(accuracy=0.5)
    return "ok"

print(baseline())
"""


def test_a_bare_decorator_in_a_new_users_script(home: Path) -> None:
    """``@gp.track`` with no parentheses, in an empty directory with a clean environment."""
    (home / "script.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "script.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    (run,) = gp.Ledger(home / "greenprint.db").runs()
    assert (run.name, run.study, run.status) == ("baseline", "default", "finished")
    assert run.metric("accuracy") == 0.5
