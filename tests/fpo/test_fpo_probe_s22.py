"""Activations, pooling, losses, linear algebra and recurrent layers nobody had checked (s22).

Each expected count is derived by hand beside it from the op's maths and the kernel torch runs
(ATen's CPU kernel, ``aten/src/ATen/native/cpu/Activation.cpp``, ``AvgPoolKernel.cpp``,
``Loss.cpp``), under docs/fpo.md's conventions: one FPO per elementwise arithmetic op, compare
or elementary function (``sigmoid``, ``tanh``, ``exp``, ``log1p`` are 1 each), reducing n values
costs n adds, ``2mkn`` per product. A vectorised kernel that computes both sides of a branch
and blends them is counted with both sides (the blend moves data). Counted as a user counts:
``gp.count_fpo(model, inputs)`` (forward and backward, seeded with ones) on CPU and on meta.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


def _op(result, op: str, phase: str) -> int:
    return result.by_op_phase[op][phase]


def _both(model, *shape: int):
    """The count on a CPU input and on a meta input of ``shape`` (no op without a rule)."""
    torch.manual_seed(0)
    cpu = gp.count_fpo(model, torch.randn(*shape, requires_grad=True))
    meta = gp.count_fpo(model.to("meta"), torch.randn(*shape, device="meta", requires_grad=True))
    for result in (cpu, meta):
        assert result.unknown_ops == {}
    return cpu, meta


# -- activations: the backward kernels --------------------------------------------------------

N = 2 * 3 * 4  # elements of the activations' input


@pytest.mark.parametrize(
    ("module", "op", "forward", "backward"),
    [
        # x < 0 ? expm1(x s_in) alpha s : x s. The vectorised kernel computes both sides for a
        # vector with a lane below 0 (each of the 3 vectors of 8 here; meta: every vector):
        # compare, x * s_in, expm1, * (alpha s), x * s: 5 (6 until s36, exp - 1; a vector of
        # values >= 0 is 2, test_fpo_elu_s36). Backward (is_result false, the input saved):
        # g * s_in * (alpha s) * exp(x * s_in) (three multiplies, the product x * s_in and
        # exp: 5), g * s (1) and the compare (1): 7. It was 4.
        (nn.ELU(), "elu", 5, 7),
        (nn.SELU(), "elu", 5, 7),  # ELU with scale 1.0507 and alpha 1.6733: the same kernel
        (nn.CELU(0.5), "celu", 5, 7),  # ELU with input scale 1 / alpha (+ 1); elu_backward
        # (x * beta) > threshold ? x : log1p(exp(x * beta)) / beta, the product x * beta
        # written twice: 6 (s34; it was 5). Backward, from the input: z = exp(x * beta) (2),
        # g * z / (z + 1) (3), x * beta > threshold (2): 7 (s34; it was 6, and 4 before s22).
        (nn.Softplus(), "softplus", 6, 7),
        (nn.Softplus(beta=2.0, threshold=3.0), "softplus", 6, 7),
        # x * min(max(x + 3, 0), 6) / 6: 5. Backward x < -3 ? 0 : x <= 3 ? g (x / 3 + 1/2) : g:
        # two compares, divide, add, multiply: 5. It was 6.
        (nn.Hardswish(), "hardswish", 5, 5),
        # min(x, 0) - log1p(exp(-|x|)): min, abs, neg, exp, log1p, subtract: 6 (the buffer
        # exp(-|x|) is kept). Backward (m - s * (b / (1 + b))) * g, m and s picked by x < 0:
        # compare, add, divide, multiply, subtract, multiply: 6. It was 5.
        (nn.LogSigmoid(), "log_sigmoid_forward", 6, 6),
        # gelu, tanh form: the vectorised kernel's backward is 20 per element (see
        # gelu_backward_rule's docstring: x^2, x^3 = x * x * x, kappa x^3, + x, * beta, tanh;
        # x / 2, 1 + t, / 2; 1 - t^2; beta (1 + 3 kappa x^2) with the constants' product in
        # the loop; two products; the sum and * dy). It was 16, then 18 (the scalar form with
        # 3 kappa folded) until s35.
        (nn.GELU("tanh"), "gelu", 9, 20),
        (nn.GELU(), "gelu", 5, 11),  # erf form: cdf 4, pdf 4, dy (cdf + x pdf) 3: right
        # (x > -3 && x < 3) ? g / 6 : 0 as g * (1/6): two compares and a multiply: right
        (nn.Hardsigmoid(), "hardsigmoid", 4, 3),
        # the vectorised kernel (x > l) & (x - l) | (x < -l) & (x + l): two compares and both
        # shifts, 4 (it was 3); backward (x < -l) | (x > l) & g: two compares
        (nn.Softshrink(0.5), "softshrink", 4, 2),
        (nn.Hardshrink(0.5), "hardshrink", 2, 2),  # two compares each way: right
    ],
)
def test_activation_backward_kernels_counted_from_aten(module, op, forward, backward):
    cpu, meta = _both(module, 2, 3, 4)
    once = 1 if op == "celu" else 0  # celu's 1 / alpha
    for result in (cpu, meta):
        assert result.forward_total == forward * N + once
        assert result.backward_total == backward * N


def test_mish_forward_is_the_kernels_four_ops():
    """ATen's ``mish_kernel`` is ``x * tanh(log1p(exp(x)))``: exp, log1p, tanh, multiply: 4
    per element (it was 5, a ``+ 1`` that ``log1p`` holds). Its backward runs as autograd's
    decomposition, counted op by op: softplus 6 (5 before s34), tanh 1, sigmoid 4 (ATen's
    kernel ``(1 + exp(-x)).reciprocal()``; 1 before s35), four multiplies, a subtract (``1 -
    t^2``) and an add: 17 per element (14 before s35)."""
    cpu, meta = _both(nn.Mish(), 2, 3, 4)
    for result in (cpu, meta):
        assert _op(result, "aten.mish", "forward") == 4 * N
        assert result.backward_total == 17 * N


def test_in_place_elu_backward_reads_its_output():
    """``nn.ELU(inplace=True)`` saves its output ``y`` (``is_result``): the kernel's negative
    side is ``g * s_in * (y + alpha s)`` (3), the positive ``g * s`` (1), the compare (1): 5 per
    element, where the out-of-place ELU's is 7."""
    x = torch.randn(2, 3, 4, requires_grad=True)
    with gp.FPOCounter() as counter:
        nn.ELU(inplace=True)(x * 1.0).sum().backward()
    result = counter.result
    assert _op(result, "aten.elu_backward", "backward") == 5 * N


