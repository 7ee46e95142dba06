"""A new user's surroundings for subprocesses: the venv's tools, no GREENPRINT_* setting, no config.

Used by the tests that run greenprint as a new user meets it (``test_new_user.py``) and by the
documentation examples (``test_docs_examples.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The virtual environment's bin directory: its python, greenprint, pip...
BIN = Path(sys.executable).parent


#: Settings a new user has not made: greenprint's, and those of the loggers greenprint writes to
#: (a developer's ``MLFLOW_TRACKING_URI`` or ``WANDB_MODE``/``WANDB_API_KEY`` would send the
#: examples' runs to their server, or change what the loggers print)
NOT_A_NEW_USERS = ("GREENPRINT_", "MLFLOW_", "WANDB_")


def clean_env() -> dict[str, str]:
    """This process's environment without GREENPRINT_*, MLFLOW_* or WANDB_* settings, the venv's
    bin first on PATH.

    The test suite's network guard is kept: ``PYTHONPATH`` (which carries ``tests/_guard``) and
    ``GREENPRINT_NETWORK_GUARD*``.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(NOT_A_NEW_USERS) or key.startswith("GREENPRINT_NETWORK_GUARD")
    }
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def configured_above(directory: Path) -> list[Path]:
    """Config files greenprint would read in ``directory`` (a new user has none)."""
    found = []
    for folder in (directory, *directory.parents):
        if (folder / "greenprint.toml").is_file():
            found.append(folder / "greenprint.toml")
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                table = tomllib.loads(pyproject.read_text()).get("tool", {}).get("greenprint")
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                table = None
            if table is not None:
                found.append(pyproject)
    return found
