"""``Trainer.hyperparameter_search`` seen by the Hugging Face callback.

:class:`_SearchRecords`, a base of the callback: the wrapped search whose
``compute_objective`` (:class:`_Objective`) logs each value on the trial's run
(``objective`` maximised, ``objective_loss`` minimised), the retrain with the search's best
hyper-parameters (role ``final``), and an Optuna trial retried after a kill, linked to its
earlier attempt's run. With the trial names and params a search's trials are recorded under.

Private: :mod:`greenprint.integrations.transformers` is the public module.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from greenprint._exceptions import BudgetExceeded
from greenprint._imports import require
from greenprint.integrations._dl import (
    append_metrics,
    continue_from,
    plain_params,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.tracking import Run


_PURPOSE = "greenprint.integrations.transformers"
_transformers = require("transformers", extra="transformers", purpose=_PURPOSE)


class _SearchRecords:
    """A search's objective on its trials, its retrain, Optuna's retried trials."""

    _run: Run | None
    _attached: Any
    _searching: int
    _objective: _Objective | None
    _best: dict[str, Any] | None

    if TYPE_CHECKING:  # pragma: no cover - the callback's own

        def _warn_once(self, key: str, message: str) -> None: ...

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
        self, callback: _SearchRecords, compute: Callable[..., Any], names: tuple[str, ...]
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
