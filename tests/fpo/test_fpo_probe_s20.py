"""The FPO counter's known gaps closed, each count proved from first principles (s20).

Each expected count is derived by hand in a comment beside it, under the conventions of
docs/fpo.md: a multiply-accumulate is 2 FPO (``2mkn`` for a product), one FPO per elementwise
arithmetic op, compare or elementary function, reducing n values costs n adds. Tiny tensors on
CPU; ops PyTorch has for CUDA only run through stand-in CPU kernels registered for aten's own
schemas, or on meta tensors where the op has a meta kernel.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import logging  # noqa: E402
import warnings  # noqa: E402

from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


# -- the user's warning settings ----------------------------------------------------------------


def test_warning_settings_the_model_makes_while_counted_outlive_the_count():
    """A model that silences a warning and routes warnings to logging in its forward (as a
    tokenizer wrapper or a training script does on first call) keeps both after ``count_fpo``,
    as after a plain call: the counter wrapped the count in ``warnings.catch_warnings``, which
    put back the whole warnings state of before the count, the user's filter and
    ``showwarning`` included. Now the counter adds its one filter (torch's warning about
    global module hooks) and removes only that one. Linear(2, 2) on (1, 2): forward
    ``2*(2*2 + 1)`` = 10 FPO."""

    class Quiet(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            warnings.filterwarnings("ignore", message="tokenizers parallelism")
            logging.captureWarnings(True)
            return self.lin(x)

    hooks_warning = "Using `torch.compile(module)` when there are global hooks"
    with warnings.catch_warnings():
        shown = warnings.showwarning
        try:
            result = gp.count_fpo(Quiet(), torch.randn(1, 2), backward=False)
            assert result.total == 10
            assert any(
                f[0] == "ignore" and f[1] is not None and f[1].pattern == "tokenizers parallelism"
                for f in warnings.filters
            )
            assert warnings.showwarning is not shown  # logging's, as the model set it
            assert not any(
                f[1] is not None and "global hooks" in f[1].pattern for f in warnings.filters
            )
        finally:
            logging.captureWarnings(False)
        # a filter the user had before the count, equal to the counter's, is theirs to keep
        warnings.filterwarnings(
            "ignore", message=r"Using `torch.compile\(module\)` when there are global hooks"
        )
        before = list(warnings.filters)
        gp.count_fpo(nn.Linear(2, 2), torch.randn(1, 2), backward=False)
        assert warnings.filters == before
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn(hooks_warning, stacklevel=1)
        assert caught == []


# -- one handling of what meta tensors cannot run -------------------------------------------------


def test_count_fpo_and_training_fpo_say_the_same_things_about_meta_tensors():
    """``count_fpo`` and ``training_fpo`` each had their own copy of the code that turns torch's
    meta-tensor errors into a one-line FPOInputError, and they had drifted: ``count_fpo`` caught
    only the RuntimeError of a value read, so an op with no meta kernel (``_masked_softmax``)
    escaped as torch's NotImplementedError, many lines long. One helper now serves both, each
    with its advice: count on real tensors; pass ``on_meta=False``."""

    class Gate(nn.Module):  # reads a value: ``if`` on a tensor
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x) if x.sum() > 0 else x

    meta = torch.empty(2, 3, device="meta")
    mask = torch.empty(2, 3, dtype=torch.bool, device="meta")
    with pytest.raises(gp.FPOInputError) as raised:
        gp.count_fpo(lambda s: torch._masked_softmax(s, mask, -1, None), meta, backward=False)
    message = str(raised.value)
    assert "no kernel for meta tensors (aten::_masked_softmax" in message
    assert "greenprint fpo --device cpu" in message and "\n" not in message
    with pytest.raises(gp.FPOInputError, match="meta tensors do not have: count it on real"):
        gp.count_fpo(Gate().to("meta"), torch.empty(2, 4, device="meta"))
    with pytest.raises(gp.FPOInputError, match=r"cannot run on a meta copy .*pass on_meta=False"):
        gp.training_fpo(Gate(), torch.randn(2, 4), steps=1)

    class Maker(nn.Module):  # makes a tensor on the CPU: "not on the expected device meta"
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x) + torch.ones(2, 4)

    with pytest.raises(gp.FPOInputError, match=r"expected device meta!\); pass on_meta=False"):
        gp.training_fpo(Maker(), torch.randn(2, 4), steps=1)
    with pytest.raises(gp.FPOInputError, match=r"^the model cannot run on meta tensors \(Tensor"):
        gp.count_fpo(Maker().to("meta"), torch.empty(2, 4, device="meta"))
    # a NotImplementedError of the user's own that merely says "meta" is the model's error
    # (the command line reports it as such), not torch's: it passes unchanged

    def own(x):
        raise NotImplementedError("no meta kernel")

    with pytest.raises(NotImplementedError, match="no meta kernel"):
        gp.count_fpo(own, meta)
    # on real tensors the model counts: the test, ``x.sum()`` 8 adds and ``> 0`` 1 compare, and
    # Linear(4, 4) on (2, 4): 2 * 4 * (2*4 + 1) = 72
    assert gp.count_fpo(Gate(), torch.ones(2, 4), backward=False).total == 8 + 1 + 72


# -- recurrent layers on data: no gradient for the data ------------------------------------------


def test_a_fused_lstm_on_data_counts_no_input_gradient_as_linear_and_the_meta_count():
    """A user's LSTM(3, 4) over a (T=5, B=2, I=3) batch of data (no ``requires_grad``): on CPU
    the layer is one oneDNN op, whose backward rule counted the input-gradient product
    ``dx_t = da_t W_ih`` (``2 * 4H * B * I`` per step, 960 FPO) though the data needs no
    gradient; the same model on meta (the recurrence op by op) and a Linear layer on data skip
    it. By hand, per step t with the 4H gate pre-activations ``a_t``: ``dW_ih += da_t^T x_t``
    ``2 * 4H * B * I``; ``dW_hh += da_t^T h_{t-1}`` ``2 * 4H * B * H`` every step and
    ``dh_{t-1} = da_t W_hh`` as much from t = 2; the weight gradients summed over the steps
    ``(T - 1) * 4H * (I + H)``; 23 per hidden unit and step (the gates' backward, see
    test_first_principles_s9's fused LSTM test), less ``dc_0`` (``B H``: the initial state
    needs no gradient; ``count_fpo`` seeds the output, ``h_T`` and ``c_T``, so their adds
    count); biases ``2 (4H B T + (T - 1) 4H)``.
    """
    from greenprint.fpo._api import meta_copy

    steps, batch, inp, hidden = 5, 2, 3, 4
    g4 = 4 * hidden
    lstm = nn.LSTM(inp, hidden)
    data = torch.randn(steps, batch, inp)
    weight_grads = 2 * g4 * batch * inp * steps + (4 * steps - 2) * g4 * batch * hidden
    sums = (steps - 1) * g4 * (inp + hidden)
    units = 23 * steps * batch * hidden - batch * hidden
    biases = 2 * (g4 * batch * steps + (steps - 1) * g4)
    by_hand = weight_grads + sums + units + biases
    cpu = gp.count_fpo(lstm, data)
    assert cpu.by_op["aten.mkldnn_rnn_layer_backward"] == cpu.backward_total == by_hand == 5_072
    meta = gp.count_fpo(meta_copy(lstm), data.to("meta"))
    assert meta.backward_total == by_hand
    # the input needing a gradient adds exactly dx: 2 * 4H * B * I * T = 960
    grad = gp.count_fpo(lstm, data.clone().requires_grad_())
    assert grad.backward_total - by_hand == 2 * g4 * batch * inp * steps == 960
    # as a Linear layer on data: the backward is grad_weight 2*10*3*16 and the bias 10*16
    linear = gp.count_fpo(nn.Linear(inp, g4), data.reshape(10, inp))
    assert linear.backward_total == 2 * 10 * inp * g4 + 10 * g4


def test_the_cudnn_rnn_rule_leaves_out_the_first_layers_input_gradient_by_its_output_mask():
    """``_cudnn_rnn_backward`` (CUDA: the rule is called as the schema lays the arguments out)
    gets ``output_mask``, whose first entry says whether the input needs a gradient. A 2-layer
    LSTM (I = 3, H = 4) on 7 tokens of 2 sequences: on data, the first layer's ``dx``,
    ``2 * 4H * tokens * I`` = 672, is not counted; the second layer's input (the first layer's
    output) needs its gradient either way."""
    from greenprint.fpo.rules import RULES

    i, h, g4 = 3, 4, 16
    weights = [(g4, i), (g4, h), (g4,), (g4,), (g4, h), (g4, h), (g4,), (g4,)]
    common = {"input": (7, i), "weight": weights, "weight_stride0": 4, "hx": (2, 2, h)}
    common |= {"cx": (2, 2, h), "mode": 2, "hidden_size": h, "num_layers": 2}
    common |= {"batch_sizes": [2, 2, 1, 1, 1], "output": (7, h), "grad_output": (7, h)}

    def backward(mask):
        schema = torch.ops.aten._cudnn_rnn_backward.default._schema
        args = [{**common, "output_mask": mask}.get(a.name) for a in schema.arguments]
        return RULES["aten._cudnn_rnn_backward"].fn(*args, out_shape=None)

    with_dx = backward([True, False, False, True])
    assert with_dx - backward([False, False, False, True]) == 2 * g4 * 7 * i == 672
    assert with_dx == backward(None)  # called without a mask: every gradient


# -- embedding with padding_idx ------------------------------------------------------------------


def test_embedding_backward_counts_no_gradient_for_padding_tokens():
    """Embedding(10, 4, padding_idx=0) on ids ``[[1, 2, 0], [3, 0, 0]]``: the backward sums each
    looked-up row's gradient into the weight, 4 adds per index, and the kernels (CPU and CUDA)
    skip the indices equal to ``padding_idx``, whose row gets no gradient. The rule saw shapes
    only and counted all 6 indices (24 FPO); it now reads the 3 padding tokens from the
    indices: 3 * 4 = 12. ``scale_grad_by_freq`` scales each counted row first: 2 * 12, + the
    kernel's ``scale /= counts[k]`` per counted index, 3 (s36). On meta
    (no values) every index is counted: 24, an upper bound (docs/fpo.md)."""
    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    real = gp.count_fpo(nn.Embedding(10, 4, padding_idx=0), ids)
    assert (real.forward_total, real.backward_total) == (0, 3 * 4)
    assert real.by_op["aten.embedding_dense_backward"] == 12
    scaled = gp.count_fpo(nn.Embedding(10, 4, padding_idx=0, scale_grad_by_freq=True), ids)
    assert scaled.backward_total == 2 * 3 * 4 + 3
    negative = gp.count_fpo(nn.Embedding(10, 4, padding_idx=-10), ids)  # -10 is row 0
    assert negative.backward_total == 12
    plain = gp.count_fpo(nn.Embedding(10, 4), ids)
    assert plain.backward_total == 6 * 4
    meta = gp.count_fpo(nn.Embedding(10, 4, padding_idx=0, device="meta"), ids.to("meta"))
    assert meta.backward_total == 6 * 4


# -- where count_fpo's backward starts -----------------------------------------------------------


class _Encoder(nn.Module):
    """A BERT-shaped output: every position's state and a pooled first position (tanh)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.pooler = nn.Linear(4, 4)

    def forward(self, x, labels=None):
        hidden = self.body(x)
        out = {"last_hidden_state": hidden, "pooler_output": torch.tanh(self.pooler(hidden[:, 0]))}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(out["pooler_output"], labels)
        return out


