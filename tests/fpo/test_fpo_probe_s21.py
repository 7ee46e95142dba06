"""Ops and training utilities nobody had checked, each count proved from first principles (s21).

Each expected count is derived by hand in a comment beside it from the op's maths and the
kernel torch runs (ATen's CPU kernel where the op is one kernel), under docs/fpo.md's
conventions: a multiply-accumulate is 2 FPO (``2mkn`` for a product), one FPO per elementwise
arithmetic op, compare or elementary function, reducing n values costs n adds. Counted as a
user counts them: ``gp.count_fpo``, ``gp.FPOCounter`` around a step.
"""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import greenprint as gp  # noqa: E402
from integrations._frameworks import one_thread  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """torch on one thread: the tensors are tiny, and FPO are counted from shapes."""
    with one_thread():
        yield


def _trained(sizes: tuple[int, ...] = (4, 3, 2)) -> nn.Module:
    """A stack of Linear layers with its gradients from one backward."""
    torch.manual_seed(0)
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
    model = nn.Sequential(*layers)
    model(torch.randn(2, sizes[0])).sum().backward()
    return model


def _counted(fn):
    with gp.FPOCounter() as counter:
        fn()
    result = counter.result
    assert result.unknown_ops == {}
    return result


# -- clip_grad_norm_ --------------------------------------------------------------------------


def test_clip_grad_norm_counts_the_same_with_foreach_as_with_a_loop():
    """``clip_grad_norm_(params, 1.0)`` of Linear(4, 3) + Linear(3, 2): gradients of 12, 3, 6
    and 2 elements (23). Each tensor's 2-norm is ``sqrt(sum g^2)``: square and add, 2 per
    element, and per tensor the vectorised kernel's 8 accumulator lanes added up (7) and one
    square root: 46 + 4 * 8 = 78 (50 until s36). The total norm is the 2-norm of the 4 norms,
    2 * 4 + 8 = 16; the clip coefficient ``max_norm / (total + 1e-6)`` (add, reciprocal,
    multiply: 3) clamped at 1 (1); every gradient multiplied by it, 23. Total 121 with
    ``foreach=True`` (``_foreach_norm``, which counted 46: no square roots) as with
    ``foreach=False`` (one ``linalg_vector_norm`` per tensor). With ``norm_type=inf`` the norms
    are ``max |g|`` (abs, compare: 2 per element, no root): 46 + 8 (the max of 4 norms) + 4 + 23
    = 81."""
    for foreach in (True, False):
        model = _trained()
        result = _counted(
            lambda m=model, f=foreach: nn.utils.clip_grad_norm_(m.parameters(), 1.0, foreach=f)
        )
        assert result.total == 78 + 16 + 3 + 1 + 23 == 121
    model = _trained()
    result = _counted(
        lambda: nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type=float("inf"))
    )
    assert result.total == 46 + 8 + 3 + 1 + 23 == 81
    assert result.by_op["aten._foreach_norm"] == 46


# -- Adagrad: for-loop, foreach and fused -----------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adagrad_counts_the_same_for_loop_foreach_and_fused(weight_decay):
    """Adagrad on Linear(4, 3) (15 parameter elements), one step after a warm-up step:
    ``state_sum += g * g`` (addcmul, value 1: 2), ``std = sqrt(state_sum) + eps`` (2),
    ``p -= clr * g / std`` (3): 7 per element, 105; L2 weight decay ``g + wd * p`` +2 per
    element (30); + the step counters, 1 per parameter tensor (2). The fused kernel
    (``_fused_adagrad_``, ATen's FusedAdagradKernel: the same three lines) had no rule: a
    fused step counted 2 FPO, a lower bound. Now all three count 107 (137 with decay)."""
    x = torch.randn(2, 4)
    expected = 105 + (30 if weight_decay else 0) + 2
    for impl in ({"foreach": False}, {"foreach": True}, {"fused": True}):
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        opt = torch.optim.Adagrad(model.parameters(), weight_decay=weight_decay, **impl)
        model(x).sum().backward()
        opt.step()
        with gp.FPOCounter(model) as counter:
            opt.step()
        assert counter.result.unknown_ops == {}, impl
        assert counter.result.optimizer_total == expected, impl


def test_training_fpo_with_a_fused_adagrad_factory_is_exact():
    """``training_fpo`` with ``optimizer=partial(Adagrad, fused=True)`` counts each step as
    the for-loop Adagrad does: Adagrad's 107 above per step. (torch refuses a fused optimizer
    on meta tensors, so the count runs on the model: ``on_meta=False``; greenprint's message
    for ``on_meta=True`` says so.)"""
    model, x, y = nn.Linear(4, 3), torch.randn(2, 4), torch.randn(2, 3)
    fused = gp.training_fpo(
        model,
        x,
        steps=3,
        target=y,
        loss_fn=nn.functional.mse_loss,
        optimizer=functools.partial(torch.optim.Adagrad, fused=True),
        on_meta=False,
    )
    loop = gp.training_fpo(
        model,
        x,
        steps=3,
        target=y,
        loss_fn=nn.functional.mse_loss,
        optimizer=functools.partial(torch.optim.Adagrad, foreach=False),
        on_meta=False,
    )
    assert fused.total == loop.total
    assert fused.optimizer_total == 3 * 107


