"""A data scientist's first hour in a notebook (outside check s41), cells run as Jupyter runs them.

Each test drives a real IPython shell in a fresh process, in an empty directory with a clean
environment: ``run_cell(..., store_history=True)``, as a kernel runs a notebook's cells.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env

pytest.importorskip("IPython")

DRIVER = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
cells = json.loads(sys.argv[1])
results = []
for cell in cells:
    result = shell.run_cell(cell, store_history=True)
    error = result.error_in_exec or result.error_before_exec
    results.append(type(error).__name__ if error is not None else None)
print("RESULTS " + json.dumps(results))
"""


def _run_cells(tmp_path: Path, cells: list[str]) -> tuple[list[str | None], str]:
    """Run ``cells`` in one IPython shell; each cell's exception name (or None), and stderr."""
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(cells)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULTS "))
    return json.loads(line[len("RESULTS ") :]), done.stdout + done.stderr


def _runs(tmp_path: Path) -> list:
    import greenprint as gp

    return gp.Ledger(tmp_path / "greenprint.db").runs()


START = 'run = gp.track("fit", study="nb", ledger="greenprint.db"); run.start()'


def test_a_start_cell_run_again_ends_the_run_it_left_open(tmp_path: Path) -> None:
    """The start cell run twice left the first run 'running' (nothing could stop it) and made
    it the new run's parent: the price tag read it as a sweep around the run stopped later."""
    results, out = _run_cells(
        tmp_path,
        [
            "import greenprint as gp",
            START,
            START,  # run again, as notebook users do
            "run.log(accuracy=0.9)",
            "run.stop()",
            "assert gp.current_run() is None",
            # runs of one name nested on purpose in one run of a cell stay nested
            'sweep = gp.track("s", study="sw", ledger="greenprint.db"); sweep.start()\n'
            "for lr in (0.1, 0.2):\n"
            '    with gp.track("s", study="sw", ledger="greenprint.db"): pass\n'
            "sweep.stop()",
            # an exception and Ctrl-C in a cell: recorded, the kernel goes on
            'with gp.track("boom", study="nb", ledger="greenprint.db"):\n    1 / 0',
            'with gp.track("ctrl-c", study="nb", ledger="greenprint.db"):\n'
            "    raise KeyboardInterrupt",
            "assert gp.current_run() is None",
        ],
    )
    assert results == [None] * 7 + ["ZeroDivisionError", "KeyboardInterrupt", None]
    first, second, sweep, trial_a, trial_b, boom, ctrl_c = _runs(tmp_path)
    assert (first.status, first.error) == (
        "interrupted",
        "its notebook cell was run again before run.stop()",
    )
    assert (second.status, second.parent_id, second.metric("accuracy")) == ("finished", None, 0.9)
    warning = [x for x in out.splitlines() if "was run again" in x]
    assert warning == [
        f"greenprint: run 'fit' ({first.id[:8]}) ends 'interrupted': its notebook cell was run "
        "again before run.stop(); the new run replaces it"
    ]
    assert {trial_a.parent_id, trial_b.parent_id} == {sweep.id} and sweep.status == "finished"
    assert (boom.status, boom.error) == ("failed", "ZeroDivisionError: division by zero")
    assert (ctrl_c.status, ctrl_c.error) == ("interrupted", "KeyboardInterrupt")


def test_displays_say_not_sampled_yet_and_keep_text_short(tmp_path: Path) -> None:
    """A cell ending at run.start() showed 'running 0 mWh, 0 mg CO2-eq' (nothing read yet);
    a price tag's and a report's text display (IPython's terminal, the notebook's saved
    text/plain) was their dataclass repr: 81 kB and 112 kB for a 2-candidate search; a
    ledger's records 3.4 kB each (their hardware), an unmetered one with 'energy_kwh=0.0'."""
    results, out = _run_cells(
        tmp_path,
        [
            "import json, greenprint as gp\n"
            "from greenprint.analysis import price_tag\n"
            "from greenprint.report import build_report\n"
            "fmt = get_ipython().display_formatter.format",
            'run = gp.track("open", study="nb", ledger="greenprint.db", sample_interval_s=60)\n'
            "run.start()\n"
            "shown = fmt(run)[0]\n"
            "run.log(accuracy=0.5)\n"
            "run.stop()\n"
            "ended = fmt(run)[0]\n"
            "tag = fmt(price_tag(gp.Ledger('greenprint.db').runs(study='nb')))[0]\n"
            "report = fmt(build_report('greenprint.db', 'nb'))[0]\n"
            "with gp.track('no-meter', study='u', ledger='greenprint.db', meters=[]): pass\n"
            "records = fmt(gp.Ledger('greenprint.db').runs())[0]\n"
            "print('SHOWN ' + json.dumps([shown, ended, tag, report, records]))",
        ],
    )
    assert results == [None, None]
    line = next(x for x in out.splitlines() if x.startswith("SHOWN "))
    shown, ended, tag, report, records = json.loads(line[len("SHOWN ") :])
    assert "running energy and CO2-eq not sampled yet" in shown["text/plain"]
    assert "0 mWh" not in shown["text/html"] and "not sampled yet" in shown["text/html"]
    assert "not sampled" not in ended["text/plain"] and "Wh" in ended["text/plain"]
    assert tag["text/plain"].startswith("1 trial (1 finished) in 1 run\n")
    assert "CostTotals" not in tag["text/plain"] and "<table" in tag["text/html"]
    assert report["text/plain"].startswith("greenprint report: nb, ranked by accuracy; 1 run, ")
    assert "RunRecord" not in report["text/plain"] and len(report["text/plain"]) < 2000
    opened, unmetered = records["text/plain"].splitlines()
    assert opened.startswith("[<RunRecord 'open' study='nb' finished ") and "Wh, " in opened
    assert unmetered.startswith(" <RunRecord 'no-meter' study='u' finished energy and CO2-eq ")
    assert "unknown (no energy meter)" in unmetered and "0 mWh" not in unmetered
