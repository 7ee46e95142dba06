"""A real Optuna study whose cross-validation folds count their FPO: the report reads it whole.

Each trial runs 3 folds as child runs and each fold counts its operations (``run.add_fpo``); the
trials and the sweep around the study count none of their own. They are containers: the report
counts them as their folds, so no run's FPO is unknown (it used to read "+ unknown for 5 runs":
the sweep and the 4 trials), and the final trial's FPO is its folds' sum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from integrations._frameworks import need

optuna = need("optuna", "optuna")

import greenprint as gp  # noqa: E402
from greenprint._format import format_fpo  # noqa: E402
from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402
from greenprint.report import build_report, render  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
ROWS, FEATURES = 64, 16


def test_an_optuna_study_whose_folds_counted_fpo_has_no_unknown_fpo(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, FEATURES))

    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("width", 2, 8)
        weights = rng.standard_normal((FEATURES, width))
        scores = []
        for fold in range(3):
            with gp.track(f"trial-{trial.number}-fold{fold}", study="cv", ledger=db, **FAST) as run:
                out = X[fold::3] @ weights  # a MUL and an ADD per term of the product
                run.add_fpo(2 * out.shape[0] * FEATURES * width)
                scores.append(float(np.tanh(out).mean()) + width / 10)
                run.log(accuracy=scores[-1])
        return float(np.mean(scores))

    cb = GreenprintCallback(ledger=db, **FAST)
    with gp.track("search", study="cv", ledger=db, role="sweep", **FAST):
        study = optuna.create_study(study_name="cv", direction="maximize")
        study.optimize(cb.track(objective), n_trials=4, callbacks=[cb])

    runs = gp.Ledger(db).runs(study="cv")
    folds = [r for r in runs if "-fold" in r.name]
    assert len(folds) == 12 and all(r.fpo for r in folds)
    assert all(r.fpo is None for r in runs if "-fold" not in r.name)  # trials and the sweep
    by_trial = {
        t: sum(r.fpo or 0 for r in folds if r.name.startswith(f"trial-{t}-")) for t in range(4)
    }

    report = build_report(db, "cv", metric="value")
    data = json.loads(render(report, "json"))
    total = data["price_tag"]["total"]
    assert total["fpo"] == sum(r.fpo or 0 for r in folds) and total["fpo_unknown"] == 0
    final = data["price_tag"]["final"]
    best = study.best_trial.number
    assert final["name"] == f"trial-{best}" and final["fpo"] == by_trial[best]
    assert {r["name"]: r["fpo"] for r in data["runs"] if r["role"] == "trial"} == {
        f"trial-{t}": by_trial[t] for t in range(4)
    }
    assert "not counting" not in data["compute_statement"]
    md = render(report, "md", plots=False)
    assert f"**FPO**: {format_fpo(total['fpo'])}\n" in md
    assert "unknown for" not in md and "FPO unknown" not in md
    sentence = md[md.index(f"Final run trial-{best}") :].split("\n", 1)[0]
    assert f", {format_fpo(by_trial[best])} and " in sentence, sentence
    statement = md[md.index("## Compute statement") :].split("\n\n")[1]
    assert f"and {format_fpo(total['fpo'])} (floating-point operations)." in statement
