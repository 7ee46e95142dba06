"""FPO rules for pooling: max, average and adaptive pooling, and their backward.

Conventions as in :mod:`greenprint.fpo._rules_nn`: max pooling one compare per window element
per output; average pooling one add per window element and one division per output (+ the add
into the zeroed output of ATen's contiguous kernel); adaptive pooling uses the exact windows;
the channels-last kernels, picked by the strides as ATen's ``suggest_memory_format()`` picks
them, divide as their source writes it. Each rule's docstring gives its formula; the average
pooling rules are proved against ports of ATen's kernels (tests/fpo/test_fpo_pool_s36.py).
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


#: ATen's ``Vectorized<float>`` lanes, AVX2's on every machine (docs/fpo.md, Conventions)
_AVX2_BYTES = 32


def _layout(tensor: Any) -> dict[str, Any]:
    """A pooling kernel's layout: ``channels_last`` and ``lanes``.

    ``channels_last``: ATen's ``suggest_memory_format()``, as its dispatch reads it from the
    input (the backward's from the gradient): strides like channels last, so that a tensor of
    one channel asked for channels last keeps contiguous strides and runs the contiguous
    kernel. ``lanes``: the vector width of the kernel's float type (AVX2's: 8 floats, 4
    doubles; bfloat16 and half counted as float32). Strides and dtype are metadata: read from
    real, meta and fake tensors alike.
    """
    try:
        import torch
        from torch._prims_common import suggest_memory_format

        lanes = _AVX2_BYTES // max(4, int(tensor.element_size()))
        fmt = suggest_memory_format(tensor)
        return {"channels_last": fmt != torch.contiguous_format, "lanes": lanes}
    except (AttributeError, ImportError, RuntimeError, TypeError):
        return {}


def _reads_layout(tensor: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The forward ops' (and the backward ops', from the gradient) :func:`_layout`."""
    return _layout(tensor)


_reads_layout.metadata_only = True  # type: ignore[attr-defined]


def _clipped_windows(
    input: tuple[int, ...],
    output: tuple[int, ...],
    dims: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
) -> tuple[int, int, int]:
    """``(planes, window elements, non-empty windows)`` of ATen's CPU average pooling.

    ``cpu_avg_pool`` clips each window to the input (``ih0 = max(o s - p, 0)``, ``ih1 =
    min(o s - p + k, in)``) and sums only the elements inside it, whatever
    ``count_include_pad`` says (that flag and ``divisor_override`` only pick the divisor); a
    window entirely in the padding (``ceil_mode``) is skipped. Windows are separable: the
    elements of every window together are the product over dimensions of the summed clipped
    lengths, the non-empty windows the product of their counts; ``planes`` is the batch times
    the channels.
    """
    ks = _per_dim(kernel_size, dims, 1)
    st = _per_dim(stride, dims, ks)
    pad = _per_dim(padding, dims, 0)
    elements, windows = 1, 1
    for i, o, k, s_, p in zip(input[-dims:], output[-dims:], ks, st, pad, strict=True):
        lengths = [max(0, min(j * s_ - p + k, i) - max(j * s_ - p, 0)) for j in range(o)]
        elements *= sum(lengths)
        windows *= sum(1 for n in lengths if n > 0)
    return numel(tuple(input[: len(input) - dims])), elements, windows


def _avg_pool_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        *args: Any,
        out_shape: Any = None,
        channels_last: bool = False,
        lanes: int = 8,
        **kwargs: Any,
    ) -> int:
        planes, elements, windows = _clipped_windows(
            self, first_shape(out_shape), dims, kernel_size, stride, padding
        )
        # contiguous: ``sum = 0; sum += x`` per element, ``out[i] += sum / divide_factor``
        # into the zeroed output (a division and an add); channels last: ``out += in`` into
        # the zeroed lane per element, ``out / divide_factor`` (a division)
        return planes * (elements + (1 if channels_last else 2) * windows)

    rule.__doc__ = (
        f"{dims}-D average pooling as ATen's CPU kernels run it (``AvgPoolKernel.cpp``): per "
        "output one add per element of its window clipped to the input (see "
        ":func:`_clipped_windows`) and one division; the contiguous kernel (``cpu_avg_pool"
        f"{'3d' if dims == 3 else '2d'}``) then adds the mean into the output it zeroed "
        "(``output_data[i] += sum / divide_factor``), + 1 per output; the channels-last one "
        "sums into the zeroed output and divides it in place (no add more)."
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
        channels_last: bool = False,
        lanes: int = 8,
        **kwargs: Any,
    ) -> int:
        planes, elements, windows = _clipped_windows(
            self, grad_output, dims, kernel_size, stride, padding
        )
        if channels_last:  # ``gin + gout / divide_factor`` per window element and channel
            return planes * 2 * elements
        # ``grad_delta = g / divide_factor`` once, then ``grad_input += grad_delta``
        return planes * (elements + windows)

    rule.__doc__ = (
        f"{dims}-D average pooling's backward as ATen's CPU kernels run it: contiguous "
        "(``cpu_avg_pool_backward``) one division per gradient element and one add per "
        "element of its window clipped to the input; channels last (the gradient's layout "
        "picks the kernel) divides the gradient again for every window element, ``gin + gout "
        "/ divide_factor``: 2 per window element (see :func:`_clipped_windows`)."
    )
    return rule


