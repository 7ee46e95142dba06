"""Session 30: a failing ``Run.add_listener`` listener, run as a user runs it (helper H8).

docs/integrations.md's own logger (``Run.add_listener``): an exception the listener raises is
logged, never raised. It was logged with its traceback at every flush: a listener that breaks
(its file's folder gone, a typo in a key) filled a day-long training's log with a traceback
every 10 s (8,640 a day; here 14 in 1.5 s at a 0.1 s flush interval). Now a listener's failure
is logged with its traceback once per kind of error and event; the same failure again goes to
the debug log, and the run's end says how many times it failed in all.
"""

from __future__ import annotations

import re
import sys

from _report_cli import empty_home, run_in

SCRIPT = """
import json
import time

import greenprint as gp


def to_jsonl(run, event):
    line = {"event": event, "energy_kwh": run.energy_kwh}
    with open("figures/figures.jsonl", "a") as out:  # the folder was never made
        out.write(json.dumps(line) + "\\n")


with gp.track("listened", study="listener-demo", ledger="greenprint.db",
              sample_interval_s=0.05, flush_interval_s=0.1) as run:
    run.add_listener(to_jsonl)
    time.sleep(1.5)  # about 14 flushes
print(run.status)
"""


def test_a_broken_listener_is_logged_once_not_at_every_flush(tmp_path_factory) -> None:
    """Two tracebacks (the first flush's, the stop's) and a count, not one per flush; the run
    finishes as it would without the listener."""
    home = empty_home(tmp_path_factory, "listener")
    (home / "listen.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "listen.py")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "finished"
    err = done.stderr
    assert err.count("Traceback") == 2, err[-3000:]  # before: one per flush, 14 here
    assert err.count("failed (flush)") == 1
    assert err.count("failed (stop)") == 1
    assert "FileNotFoundError" in err
    (count,) = re.findall(r"failed (\d+) times in all", err)  # said once, at the run's end
    assert int(count) >= 10  # every flush (about 14) and the stop