def test_count_fpo_back_propagates_from_the_loss_or_what_backward_from_picks():
    """``count_fpo`` back-propagated from every floating output, seeded with ones. On data
    x (2, 5, 3): body Linear(3, 4), pooler Linear(4, 4) on the first position, tanh.

    No loss in the output (BertModel): both outputs seeded, as before and documented. By hand:
    the pooler's tanh backward 3 per element (8 elements: 24), its Linear grad_input and
    grad_weight ``2*2*4*4`` each (128) and bias 8; the first position's gradient scattered
    back (0) and added to the seed of ``last_hidden_state`` (40 adds); the body's grad_weight
    ``2*10*3*4`` (240) and bias 40 (x is data: no grad_input) = 480.
    ``backward_from=lambda out: out["last_hidden_state"]`` (a token-level task): the body's
    280 only. With a loss in the output (a Hugging Face model given labels) the backward
    starts from the loss, as ``loss.backward()`` in training: the MSE backward
    ``(2 / N) (p - y) g`` 3 per element (24; ATen folds the 1 / N into the scalar), tanh 24,
    the pooler's 128 + 8, the body's 240 + 40 = 464. Before, the two other outputs were seeded
    with ones too, and each seed added to the gradient the loss sent there: 8 + 40 adds.
    """
    x = torch.randn(2, 5, 3)
    model = _Encoder()
    both = gp.count_fpo(model, x)
    assert both.backward_total == 24 + 128 + 8 + 40 + 240 + 40 == 480
    tokens = gp.count_fpo(model, x, backward_from=lambda out: out["last_hidden_state"])
    assert tokens.backward_total == 240 + 40 and tokens.backward_by_module["pooler"] == 0
    labels = torch.zeros(2, 4)
    with_loss = gp.count_fpo(model, x, labels=labels)
    with gp.FPOCounter(model) as counter:
        model(x, labels=labels)["loss"].backward()
    assert with_loss.backward_total == counter.result.backward_total == 24 + 24 + 136 + 280
    assert with_loss.forward_total == counter.result.forward_total
    with pytest.raises(gp.FPOInputError, match="backward_from must be a function"):
        gp.count_fpo(model, x, backward_from="loss")
    with pytest.raises(gp.FPOInputError, match="backward_from picked no floating tensor"):
        gp.count_fpo(model, x, backward_from=lambda out: x)


