"""``gp.count_fpo`` counts the float work of ATen's quantized CPU kernels besides linear and conv.

Until session 28 an int8 model's ``torch.sigmoid``, average pooling, ``mean``, bilinear
upsampling and ``cat`` on ``quint8`` tensors read 0 FPO (the counter took any ``aten`` op on
quantized tensors for integer work), and ``quantized.add``, ``quantized.mul``,
``quantized.hardswish``, ``quantized.leaky_relu``, ``quantized.layer_norm`` and
``quantized.batch_norm2d`` were ops with no rule; yet each dequantizes, computes in float and
requantizes, or scales an int32 sum by a float multiplier. And ``greener``'s ``counted_as`` took
every op of the int8 namespaces with no rule for integer work, so a variant running one was not
marked "at least".

Each count is proved by emulating the kernel's float steps with plain float torch ops (counted by
the counter's float rules) and checking that the emulation gives the kernel's int8 values, or by
hand where the kernel's float work is index arithmetic. The counts are those of the x86 engines
(AVX2 vectors; see ``greenprint.fpo._rules_quantized``).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from _int8 import S, Z  # noqa: E402
from _int8 import q as _q  # noqa: E402
from _int8 import quantize as _quantize  # noqa: E402
from _int8 import t as _t  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.greener._result import counted_as  # noqa: E402

pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the x86 kernels' counts


def _inv(v: float) -> torch.Tensor:
    return torch.reciprocal(_t(v))  # 1 / scale: 1 (Python's 1 / t also multiplies by 1)


def _dq(q: torch.Tensor, premul: torch.Tensor | None = None) -> torch.Tensor:
    qf = q.int_repr().float()
    if premul is None:  # (q - zp) * scale: 2
        return (qf - q.q_zero_point()) * q.q_scale()
    return torch.addcmul(premul, qf, _t(q.q_scale()))  # fmadd(scale, q, scale * -zp): 2


def _premul(q: torch.Tensor) -> torch.Tensor:
    return _t(q.q_scale()) * _t(float(q.q_zero_point())).neg()  # per call: 2


def _sigmoid(q):
    inv = _inv(1 / 256)
    y = torch.reciprocal(1 + torch.exp(torch.neg(_dq(q))))
    return _quantize(y, inv, 0)


def _hardsigmoid(q):
    premul, inv = _premul(q), _inv(1 / 256)
    y = torch.clamp_max(torch.clamp_min(_dq(q, premul) + 3, 0), 6) / 6
    return _quantize(y, inv, 0)


def _tanh(q):
    premul, inv = _premul(q), _inv(2 / 256)
    return _quantize(torch.tanh(_dq(q, premul)), inv, 128)


def _gelu(q):
    premul, inv = _premul(q), _inv(q.q_scale())
    x = _dq(q, premul)
    return _quantize(x * 0.5 * (1 + torch.erf(x * math.sqrt(0.5))), inv, q.q_zero_point())


def _leaky(q, out_scale=S, out_zp=Z, slope=0.1):
    inv, premul = _inv(out_scale), _premul(q)
    x = _dq(q, premul)
    return _quantize(x * torch.where(x > 0, _t(1.0), _t(slope)), inv, out_zp)


def _hardswish(q, out_scale=0.04, out_zp=100):
    premul, inv = _premul(q), _inv(out_scale)
    x = _dq(q, premul)
    return _quantize(x * torch.clamp_max(torch.clamp_min(x + 3, 0), 6) / 6, inv, out_zp)


def _add(qa, qb, out_scale=0.1, out_zp=120, relu=False):
    inv, pa, pb = _inv(out_scale), _premul(qa), _premul(qb)
    c = _dq(qa, pa) + _dq(qb, pb)
    return _quantize(torch.clamp_min(c, 0) if relu else c, inv, out_zp)


def _mul(qa, qb, out_scale=0.1, out_zp=120):
    inv = _inv(out_scale)
    multiplier = _t(qa.q_scale()) * _t(qb.q_scale()) * inv  # 2
    prod = (qa.int_repr().int() - qa.q_zero_point()) * (qb.int_repr().int() - qb.q_zero_point())
    r = torch.round(prod.float() * multiplier).to(torch.int32)  # requantize_from_int: 2
    return (r + out_zp).clamp(0, 255)


def _case(name):
    qb = _q(2, 4, 8, 8, scale=0.07, zp=120, seed=1)
    return {
        "aten.sigmoid": (torch.sigmoid, _sigmoid),
        "aten.hardsigmoid": (F.hardsigmoid, _hardsigmoid),
        "aten.tanh": (torch.tanh, _tanh),
        "aten.gelu": (F.gelu, _gelu),
        "aten.leaky_relu": (lambda q: F.leaky_relu(q, 0.1), _leaky),
        "quantized.leaky_relu": (
            lambda q: torch.ops.quantized.leaky_relu(q, 0.1, False, 0.06, 110),
            lambda q: _leaky(q, 0.06, 110),
        ),
        "quantized.hardswish": (lambda q: torch.ops.quantized.hardswish(q, 0.04, 100), _hardswish),
        "quantized.add": (
            lambda q: torch.ops.quantized.add(q, qb, 0.1, 120),
            lambda q: _add(q, qb),
        ),
        "quantized.add_relu": (
            lambda q: torch.ops.quantized.add_relu(q, qb, 0.1, 120),
            lambda q: _add(q, qb, relu=True),
        ),
        "quantized.mul": (
            lambda q: torch.ops.quantized.mul(q, qb, 0.1, 120),
            lambda q: _mul(q, qb),
        ),
    }[name]


@pytest.mark.parametrize(
    "op",
    [
        "aten.sigmoid",
        "aten.hardsigmoid",
        "aten.tanh",
        "aten.gelu",
        "aten.leaky_relu",
        "quantized.leaky_relu",
        "quantized.hardswish",
        "quantized.add",
        "quantized.add_relu",
        "quantized.mul",
    ],
)
def test_an_elementwise_int8_kernel_counts_its_float_steps(op):
    kernel, emulate = _case(op)
    q = _q(2, 4, 8, 8)  # 512 elements: whole vectors
    counted = gp.count_fpo(kernel, q, backward=False)
    emulated = gp.count_fpo(emulate, q, backward=False)
    # the emulation is the kernel: the same int8 values (libm's and the vectors' exp, tanh,
    # erf may round a value the other way)
    assert (emulate(q) - kernel(q).int_repr().int()).abs().max() <= 1
    assert counted.unknown_ops == {}
    assert counted.by_op[op] == counted.total == emulated.total > 0  # before: 0, or no rule


def test_adding_a_scalar_requantizes_only_when_the_sum_leaves_the_int8_range():
    q = _q(2, 3, 8, 8)  # 384 elements
    for c, rescaled in ((1.0, False), (100.0, True), (-100.0, True)):
        counted = gp.count_fpo(lambda t, c=c: torch.ops.quantized.add(t, c), q, backward=False)
        assert (torch.ops.quantized.add(q, c).q_scale() != S) is rescaled  # the kernel's branch
        # c / scale rounded (2); in range a copy with a new zero point; else the new scale (4),
        # 1 / scale and the multiplier (2), requantize_from_int per element (2)
        assert counted.by_op["quantized.add"] == (2 + 4 + 2 + 2 * 384 if rescaled else 2)


def test_clamping_quantized_values_quantizes_only_its_bounds():
    q = _q(2, 3, 8, 8)
    by_op = lambda f: gp.count_fpo(f, q, backward=False).by_op  # noqa: E731
    # the int8 values are clamped on integers; each float bound is quantized once (6)
    assert by_op(lambda t: t.clamp(-1, 1))["aten.clamp"] == 12
    assert by_op(lambda t: t.clamp(min=-1))["aten.clamp"] == 6
    assert by_op(F.relu6)["aten.hardtanh"] == 12
    assert by_op(torch.relu)["aten.relu"] == 0  # compares with the zero point: integers


def test_average_pooling_counts_its_requantization():
    q = _q(2, 4, 8, 8)
    counted = gp.count_fpo(lambda t: F.avg_pool2d(t, 2), q, backward=False)
    # emulated: the integer window sums (0), then per output the multiplier and requantization
    sums = q.int_repr().long().unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2)) - 4 * Z

    def requantize(sums):
        scale_factor = _t(S) / _t(S)  # input_scale / output_scale, per call: 1
        multiplier = scale_factor / torch.full(sums.shape, 4.0)  # per output: 1
        return torch.round(sums.float() * multiplier + Z)  # 3

    emulated = gp.count_fpo(requantize, sums, backward=False)
    assert torch.equal(requantize(sums).int(), F.avg_pool2d(q, 2).int_repr().int())
    assert counted.by_op["aten.avg_pool2d"] == emulated.total == 4 * 2 * 4 * 16 + 1  # before: 0

    # channels last (NHWC kernel): per output pixel in_scale / out_scale / size (2); 12 channels,
    # one vector block of 8 (QuantizeAvx2: 3 each) and 4 past it (1 / multiplier and the scalar
    # quantize_val 6: 7 each; the compiler folds acc * 1.0)
    nhwc = _q(2, 12, 8, 8).contiguous(memory_format=torch.channels_last)
    counted = gp.count_fpo(lambda t: F.avg_pool2d(t, 2), nhwc, backward=False)
    assert counted.by_op["aten.avg_pool2d"] == 2 * 16 * (2 + 8 * 3 + 4 * 7)


def test_adaptive_average_pooling_counts_its_window_arithmetic():
    # the window bounds are floats: floor((float)(o * in) / out) and ceil of the next (2 + 2);
    # NCHW, per channel of the batch: depth bounds 4 + 1 / kD; per output row height bounds 4
    # + / kH; per output element width bounds 4 + / kW + sum * kDHWr + nearbyint
    q = _q(2, 4, 8, 8)
    for size, (oh, ow) in ((1, (1, 1)), (3, (3, 3))):
        counted = gp.count_fpo(lambda t, s=size: F.adaptive_avg_pool2d(t, s), q, backward=False)
        per_channel = 5 + oh * (5 + ow * 7)
        assert counted.by_op["aten._adaptive_avg_pool2d"] == 2 * 4 * per_channel  # before: 0
    # channels last, per batch element: depth bounds 4, per row 4, per pixel width bounds 4 and
    # in_scale / out_scale / size 2; 12 channels: a block of 8 (1 / multiplier, FBGEMM's
    # Quantize 1 + 3 each) and 4 past it (1 / multiplier + quantize_val 6)
    nhwc = q[:, :3].repeat(1, 4, 1, 1).contiguous(memory_format=torch.channels_last)
    counted = gp.count_fpo(lambda t: F.adaptive_avg_pool2d(t, 1), nhwc, backward=False)
    assert counted.by_op["aten._adaptive_avg_pool2d"] == 2 * (4 + 4 + (6 + (2 + 8 * 3) + 4 * 7))


def test_mean_upsampling_and_cat_of_quantized_tensors():
    q = _q(2, 4, 8, 8)
    by_op = lambda f, t: gp.count_fpo(f, t, backward=False).by_op  # noqa: E731
    # mean over the innermost dims: the integer sum / N and nearbyint per output (2)
    assert by_op(lambda t: t.mean((2, 3)), q)["aten.mean"] == 2 * 8
    # over dim 1: dequantize (N), the float mean (N + M), quantize_per_tensor (3M + 1)
    assert by_op(lambda t: t.mean(1), q)["aten.mean"] == 2 * 512 + 4 * 128 + 1
    # bilinear x2 (8x8 -> 16x16): per call out / in scale and each axis' 1 / scale factor and
    # its > 0 check (5); each source index scale * (dst + 0.5) - 0.5, max 0, its truncation to
    # an index, its two lambdas (7) per output column and per output row of each channel; per
    # output element the blend (10) and quantize_val (6)
    up = by_op(lambda t: F.interpolate(t, scale_factor=2.0, mode="bilinear"), q)
    assert up["aten.upsample_bilinear2d"] == 5 + 7 * 16 + 7 * 8 * 16 + 16 * 8 * 256
    # cat: each input dequantized (1 per element), quantize_per_tensor (3 per element + 1),
    # whatever the inputs' qparams
    other = _q(2, 4, 8, 8, scale=0.07, zp=120, seed=1)
    assert by_op(lambda t: torch.cat([t, other], 1), q)["aten.cat"] == 4 * 1024 + 1
    # channels last along the channels: an input with the output's qparams is copied (0); the
    # other is rescaled per pixel: 44 channels, a block of 32 (scale * -zp 2, 5 each), 8 more as
    # a whole 32-lane block (2 + 5 x 32), 4 past them (dequantize_val 1 + quantize_val 6)
    a = q.contiguous(memory_format=torch.channels_last)
    b = _q(2, 44, 8, 8, scale=0.07, zp=120).contiguous(memory_format=torch.channels_last)
    cat = by_op(lambda t: torch.ops.quantized.cat([t, b], 1, S, Z), a)
    assert cat["quantized.cat"] == 1 + 128 * ((2 + 32 * 5) + (2 + 32 * 5) + 4 * 7)
    # fewer than 8 channels: one by one (7 each)
    small = _q(2, 4, 8, 8, scale=0.07, zp=120).contiguous(memory_format=torch.channels_last)
    cat = by_op(lambda t: torch.ops.quantized.cat([t, small], 1, S, Z), a)
    assert cat["quantized.cat"] == 1 + 128 * 4 * 7


def test_layer_norm_and_batch_norm_count_their_float_steps():
    # layer norm over 40 values: per row the statistics (11), 32 values in one vector block
    # (dequantize 2, (x - mean) * rstd * gamma + beta 4, the block quantized once per float
    # vector of it: 4 x 3) and 8 past it (dequantize_val 1, 4, quantize_val 6); per call 3
    q = _q(3, 5, 40)
    w, b = torch.randn(40), torch.randn(40)
    counted = gp.count_fpo(
        lambda t: torch.ops.quantized.layer_norm(t, [40], w, b, 1e-5, 0.1, 128), q, backward=False
    )
    assert counted.by_op["quantized.layer_norm"] == 15 * (11 + 32 * 18 + 8 * 11) + 3
    # batch norm over 44 channels: per channel alpha and beta (10); per pixel a block of 32
    # (dequantize 2, fmadd 2, quantize 3), the next 8 to 31 channels one 32-lane dequantize and
    # quantize with the multiply-add on their float vectors (5 x 32 + 2 x 8), 4 past them (3)
    q = _q(2, 44, 4, 4)
    ones, zeros = torch.ones(44), torch.zeros(44)
    counted = gp.count_fpo(
        lambda t: torch.ops.quantized.batch_norm2d(t, ones, zeros, zeros, ones, 1e-5, 0.1, 128),
        q,
        backward=False,
    )
    per_pixel = 32 * 7 + (5 * 32 + 2 * 8) + 4 * 3
    assert counted.by_op["quantized.batch_norm2d"] == 32 * per_pixel + 10 * 44 + 2
    assert counted.unknown_ops == {}


def test_an_fx_int8_model_with_pooling_sigmoid_and_add_counts_them():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from greenprint.greener._variants import quiet_torch_ao

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            y = self.conv(x)
            return self.pool(torch.sigmoid(y) + y).flatten(1)

    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    with quiet_torch_ao():
        prepared = prepare_fx(Net().eval(), get_default_qconfig_mapping("x86"), (x,))
        prepared(x)
        model = convert_fx(prepared)
    with torch.no_grad():
        counted = gp.count_fpo(model, x, backward=False)
    out = 4 * 8 * 8 * 8
    assert counted.unknown_ops == {}
    assert counted.by_op["aten.sigmoid"] == 9 * out + 1  # before: 0
    assert counted.by_op["quantized.add"] == 8 * out + 5  # before: "no FPO rule"
    # the int8 convolution returns channels-last tensors: the pooling's NHWC kernel, per batch
    # element the bounds (4 + 4 + 4), the multiplier (2), one block of 8 channels (1 + 1 + 8 x 3)
    assert counted.by_op["aten._adaptive_avg_pool2d"] == 4 * (4 + 4 + 4 + 2 + 2 + 8 * 3)  # was 0


def test_an_int8_op_with_no_rule_makes_the_count_a_lower_bound():
    # quantized.linear_with_input_q_dq_qweight_dq_output_fp32 (FBGEMM's linear of a float
    # input quantized to given qparams, its output dequantized) does float work: no rule yet
    # (session 29 gave quantized.softmax and quantized.threshold, session 30 quantized.clamp,
    # this test's ops until then, their rules)
    op = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32
    w = torch.quantize_per_tensor(torch.randn(4, 16), 0.1, 0, torch.qint8)
    prepacked = torch.ops.quantized.linear_prepack(w, None)
    x = torch.randn(3, 16)
    counted = gp.count_fpo(lambda t: op(t, 0.05, 128, prepacked), x, backward=False)
    name = "quantized.linear_with_input_q_dq_qweight_dq_output_fp32"
    assert counted.unknown_ops == {name: 1}
    recorded = counted_as(counted.total, [counted])
    assert not isinstance(recorded, int)  # before: the int, as if nothing were missed
    assert recorded.unknown_ops == {name: 1}
    # wholly integer int8 ops (packing weights) have a rule of 0: never a lower bound
    packed = gp.count_fpo(lambda t: torch.ops.quantized.linear_prepack(t, None), w, backward=False)
    assert packed.unknown_ops == {} and packed.total == 0
    assert counted_as(packed.total, [packed]) == 0
