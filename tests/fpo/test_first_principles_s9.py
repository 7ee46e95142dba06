"""FPO proved from first principles, not against a peer counter (audit s9).

Every expected figure here is derived by hand in the test's docstring or counted by a plain
Python reference that performs the computation and counts each multiply and add it does (its
values are checked against torch, so the reference is the op). Conventions, as docs/fpo.md
states them: a multiply-accumulate is 2 FPO (``2mkn`` for a product: the BLAS kernel's k
multiply-adds into a zeroed accumulator), reducing n values costs n adds, one FPO per
elementwise arithmetic op, compare or elementary function. Other kernels count as their source
writes them (s24): a k-tap interpolation written ``out = t_0 * w_0; out += t_j * w_j`` (ATen's
interpolation kernels) is ``2k - 1``; a lerp ``a + w (b - a)`` is its own 3-op formula.
"""

from __future__ import annotations

import math
import struct

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402

_FAST = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread here: these tensors are tiny, and the thread pool's spinning threads
    cost more CPU than they save (FPO are counted from shapes, not timed)."""
    with one_thread():
        yield


def count(fn):
    """Run ``fn()`` inside a counter; return the result."""
    with gp.FPOCounter() as c:
        fn()
    return c.result


def t(*shape, grad=False, dtype=torch.float32):
    return torch.randn(*shape, requires_grad=grad, dtype=dtype)


# -- antialiased interpolation (bilinear, bicubic, lanczos) -------------------------------------


def _triangle(x):
    """``HelperInterpLinear::aa_filter``: ``(value, FPO)``: ``|x|``, ``x < 1``, ``1 - x``."""
    x = abs(x)
    return (1.0 - x, 3) if x < 1.0 else (0.0, 2)


def _cubic(x, a=-0.5):  # the antialiased bicubic filter (a = -0.5, as PIL)
    """``HelperInterpCubic::aa_filter``: ``(value, FPO)``: ``|x|``, ``x < 1`` and
    ``cubic_convolution1`` (7); else ``x < 2`` and ``cubic_convolution2`` (9), as written."""
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0, 2 + 7
    if x < 2.0:
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a, 3 + 9
    return 0.0, 3


def _lanczos3(x):
    """``HelperInterpLanczos::aa_filter``: ``(value, FPO)``: ``|x|``, ``x < 3``, then
    ``sinc(x) * sinc(x / 3)``, each sinc its ``== 0`` compare and, when not 0, ``x * pi``,
    the sine and the division."""
    x = abs(x)
    if x >= 3.0:
        return 0.0, 2

    def sinc(v):
        if v == 0.0:
            return 1.0, 1
        pv = math.pi * v
        return math.sin(pv) / pv, 4

    (s1, f1), (s3, f3) = sinc(x), sinc(x / 3.0)
    return s1 * s3, 2 + f1 + 1 + f3 + 1


_FILTERS = {"bilinear": (2, _triangle), "bicubic": (4, _cubic), "lanczos": (6, _lanczos3)}


def _f32(value):
    """``value`` held in a float32, as the kernel holds its weights for a float32 input."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _aa_windows(size_in, size_out, mode, align_corners, dtype=torch.float64):
    """Per output index: (first input index, normalised weights, FPO) of torch's antialiased
    filter, and the FPO computed once for the dimension; in ``dtype``, as the kernel computes
    them (``scalar_t``).

    The filter is stretched by the scale when downsampling (``support = taps / 2 * scale``),
    so a 4x bilinear downsample reads about 8 inputs per output and dimension, not 2. The
    weights are counted as ATen computes them (s25): once, the scale
    (``area_pixel_compute_scale``: ``in / out``, 1; ``(in - 1) / (out - 1)``, 1, or 0 for one
    output, with align_corners), the support (the ``scale >= 1`` compare and ``(taps * 0.5) *
    scale`` or ``taps * 0.5``) and its ceil; per index (``_compute_indices_min_size_weights_aa``)
    the centre ``scale * (i + 0.5)`` (2), ``invscale`` (the compare, and ``1 / scale`` when
    ``scale >= 1``), the window's ends ``center -/+ support + 0.5`` (4), per tap the filter's
    argument ``(j + xmin - center + 0.5) * invscale`` (3), the filter and ``total_w += w`` (1),
    then ``total_w != 0`` (1) and, when not 0, per tap ``w /= total_w`` and the running
    ``wt_max`` (2). For a float32 input (``dtype``) the kernel holds the scale, support,
    centre, filter argument and ``total_w`` in float32: a tap can fall exactly on the filter's
    edge there and not in double, which changes the filter's count.
    """
    r = _f32 if dtype == torch.float32 else float
    taps, filt = _FILTERS[mode]
    if align_corners:
        scale = r((size_in - 1) / (size_out - 1)) if size_out > 1 else 0.0
        setup = 1 if size_out > 1 else 0
    else:
        scale = r(r(size_in) / size_out)
        setup = 1
    support = r(taps * 0.5 * scale) if scale >= 1.0 else taps * 0.5
    setup += (3 if scale >= 1.0 else 2) + 1
    inv = r(1.0 / scale) if scale >= 1.0 else 1.0
    out = []
    for i in range(size_out):
        center = r(scale * (i + 0.5))
        fpo = 2 + (2 if scale >= 1.0 else 1) + 4
        lo = max(int(r(center - support) + 0.5), 0)
        size = min(
            max(min(int(r(center + support) + 0.5), size_in) - lo, 0),
            2 * math.ceil(support) + 1,
        )
        w, total = [], 0.0
        for j in range(size):
            value, ops = filt(r((r(j + lo - center) + 0.5) * inv))
            w.append(r(value))
            total = r(total + r(value))
            fpo += 3 + ops + 1
        fpo += 1 + (2 * size if total else 0)
        out.append((lo, [v / total for v in w] if total else w, fpo))
    return out, setup


