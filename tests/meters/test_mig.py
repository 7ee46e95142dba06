"""MIG slices through FakeNVML: metered as their share of the parent GPU, never a crash or a
silent zero; the fake's MIG surface matches pynvml's."""

from __future__ import annotations

import ctypes
import os

import pynvml
import pytest

from greenprint.meters import NvmlMeter, ProcessTree, probe_nvml
from greenprint.meters._mig import visible_targets
from greenprint.testing import FakeGPU, FakeGpuProcess, FakeNVML
from greenprint.testing._nvml import FakeMigDevice


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def a100(*migs: FakeMigDevice, power_w: float = 350.0) -> FakeGPU:
    return FakeGPU(name="NVIDIA A100-SXM4-40GB", power_w=power_w, mig=True, mig_devices=list(migs))


def slices(gi: int, n: int, *, processes=()) -> FakeMigDevice:
    return FakeMigDevice(
        profile=f"{n}g.{5 * n}gb",
        slices=n,
        memory_gb=4.75 * n,
        gpu_instance_id=gi,
        processes=list(processes),
    )


# -- the fake behaves like NVML --------------------------------------------------------------


def test_fake_mig_functions_exist_in_pynvml_with_the_same_parameters():
    import inspect

    for name in (
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
        "nvmlDeviceIsMigDeviceHandle",
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
        "nvmlDeviceGetAttributes",
        "nvmlDeviceGetGpuInstanceId",
        "nvmlDeviceGetComputeInstanceId",
    ):
        real = list(inspect.signature(getattr(pynvml, name)).parameters)
        fake = list(inspect.signature(getattr(FakeNVML, name)).parameters)[1:]
        assert fake == real, name
    fields = {f for f, _ in pynvml.c_nvmlDeviceAttributes._fields_}
    nvml = FakeNVML([a100(slices(1, 1))])
    nvml.nvmlInit()
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(nvml.nvmlDeviceGetHandleByIndex(0), 0)
    assert fields <= set(vars(nvml.nvmlDeviceGetAttributes(mig)))


def test_fake_mig_handles_behave_like_nvml():
    nvml = FakeNVML([a100(slices(1, 1), slices(2, 3)), FakeGPU()])
    nvml.nvmlInit()
    parent = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetCount() == 2  # parents only
    assert nvml.nvmlDeviceGetMigMode(parent) == [
        pynvml.NVML_DEVICE_MIG_ENABLE,
        pynvml.NVML_DEVICE_MIG_ENABLE,
    ]
    with pytest.raises(nvml.NVMLError_NotSupported):  # a GPU without MIG
        nvml.nvmlDeviceGetMigMode(nvml.nvmlDeviceGetHandleByIndex(1))
    mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 1)
    with pytest.raises(nvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 5)
    flag = nvml.nvmlDeviceIsMigDeviceHandle(mig)
    assert isinstance(flag, ctypes.c_uint) and flag.value == 1  # pynvml returns the c_uint
    assert nvml.nvmlDeviceGetUUID(mig).startswith("MIG-")
    assert nvml.nvmlDeviceGetName(mig) == "NVIDIA A100-SXM4-40GB MIG 3g.15gb"
    with pytest.raises(nvml.NVMLError_NotSupported):  # energy is the parent's, as in NVML
        nvml.nvmlDeviceGetTotalEnergyConsumption(mig)
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(mig)
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetAttributes(parent)
    back = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
    assert nvml.nvmlDeviceGetUUID(back) == nvml.nvmlDeviceGetUUID(parent)
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(parent) == 7


# -- which devices -------------------------------------------------------------------------------


def test_cuda_visible_devices_mig_uuid_selects_that_slice():
    gpu = a100(slices(1, 1), slices(2, 3))
    nvml = FakeNVML([gpu, FakeGPU()])
    nvml.nvmlInit()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(2)]
    uuids = [g.uuid for g in nvml.gpus]
    targets, notes = visible_targets(nvml, gpu.mig_devices[1].uuid, handles, uuids)
    assert [t.label for t in targets] == ["GPU-0/MIG-2.0"] and notes == []
    old_form = f"MIG-{gpu.uuid}/1/0"  # before driver R470
    targets, _ = visible_targets(nvml, old_form, handles, uuids)
    assert [t.label for t in targets] == ["GPU-0/MIG-1.0"]
    targets, _ = visible_targets(nvml, "1," + gpu.mig_devices[0].uuid[:12], handles, uuids)
    assert [getattr(t, "label", t) for t in targets] == [1, "GPU-0/MIG-1.0"]
    targets, _ = visible_targets(nvml, None, handles, uuids)  # unset: MIG GPU -> its devices
    assert [getattr(t, "label", t) for t in targets] == ["GPU-0/MIG-1.0", "GPU-0/MIG-2.0", 1]
    targets, _ = visible_targets(nvml, "MIG-nope,1", handles, uuids)  # stops, as CUDA does
    assert targets == []


