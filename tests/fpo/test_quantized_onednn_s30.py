"""An int8 count says when oneDNN, not FBGEMM, ran a linear or convolution.

The int8 rules count FBGEMM's float epilogue (``greenprint.fpo._rules_quantized``). PyTorch runs
some int8 linears and convolutions on oneDNN's kernels instead: the ``onednn`` engine all of
them; the default ``x86`` engine a convolution (transposed and dynamic ones too) with symmetric
weights on a Linux CPU with AVX-512 VNNI, at most 100 groups and no output padding (ATen's
``should_use_onednn_quant``, ``OnednnUtils.h``), while its linears stay FBGEMM's. oneDNN's
epilogue does other float work (16-lane vectors over padded output channels, only the scales
and zero points that are not 1 and 0), not derived. Until this session such a count read
FBGEMM's epilogue and said nothing; now it keeps FBGEMM's figure and its assumptions say
``onednn_int8``.

The tests compute the dispatch rule's inputs themselves (the CPU's flags from ``/proc/cpuinfo``,
the weights' zero points, the groups, the output padding), so they hold on a CPU without VNNI
(where the ``x86`` engine runs FBGEMM and nothing is said); one child process checks the rule
against the primitives oneDNN says it ran (``ONEDNN_VERBOSE``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.ao.nn.intrinsic.quantized as nniq  # noqa: E402
import torch.ao.nn.quantized as nnq  # noqa: E402
import torch.ao.nn.quantized.dynamic as nnqd  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint._provenance import (  # noqa: E402
    fpo_assumptions_of,
    fpo_assumptions_text,
    is_fpo_lower_bound,
)

ASSUMED = {
    "onednn_int8": "counted as FBGEMM runs them (oneDNN's float epilogue differs, not derived)"
}
pytestmark = pytest.mark.skipif(
    "fbgemm" not in torch.backends.quantized.supported_engines,
    reason="no FBGEMM quantized engine in this torch build (the counts are FBGEMM's)",
)
ENGINES = [
    e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines
]


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


#: should_use_onednn_quant's first two inputs: a Linux build, and AVX-512 VNNI on this CPU
LINUX_VNNI = sys.platform.startswith("linux") and "avx512_vnni" in _cpu_flags()


def _onednn_runs(engine: str, op: Op, weight: torch.Tensor) -> bool:
    """ATen's dispatch, from the rule's inputs: does oneDNN run ``op`` with ``weight``?"""
    if engine == "onednn":
        return True  # every int8 linear and convolution the onednn engine packs
    if engine != "x86" or op.linear:
        return False  # the x86 engine packs linears for FBGEMM
    if weight.qscheme() == torch.per_tensor_affine:
        symmetric = weight.q_zero_point() == 0
    else:  # per channel: every zero point 0, and never a transposed convolution
        symmetric = not op.transposed and bool((weight.q_per_channel_zero_points() == 0).all())
    return LINUX_VNNI and op.groups <= 100 and symmetric and not any(op.output_padding)


class Op:
    """An int8 module with given weights, its input, and the dispatch rule's facts about it."""

    def __init__(
        self,
        make: Callable[[], Any],
        weight: tuple[int, ...],
        x: tuple[int, ...],
        *,
        linear: bool = False,
        transposed: bool = False,
        dynamic: bool = False,
        groups: int = 1,
        output_padding: tuple[int, ...] = (),
    ) -> None:
        self.make, self.weight_shape, self.x_shape = make, weight, x
        self.linear, self.transposed, self.dynamic = linear, transposed, dynamic
        self.groups, self.output_padding = groups, output_padding

    def weight(self, symmetric: bool, per_channel: bool) -> torch.Tensor:
        torch.manual_seed(1)
        w = torch.randn(self.weight_shape) * 0.2
        if not per_channel:
            return torch.quantize_per_tensor(w, 0.004, 0 if symmetric else 3, torch.qint8)
        n = self.weight_shape[0]
        zero_points = torch.zeros(n, dtype=torch.long) if symmetric else torch.arange(n) % 3 + 1
        return torch.quantize_per_channel(w, torch.full((n,), 0.004), zero_points, 0, torch.qint8)

    def count(self, weight: torch.Tensor) -> gp.FPOResult:
        module = self.make()
        module.set_weight_bias(weight, torch.randn(weight.shape[1 if self.transposed else 0]))
        torch.manual_seed(2)
        x = torch.randn(self.x_shape)
        if not self.dynamic:
            x = torch.quantize_per_tensor(x.abs(), 0.01, 3, torch.quint8)
        return gp.count_fpo(module, x, backward=False)


