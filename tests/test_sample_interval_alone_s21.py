"""A longer sample interval alone is accepted: the flush interval follows it (session 21).

``gp.track(..., sample_interval_s=30)``, ``track_search(..., sample_interval_s=30)`` and
``greenprint run --sample-interval 30`` failed with "flush_interval_s (at least
sample_interval_s) ... got 10.0": the default flush interval (10 s) was checked against it.
A flush interval not given is now 10 s, or the sample interval when that is longer; one given
below the sample interval is still refused.
"""

from __future__ import annotations

import sys

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint import ConfigError


def test_a_longer_sample_interval_alone_sets_the_flush_interval(tmp_path):
    ledger = tmp_path / "l.db"
    with gp.track("slow", ledger=ledger, sample_interval_s=30) as run:
        run.log(accuracy=0.5)
    (record,) = gp.Ledger(ledger).runs()
    assert record.status == "finished" and record.flush_interval_s == 30
    with gp.track("default", ledger=ledger) as run:
        pass
    assert gp.Ledger(ledger).run(run.id).flush_interval_s == 10


def test_a_flush_interval_given_below_the_sample_interval_is_still_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"flush_interval_s \(at least sample_interval_s\)"):
        gp.track("bad", ledger=tmp_path / "l.db", sample_interval_s=30, flush_interval_s=5)
    assert not (tmp_path / "l.db").exists()


def test_the_cli_takes_a_longer_sample_interval_alone(tmp_path_factory: pytest.TempPathFactory):
    home = empty_home(tmp_path_factory, "s21-sample-alone")
    done = run_in(
        home, GREENPRINT, "run", "--study", "s", "--sample-interval", "30", "--",
        sys.executable, "-c", "print('up')",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = gp.Ledger(home / "greenprint.db").runs(study="s")
    assert record.flush_interval_s == 30
    bad = run_in(
        home, GREENPRINT, "run", "--sample-interval", "30", "--flush-interval", "5", "--",
        sys.executable, "-c", "print('up')",
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--flush-interval (at least --sample-interval)" in bad.stderr
