"""NVML via FakeNVML: parity with pynvml, counters, wrap, power integration, errors, visibility."""

import os

import pynvml
import pytest

from greenprint import MeterError
from greenprint.meters import NvmlMeter, ProcessTree, parse_cuda_visible_devices, probe_nvml
from greenprint.testing import FakeGPU, FakeGpuProcess, FakeNVML
from greenprint.testing import _nvml as fake_module


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- the fake behaves like the real library ----------------------------------------------------


def test_fake_has_the_same_error_codes_classes_and_messages_as_pynvml():
    real_codes = {n: getattr(pynvml, n) for n in dir(pynvml) if n.startswith("NVML_ERROR_")}
    fake_codes = {
        n: getattr(fake_module, n) for n in dir(fake_module) if n.startswith("NVML_ERROR_")
    }
    assert fake_codes == real_codes
    real_classes = sorted(n for n in dir(pynvml) if n.startswith("NVMLError_"))
    assert fake_module.error_class_names() == real_classes
    for name, code in real_codes.items():
        real, fake = pynvml.NVMLError(code), FakeNVML.NVMLError(code)
        # NVMLError(code) returns the subclass for that code, in both
        assert type(real).__name__ == type(fake).__name__, name
        assert isinstance(fake, FakeNVML.NVMLError) and fake.value == code
        if code in pynvml.NVMLError._errcode_to_string:
            assert str(fake) == str(real), name
    nvml = FakeNVML()
    assert nvml.NVMLError_NotSupported is type(nvml.NVMLError(nvml.NVML_ERROR_NOT_SUPPORTED))
    assert nvml.NVMLError(3) == nvml.NVMLError_NotSupported()


def test_fake_has_every_pynvml_function_greenprint_calls():
    for name in [n for n in dir(FakeNVML) if n.startswith("nvml")]:
        assert callable(getattr(pynvml, name)), name


def test_calls_before_init_and_after_shutdown_raise_uninitialized():
    nvml = FakeNVML([FakeGPU()])
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    nvml.nvmlInit()
    nvml.nvmlShutdown()
    assert nvml.nvmlDeviceGetCount() == 1  # reference counted, like NVML
    nvml.nvmlShutdown()
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetHandleByIndex(0)


