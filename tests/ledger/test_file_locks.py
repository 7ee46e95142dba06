"""A process that holds a SQLite ledger open never drops its locks on it.

POSIX locks belong to the process: closing any descriptor of the file releases all of them,
its SQLite connections' shared lock included. greenprint checked a ledger file's header with
``open()``/``close()`` each time a run started (and each ``gp.Ledger(path)``); with the shared
ledger's connections open, that dropped their lock, and a child process tracking into the same
ledger then believed, when it closed, that it was the last user: it deleted the write-ahead log
under the parent, whose next write failed with "disk I/O error" (a corrupt ledger).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import greenprint as gp
from greenprint.ledger import _handles
from greenprint.ledger._target import resolve_target

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

CHILD = textwrap.dedent(
    """
    import sys
    import greenprint as gp
    with gp.track(sys.argv[2], ledger=sys.argv[1], sample_interval_s=0.05,
                  flush_interval_s=0.1) as run:
        run.log(x=1.0)
    """
)


def _child(tmp_path: Path, ledger: Path, name: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(ledger), name], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def _intact(ledger: Path) -> None:
    with sqlite3.connect(ledger) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_sweep_whose_trials_run_a_child_process_on_the_same_ledger(tmp_path: Path) -> None:
    """The loop users write: each trial starts a child process that tracks its own run."""
    ledger = tmp_path / "gp.db"
    for k in range(4):
        with gp.track(f"t{k}", ledger=str(ledger), **FAST) as trial:
            trial.log(accuracy=0.5 + k / 10)
            _child(tmp_path, ledger, f"child{k}")
            gp.Ledger(ledger).close()  # a user's own look at the ledger meanwhile
    _intact(ledger)
    with gp.Ledger(ledger) as led:
        runs = {r.name: r for r in led.runs()}
    assert set(runs) == {f"t{k}" for k in range(4)} | {f"child{k}" for k in range(4)}
    assert all(r.status == "finished" for r in runs.values())
    assert all(runs[f"child{k}"].parent_id == runs[f"t{k}"].id for k in range(4))


def test_the_header_check_trusts_an_open_store_and_still_refuses_other_files(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "gp.db"
    with gp.Ledger(ledger):
        assert _handles.is_open(_handles.file_identity(ledger))
        assert resolve_target(str(ledger)).prepare(create=False) is False
    assert not _handles.is_open(_handles.file_identity(ledger))
    other = tmp_path / "notes.txt"
    other.write_text("not a database", encoding="utf-8")
    try:
        gp.Ledger(other)
    except gp.NotALedgerError:
        pass
    else:  # pragma: no cover - the assertion below says what failed
        raise AssertionError("a text file was opened as a ledger")


def test_a_handle_on_an_open_ledger_closes_after_its_last_store(tmp_path: Path) -> None:
    ledger = tmp_path / "gp.db"
    first = gp.Ledger(ledger)
    second = gp.Ledger(ledger)  # two stores on one file
    identity = _handles.file_identity(ledger)
    handle = ledger.open("rb")
    _handles.close_handle(identity, handle)
    assert not handle.closed  # a store has it open: closing the handle would drop its locks
    first.close()
    assert not handle.closed
    second.close()
    assert handle.closed
    again = ledger.open("rb")
    _handles.close_handle(identity, again)  # no store: closed at once
    assert again.closed


def test_a_store_nobody_closed_releases_its_file_when_collected(tmp_path: Path) -> None:
    import gc

    from greenprint.ledger._sqlite import SQLiteStore

    ledger = tmp_path / "gp.db"
    gp.Ledger(ledger).close()
    identity = _handles.file_identity(ledger)
    store = SQLiteStore(resolve_target(str(ledger)), create=False)
    assert _handles.is_open(identity)
    del store
    gc.collect()
    assert not _handles.is_open(identity)
