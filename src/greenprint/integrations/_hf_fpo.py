"""``count_fpo=True`` in the Hugging Face callback: the FPO of each micro-batch trained.

:class:`_MicroBatchFPO` counts a micro-batch live, once per input shape, from its forward to
the end of its backward (:func:`_live_counter`); :class:`_FPOCounts`, a base of the callback,
adds the counts to the run at each substep's and step's end, and stops counting (warned) when
the model's hook sees no training forward. :class:`_ForwardFPO` counts the forwards of an
``evaluate()``/``predict()`` outside a training, for its own run.

Private: :mod:`greenprint.integrations.transformers` is the public module.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import BudgetExceeded

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run


class _FPOCounts:
    """The FPO counted of the micro-batches trained, added to the run."""

    _run: Run | None
    _fpo: _MicroBatchFPO | None

    if TYPE_CHECKING:  # pragma: no cover - the callback's own

        def _warn_once(self, key: str, message: str) -> None: ...

    def _add_fpo(self, *, step_end: bool) -> None:
        """Add the FPO of the micro-batches trained since the last call to the run.

        At a step's end, a training in which the model's hook saw no training forward (a
        compiled model, or copies of it on several GPUs in one process) stops counting, warned.
        """
        counting, run = self._fpo, self._run
        if counting is None or run is None or run.status != "running":
            return
        for counted in counting.take():
            try:
                run.add_fpo(counted)
            except BudgetExceeded:  # raised once; on_step_end's check_budgets() sees it again
                pass
        if step_end and not counting.seen_since_step():
            self._end_fpo()
            self._warn_once(
                "fpo-unseen",
                "greenprint: count_fpo saw no training forward of the Trainer's model in this "
                "step (a compiled model, torch_compile=True, or the model copied onto several "
                "GPUs of one process), so the run records no FPO for this training",
            )

    def _end_micro_batch(self) -> None:
        if self._fpo is not None:
            self._fpo.end_micro_batch()

    def _end_fpo(self) -> None:
        """Leave a count still open, remove the counting hooks (the training is over)."""
        counting, self._fpo = self._fpo, None
        if counting is not None:
            counting.close()


def _live_counter(model: Any) -> Any:
    """An :class:`~greenprint.FPOCounter` of ``model``'s forward and of its backward.

    It counts the ops of the model's own forward and, in the backward pass, those of the
    gradients of what that forward computed (as :func:`~greenprint.count_fpo` of the model):
    not the Trainer's scaling of the loss the model returned (``loss / accumulation steps``,
    ``loss * processes``: a few scalar ops), a loss computed outside the model, the gradient
    clipping or the optimizer step. Once :attr:`done` is set (the backward finished) nothing
    more is counted, and an FPO rule that fails stops the count (:attr:`failure`), not the
    training.
    """
    import torch

    from greenprint._exceptions import FPOError
    from greenprint.fpo import FPOCounter

    class LiveCounter(FPOCounter):
        done = False
        failure: str | None = None

        def _count(self, func: Any, info: Any, args: Any, kwargs: Any, out: Any) -> None:
            if self.done or self.failure is not None:
                return
            if torch._C._current_graph_task_id() == -1:
                if not self._stack:  # outside the model's forward (or in the optimizer)
                    return
            elif not self._backward_chain():  # the gradient of an op outside the model
                return
            try:
                super()._count(func, info, args, kwargs, out)
            except FPOError as e:
                self.failure = str(e)

    return LiveCounter(model)


class _MicroBatchFPO:
    """The FPO of each micro-batch a Trainer trains, counted live once per input shape.

    A forward pre-hook on the model sees the inputs of every forward it runs in training mode
    with gradients on (the Trainer's ``compute_loss``; not evaluation, which runs in eval mode
    under ``no_grad``). The first micro-batch of each input shape (and of whether each
    ``*mask*`` input pads, which changes what a Hugging Face model runs) is counted as it
    trains: an :class:`~greenprint.FPOCounter` is entered before its forward and counts until
    its backward is done (a hook on the forward's outputs queues the end on the autograd
    engine); the counter is left at the micro-batch's end (``on_substep_end``, else
    ``on_pre_optimizer_step``). Nothing runs twice: the count adds only the counter's dispatch
    overhead to that one micro-batch. Later micro-batches of the same key take its count. The
    counts wait in :meth:`take` until the micro-batch's step (or substep) ends. The gradient
    clipping and the optimizer are not counted; collectives count 0.
    """

    def __init__(self, model: Any, *, warn: Callable[[str, str], None]):
        self.model = model
        self.warn = warn
        self.cache: dict[Any, FPOResult] = {}
        self.pending: list[FPOResult] = []
        self.failed = False
        self.counted = False  # a micro-batch's count was added already (for the warning)
        self.seen = False  # a training forward ran since the last step's end
        self.key: Any = None  # the input key of the micro-batch training now (None: between)
        self.counter: Any = None  # the live counter of that micro-batch, when it is counted
        self.grad_hooks: list[Any] = []
        this = weakref.ref(self)

        def pre_hook(module: Any, args: Any, kwargs: Any) -> None:
            counting = this()
            if counting is not None and module is counting.model:
                counting.forward(args, kwargs)

        def post_hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            counting = this()
            if counting is not None and module is counting.model:
                counting.watch_backward(output)

        self.handles = [
            model.register_forward_pre_hook(pre_hook, with_kwargs=True),
            model.register_forward_hook(post_hook, with_kwargs=True),
        ]

    def close(self) -> None:
        """Leave a counter still open (a training that raised), remove the hooks."""
        self.abort()
        for handle in self.handles:
            handle.remove()
        self.pending = []

    def take(self) -> list[FPOResult]:
        """The counts of the micro-batches trained since the last call (added once each)."""
        taken, self.pending = self.pending, []
        self.counted = self.counted or bool(taken)
        return taken

    def seen_since_step(self) -> bool:
        """Whether a training forward ran since the last call (or counting stopped on error)."""
        seen, self.seen = self.seen, False
        return seen or self.failed

    def forward(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The pre-hook: a training micro-batch begins; count it live when its key is new.

        A second forward before the micro-batch ends (a ``compute_loss`` that calls the model
        twice) is part of the same micro-batch.
        """
        import torch

        if self.failed or not self.model.training or not torch.is_grad_enabled():
            return
        if torch.compiler.is_compiling():  # traced into a compiled graph: no Python per call
            return
        self.seen = True
        if self.key is not None:
            return
        self.key = _input_key((args, kwargs))
        if self.key in self.cache:
            return
        counter = _live_counter(self.model)
        counter.__enter__()
        # the model's call began before the counter's global module hooks existed: its
        # forward is entered by hand (the counter's forward hook ends it, as for its modules)
        counter._pre_hook(self.model, args)
        self.counter = counter

    def watch_backward(self, output: Any) -> None:
        """The forward hook: end the count when the backward through ``output`` is done.

        A hook on each output tensor that requires a gradient queues, when the backward reaches
        it, a callback that the autograd engine runs once that whole backward is done (after the
        gradients are accumulated, before the Trainer clips them).
        """
        import torch

        counter = self.counter
        if counter is None or self.grad_hooks:
            return
        engine = torch.autograd.Variable._execution_engine  # type: ignore[attr-defined]
        queued: list[bool] = []

        def finished() -> None:
            counter.done = True

        def reached(grad: Any) -> None:
            if not queued:
                queued.append(True)
                engine.queue_callback(finished)

        tensors = [
            t
            for t in _leaves(output)
            if isinstance(t, torch.Tensor) and t.requires_grad and t.grad_fn is not None
        ]
        self.grad_hooks = [t.register_hook(reached) for t in tensors]

    def end_micro_batch(self) -> None:
        """The micro-batch's backward is over: its count (or its key's) is pending."""
        key, counter, self.key = self.key, self.counter, None
        if key is None:
            return
        if counter is None:
            self.pending.append(self.cache[key])
            return
        self.leave()
        if counter.failure is not None:
            self.fail(f"FPOError: {counter.failure}")
            return
        counted = counter.result
        self.cache[key] = counted
        self.pending.append(counted)

    def abort(self) -> None:
        """Leave the counter of a micro-batch that will not end (its training raised)."""
        self.key = None
        self.leave()

    def leave(self) -> None:
        counter, self.counter = self.counter, None
        for handle in self.grad_hooks:
            handle.remove()
        self.grad_hooks = []
        if counter is not None:
            counter.__exit__(None, None, None)

    def fail(self, why: str) -> None:
        self.failed = True
        self.pending = []
        more = (
            "; the run's FPO counts the micro-batches before this one only"
            if self.counted
            else "; the run records no FPO"
        )
        self.warn(
            "fpo-failed",
            "greenprint: count_fpo could not count a training micro-batch of "
            f"{type(self.model).__name__} ({why}){more}",
        )


