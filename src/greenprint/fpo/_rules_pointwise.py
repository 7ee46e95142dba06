"""FPO rules for elementwise ops, activations, optimizer updates, and the "0 by rule" ops.

Conventions (FPO per output element unless stated): one arithmetic op, compare, min/max, or
elementary function (exp, log, sqrt, rsqrt, sin, tanh, erf, ...) is 1 (sigmoid, which ATen computes
as ``(1 + exp(-x)).reciprocal()``, is 4); composite activations count the elementary ops of their
defining formula (see each rule's docstring). Random number generation, index arithmetic and pure
data movement are 0, and are registered here explicitly so that "0 by rule" differs from "no rule".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenprint.fpo._registry import broadcast_shape, first_shape, numel, register_rule, zero

__all__: list[str] = []


def _ops(*names: str, inplace: bool = True) -> list[str]:
    """``aten.<name>`` for each name, plus the in-place ``aten.<name>_`` variant."""
    out = []
    for name in names:
        out.append(f"aten.{name}")
        if inplace:
            out.append(f"aten.{name}_")
    return out


def _per_element(cost: int, what: str = "") -> Callable[..., int]:
    def rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return cost * numel(first_shape(out_shape))

    rule.__doc__ = f"{cost} FPO per output element{': ' + what if what else ''}."
    rule.__name__ = rule.__qualname__ = f"per_element_{cost}"
    return rule


def _first_arg_numel(args: tuple[Any, ...], out_shape: Any) -> int:
    """The larger of the first tensor argument and the output (reductions and binary ops)."""
    first = args[0] if args else None
    n_in = numel(first) if isinstance(first, tuple) else 0
    return max(n_in, numel(first_shape(out_shape)))


# -- arithmetic and elementary functions: 1 FPO per output element ----------------------------

_ONE = """
    mul div neg reciprocal abs sign sgn exp exp2 expm1 log log2 log10 log1p sqrt rsqrt sin cos
    tan asin acos atan sinh cosh tanh asinh acosh atanh atan2 erf erfc erfinv floor
    ceil round trunc frac fmod remainder relu threshold eq ne lt le gt ge clamp_min clamp_max
    lgamma digamma polygamma igamma igammac heaviside copysign float_power true_divide
    floor_divide nan_to_num deg2rad rad2deg
"""
_ONE_NO_INPLACE = "maximum minimum fmax fmin isnan isinf isfinite isneginf isposinf signbit"

register_rule(_ops(*_ONE.split()) + _ops(*_ONE_NO_INPLACE.split(), inplace=False))(
    _per_element(1, "one arithmetic op, compare or elementary function")
)
register_rule(_ops("conj_physical") + _ops("_conj_physical", inplace=False))(
    _per_element(1, "the imaginary parts negated (complex tensors only; real ones are returned)")
)


def _reads_dtype(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``half``: the first tensor argument is float16 (metadata: meta and fake tensors too)."""
    import torch

    tensor = (
        self
        if isinstance(self, torch.Tensor)
        else next((a for a in args if isinstance(a, torch.Tensor)), None)
    )
    return {} if tensor is None else {"half": tensor.dtype == torch.float16}


_reads_dtype.metadata_only = True  # type: ignore[attr-defined]


@register_rule(_ops("pow"), reads=_reads_dtype)
def pow_rule(
    self: Any, exponent: Any = None, *, out_shape: Any = None, half: bool = False, **kw: Any
) -> int:
    """``pow`` as ATen's CPU kernels (``Pow.cpp``, ``cpu/PowKernel.cpp``) run it, per element.

    A tensor to a number: exponent 0 fills ones and 1 copies (0); 3 is ``x * x * x`` and -2
    ``(x * x).reciprocal()`` (2: ``pow_tensor_scalar_optimized_kernel``; float16 takes
    ``std::pow``, 1); 2, 0.5, -0.5, -1 (``x * x``, sqrt, rsqrt, reciprocal) and any other 1. A
    number to a tensor: a base of 1 fills ones (0), else 1; a tensor to a tensor 1. (It was 1
    for all of them.)
    """
    n = numel(first_shape(out_shape))
    if (
        isinstance(self, tuple)
        and isinstance(exponent, (int, float))
        and not isinstance(exponent, bool)
    ):
        if exponent in (0, 1):
            return 0
        return (1 if half else 2) * n if exponent in (3, -2) else n
    if isinstance(exponent, bool) and isinstance(self, tuple):
        return 0  # pow(x, True) copies, pow(x, False) fills ones
    if isinstance(self, (int, float)) and self == 1:
        return 0
    return n


