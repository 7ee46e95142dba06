"""Convolution FPO, forward and backward, against a brute-force loop that counts its MACs.

The reference below is an explicit loop over every multiply-accumulate (MAC) of a convolution,
any groups, 1-3 spatial dims, stride, padding, dilation, transposed with output padding. It
computes real values (checked against torch, so the loop is a convolution) and counts:

- forward: one MAC per (sample, output channel, input channel of its group, output position,
  kernel tap); transposed: per (sample, input channel, output channel of its group, input
  position, kernel tap). A MAC is 2 FPO (one MUL, one ADD; the ``2mkn`` convention).
- grad_input and grad_weight: each forward MAC ``out[o] += w[k] * x[i]`` becomes exactly one MAC
  ``gx[i] += w[k] * g[o]`` and one MAC ``gw[k] += x[i] * g[o]``.
- padding: a tap that lands on a padded zero (on a cropped output position, transposed) still
  counts, as in FlopCounterMode: the kernel runs over the padded input. The loop also counts the
  taps that touch real data, which equal the total when there is no padding.
"""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from fcm_reference import (  # noqa: E402
    fixed_flop_counter,
    torch_overcounts_grouped_conv_backward,
)
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402

_FORWARD = {
    (False, 1): F.conv1d,
    (False, 2): F.conv2d,
    (False, 3): F.conv3d,
    (True, 1): F.conv_transpose1d,
    (True, 2): F.conv_transpose2d,
    (True, 3): F.conv_transpose3d,
}


def reference(x, w, g, *, stride, padding, dilation, groups, transposed, output_padding):
    """Brute-force convolution, its grad_input and grad_weight, and the MACs of each.

    Args:
        x: input (N, C_in, *I) as a float64 tensor; w: weight; g: output gradient.

    Returns:
        (out, gx, gw, macs, macs_on_data): values as tensors; ``macs`` per term (forward,
        grad_input and grad_weight are the same loop), ``macs_on_data`` those not on padding.
    """
    xs, ws, gs = x.tolist(), w.tolist(), g.tolist()
    n_batch = x.shape[0]
    kernel = tuple(w.shape[2:])
    if transposed:
        c_in, c_out_g = w.shape[0], w.shape[1]
        c_in_g, c_out = c_in // groups, c_out_g * groups
        spatial_in = tuple(x.shape[2:])
        spatial_out = tuple(
            (i - 1) * s - 2 * p + d * (k - 1) + op + 1
            for i, s, p, d, k, op in zip(
                spatial_in, stride, padding, dilation, kernel, output_padding, strict=True
            )
        )
    else:
        c_out, c_in_g = w.shape[0], w.shape[1]
        c_in, c_out_g = c_in_g * groups, c_out // groups
        spatial_in = tuple(x.shape[2:])
        spatial_out = tuple(
            (i + 2 * p - d * (k - 1) - 1) // s + 1
            for i, s, p, d, k in zip(spatial_in, stride, padding, dilation, kernel, strict=True)
        )
    out = torch.zeros(n_batch, c_out, *spatial_out, dtype=torch.float64).tolist()
    gx = torch.zeros_like(x).tolist()
    gw = torch.zeros_like(w).tolist()

    def at(nested, index):
        for i in index[:-1]:
            nested = nested[i]
        return nested, index[-1]

    macs = on_data = 0
    # the "walked" side: output positions (convolution) or input positions (transposed)
    walked = spatial_in if transposed else spatial_out
    other = spatial_out if transposed else spatial_in
    for n, grp in itertools.product(range(n_batch), range(groups)):
        for a, b in itertools.product(range(c_out_g), range(c_in_g)):
            co, ci = grp * c_out_g + a, grp * c_in_g + b
            w_index = (ci, a) if transposed else (co, b)
            for pos in itertools.product(*(range(s) for s in walked)):
                for tap in itertools.product(*(range(k) for k in kernel)):
                    macs += 1
                    hit = tuple(
                        q * s + t * d - p
                        for q, s, t, d, p in zip(pos, stride, tap, dilation, padding, strict=True)
                    )
                    if not all(0 <= h < size for h, size in zip(hit, other, strict=True)):
                        continue  # a padded zero (a cropped output): counted, adds nothing
                    on_data += 1
                    if transposed:  # out[co, hit] += w[ci, a, tap] * x[ci, pos]
                        i_index, o_index = (n, ci, *pos), (n, co, *hit)
                    else:  # out[co, pos] += w[co, b, tap] * x[ci, hit]
                        i_index, o_index = (n, ci, *hit), (n, co, *pos)
                    w_cell, w_last = at(ws, (*w_index, *tap))
                    x_cell, x_last = at(xs, i_index)
                    g_cell, g_last = at(gs, o_index)
                    o_cell, o_last = at(out, o_index)
                    o_cell[o_last] += w_cell[w_last] * x_cell[x_last]
                    gx_cell, _ = at(gx, i_index)
                    gx_cell[x_last] += w_cell[w_last] * g_cell[g_last]
                    gw_cell, _ = at(gw, (*w_index, *tap))
                    gw_cell[w_last] += x_cell[x_last] * g_cell[g_last]
    return _tensor(out), _tensor(gx), _tensor(gw), macs, on_data


def _tensor(nested):
    return torch.tensor(nested, dtype=torch.float64)


