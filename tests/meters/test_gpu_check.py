"""scripts/check_gpu.sh, the maintainer's device check, run against FakeNVML (no GPU here): the
comparison, its exit statuses and its argument checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_gpu.sh"


def check(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = clean_env()
    environ.update(env)
    environ["PYTHON"] = sys.executable
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ, timeout=60
    )


def field(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(name)).split(None, 1)[1]


def test_greenprint_and_nvml_agree_on_the_same_window_across_a_wrap():
    done = check("--seconds", "0.5", GREENPRINT_CHECK_GPU_FAKE="1")
    assert done.returncode == 0, done.stderr
    nvml_j = float(field(done.stdout, "NVML").split()[0])
    greenprint_j = float(field(done.stdout, "greenprint").split()[0])
    assert nvml_j > 0 and greenprint_j == pytest.approx(nvml_j)
    assert field(done.stdout, "ratio").startswith("1.00000")
    assert "(nvml:counter:GPU-0)" in done.stdout and done.stdout.rstrip().endswith("PASS")


def test_a_gap_beyond_the_tolerance_fails_with_exit_1():
    done = check(
        "--seconds", "0.3", "--gpu", "1", GREENPRINT_CHECK_GPU_FAKE="1",
        GREENPRINT_CHECK_GPU_FAKE_SKEW="1.25",
    )  # fmt: skip
    assert done.returncode == 1
    assert field(done.stdout, "ratio").startswith("0.80000")
    assert "GPU-1" in done.stdout and done.stdout.rstrip().endswith("FAIL")


@pytest.mark.parametrize("args", [["--seconds", "0"], ["--tolerance", "-1"], ["--gpu", "x"]])
def test_bad_arguments_exit_2(args):
    done = check(*args, GREENPRINT_CHECK_GPU_FAKE="1")
    assert done.returncode == 2
    assert "check_gpu.sh: error:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(Path("/proc/driver/nvidia").exists(), reason="an NVIDIA driver is here")
def test_without_an_nvidia_driver_it_says_so_in_one_line_and_exits_2():
    done = check("--seconds", "0.1")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("check_gpu.sh: error: ")
    assert len(done.stderr.strip().splitlines()) == 1
