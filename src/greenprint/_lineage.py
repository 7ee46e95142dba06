"""Which run a new run belongs to: the enclosing run in this context, or the parent process's.

A run started inside another (same thread or asyncio task) is that run's child, through a
context variable holding the stack of active runs. Threads do not inherit context variables, so
a run started in a worker thread (a ``ThreadPoolExecutor`` of trials) with no enclosing run of
its own takes the innermost active run of the *main* thread that measures this process (its
asyncio tasks included), kept in a process-wide view that :func:`enter` and :func:`leave`
maintain: that run measures the whole process, the worker thread included, so the new run is its
contained child (counting both as roots would count the thread's cost twice). Never a sibling
worker thread's run: with no main-thread run, runs of worker threads stay top-level. In a child
created by ``fork``, whose main thread is the thread that forked, the view holds the parent's
main-thread runs and then that thread's own (all of them measure the child's process tree).

A child process inherits its parent run, its ledger and its study through these environment
variables, which a running run exports and restores when it ends:

* ``GREENPRINT_PARENT_RUN``: the parent run's id;
* ``GREENPRINT_PARENT_LEDGER``: the ledger the parent writes to (so the child writes there too);
* ``GREENPRINT_PARENT_STUDY``: the parent's study;
* ``GREENPRINT_PARENT_TREE``: the parent's scope, process-tree root and host, so that the child
  knows whether its measurement is inside the parent's (see :mod:`greenprint._jobs`).

The environment is one per process, while runs in several threads of it may be active at once
(a thread pool of trials, Optuna's ``n_jobs``): the exports of this process's runs are therefore
kept together, each with the ids of its run and of that run's ancestors, and the environment
names the deepest exporting run that encloses every exporting run (:func:`_in_force`): the
innermost run when they are nested (one thread), their closest common run when runs of several
threads are live (a sweep around thread-pooled trials), and none of them when they share none
(what the process had before its first export). A child process started by one thread cannot
say which thread started it, so it is never linked to another thread's run; a run's
:meth:`~greenprint.Run.child_env` gives the environment that links a child to that run. A run
with no enclosing run (:func:`enclosing`) reads the values the process inherited, never those a
sibling thread's run exported (that would make it the sibling's child).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import MutableMapping
from typing import Any

__all__ = [
    "PARENT_ENV",
    "PARENT_CARBON_ENV",
    "PARENT_LEDGER_ENV",
    "PARENT_STUDY_ENV",
    "child_environ",
    "enclosing",
    "enter",
    "export_env",
    "inherited_ledger",
    "inherited_study",
    "inherited_tree",
    "innermost",
    "leave",
    "main_thread_run",
    "restore_env",
]

#: Environment variables through which a child process inherits its parent run.
PARENT_ENV = "GREENPRINT_PARENT_RUN"
PARENT_LEDGER_ENV = "GREENPRINT_PARENT_LEDGER"
PARENT_STUDY_ENV = "GREENPRINT_PARENT_STUDY"
PARENT_TREE_ENV = "GREENPRINT_PARENT_TREE"
#: The grid intensity, region and PUE the run was given (JSON), which its children take when
#: they are given none (a fold of a run priced in FR; the script of ``greenprint run --region``).
PARENT_CARBON_ENV = "GREENPRINT_PARENT_CARBON"

# the stack of active runs in this context (thread or task), innermost last
_stack: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "greenprint_current_runs", default=()
)


def innermost() -> Any | None:
    """The innermost active run in this context, or ``None``.

    A run stopped from another context (another thread, a signal handler) cannot be popped from
    this context's stack: it stays there, ended, and is skipped (it is no parent: runs started
    here after it nested in it, and its study's later runs read as its children).
    """
    stack = _stack.get()
    if stack and id(stack[-1]) in _live:
        return stack[-1]
    for run in reversed(stack):
        if id(run) in _live:
            return run
    return None


# the runs entered in the main thread that measure this process, innermost last: the parents
# a worker thread's run may take (main_thread_run); and the ids of every active run of this
# process that measures it (for a fork). A lock, not a context: every thread reads them. An
# RLock: a SIGTERM handler may end runs while the main thread is inside enter.
_main_lock = threading.RLock()
_main_runs: list[Any] = []
_measuring: set[int] = set()
# the ids of every run entered and not yet left, in any context: a stack entry whose run is not
# here was stopped from another context (innermost skips it; the stack holds it, so its id is
# not reused meanwhile)
_live: set[int] = set()


def enter(run: Any, *, measures_process: bool = True) -> contextvars.Token[tuple[Any, ...]]:
    """Push ``run`` on this context's stack; returns the token :func:`leave` needs.

    Args:
        run: The run that starts.
        measures_process: Whether ``run`` measures this process (its scope or process tree
            holds it); only such a run entered in the main thread parents worker threads' runs.
    """
    with _main_lock:
        _live.add(id(run))
        if measures_process:
            _measuring.add(id(run))
            if threading.current_thread() is threading.main_thread():
                _main_runs.append(run)
    return _stack.set((*_stack.get(), run))


def leave(run: Any, token: contextvars.Token[tuple[Any, ...]]) -> None:
    """Pop ``run``, also when it is stopped from another context (a signal handler, atexit)."""
    with _main_lock:
        _live.discard(id(run))
        _measuring.discard(id(run))
        for index in range(len(_main_runs) - 1, -1, -1):
            if _main_runs[index] is run:  # identity: a run's == is not a stack's business
                del _main_runs[index]
                break
    try:
        _stack.reset(token)
    except ValueError:  # another context: drop the run by hand
        _stack.set(tuple(r for r in _stack.get() if r is not run))


def main_thread_run() -> Any | None:
    """In a thread other than the main one: the main thread's innermost active run, else ``None``.

    Only runs that measure this process count (see :func:`enter`); in the main thread, always
    ``None`` (a sibling asyncio task's run is not a parent).
    """
    if threading.current_thread() is threading.main_thread():
        return None
    with _main_lock:
        return _main_runs[-1] if _main_runs else None


def enclosing() -> Any | None:
    """The run a new run here is a child of in this process, or ``None``.

    The innermost active run of this context, else (in a worker thread) the main thread's
    innermost active run that measures this process.
    """
    run = innermost()
    return run if run is not None else main_thread_run()


def _main_runs_after_fork() -> None:
    """In a forked child, whose main thread is the thread that forked: its runs join the view.

    The parent's main-thread runs stay (they measure the parent's process tree, this child
    included, as they do for the forking thread's own runs); the forking thread's runs that
    measure the process, when it was a worker thread, nest inside them. The exports of other
    threads' runs are dropped (those threads are not in the child): the child's environment
    names the forking thread's innermost exporting run, as in a process of one thread. The
    locks are made anew: another thread of the parent may have held them.
    """
    global _main_lock, _exports_lock
    _main_lock = threading.RLock()
    _exports_lock = threading.RLock()
    known = {id(run) for run in _main_runs}
    _main_runs.extend(r for r in _stack.get() if id(r) in _measuring and id(r) not in known)
    here = {getattr(run, "id", None) for run in (*_main_runs, *_stack.get())}
    kept = [export for export in _exports if export[1][PARENT_ENV] in here]
    if len(kept) < len(_exports):
        _exports[:] = kept
        _apply()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_main_runs_after_fork)


_KEYS = (PARENT_ENV, PARENT_LEDGER_ENV, PARENT_STUDY_ENV, PARENT_TREE_ENV, PARENT_CARBON_ENV)

# this process's exports, oldest first: (the dict export_env returned, the values exported, the
# ids of the exporting run and of its ancestors); _base holds the process's own values of _KEYS
# while any export is in force. An RLock: a SIGTERM handler may end runs while the main thread is
# inside export_env.
_exports_lock = threading.RLock()
_exports: list[tuple[dict[str, str | None], dict[str, str], frozenset[str]]] = []
_base: dict[str, str | None] = {}


def _inherited(key: str) -> str | None:
    """The process's own value of ``key``: not one exported by a run of this process."""
    with _exports_lock:
        value = _base.get(key) if _exports else os.environ.get(key)
    return _uncarried(value)


def _carried(value: str) -> str | None:
    """``value`` as the environment can hold it, else ``None`` (a lone surrogate).

    On POSIX the environment holds bytes, encoded in the locale's encoding: under ``LC_ALL=C``
    (without UTF-8 mode) that is ASCII, which cannot hold a study named ``'étude'``. Such a value
    goes as its UTF-8 bytes (as surrogate escapes, which :data:`os.environ` writes byte for
    byte); :func:`_uncarried` reads them back in the child, whatever its locale.
    """
    if os.name == "nt":  # the environment holds text
        return value
    try:
        os.fsencode(value)
        return value
    except UnicodeEncodeError:
        pass
    try:
        return os.fsdecode(value.encode("utf-8"))
    except UnicodeError:  # a lone surrogate that is not an escape: nothing to carry it as
        return None


def _uncarried(value: str | None) -> str | None:
    """A value :func:`_carried` put in the environment, as it was (its bytes read as UTF-8)."""
    if value is None or os.name == "nt" or value.isascii():
        return value
    try:
        return os.fsencode(value).decode("utf-8")
    except UnicodeError:  # not UTF-8: another program's bytes, kept as the locale read them
        return value


def inherited_parent() -> str | None:
    """The parent run id a child process inherited, or ``None``."""
    return _inherited(PARENT_ENV) or None


def inherited_study() -> str | None:
    """The enclosing run's study (:func:`enclosing`), else the inherited parent run's.

    ``None`` when there is neither.
    """
    parent = enclosing()
    if parent is not None:
        return getattr(parent, "study", None)
    return _inherited(PARENT_STUDY_ENV) if inherited_parent() else None


def inherited_carbon() -> dict[str, str] | None:
    """The grid intensity, region and PUE the enclosing run was given, else the parent's.

    The enclosing run (:func:`enclosing`), else the inherited parent run's
    (``GREENPRINT_PARENT_CARBON``): ``{"intensity": ..., "region": ..., "pue": ...}`` (the keys
    given only), or ``None``. A run given none of them takes its enclosing run's, as it takes
    its study; a configured region or PUE (``GREENPRINT_REGION``, greenprint.toml) is read by
    each run itself.
    """
    import json

    parent = enclosing()
    if parent is not None:
        given = getattr(parent, "_carbon_given", None)
        return dict(given) if given else None
    text = _inherited(PARENT_CARBON_ENV) if inherited_parent() else None
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {
        k: v for k, v in value.items() if k in ("intensity", "region", "pue") and isinstance(v, str)
    }


def inherited_tree() -> str | None:
    """The inherited parent run's ``GREENPRINT_PARENT_TREE`` value, or ``None``."""
    return _inherited(PARENT_TREE_ENV) if inherited_parent() else None


def inherited_ledger() -> str | None:
    """The enclosing run's ledger URL (:func:`enclosing`), else the inherited parent run's.

    ``None`` when there is neither, or the enclosing run is kept in memory only.
    """
    parent = enclosing()
    if parent is not None:
        ledger = getattr(parent, "ledger", None)
        return None if ledger is None else getattr(ledger, "url_unmasked", None)
    return _inherited(PARENT_LEDGER_ENV) if inherited_parent() else None


def _put(values: dict[str, str | None], env: MutableMapping[str, str] | None = None) -> None:
    """Set ``values`` in ``env`` (default ``os.environ``); a ``None`` value unsets its key.

    A value the environment cannot hold in the locale's encoding goes as its UTF-8 bytes
    (:func:`_carried`); never an error in the user's code.
    """
    target = os.environ if env is None else env
    for key, value in values.items():
        carried = None if value is None else _carried(value)
        if carried is None:
            target.pop(key, None)
        else:
            target[key] = carried


def _values(
    run_id: str, study: str, ledger_url: str | None, tree: str | None, carbon: str | None = None
) -> dict[str, str | None]:
    """What a child inherits from a run, by variable (``None``: the variable unset)."""
    return {
        PARENT_ENV: run_id,
        PARENT_STUDY_ENV: study,
        PARENT_LEDGER_ENV: ledger_url,
        PARENT_TREE_ENV: tree,
        PARENT_CARBON_ENV: carbon,
    }


def export_env(
    run_id: str,
    study: str,
    ledger_url: str | None,
    tree: str | None = None,
    carbon: str | None = None,
    *,
    ancestors: frozenset[str] = frozenset(),
) -> dict[str, str | None]:
    """Export a run to child processes; returns the previous values for :func:`restore_env`.

    Args:
        run_id: the run's id (``GREENPRINT_PARENT_RUN``).
        study: its study (``GREENPRINT_PARENT_STUDY``).
        ledger_url: its ledger (``GREENPRINT_PARENT_LEDGER``; ``None``: kept in memory).
        tree: its scope, process-tree root and host (``GREENPRINT_PARENT_TREE``).
        carbon: the intensity, region and PUE it was given, JSON (``GREENPRINT_PARENT_CARBON``).
        ancestors: the ids of the run's ancestors known here (its parent's, that one's...):
            while runs of other threads export too, the environment names the closest run
            that encloses them all (:func:`_in_force`).
    """
    values = _values(run_id, study, ledger_url, tree, carbon)
    exported = {key: value for key, value in values.items() if value is not None}
    with _exports_lock:
        if not _exports:
            _base.clear()
            _base.update({key: os.environ.get(key) for key in _KEYS})
        saved: dict[str, str | None] = {key: os.environ.get(key) for key in exported}
        _exports.append((saved, exported, ancestors | {run_id}))
        _apply()
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    """Undo :func:`export_env`: what the exports still in force name (:func:`_in_force`).

    When none is left, the process's own values come back. Runs of several threads may end in
    any order; the environment never names a run that has ended.
    """
    with _exports_lock:
        index = next((i for i, (s, _, _) in enumerate(_exports) if s is saved), None)
        if index is None:  # not on the stack (already restored): put back what it replaced
            _put(saved)
            return
        del _exports[index]
        _apply()


def _apply() -> None:
    """Put the environment the exports in force give (called with ``_exports_lock`` held).

    With none left, that is the process's own values, which are then no longer kept apart.
    """
    _put(_in_force())
    if not _exports:
        _base.clear()


def _in_force() -> dict[str, str | None]:
    """The environment the exports in force give (called with ``_exports_lock`` held).

    The leaves are the exporting runs that enclose no other exporting run; the environment
    names the deepest exporting run that is one of every leaf's ancestors or the leaf itself
    (one thread's nested runs: the innermost; runs of several threads: their closest common
    run), else none of them: the process's own values.
    """
    within = [ids for _, _, ids in _exports]
    named = [exported[PARENT_ENV] for _, exported, _ in _exports]
    leaves = [
        ids
        for k, ids in enumerate(within)
        if not any(named[k] in other for j, other in enumerate(within) if j != k)
    ]
    best: dict[str, str] | None = None
    depth = -1
    for (_, exported, ids), run_id in zip(_exports, named, strict=True):
        if len(ids) > depth and all(run_id in leaf for leaf in leaves):
            best, depth = exported, len(ids)
    return dict(_base) if best is None else {**_base, **best}


def child_environ(
    run_id: str, study: str, ledger_url: str | None, tree: str | None, carbon: str | None = None
) -> dict[str, str]:
    """A copy of ``os.environ`` whose ``GREENPRINT_PARENT_*`` variables name this run.

    What ``subprocess.run(cmd, env=...)`` needs to link a child process to a run whatever the
    process-wide environment names (runs of other threads live at the same time).
    """
    env = dict(os.environ)
    _put(_values(run_id, study, ledger_url, tree, carbon), env)
    return env
