"""The package as ``pip install`` gives it: a wheel built from the tracked files, run on its own.

Every other test imports greenprint from the source tree (the editable install), where a data
file left out of ``[tool.setuptools.package-data]`` is still found. A user gets the wheel: here
it is built from the files git tracks (a fresh clone's), installed into a folder of its own
(``pip install --target``, no dependencies: the venv's serve) and run in an empty directory
with a clean environment, its own code first on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from _clean_env import clean_env
from conftest import require

ROOT = Path(__file__).resolve().parent.parent


def _tracked_files() -> list[str]:
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
    except (OSError, subprocess.CalledProcessError) as e:
        require(False, f"the tracked files need git and a checkout ({e})")
    return [name for name in done.stdout.decode().split("\0") if name]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, zipfile.ZipFile]:
    """The wheel built from a copy of the tracked files, and the folder it is installed in."""
    work = tmp_path_factory.mktemp("wheel")
    clone = work / "clone"
    tracked = _tracked_files()
    for name in tracked:
        if not (ROOT / name).is_file():  # a tracked file deleted in the working copy
            continue
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(clone)],
        check=True,
        timeout=300,
    )
    (wheel,) = (work / "dist").glob("greenprint-*.whl")
    target = work / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    return target, zipfile.ZipFile(wheel)


def test_the_wheel_holds_every_tracked_file_of_the_package(
    installed: tuple[Path, zipfile.ZipFile],
) -> None:
    """Every file git tracks under ``src/greenprint`` (modules, the CPU/GPU TDP tables, the grid
    intensity tables and their sources, ``py.typed``) is in the wheel, and the ``greenprint``
    command is its entry point."""
    _, wheel = installed
    names = set(wheel.namelist())
    package = [n.removeprefix("src/") for n in _tracked_files() if n.startswith("src/greenprint/")]
    assert package, "no tracked file under src/greenprint"
    missing = sorted(n for n in package if n not in names)
    assert not missing, f"tracked but not in the wheel: {missing}"
    assert any(n.endswith(".csv") for n in package)  # the data tables are among them
    (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "greenprint = greenprint.cli:main" in wheel.read(entry_points).decode()


def test_the_installed_wheel_tracks_reports_and_reads_its_tables(
    installed: tuple[Path, zipfile.ZipFile], tmp_path: Path
) -> None:
    """Installed on its own, in an empty directory with a clean environment: a tracked run is
    written to the default ledger, the ``greenprint`` command (the wheel's script) reports it
    and prints a region's grid intensity from the shipped table."""
    target, _ = installed
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), env.get("PYTHONPATH")) if p)
    env["HOME"] = str(tmp_path / "home")
    home = Path(env["HOME"])
    home.mkdir()
    work = tmp_path / "empty"
    work.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run(
        sys.executable,
        "-c",
        "import greenprint as gp\n"
        "with gp.track('first', study='s') as run:\n"
        "    run.log(accuracy=0.9)\n"
        "print(gp.__file__)",
    )
    assert Path(where.strip()).is_relative_to(target)  # the wheel's code, not the source tree's
    script = target / "bin" / "greenprint"
    run(sys.executable, str(script), "report", "--format", "md", "--no-plots")
    (written,) = (work / "greenprint-report").glob("*.md")
    report = written.read_text()
    assert "first" in report and "kWh" in report
    intensity = run(sys.executable, str(script), "intensity", "FR")
    assert "g CO2-eq/kWh" in intensity and "table:FR:" in intensity
