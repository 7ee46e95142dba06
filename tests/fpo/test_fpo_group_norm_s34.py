"""Group norm against ports of ATen's CPU kernels that count every operation (audit s34).

``GroupNormKernelImpl`` and ``GroupNormBackwardKernelImpl`` (``native/cpu/group_norm_kernel.cpp``,
torch 2.13) written out with :class:`Counted` floats: every add, subtract, multiply and divide is
counted, ``sqrt``, ``max`` and negations by the helpers (1 each). Their values are checked against
torch's (forward and backward, affine or not, contiguous and channels-last), so each port is the
op; the counter must count what the port counted, on CPU tensors and on meta copies of them
(which keep the strides: ``suggest_memory_format`` picks the kernel).

The kernels: contiguous, per group ``RowwiseMoments`` (layer norm's Welford, ported in
``test_fpo_layer_norm_s34``) and ``(x - mean) * rstd`` or, with a weight or bias, ``scale * x +
bias`` with a scale and bias per channel; channels-last under 1024 positions per channel, per
group the sums of ``x`` and ``x * x`` in vectors of ``V`` lanes (AVX2's: 4 doubles, 8 floats)
summed across the lanes, from 1024 on the same sums into per-thread buffers of all channels,
summed over the threads (``torch.get_num_threads()``). The backward: contiguous ``ds = sum(g x)``
and ``db = sum(g)`` per channel, then per group their weighted sums, ``c2``, ``c3`` and ``c1 g +
c2 x + c3``; channels-last under 2048 positions per group, from 2048 on per-thread buffers. A
horizontal sum of a vector is ``V - 1`` adds (the lanes of a part-filled vector hold zeros).

Before s34 the rules counted ``5N + 4`` per group + N each for weight and bias forward, the
backward ``9N`` (+ N with a weight) + 2 per group for the input's gradient, 2N for the weight's
(4N without the input's), N for the bias's.
"""

from __future__ import annotations

import functools
import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402
from test_fpo_layer_norm_s34 import rowwise_moments  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo._rules_norm import cpu_lanes  # noqa: E402


def _sqrt(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.sqrt(float(v)))


def _max0(v: float) -> Counted:
    Counted.ops += 1
    return Counted(max(float(v), 0.0))


def _neg(v: float) -> Counted:
    Counted.ops += 1
    return Counted(-float(v))


def _zeros(k):
    return [Counted(0.0)] * k


def _hsum(lanes_values, lanes):
    """``vec_reduce_all`` of one vector: its ``V`` lanes (zeros past the values), ``V - 1`` adds."""
    values = list(lanes_values) + _zeros(lanes - len(lanes_values))
    acc = values[0]
    for v in values[1:]:
        acc = acc + v
    return acc


def _reduce(values):
    """``map2_reduce_all`` / ``reduce_all``: from the first value, ``n - 1`` adds."""
    acc = values[0]
    for v in values[1:]:
        acc = acc + v
    return acc


