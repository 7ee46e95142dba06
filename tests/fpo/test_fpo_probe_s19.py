"""A new user counts the FPO of the models people train, and every figure is proved (s19).

Each expected count is derived by hand from the op's maths in a comment beside it, under the
conventions of docs/fpo.md: a multiply-accumulate is 2 FPO (``2mkn`` for a product), reducing
n values costs n adds, one FPO per elementwise arithmetic op or elementary function, a bias add
1 per output element. Tiny models on CPU; transformers models built from config objects.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pathlib import Path  # noqa: E402

from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo._rules_norm import layer_norm_backward_fpo, layer_norm_forward_fpo  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


# -- recurrent layers: a padded batch packed inside the model's forward ------------------------


def _lstm_token(i: int, h: int) -> int:
    """One LSTM step for one token, op by op (what the packed path runs per token).

    gates = x W_ih^T + b_ih (``2*I*4H + 4H``) + (h W_hh^T + b_hh) (``2*H*4H + 4H``), their sum
    ``4H``; sigmoid of three gates ``12H`` (4 each: ATen's kernel ``(1 + exp(-x))
    .reciprocal()``; ``3H`` before s35), tanh of the fourth ``H``; ``c' = f*c + i*g`` ``3H``;
    ``h' = o * tanh(c')`` ``2H``.
    """
    return 8 * i * h + 4 * h + 8 * h * h + 4 * h + 4 * h + 13 * h + 3 * h + 2 * h


def _gru_token(i: int, h: int) -> int:
    """One GRU step for one token, op by op.

    gi = x W_ih^T + b_ih (``2*I*3H + 3H``), gh = h W_hh^T + b_hh (``2*H*3H + 3H``);
    ``r = sigmoid(i_r + h_r)`` 5H, ``z = sigmoid(i_z + h_z)`` 5H (a sigmoid 4: ATen's kernel;
    2H each before s35), ``n = tanh(i_n + r*h_n)`` 3H, ``h' = n + z*(h - n)`` 3H.
    """
    return 6 * i * h + 3 * h + 6 * h * h + 3 * h + 5 * h + 5 * h + 3 * h + 3 * h


@pytest.mark.parametrize(("cls", "per_token"), [(nn.LSTM, _lstm_token), (nn.GRU, _gru_token)])
def test_a_batch_packed_in_the_forward_counts_its_tokens_and_no_unknown_op(cls, per_token):
    """A user's tagger packs its padded batch inside ``forward``: lengths 5, 3, 2 (10 tokens).

    ``aten._pack_padded_sequence`` had no rule, so every such count was listed as a lower bound
    (``unknown_ops``); it is a gather of the real tokens: 0 FPO.
    Forward, 2 layers x 2 directions: ``2 * 10 * (token(I=3) + token(I=2H=8))``. Padded steps
    cost nothing: the same batch padded to 9 steps counts the same, forward and backward.
    """

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
            return self.head(out)

    model = Tagger()
    lengths = torch.tensor([3, 5, 2])
    results = []
    for steps in (5, 9):
        x = torch.randn(3, steps, 3, requires_grad=True)
        results.append(gp.count_fpo(model, x, lengths))
    five, nine = results
    assert five.unknown_ops == {} and "aten._pack_padded_sequence" in five.zero_ops
    assert five.forward_by_module["rnn"] == 2 * 10 * (per_token(3, 4) + per_token(8, 4))
    # the head runs on the unpacked output: 3 x 5 positions (2 x 8 products + a bias)
    assert five.forward_by_module["head"] == 3 * 5 * 2 * (2 * 8 + 1)
    assert five.by_module["rnn"] == nine.by_module["rnn"]
    assert five.backward_by_module["rnn"] == nine.backward_by_module["rnn"] > 0


# -- the per-module table adds up to the total -------------------------------------------------


def _rows(table: str) -> dict[str, list[str]]:
    """The table's rows by label (stripped), each the cells after the label."""
    rows = {}
    for line in table.split("\n\n", 1)[0].splitlines()[1:]:
        label, *cells = line.strip().split("  ")
        rows[label.strip()] = [c.strip() for c in cells if c.strip()]
    return rows


def _fpo(cell: str) -> int:
    """'14 FPO' -> 14 (the tests keep every figure under 1,000 FPO, which prints exactly)."""
    assert cell.endswith(" FPO") and cell[0].isdigit(), cell
    return int(cell.removesuffix(" FPO"))


def test_the_module_table_shows_own_ops_the_loss_and_the_optimizer_so_its_rows_add_up():
    """A residual block ``x + lin2(relu(lin1(x)))`` with ``F.relu``, an MSE loss and SGD.

    The table listed the model (its share under 100%), lin1 and lin2, and nothing for the relu
    and the residual add (in the block's own forward), the loss or the optimizer: its rows did
    not add up to the total. Now: ``(own ops)`` forward relu 8 + add 6 = 14, backward relu 8
    (the residual's gradient is passed through: 0); lin1 forward ``2*4*(2*3 + 1)`` = 56,
    backward grad_weight ``2*2*3*4`` 48 + bias 8 (the input needs no grad) = 56; lin2 forward
    ``2*3*(2*4 + 1)`` = 54, backward grad_input 48 + grad_weight 48 + bias 6 = 102;
    ``(optimizer)`` SGD ``p - lr*g`` 2 per parameter element, 2 * 31 = 62;
    ``(outside the model)`` the loss, the rest.
    """

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2 = nn.Linear(3, 4), nn.Linear(4, 3)

        def forward(self, x):
            return x + self.lin2(torch.nn.functional.relu(self.lin1(x)))

    model = Block()
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gp.FPOCounter(model) as counter:
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    result = counter.result
    rows = _rows(result.table())
    assert list(rows) == [
        "(model)", "(own ops)", "lin1", "lin2", "(outside the model)", "(optimizer)"
    ]  # fmt: skip
    forward, backward, total = (_fpo(c) for c in rows["(own ops)"][:3])
    assert (forward, backward, total) == (14, 8, 22)
    assert [_fpo(c) for c in rows["lin1"][:3]] == [56, 56, 112]
    assert [_fpo(c) for c in rows["lin2"][:3]] == [54, 102, 156]
    assert rows["(optimizer)"][:3] == ["-", "-", "62 FPO"]
    model_total = _fpo(rows["(model)"][2])
    assert model_total == 22 + 112 + 156 == result.by_module[""]
    outside = _fpo(rows["(outside the model)"][2])
    assert model_total + outside + 62 == result.total
    assert rows["(model)"][3] != "100.0%"  # the model's share is less than all of it


