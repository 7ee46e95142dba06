"""A report made while a run of its study is still running says its figures are not final.

A new user who ran ``greenprint report`` during a training got a price tag, a compute statement
('used 1.2 mWh ... They ran for 1.0 s in total') and a model-card block of what the run had
flushed to the ledger 1 s in, 3 s into it, with nothing but 'running' in the status table to
say that the figures would grow (session 34). The notes, and a line on stderr, now say so;
``greenprint ledger ls`` too, under its table.
"""

from __future__ import annotations

import subprocess
import sys
import time

import greenprint as gp
from _clean_env import clean_env

TRAINING = """
import sys
import greenprint as gp
with gp.track("long", study="live") as run:
    run.log(loss=0.5)
    sys.stdin.readline()  # trains until the test says stop
"""


def _greenprint(home, *args):
    return subprocess.run(
        [sys.executable, "-m", "greenprint", *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_report_of_a_study_still_running_says_its_totals_will_grow(tmp_path):
    (tmp_path / "train.py").write_text(TRAINING)
    training = subprocess.Popen(
        [sys.executable, "train.py"], cwd=tmp_path, env=clean_env(), stdin=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # its first flush (at its first meter sample, about 1 s in)
            if (tmp_path / "greenprint.db").exists():
                try:
                    with gp.Ledger(tmp_path / "greenprint.db", create=False) as led:
                        runs = led.runs()  # the file is made before the run is written
                except (gp.LedgerPathError, gp.NotALedgerError):
                    runs = []  # the file made, its tables not yet: "the file is empty"
                if runs and runs[0].status == "running" and runs[0].energy_kwh > 0:
                    break
            assert time.monotonic() < deadline, "the run never flushed"
            time.sleep(0.2)
        listed = _greenprint(tmp_path, "ledger", "ls")
        assert "running: DURATION, ENERGY, CO2-EQ and METRIC as of the run's last flush" in (
            listed.stdout
        )
        done = _greenprint(tmp_path, "report", "--format", "md", "--no-plots")
        assert done.returncode == 0, done.stderr
        assert "note: 1 run still running: priced as of its last flush to the ledger" in (
            done.stderr
        )
        report = " ".join((tmp_path / "greenprint-report" / "report.md").read_text().split())
        assert f"1 run was still running when this report was made: long ({runs[0].id[:8]})" in (
            report
        )
        assert "so the totals will grow: report again when it ends" in report
    finally:
        training.communicate(b"\n", timeout=60)
    assert training.returncode == 0
    assert "as of the run's last flush" not in _greenprint(tmp_path, "ledger", "ls").stdout
    done = _greenprint(tmp_path, "report", "--format", "md", "--no-plots")
    assert done.returncode == 0, done.stderr
    assert "still running" not in done.stderr
    assert "still running" not in (tmp_path / "greenprint-report" / "report.md").read_text()
