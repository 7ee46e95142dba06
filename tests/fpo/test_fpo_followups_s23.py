"""Follow-ups to the s23 probe: cdist's two paths, FFT scaling, 3-D grid_sample, sparse
EmbeddingBag, nll_loss (s23).

Each expected count is derived beside it from the kernel torch runs (ATen's CPU kernels:
``DistanceOpsKernel.cpp``, ``Distance.cpp``, ``mkl/SpectralOps.cpp``, ``GridSampler.cpp``,
``EmbeddingBag.cpp``, ``LossNLL.cpp``, ``LossNLL2d.cpp``)
under docs/fpo.md's conventions: one FPO per elementwise arithmetic op, compare or elementary
function; a complex times a real is 2 real FPO.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402


def _op(result, op: str, phase: str = "forward") -> int:
    return result.by_op_phase[op][phase]


# -- cdist: which kernel runs --------------------------------------------------------------------


def test_cdist_p2_counts_the_kernel_that_dispatch_picks():
    """``torch.cdist`` p = 2 takes the matrix-product path (``aten._euclidean_dist``) when
    either input has more than 25 rows, unless ``compute_mode`` forbids it. 25 x 3 against
    2 x 3: ``_cdist_forward``, 50 pairs of ``|a - b|`` squared and summed, ``4M + 1`` = 13:
    650. 26 x 3: ``_euclidean_dist``: the norms ``3 * 78 + 2 * 6``, the ``(26, 5) x (5, 2)``
    product ``2 * 26 * 5 * 2``, clamp and root ``2 * 52``: 866. The same 26 rows with
    ``compute_mode="donot_use_mm_for_euclid_dist"``: the kernel again, 52 * 13 = 676."""
    b = torch.randn(2, 3)
    small = gp.count_fpo(torch.cdist, torch.randn(25, 3), b, backward=False)
    assert small.by_op == {"aten._cdist_forward": 650}
    large = torch.randn(26, 3)
    mm = gp.count_fpo(torch.cdist, large, b, backward=False)
    assert mm.by_op["aten._euclidean_dist"] == 234 + 12 + 520 + 104
    kernel = gp.count_fpo(
        lambda u, v: torch.cdist(u, v, compute_mode="donot_use_mm_for_euclid_dist"),
        large,
        b,
        backward=False,
    )
    assert kernel.by_op == {"aten._cdist_forward": 676}


# -- FFT normalisation ---------------------------------------------------------------------------


def test_two_sided_fft_of_a_real_input_scales_its_one_sided_half():
    """``torch.fft.fft`` of a real (4, 8), ``norm="ortho"``: a two-sided ``_fft_r2c``,
    ``2.5 * 32 * 3`` = 240; the kernel computes and scales the one-sided half (4, 5), 2 real
    multiplies per complex element, 40, and mirrors the rest (a copy): 280. It was 240 + 32,
    one per element of the two-sided output."""
    result = gp.count_fpo(
        lambda x: torch.fft.fft(x, norm="ortho"), torch.randn(4, 8), backward=False
    )
    assert result.by_op == {"aten._fft_r2c": 280}


def test_fft2_normalisation_counts_every_complex_output_twice():
    """``ifft2`` of a complex (2, 4, 8): one transform of 32 points per batch,
    ``5 * 64 * 5`` = 1,600, and the ``1/32`` on its 64 complex outputs, 2 each: 128."""
    x = torch.randn(2, 4, 8, dtype=torch.complex64)
    assert gp.count_fpo(torch.fft.ifft2, x, backward=False).by_op == {"aten._fft_c2c": 1600 + 128}


# -- grid_sample 3-D (5-D input) ---------------------------------------------------------------
# x (1, 3, 4, 8, 8), grid (1, 2, 4, 4, 3): 32 locations, 96 output (gradient) elements. ATen's
# scalar kernel (GridSampler.cpp, GridSampler.h): a coordinate is unnormalised
# ``((x + 1) * size - 1) / 2`` (4; ``((x + 1) / 2) * (size - 1)`` with align_corners, 3), then
# clipped: border ``min(size - 1, max(x, 0))`` 2; reflection ``reflect_coordinates`` (2 halvings,
# subtract, fabs, fmod, divide, floor, ``span - extra + min``: 9) and the clip: 11.


def _grid_3d(requires_grad=True):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 8, 8, requires_grad=requires_grad)
    grid = (torch.rand(1, 2, 4, 4, 3) * 2 - 1).requires_grad_(requires_grad)
    return x, grid


@pytest.mark.parametrize(
    ("mode", "padding", "align_corners", "expected"),
    [
        # 3 coordinates of 4, 3 floors, 8 weights of 5 (3 differences, 2 products): 55 per
        # location; 8 products and 8 adds per output element
        ("bilinear", "zeros", False, 32 * 55 + 96 * 16),
        # reflection: 3 * (4 + 11) + 43 = 88 per location
        ("bilinear", "reflection", False, 32 * 88 + 96 * 16),
        # align_corners 3 + border 2 per coordinate, 3 nearbyint: 18 per location, a gather
        ("nearest", "border", True, 32 * 18),
    ],
)
def test_grid_sample_3d_forward_follows_the_scalar_kernel(mode, padding, align_corners, expected):
    x, grid = _grid_3d(requires_grad=False)
    result = gp.count_fpo(
        lambda a, g: F.grid_sample(
            a, g, mode=mode, padding_mode=padding, align_corners=align_corners
        ),
        x,
        grid,
        backward=False,
    )
    assert result.by_op == {"aten.grid_sampler_3d": expected}


def test_grid_sample_3d_backward_computes_the_grids_gradient_always():
    """``grid_sampler_3d_backward_cpu_impl``, trilinear, zeros: per location 3 coordinates with
    their multiplier ``size / 2`` (5 each), floors and weights (43) and ``gix_mult * gix`` for
    x, y, z (3): 61; per gradient element the input's gradient (8 corners, ``w * g`` and the add:
    16) and the grid's (8 corners x 3 coordinates of ``value * (y1 - y) * (z1 - z) * g`` added:
    2 differences, 3 products, 1 add: 144). Both need a gradient: 32 * 61 + 96 * 160 = 17,312
    (it was 96 * 21 + 2 * 96 * 21 + 3 * 3 * 32 = 6,336). Only the grid: the input's part goes,
    the grid's stays: 32 * 61 + 96 * 144 = 15,776."""
    x, grid = _grid_3d()
    both = gp.count_fpo(lambda a, g: F.grid_sample(a, g, align_corners=False), x, grid)
    assert _op(both, "aten.grid_sampler_3d_backward", "backward") == 32 * 61 + 96 * 160
    frozen = x.detach()
    only_grid = gp.count_fpo(lambda g: F.grid_sample(frozen, g, align_corners=False), grid)
    assert _op(only_grid, "aten.grid_sampler_3d_backward", "backward") == 32 * 61 + 96 * 144


