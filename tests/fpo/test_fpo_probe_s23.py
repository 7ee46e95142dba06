"""Distances, embeddings, batched products and attention nobody had checked (s23).

Each expected count is derived by hand beside it from the op's maths and the kernel torch runs
(ATen's CPU kernels: ``DistanceOpsKernel.cpp``, ``Embedding.cpp``, ``EmbeddingBag.cpp``,
``LinearAlgebra.cpp``), under docs/fpo.md's conventions: one FPO per elementwise arithmetic
op, compare or elementary function (``abs``, ``ceil``, ``pow`` are 1 each; the distance
kernels' ``sign``, built from ceil, floor, two max, two min and an add, is 7), reducing n
values costs n, ``2mkn`` per product. Counted as a user counts: ``gp.count_fpo`` (forward and
backward, seeded with ones), on CPU and, where it differs, on meta.
"""

from __future__ import annotations

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


def _op(result, op: str, phase: str = "forward") -> int:
    return result.by_op_phase[op][phase]


def _count(fn, *inputs, backward=True):
    result = gp.count_fpo(fn, *inputs, backward=backward)
    assert result.unknown_ops == {}
    return result


def _leaf(*shape, device="cpu"):
    torch.manual_seed(0)
    return torch.randn(*shape, device=device, requires_grad=True)


# -- cdist and pdist ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_cdist_with_broadcast_batches_counts_every_pair(device):
    """``cdist`` of (1, 3, 4) and (2, 5, 4), p = 1: the kernel expands the batch to 2, so
    2 * 3 * 5 = 30 pairs of 4-vectors (the output's 30 elements), 3 per coordinate
    (difference, abs, add): 30 * 12 = 360. Backward: ``_cdist_backward`` once per input, each
    over the 30 pairs, 10 per coordinate (difference 1, the kernel's sign
    ``min(max(0, ceil(d)), 1) + min(max(-1, floor(d)), 0)`` 7, times the gradient 1, the add
    into the gradient 1): 2 * 30 * 40 = 2,400 (960 with the sign counted as 1), and autograd
    sums x1's expanded (2, 3, 4) gradient into its (1, 3, 4): 24. It was 180 and 744: the rule
    took x1's own batch (1) for the pairs."""
    a, b = _leaf(1, 3, 4, device=device), _leaf(2, 5, 4, device=device)
    result = _count(lambda u, v: torch.cdist(u, v, p=1.0), a, b)
    assert (result.forward_total, result.backward_total) == (360, 2400 + 24)
    assert _op(result, "aten._cdist_backward", "backward") == 2400


def test_cdist_p0_counts_the_kernels_ops_and_no_gradient():
    """p = 0 counts the coordinates that differ. ATen's kernel computes ``|a - b|`` (2) and
    maps it with ``min(ceil(|d|), 1)`` (abs, ceil, min: 3) before the add (1): 6 per
    coordinate, 15 pairs of (3, 4) and (5, 4): 15 * 24 = 360 (it was 180). The gradient is
    zero and ``_cdist_backward`` computes nothing for p = 0: 0 (it was 2 * 15 * 16 = 480)."""
    result = _count(lambda u, v: torch.cdist(u, v, p=0.0), _leaf(3, 4), _leaf(5, 4))
    assert result.forward_total == 360
    assert _op(result, "aten._cdist_backward", "backward") == 0


@pytest.mark.parametrize(
    ("p", "forward", "backward"),
    [
        # |d| max: 3 per coordinate. Backward g * sign(d) * (1 - min(1, ceil(||d| - dist|))):
        # the kernel's sign min(max(0, ceil(d)), 1) + min(max(-1, floor(d)), 0) (7), two
        # multiplies, abs, subtract, abs, ceil, min, 1 - : 15, + the difference and the add
        # into the gradient: 17 per coordinate (11 with the sign as 1; it was 5 before s23)
        (float("inf"), 15 * 12, 2 * 15 * 68),
        # |d|^3 summed, then ^(1/3): 4 per coordinate + 1. Backward d * |d|^(p - 2) * g /
        # dist^(p - 1), p - 2 and p - 1 and both powers computed on vectors: abs, subtract,
        # pow, multiply, multiply, subtract, pow, divide (8) + 2: 10 per coordinate, + the
        # test dist == 0 per pair: 41 (it was 6 * 4 + 2 = 26)
        (3.0, 15 * 17, 2 * 15 * 41),
        # |d|^1.5 summed: 4 per coordinate + the root, 17. Backward p below 2:
        # sign(d) * |d|^(p - 1) * g / dist^(p - 1) (sign 7, abs, subtract, pow, multiply,
        # multiply, subtract, pow, divide: 15), zeroed where d == 0 and p < 1 (two compares):
        # 17 + 2 = 19 per coordinate + 1 per pair: 77 (53 with the sign as 1)
        (1.5, 15 * 17, 2 * 15 * 77),
        # p = 1: g * sign(d), 1 + 7 + 1 + 1 = 10 per coordinate (4 with the sign as 1)
        (1.0, 15 * 12, 2 * 15 * 40),
        # p = 2: |d| squared and summed, 4 per coordinate + the root: 17 (it was 13, the abs
        # uncounted); backward g * d / dist, 4 per coordinate + the test dist == 0: 17
        (2.0, 15 * 17, 2 * 15 * 17),
    ],
)
def test_cdist_backward_follows_the_kernel_for_every_p(p, forward, backward):
    """(3, 4) and (5, 4): 15 pairs of 4-vectors, the gradient of each input."""
    result = _count(lambda u, v: torch.cdist(u, v, p=p), _leaf(3, 4), _leaf(5, 4))
    assert (result.forward_total, result.backward_total) == (forward, backward)


