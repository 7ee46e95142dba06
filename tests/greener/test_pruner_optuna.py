"""CostAwareOptunaPruner in a real in-memory Optuna study, beside Optuna's own MedianPruner."""

from __future__ import annotations

import time

import pytest

from integrations._frameworks import need

optuna = need("optuna", "optuna")

import greenprint as gp  # noqa: E402
from greenprint._exceptions import ConfigError  # noqa: E402
from greenprint.greener import CostAwareOptunaPruner  # noqa: E402
from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402
from greenprint.tracking import active_runs  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

#: trial number -> (FPO per epoch, score after each epoch)
TRIALS = {
    0: (100, [0.2, 0.4, 0.6, 0.8]),  # expensive, good in the end
    1: (10, [0.05 * e for e in range(1, 11)]),  # 10x cheaper per epoch, better per FPO
    2: (100, [0.1, 0.15, 0.2, 0.25]),  # expensive and bad
}


def objective(trial: optuna.Trial) -> float:
    per_epoch, scores = TRIALS[trial.number]
    run = list(active_runs())[-1]  # the run GreenprintCallback.track opened for this trial
    for epoch, score in enumerate(scores):
        run.add_fpo(per_epoch)
        trial.report(score, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return scores[-1]


def _study(pruner: optuna.pruners.BasePruner, name: str, ledger) -> optuna.Study:
    cb = GreenprintCallback(ledger=ledger, **FAST)
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective), n_trials=len(TRIALS), callbacks=[cb])
    return study


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def test_is_an_optuna_pruner():
    assert isinstance(CostAwareOptunaPruner(), optuna.pruners.BasePruner)


def test_equal_fpo_keeps_the_cheap_trial_that_a_step_median_prunes(tmp_path):
    ledger = tmp_path / "l.db"
    by_step = _study(optuna.pruners.MedianPruner(n_startup_trials=1), "by-step", ledger)
    # at epoch 0 the cheap trial has 0.05 against 0.2: Optuna's median stops it
    assert _states(by_step) == ["COMPLETE", "PRUNED", "PRUNED"]

    pruner = CostAwareOptunaPruner(cost="fpo", n_startup_trials=1)
    by_cost = _study(pruner, "by-cost", ledger)
    assert _states(by_cost) == ["COMPLETE", "COMPLETE", "PRUNED"]
    # the cheap trial reached 100 FPO with 0.5 where trial 0 had 0.2: kept
    kept = pruner.decision(by_cost, 1)
    assert kept is not None and not kept.prune
    # the bad expensive one at 100 FPO: 0.1 against the median of 0.2 (trial 0) and 0.5
    # (trial 1 after 10 epochs of 10 FPO)
    stopped = pruner.decision(by_cost, 2)
    assert stopped is not None and stopped.prune
    assert (stopped.cost, stopped.threshold) == (100.0, pytest.approx(0.35))
    # the runs in the ledger say the same, with the cost each trial paid
    runs = {r.name: r for r in gp.Ledger(ledger).runs(study="by-cost")}
    assert [runs[f"trial-{n}"].status for n in range(3)] == ["finished", "finished", "pruned"]
    assert [runs[f"trial-{n}"].fpo for n in range(3)] == [400, 100, 100]


def test_energy_cost_comes_from_the_trials_run(tmp_path):
    seen = []

    def objective_energy(trial: optuna.Trial) -> float:
        for epoch in range(3):
            sum(i * i for i in range(20_000))
            trial.report(float(epoch), epoch)
            trial.should_prune()
        seen.append(list(active_runs())[-1].energy_kwh)
        return 1.0

    pruner = CostAwareOptunaPruner(cost="energy", n_startup_trials=0)
    cb = GreenprintCallback(ledger=tmp_path / "l.db", **FAST)
    study = optuna.create_study(study_name="energy", direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective_energy), n_trials=2, callbacks=[cb])
    curve = pruner.pruner_for(study).curve(1)
    assert len(curve) >= 1
    assert all(0.0 <= cost <= seen[1] for cost, _ in curve)


def test_a_cost_given_by_the_objective_takes_precedence(tmp_path):
    def objective_given(trial: optuna.Trial) -> float:
        for epoch in range(3):
            trial.set_user_attr("greenprint_cost", 2.0 * (epoch + 1))
            trial.report(0.1 * (epoch + 1), epoch)
            trial.should_prune()
        return 0.3

    pruner = CostAwareOptunaPruner(n_startup_trials=0)
    study = optuna.create_study(study_name="given", direction="maximize", pruner=pruner)
    study.optimize(objective_given, n_trials=2)  # no greenprint run at all
    curve = pruner.pruner_for(study).curve(0)
    assert [c for c, _ in curve] == [2.0, 4.0, 6.0]
    assert [s for _, s in curve] == pytest.approx([0.1, 0.2, 0.3])
    # trial 0 became a reference when trial 1 asked (the study's state is read at each call)
    assert pruner.pruner_for(study).status(0) == "complete"


