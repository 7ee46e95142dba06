"""Upsampling on CUDA tensors counted as ATen's CUDA kernels compute it (s26).

As in test_fpo_s25 and test_fpo_s26: each expected count is that of a Python port of the kernel
that runs (here ``cuda/UpSampleLinear1d.cu``, ``UpSampleBilinear2d.cu`` with its antialiased
kernels, ``UpSampleTrilinear3d.cu``, ``UpSampleBicubic2d.cu``, ``UpSampleNearest{1,2,3}d.cu``
and ``UpSample.cuh``), which counts every floating-point add, subtract, multiply, divide,
compare, floor and ceil it performs (integer index arithmetic and casts 0; every atomic add 1),
its values checked against torch's CPU result (the same function). There is no GPU here: as the
CUDA grid sampler's tests do (s25), the device is selected by replacing its detection
(``kernel_device``), which the upsampling rules now read too; a fake tensor on a "cuda" device
selects it for real (forward only: a CPU-only torch cannot run autograd on one).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted as _C  # noqa: E402
from test_fpo_s25 import (  # noqa: E402
    _cmp,
    _cubic_coefficients,
    _cubic_interp,
    _f32,
    _floor,
    _op,
    _positions,
    _scale,
    _scales,
    _source_index,
    _zeros,
)

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread, as in s25 and s26 (the CPU's counts do not depend on it here)."""
    with one_thread():
        yield


@pytest.fixture
def _cuda_kernels(monkeypatch):
    """Count as on a CUDA tensor: the rules read the device with ``kernel_device``, replaced
    here, as the CUDA grid sampler's tests (s25) replace it."""
    from greenprint.fpo import _rules_grid_sample

    monkeypatch.setattr(_rules_grid_sample, "kernel_device", lambda tensor: "cuda")


# -- UpSample.cuh and the linear and bicubic kernels, ported --------------------------------


def _cu_lambda(scale, i, size_in, align_corners):
    """One dimension of a linear thread: ``(i0, i1, lambda0, lambda1)``; the index a cast."""
    real = _source_index(scale, i, align_corners, False)
    i0 = int(float(real))
    lambda1 = real - i0
    return i0, i0 + (1 if i0 < size_in - 1 else 0), 1 - lambda1, lambda1


def _at(plane, indices):
    for i in indices:
        plane = plane[i]
    return plane


def _cu_linear(tensor, size_other, align_corners, scales, backward=False, nhwc=False):
    """``upsample_{linear1d,bilinear2d,trilinear3d}_out_frame`` (``nhwc``: bilinear's
    ``_nhwc_out_frame``) or their backward (``tensor`` the gradient, ``size_other`` the input's
    size). Forward: one thread per output location (per element with ``nhwc``, and every
    backward of bilinear) computes each dimension's weights, then per plane ``l0 * f(i0) + l1 *
    f(i1)`` nested from the outer dimension; backward: per corner ``l_d ... l_1 * g`` added
    atomically. Unchanged sizes: bilinear copies before its scales, the others after.
    ``(values, ops)``."""
    _C.ops = 0
    dims = tensor.dim() - 2
    batches, channels = tensor.shape[:2]
    size_in, size_out = (
        (list(size_other), list(tensor.shape[2:]))
        if backward
        else (list(tensor.shape[2:]), list(size_other))
    )
    if dims == 2 and size_in == size_out:
        return tensor.double(), _C.ops
    scale = [_scale(size_in[d], size_out[d], align_corners, scales[d]) for d in range(dims)]
    if size_in == size_out:
        return tensor.double(), _C.ops
    data = tensor.double().tolist()
    result = [
        [_zeros(size_in if backward else size_out) for _ in range(channels)] for _ in range(batches)
    ]
    per_element = nhwc or (backward and dims == 2)

    def weights(position):
        return [_cu_lambda(scale[d], position[d], size_in[d], align_corners) for d in range(dims)]

    def interp(plane, w, d):
        if d == dims:
            return _C(plane)
        i0, i1, l0, l1 = w[d]
        return l0 * interp(plane[i0], w, d + 1) + l1 * interp(plane[i1], w, d + 1)

    for position in _positions(size_out):
        w = None if per_element else weights(position)
        for n in range(batches):
            for c in range(channels):
                wt = weights(position) if per_element else w
                if not backward:
                    _at(result[n][c], position[:-1])[position[-1]] = interp(data[n][c], wt, 0)
                    continue
                g = _at(data[n][c], position)
                for corner in _positions([2] * dims):
                    product = None
                    for d in range(dims):
                        factor = wt[d][2 + corner[d]]
                        product = factor if product is None else product * factor
                    index = [wt[d][corner[d]] for d in range(dims)]
                    row = _at(result[n][c], index[:-1])
                    row[index[-1]] = row[index[-1]] + product * g
    return torch.tensor(result, dtype=torch.float64), _C.ops