def _aa_reference(x, size, mode, align_corners):
    """Antialiased resize of (N, C, H, W) as ATen's separable loops; returns (values, FPO).

    One pass per dimension whose size changes (an unchanged one is skipped: torch copies it),
    W first over every input row, then H over that result; each pass computes its weights once
    (``_compute_index_ranges_weights``: :func:`_aa_windows`' FPO, + 1 per index for the maximum
    weight across indices, s25); each output of a pass is ``out = t_0 * w_0`` then ``out +=
    t_j * w_j`` over its window (``2k - 1`` for ``k`` taps).
    Until s24 the count was a direct loop (``kh`` interpolations along W per output element,
    ``2k`` each), which performs the same values with more arithmetic than the kernel does.
    """
    n, c, h, w = x.shape
    oh, ow = size
    xs, fpo = x.tolist(), 0
    dtype = x.dtype

    def interpolate(values, window):
        nonlocal fpo
        lo, weights, _ = window
        acc = values[lo] * weights[0]
        fpo += 1
        for j in range(1, len(weights)):
            acc += values[lo + j] * weights[j]
            fpo += 2
        return acc

    planes = [xs[b][ch] for b in range(n) for ch in range(c)]
    if ow != w:
        cols, setup = _aa_windows(w, ow, mode, align_corners, dtype)
        fpo += setup + sum(f + 1 for _, _, f in cols)
        planes = [[[interpolate(row, col) for col in cols] for row in p] for p in planes]
    if oh != h:
        rows, setup = _aa_windows(h, oh, mode, align_corners, dtype)
        fpo += setup + sum(f + 1 for _, _, f in rows)
        planes = [
            [[interpolate([line[j] for line in p], r) for j in range(ow)] for r in rows]
            for p in planes
        ]
    out = [[planes[b * c + ch] for ch in range(c)] for b in range(n)]
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
    """Forward and backward equal the direct loops' counts; the forward's values equal torch's.

    The backward (ATen's ``cpu_upsample_genNd_backward_aa``) adds ``wx[x] * wy[y] * g`` into
    each input of an output's ``kh x kw`` window, two multiplies and an add, and weighs an
    unchanged dimension too (its scale-1 window): ``3 kh kw`` per gradient element (before s22
    it was counted as the forward's separable count). Before s9 every antialiased resize cost
    the non-antialiased 9 (bicubic 35) per output
    element whatever the scale: a 4x bilinear downsample of (1, 2, 8, 8) counted 72 FPO where
    the loop performs 672 (lanczos had no rule at all: listed as unknown). Since s25 both
    include the filter's weights as :func:`_aa_windows` counts them (the backward recomputes a
    row's per output row and a column's per output pixel); a float32 input, whose weights the
    kernel computes in float32 (the rule's assumption).
    """
    align_corners = align_corners and mode != "lanczos"  # lanczos refuses align_corners
    x = torch.randn(1, 2, h, w, dtype=torch.float32, requires_grad=True)
    expected_values, expected = _aa_reference(x.detach(), (oh, ow), mode, align_corners)
    kwargs = {"size": (oh, ow), "mode": mode, "antialias": True, "align_corners": align_corners}
    y = F.interpolate(x.detach(), **kwargs)
    torch.testing.assert_close(y.double(), expected_values, rtol=1e-4, atol=1e-5)
    r = count(lambda: F.interpolate(x, **kwargs).backward(torch.ones(1, 2, oh, ow)))
    assert not r.unknown_ops
    op = _AA_OP[mode]
    assert r.by_op_phase[op]["forward"] == expected
    rows, setup_h = _aa_windows(h, oh, mode, align_corners, torch.float32)
    cols, setup_w = _aa_windows(w, ow, mode, align_corners, torch.float32)
    # the backward's weights: both setups once, a row's per output row, a column's per output
    # pixel (``oh`` times each), no maximum across indices
    weights = setup_h + setup_w + sum(f for *_, f in rows) + oh * sum(f for *_, f in cols)
    taps = sum(len(wy) for _, wy, _ in rows) * sum(len(wx) for _, wx, _ in cols)
    assert r.by_op_phase[f"{op}_backward"]["backward"] == weights + 2 * 3 * taps


def test_antialiased_weights_of_a_float64_input_are_computed_in_double():
    """Scale ``9 / 7`` (align_corners, 10 -> 8), support ``9 / 7``: output 2's window holds 3
    taps (inputs 1 to 3), the last at ``(3 - 45 / 14 + 0.5) * 7 / 9``, 0.9999999999999998 in
    double (inside the filter), exactly 1.0 in float32. Only W changes: the forward's weights
    counted in double (since s25; the rule counted them in float32: 315), and in float32 for
    the same resize of a float32 input, as its kernel computes them."""
    x = torch.randn(1, 2, 1, 10, dtype=torch.float64)
    _, expected = _aa_reference(x, (1, 8), "bilinear", True)
    r = count(
        lambda: F.interpolate(x, size=(1, 8), mode="bilinear", antialias=True, align_corners=True)
    )
    assert r.total == expected == 316
    single = x.float()
    _, expected_single = _aa_reference(single, (1, 8), "bilinear", True)
    r = count(
        lambda: F.interpolate(
            single, size=(1, 8), mode="bilinear", antialias=True, align_corners=True
        )
    )
    assert r.total == expected_single == 315


def test_a_4x_antialiased_downsample_by_hand():
    """(1, 2, 8, 8) -> (2, 2) bilinear with antialias: scale 4, support 4.

    Each output index's window: center 4i + 2, inputs ``[int(4i - 1.5), int(4i + 6.5))``
    clipped to [0, 8): 6 for i = 0 and 6 for i = 1 (``[2, 8)``). ATen's separable kernel: along
    W, each of the 8 input rows of both planes to 2 outputs of 6 taps (``2 * 6 - 1`` = 11):
    2 * 8 * 22 = 352; along H, each of the 2 columns to 2 outputs of 11: 2 * 2 * 22 = 88; 440
    (until s24: 672, a direct loop's 6 interpolations along W per output element, 12 each).
    Plus each pass's weights, computed once (s25): the scale ``8 / 2`` (1), the support's
    compare and ``(2 * 0.5) * 4`` (3), its ceil (1): 5; per output index the centre ``4 (i +
    0.5)`` (2), ``invscale``'s compare and ``1 / 4`` (2), the window's ends (4); per tap (6)
    the argument ``(j + xmin - c + 0.5) / 4`` (3), the triangle ``|x|``, ``x < 1``, ``1 - x``
    (3: the taps sit at ``|x|`` = 0.125 ... 0.875, all inside) and ``total_w += w`` (1);
    ``total_w != 0`` (1), per tap ``w /= total_w`` and the running max (2 x 6); the maximum
    across indices (1): 64 per index, ``5 + 2 x 64`` = 133 per pass, 706 in all (440 until s25).
    Given as scale factors 0.25, each scale is ``1 / 0.25`` after the ``> 0`` compare: 708.
    """
    x = t(1, 2, 8, 8)
    r = count(lambda: F.interpolate(x, size=(2, 2), mode="bilinear", antialias=True))
    per_index = 2 + 2 + 4 + 6 * (3 + 3 + 1) + 1 + 2 * 6 + 1
    assert per_index == 64
    weights = 2 * (5 + 2 * per_index)
    assert r.total == 2 * 8 * 2 * 11 + 2 * 2 * 2 * 11 + weights == 706
    # the .vec overload (output size or scale factors; decomposed before counting) reads alike
    from greenprint.fpo.rules import RULES

    rule = RULES["aten._upsample_bilinear2d_aa"].fn
    assert rule((1, 2, 8, 8), None, False, [0.25, 0.25], out_shape=(1, 2, 2, 2)) == 706 + 2


