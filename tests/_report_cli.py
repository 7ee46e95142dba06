"""``greenprint`` run as a new user runs it, for the tests that read its reports.

Shared by ``test_new_user_reports.py`` and ``test_outside_reports.py``: a command run in a
directory with a clean environment, an empty home for a study, and the report it writes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from _clean_env import BIN, clean_env, configured_above

#: The virtual environment's ``greenprint`` command.
GREENPRINT = str(BIN / "greenprint")


def run_in(
    directory: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``args`` run in ``directory`` with a new user's environment (``clean_env``) or ``env``."""
    return subprocess.run(
        list(args),
        cwd=directory,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def empty_home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new temporary directory with no greenprint configuration above it (else a skip)."""
    home = tmp_path_factory.mktemp(name)
    if configured_above(home):
        pytest.skip(f"greenprint configuration above the temporary dir: {configured_above(home)}")
    return home


def cli_report(home: Path, *args: str) -> dict[str, object]:
    """``greenprint report`` in all four formats into ``home/rep``; the JSON, parsed."""
    done = run_in(home, GREENPRINT, "report", "--out", "rep", *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def report_text(home: Path, fmt: str) -> str:
    """The text of the report written in ``fmt`` (``html``, ``md``, ``latex``) under ``home``."""
    name = {"html": "report.html", "md": "report.md", "latex": "report.tex"}[fmt]
    return (home / "rep" / name).read_text(encoding="utf-8")
