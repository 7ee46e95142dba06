"""Batch norm against ports of ATen's CPU kernels that count every operation (audit s34).

The ports below are ``batch_norm_cpu`` (``native/Normalization.cpp``:
``batch_norm_cpu_update_stats_template``, ``batch_norm_cpu_transform_input_template``,
``batch_norm_backward_cpu_template``) and the kernels it calls
(``native/cpu/batch_norm_kernel.cpp``), written out with :class:`Counted` floats: every add,
subtract, multiply and divide is counted, ``sqrt`` and compares by the helpers (1 each).
Their values are checked against torch's, forward and backward, eval and training, affine or
not, so each port is the op; the counter must count what the port counted, on CPU tensors and
on meta copies of them (which keep the strides).

Which code runs depends on the layout, as ATen picks it: an input contiguous in the default
format runs the kernel's contiguous form; a channels-last input (``channels_last``,
``channels_last_3d``), or a contiguous one of one position per channel and sample ((N, C), as
BatchNorm1d on 2-D input), its channels-last form; any other strides the generic
TensorIterator loops. The backward runs the kernel only when the gradient has the input's
layout (a gradient expanded from ``.sum()`` does not: it runs the generic loops). The
channels-last kernels sum per-thread partial results (``torch.get_num_threads()`` of them).

Before s34 the rules counted training ``5N + 4C`` (+ 7C running statistics) + N each for the
weight and bias, eval ``2N + 2C`` + affine, the backward ``9N`` + N with a weight + 2C for the
input's gradient, 2N for the weight's and N for the bias's (13N with everything): the kernels
run ``x * alpha + beta`` whatever the affine, ``(x - mean) * (x - mean)`` in the variance,
and always both reductions of the backward.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402


def _sqrt(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.sqrt(float(v)))


def _cmp(flag: bool) -> bool:
    Counted.ops += 1
    return flag


def _planes(t):
    """Per channel, its values (as Python floats) in memory order within the channel."""
    c = t.shape[1]
    return [t.select(1, i).flatten().tolist() for i in range(c)]


def _kernel(x):
    """The path ATen takes for ``x`` (as the rule reads it, written out again here)."""
    n, c = x.shape[0], x.shape[1]
    if x.is_contiguous():
        return "channels_last" if x.numel() // (n * c) == 1 else "contiguous"
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if fmt is not None and x.is_contiguous(memory_format=fmt):
        return "channels_last"
    return "generic"


def _thread_sums(values, threads):
    """``parallel_for`` over positions into a zeroed ``{threads, C}`` buffer (1 add per value),
    then ``acc = 0; acc += buffer[t]`` over the threads (``threads`` adds)."""
    buffer = [Counted(0.0) for _ in range(threads)]
    for i, v in enumerate(values):
        buffer[i % threads] = buffer[i % threads] + v
    total = Counted(0.0)
    for part in buffer:
        total = total + part
    return total


def _stats(xs, kernel, threads):
    """``batch_norm_cpu_collect_stats_*``: mean and ``var_sum`` of one channel's P values."""
    p = len(xs)
    if kernel == "channels_last" and p > threads:
        mean = _thread_sums(xs, threads) / p
        var_sum = _thread_sums([(v - mean) * (v - mean) for v in xs], threads)
        return mean, var_sum
    total = Counted(0.0)
    for v in xs:
        total = total + v
    mean = total / p  # contiguous kernel, channels-last's serial form, and at::mean (generic)
    var_sum = Counted(0.0)
    for v in xs:
        var_sum = var_sum + (v - mean) * (v - mean)
    return mean, var_sum


def _invstd_batch(var_sum, p, eps):
    """``InvStd(var_sum / n, eps)``: ``var != 0`` compared, ``1 / sqrt(var + eps)``."""
    var = var_sum / p
    if _cmp(float(var) != 0.0) or eps != 0.0:
        return Counted(1.0) / _sqrt(var + eps)
    return Counted(0.0)