def test_bicubic_taps_are_counted_as_the_kernel_writes_them():
    """Bicubic: five 4-tap cubic interpolations per output element (4 along W, 1 along H).

    ATen's ``Interpolate`` writes a 4-tap interpolation ``out = t_0 * w_0; out += t_j * w_j``:
    4 multiplies and 3 adds, 7, so 35 per output element (s9 to s23 counted 40, 8 per
    interpolation as if the sum started from a zeroed accumulator). (1, 1, 3, 3) -> (5, 5): 25
    outputs, 875 FPO. grid_sample's bicubic mode runs a kernel of its own (ATen's
    vectorised ``ApplyGridSample<Bicubic>``): per location 2 coordinates unnormalised (3 each),
    2 floors, 2 fractions and the cubic coefficients of both axes (35 each): 80; per output
    element 4 rows of 4 taps, each tap's position (2; clipping 0 with zeros padding), the row
    ``c0 v0 + c1 v1 + c2 v2 + c3 v3`` as written (7), the column 7: 67. 25 * (80 + 67) = 3,675
    (it was 25 * 6 + 25 * 40 = 1,150, counted as upsampling). The backward
    kernel scatters ``out_value * y_coeffs[j] * x_coeffs[i]`` into each of the 16 taps (two
    multiplies and an add): 48 per gradient element, 1,200 (it counted 1,000, the forward's).
    The forward's weights (s25), once per output index of each axis
    (``HelperInterpCubic::compute_indices_weights``): the scales ``3 / 5`` (1 each), the
    source ``scale * (i + 0.5) - 0.5`` (3), ``guard_index_and_lambda`` (floor, ``x - index``,
    its max and min: 4) and ``get_cubic_upsample_coefficients`` (35): ``2 + 10 x 42`` = 422,
    1,297 in all (875 until s25). The backward's weights: see
    :func:`test_bicubic_backward_computes_both_axes_weights_per_plane_and_pixel`.
    """
    x = t(1, 1, 3, 3, grad=True)
    r = count(
        lambda: F.interpolate(x, size=(5, 5), mode="bicubic").backward(torch.ones(1, 1, 5, 5))
    )
    assert r.by_op["aten.upsample_bicubic2d"] == 2 + (5 + 5) * (3 + 4 + 35) + 25 * 35 == 1_297
    grid = torch.zeros(1, 5, 5, 2)  # 25 locations, 1 channel, zeros padding
    r = count(lambda: F.grid_sample(t(1, 1, 3, 3), grid, mode="bicubic", align_corners=False))
    assert r.total == 25 * 80 + 25 * 67


def test_bicubic_backward_computes_both_axes_weights_per_plane_and_pixel():
    """``upsample_bicubic2d_backward_out_frame`` (torch 2.13, ``UpSampleBicubic2d.cpp``): the
    scales once (``3 / 5``: 1 each), then per plane (1 here) and output pixel (25) both axes'
    source index (3 each: no ``< 0`` compare on the cubic path), ``guard_index_and_lambda``
    (floor, ``real - index``, max, min: 4 each) and coefficients (35 each): 84; and 16 taps of
    ``out_value * y_coeffs[jj] * x_coeffs[ii]`` added per gradient element (48): ``2 + 25 x 84
    + 25 x 48`` = 3,302."""
    x = t(1, 1, 3, 3, grad=True)
    r = count(
        lambda: F.interpolate(x, size=(5, 5), mode="bicubic").backward(torch.ones(1, 1, 5, 5))
    )
    expected = 2 + 25 * (2 * (3 + 4) + 2 * 35) + 25 * 48
    assert r.by_op["aten.upsample_bicubic2d_backward"] == expected == 3_302


# -- norms: the gradient of the weight alone recomputes the normalised input -------------------


def test_layer_norm_weight_gradient_without_an_input_gradient_recomputes_x_hat():
    """grad_weight = sum(g * x_hat), x_hat = a x + b: 4 per element on its own.

    ATen's CPU kernel (s34; tests/fpo/test_fpo_layer_norm_s34.py ports it). (2, 3, 5)
    normalised over 5 with weight and bias, 6 rows of 5 float32 values, shorter than a vector
    of 8: per row the scalar Welford (6 per value: 30), the 8 lanes merged in (9 each: 72),
    ``m2 / N``, ``rstd`` (3) and ``-mean`` (1), 107; then 4 per element: 6 * 107 + 120 = 762
    (it was 234). Backward without the input's gradient (a norm on data that needs no
    gradient): ``1 / N`` once, ``b = -a mean`` per row (2), ``g (a x + b)`` into the weight's
    buffer (4 per element), ``g`` into the bias's (1), the threads' buffers summed per column
    (2 per thread): 1 + 12 + 120 + 30 + 10 T (it was 150); with it, + ``b``, ``c`` per row
    (11, less 2: its two sums start from their first values) + 10 per element.
    """
    threads = torch.get_num_threads()
    ln = torch.nn.LayerNorm(5)
    r = count(lambda: ln(t(2, 3, 5)).backward(torch.ones(2, 3, 5)))
    assert r.by_op_phase["aten.native_layer_norm"]["forward"] == 762
    assert r.by_op["aten.native_layer_norm_backward"] == 1 + 12 + 120 + 30 + 10 * threads
    r = count(lambda: ln(t(2, 3, 5, grad=True)).backward(torch.ones(2, 3, 5)))
    with_input = 1 + 12 + 120 + 30 + 10 * threads + 6 * 9 + 10 * 30
    assert r.by_op["aten.native_layer_norm_backward"] == with_input


def test_group_and_batch_norm_weight_gradient_without_an_input_gradient():
    """The weight's and bias's gradients alone, as ATen's CPU kernels compute them.

    GroupNorm(2, 4) on (3, 4, 5), N = 60, 12 channels of 5 values: the kernel computes ``ds =
    sum(g x)`` and ``db = sum(g)`` per channel whatever is asked (3 per element less 2 per
    channel: 156), the weight's gradient ``(ds - db mean) rstd`` summed over the samples (4 per
    channel: 48), the bias's ``db`` summed (12): 216 (s34; it was 240 + 60).
    BatchNorm2d(3) training on (2, 3, 4, 5):
    N = 120 -> ATen's CPU kernel computes the sum and the dot product ``sum(g (x - mean))``
    whatever is asked (4 per element) and the weight's gradient ``dotp * invstd`` per channel:
    480 + 3 (s34; it was 480 + 120).
    """
    gn = torch.nn.GroupNorm(2, 4)
    r = count(lambda: gn(t(3, 4, 5)).backward(torch.ones(3, 4, 5)))
    assert r.by_op["aten.native_group_norm_backward"] == (3 * 60 - 2 * 12) + 4 * 12 + 12 == 216
    bn = torch.nn.BatchNorm2d(3)
    r = count(lambda: bn(t(2, 3, 4, 5)).backward(torch.ones(2, 3, 4, 5)))
    assert r.by_op["aten.native_batch_norm_backward"] == 4 * 120 + 3


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_backward_by_hand(affine):
    """Eval: y = (x - mean) * rstd * w + b with the running statistics (constants).

    ATen's CPU kernel (s34): ``rstd = 1 / sqrt(var + eps)`` per channel (3), then whatever is
    asked the sum of g and ``sum((x - mean) * g)`` (4 per element); grad_input ``g * rstd *
    w`` 2 per element (``w = 1`` without affine); grad_weight ``dotp * rstd`` 1 per channel.
    (2, 3, 4, 5): N = 120, C = 3. affine: 480 + 9 + 240 + 3 = 732 (840 from s9 to s34);
    without: 729 (120).
    """
    bn = torch.nn.BatchNorm2d(3, affine=affine).eval()
    r = count(lambda: bn(t(2, 3, 4, 5, grad=True)).backward(torch.ones(2, 3, 4, 5)))
    assert r.by_op["aten.native_batch_norm_backward"] == (732 if affine else 729)


