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
from torch.nn import functional as F  # noqa: E402

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
    one-sided complex element, 2 real multiplies each (2 * 2*4*8*5 = 640; it was 320, one per
    complex element), the 3 inner columns of the one-sided spectrum doubled
    (a complex times 2: 2 real FPO each, 2*4*8*3 elements: 384); the weight's gradient, per
    mode a (3 x 2) @ (2 x 4) complex product: 768.
    """
    torch.manual_seed(0)
    layer = SpectralConv2d(3, 4, 2)
    c = gp.count_fpo(layer, torch.randn(2, 3, 8, 8))
    assert (c.unknown_ops, c.complex_ops) == ({}, {})
    assert c.forward_total == 5_760 + 768 + 8_192 == 14_720
    assert c.backward_total == 7_680 + 640 + 384 + 768 == 9_472
    assert c.by_op["aten.bmm"] == 2 * 768
    assert c.matmul_total == 2 * 192  # FlopCounterMode's 2mkn for each complex product


# -- vision transformers ---------------------------------------------------------------------------


def _children_add_up(result) -> None:
    """Each module's row holds its children's: no child row exceeds its parent's share."""
    by_module = result.by_module
    for name, fpo in by_module.items():
        if not name:
            continue
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        children = [
            v
            for k, v in by_module.items()
            if k.startswith(f"{name}.") and "." not in k[len(name) + 1 :]
        ]
        assert sum(children) <= fpo, name
        assert fpo <= by_module[parent], name


