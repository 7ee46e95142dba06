"""Binary cross-entropy, forward and backward, with and without logits, against ports of
ATen's CPU kernels that count every operation (audit s36).

The kernels (torch 2.13, ``native/Loss.cpp``):

- ``binary_cross_entropy_out_cpu``: per element ``TORCH_CHECK((x >= 0) && (x <= 1))`` and
  ``TORCH_CHECK((t >= 0) && (t <= 1))`` (4 compares on a call that succeeds: torch 2.13
  rejects a target of 1.5 from inside the kernel), then ``(t - 1) * max(log1p(-x), -100) - t
  * max(log(x), -100)``; ``loss.mul_(weight)``; ``apply_loss_reduction`` (``sum``: N adds,
  ``mean``: + 1 division);
- ``binary_cross_entropy_backward_out_cpu``: ``g * (x - t) / max((1 - x) * x, 1e-12)`` (no
  range check), ``grad_input.mul_(weight)``, the mean's ``div_(numel)`` per element;
- ``binary_cross_entropy_with_logits``: ``(1 - t) * x - log_sigmoid(x)`` with
  ``log_sigmoid_forward``'s 6 (``min(x, 0) - log1p(exp(-|x|))``), ``pos_weight``'s ``(pw - 1)
  * t + 1`` times the log-sigmoid; no range check.

Each port computes with :class:`Counted` floats (compares, log, log1p, exp, abs and the clamps
counted by the helpers, 1 each); its values equal torch's (float64) and its count equals the
counter's on CPU tensors and on meta copies. Before s36 the forward was counted 9 per element
(torch's formula, without the kernel's 4 range checks).
"""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


def _fn(f, v):
    Counted.ops += 1
    return Counted(f(float(v)))


def _neg(v):
    Counted.ops += 1
    return Counted(-float(v))


def _ge(a, b):
    Counted.ops += 1
    return float(a) >= float(b)


def _le(a, b):
    Counted.ops += 1
    return float(a) <= float(b)


def _max(a, b):
    Counted.ops += 1
    return Counted(max(float(a), float(b)))


def _min(a, b):
    Counted.ops += 1
    return Counted(min(float(a), float(b)))


def _reduce(losses, reduction):
    if reduction == "none":
        return losses
    acc = 0.0
    for v in losses:
        acc = acc + v
    return [acc / len(losses)] if reduction == "mean" else [acc]


def bce_port(x, t, w, reduction):
    xs = [Counted(v) for v in x.reshape(-1).tolist()]
    ts = [Counted(v) for v in t.reshape(-1).tolist()]
    ws = w.reshape(-1).tolist() if w is not None else None
    Counted.ops = 0
    losses = []
    for i, (xv, tv) in enumerate(zip(xs, ts, strict=True)):
        assert _ge(xv, 0) and _le(xv, 1)  # TORCH_CHECK on the input
        assert _ge(tv, 0) and _le(tv, 1)  # TORCH_CHECK on the target
        log1m = _max(_fn(math.log1p, _neg(xv)), -100)
        logx = _max(_fn(math.log, xv), -100)
        loss = (tv - 1) * log1m - tv * logx
        losses.append(loss * ws[i] if ws is not None else loss)
    return _reduce(losses, reduction), Counted.ops


def bce_backward_port(g, x, t, w, reduction):
    gs = [Counted(v) for v in g.expand_as(x).reshape(-1).tolist()]
    xs = [Counted(v) for v in x.reshape(-1).tolist()]
    ts = [Counted(v) for v in t.reshape(-1).tolist()]
    ws = w.reshape(-1).tolist() if w is not None else None
    Counted.ops = 0
    out = []
    for i, (gv, xv, tv) in enumerate(zip(gs, xs, ts, strict=True)):
        v = gv * (xv - tv) / _max((1 - xv) * xv, 1e-12)
        if ws is not None:
            v = v * ws[i]
        if reduction == "mean":
            v = v / len(xs)
        out.append(v)
    return out, Counted.ops


def bce_with_logits_port(x, t, w, pw, reduction):
    xs = [Counted(v) for v in x.reshape(-1).tolist()]
    ts = [Counted(v) for v in t.reshape(-1).tolist()]
    cols = x.shape[-1]
    Counted.ops = 0
    log_weight = None
    if pw is not None:  # (pos_weight - 1) once per pos_weight element
        shifted = [Counted(v) - 1 for v in pw.reshape(-1).tolist()]
    losses = []
    for i, (xv, tv) in enumerate(zip(xs, ts, strict=True)):
        # log_sigmoid_forward: min(x, 0) - log1p(exp(-|x|))
        ls = _min(xv, 0) - _fn(math.log1p, _fn(math.exp, _neg(_fn(abs, xv))))
        if pw is not None:
            log_weight = shifted[i % cols] * tv + 1
            ls = ls * log_weight
        loss = (1 - tv) * xv - ls
        losses.append(loss * w.reshape(-1)[i].item() if w is not None else loss)
    return _reduce(losses, reduction), Counted.ops


