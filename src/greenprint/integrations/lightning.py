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
(``sync_dist=True``, ``reduce_fx="sum"``), which is the whole job's across nodes.

Lightning is imported as ``lightning.pytorch`` when installed, else as ``pytorch_lightning``;
the callback derives from that package's ``Callback``.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._budget import BudgetGuard
from greenprint._exceptions import (
    BudgetExceeded,
    ConfigError,
    GreenprintError,
    MissingDependencyError,
)
from greenprint._imports import is_available, require
from greenprint._lifecycle import status_for
from greenprint.integrations._common import (
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
    part_of,
    plain_params,
    refresh,
    role_inside,
    share_node_run_id,
    take_waiting_parts,
    trained_again,
    trained_run,
    waiting_parts,
)
from greenprint.integrations._dl import weak_ref as _weak

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.fpo import FPOResult
    from greenprint.tracking import Run

__all__ = ["GreenprintCallback"]

_PURPOSE = "greenprint.integrations.lightning"

logger = logging.getLogger(__name__)


def _lightning() -> Any:
    """``lightning.pytorch`` if installed, else ``pytorch_lightning``.

    Raises:
        MissingDependencyError: neither is installed; names ``greenprint[lightning]``.
    """
    if is_available("lightning"):
        return require(
            "lightning.pytorch", extra="lightning", purpose=_PURPOSE, package="lightning"
        )
    if is_available("pytorch_lightning"):
        return require("pytorch_lightning", extra="lightning", purpose=_PURPOSE)
    raise MissingDependencyError("lightning", "lightning", _PURPOSE)


_pl = _lightning()


class GreenprintCallback(_pl.Callback):  # type: ignore[misc,name-defined]
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
        warn_fpo_budget_uncounted(BudgetGuard.from_options(self._options, study=""), count_fpo)
        self._name = name
        self._count_fpo = count_fpo
        self._fpo_inputs = fpo_inputs
        self._log_figures = log_figures
        self._run: Run | None = None
        self._figures: LiveFigures | None = None
        self._step_fpo: FPOResult | int | None = None
        self._fit_trainer: weakref.ref[Any] | None = None  # the Trainer of the run's fit
        self._fit_module: weakref.ref[Any] | None = None  # the module that fit trains
        self._logged: dict[str, tuple[int, float]] = {}  # each metric's last (step, value) logged
        self._resumes: str | None = None  # the run a checkpoint being resumed names
        self._first_rank = False  # the run is global rank 0's (the one a checkpoint names)
        self._tuning: list[Run] = []  # runs of finders before this fit (see :meth:`setup`)
        self._evaluation: Run | None = None  # the run of a validate/test/predict outside a fit
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
        options = dict(self._options)
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
        options = dict(self._options)
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
        self._step_fpo = None  # counted again: this fit may train another module
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
        """Count one step's FPO at the first batch (``count_fpo=True``)."""
        if self._count_fpo and self._step_fpo is None and self._run is not None:
            self._step_fpo = self._count_step(pl_module, batch)

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
        refresh(run)
        now = figures.read()
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
        if run is not None and self._log_figures and getattr(trainer, "world_size", 1) == 1:
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

        options = dict(self._options)
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
        self._evaluated = self._trained_by(run, trainer, pl_module)
        self._evaluated_module = _weak(pl_module)
        self.last_evaluation_id = run.id

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

    def _continue(self) -> None:
        """Make the run of the checkpoint's fit a part of this fit's run (global rank 0)."""
        earlier, self._resumes = self._resumes, None
        run = self._run
        if earlier is not None and run is not None and self._first_rank:
            continue_from(run, earlier, how="trainer.fit(ckpt_path=...)")

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

    def _count_step(self, pl_module: Any, batch: Any) -> FPOResult | int:
        """FPO of one training step on ``batch``, counted on a meta copy of ``pl_module``.

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
                    counted = count_fpo(model, *_tree_map(_to_meta, inputs))
                    return counted if counted.total else 0
                counter = FPOCounter(model)
                with counter:
                    out = model.training_step(_tree_map(_to_meta, batch), 0)
                    loss = out.get("loss") if isinstance(out, Mapping) else out
                    if isinstance(loss, torch.Tensor) and loss.requires_grad:
                        loss.backward()
                return counter.result if counter.result.total else 0
        except (GreenprintError, RuntimeError, TypeError, ValueError, NotImplementedError) as e:
            # a figure, not a reason to stop training: say why it is missing
            logger.warning(
                "greenprint: could not count the FPO of a training step on meta tensors "
                "(%s: %s); pass fpo_inputs=batch -> inputs",
                type(e).__name__,
                e,
            )
            return 0


def _check_objects(trainer: Any, pl_module: Any) -> None:
    if not isinstance(trainer, _pl.Trainer):
        raise ConfigError(
            f"GreenprintCallback needs a {_pl.__name__}.Trainer, not {type(trainer).__name__}"
        )
    if not isinstance(pl_module, _pl.LightningModule):
        raise ConfigError(
            f"GreenprintCallback needs a {_pl.__name__}.LightningModule, "
            f"not {type(pl_module).__name__}"
        )


#: Lightning's finders that train the model in their ``on_fit_start``: class name -> run suffix.
_FINDERS = {"LearningRateFinder": "lr_find", "BatchSizeFinder": "scale_batch_size"}


def _finder_before(trainer: Any, callback: Any) -> str | None:
    """The run suffix of a finder among the Trainer's callbacks before ``callback``, if any."""
    for each in getattr(trainer, "callbacks", None) or ():
        if each is callback:
            return None
        for kind, suffix in _FINDERS.items():
            finder = getattr(_pl.callbacks, kind, None)
            if isinstance(finder, type) and isinstance(each, finder):
                return suffix
    return None


