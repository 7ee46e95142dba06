"""Fixtures shared by the meter tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_other_hardware(tmp_path, monkeypatch):
    """Every other probe points at a place that does not exist: no powercap, hwmon or DRM tree.

    (Every test already gets empty folders for them from ``tests/conftest.py``; these tests
    check the messages for trees that are absent.)
    """
    monkeypatch.setenv("GREENPRINT_RAPL_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("GREENPRINT_HWMON_ROOT", str(tmp_path / "no-hwmon"))
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(tmp_path / "no-drm"))
    return tmp_path