def _cases(count):
    rng = random.Random(3636)
    return [
        {
            "shape": (rng.randint(1, 4), rng.randint(1, 5)),
            "weight": rng.random() < 0.4,
            "reduction": rng.choice(list(_REDUCTIONS)),
            "pos_weight": rng.random() < 0.5,
        }
        for _ in range(count)
    ]


def _total(fn, *tensors):
    return gp.count_fpo(fn, *tensors, backward=False).total


@pytest.mark.parametrize("case", _cases(12))
def test_binary_cross_entropy_forward_and_backward_equal_the_ported_kernels(case):
    torch.manual_seed(2)
    shape, reduction = case["shape"], case["reduction"]
    x = torch.rand(shape, dtype=torch.float64).clamp(0.01, 0.99)
    t = torch.rand(shape, dtype=torch.float64)
    w = torch.rand(shape, dtype=torch.float64) if case["weight"] else None
    y = F.binary_cross_entropy(x, t, weight=w, reduction=reduction)
    values, expected = bce_port(x, t, w, reduction)
    assert torch.allclose(y.reshape(-1), torch.tensor(values, dtype=torch.float64))

    def forward(a, b, c=None):
        return F.binary_cross_entropy(a, b, weight=c, reduction=reduction)

    metas = [v.to("meta") for v in (x, t, w) if v is not None]
    assert _total(forward, *[v for v in (x, t, w) if v is not None]) == expected
    assert _total(forward, *metas) == expected

    g = torch.randn(y.shape, dtype=torch.float64)
    r = _REDUCTIONS[reduction]
    grad = torch.ops.aten.binary_cross_entropy_backward(g, x, t, w, r)
    values, expected = bce_backward_port(g, x, t, w, reduction)
    assert torch.allclose(grad.reshape(-1), torch.tensor(values, dtype=torch.float64))

    def backward(go, a, b, c=None):
        return torch.ops.aten.binary_cross_entropy_backward(go, a, b, c, r)

    tensors = [v for v in (g, x, t, w) if v is not None]
    assert _total(backward, *tensors) == expected
    assert _total(backward, *[v.to("meta") for v in tensors]) == expected


@pytest.mark.parametrize("case", _cases(12))
def test_binary_cross_entropy_with_logits_equals_the_ported_kernel(case):
    torch.manual_seed(3)
    shape, reduction = case["shape"], case["reduction"]
    x = torch.randn(shape, dtype=torch.float64) * 3
    t = torch.rand(shape, dtype=torch.float64)
    w = torch.rand(shape, dtype=torch.float64) if case["weight"] else None
    pw = torch.rand(shape[-1], dtype=torch.float64) * 2 if case["pos_weight"] else None
    y = F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction)
    values, expected = bce_with_logits_port(x, t, w, pw, reduction)
    assert torch.allclose(y.reshape(-1), torch.tensor(values, dtype=torch.float64))

    def counted(a, b, c, d):
        return _total(
            lambda u, v: F.binary_cross_entropy_with_logits(
                u, v, weight=c, pos_weight=d, reduction=reduction
            ),
            a,
            b,
        )

    assert counted(x, t, w, pw) == expected
    meta = [v.to("meta") if v is not None else None for v in (x, t, w, pw)]
    assert counted(*meta) == expected


def test_a_bce_training_step_charges_the_loss_outside_the_model():
    """A sigmoid head and BCELoss: the loss's 13 per element forward and 6 backward (+ 1 for
    the mean's division) are charged to ``(outside the model)``, not to the model's modules."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid())
    x, t = torch.randn(5, 3), torch.rand(5, 4)
    with gp.FPOCounter(model) as c:
        torch.nn.functional.binary_cross_entropy(model(x), t).backward()
    r = c.result
    assert r.by_op["aten.binary_cross_entropy"] == 13 * 20 + 20 + 1
    assert r.by_op["aten.binary_cross_entropy_backward"] == 6 * 20 + 20
    model_part = r.by_module[""]
    loss_part = r.by_op["aten.binary_cross_entropy"] + r.by_op["aten.binary_cross_entropy_backward"]
    assert r.total - model_part == loss_part