OPS = {
    "linear": Op(lambda: nnq.Linear(16, 6), (6, 16), (4, 16), linear=True),
    "linear_relu": Op(lambda: nniq.LinearReLU(16, 6), (6, 16), (4, 16), linear=True),
    "linear_dynamic": Op(lambda: nnqd.Linear(16, 6), (6, 16), (4, 16), linear=True, dynamic=True),
    "conv1d": Op(lambda: nnq.Conv1d(4, 6, 3), (6, 4, 3), (2, 4, 7)),
    "conv2d": Op(lambda: nnq.Conv2d(4, 6, 3), (6, 4, 3, 3), (2, 4, 6, 6)),
    "conv3d": Op(lambda: nnq.Conv3d(4, 6, 3), (6, 4, 3, 3, 3), (1, 4, 5, 5, 5)),
    "conv2d_relu": Op(lambda: nniq.ConvReLU2d(4, 6, 3), (6, 4, 3, 3), (2, 4, 6, 6)),
    "conv2d_dynamic": Op(lambda: nnqd.Conv2d(4, 6, 3), (6, 4, 3, 3), (2, 4, 6, 6), dynamic=True),
    "conv2d_101_groups": Op(
        lambda: nnq.Conv2d(101, 101, 3, groups=101), (101, 1, 3, 3), (1, 101, 5, 5), groups=101
    ),
    "conv2d_100_groups": Op(
        lambda: nnq.Conv2d(100, 100, 3, groups=100), (100, 1, 3, 3), (1, 100, 5, 5), groups=100
    ),
    "conv_transpose1d": Op(
        lambda: nnq.ConvTranspose1d(4, 6, 3), (4, 6, 3), (2, 4, 5), transposed=True
    ),
    "conv_transpose2d": Op(
        lambda: nnq.ConvTranspose2d(4, 6, 3), (4, 6, 3, 3), (2, 4, 5, 5), transposed=True
    ),
    "conv_transpose3d": Op(
        lambda: nnq.ConvTranspose3d(4, 6, 3), (4, 6, 3, 3, 3), (1, 4, 4, 4, 4), transposed=True
    ),
    "conv_transpose2d_output_padding": Op(
        lambda: nnq.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1),
        (4, 6, 3, 3),
        (2, 4, 5, 5),
        transposed=True,
        output_padding=(1, 1),
    ),
}


@pytest.fixture
def engine_of() -> Iterator[Callable[[str], None]]:
    """Set ``torch.backends.quantized.engine`` (weights are packed under it); put it back."""
    before = torch.backends.quantized.engine

    def use(engine: str) -> None:
        torch.backends.quantized.engine = engine

    yield use
    torch.backends.quantized.engine = before


