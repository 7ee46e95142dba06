"""FPO counts session 24 left approximate (s25), proved from ATen's CPU kernels.

Each expected count is that of a Python port of the kernel torch runs (``cpu/UpSampleKernel.cpp``,
``cpu/UpSampleMoreKernel.cpp``, ``UpSampleBicubic2d.cpp`` and ``UpSample.h``), which counts every
add, subtract, multiply, divide, compare, floor, ceil and elementary function it performs on
floating-point values (integer index arithmetic and casts count 0), its values checked against
torch's (so the port is the op). Conventions as docs/fpo.md states them.
"""

from __future__ import annotations

import json
import math
import struct

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted as _C  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread, as the ports run (one parallel chunk)."""
    with one_thread():
        yield


def _op(result, op: str, phase: str = "forward") -> int:
    return result.by_op_phase[op][phase]


# -- a float that counts the arithmetic done on it -----------------------------------------------


def _cmp(result: bool) -> bool:
    """A floating-point compare (``<``, ``>=``, ``!=``, min/max): 1."""
    _C.ops += 1
    return result


def _floor(x) -> int:
    _C.ops += 1
    return math.floor(float(x))


def _min(a, b):
    _C.ops += 1
    return _C(min(float(a), float(b)))


def _max(a, b):
    _C.ops += 1
    return _C(max(float(a), float(b)))


def _abs(x):
    _C.ops += 1
    return _C(abs(float(x)))


# -- UpSample.h, ported ----------------------------------------------------------------------


def _scale(size_in, size_out, align_corners, scale):
    """``area_pixel_compute_scale``."""
    if align_corners:
        return _C(size_in - 1) / (size_out - 1) if size_out > 1 else _C(0.0)
    if scale is not None:  # compute_scales_value: scale.value() > 0. ? 1.0 / scale
        assert _cmp(scale > 0)
        return 1.0 / _C(scale)
    return _C(size_in) / size_out


def _source_index(scale, i, align_corners, cubic):
    """``area_pixel_compute_source_index``: ``dst_index + 0.5`` is a float add."""
    if align_corners:
        return scale * i
    src = scale * (_C(i) + 0.5) - 0.5
    if cubic:
        return src
    return _C(0.0) if _cmp(src < 0) else src


def _guard(real, size_in):
    """``guard_index_and_lambda``: ``(index, lambda)``."""
    index = min(_floor(real), size_in - 1)
    return index, _min(_max(real - index, 0.0), 1.0)


def _linear_index(scale, i, size_in, size_out, align_corners):
    """``compute_source_index_and_lambda``: ``(i0, i1, lambda0, lambda1)``."""
    if size_in == size_out:
        return i, i, _C(1.0), _C(0.0)
    i0, lambda1 = _guard(_source_index(scale, i, align_corners, False), size_in)
    return i0, i0 + (1 if i0 < size_in - 1 else 0), 1.0 - lambda1, lambda1


def _cubic_coefficients(t):
    """``get_cubic_upsample_coefficients`` (A = -0.75, a runtime value): 35."""
    a = _C(-0.75)

    def conv1(x):
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def conv2(x):
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    x2 = 1.0 - t
    return [conv2(t + 1.0), conv1(t), conv1(x2), conv2(x2 + 1.0)]


def _cubic_index(scale, i, size_in, align_corners):
    """``HelperInterpCubic::compute_indices_weights`` at one index: (indices, weights)."""
    index, lam = _guard(_source_index(scale, i, align_corners, True), size_in)
    weights = _cubic_coefficients(lam)
    return [min(max(index + j - 1, 0), size_in - 1) for j in range(4)], weights


# -- forward: upsample_non_separable_Nd_kernel_impl and upsample_linear_channels_last ----------


def _generic_forward(x, size_out, mode, align_corners, scales):
    """The generic kernel: weights per output index and dimension, then per element the
    separable interpolation ``out = t0 * w0; out += t_j * w_j`` (2 taps: ``t0 * w0 + t1 *
    w1``) from the last dimension outwards. ``(values, ops)``."""
    _C.ops = 0
    dims = len(size_out)
    size_in = list(x.shape[2:])
    taps = []  # per dimension, per output index: [(index, weight), ...]
    for d in range(dims):
        scale = _scale(size_in[d], size_out[d], align_corners, scales[d])
        per_index = []
        for i in range(size_out[d]):
            if mode == "cubic":
                indices, weights = _cubic_index(scale, i, size_in[d], align_corners)
                per_index.append(list(zip(indices, weights, strict=True)))
            else:
                i0, i1, l0, l1 = _linear_index(scale, i, size_in[d], size_out[d], align_corners)
                per_index.append([(i0, l0), (i1, l1)])
        taps.append(per_index)
    data = x.double().tolist()
    out = torch.zeros(*x.shape[:2], *size_out, dtype=torch.float64)

    def interp(plane, d, position):
        result = None
        for index, weight in taps[d][position[d]]:
            value = plane[index]
            t = interp(value, d + 1, position) if d + 1 < dims else _C(value)
            result = t * weight if result is None else result + t * weight
        return result

    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position in _positions(size_out):
                out[(n, c, *position)] = float(interp(data[n][c], 0, position))
    return out, _C.ops


def _positions(sizes):
    if not sizes:
        yield ()
        return
    for i in range(sizes[0]):
        for rest in _positions(sizes[1:]):
            yield (i, *rest)


def _channels_last_forward(x, size_out, align_corners, scales):
    """``upsample_linear_channels_last`` (2-D): per batch and output row the row's weights, per
    output pixel the column's and the 4 products, per element 7. ``(values, ops)``."""
    _C.ops = 0
    (h, w), (oh, ow) = x.shape[2:], size_out
    scale_h = _scale(h, oh, align_corners, scales[0])
    scale_w = _scale(w, ow, align_corners, scales[1])
    data = x.double().tolist()
    out = torch.zeros(*x.shape[:2], oh, ow, dtype=torch.float64)
    for n in range(x.shape[0]):
        for y in range(oh):
            ih0, ih1, h0, h1 = _linear_index(scale_h, y, h, oh, align_corners)
            for z in range(ow):
                iw0, iw1, w0, w1 = _linear_index(scale_w, z, w, ow, align_corners)
                w00, w01, w10, w11 = h0 * w0, h0 * w1, h1 * w0, h1 * w1
                for c in range(x.shape[1]):
                    p = data[n][c]
                    v = _C(p[ih0][iw0]) * w00 + _C(p[ih0][iw1]) * w01
                    v = v + _C(p[ih1][iw0]) * w10 + _C(p[ih1][iw1]) * w11
                    out[n, c, y, z] = float(v)
    return out, _C.ops


