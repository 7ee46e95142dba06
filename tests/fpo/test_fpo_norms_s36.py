"""Vector norms (``linalg_vector_norm``, ``norm``, ``_foreach_norm``) against ports of ATen's
CPU kernels that count every operation (audit s36).

The kernels (torch 2.13, ``native/cpu/ReduceOpsKernel.cpp``, ``SharedReduceOps.h``):

- p = 2 over a block of memory with stride 1 (TensorIterator moves the reduced dimensions to
  the front, by stride, and coalesces them: ``is_reduce_lastdim``), the output's dtype the
  input's, float, double or bfloat16: the vectorised kernel, per output ``acc_vec += x * x``
  over whole vectors (AVX2's 8 floats, 4 doubles), the accumulator's lanes added into its first
  (``buffer[0] = buffer[0] + buffer[j]``), the rest's ``buffer[0] += x * x``, ``sqrt``;
- any other call ``binary_kernel_reduce`` from a zeroed accumulator: p = 2 ``acc + x * x`` and
  ``sqrt``; p = 1 ``acc + |x|``; p = inf ``max(acc, |x|)``; p = 0 ``acc + (x != 0)``; other p
  ``acc + pow(|x|, p)`` and ``pow(acc, 1 / p)`` (the division too);
- every reduced dimension of size 1: ``|x|``.

Which kernel ran is proved from the values: torch's float32 result equals, bit for bit, a
float32 emulation of the expected kernel's order of additions (lanes or in sequence). Each
port computes with :class:`Counted` floats (``|x|``, compares, ``max``, ``pow`` and ``sqrt``
counted by the helpers, 1 each); its count equals the counter's on CPU tensors and on meta
copies (which keep the strides). Before s36 every p = 2 norm was counted ``2N + 1`` per
output, and other p ``3N + 1`` (the ``1 / p`` of the root not counted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: the ports run each output's reduction as one piece."""
    with one_thread():
        yield


def _one(f, v):
    Counted.ops += 1
    return Counted(f(float(v)))


def _rows(x, dim):
    """Each output's values in memory order (the reduced dimensions by decreasing stride)."""
    dims = list(range(x.dim())) if dim is None else [d % x.dim() for d in dim]
    kept = [d for d in range(x.dim()) if d not in dims]
    reduced = sorted(dims, key=lambda d: -x.stride(d))
    y = x.permute(*kept, *reduced)
    return y.reshape(math.prod(y.shape[: len(kept)]), -1).tolist()


def port(row, ord, path, lanes):
    """``(value, ops)`` of one output's norm by the kernel ``path``."""
    xs = [Counted(v) for v in row]
    Counted.ops = 0
    if path == "abs":
        return float(_one(abs, xs[0]) if ord != 0 else _one(lambda v: float(v != 0), xs[0])), 1
    if path == "lastdim":
        acc = [Counted(0.0)] * lanes
        full = len(xs) - len(xs) % lanes
        for d in range(0, full, lanes):
            acc = [a + x * x for a, x in zip(acc, xs[d : d + lanes], strict=True)]
        buffer = acc[0]
        for a in acc[1:]:
            buffer = buffer + a
        for x in xs[full:]:
            buffer = buffer + x * x
        return float(_one(math.sqrt, buffer)), Counted.ops
    acc = Counted(0.0)
    for x in xs:
        if ord == 2:
            acc = acc + x * x
        elif ord == 1:
            acc = acc + _one(abs, x)
        elif ord == math.inf:
            acc = _one(lambda v, a=acc: max(a, v), _one(abs, x))
        elif ord == 0:
            acc = acc + _one(lambda v: float(v != 0), x)
        else:
            acc = acc + _one(lambda v: v**ord, _one(abs, x))
    if ord == 2:
        return float(_one(math.sqrt, acc)), Counted.ops
    if ord in (0, 1, math.inf):
        return float(acc), Counted.ops
    return float(_one(lambda a: a ** float(1 / Counted(ord)), acc)), Counted.ops


def emulate_f32(row, path, lanes=8):
    """torch's float32 p = 2 result by the kernel's order of additions (no FMA)."""
    row = np.asarray(row, dtype=np.float32)
    if path == "lastdim":
        acc = np.zeros(lanes, np.float32)
        full = len(row) - len(row) % lanes
        for d in range(0, full, lanes):
            acc = (acc + row[d : d + lanes] * row[d : d + lanes]).astype(np.float32)
        total = acc[0]
        for a in acc[1:]:
            total = np.float32(total + a)
        for v in row[full:]:
            total = np.float32(total + np.float32(v * v))
    else:
        total = np.float32(0)
        for v in row:
            total = np.float32(total + np.float32(v * v))
    return np.float32(np.sqrt(total))


def _contiguous(*shape):
    return torch.randn(*shape)