def _cu_bicubic(tensor, size_other, align_corners, scales, backward=False):
    """``upsample_bicubic2d_out_frame`` or its backward: the scales on the host, then one thread
    per output location: unchanged sizes a copy; else per axis the source index, ``floorf``
    and ``t``; forward per plane ``cubic_interp1d`` of 4 rows, then of the rows (each call its
    35 coefficients and 7); backward both coefficient sets once, per plane 16 taps of ``g *
    y_i * x_j`` added atomically (clamped). ``(values, ops)``."""
    _C.ops = 0
    batches, channels = tensor.shape[:2]
    if backward:
        (h, w), (oh, ow) = size_other, tensor.shape[2:]
    else:
        (h, w), (oh, ow) = tensor.shape[2:], size_other
    scale_h = _scale(h, oh, align_corners, scales[0])
    scale_w = _scale(w, ow, align_corners, scales[1])
    if (h, w) == (oh, ow):
        return tensor.double(), _C.ops
    data = tensor.double().tolist()
    result = [
        [_zeros([h, w] if backward else [oh, ow]) for _ in range(channels)] for _ in range(batches)
    ]

    def clamp(v, size):
        return max(min(v, size - 1), 0)

    for y in range(oh):
        for x in range(ow):
            real_x = _source_index(scale_w, x, align_corners, True)
            in_x = _floor(real_x)
            t_x = real_x - in_x
            real_y = _source_index(scale_h, y, align_corners, True)
            in_y = _floor(real_y)
            t_y = real_y - in_y
            if backward:
                x_coeffs, y_coeffs = _cubic_coefficients(t_x), _cubic_coefficients(t_y)
            for n in range(batches):
                for c in range(channels):
                    plane = data[n][c]
                    if not backward:
                        rows = [
                            _cubic_interp(
                                [
                                    _C(plane[clamp(in_y - 1 + k, h)][clamp(in_x - 1 + j, w)])
                                    for j in range(4)
                                ],
                                t_x,
                            )
                            for k in range(4)
                        ]
                        result[n][c][y][x] = _cubic_interp(rows, t_y)
                        continue
                    g = plane[y][x]
                    for i in range(4):
                        for j in range(4):
                            row = result[n][c][clamp(in_y - 1 + i, h)]
                            col = clamp(in_x - 1 + j, w)
                            row[col] = row[col] + g * y_coeffs[i] * x_coeffs[j]
    return torch.tensor(result, dtype=torch.float64), _C.ops