def _mlflow_autologs(trainer: Any) -> list[Any]:
    """The metrics loggers of ``mlflow.pytorch.autolog()``'s callbacks on ``trainer``.

    MLflow's autolog is no Lightning logger: it adds a callback of its own that logs
    ``trainer.callback_metrics`` (greenprint's figures among them) at each epoch's end, at
    the epoch's number, through a ``BatchMetricsLogger`` (``record_metrics(metrics, step)``,
    ``flush()``). None when MLflow's autolog is off.
    """
    found = []
    for each in getattr(trainer, "callbacks", None) or ():
        kind = type(each)
        if kind.__module__.startswith("mlflow.") and kind.__name__.endswith("MlflowPLCallback"):
            metrics = getattr(each, "metrics_logger", None)
            if callable(getattr(metrics, "record_metrics", None)) and callable(
                getattr(metrics, "flush", None)
            ):
                found.append(metrics)
    return found


def _dev_run(trainer: Any) -> tuple[str, int | float] | None:
    """The debugging flag of a fit and its value, ``None`` for a fit that is a training.

    ``("fast_dev_run", n)``: Lightning's "unit test" of the loops, n batches (``True``: 1).
    ``("overfit_batches", v)``: the check that the model can overfit a few batches (a
    fraction, or a number of batches), validated on those same training batches: its score
    says nothing of the configuration. ``limit_train_batches``/``limit_val_batches`` alone
    are a training on part of the data (a trial, with those params; see
    :func:`_trainer_params`).
    """
    value = getattr(trainer, "fast_dev_run", False)
    batches = int(value) if isinstance(value, bool) else value
    if isinstance(batches, int) and batches > 0:
        return "fast_dev_run", batches
    overfit = getattr(trainer, "overfit_batches", 0)
    if isinstance(overfit, (int, float)) and not isinstance(overfit, bool) and overfit > 0:
        return "overfit_batches", overfit
    return None


def _evaluation_kind(trainer: Any) -> str | None:
    """``"validate"``, ``"test"`` or ``"predict"`` while the Trainer runs one outside a fit."""
    state = getattr(trainer, "state", None)
    fn = getattr(state, "fn", None)
    value = getattr(fn, "value", fn)
    return value if value in ("validate", "test", "predict") else None


