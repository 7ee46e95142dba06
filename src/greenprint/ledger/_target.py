"""Where a ledger lives: a SQLite file (or memory) or a PostgreSQL URL; checked before opening.

Nothing here imports SQLAlchemy. The checks refuse, without touching anything, a path that is a
directory, whose parent is missing or not a directory, that cannot be created, or an existing
file that is not a SQLite database.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from urllib.parse import unquote

from greenprint._exceptions import LedgerPathError, NotALedgerError
from greenprint.ledger._handles import file_identity, is_open

__all__ = ["SQLITE_HEADER", "Target", "mask_passwords", "mask_url", "resolve_target"]

SQLITE_HEADER = b"SQLite format 3\x00"
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


#: Why a ledger may be missing, said with "no ledger at PATH".
_NOTHING_RECORDED = (
    ": nothing was recorded there yet (gp.track(...) or `greenprint run -- CMD` writes it), or "
    "the ledger is elsewhere (give its path or URL, or set GREENPRINT_LEDGER)"
)


class Target:
    """A resolved ledger location (immutable).

    A plain slotted class with read-only properties: a frozen dataclass costs about 0.6 ms of CPU
    to define, which every tracked run's first start would pay.

    Attributes:
        backend: ``"sqlite"`` or ``"postgresql"``.
        url: the SQLAlchemy URL (with its password, if any).
        path: the SQLite file, absolute; ``None`` for PostgreSQL and in-memory SQLite.
    """

    __slots__ = ("_backend", "_path", "_relative", "_url")

    def __init__(
        self, backend: str, url: str, path: Path | None = None, relative: str | None = None
    ) -> None:
        self._backend = backend
        self._url = url
        self._path = path
        self._relative = relative  # the path of a sqlite:/// URL given relative (messages)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (with its password, if any)."""
        return self._url

    @property
    def path(self) -> Path | None:
        """The SQLite file, absolute; ``None`` for PostgreSQL and in-memory SQLite."""
        return self._path

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Target):
            return NotImplemented
        return (self._backend, self._url, self._path) == (other._backend, other._url, other._path)

    def __hash__(self) -> int:
        return hash((self._backend, self._url, self._path))

    def __repr__(self) -> str:
        return (
            f"Target(backend={self._backend!r}, url={mask_url(self._url)!r}, path={self._path!r})"
        )

    @property
    def memory(self) -> bool:
        """Whether this is an in-memory SQLite ledger (lives as long as the Ledger object)."""
        return self.backend == "sqlite" and self.path is None

    @property
    def display(self) -> str:
        """A short name for messages: the file path, or the URL with the password masked."""
        return str(self.path) if self.path is not None else mask_url(self.url)

    def _absolute_hint(self) -> str:
        """What a ``sqlite:///`` URL meant, when the user likely meant an absolute path.

        SQLAlchemy's ``sqlite:///tmp/x.db`` (three slashes) is ``tmp/x.db`` relative to the
        working directory; the absolute ``/tmp/x.db`` takes four. Said when the file is missing
        and the absolute reading's directory exists; else ``""``.
        """
        if self._relative is None:
            return ""
        absolute = Path("/" + self._relative)
        if not absolute.parent.is_dir():
            return ""
        return (
            f" (a sqlite:/// URL with three slashes is relative to the working directory; "
            f"the absolute path {absolute} takes four: sqlite:///{absolute})"
        )

    def prepare(self, *, create: bool, dry_run: bool = False) -> bool:
        """Check a SQLite path before opening it; create an empty file if allowed and missing.

        Args:
            create: whether a missing ledger may be created.
            dry_run: check only: a missing file that could be created is not created (a run
                checks its ledger when it is made and opens it when it starts).

        Returns:
            ``True`` if this call created the (empty) file, so a failed open can remove it.

        Raises:
            LedgerPathError: a directory, a missing or non-directory parent, a path that cannot
                be created, or (``create=False``) no ledger there.
            NotALedgerError: an existing non-empty file that is not a SQLite database.
        """
        path = self.path
        if path is None:
            return False
        if path.is_dir():
            raise LedgerPathError(
                f"ledger path {path} is a directory; give a file such as {path / 'greenprint.db'}"
            )
        if path.exists():
            if not path.is_file():
                raise LedgerPathError(f"ledger path {path} is not a regular file")
            if is_open(file_identity(path)):
                # a store of this process has it open (so it is a SQLite database), and
                # closing a handle of ours on it would release that store's locks (_handles)
                return False
            try:
                with path.open("rb") as fh:
                    header = fh.read(len(SQLITE_HEADER))
            except OSError as e:
                raise LedgerPathError(f"cannot read ledger {path}: {e.strerror or e}") from e
            if not header:
                if not create:
                    raise LedgerPathError(f"no ledger at {path} (the file is empty)")
                return False
            if header != SQLITE_HEADER:
                raise NotALedgerError(
                    f"{path} is not a greenprint ledger (not a SQLite database); left untouched"
                )
            return False
        if not create:
            raise LedgerPathError(
                f"no ledger at {path}{self._absolute_hint() or _NOTHING_RECORDED}"
            )
        parent = path.parent
        if not parent.exists():
            raise LedgerPathError(
                f"cannot create ledger {path}: directory {parent} does not exist; create it "
                f"first (mkdir -p {shlex.quote(str(parent))}) or give a path in an existing one"
                + self._absolute_hint()
            )
        if not parent.is_dir():
            raise LedgerPathError(f"cannot create ledger {path}: {parent} is not a directory")
        if dry_run:
            return False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # another process created it meanwhile
            return False
        except OSError as e:
            raise LedgerPathError(f"cannot create ledger {path}: {e.strerror or e}") from e
        os.close(fd)
        return True