def test_a_module_whose_only_fpo_are_in_the_backward_is_listed_under_its_parent():
    """GPT-2's token and position embeddings do arithmetic only in the backward (their
    gradients), so they were listed last, after ``lm_head``, indented as if inside it; each
    module is now listed under its parent."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    result = gp.count_fpo(model, torch.randint(0, 100, (2, 6)))
    labels = [line.split()[0] for line in result.table(depth=2).split("\n\n")[0].splitlines()]
    assert labels[-1] == "lm_head" and labels.index("wte") < labels.index("lm_head")
    assert labels[labels.index("transformer") + 1 : labels.index("lm_head")] == [
        "(own", "drop", "h", "ln_f", "wpe", "wte"
    ]  # fmt: skip


# -- torch.compile ------------------------------------------------------------------------------


def test_a_compiled_model_counts_its_eager_program_without_a_warning_about_the_counters_hooks():
    """``torch.compile(model)`` counted inside the counter runs its eager code (docs/fpo.md,
    Limits): Linear(4, 8), ReLU, Linear(8, 2) on a (3, 4) batch is forward ``3*8*(2*4 + 1)``
    216 + relu 24 + ``3*2*(2*8 + 1)`` 102 = 342, backward grad_weight ``2*3*4*8`` 192 + bias
    24, relu 24, grad_input and grad_weight ``2*3*8*2`` 96 each + bias 6 = 438, as uncompiled.

    torch warned, from inside greenprint, that the 'global hooks on modules' fire an extra time
    for the compiled wrapper: the counter's hooks, which only track the module stack. The
    warning is no longer shown while counting (and still is elsewhere).
    """
    import warnings

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    compiled = torch.compile(model)
    x = torch.randn(3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = gp.count_fpo(compiled, x)
    assert (result.forward_total, result.backward_total, result.unknown_ops) == (342, 438, {})
    assert result.by_module["0"] == 216 + 192 + 24
    assert not [w for w in caught if "global hooks" in str(w.message)], caught[0].message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("Using `torch.compile(module)` when there are global hooks", stacklevel=1)
    assert len(caught) == 1  # the filter ended with the count


# -- mixed precision ----------------------------------------------------------------------------


def test_a_mixed_precision_step_with_a_grad_scaler_is_counted_in_full():
    """The AMP recipe: autocast float16, ``GradScaler`` scale, backward, step, update.

    The scaler's two kernels had no rule, so every such training step was a lower bound.
    Linear(4, 2) has 10 parameter elements: unscale tests and multiplies each gradient element
    (2 x 10 = 20), update tests ``found_inf`` and multiplies the one-element scale (2); AdamW
    14 per element + 1 per parameter tensor for its step count (140 + 2). The linear layer:
    forward ``3*2*(2*4 + 1)`` = 54, backward grad_weight ``2*3*4*2`` 48 + bias 6 (the input
    needs no grad).
    """
    model = nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x, y = torch.randn(3, 4), torch.randn(3, 2)
    with gp.FPOCounter(model) as counter:
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    result = counter.result
    assert result.unknown_ops == {}
    assert result.by_op["aten._amp_foreach_non_finite_check_and_unscale_"] == 20
    assert result.by_op["aten._amp_update_scale_"] == 2
    assert result.optimizer_total == 14 * 10 + 2  # the step was taken: no inf at this scale
    assert (result.forward_by_module[""], result.backward_by_module[""]) == (54, 54)


# -- an optimizer step with a closure -----------------------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "LBFGS"])
def test_a_closure_passed_to_the_optimizer_counts_as_forward_and_backward_of_the_model(name):
    """``optimizer.step(closure)`` (LBFGS needs one; any optimizer takes one) runs the forward,
    loss and backward inside the step: all of it was counted as the optimizer's, and none of it
    charged to the model (``by_module`` empty, a table of one '(optimizer)' row).

    Per closure call, Linear(4, 2) on (3, 4): forward ``3*2*(2*4 + 1)`` = 54; MSE loss 2 per
    element (subtract, square) + the sum's 6 adds + the mean's division = 19; backward: the
    loss's ``(2 / n) (x - y) g`` 3 per element = 18 (ATen folds the 1 / n into the scalar; it
    was counted 4, 24), the layer's grad_weight ``2*3*4*2`` 48 + bias 6 = 54. SGD's update
    ``p - lr*g`` is 2 per parameter element: 20.
    """
    model = nn.Linear(4, 2)
    x, y = torch.randn(3, 4), torch.randn(3, 2)
    optimizer = getattr(torch.optim, name)(model.parameters(), lr=0.01)
    calls = []

    def closure():
        calls.append(1)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with gp.FPOCounter(model) as counter:
        optimizer.step(closure)
    result, k = counter.result, len(calls)
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (73 * k, 72 * k)
    assert result.by_module[""] == (54 + 54) * k
    if name == "SGD":
        assert k == 1 and result.optimizer_total == 20
    else:  # LBFGS's own arithmetic (directions, dot products) between the calls
        assert k > 1 and result.optimizer_total == result.total - (73 + 72) * k > 0


# -- Hugging Face transformers, built from configs ----------------------------------------------

B, S, E, FF, L, H = 2, 6, 32, 64, 2, 2  # batch, tokens, hidden, intermediate, layers, heads
T, SCORES = B * S, B * H * S * S  # token positions; attention scores per layer
ROWS = B * H * S  # rows of scores per layer: ATen's softmax is 5 per score less 1 per row (s35)
# ATen's CPU kernel (s34; it was 7 * T * E + 4 * T): Welford moments of each row of E float32
# values in vectors of 8 (6 per value + the merges), rstd and -mean, 4 per element
LAYER_NORM = layer_norm_forward_fpo(T * E, T, 8)


def _bert(impl):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=E, num_hidden_layers=L, num_attention_heads=H,
        intermediate_size=FF, max_position_embeddings=16, attn_implementation=impl,
    )  # fmt: skip
    return transformers.BertModel(config, add_pooling_layer=False).eval()


def _bert_eval_fpo(impl):
    """BERT's forward in eval, from its maths.

    Embeddings: word + position + token type, 2 adds per element, then a layer norm. Per
    layer: Q, K, V projections ``3 T E (2E + 1)``; ``QK^T`` and ``PV`` ``2 * 2 b h s^2 d``
    (``d = E/H``); the scaling: eager multiplies the scores (1 per score), sdpa's math path
    scales Q and K (1 per element of each, ``2 T E``); the padding mask added (1 per score);
    softmax: eager ATen's ``_softmax``, 5 per score less 1 per row (its max and sum start
    from their first values, ``1 / sum`` once per row), sdpa's math path ``_safe_softmax``,
    the same and a compare with ``-inf`` per score (5 per score for both before s35); the
    output projection ``T E (2E + 1)``, residual add ``T E``, layer
    norm; the feed-forward ``T FF (2E + 1)``, GELU (erf form) 5 per element,
    ``T E (2 FF + 1)``, residual add, layer norm.
    """
    embeddings = 2 * T * E + LAYER_NORM
    scaling = SCORES if impl == "eager" else 2 * T * E
    attention = 3 * T * E * (2 * E + 1) + 2 * 2 * SCORES * (E // H) + scaling + SCORES
    softmax = 5 * SCORES - ROWS if impl == "eager" else 6 * SCORES - ROWS
    attention += softmax + T * E * (2 * E + 1) + T * E + LAYER_NORM
    feed_forward = T * FF * (2 * E + 1) + 5 * T * FF + T * E * (2 * FF + 1) + T * E + LAYER_NORM
    return embeddings + L * (attention + feed_forward)


def test_bert_with_a_padding_mask_eager_and_sdpa_counted_from_its_maths():
    """docs/fpo.md gives the two counts and says why they differ: 456,696 (eager) and 458,232
    (sdpa), ``2 L T E`` = 1,536 apart (sdpa scales Q and K, ``2 T E``, where eager scales the
    scores; its ``_safe_softmax`` compares each score with ``-inf``); the padded positions
    cost as much as tokens (456,744 and 457,992 before s35 counted softmax 5 per score;
    442,704 and 443,952 before s34 counted the layer norms as ATen's kernel runs them)."""
    ids = torch.randint(0, 100, (B, S))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    counts = {}
    for impl in ("eager", "sdpa"):
        with torch.no_grad():
            result = gp.count_fpo(_bert(impl), ids, attention_mask=mask, backward=False)
        assert result.unknown_ops == {} and result.total == _bert_eval_fpo(impl)
        counts[impl] = result.total
    assert counts == {"eager": 456_696, "sdpa": 458_232}
    assert counts["sdpa"] - counts["eager"] == L * 2 * T * E == 1_536
    text = " ".join((Path(__file__).parents[2] / "docs" / "fpo.md").read_text().split())
    assert "is 458,232 FPO with sdpa and 456,696 with eager in eval, 1,536 apart" in text


def test_gpt2_training_step_forward_counted_from_its_maths():
    """A GPT-2 decoder (eager attention) in train mode, forward, with a padding mask.

    Token + position embeddings (1 add per element), dropout 2 per element (the embeddings',
    the attention probabilities', the two residual branches'); per layer: layer norm,
    ``c_attn`` ``T 3E (2E + 1)``, the two products, scores scaled (1) and masked (1),
    softmax 5 per score less 1 per row (s35), ``c_proj`` ``T E (2E + 1)``, residual add,
    layer norm, ``c_fc``
    ``T 4E (2E + 1)``, GPT-2's GELU written in Python 9 ops per element (``x^3`` a pow, ATen's
    ``x * x * x``, 2 (1 before s36), ``0.044715 *``, ``x +``, ``sqrt(2/pi) *``, tanh, ``1 +``,
    ``0.5 * x``, the product), ``c_proj``
    ``T E (2 * 4E + 1)``, residual add; the final layer norm and the tied head ``2 T E V``.
    """
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        vocab_size=100, n_embd=E, n_layer=L, n_head=H, n_positions=16, bos_token_id=0,
        eos_token_id=0, attn_implementation="eager",
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).train()
    ids = torch.randint(0, 100, (B, S))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    result = gp.count_fpo(model, ids, attention_mask=mask)
    dropout = 2 * T * E
    layer = LAYER_NORM + T * 3 * E * (2 * E + 1) + 2 * 2 * SCORES * (E // H) + 2 * SCORES
    layer += 5 * SCORES - ROWS + 2 * SCORES + T * E * (2 * E + 1) + dropout + T * E
    layer += LAYER_NORM + T * 4 * E * (2 * E + 1) + 9 * T * 4 * E + T * E * (2 * 4 * E + 1)
    layer += dropout + T * E
    expected = T * E + dropout + L * layer + LAYER_NORM + 2 * T * E * 100
    assert result.unknown_ops == {} and result.forward_total == expected
    assert result.backward_total > 0 and result.by_module[""] == result.total


def test_a_llama_decoder_with_grouped_query_attention_counted_from_its_maths():
    """LlamaForCausalLM from a config: hidden 32, 4 heads of 8, 2 key/value heads, MLP 64,
    2 layers, vocabulary 100, no biases; eval, 2 x 6 tokens, sdpa and eager.

    Rotary table: ``pos * inv_freq`` (6 x 4), cos and sin of the doubled (6, 8) table, each
    times ``attention_scaling``: 24 + 4 x 48 = 216. Per layer: two RMS norms ``4N + 3T``
    (square, mean's N adds + T divisions, ``+ eps`` and rsqrt per row, two multiplies); the
    projections ``2 T E (E + 2 * 16 + E)``; rotary on Q and K, ``x cos + rotate_half(x) sin``:
    2 multiplies and an add per element, a negation per half; attention: ``QK^T`` and ``PV``
    ``2 b h s^2 d`` each over the 4 query heads, causal mask 1 per score, softmax 5 per score
    less 1 per row (eager's ``_softmax``) or 6 less 1 (sdpa's ``_safe_softmax``, a compare
    with ``-inf`` per score more; s35, 5 per score for both before), sdpa's math path scaling
    Q and K repeated to the query heads (``2 T E``), eager the scores (1 per score); two
    residual adds; gate, up and down projections ``2 T E FF`` each, SiLU 4 (ATen's kernel
    ``x / (1 + exp(-x))``; 2 before s35) and the gating multiply 1 per element of ``T FF``.
    The final norm and the head
    ``2 T E V``.
    """
    transformers = pytest.importorskip("transformers")
    heads, kv_heads, d, vocab = 4, 2, 8, 100
    q_elems, k_elems, n_scores = B * heads * S * d, B * kv_heads * S * d, B * heads * S * S
    rows = B * heads * S
    rms = 4 * T * E + 3 * T

    def rotary(elements):
        return 2 * elements + elements // 2 + elements

    counts = {}
    for impl in ("sdpa", "eager"):
        config = transformers.LlamaConfig(
            vocab_size=vocab, hidden_size=E, intermediate_size=FF, num_hidden_layers=L,
            num_attention_heads=heads, num_key_value_heads=kv_heads,
            max_position_embeddings=16, attn_implementation=impl,
        )  # fmt: skip
        model = transformers.LlamaForCausalLM(config).eval()
        with torch.no_grad():
            result = gp.count_fpo(model, torch.randint(0, vocab, (B, S)), backward=False)
        scaling = 2 * T * E if impl == "sdpa" else n_scores
        softmax = 6 * n_scores - rows if impl == "sdpa" else 5 * n_scores - rows
        attention = 2 * 2 * n_scores * d + scaling + n_scores + softmax
        layer = 2 * rms + 2 * T * E * (E + 2 * kv_heads * d + E) + rotary(q_elems)
        layer += rotary(k_elems) + attention + 2 * T * E + 3 * 2 * T * E * FF + 5 * T * FF
        assert result.unknown_ops == {}
        assert result.total == 216 + L * layer + rms + 2 * T * E * vocab
        counts[impl] = result.total
    assert counts["sdpa"] - counts["eager"] == L * 2 * T * E == 1_536  # 960 before s35


def test_gru_on_cpu_and_on_meta_differ_by_the_per_step_weight_gradient_sums():
    """docs/fpo.md (Limits): a 2-layer bidirectional GRU (I = 3, H = 4, T = 5, batch 3) is
    52,965 FPO on meta (51,525 before s35 counted its sigmoids 1 each, not 4) and 1,248 fewer on
    CPU, ``G (T - 1) (I H + H)`` per layer and
    direction with G = 3: ``2 * 3 * 4 * (12 + 4) + 2 * 3 * 4 * (32 + 4)``."""
    totals = {}
    for device in ("cpu", "meta"):
        with torch.device(device):
            gru = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            x = torch.randn(3, 5, 3, requires_grad=True)
        totals[device] = gp.count_fpo(lambda x: gru(x)[0], x).total  # noqa: B023
    assert totals == {"meta": 52_965, "cpu": 52_965 - 1_248}
    assert 2 * 3 * 4 * (12 + 4) + 2 * 3 * 4 * (32 + 4) == 1_248


# -- torch's attention: nn.MultiheadAttention, TransformerEncoderLayer, SDPA --------------------

b, s, e, h, ff = 2, 5, 8, 2, 16  # batch, tokens, model dimension, heads, feed-forward
t, scores = b * s, b * h * s * s
rows = b * h * s  # rows of scores: softmax is 5 per score less 1 per row (s35)
n = t * e  # elements of a (b, s, e) activation
PADDED = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])  # key padding: True = ignore


