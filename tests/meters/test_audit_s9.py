"""An outside audit of the meters against what real machines do (s9).

Each test names the real behaviour it copies; the fakes in :mod:`greenprint.testing` behave as the
real interfaces do (powercap writes zone ids in hexadecimal; a RAPL counter restarts at zero
after a firmware or driver reset).
"""

from __future__ import annotations

import time

import pytest

from greenprint.meters import RaplMeter, probe_rapl
from greenprint.testing import make_fake_rapl

#: Intel's usual ``max_energy_range_uj`` (about 262 kJ), the fake's default.
RANGE_UJ = 262_143_328_850


class Clock:
    """A monotonic clock the test moves by hand, in s."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- RAPL: a counter that goes backwards is a wrap only when the energy that implies is plausible


def test_a_rapl_counter_restarting_at_zero_is_a_reset_not_a_wrap(tmp_path):
    # a firmware or driver reset restarts energy_uj near 0: taken for a wrap, the step would be
    # range - last + now = 162 kJ in one second (162 kW); it is the 5 J since the reset
    rapl = make_fake_rapl(tmp_path / "pc", start_uj=100_000_000_000)
    clock = Clock()
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package, clock=clock)
    cpu.start()
    clock.t += 1.0
    rapl.add_j("package-0", 40.0)
    assert cpu.read().machine_j == pytest.approx(40.0)
    rapl.set_uj("package-0", 5_000_000)  # reset, then 5 J
    clock.t += 1.0
    assert cpu.read().machine_j == pytest.approx(45.0)
    clock.t += 1.0
    rapl.add_j("package-0", 30.0)
    assert cpu.read().machine_j == pytest.approx(75.0)


def test_a_rapl_counter_stepping_back_without_restarting_adds_nothing(tmp_path):
    # backwards by 3 J, far from zero: neither a wrap (262 kJ) nor a restart (the value would be
    # the energy since it, 100 kJ in 1 s); the step counts nothing and the count resumes from there
    rapl = make_fake_rapl(tmp_path / "pc", start_uj=100_000_000_000)
    clock = Clock()
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package, clock=clock)
    cpu.start()
    clock.t += 1.0
    rapl.add_j("package-0", 10.0)
    assert cpu.read().machine_j == pytest.approx(10.0)
    rapl.add_j("package-0", -3.0)
    clock.t += 1.0
    assert cpu.read().machine_j == pytest.approx(10.0)
    rapl.add_j("package-0", 2.0)
    clock.t += 1.0
    assert cpu.read().machine_j == pytest.approx(12.0)


def test_a_wrap_is_still_undone_when_it_is_plausible(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", start_uj=RANGE_UJ - 1_000_000)  # 1 J below the range
    clock = Clock()
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package, clock=clock)
    cpu.start()
    clock.t += 1.0
    rapl.add_j("package-0", 150.0)  # wraps: 149 J past zero
    assert rapl.get_uj("package-0") == 149_000_000
    assert cpu.read().machine_j == pytest.approx(150.0)


# -- RAPL: zone ids are hexadecimal (powercap's "%s:%x"): a machine with more than ten zones


def test_zones_past_the_tenth_are_read_with_their_hexadecimal_ids(tmp_path):
    # 12 package zones, as a 2-socket, 8-CCD Zen 4 server listed them on Linux 6.10
    # (intel-rapl:0 ... intel-rapl:9, intel-rapl:a, intel-rapl:b); DRAM subzones intel-rapl:a:2
    rapl = make_fake_rapl(tmp_path / "pc", packages=12, dram=True, psys=True)
    assert (rapl.root / "intel-rapl:a").is_dir() and (rapl.root / "intel-rapl:b:2").is_dir()
    probe = probe_rapl(rapl.root)
    assert probe.status.usable
    assert [d.name for d in probe.package] == [f"package-{s}" for s in range(12)]
    assert [d.name for d in probe.dram] == [f"dram-{s}" for s in range(12)]
    assert probe.psys is not None and probe.psys.zone == "intel-rapl:c"
    cpu = RaplMeter("cpu", probe.package)
    cpu.start()
    rapl.advance(package_j=[float(s) for s in range(12)])
    assert cpu.read().machine_j == pytest.approx(sum(range(12)))


# -- RAPL: reads further apart than a counter's wrap time (a long sample_interval_s)


def _wait_for(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_counter_wrapping_several_times_between_two_reads_is_counted_in_full(tmp_path):
    # AMD's and Intel DRAM's 65.5 kJ range wraps every 234 s at 280 W: with sample_interval_s=600
    # a read sees the counter modulo the range, 2-3 wraps lost. Here a 1.2 kJ range (wrap time
    # 0.4 s at 3 kW, watched every 0.1 s) wraps 3 times before the one read
    rapl = make_fake_rapl(tmp_path / "pc", dram=False, max_energy_range_uj=1_200_000_000)
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package)
    assert cpu.watch_period_s == pytest.approx(0.1)
    cpu.start()
    try:
        for n in range(1, 6):
            rapl.add_j("package-0", 800.0)  # 2/3 of the range: a read now sees one wrap at most
            assert _wait_for(lambda n=n: cpu.watch_reads >= n), "the watcher never read"
        assert rapl.get_uj("package-0") == 4000 * 10**6 % 1_200_000_000  # 400 J shown
        assert cpu.read().machine_j == pytest.approx(4000.0)
        assert cpu.read().machine_j == pytest.approx(4000.0)  # counted once
    finally:
        cpu.close()
    reads = cpu.watch_reads
    rapl.add_j("package-0", 100.0)
    time.sleep(0.5)
    assert cpu.watch_reads == reads  # closed: the watcher stopped


def test_the_watcher_leaves_a_meter_read_every_second_alone(tmp_path):
    # Intel's 262 kJ range: watched every 22 s; a meter read more often is never read twice
    rapl = make_fake_rapl(tmp_path / "pc")
    cpu = RaplMeter("cpu", probe_rapl(rapl.root).package)
    assert cpu.watch_period_s == pytest.approx(RANGE_UJ / 1e6 / 3000 / 4)
    cpu.start()
    try:
        rapl.add_j("package-0", 7.0)
        assert cpu.read().machine_j == pytest.approx(7.0)
        assert cpu.watch_reads == 0
    finally:
        cpu.close()


# -- sums: CPU + GPU + RAM = energy_kwh; PUE and intensity applied once, in the right units


def test_components_sum_to_the_energy_and_emissions_are_energy_x_pue_x_intensity(
    tmp_path, no_other_hardware
):
    import greenprint as gp
    from greenprint.meters import detect_meters
    from greenprint.testing import FakeGPU, FakeNVML

    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dram=True, psys=True)
    gpu = FakeGPU(power_w=250.0)
    nvml = FakeNVML([gpu])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=nvml)
    assert set(meters.components) == {"cpu", "gpu", "ram"}
    with gp.track(
        "sums", ledger=False, intensity=400.0, pue=1.5, scope="machine", meters=meters
    ) as run:
        rapl.advance(package_j=[900.0, 600.0], dram_j=[150.0, 150.0], platform_extra_j=5000.0)
        gpu.advance(8.0)  # 250 W x 8 s = 2000 J
    by = run.energy_by_component
    # first principles: J / 3.6e6 = kWh; psys (which holds the packages and DRAM) never added
    assert by["cpu"] == pytest.approx(1500.0 / 3.6e6)
    assert by["ram"] == pytest.approx(300.0 / 3.6e6)
    assert by["gpu"] == pytest.approx(2000.0 / 3.6e6)
    assert run.energy_kwh == pytest.approx(by["cpu"] + by["gpu"] + by["ram"])
    # kWh x PUE x g/kWh = g; / 1000 = kg
    assert run.emissions_kg == pytest.approx(3800.0 / 3.6e6 * 1.5 * 400.0 / 1000.0)
    assert run.provenance["cpu"] == "rapl:package-0+package-1"
    assert run.provenance["ram"] == "rapl:dram-0+dram-1"
    assert run.provenance["gpu"] == "nvml:counter:GPU-0"


# -- RAPL: packages of several dies (the kernel names their zones package-N-die-D)


def test_dies_with_counters_of_their_own_are_summed(tmp_path):
    # Intel Cascade Lake-AP (Xeon Platinum 9200): two dies per package, a RAPL counter per die;
    # zones package-0-die-0, package-0-die-1, ... each with its DRAM. They were not taken for
    # packages at all: the CPU was estimated
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dies=2, dram=True)
    probe = probe_rapl(rapl.root)
    assert probe.status.usable, probe.status.reason
    names = ["package-0-die-0", "package-0-die-1", "package-1-die-0", "package-1-die-1"]
    assert [d.name for d in probe.package] == names
    assert [d.name for d in probe.dram] == [n.replace("package", "dram") for n in names]
    cpu, ram = RaplMeter("cpu", probe.package), RaplMeter("ram", probe.dram)
    cpu.start()
    ram.start()
    rapl.advance(package_j=[100.0, 60.0], dram_j=[10.0, 6.0])
    assert cpu.read().machine_j == pytest.approx(160.0)
    assert ram.read().machine_j == pytest.approx(16.0)


def test_dies_that_read_one_package_counter_are_counted_once(tmp_path):
    # AMD on Linux 6.10 (until "powercap/intel_rapl: Fix the energy-pkg event for AMD CPUs"): a
    # zone per CCD, package-0-die-0 ... package-0-die-7, all reading the one package-scope MSR;
    # summed they would count each socket 8 times. 2 sockets x 8 CCDs: 16 zones, ids 0 to f
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dies=8, dram=False, die_scope="package")
    probe = probe_rapl(rapl.root)
    assert probe.status.usable, probe.status.reason
    assert [d.name for d in probe.package] == ["package-0-die-0", "package-1-die-0"]
    assert "read one package counter" in probe.status.reason
    cpu = RaplMeter("cpu", probe.package)
    cpu.start()
    rapl.advance(package_j=[100.0, 60.0])
    assert rapl.get_uj("package-0-die-7") == rapl.get_uj("package-0-die-0")
    assert cpu.read().machine_j == pytest.approx(160.0)


# -- NVML: GPUs a device cgroup denies (Slurm's ConstrainDevices, containers)


def _slurm_node():
    """Four GPUs; the job was given the third (host index 2), the cgroup denies the others."""
    from greenprint.testing import FakeGPU, FakeNVML

    gpus = [FakeGPU(power_w=100.0 * (i + 1), accessible=(i == 2)) for i in range(4)]
    return gpus, FakeNVML(gpus)


@pytest.mark.parametrize("visible", [None, "0"])
def test_gpus_a_cgroup_denies_are_left_out_and_the_jobs_gpu_is_metered(visible):
    # NVML's nvmlDeviceGetCount counts every GPU "even if nvmlDeviceGetHandleByIndex_v2 returns
    # NVML_ERROR_NO_PERMISSION for such device" (nvml.h); CUDA enumerates the GPUs it can open,
    # so the job's GPU is CUDA's 0, as Slurm's CUDA_VISIBLE_DEVICES=0 says. NVML was declared
    # unusable ("no permission to use the NVIDIA devices") and the GPU estimated
    from greenprint.meters import NvmlMeter, probe_nvml

    gpus, nvml = _slurm_node()
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    status, infos = probe_nvml(nvml, environ=env)
    assert status.usable, status.reason
    assert [g.uuid for g in infos] == [gpus[2].uuid]
    assert "3 GPUs this process may not open" in status.reason
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ=env, clock=clock)
    try:
        meter.start()
        nvml.advance(10.0)
        clock.t += 10.0
        assert meter.read().machine_j == pytest.approx(300.0 * 10.0)  # GPU 2 alone, 300 W
        assert meter.provenance == "nvml:counter:GPU-0"
    finally:
        meter.close()


def test_a_process_that_may_open_no_gpu_is_told_so():
    from greenprint.meters import probe_nvml
    from greenprint.testing import FakeGPU, FakeNVML

    nvml = FakeNVML([FakeGPU(accessible=False), FakeGPU(accessible=False)])
    status, infos = probe_nvml(nvml, environ={})
    assert not status.usable and infos == ()
    assert status.reason == (
        "2 GPUs this process may not open (NVML: no permission; a device cgroup gives it "
        "none of them): not metered"
    )


# -- hwmon (Arm CPU sensors, Intel GPUs): the same rule as RAPL for a counter that went down


def test_a_hwmon_counter_stepping_back_without_restarting_adds_nothing(tmp_path):
    # a 64-bit i915 counter at 10 MJ stepping back by 2 J is neither a wrap nor a restart (its
    # value would then be the energy since the restart: 10 MJ in 1 s); it added the 10 MJ
    from greenprint.meters import HwmonMeter
    from greenprint.meters._intel_gpu import probe_intel_gpu
    from greenprint.testing import make_fake_intel_gpu

    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915"}, start_uj=10**13)
    probe = probe_intel_gpu(fake.root)
    clock = Clock()
    meter = HwmonMeter("gpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    fake.add_j("card0:energy1", 40.0)
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(40.0)
    fake.add_j("card0:energy1", -2.0)
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(40.0)
    fake.add_j("card0:energy1", 5.0)
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(45.0)


def test_an_nvml_counter_stepping_back_without_restarting_adds_nothing():
    # the mJ counter counts since the driver loaded (30 days at 300 W: 778 MJ); stepping back by
    # 2 J is neither a 64-bit wrap nor a GPU reset (whose counter restarts near 0): it added the
    # whole 778 MJ (216 kWh) in one second
    from greenprint.meters import NvmlMeter
    from greenprint.testing import FakeGPU, FakeNVML

    gpu = FakeGPU(energy_mj=777_600_000_000, power_w=300.0)
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, clock=clock)
    try:
        meter.start()
        nvml.advance(1.0)
        clock.t += 1.0
        assert meter.read().machine_j == pytest.approx(300.0)
        gpu.energy_mj -= 2_000
        clock.t += 1.0
        assert meter.read().machine_j == pytest.approx(300.0)
        nvml.advance(1.0)
        clock.t += 1.0
        assert meter.read().machine_j == pytest.approx(600.0)
        gpu.reset()  # a real reset still counts the energy since it
        nvml.advance(1.0)
        clock.t += 1.0
        assert meter.read().machine_j == pytest.approx(900.0)
    finally:
        meter.close()


# -- NVML: CUDA_VISIBLE_DEVICES indices on a machine with mixed GPUs


def _workstation():
    """A display card at PCI index 0, a compute card at 1: CUDA's fastest-first 0 is the A6000."""
    from greenprint.testing import FakeGPU, FakeNVML

    gpus = [
        FakeGPU(name="NVIDIA GeForce GT 1030", power_w=30.0, memory_gb=2.0),
        FakeGPU(name="NVIDIA RTX A6000", power_w=300.0, memory_gb=48.0),
    ]
    return FakeNVML(gpus)


