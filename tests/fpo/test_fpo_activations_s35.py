"""Sigmoid, SiLU, GLU, GELU (both forms), and the sigmoid and tanh backwards against ports of
ATen's CPU kernels that count every operation (audit s35).

Each port is the vectorised lambda of ATen's kernel (``native/cpu/UnaryOpsKernel.cpp``:
``sigmoid_kernel``; ``native/cpu/Activation.cpp``: ``glu_kernel``, ``glu_backward_kernel`` with
``GatedLinearUnit.cpp``'s sigmoid and product, ``silu_kernel``, ``silu_backward_kernel``,
``GeluKernelImpl``, ``GeluBackwardKernelImpl``; ``native/cpu/BinaryOpsKernel.cpp``:
``sigmoid_backward_kernel``, ``tanh_backward_kernel``) written out with :class:`Counted` floats,
``exp``, ``erf`` and ``tanh`` counted 1 each by the helpers and a negation 1 (as ``aten.neg``). As
docs/fpo.md counts every kernel, the vectorised form is the one counted (a tensor's whole vectors
run it), so a product of constants written inside the lambda (``kThreeVec * kKappaVec``) counts, and
``x * x * x`` is two multiplies even where ``x * x`` was computed just before. Values are checked
against torch's; counts equal the counter's on CPU tensors and on meta copies.

Before s35 the rules counted SiLU 2 (a sigmoid and a multiply), its backward 6 (the sigmoid as
one op), GELU's tanh-form backward 18 (the scalar form, ``3 kappa`` folded), the sigmoid 1 (as
one elementary function), GLU 2 and its backward 6: the kernels run 4, 9, 20, 4 (``(1 +
exp(-x)).reciprocal()``), 5 and 9. SiLU's backward as autograd runs it, its CompositeImplicit
decomposition (a sigmoid, ``1 - s``, three multiplies, an add), is 9 too (6 before).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402


def _fn(f):
    def apply(v: float) -> Counted:
        Counted.ops += 1
        return Counted(f(float(v)))

    return apply


_exp, _erf, _tanh = _fn(math.exp), _fn(math.erf), _fn(math.tanh)
_neg = _fn(lambda v: -v)

ONE, HALF = Counted(1.0), Counted(0.5)
ALPHA = Counted(math.sqrt(0.5))  # M_SQRT1_2
BETA_ERF = Counted(2 / math.sqrt(math.pi) * math.sqrt(0.5) * 0.5)  # M_2_SQRTPI M_SQRT1_2 0.5
BETA_TANH = Counted(math.sqrt(2) * 2 / math.sqrt(math.pi) * 0.5)  # M_SQRT2 M_2_SQRTPI 0.5
KAPPA, THREE, MINUS_HALF = Counted(0.044715), Counted(3.0), Counted(-0.5)


def sigmoid(x):
    """``(1 + exp(-x)).reciprocal()``: 4."""
    return ONE / (ONE + _exp(_neg(x)))


def glu(a, b):
    """``a * (1 / (1 + exp(-b)))``: 5."""
    return a * (ONE / (ONE + _exp(_neg(b))))


def glu_backward(g, a, b):
    """``s`` by the sigmoid kernel (4), ``(1 - s) * s * a * g`` (4), ``s * g`` (1): 9 per
    output-gradient element, the two halves of the input gradient."""
    s = sigmoid(b)
    return (ONE - s) * s * a * g, s * g


def silu(x):
    """``x / (1 + exp(-x))``: 4."""
    return x / (ONE + _exp(_neg(x)))


def silu_backward(dy, x):
    """``s = 1 / (1 + exp(-x))``; ``dy * s * (1 + x * (1 - s))``: 9."""
    s = ONE / (ONE + _exp(_neg(x)))
    return dy * s * (ONE + x * (ONE - s))


def gelu(x, tanh):
    """erf ``x * 0.5 * (1 + erf(x * alpha))``: 5; tanh ``0.5 * x * (1 + tanh(beta * (x +
    kappa * x * x * x)))``: 9."""
    if tanh:
        inner = BETA_TANH * (x + KAPPA * (x * x * x))
        return HALF * x * (ONE + _tanh(inner))
    return x * HALF * (ONE + _erf(x * ALPHA))


def gelu_backward(dy, x, tanh):
    """erf: cdf 4, pdf 4, ``dy * (cdf + x * pdf)`` 3: 11. tanh: 20 (see the module doc)."""
    if tanh:
        x_sq = x * x
        x_cube = x * x * x
        t = _tanh(BETA_TANH * (x + KAPPA * x_cube))
        left = HALF * x
        right = ONE + t
        left_derivative = HALF * right
        tanh_derivative = ONE - t * t
        inner_derivative = BETA_TANH * (ONE + THREE * KAPPA * x_sq)
        right_derivative = left * tanh_derivative * inner_derivative
        return dy * (left_derivative + right_derivative)
    cdf = HALF * (ONE + _erf(x * ALPHA))
    pdf = BETA_ERF * _exp(x * x * MINUS_HALF)
    return dy * (cdf + x * pdf)


def sigmoid_backward(g, y):
    """``g * (1 - y) * y``: 3."""
    return g * (ONE - y) * y


def tanh_backward(g, y):
    """``g * (1 - y * y)``: 3."""
    return g * (ONE - y * y)


X = torch.linspace(-4, 4, 23, dtype=torch.float64).reshape(23)
G = torch.linspace(0.5, -1.5, 23, dtype=torch.float64)


def _port(f, *tensors):
    Counted.ops = 0
    rows = zip(*(t.tolist() for t in tensors), strict=True)
    values = [f(*(Counted(v) for v in vs)) for vs in rows]
    return torch.tensor(values, dtype=torch.float64), Counted.ops


def _counts(fn, *tensors):
    """(forward, backward) FPO of ``fn`` on CPU tensors and on meta copies (both equal)."""
    out = []
    for device in ("cpu", "meta"):
        moved = [t.to(device) for t in tensors]
        r = gp.count_fpo(fn, *moved, backward=False)
        out.append(r.total)
    assert out[0] == out[1]
    return out[0]


CASES = {
    # name: (forward port, forward op, backward port, backward op, per element fwd, bwd)
    "silu": (
        silu,
        F.silu,
        silu_backward,
        lambda g, x: torch.ops.aten.silu_backward(g, x),
        4,
        9,
    ),
    "gelu": (
        lambda x: gelu(x, False),
        F.gelu,
        lambda g, x: gelu_backward(g, x, False),
        lambda g, x: torch.ops.aten.gelu_backward(g, x),
        5,
        11,
    ),
    "gelu tanh": (
        lambda x: gelu(x, True),
        lambda x: F.gelu(x, approximate="tanh"),
        lambda g, x: gelu_backward(g, x, True),
        lambda g, x: torch.ops.aten.gelu_backward(g, x, approximate="tanh"),
        9,
        20,
    ),
}


AUTOGRAD_BACKWARD = {"silu": RULES["aten.sigmoid"].fn((1,), out_shape=(1,)) + 5}
assert AUTOGRAD_BACKWARD["silu"] == 9  # as the fused kernel's


@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_and_its_backward_equal_the_ported_kernel(name):
    port, op, port_backward, op_backward, forward, backward = CASES[name]
    values, ops = _port(port, X)
    torch.testing.assert_close(op(X), values)
    assert ops == forward * X.numel() == _counts(op, X)
    values, ops = _port(port_backward, G, X)
    torch.testing.assert_close(op_backward(G, X), values)
    rule = RULES[f"aten.{name.split()[0]}_backward"].fn
    kwargs = {"approximate": "tanh"} if "tanh" in name else {}
    assert ops == backward * X.numel() == rule(G.shape, X.shape, out_shape=X.shape, **kwargs)
    # what a training step runs: gelu_backward's kernel; silu_backward's CompositeImplicit
    # decomposition (``math_silu_backward``, registered beside its CPU kernel, is what the
    # dispatcher runs, inference mode too): sigmoid, 1 - s, three multiplies and an add
    ran = AUTOGRAD_BACKWARD.get(name, backward) * X.numel()
    assert _counts(op_backward, G, X) == ran
    xg = X.clone().requires_grad_()
    with gp.FPOCounter() as c:
        op(xg).backward(G)
    torch.testing.assert_close(xg.grad, values)
    assert c.result.backward_total == ran


@pytest.mark.parametrize(
    ("port", "op", "forward"),
    [
        (sigmoid_backward, torch.ops.aten.sigmoid_backward, torch.sigmoid),
        (tanh_backward, torch.ops.aten.tanh_backward, torch.tanh),
    ],
)
def test_sigmoid_and_tanh_backward_equal_the_ported_kernels(port, op, forward):
    y = forward(X)
    values, ops = _port(port, G, y)
    torch.testing.assert_close(op(G, y), values)
    assert ops == 3 * X.numel() == _counts(op, G, y)


def test_sigmoid_and_glu_equal_the_ported_kernels():
    values, ops = _port(sigmoid, X)
    torch.testing.assert_close(torch.sigmoid(X), values)
    assert ops == 4 * X.numel() == _counts(torch.sigmoid, X)
    x = torch.cat([X, G])  # a = X, b = G along the last dimension
    values, ops = _port(glu, X, G)
    torch.testing.assert_close(F.glu(x, -1), values)
    assert ops == 5 * X.numel() == _counts(lambda t: F.glu(t, -1), x)
    Counted.ops = 0
    halves = [
        glu_backward(*(Counted(v) for v in vs))
        for vs in zip(G.tolist(), X.tolist(), G.tolist(), strict=True)
    ]
    ops = Counted.ops
    grad_b = torch.tensor([h[0] for h in halves], dtype=torch.float64)
    grad_a = torch.tensor([h[1] for h in halves], dtype=torch.float64)
    got = torch.ops.aten.glu_backward(G, x, -1)
    torch.testing.assert_close(got, torch.cat([grad_a, grad_b]))
    assert ops == 9 * X.numel() == _counts(lambda g, t: torch.ops.aten.glu_backward(g, t, -1), G, x)
