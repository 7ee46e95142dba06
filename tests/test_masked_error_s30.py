"""A run that failed on a URL holding a password records the error with the password masked.

``gp.track`` records a failed run's error as the exception's type and message; a training
that could not reach its database (``OperationalError: connection to
postgresql://bob:pw@db/gp failed``) stored that password in the run's ``error``, which ``ledger
show``, exports and reports print, while the same URL on the script's command line was masked.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from greenprint.cli import main

SECRET = "s3cr/et"


def test_a_failed_runs_error_never_records_a_urls_password(tmp_path, capsys):
    ledger = tmp_path / "l.db"
    with pytest.raises(RuntimeError), gp.track("train", study="s", ledger=ledger) as run:
        raise RuntimeError(f"connection to postgresql+psycopg://bob:{SECRET}@db:5432/gp failed")
    stored = gp.Ledger(ledger).run(run.id)
    assert stored.status == "failed"
    assert (
        stored.error == "RuntimeError: connection to postgresql+psycopg://bob:***@db:5432/gp failed"
    )
    assert main(["ledger", "show", run.id, "--ledger", str(ledger)]) == 0
    assert SECRET not in capsys.readouterr().out


def test_an_error_set_by_flush_is_masked_too(tmp_path):
    with gp.Ledger(tmp_path / "l.db") as led:
        led.start_run(gp.RunRecord(id="r", name="r", study="s"))
        led.flush("r", fields={"status": "failed", "error": f"mysql://u:{SECRET}@h/x refused"})
        assert led.run("r").error == "mysql://u:***@h/x refused"
