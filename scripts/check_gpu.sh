#!/usr/bin/env bash
# Device check for a maintainer with a real NVIDIA GPU: does greenprint's GPU figure equal what
# NVML's own energy counter says for the same window, under a known load?
#
#   scripts/check_gpu.sh [--seconds 30] [--gpu 0] [--tolerance 0.05] [--size 8192]
#
# What it does:
#   1. pins the check to one GPU (CUDA_VISIBLE_DEVICES=<gpu>, CUDA_DEVICE_ORDER=PCI_BUS_ID so that
#      CUDA's and NVML's numbering agree) and lets greenprint choose its meter (detect_meters);
#   2. reads nvmlDeviceGetTotalEnergyConsumption directly (mJ), starts greenprint's meters, runs
#      the load, reads greenprint's meters once a second (as the tracker does) and at the end, then
#      reads the NVML counter again: greenprint's window sits inside the direct one, microseconds
#      apart;
#   3. the load: a torch matmul loop (float16, size x size) on the GPU for --seconds when torch
#      with CUDA is installed; otherwise the GPU idles for --seconds (a weaker check: the same
#      counter at idle power) and the script says so;
#   4. prints both figures, the mean power and ratio = greenprint / NVML, and exits 1 when
#      |ratio - 1| > tolerance (0 otherwise; 2 on bad arguments or no NVIDIA GPU).
#
# Both read the same counter when the GPU has one (Volta and newer), so the ratio should be 1 to
# within the window offset (~1e-4); a GPU that greenprint power-samples (pre-Volta, or a MIG
# slice, which is metered as its share of the parent) shows the sampling error instead.
#
# Testing hook (no GPU): GREENPRINT_CHECK_GPU_FAKE=1 runs the same code against
# greenprint.testing.FakeNVML advanced in real time; GREENPRINT_CHECK_GPU_FAKE_SKEW=<factor>
# scales the direct reading to exercise the failure exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$HERE/../.venv/bin/python" ]]; then PYTHON="$HERE/../.venv/bin/python"; else PYTHON=python3; fi
fi

exec "$PYTHON" - "$@" <<'PY'
import argparse
import os
import sys
import threading
import time

parser = argparse.ArgumentParser(prog="check_gpu.sh", description="greenprint GPU energy vs NVML")
parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (s)")
parser.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU to check")
parser.add_argument("--tolerance", type=float, default=0.05, help="largest |ratio - 1| accepted")
parser.add_argument("--size", type=int, default=8192, help="matmul size of the torch load")
args = parser.parse_args()
if not (args.seconds > 0 and args.tolerance >= 0 and args.gpu >= 0 and args.size > 0):
    parser.error("--seconds and --size must be > 0, --tolerance and --gpu >= 0")

os.environ["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
FAKE = os.environ.get("GREENPRINT_CHECK_GPU_FAKE")

if FAKE:
    from greenprint.testing import FakeGPU, FakeNVML

    gpus = [FakeGPU(name=f"Fake GPU {i}", energy_mj=2**64 - 5_000, power_w=250.0) for i in range(args.gpu + 1)]
    nvml = FakeNVML(gpus)
    skew = float(os.environ.get("GREENPRINT_CHECK_GPU_FAKE_SKEW", "1"))

    def run_load(seconds: float) -> str:
        end = time.monotonic() + seconds
        step = 0
        while time.monotonic() < end:
            time.sleep(0.02)
            step += 1
            gpus[args.gpu].advance(0.02, power_w=200.0 + 200.0 * (step % 2))  # a ragged load
        return "fake load (FakeNVML advanced in real time)"

else:
    skew = 1.0
    try:
        import pynvml as nvml
    except ImportError:
        sys.exit("check_gpu.sh: error: pynvml is not importable: pip install nvidia-ml-py")

    def run_load(seconds: float) -> str:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is None or not torch.cuda.is_available():
            time.sleep(seconds)
            return "idle (torch with CUDA not available: the GPU idled; a weaker check)"
        a = torch.randn(args.size, args.size, device="cuda", dtype=torch.float16)
        b = torch.randn(args.size, args.size, device="cuda", dtype=torch.float16)
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            for _ in range(10):
                a @ b
            torch.cuda.synchronize()
            n += 10
        return f"torch matmul {args.size}x{args.size} float16, {n} products"

try:
    nvml.nvmlInit()
except nvml.NVMLError as e:
    print(f"check_gpu.sh: error: NVML does not start: {e}", file=sys.stderr)
    sys.exit(2)
if args.gpu >= nvml.nvmlDeviceGetCount():
    print(f"check_gpu.sh: error: no GPU {args.gpu} (NVML sees {nvml.nvmlDeviceGetCount()})", file=sys.stderr)
    sys.exit(2)
handle = nvml.nvmlDeviceGetHandleByIndex(args.gpu)
name = nvml.nvmlDeviceGetName(handle)

from greenprint.meters import detect_meters  # noqa: E402

meters = detect_meters(nvml=nvml if FAKE else None, environ=dict(os.environ))
if "gpu" not in meters.components:
    print("check_gpu.sh: error: greenprint found no GPU meter; see `greenprint hardware`", file=sys.stderr)
    sys.exit(2)

stop = threading.Event()


def tick() -> None:
    while not stop.wait(1.0):
        meters.read()


e0 = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
meters.start()
t0 = time.monotonic()
ticker = threading.Thread(target=tick, daemon=True)
ticker.start()
try:
    load = run_load(args.seconds)
finally:
    stop.set()
    ticker.join()
reading = meters.read()["gpu"]
elapsed = time.monotonic() - t0
e1 = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
provenance = meters.provenance["gpu"]
meters.close()
nvml.nvmlShutdown()

direct_j = ((e1 - e0) % 2**64) / 1000.0 * skew
greenprint_j = reading.machine_j
ratio = greenprint_j / direct_j if direct_j > 0 else float("nan")
ok = direct_j > 0 and abs(ratio - 1.0) <= args.tolerance
print(f"GPU         {args.gpu}: {name}")
print(f"load        {load}")
print(f"window      {elapsed:.2f} s")
print(f"NVML        {direct_j:.3f} J  (nvmlDeviceGetTotalEnergyConsumption, read directly)")
print(f"greenprint  {greenprint_j:.3f} J  ({provenance})")
print(f"mean power  {direct_j / elapsed:.1f} W")
print(f"ratio       {ratio:.5f}  (greenprint / NVML; tolerance {args.tolerance:g})")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
