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

from greenprint import _public
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
from greenprint.meters._nvml import NvmlMeter, parse_cuda_visible_devices, probe_nvml
from greenprint.meters._rapl import (
    DEFAULT_RAPL_ROOT,
    RAPL_ROOT_ENV,
    RaplDomain,
    RaplMeter,
    RaplProbe,
    probe_rapl,
)
from greenprint.meters._set import MeterSet, detect_meters
from greenprint.meters._status import GPUInfo, MeterStatus
from greenprint.meters._tdp import TDPMatch, match_cpu_tdp, normalise_cpu_model

__all__ = [
    "CpuEstimateMeter",
    "DEFAULT_RAPL_ROOT",
    "DEFAULT_W_PER_CORE",
    "GPUInfo",
    "GpuEstimateMeter",
    "IDLE_FRACTION",
    "Meter",
    "MeterReading",
    "MeterSet",
    "MeterStatus",
    "NvmlMeter",
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
    "normalise_cpu_model",
    "parse_cuda_visible_devices",
    "probe_nvml",
    "probe_rapl",
]

_public.publish(__name__, globals())
