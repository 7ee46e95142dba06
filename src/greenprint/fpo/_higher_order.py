"""Higher-order ops (``torch.cond``, ``while_loop``) under the FPO counter.

They are counted through their branches, or listed as unknown; never a crash. A higher-order
op takes functions (the branches, the loop body) rather than only tensors; the counter runs
them itself, so the ops inside are counted one by one like any other code:

* ``torch.cond``: the branch the predicate picks, as eager execution runs it. When the
  predicate cannot be read (meta or fake tensors), both branches are run and the larger count
  is kept: an upper bound, as torch's FlopCounterMode counts ``cond`` (it keeps, per op, the
  larger of the two branches; greenprint keeps the larger branch whole).
* ``while_loop``: every iteration that runs, the condition included. On meta or fake tensors
  the number of iterations is unknown: the op is listed in ``unknown_ops`` and its carried
  values come back unchanged.
* ``flex_attention``: its dense implementation, as eager execution runs it (the counter
  makes eager ``flex_attention`` call the op instead of compiling a wrapper around it).
* any other higher-order op: listed in ``unknown_ops`` (``"higher_order.<name>"``) and run
  without counting what it does.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import torch
from torch._subclasses.fake_tensor import FakeTensor

from greenprint._exceptions import UnknownOpError

__all__ = ["run_higher_order"]


class FPOCounter(Protocol):
    """What this module touches of :class:`greenprint.fpo.FPOCounter` (its tallies, by name).

    A protocol rather than an import: the counter imports this module.
    """

    @property
    def strict(self) -> bool:
        """Whether an op with no rule raises."""

    @property
    def _unknown(self) -> dict[str, int]:
        """Op name -> calls of ops with no rule."""


# the counter's tallies, saved and restored around a branch that may be discarded
_TALLIES = ("_op", "_module", "_calls", "_unknown", "_matmul", "_recompute")


def run_higher_order(mode: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the higher-order op ``func`` under the counting ``mode`` and return its result.

    Args:
        mode: the counter's dispatch mode (``mode.counter`` is the :class:`FPOCounter`);
            re-entered to count the ops inside the branches.
        func: the higher-order operator.
        args: its positional arguments.
        kwargs: its keyword arguments.

    Returns:
        What the op returns.

    Raises:
        UnknownOpError: an op with no handling here, and the counter is strict.
    """
    if func is torch.ops.higher_order.cond:
        return _cond(mode, *args, **kwargs)
    if func is torch.ops.higher_order.while_loop:
        return _while_loop(mode, func, args, kwargs)
    if getattr(torch.ops.higher_order, "flex_attention", None) is func:
        return _flex_attention(mode, args, kwargs)
    _unknown(mode.counter, func)
    return func(*args, **kwargs)


def _flex_attention(mode: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``flex_attention`` as eager execution runs it: its dense implementation, counted.

    torch's own eager kernel of the op (``sdpa_dense``): the scores ``Q K^T`` in float32, the
    scale, the ``score_mod`` and ``mask_mod`` vectorised over every (batch, head, query, key)
    (their ops counted as they run, on the whole score matrix), the masked scores' log-sum-exp
    and maximum (outputs of the op), a softmax and the product with ``V``. A block mask's
    sparsity is not used by this implementation: every score is computed, as eager code does.
    """
    from torch._higher_order_ops.flex_attention import sdpa_dense

    with mode:
        return sdpa_dense(*args, **kwargs)


def _name(func: Any) -> str:
    return f"higher_order.{func.name()}"


def _unknown(counter: FPOCounter, func: Any) -> None:
    name = _name(func)
    counter._unknown[name] = counter._unknown.get(name, 0) + 1
    if counter.strict:
        raise UnknownOpError(f"no FPO rule for the higher-order op {name} (strict=True)")


def _readable(value: Any) -> bool | None:
    """The truth of a predicate, or None when it cannot be read (meta and fake tensors)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta" or isinstance(value, FakeTensor):
            return None
        return bool(value.item())
    return None


def _call(mode: Any, fn: Any, operands: Any) -> Any:
    """Call a branch with the counter active.

    A traced branch (an fx GraphModule) is called through ``forward`` so that it is not counted
    as a module of its own.
    """
    target = fn.forward if isinstance(fn, torch.fx.GraphModule) else fn
    with mode:
        return target(*operands)


def _cond(mode: Any, pred: Any, true_fn: Any, false_fn: Any, operands: Any) -> Any:
    taken = _readable(pred)
    if taken is not None:
        return _call(mode, true_fn if taken else false_fn, operands)
    counter = mode.counter
    before = _save(counter)
    out = _call(mode, true_fn, operands)
    after_true = _save(counter)
    _restore(counter, copy.deepcopy(before))
    _call(mode, false_fn, operands)
    if _total(after_true) > _total(_save(counter)):
        _restore(counter, after_true)
    return out  # both branches return the same shapes


def _while_loop(mode: Any, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    cond_fn, body_fn, carried, additional = args[:4]
    stack_output = kwargs.get("stack_output", args[4] if len(args) > 4 else False)
    tensors = [t for t in (*carried, *additional) if isinstance(t, torch.Tensor)]
    if stack_output or any(_readable_tensor(t) is False for t in tensors):
        _unknown(mode.counter, func)
        if stack_output:
            return func(*args, **kwargs)
        return tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in carried)
    values, looped = tuple(carried), False
    while _readable(_call(mode, cond_fn, (*values, *additional))):
        values, looped = tuple(_call(mode, body_fn, (*values, *additional))), True
    if looped:
        return values
    return tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in values)


def _readable_tensor(t: torch.Tensor) -> bool:
    return not (t.device.type == "meta" or isinstance(t, FakeTensor))


def _save(counter: FPOCounter) -> dict[str, Any]:
    return {
        name: copy.deepcopy(getattr(counter, name)) for name in _TALLIES if hasattr(counter, name)
    }


def _restore(counter: FPOCounter, saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        setattr(counter, name, value)


def _total(saved: dict[str, Any]) -> int:
    return sum(sum(phases) for phases in saved["_op"].values())
