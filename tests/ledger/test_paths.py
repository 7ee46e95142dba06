"""Where a ledger may live, and what is refused without being touched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.ledger import Ledger

from .conftest import make_record


def snapshot(directory: Path) -> dict[str, str]:
    """Every file in a directory with the hash of its bytes (sidecar files included)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


@pytest.mark.parametrize(
    "content",
    [
        b"these are my notes, not a database\n",
        b"\x00\x01\x02binary garbage" * 100,
        b"SQLite format 3\x00" + b"\xff" * 200,  # a SQLite header, then garbage
    ],
    ids=["text", "binary", "corrupt-sqlite"],
)
def test_a_file_that_is_not_a_ledger_is_refused_untouched(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    before = snapshot(tmp_path)
    for create in (True, False):
        with pytest.raises(gp.NotALedgerError, match="not a greenprint ledger"):
            Ledger(path, create=create)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path, journal):
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'ada@example.org')")
    conn.commit()
    conn.close()
    before = snapshot(tmp_path)
    with pytest.raises(gp.NotALedgerError, match="users"):
        Ledger(path)
    assert snapshot(tmp_path) == before


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(gp.LedgerPathError, match="is a directory"):
        Ledger(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_parent_is_refused(tmp_path):
    with pytest.raises(gp.LedgerPathError, match="does not exist"):
        Ledger(tmp_path / "no" / "such" / "dir" / "ledger.db")
    assert list(tmp_path.iterdir()) == []


def test_a_path_under_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(gp.LedgerPathError, match="not a directory"):
        Ledger(blocker / "ledger.db")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("path", ["/proc/greenprint-test.db", "/sys/greenprint-test.db"])
def test_an_unwritable_place_is_refused(path):
    # The tests run as root, so chmod cannot make a directory unwritable; /proc and /sys are.
    if not Path(path).parent.is_dir():
        pytest.skip(f"{Path(path).parent} is not mounted")
    with pytest.raises(gp.LedgerPathError, match="cannot create ledger"):
        Ledger(path)
    assert not Path(path).exists()


def test_a_missing_ledger_is_not_created_when_create_is_false(tmp_path):
    with pytest.raises(gp.LedgerPathError, match="no ledger"):
        Ledger(tmp_path / "ledger.db", create=False)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_becomes_a_ledger_only_when_allowed(tmp_path):
    path = tmp_path / "ledger.db"
    path.touch()
    os.utime(path, (0, 0))  # not one being made just now (test_being_made_s37), so said at once
    with pytest.raises(gp.LedgerPathError, match="empty"):
        Ledger(path, create=False)
    assert path.read_bytes() == b""
    with Ledger(path) as led:
        led.start_run(make_record("empty000"))
    with Ledger(path, create=False) as led:
        assert led.run("empty000").id == "empty000"


def test_a_new_ledger_uses_wal(tmp_path):
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(
    "location",
    ["ledger.db", "sqlite:///ledger.db", "sqlite+pysqlite:///ledger.db"],
)
def test_relative_paths_and_sqlite_urls(tmp_path, monkeypatch, location):
    monkeypatch.chdir(tmp_path)
    with Ledger(location) as led:
        assert led.path == tmp_path / "ledger.db"
        assert led.url == f"sqlite:///{tmp_path / 'ledger.db'}"
    assert (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("name", ["with space.db", "what?.db", "100%#1.db", "ünï.db"])
def test_the_url_of_a_file_ledger_opens_the_same_file(tmp_path, name):
    """Child processes reopen a ledger from its URL (GREENPRINT_PARENT_LEDGER)."""
    with Ledger(tmp_path / name) as led:
        led.start_run(make_record("urlround"))
        url = led.url_unmasked
    with Ledger(url, create=False) as again:
        assert again.path == tmp_path / name and again.run("urlround").id == "urlround"


def test_an_absolute_sqlite_url(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'abs.db'}") as led:
        assert led.path == tmp_path / "abs.db"


def test_in_memory_ledger(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for location in (":memory:", "sqlite://", "sqlite:///:memory:"):
        with Ledger(location) as led:
            led.start_run(make_record("memory00"))
            assert led.run("memo").id == "memory00" and led.path is None
    assert list(tmp_path.iterdir()) == []


def test_default_ledger_comes_from_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Ledger() as led:
        assert led.path == tmp_path / "greenprint.db"
    (tmp_path / "greenprint.toml").write_text('ledger = "from-toml.db"\n')
    with Ledger() as led:
        assert led.path == tmp_path / "from-toml.db"
    monkeypatch.setenv("GREENPRINT_LEDGER", str(tmp_path / "from-env.db"))
    with Ledger() as led:
        assert led.path == tmp_path / "from-env.db"


@pytest.mark.parametrize("location", ["mysql://u@h/db", "http://example.org/ledger", "  "])
def test_unsupported_locations(location):
    with pytest.raises(gp.LedgerPathError):
        Ledger(location)


def test_an_unreachable_postgres_server_is_one_clear_error(tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://nobody@/nodb?host={tmp_path / 'no-socket-here'}"
    with pytest.raises(gp.LedgerPathError, match="cannot use ledger .*nodb"):
        Ledger(url)


def test_postgres_without_psycopg_names_the_extra():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import greenprint as gp\n"
        "try:\n"
        "    gp.Ledger('postgresql+psycopg://u@/db?host=/nonexistent')\n"
        "except gp.MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'greenprint[postgres]'" in out.stdout
