"""Where the sensors beyond RAPL live, whether a GPU driver is there, and what to say if not.

Kept apart from the meters so that a machine without hwmon, DRM, macOS or a GPU driver learns so
without importing them (:mod:`greenprint.meters._beyond` and hardware discovery check here
first, and import a vendor module only when its check passes; a run's first start pays for
every import).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from greenprint.meters._status import MeterStatus

__all__ = [
    "CGROUP_ROOT_ENV",
    "DEFAULT_CGROUP_ROOT",
    "DEFAULT_DEV_ROOT",
    "DEFAULT_DRM_ROOT",
    "DEFAULT_HWMON_ROOT",
    "DEFAULT_PROC_DRIVER_ROOT",
    "DEFAULT_USR_BIN_ROOT",
    "DEV_ROOT_ENV",
    "DRM_ROOT_ENV",
    "HWMON_ROOT_ENV",
    "NVIDIA_DRIVER_FIX",
    "POWERMETRICS_ENV",
    "PROC_DRIVER_ROOT_ENV",
    "USR_BIN_ROOT_ENV",
    "absent_amdsmi",
    "absent_hwmon",
    "absent_intel_gpu",
    "absent_nvml",
    "amd_driver_present",
    "dev_path",
    "gpu_may_be_present",
    "no_gpu_found",
    "not_macos",
    "nvidia_driver_present",
    "nvidia_proc_root",
    "powermetrics_path",
    "resolve_cgroup_root",
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
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
#: Environment variable standing for ``/sys/fs/cgroup`` (the device cgroup the GPU estimate
#: reads to know which GPUs a job may open); tests point it at an empty folder.
CGROUP_ROOT_ENV = "GREENPRINT_CGROUP_ROOT"
DEFAULT_USR_BIN_ROOT = "/usr/bin"
#: Environment variable standing for ``/usr/bin`` where ``powermetrics`` is looked for (macOS).
USR_BIN_ROOT_ENV = "GREENPRINT_USR_BIN_ROOT"
NVIDIA_DRIVER_FIX = (
    "install the NVIDIA driver so that nvidia-smi works "
    "(nothing to fix on a machine without an NVIDIA GPU)"
)


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


def resolve_cgroup_root(cgroup_root: str | os.PathLike[str] | None = None) -> Path:
    """Where cgroups are mounted: ``cgroup_root``, else ``$GREENPRINT_CGROUP_ROOT``, else ours."""
    if cgroup_root is not None:
        return Path(cgroup_root)
    return Path(os.environ.get(CGROUP_ROOT_ENV) or DEFAULT_CGROUP_ROOT)


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


def nvidia_driver_present() -> bool:
    """Cheap check (no import) for an NVIDIA driver: Linux device files; never on macOS.

    ``/proc/driver/nvidia``, ``/dev/nvidiactl`` or ``/dev/dxg`` (WSL);
    ``$GREENPRINT_PROC_DRIVER_ROOT`` and ``$GREENPRINT_DEV_ROOT`` stand for ``/proc/driver`` and
    ``/dev`` (tests point them at empty folders).
    """
    if sys.platform == "darwin":
        return False
    if not sys.platform.startswith("linux"):
        return True  # Windows: let NVML say
    paths = (str(nvidia_proc_root()), dev_path("nvidiactl"), dev_path("dxg"))
    return any(os.path.exists(p) for p in paths)


def amd_driver_present() -> bool:
    """Cheap check (no import) for ROCm's kernel driver: ``/dev/kfd``; Linux only.

    ``$GREENPRINT_DEV_ROOT`` stands for ``/dev`` (tests point it at an empty folder).
    """
    return sys.platform.startswith("linux") and os.path.exists(dev_path("kfd"))


def absent_nvml() -> MeterStatus:
    """The ``nvml`` status when :func:`nvidia_driver_present` is false (pynvml not imported)."""
    if sys.platform == "darwin":
        return MeterStatus("nvml", False, "no NVIDIA driver on macOS", None)
    reason = "no NVIDIA driver (no /proc/driver/nvidia or /dev/nvidiactl)"
    return MeterStatus("nvml", False, reason, NVIDIA_DRIVER_FIX)


def absent_amdsmi() -> MeterStatus:
    """The ``amdsmi`` status when :func:`amd_driver_present` is false (amdsmi not imported)."""
    reason = (
        "no AMD GPU driver (no /dev/kfd)"
        if sys.platform.startswith("linux")
        else f"amdsmi needs Linux (this is {sys.platform})"
    )
    return MeterStatus("amdsmi", False, reason, None)


def no_gpu_found() -> MeterStatus:
    """The ``estimate:gpu`` status when no GPU is found to estimate."""
    return MeterStatus("estimate:gpu", False, "no GPU found", None)


def gpu_may_be_present(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the GPU estimate could find a GPU: a few ``stat`` calls, no vendor import.

    False only when the estimate would find none, so :func:`no_gpu_found` can be said without
    importing it: no NVIDIA driver (:func:`nvidia_driver_present`: its ``/proc`` listing is
    where the estimate finds NVIDIA GPUs without NVML), no ``cardN`` under the DRM class
    directory (where it finds AMD GPUs), and no MIG device named in ``CUDA_VISIBLE_DEVICES``
    (which the estimate explains).
    """
    env = os.environ if environ is None else environ
    if "MIG-" in (env.get("CUDA_VISIBLE_DEVICES") or "").upper() or nvidia_driver_present():
        return True
    try:
        names = os.listdir(resolve_drm_root())
    except OSError:
        return False
    return any(n.startswith("card") and n[4:].isdigit() for n in names)
