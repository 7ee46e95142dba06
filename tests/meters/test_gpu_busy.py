"""Utilisation that is not a valid percentage is missing, and the GPU estimate's label says so.

amdgpu's ``gpu_busy_percent`` reads 65535 (0xFFFF) where the firmware has no figure, and a read
can fail while the GPU resets: such a value must not be taken as "utilisation sysfs" (clamped to
100 %, it looked measured); it is unknown, full load is used, and the provenance counts it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenprint._provenance import Provenance
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._gpu_estimate import (
    GPU_IDLE_FRACTION,
    busy_fraction,
    find_unmetered_gpus,
)
from greenprint.testing import FakeAMDSMI, FakeGPU, FakeNVML


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _amd_card(root: Path, busy: str | None, *, cap_uw: int = 300_000_000) -> Path:
    """An AMD card in a fake /sys/class/drm; ``busy`` is the text of gpu_busy_percent."""
    dev = root / "card0" / "device"
    (dev / "hwmon" / "hwmon2").mkdir(parents=True)
    (dev / "vendor").write_text("0x1002\n")
    (dev / "product_name").write_text("AMD Instinct MI210\n")
    (dev / "hwmon" / "hwmon2" / "power1_cap").write_text(f"{cap_uw}\n")
    if busy is not None:
        (dev / "gpu_busy_percent").write_text(busy)
    return dev / "gpu_busy_percent"


@given(st.integers(min_value=0, max_value=100))
def test_every_whole_percentage_is_its_fraction(percent):
    assert busy_fraction(percent) == percent / 100
    assert busy_fraction(f"{percent}\n") == percent / 100


@given(
    st.one_of(
        st.integers(min_value=101),
        st.integers(max_value=-1),
        st.floats(allow_nan=True),
        st.booleans(),
        st.none(),
        st.text().filter(lambda t: not (t.strip().isascii() and t.strip().isdigit())),
    )
)
def test_anything_else_is_missing(value):
    assert busy_fraction(value) is None


@pytest.mark.parametrize("garbage", ["65535\n", "0xFFFF\n", "-1\n", "", "101\n"])
def test_a_garbage_busy_percent_at_discovery_is_unknown_not_sysfs(tmp_path, garbage):
    root = tmp_path / "drm"
    _amd_card(root, garbage)
    (gpu,) = find_unmetered_gpus(environ={}, drm_root=root, vendors=("amd",))
    assert (gpu.utilisation, gpu.utilisation_source) == (None, "")
    assert gpu.utilisation_note == "utilisation unknown: full load"


def test_an_unreadable_busy_percent_is_unknown(tmp_path):
    root = tmp_path / "drm"
    path = _amd_card(root, None)
    path.mkdir()  # a read error (EISDIR), as a file that cannot be read
    (gpu,) = find_unmetered_gpus(environ={}, drm_root=root, vendors=("amd",))
    assert gpu.utilisation_source == ""


def test_hardware_and_the_run_say_unknown_for_a_0xffff_card(tmp_path, monkeypatch):
    root = tmp_path / "drm"
    _amd_card(root, "65535\n")
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(root))
    est = detect_hardware(nvml=FakeNVML(), amdsmi=FakeAMDSMI()).meter("estimate:gpu")
    assert est is not None and est.usable
    assert est.reason.startswith(
        "AMD-0 AMD Instinct MI210: 300 W (power-limit), utilisation unknown (full load assumed)"
    )
    clock = Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={}, clock=clock)
    try:
        assert meters.provenance["gpu"] == (
            "estimate:gpu-tdp:AMD-0 (AMD-0 AMD Instinct MI210 300 W power-limit, utilisation "
            "unknown: full load)"
        )
        meters.start()
        clock.t += 10.0
        assert meters.read()["gpu"].machine_j == pytest.approx(3000.0)  # 300 W x 10 s
    finally:
        meters.close()


def test_garbage_mid_run_is_full_load_for_those_reads_and_counted_in_the_label(
    tmp_path, monkeypatch
):
    root = tmp_path / "drm"
    busy = _amd_card(root, "40\n")
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(root))
    clock = Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={}, clock=clock)
    try:
        assert meters.provenance["gpu"].endswith("utilisation sysfs)")
        meters.start()  # 40 %
        tdp, idle = 300.0, GPU_IDLE_FRACTION * 300.0
        w40, w100 = idle + (tdp - idle) * 0.4, tdp
        busy.write_text("65535\n")  # the firmware lost its figure: full load
        clock.t += 1.0
        meters.read()
        busy.write_text("40\n")
        clock.t += 1.0
        reading = meters.read()["gpu"]
        # first principles: trapezoid 40 % -> (unknown: 100 %) -> 40 %, 1 s each
        assert reading.machine_j == pytest.approx(0.5 * (w40 + w100) * 2, rel=1e-9)
        prov = meters.provenance["gpu"]
        assert prov == (
            "estimate:gpu-tdp:AMD-0 (AMD-0 AMD Instinct MI210 300 W power-limit, utilisation "
            "sysfs, unknown in 1 of 3 reads: full load then)"
        )
        assert Provenance.parse(prov).is_estimate
    finally:
        meters.close()


def test_nvml_utilisation_outside_0_to_100_is_unknown_too():
    gpu = FakeGPU(name="NVIDIA L4", energy_mj=None, power_w=None, utilization_gpu=255)
    meters = detect_meters(nvml=FakeNVML([gpu]), amdsmi=FakeAMDSMI(), environ={})
    try:
        assert meters.provenance["gpu"].endswith("utilisation unknown: full load)")
    finally:
        meters.close()
