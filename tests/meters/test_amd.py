"""AMD GPUs through FakeAMDSMI: the fake's parity with amdsmi, counter, wrap, unreliable counters
and their fallback to power sampling, MI250 packages, visibility, attribution, errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import MeterError
from greenprint.meters import ProcessTree
from greenprint.meters._amd import (
    COUNTER_MODULUS,
    STUCK_AFTER_S,
    AmdMeter,
    parse_rocm_visible_devices,
    probe_amd,
)
from greenprint.testing import FakeAmdGpu, FakeAmdProcess, FakeAMDSMI
from greenprint.testing import _amdsmi as fake_module


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(amdsmi: FakeAMDSMI, clock: Clock, seconds: float) -> None:
    clock.t += seconds
    amdsmi.advance(seconds)


# -- the fake behaves like amdsmi ----------------------------------------------------------------

#: The functions greenprint calls, with their parameters, as amdsmi declares them
#: (ROCm/amdsmi py-interface/amdsmi_interface.py at 0ceca28f, ROCm 6.3; amdsmi is not installable
#: here, so the signatures are recorded).
AMDSMI_SIGNATURES = {
    "amdsmi_init": ["flag"],
    "amdsmi_shut_down": [],
    "amdsmi_get_processor_handles": [],
    "amdsmi_get_gpu_asic_info": ["processor_handle"],
    "amdsmi_get_gpu_device_uuid": ["processor_handle"],
    "amdsmi_get_gpu_vram_usage": ["processor_handle"],
    "amdsmi_get_energy_count": ["processor_handle"],
    "amdsmi_get_power_info": ["processor_handle"],
    "amdsmi_get_gpu_activity": ["processor_handle"],
    "amdsmi_get_gpu_process_list": ["processor_handle"],
}


def test_fake_has_amdsmi_functions_with_amdsmi_parameters():
    import inspect

    fake = {n for n in dir(FakeAMDSMI) if n.startswith("amdsmi_")}
    assert fake == set(AMDSMI_SIGNATURES)
    for name, params in AMDSMI_SIGNATURES.items():
        assert list(inspect.signature(getattr(FakeAMDSMI, name)).parameters)[1:] == params, name
    # the meter calls what the fake has: its module's source (inspect.getsource(AmdMeter)
    # looks in greenprint/meters/__init__.py once the public name has been published there)
    source = Path(sys.modules[AmdMeter.__init__.__module__].__file__ or "").read_text("utf-8")
    for name in ("amdsmi_get_energy_count", "amdsmi_get_power_info", "amdsmi_get_gpu_process_list"):
        assert name in source


def test_fake_errors_carry_amdsmi_codes_and_messages():
    err = fake_module.AmdSmiLibraryException(-10)  # amdsmi takes abs() of the C status
    assert err.get_error_code() == err.err_code == 10
    assert str(err) == "Error code:\n\t10 | AMDSMI_STATUS_NO_PERM - Permission Denied"
    assert isinstance(fake_module.AmdSmiRetryException(), fake_module.AmdSmiLibraryException)
    amdsmi = FakeAMDSMI([FakeAmdGpu()])
    assert amdsmi.amdsmi_wrapper.AMDSMI_STATUS_NOT_SUPPORTED == 2
    with pytest.raises(amdsmi.AmdSmiLibraryException) as info:
        amdsmi.amdsmi_get_processor_handles()  # before amdsmi_init
    assert info.value.err_code == amdsmi.amdsmi_wrapper.AMDSMI_STATUS_NOT_INIT
    amdsmi.amdsmi_init()
    with pytest.raises(amdsmi.AmdSmiParameterException):
        amdsmi.amdsmi_get_power_info(0)  # not a processor handle


def test_fake_energy_count_keys_follow_the_rocm_version():
    keys = {}
    for api in ("6.1", "6.2", "6.4"):
        amdsmi = FakeAMDSMI([FakeAmdGpu(energy_count=7)], api=api)
        amdsmi.amdsmi_init()
        (h,) = amdsmi.amdsmi_get_processor_handles()
        keys[api] = set(amdsmi.amdsmi_get_energy_count(h))
    assert keys["6.1"] == {"power", "counter_resolution", "timestamp"}
    assert keys["6.2"] == {"power", "energy_accumulator", "counter_resolution", "timestamp"}
    assert keys["6.4"] == {"energy_accumulator", "counter_resolution", "timestamp"}


def test_fake_counter_counts_resolution_units_and_power_in_watts():
    gpu = FakeAmdGpu(energy_count=0, power_w=300.0, power_field="average_socket_power")
    amdsmi = FakeAMDSMI([gpu])
    amdsmi.amdsmi_init()
    (h,) = amdsmi.amdsmi_get_processor_handles()
    gpu.advance(1.0)
    count = amdsmi.amdsmi_get_energy_count(h)
    assert count["counter_resolution"] == pytest.approx(15.3, rel=1e-6)  # a C float
    assert count["energy_accumulator"] * count["counter_resolution"] == pytest.approx(
        300e6, abs=16
    )  # uJ, within one count
    power = amdsmi.amdsmi_get_power_info(h)
    assert power["average_socket_power"] == 300 and power["current_socket_power"] == "N/A"


# -- visibility ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, 1, 2, 3]),
        ({"HIP_VISIBLE_DEVICES": "2,0"}, [2, 0]),
        ({"CUDA_VISIBLE_DEVICES": "3"}, [3]),  # HIP honours it too
        ({"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "3"}, [1]),  # HIP wins
        ({"ROCR_VISIBLE_DEVICES": "1,3", "HIP_VISIBLE_DEVICES": "1"}, [3]),  # HIP indexes ROCR's
        ({"ROCR_VISIBLE_DEVICES": "GPU-cccc3333dddd4444"}, [2]),  # by UUID
        ({"HIP_VISIBLE_DEVICES": "1,7,0"}, [1]),  # read up to the first invalid entry
        ({"HIP_VISIBLE_DEVICES": ""}, []),
        ({"ROCR_VISIBLE_DEVICES": "0,0,1"}, [0, 1]),
    ],
)
def test_visible_devices_follow_the_rocm_runtime(env, expected):
    uuids = [
        "aaaa1111-0000-1000-80aa-aaaa1111bbbb2222",
        "bbbb2222-0000-1000-80bb-bbbb2222cccc3333",
        "cccc3333-0000-1000-80cc-cccc3333dddd4444",
        "dddd4444-0000-1000-80dd-dddd4444eeee5555",
    ]
    assert parse_rocm_visible_devices(env, uuids) == expected


def test_only_the_visible_gpus_are_metered():
    gpus = [FakeAmdGpu(power_w=100.0), FakeAmdGpu(power_w=200.0), FakeAmdGpu(power_w=400.0)]
    amdsmi, clock = FakeAMDSMI(gpus), Clock()
    meter = AmdMeter.open(amdsmi, environ={"HIP_VISIBLE_DEVICES": "2,0"}, clock=clock)
    meter.start()
    run(amdsmi, clock, 10.0)
    assert meter.read().machine_j == pytest.approx(5000.0, abs=0.01)  # (400 + 100) W x 10 s
    assert [g.index for g in meter.gpus] == [2, 0]
    assert meter.provenance == "amdsmi:counter:GPU-2+GPU-0"


# -- the counter ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["6.1", "6.2", "6.4"])
def test_counter_energy_is_power_times_time_on_every_rocm_version(api):
    amdsmi, clock = FakeAMDSMI([FakeAmdGpu(power_w=250.0)], api=api), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    for _ in range(5):
        run(amdsmi, clock, 2.0)
        reading = meter.read()
    assert reading.machine_j == pytest.approx(2500.0, abs=15.3e-6 * 5)
    assert reading.process_j is None  # no tree given
    assert meter.origin.is_measured


def test_the_counter_wrapping_at_2_to_the_64_is_undone():
    start = COUNTER_MODULUS - 1_000_000  # 15.3 J before the wrap
    amdsmi, clock = FakeAMDSMI([FakeAmdGpu(energy_count=start, power_w=100.0)]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)  # 100 J: wraps
    assert amdsmi.gpus[0].energy_count < start
    assert meter.read().machine_j == pytest.approx(100.0, abs=1e-4)
    assert meter.provenance == "amdsmi:counter:GPU-0"


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=COUNTER_MODULUS - 1),
    steps=st.lists(st.floats(min_value=0.0, max_value=700.0), min_size=1, max_size=8),
)
def test_counter_total_is_the_energy_drawn_wherever_the_counter_starts(start, steps):
    """First principles: the sum of power x time, whatever the wrap position."""
    gpu = FakeAmdGpu(energy_count=start, power_w=steps[0])
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    for power in steps:
        clock.t += 1.0
        gpu.advance(1.0, power_w=power)
        reading = meter.read()
    expected = sum(steps)
    # the counter moves in whole counts (15.3 uJ); a zero-power stretch may hold it still,
    # which is not a stuck counter because the GPU drew nothing
    assert reading.machine_j == pytest.approx(expected, abs=2e-5)
    assert meter.provenance == "amdsmi:counter:GPU-0"


def test_a_stuck_counter_is_replaced_by_sampled_power_from_where_it_stopped():
    """MI210/ROCm 6.1 (rocm_smi_lib#180): the counter returns one value while the GPU works."""
    gpu = FakeAmdGpu(power_w=200.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == pytest.approx(200.0, abs=1e-4)
    gpu.stuck = True
    for _ in range(int(STUCK_AFTER_S) + 1):
        run(amdsmi, clock, 1.0)
        reading = meter.read()
    # 200 J from the counter, then power x time for every second it stood still: no gap
    assert reading.machine_j == pytest.approx(200.0 * (int(STUCK_AFTER_S) + 2), abs=1e-4)
    # the label names both sources and when the switch happened: the counter last moved at 1 s
    assert meter.provenance == (
        "amdsmi:counter-then-power-sampling:GPU-0 (GPU-0 energy counter stuck for 3 s under "
        "load: power sampled after 1 s)"
    )
    assert meter.origin.is_measured and meter.gpus[0].has_energy_counter is False
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == pytest.approx(200.0 * (int(STUCK_AFTER_S) + 3), abs=1e-4)


def test_an_idle_gpu_whose_counter_does_not_move_is_not_called_stuck():
    gpu = FakeAmdGpu(power_w=0.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    for _ in range(10):
        run(amdsmi, clock, 1.0)
        meter.read()
    assert meter.provenance == "amdsmi:counter:GPU-0"


def test_a_counter_going_backwards_falls_back_to_power_for_that_interval():
    """ROCm/amdsmi#115: a decrease no wrap explains."""
    gpu = FakeAmdGpu(energy_count=10**12, power_w=300.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == pytest.approx(300.0, abs=1e-4)
    clock.t += 1.0
    gpu.energy_count = 10**11  # far back
    reading = meter.read()
    assert reading.machine_j == pytest.approx(600.0, abs=1e-4)  # the interval from power
    assert meter.provenance == (
        "amdsmi:counter-then-power-sampling:GPU-0 (GPU-0 energy counter went backwards: power "
        "sampled after 1 s)"
    )
    run(amdsmi, clock, 2.0)
    assert meter.read().machine_j == pytest.approx(1200.0, abs=1e-4)


def test_an_implausible_jump_is_not_believed():
    gpu = FakeAmdGpu(power_w=300.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    clock.t += 1.0
    gpu.energy_count = 10**15  # 15 GJ in a second
    assert meter.read().machine_j == pytest.approx(300.0, abs=1e-4)
    assert meter.provenance.startswith("amdsmi:counter-then-power-sampling:GPU-0 (GPU-0 energy")
    assert "jumped" in meter.provenance and meter.provenance.endswith("power sampled after 0 s)")


def test_mi100_is_power_sampled_by_rule():
    gpu = FakeAmdGpu(name="AMD Instinct MI100", gfx="gfx908", power_w=290.0, stuck=True)
    gpu.power_field = "average_socket_power"
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == pytest.approx(290.0)
    gpu.power_w = 310.0
    run(amdsmi, clock, 1.0)
    # trapezoid: 290 W for 1 s, then 290 -> 310 W over 1 s
    assert meter.read().machine_j == pytest.approx(290.0 + 300.0)
    assert meter.provenance.startswith("amdsmi:power-sampling:GPU-0 (GPU-0 gfx908: MI100")
    assert meter.gpus[0].has_energy_counter is False


def test_no_energy_counter_means_power_sampling_and_no_power_either_means_not_counted():
    gpus = [FakeAmdGpu(energy_count=None, power_w=120.0), FakeAmdGpu(energy_count=None)]
    gpus[1].power_w = None
    amdsmi = FakeAMDSMI(gpus)
    status, infos = probe_amd(amdsmi, environ={})
    assert status.usable
    assert "GPU-0 AMD Instinct MI300X: power sampling (no energy counter)" in status.reason
    assert "GPU-1 (AMD Instinct MI300X) reports neither energy nor power" in status.reason
    assert [i.index for i in infos] == [0] and infos[0].vendor == "amd"


# -- MI250: two GCDs, one power reading ---------------------------------------------------------


def _mi250(count: int = 2) -> list[FakeAmdGpu]:
    gpus = []
    for i in range(count):
        gpu = FakeAmdGpu(name="AMD Instinct MI250X", gfx="gfx90a", power_w=0.0 if i % 2 else 500.0)
        gpu.power_field = "average_socket_power"
        gpus.append(gpu)
    return gpus


def test_mi250_both_gcds_visible_count_the_package_once():
    amdsmi, clock = FakeAMDSMI(_mi250()), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    run(amdsmi, clock, 2.0)
    assert meter.read().machine_j == pytest.approx(1000.0, abs=1e-4)
    assert [g.index for g in meter.gpus] == [0]
    status, _ = probe_amd(FakeAMDSMI(_mi250()), environ={})
    assert "GPU-1 (AMD Instinct MI250X): counted in GPU-0 (one package)" in status.reason


@pytest.mark.parametrize("visible", ["0", "1"])
def test_a_lone_mi250_gcd_is_half_of_its_package_never_zero(visible):
    amdsmi, clock = FakeAMDSMI(_mi250()), Clock()
    meter = AmdMeter.open(amdsmi, environ={"HIP_VISIBLE_DEVICES": visible}, clock=clock)
    meter.start()
    run(amdsmi, clock, 2.0)
    assert meter.read().machine_j == pytest.approx(500.0, abs=1e-4)  # half of 500 W x 2 s
    assert "1/2 of package" in meter.provenance


# -- attribution ----------------------------------------------------------------------------------


def test_process_share_follows_vram():
    me = os.getpid()
    other = os.getppid()
    gpu = FakeAmdGpu(
        power_w=400.0,
        processes=[FakeAmdProcess(me, vram_mem=3 * 2**30), FakeAmdProcess(other, 2**30)],
    )
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, tree=ProcessTree(me, clock=clock), clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)
    reading = meter.read()
    assert reading.machine_j == pytest.approx(400.0, abs=1e-4)
    assert reading.process_j == pytest.approx(300.0, abs=1e-4)


def test_no_attribution_when_the_process_list_fails_or_is_of_another_namespace():
    me = os.getpid()
    gpu = FakeAmdGpu(power_w=100.0, processes=None)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, tree=ProcessTree(me, clock=clock), clock=clock)
    meter.start()
    run(amdsmi, clock, 1.0)
    assert meter.read().process_j is None
    gpu2 = FakeAmdGpu(power_w=100.0, processes=[FakeAmdProcess(2**22 + 12345)])
    amdsmi2 = FakeAMDSMI([gpu2])
    meter2 = AmdMeter.open(amdsmi2, environ={}, tree=ProcessTree(me, clock=clock), clock=clock)
    meter2.start()
    run(amdsmi2, clock, 1.0)
    assert meter2.read().process_j is None


# -- failures -----------------------------------------------------------------------------------


def test_driver_not_loaded_and_permission_denied_say_the_fix():
    wrapper = fake_module
    status, gpus = probe_amd(
        FakeAMDSMI(init_error=wrapper.AMDSMI_STATUS_DRIVER_NOT_LOADED), environ={}
    )
    assert not status.usable and gpus == ()
    assert "amdgpu driver not loaded" in status.reason and "modprobe amdgpu" in status.fix
    status, _ = probe_amd(FakeAMDSMI(init_error=wrapper.AMDSMI_STATUS_NO_PERM), environ={})
    assert "no permission" in status.reason and "render" in status.fix
    with pytest.raises(MeterError, match="no permission"):
        AmdMeter.open(FakeAMDSMI(init_error=wrapper.AMDSMI_STATUS_NO_PERM), environ={})


def test_an_empty_visible_list_says_which_variable():
    status, _ = probe_amd(FakeAMDSMI([FakeAmdGpu()]), environ={"ROCR_VISIBLE_DEVICES": ""})
    assert status.reason.startswith("ROCR_VISIBLE_DEVICES is empty")
    assert status.fix == "unset ROCR_VISIBLE_DEVICES"


def test_probe_shuts_amdsmi_down_and_close_is_idempotent():
    amdsmi = FakeAMDSMI([FakeAmdGpu()])
    probe_amd(amdsmi, environ={})
    assert amdsmi.init_count == 0
    meter = AmdMeter.open(amdsmi, environ={})
    assert amdsmi.init_count == 1
    meter.close()
    meter.close()
    assert amdsmi.init_count == 0


def test_without_dev_kfd_amdsmi_is_not_even_imported(monkeypatch):
    monkeypatch.setattr("greenprint.meters._amd._driver_present", lambda: False)
    status, gpus = probe_amd(environ={})
    assert not status.usable and gpus == ()
    assert status.reason.startswith(("no AMD GPU driver", "amdsmi needs Linux"))


def test_a_lost_gpu_raises_meter_error_and_a_busy_one_is_read_next_time():
    gpu = FakeAmdGpu(power_w=100.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    meter.start()
    gpu.fail("amdsmi_get_power_info", fake_module.AMDSMI_STATUS_BUSY)
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == 0.0  # skipped, not lost
    del gpu.errors["amdsmi_get_power_info"]
    run(amdsmi, clock, 1.0)
    assert meter.read().machine_j == pytest.approx(200.0, abs=1e-4)
    gpu.fail("amdsmi_get_energy_count", fake_module.AMDSMI_STATUS_DRM_ERROR)
    with pytest.raises(MeterError, match="GPU-0: amdsmi_get_energy_count failed"):
        meter.read()