@st.composite
def conv_cases(draw):
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = draw(st.integers(1, 3))
    c_in_g, c_out_g = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    top = 3 if dims < 3 else 2
    kernel = tuple(draw(st.integers(1, top)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(dims))
    size = tuple(draw(st.integers(1, 6 if dims < 3 else 4)) for _ in range(dims))
    output_padding = (
        tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
        if transposed
        else (0,) * dims
    )
    for i, s, p, d, k, op in zip(
        size, stride, padding, dilation, kernel, output_padding, strict=True
    ):
        if transposed:
            assume((i - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1)
        else:
            assume(i + 2 * p - d * (k - 1) - 1 >= 0)
    return {
        "batch": draw(st.integers(1, 2)),
        "c_in": c_in_g * groups,
        "c_out": c_out_g * groups,
        "size": size,
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "transposed": transposed,
        "output_padding": output_padding,
    }


def _tensors(case):
    torch.manual_seed(0)
    x = torch.randn(case["batch"], case["c_in"], *case["size"], dtype=torch.float64)
    if case["transposed"]:
        w_shape = (case["c_in"], case["c_out"] // case["groups"], *case["kernel"])
    else:
        w_shape = (case["c_out"], case["c_in"] // case["groups"], *case["kernel"])
    return x, torch.randn(*w_shape, dtype=torch.float64)


def _run(case, x, w, bias=None):
    fn = _FORWARD[(case["transposed"], len(case["size"]))]
    kwargs = {
        "stride": case["stride"],
        "padding": case["padding"],
        "dilation": case["dilation"],
        "groups": case["groups"],
    }
    if case["transposed"]:
        kwargs["output_padding"] = case["output_padding"]
    return fn(x, w, bias, **kwargs)


def _conv_backward_fpo(case, x, w, g, *, grad_input, grad_weight):
    """greenprint's count of the backward (aten.convolution_backward) with the given grads."""
    x = x.detach().requires_grad_(grad_input)
    w = w.detach().requires_grad_(grad_weight)
    out = _run(case, x, w)
    with gp.FPOCounter() as c:
        out.backward(g)
    return c.result.by_op_phase["aten.convolution_backward"]["backward"], c.result.matmul_total


@settings(max_examples=60, deadline=None)
@given(case=conv_cases())
def test_conv_forward_and_backward_equal_the_brute_force_count(case):
    x, w = _tensors(case)
    out = _run(case, x, w)
    g = torch.randn_like(out)
    ref_out, ref_gx, ref_gw, macs, on_data = reference(
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
    # the loop is a convolution: the same values as torch, forward and both gradients
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    gx, gw = torch.autograd.grad(_run(case, xg, wg), (xg, wg), g)
    torch.testing.assert_close(ref_out, out)
    torch.testing.assert_close(ref_gx, gx)
    torch.testing.assert_close(ref_gw, gw)
    if not any(case["padding"]):
        assert on_data == macs  # the padding convention matters only with padding
    assert on_data <= macs

    with gp.FPOCounter() as c:
        _run(case, x, w)
    assert c.result.total == c.result.matmul_total == 2 * macs  # forward
    for grad_input, grad_weight in ((True, False), (False, True), (True, True)):
        fpo, matmul = _conv_backward_fpo(
            case, x, w, g, grad_input=grad_input, grad_weight=grad_weight
        )
        assert fpo == matmul == 2 * macs * (grad_input + grad_weight)


@settings(max_examples=30, deadline=None)
@given(case=conv_cases(), bias=st.booleans())
def test_flopcountermode_differs_only_in_grouped_grad_weight(case, bias):
    """The documented relation: FlopCounterMode's grad_weight term is ``groups`` x ours on the
    installed torch (unless it carries PyTorch PR 183405), every other term equal."""
    x, w = _tensors(case)
    x, w = x.float().to("meta"), w.float().to("meta")
    b = torch.empty(w.shape[1] * case["groups"] if case["transposed"] else w.shape[0])
    b = b.to("meta") if bias else None
    for grad_input, grad_weight in ((True, False), (False, True)):
        xg = x.clone().requires_grad_(grad_input)
        wg = w.clone().requires_grad_(grad_weight)
        with gp.FPOCounter() as c:
            out = _run(case, xg, wg, b)
            out.backward(torch.ones_like(out))
        with FlopCounterMode(display=False) as f:
            out = _run(case, xg, wg, b)
            out.backward(torch.ones_like(out))
        with fixed_flop_counter() as fixed:
            out = _run(case, xg, wg, b)
            out.backward(torch.ones_like(out))
        ours = c.result.matmul_total
        assert ours == fixed.get_total_flops()
        forward = c.result.forward_total - (math.prod(out.shape) if bias else 0)
        backward_term = ours - forward
        if grad_weight and torch_overcounts_grouped_conv_backward():
            assert f.get_total_flops() == forward + case["groups"] * backward_term
        else:
            assert f.get_total_flops() == ours


def test_the_depthwise_example_of_issue_11():
    """Conv2d(64, 64, 3, padding=1, groups=64) on (1, 64, 56, 56): grad_input and grad_weight
    are the forward's 3,612,672 FPO each; a ``sum()`` loss adds nothing to the backward."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False, device="meta")
    x = torch.empty(1, 64, 56, 56, device="meta", requires_grad=True)
    assert 2 * 64 * 9 * 56 * 56 == 3_612_672
    result = gp.count_fpo(conv, x)
    assert result.forward_total == 3_612_672
    assert result.backward_total == 7_225_344
    assert result.matmul_total == result.total == 3 * 3_612_672
    with gp.FPOCounter(conv) as c:
        conv(x).sum().backward()
    assert c.result.backward_total == 7_225_344  # sum's backward is an expand: 0 FPO
    assert c.result.forward_total == 3_612_672 + 64 * 56 * 56  # + the sum itself
    with FlopCounterMode(display=False) as f:
        conv(x).sum().backward()
    if torch_overcounts_grouped_conv_backward():
        assert f.get_total_flops() == 3_612_672 * (1 + 1 + 64)  # grad_weight 64 x too many
    else:
        assert f.get_total_flops() == 3 * 3_612_672
