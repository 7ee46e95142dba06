"""FPO audit from first principles (s41): less common layers, forward and backward, by hand.

Each count is derived here from the op's definition with small shapes: where it is a loop of
multiply-adds, a brute-force loop counts them (1 per multiply, 1 per add, the convention of
docs/fpo.md: a dot product of length ``k`` in a GEMM or convolution is ``2k``). The backward
counts only the gradients that are computed: an input or weight that needs none adds nothing.
"""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import greenprint as gp  # noqa: E402


def _transposed_conv_macs(n, c_in, size, c_out, groups, kernel, stride, dilation, length):
    """Brute force: ``out[co, i * stride + k * dilation] += x[ci, i] * w[ci, co, k]`` (1-D),
    ``co`` over the output channels of ``ci``'s group; every tap lands in the output."""
    macs = 0
    per_group = c_out // groups
    for _b, _ci, i in itertools.product(range(n), range(c_in), range(size)):
        for _co, k in itertools.product(range(per_group), range(kernel)):
            assert 0 <= i * stride + k * dilation < length
            macs += 1  # one multiply and one add into the output
    return macs


def test_grouped_strided_dilated_transposed_conv_forward_and_each_gradient_by_hand():
    """ConvTranspose1d(6, 4, 2, stride=3, groups=2, output_padding=2, dilation=2) on (3, 6, 7).

    Forward: each input value times each of its group's ``C_out / g * k`` taps, added into the
    output of length (7 - 1) 3 + 2 (2 - 1) + 2 + 1 = 23: 504 multiply-adds (brute force),
    1,008 FPO, + the bias per output element (3 x 4 x 23 = 276). Backward: grad_input is the
    same taps gathered (1,008), grad_weight each weight summed over the batch and input
    positions (1,008), grad_bias the output gradient summed (276); a gradient nobody needs is
    not counted.
    """
    m = nn.ConvTranspose1d(6, 4, 2, stride=3, groups=2, output_padding=2, dilation=2)
    x = torch.randn(3, 6, 7, requires_grad=True)
    macs = _transposed_conv_macs(3, 6, 7, 4, 2, 2, 3, 2, length=23)
    out = m(x).numel()
    assert (macs, out) == (504, 276)
    c = gp.count_fpo(m, x)
    assert (c.forward_total, c.backward_total) == (2 * macs + out, 2 * 2 * macs + out)
    assert gp.count_fpo(m, x.detach()).backward_total == 2 * macs + out  # weight and bias
    m.weight.requires_grad_(False)
    assert gp.count_fpo(m, x).backward_total == 2 * macs + out  # input and bias
    m.bias.requires_grad_(False)
    assert gp.count_fpo(m, x).backward_total == 2 * macs  # input only


def test_addmm_alpha_beta_and_broadcast_matmul_backward_by_hand():
    """``addmm(M, A, B, alpha=2, beta=3)``, A (3, 4), B (4, 5): the product 2 x 3 x 4 x 5 =
    120, ``alpha *`` and ``beta *`` and the add, 1 each per output (45): 165. Backward: ``dA =
    alpha g B^T`` and ``dB = alpha A^T g`` (120 each, + 12 and 20 for alpha), ``dM = beta g``
    (15): 287. A (2, 1, 3, 4) @ (3, 4, 5) matmul broadcasts to 6 products (720); its backward
    is 6 products per operand (1,440) and the sums over the broadcast dimensions: ``dA``
    summed over the 3 (2 x 3 x 3 x 4 = 72), ``dB`` over the 2 (2 x 3 x 4 x 5 = 120)."""
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, 5, requires_grad=True)
    m = torch.randn(3, 5, requires_grad=True)
    c = gp.count_fpo(lambda m, a, b: torch.addmm(m, a, b, alpha=2, beta=3), m, a, b)
    assert (c.forward_total, c.backward_total) == (120 + 45, 240 + 12 + 20 + 15)
    x4 = torch.randn(2, 1, 3, 4, requires_grad=True)
    y3 = torch.randn(3, 4, 5, requires_grad=True)
    c = gp.count_fpo(torch.matmul, x4, y3)
    assert (c.forward_total, c.backward_total) == (720, 1440 + 72 + 120)


