"""Session 10's meter gaps: hwmon's wrap slack, the GPUs the estimate counts, attribution that
could not read every process, and a VM's share of its chip's TDP."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import psutil
import pytest

import greenprint as gp
from greenprint._provenance import Provenance
from greenprint.meters import (
    CpuEstimateMeter,
    MeterSet,
    ProcessTree,
    _attribution,
    _device_cgroup,
    detect_meters,
)
from greenprint.meters._device_cgroup import allowed_minors
from greenprint.meters._discovery import HardwareInfo, cpu_estimate_for
from greenprint.meters._gpu_estimate import (
    GpuTdpEstimateMeter,
    estimate_status,
    find_unmetered_gpus,
)
from greenprint.meters._hwmon import HwmonMeter, energy_delta_uj, probe_hwmon_cpu
from greenprint.meters._nvml_devices import ORDER_NOTE
from greenprint.meters._tdp import chip_cores
from greenprint.testing import make_fake_hwmon

#: one read at the end only, unless the test samples
SLOW = {"sample_interval_s": 600.0, "flush_interval_s": 600.0}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# -- 1. hwmon: the same second of slack as RAPL ------------------------------------------------


def test_a_coarse_32_bit_counter_read_twice_quickly_wraps_not_resets(tmp_path):
    """A driver that refreshes its value every 0.5 s shows, between reads 20 ms apart, 100 J
    (200 W over its refresh period) across a 32-bit wrap: one wrap, not a reset that keeps only
    the 50 J after it (before: 50 J)."""
    fake = make_fake_hwmon(
        tmp_path / "h",
        devices={"hwmon0": {"driver": "scmi_sensors", "energy": {1: "cpu"}, "bits": 32}},
        start_uj=2**32 - 50_000_000,  # 50 J before the wrap
    )
    probe = probe_hwmon_cpu(fake.root)
    clock = Clock()
    meter = HwmonMeter("cpu", probe.channels, origin=probe.origin, clock=clock)
    meter.start()
    clock.t += 0.02
    fake.add_j("hwmon0:energy1", 100.0)
    assert fake.get("hwmon0:energy1") == 50_000_000
    assert meter.read().machine_j == pytest.approx(100.0)
    meter.close()


def test_hwmon_wrap_and_reset_share_rapls_limit():
    """The wrap and the reset share one limit, 2 kW over the interval plus 1 s, as RAPL's."""
    last = 2**32 - 1_000_000_000  # 1 kJ before the wrap
    # 1.9 kJ in 10 ms: a wrap within 2 kW x 1.01 s
    assert energy_delta_uj(last, 900_000_000, 0.01) == 1_900_000_000
    # 2.1 kJ: above it; the counter restarted, and 0.9 kJ since is plausible
    assert energy_delta_uj(last, 1_100_000_000, 0.01) == 1_100_000_000


# -- 2. the GPU estimate without NVML counts the GPUs this process may open -------------------


def _nvidia_listing(root, models, *, excluded=()):
    """``/proc/driver/nvidia/gpus/*/information`` as the driver writes it, one GPU per model."""
    for i, model in enumerate(models):
        d = root / "nvidia" / "gpus" / f"0000:{i + 1:02x}:00.0"
        d.mkdir(parents=True)
        (d / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nGPU UUID: \t GPU-{i}aaaaaaa-bbbb\n"
            f"Video BIOS: \t 96.00.30.00.01\nBus Type: \t PCIe\nDMA Size: \t 47 bits\n"
            f"Bus Location: \t 0000:{i + 1:02x}:00.0\nDevice Minor: \t {i}\n"
            f"GPU Excluded:\t {'Yes' if i in excluded else 'No'}\n"
        )
    return root


@pytest.fixture
def no_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)


def _estimate(environ):
    gpus = find_unmetered_gpus(environ=environ, vendors=("nvidia",))
    return [(g.label, g.name) for g in gpus], GpuTdpEstimateMeter(gpus).provenance


FOUR = ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe", "NVIDIA L4", "NVIDIA H100 PCIe")


