"""Module locks that a forked child makes anew; whether `multiprocessing` started this process.

A thread of the parent may hold a module's lock at the moment another thread forks: the child
gets the lock held by a thread it does not have, and its first use of it waits for good.
:func:`renew_after_fork` registers, once per lock, a handler that puts a fresh lock in its place
in the child (the module's functions read the global when they run, so they take the new one).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["multiprocessing_child", "renew_after_fork"]


def renew_after_fork(
    namespace: MutableMapping[str, Any], name: str, make: Callable[[], Any] = threading.Lock
) -> None:
    """In a forked child, ``namespace[name]`` (a module's lock) made anew by ``make``.

    Args:
        namespace: the module's ``globals()``.
        name: the lock's global name.
        make: what makes the lock (``threading.Lock`` by default).

    Example:
        ``_LOCK = threading.Lock()`` then ``renew_after_fork(globals(), "_LOCK")``.
    """
    if hasattr(os, "register_at_fork"):  # POSIX

        def renew() -> None:
            namespace[name] = make()

        os.register_at_fork(after_in_child=renew)


def multiprocessing_child() -> bool:
    """Whether ``multiprocessing`` started this process (a pool's worker, any start method).

    Read without importing ``multiprocessing``: a process it started has imported it.
    """
    process = sys.modules.get("multiprocessing.process")
    return process is not None and process.parent_process() is not None
