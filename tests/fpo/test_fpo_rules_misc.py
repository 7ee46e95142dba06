"""The less common ops real models run, against hand counts."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402


def count(fn):
    with gp.FPOCounter() as c:
        fn()
    return c.result


def nonzero(by_op):
    return {op: fpo for op, fpo in by_op.items() if fpo}


def t(*shape, grad=False):
    return torch.randn(*shape, requires_grad=grad)


# -- elementwise -------------------------------------------------------------------------------


def test_histc_five_per_element_and_two_more_to_find_the_range():
    x = t(100)
    assert count(lambda: torch.histc(x, bins=10)).by_op == {"aten.histc": 700}
    assert count(lambda: torch.histc(x, bins=10, min=-1, max=1)).total == 500


def test_glu_and_its_backward():
    """(4, 8) -> (4, 4): 5 per output (ATen's ``glu_kernel`` ``a * (1 / (1 + exp(-b)))``) = 80;
    the seed sum 16; backward 9 per output-gradient element (the sigmoid kernel 4, ``s * g``,
    ``(1 - s) s a g`` 4) = 144 (32 and 96 before s35 counted the sigmoid as 1)."""
    x = t(4, 8, grad=True)
    r = count(lambda: F.glu(x).sum().backward())
    assert nonzero(r.by_op) == {"aten.glu": 80, "aten.sum": 16, "aten.glu_backward": 144}


def test_celu_counts_as_elu_and_its_backward_is_elu_backward():
    """celu as ELU's vectorised kernel with input scale ``1 / alpha`` (the division once): the
    first two rows of 8 hold a negative value, 5 per element, the last two none, 2 per element
    (since s36; 6 per element, 192, before): 80 + 32 + 1 = 113; its backward is ATen's
    elu_backward kernel from the input, ``g * s_in * (alpha s) * exp(x s_in)`` (5), ``g * s``
    (1) and the compare (1): 7 per element, 224 (it was 4 per element, 128)."""
    x = torch.linspace(-1.0, 1.0, 32).reshape(4, 8).requires_grad_()
    r = count(lambda: F.celu(x, alpha=0.5).sum().backward())
    assert nonzero(r.by_op) == {"aten.celu": 113, "aten.sum": 32, "aten.elu_backward": 224}


@pytest.mark.parametrize("fn", [torch.logaddexp, torch.logaddexp2])
def test_logaddexp_seven_per_element(fn):
    a, b = t(4, 8), t(1, 8)
    assert count(lambda: fn(a, b)).total == 7 * 32


def test_bce_with_logits_pos_weight_adds_its_terms():
    """9 per element + the mean (12 + 1) = 121; pos_weight: 3 per element + 3 = 39 more."""
    x, y = t(4, 3), torch.rand(4, 3)
    assert count(lambda: F.binary_cross_entropy_with_logits(x, y)).total == 121
    pw = torch.ones(3)
    r = count(lambda: F.binary_cross_entropy_with_logits(x, y, pos_weight=pw))
    assert r.total == 121 + 3 * 12 + 3


# -- distances ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "per_pair"), [(2.0, 4 * 5 + 1), (1.0, 3 * 5), (float("inf"), 3 * 5), (3.0, 4 * 5 + 1)]
)
def test_cdist_per_pair(p, per_pair):
    """(3, 4, 5) and (3, 6, 5): 3 * 4 * 6 = 72 pairs of 5-vectors. Per coordinate ATen's kernel
    takes ``|a - b|`` (2) and maps and reduces it: p = 1 add, inf max (3); p = 2 ``d * d`` and
    add (4, it was 3: the abs went uncounted), other p ``pow`` and add (4); + the root per
    pair for p = 2 and other p."""
    a, b = t(3, 4, 5), t(3, 6, 5)
    assert count(lambda: torch.cdist(a, b, p=p)).by_op == {"aten._cdist_forward": 72 * per_pair}


def test_cdist_backward_once_per_input():
    """p = 2: 72 pairs * (4 * 5 + 1) for each of the two inputs."""
    a, b = t(3, 4, 5, grad=True), t(3, 6, 5, grad=True)
    r = count(lambda: torch.cdist(a, b).sum().backward())
    assert r.by_op["aten._cdist_backward"] == 2 * 72 * 21
    assert r.unknown_ops == {}


def test_large_cdist_takes_the_matrix_product_path():
    """40 x 5 against 30 x 5 (more than 25 rows): norms 3 * 200 + 2 * 150, the (40, 7) x (7, 30)
    product 2 * 40 * 7 * 30, clamp and square root 2 * 1200."""
    a, b = t(40, 5, grad=True), t(30, 5, grad=True)
    r = count(lambda: torch.cdist(a, b))
    assert r.by_op["aten._euclidean_dist"] == 600 + 300 + 16_800 + 2_400
    r = count(lambda: torch.cdist(a, b).sum().backward())
    assert r.unknown_ops == {}


def test_pdist_counts_each_pair_once():
    """5 rows: 10 pairs of 4-vectors, 4 * 4 + 1 each (``(a - b).abs()``, square, add per
    coordinate, the root: 170; it was 3 * 4 + 1, 130, the abs uncounted); backward per pair
    ``4M + 1`` for one row and ``M`` subtractions for the other."""
    x = t(5, 4, grad=True)
    r = count(lambda: F.pdist(x).sum().backward())
    assert r.by_op["aten._pdist_forward"] == 170
    assert r.by_op["aten._pdist_backward"] == 10 * (4 * 4 + 1 + 4)


# -- grid sampling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "padding", "expected"),
    [
        # 16 locations, 48 outputs: coordinates 3 per dim (+ clipping: border 2), then (ATen's
        # vectorised CPU kernel) bilinear 10 per location (2 floors, 4 distances, 4 weights)
        # and 7 per output (4 products, 3 adds); nearest 2 rounds per location; bicubic (the
        # same kernel) 2 * 3 to unnormalise, 2 floors, 2 fractions, 70 coefficients: 80 per
        # location; per output 4 rows of 4 taps, each tap its position (2) and both
        # coordinates reflected and clipped (2 * 11), the row's 4 products and 3 adds: a row
        # 4 * 24 + 7 = 103, with the column's 7: 419 (it was 16 * (6 + 12) + 48 * 40 = 2,208,
        # counted as upsampling)
        ("bilinear", "zeros", 16 * (6 + 10) + 48 * 7),
        ("bilinear", "border", 16 * (6 + 4 + 10) + 48 * 7),
        ("nearest", "zeros", 16 * (6 + 2)),
        ("bicubic", "reflection", 16 * 80 + 48 * 419),
    ],
)
def test_grid_sample_2d(mode, padding, expected):
    x, grid = t(1, 3, 8, 8), torch.rand(1, 4, 4, 2) * 2 - 1
    r = count(lambda: F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False))
    assert r.by_op == {"aten.grid_sampler_2d": expected}


def test_grid_sample_3d_trilinear():
    """ATen's scalar 3-D kernel (``grid_sampler_3d_cpu_impl``): 32 locations, each three
    coordinates unnormalised ``((x + 1) * size - 1) / 2`` (4 each, zeros padding: 12), 3
    floors and 8 corner weights ``(x1 - x) * (y1 - y) * (z1 - z)`` (5 each: 40): 55; 96 output
    elements, each ``out += value * weight`` over the 8 corners: 16. 32 * 55 + 96 * 16 = 3,296
    (it was 32 * 9 + 96 * 21 = 2,304, counted as trilinear upsampling)."""
    x, grid = t(1, 3, 4, 8, 8), torch.rand(1, 2, 4, 4, 3) * 2 - 1
    r = count(lambda: F.grid_sample(x, grid, align_corners=False))
    assert r.by_op == {"aten.grid_sampler_3d": 32 * 55 + 96 * 16}


def test_grid_sample_backward_input_and_grid():
    """ATen's CPU kernel: per location (16) the coordinates 2 * 3, the interpolation
    parameters 10 and the two gradient multipliers 2; per gradient element (48) the grid's
    gradient 14 and the input's 8 (four ``w * g`` scattered with an add each). The grid's
    gradient is always computed, also for a grid that needs none (was 432 + 864 + 96 and 432:
    ``9`` per element for the input, twice that for the grid, and no grid work when fixed)."""
    x = t(1, 3, 8, 8, grad=True)
    grid = (torch.rand(1, 4, 4, 2) * 2 - 1).requires_grad_()
    r = count(lambda: F.grid_sample(x, grid, align_corners=False).sum().backward())
    assert r.by_op["aten.grid_sampler_2d_backward"] == 16 * (6 + 10 + 2) + 48 * (14 + 8)
    fixed = torch.rand(1, 4, 4, 2) * 2 - 1
    r = count(lambda: F.grid_sample(x, fixed, align_corners=False).sum().backward())
    assert r.by_op["aten.grid_sampler_2d_backward"] == 16 * (6 + 10 + 2) + 48 * (14 + 8)


# -- embedding bags ----------------------------------------------------------------------------

INDICES, OFFSETS = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 2])  # 4 rows into 2 bags


@pytest.mark.parametrize(
    ("mode", "forward", "backward"),
    [
        ("sum", 16, 16),  # 4 rows of 4 added; back: each row gets its bag's gradient
        # + one division per output element; back: per entry 1 / bag_size (4), then its
        # bag's gradient times it added into the row (2 * 16; s41: it was 16 + 8)
        ("mean", 16 + 8, 2 * 16 + 4),
        # each bag's first row taken as it is, the other 2 x 4 compared (s41: it was 16);
        # back: only each bag's max row, 2 * 4
        ("max", 8, 8),
    ],
)
def test_embedding_bag_modes(mode, forward, backward):
    bag = nn.EmbeddingBag(10, 4, mode=mode)
    r = count(lambda: bag(INDICES, OFFSETS).sum().backward())
    assert r.by_op["aten._embedding_bag"] == forward
    assert r.by_op["aten._embedding_bag_backward"] == backward
    assert r.unknown_ops == {}


def test_embedding_bag_per_sample_weights():
    """Forward: 16 adds + 16 multiplies; backward: rows 16 + 16, the weights' gradient one dot
    product of 4 per row (2 * 4 * 4)."""
    bag = nn.EmbeddingBag(10, 4, mode="sum")
    weights = torch.rand(4, requires_grad=True)
    r = count(lambda: bag(INDICES, OFFSETS, per_sample_weights=weights).sum().backward())
    assert r.by_op["aten._embedding_bag"] == 32
    assert r.by_op["aten._embedding_bag_backward"] == 32
    assert r.by_op["aten._embedding_bag_per_sample_weights_backward"] == 32


# -- CTC loss ----------------------------------------------------------------------------------


def test_ctc_loss_forward_and_backward():
    """T = 10, N = 2, C = 5, targets 1 2 3 4 and 1 2 3 (ATen's CPU kernel, s21; was 15 per
    cell of the (2, 10, 9) lattice + 11 per sample = 2,722 and 20 per cell + 6 per gradient
    element = 4,200). Forward: 9 steps after the first, each state 12 + the compares that
    find the max (one per state but the first, one more per label state whose label differs
    from the one two states before): S = 4, 12 * 9 + 8 + 3 = 119; S = 3, 12 * 7 + 6 + 2 = 92;
    + 10 per loss: 9 * 119 + 10 + 9 * 92 + 10 = 1,919. Backward: the last step's 2 adds, 9
    steps of the same recursion + 2 per state (alpha + beta, the -inf test) + 8 per state
    whose class an earlier state of the step holds (9 states in 5 classes: 4; 7 in 4: 3),
    + 6 per gradient element (10 * 5 per sample): 2 + 9 * (119 + 18 + 32) + 300 + 2 + 9 *
    (92 + 14 + 24) + 300 = 3,295."""
    logits = t(10, 2, 5, grad=True)
    targets = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 0]])
    lengths, target_lengths = torch.tensor([10, 10]), torch.tensor([4, 3])

    def loss():
        F.ctc_loss(logits.log_softmax(2), targets, lengths, target_lengths).backward()

    r = count(loss)
    assert r.by_op["aten._ctc_loss"] == 1_919
    assert r.by_op["aten._ctc_loss_backward"] == 3_295
    assert r.unknown_ops == {}


# -- torchvision's detection ops ---------------------------------------------------------------

_ROI_ALIGN = (
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
)
_ROI_ALIGN_BACKWARD = (
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
    "int sampling_ratio, bool aligned) -> Tensor"
)
_NMS = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def _has_torchvision_op(name):
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


@pytest.fixture(scope="module")
def torchvision_ops():
    """torchvision's ops, or stand-ins with their real schemas when its C++ ops are absent."""
    if all(_has_torchvision_op(n) for n in ("roi_align", "_roi_align_backward", "nms")):
        yield torch.ops.torchvision
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in (_ROI_ALIGN, _ROI_ALIGN_BACKWARD, _NMS):
        lib.define(schema)

    def roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned):
        return input.new_zeros(rois.shape[0], input.shape[1], ph, pw)

    def roi_align_backward(grad, rois, spatial_scale, ph, pw, b, c, h, w, ratio, aligned):
        return grad.new_zeros(b, c, h, w)

    def nms(dets, scores, iou_threshold):
        return torch.argsort(scores, descending=True)

    for key in ("CPU", "Meta"):
        lib.impl("roi_align", roi_align, key)
        lib.impl("_roi_align_backward", roi_align_backward, key)
        lib.impl("nms", nms, key)
    yield torch.ops.torchvision
    del lib