def test_rrelu_backward_in_training_multiplies_by_the_drawn_slopes():
    """RReLU in training draws a slope per negative element (random numbers: 0) and saves them
    as ``noise`` (1 where ``x > 0``): forward compare and multiply, 2 per element; backward
    ATen's ``rrelu_with_noise_backward`` is ``noise * grad``: 1 per element (it was 2). In eval
    it is leaky ReLU with the mean slope, backward compare and multiply: 2."""
    train, meta = _both(nn.RReLU().train(), 2, 3, 4)
    for result in (train, meta):
        assert (result.forward_total, result.backward_total) == (2 * N, 1 * N)
    evaluated, _ = _both(nn.RReLU().eval(), 2, 3, 4)
    assert (evaluated.forward_total, evaluated.backward_total) == (2 * N, 2 * N)


def test_prelu_per_channel_and_glu_counted_right():
    """PReLU(3) on (2, 3, 4): forward ``x > 0 ? x : w x`` 2 per element; backward ATen's
    ``prelu_backward_kernel`` computes both gradients per element (mask; ``w g``; ``x g``:
    4 with the two selects' compare), then the weight's gradient is summed over the 8
    elements of each channel (24 adds). GLU over the last dimension of (2, 3, 4): 12 outputs,
    ATen's ``glu_kernel`` ``a * (1 / (1 + exp(-b)))`` 5 each; backward the sigmoid kernel (4),
    ``s * g`` (1) and ``(1 - s) s a g`` (subtract, three multiplies: 4): 9 per output (2 and 6
    before s35 counted the sigmoid as 1)."""
    prelu, _ = _both(nn.PReLU(3), 2, 3, 4)
    assert (prelu.forward_total, prelu.backward_total) == (2 * N, 4 * N + N)
    glu, _ = _both(nn.GLU(-1), 2, 3, 4)
    assert (glu.forward_total, glu.backward_total) == (5 * 12, 9 * 12)


# -- pooling ----------------------------------------------------------------------------------