def test_an_index_on_mixed_gpus_says_cuda_may_number_them_otherwise():
    # CUDA_DEVICE_ORDER defaults to FASTEST_FIRST: CUDA's device 0 is the A6000, NVML's index 0
    # the GT 1030. greenprint reads indices in NVML's PCI order; the figure was labelled
    # nvml:counter:GPU-0 as if it were certainly the GPU the job used
    from greenprint.meters import NvmlMeter, probe_nvml

    env = {"CUDA_VISIBLE_DEVICES": "0"}
    status, infos = probe_nvml(_workstation(), environ=env)
    assert status.usable and [g.name for g in infos] == ["NVIDIA GeForce GT 1030"]
    note = (
        "CUDA_VISIBLE_DEVICES indices read in PCI order; CUDA numbers mixed GPUs fastest first "
        "unless CUDA_DEVICE_ORDER=PCI_BUS_ID, so this may not be the GPU it uses"
    )
    assert note in status.reason
    meter = NvmlMeter.open(_workstation(), environ=env)
    try:
        assert meter.provenance == f"nvml:counter:GPU-0 (GPU-0: {note})"
    finally:
        meter.close()


@pytest.mark.parametrize(
    "env",
    [
        {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},  # CUDA's order is PCI's
        {},  # every GPU: no index to misread
    ],
)
def test_no_note_when_the_orders_agree_or_no_index_is_given(env):
    from greenprint.meters import probe_nvml

    status, _ = probe_nvml(_workstation(), environ=env)
    assert status.usable and "fastest first" not in status.reason


