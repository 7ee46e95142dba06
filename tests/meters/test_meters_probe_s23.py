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
* A container limited to 2 CPUs' time (cgroup v2 ``cpu.max`` "200000 100000", v1
  ``cpu.cfs_quota_us``) sees all its host's CPUs: the CPU estimate must not charge it the idle
  floor of CPUs it cannot use.
* NVML refusing at start (``NVML_ERROR_NO_PERMISSION``, ``NVML_ERROR_GPU_IS_LOST``): the GPUs
  are estimated from their TDP, and the provenance says why NVML was not used.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.hardware import detect_hardware
from greenprint.meters import detect_meters
from greenprint.meters._attribution import UsageSample
from greenprint.meters._discovery import HardwareInfo, cpu_estimate_for
from greenprint.meters._quota import CpuQuota, cpu_quota
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
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    run = functools.partial(
        subprocess.run, capture_output=True, text=True, env=env, cwd=work, timeout=60, check=False
    )
    if run([*nobody, "-c", "import greenprint"]).returncode != 0:
        pytest.skip("this Python or greenprint cannot be run by another user here")
    out = run([*nobody, "-c", script])
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
    gpu = FakeGPU(
        errors={"nvmlDeviceGetTotalEnergyConsumption": code, "nvmlDeviceGetPowerUsage": code}
    )
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


# -- a container's CPU quota (cgroup v2 cpu.max, v1 cfs_quota_us) ----------------------------


