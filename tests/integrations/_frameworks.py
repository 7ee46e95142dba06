"""Import a framework an integration test needs: skip without it, but fail under ``CI=true``.

``make test`` installs every framework (they are in the ``dev`` extra), so in CI a missing one
is a broken environment, not a reason to skip (as ``require_component`` in tests/conftest.py).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(module: str, extra: str) -> ModuleType:
    """Import ``module`` for a whole test module, or skip it (fail under ``CI=true``)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        reason = f"{module} is not installed (pip install 'greenprint[{extra}]')"
        if IN_CI:
            pytest.fail(f"required component missing under CI=true: {reason}: {e}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