def _mha_forward(*, masked: bool) -> int:
    """nn.MultiheadAttention(8, 2) on (2, 5, 8), from its maths: in-projection
    ``t 3e (2e + 1)``, out-projection ``t e (2e + 1)``; the attention as SDPA's math path:
    ``QK^T`` and ``PV`` ``2 * 2 b h s^2 (e/h)`` = ``4 b s^2 e``, Q and K scaled (``2 t e``),
    the mask added (1 per score), ``_safe_softmax`` 6 per score less 1 per row (ATen's softmax
    and a compare with ``-inf``; 5 per score before s35)."""
    projections = t * 3 * e * (2 * e + 1) + t * e * (2 * e + 1)
    softmax = 6 * scores - rows
    return projections + 4 * b * s * s * e + 2 * t * e + (scores if masked else 0) + softmax


def test_multihead_attention_fast_path_with_a_key_padding_mask_counts_the_slow_paths_maths():
    """Eval, no_grad, ``need_weights=False``: the fused ``_native_multi_head_attention``
    (the fast path) and the same module with the fast path off both count the maths."""
    mha = nn.MultiheadAttention(e, h, batch_first=True).eval()
    x = torch.randn(b, s, e)
    with torch.no_grad():
        fast = gp.count_fpo(
            mha, x, x, x, key_padding_mask=PADDED, need_weights=False, backward=False
        )
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            slow = gp.count_fpo(
                mha, x, x, x, key_padding_mask=PADDED, need_weights=False, backward=False
            )
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    assert "aten._native_multi_head_attention" in fast.by_op
    assert "aten._native_multi_head_attention" not in slow.by_op
    assert fast.total == slow.total == _mha_forward(masked=True) == 7_880  # 7,800 before s35