# -- metering ---------------------------------------------------------------------------------


def test_a_mig_slice_is_its_share_of_the_parent_by_compute_slices():
    gpu = a100(slices(1, 1), slices(2, 3), power_w=350.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    env = {"CUDA_VISIBLE_DEVICES": gpu.mig_devices[1].uuid}
    meter = NvmlMeter.open(nvml, environ=env, clock=clock)
    meter.start()
    clock.t += 10.0
    nvml.advance(10.0)
    # first principles: 350 W x 10 s of the whole GPU, 3 of its 7 compute slices
    assert meter.read().machine_j == pytest.approx(3500.0 * 3 / 7)
    assert meter.provenance == (
        "nvml:counter:GPU-0/MIG-2.0 (GPU-0/MIG-2.0: 3/7 of GPU-0 by compute slices)"
    )
    assert meter.origin.is_measured
    (info,) = meter.gpus
    assert info.uuid == gpu.mig_devices[1].uuid and info.memory_gb == pytest.approx(14.25)


def test_every_slice_of_a_mig_gpu_sums_to_the_configured_share():
    gpu = a100(slices(1, 1), slices(2, 2), slices(3, 4), power_w=400.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    clock.t += 1.0
    nvml.advance(1.0)
    assert meter.read().machine_j == pytest.approx(400.0)  # 1 + 2 + 4 = 7 of 7 slices


def test_a_mig_slice_on_a_gpu_without_counter_samples_the_parent_power():
    gpu = a100(slices(1, 1))
    gpu.energy_mj = None
    nvml, clock = FakeNVML([gpu]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    clock.t += 7.0
    assert meter.read().machine_j == pytest.approx(350.0)  # 350 W x 7 s / 7
    assert meter.provenance.startswith("nvml:power-sampling:GPU-0/MIG-1.0")


def test_a_mig_slice_wrap_is_undone_before_the_share():
    gpu = a100(slices(1, 7), power_w=100.0)
    gpu.energy_mj = 2**64 - 50_000  # 50 J before the wrap
    nvml, clock = FakeNVML([gpu]), Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    clock.t += 1.0
    nvml.advance(1.0)
    assert meter.read().machine_j == pytest.approx(100.0)


def test_process_share_within_a_slice_comes_from_its_own_process_list():
    me = os.getpid()
    mig = slices(1, 1, processes=[FakeGpuProcess(me, 3 * 2**30), FakeGpuProcess(os.getppid())])
    gpu = a100(mig, power_w=700.0)
    nvml, clock = FakeNVML([gpu]), Clock()
    tree = ProcessTree(me, clock=clock)
    meter = NvmlMeter.open(nvml, environ={}, tree=tree, clock=clock)
    meter.start()
    clock.t += 1.0
    nvml.advance(1.0)
    reading = meter.read()
    assert reading.machine_j == pytest.approx(100.0)  # 700 W / 7
    assert reading.process_j == pytest.approx(75.0)  # 3 GB of the slice's 4 GB


def test_mig_mode_without_devices_is_reported_never_a_silent_zero():
    nvml = FakeNVML([a100()])
    status, gpus = probe_nvml(nvml, environ={})
    assert not status.usable and gpus == ()
    assert "GPU-0 is in MIG mode with no MIG device: not counted" in status.reason


def test_probe_lists_mig_slices_with_their_rule():
    gpu = a100(slices(1, 1))
    status, gpus = probe_nvml(FakeNVML([gpu]), environ={})
    assert status.usable
    assert status.reason == "GPU-0/MIG-1.0 energy counter (1/7 of GPU-0 by compute slices)"
    assert gpus[0].name == "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
