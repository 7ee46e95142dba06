"""The ledger package's contract: its names, one column per record field, a light SQLite path."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import greenprint as gp
import greenprint.ledger as ledger_pkg
from greenprint import RunRecord
from greenprint.ledger._fields import FIELD_KINDS


def test_all_is_exactly_the_public_names_sorted():
    assert ledger_pkg.__all__ == [
        "BaseLedger",
        "Ledger",
        "MergeConflictError",
        "MergeSummary",
        "STALE_GRACE_S",
        "get_ledger",
    ]
    assert ledger_pkg.__all__ == sorted(ledger_pkg.__all__)
    assert gp.Ledger is ledger_pkg.Ledger
    assert ledger_pkg.STALE_GRACE_S == 5.0


def test_every_run_record_field_has_a_column():
    stored = [f.name for f in fields(RunRecord) if f.name != "metrics"]
    assert list(FIELD_KINDS) == stored


def _loaded(code: str) -> list[str]:
    probe = (
        f"import json, sys; {code}; "
        "print(json.dumps([m for m in ('sqlalchemy', 'psycopg') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_sqlite_ledger_loads_neither_sqlalchemy_nor_psycopg():
    code = "import greenprint as gp; led = gp.Ledger(':memory:'); led.runs(); led.close()"
    assert _loaded(code) == []
