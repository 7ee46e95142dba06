"""FPO rules for embeddings: ``nn.Embedding``'s backward, ``nn.EmbeddingBag`` and ``max_norm``.

Counted as ATen's CPU kernels (``Embedding.cpp``, ``EmbeddingBag.cpp``) compute them: one FPO
per add, multiply, divide or compare. Work that depends on the indices' values (entries equal
to ``padding_idx``, distinct rows, rows over ``max_norm``) is read from real tensors; on meta or
fake tensors, which have no values, every index counts (an upper bound). The lookup itself is
a gather, 0 by rule (:mod:`greenprint.fpo._rules_pointwise`).
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule
from greenprint.fpo._rules_nn import norm_rule

__all__: list[str] = []


def _padded_entries(indices: Any, padding_idx: Any) -> dict[str, int]:
    """How many of the (real) indices are ``padding_idx``: ``{"padded": n}`` (none: ``{}``)."""
    if not _pads(padding_idx):
        return {}
    return {"padded": int((indices == padding_idx).sum())}


# -- nn.Embedding's dense backward ------------------------------------------------------------


def _dense_backward_padding(
    grad: Any, indices: Any, num_weights: int = 0, padding_idx: int = -1, *a: Any, **k: Any
) -> dict[str, int]:
    """How many of the (real) indices are ``padding_idx``: ``{"padded": n}``."""
    return _padded_entries(indices, padding_idx)


@register_rule("aten.embedding_dense_backward", reads=_dense_backward_padding)
def embedding_dense_backward_rule(
    grad: tuple[int, ...],
    indices: Any,
    num_weights: int = 0,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
    *,
    padded: int = 0,
    **kwargs: Any,
) -> int:
    """One add per gradient element of each looked-up row (summed into the weight's row).

    ``D`` adds per index (``grad`` is ``(*indices, D)``); with ``scale_grad_by_freq`` ATen's
    ``embedding_dense_backward_cpu`` computes ``scale /= counts[k]`` per index (1) and adds the
    row times it, ``grad_weight[k].add_(grad[i], scale)``: + ``D`` + 1 per index (the
    division per index was not counted before s36). Indices equal to ``padding_idx`` are
    skipped by the kernels (that row gets no gradient): ``padded`` of them, read from the
    indices when they have values; on meta or fake tensors every index is counted (an upper
    bound, ``D`` per padding token too many).
    """
    rows = max(0, numel(indices) - padded) if isinstance(indices, tuple) else 0
    per_row = grad[-1] if grad else 1
    if scale_grad_by_freq:
        return rows * (2 * per_row + 1)
    return rows * per_row


# -- embedding bags ---------------------------------------------------------------------------

_SUM, _MEAN, _MAX = 0, 1, 2


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
    found = _padded_entries(indices, padding_idx)
    if int(mode) == _MAX:
        found["filled"] = _filled_bags(indices, offsets, include_last_offset, padding_idx)
    return found


def _filled_bags(indices: Any, offsets: Any, include_last_offset: Any, padding_idx: Any) -> int:
    """How many bags hold an entry that is not ``padding_idx`` (real tensors)."""
    import torch

    keep = indices.reshape(-1) != padding_idx if _pads(padding_idx) else None
    if indices.dim() == 2:  # (bags, entries): every row one bag
        if keep is None:
            return int(indices.shape[0])
        return int(keep.reshape(indices.shape).any(dim=1).sum())
    bags = max(0, offsets.numel() - (1 if include_last_offset else 0))
    positions = torch.arange(indices.numel(), device=indices.device)
    bag_of = torch.searchsorted(offsets[:bags].to(positions.dtype), positions, right=True)
    return int((bag_of if keep is None else bag_of[keep]).unique().numel())


def _pads(padding_idx: Any) -> bool:
    return not (padding_idx is None or isinstance(padding_idx, bool) or padding_idx < 0)


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
    filled: int | None = None,
    **kwargs: Any,
) -> int:
    """Reduce the ``I`` looked-up rows of ``D`` elements into their bags.

    sum: ``I * D`` adds; mean: + one division per output element; max: ``(I - B) * D``
    compares for ``B`` bags that hold an entry (``embedding_bag_cpu_max_out`` takes each bag's
    first row as it is, ``is_first_for_bag || weight > current``: a reduction of ``n`` values
    into the first, ``n - 1``; ``I * D`` in earlier versions), ``filled`` read from the
    offsets, on meta or fake tensors every bag taken to hold an entry;
    ``per_sample_weights`` (sum mode): + ``I * D`` multiplies. Indices equal to
    ``padding_idx`` are skipped by ATen's kernels (``if (idx != padding_idx)``: not added,
    compared or weighted; a mean divides by the bag's other rows): ``padded`` of them, read
    from the indices when they have values (on meta or fake tensors every index counts, an
    upper bound).
    """
    rows = max(0, numel(indices) - padded) * weight[-1]
    if mode == _MAX:
        bags = first_shape(out_shape)[0] if first_shape(out_shape) else 0
        return max(0, rows - (bags if filled is None else filled) * weight[-1])
    total = rows + (rows if per_sample_weights is not None else 0)
    if mode == _MEAN:
        total += numel(first_shape(out_shape))
    return total


def _bag_backward(
    grad: tuple[int, ...],
    indices: tuple[int, ...],
    mode: int,
    psw: Any,
    padded: int = 0,
    *,
    by_freq: bool = False,
    filled: int | None = None,
) -> int:
    """Scatter the bags' gradients back to the looked-up rows.

    ATen's ``_embedding_bag_dense_backward_cpu_sum_mean`` takes, per looked-up entry, a
    ``scale`` (1; its per-sample weight; ``/= counts[k]`` with ``scale_grad_by_freq``, 1
    division; ``/= bag_size`` for mean, 1 division) and adds the bag's gradient times it into
    the row, ``axpy``: ``D`` adds, + ``D`` multiplies unless the scale is 1 (a multiply by 1 is
    not counted, as ``add``'s ``alpha`` of 1). So sum ``I * D``; per-sample weights + ``I *
    D``; mean ``2 I D + I`` (``I D + B D`` in earlier versions: one division per gradient
    element, which the kernel does not do); ``scale_grad_by_freq`` + ``I`` divisions and the
    multiplies if not already counted (not counted in earlier versions). Max
    (``_embedding_bag_dense_backward_cpu_max``): one add per gradient element of the bags
    that hold an entry (``filled``, read from ``bag_size``; empty bags are left out; on meta
    every bag). The ``padded`` indices equal to ``padding_idx`` get no gradient (skipped).
    """
    if mode == _MAX:
        bags = grad[0] if len(grad) > 1 else 1
        return (bags if filled is None else filled) * (grad[-1] if grad else 1)
    entries = max(0, numel(indices) - padded)
    rows = entries * grad[-1]
    scaled = psw is not None or mode == _MEAN or by_freq
    divisions = entries * ((mode == _MEAN) + bool(by_freq))
    return rows + (rows if scaled else 0) + divisions


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
    return _padded_entries(indices, padding_idx) | _filled(mode, bag_size)


def _filled(mode: Any, bag_size: Any) -> dict[str, int]:
    """Max mode: ``{"filled": n}``, the bags with an entry.

    ``bag_size`` counts each bag's entries that are not ``padding_idx``.
    """
    if int(mode) != _MAX or bag_size is None or bag_size.numel() == 0:
        return {}
    return {"filled": int((bag_size != 0).sum())}


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
    filled: int | None = None,
    **kwargs: Any,
) -> int:
    """:func:`_bag_sparse_backward` for ``sparse=True``, else :func:`_bag_backward`."""
    if sparse:
        return _bag_sparse_backward(grad, indices, int(mode), per_sample_weights)
    return _bag_backward(
        grad,
        indices,
        int(mode),
        per_sample_weights,
        padded,
        by_freq=bool(scale_grad_by_freq),
        filled=filled,
    )


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
    return _padded_entries(indices, padding_idx) | _filled(mode, bag_size)


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
    filled: int | None = None,
    **kwargs: Any,
) -> int:
    """See :func:`_bag_backward`."""
    return _bag_backward(
        grad,
        indices,
        int(mode),
        per_sample_weights,
        padded,
        by_freq=bool(scale_grad_by_freq),
        filled=filled,
    )


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


def _renormalised_rows(
    self: Any, indices: Any, max_norm: Any = None, norm_type: Any = 2.0, *a: Any, **k: Any
) -> dict[str, int]:
    """The distinct rows the (real) indices look up, and how many of them are over ``max_norm``.

    Read before the op runs (``reads_before``): the op scales the rows over ``max_norm`` in
    place, after which none is. ``{"rows": distinct, "over": n}``; each row's norm as the
    kernel takes it (``row.norm(norm_type)``, compared in double precision).
    """
    rows = indices.reshape(-1).unique()
    if max_norm is None:
        return {"rows": int(rows.numel())}
    norms = self.index_select(0, rows).norm(p=float(norm_type), dim=-1)
    return {"rows": int(rows.numel()), "over": int((norms.double() > float(max_norm)).sum())}


@register_rule("aten.embedding_renorm_", reads=_renormalised_rows, reads_before=True)
def embedding_renorm_rule(
    self: tuple[int, ...],
    indices: tuple[int, ...],
    max_norm: Any = None,
    norm_type: Any = 2.0,
    *args: Any,
    rows: int | None = None,
    over: int | None = None,
    **kwargs: Any,
) -> int:
    """Per distinct looked-up row of ``D``: its norm and the compare; per row over it the scaling.

    ATen's ``embedding_renorm_cpu_`` sorts the indices and visits each distinct row once (a
    token repeated in the batch is not renormalised again): the row's ``norm(norm_type)``
    (p = 2 ``2D + 1``, as :func:`norm_rule` counts it) and the compare with ``max_norm``; only
    for a row over it, ``scale = max_norm / (norm + 1e-7)`` (add, divide: 2) and ``row *=
    scale`` (``D``). So ``rows * (2D + 2) + over * (D + 2)`` for p = 2. Both are read from
    real tensors before the op runs (it scales the rows in place, after which none is over
    ``max_norm``); on meta or fake tensors, which have no values, every index counts as a
    distinct row over ``max_norm`` (an upper bound). (Until s24 every distinct row was counted
    as over ``max_norm``.)
    """
    looked_up = numel(indices) if rows is None else rows
    renormalised = looked_up if over is None else over
    d = self[-1] if self else 1
    return looked_up * (norm_rule((d,), float(norm_type), out_shape=()) + 1) + renormalised * (
        2 + d
    )