# -- embedding, vector norm ------------------------------------------------------------------


def test_embedding_backward_scaled_by_frequency_multiplies_each_gradient_element():
    """``scale_grad_by_freq``: each looked-up row's gradient is scaled by 1/count, then added.

    (1, 3) ids into D = 4: 12 gradient elements, 12 adds (+ 12 multiplies when scaled, and
    ATen's ``scale /= counts[k]`` once per id: + 3, since s36).
    """
    ids = torch.tensor([[1, 2, 2]])
    plain = torch.nn.Embedding(10, 4)
    scaled = torch.nn.Embedding(10, 4, scale_grad_by_freq=True)
    r = count(lambda: plain(ids).backward(torch.ones(1, 3, 4)))
    assert r.by_op["aten.embedding_dense_backward"] == 12
    r = count(lambda: scaled(ids).backward(torch.ones(1, 3, 4)))
    assert r.by_op["aten.embedding_dense_backward"] == 24 + 3


@pytest.mark.parametrize(
    ("ord_", "per_element", "per_output"),
    [(0, 2, 0), (1, 2, 0), (2, 2, 8), (math.inf, 2, 0), (-math.inf, 2, 0), (3, 3, 2)],
)
def test_vector_norm_by_order(ord_, per_element, per_output):
    """p = 0 counts the non-zeros (compare, add: 2 per element, no root, as p = 1 and inf).

    p = 2: square, add + one square root, and along the contiguous last dimension ATen's
    vectorised kernel adds its accumulator's 8 lanes (7) before the root (s36; ported in
    test_fpo_norms_s36); other p: abs, power, add + the root ``pow(acc, 1 / p)``, 2 (1 until
    s36). Before s9 p = 0 was counted as a general p (3 per element + a root).
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


# -- proofs: attention ------------------------------------------------------------------------


@_FAST
@given(
    batch=st.integers(1, 2),
    kv_heads=st.integers(1, 2),
    group=st.integers(1, 3),
    sq=st.integers(1, 5),
    sk=st.integers(1, 5),
    d=st.integers(1, 4),
    dv=st.integers(1, 4),
    mask=st.sampled_from(["none", "bool", "float", "causal"]),
    dropout=st.sampled_from([0.0, 0.5]),
)
def test_attention_forward_and_backward_by_hand(
    batch, kv_heads, group, sq, sk, d, dv, mask, dropout
):
    """softmax(Q K^T / sqrt(d) + M) V, S = b h sq sk scores over the h = group * kv_heads heads.

    Forward: Q K^T is S dot products of length d (2Sd), P V is b h sq dv of length sk (2Sdv);
    Q and K each scaled by sqrt(scale) (b h sq d + b h sk d; K as repeated to the query heads,
    as the math path does); the mask add (S; a boolean or causal mask becomes an additive one);
    softmax 5S; dropout 2S (mask multiply, rescale).
    Backward (dO given): dP = dO V^T (2Sdv), dV = P^T dO (2Sdv), softmax backward 4S, dQ = dS K
    (2Sd), dK = dS^T Q (2Sd), the two scalings again, dropout S (torch's CPU dropout divides
    the mask by 1 - p once, in the forward, so its gradient is one multiply by that mask);
    softmax is ``_safe_softmax``, ATen's softmax (5S less 1 per query row: the max and the sum
    start from their first values, ``1 / sum`` once per row) and a compare with ``-inf`` per
    score (S), its backward 4S less 1 per row (s35; 5S and 4S before);
    grouped-query attention sums each K and V gradient over its group's query heads
    (b h sk (d + dv) adds). Without dropout, CPU runs its fused flash kernel (counted by the
    same formula, outside ``matmul_total``); with dropout, the math path op by op.
    """
    heads = kv_heads * group
    q = t(batch, heads, sq, d, grad=True)
    k = t(batch, kv_heads, sk, d, grad=True)
    v = t(batch, kv_heads, sk, dv, grad=True)
    kwargs = {"dropout_p": dropout, "enable_gqa": group > 1, "is_causal": mask == "causal"}
    if mask == "bool":
        kwargs["attn_mask"] = torch.ones(sq, sk, dtype=torch.bool)
    elif mask == "float":
        kwargs["attn_mask"] = torch.zeros(sq, sk)
    r = count(
        lambda: F.scaled_dot_product_attention(q, k, v, **kwargs).backward(
            torch.ones(batch, heads, sq, dv)
        )
    )
    s = batch * heads * sq * sk
    scalings = batch * heads * (sq + sk) * d
    masked = s if mask != "none" else 0
    regroup = batch * heads * sk * (d + dv) if group > 1 else 0
    assert not r.unknown_ops
    forward_dropout, backward_dropout = (2 * s, s) if dropout else (0, 0)
    rows = batch * heads * sq
    softmax, softmax_backward = 6 * s - rows, 4 * s - rows
    assert r.forward_total == 2 * s * (d + dv) + scalings + masked + softmax + forward_dropout
    assert r.backward_total == (
        4 * s * (d + dv) + softmax_backward + scalings + backward_dropout + regroup
    )


# -- proofs: recurrent layers -----------------------------------------------------------------

_GATES = {torch.nn.LSTM: 4, torch.nn.GRU: 3, torch.nn.RNN: 1}
_ELEMENTWISE = {torch.nn.LSTM: 22, torch.nn.GRU: 16, torch.nn.RNN: 2}


def _recurrent_step(cls, inp, hidden, bias):
    """FPO of one token through one layer and direction, by hand.

    Pre-activations of the G gates: ``W_ih x`` (2 G H I) + ``W_hh h`` (2 G H H), + the two
    biases (2 G H). Elementwise, per hidden unit: LSTM 22 (add the two products 4, activations
    13: three sigmoids of 4, ATen's kernel ``(1 + exp(-x)).reciprocal()``, and a tanh; ``c' =
    f c + i g`` 3, ``tanh(c')`` 1, ``h' = o tanh(c')`` 1); GRU 16 (r and z: add 2, sigmoid 8;
    ``n = tanh(x_n + b + r (h_n + b))``: multiply, add, tanh 3; ``h' = n + z (h - n)`` 3); RNN 2
    (add, tanh). (LSTM 13 and GRU 10 before s35 counted a sigmoid as 1.)
    """
    gates = _GATES[cls]
    return (
        2 * gates * hidden * (inp + hidden)
        + (2 * gates * hidden if bias else 0)
        + _ELEMENTWISE[cls] * hidden
    )


@_FAST
@given(
    cls=st.sampled_from([torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN]),
    steps=st.integers(1, 4),
    batch=st.integers(1, 3),
    inp=st.integers(1, 4),
    hidden=st.integers(1, 4),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    bias=st.booleans(),
)
def test_recurrent_layers_forward_by_hand(
    cls, steps, batch, inp, hidden, layers, bidirectional, bias
):
    """Every token through every layer and direction (fused oneDNN LSTM on CPU or op by op).

    A second layer reads the first's output: ``H`` features, ``2H`` when bidirectional.
    """
    rnn = cls(inp, hidden, num_layers=layers, bidirectional=bidirectional, bias=bias)
    x = t(steps, batch, inp)
    with torch.no_grad():
        r = count(lambda: rnn(x))
    directions = 2 if bidirectional else 1
    expected = 0
    for layer in range(layers):
        features = inp if layer == 0 else directions * hidden
        expected += directions * steps * batch * _recurrent_step(cls, features, hidden, bias)
    assert not r.unknown_ops and r.total == expected
    assert r.by_module[cls.__name__] == expected  # all of it charged to the layer


def test_a_packed_batch_counts_the_real_tokens_only():
    """Lengths 5 and 2 in a (5, 2, 3) batch: 7 tokens, not 10, each ``_recurrent_step``."""
    from torch.nn.utils.rnn import pack_padded_sequence

    for cls in _GATES:
        rnn = cls(3, 4)
        packed = pack_padded_sequence(t(5, 2, 3), [5, 2])
        with torch.no_grad():
            r = count(lambda: rnn(packed))  # noqa: B023
        assert r.total == 7 * _recurrent_step(cls, 3, 4, True)


# -- proofs: embedding bags -------------------------------------------------------------------


@_FAST
@given(
    data=st.data(),
    mode=st.sampled_from(["sum", "mean", "max"]),
    dim=st.integers(1, 4),
    weighted=st.booleans(),
)
def test_embedding_bag_against_a_loop_that_counts(data, mode, dim, weighted):
    """A loop over the bags that reduces each looked-up row into its bag and counts.

    sum: one add per looked-up element into the bag's accumulator (from zero; an empty bag is
    zeros); per-sample weights: one multiply per looked-up element first; mean: one division
    per output element (empty bags too: the count is shape-only); max: each bag's first row
    taken as it is, one compare per element of the others (ATen's ``is_first_for_bag ||
    weight > current``; s41: it was one per looked-up element). Backward, per looked-up entry
    as ATen's kernel: a scale (mean ``1 / bag_size``, 1 division), then the bag gradient
    times it added to the row (1 add per element, + 1 multiply unless the scale is 1: with
    weights or for mean; s41: mean was counted as one division per gradient element), plus
    with weights their gradient (a dot product of the row and the bag gradient: 2D); max
    sends each element of the bags that hold a row to one row (s41: empty bags too).
    """
    weighted = weighted and mode == "sum"  # per_sample_weights only with mode="sum"
    n_idx = data.draw(st.integers(0, 7))
    cuts = sorted(data.draw(st.lists(st.integers(0, n_idx), min_size=1, max_size=4)))
    offsets = torch.tensor([0, *cuts[1:]])
    ids = torch.randint(0, 6, (n_idx,))
    table = t(6, dim, grad=True)
    psw = t(n_idx, grad=True) if weighted else None
    bags = len(offsets)
    bounds = [*offsets.tolist(), n_idx]
    expected_values, fpo = [], 0
    for b in range(bags):
        rows = [table[i].tolist() for i in ids[bounds[b] : bounds[b + 1]].tolist()]
        scales = psw[bounds[b] : bounds[b + 1]].tolist() if weighted else [1.0] * len(rows)
        acc = [0.0 if mode != "max" else -math.inf] * dim
        for k, (row, scale) in enumerate(zip(rows, scales, strict=True)):
            for j in range(dim):
                value = row[j] * scale if weighted else row[j]
                fpo += 2 if weighted else 0 if mode == "max" and k == 0 else 1
                acc[j] = max(acc[j], value) if mode == "max" else acc[j] + value
        if mode == "mean":
            acc = [a / len(rows) if rows else 0.0 for a in acc]
            fpo += dim
        if mode == "max" and not rows:
            acc = [0.0] * dim
        expected_values.append(acc)

    def run():
        F.embedding_bag(ids, table, offsets, mode=mode, per_sample_weights=psw).backward(
            torch.ones(bags, dim)
        )

    out = F.embedding_bag(ids, table, offsets, mode=mode, per_sample_weights=psw)
    torch.testing.assert_close(out, torch.tensor(expected_values).reshape(bags, dim))
    r = count(run)
    assert r.forward_total == fpo
    looked_up = n_idx * dim
    if mode == "max":
        backward = sum(bounds[b + 1] > bounds[b] for b in range(bags)) * dim
    else:
        backward = looked_up + (looked_up + n_idx if mode == "mean" else 0)
        backward += 3 * looked_up if weighted else 0  # scale per row + the weights' dot products
    assert r.backward_total == backward


# -- proofs: products with scalings and broadcasting ------------------------------------------


def test_addmm_and_baddbmm_with_alpha_and_beta_forward_and_backward():
    """``beta * C + alpha * (A @ B)``, A (m x k), B (k x n), m, k, n = 3, 4, 5; batch 2.

    Forward: 2mkn, + mn for the add, + mn each for alpha and beta not 1. Backward: dC = beta g
    (mn; a broadcast bias (n) is then summed over the m rows: mn adds), dA = alpha (g B^T)
    (2mnk + mk), dB = alpha (A^T g) (2mnk + kn).
    """
    m, k, n = 3, 4, 5
    r = count(
        lambda: torch.addmm(
            t(n, grad=True), t(m, k, grad=True), t(k, n, grad=True), beta=0.5, alpha=2
        ).backward(torch.ones(m, n))
    )
    assert r.forward_total == 2 * m * k * n + 3 * m * n
    assert r.backward_total == (m * n + m * n) + (2 * m * n * k + m * k) + (2 * m * n * k + k * n)
    b = 2
    r = count(
        lambda: torch.baddbmm(
            t(b, m, n, grad=True), t(b, m, k, grad=True), t(b, k, n, grad=True), beta=0.5, alpha=2
        ).backward(torch.ones(b, m, n))
    )
    assert r.forward_total == b * (2 * m * k * n + 3 * m * n)
    assert r.backward_total == b * (m * n + (2 * m * n * k + m * k) + (2 * m * n * k + k * n))


@pytest.mark.parametrize(
    ("a", "b", "out", "backward"),
    [
        # dA = g B^T, dB = A^T g: 240 each; B's sum over the batch of 2 is inside the
        # contraction over the 6 folded rows
        ((2, 3, 4), (4, 5), (2, 3, 5), 2 * 240),
        ((3, 4), (2, 4, 5), (2, 3, 5), 2 * 240),  # the same, A's batch sum folded
        # two batched products of 1,440, then dA summed over the 5 copies (2*5*3*4 adds) and
        # dB over the 2 copies (2*5*4*6 adds)
        ((2, 1, 3, 4), (1, 5, 4, 6), (2, 5, 3, 6), 2 * 1440 + 120 + 240),
        # dv: one product of length 10 per element of v (2*4*10); dB = v outer g: a product
        # of length 1 is one multiply per element (2*4*5)
        ((4,), (2, 4, 5), (2, 5), 80 + 40),
        ((2, 3, 4), (4,), (2, 3), 24 + 48),  # dA = g outer v: 24 multiplies; dv: 2*4*6
    ],
)
def test_matmul_with_broadcast_batches_forward_and_backward(a, b, out, backward):
    """Each output element is a dot product of length k: 2k; the backward as commented.

    A gradient summed over the copies its operand was broadcast to costs one add per element
    of the broadcast gradient, unless the product folds the batch into its contraction.
    """
    products = 2 * a[-1] * math.prod(out)
    r = count(lambda: torch.matmul(t(*a, grad=True), t(*b, grad=True)).backward(torch.ones(out)))
    assert r.forward_total == products
    assert r.backward_total == backward


@pytest.mark.parametrize(
    ("equation", "shapes", "expected"),
    [
        ("bij,bjk->bik", [(2, 3, 5), (2, 5, 7)], 2 * 2 * 3 * 5 * 7),
        ("i,i->", [(5,), (5,)], 2 * 5),
        ("ii->", [(5, 5)], 5),  # the trace: 5 adds
        ("ij,ij->ij", [(3, 5), (3, 5)], 15),  # no summed index: one multiply each
        ("ij,jk->i", [(3, 5), (5, 7)], 5 * 7 + 2 * 3 * 5),  # k summed out of B first
        ("ij,jk,kl->il", [(3, 5), (5, 7), (7, 2)], 2 * 3 * 5 * 7 + 2 * 3 * 7 * 2),
    ],
)
def test_einsum_paths_by_hand(equation, shapes, expected):
    """Contractions left to right; an index only one operand has is summed out of it first."""
    r = count(lambda: torch.einsum(equation, *(t(*s) for s in shapes)))
    assert r.total == expected


# -- proofs: losses ---------------------------------------------------------------------------


def test_cross_entropy_with_label_smoothing_by_hand():
    """(1 - eps) * nll + eps / C * smooth, N = 3 rows, C = 5 classes, mean reduction.

    log-softmax 6NC - N (``x - max - log(sum)``: two subtractions per element, s34; along the
    last dimension the max and the sum start from their first values, s35; it was 6NC + N,
    and 5NC + N before s34); nll: ATen's kernel subtracts each picked value into the sum
    (``loss -= x[t]``, negation and add in one) N, its cascade's carries after the first target
    14 and its 8 partial sums added up 8 (s35), the mean's division 1 (it counted a negation
    besides the sum: 2N + 1); smooth = -sum_c logp: NC adds + N negations, its mean N + 1; the two
    scalings and the add: 3. 7NC + 2N + 27 = 138 (116 before s35 counted the log-softmax's
    first values and the nll's cascade; it was 7NC + 4N + 5 = 122, 6NC + 4N + 5 = 107, and 6NC
    + 5N + 5 = 110). Backward: the two scalings (2) and the mean's division (1) on scalars; nll
    ``-(g / N)`` once (2), copied into the picked entries (it counted 2N, the scalar's division and
    negation per target); the smooth term's negation N (its sum's gradient is a broadcast); the two
    gradients of log p added, NC; log-softmax backward 4NC - N (its sum from the first value, s35).
    5NC + 5 = 80 (it was 5NC + N + 5 = 83, and 5NC + 3N + 3 = 87).
    """
    n, c = 3, 5
    x = t(n, c, grad=True)
    r = count(lambda: F.cross_entropy(x, torch.tensor([0, 1, 4]), label_smoothing=0.1).backward())
    assert r.forward_total == 7 * n * c + 2 * n + 5 + 14 + 8 == 138
    assert r.backward_total == 5 * n * c + 5 == 80


# -- torch.compile, reduced precision --------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using `torch.compile:UserWarning")
def test_a_compiled_module_is_counted_as_its_eager_code():
    """Inside the counter torch does not compile (a dispatch mode is active): a module
    compiled before, or first called inside, runs eagerly and is counted op by op."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = t(5, 3)
    eager = count(lambda: model(x))
    compiled = torch.compile(model, backend="aot_eager")
    try:
        compiled(x)  # compiled outside the counter
        r = count(lambda: compiled(x))
        assert r.total == eager.total == 5 * (2 * 3 * 4 + 4 + 4 + 2 * 4 * 2 + 2)
        assert r.by_op == eager.by_op and not r.unknown_ops
        # the compiled wrapper is the model: its modules keep their names ("0", not
        # "_orig_mod.0")
        assert gp.count_fpo(compiled, x).by_module == gp.count_fpo(model, x).by_module
    finally:
        torch._dynamo.reset()  # leave no compiled code behind for other tests


