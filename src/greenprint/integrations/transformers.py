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
from greenprint.integrations._hf_fpo import _FPOCounts, _MicroBatchFPO  # noqa: E402
from greenprint.integrations._hf_model_card import (  # noqa: E402
    _CO2_FIELDS,
    add_co2_to_model_card,
    model_card_co2,
)
from greenprint.integrations._hf_runs import _TrainingRuns  # noqa: E402
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


# the names re-exported from private modules read as this module's (reprs, help, pickles)
publish(__name__, globals())