def test_pdist_p0_has_no_backward_and_inf_the_kernels():
    """``pdist`` of 5 rows of 4: 10 pairs. p = 0: 6 per coordinate, 240, backward nothing
    (the kernel returns zeros; it was 10 * (16 + 4) = 200). p = inf: forward 3 per coordinate,
    120; backward per pair the row's 17 per coordinate (the sign 7 ops, see the cdist test)
    and the other row's subtract, 18: 720 (480 with the sign as 1)."""
    zero = _count(lambda x: F.pdist(x, p=0.0), _leaf(5, 4))
    assert (zero.forward_total, zero.backward_total) == (240, 0)
    inf = _count(lambda x: F.pdist(x, p=float("inf")), _leaf(5, 4))
    assert (inf.forward_total, inf.backward_total) == (120, 720)


# -- embeddings --------------------------------------------------------------------------------

TOKENS = [[1, 2, 2], [7, 1, 3]]  # 6 tokens, 4 distinct rows


def test_embedding_max_norm_renormalises_each_distinct_row_once():
    """``Embedding(10, 4, max_norm=1.0)``: ATen's ``embedding_renorm_`` sorts the indices and
    renormalises each distinct row once: its 2-norm (2 * 4 + 1), the compare with
    ``max_norm``, ``scale = max_norm / (norm + 1e-7)`` (add, divide: 2), ``row *= scale`` (4):
    16 per row (14 before the scale's 2 were counted), 4 distinct rows of the 6 tokens: 64 (it
    was 84, a repeated token counted again). ``norm_type=1``: the norm is 2 per element, no
    root: 15 per row, 60. On meta the indices have no values: every token counts, 96 (an
    upper bound). The rows are ones (2-norm 2, 1-norm 4), all over ``max_norm``: since s24
    only the rows over it are counted as scaled (test_fpo_s24)."""

    def over(embedding):
        nn.init.ones_(embedding.weight)
        return embedding

    ids = torch.tensor(TOKENS)
    two = _count(over(nn.Embedding(10, 4, max_norm=1.0)), ids)
    assert _op(two, "aten.embedding_renorm_") == 64
    one = _count(over(nn.Embedding(10, 4, max_norm=1.0, norm_type=1.0)), ids)
    assert _op(one, "aten.embedding_renorm_") == 60
    meta = _count(nn.Embedding(10, 4, max_norm=1.0, device="meta"), ids.to("meta"))
    assert _op(meta, "aten.embedding_renorm_") == 96


BAG_IDS, BAG_OFFSETS = [1, 2, 4, 4, 3, 0, 1], [0, 3, 5]  # 3 bags, two entries padding (4)


@pytest.mark.parametrize(
    ("mode", "weighted", "forward", "backward"),
    [
        # 5 rows of 4 that are not padding: 20 adds; back each gets its bag's gradient: 20
        ("sum", False, 20, 20),
        # + one division per output element, 3 bags * 4; back per entry 1 / bag_size (5)
        # and its bag's gradient times it added (2 * 20; s41: it was counted as the forward)
        ("mean", False, 32, 5 + 40),
        # weights: + 20 multiplies each way; their gradient (a dot product of the row and its
        # bag's gradient, 2 * 4 per row that is not padding) 40
        ("sum", True, 40, 40 + 40),
        # each bag's first row taken as it is, the other 2 rows compared: 8 (s41: it was 20);
        # back one add per gradient element (the bag's max row), 12
        ("max", False, 8, 12),
    ],
)
def test_embedding_bag_skips_the_padding_entries(mode, weighted, forward, backward):
    """``EmbeddingBag(10, 4, padding_idx=4)``: ATen's kernels skip the indices equal to
    ``padding_idx`` (``if (idx != padding_idx)``), forward and backward: 5 of the 7 looked-up
    rows count (it was 7: 28 for sum)."""
    bag = nn.EmbeddingBag(10, 4, mode=mode, padding_idx=4)
    ids, offsets = torch.tensor(BAG_IDS), torch.tensor(BAG_OFFSETS)
    if weighted:
        result = _count(lambda w: bag(ids, offsets, per_sample_weights=w), _leaf(7))
    else:
        result = _count(lambda: bag(ids, offsets))
    assert (result.forward_total, result.backward_total) == (forward, backward)


