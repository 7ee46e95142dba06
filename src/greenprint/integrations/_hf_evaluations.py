"""A Hugging Face ``evaluate()``/``predict()`` outside a training: a run of its own.

:class:`_EvaluationRuns`, a base of the callback: the wrapped ``evaluate``/``predict`` of an
attached trainer, whether an evaluation is alone (not in a training, nor in a search but its
objective's), the evaluation's run (``<name>-evaluate``, one meter per node), its metrics,
its end, and the run that trained the model it evaluates (whose ``part`` it becomes).

Private: :mod:`greenprint.integrations.transformers` is the public module.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import BudgetExceeded, GreenprintError
from greenprint._imports import require
from greenprint._lifecycle import status_for
from greenprint.integrations._common import options_now
from greenprint.integrations._dl import (
    end_evaluation,
    last_training,
    metric_values,
    share_node_run_id,
    trained_run,
    weak_ref,
)
from greenprint.integrations._hf_args import (
    _args_params,
    _explicit_run_name,
    _start_rank_part,
    _world_size,
)
from greenprint.integrations._hf_fpo import _ForwardFPO

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


#: Its messages keep the logger name they had in one module.
logger = logging.getLogger("greenprint.integrations.transformers")

_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)


class _EvaluationRuns:
    """The run of an ``evaluate()``/``predict()`` outside a training."""

    _options: dict[str, Any]
    _default_ledger: Any  # the configured ledger, pinned when the callback was made
    _name: str | None
    _run: Run | None
    _run_name: str | None
    _attached: Any
    _state: Any
    _in_train: int
    _searching: int
    _evaluation: Run | None
    _evaluated: str | None
    _evaluated_model: weakref.ref[Any] | None
    _evaluating: int
    _count_fpo: bool
    _evaluation_fpo: _ForwardFPO | None
    last_evaluation_id: str | None

    if TYPE_CHECKING:  # pragma: no cover - the callback's own

        def _warn_once(self, key: str, message: str) -> None: ...

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
            self._count_evaluation(trainer.args, trainer.model)
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
        options = options_now(self._options, self._default_ledger)
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

    def _count_evaluation(self, args: Any, model: Any) -> None:
        """Count the FPO of the evaluation's forwards into its run (``count_fpo=True``).

        Only for an evaluation measured from its call (attached: the wrapped ``evaluate`` and
        ``predict``, which end it), in one process on one device: without ``attach`` its run
        starts after the first batch, which its count would leave out, and with several
        processes, or the model copied onto several GPUs of one process (``DataParallel``,
        whose copies would call the hooks from threads), it is not counted (its FPO stay
        unknown, as before).
        """
        if (
            self._count_fpo
            and self._evaluation is not None
            and model is not None
            and _world_size(args) <= 1
            and int(getattr(args, "n_gpu", 1) or 1) <= 1
        ):
            self._evaluation_fpo = _ForwardFPO(model, warn=self._warn_once)

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
        counting, self._evaluation_fpo = self._evaluation_fpo, None
        if counting is not None:
            for counted, forwards in counting.close():
                if run is None or run.status != "running":
                    break
                try:
                    run.add_fpo(counted)  # its notes (a lower bound) once, the rest as a number
                    if forwards > 1:
                        run.add_fpo(int(counted.total) * (forwards - 1))
                except BudgetExceeded:  # the evaluation is over anyway
                    pass
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
