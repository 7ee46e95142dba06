"""greenprint as a new user meets it: an empty directory, a clean environment, no configuration.

Every command runs in a subprocess whose working directory is a fresh temporary directory with no
``greenprint.toml`` or ``pyproject.toml`` above it and whose environment holds no ``GREENPRINT_*``
variable (only the test suite's network guard, through ``PYTHONPATH`` and
``GREENPRINT_NETWORK_GUARD*``). With no ``ledger=``, no ``GREENPRINT_LEDGER`` and no config file,
runs land in ``./greenprint.db``, as the README promises, for the API and the CLI alike, and the
``greenprint ledger`` and ``greenprint report`` commands find them there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env, configured_above

GREENPRINT = BIN / "greenprint"
LEDGER_FILES = {"greenprint.db", "greenprint.db-wal", "greenprint.db-shm"}

API_SCRIPT = """
import greenprint as gp

with gp.track("x") as run:
    run.log(accuracy=0.5)
print(run.id, run.status)
"""


@pytest.fixture
def empty_dir(tmp_path: Path, require_component) -> Path:
    """A fresh, empty working directory with no greenprint configuration above it."""
    home = tmp_path / "new-user"
    home.mkdir()
    found = configured_above(home)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    return home


def run_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=directory,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_environment_is_clean():
    env = clean_env()
    assert not [k for k in env if k.startswith("GREENPRINT_") and "NETWORK_GUARD" not in k]
    assert env["GREENPRINT_NETWORK_GUARD"] == "1"  # the guard still reaches the subprocesses
    assert "_guard" in env["PYTHONPATH"]


def test_environment_holds_no_logger_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("WANDB_MODE", "online")
    env = clean_env()
    assert not [k for k in env if k.startswith(("MLFLOW_", "WANDB_"))]


@pytest.mark.parametrize("module", ["test_wandb.py", "test_done_when_loggers.py", "test_mlflow.py"])
def test_importing_a_logger_test_module_leaves_the_environment_alone(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collection imports every module in every xdist worker: what one sets at import reaches
    every later test in that worker (W&B's offline mode printed its banner in a docs example)."""
    import importlib.util

    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "WANDB_")):
            monkeypatch.delenv(key)
    before = dict(os.environ)
    path = Path(__file__).parent / "integrations" / module
    spec = importlib.util.spec_from_file_location(f"_imported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except pytest.skip.Exception:
        pass  # the framework is not installed: what ran before the skip still counts
    assert dict(os.environ) == before


def test_track_writes_greenprint_db_in_the_working_directory(empty_dir):
    done = run_in(empty_dir, sys.executable, "-c", API_SCRIPT)
    assert done.returncode == 0, done.stderr
    run_id, status = done.stdout.split()
    assert status == "finished"
    assert {p.name for p in empty_dir.iterdir()} <= LEDGER_FILES
    (run,) = gp.Ledger(empty_dir / "greenprint.db", create=False).runs()
    assert (run.id, run.name, run.status) == (run_id, "x", "finished")
    assert run.metric("accuracy") == 0.5
    assert run.energy_kwh is not None and run.energy_kwh >= 0


def test_greenprint_run_writes_greenprint_db_in_the_working_directory(empty_dir):
    done = run_in(empty_dir, str(GREENPRINT), "run", "--", "true")
    assert done.returncode == 0, done.stderr
    assert "greenprint: error" not in done.stderr
    assert {p.name for p in empty_dir.iterdir()} <= LEDGER_FILES
    (run,) = gp.Ledger(empty_dir / "greenprint.db", create=False).runs()
    assert (run.name, run.status) == ("true", "finished")
    assert str(empty_dir / "greenprint.db") in done.stderr  # the price tag names the ledger


def test_ledger_and_report_find_the_default_ledger(empty_dir):
    api = run_in(empty_dir, sys.executable, "-c", API_SCRIPT)
    assert api.returncode == 0, api.stderr
    api_id = api.stdout.split()[0]
    cli = run_in(empty_dir, str(GREENPRINT), "run", "--", "true")
    assert cli.returncode == 0, cli.stderr

    listed = run_in(empty_dir, str(GREENPRINT), "ledger", "ls")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert sorted(row[2] for row in rows) == ["true", "x"]
    assert api_id[:8] in {row[0] for row in rows}

    shown = run_in(empty_dir, str(GREENPRINT), "ledger", "show", api_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert api_id in shown.stdout

    report = run_in(empty_dir, str(GREENPRINT), "report", "--format", "md", "--no-plots")
    assert report.returncode == 0, report.stderr
    text = (empty_dir / "greenprint-report" / "report.md").read_text()
    assert "accuracy" in text
    # reading never adds anything next to the ledger but the report
    assert {p.name for p in empty_dir.iterdir()} <= LEDGER_FILES | {"greenprint-report"}
