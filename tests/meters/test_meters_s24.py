"""Session 24: NVML on real hardware, as a user meets it (with the fake NVML: no GPU here).

1. One GPU failing at its *first* read (``NVMLError_Unknown``, ``GPU_IS_LOST``: it opened, then
   fell off the bus) no longer fails the whole NVML meter, which made every GPU a TDP estimate:
   the healthy GPUs stay measured, the failing one is estimated from its TDP, and the provenance
   says which and why (NVML and, since session 25, amdsmi estimate it).
2. ``greenprint hardware`` says why a pre-Volta GPU is power-sampled.
"""

from __future__ import annotations

import os

import pytest

from greenprint._provenance import Provenance
from greenprint.meters import ProcessTree, detect_meters
from greenprint.meters._nvml import NvmlMeter, probe_nvml
from greenprint.testing import FakeGPU, FakeGpuProcess, FakeNVML
from greenprint.testing import _nvml as codes

A100 = "NVIDIA A100-SXM4-40GB"  # the shipped table: 400 W (NVIDIA A100 SXM4)


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("code", "said"),
    [(codes.NVML_ERROR_UNKNOWN, "Unknown Error"), (codes.NVML_ERROR_GPU_IS_LOST, "GPU is lost")],
)
def test_one_gpu_failing_at_its_first_read_is_estimated_the_other_stays_measured(code, said):
    healthy = FakeGPU(name=A100, energy_mj=5_000_000, power_w=250.0)
    failing = FakeGPU(name=A100, energy_mj=7_000_000, power_w=300.0)
    nvml, clock = FakeNVML([healthy, failing]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        # it opened (its counter answered then); its first read, at the run's start, fails
        failing.fail("nvmlDeviceGetTotalEnergyConsumption", code)
        meters.start()
        clock.t += 2.0
        nvml.advance(2.0)
        reading = meters.read()["gpu"]  # never raises
        prov = meters.provenance["gpu"]
        assert prov == (
            "nvml:counter:GPU-0+nvml:tdp-estimate:GPU-1 (GPU-1 failed at its first read "
            f"(nvmlDeviceGetTotalEnergyConsumption failed: {said}): estimated from its TDP, "
            f"{A100} 400 W table:NVIDIA A100 SXM4, utilisation unknown: full load)"
        )
        assert str(Provenance.parse(prov)) == prov
        # GPU-0 from its counter (250 W x 2 s), GPU-1 at the table's 400 W (full load) x 2 s;
        # before, both were the TDP estimate: 2 x 400 W x 2 s = 1600 J
        assert reading.machine_j == pytest.approx(500.0 + 800.0)
        clock.t += 1.0
        nvml.advance(1.0)
        healthy.power_w = 100.0
        nvml.advance(1.0)
        clock.t += 1.0
        # the counter still read: 250 W x 1 s + 100 W x 1 s; GPU-1 400 W x 2 s
        assert meters.read()["gpu"].machine_j == pytest.approx(1300.0 + 350.0 + 800.0)
        assert meters.provenance["gpu"] == prov
    finally:
        meters.close()
    assert nvml.init_count == 0


def test_a_pre_volta_gpu_failing_at_its_first_power_read_is_estimated_too():
    healthy = FakeGPU(name=A100, energy_mj=0, power_w=200.0)
    old = FakeGPU(name="Tesla P100-PCIE-16GB", energy_mj=None, power_w=150.0)
    nvml, clock = FakeNVML([old, healthy]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    try:
        old.fail("nvmlDeviceGetPowerUsage", codes.NVML_ERROR_UNKNOWN)
        meter.start()
        clock.t += 4.0
        nvml.advance(4.0)
        reading = meter.read()
        assert meter.provenance.startswith("nvml:counter:GPU-1+nvml:tdp-estimate:GPU-0 (GPU-0 ")
        assert "failed at its first read (nvmlDeviceGetPowerUsage failed: Unknown Error)" in (
            meter.provenance
        )
        tdp_w = float(meter.provenance.split("Tesla P100-PCIE-16GB ", 1)[1].split(" W ", 1)[0])
        assert reading.machine_j == pytest.approx(200.0 * 4 + tdp_w * 4)
    finally:
        meter.close()


def test_every_gpu_failing_at_its_first_read_still_fails_the_meter_for_the_tdp_estimate():
    gpus = [FakeGPU(name=A100), FakeGPU(name=A100)]
    nvml, clock = FakeNVML(gpus), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        for gpu in gpus:
            gpu.fail("nvmlDeviceGetTotalEnergyConsumption", codes.NVML_ERROR_UNKNOWN)
        meters.start()
        clock.t += 1.0
        reading = meters.read()["gpu"]
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:gpu-tdp:GPU-0+GPU-1 (")
        assert prov.endswith(
            "(nvml failed: GPU-0: nvmlDeviceGetTotalEnergyConsumption failed: Unknown Error)"
        )
        assert reading.machine_j == pytest.approx(800.0)
    finally:
        meters.close()


def test_the_last_measured_gpu_failing_later_fails_the_meter_not_the_estimate_alone():
    """With one GPU estimated, the other failing mid-run is no GPU measured: the meter fails."""
    healthy = FakeGPU(name=A100, energy_mj=0, power_w=200.0)
    failing = FakeGPU(name=A100, energy_mj=0, power_w=200.0)
    nvml, clock = FakeNVML([healthy, failing]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        failing.fail("nvmlDeviceGetTotalEnergyConsumption", codes.NVML_ERROR_UNKNOWN)
        meters.start()
        clock.t += 2.0
        nvml.advance(2.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(400.0 + 800.0)
        healthy.fail("nvmlDeviceGetTotalEnergyConsumption", codes.NVML_ERROR_GPU_IS_LOST)
        clock.t += 1.0
        reading = meters.read()["gpu"]
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:gpu:mean-power (")
        assert "(nvml failed: GPU-0: nvmlDeviceGetTotalEnergyConsumption failed: GPU is lost)" in (
            prov
        )
        assert reading.machine_j == pytest.approx(1200.0 + 600.0)  # the mean so far: 600 W
    finally:
        meters.close()


def test_the_estimated_gpu_is_attributed_while_it_lists_its_processes_and_said_when_not():
    """Its energy is a TDP estimate, but whose it is still follows NVML's process list: the
    tree's share of it while the list reads; a GPU lost for every call cannot list, so the run
    cannot attribute (the provenance says which GPU and why) rather than take a share of 0."""
    me = os.getpid()
    healthy = FakeGPU(name=A100, energy_mj=0, power_w=200.0, processes=[FakeGpuProcess(me, 2**30)])
    failing = FakeGPU(name=A100, energy_mj=0, power_w=200.0, processes=[FakeGpuProcess(me, 2**30)])
    nvml, clock = FakeNVML([healthy, failing]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree(me), clock=clock)
    try:
        failing.fail("nvmlDeviceGetTotalEnergyConsumption", codes.NVML_ERROR_UNKNOWN)
        meter.start()
        clock.t += 1.0
        nvml.advance(1.0)
        reading = meter.read()
        assert reading.process_j == pytest.approx(reading.machine_j) == pytest.approx(600.0)
        failing.fail("nvmlDeviceGetComputeRunningProcesses", codes.NVML_ERROR_GPU_IS_LOST)
        clock.t += 1.0
        nvml.advance(1.0)
        held = meter.read()  # its last share is kept for a few failed lists, as any GPU's
        assert held.process_j == pytest.approx(1200.0)
        for _ in range(3):
            clock.t += 1.0
            nvml.advance(1.0)
            reading = meter.read()
        assert reading.process_j is None
        assert "GPU-1 not attributed after 4 s: process list failed 4 times in a row" in (
            meter.provenance
        )
    finally:
        meter.close()


# -- 2. why a pre-Volta GPU is power-sampled -------------------------------------------------


def test_hardware_says_why_a_pre_volta_gpu_is_power_sampled():
    nvml = FakeNVML([FakeGPU(name="Tesla P100-PCIE-16GB", energy_mj=None), FakeGPU(name=A100)])
    status, gpus = probe_nvml(nvml, environ={})
    assert status.usable
    assert status.reason == (
        "GPU-0 power sampling (no energy counter (NVML: Not Supported): the total-energy "
        "counter arrives with Volta; power is sampled instead); GPU-1 energy counter"
    )
    assert [g.has_energy_counter for g in gpus] == [False, True]
    # a counter NVML refuses keeps its own reason (not Volta's)
    refused = FakeGPU(
        errors={"nvmlDeviceGetTotalEnergyConsumption": codes.NVML_ERROR_NO_PERMISSION}
    )
    status, _ = probe_nvml(FakeNVML([refused]), environ={})
    assert status.reason == (
        "GPU-0 power sampling (energy counter refused (NVML: Insufficient Permissions): power "
        "sampled)"
    )