def port_forward(x, w, b, rm, rv, train, momentum, eps, threads):
    """``batch_norm_cpu``: (output, running mean, running var, FPO)."""
    kernel = _kernel(x)
    planes = [[Counted(v) for v in plane] for plane in _planes(x)]
    c, p = len(planes), x.numel() // x.shape[1]
    ws = [Counted(v) for v in w.tolist()] if w is not None else [Counted(1.0)] * c
    bs = [Counted(v) for v in b.tolist()] if b is not None else [Counted(0.0)] * c
    rms = [Counted(v) for v in rm.tolist()] if rm is not None else None
    rvs = [Counted(v) for v in rv.tolist()] if rv is not None else None
    Counted.ops = 0
    means, invstds = [], []
    for ch in range(c):
        if train:
            mean, var_sum = _stats(planes[ch], kernel, threads)
            invstd = _invstd_batch(var_sum, p, eps)
            if rms is not None:
                m = Counted(momentum)
                rms[ch] = m * mean + (1 - m) * rms[ch]
                unbiased = var_sum / (p - 1)
                rvs[ch] = m * unbiased + (1 - m) * rvs[ch]
        else:
            mean = rms[ch]
            invstd = Counted(1.0) / _sqrt(rvs[ch] + eps)
        means.append(mean)
        invstds.append(invstd)
    out = []
    for ch in range(c):
        if kernel == "generic":  # ((input - mean) * invstd) * weight + bias
            out.append([((v - means[ch]) * invstds[ch]) * ws[ch] + bs[ch] for v in planes[ch]])
        else:  # batch_norm_cpu_collect_linear_and_constant_terms, then x * alpha + beta
            alpha = invstds[ch] * ws[ch]
            beta = bs[ch] - means[ch] * alpha
            out.append([v * alpha + beta for v in planes[ch]])
    return out, rms, rvs, Counted.ops, means, invstds


def _backward_kernel(g, x):
    """``batch_norm_backward_cpu_template``: the kernel when both are contiguous in a format
    and ``input.suggest_memory_format() == grad_out_.suggest_memory_format()`` (read from the
    strides: a tensor contiguous in both formats, as (N, C, 1, 1), suggests channels last with
    channels-last strides; s36), else the generic loops."""
    from torch._prims_common import suggest_memory_format

    kernel = _kernel(x)
    if _kernel(g) == "generic" or suggest_memory_format(g) != suggest_memory_format(x):
        return "generic"
    return kernel


def port_backward(g, x, w, rm, rv, mean, invstd, train, eps, mask, threads):
    """``batch_norm_backward_cpu_template``: (grad_input planes, grad_weight, grad_bias, FPO)."""
    kernel = _backward_kernel(g, x)
    xs = [[Counted(v) for v in plane] for plane in _planes(x)]
    gs = [[Counted(v) for v in plane] for plane in _planes(g)]
    c, p = len(xs), x.numel() // x.shape[1]
    ws = [Counted(v) for v in w.tolist()] if w is not None else [Counted(1.0)] * c
    Counted.ops = 0
    if train:
        means, invstds = [Counted(v) for v in mean], [Counted(v) for v in invstd]
    else:
        means = [Counted(v) for v in rm.tolist()]
        invstds = [Counted(1.0) / _sqrt(Counted(v) + eps) for v in rv.tolist()]
    sums, dotps = [], []
    for ch in range(c):
        if kernel == "channels_last":  # per-thread partial sums, then the threads'
            sums.append(_thread_sums(gs[ch], threads))
            dotps.append(
                _thread_sums(
                    [(a - means[ch]) * b for a, b in zip(xs[ch], gs[ch], strict=True)], threads
                )
            )
        else:  # reduce_all / at::sum, and the dot product, into zeroed sums
            s, d = Counted(0.0), Counted(0.0)
            for a, b in zip(xs[ch], gs[ch], strict=True):
                s = s + b
                d = d + (a - means[ch]) * b
            sums.append(s)
            dotps.append(d)
    grad_in = None
    if mask[0]:
        grad_in = []
        for ch in range(c):
            mu, inv, w_ = means[ch], invstds[ch], ws[ch]
            if not train:
                grad_in.append([b * inv * w_ for b in gs[ch]])
            elif kernel == "channels_last":  # k and sum / N recomputed per element
                grad_in.append(
                    [
                        (b - sums[ch] / p - (a - mu) * (dotps[ch] * inv * inv / p)) * inv * w_
                        for a, b in zip(xs[ch], gs[ch], strict=True)
                    ]
                )
            else:
                k = dotps[ch] * inv * inv / p
                grad_mean = sums[ch] / p
                grad_in.append(
                    [
                        (b - grad_mean - (a - mu) * k) * inv * w_
                        for a, b in zip(xs[ch], gs[ch], strict=True)
                    ]
                )
    grad_w = [dotps[ch] * invstds[ch] for ch in range(c)] if mask[1] else None
    grad_b = sums if mask[2] else None
    return grad_in, grad_w, grad_b, Counted.ops