_FORWARD_CASES = [
    # (op, input shape, interpolate's keywords, the port, before s25)
    ("upsample_linear1d", (2, 3, 5), {"size": 9, "mode": "linear"}, "generic", 162),
    ("upsample_linear1d", (1, 2, 5), {"scale_factor": 2.5, "mode": "linear"}, "generic", 72),
    (
        "upsample_linear1d",
        (1, 2, 6),
        {"size": 4, "mode": "linear", "align_corners": True},
        "generic",
        24,
    ),
    (
        "upsample_bilinear2d",
        (1, 2, 3, 4),
        {"size": (60, 70), "mode": "bilinear"},
        "generic",
        75_600,
    ),
    (
        "upsample_bilinear2d",
        (1, 1, 4, 3),
        {"size": (70, 61), "mode": "bilinear", "align_corners": True},
        "generic",
        38_430,
    ),
    (
        "upsample_bilinear2d",
        (2, 2, 3, 4),
        {"scale_factor": 1.5, "mode": "bilinear"},
        "channels_last",
        864,
    ),
    (
        "upsample_bilinear2d",
        (1, 3, 5, 6),
        {"size": (3, 6), "mode": "bilinear", "align_corners": True},
        "channels_last",
        486,
    ),
    (
        "upsample_trilinear3d",
        (1, 2, 2, 3, 4),
        {"scale_factor": 2, "mode": "trilinear"},
        "generic",
        8_064,
    ),
    (
        "upsample_trilinear3d",
        (1, 1, 3, 2, 4),
        {"size": (2, 2, 7), "mode": "trilinear", "align_corners": True},
        "generic",
        588,
    ),
    ("upsample_bicubic2d", (1, 2, 4, 5), {"size": (7, 9), "mode": "bicubic"}, "cubic", 4_410),
    (
        "upsample_bicubic2d",
        (1, 1, 4, 5),
        {"scale_factor": 1.5, "mode": "bicubic", "align_corners": True},
        "cubic",
        1_470,
    ),
]


def _scales(kwargs, dims):
    factor = kwargs.get("scale_factor")
    return [None if factor is None else float(factor)] * dims


@pytest.mark.parametrize(("op", "shape", "kwargs", "kernel", "before"), _FORWARD_CASES)
def test_upsample_forward_counts_the_weights_as_the_kernel_computes_them(
    op, shape, kwargs, kernel, before
):
    """Each forward's count equals a port of the kernel that runs: the scale per dimension
    (``in / out``, 1; ``1 / scale_factor`` after its ``> 0`` compare, 2; ``(in - 1) / (out -
    1)`` with align_corners, 1), the weights per output index (linear 9, 6 with align_corners,
    0 for an unchanged size; bicubic 42, 40) and the interpolation per element. Bilinear on a
    small output (``H_out + W_out <= 128``) runs ``upsample_linear_channels_last``: the column's
    weights and 4 products per output pixel, 7 per element. ``before``: the count until s25
    (per element only: linear 3, bilinear and trilinear 9 and 21, bicubic 35)."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    dims = len(shape) - 2
    expected_values = F.interpolate(x, **kwargs)
    size_out = list(expected_values.shape[2:])
    align = kwargs.get("align_corners", False)
    scales = _scales(kwargs, dims)
    if kernel == "channels_last":
        values, expected = _channels_last_forward(x, size_out, align, scales)
    else:
        mode = "cubic" if kernel == "cubic" else "linear"
        values, expected = _generic_forward(x, size_out, mode, align, scales)
    torch.testing.assert_close(values, expected_values.double(), rtol=1e-5, atol=1e-5)
    result = gp.count_fpo(lambda a: F.interpolate(a, **kwargs), x, backward=False)
    assert result.by_op == {f"aten.{op}": expected}
    assert expected != before
    meta = gp.count_fpo(lambda a: F.interpolate(a, **kwargs), x.to("meta"), backward=False)
    assert meta.by_op == {f"aten.{op}": expected}


def test_upsample_bilinear2d_forward_by_hand():
    """(2, 2, 3, 4) -> (4, 6) with ``scale_factor=1.5`` (the channels-last kernel, 4 + 6 <= 128):
    scales 2 + 2; per batch and row the row's weights (9), per pixel the column's (9) and 4
    products: ``2 * 4 * (9 + 6 * 13)`` = 696; 7 per element, 96 elements, 672: 1,372 (it was
    9 x 96 = 864)."""
    x = torch.randn(2, 2, 3, 4)
    result = gp.count_fpo(
        lambda a: F.interpolate(a, scale_factor=1.5, mode="bilinear"), x, backward=False
    )
    assert result.by_op["aten.upsample_bilinear2d"] == 4 + 2 * 4 * (9 + 6 * 13) + 7 * 96 == 1_372


# -- backward: cpu_upsample_linear_backward and upsample_bicubic2d_backward_out_frame -----------


def _linear_backward(grad, size_in, align_corners, scales):
    """``cpu_upsample_linear_backward`` (contiguous): the scales once, then for each plane the
    weights of each dimension at every index of the loops around it, and per gradient element
    each corner's ``w_1 ... w_d g`` added into the zeroed input gradient. ``(values, ops)``."""
    _C.ops = 0
    dims = len(size_in)
    size_out = list(grad.shape[2:])
    scale = [_scale(size_in[d], size_out[d], align_corners, scales[d]) for d in range(dims)]
    g = grad.double().tolist()
    gin = [[_zeros(size_in) for _ in range(grad.shape[1])] for _ in range(grad.shape[0])]

    def walk(n, c, d, position, corners):
        if d == dims:
            value = g[n][c]
            for p in position:
                value = value[p]
            for indices, weights in corners:
                product = weights[0]
                for w in weights[1:]:
                    product = product * w
                target = gin[n][c]
                for i in indices[:-1]:
                    target = target[i]
                target[indices[-1]] = target[indices[-1]] + product * value
            return
        for o in range(size_out[d]):
            i0, i1, l0, l1 = _linear_index(scale[d], o, size_in[d], size_out[d], align_corners)
            extended = [
                (indices + (i,), weights + (w,))
                for indices, weights in corners
                for i, w in ((i0, l0), (i1, l1))
            ]
            walk(n, c, d + 1, (*position, o), extended)

    for n in range(grad.shape[0]):
        for c in range(grad.shape[1]):
            walk(n, c, 0, (), [((), ())])
    return torch.tensor(gin, dtype=torch.float64), _C.ops


def _zeros(sizes):
    if len(sizes) == 1:
        return [_C(0.0) for _ in range(sizes[0])]
    return [_zeros(sizes[1:]) for _ in range(sizes[0])]