def test_sdpa_and_multihead_attention_with_kdim_vdim_by_hand():
    """SDPA on q (2, 2, 3, 4), k (2, 2, 5, 4), v (2, 2, 5, 6): S = 60 scores. Forward: q and k
    scaled (48 + 80), ``QK^T`` 2S x 4 = 480, ``PV`` 2S x 6 = 720, the softmax (math path,
    ``_safe_softmax``) ``6n - 1`` per row of n = 5: 12 x 29 = 348; 1,676. Backward with every
    input: dV 720, dP 720, dQ 480, dK 480, the softmax backward ``4n - 1`` per row (228), the
    scalings of dQ and dK (128): 2,756. With v alone needing a gradient only dV = ``P^T g``
    (720) runs.

    MultiheadAttention(8, 2, kdim=5, vdim=3) on a query (2, 3, 8) and keys (2, 4, 5) and
    values (2, 4, 3) with no gradient: the in-projections 2 x 6 x 8 x 8 = 768, 2 x 8 x 5 x 8 =
    640 and 2 x 8 x 3 x 8 = 384 with their biases (48 + 64 + 64), the attention (1,156: as
    above with Lq = 3, Lk = 4, d = 4), the out-projection 768 + 48: 3,940. Backward: the
    out-projection's dX and dW (1,536), q's dX and dW (1,536), k's and v's dW only (640 +
    384: their inputs need no gradient), the four biases' sums (224) and the attention's
    backward (4 products of 384, the softmax 12 x 15, the scalings 112: 1,828): 6,148.
    """
    q = torch.randn(2, 2, 3, 4, requires_grad=True)
    k = torch.randn(2, 2, 5, 4, requires_grad=True)
    v = torch.randn(2, 2, 5, 6, requires_grad=True)
    c = gp.count_fpo(F.scaled_dot_product_attention, q, k, v)
    assert (c.forward_total, c.backward_total) == (128 + 480 + 720 + 348, 2400 + 228 + 128)
    c = gp.count_fpo(F.scaled_dot_product_attention, q.detach(), k.detach(), v)
    assert c.backward_total == 720
    mha = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, batch_first=True)
    x = torch.randn(2, 3, 8, requires_grad=True)
    keys, values = torch.randn(2, 4, 5), torch.randn(2, 4, 3)
    c = gp.count_fpo(lambda a, b, v: mha(a, b, v, need_weights=False)[0], x, keys, values)
    assert c.forward_total == 768 + 640 + 384 + 176 + 1156 + 768 + 48 == 3940
    assert c.backward_total == 1536 + 1536 + 640 + 384 + 224 + 1828 == 6148


def _lstm_backward(frozen, input_grad):
    """Op-by-op LSTM(3, 4) backward, T = 5 steps, batch 3, from the output only (s34's
    derivation), leaving out what the frozen parameters' gradients cost (per layer and
    direction, ``G = 4H = 16`` gate rows, ``n = T B = 15`` tokens):

    - ``W_ih``: ``dW_ih += da_t^T x_t`` every step (2 G n I = 1,440) and the per-step sums
      (G (T - 1) I = 192);
    - ``W_hh``: ``dW_hh += da_t^T h_{t-1}`` every step (2 G n H = 1,920) and the per-step sums
      (G (T - 1) H = 256);
    - each bias: ``da_t`` summed over the batch (G n = 240) and over the steps (G (T - 1) = 64).
    """
    g, n, t, i, h = 16, 15, 5, 3, 4
    products = (4 if input_grad else 2) * g * n * i + (4 * g * n - 2 * g * 3) * h
    total = products + (t - 1) * g * (i + h) + 23 * n * h - 3 * 3 * h
    total += 2 * (g * n + (t - 1) * g)
    cost = {"weight_ih_l0": 2 * g * n * i + g * (t - 1) * i}
    cost |= {"weight_hh_l0": 2 * g * n * h + g * (t - 1) * h}
    cost |= dict.fromkeys(("bias_ih_l0", "bias_hh_l0"), g * n + g * (t - 1))
    return total - sum(cost[name] for name in frozen)


@pytest.mark.parametrize(
    "frozen",
    [(), ("weight_ih_l0", "weight_hh_l0"), ("weight_hh_l0", "bias_ih_l0"), ("bias_hh_l0",)],
)
def test_fused_lstm_backward_leaves_out_frozen_parameters_gradients(frozen):
    """The CPU LSTM runs oneDNN's ``mkldnn_rnn_layer_backward``, which computes every weight's
    gradient; its rule counted them all, so a frozen LSTM (its weights frozen, a fine-tuned
    head trained) counted 8,736 FPO where the op-by-op recurrence the meta device runs, and
    the rule claims to match, computes 4,928 (the weights' 1,632 + 2,176 less). The rule now
    reads which parameters need a gradient, as the convolution's does: the CPU, the meta
    device and the derivation agree for every choice of frozen parameters."""
    counts = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            lstm = nn.LSTM(3, 4)
            x = torch.randn(5, 3, 3, requires_grad=True)
        for name in frozen:
            getattr(lstm, name).requires_grad_(False)
        counts.append(gp.count_fpo(lstm, x, backward_from=lambda out: out[0]).backward_total)
    assert counts == [_lstm_backward(frozen, input_grad=True)] * 2
    assert _lstm_backward(("weight_ih_l0", "weight_hh_l0"), input_grad=True) == 4928


