"""An Intel GPU without an energy counter: the TDP-table estimate when the table knows it, else
"unknown", in the run's provenance and in ``greenprint hardware``; an integrated one stays the
CPU's (it is inside the package)."""

from __future__ import annotations

import json
import subprocess

import pytest

from greenprint._provenance import Provenance
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._gpu_tdp import GPU_IDLE_FRACTION, match_gpu_tdp
from greenprint.meters._intel_gpu import HWDATA_ROOT_ENV, pci_device_name, probe_intel_gpu
from greenprint.testing import FakeAMDSMI, FakeNVML, make_fake_intel_gpu, make_fake_pci_ids

#: pci.ids lines: 56a0, e20b and a780 as the real file has them; 56c0 a Flex 170 line made up
#: for the test (a card the table does not know)
PCI_NAMES = {
    "56a0": "DG2 [Arc A770]",
    "e20b": "Battlemage G21 [Arc B580]",
    "a780": "Raptor Lake-S GT1 [UHD Graphics 770]",
    "56c0": "ATS-M [Data Center GPU Flex 170]",
}
DISCRETE = "0000:03:00.0"
INTEGRATED = "0000:00:02.0"


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def hwdata(tmp_path, monkeypatch):
    root = tmp_path / "usr-share"
    make_fake_pci_ids(root, PCI_NAMES)
    monkeypatch.setenv("GREENPRINT_HWDATA_ROOT", str(root))
    return root


def _card(tmp_path, monkeypatch, pci_id: str, slot: str, driver: str = "i915"):
    fake = make_fake_intel_gpu(
        tmp_path / "drm",
        cards={"card1": driver},
        no_hwmon=("card1",),
        pci={"card1": (pci_id, slot)},
    )
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(fake.root))
    return fake


def test_pci_ids_names_the_card_by_its_bracketed_name(tmp_path):
    make_fake_pci_ids(tmp_path, PCI_NAMES, where="hwdata")
    assert pci_device_name("8086:56A0", tmp_path) == "Intel Arc A770"
    assert pci_device_name("8086:e20b", tmp_path) == "Intel Arc B580"
    assert pci_device_name("8086:0100", tmp_path).startswith("Intel 2nd Generation Core")
    assert pci_device_name("8086:beef", tmp_path) == ""  # another vendor's device id
    assert pci_device_name("10de:56a0", tmp_path) == ""  # not Intel
    assert pci_device_name("8086:56a0", tmp_path / "nothing") == ""  # no pci.ids
    assert HWDATA_ROOT_ENV == "GREENPRINT_HWDATA_ROOT"


def test_the_table_knows_intels_discrete_cards_by_those_names():
    assert match_gpu_tdp("Intel Arc A770").tdp_w == 225
    assert match_gpu_tdp("Intel Arc B580").tdp_w == 190
    assert match_gpu_tdp("Intel Data Center GPU Max 1550").tdp_w == 600
    assert match_gpu_tdp("Intel Arc A770M") is None  # the laptop part is not the card
    assert match_gpu_tdp("Intel UHD Graphics 770") is None


def test_a_discrete_card_without_a_counter_is_estimated_from_the_table(
    tmp_path, monkeypatch, hwdata
):
    _card(tmp_path, monkeypatch, "8086:56A0", DISCRETE)
    status = detect_hardware(nvml=FakeNVML(), amdsmi=FakeAMDSMI()).meter("intel-gpu")
    assert status is not None and not status.usable
    assert status.reason == (
        "card1 (i915, Intel Arc A770, 0000:03:00.0) has no energy counter: estimated at 225 W "
        "(table:Intel Arc A770), utilisation unknown (full load assumed)"
    )
    assert status.fix == "for a measured figure, run Linux >= 6.2 (i915) or >= 6.5 (xe)"
    clock = Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={}, clock=clock)
    try:
        prov = meters.provenance["gpu"]
        assert prov == (
            "estimate:gpu-tdp:card1 (card1 Intel Arc A770 225 W table:Intel Arc A770, "
            "utilisation unknown: full load)"
        )
        assert Provenance.parse(prov).is_estimate
        meters.start()
        clock.t += 4.0
        # first principles: full load is the TDP (the idle floor does not lower it)
        assert meters.read()["gpu"].machine_j == pytest.approx(225.0 * 4.0)
        assert GPU_IDLE_FRACTION < 1
    finally:
        meters.close()


def test_a_card_the_table_does_not_know_is_unknown_and_not_counted(tmp_path, monkeypatch, hwdata):
    _card(tmp_path, monkeypatch, "8086:56C0", DISCRETE, driver="xe")
    status = detect_hardware(nvml=FakeNVML(), amdsmi=FakeAMDSMI()).meter("intel-gpu")
    assert status.reason == (
        "card1 (xe, Intel Data Center GPU Flex 170, 0000:03:00.0) has no energy counter and not "
        "in the GPU TDP table: its energy is unknown"
    )
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={})
    try:
        assert "gpu" not in meters.provenance  # nothing made up
    finally:
        meters.close()


def test_without_pci_ids_the_card_is_unknown(tmp_path, monkeypatch):
    _card(tmp_path, monkeypatch, "8086:56A0", DISCRETE)
    status = probe_intel_gpu().status
    assert status.reason == (
        "card1 (i915, PCI 8086:56A0, 0000:03:00.0) has no energy counter and no name for it in "
        "pci.ids: its energy is unknown"
    )
    assert probe_intel_gpu().estimated == ()


def test_an_integrated_gpu_stays_inside_the_cpu_figure(tmp_path, monkeypatch, hwdata):
    _card(tmp_path, monkeypatch, "8086:A780", INTEGRATED)
    probe = probe_intel_gpu()
    assert probe.estimated == ()
    assert probe.status.reason.startswith(
        "card1 (i915) has no energy counter: an integrated GPU is inside the CPU package"
    )
    assert probe.status.fix is None


def test_a_card_with_a_counter_is_measured_not_estimated(tmp_path, monkeypatch, hwdata):
    fake = make_fake_intel_gpu(
        tmp_path / "drm", cards={"card1": "i915"}, pci={"card1": ("8086:56A0", DISCRETE)}
    )
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(fake.root))
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={})
    try:
        assert meters.provenance["gpu"] == "hwmon:i915:card1"
    finally:
        meters.close()


def test_greenprint_hardware_says_it(tmp_path, monkeypatch, hwdata):
    """As a user meets it: the CLI in a clean environment with the fake card and pci.ids."""
    from _clean_env import BIN, clean_env

    fake = make_fake_intel_gpu(
        tmp_path / "drm", cards={"card1": "i915"}, no_hwmon=("card1",),
        pci={"card1": ("8086:E20B", DISCRETE)},
    )  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(
        clean_env(),
        GREENPRINT_DRM_ROOT=str(fake.root),
        GREENPRINT_HWDATA_ROOT=str(hwdata),
        GREENPRINT_DEV_ROOT=str(empty),
        GREENPRINT_PROC_DRIVER_ROOT=str(empty),
        GREENPRINT_HWMON_ROOT=str(empty),
    )
    out = subprocess.run(
        [str(BIN / "greenprint"), "hardware", "--json"],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(out.stdout)
    intel = next(m for m in report["meters"] if m["name"] == "intel-gpu")
    assert "Intel Arc B580" in intel["reason"] and "estimated at 190 W" in intel["reason"]
    assert report["in_use"]["gpu"] == (
        "estimate:gpu-tdp:card1 (card1 Intel Arc B580 190 W table:Intel Arc B580, utilisation "
        "unknown: full load)"
    )
