"""The pruned-trials section on studies built as users build them (s35 review).

A real Optuna study through ``GreenprintCallback`` whose objective does what training loops
do: it logs a training loss at every global step (hundreds of them, 100 apart) while it
reports the validation score to Optuna at each epoch, the score peaks at an epoch before the
last (over-fitting), each trial runs a cross-validation fold as a ``part`` that logs steps of
its own, and a ``final`` model is retrained for 100 epochs and a ``baseline`` logs 200. The
step a pruned trial is set against is the finished trials' last *reported* epoch (9): not a
global step (the saving read 3.25 Wh from 77 uWh spent, 100.0% of the study, before), not
the epoch where the score peaked (the report reads only a metric's first, last, best and worst
points, and Optuna's value ends on a point without a step: it read epoch 2 of 0..5 in a
Lightning study), not a part's, the final run's or the baseline's steps.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from integrations._frameworks import need

optuna = need("optuna", "optuna")

from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402
from greenprint.report import build_report, write_report  # noqa: E402
from greenprint.tracking import active_runs  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
EPOCHS = 10  # reported as range(10): epochs 0..9
BATCHES = 8  # a training loss logged at each, at global steps 100, 200, ...
FPO_PER_BATCH = 125_000  # 1 MFPO an epoch
SLOPES = [1.0, 0.9, 0.1, 0.95, 0.05, 0.2]


def _score(slope: float, epoch: int) -> float:
    """Rises to epoch 5, then falls (over-fitting): the best score is not the last step's."""
    return slope * (epoch if epoch <= 5 else 10 - epoch)


