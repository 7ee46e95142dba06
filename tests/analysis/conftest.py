"""Fixtures for the analysis tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tracking(require_component):
    """greenprint.track, once tracking and what it needs exist (skip until then)."""
    module = pytest.importorskip("greenprint.tracking")
    try:
        with module.track("probe", study="probe", ledger=False, sample_interval_s=0.05):
            pass
    except ImportError as e:  # a part tracking needs is not built yet
        require_component(not (e.name or "").startswith("greenprint"), f"tracking needs {e.name}")
        raise
    return module.track
