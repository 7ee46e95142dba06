"""``xlogy`` (KL divergence's ``xlogy(t, t)``) and ``special_xlog1py`` against a port of ATen's
CPU kernel that counts every operation (audit s36).

``xlogy_kernel`` (torch 2.13, ``native/cpu/BinaryOpsKernel.cpp``; ``xlog1py_kernel`` with
``log1p``) is scalar code with two early returns::

    if (at::_isnan(y)) return NAN;
    if (x == 0) return 0;
    return x * std::log(y);

so an element costs 4 (the NaN test, the compare, the log, the product), 2 when ``x`` is 0 and
1 when ``y`` is NaN. The port computes with :class:`Counted` floats, its values equal torch's,
and its count equals the counter's on CPU tensors (the early returns read from the values); on
meta tensors every element counts 4, an upper bound. Before s36 every element was counted 2.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402


def _test(flag):
    Counted.ops += 1
    return flag


def _log(v):
    return -math.inf if v == 0 else math.log(v)


def port(x, y, log=_log):
    xs = [float(v) for v in x.reshape(-1).tolist()]
    ys = [float(v) for v in y.reshape(-1).tolist()]
    Counted.ops = 0
    out = []
    for xv, yv in zip(xs, ys, strict=True):
        if _test(math.isnan(yv)):
            out.append(math.nan)
        elif _test(xv == 0):
            out.append(0.0)
        else:
            Counted.ops += 1  # the log
            out.append(float(Counted(xv) * log(yv)))
    return out, Counted.ops


def _cases():
    t = torch.tensor([[0.0, 0.25, 0.75], [0.5, 0.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([[0.3, float("nan"), 2.0], [0.0, 1.5, float("nan")]], dtype=torch.float64)
    return [
        ("target with zeros", t, t),
        ("NaN in y", t, y),
        ("no zeros", t + 0.1, t + 0.2),
        ("broadcast x", torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64), y),
    ]


@pytest.mark.parametrize(("name", "x", "y"), _cases())
@pytest.mark.parametrize("op", ["xlogy", "xlog1py"])
def test_xlogy_equals_the_ported_kernel(name, x, y, op):
    fn = torch.xlogy if op == "xlogy" else torch.special.xlog1py
    out = fn(x, y)
    xb, yb = torch.broadcast_tensors(x, y)
    values, expected = port(xb, yb, _log if op == "xlogy" else math.log1p)
    assert torch.allclose(
        out.reshape(-1), torch.tensor(values, dtype=torch.float64), equal_nan=True
    ), name
    assert gp.count_fpo(fn, x, y, backward=False).total == expected
    meta = gp.count_fpo(fn, x.to("meta"), y.to("meta"), backward=False).total
    assert meta == 4 * out.numel() >= expected


def test_in_place_xlogy_reads_x_before_it_is_overwritten():
    """``x.xlogy_(y)``: the zeros of ``x`` are read before the kernel writes over them."""
    x = torch.tensor([0.0, 0.0, 2.0])
    y = torch.tensor([1.0, 2.0, 3.0])
    assert gp.count_fpo(lambda a, b: a.clone().xlogy_(b), x, y, backward=False).total == 8


def test_kl_divergence_of_a_target_with_zeros_forward_and_backward():
    """``F.kl_div(log_q, p, reduction="batchmean")`` (distillation's loss), (2, 3), p with 2
    zeros: ``xlogy(p, p)`` 4 x 4 + 2 x 2 = 20, ``p * log_q`` 6, the subtraction 6, the sum 6,
    the batch mean's division 1: 39 forward (31 before s36). Backward: the division's 1, the
    product's ``-g * p`` 6 + 6."""
    p = torch.tensor([[0.0, 0.25, 0.75], [0.5, 0.0, 0.5]])
    log_q = torch.randn(2, 3).log_softmax(1).requires_grad_()
    r = gp.count_fpo(lambda a: F.kl_div(a, p, reduction="batchmean"), log_q)
    assert r.by_op["aten.xlogy"] == 20
    assert r.forward_total == 20 + 6 + 6 + 6 + 1
    assert r.backward_total == 1 + 6 + 6