class ViTBlock(nn.Module):
    """A ViT: patch embedding (a stride-4 conv), a cls token, a learned position embedding and
    one pre-norm block (SDPA attention, GELU MLP). 8 x 8 images, dimension 8, 2 heads."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 5, dim))
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        b, n, d = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(a)
        return x + self.mlp(self.ln2(x))


def test_a_vit_block_forward_backward_and_training_step_counted_from_its_maths():
    """ViTBlock on (2, 3, 8, 8): 4 patches + the cls token, 10 tokens of 8.

    Forward: patch conv ``2 * 2 * 8 * 3 * 16 * 4`` = 6,144 + bias 64; position add 80; each
    LayerNorm (ATen's kernel, s34; 600 before) per row of 8 float32 values, one vector: Welford
    48, its chunk merged 65, the 8 lanes 72, ``m2 / N``, rstd 3, ``-mean``: 190, ``* 10`` +
    4 per element = 2,220; qkv ``10 * 24 * 17`` = 4,080; SDPA (b 2,
    h 2, s 5, d 4) products ``2 * 4 * 25 * 8`` = 1,600 + scaling Q and K 160 + softmax
    (``_safe_softmax``: ATen's softmax ``5 * 100 - 20`` rows and the ``-inf`` compare 100;
    ``5 * 100`` before s35) 580: 2,340; proj ``10 * 8 * 17`` = 1,360; two residual adds 160; MLP
    ``10 * 32 * 17`` = 5,440, GELU ``5 * 320`` = 1,600, ``10 * 8 * 65`` = 5,200. Backward
    (the images need no gradient): MLP out grad_input and grad_weight 5,120 each + bias 80,
    GELU ``11 * 320``, MLP in 5,120 + 5,120 + 320; each LayerNorm (one thread) ``1 / N``, per
    row 2 + 11 - 2, per element 4 (weight) + 1 (bias) + 10 (input), the threads' sums 2 per
    column = 1,327 (1,060 before s34); the two residual gradients summed, 80 each;
    proj 1,280 + 1,280 + 80; SDPA four products of 800, softmax ``4 * 100 - 20`` (``4 *
    100`` before s35), the scalings 160: 3,740; qkv 3,840 + 3,840 + 240; the position
    gradient summed over the batch 80, the cls token's 16; the patch conv's grad_weight 6,144 + bias
    64.
    """
    torch.manual_seed(0)
    model, x = ViTBlock(), torch.randn(2, 3, 8, 8)
    c = gp.count_fpo(model, x)
    forward = 6_208 + 80 + 2_220 + 4_080 + 2_340 + 1_360 + 160 + 2_220 + 5_440 + 1_600 + 5_200
    backward = 10_320 + 3_520 + 10_560 + 1_327 + 160 + 2_640 + 3_740 + 7_920 + 1_327 + 96 + 6_208
    assert (c.forward_total, c.backward_total) == (forward, backward) == (30_908, 47_818)
    assert c.unknown_ops == {} and c.by_module[""] == c.total
    assert c.by_module["patch"] == 2 * 6_208 and c.by_module["qkv"] == 4_080 + 7_920
    assert c.by_module["mlp.1"] == 1_600 + 3_520
    _children_add_up(c)
    # a training step with AdamW: the same forward and backward, an MSE loss on (2, 5, 8):
    # ``(y - t)^2`` 2 per element + the mean 80 + 1 = 241, backward ``(2 / N) (y - t) g`` 3 per
    # element = 240 (ATen folds the mean's 1 / N into the scalar; it was counted 4, 320); the
    # update: AdamW with weight decay 14 per parameter element (1,312 of them) + 1 per
    # parameter tensor (16) for its step count
    run = gp.training_fpo(
        model, x, steps=10, target=torch.zeros(2, 5, 8), loss_fn=F.mse_loss, optimizer="adamw"
    )
    assert run.params == 1_312
    assert run.optimizer_total // run.steps == 14 * 1_312 + 16
    assert run.total // run.steps == c.total + 241 + 240 + 14 * 1_312 + 16


class WindowAttention(nn.Module):
    """Swin's shifted-window attention: roll, partition into 2 x 2 windows, attention with a
    relative position bias gathered from a learned table, merge, roll back."""

    def __init__(self, dim: int = 4, window: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.randn((2 * window - 1) ** 2, heads))
        grid = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack(grid).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("index", rel[..., 0] * (2 * window - 1) + rel[..., 1])

    def forward(self, x):
        b, h, w, c = x.shape
        ws = self.window
        x = torch.roll(x, (-1, -1), (1, 2))
        win = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        win = win.reshape(-1, ws * ws, c)
        nw, n, _ = win.shape
        q, k, v = (
            self.qkv(win).reshape(nw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.table[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = (attn + bias.unsqueeze(0)).softmax(-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(nw, n, c))
        out = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return torch.roll(out, (1, 1), (1, 2))


def test_swin_window_attention_counted_from_its_maths():
    """WindowAttention on (1, 4, 4, 4): 4 windows of 4 tokens, 2 heads of 2.

    Forward: qkv ``16 * 12 * 9`` = 1,728; scaling q 64; the two products, ``2 * 8 * 4 * 4 * 2``
    = 512 each; the bias add 128 (rolls, window views and the table gather: 0); softmax
    ``5 * 128 - 32`` rows = 608 (ATen's kernel: the max and the sum start from their first
    values, ``1 / sum`` once per row; 640 before s35); proj ``16 * 4 * 9`` = 576. Backward (the
    input is data): proj 512 + 512 + bias 64; the two products' backward, two products each: 4
    * 512; softmax ``4 * 128 - 32`` (512 before s35);
    the bias gradient summed over the 4 windows 128 and scattered into the table (index_put
    with accumulation, 1 add per gathered entry: 32); the scaling 64; qkv grad_weight
    ``2 * 16 * 4 * 12`` = 1,536 + bias 192.
    """
    torch.manual_seed(0)
    c = gp.count_fpo(WindowAttention(), torch.randn(1, 4, 4, 4))
    assert c.forward_total == 1_728 + 64 + 1_024 + 128 + 608 + 576 == 4_128
    assert c.backward_total == 1_088 + 2_048 + 480 + 128 + 32 + 64 + 1_728 == 5_568
    assert c.by_op["aten.index_put"] == 32 and c.unknown_ops == {}
    _children_add_up(c)


# -- a diffusion UNet block ------------------------------------------------------------------------


def _timestep_embedding(t, dim: int):
    """The sinusoidal timestep embedding of DDPM/Stable Diffusion."""
    half = dim // 2
    freqs = torch.exp(-9.210340371976184 * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([args.sin(), args.cos()], -1)


class UNetBlock(nn.Module):
    """GroupNorm + SiLU + conv twice with the timestep added, a residual, cross-attention to a
    text context (nn.MultiheadAttention with kdim/vdim), and an upsampling."""

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        self.mode, self.align_corners = mode, align_corners
        self.norm1, self.norm2 = nn.GroupNorm(2, 4), nn.GroupNorm(2, 4)
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.time = nn.Linear(8, 4)
        self.attn = nn.MultiheadAttention(4, 2, kdim=6, vdim=6, batch_first=True)

    def forward(self, x, t, context):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(_timestep_embedding(t, 8)))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h))) + x
        b, c, hh, ww = h.shape
        a, _ = self.attn(h.flatten(2).transpose(1, 2), context, context, need_weights=False)
        h = h + a.transpose(1, 2).reshape(b, c, hh, ww)
        kwargs = {} if self.align_corners is None else {"align_corners": self.align_corners}
        return F.interpolate(h, scale_factor=2, mode=self.mode, **kwargs)


@pytest.mark.parametrize(
    ("mode", "align_corners", "upsample"),
    [
        ("nearest", None, 32),
        # (2, 4, 8, 8): 8 + 8 <= 128, ATen's upsample_linear_channels_last (see the docstring)
        ("bilinear", False, 2 * 2 + 2 * 8 * (9 + 8 * (9 + 4)) + 7 * 512),
        ("bilinear", True, 2 * 1 + 2 * 8 * (6 + 8 * (6 + 4)) + 7 * 512),
    ],
)
def test_a_diffusion_unet_block_counted_from_its_maths(mode, align_corners, upsample):
    """UNetBlock on x (2, 4, 4, 4), timesteps (3, 700), a context of (2, 5, 6).

    Forward: each GroupNorm(2, 4) over 128 elements in 4 groups of 32 values, as ATen's kernel
    (s34): per group the moments (layer norm's ``RowwiseMoments``: 330) and ``rstd`` (4), per
    channel scale and bias (4 x 8), ``scale * x + bias`` (2 x 128) = 1,624 (912 until s34);
    SiLU 4 per element (ATen's kernel ``x / (1 + exp(-x))``; 2 before s35) over 128 + 16 +
    128; each conv ``2 * 2 * 4 * 4 * 9 * 16`` =
    9,216 + bias 128; the timestep embedding: ``-log(10^4) * arange`` 4, ``/ half`` 4, exp 4,
    ``t * freqs`` 8, sin 8, cos 8 = 36; its Linear(8, 4) ``2 * 4 * 17`` = 136, added to h 128;
    the residual 128; cross-attention: q projection ``2 * 32 * 4 * 4`` = 1,024, k and v
    ``2 * 10 * 6 * 4`` = 480 each, their biases 128 + 40 + 40; SDPA (b 2, h 2, 16 queries,
    5 keys, d 2) products ``2 * 4 * 16 * 5 * 4`` = 2,560 + scaling Q 128 and K 40 + softmax
    (``_safe_softmax``: ATen's ``5 * 320 - 64`` rows and the ``-inf`` compare 320; ``5 *
    320`` before s35) = 4,584; out projection ``32 * 4 * 9`` = 1,152; the residual 128. The
    upsampling to (2, 4, 8, 8), 512 elements: nearest 0 per element, and its source indices,
    computed in floating point for each output row and column (``(i + offset) * scale``: 2
    each, ``2 * (8 + 8)`` = 32). Bilinear on an output of 8 + 8 <= 128 runs ATen's
    ``upsample_linear_channels_last``: both scales (``1 / 2`` after the ``> 0`` compare, 2 each;
    with ``align_corners`` ``(4 - 1) / (8 - 1)``, 1 each, the scale factor unused); per batch
    and output row the row's source index and lambdas (``scale * (i + 0.5) - 0.5`` and its
    ``< 0`` compare 4, floor, ``x - index`` clamped by a max and a min 4, ``1 - lambda`` 1: 9;
    with ``align_corners`` ``scale * i``: 6); per output pixel the column's (9, 6) and the 4
    corner weights ``h_i * w_j``; per element ``x00 w00 + x01 w01 + x10 w10 + x11 w11``, 7.
    ``4 + 2 * 8 * (9 + 8 * 13) + 7 * 512`` = 5,396; ``2 + 2 * 8 * (6 + 8 * 10) + 3,584`` = 4,962
    (9 per element, 4,608, until s25). Its backward (``cpu_upsample_linear_backward``, the
    generic kernel) computes the scales once, then per plane (8) and output row the row's
    lambdas, per gradient element the column's, and adds ``h_lambda * w_lambda * g`` into each
    of the 4 corners (3 each, 12): ``4 + 8 * 8 * 9 + 512 * 9 + 12 * 512`` = 11,332, with
    ``align_corners`` ``2 + 8 * 8 * 6 + 512 * 6 + 6,144`` = 9,602 (12 x 512 = 6,144 until s25).
    """
    torch.manual_seed(0)
    block = UNetBlock(mode, align_corners)
    x, t, context = torch.randn(2, 4, 4, 4), torch.tensor([3, 700]), torch.randn(2, 5, 6)
    c = gp.count_fpo(block, x, t, context, backward=False)
    convs = 2 * (1_624 + 4 * 128 + 9_344)
    time = 36 + 4 * 16 + 136 + 128
    attention = 1_024 + 480 + 480 + 208 + 4_584 + 1_152 + 128
    assert c.total == convs + time + 128 + attention + upsample
    assert c.unknown_ops == {}
    grad = gp.count_fpo(block, x, t, context)
    # backward of the upsampling: nearest 1 add per gradient element (512), bilinear 12 each
    # (ATen's kernel adds h_lambda * w_lambda * g into each of the 4 corners: 3 each; was 9)
    # and the lambdas it recomputes inside its loops (see the docstring)
    lam = 6 if align_corners else 9
    scales = 2 if align_corners else 4
    bilinear = scales + 8 * 8 * lam + 512 * lam + 12 * 512
    assert bilinear == (9_602 if align_corners else 11_332) or mode == "nearest"
    assert grad.by_op.get("aten.upsample_nearest2d_backward", 0) + grad.by_op.get(
        "aten.upsample_bilinear2d_backward", 0
    ) == (512 if mode == "nearest" else bilinear)
    _children_add_up(grad)


# -- mixture of experts: what ran, not a dense upper bound -----------------------------------------


class TopKMoE(nn.Module):
    """A top-2 router over 4 experts (Linear 4 -> 8, ReLU, Linear 8 -> 4): softmax over the k
    chosen logits, each expert run on its tokens only, outputs summed back with index_add."""

    def __init__(self, dim: int = 4, experts: int = 4, hidden: int = 8, k: int = 2) -> None:
        super().__init__()
        self.k = k
        self.gate = nn.Linear(dim, experts, bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            for _ in range(experts)
        )

    def forward(self, x):
        weights, chosen = torch.topk(self.gate(x), self.k, dim=-1)
        weights = F.softmax(weights, dim=-1)
        load = torch.bincount(chosen.flatten(), minlength=len(self.experts))
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel():
                out = out.index_add(0, token, expert(x[token]) * weights[token, slot, None])
        return out, load


def test_a_mixture_of_experts_counts_the_tokens_each_expert_ran():
    """TopKMoE on 6 tokens: each expert's count is its tokens', read from what ran.

    Per token an expert costs ``8 * (2 * 4 + 1)`` + ReLU 8 + ``4 * (2 * 8 + 1)`` = 148; the
    router ``2 * 6 * 4 * 4`` = 192, topk 1 compare per logit (24), softmax over the 2 chosen
    ``5 * 12 - 6`` rows = 54 (60 before s35); weighting the expert outputs 1 per element and
    summing them back 1 per element (``12 * 4`` each); bincount counts integers (0).
    """
    torch.manual_seed(0)
    moe, x = TopKMoE(), torch.randn(6, 4)
    with torch.no_grad():
        load = torch.bincount(torch.topk(moe.gate(x), 2, dim=-1)[1].flatten(), minlength=4)
    c = gp.count_fpo(moe, x, backward=False)
    assert int(load.sum()) == 12  # 6 tokens x 2 choices, spread unevenly over the experts
    for e, tokens in enumerate(load.tolist()):
        assert c.by_module.get(f"experts.{e}", 0) == 148 * tokens  # a dense count: 148 * 6
    assert c.total == 192 + 24 + 54 + 148 * 12 + 48 + 48 == 2_142
    assert c.unknown_ops == {}
    _children_add_up(c)


# -- LoRA: the frozen weight gets no gradient ------------------------------------------------------


class LoRALinear(nn.Module):
    """A frozen Linear(8, 6) plus a trained low-rank update ``B A`` of rank 2, scaled."""

    def __init__(self, fan_in: int = 8, fan_out: int = 6, rank: int = 2, alpha: float = 4) -> None:
        super().__init__()
        self.base = nn.Linear(fan_in, fan_out).requires_grad_(False)
        self.A = nn.Parameter(torch.randn(rank, fan_in) * 0.1)
        self.B = nn.Parameter(torch.zeros(fan_out, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale


def test_lora_counts_no_gradient_for_the_frozen_weight_and_updates_only_the_adapters():
    """LoRALinear on (3, 8). Forward: the frozen product ``3 * 6 * 17`` = 306; ``x A^T``
    ``2 * 3 * 8 * 2`` = 96, ``(x A^T) B^T`` ``2 * 3 * 2 * 6`` = 72, the scaling 18 and the add
    18. Backward: the scaling's 18; B's gradient ``2 * 6 * 3 * 2`` = 72 and the gradient into
    ``x A^T`` 72; A's gradient ``2 * 2 * 3 * 8`` = 96; nothing for the frozen weight or bias
    (a full fine-tune would add ``2 * 6 * 3 * 8`` = 288 + 18) or for the data. AdamW updates
    the 28 adapter elements only: 14 each + 1 per tensor for the step count."""
    torch.manual_seed(0)
    lora, x = LoRALinear(), torch.randn(3, 8)
    c = gp.count_fpo(lora, x)
    assert (c.forward_total, c.backward_total) == (306 + 96 + 72 + 36, 18 + 72 + 72 + 96)
    assert c.by_module["base"] == 306  # forward only
    run = gp.training_fpo(
        lora, x, steps=1, target=torch.randn(3, 6), loss_fn=F.mse_loss, optimizer="adamw"
    )
    assert run.optimizer_total == 14 * 28 + 2


# -- RMSNorm and SwiGLU ----------------------------------------------------------------------------


class SwiGLUBlock(nn.Module):
    """A LLaMA feed-forward block: ``x + W2(silu(W1 n) * W3 n)``, ``n = RMSNorm(x)``."""

    def __init__(self, dim: int = 8, hidden: int = 16) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        n = self.norm(x)
        return x + self.w2(F.silu(self.w1(n)) * self.w3(n))


def test_rms_norm_and_swiglu_counted_from_their_maths():
    """SwiGLUBlock on (2, 3, 8): 6 rows. RMSNorm ``x * rsqrt(mean(x^2) + eps) * w``: square
    48, mean 48 + 6, + eps 6, rsqrt 6, two multiplies 96: 210 (3 per element + 3 per row + 1
    for the weight, docs/fpo.md). W1 and W3 ``2 * 6 * 8 * 16`` = 1,536 each, SiLU 4 per
    element (ATen's kernel ``x / (1 + exp(-x))``: 384; 2 per element, 192, before s35), the
    gate's multiply 96, W2 1,536, the residual 48. Backward (the input is data; the norm's
    weight is trained): W2's two products 3,072; the gate's multiply 2 * 96; SiLU's backward,
    autograd's decomposition ``math_silu_backward`` (sigmoid 4, ATen's kernel ``(1 + exp(-x))
    .reciprocal()``, ``1 - s``, three multiplies and an add: 9 per element, 864; 576 before
    s35 counted the sigmoid 1); W1 and W3 3,072 each; their gradients into n summed
    (48); the norm weight's gradient ``sum(g * x_hat)`` 96."""
    torch.manual_seed(0)
    c = gp.count_fpo(SwiGLUBlock(), torch.randn(2, 3, 8))
    assert c.by_module["norm"] == 210 + 96
    assert c.forward_total == 210 + 3 * 1_536 + 384 + 96 + 48 == 5_346
    assert c.backward_total == 3_072 + 192 + 864 + 2 * 3_072 + 48 + 96 == 10_416
    # the input needing a gradient: nn.RMSNorm runs as its decomposition, each op's backward
    # counts: ``out = x_hat * w``: ``g * w`` 48, the weight's ``sum(g * x_hat)`` 96;
    # ``x_hat = x * r``: ``g' * r`` 48, ``sum(g' * x)`` per row 96; ``r = rsqrt(v)``:
    # ``-0.5 r^3 g`` per row, the cube ``r * r * r`` 12 (ATen's pow kernel; 6 before s36) and
    # two multiplies 12; the mean's backward divides by 8 (48); the square's backward ``g * 2 *
    # x^1``, as autograd runs it: ``x^1`` a pow that ATen copies (0; 1 per element before
    # s36) and two multiplies, 96; the two paths into x added 48: 504 (546 before s36)
    norm = gp.count_fpo(nn.RMSNorm(8), torch.randn(2, 3, 8, requires_grad=True))
    assert norm.backward_total == 48 + 96 + 48 + 96 + 12 + 12 + 48 + 96 + 48 == 504
    assert (norm.forward_total, norm.unknown_ops) == (210, {})


# -- torch.func: per-sample gradients --------------------------------------------------------------


def test_per_sample_gradients_with_vmap_grad_and_functional_call_count_what_vmap_runs():
    """Per-sample gradients of an MSE loss through Linear(4, 3) for 5 samples, the torch.func
    recipe (``vmap(grad(loss))`` over ``functional_call``). vmap runs batched ops:

    forward: the product ``2 * 5 * 4 * 3`` = 120, the bias ``beta * b`` (3, beta 1) and its
    add 15; the loss ``(y - t)^2`` 30 and each sample's mean ``15 + 5``. Backward (autograd
    inside ``grad``): ``y - t`` 15, times ``2 / 3`` 15, times the per-sample gradient 15; the
    weight gradients as one batched product ``2 * 5 * 3 * 1 * 4`` = 120; the bias gradients
    15. A Python loop over the samples runs the unbatched ops instead: 73 per sample
    (``addmm`` 27, ``mse_loss`` 2 * 3 + 4, its fused backward ``(2 / 3) (y - t) g`` 3 per
    element 9, the same three ops as the batched backward's (it was counted 4 per element, 12:
    76 per sample), grad_weight 24, bias 3), 365.
    """
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, x, y):
        return F.mse_loss(torch.func.functional_call(model, p, (x[None],)), y[None])

    x, y = torch.randn(5, 4), torch.randn(5, 3)
    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    with gp.FPOCounter() as counter:
        grads = per_sample(params, x, y)
    c = counter.result
    assert (c.forward_total, c.backward_total) == (120 + 3 + 15 + 30 + 20, 45 + 120 + 15)
    assert c.unknown_ops == {} and grads["weight"].shape == (5, 3, 4)
    with gp.FPOCounter() as loop_counter:
        for i in range(5):
            torch.func.grad(loss)(params, x[i], y[i])
    assert loop_counter.result.total == 5 * 73