@register_rule([*_ops("add", "sub"), "aten.rsub"])
def add_rule(*args: Any, out_shape: Any = None, alpha: Any = 1, **kwargs: Any) -> int:
    """``a + alpha * b``: 1 FPO per output element, 2 when ``alpha`` is not 1."""
    return (1 if alpha == 1 else 2) * numel(first_shape(out_shape))


@register_rule(["aten.max", "aten.min", "aten.amax", "aten.amin", "aten.argmax", "aten.argmin"])
def minmax_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """One compare per input element (reductions) or per output element (``max.other``)."""
    return _first_arg_numel(args, out_shape)


@register_rule("aten.aminmax")
def aminmax_rule(self: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """Two compares per input element."""
    return 2 * numel(self)


@register_rule(_ops("clamp", "clip"))
def clamp_rule(
    self: tuple[int, ...], min: Any = None, max: Any = None, *, out_shape: Any = None, **kw: Any
) -> int:
    """One compare per bound given, per element."""
    return ((min is not None) + (max is not None)) * numel(first_shape(out_shape))


@register_rule(_ops("addcmul", "addcdiv"))
def addcmul_rule(*args: Any, out_shape: Any = None, value: Any = 1, **kwargs: Any) -> int:
    """``self + value * t1 (*|/) t2``: 3 FPO per element, 2 when ``value`` is 1."""
    return (2 if value == 1 else 3) * numel(first_shape(out_shape))


@register_rule(_ops("lerp"))
def lerp_rule(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``a + w * (b - a)``: 3 FPO per element."""
    return 3 * numel(first_shape(out_shape))


register_rule([*_ops("leaky_relu", "hardtanh"), "aten._prelu_kernel"])(
    _per_element(2, "leaky_relu and prelu (compare, mul), hardtanh (two compares)")
)


def _reads_xlogy(x: Any, y: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """How many of an ``xlogy(x, y)``'s (broadcast, real) elements return early.

    ``nan_y``: those whose ``y`` is NaN; ``zero_x``: the others whose ``x`` is 0. Read before
    the op runs (``xlogy_`` overwrites ``x``).
    """
    import torch

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    shape = broadcast_shape(xt.shape, yt.shape)
    nan_y = torch.isnan(yt).expand(shape)
    zero_x = (xt == 0).expand(shape) & ~nan_y
    return {"nan_y": int(nan_y.sum()), "zero_x": int(zero_x.sum())}


@register_rule(
    [*_ops("xlogy"), *_ops("special_xlog1py", inplace=False)],
    reads=_reads_xlogy,
    reads_before=True,
)
def xlogy_rule(*args: Any, out_shape: Any = None, nan_y: int = 0, zero_x: int = 0, **k: Any) -> int:
    """4 per element, as ATen's CPU kernel (``xlogy_kernel``; ``xlog1py_kernel`` alike) runs it.

    ``if (isnan(y)) return NAN; if (x == 0) return 0; return x * log(y)`` (``log1p``): the
    NaN test, the compare with 0, the log and the product; an element whose ``y`` is NaN stops
    after 1, one whose ``x`` is 0 after 2 (read from real tensors: KL divergence's
    ``xlogy(t, t)`` of a target with zeros; on meta or fake tensors every element counts 4, an
    upper bound). It was 2 (log, mul).
    """
    return 4 * numel(first_shape(out_shape)) - 3 * nan_y - 2 * zero_x


register_rule(_ops("silu"))(
    _per_element(
        4,
        "ATen's kernel x / (1 + exp(-x)): negate, exp, add, divide (2 in earlier versions,"
        " as sigmoid and a multiply)",
    )
)
register_rule(_ops("logit"))(_per_element(3, "logit (sub, div, log)"))
register_rule(_ops("sigmoid"))(
    _per_element(
        4,
        "ATen's kernel (1 + exp(-x)).reciprocal(): negate, exp, add, reciprocal (1 in earlier"
        " versions, as one elementary function)",
    )
)
register_rule(_ops("hardsigmoid", "hypot"))(
    _per_element(
        4, "hardsigmoid (add 3, two compares, divide by 6), hypot (two squares, add, sqrt)"
    )
)
register_rule(_ops("hardswish"))(_per_element(5, "hardswish (add 3, max, min, mul, div 6)"))
register_rule("aten.softplus")(
    _per_element(
        6,
        "ATen's vectorised kernel blendv(log1p(exp(x * beta)) / beta, x, x * beta > threshold):"
        " x * beta written twice (2), exp, log1p, div beta, compare (it was 5, the product once)",
    )
)
register_rule(_ops("mish"))(
    _per_element(4, "mish: ATen's kernel computes x * tanh(log1p(exp(x))): exp, log1p, tanh, mul")
)
register_rule(["aten.log_sigmoid_forward"])(
    _per_element(6, "log_sigmoid (stable form): min, abs, neg, exp, log1p, subtract")
)


def _reads_elu(x: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"negative": n}``: the values of ELU's input that lie in a vector with a lane below 0.

    ATen's vectorised ELU (``get_vectorized_elu_elementwise_func``) computes ``a >= 0`` for a
    vector and, when every lane holds, only ``a * scale``; else both sides on every lane.
    Vectors are AVX2's float vectors (8 lanes; bfloat16 and half converted to two of them; 4
    doubles), taken from the start of the values in memory order (a contiguous or channels-last
    tensor). Read before the op runs (``elu_`` overwrites its input); real tensors only.
    """
    import torch

    try:
        t = x
        if not t.is_contiguous() and t.dim() == 4:
            if t.is_contiguous(memory_format=torch.channels_last):
                t = t.permute(0, 2, 3, 1)
        below = ~(t.reshape(-1) >= 0)
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return {}
    lanes = 4 if x.dtype == torch.float64 else 8
    pad = (-below.numel()) % lanes
    groups = torch.cat([below, torch.zeros(pad, dtype=torch.bool)]).view(-1, lanes)
    branching = groups.any(dim=1)
    sizes = torch.full((groups.shape[0],), lanes)
    if pad:
        sizes[-1] = lanes - pad
    return {"negative": int(sizes[branching].sum())}


def elu_fpo(n: int, negative: int | None) -> int:
    """ELU over ``n`` values, ``negative`` of them in vectors that take the negative branch.

    Per value ``a >= 0`` (1) and ``a * scale`` (1); in a vector with a lane below 0 also
    ``expm1(a * input_scale) * (alpha * scale)`` on every lane (3). Without values (meta or
    fake tensors) every vector branches: ``5n``, an upper bound.
    """
    return 2 * n + 3 * (n if negative is None else negative)


@register_rule(_ops("elu"), reads=_reads_elu, reads_before=True)
def elu_rule(self: tuple[int, ...], *args: Any, negative: int | None = None, **kwargs: Any) -> int:
    """ELU (and SELU, which runs it) as ATen's vectorised CPU kernel computes it.

    ``a >= 0`` per vector; every lane ``>= 0``: ``a * scale`` (2 per value); else
    ``blendv(expm1(a * input_scale) * (alpha * scale), a * scale, cmp)`` (5 per value). The
    vectors are read from the values (:func:`_reads_elu`; on meta every vector branches, 5 per
    value). It was 6 per value (``exp(x) - 1``: the kernel calls ``expm1``).
    """
    return elu_fpo(numel(self), negative)


@register_rule(_ops("gelu"))
def gelu_rule(*args: Any, out_shape: Any = None, approximate: str = "none", **kw: Any) -> int:
    """GELU: 5 FPO per element (x/sqrt2, erf, +1, *x, *0.5); 9 with ``approximate='tanh'``."""
    return (9 if approximate == "tanh" else 5) * numel(first_shape(out_shape))


@register_rule("aten.gelu_backward")
def gelu_backward_rule(
    *args: Any, out_shape: Any = None, approximate: str = "none", **kw: Any
) -> int:
    """d/dx GELU times the grad: 11 FPO per element (erf form), 20 for the tanh form.

    As ATen's vectorised CPU kernel (``GeluBackwardKernelImpl``) computes it.
    erf form: the cdf ``0.5 (1 + erf(x / sqrt 2))`` 4, the pdf ``k exp(-x^2 / 2)`` 4,
    ``dy (cdf + x pdf)`` 3. tanh form: ``x^2`` (1), ``x^3 = x * x * x`` (2: the vectorised
    kernel does not reuse ``x^2``), ``kappa x^3``, ``+ x``, ``* beta``, tanh (4); ``left = x /
    2``, ``right = 1 + t``, ``right / 2`` (3); ``1 - t^2`` (2); ``beta (1 + 3 kappa x^2)`` (4:
    the constants' product ``3 kappa`` is written in the loop); ``left * (1 - t^2) * inner'``
    (2); the sum and the product with ``dy`` (2). (18 in earlier versions, from the scalar
    form with ``3 kappa`` folded.)
    """
    return (20 if approximate == "tanh" else 11) * numel(first_shape(out_shape))


# activation backward: FPO per element of the gradient
register_rule("aten.threshold_backward")(_per_element(1, "relu backward (compare, select)"))
register_rule(["aten.hardtanh_backward", "aten.leaky_relu_backward"])(
    _per_element(2, "two compares, or compare and mul")
)
register_rule(["aten.sigmoid_backward", "aten.tanh_backward", "aten.hardsigmoid_backward"])(
    _per_element(3, "g * y * (1 - y), g * (1 - y * y)")
)
register_rule(["aten.logit_backward"])(_per_element(4, "the derivative's formula times the grad"))


@register_rule("aten.elu_backward")
def elu_backward_rule(
    grad_output: tuple[int, ...],
    alpha: Any = 1,
    scale: Any = 1,
    input_scale: Any = 1,
    is_result: bool = False,
    *args: Any,
    **kwargs: Any,
) -> int:
    """ELU's (and SELU's, CELU's) gradient as ATen's CPU kernel computes it, per element.

    ``b`` is the input ``x``: ``b <= 0 ? g * s_in * (alpha s) * exp(b * s_in) : g * s`` (the
    vectorised kernel computes both sides and blends): the compare, three multiplies and the
    exp on the negative side, ``g * s`` on the other: 7. With ``is_result`` (an in-place ELU
    saves its output ``y``, ``exp(x s_in) = y / (alpha s) + 1``): ``g * s_in * (y + alpha s)``
    and ``g * s``, and the compare: 5.
    """
    return (5 if is_result else 7) * numel(grad_output)


register_rule(["aten.softplus_backward"])(
    _per_element(
        7,
        "ATen's kernel: z = exp(x * beta), x * beta > threshold ? g : g * z / (z + 1): the"
        " product x * beta written twice (2), exp, compare, multiply, add and divide (it was 6,"
        " the product once)",
    )
)
register_rule(["aten.log_sigmoid_backward"])(
    _per_element(
        6,
        "ATen's kernel, from the forward's buffer b = exp(-|x|): (m - s * (b / (1 + b))) * g,"
        " m and s picked by the sign of x (compare): add, divide, multiply, subtract, multiply",
    )
)
register_rule(["aten.silu_backward"])(
    _per_element(
        9,
        "ATen's kernel: s = 1 / (1 + exp(-x)) (4), g * s * (1 + x * (1 - s)) (5); 6 in"
        " earlier versions, s as one op",
    )
)
register_rule(["aten.hardswish_backward"])(
    _per_element(
        5,
        "ATen's kernel: x < -3 ? 0 : x <= 3 ? g * (x / 3 + 1 / 2) : g: two compares, divide,"
        " add, multiply",
    )
)
register_rule(["aten.mish_backward"])(_per_element(10, "the derivative times the grad"))


@register_rule("aten._prelu_kernel_backward")
def prelu_backward_rule(grad: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """Grad of input (compare, mul) and of weight (mul, accumulate): 4 FPO per element."""
    return 4 * numel(grad)


# -- dropout ---------------------------------------------------------------------------------


@register_rule(["aten.native_dropout", "aten._fused_dropout", "aten._masked_scale"])
def dropout_rule(input: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """``x * mask * 1/(1-p)``: 2 FPO per element (drawing the mask is not counted)."""
    return 2 * numel(input)


register_rule("aten.native_dropout_backward")(_per_element(2, "grad * mask * scale"))


# -- scatter/index ops that accumulate ----------------------------------------------------------


@register_rule(
    _ops("scatter_add", "index_add")
    + [
        "aten.scatter.reduce",
        "aten.scatter.value_reduce",
        "aten.scatter_.reduce",
        "aten.scatter_.value_reduce",
    ]
)
def scatter_add_rule(
    self: tuple[int, ...], dim: int, index: Any, src: Any, *a: Any, alpha: Any = 1, **k: Any
) -> int:
    """One add (or reduce op) per source element; + one multiply each for ``alpha`` not 1."""
    n = numel(src) if isinstance(src, tuple) else numel(index)
    return n if alpha == 1 else 2 * n


@register_rule(_ops("scatter_reduce", "index_reduce"))
def scatter_reduce_rule(
    self: tuple[int, ...],
    dim: int,
    index: Any,
    src: Any,
    reduce: str = "sum",
    *args: Any,
    **kwargs: Any,
) -> int:
    """One add, multiply or compare per source element (``sum``, ``prod``, ``amax``/``amin``).

    ``mean`` (ATen's ``scatter_reduce.two`` and ``index_reduce``) also counts in floating point:
    the sums ``N``, a count tensor of ``self``'s dtype filled by adding a one per source
    element (``count.scatter_add_(dim, index, ones)``: ``N``), ``count == 0`` (1 per element
    of ``self``) and the division ``out / count`` (1 per element): ``2N + 2 numel(self)``.
    (A CPU ``scatter_reduce`` whose index is expanded along the other dimensions takes a
    sorted kernel that counts in integers: ``N`` adds + 1 division per element, fewer.)
    """
    n = numel(src) if isinstance(src, tuple) else numel(index)
    if reduce == "mean":
        return 2 * n + 2 * numel(self)
    return n


@register_rule(_ops("index_put", "_index_put_impl"))
def index_put_rule(
    self: tuple[int, ...],
    indices: Any,
    values: tuple[int, ...],
    accumulate: bool = False,
    *,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """0 (a copy) unless ``accumulate=True``: then one add per value element."""
    return numel(values) if accumulate else 0


@register_rule(
    ["aten.col2im", "aten.unfold_backward"]
    + [f"aten.{kind}_pad{d}d_backward" for kind in ("reflection", "replication") for d in (1, 2, 3)]
)
def overlap_sum_backward_rule(grad: tuple[int, ...], *args: Any, **kwargs: Any) -> int:
    """One add per gradient element: overlapping pieces are summed back.

    Unfolded patches, padding borders.
    """
    return numel(grad)


# -- 0 by rule: views, copies, indexing, creation, random, metadata ----------------------------

_ZERO = """
    view _unsafe_view _reshape_alias reshape expand expand_copy permute permute_copy transpose
    transpose_ t t_ squeeze squeeze_ unsqueeze unsqueeze_ slice select diagonal as_strided
    as_strided_ unfold alias view_as_real view_as_complex complex view_copy unsqueeze_copy
    squeeze_copy t_copy transpose_copy slice_copy select_copy detach detach_ lift_fresh
    lift_fresh_copy _conj _neg_view resolve_conj resolve_neg select_backward slice_backward
    diagonal_backward clone copy copy_ _to_copy _copy_from _copy_from_and_resize contiguous
    _pin_memory record_stream slice_scatter select_scatter diagonal_scatter as_strided_scatter
    set_ resize_ resize_as_
    index _unsafe_index index_select gather take masked_select masked_fill masked_fill_
    masked_scatter masked_scatter_ where scatter scatter_ index_copy index_copy_ index_fill
    index_fill_ embedding nonzero one_hot tril tril_ triu triu_
    cat stack split split_with_sizes unsafe_split unsafe_split_with_sizes chunk unsafe_chunk
    unbind narrow flip roll repeat repeat_interleave constant_pad_nd reflection_pad1d
    reflection_pad2d reflection_pad3d replication_pad1d replication_pad2d replication_pad3d
    im2col pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle max_unpool2d
    max_unpool3d
    empty empty_like empty_strided new_empty new_empty_strided zeros zeros_like new_zeros ones
    ones_like new_ones full full_like new_full scalar_tensor arange linspace logspace eye fill
    fill_ zero_
    bernoulli bernoulli_ uniform uniform_ normal normal_ rand rand_like randn randn_like randint
    randint_like randperm random_ multinomial exponential_ geometric_ cauchy_ log_normal_
    _standard_gamma _sample_dirichlet poisson binomial
    logical_not logical_not_ logical_and logical_and_ logical_or logical_or_ logical_xor
    logical_xor_ bitwise_not bitwise_and bitwise_or bitwise_xor bitwise_left_shift
    bitwise_right_shift bitwise_and_ bitwise_or_ bitwise_xor_ bitwise_not_ bitwise_left_shift_
    bitwise_right_shift_ __ilshift__ __irshift__ __lshift__ __rshift__ any all _is_all_true
    _is_any_true _local_scalar_dense item is_same_size is_nonzero _assert_async _assert_scalar
    _assert_tensor_metadata _functional_assert_async sym_constrain_range
    sym_constrain_range_for_size _has_same_storage_numel _efficientzerotensor
"""
"""The ops that do no floating-point arithmetic, by group: views and layout; copies and moves;
gather-like indexing, masking and selection; joining, splitting, tiling and padding; creation
and filling; random number generation; boolean and bit logic; metadata, scalars and checks."""

_PROFILER = [
    "profiler._record_function_enter",
    "profiler._record_function_enter_new",
    "profiler._record_function_exit",
]  # markers torch.optim emits

register_rule([f"aten.{name}" for name in _ZERO.split()] + ["prim.device", *_PROFILER])(zero)
