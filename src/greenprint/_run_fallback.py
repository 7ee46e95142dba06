"""Where a new run goes when its ledger fails mid-study: a fallback ledger file.

A ledger this process has already written a run to is known good: when it cannot be opened or
written as a later run starts (its folder deleted, its disk full, its file replaced by one that
is not a ledger, its database server stopped), that is a failure of the measurement, not bad
input, and it never raises into the user's code. The run is made in a *fallback ledger*
instead: a SQLite file in the temporary folder, one per ledger (and user), shared by the
processes of a search (``greenprint-unsaved-<key>.db``), written as the run goes, as its
ledger would have been. One warning says so, once per ledger until it takes runs again,
naming the file and the ``greenprint ledger merge`` command that puts the runs back. Each
later run tries its ledger first: when it takes one again, one line says so; at the
interpreter's exit, one line per fallback file that took runs since then says how many it
holds and repeats the command.

A ledger never written by this process that cannot be opened is the user's input (a path that
is a directory, a missing folder, a file that is not a ledger, a wrong URL): its specific
error is raised, as before (:func:`greenprint._run_persistence._ledger_location`).

Every place a run is made (``gp.track``, each integration's callbacks and wrappers, ``greenprint
run``) goes through :meth:`greenprint._run_lifecycle.RunLifecycle.start`, which is the one
place this fallback is taken; an integration that makes runs in other processes vouches for
the ledger it checked (:func:`vouch`). A run already going whose ledger file is gone and
cannot be made again moves into the fallback file; one whose ledger refuses writes is kept
and saved apart at its end (:mod:`greenprint._run_persistence`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import GreenprintError
from greenprint._forks import renew_after_fork

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger import Ledger

__all__ = ["fallback_ledger", "is_fallback", "known_good", "vouch", "written_to"]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")


class _Fallback:
    """The fallback file of one ledger in this process, and what was said of it."""

    __slots__ = ("display", "hidden", "path", "runs", "since_said", "told")

    def __init__(self, path: Path, display: str, hidden: bool) -> None:
        self.path = path
        self.display = display  # the ledger, for messages (a URL's password masked)
        self.hidden = hidden  # a URL whose password is masked: the command says LEDGER_URL
        self.runs = 0  # runs made in the file
        self.since_said: int | None = None  # runs when the fall-back was said; None: not now
        self.told = 0  # runs the last line about the file counted

    def command(self) -> str:
        """The command that puts the file's runs into the ledger, as it can be run."""
        import shlex

        into = "LEDGER_URL" if self.hidden else shlex.quote(self.display)
        tail = " (LEDGER_URL: the ledger's URL, with its password)" if self.hidden else ""
        return f"`greenprint ledger merge {into} {shlex.quote(str(self.path))}`{tail}"


# process id -> the URLs (with passwords) of the ledgers this process wrote a run to
_KNOWN: dict[int, set[str]] = {}
# process id -> ledger URL -> its fallback
_FALLBACKS: dict[int, dict[str, _Fallback]] = {}
_LOCK = threading.Lock()
renew_after_fork(globals(), "_LOCK")


def _url(location: Any) -> str | None:
    """The full URL of a ledger or of a path or URL naming one; ``None``: none can be read."""
    from greenprint.ledger import Ledger
    from greenprint.ledger._target import resolve_target

    if isinstance(location, Ledger):
        return location.url_unmasked
    try:
        return resolve_target(location).url
    except GreenprintError:
        return None


def known_good(location: Any) -> bool:
    """Whether ``location`` names a ledger a run was written to, mid-study now.

    A ledger this process wrote a run to, one vouched for (:func:`vouch`), or the ledger of
    the run this process was started under (``GREENPRINT_PARENT_LEDGER``: a parent process's
    run is in it: ``greenprint run``'s command, a worker started inside a run).
    """
    from greenprint import _lineage

    url = _url(location)
    if url is None:
        return False
    with _LOCK:
        if url in _KNOWN.get(os.getpid(), ()):
            return True
    inherited = _lineage.inherited_parent() and _lineage.inherited_ledger()
    return bool(inherited) and _url(inherited) == url


def vouch(location: Any) -> None:
    """Take ``location`` as a ledger written mid-study, in a process that has not written it.

    For an integration that checked the ledger where it was set up and makes its runs in
    other processes (Ray Tune's workers, scikit-learn's joblib workers): a ledger failing
    there later is the study's ledger failing, not the user's input.
    """
    from greenprint.ledger._target import resolve_target

    if location is None or location is False:
        return
    url = _url(location)
    if url is None or resolve_target(url).memory:
        return
    with _LOCK:
        _KNOWN.setdefault(os.getpid(), set()).add(url)