# -- an EMA of the weights in the training step ----------------------------------------------------


def test_an_ema_of_the_weights_is_counted_outside_the_model_and_apart_from_the_optimizer():
    """A training step of Linear(6, 3) (21 parameter elements) with SGD, then EMA updates of a
    copy of the weights, each as users write it: ``torch._foreach_lerp_`` (3 per element: 63),
    ``_foreach_mul_`` + ``_foreach_add_(alpha=)`` (1 + 2: 63), a loop of ``mul_().add_(alpha=)``
    (63), and ``AveragedModel`` with ``get_ema_multi_avg_fn`` (its first update copies the
    weights: 0; the second is a lerp, 63). The forward ``4 * 3 * 13`` = 156, the backward's
    grad_weight ``2 * 3 * 4 * 6`` = 144 + bias 12 (the loss ``sum`` 12 outside the model), SGD
    ``p - lr g`` 2 per element: 42."""
    import copy

    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    ema = copy.deepcopy(model).requires_grad_(False)
    averaged = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with gp.FPOCounter(model) as counter:
        model(torch.randn(4, 6)).sum().backward()
        optimizer.step()
        with torch.no_grad():
            weights, current = list(ema.parameters()), list(model.parameters())
            torch._foreach_lerp_(weights, current, 0.01)
            torch._foreach_mul_(weights, 0.99)
            torch._foreach_add_(weights, current, alpha=0.01)
            for e, p in zip(weights, current, strict=True):
                e.mul_(0.99).add_(p, alpha=0.01)
        averaged.update_parameters(model)
        averaged.update_parameters(model)
    c = counter.result
    assert c.unknown_ops == {}
    assert c.by_module[""] == 156 + 144 + 12
    assert c.optimizer_total == 42
    assert c.total == 156 + 144 + 12 + 12 + 42 + 4 * 63