@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_roi_align_by_hand(torchvision_ops, sampling_ratio):
    """4 RoIs, 3 channels, 2 x 2 bins, 2 x 2 samples (adaptive counted as 2 x 2): per output
    element 8 * 4 + 1 (48 elements), per sample position 16 (4 * 4 * 4 positions), per RoI 8:
    1,584 + 1,024 + 32."""
    x = torch.randn(2, 3, 16, 16)
    rois = torch.tensor([[0, 0.0, 0, 8, 8]] * 4)
    r = count(lambda: torchvision_ops.roi_align(x, rois, 0.5, 2, 2, sampling_ratio, True))
    assert r.by_op == {"torchvision.roi_align": 2_640}
    grad = torch.randn(4, 3, 2, 2)
    args = (grad, rois, 0.5, 2, 2, 2, 3, 16, 16, sampling_ratio, True)
    r = count(lambda: torchvision_ops._roi_align_backward(*args))
    assert r.by_op == {"torchvision._roi_align_backward": 2_640}


def test_nms_by_hand(torchvision_ops):
    """10 boxes: sort 10 * 4, areas 3 * 10, IoU of 45 pairs at 13 each: 655."""
    boxes = torch.rand(10, 4) * 10
    boxes[:, 2:] += boxes[:, :2]
    scores = torch.rand(10)
    r = count(lambda: torchvision_ops.nms(boxes, scores, 0.5))
    assert r.by_op == {"torchvision.nms": 655}


