"""Counting without importing ``torch._dynamo``: the meta kernels and optimizer methods it wraps.

Importing ``torch._dynamo`` costs about 1.1 s of CPU (torch 2.13, CPU build), charged to the run
active at the time. torch imports it lazily from two kinds of wrapper, both no-ops for a process
that has not imported it (no compiled frame can be running, so there is nothing to disable or
break):

- ``torch._disable_dynamo(fn)`` returns an ``inner`` that imports ``torch._dynamo`` on its first
  call to build ``torch._dynamo.disable(fn)``, caches it as ``fn.__dynamo_disable`` and calls it.
  It wraps the type-promoting ``torch._refs`` that serve as meta kernels (the meta kernel of
  ``aten.addmm``, a Python decomposition, multiplies through ``torch._refs.mul``; ``relu``,
  ``where``, ``add`` on meta are refs too) and ``Optimizer.add_param_group`` and
  ``zero_grad``. :func:`no_dynamo_import` sets each such ``fn.__dynamo_disable`` to a
  :class:`_Lazy` for the duration of a count: it calls ``fn`` itself while ``torch._dynamo`` is
  not imported and otherwise does exactly what torch's wrapper does (and caches that). The tags
  still in place at the end are removed, so torch is left as it was.
- ``torch.optim``'s ``step`` methods are wrapped by ``_use_grad_for_differentiable``, whose
  wrapper imports ``torch._dynamo`` on every call to mark two graph breaks around the step.
  :func:`plain_step` gives an optimizer a ``step`` of its own (an instance attribute, so other
  optimizers of its class are untouched) that sets the grad mode the same way and keeps
  torch's profiling wrapper, hence the step hooks the counter reads.

Functions torch wraps that are reached by neither path (a ref called from a kernel this module
does not find, an optimizer whose step is not torch's) still import ``torch._dynamo`` as before:
the counts are the same either way.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["no_dynamo_import", "plain_step"]

_TAG = "__dynamo_disable"  # the attribute torch._compile._disable_dynamo caches on fn


def _probe() -> None:  # pragma: no cover - never called; only its wrappers' code is read
    return None


_INNER_CODE = torch._disable_dynamo(_probe).__code__  # every _disable_dynamo wrapper's code


class _Lazy:
    """What ``torch._disable_dynamo``'s wrapper calls while a count runs.

    ``fn`` itself while ``torch._dynamo`` is not imported; once it is, torch's own
    ``torch._dynamo.disable(fn, recursive, wrapping=False)``, cached on ``fn`` as torch does.
    """

    __slots__ = ("fn", "recursive")

    def __init__(self, fn: Callable[..., Any], recursive: bool) -> None:
        self.fn = fn
        self.recursive = recursive

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:
            return self.fn(*args, **kwargs)
        import torch._dynamo

        disabled = torch._dynamo.disable(self.fn, self.recursive, wrapping=False)
        setattr(self.fn, _TAG, disabled)
        return disabled(*args, **kwargs)


def _wrapped_fns(start: Any, found: dict[int, tuple[Any, bool]], seen: set[int]) -> None:
    """Add to ``found`` every function ``start`` reaches through ``torch._disable_dynamo``.

    Follows ``__wrapped__`` and the functions held in closures (``out_wrapper`` and the
    decomposition decorators keep the wrapped function in both), a few levels deep.
    """
    stack = [(start, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 8:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.MethodType):
            obj = obj.__func__
        if not isinstance(obj, types.FunctionType):
            continue
        if obj.__code__ is _INNER_CODE and obj.__closure__ is not None:
            cells = dict(zip(obj.__code__.co_freevars, obj.__closure__, strict=True))
            fn, recursive = cells["fn"].cell_contents, cells["recursive"].cell_contents
            found[id(fn)] = (fn, bool(recursive))
            continue
        inner = obj.__dict__.get("__wrapped__")
        if inner is not None:
            stack.append((inner, depth + 1))
        for cell in obj.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(value, types.FunctionType | types.MethodType):
                stack.append((value, depth + 1))


_FOUND: list[tuple[Any, bool]] | None = None


def _targets() -> list[tuple[Any, bool]]:
    """The functions behind the ``torch._disable_dynamo`` wrappers a count may call (cached).

    The Python kernels of the decomposition and meta tables (what runs an op on meta tensors),
    the ``torch._refs`` modules' functions (which kernels call directly) and the methods of
    ``torch.optim.Optimizer``.
    """
    global _FOUND
    if _FOUND is not None:
        return _FOUND
    import torch._decomp
    import torch._refs

    starts: list[Any] = []
    for table in torch._decomp.global_decomposition_table.values():
        starts.extend(table.values())
    for name, module in list(sys.modules.items()):
        if module is not None and (name == "torch._refs" or name.startswith("torch._refs.")):
            starts.extend(vars(module).values())
    starts.extend(vars(torch.optim.Optimizer).values())
    found: dict[int, tuple[Any, bool]] = {}
    seen: set[int] = set()
    for start in starts:
        _wrapped_fns(start, found, seen)
    _FOUND = list(found.values())
    return _FOUND


@contextmanager
def no_dynamo_import() -> Iterator[None]:
    """Keep torch's ``_disable_dynamo`` wrappers from importing ``torch._dynamo`` inside.

    Those found by :func:`_targets` (see the module's docstring); nothing is changed when
    ``torch._dynamo`` is already imported, and the tags are removed on the way out.
    """
    if "torch._dynamo" in sys.modules:
        yield
        return
    tagged = []
    for fn, recursive in _targets():
        if _TAG not in getattr(fn, "__dict__", {}):
            lazy = _Lazy(fn, recursive)
            setattr(fn, _TAG, lazy)
            tagged.append((fn, lazy))
    try:
        yield
    finally:
        for fn, lazy in tagged:
            if fn.__dict__.get(_TAG) is lazy:  # still ours (not replaced by torch's own)
                delattr(fn, _TAG)


def _use_grad_code() -> types.CodeType | None:
    """The code of the wrapper ``torch.optim`` puts around a ``step`` (None if not found)."""
    from torch.optim import optimizer

    wrap = getattr(optimizer, "_use_grad_for_differentiable", None)
    if wrap is None:
        return None
    return getattr(wrap(_probe), "__code__", None)


_USE_GRAD_CODE = _use_grad_code()


def plain_step(opt: torch.optim.Optimizer) -> None:
    """Give ``opt`` a ``step`` of its own that does not import ``torch._dynamo``.

    Only when its class's ``step`` is torch's ``_use_grad_for_differentiable`` wrapper inside
    its profiling wrapper and ``opt`` has no ``step`` of its own (a factory's wrapper); otherwise
    ``opt`` is left as it is. torch's wrapper sets the grad
    mode to ``opt.defaults["differentiable"]`` around the step and marks a graph break before
    and after it (``torch._dynamo.graph_break()``, nothing outside a compiled frame); the
    ``step`` given keeps the first, and the profiling wrapper (``record_function`` and the step
    hooks) as torch's ``Optimizer.profile_hook_step`` makes it.
    """
    if "step" in vars(opt):  # the factory gave it one: that is what a training step calls
        return
    hooked = type(opt).step
    use_grad = getattr(hooked, "__wrapped__", None)
    if (
        _USE_GRAD_CODE is None
        or not isinstance(use_grad, types.FunctionType)
        or use_grad.__code__ is not _USE_GRAD_CODE
        or not getattr(hooked, "hooked", False)
    ):
        return
    step = use_grad.__dict__["__wrapped__"]  # functools.update_wrapper: the step itself

    def _use_grad(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" in sys.modules:  # as torch's, graph breaks and all
            return use_grad(*args, **kwargs)
        before = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(opt.defaults["differentiable"])
            return step(*args, **kwargs)
        finally:
            torch.set_grad_enabled(before)

    opt.step = types.MethodType(torch.optim.Optimizer.profile_hook_step(_use_grad), opt)  # type: ignore[method-assign]