def _objective(trial: optuna.Trial) -> float:
    slope = trial.suggest_float("slope", 0.0, 1.0)
    run = list(active_runs())[-1]  # the trial's greenprint run
    global_step = 0
    score = 0.0
    for epoch in range(EPOCHS):
        for _ in range(BATCHES):
            global_step += 100
            run.add_fpo(FPO_PER_BATCH)
            run.log(step=global_step, train_loss=1.0 / global_step)
        score = _score(slope, epoch)
        trial.report(score, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    with gp.track(f"fold-{trial.number}", role="part", **FAST) as fold:  # a CV fold's refit
        for step in range(0, 500, 50):
            fold.log(step=step, fold_loss=0.5)
    return score


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    db = tmp_path_factory.mktemp("pruned_s35") / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(
        study_name="overfit",
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    for slope in SLOPES:
        study.enqueue_trial({"slope": slope})
    study.optimize(cb.track(_objective), n_trials=len(SLOPES), callbacks=[cb])
    with gp.track("final", study="overfit", ledger=db, role="final", **FAST) as run:
        for epoch in range(100):
            run.log(step=epoch, accuracy=0.9)
    with gp.track("baseline", study="overfit", ledger=db, role="baseline", **FAST) as run:
        for epoch in range(200):
            run.log(step=epoch, accuracy=0.5)
    return db, study


def test_a_full_trial_is_read_at_its_last_reported_epoch(study) -> None:
    db, st = study
    pruned = [t for t in st.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in st.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(pruned) >= 2 and len(complete) >= 2
    assert {t.last_step for t in complete} == {EPOCHS - 1}
    s = build_report(db, "overfit").pruning
    assert s is not None
    assert s.full_steps == EPOCHS - 1  # not 6,400 (a global step), 2 (the peak), 99 or 199
    assert s.from_zero
    assert s.trials == len(st.trials) and s.finished == len(complete)
    # exact FPO: each pruned trial ran last_step + 1 epochs of 1 MFPO, a full one 10
    spent = sum(t.last_step + 1 for t in pruned) * BATCHES * FPO_PER_BATCH
    saved = sum(EPOCHS - t.last_step - 1 for t in pruned) * BATCHES * FPO_PER_BATCH
    assert s.fpo == spent and s.saved_fpo == saved
    for row, t in zip(s.rows, pruned, strict=True):
        assert row.step == t.last_step and row.scale == pytest.approx(EPOCHS / (t.last_step + 1))
    text = " ".join(s.lines())
    assert "a trial run to the end reached step 9 (steps counted from 0)." in text


def test_every_trial_records_its_last_reported_step_and_its_metric(study) -> None:
    db, st = study
    with gp.Ledger(db) as led:
        runs = {r.name: r for r in led.runs(study="overfit")}
    for t in st.trials:
        provenance = runs[f"trial-{t.number}"].provenance
        assert provenance["last_step"] == str(t.last_step)
        assert provenance["step_metric"] == "value"
    assert "last_step" not in runs["final"].provenance


def test_the_price_tag_and_the_section_agree(study) -> None:
    db, _ = study
    report = build_report(db, "overfit")
    s, tag = report.pruning, report.price_tag
    assert s is not None
    assert len(s.rows) == tag.by_status["pruned"].trials
    assert s.finished == tag.by_status["finished"].trials
    assert s.energy_kwh == pytest.approx(tag.by_status["pruned"].energy_kwh)
    d = s.to_dict()
    assert d["energy_share"] == pytest.approx(s.energy_kwh / tag.total.energy_kwh)


def _user_trial(
    db, name, *, epochs, stop_at=None, step=None, metric=None, no_step=False, loss=True
):
    """A user's own loop: val_loss each epoch (1..N), a loss at each of 10 global steps."""
    with gp.track(name, study="loop", ledger=db, role="trial", **FAST) as run:
        if no_step:
            run.add_fpo(500)
            run.prune(by="a look at the data")
            return run
        for epoch in range(1, epochs + 1):
            for b in range(10):
                run.add_fpo(100)
                if loss:
                    run.log(step=(epoch - 1) * 1000 + (b + 1) * 100, loss=1.0)
            run.log(step=epoch, val_loss=1.0 / epoch)
            if epoch == stop_at:
                named = {} if metric is None else {"metric": metric}
                run.prune(step=epoch if step is None else step, by="patience", **named)
                break
    return run


def test_run_prune_metric_reads_full_trials_on_that_metric(tmp_path) -> None:
    db = tmp_path / "g.db"
    _user_trial(db, "full", epochs=8)
    run = _user_trial(db, "stopped", epochs=8, stop_at=2, metric="val_loss")
    assert gp.Ledger(db).run(run.id).provenance["step_metric"] == "val_loss"
    s = build_report(db, "loop").pruning
    assert s is not None and s.full_steps == 8 and not s.from_zero  # not global step 7,900
    (row,) = s.rows
    assert row.scale == 4.0 and s.saved_fpo == 6_000


def test_the_estimate_covers_only_the_trials_with_a_step(tmp_path) -> None:
    db = tmp_path / "g.db"
    _user_trial(db, "full", epochs=8, loss=False)
    _user_trial(db, "stopped", epochs=8, stop_at=2, loss=False)
    _user_trial(db, "no-step", epochs=8, no_step=True)
    s = build_report(db, "loop").pruning
    assert s is not None and s.estimated == 1 and s.fpo == 2_500
    text = " ".join(s.lines())
    # the trial with a step ran 2 of 8 epochs at 1,000 FPO: 8 kFPO run to the end; the one
    # with none (500 FPO) is in what they spent, not in what the estimate covers
    assert "Run to the end, the 1 of them with steps to scale by would have cost about" in text
    assert "and 8 kFPO: pruning saved about" in text
    assert "and 6 kFPO (" in text


def test_a_run_pruned_before_its_first_step_leaves_steps_counted_from_1(tmp_path) -> None:
    db = tmp_path / "g.db"
    _user_trial(db, "full", epochs=8, loss=False)
    _user_trial(db, "stopped", epochs=8, stop_at=2, loss=False)
    with gp.track("before", study="loop", ledger=db, role="trial", **FAST) as run:
        run.prune(step=0, by="patience")  # stopped before its first epoch
    s = build_report(db, "loop").pruning
    assert s is not None and not s.from_zero  # every logged step starts at 1
    rows = {r.name: r for r in s.rows}
    assert rows["stopped"].scale == 4.0  # 8 / 2, not 9 / 3
    assert rows["before"].step == 0 and rows["before"].scale is None


def test_a_study_with_no_energy_measured_reports_without_dividing_by_zero(tmp_path) -> None:
    """meters=[] (nothing measured: 0 Wh): the report raised ZeroDivisionError here."""
    db = tmp_path / "g.db"
    for name, stop in (("a", None), ("b", None), ("c", 2), ("d", 3)):
        with gp.track(name, study="unmeasured", ledger=db, role="trial", meters=[], **FAST) as run:
            for epoch in range(1, 7):
                run.log(step=epoch, val_loss=1.0 / epoch)
                if epoch == stop:
                    run.prune(step=epoch, by="patience")
                    break
    report = build_report(db, "unmeasured")
    written = write_report(report, tmp_path / "out", formats="all", plots=False)
    assert set(written) == {"html", "md", "latex", "json"}
    s = report.pruning
    assert s is not None and s.energy_kwh == 0 and s.full_steps == 6
    assert s.lines()[-1] == (
        "No estimate of the saving: the study recorded no energy (no meter measured it) and "
        "its trials counted no FPO."
    )


def test_a_trial_pruned_past_every_finished_one_is_said_to_have_gone_further(tmp_path) -> None:
    """Epochs as a hyper-parameter: finished trials of 5 epochs, one stopped at epoch 8 of 12.
    It read 'Stopped at step 5 (median; 2 to 8); a trial run to the end reached step 5.'
    and nothing of the trial at 8, counted at no saving."""
    db = tmp_path / "g.db"
    _user_trial(db, "short-a", epochs=5, loss=False)
    _user_trial(db, "short-b", epochs=5, loss=False)
    _user_trial(db, "long", epochs=12, stop_at=8, loss=False)
    _user_trial(db, "early", epochs=12, stop_at=2, loss=False)
    s = build_report(db, "loop").pruning
    assert s is not None and s.full_steps == 5
    rows = {r.name: r for r in s.rows}
    assert rows["long"].scale == 1.0 and rows["early"].scale == 2.5
    assert s.saved_fpo == 3_000  # early: 2 of 5 epochs at 1,000 FPO
    text = " ".join(s.lines())
    assert (
        "a trial run to the end reached step 5; 1 pruned trial went further than any finished "
        "one and counted as run to the end (no saving)."
    ) in text
