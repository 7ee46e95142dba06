"""A GPU meter that fails before measuring anything continues with an honest estimate.

Its mean power so far is no figure (0 W over nothing): ``powermetrics`` dying before its first
sample used to record ``estimate:gpu:mean-power (0 W)``. It now continues with the GPU's TDP
estimate (the shipped table), or, where no TDP is known (Apple's GPUs), a labelled
``estimate:gpu:unknown (...)`` that adds nothing and says why; the failure is named after it.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from greenprint._provenance import Provenance
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._apple import PowermetricsMeter, PowermetricsSource
from greenprint.testing import FakeGPU, FakeNVML, make_fake_powermetrics, powermetrics_plist
from greenprint.testing import _nvml as nvml_codes


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _wait_for_estimate(meters, component: str) -> None:
    deadline = time.monotonic() + 20.0
    while not meters.provenance[component].startswith("estimate:"):
        assert time.monotonic() < deadline, "powermetrics never failed"
        meters.read()  # never raises
        time.sleep(0.02)


def test_powermetrics_dying_before_its_first_sample_is_unknown_not_zero_watts(
    tmp_path, no_other_hardware, monkeypatch
):
    command = make_fake_powermetrics(
        tmp_path, [powermetrics_plist(cpu_mw=2000, gpu_mw=800)], behaviour="not-root"
    )
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", command)
    mac = dataclasses.replace(detect_hardware(), cpu_model="Apple M2")
    meters = detect_meters(hardware=mac)
    try:
        assert meters.provenance["gpu"] == "powermetrics:gpu+ane"
        meters.start()
        _wait_for_estimate(meters, "gpu")
        reading = meters.read()["gpu"]
        prov = meters.provenance["gpu"]
        assert prov == (
            "estimate:gpu:unknown (powermetrics sent no sample; no GPU TDP known for Apple M2: "
            "GPU energy not counted) (powermetrics failed: powermetrics exited with status 1: "
            "powermetrics must be invoked as the superuser)"
        )
        assert "mean-power" not in prov
        origin = Provenance.parse(prov)
        assert origin.is_estimate and str(origin) == prov
        assert reading.machine_j == 0.0  # nothing measured, nothing made up
        assert meters.provenance["cpu"].startswith("estimate:")  # the CPU estimate took over
    finally:
        meters.close()


def test_powermetrics_dying_after_a_sample_continues_at_its_mean_power(
    tmp_path, no_other_hardware, monkeypatch
):
    sample = powermetrics_plist(cpu_mw=2000, gpu_mw=800)
    command = make_fake_powermetrics(
        tmp_path, [sample], behaviour="die", die_after=1, interval_s=0.02
    )
    monkeypatch.setenv("GREENPRINT_POWERMETRICS", command)
    meters = detect_meters()
    try:
        meters.start()
        _wait_for_estimate(meters, "gpu")
        assert meters.provenance["gpu"].startswith("estimate:gpu:mean-power (")
    finally:
        meters.close()


def test_the_hook_is_for_the_gpu_before_any_sample_only():
    source = PowermetricsSource(["true"])
    assert PowermetricsMeter("cpu", source, chip="Apple M2").estimate_if_unmeasured(since=0) is None
    unknown = PowermetricsMeter("gpu", source).estimate_if_unmeasured(since=0)
    assert unknown is not None
    assert unknown.provenance == (
        "estimate:gpu:unknown (powermetrics sent no sample; no GPU TDP known for this Mac: "
        "GPU energy not counted)"
    )
    source._samples = 1
    assert PowermetricsMeter("gpu", source).estimate_if_unmeasured(since=0) is None


@pytest.mark.parametrize("at", ["start", "first read"])
def test_nvml_failing_before_any_read_continues_with_the_tdp_estimate(at):
    gpu = FakeGPU(name="NVIDIA A100-SXM4-40GB", energy_mj=0, power_w=250.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    try:
        if at == "start":
            gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_GPU_IS_LOST)
        meters.start()
        clock.t += 2.0
        gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_GPU_IS_LOST)
        reading = meters.read()["gpu"]  # never raises
        prov = meters.provenance["gpu"]
        assert prov == (
            "estimate:gpu-tdp:GPU-0 (GPU-0 NVIDIA A100-SXM4-40GB 400 W table:NVIDIA A100 SXM4, "
            "utilisation unknown: full load) (nvml failed: GPU-0: "
            "nvmlDeviceGetTotalEnergyConsumption failed: GPU is lost)"
        )
        assert Provenance.parse(prov).is_estimate
        # first principles: the table's 400 W at full load from the start, 2 s
        assert reading.machine_j == pytest.approx(800.0)
        clock.t += 1.0
        assert meters.read()["gpu"].machine_j == pytest.approx(1200.0)
    finally:
        meters.close()
    assert nvml.init_count == 0


def test_a_mig_slice_failing_before_any_read_is_its_share_of_the_parent_tdp():
    from greenprint.testing import FakeMigDevice

    mig = FakeMigDevice(profile="3g.20gb", slices=3, memory_gb=19.5)
    gpu = FakeGPU(name="NVIDIA A100-SXM4-40GB", mig=True, mig_devices=[mig])
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": mig.uuid}, clock=clock)
    try:
        meters.start()
        gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml_codes.NVML_ERROR_GPU_IS_LOST)
        clock.t += 1.0
        reading = meters.read()["gpu"]
        share = 3 / 7  # compute slices of the parent (see meters/_mig.py)
        assert reading.machine_j == pytest.approx(400.0 * share)
        assert f"table:NVIDIA A100 SXM4 x {share:g}" in meters.provenance["gpu"]
    finally:
        meters.close()
