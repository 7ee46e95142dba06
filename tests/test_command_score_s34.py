"""``greenprint run`` around a script that logs its score in a ``gp.track`` run of its own.

README ("Quickstart: the CLI") and docs/cli.md ("The command's score") tell a new user to log
the score in a run of the script's own; which run the report then ranks depends on whether the
command was given its configuration: with ``--param`` (or ``--role trial``) the command's run is
the trial and the script's run its part; with neither, the command's run is read as a sweep
around the one run inside it, which is the trial (the command's own start-up then its sweep
overhead). Run as a new user runs it: an empty directory, no GREENPRINT_* setting, no config.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env

FIT = """
import sys
import greenprint as gp

lr = float(sys.argv[1])
with gp.track("fit") as run:
    run.log(accuracy=0.95 - abs(lr - 0.1))
"""


def _greenprint(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "greenprint", *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tree(home: Path, study: str) -> list[tuple[str, str, bool]]:
    rows = json.loads(_greenprint(home, "ledger", "ls", "--study", study, "--tree", "--json"))
    return [(row["name"], row["role"], row["role_inferred"]) for row in rows]


@pytest.mark.parametrize(
    ("given", "roles"),
    [
        (["--param", "lr=0.1"], [("fit.py", "trial", True), ("fit", "part", True)]),
        (["--role", "trial"], [("fit.py", "trial", False), ("fit", "part", True)]),
        ([], [("fit.py", "sweep", True), ("fit", "trial", True)]),
    ],
    ids=["param", "role-trial", "neither"],
)
def test_the_command_is_the_trial_when_given_its_configuration(tmp_path, given, roles):
    (tmp_path / "fit.py").write_text(FIT)
    _greenprint(
        tmp_path, "run", "-q", "--study", "s", *given, "--", sys.executable, "fit.py", "0.1"
    )
    assert _tree(tmp_path, "s") == roles
    _greenprint(tmp_path, "report", "--study", "s", "--format", "md", "--out", "r", "--no-plots")
    report = (tmp_path / "r" / "report.md").read_text()
    assert "1 trial, ranked by **accuracy**" in report
    # the final model is the trial: the command's run (its whole cost) or, with neither
    # given, the script's run alone
    final = "fit.py" if roles[0][1] == "trial" else "fit"
    assert f"Final run {final} (" in report


def test_set_role_makes_a_command_given_no_configuration_the_trial(tmp_path):
    (tmp_path / "fit.py").write_text(FIT)
    _greenprint(tmp_path, "run", "-q", "--study", "s", "--", sys.executable, "fit.py", "0.1")
    rows = json.loads(_greenprint(tmp_path, "ledger", "ls", "--study", "s", "--json"))
    (command_id,) = [row["id"] for row in rows if row["name"] == "fit.py"]
    _greenprint(tmp_path, "ledger", "set-role", "trial", command_id[:8])
    assert _tree(tmp_path, "s") == [("fit.py", "trial", False), ("fit", "part", True)]


def test_run_help_says_what_param_makes_of_the_command(tmp_path):
    text = " ".join(_greenprint(tmp_path, "run", "--help").split())
    assert "Example: greenprint run --study sweep --region DE --param lr=0.1 -- python" in text
    assert "the script's one scored run is the trial and this one a sweep around it" in text


def test_a_report_of_unscored_commands_says_how_to_score_them(tmp_path):
    (tmp_path / "train.py").write_text("print('training')\n")
    _greenprint(tmp_path, "run", "-q", "--study", "s", "--", sys.executable, "train.py")
    _greenprint(tmp_path, "report", "--study", "s", "--format", "md", "--out", "r", "--no-plots")
    report = " ".join((tmp_path / "r" / "report.md").read_text().split())
    assert "not ranked: no run logged a metric" in report
    assert "logs it in a gp.track run of its own, and the command's --param makes" in report