def test_transformer_encoder_layer_norm_first_training_step_counted_from_its_maths():
    """TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first, norm_first), train mode,
    key padding mask, input without grad, forward and backward.

    Forward: two layer norms (ATen's kernel, :func:`layer_norm_forward_fpo`; ``7n + 4t`` each
    before s34), the attention (above, masked) with dropout on
    the probabilities (2 per score), dropout1/dropout/dropout2 (2 per element), the two
    residual adds (``n`` each), linear1 ``t ff (2e + 1)``, relu ``t ff``, linear2
    ``t e (2ff + 1)``.
    Backward (one thread): norm1's weight and bias gradients only (its input needs no grad:
    :func:`layer_norm_backward_fpo`; 5 per element before s34); the attention's
    in-projection grad_input and grad_weight ``2 t e 3e`` each + bias ``t 3e``, + ``2 t 3e``
    where the q, k, v slices' gradients are summed into the packed projection's; the four
    products ``2 b h s^2 (e/h)`` each; softmax backward 4 per score less 1 per row (s35),
    dropout 1 per score (CPU:
    one multiply by the saved scaled mask), the scalings' ``2 t e``; out-projection ``2 t e e``
    twice + ``t e``; dropouts 1 per element; norm2's three gradients (``13 n + 2 t`` before
    s34), + ``n`` adding the residual's gradient; linear1 grad_input, grad_weight
    ``2 t e ff`` each + ``t ff``; relu ``t ff``; linear2 the same products + ``t e``.
    """
    layer = nn.TransformerEncoderLayer(
        e, h, ff, dropout=0.1, batch_first=True, norm_first=True
    ).train()
    result = gp.count_fpo(layer, torch.randn(b, s, e), src_key_padding_mask=PADDED)
    norm = layer_norm_forward_fpo(n, t, 8)
    forward = 2 * norm + _mha_forward(masked=True) + 2 * scores + 2 * n + 2 * t * ff + 2 * n
    forward += 2 * n + t * ff * (2 * e + 1) + t * ff + t * e * (2 * ff + 1)
    attention = 2 * (2 * t * e * 3 * e) + t * 3 * e + 2 * t * 3 * e
    attention += 4 * 2 * scores * (e // h) + 4 * scores - rows + scores + 2 * t * e
    attention += 2 * (2 * t * e * e) + t * e
    norms = _encoder_norms_backward(threads=1)
    backward = norms + attention + n + n
    backward += t * ff + 2 * (2 * t * e * ff) + t * ff + t * ff + 2 * (2 * t * e * ff) + t * e
    backward += n
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (forward, backward)
    assert (forward, backward) == (18_840, 27_684)  # (18,760, 27,704) before s35


def _encoder_norms_backward(threads: int) -> int:
    """The norm-first layer's two layer-norm backwards: norm1's weight and bias gradients (its
    input needs none), norm2's three; the threads' partial sums ``2 T e`` per norm."""
    norm1 = layer_norm_backward_fpo(n, t, threads, input_grad=False)
    return norm1 + layer_norm_backward_fpo(n, t, threads)


@pytest.mark.parametrize(
    ("kwargs", "mask"),
    [
        ({}, 0),
        ({"is_causal": True}, 1),
        ({"attn_mask": torch.ones(5, 5, dtype=torch.bool).tril()}, 1),
        ({"attn_mask": torch.randn(5, 5)}, 1),
    ],
    ids=["plain", "causal", "bool-mask", "float-mask"],
)
def test_sdpa_forward_and_backward_counted_from_its_maths(kwargs, mask):
    """F.scaled_dot_product_attention on (2, 3, 5, 4) Q, K, V that need grad.

    Forward: ``QK^T`` and ``PV`` ``2 b h s^2 d`` each, Q and K scaled (1 per element each),
    the mask added (1 per score, causal included: the full score matrix, as FlopCounterMode),
    ``_safe_softmax`` 6 per score less 1 per row. Backward: ``dV = P^T dO``, ``dP = dO V^T``,
    ``dQ = dS K``, ``dK = dS^T Q``: four products; softmax backward 4 per score less 1 per row;
    the scalings' backward. (Softmax 5 and 4 per score before s35.)
    """
    bb, hh, ss, dd = 2, 3, 5, 4
    q, k, v = (torch.randn(bb, hh, ss, dd, requires_grad=True) for _ in range(3))
    attention = torch.nn.functional.scaled_dot_product_attention
    result = gp.count_fpo(lambda q, k, v: attention(q, k, v, **kwargs), q, k, v)
    product, n_scores, elements = 2 * bb * hh * ss * ss * dd, bb * hh * ss * ss, bb * hh * ss * dd
    n_rows = bb * hh * ss
    softmax = 6 * n_scores - n_rows
    assert result.forward_total == 2 * product + 2 * elements + mask * n_scores + softmax
    assert result.backward_total == 4 * product + 4 * n_scores - n_rows + 2 * elements


def test_sdpa_dropout_in_training_costs_two_per_score_forward_and_one_backward_on_cpu():
    """``dropout_p=0.1``: the math path; the mask multiply and the ``1/(1 - p)`` rescale of the
    mask (2 per score), backward one multiply by the saved rescaled mask (1 per score)."""
    q = torch.randn(2, 3, 5, 4, requires_grad=True)
    attention = torch.nn.functional.scaled_dot_product_attention
    plain = gp.count_fpo(lambda q: attention(q, q, q), q)
    dropped = gp.count_fpo(lambda q: attention(q, q, q, dropout_p=0.1), q)
    n_scores = 2 * 3 * 5 * 5
    assert dropped.forward_total - plain.forward_total == 2 * n_scores
    assert dropped.backward_total - plain.backward_total == n_scores


# -- convolutions, norms, embeddings, products --------------------------------------------------


def test_grouped_strided_transposed_conv_and_dilated_conv1d_counted_from_their_maths():
    """ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2) on
    (2, 4, 5, 5): every input element of a group meets ``C_out/groups * 3 * 3`` weights, 2 FPO
    each: ``2 * 2*4*25 * 3*9`` = 10,800, + the bias on the (2, 6, 10, 10) output, 1,200;
    backward grad_input and grad_weight the same multiply-accumulates each, + the bias's sum.
    Conv1d(3, 4, 3, dilation=2, padding=2) on (2, 3, 10): 10 output positions each
    ``2 * 3 * 3`` per output channel (padded zeros count), + bias."""
    deconv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    result = gp.count_fpo(deconv, torch.randn(2, 4, 5, 5, requires_grad=True))
    macs = 2 * 4 * 25 * 3 * 9
    assert result.forward_total == 2 * macs + 1_200
    assert result.backward_total == 2 * (2 * macs) + 1_200
    conv = nn.Conv1d(3, 4, 3, dilation=2, padding=2)
    result = gp.count_fpo(conv, torch.randn(2, 3, 10), backward=False)
    assert result.total == 2 * 4 * 10 * (2 * 3 * 3) + 2 * 4 * 10


def test_depthwise_separable_block_batch_norm_in_training_and_in_eval():
    """depthwise Conv2d(4, 4, 3, groups=4) + BN + ReLU + pointwise Conv2d(4, 8, 1) + BN + ReLU,
    no bias, on (2, 4, 6, 6): 36 positions.

    Convolutions ``2 * 2*4*36 * 9`` and ``2 * 2*8*36 * 4``. Training batch norm (ATen's CPU
    kernel, s34): 7 per element + 9 per channel, + 9 per channel updating the running mean and
    the unbiased running variance; eval: ``x * alpha + beta`` 2 per element + 6 per channel,
    affine or not. ReLU 1 per element. Backward (the input needs no grad): the depthwise conv's
    grad_weight only; each BN 10 per element + 4 per channel (input grad) + 1 per channel
    (weight grad); ReLU 1; the pointwise conv's two terms.
    """
    block = nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
    )  # fmt: skip
    x = torch.randn(2, 4, 6, 6)
    n4, n8 = 2 * 4 * 36, 2 * 8 * 36
    convs = 2 * n4 * 9 + 2 * n8 * 4
    train = gp.count_fpo(block, x)
    assert train.forward_total == convs + (7 * n4 + 18 * 4) + n4 + (7 * n8 + 18 * 8) + n8
    bn_backward = (10 * n4 + 5 * 4) + (10 * n8 + 5 * 8)
    assert train.backward_total == 2 * n4 * 9 + 2 * (2 * n8 * 4) + bn_backward + n4 + n8
    evaluated = gp.count_fpo(block.eval(), x, backward=False)
    assert evaluated.total == convs + (2 * n4 + 6 * 4) + n4 + (2 * n8 + 6 * 8) + n8


