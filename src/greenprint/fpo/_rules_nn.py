"""FPO rules for reductions and softmax (normalisation: ``_rules_norm``, ``_rules_batch_norm``).

Conventions: a reduction of n elements costs n FPO (n adds into an accumulator, the same
convention as ``2mkn`` for a matrix product); a mean adds one division per output element.
Each rule's docstring gives its formula; ``N`` is the number of input elements.
"""

from __future__ import annotations

import math
from typing import Any

from greenprint.fpo._registry import broadcast_shape, first_shape, numel, register_rule

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


def _reads_var(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A variance's ``all_reduce_dtype`` and ``threads``.

    ``all_reduce_dtype``: a float or double input, which ATen reduces into one output with
    ``std_var_all_cpu``. The dtype is metadata: read from meta and fake tensors too.
    """
    try:
        import torch

        return {
            "all_reduce_dtype": self.dtype in (torch.float32, torch.float64),
            "threads": int(torch.get_num_threads()),
        }
    except (AttributeError, RuntimeError, TypeError):
        return {}


_reads_var.metadata_only = True  # type: ignore[attr-defined]


def variance_fpo(
    n: int,
    outs: int,
    *,
    root: bool,
    all_reduce: bool,
    threads: int = 1,
) -> int:
    """A variance (``root``: standard deviation) of ``n`` elements into ``outs`` outputs.

    As ATen's CPU kernels run it (``ReduceOps.cpp``, ``SharedReduceOps.h``). ``all_reduce``
    (``var``/``std`` into one output, float or double: ``std_var_all_cpu``): ``self.mean()``
    (the sum, ``n``, and the division), then ``dx = x - mean; local_sum += dx * dx`` (3 per
    element) and ``thread_sum += local_sum`` once per piece of ``at::parallel_reduce`` (1; over
    ``GRAIN_SIZE`` elements on several threads one per thread's chunk, + ``threads`` to combine
    the threads' results),
    ``sum / max(0, n - correction)`` (3), the root (1). Else (along dimensions, bfloat16 or
    half, and every ``var_mean``/``std_mean``) Welford's update per element, ``delta = x -
    mean``, ``mean += delta / n``, ``m2 += delta * (x - mean)`` (6), and per output ``nf >
    correction ? nf - correction : 0`` and ``m2 / divisor`` (3), the root (1).
    """
    if all_reduce and outs == 1:
        pieces = 1
        if n > _GRAIN_SIZE and threads > 1:  # ``invoke_parallel``'s chunks, then ``threads``
            tasks = min(threads, -(-n // _GRAIN_SIZE))
            chunk = -(-n // tasks)
            pieces = -(-n // chunk) + threads
        return (n + 1) + 3 * n + pieces + 3 + (1 if root else 0)
    return 6 * n + (4 if root else 3) * outs


def _variance_rule(root: bool, with_mean: bool) -> Any:
    def rule(
        self: tuple[int, ...],
        *args: Any,
        out_shape: Any = None,
        all_reduce_dtype: bool = True,
        threads: int = 1,
        **kwargs: Any,
    ) -> int:
        return variance_fpo(
            numel(self),
            _reduced_outputs(out_shape),
            root=root,
            all_reduce=all_reduce_dtype and not with_mean,
            threads=threads,
        )

    name = ("std" if root else "var") + ("_mean" if with_mean else "")
    rule.__doc__ = (
        f"``{name}`` as ATen's CPU kernels run it (:func:`variance_fpo`): "
        + (
            "Welford's update, 6 per element, + 3 per output"
            if with_mean
            else "into one float or double output the two-pass ``std_var_all_cpu``, 4N + 5; "
            "else Welford's update, 6 per element, + 3 per output"
        )
        + (" + 1 for the root" if root else "")
        + ". Earlier versions counted 4N + 2 per output (+ 1 for the root) for all of them."
    )
    rule.__name__ = rule.__qualname__ = f"{name}_rule"
    return rule


for _root in (False, True):
    for _with_mean in (False, True):
        _name = ("std" if _root else "var") + ("_mean" if _with_mean else "")
        register_rule(f"aten.{_name}", reads=_reads_var)(_variance_rule(_root, _with_mean))


#: ``at::internal::GRAIN_SIZE``: a reduction into one output of at least this many elements
#: runs on every thread (``binary_kernel_reduce``) and combines their partial results
_GRAIN_SIZE = 32768


def _norm_path(x: Any, dim: Any, dtype: Any) -> dict[str, Any]:
    """Which of ATen's CPU vector-norm kernels a call of ``x`` over ``dim`` runs.

    ``path``: ``"abs"`` when every reduced dimension has size 1 (``linalg_vector_norm``
    takes ``|x|``, or ``x != 0`` for p = 0); ``"lastdim"`` when the reduced dimensions of
    size over 1, ordered by stride, are one block of memory with stride 1 (TensorIterator
    moves them to the front and coalesces them: ``is_reduce_lastdim``), the output's dtype
    is the input's (no ``dtype=``), float, double or bfloat16: the vectorised p = 2 kernel;
    else ``"generic"`` (``binary_kernel_reduce``). ``lanes``: that kernel's accumulator
    vector, AVX2's (8 floats, 4 doubles; bfloat16 accumulates in float). ``threads``:
    ``torch.get_num_threads()``.
    """
    import torch

    shape, strides = tuple(x.shape), tuple(x.stride())
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        reduced = list(range(len(shape)))
    else:
        reduced = [
            d % max(1, len(shape)) for d in (dim if isinstance(dim, (list, tuple)) else [dim])
        ]
    big = sorted((strides[d], shape[d]) for d in set(reduced) if shape[d] != 1)
    threads = int(torch.get_num_threads())
    lanes = 4 if x.dtype == torch.float64 else 8
    if not big:
        return {"path": "abs", "lanes": lanes, "threads": threads}
    block = big[0][0] == 1 and all(b[0] == a[0] * a[1] for a, b in zip(big, big[1:], strict=False))
    vector_dtype = x.dtype in (torch.float32, torch.float64, torch.bfloat16)
    same_dtype = dtype is None or dtype == x.dtype
    path = "lastdim" if block and vector_dtype and same_dtype else "generic"
    return {"path": path, "lanes": lanes, "threads": threads}


def _reads_norm(
    self: Any, ord: Any = 2, dim: Any = None, *args: Any, dtype: Any = None, **kwargs: Any
) -> dict[str, Any]:
    """:func:`_norm_path` of a ``linalg_vector_norm`` or ``norm`` call.

    Strides and dtype are metadata: read from meta and fake tensors too.
    """
    try:
        return _norm_path(self, dim, dtype)
    except (AttributeError, RuntimeError, TypeError, ValueError, IndexError):
        return {}


_reads_norm.metadata_only = True  # type: ignore[attr-defined]


def vector_norm_fpo(
    n: int, outs: int, ord: Any, path: str = "generic", lanes: int = 8, threads: int = 1
) -> int:
    """A vector norm of ``n`` elements into ``outs`` outputs, as ATen's CPU kernels run it.

    ``path`` and ``lanes`` as :func:`_norm_path` reads them. ``"abs"``: ``n`` (``|x|``).
    ``"lastdim"`` (p = 2): per output the whole vectors' ``acc += x * x`` and the rest's
    ``buffer[0] += x * x`` (2 per element), the accumulator's ``lanes`` added into its first
    (``lanes - 1``), the square root: ``2n + lanes`` per output. ``"generic"``
    (``binary_kernel_reduce`` from a zeroed accumulator, ``SharedReduceOps.h``): p = 2
    ``acc + x * x`` (2 per element) and ``sqrt`` per output; p = 1 ``acc + |x|``, p = inf
    ``max(acc, |x|)`` and -inf its min, p = 0 ``acc + (x != 0)`` (2 per element, nothing per
    output); other p ``acc + pow(|x|, p)`` (3) and ``pow(acc, 1 / p)`` per output (2: the
    division too). A reduction into one output of ``GRAIN_SIZE`` (32,768) elements or more
    runs on every thread and combines their accumulators into the initial one: + ``threads``
    when there are several.
    """
    if path == "abs":
        return n
    if ord in (2, 2.0, None, "fro") and path == "lastdim":
        return 2 * n + lanes * outs
    if ord in (0, 1, float("inf"), float("-inf")):
        total = 2 * n
    elif ord in (2, 2.0, None, "fro"):
        total = 2 * n + outs
    else:
        total = 3 * n + 2 * outs
    if outs == 1 and n >= _GRAIN_SIZE and threads > 1:
        total += threads
    return total


@register_rule(["aten.linalg_vector_norm", "aten.norm"], reads=_reads_norm)
def norm_rule(
    self: tuple[int, ...],
    ord: Any = 2,
    *args: Any,
    out_shape: Any = None,
    path: str = "generic",
    lanes: int = 8,
    threads: int = 1,
    **kwargs: Any,
) -> int:
    """A vector norm as ATen's CPU kernels run it (:func:`vector_norm_fpo`).

    p = 2 over a block of memory with stride 1 (the last dimension, or every dimension, of a
    contiguous tensor: ``F.normalize`` of embeddings, a parameter's norm) runs the vectorised
    kernel, ``2N + 8`` per output (float; double ``2N + 4``: the accumulator's lanes added up
    and the root); other layouts ``2N + 1``; p = 0, 1 or inf ``2N``; other p ``3N + 2`` per
    output. Earlier versions counted ``2N + 1`` and ``3N + 1`` whatever the kernel.
    """
    return vector_norm_fpo(
        numel(self), _reduced_outputs(out_shape), ord, path=path, lanes=lanes, threads=threads
    )


@register_rule("aten.dist")
def dist_rule(
    self: tuple[int, ...], other: tuple[int, ...], p: Any = 2, *args: Any, **kwargs: Any
) -> int:
    """``torch.dist(a, b, p)``: the difference and its p-norm.

    The difference is N over the broadcast shape, the norm as :func:`norm_rule` counts it.
    """
    n = numel(broadcast_shape(self, other))
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
    return 10 * numel(broadcast_shape(self, other))


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
#
# ATen's CPU kernels (``SoftMax.cpp``, ``native/cpu/SoftMaxKernel.cpp``,
# ``LogSoftmaxKernelImpl.h``), counted one FPO per add, multiply, divide, compare, exp or log on
# the values that reach the result (a vector's padding lanes, which ``Vec::set`` drops, are not
# counted; a horizontal reduction of ``V`` lanes is ``V - 1``, so a reduction of ``n`` values
# that starts from its first value is ``n - 1`` whatever the vector width). Along the last
# dimension the kernels reduce with ``vec::reduce_all`` (max and sum start from the first value);
# along another dimension they run per column with the max from the first value (softmax) or
# from ``-inf`` (log-softmax), the sums from 0.


def _last_dim(shape: tuple[int, ...], dim: Any) -> bool:
    """Whether ``dim`` is the last dimension (a 0-d input is viewed as one of size 1)."""
    if len(shape) <= 1 or not isinstance(dim, int):
        return True
    return dim % len(shape) == len(shape) - 1


def softmax_fpo(shape: tuple[int, ...], dim: Any = -1) -> int:
    """``5N - rows``: the max (``n - 1`` compares), ``exp(x - max)`` (2), the sum, the scaling.

    The last dimension (``_vec_softmax_lastdim``): the sum starts from its first value (``n -
    1``), ``1 / sum`` once per row and a multiply per element: ``5n - 1`` per row. Another
    dimension (``_vec_softmax``, per column): the sum adds into 0 (``n``), then a divide per
    element: ``5n - 1`` too.
    """
    n = numel(shape)
    return 5 * n - _rows(shape, dim if isinstance(dim, int) else -1) if n else 0


@register_rule(["aten._softmax", "aten.softmax"])
def softmax_rule(self: tuple[int, ...], dim: Any = -1, *args: Any, **kwargs: Any) -> int:
    """``5N - rows`` (see :func:`softmax_fpo`); 5N in earlier versions."""
    return softmax_fpo(self, dim)


@register_rule("aten._safe_softmax")
def safe_softmax_rule(self: tuple[int, ...], dim: Any = -1, *args: Any, **kwargs: Any) -> int:
    """``6N - rows``: ``at::softmax`` (``5N - rows``) and ``self.eq(-inf)`` (N compares).

    ``_safe_softmax`` (the math attention path's softmax, ``attention.cpp``) then reduces the
    boolean compares with ``all`` and selects 0 for rows that are all ``-inf`` (``where``): no
    float arithmetic. 5N in earlier versions.
    """
    return softmax_fpo(self, dim) + numel(self)


def _masked_rows_unmasked(
    x: Any, mask: Any, dim: Any = None, mask_type: Any = None, *args: Any, **kwargs: Any
) -> dict[str, int]:
    """``{"unmasked": U}``: how many elements the mask leaves in (real tensors only).

    ``masked_softmax_cpu`` broadcasts a 2-D mask over a 4-D input: ``mask_type`` 0, an ``(L,
    L)`` attention mask, per query row; 1, a ``(B, L)`` padding mask, per batch; any other
    mask has the input's shape.
    """
    if mask.dim() == 2 and x.dim() == 4 and mask_type in (0, 1):
        if mask_type == 0:
            mask = mask.view(1, 1, *mask.shape)
        else:
            mask = mask.view(mask.shape[0], 1, 1, mask.shape[1])
        mask = mask.expand(x.shape)
    return {"unmasked": int((~mask.bool()).sum())}


@register_rule("aten._masked_softmax", reads=_masked_rows_unmasked)
def masked_softmax_rule(
    self: tuple[int, ...], *args: Any, unmasked: Any = None, **kwargs: Any
) -> int:
    """``3U + 2N + rows``: ``host_softmax`` with a mask, ``U`` elements left in by the mask.

    Per row of ``n`` values, ``u`` of them unmasked: the max over the unmasked (``u - 1``
    compares), ``exp(x - max)`` for them (``2u``), the sum of every ``z`` (masked ones are 0:
    ``n`` adds), ``sum == 0`` (1), ``1 / sum`` (1, not for a row with nothing unmasked, which
    is NaN) and a multiply per element (``n``). ``U`` is read from the mask (on meta or fake
    tensors every element counts as unmasked: ``5N + rows``, an upper bound). 5N in earlier
    versions, as softmax over every element.
    """
    n = numel(self)
    if not n:
        return 0
    dim = args[1] if len(args) > 1 and isinstance(args[1], int) else -1
    u = n if unmasked is None else unmasked
    return 3 * u + 2 * n + _rows(self, dim)


@register_rule(["aten._log_softmax", "aten.log_softmax"])
def log_softmax_rule(self: tuple[int, ...], dim: int = -1, *args: Any, **kwargs: Any) -> int:
    """``6N - rows`` along the last dimension, ``6N + rows`` along another.

    Per element the max (a compare), ``x - max``, ``exp`` and the sum's add, then ``x - max -
    log_sum`` (two subtractions, kept in that order for accuracy: the kernel does not add
    ``max + log_sum`` first); per row the ``log`` of the sum. Along the last dimension
    (``serial_vec_log_softmax_lastdim_range``) the max and the sum start from their first
    values (``n - 1`` each): ``6n - 1`` per row; along another (``serial_vec_logsoftmax_range``)
    the max starts from ``-inf`` and the sum from 0: ``6n + 1`` per column. (``6N + rows``
    everywhere in earlier versions; 5N + 1 per row before s34.)
    """
    n = numel(self)
    rows = _rows(self, dim)
    return 6 * n - rows if _last_dim(self, dim) else 6 * n + rows


@register_rule(["aten._softmax_backward_data", "aten._log_softmax_backward_data"])
def softmax_backward_rule(
    grad: tuple[int, ...], output: Any = None, dim: Any = -1, *args: Any, **kwargs: Any
) -> int:
    """``4N - rows`` along the last dimension, ``4N`` along another.

    Softmax ``y (g - sum(g y))``: the products and their sum (``2n - 1`` along the last
    dimension, ``vec::map2_reduce_all`` starting from the first product; ``2n`` along another,
    into a zeroed buffer), then a subtract and a multiply per element. Log-softmax ``g - exp(y)
    sum(g)``: the sum (``n - 1``, or ``n``), then 3 per element. (4N everywhere in earlier
    versions.)
    """
    n = numel(grad)
    return 4 * n - _rows(grad, dim) if _last_dim(grad, dim) else 4 * n


def _masked_backward_unmasked(
    grad: Any, output: Any, mask: Any, *args: Any, **kwargs: Any
) -> dict[str, int]:
    """``{"unmasked": U}``: the elements of the (input-shaped) mask left in (real tensors)."""
    return {"unmasked": int((~mask.bool()).sum())}


@register_rule("aten._masked_softmax_backward", reads=_masked_backward_unmasked)
def masked_softmax_backward_rule(
    grad: tuple[int, ...], *args: Any, unmasked: Any = None, **kwargs: Any
) -> int:
    """``4U``: ``host_softmax_backward`` with a mask skips the masked elements.

    Per unmasked element ``sum += g y`` (2, into 0) and ``y (g - sum)`` (2); a masked one is
    set to 0. ``U`` read from the mask (on meta every element counts: 4N). 4N in earlier
    versions.
    """
    return 4 * (numel(grad) if unmasked is None else unmasked)