def _bicubic_backward(grad, size_in, align_corners, scales):
    """``upsample_bicubic2d_backward_out_frame`` (torch 2.13): unchanged sizes a copy;
    otherwise the scales once, then per plane (the ``parallel_for`` over N * C) and output
    pixel both source indices, ``guard_index_and_lambda`` (``floor``, ``real - index``, a max
    and a min, per axis) and coefficient sets, and per gradient element 16 taps of
    ``g * y_j * x_i`` added (clamped to the input). ``(values, ops)``. (Until s25 this port
    computed the weights once per pixel, outside the planes, with a floor and a fraction: the
    rule's count then, 80 per pixel, which BB2 found short of the source's 84 per plane and
    pixel.)"""
    _C.ops = 0
    (h, w), (oh, ow) = size_in, grad.shape[2:]
    g = grad.double().tolist()
    gin = [[_zeros(size_in) for _ in range(grad.shape[1])] for _ in range(grad.shape[0])]
    if (h, w) == (oh, ow):  # "Special case: input/output same size, just copy"
        return grad.double(), _C.ops
    scale_h = _scale(h, oh, align_corners, scales[0])
    scale_w = _scale(w, ow, align_corners, scales[1])

    def guard(real, size):  # guard_index_and_lambda
        index = min(_floor(real), size - 1)
        return index, _min(_max(real - index, 0.0), 1.0)

    for n in range(grad.shape[0]):
        for c in range(grad.shape[1]):
            plane = gin[n][c]
            for y in range(oh):
                for z in range(ow):
                    input_x, t_x = guard(_source_index(scale_w, z, align_corners, True), w)
                    input_y, t_y = guard(_source_index(scale_h, y, align_corners, True), h)
                    cx, cy = _cubic_coefficients(t_x), _cubic_coefficients(t_y)
                    value = g[n][c][y][z]
                    for i in range(4):
                        for j in range(4):
                            col = max(min(input_x - 1 + i, w - 1), 0)
                            row = max(min(input_y - 1 + j, h - 1), 0)
                            plane[row][col] = plane[row][col] + value * cy[j] * cx[i]
    return torch.tensor(gin, dtype=torch.float64), _C.ops


_BACKWARD_CASES = [
    # (op, input shape, interpolate's keywords, before s25)
    ("upsample_linear1d", (2, 3, 5), {"size": 9, "mode": "linear"}, 216),
    ("upsample_linear1d", (1, 2, 5), {"scale_factor": 2.5, "mode": "linear"}, 96),
    ("upsample_bilinear2d", (1, 2, 3, 4), {"scale_factor": 2, "mode": "bilinear"}, 1_152),
    (
        "upsample_bilinear2d",
        (2, 1, 5, 4),
        {"size": (3, 4), "mode": "bilinear", "align_corners": True},
        288,
    ),
    (
        "upsample_trilinear3d",
        (1, 2, 2, 3, 3),
        {"size": (3, 3, 5), "mode": "trilinear"},
        2_880,
    ),
    (
        "upsample_trilinear3d",
        (1, 1, 2, 3, 2),
        {"scale_factor": 1.5, "mode": "trilinear", "align_corners": True},
        1_152,
    ),
    ("upsample_bicubic2d", (1, 2, 4, 5), {"size": (6, 7), "mode": "bicubic"}, 4_032),
    (
        "upsample_bicubic2d",
        (1, 1, 4, 5),
        {"scale_factor": 1.5, "mode": "bicubic", "align_corners": True},
        2_016,
    ),
    ("upsample_bicubic2d", (1, 2, 4, 5), {"size": (4, 5), "mode": "bicubic"}, 1_920),
]


@pytest.mark.parametrize(("op", "shape", "kwargs", "before"), _BACKWARD_CASES)
def test_upsample_backward_counts_the_weights_as_the_kernel_computes_them(
    op, shape, kwargs, before
):
    """Each backward's count equals a port of its kernel, whose gradient equals torch's. The
    linear backward recomputes a dimension's weights at every index of the loops around it
    (bilinear: the column's per gradient element), so the weights are O(gradient elements)
    there; bicubic's both axes' per output pixel, and none when the sizes are unchanged (a
    copy, which was counted 48 per element). ``before``: the count until s25 (per gradient
    element only: linear 4, bilinear 12, trilinear 32, bicubic 48)."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    y = F.interpolate(x, **kwargs)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    dims = len(shape) - 2
    align = kwargs.get("align_corners", False)
    scales = _scales(kwargs, dims)
    if "bicubic" in op:
        values, expected = _bicubic_backward(grad, list(shape[2:]), align, scales)
    else:
        values, expected = _linear_backward(grad, list(shape[2:]), align, scales)
    torch.testing.assert_close(values, expected_grad.double(), rtol=1e-5, atol=1e-5)
    with gp.FPOCounter() as counter:
        F.interpolate(x, **kwargs).backward(grad)
    assert _op(counter.result, f"aten.{op}_backward", "backward") == expected
    assert expected != before


# -- antialiased: upsample_separable_Nd_kernel_impl and upsample_separable_Nd_backward_aa -------


def _aa_filter(mode, x):
    """``HelperInterp{Linear, Cubic, Lanczos}::aa_filter``."""
    x = _abs(x)
    if mode == "bilinear":
        return 1.0 - x if _cmp(x < 1.0) else _C(0.0)
    if mode == "bicubic":
        a = _C(-0.5)  # constexpr in the source, its sums computed as written
        if _cmp(x < 1.0):
            return ((a + 2) * x - (a + 3)) * x * x + 1
        if _cmp(x < 2.0):
            return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return _C(0.0)

    def sinc(v):
        if _cmp(v == 0.0):
            return _C(1.0)
        v = v * math.pi
        _C.ops += 1  # std::sin
        return _C(math.sin(v)) / v

    if _cmp(x < 3.0):
        return sinc(x) * sinc(x / 3.0)
    return _C(0.0)


_AA_TAPS = {"bilinear": 2, "bicubic": 4, "lanczos": 6}


def _f32(value):
    """``value`` held in a float32 (``scalar_t``), as the kernel holds it; not an op."""
    return _C(struct.unpack("f", struct.pack("f", float(value)))[0])


def _aa_support(mode, scale):
    """``support`` (a float32) and the widest window, as ``_compute_index_ranges_weights``
    (and the backward, with ``ceilf``) computes them."""
    taps = _AA_TAPS[mode]
    support = _f32((_C(taps) * 0.5) * scale if _cmp(scale >= 1.0) else _C(taps) * 0.5)
    _C.ops += 1  # ceil
    return support, math.ceil(float(support)) * 2 + 1


def _aa_weights(mode, i, size_in, scale, support, widest):
    """``_compute_indices_min_size_weights_aa``: ``(xmin, weights, wt_max)``. Its float32
    values rounded as the C++ types do (``center``, ``invscale``, the filter's argument,
    ``total_w``): a tap exactly at the filter's edge is 0 only in float32."""
    center = _f32(scale * (_C(i) + 0.5))
    invscale = _f32(1.0 / scale) if _cmp(scale >= 1.0) else _C(1.0)
    xmin = max(int(_f32(center - support) + 0.5), 0)
    xsize = min(int(_f32(center + support) + 0.5), size_in) - xmin
    xsize = min(max(xsize, 0), widest)
    weights, total = [], _C(0.0)
    for j in range(xsize):
        w = _f32(_aa_filter(mode, _f32((_f32(_C(j + xmin) - center) + 0.5) * invscale)))
        weights.append(w)
        total = _f32(total + w)
    wt_max = _C(0.0)
    if _cmp(total != 0.0):
        for j in range(xsize):
            weights[j] = weights[j] / total
            wt_max = _max(wt_max, weights[j])
    return xmin, weights, wt_max


