"""Average and adaptive average pooling, forward and backward, against ports of ATen's CPU
kernels that count every operation (audit s36).

The kernels (torch 2.13, ``native/cpu/AvgPoolKernel.cpp`` and ``AdaptiveAvgPoolKernel.cpp``):

- ``cpu_avg_pool2d`` / ``cpu_avg_pool3d`` (contiguous): per output ``sum = 0; sum += x`` over
  the window clipped to the input, then ``output_data[i] += sum / divide_factor`` into the
  output it zeroed: a division and an add;
- ``cpu_avg_pool{2,3}d_channels_last``: ``out += in`` into the zeroed output per window
  element, then ``out / divide_factor`` in place;
- ``cpu_avg_pool{2,3}d_backward``: ``grad_delta = g / divide_factor`` once per gradient
  element, then ``grad_input += grad_delta`` per window element; its channels-last form
  computes ``gin + gout / divide_factor`` per window element (the division again each time);
- ``cpu_adaptive_avg_pool`` (contiguous): the sum, then ``sum / kh / kw`` (``/ kd`` first in
  3-D); channels last: the sum into the zeroed output, then the channels in whole vectors
  (AVX2's 8 floats, 4 doubles) ``out / (kh * kw)``, the channels past them ``out / kh / kw``;
- the adaptive backwards: contiguous ``g / kh / kw`` once and an add per window element;
  channels last ``gin + gout / (kh * kw)`` per window element and channel in whole vectors,
  ``gin += gout / kh / kw`` past them.

Each port computes with :class:`Counted` floats; its values equal torch's (float64), and its
count equals the counter's on CPU tensors and on meta copies (which keep the strides). Before
s36 the contiguous forward missed the add into the output (1 per output), and both
channels-last backwards were counted as the contiguous ones: one division per gradient element
where the kernels divide per window element (2 per window element against 1 + 1 per output).
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402
from torch._prims_common import suggest_memory_format  # noqa: E402

import greenprint as gp  # noqa: E402

_VECTOR_LANES = {torch.float32: 8, torch.float64: 4}


def _total(fn, *tensors):
    return gp.count_fpo(fn, *tensors, backward=False).total


def _counted(t):
    return [Counted(float(v)) for v in t.reshape(-1).tolist()]


def _index(shape):
    strides = [math.prod(shape[i + 1 :]) for i in range(len(shape))]
    return lambda idx: sum(i * s for i, s in zip(idx, strides, strict=True))


# -- average pooling -------------------------------------------------------------------------


def _avg_windows(in_sp, out_sp, k, s, p, count_include_pad, divisor_override):
    """Per output position ``(clipped ranges, divide_factor)``, as ``cpu_avg_pool`` finds them;
    ``None`` for a window wholly in the padding (skipped)."""
    windows = {}
    for pos in itertools.product(*(range(o) for o in out_sp)):
        ranges, pool = [], 1
        for o, i, kk, ss, pp in zip(pos, in_sp, k, s, p, strict=True):
            a0 = o * ss - pp
            a1 = min(a0 + kk, i + pp)
            pool *= a1 - a0
            ranges.append(range(max(a0, 0), min(a1, i)))
        if any(len(r) == 0 for r in ranges):
            windows[pos] = None
            continue
        if divisor_override:
            factor = divisor_override
        elif count_include_pad:
            factor = pool
        else:
            factor = math.prod(len(r) for r in ranges)
        windows[pos] = (ranges, factor)
    return windows


def avg_pool_port(x, out_sp, k, s, p, cip, div, channels_last):
    """Values and count of ``cpu_avg_pool`` (or its channels-last form) over ``x`` (N, C, ...)."""
    n, c, *in_sp = x.shape
    xs, at = _counted(x), _index(tuple(x.shape))
    windows = _avg_windows(in_sp, out_sp, k, s, p, cip, div)
    Counted.ops = 0
    out = []
    for b, ch in itertools.product(range(n), range(c)):
        for pos in itertools.product(*(range(o) for o in out_sp)):
            w = windows[pos]
            if w is None:
                out.append(0.0)
                continue
            ranges, factor = w
            taps = [xs[at((b, ch, *q))] for q in itertools.product(*ranges)]
            if channels_last:  # out = 0; out += in; out = out / factor
                acc = 0.0
                for v in taps:
                    acc = acc + v
                out.append(acc / factor)
            else:  # sum = 0; sum += x; output[i] += sum / factor (output zeroed)
                acc = 0.0
                for v in taps:
                    acc = acc + v
                out.append(0.0 + acc / factor)
    return out, Counted.ops


def avg_pool_backward_port(g, x_shape, k, s, p, cip, div, channels_last):
    n, c, *in_sp = x_shape
    out_sp = list(g.shape[2:])
    gs, at_in, at_out = _counted(g), _index(tuple(x_shape)), _index(tuple(g.shape))
    windows = _avg_windows(in_sp, out_sp, k, s, p, cip, div)
    grad_in = [0.0] * math.prod(x_shape)
    Counted.ops = 0
    for b, ch in itertools.product(range(n), range(c)):
        for pos in itertools.product(*(range(o) for o in out_sp)):
            w = windows[pos]
            if w is None:
                continue
            ranges, factor = w
            go = gs[at_out((b, ch, *pos))]
            if channels_last:  # gin + gout / factor, per window element
                for q in itertools.product(*ranges):
                    i = at_in((b, ch, *q))
                    grad_in[i] = grad_in[i] + go / factor
            else:  # grad_delta = g / factor; grad_input += grad_delta
                delta = go / factor
                for q in itertools.product(*ranges):
                    i = at_in((b, ch, *q))
                    grad_in[i] = grad_in[i] + delta
    return grad_in, Counted.ops


def _avg_cases(dims, count):
    rng = random.Random(36 + dims)
    cases = []
    while len(cases) < count:
        k = [rng.randint(1, 3) for _ in range(dims)]
        s = [rng.randint(1, 3) for _ in range(dims)]
        p = [rng.randint(0, kk // 2) for kk in k]
        size = [rng.randint(kk, 6 if dims == 2 else 4) for kk in k]
        cases.append(
            {
                "shape": (rng.randint(1, 2), rng.choice([1, 3, 9]), *size),
                "k": k,
                "s": s,
                "p": p,
                "ceil": rng.random() < 0.5,
                "cip": rng.random() < 0.5,
                "div": rng.choice([None, None, 5]),
                "channels_last": rng.random() < 0.5,
            }
        )
    return cases


def _layout(t, channels_last):
    if not channels_last:
        return t.contiguous()
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.contiguous(memory_format=fmt)


def _runs_channels_last(t):
    """The kernel ATen's dispatch picks: ``suggest_memory_format()`` (a tensor of one channel
    asked for channels last keeps contiguous strides and runs the contiguous kernel)."""
    return suggest_memory_format(t) != torch.contiguous_format


@pytest.mark.parametrize(
    "dims, case", [(d, c) for d in (2, 3) for c in _avg_cases(d, 14 if d == 2 else 8)]
)
def test_average_pooling_forward_and_backward_equal_the_ported_kernels(dims, case):
    torch.manual_seed(0)
    x = _layout(torch.randn(*case["shape"], dtype=torch.float64), case["channels_last"])
    pool = torch.nn.functional.avg_pool2d if dims == 2 else torch.nn.functional.avg_pool3d
    args = (case["k"], case["s"], case["p"], case["ceil"], case["cip"], case["div"])
    y = pool(x, *args)
    out_sp = list(y.shape[2:])
    values, expected = avg_pool_port(
        x, out_sp, case["k"], case["s"], case["p"], case["cip"], case["div"], _runs_channels_last(x)
    )
    assert torch.allclose(y.contiguous().reshape(-1), torch.tensor(values, dtype=torch.float64))
    fn = lambda t: pool(t, *args)  # noqa: E731
    assert _total(fn, x) == _total(fn, x.to("meta")) == expected

    g = _layout(torch.randn(y.shape, dtype=torch.float64), case["channels_last"])
    backward = getattr(torch.ops.aten, f"avg_pool{dims}d_backward")
    grad = backward(g, x, *args)
    cl = _runs_channels_last(g)
    values, expected = avg_pool_backward_port(
        g, x.shape, case["k"], case["s"], case["p"], case["cip"], case["div"], cl
    )
    assert torch.allclose(grad.contiguous().reshape(-1), torch.tensor(values, dtype=torch.float64))
    bfn = lambda go, t: backward(go, t, *args)  # noqa: E731
    assert _total(bfn, g, x) == _total(bfn, g.to("meta"), x.to("meta")) == expected


def test_autograd_runs_the_ported_backward_of_a_channels_last_pooling():
    """``loss.backward()`` of a channels-last AvgPool2d reaches the channels-last kernel: its
    gradient is laid out as the output, channels last. (1, 9, 6, 6), k 3, s 2, p 1: 9 outputs
    per channel of 4, 6, 6, 9... window elements, 2 each."""
    x = _layout(torch.randn(1, 9, 6, 6), True).requires_grad_()
    c = gp.count_fpo(torch.nn.AvgPool2d(3, 2, 1), x)
    clipped = sum(len(range(max(o * 2 - 1, 0), min(o * 2 + 2, 6))) for o in range(3)) ** 2
    assert clipped == 64
    assert c.by_op["aten.avg_pool2d"] == 9 * (64 + 9)
    assert c.by_op["aten.avg_pool2d_backward"] == 9 * 2 * 64
    contiguous = gp.count_fpo(torch.nn.AvgPool2d(3, 2, 1), x.detach().contiguous().requires_grad_())
    assert contiguous.by_op["aten.avg_pool2d"] == 9 * (64 + 2 * 9)
    assert contiguous.by_op["aten.avg_pool2d_backward"] == 9 * (64 + 9)


# -- adaptive average pooling ----------------------------------------------------------------


def _adaptive_ranges(in_sp, out_sp, pos):
    return [
        range((o * i) // oo, -((-(o + 1) * i) // oo))
        for o, i, oo in zip(pos, in_sp, out_sp, strict=True)
    ]


def adaptive_port(x, out_sp, channels_last, lanes):
    n, c, *in_sp = x.shape
    xs, at = _counted(x), _index(tuple(x.shape))
    vector = c - c % lanes
    Counted.ops = 0
    out = []
    for b, ch in itertools.product(range(n), range(c)):
        for pos in itertools.product(*(range(o) for o in out_sp)):
            ranges = _adaptive_ranges(in_sp, out_sp, pos)
            acc = 0.0
            for q in itertools.product(*ranges):
                acc = acc + xs[at((b, ch, *q))]
            if channels_last and ch < vector:  # out / (kh * kw), a vector's lane
                acc = acc / math.prod(len(r) for r in ranges)
            else:  # sum / kd / kh / kw
                for r in ranges:
                    acc = acc / len(r)
            out.append(acc)
    return out, Counted.ops


def adaptive_backward_port(g, x_shape, channels_last, lanes):
    n, c, *in_sp = x_shape
    out_sp = list(g.shape[2:])
    gs, at_in, at_out = _counted(g), _index(tuple(x_shape)), _index(tuple(g.shape))
    vector = c - c % lanes
    grad_in = [0.0] * math.prod(x_shape)
    Counted.ops = 0
    for b, ch in itertools.product(range(n), range(c)):
        for pos in itertools.product(*(range(o) for o in out_sp)):
            ranges = _adaptive_ranges(in_sp, out_sp, pos)
            go = gs[at_out((b, ch, *pos))]
            if not channels_last:  # grad_delta = g / kh / kw, then the adds
                delta = go
                for r in ranges:
                    delta = delta / len(r)
            for q in itertools.product(*ranges):
                if channels_last and ch < vector:  # gin + gout / (kh * kw)
                    delta = go / math.prod(len(r) for r in ranges)
                elif channels_last:  # gin += gout / kh / kw
                    delta = go
                    for r in ranges:
                        delta = delta / len(r)
                i = at_in((b, ch, *q))
                grad_in[i] = grad_in[i] + delta
    return grad_in, Counted.ops


def _adaptive_cases(dims, count):
    rng = random.Random(3600 + dims)
    cases = []
    while len(cases) < count:
        size = [rng.randint(1, 7 if dims == 2 else 5) for _ in range(dims)]
        out = [rng.randint(1, s + 2) for s in size]
        if all(o == 1 for o in out):  # adaptive_avg_pool to 1 runs mean
            continue
        cases.append(
            {
                "shape": (rng.randint(1, 2), rng.choice([1, 3, 8, 11]), *size),
                "out": out,
                "channels_last": rng.random() < 0.6,
                "dtype": rng.choice([torch.float32, torch.float64]),
            }
        )
    return cases


@pytest.mark.parametrize(
    "dims, case", [(d, c) for d in (2, 3) for c in _adaptive_cases(d, 14 if d == 2 else 8)]
)
def test_adaptive_average_pooling_forward_and_backward_equal_the_ported_kernels(dims, case):
    torch.manual_seed(1)
    dtype, cl = case["dtype"], case["channels_last"]
    x = _layout(torch.randn(*case["shape"], dtype=dtype), cl)
    forward = getattr(torch.ops.aten, f"_adaptive_avg_pool{dims}d")
    y = forward(x, case["out"])
    lanes = _VECTOR_LANES[dtype]
    values, expected = adaptive_port(x, case["out"], _runs_channels_last(x), lanes)
    assert torch.allclose(y.contiguous().reshape(-1), torch.tensor(values, dtype=dtype))
    fn = lambda t: forward(t, case["out"])  # noqa: E731
    assert _total(fn, x) == _total(fn, x.to("meta")) == expected

    g = _layout(torch.randn(y.shape, dtype=dtype), cl)
    backward = getattr(torch.ops.aten, f"_adaptive_avg_pool{dims}d_backward")
    grad = backward(g, x)
    values, expected = adaptive_backward_port(g, x.shape, _runs_channels_last(g), lanes)
    assert torch.allclose(grad.contiguous().reshape(-1), torch.tensor(values, dtype=dtype))
    assert _total(backward, g, x) == _total(backward, g.to("meta"), x.to("meta")) == expected


def test_per_module_attribution_of_pooling_in_a_channels_last_model():
    """The pooling layers' counts, forward and backward, are charged to their modules."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.AvgPool2d(2),
        torch.nn.AdaptiveAvgPool2d((3, 2)),
    ).to(memory_format=torch.channels_last)
    x = _layout(torch.randn(2, 3, 8, 8), True)
    c = gp.count_fpo(model, x)
    phases = c.result.by_op_phase if hasattr(c, "result") else c.by_op_phase
    pool = phases["aten.avg_pool2d"]["forward"] + phases["aten.avg_pool2d_backward"]["backward"]
    adaptive = (
        phases["aten._adaptive_avg_pool2d"]["forward"]
        + phases["aten._adaptive_avg_pool2d_backward"]["backward"]
    )
    # (2, 8, 8, 8) -> (2, 8, 4, 4): 4 elements per window; -> (3, 2): windows of 2 x 2
    assert pool == 2 * 8 * 16 * (4 + 1) + 2 * 8 * 16 * 4 * 2
    assert adaptive == 2 * 8 * 6 * (4 + 1) + 2 * 8 * 6 * 4 * 2
    assert c.by_module["1"] == pool
    assert c.by_module["2"] == adaptive
    assert c.by_module[""] == c.total
