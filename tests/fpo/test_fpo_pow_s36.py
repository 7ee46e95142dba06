"""``pow`` against ports of ATen's CPU kernels that count every operation (audit s36).

``pow_Tensor_Scalar_out`` (torch 2.13, ``native/Pow.cpp``) fills ones for an exponent of 0 and
copies for 1; ``pow_tensor_scalar_kernel`` (``native/cpu/PowKernel.cpp``) sends 0.5, -0.5 and
-1 to the sqrt, rsqrt and reciprocal kernels and float, double and bfloat16 to
``pow_tensor_scalar_optimized_kernel``: ``x * x`` for 2, ``x * x * x`` for 3, ``(x *
x).reciprocal()`` for -2, ``pow`` for any other; float16 runs ``std::pow`` for every exponent.
``pow_Scalar_out`` fills ones for a base of 1. The ports compute with :class:`Counted` floats
(sqrt, rsqrt, ``pow`` counted by the helper); values equal torch's, counts equal the counter's
on CPU and meta tensors. Before s36 every ``pow`` was 1 per element: GPT-2's ``gelu_new``
(``torch.pow(x, 3.0)``) is 9 per element, not 8.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402


def _one(f, v):
    Counted.ops += 1
    return Counted(f(float(v)))


def port(values, exponent, half=False):
    Counted.ops = 0
    out = []
    for v in values:
        x = Counted(v)
        if exponent == 0:
            out.append(1.0)
        elif exponent == 1:
            out.append(v)
        elif half:
            out.append(_one(lambda a: a**exponent, x))
        elif exponent == 2:
            out.append(x * x)
        elif exponent == 3:
            out.append(x * x * x)
        elif exponent == -2:
            out.append(_one(lambda a: 1.0 / a, x * x))
        elif exponent == 0.5:
            out.append(_one(math.sqrt, x))
        elif exponent == -0.5:
            out.append(_one(lambda a: 1.0 / math.sqrt(a), x))
        elif exponent == -1:
            out.append(_one(lambda a: 1.0 / a, x))
        else:
            out.append(_one(lambda a: a**exponent, x))
    return out, Counted.ops


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 3.0, -2, 0.5, -0.5, -1, 2.5, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_pow_of_a_tensor_equals_the_ported_kernels(exponent, dtype):
    x = (torch.rand(3, 5) + 0.5).to(dtype)
    values, expected = port(x.double().reshape(-1).tolist(), exponent, dtype == torch.float16)
    y = x.pow(exponent)
    tolerance = 1e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-5
    assert torch.allclose(y.double().reshape(-1), torch.tensor(values).double(), rtol=tolerance)
    for t in (x, x.to("meta")):
        assert gp.count_fpo(lambda a: a.pow(exponent), t, backward=False).total == expected
    inplace = gp.count_fpo(lambda a: a.clone().pow_(exponent), x, backward=False)
    assert inplace.by_op["aten.pow_"] == expected


def test_a_number_to_a_tensor_and_a_tensor_to_a_tensor():
    x = torch.rand(3, 4)
    assert gp.count_fpo(lambda a: torch.pow(2.0, a), x, backward=False).total == 12
    assert gp.count_fpo(lambda a: torch.pow(1.0, a), x, backward=False).total == 0
    assert gp.count_fpo(lambda a: torch.pow(a, a), x, backward=False).total == 12


def test_gpt2_gelu_new_forward_and_backward():
    """``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))`` (Hugging Face's
    ``NewGELUActivation``) on (2, 4): per element ``0.5 * x``, the cube (2), ``0.044715 *``,
    ``x +``, ``sqrt(2 / pi) *``, tanh, ``1 +`` and the product: 9 (8 before s36); the cube's
    backward ``g * 3 * x**2`` squares with ``pow(x, 2)``, 1."""

    def gelu_new(x):
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
        return 0.5 * x * (1.0 + torch.tanh(inner))

    x = torch.randn(2, 4, requires_grad=True)
    r = gp.count_fpo(gelu_new, x)
    assert r.forward_total == 9 * 8
    assert r.by_op_phase["aten.pow"] == {"forward": 16, "backward": 8, "optimizer": 0}
