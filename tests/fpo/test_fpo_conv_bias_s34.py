"""A convolution's bias, forward and gradient, against the brute-force loop (audit s34).

``test_fpo_conv`` proves the products of every convolution (groups, stride, padding, dilation,
transposed with output padding) and of its two gradients against a loop that counts each
multiply-accumulate, without a bias. The bias adds one value per output element, ``out[n, c,
p] += b[c]`` (1 FPO each), and its gradient sums the output gradient over the batch and the
output positions, ``gb[c] += g[n, c, p]`` (1 FPO each, into a zeroed accumulator): the loop
below does both and counts them, for any layout the conv test draws.
"""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from test_fpo_conv import _run, _tensors, conv_cases, reference  # noqa: E402

import greenprint as gp  # noqa: E402


def bias_reference(out, b, g):
    """``out + b`` per output element and ``sum(g)`` per channel, with the adds each does."""
    added = out.clone()
    gb = [0.0] * b.shape[0]
    adds = grad_adds = 0
    for index in itertools.product(*(range(s) for s in out.shape)):
        channel = index[1]
        added[index] += b[channel]
        adds += 1
        gb[channel] += float(g[index])
        grad_adds += 1
    return added, torch.tensor(gb, dtype=torch.float64), adds, grad_adds


@settings(max_examples=20, deadline=None)
@given(case=conv_cases())
def test_conv_bias_and_its_gradient_equal_the_loop(case):
    x, w = _tensors(case)
    c_out = w.shape[1] * case["groups"] if case["transposed"] else w.shape[0]
    b = torch.randn(c_out, dtype=torch.float64)
    out = _run(case, x, w)
    g = torch.randn_like(out)
    _, _, _, macs, _ = reference(
        x,
        w,
        g,
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
        transposed=case["transposed"],
        output_padding=case["output_padding"],
    )
    expected, ref_gb, adds, grad_adds = bias_reference(out, b, g)
    # only the bias needs a gradient: the backward is its sum alone
    bg = b.clone().requires_grad_()
    with gp.FPOCounter() as c:
        got = _run(case, x, w, bg)
        got.backward(g)
    torch.testing.assert_close(got.detach(), expected)
    torch.testing.assert_close(bg.grad, ref_gb)
    assert c.result.forward_total == 2 * macs + adds
    assert c.result.matmul_total == 2 * macs  # the bias is not FlopCounterMode's part
    assert c.result.by_op_phase["aten.convolution_backward"]["backward"] == grad_adds
    # everything needs a gradient: both products and the bias's sum
    xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
    with gp.FPOCounter() as c:
        _run(case, xg, wg, bg).backward(g)
    assert c.result.backward_total == 2 * 2 * macs + grad_adds
