"""A killed run reads ``lost`` at once in every store, after a merge, and counts in its study.

The reader's rule (``tests/tracking/test_lost_at_once.py``) lives where every read of runs goes
(``Ledger``'s records, for SQLite and PostgreSQL alike); a merge copies the writer's identity
with the run, so the merged ledger read on this machine says the same; the study budget's read
counts a run's cost whatever its status.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import greenprint as gp
from greenprint.ledger._study_cost import study_cost
from tracking.test_lost_at_once import _kill, _start


def test_a_killed_run_reads_lost_at_once_in_every_store(ledger_url: str, tmp_path: Path) -> None:
    proc = _start(tmp_path, ledger_url)
    try:
        assert [r.status for r in gp.Ledger(ledger_url).runs()] == ["running"]
    finally:
        _kill(proc)
    led = gp.Ledger(ledger_url)
    (lost,) = led.runs()
    assert (lost.id, lost.status) == (proc.run_id, "lost") and lost.energy_kwh > 0
    assert led.runs(status="running") == [] and led.run(proc.run_id).status == "lost"
    assert [r.id for r in led.runs(study="kill", status=["lost", "failed"])] == [proc.run_id]
    # the study budget's read counts the run's cost, lost or running alike
    cost = study_cost(led, "kill", exclude=())
    assert cost.energy_kwh == pytest.approx(lost.energy_kwh)

    merged = gp.Ledger(tmp_path / "merged.db")
    merged.merge(ledger_url)
    (copy,) = merged.runs()
    assert copy.status == "lost" and copy.provenance["writer"] == lost.provenance["writer"]
