"""FPO rules for batch normalisation (and SyncBatchNorm's steps), as ATen's kernels run it.

Moved out of :mod:`greenprint.fpo._rules_nn`, whose conventions hold here; the normalisation
helpers it shares with layer and group norm are in :mod:`greenprint.fpo._rules_norm`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import numel, register_rule
from greenprint.fpo._rules_norm import (
    _affine,
    _channels,
    _norm_backward,
    _stats,
    _torch_module,
)

__all__: list[str] = []


# -- batch norm: ATen's CPU kernels (native/Normalization.cpp, native/cpu/batch_norm_kernel.cpp) --
#
# ``batch_norm_cpu`` runs ``batch_norm_cpu_kernel`` for an input contiguous in the default or a
# channels-last format; the kernel takes its channels-last form for a channels-last input and
# for a contiguous one of one position per channel and sample (``image_size == 1``: (N, C), as
# BatchNorm1d on 2-D input, or (N, C, 1, 1)). Any other layout runs TensorIterator loops
# ("generic"). The layout is read from the strides, which meta and fake tensors carry too. The
# backward runs the kernel only when the gradient's ``suggest_memory_format()`` is the input's
# (:func:`_memory_format`: from the strides, so an (N, C, 1, 1) tensor may suggest either).

#: per channel, ``1 / sqrt(var + eps)`` of the running variance (eval): add, sqrt, divide
_BN_INVSTD_RUNNING = 3
#: per channel in training: ``var_sum / n``, then ``InvStd``: the ``var != 0`` compare, ``+ eps``,
#: sqrt, ``1 / ...`` (5); the running mean ``m * mean + (1 - m) * r`` (4) and variance
#: ``m * var_sum / (n - 1) + (1 - m) * r`` (5)
_BN_INVSTD_BATCH = 5
_BN_RUNNING_UPDATE = 9
#: per channel, ``batch_norm_cpu_collect_linear_and_constant_terms``: ``alpha = invstd * w``,
#: ``beta = b - mean * alpha`` (``w = 1``, ``b = 0`` without affine: computed all the same)
_BN_LINEAR_TERMS = 3


def _bn_kernel(x: Any) -> str:
    """Which of ATen's CPU batch-norm paths a tensor ``(N, C, ...)`` takes.

    ``"contiguous"``, ``"channels_last"`` (a channels-last input, or a contiguous one with one
    position per channel and sample) or ``"generic"`` (any other strides).
    """
    torch = _torch_module()
    shape = tuple(x.shape)
    if len(shape) < 2 or not numel(shape):
        return "contiguous"
    if x.is_contiguous():
        return "channels_last" if numel(shape) // (shape[0] * shape[1]) == 1 else "contiguous"
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(len(shape))
    if fmt is not None and x.is_contiguous(memory_format=fmt):
        return "channels_last"
    return "generic"


def _memory_format(x: Any) -> Any:
    """ATen's ``x.suggest_memory_format()``, which ``batch_norm_backward_cpu_template`` compares.

    Read from the strides (c10's ``is_channels_last_strides_2d/3d``, as torch's
    ``_prims_common.suggest_memory_format`` ports it), not from ``is_contiguous``: a tensor
    contiguous in both formats, as ``(N, C, 1, 1)`` or ``(N, 1, H, W)``, is channels-last for
    ATen when its strides are channels-last ones (``(C, 1, C, C)``) and contiguous when they
    are the default ones (``(C, 1, 1, 1)``), though both are contiguous.
    """
    from torch._prims_common import suggest_memory_format

    return suggest_memory_format(x)


def _reads_bn_layout(input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A batch norm's ``kernel`` (see :func:`_bn_kernel`) and ``threads``.

    ``torch.get_num_threads()``: the channels-last kernels sum one partial result per thread.
    """
    try:
        return {"kernel": _bn_kernel(input), "threads": int(_torch_module().get_num_threads())}
    except (AttributeError, RuntimeError, TypeError):
        return {}