def is_fallback(ledger: Any) -> bool:
    """Whether ``ledger`` is a fallback file of this process."""
    path = getattr(ledger, "path", None)
    if path is None:
        return False
    with _LOCK:
        return any(f.path == path for f in _FALLBACKS.get(os.getpid(), {}).values())


def written_to(ledger: Ledger) -> None:
    """A run was started in ``ledger``: known good now, and said so if it had failed before."""
    if ledger._target.memory or is_fallback(ledger):
        return
    url = ledger.url_unmasked
    with _LOCK:
        _KNOWN.setdefault(os.getpid(), set()).add(url)
        fallback = _FALLBACKS.get(os.getpid(), {}).get(url)
        if fallback is None or fallback.since_said is None:
            return
        fallback.since_said = None
        fallback.told = fallback.runs
    logger.warning(
        "greenprint: ledger %s takes runs again; the %d run(s) made while it could not are in "
        "%s: %s puts them in it",
        fallback.display,
        fallback.runs,
        fallback.path,
        fallback.command(),
    )


def fallback_ledger(location: Any, holder: Any, error: BaseException) -> Ledger:
    """The fallback ledger for a run whose known-good ledger ``location`` failed with ``error``.

    Args:
        location: the run's ledger: an open :class:`~greenprint.Ledger`, a path or a URL.
        holder: the run (kept as the fallback's holder, as its ledger would have kept it).
        error: why the ledger could not take the run.

    Returns:
        The open fallback ledger (shared by every run meant for ``location``).

    Raises:
        error: ``location`` is not a ledger this process wrote to (the user's input, or the
            fallback file itself), a :class:`~greenprint.Ledger` its user closed, or the
            fallback file cannot be opened either (said).
    """
    import hashlib
    import tempfile

    from greenprint.ledger import Ledger
    from greenprint.ledger._shared import shared_ledger
    from greenprint.ledger._target import resolve_target

    url = _url(location)
    if url is None or not known_good(location) or is_fallback(location):
        raise error
    if isinstance(location, Ledger) and location._closed and not location._unneeded:
        raise error  # closed by its user, then given to a run: the user's to open again
    with _LOCK:
        fallbacks = _FALLBACKS.setdefault(os.getpid(), {})
        fallback = fallbacks.get(url)
        if fallback is None:
            # one file per ledger and user: a search's worker processes share it (SQLite
            # takes several writers), one merge puts them all back
            user = os.getuid() if hasattr(os, "getuid") else 0
            key = hashlib.sha256(f"{user}:{url}".encode()).hexdigest()[:8]
            path = Path(tempfile.gettempdir()) / f"greenprint-unsaved-{key}.db"
            target = location._target if isinstance(location, Ledger) else resolve_target(url)
            hidden = target.path is None and target.display != url  # a password masked
            fallback = fallbacks[url] = _Fallback(path, target.display, hidden)
    try:
        ledger = shared_ledger(fallback.path, holder=holder)
    except GreenprintError as e:
        logger.warning(
            "greenprint: ledger %s cannot take a run (%s), and neither can %s (%s)",
            fallback.display,
            _reason(error),
            fallback.path,
            e,
        )
        raise error from e
    with _LOCK:
        fallback.runs += 1
        say = fallback.since_said is None
        if say:
            fallback.since_said = fallback.told = fallback.runs
    if say:
        logger.warning(
            "greenprint: ledger %s cannot take runs (%s); they are saved in %s until it can "
            "(the study goes on): %s puts them in it",
            fallback.display,
            _reason(error),
            fallback.path,
            fallback.command(),
        )
    return ledger


def _reason(error: BaseException) -> str:
    """``error`` in one line, without the ledger's name the warning gives already."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    for name in _displays():
        text = text.removeprefix(f"ledger {name}: ").replace(f"ledger {name}", "it")
    return text[:300]


def _displays() -> list[str]:
    with _LOCK:
        return [f.display for f in _FALLBACKS.get(os.getpid(), {}).values()]


def _said_at_exit() -> None:
    """One line per fallback file of this process that took runs since it was last said of."""
    with _LOCK:
        fallbacks = [f for f in _FALLBACKS.get(os.getpid(), {}).values() if f.runs > f.told]
    for fallback in fallbacks:
        logger.warning(
            "greenprint: %d run(s) meant for ledger %s are saved in %s: %s puts them in it",
            fallback.runs,
            fallback.display,
            fallback.path,
            fallback.command(),
        )


atexit.register(_said_at_exit)
