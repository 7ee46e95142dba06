"""greenprint.hardware and `greenprint hardware`: detection, statuses with fixes, text and JSON."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from _clean_env import clean_env
from greenprint.cli import main
from greenprint.hardware import HardwareInfo, detect_hardware, parse_cpuinfo
from greenprint.testing import FakeGPU, FakeNVML, make_fake_rapl
from greenprint.testing import _nvml as fake_module

GREENPRINT = str(Path(sys.executable).with_name("greenprint"))

XEON_2S = "\n".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nphysical id\t: {i % 2}\n"
    for i in range(4)
)
ARM = "processor\t: 0\nBogoMIPS\t: 48.00\nCPU implementer\t: 0x41\nHardware\t: BCM2835\n"
#: every meter discovery reports on, in the order it lists them
METERS = [
    "rapl",
    "nvml",
    "amdsmi",
    "psys",
    "hwmon",
    "intel-gpu",
    "powermetrics",
    "estimate:cpu",
    "estimate:gpu",
    "estimate:ram",
]


def test_cpuinfo_parsing():
    assert parse_cpuinfo(XEON_2S) == ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", 2)
    assert parse_cpuinfo(ARM) == ("BCM2835", 1)
    assert parse_cpuinfo("") == (None, 1)


def test_detect_hardware_here_never_raises_and_is_cached(real_sysfs):
    hw = detect_hardware()
    assert isinstance(hw, HardwareInfo)
    assert detect_hardware() is hw
    assert hw.logical_cores >= 1 and hw.physical_cores >= 1 and hw.sockets >= 1
    assert hw.ram_gb > 0
    assert [m.name for m in hw.meters] == METERS
    for m in hw.meters:
        assert m.reason
    json.dumps(hw.to_dict())  # JSON-ready
    if not Path("/sys/class/powercap").exists():  # this VM
        rapl = hw.meter("rapl")
        assert not rapl.usable
        assert rapl.reason == "no /sys/class/powercap (not Linux, or a VM without RAPL passthrough)"
    if hw.cpu_model == "AMD EPYC":  # what this VM reports: a family, not a model
        assert hw.cpu_tdp_w is None and hw.cpu_tdp_source == "default-per-core"
        assert "'AMD EPYC' is not in the TDP table" in hw.meter("estimate:cpu").reason


def test_model_in_the_table_gives_its_tdp(tmp_path, monkeypatch):
    import greenprint.meters._discovery as hardware

    monkeypatch.setattr(hardware, "cpu_model_name", lambda: ("AMD EPYC 7763 64-Core Processor", 2))
    hardware._detect.cache_clear()
    try:
        hw = detect_hardware(rapl_root=str(tmp_path), nvml=FakeNVML())
    finally:
        hardware._detect.cache_clear()
    assert (hw.cpu_tdp_w, hw.cpu_tdp_source, hw.sockets) == (280.0, "table:AMD EPYC 7763", 2)
    assert hw.meter("estimate:cpu").reason.startswith("TDP 2 x 280 W (exact match of 'AMD EPYC")


def test_permission_denied_gives_reason_and_exact_fix(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["package-0"])
    hw = detect_hardware(rapl_root=str(rapl.root), nvml=FakeNVML(), rapl_opener=rapl.opener)
    status = hw.meter("rapl")
    assert not status.usable
    assert status.reason == f"permission denied reading {rapl.root}/intel-rapl:0/energy_uj"
    assert status.fix == f"sudo chmod a+r {rapl.root}/intel-rapl:*/energy_uj (or run as root)"


def test_gpus_and_nvml_status(tmp_path):
    nvml = FakeNVML(
        [FakeGPU(name="NVIDIA H100 80GB HBM3", memory_gb=80.0), FakeGPU(energy_mj=None)]
    )
    hw = detect_hardware(rapl_root=str(tmp_path), nvml=nvml)
    assert [g.name for g in hw.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    assert [g.has_energy_counter for g in hw.gpus] == [True, False]
    assert hw.meter("nvml").usable
    broken = FakeNVML(init_error=fake_module.NVML_ERROR_DRIVER_NOT_LOADED)
    status = detect_hardware(rapl_root=str(tmp_path), nvml=broken).meter("nvml")
    assert not status.usable and "modprobe nvidia" in status.fix


def test_cli_text(capsys):
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    for label in ("CPU ", "RAM ", "GPUs", "CPU TDP", "Meters", "rapl", "nvml", "In use"):
        assert label in out
    assert "estimate:cpu  yes" in out
    hw = detect_hardware()
    for m in hw.meters:
        assert m.reason in out
        if m.fix:
            assert f"fix: {m.fix}" in out


def test_cli_text_with_a_configured_cpu_tdp(capsys, monkeypatch):
    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", "35")
    assert main(["hardware"]) == 0
    out = capsys.readouterr().out
    instead = "the per-core default" if detect_hardware().cpu_tdp_w is None else "the shipped table"
    assert f"CPU TDP   35 W configured (env:GREENPRINT_CPU_TDP_W), used instead of {instead}" in out
    assert "cpu  estimate:configured-tdp (35 W, env:GREENPRINT_CPU_TDP_W)" in out


def test_the_cpu_estimate_entry_gives_the_configured_tdp_not_the_one_it_replaces(tmp_path, capsys):
    """With GREENPRINT_CPU_TDP_W set, the meters' estimate:cpu line said the table's TDP or
    "default 4 W per logical CPU x 2 = 8 W" with "fix: ... set GREENPRINT_CPU_TDP_W", under
    "CPU TDP 35 W configured" and "In use: estimate:configured-tdp (35 W...)": two TDPs for one
    estimate, and a fix already applied. Text and JSON both give the 35 W now, with no fix.
    """
    env = dict(clean_env(), GREENPRINT_CPU_TDP_W="35")
    text = subprocess.run(
        [GREENPRINT, "hardware"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    ).stdout
    (line,) = [ln for ln in text.splitlines() if ln.lstrip().startswith("estimate:cpu")]
    assert "yes  35 W configured (env:GREENPRINT_CPU_TDP_W) for the CPUs this machine sees" in line
    assert "idle floor 10% of TDP, scaled by CPU utilisation" in line  # the scaling is unchanged
    assert "default 4 W per logical" not in text and "fix: if you know the power" not in text
    report = json.loads(
        subprocess.run(
            [GREENPRINT, "hardware", "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=True,
        ).stdout
    )
    (entry,) = [m for m in report["meters"] if m["name"] == "estimate:cpu"]
    assert entry["reason"].startswith("35 W configured (env:GREENPRINT_CPU_TDP_W)")
    assert entry["fix"] is None
    assert report["in_use"]["cpu"] == "estimate:configured-tdp (35 W, env:GREENPRINT_CPU_TDP_W)"
    # unset, the entry is the detected one, fix included where the table lacks the CPU
    plain = json.loads(
        subprocess.run(
            [GREENPRINT, "hardware", "--json"],
            capture_output=True,
            text=True,
            env=clean_env(),
            cwd=tmp_path,
            check=True,
        ).stdout
    )
    (entry,) = [m for m in plain["meters"] if m["name"] == "estimate:cpu"]
    assert not entry["reason"].startswith("35 W configured")


def test_a_run_records_the_cpu_estimate_with_the_configured_tdp(tmp_path, monkeypatch):
    """A run measured with GREENPRINT_CPU_TDP_W=35 recorded, in its hardware (``ledger show``'s
    'meter estimate:cpu'), "default 4 W per logical CPU x 2 = 8 W" beside its provenance
    'cpu: estimate:configured-tdp (35 W, ...)': the status now says the 35 W it used."""
    import greenprint as gp

    monkeypatch.setenv("GREENPRINT_CPU_TDP_W", "35")
    monkeypatch.chdir(tmp_path)
    with gp.track("t", ledger=tmp_path / "l.db") as run:
        pass
    (record,) = gp.Ledger(tmp_path / "l.db", create=False).runs()
    assert record.provenance["cpu"].startswith("estimate:configured-tdp (35 W")
    (status,) = [m for m in record.hardware["meters"] if m["name"] == "estimate:cpu"]
    assert status["reason"].startswith(
        "35 W configured (env:GREENPRINT_CPU_TDP_W) for the CPUs this machine sees, used "
        "instead of "
    )
    assert status["fix"] is None
    assert run.status == "finished"
    # unset: the status as detected (the table's TDP or the per-core default)
    monkeypatch.delenv("GREENPRINT_CPU_TDP_W")
    with gp.track("u", ledger=tmp_path / "l.db"):
        pass
    plain = next(r for r in gp.Ledger(tmp_path / "l.db", create=False).runs() if r.name == "u")
    (status,) = [m for m in plain.hardware["meters"] if m["name"] == "estimate:cpu"]
    assert status == dataclasses.asdict(detect_hardware().meter("estimate:cpu"))


def test_cli_json(capsys):
    assert main(["hardware", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cpu_model"] == detect_hardware().cpu_model
    assert [m["name"] for m in report["meters"]] == METERS
    assert set(report["in_use"]) >= {"cpu", "ram"}
    assert all(isinstance(m["usable"], bool) for m in report["meters"])


def test_cli_in_a_subprocess_with_a_fake_rapl_tree(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dram=True, psys=True)
    env_run = dict(__import__("os").environ, GREENPRINT_RAPL_ROOT=str(rapl.root))
    out = subprocess.run(
        [GREENPRINT, "hardware", "--json"], capture_output=True, text=True, env=env_run, check=True
    )
    report = json.loads(out.stdout)
    assert report["in_use"]["cpu"] == "rapl:package-0+package-1"
    assert report["in_use"]["ram"] == "rapl:dram-0+dram-1"
    rapl.make_unreadable("package-1", "missing")
    out = subprocess.run(
        [GREENPRINT, "hardware"], capture_output=True, text=True, env=env_run, check=True
    )
    assert f"rapl          no   cannot read {rapl.root}/intel-rapl:1/energy_uj" in out.stdout
    assert "cpu  rapl:psys (platform: " in out.stdout  # no package readable: psys stands in
    rapl.make_unreadable("psys", "missing")
    out = subprocess.run(
        [GREENPRINT, "hardware"], capture_output=True, text=True, env=env_run, check=True
    )
    assert "cpu  estimate:" in out.stdout


def test_cli_text_names_the_gpu_meter_when_only_an_intel_card_meters_it(tmp_path):
    """Found as a new user: an Intel card metered through hwmon was in use under 'In use' while
    the GPUs line said 'none visible' (NVML and amdsmi list GPUs; hwmon and powermetrics do not)."""
    from greenprint.testing import make_fake_intel_gpu

    if detect_hardware().gpus:  # an NVIDIA or AMD GPU here is listed (and meters first)
        return
    intel = make_fake_intel_gpu(tmp_path / "drm", cards={"card0": "xe"})
    env_run = dict(
        __import__("os").environ,
        GREENPRINT_RAPL_ROOT=str(tmp_path / "no-powercap"),
        GREENPRINT_HWMON_ROOT=str(tmp_path / "no-hwmon"),
        GREENPRINT_DRM_ROOT=str(intel.root),
    )
    out = subprocess.run(
        [GREENPRINT, "hardware"], capture_output=True, text=True, env=env_run, check=True
    ).stdout
    assert "GPUs      none listed by NVML or amdsmi; gpu metered by hwmon:xe:card0" in out
    assert "none visible" not in out
    assert "  gpu  hwmon:xe:card0" in out


# -- discovery imports a GPU vendor module only when its cheap presence check passes -----------


def test_without_gpu_drivers_a_run_imports_no_gpu_vendor_module():
    # the test roots (tests/conftest.py) are empty folders: no /dev/kfd, no NVIDIA driver paths,
    # no DRM card; the child inherits them
    code = (
        "import sys, greenprint as gp\n"
        "with gp.track('x', ledger=False) as run:\n"
        "    pass\n"
        "vendor = ('_nvml', '_amd', '_gpu_estimate', '_gpu_meter')\n"
        "print(run.status, [m for m in sys.modules if m.rpartition('.')[2] in vendor])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["finished", "[]"]


def test_the_cheap_path_says_what_the_vendor_modules_say():
    from greenprint.meters._amd import probe_amd
    from greenprint.meters._gpu_estimate import estimate_status
    from greenprint.meters._nvml import probe_nvml
    from greenprint.meters._where import absent_amdsmi, absent_nvml, no_gpu_found

    hw = detect_hardware()
    assert hw.meter("nvml") == absent_nvml() == probe_nvml(environ={})[0]
    assert hw.meter("amdsmi") == absent_amdsmi() == probe_amd(environ={})[0]
    assert hw.meter("estimate:gpu") == no_gpu_found() == estimate_status(False, environ={})
    assert hw.gpus == ()


def _drm_card(root: Path, vendor: str) -> Path:
    dev = root / "card1" / "device"
    dev.mkdir(parents=True)
    (dev / "vendor").write_text(f"{vendor}\n")
    (dev / "product_name").write_text("AMD Instinct MI210\n")
    return root


def test_a_drm_card_takes_the_estimates_own_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(_drm_card(tmp_path / "drm", "0x1002")))
    status = detect_hardware().meter("estimate:gpu")
    assert status.usable and status.reason.startswith("AMD-0 AMD Instinct MI210: ")
    other = _drm_card(tmp_path / "drm-intel", "0x8086")  # a card the estimate does not count
    monkeypatch.setenv("GREENPRINT_DRM_ROOT", str(other))
    assert detect_hardware().meter("estimate:gpu").reason == "no GPU found"


def test_a_kfd_device_takes_amdsmis_own_path(tmp_path, monkeypatch):
    (tmp_path / "kfd").write_text("")
    monkeypatch.setenv("GREENPRINT_DEV_ROOT", str(tmp_path))
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # whatever this machine has installed
    status = detect_hardware().meter("amdsmi")
    assert not status.usable and status.reason.startswith("amdsmi is not importable (")


def test_a_mig_device_named_without_nvml_is_explained():
    hw = detect_hardware()  # the cache key holds CUDA_VISIBLE_DEVICES
    assert hw.meter("estimate:gpu").reason == "no GPU found"
    from greenprint.meters._discovery import _gpu_statuses

    env = {"CUDA_VISIBLE_DEVICES": "MIG-4a1b2c3d-0000-0000-0000-000000000000"}
    _, _, _, status = _gpu_statuses(None, None, env)
    assert status.reason.startswith("CUDA_VISIBLE_DEVICES names a MIG device")
