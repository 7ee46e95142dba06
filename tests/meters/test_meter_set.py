"""detect_meters and MeterSet: choice per component, provenance, fallback mid-run, never raising."""

import pytest

from greenprint import ConfigError, MeterError
from greenprint.hardware import HardwareInfo, detect_hardware
from greenprint.meters import Meter, MeterReading, MeterSet, ProcessTree, detect_meters
from greenprint.testing import FakeGPU, FakeNVML, make_fake_rapl
from greenprint.testing import _nvml as fake_module


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def no_gpu():
    return FakeNVML(init_error=fake_module.NVML_ERROR_LIBRARY_NOT_FOUND)


def test_without_counters_every_component_is_an_estimate_and_says_so(tmp_path):
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=no_gpu())
    hw = detect_hardware(rapl_root=str(tmp_path / "none"), nvml=no_gpu())
    assert meters.components == ("cpu", "ram")
    if hw.cpu_tdp_w is None:  # this CI machine: "AMD EPYC" names no model
        assert meters.provenance["cpu"].startswith("estimate:default-per-core (4 W/core x ")
    else:
        assert meters.provenance["cpu"].startswith("estimate:tdp:")
    assert meters.provenance["ram"].startswith("estimate:ram:0.3725W/GB x ")
    meters.start()
    readings = meters.read()
    assert set(readings) == {"cpu", "ram"}
    for r in readings.values():
        assert r.machine_j >= 0 and r.process_j is not None and r.process_j <= r.machine_j
    meters.close()


def test_this_machine_is_metered_and_labelled():
    # whatever this machine has: estimates where no counter is readable, labelled as such
    meters = detect_meters()
    try:
        for component, source in meters.provenance.items():
            assert source.split(":")[0] in ("rapl", "nvml", "estimate"), component
        meters.start()
        assert set(meters.read()) == set(meters.components)
    finally:
        meters.close()


def test_rapl_and_nvml_are_preferred_when_readable(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dram=True, psys=True, mmio_mirror=True)
    nvml = FakeNVML([FakeGPU(energy_mj=0, power_w=300), FakeGPU(energy_mj=None, power_w=100)])
    clock = Clock()
    meters = detect_meters(rapl_root=str(rapl.root), nvml=nvml, environ={}, clock=clock)
    assert meters.components == ("cpu", "gpu", "ram")
    assert meters.provenance == {
        "cpu": "rapl:package-0+package-1",
        "gpu": "nvml:counter:GPU-0+nvml:power-sampling:GPU-1",
        "ram": "rapl:dram-0+dram-1",
    }
    meters.start()
    rapl.advance(package_j=[20.0, 10.0], dram_j=2.5, platform_extra_j=100.0)
    nvml.advance(2.0)
    clock.t += 2.0
    readings = meters.read()
    assert readings["cpu"].machine_j == pytest.approx(30.0)  # psys and the mirror not added
    assert readings["ram"].machine_j == pytest.approx(5.0)
    assert readings["gpu"].machine_j == pytest.approx(800.0)  # 300 W x 2 s + 100 W x 2 s
    meters.close()
    assert nvml.init_count == 0


def test_rapl_without_dram_estimates_ram(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", dram=False)
    meters = detect_meters(rapl_root=str(rapl.root), nvml=no_gpu())
    assert meters.provenance["cpu"] == "rapl:package-0"
    assert meters.provenance["ram"].startswith("estimate:ram:")


def test_unreadable_rapl_falls_back_to_estimates_from_the_start(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["package-0"])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=no_gpu(), rapl_opener=rapl.opener)
    assert meters.provenance["cpu"].startswith("estimate:")