def _layout(shape, layout):
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 3
    if layout == "channels_last":
        fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
        return x.contiguous(memory_format=fmt)
    if layout == "transposed":  # (P, C) stored as the transpose of (C, P): generic strides
        return x.t().contiguous().t()
    return x


def _from_planes(planes, like):
    """A tensor shaped as ``like`` from its per-channel planes."""
    c = like.shape[1]
    moved = torch.tensor([[float(v) for v in plane] for plane in planes], dtype=torch.float64)
    rest = [like.shape[0]] + list(like.shape[2:])
    return moved.reshape([c, *rest]).movedim(0, 1)


#: (shape, the input's layout, the forward's path, the gradient: laid out as the input,
#: expanded from ``.sum()`` or contiguous)
CASES = [
    ((4, 3, 5, 5), "contiguous", "contiguous", "same"),
    ((4, 3, 5, 5), "channels_last", "channels_last", "same"),
    ((2, 3, 2, 3, 2), "channels_last", "channels_last", "same"),
    ((3, 4, 5), "contiguous", "contiguous", "same"),
    ((64, 3), "contiguous", "channels_last", "same"),
    ((2, 3), "contiguous", "channels_last", "same"),
    ((16, 5), "transposed", "generic", "same"),
    ((4, 3, 5, 5), "contiguous", "contiguous", "expanded"),
    ((64, 3), "contiguous", "channels_last", "expanded"),
    ((4, 3, 5, 5), "channels_last", "channels_last", "contiguous"),
]


def _count(fn, *tensors):
    with gp.FPOCounter() as counter:
        fn(*tensors)
    found = {k: v for k, v in counter.result.by_op.items() if "batch_norm" in k}
    assert len(found) == 1, found
    return next(iter(found.values()))


