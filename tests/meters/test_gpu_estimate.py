"""The GPU estimate (TDP x utilisation) for GPUs present but unreadable, its table, and the GPU
chain in detect_meters / detect_hardware: NVML -> amdsmi -> estimate, failures degrading."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._gpu_estimate import (
    DEFAULT_GPU_TDP_W,
    GPU_IDLE_FRACTION,
    EstimatedGpu,
    GpuTdpEstimateMeter,
    find_unmetered_gpus,
    match_gpu_tdp,
    unmetered_gpus,
)
from greenprint.testing import FakeAmdGpu, FakeAMDSMI, FakeGPU, FakeNVML
from greenprint.testing import _amdsmi as amd_codes
from greenprint.testing import _nvml as nvml_codes

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "src/greenprint/meters/data/gpu_tdp.csv"


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _script():
    spec = importlib.util.spec_from_file_location(
        "build_gpu_tdp", ROOT / "scripts/build_gpu_tdp_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_gpu_tdp"] = module
    spec.loader.exec_module(module)
    return module


# -- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "watts"),
    [
        ("NVIDIA A100-SXM4-40GB", 400),  # NVML's names
        ("NVIDIA A100-SXM4-80GB", 400),
        ("NVIDIA A100-PCIE-40GB", 250),
        ("NVIDIA A100 80GB PCIe", 300),
        ("NVIDIA H100 80GB HBM3", 700),
        ("NVIDIA H100 PCIe", 350),
        ("NVIDIA H200", 700),
        ("Tesla V100-SXM2-16GB", 300),  # the vendor's figure, not ML CO2's 250 W row
        ("Tesla V100-PCIE-32GB", 250),
        ("Tesla T4", 70),
        ("NVIDIA L4", 72),
        ("AMD Instinct MI300X", 750),  # amdsmi's market names
        ("AMD Instinct MI250X / MI250", 560),
    ],
)
def test_known_gpus_get_their_vendor_tdp(name, watts):
    match = match_gpu_tdp(name)
    assert match is not None and match.tdp_w == watts


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA GeForce RTX 3090 Ti",  # not the RTX 3090 (450 W against 350 W)
        "Tesla P100-SXM2-16GB",  # not the generic P100 row (300 W against 250 W)
        "NVIDIA GH200 480GB",
        "AMD EPYC",
        "",
    ],
)
def test_a_name_the_table_does_not_know_matches_nothing_rather_than_a_neighbour(name):
    assert match_gpu_tdp(name) is None


def test_the_shipped_table_is_what_the_script_builds_from_its_vendor_rows():
    rows = list(csv.DictReader(TABLE.read_text(encoding="utf-8").splitlines()))
    assert rows and all(float(r["tdp_w"]) > 0 for r in rows)
    assert {r["source"] for r in rows} <= {"vendor", "green-algorithms", "mlco2"}
    vendor = {(r["model"], float(r["tdp_w"]), r["url"]) for r in rows if r["source"] == "vendor"}
    assert vendor == {(m, float(w), u) for m, w, u in _script().VENDOR_ROWS}
    assert all(r["url"].startswith("https://") for r in rows if r["source"] == "vendor")


def test_the_script_prefers_vendor_rows_and_drops_bad_ones():
    ga = (
        "index,in Watt,TO BE CHECKED\nmodel,TDP,n_cores,source\nAny,,,\n"
        "NVIDIA A100 40GB PCIe,999,,x\nNVIDIA GTX 1080,180,,techpowerup.com\nTPU v3,220,,y\n"
    )
    mlco2 = "name,type,tdp_watts,source\nGTX 1080,gpu,170,z\nXeon,cpu,100,w\nRTX 9999,gpu,,v\n"
    rows, counts = _script().build(ga, mlco2)
    by_name = {r[0]: r for r in rows}
    assert by_name["NVIDIA A100 PCIe 40GB"][1:3] == (250.0, "vendor")  # not GA's 999
    assert by_name["NVIDIA GTX 1080"][1:3] == (180.0, "green-algorithms")  # not mlco2's 170
    assert counts["shadowed"] == 2 and counts["not_gpu"] == 1 and counts["bad_tdp"] == 2


# -- the model ------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    tdp=st.floats(min_value=10, max_value=1500),
    utilisation=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=8),
)
def test_estimate_integrates_the_linear_model_exactly(tdp, utilisation):
    """First principles: idle + (tdp - idle) x u at each read, trapezoid between reads."""
    samples = iter(utilisation)
    clock = Clock()
    gpu = EstimatedGpu("GPU-0", "X", tdp, "table:X", lambda: next(samples), "nvml")
    meter = GpuTdpEstimateMeter([gpu], clock=clock)
    meter.start()
    for _ in utilisation[1:]:
        clock.t += 2.0
        reading = meter.read()
    idle = GPU_IDLE_FRACTION * tdp
    power = [idle + (tdp - idle) * u for u in utilisation]
    expected = sum(0.5 * (a + b) * 2.0 for a, b in zip(power, power[1:], strict=False))
    assert reading.machine_j == pytest.approx(expected, rel=1e-9)
    assert reading.process_j is None
    assert meter.is_estimate


def test_unknown_utilisation_is_full_load_and_says_so():
    clock = Clock()
    meter = GpuTdpEstimateMeter(
        [EstimatedGpu("GPU-0", "NVIDIA L4", 72.0, "table:NVIDIA L4")], clock=clock
    )
    meter.start()
    clock.t += 10.0
    assert meter.read().machine_j == pytest.approx(720.0)
    assert meter.provenance == (
        "estimate:gpu-tdp:GPU-0 "
        "(GPU-0 NVIDIA L4 72 W table:NVIDIA L4, utilisation unknown: full load)"
    )


# -- finding GPUs no meter reads ---------------------------------------------------------------


def _nvidia_proc(root: Path, *models: str) -> Path:
    for i, model in enumerate(models):
        d = root / "gpus" / f"0000:{i + 1:02x}:00.0"
        d.mkdir(parents=True)
        (d / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\n"
            f"GPU UUID: \t GPU-{i}aaaaaaa-bbbb\nVideo BIOS: \t ??\n"
        )
    return root


def _amd_sysfs(root: Path, *, name: str | None, cap_uw: int | None, busy: int | None) -> Path:
    dev = root / "card1" / "device"
    dev.mkdir(parents=True)
    (root / "card1-DP-1").mkdir()
    (dev / "vendor").write_text("0x1002\n")
    (dev / "device").write_text("0x74a1\n")
    if name is not None:
        (dev / "product_name").write_text(name + "\n")
    if busy is not None:
        (dev / "gpu_busy_percent").write_text(f"{busy}\n")
    if cap_uw is not None:
        (dev / "hwmon" / "hwmon3").mkdir(parents=True)
        (dev / "hwmon" / "hwmon3" / "power1_cap").write_text(f"{cap_uw}\n")
    intel = root / "card0" / "device"
    intel.mkdir(parents=True)
    (intel / "vendor").write_text("0x8086\n")
    return root


def test_nvidia_gpus_listed_by_the_driver_without_nvml(tmp_path):
    root = _nvidia_proc(tmp_path / "nvidia", "NVIDIA H100 PCIe", "Tesla T4")
    gpus = find_unmetered_gpus(
        environ={"CUDA_VISIBLE_DEVICES": "1"}, nvidia_root=root, vendors=("nvidia",)
    )
    assert [(g.label, g.name, g.tdp_w, g.tdp_source) for g in gpus] == [
        ("GPU-1", "Tesla T4", 70.0, "table:NVIDIA T4")
    ]
    assert gpus[0].utilisation is None


def test_amd_gpus_in_sysfs_use_their_power_cap_and_busy_percent(tmp_path):
    root = _amd_sysfs(tmp_path / "drm", name="AMD Instinct MI210", cap_uw=250_000_000, busy=40)
    (gpu,) = find_unmetered_gpus(environ={}, drm_root=root, vendors=("amd",))
    assert (gpu.tdp_w, gpu.tdp_source, gpu.utilisation_source) == (250.0, "power-limit", "sysfs")
    assert gpu.utilisation() == pytest.approx(0.4)
    bare = _amd_sysfs(tmp_path / "drm2", name=None, cap_uw=None, busy=None)
    (gpu,) = find_unmetered_gpus(environ={}, drm_root=bare, vendors=("amd",))
    assert (gpu.tdp_w, gpu.tdp_source, gpu.utilisation) == (DEFAULT_GPU_TDP_W, "default", None)
    assert (
        find_unmetered_gpus(environ={"HIP_VISIBLE_DEVICES": ""}, drm_root=root, vendors=("amd",))
        == []
    )


def test_an_apus_gpu_is_left_to_the_cpu_meter(tmp_path):
    """Ryzen/Radeon APUs: the GPU is inside the CPU package (RAPL or the CPU estimate has it)."""
    root = _amd_sysfs(tmp_path / "class" / "drm", name=None, cap_uw=None, busy=5)
    (root / "card1" / "device" / "drm" / "renderD128").mkdir(parents=True)
    node = tmp_path / "class" / "kfd" / "kfd" / "topology" / "nodes" / "1"
    node.mkdir(parents=True)
    props = "cpu_cores_count 0\nsimd_count 32\ndrm_render_minor 128\n"
    (node / "properties").write_text(props)
    assert len(find_unmetered_gpus(environ={}, drm_root=root, vendors=("amd",))) == 1  # discrete
    (node / "properties").write_text(props.replace("cpu_cores_count 0", "cpu_cores_count 8"))
    assert find_unmetered_gpus(environ={}, drm_root=root, vendors=("amd",)) == []


def test_nvml_gpus_with_neither_energy_nor_power_are_estimated_with_nvml_utilisation():
    gpu = FakeGPU(
        name="NVIDIA L4", energy_mj=None, power_w=None, power_limit_w=60.0, utilization_gpu=50
    )
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, amdsmi=FakeAMDSMI(), environ={}, clock=clock)
    meter = meters.meter("gpu")
    assert meter.is_estimate
    assert meters.provenance["gpu"] == (
        "estimate:gpu-tdp:GPU-0 (GPU-0 NVIDIA L4 60 W power-limit, utilisation nvml)"
    )
    meter.start()
    clock.t += 10.0
    assert meter.read().machine_j == pytest.approx((6.0 + 54.0 * 0.5) * 10.0)  # 33 W x 10 s
    meters.close()
    assert nvml.init_count == 0  # the estimate released NVML


def test_nvml_refusing_leaves_the_driver_listing(tmp_path):
    root = _nvidia_proc(tmp_path / "nvidia", "NVIDIA A100-SXM4-40GB")
    nvml = FakeNVML([FakeGPU()], init_error=nvml_codes.NVML_ERROR_NO_PERMISSION)
    gpus, close = unmetered_gpus(
        nvml=nvml, environ={}, nvidia_root=root, drm_root=tmp_path / "none"
    )
    assert close is None
    assert [(g.name, g.tdp_w) for g in gpus] == [("NVIDIA A100-SXM4-40GB", 400.0)]


# -- the chain in detect_meters and detect_hardware ---------------------------------------------


def test_amd_gpus_are_metered_when_nvml_has_none():
    amdsmi, clock = FakeAMDSMI([FakeAmdGpu(power_w=300.0)]), Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=amdsmi, environ={}, clock=clock)
    assert meters.provenance["gpu"] == "amdsmi:counter:GPU-0"
    meters.start()
    clock.t += 2.0
    amdsmi.advance(2.0)
    assert meters.read()["gpu"].machine_j == pytest.approx(600.0, abs=1e-3)
    meters.close()
    assert amdsmi.init_count == 0


def test_an_amd_gpu_failing_mid_run_degrades_to_an_estimate_labelled():
    gpu = FakeAmdGpu(power_w=300.0)
    amdsmi, clock = FakeAMDSMI([gpu]), Clock()
    meters = detect_meters(nvml=FakeNVML(), amdsmi=amdsmi, environ={}, clock=clock)
    meters.start()
    clock.t += 1.0
    amdsmi.advance(1.0)
    assert meters.read()["gpu"].machine_j == pytest.approx(300.0, abs=1e-3)
    gpu.fail("amdsmi_get_energy_count", amd_codes.AMDSMI_STATUS_DRM_ERROR)
    clock.t += 1.0
    reading = meters.read()["gpu"]  # never raises
    assert reading.machine_j >= 300.0
    assert meters.provenance["gpu"].startswith("estimate:gpu:mean-power")
    assert "amdsmi failed: GPU-0: amdsmi_get_energy_count failed" in meters.provenance["gpu"]
    meters.close()


def test_hardware_lists_amdsmi_and_the_gpu_estimate():
    amdsmi = FakeAMDSMI([FakeAmdGpu(name="AMD Instinct MI300X")])
    hw = detect_hardware(nvml=FakeNVML(), amdsmi=amdsmi)
    assert hw.meter("amdsmi").usable
    assert hw.meter("amdsmi").reason == "GPU-0 AMD Instinct MI300X: energy counter"
    assert [(g.vendor, g.name) for g in hw.gpus] == [("amd", "AMD Instinct MI300X")]
    assert not hw.meter("estimate:gpu").usable
    assert hw.meter("estimate:gpu").reason == "not needed: a GPU counter is readable"
    nothing = detect_hardware(
        nvml=FakeNVML(), amdsmi=FakeAMDSMI(init_error=amd_codes.AMDSMI_STATUS_DRIVER_NOT_LOADED)
    )
    assert "modprobe amdgpu" in nothing.meter("amdsmi").fix
    unreadable = FakeNVML(
        [FakeGPU(name="Tesla T4", energy_mj=None, power_w=None, utilization_gpu=None)]
    )
    hw = detect_hardware(nvml=unreadable, amdsmi=FakeAMDSMI())
    est = hw.meter("estimate:gpu")
    assert est.usable and est.reason.startswith(
        "GPU-0 Tesla T4: 400 W (power-limit), utilisation unknown (full load assumed)"
    )
    assert est.fix is not None


def test_no_gpu_changes_nothing():
    meters = detect_meters(nvml=FakeNVML(), amdsmi=FakeAMDSMI(), environ={})
    assert "gpu" not in meters.components
    meters.close()


def test_greenprint_hardware_estimates_an_amd_gpu_without_amdsmi(tmp_path):
    """A new user's machine: an AMD GPU, no amdsmi; the CLI says what it does instead."""
    import json
    import subprocess

    from _clean_env import BIN, clean_env

    root = _amd_sysfs(tmp_path / "drm", name="AMD Instinct MI210", cap_uw=300_000_000, busy=0)
    empty = tmp_path / "empty"  # no /dev/kfd, no /proc/driver/nvidia: this machine's own unread
    empty.mkdir()
    env = dict(
        clean_env(),
        GREENPRINT_DRM_ROOT=str(root),
        GREENPRINT_DEV_ROOT=str(empty),
        GREENPRINT_PROC_DRIVER_ROOT=str(empty),
    )
    out = subprocess.run(
        [str(BIN / "greenprint"), "hardware", "--json"],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(out.stdout)
    est = next(m for m in report["meters"] if m["name"] == "estimate:gpu")
    assert est["usable"]
    assert est["reason"].startswith(
        "AMD-0 AMD Instinct MI210: 300 W (power-limit), utilisation sysfs"
    )
    assert report["in_use"]["gpu"] == (
        "estimate:gpu-tdp:AMD-0 (AMD-0 AMD Instinct MI210 300 W power-limit, utilisation sysfs)"
    )


def test_a_mig_device_named_without_nvml_is_reported_not_silently_dropped():
    from greenprint.meters._gpu_estimate import estimate_status

    nvml = FakeNVML(init_error=nvml_codes.NVML_ERROR_LIBRARY_NOT_FOUND)
    status = estimate_status(False, nvml=nvml, environ={"CUDA_VISIBLE_DEVICES": "MIG-1234abcd"})
    assert not status.usable and "names a MIG device and NVML cannot be used" in status.reason
    assert status.fix == "make NVML usable (see the nvml line)"