def _aa_forward(x, size_out, mode, align_corners, scales):
    """``upsample_separable_Nd_kernel_impl``: W first (if it changes), then H, each pass its
    weights once (``_compute_index_ranges_weights``, with the running ``wt_max``) and per
    output ``output = t0 * w0; output += t_j * w_j``. ``(values, ops)``."""
    _C.ops = 0
    planes = x.double().tolist()
    h, w = x.shape[2:]
    oh, ow = size_out

    def weights(size_in, size_out_, scale_arg):
        scale = _f32(_scale(size_in, size_out_, align_corners, scale_arg))
        support, widest = _aa_support(mode, scale)
        out, wt_max = [], _C(0.0)
        for i in range(size_out_):
            xmin, ws, wt_max_i = _aa_weights(mode, i, size_in, scale, support, widest)
            wt_max = _max(wt_max, wt_max_i)
            out.append((xmin, ws))
        return out

    def interpolate(values, xmin, ws):
        result = _C(values[xmin]) * ws[0]
        for j in range(1, len(ws)):
            result = result + _C(values[xmin + j]) * ws[j]
        return result

    if w != ow:
        cols = weights(w, ow, scales[1])
        planes = [
            [[[interpolate(row, *cols[z]) for z in range(ow)] for row in p] for p in batch]
            for batch in planes
        ]
    if h != oh:
        rows = weights(h, oh, scales[0])
        planes = [
            [
                [[interpolate([r[z] for r in p], *rows[y]) for z in range(ow)] for y in range(oh)]
                for p in batch
            ]
            for batch in planes
        ]
    return torch.tensor(planes, dtype=torch.float64), _C.ops


def _aa_backward(grad, size_in, mode, align_corners, scales):
    """``upsample_separable_Nd_backward_aa``: the scales and supports once, a row's weights per
    output row, a column's per output pixel, then per plane ``wx[x] * wy[y] * g`` added into
    every input of the window. ``(values, ops)``."""
    _C.ops = 0
    h, w = size_in
    oh, ow = grad.shape[2:]
    scale_h = _f32(_scale(h, oh, align_corners, scales[0]))
    scale_w = _f32(_scale(w, ow, align_corners, scales[1]))
    support_h, widest_h = _aa_support(mode, scale_h)
    support_w, widest_w = _aa_support(mode, scale_w)
    g = grad.double().tolist()
    gin = [[_zeros(size_in) for _ in range(grad.shape[1])] for _ in range(grad.shape[0])]
    for y in range(oh):
        ymin, wy, _ = _aa_weights(mode, y, h, scale_h, support_h, widest_h)
        for z in range(ow):
            xmin, wx, _ = _aa_weights(mode, z, w, scale_w, support_w, widest_w)
            for n in range(grad.shape[0]):
                for c in range(grad.shape[1]):
                    value, plane = g[n][c][y][z], gin[n][c]
                    for j in range(len(wy)):
                        for i in range(len(wx)):
                            cell = plane[ymin + j][xmin + i]
                            plane[ymin + j][xmin + i] = cell + wx[i] * wy[j] * value
    return torch.tensor(gin, dtype=torch.float64), _C.ops


_AA_CASES = [
    # (mode, input shape, interpolate's keywords, before s25: forward, backward; now)
    ("bilinear", (1, 2, 8, 8), {"size": (2, 2)}, 440, 864),  # 706, 1,252
    ("bilinear", (1, 2, 5, 6), {"size": (3, 4)}, 264, 480),  # 505, 966
    ("bilinear", (1, 1, 6, 7), {"size": (3, 7), "align_corners": True}, 133, 429),  # 267, 1,087
    ("bicubic", (1, 2, 5, 6), {"scale_factor": 1.7}, 1_440, 5_148),  # 2,575, 10,605
    ("bicubic", (2, 1, 9, 7), {"scale_factor": 0.5}, 882, 2_808),  # 1,678, 4,551
    ("lanczos", (1, 1, 7, 9), {"size": (4, 5)}, 723, 2_886),  # 1,951, 6,220
    ("lanczos", (1, 2, 3, 4), {"size": (5, 4), "align_corners": True}, 200, 1_350),  # 519, 3,029
]


@pytest.mark.parametrize(("mode", "shape", "kwargs", "before", "before_backward"), _AA_CASES)
def test_antialiased_resize_counts_the_filter_weights(mode, shape, kwargs, before, before_backward):
    """Forward and backward equal ports of the separable kernel and its backward, whose values
    equal torch's: the filter evaluated per tap of every output index's window (bilinear 3 in
    its support, bicubic 9 or 12, Lanczos 12), its argument (3) and sum (1), the normalisation
    (2 per tap), the window's ends (4), the centre (2), ``invscale``; the backward computes the
    column's weights again for every output pixel. ``before``: the count until s25, the
    interpolation and the scatter only."""
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    interpolate = getattr(torch.ops.aten, f"_upsample_{mode}2d_aa")
    size = kwargs.get("size")
    factor = kwargs.get("scale_factor")
    align = kwargs.get("align_corners", False)
    scales = [factor, factor] if factor is not None else [None, None]

    def resize(a):
        if mode == "lanczos":  # not a mode of F.interpolate: the op, as torchvision calls it
            return interpolate(a, list(size), align)
        return F.interpolate(a, mode=mode, antialias=True, **kwargs)

    y = resize(x)
    size_out = list(y.shape[2:])
    values, expected = _aa_forward(x.detach(), size_out, mode, align, scales)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-4, atol=1e-5)
    grad = torch.randn_like(y)
    (expected_grad,) = torch.autograd.grad(y, x, grad)
    grad_values, expected_backward = _aa_backward(grad, list(shape[2:]), mode, align, scales)
    torch.testing.assert_close(grad_values, expected_grad.double(), rtol=1e-4, atol=1e-5)
    with gp.FPOCounter() as counter:
        resize(x).backward(grad)
    op = f"aten._upsample_{mode}2d_aa"
    assert _op(counter.result, op) == expected
    assert _op(counter.result, f"{op}_backward", "backward") == expected_backward
    assert (expected, expected_backward) != (before, before_backward)


# -- the FFT library a count assumed is in the result ---------------------------------------


