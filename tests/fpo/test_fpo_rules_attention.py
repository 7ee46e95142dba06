"""The fused transformer fast paths and the grouped matrix product, against hand counts."""

from __future__ import annotations

import contextlib

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo.rules import RULES  # noqa: E402

MHA_OP = "aten._native_multi_head_attention"
LAYER_OP = "aten._transformer_encoder_layer_fwd"


def count(fn):
    with gp.FPOCounter() as c:
        fn()
    return c.result


@contextlib.contextmanager
def slow_path():
    """Eval under no_grad with the fused fast path switched off: the op-by-op slow path."""
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


def fast_and_slow(fn):
    """The counts of fn() under no_grad with the fast path on, then off."""
    with torch.no_grad():
        fast = count(fn)
        with slow_path():
            slow = count(fn)
    return fast, slow


X = torch.randn(3, 7, 16)  # (B, L, E) = (3, 7, 16): 21 tokens, 336 elements
PADDING = torch.zeros(3, 7, dtype=torch.bool)
PADDING[:, -2:] = True
CAUSAL = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1)
MASKS = {
    "none": {},
    "key_padding": {"key_padding_mask": PADDING},
    "attn_mask": {"attn_mask": CAUSAL},
    "both": {"attn_mask": CAUSAL, "key_padding_mask": PADDING},
}


# -- nn.MultiheadAttention ---------------------------------------------------------------------


def test_fused_multi_head_attention_by_hand():
    """E = 16, 4 heads, B = 3, L = S = 7, need_weights=False, no mask.

    In-projection of q, k, v: 3 * (2*21*16*16 + 336 bias) = 33,264.
    Attention: the two products 2 * (2*B*L*S*E) = 9,408; scaling q and k 336 + 336; softmax
    as the slow path's (CPU flash attention, counted as the math path's ``_safe_softmax``:
    ATen's softmax, 5 per score less 1 per row, and a compare with ``-inf`` per score) over
    P = B*h*L*S = 588 scores in R = B*h*L = 84 rows: 6 * 588 - 84 = 3,444 (5 per score,
    2,940, before s35). Sum 13,524.
    Out-projection: 2*21*16*16 + 336 = 11,088. Total 57,876 (57,372 before s35).
    """
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        r = count(lambda: mha(X, X, X, need_weights=False))
    assert r.calls == {MHA_OP: 1}  # the fast path ran
    assert r.total == 33_264 + 13_524 + 11_088 == 57_876
    assert r.unknown_ops == {}


def test_fused_attention_with_weights_by_hand():
    """need_weights=True (averaged over the heads): the explicit path's count.

    As above but the attention is: scale q only (336), the two products (9,408), softmax
    (``_softmax``, 5 * 588 - 84 = 2,856; 2,940 before s35), and the mean over the heads (588
    adds + 3*7*7 = 147 divisions): 13,335.
    """
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        r = count(lambda: mha(X, X, X))
    assert r.total == 33_264 + 336 + 9_408 + 2_856 + 588 + 147 + 11_088


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("need_weights", [False, True])
def test_fused_attention_equals_the_slow_path_count(need_weights, average, mask):
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    kwargs = {"need_weights": need_weights, "average_attn_weights": average, **MASKS[mask]}
    fast, slow = fast_and_slow(lambda: mha(X, X, X, **kwargs))
    assert MHA_OP in fast.calls and MHA_OP not in slow.calls
    assert fast.total == slow.total
    assert fast.unknown_ops == slow.unknown_ops == {}


def test_fused_attention_is_outside_matmul_total_as_flopcountermode_does_not_count_it():
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        r = count(lambda: mha(X, X, X, need_weights=False))
        with FlopCounterMode(display=False) as f:
            mha(X, X, X, need_weights=False)
    assert r.matmul_total == f.get_total_flops() == 0
    assert r.total > 0


# -- nn.TransformerEncoderLayer ----------------------------------------------------------------


def test_fused_encoder_layer_by_hand():
    """d_model 16, 4 heads, feed-forward 40, ReLU, on (3, 7, 16): 21 rows, N = 336.

    Self-attention as test_fused_multi_head_attention_by_hand: 57,876. Feed-forward:
    linear 16->40 (2*21*16*40 + 840 = 27,720), ReLU 840, linear 40->16 (2*21*40*16 + 336 =
    27,216). Two residual adds 672. Two layer norms as ATen's CPU kernel runs them (s34; 7 per
    element + 4 per row before, 4,872): per row of 16 float32 values, two vectors of 8, the
    Welford 96, its chunk merged 65, the 8 lanes 72, ``m2 / N``, rstd 3, ``-mean``: 238; then
    4 per element: 2 * (21 * 238 + 1,344) = 12,684. Total 127,008 (126,504 before s35).
    """
    layer = nn.TransformerEncoderLayer(16, 4, 40, batch_first=True).eval()
    with torch.no_grad():
        r = count(lambda: layer(X))
    assert r.calls == {LAYER_OP: 1}
    assert r.total == 57_876 + 27_720 + 840 + 27_216 + 672 + 12_684 == 127_008