_LINEAR_CASES = [
    # (input shape, interpolate's keywords, memory format or None, CPU count: forward, backward)
    ((2, 3, 5), {"size": 9, "mode": "linear"}, None),
    ((1, 2, 6), {"size": 4, "mode": "linear", "align_corners": True}, None),
    ((1, 2, 5), {"size": 5, "mode": "linear"}, None),
    ((1, 2, 4, 5), {"size": (7, 9), "mode": "bilinear"}, None),
    ((2, 1, 5, 4), {"size": (3, 4), "mode": "bilinear", "align_corners": True}, None),
    ((1, 2, 3, 4), {"scale_factor": 2, "mode": "bilinear"}, None),
    ((1, 16, 3, 4), {"scale_factor": 1.5, "mode": "bilinear"}, "channels_last"),
    ((1, 2, 3, 4), {"size": (3, 4), "mode": "bilinear"}, None),
    ((1, 2, 2, 3, 3), {"size": (3, 3, 5), "mode": "trilinear"}, None),
    ((1, 1, 2, 3, 2), {"scale_factor": 1.5, "mode": "trilinear", "align_corners": True}, None),
    ((1, 2, 4, 5), {"size": (7, 9), "mode": "bicubic"}, None),
    ((1, 1, 4, 5), {"scale_factor": 1.5, "mode": "bicubic", "align_corners": True}, None),
    ((1, 2, 4, 5), {"size": (4, 5), "mode": "bicubic"}, None),
]


