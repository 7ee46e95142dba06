"""count_fpo and training_fpo: the one-call ways to count a model."""

from __future__ import annotations

import contextlib
import copy
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass, replace
from typing import Any

import torch

from greenprint._exceptions import FPOInputError
from greenprint.fpo._counter import FPOCounter
from greenprint.fpo._counting_mode import NOBODY, counted_alone
from greenprint.fpo._kept_state import kept_as_it_was
from greenprint.fpo._no_dynamo import no_dynamo_import, plain_step
from greenprint.fpo._result import FPOResult

__all__ = ["count_fpo", "meta_copy", "training_fpo"]

_OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd": lambda params: torch.optim.SGD(params, lr=1e-3),
    "sgd-momentum": lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params),
    "adamw": lambda params: torch.optim.AdamW(params),
}


def count_fpo(
    model: torch.nn.Module | Callable[..., Any],
    *inputs: Any,
    backward: bool = True,
    backward_from: Callable[[Any], Any] | None = None,
    strict: bool = False,
    rules: Mapping[Any, Any] | None = None,
    **kwargs: Any,
) -> FPOResult:
    """Count the FPO of one forward (and backward) pass of a model.

    Runs ``model(*inputs, **kwargs)`` inside an :class:`FPOCounter`; with ``backward=True`` it
    then back-propagates, as training would: from the output's ``loss`` when it has one (a
    Hugging Face model given ``labels``: ``loss.backward()``), otherwise from every floating
    output that requires grad, seeded with ones (so no loss is counted), or from what
    ``backward_from`` picks. Works on real, meta and FakeTensor models and inputs; on meta
    nothing is allocated. Existing ``.grad`` fields of the model and inputs, and of every other
    tensor the backward reaches (the parameters a function's modules hold), are set aside
    during the count (so old gradients add nothing) and restored after it.

    A count is a measurement, not a training step: the model is left as it was, in train
    mode too. What the forward (or backward) writes into the model's parameters, buffers and
    other tensor attributes (batch norm's running statistics and ``num_batches_tracked``,
    spectral norm's vectors, the rows an ``Embedding(max_norm=...)`` renormalises), into the
    modules a function calls and into the inputs is put back; buffers rebound or registered
    are put back or removed; torch's random number generators (the CPU's and those of the
    CUDA devices the model and inputs are on), which dropout draws from, are restored.

    Args:
        model: the model (any ``torch.nn.Module``), or any other callable of tensors (a
            function such as ``torch.nn.functional.scaled_dot_product_attention``, a lambda
            around a model): counted the same, its modules named by class (``"Linear"``) and
            ``params`` those of the modules it called.
        *inputs: its positional inputs (see :func:`greenprint.fpo.example_inputs`).
        backward: count the backward pass too.
        backward_from: ``output -> tensor`` (or tensors) to back-propagate from, seeded with
            ones, such as ``lambda out: out.last_hidden_state`` (a model whose other outputs
            a training step does not use: their backward is then not counted).
        strict: raise :class:`greenprint.UnknownOpError` on an op with no rule.
        rules: per-count rule overrides, op -> formula.
        **kwargs: keyword inputs passed to the model.

    Returns:
        The counts (FPO), per op and per module.

    Raises:
        FPOInputError: ``model`` or ``backward_from`` is not callable, ``backward=True`` but no
            output (or nothing ``backward_from`` picked) requires grad, or the model reads
            the value of a meta tensor or runs an op with no meta kernel.
        UnknownOpError: ``strict=True`` and an op has no rule.
    """
    module = model if isinstance(model, torch.nn.Module) else None
    if module is None and not callable(model):
        raise FPOInputError(
            f"count_fpo needs a torch.nn.Module or a function of tensors to call, not "
            f"{type(model).__name__} {model!r:.60}"
        )
    if backward_from is not None and not callable(backward_from):
        raise FPOInputError(
            "backward_from must be a function of the model's output returning the tensor(s) "
            f"to back-propagate from, such as lambda out: out[0]; got {backward_from!r:.60}"
        )
    counter = FPOCounter(module, strict=strict, rules=rules)
    saved = _save_grads(module, inputs, kwargs)
    try:
        devices = _devices(module, inputs, kwargs)
        # on meta nothing runs: a counter of the user's around this one counts none of it
        alone = counted_alone(counter) if "meta" in " ".join(devices) else contextlib.nullcontext()
        weights = None
        # a measurement, not a training step: the model, inputs and RNG are left as they were
        # (a parametrization's weight, read for its zeros, runs its forward too)
        with kept_as_it_was(module, inputs, kwargs):
            with _meta_errors(_count_on_real(devices)), alone, counter:
                output = model(*inputs, **kwargs)
                if backward:  # a function's parameters are known only from its graph
                    saved += _clear_grads(_graph_leaves(output), saved)
                    _backward_from(output, backward_from, model=model)
            if module is not None:
                with counted_alone(NOBODY):  # reading the weights is not the model's work
                    weights = _zero_weights(module)
    finally:
        _restore_grads(saved)
    result = counter.result
    if not backward and not result.backward_total:  # forward only: no backward was counted
        result = replace(result, backward_counted=False)
    if weights is not None:
        result = replace(result, weights=weights[0], zero_weights=weights[1])
    return result


