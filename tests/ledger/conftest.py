"""Ledger fixtures: one test suite for every backend, PostgreSQL through a real pgserver."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from _pg import PgServer  # tests/_pg.py
from greenprint import RunRecord

BACKENDS = ("sqlite", "postgres")


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


@pytest.fixture
def v5_url(backend: str, ledger_url: str, tmp_path: Path) -> str:
    """The committed version-5 ledger (see :func:`old_ledger`)."""
    return old_ledger(5, backend, ledger_url, tmp_path)


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
