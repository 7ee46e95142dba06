"""What this machine has: CPU model, sockets, cores, RAM, GPUs, and which meters can be used.

:func:`detect_hardware` never raises and never touches the network; it reads ``/proc/cpuinfo``
(Linux), ``sysctl`` (macOS) or the registry (Windows), psutil, the powercap tree and NVML. Each
meter gets a :class:`MeterStatus`: usable or not, why, and the exact fix. The code lives beside
the meters (``greenprint/meters/_discovery.py``); this module is its public face.

Example:
    >>> from greenprint.hardware import detect_hardware
    >>> hw = detect_hardware()
    >>> [m.name for m in hw.meters]  # doctest: +NORMALIZE_WHITESPACE
    ['rapl', 'nvml', 'amdsmi', 'psys', 'hwmon', 'intel-gpu', 'powermetrics', 'estimate:cpu',
     'estimate:gpu', 'estimate:ram']
"""

from __future__ import annotations

from greenprint import _public
from greenprint.meters._discovery import (
    HardwareInfo,
    cpu_model_name,
    detect_hardware,
    parse_cpuinfo,
)
from greenprint.meters._status import GPUInfo, MeterStatus

__all__ = [
    "GPUInfo",
    "HardwareInfo",
    "MeterStatus",
    "cpu_model_name",
    "detect_hardware",
    "parse_cpuinfo",
]

_public.publish(__name__, globals())
