"""hwmon sensors for the CPU beyond RAPL (Arm servers): which channels, wrap-around, resets,
integration of power, permissions, and a failure mid-run that degrades to the estimate."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._base import MeterReading
from greenprint.meters._hwmon import (
    MAX_PLAUSIBLE_W,
    HwmonMeter,
    energy_delta_uj,
    label_class,
    probe_hwmon_cpu,
)
from greenprint.testing import make_fake_hwmon


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def xgene(tmp_path, no_other_hardware, monkeypatch):
    """An Arm server's CPU energy counter (X-Gene, ``hwmon0:energy1``), found by discovery."""
    fake = make_fake_hwmon(
        tmp_path / "h", devices={"hwmon0": {"driver": "xgene_hwmon", "energy": {1: "CPU energy"}}}
    )
    monkeypatch.setenv("GREENPRINT_HWMON_ROOT", str(fake.root))
    return fake


def _grace(root):
    # NVIDIA Grace: the ACPI power meter, one device per rail, labels in power1_oem_info
    rails = [
        "Module Power Socket 0",
        "Grace Power Socket 0",
        "CPU Power Socket 0",
        "SysIO Power Socket 0",
        "CPU Power Socket 1",
    ]
    return make_fake_hwmon(
        root,
        devices={
            f"hwmon{i}": {"driver": "power_meter", "power": {1: rail}, "label_attr": "oem_info"}
            for i, rail in enumerate(rails)
        },
    )


def test_label_classes():
    assert [label_class(x) for x in ("CPU energy", "Esocket0", "Ecore012", "IO power", "")] == [
        "cpu",
        "socket",
        "core",
        "other",
        "plain",
    ]
    assert label_class("Module Power Socket 0") == "other"  # the module holds the CPU: not added
    assert label_class("CPU Power Socket 1") == "cpu"


def test_energy_counters_take_the_cpu_labelled_ones_and_skip_gpus(tmp_path):
    fake = make_fake_hwmon(
        tmp_path / "hwmon",
        devices={
            "hwmon0": {
                "driver": "scmi_sensors",
                "energy": {1: "a57_energy", 2: "a53_energy", 3: "gpu_energy", 4: "sys_energy"},
            },
            "hwmon1": {"driver": "amdgpu", "energy": {1: ""}},  # a GPU: its own meter
            "hwmon2": {"driver": "nvme", "power": {1: ""}},
        },
    )
    probe = probe_hwmon_cpu(fake.root)
    assert probe.status.usable
    assert [c.name for c in probe.channels] == ["scmi_sensors:energy1", "scmi_sensors:energy2"]
    assert str(probe.origin) == (
        "hwmon:scmi_sensors:energy1+scmi_sensors:energy2 (energy counters)"
    )
    assert probe.origin.is_measured


def test_socket_counters_beat_per_core_ones(tmp_path):
    labels = {1: "Esocket0", 2: "Esocket1"} | {3 + i: f"Ecore{i:03d}" for i in range(4)}
    fake = make_fake_hwmon(
        tmp_path / "h", devices={"hwmon0": {"driver": "amd_energy", "energy": labels}}
    )
    assert [c.label for c in probe_hwmon_cpu(fake.root).channels] == ["Esocket0", "Esocket1"]


def test_power_sensors_labelled_cpu_are_integrated_by_the_trapezoid_rule(tmp_path):
    # X-Gene: power1 "CPU power", power2 "IO power", in µW, no energy counter
    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={
            "hwmon0": {
                "driver": "xgene_hwmon",
                "power": {1: "CPU power", 2: "IO power"},
                "power_attr": "input",
            }
        },
    )
    probe = probe_hwmon_cpu(fake.root)
    assert [c.name for c in probe.channels] == ["xgene_hwmon:power1"]
    assert probe.origin.detail == "power sensors, integrated"
    clock = Clock()
    fake.set_power_w("hwmon0:power1", 40.0)
    meter = HwmonMeter("cpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    clock.t += 2.0
    fake.set_power_w("hwmon0:power1", 60.0)
    assert meter.read().machine_j == pytest.approx(0.5 * (40 + 60) * 2.0)  # 100 J
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(100.0 + 60.0)
    assert meter.read().process_j is None  # no tree given


def test_grace_takes_the_cpu_rails_not_the_module(tmp_path):
    probe = probe_hwmon_cpu(_grace(tmp_path / "h").root)
    assert [c.label for c in probe.channels] == ["CPU Power Socket 0", "CPU Power Socket 1"]


def test_acpi_power_meter_alone_is_platform_power_and_labelled(tmp_path):
    fake = make_fake_hwmon(
        tmp_path / "h", devices={"hwmon0": {"driver": "power_meter", "power": {1: ""}}}
    )
    probe = probe_hwmon_cpu(fake.root)
    assert probe.status.usable
    assert "platform power (ACPI power meter: more than the CPU)" in str(probe.origin)


def test_nothing_usable_says_what_was_found(tmp_path):
    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={"hwmon0": {"driver": "coretemp"}, "hwmon1": {"driver": "i915", "energy": {1: ""}}},
    )
    status = probe_hwmon_cpu(fake.root).status
    assert not status.usable and status.fix is None
    assert status.reason == (
        f"no CPU energy counter or power sensor under {fake.root} (drivers: coretemp, i915)"
    )
    missing = probe_hwmon_cpu(tmp_path / "absent").status
    assert missing.reason == f"no {tmp_path / 'absent'} (not Linux, or no hwmon sensors)"