def test_detection_ops_on_meta(torchvision_ops):
    x = torch.empty(2, 3, 16, 16, device="meta")
    rois = torch.empty(4, 5, device="meta")
    r = count(lambda: torchvision_ops.roi_align(x, rois, 0.5, 2, 2, 2, True))
    assert r.total == 2_640


# -- more ops met on real models ---------------------------------------------------------------


def test_bilinear_layer_is_two_contractions():
    """nn.Bilinear(4, 5, 3) on a batch of 2: per output feature (ATen unrolls O) x1 W
    contracted over I (2*2*3*4*5 = 240), then with x2 over J (2*2*3*5 = 60), and each slice
    added into the output (2 * 3 = 6; s21: was 300 without it); the bias add 6."""
    layer = nn.Bilinear(4, 5, 3)
    x1, x2 = t(2, 4), t(2, 5)
    r = count(lambda: layer(x1, x2))
    assert r.by_op["aten._trilinear"] == 306
    assert r.total == 312
    x1.requires_grad_()
    assert count(lambda: layer(x1, x2).sum().backward()).unknown_ops == {}


SMALL = t(4, 5)
IMAGE = t(2, 3, 8, 8)
CASES = {
    # name: (fn, FPO, the op counted)
    "hann_window": (lambda: torch.hann_window(8), 4 * 8),
    "blackman_window": (lambda: torch.blackman_window(8), 8 * 8),
    "cross": (lambda: torch.linalg.cross(t(4, 3), t(4, 3)), 3 * 12),
    "rrelu": (lambda: F.rrelu(SMALL, training=True), 2 * 20),
    "hardshrink": (lambda: F.hardshrink(SMALL), 2 * 20),
    # ATen's vectorised kernel: (x > l) & (x - l) | (x < -l) & (x + l), both shifts: 4 (was 3)
    "softshrink": (lambda: F.softshrink(SMALL), 4 * 20),
    # 2 * 3 * 3 * 3 = 54 outputs, 2 x 2 windows; + each of the 6 planes' window starts, per
    # dimension alpha (1) and 3 for each of the first 2 starts: 6 * 2 * 7 (was 54 * 4 alone)
    "fractional_max_pool": (
        lambda: F.fractional_max_pool2d(IMAGE, 2, output_size=3),
        54 * 4 + 6 * 2 * 7,
    ),
    # 4 x 5: per sample the 4 classes other than the target (ATen skips it), 3 each and
    # its add, 1 division per sample, the mean over 4 samples (4 + 1): 4 * 17 + 5 (was 89)
    "multi_margin_loss": (lambda: F.multi_margin_loss(SMALL, torch.tensor([0, 1, 2, 3])), 73),
    "soft_margin_loss": (lambda: F.soft_margin_loss(SMALL, torch.ones(4, 5)), 4 * 20 + 21),
    # (2, 8, 8, 2) grid, each coordinate a dot product of 3
    "affine_grid": (lambda: F.affine_grid(t(2, 2, 3), [2, 3, 8, 8], align_corners=False), 1_536),
    # 5 values, ceil(log2(11)) = 4 compares each; among 3 boundaries 2 each
    "searchsorted": (lambda: torch.searchsorted(torch.arange(10.0), torch.rand(5)), 20),
    "bucketize": (lambda: torch.bucketize(torch.rand(5), torch.arange(3.0)), 10),
    "unique": (lambda: torch.unique(torch.rand(10)), 10 * 4 + 10),
    "unique_of_integers": (lambda: torch.unique(torch.arange(10)), 0),
    "bincount_weighted": (lambda: torch.bincount(torch.arange(10) % 3, weights=torch.rand(10)), 10),
    "bincount": (lambda: torch.bincount(torch.arange(10) % 3), 0),
    "trace": (lambda: torch.trace(t(4, 4)), 4),
    "renorm": (lambda: torch.renorm(SMALL, 2, 0, 1.0), 3 * 20 + 3 * 4),
    "polar": (lambda: torch.polar(torch.rand(4), torch.rand(4)), 16),
    "sinc": (lambda: torch.sinc(t(5)), 20),
    "i0": (lambda: torch.i0(t(5)), 5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_more_ops_by_hand(name):
    fn, expected = CASES[name]
    r = count(fn)
    assert r.unknown_ops == {}
    assert r.total == expected


def test_embedding_max_norm_renormalises_the_looked_up_rows():
    """3 rows of 4: the norm (2 * 4 + 1), the compare, ``scale = max_norm / (norm + 1e-7)``
    (add, divide: 2) and ``row *= scale`` (4): 16 each, 48 (it was 14 each, 42: the scale's 2
    missed). Every row is over ``max_norm`` here (a row of ones: norm 2): since s24 only the
    rows over it are counted as scaled, read before the op."""
    embedding = nn.Embedding(10, 4, max_norm=1.0)
    nn.init.ones_(embedding.weight)
    ids = torch.tensor([1, 2, 3])
    assert count(lambda: embedding(ids)).by_op["aten.embedding_renorm_"] == 48


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.rrelu(x, training=True),
        F.hardshrink,
        F.softshrink,
        lambda x: F.multi_margin_loss(x, torch.tensor([0, 1, 2, 3])),
        lambda x: F.multilabel_margin_loss(x, torch.tensor([[0, 1, -1, 0, 0]] * 4)),
        lambda x: F.soft_margin_loss(x, torch.ones(4, 5)),
        lambda x: torch.renorm(x, 2, 0, 1.0),
        torch.sinc,
    ],
)
def test_more_ops_backward_has_a_rule_for_every_op(fn):
    x = t(4, 5, grad=True)
    r = count(lambda: fn(x).sum().backward())
    assert r.unknown_ops == {}
    assert r.backward_total > 0