@pytest.mark.parametrize("library", ["mkl", "pocketfft"])
def test_a_count_with_an_fft_says_which_fft_library_it_assumed(library, monkeypatch):
    """An ``rfft(norm="ortho")`` of (4, 8) counts 280 FPO on an MKL build and 272 on a
    pocketfft one (s24): the result now says which it assumed, in ``assumptions``, its JSON,
    both tables' summaries and ``greenprint fpo``'s output; a count with no FFT assumes
    nothing. The other library is selected by replacing the detection, as in s24's tests.
    (Before s25 the result had no such field: the library was only in docs/fpo.md.)"""
    from greenprint.fpo import _rules_spectral

    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: library)
    result = gp.count_fpo(
        lambda a: torch.fft.rfft(a, norm="ortho"), torch.randn(4, 8), backward=False
    )
    assert result.total == {"mkl": 280, "pocketfft": 272}[library]
    assert result.assumptions == {"fft_library": library}
    assert result.to_dict()["assumptions"] == {"fft_library": library}
    name = {"mkl": "MKL", "pocketfft": "pocketfft"}[library]
    for table in (result.table(), result.table(by="op")):
        assert f"FFT        counted as {name} runs it" in table
    assert result.times(3).assumptions == {"fft_library": library}
    x = torch.randn(8, requires_grad=True)
    backward = gp.count_fpo(lambda a: torch.fft.fft(a).abs().sum(), x)
    assert backward.assumptions == {"fft_library": library}
    plain = gp.count_fpo(lambda a: a * 2, torch.randn(4, 8), backward=False)
    assert plain.assumptions == {}
    assert "FFT  " not in plain.table()
    assert plain.to_dict()["assumptions"] == {}


def test_an_fft_on_a_cuda_tensor_is_counted_as_cufft_runs_it(monkeypatch):
    """cuFFT normalises an ``rfft``'s one-sided output, as MKL does (ATen's
    ``_fft_r2c_cufft``), whatever the build's CPU library: on a pocketfft build (Linux on Arm,
    a GH200) a CUDA ``rfft(norm="ortho")`` of (4, 8) was counted 272, pocketfft's, and said
    nothing of cuFFT. The CUDA tensor's library is selected by replacing the detection of the
    tensor's device (no GPU here), as the grid sampler's CUDA tests do."""
    from greenprint.fpo import _rules_spectral

    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: "pocketfft")
    monkeypatch.setattr(_rules_spectral, "fft_library", lambda input: "cufft")
    x = torch.randn(4, 8)
    result = gp.count_fpo(lambda a: torch.fft.rfft(a, norm="ortho"), x, backward=False)
    assert result.total == 280
    assert result.assumptions == {"fft_library": "cufft"}
    assert "FFT        counted as cuFFT runs it" in result.table()
    inverse = gp.count_fpo(
        lambda a: torch.fft.irfft(a, n=8, norm="ortho"),
        torch.randn(4, 5, dtype=torch.complex64),
        backward=False,
    )
    assert inverse.assumptions == {"fft_library": "cufft"}
    monkeypatch.setattr(_rules_spectral, "fft_library", _cpu_then_cuda())
    both = gp.count_fpo(lambda a: torch.fft.rfft(a) + torch.fft.rfft(a), x, backward=False)
    assert both.assumptions == {"fft_library": "cufft+pocketfft"}
    assert "counted as cuFFT and pocketfft runs it" in both.table()


def _cpu_then_cuda():
    """A detection answering the build's CPU library, then cuFFT."""
    answers = iter(["pocketfft", "cufft"])
    return lambda input: next(answers)