# (name, tensor maker, dim, dtype, the kernel ATen's condition picks)
_CASES = [
    ("last dim", lambda: _contiguous(5, 37), [-1], None, "lastdim"),
    ("every dim", lambda: _contiguous(5, 37), None, None, "lastdim"),
    ("first dim", lambda: _contiguous(37, 5), [0], None, "generic"),
    ("transposed, its stride-1 dim", lambda: _contiguous(5, 37).t(), [0], None, "lastdim"),
    ("transposed, its other dim", lambda: _contiguous(5, 37).t(), [1], None, "generic"),
    (
        "channels last, every dim",
        lambda: _contiguous(2, 3, 4, 5).contiguous(memory_format=torch.channels_last),
        None,
        None,
        "lastdim",
    ),
    ("two trailing dims", lambda: _contiguous(2, 3, 4, 5), [2, 3], None, "lastdim"),
    ("two apart dims", lambda: _contiguous(2, 3, 4, 5), [1, 3], None, "generic"),
    ("dtype given", lambda: _contiguous(5, 37), [-1], torch.float64, "generic"),
    ("double", lambda: _contiguous(5, 37).double(), [-1], None, "lastdim"),
    ("size-1 dim", lambda: _contiguous(3, 1), [1], None, "abs"),
]


@pytest.mark.parametrize("ord", [2, 1, math.inf, 0, 3])
@pytest.mark.parametrize(("name", "make", "dim", "dtype", "path"), _CASES)
def test_vector_norms_equal_the_ported_kernels(name, make, dim, dtype, path, ord):
    torch.manual_seed(4)
    x = make()
    path = path if ord == 2 or path == "abs" else "generic"
    lanes = 4 if x.dtype == torch.float64 else 8
    y = torch.linalg.vector_norm(x, ord, dim=dim, dtype=dtype)
    rows = _rows(x, dim)
    ported = [port(row, ord, path, lanes) for row in rows]
    values = torch.tensor([v for v, _ in ported], dtype=torch.float64)
    assert torch.allclose(y.reshape(-1).double(), values, rtol=1e-5)
    if ord == 2 and x.dtype == torch.float32 and dtype is None and path != "abs":
        # the kernel that ran, from the bits of its result
        emulated = [emulate_f32(row, path) for row in rows]
        assert y.reshape(-1).numpy().tolist() == emulated

    expected = sum(ops for _, ops in ported)
    for t in (x, x.to("meta")):
        fn = lambda a: torch.linalg.vector_norm(a, ord, dim=dim, dtype=dtype)  # noqa: E731
        assert gp.count_fpo(fn, t, backward=False).total == expected, (name, str(t.device))


def test_torch_norm_and_normalize_take_the_vectorised_kernel_on_the_last_dim():
    """``F.normalize`` of (4, 37) embeddings: per row 2 x 37 + 8 for the norm (was 2 x 37 +
    1); ``torch.norm(x, dim=1)`` the same kernel."""
    x = torch.randn(4, 37)
    r = gp.count_fpo(lambda a: torch.nn.functional.normalize(a, dim=1), x, backward=False)
    assert r.by_op["aten.linalg_vector_norm"] == 4 * (2 * 37 + 8)
    r = gp.count_fpo(lambda a: torch.norm(a, dim=1), x, backward=False)
    assert r.total == 4 * (2 * 37 + 8)


def test_clip_grad_norm_counts_each_gradient_by_its_kernel():
    """``clip_grad_norm_`` (foreach or not): each parameter's gradient norm over every dimension
    (dense: the vectorised kernel, ``2N + 8``), then the norm of those norms (``2P + 8``).
    Linear(37, 5): 185 weights and 5 biases."""
    layer = torch.nn.Linear(37, 5)
    layer(torch.randn(3, 37)).sum().backward()
    for foreach in (True, False):
        with gp.FPOCounter() as c:
            torch.nn.utils.clip_grad_norm_(layer.parameters(), 1.0, foreach=foreach)
        norms = c.result.by_op.get("aten._foreach_norm", 0) + c.result.by_op.get(
            "aten.linalg_vector_norm", 0
        )
        assert norms == (2 * 185 + 8) + (2 * 5 + 8) + (2 * 2 + 8), foreach


def test_a_big_norm_off_the_vectorised_kernel_combines_each_threads_sum():
    """p = 1 of 40,000 values (one output, over ``GRAIN_SIZE``) on 2 threads: each thread sums
    its half from a zeroed accumulator and the two sums are added into the initial 0, so the
    result bit-equals ``(0 + sum(first half)) + sum(second half)`` in float32 (not the sum in
    sequence), and the count is ``2N + 2``."""
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(40_000) * np.exp(rng.standard_normal(40_000) * 2)).astype(
        np.float32
    )

    def summed(part):
        total = np.float32(0)
        for v in np.abs(part):
            total = np.float32(total + v)
        return total

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.from_numpy(values)
        y = np.float32(torch.linalg.vector_norm(x, 1).item())
        fn = lambda a: torch.linalg.vector_norm(a, 1)  # noqa: E731
        counts = {gp.count_fpo(fn, t, backward=False).total for t in (x, x.to("meta"))}
    finally:
        torch.set_num_threads(before)
    halves = np.float32(np.float32(0) + summed(values[:20_000])) + summed(values[20_000:])
    assert y == np.float32(halves)
    assert counts == {2 * 40_000 + 2}