# -- scatter/index/segment reductions ---------------------------------------------------------


def test_scatter_reduce_and_index_reduce_mean_count_their_floating_point_counts():
    """``self.scatter_reduce(0, index, src, "mean")`` with self (3,), src (6,): ATen
    (``scatter_reduce.two``) sums the 6 sources into self (6 adds), then builds a count tensor
    of self's dtype, ``count.scatter_add_(0, index, ones)`` (6 adds), tests ``count == 0`` (3)
    and divides ``out / count`` (3): 18, where the rule counted the 6 sums only. ``sum``,
    ``prod``, ``amax`` count 1 per source, include_self or not (the identity is filled in
    first, then the same 6 ops). ``index_reduce(0, index, (6, 2), "mean")`` on (3, 2): 12 + 12
    + 6 + 6 = 36."""
    index = torch.tensor([0, 1, 0, 2, 1, 0])
    for include_self in (True, False):
        mean = gp.count_fpo(
            lambda s, x, i=include_self: s.scatter_reduce(0, index, x, "mean", include_self=i),
            torch.randn(3),
            torch.randn(6),
            backward=False,
        )
        assert mean.by_op["aten.scatter_reduce"] == 6 + 6 + 3 + 3
    for reduce in ("sum", "prod", "amax", "amin"):
        other = gp.count_fpo(
            lambda s, x, r=reduce: s.scatter_reduce(0, index, x, r),
            torch.randn(3),
            torch.randn(6),
            backward=False,
        )
        assert other.total == 6, reduce
    index_mean = gp.count_fpo(
        lambda s, x: s.index_reduce(0, index, x, "mean"),
        torch.randn(3, 2),
        torch.randn(6, 2),
        backward=False,
    )
    assert index_mean.total == 12 + 12 + 6 + 6


@pytest.mark.parametrize(
    ("reduce", "forward", "backward"),
    [
        # each of the 6 elements folded into its segment's value: 1 add/multiply/compare each
        # mean: + 1 division per segment (3); backward: one division grad / length per segment
        ("sum", 6, 0),  # backward copies the segment's gradient
        ("mean", 6 + 3, 3),
        ("max", 6, 6),  # backward: value == output, 1 compare per element
        ("min", 6, 6),
        ("prod", 6, 3 + 2 * 6),  # grad * output per segment, then == 0 and / value per element
    ],
)
def test_segment_reduce_forward_and_backward_by_its_kernels(reduce, forward, backward):
    """``torch.segment_reduce(x, reduce, lengths=[2, 3, 1])`` on 6 values: both ops had no rule
    (the count was 0, a lower bound). ATen's ``_segment_reduce_lengths_cpu_kernel1`` and
    ``_segment_reduce_cpu_lengths_backward_kernel1``, counted per line (see the parameters);
    the data has no zero and no tie, so no data-dependent extra work runs."""
    lengths = torch.tensor([2, 3, 1])
    x = torch.tensor([0.5, 1.5, -2.0, 3.0, 0.25, 4.0], requires_grad=True)
    result = gp.count_fpo(lambda v: torch.segment_reduce(v, reduce, lengths=lengths), x)
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (forward, backward)


def test_logcumsumexp_forward_counts_the_kernels_log_add_exp():
    """``torch.logcumsumexp(x, 0)`` on 6 values: ATen's CPU kernel folds each value into the
    running one with ``_log_add_exp_helper``: min and max (2), ``min != max`` (1),
    ``log1p(exp(min - max)) + max`` (4): 7 per element, 42 (the rule counted 4: no min, no
    log1p), as ``logaddexp`` counts 7."""
    result = gp.count_fpo(lambda v: torch.logcumsumexp(v, 0), torch.randn(6), backward=False)
    assert result.total == 7 * 6


# -- forward-mode AD --------------------------------------------------------------------------


def test_forward_mode_ad_runs_no_op_without_a_rule():
    """``torch.func.jvp`` of ``tanh(x @ W.T).sum()``, x (4,), W (3, 4), and the same with
    dual tensors (``torch.autograd.forward_ad``): the forward-AD checks
    (``_has_same_storage_numel``) and the zero tangent of W (``_efficientzerotensor``) had no
    rule, so the count was a lower bound. They are metadata and creation, 0 by rule. What
    runs: the primal product 24 (``2 * 3 * 4``), the tangent's two products ``t @ W.T`` and
    ``x @ 0`` (mm has no kernel for the zero tensor: it is made real and multiplied) 48, their
    sum 3, tanh 3, its tangent ``t * (1 - y^2)`` 9, the two sums 6: 93."""
    w = torch.randn(3, 4)
    x, t = torch.randn(4), torch.randn(4)

    def f(v):
        return torch.tanh(v @ w.T).sum()

    jvp = _counted(lambda: torch.func.jvp(f, (x,), (t,)))
    assert jvp.total == 24 + 48 + 3 + 3 + 9 + 6 == 93

    def dual():
        import torch.autograd.forward_ad as fw

        with fw.dual_level():
            fw.unpack_dual(f(fw.make_dual(x, t)))

    assert _counted(dual).total == 93
    assert _counted(lambda: torch.func.hessian(f)(x)).unknown_ops == {}


