"""The suite's controller writes the test modules' rewritten bytecode once, for xdist's workers.

(And it reports the workers' warnings without importing the modules they come from.)

A copy of the suite's own set-up (``conftest.py``, ``_rewritten_pycs.py``, the network guard)
around two small test modules, run as ``make test`` runs the suite (``-n 2``) under
``PYTHONDONTWRITEBYTECODE``: the workers read pytest's rewritten ``.pyc`` instead of each
rewriting every module, and a failing assert still reads as pytest rewrote it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def _suite_copy(root: Path) -> Path:
    tests = root / "tests"
    tests.mkdir()
    for name in ("conftest.py", "_rewritten_pycs.py", "_clean_env.py"):
        shutil.copy(TESTS / name, tests / name)
    no_bytecode = shutil.ignore_patterns("__pycache__")
    shutil.copytree(TESTS / "_guard", tests / "_guard", ignore=no_bytecode)
    (tests / "test_passes.py").write_text("def test_sum():\n    assert 1 + 1 == 2\n")
    (tests / "sub").mkdir()
    (tests / "sub" / "test_fails.py").write_text(
        "def test_explained():\n    total = 1 + 1\n    assert total == 3\n"
    )
    return tests


def _pytest(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_XDIST_WORKER_COUNT", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


#: a third-party module whose warning class a test raises: it writes who imported it
HEAVY_WARNINGS = """
import os

with open(os.environ["IMPORTED_BY"], "a") as fh:
    fh.write((os.environ.get("PYTEST_XDIST_WORKER") or "controller") + "\\n")


class PossibleUserWarning(UserWarning):
    pass
"""


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The suite's copy run as ``make test`` runs it (``-n 2 --dist loadfile``) with a test
    that warns with a third-party module's warning class: its tests folder, the file that
    module writes who imported it into, and pytest's output. One run serves both tests below
    (each run of three pytest processes: ~5 s of CPU)."""
    root = tmp_path_factory.mktemp("suite")
    tests = _suite_copy(root)
    (root / "heavy_warnings.py").write_text(HEAVY_WARNINGS)
    (tests / "test_warns.py").write_text(
        "import warnings\n"
        "from heavy_warnings import PossibleUserWarning\n\n"
        "def test_warns():\n"
        "    warnings.warn('few batches', PossibleUserWarning)\n"
    )
    imported_by = root / "imported-by"
    env = {"IMPORTED_BY": str(imported_by), "PYTHONPATH": str(root)}
    result = _pytest(root, "-n", "2", "--dist", "loadfile", "tests", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    return tests, imported_by, result.stdout


def test_workers_read_the_rewritten_modules_the_controller_wrote(
    two_workers: tuple[Path, Path, str],
) -> None:
    tests, _, stdout = two_workers
    assert "1 failed, 2 passed" in stdout
    # pytest's own explanation of the failing assert: the module ran rewritten
    assert "assert 2 == 3" in stdout
    modules = (tests / "test_passes.py", tests / "sub" / "test_fails.py", tests / "test_warns.py")
    for module in modules:
        written = list((module.parent / "__pycache__").glob(f"{module.stem}.*-pytest-*.pyc"))
        assert len(written) == 1, (module, written)
    # nothing else: no plain bytecode under PYTHONDONTWRITEBYTECODE but the network guard's
    # (every process the tests start loads it), no leftover partial file
    assert sorted(p.name.split(".")[0] for p in tests.rglob("__pycache__/*")) == [
        "conftest",
        "sitecustomize",
        "test_fails",
        "test_passes",
        "test_warns",
    ]


def test_one_process_run_writes_only_the_guards_bytecode(tmp_path: Path) -> None:
    tests = _suite_copy(tmp_path)
    result = _pytest(tmp_path, "tests/test_passes.py")
    assert result.returncode == 0, result.stdout + result.stderr
    written = [p.relative_to(tests).parts for p in tests.rglob("*.pyc")]
    assert [(folder, cache) for folder, cache, _ in written] == [("_guard", "__pycache__")]


def test_the_controller_reports_a_workers_warning_without_importing_its_module(
    two_workers: tuple[Path, Path, str],
) -> None:
    """xdist's controller imported each reported warning's module (Lightning's: ~9 s of CPU)."""
    _, imported_by, stdout = two_workers
    # each worker collects every module; the controller none
    assert sorted(imported_by.read_text().split()) == ["gw0", "gw1"]
    # the summary still names the warning's class
    assert "UserWarning: heavy_warnings.PossibleUserWarning: few batches" in stdout