def _limited(trainer: Any, loader: Any, size: int) -> int:
    """``size`` examples, or those of the batches ``limit_train_batches`` keeps of an epoch.

    ``trainer.num_training_batches`` (each rank's, after the limit) below the loader's length:
    that many batches of ``loader.batch_size`` on each rank, at most ``size``.
    """
    batches = getattr(trainer, "num_training_batches", None)
    batch_size = getattr(loader, "batch_size", None)
    try:
        full = len(loader)
    except TypeError:  # no length: no limit to read
        return size
    if not isinstance(batches, int) or not isinstance(batch_size, int) or batches >= full:
        return size
    world = int(getattr(trainer, "world_size", 1) or 1)
    return max(1, min(size, batches * batch_size * world))


def _same(logged: tuple[int, float] | None, now: tuple[int, float]) -> bool:
    """Whether a metric's (step, value) is the one logged last (NaN equal to NaN)."""
    if logged is None or logged[0] != now[0]:
        return False
    return logged[1] == now[1] or (math.isnan(logged[1]) and math.isnan(now[1]))


def _tree_map(fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn`` applied to every leaf of nested tuples, lists and dicts."""
    if isinstance(value, (tuple, list)):
        return type(value)(_tree_map(fn, v) for v in value)
    if isinstance(value, Mapping):
        return {k: _tree_map(fn, v) for k, v in value.items()}
    return fn(value)


def _module_params(pl_module: Any) -> dict[str, Any]:
    hparams = getattr(pl_module, "hparams", None)
    return plain_params(hparams if isinstance(hparams, Mapping) else {})


def _trainer_params(trainer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("max_epochs", "max_steps", "accumulate_grad_batches", "precision"):
        value = getattr(trainer, key, None)
        if value is not None and value != -1:
            out[f"trainer.{key}"] = value
    out["trainer.world_size"] = int(getattr(trainer, "world_size", 1))
    if _dev_run(trainer) is None:  # else set by the debugging flag, named by it
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(trainer, key, None)  # a fraction (1.0: all) or a number of batches
            whole = isinstance(value, float) and value == 1.0  # the int 1 is one batch
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not whole:
                out[f"trainer.{key}"] = value
    return plain_params(out)


def _node_root_pid(trainer: Any) -> int:
    """The process whose tree holds every rank on this node.

    Lightning's ``ddp`` launcher runs rank 0 in the script's process and starts the others as
    its children; ``ddp_spawn`` and external launchers (torchrun, SLURM) start every rank as a
    child of one launcher process.
    """
    launcher = getattr(trainer.strategy, "launcher", None)
    if launcher is not None and type(launcher).__name__ == "_SubprocessScriptLauncher":
        return os.getpid()
    return os.getppid()


def _metered_run(
    trainer: Any, name: str, params: dict[str, Any], role: str, options: dict[str, Any]
) -> Run:
    """The started run of a finder or an evaluation, one meter per node as the fit's.

    One process: a run of its own. Several (DDP): the node's local rank 0 meters the node's
    process tree and shares its run's id; the other ranks record parts of it
    (:func:`_rank_run`). ``options`` without a role.
    """
    from greenprint.tracking import track

    if int(getattr(trainer, "world_size", 1) or 1) <= 1:
        return track(name, params=params, role=role, **options).start()
    if trainer.local_rank != 0:
        return _rank_run(trainer, name, params, options)
    node_run: Run | None = None
    try:
        node_run = track(
            name, params=params, role=role, pid=_node_root_pid(trainer), **options
        ).start()
    finally:  # every rank takes part in the exchange, a run started or not
        _node_run_id(trainer, node_run.id if node_run is not None else None)
    return node_run


def _rank_run(trainer: Any, name: str, params: dict[str, Any], options: dict[str, Any]) -> Run:
    """The started run of a rank that is not its node's local rank 0 (DDP).

    A part of the node's run (its id from :func:`_node_run_id`'s exchange), reading no meter
    (one meter per node: the node's run has them). ``options`` without a role.
    """
    from greenprint.tracking import track

    options = {k: v for k, v in options.items() if k != "meters"}
    return track(
        f"{name}-rank{trainer.global_rank}",
        params=params,
        role="part",
        parent=_node_run_id(trainer, None),
        meters=NoMeters(),
        **options,
    ).start()


def _node_run_id(trainer: Any, own_id: str | None) -> str | None:
    return share_node_run_id(int(trainer.node_rank), int(trainer.local_rank), own_id)