def test_bfloat16_and_autocast_count_as_float32():
    """FPO count operations, not bits: a bfloat16 model or autocast counts as float32."""
    model = torch.nn.Linear(3, 4)
    x = t(5, 3)
    fp32 = count(lambda: model(x)).total

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)

    assert count(autocast).total == fp32 == 5 * (2 * 3 * 4 + 4)
    assert count(lambda: model.bfloat16()(x.bfloat16())).total == fp32


_FUSED_ATTENTION = [  # (forward, backward, layout of q/k/v: "bhsd" or "bshd")
    (
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_flash_attention_backward",
        "bhsd",
    ),
    (
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_efficient_attention_backward",
        "bhsd",
    ),
    (
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_cudnn_attention_backward",
        "bhsd",
    ),
    ("_flash_attention_forward", "_flash_attention_backward", "bshd"),
    ("_efficient_attention_forward", "_efficient_attention_backward", "bshd"),
]


def _schema_call(name, shapes, dropout_p):
    """Call the rule of ``aten.<name>`` with positional arguments laid out as its schema is.

    Tensors named in ``shapes`` get those shapes, ``dropout_p`` the given probability, other
    arguments their default (None, False, 0). The CUDA-only kernels cannot run here; this
    checks the rule reads each argument where torch passes it.
    """
    from greenprint.fpo.rules import RULES

    schema = getattr(torch.ops.aten, name).default._schema
    args = []
    for arg in schema.arguments:
        if arg.kwarg_only:
            break
        if arg.name in shapes:
            args.append(shapes[arg.name])
        elif arg.name == "dropout_p":
            args.append(dropout_p)
        elif arg.has_default_value():
            args.append(arg.default_value)
        else:
            args.append(None if "Tensor" in str(arg.type) else 0)
    value = RULES[f"aten.{name}"].fn(*args, out_shape=None)
    return sum(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(("forward", "backward", "layout"), _FUSED_ATTENTION)
def test_fused_attention_counts_dropout_forward_and_backward(forward, backward, layout):
    """Dropout on the S = b h sq sk probabilities: 2S forward (mask multiply, rescale) and 2S
    backward (the gradient through the same two multiplies), as ``native_dropout`` and its
    backward count; the fused CUDA backward overloads read no ``dropout_p`` before s9 and
    counted none. b, h, sq, sk, d = 2, 3, 5, 7, 4.
    """
    b, h, sq, sk, d = 2, 3, 5, 7, 4
    if layout == "bhsd":
        q, kv = (b, h, sq, d), (b, h, sk, d)
    else:
        q, kv = (b, sq, h, d), (b, sk, h, d)
    names = ("query", "key", "value", "grad_out", "grad_out_", "out")
    shapes = dict(zip(names, (q, kv, kv, q, q, q), strict=True))
    s = b * h * sq * sk
    for name in (forward, backward):
        with_dropout = _schema_call(name, shapes, 0.5)
        assert with_dropout - _schema_call(name, shapes, 0.0) == 2 * s, name


# -- sorting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "length"),
    [
        (lambda x: torch.sort(x), 100),
        (lambda x: torch.sort(x, dim=1), 3),
        (lambda x: torch.sort(x, dim=0), 2),
        (lambda x: torch.sort(x, dim=1, descending=True), 3),
        (lambda x: torch.sort(x, dim=0, descending=True), 2),
        (lambda x: torch.sort(x, dim=1, stable=True), 3),
        (lambda x: torch.argsort(x, dim=1), 3),
        (lambda x: torch.msort(x), 2),
    ],
)
def test_sort_counts_compares_along_the_sorted_dimension(call, length):
    """A comparison sort of n values: ``n ceil(log2 n)`` compares; every slice along ``dim``.

    (2, 3, 100): N = 600; along the last dim 600 * 7, along dim 1 (n = 3) 600 * 2, along dim 0
    (n = 2) 600 * 1. Before s9 the rule read ``dim`` from the wrong argument: a given dim was
    ignored (the last one sorted instead: 4,200 for every call above but the descending ones,
    which read ``descending=True`` as dim 1).
    """
    x = t(2, 3, 100)
    r = count(lambda: call(x))
    assert r.total == 600 * max(1, math.ceil(math.log2(length)))