def _zero_weights(model: torch.nn.Module) -> tuple[int, int] | None:
    """``(weights, zeros)``: entries of ``model``'s layer weights and how many are exactly 0.

    A layer weight is a module's ``weight`` tensor of 2 or more dimensions (linear,
    convolution, embedding; a pruned one's masked weight too), shared ones once. ``None`` when
    one is not a plain tensor with values (meta, a FakeTensor, a quantized packed weight) or
    the model has none.
    """
    seen: dict[int, torch.Tensor] = {}
    for sub in model.modules():
        weight = getattr(sub, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            continue
        if type(weight) not in (torch.Tensor, torch.nn.Parameter) or weight.is_meta:
            return None
        if weight.layout is not torch.strided or weight.is_quantized:
            return None
        seen.setdefault(id(weight), weight)
    if not seen:
        return None
    with torch.no_grad():
        total = sum(w.numel() for w in seen.values())
        zeros = sum(w.numel() - int(torch.count_nonzero(w)) for w in seen.values())
    return total, zeros


def training_fpo(
    model: torch.nn.Module,
    inputs: Any,
    steps: int,
    *,
    target: Any = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    optimizer: str
    | torch.optim.Optimizer
    | Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    | None = "sgd",
    on_meta: bool = True,
    strict: bool = False,
    rules: Mapping[Any, Any] | None = None,
) -> FPOResult:
    """The FPO of a training run: one step (forward, loss, backward, optimizer) times ``steps``.

    One step is counted and multiplied: every step of a run with fixed shapes does the same
    arithmetic. By default the step runs on a meta-device copy of the model (parameters are not
    copied, nothing is allocated, the model is not trained).

    Args:
        model: the model.
        inputs: one batch: a tensor, a sequence of tensors passed positionally, or a mapping
            passed as keyword arguments (a tokenizer's output: ``model(**inputs)``).
        steps: number of optimizer steps in the run (>= 1).
        target: passed to ``loss_fn`` after the output, when given.
        loss_fn: ``loss_fn(output[, target]) -> scalar``; without it, backward starts from
            the output's ``loss`` when it has one (a Hugging Face model given ``labels``),
            else from every floating output, seeded with ones (no loss counted).
        optimizer: ``"sgd"``, ``"sgd-momentum"``, ``"adam"``, ``"adamw"``, a factory
            ``params -> torch.optim.Optimizer`` (e.g. ``functools.partial(torch.optim.AdamW,
            lr=3e-4)``), the training's own optimizer (one of the same class and settings,
            each parameter group's, is made for the counted step: the one given is neither
            stepped nor changed; parameters it holds that are not the model's are left out),
            or None for no update.
        on_meta: count on a meta copy; False counts a real step on the model itself, then
            leaves the model exactly as one real training step would: its parameters and
            buffers (batch-norm statistics included) are those of one forward, loss, backward
            and update from a fresh optimizer, with the random number generator as that step
            would leave it; the ``.grad`` fields are restored. It holds one copy of the
            parameters and buffers the step writes into meanwhile, and runs the step twice.
        strict: raise :class:`greenprint.UnknownOpError` on an op with no rule.
        rules: per-count rule overrides.

    Returns:
        The counts for the whole run; ``result.steps == steps`` and ``result.total // steps``
        is one step.

    Raises:
        FPOInputError: bad steps, inputs or optimizer name, or (``on_meta``) a model that reads
            values, which a meta copy does not have.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise FPOInputError(f"steps must be a positive integer, got {steps!r}")
    batch: tuple[Any, ...]
    keywords: dict[str, Any]
    if isinstance(inputs, Mapping):  # a tokenizer's output: the model's keyword arguments
        batch, keywords = (), dict(inputs)
    else:
        batch = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        keywords = {}
    make_optimizer = _optimizer_factory(optimizer, model)
    if on_meta:
        model = meta_copy(model)
        batch = tuple(_to_meta(x) for x in batch)
        keywords = {key: _to_meta(value) for key, value in keywords.items()}
        target = _to_meta(target)
        counter = FPOCounter(model, strict=strict, rules=rules)
        # a step on a meta copy computes nothing: a counter of the user's around this one
        # (a training loop counted as it runs) counts none of it
        with _meta_errors(_pass_not_on_meta), counted_alone(counter):
            _step(model, batch, keywords, target, loss_fn, make_optimizer, counter)
        return counter.result.times(steps)
    counter = FPOCounter(model, strict=strict, rules=rules)
    # On the model itself: the counted step runs after a warm-up update (a steady-state step,
    # not the first), so it is undone (values, entries and RNG, as count_fpo leaves them) and
    # one real step taken, from the same state.
    grads = _save_grads(model, batch, keywords)
    try:
        with kept_as_it_was(model, batch, keywords):
            _step(model, batch, keywords, target, loss_fn, make_optimizer, counter)
    finally:
        for t, _ in grads:
            t.grad = None
    try:
        _step(model, batch, keywords, target, loss_fn, make_optimizer, None)
    finally:
        _restore_grads(grads)
    return counter.result.times(steps)


# torch's words for code that cannot run on meta tensors: "cannot be called on meta tensors",
# "with Meta tensors, but there was no fake impl", "from the 'Meta' backend", "copy out of meta
# tensor", "found at least two devices, cpu and meta" (not a user's own "no meta kernel" error,
# which the command line reports as the model's)
_META = re.compile(
    r"\bmeta tensors?\b|'Meta' backend|\bdevices?\b.*\bmeta\b|\bmeta\b.*\bdevices?\b", re.I
)


@contextlib.contextmanager
def _meta_errors(advice: Callable[[BaseException], str]) -> Iterator[None]:
    """Turn torch's error for code that cannot run on meta tensors into an FPOInputError.

    The RuntimeError of a value read (``.item()``, ``if mask.all()``: "cannot be called on
    meta tensors"), the NotImplementedError of an op with no meta kernel, or a device
    mismatch with meta tensors (see ``_META``); ``advice(error)`` is the message. Other errors
    pass unchanged.
    """
    try:
        yield
    except (RuntimeError, NotImplementedError) as e:
        if not _META.search(str(e)):
            raise
        raise FPOInputError(advice(e)) from e


def _first_line(error: BaseException) -> str:
    """The error's first sentence (torch's missing-kernel message goes on for lines)."""
    return (str(error).splitlines() or [""])[0].split(". ")[0]


def _devices(model: torch.nn.Module | None, inputs: Any, kwargs: Any) -> tuple[str, str]:
    """The devices of ``model``'s parameters and buffers and of the input tensors, as text.

    Each is the sorted device types joined by ``" and "`` (``"cpu"``, ``"cpu and meta"``), or
    ``""`` when there are none (a function has no parameters of its own to read).
    """
    from torch.utils._pytree import tree_leaves

    held = [*model.parameters(), *model.buffers()] if model is not None else []
    given = [t for t in tree_leaves((inputs, kwargs)) if isinstance(t, torch.Tensor)]
    return (
        " and ".join(sorted({t.device.type for t in held})),
        " and ".join(sorted({t.device.type for t in given})),
    )


def _count_on_real(devices: tuple[str, str]) -> Callable[[BaseException], str]:
    """The advice for a count that fails on meta tensors, knowing where model and inputs are.

    ``devices`` is :func:`_devices`' pair. A model on one device and inputs on another, one of
    them meta (a real model given meta inputs, as a hurried reading of "inputs may be meta
    tensors" suggests, or a meta model given the batch), is told to put both on one device,
    not that the model cannot run on meta.
    """
    held, given = devices

    def advice(error: BaseException) -> str:
        line = _first_line(error)
        real = "count it on real tensors, with `greenprint fpo --device cpu` on the command line"
        if isinstance(error, NotImplementedError):
            return f"the model runs an op that has no kernel for meta tensors ({line}): {real}"
        if "on meta tensors" not in line:  # a device mismatch
            if held and given and held != given and "meta" in (held, given):
                both = (
                    "the model on meta too (`model.to('meta')`, or built under `with "
                    "torch.device('meta'):`), or real inputs"
                    if given == "meta"
                    else "the inputs on meta too (`x.to('meta')`, or "
                    "greenprint.fpo.example_inputs(shape)), or the model on real tensors"
                )
                return (
                    f"the model's parameters are on {held} and its inputs on {given} ({line}): "
                    f"put both on one device, {both}; on meta nothing is allocated"
                )
            # the model makes tensors on another device
            return f"the model cannot run on meta tensors ({line}): {real}"
        return (
            f"the model reads a value ({line}), which meta tensors do not have: {real} (a mask "
            "it tests, such as nn.Transformer's tgt_mask or a Hugging Face attention_mask, "
            "decides what it runs)"
        )

    return advice


def _pass_not_on_meta(error: BaseException) -> str:
    return (
        f"the step cannot run on a meta copy of the model ({type(error).__name__}: "
        f"{_first_line(error)}); pass on_meta=False to count a real step (a model that reads "
        "values, as a Hugging Face model reads its attention_mask, or makes tensors on another "
        "device cannot run on meta)"
    )


def _step(
    model: torch.nn.Module,
    batch: tuple[Any, ...],
    keywords: dict[str, Any],
    target: Any,
    loss_fn: Callable[..., torch.Tensor] | None,
    make_optimizer: Callable[..., torch.optim.Optimizer] | None,
    counter: FPOCounter | None,
) -> None:
    """Forward, loss, backward and update with a fresh optimizer.

    With a counter, the optimizer is warmed up first (uncounted) and the step counted.
    """
    with no_dynamo_import():  # Optimizer.__init__, step and zero_grad: see _no_dynamo
        opt = (
            make_optimizer(p for p in model.parameters() if p.requires_grad)
            if make_optimizer
            else None
        )
        if opt is not None:
            plain_step(opt)
        if opt is not None and counter is not None:
            _warm_up(opt)
        with counter if counter is not None else contextlib.nullcontext():
            output = model(*batch, **keywords)
            if loss_fn is not None:
                loss = loss_fn(output, target) if target is not None else loss_fn(output)
                loss.backward()
            else:
                _backward_from(output, model=model)
            if opt is not None:
                opt.step()
                opt.zero_grad(set_to_none=True)


def meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device.

    The real tensors are not copied (the deep copy is seeded with meta stand-ins), so this costs
    only the module objects, whatever the model's size.

    Args:
        model: the model.

    Returns:
        The meta copy; the original is untouched.
    """
    memo: dict[int, Any] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in memo:
            continue
        meta = torch.empty_like(t, device="meta")
        if isinstance(t, torch.nn.Parameter):
            meta = torch.nn.Parameter(meta, requires_grad=t.requires_grad)
        memo[id(t)] = meta
    return copy.deepcopy(model, memo)


def _warm_up(opt: torch.optim.Optimizer) -> None:
    """One uncounted step with zero gradients, so the counted step is a steady-state one.

    Some optimizers skip work on their first step (SGD with momentum copies the gradient into
    the buffer); with zero gradients the parameters do not move (bar weight decay).
    """
    params = [p for group in opt.param_groups for p in group["params"]]
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        meta = torch.empty_like(value, device="meta")
        return meta.requires_grad_(value.requires_grad) if meta.is_floating_point() else meta
    return value


def _optimizer_factory(
    optimizer: str | torch.optim.Optimizer | Callable[..., torch.optim.Optimizer] | None,
    model: torch.nn.Module,
) -> Callable[..., torch.optim.Optimizer] | None:
    """What makes the counted step's optimizer from the trainable parameters it updates.

    An optimizer instance (the training's own) gives a factory of its class and settings (see
    :func:`_like`); a name, one of :data:`_OPTIMIZERS`.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return _like(optimizer, [p for p in model.parameters() if p.requires_grad])
    if optimizer is None or callable(optimizer):
        return optimizer
    factory = _OPTIMIZERS.get(optimizer.lower()) if isinstance(optimizer, str) else None
    if factory is None:
        given = repr(optimizer) if isinstance(optimizer, str) else type(optimizer).__name__
        raise FPOInputError(
            f"unknown optimizer {given}; use one of {sorted(_OPTIMIZERS)}, a factory "
            "params -> torch.optim.Optimizer or an optimizer"
        )
    return factory


def _like(
    optimizer: torch.optim.Optimizer, originals: list[torch.nn.Parameter]
) -> Callable[..., torch.optim.Optimizer]:
    """A factory of optimizers of ``optimizer``'s class and parameter groups, settings and all.

    ``originals``: the model's trainable parameters in order; the factory is given the model's
    (or its meta copy's) trainable parameters in the same order, and puts each where
    ``optimizer`` has its original (groups of different learning rates or weight decay count
    as they run). Parameters ``optimizer`` holds that are not the model's (a loss's own) are
    left out; a group left with none is dropped.
    """
    groups = [
        ([id(p) for p in group["params"]], {k: v for k, v in group.items() if k != "params"})
        for group in optimizer.param_groups
    ]
    kind = type(optimizer)

    def make(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        copies = dict(zip((id(p) for p in originals), params, strict=False))
        made = [
            {**settings, "params": [copies[i] for i in ids if i in copies]}
            for ids, settings in groups
        ]
        made = [group for group in made if group["params"]]
        if not made:
            raise FPOInputError(
                f"the optimizer given ({kind.__name__}) holds none of the model's trainable "
                "parameters"
            )
        try:  # every group holds every setting: the class's defaults are not needed
            return kind(made)  # type: ignore[call-arg]
        except TypeError:  # an optimizer whose settings have no defaults (lr required)
            return kind(made, **optimizer.defaults)

    return make


def _backward_from(
    output: Any, pick: Callable[[Any], Any] | None = None, *, model: Any = None
) -> None:
    """Back-propagate as a training step would, seeded with ones.

    From ``pick(output)`` when given; else from the output's ``loss`` (a Hugging Face
    ``ModelOutput`` with ``labels`` given, a mapping with a "loss" key, a dataclass with a
    ``loss`` field) when it is a floating tensor that requires grad; else from every floating
    (or complex) output that requires grad (see :func:`output_tensors`).

    Raises:
        FPOInputError: nothing to back-propagate from; the message names ``model`` (the model
            or function that returned ``output``) and says what the output held.
    """
    if pick is not None:
        output = pick(output)
    else:
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if _differentiable(loss):
            output = loss
    found = output_tensors(output)
    tensors = [t for t in found if _differentiable(t)]
    if tensors:
        _backward_of_ones(tensors)
        return
    forward_only = (
        "count the forward only (backward=False; on the command line, without --backward)"
    )
    named = "the model" if model is None else f"the {_kind_of(model)} {_name_of(model)}"
    if pick is not None:
        raise FPOInputError(
            "backward_from picked no floating tensor that requires grad from the output; "
            f"pick one (lambda out: out[0]) or {forward_only}"
        )
    if not found:
        raise FPOInputError(
            f"backward=True but the output of {named}, {type(output).__name__} {output!r:.60}, "
            "holds no tensor greenprint can find (it looks into tuples, lists, dicts, "
            "dataclasses and types registered with torch.utils._pytree): pick the tensor(s) to "
            f"back-propagate from with backward_from=lambda out: ..., or {forward_only}"
        )
    if not any(t.is_floating_point() or t.is_complex() for t in found):
        dtypes = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in found}))
        raise FPOInputError(
            f"backward=True but the outputs of {named} are {dtypes} tensors, which have no "
            f"gradient; {forward_only}"
        )
    raise FPOInputError(
        f"backward=True but no output of {named} requires grad (frozen parameters, "
        f"torch.no_grad() or inference mode?); {forward_only}"
    )


def _kind_of(model: Any) -> str:
    return "model" if isinstance(model, torch.nn.Module) else "function"


def _name_of(model: Any) -> str:
    """A model's class name (``"ResNet"``), a function's qualified name (``"f.<locals>.g"``)."""
    if isinstance(model, torch.nn.Module):
        return type(model).__name__
    return str(getattr(model, "__qualname__", None) or getattr(model, "__name__", None) or model)


def output_tensors(output: Any) -> list[torch.Tensor]:
    """The tensors in a model's output, in order.

    Its pytree leaves (tuples, lists, dicts, namedtuples, the types registered with
    ``torch.utils._pytree``, Hugging Face's ``ModelOutput``), and, for a leaf that is a
    dataclass instance (which pytree does not look into unless registered), its fields,
    searched the same way.
    """
    from torch.utils._pytree import tree_leaves

    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def search(value: Any) -> None:
        for leaf in tree_leaves(value):
            if isinstance(leaf, torch.Tensor):
                found.append(leaf)
            elif is_dataclass(leaf) and not isinstance(leaf, type) and id(leaf) not in seen:
                seen.add(id(leaf))
                for f in fields(leaf):
                    search(getattr(leaf, f.name, None))

    search(output)
    return found


def _backward_of_ones(tensors: list[torch.Tensor]) -> None:
    """``torch.autograd.backward(tensors, grad_tensors=ones)``, without its first-call import.

    Given gradient tensors, ``torch.autograd.backward`` checks their shapes with
    ``torch.fx.experimental.symbolic_shapes``, whose import (sympy) costs about 0.6 s of CPU,
    charged to the run active at a process's first count (a search's first trial). The
    gradients here are ``ones_like`` each output (their shapes are right by construction):
    plain tensors go to the autograd engine as ``torch.autograd.backward`` hands them, with the
    same arguments; anything else (a tensor subclass, another torch) takes the public call.
    """
    grads = tuple(torch.ones_like(t) for t in tensors)
    run = getattr(torch.autograd.graph, "_engine_run_backward", None)
    plain = all(type(t) is torch.Tensor for t in tensors)
    if run is None or not plain or "torch.fx.experimental.symbolic_shapes" in sys.modules:
        torch.autograd.backward(tensors, grad_tensors=list(grads))
        return
    run(tuple(tensors), grads, False, False, (), allow_unreachable=True, accumulate_grad=True)


def _differentiable(value: Any) -> bool:
    """A tensor that requires grad, floating point or complex (a spectral or complex model)."""
    return (
        isinstance(value, torch.Tensor)
        and value.requires_grad
        and (value.is_floating_point() or value.is_complex())
    )


def _save_grads(
    model: torch.nn.Module | None, inputs: Any, kwargs: Any
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Stash and clear the ``.grad`` of the parameters (of ``model``, if any) and of leaf inputs.

    A fresh backward then does not accumulate into old gradients (which would count extra
    adds), and the caller's gradients are restored afterwards.
    """
    from torch.utils._pytree import tree_leaves

    leaves = [t for t in tree_leaves((inputs, kwargs)) if isinstance(t, torch.Tensor) and t.is_leaf]
    params = [*model.parameters()] if model is not None else []
    saved = [(t, t.grad) for t in [*params, *leaves] if t.requires_grad]
    for t, _ in saved:
        t.grad = None
    return saved


def _graph_leaves(output: Any) -> list[torch.Tensor]:
    """The leaf tensors a backward from ``output`` writes a ``.grad`` into.

    The ``AccumulateGrad`` nodes of its autograd graph: the parameters of every module a
    function called, and any other tensor it used that requires grad (a closure's weight).
    """
    leaves: list[torch.Tensor] = []
    stack: list[Any] = []
    for t in output_tensors(output):
        if t.requires_grad:
            if t.grad_fn is None:
                leaves.append(t)
            else:
                stack.append(t.grad_fn)
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def _clear_grads(
    tensors: Sequence[torch.Tensor], saved: Sequence[tuple[torch.Tensor, torch.Tensor | None]]
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Stash and clear the ``.grad`` of ``tensors`` not already in ``saved``."""
    done = {id(t) for t, _ in saved}
    out = []
    for t in tensors:
        if id(t) not in done:
            done.add(id(t))
            out.append((t, t.grad))
            t.grad = None
    return out


def _restore_grads(saved: Sequence[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    for p, grad in saved:
        p.grad = grad
