"""The cost-aware pruner as an Optuna pruner: trials judged at equal energy or FPO.

Usage::

    import optuna
    from greenprint.greener import CostAwareOptunaPruner
    from greenprint.integrations.optuna import GreenprintCallback

    cb = GreenprintCallback(ledger="greenprint.db")
    study = optuna.create_study(
        study_name="mnist-lr", direction="maximize", pruner=CostAwareOptunaPruner(cost="fpo")
    )

    def objective(trial):
        ...
        for epoch in range(epochs):
            train_one_epoch()                      # run.add_fpo(...) for cost="fpo"
            trial.report(accuracy(), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy()

    study.optimize(cb.track(objective), n_trials=50, callbacks=[cb])

Where the cost comes from, at each ``trial.should_prune()``, in this order:

1. the trial's user attribute ``greenprint_cost`` when the objective sets it
   (``trial.set_user_attr("greenprint_cost", kwh_so_far)``): a cost measured by the caller;
2. else the greenprint run measuring the trial: the nearest run with role ``trial`` among the
   calling thread's innermost active run and the active runs enclosing it, which
   :meth:`GreenprintCallback.track <greenprint.integrations.optuna.GreenprintCallback.track>`
   opened (``trial-<number>``), else the innermost active run: its ``energy_kwh`` so far
   (``cost="energy"``; its meters are read at each call, not only every ``sample_interval_s``,
   so that epochs shorter than the interval are judged at the energy they spent; it measures
   the runs nested in it too) or its FPO with its parts' (``cost="fpo"``: what ``run.add_fpo`` or
   ``run.set(fpo=...)`` recorded on it and on the runs nested in it, such as the folds of a
   cross-validation, summed as the price tag sums them, by
   :attr:`RunForest.fpo_sums <greenprint.analysis._common.RunForest.fpo_sums>`: the active
   ones as they stand, the ended ones as the trial's ledger holds them; a run that counted
   none adds nothing). Asked from inside a fold (``should_prune()`` within its ``gp.track``),
   the cost is still the trial's, never the fold's.

The point (cost, latest intermediate value) joins the trial's curve in the pruner; a trial's
state in the study (complete, pruned, failed) is read at each call, so completed trials become
references. The cost of each judged step is also stored with the trial in the study's storage
(the system attribute ``greenprint_cost:<step>``), so a trial that completed out of the pruner's
sight (in another worker process on the same storage, or in an earlier session of a study
loaded with ``load_if_exists=True``) is a reference too, and counts towards
``n_startup_trials``, from the pruner's next call on: its curve is rebuilt from those costs and
its intermediate values. A completed trial with no stored costs (run under another pruner, or
by a greenprint before 2026-12-05) cannot be placed on the cost axis and is no reference. Trials
still running in other processes are not references (their curves are not read as they grow).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Literal

from greenprint._imports import require

require("optuna", extra="optuna", purpose="greenprint.greener.CostAwareOptunaPruner")

import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from greenprint import _lineage  # noqa: E402
from greenprint._exceptions import ConfigError, LedgerError  # noqa: E402
from greenprint.greener._pruner import CostAwarePruner, PruneDecision, Rule  # noqa: E402
from greenprint.integrations._dl import refresh  # noqa: E402

__all__ = ["COST_ATTR", "CostAwareOptunaPruner"]

logger = logging.getLogger(__name__)

#: The user attribute an objective may set to give the trial's cost so far itself.
COST_ATTR = "greenprint_cost"

#: The prefix of the system attributes that store a trial's cost at each judged step
#: (``greenprint_cost:3`` -> the cost at step 3), for the pruners of other sessions.
_STEP_COST_PREFIX = "greenprint_cost:"

_ENDED = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


class CostAwareOptunaPruner(optuna.pruners.BasePruner):
    """An Optuna pruner that compares trials at equal energy or FPO (median or percentile).

    See :class:`~greenprint.greener.CostAwarePruner` for the rule; the direction is the study's.

    Args:
        cost: ``"energy"`` (kWh of the trial's greenprint run) or ``"fpo"`` (its FPO).
        rule: ``"median"`` or ``"percentile"``.
        percentile: with ``rule="percentile"``, the share of trials kept (0-100).
        n_startup_trials: completed trials needed before anything is pruned.
        min_cost: a trial is never pruned before it has spent this much (kWh or FPO).
        n_warmup_reports: a trial is never pruned at its first ``n_warmup_reports`` reports
            (as Optuna's ``n_warmup_steps`` when steps count from 1).
        n_min_trials: references needed at the trial's cost to judge it.

    Raises:
        ConfigError: an unknown ``cost`` or any bad option of :class:`CostAwarePruner`.
    """

    def __init__(
        self,
        *,
        cost: Literal["energy", "fpo"] = "energy",
        rule: Rule = "median",
        percentile: float = 50.0,
        n_startup_trials: int = 5,
        min_cost: float = 0.0,
        n_warmup_reports: int = 0,
        n_min_trials: int = 1,
    ) -> None:
        if cost not in ("energy", "fpo"):
            raise ConfigError(f"cost must be 'energy' or 'fpo', not {cost!r}")
        self.cost = cost
        self._options: dict[str, Any] = {
            "rule": rule,
            "percentile": percentile,
            "n_startup_trials": n_startup_trials,
            "min_cost": min_cost,
            "n_warmup_reports": n_warmup_reports,
            "n_min_trials": n_min_trials,
            "cost_unit": "kWh" if cost == "energy" else "FPO",
        }
        CostAwarePruner(**self._options)  # check the options now, not at the first trial
        self._pruners: dict[str, CostAwarePruner] = {}
        self._steps: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def pruner_for(self, study: optuna.Study) -> CostAwarePruner:
        """The plain pruner holding the curves of ``study``'s trials (one per study name)."""
        with self._lock:
            found = self._pruners.get(study.study_name)
            if found is None:
                if len(study.directions) != 1:
                    raise ConfigError(
                        "CostAwareOptunaPruner judges one objective; study "
                        f"{study.study_name!r} has {len(study.directions)}"
                    )
                maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
                found = CostAwarePruner(
                    direction="maximize" if maximize else "minimize", **self._options
                )
                self._pruners[study.study_name] = found
            return found

    def decision(self, study: optuna.Study, trial_number: int) -> PruneDecision | None:
        """Why trial ``trial_number`` was (or was not) pruned at its last report."""
        return self.pruner_for(study).decision(trial_number)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Judge ``trial`` at its latest intermediate value and its cost so far.

        Raises:
            ConfigError: no cost is known for the trial (no ``greenprint_cost`` user attribute
                and no active greenprint run; or ``cost="fpo"`` and the run recorded no FPO).
                Where the runs under the trial's run cannot be read from its ledger (a warning
                says why), the cost it reported last stands (a cost is cumulative), and a
                trial with none is not judged at that step: a read failure never fails it;
                nor is a trial whose nested runs have counted no FPO yet.
        """
        pruner = self.pruner_for(study)
        self._sync(study, pruner)  # others may have ended since the last call, here or elsewhere
        step = trial.last_step
        if step is None:
            return False
        score = trial.intermediate_values[step]
        key = (study.study_name, trial.number)
        with self._lock:
            seen = self._steps.get(key)
            self._steps[key] = step
        if seen == step:  # asked again at the same step: the same answer
            decision = pruner.decision(trial.number)
            return decision is not None and decision.prune
        if pruner.status(trial.number) not in (None, "running"):
            return pruner.status(trial.number) == "pruned"
        before = pruner.decision(trial.number)
        cost = self._cost(trial, None if before is None else before.cost)
        if cost is None:  # the ledger could not be read, and nothing was known: not judged now
            return False
        _store_cost(study, trial, step, cost)
        return pruner.report(trial.number, cost, float(score))

    def _cost(self, trial: FrozenTrial, known: float | None) -> float | None:
        """The trial's cost so far; ``known``: the one it reported last (``None``: none).

        ``None`` (not judged at this step) when no FPO is known yet but runs nested in the
        trial's run may count theirs (a fold in a child process that has flushed none yet), or
        when they could not be read from its ledger and no cost is known yet.
        """
        given = trial.user_attrs.get(COST_ATTR)
        if given is not None:
            if isinstance(given, bool) or not isinstance(given, (int, float)):
                raise ConfigError(f"user attribute {COST_ATTR!r} must be a number, not {given!r}")
            return float(given)
        run = _trial_run(_lineage.innermost())
        if run is None:
            raise ConfigError(
                f"CostAwareOptunaPruner has no cost for trial {trial.number}: run the objective "
                "through GreenprintCallback.track (study.optimize(cb.track(objective), ..., "
                f"callbacks=[cb])), or set trial.set_user_attr({COST_ATTR!r}, cost_so_far)"
            )
        if self.cost == "energy":
            # the meters read now: the sampler reads them every sample_interval_s (1 s by
            # default), and epochs shorter than that were judged at the last sample's energy,
            # 0 kWh for the whole first second: every trial equal, each judged against the
            # others' final scores
            refresh(run)
            value = float(run.energy_kwh)
        else:
            fpo, read, nested = _fpo_with_parts(run)
            if not read and known is not None:  # ended runs unreadable: a cumulative cost
                return max(known, 0.0 if fpo is None else float(fpo))  # what was known stands
            if fpo is None and (nested or not read):  # they may count theirs yet: not judged
                return None
            if fpo is None:
                raise ConfigError(
                    f"CostAwareOptunaPruner(cost='fpo'): trial {trial.number}'s run recorded no "
                    "FPO, nor did any run nested in it; add them as the trial goes "
                    "(run.add_fpo(...)) or use cost='energy'"
                )
            value = float(fpo)
        if not math.isfinite(value):  # pragma: no cover - the tracker never records these
            raise ConfigError(f"trial {trial.number}'s cost is {value!r}")
        return value

    @staticmethod
    def _sync(study: optuna.Study, pruner: CostAwarePruner) -> None:
        """Mark the trials that ended since the last call, as Optuna recorded them.

        A completed trial the pruner has not seen (another process, an earlier session) joins
        as a reference when the study's storage holds its costs (:func:`_stored_points`).
        """
        for other in study.get_trials(deepcopy=False, states=tuple(_ENDED)):
            status = pruner.status(other.number)
            ended = _ENDED[other.state]
            if status is None:
                if other.state == TrialState.COMPLETE:
                    points = _stored_points(other)
                    if points:
                        pruner.restore(other.number, points)
            elif status != ended:
                pruner.finish(other.number, ended)  # type: ignore[arg-type]


def _store_cost(study: optuna.Study, trial: FrozenTrial, step: int, cost: float) -> None:
    """Store ``trial``'s cost at ``step`` in the study's storage, for other sessions' pruners.

    One system attribute per step (``greenprint_cost:<step>``): a write as small as Optuna's
    own ``trial.report``. A trial that is no longer running (a pruner called by hand on a
    finished trial) is left as it is.
    """
    if trial.state != TrialState.RUNNING:
        return
    key = f"{_STEP_COST_PREFIX}{step}"
    if trial.system_attrs.get(key) == cost:
        return
    study._storage.set_trial_system_attr(trial._trial_id, key, cost)


def _stored_points(trial: FrozenTrial) -> list[tuple[float, float]]:
    """The ``(cost, intermediate value)`` pairs stored with ``trial`` by :func:`_store_cost`.

    Steps whose value or cost is missing or not a number are left out.
    """
    points = []
    for key, cost in trial.system_attrs.items():
        if not key.startswith(_STEP_COST_PREFIX):
            continue
        try:
            step = int(key[len(_STEP_COST_PREFIX) :])
        except ValueError:
            continue
        score = trial.intermediate_values.get(step)
        if (
            score is None
            or isinstance(cost, bool)
            or not isinstance(cost, (int, float))
            or not math.isfinite(cost)
            or cost < 0
            or math.isinf(score)
        ):
            continue
        points.append((float(cost), float(score), step))
    points.sort(key=lambda point: (point[0], point[2]))
    return [(cost, score) for cost, score, _ in points]


def _trial_run(run: Any) -> Any:
    """The nearest run with role ``trial`` among ``run`` and the active runs enclosing it.

    ``run`` is the calling thread's innermost active run (``None``: there is none, returned as
    is); without a trial among them (a user's own runs), ``run`` itself.
    """
    if run is None:
        return None
    from greenprint.tracking import active_runs

    live = {r.id: r for r in active_runs()}
    current = run
    while current is not None:
        if current.role == "trial":
            return current
        current = live.get(current.parent_id) if current.parent_id else None
    return run


def _fpo_with_parts(run: Any) -> tuple[int | None, bool, bool]:
    """``(fpo, read, nested)``: ``run``'s FPO so far with its nested runs', the price tag's way.

    ``read``: whether its ledger could be read (``False``: a :class:`LedgerError`, and the
    ended runs under it are missing from ``fpo``); ``nested``: whether any run nested in it
    is known.

    The runs nested in it: this process's active runs whose parents lead to it (as they stand)
    and the runs its ledger holds under it (ended folds, runs of child processes). They are
    summed by :attr:`RunForest.fpo_sums <greenprint.analysis._common.RunForest.fpo_sums>`:
    its own FPO, or its children's sum when it is larger (a run that counted none counts as its
    children); a run that counted none adds nothing. The FPO is ``None`` when no run there
    counted any.
    """
    from greenprint.analysis._common import RunForest
    from greenprint.tracking import active_runs

    live = {r.id: r for r in active_runs()}
    records = {run.id: run.record}
    for other in live.values():  # this process's active runs under it
        current: Any = other
        while current is not None and current.id != run.id:
            current = live.get(current.parent_id) if current.parent_id else None
        if current is not None and other.id not in records:
            records[other.id] = other.record
    ledger, read = run.ledger, True
    if ledger is not None:  # the ended runs under it (and what other processes flushed)
        frontier, seen = [run.id], {run.id}
        try:
            while frontier:
                below = [c for parent in frontier for c in ledger.runs(parent_id=parent)]
                frontier = [c.id for c in below if c.id not in seen]
                seen.update(frontier)
                for child in below:
                    records.setdefault(child.id, child)  # an active run: as it stands here
        except LedgerError as e:  # judged on what is known here; the next call reads again
            logger.warning("greenprint: could not read the runs under run %s: %s", run.id, e)
            read = False
    nested = len(records) > 1
    if all(record.fpo is None for record in records.values()):
        return None, read, nested
    forest = RunForest.build(records.values())
    return int(forest.fpo_sums.inclusive[forest.index[run.id]]), read, nested
