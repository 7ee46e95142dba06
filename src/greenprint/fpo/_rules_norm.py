"""FPO rules for layer, RMS and group normalisation, as ATen's CPU kernels run them.

Moved out of :mod:`greenprint.fpo._rules_nn` (reductions and softmax), whose conventions hold
here: each rule's docstring gives its formula; ``N`` is the number of input elements. Batch norm:
:mod:`greenprint.fpo._rules_batch_norm`.
"""

from __future__ import annotations

import functools
from typing import Any

from greenprint.fpo._registry import numel, register_rule

__all__: list[str] = []


# -- normalisation ---------------------------------------------------------------------------


def _affine(n: int, weight: Any, bias: Any) -> int:
    return (n if weight is not None else 0) + (n if bias is not None else 0)


def _channels(shape: tuple[int, ...]) -> int:
    """The channels of a batch norm's input ``(N, C, ...)``: its second dimension (1 without)."""
    return shape[1] if len(shape) > 1 else 1


def _stats(n: int, groups: int) -> int:
    """Mean and variance over ``groups`` slices of ``n`` elements, then normalise.

    Per element: sum, subtract the mean, square, sum, multiply by 1/std (5); per slice:
    two divisions, add eps, rsqrt (4).
    """
    return 5 * n + 4 * groups


# -- layer norm: ATen's CPU kernels (native/cpu/layer_norm_kernel.cpp, cpu/moments_utils.h) ------

#: ``RowwiseMoments``' Welford chunks: ``kChunkSize`` vectors each
_WELFORD_CHUNK = 16


def cpu_lanes(itemsize: int = 4) -> int:
    """Values of ``itemsize`` bytes in one of ATen's AVX2 vectors (``Vectorized<T>::size()``).

    The counts take ATen's AVX2 kernels (32-byte vectors: 8 floats, 4 doubles), whatever the
    machine, so that a count does not depend on where it ran (as the int8 rules'
    ``FLOAT_LANES``); an AVX-512 build merges the moments of 16-float vectors instead, a few
    FPO more or less per row. Half and bfloat16 count as float (their kernels compute in it).
    """
    return 32 // max(4, int(itemsize))


def _ceil_log2(x: int) -> int:
    """``utils::CeilLog2``: 1 up to 2, else ``ceil(log2(x))``."""
    return 1 if x <= 2 else (x - 1).bit_length()