def test_weight_norm_by_hand():
    """Conv1d(3, 4, 3): v is (4, 3, 3), 36 elements in 4 slices: 3 * 36 + 2 * 4 = 116; backward
    5 * 36 + 3 * 4 = 192."""
    conv = torch.nn.utils.parametrizations.weight_norm(nn.Conv1d(3, 4, 3))
    x = t(1, 3, 10)
    r = count(lambda: conv(x).sum().backward())
    assert r.by_op["aten._weight_norm_interface"] == 116
    assert r.by_op["aten._weight_norm_interface_backward"] == 192
    assert r.unknown_ops == {}


def test_matrix_exp_is_the_five_products_of_the_degree_18_polynomial():
    """(2, 4, 4): 2 * 5 * 2 * 4^3; orthogonal parametrizations run it forward and backward."""
    a = t(2, 4, 4)
    assert count(lambda: torch.linalg.matrix_exp(a)).total == 2 * 10 * 64
    layer = torch.nn.utils.parametrizations.orthogonal(nn.Linear(4, 4))
    assert count(lambda: layer(t(2, 4)).sum().backward()).unknown_ops == {}


def test_multilabel_margin_loss_by_hand():
    """4 samples of 5 classes, labels 0 and 1 each: ATen's kernel visits the 2 x 3 (label,
    other class) pairs of a sample, 4 FPO each (``1 - x[label] + x[d]``, ``> 0``, the add; an
    upper bound), 24 per sample, + 1 per sample (added to the total) + 2 (divided by C and by
    the 4 samples): 4 * 24 + 4 + 2 = 102. It was 409, ``4 C^2 + 1`` per sample + the mean:
    every class taken as a label and as a non-label at once."""
    x, y = t(4, 5), torch.tensor([[0, 1, -1, 0, 0]] * 4)
    assert count(lambda: F.multilabel_margin_loss(x, y)).total == 102