def test_frozen_stacked_bidirectional_lstm_counts_as_the_op_by_op_recurrence():
    """A 2-layer bidirectional batch-first LSTM with its first layer frozen, on data: the CPU
    (fused) count equals the meta (op-by-op) count; before, the CPU counted the frozen
    layer's weight and bias gradients too."""
    counts = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            x = torch.randn(3, 5, 3)
        for name, p in lstm.named_parameters():
            p.requires_grad_("l0" not in name)
        counts.append(gp.count_fpo(lstm, x, backward_from=lambda out: out[0]).backward_total)
    assert counts[0] == counts[1]


def test_cudnn_rnn_rule_reads_which_gradients_its_output_mask_asks_for():
    """``_cudnn_rnn_backward``'s ``output_mask[3]`` False (every weight frozen): cuDNN skips
    the weight gradients, ``2 G n (I + H) + G (T - 1)(I + H)`` per layer and direction and the
    biases' ``2 (G n + G (T - 1))``. A 1-layer LSTM (I = 3, H = 4, G = 16) on 7 tokens of 2
    sequences (T = 5): 2 x 16 x 7 x 7 + 16 x 4 x 7 = 2,016 and 2 x (112 + 64) = 352."""
    from greenprint.fpo.rules import RULES

    weights = [(16, 3), (16, 4), (16,), (16,)]
    common = {"input": (7, 3), "weight": weights, "weight_stride0": 4, "hx": (1, 2, 4)}
    common |= {"cx": (1, 2, 4), "mode": 2, "hidden_size": 4, "num_layers": 1}
    common |= {"batch_sizes": [2, 2, 1, 1, 1], "output": (7, 4), "grad_output": (7, 4)}

    def backward(mask):
        schema = torch.ops.aten._cudnn_rnn_backward.default._schema
        args = [{**common, "output_mask": mask}.get(a.name) for a in schema.arguments]
        return RULES["aten._cudnn_rnn_backward"].fn(*args, out_shape=None)

    every = backward([True, False, False, True])
    assert every - backward([True, False, False, False]) == 2016 + 352
    # the initial states (output_mask[1:3]): dh0 = da_1 W_hh, 2 x 16 x 2 x 4 = 256 for the 2
    # sequences, and dc0 = dc_1 * f_1, 2 x 4 = 8
    assert backward([True, True, False, True]) - every == 256
    assert backward([True, True, True, True]) - every == 256 + 8


def _bag_max_by_loop(ids, offsets, width, padding_idx=-1):
    """Brute force of ATen's ``embedding_bag_cpu_max_out``: each bag's first entry (not
    ``padding_idx``) is taken as it is, every later one compared value by value; the backward
    adds each bag's gradient into its max rows, for the bags that hold an entry."""
    ends = [*offsets[1:], len(ids)]
    compares, filled = 0, 0
    for start, end in zip(offsets, ends, strict=True):
        entries = [i for i in ids[start:end] if i != padding_idx]
        compares += max(0, len(entries) - 1) * width
        filled += bool(entries)
    return compares, filled * width


@pytest.mark.parametrize("padding_idx", [None, 4])
def test_embedding_bag_max_compares_after_each_bags_first_row(padding_idx):
    """EmbeddingBag(10, 4, mode="max") on 8 ids in 4 bags of 3, 0, 2 and 3 (with
    ``padding_idx=4`` the third bag holds one entry): the kernel compares ``n - 1`` rows per
    bag of ``n`` (20 FPO; 12 with the padding), and the backward adds the gradient of the 3
    bags that hold an entry (12). It counted 1 compare per looked-up element (32; 24) and 1
    add per gradient element, the empty bag's too (16)."""
    ids, offsets = [1, 2, 4, 5, 4, 3, 2, 9], [0, 3, 3, 5]
    bag = nn.EmbeddingBag(10, 4, mode="max", padding_idx=padding_idx)
    c = gp.count_fpo(lambda i, o: bag(i, o), torch.tensor(ids), torch.tensor(offsets))
    by_loop = _bag_max_by_loop(ids, offsets, 4, -1 if padding_idx is None else padding_idx)
    assert (c.forward_total, c.backward_total) == by_loop == ((20, 12), (12, 12))[bool(padding_idx)]


