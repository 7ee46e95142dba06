"""The models people train today, counted as a user writes them, each count proved (s20, D).

Every model is written by hand in plain PyTorch at a tiny size, counted with the public API (and
the command line) as docs/fpo.md shows, and each expected count is derived by hand from the
op's maths in a comment beside it, under docs/fpo.md's conventions: a multiply-accumulate is
2 FPO (``2mkn`` for a product), reducing n values costs n adds, one FPO per elementwise
arithmetic op, compare or elementary function, a bias add 1 per output element. What the
earlier probes proved (SDPA, transformer layers, GRU/LSTM, grouped convolutions, autocast,
compile) is used here, not proved again.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import warnings  # noqa: E402

from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


# -- quantization-aware training ------------------------------------------------------------------


def _fake_quant(n: int, scales: int = 1) -> int:
    """Fake quantization of ``n`` elements with ``scales`` scales: per element
    ``q = round(x / s) + z`` (multiply by ``1/s``, round, add: 3), ``(clamp(q) - z) * s``
    (2 compares, subtract, multiply: 4), and one ``1/s`` per scale."""
    return 7 * n + scales


def _observe(n: int, channels: int = 1) -> int:
    """The fused observer: min and max of ``n`` elements (2 compares each), the moving averages
    ``r + c (x - r)`` of min and max (3 each), and the scale and zero point chosen from them
    (``min(m, 0)``, ``max(M, 0)``, ``(M - m) / (q_max - q_min)`` 2, ``max(s, eps)``,
    ``q_min - m / s`` 2, round, clamp 2: 10), per channel."""
    return 2 * n + (6 + 10) * channels


def test_quantization_aware_training_counts_its_fake_quantization_and_observers():
    """A user's QAT model (``prepare_qat`` with torch's default x86 QAT configuration) ran
    ``_fused_moving_avg_obs_fq_helper`` (the fused observer + fake quantization) three times
    per step, and ``FakeQuantize`` modules ran ``fake_quantize_*_cachemask``: no rule, so every
    QAT count was a lower bound (``unknown_ops``), the quantization counted 0. Each is now
    counted from ATen's kernel (see ``greenprint.fpo._rules_quant``)."""
    import torch.ao.quantization as tq

    torch.manual_seed(0)
    model = nn.Sequential(tq.QuantStub(), nn.Linear(6, 3), nn.ReLU(), tq.DeQuantStub())
    model.qconfig = tq.get_default_qat_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        qat = tq.prepare_qat(model.train())
    x = torch.randn(4, 6)
    c = gp.count_fpo(qat, x)
    assert c.unknown_ops == {}
    # forward: the input's observer + fake quantization, per tensor (24 elements): 64 + 169;
    # the weight's, per output channel (18 elements, 3 channels): 84 + 129; the product
    # 4 * 3 * (2*6 + 1) = 156; the output's (12 elements) 40 + 85; ReLU 12
    observers = _observe(24) + _fake_quant(24) + _observe(18, 3) + _fake_quant(18, 3)
    observers += _observe(12) + _fake_quant(12)
    assert c.by_op["aten._fused_moving_avg_obs_fq_helper"] == observers == 571
    assert c.forward_total == observers + 156 + 12 == 739
    assert c.by_module["1.weight_fake_quant"] == 84 + 129 + 18  # + its backward mask multiply
    # backward: the straight-through gradient is ``grad * mask``, 1 per element of the weight
    # (18) and of the output (12); grad_weight 2*3*4*6 = 144; the bias 4*3 = 12; ReLU 12; the
    # data needs no gradient (no grad_input, nothing through the input's fake quantization)
    assert c.backward_total == 30 + 144 + 12 + 12 == 198
    # the observer disabled (as after calibration) leaves the quantization: 7N + 1
    stub = qat[0].activation_post_process
    stub.disable_observer()
    assert gp.count_fpo(stub, x, backward=False).total == _fake_quant(24) == 169
    stub.disable_fake_quant()  # both off: a copy
    assert gp.count_fpo(stub, x, backward=False).total == 0


