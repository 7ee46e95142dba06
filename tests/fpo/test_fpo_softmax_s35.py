"""Softmax, log-softmax, their backwards, ``_safe_softmax`` and the masked softmax against ports
of ATen's CPU kernels that count every operation (audit s35).

The kernels (torch 2.13): ``_vec_softmax_lastdim`` and ``_vec_softmax``
(``native/cpu/SoftMaxKernel.cpp``), ``serial_vec_log_softmax_lastdim_range`` and
``serial_vec_logsoftmax_range`` (``native/cpu/LogSoftmaxKernelImpl.h``),
``_vec_host_softmax_backward_lastdim``, ``_vec_softmax_backward`` and
``_vec_log_softmax_backward``, ``_safe_softmax`` (``native/transformers/attention.cpp``) and
``host_softmax`` / ``host_softmax_backward`` with a mask (``native/SoftMax.cpp``: the CPU
``_masked_softmax``). The last dimension's kernels reduce with ``vec::reduce_all``,
``map_reduce_all`` and ``map2_reduce_all``, which start from the first vector and merge the
lanes last: counted as the values that reach the result, a reduction of ``n`` values is ``n -
1`` (a tail's padding lanes, dropped by ``Vec::set``, are not counted), and softmax computes
``1 / sum`` once per row and multiplies. Along another dimension the kernels run per column:
softmax's max from the first value, its sum from 0 and a divide per element; log-softmax's max
from ``-inf`` and its sum from 0; the backwards' sums from 0.

Each port computes with :class:`Counted` floats (exp, log and compares counted by the helpers,
1 each); its values are checked against torch's and its count equals the counter's on CPU
tensors and on meta copies (the masked ops, which have no meta kernel, read their masks from
real tensors; without values every element counts as unmasked, an upper bound).

Before s35 softmax was counted 5N, log-softmax 6N + 1 per row along every dimension, the
backwards 4N, ``_safe_softmax`` 5N and the masked softmax 5N (backward 4N) whatever its mask.
That the lowest order terms follow the kernels was checked: ``1 / sum`` then a multiply along
the last dimension and a divide along another match torch's float32 and float64 outputs bit for
bit more often than the other form (95-97 % against 83-84 % of 8,000 values, the rest from the
exp's rounding).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from _counted import Counted  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402


def _exp(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.exp(float(v)))


def _log(v: float) -> Counted:
    Counted.ops += 1
    return Counted(math.log(float(v)))


def _max(a: float, b: float) -> Counted:
    Counted.ops += 1
    return Counted(max(float(a), float(b)))


def _eq(a: float, b: float) -> bool:
    Counted.ops += 1
    return float(a) == float(b)


def _reduce_from_first(values, op):
    """``vec::reduce_all``: ``n - 1`` ops over ``n`` values, whatever the vector width."""
    acc = values[0]
    for v in values[1:]:
        acc = op(acc, v)
    return acc


# -- ports, one row (the values along the softmax dimension) each ---------------------------------


def softmax_row(row, last):
    """Last dimension: max ``n - 1``, ``exp(x - max)`` 2n, sum ``n - 1``, ``1 / sum``, ``n``
    multiplies: ``5n - 1``. Another: the sum into 0 (``n``) and ``n`` divides: ``5n - 1``."""
    peak = _reduce_from_first(row, _max)
    exps = [_exp(x - peak) for x in row]
    if last:
        inv = Counted(1.0) / _reduce_from_first(exps, lambda a, b: a + b)
        return [e * inv for e in exps]
    total = Counted(0.0)
    for e in exps:
        total = total + e
    return [e / total for e in exps]


def log_softmax_row(row, last):
    """Last dimension ``6n - 1`` (max and sum from their first values); another ``6n + 1``
    (the max from ``-inf``, the sum from 0); ``x - max - log_sum`` 2 per element."""
    if last:
        peak = _reduce_from_first(row, _max)
        total = _reduce_from_first([_exp(x - peak) for x in row], lambda a, b: a + b)
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
    """Softmax ``(g - sum(g y)) y``, log-softmax ``g - exp(y) sum(g)``: ``4n - 1`` along the
    last dimension (the sum from its first term), ``4n`` along another (from 0)."""
    terms = list(g) if log else [a * b for a, b in zip(g, y, strict=True)]
    if last:
        total = _reduce_from_first(terms, lambda a, b: a + b)
    else:
        total = Counted(0.0)
        for t in terms:
            total = total + t
    if log:
        return [a - _exp(b) * total for a, b in zip(g, y, strict=True)]
    return [(a - total) * b for a, b in zip(g, y, strict=True)]


def masked_softmax_row(row, masked):
    """``host_softmax`` with a mask: max over the unmasked (``u - 1``), their ``exp(x - max)``
    (``2u``), every ``z`` summed into 0 (``n``), ``sum == 0`` (1), ``1 / sum`` (1 unless the
    row is all masked: NaN), a multiply per element (``n``): ``3u + 2n + 1``."""
    peak = None
    for x, m in zip(row, masked, strict=True):
        if not m:
            peak = x if peak is None else _max(peak, x)
    zs = [Counted(0.0) if m else _exp(x - peak) for x, m in zip(row, masked, strict=True)]
    total = Counted(0.0)
    for z in zs:
        total = total + z
    inv = Counted(math.nan) if _eq(total, 0.0) else Counted(1.0) / total
    return [z * inv for z in zs]


def masked_softmax_backward_row(g, y, masked):
    """``host_softmax_backward`` with a mask: per unmasked element ``sum += g y`` and ``y (g -
    sum)``: 4 each; masked ones 0."""
    total = Counted(0.0)
    for a, b, m in zip(g, y, masked, strict=True):
        if not m:
            total = total + a * b
    return [Counted(0.0) if m else b * (a - total) for a, b, m in zip(g, y, masked, strict=True)]


# -- helpers ------------------------------------------------------------------------------------


def _rows(t, dim):
    return t.movedim(dim, -1).reshape(-1, t.shape[dim]).tolist()


def _from_rows(values, like, dim):
    moved = like.movedim(dim, -1)
    return torch.tensor(values, dtype=like.dtype).reshape(moved.shape).movedim(-1, dim)


def _counted(rows):
    return [[Counted(v) for v in row] for row in rows]


def _op_fpo(fn, *tensors):
    """The counter's FPO of ``fn(*tensors)`` (no backward), on these tensors."""
    return gp.count_fpo(fn, *tensors, backward=False).total


