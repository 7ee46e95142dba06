"""What :func:`~greenprint.count_fpo` leaves as it found it: the model, the inputs, the RNG.

A count runs the model for real. In train mode that forward changes what it holds: batch norm
updates its running statistics and ``num_batches_tracked``, spectral norm its power-iteration
vectors, an ``Embedding(max_norm=...)`` renormalises the rows it looks up, a module may rebind
a buffer (``self.steps = self.steps + 1``), and dropout draws from torch's random number
generator. A count is a measurement, not a training step, so :func:`kept_as_it_was` undoes all
of it: a dispatch mode copies each tensor the model holds (parameter, buffer or other tensor
attribute) or was given as an input just before its first in-place write (copy on write: no
copy of a model nothing writes into, whatever its size), and puts the values back afterwards;
the modules' parameter and buffer entries are put back as they were; the generators' states
(the CPU's and those of the CUDA devices the tensors are on) are restored. Meta and fake
tensors have no values to keep; only the entries and the generators are restored for them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from greenprint.fpo._counting_mode import NOBODY, NoDynamoImportMode, counted_alone

__all__ = ["kept_as_it_was"]

# op -> the (position, name) of each argument its schema says it writes into ("Tensor(a!)")
_WRITES: dict[Any, tuple[tuple[int, str], ...]] = {}


def _written(func: Any) -> tuple[tuple[int, str], ...]:
    """The arguments ``func`` writes into, as ``(position, name)`` pairs (cached per op)."""
    writes = _WRITES.get(func)
    if writes is None:
        schema = getattr(func, "_schema", None)
        arguments = schema.arguments if schema is not None else []
        writes = tuple(
            (i, a.name)
            for i, a in enumerate(arguments)
            if a.alias_info is not None and a.alias_info.is_write
        )
        _WRITES[func] = writes
    return writes


def _has_values(t: torch.Tensor) -> bool:
    """A plain tensor (or parameter) whose values a write can change: not meta, fake or empty."""
    from torch._subclasses.fake_tensor import FakeTensor

    return (
        (type(t) is torch.Tensor or isinstance(t, torch.nn.Parameter))
        and not isinstance(t, FakeTensor)
        and not t.is_meta
        and t.layout is torch.strided
        and t.numel() > 0
    )


def _storage(t: torch.Tensor) -> int | None:
    """The address of ``t``'s storage (the same for a tensor and every view of it), or None."""
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError):  # a tensor subclass without one
        return None


class _Kept:
    """The tensors and module entries kept, and the copies of those written into."""

    def __init__(self) -> None:
        self.by_storage: dict[int, list[torch.Tensor]] = {}  # storage -> kept tensors on it
        self.kept: set[int] = set()
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (tensor, copy)
        self.modules: set[int] = set()
        # a module, and its parameter, buffer and tensor-attribute entries as they were
        self.entries: list[
            tuple[torch.nn.Module, dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]
        ] = []

    def keep(self, t: torch.Tensor) -> None:
        """Keep ``t``'s values: copied before the block's first write into its storage."""
        if id(t) in self.kept or not _has_values(t):
            return
        storage = _storage(t)
        if storage is not None:
            self.kept.add(id(t))
            self.by_storage.setdefault(storage, []).append(t)

    def keep_module(self, root: torch.nn.Module) -> None:
        """Keep every module under ``root`` (``root`` too): its entries and its tensors."""
        for module in root.modules():
            if id(module) in self.modules:
                continue
            self.modules.add(id(module))
            tensors = {k: v for k, v in vars(module).items() if isinstance(v, torch.Tensor)}
            self.entries.append((module, dict(module._parameters), dict(module._buffers), tensors))
            for t in (*module._parameters.values(), *module._buffers.values(), *tensors.values()):
                if t is not None:
                    self.keep(t)

    def before_write(self, tensors: list[Any]) -> None:
        """Copy each kept tensor that shares storage with one of ``tensors``, once."""
        for t in tensors:
            if not isinstance(t, torch.Tensor) or not _has_values(t):
                continue
            for kept in self.by_storage.get(_storage(t) or 0, ()):
                if id(kept) not in self.saved:
                    self.saved[id(kept)] = (kept, kept.detach().clone())

    def restore(self) -> None:
        """Put back the values written over and the modules' entries."""
        with torch.no_grad():
            for t, copy in self.saved.values():
                if t.shape == copy.shape and t.dtype == copy.dtype:
                    t.copy_(copy)
                else:  # resized or retyped in place
                    t.data = copy
        for module, parameters, buffers, tensors in self.entries:
            _put_back(module._parameters, parameters)
            _put_back(module._buffers, buffers)
            module._non_persistent_buffers_set &= set(buffers)
            attributes = vars(module)
            for name, value in tensors.items():
                if attributes.get(name) is not value:
                    attributes[name] = value