@_FAST
@given(
    steps=st.integers(1, 4),
    batch=st.integers(1, 3),
    inp=st.integers(1, 4),
    hidden=st.integers(1, 4),
    bias=st.booleans(),
)
def test_fused_lstm_backward_by_hand(steps, batch, inp, hidden, bias):
    """oneDNN's fused LSTM layer backward (CPU), input requiring grad, zero initial state.

    Per step t, with the 4H gate pre-activations a_t: dx_t = da_t W_ih and dW_ih += da_t^T x_t
    (2 * 4H * B * I each); dW_hh += da_t^T h_{t-1} (2 * 4H * B * H, every step) and dh_{t-1} =
    da_t W_hh (the same, for t >= 2); the weight gradients summed over the T steps ((T - 1)
    adds per element of W_ih and W_hh). Per hidden unit and step, 23: dh = g_t + the next
    step's (1); do = dh tanh(c), d tanh(c) = dh o (2); dc = dc_next + d tanh(c) (1 - tanh^2
    c) (4); di, dg, df, dc_prev (4); three sigmoid backwards and a tanh backward (12); less
    dc_prev at t = 1 (c_0 needs no gradient) and the adds for h_T's and c_T's own gradients
    when unused (the output alone is used here: both). Biases: each sums da_t over the batch
    (4H * B per step) and over the steps ((T - 1) * 4H adds).
    """
    lstm = torch.nn.LSTM(inp, hidden, bias=bias)
    x = t(steps, batch, inp, grad=True)
    r = count(lambda: lstm(x)[0].backward(torch.ones(steps, batch, hidden)))
    g4 = 4 * hidden
    products = 4 * g4 * batch * inp * steps + (4 * steps - 2) * g4 * batch * hidden
    sums = (steps - 1) * g4 * (inp + hidden)
    units = 23 * steps * batch * hidden - batch * hidden - 2 * batch * hidden
    biases = 2 * (g4 * batch * steps + (steps - 1) * g4) if bias else 0
    assert r.by_op["aten.mkldnn_rnn_layer_backward"] == products + sums + units + biases
    # per module: the layer's forward and backward are charged to it (named by class here)
    assert (
        r.by_module_phase["LSTM"]["backward"]
        == r.backward_total
        == r.by_op["aten.mkldnn_rnn_layer_backward"]
    )
    assert r.by_module["LSTM"] == r.total


