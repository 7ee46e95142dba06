"""Meters beyond RAPL and NVML: which one meters the CPU or the GPU, when, and their statuses.

The chain, per component (the first that works is used; the rest are listed by
``greenprint hardware`` with why not):

* ``cpu``: RAPL package domains -> hwmon CPU sensors (Arm servers,
  :func:`~greenprint.meters._hwmon.probe_hwmon_cpu`) -> ``powermetrics`` (Apple silicon) ->
  RAPL ``psys`` (platform energy, only when nothing else meters the CPU) -> the TDP estimate.
* ``gpu``: NVML -> AMD (amdsmi) -> the estimate of an NVIDIA or AMD GPU whose counter cannot be
  read -> Intel GPUs through hwmon -> the TDP estimate of a discrete Intel GPU without a counter
  (when the table knows it; else "unknown", said by ``greenprint hardware``) -> ``powermetrics``
  (GPU + Neural Engine) -> nothing.
* ``ram``: RAPL DRAM domains -> the W/GB estimate; when ``psys`` meters the CPU, memory is inside
  its figure, so ``ram`` is not metered separately (no double count) and should ``psys`` fail,
  the estimate that takes over is the CPU estimate plus the RAM estimate.

On a machine with none of these (no hwmon, no DRM, not macOS) nothing is added and nothing
changes. Probes read a few sysfs files; ``powermetrics`` is probed (``sudo -n -l``) only on
Apple silicon, once per :func:`~greenprint.hardware.detect_hardware` cache entry.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, MutableMapping

from greenprint._provenance import Provenance
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._rapl import Opener, RaplMeter, RaplProbe
from greenprint.meters._status import MeterStatus
from greenprint.meters._where import (
    CGROUP_ROOT_ENV,
    DEV_ROOT_ENV,
    DRM_ROOT_ENV,
    HWMON_ROOT_ENV,
    POWERMETRICS_ENV,
    PROC_DRIVER_ROOT_ENV,
    USR_BIN_ROOT_ENV,
    absent_hwmon,
    absent_intel_gpu,
    not_macos,
    resolve_drm_root,
    resolve_hwmon_root,
)

__all__ = ["PlatformEstimate", "add_meters_beyond", "beyond_cache_key", "beyond_statuses"]

logger = logging.getLogger(__name__)

#: Every override of a path the probes read (the GPU drivers' presence checks in NVML and
#: amdsmi's probes too: detection is cached on all of them).
_ENV = (
    HWMON_ROOT_ENV,
    DRM_ROOT_ENV,
    POWERMETRICS_ENV,
    DEV_ROOT_ENV,
    PROC_DRIVER_ROOT_ENV,
    USR_BIN_ROOT_ENV,
    CGROUP_ROOT_ENV,
    "GREENPRINT_HWDATA_ROOT",  # _intel_gpu.HWDATA_ROOT_ENV (pci.ids), not imported here
)


def beyond_cache_key(environ: Mapping[str, str] | None = None) -> tuple[str | None, ...]:
    """The environment these probes depend on (part of the hardware cache key)."""
    env = os.environ if environ is None else environ
    return tuple(env.get(name) for name in _ENV)


def beyond_statuses(
    rapl: RaplProbe, *, environ: Mapping[str, str] | None = None
) -> tuple[MeterStatus, ...]:
    """Statuses of ``psys``, ``hwmon``, ``intel-gpu`` and ``powermetrics``. Never raises.

    A meter's module is imported only when its sensors may be there (the directory exists,
    or this is macOS).
    """
    psys = rapl.psys_status or MeterStatus("psys", False, "no psys domain", None)
    hwmon_root, drm_root = resolve_hwmon_root(), resolve_drm_root()
    if hwmon_root.is_dir():
        from greenprint.meters._hwmon import probe_hwmon_cpu

        hwmon = probe_hwmon_cpu(hwmon_root).status
    else:
        hwmon = absent_hwmon(hwmon_root)
    if drm_root.is_dir():
        from greenprint.meters._intel_gpu import probe_intel_gpu

        intel = probe_intel_gpu(drm_root).status
    else:
        intel = absent_intel_gpu(drm_root)
    apple = not_macos(environ)
    if apple is None:
        from greenprint.meters._apple import probe_powermetrics

        apple = probe_powermetrics(environ=environ).status
    return (psys, hwmon, intel, apple)


class PlatformEstimate(Meter):
    """The CPU estimate plus the RAM estimate: what takes over when ``psys`` fails.

    ``psys`` covers the packages and memory; when it meters ``cpu`` the set has no ``ram``
    component, so its stand-in must cover both.
    """

    component = "cpu"

    def __init__(self, cpu: Meter, ram: Meter) -> None:
        self._cpu = cpu
        self._ram = ram

    @property
    def origin(self) -> Provenance:
        """``estimate:cpu+ram (<cpu estimate> + <ram estimate>)``."""
        return Provenance("estimate", "cpu+ram", f"{self._cpu.provenance} + {self._ram.provenance}")

    @property
    def provenance(self) -> str:
        """See :attr:`origin`."""
        return str(self.origin)

    def start(self) -> None:
        """Start both estimates."""
        self._cpu.start()
        self._ram.start()

    def read(self) -> MeterReading:
        """Cumulative energy of both, in J."""
        cpu, ram = self._cpu.read(), self._ram.read()
        process = None
        if cpu.process_j is not None and ram.process_j is not None:
            process = cpu.process_j + ram.process_j
        return MeterReading(cpu.machine_j + ram.machine_j, process)

    def close(self) -> None:
        """Close both."""
        self._cpu.close()
        self._ram.close()


def _usable_or_unknown(statuses: Mapping[str, MeterStatus], name: str) -> bool:
    status = statuses.get(name)
    return status is None or status.usable


def add_meters_beyond(
    meters: MutableMapping[str, Meter],
    estimates: MutableMapping[str, Meter],
    *,
    statuses: Mapping[str, MeterStatus],
    rapl: RaplProbe,
    tree: ProcessTree,
    environ: Mapping[str, str] | None = None,
    rapl_opener: Opener = open,
    clock: Callable[[], float] = time.monotonic,
    cpu_model: str = "",
) -> None:
    """Fill the components still estimated (``cpu``) or absent (``gpu``).

    A ``gpu`` estimate already there stands for a GPU of another vendor whose counter cannot be
    read; it is kept rather than replaced by a meter of a different GPU.

    Args:
        meters: component -> meter chosen so far; updated in place.
        estimates: component -> shadow estimate; updated in place (``psys``: see the module).
        statuses: meter name -> status from the hardware detection (a probe whose status says
            unusable is skipped; a missing one is probed).
        rapl: the RAPL probe (for ``psys``).
        tree: the tracked process tree.
        environ: environment (``GREENPRINT_POWERMETRICS``).
        rapl_opener: opens RAPL files.
        clock: monotonic clock in s.
        cpu_model: the CPU's name (``"Apple M2"``: the chip, for its GPU's estimate).
    """
    env = os.environ if environ is None else environ
    cpu_free = "cpu" not in meters or meters["cpu"].is_estimate
    gpu_free = "gpu" not in meters  # an estimate there is of another GPU: keep it
    if not (cpu_free or gpu_free):
        return
    if cpu_free and _usable_or_unknown(statuses, "hwmon"):
        from greenprint.meters._hwmon import HwmonMeter, probe_hwmon_cpu

        probe = probe_hwmon_cpu()
        if probe.channels:
            meters["cpu"] = HwmonMeter(
                "cpu", probe.channels, origin=probe.origin, tree=tree, clock=clock
            )
            cpu_free = False
    intel = statuses.get("intel-gpu")
    # a card without a counter that the table knows: discovery said "estimated at"
    estimable = intel is not None and not intel.usable and "estimated at" in intel.reason
    if gpu_free and (_usable_or_unknown(statuses, "intel-gpu") or estimable):
        from greenprint.meters._hwmon import HwmonMeter
        from greenprint.meters._intel_gpu import probe_intel_gpu

        gpu_probe = probe_intel_gpu()
        if gpu_probe.channels:
            meters["gpu"] = HwmonMeter(
                "gpu", gpu_probe.channels, origin=gpu_probe.origin, clock=clock
            )
            gpu_free = False
        elif gpu_probe.estimated:
            from greenprint.meters._gpu_tdp import GpuTdpEstimateMeter

            meters["gpu"] = GpuTdpEstimateMeter(list(gpu_probe.estimated), clock=clock)
            gpu_free = False
    apple = statuses.get("powermetrics")
    if (cpu_free or gpu_free) and (apple is None or apple.usable):
        from greenprint.meters._apple import (
            PowermetricsMeter,
            PowermetricsSource,
            powermetrics_argv,
            probe_powermetrics,
        )

        argv = (
            powermetrics_argv(environ=env)
            if apple is not None
            else list(probe_powermetrics(environ=env).argv)
        )
        if argv:
            source = PowermetricsSource(argv, clock=clock)
            if cpu_free:
                meters["cpu"] = PowermetricsMeter("cpu", source, tree=tree)
                cpu_free = False
            if gpu_free:
                meters["gpu"] = PowermetricsMeter("gpu", source, chip=cpu_model)
                gpu_free = False
    if cpu_free and rapl.psys is not None:
        meters["cpu"] = RaplMeter("cpu", [rapl.psys], tree=tree, opener=rapl_opener, clock=clock)
        cpu_estimate, ram_estimate = estimates.get("cpu"), estimates.pop("ram", None)
        meters.pop("ram", None)  # inside psys
        if cpu_estimate is not None and ram_estimate is not None:
            estimates["cpu"] = PlatformEstimate(cpu_estimate, ram_estimate)
        logger.info("no CPU counter but psys: the CPU figure is platform energy (RAM inside)")