def test_group_norm_layer_norm_embedding_and_embedding_bag_counted_from_their_maths():
    """GroupNorm(3, 6) on (2, 6, 4, 4): 192 elements, 6 groups of 32 values, as ATen's kernel
    (s34; it was ``7N + 4G``, backward ``13N + 2G``): per group the moments (layer norm's: 330)
    and ``rstd`` (4), per channel scale and bias (4), ``scale x + bias`` 2N: 2,436; backward
    3 per element less 2 per channel (``ds``, ``db``), ``1 / (D HxW)``, per group the lanes'
    sums (2 x 8) and ``c2``, ``c3`` (11), per channel 10 (``sum(ds w)``, ``sum(db w)`` 4, ``c1``
    1, the weight's gradient 4, the bias's 1), ``4N`` (``c1 g + c2 x + c3``): 1,603.
    LayerNorm(8) on (3, 5, 8), as ATen's kernel (s34; it was ``7N + 4`` per
    row, backward ``13N + 2``): 222 per row, backward ``1 + 11`` per row ``+ 15N + 2 * 8``
    (one thread).
    Embedding: the lookup 0, backward 1 add per gradient element. EmbeddingBag(mode="mean"):
    1 add per looked-up element + 1 division per output element; backward per looked-up
    entry ``1 / bag_size`` (1) and its bag's gradient times it added into the row (2 per
    element; s41: it was counted as the forward)."""
    gn = gp.count_fpo(nn.GroupNorm(3, 6), torch.randn(2, 6, 4, 4, requires_grad=True))
    assert gn.forward_total == 6 * (330 + 4) + 4 * 12 + 2 * 192 == 2_436
    assert gn.backward_total == (3 * 192 - 2 * 12) + 1 + 6 * 27 + 10 * 12 + 4 * 192 == 1_603
    ln = gp.count_fpo(nn.LayerNorm(8), torch.randn(3, 5, 8, requires_grad=True))
    assert (ln.forward_total, ln.backward_total) == (15 * 222, 1 + 15 * 11 + 15 * 120 + 2 * 8)
    embedding = gp.count_fpo(nn.Embedding(10, 4), torch.tensor([[1, 2, 2], [3, 1, 0]]))
    assert (embedding.forward_total, embedding.backward_total) == (0, 6 * 4)
    bag = nn.EmbeddingBag(10, 4, mode="mean")
    bags = gp.count_fpo(bag, torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2]))
    assert (bags.forward_total, bags.backward_total) == (6 * 4 + 2 * 4, 2 * 6 * 4 + 6)


