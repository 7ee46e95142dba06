"""FPO counts session 25 left approximate or missing (s26), proved from ATen's kernels.

As in test_fpo_s25: each expected count is that of a Python port of the kernel torch runs,
which counts every floating-point add, subtract, multiply, divide, compare and floor it performs
(integer index arithmetic 0), its values checked against torch's. Here: cuDNN's grid sampler
(counted as ATen's CUDA kernel, which computes the same), the channels-last upsampling kernels
(``cpu/UpSampleKernel.cpp``, ``cpu/UpSampleMoreKernel.cpp``), and antialias weights on meta.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted as _C  # noqa: E402
from test_fpo_s25 import (  # noqa: E402
    _CU_SKIPPED,
    _aa_backward,
    _aa_forward,
    _bicubic_backward,
    _cu_grid_sample_2d,
    _generic_forward,
    _linear_index,
    _op,
    _scale,
    _scales,
    _zeros,
)

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread, as the ports run (one parallel chunk)."""
    with one_thread():
        yield


# -- cuDNN's grid sampler, counted as ATen's CUDA kernel ----------------------------------------

_CUDNN_ASSUMPTION = "counted as ATen's CUDA grid_sampler_2d kernel (cuDNN's is closed source)"


@pytest.fixture
def _cudnn_on_cpu():
    """``aten::cudnn_grid_sampler`` and its backward runnable on CPU tensors (no GPU here).

    On a GPU with cuDNN, ``F.grid_sample(x, g, align_corners=True)`` (bilinear, zeros) on a 4-D
    input dispatches to ``cudnn_grid_sampler`` (``GridSampler.cpp``: ``grid_sampler`` when
    ``cond_cudnn_grid_sampler`` holds); these ops have no CPU kernel, so the fixture gives them
    ATen's own kernel for the same arguments while the counter sees the cuDNN ops, as the CUDA
    grid sampler's tests (s25) select the device by replacing its detection.
    """
    lib = torch.library.Library("aten", "IMPL")
    lib.impl(
        "cudnn_grid_sampler",
        lambda x, grid: torch.ops.aten.grid_sampler_2d(x, grid, 0, 0, True),
        "CPU",
    )
    lib.impl(
        "cudnn_grid_sampler_backward",
        lambda x, grid, grad: torch.ops.aten.grid_sampler_2d_backward(
            grad, x, grid, 0, 0, True, [True, True]
        ),
        "CPU",
    )
    yield
    lib._destroy()


