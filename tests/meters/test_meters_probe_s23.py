"""Session 23's probe of the meters against how the real interfaces behave.

Each test names the real behaviour it copies:

* Linux >= 5.10 (the Platypus mitigation, CVE-2020-8694) makes powercap's ``energy_uj`` mode
  0400: a user who is not root gets ``PermissionError`` opening it, while ``name`` and
  ``max_energy_range_uj`` stay readable. The run then uses an estimate; its provenance (what the
  ledger and the report show) must say that RAPL was there and why it was not used, with the fix.
* Offlining the last CPU of a package (CPU hot-unplug) makes ``intel_rapl`` unregister that
  package's powercap zones: its ``intel-rapl:N`` directory disappears while the run goes on.
  The other packages' counters still read.
* A CPU model missing from the TDP table: the per-core default is used, and the user is told
  how to give the real figure (``GREENPRINT_CPU_TDP_W`` / ``cpu_tdp_w``).
* NVML refusing at start (``NVML_ERROR_NO_PERMISSION``, ``NVML_ERROR_GPU_IS_LOST``): the GPUs
  are estimated from their TDP, and the provenance says why NVML was not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.meters import detect_meters
from greenprint.meters._discovery import HardwareInfo, cpu_estimate_for
from greenprint.testing import FakeGPU, FakeNVML, make_fake_rapl
from greenprint.testing._nvml import NVML_ERROR_GPU_IS_LOST, NVML_ERROR_NO_PERMISSION


class Clock:
    """A monotonic clock the test moves by hand, in s."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _no_gpu() -> FakeNVML:
    return FakeNVML([])


# -- RAPL readable by root only (Linux >= 5.10) ------------------------------------------------


def test_root_only_energy_uj_is_named_with_its_fix_in_the_cpu_provenance(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, unreadable=["package-0", "package-1"])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu(), rapl_opener=rapl.opener)
    try:
        with gp.track("non-root", ledger=False, meters=meters, sample_interval_s=0.05) as run:
            pass
    finally:
        meters.close()
    cpu = run.provenance["cpu"]
    assert cpu.startswith("estimate:")  # still an estimate, never an error
    assert (
        f"(rapl not used: permission denied reading {rapl.root}/intel-rapl:0/energy_uj; "
        f"fix: sudo chmod a+r {rapl.root}/intel-rapl:*/energy_uj (or run as root))" in cpu
    )
    # nothing to fix on a VM without RAPL: the provenance stays as it was
    absent = detect_meters(rapl_root=str(tmp_path / "none"), nvml=_no_gpu())
    try:
        assert "rapl" not in absent.provenance["cpu"]
        assert "rapl" not in absent.provenance["ram"]
    finally:
        absent.close()


def test_root_only_dram_counter_is_named_in_the_ram_provenance(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", unreadable=["dram-0"])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu(), rapl_opener=rapl.opener)
    try:
        assert meters.provenance["cpu"] == "rapl:package-0"
        ram = meters.provenance["ram"]
        assert ram.startswith("estimate:ram:")
        assert f"(rapl dram not used: permission denied reading {rapl.root}/intel-rapl:0:2" in ram
        assert "fix: sudo chmod a+r" in ram
    finally:
        meters.close()


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to run a command as another user (setpriv)",
)
def test_a_real_non_root_user_reads_the_reason_in_a_run():
    # as the kernel does it: energy_uj 0400 root, read by an ordinary user through `open`; in a
    # folder of /tmp, as pytest's own (0700, root's) is closed to that user
    with tempfile.TemporaryDirectory() as top:
        _run_as_nobody(Path(top))


