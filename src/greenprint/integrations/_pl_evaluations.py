"""A Lightning ``validate``/``test``/``predict`` outside a fit: a run of its own.

:class:`_EvaluationRuns`, a base of the callback: the evaluation's run (``<name>-<kind>``,
one meter per node), its metrics, its end as a part of the run that trained the module, and
an evaluation after a fit appended to the fit's ended run.

Private: :mod:`greenprint.integrations.lightning` is the public module.
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import BudgetExceeded, GreenprintError
from greenprint.integrations._common import options_now
from greenprint.integrations._dl import (
    append_metrics,
    end_evaluation,
    last_training,
    metric_values,
    trained_run,
)
from greenprint.integrations._dl import weak_ref as _weak
from greenprint.integrations._pl_trainer import (
    _check_objects,
    _evaluation_kind,
    _metered_run,
    _module_params,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.lightning")


class _EvaluationRuns:
    """The run of a ``validate``/``test``/``predict`` outside a fit."""

    _options: dict[str, Any]
    _default_ledger: Any  # the configured ledger, pinned when the callback was made
    _name: str | None
    _run: Run | None
    _fit_trainer: weakref.ref[Any] | None
    _fit_module: weakref.ref[Any] | None
    _resumes: str | None
    _evaluation: Run | None
    _evaluated: str | None
    _evaluated_module: weakref.ref[Any] | None
    last_evaluation_id: str | None
    #: one evaluation step's FPO per batch key (``count_fpo=True``), and the batch's now
    _evaluation_fpos: dict[Any, FPOResult | int]
    _evaluation_fpo: FPOResult | int | None

    if TYPE_CHECKING:  # pragma: no cover - _StepFPO's, a base of the callback

        def _batch_fpo(
            self,
            run: Run | None,
            counted: dict[Any, FPOResult | int],
            pl_module: Any,
            batch: Any,
            kind: str = "training",
        ) -> FPOResult | int | None: ...

    def _start_evaluation(self, trainer: Any, pl_module: Any) -> None:
        """Start the run of a ``validate``/``test``/``predict`` outside a fit (see the module).

        Called at the loop's start, after Lightning restored a checkpoint's callback state
        (:meth:`load_state_dict`): the run of the fit that saved it is known by then.
        """
        kind = _evaluation_kind(trainer)
        if kind is None:
            return
        self._stop_evaluation("failed", "a new evaluation started before this one ended")
        _check_objects(trainer, pl_module)

        options = options_now(self._options, self._default_ledger)
        given = options.pop("role", None)
        options.pop("dataset_size", None)  # the training set's size: not what this runs on
        params = _module_params(pl_module)
        params.update(options.pop("params", None) or {})
        name = f"{self._name or type(pl_module).__name__}-{kind}"
        # a model's evaluation the user called final or baseline, unless a known run trained
        # it (then a part of that run, once it ends: see _stop_evaluation)
        role = given if kind != "predict" and given in ("final", "baseline") else "part"
        try:
            run = _metered_run(trainer, name, params, role, options)
        except GreenprintError as e:  # never stop the user's evaluation
            logger.warning("greenprint: could not start the run of trainer.%s(): %s", kind, e)
            return
        self._evaluation = run
        self._evaluation_fpos, self._evaluation_fpo = {}, None
        self._evaluated = self._trained_by(run, trainer, pl_module)
        self._evaluated_module = _weak(pl_module)
        self.last_evaluation_id = run.id

    # ------------------------------------------------------------------ FPO (count_fpo)
    # An evaluation outside a fit is a part of the run that trained the module: without its
    # FPO, that run's (the final model tested) read "FPO unknown" although its fit counted.
    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Count a ``trainer.validate()`` batch's step at the first batch of its shape."""
        self._evaluation_batch_start(pl_module, batch, "validation")

    def on_test_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Count a ``trainer.test()`` batch's step at the first batch of its shape."""
        self._evaluation_batch_start(pl_module, batch, "test")

    def on_predict_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Count a ``trainer.predict()`` batch's step at the first batch of its shape."""
        self._evaluation_batch_start(pl_module, batch, "predict")

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add the batch's step FPO to the evaluation's run."""
        self._evaluation_batch_end()

    def on_test_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add the batch's step FPO to the evaluation's run."""
        self._evaluation_batch_end()

    def on_predict_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add the batch's step FPO to the evaluation's run."""
        self._evaluation_batch_end()

    def _evaluation_batch_start(self, pl_module: Any, batch: Any, kind: str) -> None:
        """The FPO of this batch's ``<kind>_step``, forward only, on a meta copy (once a key).

        Only in an evaluation's own run (outside a fit: a fit's validation is not counted).
        """
        run = self._evaluation
        self._evaluation_fpo = None
        if run is not None and run.status == "running":
            self._evaluation_fpo = self._batch_fpo(
                run, self._evaluation_fpos, pl_module, batch, kind
            )

    def _evaluation_batch_end(self) -> None:
        run, counted, self._evaluation_fpo = self._evaluation, self._evaluation_fpo, None
        if counted and run is not None and run.status == "running":
            try:
                run.add_fpo(counted)
            except BudgetExceeded:  # a "stop" budget: the evaluation goes on to its end
                pass

    def _end_evaluation(self, trainer: Any, pl_module: Any) -> None:
        """End the evaluation's run with its metrics; link it to the run that trained the model.

        A validation or test by the fit's Trainer, of the module it trained, also adds its
        metrics to the fit's ended run (its scores, at its last step).
        """
        kind = _evaluation_kind(trainer)
        run = self._evaluation
        metrics = metric_values(trainer.callback_metrics) if kind != "predict" else {}
        if run is not None and run.status == "running" and metrics:
            try:
                run.log(step=trainer.global_step, **metrics)
            except BudgetExceeded:  # a "stop" budget: the evaluation is over anyway
                pass
        self._stop_evaluation("finished", None)
        if kind != "predict" and self._run is not None and self._run.status != "running":
            self._after_fit(trainer, pl_module)

    def _stop_evaluation(self, status: str, error: str | None) -> None:
        """End the evaluation's run; of a model a known run trained, it becomes its part.

        One of no known training, with role ``part``, waits for the next fit of its module
        object in this process, which takes it as its part (see :meth:`on_fit_start`).
        """
        run, trained_by = self._evaluation, self._evaluated
        module = self._evaluated_module() if self._evaluated_module is not None else None
        self._evaluation = self._evaluated = self._evaluated_module = None
        end_evaluation(run, status, error, trained_by=trained_by, model=module)

    def _trained_by(self, run: Run, trainer: Any, pl_module: Any) -> str | None:
        """The id of the run that trained the model ``run`` evaluates, if known.

        The fit whose checkpoint Lightning restored (its run id in the callback state), else
        this callback's fit of this module by this Trainer, else the last fit of this module
        object in this process. A run not in ``run``'s ledger, of another study, or still
        running is none. Inside a run of the user's, none is looked for: that run holds it.
        """
        if run.ledger is None or run.parent_id is not None:
            return None
        candidates = [self._resumes]
        fit_trainer = self._fit_trainer() if self._fit_trainer is not None else None
        fit_module = self._fit_module() if self._fit_module is not None else None
        if self._run is not None and fit_trainer is trainer and fit_module is pl_module:
            candidates.append(self._run.id)
        candidates.append(last_training(pl_module))
        return trained_run(run, candidates)

    def _after_fit(self, trainer: Any, pl_module: Any) -> None:
        """Append an evaluation by the fit's Trainer, after the fit, to the fit's ended run.

        Only of the module the fit trained: another module evaluated by that Trainer (a
        baseline, the next configuration's model) is no score of this run.
        """
        run = self._run
        fit_trainer = self._fit_trainer() if self._fit_trainer is not None else None
        if run is None or fit_trainer is None or fit_trainer is not trainer:
            return
        fit_module = self._fit_module() if self._fit_module is not None else None
        if fit_module is None or fit_module is not pl_module:
            logger.debug(
                "greenprint: an evaluation of another module than run %s's fit: not its scores",
                (run.id or "")[:8],
            )
            return
        metrics = metric_values(fit_trainer.callback_metrics)
        append_metrics(run, metrics, step=fit_trainer.global_step)
