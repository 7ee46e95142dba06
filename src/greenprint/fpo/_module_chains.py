"""Which module an op runs in: the chains of module names the FPO counter charges.

In the forward pass global module hooks keep a stack of the module calls running and record,
for each call, the interval of autograd sequence numbers its forward created; in the backward
pass the sequence number of the autograd node running gives the call that created it, hence
its chain of enclosing module names (``("", "layer1", "layer1.0")``). Parameter-gradient
accumulation is charged to the parameter's module. :class:`_ModuleChains` holds this part of
:class:`~greenprint.fpo.FPOCounter`'s state and methods.

Nodes can also be made inside the backward pass: the reentrant checkpoint re-runs its function
there and back-propagates through the graph it makes, and a ``create_graph=True`` backward
makes the graph of the gradient (a gradient penalty back-propagates through it). Those made
inside a module re-run there fall in that call's interval; the others are charged to the chain
of the node that was running when they were made (the checkpoint's, or the node whose
derivative they compute), from the sequence numbers each thread made between two ops.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

import torch

_NO_SEQ = 2**64 - 1  # AccumulateGrad nodes have no sequence number


class _Interval:
    """One module call: the sequence numbers [start, end) its forward created."""

    __slots__ = ("chain", "end", "parent", "start")

    def __init__(self, start: int, chain: tuple[str, ...], parent: int) -> None:
        self.start = start
        self.end = _NO_SEQ
        self.chain = chain
        self.parent = parent


class _ModuleChains:
    """Module naming and tracking for :class:`~greenprint.fpo.FPOCounter` (its base class).

    The counter's ``_reset`` sets this state; the hooks are registered by its ``__enter__``.
    """

    _stack: list[int]  # indices into _intervals of the module calls running forward
    _intervals: list[_Interval]
    _starts: list[int]
    _names: dict[torch.nn.Module, str]
    _taken: set[str]
    _param_chain: dict[int, tuple[str, ...]]
    _top: dict[torch.nn.Module, None]  # top-level modules that ran (ordered set)
    _in_model: set[int]  # ids of the model's submodules (the model excluded)
    _last_seq: int
    _last_chain: tuple[str, ...]
    # nodes made in the backward pass outside any module call: [start, end) -> chain, sorted
    _made_starts: list[int]
    _made: list[tuple[int, int, tuple[str, ...]]]
    _seen: int  # the next sequence number of the counting thread when it last ran an op
    _thread: int  # the counting thread: the one that entered the counter (runs the forward)

    def _name_tree(self, root: torch.nn.Module, prefix: str) -> None:
        for sub_name, module in root.named_modules():
            if module in self._names:
                continue
            name = prefix if not sub_name else (f"{prefix}.{sub_name}" if prefix else sub_name)
            self._names[module] = name
            self._taken.add(name)
            chain = _chain_of(name)
            if prefix == "" and name:  # under the model, whose name is ""
                chain = ("", *chain)
            for p in module.parameters(recurse=False):
                self._param_chain.setdefault(id(p), chain)

    def _name_of(self, module: torch.nn.Module, parent: str | None) -> str:
        name = self._names.get(module)
        if name is not None:
            return name
        base = type(module).__name__ if not parent else f"{parent}.{type(module).__name__}"
        name, i = base, 1
        while name in self._taken:
            i += 1
            name = f"{base}#{i}"
        self._name_tree(module, name)
        return name

    def _pre_hook(self, module: torch.nn.Module, args: Any) -> None:
        parent = self._intervals[self._stack[-1]] if self._stack else None
        if parent is None:
            self._top.setdefault(module, None)
        parent_name = parent.chain[-1] if parent is not None and parent.chain else None
        name = self._name_of(module, parent_name)
        if parent is None:
            chain = _chain_of(name)
            if id(module) in self._in_model and torch._C._current_graph_task_id() != -1:
                chain = ("", *chain)  # a submodule re-run in backward (checkpointing)
        elif name in parent.chain:  # a module calling itself
            chain = parent.chain
        else:
            # Containers whose forward never runs (ModuleList, ModuleDict) are in the name:
            # add the prefixes of the static name that lie under the calling module.
            under = "" if parent_name in ("", None) else f"{parent_name}."
            between = tuple(
                n for n in _chain_of(name)[:-1] if n.startswith(under) and n not in parent.chain
            )
            chain = (*parent.chain, *between, name)
        start = torch._C._autograd._get_sequence_nr()
        self._intervals.append(_Interval(start, chain, self._stack[-1] if self._stack else -1))
        self._starts.append(start)
        self._stack.append(len(self._intervals) - 1)

    def _post_hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if self._stack:
            self._intervals[self._stack.pop()].end = torch._C._autograd._get_sequence_nr()

    def _backward_chain(self) -> tuple[str, ...]:
        """The module chain of the autograd node running now (empty when outside any module)."""
        if self._stack:  # a forward recomputed inside backward (activation checkpointing)
            return self._intervals[self._stack[-1]].chain
        node = torch._C._current_autograd_node()
        if node is None:
            return ()
        seq = node._sequence_nr()
        if seq == self._last_seq:
            return self._last_chain
        if seq == _NO_SEQ:  # AccumulateGrad: attribute to the parameter's module
            variable = getattr(node, "variable", None)
            chain = self._param_chain.get(id(variable), ()) if variable is not None else ()
        else:
            chain = self._chain_at(seq)
        self._last_seq, self._last_chain = seq, chain
        return chain

    def _chain_at(self, seq: int) -> tuple[str, ...]:
        i = bisect.bisect_right(self._starts, seq) - 1
        while i >= 0:
            interval = self._intervals[i]
            if interval.start <= seq < interval.end:
                return interval.chain
            i = interval.parent
        i = bisect.bisect_right(self._made_starts, seq) - 1
        if i >= 0:
            _, end, chain = self._made[i]
            if seq < end:
                return chain
        return ()

    def _note_made(self, backward: bool) -> None:
        """Before an op is counted: charge the autograd nodes made since this thread's last op.

        Autograd makes an op's node before the op reaches the counter, so the sequence numbers
        this thread used since its previous op are those of nodes made by this op (or by code
        between the two, such as a custom Function's ``apply``). In the backward pass
        (``backward``) outside any module call, they are the running node's work: the
        reentrant checkpoint re-running its function, or a ``create_graph=True`` backward
        making the graph of the gradient; they are charged to that node's chain, so that when
        a later backward runs them (the checkpoint's own, a gradient penalty's) they are the
        model's work and not ``(outside the model)``. In a module call, its interval holds them.

        Sequence numbers are per thread: only the counting thread's are noted, the one whose
        numbers the module intervals hold (a CUDA backward runs in autograd's device thread).
        """
        if threading.get_ident() != self._thread:
            return
        now = torch._C._autograd._get_sequence_nr()
        seen, self._seen = self._seen, now
        if now <= seen or not backward or self._stack:
            return
        chain = self._backward_chain()
        if not chain:
            return
        if self._made and self._made[-1][1] == seen and self._made[-1][2] == chain:
            self._made[-1] = (self._made[-1][0], now, chain)  # the same node, still running
        else:
            self._made_starts.append(seen)
            self._made.append((seen, now, chain))


def _uncompiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module ``torch.compile`` wrapped (``OptimizedModule._orig_mod``), else ``model``.

    Inside the counter a compiled module runs its eager code; its modules are named as the
    uncompiled model's (``"0"``, not ``"_orig_mod.0"``).
    """
    inner = getattr(model, "_orig_mod", None)
    if type(model).__name__ == "OptimizedModule" and isinstance(inner, torch.nn.Module):
        return inner
    return model


def _chain_of(name: str) -> tuple[str, ...]:
    """``"a.b.c"`` -> ``("a", "a.b", "a.b.c")``; ``""`` (the model) -> ``("",)``."""
    if name == "":
        return ("",)
    parts = name.split(".")
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))
