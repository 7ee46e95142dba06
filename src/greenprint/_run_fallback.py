"""Where a new run goes when its ledger fails mid-study: a fallback ledger file.

A ledger this process has already written a run to is known good: when it cannot be opened or
written as a later run starts (its folder deleted, its disk full, its file replaced by one that
is not a ledger, its database server stopped), that is a failure of the measurement, not bad
input, and it never raises into the user's code. The run is made in a *fallback ledger*
instead: a SQLite file in the user's own folder of the temporary folder, one per ledger (and
user), shared by the processes of a search (``greenprint-<uid>/greenprint-unsaved-<key>.db``,
:func:`fallback_path`), written as the run goes, as its ledger would have been. One warning
says so, once per ledger (and process) until it takes runs again,
naming the file and the ``greenprint ledger merge`` command that puts the runs back. Each
later run tries its ledger first: when it takes one again, one line says so; at the
interpreter's exit, one line per fallback file that took runs since then says how many it
holds and repeats the command; ``greenprint ledger ls`` and ``report`` say it too while the
ledger lacks the file's runs (:func:`waiting`).

A ledger never written by this process that cannot be opened is the user's input (a path that
is a directory, a missing folder, a file that is not a ledger, a wrong URL): its specific
error is raised, as before (:func:`greenprint._run_options._ledger_location`).

Every place a run is made (``gp.track``, each integration's callbacks and wrappers, ``greenprint
run``) goes through :meth:`greenprint._run_lifecycle.RunLifecycle.start`, which is the one
place this fallback is taken; an integration that makes runs in other processes vouches for
the ledger it checked (:func:`vouch`). A run already going whose ledger file is gone and
cannot be made again moves into the fallback file; one whose ledger refuses writes is kept
and saved apart at its end (:mod:`greenprint._run_persistence`).
"""

from __future__ import annotations

import atexit
import hashlib  # here, not in _key: a process's first run would pay its import (~1 ms)
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from greenprint import _fallback_said, _ledger_backoff
from greenprint._exceptions import GreenprintError
from greenprint._forks import renew_after_fork
from greenprint._format import count_of

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.ledger import Ledger

__all__ = [
    "attempted",
    "can_fall_back",
    "counted",
    "fallback_ledger",
    "fallback_path",
    "held",
    "is_fallback",
    "known_good",
    "merge_command",
    "password_masked",
    "private_folder",
    "vouch",
    "waiting",
    "written_to",
]

#: The run's messages keep the logger name they had in one module: "greenprint.tracking".
logger = logging.getLogger("greenprint.tracking")

T = TypeVar("T")


class _Fallback:
    """The fallback file of one ledger in this process, and what was said of it."""

    __slots__ = ("display", "hidden", "marked", "path", "quiet", "runs", "since_said", "told")

    def __init__(self, path: Path, display: str, hidden: bool) -> None:
        self.path = path
        self.display = display  # the ledger, for messages (a URL's password masked)
        self.hidden = hidden  # a URL whose password is masked: the command says LEDGER_URL
        self.runs = 0  # runs made in the file
        self.since_said: int | None = None  # runs when the fall-back was said; None: not now
        self.told = 0  # runs the last line about the file counted
        # the fall-back's marker is this process's (greenprint._fallback_said); another
        # process of the study said it (this one says nothing of it, at its exit neither)
        self.marked = False
        self.quiet = False

    def command(self) -> str:
        """The command that puts the file's runs into the ledger, as it can be run."""
        tail = " (set LEDGER_URL to the ledger's URL, with its password)" if self.hidden else ""
        return merge_command(self.display, self.path, hidden=self.hidden) + tail


def merge_command(into: str, path: Path, *, hidden: bool) -> str:
    """```greenprint ledger merge INTO FILE``` (in backquotes), as it can be pasted in a shell.

    ``hidden``: ``into`` is a URL whose password is masked; the command then reads
    ``"$LEDGER_URL"`` (a bare LEDGER_URL, pasted as printed, merged the runs into a new file
    ./LEDGER_URL, exit 0), and the caller says to set it.
    """
    import shlex

    ledger = '"$LEDGER_URL"' if hidden else shlex.quote(into)
    return f"`greenprint ledger merge {ledger} {shlex.quote(str(path))}`"


def password_masked(ledger: Any) -> bool:
    """Whether ``ledger`` (an open :class:`~greenprint.Ledger`) shows its URL without a password.

    A command printed for it must not hold the URL (:func:`merge_command`'s ``hidden``).
    """
    return ledger.path is None and ledger.url != ledger.url_unmasked