def test_window_functions_by_hand():
    assert count(lambda: torch.hamming_window(8)).total == 4 * 8
    assert count(lambda: torch.bartlett_window(8)).total == 3 * 8


def test_embedding_bag_kernels_reached_by_direct_calls():
    """The dense and sparse backward kernels count as _embedding_bag_backward does. 2 bags of
    4, 4 entries. Dense, mean: each entry's row gets its bag's gradient times ``1 /
    bag_size`` (16 multiplies, 16 adds) and that scale is one division per entry (4; s41: it
    was 16 + 8, a division per gradient element, which the kernel does not do). Sparse
    (``_embedding_bag_sparse_backward``): the bags' gradients are gathered per entry (a
    copy) and handed to the sparse embedding backward (no adds), so
    sum with per-sample weights is their ``I * D`` = 16 multiplies only (it was 16 + 16, the
    dense scatter's adds counted); mean ``1 / bag_size`` per bag (2) and ``I * D`` multiplies
    (16): 18."""
    from greenprint.fpo.rules import RULES as rules

    grad, indices = (2, 4), (4,)
    dense = rules["aten._embedding_bag_dense_backward"].fn
    sparse = rules["aten._embedding_bag_sparse_backward"].fn
    # (grad, indices, offset2bag, bag_size, maximum_indices, num_weights, scale, mode, psw)
    assert dense(grad, indices, (4,), (2,), (2,), 10, False, 1, None) == 2 * 16 + 4
    # (grad, indices, offsets, offset2bag, bag_size, num_weights, scale, mode, psw)
    assert sparse(grad, indices, (2,), (4,), (2,), 10, False, 0, (4,)) == 16
    assert sparse(grad, indices, (2,), (4,), (2,), 10, False, 1, None) == 2 + 16
