"""Where the sensors beyond RAPL and NVML live, and what a machine without them is told.

Kept apart from the meters so that a machine without hwmon, DRM or macOS learns so without
importing them (:mod:`greenprint.meters._beyond` checks here first; a run's first start pays for
every import).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from greenprint.meters._status import MeterStatus

__all__ = [
    "DEFAULT_DRM_ROOT",
    "DEFAULT_HWMON_ROOT",
    "DRM_ROOT_ENV",
    "HWMON_ROOT_ENV",
    "POWERMETRICS_ENV",
    "absent_hwmon",
    "absent_intel_gpu",
    "not_macos",
    "resolve_drm_root",
    "resolve_hwmon_root",
]

DEFAULT_HWMON_ROOT = "/sys/class/hwmon"
#: Environment variable overriding the hwmon class directory (tests point it at a fake tree).
HWMON_ROOT_ENV = "GREENPRINT_HWMON_ROOT"
DEFAULT_DRM_ROOT = "/sys/class/drm"
#: Environment variable overriding the DRM class directory (tests point it at a fake tree).
DRM_ROOT_ENV = "GREENPRINT_DRM_ROOT"
#: Environment variable replacing the ``powermetrics`` command (split like a shell would).
POWERMETRICS_ENV = "GREENPRINT_POWERMETRICS"


def resolve_hwmon_root(hwmon_root: str | os.PathLike[str] | None = None) -> Path:
    """The hwmon directory: ``hwmon_root``, else ``$GREENPRINT_HWMON_ROOT``, else the system's."""
    if hwmon_root is not None:
        return Path(hwmon_root)
    return Path(os.environ.get(HWMON_ROOT_ENV) or DEFAULT_HWMON_ROOT)


def resolve_drm_root(drm_root: str | os.PathLike[str] | None = None) -> Path:
    """The DRM directory: ``drm_root``, else ``$GREENPRINT_DRM_ROOT``, else the system's."""
    if drm_root is not None:
        return Path(drm_root)
    return Path(os.environ.get(DRM_ROOT_ENV) or DEFAULT_DRM_ROOT)


def absent_hwmon(root: Path) -> MeterStatus:
    """The ``hwmon`` status when ``root`` does not exist."""
    return MeterStatus("hwmon", False, f"no {root} (not Linux, or no hwmon sensors)", None)


def absent_intel_gpu(root: Path) -> MeterStatus:
    """The ``intel-gpu`` status when ``root`` does not exist."""
    return MeterStatus("intel-gpu", False, f"no Intel GPU (no {root})", None)


def not_macos(
    environ: Mapping[str, str] | None = None, system: str | None = None
) -> MeterStatus | None:
    """The ``powermetrics`` status on a system that is not macOS (no override), else ``None``."""
    env = os.environ if environ is None else environ
    if env.get(POWERMETRICS_ENV) or (sys.platform if system is None else system) == "darwin":
        return None
    return MeterStatus("powermetrics", False, "not macOS (powermetrics meters Apple silicon)", None)
