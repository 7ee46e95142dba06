"""The GPU drivers' and powermetrics' presence checks read under overridable roots.

``GREENPRINT_DEV_ROOT`` stands for /dev (``kfd``: ROCm; ``nvidiactl``, ``dxg``: NVIDIA),
``GREENPRINT_PROC_DRIVER_ROOT`` for /proc/driver (``nvidia/``), ``GREENPRINT_USR_BIN_ROOT`` for
/usr/bin (``powermetrics``), as the RAPL, hwmon and DRM roots do: every test gets empty folders
(tests/conftest.py), so no test reads this machine's own paths.
"""

from __future__ import annotations

import sys

import pytest

from greenprint.hardware import detect_hardware
from greenprint.meters._amd import probe_amd
from greenprint.meters._gpu_estimate import nvidia_proc_gpus
from greenprint.meters._nvml import NvmlUnavailable, load_nvml

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the driver checks are Linux paths"
)


@linux_only
def test_no_kfd_under_the_dev_root_means_no_amd_driver_and_no_import():
    status, gpus = probe_amd(environ={})
    assert (status.usable, gpus) == (False, ())
    assert status.reason == "no AMD GPU driver (no /dev/kfd)"


@linux_only
def test_a_kfd_under_the_dev_root_is_an_amd_driver(tmp_path, monkeypatch):
    (tmp_path / "kfd").write_text("")
    monkeypatch.setenv("GREENPRINT_DEV_ROOT", str(tmp_path))
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # whatever this machine has installed
    status, _ = probe_amd(environ={})
    assert not status.usable
    assert status.reason.startswith("amdsmi is not importable (")
    assert status.fix is not None and "pip install amdsmi" in status.fix


@linux_only
def test_no_nvidia_paths_under_the_roots_means_no_nvidia_driver():
    with pytest.raises(NvmlUnavailable) as info:
        load_nvml()
    assert info.value.status.reason == "no NVIDIA driver (no /proc/driver/nvidia or /dev/nvidiactl)"


@linux_only
@pytest.mark.parametrize("where", ["proc", "nvidiactl", "dxg"])
def test_any_nvidia_path_under_the_roots_is_a_driver(tmp_path, monkeypatch, where):
    dev, proc = tmp_path / "dev", tmp_path / "proc-driver"
    dev.mkdir()
    proc.mkdir()
    if where == "proc":
        (proc / "nvidia").mkdir()
    else:
        (dev / where).write_text("")
    monkeypatch.setenv("GREENPRINT_DEV_ROOT", str(dev))
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(proc))
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(NvmlUnavailable) as info:  # past the driver check: pynvml is wanted
        load_nvml()
    assert info.value.status.reason.startswith("pynvml is not importable")


def test_the_nvidia_driver_listing_is_read_under_the_proc_root(tmp_path, monkeypatch):
    gpu = tmp_path / "nvidia" / "gpus" / "0000:3b:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t\t NVIDIA L4\nGPU UUID: \t GPU-1234\n")
    assert nvidia_proc_gpus() == []  # the empty stand-in
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(tmp_path))
    assert [(g.model, g.uuid, g.bus) for g in nvidia_proc_gpus()] == [
        ("NVIDIA L4", "GPU-1234", "0000:3b:00.0")
    ]


def test_hardware_detection_is_cached_per_root(tmp_path, monkeypatch):
    """Moving a root is seen: detection is not served from the cache of another root."""
    gpu = tmp_path / "nvidia" / "gpus" / "0000:3b:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t\t NVIDIA L4\nGPU UUID: \t GPU-1234\n")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    before = detect_hardware().meter("estimate:gpu")
    assert before is not None and not before.usable
    monkeypatch.setenv("GREENPRINT_PROC_DRIVER_ROOT", str(tmp_path))
    after = detect_hardware().meter("estimate:gpu")
    assert after is not None and after.usable
    assert after.reason.startswith("GPU-0 NVIDIA L4: 72 W (table:NVIDIA L4)")
