"""Issue 13's "done when" for Optuna and scikit-learn: one ledger, read by `greenprint report`.

An Optuna study with pruned and failed trials and a scikit-learn search with two joblib worker
processes land in one ledger with their roles and statuses, and the CLI's JSON report reads
them right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from integrations._frameworks import need_installed

need_installed("optuna", "optuna")
need_installed("sklearn", "sklearn")


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> None:
    """Import Optuna and scikit-learn when this module's tests run, not at collection.

    Every pytest-xdist worker collects every module; scikit-learn and SciPy take about 2 s of CPU
    to import. The names are this module's globals, as a top-level import would make them.
    """
    global optuna, load_digits, LogisticRegression, GridSearchCV, GreenprintCallback, track_search
    import optuna
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from greenprint.integrations.optuna import GreenprintCallback
    from greenprint.integrations.sklearn import track_search


FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.report(x, 0)
    if trial.number == 1:
        raise optuna.TrialPruned()
    if trial.number == 2:
        raise ValueError("diverged")
    return x


def _report(db: Path, study: str, out: Path) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "greenprint",
            "report",
            "--ledger",
            str(db),
            "--study",
            study,
            "--format",
            "json",
            "--out",
            str(out),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def test_one_ledger_reported_right_by_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "study.db"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="hpo", direction="maximize")
    study.optimize(cb.track(_objective), n_trials=4, callbacks=[cb], catch=(ValueError,))

    X, y = load_digits(return_X_y=True)
    search = GridSearchCV(LogisticRegression(max_iter=100), {"C": [0.1, 1.0]}, cv=2, n_jobs=2)
    track_search(search, X[:200], y[:200], ledger=db, study="cv", **FAST)

    hpo = _report(db, "hpo", tmp_path / "hpo")
    rows = {r["name"]: r for r in hpo["runs"]}
    assert {name: (r["role"], r["status"]) for name, r in rows.items()} == {
        "trial-0": ("trial", "finished"),
        "trial-1": ("trial", "pruned"),
        "trial-2": ("trial", "failed"),
        "trial-3": ("trial", "finished"),
    }
    assert not any(r["role_inferred"] for r in rows.values())
    tag = hpo["price_tag"]
    assert set(tag["by_status"]) == {"finished", "pruned", "failed"}
    assert tag["total"]["trials"] == 4 and hpo["metric"] == "value"
    best = max(study.trials[i].value for i in (0, 3))
    assert tag["final"]["score"] == pytest.approx(best)

    cv = _report(db, "cv", tmp_path / "cv")
    roles = sorted(r["role"] for r in cv["runs"])
    assert roles == ["final", "part", "part", "part", "part", "sweep", "trial", "trial"]
    assert not any(r["role_inferred"] for r in cv["runs"])
    assert cv["metric"] == "score" and cv["price_tag"]["total"]["trials"] == 2
    final = next(r for r in cv["runs"] if r["is_final"])
    assert final["role"] == "final" and final["params"] == search.best_params_
    sweep = next(r for r in cv["runs"] if r["role"] == "sweep")
    assert cv["price_tag"]["total"]["energy_kwh"] == pytest.approx(sweep["energy_kwh"])