def test_no_note_when_the_gpus_are_alike():
    from greenprint.meters import probe_nvml
    from greenprint.testing import FakeGPU, FakeNVML

    status, _ = probe_nvml(FakeNVML([FakeGPU(), FakeGPU()]), environ={"CUDA_VISIBLE_DEVICES": "1"})
    assert status.usable and "fastest first" not in status.reason


# -- NVML: several processes sharing a GPU, and a process list that fails once


def test_a_process_list_failing_once_keeps_the_gpus_last_share():
    # this process holds 1 GB of the GPU, another 3 GB: a quarter of its energy is ours. One
    # failed nvmlDeviceGetComputeRunningProcesses (a timeout, a list that grew between pynvml's
    # two calls) made the share unknown for good, and the run's GPU figure jumped to the whole
    # GPU's since the start (4x here; 8x for one GPU of eight), its label unchanged
    import os

    from greenprint.meters import NvmlMeter
    from greenprint.meters._attribution import ProcessTree
    from greenprint.testing import FakeGPU, FakeGpuProcess, FakeNVML
    from greenprint.testing._nvml import NVML_ERROR_UNKNOWN

    ours, other = os.getpid(), os.getppid()
    gpu = FakeGPU(
        power_w=200.0,
        processes=[FakeGpuProcess(ours, 2**30), FakeGpuProcess(other, 3 * 2**30)],
    )
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree(ours), clock=clock)
    try:
        meter.start()
        nvml.advance(1.0)
        clock.t += 1.0
        first = meter.read()
        assert first.machine_j == pytest.approx(200.0)
        assert first.process_j == pytest.approx(50.0)
        gpu.fail("nvmlDeviceGetComputeRunningProcesses", NVML_ERROR_UNKNOWN)
        nvml.advance(1.0)
        clock.t += 1.0
        failed = meter.read()
        assert failed.process_j == pytest.approx(100.0)  # the last share, a quarter
        del gpu.errors["nvmlDeviceGetComputeRunningProcesses"]
        gpu.processes = [FakeGpuProcess(ours, 2**30), FakeGpuProcess(other, 2**30)]  # now half
        nvml.advance(1.0)
        clock.t += 1.0
        assert meter.read().process_j == pytest.approx(200.0)
    finally:
        meter.close()