def test_root_only_counter_gives_the_exact_chmod(tmp_path):
    fake = make_fake_hwmon(
        tmp_path / "h", devices={"hwmon0": {"driver": "amd_energy", "energy": {1: "Esocket0"}}}
    )
    fake.make_unreadable("hwmon0:energy1")
    status = probe_hwmon_cpu(fake.root, opener=fake.opener).status
    path = fake.root / "hwmon0" / "energy1_input"
    assert not status.usable
    assert status.reason == f"permission denied reading {path}"
    assert status.fix.startswith(f"sudo chmod a+r {path} (or run as root")


def test_counter_wrap_and_reset(tmp_path):
    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={"hwmon0": {"driver": "scmi_sensors", "energy": {1: "cpu"}, "bits": 32}},
        start_uj=2**32 - 3_000_000,  # 3 J before a 32-bit counter wraps
    )
    probe = probe_hwmon_cpu(fake.root)
    clock = Clock()
    meter = HwmonMeter("cpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    clock.t += 1.0
    fake.add_j("hwmon0:energy1", 10.0)  # wraps
    assert fake.get("hwmon0:energy1") == 7_000_000
    assert meter.read().machine_j == pytest.approx(10.0)
    clock.t += 1.0
    fake.reset("hwmon0:energy1", 2_000_000)  # driver reload: 2 J since the reset
    assert meter.read().machine_j == pytest.approx(12.0)


@given(
    last=st.integers(0, 2**40),
    joules=st.floats(0, 1500),
    dt=st.floats(0.5, 5.0),
)
def test_energy_delta_recovers_any_plausible_interval(last, joules, dt):
    """Whatever the counter's start, energy below the plausible power comes back exactly."""
    added = round(joules * 1e6)
    width = 2**32 if last < 2**32 else 2**64
    now = (last + added) % width
    if joules <= MAX_PLAUSIBLE_W * dt:
        assert energy_delta_uj(last, now, dt) == added
    assert energy_delta_uj(last, now, dt) >= 0


def test_cpu_share_follows_the_process_tree(xgene):
    with contextlib.closing(detect_meters()) as meters:
        assert meters.provenance["cpu"] == "hwmon:xgene_hwmon:energy1 (energy counters)"
        meters.start()
        sum(i * i for i in range(200_000))
        xgene.add_j("hwmon0:energy1", 30.0)
        reading = meters.read()["cpu"]
        assert reading.machine_j == pytest.approx(30.0)
        assert reading.process_j is not None and 0.0 <= reading.process_j <= 30.0
        assert meters.provenance["ram"].startswith("estimate:ram")  # RAM stays estimated


def test_hwmon_is_listed_by_hardware_and_used_only_without_rapl(xgene, tmp_path):
    from greenprint.testing import make_fake_rapl

    hw = detect_hardware()
    assert hw.meter("hwmon").usable
    assert hw.meter("hwmon").reason == (
        "cpu from xgene_hwmon:energy1 (CPU energy): energy counters"
    )
    rapl = make_fake_rapl(tmp_path / "pc")
    with contextlib.closing(detect_meters(rapl_root=str(rapl.root))) as meters:
        assert meters.provenance["cpu"] == "rapl:package-0"  # RAPL first


def test_failing_mid_run_degrades_to_the_estimate_and_says_so(xgene):
    with contextlib.closing(detect_meters()) as meters:
        meters.start()
        xgene.add_j("hwmon0:energy1", 5.0)
        assert meters.read()["cpu"].machine_j == pytest.approx(5.0)
        xgene.make_unreadable("hwmon0:energy1", "missing")  # driver unloaded
        after = meters.read()["cpu"]  # never raises
        assert isinstance(after, MeterReading) and after.machine_j >= 5.0
        prov = meters.provenance["cpu"]
        assert prov.startswith("estimate:")
        assert "(hwmon failed: cannot read " in prov and "energy1_input" in prov


def test_greenprint_hardware_lists_them_and_what_is_in_use(
    tmp_path, no_other_hardware, monkeypatch, capsys
):
    from greenprint.cli import main
    from greenprint.testing import make_fake_intel_gpu

    arm = make_fake_hwmon(
        tmp_path / "h", devices={"hwmon0": {"driver": "xgene_hwmon", "power": {1: "CPU power"}}}
    )
    intel = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915"})
    monkeypatch.setenv("GREENPRINT_HWMON_ROOT", str(arm.root))
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(intel.root))
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    assert "  hwmon         yes  cpu from xgene_hwmon:power1 (CPU power): power sensors" in out
    assert "  intel-gpu     yes  gpu from card0 i915 energy1 (device)" in out
    assert "  psys          no   no psys domain (no " in out
    assert "  powermetrics  no   " in out
    assert "  cpu  hwmon:xgene_hwmon:power1 (power sensors, integrated)" in out
    assert "  gpu  hwmon:i915:card0" in out
