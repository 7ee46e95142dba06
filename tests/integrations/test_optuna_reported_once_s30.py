"""An Optuna objective that logs its score at each epoch and reports it: each point once.

The demo's pruner comparison, and any objective written the way Optuna's pruning examples are
with greenprint beside them, logs the epoch's score on the trial's run (``run.log(step=epoch,
val_accuracy=score)``) and reports it to the pruner (``trial.report(score, epoch)``). The
callback copies Optuna's intermediate values onto the run, so each epoch's point was stored
twice, the same step and value. Now a value the run already has at that step is not copied.
"""

from __future__ import annotations

import greenprint as gp
from integrations._frameworks import need_installed


def test_a_score_logged_and_reported_is_one_point_per_step(tmp_path):
    need_installed("optuna", "optuna")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from greenprint.integrations.optuna import GreenprintCallback

    ledger = tmp_path / "l.db"
    cb = GreenprintCallback(ledger=ledger, study="s", metric_names=["val_accuracy"])

    def objective(trial):
        run = gp.current_run()
        x = trial.suggest_float("x", 0, 1)
        for epoch in range(3):
            score = x * (epoch + 1) / 3
            run.log(step=epoch, val_accuracy=score, train_loss=1 - score)
            trial.report(score, epoch)
        trial.report(0.5, 3)  # reported only: copied onto the run
        return x

    search = optuna.create_study(study_name="s", direction="maximize")
    search.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    for run in gp.Ledger(ledger).runs(study="s"):
        points = [(p.step, p.value) for p in run.metrics if p.name == "val_accuracy"]
        x = run.params["x"]
        # the three epochs once each, the reported-only step 3, and the objective's value
        # (the objective's own expression: x * 3 / 3 is not always x in floats)
        expected = [(epoch, x * (epoch + 1) / 3) for epoch in range(3)] + [(3, 0.5)]
        assert sorted(p for p in points if p[0] is not None) == expected, run.name
