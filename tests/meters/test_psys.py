"""RAPL psys (platform energy): used for the CPU only when nothing else meters it, labelled."""

from __future__ import annotations

import pytest

from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters, probe_rapl
from greenprint.testing import make_fake_hwmon, make_fake_rapl


def _psys_only(root, **kwargs):
    """A laptop whose package counters are unreadable, but psys is (or one with psys alone)."""
    rapl = make_fake_rapl(root, packages=1, dram=True, psys=True, **kwargs)
    rapl.make_unreadable("package-0", "missing")
    return rapl


def test_psys_is_not_used_while_the_packages_can_be_read(tmp_path, no_other_hardware):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, psys=True)
    probe = probe_rapl(rapl.root)
    assert probe.psys is not None and probe.psys_status.usable
    assert "not used: the package domains meter the CPU" in probe.psys_status.reason
    meters = detect_meters(rapl_root=str(rapl.root))
    try:
        assert meters.provenance["cpu"] == "rapl:package-0+package-1"
    finally:
        meters.close()


def test_psys_alone_meters_the_cpu_labelled_as_platform_and_ram_is_inside(
    tmp_path, no_other_hardware
):
    rapl = _psys_only(tmp_path / "pc")
    hw = detect_hardware(rapl_root=str(rapl.root))
    assert not hw.meter("rapl").usable
    assert hw.meter("psys").usable
    assert "used for cpu only if no other CPU counter exists" in hw.meter("psys").reason
    meters = detect_meters(rapl_root=str(rapl.root))
    try:
        prov = meters.provenance["cpu"]
        assert prov.startswith("rapl:psys (platform: CPU package, memory, chipset and more")
        assert meters.meter("cpu").origin.is_measured
        assert "ram" not in meters.components  # inside psys: not counted twice
        meters.start()
        rapl.add_j("psys", 42.0)
        assert meters.read()["cpu"].machine_j == pytest.approx(42.0)
    finally:
        meters.close()


def test_psys_wraps_like_any_rapl_counter(tmp_path, no_other_hardware):
    rapl = _psys_only(tmp_path / "pc", max_energy_range_uj=100_000_000, start_uj=95_000_000)
    meters = detect_meters(rapl_root=str(rapl.root))
    try:
        meters.start()
        rapl.add_j("psys", 12.0)  # 95 J + 12 J wraps at 100 J
        assert rapl.get_uj("psys") == 7_000_000
        assert meters.read()["cpu"].machine_j == pytest.approx(12.0)
    finally:
        meters.close()


def test_an_arm_hwmon_counter_beats_psys(tmp_path, no_other_hardware, monkeypatch):
    rapl = _psys_only(tmp_path / "pc")
    fake = make_fake_hwmon(
        tmp_path / "hwmon", devices={"hwmon0": {"driver": "scmi", "energy": {1: "CPU energy"}}}
    )
    monkeypatch.setenv("GREENPRINT_HWMON_ROOT", str(fake.root))
    meters = detect_meters(rapl_root=str(rapl.root))
    try:
        assert meters.provenance["cpu"].startswith("hwmon:scmi:energy1")
        assert "ram" in meters.components
    finally:
        meters.close()


def test_unreadable_psys_gives_the_chmod(tmp_path, no_other_hardware):
    rapl = make_fake_rapl(tmp_path / "pc", packages=1, psys=True, unreadable=["package-0", "psys"])
    probe = probe_rapl(rapl.root, opener=rapl.opener)
    assert not probe.psys_status.usable
    assert (
        probe.psys_status.reason == f"permission denied reading {rapl.root}/intel-rapl:1/energy_uj"
    )
    assert probe.psys_status.fix == (
        f"sudo chmod a+r {rapl.root}/intel-rapl:*/energy_uj (or run as root)"
    )


def test_no_psys_domain(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc")
    assert probe_rapl(rapl.root).psys_status.reason == f"no psys domain ({rapl.root})"


def test_psys_failing_mid_run_degrades_to_cpu_plus_ram_estimate(tmp_path, no_other_hardware):
    rapl = _psys_only(tmp_path / "pc")
    meters = detect_meters(rapl_root=str(rapl.root))
    try:
        meters.start()
        rapl.add_j("psys", 10.0)
        assert meters.read()["cpu"].machine_j == pytest.approx(10.0)
        rapl.make_unreadable("psys", "directory")
        after = meters.read()["cpu"]  # never raises
        assert after.machine_j >= 10.0
        prov = meters.provenance["cpu"]
        assert prov.startswith("estimate:cpu+ram (estimate:")  # RAM was inside psys
        assert "(rapl failed: cannot read " in prov
    finally:
        meters.close()
