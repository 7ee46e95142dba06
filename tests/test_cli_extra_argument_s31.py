"""A study or ledger given as an argument gets the option it was meant for.

``report``, ``ledger ls`` and ``ledger export`` take the study and the ledger as options only. A
new user types ``greenprint report sweep`` (or ``greenprint report runs.db``) and was told only
"Got unexpected extra argument (sweep)". Run as a new user runs it: in an empty directory with a
clean environment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from greenprint.cli import main


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["report", "sweep"], "Did you mean '--study sweep'?"),
        (["report", "runs.db"], "Did you mean '--ledger runs.db'?"),
        (["ledger", "ls", "sweep"], "Did you mean '--study sweep'?"),
        (["ledger", "export", "old.sqlite"], "Did you mean '--ledger old.sqlite'?"),
    ],
)
def test_a_study_or_ledger_given_as_an_argument_names_its_option(
    args: list[str], hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == (
        f"greenprint: error: Got unexpected extra argument ({args[-1]}). {hint} "
        f"(see 'greenprint {' '.join(args[:-1])} --help')"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_hint_names_what_works_for_a_new_user(tmp_path: Path) -> None:
    """The option suggested, typed as suggested, writes the report."""
    with gp.track("train", study="sweep", ledger=str(tmp_path / "greenprint.db")) as run:
        run.log(accuracy=0.9)
    wrong = subprocess.run(
        [sys.executable, "-m", "greenprint", "report", "sweep", "--format", "md"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "Did you mean '--study sweep'?" in _one_line(wrong.stderr)
    right = subprocess.run(
        [sys.executable, "-m", "greenprint", "report", "--study", "sweep", "--format", "md"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert (tmp_path / "greenprint-report" / "report.md").is_file()


def test_a_ledger_url_given_as_an_argument_keeps_its_password_hidden(capsys) -> None:
    assert main(["report", "postgresql://bob:s3cret@db.internal/gp"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "s3cret" not in line
    assert "Did you mean '--ledger postgresql://bob:***@db.internal/gp'?" in line


@pytest.mark.parametrize(
    "args",
    [
        ["report", "a", "b"],  # two: no single option to name
        ["hardware", "sweep"],  # a command with no --study or --ledger
        ["report", "--format", "md", "-x"],  # an unknown option keeps click's own message
    ],
)
def test_no_hint_where_no_option_fits(args: list[str], tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert "Did you mean '--" not in _one_line(capsys.readouterr().err)