def test_bicubic_grid_sample_backward_follows_the_vectorised_kernel():
    """x (1, 1, 3, 3), grid (1, 5, 5, 2) of zeros, bicubic, zeros padding, align_corners=False:
    25 locations of 1 channel. ``ApplyGridSample<Bicubic>::backward`` per location: 2
    coordinates unnormalised (3 each), 2 floors, ``x - floor(x)`` 4 times (2 for the
    coefficients, 2 for their derivatives), the coefficients (2 * 35) and their derivatives
    (2 * 32), ``gx * gx_mult`` and ``gy * gy_mult``: 148. Per gradient element, for each of
    the 16 taps its position (2), ``gx -= v g cx' cy`` and ``gy`` alike (4 each): 10, and with
    the input's gradient ``g cx cy`` scattered (3): 13. Both: 25 * 148 + 25 * 16 * 13 = 8,900;
    the grid alone: 25 * 148 + 25 * 16 * 10 = 7,700 (the grid's gradient is always computed).
    It was 25 * 6 + 25 * (40 + 80) = 3,150, counted from upsampling."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 3, 3, requires_grad=True)
    grid = torch.zeros(1, 5, 5, 2, requires_grad=True)

    def sample(a, g):
        return F.grid_sample(a, g, mode="bicubic", align_corners=False)

    both = gp.count_fpo(sample, x, grid)
    assert _op(both, "aten.grid_sampler_2d_backward", "backward") == 25 * 148 + 25 * 16 * 13
    frozen = x.detach()
    grid_only = gp.count_fpo(lambda g: sample(frozen, g), grid)
    assert _op(grid_only, "aten.grid_sampler_2d_backward", "backward") == 25 * 148 + 25 * 160


# -- sparse EmbeddingBag -------------------------------------------------------------------------

BAG_IDS, BAG_OFFSETS = [1, 2, 4, 4, 3, 0, 1], [0, 3, 5]  # 3 bags, 7 entries, two of them 4


@pytest.mark.parametrize(
    ("mode", "weighted", "backward"),
    [
        # the bags' gradients gathered per entry and made a sparse tensor: no arithmetic
        # (it was 5 * 4 = 20, the dense scatter's adds less the padding entries)
        ("sum", False, 0),
        # 1 / bag_size per bag (3), times each of the 7 entries' 4 values (28), the padding
        # entries included (they are dropped after): 31 (it was 20 + 12 = 32)
        ("mean", False, 3 + 28),
        # the per-sample weights multiply every entry's gradient: 28 (it was 20 + 20)
        ("sum", True, 28),
    ],
)
def test_sparse_embedding_bag_gradient_is_a_copy(mode, weighted, backward):
    """``nn.EmbeddingBag(10, 4, sparse=True, padding_idx=4)``: ATen's
    ``_embedding_bag_sparse_backward`` (``_embedding_bag_backward`` with ``sparse=True``)."""
    bag = nn.EmbeddingBag(10, 4, mode=mode, sparse=True, padding_idx=4)
    ids, offsets = torch.tensor(BAG_IDS), torch.tensor(BAG_OFFSETS)
    if weighted:
        result = gp.count_fpo(lambda w: bag(ids, offsets, per_sample_weights=w), torch.rand(7))
    else:
        result = gp.count_fpo(lambda: bag(ids, offsets))
    assert result.unknown_ops == {}
    assert _op(result, "aten._embedding_bag_backward", "backward") == backward


def test_dense_embedding_bag_backward_still_skips_padding():
    """The same bags, dense gradient, sum: each of the 5 entries that are not padding gets its
    bag's gradient, 5 * 4 = 20 adds (``_embedding_bag_dense_backward_cpu_sum_mean`` skips
    ``padding_idx``): the sparse rule leaves the dense one as it was."""
    bag = nn.EmbeddingBag(10, 4, mode="sum", padding_idx=4)
    ids, offsets = torch.tensor(BAG_IDS), torch.tensor(BAG_OFFSETS)
    result = gp.count_fpo(lambda: bag(ids, offsets))
    assert _op(result, "aten._embedding_bag_backward", "backward") == 20


def test_distance_and_embedding_rules_live_in_their_own_modules():
    """The split of ``_rules_misc``: the registry has every moved rule."""
    from greenprint.fpo.rules import RULES

    moved = {
        "aten._cdist_forward": "_rules_distance",
        "aten._cdist_backward": "_rules_distance",
        "aten._euclidean_dist": "_rules_distance",
        "aten._pdist_forward": "_rules_distance",
        "aten._pdist_backward": "_rules_distance",
        "aten._embedding_bag": "_rules_embedding",
        "aten._embedding_bag_backward": "_rules_embedding",
        "aten._embedding_bag_sparse_backward": "_rules_embedding",
        "aten.embedding_renorm_": "_rules_embedding",
        "aten.grid_sampler_2d": "_rules_grid_sample",
        "aten.grid_sampler_3d": "_rules_grid_sample",
        "aten.grid_sampler_3d_backward": "_rules_grid_sample",
    }
    for op, module in moved.items():
        assert RULES[op].fn.__module__ == f"greenprint.fpo.{module}", op


# -- nll_loss (cross_entropy's second half) ------------------------------------------------------


@pytest.mark.parametrize(
    ("reduction", "weighted", "expected"),
    [
        # ``loss -= x[t]`` into the cascade sum: the negation and the add in one, 1 per target,
        # the cascade's carries after the first target (7 levels, 2 adds each: 14), its 8
        # partial sums added up (8; s35 counted these two, test_fpo_nll_s35), and the mean's
        # division (it was 2 per target + 1: a negation besides the sum)
        ("mean", False, 4 + 14 + 8 + 1),
        ("sum", False, 4 + 14 + 8),
        # ``loss -= x[t] * w[t]`` and ``total += w[t]``: 3 per target, the carries, the loss's
        # and the weights' partial sums added up (16)
        ("sum", True, 12 + 14 + 16),
        # ``out[i] = -x[t] * w`` with ``w`` 1 without weights: 2 per target (it was 1)
        ("none", False, 8),
    ],
)
def test_nll_loss_forward_follows_the_kernel(reduction, weighted, expected):
    """``F.nll_loss`` of (4, 5) log-probabilities, 4 targets: ATen's ``nll_loss_out_frame``."""
    weight = torch.rand(5) if weighted else None
    target = torch.tensor([0, 1, 2, 3])
    result = gp.count_fpo(
        lambda a: F.nll_loss(a, target, weight=weight, reduction=reduction),
        torch.randn(4, 5),
        backward=False,
    )
    assert result.by_op == {"aten.nll_loss_forward": expected}