SHAPES = st.lists(st.integers(1, 11), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None)
@given(shape=SHAPES, dim=st.integers(0, 2), seed=st.integers(0, 2**16), f32=st.booleans())
def test_softmax_and_log_softmax_equal_the_ported_kernels(shape, dim, seed, f32):
    dim = dim % len(shape)
    last = dim == len(shape) - 1
    dtype = torch.float32 if f32 else torch.float64
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    rows = _rows(x, dim)
    n, r = x.numel(), len(rows)
    for log, port, op in (
        (False, softmax_row, torch.softmax),
        (True, log_softmax_row, torch.log_softmax),
    ):
        Counted.ops = 0
        values = [port(row, last) for row in _counted(rows)]
        torch.testing.assert_close(op(x, dim), _from_rows(values, x, dim))
        expected = (6 * n - r if last else 6 * n + r) if log else 5 * n - r
        assert Counted.ops == expected
        assert _op_fpo(lambda t, op=op: op(t, dim), x) == expected
        assert _op_fpo(lambda t, op=op: op(t, dim), x.to("meta")) == expected


@settings(max_examples=30, deadline=None)
@given(shape=SHAPES, dim=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_the_softmax_backwards_equal_the_ported_kernels(shape, dim, seed):
    dim = dim % len(shape)
    last = dim == len(shape) - 1
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    for log in (False, True):
        op = torch.log_softmax if log else torch.softmax
        backward = (
            torch.ops.aten._log_softmax_backward_data
            if log
            else torch.ops.aten._softmax_backward_data
        )
        y = op(x, dim)
        Counted.ops = 0
        grads = [
            softmax_backward_row(gr, yr, log, last)
            for gr, yr in zip(_counted(_rows(g, dim)), _counted(_rows(y, dim)), strict=True)
        ]
        xg = x.clone().requires_grad_()
        op(xg, dim).backward(g)
        torch.testing.assert_close(xg.grad, _from_rows(grads, x, dim))
        expected = 4 * x.numel() - (len(grads) if last else 0)
        assert Counted.ops == expected

        def run(grad, out, backward=backward):
            return backward(grad, out, dim, grad.dtype)

        assert _op_fpo(run, g, y) == expected
        assert _op_fpo(run, g.to("meta"), y.to("meta")) == expected


def test_safe_softmax_is_softmax_and_a_compare_per_element():
    """The math attention path's softmax: ``at::softmax`` + ``self.eq(-inf)`` (+ ``all`` and
    ``where`` on booleans, 0): a row of 5 scores, two of them ``-inf`` (a causal row), is ``5 x
    5 - 1 + 5 = 29``; a row all ``-inf`` is set to 0 by ``where``."""
    x = torch.tensor([[0.3, -1.2, 2.0, -math.inf, -math.inf], [-math.inf] * 5])
    Counted.ops = 0
    values = []
    for row in _counted(x.tolist()):
        probs = softmax_row(row, last=True)
        compares = [_eq(v, -math.inf) for v in row]  # every compare runs
        all_inf = all(compares)
        values.append([0.0] * len(row) if all_inf else probs)
    out = torch.ops.aten._safe_softmax(x, -1)
    torch.testing.assert_close(out, torch.tensor(values))
    assert Counted.ops == 2 * (6 * 5 - 1) == 58
    fn = lambda t: torch.ops.aten._safe_softmax(t, -1)  # noqa: E731
    assert _op_fpo(fn, x) == _op_fpo(fn, x.to("meta")) == 58


MASK_CASES = {
    # (input shape, mask shape, mask_type)
    "generic": ((2, 3, 6), (2, 3, 6), None),
    "attention (L, L)": ((2, 2, 5, 5), (5, 5), 0),
    "padding (B, L)": ((2, 2, 5, 5), (2, 5), 1),
}


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_masked_softmax_and_its_backward_equal_the_ported_kernels(case):
    shape, mask_shape, mask_type = MASK_CASES[case]
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(*shape, generator=gen)
    g = torch.randn(*shape, generator=gen)
    mask = torch.rand(*mask_shape, generator=gen) < 0.4
    mask.view(-1)[: mask_shape[-1]] = True  # a fully masked row: NaN, no division
    if mask_type == 0:
        full = mask.view(1, 1, *mask_shape).expand(shape)
    elif mask_type == 1:
        full = mask.view(mask_shape[0], 1, 1, mask_shape[1]).expand(shape)
    else:
        full = mask
    rows, masks = _counted(_rows(x, -1)), _rows(full, -1)
    Counted.ops = 0
    values = [masked_softmax_row(r, m) for r, m in zip(rows, masks, strict=True)]
    forward_ops = Counted.ops
    out = torch._masked_softmax(x, mask, -1, mask_type)
    torch.testing.assert_close(out, _from_rows(values, x, -1), equal_nan=True)
    unmasked, n = int((~full).sum()), x.numel()
    assert forward_ops == 3 * unmasked + 2 * n + len(rows)

    def forward(t, m):
        return torch._masked_softmax(t, m, -1, mask_type)

    assert _op_fpo(forward, x, mask) == forward_ops
    # without values (the op has no meta kernel in torch 2.13; fake tensors): every element
    # counts as unmasked, an upper bound
    rule = RULES["aten._masked_softmax"].fn
    assert rule(shape, mask_shape, -1, mask_type) == 5 * n + len(rows)

    y = torch.nan_to_num(out)
    Counted.ops = 0
    grads = [
        masked_softmax_backward_row(gr, yr, m)
        for gr, yr, m in zip(_counted(_rows(g, -1)), _counted(_rows(y, -1)), masks, strict=True)
    ]
    dense = full.contiguous()
    got = torch.ops.aten._masked_softmax_backward(g, y, dense, -1)
    torch.testing.assert_close(got, _from_rows(grads, x, -1))
    assert Counted.ops == 4 * unmasked

    def backward(grad, out, m):
        return torch.ops.aten._masked_softmax_backward(grad, out, m, -1)

    assert _op_fpo(backward, g, y, dense) == 4 * unmasked
    assert RULES["aten._masked_softmax_backward"].fn(shape, shape, shape, -1) == 4 * n
