"""FPO rules for reductions, softmax and normalisation.

Conventions: a reduction of n elements costs n FPO (n adds into an accumulator, the same
convention as ``2mkn`` for a matrix product); a mean adds one division per output element.
Each rule's docstring gives its formula; ``N`` is the number of input elements.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []


def _rows(shape: tuple[int, ...], dim: int) -> int:
    """Number of slices along ``dim`` (elements / size of dim)."""
    if not shape:
        return 1
    size = shape[dim % len(shape)]
    return numel(shape) // size if size else 0


def _reduced_outputs(out_shape: Any) -> int:
    return numel(first_shape(out_shape))


# -- reductions ------------------------------------------------------------------------------


@register_rule(["aten.sum", "aten.nansum", "aten.prod", "aten.cumsum", "aten.cumsum_"])
def sum_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """N: one add (or multiply) per input element; cumulative sums likewise."""
    return numel(self)


@register_rule(["aten.cumprod", "aten.cumprod_", "aten.cummax", "aten.cummin"])
def cumulative_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """N: one multiply or compare per element."""
    return numel(self)


@register_rule("aten.logcumsumexp")
def logcumsumexp_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """7N: a log-add-exp per element, as ``logaddexp`` counts it.

    ATen's CPU kernel folds each element into the running value with
    ``_log_add_exp_helper(x, acc)``: ``min`` and ``max`` (2), the test ``min != max`` (1), then
    ``log1p(exp(min - max)) + max`` (subtract, exp, log1p, add: 4).
    """
    return 7 * numel(self)


@register_rule("aten.segment_reduce")
def segment_reduce_rule(
    data: tuple[int, ...], reduce: str = "sum", *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """N: one add, multiply or compare per element; ``mean`` + 1 division per segment.

    ATen's ``_segment_reduce_lengths_cpu_kernel1`` folds each element into its segment's value
    (``sum``, ``mean``, ``prod``, ``max``/``min``) and divides a mean by the segment's length
    once per output element.
    """
    n = numel(data)
    if reduce == "mean":
        return n + numel(first_shape(out_shape))
    return n


@register_rule("aten._segment_reduce_backward")
def segment_reduce_backward_rule(
    grad: tuple[int, ...],
    output: tuple[int, ...],
    data: tuple[int, ...],
    reduce: str = "sum",
    *args: Any,
    **kwargs: Any,
) -> int:
    """The gradient of ``segment_reduce``, per element of ``data`` unless stated.

    ATen's ``_segment_reduce_cpu_lengths_backward_kernel1``: ``sum`` 0 (the segment's gradient
    copied), ``mean`` 1 division per segment (``grad / length``, then copied), ``max`` and
    ``min`` 1 compare (``value == output``; ties share the gradient, a division each,
    data-dependent and not counted), ``prod`` 2 (``value == 0``, then
    ``(grad * output) / value`` with the product once per segment: + 1 per output element; a
    zero's exclusive product is data-dependent and not counted).
    """
    if reduce == "mean":
        return numel(grad)
    if reduce in ("max", "min"):
        return numel(data)
    if reduce == "prod":
        return 2 * numel(data) + numel(grad)
    return 0


@register_rule(["aten.mean", "aten.nanmean"])
def mean_rule(self: tuple[int, ...], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """N + one division per output element."""
    return numel(self) + _reduced_outputs(out_shape)


@register_rule(["aten.var", "aten.var_mean"])
def var_rule(self: tuple[int, ...], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """4N + 2 per output: mean (sum, divide), subtract, square, sum, divide."""
    return 4 * numel(self) + 2 * _reduced_outputs(out_shape)


@register_rule(["aten.std", "aten.std_mean"])
def std_rule(self: tuple[int, ...], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """The variance's 4N + 2 per output, + 1 per output for the square root."""
    return 4 * numel(self) + 3 * _reduced_outputs(out_shape)


@register_rule(["aten.linalg_vector_norm", "aten.norm"])
def norm_rule(
    self: tuple[int, ...], ord: Any = 2, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """p=2: 2N + 1 per output (square, sum, sqrt); p=0, 1 or inf: 2N; other p: 3N + 1 per output.

    p=0 counts the non-zeros (compare, add), p=1 sums the absolute values, p=inf takes their
    max (abs, compare): no root.
    """
    n, outs = numel(self), _reduced_outputs(out_shape)
    if ord in (0, 1, float("inf"), float("-inf")):
        return 2 * n
    if ord in (2, None, "fro"):
        return 2 * n + outs
    return 3 * n + outs


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape two shapes broadcast to."""
    width = max(len(a), len(b))
    a, b = (1,) * (width - len(a)) + tuple(a), (1,) * (width - len(b)) + tuple(b)
    return tuple(max(x, y) if min(x, y) != 0 else 0 for x, y in zip(a, b, strict=True))


@register_rule("aten.dist")
def dist_rule(
    self: tuple[int, ...], other: tuple[int, ...], p: Any = 2, *args: Any, **kwargs: Any
) -> int:
    """``torch.dist(a, b, p)``: the difference and its p-norm.

    The difference is N over the broadcast shape, the norm as :func:`norm_rule` counts it.
    """
    n = numel(_broadcast(self, other))
    return n + norm_rule((n,), p, out_shape=())


@register_rule("aten.count_nonzero")
def count_nonzero_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """1 per element: the compare with zero (the count is integer arithmetic)."""
    return numel(self)


@register_rule("aten.allclose")
def allclose_rule(self: tuple[int, ...], other: tuple[int, ...], *args: Any, **kw: Any) -> int:
    """10 per element of the broadcast shape: ``isclose`` as torch writes it.

    ``a == b``; ``|a - b|`` and ``atol + rtol |b|``: subtract, two abs, multiply, add; the
    finiteness test ``x == x`` and ``|x| != inf``: an abs and two compares; ``<=``. The
    ``all`` is boolean.
    """
    return 10 * numel(_broadcast(self, other))


@register_rule("aten.logsumexp")
def logsumexp_rule(self: tuple[int, ...], *args: Any, out_shape: Any = None, **kw: Any) -> int:
    """4N + 4 per output: ATen's ``logsumexp_out_impl``.

    Per element the max (``amax``), ``x - max``, ``exp`` and the sum; per output the max's
    ``abs() == INFINITY`` test (2: an infinite max is zeroed before it is subtracted), the
    ``log`` and the max added back. (It was 4N + 2 per output, without the test.)
    """
    return 4 * numel(self) + 4 * _reduced_outputs(out_shape)


@register_rule(["aten.sort", "aten.argsort"])
def sort_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """N * ceil(log2 n) compares, n being the length of the sorted dimension (last by default).

    ``sort(self, dim=-1, descending=False)``: ``dim`` is the first argument after the tensor
    (keyword-only in ``sort.stable``).
    """
    first = args[0] if args else None
    dim = first if isinstance(first, int) and not isinstance(first, bool) else kwargs.get("dim")
    dim = -1 if dim is None else dim
    n = self[dim % len(self)] if self else 1
    return numel(self) * max(1, math.ceil(math.log2(max(n, 2))))


@register_rule(["aten.topk"])
def topk_rule(self: tuple[int, ...], k: int = 1, *args: Any, **kwargs: Any) -> int:
    """N * max(1, ceil(log2 k)) compares (a heap of size k)."""
    return numel(self) * max(1, math.ceil(math.log2(max(k, 1))))


@register_rule(["aten.kthvalue", "aten.median", "aten.nanmedian", "aten.mode"])
def select_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """N compares (selection)."""
    return numel(self)


# -- softmax ---------------------------------------------------------------------------------


@register_rule(["aten._softmax", "aten._safe_softmax", "aten.softmax"])
def softmax_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """5N: max, subtract, exp, sum, divide per element."""
    return 5 * numel(self)


@register_rule("aten._masked_softmax")
def masked_softmax_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """5N, as softmax over every element: the mask selects (as ``where``, 0), it saves nothing.

    ``_masked_softmax(x, mask)`` (the fused attention paths' softmax) is softmax over the
    unmasked elements of each row, masked ones 0. The CPU kernel skips the masked elements,
    but greenprint counts attention over the full score matrix whatever the mask (a causal or
    padding mask only masks, docs/fpo.md), as FlopCounterMode does, and as the unfused path
    counts ``softmax`` after adding the mask: so this op counts the same. Its backward
    ``_masked_softmax_backward``: 4N, as softmax's.
    """
    return 5 * numel(self)


@register_rule(["aten._log_softmax", "aten.log_softmax"])
def log_softmax_rule(self: tuple[int, ...], dim: int = -1, *args: Any, **kwargs: Any) -> int:
    """6N + 1 per row: ATen's ``log_softmax`` kernels (``LogSoftmaxKernelImpl.h``).

    Per element the max (a compare), ``x - max``, ``exp`` and the sum's add, then ``x - max -
    log_sum`` (two subtractions, kept in that order for accuracy: the kernel does not add
    ``max + log_sum`` first); per row the ``log`` of the sum. Along the last dimension or
    another, the same. (It was 5N + 1 per row, one final subtraction.)
    """
    return 6 * numel(self) + _rows(self, dim)


@register_rule(
    [
        "aten._softmax_backward_data",
        "aten._log_softmax_backward_data",
        "aten._masked_softmax_backward",
    ]
)
def softmax_backward_rule(grad: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """4N: softmax ``y * (g - sum(g * y))``; log-softmax ``g - exp(y) * sum(g)``."""
    return 4 * numel(grad)


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


# -- batch norm: ATen's CPU kernels (native/Normalization.cpp, native/cpu/batch_norm_kernel.cpp) --
#
# ``batch_norm_cpu`` runs ``batch_norm_cpu_kernel`` for an input contiguous in the default or a
# channels-last format; the kernel takes its channels-last form for a channels-last input and
# for a contiguous one of one position per channel and sample (``image_size == 1``: (N, C), as
# BatchNorm1d on 2-D input, or (N, C, 1, 1)). Any other layout runs TensorIterator loops
# ("generic"). The layout is read from the strides, which meta and fake tensors carry too.

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


def _torch_module() -> Any:
    import torch

    return torch


def _memory_format(x: Any) -> str:
    """ATen's ``suggest_memory_format`` for the layouts :func:`_bn_kernel` tells apart."""
    torch = _torch_module()
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt):
        return "channels_last"
    return "contiguous"


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

    It runs the kernel only when the gradient is laid out as the input (else generic loops).
    """
    try:
        kernel = _bn_kernel(input)
        if _bn_kernel(grad_out) == "generic" or _memory_format(grad_out) != _memory_format(input):
            kernel = "generic"
        return {"kernel": kernel, "threads": int(_torch_module().get_num_threads())}
    except (AttributeError, RuntimeError, TypeError):
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