# the URLs (with passwords) of the ledgers this process, or the process it was forked from,
# wrote a run to: a forked worker (multiprocessing's fork Pool) runs the same study
_KNOWN: set[str] = set()
# process id -> ledger URL -> its fallback
_FALLBACKS: dict[int, dict[str, _Fallback]] = {}
# the URLs of the ledgers whose fallback file could not take a run either (said once)
_NEITHER_SAID: set[str] = set()
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


#: The ledgers written mid-study, for the processes this one starts (a spawned or forkserver
#: Pool's workers: macOS's default, and Linux's from Python 3.14): keys of their URLs, never
#: the URLs (a password)
KNOWN_ENV = "GREENPRINT_STUDY_LEDGERS"


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _know(url: str) -> None:
    """``url`` is a ledger written mid-study, here and in the processes started from now."""
    with _LOCK:
        if url in _KNOWN:
            return
        _KNOWN.add(url)
        keys = set(filter(None, os.environ.get(KNOWN_ENV, "").split(",")))
        keys.add(_key(url))
        os.environ[KNOWN_ENV] = ",".join(sorted(keys))


def known_good(location: Any) -> bool:
    """Whether ``location`` names a ledger a run was written to, mid-study now.

    A ledger this process, or the one it was forked or started from (:data:`KNOWN_ENV`), wrote
    a run to, one vouched for (:func:`vouch`), or the ledger of the run this process was
    started under (``GREENPRINT_PARENT_LEDGER``: a parent process's run is in it: ``greenprint
    run``'s command, a worker started inside a run).
    """
    from greenprint import _lineage

    url = _url(location)
    if url is None:
        return False
    with _LOCK:
        if url in _KNOWN:
            return True
    if _key(url) in os.environ.get(KNOWN_ENV, "").split(","):  # from the process that started it
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
    _know(url)


def can_fall_back(location: Any) -> bool:
    """Whether a run meant for ``location`` that it cannot take is a measurement's failure.

    True for a ledger written mid-study (:func:`known_good`), not a fallback file itself, nor
    a :class:`~greenprint.Ledger` its user closed and then gave to a run (the user's to open
    again): the run falls back (:func:`fallback_ledger`) and never raises into the user's code.
    """
    from greenprint.ledger import Ledger

    if _url(location) is None or not known_good(location) or is_fallback(location):
        return False
    return not (isinstance(location, Ledger) and location._closed and not location._unneeded)


def attempted(location: Any, attempt: Callable[[], T], *, retry: bool = True) -> T:
    """``attempt()``: a run's opening of, or first write to, its ledger ``location``.

    A ledger a run may fall back from (:func:`can_fall_back`) that took long to fail is not
    tried again for a while (:mod:`greenprint._ledger_backoff`): its error is raised at once,
    and the run falls back without waiting for it. ``retry``: see
    :func:`greenprint._ledger_backoff.skipped`. The usual case (nothing waits, the attempt
    succeeds) reads no URL.

    Raises:
        GreenprintError: ``attempt``'s, or the one the ledger failed with (not tried now).
    """
    if _ledger_backoff.waiting():
        url = _url(location)
        if url is not None and can_fall_back(location):
            error = _ledger_backoff.skipped(url, retry=retry)
            if error is not None:
                raise error.with_traceback(None)
    began = time.monotonic()
    try:
        return attempt()
    except GreenprintError as e:
        took_s = time.monotonic() - began
        if took_s >= _ledger_backoff.SLOW_FAILURE_S or _ledger_backoff.waiting():
            url = _url(location)
            if url is not None and can_fall_back(location):
                _ledger_backoff.failed(url, e, took_s)
        raise


def is_fallback(ledger: Any) -> bool:
    """Whether ``ledger`` is a fallback file of this process."""
    path = getattr(ledger, "path", None)
    if path is None:
        return False
    with _LOCK:
        return any(f.path == path for f in _FALLBACKS.get(os.getpid(), {}).values())