def test_fake_quantize_ops_and_learnable_quantization_are_counted_from_their_kernels():
    """``FakeQuantize`` (an observer op by op, then ``_fake_quantize_..._tensor_qparams``), the
    functional ``torch.fake_quantize_per_tensor_affine`` / ``_per_channel_affine`` and LSQ's
    learnable fake quantization (``_fake_quantize_learnable_*`` and their backward): no rule
    before, counted 0 and listed. Input (4, 6), 24 elements."""
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

    torch.manual_seed(0)
    x = torch.randn(4, 6)
    count = gp.count_fpo
    # functional, no gradient: 7N + 1 per tensor; per channel of dim 1 (6 scales) 7N + 6
    per_tensor = count(
        lambda t: torch.fake_quantize_per_tensor_affine(t, 0.1, 0, -128, 127), x, backward=False
    )
    assert (per_tensor.total, per_tensor.unknown_ops) == (169, {})
    scales, zeros = torch.full((6,), 0.1), torch.zeros(6, dtype=torch.int32)
    per_channel = count(
        lambda t: torch.fake_quantize_per_channel_affine(t, scales, zeros, 1, -128, 127),
        x,
        backward=False,
    )
    assert per_channel.total == 7 * 24 + 6
    # with a gradient: the backward is ``grad * mask``, 1 per element
    grad = count(
        lambda t: torch.fake_quantize_per_tensor_affine(t, 0.1, 0, -128, 127),
        x.clone().requires_grad_(),
    )
    assert (grad.forward_total, grad.backward_total) == (169, 24)
    # the FakeQuantize module: its MovingAverageMinMaxObserver runs op by op (aminmax 48, the
    # averages and qparams as torch ops), then the tensor-qparams fake quantization 169
    module = count(FakeQuantize(observer=MovingAverageMinMaxObserver), x, backward=False)
    assert module.unknown_ops == {}
    assert module.by_op["aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams"] == 169
    # LSQ, per tensor: forward 7N + 1 + the zero point rounded and clamped (3): 172; backward
    # per element 12 inside the range (round(x/s) + z 3, dy*mask 1, x_fq 4, dscale
    # dy (x_fq - x) / s * grad_factor 4), 13 outside it (dzp = dy (-1) s g 3 and dscale
    # dy (bound - z) g 2 instead of 4), the sums of dscale and dzp (2N), 1/s and the zero
    # point's + 0.5 and clamp (4). Scale 0.1, range [-4, 3]: x / 0.1 clips where
    # round(x * 10) < -4 or > 3
    s = torch.tensor([0.1], requires_grad=True)
    z = torch.tensor([0.0], requires_grad=True)
    clipped = int(((x * 10).round() < -4).sum() + ((x * 10).round() > 3).sum())
    assert 0 < clipped < 24
    lsq = count(
        lambda t, s_, z_: torch._fake_quantize_learnable_per_tensor_affine(t, s_, z_, -4, 3, 1.0),
        x.clone().requires_grad_(),
        s,
        z,
    )
    assert lsq.unknown_ops == {}
    assert lsq.forward_total == 7 * 24 + 1 + 3
    assert lsq.backward_total == 14 * 24 + clipped + 4
    # per channel (dim 1, 6 channels): each zero point rounded and clamped, 1/s each (4C); the
    # backward's kernel computes 1/s, q_min - z and q_max - z per element (+3: 15, 16 clipped),
    # 2N sums, each zero point's + 0.5 and clamp (3C)
    s6 = torch.full((6,), 0.1, requires_grad=True)
    z6 = torch.zeros(6, requires_grad=True)
    lsq6 = count(
        lambda t, s_, z_: torch._fake_quantize_learnable_per_channel_affine(
            t, s_, z_, 1, -4, 3, 1.0
        ),
        x.clone().requires_grad_(),
        s6,
        z6,
    )
    assert lsq6.unknown_ops == {}
    assert lsq6.forward_total == 7 * 24 + 4 * 6
    assert lsq6.backward_total == 17 * 24 + clipped + 3 * 6


# -- complex tensors: rotary embeddings and a Fourier neural operator -----------------------------


def _rope_complex(x, freqs_cis):
    """LLaMA's rotary embedding: pairs of ``x`` as complex numbers times ``freqs_cis``."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * freqs_cis).flatten(-2)


def _rope_real(x, cos, sin):
    """The same rotation written with cos and sin (GPT-NeoX style, on interleaved pairs)."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)