def test_fake_units_are_pynvml_units():
    gpu = FakeGPU(energy_mj=5, power_w=123.4, memory_gb=16, processes=[FakeGpuProcess(1, 2**20)])
    nvml = FakeNVML([gpu])
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByUUID(gpu.uuid)
    assert nvml.nvmlDeviceGetPowerUsage(h) == 123_400  # mW, int
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(h) == 5  # mJ, int
    assert nvml.nvmlDeviceGetMemoryInfo(h).total == 16 * 2**30  # bytes
    (proc,) = nvml.nvmlDeviceGetComputeRunningProcesses(h)
    assert (proc.pid, proc.usedGpuMemory) == (1, 2**20)
    with pytest.raises(nvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID("GPU-nope")
    with pytest.raises(nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(1)


# -- the meter ------------------------------------------------------------------------------


def test_energy_counter_is_read_in_mj_and_summed_over_gpus():
    nvml = FakeNVML([FakeGPU(energy_mj=10_000, power_w=300), FakeGPU(energy_mj=0, power_w=100)])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    nvml.advance(2.0)
    clock.t += 2.0
    reading = meter.read()
    assert reading.machine_j == pytest.approx(800.0)  # (300 + 100) W x 2 s
    assert reading.process_j is None  # no tree given
    assert meter.provenance == "nvml:counter:GPU-0+GPU-1"
    assert meter.mean_power_w == pytest.approx(400.0)


def test_counter_wrap_at_2_pow_64_is_undone():
    gpu = FakeGPU(energy_mj=2**64 - 1_000, power_w=250)
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    gpu.advance(1.0)  # 250 J = 250,000 mJ: wraps
    clock.t += 1.0
    assert gpu.energy_mj == 249_000
    assert meter.read().machine_j == pytest.approx(250.0)


def test_counter_reset_by_a_gpu_reset_counts_from_zero_not_2_pow_64():
    gpu = FakeGPU(energy_mj=50_000_000, power_w=200)
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    meter.start()
    gpu.reset()
    gpu.advance(1.0)
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(200.0)


def test_gpu_without_counter_integrates_sampled_power_by_trapezoid():
    gpu = FakeGPU(energy_mj=None, power_w=100.0)
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    assert meter.provenance == "nvml:power-sampling:GPU-0"
    meter.start()
    gpu.power_w = 300.0
    clock.t += 2.0
    assert meter.read().machine_j == pytest.approx(400.0)  # (100 + 300) / 2 x 2 s
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(700.0)  # + 300 W x 1 s


def test_mixed_counter_and_sampling_gpus():
    nvml = FakeNVML([FakeGPU(energy_mj=0), FakeGPU(energy_mj=None)])
    meter = NvmlMeter.open(nvml, environ={})
    assert meter.provenance == "nvml:counter:GPU-0+nvml:power-sampling:GPU-1"
    assert [g.has_energy_counter for g in meter.gpus] == [True, False]


def test_read_errors_become_meter_errors():
    gpu = FakeGPU(energy_mj=0)
    nvml = FakeNVML([gpu])
    meter = NvmlMeter.open(nvml, environ={})
    meter.start()
    gpu.fail("nvmlDeviceGetTotalEnergyConsumption", nvml.NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(
        MeterError, match="GPU-0: nvmlDeviceGetTotalEnergyConsumption failed: GPU is lost"
    ):
        meter.read()


def test_close_shuts_nvml_down_once():
    nvml = FakeNVML([FakeGPU()])
    meter = NvmlMeter.open(nvml, environ={})
    assert nvml.init_count == 1
    meter.close()
    meter.close()
    assert nvml.init_count == 0


def test_process_share_follows_the_trees_gpu_memory():
    me = os.getpid()
    other = os.getppid()
    gpu = FakeGPU(
        energy_mj=0,
        power_w=100,
        processes=[FakeGpuProcess(me, 3 * 2**30), FakeGpuProcess(other, 1 * 2**30)],
    )
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree(me), clock=clock)
    meter.start()
    gpu.advance(4.0)
    clock.t += 4.0
    reading = meter.read()
    assert reading.machine_j == pytest.approx(400.0)
    assert reading.process_j == pytest.approx(300.0)  # 3 of the 4 GB in use are ours


def test_no_attribution_when_nvml_cannot_list_processes():
    gpu = FakeGPU(energy_mj=0, processes=None)  # NOT_SUPPORTED
    nvml = FakeNVML([gpu])
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree())
    meter.start()
    gpu.advance(1.0)
    assert meter.read().process_j is None


def test_no_attribution_when_the_pids_are_from_another_namespace():
    gpu = FakeGPU(energy_mj=0, processes=[FakeGpuProcess(2**22 + 12345)])  # no such pid here
    nvml = FakeNVML([gpu])
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree())
    meter.start()
    gpu.advance(1.0)
    assert meter.read().process_j is None


def test_an_idle_gpu_with_no_processes_attributes_nothing():
    gpu = FakeGPU(energy_mj=0, processes=[])
    nvml = FakeNVML([gpu])
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree())
    meter.start()
    gpu.advance(1.0)
    reading = meter.read()
    assert reading.machine_j > 0 and reading.process_j == 0.0


# -- status and errors at start ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "fix"),
    [
        (
            "NVML_ERROR_LIBRARY_NOT_FOUND",
            "pynvml could not load libnvidia-ml.so.1: no NVIDIA driver",
            "install the NVIDIA driver",
        ),
        ("NVML_ERROR_DRIVER_NOT_LOADED", "NVIDIA driver not loaded", "modprobe nvidia"),
        ("NVML_ERROR_NO_PERMISSION", "no permission to use the NVIDIA devices", "/dev/nvidia*"),
        ("NVML_ERROR_GPU_IS_LOST", "a GPU has fallen off the bus", "nvidia-smi -r"),
    ],
)
def test_init_errors_give_reason_and_fix(code, reason, fix):
    nvml = FakeNVML([FakeGPU()], init_error=getattr(fake_module, code))
    status, gpus = probe_nvml(nvml, environ={})
    assert not status.usable and gpus == ()
    assert status.reason.startswith(reason)
    assert fix in (status.fix or "")
    with pytest.raises(MeterError, match=reason.split(" (")[0][:20]):
        NvmlMeter.open(nvml, environ={})


