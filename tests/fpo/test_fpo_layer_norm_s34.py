"""Layer norm against ports of ATen's CPU kernels that count every operation (audit s34).

``LayerNormKernelImpl`` and ``LayerNormBackwardKernelImpl`` (``native/cpu/layer_norm_kernel.cpp``)
and ``RowwiseMoments`` (``native/cpu/moments_utils.h``: Welford over vectors of ``V`` lanes in
chunks of 16 vectors, merged in a cascade, the tail by scalar Welford, the lanes merged last)
written out with :class:`Counted` floats, their values checked against torch's (forward and
backward, affine or not, each gradient asked alone), their counts equal to the counter's on
CPU tensors and on meta copies. ``V`` is ATen's AVX2 vectors' (``Vectorized<double>::size()``
4, float 8: the rules count the AVX2 kernels on every machine, an AVX-512 build merging its
16-float vectors differs by a few FPO per row; the values do not depend on it), the threads
``torch.get_num_threads()``.

The forward is ``(x + bias) * rstd * gamma + beta`` with ``bias = -mean`` (the form torch 2.13
computes, bit for bit in float32), 4 per element with or without weight and bias; before s34
the rule counted 5 per element + 4 per row + 1 per element each for weight and bias.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo._rules_norm import cpu_lanes  # noqa: E402


def _sqrt(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.sqrt(float(v)))


def _neg(v: float) -> Counted:
    Counted.ops += 1
    return Counted(-float(v))


def _ceil_log2(x: int) -> int:
    return 1 if x <= 2 else (x - 1).bit_length()


def rowwise_moments(xs, lanes):
    """``RowwiseMomentsImpl``: (mean, biased variance) of one row, every op counted."""
    n_all = len(xs)
    n = n_all // lanes
    m = -(-n // 16)
    depth = _ceil_log2(m)
    zero = [Counted(0.0)] * lanes
    m0_stk = [0] * depth
    m1_stk = [list(zero) for _ in range(depth)]
    m2_stk = [list(zero) for _ in range(depth)]
    c_vecs = [1.0 / (i + 1) for i in range(16)]  # a static table, computed once

    def add_moments_vec(m0_add, m1_add, m2_add, k):
        total = m0_stk[k] + m0_add
        c = Counted(0.0) if total == 0 else Counted(m0_add) / total
        delta = [a - b for a, b in zip(m1_add, m1_stk[k], strict=True)]
        m1_stk[k] = [b + c * d for b, d in zip(m1_stk[k], delta, strict=True)]
        m2_stk[k] = [
            b2 + (a2 + d * d * c * m0_stk[k])
            for b2, a2, d in zip(m2_stk[k], m2_add, delta, strict=True)
        ]
        m0_stk[k] = total

    for i in range(m):
        base = i * 16 * lanes
        m0 = min(16, n - i * 16)
        m1, m2 = list(zero), list(zero)
        for j in range(m0):
            x = xs[base + j * lanes : base + (j + 1) * lanes]
            delta = [a - b for a, b in zip(x, m1, strict=True)]
            m1 = [b + d * c_vecs[j] for b, d in zip(m1, delta, strict=True)]
            m2 = [b + d * (a - c) for b, d, a, c in zip(m2, delta, x, m1, strict=True)]
        add_moments_vec(m0, m1, m2, 0)
        mask, j = i + 1, 1
        while j < depth and (mask & 1) == 0:
            add_moments_vec(m0_stk[j - 1], m1_stk[j - 1], m2_stk[j - 1], j)
            m0_stk[j - 1], m1_stk[j - 1], m2_stk[j - 1] = 0, list(zero), list(zero)
            mask >>= 1
            j += 1
    for i in range(1, depth):
        add_moments_vec(m0_stk[i], m1_stk[i], m2_stk[i], 0)
    m0, m1, m2 = 0, Counted(0.0), Counted(0.0)
    for x in xs[n * lanes :]:
        delta = x - m1
        m0 += 1
        m1 = m1 + delta / m0
        m2 = m2 + delta * (x - m1)
    for lane in range(lanes):  # AddMoments(n, m1_arr[i], m2_arr[i], m0, m1, m2)
        total = m0 + n
        c = Counted(0.0) if total == 0 else Counted(n) / total
        delta = m1_stk[0][lane] - m1
        m1 = m1 + c * delta
        m2 = m2 + (m2_stk[0][lane] + delta * delta * c * m0)
        m0 = total
    return m1, m2 / n_all


def port_forward(x, w, b, eps, lanes):
    """(output rows, means, rstds, FPO) of ``LayerNormKernelImplInternal``."""
    size = x.shape[-1] if x.dim() else 1
    rows = [[Counted(v) for v in row] for row in x.reshape(-1, size).tolist()]
    ws = [Counted(v) for v in w.tolist()] if w is not None else [Counted(1.0)] * size
    bs = [Counted(v) for v in b.tolist()] if b is not None else [Counted(0.0)] * size
    Counted.ops = 0
    out, means, rstds = [], [], []
    for row in rows:
        mean, var = rowwise_moments(row, lanes)
        rstd = Counted(1.0) / _sqrt(var + eps)
        bias = _neg(mean)
        out.append([(v + bias) * rstd * g + be for v, g, be in zip(row, ws, bs, strict=True)])
        means.append(mean)
        rstds.append(rstd)
    return out, means, rstds, Counted.ops


def _reduce(values):
    """``vec::reduce_all`` / ``map*_reduce_all``: from the first value, ``n - 1`` adds."""
    acc = values[0]
    for v in values[1:]:
        acc = acc + v
    return acc


def port_backward(g, x, mean, rstd, w, mask, threads):
    """(grad_input rows, grad_weight, grad_bias, FPO) of ``LayerNormBackwardKernelImpl``."""
    size = x.shape[-1]
    xs = [[Counted(v) for v in row] for row in x.reshape(-1, size).tolist()]
    gs = [[Counted(v) for v in row] for row in g.reshape(-1, size).tolist()]
    ws = [Counted(v) for v in w.tolist()] if w is not None else None
    Counted.ops = 0
    scale = Counted(1.0) / size
    buffers = mask[1] or mask[2]
    dgamma_buf = [[Counted(0.0)] * size for _ in range(threads)]
    dbeta_buf = [[Counted(0.0)] * size for _ in range(threads)]
    grad_in = []
    for i, (xr, gr) in enumerate(zip(xs, gs, strict=True)):
        t = i % threads
        mu, a = Counted(mean[i]), Counted(rstd[i])
        if mask[1]:
            b = _neg(a) * mu
            dgamma_buf[t] = [
                acc + dy * (a * v + b) for acc, dy, v in zip(dgamma_buf[t], gr, xr, strict=True)
            ]
        if mask[2]:
            dbeta_buf[t] = [acc + dy for acc, dy in zip(dbeta_buf[t], gr, strict=True)]
        if mask[0]:
            if ws is None:
                ds = _reduce([dy * v for dy, v in zip(gr, xr, strict=True)])
                db = _reduce(gr)
            else:
                ds = _reduce([dy * v * gm for dy, v, gm in zip(gr, xr, ws, strict=True)])
                db = _reduce([dy * gm for dy, gm in zip(gr, ws, strict=True)])
            b = (db * mu - ds) * a * a * a * scale
            c = _neg(b) * mu - db * a * scale
            if ws is None:
                grad_in.append([a * dy + b * v + c for dy, v in zip(gr, xr, strict=True)])
            else:
                grad_in.append(
                    [a * dy * gm + b * v + c for dy, gm, v in zip(gr, ws, xr, strict=True)]
                )
    grad_w = grad_b = None
    if buffers:
        grad_w, grad_b = [], []
        for j in range(size):
            dg, dbe = Counted(0.0), Counted(0.0)
            for t in range(threads):
                dg = dg + dgamma_buf[t][j]
                dbe = dbe + dbeta_buf[t][j]
            grad_w.append(dg)
            grad_b.append(dbe)
    return grad_in, grad_w, grad_b, Counted.ops


def _count(fn, *args):
    with gp.FPOCounter() as counter:
        fn(*args)
    found = {k: v for k, v in counter.result.by_op.items() if "layer_norm" in k}
    assert len(found) == 1, found
    return next(iter(found.values()))


def _t(values):
    return torch.tensor([[float(v) for v in row] for row in values], dtype=torch.float64)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 16), (4, 40), (2, 300), (1, 1030)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("mask", [(True, True, True), (True, False, False), (False, True, True)])
def test_layer_norm_equals_the_ported_cpu_kernels(shape, affine, mask):
    lanes, threads = cpu_lanes(8), torch.get_num_threads()
    size = shape[-1]
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 1
    w = torch.randn(size, dtype=torch.float64) if affine else None
    b = torch.randn(size, dtype=torch.float64) if affine else None

    def forward(x, w, b):
        return torch.ops.aten.native_layer_norm(x, [size], w, b, 1e-5)

    out, mean, rstd = forward(x, w, b)
    ref, means, rstds, ops = port_forward(x, w, b, 1e-5, lanes)
    torch.testing.assert_close(out.reshape(-1, size), _t(ref))
    torch.testing.assert_close(mean.reshape(-1), _t([means])[0])
    torch.testing.assert_close(rstd.reshape(-1), _t([rstds])[0])
    assert _count(forward, x, w, b) == ops
    meta = [t.to("meta") if t is not None else None for t in (x, w, b)]
    assert _count(forward, *meta) == ops

    if not affine and not mask[0]:
        return
    mask = list(mask) if affine else [True, False, False]
    g = torch.randn(*shape, dtype=torch.float64)

    def backward(g, x, mean, rstd, w, b):
        return torch.ops.aten.native_layer_norm_backward(g, x, [size], mean, rstd, w, b, mask)

    gi, gw, gb = backward(g, x, mean, rstd, w, b)
    ref_gi, ref_gw, ref_gb, ops = port_backward(
        g, x, mean.reshape(-1).tolist(), rstd.reshape(-1).tolist(), w, mask, threads
    )
    if mask[0]:
        torch.testing.assert_close(gi.reshape(-1, size), _t(ref_gi))
    if mask[1]:
        torch.testing.assert_close(gw, _t([ref_gw])[0])
    if mask[2]:
        torch.testing.assert_close(gb, _t([ref_gb])[0])
    assert _count(backward, g, x, mean, rstd, w, b) == ops
    meta = [t.to("meta") if t is not None else None for t in (g, x, mean, rstd, w, b)]
    assert _count(backward, *meta) == ops


@pytest.mark.parametrize("size", [7, 64, 300, 1030])
def test_float32_rows_count_with_the_float_vectors(size):
    """A float32 input's moments run on ``Vectorized<float>`` (8 lanes), twice the double
    lanes: the port with those lanes counts what the counter counts."""
    x = torch.randn(3, size)
    ln = torch.nn.LayerNorm(size)
    with torch.no_grad():
        out = ln(x)
    w, b = ln.weight.double(), ln.bias.double()
    ref, _, _, ops = port_forward(x.double(), w, b, 1e-5, cpu_lanes(4))
    torch.testing.assert_close(out, _t(ref).float(), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        assert _count(ln, x) == ops
    assert (cpu_lanes(4), cpu_lanes(8)) == (8, 4)


def test_layer_norm_by_hand():
    """LayerNorm(8) on (3, 5, 8), 15 rows of 8 float32 values: one vector of 8 lanes per row,
    one Welford chunk: 6 per value (48), the chunk merged into the stack (8 * 8 + 1 = 65), the
    8 lanes merged into the (empty) tail (9 each: 72), ``m2 / N`` (1), ``rstd`` (3), ``-mean``
    (1), ``(x + bias) * rstd * w + b`` (32): 222 per row, 3,330 in all; it was 7 * 120 +
    4 * 15 = 900. Backward from a contiguous gradient, everything asked, on one thread: ``1 /
    N`` once; per row the weight's ``b`` (2) and the input's ``b``, ``c`` (11) less 2 for the
    two reductions; per value 4 + 1 + 10; per column the threads' sums (2): 1 + 15 * 11 + 120 *
    15 + 16 = 1,982 (it was 13 * 120 + 2 * 15 = 1,590)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ln = torch.nn.LayerNorm(8)
        x = torch.randn(3, 5, 8, requires_grad=True)
        with gp.FPOCounter() as c:
            ln(x).backward(torch.ones(3, 5, 8))
    finally:
        torch.set_num_threads(previous)
    assert c.result.by_op["aten.native_layer_norm"] == 15 * 222 == 3_330
    assert c.result.by_op["aten.native_layer_norm_backward"] == 1_982