# -- rules for the ops that had none ---------------------------------------------------------------

F8 = torch.float8_e4m3fn


def _ops(fn):
    """``fn()`` counted: (by_op, unknown_ops)."""
    with gp.FPOCounter() as counter:
        fn()
    return counter.result.by_op, counter.result.unknown_ops


def test_fp8_scaled_products_are_counted_from_their_maths():
    """fp8 products ``out[i, j] = sum over k-blocks of sa sb sum_{k in block} a[i, k] b[k, j]``
    (a (16, 64) by (64, 32)): the product ``2mkn`` = 65,536; each operand's scale multiplies
    each output element once after the sum when it is constant along k (tensor-wise,
    row-wise: ``mn`` = 512 each, as ``_scaled_mm`` counts), once per k-block when block-wise
    (MX ``BlockWise1x32``: 64 / 32 = 2 blocks, 1,024 each); the block sums are added into the
    output as the product's ``2k`` already counts. ``torch.nn.functional.scaled_mm`` runs
    ``_scaled_mm_v2``, which had no rule (the count read as a lower bound). CPU runs the
    tensor-wise and row-wise recipes; MX (swizzled e8m0 scales) runs on meta."""
    a, b = torch.randn(16, 64).to(F8), torch.randn(32, 64).to(F8).t()
    one = torch.ones(())
    v1, _ = _ops(lambda: torch._scaled_mm(a, b, one, one, out_dtype=torch.bfloat16))
    assert v1["aten._scaled_mm"] == 65_536 + 2 * 512
    v2 = torch.ops.aten._scaled_mm_v2
    found, unknown = _ops(lambda: v2(a, b, [one], [0], [0], [one], [0], [0], None, torch.bfloat16))
    assert unknown == {} and found["aten._scaled_mm_v2"] == 65_536 + 2 * 512
    rows, cols, bias = torch.ones(16, 1), torch.ones(1, 32), torch.zeros(32, dtype=torch.bfloat16)
    found, _ = _ops(lambda: v2(a, b, [rows], [1], [0], [cols], [1], [0], bias, torch.bfloat16))
    assert found["aten._scaled_mm_v2"] == 65_536 + 2 * 512 + 512  # + the bias add
    e8 = torch.float8_e8m0fnu
    a, b = a.to("meta"), b.to("meta")
    scale = torch.empty(512, device="meta").to(e8)  # 128 x 4 swizzled tiles
    found, _ = _ops(lambda: v2(a, b, [scale], [3], [1], [scale], [3], [1], None, torch.bfloat16))
    assert found["aten._scaled_mm_v2"] == 65_536 + 2 * 512 * 2
    # _scaled_mm's own scale_result (fp8 output) multiplies each output element once more
    from greenprint.fpo.rules import RULES

    rule = RULES["aten._scaled_mm"].fn
    assert sum(rule((16, 64), (64, 32), (), (), None, (), out_shape=(16, 32))) == 65_536 + 3 * 512