@pytest.mark.parametrize(("shape", "kwargs", "layout"), _LINEAR_CASES)
def test_cuda_upsampling_counts_what_the_cuda_kernels_perform(shape, kwargs, layout, _cuda_kernels):
    """On a CUDA tensor ``F.interpolate`` (linear, bilinear, trilinear, bicubic) and its backward
    count a port of ATen's CUDA kernel, whose values and gradients equal torch's; until s26 they
    counted the CPU kernels. The CUDA kernels compute each location's weights in its thread
    (bilinear's backward and the channels-last forward per element), the bicubic forward its
    coefficients in every ``cubic_interp1d`` (210 per element where the CPU computes 35 per
    index), and add the gradient with atomic adds; an unchanged size copies."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    if layout:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    dims = len(shape) - 2
    y = F.interpolate(x, **kwargs)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    align = kwargs.get("align_corners", False)
    scales = _scales(kwargs, dims)
    size_out = list(y.shape[2:])
    if kwargs["mode"] == "bicubic":
        values, forward = _cu_bicubic(x.detach(), size_out, align, scales)
        grads, backward = _cu_bicubic(grad, list(shape[2:]), align, scales, backward=True)
    else:
        nhwc = layout is not None and shape[1] >= 16
        values, forward = _cu_linear(x.detach(), size_out, align, scales, nhwc=nhwc)
        grads, backward = _cu_linear(grad, list(shape[2:]), align, scales, backward=True)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads, expected_grad.double(), rtol=1e-5, atol=1e-5)
    op = {1: "upsample_linear1d", 2: "upsample_bilinear2d", 3: "upsample_trilinear3d"}[dims]
    if kwargs["mode"] == "bicubic":
        op = "upsample_bicubic2d"
    with gp.FPOCounter() as counter:
        F.interpolate(x, **kwargs).backward(grad)
    assert _op(counter.result, f"aten.{op}") == forward
    assert _op(counter.result, f"aten.{op}_backward", "backward") == backward


def test_cuda_bilinear_by_hand(_cuda_kernels):
    """(1, 2, 4, 5) -> (7, 9) bilinear on CUDA: scales 2; 63 threads of 2 x 6 weights; 9 per
    element (126): 2 + 756 + 1,134 = 1,892 forward (the CPU's kernel: 1,766). Backward: one
    thread per gradient element, 12 weights and 12 (4 corners: 2 products and the atomic add):
    2 + 126 x 24 = 3,026 (CPU 2,774)."""
    x = torch.randn(1, 2, 4, 5, requires_grad=True)
    result = gp.count_fpo(lambda a: F.interpolate(a, size=(7, 9), mode="bilinear"), x)
    assert _op(result, "aten.upsample_bilinear2d") == 2 + 63 * 12 + 9 * 126 == 1_892
    assert _op(result, "aten.upsample_bilinear2d_backward", "backward") == 2 + 126 * 24 == 3_026


# -- nearest ----------------------------------------------------------------------------------


def _ceil(x) -> int:
    _C.ops += 1
    return math.ceil(float(x))


def _nn_scale(size_src, size_dst, scale):
    """``compute_scales_value_backwards<float>``: the scale after its ``> 0`` compare, or
    ``src / dst``."""
    if scale is not None:
        assert _cmp(scale > 0)
        return _f32(scale)
    return _f32(_C(float(size_src)) / size_dst)


def _cu_nearest_backward(grad, size_in, scales, exact):
    """``upsample_nearest{1,2,3}d_backward_out_frame`` (contiguous): the scales on the host;
    2-D of unchanged sizes a copy; one thread per channel and input location computes both
    ends of each dimension's window (``ceilf(i * s)``, exact ``ceilf(i * s - 0.5)``, capped at
    the gradient's size) and per batch sums the window from 0. ``(values, ops)``."""
    _C.ops = 0
    dims = grad.dim() - 2
    batches, channels = grad.shape[:2]
    size_out = list(grad.shape[2:])
    scale = [_nn_scale(size_out[d], size_in[d], scales[d]) for d in range(dims)]
    if dims == 2 and size_in == size_out:
        return grad.double(), _C.ops
    data = grad.double().tolist()

    def bound(d, i):
        value = _C(i) * scale[d] - 0.5 if exact else _C(i) * scale[d]
        return min(_ceil(_f32(value)), size_out[d])

    gin = torch.zeros(batches, channels, *size_in, dtype=torch.float64)
    for c in range(channels):
        for position in _positions(size_in):
            ends = [(bound(d, position[d]), bound(d, position[d] + 1)) for d in range(dims)]
            window = list(_positions([max(hi - lo, 0) for lo, hi in ends]))
            for n in range(batches):
                total = _C(0.0)
                for offset in window:
                    total = total + _at(data[n][c], [ends[d][0] + offset[d] for d in range(dims)])
                gin[(n, c, *position)] = float(total)
    return gin, _C.ops


_NEAREST_CASES = [
    # (input shape, interpolate's keywords)
    ((1, 3, 4), {"scale_factor": 2, "mode": "nearest"}),
    ((2, 2, 5), {"size": 7, "mode": "nearest-exact"}),
    ((1, 2, 4, 5), {"size": (7, 9), "mode": "nearest"}),
    ((2, 3, 3, 4), {"scale_factor": 2, "mode": "nearest-exact"}),
    ((1, 2, 4, 6), {"size": (4, 3), "mode": "nearest"}),
    ((1, 1, 2, 3, 2), {"scale_factor": 2, "mode": "nearest"}),
]


@pytest.mark.parametrize(("shape", "kwargs"), _NEAREST_CASES)
def test_cuda_nearest_backward_counts_its_windows(shape, kwargs, _cuda_kernels):
    """Nearest's backward on a CUDA tensor computes each thread's window in float (``ceilf(i *
    scale)`` at both ends, per dimension): counted now with the values it sums (the CPU's
    count, 1 per gradient element, left the windows out). The forward op is decomposed by the
    counter on every device (an index gather, the same ops and count as on the CPU)."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    dims = len(shape) - 2
    exact = kwargs["mode"] == "nearest-exact"
    y = F.interpolate(x, **kwargs)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    grads, backward = _cu_nearest_backward(grad, list(shape[2:]), _scales(kwargs, dims), exact)
    torch.testing.assert_close(grads, expected_grad.double(), rtol=1e-5, atol=1e-6)
    op = f"aten.{'_upsample_nearest_exact' if exact else 'upsample_nearest'}{dims}d"
    with gp.FPOCounter() as counter:
        F.interpolate(x, **kwargs).backward(grad)
    result = counter.result
    assert _op(result, f"{op}_backward", "backward") == backward
    assert backward > y.numel()  # the CPU's count
    assert op not in result.by_op and result.forward_total > 0


# -- antialiased: upsample_gen2d_aa_out_frame and its backward, ported --------------------------


def _cu_aa_filter(mode, x):
    """``BilinearFilterFunctor`` / ``BicubicFilterFunctor`` (a = -0.5)."""
    if _cmp(x < 0):
        x = _C(-float(x))
        _C.ops += 1  # the negation
    if mode == "bilinear":
        return 1 - x if _cmp(x < 1) else _C(0.0)
    a = _C(-0.5)
    if _cmp(x < 1):
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if _cmp(x < 2):
        return (((x - 5) * x + 8) * x - 4) * a
    return _C(0.0)


def _cu_aa_support(mode, scale):
    """A thread's ``support`` and ``interp_size``: the compare, the products, ``ceilf``."""
    size = {"bilinear": 2, "bicubic": 4}[mode]
    support = _f32((_C(size) * 0.5) * scale if _cmp(scale >= 1.0) else _C(size) * 0.5)
    return support, _ceil(support) * 2 + 1


def _cu_aa_span(i, size_in, scale, support):
    """``_compute_weights_span``: ``(xmin, xsize, center)``, in float32."""
    center = _f32(scale * _f32(_C(i) + 0.5))
    xmin = max(int(_f32(_f32(center - support) + 0.5)), 0)
    xsize = min(int(_f32(_f32(center + support) + 0.5)), size_in) - xmin
    return xmin, xsize, center


def _cu_aa_weights(mode, scale, xmin_m_center, xsize):
    """``_compute_weights``: the filter per tap, then each divided by the total when not 0."""
    invscale = _f32(1.0 / scale) if _cmp(scale >= 1.0) else _C(1.0)
    weights, total = [], _C(0.0)
    for j in range(xsize):
        w = _f32(_cu_aa_filter(mode, _f32(_f32(_f32(j + xmin_m_center) + 0.5) * invscale)))
        weights.append(w)
        total = _f32(total + w)
    for j in range(xsize):
        if _cmp(total != 0.0):
            weights[j] = _f32(weights[j] / total)
    return weights


def _cu_aa(tensor, size_other, mode, align_corners, scales, backward=False):
    """``upsample_gen2d_aa_out_frame`` (or ``_backward_out_frame``) in its launch: the host's
    scales, interpolation widths and (forward) the shared memory that sizes ``block_y``; blocks
    of 32 x ``block_y`` threads, ``min(65535, N * C)`` along the planes; each thread its supports
    and both windows, the first row's threads their column's weights, the first column's their
    row's; per plane the window's rows interpolated along W, then along H (backward: ``wx * wy
    * g`` added atomically into each input of the window). ``(values, ops)``."""
    _C.ops = 0
    batches, channels = tensor.shape[:2]
    planes = batches * channels
    if backward:
        (h, w), (oh, ow) = size_other, tensor.shape[2:]
    else:
        (h, w), (oh, ow) = tensor.shape[2:], size_other
    scale_h = _f32(_scale(h, oh, align_corners, scales[0]))
    scale_w = _f32(_scale(w, ow, align_corners, scales[1]))
    _, interp_h = _cu_aa_support(mode, scale_h)  # on the host, in double
    _, interp_w = _cu_aa_support(mode, scale_w)
    if backward:
        block_y = 256 // 32
        if (h, w) == (oh, ow):
            return tensor.double(), _C.ops
    else:
        numer = int(_C(48 * 1024) * 1.0 / 4 - interp_w * 32)
        block_y = min(8, 1 << ((numer // (interp_h * 33)).bit_length() - 1))
    grid_x, grid_y, grid_z = -(-ow // 32), -(-oh // block_y), min(65535, planes)
    data = tensor.double().tolist()
    result = [
        [_zeros([h, w] if backward else [oh, ow]) for _ in range(channels)] for _ in range(batches)
    ]
    for bz in range(grid_z):
        for by in range(grid_y):
            for bx in range(grid_x):
                wx, wy, spans = {}, {}, {}
                for ty in range(block_y):
                    for tx in range(32):
                        x, y = bx * 32 + tx, by * block_y + ty
                        if x >= ow or y >= oh:
                            continue
                        support_h, _ = _cu_aa_support(mode, scale_h)
                        support_w, _ = _cu_aa_support(mode, scale_w)
                        xmin, xsize, xcenter = _cu_aa_span(x, w, scale_w, support_w)
                        ymin, ysize, ycenter = _cu_aa_span(y, h, scale_h, support_h)
                        spans[(x, y)] = (xmin, xsize, ymin, ysize)
                        if ty == 0:
                            wx[x] = _cu_aa_weights(mode, scale_w, xmin - xcenter, xsize)
                        if tx == 0:
                            wy[y] = _cu_aa_weights(mode, scale_h, ymin - ycenter, ysize)
                for (x, y), (xmin, xsize, ymin, ysize) in spans.items():
                    for i in range(bz, planes, grid_z):
                        n, c = divmod(i, channels)
                        plane = data[n][c]
                        if backward:
                            g = plane[y][x]
                            for j in range(ysize):
                                for k in range(xsize):
                                    row = result[n][c][ymin + j]
                                    row[xmin + k] = row[xmin + k] + wx[x][k] * wy[y][j] * g
                            continue
                        buffer = []
                        for j in range(ysize):
                            src = plane[ymin + j]
                            acc = _C(src[xmin]) * wx[x][0]
                            for k in range(1, xsize):
                                acc = acc + _C(src[xmin + k]) * wx[x][k]
                            buffer.append(_f32(acc))
                        acc = buffer[0] * wy[y][0]
                        for j in range(1, ysize):
                            acc = acc + buffer[j] * wy[y][j]
                        result[n][c][y][x] = acc
    return torch.tensor(result, dtype=torch.float64), _C.ops


_AA_CASES = [
    # (mode, input shape, interpolate's keywords)
    ("bilinear", (1, 2, 8, 8), {"size": (2, 2)}),
    ("bilinear", (1, 1, 6, 7), {"size": (3, 7), "align_corners": True}),
    ("bilinear", (2, 1, 5, 40), {"size": (3, 35)}),
    ("bicubic", (1, 2, 5, 6), {"scale_factor": 1.7}),
    ("bicubic", (2, 1, 9, 7), {"scale_factor": 0.5}),
]


@pytest.mark.parametrize(("mode", "shape", "kwargs"), _AA_CASES)
def test_cuda_antialiased_resize_counts_the_cuda_kernels(mode, shape, kwargs, _cuda_kernels):
    """The antialiased resize on CUDA is not separable: each output interpolates its window's
    rows along W, then those along H (the CPU resizes W, then H, skipping an unchanged
    dimension), and each block recomputes the weights of its columns and rows. Forward and
    backward equal ports of ``upsample_gen2d_aa_out_frame`` and its backward in their launch
    (blocks of 32 x 8 threads here; 35 columns take 2 blocks across), values equal torch's."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    y = F.interpolate(x, mode=mode, antialias=True, **kwargs)
    align = kwargs.get("align_corners", False)
    factor = kwargs.get("scale_factor")
    scales = [factor, factor] if factor is not None else [None, None]
    values, forward = _cu_aa(x.detach(), list(y.shape[2:]), mode, align, scales)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    grads, backward = _cu_aa(grad, list(shape[2:]), mode, align, scales, backward=True)
    torch.testing.assert_close(grads, expected_grad.double(), rtol=1e-4, atol=1e-5)
    with gp.FPOCounter() as counter:
        F.interpolate(x, mode=mode, antialias=True, **kwargs).backward(grad)
    op = f"aten._upsample_{mode}2d_aa"
    assert _op(counter.result, op) == forward
    assert _op(counter.result, f"{op}_backward", "backward") == backward


# -- the device read from fake tensors; CPU and meta unchanged -----------------------------------


def test_a_fake_cuda_tensor_counts_the_cuda_kernels():
    """Under ``FakeTensorMode`` a tensor on a "cuda" device (no GPU, no values) reads its
    device: the upsampling ops count the CUDA kernels, as a real CUDA tensor (the same counts
    the ports proved above); a fake CPU tensor and a meta tensor count the CPU kernels. (A
    CPU-only torch runs no backward on a fake CUDA tensor, nor a fake CUDA grid sampler: its
    decomposition indexes on the device.)"""
    from torch._subclasses.fake_tensor import FakeTensorMode

    kwargs = {"size": (7, 9), "mode": "bilinear"}
    real = gp.count_fpo(
        lambda a: F.interpolate(a, **kwargs), torch.randn(1, 2, 4, 5), backward=False
    )
    with FakeTensorMode():
        fake_cuda = gp.count_fpo(
            lambda a: F.interpolate(a, **kwargs),
            torch.randn(1, 2, 4, 5, device="cuda"),
            backward=False,
        )
        fake_cpu = gp.count_fpo(
            lambda a: F.interpolate(a, **kwargs), torch.randn(1, 2, 4, 5), backward=False
        )
    meta = gp.count_fpo(
        lambda a: F.interpolate(a, **kwargs), torch.randn(1, 2, 4, 5, device="meta"), backward=False
    )
    assert fake_cuda.by_op["aten.upsample_bilinear2d"] == 1_892
    assert real.by_op["aten.upsample_bilinear2d"] == 1_766
    assert fake_cpu.by_op["aten.upsample_bilinear2d"] == 1_766
    assert meta.by_op["aten.upsample_bilinear2d"] == 1_766


def test_grid_sample_readers_run_on_fake_tensors(_cuda_kernels):
    """The grid sampler's readers read the device and strides only, so they are called on fake
    tensors too: with the device read as CUDA (the detection replaced, as in s25), a fake
    tensor's count is the CUDA kernel's, 396 (it was the CPU's, 270: the reader was skipped)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        grid = torch.rand(1, 3, 3, 2) - 0.5
        result = gp.count_fpo(
            lambda a: F.grid_sample(a, grid, align_corners=False),
            torch.randn(1, 2, 4, 5),
            backward=False,
        )
    assert result.by_op["aten.grid_sampler_2d"] == 396


# -- every assumption has a line under the tables -----------------------------------------------


def test_the_tables_print_every_assumption(monkeypatch):
    """``FPOResult.table()`` printed a line for the FFT library only: a count that assumed cuDNN's
    grid sampler was ATen's CUDA kernel said so in ``assumptions`` and ``--json`` but not in
    its table. Now each assumption has a line (the FFT's wording kept)."""
    from test_fpo_s26 import _CUDNN_ASSUMPTION

    from greenprint.fpo import _rules_spectral

    lib = torch.library.Library("aten", "IMPL")
    lib.impl(
        "cudnn_grid_sampler",
        lambda x, grid: torch.ops.aten.grid_sampler_2d(x, grid, 0, 0, True),
        "CPU",
    )
    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: "mkl")
    grid = torch.rand(1, 3, 3, 2) - 0.5
    try:
        result = gp.count_fpo(
            lambda a: torch.fft.rfft(torch.cudnn_grid_sampler(a, grid), norm="ortho"),
            torch.randn(1, 2, 4, 5),
            backward=False,
        )
    finally:
        lib._destroy()
    assert result.assumptions == {"cudnn_grid_sampler": _CUDNN_ASSUMPTION, "fft_library": "mkl"}
    for table in (result.table(), result.table(by="op")):
        assert f"ASSUMED    cudnn_grid_sampler: {_CUDNN_ASSUMPTION}" in table
        assert "FFT        counted as MKL runs it (an rfft's normalisation differs" in table
