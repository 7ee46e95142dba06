"""``greenprint ledger merge`` with an input it cannot merge leaves OUT as it was (s34).

A team merging its nodes' ledgers into its PostgreSQL ledger points the command at an empty
database the first time. Before, OUT was opened (and so made) first and the inputs read after:
an input that could not be merged (a file that is no ledger, a ledger of a newer greenprint, a
server that is down, two inputs that conflict) ended the command with one line and exit status
2, yet the empty database now held greenprint's five tables (a SQLite OUT file made for the
merge was removed, an empty database was not restored). The inputs are now read before OUT is
opened. The node ledgers are written as users write them, by ``gp.track``; OUT is a fresh SQLite
path or an empty database of a real PostgreSQL server (``ledger_url``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import greenprint as gp
from greenprint.cli import main
from greenprint.ledger import Ledger


def _node(path: Path, host: str, names: list[str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node's ledger as its runs wrote it: one ``gp.track`` run per name, two points each."""
    monkeypatch.setenv("GREENPRINT_HOST", host)
    for i, name in enumerate(names):
        with gp.track(name, study="llm", ledger=str(path), params={"lr": 0.1 * (i + 1)}) as run:
            run.log(val_loss=1.0, step=0)
            run.log(val_loss=0.5 / (i + 1), step=1)
    monkeypatch.delenv("GREENPRINT_HOST")
    return path


@pytest.fixture
def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    a = _node(tmp_path / "gp-node0.db", "node0", ["fit-a", "eval-a"], monkeypatch)
    b = _node(tmp_path / "gp-node1.db", "node1", ["fit-b"], monkeypatch)
    return a, b


def _tables(ledger_url: str) -> list[str]:
    """The tables OUT holds: none when it was never made."""
    if not ledger_url.startswith("postgresql"):
        path = Path(ledger_url)
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    engine = sa.create_engine(ledger_url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a ledger a process still holds open (SQLite's backup: its WAL included)."""
    with contextlib.closing(sqlite3.connect(src)) as a:
        with contextlib.closing(sqlite3.connect(dst)) as b:
            a.backup(b)
    return dst


def _bad_inputs(tmp_path: Path, node: Path) -> dict[str, Path | str]:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a ledger\n")
    newer = _copy(node, tmp_path / "newer.db")
    with contextlib.closing(sqlite3.connect(newer)) as conn, conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 0, '9.9.9')")
    rogue = _copy(node, tmp_path / "rogue.db")  # node 0's, one run's energy changed by hand
    with contextlib.closing(sqlite3.connect(rogue)) as conn, conn:
        conn.execute("UPDATE runs SET energy_kwh = energy_kwh * 2 WHERE name = 'fit-a'")
    down = "postgresql+psycopg://gp:secret@127.0.0.1:1/gp"  # no server listens on port 1
    return {"not a ledger": notes, "newer schema": newer, "conflict": rogue, "server down": down}


@pytest.mark.parametrize("bad", ["not a ledger", "newer schema", "conflict", "server down"])
def test_an_input_that_cannot_be_merged_leaves_out_as_it_was(
    ledger_url: str, nodes: tuple[Path, Path], tmp_path: Path, bad: str, capsys
) -> None:
    node0, node1 = nodes
    wrong = _bad_inputs(tmp_path, node0)[bad]
    capsys.readouterr()
    assert main(["ledger", "merge", ledger_url, str(node0), str(node1), str(wrong)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("greenprint: error: "), err
    assert "secret" not in err[0]
    assert _tables(ledger_url) == []  # no file, no tables in the empty database
    # the same merge without it: every run once, and again: nothing changes
    assert main(["ledger", "merge", ledger_url, str(node0), str(node1)]) == 0
    assert "3 runs added" in capsys.readouterr().out
    assert main(["ledger", "merge", ledger_url, str(node1), str(node0)]) == 0
    assert "0 runs added, 0 updated, 3 already there" in capsys.readouterr().out
    with Ledger(ledger_url, create=False) as led:
        runs = led.runs(study="llm")
        assert sorted(r.name for r in runs) == ["eval-a", "fit-a", "fit-b"]
        assert sorted(len(r.metrics) for r in runs) == [2, 2, 2]


def test_a_bad_input_after_a_merge_changes_nothing(
    ledger_url: str, nodes: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """OUT already holding the nodes' runs: each bad input is refused, OUT unchanged."""
    node0, node1 = nodes
    assert main(["ledger", "merge", ledger_url, str(node0)]) == 0
    with Ledger(ledger_url, create=False) as led:
        before = [(r, led.samples(r.id)) for r in led.runs()]
    for wrong in _bad_inputs(tmp_path, node0).values():
        capsys.readouterr()
        assert main(["ledger", "merge", ledger_url, str(node1), str(wrong)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with Ledger(ledger_url, create=False) as led:
        assert [(r, led.samples(r.id)) for r in led.runs()] == before