def written_to(ledger: Ledger) -> None:
    """A run was started in ``ledger``: known good now, and said so if it had failed before."""
    if ledger._target.memory:
        return
    if is_fallback(ledger):  # its ledger's runs are written again: said again if refused
        with _LOCK:
            for url, kept in _FALLBACKS.get(os.getpid(), {}).items():
                if kept.path == ledger.path:
                    _NEITHER_SAID.discard(url)
        return
    url = ledger.url_unmasked
    _know(url)
    _ledger_backoff.answered(url)
    with _LOCK:
        _NEITHER_SAID.discard(url)
        fallback = _FALLBACKS.get(os.getpid(), {}).get(url)
        if fallback is None or fallback.since_said is None:
            return
        fallback.since_said = None
        fallback.told = fallback.runs
        alone = not fallback.marked and not fallback.quiet  # said here, without a marker
        fallback.marked = fallback.quiet = False
    if not _fallback_said.unmark(fallback.path) and not alone:
        return  # another process of the study said it
    logger.warning(
        "greenprint: ledger %s takes runs again; the %s made while it could not %s in %s: %s "
        "puts %s",
        fallback.display,
        count_of(fallback.runs, "run"),
        "is" if fallback.runs == 1 else "are",
        fallback.path,
        fallback.command(),
        "it in the ledger" if fallback.runs == 1 else "them in it",
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
    from greenprint.ledger import Ledger
    from greenprint.ledger._shared import shared_ledger
    from greenprint.ledger._target import resolve_target

    if not can_fall_back(location):
        raise error
    url = _url(location) or ""  # read by can_fall_back
    target = location._target if isinstance(location, Ledger) else resolve_target(url)
    path: Path | None = None
    try:
        # one file per ledger and user: a search's worker processes share it (SQLite takes
        # several writers), one merge puts them all back; its folder checked each time (a
        # temporary folder's cleaner may have taken it)
        path = fallback_path(url)
        ledger = shared_ledger(path, holder=holder)
    except (GreenprintError, OSError) as e:
        _say_neither(url, target.display, error, e, path)
        raise error from e
    with _LOCK:
        fallbacks = _FALLBACKS.setdefault(os.getpid(), {})
        fallback = fallbacks.get(url)
        if fallback is None or fallback.path != path:
            hidden = target.path is None and target.display != url  # a password masked
            fallback = fallbacks[url] = _Fallback(path, target.display, hidden)
        say = fallback.since_said is None
        if say:  # the run it is for is counted as it starts there (:func:`counted`)
            fallback.since_said = fallback.runs
            fallback.told = fallback.runs + 1
    if say:  # once per study: not by each of a Pool's workers
        first = _fallback_said.first_to_say(fallback.path)
        with _LOCK:
            fallback.marked = first is True
            fallback.quiet = first is False
        say = first is not False
    if say:
        logger.warning(
            "greenprint: ledger %s cannot take runs (%s); they are saved in %s until it can "
            "(the study goes on%s): %s puts them in it",
            fallback.display,
            _reason(error),
            fallback.path,
            _not_waited(url),
            fallback.command(),
        )
    return ledger


def _not_waited(url: str) -> str:
    """What the fallback's warning adds for a ledger that took long to fail: not waited for."""
    waits = _ledger_backoff.retry_in(url)
    if waits is None:
        return ""
    took_s, retry_s = waits
    return (
        f"; it took {took_s:.0f} s to fail, so the next runs go to the file without waiting "
        f"for it, and it is tried again in {retry_s:.0f} s"
    )


def _user() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


# the private folder of this process when the user's usual one cannot be trusted
_OWN_FOLDER: list[Path] = []


def _usual_folder() -> Path:
    """``TMPDIR/greenprint-<uid>``: the user's folder of fallback files, where it should be."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"greenprint-{_user()}"


def _own_folder(info: os.stat_result) -> bool:
    """Whether ``info`` (an ``lstat``) is a folder of this user's own, not a link."""
    import stat

    return stat.S_ISDIR(info.st_mode) and (not hasattr(os, "getuid") or info.st_uid == _user())


def private_folder() -> Path:
    """The user's own folder for fallback files (and runs saved apart at exit) in ``TMPDIR``.

    ``greenprint-<uid>`` in ``TMPDIR``, readable by its user only (0700): the temporary folder
    is shared by a machine's users, and a run's record (its command, host, parameters) is
    theirs. A search's processes share it. A path of that name that is not a folder of this
    user's own, readable by them only (another user made it, or a link), is never written to:
    a new private folder of this process's own is made then (``mkdtemp``).

    Raises:
        OSError: the temporary folder takes no folder (read-only, full).
    """
    import tempfile

    folder = _usual_folder()
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = folder.lstat()
    if _own_folder(info):
        if info.st_mode & 0o077:
            folder.chmod(0o700)
        return folder
    with _LOCK:
        if _OWN_FOLDER and _OWN_FOLDER[0].is_dir():
            return _OWN_FOLDER[0]
        own = Path(tempfile.mkdtemp(prefix=f"greenprint-{_user()}-"))
        _OWN_FOLDER[:] = [own]
    logger.warning(
        "greenprint: %s is not a folder of this user's own; this process's fallback files go to %s",
        folder,
        own,
    )
    return own


def _name(url: str) -> str:
    key = hashlib.sha256(f"{_user()}:{url}".encode()).hexdigest()[:8]
    return f"greenprint-unsaved-{key}.db"


def fallback_path(url: str) -> Path:
    """The fallback file of the ledger at ``url`` for this user (its folder made if missing).

    Raises:
        OSError: the temporary folder takes no folder.
    """
    return private_folder() / _name(url)


def waiting(ledger: Ledger) -> str | None:
    """A line saying that runs meant for ``ledger`` wait in its fallback file, if some do.

    For the commands that read a ledger (``ledger ls``, ``report``): a user who missed the
    warnings learns there that the ledger lacks runs, and the command that puts them in it.
    The runs waiting are those of this user's fallback file for the ledger that the ledger
    lacks, or holds unfinished (``running``, ``lost``) where the file has their end. Never
    raises; nothing is made (the folder, the file) where there is none.
    """
    from greenprint.ledger import Ledger as _Ledger

    try:
        folder = _usual_folder()
        if not _own_folder(folder.lstat()):
            return None  # not this user's: never read
        path = folder / _name(ledger.url_unmasked)
        if ledger._target.memory or not path.is_file() or ledger.path == path:
            return None
        kept = _Ledger(path, create=False)
        try:
            runs = kept.runs()
        finally:
            kept.close()
        count = 0
        for run in runs:
            try:
                there = ledger.run(run.id)
            except GreenprintError:  # not in the ledger
                count += 1
                continue
            if there.status in ("running", "lost") and run.status not in ("running", "lost"):
                count += 1
    except Exception:  # a hint only: an unreadable file, a ledger gone meanwhile
        logger.debug("greenprint: could not read the fallback file of %s", ledger.url)
        return None
    if not count:
        return None
    command = _Fallback(path, str(ledger.path or ledger.url), password_masked(ledger)).command()
    wait, them, they, puts = (
        ("waits", "it", "it", "it in the ledger")
        if count == 1
        else ("wait", "them", "they", "them in it")
    )
    return (
        f"note: {count_of(count, 'run')} meant for this ledger {wait} in {path} (its ledger "
        f"could not take {them} when {they} ran): {command} puts {puts}"
    )


def counted(ledger: Any) -> None:
    """A run was started in ``ledger``, a fallback file of this process: counted.

    Each run once, as it starts there: one that fell back, one nested in a run made there (a
    trial's parts take their parent's ledger), one moved there mid-run. The lines that say how
    many runs the file holds read the count.
    """
    path = getattr(ledger, "path", None)
    with _LOCK:
        for fallback in _FALLBACKS.get(os.getpid(), {}).values():
            if fallback.path == path:
                fallback.runs += 1


def held(location: Any, error: BaseException, again: BaseException) -> None:
    """Say (once per ledger) that a run is kept in memory: its fallback file refused it too.

    Args:
        location: the run's ledger (an open :class:`~greenprint.Ledger`).
        error: why the ledger could not take the run.
        again: why its fallback file could not either.
    """
    url = _url(location)
    if url is None:  # pragma: no cover - can_fall_back read it
        return
    with _LOCK:
        fallback = _FALLBACKS.get(os.getpid(), {}).get(url)
    path = None if fallback is None else fallback.path
    display = getattr(location, "_target", None)
    _say_neither(url, getattr(display, "display", url), error, again, path)


def _say_neither(
    url: str, display: str, error: BaseException, again: BaseException, path: Path | None
) -> None:
    with _LOCK:  # once, not at each run, until a fallback file takes runs again
        if url in _NEITHER_SAID:
            return
        _NEITHER_SAID.add(url)
    logger.warning(
        "greenprint: ledger %s cannot take a run (%s), and neither can a fallback file in %s "
        "(%s); the run goes on, kept in memory, written when its ledger can take it (saved "
        "apart at exit if not)",
        display,
        _reason(error),
        "the temporary folder" if path is None else path.parent,
        _reason(again),
    )


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
        fallbacks = [
            f for f in _FALLBACKS.get(os.getpid(), {}).values() if f.runs > f.told and not f.quiet
        ]
    for fallback in fallbacks:
        logger.warning(
            "greenprint: %s meant for ledger %s %s saved in %s: %s puts %s",
            count_of(fallback.runs, "run"),
            fallback.display,
            "is" if fallback.runs == 1 else "are",
            fallback.path,
            fallback.command(),
            "it in the ledger" if fallback.runs == 1 else "them in it",
        )


atexit.register(_said_at_exit)