def test_rapl_failing_mid_run_continues_as_an_estimate_from_the_last_good_value(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc")
    clock = Clock()
    hw = HardwareInfo("Test CPU 1000", 1, 2, 2, 8.0, (), (), 100.0, "table:Test CPU 1000")
    meters = detect_meters(
        rapl_root=str(rapl.root), nvml=no_gpu(), rapl_opener=rapl.opener, clock=clock, hardware=hw
    )
    meters.start()
    rapl.advance(package_j=50.0, dram_j=5.0)
    clock.t += 1.0
    good = meters.read()
    busy_at_good = meters.tree.last.busy_s
    assert good["cpu"].machine_j == pytest.approx(50.0)

    rapl.make_unreadable("package-0")  # e.g. a permission change
    rapl.advance(package_j=50.0, dram_j=5.0)
    clock.t += 1.0
    after = meters.read()  # must not raise
    path = rapl.root / "intel-rapl:0" / "energy_uj"
    assert meters.provenance["cpu"] == (
        f"estimate:tdp:Test CPU 1000 (100 W) (rapl failed: permission denied reading {path})"
    )
    assert meters.meter("cpu").is_estimate
    # continuity: the last good 50 J plus the estimate's figure for the interval that failed,
    # 10 W idle x 1 s + (100 - 10) W x the machine's busy fraction of that second
    busy = meters.tree.last.busy_s - busy_at_good
    assert after["cpu"].machine_j == pytest.approx(50.0 + 10.0 + 90.0 * busy)
    assert meters.provenance["ram"] == "rapl:dram-0"  # the other component keeps its counter
    assert after["ram"].machine_j == pytest.approx(10.0)

    clock.t += 1.0
    later = meters.read()
    assert later["cpu"].machine_j >= after["cpu"].machine_j + 10.0
    assert later["cpu"].process_j >= after["cpu"].process_j


def test_gpu_failing_mid_run_continues_at_its_mean_power(tmp_path):
    gpu = FakeGPU(energy_mj=0, power_w=200)
    nvml = FakeNVML([gpu])
    clock = Clock()
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml, environ={}, clock=clock)
    meters.start()
    gpu.advance(4.0)
    clock.t += 4.0
    assert meters.read()["gpu"].machine_j == pytest.approx(800.0)
    gpu.fail("nvmlDeviceGetTotalEnergyConsumption", fake_module.NVML_ERROR_GPU_IS_LOST)
    clock.t += 1.0
    after = meters.read()["gpu"]
    assert after.machine_j == pytest.approx(1000.0)  # + 200 W x 1 s, estimated
    assert meters.provenance["gpu"] == (
        "estimate:gpu:mean-power (200 W) (nvml failed: "
        "GPU-0: nvmlDeviceGetTotalEnergyConsumption failed: GPU is lost)"
    )
    clock.t += 2.0
    assert meters.read()["gpu"].machine_j == pytest.approx(1400.0)
    meters.close()
    assert nvml.init_count == 0


def test_cuda_visible_devices_from_the_environment(tmp_path, monkeypatch):
    nvml = FakeNVML([FakeGPU(), FakeGPU()])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml)
    assert meters.provenance["gpu"] == "nvml:counter:GPU-1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml)
    assert meters.components == ("cpu", "ram")


def test_environment_variable_selects_the_rapl_tree(tmp_path, monkeypatch):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2)
    monkeypatch.setenv("GREENPRINT_RAPL_ROOT", str(rapl.root))
    meters = detect_meters(nvml=no_gpu())
    assert meters.provenance["cpu"] == "rapl:package-0+package-1"