def test_nll_loss2d_unreduced_negates_and_weighs_each_pixel():
    """``nll_loss2d_forward_out_frame`` with ``reduction="none"``: ``-x * w`` (``w`` 1) per
    pixel, 2 * 8 = 16 (it was 8)."""
    pixels = torch.tensor([[[0, 2], [2, 1]], [[1, 1], [1, 0]]])
    result = gp.count_fpo(
        lambda a: F.nll_loss(a, pixels, reduction="none"), torch.randn(2, 3, 2, 2), backward=False
    )
    assert result.by_op == {"aten.nll_loss2d_forward": 16}


@pytest.mark.parametrize(
    ("reduction", "weighted", "expected"),
    [
        # -(g / total) once (2), copied into the 4 targets' entries (it was 2 per target: 8)
        ("mean", False, 2),
        # -g once (1)
        ("sum", False, 1),
        # -(g / total) once and times w[t] per target: 2 + 4 (it was 3 per target: 12)
        ("mean", True, 6),
        # -w * g per target, w 1 without weights: 2 per target (unchanged)
        ("none", False, 8),
    ],
)
def test_nll_loss_backward_follows_the_kernel(reduction, weighted, expected):
    """ATen's ``nll_loss_backward_out_frame`` for (4, 5) log-probabilities, 4 targets."""
    weight = torch.rand(5) if weighted else None
    target = torch.tensor([0, 1, 2, 3])
    result = gp.count_fpo(
        lambda a: F.nll_loss(a, target, weight=weight, reduction=reduction),
        torch.randn(4, 5, requires_grad=True),
    )
    assert _op(result, "aten.nll_loss_backward", "backward") == expected
