"""Intel GPUs through the i915/xe hwmon energy counters in a fake /sys/class/drm."""

from __future__ import annotations

import pytest

from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._hwmon import HwmonMeter
from greenprint.meters._intel_gpu import probe_intel_gpu
from greenprint.testing import make_fake_intel_gpu


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_i915_device_counter_not_its_gt_and_not_other_vendors(tmp_path):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915", "card1": "amdgpu"})
    probe = probe_intel_gpu(fake.root)
    assert probe.status.usable
    assert [c.card for c in probe.cards] == ["card0"]  # card1 is AMD's; card0-DP-1 a connector
    assert [c.path.name for c in probe.channels] == ["energy1_input"]
    assert probe.channels[0].driver == "i915"  # not i915_gt0: the gt is inside the device
    assert str(probe.origin) == "hwmon:i915:card0"
    assert probe.origin.is_measured
    assert probe.status.reason == "gpu from card0 i915 energy1 (device)"


def test_xe_card_counter_is_preferred_to_the_package(tmp_path):
    both = probe_intel_gpu(make_fake_intel_gpu(tmp_path / "a", cards={"card0": "xe"}).root)
    assert [(c.channel, c.label) for c in both.channels] == [("energy1", "card")]
    assert str(both.origin) == "hwmon:xe:card0"
    pkg = make_fake_intel_gpu(tmp_path / "b", cards={"card0": "xe"}, xe_channels=(2,))
    probe = probe_intel_gpu(pkg.root)
    assert [c.channel for c in probe.channels] == ["energy2"]
    assert str(probe.origin) == (
        "hwmon:xe:card0:package (package only: card memory and board not counted)"
    )


def test_two_cards_are_summed(tmp_path):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915", "card1": "xe"})
    probe = probe_intel_gpu(fake.root)
    assert str(probe.origin) == "hwmon:i915+xe:card0+card1"
    clock = Clock()
    meter = HwmonMeter("gpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    fake.add_j("card0:energy1", 120.0)
    fake.add_j("card1:energy1", 80.5)
    fake.add_j("card1:energy2", 60.0)  # the package, inside the card: not added
    clock.t += 1.0
    reading = meter.read()
    assert reading.machine_j == pytest.approx(200.5)
    assert reading.process_j is None  # a GPU is not attributed


def test_integrated_gpu_without_hwmon_says_why(tmp_path):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915"}, no_hwmon=("card0",))
    status = probe_intel_gpu(fake.root).status
    assert not status.usable and status.fix is None
    assert status.reason.startswith("card0 (i915) has no energy counter: an integrated GPU is")


def test_no_intel_gpu(tmp_path):
    status = probe_intel_gpu(tmp_path / "absent").status
    assert (status.usable, status.fix) == (False, None)
    assert status.reason == f"no Intel GPU (no {tmp_path / 'absent'})"
    (tmp_path / "drm").mkdir()
    status = probe_intel_gpu(tmp_path / "drm").status
    assert status.reason == f"no Intel GPU (no card driven by i915 or xe under {tmp_path / 'drm'})"


def test_root_only_counter_gives_the_exact_chmod(tmp_path):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "xe"})
    fake.make_unreadable("card0:energy1")
    status = probe_intel_gpu(fake.root, opener=fake.opener).status
    path = fake.files["card0:energy1"]
    assert not status.usable
    assert status.reason == f"permission denied reading {path}"
    assert status.fix.startswith(f"sudo chmod a+r {path} (or run as root")


def test_reset_after_a_driver_reload_counts_the_energy_since(tmp_path):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915"}, start_uj=10**13)
    probe = probe_intel_gpu(fake.root)
    clock = Clock()
    meter = HwmonMeter("gpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    fake.add_j("card0:energy1", 40.0)
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(40.0)
    fake.reset("card0:energy1", 3_000_000)  # 64-bit counter back near 0: a reset, not a wrap
    clock.t += 1.0
    assert meter.read().machine_j == pytest.approx(43.0)


def test_detect_meters_uses_it_and_hardware_lists_it(tmp_path, no_other_hardware, monkeypatch):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "i915"})
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(fake.root))
    hw = detect_hardware()
    assert hw.meter("intel-gpu").usable
    meters = detect_meters()
    try:
        assert meters.provenance["gpu"] == "hwmon:i915:card0"
        meters.start()
        fake.add_j("card0:energy1", 25.0)
        assert meters.read()["gpu"].machine_j == pytest.approx(25.0)
    finally:
        meters.close()


def test_failing_mid_run_continues_at_the_mean_power_and_says_so(
    tmp_path, no_other_hardware, monkeypatch
):
    fake = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "xe"})
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(fake.root))
    clock = Clock()
    meters = detect_meters(clock=clock)
    try:
        meters.start()
        clock.t += 2.0
        fake.add_j("card0:energy1", 300.0)  # 150 W over 2 s
        assert meters.read()["gpu"].machine_j == pytest.approx(300.0)
        fake.make_unreadable("card0:energy1", "directory")  # the device went away
        clock.t += 1.0
        reading = meters.read()["gpu"]  # never raises
        assert reading.machine_j == pytest.approx(450.0)  # continued at the mean 150 W
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:")
        assert "(hwmon failed: cannot read " in prov
    finally:
        meters.close()