@pytest.mark.parametrize("mask", ["none", "src_key_padding_mask", "src_mask"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_fused_encoder_layer_equals_the_slow_path_count(activation, norm_first, mask):
    layer = nn.TransformerEncoderLayer(
        16, 4, 40, batch_first=True, activation=activation, norm_first=norm_first
    ).eval()
    kwargs = {
        "none": {},
        "src_key_padding_mask": {"src_key_padding_mask": PADDING},
        "src_mask": {"src_mask": CAUSAL},
    }[mask]
    fast, slow = fast_and_slow(lambda: layer(X, **kwargs))
    assert LAYER_OP in fast.calls and LAYER_OP not in slow.calls
    assert fast.total == slow.total
    assert fast.unknown_ops == slow.unknown_ops == {}


def test_fused_encoder_stack_equals_the_slow_path_count():
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(16, 4, 40, batch_first=True), 2, enable_nested_tensor=False
    ).eval()
    fast, slow = fast_and_slow(lambda: encoder(X, mask=CAUSAL))
    assert fast.calls[LAYER_OP] == 2
    assert fast.total == slow.total


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_encoder_with_padding_mask_runs_nested_and_counts_the_longest_sequence():
    """With a padding mask, nn.TransformerEncoder in eval packs the batch into a nested tensor
    and the fused layers compute only up to the longest sequence (here 5 of 7 positions, with
    no mask left to add); the slow path computes on all 7 with the mask. The nested count is
    the layers' count on a (3, 5, 16) batch."""
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 40, batch_first=True), 2)
    encoder.eval()
    with torch.no_grad():
        r = count(lambda: encoder(X, src_key_padding_mask=PADDING))
    layer = encoder.layers[0]
    with torch.no_grad():
        one = count(lambda: layer(X[:, :5]))
    assert r.unknown_ops == {}
    assert r.calls[LAYER_OP] == 2
    assert r.total == 2 * one.total


def test_encoder_layer_rule_formula_reads_gelu_and_mask_flags():
    rule = RULES[LAYER_OP].fn
    w1 = (40, 16)
    args = [(3, 7, 16), 16, 4, None, None, None, None]
    tail = [1e-5, None, None, None, None, w1, None, None, None]
    relu = rule(*args, False, False, *tail)
    gelu = rule(*args, True, False, *tail)
    masked = rule(*args, False, False, *tail, (3, 7))
    assert gelu - relu == 4 * 21 * 40  # GELU 5 per hidden element, ReLU 1
    assert masked - relu == 3 * 4 * 7 * 7  # one add per score


# -- _grouped_mm (mixture-of-experts) ----------------------------------------------------------


def offsets(*ends):
    return torch.tensor(ends, dtype=torch.int32)


def test_grouped_mm_rows_split_by_expert_is_the_sum_of_the_per_expert_products():
    """(8, 8) tokens x (2, 8, 16) experts, expert 0 takes rows 0-2, expert 1 rows 3-7:
    2*3*8*16 + 2*5*8*16 = 2*8*8*16 = 2,048, what the two separate products count."""
    a, b = torch.randn(8, 8), torch.randn(2, 8, 16)
    r = count(lambda: torch._grouped_mm(a, b, offs=offsets(3, 8)))
    loop = count(lambda: (a[:3] @ b[0], a[3:] @ b[1]))
    assert r.total == loop.total == 2_048
    assert r.matmul_total == 0  # FlopCounterMode does not count _grouped_mm


def test_grouped_mm_other_layouts_by_hand():
    # (G, M, K) x (G, K, N), no offsets: a batched product, 2*2*4*8*16
    assert count(lambda: torch._grouped_mm(torch.randn(2, 4, 8), torch.randn(2, 8, 16))).total == (
        2_048
    )
    # (M, K) x (K, N) with K split in two groups -> (2, M, N): 2 * (2*4*8*8) = 2*4*16*8
    r = count(
        lambda: torch._grouped_mm(torch.randn(4, 16), torch.randn(16, 8), offs=offsets(8, 16))
    )
    assert r.total == 1_024
    # (G, M, K) x (K, N) with N split: 2 * (2*4*8*8)
    r = count(
        lambda: torch._grouped_mm(torch.randn(2, 4, 8), torch.randn(8, 16), offs=offsets(8, 16))
    )
    assert r.total == 1_024


def test_grouped_mm_bias_adds_one_per_output_element():
    rule = RULES["aten._grouped_mm"].fn
    assert rule((8, 8), (2, 8, 16), (2,), None, out_shape=(8, 16)) == 2_048
    assert rule((8, 8), (2, 8, 16), (2,), (2, 16), out_shape=(8, 16)) == 2_048 + 128


def test_grouped_mm_backward_is_two_grouped_products():
    """grad_a = grad x b^T per group (2,048) and grad_b = a^T x grad per group (2,048)."""
    a = torch.randn(8, 8, requires_grad=True)
    b = torch.randn(2, 8, 16, requires_grad=True)

    def step():
        out = torch._grouped_mm(a, b, offs=offsets(3, 8))
        out.backward(torch.ones(8, 16))

    r = count(step)
    assert r.forward_total == 2_048
    assert r.backward_total == 2 * 2_048
    assert r.calls["aten._grouped_mm"] == 3


def test_grouped_mm_on_meta_counts_as_on_cpu():
    a = torch.randn(8, 8, dtype=torch.bfloat16, device="meta")
    b = torch.randn(2, 8, 16, dtype=torch.bfloat16, device="meta")
    offs = torch.empty(2, dtype=torch.int32, device="meta")
    assert count(lambda: torch._grouped_mm(a, b, offs=offs)).total == 2_048


def test_vit_eval_counts_the_same_on_cpu_fused_and_on_meta_unfused():
    """On CPU in eval under no_grad nn.MultiheadAttention runs fused; on the meta device it runs
    the slow path: the counts agree."""
    import fpo_zoo as zoo

    torch.manual_seed(0)
    model = zoo.vit_tiny().eval()
    with torch.no_grad():
        cpu = gp.count_fpo(model, torch.randn(2, 3, 16, 16), backward=False, strict=True)
        model.to("meta")
        meta = gp.count_fpo(model, torch.randn(2, 3, 16, 16, device="meta"), backward=False)
    assert MHA_OP in cpu.calls and MHA_OP not in meta.calls
    assert cpu.total == meta.total