# -- grid_sample (2-D), from ATen's vectorised CPU kernel ---------------------------------------


@pytest.mark.parametrize(
    ("mode", "padding", "align_corners", "forward", "backward"),
    [
        # 9 locations, 2 channels: 18 output elements. Per coordinate: unnormalise 3 (2 with
        # align_corners), clip (border 2; reflection 9 + 2, 7 + 2 with align_corners; with the
        # gradient 10 + 1 + 2, 8 + 1 + 2). Bilinear: + 10 per location (2 floors, 4 distances,
        # 4 corner weights), 7 per output (4 products, 3 adds); backward + 2 per location (the
        # multipliers), 14 per element for the grid and 8 for the input (4 products, 4 adds)
        ("bilinear", "zeros", False, 9 * (6 + 10) + 7 * 18, 9 * (6 + 12) + 22 * 18),
        ("bilinear", "zeros", True, 9 * (4 + 10) + 7 * 18, 9 * (4 + 12) + 22 * 18),
        ("bilinear", "border", False, 9 * (10 + 10) + 7 * 18, 9 * (10 + 12) + 22 * 18),
        ("bilinear", "reflection", False, 9 * (28 + 10) + 7 * 18, 9 * (32 + 12) + 22 * 18),
        ("bilinear", "reflection", True, 9 * (22 + 10) + 7 * 18, 9 * (26 + 12) + 22 * 18),
        # nearest: 2 rounds per location, a gather; backward recomputes the locations and adds
        # each gradient element into its pixel (1); the grid's gradient is zero (set, not summed)
        ("nearest", "zeros", False, 9 * (6 + 2), 9 * (6 + 2) + 18),
        ("nearest", "border", True, 9 * (8 + 2), 9 * (8 + 2) + 18),
    ],
)
def test_grid_sample_2d_forward_and_backward_by_the_cpu_kernel(
    mode, padding, align_corners, forward, backward
):
    """``F.grid_sample(x, grid)``, x (1, 2, 4, 4), grid (1, 3, 3, 2), both needing gradients:
    counted as ATen's ``GridSamplerKernel.cpp`` computes (see each parameter's derivation).
    Before, bilinear counted 9 per output element (upsampling's three lerps) and 3 per
    coordinate whatever ``align_corners``, reflection 6 per coordinate, and nothing for the
    interpolation weights: bilinear zeros was 216 forward and 540 backward (now 270, 558)."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2) * 2 - 1).requires_grad_()
    result = gp.count_fpo(
        lambda a, g: nn.functional.grid_sample(
            a, g, mode=mode, padding_mode=padding, align_corners=align_corners
        ),
        x,
        grid,
    )
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (forward, backward)


def test_grid_sample_backward_computes_the_grids_gradient_always_and_the_inputs_on_demand():
    """A spatial transformer on data (the input needs no gradient): the kernel skips the
    input's gradient (``output_mask[0]``) but always computes the grid's: 9 * (6 + 12) + 14 *
    18 = 414. The same step on the meta device counts the same."""
    grid = (torch.rand(1, 3, 3, 2) * 2 - 1).requires_grad_()

    def sample(g, a):
        return nn.functional.grid_sample(a, g, align_corners=False)

    cpu = gp.count_fpo(sample, grid, torch.randn(1, 2, 4, 4))
    assert cpu.backward_total == 9 * (6 + 12) + 14 * 18
    meta = gp.count_fpo(
        sample,
        torch.empty(1, 3, 3, 2, device="meta", requires_grad=True),
        torch.empty(1, 2, 4, 4, device="meta"),
    )
    assert (meta.forward_total, meta.backward_total) == (cpu.forward_total, cpu.backward_total)


# -- a transformer decoder layer with cross-attention, training --------------------------------


def test_a_decoder_layer_with_cross_attention_training_step_counted_from_its_maths():
    """``nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True)`` in training, a
    target of T = 3 tokens with a causal mask, a memory of S = 5 tokens that needs a gradient
    (an encoder's output). E = 4, 2 heads of d = 2, feed-forward 8.

    Forward. Self-attention: the packed in-projection ``T x 3E`` outputs of ``2E + 1`` = 36 * 9
    = 324; SDPA (as proved in s19/s20) ``2 b h T T (d + d)`` = 144, scaling Q and K 24, the
    mask 18 (1 per score), softmax (``_safe_softmax``: ATen's 5 per score less 1 per row and
    a compare with ``-inf`` per score, s35; 5 per score before) 6 * 18 - 6 = 102; out-projection
    12 * 9 = 108: 720 (708 before s35). Cross-attention: q from the target 12 * 9 = 108, k and
    v from the memory in one product ``S x 2E`` = 40 * 9 = 360; SDPA ``2 b h T S (d + d)`` =
    240, scaling Q 12 and K 20, softmax 6 * 30 - 6 = 174; out-projection 108: 1,022 (998).
    Feed-forward 24 * 9 + 24 (relu) + 12 * 17 = 444. Three residual adds 36, three layer norms as
    ATen's kernel (s34) runs them, per row of 4 float32 values (shorter than a vector of 8) the
    scalar Welford 24, the 8 lanes merged in 72, ``m2 / N``, rstd 3, ``-mean``, then 4 per element:
    3 * (3 * 101 + 48) = 1,053 (288 before). Total 3,275 (3,239 before s35, 2,474 before s34).

    Backward. Layer norms (one thread) 3 * (1 + 3 * 11 + 12 * 15 + 2 * 4) = 666 (486 before
    s34); the products' gradients
    (``2mkn`` each for the input and the weight): out-projections 2 * 192, self in-projection
    weight 288 (the target needs no gradient), cross q 192, kv 320 + its input 320, linear1
    384, linear2 384: 2,272; bias sums 12 + 36 + 12 + 40 + 12 + 24 + 12 = 148; SDPA backward
    (four products, softmax 4 per score less 1 per row, the scalings) 384 + 620 = 1,004 (1,016
    before s35); relu 24; gradients
    summed where a tensor is used twice: q, k and v of the packed projection 2 * 36, k and v of
    the memory's 40, the two residual branches 2 * 12: 136. Total 4,250 (4,262 before s35,
    4,082 before s34). The
    meta device counts the same."""
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    tgt, memory = torch.randn(1, 3, 4), torch.randn(1, 5, 4, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    cpu = gp.count_fpo(layer, tgt, memory, tgt_mask=mask)
    assert cpu.unknown_ops == {}
    assert (cpu.forward_total, cpu.backward_total) == (3275, 4250)
    assert cpu.forward_by_module["self_attn"] == 720
    assert cpu.forward_by_module["multihead_attn"] == 1022
    with torch.device("meta"):
        meta_layer = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
    meta = gp.count_fpo(
        meta_layer,
        tgt.to("meta"),
        torch.empty(1, 5, 4, device="meta", requires_grad=True),
        tgt_mask=mask.to("meta"),
    )
    assert (meta.forward_total, meta.backward_total) == (3275, 4250)


# -- losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "weighted", "forward", "backward"),
    [
        # forward per sample: 4 other classes * (z = margin - x[y] + x[i]: 2, z > 0: 1, its add
        # into the sum: 1) + 1 division by C; the mean: 4 adds + 1 division
        (1, False, 4 * (4 * 4 + 1) + 5, 4 * (3 * 5 + 4 * 2)),
        # p = 2: z * z (+1), weighted (+1); backward 2 * g * z (+2), weighted (+1)
        (2, True, 4 * (4 * 6 + 1) + 5, 4 * (3 * 5 + 4 * 5)),
    ],
)
def test_multi_margin_loss_by_its_cpu_kernels(p, weighted, forward, backward):
    """``F.multi_margin_loss(x, y)`` on (4, 5) scores: ATen's kernels skip the target class in
    the forward (the rule counted it: 89 for p = 1, now 73); the backward computes ``z`` for
    every class (2 each), then for the 4 others ``z > 0`` and the gradient subtracted from the
    target's (2), and multiplies all 5 by the output's gradient (1 each): 3C + 2(C - 1) = 23
    per sample (the rule counted 3 per element: 60, now 92)."""
    x = torch.randn(4, 5, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3])
    w = torch.rand(5) if weighted else None
    result = gp.count_fpo(lambda a: nn.functional.multi_margin_loss(a, y, p=p, weight=w), x)
    assert (result.forward_total, result.backward_total) == (forward, backward)


# -- CTC loss, against a loop that counts ATen's CPU kernel ------------------------------------


def _prime(labels: list[int], s: int) -> int:
    """The class of lattice state ``s``: blank (0) for even states, else its label."""
    return 0 if s % 2 == 0 else labels[s // 2]


def _ctc_kernel_count(steps: int, labels: list[int]) -> tuple[int, int, int]:
    """The arithmetic of ``ctc_loss_cpu_template`` and ``ctc_loss_backward_cpu_template`` for
    one sample (without the gradient's 6 per element), counted line by line as the kernels
    run them: ``(forward, backward as the rule counts it, backward exactly)``. The exact
    backward follows which sums are still ``-inf`` (states no path reaches), which decides
    whether a state's alpha * beta is assigned to its class or log-added (8)."""
    n = 2 * len(labels) + 1
    forward = 0
    reach = [[False] * n for _ in range(steps)]
    reach[0][0] = True
    if labels:
        reach[0][1] = True
    for t in range(1, steps):
        for s in range(n):
            jump = s > 1 and _prime(labels, s - 2) != _prime(labels, s)
            forward += (s > 0) + jump  # the compares that find the max
            forward += 12  # == -inf, 3 subtractions, 3 exps, 2 adds, log, + max, + log_prob
            reach[t][s] = reach[t - 1][s] or (s > 0 and reach[t - 1][s - 1])
            reach[t][s] = reach[t][s] or (jump and reach[t - 1][s - 2])
    forward += 10 if labels else 1
    rule = exact = 2 if labels else 1
    back = [[False] * n for _ in range(steps)]
    back[-1][n - 1] = True
    if labels:
        back[-1][n - 2] = True
    for t in range(steps - 2, -1, -1):
        held: set[int] = set()
        finite: dict[int, bool] = {}
        for s in range(n - 1, -1, -1):
            jump = s < n - 2 and _prime(labels, s + 2) != _prime(labels, s)
            cost = (s < n - 1) + jump + 12 + 2  # the recursion, alpha + beta, lcab == -inf
            back[t][s] = back[t + 1][s] or (s < n - 1 and back[t + 1][s + 1])
            back[t][s] = back[t][s] or (jump and back[t + 1][s + 2])
            c = _prime(labels, s)
            rule += cost + (8 if c in held else 0)
            exact += cost + (8 if finite.get(c) else 0)
            held.add(c)
            finite[c] = finite.get(c) or (reach[t][s] and back[t][s])
    return forward, rule, exact


def test_ctc_loss_counts_its_cpu_kernels_from_the_lengths_and_labels():
    """``F.ctc_loss`` on 4 samples of up to 7 steps and 4 labels, with repeated labels (which
    drop a compare and add log-adds) and shorter inputs and targets, lengths given as tensors
    and as lists: the rule (which reads the lengths and labels) equals a loop that counts each
    line of ATen's kernels, forward exactly; backward with every class's repeated state
    log-added, which is at most 8 per state over the exact count (a state no path reaches yet
    is assigned, not added). The rule counted 15 per cell of the (4, 7, 9) lattice + 11 per
    sample, 3,824 forward, and 20 per cell + 6 per gradient element, 5,880 backward: now
    1,833 and 3,377 (exactly, 2,985)."""
    torch.manual_seed(0)
    log_probs = torch.randn(7, 4, 5).log_softmax(2).detach().requires_grad_()
    targets = torch.tensor([[1, 2, 2, 3], [4, 4, 4, 1], [1, 3, 1, 3], [2, 1, 0, 0]])
    steps, sizes = [7, 5, 6, 3], [4, 3, 4, 2]
    counts = [_ctc_kernel_count(steps[b], targets[b, : sizes[b]].tolist()) for b in range(4)]
    forward = sum(c[0] for c in counts)
    backward = sum(c[1] for c in counts) + 6 * 5 * sum(steps)
    exact = sum(c[2] for c in counts) + 6 * 5 * sum(steps)
    assert (forward, backward, exact) == (1833, 3377, 2985)
    for lengths in ((steps, sizes), (torch.tensor(steps), torch.tensor(sizes))):
        result = gp.count_fpo(
            lambda x, ln=lengths: nn.functional.ctc_loss(x, targets, *ln, reduction="sum"),
            log_probs,
        )
        assert result.by_op["aten._ctc_loss"] == forward
        assert result.by_op["aten._ctc_loss_backward"] == backward
        assert result.by_op["aten._ctc_loss_backward"] - exact <= 8 * 4 * 9 * 7


@pytest.fixture
def cudnn_ctc_kernel():
    """A CPU kernel for ``_cudnn_ctc_loss`` (PyTorch has it for CUDA only): aten's schema, the
    loss and its gradient from the CPU ops (run inside the kernel, so not counted again)."""
    lib = torch.library.Library("aten", "IMPL")

    def kernel(log_probs, targets, input_lengths, target_lengths, blank, deterministic, zero):
        aten = torch.ops.aten
        lengths = (targets, input_lengths, target_lengths)
        loss, alpha = aten._ctc_loss(log_probs, *lengths, blank, zero)
        ones = torch.ones_like(loss)
        grad = aten._ctc_loss_backward(ones, log_probs, *lengths, loss, alpha, blank, zero)
        return loss, grad

    lib.impl("_cudnn_ctc_loss", kernel, "CPU")
    yield
    lib._destroy()


def test_cudnn_ctc_loss_counts_as_the_cpu_kernels_forward_and_backward(cudnn_ctc_kernel):
    """``torch._cudnn_ctc_loss`` (what ``F.ctc_loss`` runs on CUDA for float32, blank 0 and
    concatenated targets) returns the loss and the gradient at once: it had no rule (0 FPO and
    an unknown op on a GPU). It counts as the CPU kernels' forward and backward: for the
    samples of the CTC test above, 1,833 + 3,377."""
    targets = torch.tensor([[1, 2, 2, 3], [4, 4, 4, 1], [1, 3, 1, 3], [2, 1, 0, 0]])
    steps, sizes = [7, 5, 6, 3], [4, 3, 4, 2]
    flat = torch.cat([targets[b, : sizes[b]] for b in range(4)]).int()
    log_probs = torch.randn(7, 4, 5).log_softmax(2)
    with gp.FPOCounter() as counter:
        torch._cudnn_ctc_loss(log_probs, flat, steps, sizes, 0, True, False)
    assert counter.result.unknown_ops == {}
    assert counter.result.by_op["aten._cudnn_ctc_loss"] == 1833 + 3377


# -- normalisation and layers nobody had checked (greenprint counted them right) -----------------


@pytest.mark.parametrize(
    ("name", "make", "shapes", "forward", "backward"),
    [
        # instance norm = batch norm over (1, N*C, H, W): 120 elements in 6 slices, ATen's CPU
        # kernel (s34): training 7 per element + 9 per slice (it was 624: 5 + 4); backward 4
        # per element whatever is asked + 6 per element and 4 per slice for the input grad
        # (it was 1092: 9 + 2)
        ("instance", lambda: nn.InstanceNorm2d(3), [(2, 3, 4, 5)], 894, 1224),
        # affine: the kernel's x * alpha + beta costs the same (it was 864); backward + the
        # weight grad 1 per slice, and the repeat's sums 6 + 6 (it was 1584)
        ("instance affine", lambda: nn.InstanceNorm2d(3, affine=True), [(2, 3, 4, 5)], 894, 1242),
        # running statistics: + 9 per (repeated) channel, then each is the mean of its 2 copies
        # (6 adds + 3 divisions, twice)
        (
            "instance tracked",
            lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
            [(2, 3, 4, 5)],
            894 + 54 + 18,
            1242,
        ),
        # batch statistics without running ones: 120 * 7 + 3 * 9 (it was 852); backward
        # 120 * 10 + 3 * 4 + 3 (it was 1566)
        (
            "batch untracked",
            lambda: nn.BatchNorm2d(3, track_running_stats=False),
            [(2, 3, 4, 5)],
            867,
            1215,
        ),  # fmt: skip
        # x*x 160, the 3-channel window average 3 + 1 per element (+ 1, the add into the output
        # ATen's contiguous avg_pool2d zeroed: s36), * alpha, + k, ** beta, x /: 10 per
        # element (9 until s36). Backward per element: x / d for x 1 and for d -g * ((x / d) / d) 4,
        # pow 3 (g * beta * d^(beta - 1)), * alpha 1, the window's backward 4, x * x 2, and the
        # two sums of x's gradients 2: 17
        ("local response", lambda: nn.LocalResponseNorm(3), [(2, 5, 4, 4)], 1600, 2720),
        # weight norm of (3, 4): norms 2 per element + sqrt per row, g / norm per row, v * it:
        # 3 * 12 + 2 * 3; addmm 48 + 6; backward 5 * 12 + 3 * 3, the products 96, bias 6
        (
            "weight norm",
            lambda: nn.utils.parametrizations.weight_norm(nn.Linear(4, 3)),
            [(2, 4)],
            42 + 54,
            69 + 96 + 6,
        ),
        # Conv3d(2, 3, 2) on 3^3: 8 output positions * 2 * 3 * 2 * 8 = 768 + bias 24; backward
        # grad_input and grad_weight 768 each + bias 24
        ("conv3d", lambda: nn.Conv3d(2, 3, 2), [(1, 2, 3, 3, 3)], 792, 1560),
        # transposed, stride 2: 8 input positions * 2 * 48 = 768 + bias on 3 * 4^3 = 192
        (
            "conv_transpose3d",
            lambda: nn.ConvTranspose3d(2, 3, 2, stride=2),
            [(1, 2, 2, 2, 2)],
            960,
            1728,
        ),  # fmt: skip
        ("pixel shuffle", lambda: nn.PixelShuffle(2), [(1, 8, 3, 3)], 0, 0),
        # im2col copies; its backward col2im adds each of the 8 * 9 column elements back
        ("unfold", lambda: nn.Unfold(2), [(1, 2, 4, 4)], 0, 72),
        ("fold", lambda: nn.Fold((4, 4), 2), [(1, 8, 9)], 72, 0),
    ],
)
def test_normalisation_and_layers_counted_from_their_maths(name, make, shapes, forward, backward):
    """Each layer in training, forward and backward from ones, as ``count_fpo`` runs it (the
    derivation beside each case)."""
    torch.manual_seed(0)
    inputs = [torch.randn(*s, requires_grad=True) for s in shapes]
    result = gp.count_fpo(make(), *inputs)
    assert result.unknown_ops == {}, name
    assert (result.forward_total, result.backward_total) == (forward, backward), name


def test_spectral_norm_power_iteration_and_cosine_similarity_forward_by_hand():
    """``spectral_norm(Linear(4, 3))`` in training, one power iteration on W (3, 4):
    ``u = normalize(W v)``, ``v = normalize(W^T u)`` (2 products of 24, 2-norms 14 and 16 (2
    per element + ATen's vectorised kernel's 8 lanes added up and the root: s36; 7 and 9
    before), 2 clamps, 3 + 4 divisions), ``sigma = u . (W v)`` (24 + 6), ``W / sigma`` 12,
    then the addmm 54: 183. ``F.cosine_similarity`` of (3, 4) rows: two 2-norms (2 * 3 * (8 +
    8)), clamped (6), ``(a / |a|) * (b / |b|)`` summed per row (24 + 12 + 12): 150;
    ``F.normalize`` 48 + 3 + 12."""
    sn = nn.utils.parametrizations.spectral_norm(nn.Linear(4, 3))
    assert gp.count_fpo(sn, torch.randn(2, 4), backward=False).total == 183
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    cos = gp.count_fpo(nn.functional.cosine_similarity, a, b, backward=False)
    assert cos.total == 96 + 6 + 24 + 12 + 12
    norm = gp.count_fpo(lambda x: nn.functional.normalize(x, dim=1), a, backward=False)
    assert norm.total == 48 + 3 + 12


# -- double backward: a WGAN-GP gradient penalty ----------------------------------------------


def test_a_gradient_penalty_with_create_graph_counted_from_its_maths():
    """WGAN-GP's penalty on a critic Linear(4, 5) -> Tanh -> Linear(5, 1), 3 interpolates:

    Forward: the critic ``2*3*4*5 + 15`` + tanh 15 + ``2*3*5 + 3`` = 183, ``out.sum()`` 3, the
    penalty ``((|g|_2 - 1)^2).mean()``: norms 3 * (2 * 4 + 8) (ATen's vectorised kernel
    along the contiguous last dimension: its 8 lanes added up and the root; 3 * 9 until s36),
    - 1 3, square 3, mean 3 + 1 = 58: 244. Backward (what autograd runs):
    ``autograd.grad(out.sum(), x, create_graph=True)`` computes only the path to x: ``g_h =
    1 @ W2`` 30, ``t = g_h * (1 - y^2)`` 45, ``g = t @ W1`` 120: 195. ``penalty.backward()``:
    mean 3, the square ``g * (2 * d^1)`` 6 (``d^1`` a pow ATen copies: 0, 1 per element before
    s36), the norm ``g * (x / |x|)`` 12 + 12 + 3 (``|x| ==
    0``); through ``g = t @ W1``: 120 + 120 (t and W1); through ``tanh_backward(g_h, y)``:
    ``tanh_backward`` 45 for g_h and ``g * (-2 y * g_h)`` 45 for y; y = tanh(z) 45; z = x W1^T
    + b: x 120, W1 120, b 15; W1's two gradients summed 20; ``g_h = 1 @ W2``: W2 30. 716 + 195
    = 911."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1))

    def step():
        x = torch.randn(3, 4, requires_grad=True)
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        ((g.norm(2, dim=1) - 1) ** 2).mean().backward()

    with gp.FPOCounter(critic) as counter:
        step()
    result = counter.result
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (244, 195 + 716)


# -- torch.distributions: a VAE's reparameterised sample and its log-density ---------------------


def test_normal_rsample_and_log_prob_counted_as_torch_distributions_runs_them():
    """``q = Normal(mu, sd)``, ``z = q.rsample()``, ``q.log_prob(z).sum()`` on (5, 4), N = 20.

    Forward: argument validation (on by default; here asked for) checks ``loc == loc`` and
    ``scale > 0``, and log_prob ``z == z``: 3N compares; ``z = mu + eps * sd`` 2N; log_prob
    ``-(z - mu)^2 / (2 sd^2) - log(sd) - log(sqrt(2 pi))``: sd^2, log, subtract, square,
    negate, 2 *, divide, two subtractions: 9N; the sum N: 15N = 300. Backward (torch's
    autograd formulas): log sd's -g N; the division's ``g / b`` and ``-g * ((a / b) / b)`` 5N;
    ``2 *`` N; the negation N; the square ``g * 2 * d^1`` 2N (``d^1`` a pow ATen copies, 0;
    3N before s36); mu's -g N; log's ``g / sd`` N; sd^2's 2N; z = mu + eps * sd: ``g * eps``
    N; sd's and mu's gradients summed 3N: 18N."""
    torch.manual_seed(0)
    mu = torch.randn(5, 4, requires_grad=True)
    sd = (torch.rand(5, 4) + 0.5).requires_grad_()

    def elbo_term(m, s):
        q = torch.distributions.Normal(m, s, validate_args=True)
        return q.log_prob(q.rsample()).sum()

    result = gp.count_fpo(elbo_term, mu, sd)
    assert result.unknown_ops == {}
    assert (result.forward_total, result.backward_total) == (15 * 20, 18 * 20)


# -- nn.Bilinear: ATen's _trilinear, forward and backward ---------------------------------------


@pytest.mark.parametrize(("b", "i", "j", "o"), [(2, 3, 4, 5), (8, 16, 12, 10)])
def test_bilinear_forward_and_backward_as_aten_unrolls_trilinear(b, i, j, o):
    """``nn.Bilinear(I, J, O)`` on x1 (B, I), x2 (B, J): ATen's ``_trilinear`` loops over the
    O output features (``unroll_dim``); per feature ``sumproduct_pair(x1, W_k)`` over I (a
    ``bmm``, 2BIJ), then with x2 over J (2BJ), and the result added into the output (B):
    ``2BOIJ + 2BOJ + BO`` (+ the bias BO). The backward is three ``_trilinear`` calls, still
    unrolled over O: x1's gradient ``grad_k * W_k`` has nothing summed, an elementwise product
    (BIJ), then over J with x2 (2BIJ), added (BI): ``3BOIJ + BOI``; W's ``x1 * grad_k`` (BI),
    over B with x2 (2BIJ), added (IJ): ``2BOIJ + BOI + OIJ``; x2's over I (2BIJ), times
    ``grad_k`` (BJ), added (BJ): ``2BOIJ + 2BOJ``; + the bias's sum BO. The rule counted 2 per
    element for the elementwise product (as a contraction) and no adds: (2, 3, 4, 5) backward
    908, now 1,040."""
    layer = nn.Bilinear(i, j, o)
    x1, x2 = torch.randn(b, i, requires_grad=True), torch.randn(b, j, requires_grad=True)
    result = gp.count_fpo(layer, x1, x2)
    bo, boij = b * o, b * o * i * j
    forward = 2 * boij + 2 * bo * j + bo
    backward = (3 * boij + bo * i) + (2 * boij + bo * i + o * i * j) + (2 * boij + 2 * bo * j)
    assert result.by_op_phase["aten._trilinear"]["forward"] == forward
    assert result.by_op_phase["aten._trilinear"]["backward"] == backward
    assert (result.forward_total, result.backward_total) == (forward + bo, backward + bo)


# -- LBFGS: several inner iterations with a closure ---------------------------------------------


def test_lbfgs_step_with_four_inner_iterations_counted_from_torch_optim():
    """``LBFGS(Linear(4, 3).parameters(), max_iter=4)`` (n = 15 parameters, history empty),
    one ``step(closure)``; the closure (forward, loss, backward) is the model's, 4 calls.

    The optimizer's own arithmetic (torch/optim/lbfgs.py): the first gradient's test
    ``|g|.max() <= tol`` 2n + 1. Iteration 1: ``d = -g`` n, ``t = min(1, 1 / |g|.sum()) * lr``
    2n + 4, ``g . d`` 2n + its test 1, the update ``p += t d`` 2n (t a tensor), the new
    gradient's test 2n + 1, lack of progress ``|d t|.max() <= tol`` 3n + 1: 12n + 7.
    Iteration k (m = k - 1 stored pairs): ``y = g - g_prev``, ``s = d t`` 2n, ``y . s`` 2n
    and its test 1, ``1 / ys`` 2, ``ys / y . y`` 2n + 1, ``q = -g`` n, the two loops m * (a dot
    2n, its scaling 1, the coefficient's negation or difference 1, ``add_`` with alpha 2n),
    ``r = q * H`` n, ``g . d`` 2n + 1, the update (lr = 1: alpha 1) n, then (not in the last)
    the gradient's test 2n + 1 and lack of progress 3n + 1: k = 2: 24n + 11, k = 3: 32n + 15,
    k = 4: 35n + 17. Total 103n + 81 = 1,626."""
    torch.manual_seed(0)
    model, x = nn.Linear(4, 3), torch.randn(2, 4)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=4)

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        return loss

    with gp.FPOCounter(model) as counter:
        opt.step(closure)
    n = 15
    assert counter.result.unknown_ops == {}
    assert (
        counter.result.optimizer_total
        == (2 * n + 1) + (12 * n + 7) + (24 * n + 11) + (32 * n + 15) + (35 * n + 17)
        == 103 * n + 81
    )


# -- optimizers: for-loop and foreach count what each runs ---------------------------------------


def _optimizer_fpo(factory) -> int:
    """The optimizer FPO of a steady step (after one warm-up step) on Linear(4, 3), n = 15."""
    torch.manual_seed(0)
    model, x = nn.Linear(4, 3), torch.randn(2, 4)
    opt = factory(model.parameters())
    model(x).sum().backward()
    opt.step()
    with gp.FPOCounter(model) as counter:
        opt.step()
    assert counter.result.unknown_ops == {}
    return counter.result.optimizer_total


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(torch.optim.RMSprop, centered=True, momentum=0.9),
        torch.optim.NAdam,
        functools.partial(torch.optim.NAdam, weight_decay=0.1, decoupled_weight_decay=True),
        torch.optim.Adamax,
        torch.optim.Adadelta,
        torch.optim.Rprop,
    ],
)
def test_for_loop_and_foreach_optimizers_run_the_same_arithmetic(factory):
    """Where torch's for-loop and foreach implementations run the same arithmetic per element
    they count the same."""
    assert _optimizer_fpo(functools.partial(factory, foreach=False)) == _optimizer_fpo(
        functools.partial(factory, foreach=True)
    )


def test_asgd_and_radam_foreach_run_more_arithmetic_than_their_for_loops():
    """n = 15, 2 parameter tensors (2 step increments in both). ASGD's for-loop:
    ``p *= 1 - lambd * eta`` and ``p += -eta * g`` 3 per element; the average ``ax`` is a copy
    while ``mu == 1`` (the first t0 = 1e6 steps): 3n + 2 = 47. Its foreach: ``g + lambd * p``
    2, ``p += -1 * g' * eta`` (addcmul, value -1) 3, ``ax += (p - ax) * mu`` 3 whatever mu, and
    the new eta ``lr / (1 + lambd * lr * step) ** alpha`` on the step tensors 5 per tensor:
    8n + 10 + 2 = 132. RAdam (step 2, unrectified): the for-loop's update
    ``p -= exp_avg / bc1 * lr`` 4 after the moments 7: 11n + 2 = 167; the foreach computes the
    adaptive term anyway (sqrt, + eps, /, reciprocal, + the unrectified step) and applies it
    with one addcmul: 14n + 2 = 212."""
    n = 15
    asgd = [_optimizer_fpo(functools.partial(torch.optim.ASGD, foreach=f)) for f in (False, True)]
    assert asgd == [3 * n + 2, 8 * n + 10 + 2]
    radam = [_optimizer_fpo(functools.partial(torch.optim.RAdam, foreach=f)) for f in (False, True)]
    assert radam == [11 * n + 2, 14 * n + 2]