def test_einsum_and_broadcast_matmul_counted_from_their_maths():
    """``bhik,bhkj->bhij`` on (2, 3, 4, 5) x (2, 3, 5, 6): ``2 * 2*3 * 4*5*6``, backward two
    products as big. (2, 1, 4, 5) @ (3, 5, 6) broadcasts to 6 products of ``2*4*5*6``;
    backward 2 x that, + summing the broadcast gradients back: (2, 3, 4, 5) to (2, 1, 4, 5)
    adds 120 elements, (2, 3, 5, 6) to (3, 5, 6) adds 180."""
    a, c = torch.randn(2, 3, 4, 5, requires_grad=True), torch.randn(2, 3, 5, 6, requires_grad=True)
    result = gp.count_fpo(lambda a, c: torch.einsum("bhik,bhkj->bhij", a, c), a, c)
    assert (result.forward_total, result.backward_total) == (1_440, 2 * 1_440)
    a, c = torch.randn(2, 1, 4, 5, requires_grad=True), torch.randn(3, 5, 6, requires_grad=True)
    result = gp.count_fpo(torch.matmul, a, c)
    assert result.forward_total == 6 * 2 * 4 * 5 * 6
    assert result.backward_total == 2 * 6 * 2 * 4 * 5 * 6 + 120 + 180


def test_frozen_layers_count_no_weight_gradients():
    """Conv, BN, conv and LayerNorm frozen, a Linear(5, 3) head trained, on (2, 3, 5, 5): the
    backward is the head's grad_weight ``2 * 20 * 5 * 3`` and bias ``20 * 3`` only (no layer
    below it needs a gradient). A frozen LayerNorm between trained layers: input grad only
    (ATen's kernel: ``1 / N``, 7 per value, 9 per row; it was ``10 N + 2`` per row)."""
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 2, 3, padding=1), nn.LayerNorm(5), nn.Linear(5, 3),
    )  # fmt: skip
    for layer in list(model)[:5]:
        layer.requires_grad_(False)
    result = gp.count_fpo(model, torch.randn(2, 3, 5, 5))
    assert result.backward_total == 2 * 20 * 5 * 3 + 20 * 3
    assert result.backward_by_module["5"] == result.backward_total
    norm = nn.LayerNorm(5).requires_grad_(False)
    result = gp.count_fpo(norm, torch.randn(6, 5, requires_grad=True))
    assert result.backward_total == 1 + 10 * 30 + 9 * 6
    assert result.backward_total == layer_norm_backward_fpo(
        30, 6, 1, weight_grad=False, bias_grad=False
    )


