"""A count on the meta device says where it took the CPU's kernels for the device's.

Counting a big model on ``torch.device("meta")`` allocates nothing (a 7B model counts on a
laptop), but meta tensors have no device: the ops whose count depends on the device
(upsampling, grid sampling, the FFTs, whose rules read the device) were counted as the CPU's
kernels run them, and nothing said so: the result read as a CPU count (an FFT's line even named
the CPU's library, MKL). Now ``FPOResult.assumptions["meta_device"] == "cpu"`` says it, with a
``DEVICE`` line under the table (and ``meta_device=cpu`` in a run's ``fpo_assumptions``); a
meta count of device-independent ops assumes nothing, as before.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint._provenance import fpo_assumptions_text  # noqa: E402
from greenprint.fpo import _rules_spectral  # noqa: E402


class _Net(torch.nn.Module):
    def __init__(self, fft: bool) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)
        self.fft = fft

    def forward(self, x):
        y = F.interpolate(self.proj(x), scale_factor=2.0, mode="bilinear")
        return torch.fft.rfft(y).abs() if self.fft else y


def _count(fft: bool, device: str):
    with torch.device(device):
        torch.manual_seed(0)
        return gp.count_fpo(_Net(fft), torch.randn(2, 3, 4, 8), backward=False)


@pytest.mark.parametrize("fft", [False, True], ids=["upsample", "upsample+fft"])
def test_a_meta_count_says_it_counted_the_cpus_kernels(fft):
    cpu, meta = _count(fft, "cpu"), _count(fft, "meta")
    assert meta.total == cpu.total  # the CPU's kernels, on either
    library = {"fft_library": _rules_spectral.fft_backend()} if fft else {}
    assert cpu.assumptions == library  # a CPU count's, as before
    assert meta.assumptions == {**library, "meta_device": "cpu"}  # before: as the CPU count
    assert meta.to_dict()["assumptions"]["meta_device"] == "cpu"
    line = "DEVICE     meta tensors, counted as the CPU kernels run them"
    assert line in str(meta) and line not in str(cpu)
    assert "meta_device=cpu" in (fpo_assumptions_text(meta.assumptions) or "")


def test_a_meta_count_of_device_independent_ops_assumes_nothing():
    # a transformer layer on meta (what a 7B model is made of): no op reads the device
    with torch.device("meta"):
        layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
        counted = gp.count_fpo(layer, torch.randn(2, 5, 16), backward=True)
    assert counted.total > 0 and counted.assumptions == {}
    assert "DEVICE" not in str(counted)