#: ``scheme://user:`` then the password as SQLAlchemy reads it (up to the first ``@``: a ``/``,
#: ``?``, ``#`` or ``:`` in it is the password's), then any ``...@`` before the host's end: the
#: rest of a password whose ``@`` was not written ``%40``.
_USERINFO = re.compile(r"^[^:/@]*(?::[^@]*)?@")  # SQLAlchemy's ``user:password@``
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):[^@]*@(?:[^/?]*@)?")


#: A password given as a query parameter (libpq's ``?password=``, which psycopg and SQLAlchemy
#: pass on): up to the next parameter, or where a command line's word ends.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s'\"]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``.

    The password is what SQLAlchemy connects with (everything from the user's ``:`` to the first
    ``@``, whatever ``/``, ``?`` or ``#`` it holds), and an unencoded ``@`` in it hides the rest of
    it too: ``postgresql://bob:a@b@db/gp`` reads ``postgresql://bob:***@db/gp``. A password in
    the query (``postgresql://bob@/gp?host=/run/pg&password=pw``) reads ``password=***``.
    """
    masked = _PASSWORD.sub(r"\1:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\1***", masked) if "password=" in masked.lower() else masked


#: A URL's ``user:password@`` anywhere in a text: the password runs to the ``@`` (as in
#: :func:`mask_url`), and stops at white space or a quote, where a command line's word ends.
_PASSWORD_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^@\s'\"]+@")


def mask_passwords(text: str) -> str:
    """``text`` with the password of each URL in it replaced by ``***``.

    For a recorded command line: ``python train.py --ledger postgresql://bob:pw@db/gp`` is
    stored as ``python train.py --ledger postgresql://bob:***@db/gp`` (a ``?password=`` of a
    URL's query as ``password=***``), so that ``ledger show``,
    exports and reports never print a password that a script was given on its command line.
    """
    if "://" not in text:
        return text
    masked = _PASSWORD_IN_TEXT.sub(r"\1:***@", text)
    return _QUERY_PASSWORD.sub(r"\1***", masked) if "password=" in masked.lower() else masked


def resolve_target(location: str | os.PathLike[str]) -> Target:
    """Resolve a path or URL to a :class:`Target`.

    Accepted: a file path (SQLite), ``":memory:"``, ``sqlite:///relative.db``,
    ``sqlite:////absolute.db``, ``sqlite://`` (memory), ``postgresql+psycopg://...`` (also
    ``postgresql://`` and ``postgres://``, which use psycopg 3).

    Raises:
        LedgerPathError: an empty location or an unsupported URL scheme.
    """
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if not isinstance(location, str):
        raise LedgerPathError(f"a ledger is a path or URL, not {type(location).__name__}")
    text = location.strip()
    if not text:
        # "$LEDGER_URL" of a merge command greenprint printed, the variable not set
        raise LedgerPathError("the ledger path is empty (an unset shell variable?)")
    if text == ":memory:":
        return Target("sqlite", "sqlite://")
    match = _SCHEME.match(text)
    if match is None:
        return _sqlite_file(Path(text))
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme in ("sqlite", "sqlite+pysqlite"):
        database = unquote(rest.split("?", 1)[0].split("#", 1)[0])
        if database.startswith("/"):
            database = database[1:]
        if database in ("", ":memory:"):
            return Target("sqlite", "sqlite://")
        target = _sqlite_file(Path(database))
        if not database.startswith("/"):  # sqlite:///x.db: relative (said in messages)
            target._relative = database
        return target
    if scheme in _POSTGRES_SCHEMES:
        _check_authority(text, rest)
        return Target("postgresql", "postgresql+psycopg://" + rest)
    raise LedgerPathError(
        f"unsupported ledger URL scheme {scheme!r}: use a file path, sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST/DBNAME"
    )


def _check_authority(text: str, rest: str) -> None:
    """Refuse a PostgreSQL URL whose host or port cannot be what the user meant.

    Read as SQLAlchemy reads it (the user information ends at the first ``@``): an ``@`` left in
    the host is a password's unencoded ``@`` (the driver named the host, the password's tail in
    it, and failed after a DNS lookup of it), and a port that is not a number raised a bare
    ``ValueError`` out of SQLAlchemy.

    Raises:
        LedgerPathError: one line, the password masked.
    """
    authority = re.split(r"[/?]", _USERINFO.sub("", rest, count=1), maxsplit=1)[0]
    if "@" in authority:
        raise LedgerPathError(
            f"bad ledger URL {mask_url(text)}: more than one '@' before the host; write an '@' "
            "of the user name or password as %40"
        )
    if authority.startswith("["):  # [IPv6]:port
        after = authority[authority.find("]") + 1 :] if "]" in authority else "?"
    else:
        after = authority[authority.find(":") :] if ":" in authority else ""
    if after and not (after.startswith(":") and after[1:].isdigit()):
        raise LedgerPathError(
            f"bad ledger URL {mask_url(text)}: the port after the host must be a number "
            "(HOST:5432), or leave it out with its ':'"
        )


def _sqlite_file(path: Path) -> Target:
    absolute = Path(os.path.abspath(path.expanduser()))
    # Escape what would end the path in a URL, so that the URL resolves back to this file.
    escaped = str(absolute).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    return Target("sqlite", "sqlite:///" + escaped, absolute)
