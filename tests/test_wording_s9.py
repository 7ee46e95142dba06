"""Sentences of the price tag and the report that said something untrue (session 9).

1. The energy line's share counts the runs the total sums (top-level runs), but it listed the
   meters of every run, the parts inside them too: a study of trials measured by a counter,
   each running an estimated search, read "100% measured by hardware counters (cpu: estimate
   ...)". The sources beside the share are now those runs'; the others are listed apart.

Studies are built through the real API (Optuna, scikit-learn, gp.track) and the CLI; CLI
commands run as a new user meets them, in an empty folder with a clean environment.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.analysis import price_tag
from greenprint.report import build_report
from greenprint.report._text import energy_provenance
from tracking._meters import ConstantProcessPower


# ------------------------------------------------------------------ 1. the energy line
@pytest.fixture(scope="module")
def trials_with_searches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Optuna trials measured by a counter, each running GridSearchCV(n_jobs=2) inside."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from greenprint.integrations.optuna import GreenprintCallback
    from greenprint.integrations.sklearn import track_search

    db = tmp_path_factory.mktemp("searches") / "g.db"
    X, y = load_iris(return_X_y=True)
    callback = GreenprintCallback(
        ledger=db, study="s", meters=ConstantProcessPower(50.0, per_thread=True)
    )

    def objective(trial: optuna.Trial) -> float:
        c = trial.suggest_float("C", 0.1, 1.0)
        search = GridSearchCV(
            LogisticRegression(C=c, max_iter=200), {"tol": [1e-3, 1e-4]}, cv=2, n_jobs=2
        )
        track_search(search, X, y, ledger=db, study="s")
        return 0.9

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(callback.track(objective), n_trials=2, callbacks=[callback])
    return db


def test_energy_line_lists_the_meters_of_the_runs_its_share_counts(
    trials_with_searches: Path,
) -> None:
    with gp.Ledger(trials_with_searches, create=False) as led:
        runs = led.runs(study="s")
    top = [r for r in runs if r.parent_id is None]
    assert len(top) == 2 and {r.provenance["cpu"] for r in top} == {"test:constant-power"}
    inner = {r.provenance["cpu"] for r in runs if r.parent_id is not None}
    assert inner and all(s.startswith("estimate:") for s in inner)

    summary = price_tag(runs, metric="value").provenance
    # the share: the trials' own counter, their searches' cost inside it
    assert summary.measured_share == pytest.approx(1.0)
    assert summary.counted_sources == {"cpu": ("test:constant-power",)}
    assert set(summary.sources["cpu"]) == {"test:constant-power", *inner}  # every run's, as before
    line = energy_provenance(summary)[0]
    head, _, rest = line.partition("; the runs inside them")
    # the sources beside "100% measured" are the measured runs'; no estimate among them
    assert head == (
        "energy: 100% measured by hardware counters (the runs summed in the total: cpu: "
        "test:constant-power"
    )
    assert rest.startswith(" (their energy is in those runs' figures) also recorded cpu: estimate:")
    assert "ram: estimate:ram" in rest and "test:constant-power" not in rest
    assert summary.to_dict()["counted_sources"] == {"cpu": ["test:constant-power"]}


def test_energy_line_of_top_level_runs_only_is_as_before(tmp_path: Path) -> None:
    """Runs with no run inside them: one list, no "summed in the total" clause."""
    db = tmp_path / "g.db"
    for k in range(2):
        with gp.track(f"t{k}", study="s", ledger=db, meters=ConstantProcessPower(20.0)) as run:
            run.log(acc=0.5)
    with gp.Ledger(db, create=False) as led:
        summary = price_tag(led.runs(study="s"), metric="acc").provenance
    assert summary.counted_sources is None
    assert energy_provenance(summary)[0] == (
        "energy: 100% measured by hardware counters (cpu: test:constant-power)"
    )


def test_json_report_with_inner_runs_keeps_its_schema(trials_with_searches: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from greenprint.report._json import render_json

    schema = json.loads(
        (Path(__file__).parents[1] / "docs" / "report-schema.json").read_text(encoding="utf-8")
    )
    report = build_report(trials_with_searches, "s", metric="value")
    data = json.loads(render_json(report))
    jsonschema.Draft202012Validator(schema).validate(data)
    provenance = data["price_tag"]["provenance"]
    assert provenance["counted_sources"] == {"cpu": ["test:constant-power"]}
    assert set(provenance) <= set(schema["$defs"]["provenance"]["properties"])