class Broken(Meter):
    """A meter with a bug: MeterSet must contain it, not pass it on."""

    component = "cpu"

    def __init__(self, exc: BaseException, *, at_start: bool = False):
        self.exc = exc
        self.at_start = at_start

    @property
    def provenance(self) -> str:
        return "rapl:package-0"

    def start(self) -> None:
        if self.at_start:
            raise self.exc

    def read(self) -> MeterReading:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "why"),
    [
        (MeterError("cannot read x"), "(rapl failed: cannot read x)"),
        (OSError(5, "Input/output error"), "(rapl failed: [Errno 5] Input/output error)"),
        (TypeError("a bug"), "(rapl failed: TypeError: a bug)"),
    ],
)
@pytest.mark.parametrize("at_start", [False, True])
def test_read_never_raises_whatever_the_meter_raises(exc, why, at_start):
    from greenprint.meters import CpuEstimateMeter, RamEstimateMeter

    tree = ProcessTree()
    estimate = CpuEstimateMeter(tdp_w=100.0, provenance="estimate:tdp:Test CPU (100 W)", tree=tree)
    ram = RamEstimateMeter(ram_gb=8.0, tree=tree)
    meters = MeterSet(
        {"cpu": Broken(exc, at_start=at_start), "ram": ram},
        tree=tree,
        estimates={"cpu": estimate, "ram": ram},
    )
    meters.start()
    readings = meters.read()
    assert readings["cpu"].machine_j >= 0
    assert meters.provenance["cpu"] == f"estimate:tdp:Test CPU (100 W) {why}"
    assert meters.read()["cpu"].machine_j >= readings["cpu"].machine_j
    meters.close()
    meters.close()  # idempotent


def test_read_before_start_starts():
    meters = detect_meters(nvml=no_gpu())
    assert set(meters.read()) == set(meters.components)
    meters.close()


def test_an_estimate_with_a_bug_continues_at_its_mean_power():
    clock = Clock()
    tree = ProcessTree(clock=clock)

    class FlakyRam(Meter):
        component = "ram"
        calls = 0

        @property
        def provenance(self) -> str:
            return "estimate:ram:flaky"

        def start(self) -> None:
            pass

        def read(self) -> MeterReading:
            self.calls += 1
            if self.calls > 1:
                raise ZeroDivisionError("oops")
            return MeterReading(10.0 * (clock.t - 100.0), 1.0 * (clock.t - 100.0))

    meters = MeterSet({"ram": FlakyRam()}, tree=tree, clock=clock)
    meters.start()
    clock.t += 2.0
    assert meters.read()["ram"] == MeterReading(20.0, 2.0)
    clock.t += 1.0
    reading = meters.read()["ram"]
    assert reading.machine_j == pytest.approx(30.0)  # 10 W held
    assert reading.process_j == pytest.approx(3.0)
    assert meters.provenance["ram"] == (
        "estimate:ram:mean-power (10 W) (estimate failed: ZeroDivisionError: oops)"
    )


def test_a_configured_cpu_tdp_replaces_the_table_and_the_per_core_default(tmp_path, monkeypatch):
    # a VM that sees 4 vCPUs of a 64-core part: the user knows its share better than any table
    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", "35")
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=no_gpu())
    assert meters.provenance["cpu"] == "estimate:configured-tdp (35 W, env:GREENPRINT_CPU_TDP_W)"
    meters.close()
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=no_gpu(), cpu_tdp_w=12.5)
    assert meters.provenance["cpu"] == "estimate:configured-tdp (12.5 W, argument)"
    meters.close()


def test_a_configured_cpu_tdp_in_a_config_file(tmp_path, monkeypatch):
    (tmp_path / "greenprint.toml").write_text("cpu_tdp_w = 65\n")
    monkeypatch.chdir(tmp_path)
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=no_gpu())
    assert meters.provenance["cpu"].startswith("estimate:configured-tdp (65 W, file:")
    meters.close()


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "1e6", "eighty"])
def test_a_bad_configured_cpu_tdp_is_a_config_error(value, tmp_path, monkeypatch):
    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", value)
    with pytest.raises(ConfigError, match="cpu_tdp_w must be"):
        detect_meters(rapl_root=str(tmp_path / "none"), nvml=no_gpu())


def test_rapl_wins_over_a_configured_cpu_tdp(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", "35")
    rapl = make_fake_rapl(tmp_path / "powercap", dram=False)
    meters = detect_meters(rapl_root=str(rapl.root), nvml=no_gpu())
    assert meters.provenance["cpu"].startswith("rapl:")
    meters.close()
