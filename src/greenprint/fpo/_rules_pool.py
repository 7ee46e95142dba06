"""FPO rules for pooling: max, average and adaptive pooling, and their backward.

Conventions as in :mod:`greenprint.fpo._rules_nn`: max pooling one compare per window element
per output; average pooling one add per window element and one division per output; adaptive
pooling uses the exact windows. Each rule's docstring gives its formula.
"""

from __future__ import annotations

from typing import Any

from greenprint.fpo._registry import first_shape, numel, register_rule

__all__: list[str] = []


# -- pooling ---------------------------------------------------------------------------------


def _per_dim(value: Any, dims: int, default: Any) -> list[int]:
    """A pooling argument (an int or a list of one or ``dims`` ints; empty: ``default``)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    v = list(value) if isinstance(value, (list, tuple)) else [value]
    return v * dims if len(v) == 1 else v[-dims:]


def _max_pool_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        ks = _per_dim(kernel_size, dims, 1)
        st = _per_dim(stride, dims, ks)
        pad, dil = _per_dim(padding, dims, 0), _per_dim(dilation, dims, 1)
        out = first_shape(out_shape)
        compares = numel(tuple(self[: len(self) - dims]))
        for i, o, k, s_, p, d in zip(self[-dims:], out[-dims:], ks, st, pad, dil, strict=True):
            compares *= sum(
                sum(1 for m in range(k) if 0 <= j * s_ - p + m * d < i) for j in range(o)
            )
        return compares

    rule.__doc__ = (
        f"{dims}-D max pooling: one compare per window element inside the input. ATen's CPU "
        "kernel starts each window at its first tap inside the input (``while (ih0 < 0) ih0 "
        "+= dilation``), ends it at the input's edge, and compares only those taps: padding "
        "and ``ceil_mode``'s overhang add none."
    )
    return rule


register_rule(["aten.max_pool2d_with_indices", "aten.max_pool2d"])(_max_pool_rule(2))
register_rule("aten.max_pool1d")(_max_pool_rule(1))
register_rule(["aten.max_pool3d_with_indices", "aten.max_pool3d"])(_max_pool_rule(3))


@register_rule(
    [
        "aten.max_pool2d_with_indices_backward",
        "aten.max_pool3d_with_indices_backward",
        "aten.adaptive_max_pool2d_backward",
        "aten.adaptive_max_pool3d_backward",
    ]
)
def max_pool_backward_rule(grad_output: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """One add per gradient element (scattered to the arg-max)."""
    return numel(grad_output)


def _avg_pool_fpo(
    input: tuple[int, ...],
    output: tuple[int, ...],
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
) -> int:
    """The adds and divisions of ATen's CPU average pooling (forward or backward).

    ``cpu_avg_pool`` clips each window to the input (``ih0 = max(o s - p, 0)``, ``ih1 =
    min(o s - p + k, in)``) and sums only the elements inside it, whatever
    ``count_include_pad`` says (that flag only picks the divisor); a window entirely in the
    padding (``ceil_mode``) is skipped. So per output one add per element of its clipped window
    and one division; the backward divides each gradient element once and adds it into the
    same elements. Windows are separable: the adds are the product over dimensions of the
    summed clipped lengths, the divisions the product of the non-empty windows' counts.
    """
    ks = _per_dim(kernel_size, dims, 1)
    st = _per_dim(stride, dims, ks)
    pad = _per_dim(padding, dims, 0)
    planes = numel(tuple(input[: len(input) - dims]))
    adds, divisions = planes, planes
    for i, o, k, s_, p in zip(input[-dims:], output[-dims:], ks, st, pad, strict=True):
        lengths = [max(0, min(j * s_ - p + k, i) - max(j * s_ - p, 0)) for j in range(o)]
        adds *= sum(lengths)
        divisions *= sum(1 for n in lengths if n > 0)
    return adds + divisions


def _avg_pool_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        return _avg_pool_fpo(self, first_shape(out_shape), dims, kernel_size, stride, padding)

    rule.__doc__ = (
        f"{dims}-D average pooling: per output one add per element of its window clipped to "
        "the input, and one division (see :func:`_avg_pool_fpo`)."
    )
    return rule


def _avg_pool_backward_rule(dims: int) -> Any:
    def rule(
        grad_output: tuple[int, ...],
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        *args: Any,
        **kwargs: Any,
    ) -> int:
        return _avg_pool_fpo(self, grad_output, dims, kernel_size, stride, padding)

    rule.__doc__ = (
        f"{dims}-D average pooling's backward: per gradient element one division and one add "
        "per element of its window clipped to the input (see :func:`_avg_pool_fpo`)."
    )
    return rule


register_rule("aten.avg_pool1d")(_avg_pool_rule(1))
register_rule("aten.avg_pool2d")(_avg_pool_rule(2))
register_rule("aten.avg_pool3d")(_avg_pool_rule(3))
register_rule("aten.avg_pool2d_backward")(_avg_pool_backward_rule(2))
register_rule("aten.avg_pool3d_backward")(_avg_pool_backward_rule(3))


def _adaptive_window_sum(in_size: int, out_size: int) -> int:
    """Sum of the adaptive pooling window lengths along one dimension (exact, overlaps too)."""
    return sum(
        -((-(j + 1) * in_size) // out_size) - (j * in_size) // out_size for j in range(out_size)
    )


def _adaptive_reads(input: tuple[int, ...], output: tuple[int, ...], dims: int) -> int:
    lead = numel(tuple(input[: len(input) - dims]))
    reads = lead
    for i, o in zip(input[-dims:], output[-dims:], strict=True):
        reads *= _adaptive_window_sum(i, o)
    return reads


def _size_dims(output_size: Any) -> int:
    return len(output_size) if isinstance(output_size, (list, tuple)) else 1


def _adaptive_avg_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...], output_size: Any, *, out_shape: Any = None, **kwargs: Any
    ) -> int:
        out = first_shape(out_shape)
        return _adaptive_reads(self, out, dims) + dims * numel(out)

    rule.__doc__ = (
        f"One add per element of every window, {dims} divisions per output element: ATen's "
        "kernel (CPU, contiguous, and CUDA) divides the sum by each window length in turn, "
        "``sum / kh / kw`` (``/ kd`` first in 3-D); a channels-last input divides once by the "
        "product, counted as contiguous."
    )
    return rule


def _adaptive_avg_backward_rule(dims: int) -> Any:
    def rule(grad_output: tuple[int, ...], self: tuple[int, ...], **kwargs: Any) -> int:
        return _adaptive_reads(self, grad_output, dims) + dims * numel(grad_output)

    rule.__doc__ = (
        f"The forward's count: {dims} divisions per gradient element (``g / kh / kw``), one add "
        "per window element. The pooled dimensions are the last "
        f"{dims}, batched or not."
    )
    return rule


register_rule("aten._adaptive_avg_pool2d")(_adaptive_avg_rule(2))
register_rule("aten._adaptive_avg_pool3d")(_adaptive_avg_rule(3))
register_rule("aten._adaptive_avg_pool2d_backward")(_adaptive_avg_backward_rule(2))
register_rule("aten._adaptive_avg_pool3d_backward")(_adaptive_avg_backward_rule(3))


@register_rule(["aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d"])
def adaptive_max_pool_rule(
    self: tuple[int, ...], output_size: Any, *, out_shape: Any = None, **k: Any
) -> int:
    """One compare per element of every window."""
    out = first_shape(out_shape)
    return _adaptive_reads(self, out, _size_dims(output_size))