def test_a_gpu_that_never_lists_its_processes_stays_unattributed():
    from greenprint.meters import NvmlMeter
    from greenprint.meters._attribution import ProcessTree
    from greenprint.testing import FakeGPU, FakeNVML

    gpu = FakeGPU(power_w=200.0, processes=None)  # NotSupported
    nvml = FakeNVML([gpu])
    clock = Clock()
    meter = NvmlMeter.open(nvml, environ={}, tree=ProcessTree(), clock=clock)
    try:
        meter.start()
        nvml.advance(1.0)
        clock.t += 1.0
        assert meter.read().process_j is None
    finally:
        meter.close()


def test_an_amd_process_list_failing_once_keeps_the_gpus_last_share():
    # the same for amdsmi_get_gpu_process_list (AMDSMI_STATUS_BUSY while the driver is busy)
    import os

    from greenprint.meters import AmdMeter
    from greenprint.meters._attribution import ProcessTree
    from greenprint.testing import FakeAmdGpu, FakeAmdProcess, FakeAMDSMI
    from greenprint.testing._amdsmi import AMDSMI_STATUS_BUSY

    ours, other = os.getpid(), os.getppid()
    gpu = FakeAmdGpu(
        power_w=400.0, processes=[FakeAmdProcess(ours, 2**30), FakeAmdProcess(other, 3 * 2**30)]
    )
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meter = AmdMeter.open(amdsmi, environ={}, tree=ProcessTree(ours), clock=clock)
    try:
        meter.start()
        amdsmi.advance(1.0)
        clock.t += 1.0
        assert meter.read().process_j == pytest.approx(100.0, rel=1e-3)
        gpu.fail("amdsmi_get_gpu_process_list", AMDSMI_STATUS_BUSY)
        amdsmi.advance(1.0)
        clock.t += 1.0
        assert meter.read().process_j == pytest.approx(200.0, rel=1e-3)
    finally:
        meter.close()