def test_a_slurm_job_given_one_gpu_by_its_device_cgroup_counts_that_gpu(tmp_path, monkeypatch):
    """Slurm's ConstrainDevices (cgroup v1) lets the job open /dev/nvidia2 alone and sets
    CUDA_VISIBLE_DEVICES=0, CUDA's number for it. Before: GPU-0 was the driver's first GPU, an
    H100 the job cannot use (and with the variable unset, all four were counted)."""
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(_nvidia_listing(tmp_path, FOUR)))
    devices = tmp_path / "cgroup" / "devices" / "slurm" / "uid_1000" / "job_7" / "step_0"
    devices.mkdir(parents=True)
    (devices / "devices.list").write_text("c 195:255 rwm\nc 195:2 rwm\nc 1:3 rwm\n")
    (tmp_path / "cgroup" / "devices" / "devices.list").write_text("a *:* rwm\n")
    monkeypatch.setenv("GREENPRINT_CGROUP_ROOT", str(tmp_path / "cgroup"))
    own = "12:devices:/slurm/uid_1000/job_7/step_0\n0::/user.slice\n"
    assert allowed_minors([0, 1, 2, 3], self_cgroup=own)[0] == {2}
    monkeypatch.setattr(_device_cgroup, "_read", _with_self_cgroup(own))
    for environ in ({"CUDA_VISIBLE_DEVICES": "0"}, {}):
        gpus, provenance = _estimate(environ)
        assert gpus == [("GPU-0", "NVIDIA L4")]
        assert "counted 0000:03:00.0 of the driver's 4 NVIDIA GPUs (the device cgroup (v1 " in (
            provenance
        )
    assert provenance.endswith("allows /dev/nvidia2; CUDA_VISIBLE_DEVICES unset))")
    assert _estimate({"CUDA_VISIBLE_DEVICES": "1"})[0] == []  # CUDA has no device 1 here


def test_an_index_among_mixed_gpus_says_cuda_may_number_them_otherwise(tmp_path, monkeypatch):
    """The job may open an H100 and an L4: CUDA numbers them fastest first by default, the
    estimate in PCI order, so index 1 may be another GPU than CUDA's 1. Before: the provenance
    said nothing (NVML's path says so)."""
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(_nvidia_listing(tmp_path, FOUR)))
    (tmp_path / "cgroup" / "devices").mkdir(parents=True)
    (tmp_path / "cgroup" / "devices" / "devices.list").write_text("c 195:1 rwm\nc 195:2 rwm\n")
    monkeypatch.setenv("GREENPRINT_CGROUP_ROOT", str(tmp_path / "cgroup"))
    gpus, provenance = _estimate({"CUDA_VISIBLE_DEVICES": "1"})
    assert gpus == [("GPU-1", "NVIDIA L4")]
    assert provenance.endswith(f"CUDA_VISIBLE_DEVICES=1; {ORDER_NOTE}))")
    for environ in (
        {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
        {"CUDA_VISIBLE_DEVICES": "GPU-2"},  # a UUID names one GPU in any order
        {},
    ):
        assert ORDER_NOTE not in _estimate(environ)[1]


def _with_self_cgroup(text):
    real = _device_cgroup._read

    def read(path):
        return text if str(path) == "/proc/self/cgroup" else real(path)

    return read


def test_a_containers_dev_tells_its_gpus(tmp_path, monkeypatch):
    """A container given the second GPU has /dev/nvidia1 and no other (cgroup v2: no rules to
    read). Before: both GPUs were counted."""
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(_nvidia_listing(tmp_path, FOUR[1:3])))
    (tmp_path / "dev").mkdir()
    for name in ("nvidiactl", "nvidia-uvm", "nvidia1"):
        (tmp_path / "dev" / name).touch()
    monkeypatch.setenv("GREENPRINT_DEV_ROOT", str(tmp_path / "dev"))
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setenv("GREENPRINT_CGROUP_ROOT", str(tmp_path / "cgroup"))
    gpus, provenance = _estimate({})
    assert gpus == [("GPU-0", "NVIDIA L4")]
    assert provenance.endswith(
        "counted 0000:02:00.0 of the driver's 2 NVIDIA GPUs (/dev has nvidia1 only (a "
        "container's); CUDA_VISIBLE_DEVICES unset))"
    )
    (tmp_path / "dev" / "nvidia0").touch()  # every GPU's file: the rules are unknown
    gpus, provenance = _estimate({})
    assert [label for label, _ in gpus] == ["GPU-0", "GPU-1"]
    assert "(device cgroup rules not readable (cgroup v2); CUDA_VISIBLE_DEVICES unset)" in (
        provenance
    )


