"""``greenprint run --budget-fpo`` / ``--study-budget-fpo``: the FPO the command's runs record.

The script's runs (``gp.track`` in the command's process) are nested in the command's run and
write to its ledger; the command's run reads their FPO there every flush interval and stops the
command over its budget, as it does over an energy budget. Run as a user runs it: the installed
``greenprint`` in an empty directory with a clean environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import greenprint as gp

BIN = Path(sys.executable).parent
ENV = {"HOME": os.environ.get("HOME", "/root"), "PATH": f"{BIN}:/usr/bin:/bin"}
FAST = ["--sample-interval", "0.05", "--flush-interval", "0.1", "--budget-grace-s", "5"]
# Six folds of 1 GFPO each; each writes its FPO to the ledger when it ends.
FOLDS = """\
import time
import greenprint as gp
for k in range(6):
    with gp.track(f"fold{k}") as fold:
        fold.add_fpo(10**9)
        time.sleep(0.3)
    print("fold", k, "done", flush=True)
"""


def _greenprint_run(folder: Path, *options: str, script: str = "train.py"):
    return subprocess.run(
        [str(BIN / "greenprint"), "run", *FAST, *options, "--", "python", script],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_commands_runs_fpo_stop_it_over_budget_fpo(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(FOLDS)
    done = _greenprint_run(tmp_path, "--study", "cv", "--budget-fpo", "2.5e9")
    assert done.returncode == 143, done.stderr  # SIGTERM
    # the FPO the check read: the third fold's end crossed the budget; a loaded machine's
    # sampler may first read it after the next fold's end (0.3 s later: 4 GFPO, a CI run once)
    found = re.search(r"FPO (\d) GFPO > budget_fpo 2.5 GFPO: sending SIGTERM", done.stderr)
    assert found is not None and 3 <= int(found[1]) <= 5, done.stderr
    assert "fold 5 done" not in done.stdout
    runs = {r.name: r for r in gp.Ledger(tmp_path / "greenprint.db").runs(study="cv")}
    command = runs.pop("train.py")
    assert command.status == "interrupted" and "budget_fpo" in (command.error or "")
    assert {runs[f"fold{k}"].status for k in range(int(found[1]))} == {"finished"}
    assert all(r.parent_id == command.id for r in runs.values())


def test_a_study_over_its_fpo_budget_stops_the_next_command_at_once(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(FOLDS)
    first = _greenprint_run(tmp_path, "-q", "--study", "cv", "--study-budget-fpo", "2.5e9")
    assert first.returncode == 143, first.stderr
    assert "study budget_fpo 2.5 GFPO: sending SIGTERM" in first.stderr
    second = _greenprint_run(tmp_path, "-q", "--study", "cv", "--study-budget-fpo", "2.5e9")
    assert second.returncode == 143, second.stderr
    assert "fold 0 done" not in second.stdout  # stopped at its start, before its first fold


def test_a_command_that_records_no_fpo_says_its_budget_was_never_checked(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text("print('trained')\n")
    done = _greenprint_run(tmp_path, "-q", "--budget-fpo", "1e9", script="plain.py")
    assert done.returncode == 0, done.stderr
    assert "recorded no FPO, so its budget_fpo 1 GFPO was never checked" in done.stderr
    for option in ("--budget-fpo", "--study-budget-fpo"):
        bad = _greenprint_run(tmp_path, option, "0", script="plain.py")
        assert bad.returncode == 2
        assert bad.stderr == (
            f"greenprint: error: {option} must be a finite number of FPO with x > 0, got 0.0\n"
        )