def test_no_permission_on_the_energy_counter_is_reported():
    gpu = FakeGPU()
    gpu.fail("nvmlDeviceGetTotalEnergyConsumption", fake_module.NVML_ERROR_NO_PERMISSION)
    status, gpus = probe_nvml(FakeNVML([gpu]), environ={})
    # the power still reads: sampled (s23), the refusal said
    assert status.usable and [g.has_energy_counter for g in gpus] == [False]
    assert "energy counter refused (NVML: Insufficient Permissions)" in status.reason
    gpu.fail("nvmlDeviceGetPowerUsage", fake_module.NVML_ERROR_NO_PERMISSION)
    status, _ = probe_nvml(FakeNVML([gpu]), environ={})
    # both refused while the GPU opens: said, with what helps (not /dev/nvidia* access, s23)
    assert not status.usable and "its power reading is refused" in status.reason
    assert (status.fix or "").startswith("run as root")


def test_gpu_without_energy_or_power_is_skipped_and_said():
    nvml = FakeNVML([FakeGPU(energy_mj=None, power_w=None), FakeGPU()])
    status, gpus = probe_nvml(nvml, environ={})
    assert status.usable
    assert [g.index for g in gpus] == [1]
    assert "GPU-0 (NVIDIA A100-SXM4-40GB) reports neither energy nor power" in status.reason


def test_probe_lists_gpus_and_shuts_down():
    nvml = FakeNVML([FakeGPU(name="Tesla V100", memory_gb=16.0), FakeGPU(energy_mj=None)])
    status, gpus = probe_nvml(nvml, environ={})
    assert status.usable and status.reason == (
        "GPU-0 energy counter; GPU-1 power sampling (no energy counter (NVML: Not Supported): "
        "the total-energy counter arrives with Volta; power is sampled instead)"
    )
    assert gpus[0].name == "Tesla V100" and gpus[0].memory_gb == 16.0
    assert gpus[0].has_energy_counter and not gpus[1].has_energy_counter
    assert nvml.init_count == 0


# -- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------------


UUIDS = ["GPU-8932f937-aaaa", "GPU-11112222-bbbb", "GPU-33334444-cccc"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("  ", []),
        ("2,0", [2, 0]),
        ("1", [1]),
        ("0,0,1", [0, 1]),
        ("GPU-33334444-cccc", [2]),
        ("GPU-1111,0", [1, 0]),  # a unique UUID prefix, as CUDA accepts
        ("GPU-", []),  # ambiguous prefix: stop
        ("0,7,1", [0]),  # out of range: CUDA ignores the rest
        ("-1", []),
        ("1,MIG-abc,2", [1]),
        ("gpu-8932F937", [0]),
    ],
)
def test_cuda_visible_devices_parsing(value, expected):
    assert parse_cuda_visible_devices(value, UUIDS) == expected


def test_cuda_visible_devices_restricts_what_is_metered():
    gpus = [FakeGPU(power_w=100), FakeGPU(power_w=200), FakeGPU(power_w=400)]
    nvml = FakeNVML(gpus)
    env = {"CUDA_VISIBLE_DEVICES": f"{gpus[2].uuid},1"}
    status, infos = probe_nvml(nvml, environ=env)
    assert [g.index for g in infos] == [2, 1]
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ=env, clock=clock)
    meter.start()
    nvml.advance(1.0)
    clock.t += 1
    assert meter.read().machine_j == pytest.approx(600.0)  # GPU 0 is not ours
    assert meter.provenance == "nvml:counter:GPU-2+GPU-1"


def test_empty_cuda_visible_devices_means_no_gpu():
    nvml = FakeNVML([FakeGPU()])
    status, gpus = probe_nvml(nvml, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert not status.usable and gpus == ()
    assert status.reason == "CUDA_VISIBLE_DEVICES is empty: no GPU visible to this process"
    with pytest.raises(MeterError):
        NvmlMeter.open(nvml, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert nvml.init_count == 0


def test_the_real_pynvml_on_this_machine_reports_why_not():
    # where there is no NVIDIA driver, the real library must give a reason, never raise
    status, gpus = probe_nvml(pynvml, environ={})
    if status.usable:
        assert gpus
    elif not os.path.exists("/dev/nvidiactl"):
        assert status.reason == "pynvml could not load libnvidia-ml.so.1: no NVIDIA driver"
        assert "install the NVIDIA driver" in status.fix
    # without an explicit module, pynvml is not even imported when no driver is present
    if not any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")):
        status, _ = probe_nvml(environ={})
        assert status.reason == "no NVIDIA driver (no /proc/driver/nvidia or /dev/nvidiactl)"
