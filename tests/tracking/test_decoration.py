"""``@gp.track(...)`` does no work when a module is imported: the ledger is opened by the call.

Settings are still checked when the decorator is applied (a bad PUE or a ledger path that can
never work fails at import, before any user code runs); the ledger file is created by the first
tracked call, and each call is a new run in it.
"""

from __future__ import annotations

import pytest

import greenprint as gp

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def test_decorating_creates_no_ledger_and_each_call_writes_a_run(tmp_path):
    path = tmp_path / "led.db"

    @gp.track("job", study="deco", ledger=str(path), **FAST)
    def job(x):
        return x * 2

    assert not path.exists()
    assert job(2) == 4 and job(3) == 6
    runs = gp.Ledger(str(path)).runs(study="deco")
    assert [r.status for r in runs] == ["finished", "finished"]


def test_a_context_manager_opens_its_ledger_when_it_starts(tmp_path):
    path = tmp_path / "led.db"
    run = gp.track("ctx", ledger=str(path), **FAST)
    assert not path.exists()
    with run:
        assert path.exists()
    assert gp.Ledger(str(path)).run(run.id).status == "finished"


def test_bad_settings_still_fail_when_decorating(tmp_path):
    with pytest.raises(gp.InvalidPUEError):
        gp.track("bad", ledger=str(tmp_path / "led.db"), pue=-1)
    with pytest.raises(gp.LedgerPathError):
        gp.track("bad", ledger=str(tmp_path))  # a directory
    with pytest.raises(gp.LedgerPathError):
        gp.track("bad", ledger=str(tmp_path / "missing" / "led.db"))
    not_a_ledger = tmp_path / "notes.txt"
    not_a_ledger.write_text("my notes")
    with pytest.raises(gp.NotALedgerError):
        gp.track("bad", ledger=str(not_a_ledger))
    assert not_a_ledger.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_asking_for_the_ledger_before_the_start_opens_it(tmp_path):
    path = tmp_path / "led.db"
    run = gp.track("early", ledger=str(path), **FAST)
    assert run.ledger is not None and path.exists()
    with run:
        pass
    assert run.ledger.run(run.id).status == "finished"
    assert gp.track("mem", ledger=False).ledger is None