@pytest.mark.parametrize("name", sorted(OPS))
def test_a_count_says_when_onednn_ran_the_kernel_and_keeps_fbgemms_figure(name, engine_of):
    op = OPS[name]
    schemes = [(True, False), (False, False)]
    if not op.transposed:  # per-channel transposed weights: no engine takes them
        schemes += [(True, True), (False, True)]
    said = []
    for symmetric, per_channel in schemes:
        weight = op.weight(symmetric, per_channel)
        engine_of("fbgemm")
        fbgemm = op.count(weight)
        assert fbgemm.assumptions == {} and fbgemm.unknown_ops == {} and fbgemm.total > 0
        for engine in ENGINES:
            if engine == "onednn" and not (symmetric and not any(op.output_padding)):
                continue  # the onednn engine refuses zero points and output padding
            engine_of(engine)
            counted = op.count(weight)
            onednn = _onednn_runs(engine, op, weight)
            assert counted.assumptions == (ASSUMED if onednn else {}), (engine, symmetric)
            assert counted.total == fbgemm.total  # FBGEMM's figure, whoever ran it
            assert counted.unknown_ops == {}
            said.append(onednn)
    if "onednn" in ENGINES and not any(op.output_padding):
        assert any(said)  # the onednn engine's calls at least


def test_the_x86_engines_default_qconfig_sends_a_cnns_convolutions_to_onednn_on_vnni(engine_of):
    """A CNN quantized as the docs show (FX, the x86 engine's default qconfig: per-channel
    symmetric weights): its convolutions run on oneDNN on a VNNI CPU, its linear on FBGEMM."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if "x86" not in ENGINES:
        pytest.skip("no x86 quantized engine in this torch build")
    engine_of("x86")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 4)
    ).eval()
    x = torch.randn(2, 3, 8, 8)
    prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (x,))
    prepared(x)
    quantized = convert_fx(prepared)
    conv_weight = quantized.get_submodule("0").weight()
    assert conv_weight.qscheme() == torch.per_channel_affine
    assert bool((conv_weight.q_per_channel_zero_points() == 0).all())  # symmetric
    counted = gp.count_fpo(quantized, x, backward=False)
    assert counted.assumptions == (ASSUMED if LINUX_VNNI else {})
    assert set(counted.by_op) >= {"quantized.conv2d_relu", "quantized.linear"}
    engine_of("fbgemm")
    assert gp.count_fpo(quantized, x, backward=False).total == counted.total


def test_a_dynamic_lstm_on_the_onednn_engine_says_so(engine_of):
    model = torch.nn.Sequential(torch.nn.LSTM(8, 6))
    cell = torch.nn.Sequential(torch.nn.LSTMCell(8, 6))
    x = torch.randn(3, 2, 8)
    results = {}
    for engine in ENGINES:
        engine_of(engine)
        torch.manual_seed(0)
        layer = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM})
        cells = torch.ao.quantization.quantize_dynamic(cell, {torch.nn.LSTMCell})
        results[engine] = (
            gp.count_fpo(layer, x, backward=False),
            gp.count_fpo(cells, x[0], backward=False),
        )
    for engine, counts in results.items():
        for counted, fbgemm in zip(counts, results["fbgemm"], strict=True):
            # the x86 engine packs linears for FBGEMM; the onednn engine for oneDNN
            assert counted.assumptions == (ASSUMED if engine == "onednn" else {}), engine
            assert counted.total == fbgemm.total


def test_the_assumption_reaches_the_table_the_run_and_the_ledger(engine_of, tmp_path):
    if "onednn" not in ENGINES:
        pytest.skip("no onednn quantized engine in this torch build")
    engine_of("onednn")
    op = OPS["conv2d"]
    counted = op.count(op.weight(symmetric=True, per_channel=True))
    assert counted.assumptions == ASSUMED
    assert counted.to_dict()["assumptions"] == ASSUMED
    assert "INT8       int8 linears or convolutions ran on oneDNN's kernels" in str(counted)
    text = fpo_assumptions_text(counted.assumptions)
    assert fpo_assumptions_of({"fpo_assumptions": text}) == ASSUMED  # read back whole
    ledger = tmp_path / "int8.db"
    with gp.track("int8", study="s", ledger=ledger) as run:
        run.add_fpo(counted)
    (record,) = gp.Ledger(ledger).runs(study="s")
    assert record.provenance["fpo_assumptions"] == text
    assert not is_fpo_lower_bound(record.provenance)  # not derived, not known to be below


_CHILD = textwrap.dedent(
    """
    import ctypes, json, os, sys, tempfile
    import torch
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd
    import greenprint as gp

    libc = ctypes.CDLL(None)
    KERNELS = ("convolution", "deconvolution", "matmul", "inner_product")

    def primitives(run):
        # the oneDNN primitives run() executes, as ONEDNN_VERBOSE prints them to fd 1
        sys.stdout.flush()
        fd, path = tempfile.mkstemp()
        saved = os.dup(1)
        os.dup2(fd, 1)
        try:
            result = run()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            os.close(fd)
        with open(path) as f:
            lines = f.read().splitlines()
        os.unlink(path)
        fields = [line.split(",") for line in lines if ",exec," in line]
        return result, sorted({f[5] for f in fields if len(f) > 5 and f[5] in KERNELS})

    def weight(shape, zero_point):
        torch.manual_seed(1)
        return torch.quantize_per_tensor(torch.randn(shape) * 0.2, 0.004, zero_point, torch.qint8)

    cases = []
    for engine in ("x86", "onednn"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        torch.backends.quantized.engine = engine
        for zp in (0, 3) if engine == "x86" else (0,):
            for name, make, shape, x in (
                ("conv2d", lambda: nnq.Conv2d(4, 6, 3), (6, 4, 3, 3), (2, 4, 6, 6)),
                ("conv_transpose2d", lambda: nnq.ConvTranspose2d(4, 6, 3), (4, 6, 3, 3),
                 (2, 4, 5, 5)),
                ("linear", lambda: nnq.Linear(16, 6), (6, 16), (4, 16)),
                ("conv2d_101_groups", lambda: nnq.Conv2d(101, 101, 3, groups=101),
                 (101, 1, 3, 3), (1, 101, 5, 5)),
            ):
                module = make()
                w = weight(shape, zp)
                module.set_weight_bias(w, None)
                q = torch.quantize_per_tensor(torch.rand(x), 0.01, 3, torch.quint8)
                counted, ran = primitives(lambda: gp.count_fpo(module, q, backward=False))
                cases.append([f"{engine} {name} zp={zp}", ran, counted.assumptions])
        module = nnqd.Linear(16, 6)
        module.set_weight_bias(weight((6, 16), 0), None)
        counted, ran = primitives(
            lambda: gp.count_fpo(module, torch.randn(4, 16), backward=False)
        )
        cases.append([f"{engine} linear_dynamic", ran, counted.assumptions])
    sys.stderr.write("CASES " + json.dumps(cases) + "\\n")
    """
)


def test_the_assumption_is_said_exactly_when_onednn_runs_the_kernel(tmp_path):
    """Ground truth: the primitives oneDNN reports running (``ONEDNN_VERBOSE=1``)."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("CASES ")]
    cases = json.loads(line[len("CASES ") :])
    by_name = {name: (ran, assumed) for name, ran, assumed in cases}
    if "onednn" in ENGINES and not by_name["onednn linear zp=0"][0]:
        pytest.skip("this torch's oneDNN prints no verbose lines (ONEDNN_VERBOSE)")
    for name, (ran, assumed) in by_name.items():
        assert assumed == (ASSUMED if ran else {}), (name, ran, assumed)
    if "x86" in ENGINES:  # what ran under the x86 engine is what the rule says
        assert bool(by_name["x86 conv2d zp=0"][0]) == LINUX_VNNI
        assert by_name["x86 conv_transpose2d zp=0"][0] == (["deconvolution"] if LINUX_VNNI else [])
        for name in ("conv2d zp=3", "linear zp=0", "conv2d_101_groups zp=0", "linear_dynamic"):
            assert by_name[f"x86 {name}"] == ([], {}), name
