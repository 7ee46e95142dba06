"""Hugging Face Trainer: a callback that records training as a greenprint run.

``pip install 'greenprint[transformers]'``, then::

    from greenprint.integrations.transformers import GreenprintCallback

    cb = GreenprintCallback("bert-ft", study="glue", ledger="gp.db")
    trainer = Trainer(model=model, args=args, train_dataset=train)
    cb.attach(trainer)          # first in the callback list, and crash-safe
    trainer.train()
    cb.create_model_card(trainer)   # README.md with the co2_eq_emissions block

What it records, in short (docs/integrations.md, "Hugging Face Trainer", says it in full, with
the measurements behind it):

* one run per ``trainer.train()``; with ``attach(trainer)`` the whole call (the model's making
  by ``model_init`` included) and an exception ends it ``failed`` (``interrupted`` for Ctrl-C,
  ``pruned`` for ``TrialPruned``); without, from ``on_train_begin`` to ``on_train_end``;
* greenprint's figures (``greenprint/energy_kwh``, ``emissions_kg``, ``power_w``) added to the
  Trainer's logs at every ``on_log`` (not an evaluation's), the numeric logs and evaluation
  metrics copied to the run, the best checkpoint's evaluation last with
  ``load_best_model_at_end``;
* each ``trainer.evaluate()``/``predict()`` outside a training as a run of its own
  (``<name>-evaluate``, ``-predict``), a ``part`` of the run that trained that model when
  one is known;
* with ``count_fpo=True``, the FPO of each micro-batch trained, counted live once per input
  shape (:class:`~greenprint.FPOCounter`), the optimizer not counted;
* the training arguments a study varies and your ``params`` as the run's params;
* ``trainer.hyperparameter_search``: a run per trial (``role="trial"``), with the search's
  objective (``objective``, ``objective_loss``) when attached, and the retrain with the best
  hyper-parameters as ``role="final"``; a killed trial that Optuna retries is a ``part`` of
  its retry's run;
* budgets with ``on_exceed="stop"``: training stopped as ``EarlyStoppingCallback`` does,
  ``trainer.train()`` returning normally and the run ``interrupted``;
* a training resumed from a checkpoint (``greenprint_run.json`` beside it), and a second
  ``train()`` of the same model object, take the earlier training's run as a ``part``: one
  training, not two trials;
* with several processes (``torchrun``, ``accelerate launch``), one meter per node: the node's
  local process 0 meters, the others record parts of its run.

The model card gets ``co2_eq_emissions`` (in grams, as the Hugging Face Hub wants) through
:meth:`GreenprintCallback.create_model_card`, or :func:`model_card_co2` for any run.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._imports import require

_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)

from greenprint._budget import BudgetGuard  # noqa: E402
from greenprint._exceptions import BudgetExceeded, ConfigError  # noqa: E402
from greenprint._lifecycle import status_for  # noqa: E402
from greenprint.integrations._common import (  # noqa: E402
    WarnOnce,
    check_run_options,
    default_ledger,
    pin_ledger_option,
    sized_dataset,
    warn_fpo_budget_uncounted,
)
from greenprint.integrations._dl import (  # noqa: E402
    FIGURE_PREFIX,
    LiveFigures,
    append_metrics,
    metric_values,
    plain_params,
    refresh,
    take_waiting_parts,
    trained_again,
)
from greenprint.integrations._hf_args import (  # noqa: E402
    _SCHEDULE,
    RUN_FILE,
    _any_process,
    _best_evaluation,
    _calling_kind,
    _check_args,
    _checkpoint_folder,
    _explicit_run_name,
    _is_evaluation,
    _stop_training,
    _within_max_steps,
    _world_size,
)
from greenprint.integrations._hf_evaluations import _EvaluationRuns  # noqa: E402
from greenprint.integrations._hf_fpo import _ForwardFPO, _FPOCounts, _MicroBatchFPO  # noqa: E402
from greenprint.integrations._hf_model_card import (  # noqa: E402
    _CO2_FIELDS,
    add_co2_to_model_card,
    model_card_co2,
)
from greenprint.integrations._hf_runs import (  # noqa: E402
    _TrainingRuns,
    keep_once,
    warn_other_callbacks,
)
from greenprint.integrations._hf_search import RUN_ID_ATTR as RUN_ID_ATTR  # noqa: E402
from greenprint.integrations._hf_search import (  # noqa: E402
    _Objective,
    _SearchRecords,
    _trial_name,
)
from greenprint.integrations._pruned_trials import optuna_pruned_notes  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run

from greenprint._public import publish  # noqa: E402

__all__ = ["GreenprintCallback", "add_co2_to_model_card", "model_card_co2"]

logger = logging.getLogger(__name__)


class GreenprintCallback(  # type: ignore[misc]
    _TrainingRuns,
    _EvaluationRuns,
    _SearchRecords,
    _FPOCounts,
    _transformers.TrainerCallback,  # type: ignore[name-defined]
):
    """Record ``Trainer.train`` as a greenprint run (see the module docstring and the docs).

    Args:
        name: the run's name (default: ``args.run_name`` when you set it, else the model's
            class name; a search trial is named after the trial).
        count_fpo: count the FPO (floating-point operations) of each micro-batch trained,
            forward and backward, live as it trains, once per input shape, and add them to the
            run (docs/integrations.md, "FPO"); the optimizer is not counted.
        log_figures: add greenprint's figures to the Trainer's logs at each ``on_log``.
        **track_options: keyword options of :func:`greenprint.track` (``study``, ``ledger``,
            ``region``, ``pue``, ``params``, ``role``, ``sample_interval_s``, ``meters``...);
            ``parent`` and ``pid`` are set by the callback.

    Raises:
        ConfigError: an invalid option (checked now, as ``gp.track`` would).
        LedgerError: an unusable ledger path, or a closed :class:`~greenprint.Ledger`.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        count_fpo: bool = False,
        log_figures: bool = True,
        **track_options: Any,
    ):
        super().__init__()
        if not isinstance(count_fpo, bool):
            raise ConfigError(f"count_fpo must be True or False, not {count_fpo!r}")
        if not isinstance(log_figures, bool):
            raise ConfigError("log_figures must be True or False")
        self._options = check_run_options(
            track_options, where="GreenprintCallback", name=name, allowed=None
        )
        # a relative ledger path is where the user named it, not in a folder a script moves to
        # before a later training (Hydra's job folders)
        self._options = pin_ledger_option(self._options)
        self._default_ledger = default_ledger()
        guard = BudgetGuard.from_options(self._options, study="")
        warn_fpo_budget_uncounted(guard, count_fpo)
        #: a "stop" budget is set: processes of one training agree on stopping at each step
        self._may_stop = guard is not None and any(b.on_exceed == "stop" for b in guard.budgets)
        self._name = name
        self._count_fpo = count_fpo
        self._fpo: _MicroBatchFPO | None = None  # counts the training's micro-batches
        self._log_figures = log_figures
        self._run: Run | None = None
        self._run_name: str | None = None  # the run's name, without a process's suffix
        self._figures: LiveFigures | None = None
        self._attached: Any = None
        self._state: Any = None  # the TrainerState of the run's training (a new one per train())
        self._in_train = 0  # depth of the wrapped train() calls in progress
        self._searching = 0  # depth of the wrapped hyperparameter_search() calls in progress
        #: the last search's objective (its compute_objective and metric names), for retrains
        self._objective: _Objective | None = None
        #: the last search's best hyper-parameters: a later training with exactly these is its
        #: retrain (role "final", see on_train_begin)
        self._best: dict[str, Any] | None = None
        self._warn = WarnOnce()
        self._resume_path: Any = None  # resume_from_checkpoint of the wrapped train() call
        #: the run the wrapped train() started at its call, until on_train_begin completes it
        self._early_run: Run | None = None
        self._early_trial: Any = None  # that call's trial (None: not a search trial)
        self._evaluation: Run | None = None  # the run of an evaluate/predict outside a training
        self._evaluated: str | None = None  # the run that trained the model it evaluates
        self._evaluated_model: weakref.ref[Any] | None = None  # the model it evaluates
        self._evaluating = 0  # depth of the wrapped evaluate()/predict() calls measured
        self._evaluation_fpo: _ForwardFPO | None = None  # counts its forwards (count_fpo)
        self.last_run_id: str | None = None
        #: The id of the last ``evaluate``/``predict`` run, ``None`` before the first.
        self.last_evaluation_id: str | None = None

    @property
    def run(self) -> Run | None:
        """The run in progress (or the last one), ``None`` before training."""
        return self._run

    # ------------------------------------------------------------------ setup
    def attach(self, trainer: Any) -> GreenprintCallback:
        """Put this callback first in ``trainer``'s callbacks and make its crashes recorded.

        First, so that reporters (W&B, MLflow...) that run after it see greenprint's figures in
        the logs; ``trainer.train`` is wrapped (on this trainer only) so that its run spans the
        whole call, the model's making (``model_init``) included, and an exception ends the
        run ``failed`` (``pruned`` for a pruned search trial) before it propagates,
        ``trainer.hyperparameter_search`` so that each trial records the search's objective
        (``objective`` maximised, ``objective_loss`` minimised; see docs/integrations.md), and
        ``trainer.evaluate`` and ``trainer.predict`` so that one called outside a training is
        measured from its call to its return (its run ``<name>-evaluate``, ``-predict``).

        Args:
            trainer: a ``transformers.Trainer``.

        Returns:
            The callback, for chaining.

        Raises:
            ConfigError: ``trainer`` is not a ``transformers.Trainer``, or this callback is
                attached to another trainer already.
        """
        if not isinstance(trainer, _transformers.Trainer):
            raise ConfigError(
                f"attach() needs a transformers.Trainer, not {type(trainer).__name__}"
            )
        if self._attached is not None and self._attached is not trainer:
            raise ConfigError("this GreenprintCallback is attached to another Trainer already")
        callbacks = trainer.callback_handler.callbacks
        if keep_once(callbacks, self):  # every place, were it listed twice
            callbacks.remove(self)
        callbacks.insert(0, self)
        warn_other_callbacks(trainer.callback_handler, self, stacklevel=3)
        if self._attached is None:
            trainer.train = self._wrap_train(trainer.train)
            trainer.hyperparameter_search = self._wrap_search(trainer.hyperparameter_search)
            trainer.evaluate = self._wrap_evaluation(trainer.evaluate, "evaluate")
            trainer.predict = self._wrap_evaluation(trainer.predict, "predict")
            self._attached = trainer
        return self

    def _wrap_train(self, train: Callable[..., Any]) -> Callable[..., Any]:
        """``trainer.train`` measured from its call to its return (or its exception).

        The run starts at the call (:meth:`_start_at_call`), before the Trainer makes the
        model (``model_init``), sets a search trial's hyper-parameters, builds the data loader
        and the optimizer; ``on_train_begin`` completes it (params, name, data size). It ends
        when ``train`` returns (``finished``) or raises (``failed``, ``interrupted`` for
        Ctrl-C, ``pruned`` for ``TrialPruned``).
        """
        # the trainer whose method this is: after a pickle round trip of the trainer (Ray
        # Tune's workers), the copy's, which the callback's copy is not attached to by name
        owner = getattr(train, "__self__", None)

        @functools.wraps(train)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            trainer = self._owned_by(owner)
            outermost = not self._in_train
            self._in_train += 1
            self._resume_path = kwargs.get("resume_from_checkpoint", args[0] if args else None)
            try:
                if outermost and isinstance(trainer, _transformers.Trainer):
                    trial = kwargs.get("trial", args[1] if len(args) > 1 else None)
                    self._start_at_call(trainer, trial)
                result = train(*args, **kwargs)
            except BaseException as e:
                status, error = status_for(e)
                if status == "finished":  # SystemExit(0) inside train()
                    status, error = "interrupted", f"{type(e).__name__} during training"
                if status == "pruned" and self._run is not None:  # the Optuna backend's pruner
                    searched = getattr(trainer, "_trial", None)
                    if hasattr(searched, "should_prune"):  # an Optuna trial, not Ray's dict
                        self._run._note_pruned(optuna_pruned_notes(searched))
                self._stop_if_running(status, error)
                raise
            finally:
                self._in_train -= 1
            self._stop_if_running("finished", None)
            return result

        return wrapped

    # ------------------------------------------------------------------ hooks
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """Keep this callback once in the new Trainer's callbacks (listed twice: a warning)."""
        self._once_in_callbacks()

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any):
        """Start the run (a search trial is a ``trial``; one meter per node).

        Attached, the wrapped ``train`` started it at its call: here it gets what the Trainer
        has set up since (the trial's hyper-parameters as params, its name, the data size).
        """
        self._once_in_callbacks()
        _check_args(args, state)
        search = bool(getattr(state, "is_hyper_param_search", False))
        early, self._early_run, self._early_trial = self._early_run, None, None
        if early is not None and (early is not self._run or early.status != "running"):
            early = None  # not this training's any more: it starts a run of its own
        if early is None:
            # a run still going here was never ended: its train() raised and was caught
            self._stop_if_running("failed", "training ended without on_train_end (an exception)")
            self._stop_evaluation(
                "failed", "the evaluation ended without its end hook (an exception)"
            )
        options, params = self._run_options(args, starts=early is None)
        name = self._name or _explicit_run_name(args) or type(model).__name__
        if search:
            params.update(plain_params(getattr(state, "trial_params", None) or {}))
            name = getattr(state, "trial_name", None) or _trial_name(self._attached) or name
            if early is None:
                options.setdefault("role", "trial")
            if not self._searching:
                self._warn_once(
                    "objective",
                    "greenprint: the trials of this hyperparameter_search do not record the "
                    "search's objective (the callback sees it when attached: cb.attach(trainer) "
                    "before the search), so `greenprint report` ranks them by the metric they "
                    "logged most (eval_loss, minimised); pass the metric the search optimised "
                    "with --metric and its direction with --mode max|min",
                )
        elif early is None and "role" not in options and self._retrains_best(args):
            options["role"] = "final"  # the retrain with the search's best hyper-parameters
        if options.get("dataset_size") is None:  # E x D x H: the examples it trains on
            size = sized_dataset(kwargs.get("train_dataloader"))
            if size is not None:
                options["dataset_size"] = _within_max_steps(args, size)
        world = _world_size(args)
        local = int(getattr(args, "local_process_index", 0) or 0)
        if early is None:
            run = self._start_run(name, params, options, args)
        else:
            run = early
            self._complete_run(run, name, params, options.get("dataset_size"), args)
        self._run = run
        self._run_name = name  # without a process's suffix: its evaluations' names
        self.last_run_id = run.id
        if early is None or self._figures is None:
            self._figures = LiveFigures(run)
        self._state = state  # the Trainer's state of this training: its later evaluations
        resumed = int(getattr(state, "global_step", 0) or 0) > 0  # a checkpoint's state
        if resumed and getattr(state, "is_world_process_zero", True) and not search:
            self._continue(args, state)
        if search and getattr(state, "is_world_process_zero", True):
            self._continue_retried(run)
        if (world <= 1 or local == 0) and not search and model is not None:
            # its evaluation before this training (trainer.evaluate() before train(); with
            # several processes the node's run, the other processes' runs its parts) is a part
            # of this run (of the node's); a second train() of this model continues the first:
            # under DDP the node's earlier training run (its other processes' runs still its
            # parts) becomes a part of the node's run
            take_waiting_parts(run, model)
            trained_again(run, model, link=not resumed, schedule=_SCHEDULE)
        self._end_fpo()
        if self._count_fpo and model is not None:
            self._fpo = _MicroBatchFPO(model, warn=self._warn_once)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """Write the run's id beside the checkpoint just saved (``greenprint_run.json``).

        A ``trainer.train(resume_from_checkpoint=...)`` from that checkpoint, in a new process,
        reads it and makes this run a ``part`` of the resumed training's run (see the module).
        """
        run = self._run
        if run is None or not run.id or not getattr(state, "is_world_process_zero", True):
            return
        if getattr(state, "is_hyper_param_search", False):
            return  # a trial's checkpoints are under its own folder; a search resumes by trial
        folder = _checkpoint_folder(args, state)
        if folder is None or not os.path.isdir(folder):
            return
        try:
            with open(os.path.join(folder, RUN_FILE), "w", encoding="utf-8") as f:
                json.dump({"run_id": run.id}, f)  # only the id: checkpoints may be shared
        except OSError as e:  # a read-only or full disk must not fail the training
            logger.warning("greenprint: could not write %s beside the checkpoint: %s", RUN_FILE, e)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any):
        """Add greenprint's figures to ``logs`` and copy the numeric logs to the run.

        Not to an evaluation's logs: the Trainer logs the very dict that ``evaluate()`` returns
        and a search's ``compute_objective`` reads (Hugging Face's default objective sums every
        metric but the loss: greenprint's power would become part of it).
        """
        run, figures = self._run, self._figures
        if run is None or figures is None or run.status != "running" or logs is None:
            return
        # an evaluation's logs (eval_*, and its epoch) come through on_evaluate; the rest (loss,
        # learning rate) is copied here. greenprint's figures are the run's own fields, not
        # metrics a report would rank by.
        evaluation = _is_evaluation(logs)
        metrics = {k: v for k, v in metric_values(logs).items() if not k.startswith("eval_")}
        if metrics and not evaluation:
            self._log(run, args, state, control, metrics)
        if self._log_figures and not evaluation:
            refresh(run)
            now = figures.read()
            for key in ("energy_kwh", "emissions_kg", "power_w"):  # none with no energy meter
                if key in now:
                    logs[FIGURE_PREFIX + key] = now[key]

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any):
        """Copy the evaluation metrics to the run.

        An evaluation after the training (``trainer.evaluate()`` once ``train()`` returned, or a
        search trial's, which the Trainer runs when none ran during training) goes to the
        training's ended run, at its last step: the trained model's score; one outside a
        training is also logged on its own run (``<name>-evaluate``, a trial's
        ``<trial>-evaluate``), which this hook ends
        when :meth:`on_prediction_step` started it (not attached). After a search, a training
        of the same trainer also logs the search's objective of each evaluation.
        """
        self._evaluated_with(state, metrics)
        run = self._run
        if run is None or not metrics:
            return
        values = metric_values(metrics)
        searching = bool(getattr(state, "is_hyper_param_search", False))
        if run.status == "running":
            if values:
                self._log(run, args, state, control, values)
            if self._objective is not None and not searching:
                self._objective.log_of(metrics, step=state.global_step)
        elif values and (state is self._state or (searching and self._searching)):
            append_metrics(run, values, step=state.global_step)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any):
        """Copy the metrics of ``trainer.predict()`` (``test_loss``...) to the training's run.

        As an evaluation's: after the training, to its ended run at its last step, and on the
        prediction's own run (``<name>-predict``), which this hook ends when
        :meth:`on_prediction_step` started it.
        """
        self._evaluated_with(state, metrics)
        run = self._run
        if run is None or not metrics or state is not self._state:
            return
        values = metric_values(metrics)
        if run.status == "running":
            if values:
                self._log(run, args, state, control, values)
        elif values:
            append_metrics(run, values, step=state.global_step)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """Start the run of an ``evaluate()``/``predict()`` outside a training, not attached.

        Without :meth:`attach` the callback first hears of an evaluation at the end of its
        first batch: the run starts there (``on_evaluate``/``on_predict`` end it), so it
        misses the time before (the data loader's and the model's preparation, the first
        batch). Attached, the wrapped ``evaluate``/``predict`` measure the whole call.
        """
        evaluation = self._evaluation
        if evaluation is not None and evaluation.status == "running":
            return  # every batch after the first: nothing to do
        self._once_in_callbacks()
        if self._evaluates_alone(state):
            self._start_evaluation(_calling_kind(), args, state, kwargs.get("model"))

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """Add the FPO of the micro-batch just trained (``count_fpo=True``), within a step."""
        self._end_micro_batch()
        self._add_fpo(step_end=False)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """End the count of a step's last micro-batch (``count_fpo=True``) before the optimizer."""
        self._end_micro_batch()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """Add the last micro-batch's FPO; stop training when a ``"stop"`` budget is crossed."""
        self._end_micro_batch()  # a Trainer without on_pre_optimizer_step
        self._add_fpo(step_end=True)
        if not self._may_stop:
            return
        run = self._run
        stop = run is not None and run.status == "running" and run.check_budgets() is not None
        if _world_size(args) > 1:
            stop = _any_process(stop, args)  # every process calls this at every step's end
        if stop:
            _stop_training(args, control)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any):
        """End the run ``finished``; attached, the wrapped ``train`` ends it when it returns.

        ``train`` still waits for a checkpoint's upload to the Hub after this hook. A search
        trial stopped by the pruner reaches ``on_train_end`` just before ``TrialPruned`` is
        raised; with :meth:`attach`, the wrapper sees the exception and ends the run
        ``pruned``. With ``load_best_model_at_end`` the Trainer has just loaded the best
        checkpoint: the metrics of that checkpoint's evaluation are logged again at the last
        step, so that the run's last values (its score in a report) are the kept model's.
        """
        self._add_fpo(step_end=False)
        self._end_fpo()
        run = self._run
        if run is not None and run.status == "running":
            best = _best_evaluation(args, state)
            if best:  # the model train() returns: its evaluation is the run's last
                self._log(run, args, state, control, best)
        if self._in_train:  # attached: the wrapped train() ends it when it returns or raises
            return
        self._stop_if_running("finished", None)

    # ------------------------------------------------------------------ model card
    def create_model_card(self, trainer: Any, **kwargs: Any) -> str:
        """``trainer.create_model_card(**kwargs)``, then the ``co2_eq_emissions`` block of the run.

        Args:
            trainer: the ``transformers.Trainer`` that trained with this callback.
            **kwargs: ``training_type``, ``geographical_location`` and ``hardware_used`` go to
                :func:`model_card_co2`; the rest to ``trainer.create_model_card``
                (``model_name``, ``language``...).

        Returns:
            The path of the model card (``<output_dir>/README.md``).

        Raises:
            ConfigError: ``trainer`` is not a Trainer, or no run was recorded yet.
        """
        if not isinstance(trainer, _transformers.Trainer):
            raise ConfigError(
                f"create_model_card() needs a transformers.Trainer, not {type(trainer).__name__}"
            )
        if self._run is None:
            raise ConfigError("create_model_card(): no run yet; call it after trainer.train()")
        co2 = {key: kwargs.pop(key) for key in _CO2_FIELDS if key in kwargs}
        trainer.create_model_card(**kwargs)
        path = os.path.join(trainer.args.output_dir, "README.md")
        add_co2_to_model_card(path, self._run, **co2)
        return path

    # ------------------------------------------------------------------ internals

    def _log(
        self, run: Run, args: Any, state: Any, control: Any, values: Mapping[str, float]
    ) -> None:
        """``run.log`` the values; a ``"stop"`` budget it finds crossed stops training cleanly.

        With several processes the stop waits for the next step's end, where they agree.
        """
        try:
            run.log(step=state.global_step, **values)
        except BudgetExceeded:  # raised once, after the values were logged (no check yet)
            pass
        if self._may_stop and _world_size(args) <= 1 and run.check_budgets() is not None:
            _stop_training(args, control)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(
            _run=None, _figures=None, _attached=None, _objective=None, _state=None, _fpo=None
        )
        state.update(_evaluation=None, _evaluated=None, _evaluated_model=None, _evaluating=0)
        state.update(_evaluation_fpo=None)
        # a copy is inside no train() call of this process's; _searching is kept: Ray Tune
        # pickles the trainer inside the wrapped search, and its workers' copies run the
        # search's trials (a trial's objective after its train() goes to its ended run)
        state.update(_in_train=0, _early_run=None, _early_trial=None, _resume_path=None)
        return state

    def _warn_once(self, key: str, message: str) -> None:
        self._warn(key, message, stacklevel=5)


# the names re-exported from private modules read as this module's (reprs, help, pickles)
publish(__name__, globals())