for _dims in (2, 3):
    register_rule(f"aten.avg_pool{_dims}d", reads=_reads_layout)(_avg_pool_rule(_dims))
    register_rule(f"aten.avg_pool{_dims}d_backward", reads=_reads_layout)(
        _avg_pool_backward_rule(_dims)
    )
# ``avg_pool1d`` is composite (``avg_pool2d`` of the unsqueezed input); a call that reaches
# the counter under its own name runs that 2-D kernel on a contiguous tensor
register_rule("aten.avg_pool1d")(_avg_pool_rule(1))


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


def _vector_channels(shape: tuple[int, ...], lanes: int) -> tuple[int, int]:
    """A channels-last kernel's channels in whole vectors and past them, ``(C - C % V, C % V)``."""
    c = int(shape[1]) if len(shape) > 1 else 1
    return c - c % lanes, c % lanes


def _adaptive_avg_rule(dims: int) -> Any:
    def rule(
        self: tuple[int, ...],
        output_size: Any,
        *,
        out_shape: Any = None,
        channels_last: bool = False,
        lanes: int = 8,
        **kwargs: Any,
    ) -> int:
        out = first_shape(out_shape)
        reads = _adaptive_reads(self, out, dims)
        if not channels_last:
            return reads + dims * numel(out)
        # per output position: the channels in vectors divide once by the product of the
        # window lengths, the rest by each length in turn
        vec, rest = _vector_channels(self, lanes)
        positions = numel(out) // max(1, vec + rest)
        return reads + positions * (vec + dims * rest)

    rule.__doc__ = (
        f"One add per element of every window, {dims} divisions per output element: ATen's "
        "contiguous kernel (``cpu_adaptive_avg_pool``) divides the sum by each window length "
        "in turn, ``sum / kh / kw`` (``/ kd`` first in 3-D). The channels-last kernel sums "
        "into the zeroed output and divides the channels in whole vectors (AVX2's 8 floats, "
        f"4 doubles) once by the product of the lengths, the channels past them {dims} times."
    )
    return rule


def _adaptive_avg_backward_rule(dims: int) -> Any:
    def rule(
        grad_output: tuple[int, ...],
        self: tuple[int, ...],
        *,
        channels_last: bool = False,
        lanes: int = 8,
        **kwargs: Any,
    ) -> int:
        reads = _adaptive_reads(self, grad_output, dims)
        if not channels_last:
            return reads + dims * numel(grad_output)
        # ``gin + gout / (kh * kw)`` per window element and channel in whole vectors,
        # ``gin += gout / kh / kw`` past them
        vec, rest = _vector_channels(self, lanes)
        return reads // max(1, vec + rest) * (2 * vec + (1 + dims) * rest)

    rule.__doc__ = (
        f"Contiguous (``cpu_adaptive_avg_pool_backward``): {dims} divisions per gradient "
        "element (``g / kh / kw``) and one add per window element. Channels last (the "
        "gradient's layout picks the kernel): the gradient is divided again for every window "
        "element, ``gin + gout / (kh * kw)`` (2 per window element) for the channels in whole "
        f"vectors, ``gin += gout / kh / kw`` ({1 + dims}) for the channels past them."
    )
    return rule


for _dims in (2, 3):
    register_rule(f"aten._adaptive_avg_pool{_dims}d", reads=_reads_layout)(
        _adaptive_avg_rule(_dims)
    )
    register_rule(f"aten._adaptive_avg_pool{_dims}d_backward", reads=_reads_layout)(
        _adaptive_avg_backward_rule(_dims)
    )


@register_rule(["aten.adaptive_max_pool2d", "aten.adaptive_max_pool3d"])
def adaptive_max_pool_rule(
    self: tuple[int, ...], output_size: Any, *, out_shape: Any = None, **k: Any
) -> int:
    """One compare per element of every window."""
    out = first_shape(out_shape)
    return _adaptive_reads(self, out, _size_dims(output_size))
