"""``gp.count_fpo`` counts the int8 ops of ``torch.ao.nn.quantized`` modules that had no rule.

Until this session ``nnq.Sigmoid`` (``quantized.sigmoid``), ``nnq.ReLU6`` (``quantized.relu6``),
``nnq.PReLU`` (``quantized.prelu``), ``quantized.threshold``, ``QFunctional.add_scalar`` and
``mul_scalar``, ``nnq.ConvTranspose1d``-``3d`` (``quantized.conv_transpose*d``), the fp16 dynamic
linear (``quantize_dynamic(..., dtype=torch.float16)``: ``quantized.linear_dynamic_fp16``) and
``nnq.Embedding``/``EmbeddingBag`` (``quantized.embedding_byte``, ``embedding_bag_byte``) were
ops with no rule: a model using them got a lower-bound count.

Each count is proved as in ``test_quantized_ops_s29``: the kernel's float steps emulated with
plain float torch ops (counted by the float rules), the emulation giving the kernel's values,
for the x86 engines (ATen's ``QuantizedOpKernels.cpp``, ``qmul.cpp``, ``qadd.cpp``,
``qlinear_dynamic.cpp``, ``qembeddingbag.cpp``; FBGEMM's ``EmbeddingSpMDM``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.ao.nn.quantized as nnq  # noqa: E402
from _int8 import S, Z  # noqa: E402
from _int8 import q as _q  # noqa: E402
from _int8 import quantize as _quantize  # noqa: E402
from _int8 import t as _t  # noqa: E402

import greenprint as gp  # noqa: E402

pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the x86 kernels' counts


def _requantize(ints: torch.Tensor, multiplier: torch.Tensor, zp: int) -> torch.Tensor:
    # requantize_from_int: the int32 times the multiplier, rounded (2); + zp, clamp on integers
    return (torch.round(ints.float() * multiplier).to(torch.int32) + zp).clamp(0, 255)


def _counts(kernel, emulate, *inputs):
    counted = gp.count_fpo(kernel, *inputs, backward=False)
    emulated = gp.count_fpo(emulate, *inputs, backward=False)
    assert counted.unknown_ops == {}  # each was an op with no rule
    return counted, emulated.total


def test_sigmoid_threshold_prelu_and_relu6_modules_count_their_float_steps():
    q = _q(2, 4, 8, 8)  # 512 elements: whole vectors
    n = q.numel()

    sigmoid = nnq.Sigmoid(1 / 256, 0)  # its op: quantized.sigmoid to the given qparams

    def sigmoid_emulated(t):
        # (q - zp) * scale (2), neg, exp, 1 +, reciprocal (4), quantize (3); 1 / scale per call
        x = (t.int_repr().float() - t.q_zero_point()) * t.q_scale()
        return _quantize(
            torch.reciprocal(1 + torch.exp(torch.neg(x))), torch.reciprocal(_t(1 / 256)), 0
        )

    assert (sigmoid(q).int_repr().int() - sigmoid_emulated(q)).abs().max() <= 1  # libm's exp
    counted, emulated = _counts(sigmoid, sigmoid_emulated, q)
    assert counted.by_op["quantized.sigmoid"] == emulated == 9 * n + 1

    def threshold(t):
        return torch.ops.quantized.threshold(t, 0.1, 0.5)

    def threshold_emulated(t):
        # dequantize fmadd(scale, q, scale * -zp) (2 + 2 per call), x > threshold (1), the
        # blend (0), quantize to the input's qparams (3 + 1 per call)
        premul = _t(S) * _t(float(Z)).neg()
        x = torch.addcmul(premul, t.int_repr().float(), _t(S))
        return _quantize(torch.where(x > 0.1, x, _t(0.5)), torch.reciprocal(_t(S)), Z)

    assert torch.equal(threshold(q).int_repr().int(), threshold_emulated(q))
    counted, emulated = _counts(threshold, threshold_emulated, q)
    assert counted.by_op["quantized.threshold"] == emulated == 6 * n + 3

    prelu = nnq.PReLU(0.07, 120, num_parameters=4)
    prelu.set_weight(torch.quantize_per_tensor(torch.rand(4) * 0.5, 0.004, 3, torch.quint8))

    def prelu_emulated(t):
        # the values split at the zero point and multiplied by the quantized 1 or slope on
        # integers (0); per call 1 / out_scale, in_scale * w_scale * inv (3) and the quantized 1
        # (quantize_val: 1 / w_scale, * inv, nearbyint, + zp, the clamp's two compares: 6)
        w = prelu.weight
        inv_w = torch.reciprocal(_t(w.q_scale()))
        one = torch.clamp_max(
            torch.clamp_min(torch.round(_t(1.0) * inv_w) + w.q_zero_point(), 0), 255
        )
        inv = torch.reciprocal(_t(0.07))
        multiplier = _t(t.q_scale()) * _t(w.q_scale()) * inv
        x = t.int_repr().int() - t.q_zero_point()
        slope = (w.int_repr().int() - w.q_zero_point()).view(1, 4, 1, 1)
        ints = x.clamp_min(0) * (int(one) - w.q_zero_point()) + x.clamp_max(0) * slope
        return _requantize(ints, multiplier, 120)

    assert torch.equal(prelu(q).int_repr().int(), prelu_emulated(q))
    counted, emulated = _counts(prelu, prelu_emulated, q)
    assert counted.by_op["quantized.prelu"] == emulated == 2 * n + 9

    # relu6 clamps integers between the zero point and the quantized 6.0 (quantize_val once: 6)
    counted = gp.count_fpo(nnq.ReLU6(), q, backward=False)
    assert counted.unknown_ops == {} and counted.by_op["quantized.relu6"] == 6


def test_qfunctional_scalar_add_and_mul_count_their_branch():
    q = _q(2, 3, 8, 8)  # 384 elements
    f = nnq.QFunctional()
    # add_scalar: the shifted zero point in range is a copy (c / scale rounded: 2); out of range
    # the new scale, 1 / scale, the multiplier and requantize_from_int per element (2N + 8)
    for c, expected in ((1.0, 2), (100.0, 2 * 384 + 8)):
        counted = gp.count_fpo(lambda t, c=c: f.add_scalar(t, c), q, backward=False)
        assert counted.unknown_ops == {} and counted.by_op["quantized.add_scalar"] == expected
    # mul_scalar keeps or flips the int8 values on integers and computes the scale: c > 0 and
    # c * scale (2); c == 0 two compares (2); c < 0 the compares, abs and the multiply (4)
    for c, expected in ((2.0, 2), (0.0, 2), (-2.0, 4)):
        out = f.mul_scalar(q, c)
        assert out.q_scale() == pytest.approx(abs(c) * S if c else 1.0)  # the kernel's branch
        counted = gp.count_fpo(lambda t, c=c: f.mul_scalar(t, c), q, backward=False)
        assert counted.unknown_ops == {} and counted.by_op["quantized.mul_scalar"] == expected


@pytest.fixture
def fbgemm_engine():
    """FBGEMM's kernels, whose epilogue the int8 convolution rules count.

    The default ``x86`` engine hands a convolution with symmetric weights (zero point 0) to
    oneDNN on a CPU with AVX-512 VNNI (``should_use_onednn_quant``), whose transposed
    convolution's output is off the float convolution of the dequantized tensors by up to 24
    steps of the output scale (torch 2.13 on an AMD EPYC with VNNI: 4.77 against FBGEMM's
    0.0998), so the emulation below holds there for FBGEMM's kernel only.
    """
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch build has no FBGEMM engine")
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    yield
    torch.backends.quantized.engine = before


def test_transposed_int8_convolution_requantizes_each_output_as_the_convolution(fbgemm_engine):
    torch.manual_seed(0)
    conv = nnq.ConvTranspose2d(4, 3, 3)
    w = torch.randn(4, 3, 3, 3) * 0.2
    weight = torch.quantize_per_tensor(w, float(w.abs().max()) / 127, 0, torch.qint8)
    bias = torch.randn(3)
    conv.set_weight_bias(weight, bias)  # per-tensor qint8 weights, a float bias
    conv.scale, conv.zero_point = 0.2, 100
    q = _q(2, 4, 6, 6)
    # the int32 sums (integer work) computed apart, exactly, in float64
    w_int = (weight.int_repr().double() - weight.q_zero_point()).float().double()
    x_int = q.int_repr().double() - q.q_zero_point()
    sums = torch.nn.functional.conv_transpose2d(x_int, w_int).round()

    def requantize(s):
        # per call act * w, 1 / (act * w), its / out_scale (3); per output element the bias
        # scaled and added (2), the multiply and the rounding (2)
        act_w = _t(S) * _t(weight.q_scale())
        rcp, multiplier = torch.reciprocal(act_w), act_w / 0.2
        raw = s + bias.view(1, 3, 1, 1).expand_as(s) * rcp
        return (torch.round(raw * multiplier).to(torch.int32) + 100).clamp(0, 255)

    assert (conv(q).int_repr().int() - requantize(sums.float())).abs().max() <= 1
    counted = gp.count_fpo(conv, q, backward=False)
    emulated = gp.count_fpo(requantize, sums.float(), backward=False).total
    out = 2 * 3 * 8 * 8
    assert counted.unknown_ops == {}
    assert counted.by_op["quantized.conv_transpose2d"] == emulated == 4 * out + 3
    # packing its weights is integer work: 0, and no op without a rule
    packed = gp.count_fpo(
        lambda t: torch.ops.quantized.conv_transpose2d_prepack(
            t, None, [1, 1], [0, 0], [0, 0], [1, 1], 1
        ),
        weight,
        backward=False,
    )
    assert packed.unknown_ops == {} and packed.total == 0


def test_fp16_dynamic_linear_counts_its_float_products_and_bias():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())
    fp16 = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.float16)
    x = torch.randn(5, 16)
    w16 = net[0].weight.detach().half().float()  # the weights as the kernel reads them

    def emulated(t):
        # cblas_gemm_compute: float multiply-adds over K (2MNK), then output.add_(bias) (MN)
        return torch.matmul(t, w16.t()) + net[0].bias.detach()

    torch.testing.assert_close(fp16[0](x), emulated(x), rtol=1e-5, atol=1e-5)
    counted, total = _counts(fp16[0], emulated, x)
    assert counted.by_op["quantized.linear_dynamic_fp16"] == total == 2 * 5 * 8 * 16 + 5 * 8
    relu = gp.count_fpo(
        lambda t: torch.ops.quantized.linear_relu_dynamic_fp16(
            t, fp16[0]._packed_params._packed_params
        ),
        x,
        backward=False,
    )
    assert relu.total == total + 5 * 8  # the fused ReLU's max per output element


def test_int8_embedding_bags_count_each_row_they_add():
    torch.manual_seed(0)
    d = 12
    packed = torch.ops.quantized.embedding_bag_byte_prepack(torch.randn(10, d))
    rows = packed[:, :d].float()
    scale_bias = packed[:, d:].contiguous().view(torch.float32)  # each row's float scale, bias
    indices, offsets = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2])
    weights = torch.rand(5)

    def bag(p, per_sample=None):
        return torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
            p, indices, offsets, False, 0, False, per_sample
        )

    def bag_emulated(p, per_sample=None):
        # per index, per value: out + bias, fma(scale, q, .) (3); with per-sample weights
        # scale * w and bias * w per index (2)
        bags = []
        for start, end in ((0, 2), (2, 5)):
            out = torch.zeros(d)
            for j in range(start, end):
                i = int(indices[j])
                scale, bias = scale_bias[i, 0:1], scale_bias[i, 1:2]
                if per_sample is not None:
                    scale, bias = scale * per_sample[j], bias * per_sample[j]
                out = torch.addcmul(out + bias, rows[i], scale)
            bags.append(out)
        return torch.stack(bags)

    for per_sample, expected in ((None, 3 * d * 5), (weights, 3 * d * 5 + 2 * 5)):
        assert torch.equal(bag(packed, per_sample), bag_emulated(packed, per_sample))
        counted, emulated = _counts(
            lambda p, w=per_sample: bag(p, w), lambda p, w=per_sample: bag_emulated(p, w), packed
        )
        assert counted.total == emulated == expected

    # 4-bit and 2-bit rows: the values unpacked from their bits on integers, the same float
    # steps with the rows' fp16 scale and bias
    for bits, prepack, op in (
        (4, "embedding_bag_4bit_prepack", "embedding_bag_4bit_rowwise_offsets"),
        (2, "embedding_bag_2bit_prepack", "embedding_bag_2bit_rowwise_offsets"),
    ):
        packed_n = getattr(torch.ops.quantized, prepack)(torch.randn(10, d))
        per_byte, width = 8 // bits, d * bits // 8
        raw = packed_n[:, :width].int()
        nibbles = [(raw >> (bits * k)) & ((1 << bits) - 1) for k in range(per_byte)]
        rows = torch.stack(nibbles, -1).reshape(10, d).float()  # bag_emulated reads these two
        scale_bias = packed_n[:, width : width + 4].contiguous().view(torch.float16).float()

        def run(p, op=op):
            return getattr(torch.ops.quantized, op)(p, indices, offsets, False, 0, False, None)

        assert torch.equal(run(packed_n), bag_emulated(packed_n))
        counted, emulated = _counts(run, bag_emulated, packed_n)
        assert counted.total == emulated == 3 * d * 5

    # the modules: nnq.EmbeddingBag (embedding_bag_byte) and nnq.Embedding (embedding_byte,
    # one index per bag), 3 per value of each row looked up
    float_bag = torch.nn.EmbeddingBag(10, d, mode="sum")
    float_bag.qconfig = torch.ao.quantization.float_qparams_weight_only_qconfig
    qbag = nnq.EmbeddingBag.from_float(float_bag)
    counted = gp.count_fpo(qbag, indices, offsets, backward=False)
    assert counted.unknown_ops == {} and counted.by_op["quantized.embedding_bag_byte"] == 3 * d * 5
    float_emb = torch.nn.Embedding(10, d)
    float_emb.qconfig = torch.ao.quantization.float_qparams_weight_only_qconfig
    qemb = nnq.Embedding.from_float(float_emb)
    counted = gp.count_fpo(qemb, indices.view(1, 5), backward=False)
    assert counted.unknown_ops == {} and counted.by_op["quantized.embedding_byte"] == 3 * d * 5


def test_dynamic_convolution_quantizes_its_input_and_runs_the_static_kernel():
    import torch.ao.nn.quantized.dynamic as nnqd

    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6)
    for conv, static in (
        (nnqd.Conv2d(4, 3, 3), torch.ops.quantized.conv2d),
        (nnqd.ConvTranspose2d(4, 3, 3), torch.ops.quantized.conv_transpose2d),
    ):
        # the input's scale and zero point as apply_dynamic chooses them (reduce_range, the
        # modules' default), computed apart
        scale, zp = torch._choose_qparams_per_tensor(x, True)

        def emulated(t, conv=conv, static=static, scale=scale, zp=zp):
            # at::quantize_per_tensor (3N + 1), the static kernel to the input's qparams,
            # at::dequantize of its output (1 per element)
            q = torch.quantize_per_tensor(t, scale, zp, torch.quint8)
            return static(q, conv._packed_params, scale, zp).dequantize()

        assert torch.equal(conv(x), emulated(x))
        counted, total = _counts(conv, emulated, x)
        # + the input's min and max (2 per element) and ChooseQuantizationParams (22)
        assert counted.total == total + 2 * x.numel() + 22


def test_cat_relu_counts_as_cat_and_its_channels_last_kernel_rescales_every_input():
    qa, qb = _q(2, 40, 3, 3), _q(2, 3, 3, 3, seed=1)

    def cat_relu(a, b):
        return torch.ops.quantized.cat_relu([a, b], 1, 0.1, 128)

    def emulated(a, b):
        # each input dequantized (1 per element), the float cat, quantize_per_tensor (3N + 1);
        # the ReLU clamps the quantized output at the zero point on integers (0)
        y = torch.cat([a.dequantize(), b.dequantize()], 1)
        return torch.quantize_per_tensor(y, 0.1, 128, torch.quint8).int_repr().clamp_min(128)

    assert torch.equal(cat_relu(qa, qb).int_repr(), emulated(qa, qb))
    counted, total = _counts(cat_relu, emulated, qa, qb)
    assert counted.by_op["quantized.cat_relu"] == total == 4 * 2 * 43 * 9 + 1
    # channels last along the channels (qcat_relu_nhwc): both inputs rescaled per pixel, though
    # qa has the output's qparams; qa's 40 channels: a block of 32 (scale * -zp 2, dequantize,
    # max, quantize: 6 each) and 8 as one whole 32-lane block (2 + 5 x 32 + the max on its
    # float vector, 8); qb's 3 one by one (dequantize_val, max, quantize_val: 8 each)
    nhwc = [t.contiguous(memory_format=torch.channels_last) for t in (qa, qb)]
    # (the scalar loop's quantize_val and the vectors' rounding may differ on a tie)
    assert (cat_relu(*nhwc).int_repr().int() - emulated(qa, qb).int()).abs().max() <= 1
    pixels = 2 * 3 * 3
    by_hand = 1 + pixels * ((2 + 32 * 6) + (2 + 32 * 5 + 8) + 3 * 8)
    counted = gp.count_fpo(
        lambda a, b: torch.ops.quantized.cat_relu([a, b], 1, S, Z), *nhwc, backward=False
    )
    assert counted.by_op["quantized.cat_relu"] == by_hand


def _packed_cells(layer):
    # each (layer, direction)'s CellParamsBase holds its two packed linears in its state
    return [p.param.__getstate__()[0][-1] for p in layer._all_weight_values]


def _lstm_cell(x_gates, h, c, hh, linear):
    gates = linear(h, hh).add_(x_gates)  # 4 per hidden value
    i, f, g, o = gates.chunk(4, 1)
    c = (f.sigmoid() * c).add_(i.sigmoid() * g.tanh())  # 3 sigmoid + tanh + 3
    return o.sigmoid() * c.tanh(), c  # tanh, * (2)


def _gru_cell(x_gates, h, hh, linear):
    xr, xz, xn = x_gates.chunk(3, 1)
    hr, hz, hn = linear(h, hh).chunk(3, 1)
    r, z = hr.add_(xr).sigmoid(), hz.add_(xz).sigmoid()  # 2 sums, 2 sigmoids
    n = xn.add(hn.mul_(r)).tanh()  # 3
    return (h - n).mul_(z).add_(n)  # 3


def test_dynamic_lstm_and_gru_count_their_linears_and_cells():
    # quantize_dynamic's nn.LSTM and nn.GRU run aten.quantized_lstm / quantized_gru (one op):
    # per layer and direction the input linear over the whole sequence, then per step the
    # hidden linear and the cell's float math; the emulation runs those steps as ops
    torch.manual_seed(0)
    steps, batch, hidden = 5, 2, 16
    x = torch.randn(steps, batch, 8)

    def int8(t, packed):
        return torch.ops.quantized.linear_dynamic(t, packed, True)  # reduce_range, as the layer

    def fp16(t, packed):
        return torch.ops.quantized.linear_dynamic_fp16(t, packed)

    for dtype, linear in ((torch.qint8, int8), (torch.float16, fp16)):
        lstm = torch.nn.Sequential(torch.nn.LSTM(8, hidden, num_layers=2))
        qlstm = torch.ao.quantization.quantize_dynamic(lstm, {torch.nn.LSTM}, dtype=dtype)[0]
        cells = _packed_cells(qlstm)

        def lstm_emulated(t, cells=cells, linear=linear):
            for ih, hh in cells:  # two layers, one direction
                h = c = torch.zeros(batch, hidden)
                outs = []
                for x_gates in linear(t, ih).unbind(0):
                    h, c = _lstm_cell(x_gates, h, c, hh, linear)
                    outs.append(h)
                t = torch.stack(outs)
            return t

        assert torch.equal(qlstm(x)[0], lstm_emulated(x))
        counted, emulated = _counts(qlstm, lstm_emulated, x)
        assert counted.by_op["aten.quantized_lstm"] == emulated > 0, dtype  # was no rule

    gru = torch.nn.Sequential(torch.nn.GRU(8, hidden, bidirectional=True))
    qgru = torch.ao.quantization.quantize_dynamic(gru, {torch.nn.GRU}, dtype=torch.qint8)[0]
    (fw_ih, fw_hh), (bw_ih, bw_hh) = _packed_cells(qgru)

    def gru_emulated(t):
        outs = []
        for ih, hh, order in ((fw_ih, fw_hh, 1), (bw_ih, bw_hh, -1)):
            h, direction = torch.zeros(batch, hidden), []
            for x_gates in linear_steps(int8(t, ih), order):
                h = _gru_cell(x_gates, h, hh, int8)
                direction.append(h)
            outs.append(torch.stack(direction[::order]))
        return torch.cat(outs, -1)

    def linear_steps(gates, order):
        return list(gates.unbind(0))[::order]

    assert torch.equal(qgru(x)[0], gru_emulated(x))
    counted, emulated = _counts(qgru, gru_emulated, x)
    assert counted.by_op["aten.quantized_gru"] == emulated > 0

    # the dynamic cells (nn.LSTMCell under quantize_dynamic): the input and hidden linears
    # per call and the cell
    cell = torch.nn.Sequential(torch.nn.LSTMCell(8, hidden))
    qcell = torch.ao.quantization.quantize_dynamic(cell, {torch.nn.LSTMCell}, dtype=torch.qint8)[0]

    def cell_emulated(t):
        h = c = torch.zeros(batch, hidden)
        return _lstm_cell(int8(t, qcell._packed_weight_ih), h, c, qcell._packed_weight_hh, int8)[0]

    assert torch.equal(qcell(x[0])[0], cell_emulated(x[0]))
    counted, emulated = _counts(qcell, cell_emulated, x[0])
    assert counted.by_op["quantized.quantized_lstm_cell_dynamic"] == emulated > 0
