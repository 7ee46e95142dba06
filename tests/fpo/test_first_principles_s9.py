"""FPO proved from first principles, not against a peer counter (audit s9).

Every expected figure here is derived by hand in the test's docstring or counted by a plain
Python reference that performs the computation and counts each multiply and add it does (its
values are checked against torch, so the reference is the op). Conventions, as docs/fpo.md
states them: a multiply-accumulate is 2 FPO (``2mkn`` for a product), reducing n values costs
n adds, one FPO per elementwise arithmetic op, compare or elementary function. A k-tap
interpolation (k weights times k values, summed) is a dot product of length k: ``2k``, as
``2mkn`` counts them; a lerp ``a + w (b - a)`` is its own 3-op formula.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402

_FAST = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def count(fn):
    """Run ``fn()`` inside a counter; return the result."""
    with gp.FPOCounter() as c:
        fn()
    return c.result


def t(*shape, grad=False, dtype=torch.float32):
    return torch.randn(*shape, requires_grad=grad, dtype=dtype)


# -- antialiased interpolation (bilinear, bicubic, lanczos) -------------------------------------


def _triangle(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _cubic(x, a=-0.5):  # the antialiased bicubic filter (a = -0.5, as PIL)
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _lanczos3(x):
    if abs(x) >= 3.0:
        return 0.0
    if x == 0.0:
        return 1.0
    px = math.pi * x
    return (math.sin(px) / px) * (math.sin(px / 3.0) / (px / 3.0))


_FILTERS = {"bilinear": (2, _triangle), "bicubic": (4, _cubic), "lanczos": (6, _lanczos3)}


def _aa_windows(size_in, size_out, mode, align_corners):
    """Per output index: (first input index, normalised weights) of torch's antialiased filter.

    The filter is stretched by the scale when downsampling (``support = taps / 2 * scale``),
    so a 4x bilinear downsample reads about 8 inputs per output and dimension, not 2.
    """
    taps, filt = _FILTERS[mode]
    if align_corners:
        scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    else:
        scale = size_in / size_out
    support = taps * 0.5 * scale if scale >= 1.0 else taps * 0.5
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    out = []
    for i in range(size_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        size = min(
            max(min(int(center + support + 0.5), size_in) - lo, 0), 2 * math.ceil(support) + 1
        )
        w = [filt((j + lo - center + 0.5) * inv) for j in range(size)]
        total = sum(w)
        out.append((lo, [v / total for v in w] if total else w))
    return out


def _aa_reference(x, size, mode, align_corners):
    """Antialiased resize of (N, C, H, W) as a direct loop; returns (values, FPO it performed).

    Per output element: one interpolation along W for each of the ``kh`` input rows of its
    window (``kw`` multiply-accumulates: ``2kw``), then one along H over those ``kh`` results
    (``2kh``). A dimension whose size does not change is copied (torch skips it): its window
    is the one input, weight 1, no arithmetic.
    """
    n, c, h, w = x.shape
    oh, ow = size
    rows = _aa_windows(h, oh, mode, align_corners) if oh != h else [(i, None) for i in range(h)]
    cols = _aa_windows(w, ow, mode, align_corners) if ow != w else [(i, None) for i in range(w)]
    xs, fpo = x.tolist(), 0
    out = [[[[0.0] * ow for _ in range(oh)] for _ in range(c)] for _ in range(n)]
    for b in range(n):
        for ch in range(c):
            for oy, (ylo, wy) in enumerate(rows):
                for ox, (xlo, wx) in enumerate(cols):
                    partial = []
                    for j in range(len(wy) if wy is not None else 1):
                        line = xs[b][ch][ylo + j]
                        if wx is None:
                            partial.append(line[xlo])
                            continue
                        acc = 0.0
                        for i in range(len(wx)):
                            acc += wx[i] * line[xlo + i]
                            fpo += 2
                        partial.append(acc)
                    if wy is None:
                        out[b][ch][oy][ox] = partial[0]
                        continue
                    acc = 0.0
                    for j in range(len(wy)):
                        acc += wy[j] * partial[j]
                        fpo += 2
                    out[b][ch][oy][ox] = acc
    return torch.tensor(out, dtype=torch.float64), fpo


_AA_OP = {
    "bilinear": "aten._upsample_bilinear2d_aa",
    "bicubic": "aten._upsample_bicubic2d_aa",
    "lanczos": "aten._upsample_lanczos2d_aa",
}


@_FAST
@given(
    mode=st.sampled_from(["bilinear", "bicubic", "lanczos"]),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    oh=st.integers(1, 11),
    ow=st.integers(2, 11),  # torch 2.13's CPU kernel gives wrong values for a width of 1
    align_corners=st.booleans(),
)
def test_antialiased_interpolation_counts_the_stretched_window(mode, h, w, oh, ow, align_corners):
    """Forward and backward equal the direct loop's count; its values equal torch's.

    The backward is the forward's weights transposed: each product and add of the forward
    becomes one in the gradient, the same count (as the non-antialiased rules count it).
    Before s9 every antialiased resize cost the non-antialiased 9 (bicubic 35) per output
    element whatever the scale: a 4x bilinear downsample of (1, 2, 8, 8) counted 72 FPO where
    the loop performs 672 (lanczos had no rule at all: listed as unknown).
    """
    align_corners = align_corners and mode != "lanczos"  # lanczos refuses align_corners
    x = torch.randn(1, 2, h, w, dtype=torch.float64, requires_grad=True)
    expected_values, expected = _aa_reference(x.detach(), (oh, ow), mode, align_corners)
    kwargs = {"size": (oh, ow), "mode": mode, "antialias": True, "align_corners": align_corners}
    y = F.interpolate(x.detach(), **kwargs)
    torch.testing.assert_close(y, expected_values, rtol=1e-9, atol=1e-9)
    r = count(lambda: F.interpolate(x, **kwargs).backward(torch.ones(1, 2, oh, ow)))
    assert not r.unknown_ops
    op = _AA_OP[mode]
    assert r.by_op_phase[op]["forward"] == expected
    assert r.by_op_phase[f"{op}_backward"]["backward"] == expected


def test_a_4x_antialiased_downsample_by_hand():
    """(1, 2, 8, 8) -> (2, 2) bilinear with antialias: scale 4, support 4.

    Each output index's window: center 4i + 2, inputs ``[int(4i - 1.5), int(4i + 6.5))``
    clipped to [0, 8): 6 for i = 0 and 6 for i = 1 (``[2, 8)``). Per output element: 6
    interpolations of 6 taps along W (12 each) and one of 6 along H (12): 84; 8 outputs: 672.
    """
    x = t(1, 2, 8, 8)
    r = count(lambda: F.interpolate(x, size=(2, 2), mode="bilinear", antialias=True))
    assert r.total == 8 * (6 * 12 + 12) == 672


def test_bicubic_taps_are_multiply_accumulates_as_in_every_dot_product():
    """Bicubic: five 4-tap cubic interpolations per output element (4 along W, 1 along H).

    A 4-tap interpolation is ``sum(w_i * x_i)``, a dot product of length 4: 4 multiplies and 4
    adds into the accumulator, 8, as ``2mkn`` counts a product and n adds a reduction of n
    values; so 40 per output element (before s9: 35, counting 3 adds per 4 taps). The same for
    grid_sample's bicubic mode. (1, 1, 3, 3) -> (5, 5): 25 outputs, 1,000 FPO; backward alike.
    """
    x = t(1, 1, 3, 3, grad=True)
    r = count(
        lambda: F.interpolate(x, size=(5, 5), mode="bicubic").backward(torch.ones(1, 1, 5, 5))
    )
    assert r.by_op["aten.upsample_bicubic2d"] == 25 * 40
    assert r.by_op["aten.upsample_bicubic2d_backward"] == 25 * 40
    grid = torch.zeros(1, 5, 5, 2)  # 25 locations, 1 channel, zeros padding: 3 per coordinate
    r = count(lambda: F.grid_sample(t(1, 1, 3, 3), grid, mode="bicubic", align_corners=False))
    assert r.total == 25 * 2 * 3 + 25 * 40


# -- norms: the gradient of the weight alone recomputes the normalised input -------------------


def test_layer_norm_weight_gradient_without_an_input_gradient_recomputes_x_hat():
    """grad_weight = sum(g * x_hat), x_hat = (x - mean) * rstd: 4 per element on its own.

    With the input's gradient, x_hat is recomputed there (2 per element, inside its 9) and
    grad_weight adds 2 (multiply, accumulate); without it (a norm on data that needs no
    gradient) nothing else computes x_hat. (2, 3, 5) normalised over 5 with weight and bias:
    forward 5N + 4 rows + N + N = 150 + 24 + 60 = 234; backward grad_weight 4N = 120,
    grad_bias N = 30. Before s9 the backward counted 90 (x_hat never computed).
    """
    ln = torch.nn.LayerNorm(5)
    r = count(lambda: ln(t(2, 3, 5)).backward(torch.ones(2, 3, 5)))
    assert r.by_op_phase["aten.native_layer_norm"]["forward"] == 234
    assert r.by_op["aten.native_layer_norm_backward"] == 4 * 30 + 30
    # with the input's gradient: 9N + N (weight) + 2 per row, 2N, N
    r = count(lambda: ln(t(2, 3, 5, grad=True)).backward(torch.ones(2, 3, 5)))
    assert r.by_op["aten.native_layer_norm_backward"] == 10 * 30 + 2 * 6 + 2 * 30 + 30


def test_group_and_batch_norm_weight_gradient_without_an_input_gradient():
    """As layer norm: grad_weight alone is 4N, grad_bias N.

    GroupNorm(2, 4) on (3, 4, 5): N = 60 -> 240 + 60. BatchNorm2d(3) training on (2, 3, 4, 5):
    N = 120 -> 480 + 120.
    """
    gn = torch.nn.GroupNorm(2, 4)
    r = count(lambda: gn(t(3, 4, 5)).backward(torch.ones(3, 4, 5)))
    assert r.by_op["aten.native_group_norm_backward"] == 4 * 60 + 60
    bn = torch.nn.BatchNorm2d(3)
    r = count(lambda: bn(t(2, 3, 4, 5)).backward(torch.ones(2, 3, 4, 5)))
    assert r.by_op["aten.native_batch_norm_backward"] == 4 * 120 + 120


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_backward_by_hand(affine):
    """Eval: y = (x - mean) * rstd * w + b with the running statistics (constants).

    grad_input = g * rstd * w: 1 per element, + 1 with a weight (not 2 without one);
    grad_weight = sum(g * (x - mean) * rstd): subtract, two multiplies, accumulate, 4 per
    element (x_hat is not computed for the input's gradient in eval); grad_bias = sum(g): 1.
    (2, 3, 4, 5): N = 120. affine: 240 + 480 + 120 = 840 (before s9: 600); without: 120
    (before s9: 240).
    """
    bn = torch.nn.BatchNorm2d(3, affine=affine).eval()
    r = count(lambda: bn(t(2, 3, 4, 5, grad=True)).backward(torch.ones(2, 3, 4, 5)))
    assert r.by_op["aten.native_batch_norm_backward"] == (840 if affine else 120)


# -- embedding, vector norm ------------------------------------------------------------------


def test_embedding_backward_scaled_by_frequency_multiplies_each_gradient_element():
    """``scale_grad_by_freq``: each looked-up row's gradient is scaled by 1/count, then added.

    (1, 3) ids into D = 4: 12 gradient elements, 12 adds (+ 12 multiplies when scaled).
    """
    ids = torch.tensor([[1, 2, 2]])
    plain = torch.nn.Embedding(10, 4)
    scaled = torch.nn.Embedding(10, 4, scale_grad_by_freq=True)
    r = count(lambda: plain(ids).backward(torch.ones(1, 3, 4)))
    assert r.by_op["aten.embedding_dense_backward"] == 12
    r = count(lambda: scaled(ids).backward(torch.ones(1, 3, 4)))
    assert r.by_op["aten.embedding_dense_backward"] == 24


@pytest.mark.parametrize(
    ("ord_", "per_element", "per_output"),
    [(0, 2, 0), (1, 2, 0), (2, 2, 1), (math.inf, 2, 0), (-math.inf, 2, 0), (3, 3, 1)],
)
def test_vector_norm_by_order(ord_, per_element, per_output):
    """p = 0 counts the non-zeros (compare, add: 2 per element, no root, as p = 1 and inf).

    p = 2: square, add + one square root; other p: abs, power, add + one root. Before s9
    p = 0 was counted as a general p (3 per element + a root).
    """
    x = t(3, 4)
    r = count(lambda: torch.linalg.vector_norm(x, ord_, dim=1))
    assert r.total == per_element * 12 + per_output * 3


# -- ops that had no rule --------------------------------------------------------------------


def test_ops_a_survey_found_without_a_rule_are_counted_or_zero_by_rule():
    """polygamma, igamma(c) (elementary functions) and heaviside (a compare): 1 per element.

    Drawing gamma, Dirichlet, Poisson or binomial samples is random number generation (0 by
    rule, as bernoulli and normal), and ``_is_all_true`` is boolean logic; before s9 each was
    listed in ``unknown_ops``.
    """
    x = torch.rand(3, 4) + 1.0
    r = count(
        lambda: (
            torch.polygamma(1, x),
            torch.heaviside(x, x),
            torch.special.gammainc(x, x),
            torch.special.gammaincc(x, x),
        )
    )
    assert not r.unknown_ops and r.total == 4 * 12
    r = count(
        lambda: (
            torch.distributions.Gamma(x, 1.0).rsample(),
            torch.distributions.Dirichlet(x).sample(),
            torch.poisson(x),
            torch.binomial(x.floor(), torch.full((3, 4), 0.5)),
        )
    )
    assert not r.unknown_ops
    assert {"aten._standard_gamma", "aten._sample_dirichlet", "aten.poisson"} <= set(r.zero_ops)
