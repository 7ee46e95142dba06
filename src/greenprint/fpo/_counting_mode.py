"""The FPO counter's ``TorchDispatchMode``: every op below autograd passes through it.

:class:`_CountingMode` hands each op to its :class:`~greenprint.fpo.FPOCounter`: metadata
queries fall through, higher-order ops (``torch.cond``, ``while_loop``, ``flex_attention``) go
to :mod:`greenprint.fpo._higher_order`, composite ops are decomposed first, and every other op
runs and is counted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from greenprint.fpo._higher_order import run_higher_order
from greenprint.fpo._op_args import _quantized


class FPOCounter(Protocol):
    """What the mode calls of :class:`greenprint.fpo.FPOCounter` (its per-op steps).

    A protocol rather than an import: the counter imports this module.
    """

    def _op_info(self, func: Any) -> Any:
        """The op's name, rule and whether it is decomposed (cached per op)."""

    def _read_before(self, func: Any, info: Any, args: Any, kwargs: Any) -> None:
        """What a ``reads_before`` rule reads of the inputs before the op runs."""

    def _count(self, func: Any, info: Any, args: Any, kwargs: Any, out: Any) -> None:
        """Count the op that has just run."""


_aten = torch.ops.aten
# Metadata queries FlopCounterMode lets fall through (NotImplemented); we do the same.
_PASSTHROUGH = {
    _aten.sym_is_contiguous.default,
    _aten.is_contiguous.default,
    _aten.is_contiguous.memory_format,
    _aten.is_strides_like_format.default,
    _aten.is_non_overlapping_and_dense.default,
    _aten.size.default,
    _aten.sym_size.default,
    _aten.stride.default,
    _aten.sym_stride.default,
    _aten.storage_offset.default,
    _aten.sym_storage_offset.default,
    _aten.numel.default,
    _aten.sym_numel.default,
    _aten.dim.default,
    torch.ops.prim.layout.default,
}


#: The one counter that counts while greenprint counts on its own behalf (a step on a meta copy,
#: its own bookkeeping), or ``NOBODY``; ``None`` when every active counter counts.
_ALONE: ContextVar[object | None] = ContextVar("greenprint_fpo_alone", default=None)
NOBODY = object()


@contextmanager
def counted_alone(counter: object) -> Iterator[None]:
    """Ops run in the block are counted by ``counter`` only (``NOBODY``: by no counter).

    A user's own counter around ``training_fpo`` or ``count_fpo`` (``with gp.FPOCounter(model)
    as c:`` around a training loop that counts its steps too) would otherwise also count the
    step greenprint runs on a meta copy, which computed nothing, and the ops greenprint runs
    to read the model (its zero weights).
    """
    token = _ALONE.set(counter)
    try:
        yield
    finally:
        _ALONE.reset(token)


class NoDynamoImportMode(TorchDispatchMode):
    """A dispatch mode whose ``__torch_dispatch__`` is kept from Dynamo only once it is imported.

    torch wraps a mode's ``__torch_dispatch__`` in ``torch._disable_dynamo`` (so a
    ``torch.compile`` running under the mode does not trace into it), and that wrapper imports
    ``torch._dynamo`` on its first call: about 2 s of CPU (torch 2.13, CPU build) charged to
    whichever run was active during a process's first count. The wrapping is done here instead,
    by :meth:`__enter__`, and only once ``torch._dynamo`` has been imported: until then no
    compiled code can be running, so the plain method behaves the same. Each subclass keeps its
    own plain method (``_plain_dispatch``), wrapped at most once.
    """

    _plain_dispatch: Any = None  # the subclass's own __torch_dispatch__, unwrapped

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # torch's: no wrapping (_should_skip_dynamo)
        cls._plain_dispatch = cls.__dict__.get("__torch_dispatch__")

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # not at class creation: see __enter__

    def __enter__(self: _Mode) -> _Mode:
        cls = type(self)
        plain = cls._plain_dispatch
        if (
            "torch._dynamo" in sys.modules
            and plain is not None
            and cls.__dict__.get("__torch_dispatch__") is plain
        ):
            wrapped: Any = torch._disable_dynamo(plain, recursive=True)
            cls.__torch_dispatch__ = wrapped  # type: ignore[method-assign]
        super().__enter__()
        return self


_Mode = TypeVar("_Mode", bound=NoDynamoImportMode)


class _CountingMode(NoDynamoImportMode):
    """The dispatch mode that counts: every op below autograd reaches ``__torch_dispatch__``.

    Kept from Dynamo only once it is imported (:class:`NoDynamoImportMode`).
    """

    supports_higher_order_operators = True  # torch.cond, while_loop: see _higher_order

    def __init__(self, counter: FPOCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _PASSTHROUGH:
            return NotImplemented
        alone = _ALONE.get()
        if alone is not None and alone is not self.counter:  # greenprint's own work: not here
            return func(*args, **kwargs)
        if isinstance(func, torch._ops.HigherOrderOperator):
            return run_higher_order(self, func, args, kwargs)
        counter = self.counter
        info = counter._op_info(func)
        if info.decompose and not (info.rule is not None and _quantized(args)):
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        counter._read_before(func, info, args, kwargs)
        out = func(*args, **kwargs)
        counter._count(func, info, args, kwargs, out)
        return out
