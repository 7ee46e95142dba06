"""``gp.count_fpo`` on a static int8 model counts what ``greener.compare`` counts, by hand.

Until session 28 a user counting a static int8 model (``prepare_fx``/``convert_fx``, or eager
``QuantStub``/``convert``) with ``gp.count_fpo`` got the quantize and dequantize steps only: the
int8 kernels (``quantized.linear``, ``quantized.conv2d``) take and return quantized tensors
only, the counter read 0 for any op without a float tensor, and they were listed as ops with no
rule ("2 op(s) have no FPO rule and were not counted"), while ``greener.compare`` counted their
requantization on the same model: docs/greener.md's MLP read 3,201 FPO for a batch of 64, the
greener row 20,229 (316.08 per inference). Now the counter applies the rules of the
``quantized`` namespace whatever their tensors' dtypes; an ``aten`` op on quantized tensors
only (``aten.relu`` on ``quint8``) stays 0, as integer work.

The counts follow FBGEMM's kernels (the x86 and fbgemm engines): a static int8 kernel 4 FPO per
output element with a float bias (2 without: the multiply and the rounding) + 2 per output
channel for per-channel weights (3 per call for per-tensor ones); ``quantize_per_tensor`` 3 per
element + 1; ``dequantize`` 1 per element.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import greenprint as gp  # noqa: E402
from greenprint.greener._variants import quiet_torch_ao  # noqa: E402

pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the counts follow FBGEMM's kernels


def test_count_fpo_of_an_fx_static_int8_mlp_is_the_greener_rows_count():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)
    ).eval()
    m = 64
    x = torch.randn(m, 16)
    with quiet_torch_ao():
        mapping = get_default_qconfig_mapping(torch.backends.quantized.engine)
        prepared = prepare_fx(copy.deepcopy(model), mapping, (x,))
        prepared(x)
        static = convert_fx(prepared)
    with torch.no_grad():
        counted = gp.count_fpo(static, x, backward=False)
    # per-channel weights (the x86 default), each linear with a bias; the ReLU fused (integers)
    by_hand = {
        "aten.quantize_per_tensor": 3 * m * 16 + 1,
        "quantized.linear_relu": 4 * m * 64 + 2 * 64,
        "quantized.linear": 4 * m * 2 + 2 * 2,
        "aten.dequantize": m * 2,
    }
    assert counted.unknown_ops == {}  # before: both kernels, "no FPO rule"
    assert dict(counted.by_op) == by_hand
    assert counted.total == sum(by_hand.values()) == 20_229  # 3,201 before; 316.08 per example
    assert counted.matmul_total == 0  # the products are int8: integer work


def test_count_fpo_of_an_eager_static_int8_cnn_by_hand():
    # eager mode, not fused: ReLU runs on quint8 (an integer clamp: 0, and a rule, not unknown);
    # per-tensor weights (default_qconfig), a convolution without bias
    from torch.ao.quantization import DeQuantStub, QuantStub, convert, default_qconfig, prepare

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.dequant = QuantStub(), DeQuantStub()
            self.conv = torch.nn.Conv2d(1, 4, 3, bias=False)
            self.relu, self.pool = torch.nn.ReLU(), torch.nn.MaxPool2d(2)
            self.fc = torch.nn.Linear(4 * 3 * 3, 2)

        def forward(self, x):
            x = self.pool(self.relu(self.conv(self.quant(x))))
            return self.dequant(self.fc(x.flatten(1)))

    torch.manual_seed(0)
    b = 32
    x = torch.randn(b, 1, 8, 8)
    net = Net().eval()
    net.qconfig = default_qconfig
    with quiet_torch_ao():
        prepare(net, inplace=True)
        net(x)
        convert(net, inplace=True)
    with torch.no_grad():
        counted = gp.count_fpo(net, x, backward=False)
    conv_out = b * 4 * 6 * 6  # 4,608 output elements
    by_hand = {
        "aten.quantize_per_tensor": 3 * b * 64 + 1,
        "quantized.conv2d": 2 * conv_out + 3,  # no bias: multiply, round; per tensor: 3
        "aten.relu": 0,  # quint8: clamps integers
        "aten.quantized_max_pool2d": 0,  # compares uint8 values
        "quantized.linear": 4 * b * 2 + 3,
        "aten.dequantize": b * 2,
    }
    assert counted.unknown_ops == {}
    assert {op: counted.by_op[op] for op in by_hand} == by_hand
    assert counted.total == sum(by_hand.values()) == 15_687
    assert counted.by_module["conv"] == by_hand["quantized.conv2d"]


def test_interpolating_a_quantized_tensor_is_counted_not_raised():
    # the counter decomposed interpolate's composite op into ops that take no quantized dtype:
    # count_fpo raised "ValueError: Invalid dtype!" on a model the plain forward ran
    q = torch.quantize_per_tensor(torch.randn(1, 2, 4, 4), 0.1, 128, torch.quint8)

    def upsample(t):
        return torch.nn.functional.interpolate(t, scale_factor=2.0)

    counted = gp.count_fpo(upsample, q, backward=False)
    expected = q.int_repr().repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.equal(upsample(q).int_repr(), expected)
    assert counted.total == 0 and counted.unknown_ops == {}  # nearest copies uint8 values
