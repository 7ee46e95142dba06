"""``run.record`` after the run ends is the run the ledger stored.

Found in session 42: ``run.record`` of a stopped run had ``ended_at=None`` (the ledger had the
end time), so a user reading a finished run from the object they held saw it as never ended,
and the learning curve's records (``run_learning_curve`` reads ``run.record``) had no end.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

import greenprint as gp


@pytest.mark.parametrize("meters", [[], None], ids=["no-meter", "meters"])
def test_a_stopped_runs_record_is_what_the_ledger_stored(tmp_path, meters):
    run = gp.track("x", ledger=tmp_path / "l.db", meters=meters, params={"lr": 0.1})
    run.start()
    assert run.record.ended_at is None  # running: no end yet
    run.log(acc=0.5)
    run.set(fpo=10)
    run.stop()
    held, stored = run.record, gp.Ledger(tmp_path / "l.db", create=False).run(run.id)
    # the run and its record say alike whether its energy is known (0.0 with no meter)
    assert run.energy_recorded is held.energy_recorded is stored.energy_recorded is (meters is None)
    assert held.ended_at is not None and held.ended_at >= held.started_at
    for field in dataclasses.fields(held):
        mine, theirs = getattr(held, field.name), getattr(stored, field.name)
        if field.name == "hardware":  # tuples in memory, lists once stored as JSON
            mine, theirs = json.dumps(mine, sort_keys=True), json.dumps(theirs, sort_keys=True)
        assert mine == theirs, field.name