def _layout(x, channels_last):
    """``x`` as nested lists: ``[n][c][m]`` contiguous, ``[n][m][c]`` channels-last."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    if channels_last:
        flat = flat.transpose(1, 2)
    return [[[Counted(v) for v in row] for row in plane] for plane in flat.tolist()]


def _params(t, c, default):
    return [Counted(v) for v in t.tolist()] if t is not None else [Counted(default)] * c


def _thread(i, count, threads):
    """Which thread ``parallel_for`` gives item ``i`` of ``count`` (any split counts the same)."""
    return i * threads // count


def port_forward(x, w, b, groups, eps, lanes, threads, channels_last):
    """(output ``[n][c][m]``, means, rstds, FPO) of ``GroupNormKernelImpl``."""
    n, c = x.shape[:2]
    hw = x.numel() // (n * c)
    d = c // groups
    xs = _layout(x, channels_last)
    ws, bs = _params(w, c, 1.0), _params(b, c, 0.0)
    affine = w is not None or b is not None
    y = [[[None] * hw for _ in range(c)] for _ in range(n)]
    means, rstds = [], []
    Counted.ops = 0
    if not channels_last:
        for i in range(n * groups):
            s, g = divmod(i, groups)
            row = [v for j in range(d) for v in xs[s][g * d + j]]
            mean, var = rowwise_moments(row, lanes)
            rstd = Counted(1.0) / _sqrt(_max0(var) + eps)
            for j in range(d):
                ch = g * d + j
                if not affine:
                    y[s][ch] = [(v - mean) * rstd for v in xs[s][ch]]
                    continue
                scale = rstd * ws[ch]
                bias = _neg(scale) * mean + bs[ch]
                y[s][ch] = [scale * v + bias for v in xs[s][ch]]
            means.append(mean)
            rstds.append(rstd)
        return y, means, rstds, Counted.ops

    inv = Counted(1.0) / (d * hw)

    def stats(total, squares):
        mean = total * inv
        rstd = _max0(squares * inv - mean * mean)
        return mean, Counted(1.0) / _sqrt(rstd + eps)

    def apply(s, g, mean, rstd):
        for j in range(d):
            ch = g * d + j
            scale = rstd * ws[ch]
            bias = _neg(scale) * mean + bs[ch]
            y[s][ch] = [xs[s][m][ch] * scale + bias for m in range(hw)]
        means.append(mean)
        rstds.append(rstd)

    if hw < 1024:
        for i in range(n * groups):
            s, g = divmod(i, groups)
            acc0, acc1 = _zeros(lanes), _zeros(lanes)
            for m in range(hw):
                values = xs[s][m][g * d : (g + 1) * d]
                for k, v in enumerate(values):
                    lane = k % lanes
                    acc0[lane] = acc0[lane] + v
                    acc1[lane] = acc1[lane] + v * v
            apply(s, g, *stats(_hsum(acc0, lanes), _hsum(acc1, lanes)))
        return y, means, rstds, Counted.ops
    buf = [[[_zeros(c), _zeros(c)] for _ in range(n)] for _ in range(threads)]
    for i in range(n * hw):
        s, m = divmod(i, hw)
        sums, squares = buf[_thread(i, n * hw, threads)][s]
        for ch, v in enumerate(xs[s][m]):
            sums[ch] = v + sums[ch]
            squares[ch] = v * v + squares[ch]
    for i in range(n * groups):
        s, g = divmod(i, groups)
        total, sq = Counted(0.0), Counted(0.0)
        for ch in range(g * d, (g + 1) * d):
            for t in range(threads):
                total = total + buf[t][s][0][ch]
                sq = sq + buf[t][s][1][ch]
        apply(s, g, *stats(total, sq))
    return y, means, rstds, Counted.ops


def port_backward(gy, x, mean, rstd, w, groups, mask, lanes, threads, channels_last):
    """(grad_input ``[n][c][m]``, grad_weight, grad_bias, FPO) of the backward kernel."""
    n, c = x.shape[:2]
    hw = x.numel() // (n * c)
    d = c // groups
    xs, gs = _layout(x, channels_last), _layout(gy, channels_last)
    ws = _params(w, c, 1.0)
    mean = [Counted(v) for v in mean.reshape(-1).tolist()]
    rstd = [Counted(v) for v in rstd.reshape(-1).tolist()]
    dx = [[[None] * hw for _ in range(c)] for _ in range(n)]
    ds = [[None] * c for _ in range(n)]
    db = [[None] * c for _ in range(n)]
    Counted.ops = 0

    def consts(i, ds_val, db_val):
        c2 = (db_val * mean[i] - ds_val) * rstd[i] * rstd[i] * rstd[i] * inv
        c3 = _neg(c2) * mean[i] - db_val * rstd[i] * inv
        return c2, c3

    if not channels_last:
        for s in range(n):
            for ch in range(c):
                ds[s][ch] = _reduce([dy * v for dy, v in zip(gs[s][ch], xs[s][ch], strict=True)])
                db[s][ch] = _reduce(gs[s][ch])
        if mask[0]:
            inv = Counted(1.0) / (d * hw)
            full = d // lanes * lanes
            for i in range(n * groups):
                s, g = divmod(i, groups)
                ds_acc, db_acc = _zeros(lanes), _zeros(lanes)
                for j in range(full):
                    ch, lane = g * d + j, j % lanes
                    ds_acc[lane] = ds_acc[lane] + ds[s][ch] * ws[ch]
                    db_acc[lane] = db_acc[lane] + db[s][ch] * ws[ch]
                ds_val, db_val = Counted(0.0), Counted(0.0)
                for lane in range(lanes):  # std::accumulate from 0
                    ds_val = ds_val + ds_acc[lane]
                    db_val = db_val + db_acc[lane]
                for j in range(full, d):
                    ch = g * d + j
                    ds_val = ds_val + ds[s][ch] * ws[ch]
                    db_val = db_val + db[s][ch] * ws[ch]
                c2, c3 = consts(i, ds_val, db_val)
                for j in range(d):
                    ch = g * d + j
                    c1 = rstd[i] * ws[ch]
                    dx[s][ch] = [
                        c1 * dy + c2 * v + c3 for dy, v in zip(gs[s][ch], xs[s][ch], strict=True)
                    ]
    elif hw < 2048:
        inv = Counted(1.0) / (d * hw)
        for i in range(n * groups):
            s, g = divmod(i, groups)
            ds_gamma, db_gamma = Counted(0.0), Counted(0.0)
            for d0 in range(0, d, lanes):
                chans = range(g * d + d0, g * d + min(d, d0 + lanes))
                for ch in chans:
                    acc0, acc1 = Counted(0.0), Counted(0.0)
                    for m in range(hw):
                        acc0 = acc0 + xs[s][m][ch] * gs[s][m][ch]
                        acc1 = acc1 + gs[s][m][ch]
                    ds[s][ch], db[s][ch] = acc0, acc1
                ds_gamma = ds_gamma + _hsum([ds[s][ch] * ws[ch] for ch in chans], lanes)
                db_gamma = db_gamma + _hsum([db[s][ch] * ws[ch] for ch in chans], lanes)
            c2, c3 = consts(i, ds_gamma, db_gamma)
            for ch in range(g * d, (g + 1) * d):
                c1 = rstd[i] * ws[ch]
                dx[s][ch] = [c1 * gs[s][m][ch] + c2 * xs[s][m][ch] + c3 for m in range(hw)]
    else:
        inv = Counted(1.0) / (d * hw)
        buf = [[[_zeros(c), _zeros(c)] for _ in range(n)] for _ in range(threads)]
        for i in range(n * hw):
            s, m = divmod(i, hw)
            dsb, dbb = buf[_thread(i, n * hw, threads)][s]
            for ch in range(c):
                dsb[ch] = dsb[ch] + xs[s][m][ch] * gs[s][m][ch]
                dbb[ch] = dbb[ch] + gs[s][m][ch]
        gammas = []
        for i in range(n * groups):
            s, g = divmod(i, groups)
            ds_gamma, db_gamma = Counted(0.0), Counted(0.0)
            for ch in range(g * d, (g + 1) * d):
                ds_val, db_val = Counted(0.0), Counted(0.0)
                for t in range(threads):
                    ds_gamma = ds_gamma + buf[t][s][0][ch] * ws[ch]
                    db_gamma = db_gamma + buf[t][s][1][ch] * ws[ch]
                    ds_val = ds_val + buf[t][s][0][ch]
                    db_val = db_val + buf[t][s][1][ch]
                ds[s][ch], db[s][ch] = ds_val, db_val
            gammas.append((ds_gamma, db_gamma))
        if mask[0]:
            for s in range(n):
                for m in range(hw):
                    for g in range(groups):
                        i = s * groups + g
                        c2, c3 = consts(i, *gammas[i])
                        for ch in range(g * d, (g + 1) * d):
                            c1 = rstd[i] * ws[ch]
                            dx[s][ch][m] = c1 * gs[s][m][ch] + c2 * xs[s][m][ch] + c3
    grad_w = grad_b = None
    if mask[1]:
        grad_w = []
        for ch in range(c):
            acc = Counted(0.0)
            for s in range(n):
                i = s * groups + ch // d
                acc = acc + (ds[s][ch] - db[s][ch] * mean[i]) * rstd[i]
            grad_w.append(acc)
    if mask[2]:
        grad_b = []
        for ch in range(c):
            acc = Counted(0.0)
            for s in range(n):
                acc = acc + db[s][ch]
            grad_b.append(acc)
    return dx, grad_w, grad_b, Counted.ops


def _gn_backward(gy, x, mean, rstd, w, *, n, c, hw, groups, mask):
    return torch.ops.aten.native_group_norm_backward(
        gy, x, mean, rstd, w, n, c, hw, groups, list(mask)
    )


def _count(fn, *args):
    with gp.FPOCounter() as counter:
        fn(*args)
    found = {k: v for k, v in counter.result.by_op.items() if "group_norm" in k}
    assert len(found) == 1, found
    return next(iter(found.values()))


def _t(values):
    return torch.tensor(values, dtype=torch.float64)


def _meta(*tensors):
    return [t.to("meta") if t is not None else None for t in tensors]


CASES = [
    # shape, groups, channels_last
    ((2, 6, 4, 5), 3, False),
    ((3, 4, 7), 2, False),
    ((2, 12, 3, 3), 2, False),
    ((1, 8, 40, 30), 4, False),
    ((2, 6, 4, 5), 3, True),
    ((2, 20, 3, 3), 2, True),
    ((1, 12, 2, 2, 3), 3, True),
    ((1, 6, 32, 32), 2, True),
    ((1, 4, 32, 64), 2, True),
]


@pytest.mark.parametrize(("shape", "groups", "channels_last"), CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_equals_the_ported_cpu_kernels(shape, groups, channels_last, affine):
    lanes, threads = cpu_lanes(8), torch.get_num_threads()
    n, c = shape[:2]
    hw = math.prod(shape[2:])
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    w = torch.randn(c, dtype=torch.float64) if affine else None
    b = torch.randn(c, dtype=torch.float64) if affine else None

    def forward(x, w, b):
        return torch.ops.aten.native_group_norm(x, w, b, n, c, hw, groups, 1e-5)

    out, mean, rstd = forward(x, w, b)
    ref, means, rstds, ops = port_forward(x, w, b, groups, 1e-5, lanes, threads, channels_last)
    torch.testing.assert_close(out.reshape(n, c, hw), _t(ref))
    torch.testing.assert_close(mean.reshape(-1), _t(means))
    torch.testing.assert_close(rstd.reshape(-1), _t(rstds))
    assert _count(forward, x, w, b) == ops
    assert _count(forward, *_meta(x, w, b)) == ops

    gy = torch.randn_like(x)  # the input's layout: ATen reads the gradient in it
    # channels-last under 2048 positions computes the input grad whatever is asked (and, in
    # torch 2.13, writes it through a null pointer when it is not asked): always ask for it there
    masks = [(True, True, True), (True, False, False)]
    if not channels_last or hw >= 2048:
        masks.append((False, True, True))
    for mask in masks if affine else [(True, False, False)]:
        backward = functools.partial(_gn_backward, n=n, c=c, hw=hw, groups=groups, mask=mask)

        gi, gw, gb = backward(gy, x, mean, rstd, w)
        ref_gi, ref_gw, ref_gb, ops = port_backward(
            gy, x, mean, rstd, w, groups, mask, lanes, threads, channels_last
        )
        if mask[0]:
            torch.testing.assert_close(gi.reshape(n, c, hw), _t(ref_gi))
        if mask[1]:
            torch.testing.assert_close(gw, _t(ref_gw))
        if mask[2]:
            torch.testing.assert_close(gb, _t(ref_gb))
        assert _count(backward, gy, x, mean, rstd, w) == ops
        assert _count(backward, *_meta(gy, x, mean, rstd, w)) == ops


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(("shape", "channels_last"), [((2, 20, 5), False), ((1, 8, 32, 64), True)])
def test_float32_counts_with_the_float_vectors(threads, shape, channels_last):
    """A float32 input runs ``Vectorized<float>`` (8 lanes, twice the double lanes); the large
    channels-last kernels sum one partial per thread: the port with those lanes and threads
    counts what the counter counts."""
    n, c = shape[:2]
    hw = math.prod(shape[2:])
    x = torch.randn(*shape)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    gn = torch.nn.GroupNorm(4, c)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            out = gn(x)
            counted = _count(gn, x)
        _, mean, rstd = torch.ops.aten.native_group_norm(x, gn.weight, gn.bias, n, c, hw, 4, 1e-5)
        gy = torch.randn_like(x)
        mask = [True, True, True]

        def backward(gy, x, mean, rstd, w):
            return torch.ops.aten.native_group_norm_backward(
                gy, x, mean, rstd, w, n, c, hw, 4, mask
            )

        counted_backward = _count(backward, gy, x, mean, rstd, gn.weight)
    finally:
        torch.set_num_threads(previous)
    w, b = gn.weight.detach().double(), gn.bias.detach().double()
    ref, _, _, ops = port_forward(x.double(), w, b, 4, 1e-5, cpu_lanes(4), threads, channels_last)
    torch.testing.assert_close(out.reshape(n, c, hw), _t(ref).float(), atol=1e-4, rtol=1e-4)
    assert counted == ops
    *_, ops = port_backward(
        gy.double(), x.double(), mean.double(), rstd.double(), w, 4, mask, cpu_lanes(4),
        threads, channels_last,
    )  # fmt: skip
    assert counted_backward == ops


def test_group_norm_by_hand():
    """GroupNorm(2, 4) on a contiguous float32 (3, 4, 5): 6 groups of 10 values. Per group
    the moments (one vector of 8 lanes: 6 per value 60, the chunk merged 65, the lanes 72,
    ``m2 / N`` 1: 198), ``rstd`` with its ``max`` (4); per channel scale and bias (4 x 12);
    ``scale * x + bias`` (2 x 60): 6 * 202 + 48 + 120 = 1,380 (it was 5 * 60 + 4 * 6 + 2 * 60
    = 444). Backward, everything asked: ``ds``, ``db`` (3 x 60 - 2 x 12 = 156); ``s`` (1); per
    group the weighted sums (4 x 2 + 2 x 8) and ``c2``, ``c3`` (11): 6 x 35; ``c1`` (12);
    ``c1 g + c2 x + c3`` (4 x 60); the weight grad 4 x 12, the bias grad 12: 156 + 1 + 210 + 12 +
    240 + 48 + 12 = 679 (it was 10 * 60 + 2 * 6 + 2 * 60 + 60 = 792)."""
    gn = torch.nn.GroupNorm(2, 4)
    x = torch.randn(3, 4, 5, requires_grad=True)
    with gp.FPOCounter() as c:
        gn(x).backward(torch.ones(3, 4, 5))
    assert c.result.by_op["aten.native_group_norm"] == 1_380
    assert c.result.by_op["aten.native_group_norm_backward"] == 679
