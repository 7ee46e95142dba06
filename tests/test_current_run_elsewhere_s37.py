"""Session 37: ``gp.current_run()`` in a script under ``greenprint run`` says why it is ``None``.

Found building a study through the CLI: a script run by ``greenprint run`` that logs its score
with ``gp.current_run().log(accuracy=...)`` gets ``None`` (the command's run is measured and
written by the ``greenprint run`` process, not the script's) and fails with "'NoneType' object
has no attribute 'log'", or, guarded by an ``if``, loses the score without a word. Now the
first such call in a process says, once, what to do instead (docs/cli.md, "The command's
score"); a process of its own, or one with a run of its own, is told nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import greenprint as gp
from _clean_env import clean_env

SCRIPT = """
import greenprint as gp
run = gp.current_run()
if run is not None:  # a user's guard: the score went nowhere, silently, before
    run.log(accuracy=0.5)
print("current", run)
print("again", gp.current_run())
with gp.track("fit") as fit:
    print("inside", gp.current_run() is fit)
    fit.log(accuracy=0.9)
"""


def _run(folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    (folder / "fit.py").write_text(SCRIPT)
    return subprocess.run(
        command, cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=120
    )


def test_a_script_under_greenprint_run_is_told_once_where_its_score_goes(tmp_path):
    done = _run(tmp_path, "greenprint", "run", "-q", "--study", "s", "--", sys.executable, "fit.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["current None", "again None", "inside True"]
    said = [line for line in done.stderr.splitlines() if "gp.current_run() is None" in line]
    assert len(said) == 1, done.stderr  # once, not at each call
    (line,) = said
    ledger = gp.Ledger(tmp_path / "greenprint.db", create=False)
    try:
        (command,) = ledger.runs(parent_id=None)
        (fit,) = ledger.runs(parent_id=command.id)
    finally:
        ledger.close()
    assert f"this process runs inside run {command.id[:8]}" in line
    assert 'with gp.track("fit") as run: run.log(accuracy=...)' in line
    assert "docs/cli.md" in line
    # what it says works: the score is in a run nested in the command's
    assert fit.metric("accuracy") == 0.9


def test_a_script_of_its_own_is_told_nothing(tmp_path):
    done = _run(tmp_path, sys.executable, "fit.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["current None", "again None", "inside True"]
    assert "current_run" not in done.stderr
