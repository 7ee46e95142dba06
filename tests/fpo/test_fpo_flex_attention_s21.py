"""``flex_attention`` is counted as eager execution runs it (session 21).

Called outside ``torch.compile``, ``flex_attention`` compiled a wrapper around its op, which
refused to trace under the counter ("torch.compile with fullgraph=True found no compiled
frames"); with torch's eager switch set it ran as ``higher_order.flex_attention``, an op without
a rule (0 FPO, the count a lower bound). The counter now makes it call the op eagerly and counts
the op's dense implementation, torch's own eager kernel (``sdpa_dense``), derived here by hand
for B=1, H=2 heads, M=N=8 positions, D=4 (R = B x H x M = 16 rows of N = 8 scores):

* ``Q K^T`` and the product with ``V``: ``2 x B H M N D`` each, 1,024 + 1,024;
* the scale: 1 per score, 128; a causal ``score_mod`` compares integer positions (0) and
  ``where`` moves values (0); a block mask's ``mask_mod`` likewise;
* the masked scores' log-sum-exp (an output of the op): per row max 8, subtract 8, exp 8,
  sum 8, ATen's test of the max for an infinity (``abs() == INFINITY``) 2, log 1, add back 1:
  36, so 576 (544 before s34 counted that test); the fully-masked-row test ``== -inf``: 128;
  the maximum (an output too): 128;
* the softmax (``_safe_softmax``): ATen's softmax, 5 per score less 1 per row (the max and
  the sum start from their first values, ``1 / sum`` once per row), and a compare with
  ``-inf`` per score: 6 x 128 - 16 = 752 (640 before s35, 5 per score); log-sum-exp and
  maximum divided by ``log 2``: 16 + 16.

3,792 in all (3,680 before s35).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
flex = pytest.importorskip("torch.nn.attention.flex_attention")

from greenprint.fpo import FPOCounter  # noqa: E402

BY_HAND = {
    "aten.bmm": 2 * 1024,
    "aten.mul": 128,
    "aten.logsumexp": 576,
    "aten.eq": 128,
    "aten.max": 128,
    "aten._safe_softmax": 6 * 128 - 16,
    "aten.div": 32,
}


def _causal(score, b, h, q_idx, kv_idx):
    return torch.where(q_idx >= kv_idx, score, -float("inf"))


def _causal_mask(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _qkv(device="cpu"):
    torch.manual_seed(0)
    return tuple(torch.randn(1, 2, 8, 4, device=device) for _ in range(3))


def test_flex_attention_with_a_score_mod_is_counted_from_its_dense_kernel():
    q, k, v = _qkv()
    expected = flex.flex_attention(q, k, v, score_mod=_causal)
    with FPOCounter() as counter:
        out = flex.flex_attention(q, k, v, score_mod=_causal)
    result = counter.result
    assert result.unknown_ops == {}
    assert {op: n for op, n in result.by_op.items() if n} == BY_HAND
    assert result.total == 3792
    assert torch.allclose(out, expected, atol=1e-6)  # the same attention, counted


def test_a_block_mask_computes_every_score_in_eager_execution():
    q, k, v = _qkv()
    mask = flex.create_block_mask(_causal_mask, 1, 2, 8, 8, device="cpu")
    with FPOCounter() as counter:
        flex.flex_attention(q, k, v, block_mask=mask)
    assert counter.result.unknown_ops == {}
    assert counter.result.total == 3792  # the mask compares integer positions: 0


def test_the_eager_switch_is_put_back_after_counting():
    before = flex._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG
    with FPOCounter():
        assert flex._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG is True
    assert flex._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG == before
