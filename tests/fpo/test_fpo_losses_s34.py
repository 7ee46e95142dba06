"""Regression losses (MSE, smooth L1, Huber) and log-softmax (cross-entropy's first half) with
the softmax backward kernels, against ports of ATen's CPU kernels (audit s34).

Each port below is ATen's vectorised CPU kernel (``BinaryOpsKernel.cpp``: ``mse_kernel``,
``smooth_l1_kernel``, ``huber_kernel``; ``PointwiseOpsKernel.cpp``: ``mse_backward_cpu_kernel``,
``smooth_l1_backward_cpu_kernel``, ``huber_backward_cpu_kernel``) written out with
:class:`Counted` floats, so every add, subtract, multiply and divide it performs is counted;
``|x|`` and compares are counted by the helpers (1 each). Its values are checked against
torch's, so the port is the op. As docs/fpo.md counts every kernel, the vectorised form is the
one counted (a tensor's whole vectors run it; only a tail of fewer than two vectors runs the
scalar loop): its ``blendv`` computes both sides of a branch, and a product of two constants
written inside the loop (``point_five_vec * beta_val_vec``) counts. The mean's ``1 / N`` is
folded by ATen into the backward's ``norm`` on the host (``2. / input.numel()``), so it costs
nothing per element; the forward's reduction is ``sum`` (N adds into a zeroed accumulator) or
``mean`` (+ 1 division).

Before s34 the rules counted the MSE backward 4N for the mean (a division per element that the
kernel does not perform), smooth L1 and Huber 5N forward and 4N backward (one side of the
branch): 3N, 8N and 7N here. FlopCounterMode counts none of these ops (0). Log-softmax
(``LogSoftmaxKernelImpl.h``) computes ``x - max - log(sum)`` as two subtractions, kept apart
for accuracy: 6 per element + the log per row (it was counted 5 + 1); along the last
dimension its max and sum start from their first values, 2 fewer per row (s35, with the
softmax ports of ``test_fpo_softmax_s35``).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _abs(v: float) -> Counted:
    """``abs`` (1 FPO, as the rules count it), its result a :class:`Counted`."""
    Counted.ops += 1
    return Counted(abs(float(v)))


def _cmp(flag: bool) -> bool:
    """A compare whose result ``blendv`` uses as its mask (1 FPO)."""
    Counted.ops += 1
    return flag


def _sgn(v: float) -> Counted:
    Counted.ops += 1
    return Counted((v > 0) - (v < 0))


# -- ports of the kernels, one element each -----------------------------------------------------


def mse_forward(a, b):
    """``diff = a - b; return diff * diff``: 2."""
    diff = a - b
    return diff * diff


def smooth_l1_forward(a, b, beta):
    """``z = (a - b).abs()``; ``blendv(0.5 * z * z / beta, z - 0.5 * beta, z >= beta)``: 8."""
    half = Counted(0.5)
    z = _abs(a - b)
    small = half * z * z / beta
    large = z - half * beta
    return large if _cmp(z >= beta) else small


def huber_forward(a, b, delta):
    """``blendv(0.5 * z * z, delta * (z - 0.5 * delta), z >= delta)``: 8."""
    half = Counted(0.5)
    z = _abs(a - b)
    small = half * z * z
    large = delta * (z - half * delta)
    return large if _cmp(z >= delta) else small


def mse_backward(x, t, g, norm):
    """``scalar_vec * (self_vec - t1_vec) * t2_vec``: 3."""
    return norm * (x - t) * g


def smooth_l1_backward(x, t, g, norm, beta):
    """``x = input - target``; the sign by ``x > 0``; ``blendv(x / beta, sign, |x| >= beta)``;
    ``norm * output * g``: 7."""
    x = x - t
    sign = 1.0 if _cmp(x > 0) else -1.0
    ratio = x / beta
    output = sign if _cmp(_abs(x) >= beta) else ratio
    return norm * output * g


def huber_backward(x, t, g, norm, delta):
    """As smooth L1 with ``blendv(x, sign * delta, |x| >= delta)``: 7."""
    x = x - t
    sign = 1.0 if _cmp(x > 0) else -1.0
    clipped = sign * delta
    output = clipped if _cmp(_abs(x) >= delta) else x
    return norm * output * g


def _reduce(values, reduction):
    """``sum``: n adds into a zeroed accumulator; ``mean``: + the division."""
    if reduction == "none":
        return values
    total = Counted(0.0)
    for v in values:
        total = total + v
    return total / len(values) if reduction == "mean" else total


def _port(kind, x, t, g, reduction, param):
    """Forward values, forward FPO, backward values, backward FPO of the ported kernels."""
    xs = [Counted(v) for v in x.flatten().tolist()]
    ts = [Counted(v) for v in t.flatten().tolist()]
    n = len(xs)
    Counted.ops = 0
    if kind == "mse":
        losses = [mse_forward(a, b) for a, b in zip(xs, ts, strict=True)]
    elif kind == "smooth_l1":
        losses = [smooth_l1_forward(a, b, Counted(param)) for a, b in zip(xs, ts, strict=True)]
    else:
        losses = [huber_forward(a, b, Counted(param)) for a, b in zip(xs, ts, strict=True)]
    out = _reduce(losses, reduction)
    forward_ops = Counted.ops
    # the backward's norm, computed on the host before the kernel (not counted)
    scale = 2.0 if kind == "mse" else 1.0
    norm = Counted(scale / n if reduction == "mean" else scale)
    gs = g.flatten().tolist() if reduction == "none" else [float(g)] * n
    Counted.ops = 0
    if kind == "mse":
        grads = [mse_backward(a, b, Counted(c), norm) for a, b, c in zip(xs, ts, gs, strict=True)]
    elif kind == "smooth_l1":
        grads = [
            smooth_l1_backward(a, b, Counted(c), norm, Counted(param))
            for a, b, c in zip(xs, ts, gs, strict=True)
        ]
    else:
        grads = [
            huber_backward(a, b, Counted(c), norm, Counted(param))
            for a, b, c in zip(xs, ts, gs, strict=True)
        ]
    return out, forward_ops, grads, Counted.ops


def _torch_loss(kind, x, t, reduction, param):
    if kind == "mse":
        return F.mse_loss(x, t, reduction=reduction)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(x, t, reduction=reduction, beta=param)
    return F.huber_loss(x, t, reduction=reduction, delta=param)


_OP = {"mse": "mse_loss", "smooth_l1": "smooth_l1_loss", "huber": "huber_loss"}


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["mse", "smooth_l1", "huber"]),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    reduction=st.sampled_from(["none", "mean", "sum"]),
    param=st.sampled_from([0.25, 1.0, 2.5]),
    seed=st.integers(0, 2**16),
)
def test_regression_losses_equal_the_ported_kernels_forward_and_backward(
    kind, shape, reduction, param, seed
):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * 2
    t = torch.randn(*shape, generator=gen, dtype=torch.float64)
    xg = x.clone().requires_grad_()
    with gp.FPOCounter() as c:
        out = _torch_loss(kind, xg, t, reduction, param)
        g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
        out.backward(g)
    ref_out, forward_ops, ref_grads, backward_ops = _port(kind, x, t, g, reduction, param)
    # the ports compute torch's values: forward and the input's gradient
    expected_out = torch.tensor(ref_out, dtype=torch.float64).reshape(out.shape)
    torch.testing.assert_close(out.detach(), expected_out)
    expected_grad = torch.tensor(ref_grads, dtype=torch.float64).reshape(x.shape)
    torch.testing.assert_close(xg.grad, expected_grad)
    phases = c.result.by_op_phase
    assert phases[f"aten.{_OP[kind]}"]["forward"] == forward_ops
    assert phases[f"aten.{_OP[kind]}_backward"]["backward"] == backward_ops
    assert c.result.unknown_ops == {}


def test_the_per_element_counts_by_hand():
    """(3, 4), 12 elements. MSE ``(x - t)^2`` 2 per element, its backward ``norm (x - t) g``
    3 (36, whatever the reduction; the mean was 48). Smooth L1 and Huber 8 per element, + 12
    summed, + 13 averaged; backward 7 per element (84; it was 48). FlopCounterMode: 0."""
    x, t = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4)
    expected = {"mse": (24, 36), "smooth_l1": (96, 84), "huber": (96, 84)}
    for kind, (forward, backward) in expected.items():
        for reduction, extra in (("none", 0), ("sum", 12), ("mean", 13)):
            x.grad = None
            with gp.FPOCounter() as c:
                out = _torch_loss(kind, x, t, reduction, 1.0)
                out.backward(torch.ones_like(out))
            assert (c.result.forward_total, c.result.backward_total) == (forward + extra, backward)
            with FlopCounterMode(display=False) as f:
                _torch_loss(kind, x, t, reduction, 1.0).backward(torch.ones_like(out))
            assert f.get_total_flops() == 0


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_smooth_l1_with_beta_zero_is_atens_l1_loss(reduction):
    """``aten.smooth_l1_loss`` with ``beta = 0`` runs ATen's ``l1_loss_out`` (``|x - t|``: 2
    per element + the reduction) and its backward ``l1_loss_backward_out``: ``sgn(x - t) *
    norm``, 3 per element, the mean dividing the 0-d gradient once first (+ 1).
    (``F.smooth_l1_loss(beta=0)`` calls ``l1_loss`` itself, which autograd splits into
    ``sub`` and ``abs``: the same 2 per element.)"""
    x, t = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4)
    code = _REDUCTIONS[reduction]
    with gp.FPOCounter() as c:
        out = torch.ops.aten.smooth_l1_loss(x, t, code, 0.0)
        out.backward(torch.ones_like(out))
    reduce = {"none": 0, "sum": 12, "mean": 13}[reduction]
    assert c.result.by_op["aten.smooth_l1_loss"] == 24 + reduce
    assert c.result.by_op["aten.smooth_l1_loss_backward"] == 36 + (reduction == "mean")
    with gp.FPOCounter() as c:
        F.smooth_l1_loss(x, t, reduction=reduction, beta=0.0)
    assert c.result.forward_total == 24 + reduce


# -- log-softmax, and the softmax backward kernels ------------------------------------------------


def _exp(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.exp(float(v)))


def _log(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.log(float(v)))


def _max(a: float, b: float) -> Counted:
    """``blendv(max, x, x > max)`` / ``vec::maximum``: one compare."""
    Counted.ops += 1
    return Counted(max(float(a), float(b)))


def log_softmax_row(row, last):
    """``LogSoftmaxKernelImpl.h`` along one row: the max (1 per element), ``sum += exp(x -
    max)`` (3), ``log(sum)`` once, then ``x - max - log_sum`` (2: the kernel keeps the two
    subtractions apart, for accuracy). Along another dimension the max starts from ``-inf``
    and the sum from 0: 6 per element + 1; along the last (``vec::reduce_all``,
    ``map_reduce_all``) both start from their first values: 6 per element - 1 (s35; the port
    counted the last dimension as another until then)."""
    if last:
        peak = row[0]
        for x in row[1:]:
            peak = _max(peak, x)
        exps = [_exp(x - peak) for x in row]
        total = exps[0]
        for e in exps[1:]:
            total = total + e
    else:
        peak = Counted(-math.inf)
        for x in row:
            peak = _max(peak, x)
        total = Counted(0.0)
        for x in row:
            total = total + _exp(x - peak)
    log_sum = _log(total)
    return [x - peak - log_sum for x in row]


def softmax_backward_row(g, y, log, last):
    """Softmax ``sum = sum(g * y)``, ``(g - sum) * y`` (2); log-softmax ``sum = sum(g)``, ``g
    - exp(y) * sum`` (3). The sum into 0 along another dimension (``_vec_softmax_backward``:
    4 per element), from its first term along the last (``_vec_host_softmax_backward_lastdim``,
    ``map2_reduce_all`` / ``reduce_all``: 4 per element - 1 per row, s35)."""
    terms = list(g) if log else [a * b for a, b in zip(g, y, strict=True)]
    total = terms[0] if last else Counted(0.0) + terms[0]
    for term in terms[1:]:
        total = total + term
    if log:
        return [a - _exp(b) * total for a, b in zip(g, y, strict=True)]
    return [(a - total) * b for a, b in zip(g, y, strict=True)]


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    dim=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_log_softmax_and_the_softmax_backwards_equal_the_ported_kernels(shape, dim, seed):
    """Log-softmax 6 per element - 1 per row along the last dimension, + 1 along another (it
    was counted 5 + 1: one final subtraction, then 6 + 1 everywhere until s35); the backward
    kernels 4 per element, less 1 per row along the last dimension, as the rules count them."""
    dim = dim % len(shape)
    last = dim == len(shape) - 1
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    rows = x.movedim(dim, -1).reshape(-1, shape[dim]).tolist()
    grad_rows = g.movedim(dim, -1).reshape(-1, shape[dim]).tolist()
    for log in (True, False):
        xg = x.clone().requires_grad_()
        with gp.FPOCounter() as c:
            out = torch.log_softmax(xg, dim) if log else torch.softmax(xg, dim)
            out.backward(g)
        y_rows = out.detach().movedim(dim, -1).reshape(-1, shape[dim]).tolist()
        Counted.ops = 0
        grads = [
            softmax_backward_row([Counted(v) for v in gr], [Counted(v) for v in yr], log, last)
            for gr, yr in zip(grad_rows, y_rows, strict=True)
        ]
        backward_ops = Counted.ops
        expected = torch.tensor(grads, dtype=torch.float64).reshape(
            *[s for i, s in enumerate(shape) if i != dim], shape[dim]
        )
        torch.testing.assert_close(xg.grad.movedim(dim, -1), expected)
        name = "aten._log_softmax" if log else "aten._softmax"
        assert c.result.by_op_phase[f"{name}_backward_data"]["backward"] == backward_ops
        if log:
            Counted.ops = 0
            values = [log_softmax_row([Counted(v) for v in row], last) for row in rows]
            forward = torch.tensor(values, dtype=torch.float64).reshape(expected.shape)
            torch.testing.assert_close(out.detach().movedim(dim, -1), forward)
            assert c.result.by_op_phase[name]["forward"] == Counted.ops
            assert Counted.ops == 6 * x.numel() + (-1 if last else 1) * len(rows)


def logsumexp_row(row):
    """ATen's ``logsumexp_out_impl`` on one row: ``amax`` (1 per element), the max's
    ``abs() == INFINITY`` test (2, once), ``sum(exp(x - max))`` (3 per element), ``log`` and
    the max added back (2): 4 per element + 4."""
    peak = Counted(-math.inf)
    for x in row:
        peak = _max(peak, x)
    if _cmp(_abs(peak) == math.inf):
        peak = Counted(0.0)
    total = Counted(0.0)
    for x in row:
        total = total + _exp(x - peak)
    return _log(total) + peak


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    dim=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_logsumexp_equals_the_ported_function(shape, dim, seed):
    """4 per element + 4 per output (it was + 2: the infinity test was not counted)."""
    dim = dim % len(shape)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with gp.FPOCounter() as c:
        out = torch.logsumexp(x, dim)
    rows = x.movedim(dim, -1).reshape(-1, shape[dim]).tolist()
    Counted.ops = 0
    values = [logsumexp_row([Counted(v) for v in row]) for row in rows]
    torch.testing.assert_close(out.reshape(-1), torch.tensor(values, dtype=torch.float64))
    assert c.result.by_op["aten.logsumexp"] == Counted.ops == 4 * x.numel() + 4 * len(rows)
