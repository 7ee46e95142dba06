"""Fused Adam, AdamW and SGD steps against ports of ATen's CPU kernels that count every
operation (audit s35).

The kernels (torch 2.13): ``adam_math`` (``native/cpu/FusedAdamKernel.cpp``, ``ADAM_MODE``
ORIGINAL for ``_fused_adam_``, ADAMW for ``_fused_adamw_``) and ``sgd_math``
(``native/cpu/FusedSGDKernel.cpp``), per parameter element:

* Adam: ``g / grad_scale`` (with a ``GradScaler``), ``g * -1`` (``maximize``), ``g + p * wd``
  (Adam) or ``p * (1 - lr * wd)`` (AdamW), ``exp_avg.lerp_(g, 1 - beta1)`` as
  ``fmadd(w, g - m, m)`` (3: the weight's ``|w| < 0.5`` test and ``w - 1`` are on the
  constant), ``v * beta2 + (1 - beta2) * g * g`` (4), AMSGrad's maximum (1),
  ``sqrt(v) / sqrt(bc2) + eps`` (3), ``p + (-step_size) * m / denom`` (3): 13 per element.
* SGD: ``g / grad_scale``, ``g * -1``, ``g + p * wd`` (2), momentum after the first step
  ``buf * m + g * (1 - dampening)`` (3; the multiply by ``1 - dampening`` is by 1 when
  dampening is 0, not counted, as ``add``'s ``alpha`` of 1), the first step copies ``g`` (0),
  Nesterov ``g + buf * m`` (2), ``p + g * -lr`` (2).

Each port computes with :class:`Counted` floats (sqrt and the maximum counted by helpers, 1
each) from the tensors' values, in float64; its values are checked against torch's after one and
two steps and its count per step equals the counter's count of the fused op. The step counters'
``+ 1`` (``_foreach_add_``, 1 per parameter tensor) is outside the fused op.

Before s35 the fused rules did not count ``maximize`` (the op-by-op steps count their ``neg``:
a fused Adam with ``maximize=True`` counted 1 FPO per element less than its foreach and for-loop
forms) nor the division by a ``GradScaler``'s scale (with a fused optimizer the scaler does not
unscale the gradients: it runs ``_amp_foreach_non_finite_check_and_unscale_`` with a scale of 1
to find infs, 2 per element as with any optimizer, and the kernel divides, 1 more).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402
from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402

SHAPES = [(5, 3), (3,), (17,)]  # 35 elements: whole 4-lane double vectors and tails


def _sqrt(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.sqrt(float(v)))


def _max(a: float, b: float) -> Counted:
    Counted.ops += 1
    return Counted(max(float(a), float(b)))


def adam_element(
    p, m, v, vmax, g, *, step, lr, beta1, beta2, eps, wd, amsgrad, maximize, adamw, scale
):
    """One element of ``adam_math``; returns the new (p, m, v, vmax)."""
    bc1 = 1 - beta1**step
    bc2_sqrt = math.sqrt(1 - beta2**step)
    step_size = lr / bc1
    if scale is not None:
        g = g / scale
    if maximize:
        g = g * -1.0
    if wd != 0:
        if adamw:
            p = p * (1 - lr * wd)
        else:
            g = g + p * wd
    w = 1 - beta1  # exp_avg.lerp_(g, w): fmadd(coeff, g - m, base), coeff and base picked by |w|
    coeff, base = (w, m) if abs(w) < 0.5 else (w - 1, g)
    m = coeff * (g - m) + base
    v = v * beta2 + (1 - beta2) * g * g
    if amsgrad:
        vmax = _max(vmax, v)
        denom = _sqrt(vmax) / bc2_sqrt + eps
    else:
        denom = _sqrt(v) / bc2_sqrt + eps
    p = p + (-step_size) * m / denom
    return p, m, v, vmax


def sgd_element(p, g, buf, *, first, lr, momentum, dampening, wd, nesterov, maximize, scale):
    """One element of ``sgd_math``; returns the new (p, buf)."""
    if scale is not None:
        g = g / scale
    if maximize:
        g = g * -1.0
    if wd != 0:
        g = g + p * wd
    if momentum != 0:
        if first:
            buf = g
        else:
            # the kernel multiplies by 1 - dampening always: by 1 (not counted) when it is 0
            buf = buf * momentum + (g * (1 - dampening) if dampening else g)
        g = g + buf * momentum if nesterov else buf
    p = p + g * -lr
    return p, buf


def _flat(t) -> list[Counted]:
    return [Counted(float(x)) for x in t.detach().reshape(-1).tolist()]


def _params(seed: int) -> list[nn.Parameter]:
    torch.manual_seed(seed)
    return [nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in SHAPES]


def _grads(params, step: int, scale: float | None) -> None:
    torch.manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn_like(p) * (scale or 1.0)


ADAM_CASES = [
    dict(adamw=False),
    dict(adamw=False, wd=0.1),
    dict(adamw=False, amsgrad=True),
    dict(adamw=False, maximize=True),
    dict(adamw=False, wd=0.1, amsgrad=True, maximize=True),
    dict(adamw=True),
    dict(adamw=True, wd=0.1),
    dict(adamw=True, wd=0.1, amsgrad=True, maximize=True),
    dict(adamw=False, beta1=0.2),  # a lerp weight of 0.8: the other branch
    dict(adamw=False, scale=8.0),
    dict(adamw=True, wd=0.1, scale=8.0),
]


def _scaler(scale: float | None):
    """A ``GradScaler`` of that scale (its scale made, as ``scaler.scale(loss)`` makes it)."""
    if scale is None:
        return None
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    scaler.scale(torch.ones(()))
    return scaler


def _counter_per_step(opt, op: str, scaler=None) -> int:
    if scaler is None:
        result = gp.count_fpo(lambda: opt.step(), backward=False)
    else:
        result = gp.count_fpo(lambda: (scaler.step(opt), scaler.update()), backward=False)
    assert result.unknown_ops == {}
    return result.by_op[op]


@pytest.mark.parametrize(
    "case", ADAM_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items())
)
def test_fused_adam_counts_what_its_kernel_computes(case):
    adamw = case["adamw"]
    wd, amsgrad = case.get("wd", 0.0), case.get("amsgrad", False)
    maximize, scale = case.get("maximize", False), case.get("scale")
    lr, beta1, beta2, eps = 0.01, case.get("beta1", 0.9), 0.999, 1e-8
    params = _params(0)
    cls = torch.optim.AdamW if adamw else torch.optim.Adam
    opt = cls(
        params,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=wd,
        amsgrad=amsgrad,
        maximize=maximize,
        fused=True,
    )
    scaler = _scaler(scale)
    state = [
        [
            _flat(p),
            [Counted(0.0)] * p.numel(),
            [Counted(0.0)] * p.numel(),
            [Counted(0.0)] * p.numel(),
        ]
        for p in params
    ]
    n = sum(p.numel() for p in params)
    for step in (1, 2):
        _grads(params, step, scale)
        grads = [_flat(p.grad) for p in params]
        Counted.ops = 0
        for st, g in zip(state, grads, strict=True):
            new = [
                adam_element(
                    *e,
                    gv,
                    step=step,
                    lr=lr,
                    beta1=beta1,
                    beta2=beta2,
                    eps=eps,
                    wd=wd,
                    amsgrad=amsgrad,
                    maximize=maximize,
                    adamw=adamw,
                    scale=scale,
                )
                for e, gv in zip(zip(*st, strict=True), g, strict=True)
            ]
            st[:] = [list(col) for col in zip(*new, strict=True)]
        ported = Counted.ops
        op = "aten._fused_adamw_" if adamw else "aten._fused_adam_"
        assert _counter_per_step(opt, op, scaler) == ported
        for p, st in zip(params, state, strict=True):
            torch.testing.assert_close(
                p.detach().reshape(-1), torch.tensor([float(x) for x in st[0]], dtype=p.dtype)
            )
    per = 13 + (1 if adamw else 2) * (wd != 0) + amsgrad + maximize + (scale is not None)
    assert ported == per * n


SGD_CASES = [
    dict(),
    dict(wd=0.1),
    dict(maximize=True),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.1),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.9, nesterov=True, wd=0.1, maximize=True),
    dict(momentum=0.9, scale=8.0),
]


@pytest.mark.parametrize(
    "case", SGD_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain"
)
def test_fused_sgd_counts_what_its_kernel_computes(case):
    wd, momentum = case.get("wd", 0.0), case.get("momentum", 0.0)
    dampening, nesterov = case.get("dampening", 0.0), case.get("nesterov", False)
    maximize, scale, lr = case.get("maximize", False), case.get("scale"), 0.01
    params = _params(1)
    opt = torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=wd,
        nesterov=nesterov,
        maximize=maximize,
        fused=True,
    )
    scaler = _scaler(scale)
    state = [[_flat(p), [Counted(0.0)] * p.numel()] for p in params]
    counts = []
    for step in (1, 2):
        _grads(params, step, scale)
        grads = [_flat(p.grad) for p in params]
        Counted.ops = 0
        for st, g in zip(state, grads, strict=True):
            new = [
                sgd_element(
                    pv,
                    gv,
                    bv,
                    first=step == 1,
                    lr=lr,
                    momentum=momentum,
                    dampening=dampening,
                    wd=wd,
                    nesterov=nesterov,
                    maximize=maximize,
                    scale=scale,
                )
                for pv, gv, bv in zip(st[0], g, st[1], strict=True)
            ]
            st[:] = [list(col) for col in zip(*new, strict=True)]
        counts.append(Counted.ops)
        assert _counter_per_step(opt, "aten._fused_sgd_", scaler) == Counted.ops
        for p, st in zip(params, state, strict=True):
            torch.testing.assert_close(
                p.detach().reshape(-1), torch.tensor([float(x) for x in st[0]], dtype=p.dtype)
            )
    n = sum(p.numel() for p in params)
    base = 2 + 2 * (wd != 0) + maximize + (scale is not None) + 2 * nesterov
    later = base + (2 + (dampening != 0) if momentum else 0)
    assert counts == [base * n, later * n]


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        (torch.optim.Adam, dict(maximize=True)),
        (torch.optim.Adam, dict(maximize=True, weight_decay=0.1, amsgrad=True)),
        (torch.optim.AdamW, dict(maximize=True, weight_decay=0.1)),
        (torch.optim.SGD, dict(lr=0.01, maximize=True, momentum=0.9, weight_decay=0.1)),
        (torch.optim.SGD, dict(lr=0.01, momentum=0.9, nesterov=True)),
        (torch.optim.SGD, dict(lr=0.01, momentum=0.9, dampening=0.1)),
    ],
)
def test_for_loop_foreach_and_fused_steps_count_the_same(factory, kwargs):
    """A whole step (the step counters' ``+ 1`` included) counts the same for-loop, foreach and
    fused, first and second step: the kernels run the op-by-op arithmetic. With ``maximize``
    the fused steps counted 1 FPO per element less before s35: Adam with ``maximize`` on the
    three tensors here (35 elements) is 14 x 35 + 3 (the step counters) = 493 each way; the
    fused step counted 458."""
    totals = []
    for impl in (dict(foreach=False), dict(foreach=True), dict(fused=True)):
        params = _params(2)
        opt = factory(params, **kwargs, **impl)
        per_step = []
        for step in (1, 2):
            _grads(params, step, None)
            per_step.append(gp.count_fpo(lambda o=opt: o.step(), backward=False).total)
        totals.append(per_step)
    assert totals[0] == totals[1] == totals[2]
    if factory is torch.optim.Adam and kwargs == dict(maximize=True):
        assert totals[2] == [493, 493]


def test_fused_adam_with_a_grad_scaler_counts_the_division():
    """With a ``GradScaler`` a fused Adam's kernel divides each gradient by the scale (1 per
    element) after the scaler's inf check (2 per element, scale 1): 3 per element where the
    for-loop Adam's unscaling is 2. Linear(5, 3), 18 elements: 296 FPO a step against 275
    (+ 18 the division; the fused step also sums the found-inf flags and takes them off the
    two step counters, 1 + 1 + 2, and does not take the scale's reciprocal, - 1)."""
    totals = {}
    for impl in ("foreach", "fused"):
        torch.manual_seed(0)
        model = nn.Linear(5, 3)
        opt = torch.optim.Adam(
            model.parameters(), **{impl: True} if impl == "fused" else {"foreach": False}
        )
        scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        for _ in range(2):
            model.zero_grad()
            scaler.scale(model(torch.randn(4, 5)).sum()).backward()
            result = gp.count_fpo(lambda o=opt, s=scaler: (s.step(o), s.update()), backward=False)
        totals[impl] = result.total
    assert totals == {"foreach": 275, "fused": 296}