def test_index_add_with_alpha_scales_each_source_element():
    """``self[index[i]] += alpha * source[i]``: one add per source element, + one multiply
    when ``alpha`` is not 1 (as ``add`` with alpha). Source (4, 3): 12, with alpha 24."""
    x, src, idx = t(5, 3), t(4, 3), torch.tensor([0, 2, 2, 4])
    assert count(lambda: x.index_add(0, idx, src)).total == 12
    assert count(lambda: x.index_add(0, idx, src, alpha=2.0)).total == 24


def test_pooling_and_cumsum_backward_by_hand():
    """(1, 1, 5, 5), 3 x 3 windows, stride 2, padding 1, ceil_mode: 3 x 3 = 9 outputs.

    ATen's CPU kernels visit only the window's taps inside the input (padded zeros are never
    read, unlike a convolution's im2col): along each dimension the windows start at -1, 1, 3
    and hold 2, 3 and 2 input rows (7), so the 9 windows hold 7 * 7 = 49 input elements. max:
    49 compares (it was 81, the padding counted as convolutions count padded taps); backward,
    each output's gradient added to its arg-max: 9. average: 49 adds, a division per output
    and the mean added into the output the contiguous kernel zeroed (``output_data[i] += sum /
    divide_factor``), 67 (it was 90, then 58 until s36); backward, the division and the adds
    spread back: 58. cumsum over 5
    of a (3, 5): 15 adds (n values, n adds); its backward is a cumsum of the flipped gradient:
    15.
    """
    x = t(1, 1, 5, 5, grad=True)
    kwargs = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    r = count(lambda: F.max_pool2d(x, **kwargs).backward(torch.ones(1, 1, 3, 3)))
    assert (r.forward_total, r.backward_total) == (49, 9)
    x = t(1, 1, 5, 5, grad=True)  # a fresh x: adding into an existing x.grad is 25 more
    r = count(lambda: F.avg_pool2d(x, **kwargs).backward(torch.ones(1, 1, 3, 3)))
    assert (r.forward_total, r.backward_total) == (67, 58)
    y = t(3, 5, grad=True)
    r = count(lambda: y.cumsum(1).backward(torch.ones(3, 5)))
    assert (r.forward_total, r.backward_total) == (15, 15)