def _put_back(entries: dict[str, Any], before: dict[str, Any]) -> None:
    """Make ``entries`` (a module's ``_parameters`` or ``_buffers``) hold ``before`` again."""
    if entries.keys() == before.keys() and all(entries[k] is v for k, v in before.items()):
        return
    entries.clear()
    entries.update(before)


class _CopyOnWrite(NoDynamoImportMode):
    """Copies a kept tensor before an op writes into it (its storage, through any view).

    It sits under the counter's mode, so it sees the ops the counter runs (composite ops
    decomposed). As the counter's, it is kept from Dynamo only once ``torch._dynamo`` is
    imported (:class:`~greenprint.fpo._counting_mode.NoDynamoImportMode`).
    """

    supports_higher_order_operators = True  # torch.cond, while_loop: run as they are

    def __init__(self, kept: _Kept) -> None:
        super().__init__()
        self.kept = kept

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **kwargs)
        writes = _written(func)
        if writes:
            targets: list[Any] = []
            for position, name in writes:
                value = args[position] if position < len(args) else kwargs.get(name)
                targets.extend(value if isinstance(value, (list, tuple)) else (value,))
            with counted_alone(NOBODY):  # the copies are greenprint's, no counter's
                self.kept.before_write(targets)
        return func(*args, **kwargs)


@contextlib.contextmanager
def kept_as_it_was(model: torch.nn.Module | None, inputs: Any, kwargs: Any) -> Iterator[None]:
    """Run the block, then leave ``model``, the inputs and torch's RNG as they were before it.

    Kept: the values of ``model``'s parameters, buffers and other tensor attributes, of the
    modules a function calls (from their first call), and of the input tensors; the modules'
    parameter and buffer entries (a buffer rebound or registered in the block is put back or
    removed); the random number generators of the CPU and of the CUDA devices the tensors
    are on. Not kept: ``.grad`` fields (count_fpo sets them aside itself), other Python state
    a forward changes (a plain counter), a lazy module's parameters, which its first forward
    makes.

    Args:
        model: the model, or None for a function (its modules are kept as they are called).
        inputs: the positional inputs (any pytree of tensors).
        kwargs: the keyword inputs.

    Yields:
        Nothing.
    """
    from torch.nn.modules import module as nn_module
    from torch.utils._pytree import tree_leaves

    kept = _Kept()
    if model is not None:
        kept.keep_module(model)
    given = [t for t in tree_leaves((inputs, kwargs)) if isinstance(t, torch.Tensor)]
    for t in given:
        kept.keep(t)
    known = [*model.parameters(), *model.buffers()] if model is not None else []
    known += given
    cuda = sorted(
        {t.device.index or 0 for t in known if t.device.type == "cuda" and _has_values(t)}
    )
    # on meta or fake tensors only there are no values to copy: no dispatch mode to pass
    values = not known or any(_has_values(t) for t in known)
    copies = _CopyOnWrite(kept) if values else contextlib.nullcontext()
    counting = threading.get_ident()

    def keep_called(module: torch.nn.Module, args: Any) -> None:
        # the hook is global: a module another thread runs meanwhile is not this count's (its
        # training's updates are no count's to undo)
        if threading.get_ident() == counting:
            kept.keep_module(module)

    hook = nn_module.register_module_forward_pre_hook(keep_called)
    try:
        with torch.random.fork_rng(devices=cuda), copies:
            yield
    finally:
        hook.remove()
        with counted_alone(NOBODY):  # putting values back is not the model's work
            kept.restore()
