"""The read deadline runs from the moment the meter is called, and never waits twice over it."""

from __future__ import annotations

import threading
import time

import pytest

from greenprint.meters._deadline import DeadlineWorker, MeterTimeoutError, _Job


def _delay_the_worker(worker: DeadlineWorker, seconds: float) -> None:
    """Queue a job ahead of the next call, as a loaded machine delays the worker thread."""
    jobs = worker._ensure()
    jobs.put(_Job(lambda: time.sleep(seconds)))


def test_a_healthy_call_returns_its_value_and_reuses_the_thread():
    worker = DeadlineWorker("test")
    assert worker.call(lambda: 42, 1.0) == 42
    first = worker.alive_threads()
    assert worker.call(lambda: 43, 1.0) == 43
    assert worker.alive_threads() == first
    worker.close()


def test_the_calls_exception_is_raised_to_the_caller():
    worker = DeadlineWorker("test")

    def boom() -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        worker.call(boom, 1.0)
    worker.close()


def test_a_call_the_worker_starts_late_gets_its_own_full_deadline():
    # the worker is busy for 0.3 s (a loaded machine); the call itself takes 0.05 s: it must
    # not fail although it returns 0.35 s after the hand-off, past the 0.25 s deadline
    worker = DeadlineWorker("test")
    _delay_the_worker(worker, 0.3)
    t0 = time.monotonic()
    assert worker.call(lambda: time.sleep(0.05) or "ok", 0.25) == "ok"
    assert time.monotonic() - t0 >= 0.3
    assert worker.abandoned == 0
    worker.close()


def test_a_call_that_hangs_fails_after_its_deadline_and_the_thread_is_abandoned():
    release = threading.Event()
    worker = DeadlineWorker("test")
    t0 = time.monotonic()
    with pytest.raises(MeterTimeoutError, match="no answer within 0.2 s"):
        worker.call(release.wait, 0.2)
    waited = time.monotonic() - t0
    assert 0.2 <= waited < 0.2 * 2 + 0.5  # never more than twice the deadline (and scheduling)
    assert worker.abandoned == 1
    release.set()  # the abandoned thread ends; the next call gets a new one
    assert worker.call(lambda: 1, 1.0) == 1
    worker.close()


def test_a_late_call_that_hangs_still_fails_within_twice_the_deadline():
    release = threading.Event()
    worker = DeadlineWorker("test")
    _delay_the_worker(worker, 0.15)
    t0 = time.monotonic()
    with pytest.raises(MeterTimeoutError):
        worker.call(release.wait, 0.2)
    waited = time.monotonic() - t0
    # called at ~0.15 s, so it fails at ~0.35 s: its own deadline, within twice the deadline
    assert 0.3 <= waited < 0.2 * 2 + 0.5
    release.set()
    worker.close()
