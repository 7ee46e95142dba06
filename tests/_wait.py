"""Waiting for a condition instead of sleeping a fixed time: one helper for the whole suite.

A loaded machine (three test workers on two cores, other jobs) can start a sampler, a
subprocess or a framework's thread seconds late; a fixed sleep long enough for that wastes the
time on every other run, and a shorter one fails there. Poll the condition instead, with a
generous ceiling, and let the caller assert on the answer (``assert wait_until(...), "what"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float, *, every_s: float = 0.02) -> bool:
    """Poll ``condition`` every ``every_s`` seconds until it is true or ``timeout_s`` has passed.

    Returns:
        Whether the condition held (checked once more at the deadline).
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(every_s)
    return True