def test_embedding_bag_dense_backward_as_its_kernel_scales_and_adds():
    """ATen's ``_embedding_bag_dense_backward_cpu_sum_mean``, per looked-up entry: ``scale =
    1`` (its per-sample weight), ``/= counts[k]`` with ``scale_grad_by_freq`` (1 division),
    ``/= bag_size`` for mean (1 division), then ``axpy``: ``row += scale * g``, D adds and D
    multiplies (none when the scale is 1, as ``add``'s alpha of 1). 8 entries of D = 4:
    sum 32; sum by frequency 8 + 64; mean 8 + 64 (it was 32 + 16: a division per gradient
    element, which the kernel does not do); mean by frequency 16 + 64."""
    ids, offsets = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 3, 3, 5])
    counted = {}
    for mode, by_freq in itertools.product(("sum", "mean"), (False, True)):
        bag = nn.EmbeddingBag(10, 4, mode=mode, scale_grad_by_freq=by_freq)
        counted[mode, by_freq] = gp.count_fpo(bag, ids, offsets).backward_total
    assert counted == {
        ("sum", False): 32,
        ("sum", True): 8 + 64,
        ("mean", False): 8 + 64,
        ("mean", True): 16 + 64,
    }


@pytest.mark.parametrize(("cls", "gates"), [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_packed_recurrent_layer_cpu_and_meta_differ_by_the_documented_sums(cls, gates):
    """Packed sequences of 5, 3, 3 and 1 tokens (n = 12, T = 5), I = 3, H = 4: the CPU
    projects all tokens at once and adds up the per-step slices of that projection's gradient
    (``(T - 1) n G H``), the meta device projects step by step and adds up the per-step weight
    gradients (``(T - 1) G H (I + 1)``) and the slices of the input's gradient (``(T - 1) n
    I``): the two backward counts differ by exactly that (docs/fpo.md, Limits); the forwards
    are equal."""
    from torch.nn.utils.rnn import pack_padded_sequence

    lengths, n, steps, i, h = [5, 3, 3, 1], 12, 5, 3, 4
    counts = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            layer = cls(i, h)
            x = torch.randn(steps, len(lengths), i, requires_grad=True)

        def run(x, layer=layer):
            return layer(pack_padded_sequence(x, torch.tensor(lengths)))[0].data

        counts.append(gp.count_fpo(run, x))
    assert counts[0].forward_total == counts[1].forward_total
    rows = gates * h
    difference = (steps - 1) * (n * rows - rows * (i + 1) - n * i)
    assert counts[0].backward_total - counts[1].backward_total == difference


@pytest.mark.parametrize(
    ("frozen", "per_step"),
    [((), 3 + 1), (("weight_ih_l0",), 1), (("weight_ih_l0", "bias_ih_l0"), 0)],
)
def test_unpacked_gru_cpu_is_lower_by_the_trainable_input_projection_sums(frozen, per_step):
    """GRU(3, 4), T = 5, batch 3, on CPU projects the input of every step at once; the meta
    device projects step by step and sums ``W_ih``'s (``I H`` per gate and step after the
    first) and ``b_ih``'s (``H``) per-step gradients: the CPU's backward is lower by ``G (T -
    1) (I H + H)``, 192, only the ``H`` term (48) when ``W_ih`` is frozen, equal when ``b_ih``
    is frozen too (docs/fpo.md, Limits)."""
    counts = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            gru = nn.GRU(3, 4)
            x = torch.randn(5, 3, 3, requires_grad=True)
        for name in frozen:
            getattr(gru, name).requires_grad_(False)
        counts.append(gp.count_fpo(gru, x, backward_from=lambda out: out[0]).backward_total)
    assert counts[1] - counts[0] == 3 * (5 - 1) * 4 * per_step


@pytest.mark.parametrize(("h_grad", "c_grad"), [(True, False), (False, True), (True, True)])
def test_fused_lstm_backward_counts_the_initial_states_gradients(h_grad, c_grad):
    """LSTM(3, 4), T = 5, batch 3, given ``(h0, c0)`` that need a gradient: the recurrence
    also computes ``dh0 = da_1 @ W_hh`` (2 x 16 x 3 x 4 = 384) and ``dc0 = dc_1 * f_1`` (3 x 4
    = 12) on top of the 8,736 FPO without them. The fused CPU rule assumed neither was
    needed and counted 8,736 whatever the states; it now reads them (``needs_input_grad``),
    and the CPU and the meta device agree."""
    counts = []
    for device in ("cpu", "meta"):
        with torch.device(device):
            lstm = nn.LSTM(3, 4)
            x = torch.randn(5, 3, 3, requires_grad=True)
            h0 = torch.randn(1, 3, 4, requires_grad=h_grad)
            c0 = torch.randn(1, 3, 4, requires_grad=c_grad)

        def run(x, h, c, lstm=lstm):
            return lstm(x, (h, c))[0]

        counts.append(gp.count_fpo(run, x, h0, c0).backward_total)
    assert counts == [8736 + 384 * h_grad + 12 * c_grad] * 2