def _avg_pool_by_loop(in_sizes, kernel, stride, padding, ceil_mode):
    """Counts the arithmetic of ATen's ``cpu_avg_pool`` by running its loops: per output the
    window clipped to the input (``max(o s - p, 0)`` to ``min(o s - p + k, in)``), one add per
    element summed and one division; a window entirely in the padding is skipped. Returns
    ``(adds and divisions, non-empty windows)``: the forward also adds each mean into the
    output it zeroed (``output_data[i] += sum / divide_factor``, s36), 1 per window."""
    out_sizes = []
    for i, k, s, p in zip(in_sizes, kernel, stride, padding, strict=True):
        if ceil_mode:
            o = -(-(i + 2 * p - k) // s) + 1
            if (o - 1) * s >= i + p:  # the last window must start inside the input or padding
                o -= 1
        else:
            o = (i + 2 * p - k) // s + 1
        out_sizes.append(o)
    fpo = windows = 0
    for index in range(math.prod(out_sizes)):
        rest, window = index, []
        for o in reversed(out_sizes):
            window.append(rest % o)
            rest //= o
        window.reverse()
        lengths = [
            max(0, min(j * s - p + k, i) - max(j * s - p, 0))
            for j, i, k, s, p in zip(window, in_sizes, kernel, stride, padding, strict=True)
        ]
        if all(lengths):
            fpo += math.prod(lengths) + 1
            windows += 1
    return fpo, windows


@pytest.mark.parametrize(
    ("dims", "in_sizes", "kernel", "stride", "padding", "ceil_mode", "include_pad"),
    [
        (2, (6, 6), (3, 3), (2, 2), (1, 1), True, False),
        (2, (6, 6), (3, 3), (2, 2), (1, 1), True, True),  # the same adds: only the divisor differs
        (2, (7, 5), (3, 2), (1, 2), (1, 0), False, True),  # Inception's branch pool shape
        (1, (7,), (3,), (2,), (1,), False, False),
        (3, (5, 5, 5), (2, 2, 2), (2, 2, 2), (0, 0, 0), True, True),
    ],
)
def test_average_pooling_adds_only_the_window_inside_the_input(
    dims, in_sizes, kernel, stride, padding, ceil_mode, include_pad
):
    """ATen's CPU average pooling sums the elements of each window that lie in the input,
    never the padded zeros (``count_include_pad`` only picks the divisor), and skips a window
    entirely in the padding that ``ceil_mode`` adds; the backward divides each gradient element
    once and adds it into the same elements. So (6, 6) with a 3 x 3 window, stride 2, padding
    1 and ceil_mode: 4 x 4 outputs whose windows along each dimension hold 2, 3, 3 and 1 input
    rows (9): 81 adds and 16 divisions per plane, 97 (it was 16 * (9 + 1) = 160, the full
    window everywhere), + the 16 adds into the zeroed output in the forward (113; s36). The loop
    above counts it, here for two planes, forward and backward."""
    pool = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[dims](
        kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=include_pad
    )
    fpo, windows = _avg_pool_by_loop(in_sizes, kernel, stride, padding, ceil_mode)
    cpu, meta = _both(pool, 1, 2, *in_sizes)
    for result in (cpu, meta):
        assert (result.forward_total, result.backward_total) == (2 * (fpo + windows), 2 * fpo)
    if in_sizes == (6, 6):
        assert (fpo, windows) == (97, 16)


@pytest.mark.parametrize(
    ("in_sizes", "kernel", "stride", "padding", "dilation", "ceil_mode"),
    [
        ((112, 112), (3, 3), (2, 2), (1, 1), (1, 1), False),  # ResNet's stem pool
        ((5, 5), (3, 3), (2, 2), (1, 1), (1, 1), True),
        ((9, 7), (3, 2), (2, 1), (1, 1), (2, 3), False),  # dilated taps, some in the padding
    ],
)
def test_max_pooling_compares_only_the_taps_inside_the_input(
    in_sizes, kernel, stride, padding, dilation, ceil_mode
):
    """ATen's ``cpu_max_pool`` starts each window at its first tap inside the input (``while
    (ih0 < 0) ih0 += dilation``), stops at the input's edge, and compares only those taps, one
    compare each (``val > maxval``). ResNet's stem pool, 3 x 3, stride 2, padding 1 on
    112 x 112: along each dimension the first window holds 2 rows and the other 55 hold 3, 167:
    ``167^2 = 27,889`` compares per plane, where the full window counts ``56^2 * 9 = 28,224``
    (it counted that). The loop below counts the taps; the backward adds each gradient element
    at its arg-max."""
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    x = torch.randn(1, 2, *in_sizes, requires_grad=True)
    out = pool(x)
    taps = 1
    for i, o, k, s, p, d in zip(
        in_sizes, out.shape[-2:], kernel, stride, padding, dilation, strict=True
    ):
        taps *= sum(1 for j in range(o) for m in range(k) if 0 <= j * s - p + m * d < i)
    cpu, meta = _both(pool, 1, 2, *in_sizes)
    for result in (cpu, meta):
        assert (result.forward_total, result.backward_total) == (2 * taps, out.numel())
    if in_sizes == (112, 112):
        assert taps == 167 * 167


def test_fractional_max_pooling_counts_the_windows_starts_it_computes():
    """``FractionalMaxPool2d(2, output_size=(3, 4))`` on (1, 2, 7, 9): 12 outputs per plane,
    4 compares each (96 for 2 planes). ATen's ``generate_intervals`` also places each plane's
    windows from its random sample ``u``: per dimension ``alpha = (in - k) / (o - 1)`` (1) and
    ``int((i + u) alpha) - int(u alpha)`` for the first ``o - 1`` starts (3 each): rows
    1 + 3 * 2 = 7, columns 1 + 3 * 3 = 10, 17 per plane, 34 (it was not counted): 130. The
    backward adds each of the 24 gradient elements at its arg-max. The same on meta."""
    cpu, meta = _both(nn.FractionalMaxPool2d(2, output_size=(3, 4)), 1, 2, 7, 9)
    for result in (cpu, meta):
        assert (result.forward_total, result.backward_total) == (96 + 34, 24)


def test_adaptive_pooling_over_overlapping_windows():
    """``AdaptiveAvgPool2d((3, 2))`` on (2, 3, 7, 5): windows along H ``[0, 3), [2, 5),
    [4, 7)`` (3 each, overlapping), along W ``[0, 3), [2, 5)``: 9 elements per output, 6
    outputs per plane, 6 planes: 324 adds; ATen's kernel divides each sum by kh then by kw
    (``sum / kh / kw``), 2 divisions for each of the 36 outputs (it counted 1): 396; the
    backward (``g / kh / kw`` added into each window element) alike. Unbatched (3, 7, 5): half,
    198 each way (its backward counted 144, reading the first pooled dimension as a batch).
    ``AdaptiveAvgPool3d((2, 3, 2))`` on (1, 2, 5, 7, 3): windows 3 + 3 along D, 3 + 3 + 3
    along H, 2 + 2 along W: 6 * 9 * 4 = 216 per plane, 432, + 3 divisions for each of the 24
    outputs: 504, unbatched the same. ``AdaptiveMaxPool2d((3, 2))`` compares the same 324
    elements; its backward adds each of the 36 gradient elements at its arg-max."""
    avg, _ = _both(nn.AdaptiveAvgPool2d((3, 2)), 2, 3, 7, 5)
    assert (avg.forward_total, avg.backward_total) == (396, 396)
    unbatched, _ = _both(nn.AdaptiveAvgPool2d((3, 2)), 3, 7, 5)
    assert (unbatched.forward_total, unbatched.backward_total) == (198, 198)
    for shape in ((1, 2, 5, 7, 3), (2, 5, 7, 3)):
        avg3, _ = _both(nn.AdaptiveAvgPool3d((2, 3, 2)), *shape)
        assert (avg3.forward_total, avg3.backward_total) == (504, 504)
    mx, _ = _both(nn.AdaptiveMaxPool2d((3, 2)), 2, 3, 7, 5)
    assert (mx.forward_total, mx.backward_total) == (324, 36)


def test_interpolation_backward_scatters_into_every_tap():
    """ATen's CPU backward of a (non-antialiased) interpolation adds, for each gradient element
    ``g``, ``w_1 * ... * w_d * g`` into each tap it read (``*input_indexr(c, ih0, iw0) +=
    h0lambda * w0lambda * grad_output_value`` and three more): ``d`` multiplies and an add per
    tap. (1, 2, 3, 4) -> (5, 7) bilinear: 70 gradient elements, 4 taps of 3: 840 (it counted
    the forward's 630, 9 each); linear (1, 2, 3) -> 7: 14 x 2 x 2 = 56; trilinear (1, 2, 2, 3,
    4) -> (3, 5, 7): 210 x 8 x 4 = 6,720; bicubic (1, 2, 3, 4) -> (5, 7): 70 x 16 x 3 = 3,360.
    Antialiased bilinear (1, 2, 6, 4) -> (3, 2): ``wx[x] * wy[y] * g`` into each of the ``kh x
    kw`` window's inputs, 3 each; the windows (scale 2, support 2) hold 3, 4, 3 rows and 3, 3
    columns (10 and 6): 2 planes x 3 x 10 x 6 = 360 (it counted the forward's 320). The
    forward (s24), ATen's separable passes of ``2k - 1`` per output: along W 2 planes x 6 rows
    x (5 + 5) = 120, along H 2 x 2 columns x (5 + 7 + 5) = 68: 188.

    Plus the weights (s25), as the kernels compute them. Scales (``in / out``, or ``(in - 1) /
    (out - 1)`` with align_corners): 1 per dimension. A linear index's source and lambdas
    (``compute_source_index_and_lambda``): 9 (``scale * (i + 0.5) - 0.5``, its ``< 0``
    compare, floor, ``x - index`` clamped by a max and a min, ``1 - lambda``), 6 with
    align_corners (``scale * i``). Forwards: the linear and trilinear generic kernel computes
    them once per output index of each dimension, then 3 and 21 per element; bilinear on a
    (5, 7) output (5 + 7 <= 128) runs ``upsample_linear_channels_last``: per output row the
    row's lambdas, per output pixel the column's and the 4 products ``h_i * w_j``, then 7 per
    element (not 9). Bicubic: per output index (5 + 7) the source index (3), floor, fraction
    and clamp (4) and the cubic coefficients (35), then 35 per element. Backwards
    (``cpu_upsample_linear_backward``): per plane and output index of each dimension at every
    index of the loops around it (bilinear: per plane and row the row's, per gradient element
    the column's). The antialiased weights per pass are worked out below."""
    cases = [
        # bilinear: 2 + 5 (9 + 7 (9 + 4)) + 7 x 70; 2 + 2 x 5 x 9 + 70 x 9 + 840
        ((1, 2, 3, 4), {"size": (5, 7), "mode": "bilinear"}, 992, 1_562),
        # with align_corners: 2 + 5 (6 + 7 (6 + 4)) + 490; 2 + 2 x 5 x 6 + 70 x 6 + 840
        ((1, 2, 3, 4), {"size": (5, 7), "mode": "bilinear", "align_corners": True}, 872, 1_322),
        # linear: 1 + 7 x 9 + 42; 1 + 2 x 7 x 9 + 56
        ((1, 2, 3), {"size": 7, "mode": "linear"}, 106, 183),
        # trilinear: 3 + (3 + 5 + 7) x 9 + 4,410; 3 + (2 x 3 + 2 x 15 + 210) x 9 + 6,720
        ((1, 2, 2, 3, 4), {"size": (3, 5, 7), "mode": "trilinear"}, 4_548, 8_937),
        # antialiased: forward 188 + 204, backward 360 + 343 (below)
        ((1, 2, 6, 4), {"size": (3, 2), "mode": "bilinear", "antialias": True}, 392, 703),
    ]
    derived = [
        (2 + 5 * (9 + 7 * (9 + 4)) + 7 * 70, 2 + 2 * 5 * 9 + 70 * 9 + 840),
        (2 + 5 * (6 + 7 * (6 + 4)) + 7 * 70, 2 + 2 * 5 * 6 + 70 * 6 + 840),
        (1 + 7 * 9 + 42, 1 + 2 * 7 * 9 + 56),
        (3 + (3 + 5 + 7) * 9 + 4_410, 3 + (2 * 3 + 2 * 15 + 210) * 9 + 6_720),
    ]
    # Antialiased (``_compute_indices_min_size_weights_aa``), each dimension scale 2: its scale
    # (1), the support's ``scale >= 1`` compare and ``(2 * 0.5) * 2`` (3), ``ceil`` (1): 5. Per
    # output index with a window of k taps: the centre (2), invscale's compare and ``1 / 2``
    # (2), the window's ends (4); per tap the filter's argument (3), the triangle ``|x|``,
    # ``x < 1``, ``1 - x`` (3: every tap here has |x| <= 0.75) and ``total_w += w`` (1);
    # ``total_w != 0`` (1), per tap ``w /= total_w`` and the running max (2): ``9 + 9k``. The
    # forward adds ``wt_max`` across indices (1) and computes each pass's once: W's windows 3,
    # 3, H's 3, 4, 3: ``5 + 37 + 37`` + ``5 + 37 + 46 + 37`` = 204. The backward computes both
    # setups once, a row's weights per output row and a column's per output pixel (3 rows):
    # ``10 + (36 + 45 + 36) + 3 x (36 + 36)`` = 343.
    aa_forward = (5 + 2 * (10 + 9 * 3)) + (5 + 2 * (10 + 9 * 3) + (10 + 9 * 4))
    aa_backward = 10 + (2 * (9 + 9 * 3) + (9 + 9 * 4)) + 3 * 2 * (9 + 9 * 3)
    derived.append((188 + aa_forward, 360 + aa_backward))
    assert [(f, b) for _, _, f, b in cases] == derived
    for shape, kwargs, forward, backward in cases:
        x = torch.randn(*shape, requires_grad=True)
        result = gp.count_fpo(lambda a, kw=kwargs: F.interpolate(a, **kw), x)
        assert result.unknown_ops == {}
        assert (result.forward_total, result.backward_total) == (forward, backward), kwargs


def test_bicubic_interpolation_forward_counts_its_weights_once_per_index():
    """Bicubic (1, 2, 3, 4) -> (5, 7) forward (``HelperInterpCubic::compute_indices_weights``
    then the generic kernel): the scales ``3 / 5`` and ``4 / 7`` (2), per output index of each
    dimension (5 + 7) the source ``scale * (i + 0.5) - 0.5`` (3), ``guard_index_and_lambda``
    (floor, ``x - index``, its max and min: 4) and ``get_cubic_upsample_coefficients`` (35),
    then 35 per element: ``2 + 12 x 42 + 70 x 35`` = 2,956 (2,450 until s25)."""
    x = torch.randn(1, 2, 3, 4)
    result = gp.count_fpo(
        lambda a: F.interpolate(a, size=(5, 7), mode="bicubic"), x, backward=False
    )
    assert result.forward_total == 2 + (5 + 7) * (3 + 4 + 35) + 70 * 35 == 2_956


def test_bicubic_interpolation_backward_recomputes_its_weights_per_plane():
    """``upsample_bicubic2d_backward_out_frame`` (torch 2.13, ``UpSampleBicubic2d.cpp``):
    the scales once (2), then ``parallel_for`` over the N * C planes, and inside each plane for
    every output pixel both axes' ``area_pixel_compute_source_index`` (3 each, cubic: no ``< 0``
    compare), ``guard_index_and_lambda`` (floor, ``real - index``, max, min: 4 each) and
    ``get_cubic_upsample_coefficients`` (35 each): 84 per plane and pixel; then the 16 taps'
    ``out_value * y_coeffs[jj] * x_coeffs[ii]`` added (48). (1, 2, 3, 4) -> (5, 7): ``2 + 2 x
    35 x 84 + 70 x 48`` = 9,242."""
    x = torch.randn(1, 2, 3, 4, requires_grad=True)
    result = gp.count_fpo(lambda a: F.interpolate(a, size=(5, 7), mode="bicubic"), x)
    assert result.backward_total == 2 + 2 * 35 * (2 * (3 + 4) + 2 * 35) + 70 * 48 == 9_242


# -- losses -----------------------------------------------------------------------------------


def test_soft_margin_loss_backward_as_aten_runs_it():
    """``F.soft_margin_loss`` on (4, 5): forward ``log1p(exp(-x y))`` (negate, multiply, exp,
    log1p: 4 per element) and the mean (20 + 1): 101. Backward,
    ``soft_margin_loss_backward_out``: ``z = exp(-y * x)`` (negate, multiply, exp: 3),
    ``y * z * -norm`` (2), ``z + 1`` and the division (2), times the output's gradient (1):
    8 per element, 160 (it was 5 per element, 100)."""
    x = torch.randn(4, 5, requires_grad=True)
    target = torch.sign(torch.randn(4, 5))
    result = gp.count_fpo(lambda a: F.soft_margin_loss(a, target), x)
    assert result.unknown_ops == {}
    assert _op(result, "aten.soft_margin_loss", "forward") == 101
    assert _op(result, "aten.soft_margin_loss_backward", "backward") == 160


def test_multilabel_margin_loss_counts_the_pairs_its_kernel_visits():
    """``F.multilabel_margin_loss`` of (3, 6) with labels ``[2, 0]``, ``[5]`` and ``[1, 1, 4]``
    (each ended by -1): ATen's kernel visits, per sample, each label before the -1 (repeats
    too) against each class that is not a label: 2 x 4, 1 x 5, 3 x 4 (the repeated 1 is one
    class): 25 pairs. Forward 4 per pair (``1 - x[label] + x[d]``, ``z > 0``, ``sum += z``),
    each sample's sum added (3), divided by C and by N (2): 105. Backward ``g = 1 / (N C)`` (1),
    5 per pair (``z``, the compare, ``-= g`` and ``+= g``), the 18 elements times the output's
    gradient: 144. On meta the targets have no values: ``C (C - 1)`` = 30 pairs per sample, an
    upper bound, 4 * 90 + 5 = 365 (the backward has no meta kernel in torch 2.13)."""
    target = torch.tensor([[2, 0, -1, 0, 0, 0], [5, -1, 3, 3, 3, 3], [1, 1, 4, -1, 0, 0]])
    x = torch.randn(3, 6, requires_grad=True)
    cpu = gp.count_fpo(lambda a: F.multilabel_margin_loss(a, target), x)
    meta = gp.count_fpo(
        lambda a: F.multilabel_margin_loss(a, target.to("meta")),
        torch.randn(3, 6, device="meta"),
        backward=False,
    )
    assert cpu.unknown_ops == meta.unknown_ops == {}
    assert (cpu.forward_total, cpu.backward_total) == (105, 144)
    assert meta.forward_total == 365


def test_kl_divergence_both_target_forms_counted_as_torch_decomposes_them():
    """``F.kl_div(x, t, reduction="batchmean")`` on (4, 5) runs ATen's composite
    ``xlogy(t, t) - t * x`` (xlogy as ATen's kernel runs it: the NaN test, the compare with 0,
    log and multiply, 4 (2 until s36, ported in test_fpo_xlogy_s36; ``torch.rand`` has no
    zeros); multiply 1; subtract 1: 6 per element, 120), the sum (20) and the division by the
    batch (1): 141; backward the division's
    gradient (1) and ``-(t * g)`` (2 per element): 41. With ``log_target=True``
    ``exp(t) * (t - x)`` (3 per element) + 21: 81, backward the same 41."""
    x = torch.randn(4, 5, requires_grad=True)
    probs, logs = torch.rand(4, 5), torch.randn(4, 5)
    plain = gp.count_fpo(lambda a: F.kl_div(a, probs, reduction="batchmean"), x)
    logged = gp.count_fpo(lambda a: F.kl_div(a, logs, reduction="batchmean", log_target=True), x)
    assert plain.unknown_ops == logged.unknown_ops == {}
    assert (plain.forward_total, plain.backward_total) == (141, 41)
    assert (logged.forward_total, logged.backward_total) == (81, 41)


def test_weighted_nll_loss_counted_from_its_kernel():
    """``F.nll_loss`` with class weights on (4, 5), mean: ATen's ``nll_loss_out_frame`` per
    sample adds the weight to the total weight (1) and subtracts ``x[t] * w[t]`` (2): 12; after
    the first sample its cascade sum carries each of its 7 levels up, for the loss and the
    weights (14), and adds up the two sets of 8 partial sums (16; s35 counted these: 13 until
    then); then divides by the total weight: 43. The backward's kernel computes ``-(g / total)``
    once (divide, negate: 2) and per sample multiplies it by ``w[t]`` (1): 6 (it was 12, the
    division and negation counted per sample)."""
    x = torch.randn(4, 5, requires_grad=True)
    target, weight = torch.tensor([0, 1, 2, 3]), torch.rand(5)
    result = gp.count_fpo(lambda a: F.nll_loss(a, target, weight=weight), x)
    assert (result.forward_total, result.backward_total) == (12 + 14 + 16 + 1, 6)


def test_cross_entropy_skips_the_targets_equal_to_ignore_index():
    """A language model's loss on 6 tokens of a 7-word vocabulary, 2 of them padding labelled
    -100: log-softmax ``6 * 42 - 6`` = 246 (along the last dimension ATen's kernel starts the
    max and the sum from their first values; ``6 * 42 + 6`` = 258 before s35, and 216 before
    s34 counted ``x - max - log(sum)``'s two subtractions); ATen's ``nll_loss_forward`` skips
    the ignored targets, so the 4 others cost 1 each (``loss -= x[t]``: the picked log-probability
    subtracted into the sum, negation and add in one), the cascade's carries after the first
    (kept) target 14 and its 8 partial sums added up 8 (s35), + the mean's division: 27 (5
    before s35; 9 when a negation was counted besides the sum; 13 when the 6 targets were).
    Backward: log-softmax 4 per element less 1 per row, 162 (168 before s35), and ``-(g / total)``
    computed once (2) and copied into the 4 kept targets' entries: 2 (it counted 2 per kept target,
    8, and 12 before the ignored ones were skipped). On meta the labels have no values: every target
    counts (29 and 2), an upper bound. A segmentation loss (``nll_loss2d``, the same kernels) of (2,
    3, 2, 2) with 3 of its 8 pixels labelled 255 and ``ignore_index=255``: 5 kept pixels, the first
    one's carries and the final sum, 5 + 14 + 8 + 1 = 28 (6 before s35, 11 before s22), backward 2
    (was 10)."""
    logits = torch.randn(6, 7, requires_grad=True)
    labels = torch.tensor([3, 1, -100, 6, -100, 0])
    cpu = gp.count_fpo(lambda a: F.cross_entropy(a, labels), logits)
    assert cpu.unknown_ops == {}
    assert _op(cpu, "aten.nll_loss_forward", "forward") == 4 + 14 + 8 + 1
    assert _op(cpu, "aten.nll_loss_backward", "backward") == 2
    assert (cpu.forward_total, cpu.backward_total) == (246 + 27, 162 + 2)
    meta = gp.count_fpo(
        lambda a: F.cross_entropy(a, labels.to("meta")),
        torch.randn(6, 7, device="meta", requires_grad=True),
    )
    assert _op(meta, "aten.nll_loss_forward", "forward") == 6 + 14 + 8 + 1
    assert _op(meta, "aten.nll_loss_backward", "backward") == 2
    pixels = torch.tensor([[[0, 255], [2, 1]], [[255, 255], [1, 0]]])
    seg = gp.count_fpo(
        lambda a: F.nll_loss(a, pixels, ignore_index=255), torch.randn(2, 3, 2, 2).requires_grad_()
    )
    assert _op(seg, "aten.nll_loss2d_forward", "forward") == 5 + 14 + 8 + 1
    assert _op(seg, "aten.nll_loss2d_backward", "backward") == 2


# -- linear algebra and recurrent layers ------------------------------------------------------


def test_cdist_p1_and_p2_forward_and_backward_per_pair():
    """``torch.cdist`` of (3, 4) and (5, 4): 15 pairs of 4-vectors (under 25 rows: ATen's
    ``_cdist_forward`` kernel, not the matrix-product path). p = 2: the kernel's
    ``agg += map(std::abs(a - b))`` with ``map = d * d``: difference, abs, square, add per
    coordinate and the square root, ``4M + 1`` = 17 per pair: 255 (it was 195, ``3M + 1``: the
    abs went uncounted); backward per pair and input ``diff * g / dist`` summed: ``4M + 1`` =
    17, twice: 510. p = 1: difference, abs, add, ``3M`` = 12: 180; backward ``g * sign(diff)``
    summed, the kernel's sign ``min(max(0, ceil(d)), 1) + min(max(-1, floor(d)), 0)`` 7 ops:
    difference 1, sign 7, multiply 1, add 1, ``10M`` = 40, twice: 1,200 (it was 480, the sign
    counted as 1)."""
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(5, 4, requires_grad=True)
    two = gp.count_fpo(torch.cdist, a, b)
    one = gp.count_fpo(lambda u, v: torch.cdist(u, v, p=1), a, b)
    assert (two.forward_total, two.backward_total) == (255, 510)
    assert (one.forward_total, one.backward_total) == (180, 1200)


def test_ldl_solve_and_lu_unpack_have_rules():
    """Two ops that ran with no rule (the count a lower bound). ``linalg.ldl_solve`` after
    ``ldl_factor`` of a 4 x 4 symmetric matrix, 2 right-hand sides: the factorisation
    ``n^3 / 3`` = 21, the solve (LAPACK ``sytrs``: ``L``, ``D``'s blocks, ``L^T``) ``2 n^2``
    per right-hand side, 64: 85. ``lu_unpack`` (``torch.lu_unpack``, and the backward of
    ``linalg.lu_factor``) copies L and U out of the packed factors and turns the pivots into a
    permutation: 0 by rule, so ``lu_unpack(*lu_factor(a))`` is the factorisation's
    ``2 n^3 / 3`` = 43 alone."""
    torch.manual_seed(0)
    a = torch.randn(4, 4)
    a = a @ a.T + 4 * torch.eye(4)
    b = torch.randn(4, 2)
    ldl = gp.count_fpo(
        lambda m, r: torch.linalg.ldl_solve(*torch.linalg.ldl_factor(m), r), a, b, backward=False
    )
    assert ldl.unknown_ops == {}
    assert ldl.total == 21 + 64
    lu = gp.count_fpo(lambda m: torch.lu_unpack(*torch.linalg.lu_factor(m))[2], a, backward=False)
    assert lu.unknown_ops == {}
    assert (lu.total, lu.by_op["aten.lu_unpack"]) == (43, 0)


def test_a_packed_lstm_counts_the_real_lengths():
    """An LSTM(3, 4) on a packed batch of lengths 5, 3 and 2 (10 tokens): per token the input
    projection ``2 * 3 * 16`` + bias 16 = 112 and the hidden one ``2 * 4 * 16`` + 16 = 144
    (``addmm``), 256: 2,560 for the 10 tokens, not 15 x 256 for the padded (5, 3) batch."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)

    def packed(x):
        seq = nn.utils.rnn.pack_padded_sequence(x, [5, 3, 2])
        return nn.utils.rnn.pad_packed_sequence(lstm(seq)[0])[0]

    result = gp.count_fpo(packed, torch.randn(5, 3, 3, requires_grad=True))
    assert result.unknown_ops == {}
    assert _op(result, "aten.addmm", "forward") == 10 * 256
