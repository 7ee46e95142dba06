"""``gp.count_fpo`` counts the int8 ops a user reaches that were left without a rule.

Until this session ``quantized.clamp`` (TorchScript's), ``quantized.dropout``,
``torch.quantize_per_channel``, ``torch.quantize_per_tensor_dynamic`` and FBGEMM's embedding
table packing and unpacking (``quantized.embedding_bag_byte_prepack`` and its 4- and 2-bit,
``_unpack`` and ``_with_rowwise_min_max`` forms, ``quantized.embedding_bag_prepack``) were ops
with no rule (a lower-bound count), and ``F.hardtanh``/``F.relu6`` with ``inplace=True`` on a
``quint8`` tensor counted 0 (taken for integer work) where the out-of-place form counts 12.

Each count is proved as in ``test_quantized_ops_s29``: the kernel's float steps emulated with
float torch ops (counted by the float rules), the emulation giving the kernel's values (ATen's
``qclamp.cpp``, ``QuantizedOpKernels.cpp``, ``AffineQuantizerBase.cpp``, ``QTensor.cpp``,
``qembeddingbag_prepack.cpp``, ``qembeddingbag_unpack.cpp``; FBGEMM's ``QuantUtilsAvx2.cc``),
or by hand from the kernel's loop where it computes lanes no value needs.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from _int8 import S, Z  # noqa: E402
from _int8 import q as _q  # noqa: E402
from _int8 import t as _t  # noqa: E402

import greenprint as gp  # noqa: E402

FLT_MAX = torch.finfo(torch.float32).max

pytestmark = pytest.mark.usefixtures("fbgemm_engine")  # the x86 kernels' counts


def _counts(kernel, emulate, *inputs):
    counted = gp.count_fpo(kernel, *inputs, backward=False)
    emulated = gp.count_fpo(emulate, *inputs, backward=False)
    assert counted.unknown_ops == {}  # each was an op with no rule
    return counted, emulated.total


def _quantize_val(value: float, scale: float, zp: int) -> torch.Tensor:
    # FBGEMM's scalar Quantize: 1 / scale, x * inv, nearbyint, + zp, the clamp in double (6)
    inv = torch.reciprocal(_t(scale))
    return torch.clamp_max(torch.clamp_min(torch.round(_t(value) * inv) + zp, 0), 255)


def test_torchscript_clamp_and_inplace_hardtanh_quantize_their_bounds():
    q = _q(2, 4, 8, 8)

    def clamp(t):
        return torch.ops.quantized.clamp(t, -0.5, 0.5)

    def emulated(t):
        # each bound quantized once (6); the values clamped on integers (0)
        low, high = _quantize_val(-0.5, S, Z), _quantize_val(0.5, S, Z)
        return t.int_repr().int().clamp(int(low), int(high))

    assert torch.equal(clamp(q).int_repr().int(), emulated(q))
    counted, total = _counts(clamp, emulated, q)
    assert counted.by_op["quantized.clamp"] == total == 12
    one = gp.count_fpo(lambda t: torch.ops.quantized.clamp(t, None, 0.5), q, backward=False)
    assert one.by_op["quantized.clamp"] == 6  # one bound given
    # in place (F.relu6 / F.hardtanh with inplace=True): the clamp to a new tensor, its
    # integers copied back; was 0
    for low, high, fn in (
        (0.0, 6.0, lambda t: torch.nn.functional.relu6(t.clone(), inplace=True)),
        (-0.5, 0.5, lambda t: torch.nn.functional.hardtanh(t.clone(), -0.5, 0.5, inplace=True)),
    ):
        expected = (
            q.int_repr().int().clamp(int(_quantize_val(low, S, Z)), int(_quantize_val(high, S, Z)))
        )
        assert torch.equal(fn(q).int_repr().int(), expected)
        counted = gp.count_fpo(fn, q, backward=False)
        assert counted.by_op["aten.hardtanh_"] == counted.total == 12


def test_quantized_dropout_returns_its_input_and_counts_zero():
    q = _q(2, 3, 4, 4)
    for training in (False, True):
        out = torch.ops.quantized.dropout(q, 0.1, 3, 0.5, training)
        # quantized_dropout returns qx: the given output qparams are not even applied
        assert torch.equal(out.int_repr(), q.int_repr()) and out.q_scale() == S
        counted = gp.count_fpo(
            lambda t, training=training: torch.ops.quantized.dropout(t, 0.1, 3, 0.5, training),
            q,
            backward=False,
        )
        assert counted.unknown_ops == {} and counted.total == 0


def test_quantize_per_channel_runs_quantize_val_per_element():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10) * 3
    scales = torch.tensor([0.02, 0.05, 0.1], dtype=torch.float64)
    zero_points = torch.tensor([120, 128, 3])

    def kernel(t):
        return torch.quantize_per_channel(t, scales, zero_points, 1, torch.quint8)

    def emulated(t):
        # quantize_val per element: 1 / scale, x * inv, nearbyint, + zp, clamp (6)
        s = scales.float().view(1, 3, 1).expand_as(t)
        r = torch.round(t * torch.reciprocal(s)) + zero_points.view(1, 3, 1)
        return torch.clamp_max(torch.clamp_min(r, 0), 255)

    assert torch.equal(kernel(x).int_repr().float(), emulated(x))
    counted, total = _counts(kernel, emulated, x)
    assert counted.by_op["aten.quantize_per_channel"] == total == 6 * x.numel()

    # float zero points (the embeddings' per_channel_affine_float_qparams):
    # quantize_val_float_qparams, scale == 0, 1 / scale, x * inv + zp, lrintf (5); the clamp
    # on integers
    f_scales, f_zero_points = scales.float(), torch.tensor([40.5, 128.0, 7.25])

    def float_kernel(t):
        return torch.quantize_per_channel(t, f_scales, f_zero_points, 1, torch.quint8)

    def float_emulated(t):
        s = f_scales.view(1, 3, 1).expand_as(t)
        inv = torch.where(s == 0, torch.ones(()), torch.reciprocal(s))
        r = torch.round(t * inv + f_zero_points.view(1, 3, 1)).int()
        return r.clamp(0, 255)

    assert torch.equal(float_kernel(x).int_repr().int(), float_emulated(x))
    counted, total = _counts(float_kernel, float_emulated, x)
    assert counted.by_op["aten.quantize_per_channel"] == total == 5 * x.numel()


def test_quantize_per_tensor_dynamic_finds_its_range_and_quantizes():
    torch.manual_seed(0)
    x = torch.randn(6, 20)
    scale, zp = torch._choose_qparams_per_tensor(x, False)  # ChooseQuantizationParams, apart

    def kernel(t):
        return torch.quantize_per_tensor_dynamic(t, torch.quint8, False)

    def emulated(t):
        # min() and max() (N each), quantize_per_tensor (3N + 1)
        t.min(), t.max()
        return torch.quantize_per_tensor(t, scale, zp, torch.quint8)

    assert torch.equal(kernel(x).int_repr(), emulated(x).int_repr())
    counted, total = _counts(kernel, emulated, x)
    # + ChooseQuantizationParams on the min and max (22, as in the dynamic linear)
    assert counted.by_op["aten.quantize_per_tensor_dynamic"] == total + 22 == 5 * 120 + 23
    half = gp.count_fpo(
        lambda t: torch.quantize_per_tensor_dynamic(t, torch.float16, False), x, backward=False
    )
    assert half.unknown_ops == {} and half.total == 0  # a conversion


def _row_min_max(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # FBGEMM's AVX2 row min and max: 8-lane vectors over the row's blocks of 8 (1 + 1 per
    # value), each 8-lane buffer reduced into FLT_MAX / -FLT_MAX lane by lane (8 + 8), the
    # values past the last block one by one (1 + 1)
    rows, d = t.shape
    blocks = d // 8 * 8
    low, high = torch.full((rows, 8), FLT_MAX), torch.full((rows, 8), -FLT_MAX)
    for col in range(0, blocks, 8):
        low, high = (
            torch.minimum(low, t[:, col : col + 8]),
            torch.maximum(high, t[:, col : col + 8]),
        )
    mn, mx = torch.full((rows,), FLT_MAX), torch.full((rows,), -FLT_MAX)
    for lane in range(8):
        mn, mx = torch.minimum(mn, low[:, lane]), torch.maximum(mx, high[:, lane])
    for col in range(blocks, d):
        mn, mx = torch.minimum(mn, t[:, col]), torch.maximum(mx, t[:, col])
    return mn, mx


def test_byte_embedding_prepack_and_unpack_count_each_row():
    torch.manual_seed(0)
    rows, d = 6, 45  # a block of 32, one of 8, 5 values one by one
    w = torch.randn(rows, d) * 2

    def emulated(t, min_max=None):
        mn, mx = _row_min_max(t) if min_max is None else min_max
        span = mx - mn  # 1
        scale = span / 255.0  # 1
        inv = torch.div(torch.full_like(span, 255.0), span + 1e-8)  # 2
        q = torch.round((t - mn[:, None]) * inv[:, None])  # 3 per value
        return q, scale, mn

    packed = torch.ops.quantized.embedding_bag_byte_prepack(w)
    q, scale, bias = emulated(w)
    assert torch.equal(packed[:, :d].float(), q)
    assert torch.equal(
        packed[:, d:].contiguous().view(torch.float32), torch.stack([scale, bias], 1)
    )
    counted, total = _counts(torch.ops.quantized.embedding_bag_byte_prepack, emulated, w)
    assert counted.total == total == rows * (5 * d + 20)

    # the rows' min and max given: no scan (4 + 3 per value)
    min_max = torch.stack([w.min(1).values, w.max(1).values], 1)
    given = torch.ops.quantized.embedding_bag_byte_prepack_with_rowwise_min_max
    assert torch.equal(given(w, min_max), packed)
    counted = gp.count_fpo(lambda t: given(t, min_max), w, backward=False)
    by_hand = gp.count_fpo(lambda t: emulated(t, (min_max[:, 0], min_max[:, 1])), w, backward=False)
    assert counted.unknown_ops == {} and counted.total == by_hand.total == rows * (3 * d + 4)

    # unpacking: q * scale + bias per value (a fused multiply-add in vectors of 8, the rest in
    # double: 2)
    def unpack_emulated(p):
        sb = p[:, d:].contiguous().view(torch.float32).double()
        return (p[:, :d].double() * sb[:, :1] + sb[:, 1:]).float()

    unpack = torch.ops.quantized.embedding_bag_byte_unpack
    torch.testing.assert_close(unpack(packed), unpack_emulated(packed), rtol=0, atol=1e-6)
    counted, total = _counts(unpack, unpack_emulated, packed)
    assert counted.total == total == 2 * rows * d


def test_nbit_embedding_prepack_and_unpack_count_each_row():
    torch.manual_seed(0)
    rows, d = 5, 44  # a block of 32, then 12 values one by one
    w = torch.randn(rows, d)

    def emulated(t, bits):
        # min and max (2D + 16); the bias rounded to fp16 (0); max - min, == 0, / (2^b - 1),
        # the fp16 scale == 0, 1 / scale, isinf (6); per value (x - min) * inv rounded (3)
        mn, mx = _row_min_max(t)
        bias = mn.half().float()
        span = mx - bias
        scale = torch.where(span == 0, torch.ones(()), span / (2**bits - 1)).half().float()
        scale = torch.where(scale == 0, torch.ones(()), scale)
        inv = torch.reciprocal(scale)
        inv = torch.where(torch.isinf(inv), torch.ones(()), inv)
        q = torch.round((t - bias[:, None]) * inv[:, None]).int().clamp(0, 2**bits - 1)
        return q, scale, bias

    for bits in (4, 2):
        prepack = getattr(torch.ops.quantized, f"embedding_bag_{bits}bit_prepack")
        packed = prepack(w)
        per_byte, width = 8 // bits, d * bits // 8
        raw = packed[:, :width].int()
        values = [(raw >> (bits * k)) & ((1 << bits) - 1) for k in range(per_byte)]
        q, scale, bias = emulated(w, bits)
        assert torch.equal(torch.stack(values, -1).reshape(rows, d), q)
        scale_bias = packed[:, width:].contiguous().view(torch.float16).float()
        assert torch.equal(scale_bias, torch.stack([scale, bias], 1))
        counted, total = _counts(prepack, lambda t, bits=bits: emulated(t, bits), w)
        assert counted.total == total == rows * (5 * d + 22)

        # unpacking: fmadd(scale, q, bias) (2) on 4 vectors of 8 per block of 32 values; the
        # row's last 12 values are one more block of 32 whose 32 lanes are computed and 12
        # stored (counted by hand: 2 blocks x 32 lanes x 2 per row, not 2 x 44)
        unpack = getattr(torch.ops.quantized, f"embedding_bag_{bits}bit_unpack")
        out = unpack(packed)
        assert torch.equal(out, torch.addcmul(bias[:, None], q.float(), scale[:, None]))
        counted = gp.count_fpo(unpack, packed, backward=False)
        assert counted.unknown_ops == {} and counted.total == rows * 2 * 32 * 2


def test_packing_a_quantized_table_computes_each_rows_bias():
    torch.manual_seed(0)
    w = torch.randn(7, 12)
    scales, zero_points = torch.rand(7) * 0.05 + 0.01, torch.randn(7) * 20
    qw = torch.quantize_per_channel(w, scales, zero_points, 0, torch.quint8)
    assert qw.qscheme() == torch.per_channel_affine_float_qparams
    packed = torch.ops.quantized.embedding_bag_prepack(qw)
    # the packed bias is zero_point * scale * -1 (2 per row): a lookup of one row per bag
    # reads scale * q + bias
    indices, offsets = torch.arange(7), torch.arange(7)
    looked_up = torch.ops.quantized.embedding_bag_byte(packed, indices, offsets, False, 0, False)
    bias = zero_points * scales * -1
    expected = torch.addcmul(bias[:, None], qw.int_repr().float(), scales[:, None])
    torch.testing.assert_close(looked_up, expected, rtol=0, atol=1e-6)
    counted = gp.count_fpo(torch.ops.quantized.embedding_bag_prepack, qw, backward=False)
    assert counted.unknown_ops == {} and counted.total == 2 * 7


def test_legacy_quantized_cell_counts_its_cell_but_not_its_int8_linears():
    # docs/fpo.md: torch.quantized_rnn_tanh_cell (deprecated FBGEMM-packed weights) is split by
    # autograd before the counter sees it; its two int8 linears run FBGEMM directly (only their
    # output's and buffer's allocations reach the counter), so the count is the cell's float ops
    # alone: the gates' sum and tanh, 1 each per hidden value; the linears are listed as ops
    # with no rule (s31: a lower bound, said; none was listed before)
    torch.manual_seed(0)
    batch, inputs, hidden = 3, 5, 6

    def legacy(w):
        wq, col_offsets, scale, zp = torch.fbgemm_linear_quantize_weight(w)
        return wq, torch.fbgemm_pack_quantized_matrix(wq), col_offsets, scale, zp

    with warnings.catch_warnings():  # deprecated: torch warns once a process (TORCH_WARN_ONCE)
        warnings.simplefilter("ignore")
        ih, hh = legacy(torch.randn(hidden, inputs)), legacy(torch.randn(hidden, hidden))
    b_ih, b_hh, h = torch.randn(hidden), torch.randn(hidden), torch.randn(batch, hidden)

    def cell(x):
        return torch.quantized_rnn_tanh_cell(
            x, h, ih[0], hh[0], b_ih, b_hh, ih[1], hh[1], ih[2], hh[2], ih[3], hh[3], ih[4], hh[4]
        )

    counted = gp.count_fpo(cell, torch.randn(batch, inputs), backward=False)
    assert counted.unknown_ops == {"aten.fbgemm_linear_int8_weight_fp32_activation": 2}
    assert counted.by_op == {
        "aten.empty": 0,
        "aten.add_": batch * hidden,
        "aten.tanh": batch * hidden,
    }
