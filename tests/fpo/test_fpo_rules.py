"""Hand-computed FPO for each rule family, run through the real counter on small tensors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from fcm_reference import (  # noqa: E402
    fixed_flop_counter,
    torch_overcounts_grouped_conv_backward,
)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402

import greenprint as gp  # noqa: E402
from greenprint.fpo import register_rule  # noqa: E402
from greenprint.fpo._rules_rnn import rnn_layer_backward_fpo, rnn_layer_forward_fpo  # noqa: E402
from greenprint.fpo.rules import RULES, op_name, zero  # noqa: E402


def count(fn, *, device="cpu"):
    """Run fn() inside a counter; return the result."""
    with gp.FPOCounter() as c:
        fn()
    return c.result


def t(*shape, grad=False, device="cpu"):
    return torch.randn(*shape, device=device, requires_grad=grad)


# -- matrix products ---------------------------------------------------------------------------


def test_mm_is_2mkn_and_all_matmul():
    a, b = t(2, 3), t(3, 4)
    r = count(lambda: torch.mm(a, b))
    assert r.total == r.matmul_total == 2 * 2 * 3 * 4
    assert r.by_op == {"aten.mm": 48}


def test_addmm_bias_add_and_alpha_beta_scalings_are_on_top_of_the_product():
    a, b, bias = t(2, 3), t(3, 4), t(4)
    plain = count(lambda: torch.addmm(bias, a, b))
    assert (plain.matmul_total, plain.total) == (48, 48 + 8)  # + one add per output element
    scaled = count(lambda: torch.addmm(bias, a, b, beta=0.5, alpha=2.0))
    assert (scaled.matmul_total, scaled.total) == (48, 48 + 8 + 8 + 8)
    no_input = count(lambda: torch.addmm(bias, a, b, beta=0.0))
    assert no_input.total == 48


def test_bmm_and_baddbmm():
    assert count(lambda: torch.bmm(t(5, 2, 3), t(5, 3, 4))).total == 5 * 48
    r = count(lambda: torch.baddbmm(t(5, 2, 4), t(5, 2, 3), t(5, 3, 4), alpha=3.0))
    assert (r.matmul_total, r.total) == (240, 240 + 40 + 40)


def test_products_flopcountermode_ignores_are_counted_outside_matmul_total():
    r = count(lambda: torch.mv(t(4, 3), t(3)))
    assert (r.matmul_total, r.total) == (0, 24)
    assert count(lambda: torch.dot(t(7), t(7))).total == 14


def test_linear_backward_counts_two_products_and_the_bias_reduction():
    lin = torch.nn.Linear(3, 4)
    x = t(2, 3, grad=True)
    r = count(lambda: lin(x).sum().backward())
    # forward: 2*2*3*4 + 8 bias adds; the seed sum: 8; backward: two mm (48 each), bias grad 8
    assert r.forward_total == 48 + 8 + 8
    assert r.backward_total == 48 + 48 + 8


# -- convolutions ------------------------------------------------------------------------------


def test_grouped_conv_with_bias_by_hand():
    conv = torch.nn.Conv2d(4, 6, 3, groups=2)
    r = count(lambda: conv(t(1, 4, 5, 5)))
    out = 6 * 3 * 3
    assert r.matmul_total == 2 * 1 * 6 * (4 // 2) * 9 * 9
    assert r.total == r.matmul_total + out  # bias: one add per output element


@settings(max_examples=25, deadline=None)
@given(
    groups=st.sampled_from([1, 2, 4]),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 2),
    kernel=st.integers(1, 3),
    transposed=st.booleans(),
    bias=st.booleans(),
)
def test_conv_matmul_total_equals_flopcountermode_with_the_grouped_backward_fix(
    groups, stride, dilation, padding, kernel, transposed, bias
):
    cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    conv = cls(
        4, 8, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
    ).to("meta")
    x = torch.randn(2, 4, 9, 9, device="meta", requires_grad=True)
    r = gp.count_fpo(conv, x)
    with FlopCounterMode(display=False) as f:
        out = conv(x)
        out.backward(torch.ones_like(out))
    with fixed_flop_counter() as fixed:
        out = conv(x)
        out.backward(torch.ones_like(out))
    # FlopCounterMode with PyTorch PR 183405 (grad_weight divided by the groups) agrees exactly
    assert r.matmul_total == fixed.get_total_flops() > 0
    # forward, grad_input and grad_weight are one product count each
    products = r.matmul_total // 3
    if torch_overcounts_grouped_conv_backward():  # the installed torch: grad_weight groups x
        assert f.get_total_flops() == r.matmul_total + (groups - 1) * products
    else:
        assert f.get_total_flops() == r.matmul_total
    out_elems = math.prod(out.shape)
    # bias: one add per output element forward, one per gradient element for grad_bias
    assert r.total - r.matmul_total == (2 * out_elems if bias else 0)


# -- elementwise and activations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "per_element"),
    [
        (torch.relu, 1),
        (torch.exp, 1),
        (torch.sigmoid, 4),  # ATen's kernel (1 + exp(-x)).reciprocal() (s35; it was 1)
        (F.silu, 4),  # ATen's kernel x / (1 + exp(-x)) (s35; it was 2)
        (F.gelu, 5),
        (lambda x: F.gelu(x, approximate="tanh"), 9),
        (F.leaky_relu, 2),
        (F.hardswish, 5),
        (lambda x: torch.clamp(x, -1, 1), 2),
        (lambda x: torch.clamp(x, min=0), 1),
        (lambda x: x * 2.0, 1),
        (lambda x: torch.add(x, x, alpha=3), 2),
        (lambda x: torch.addcmul(x, x, x, value=0.5), 3),
        (lambda x: torch.lerp(x, x, 0.3), 3),
    ],
)
def test_elementwise_fpo_per_element(fn, per_element):
    x = t(3, 5)
    assert count(lambda: fn(x)).total == per_element * 15


def test_integer_arithmetic_is_not_floating_point():
    ids = torch.arange(10)
    r = count(lambda: (ids * 3 + 1) % 7)
    assert r.total == 0
    assert set(r.by_op) >= {"aten.mul", "aten.add"} and not r.unknown_ops


def test_activation_backward():
    x = t(4, 6, grad=True)
    r = count(lambda: torch.tanh(x).backward(torch.ones(4, 6)))
    assert (r.forward_total, r.backward_total) == (24, 3 * 24)  # g * (1 - y^2)
    r = count(lambda: F.gelu(x).backward(torch.ones(4, 6)))
    assert r.backward_total == 11 * 24 + 24  # + accumulating into the existing x.grad
    assert r.by_op_phase["aten.add_"]["backward"] == 24


# -- reductions, softmax, cumulative ------------------------------------------------------------


def test_reductions():
    x = t(4, 6)
    assert count(lambda: x.sum()).total == 24
    assert count(lambda: x.mean(dim=1)).total == 24 + 4  # + one division per output
    assert count(lambda: x.amax(dim=0)).total == 24
    # Welford's update, 6 per element, and 3 per output (ATen's kernel; 4 and 2 until s36)
    assert count(lambda: x.var(dim=1)).total == 6 * 24 + 3 * 4
    assert count(lambda: torch.cumsum(x, 1)).total == 24


def test_softmax_and_log_softmax_with_backward():
    # ATen's kernels along the last dimension (s35, proved in test_fpo_softmax_s35): the max
    # and the sum start from their first values, 1 / sum once per row: 5N - rows (it was 5N);
    # the backward's sum from its first product: 4N - rows (it was 4N)
    x = t(3, 8, grad=True)
    r = count(lambda: torch.softmax(x, -1).backward(torch.ones(3, 8)))
    assert (r.forward_total, r.backward_total) == (5 * 24 - 3, 4 * 24 - 3)
    x.grad = None
    r = count(lambda: torch.log_softmax(x, -1).backward(torch.ones(3, 8)))
    # log-softmax: x - max - log(sum), two subtractions per element (6, s34; it was 5), the
    # log per row, the max and the sum from their first values: 6N - rows (6N + rows before)
    assert (r.forward_total, r.backward_total) == (6 * 24 - 3, 4 * 24 - 3)
    x.grad = None
    # along another dimension: softmax's max from its first value, its sum from 0 and a
    # divide per element (5N - columns); log-softmax's max from -inf and its sum from 0 (6N +
    # columns); the backwards' sums from 0 (4N)
    r = count(lambda: torch.softmax(x, 0).backward(torch.ones(3, 8)))
    assert (r.forward_total, r.backward_total) == (5 * 24 - 8, 4 * 24)
    x.grad = None
    r = count(lambda: torch.log_softmax(x, 0).backward(torch.ones(3, 8)))
    assert (r.forward_total, r.backward_total) == (6 * 24 + 8, 4 * 24)


# -- normalisation ------------------------------------------------------------------------------


def test_layer_norm_by_hand():
    x = t(2, 3, 8)
    n, rows = 48, 6
    # ATen's CPU kernel (s34): per row of 8 float32 values (one vector) Welford 48, the chunk's
    # merge 65, the 8 lanes' 72, m2 / N, rstd 3, -mean 1; 4 per element, affine or not
    assert count(lambda: F.layer_norm(x, (8,))).total == rows * 190 + 4 * n
    ln = torch.nn.LayerNorm(8)
    assert count(lambda: ln(x)).total == rows * 190 + 4 * n


def test_batch_norm_train_and_eval():
    bn = torch.nn.BatchNorm2d(4)
    x = t(2, 4, 3, 3)
    n, c = 72, 4
    # ATen's CPU kernel (s34): statistics 5N + 6C, x * alpha + beta 2N + 3C, running 9C
    assert count(lambda: bn(x)).total == 7 * n + 9 * c + 9 * c
    bn.eval()
    assert count(lambda: bn(x)).total == 2 * n + 6 * c


def test_group_norm_and_its_backward():
    gn = torch.nn.GroupNorm(2, 4)
    x = t(2, 4, 3, 3, grad=True)
    n = 72
    r = count(lambda: gn(x).backward(torch.ones(2, 4, 3, 3)))
    # ATen's kernel (s34): per group of 18 values the moments (246) and rstd (4), per channel
    # scale and bias (4), scale * x + bias (2N); it was 5N + 4 per group + 2N
    assert r.forward_total == 4 * (246 + 4) + 4 * 8 + 2 * n == 1_176
    # ds, db (3N less 2 per channel); grad_input 1 + per group 2 * 8 + 11, per channel 4 + 1, 4N;
    # grad_weight 4 per channel, grad_bias 1 (it was 10N + 2 per group + 2N + N)
    assert r.backward_total == (3 * n - 2 * 8) + 1 + 4 * 27 + 5 * 8 + 4 * n + 4 * 8 + 8 == 677


def test_rms_norm_counts_its_decomposition():
    norm = torch.nn.RMSNorm(8)
    x = t(3, 8)
    n, rows = 24, 3
    # x^2 (N), mean (N + rows), + eps (rows), rsqrt (rows), x * rstd (N), * weight (N)
    assert count(lambda: norm(x)).total == 4 * n + 3 * rows


# -- losses, pooling, interpolation -------------------------------------------------------------


def test_losses():
    x, y = t(4, 5), t(4, 5)
    assert count(lambda: F.mse_loss(x, y)).total == 3 * 20 + 1
    target = torch.tensor([0, 1, 2, 3])
    # log-softmax 6N - rows along the last dimension (s35; 6N + rows in s34, 5N before), then
    # nll as ATen's kernel: ``loss -= x[t]`` (1 per target, the negation and the sum's add in
    # one), its cascade's carries after the first target (14) and 8 partial sums added up (8,
    # s35) + the mean's division: 4 + 14 + 8 + 1 (it was 4 + 1, and 4 + 5 with a negation
    # counted besides the sum)
    assert count(lambda: F.cross_entropy(x, target)).total == 6 * 20 - 4 + 4 + 14 + 8 + 1


def test_pooling():
    x = t(1, 1, 4, 4)
    assert count(lambda: F.max_pool2d(x, 2)).total == 4 * 4  # 4 outputs, 4 compares each
    # 4 adds, the division and the add into the zeroed output (ATen's contiguous kernel)
    assert count(lambda: F.avg_pool2d(x, 2)).total == 4 * (4 + 2)
    y = t(1, 1, 5, 5)
    # exact adaptive windows: 5 -> 2 gives [0, 3) and [2, 5), 3 + 3 per dimension; each of
    # the 4 sums divided by kh then kw, as ATen's kernel (2 each; it counted 1)
    assert count(lambda: F.adaptive_avg_pool2d(y, 2)).total == 6 * 6 + 2 * 4


def test_interpolation():
    x = t(1, 2, 4, 4)
    nearest = count(lambda: F.interpolate(x, scale_factor=2))
    assert nearest.total < 8 * 8  # source-index arithmetic per axis only, no per-element FPO
    x.requires_grad_(True)
    r = count(lambda: F.interpolate(x, scale_factor=2).backward(torch.ones(1, 2, 8, 8)))
    assert r.by_op["aten._unsafe_index"] == 0  # the forward gathers: 0 by rule
    assert r.by_op["aten.upsample_nearest2d_backward"] == 2 * 8 * 8  # gradients summed back
    x.requires_grad_(False)
    r = count(lambda: F.interpolate(x, scale_factor=2, mode="bilinear"))
    # an (8, 8) output (8 + 8 <= 128) runs ATen's upsample_linear_channels_last: both scales
    # ``1 / 2`` after their ``> 0`` compare (2 each); per output row its source index and lambdas
    # (``scale * (i + 0.5) - 0.5``, the ``< 0`` compare, floor, ``x - index`` clamped by a max
    # and a min, ``1 - lambda``: 9); per output pixel the column's (9) and the 4 corner weights
    # ``h_i * w_j`` (4); per element ``x00 w00 + x01 w01 + x10 w10 + x11 w11`` (7). It counted
    # 9 per element (1,152) until s25.
    assert r.total == 2 * 2 + 8 * (9 + 8 * (9 + 4)) + 7 * 2 * 8 * 8 == 1_804


# -- attention ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"is_causal": True}, {"mask": "float"}, {"mask": "bool"}, {"gqa": True}]
)
def test_cpu_flash_attention_counts_the_same_as_the_meta_math_path(kwargs):
    """CPU runs one fused op (FlopCounterMode: 0); meta runs the math path op by op."""

    def run(device):
        torch.manual_seed(0)
        kv_heads = 2 if kwargs.get("gqa") else 4
        q = torch.randn(2, 4, 6, 8, device=device, requires_grad=True)
        k = torch.randn(2, kv_heads, 6, 8, device=device, requires_grad=True)
        v = torch.randn(2, kv_heads, 6, 8, device=device, requires_grad=True)
        extra = {"is_causal": kwargs.get("is_causal", False), "enable_gqa": kv_heads != 4}
        if kwargs.get("mask") == "float":
            extra["attn_mask"] = torch.randn(6, 6, device=device)
        elif kwargs.get("mask") == "bool":
            extra["attn_mask"] = torch.ones(6, 6, dtype=torch.bool, device=device)
        return count(lambda: F.scaled_dot_product_attention(q, k, v, **extra).sum().backward())

    cpu, meta = run("cpu"), run("meta")
    assert (cpu.forward_total, cpu.backward_total) == (meta.forward_total, meta.backward_total)
    assert "aten._scaled_dot_product_flash_attention_for_cpu" in cpu.by_op
    assert cpu.matmul_total == 0 < meta.matmul_total  # FlopCounterMode misses the CPU kernel
    if not kwargs:  # by hand: two products, scale Q and K, softmax, the output sum
        scores, rows = 2 * 4 * 6 * 6, 2 * 4 * 6
        # _safe_softmax: ATen's softmax (5 per score less 1 per row) and the -inf compare
        softmax = 6 * scores - rows  # 5 * scores before s35
        assert cpu.forward_total == 2 * (2 * scores * 8) + 2 * 384 + softmax + 384


# -- recurrent layers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "gates"), [("GRU", 3), ("RNN", 1), ("LSTM", 4)])
def test_fused_rnn_formulas_match_the_op_by_op_recurrence(kind, gates):
    """The cuDNN/oneDNN layer formulas equal the decomposed recurrence meta runs."""
    steps, batch, inp, hidden = 5, 3, 4, 6
    layer = getattr(torch.nn, kind)(inp, hidden).to("meta")
    x = torch.randn(steps, batch, inp, device="meta", requires_grad=True)
    with gp.FPOCounter() as c:
        out, h = layer(x)
        torch.autograd.backward([out], [torch.ones_like(out)])  # no gradient into h_n / c_n
    assert c.forward_total == rnn_layer_forward_fpo(steps, batch, inp, hidden, gates, bias=True)
    assert c.backward_total == rnn_layer_backward_fpo(
        steps, batch, inp, hidden, gates, bias=True, grad_hy=False, grad_cy=False
    )


# -- the registry -------------------------------------------------------------------------------


def test_rules_are_shape_only_arithmetic():
    assert RULES["aten.mm"].fn((2, 3), (3, 4), out_shape=(2, 4)) == (48, 0)
    assert RULES["aten.gelu"].fn((10,), out_shape=(10,)) == 50
    assert RULES["aten.view"].is_zero and RULES["aten.view"].fn((3,), [3]) == 0


def test_zero_by_rule_is_listed_and_differs_from_no_rule():
    emb = torch.nn.Embedding(10, 4)
    ids = torch.tensor([[1, 2, 3]])
    r = count(lambda: torch.cat([emb(ids).view(3, 4), emb(ids)[0]]).t().contiguous())
    assert r.total == 0 and not r.unknown_ops
    assert {"aten.embedding", "aten.cat", "aten.view", "aten.t"} <= set(r.zero_ops)
    assert all(r.by_op[op] == 0 for op in r.zero_ops)


def test_unknown_ops_are_listed_with_call_counts_never_silently_zero():
    x = t(5)
    r = count(lambda: (torch.special.bessel_j0(x), torch.special.bessel_j0(x), x * 2))
    assert r.unknown_ops == {"aten.special_bessel_j0": 2}
    assert "aten.special_bessel_j0" not in r.by_op and r.total == 5
    assert "NO RULE" in r.table() and "aten.special_bessel_j0 x2" in r.table()


def test_strict_raises_on_the_first_op_with_no_rule():
    with pytest.raises(gp.UnknownOpError, match="special_bessel_j0"):
        with gp.FPOCounter(strict=True):
            torch.special.bessel_j0(t(3))


def test_per_instance_overrides_do_not_touch_the_registry():
    before = RULES["aten.mul"]
    with gp.FPOCounter(rules={torch.ops.aten.mul: lambda *a, out_shape, **k: 1000}) as c:
        t(3) * 2
    assert c.total == 1000
    assert RULES["aten.mul"] is before
    assert count(lambda: t(3) * 2).total == 3
    with gp.FPOCounter(rules={"aten.special_bessel_j0": lambda x, **k: 7 * math.prod(x)}) as c:
        torch.special.bessel_j0(t(2, 2))
    assert (c.total, c.unknown_ops) == (28, {})


def test_register_rule_rejects_duplicates_and_returns_the_function():
    with pytest.raises(gp.FPOError, match="duplicate"):
        register_rule(torch.ops.aten.mm)(lambda *a, **k: 0)
    name = "aten.special_bessel_y0"
    try:
        fn = register_rule(name)(zero)
        assert fn is zero and RULES[name].is_zero
        with pytest.raises(gp.FPOError):
            register_rule([name])(zero)
        register_rule(name, replace=True)(lambda x, **k: 1)
    finally:
        RULES.pop(name, None)


def test_op_names_normalise():
    assert op_name(torch.ops.aten.mm) == "aten.mm"
    assert op_name(torch.ops.aten.add.Tensor) == "aten.add.Tensor"
    assert op_name("aten::mm") == op_name("torch.ops.aten.mm") == "aten.mm"
    with pytest.raises(gp.FPOError):
        op_name("mm")
    with pytest.raises(gp.FPOError):
        op_name(42)


def test_matmul_family_is_exactly_what_flopcountermode_counts():
    fcm = {str(k) for k in flop_registry if isinstance(k, torch._ops.OpOverloadPacket)}
    ours = {name for name, rule in RULES.items() if rule.matmul}
    assert ours == fcm


def test_every_registered_op_exists_in_this_torch():
    missing = []
    for name in RULES:
        namespace, _, rest = name.partition(".")
        if namespace == "torchvision":  # exists once torchvision's C++ ops are loaded
            continue
        packet, _, overload = rest.partition(".")
        op = getattr(getattr(torch.ops, namespace), packet, None)
        if op is None or (overload and not hasattr(op, overload)):
            missing.append(name)
    # ops of other builds or versions (CUDA-only, newer/older torch) are allowed to be absent
    allowed = {"aten._batch_norm_no_update", "aten.batch_norm_backward", "aten.item"}
    assert set(missing) <= allowed, sorted(set(missing) - allowed)


@pytest.mark.parametrize("op", ["_flash_attention_backward", "_efficient_attention_backward"])
@pytest.mark.parametrize("dims", [(2, 16, 24, 4, 8), (2, 6, 6, 6, 8)])
def test_cuda_only_fused_attention_backward_products(op, dims):
    # These inner kernels run only on CUDA, called by the outer SDPA overloads (which is where a
    # counter sees them); their rules are checked shape by shape. Their dense inputs are laid out
    # (batch, seq, heads, dim). torch's formulas read them as (batch, heads, seq, dim), so the two
    # agree when heads == seq; greenprint follows the kernels' real layout.
    from torch.utils import flop_counter

    from greenprint.fpo.rules import RULES

    b, s_q, s_k, h, d = dims
    q, g = torch.empty(b, s_q, h, d, device="meta"), torch.empty(b, s_q, h, d, device="meta")
    k, v = torch.empty(b, s_k, h, d, device="meta"), torch.empty(b, s_k, h, d, device="meta")
    out = torch.empty(b, s_q, h, d, device="meta")
    if op == "_flash_attention_backward":
        args = (g, q, k, v, out, None, None, None, s_q, s_k)
        torch_formula = flop_counter._flash_attention_backward_flop
    else:
        args = (g, q, k, v, None, out, None, None, s_q, s_k)
        torch_formula = flop_counter._efficient_attention_backward_flop
    shaped = [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
    products, extras = RULES[f"aten.{op}"].fn(*shaped)
    # five products: scores recomputed, grad of V, grad of the probabilities, grad of Q and K
    assert products == 5 * 2 * b * h * s_q * s_k * d
    assert extras > 0  # softmax backward and the scores' scaling come on top
    if h == s_q == s_k:
        assert products == torch_formula(*args)


def test_broadcast_shape_is_torch_broadcast_shapes():
    """The rules' broadcast (no sympy import) agrees with torch's on every pair of shapes of
    rank 0 to 3 with sizes 0 to 2, and refuses the pairs torch refuses (it returned the first
    shape's size for (3,) with (4,), a count of 3 where no op could run). torch's is read from
    an add of CPU tensors: torch.broadcast_shapes would import sympy into the test's process."""
    import itertools

    from greenprint.fpo._registry import broadcast_shape

    shapes = [s for rank in range(4) for s in itertools.product(range(3), repeat=rank)]
    for a, b in itertools.product(shapes, repeat=2):
        try:
            expected = tuple((torch.zeros(a) + torch.zeros(b)).shape)
        except RuntimeError:
            with pytest.raises(ValueError, match="do not broadcast"):
                broadcast_shape(a, b)
        else:
            assert broadcast_shape(a, b) == expected, (a, b)
    assert broadcast_shape(torch.Size([2, 3]), torch.Size([])) == (2, 3)