def _cgroup_v2(root: Path, cpu_max: dict[str, str]) -> Path:
    """A cgroup v2 mount: ``cgroup.controllers`` at the root, ``cpu.max`` where given."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    for rel, text in cpu_max.items():
        d = root / rel if rel else root
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.max").write_text(text)
    return root


def test_cpu_max_is_read_as_the_kernel_documents_it(tmp_path):
    # "$MAX $PERIOD"; "max" is no limit; every ancestor's limit applies: the smallest wins
    root = _cgroup_v2(
        tmp_path / "v2",
        {"kubepods/pod1": "100000 100000\n", "kubepods/pod1/ctr": "300000 100000\n"},
    )
    quota = cpu_quota(root, "0::/kubepods/pod1/ctr\n")
    assert quota is not None and quota.cpus == 1.0
    assert quota.text == "1 CPU (cgroup v2 cpu.max 100000 100000)"
    # a container with its own cgroup namespace: "0::/", its cgroup mounted as the root
    inside = _cgroup_v2(tmp_path / "ns", {"": "200000 100000\n"})
    assert cpu_quota(inside, "0::/\n").cpus == 2.0
    unlimited = _cgroup_v2(tmp_path / "max", {"": "max 100000\n"})
    assert cpu_quota(unlimited, "0::/\n") is None
    # cgroup v1: cfs_quota_us over cfs_period_us in the cpu hierarchy; -1 is no limit
    v1 = tmp_path / "v1" / "cpu" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path / "v1", "4:cpu,cpuacct:/docker/abc\n").cpus == 1.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path / "v1", "4:cpu,cpuacct:/docker/abc\n") is None
    # pinned CPUs (docker run --cpuset-cpus=0,1) limit it as well: v2 cpuset.cpus.effective
    pinned = _cgroup_v2(tmp_path / "pinned", {})
    (pinned / "cpuset.cpus.effective").write_text("0-1\n")
    assert cpu_quota(pinned, "0::/\n").text == "2 CPUs (cgroup v2 cpuset.cpus.effective 0-1)"


class _Tree:
    """A process tree whose samples the test scripts: the only busy process of a 64-CPU host,
    keeping 2 CPUs busy (a container run with ``--cpus=2``)."""

    started = True

    def __init__(self) -> None:
        self.last = UsageSample(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def start(self) -> None:
        """Already started."""

    def sample(self) -> UsageSample:
        util, dt = 2 / 64, 10.0
        prev = self.last
        self.last = UsageSample(
            prev.seq + 1,
            prev.t + dt,
            dt,
            util,
            1.0,
            0.0,
            prev.tree_cpu_s + 2 * dt,
            elapsed_s=prev.elapsed_s + dt,
            busy_s=prev.busy_s + util * dt,
            share_s=prev.share_s + dt,
            tree_busy_s=prev.tree_busy_s + util * dt,
        )
        return self.last


def test_a_container_with_a_cpu_quota_carries_its_part_of_the_idle_floor_only():
    # 64 logical CPUs, not in the TDP table: 4 W x 64 = 256 W, idle floor 25.6 W. The container
    # may use 2 CPUs: kept busy for 10 s it is charged 2 CPUs' worth, 8 W, not the idle floor
    # of the 62 CPUs it cannot use
    hw = HardwareInfo("AMD EPYC", 1, 32, 64, 8.0, (), (), None, "default-per-core")
    quota = CpuQuota(2.0, "cgroup v2 cpu.max 200000 100000")
    meter = cpu_estimate_for(hw, tree=_Tree(), quota=quota)  # type: ignore[arg-type]
    meter.start()
    reading = meter.read()
    assert reading.machine_j == pytest.approx(25.6 * 10 + 230.4 * 10 * 2 / 64)  # the host: 328 J
    assert reading.process_j == pytest.approx(80.0)  # 8 W: 2 CPUs x 4 W
    assert meter.provenance.endswith(
        "; idle floor shared at most 2/64: a CPU quota of 2 CPUs (cgroup v2 cpu.max 200000 100000))"
    )
    unlimited = cpu_estimate_for(hw, tree=_Tree(), quota=CpuQuota(64.0, "cgroup v2 cpu.max"))
    unlimited.start()
    assert unlimited.read().process_j == pytest.approx(328.0)  # a quota of every CPU: no cap
    assert "quota" not in unlimited.provenance


def test_greenprint_hardware_and_the_run_name_the_quota(tmp_path, monkeypatch):
    logical = os.cpu_count() or 1
    root = _cgroup_v2(tmp_path / "cg", {"": f"{50000 * logical} 100000\n"})  # half the CPUs
    monkeypatch.setenv("GREENPRINT_CGROUP_ROOT", str(root))
    hw = detect_hardware(rapl_root=str(tmp_path / "none"), nvml=_no_gpu())
    half = f"{logical / 2:.3g}/{hw.logical_cores}"
    assert f"the process carries at most {half} of the idle floor" in (
        hw.meter("estimate:cpu").reason
    )
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=_no_gpu())
    try:
        assert f"idle floor shared at most {half}: a CPU quota of " in meters.provenance["cpu"]
    finally:
        meters.close()


def test_a_root_only_psys_alone_is_named_in_the_cpu_provenance(tmp_path):
    # a laptop whose only RAPL counter is psys, 0400 like the rest
    rapl = make_fake_rapl(tmp_path / "pc", packages=0, dram=False, psys=True, unreadable=["psys"])
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu(), rapl_opener=rapl.opener)
    try:
        cpu = meters.provenance["cpu"]
        assert cpu.startswith("estimate:")
        assert f"(rapl psys not used: permission denied reading {rapl.root}/intel-rapl:0/" in cpu
    finally:
        meters.close()


def test_a_visible_gpu_reporting_neither_energy_nor_power_is_named_in_the_runs_provenance(
    tmp_path,
):
    # NVML answers NOT_SUPPORTED to both nvmlDeviceGetTotalEnergyConsumption and
    # nvmlDeviceGetPowerUsage on GPU-1: it is visible (the job may use it) but not counted, and
    # the run's figures lack its energy: the run must say so, not only `greenprint hardware`
    gpus = [FakeGPU(power_w=100.0), FakeGPU(name="NVIDIA L4", energy_mj=None, power_w=None)]
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=FakeNVML(gpus), environ={})
    try:
        assert meters.provenance["gpu"] == (
            "nvml:counter:GPU-0 (GPU-1 (NVIDIA L4) reports neither energy nor power: not counted)"
        )
    finally:
        meters.close()


def test_a_sysfs_file_that_is_not_utf8_never_raises_into_the_run(tmp_path):
    # hardware detection and meter choice never raise: bytes that are not text (a corrupt
    # attribute, a firmware string) read as "cannot read", the counter is not used and the
    # estimate says why
    rapl = make_fake_rapl(tmp_path / "pc", packages=1)
    (rapl.zones["package-0"] / "energy_uj").write_bytes(b"\xff\xfe12\n")
    detect_hardware(rapl_root=str(rapl.root), nvml=_no_gpu())
    meters = detect_meters(rapl_root=str(rapl.root), nvml=_no_gpu())
    try:
        with gp.track("bytes", ledger=False, meters=meters, sample_interval_s=0.05) as run:
            pass
    finally:
        meters.close()
    assert run.provenance["cpu"].startswith("estimate:")
    assert "rapl not used: cannot read " in run.provenance["cpu"]
    assert "not UTF-8 text" in run.provenance["cpu"]


def test_the_old_pynvml_package_returning_bytes_still_picks_the_gpu_by_uuid(tmp_path):
    # the `pynvml` package up to 11.4 (it installs the same module as nvidia-ml-py) returns
    # names and UUIDs as bytes: str() of them ("b'GPU-...'") matched no CUDA_VISIBLE_DEVICES
    # UUID, and the GPU was not metered at all
    gpus = [FakeGPU(power_w=100.0), FakeGPU(name="NVIDIA H100 80GB HBM3", power_w=300.0)]
    nvml = FakeNVML(gpus, text_as_bytes=True)
    env = {"CUDA_VISIBLE_DEVICES": gpus[1].uuid}
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml, environ=env)
    try:
        assert meters.provenance["gpu"] == "nvml:counter:GPU-1"
        assert [g.name for g in meters.meter("gpu").gpus] == ["NVIDIA H100 80GB HBM3"]
    finally:
        meters.close()


def test_one_gpu_fallen_off_the_bus_leaves_the_others_metered(tmp_path):
    # nvml.h: nvmlDeviceGetHandleByIndex returns NVML_ERROR_GPU_IS_LOST for a GPU that has
    # fallen off the bus (Xid 79). That one error made all of NVML unusable: the healthy GPU
    # was estimated from its TDP instead of read from its counter
    gpus = [FakeGPU(power_w=100.0), FakeGPU(power_w=300.0)]
    gpus[0].fail("nvmlDeviceGetHandleByIndex", NVML_ERROR_GPU_IS_LOST)
    nvml, clock = FakeNVML(gpus), Clock()
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml, environ={}, clock=clock)
    try:
        meters.start()
        nvml.advance(2.0)
        clock.t += 2.0
        assert meters.read()["gpu"].machine_j == pytest.approx(600.0)  # the healthy GPU's counter
        assert meters.provenance["gpu"] == (
            "nvml:counter:GPU-0 (the GPU at NVML index 0 has fallen off the bus (NVML: GPU is "
            "lost): not counted; the others are numbered without it)"
        )
    finally:
        meters.close()
    alone = FakeGPU()
    alone.fail("nvmlDeviceGetHandleByIndex", NVML_ERROR_GPU_IS_LOST)
    status = detect_hardware(rapl_root=str(tmp_path / "none"), nvml=FakeNVML([alone])).meter("nvml")
    assert status is not None and not status.usable  # no GPU left: NVML's error, as before
    assert status.reason == "a GPU has fallen off the bus (NVML: GPU is lost)"


def test_one_gpu_lost_mid_run_leaves_the_other_gpus_read_from_their_counters(tmp_path):
    # GPU_IS_LOST on one GPU of two, mid-run: the whole GPU figure went on at the mean power of
    # both, the healthy GPU's counter no longer read. Now the lost one goes on at its own mean
    # power and the other is still measured
    gpus = [FakeGPU(power_w=100.0), FakeGPU(power_w=300.0)]
    nvml, clock = FakeNVML(gpus), Clock()
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml, environ={}, clock=clock)
    try:
        meters.start()
        nvml.advance(2.0)
        clock.t += 2.0
        assert meters.read()["gpu"].machine_j == pytest.approx(800.0)
        for function in ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage"):
            gpus[1].fail(function, NVML_ERROR_GPU_IS_LOST)
        gpus[0].advance(2.0, power_w=250.0)  # GPU-0 draws more now: its counter shows it
        clock.t += 2.0
        # 800 J + GPU-0's 500 J (read) + GPU-1's 300 W mean x 2 s
        assert meters.read()["gpu"].machine_j == pytest.approx(800.0 + 500.0 + 600.0)
        prov = meters.provenance["gpu"]
        assert prov.startswith("nvml:counter:GPU-0+nvml:then-mean-power:GPU-1 (GPU-1 failed ")
        assert "GPU is lost" in prov and "its mean power so far (300 W) after" in prov
        gpus[0].fail("nvmlDeviceGetTotalEnergyConsumption", NVML_ERROR_GPU_IS_LOST)
        clock.t += 1.0
        assert meters.read()["gpu"].machine_j >= 1900.0  # both gone: the meter set's fallback
        assert "(nvml failed: GPU-0: " in meters.provenance["gpu"]
    finally:
        meters.close()


def test_a_gpu_failing_at_the_start_leaves_the_others_read_and_a_refused_counter_sampled(
    tmp_path,
):
    # one GPU of two answers GPU_IS_LOST to every call at the start: the other was estimated
    # with it (both from their TDP, 10% idle floor: 320 J for 1600 J over 4 s); now it is read
    lost = FakeGPU(power_w=100.0)
    for function in ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage"):
        lost.fail(function, NVML_ERROR_GPU_IS_LOST)
    healthy = FakeGPU(power_w=300.0)
    nvml, clock = FakeNVML([healthy, lost]), Clock()
    meters = detect_meters(rapl_root=str(tmp_path / "none"), nvml=nvml, environ={}, clock=clock)
    try:
        meters.start()
        nvml.advance(4.0)
        clock.t += 4.0
        assert meters.read()["gpu"].machine_j == pytest.approx(1200.0)
        assert meters.provenance["gpu"] == (
            "nvml:counter:GPU-0 (GPU-1 failed to open (NVML: GPU is lost): not counted)"
        )
    finally:
        meters.close()
    # a counter refused (not "not supported") while the power reads: sampled power, said
    refused = FakeGPU(power_w=200.0)
    refused.fail("nvmlDeviceGetTotalEnergyConsumption", NVML_ERROR_NO_PERMISSION)
    meters = detect_meters(
        rapl_root=str(tmp_path / "none"), nvml=FakeNVML([refused]), environ={}, clock=clock
    )
    try:
        assert meters.provenance["gpu"] == (
            "nvml:power-sampling:GPU-0 (GPU-0: energy counter refused (NVML: Insufficient "
            "Permissions): power sampled)"
        )
    finally:
        meters.close()
