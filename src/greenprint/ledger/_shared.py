"""The ledgers this process's runs share: one open :class:`Ledger` per target, a few kept open.

Runs tracked one after another into the same ledger reuse one connection pool and its compiled
statements instead of opening the database for each run (:func:`shared_ledger`). A ledger was
kept open for the process's life: about 4 file descriptors per SQLite file (the database, its
write-ahead log and WAL index, the pin below), so a long-lived process writing many ledgers (a
sweep writing one per experiment, a notebook, a service) ran out of them (50 ledgers: 208
descriptors; ``select()`` fails past 1,024). Now the ledgers no run needs are closed, least
recently used first, beyond the :data:`KEPT_OPEN` most recently asked for:

* a run that asks for its ledger names itself its holder (``shared_ledger(..., holder=run)``):
  the ledger stays open while the run needs it (:meth:`LedgerHolder._needs_ledger`): from its
  start until it has ended and its ledger took everything it recorded (its final record, what
  it recorded after its end, what was kept unsaved);
* a write that comes after that (a metric logged after the run's end) takes the ledger with
  :func:`ledger_in_use`: opened again if it was closed, and not closed until the write is done;
* a ledger closed here is a new ``Ledger`` for the same path (or URL) when it is asked for again.

A file ledger is opened again when the file at its path is no longer the one that was opened
(deleted or replaced): each entry keeps the identity ``(device, inode)`` of the file opened and
a handle on it (the pin), which keeps the inode from being reused by a new file while the entry
is kept, so a replaced file is always told apart from the original. The pin is closed with
:func:`~greenprint.ledger._handles.close_handle` (after the ledger's own connections: closing a
descriptor of a file releases every lock the process holds on it).

One lock guards the entries, the holders' counts and every close, so a ledger that a run or a
:func:`ledger_in_use` block needs is never closed under it, whatever thread asks (a ``Ledger``
object the user kept from ``run.ledger`` is not counted: it may be closed once its run no
longer needs it, and its next use opens it again, the user's to keep: ``Ledger._reopen``).
Entries are kept per process: a forked child opens ledgers of its own and leaves the ones it
inherited from its parent as they are (the parent's runs, copied into the child, still name
them).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from greenprint._forks import renew_after_fork
from greenprint.ledger._handles import FileIdentity, close_handle, file_identity
from greenprint.ledger._store import Ledger
from greenprint.ledger._target import Target, resolve_target

__all__ = ["KEPT_OPEN", "LedgerHolder", "closed_here", "ledger_in_use", "shared_ledger"]

logger = logging.getLogger(__name__)

#: How many of the shared ledgers that no run needs stay open (the most recently asked for):
#: a process alternating between a few ledgers does not reopen them, one writing a ledger per
#: experiment holds at most this many open besides its live runs' (about 4 descriptors each).
KEPT_OPEN = 8


class LedgerHolder(Protocol):
    """What holds a shared ledger open: a run (:class:`greenprint.tracking.Run`)."""

    def _needs_ledger(self) -> bool:
        """Whether its ledger must stay open (the run is live, or has something to write)."""
        ...  # pragma: no cover


class _Entry:
    """A shared ledger, the file it was opened on, its pin, and who needs it open."""

    __slots__ = ("holders", "identity", "ledger", "pin", "uses")

    def __init__(self, ledger: Ledger, identity: FileIdentity | None, pin: Any) -> None:
        self.ledger = ledger
        self.identity = identity
        self.pin = pin
        # the runs that asked for it: gone with them (a run collected needs nothing)
        self.holders: weakref.WeakSet[Any] = weakref.WeakSet()
        self.uses = 0  # ledger_in_use blocks running now

    def needed(self) -> bool:
        """Whether a run or a block in progress needs the ledger open."""
        return self.uses > 0 or any(holder._needs_ledger() for holder in list(self.holders))

    def close(self) -> None:
        """Close the ledger, then its pin (kept while another store has the file open).

        Not the ledger of a file deleted or replaced since it was opened: SQLite's last
        connection to a database deletes its write-ahead log and WAL index *by name* when it
        closes, and those names are the new file's now. Its connections close with it (when
        it is collected, or at exit), as they did before ledgers were closed here.
        """
        if file_identity(self.ledger.path) == self.identity:
            try:
                self.ledger._close_unneeded()
            except Exception as e:  # an unused ledger's close must never fail the caller's open
                logger.warning("greenprint: closing ledger %s failed: %s", self.ledger.url, e)
        if self.pin is not None:
            close_handle(self.identity, self.pin)


# process id -> target URL -> entry, least recently asked for first
_SHARED: dict[int, OrderedDict[str, _Entry]] = {}
# re-entrant: a signal handler on a thread inside it (SIGTERM ending its runs writes what they
# recorded after their end: ledger_in_use) takes it again instead of waiting on itself for good
_SHARED_LOCK = threading.RLock()
# a parent's thread may have held it at the fork (opening a ledger: a schema check, a migration)
renew_after_fork(globals(), "_SHARED_LOCK", threading.RLock)


def shared_ledger(
    location: str | os.PathLike[str], *, holder: LedgerHolder | None = None, create: bool = True
) -> Ledger:
    """An open ledger for ``location``, shared by every caller in this process.

    An in-memory ledger is never shared (a new one each call). Callers must not close the
    returned ledger. A caller that keeps it names itself ``holder``: the ledger is not closed
    while ``holder._needs_ledger()`` is true; once it is not, the ledger may be closed when
    :data:`KEPT_OPEN` others were asked for since, and :func:`ledger_in_use` gives an open one
    again.

    Args:
        location: a path or URL, as :class:`Ledger` takes it.
        holder: the run that keeps the ledger (``None``: a caller that uses it at once).
        create: whether a missing file is created (``False``: a ledger opened again, whose
            file was deleted since, is not created again, empty).

    Raises:
        LedgerPathError, NotALedgerError, SchemaVersionError: as :class:`Ledger` does.
    """
    target = resolve_target(location)
    if target.memory:
        return Ledger(location)
    with _SHARED_LOCK:
        return _shared(target, location, holder, create=create)


@contextmanager
def ledger_in_use(ledger: Ledger | str | os.PathLike[str]) -> Iterator[Ledger]:
    """A ledger that nothing here closes while the block runs.

    ``ledger`` itself while it is open; a ledger that was closed (here because no run needed
    it, or by its user), other than an in-memory one, is replaced by the shared ledger for its
    URL. A path or URL: the shared ledger for it.

    Raises:
        LedgerPathError, NotALedgerError, SchemaVersionError: the ledger cannot be opened again.
    """
    with _SHARED_LOCK:
        if not isinstance(ledger, Ledger):
            ledger = _shared(resolve_target(ledger), ledger, None)
        elif ledger._closed and not ledger._target.memory:
            # the file it was opened on, gone since (deleted): not created again, empty
            ledger = _shared(ledger._target, ledger.url_unmasked, None, create=False)
        entries = _SHARED.get(os.getpid())
        entry = None if entries is None else entries.get(ledger.url_unmasked)
        if entry is not None and entry.ledger is not ledger:
            entry = None  # not a shared one (a ledger of the user's own): nothing to count
        if entry is not None:
            entry.uses += 1
    try:
        yield ledger
    finally:
        if entry is not None:
            with _SHARED_LOCK:
                entry.uses -= 1


def closed_here(ledger: object) -> bool:
    """Whether ``ledger`` is a shared ledger closed here because no run needed it."""
    return isinstance(ledger, Ledger) and ledger._unneeded


def _shared(
    target: Target, location: str | os.PathLike[str], holder: Any, *, create: bool = True
) -> Ledger:
    """:func:`shared_ledger`, the caller holding the lock (``create``: as :class:`Ledger`)."""
    entries = _SHARED.setdefault(os.getpid(), OrderedDict())
    entry = entries.get(target.url)
    if entry is not None:
        if not entry.ledger._closed and file_identity(target.path) == entry.identity:
            entries.move_to_end(target.url)
            if holder is not None:
                entry.holders.add(holder)
            return entry.ledger
        # closed by its user, or its file deleted or replaced: the runs still holding it find
        # out at their next write; _Entry.close then closes its pin only (the ledger closed
        # already, or not by name: the new file's WAL), not while a store has the file open
        del entries[target.url]
        entry.close()
    ledger = Ledger(location, create=create)
    entry = _Entry(ledger, file_identity(target.path), _pin(target.path))
    if holder is not None:
        entry.holders.add(holder)
    entries[target.url] = entry
    _close_unneeded(entries)
    return ledger


def _close_unneeded(entries: OrderedDict[str, _Entry]) -> None:
    """Close the least recently asked-for ledgers that nothing needs, down to KEPT_OPEN.

    The most recent one is never closed (it was just handed to a caller); a ledger a run needs
    stays open however many there are (they are bounded by the runs alive).
    """
    excess = len(entries) - KEPT_OPEN
    if excess <= 0:
        return
    for url, entry in list(entries.items())[:-1]:
        if excess <= 0:
            break
        if entry.needed():
            continue
        del entries[url]
        excess -= 1
        entry.close()


def _pin(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return path.open("rb")
    except OSError:
        return None