def test_a_32_bit_hwmon_counter_wrapping_twice_between_two_reads_is_counted_in_full(tmp_path):
    # a 32-bit µJ counter (scmi on Arm servers) wraps every 4.3 kJ: 14 s at 300 W, so reads a
    # minute apart lost wraps. Watched every quarter of its wrap time at 2 kW (0.54 s)
    from greenprint.meters import HwmonMeter
    from greenprint.meters._hwmon import probe_hwmon_cpu
    from greenprint.testing import make_fake_hwmon

    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={"hwmon0": {"driver": "scmi_sensors", "energy": {1: "cpu"}, "bits": 32}},
    )
    probe = probe_hwmon_cpu(fake.root)
    meter = HwmonMeter("cpu", probe.channels, origin=probe.origin)
    assert meter.watch_period_s == pytest.approx(2**32 / 1e6 / 2000.0 / 4)
    meter.start()
    try:
        for n in range(1, 7):
            fake.add_j("hwmon0:energy1", 800.0)  # 1.5 kW over a watch period: plausible
            assert _wait_for(lambda n=n: meter.watch_reads >= n), "the watcher never read"
        assert fake.get("hwmon0:energy1") == 4800 * 10**6 % 2**32  # 505 J shown
        assert meter.read().machine_j == pytest.approx(4800.0)
    finally:
        meter.close()


def test_energy_read_after_the_wall_clock_stepped_back_still_has_its_emissions():
    # samples are stamped with the wall clock (time.time), which an NTP step can move back; the
    # energy of such an interval was added to energy_kwh but its CO2-eq dropped, so emissions
    # fell short of energy x PUE x intensity (by every interval until the clock caught up)
    from greenprint._accounting import CostAccount
    from greenprint.carbon import Intensity
    from greenprint.meters import MeterReading

    kwh_j = 3.6e6
    account = CostAccount(
        scope="machine", intensity=Intensity(400.0, "argument"), pue=1.5, t0=1000.0
    )
    account.add(1001.0, {"cpu": MeterReading(1 * kwh_j)})
    account.add(995.0, {"cpu": MeterReading(2 * kwh_j)})  # the clock stepped back 6 s
    account.add(1002.0, {"cpu": MeterReading(3 * kwh_j)})
    assert account.energy_kwh == pytest.approx(3.0)
    assert account.emissions_kg == pytest.approx(3.0 * 1.5 * 400.0 / 1000.0)