def test_rotary_embeddings_count_the_same_maths_complex_or_with_cos_and_sin():
    """A rotary embedding written with ``torch.view_as_complex`` counted 32 FPO forward for the
    32 rotated pairs of a (2, 4, 8) query (1 per complex multiply, listed in ``complex_ops``);
    the same rotation written with cos and sin counted 192. A complex multiply
    ``(a + bi)(c + di) = (ac - bd) + (ad + bc)i`` is 4 multiplies and 2 adds: both forms are
    now 6 per pair forward, 192. Backward, the complex form multiplies the gradient by
    ``conj(freqs_cis)`` (6 per pair, 192); the cos/sin form runs what its autograd graph holds:
    four multiplies by cos/sin (128), the negation of ``sin``'s term (32), the two adds into
    each half (64) and the add of the two halves' gradients back into ``x`` (64): 288."""
    torch.manual_seed(0)
    pairs = 2 * 4 * 4
    freqs = torch.polar(torch.ones(4, 4), torch.randn(4, 4))
    q = torch.randn(2, 4, 8, requires_grad=True)
    complex_form = gp.count_fpo(_rope_complex, q, freqs)
    real_form = gp.count_fpo(_rope_real, q, freqs.real, freqs.imag)
    assert complex_form.forward_total == real_form.forward_total == 6 * pairs == 192
    assert complex_form.complex_ops == {} and complex_form.unknown_ops == {}
    assert complex_form.backward_total == 6 * pairs
    assert real_form.backward_total == 4 * pairs + pairs + 2 * pairs + 2 * pairs == 288
    # the two forms compute the same numbers
    torch.testing.assert_close(_rope_complex(q, freqs), _rope_real(q, freqs.real, freqs.imag))
    # a complex op with no real-FPO conversion (sin) is still counted as if real, and listed
    z = torch.randn(3, dtype=torch.complex64)
    listed = gp.count_fpo(torch.sin, z, backward=False)
    assert (listed.total, listed.complex_ops) == (3, {"aten.sin": 1})


class SpectralConv2d(nn.Module):
    """A Fourier neural operator layer: rfft2, complex weights on the lowest modes, irfft2."""

    def __init__(self, c_in: int, c_out: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        scale = 1 / (c_in * c_out)
        self.weight = nn.Parameter(
            scale * torch.randn(c_in, c_out, modes, modes, dtype=torch.cfloat)
        )

    def forward(self, x):
        b, _, h, w = x.shape
        m = self.modes
        x_ft = torch.fft.rfft2(x)
        out_ft = torch.zeros(b, self.weight.shape[1], h, w // 2 + 1, dtype=torch.cfloat)
        out_ft[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, :m, :m], self.weight)
        return torch.fft.irfft2(out_ft, s=(h, w))


def test_a_fourier_neural_operator_layer_counts_real_fpo_for_its_ffts_and_complex_weights():
    """SpectralConv2d(3 -> 4 channels, 2 x 2 modes) on (2, 3, 8, 8). Its complex einsum ran as a
    ``bmm`` counted ``2mkn`` as if real (192, listed as too low). A complex multiply-add is 8
    real FPO: the product is now ``8mkn``.

    Forward: rfft2 of 6 planes of 64 points, ``2.5 N log2 N`` = 960 each: 5,760; the einsum,
    per mode (4) a (2 x 3) @ (3 x 4) complex product, 24 multiply-adds of 8: 768; irfft2 of
    8 planes: 7,680 + the ``1/N`` per output element (512): 8,192. Backward (the input is
    data): irfft2's backward is an rfft2 of the gradient (7,680) scaled by ``1/N`` per
    one-sided element (2*4*8*5 = 320), the 3 inner columns of the one-sided spectrum doubled
    (a complex times 2: 2 real FPO each, 2*4*8*3 elements: 384); the weight's gradient, per
    mode a (3 x 2) @ (2 x 4) complex product: 768.
    """
    torch.manual_seed(0)
    layer = SpectralConv2d(3, 4, 2)
    c = gp.count_fpo(layer, torch.randn(2, 3, 8, 8))
    assert (c.unknown_ops, c.complex_ops) == ({}, {})
    assert c.forward_total == 5_760 + 768 + 8_192 == 14_720
    assert c.backward_total == 7_680 + 320 + 384 + 768 == 9_152
    assert c.by_op["aten.bmm"] == 2 * 768
    assert c.matmul_total == 2 * 192  # FlopCounterMode's 2mkn for each complex product
