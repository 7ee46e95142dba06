"""Fakes for hardware greenprint cannot count on: a powercap (RAPL) tree and NVML.

Use them to test code that meters energy on machines without RAPL or NVIDIA GPUs::

    from greenprint.meters import detect_meters
    from greenprint.testing import FakeGPU, FakeNVML, make_fake_rapl

    rapl = make_fake_rapl(tmp_path / "powercap", packages=2, dram=True, psys=True)
    nvml = FakeNVML([FakeGPU(energy_mj=0, power_w=250.0)])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=nvml)
    meters.start()
    rapl.advance(package_j=10.0, dram_j=2.0)   # 10 J per package, 2 J per DRAM domain
    nvml.advance(1.0)                          # 1 s at 250 W
    meters.read()["cpu"].machine_j             # 20.0

A subprocess finds the fake RAPL tree through ``GREENPRINT_RAPL_ROOT``. Also: fake hwmon sensors
(:func:`make_fake_hwmon`, Arm servers' CPU counters and the ACPI power meter;
:func:`make_fake_intel_gpu`, i915/xe cards under ``/sys/class/drm``, and
:func:`make_fake_pci_ids`, the ``pci.ids`` that names them), found by a subprocess
through ``GREENPRINT_HWMON_ROOT``/``GREENPRINT_DRM_ROOT``/``GREENPRINT_HWDATA_ROOT``; and a fake
``powermetrics``
(:func:`make_fake_powermetrics`, run through ``GREENPRINT_POWERMETRICS``).
"""

from __future__ import annotations

from greenprint import _public
from greenprint.testing._amdsmi import (
    AmdSmiException,
    AmdSmiLibraryException,
    FakeAmdGpu,
    FakeAmdProcess,
    FakeAMDSMI,
)
from greenprint.testing._hwmon import (
    FakeSensors,
    make_fake_hwmon,
    make_fake_intel_gpu,
    make_fake_pci_ids,
)
from greenprint.testing._nvml import FakeGPU, FakeGpuProcess, FakeMigDevice, FakeNVML, NVMLError
from greenprint.testing._powermetrics import (
    NOT_ROOT_MESSAGE,
    make_fake_powermetrics,
    powermetrics_plist,
)
from greenprint.testing._rapl import DEFAULT_MAX_ENERGY_RANGE_UJ, FakeRapl, make_fake_rapl

__all__ = [
    "AmdSmiException",
    "AmdSmiLibraryException",
    "DEFAULT_MAX_ENERGY_RANGE_UJ",
    "FakeAMDSMI",
    "FakeAmdGpu",
    "FakeAmdProcess",
    "FakeGPU",
    "FakeGpuProcess",
    "FakeMigDevice",
    "FakeNVML",
    "FakeRapl",
    "FakeSensors",
    "NOT_ROOT_MESSAGE",
    "NVMLError",
    "make_fake_hwmon",
    "make_fake_intel_gpu",
    "make_fake_pci_ids",
    "make_fake_powermetrics",
    "make_fake_rapl",
    "powermetrics_plist",
]

_public.publish(__name__, globals())
