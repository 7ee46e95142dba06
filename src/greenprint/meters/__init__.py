"""Energy meters: RAPL, NVML and estimates, with process-tree attribution.

Most code needs only :func:`detect_meters`::

    from greenprint.meters import detect_meters

    meters = detect_meters()          # this process's tree, the best source per component
    meters.start()
    ...                               # work
    readings = meters.read()          # {"cpu": MeterReading(machine_j, process_j), ...}
    meters.provenance                 # {"cpu": "estimate:default-per-core (4 W/core x 2)", ...}
    meters.close()

Every figure is cumulative joules since ``start()``; ``read()`` never raises (a failing meter is
replaced by an estimate and the provenance says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenprint import _lazy, _public
from greenprint.meters._attribution import ProcessTree, UsageSample
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._estimate import (
    DEFAULT_W_PER_CORE,
    IDLE_FRACTION,
    RAM_W_PER_GB,
    CpuEstimateMeter,
    GpuEstimateMeter,
    RamEstimateMeter,
    cpu_power_w,
)
from greenprint.meters._set import MeterSet, detect_meters
from greenprint.meters._status import GPUInfo, MeterStatus

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.meters._amd import AmdMeter, parse_rocm_visible_devices, probe_amd
    from greenprint.meters._apple import (
        PowermetricsMeter,
        parse_powermetrics_plist,
        parse_powermetrics_text,
        probe_powermetrics,
    )
    from greenprint.meters._gpu_estimate import GpuTdpEstimateMeter, GpuTdpMatch, match_gpu_tdp
    from greenprint.meters._hwmon import HwmonMeter, probe_hwmon_cpu
    from greenprint.meters._intel_gpu import probe_intel_gpu
    from greenprint.meters._mig import MigDevice
    from greenprint.meters._nvml import NvmlMeter, parse_cuda_visible_devices, probe_nvml
    from greenprint.meters._rapl import (
        DEFAULT_RAPL_ROOT,
        RAPL_ROOT_ENV,
        RaplDomain,
        RaplMeter,
        RaplProbe,
        probe_rapl,
    )
    from greenprint.meters._tdp import TDPMatch, match_cpu_tdp, normalise_cpu_model

# name -> module that defines it, imported on first attribute access (PEP 562): a run on a
# machine without RAPL or an NVIDIA GPU imports the vendor modules only to probe for them
_LAZY = {
    "AmdMeter": "greenprint.meters._amd",
    "DEFAULT_RAPL_ROOT": "greenprint.meters._rapl",
    "GpuTdpEstimateMeter": "greenprint.meters._gpu_estimate",
    "GpuTdpMatch": "greenprint.meters._gpu_estimate",
    "MigDevice": "greenprint.meters._mig",
    "match_gpu_tdp": "greenprint.meters._gpu_estimate",
    "parse_rocm_visible_devices": "greenprint.meters._amd",
    "probe_amd": "greenprint.meters._amd",
    "HwmonMeter": "greenprint.meters._hwmon",
    "NvmlMeter": "greenprint.meters._nvml",
    "PowermetricsMeter": "greenprint.meters._apple",
    "RAPL_ROOT_ENV": "greenprint.meters._rapl",
    "RaplDomain": "greenprint.meters._rapl",
    "RaplMeter": "greenprint.meters._rapl",
    "RaplProbe": "greenprint.meters._rapl",
    "TDPMatch": "greenprint.meters._tdp",
    "match_cpu_tdp": "greenprint.meters._tdp",
    "normalise_cpu_model": "greenprint.meters._tdp",
    "parse_cuda_visible_devices": "greenprint.meters._nvml",
    "parse_powermetrics_plist": "greenprint.meters._apple",
    "parse_powermetrics_text": "greenprint.meters._apple",
    "probe_hwmon_cpu": "greenprint.meters._hwmon",
    "probe_intel_gpu": "greenprint.meters._intel_gpu",
    "probe_nvml": "greenprint.meters._nvml",
    "probe_powermetrics": "greenprint.meters._apple",
    "probe_rapl": "greenprint.meters._rapl",
}

__all__ = [
    "AmdMeter",
    "CpuEstimateMeter",
    "DEFAULT_RAPL_ROOT",
    "DEFAULT_W_PER_CORE",
    "GPUInfo",
    "GpuEstimateMeter",
    "GpuTdpEstimateMeter",
    "GpuTdpMatch",
    "HwmonMeter",
    "IDLE_FRACTION",
    "Meter",
    "MeterReading",
    "MeterSet",
    "MeterStatus",
    "MigDevice",
    "NvmlMeter",
    "PowermetricsMeter",
    "ProcessTree",
    "RAM_W_PER_GB",
    "RAPL_ROOT_ENV",
    "RamEstimateMeter",
    "RaplDomain",
    "RaplMeter",
    "RaplProbe",
    "TDPMatch",
    "UsageSample",
    "cpu_power_w",
    "detect_meters",
    "match_cpu_tdp",
    "match_gpu_tdp",
    "normalise_cpu_model",
    "parse_cuda_visible_devices",
    "parse_powermetrics_plist",
    "parse_powermetrics_text",
    "parse_rocm_visible_devices",
    "probe_amd",
    "probe_hwmon_cpu",
    "probe_intel_gpu",
    "probe_nvml",
    "probe_powermetrics",
    "probe_rapl",
]

_public.publish(__name__, globals())


__getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY)