_reads_bn_layout.metadata_only = True  # type: ignore[attr-defined]


def _reads_bn_backward_layout(
    grad_out: Any, input: Any, *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """As :func:`_reads_bn_layout`, for ``batch_norm_backward_cpu_template``.

    It runs the kernel only when both are contiguous in a format and the gradient's
    ``suggest_memory_format()`` is the input's (see :func:`_memory_format`); else generic loops.
    """
    try:
        kernel = _bn_kernel(input)
        if _bn_kernel(grad_out) == "generic" or _memory_format(grad_out) != _memory_format(input):
            kernel = "generic"
        return {"kernel": kernel, "threads": int(_torch_module().get_num_threads())}
    except (AttributeError, ImportError, RuntimeError, TypeError, ValueError):
        return {}


_reads_bn_backward_layout.metadata_only = True  # type: ignore[attr-defined]


def _batch_norm(
    input: tuple[int, ...],
    running: bool,
    training: bool,
    kernel: str = "contiguous",
    threads: int = 1,
) -> int:
    """``batch_norm_cpu`` forward, ``N`` elements, ``C`` channels, ``P = N / C`` positions each.

    Kernel (contiguous or channels-last input): ``x * alpha + beta`` (2 per element) after
    :data:`_BN_LINEAR_TERMS` per channel, whether or not the norm is affine. Eval: + the
    running variance's ``invstd`` (3 per channel). Training: first the statistics, ``sum += x``
    and ``var_sum += (x - mean) * (x - mean)`` (5 per element), ``sum / P`` (1 per channel) and
    ``invstd`` (5 per channel); the channels-last statistics with ``P`` above the threads sum
    per thread, then the threads' partial sums (2 per thread and channel); the running
    statistics + 9 per channel. Generic strides: ``((x - mean) * invstd) * w + b`` (4 per
    element) after ``1 / sqrt(var + eps)`` (3 per channel) in eval; in training
    ``at::mean`` (1 per element + 1 per channel) and the variance loop (4 per element).
    """
    n = numel(input)
    c = _channels(input)
    if not n:
        return 0
    if kernel == "generic":
        if not training:
            return 4 * n + _BN_INVSTD_RUNNING * c
        update = _BN_RUNNING_UPDATE * c if running else 0
        return 5 * n + c + _BN_INVSTD_BATCH * c + update + 4 * n
    if not training:
        return 2 * n + (_BN_INVSTD_RUNNING + _BN_LINEAR_TERMS) * c
    update = _BN_RUNNING_UPDATE * c if running else 0
    partial = 2 * threads * c if kernel == "channels_last" and n // c > threads else 0
    stats = 5 * n + c + partial + _BN_INVSTD_BATCH * c
    return stats + update + _BN_LINEAR_TERMS * c + 2 * n


@register_rule(["aten.native_batch_norm", "aten._native_batch_norm_legit"], reads=_reads_bn_layout)
def batch_norm_rule(
    input: tuple[int, ...],
    weight: Any = None,
    bias: Any = None,
    running_mean: Any = None,
    running_var: Any = None,
    training: Any = True,
    *args: Any,
    kernel: str = "contiguous",
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """ATen's CPU kernels, see :func:`_batch_norm`.

    Training ``7N + 9C`` (+ 9C running statistics; channels-last + ``2TC`` for ``T`` threads
    when ``N / C > T``); eval ``2N + 6C``; the same with or without weight and bias.
    """
    if isinstance(running_mean, bool):  # _native_batch_norm_legit.no_stats(input, w, b, training,
        return _batch_norm(input, False, running_mean, kernel, threads)  # momentum, eps)
    return _batch_norm(input, running_mean is not None, bool(training), kernel, threads)


@register_rule(
    ["aten._native_batch_norm_legit_no_training", "aten._batch_norm_no_update"],
    reads=_reads_bn_layout,
)
def batch_norm_eval_rule(
    input: tuple[int, ...],
    *args: Any,
    kernel: str = "contiguous",
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """Eval mode: ``2N + 6C`` (generic strides ``4N + 3C``), see :func:`_batch_norm`."""
    return _batch_norm(input, True, False, kernel, threads)


@register_rule("aten._batch_norm_with_update", reads=_reads_bn_layout)
def batch_norm_update_rule(
    input: tuple[int, ...],
    weight: Any = None,
    bias: Any = None,
    running_mean: Any = None,
    *args: Any,
    kernel: str = "contiguous",
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """Training with running statistics: ``7N + 18C``, see :func:`_batch_norm`."""
    return _batch_norm(input, running_mean is not None, True, kernel, threads)


def _cudnn_batch_norm(input: tuple[int, ...], weight: Any, bias: Any, running: bool) -> int:
    """The cuDNN and MIOpen training kernels (closed source), from the maths.

    Statistics and normalisation ``5N + 4C`` (+ 7C running statistics), + N each for weight
    and bias (the count before s34's audit of the CPU kernels, kept for these GPU ops).
    """
    n = numel(input)
    c = _channels(input)
    update = 7 * c if running else 0
    return _stats(n, c) + update + _affine(n, weight, bias)


@register_rule(["aten.cudnn_batch_norm", "aten.miopen_batch_norm"])
def cudnn_batch_norm_rule(
    input: tuple[int, ...],
    weight: Any = None,
    bias: Any = None,
    running_mean: Any = None,
    *args: Any,
    **kwargs: Any,
) -> int:
    """Training: see :func:`_cudnn_batch_norm`."""
    return _cudnn_batch_norm(input, weight, bias, running_mean is not None)


@register_rule(
    ["aten.native_batch_norm_backward", "aten.batch_norm_backward"],
    reads=_reads_bn_backward_layout,
)
def batch_norm_backward_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    weight: Any = None,
    running_mean: Any = None,
    running_var: Any = None,
    save_mean: Any = None,
    save_invstd: Any = None,
    train: Any = True,
    eps: Any = None,
    output_mask: Any = None,
    *args: Any,
    kernel: str = "contiguous",
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """``batch_norm_backward_cpu_template`` and ``batch_norm_cpu_backward_kernel``.

    Whatever is asked for, per element ``sum += g`` and ``dotp += (x - mean) * g`` (4); in
    eval first the running variance's ``invstd`` (3 per channel). The input gradient, in
    training ``(g - sum / P - (x - mean) * k) * invstd * w`` with ``k = dotp * invstd * invstd
    / P``: 6 per element + 4 per channel; the channels-last kernel computes ``k`` and ``sum /
    P`` per element (10 per element), after summing its per-thread partial sums (``2T`` per
    channel, ``T`` threads, always); in eval ``g * invstd * w`` (2 per element). The weight's
    gradient ``dotp * invstd`` 1 per channel; the bias's is the sum (0). With or without
    weight (``w = 1`` is multiplied all the same).
    """
    n = numel(input)
    c = _channels(input)
    if not n:
        return 0
    mask = list(output_mask) if output_mask is not None else [True, True, True]
    channels_last = kernel == "channels_last"
    total = 4 * n + (2 * threads * c if channels_last else 0)
    if not train:
        total += _BN_INVSTD_RUNNING * c
    if mask[0]:
        if not train:
            total += 2 * n
        else:
            total += 10 * n if channels_last else 6 * n + 4 * c
    if len(mask) > 1 and mask[1] and weight is not None:
        total += c
    return total


# SyncBatchNorm (torch.nn.modules._functions.SyncBatchNorm): each rank's statistics, their
# combination over the W ranks' (an all-gather), the normalisation, and the backward's two
# reductions (summed over the ranks by an all-reduce) and element-wise pass. CUDA kernels only.
@register_rule("aten.batch_norm_stats")
def batch_norm_stats_rule(input: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """This rank's mean and 1/std per channel: 4N + 4C.

    Per element: sum, subtract the mean, square, sum (4); per channel: the two divisions by the
    count, add eps, rsqrt (4). As :func:`_stats`, less its normalising multiply (that is
    ``batch_norm_elemt``'s).
    """
    n = numel(input)
    c = _channels(input)
    return 4 * n + 4 * c


@register_rule(["aten.batch_norm_gather_stats_with_counts", "aten.batch_norm_gather_stats"])
def batch_norm_gather_stats_rule(
    input: tuple[int, ...],
    mean: tuple[int, ...],
    invstd: Any = None,
    running_mean: Any = None,
    *args: Any,
    **kwargs: Any,
) -> int:
    """The W ranks' statistics combined per channel: 11WC + W + 4C (+7C running statistics).

    ``mean`` is (W, C). Per rank and channel: its variance from its 1/std (square, reciprocal,
    subtract eps: 3), its count times its mean into the sum (2), its count times its variance
    plus its count times its squared distance to the whole mean into the sum (6); the W counts
    summed (W); per channel: the two divisions by the whole count, add eps, rsqrt (4); the
    running mean and unbiased variance updated as ``native_batch_norm``'s (7).
    """
    ranks = mean[0] if len(mean) > 1 else 1
    c = mean[-1] if mean else 1
    update = 7 * c if running_mean is not None else 0
    return 11 * ranks * c + ranks + 4 * c + update


@register_rule("aten.batch_norm_elemt")
def batch_norm_elemt_rule(
    input: tuple[int, ...], weight: Any = None, bias: Any = None, *args: Any, **kwargs: Any
) -> int:
    """``(x - mean) * invstd`` with the combined statistics: 2N, + N each for weight and bias."""
    return 2 * numel(input) + _affine(numel(input), weight, bias)


@register_rule("aten.batch_norm_backward_reduce")
def batch_norm_backward_reduce_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    mean: Any = None,
    invstd: Any = None,
    weight: Any = None,
    input_g: Any = True,
    weight_g: Any = True,
    bias_g: Any = True,
    **kwargs: Any,
) -> int:
    """This rank's reductions: 4N, + C for grad_weight.

    ``sum(g)`` (N) and ``sum(g * (x - mean))`` (3N); grad_weight is the latter times 1/std (C),
    grad_bias the former.
    """
    n = numel(input)
    c = _channels(input)
    if not (input_g or weight_g or bias_g):
        return 0
    return 4 * n + (c if weight_g and weight is not None else 0)


@register_rule("aten.batch_norm_backward_elemt")
def batch_norm_backward_elemt_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    mean: Any = None,
    invstd: Any = None,
    weight: Any = None,
    sum_dy: Any = None,
    sum_dy_xmu: Any = None,
    count: Any = None,
    **kwargs: Any,
) -> int:
    """grad_input from the ranks' summed reductions: 5N + 4C (+C with a weight) + W.

    The W counts summed (W); per channel: the two means over the whole count (2),
    ``invstd**2 * mean(g * (x - mean))`` (2), ``weight * invstd`` (1 with a weight); per
    element: ``x - mean``, times that factor, ``g`` less the mean of ``g``, less the product,
    times ``weight * invstd`` (5).
    """
    n = numel(input)
    c = _channels(input)
    ranks = numel(count) if isinstance(count, tuple) else 1
    return 5 * n + 4 * c + (c if weight is not None else 0) + ranks


@register_rule(["aten.cudnn_batch_norm_backward", "aten.miopen_batch_norm_backward"])
def cudnn_batch_norm_backward_rule(
    input: tuple[int, ...], grad_out: tuple[int, ...], weight: Any = None, *args: Any, **kw: Any
) -> int:
    """Training backward: see :func:`_norm_backward` (all three grads)."""
    return _norm_backward(numel(input), _channels(input), weight, None)
