"""Hugging Face Trainer: a callback that records training as a greenprint run.

``pip install 'greenprint[transformers]'``, then::

    from greenprint.integrations.transformers import GreenprintCallback

    cb = GreenprintCallback("bert-ft", study="glue", ledger="gp.db")
    trainer = Trainer(model=model, args=args, train_dataset=train)
    cb.attach(trainer)          # first in the callback list, and crash-safe
    trainer.train()
    cb.create_model_card(trainer)   # README.md with the co2_eq_emissions block

What it records:

* one run per ``trainer.train()``: ``finished``. With ``attach(trainer)``, which wraps that
  trainer's ``train`` method, the run spans the whole call: it starts at the call, before the
  Trainer makes the model (``model_init``: for a real model, its loading from disk and onto the
  GPU), sets a search trial's hyper-parameters, frees memory (a garbage collection, 0.2 s in a
  process holding torch and transformers) and builds the data loader and the optimizer, and
  ends when ``train`` returns (or raises). Without ``attach`` the callback hears of a training
  only at ``on_train_begin`` and of its end at ``on_train_end``: the run misses that time
  (in a 3-trial tiny-BERT search, 2.7 % of the search's wall time was in the trials' runs, 35 %
  attached). The Trainer has no exception hook, so a crash is caught two ways: the wrapped
  ``train`` ends the run ``failed`` (``interrupted`` for Ctrl-C, ``pruned`` for
  ``TrialPruned``) before re-raising, a ``model_init`` that raises included; without
  ``attach``, an exception that ends the program still ends the run ``failed`` through
  greenprint's own ``sys.excepthook`` (an exception caught by your code would leave the run to
  end ``finished`` at exit, and one raised before ``on_train_begin`` leaves no run, hence
  ``attach``);
* at every ``on_log``, ``greenprint/energy_kwh``, ``greenprint/emissions_kg`` (totals so far) and
  ``greenprint/power_w`` (mean over the last half second or more) are added to the logs dict
  (not to an evaluation's, which is the metrics dict ``evaluate()`` returns and a search's
  objective is computed from), and the numeric logs (loss, learning rate...) are copied to the
  run (greenprint's figures are
  the run's own fields, not metrics). Callbacks run in list order and
  the Trainer puts its reporters (W&B, MLflow, TensorBoard) before yours, so ``attach(trainer)``
  moves this callback first for those reporters to see the figures;
* the metrics of each ``on_evaluate``, into the run, and those of the trainer's evaluations
  after ``train()`` returned (``trainer.evaluate()``, ``trainer.predict()``'s ``test_*``), into
  the ended run at its last step; with ``load_best_model_at_end``, the best
  checkpoint's evaluation again at the end of training, so that the run's last values are those
  of the model ``train()`` returns (and the params ``load_best_model_at_end`` and
  ``metric_for_best_model``); a value that is not finite is logged as NaN (no score);
* each ``trainer.evaluate()`` and ``trainer.predict()`` outside a training as a run of its own,
  ``<name>-evaluate`` (``-predict``), with the training's params and the call's metrics, so
  that the study's price tag counts what evaluating cost (as Lightning's ``validate``/``test``/
  ``predict``). Of the model a known run trained (this trainer's last training, else the last
  training of that model object in this process) it is a ``part`` of that run, recorded
  ``contained`` false (it ran after it, outside its measurement: the price tag adds it once);
  else a top-level ``part`` (counted, never a trial), or the role given to the callback when
  that is ``final`` or ``baseline`` (an evaluation's), and the next ``train()`` of that model
  object in this process takes it as its part (the untrained model evaluated first). Inside a
  run of yours, a part of that run. Attached, the wrapped ``evaluate``/``predict`` measure the
  whole call; not attached, the run starts at the end of the first evaluation batch
  (``on_prediction_step``) and ends at ``on_evaluate``/``on_predict``: it misses the time
  before (the data loader's and the model's preparation, the first batch), and one that
  raises ends ``failed`` at the next evaluation or training of the callback, or when the
  program ends (``failed`` when that exception ends it). An
  evaluation inside ``train()`` is in the training's run. In ``trainer.hyperparameter_search``
  with no evaluation during a trial's training, the search evaluates the trial after its
  ``train()`` to compute its objective: that evaluation is ``<trial>-evaluate``, a ``part`` of
  the trial's run (``contained`` false), with the trial's params: the trial's cost includes
  its objective's, and the search keeps its trials. With several processes, one meter per node
  as for training: the node's local process 0 records the evaluation's run (the launcher's
  process tree), each other process a part of it with no energy of its own
  (``<name>-evaluate-rank<k>``); an evaluation before the training is then a part of the
  node's training run (``eval_on_start=True`` evaluates inside ``train()``: in its run);
* with ``count_fpo=True``, the FPO of the training (``run.fpo``): the forward and backward of
  each micro-batch trained (each micro-batch of a gradient accumulation; the gradient clipping
  and the optimizer are not counted, as for Lightning), as :func:`greenprint.count_fpo` counts
  the model's forward and the backward of what it computed. Counted live: a forward pre-hook on
  the model sees each training micro-batch; at the first of each input shape (and of whether
  each ``*mask*`` input pads) an :class:`~greenprint.FPOCounter` is entered, and it counts
  until that micro-batch's backward is done, so nothing runs twice (the counter's dispatch
  overhead on that micro-batch is the whole cost); later micro-batches of the shape take its
  count, so padded batches of different lengths are each counted as they ran. Evaluation
  forwards are not counted; a training that raises inside a counted micro-batch leaves the
  counter (with :meth:`~GreenprintCallback.attach`, else at the next ``train()``). In several
  processes each counts its own micro-batches; collectives count 0. An op with no rule makes
  the FPO a lower bound (the run's provenance says so); a count whose rule fails, and a model
  compiled (``torch_compile``) or copied onto several GPUs of one process (the hook sees no
  training forward): a warning, and the run keeps no FPO;
* the run's params: learning rate, batch size, epochs (``num_train_epochs``) or, when it is
  set and so overrides them, ``max_steps``, seed, weight decay, gradient accumulation, and
  your ``params``;
* ``trainer.hyperparameter_search``: each trial is its own run, ``role="trial"``, named after
  the trial (``hp_name``, else ``trial-<number>`` with ``attach``), with the trial's
  hyper-parameters as params; with ``attach``, a trial the Optuna pruner stops ends ``pruned``
  and one that raises ends ``failed``, and each value of the search's objective (what
  ``compute_objective`` returned, as the Trainer reports it to the search) is logged on the
  trial as the metric ``objective`` when the search maximised it, ``objective_loss`` when it
  minimised it (``direction``; several directions: ``objective_0``, ``objective_1_loss``...).
  ``greenprint report`` ranks by that metric (its name says the direction) before the
  evaluation metrics logged as often; later trainings of the same trainer (the retrain with
  the best hyper-parameters) log the objective of their evaluations too, so they rank with the
  trials. A later training whose ``args`` hold exactly the search's best hyper-parameters (Hugging
  Face's recipe: each of ``best.hyperparameters`` set on ``trainer.args``, then
  ``trainer.train()``), with no run of yours around it and no ``role`` given, is the retrain:
  ``role="final"``, not one more trial. Without ``attach`` the callback cannot see the
  objective, and warns. What the search does between its trials' ``train()`` calls is in no
  trial: after each trial's objective, Hugging Face releases the trial's model and memory (two
  garbage collections: most of a small search's time), then Optuna's sampler and storage
  pick the next trial. Run the search inside ``gp.track(..., role="sweep")`` (the trials
  become its children, the price tag counts it once) to measure the whole search: 99.7 % of
  the wall time in the 3-trial search above. Ray Tune's backend pickles the trainer with
  its callbacks and its wrapped methods: each worker's copy of the callback is attached to
  its copy of the trainer and records the worker's trial the same way.

Budgets (``budget_kwh``, ``budget_kg``, ``budget_fpo`` with ``count_fpo=True``, ``budget_s``,
``budget=gp.Budget(...)``): with ``on_exceed="stop"`` the callback stops training the way
Hugging Face's own ``EarlyStoppingCallback`` does, ``control.should_training_stop = True``, at
the end of the optimizer step in which the limit was found crossed (checked at every step's
end, log and evaluation; a micro-batch of a gradient accumulation that crosses an FPO budget
stops training after that step's last micro-batch); with
``save_strategy`` ``"steps"`` or ``"epoch"`` that step is saved as a checkpoint too.
``trainer.train()`` then returns normally, the model trained so far in ``trainer.model``, and the
run ends ``interrupted`` with ``"BudgetExceeded: <reason>"`` as its error: no exception reaches
your code. ``"warn"`` only warns (once) and a callable is called; training goes on. With several
processes they decide together at every step's end (one all-reduce of a flag, only when a
``"stop"`` budget is set): any process over its budget stops them all at the same step, so
none is left waiting for the others.

Training resumed from a checkpoint (``trainer.train(resume_from_checkpoint=...)`` after a crash,
in a new process or not) is one training: the callback writes ``greenprint_run.json`` (the
run's id) into each checkpoint folder saved (``output_dir/checkpoint-<step>``, main process,
not search trials), and the resumed run takes that run as a ``part``, with its status, error
and cost (``interrupted`` if its process died without a last write), recorded ``contained``
false (it ran before: the price tag adds it once); never a second trial. No such file, or a run
not in this ledger or study: the resumed run is one of its own, as before (a debug log says).

Inside ``trainer.hyperparameter_search`` (Optuna), an attached callback puts each trial's run
id on the Optuna trial (user attribute ``greenprint_run_id``, when the trial starts). The
Trainer never resumes a trial from its checkpoint: a search killed in the middle of a trial
and run again on the same storage (``storage=..., load_if_exists=True``) leaves the killed
trial ``RUNNING`` in Optuna and its run ``interrupted`` (SIGTERM, Ctrl-C) or ``lost``
(``kill -9``) with its cost, one trial each, as Optuna counts them. With Optuna's
``RetryFailedTrialCallback`` on a heartbeat storage, the killed trial is retried as a new trial
with its params (and its user attributes): that trial's run takes the killed attempt's run as
a ``part`` (``interrupted`` if it was ``lost``, its cost added once), one configuration one
trial, where Optuna lists the killed attempt ``FAIL`` and the retry as another trial.

A second ``trainer.train()`` of the same model object in this process (two-stage fine-tuning: a
new Trainer on the model the first trained) trains the weights the first left: its run takes
the earlier training's run as a ``part`` (``contained`` false), one training, not a trial per
stage: top-level runs of one study and of one name and of your own ``params`` (the
``TrainingArguments``, a fine-tune's other learning rate, epochs, seed or output folder, left
out: how it trains, not what), no role given (or the same ``trial``, ``final`` or
``baseline`` given to both), no search (a ``model_init`` makes a new model
each time: a training of its own). A loop that re-uses one model object across learning
rates continues one training, as the weights do. With several processes
(``torchrun``, ``accelerate launch``) the same on each node: the node's earlier training run,
its other processes' runs still its parts, becomes a part of the node's later training run.

The model card gets ``co2_eq_emissions`` (in grams, as the Hugging Face Hub wants) through
:meth:`GreenprintCallback.create_model_card`, or :func:`model_card_co2` for any run.

Multi-process training (``torchrun``, ``accelerate launch``): one meter per node, as for
Lightning: the node's local process 0 attributes the energy of the launcher's process tree, and
the other processes record parts of its run (no energy of their own). The same for an
``evaluate()``/``predict()`` outside training, which every process runs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import math
import os
import socket
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._budget import BudgetGuard
from greenprint._exceptions import BudgetExceeded, ConfigError, GreenprintError
from greenprint._imports import require
from greenprint._lifecycle import status_for
from greenprint._units import kg_to_g
from greenprint.integrations._common import (
    WarnOnce,
    check_run_options,
    sized_dataset,
    warn_fpo_budget_uncounted,
)
from greenprint.integrations._dl import (
    FIGURE_PREFIX,
    LiveFigures,
    NoMeters,
    append_metrics,
    continue_from,
    end_evaluation,
    last_training,
    metric_values,
    plain_params,
    refresh,
    role_inside,
    share_node_run_id,
    take_waiting_parts,
    trained_again,
    trained_run,
    weak_ref,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._records import RunRecord
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run

__all__ = ["GreenprintCallback", "add_co2_to_model_card", "model_card_co2"]

logger = logging.getLogger(__name__)

_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)

#: The file beside each checkpoint that names the run that saved it (``{"run_id": ...}``).
RUN_FILE = "greenprint_run.json"

#: Fields of the co2_eq_emissions block that a caller may give.
_CO2_FIELDS = ("training_type", "geographical_location", "hardware_used")

#: TrainingArguments recorded as run params.
_ARGS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "seed",
)

#: The params that set how a training runs, not the model's configuration: every
#: TrainingArguments field (those recorded above, ``load_best_model_at_end``, and any of your
#: ``params`` named as one). A later training of the same model that differs only in them (a
#: fine-tune at another learning rate, for other epochs, into another folder) continues the
#: earlier one (:func:`~greenprint.integrations._dl.trained_again`).
_SCHEDULE = frozenset(field.name for field in dataclasses.fields(_transformers.TrainingArguments))


class GreenprintCallback(_transformers.TrainerCallback):  # type: ignore[misc,name-defined]
    """Record ``Trainer.train`` as a greenprint run (see the module docstring).

    Args:
        name: the run's name (default: ``args.run_name`` when you set it, else the model's
            class name; a search trial is named after the trial).
        count_fpo: count the FPO (floating-point operations) of each micro-batch trained,
            forward and backward, live as it trains, once per input shape, and add them to the
            run (see the module docstring); the optimizer is not counted.
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
        (``objective`` maximised, ``objective_loss`` minimised; see the module docstring), and
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
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
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
                self._stop_if_running(status, error)
                raise
            finally:
                self._in_train -= 1
            self._stop_if_running("finished", None)
            return result

        return wrapped

    def _wrap_evaluation(self, method: Callable[..., Any], kind: str) -> Callable[..., Any]:
        """``trainer.evaluate`` (``predict``) measured as a run of its own outside a training.

        Inside a training (an evaluation strategy's), a search, or an evaluation measured
        already (``evaluate`` calls itself once per dataset of a dict), it is called as is.
        """
        owner = getattr(method, "__self__", None)  # the trainer (a pickled trainer's copy's)

        @functools.wraps(method)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            trainer = self._owned_by(owner)
            state = getattr(trainer, "state", None)
            if trainer is None or not self._evaluates_alone(state):
                return method(*args, **kwargs)
            self._start_evaluation(kind, trainer.args, state, trainer.model)
            self._evaluating += 1
            try:
                result = method(*args, **kwargs)
            except BaseException as e:
                status, error = status_for(e)
                if status == "finished":  # SystemExit(0) inside evaluate()
                    status, error = "interrupted", f"{type(e).__name__} during trainer.{kind}()"
                self._stop_evaluation(status, error)
                raise
            finally:
                self._evaluating -= 1
            self._stop_evaluation("finished", None)
            return result

        return wrapped

    def _owned_by(self, owner: Any) -> Any:
        """The trainer this callback is attached to, for a wrapper of ``owner``'s method.

        A copy of an attached trainer (pickled with its callbacks, as Ray Tune sends it to its
        workers) holds the wrapped methods and a copy of this callback, whose copy forgot the
        trainer (:meth:`__getstate__`): its wrapped methods attach it to their trainer again.
        """
        if self._attached is None and isinstance(owner, _transformers.Trainer):
            self._attached = owner
        return self._attached

    def _wrap_search(self, search: Callable[..., Any]) -> Callable[..., Any]:
        """``hyperparameter_search`` with a ``compute_objective`` that logs each value."""
        signature = inspect.signature(search)

        @functools.wraps(search)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:  # the Trainer's own error, from the Trainer
                return search(*args, **kwargs)
            names = _objective_names(bound.arguments.get("direction", "minimize"))
            if names is None:  # a direction the Trainer refuses: its error, from the Trainer
                return search(*args, **kwargs)
            compute = bound.arguments.get("compute_objective") or _default_objective()
            objective = _Objective(self, compute, names)
            bound.arguments["compute_objective"] = objective
            self._objective = objective
            self._searching += 1
            try:
                found = search(*bound.args, **bound.kwargs)
            finally:
                self._searching -= 1
            self._best = _best_hyperparameters(found)
            return found

        return wrapped

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any):
        """Start the run (a search trial is a ``trial``; one meter per node).

        Attached, the wrapped ``train`` started it at its call: here it gets what the Trainer
        has set up since (the trial's hyper-parameters as params, its name, the data size).
        """
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

    def _run_options(self, args: Any, *, starts: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ``track`` options and the params of a training's run, from its arguments.

        ``starts``: for a run that starts now (``False``: one started at the ``train`` call,
        whose role is set already).
        """
        options = dict(self._options)
        if not starts:
            options.pop("role", None)
        params = _args_params(args)
        if getattr(args, "load_best_model_at_end", False):  # the run is scored as kept
            params["load_best_model_at_end"] = True
            params["metric_for_best_model"] = _best_metric_key(args)
        params.update(options.pop("params", None) or {})
        return options, params

    def _start_run(
        self, name: str, params: dict[str, Any], options: dict[str, Any], args: Any
    ) -> Run:
        """Start a training's run: one meter per node, the node's other processes its parts.

        Every process must call it with several processes (an exchange of the node's run id).
        """
        from greenprint.tracking import track

        world = _world_size(args)
        local = int(getattr(args, "local_process_index", 0) or 0)
        role = role_inside(options)  # a training inside a trial's run is its part, said
        if role is not None:
            options = {**options, "role": role}
        if world <= 1:
            return track(name, params=params, **options).start()
        if local == 0:
            run = track(name, params=params, pid=os.getppid(), **options).start()
            share_node_run_id(socket.gethostname(), 0, run.id)
            return run
        return _start_rank_part(name, args, local, params, options)

    def _start_at_call(self, trainer: Any, trial: Any) -> None:
        """Start the run of an attached trainer's ``train`` call, at the call.

        The Trainer makes the model (``model_init``: for a real model, its loading from disk and
        onto the GPU), sets a search trial's hyper-parameters (``_hp_search_setup``), frees
        memory (a garbage collection), builds the data loader and the optimizer before it
        calls ``on_train_begin``: that time and energy are the training's. What is known now
        is recorded now: the name (a search trial's ``trial-<number>``; your ``hp_name``'s
        and a ``model_init`` model's class are set at ``on_train_begin``), the role, and the
        params outside a search (a trial's are set at ``on_train_begin``, once the Trainer
        has set them). A training that raises before ``on_train_begin`` ends ``failed`` with
        what was known (a trial's params that Optuna suggested by then).
        """
        self._stop_if_running("failed", "training ended without on_train_end (an exception)")
        self._stop_evaluation("failed", "the evaluation ended without its end hook (an exception)")
        args = trainer.args
        if not isinstance(args, _transformers.TrainingArguments):
            return  # on_train_begin says so (ConfigError), as without attach
        search = trial is not None
        options, params = self._run_options(args, starts=True)
        model = getattr(trainer, "model", None)
        name = self._name or _explicit_run_name(args)
        name = name or (type(model).__name__ if model is not None else "training")
        if search:
            params = plain_params(self._options.get("params") or {})  # args: the last trial's
            name = _trial_name_of(trial) or name
            options.setdefault("role", "trial")
        elif "role" not in options and self._retrains_best(args):
            options["role"] = "final"  # the retrain with the search's best hyper-parameters
        run = self._start_run(name, params, options, args)
        self._run = self._early_run = run
        self._early_trial = trial
        self._run_name = name
        self.last_run_id = run.id
        self._figures = LiveFigures(run)  # its power since the run began

    def _complete_run(
        self,
        run: Run,
        name: str,
        params: dict[str, Any],
        dataset_size: int | None,
        args: Any,
    ) -> None:
        """Record on a run started at the ``train`` call what ``on_train_begin`` knows."""
        fields: dict[str, Any] = {"params": params}
        if dataset_size is not None:
            fields["dataset_size"] = dataset_size
        run.set(**fields)  # checked as track(params=...) checks them at on_train_begin
        local = int(getattr(args, "local_process_index", 0) or 0)
        if _world_size(args) > 1 and local != 0:
            name = f"{name}-rank{getattr(args, 'process_index', local)}"
        _rename(run, name)

    def _retrains_best(self, args: Any) -> bool:
        """Whether a training outside a search is the retrain of the last search's best.

        Hugging Face's own recipe after ``best = trainer.hyperparameter_search(...)``: each of
        ``best.hyperparameters`` set on ``trainer.args``, then ``trainer.train()``. A training
        of the attached trainer whose arguments hold exactly those values (all of them), with
        no run of this process around it (a run you opened, ``role="final"`` or not, says what
        it is), is the model the search chose: role ``final``, not one more trial.
        """
        from greenprint.tracking import active_runs

        best = self._best
        if not best or next(active_runs(), None) is not None:
            return False
        missing = object()
        return all(_same_value(getattr(args, key, missing), value) for key, value in best.items())

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
            logs[FIGURE_PREFIX + "energy_kwh"] = now["energy_kwh"]
            logs[FIGURE_PREFIX + "emissions_kg"] = now["emissions_kg"]
            logs[FIGURE_PREFIX + "power_w"] = now["power_w"]

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
    def _continue(self, args: Any, state: Any) -> None:
        """Make the run of the checkpoint's training a part of this run (a resumed training)."""
        # the checkpoint given by its path, else (resume_from_checkpoint=True) the latest in
        # output_dir; never output_dir's of the same step for a path given: another training's
        if isinstance(self._resume_path, (str, os.PathLike)):
            folder: str | None = os.fspath(self._resume_path)
        else:
            folder = _checkpoint_folder(args, state)
        if folder is None:
            return
        try:
            with open(os.path.join(folder, RUN_FILE), encoding="utf-8") as f:
                earlier = json.load(f).get("run_id")
        except (OSError, ValueError, AttributeError) as e:
            logger.debug("greenprint: no run id read beside checkpoint %s: %s", folder, e)
            return
        if self._run is not None:
            continue_from(self._run, earlier, how="trainer.train(resume_from_checkpoint=...)")

    def _continue_retried(self, run: Run) -> None:
        """Link an Optuna trial retried after a kill to its earlier attempt's run; name the run.

        The trial gets the user attribute ``greenprint_run_id`` (this run's id, stored when the
        trial starts, so a trial whose process is killed names its run). Optuna's
        ``RetryFailedTrialCallback`` (``RetryHeartbeatStaleTrialCallback``) retries a trial
        whose heartbeat stopped as a new trial with its params and user attributes and the
        system attribute ``failed_trial``: the run id it inherited is the earlier attempt's,
        which becomes a ``part`` of this run (one configuration, one trial; see
        :func:`continue_from`). Only for an attached trainer (the callback sees its trial).
        """
        trial = getattr(self._attached, "_trial", None)
        set_user_attr = getattr(trial, "set_user_attr", None)
        if not callable(set_user_attr) or not run.id:
            return  # not attached, or a Ray Tune trial's dict
        users = getattr(trial, "user_attrs", None)
        earlier = users.get(RUN_ID_ATTR) if isinstance(users, Mapping) else None
        retried = _retried_trial(trial) if earlier is not None else None
        if retried is not None:
            number = getattr(trial, "number", "?")
            continue_from(
                run,
                earlier,
                how=f"Optuna's retry of trial {retried} (trial {number})",
                resumed="ran it again",
            )
        set_user_attr(RUN_ID_ATTR, run.id)

    def _stop_if_running(self, status: str, error: str | None) -> None:
        self._end_fpo()
        run = self._run
        early, trial = self._early_run, self._early_trial
        self._early_run = self._early_trial = None
        if run is None or run.status != "running":
            return
        if early is run and trial is not None:  # a trial that ended before on_train_begin
            suggested = _suggested_params(trial)
            if suggested:
                try:
                    run.set(params=suggested)
                except ConfigError:  # pragma: no cover - Optuna's params are plain values
                    pass
        run.stop(status=status, error=error)

    def _evaluates_alone(self, state: Any) -> bool:
        """Whether an evaluation starting now is outside any training (its own run).

        Not inside ``train()`` (an evaluation strategy's: in the training's run), nor inside an
        evaluation measured already. Inside a search, only the evaluation the search runs
        after a trial's training to compute its objective (:meth:`_searched_trial`).
        """
        if self._in_train or self._evaluating:
            return False
        searching = self._searching or getattr(state, "is_hyper_param_search", False)
        if searching and self._searched_trial(state) is None:
            return False  # before the search's first trial (the Trainer evaluates none there)
        for run in (self._run, self._evaluation):
            if run is not None and run.status == "running":
                return False
        return True

    def _searched_trial(self, state: Any) -> Run | None:
        """The ended run of the search trial whose objective an evaluation now computes.

        With no evaluation during a trial's training, Hugging Face's search objective
        (``run_hp_search_optuna``'s, Ray's) calls ``trainer.evaluate()`` once ``train()``
        returned, on the trial's ``TrainerState``: that evaluation is the trial's (its cost a
        part of the trial's run). ``None`` outside a search's trial.
        """
        run = self._run
        if not getattr(state, "is_hyper_param_search", False) or state is not self._state:
            return None
        if run is None or run.status == "running":
            return None
        return run

    def _start_evaluation(self, kind: str, args: Any, state: Any, model: Any) -> None:
        """Start the run of a ``trainer.evaluate()``/``predict()`` outside a training.

        Named ``<name>-evaluate`` (``-predict``), with the training's params; role ``part``
        (``final`` or ``baseline`` given to the callback for an evaluation: the reported or a
        reference model's score). A search trial's objective evaluation is
        ``<trial>-evaluate``, with the trial's params, a ``part`` whatever role was given. With
        several processes, one meter per node as for training: the node's local process 0
        attributes the launcher's process tree, the others record parts of its run
        (``<name>-evaluate-rank<k>``, no energy of their own); every process must call this
        (an exchange of the node's run id), as every process runs the evaluation loop. A run
        that cannot start is a warning, never an error in the evaluation.
        """
        from greenprint.tracking import track

        self._stop_evaluation("failed", "a new evaluation started before this one ended")
        options = dict(self._options)
        given = options.pop("role", None)
        options.pop("dataset_size", None)  # the training set's size: not what this runs on
        params = _args_params(args) if isinstance(args, _transformers.TrainingArguments) else {}
        params.update(options.pop("params", None) or {})
        base = self._name or _explicit_run_name(args) or type(model).__name__
        role = given if kind == "evaluate" and given in ("final", "baseline") else "part"
        trial = self._searched_trial(state)
        if trial is not None:  # the search's evaluation of a trial: a part of the trial
            base, role = self._run_name or trial.name, "part"
            params = trial.params
        name = f"{base}-{kind}"
        world = _world_size(args)
        local = int(getattr(args, "local_process_index", 0) or 0)
        try:
            if world <= 1:
                run = track(name, params=params, role=role, **options).start()
            elif local == 0:  # one meter per node, as the training's
                node_run: Run | None = None
                try:
                    node_run = track(
                        name, params=params, role=role, pid=os.getppid(), **options
                    ).start()
                finally:  # every process takes part in the exchange, a run started or not
                    share_node_run_id(socket.gethostname(), 0, node_run.id if node_run else None)
                run = node_run
            else:
                run = _start_rank_part(name, args, local, params, options)
        except GreenprintError as e:  # never stop the user's evaluation
            logger.warning("greenprint: could not start the run of trainer.%s(): %s", kind, e)
            return
        self._evaluation = run
        self._evaluated = self._trained_by(run, state, model)
        self._evaluated_model = weak_ref(model)
        self.last_evaluation_id = run.id

    def _evaluated_with(self, state: Any, metrics: Any) -> None:
        """Log an evaluation's metrics on its own run; end it when no wrapper will."""
        run = self._evaluation
        if run is None or run.status != "running":
            return
        values = metric_values(metrics) if isinstance(metrics, Mapping) else {}
        if values:
            try:
                run.log(step=getattr(state, "global_step", None), **values)
            except BudgetExceeded:  # a "stop" budget: the evaluation is over anyway
                pass
        if not self._evaluating:  # started by on_prediction_step: this is its end
            self._stop_evaluation("finished", None)

    def _stop_evaluation(self, status: str, error: str | None) -> None:
        """End the evaluation's run; of a model a known run trained, it becomes its part.

        One of no known training, with role ``part``, waits for the next ``train()`` of its
        model object in this process, which takes it as its part (see :func:`end_evaluation`).
        """
        run, trained_by = self._evaluation, self._evaluated
        model = self._evaluated_model() if self._evaluated_model is not None else None
        self._evaluation = self._evaluated = self._evaluated_model = None
        end_evaluation(run, status, error, trained_by=trained_by, model=model)

    def _trained_by(self, run: Run, state: Any, model: Any) -> str | None:
        """The id of the run that trained the model ``run`` evaluates, if known.

        This callback's last training, when the evaluating trainer's state is that training's
        (the same trainer, no training since), else the last training of this model object in
        this process (any trainer). See :func:`~greenprint.integrations._dl.trained_run`.
        """
        candidates: list[str | None] = []
        if self._run is not None and state is not None and state is self._state:
            candidates.append(self._run.id)
        candidates.append(last_training(model))
        return trained_run(run, candidates)

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
        # a copy is inside no train() call of this process's; _searching is kept: Ray Tune
        # pickles the trainer inside the wrapped search, and its workers' copies run the
        # search's trials (a trial's objective after its train() goes to its ended run)
        state.update(_in_train=0, _early_run=None, _early_trial=None, _resume_path=None)
        return state

    def _warn_once(self, key: str, message: str) -> None:
        self._warn(key, message, stacklevel=5)

    def _log_objective(self, values: Mapping[str, float], step: int | None) -> None:
        """Log the objective's values on the run (appended to its record once it has ended)."""
        run = self._run
        if run is None:
            return
        if run.status == "running":
            try:
                run.log(step=step, **values)
            except BudgetExceeded:  # raised once, after the values were logged
                pass
        elif self._searching:  # the trial's evaluation after its training
            append_metrics(run, values, step=step)


class _Objective:
    """A search's ``compute_objective`` that logs each value on the callback's run.

    The Trainer calls it in place of yours (or Hugging Face's default): it returns what that
    returns, unchanged, and logs it under the name its direction gives (:func:`_objective_names`).
    """

    def __init__(
        self, callback: GreenprintCallback, compute: Callable[..., Any], names: tuple[str, ...]
    ) -> None:
        self.callback = callback
        self.compute = compute
        self.names = names

    def __call__(self, metrics: dict[str, float]) -> Any:
        value = self.compute(metrics)
        named = self.named(value)
        if named:
            state = getattr(self.callback._attached, "state", None)
            self.callback._log_objective(named, getattr(state, "global_step", None))
        return value

    def named(self, value: Any) -> dict[str, float]:
        """``{name: value}`` for each finite objective value (``{}`` when they are no numbers)."""
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(values) != len(self.names):
            return {}
        named: dict[str, float] = {}
        for name, v in zip(self.names, values, strict=True):
            try:
                number = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                named[name] = number
        return named

    def log_of(self, metrics: Mapping[str, Any], *, step: int | None) -> None:
        """Log the objective of a later training's evaluation (the retrain after a search).

        Your ``compute_objective`` is called on a copy of ``metrics``, as the Trainer calls it.
        This call is greenprint's, not the Trainer's, so it must not stop the training: if it
        raises (an evaluation with other metrics than the search's), a warning says so and the
        objective is not logged.
        """
        try:
            value = self.compute(dict(metrics))
        except Exception as e:  # your function, on metrics the search never saw
            self.callback._warn_once(
                "retrain-objective",
                "greenprint: the search's compute_objective failed on this evaluation's metrics "
                f"({type(e).__name__}: {e}); the objective of this training is not logged",
            )
            return
        named = self.named(value)
        if named:
            self.callback._log_objective(named, step)


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


def _default_objective() -> Callable[[dict[str, float]], Any]:
    """Hugging Face's ``default_compute_objective`` (what the Trainer takes for ``None``)."""
    return _transformers.trainer_utils.default_compute_objective  # type: ignore[no-any-return]


def _objective_names(direction: Any) -> tuple[str, ...] | None:
    """The metric names of a search's objective values, by direction.

    ``objective`` when it is maximised, ``objective_loss`` when minimised (a name that
    ``greenprint report`` minimises: the report learns a metric's direction from its name);
    with several directions, ``objective_<k>`` and ``objective_<k>_loss``. ``None`` for a
    direction that is neither ``"maximize"`` nor ``"minimize"`` (Optuna's ``StudyDirection``
    read by its name).
    """
    many = isinstance(direction, (list, tuple))
    directions = list(direction) if many else [direction]
    names = []
    for k, d in enumerate(directions):
        word = str(getattr(d, "name", d)).lower()
        if word not in ("maximize", "minimize"):
            return None
        base = f"objective_{k}" if many else "objective"
        names.append(base if word == "maximize" else f"{base}_loss")
    return tuple(names) or None


def model_card_co2(
    run: Run | RunRecord,
    *,
    training_type: str | None = None,
    geographical_location: str | None = None,
    hardware_used: str | None = None,
) -> dict[str, Any]:
    """The ``co2_eq_emissions`` block of a Hugging Face model card for ``run``.

    Args:
        run: a finished :class:`~greenprint.Run` or a :class:`~greenprint.RunRecord`.
        training_type: ``"pre-training"`` or ``"fine-tuning"``, when you say so.
        geographical_location: where it ran (default: the intensity source, e.g.
            ``"table:DE:2023"``).
        hardware_used: what it ran on (default: from the run's hardware record).

    Returns:
        ``{"emissions": grams CO2-eq, "source": "greenprint ...", ...}``; emissions in grams,
        as the Hub's metadata wants, rounded to 6 significant digits.

    Raises:
        ConfigError: ``run`` is neither a run nor a run record.
    """
    from greenprint._records import RunRecord
    from greenprint.tracking import Run

    if isinstance(run, Run):
        record = run.record
    elif isinstance(run, RunRecord):
        record = run
    else:
        raise ConfigError(f"model_card_co2 needs a Run or RunRecord, not {type(run).__name__}")
    grams = kg_to_g(record.emissions_kg or 0.0)
    block: dict[str, Any] = {
        "emissions": float(f"{grams:.6g}"),
        "source": f"greenprint {record.greenprint_version}, run {record.id}",
    }
    if training_type is not None:
        block["training_type"] = training_type
    # the intensity source names the grid row ("table:DE:2023"); its note is not a place
    location = geographical_location or (record.intensity_source or "").split(" (")[0]
    if location:
        block["geographical_location"] = location
    hardware = hardware_used or _hardware_text(record.hardware)
    if hardware:
        block["hardware_used"] = hardware
    return block


def add_co2_to_model_card(
    path: str | os.PathLike[str], run: Run | RunRecord, **fields: Any
) -> None:
    """Write ``run``'s ``co2_eq_emissions`` block into the model card (README.md) at ``path``.

    The card's other metadata and text are kept; an existing block is replaced.

    Args:
        path: the model card file (``<output_dir>/README.md``); it must exist.
        run: the run that trained the model.
        **fields: ``training_type``, ``geographical_location``, ``hardware_used``, as for
            :func:`model_card_co2`.

    Raises:
        ConfigError: no file at ``path``, or a bad ``run``.
    """
    hub = require("huggingface_hub", extra="transformers", purpose=_PURPOSE)
    if not os.path.isfile(path):
        raise ConfigError(f"no model card at {os.fspath(path)!r}; create it first")
    block = model_card_co2(run, **fields)
    card = hub.ModelCard.load(path)
    card.data.co2_eq_emissions = block
    card.save(path)


def _hardware_text(hardware: Mapping[str, Any] | None) -> str:
    if not hardware:
        return ""
    parts = []
    cpu = hardware.get("cpu_model") or hardware.get("cpu")
    if isinstance(cpu, str) and cpu:
        parts.append(cpu)
    gpus = hardware.get("gpus")
    if isinstance(gpus, (list, tuple)) and gpus:
        names = [g.get("name", "GPU") if isinstance(g, Mapping) else str(g) for g in gpus]
        parts.append(f"{len(names)} x {names[0]}")
    return ", ".join(parts)


def _args_params(args: Any) -> dict[str, Any]:
    """The TrainingArguments recorded as a run's params (:data:`_ARGS`).

    The Trainer trains ``max_steps`` optimizer steps when it is set (> 0) and then ignores
    ``num_train_epochs``; else it trains ``num_train_epochs`` (``max_steps`` -1): the one that
    rules is kept.
    """
    params = plain_params({key: getattr(args, key, None) for key in _ARGS})
    steps = getattr(args, "max_steps", -1)
    if isinstance(steps, int) and steps > 0:
        params.pop("num_train_epochs", None)
    else:
        params.pop("max_steps", None)
    return params


def _calling_kind() -> str:
    """``"predict"`` inside a ``Trainer.predict`` call, else ``"evaluate"``.

    The nearest caller's frame that is a Trainer's ``evaluate`` or ``predict`` (a subclass's
    too) says which: ``on_prediction_step`` does not (both run the same evaluation loop).
    """
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_name
        if name in ("evaluate", "predict") and isinstance(
            frame.f_locals.get("self"), _transformers.Trainer
        ):
            return name
        frame = frame.f_back  # type: ignore[assignment]
    return "evaluate"


def _within_max_steps(args: Any, size: int) -> int:
    """The examples training reaches: ``size``, or fewer when ``max_steps`` ends it sooner.

    ``max_steps`` optimizer steps of ``train_batch_size`` x gradient accumulation x processes
    examples each, when that is less than one pass over the ``size`` examples.
    """
    steps = getattr(args, "max_steps", -1)
    if not isinstance(steps, int) or steps <= 0:
        return size
    batch = getattr(args, "train_batch_size", None) or getattr(
        args, "per_device_train_batch_size", None
    )
    accumulation = getattr(args, "gradient_accumulation_steps", 1) or 1
    if not isinstance(batch, int) or not isinstance(accumulation, int):
        return size
    return max(1, min(size, steps * batch * accumulation * _world_size(args)))


def _world_size(args: Any) -> int:
    return int(getattr(args, "world_size", 1) or 1)


def _any_process(stop: bool, args: Any) -> bool:
    """Whether any process of the training says stop (a MAX all-reduce of one flag)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return stop
    flag = torch.tensor([1 if stop else 0], device=args.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _stop_training(args: Any, control: Any) -> None:
    """Ask the Trainer to end training after this step, as ``EarlyStoppingCallback`` does.

    With a ``"steps"`` or ``"epoch"`` save strategy the step is saved too (a checkpoint of the
    training paid for); ``"best"`` and ``"no"`` keep their own rule.
    """
    control.should_training_stop = True
    strategy = getattr(args, "save_strategy", "no")
    if str(getattr(strategy, "value", strategy)) in ("steps", "epoch"):
        control.should_save = True


def _checkpoint_folder(args: Any, state: Any) -> str | None:
    """The folder the Trainer saves the checkpoint of the current step in (``None``: unknown)."""
    output_dir = getattr(args, "output_dir", None)
    if not isinstance(output_dir, (str, os.PathLike)):
        return None
    return os.path.join(os.fspath(output_dir), f"checkpoint-{state.global_step}")


def _best_metric_key(args: Any) -> str:
    """The evaluation metric ``load_best_model_at_end`` compares, as the Trainer names it."""
    name = getattr(args, "metric_for_best_model", None) or "loss"
    return name if name.startswith("eval_") else f"eval_{name}"


def _best_evaluation(args: Any, state: Any) -> dict[str, float]:
    """The evaluation metrics of the checkpoint ``load_best_model_at_end`` loaded, else none.

    The Trainer loads the best checkpoint (``state.best_model_checkpoint``, saved at
    ``state.best_global_step``) before ``on_train_end``; its evaluation is the entry of
    ``state.log_history`` at that step that holds the compared metric at ``state.best_metric``.
    """
    if not getattr(args, "load_best_model_at_end", False):
        return {}
    best = getattr(state, "best_metric", None)
    if best is None or getattr(state, "best_model_checkpoint", None) is None:
        return {}
    key = _best_metric_key(args)
    step = getattr(state, "best_global_step", None)
    for logs in reversed(getattr(state, "log_history", None) or []):
        if key in logs and logs[key] == best and (step is None or logs.get("step") == step):
            return {k: v for k, v in metric_values(logs).items() if k.startswith("eval_")}
    return {}


def _is_evaluation(logs: Mapping[str, Any]) -> bool:
    """Whether ``logs`` are an evaluation's metrics (``<prefix>_runtime``, prefix not ``train``)."""
    return any(
        isinstance(key, str) and key.endswith("_runtime") and key != "train_runtime" for key in logs
    )


def _best_hyperparameters(found: Any) -> dict[str, Any] | None:
    """The hyper-parameters of a search's ``BestRun`` (``None``: several, or none given)."""
    hyperparameters = getattr(found, "hyperparameters", None)
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        return None  # a multi-objective search returns its Pareto front: no one best
    return dict(hyperparameters)


def _same_value(have: Any, want: Any) -> bool:
    """``have == want`` for a hyper-parameter: same type family, equal (no error raised)."""
    if isinstance(have, bool) != isinstance(want, bool):
        return False
    try:
        return bool(have == want)
    except (TypeError, ValueError):  # an array: == is elementwise, its truth undefined
        return False


#: The Optuna trial's user attribute that names its run (as greenprint's Optuna callback sets).
RUN_ID_ATTR = "greenprint_run_id"


def _retried_trial(trial: Any) -> int | None:
    """The number of the trial that Optuna's retry callback retries as ``trial``, if any.

    Read as greenprint's Optuna callback reads it (the last of its ``retry_history``, else its
    ``failed_trial``): a retry of a retry names the attempt killed last.
    """
    try:
        from greenprint.integrations.optuna import _retried_trial as retried_of
    except ImportError:  # no Optuna: the trial is not an Optuna trial
        return None
    return retried_of(trial)


def _trial_name(trainer: Any) -> str | None:
    """``trial-<number>`` for the search trial an attached trainer is running, if it has one."""
    number = getattr(getattr(trainer, "_trial", None), "number", None)
    return f"trial-{number}" if isinstance(number, int) else None


def _trial_name_of(trial: Any) -> str | None:
    """``trial-<number>`` for a search trial given to ``train`` (Optuna's), if it has one."""
    number = getattr(trial, "number", None)
    return f"trial-{number}" if isinstance(number, int) else None


def _suggested_params(trial: Any) -> dict[str, Any]:
    """The hyper-parameters a search trial holds so far, as run params (``{}``: none known).

    Optuna's ``trial.params`` (what it suggested by now), Ray Tune's trial dict of values.
    """
    values = trial if isinstance(trial, Mapping) else getattr(trial, "params", None)
    if not isinstance(values, Mapping):
        return {}
    return plain_params({k: v for k, v in values.items() if isinstance(k, str) and k != "wandb"})


def _start_rank_part(
    name: str, args: Any, local: int, params: dict[str, Any], options: dict[str, Any]
) -> Run:
    """The run of a node's process other than its first: a part of the node's run.

    Its parent is the id the node's first process shares (:func:`share_node_run_id`); it reads
    no meter (one meter per node) and has no role of its own but ``part``.
    """
    from greenprint.tracking import track

    rest = {key: value for key, value in options.items() if key not in ("role", "meters")}
    return track(
        f"{name}-rank{getattr(args, 'process_index', local)}",
        params=params,
        role="part",
        parent=share_node_run_id(socket.gethostname(), local, None),
        meters=NoMeters(),
        **rest,
    ).start()


def _rename(run: Run, name: str) -> None:
    """Give a running run the name ``on_train_begin`` found (the ledger's record too).

    A run started at the ``train`` call is named before the Trainer knows everything that
    names it (your ``hp_name``, a ``model_init`` model's class). ``run.set(name=...)``: a
    ledger that cannot take it now is a warning, and the name is written with the run's next
    write.
    """
    if run.name == name:
        return
    try:
        run.set(name=name)  # a ledger that cannot take it now: a warning, written later
    except ConfigError as e:  # a name the ledger cannot store: the run keeps its first one
        logger.warning("greenprint: could not rename run %s to %r: %s", run.id[:8], name, e)


def _explicit_run_name(args: Any) -> str | None:
    """``args.run_name`` when the user set it (transformers defaults it to the output dir)."""
    run_name = getattr(args, "run_name", None)
    output_dir = getattr(args, "output_dir", None)
    if not run_name or run_name == output_dir:
        return None
    return str(run_name)


def _check_args(args: Any, state: Any) -> None:
    if not isinstance(args, _transformers.TrainingArguments):
        raise ConfigError(
            f"GreenprintCallback needs transformers.TrainingArguments, not {type(args).__name__}"
        )
    if not isinstance(state, _transformers.TrainerState):
        raise ConfigError(
            f"GreenprintCallback needs a transformers.TrainerState, not {type(state).__name__}"
        )