class _ForwardFPO:
    """The FPO of the forwards of an ``evaluate()``/``predict()`` (``count_fpo=True``).

    An evaluation outside a training is a run of its own, a ``part`` of the run that trained
    the model (a search trial's objective evaluation, the final model's test): without its FPO
    that run's, and so the trial's and the final model's, read "FPO unknown" although their
    training was counted. The evaluation loop calls the model's forward (under ``no_grad``) on
    each batch: a forward pre-hook enters a counter at the first forward of each input key
    (:func:`_input_key`: shapes, dtypes, padding masks) and the forward hook leaves it; later
    forwards of that key take its count. :meth:`close` gives the counts; a count that failed
    gives none (the run's FPO stay unknown, never those of the batches before it alone).
    """

    def __init__(self, model: Any, *, warn: Callable[[str, str], None]):
        self.model = model
        self.warn = warn
        self.cache: dict[Any, FPOResult] = {}
        self.calls: dict[Any, int] = {}
        self.failed = False
        self.depth = 0  # forwards of the model in progress (one inside another: the outer's)
        self.key: Any = None  # the key of the forward in progress
        self.counter: Any = None  # its counter, when its key is new
        this = weakref.ref(self)

        def pre_hook(module: Any, args: Any, kwargs: Any) -> None:
            counting = this()
            if counting is not None and module is counting.model:
                counting.forward(args, kwargs)

        def post_hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            counting = this()
            if counting is not None and module is counting.model:
                counting.forward_done()

        self.handles = [
            model.register_forward_pre_hook(pre_hook, with_kwargs=True),
            model.register_forward_hook(post_hook, with_kwargs=True),
        ]

    def forward(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """The pre-hook: a forward begins; count it live when its key is new."""
        import torch

        self.depth += 1
        if self.depth > 1 or self.failed or torch.compiler.is_compiling():
            return
        self.key = key = _input_key((args, kwargs))
        self.calls[key] = self.calls.get(key, 0) + 1
        if key in self.cache:
            return
        counter = _live_counter(self.model)  # no backward here: the forward's ops only
        counter.__enter__()
        counter._pre_hook(self.model, args)  # the call began before the counter's hooks
        self.counter = counter

    def forward_done(self) -> None:
        """The forward hook: the forward is over; its count is kept for its key."""
        self.depth = max(0, self.depth - 1)
        if self.depth:
            return
        counter, self.counter = self.counter, None
        if counter is None:
            return
        counter.__exit__(None, None, None)
        if counter.failure is not None:
            self.failed = True
            self.warn(
                "fpo-evaluation-failed",
                "greenprint: count_fpo could not count an evaluation forward of "
                f"{type(self.model).__name__} (FPOError: {counter.failure}); the evaluation's "
                "run records no FPO",
            )
            return
        self.cache[self.key] = counter.result

    def close(self) -> list[tuple[FPOResult, int]]:
        """Remove the hooks, leave a counter still open (a forward that raised); the counts.

        Each input key's count and how many forwards ran with it; none when a count failed
        or a forward raised inside its count.
        """
        for handle in self.handles:
            handle.remove()
        counter, self.counter = self.counter, None
        if counter is not None:  # its forward raised: no count of it
            counter.__exit__(None, None, None)
            self.failed = True
        if self.failed:
            return []
        return [(self.cache[key], n) for key, n in self.calls.items() if key in self.cache]


def _input_key(value: Any) -> Any:
    """What a micro-batch's count depends on: its tensors' shapes and dtypes, other values.

    Also whether each integer or boolean tensor named ``*mask*`` is all non-zero (a Hugging
    Face model skips an attention mask that pads nothing).
    """
    import torch

    def key(v: Any, name: str = "") -> Any:
        if isinstance(v, torch.Tensor):
            pads = None
            if "mask" in name and not v.is_floating_point() and v.device.type != "meta":
                pads = not bool(v.all())
            return ("tensor", tuple(v.shape), str(v.dtype), v.requires_grad, pads)
        if isinstance(v, Mapping):
            return ("map", tuple((str(k), key(x, str(k))) for k, x in v.items()))
        if isinstance(v, (list, tuple)):
            return ("seq", tuple(key(x, name) for x in v))
        if v is None or isinstance(v, (bool, int, float, str)):
            return ("value", type(v).__name__, v)
        return ("object", type(v).__name__)

    return key(value)


def _leaves(value: Any) -> list[Any]:
    """The leaves of nested tuples, lists and dicts (a ``ModelOutput`` is a dict)."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value]