# -- the command line, as a new user runs it -------------------------------------------------------


def test_the_fpo_command_counts_a_qat_model_on_meta_as_on_the_cpu(tmp_path):
    """A new user's ``model.py`` with the QAT model above, counted by ``greenprint fpo
    --backward`` in an empty directory with a clean environment: on the meta device (the
    default) the weight's per-channel observer has not yet resized its scale (one element
    before the first call, which the meta kernel does not resize), so the fused observer's
    channels are read from the weight's size along ``ch_axis``: 3 channels, the CPU count
    proved above, forward 739 and backward 198, on meta and with ``--device cpu``."""
    import json
    import subprocess

    from _clean_env import BIN, clean_env

    (tmp_path / "model.py").write_text(
        "import warnings\n\n"
        "import torch.ao.quantization as tq\n"
        "from torch import nn\n\n\n"
        "def qat():\n"
        "    model = nn.Sequential(tq.QuantStub(), nn.Linear(6, 3), nn.ReLU(), tq.DeQuantStub())\n"
        "    model.qconfig = tq.get_default_qat_qconfig('x86')\n"
        "    with warnings.catch_warnings():\n"
        "        warnings.simplefilter('ignore')\n"
        "        return tq.prepare_qat(model.train())\n"
    )
    command = [str(BIN / "greenprint"), "fpo", "model:qat", "--input-shape", "4,6", "--backward"]
    for device in ("meta", "cpu"):
        done = subprocess.run(
            [*command, "--device", device, "--json"], cwd=tmp_path, env=clean_env(),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        counted = json.loads(done.stdout)
        assert (counted["forward_total"], counted["backward_total"]) == (739, 198), device
        assert counted["unknown_ops"] == {}


def test_grouped_mm_counts_the_rows_its_groups_hold_not_the_padded_buffer():
    """A mixture of experts that sorts its tokens by expert into a buffer of capacity 8 and
    calls ``torch._grouped_mm(tokens, expert_weights, offs)``: with 4 tokens routed
    (``offs = [2, 4]``) rows 4-7 belong to no expert and are not computed (their output is
    left uninitialised), but the count took every row: 1,024 FPO forward. Now ``offs[-1]`` is
    read: ``2 * 4 * 8 * 8`` = 512; backward grad_tokens (rows split) 512 and the experts'
    gradient (``k`` split over the 4 tokens) ``2 * 8 * 4 * 8`` = 512. A full buffer
    (``offs = [3, 8]``) is ``2 * 8 * 8 * 8`` = 1,024; on meta tensors offs cannot be read and
    every row counts (an upper bound)."""
    torch.manual_seed(0)
    weights = torch.randn(2, 8, 8, dtype=torch.bfloat16).transpose(-2, -1)

    def count(ends, device="cpu"):
        offs = torch.tensor(ends, dtype=torch.int32, device=device)
        tokens = torch.randn(8, 8, dtype=torch.bfloat16, device=device, requires_grad=True)
        experts = weights.detach().to(device).requires_grad_()
        return gp.count_fpo(lambda a, b: torch._grouped_mm(a, b, offs=offs), tokens, experts)

    padded, full = count([2, 4]), count([3, 8])
    assert (padded.forward_total, padded.backward_total) == (512, 512 + 512)
    assert (full.forward_total, full.backward_total) == (1_024, 2_048)
    assert count([2, 4], "meta").forward_total == 1_024


def test_a_complex_valued_layer_is_counted_forward_and_backward():
    """A complex-valued Linear(4, 3) (``dtype=torch.cfloat``) on 5 complex samples:
    ``count_fpo(layer, z)`` said "backward=True but no output of the model requires grad
    (frozen parameters, torch.no_grad() or inference mode?)": only floating outputs were
    seeded, and the output is complex. It is now seeded with ones as a floating one. Forward:
    ``5 * 3`` complex dot products of 4, ``4 * 2 * 5 * 4 * 3`` = 480 real FPO (8 per complex
    multiply-add), + the complex bias 2 per element (30); backward: the weight's gradient 480
    and the bias's complex sum 30 (the data needs none). ``matmul_total`` is FlopCounterMode's
    ``2mkn`` for each product, 240. Other complex ops: a divide 11 per element, ``abs`` 4,
    ``exp`` 5, ``angle`` (``atan2``) 1, a complex mean 2 per element + 2 per output,
    subtracting a real number 1; none is listed as counted as if real. ``conj_physical`` (1:
    ``-b``) had no rule and ``torch.complex(re, im)`` (a copy, 0) neither; ``sgn`` (``z/|z|``),
    ``log`` (``log|z| + i atan2``) and ``reciprocal`` (``(a - bi) / (a^2 + b^2)``) are 6."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 3, dtype=torch.cfloat)
    z = torch.randn(5, 4, dtype=torch.cfloat)
    c = gp.count_fpo(layer, z)
    assert (c.forward_total, c.backward_total, c.matmul_total) == (510, 510, 240)
    assert c.complex_ops == {}
    w = torch.randn(5, 4, dtype=torch.cfloat)
    ops = gp.count_fpo(
        lambda a, b: (a / b, a.abs(), a.exp(), a.angle(), a.mean(), a - 1.0), z, w, backward=False
    )
    assert ops.total == 20 * (11 + 4 + 5 + 1 + 2 + 1) + 2
    assert ops.complex_ops == {}
    more = gp.count_fpo(
        lambda a: (
            a.conj_physical(),
            torch.complex(a.real, a.imag),
            a.sgn(),
            a.log(),
            a.reciprocal(),
        ),
        z,
        backward=False,
    )
    assert (more.total, more.unknown_ops, more.complex_ops) == (20 * (1 + 0 + 6 + 6 + 6), {}, {})
