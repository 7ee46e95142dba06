"""A machine with NVIDIA and AMD GPUs meters both: summed, with a provenance naming both."""

from __future__ import annotations

import os

import pytest

from greenprint._provenance import Provenance
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.testing import FakeAmdGpu, FakeAMDSMI, FakeGPU, FakeGpuProcess, FakeNVML
from greenprint.testing import _amdsmi as amd_codes


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _machine(*, nvidia_w: float = 250.0, amd_w: float = 300.0):
    me = os.getpid()
    nvml = FakeNVML([FakeGPU(power_w=nvidia_w, processes=[FakeGpuProcess(me)])])
    amdsmi = FakeAMDSMI([FakeAmdGpu(name="AMD Instinct MI300X", power_w=amd_w)])
    return nvml, amdsmi


def test_both_vendors_are_metered_and_summed():
    nvml, amdsmi = _machine()
    clock = Clock()
    meters = detect_meters(nvml=nvml, amdsmi=amdsmi, environ={}, clock=clock)
    try:
        prov = meters.provenance["gpu"]
        assert prov == "nvml:counter:GPU-0+amdsmi:counter:GPU-0"
        origin = Provenance.parse(prov)
        assert origin.is_measured and str(origin) == prov
        meters.start()
        clock.t += 2.0
        nvml.advance(2.0)
        amdsmi.advance(2.0)
        reading = meters.read()["gpu"]
        # first principles: (250 W + 300 W) x 2 s
        assert reading.machine_j == pytest.approx(1100.0, abs=1e-3)
        # this process holds all of the NVIDIA GPU's memory and nothing on the AMD one
        assert reading.process_j == pytest.approx(500.0, abs=1e-3)
        assert [g.vendor for g in meters.meter("gpu").gpus] == ["nvidia", "amd"]
    finally:
        meters.close()
    assert nvml.init_count == 0 and amdsmi.init_count == 0  # both libraries released


def test_an_amd_counter_dropped_mid_run_is_named_with_its_vendor():
    nvml, amdsmi = _machine()
    amdsmi.gpus[0].energy_count = 10**12
    clock = Clock()
    meters = detect_meters(nvml=nvml, amdsmi=amdsmi, environ={}, clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        nvml.advance(1.0)
        amdsmi.advance(1.0)
        meters.read()
        amdsmi.gpus[0].energy_count = 10**9  # backwards: sampled power from here
        clock.t += 1.0
        nvml.advance(1.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(1100.0, abs=1e-3)
        assert meters.provenance["gpu"] == (
            "nvml:counter:GPU-0+amdsmi:counter-then-power-sampling:GPU-0 (amdsmi GPU-0 energy "
            "counter went backwards: power sampled after 1 s)"
        )
    finally:
        meters.close()


def test_one_vendor_failing_continues_both_at_their_mean_power_labelled():
    nvml, amdsmi = _machine()
    clock = Clock()
    meters = detect_meters(nvml=nvml, amdsmi=amdsmi, environ={}, clock=clock)
    try:
        meters.start()
        clock.t += 2.0
        nvml.advance(2.0)
        amdsmi.advance(2.0)
        meters.read()
        amdsmi.gpus[0].fail("amdsmi_get_power_info", amd_codes.AMDSMI_STATUS_DRM_ERROR)
        clock.t += 1.0
        reading = meters.read()["gpu"]  # never raises
        assert reading.machine_j == pytest.approx(1650.0, abs=1e-3)  # 550 W mean, 1 s more
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:gpu:mean-power (550 W) (nvml+amdsmi failed: GPU-0: ")
        assert "amdsmi_get_power_info failed" in prov
        assert Provenance.parse(prov).is_estimate
    finally:
        meters.close()
    assert nvml.init_count == 0 and amdsmi.init_count == 0


def test_hardware_lists_both_and_needs_no_estimate():
    nvml, amdsmi = _machine()
    hw = detect_hardware(nvml=nvml, amdsmi=amdsmi)
    assert [(g.vendor, g.name) for g in hw.gpus] == [
        ("nvidia", "NVIDIA A100-SXM4-40GB"),
        ("amd", "AMD Instinct MI300X"),
    ]
    assert hw.meter("nvml").usable and hw.meter("amdsmi").usable
    assert not hw.meter("estimate:gpu").usable


def test_nvidia_alone_is_unchanged():
    nvml = FakeNVML([FakeGPU(power_w=100.0)])
    meters = detect_meters(nvml=nvml, amdsmi=FakeAMDSMI(), environ={})
    try:
        assert meters.provenance["gpu"] == "nvml:counter:GPU-0"
        assert type(meters.meter("gpu")).__name__ == "NvmlMeter"
    finally:
        meters.close()