def test_sparse_embedding_gradient_copies_rows_and_adds_nothing():
    """``nn.Embedding(sparse=True)``: the gradient is a sparse tensor of each looked-up row's
    copy of its gradient, nothing summed: 0 (the dense gradient adds 6 tokens * 4 = 24)."""
    ids = torch.tensor(TOKENS)
    assert _count(nn.Embedding(10, 4, sparse=True), ids).backward_total == 0
    assert _count(nn.Embedding(10, 4), ids).backward_total == 24


def test_embedding_bag_padding_on_meta_is_an_upper_bound():
    """On meta the indices have no values: all 7 rows count, sum 28 each way."""
    bag = nn.EmbeddingBag(10, 4, mode="sum", padding_idx=4, device="meta")
    ids, offsets = torch.tensor(BAG_IDS, device="meta"), torch.tensor(BAG_OFFSETS, device="meta")
    result = _count(lambda: bag(ids, offsets))
    assert (result.forward_total, result.backward_total) == (28, 28)


# -- batched products ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # one addmm_ per batch: the product 2 * 3 * 4 * 5 = 120 and the add into the output,
        # 15, twice: 270 (it was 285, the add into the input counted twice)
        ({}, 240 + 30),
        ({"alpha": 2.0}, 240 + 30 + 30),  # alpha scales each batch's product: + 2 * 15
        ({"beta": 0.5}, 240 + 30 + 15),  # beta scales the input once, in the first addmm_
        ({"beta": 0.0}, 240 + 15),  # the first addmm_ adds nothing: beta 0 ignores the input
    ],
)
def test_addbmm_counts_its_loop_of_addmm(kwargs, expected):
    """``torch.addbmm(c, a, b)``, c (3, 5), a (2, 3, 4), b (2, 4, 5): ATen's ``addbmm_impl_``
    runs ``result.addmm_(a[i], b[i], beta, alpha)`` for each of the 2 batches, beta 1 after
    the first."""
    result = _count(
        lambda c, x, y: torch.addbmm(c, x, y, **kwargs),
        torch.randn(3, 5),
        torch.randn(2, 3, 4),
        torch.randn(2, 4, 5),
        backward=False,
    )
    assert result.total == expected


# -- attention ----------------------------------------------------------------------------------


def test_multihead_attention_with_kdim_vdim_and_weights_forward_and_backward():
    """``MultiheadAttention(8, 2, kdim=3, vdim=5, batch_first=True)``, queries (2, 4, 8), keys
    (2, 6, 3), values (2, 6, 5), ``need_weights=True`` (the explicit path, not SDPA).
    Projections (a matmul and a bias add each): q 8 tokens 2 * 8 * 8 * 8 = 1,024 + 64, k 12
    tokens 2 * 12 * 3 * 8 = 576 + 96, v 2 * 12 * 5 * 8 = 960 + 96; 4 heads of d = 4: q scaled
    64, scores 2 * 4 * 4 * 6 * 4 = 768, softmax 5 * 96 - 16 rows = 464 (ATen's kernel; 480
    before s35), times V 768; the out-projection ``addmm`` 2 * 8 * 8 * 8 + 64 = 1,088; the
    weights averaged over the 2 heads 96 + 48. Forward 6,112 (6,128 before s35). Backward:
    every matmul twice (grad input and weight) 2 * 2,560 + 2 * 1,024, the bias gradients 64 +
    96 + 96 + 64, the two score products twice 3,072, softmax 4 * 96 - 16, the scaling 64; the
    weights' mean is not on the loss's path: 10,992 (11,008)."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, kdim=3, vdim=5, batch_first=True)
    result = _count(lambda q, k, v: mha(q, k, v)[0], _leaf(2, 4, 8), _leaf(2, 6, 3), _leaf(2, 6, 5))
    assert (result.forward_total, result.backward_total) == (6_112, 10_992)


def test_sdpa_grouped_query_attention_on_cpu_flash_and_math_agree():
    """``scaled_dot_product_attention(q, k, v, enable_gqa=True)``, q (2, 6, 5, 4), k and v
    (2, 2, 7, 4): 6 query heads share 2 key heads, 5 queries, 7 keys. The two products over
    the query heads 2 * 2 * 6 * 5 * 7 * 4 = 3,360 each; Q and K scaled as the math path does
    it, K after its heads are repeated: 240 + 336; softmax (``_safe_softmax``: ATen's 5 per
    score less 1 per row, a compare with ``-inf`` per score) 6 * 420 - 60 = 2,460. Forward
    9,756 on CPU's flash kernel as on meta's math path (9,396 before s35: softmax 5 * 420).
    Backward: four products 13,440, softmax 4 * 420 - 60, the scalings 576, the repeated
    heads' gradients summed back (k and v, 336 each): 16,308 (16,368)."""
    for device in ("cpu", "meta"):
        q, k = _leaf(2, 6, 5, 4, device=device), _leaf(2, 2, 7, 4, device=device)
        v = _leaf(2, 2, 7, 4, device=device)
        result = _count(
            lambda a, b, c: F.scaled_dot_product_attention(a, b, c, enable_gqa=True), q, k, v
        )
        assert (result.forward_total, result.backward_total) == (9_756, 16_308)
