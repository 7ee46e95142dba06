"""``count_fpo=True`` in the Lightning callback: one training step's FPO, on a meta copy.

:class:`_StepFPO`, a base of the callback: ``training_step`` (or the module's forward on
``fpo_inputs``) and its backward counted on a meta copy of the module at the first batch of
each batch shape (:func:`batch_key`: a last short batch is counted as what it is), and an
evaluation's ``validation_step``/``test_step``/``predict_step`` (forward only) alike.

Private: :mod:`greenprint.integrations.lightning` is the public module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import GreenprintError

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.lightning")


class _StepFPO:
    """One training step's FPO, counted on a meta copy of the module."""

    _fpo_inputs: Callable[[Any], Any] | None
    _count_fpo: bool

    def _batch_fpo(
        self,
        run: Run | None,
        counted: dict[Any, FPOResult | int],
        pl_module: Any,
        batch: Any,
        kind: str = "training",
    ) -> FPOResult | int | None:
        """The FPO of one ``kind`` step on ``batch``: counted at the first batch of its key.

        ``counted`` holds the counts by :func:`batch_key` (one per shape: a last short batch
        is one of its own). ``None`` when not counting (``count_fpo=False``, or no run).
        """
        if not self._count_fpo or run is None:
            return None
        key = batch_key(batch)
        if key not in counted:
            counted[key] = self._count_step(pl_module, batch, kind)
        return counted[key]

    def _count_step(self, pl_module: Any, batch: Any, kind: str = "training") -> FPOResult | int:
        """FPO of one training step on ``batch``, counted on a meta copy of ``pl_module``.

        ``kind`` ``"validation"``, ``"test"`` or ``"predict"``: that step of an evaluation
        outside a fit, its forward only (no loss is back-propagated), or the module's forward
        on ``fpo_inputs`` with no backward.

        The count's result, so that the run's provenance says when it is a lower bound (ops
        with no rule, or on complex tensors); 0 when nothing was counted.

        By default ``training_step`` runs on the copy (forward and loss) and its loss is
        back-propagated; with ``fpo_inputs`` (or ``example_input_array``), the module's forward
        on those inputs and ``count_fpo``'s backward (from the output's loss when it carries
        one, else from every floating output, seeded with ones). The optimizer is not counted.
        A step that cannot run on meta tensors logs a warning and counts as 0 (the run keeps no
        FPO).
        """
        import warnings

        import torch

        from greenprint.fpo import FPOCounter, count_fpo
        from greenprint.fpo._api import _to_meta, meta_copy

        trainer = pl_module._trainer
        pl_module._trainer = None  # the copy must not deep-copy the Trainer
        try:
            model: Any = meta_copy(pl_module)
        finally:
            pl_module._trainer = trainer
        example = getattr(pl_module, "example_input_array", None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # self.log() on the copy warns: no trainer
                if self._fpo_inputs is not None or example is not None:
                    inputs = self._fpo_inputs(batch) if self._fpo_inputs is not None else example
                    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
                    counted = count_fpo(
                        model, *_tree_map(_to_meta, inputs), backward=kind == "training"
                    )
                    return counted if counted.total else 0
                counter = FPOCounter(model)
                with counter:
                    if kind != "training":
                        with torch.no_grad():  # as Lightning runs an evaluation step
                            getattr(model, f"{kind}_step")(_tree_map(_to_meta, batch), 0)
                        return counter.result if counter.result.total else 0
                    out = model.training_step(_tree_map(_to_meta, batch), 0)
                    loss = out.get("loss") if isinstance(out, Mapping) else out
                    if isinstance(loss, torch.Tensor) and loss.requires_grad:
                        loss.backward()
                return counter.result if counter.result.total else 0
        except (GreenprintError, RuntimeError, TypeError, ValueError, NotImplementedError) as e:
            # a figure, not a reason to stop training: say why it is missing
            logger.warning(
                "greenprint: could not count the FPO of a %s step on meta tensors "
                "(%s: %s); pass fpo_inputs=batch -> inputs",
                kind,
                type(e).__name__,
                e,
            )
            return 0


def _tree_map(fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn`` applied to every leaf of nested tuples, lists and dicts."""
    if isinstance(value, (tuple, list)):
        return type(value)(_tree_map(fn, v) for v in value)
    if isinstance(value, Mapping):
        return {k: _tree_map(fn, v) for k, v in value.items()}
    return fn(value)


def batch_key(batch: Any) -> Any:
    """What a step's count depends on: the batch's tensors' shapes and dtypes, its structure.

    A last short batch (``drop_last=False``, the default: 100 examples in batches of 32 end
    with one of 4) is another key, counted as what it is: it had been added as a full batch
    (+28 % FPO in that example). Values that are not tensors count by their type only (a
    batch's file names would make every batch a key of its own).
    """
    import torch

    if isinstance(batch, torch.Tensor):
        return ("tensor", tuple(batch.shape), str(batch.dtype))
    if isinstance(batch, Mapping):
        return ("map", tuple((str(k), batch_key(v)) for k, v in batch.items()))
    if isinstance(batch, (list, tuple)):
        return ("seq", tuple(batch_key(v) for v in batch))
    return ("object", type(batch).__name__)
