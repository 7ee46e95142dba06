"""The ledger files this process's SQLite stores hold open, and other handles on them.

POSIX advisory locks belong to a process and a file, not to a descriptor: closing *any*
descriptor of a file releases every lock the process holds on it, its SQLite connections'
included. SQLite keeps its own descriptors open for that reason, but it cannot know of others.
A WAL-mode connection holds a shared lock on the database file for as long as it is open; a
process that loses it lets another process's last connection believe it is the last one: that
connection checkpoints and deletes the write-ahead log under the first, whose next write fails
with "disk I/O error" on a corrupt ledger (a sweep that started a run while a child process
tracking into the same ledger was running did so).

So greenprint never closes a handle of its own on a ledger file while one of its stores in this
process has that file open: :func:`is_open` tells the header check (``Target.prepare``) to trust
the open store instead of reading the file, and :func:`close_handle` keeps another handle (the
shared ledger's pin) open until the last store on the file has closed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from greenprint._forks import renew_after_fork

__all__ = [
    "FileIdentity",
    "close_handle",
    "file_identity",
    "is_open",
    "store_closed",
    "store_opened",
]

#: ``(st_dev, st_ino)``: a file, whatever path names it.
FileIdentity = tuple[int, int]

_lock = threading.Lock()
renew_after_fork(globals(), "_lock")  # a parent's thread may have held it at the fork
# file -> how many of this process's stores have it open
_open: dict[FileIdentity, int] = {}
# file -> handles whose closing waits for its last store to close
_deferred: dict[FileIdentity, list[Any]] = {}


def file_identity(path: str | os.PathLike[str] | None) -> FileIdentity | None:
    """The identity of the file at ``path`` (``None``: no path, or it cannot be read)."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def is_open(identity: FileIdentity | None) -> bool:
    """Whether one of this process's stores has the file open (its locks depend on it)."""
    if identity is None:
        return False
    with _lock:
        return _open.get(identity, 0) > 0


def store_opened(identity: FileIdentity | None) -> None:
    """A store has opened the file; pair with :func:`store_closed`."""
    if identity is None:
        return
    with _lock:
        _open[identity] = _open.get(identity, 0) + 1


def store_closed(identity: FileIdentity | None) -> None:
    """A store has closed the file: the handles deferred on it close when it was the last."""
    if identity is None:
        return
    with _lock:
        left = _open.get(identity, 0) - 1
        if left > 0:
            _open[identity] = left
            return
        _open.pop(identity, None)
        handles = _deferred.pop(identity, [])
    for handle in handles:
        _close_quietly(handle)


def close_handle(identity: FileIdentity | None, handle: Any) -> None:
    """Close ``handle`` (a file object on the file ``identity``) now, or once it is safe to.

    While a store of this process has the file open, closing the handle would drop that
    store's locks: the handle is kept until the last such store closes.
    """
    with _lock:
        if identity is not None and _open.get(identity, 0) > 0:
            _deferred.setdefault(identity, []).append(handle)
            return
    _close_quietly(handle)


def _close_quietly(handle: Any) -> None:
    try:
        handle.close()
    except OSError:  # pragma: no cover - closing a read-only file does not fail in practice
        pass