@functools.lru_cache(maxsize=256)
def rowwise_moments_fpo(n: int, lanes: int) -> int:
    """``RowwiseMoments(X, N)``: the mean and variance of ``N`` values, as ATen computes them.

    Welford over the ``N // V`` whole vectors of ``V`` lanes, in chunks of 16 vectors, each
    value ``delta = x - m1; m1 += delta * c; m2 += delta * (x - m1)`` (6); every chunk's
    moments merged into a cascade of stacks (``AddMomentsVec``: ``8V``, + the division ``m0_add
    / n`` when ``n`` is not 0), the stacks merged at the end; the tail of ``N mod V`` values by
    scalar Welford (6 each); the ``V`` lanes merged into it (``AddMoments``: 8 + the division);
    ``m2 / N`` (1).
    """
    vectors = n // lanes
    chunks = -(-vectors // _WELFORD_CHUNK)
    depth = _ceil_log2(chunks)
    counts = [0] * depth
    ops = 6 * n + 1

    def merge(added: int, level: int) -> int:
        total = counts[level] + added
        counts[level] = total
        return 8 * lanes + (1 if total else 0)

    for i in range(chunks):
        ops += merge(min(_WELFORD_CHUNK, vectors - i * _WELFORD_CHUNK), 0)
        mask, j = i + 1, 1
        while j < depth and not mask & 1:
            ops += merge(counts[j - 1], j)
            counts[j - 1] = 0
            mask >>= 1
            j += 1
    for i in range(1, depth):
        ops += merge(counts[i], 0)
    seen = n - vectors * lanes
    for _ in range(lanes):
        seen += vectors
        ops += 8 + (1 if seen else 0)
    return ops


def layer_norm_forward_fpo(n: int, rows: int, lanes: int, reduced: bool = False) -> int:
    """``LayerNormKernelImpl`` over ``rows`` rows of ``n / rows`` values (see the rule)."""
    if not rows or not n:
        return 0
    per_row = rowwise_moments_fpo(n // rows, lanes) + 3 + (2 if reduced else 1)
    return rows * per_row + 4 * n


@functools.lru_cache(maxsize=1)
def _reduced_dtypes() -> tuple[Any, ...]:
    import torch

    return (torch.bfloat16, torch.float16)


def _reads_ln(input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A layer norm's ``lanes``, ``reduced`` and ``threads``.

    ``lanes``: see :func:`cpu_lanes`; ``reduced``: half or bfloat16, whose kernel computes
    ``bias = -rstd * mean``; ``threads``: ``torch.get_num_threads()``, the backward sums one
    partial weight and bias gradient per thread.
    """
    try:
        import torch

        reduced = input.dtype in _reduced_dtypes()
        lanes = cpu_lanes(4 if reduced else input.element_size())
        return {"lanes": lanes, "reduced": reduced, "threads": int(torch.get_num_threads())}
    except (ImportError, AttributeError, RuntimeError, TypeError):
        return {}


_reads_ln.metadata_only = True  # type: ignore[attr-defined]


def _reads_ln_backward(grad_out: Any, input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`_reads_ln` of the backward's input."""
    return _reads_ln(input)


_reads_ln_backward.metadata_only = True  # type: ignore[attr-defined]


@register_rule("aten.native_layer_norm", reads=_reads_ln)
def layer_norm_rule(
    input: tuple[int, ...],
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    *args: Any,
    lanes: int = 8,
    reduced: bool = False,
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """``LayerNormKernelImpl``, as ATen's CPU kernel runs it.

    Per row of ``N`` values its moments (:func:`rowwise_moments_fpo`: 6 per value + the merges
    of the Welford chunks and vector lanes), ``rstd = 1 / sqrt(var + eps)`` (3) and ``bias =
    -mean`` (1), then ``(x + bias) * rstd * gamma + beta`` (4 per element, affine or not: the
    kernel multiplies by 1 and adds 0 without them).
    """
    n = numel(input)
    rows = n // max(1, numel(tuple(normalized_shape)))
    return layer_norm_forward_fpo(n, rows, lanes, reduced)


@register_rule("aten._fused_rms_norm")
def rms_norm_rule(
    input: tuple[int, ...], normalized_shape: Any, weight: Any = None, *args: Any, **kw: Any
) -> int:
    """3N + 3 per row (square, sum, scale; mean, add eps, rsqrt), + N for the weight."""
    n = numel(input)
    rows = n // max(1, numel(tuple(normalized_shape)))
    return 3 * n + 3 * rows + (n if weight is not None else 0)


def _norm_backward(n: int, groups: int, weight: Any, mask: Any) -> int:
    """Backward of a normalisation over ``groups`` slices of ``n`` elements.

    grad_input: recompute x_hat (2), multiply by weight (1), two sums and a product for the
    mean terms (3), combine (3): 9N (+N with a weight) + 2 per slice; grad_weight:
    ``sum(g * x_hat)``, 2N, + 2N to recompute ``x_hat = (x - mean) * rstd`` when there is no
    grad_input (a norm on data that needs no gradient); grad_bias: ``sum(g)``, N.
    """
    mask = list(mask) if mask is not None else [True, True, True]
    total = 0
    if mask[0]:
        total += 9 * n + (n if weight is not None else 0) + 2 * groups
    if len(mask) > 1 and mask[1] and weight is not None:
        total += 2 * n + (0 if mask[0] else 2 * n)
    if len(mask) > 2 and mask[2] and weight is not None:
        total += n
    return total


@register_rule("aten.native_layer_norm_backward", reads=_reads_ln_backward)
def layer_norm_backward_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    normalized_shape: Any,
    mean: Any,
    rstd: Any,
    weight: Any = None,
    bias: Any = None,
    output_mask: Any = None,
    *args: Any,
    lanes: int = 8,
    reduced: bool = False,
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """``LayerNormBackwardKernelImpl``, rows of ``N`` values, ``T`` threads.

    Per call ``1 / N``. Per row: the weight's gradient ``g * (a * x + b)`` into a per-thread
    buffer (4 per value, ``b = -a * mean`` 2); the bias's ``g`` into another (1 per value); the
    input's: ``ds = sum(g * x * w)`` and ``db = sum(g * w)`` (5 per value - 2: each reduction
    of ``N`` values starts from its first; 3 - 2 without a weight), ``b`` and ``c`` (11), then
    ``a * g * w + b * x + c`` (5 per value, 4 without a weight). With a weight or bias
    gradient, the threads' buffers summed per column (``2T`` for each of the ``N`` columns:
    both sums run whichever is asked).
    """
    n = numel(input)
    rows = n // max(1, numel(tuple(normalized_shape)))
    mask = list(output_mask) if output_mask is not None else [True, True, True]
    mask += [False] * (3 - len(mask))
    return layer_norm_backward_fpo(
        n,
        rows,
        threads,
        weight=weight is not None,
        input_grad=bool(mask[0]),
        weight_grad=bool(mask[1]) and weight is not None,
        bias_grad=bool(mask[2]) and bias is not None,
    )


def layer_norm_backward_fpo(
    n: int,
    rows: int,
    threads: int,
    *,
    weight: bool = True,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
) -> int:
    """``LayerNormBackwardKernelImpl`` over ``rows`` rows of ``n / rows`` values (see the rule)."""
    if not rows or not n:
        return 0
    size = n // rows
    total = 1
    if weight_grad:
        total += rows * 2 + 4 * n
    if bias_grad:
        total += n
    if weight_grad or bias_grad:
        total += 2 * threads * size
    if input_grad:
        total += rows * (11 - 2) + (10 if weight else 7) * n
    return total


@register_rule("aten._fused_rms_norm_backward")
def rms_norm_backward_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    normalized_shape: Any,
    rstd: Any,
    weight: Any = None,
    output_mask: Any = None,
    **kwargs: Any,
) -> int:
    """7N (+N with a weight) + 2 per row for grad_input; grad_weight ``sum(g * x * rstd)``.

    grad_weight is 2N reusing grad_input's ``x * rstd``, 3N without a grad_input.
    """
    n = numel(input)
    rows = n // max(1, numel(tuple(normalized_shape)))
    mask = list(output_mask) if output_mask is not None else [True, True]
    total = 7 * n + (n if weight is not None else 0) + 2 * rows if mask[0] else 0
    if len(mask) > 1 and mask[1] and weight is not None:
        total += 2 * n + (0 if mask[0] else n)
    return total


def _torch_module() -> Any:
    import torch

    return torch


# -- group norm: ATen's CPU kernels (native/cpu/group_norm_kernel.cpp) ---------------------------
#
# ``GroupNormKernelImpl`` picks its kernel by ``X.suggest_memory_format()`` (read from the strides,
# which meta and fake tensors carry too): contiguous, or channels-last (2-D or 3-D), the latter in
# two forms by the positions per channel ``HxW`` (forward: under 1024 per group, else per-thread
# partial sums over all channels; backward: under 2048). ``M = N G`` groups of ``D = C / G``
# channels; vectors are AVX2's (:func:`cpu_lanes`); a horizontal sum of a vector's ``V`` lanes is
# ``V - 1`` adds; a reduction of ``n`` values that starts from its first (``map2_reduce_all``,
# ``reduce_all``) ``n - 1``; an accumulator that starts from zero 1 per value added.

#: ``GroupNormKernelImplChannelsLastInternal`` takes its per-thread form from this ``HxW``
_GN_FORWARD_CL_THRESHOLD = 1024
#: ``GroupNormBackwardKernelImplChannelsLastInternal`` likewise
_GN_BACKWARD_CL_THRESHOLD = 2048


def _gn_channels_last(x: Any) -> bool:
    """Whether ``x`` takes group norm's channels-last kernels (``suggest_memory_format``)."""
    try:
        from torch._prims_common import suggest_memory_format

        return bool(suggest_memory_format(x) != _torch_module().contiguous_format)
    except (ImportError, AttributeError, RuntimeError, TypeError, ValueError):
        return False


def _reads_gn(input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A group norm's ``lanes``, ``threads`` (see :func:`_reads_ln`) and ``channels_last``."""
    read = _reads_ln(input)
    if read:
        read["channels_last"] = _gn_channels_last(input)
    return read


_reads_gn.metadata_only = True  # type: ignore[attr-defined]


def _reads_gn_backward(grad_out: Any, input: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`_reads_gn` of the backward's input (whose layout picks the kernel)."""
    return _reads_gn(input)


_reads_gn_backward.metadata_only = True  # type: ignore[attr-defined]


def group_norm_forward_fpo(
    n: int,
    c: int,
    hxw: int,
    group: int,
    *,
    affine: bool,
    channels_last: bool = False,
    lanes: int = 8,
    threads: int = 1,
) -> int:
    """``GroupNormKernelImpl`` over ``(n, c, hxw)`` in ``group`` groups (see the rule)."""
    total, groups, nc = n * c * hxw, n * group, n * c
    if not total or not group:
        return 0
    d = c // group
    if not channels_last:
        per_group = rowwise_moments_fpo(d * hxw, lanes) + 4
        return groups * per_group + (4 * nc + 2 * total if affine else 2 * total)
    if hxw < _GN_FORWARD_CL_THRESHOLD:
        return 1 + 3 * total + groups * (2 * (lanes - 1) + 8) + 4 * nc + 2 * total
    return 1 + 3 * total + 2 * threads * nc + 8 * groups + 4 * nc + 2 * total


@register_rule("aten.native_group_norm", reads=_reads_gn)
def group_norm_rule(
    input: tuple[int, ...],
    weight: Any,
    bias: Any,
    n: int,
    c: int,
    hxw: int,
    group: int,
    *args: Any,
    lanes: int = 8,
    threads: int = 1,
    channels_last: bool = False,
    **kwargs: Any,
) -> int:
    """``GroupNormKernelImpl``, as ATen's CPU kernels run it (``M`` groups of ``D`` channels).

    Contiguous: per group its moments over ``D x HxW`` values (:func:`rowwise_moments_fpo`, as
    layer norm's), ``rstd = 1 / sqrt(max(var, 0) + eps)`` (4); without weight and bias ``(x -
    mean) * rstd``, 2 per element; with either, per channel ``scale = rstd * w`` (1) and ``bias =
    -scale * mean + b`` (3), then ``scale * x + bias``, 2 per element. Channels-last, under 1024
    positions: ``s = 1 / (D HxW)`` once; per group the sums of ``x`` and ``x * x`` into zeroed
    vectors (3 per element), both summed across their lanes (``2 (V - 1)``), ``mean * s``,
    ``max(sq * s - mean * mean, 0)``, ``1 / sqrt(... + eps)`` (8); the scale and bias (4 per
    channel) and ``x * scale + bias`` (2 per element), affine or not. From 1024 on: the same
    sums into per-thread buffers of all channels (3 per element), the ``T`` threads' buffers
    summed (2 per channel and thread), 8 per group, 4 per channel, 2 per element.
    """
    return group_norm_forward_fpo(
        int(n),
        int(c),
        int(hxw),
        int(group),
        affine=weight is not None or bias is not None,
        channels_last=channels_last,
        lanes=lanes,
        threads=threads,
    )


def group_norm_backward_fpo(
    n: int,
    c: int,
    hxw: int,
    group: int,
    *,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
    channels_last: bool = False,
    lanes: int = 8,
    threads: int = 1,
) -> int:
    """``GroupNormBackwardKernelImpl`` over ``(n, c, hxw)`` in ``group`` groups (see the rule)."""
    total, groups, nc = n * c * hxw, n * group, n * c
    if not total or not group:
        return 0
    d = c // group
    params = (4 * nc if weight_grad else 0) + (nc if bias_grad else 0)
    if not channels_last:
        ops = 3 * total - 2 * nc
        if input_grad:
            ops += 1 + groups * (2 * lanes + 11) + 5 * nc + 4 * total
        return ops + params
    if hxw < _GN_BACKWARD_CL_THRESHOLD:
        blocks = -(-d // lanes)
        return 1 + 7 * total + 3 * nc + groups * (2 * lanes * blocks + 11) + params
    ops = 1 + 3 * total + 6 * threads * nc
    if input_grad:
        ops += 5 * total + 11 * n * hxw * group
    return ops + params


@register_rule("aten.native_group_norm_backward", reads=_reads_gn_backward)
def group_norm_backward_rule(
    grad_out: tuple[int, ...],
    input: tuple[int, ...],
    mean: Any,
    rstd: Any,
    weight: Any,
    n: int,
    c: int,
    hxw: int,
    group: int,
    output_mask: Any = None,
    *args: Any,
    lanes: int = 8,
    threads: int = 1,
    channels_last: bool = False,
    **kwargs: Any,
) -> int:
    """``GroupNormBackwardKernelImpl``, ``M`` groups of ``D`` channels, ``T`` threads.

    Contiguous: whatever is asked, per channel ``ds = sum(g * x)`` and ``db = sum(g)`` over its
    ``HxW`` positions (3 per element - 2 per channel: each reduction starts from its first
    value). The input grad: ``s = 1 / (D HxW)`` once; per group ``sum(ds * w)`` and ``sum(db *
    w)`` into zeroed vectors (4 per channel) summed across their lanes from zero (``2V``),
    ``c2`` and ``c3`` (11); per channel ``c1 = rstd * w`` (1); ``c1 g + c2 x + c3``, 4 per
    element (with or without a weight: it multiplies by 1). The weight grad ``(ds - db * mean)
    * rstd`` into a zeroed sum, 4 per channel and sample; the bias grad ``db`` summed, 1.
    Channels-last under 2048 positions: per group ``g * x`` and ``g`` into zeroed vectors (3 per
    element), per block of ``V`` channels both times ``w`` (1 per channel each), summed across
    the lanes (``V - 1``) and added (1), ``c2``, ``c3`` (11), ``c1`` (1 per channel), 4 per
    element (the kernel computes the input grad whatever is asked); from 2048 on: the sums into
    per-thread buffers of all channels (3 per element), summed over the ``T`` threads with and
    without ``w`` (6 per channel and thread), per position and group ``c2``, ``c3`` (11), ``c1``
    and the input grad (5 per element); the weight and bias grads as contiguous.
    """
    mask = list(output_mask) if output_mask is not None else [True, True, True]
    mask += [False] * (3 - len(mask))
    return group_norm_backward_fpo(
        int(n),
        int(c),
        int(hxw),
        int(group),
        input_grad=bool(mask[0]),
        weight_grad=bool(mask[1]),
        bias_grad=bool(mask[2]),
        channels_last=channels_last,
        lanes=lanes,
        threads=threads,
    )