def _run_as_nobody(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    rapl = make_fake_rapl(tmp_path / "pc", packages=1)
    for zone in rapl.zones.values():
        os.chmod(zone / "energy_uj", 0o400)
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(work, 0o777)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "GREENPRINT_RAPL_ROOT": str(rapl.root),
        "GREENPRINT_HWMON_ROOT": str(tmp_path / "no-hwmon"),
        "GREENPRINT_DRM_ROOT": str(tmp_path / "no-drm"),
    }
    script = (
        "import greenprint as gp\n"
        "with gp.track('x', ledger=False, sample_interval_s=0.05) as run:\n"
        "    pass\n"
        "print(run.provenance['cpu'])\n"
    )
    out = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
        + [script],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"rapl not used: permission denied reading {rapl.root}/intel-rapl:0/energy_uj" in (
        out.stdout
    )


# -- a package's zone disappearing mid-run (CPU hot-unplug) ----------------------------------


def test_a_package_zone_that_disappears_mid_run_leaves_the_other_packages_measured(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=2, dram=False)
    clock = Clock()
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu(), clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        rapl.advance(package_j=[40.0, 30.0])
        assert meters.read()["cpu"].machine_j == pytest.approx(70.0)
        shutil.rmtree(rapl.zones.pop("package-1"))  # the kernel unregisters the zone
        clock.t += 1.0
        rapl.add_j("package-0", 25.0)
        after = meters.read()["cpu"]
        assert after.machine_j == pytest.approx(95.0)  # package-0 still measured
        prov = meters.provenance["cpu"]
        assert prov.startswith("rapl:package-0 (")  # a counter still, not an estimate
        assert "package-1 gone after 1 s" in prov
        assert "not counted after" in prov
        clock.t += 1.0
        rapl.add_j("package-0", 5.0)
        assert meters.read()["cpu"].machine_j == pytest.approx(100.0)
    finally:
        meters.close()


def test_every_package_zone_gone_still_falls_back_to_the_estimate(tmp_path):
    rapl = make_fake_rapl(tmp_path / "pc", packages=1, dram=False)
    clock = Clock()
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu(), clock=clock)
    try:
        meters.start()
        clock.t += 1.0
        rapl.advance(package_j=10.0)
        meters.read()
        shutil.rmtree(rapl.zones.pop("package-0"))
        clock.t += 1.0
        assert meters.read()["cpu"].machine_j >= 10.0  # never raises, never goes back
        assert "(rapl failed: cannot read " in meters.provenance["cpu"]
    finally:
        meters.close()


# -- a CPU missing from the TDP table --------------------------------------------------------


def test_a_cpu_missing_from_the_tdp_table_is_named_and_the_setting_given(tmp_path):
    hw = HardwareInfo("AMD EPYC", 1, 2, 2, 8.0, (), (), None, "default-per-core")
    meter = cpu_estimate_for(hw)
    assert meter.provenance == (
        "estimate:default-per-core (4 W/core x 2; 'AMD EPYC' is not in the TDP table: set "
        "GREENPRINT_CPU_TDP_W or cpu_tdp_w to its power at full load)"
    )
    assert meter.tdp_w == 8.0


# -- NVML refusing at start ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"),
        (NVML_ERROR_GPU_IS_LOST, "GPU is lost"),
    ],
)
def test_nvml_refusing_at_start_is_named_in_the_gpu_estimates_provenance(tmp_path, code, why):
    gpu = FakeGPU(errors={"nvmlDeviceGetTotalEnergyConsumption": code})
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=FakeNVML([gpu]), environ={})
    try:
        prov = meters.provenance["gpu"]
        assert prov.startswith("estimate:gpu-tdp:GPU-0 (")
        assert "nvml not used: " in prov and f"(NVML: {why})" in prov
    finally:
        meters.close()
    # not a refusal: a GPU that reports neither energy nor power keeps its estimate's words
    quiet = FakeGPU(name="NVIDIA L4", energy_mj=None, power_w=None, power_limit_w=60.0)
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=FakeNVML([quiet]), environ={})
    try:
        assert "not used" not in meters.provenance["gpu"]
    finally:
        meters.close()