def test_arithmetic_outside_torch_ops_is_invisible_as_docs_fpo_says():
    """What never reaches PyTorch's dispatcher (NumPy here; a C++/CUDA extension called
    directly, a hand-launched Triton kernel) is neither counted nor listed: docs/fpo.md's
    Limits say so. Only the torch op around it (the add) is seen."""
    import numpy as np

    a, b = np.ones((3, 4)), np.ones((4, 5))
    r = count(lambda: torch.from_numpy(a @ b) + 1.0)
    assert r.total == 15 and not r.unknown_ops


def test_cudnn_rnn_on_a_packed_batch_counts_every_token():
    """cuDNN's fused RNN on packed sequences (lengths 5 and 2: batch_sizes [2, 2, 1, 1, 1]).

    The input is the 7 packed tokens; each costs ``_recurrent_step`` forward (as the CPU's
    op-by-op packed LSTM counts: 2,408; 2,156 before s35 counted a sigmoid 1). Before s9 the rule
    took ``7 // 2 = 3`` steps of the full batch: 6 tokens, 1,848. Backward, by hand as the LSTM
    backward above with T * B replaced by the 7 tokens, B by the 2 sequences (each one's first step
    has no dh_{t-1} product and no dc_prev) and T by the 5 steps the weight gradients are summed
    over: 4,300. The CUDA kernel cannot run here: the rule is called as the schema lays the
    arguments out.
    """
    from greenprint.fpo.rules import RULES

    i, h, g4 = 3, 4, 16
    weights = [(g4, i), (g4, h), (g4,), (g4,)]
    common = {"input": (7, i), "weight": weights, "weight_stride0": 4, "hx": (1, 2, h)}
    common |= {"cx": (1, 2, h), "mode": 2, "hidden_size": h, "num_layers": 1}
    common |= {"batch_sizes": [2, 2, 1, 1, 1], "output": (7, h), "grad_output": (7, h)}

    def call(name):
        schema = getattr(torch.ops.aten, name).default._schema
        args = [common.get(a.name) for a in schema.arguments if not a.kwarg_only]
        return RULES[f"aten.{name}"].fn(*args, out_shape=None)

    assert call("_cudnn_rnn") == 7 * _recurrent_step(torch.nn.LSTM, i, h, True) == 2408
    tokens, sequences, steps = 7, 2, 5
    backward = (
        4 * g4 * tokens * i  # dx and dW_ih, every token
        + 2 * g4 * h * (tokens + tokens - sequences)  # dW_hh every token, dh_{t-1} past the first
        + (steps - 1) * g4 * (i + h)  # the weight gradients summed over the steps
        + 23 * tokens * h
        - sequences * h
        - 2 * sequences * h  # elementwise (h_n, c_n unused)
        + 2 * (g4 * tokens + (steps - 1) * g4)  # the two biases
    )
    assert call("_cudnn_rnn_backward") == backward == 4300


# -- binary cross-entropy, unpooling ---------------------------------------------------------


def test_binary_cross_entropy_by_torchs_formula():
    """torch computes ``(t - 1) * max(log(1 - x), -100) - t * max(log(x), -100)``: per element
    t - 1, 1 - x, two logs, two clamps, two products, the subtraction: 9 (before s9: 7, which
    also missed the 1 - x of the textbook form), + the CPU kernel's 4 range checks of the
    input and the target (13 since s36, ported in test_fpo_bce_s36); + 1 with weights; mean:
    N adds + 1.
    Backward ``g * (x - t) / max((1 - x) x, eps)``: subtract, 1 - x, multiply, clamp, divide,
    times g: 6 (before s9: 5); + 1 with weights; + 1 for the mean's division.
    With logits: ``(1 - t) x - log_sigmoid(x)``: log-sigmoid 6 (as its own rule), 1 - t,
    multiply, subtract: 9 (before s9: 7). (3, 4): N = 12.
    """
    x, target, w = torch.rand(3, 4, requires_grad=True), torch.rand(3, 4), torch.rand(3, 4)
    r = count(lambda: F.binary_cross_entropy(x, target).backward())
    assert (r.forward_total, r.backward_total) == (13 * 12 + 12 + 1, 6 * 12 + 12)
    x.grad = None
    r = count(lambda: F.binary_cross_entropy(x, target, weight=w, reduction="sum").backward())
    assert (r.forward_total, r.backward_total) == (14 * 12 + 12, 7 * 12)
    r = count(lambda: F.binary_cross_entropy_with_logits(x.detach(), target))
    assert r.total == 9 * 12 + 12 + 1


def test_max_unpooling_moves_values_and_computes_nothing():
    """``max_unpool2d`` writes each value at its index into zeros (a scatter without
    accumulation, 0 by rule like index_put); before s9 it counted one add per value."""
    pooled, idx = F.max_pool2d(t(1, 1, 4, 4), 2, return_indices=True)
    r = count(lambda: F.max_unpool2d(pooled, idx, 2))
    assert r.total == 0 and "aten.max_unpool2d" in r.zero_ops


# -- complex tensors: counted as real, and said so ------------------------------------------


def test_ops_on_complex_tensors_are_listed_as_counted_as_real():
    """A complex multiply is 6 real FPO (4 MUL, 2 ADD), a complex multiply-add 8. The common
    arithmetic on complex tensors (products, multiply, add, divide, sums) is counted in real
    FPO (s20; before, 1 per complex element and ``2mkn`` per product, listed as too low), the
    other ops as if real (docs/fpo.md, Limits). The result says which ops that was, in
    ``complex_ops`` (op -> calls), the table and the JSON, as it says which ops have no rule;
    the FFT rules count real FPO on complex data and are not listed, and neither are real ops.
    Before s9 nothing in the result said so.
    """
    a = torch.randn(2, 3, dtype=torch.complex64)
    b = torch.randn(3, 4, dtype=torch.complex64)
    r = count(lambda: (a @ b, a * a, a.sin(), torch.fft.fft(torch.randn(8)), torch.randn(3) + 1.0))
    assert r.complex_ops == {"aten.sin": 1}
    assert r.by_op["aten.mm"] == 8 * 2 * 3 * 4  # 8 real FPO per complex multiply-add
    assert r.matmul_total == 2 * 2 * 3 * 4  # FlopCounterMode's 2mkn
    assert r.by_op["aten.mul"] == 6 * 6 and r.by_op["aten.sin"] == 6  # sin: as if real
    assert "COMPLEX" in r.table() and "aten.sin x1" in r.table()
    assert r.to_dict()["complex_ops"] == {"aten.sin": 1}
    assert r.times(3).complex_ops == {"aten.sin": 3}
    assert count(lambda: torch.randn(2, 3) @ torch.randn(3, 4)).complex_ops == {}
    with gp.FPOCounter() as c:
        a @ b, a.sin()
    assert c.complex_ops == {"aten.sin": 1}


def test_hypot_counts_its_four_ops():
    """``sqrt(a^2 + b^2)``: two squares, an add, a square root: 4 per element (before s9: 3,
    though its rule's docstring listed the four)."""
    a, b = t(3, 4), t(3, 4)
    assert count(lambda: torch.hypot(a, b)).total == 4 * 12