@pytest.mark.parametrize("shape,layout,expect,grad", CASES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_equals_the_ported_cpu_kernels(shape, layout, expect, grad, train, affine):
    threads = torch.get_num_threads()
    c = shape[1]
    x = _layout(shape, layout)
    assert _kernel(x) == expect
    w = torch.randn(c, dtype=torch.float64) if affine else None
    b = torch.randn(c, dtype=torch.float64) if affine else None
    rm, rv = torch.randn(c, dtype=torch.float64), torch.rand(c, dtype=torch.float64) + 0.5
    rm_t, rv_t = rm.clone(), rv.clone()

    def forward(x, w, b, rm, rv):
        return torch.ops.aten.native_batch_norm(x, w, b, rm, rv, train, 0.1, 1e-5)

    out, save_mean, save_invstd = forward(x, w, b, rm_t, rv_t)
    ref, rms, rvs, ops, means, invstds = port_forward(x, w, b, rm, rv, train, 0.1, 1e-5, threads)
    torch.testing.assert_close(out, _from_planes(ref, x))
    if train:
        torch.testing.assert_close(rm_t, torch.tensor([float(v) for v in rms], dtype=torch.float64))
        torch.testing.assert_close(rv_t, torch.tensor([float(v) for v in rvs], dtype=torch.float64))
    counted = _count(forward, x, w, b, rm.clone(), rv.clone())
    assert counted == ops
    meta = [t.to("meta") if t is not None else None for t in (x, w, b, rm, rv)]
    assert _count(forward, *meta) == ops

    # backward: the gradient laid out as the input, or expanded from .sum() (generic loops)
    if grad == "expanded":
        g = torch.ones((), dtype=torch.float64).expand(shape)
    elif grad == "contiguous":
        g = torch.randn(*shape, dtype=torch.float64)  # input channels-last, gradient not
    else:
        g = _layout(shape, layout) - 3
    mask = [True, affine, affine]

    def backward(g, x, w, rm, rv, sm, si):
        return torch.ops.aten.native_batch_norm_backward(g, x, w, rm, rv, sm, si, train, 1e-5, mask)

    sm, si = (save_mean, save_invstd) if train else (None, None)
    gi, gw, gb = backward(g, x, w, rm, rv, sm, si)
    mean_l = save_mean.tolist() if train else None
    inv_l = save_invstd.tolist() if train else None
    ref_gi, ref_gw, ref_gb, ops = port_backward(
        g, x, w, rm, rv, mean_l, inv_l, train, 1e-5, mask, threads
    )
    torch.testing.assert_close(gi, _from_planes(ref_gi, x))
    if affine:
        torch.testing.assert_close(
            gw, torch.tensor([float(v) for v in ref_gw], dtype=torch.float64)
        )
        torch.testing.assert_close(
            gb, torch.tensor([float(v) for v in ref_gb], dtype=torch.float64)
        )
    assert _count(backward, g, x, w, rm, rv, sm, si) == ops
    meta = [t.to("meta") if t is not None else None for t in (g, x, w, rm, rv, sm, si)]
    if grad == "expanded":  # .to("meta") would lay the expanded gradient out contiguously
        meta[0] = torch.ones((), dtype=torch.float64, device="meta").expand(shape)
    assert _count(backward, *meta) == ops


def test_batch_norm_by_hand():
    """BatchNorm2d(3) on (4, 3, 5, 5), 300 elements: training ``7N + 9C`` + 9C running
    statistics = 2,154 (it was 5N + 4C + 7C + 2N = 2,133); eval ``2N + 6C`` = 618 (it was
    2N + 2C + 2N = 1,206); the backward (gradient from ``.sum()``, generic loops) 4N + 6N +
    4C + C = 3,015 (13N + 2C = 3,906); a module on data that needs no input gradient, only
    the weight's and bias's: 4N + C = 1,203 (it was 5N = 1,500)."""
    bn = torch.nn.BatchNorm2d(3)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    with gp.FPOCounter() as c:
        bn(x).sum().backward()
    assert c.result.by_op["aten._native_batch_norm_legit"] == 2154
    assert c.result.by_op["aten.native_batch_norm_backward"] == 3015
    with gp.FPOCounter() as c:
        bn(x.detach()).sum().backward()
    assert c.result.by_op["aten.native_batch_norm_backward"] == 1203
    bn.eval()
    with torch.no_grad(), gp.FPOCounter() as c:
        bn(x)
    assert c.result.by_op["aten._native_batch_norm_legit_no_training"] == 618


def test_channels_last_backward_recomputes_per_element():
    """The channels-last backward (a channels-last gradient, or BatchNorm1d on (N, C) with a
    contiguous one): 14 per element + 2 per thread and channel + the weight's C."""
    threads = torch.get_num_threads()
    bn = torch.nn.BatchNorm1d(3)
    x = torch.randn(64, 3, requires_grad=True)
    with gp.FPOCounter() as c:
        bn(x).backward(torch.randn(64, 3))
    assert c.result.by_op["aten.native_batch_norm_backward"] == 14 * 192 + 2 * threads * 3 + 3


@pytest.mark.parametrize("threads", [1, 3])
def test_channels_last_kernels_sum_one_partial_per_thread(threads):
    """BatchNorm1d(3) on (64, 3) in training, run on ``threads`` threads: the statistics' and
    the backward's per-thread partial sums, 2 per channel and thread each (64 positions per
    channel outnumber the threads), as the port counts them: forward ``7N + 18C + 2TC``,
    backward ``14N + 2TC + C``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        bn = torch.nn.BatchNorm1d(3).double()
        x = torch.randn(64, 3, dtype=torch.float64, requires_grad=True)
        rm, rv = bn.running_mean.clone(), bn.running_var.clone()
        with gp.FPOCounter() as c:
            bn(x).backward(torch.randn(64, 3, dtype=torch.float64))
        _, _, _, ops, _, _ = port_forward(
            x.detach(), bn.weight.detach(), bn.bias.detach(), rm, rv, True, 0.1, 1e-5, threads
        )
    finally:
        torch.set_num_threads(previous)
    assert c.result.by_op["aten._native_batch_norm_legit"] == ops == 7 * 192 + 18 * 3 + 6 * threads
    assert c.result.by_op["aten.native_batch_norm_backward"] == 14 * 192 + 6 * threads + 3
