"""A real PostgreSQL server for the tests: the ``pgserver`` wheel ships its binaries (no root).

One definition for every test that needs one: the ledger suite's session fixture
(``tests/ledger/conftest.py``) and the new-user studies that write to PostgreSQL from several
processes. A server that cannot start skips the test, or fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import require  # tests/conftest.py

_db_numbers = itertools.count()


class PgServer:
    """A PostgreSQL server started by pgserver in a temporary directory."""

    def __init__(self, server: Any) -> None:
        self.server = server
        # pgserver gives postgresql://postgres:@/postgres?host=/tmp/...  (a unix socket)
        self.base_uri: str = server.get_uri()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3) of ``database`` on this server."""
        uri = self.base_uri.replace("postgresql://", "postgresql+psycopg://", 1)
        return uri.replace("/postgres?", f"/{database}?", 1)

    def new_database(self) -> str:
        """A new empty database's URL."""
        name = f"gp_test_{next(_db_numbers)}"
        self.server.psql(f"CREATE DATABASE {name};")
        return self.url(name)


@contextlib.contextmanager
def _system_tools_on_path() -> Iterator[None]:
    """``/usr/sbin`` and ``/sbin`` on ``PATH`` while pgserver starts, as root.

    As root pgserver creates its user with ``useradd``, which lives in ``/usr/sbin``: a clean
    environment (``env -i PATH=/usr/local/bin:/usr/bin:/bin``, as CI may run) lacks it, and the
    first test to start a server on a fresh machine failed with "No such file or directory:
    'useradd'".
    """
    path = os.environ.get("PATH", "")
    if os.geteuid() != 0:
        yield
        return
    missing = [d for d in ("/usr/sbin", "/sbin") if d not in path.split(os.pathsep)]
    os.environ["PATH"] = os.pathsep.join([path, *missing]) if path else os.pathsep.join(missing)
    try:
        yield
    finally:
        os.environ["PATH"] = path


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Start a real PostgreSQL server; stop it and delete its data after.

    pgserver runs initdb/postgres as the unprivileged system user ``pgserver`` when the tests
    run as root (creating that user with useradd if needed), and listens on a unix socket only.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            import pgserver
    except ImportError:
        require(False, "pgserver is not installed (pip install -e '.[dev]')")
    # A short path: the unix socket path must stay under ~100 characters. As root, pgserver
    # makes every parent of pgdata traversable by its user: use /tmp rather than a private
    # TMPDIR so that it never has to change the permissions of a home directory.
    parent = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
    pgdata = Path(tempfile.mkdtemp(prefix="gp-pg-", dir=parent))
    try:
        with _system_tools_on_path():
            server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except (OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(pgdata, ignore_errors=True)
        require(False, f"pgserver could not start PostgreSQL: {e}")
    try:
        yield PgServer(server)
    finally:
        # its data is deleted next: stop without the shutdown checkpoint of every database
        # (pgserver's own stop writes it: 12-99 s at the ledger suite's end)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            pgserver.pg_ctl(
                ["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=server.system_user
            )
        # pgserver's cleanup asks psutil whether the postmaster still runs, then signals it:
        # when the stop above lands between the two, psutil raises NoSuchProcess for a server
        # that is already down (stop 34's CI failed on it at the session fixture's teardown)
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
