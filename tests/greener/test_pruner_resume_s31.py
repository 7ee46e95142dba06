"""CostAwareOptunaPruner on a study resumed from its storage (a second session, another worker).

Optuna's own pruners read the stored trials, so a study run again with ``load_if_exists=True``
(or a second worker process on the same storage) is judged against every trial of the study.
The cost-aware pruner kept its curves in memory only: a new session had no reference, let
``n_startup_trials`` new trials run to their end whatever they scored, and judged the rest
against the new trials alone.
"""

from __future__ import annotations

import pytest

from integrations._frameworks import need

optuna = need("optuna", "optuna")

from greenprint.greener import CostAwareOptunaPruner  # noqa: E402
from greenprint.greener._optuna_pruner import COST_ATTR  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: trial number -> (cost per report, scores): three good trials, then bad ones
GOOD = [(1.0, [0.5, 0.7, 0.9])] * 3
BAD = (1.0, [0.1, 0.15, 0.2])


def _objective(plan: list[tuple[float, list[float]]]):
    def objective(trial: optuna.Trial) -> float:
        per_report, scores = plan[trial.number]
        for step, score in enumerate(scores):
            trial.set_user_attr(COST_ATTR, per_report * (step + 1))  # kWh so far
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return scores[-1]

    return objective


def _session(storage: str, plan, n_trials: int, **options) -> tuple[optuna.Study, object]:
    pruner = CostAwareOptunaPruner(n_startup_trials=2, **options)
    study = optuna.create_study(
        study_name="resumed",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=pruner,
    )
    study.optimize(_objective(plan), n_trials=n_trials)
    return study, pruner


def test_a_resumed_study_judges_new_trials_against_the_stored_ones(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    plan = [*GOOD, BAD, BAD]
    first, _ = _session(storage, plan, 3)
    assert [t.state.name for t in first.trials] == ["COMPLETE"] * 3

    # a new session (a new pruner object, as a new process has): the two bad trials are
    # judged against the three stored ones at their first report (0.1 against 0.5 at 1 kWh)
    second, pruner = _session(storage, plan, 2)
    assert [t.state.name for t in second.trials] == ["COMPLETE"] * 3 + ["PRUNED"] * 2
    decision = pruner.decision(second, 3)
    assert decision is not None and decision.prune
    assert (decision.cost, decision.score, decision.references) == (1.0, 0.1, 3)
    assert decision.threshold == pytest.approx(0.5)
    # the stored curves are the ones the first session judged with (cost, best so far)
    assert pruner.pruner_for(second).curve(0) == ((1.0, 0.5), (2.0, 0.7), (3.0, 0.9))


def test_stored_trials_count_towards_the_startup_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    plan = [GOOD[0], BAD, GOOD[0]]
    _session(storage, plan, 1)  # one trial completed: one of the two startup trials
    # the bad trial is the second startup trial in the study: it runs to its end
    second, pruner = _session(storage, plan, 1)
    assert [t.state.name for t in second.trials] == ["COMPLETE", "COMPLETE"]
    assert pruner.decision(second, 1).reason == "warm-up: 1 of 2 startup trials complete"


def test_trials_without_stored_costs_are_no_references(tmp_path):
    # trials run by another pruner (Optuna's, or a greenprint before costs were stored) have
    # intermediate values but no costs: the cost-aware pruner cannot place them
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="resumed", storage=storage, direction="maximize", load_if_exists=True
    )
    study.optimize(_objective(GOOD), n_trials=3)  # no pruner of ours: no costs stored
    second, pruner = _session(storage, [*GOOD, BAD], 1)
    assert second.trials[-1].state.name == "COMPLETE"
    assert pruner.decision(second, 3).reason == "warm-up: 0 of 2 startup trials complete"


def test_restore_adds_a_completed_reference_and_judges_none_of_its_points():
    from greenprint.greener import CostAwarePruner

    pruner = CostAwarePruner(n_startup_trials=1)
    # a stored trial's points, a NaN among them (a report without a score is skipped)
    assert pruner.restore("earlier", [(2.0, 0.6), (1.0, 0.4), (3.0, float("nan"))])
    assert not pruner.restore("earlier", [(1.0, 0.9)])  # known: left as it is
    assert pruner.status("earlier") == "complete" and pruner.decision("earlier") is None
    assert pruner.curve("earlier") == ((1.0, 0.4), (2.0, 0.6))
    assert pruner.report("new", 1.5, 0.3)  # 0.3 against 0.5 (0.4 and 0.6 interpolated)
    assert pruner.decision("new").threshold == pytest.approx(0.5)