def test_cudnn_grid_sampler_is_counted_as_atens_cuda_kernel(_cudnn_on_cpu):
    """A GPU user's ``F.grid_sample(x, g, align_corners=True)`` ran ``cudnn_grid_sampler``,
    which had no rule: listed in ``unknown_ops``, the total a lower bound (0 FPO for it, 0 for
    its backward). Now both count as a port of ATen's CUDA bilinear kernel with zeros padding
    and align_corners (the values and both gradients equal torch's): (1, 2, 4, 5) by a
    (1, 3, 3, 2) grid, 378 forward and 990 backward, and the result says what it assumed."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 4, 5, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2) - 0.5).requires_grad_(True)
    values, expected = _cu_grid_sample_2d(image.detach(), grid.detach(), 0, 0, True)
    y = torch.cudnn_grid_sampler(image, grid)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, F.grid_sample(image, grid, align_corners=True))
    gout = torch.randn_like(y)
    (gin, ggrid), expected_backward = _cu_grid_sample_2d(
        image.detach(), grid.detach(), 0, 0, True, grad=gout
    )
    assert not _CU_SKIPPED
    torch_gin, torch_ggrid = torch.autograd.grad(y, (image, grid), gout)
    torch.testing.assert_close(gin, torch_gin.double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ggrid, torch_ggrid.double(), rtol=1e-4, atol=1e-4)
    with gp.FPOCounter() as counter:
        torch.cudnn_grid_sampler(image, grid).backward(gout)
    result = counter.result
    assert not result.unknown_ops
    assert _op(result, "aten.cudnn_grid_sampler") == expected == 378
    assert _op(result, "aten.cudnn_grid_sampler_backward", "backward") == expected_backward == 990
    assert result.assumptions == {"cudnn_grid_sampler": _CUDNN_ASSUMPTION}
    assert result.to_dict()["assumptions"] == {"cudnn_grid_sampler": _CUDNN_ASSUMPTION}
    plain = gp.count_fpo(lambda a: F.grid_sample(a, grid, align_corners=True), image)
    assert plain.assumptions == {}
    assert plain.to_dict()["assumptions"] == {}


def test_the_fpo_command_says_when_it_counted_cudnns_grid_sampler(
    tmp_path, monkeypatch, capsys, _cudnn_on_cpu
):
    """``greenprint fpo --json`` carries the assumption for a model that ran cuDNN's grid
    sampler, and none for the same model sampling with ATen's kernel."""
    from greenprint.cli import main

    (tmp_path / "warp.py").write_text(
        "import torch\n\n\n"
        "class Warp(torch.nn.Module):\n"
        "    def __init__(self, cudnn):\n"
        "        super().__init__()\n"
        "        self.cudnn = cudnn\n\n"
        "    def forward(self, x):\n"
        "        grid = torch.zeros(x.shape[0], 3, 3, 2)\n"
        "        if self.cudnn:\n"
        "            return torch.cudnn_grid_sampler(x, grid)\n"
        "        return torch.nn.functional.grid_sample(x, grid, align_corners=True)\n\n\n"
        "def cudnn():\n"
        "    return Warp(True)\n\n\n"
        "def aten():\n"
        "    return Warp(False)\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    for factory, expected in (("cudnn", {"cudnn_grid_sampler": _CUDNN_ASSUMPTION}), ("aten", {})):
        args = ["fpo", f"warp.py:{factory}", "--input-shape", "1,2,4,5", "--device", "cpu"]
        assert main([*args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["assumptions"] == expected
        assert out["unknown_ops"] == {}


# -- channels-last inputs: ATen's channels-last linear kernels, ported ---------------------------


def _channels_last_linear(tensor, size_other, align_corners, scales, backward=False):
    """``cpu_upsample_linear_channels_last`` (forward: ``tensor`` the input, ``size_other`` the
    output's spatial size) or ``cpu_upsample_linear_backward_channels_last`` (``tensor`` the
    gradient, ``size_other`` the input's), 2-D or 3-D. The scales once; per batch, each output
    dimension's weights at every index of the loops around it (depth per batch, rows per
    depth, columns per pixel); per pixel each corner's weight ``h_i * w_j`` (``d_i * h_j *
    w_k``); per channel the forward's ``i00 w00 + i01 w01 + ...`` (4 products, 3 adds; 3-D 8
    and 7), the backward's ``gin += w * g`` per corner. ``(values, ops)``."""
    _C.ops = 0
    dims = tensor.dim() - 2
    batches, channels = tensor.shape[:2]
    if backward:
        size_in, size_out = list(size_other), list(tensor.shape[2:])
    else:
        size_in, size_out = list(tensor.shape[2:]), list(size_other)
    scale = [_scale(size_in[d], size_out[d], align_corners, scales[d]) for d in range(dims)]
    data = tensor.double().tolist()
    result = [
        [_zeros(size_in if backward else size_out) for _ in range(channels)] for _ in range(batches)
    ]

    def at(plane, indices):
        for i in indices:
            plane = plane[i]
        return plane

    def walk(n, d, position, corners):
        if d == dims:
            weighted = []
            for indices, weights in corners:
                product = weights[0]
                for w in weights[1:]:
                    product = product * w
                weighted.append((indices, product))
            for c in range(channels):
                if backward:
                    g = at(data[n][c], position)
                    for indices, w in weighted:
                        row = at(result[n][c], indices[:-1])
                        row[indices[-1]] = row[indices[-1]] + w * g
                    continue
                value = None
                for indices, w in weighted:
                    term = _C(at(data[n][c], indices)) * w
                    value = term if value is None else value + term
                at(result[n][c], position[:-1])[position[-1]] = value
            return
        for o in range(size_out[d]):
            i0, i1, l0, l1 = _linear_index(scale[d], o, size_in[d], size_out[d], align_corners)
            extended = [
                (indices + (i,), weights + (w,))
                for indices, weights in corners
                for i, w in ((i0, l0), (i1, l1))
            ]
            walk(n, d + 1, (*position, o), extended)

    for n in range(batches):
        walk(n, 0, (), [((), ())])
    return torch.tensor(result, dtype=torch.float64), _C.ops


_CHANNELS_LAST_CASES = [
    # (input shape, interpolate's keywords, the forward's kernel, the counts before s26; None:
    # the forward's count is unchanged, its kernel already assumed)
    ((1, 4, 5, 6), {"size": (70, 61), "mode": "bilinear"}, "channels_last", (154_901, 361_202)),
    (
        (2, 5, 3, 4),
        {"scale_factor": 1.5, "mode": "bilinear", "align_corners": True},
        "channels_last",
        (None, 4_562),
    ),
    ((1, 2, 5, 6), {"size": (70, 61), "mode": "bilinear"}, "generic", (None, 180_602)),
    ((1, 4, 2, 3, 4), {"scale_factor": 2, "mode": "trilinear"}, "channels_last", (16_296, 32_502)),
    (
        (2, 5, 3, 2, 4),
        {"size": (2, 3, 7), "mode": "trilinear", "align_corners": True},
        "channels_last",
        (8_895, 16_443),
    ),
    ((1, 3, 2, 3, 4), {"scale_factor": 2, "mode": "trilinear"}, "generic", (None, 24_378)),
]


@pytest.mark.parametrize(("shape", "kwargs", "kernel", "before"), _CHANNELS_LAST_CASES)
def test_channels_last_upsampling_counts_the_channels_last_kernels(shape, kwargs, kernel, before):
    """A channels-last input (``channels_last_3d`` for 5-D) of more than 3 channels runs ATen's
    channels-last linear kernel forward (``_use_vectorized_kernel_cond_2d``/``_3d``; bilinear
    also for any input on a small output, ``H_out + W_out <= 128``), and a channels-last
    gradient runs the channels-last backward whatever the channels
    (``upsample_bilinear2d_backward_kernel_impl``, ``..._trilinear3d_...``). Both compute the
    corner weights per output pixel and, per element, 7 (trilinear 15) forward and 2 per
    corner backward (bilinear 8, trilinear 16) where the generic kernels compute 9 (21)
    and 12 (32); they were counted as contiguous (``before``). Each count equals a port of the
    kernel that runs (values and gradients equal torch's), on real and on meta tensors."""
    torch.manual_seed(0)
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    x = torch.randn(*shape).to(memory_format=fmt).requires_grad_(True)
    y = F.interpolate(x, **kwargs)
    grad = torch.randn_like(y)
    assert grad.is_contiguous(memory_format=fmt)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    dims, align = len(shape) - 2, kwargs.get("align_corners", False)
    scales = _scales(kwargs, dims)
    if kernel == "channels_last":
        values, expected = _channels_last_linear(x.detach(), y.shape[2:], align, scales)
    else:
        values, expected = _generic_forward(x.detach(), list(y.shape[2:]), "linear", align, scales)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-5, atol=1e-5)
    grads, expected_backward = _channels_last_linear(grad, shape[2:], align, scales, True)
    torch.testing.assert_close(grads, expected_grad.double(), rtol=1e-5, atol=1e-5)
    op = "aten.upsample_bilinear2d" if dims == 2 else "aten.upsample_trilinear3d"
    for device in ("cpu", "meta"):
        leaf = x.detach().to(device).requires_grad_(True)
        with gp.FPOCounter() as counter:
            F.interpolate(leaf, **kwargs).backward(grad.to(device))
        counts = (_op(counter.result, op), _op(counter.result, f"{op}_backward", "backward"))
        assert counts == (expected, expected_backward), device
    assert expected_backward != before[1]
    assert expected != before[0]


@pytest.mark.parametrize(
    ("kwargs", "port"),
    [
        ({"size": (7, 9), "mode": "bicubic"}, "bicubic"),
        ({"size": (3, 4), "mode": "bilinear", "antialias": True}, "antialias"),
        ({"scale_factor": 1.7, "mode": "bicubic", "antialias": True}, "antialias"),
    ],
)
def test_channels_last_bicubic_and_antialiased_resizes_run_the_contiguous_kernels(kwargs, port):
    """Bicubic runs the generic kernel for every float input (``upsample_bicubic2d_kernel_impl``)
    and its backward on contiguous copies (``upsample_bicubic2d_backward_out_frame``);
    antialiased resizes run the separable kernel in the same passes, W then H, whatever the
    layout (``separable_upsample_generic_Nd_kernel_impl``), and their backward on contiguous
    copies (``cpu_upsample_genNd_backward_aa``). So the ports of those kernels (s25), run on a
    channels-last input of 4 channels, give torch's values and the rules' counts unchanged."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 6).to(memory_format=torch.channels_last).requires_grad_(True)
    y = F.interpolate(x, **kwargs)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    align, scales = kwargs.get("align_corners", False), _scales(kwargs, 2)
    size_out = list(y.shape[2:])
    if port == "bicubic":
        op = "aten.upsample_bicubic2d"
        values, expected = _generic_forward(x.detach(), size_out, "cubic", align, scales)
        grads, expected_backward = _bicubic_backward(grad, [5, 6], align, scales)
    else:
        op = f"aten._upsample_{kwargs['mode']}2d_aa"
        values, expected = _aa_forward(x.detach(), size_out, kwargs["mode"], align, scales)
        grads, expected_backward = _aa_backward(grad, [5, 6], kwargs["mode"], align, scales)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads, expected_grad.double(), rtol=1e-4, atol=1e-5)
    with gp.FPOCounter() as counter:
        F.interpolate(x, **kwargs).backward(grad)
    assert _op(counter.result, op) == expected
    assert _op(counter.result, f"{op}_backward", "backward") == expected_backward


@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_nearest_counts_as_contiguous(dims):
    """Nearest is counted from its decomposition (an index gather: its indices' arithmetic,
    the backward's adds), the same ops on either layout; ATen's channels-last nearest kernels
    copy and add as the contiguous ones. Forward and backward counts are equal."""
    shape, fmt = ((1, 4, 5, 6), torch.channels_last)
    if dims == 3:
        shape, fmt = (1, 4, 2, 3, 4), torch.channels_last_3d
    x = torch.randn(*shape)
    counts = []
    for tensor in (x, x.to(memory_format=fmt)):
        result = gp.count_fpo(
            lambda a: F.interpolate(a, scale_factor=1.5, mode="nearest"), tensor.requires_grad_()
        )
        assert not result.unknown_ops
        counts.append({op: v for op, v in result.by_op_phase.items() if any(v.values())})
    assert counts[0] == counts[1]
    assert counts[0]


# -- antialias weights on meta tensors ---------------------------------------------------------


def test_a_float64_antialiased_resize_on_meta_counts_its_weights_in_double():
    """s25 counted a float64 input's antialias weights in double, as the kernel computes them,
    but only for real tensors: on meta the rule assumed float32 (315 FPO where the real count is
    316: a tap at ``|x| = 1 - 2.2e-16`` is inside the filter in double). The dtype is metadata, so
    a meta count now reads it: 316, forward and backward as on the CPU; float32 stays 315."""
    kwargs = {"size": (1, 8), "mode": "bilinear", "antialias": True, "align_corners": True}
    for dtype, total in ((torch.float64, 316), (torch.float32, 315)):
        x = torch.randn(1, 2, 1, 10, dtype=dtype)
        counts = [
            gp.count_fpo(lambda a: F.interpolate(a, **kwargs), t, backward=False).total
            for t in (x, x.to("meta"))
        ]
        assert counts == [total, total], dtype
        both = [
            gp.count_fpo(lambda a: F.interpolate(a, **kwargs), t.requires_grad_(True)).by_op
            for t in (x.clone(), x.to("meta"))
        ]
        assert both[0] == both[1], dtype
