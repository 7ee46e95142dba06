"""Ledger fixtures: one test suite for every backend, PostgreSQL through a real pgserver."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import require  # tests/conftest.py
from greenprint import RunRecord

BACKENDS = ("sqlite", "postgres")
_db_numbers = itertools.count()


class PgServer:
    """A PostgreSQL server started by pgserver in a temporary directory, for this session."""

    def __init__(self, server: Any) -> None:
        self.server = server
        # pgserver gives postgresql://postgres:@/postgres?host=/tmp/...  (a unix socket)
        self.base_uri: str = server.get_uri()

    def url(self, database: str = "postgres") -> str:
        uri = self.base_uri.replace("postgresql://", "postgresql+psycopg://", 1)
        return uri.replace("/postgres?", f"/{database}?", 1)

    def new_database(self) -> str:
        name = f"gp_test_{next(_db_numbers)}"
        self.server.psql(f"CREATE DATABASE {name};")
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start a real PostgreSQL server (pgserver wheel); skip, or fail under CI, if it cannot.

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
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except (OSError, subprocess.SubprocessError) as e:
        shutil.rmtree(pgdata, ignore_errors=True)
        require(False, f"pgserver could not start PostgreSQL: {e}")
    try:
        yield PgServer(server)
    finally:
        # its data is deleted next: stop without the shutdown checkpoint of every test
        # database (pgserver's own stop writes it: 12-99 s at the suite's end)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            pgserver.pg_ctl(
                ["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=server.system_user
            )
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(
    params=[
        pytest.param(b, marks=[pytest.mark.postgres] if b == "postgres" else []) for b in BACKENDS
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A location for a fresh, not yet created ledger on the backend under test."""
    if backend == "sqlite":
        return str(tmp_path / "ledger.db")
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


def old_ledger(version: int, backend: str, ledger_url: str, tmp_path: Path) -> str:
    """A ledger of schema ``version``: a copy of its committed fixture file (SQLite), or the
    same rows loaded into the fresh PostgreSQL database ``ledger_url``."""
    import importlib

    import sqlalchemy as sa

    module = importlib.import_module(f"{__package__}.fixtures.make_v{version}")
    if backend == "sqlite":
        copy = tmp_path / f"v{version}.db"
        shutil.copyfile(getattr(module, f"V{version}_PATH"), copy)
        return str(copy)
    engine = sa.create_engine(ledger_url)
    with engine.begin() as conn:
        getattr(module, f"load_v{version}")(conn)
    engine.dispose()
    return ledger_url


@pytest.fixture
def v1_url(backend: str, ledger_url: str, tmp_path: Path) -> str:
    """The committed version-1 ledger (see :func:`old_ledger`)."""
    return old_ledger(1, backend, ledger_url, tmp_path)


@pytest.fixture
def v2_url(backend: str, ledger_url: str, tmp_path: Path) -> str:
    """The committed version-2 ledger (see :func:`old_ledger`)."""
    return old_ledger(2, backend, ledger_url, tmp_path)


@pytest.fixture
def v3_url(backend: str, ledger_url: str, tmp_path: Path) -> str:
    """The committed version-3 ledger (see :func:`old_ledger`)."""
    return old_ledger(3, backend, ledger_url, tmp_path)


@pytest.fixture
def v4_url(backend: str, ledger_url: str, tmp_path: Path) -> str:
    """The committed version-4 ledger (see :func:`old_ledger`)."""
    return old_ledger(4, backend, ledger_url, tmp_path)


def make_record(run_id: str, **overrides: Any) -> RunRecord:
    """A run with every field set to something distinctive (recent heartbeat: not lost)."""
    now = time.time()
    values: dict[str, Any] = {
        "id": run_id,
        "name": f"run-{run_id[:6]}",
        "study": "sweep",
        "status": "running",
        "started_at": now - 30.0,
        "heartbeat_at": now,
        "flush_interval_s": 10.0,
        "duration_s": 30.0,
    }
    values.update(overrides)
    return RunRecord(**values)