def test_a_gpu_the_driver_excludes_is_not_counted(tmp_path, monkeypatch, no_nvml):
    monkeypatch.setenv(
        "GREENPRINT_PROC_DRIVER_ROOT", str(_nvidia_listing(tmp_path, FOUR[:2], excluded=(0,)))
    )
    meters = detect_meters(environ={})
    assert meters.provenance["gpu"] == (
        "estimate:gpu-tdp:GPU-0 (GPU-0 NVIDIA H100 PCIe 350 W table:NVIDIA H100 PCIe, "
        "utilisation unknown: full load; counted 0000:02:00.0 of the driver's 2 NVIDIA GPUs "
        "(1 excluded by the driver; no device cgroup read; CUDA_VISIBLE_DEVICES unset))"
    )
    meters.close()


# -- 3. attribution says when it could not read every process of the tree ---------------------

TDP = "estimate:tdp:Test CPU (100 W)"
needs_procfs = pytest.mark.skipif(not _attribution._PROCFS, reason="no /proc/<pid>/stat")


@pytest.fixture
def parent_and_child():
    """A real process with one child, both sleeping: ``(parent, child pid)``."""
    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    yield parent, child
    psutil.Process(child).kill()
    parent.kill()
    parent.wait()


def _deny(monkeypatch, pid, error):
    """``/proc/<pid>/stat`` fails to open with ``error``, as hidepid makes it for another user's."""
    real = os.open
    path = f"/proc/{pid}/stat"

    def opener(file, flags, *args, **kwargs):
        if file == path:
            raise error(errno.EACCES if error is PermissionError else errno.ENOENT, "denied", file)
        return real(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opener)


@needs_procfs
@pytest.mark.parametrize(
    ("error", "why"),
    [
        (PermissionError, "permission denied reading /proc/{pid}/stat"),
        (FileNotFoundError, "/proc/{pid}/stat hidden (/proc mounted with hidepid)"),
    ],
)
def test_a_child_that_cannot_be_read_makes_the_share_a_lower_bound(
    parent_and_child, monkeypatch, error, why
):
    parent, child = parent_and_child
    _deny(monkeypatch, child, error)
    tree = ProcessTree(parent.pid)
    tree.start()
    tree.sample()
    why = why.format(pid=child)
    assert tree.unreadable == {child: why}  # before: left out without a word
    assert tree.root_unreadable is None
    meters = MeterSet({"cpu": CpuEstimateMeter(tdp_w=100.0, provenance=TDP, tree=tree)}, tree=tree)
    meters.start()
    meters.read()
    notes = meters.attribution_notes
    assert set(notes) == {"cpu"}
    # then, as for any run this short, the idle-floor share's resolution (test_short_runs_s31)
    assert notes["cpu"].startswith(
        f"process share a lower bound: 1 process of the tree could not be read ({why}), "
        "nor their children"
    )
    meters.close()


def test_a_child_psutil_may_not_read_makes_the_share_a_lower_bound(parent_and_child, monkeypatch):
    """Without /proc files (macOS, Windows), psutil gives another user's child its start time
    but denies its CPU times (macOS without root). Before: taken for a process that had
    exited, the share was a lower bound that said nothing."""
    parent, child = parent_and_child
    monkeypatch.setattr(_attribution, "_PROCFS", False)
    platform = psutil._psplatform.Process  # what psutil.Process asks, behind its cache
    real = platform.cpu_times

    def cpu_times(self):
        if self.pid == child:
            raise psutil.AccessDenied(self.pid)
        return real(self)

    monkeypatch.setattr(platform, "cpu_times", cpu_times)
    tree = ProcessTree(parent.pid)
    tree.start()
    tree.sample()
    assert tree.unreadable == {child: f"access denied to process {child}"}
    assert tree.attribution_note().startswith("process share a lower bound: 1 process")
    tree.close()


@needs_procfs
def test_a_child_that_exits_is_no_lower_bound(parent_and_child):
    parent, child = parent_and_child
    tree = ProcessTree(parent.pid)
    tree.start()
    psutil.Process(child).kill()
    time.sleep(0.2)
    tree.sample()
    assert tree.unreadable == {}
    assert tree.attribution_note() == ""


@needs_procfs
def test_a_root_that_cannot_be_read_counts_the_whole_machine_and_says_why(
    parent_and_child, monkeypatch, tmp_path
):
    """Tracking a process of another user under hidepid: the share read 0 (0 J charged, no
    word); now the whole machine's energy, an upper bound, with the reason."""
    parent, _ = parent_and_child
    _deny(monkeypatch, parent.pid, PermissionError)
    clock = Clock()
    tree = ProcessTree(parent.pid, clock=clock)
    meters = MeterSet(
        {"cpu": CpuEstimateMeter(tdp_w=100.0, provenance=TDP, tree=tree)}, tree=tree, clock=clock
    )
    with gp.track("hidden", ledger=tmp_path / "r.db", meters=meters, **SLOW) as run:
        time.sleep(0.01)
        clock.t += 2.0
        run._sample()
    reading = meters.read()
    assert reading["cpu"].process_j is None
    assert run.energy_by_component["cpu"] == pytest.approx(reading["cpu"].machine_j / 3.6e6)
    assert run.energy_by_component["cpu"] > 0
    why = f"permission denied reading /proc/{parent.pid}/stat"
    assert run.provenance["cpu"].endswith(f"(not attributed: {why}: the whole machine's energy)")
    assert gp.Ledger(tmp_path / "r.db").run(run.id).provenance["cpu"] == run.provenance["cpu"]


