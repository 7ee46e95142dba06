"""Variance and standard deviation (``var``, ``std``, ``var_mean``, ``std_mean``) against
ports of ATen's CPU kernels that count every operation (audit s36).

The kernels (torch 2.13, ``native/ReduceOps.cpp``: ``std_var_out``, ``std_var_mean_out``,
``std_var_all_cpu``; ``native/SharedReduceOps.h``: ``WelfordOps``):

- ``var``/``std`` into one output of a float or double input: ``std_var_all_cpu``, two passes:
  ``self.mean()`` (the sum, one add per element, and the division), then ``dx = x - mean;
  local_sum += dx * dx`` per element, ``thread_sum += local_sum`` once (one thread, or a
  tensor of at most ``GRAIN_SIZE`` elements), ``sum_dx2 / max(0, n - correction)``, the root;
- every other call (along dimensions, bfloat16 or half, and ``var_mean``/``std_mean`` always):
  ``binary_kernel_reduce`` with ``WelfordOps``: per element ``delta = x - mean``, ``mean +=
  delta / n``, ``m2 += delta * (x - mean)``; per output ``nf > correction ? nf - correction :
  0``, ``m2 / divisor``, the root.

Each port computes with :class:`Counted` floats (the compare, ``max`` and ``sqrt`` counted by
the helpers); its values equal torch's and its count equals the counter's on CPU tensors and on
meta copies. Before s36 all four were counted ``4N + 2`` per output (+ 1 for the root).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: ``std_var_all_cpu`` reduces in one piece."""
    with one_thread():
        yield


def _one(f, *v):
    Counted.ops += 1
    return Counted(f(*(float(a) for a in v)))


def _rows(x, dim):
    dims = list(range(x.dim())) if dim is None else [d % x.dim() for d in dim]
    kept = [d for d in range(x.dim()) if d not in dims]
    y = x.permute(*kept, *dims)
    return y.reshape(math.prod(y.shape[: len(kept)]), -1).tolist()


def welford(row, correction, root):
    mean, m2, n = Counted(0.0), Counted(0.0), 0
    for value in row:
        x = Counted(value)
        n += 1
        delta = x - mean
        mean = mean + delta / float(n)
        m2 = m2 + delta * (x - mean)
    Counted.ops += 1  # nf > correction
    divisor = Counted(float(n)) - correction if n > correction else 0.0
    var = m2 / divisor if divisor else Counted.of(math.nan if m2 == 0 else math.inf)
    return (_one(math.sqrt, var) if root else var), mean


def all_reduce(row, correction, root):
    xs = [Counted(v) for v in row]
    total = 0.0
    for x in xs:
        total = total + x
    mean = total / len(xs)
    local = 0.0
    for x in xs:
        dx = x - mean
        local = local + dx * dx
    thread_sum = 0.0 + local
    divisor = _one(max, 0.0, Counted(float(len(xs))) - correction)
    var = thread_sum / divisor
    return (_one(math.sqrt, var) if root else var), mean


_CASES = [
    ((3, 5), None, False),
    ((3, 5), [1], False),
    ((3, 5), [0], True),
    ((2, 3, 4), [0, 2], False),
    ((2, 3, 4), None, True),
]


@pytest.mark.parametrize(("shape", "dim", "keepdim"), _CASES)
@pytest.mark.parametrize("op", ["var", "std", "var_mean", "std_mean"])
@pytest.mark.parametrize("correction", [1, 0, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_variance_equals_the_ported_kernels(shape, dim, keepdim, op, correction, dtype):
    torch.manual_seed(5)
    x = torch.randn(shape).to(dtype)
    fn = getattr(torch, op)

    def call(t):
        return fn(t, dim, correction=correction, keepdim=keepdim)

    out = call(x)
    var = out[0] if op.endswith("_mean") else out
    root = op.startswith("std")
    one_output = var.numel() == 1
    all_reduce_path = one_output and not op.endswith("_mean") and dtype != torch.bfloat16
    Counted.ops = 0
    ported = [
        (all_reduce if all_reduce_path else welford)(row, correction, root)
        for row in _rows(x.double(), dim)
    ]
    expected = Counted.ops
    values = torch.tensor([float(v) for v, _ in ported], dtype=torch.float64)
    tolerance = 1e-2 if dtype == torch.bfloat16 else 1e-5
    assert torch.allclose(var.reshape(-1).double(), values, rtol=tolerance, equal_nan=True)
    for t in (x, x.to("meta")):
        assert gp.count_fpo(call, t, backward=False).total == expected, str(t.device)


def test_a_layer_statistic_by_hand():
    """``x.var(-1, keepdim=True)`` of (4, 8) activations (a hand-written normalisation):
    Welford's 6 per element and 3 per row, 6 x 32 + 3 x 4 = 204 (4 x 32 + 2 x 4 = 136 before
    s36); ``x.var()`` of the same 32 values in two passes: 32 + 1 + 3 x 32 + 1 + 3 = 133."""
    x = torch.randn(4, 8)
    assert gp.count_fpo(lambda a: a.var(-1, keepdim=True), x, backward=False).total == 204
    assert gp.count_fpo(lambda a: a.var(), x, backward=False).total == 133
