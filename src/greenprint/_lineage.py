"""Which run a new run belongs to: the enclosing run in this context, or the parent process's.

A run started inside another (same thread or asyncio task) is that run's child, through a
context variable holding the stack of active runs. A child process inherits its parent run, its
ledger and its study through three environment variables, which a running run exports and
restores when it ends:

* ``GREENPRINT_PARENT_RUN``: the parent run's id;
* ``GREENPRINT_PARENT_LEDGER``: the ledger the parent writes to (so the child writes there too);
* ``GREENPRINT_PARENT_STUDY``: the parent's study.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

__all__ = [
    "PARENT_ENV",
    "PARENT_LEDGER_ENV",
    "PARENT_STUDY_ENV",
    "enter",
    "export_env",
    "inherited_ledger",
    "inherited_study",
    "innermost",
    "leave",
    "restore_env",
]

#: Environment variables through which a child process inherits its parent run.
PARENT_ENV = "GREENPRINT_PARENT_RUN"
PARENT_LEDGER_ENV = "GREENPRINT_PARENT_LEDGER"
PARENT_STUDY_ENV = "GREENPRINT_PARENT_STUDY"

# the stack of active runs in this context (thread or task), innermost last
_stack: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "greenprint_current_runs", default=()
)


def innermost() -> Any | None:
    """The innermost active run in this context, or ``None``."""
    stack = _stack.get()
    return stack[-1] if stack else None


def enter(run: Any) -> contextvars.Token[tuple[Any, ...]]:
    """Push ``run`` on this context's stack; returns the token :func:`leave` needs."""
    return _stack.set((*_stack.get(), run))


def leave(run: Any, token: contextvars.Token[tuple[Any, ...]]) -> None:
    """Pop ``run``, also when it is stopped from another context (a signal handler, atexit)."""
    try:
        _stack.reset(token)
    except ValueError:  # another context: drop the run by hand
        _stack.set(tuple(r for r in _stack.get() if r is not run))


def inherited_parent() -> str | None:
    """The parent run id a child process inherited, or ``None``."""
    return os.environ.get(PARENT_ENV) or None


def inherited_study() -> str | None:
    """The study of the inherited parent run, or ``None`` when there is no parent."""
    return os.environ.get(PARENT_STUDY_ENV) if inherited_parent() else None


def inherited_ledger() -> str | None:
    """The ledger URL of the inherited parent run, or ``None`` when there is no parent."""
    return os.environ.get(PARENT_LEDGER_ENV) if inherited_parent() else None


def export_env(run_id: str, study: str, ledger_url: str | None) -> dict[str, str | None]:
    """Export a run to child processes; returns the previous values for :func:`restore_env`."""
    exported = {PARENT_ENV: run_id, PARENT_STUDY_ENV: study}
    if ledger_url is not None:
        exported[PARENT_LEDGER_ENV] = ledger_url
    saved: dict[str, str | None] = {}
    for key, value in exported.items():
        saved[key] = os.environ.get(key)
        os.environ[key] = value
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    """Put back what :func:`export_env` replaced."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
