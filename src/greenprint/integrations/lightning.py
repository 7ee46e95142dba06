"""Lightning: a callback that records a ``Trainer.fit`` as a greenprint run.

``pip install 'greenprint[lightning]'``, then::

    from greenprint.integrations.lightning import GreenprintCallback

    trainer = Trainer(callbacks=[GreenprintCallback("resnet", study="cifar", ledger="gp.db")])
    trainer.fit(model, data)

What it records:

* one run from ``on_fit_start`` to ``on_fit_end`` (or ``teardown``): ``finished``; an exception
  in fit ends it through ``on_exception``: ``failed`` (``interrupted`` for Ctrl-C), with the cost
  so far;
* at each training epoch's end, ``greenprint/energy_kwh``, ``greenprint/emissions_kg`` (totals so
  far), ``greenprint/epoch_energy_kwh``, ``greenprint/epoch_emissions_kg`` and
  ``greenprint/power_w`` (mean over the epoch) through ``pl_module.log(..., on_epoch=True)``, so
  every logger the Trainer has (TensorBoard, CSV, MLflow, W&B) gets them (the run keeps its own
  energy, CO2-eq and power samples, so they are not logged to it as metrics, where a report
  would take them for scores); at the fit's end, in a single process, the run's totals
  (``greenprint/energy_kwh``, ``greenprint/emissions_kg``) to every logger at the last step;
* the validation metrics (``trainer.callback_metrics``) at each validation end, into the run (a
  value that is not finite, a diverged loss, as NaN: the run has no score, never a stale one);
  a ``trainer.test()`` or ``trainer.validate()`` by the same Trainer after the fit, of the
  module the fit trained, adds its metrics to the fit's ended run at its last step (an
  evaluation of another module, or by another Trainer, is no score of that run);
* each ``trainer.validate()``, ``trainer.test()`` and ``trainer.predict()`` outside a fit as a
  run of its own, ``<name>-validate`` (``-test``, ``-predict``), from the loop's start to its
  end, with the module's params and the evaluation's metrics (none for a prediction), so that
  the study's price tag counts what evaluating a model cost. Of the model a known run trained,
  it is a ``part`` of that run, recorded ``contained`` false (it ran after that run, outside
  its measurement: the price tag adds it once): the fit this callback ran of that module, the
  fit whose checkpoint it restored (``trainer.test(model, ckpt_path=...)``, in this process or
  a new one: the checkpoint keeps the fit's run id), or the last fit of that module object in
  this process (by any Trainer). Else it is a top-level run with role ``part`` (its cost
  counted, never a trial: a checkpoint loaded by ``load_from_checkpoint``, a module evaluated
  before it is trained), or the role given to the callback when that is ``final`` or
  ``baseline`` (the reported model's test, a reference model's, which the report reads as
  such); a ``part`` of no run is taken by the next fit of that module object in this process
  (the validation of the untrained model before its training). Inside a run of yours
  (``with gp.track(...)``), it is a part of that run. With several processes (DDP), as the
  fit: the node's local rank 0 meters the node (its run as above) and every other rank records
  a part of it, ``<name>-test-rank<k>``, with no energy of its own (an evaluation before the
  fit: the node's run is a part of the node's fit); a strategy that starts new processes for
  each call (``ddp_spawn``, ``ddp_fork``) knows no fit in them, so there the evaluation is a
  top-level part (measured, never a trial), linked to no fit;
* the module's ``hparams`` and the Trainer's epochs and devices as the run's params;
* with ``count_fpo=True``, the FPO of one training step (``training_step`` and the backward of its
  loss, counted once on a meta copy of the module: nothing is allocated), added to the run at
  every training batch.
* Lightning's learning-rate and batch-size finders (``Tuner(trainer).lr_find(...)``,
  ``Tuner(trainer).scale_batch_size(...)``, or a ``LearningRateFinder``/``BatchSizeFinder``
  callback, which Lightning runs before every other callback) train the model before this
  callback's ``on_fit_start``: a run of its own, ``<name>-lr_find`` (``-scale_batch_size``),
  from the fit's ``setup`` to the finder's end, with role ``part``: the next fit's run (with
  this callback) takes it as its part, recorded ``contained`` false (it ran before that run,
  outside its measurement: the price tag adds it once); never a trial of its own (with no such
  fit, a part of no run: its cost is counted, no trial). With several processes
  (``strategy="ddp"``, torchrun), where each process runs the finder, one meter per node as
  for the fit: local rank 0's run ``<name>-lr_find`` is the part of the node's fit, every
  other rank's (``<name>-lr_find-rank<k>``, no energy of its own) a part of it. (Lightning
  2.6's ``lr_find`` fails under ``ddp_spawn``/``ddp_fork``, its ``_TunerExitException``
  raised in the started process, and ``scale_batch_size`` refuses any distributed
  strategy.) A finder that runs after this callback's ``on_fit_start`` is inside the fit's
  run (measured there).
* a ``Trainer(fast_dev_run=...)`` fit, Lightning's "unit test" of the loops, is a run
  ``<name>-fast_dev_run`` with role ``part`` (whatever role was given) and the param
  ``trainer.fast_dev_run``: counted, never a trial; the next fit of the same module object in
  this process takes it as its part (``contained`` false), else it is a part of no run. A
  ``Trainer(overfit_batches=...)`` fit, the check that the model can overfit a few batches
  (validated on those training batches: its score is no configuration's), is the same:
  ``<name>-overfit_batches``, param ``trainer.overfit_batches``. ``limit_train_batches`` and
  ``limit_val_batches`` alone train on part of the data: a trial, with them as params
  (``trainer.limit_train_batches``, when not the whole set).

Budgets (``budget_kwh``, ``budget_kg``, ``budget_fpo``, ``budget_s``, ``budget=gp.Budget(...)``):
with ``on_exceed="stop"`` the callback stops the fit the way Lightning's ``EarlyStopping`` does,
``trainer.should_stop = True``, after the training batch in which the limit was found crossed
(checked at every batch's end, epoch end and validation end; Lightning still honours
``min_epochs``/``min_steps``). ``trainer.fit`` returns normally, the module trained so far, and
the run ends ``interrupted`` with ``"BudgetExceeded: <reason>"`` as its error: no exception reaches
your code. With several processes (DDP) the ranks decide together at each training epoch's end
(``strategy.reduce_boolean_decision``, as ``EarlyStopping``), so that none is left waiting for
the others. ``"warn"`` only warns (once) and a callable is called; the fit goes on.

A fit resumed from a checkpoint (``trainer.fit(model, ckpt_path=...)`` after a crash, a kill or
a Ctrl-C, in a new process or not) is one training: the checkpoint keeps the fit's run id (the
callback's ``state_dict``), and the resumed fit's run takes that run as a ``part``, with its
status, error and cost (``interrupted`` if its process died without a last write), recorded
``contained`` false (it ran before, outside the resumed run's measurement: the price tag adds
it once); never a second trial. A checkpoint without callback state, or a run not in this
ledger or study: the resumed fit is a run of its own, as before (a debug log says why).

A second ``trainer.fit`` of the same module object in this process (two-stage fine-tuning, or
more epochs on a fitted model) trains the weights the first left: its run takes the earlier
fit's run as a ``part`` (``contained`` false), one training, not a trial per stage (top-level
runs of one study and of one name and params, the Trainer's ``trainer.*`` ones aside: a stage
may run more epochs; no role given, or the same ``trial``, ``final`` or ``baseline`` given to
both; see :func:`~greenprint.integrations._dl.trained_again`).
Under DDP the same on each node (``strategy="ddp"``, torchrun: the ranks' processes live on
from one fit to the next): the node's earlier fit run, its other ranks' runs still its parts,
becomes a part of the node's later fit run. A strategy that starts new processes for each fit
(``ddp_spawn``, ``ddp_fork``) knows no earlier DDP fit in them: there each is a trial of its own.

Multi-process training (DDP): one meter per node. The node's local rank 0 runs the meters and
attributes the energy of the whole process tree that launched the ranks; every other rank records
a run with ``role="part"`` whose parent is that node run (its time, metrics and FPO, no energy
of its own, so nothing is counted twice). The logged energy is summed over ranks
(``sync_dist=True``, ``reduce_fx="sum"``), which is the whole job's across nodes. With no energy
meter (``meters=[]``) no rank logs the figures and the other ranks' runs have no meter either:
the energy is unknown, never a sum of 0 shares.

Lightning is imported as ``lightning.pytorch`` when installed, else as ``pytorch_lightning``;
the callback derives from that package's ``Callback``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._budget import BudgetGuard
from greenprint._exceptions import BudgetExceeded, ConfigError
from greenprint._lifecycle import status_for
from greenprint.integrations._common import (
    check_run_options,
    default_ledger,
    options_now,
    pin_ledger_option,
    sized_dataset,
    warn_fpo_budget_uncounted,
)
from greenprint.integrations._dl import (
    FIGURE_PREFIX,
    LiveFigures,
    asks_no_meter,
    continue_from,
    energy_metered,
    metric_values,
    part_of,
    refresh,
    role_inside,
    take_waiting_parts,
    trained_again,
    waiting_parts,
)
from greenprint.integrations._dl import weak_ref as _weak
from greenprint.integrations._pl_evaluations import _EvaluationRuns
from greenprint.integrations._pl_fpo import _StepFPO
from greenprint.integrations._pl_trainer import (
    _check_objects,
    _dev_run,
    _evaluation_kind,
    _finder_before,
    _limited,
    _metered_run,
    _mlflow_autologs,
    _module_params,
    _node_root_pid,
    _node_run_id,
    _pl,
    _rank_run,
    _same,
    _trainer_params,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run

__all__ = ["GreenprintCallback"]

logger = logging.getLogger(__name__)


class GreenprintCallback(_EvaluationRuns, _StepFPO, _pl.Callback):  # type: ignore[misc,name-defined]
    """Record each ``Trainer.fit`` as a greenprint run (see the module docstring).

    Args:
        name: the run's name (default: the LightningModule's class name).
        count_fpo: count one training step's FPO on a meta copy of the module at the first
            batch and add it to the run at every training batch.
        fpo_inputs: ``batch -> tuple`` of the module's positional inputs: ``count_fpo`` then
            counts the forward and backward of the module on them (default:
            ``pl_module.example_input_array`` when set, else ``training_step`` on the batch,
            loss included).
        log_figures: log greenprint's figures through ``pl_module.log`` at each epoch's end.
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
        fpo_inputs: Callable[[Any], Any] | None = None,
        log_figures: bool = True,
        **track_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(count_fpo, bool) or not isinstance(log_figures, bool):
            raise ConfigError("count_fpo and log_figures must be True or False")
        if fpo_inputs is not None and not callable(fpo_inputs):
            raise ConfigError(f"fpo_inputs must be a function batch -> inputs, not {fpo_inputs!r}")
        self._options = check_run_options(
            track_options, where="GreenprintCallback", name=name, allowed=None
        )
        # a relative ledger path is where the user named it, not in a folder a script moves to
        # before a later fit (Hydra's job folders)
        self._options = pin_ledger_option(self._options)
        self._default_ledger = default_ledger()
        warn_fpo_budget_uncounted(BudgetGuard.from_options(self._options, study=""), count_fpo)
        self._name = name
        self._count_fpo = count_fpo
        self._fpo_inputs = fpo_inputs
        self._log_figures = log_figures
        self._run: Run | None = None
        self._figures: LiveFigures | None = None
        #: one step's FPO per batch key (:func:`batch_key`), and the batch's now
        self._step_fpos: dict[Any, FPOResult | int] = {}
        self._step_fpo: FPOResult | int | None = None
        self._fit_trainer: weakref.ref[Any] | None = None  # the Trainer of the run's fit
        self._fit_module: weakref.ref[Any] | None = None  # the module that fit trains
        self._logged: dict[str, tuple[int, float]] = {}  # each metric's last (step, value) logged
        self._resumes: str | None = None  # the run a checkpoint being resumed names
        self._first_rank = False  # the run is global rank 0's (the one a checkpoint names)
        self._tuning: list[Run] = []  # runs of finders before this fit (see :meth:`setup`)
        self._evaluation: Run | None = None  # the run of a validate/test/predict outside a fit
        self._evaluation_fpos: dict[Any, FPOResult | int] = {}
        self._evaluation_fpo: FPOResult | int | None = None
        self._evaluated: str | None = None  # the run that trained the module it evaluates
        self._evaluated_module: weakref.ref[Any] | None = None  # the module it evaluates
        self.last_run_id: str | None = None
        #: The id of the last ``validate``/``test``/``predict`` run, ``None`` before the first.
        self.last_evaluation_id: str | None = None

    @property
    def run(self) -> Run | None:
        """The run of the fit in progress (or the last one), ``None`` before the first fit."""
        return self._run

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles callbacks to the workers: a run in progress stays in this process
        state = dict(self.__dict__)
        state["_run"] = None
        state["_figures"] = None
        state["_fit_trainer"] = None
        state["_fit_module"] = None
        state["_tuning"] = []
        state["_evaluation"] = None
        state["_evaluated_module"] = None
        return state

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Start a run for a finder that trains before this callback's ``on_fit_start``.

        ``Tuner(trainer).lr_find(...)`` (``scale_batch_size``) puts Lightning's
        ``LearningRateFinder`` (``BatchSizeFinder``) first among the Trainer's callbacks and
        calls ``fit``: the finder trains for up to ``num_training`` steps in its own
        ``on_fit_start``, with the Trainer's callbacks replaced, then ends the fit before this
        callback's ``on_fit_start`` (a finder given as a callback, which Lightning orders first,
        trains there too, then the fit goes on). Nothing measured that training. In a single
        process, when such a finder comes before this callback, a run ``<name>-lr_find`` starts
        here and ends when the finder is done (this callback's ``on_fit_start``, or the
        ``teardown`` of the tuner's fit); the next fit's run takes it as a part. With several
        processes (``strategy="ddp"``, torchrun: each process runs the finder), one meter per
        node as for the fit: the node's local rank 0 records ``<name>-lr_find``, the other
        ranks parts of it with no energy of their own.
        """
        if stage != "fit":
            return
        finder = _finder_before(trainer, self)
        if finder is None:
            return
        _check_objects(trainer, pl_module)

        self._stop_tuning("finished", None)
        options = options_now(self._options, self._default_ledger)
        options.pop("role", None)  # a part: of the fit it tunes, once that fit starts
        params = {**_module_params(pl_module), **_trainer_params(trainer)}
        params.update(options.pop("params", None) or {})
        name = f"{self._name or type(pl_module).__name__}-{finder}"
        self._tuning.append(_metered_run(trainer, name, params, "part", options))

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the run (local rank 0 meters its node; other ranks record parts).

        The runs of finders that trained before it (see :meth:`setup`) become its parts.
        """
        _check_objects(trainer, pl_module)
        from greenprint.tracking import track

        self._stop_tuning("finished", None)
        self._stop_if_running("failed", "a new fit started before this one ended")
        options = options_now(self._options, self._default_ledger)
        params = {**_module_params(pl_module), **_trainer_params(trainer)}
        params.update(options.pop("params", None) or {})
        name = self._name or type(pl_module).__name__
        dev_run = _dev_run(trainer)
        if dev_run is not None:  # a debugging fit (its score is no trial's): a part
            flag, value = dev_run
            name = f"{name}-{flag}"
            options["role"] = "part"
            params[f"trainer.{flag}"] = value
        role = role_inside(options)  # a fit inside a trial's run is its part, said
        if role is not None:
            options["role"] = role
        if int(getattr(trainer, "world_size", 1)) <= 1:
            run = track(name, params=params, **options).start()
        elif trainer.local_rank == 0:
            run = track(name, params=params, pid=_node_root_pid(trainer), **options).start()
            _node_run_id(trainer, run.id)  # every rank takes part in the exchange
        else:
            options.pop("role", None)
            run = _rank_run(trainer, name, params, options)
        self._run = run
        self.last_run_id = run.id
        self._figures = LiveFigures(run)
        self._fit_trainer = weakref.ref(trainer)
        # None when not weakly referenceable: no evaluation is known to be of it
        self._fit_module = _weak(pl_module)
        self._logged = {}
        self._step_fpos = {}  # counted again: this fit may train another module
        self._step_fpo = None
        self._first_rank = int(getattr(trainer, "global_rank", 0) or 0) == 0
        resuming = self._resumes is not None
        self._continue()  # a checkpoint restored before this hook (the usual order)
        tuned, self._tuning = self._tuning, []
        for finder in tuned:  # another rank's is a part of its node's finder run already
            if int(getattr(trainer, "world_size", 1)) <= 1 or trainer.local_rank == 0:
                part_of(run.id, finder)
        several = int(getattr(trainer, "world_size", 1)) > 1
        if several and trainer.local_rank != 0:
            return  # another rank's runs are parts of its node's runs already
        if dev_run is not None:  # the next fit of this module takes it as a part
            waiting_parts(pl_module).append(run)
            return
        # its fast_dev_run, its evaluation before the fit (with several processes the node's
        # run, the other ranks' runs its parts): parts of this run (of the node's, under DDP)
        take_waiting_parts(run, pl_module)
        # a second fit of this module continues the first: under DDP the node's earlier fit
        # run (the other ranks' runs its parts) becomes a part of the node's run; a strategy
        # that starts new processes for each fit (ddp_spawn) knows no earlier fit in them
        trained_again(run, pl_module, link=not resuming, schedule="trainer.")

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the fit's run id, for a fit resumed from it.

        ``trainer.fit(model, ckpt_path=...)`` in a new process (after a crash, a kill) gives it
        to :meth:`load_state_dict`; the run of the fit that saved the checkpoint becomes a
        ``part`` of the resumed fit's run (see the module).
        """
        run = self._run
        if any(t.status == "running" for t in self._tuning):
            return {}  # the finder's own checkpoint, restored when it is done: no fit resumes
        if run is None or not self._first_rank or not run.id:
            return {}
        return {"greenprint_run_id": run.id}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Note the run a resumed checkpoint names (linked once this fit's run is started)."""
        earlier = state_dict.get("greenprint_run_id") if isinstance(state_dict, Mapping) else None
        self._resumes = earlier if isinstance(earlier, str) else None
        if self._run is not None and self._run.status == "running":
            self._continue()  # a strategy that restores after on_fit_start

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Record the training set's size (E x D x H), unless given: its loader is set now.

        The examples an epoch trains on: the loader's dataset, or the part of it that
        ``limit_train_batches`` leaves (a fraction or a number of batches).
        """
        run = self._run
        if run is None or run.status != "running" or self._options.get("dataset_size") is not None:
            return
        loader = getattr(trainer, "train_dataloader", None)
        size = sized_dataset(loader)
        if size is not None:
            run.set(dataset_size=_limited(trainer, loader, size))

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count one step's FPO at the first batch of each shape (``count_fpo=True``)."""
        self._step_fpo = self._batch_fpo(self._run, self._step_fpos, pl_module, batch)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Add one step's FPO to the run; stop the fit if a ``"stop"`` budget is crossed."""
        run = self._run
        if run is None or run.status != "running":
            return
        if self._step_fpo:
            try:
                run.add_fpo(self._step_fpo)
            except BudgetExceeded:  # raised once; check_budgets() below returns it again
                pass
        if int(getattr(trainer, "world_size", 1)) <= 1 and run.check_budgets() is not None:
            trainer.should_stop = True  # as EarlyStopping: the fit ends after this batch

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Log the energy and CO2-eq so far and of this epoch to every logger of the Trainer."""
        run, figures = self._run, self._figures
        max_epochs = getattr(trainer, "max_epochs", None)
        if run is not None and run.status == "running" and isinstance(max_epochs, int):
            try:
                if max_epochs > 0:  # -1: no end, so no progress to report
                    run.progress(min((trainer.current_epoch + 1) / max_epochs, 1.0))
            except BudgetExceeded:  # raised once; check_budgets() below returns it again
                pass
        self._stop_if_over_budget(trainer)  # on every rank: they may decide together
        if run is None or figures is None or run.status != "running" or not self._log_figures:
            return
        if asks_no_meter(self._options.get("meters")):
            # no energy meter (meters=[]): unknown, never logged as 0. Every rank decides by
            # the callback's options, the same on each, so none logs (a sync_dist log is a
            # collective: all ranks or none); each logged 0 before, and the loggers a 0 sum
            return
        refresh(run)
        now = figures.read()
        if not now:  # the run reads no meter, though its options did not say meters=[]
            if int(getattr(trainer, "world_size", 1)) <= 1:
                return
            # every rank logs with sync_dist (a collective): this one adds nothing to the sum
            now = dict.fromkeys(("energy_kwh", "emissions_kg", "power_w"), 0.0)
            now.update(delta_energy_kwh=0.0, delta_emissions_kg=0.0)
        values = {
            "energy_kwh": now["energy_kwh"],
            "emissions_kg": now["emissions_kg"],
            "epoch_energy_kwh": now["delta_energy_kwh"],
            "epoch_emissions_kg": now["delta_emissions_kg"],
            "power_w": now["power_w"],
        }
        for key, value in values.items():
            pl_module.log(
                FIGURE_PREFIX + key,
                float(value),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=True,  # each node's rank 0 holds its node's energy, others 0
                prog_bar=False,
            )

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the run of a ``trainer.validate()`` (not of a fit's validation loop)."""
        self._start_evaluation(trainer, pl_module)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the run of a ``trainer.test()``."""
        self._start_evaluation(trainer, pl_module)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the run of a ``trainer.predict()``."""
        self._start_evaluation(trainer, pl_module)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Copy the validation metrics to the run (not during the sanity check).

        A ``trainer.validate()`` outside a fit ends its own run with them (see
        :meth:`_end_evaluation`); after the fit, by the fit's Trainer, it adds them to the
        fit's ended run at its last step, as :meth:`on_test_end` does.
        """
        if _evaluation_kind(trainer) is not None:
            self._end_evaluation(trainer, pl_module)
            return
        if self._run is None or trainer.sanity_checking or self._run.status != "running":
            return
        metrics = metric_values(trainer.callback_metrics)
        if metrics:
            self._log(trainer, metrics)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        """End the run of a ``trainer.test()`` with its metrics.

        A test of the model the fit trained, by the fit's Trainer, adds them to the fit's
        ended run at its last step too (its scores).
        """
        self._end_evaluation(trainer, pl_module)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """End the run of a ``trainer.predict()``."""
        self._end_evaluation(trainer, pl_module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """End the run ``finished`` (``interrupted`` by a budget), with the last metrics.

        Then, in a single process, the run's totals go to every logger of the Trainer at the
        last step, so that a logger's latest ``greenprint/energy_kwh`` is the run's, not the
        total at the last training epoch's end (which leaves out the last validation); and to
        the MLflow run of ``mlflow.pytorch.autolog()`` (no logger of the Trainer: a callback),
        at the epoch after the last it logged.
        """
        run = self._run
        if run is not None and run.status == "running":
            # what changed since the last validation logged them at this step (each point once)
            step = trainer.global_step
            metrics = {
                name: value
                for name, value in metric_values(trainer.callback_metrics).items()
                if not _same(self._logged.get(name), (step, value))
            }
            if metrics:
                self._log(trainer, metrics)
        self._stop_if_running("finished", None)
        if (
            run is not None
            and self._log_figures
            and getattr(trainer, "world_size", 1) == 1
            and energy_metered(run)  # no meter: unknown, never logged as 0
        ):
            totals = {
                FIGURE_PREFIX + "energy_kwh": float(run.energy_kwh),
                FIGURE_PREFIX + "emissions_kg": float(run.emissions_kg),
            }
            for each in getattr(trainer, "loggers", None) or ():
                try:
                    each.log_metrics(totals, step=trainer.global_step)
                except Exception as e:  # a logger that fails must not fail the fit's end
                    logger.warning("greenprint: could not log the run's totals to %r: %s", each, e)
            for autolog in _mlflow_autologs(trainer):  # mlflow.pytorch.autolog(): no logger
                try:  # at its epoch steps: the step after the last epoch it logged
                    autolog.record_metrics(totals, int(trainer.current_epoch))
                    autolog.flush()
                except Exception as e:  # MLflow's store failing must not fail the fit's end
                    logger.warning("greenprint: could not log the run's totals to MLflow: %s", e)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """End the run if ``on_fit_end`` did not (``finished``).

        A checkpoint's run id that no fit took (``trainer.validate(ckpt_path=...)`` restores
        callbacks too) is forgotten: a later fit does not resume that run.
        """
        self._resumes = None
        if stage == "fit":
            self._stop_tuning("finished", None)  # the tuner's fit ends after its finder
            self._stop_if_running("finished", None)
        else:  # an evaluation whose loop did not reach its end hook (no batch to run)
            self._stop_evaluation("finished", None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """End the run ``failed`` (``interrupted`` for ``KeyboardInterrupt``) with the error."""
        status, error = status_for(exception)
        if status == "finished":  # SystemExit(0) inside fit: still not a normal end of fit
            status, error = "interrupted", f"{type(exception).__name__} during fit"
        self._stop_tuning(status, error)
        self._stop_if_running(status, error)
        self._stop_evaluation(status, error)

    # ------------------------------------------------------------------ internals

    def _continue(self) -> None:
        """Make the run of the checkpoint's fit a part of this fit's run (global rank 0)."""
        earlier, self._resumes = self._resumes, None
        run = self._run
        if earlier is not None and run is not None and self._first_rank:
            continue_from(run, earlier, how="trainer.fit(ckpt_path=...)")

    def _stop_if_running(self, status: str, error: str | None) -> None:
        run = self._run
        if run is not None and run.status == "running":
            run.stop(status=status, error=error)

    def _stop_tuning(self, status: str, error: str | None) -> None:
        for run in self._tuning:
            if run.status == "running":
                run.stop(status=status, error=error)

    def _log(self, trainer: Any, metrics: Mapping[str, float]) -> None:
        """``run.log`` the metrics; a ``"stop"`` budget it finds crossed stops the fit."""
        run = self._run
        if run is None:
            return
        try:
            run.log(step=trainer.global_step, **metrics)
        except BudgetExceeded:  # raised once, after the metrics were logged
            pass
        self._logged.update((name, (trainer.global_step, v)) for name, v in metrics.items())
        if int(getattr(trainer, "world_size", 1)) <= 1 and run.check_budgets() is not None:
            trainer.should_stop = True

    def _stop_if_over_budget(self, trainer: Any) -> None:
        """At a training epoch's end: stop the fit if a ``"stop"`` budget is crossed.

        With several processes every rank calls this at the same point and they decide
        together (any rank over its budget stops them all), as ``EarlyStopping`` does.
        """
        run = self._run
        stop = run is not None and run.check_budgets() is not None
        if int(getattr(trainer, "world_size", 1)) > 1:
            stop = bool(trainer.strategy.reduce_boolean_decision(stop, all=False))
        if stop:
            trainer.should_stop = True