def test_no_cost_known_says_how_to_give_one():
    def objective_bare(trial: optuna.Trial) -> float:
        trial.report(0.5, 0)
        trial.should_prune()
        return 0.5

    study = optuna.create_study(direction="maximize", pruner=CostAwareOptunaPruner())
    with pytest.raises(ConfigError, match="GreenprintCallback.track"):
        study.optimize(objective_bare, n_trials=1, catch=())


def test_bad_cost_option():
    with pytest.raises(ConfigError, match="cost"):
        CostAwareOptunaPruner(cost="co2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_startup_trials"):
        CostAwareOptunaPruner(n_startup_trials=-2)


# ------------------------------------------------ a trial whose folds are runs of their own
def _cv_objective(ledger, costs: list[tuple[int, float]], *, ask_inside: bool):
    """3 epochs of 2 folds each, every fold a child run that counts its FPO (the trial counts
    none); should_prune() after each epoch, or inside the epoch's last fold."""

    def objective(trial: optuna.Trial) -> float:
        per_fold = 10 * (trial.number + 1)
        for epoch in range(3):
            for k in range(2):
                with gp.track(f"t{trial.number}-e{epoch}-f{k}", ledger=ledger, **FAST) as fold:
                    fold.add_fpo(per_fold)
                    if ask_inside and k == 1:
                        trial.report(0.1 * (epoch + 1), epoch)
                        trial.should_prune()
            if not ask_inside:
                trial.report(0.1 * (epoch + 1), epoch)
                trial.should_prune()
            costs.append((trial.number, 2 * per_fold * (epoch + 1)))
        return 0.3

    return objective


@pytest.mark.parametrize("ask_inside", [False, True], ids=["between-folds", "inside-a-fold"])
def test_fpo_cost_of_a_trial_whose_folds_counted_it(tmp_path, ask_inside):
    """Before: 'trial 0's run recorded no FPO' (a ConfigError out of should_prune): the FPO
    was on the folds, child runs of the trial. Asked inside a fold, the cost read was the
    fold's (10, 10, 10...), not the trial's. Now the trial's with its folds', as the price
    tag sums them: 20, 40, 60 for trial 0."""
    costs: list[tuple[int, float]] = []
    pruner = CostAwareOptunaPruner(cost="fpo", n_startup_trials=5)
    cb = GreenprintCallback(ledger=tmp_path / "l.db", **FAST)
    study = optuna.create_study(study_name="cv", direction="maximize", pruner=pruner)
    study.optimize(
        cb.track(_cv_objective(tmp_path / "l.db", costs, ask_inside=ask_inside)),
        n_trials=2,
        callbacks=[cb],
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for number in range(2):
        curve = pruner.pruner_for(study).curve(number)
        # inside a fold, that fold's FPO is counted as it stands: all of it, added before
        assert [c for c, _ in curve] == [c for n, c in costs if n == number]
    # the ledger's price tag counts the same: each trial's folds
    from greenprint.analysis import price_tag

    runs = gp.Ledger(tmp_path / "l.db").runs(study="cv")
    tag = price_tag(runs, metric="value")
    assert tag.total.fpo == 2 * 3 * (10 + 20)


def test_energy_cost_asked_inside_a_fold_is_the_trials(tmp_path):
    """Before: the fold's energy (the innermost run), which starts again at 0 in each fold: a
    ConfigError 'cost ... went down'. Now the trial's run, which measures its folds."""
    seen: list[tuple[float, float]] = []

    def objective(trial: optuna.Trial) -> float:
        trial_run = list(active_runs())[-1]
        for epoch in range(3):
            with gp.track(f"fold{epoch}", ledger=tmp_path / "l.db", **FAST):
                end = time.perf_counter() + (0.4 if epoch == 0 else 0.1)  # the first fold: most
                while time.perf_counter() < end:  # busy: the estimate reads CPU time
                    sum(i * i for i in range(2000))
                trial.report(float(epoch), epoch)
                trial.should_prune()
                seen.append((trial.number, trial_run.energy_kwh))
        return 1.0

    pruner = CostAwareOptunaPruner(cost="energy", n_startup_trials=0)
    cb = GreenprintCallback(ledger=tmp_path / "l.db", **FAST)
    study = optuna.create_study(study_name="e", direction="maximize", pruner=pruner)
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    runs = {r.name: r for r in gp.Ledger(tmp_path / "l.db").runs(study="e")}
    for number in range(2):
        costs = [c for c, _ in pruner.pruner_for(study).curve(number)]
        assert costs and costs == sorted(costs)  # a cumulative cost (a repeat is kept once)
        # each read is the trial's energy so far: at most what it had just after the read,
        # at least what it had just before
        after = [kwh for n, kwh in seen if n == number]
        assert costs[-1] <= after[-1] <= runs[f"trial-{number}"].energy_kwh