def test_the_fpo_command_prints_the_fft_library(tmp_path, monkeypatch, capsys):
    """``greenprint fpo`` prints the table, and with ``--json`` the result's dict: both carry
    the library of a model that runs an FFT (an FNet-style token mixer)."""
    from greenprint.cli import main
    from greenprint.fpo import _rules_spectral

    (tmp_path / "fnet.py").write_text(
        "import torch\n\n\n"
        "class Mixer(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.fft.fft2(x).real\n\n\n"
        "def build():\n"
        "    return Mixer()\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    library = _rules_spectral.fft_backend()
    assert main(["fpo", "fnet.py:build", "--input-shape", "2,4,8"]) == 0
    assert "FFT        counted as " in capsys.readouterr().out
    assert main(["fpo", "fnet.py:build", "--input-shape", "2,4,8", "--json"]) == 0
    # the command counts on the meta device by default: the FFT counted as the CPU's (s29)
    assumed = {"fft_library": library, "meta_device": "cpu"}
    assert json.loads(capsys.readouterr().out)["assumptions"] == assumed


# -- pocketfft's Bluestein plan scales n complex values --------------------------------------


@pytest.mark.parametrize(
    ("n", "bluestein"),
    [(49, False), (53, False), (181, False), (191, True), (211, True), (256, False), (422, False)],
)
def test_pocketfft_plans_bluestein_as_its_constructor_does(n, bluestein):
    """``pocketfft_r``'s constructor (``pocketfft_hdronly.h``), by hand: under 50, or ``p * p
    <= n`` for the largest prime factor ``p``, FFTPACK (49, 256); otherwise Bluestein when
    ``3 cost_guess(good_size_cmplx(2n - 1)) < 0.5 cost_guess(n)``, ``cost_guess`` the sum of
    the prime factors (over 5 times 1.1) times ``n``. 53: ``0.5 * 1.1 * 53^2`` = 1,545 against
    ``3 * (3 + 5 + 7.7) * 105`` = 4,946: FFTPACK. 181: 18,019 against ``3 * (3 + 24.2) *
    363`` = 29,621: FFTPACK. 191: 20,065 against ``3 * 17 * 384`` = 19,584: Bluestein. 211:
    24,487 against ``3 * 17 * 432`` = 22,032: Bluestein. 422 = 2 x 211: ``0.5 * (2 + 232.1) *
    422`` = 49,395 against ``3 * (7.7 + 2 * 12.1) * 847`` = 81,058 (847 = 7 x 11 x 11, the
    smallest such number from 843): FFTPACK."""
    from greenprint.fpo._rules_spectral import pocketfft_bluestein

    assert pocketfft_bluestein(n) is bluestein


@pytest.mark.parametrize(("n", "bluestein"), [(53, False), (211, True)])
def test_pocketfft_normalisation_under_bluestein(n, bluestein, monkeypatch):
    """On a pocketfft build (selected by replacing the detection, as s24's tests do): an
    ``rfft(norm="ortho")`` of (2, n) scales each transform's ``n`` packed real values (FFTPACK,
    ``copy_and_norm``) or, under Bluestein, ``n`` complex values in ``fftblue::fft``'s last
    multiply, ``special_mul(bk[m]) * fct``: 2n. ``irfft`` (its default ``1/n``) of (2, n // 2
    + 1) to length n the same. For 211 each was 211 per transform low (before s25: 2 x 211
    for both plans); MKL builds are unchanged."""
    from greenprint.fpo import _rules_spectral

    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: "pocketfft")
    textbook = int(2.5 * 2 * n * math.log2(n))
    per_transform = 2 * n if bluestein else n
    forward = gp.count_fpo(
        lambda a: torch.fft.rfft(a, norm="ortho"), torch.randn(2, n), backward=False
    )
    assert forward.by_op == {"aten._fft_r2c": textbook + 2 * per_transform}
    inverse = gp.count_fpo(
        lambda a: torch.fft.irfft(a, n=n),
        torch.randn(2, n // 2 + 1, dtype=torch.cfloat),
        backward=False,
    )
    assert inverse.by_op["aten._fft_c2r"] == textbook + 2 * per_transform
    unscaled = gp.count_fpo(lambda a: torch.fft.rfft(a), torch.randn(2, n), backward=False)
    assert unscaled.by_op == {"aten._fft_r2c": textbook}
    monkeypatch.setattr(_rules_spectral, "fft_backend", lambda: "mkl")
    mkl = gp.count_fpo(lambda a: torch.fft.rfft(a, norm="ortho"), torch.randn(2, n), backward=False)
    assert mkl.by_op == {"aten._fft_r2c": textbook + 2 * 2 * (n // 2 + 1)}


# -- grid_sample on CUDA: ATen's CUDA kernels (cuda/GridSampler.cu, GridSampler.cuh), ported ----


def _cu_unnormalize(x, size, align_corners, with_grad=False):
    """``grid_sampler_unnormalize(_set_grad)``: ``(value, multiplier)``."""
    mult = None
    if align_corners:
        if with_grad:
            mult = _C(size - 1) / 2
        return ((x + 1.0) / 2) * (size - 1), mult
    if with_grad:
        mult = _C(size) / 2
    return ((x + 1.0) * size - 1) / 2, mult


def _cu_safe_downgrade(x):
    """``safe_downgrade_to_int_range``: ``x > INT_MAX - 1 || x < INT_MIN || !isfinite(x)``."""
    _cmp(x > 2**31 - 2)
    _cmp(x < -(2**31))
    _cmp(not math.isfinite(float(x)))
    return x


def _cu_compute_coordinates(x, size, padding):
    """``compute_coordinates``: zeros none, border the clip (2); then the int-range check."""
    if padding == 1:
        x = _min(size - 1, _max(x, 0.0))
    return _cu_safe_downgrade(x)


def _cu_source_index(x, size, padding, align_corners, with_grad=False):
    """``grid_sampler_compute_source_index(_set_grad)`` (zeros and border): ``(ix, mult)``."""
    x, mult = _cu_unnormalize(x, size, align_corners, with_grad)
    if padding == 1 and with_grad:  # clip_coordinates_set_grad: in <= 0, in >= max; * grad
        assert not _cmp(x <= 0) and not _cmp(x >= size - 1)  # inside in these tests
        mult = mult * 1.0
    elif padding == 1:
        x = _min(size - 1, _max(x, 0.0))
    return _cu_safe_downgrade(x), mult


def _cu_cubic_grad(t):
    """``get_cubic_coefficients_grad`` (A = -0.75): 32."""
    a = _C(-0.75)
    x = -1 - t
    c0 = (-3 * a * x - 10 * a) * x - 8 * a
    x = -t
    _C.ops += 1  # the negation
    c1 = (-3 * (a + 2) * x - 2 * (a + 3)) * x
    x = 1 - t
    c2 = (3 * (a + 2) * x - 2 * (a + 3)) * x
    x = 2 - t
    c3 = (3 * a * x - 10 * a) * x + 8 * a
    return [c0, c1, c2, c3]


def _cu_grid_sample_2d(image, grid, mode, padding, align_corners, grad=None):
    """``grid_sampler_2d_kernel`` (``grad`` None) or ``grid_sampler_2d_backward_kernel`` with the
    input's gradient, in Python: ``(output or (grad_input, grad_grid), ops)``."""
    _C.ops = 0
    n_, c_, h, w = image.shape
    _, oh, ow, _ = grid.shape
    img, g = image.double().tolist(), grid.double().tolist()
    out = torch.zeros(n_, c_, oh, ow, dtype=torch.float64)
    gin = [[_zeros([h, w]) for _ in range(c_)] for _ in range(n_)]
    ggrid = torch.zeros(n_, oh, ow, 2, dtype=torch.float64)
    go = grad.double().tolist() if grad is not None else None
    backward = grad is not None
    skipped = _CU_SKIPPED
    skipped.clear()

    def value(plane, row, col):
        return _C(plane[row][col]) if 0 <= row < h and 0 <= col < w else _C(0.0)

    def bounded(plane, px, py):  # get_value_bounded
        px = _cu_compute_coordinates(px, w, padding)
        py = _cu_compute_coordinates(py, h, padding)
        return value(plane, int(py), int(px))

    def add_bounded(plane, px, py, delta):  # add_value_bounded
        px = int(_cu_compute_coordinates(px, w, padding))
        py = int(_cu_compute_coordinates(py, h, padding))
        if 0 <= py < h and 0 <= px < w:
            plane[py][px] = plane[py][px] + delta
        else:  # safe_add_2d skips it: the rule counts every tap's add, an upper bound
            skipped.append((px, py))

    for b in range(n_):
        for y in range(oh):
            for z in range(ow):
                x0, y0 = _C(g[b][y][z][0]), _C(g[b][y][z][1])
                ix, gx_mult = _cu_source_index(x0, w, padding, align_corners, backward)
                iy, gy_mult = _cu_source_index(y0, h, padding, align_corners, backward)
                if mode == 0:
                    ix_nw, iy_nw = _floor(ix), _floor(iy)
                    ix_se, iy_se = ix_nw + 1, iy_nw + 1
                    nw = (ix_se - ix) * (iy_se - iy)
                    ne = (ix - ix_nw) * (iy_se - iy)
                    sw = (ix_se - ix) * (iy - iy_nw)
                    se = (ix - ix_nw) * (iy - iy_nw)
                    corners = [(iy_nw, ix_nw, nw), (iy_nw, ix_se, ne)]
                    corners += [(iy_se, ix_nw, sw), (iy_se, ix_se, se)]
                    gix, giy = _C(0.0), _C(0.0)
                    for ch in range(c_):
                        plane = img[b][ch]
                        if not backward:
                            acc = _C(0.0)
                            for row, col, wt in corners:
                                acc = acc + value(plane, row, col) * wt
                            out[b, ch, y, z] = float(acc)
                            continue
                        gout = go[b][ch][y][z]
                        for row, col, wt in corners:  # safe_add_2d: an atomic add
                            gin[b][ch][row][col] = gin[b][ch][row][col] + wt * gout
                        v = [value(plane, row, col) for row, col, _ in corners]
                        gix = gix - v[0] * (iy_se - iy) * gout
                        giy = giy - v[0] * (ix_se - ix) * gout
                        gix = gix + v[1] * (iy_se - iy) * gout
                        giy = giy - v[1] * (ix - ix_nw) * gout
                        gix = gix - v[2] * (iy - iy_nw) * gout
                        giy = giy + v[2] * (ix_se - ix) * gout
                        gix = gix + v[3] * (iy - iy_nw) * gout
                        giy = giy + v[3] * (ix - ix_nw) * gout
                    if backward:
                        ggrid[b, y, z, 0] = float(gx_mult * gix)
                        ggrid[b, y, z, 1] = float(gy_mult * giy)
                elif mode == 1:
                    col, row = _nearest(ix), _nearest(iy)
                    for ch in range(c_):
                        if backward:
                            if 0 <= row < h and 0 <= col < w:
                                cell = gin[b][ch][row][col]
                                gin[b][ch][row][col] = cell + go[b][ch][y][z]
                        else:
                            out[b, ch, y, z] = float(value(img[b][ch], row, col))
                else:
                    ix, gx_mult = _cu_unnormalize(x0, w, align_corners, backward)
                    iy, gy_mult = _cu_unnormalize(y0, h, align_corners, backward)
                    ix_nw, iy_nw = _C(_floor(ix)), _C(_floor(iy))
                    tx, ty = ix - ix_nw, iy - iy_nw
                    if not backward:
                        for ch in range(c_):
                            plane = img[b][ch]
                            rows = []
                            for i in range(4):
                                taps = [
                                    bounded(plane, ix_nw - 1, iy_nw - 1 + i),
                                    bounded(plane, ix_nw + 0, iy_nw - 1 + i),
                                    bounded(plane, ix_nw + 1, iy_nw - 1 + i),
                                    bounded(plane, ix_nw + 2, iy_nw - 1 + i),
                                ]
                                rows.append(_cubic_interp(taps, tx))
                            out[b, ch, y, z] = float(_cubic_interp(rows, ty))
                        continue
                    cx, cy = _cubic_coefficients(tx), _cubic_coefficients(ty)
                    cxg, cyg = _cu_cubic_grad(tx), _cu_cubic_grad(ty)
                    gix, giy = _C(0.0), _C(0.0)
                    for ch in range(c_):
                        gout = go[b][ch][y][z]
                        for i in range(4):
                            for j in range(4):
                                add_bounded(
                                    gin[b][ch], ix_nw - 1 + i, iy_nw - 1 + j, gout * cx[i] * cy[j]
                                )
                                v = bounded(img[b][ch], ix_nw - 1 + i, iy_nw - 1 + j)
                                gix = gix - v * cxg[i] * cy[j] * gout
                                giy = giy - v * cyg[j] * cx[i] * gout
                    ggrid[b, y, z, 0] = float(gx_mult * gix)
                    ggrid[b, y, z, 1] = float(gy_mult * giy)
    if backward:
        return (torch.tensor(gin, dtype=torch.float64), ggrid), _C.ops
    return out, _C.ops


_CU_SKIPPED: list = []
"""The taps whose atomic add the last ported backward skipped (outside the input)."""


def _nearest(x):
    """``::round`` (half away from zero): 1."""
    _C.ops += 1
    return int(math.floor(abs(float(x)) + 0.5) * (1 if float(x) >= 0 else -1))


def _cubic_interp(taps, t):
    """``cubic_interp1d``: the coefficients (35) and ``x0 c0 + x1 c1 + x2 c2 + x3 c3`` (7)."""
    c = _cubic_coefficients(t)
    return taps[0] * c[0] + taps[1] * c[1] + taps[2] * c[2] + taps[3] * c[3]


@pytest.fixture
def _cuda_kernels(monkeypatch):
    """Count ``grid_sampler_*`` as on a CUDA tensor: the rule reads the device from the input
    (``kernel_device``), replaced here, as s24's tests replace the FFT library's detection."""
    from greenprint.fpo import _rules_grid_sample

    monkeypatch.setattr(_rules_grid_sample, "kernel_device", lambda tensor: "cuda")


@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize(("padding", "align_corners"), [(0, False), (1, True), (0, True)])
def test_cuda_grid_sample_2d_counts_what_the_cuda_kernel_performs(
    mode, padding, align_corners, _cuda_kernels
):
    """The forward and backward counts on CUDA equal a port of ATen's CUDA kernels, whose
    values and gradients equal torch's (x (1, 2, 4, 5), grid (1, 3, 3, 2) inside the image, so
    every corner is in bounds and no clip binds; a bicubic tap outside the input skips its
    atomic add, which the rule counts, an upper bound as on the CPU). The CUDA kernels are
    scalar, one thread per location, like the CPU fallback, with
    ``safe_downgrade_to_int_range`` (3 compares) after every coordinate; the vectorised CPU
    kernel counted before (s24) shares the corner products. Zeros without align_corners,
    bilinear: forward ``9 (2 * 7 + 14) + 18 * 8`` = 396 (CPU 270), backward ``9 (2 * 8 + 16)
    + 18 * 40`` = 1,008 (CPU 558)."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 4, 5, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2) - 0.5).requires_grad_(True)
    kwargs = {
        "mode": ["bilinear", "nearest", "bicubic"][mode],
        "padding_mode": ["zeros", "border"][padding],
        "align_corners": align_corners,
    }
    values, expected = _cu_grid_sample_2d(
        image.detach(), grid.detach(), mode, padding, align_corners
    )
    y = F.grid_sample(image, grid, **kwargs)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-5, atol=1e-5)
    gout = torch.randn_like(y)
    (gin, ggrid), expected_backward = _cu_grid_sample_2d(
        image.detach(), grid.detach(), mode, padding, align_corners, grad=gout
    )
    expected_backward += len(_CU_SKIPPED)  # bicubic, zeros: taps outside, counted anyway
    torch_gin, torch_ggrid = torch.autograd.grad(y, (image, grid), gout)
    torch.testing.assert_close(gin, torch_gin.double(), rtol=1e-4, atol=1e-5)
    if mode != 1:
        torch.testing.assert_close(ggrid, torch_ggrid.double(), rtol=1e-4, atol=1e-4)
    with gp.FPOCounter() as counter:
        F.grid_sample(image, grid, **kwargs).backward(gout)
    assert _op(counter.result, "aten.grid_sampler_2d") == expected
    assert _op(counter.result, "aten.grid_sampler_2d_backward", "backward") == expected_backward
    if (mode, padding, align_corners) == (0, 0, False):
        assert (expected, expected_backward) == (396, 1_008)


def _cu_grid_sample_3d(image, grid, mode, padding, align_corners, grad=None):
    """``grid_sampler_3d_kernel`` / ``grid_sampler_3d_backward_kernel`` (input's gradient
    too), trilinear and nearest, in Python: ``(output or (grad_input, grad_grid), ops)``."""
    _C.ops = 0
    n_, c_, d, h, w = image.shape
    _, od, oh, ow, _ = grid.shape
    img, g = image.double().tolist(), grid.double().tolist()
    backward = grad is not None
    go = grad.double().tolist() if backward else None
    out = torch.zeros(n_, c_, od, oh, ow, dtype=torch.float64)
    gin = [[_zeros([d, h, w]) for _ in range(c_)] for _ in range(n_)]
    ggrid = torch.zeros(n_, od, oh, ow, 3, dtype=torch.float64)
    sizes = (w, h, d)
    for b in range(n_):
        for position in _positions([od, oh, ow]):
            coords, mults = [], []
            for axis in range(3):
                x = _C(g[b][position[0]][position[1]][position[2]][axis])
                value, mult = _cu_source_index(x, sizes[axis], padding, align_corners, backward)
                coords.append(value)
                mults.append(mult)
            if mode == 1:
                ix, iy, iz = (_nearest(v) for v in coords)
                for ch in range(c_):
                    if backward:
                        cell = gin[b][ch][iz][iy][ix]
                        gin[b][ch][iz][iy][ix] = (
                            cell + go[b][ch][position[0]][position[1]][position[2]]
                        )
                    else:
                        out[(b, ch, *position)] = img[b][ch][iz][iy][ix]
                continue
            low = [_floor(v) for v in coords]

            def factor(axis, corner, low=low, coords=coords):
                """``(i1 - i)`` for the low corner, ``(i - i0)`` for the high one: 1."""
                if corner[axis] == 0:
                    return (low[axis] + 1) - coords[axis]
                return coords[axis] - low[axis]

            corners = list(_positions([2, 2, 2]))  # (dz, dy, dx) -> (x, y, z) factors
            weights = {}
            for corner in corners:
                fx, fy, fz = (factor(a, corner[::-1]) for a in range(3))
                weights[corner] = fx * fy * fz
            grads = [_C(0.0), _C(0.0), _C(0.0)]
            for ch in range(c_):
                plane = img[b][ch]
                acc = _C(0.0)
                for corner in corners:
                    cz, cy, cx = (low[2] + corner[0], low[1] + corner[1], low[0] + corner[2])
                    v = _C(plane[cz][cy][cx])
                    if not backward:
                        acc = acc + v * weights[corner]
                        continue
                    gout = go[b][ch][position[0]][position[1]][position[2]]
                    cell = gin[b][ch][cz][cy][cx]
                    gin[b][ch][cz][cy][cx] = cell + weights[corner] * gout
                    for axis in range(3):
                        others = [factor(a, corner[::-1]) for a in range(3) if a != axis]
                        term = v * others[0] * others[1] * gout
                        high = corner[::-1][axis] == 1
                        grads[axis] = grads[axis] + term if high else grads[axis] - term
                if not backward:
                    out[(b, ch, *position)] = float(acc)
            if backward:
                for axis in range(3):
                    ggrid[(b, *position, axis)] = float(mults[axis] * grads[axis])
    if backward:
        return (torch.tensor(gin, dtype=torch.float64), ggrid), _C.ops
    return out, _C.ops


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize(("padding", "align_corners"), [(0, False), (1, True)])
def test_cuda_grid_sample_3d_counts_what_the_cuda_kernel_performs(
    mode, padding, align_corners, _cuda_kernels
):
    """3-D on CUDA: the CPU scalar kernel's arithmetic with ``safe_downgrade_to_int_range``
    after each coordinate (3 per coordinate); the nearest backward rounds only when the input
    needs a gradient. x (1, 2, 3, 4, 5), grid (1, 2, 2, 3, 3) inside the input, 12 locations,
    24 output elements; trilinear zeros forward ``12 (3 * 7 + 43) + 24 * 16`` = 1,152 (CPU:
    1,044), backward ``12 (3 * 8 + 46) + 24 * 160`` = 4,680 (CPU: 4,572)."""
    torch.manual_seed(0)
    image = torch.randn(1, 2, 3, 4, 5, requires_grad=True)
    grid = ((torch.rand(1, 2, 2, 3, 3) - 0.5) * 1.2).requires_grad_(True)
    kwargs = {
        "mode": ["bilinear", "nearest"][mode],
        "padding_mode": ["zeros", "border"][padding],
        "align_corners": align_corners,
    }
    values, expected = _cu_grid_sample_3d(
        image.detach(), grid.detach(), mode, padding, align_corners
    )
    y = F.grid_sample(image, grid, **kwargs)
    torch.testing.assert_close(values, y.detach().double(), rtol=1e-5, atol=1e-5)
    gout = torch.randn_like(y)
    (gin, ggrid), expected_backward = _cu_grid_sample_3d(
        image.detach(), grid.detach(), mode, padding, align_corners, grad=gout
    )
    torch_gin, torch_ggrid = torch.autograd.grad(y, (image, grid), gout)
    torch.testing.assert_close(gin, torch_gin.double(), rtol=1e-4, atol=1e-5)
    if mode == 0:
        torch.testing.assert_close(ggrid, torch_ggrid.double(), rtol=1e-4, atol=1e-4)
    with gp.FPOCounter() as counter:
        F.grid_sample(image, grid, **kwargs).backward(gout)
    assert _op(counter.result, "aten.grid_sampler_3d") == expected
    assert _op(counter.result, "aten.grid_sampler_3d_backward", "backward") == expected_backward
    if (mode, padding, align_corners) == (0, 0, False):
        assert (expected, expected_backward) == (1_152, 4_680)


def test_grid_sample_on_the_cpu_and_meta_keeps_the_cpu_kernels_counts():
    """Without a CUDA tensor the rules count the CPU kernels, as before: x (1, 2, 4, 5), grid
    (1, 3, 3, 2), bilinear zeros: ``9 (2 * 3 + 10) + 18 * 7`` = 270 forward (vectorised),
    ``9 (2 * 3 + 12) + 18 * 22`` = 558 backward; on meta the same
    (no device to read: the CPU build's kernels)."""
    image = torch.randn(1, 2, 4, 5, requires_grad=True)
    grid = torch.rand(1, 3, 3, 2) - 0.5
    cpu = gp.count_fpo(lambda a: F.grid_sample(a, grid, align_corners=False), image)
    assert _op(cpu, "aten.grid_sampler_2d") == 270
    assert _op(cpu, "aten.grid_sampler_2d_backward", "backward") == 558
    meta = gp.count_fpo(
        lambda a: F.grid_sample(a, grid.to("meta"), align_corners=False),
        torch.randn(1, 2, 4, 5, device="meta"),
        backward=False,
    )
    assert _op(meta, "aten.grid_sampler_2d") == 270
