"""Session 37: a ledger read while another process is making it is waited for, not refused.

A run makes its ledger file, then (milliseconds later) its tables. A reader in between
(``greenprint ledger ls`` or ``greenprint report`` in a second terminal as a training starts;
a test that polled for the file, which failed the suite once) was told "no ledger at ... (the
file is empty)", or "(no tables)" once the file had SQLite's header. Now a reader waits up to
``BEING_MADE_S`` for a file written that recently to become a ledger; an empty file that is
older, or that nobody fills, is refused as before.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.ledger import _store

WRITER = """
import sys, time
import greenprint as gp

time.sleep(float(sys.argv[2]))
with gp.Ledger(sys.argv[1]) as led:
    led.start_run(gp.RunRecord(id="made0001", name="first", study="s"))
print("written", flush=True)
"""


def _writer(path: Path, after_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(after_s)], stdout=subprocess.PIPE, text=True
    )


def test_a_file_made_just_now_is_read_once_its_writer_has_made_the_ledger(tmp_path):
    path = tmp_path / "greenprint.db"
    path.touch()  # the run's first step: the file, empty
    writer = _writer(path, 0.3)  # then its tables and its run
    try:
        with gp.Ledger(path, create=False) as led:
            assert [r.name for r in led.runs()] == ["first"]
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and "written" in out


def test_a_file_with_sqlites_header_and_no_tables_yet_is_waited_for_too(tmp_path):
    path = tmp_path / "greenprint.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # the header written, the tables not yet
    conn.close()
    writer = _writer(path, 0.3)
    try:
        with gp.Ledger(path, create=False) as led:
            assert [r.name for r in led.runs()] == ["first"]
    finally:
        writer.communicate(timeout=60)
    assert writer.returncode == 0


def test_an_empty_file_nobody_fills_is_refused_as_before(tmp_path, monkeypatch):
    monkeypatch.setattr(_store, "BEING_MADE_S", 0.3)
    fresh = tmp_path / "fresh.db"
    fresh.touch()
    with pytest.raises(gp.LedgerPathError, match=r"no ledger at .*fresh\.db \(the file is empty\)"):
        gp.Ledger(fresh, create=False)
    old = tmp_path / "old.db"
    old.touch()
    os.utime(old, (0, 0))
    with pytest.raises(gp.LedgerPathError, match=r"\(the file is empty\)"):
        gp.Ledger(old, create=False)
    assert fresh.read_bytes() == old.read_bytes() == b""  # left as they were
    with pytest.raises(gp.LedgerPathError, match="no ledger"):
        gp.Ledger(tmp_path / "missing.db", create=False)  # a missing file: not waited for
    assert not (tmp_path / "missing.db").exists()
