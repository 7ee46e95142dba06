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
    "DEFAULT_DEV_ROOT",
    "DEFAULT_DRM_ROOT",
    "DEFAULT_HWMON_ROOT",
    "DEFAULT_PROC_DRIVER_ROOT",
    "DEFAULT_USR_BIN_ROOT",
    "DEV_ROOT_ENV",
    "DRM_ROOT_ENV",
    "HWMON_ROOT_ENV",
    "POWERMETRICS_ENV",
    "PROC_DRIVER_ROOT_ENV",
    "USR_BIN_ROOT_ENV",
    "absent_hwmon",
    "absent_intel_gpu",
    "dev_path",
    "not_macos",
    "nvidia_proc_root",
    "powermetrics_path",
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
DEFAULT_DEV_ROOT = "/dev"
#: Environment variable standing for ``/dev`` in the GPU drivers' presence checks (``kfd``,
#: ``nvidiactl``, ``dxg``); tests point it at an empty folder.
DEV_ROOT_ENV = "GREENPRINT_DEV_ROOT"
DEFAULT_PROC_DRIVER_ROOT = "/proc/driver"
#: Environment variable standing for ``/proc/driver`` (``nvidia/``: the NVIDIA driver's listing).
PROC_DRIVER_ROOT_ENV = "GREENPRINT_PROC_DRIVER_ROOT"
DEFAULT_USR_BIN_ROOT = "/usr/bin"
#: Environment variable standing for ``/usr/bin`` where ``powermetrics`` is looked for (macOS).
USR_BIN_ROOT_ENV = "GREENPRINT_USR_BIN_ROOT"


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


def dev_path(name: str) -> str:
    """A device file's path: ``/dev/<name>``, under ``$GREENPRINT_DEV_ROOT`` when it is set."""
    return os.path.join(os.environ.get(DEV_ROOT_ENV) or DEFAULT_DEV_ROOT, name)


def nvidia_proc_root() -> Path:
    """The NVIDIA driver's ``/proc/driver/nvidia`` (under ``$GREENPRINT_PROC_DRIVER_ROOT``)."""
    return Path(os.environ.get(PROC_DRIVER_ROOT_ENV) or DEFAULT_PROC_DRIVER_ROOT) / "nvidia"


def powermetrics_path() -> str:
    """Where ``powermetrics`` is: ``/usr/bin/powermetrics`` (under ``$GREENPRINT_USR_BIN_ROOT``)."""
    return os.path.join(os.environ.get(USR_BIN_ROOT_ENV) or DEFAULT_USR_BIN_ROOT, "powermetrics")


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
