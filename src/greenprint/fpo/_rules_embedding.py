"""FPO rules for embeddings: ``nn.EmbeddingBag`` and ``Embedding(max_norm=...)``.

Counted as ATen's CPU kernels (``EmbeddingBag.cpp``, ``Embedding.cpp``) compute them: one FPO
per add, multiply, divide or compare. Work that depends on the indices' values (entries equal
to ``padding_idx``, distinct rows) is read from real tensors; on meta or fake tensors, which
have no values, every index counts (an upper bound). The lookup itself and the dense
embedding's backward are in :mod:`greenprint.fpo._rules_pointwise`.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_nn import norm_rule

__all__: list[str] = []

# -- embedding bags ---------------------------------------------------------------------------

_SUM, _MEAN, _MAX = 0, 1, 2


def _padded_entries(indices: Any, padding_idx: Any) -> dict[str, int]:
    """How many of the (real) indices are ``padding_idx``: ``{"padded": n}`` (none: ``{}``)."""
    if padding_idx is None or isinstance(padding_idx, bool) or padding_idx < 0:
        return {}
    return {"padded": int((indices == padding_idx).sum())}


def _bag_forward_padding(
    weight: Any,
    indices: Any,
    offsets: Any,
    scale_grad_by_freq: Any = False,
    mode: Any = 0,
    sparse: Any = False,
    per_sample_weights: Any = None,
    include_last_offset: Any = False,
    padding_idx: Any = -1,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _padded_entries(indices, padding_idx)


@register_rule(
    ["aten._embedding_bag", "aten._embedding_bag_forward_only"], reads=_bag_forward_padding
)
def embedding_bag_rule(
    weight: tuple[int, ...],
    indices: tuple[int, ...],
    offsets: tuple[int, ...],
    scale_grad_by_freq: bool = False,
    mode: int = 0,
    sparse: bool = False,
    per_sample_weights: Any = None,
    *args: Any,
    out_shape: Any = None,
    padded: int = 0,
    **kwargs: Any,
) -> int:
    """Reduce the ``I`` looked-up rows of ``D`` elements into their bags.

    sum: ``I * D`` adds; mean: + one division per output element; max: ``I * D`` compares;
    ``per_sample_weights`` (sum mode): + ``I * D`` multiplies. Indices equal to
    ``padding_idx`` are skipped by ATen's kernels (``if (idx != padding_idx)``: not added,
    compared or weighted; a mean divides by the bag's other rows): ``padded`` of them, read
    from the indices when they have values (on meta or fake tensors every index counts, an
    upper bound).
    """
    rows = max(0, numel(indices) - padded) * weight[-1]
    total = rows + (rows if per_sample_weights is not None else 0)
    if mode == _MEAN:
        total += numel(first_shape(out_shape))
    return total


def _bag_backward(
    grad: tuple[int, ...], indices: tuple[int, ...], mode: int, psw: Any, padded: int = 0
) -> int:
    """Scatter the bags' gradients back to the looked-up rows.

    sum: ``I * D`` adds (each of the ``I`` rows gets its bag's gradient); mean: + one division
    per gradient element; per-sample weights: + ``I * D`` multiplies; max: one add per
    gradient element (only the max row of each bag gets it). The ``padded`` indices equal to
    ``padding_idx`` get no gradient (``_embedding_bag_dense_backward_cpu_sum_mean`` skips
    them).
    """
    if mode == _MAX:
        return numel(grad)
    rows = max(0, numel(indices) - padded) * grad[-1]
    total = rows + (rows if psw is not None else 0)
    return total + (numel(grad) if mode == _MEAN else 0)


def _bag_sparse_backward(
    grad: tuple[int, ...], indices: tuple[int, ...], mode: int, psw: Any
) -> int:
    """``EmbeddingBag(sparse=True)``'s gradient: the bags' gradients copied to the rows.

    ATen's ``_embedding_bag_sparse_backward`` gathers each looked-up row's bag gradient
    (``grad.index_select(0, offset2bag)``, a copy), for mean multiplies it by the inverse bag
    size (``1 / bag_size``: one division per bag, ``B``; then ``I * D`` multiplies), with
    per-sample weights multiplies by them (``I * D``), and hands the rows to the sparse
    embedding backward, which drops the entries equal to ``padding_idx`` (an integer compare
    and a gather) and builds a sparse tensor: no adds, duplicates stay uncoalesced. So sum 0,
    mean ``B + I * D``, + ``I * D`` with weights; the padded entries are scaled before they
    are dropped, so they count. (It was counted as the dense scatter: ``I * D`` adds less the
    padded entries, + ``B * D`` for mean.)
    """
    rows = numel(indices) * (grad[-1] if grad else 1)
    bags = grad[0] if len(grad) > 1 else 1
    total = rows if psw is not None else 0
    return total + (bags + rows if mode == _MEAN else 0)


def _bag_backward_padding(
    grad: Any,
    indices: Any,
    offsets: Any,
    offset2bag: Any,
    bag_size: Any,
    maximum_indices: Any,
    num_weights: Any,
    scale_grad_by_freq: Any,
    mode: Any,
    sparse: Any,
    per_sample_weights: Any,
    padding_idx: Any = -1,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _padded_entries(indices, padding_idx)


@register_rule("aten._embedding_bag_backward", reads=_bag_backward_padding)
def embedding_bag_backward_rule(
    grad: tuple[int, ...],
    indices: tuple[int, ...],
    offsets: Any,
    offset2bag: Any,
    bag_size: Any,
    maximum_indices: Any,
    num_weights: int,
    scale_grad_by_freq: bool,
    mode: int,
    sparse: bool,
    per_sample_weights: Any,
    *args: Any,
    padded: int = 0,
    **kwargs: Any,
) -> int:
    """:func:`_bag_sparse_backward` for ``sparse=True``, else :func:`_bag_backward`."""
    if sparse:
        return _bag_sparse_backward(grad, indices, int(mode), per_sample_weights)
    return _bag_backward(grad, indices, int(mode), per_sample_weights, padded)


def _bag_dense_backward_padding(
    grad: Any,
    indices: Any,
    offset2bag: Any,
    bag_size: Any,
    maximum_indices: Any,
    num_weights: Any,
    scale_grad_by_freq: Any,
    mode: Any,
    per_sample_weights: Any,
    padding_idx: Any = -1,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _padded_entries(indices, padding_idx)


@register_rule("aten._embedding_bag_dense_backward", reads=_bag_dense_backward_padding)
def embedding_bag_dense_backward_rule(
    grad: tuple[int, ...],
    indices: tuple[int, ...],
    offset2bag: Any,
    bag_size: Any,
    maximum_indices: Any,
    num_weights: int,
    scale_grad_by_freq: bool,
    mode: int,
    per_sample_weights: Any,
    *args: Any,
    padded: int = 0,
    **kwargs: Any,
) -> int:
    """See :func:`_bag_backward`."""
    return _bag_backward(grad, indices, int(mode), per_sample_weights, padded)


@register_rule("aten._embedding_bag_sparse_backward")
def embedding_bag_sparse_backward_rule(
    grad: tuple[int, ...],
    indices: tuple[int, ...],
    offsets: Any,
    offset2bag: Any,
    bag_size: Any,
    num_weights: int,
    scale_grad_by_freq: bool,
    mode: int,
    per_sample_weights: Any,
    *args: Any,
    **kwargs: Any,
) -> int:
    """See :func:`_bag_sparse_backward`."""
    return _bag_sparse_backward(grad, indices, int(mode), per_sample_weights)


def _bag_psw_backward_padding(
    grad: Any,
    weight: Any,
    indices: Any,
    offsets: Any,
    offset2bag: Any,
    mode: Any,
    padding_idx: Any = -1,
    *args: Any,
    **kwargs: Any,
) -> dict[str, int]:
    return _padded_entries(indices, padding_idx)


@register_rule("aten._embedding_bag_per_sample_weights_backward", reads=_bag_psw_backward_padding)
def embedding_bag_psw_backward_rule(
    grad: tuple[int, ...],
    weight: tuple[int, ...],
    indices: tuple[int, ...],
    *a: Any,
    padded: int = 0,
    **k: Any,
) -> int:
    """Per looked-up row, the dot product of its bag's gradient and the row: ``2 * I * D``.

    Rows equal to ``padding_idx`` are skipped (their weight's gradient is 0).
    """
    return 2 * max(0, numel(indices) - padded) * weight[-1]


# -- max_norm ----------------------------------------------------------------------------------


def _distinct_rows(self: Any, indices: Any, *args: Any, **kwargs: Any) -> dict[str, int]:
    """How many distinct rows the (real) indices look up: ``{"rows": n}``."""
    return {"rows": int(indices.unique().numel())}


@register_rule("aten.embedding_renorm_", reads=_distinct_rows)
def embedding_renorm_rule(
    self: tuple[int, ...],
    indices: tuple[int, ...],
    max_norm: Any = None,
    norm_type: Any = 2.0,
    *args: Any,
    rows: int | None = None,
    **kwargs: Any,
) -> int:
    """Per distinct looked-up row of ``D``: its norm, the compare, the scale and the scaling.

    ATen's ``embedding_renorm_cpu_`` sorts the indices and renormalises each distinct row
    once (a token repeated in the batch is not renormalised again): the row's
    ``norm(norm_type)`` (p = 2 ``2D + 1``, as :func:`norm_rule` counts it), the compare with
    ``max_norm``, and for a row over it ``scale = max_norm / (norm + 1e-7)`` (add, divide: 2)
    and ``row *= scale`` (``D``): ``3D + 4`` for p = 2 (it was ``3D + 2``, the scale's 2
    missed). The distinct rows are read from the indices when they have values; on meta or
    fake tensors every index counts (an upper bound). Which rows are over ``max_norm`` depends
    on the data, and the rule sees the weight after the op has renormalised it in place:
    every row is counted as renormalised, an upper bound.
    """
    looked_up = numel(indices) if rows is None else rows
    d = self[-1] if self else 1
    return looked_up * (norm_rule((d,), float(norm_type), out_shape=()) + 1 + 2 + d)
