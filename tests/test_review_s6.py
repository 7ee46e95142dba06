"""Issue 12, an outside review of session 6's changes: inputs built as users build them.

Each test here first failed on the code it checks (see the commit that fixed it).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``greenprint ARGS`` as a new user runs it in ``cwd``: a clean environment, no config."""
    done = subprocess.run(
        [str(GREENPRINT), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_an_export_of_every_study_gives_a_run_under_another_studys_run_its_own_studys_role(
    tmp_path: Path,
) -> None:
    """Runs of study B tracked inside a run of study A: B's report has them as its trials
    (their parent is not in B). Exporting every study at once called them A's run's parts,
    though the export says each run's role is the one its study's report infers."""
    ledger = str(tmp_path / "l.db")
    with gp.track("outer", study="A", ledger=ledger, **FAST) as outer:
        outer.log(accuracy=0.9)
        for k in range(2):
            with gp.track(f"inner{k}", study="B", ledger=ledger, **FAST) as inner:
                inner.log(accuracy=0.5 + k / 10)
    _cli(tmp_path, "report", "--ledger", ledger, "--study", "B", "--format", "json", "--out", "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    reported = {r["name"]: r["role"] for r in report["runs"]}
    assert reported == {"inner0": "trial", "inner1": "trial"}
    for options in ([], ["--metric", "accuracy"]):
        done = _cli(tmp_path, "ledger", "export", "--ledger", ledger, "--format", "json", *options)
        exported = {r["name"]: r["role"] for r in json.loads(done.stdout)["runs"]}
        assert exported == {"outer": "trial", **reported}
