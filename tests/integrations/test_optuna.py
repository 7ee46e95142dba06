"""Optuna: every trial of a real study lands in the ledger with its role, status and figures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from integrations._frameworks import need

optuna = need("optuna", "optuna")

import greenprint as gp  # noqa: E402
from greenprint._exceptions import ConfigError, LedgerError  # noqa: E402
from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def objective(trial: optuna.Trial) -> float:
    """Trial 1 is pruned at step 1, trial 2 fails (caught), trial 3 returns NaN."""
    x = trial.suggest_float("x", -2.0, 2.0)
    layers = trial.suggest_int("layers", 1, 3)
    for step in range(3):
        trial.report(x * step, step)
        if trial.number == 1 and step == 1:
            raise optuna.TrialPruned()
    if trial.number == 2:
        raise ValueError("diverged")
    if trial.number == 3:
        return float("nan")
    return x**2 + layers


def _by_name(ledger: Path, study: str) -> dict[str, gp.RunRecord]:
    return {r.name: r for r in gp.Ledger(ledger).runs(study=study)}


def test_every_trial_is_a_run_with_its_status(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="opt-demo")
    study.optimize(cb.track(objective), n_trials=5, callbacks=[cb], catch=(ValueError,))

    runs = _by_name(db, "opt-demo")
    assert sorted(runs) == [f"trial-{i}" for i in range(5)]
    statuses = {name: r.status for name, r in runs.items()}
    assert statuses == {
        "trial-0": "finished",
        "trial-1": "pruned",
        "trial-2": "failed",
        "trial-3": "failed",
        "trial-4": "finished",
    }
    assert {r.role for r in runs.values()} == {"trial"}
    assert all(r.parent_id is None for r in runs.values())
    assert "ValueError: diverged" in (runs["trial-2"].error or "")
    assert "NaN" in (runs["trial-3"].error or "")
    for trial in study.trials:
        run = runs[f"trial-{trial.number}"]
        assert run.params == trial.params
        assert trial.user_attrs["greenprint_run_id"] == run.id
        assert trial.user_attrs["energy_kwh"] == pytest.approx(run.energy_kwh)
        assert trial.user_attrs["emissions_kg"] == pytest.approx(run.emissions_kg)
        steps = {p.step: p.value for p in run.metrics if p.step is not None}
        assert steps == trial.intermediate_values
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert run.metric("value") == pytest.approx(trial.value)
    # the pruned trial stopped at step 1: its last value is its last report
    assert runs["trial-1"].metric("value") == pytest.approx(study.trials[1].intermediate_values[1])


def test_a_failure_not_in_catch_is_recorded_before_optuna_raises(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="crash")

    def crashes(trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        study.optimize(cb.track(crashes), n_trials=3, callbacks=[cb])
    (run,) = gp.Ledger(db).runs(study="crash")
    assert run.status == "failed" and "CUDA out of memory" in (run.error or "")
    assert "lr" in run.params
    assert study.trials[0].user_attrs["greenprint_run_id"] == run.id


def test_multi_objective_values_and_metric_names(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    study = optuna.create_study(study_name="pareto", directions=["maximize", "minimize"])

    def two(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x, x * x

    cb = GreenprintCallback(ledger=db, **FAST)
    study.optimize(cb.track(two), n_trials=3, callbacks=[cb])
    for run in gp.Ledger(db).runs(study="pareto"):
        assert {p.name for p in run.metrics} == {"values_0", "values_1"}
        assert run.metric("values_1") == pytest.approx(run.metric("values_0") ** 2)

    named = GreenprintCallback(ledger=db, study="pareto-named", metric_names=["acc", "kwh"])
    study.optimize(named.track(two), n_trials=2, callbacks=[named])
    assert {p.name for r in gp.Ledger(db).runs(study="pareto-named") for p in r.metrics} == {
        "acc",
        "kwh",
    }
    wrong = GreenprintCallback(ledger=db, metric_names=["only-one"])
    with pytest.raises(ConfigError, match="2 objective"):
        study.optimize(wrong.track(two), n_trials=1, callbacks=[wrong])


def test_threads_every_trial_recorded_no_sibling_parents_and_one_warning(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="threads")

    def slow(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        import time

        time.sleep(0.05)
        return x

    before = {k: v for k, v in os.environ.items() if k.startswith("GREENPRINT_PARENT")}
    with pytest.warns(UserWarning, match="per process, not per thread") as warned:
        study.optimize(cb.track(slow), n_trials=8, n_jobs=2, callbacks=[cb])
    assert sum("per thread" in str(w.message) for w in warned) == 1
    runs = gp.Ledger(db).runs(study="threads")
    assert len(runs) == 8 and {r.status for r in runs} == {"finished"}
    assert all(r.parent_id is None for r in runs)  # never a sibling thread's child
    after = {k: v for k, v in os.environ.items() if k.startswith("GREENPRINT_PARENT")}
    assert after == before


def test_an_enclosing_sweep_run_contains_the_trials_also_from_threads(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="swept")
    with (
        gp.track("search", study="swept", ledger=db, role="sweep", **FAST) as sweep,
        pytest.warns(UserWarning),
    ):
        study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1)), n_trials=4, n_jobs=2)
    trials = [r for r in gp.Ledger(db).runs(study="swept") if r.role == "trial"]
    assert len(trials) == 4 and {r.parent_id for r in trials} == {sweep.id}
    from greenprint.analysis import price_tag

    tag = price_tag(gp.Ledger(db).runs(study="swept"))
    # counted once: the sweep contains its trials. (Trials in threads are each charged the
    # whole process over their span, so their sum may exceed the sweep's: when two of them ran
    # at the same time, the sweep's measurement is shared out among them; else the sum wins.)
    sweep_kwh = gp.Ledger(db).run(sweep.id).energy_kwh
    trials_kwh = sum(r.energy_kwh for r in trials)
    spans = sorted((r.started_at, r.ended_at) for r in trials)
    together = any(later[0] < max(e for _, e in spans[:k]) for k, later in enumerate(spans) if k)
    expected = sweep_kwh if together and trials_kwh > sweep_kwh else max(sweep_kwh, trials_kwh)
    assert tag.total.energy_kwh == pytest.approx(expected)


WORKER = textwrap.dedent(
    """
    import sys, optuna
    from greenprint.integrations.optuna import GreenprintCallback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage, ledger = sys.argv[1], sys.argv[2]
    study = optuna.load_study(study_name="shared", storage=storage)
    cb = GreenprintCallback(ledger=ledger, sample_interval_s=0.05, flush_interval_s=0.1)
    study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1) ** 2), n_trials=3,
                   callbacks=[cb])
    """
)


def test_process_workers_on_one_rdb_storage_write_one_ledger(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    db = tmp_path / "g.db"
    optuna.create_study(study_name="shared", storage=storage)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen([sys.executable, str(script), storage, str(db)], cwd=tmp_path)
        for _ in range(2)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    study = optuna.load_study(study_name="shared", storage=storage)
    runs = {r.id: r for r in gp.Ledger(db).runs(study="shared")}
    assert len(study.trials) == 6 and len(runs) == 6
    for trial in study.trials:
        run = runs[trial.user_attrs["greenprint_run_id"]]
        assert run.name == f"trial-{trial.number}" and run.status == "finished"
        assert run.params == trial.params


def test_callback_without_track_warns_once(tmp_path: Path) -> None:
    cb = GreenprintCallback(ledger=tmp_path / "g.db")
    study = optuna.create_study(study_name="untracked")
    with pytest.warns(UserWarning, match=r"cb.track\(objective\)") as warned:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[cb])
    assert len([w for w in warned if "cb.track" in str(w.message)]) == 1


def test_bad_input_is_a_clear_greenprint_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="objective function"):
        GreenprintCallback(ledger=tmp_path / "g.db").track("not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown option"):
        GreenprintCallback(ledger=tmp_path / "g.db", colour="green")
    with pytest.raises(ConfigError, match="metric_names"):
        GreenprintCallback(ledger=tmp_path / "g.db", metric_names=["a", "a"])
    with pytest.raises(ConfigError, match="PUE|pue"):
        GreenprintCallback(ledger=tmp_path / "g.db", pue=0.5)
    closed = gp.Ledger(tmp_path / "closed.db")
    closed.close()
    with pytest.raises(LedgerError, match="closed"):
        GreenprintCallback(ledger=closed)

    cb = GreenprintCallback(ledger=tmp_path / "g.db")
    unnamed = optuna.create_study()
    with pytest.raises(ConfigError, match="no name"):
        unnamed.optimize(cb.track(lambda t: 1.0), n_trials=1, callbacks=[cb])
    with pytest.raises(ConfigError, match="FrozenTrial"):
        cb("study", "trial")  # type: ignore[arg-type]
    # a name given to the callback makes an unnamed study fine
    named = GreenprintCallback(ledger=tmp_path / "g.db", study="given")
    unnamed.optimize(named.track(lambda t: 1.0), n_trials=1, callbacks=[named])
    assert [r.status for r in gp.Ledger(tmp_path / "g.db").runs(study="given")] == ["finished"]


def test_the_study_direction_ranks_its_trials_and_nothing_warns(tmp_path: Path) -> None:
    """Optuna minimises ``value`` by default: the trials record the study's direction, and
    the analysis (the report, ``study_trials``, ``price_tag``) ranks ``value`` lowest first
    with a note, where it maximised it before (the callback warned instead); a name that says
    so ranks as before, without the note."""
    import warnings

    from greenprint.analysis import price_tag, study_trials

    def ranked(direction: str, **kwargs: object) -> tuple[str, str | None, list[str]]:
        cb = GreenprintCallback(ledger=tmp_path / "g.db", **kwargs)  # type: ignore[arg-type]
        name = f"dir-{direction}-{len(kwargs)}"
        study = optuna.create_study(study_name=name, direction=direction)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1)), n_trials=3)
        runs = gp.Ledger(tmp_path / "g.db").runs(study=name)
        metric = runs[0].metrics[-1].name
        trials = study_trials(runs, metric=metric)
        assert price_tag(runs, metric=metric).mode == trials.mode
        best = min if trials.mode == "min" else max
        best_value = best(t.value for t in study.trials)
        tag = price_tag(runs, metric=metric)
        assert tag.final is not None and tag.final.score == best_value
        return trials.mode, trials.mode_note, [str(w.message) for w in caught]

    mode, note, warned = ranked("minimize")
    assert (mode, warned) == ("min", [])
    assert note is not None and note.startswith(
        "'value' is minimised, as the search that ran the trials minimised it"
    )
    assert ranked("maximize") == ("max", None, [])
    mode, note, _ = ranked("minimize", metric_names=["val_loss"])
    assert mode == "min" and note is not None and "its name says lower is better" in note
    mode, note, _ = ranked("maximize", metric_names=["error_rate"])
    assert mode == "max" and note is not None and "'error_rate' is maximised, as the search" in note


def _trial_run() -> gp.Run:
    """The greenprint run of the trial in progress (opened by ``cb.track``)."""
    from greenprint.tracking import active_runs

    return list(active_runs())[-1]


def test_a_stop_budget_ends_the_trial_interrupted_with_its_cost(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, budget_fpo=1_000, on_exceed="stop", **FAST)
    study = optuna.create_study(study_name="capped", direction="maximize")
    reached: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        run = _trial_run()
        for step in range(10):
            run.add_fpo(400)  # 400, 800, 1,200 > 1,000: BudgetExceeded at step 2
            reached.append(step)
            trial.report(float(step), step)
        return 1.0

    # catch: the study goes on with its next trial (without it, optimize raises)
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb], catch=(gp.BudgetExceeded,))

    assert reached == [0, 1, 0, 1]  # each trial stopped at the add_fpo that crossed 1,000
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    runs = _by_name(db, "capped")
    for trial in study.trials:
        run = runs[f"trial-{trial.number}"]
        # the callback saw Optuna's FAIL and kept the budget's reason
        assert run.status == "interrupted"
        assert (run.error or "").startswith("BudgetExceeded:") and "budget_fpo" in run.error
        assert run.fpo == 1_200  # the cost up to the stop is kept, the crossing step included
        assert run.energy_kwh > 0 and run.ended_at is not None
        assert {p.step: p.value for p in run.metrics if p.step is not None} == {0: 0.0, 1: 1.0}
        assert trial.user_attrs["greenprint_run_id"] == run.id


def test_without_catch_a_stop_budget_ends_the_study(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    study_cap = gp.Budget(fpo=2_500, per="study", on_exceed="stop")
    cb = GreenprintCallback(ledger=db, budget=study_cap, **FAST)
    study = optuna.create_study(study_name="study-cap", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        _trial_run().add_fpo(1_000)  # the study: 1,000, 2,000, then 3,000 > 2,500
        return float(trial.number)

    with pytest.raises(gp.BudgetExceeded, match="study 'study-cap'") as raised:
        study.optimize(cb.track(objective), n_trials=10, callbacks=[cb])
    assert raised.value.per == "study" and raised.value.spent == 3_000
    runs = _by_name(db, "study-cap")
    assert {name: r.status for name, r in runs.items()} == {
        "trial-0": "finished",
        "trial-1": "finished",
        "trial-2": "interrupted",
    }
    assert sum(r.fpo or 0 for r in runs.values()) == 3_000


def test_a_budget_crossed_after_the_objective_returns_still_ends_the_run(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, budget_fpo=100, on_exceed="stop", **FAST)
    study = optuna.create_study(study_name="late", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        _trial_run().set(fpo=500)  # recorded, but set() does not check budgets
        trial.report(0.5, 0)
        return 0.75

    study.optimize(cb.track(objective), n_trials=1, callbacks=[cb])

    # Optuna has the value; the run records it, ends (no sampler left running) interrupted
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    (run,) = gp.Ledger(db).runs(study="late")
    assert run.status == "interrupted" and (run.error or "").startswith("BudgetExceeded:")
    assert run.metric("value") == 0.75 and run.fpo == 500
    from greenprint.tracking import active_runs

    assert list(active_runs()) == []
