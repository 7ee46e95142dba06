"""FPO rules for losses: nll, mse, smooth L1, Huber, L1, binary cross-entropy, and their backward.

Conventions as in :mod:`greenprint.fpo._rules_nn`: a reduction of n elements costs n FPO; each
rule's docstring gives its formula, ``N`` being the number of input elements.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []


# -- losses ----------------------------------------------------------------------------------


def _reduce(n: int, reduction: int) -> int:
    """Cost of reducing n per-element losses: 0 (none), n (sum), n + 1 (mean)."""
    return 0 if reduction == 0 else n + (1 if reduction == 1 else 0)


_CASCADE_LEVELS = 8  # ATen's ``cascade_sum_num_levels``
_LEVEL_STEP = 16  # ``1 << level_power``, ``level_power = max(4, ceil(log2 n) / 8)``: 4 below 2**40


def cascade_carries(n: int) -> int:
    """The carries of ATen's NLL cascade sum over ``n`` targets, every one kept.

    ``nll_loss_out_frame`` and ``nll_loss2d_forward_out_frame`` sum the picked values into
    ``loss_partial_sums[0]`` and, after the target at flat position ``i``, carry level ``j``
    into level ``j + 1`` (``partial[j + 1] += partial[j]`` for the loss and the weights'
    sums alike, 2 adds) while the ``j``-th group of 4 bits of ``i`` is 0, for ``j`` up to 6:
    ``i = 0`` carries 7 times, every 16th position once more per power of 16 it is a multiple
    of. So ``sum over k = 1..7 of ceil(n / 16**k)`` carries.
    """
    return sum(-(-n // _LEVEL_STEP**k) for k in range(1, _CASCADE_LEVELS)) if n > 0 else 0


def _counted_targets(
    self: Any,
    target: Any,
    weight: Any = None,
    reduction: int = 1,
    ignore_index: int = -100,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    """What ATen's NLL kernels compute: ``{"kept": n, "carries": c}``.

    ``kept``: the targets not equal to ``ignore_index``; ``carries``: the cascade sum's carries
    between its levels that the kept targets trigger (see :func:`cascade_carries`), read from
    their positions in the flattened target.
    """
    kept = (target != ignore_index).reshape(-1)
    positions = kept.nonzero().reshape(-1)
    carries = sum(int((positions % (_LEVEL_STEP**k) == 0).sum()) for k in range(1, _CASCADE_LEVELS))
    return {"kept": int(kept.sum()), "carries": carries}


def _counted_targets_backward(
    grad_output: Any,
    self: Any,
    target: Any,
    weight: Any = None,
    reduction: int = 1,
    ignore_index: int = -100,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _counted_targets(self, target, weight, reduction, ignore_index)


@register_rule(["aten.nll_loss_forward", "aten.nll_loss2d_forward"], reads=_counted_targets)
def nll_loss_rule(
    self: tuple[int, ...],
    target: tuple[int, ...],
    weight: Any = None,
    reduction: int = 1,
    *args: Any,
    kept: int | None = None,
    carries: int | None = None,
    **kwargs: Any,
) -> int:
    """ATen's ``nll_loss_out_frame`` / ``nll_loss2d_forward_out_frame``, per target.

    Summed or averaged (and a 1-D input whatever the reduction): the kernel subtracts each
    picked log-probability from its cascade sum (``loss_partial_sums[0] -= data``: the
    negation and the add are one op), 1 per target; with class weights ``-= data * w`` and
    ``weight_partial_sums[0] += w``, 3; the cascade's carries between its 8 levels, 2 adds each
    (:func:`cascade_carries`: 14 after the first target, 2 more after every 16th, ...); then
    its 8 partial sums added into 0 (8; with weights the weights' 8 too, 16); the mean divides
    once (1). (Before s35 the carries and the final sums were not counted; it was 2 per target
    unweighted before s34, a negation counted besides the sum.) ``reduction="none"`` on a batch
    (2-D or 4-D input): ``-input * w`` per target, ``w`` 1 without weights (a multiply all the
    same), 2 (it was 1 unweighted). Targets equal to ``ignore_index`` (-100 by default:
    padding tokens in language-model labels) are skipped by the kernels
    (``if (cur_target == ignore_index) continue``, before the carries) and cost nothing; how
    many, and which carries the others trigger, are read from the target's values (on meta,
    which has none, every target counts: an upper bound).
    """
    t = numel(target) if kept is None else kept
    if reduction == 0 and len(self) >= 2:
        return 2 * t
    weighted = weight is not None
    carried = cascade_carries(numel(target)) if carries is None else carries
    final = _CASCADE_LEVELS * (2 if weighted else 1)
    return t * (3 if weighted else 1) + 2 * carried + final + (1 if reduction == 1 else 0)


@register_rule(
    ["aten.nll_loss_backward", "aten.nll_loss2d_backward"], reads=_counted_targets_backward
)
def nll_loss_backward_rule(
    grad_output: tuple[int, ...],
    self: tuple[int, ...],
    target: tuple[int, ...],
    weight: Any = None,
    reduction: int = 1,
    *args: Any,
    kept: int | None = None,
    **kwargs: Any,
) -> int:
    """ATen's ``nll_loss_backward_out_frame`` / ``nll_loss2d_backward_out_frame``.

    Summed or averaged: the kernel computes ``grad = -(g / total_weight)`` once (divide and
    negate, 2; a sum only negates, 1) and writes it into each kept target's entry of a zeroed
    gradient, times the class weight when there are weights (1 per target, else a copy).
    ``reduction="none"`` on a batch: ``-w * g`` per target, ``w`` 1 without weights (2). (It
    was 2 per target, 3 with weights, whatever the reduction: the scalar's division and
    negation counted for every target.) Targets equal to ``ignore_index`` are skipped, as in
    the forward.
    """
    t = numel(target) if kept is None else kept
    if reduction == 0 and len(self) >= 2:
        return 2 * t
    return (2 if reduction == 1 else 1) + (t if weight is not None else 0)


@register_rule("aten.mse_loss")
def mse_loss_rule(self: tuple[int, ...], target: Any, reduction: int = 1, **kw: Any) -> int:
    """2N (subtract, square), reduced."""
    n = numel(self)
    return 2 * n + _reduce(n, reduction)


@register_rule("aten.mse_loss_backward")
def mse_loss_backward_rule(
    grad_output: Any, self: tuple[int, ...], target: Any, reduction: int = 1, **kw: Any
) -> int:
    """3N: ATen's ``mse_backward_cpu_kernel``, ``norm * (x - t) * g`` per element.

    The mean's ``1 / N`` is folded into ``norm`` (``2 / N`` instead of 2, computed once on
    the host), so the mean costs nothing per element: 3N for every reduction. (It was 4N for
    the mean, a division per element that the kernel does not perform.)
    """
    return 3 * numel(self)


def _beta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    """The loss's ``beta`` (smooth L1) or ``delta`` (Huber): the argument after ``reduction``.

    1.0, the default of both, when not given.
    """
    if args:
        return float(args[0])
    return float(kwargs.get("beta", kwargs.get("delta", 1.0)))


@register_rule("aten.l1_loss")
def l1_loss_rule(self: tuple[int, ...], target: Any, reduction: int = 1, **k: Any) -> int:
    """2N (``abs(x - t)``: subtract, abs), reduced: ATen's ``l1_loss_out``.

    (A composite op: autograd and the meta device run its ``sub`` and ``abs``; the rule
    counts it where the op itself is dispatched. It was 5N, the smooth L1 kernel's count.)
    """
    n = numel(self)
    return 2 * n + _reduce(n, reduction)


@register_rule(["aten.smooth_l1_loss", "aten.huber_loss"])
def smooth_l1_rule(
    self: tuple[int, ...], target: Any, reduction: int = 1, *a: Any, **k: Any
) -> int:
    """8N, reduced: ATen's vectorised ``smooth_l1_kernel`` / ``huber_kernel``.

    Both sides of the branch are computed on every vector and blended: smooth L1 ``z = |x -
    t|`` (2), ``0.5 * z * z / beta`` (3), ``z - 0.5 * beta`` (2: the product of the two
    constants is written in the loop), ``z >= beta`` (1); Huber ``0.5 * z * z`` (2),
    ``delta * (z - 0.5 * delta)`` (3), the same 2 and 1. Smooth L1 with ``beta = 0`` is ATen's
    L1 loss, 2N. (It was 5N: one side of the branch, as the scalar tail loop runs it.)
    """
    n = numel(self)
    if _beta(a, k) <= 0.0:  # smooth L1 only: Huber's delta must be positive
        return l1_loss_rule(self, target, reduction)
    return 8 * n + _reduce(n, reduction)


@register_rule(["aten.smooth_l1_loss_backward", "aten.huber_loss_backward"])
def smooth_l1_backward_rule(
    grad_output: Any, self: tuple[int, ...], target: Any, reduction: int = 1, *a: Any, **k: Any
) -> int:
    """7N: ATen's vectorised ``smooth_l1_backward_cpu_kernel`` / ``huber_backward_cpu_kernel``.

    ``x = input - target`` (1), ``x > 0`` for the sign (1), ``|x|`` (1), ``x / beta`` (Huber:
    ``sign * delta``) (1), ``|x| >= beta`` (1), then ``norm * blend * g`` (2); the mean's
    ``1 / N`` is folded into ``norm``. (It was 4N.) Smooth L1 with ``beta = 0`` runs ATen's
    ``l1_loss_backward_out``, ``sgn(x - t) * g`` (3N; the mean divides the 0-d ``g`` first,
    + 1).
    """
    n = numel(self)
    if _beta(a, k) <= 0.0:
        return 3 * n + (1 if reduction == 1 else 0)
    return 7 * n


#: per element, ATen's ``binary_cross_entropy_out_cpu`` kernel: ``TORCH_CHECK``s that the input
#: and the target lie in [0, 1] (4 compares), then ``(t - 1) * max(log1p(-x), -100) - t *
#: max(log(x), -100)`` (9: t - 1, the negation, log1p, a clamp, a product; log, a clamp, a
#: product; the subtraction)
_BCE_PER_ELEMENT = 4 + 9


@register_rule("aten.binary_cross_entropy")
def bce_rule(
    self: tuple[int, ...], target: Any, weight: Any = None, *args: Any, **kwargs: Any
) -> int:
    """13N, + N with weights, reduced (mean by default), as ATen's CPU kernel runs it.

    ``binary_cross_entropy_out_cpu`` checks every element of the input and of the target
    (``(x >= 0) && (x <= 1)``, ``(t >= 0) && (t <= 1)``: 4 compares on a call that succeeds),
    then computes ``(t - 1) * max(log1p(-x), -100) - t * max(log(x), -100)``: t - 1, the
    negation, log1p, a clamp and a product, log, a clamp and a product, the subtraction (9);
    ``loss.mul_(weight)``; the reduction. (It was 9N, torch's formula without the kernel's
    range checks; the backward kernel checks nothing.)
    """
    n = numel(self)
    reduction = args[-1] if args and isinstance(args[-1], int) else kwargs.get("reduction", 1)
    return _BCE_PER_ELEMENT * n + (n if weight is not None else 0) + _reduce(n, reduction)


@register_rule("aten.binary_cross_entropy_with_logits")
def bce_with_logits_rule(
    self: tuple[int, ...],
    target: Any,
    weight: Any = None,
    pos_weight: Any = None,
    reduction: int = 1,
    **kwargs: Any,
) -> int:
    """9N, + N with weights, reduced; ``pos_weight`` + 3N + 1 per ``pos_weight`` element.

    ATen's ``binary_cross_entropy_with_logits``: ``(1 - t) * x - log_sigmoid(x)``:
    log-sigmoid 6 (as ``log_sigmoid_forward``), 1 - t, the product, the subtraction (no range
    check). ``pos_weight`` scales the log-sigmoid term by ``(pos_weight - 1) * target + 1``:
    the subtract on ``pos_weight``, then a multiply, an add and the scaling multiply per
    element.
    """
    n = numel(self)
    extra = 3 * n + numel(pos_weight) if pos_weight is not None else 0
    return 9 * n + (n if weight is not None else 0) + _reduce(n, reduction) + extra


@register_rule("aten.binary_cross_entropy_backward")
def bce_backward_rule(
    grad_output: Any,
    self: tuple[int, ...],
    target: Any = None,
    weight: Any = None,
    reduction: int = 1,
    **kwargs: Any,
) -> int:
    """6N: ``g * (x - t) / max((1 - x) * x, eps)``; + N with weights, + N for the mean."""
    n = numel(self)
    return 6 * n + (n if weight is not None else 0) + (n if reduction == 1 else 0)
