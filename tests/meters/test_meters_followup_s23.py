"""Follow-ups of session 23's meters probe (test_meters_probe_s23.py).

Each test names the real behaviour it copies:

* ``sudo -u alice python train.py`` from ``/root/x`` keeps root's working directory: alice cannot
  search ``/root`` (0700), so ``stat`` of ``/root/x/greenprint.toml`` fails with ``EACCES``
  (not ``ENOENT``; ``Path.is_file`` of Python < 3.14 raises it). Looking for a config file must
  skip such a folder, never raise out of ``gp.track``. A config file that is there but cannot be
  read is skipped with a warning (its settings would silently not apply). A working directory
  deleted under a running shell (``os.getcwd`` raising ``ENOENT``) is the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import greenprint as gp
from greenprint._config import load_config
from greenprint._environment import cached_git_state
from greenprint._exceptions import ConfigError, MeterError
from greenprint.meters import detect_meters
from greenprint.meters._amd import AmdMeter, probe_amd
from greenprint.meters._nvml import NvmlMeter, probe_nvml
from greenprint.testing import FakeAmdGpu, FakeAMDSMI, FakeGPU, FakeGpuProcess, FakeNVML
from greenprint.testing._amdsmi import AMDSMI_STATUS_FILE_ERROR, AMDSMI_STATUS_NO_PERM
from greenprint.testing._nvml import NVML_ERROR_NO_PERMISSION, NVML_ERROR_NOT_SUPPORTED


class Clock:
    """A monotonic clock the test moves by hand, in s."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


# -- config lookup and environment from a folder the user cannot search ------------------------

_AS_ANOTHER_USER = """
import logging, os, sys
import greenprint as gp
top = sys.argv[1]
# a first run as root loads every module the run needs: the interpreter lives under /root
# (0700) here, closed to the user this process becomes
os.chdir(top)
with gp.track("warm", ledger=False, sample_interval_s=0.05):
    pass
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
os.chdir(os.path.join(top, "closed", "x"))  # inherited from root, as `sudo -u` keeps it
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
with gp.track("closed", ledger=False, sample_interval_s=0.05) as run:
    pass
print("closed:", run.status, run.provenance["intensity"])
os.chdir(os.path.join(top, "shared"))  # a greenprint.toml of root's, mode 0600
for name in ("first", "second"):
    with gp.track(name, ledger=False, sample_interval_s=0.05) as run:
        pass
    print(name + ":", run.status, run.provenance["intensity"])
"""


@pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0,
    reason="needs root to become another user (os.setuid) in a child process",
)
def test_a_folder_closed_to_the_user_is_skipped_and_an_unreadable_config_warns_once():
    # pytest's tmp_path is root's (0700): a folder of its own in /tmp, open to the user
    with tempfile.TemporaryDirectory() as name:
        top = Path(name)
        os.chmod(top, 0o755)
        (top / "greenprint.toml").write_text('region = "SE"\n')  # readable, further up
        (top / "closed" / "x").mkdir(parents=True)
        os.chmod(top / "closed", 0o700)  # as /root
        os.chmod(top / "closed" / "x", 0o777)
        (top / "closed" / "x" / "greenprint.toml").write_text('region = "FR"\n')
        shared = top / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        (shared / "greenprint.toml").write_text('region = "DE"\n')
        os.chmod(shared / "greenprint.toml", 0o600)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(shared)}
        out = subprocess.run(
            [sys.executable, "-c", _AS_ANOTHER_USER, str(top)],
            capture_output=True,
            text=True,
            env=env,
            cwd=top,
            timeout=120,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    project = f"file:{top}/greenprint.toml -> table:SE:"
    # the folder cannot be searched: passed over (FR unseen) without a warning, the search
    # goes on upwards to the project's file
    assert lines[0].startswith(f"closed: finished {project}"), lines
    assert "closed" not in out.stderr
    # the file is there but closed: passed over too, and said so once
    assert lines[1].startswith(f"first: finished {project}"), lines
    assert lines[2].startswith(f"second: finished {project}"), lines
    warning = f"cannot read config file {shared}/greenprint.toml (Permission denied)"
    assert out.stderr.count(warning) == 1, out.stderr
    assert "its settings are not used" in out.stderr


def test_a_deleted_working_directory_still_records_the_run(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # the shell's folder removed while it runs: os.getcwd raises ENOENT
    with pytest.raises(FileNotFoundError):
        os.getcwd()
    assert load_config(environ={}).values == {}
    assert cached_git_state() == (None, None)
    ledger = tmp_path / "runs.db"
    with gp.track("orphan", ledger=str(ledger), sample_interval_s=0.05) as run:
        pass
    assert run.status == "finished"
    (record,) = gp.Ledger(str(ledger)).runs()
    assert record.host  # the environment was recorded (it was lost with a logged traceback)
    assert record.python_version


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "greenprint.toml").write_bytes(b'region = "\xff"\n')
    with pytest.raises(ConfigError, match="greenprint.toml"):
        load_config(tmp_path, environ={})


# -- NVML refusing a GPU's readings while the GPU opens -----------------------------------------
#
# nvml.h: nvmlDeviceGetTotalEnergyConsumption answers NVML_ERROR_NOT_SUPPORTED on a GPU without
# the counter (before Volta); a driver that keeps queries to administrators answers
# NVML_ERROR_NO_PERMISSION, while the device itself (/dev/nvidia*) opened: the handle, name and
# memory read. Giving the user /dev/nvidia* is then no help.


@pytest.mark.parametrize(
    ("counter", "power", "says"),
    [
        (
            NVML_ERROR_NO_PERMISSION,
            NVML_ERROR_NO_PERMISSION,
            "its energy counter is refused (NVML: Insufficient Permissions) and its power "
            "reading is refused (NVML: Insufficient Permissions)",
        ),
        (
            NVML_ERROR_NOT_SUPPORTED,
            NVML_ERROR_NO_PERMISSION,
            "it has no energy counter (NVML: Not Supported; GPUs before Volta have none) and "
            "its power reading is refused (NVML: Insufficient Permissions)",
        ),
        (
            NVML_ERROR_NO_PERMISSION,
            NVML_ERROR_NOT_SUPPORTED,
            "its energy counter is refused (NVML: Insufficient Permissions) and it reports no "
            "power (NVML: Not Supported)",
        ),
    ],
)
def test_refused_readings_name_the_call_and_give_the_fix_that_helps(counter, power, says):
    gpu = FakeGPU(name="Tesla V100-SXM2-16GB")
    gpu.fail("nvmlDeviceGetTotalEnergyConsumption", counter)
    gpu.fail("nvmlDeviceGetPowerUsage", power)
    status, gpus = probe_nvml(FakeNVML([gpu]), environ={})
    assert not status.usable and gpus == ()
    assert status.reason == f"GPU-0 (Tesla V100-SXM2-16GB): {says}"
    assert status.fix is not None and status.fix.startswith("run as root")
    assert "/dev/nvidia* is not what is missing" in status.fix
    with pytest.raises(MeterError, match="refused"):
        NvmlMeter.open(FakeNVML([gpu]), environ={})
    # beside a GPU that reads, the same words in the provenance's line for it
    status, gpus = probe_nvml(FakeNVML([gpu, FakeGPU()]), environ={})
    assert status.usable and [g.index for g in gpus] == [1]
    assert f"GPU-0: {says}: not counted (run as root" in status.reason
    assert "failed to open" not in status.reason
    meter = NvmlMeter.open(FakeNVML([gpu, FakeGPU()]), environ={})
    try:  # and in the run's provenance (the GPU's energy is missing from the figure)
        assert f"GPU-0: {says}: not counted (run as root" in meter.provenance
    finally:
        meter.close()


def test_a_device_nvml_cannot_open_keeps_the_device_access_fix():
    status, _ = probe_nvml(FakeNVML([FakeGPU()], init_error=NVML_ERROR_NO_PERMISSION), environ={})
    assert status.reason.startswith("no permission to use the NVIDIA devices")
    assert "/dev/nvidia*" in (status.fix or "")


# -- a GPU shared with other processes: the run's figure is a share, and says so ----------------
#
# nvmlDeviceGetComputeRunningProcesses lists every compute process on a GPU with its memory
# (usedGpuMemory, None where the driver cannot tell: Windows WDDM); a process-scope run counts
# its tree's share of the GPU's energy by that memory, which its provenance must say.

_SLOW = {"sample_interval_s": 600.0, "flush_interval_s": 600.0}


def _seconds(run: gp.Run, nvml: FakeNVML, clock: Clock, n: int) -> None:
    for _ in range(n):
        time.sleep(0.01)
        clock.t += 1.0
        nvml.advance(1.0)
        run._sample()


def _others(n: int, memory: int | None = 2**30) -> list[FakeGpuProcess]:
    # ids of this machine's processes outside the tree (pid 1 and its like exist; never ours)
    return [FakeGpuProcess(2 + i, memory) for i in range(n)]


def test_a_shared_gpu_says_the_run_counts_its_share_by_gpu_memory(tmp_path):
    gpu = FakeGPU(power_w=200.0, processes=[FakeGpuProcess(os.getpid(), 2**30), *_others(3)])
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    with gp.track("shared", ledger=tmp_path / "g.db", meters=meters, **_SLOW) as run:
        _seconds(run, nvml, clock, 2)
        gpu.processes = [FakeGpuProcess(os.getpid(), 2**30), *_others(1)]  # two finished
        _seconds(run, nvml, clock, 2)
    # 2 s at a quarter of 200 W, 2 s at a half
    assert run.energy_by_component["gpu"] == pytest.approx((2 * 50.0 + 2 * 100.0) / 3.6e6)
    expected = (
        "nvml:counter:GPU-0 (GPU-0 shared with up to 3 other processes: this process tree's "
        "share by GPU memory)"
    )
    assert run.provenance["gpu"] == expected
    assert gp.Ledger(tmp_path / "g.db").run(run.id).provenance["gpu"] == expected


def test_a_machine_scope_run_on_a_shared_gpu_counts_it_whole_and_says_no_share(tmp_path):
    gpu = FakeGPU(power_w=200.0, processes=[FakeGpuProcess(os.getpid(), 2**30), *_others(1)])
    nvml, clock = FakeNVML([gpu]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    with gp.track("whole", ledger=False, meters=meters, scope="machine", **_SLOW) as run:
        _seconds(run, nvml, clock, 2)
    assert run.energy_by_component["gpu"] == pytest.approx(400.0 / 3.6e6)
    assert run.provenance["gpu"] == "nvml:counter:GPU-0"


def test_a_share_by_process_count_says_so_and_a_gpu_of_its_own_says_nothing(tmp_path):
    mine = FakeGPU(power_w=100.0, processes=[FakeGpuProcess(os.getpid(), 2**30)])
    shared = FakeGPU(power_w=200.0, processes=[FakeGpuProcess(os.getpid(), None), *_others(1)])
    nvml, clock = FakeNVML([mine, shared]), Clock()
    meters = detect_meters(nvml=nvml, environ={}, clock=clock)
    with gp.track("count", ledger=False, meters=meters, **_SLOW) as run:
        _seconds(run, nvml, clock, 1)
    assert run.energy_by_component["gpu"] == pytest.approx((100.0 + 100.0) / 3.6e6)
    assert run.provenance["gpu"] == (
        "nvml:counter:GPU-0+GPU-1 (GPU-1 shared with 1 other process: this process tree's "
        "share by process count)"
    )


# -- amdsmi: one GPU failing leaves the others read ---------------------------------------------
#
# amdsmi raises AmdSmiLibraryException (err_code, err_info) for a GPU whose call fails: a GPU
# that is gone or whose sysfs files cannot be opened (AMDSMI_STATUS_FILE_ERROR, _IO), a counter
# refused (AMDSMI_STATUS_NO_PERM); amdsmi_get_energy_count returns energy_accumulator x
# counter_resolution uJ. One GPU's error must not take the other GPUs' counters with it, as
# for NVML (commits 0aa9ec7, 7e83c63, c500197).

_FILE_ERROR = "AMDSMI_STATUS_FILE_ERROR - Error opening file"


def _two_amd_gpus() -> tuple[FakeAmdGpu, FakeAmdGpu, FakeAMDSMI]:
    first, second = FakeAmdGpu(power_w=200.0), FakeAmdGpu(power_w=300.0)
    return first, second, FakeAMDSMI([first, second])


def test_an_amd_gpu_failing_to_open_leaves_the_other_measured():
    first, second, amdsmi = _two_amd_gpus()
    second.fail("amdsmi_get_gpu_asic_info", AMDSMI_STATUS_FILE_ERROR)
    status, gpus = probe_amd(amdsmi, environ={})
    assert status.usable and [g.index for g in gpus] == [0]
    assert f"GPU-1 failed to open (amdsmi: {_FILE_ERROR}): not counted" in status.reason
    clock = Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    try:
        meter.start()
        clock.t += 2.0
        amdsmi.advance(2.0)
        assert meter.read().machine_j == pytest.approx(400.0, rel=1e-6)  # GPU-0's counter
        assert meter.provenance == (
            f"amdsmi:counter:GPU-0 (GPU-1 failed to open (amdsmi: {_FILE_ERROR}): not counted)"
        )
    finally:
        meter.close()
    second.fail("amdsmi_get_gpu_asic_info", AMDSMI_STATUS_FILE_ERROR)
    first.fail("amdsmi_get_gpu_asic_info", AMDSMI_STATUS_FILE_ERROR)
    with pytest.raises(MeterError, match="Error opening file"):  # none left: amdsmi's error
        AmdMeter.open(amdsmi, environ={})


def test_an_amd_counter_refused_while_its_power_reads_is_power_sampled():
    first, second, amdsmi = _two_amd_gpus()
    second.fail("amdsmi_get_energy_count", AMDSMI_STATUS_NO_PERM)
    clock = Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    try:
        meter.start()
        for _ in range(2):
            clock.t += 1.0
            amdsmi.advance(1.0)
            reading = meter.read()
        assert reading.machine_j == pytest.approx(400.0 + 600.0, rel=1e-6)
        assert meter.provenance == (
            "amdsmi:counter:GPU-0+amdsmi:power-sampling:GPU-1 (GPU-1 energy counter refused "
            "(amdsmi: AMDSMI_STATUS_NO_PERM - Permission Denied): power sampled)"
        )
    finally:
        meter.close()


def test_an_amd_gpu_failing_mid_run_goes_on_at_its_mean_power_the_other_from_its_counter():
    first, second, amdsmi = _two_amd_gpus()
    clock = Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    try:
        meter.start()
        for _ in range(2):
            clock.t += 1.0
            amdsmi.advance(1.0)
            meter.read()
        second.fail("amdsmi_get_power_info", AMDSMI_STATUS_FILE_ERROR)  # gone
        second.fail("amdsmi_get_energy_count", AMDSMI_STATUS_FILE_ERROR)
        first.power_w = 100.0  # GPU-0 still read: its counter shows the change
        for _ in range(2):
            clock.t += 1.0
            amdsmi.advance(1.0)
            reading = meter.read()
        # GPU-0: 2 s at 200 W then 2 s at 100 W; GPU-1: 2 s at 300 W, then its mean, 300 W
        assert reading.machine_j == pytest.approx(600.0 + 1200.0, rel=1e-6)
        text = meter.provenance
        assert text.startswith("amdsmi:counter:GPU-0+amdsmi:then-mean-power:GPU-1 (GPU-1 ")
        assert (
            f"GPU-1 failed after 2 s (GPU-1: amdsmi_get_power_info failed: {_FILE_ERROR}): "
            "its mean power so far (300 W) after" in text
        )
        first.fail("amdsmi_get_power_info", AMDSMI_STATUS_FILE_ERROR)  # the last one too
        clock.t += 1.0
        with pytest.raises(MeterError):  # the meter set goes on at the mean power, labelled
            meter.read()
    finally:
        meter.close()


def test_an_amd_gpu_failing_at_the_first_read_is_estimated_the_other_read():
    """As NVML's: the failing GPU at its table TDP, full load, and the provenance says so."""
    first, second, amdsmi = _two_amd_gpus()
    clock = Clock()
    meter = AmdMeter.open(amdsmi, environ={}, clock=clock)
    try:
        second.fail("amdsmi_get_power_info", AMDSMI_STATUS_FILE_ERROR)
        meter.start()
        clock.t += 2.0
        amdsmi.advance(2.0)
        # GPU-0: 2 s at 200 W read; GPU-1: 2 s at its MI300X's 750 W
        assert meter.read().machine_j == pytest.approx(400.0 + 1500.0, rel=1e-6)
        assert meter.provenance == (
            "amdsmi:counter:GPU-0+amdsmi:tdp-estimate:GPU-1 (GPU-1 failed at its first read "
            f"(amdsmi_get_power_info failed: {_FILE_ERROR}): estimated from its TDP, AMD "
            "Instinct MI300X 750 W table:AMD Instinct MI300X, utilisation unknown: full load)"
        )
    finally:
        meter.close()
