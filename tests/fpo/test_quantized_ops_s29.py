"""``gp.count_fpo`` counts the int8 ops that had no FPO rule until session 29.

``quantized.softmax``, ``quantized.elu`` (and ``celu``), ``quantized.group_norm``,
``quantized.instance_norm``, ``quantized.matmul``, ``quantized.batch_norm3d`` (and ``1d``, and
``batch_norm``, which picks one by rank) were ops with no rule: a model using
``torch.ao.nn.quantized``'s ``Softmax``, ``ELU``, ``GroupNorm``, ``InstanceNorm*d``,
``BatchNorm3d`` or ``QFunctional.matmul`` got a lower-bound count. 3-D average pooling of
``quint8`` tensors (``aten.avg_pool3d``, ``aten._adaptive_avg_pool3d``) counted 0, as integer
work, yet both scale their integer window sums in float and requantize (3-D max pooling does
compare integers only: 0).

Each count is proved by emulating the kernel's float steps with plain float torch ops (counted
by the counter's float rules) and checking that the emulation gives the kernel's int8 values,
or by hand from the kernel's loops (``aten/src/ATen/native/quantized/cpu/``: ``qsoftmax.cpp``,
``qmatmul.cpp``, ``qelu.cpp``, ``qnormalization.cpp``, ``Normalization.cpp``,
``AveragePool3d.cpp``, ``AdaptiveAveragePooling.cpp`` and ``kernels/QuantizedOpKernels.cpp``),
for the x86 engines (AVX2 vectors: 8 floats, 32 ``quint8``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _int8 import S, Z  # noqa: E402
from _int8 import quantize as _quantize  # noqa: E402
from _int8 import t as _t  # noqa: E402

import greenprint as gp  # noqa: E402

pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the x86 kernels' counts


def _q(*shape: int, seed: int = 0, positive: int | None = None) -> torch.Tensor:
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    if positive is not None:  # the first values above 0, a value below 0 in each vector after
        x.view(-1)[:positive] = x.view(-1)[:positive].abs() + 0.1
        x.view(-1)[positive::8] = -1.0
    return torch.quantize_per_tensor(x, S, Z, torch.quint8)


def _dq(qf: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    # Vectorized<quint8>::dequantize: fmadd(scale, q, scale * -zp), 2 per lane + 2 per call
    premul = _t(scale) * _t(float(zp)).neg()
    return torch.addcmul(premul, qf, _t(scale))


def _counts(kernel, emulate, *inputs):
    counted = gp.count_fpo(kernel, *inputs, backward=False)
    emulated = gp.count_fpo(emulate, *inputs, backward=False)
    assert counted.unknown_ops == {}
    return counted, emulated.total


def test_softmax_and_matmul_dequantize_run_the_float_op_and_quantize():
    # qsoftmax_naive and qmatmul (x86 builds have no Ruy): at::dequantize, the float op,
    # quantize_per_tensor; the emulation is the kernel, value for value
    q = _q(4, 16)

    def softmax(t):
        return torch.ops.quantized.softmax(t, 1, 1 / 256, 0)

    def softmax_emulated(t):
        return torch.quantize_per_tensor(torch.softmax(t.dequantize(), 1), 1 / 256, 0, t.dtype)

    assert torch.equal(softmax(q).int_repr(), softmax_emulated(q).int_repr())
    counted, emulated = _counts(softmax, softmax_emulated, q)
    # dequantize N, softmax 5N - rows (ATen's last-dimension kernel, s35; it was 5N), quantize
    # 3N + 1
    assert counted.by_op["quantized.softmax"] == counted.total == emulated == 9 * 64 + 1 - 4

    a, b = _q(2, 3, 4, 5), _q(2, 3, 5, 6, seed=1)

    def matmul(x, y):
        return torch.ops.quantized.matmul(x, y, 0.2, 100)

    def matmul_emulated(x, y):
        product = torch.matmul(x.dequantize(), y.dequantize())
        return torch.quantize_per_tensor(product, 0.2, 100, x.dtype)

    assert torch.equal(matmul(a, b).int_repr(), matmul_emulated(a, b).int_repr())
    counted, emulated = _counts(matmul, matmul_emulated, a, b)
    out = 2 * 3 * 4 * 6
    # both inputs dequantized, 2MNK per matrix, quantize_per_tensor
    assert counted.by_op["quantized.matmul"] == emulated == 120 + 180 + 2 * out * 5 + 3 * out + 1


def _elu(q, out_scale=0.04, out_zp=100, alpha=1.0, input_scale=1.0):
    inv = torch.reciprocal(_t(out_scale))
    x = _dq(q.int_repr().float(), q.q_scale(), q.q_zero_point()).reshape(-1, 8)
    branch = ~(x > 0).all(1)  # the compare per lane (1); a vector with a lane <= 0 branches
    xb = x[branch]
    # on the branching vectors' 8 lanes: * 1.0, * input_scale, expm1, * alpha, the blend's
    # compare (5)
    negative = torch.expm1(xb * 1.0 * input_scale) * alpha
    x[branch] = torch.where(xb > 0, xb, negative)
    y = x * 1.0  # ELU's scale argument (1)
    return _quantize(y.reshape(q.shape), inv, out_zp)


def test_elu_counts_the_expm1_branch_of_each_vector_that_takes_it():
    # the first 256 values above 0: their 32 vectors skip the branch; the other 32 take it
    q = _q(2, 4, 8, 8, positive=256)

    def elu(t):
        return torch.ops.quantized.elu(t, 0.04, 100)

    assert (elu(q).int_repr().int() - _elu(q)).abs().max() <= 1  # libm's and AVX2's expm1
    counted, emulated = _counts(elu, _elu, q)
    # per element dequantize 2, compare 1, * scale 1, quantize 3; 5 per lane of the 32
    # branching vectors; per call scale * -zp and 1 / out_scale
    assert counted.by_op["quantized.elu"] == emulated == 7 * 512 + 5 * 8 * 32 + 3  # was no rule
    every = _q(2, 4, 8, 8, positive=0)  # a value below 0 in every vector: each branches
    assert gp.count_fpo(elu, every, backward=False).total == 12 * 512 + 3
    # celu: elu with input_scale 1 / alpha, computed once (1)
    celu = gp.count_fpo(lambda t: torch.ops.quantized.celu(t, 0.04, 100, 2.0), q, backward=False)
    assert celu.by_op["quantized.celu"] == emulated + 1


def _group_statistics(q, rows, size, eps):
    """Each group's mean (less the zero point) and 1 / std, as both group-norm kernels compute
    them from one row of integer values per group: the integer sums (0), then 11 float steps."""
    total, squares = rows.sum(1).float(), (rows * rows).sum(1).float()
    shifted = total / size
    mean = shifted - q.q_zero_point()
    var = torch.clamp_min(squares / size - shifted * shifted, 0)
    xs = _t(q.q_scale())
    rstd = (xs.double() / torch.sqrt((var * xs * xs).double() + eps)).float()
    return mean, rstd


def _group_norm(q, groups, weight, bias, eps=1e-5, out_scale=0.1, out_zp=128):
    n, c = q.shape[:2]
    per_group = c // groups
    ints = q.int_repr()
    pixels = ints[0, 0].numel()
    size = per_group * pixels
    rows = ints.reshape(n * groups, size).long()
    mean, rstd = _group_statistics(q, rows, size, eps)
    gamma = rstd.view(n, groups, 1) * weight.view(1, groups, per_group)  # per channel (1)
    gamma, mean = gamma.reshape(n * c, 1), mean.repeat_interleave(per_group).view(n * c, 1)
    # each channel's values in vectors of 32 lanes, the rest padded to one more
    lanes = -(-pixels // 32) * 32
    padded = torch.zeros(n * c, lanes)
    padded[:, :pixels] = ints.reshape(n * c, pixels).float()
    x = _dq(padded, 1.0, q.q_zero_point())  # fake scale 1: 2 per lane
    used = -(-pixels // 8) * 8  # the float vectors holding values: (x - mean) * g + b (3)
    x[:, :used] = (x[:, :used] - mean) * gamma + bias.repeat(n).view(n * c, 1)
    y = _quantize(x, torch.reciprocal(_t(out_scale)), out_zp)  # 3 per lane, 1 per call
    return y[:, :pixels].reshape(q.shape)


def test_group_and_instance_norm_count_their_float_steps():
    q = _q(2, 4, 6, 6)  # 36 values per channel: a vector of 32 and a rest of 4
    weight, bias = torch.rand(4) + 0.5, torch.randn(4)

    def group_norm(t):
        return torch.ops.quantized.group_norm(t, 2, weight, bias, 1e-5, 0.1, 128)

    def emulated(t):
        return _group_norm(t, 2, weight, bias)

    assert (group_norm(q).int_repr().int() - emulated(q)).abs().max() <= 1
    counted, total = _counts(group_norm, emulated, q)
    # per channel: gamma_p (1), 32 values x 8, the rest's vector: 32 x (2 + 3) + 3 x 8
    channel = 1 + 32 * 8 + 32 * 5 + 3 * 8
    assert counted.by_op["quantized.group_norm"] == total == 2 * 2 * (11 + 2 * channel) + 3

    def instance_norm(t):
        return torch.ops.quantized.instance_norm(t, weight, bias, 1e-5, 0.1, 128)

    def instance_emulated(t):
        return _group_norm(t, 4, weight, bias)

    assert (instance_norm(q).int_repr().int() - instance_emulated(q)).abs().max() <= 1
    counted, total = _counts(instance_norm, instance_emulated, q)
    assert counted.by_op["quantized.instance_norm"] == total == 2 * 4 * (11 + channel) + 3

    # channels last (the output of an int8 convolution): quantized_groupnorm_nhwc_kernel; 40
    # channels in 2 groups of 20, 6 x 6 pixels (< 512): per group 11 and per channel scale and
    # bias (4); per pixel the group's 20 channels one by one (dequantize_val 1, x * s + b 2,
    # quantize_val 6)
    nhwc = _q(2, 40, 6, 6).contiguous(memory_format=torch.channels_last)
    w40, b40 = torch.rand(40) + 0.5, torch.randn(40)

    def nhwc_norm(t):
        return torch.ops.quantized.group_norm(t, 2, w40, b40, 1e-5, 0.1, 128)

    assert (nhwc_norm(nhwc).int_repr().int() - _group_norm_nhwc(nhwc, w40, b40)).abs().max() <= 1
    counted, total = _counts(nhwc_norm, lambda t: _group_norm_nhwc(t, w40, b40), nhwc)
    assert counted.by_op["quantized.group_norm"] == total == 2 * 2 * (11 + 4 * 20 + 36 * 20 * 9) + 3


def _group_norm_nhwc(q, weight, bias, groups=2, eps=1e-5, out_scale=0.1, out_zp=128):
    # fewer than 32 channels per group: every value by the kernel's scalar loop
    n, c = q.shape[:2]
    per_group, ints = c // groups, q.int_repr()
    size = per_group * ints[0, 0].numel()
    # per call, whatever the path: 1 / y_scale and the vectors' premultiplied 1.0 * -zp (3)
    torch.reciprocal(_t(out_scale)), _t(1.0) * _t(float(q.q_zero_point())).neg()
    rows = ints.reshape(n, groups, size).reshape(n * groups, size).long()  # NCHW order: a group
    mean, rstd = _group_statistics(q, rows, size, eps)
    # per channel: scale = rstd * gamma, bias = -scale * mean + beta (4)
    scale = rstd.view(n, groups, 1) * weight.view(1, groups, per_group)
    shift = scale.neg() * mean.view(n, groups, 1) + bias.view(1, groups, per_group)
    scale, shift = scale.reshape(n, c, 1, 1), shift.reshape(n, c, 1, 1)
    # per value: dequantize_val with the fake scale 1 ((q - zp) on integers, * 1.0: 1),
    # x * scale + bias (2), quantize_val (1 / scale, x * inv, nearbyint, + zp, the clamp: 6)
    x = (ints.long() - q.q_zero_point()) * torch.ones(ints.shape)
    y = x * scale + shift
    inv = torch.reciprocal(torch.full(ints.shape, out_scale))
    return torch.clamp_max(torch.clamp_min(torch.round(y * inv) + out_zp, 0), 255).int()


def test_batch_norm_of_any_rank_runs_the_2d_kernel_per_pixel():
    # q_batch_norm{1d,3d}_impl run q_batch_norm_kernel on a channels-last copy: per channel
    # alpha and beta (10); per pixel (N x D x H x W) a block of 32 channels (dequantize 2, fmadd
    # 2, quantize 3), the next 8 to 31 as one 32-lane dequantize and quantize with the fmadd
    # on their float vectors (5 x 32 + 2 x 8), 4 past them (3); per call 2
    q = _q(2, 44, 2, 3, 4)
    ones, zeros = torch.ones(44), torch.zeros(44)
    args = (ones, zeros, zeros, ones, 1e-5, 0.1, 128)
    per_pixel = 32 * 7 + (5 * 32 + 2 * 8) + 4 * 3
    expected = 2 * 24 * per_pixel + 10 * 44 + 2
    for op in ("batch_norm3d", "batch_norm3d_relu", "batch_norm"):
        run = lambda t, op=op: getattr(torch.ops.quantized, op)(t, *args)  # noqa: E731
        counted = gp.count_fpo(run, q, backward=False)
        assert counted.unknown_ops == {} and counted.total == expected, op  # was no rule
    line = _q(2, 44, 5)
    counted = gp.count_fpo(
        lambda t: torch.ops.quantized.batch_norm1d(t, *args), line, backward=False
    )
    assert counted.total == 2 * 5 * per_pixel + 10 * 44 + 2


def test_3d_average_pooling_counts_its_requantization():
    q = _q(2, 12, 4, 4, 4)
    counted = gp.count_fpo(lambda t: torch.nn.functional.avg_pool3d(t, 2), q, backward=False)
    # always the NDHWC kernel: the integer window sums - zp x size (0); per output voxel
    # in_scale / out_scale / 8 (2); channels 0-7 QuantizeAvx2 with that multiplier (3 each);
    # channels 8-11 1 / multiplier and quantize_val (7 each)
    windows = q.int_repr().long().unfold(2, 2, 2).unfold(3, 2, 2).unfold(4, 2, 2)
    sums = windows.sum((-1, -2, -3)) - 8 * Z

    def requantize(sums):
        multiplier = torch.full((2, 1, 2, 2, 2), S) / S / 8  # per voxel (2)
        block = torch.round(torch.clamp_max(sums[:, :8] * multiplier, 2147483520.0))
        # per channel past the block: 1 / multiplier, and quantize_val's own 1 / scale (2)
        inv = torch.reciprocal(torch.reciprocal(multiplier.expand(2, 4, 2, 2, 2)))
        # quantize_val: x * inv_scale, nearbyint, + zp, the clamp to [0, 255] in float (5)
        rest = torch.clamp(torch.clamp_min(torch.round(sums[:, 8:] * inv) + Z, 0), max=255)
        return torch.cat([block.long() + Z, rest.long()], 1)

    assert torch.equal(
        requantize(sums).int(), torch.nn.functional.avg_pool3d(q, 2).int_repr().int()
    )
    emulated = gp.count_fpo(requantize, sums, backward=False)
    assert counted.by_op["aten.avg_pool3d"] == emulated.total == 2 * 8 * (2 + 8 * 3 + 4 * 7)

    # adaptive: as in 2-d with a depth; per channel of the batch and output depth the depth
    # bounds 4 + 1 / kD; per output row 4 + / kH; per output element 4 + / kW + sum * kDHWr
    # + nearbyint
    counted = gp.count_fpo(
        lambda t: torch.nn.functional.adaptive_avg_pool3d(t, (2, 3, 1)), q, backward=False
    )
    assert counted.by_op["aten._adaptive_avg_pool3d"] == 2 * 12 * 2 * (5 + 3 * (5 + 7))
    # channels last 3-d: per batch element and output depth 4, per row 4, per voxel the width
    # bounds 4 and the multiplier 2; a block of 8 channels (1 / multiplier, Quantize's 1 /
    # scale, 3 each) and 4 past it (7 each)
    ndhwc = q.contiguous(memory_format=torch.channels_last_3d)
    counted = gp.count_fpo(
        lambda t: torch.nn.functional.adaptive_avg_pool3d(t, (1, 2, 1)), ndhwc, backward=False
    )
    assert counted.by_op["aten._adaptive_avg_pool3d"] == 2 * (
        4 + 2 * (4 + (6 + (2 + 8 * 3) + 4 * 7))
    )
    # max pooling compares integers
    assert (
        gp.count_fpo(lambda t: torch.nn.functional.max_pool3d(t, 2), q, backward=False).total == 0
    )


def test_an_int8_model_of_torch_ao_modules_has_no_op_without_a_rule():
    import torch.ao.nn.quantized as nnq

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nnq.BatchNorm3d(4, 0.06, 120)
            self.elu = nnq.ELU(0.05, 128)
            ones, zeros = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.zeros(4))
            self.group = nnq.GroupNorm(2, 4, ones, zeros, 0.1, 128)
            self.instance = nnq.InstanceNorm2d(4, ones, zeros, 0.1, 128)
            self.softmax = nnq.Softmax(dim=1, scale=1 / 256, zero_point=0)
            self.f = nnq.QFunctional()

        def forward(self, x):
            y = self.elu(self.bn(x)).flatten(2, 3)  # (2, 4, 4 x 4, 4)
            y = self.instance(self.group(y))
            return self.softmax(self.f.matmul(y, y.transpose(2, 3)))

    counted = gp.count_fpo(Net(), _q(2, 4, 4, 4, 4), backward=False)
    assert counted.unknown_ops == {}  # before: 6 ops with no rule, a lower bound
    ops = ("batch_norm3d", "elu", "group_norm", "instance_norm", "matmul", "softmax")
    assert all(counted.by_op[f"quantized.{op}"] > 0 for op in ops)