@pytest.fixture
def scaled_grouped_mm_v2_kernel():
    """A CPU kernel for ``_scaled_grouped_mm_v2`` (PyTorch has it for CUDA only): aten's schema,
    a plain reference (tokens ``(M, K)`` by experts ``(G, K, N)``, rows split by ``offs``)."""
    lib = torch.library.Library("aten", "IMPL")

    def kernel(a, b, scale_a, recipe_a, swizzle_a, scale_b, recipe_b, swizzle_b, offs=None,
               bias=None, out_dtype=None, contraction_dim=(), use_fast_accum=False):  # fmt: skip
        out, start = [], 0
        for g, end in enumerate(offs.tolist()):
            out.append(a[start:end].float() @ b[g].float())
            start = end
        return torch.cat(out).to(out_dtype or torch.bfloat16)

    lib.impl("_scaled_grouped_mm_v2", kernel, "CPU")
    yield
    lib._destroy()


def test_fp8_grouped_products_of_mixture_of_experts_are_counted(scaled_grouped_mm_v2_kernel):
    """64 tokens ``(64, 64)`` by 4 experts ``(4, 64, 32)``, 16 tokens each: the products
    ``sum 2 m_g K N`` = ``2 * 64 * 64 * 32`` = 262,144, as ``_grouped_mm``. ``_scaled_grouped_mm``
    (row-wise scales, constant along k): + 2 per output element (64 * 32 = 2,048 elements);
    its meta kernel runs it. ``_scaled_grouped_mm_v2`` (``F.scaled_grouped_mm``), on the
    stand-in CPU kernel: row-wise scales 2 per output element; MX block-wise (1 x 32) scales
    ``64 / 32`` = 2 per output element and operand."""
    a = torch.empty(64, 64, device="meta").to(F8)
    b = torch.empty(4, 32, 64, device="meta").to(F8).transpose(-2, -1)
    offs = torch.tensor([16, 32, 48, 64], dtype=torch.int32, device="meta")
    rows, cols = torch.ones(64, device="meta"), torch.ones(4, 32, device="meta")
    found, unknown = _ops(
        lambda: torch._scaled_grouped_mm(a, b, rows, cols, offs=offs, out_dtype=torch.bfloat16)
    )
    assert unknown == {} and found["aten._scaled_grouped_mm"] == 262_144 + 2 * 2_048
    a = torch.randn(64, 64).to(F8)
    b = torch.randn(4, 32, 64).to(F8).transpose(-2, -1)
    offs = torch.tensor([16, 32, 48, 64], dtype=torch.int32)
    v2 = torch.ops.aten._scaled_grouped_mm_v2
    rows, cols = torch.ones(64), torch.ones(4, 32)
    found, unknown = _ops(lambda: v2(a, b, [rows], [1], [0], [cols], [1], [0], offs))
    assert unknown == {} and found["aten._scaled_grouped_mm_v2"] == 262_144 + 2 * 2_048
    mx = torch.ones(1)
    found, _ = _ops(lambda: v2(a, b, [mx], [3], [1], [mx], [3], [1], offs))
    assert found["aten._scaled_grouped_mm_v2"] == 262_144 + 2 * 2 * 2_048


