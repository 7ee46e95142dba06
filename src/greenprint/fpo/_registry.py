"""The FPO rules registry: aten op name -> shape-only formula.

One dict, :data:`RULES`, filled by one decorator, :func:`register_rule`. Keys are op names as
strings (``"aten.mm"`` for every overload of an op, ``"aten.add.Tensor"`` for one overload), so
the registry needs no torch to import and a user may name an op either way. A rule receives the
op's arguments with every tensor replaced by its shape (a tuple of ints; lists and tuples of
tensors become lists of shapes), plus ``out_shape`` (the output's shape, or a list of shapes for
an op with several outputs), and returns the op's FPO:

* an ``int``: FPO outside the matmul family, or
* a ``(matmul_fpo, other_fpo)`` pair, for the ops registered with ``matmul=True``: the first part
  is exactly what :class:`torch.utils.flop_counter.FlopCounterMode` counts for the op, the second
  everything else the op does (a bias add, an ``alpha`` scaling, a softmax inside attention).

The module also holds the small shape helpers the rule families share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._exceptions import FPOError

__all__ = [
    "ASSUMED",
    "RULES",
    "Rule",
    "RuleFn",
    "first_shape",
    "numel",
    "op_name",
    "make_rule",
    "merged_rules",
    "register_rule",
    "shapes_in",
    "zero",
]

RuleFn = Callable[..., Any]
"""A rule: ``fn(*shapes_and_args, out_shape=..., **kwargs) -> int | tuple[int, int]``."""


@dataclass(frozen=True)
class Rule:
    """One registered formula.

    Attributes:
        fn: the formula, called with shapes in place of tensors.
        matmul: True when the op is one that FlopCounterMode counts; ``fn`` then returns a
            ``(matmul_fpo, other_fpo)`` pair.
        is_zero: True for the explicit "0 by rule" ops (views, copies, indexing, creation).
        grad_mask: the formula takes ``needs_input_grad``: for a backward op, which inputs of
            the forward op need a gradient (a tuple of bools, in the forward op's argument
            order), or None when the op runs outside a backward pass.
        reads: for an op whose work depends on values (rows it skips) or on metadata the
            shapes do not give (device, dtype, strides): called with the op's tensors, it
            returns keyword arguments for ``fn``; without them ``fn`` counts every element (on
            the CPU, contiguous, float32). A reader of values is called with real tensors only
            (never meta or fake tensors, which have no values); a reader marked
            ``reads.metadata_only = True`` reads only metadata and is called with meta and
            fake tensors too (the upsampling and grid-sample readers: a fake CUDA tensor
            counts the CUDA kernels; a meta tensor has no device and counts as on the CPU, which
            the result says when such a reader, marked ``reads.reads_device = True``, read
            one: ``FPOResult.assumptions["meta_device"]``).
            A reader may also return, under the key :data:`ASSUMED`, what the count assumed
            for this call (name -> value, as ``FPOResult.assumptions`` holds them): the
            counter takes it out of ``fn``'s arguments and the result says it (the int8
            readers' ``"onednn_int8"``, for weights that oneDNN's kernels ran).
        reads_before: ``reads`` is called before the op runs, so that it sees the inputs of
            an in-place op as the kernel found them (``embedding_renorm_`` decides from the
            rows' norms which rows to scale, then scales them); otherwise after it.
    """

    fn: RuleFn
    matmul: bool = False
    is_zero: bool = False
    grad_mask: bool = False
    reads: RuleFn | None = None
    reads_before: bool = False


ASSUMED = "assumed"
"""The key under which a rule's ``reads`` returns what the count assumed (see :class:`Rule`)."""

RULES: dict[str, Rule] = {}
"""The one global registry. Counters read a merged copy; nothing here is mutated at count time."""


def zero(*args: Any, **kwargs: Any) -> int:
    """The rule of ops that do no floating-point arithmetic (pure data movement): 0 FPO."""
    return 0


def op_name(target: Any) -> str:
    """Normalise an op to its registry key.

    Args:
        target: ``torch.ops.aten.mm`` (an OpOverloadPacket), ``torch.ops.aten.add.Tensor`` (an
            OpOverload), or a string such as ``"aten.mm"``, ``"aten::mm"`` or
            ``"aten.add.Tensor"``.

    Returns:
        The key, e.g. ``"aten.mm"`` or ``"aten.add.Tensor"``.

    Raises:
        FPOError: the target is not an op or op name.
    """
    if isinstance(target, str):
        name = target.strip().replace("::", ".")
        if name.startswith("torch.ops."):
            name = name[len("torch.ops.") :]
        if name.count(".") < 1 or not all(part.isidentifier() for part in name.split(".")):
            raise FPOError(f"not an op name: {target!r} (expected e.g. 'aten.mm')")
        return name
    module = type(target).__module__
    if module.startswith("torch") and type(target).__name__ in ("OpOverloadPacket", "OpOverload"):
        return str(target)
    raise FPOError(f"not an op: {target!r} (expected torch.ops.aten.<op> or 'aten.<op>')")


def _targets(targets: Any) -> list[str]:
    if isinstance(targets, (list, tuple, set, frozenset)):
        names = [op_name(t) for t in targets]
    else:
        names = [op_name(targets)]
    if not names:
        raise FPOError("register_rule needs at least one op")
    return names


def register_rule(
    targets: Any,
    *,
    matmul: bool = False,
    replace: bool = False,
    grad_mask: bool = False,
    reads: RuleFn | None = None,
    reads_before: bool = False,
) -> Callable[[RuleFn], RuleFn]:
    """Register a shape-only FPO formula for one or more ops (a decorator).

    Args:
        targets: one op or a list of ops (``torch.ops.aten.mm``, ``torch.ops.aten.add.Tensor``,
            ``"aten.mm"``). A packet name covers every overload; an overload name wins over it.
        matmul: the formula returns ``(matmul_fpo, other_fpo)``; the first part counts towards
            ``matmul_total``. Reserved for the ops FlopCounterMode counts, so that
            ``matmul_total`` keeps equal to its total.
        replace: allow replacing an existing rule (otherwise a duplicate raises).
        grad_mask: the formula also takes ``needs_input_grad`` (see :class:`Rule`), for a
            backward op that computes every gradient whether needed or not, where the
            op-by-op backward computes only the needed ones.
        reads: a function of the op's real tensors returning keyword arguments for the
            formula (see :class:`Rule`); set its ``metadata_only`` attribute to True when it
            reads only metadata, so that it also runs on meta and fake tensors.
        reads_before: call ``reads`` before the op runs, on the inputs an in-place op is
            about to change (see :class:`Rule`).

    Returns:
        A decorator that registers the function and returns it unchanged, so rules can call
        each other.

    Raises:
        FPOError: an op already has a rule and ``replace`` is False, or a target is not an op.

    Example:
        >>> from greenprint.fpo import register_rule
        >>> @register_rule("mylib.fancy_add")  # doctest: +SKIP
        ... def fancy_add(a, b, *, out_shape, **kwargs):
        ...     return 2 * math.prod(out_shape)
    """
    names = _targets(targets)

    def decorator(fn: RuleFn) -> RuleFn:
        for name in names:
            if name in RULES and not replace:
                raise FPOError(f"duplicate FPO rule for {name} (pass replace=True to override)")
        for name in names:
            RULES[name] = Rule(
                fn=fn,
                matmul=matmul,
                is_zero=fn is zero,
                grad_mask=grad_mask,
                reads=reads,
                reads_before=reads_before,
            )
        return fn

    return decorator


def make_rule(fn: RuleFn, *, matmul: bool = False) -> Rule:
    """Wrap a function as a :class:`Rule` (used for per-instance overrides).

    Args:
        fn: the formula.
        matmul: as for :func:`register_rule`.

    Returns:
        The rule.
    """
    return Rule(fn=fn, matmul=matmul, is_zero=fn is zero)


def merged_rules(overrides: dict[Any, Any] | None) -> dict[str, Rule]:
    """A copy of :data:`RULES` with per-instance overrides merged in; RULES is left untouched.

    Args:
        overrides: op -> formula, or op -> :class:`Rule` (for a matmul-family override).

    Returns:
        The merged registry.

    Raises:
        FPOError: a key is not an op or a value is not callable.
    """
    rules = dict(RULES)
    for target, value in (overrides or {}).items():
        if isinstance(value, Rule):
            rule = value
        elif callable(value):
            rule = make_rule(value)
        else:
            raise FPOError(f"FPO rule for {target!r} is not callable: {value!r}")
        for name in _targets(target):
            rules[name] = rule
    return rules


# -- helpers shared by the rule families ------------------------------------------------------


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a tensor of this shape (1 for a scalar)."""
    return math.prod(shape)


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The shape two shapes broadcast to.

    As ``torch.broadcast_shapes``, without its import of ``torch.fx.experimental.symbolic_shapes``
    and sympy (0.6 s of CPU at its first call, inside the user's run).

    Raises:
        ValueError: shapes that do not broadcast (two sizes differ and neither is 1), as
            ``torch.broadcast_shapes`` raises (``RuntimeError``, a ``ValueError`` here: a rule
            given shapes no op could run on).

    Example:
        >>> broadcast_shape((3, 1, 5), (4, 1))
        (3, 4, 5)
    """
    width = max(len(a), len(b))
    x, y = (1,) * (width - len(a)) + tuple(a), (1,) * (width - len(b)) + tuple(b)
    for i, j in zip(x, y, strict=True):
        if i != j and i != 1 and j != 1:
            raise ValueError(f"shapes {tuple(a)} and {tuple(b)} do not broadcast")
    return tuple(j if i == 1 else i for i, j in zip(x, y, strict=True))


def first_shape(out_shape: Any) -> tuple[int, ...]:
    """The first output's shape: ``out_shape`` is a shape (a tuple) or a list of shapes."""
    while isinstance(out_shape, list):
        out_shape = out_shape[0] if out_shape else None
    if out_shape is None:
        return ()
    return tuple(out_shape)


def shapes_in(value: Any) -> Iterator[tuple[int, ...]]:
    """Every shape in a (nested) list of shapes, skipping ``None``."""
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            yield from shapes_in(item)
    else:
        yield tuple(value)
