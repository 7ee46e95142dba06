"""ELU (and SELU, CELU) against a port of ATen's vectorised CPU kernel that counts every
operation (audit s36).

``get_vectorized_elu_elementwise_func`` (torch 2.13, ``native/cpu/Elu.h``), per vector of AVX2
lanes (8 floats; bfloat16 and half as two float vectors; 4 doubles)::

    const auto cmp = a >= zero_vec;
    if (!cmp.zero_mask()) return a * poscoef_vec;
    return blendv((a * negiptcoef_vec).expm1() * negcoef_vec, a * poscoef_vec, cmp);

so a vector whose lanes are all ``>= 0`` costs 2 per value, any other 5 (both sides on every
lane). CELU divides ``1 / alpha`` once first. The port groups the values in memory order from
the start, computes with :class:`Counted` floats (the compare and ``expm1`` counted by the
helpers), its values equal torch's and its count equals the counter's on CPU tensors (the
vectors read from the values, before an in-place ``elu_`` overwrites them); on meta every
vector branches, 5 per value. Before s36 ELU was counted 6 per value (``exp(x) - 1``).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402


def port(values, alpha, scale, input_scale, lanes):
    Counted.ops = 0
    out = []
    for start in range(0, len(values), lanes):
        group = [Counted(v) for v in values[start : start + lanes]]
        Counted.ops += len(group)  # a >= 0, per lane
        if all(v >= 0 for v in group):
            out += [a * scale for a in group]
            continue
        for a in group:
            negative = Counted(math.expm1(float(a * input_scale))) * (alpha * scale)
            Counted.ops += 1  # expm1
            positive = a * scale
            out.append(positive if a >= 0 else negative)
    return out, Counted.ops


_CASES = [
    ("mixed signs", lambda: torch.randn(3, 7), {}),
    ("all positive", lambda: torch.rand(2, 9) + 0.1, {}),
    ("first vector positive", lambda: torch.cat([torch.rand(8), -torch.rand(5)]), {}),
    ("double", lambda: torch.randn(11, dtype=torch.float64), {}),
    ("alpha and scale", lambda: torch.randn(4, 6), {"alpha": 0.7}),
]


@pytest.mark.parametrize(("name", "make", "kwargs"), _CASES)
@pytest.mark.parametrize("op", ["elu", "elu_", "selu", "celu"])
def test_elu_equals_the_ported_kernel(name, make, kwargs, op):
    torch.manual_seed(7)
    x = make()
    lanes = 4 if x.dtype == torch.float64 else 8
    alpha = kwargs.get("alpha", 1.0)
    if op == "selu":
        fn = F.selu
        alpha, scale, input_scale = 1.6732632423543772, 1.0507009873554805, 1.0
    elif op == "celu":
        fn = lambda t: F.celu(t, alpha=alpha)  # noqa: E731
        scale, input_scale = 1.0, 1.0 / alpha
    elif op == "elu_":
        fn = lambda t: F.elu(t.clone(), alpha=alpha, inplace=True)  # noqa: E731
        scale, input_scale = 1.0, 1.0
    else:
        fn = lambda t: F.elu(t, alpha=alpha)  # noqa: E731
        scale, input_scale = 1.0, 1.0
    values, expected = port(x.reshape(-1).tolist(), alpha, scale, input_scale, lanes)
    expected += 1 if op == "celu" else 0  # 1 / alpha
    y = fn(x)
    assert torch.allclose(y.reshape(-1).double(), torch.tensor(values, dtype=torch.float64))
    assert gp.count_fpo(fn, x, backward=False).total == expected, name
    meta = gp.count_fpo(fn, x.to("meta"), backward=False).total
    assert meta == 5 * x.numel() + (1 if op == "celu" else 0) >= expected


def test_elu_in_a_model_forward_and_backward():
    """nn.ELU after a Linear: its forward by the values' vectors, its backward
    ``elu_backward``'s blend (7 per value, unchanged), both charged to the ELU module."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ELU())
    x = torch.randn(2, 3)
    with torch.no_grad():
        hidden = model[0](x).reshape(-1).tolist()
    _, forward = port(hidden, 1.0, 1.0, 1.0, 8)
    c = gp.count_fpo(model, x)
    assert c.by_op["aten.elu"] == forward
    assert c.by_module["1"] == forward + 7 * 16