def test_isin_histograms_and_masked_softmax_are_counted_from_their_maths():
    """docs/fpo.md counts a compare as 1 FPO (on floating-point values; integer ids: 0).

    ``isin``: 100 floats against 7 (ATen compares each with each when ``T < int(10 N^0.145)``,
    19 here): 700 compares, an upper bound (each stops at its first match). 20 against 200
    (ATen sorts): the unique values of each side, sort ``n ceil(log2 n)`` and neighbours
    ``n``: 20*5 + 20 = 120 and 200*8 + 200 = 1,800, then the 220 together 220*8 + 220 = 1,980:
    3,900; ``assume_unique`` 1,980.
    ``histogram`` (bins a count, as ``histc``): per element two compares (in range), subtract
    the low edge, scale, one add into the bin, 5; + 2 per element for the data's min and max
    without a range; ``density`` ``hist / (sum * width)``: sum, widths, two divisions, 4 per
    bin. Edges given (5): two compares, a binary search ``ceil(log2(5 + 1))`` = 3, the add: 6.
    ``histogramdd`` of 50 points in 2 dimensions, bins (3, 4): the edges' op finds the range
    (2 per element, 200), the counting op finds it again (200) and per point ``4 D + 1`` = 9
    (450); density over 12 cells ``2*12 + (3 + 12) + (4 + 12)`` = 55.
    ``_masked_softmax`` (the fused attention paths' softmax): as its CPU kernel skips the
    masked values (s35; 5 per element before, as softmax over the full matrix); its backward
    4 per unmasked element (4 per element before).
    """
    x = torch.randn(100)
    assert _ops(lambda: torch.isin(x, torch.randn(7)))[0]["aten.isin"] == 700
    assert _ops(lambda: torch.isin(x, 0.5))[0]["aten.isin"] == 100
    few, many = torch.randn(20), torch.randn(200)
    assert _ops(lambda: torch.isin(few, many))[0]["aten.isin"] == 3_900
    assert _ops(lambda: torch.isin(few, many, assume_unique=True))[0]["aten.isin"] == 1_980
    ids = torch.arange(10)
    assert _ops(lambda: torch.isin(ids, torch.tensor([1, 2])))[0]["aten.isin"] == 0

    hist = "aten.histogram"
    assert _ops(lambda: torch.histogram(x, bins=10))[0][hist] == 700
    assert _ops(lambda: torch.histogram(x, bins=10, range=(-1.0, 1.0)))[0][hist] == 500
    dense = _ops(lambda: torch.histogram(x, bins=10, range=(-1.0, 1.0), density=True))[0]
    assert dense[hist] == 500 + 4 * 10
    edges = torch.linspace(-2, 2, 5)
    assert _ops(lambda: torch.histogram(x, bins=edges))[0][hist] == 100 * (2 + 3 + 1)
    points = torch.randn(50, 2)
    found, unknown = _ops(lambda: torch.histogramdd(points, bins=[3, 4]))
    assert unknown == {}
    assert found["aten._histogramdd_bin_edges"] == 200
    assert found["aten._histogramdd_from_bin_cts"] == 200 + 450
    found, _ = _ops(lambda: torch.histogramdd(points, bins=[3, 4], range=[-1.0, 1.0] * 2))
    assert found["aten._histogramdd_from_bin_cts"] == 450
    found, _ = _ops(
        lambda: torch.histogramdd(points, bins=[3, 4], range=[-1.0, 1.0] * 2, density=True)
    )
    assert found["aten._histogramdd_from_bin_cts"] == 450 + 55
    # edges given, 4 and 5: per point (2 + ceil(log2 5)) + (2 + ceil(log2 6)) + 1 = 11
    found, _ = _ops(
        lambda: torch.histogramdd(points, bins=[torch.linspace(-1, 1, n) for n in (4, 5)])
    )
    assert found["aten._histogramdd_from_bin_tensors"] == 50 * 11

    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.rand(2, 3, 4) > 0.5
    found, unknown = _ops(lambda: torch._masked_softmax(scores, mask, -1, None).sum().backward())
    assert unknown == {}
    # host_softmax with a mask (s35; 5 and 4 per element before, whatever the mask): the max,
    # exp and subtraction over the U unmasked values (3U, less the first of each row's max),
    # every value summed and scaled (2N), per row ``sum == 0`` and ``1 / sum`` (the latter not
    # for a fully masked row); backward 4 per unmasked value (test_fpo_softmax_s35)
    unmasked = int((~mask).sum())
    rows = 6
    assert (found["aten._masked_softmax"], found["aten._masked_softmax_backward"]) == (
        3 * unmasked + 2 * 24 + rows,
        4 * unmasked,
    )