def test_checkpointing_autocast_and_a_training_run():
    """Linear(4, 8) -> relu -> Linear(8, 2) on (3, 4): forward 216 + 24 + 102 = 342, backward
    (no input grad) 198 + 24 + 216 = 438.

    Checkpointing ``relu(a(x))`` (non-reentrant) re-runs it in the backward to get relu's
    saved output: + 216 + 24 recompute. Checkpointing ``a`` alone re-runs nothing: its
    backward needs only ``x``, saved again before the product runs, where the non-reentrant
    checkpoint stops (docs/fpo.md). bfloat16 autocast changes dtypes, not the arithmetic: the
    same counts.
    ``training_fpo`` with SGD: ``p - lr*g`` 2 per parameter element (58), times the steps.
    """
    from torch.utils.checkpoint import checkpoint

    class Net(nn.Module):
        def __init__(self, ckpt):
            super().__init__()
            self.a, self.b, self.ckpt = nn.Linear(4, 8), nn.Linear(8, 2), ckpt

        def forward(self, x):
            if self.ckpt == "relu(a)":
                hidden = checkpoint(lambda t: torch.relu(self.a(t)), x, use_reentrant=False)
            elif self.ckpt == "a":
                hidden = torch.relu(checkpoint(self.a, x, use_reentrant=False))
            else:
                hidden = torch.relu(self.a(x))
            return self.b(hidden)

    x = torch.randn(3, 4)
    plain = gp.count_fpo(Net(False), x)
    assert (plain.forward_total, plain.backward_total) == (342, 438)
    ckpt = gp.count_fpo(Net("relu(a)"), x)
    assert (ckpt.forward_total, ckpt.backward_total, ckpt.recompute_total) == (342, 678, 240)
    assert ckpt.recompute_by_module["a"] == 216
    ckpt = gp.count_fpo(Net("a"), x)
    assert (ckpt.forward_total, ckpt.backward_total, ckpt.recompute_total) == (342, 438, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = gp.count_fpo(Net(False), x)
    assert (mixed.forward_total, mixed.backward_total) == (342, 438)
    run = gp.training_fpo(Net(False), x, steps=10, optimizer="sgd")
    assert (run.total, run.optimizer_total, run.params) == (10 * (780 + 2 * 58), 10 * 116, 58)


# -- the command line, as a new user runs it ----------------------------------------------------


def test_the_fpo_command_counts_a_transformer_layer_as_proved(tmp_path):
    """A new user's ``model.py`` with an ``nn.TransformerEncoderLayer(8, 2, 16, batch_first,
    norm_first)`` factory, counted by ``greenprint fpo --backward`` in an empty directory:
    the training-mode count proved above without the padding mask's 100 adds, forward 18,740,
    backward 27,684 on one thread (+ 32 per further thread of the command's torch: the two layer
    norms' per-thread weight and bias sums, ``2 T e`` each; 18,660 and 27,704 before s35 counted
    softmax 5 and 4 per score; 15,420 and 27,400 before s34)."""
    import json
    import subprocess

    from _clean_env import BIN, clean_env

    (tmp_path / "model.py").write_text(
        "from torch import nn\n\n\n"
        "def encoder_layer():\n"
        "    return nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True)\n"
    )
    command = [str(BIN / "greenprint"), "fpo", "model:encoder_layer", "--input-shape", "2,5,8"]
    done = subprocess.run(
        [*command, "--backward", "--json"], cwd=tmp_path, env=clean_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    counted = json.loads(done.stdout)
    threads = subprocess.run(
        [str(BIN / "python"), "-c", "import torch; print(torch.get_num_threads())"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    extra = _encoder_norms_backward(int(threads.stdout)) - _encoder_norms_backward(1)
    assert extra == 32 * (int(threads.stdout) - 1)
    assert (counted["forward_total"], counted["backward_total"]) == (18_840 - 100, 27_684 + extra)
    assert counted["unknown_ops"] == {}


# -- ops a training script calls besides the model ----------------------------------------------


def test_mask_logic_in_place_products_and_checks_have_rules():
    """Each op here had no rule, so any count that ran it read as a lower bound.

    ``mask &= causal`` (``bitwise_and_``), ``rot90`` and ``tril_indices``: 0 (boolean logic,
    a copy, integer index math). ``out.addmm_(a, b)`` on (3, 4) x (4, 3): ``2*3*4*3`` + the add
    9 = 81; ``baddbmm_`` on two of them 162. ``count_nonzero`` of 12 values: 12 compares.
    ``torch.dist`` of two 3-vectors: 3 subtractions + the 2-norm's 3 squares, 3 adds and a root.
    ``allclose`` on 3 values: ``isclose``'s 10 per element. ``deg2rad``: 1 multiply each.
    """
    cases = [
        (lambda: torch.ones(3, 3, dtype=torch.bool).__iand__(torch.eye(3, dtype=torch.bool)), 0),
        (lambda: torch.rot90(torch.randn(3, 3)), 0),
        (lambda: torch.tril_indices(3, 3), 0),
        (lambda: torch.zeros(3, 3).addmm_(torch.randn(3, 4), torch.randn(4, 3)), 81),
        (lambda: torch.zeros(2, 3, 3).baddbmm_(torch.randn(2, 3, 4), torch.randn(2, 4, 3)), 162),
        (lambda: torch.randn(3, 4).count_nonzero(), 12),
        (lambda: torch.dist(torch.randn(3), torch.randn(3)), 3 + 3 + 3 + 1),
        (lambda: torch.allclose(torch.randn(3), torch.randn(3)), 30),
        (lambda: torch.deg2rad(torch.randn(5)), 5),
    ]
    for run, expected in cases:
        with gp.FPOCounter() as counter:
            run()
        assert (counter.result.unknown_ops, counter.result.total) == ({}, expected)


# -- a tokenizer's batch ------------------------------------------------------------------------


def test_training_fpo_takes_a_tokenizers_batch_and_says_why_a_meta_copy_cannot_run_it():
    """``gp.training_fpo(model, tokenizer(texts, return_tensors="pt"), ...)``: the batch is a
    mapping (``BatchEncoding``), which was iterated as positional inputs (its keys, strings:
    'linear(): argument must be Tensor, not str' from deep inside the model); it is passed as
    keyword arguments, as ``model(**batch)``. A Hugging Face model reads its attention mask's
    values (``Tensor.item()``), which a meta copy has not: the error said only 'Tensor.item()
    cannot be called on meta tensors'; it now says to pass ``on_meta=False``. An all-ones mask
    computes what no mask does: the real step counts as the token ids alone on meta.
    ``table(depth="1")`` said "'<' not supported between instances of 'str' and 'int'"."""
    transformers = pytest.importorskip("transformers")
    from transformers.tokenization_utils_base import BatchEncoding

    config = transformers.GPT2Config(
        vocab_size=100, n_embd=E, n_layer=1, n_head=H, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 100, (B, S))
    batch = BatchEncoding({"input_ids": ids, "attention_mask": torch.ones(B, S, dtype=torch.long)})

    def loss_fn(output, target):
        return torch.nn.functional.cross_entropy(output.logits.flatten(0, 1), target.flatten())

    with pytest.raises(gp.FPOInputError, match=r"a meta copy .*pass on_meta=False"):
        gp.training_fpo(model, batch, steps=2, target=ids, loss_fn=loss_fn)
    real = gp.training_fpo(model, batch, steps=2, target=ids, loss_fn=loss_fn, on_meta=False)
    ids_only = gp.training_fpo(model, {"input_ids": ids}, steps=2, target=ids, loss_fn=loss_fn)
    positional = gp.training_fpo(model, ids, steps=2, target=ids, loss_fn=loss_fn)
    assert real.unknown_ops == {} and real.total == ids_only.total == positional.total > 0
    with pytest.raises(gp.FPOInputError, match="depth must be a whole number >= 0, got '1'"):
        real.table(depth="1")


def test_a_model_that_tests_a_value_on_meta_tensors_says_to_count_on_real_ones(tmp_path, capsys):
    """nn.Transformer tests whether its ``tgt_mask`` is causal (``(mask == causal).all()``),
    and a model may branch on its input: meta tensors have no values, so torch raised
    'Tensor.item() cannot be called on meta tensors' from inside the counter. ``count_fpo``
    and ``greenprint fpo`` (meta by default) now say to count on real tensors
    (``--device cpu``), and the command exits 2."""
    from greenprint.cli import main

    with torch.device("meta"):
        model = nn.Transformer(8, 2, 1, 1, 16, batch_first=True)
        src, tgt = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
        mask = nn.Transformer.generate_square_subsequent_mask(4)
    with pytest.raises(gp.FPOInputError, match="meta tensors do not have: count it on real"):
        gp.count_fpo(model, src, tgt, tgt_mask=mask)
    (tmp_path / "branchy.py").write_text(
        "from torch import nn\n\n\n"
        "class Branchy(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.lin = nn.Linear(4, 4)\n\n"
        "    def forward(self, x):\n"
        "        return self.lin(x) if x.sum() > 0 else x\n"
    )
    rc = main(["fpo", f"{tmp_path / 'branchy.py'}:Branchy", "--input-shape", "2,4"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "meta tensors do not have" in err and "greenprint fpo --device cpu" in err


# -- SyncBatchNorm's kernels ------------------------------------------------------------------
@pytest.fixture
def sync_batch_norm_kernels():
    """CPU kernels for SyncBatchNorm's ops, which PyTorch has for CUDA only: the schemas are
    aten's own, the kernels a plain reference (what a rank computes with one rank)."""
    lib = torch.library.Library("aten", "IMPL")

    def stats(x, eps):
        dims = [d for d in range(x.dim()) if d != 1]
        return x.mean(dims), (x.var(dims, unbiased=False) + eps).rsqrt()

    def gather(x, mean, invstd, running_mean, running_var, momentum, eps, counts):
        return mean[0].clone(), invstd[0].clone()

    def elemt(x, weight, bias, mean, invstd, eps):
        shape = [1, -1] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) * invstd.view(shape)
        out = out * weight.view(shape) if weight is not None else out
        return out + bias.view(shape) if bias is not None else out

    def reduce(g, x, mean, invstd, weight, input_g, weight_g, bias_g):
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        sum_dy = g.sum(dims)
        sum_dy_xmu = (g * (x - mean.view(shape))).sum(dims)
        return sum_dy, sum_dy_xmu, sum_dy_xmu * invstd, sum_dy.clone()

    def backward_elemt(g, x, mean, invstd, weight, sum_dy, sum_dy_xmu, count):
        return g.clone()

    for name, kernel in [
        ("batch_norm_stats", stats),
        ("batch_norm_gather_stats_with_counts", gather),
        ("batch_norm_elemt", elemt),
        ("batch_norm_backward_reduce", reduce),
        ("batch_norm_backward_elemt", backward_elemt),
    ]:
        lib.impl(name, kernel, "CPU")
    yield
    lib._destroy()


def test_sync_batch_norm_ops_are_counted_from_their_maths(sync_batch_norm_kernels):
    """A DDP training step with nn.SyncBatchNorm runs these five ops instead of
    native_batch_norm: they were unknown ops (the count read as a lower bound). One rank's
    input (4, 3, 5, 5): N = 300, C = 3; W = 2 ranks' statistics gathered."""
    n, c, ranks = 300, 3, 2
    x = torch.randn(4, c, 5, 5)
    w, b = torch.ones(c), torch.zeros(c)
    running_mean, running_var = torch.zeros(c), torch.ones(c)
    with gp.FPOCounter() as counter:
        mean, invstd = torch.batch_norm_stats(x, 1e-5)
        mean_all, invstd_all = torch.stack([mean, mean]), torch.stack([invstd, invstd])
        counts = torch.tensor([100.0, 100.0])
        mean, invstd = torch.batch_norm_gather_stats_with_counts(
            x, mean_all, invstd_all, running_mean, running_var, 0.1, 1e-5, counts
        )
        y = torch.batch_norm_elemt(x, w, b, mean, invstd, 1e-5)
        g = torch.ones_like(y)
        sum_dy, sum_dy_xmu, _, _ = torch.batch_norm_backward_reduce(
            g, x, mean, invstd, w, True, True, True
        )
        count = torch.tensor([100, 100], dtype=torch.int32)
        torch.batch_norm_backward_elemt(g, x, mean, invstd, w, sum_dy, sum_dy_xmu, count)
    found = counter.result.by_op
    assert counter.result.unknown_ops == {}
    assert found["aten.batch_norm_stats"] == 4 * n + 4 * c  # sum, x - mean, square, sum; 4 / C
    # per rank and channel: variance from 1/std (3), count * mean (2), count * (var + d**2) (6);
    # the counts summed; per channel the two divisions, eps, rsqrt; the running statistics 7
    assert (
        found["aten.batch_norm_gather_stats_with_counts"] == 11 * ranks * c + ranks + 4 * c + 7 * c
    )
    assert found["aten.batch_norm_elemt"] == 2 * n + n + n  # (x - mean) * invstd, * w, + b
    assert found["aten.batch_norm_backward_reduce"] == n + 3 * n + c  # sum(g), sum(g (x - m)); C
    # per channel: two means, invstd**2 * mean_dy_xmu (2), w * invstd; per element 5; the counts
    assert found["aten.batch_norm_backward_elemt"] == 5 * n + 4 * c + c + ranks