# -- 4. a VM's share of its chip's TDP -----------------------------------------------------------


def _epyc(**kw):
    base = {
        "cpu_model": "AMD EPYC 7763 64-Core Processor",
        "sockets": 1,
        "physical_cores": 1,
        "logical_cores": 2,
        "ram_gb": 8.0,
        "gpus": (),
        "meters": (),
        "cpu_tdp_w": 280.0,
        "cpu_tdp_source": "table:AMD EPYC 7763",
    }
    return HardwareInfo(**{**base, **kw})


def test_a_vm_with_2_vcpus_of_a_64_core_epyc_draws_its_share_of_the_tdp():
    """Before: the whole chip's 280 W for a VM that sees 2 of its 128 threads."""
    meter = cpu_estimate_for(_epyc())
    assert meter.tdp_w == pytest.approx(280.0 * 2 / 128)
    assert meter.provenance == (
        "estimate:tdp:AMD EPYC 7763 (280 W x 2 of 128 threads (64 cores x 2) = 4.38 W)"
    )
    assert Provenance.parse(meter.provenance) == meter.origin
    # a VM showing one thread per core: 8 of 64, charged more, never less
    assert cpu_estimate_for(_epyc(physical_cores=8, logical_cores=8)).tdp_w == 35.0


def test_whole_chips_and_strings_without_cores_keep_the_table_tdp():
    bare = _epyc(sockets=2, physical_cores=128, logical_cores=256)
    assert cpu_estimate_for(bare).provenance == "estimate:tdp:AMD EPYC 7763 (2 x 280 W)"
    smt_off = _epyc(sockets=2, physical_cores=128, logical_cores=128)
    assert cpu_estimate_for(smt_off).tdp_w == 560.0
    intel = _epyc(cpu_model="Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", cpu_tdp_w=300.0)
    assert cpu_estimate_for(intel).tdp_w == 300.0  # no core count in the string: the chip's
    assert chip_cores("AMD Ryzen 7 1700 Eight-Core Processor") == 8


def test_greenprint_hardware_says_what_the_vm_sees(tmp_path, monkeypatch):
    from greenprint.meters import _discovery

    monkeypatch.setattr(_discovery, "cpu_model_name", lambda: (_epyc().cpu_model, 1))
    monkeypatch.setattr(_discovery, "_cpu_counts", lambda: (2, 1))
    _discovery._detect.cache_clear()
    try:
        hw = _discovery.detect_hardware(rapl_root=str(tmp_path))
        meters = detect_meters(environ={})
    finally:
        _discovery._detect.cache_clear()
    assert hw.cpu_tdp_w == 280.0  # the table's, per socket
    assert hw.meter("estimate:cpu").reason.startswith(
        "TDP 280 W (exact match of 'AMD EPYC 7763' in the shipped table); this machine sees "
        "2 of 128 threads (64 cores x 2): 4.38 W; idle floor"
    )
    assert meters.provenance["cpu"].endswith("(280 W x 2 of 128 threads (64 cores x 2) = 4.38 W)")
    meters.close()


def test_greenprint_hardware_says_why_a_job_has_none_of_the_listed_gpus(
    tmp_path, monkeypatch, no_nvml
):
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(_nvidia_listing(tmp_path, FOUR[:2])))
    (tmp_path / "cgroup" / "devices").mkdir(parents=True)
    (tmp_path / "cgroup" / "devices" / "devices.list").write_text("c 136:* rwm\nc 5:2 rwm\n")
    monkeypatch.setenv("GREENPRINT_CGROUP_ROOT", str(tmp_path / "cgroup"))
    status = estimate_status(False, environ={})
    assert not status.usable
    assert status.reason == (
        "no GPU this process can use: counted none of the driver's 2 NVIDIA GPUs (the device "
        "cgroup (v1 devices.list) allows none of them; CUDA_VISIBLE_DEVICES unset)"
    )
