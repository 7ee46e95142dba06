"""Which ops are an optimizer's: the step hooks of the FPO counter.

The counter's global optimizer-step hooks keep a depth of ``optimizer.step()`` calls running:
an op counted inside one is the optimizer's (its phase "optimizer"), except inside a closure
that the step runs (LBFGS, ``optimizer.step(closure)``): the forward, the loss and the
backward there are counted as such, charged to the modules. :class:`_OptimizerSteps` holds
this part of :class:`~greenprint.fpo.FPOCounter`'s state and methods.
"""

from __future__ import annotations

from typing import Any


class _OptimizerSteps:
    """Optimizer-step tracking for :class:`~greenprint.fpo.FPOCounter` (its base class).

    The counter's ``_reset`` sets this state; the hooks are registered by its ``__enter__``.
    """

    _optimizer_depth: int  # optimizer.step() calls running (0 inside a closure they run)

    def _optimizer_pre_hook(
        self, optimizer: Any, args: Any, kwargs: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        self._optimizer_depth += 1
        # A closure (LBFGS, ``optimizer.step(closure)``) runs the forward, the loss and the
        # backward inside the step: they are counted as such, charged to the modules, and only
        # the optimizer's own arithmetic as the optimizer's.
        # (``args`` begins with the optimizer itself: ``step`` is a method)
        args = tuple(args)
        if "closure" in kwargs:
            closure = kwargs["closure"]
        else:
            closure = args[1] if len(args) > 1 else None
        if not callable(closure):
            return None
        wrapped = self._outside_optimizer(closure)
        if "closure" in kwargs:
            return args, {**kwargs, "closure": wrapped}
        return (args[0], wrapped, *args[2:]), dict(kwargs)

    def _outside_optimizer(self, closure: Any) -> Any:
        """``closure`` run as code outside the optimizer step (forward and backward)."""

        def run(*args: Any, **kwargs: Any) -> Any:
            depth, self._optimizer_depth = self._optimizer_depth, 0
            try:
                return closure(*args, **kwargs)
            finally:
                self._optimizer_depth = depth

        return run

    def _optimizer_post_hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._optimizer_depth = max(0, self._optimizer_depth - 1)
