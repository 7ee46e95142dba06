"""A pruned trial says when and by what it was stopped, and the report says what pruning saved.

Studies built as users build them: a real Optuna study with ``MedianPruner`` through
``GreenprintCallback``, a real scikit-learn ``HalvingGridSearchCV`` through ``track_search``;
each run's ``pruned_at_step`` checked against the framework's own figures (Optuna's
``FrozenTrial.last_step`` and ``intermediate_values``, the search's ``n_resources_``), the
report's saving against a hand calculation.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

import greenprint as gp
from integrations._frameworks import need

optuna = need("optuna", "optuna")

from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402
from greenprint.report import build_report, write_report  # noqa: E402
from greenprint.tracking import active_runs  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
STEPS = 10  # steps 0..9, as range(10) gives them
MFPO = 1_000_000

# (start, slope, width): score start + slope * step; width MFPO per step
PLAN = [(0.0, 1.0, 1), (0.0, 0.9, 2), (0.0, 0.2, 3), (1.5, 0.5, 4), (0.0, 0.95, 5), (0.3, 0.1, 6)]


def _objective(trial: optuna.Trial) -> float:
    start = trial.suggest_float("start", 0.0, 2.0)
    slope = trial.suggest_float("slope", 0.0, 1.0)
    width = trial.suggest_int("width", 1, 8)
    run = list(active_runs())[-1]  # the trial's greenprint run
    score = 0.0
    for step in range(STEPS):
        run.add_fpo(width * MFPO)  # this step's FPO
        score = start + slope * step
        trial.report(score, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return score


@pytest.fixture(scope="module")
def median_study(tmp_path_factory):
    db = tmp_path_factory.mktemp("pruned") / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(
        study_name="median",
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for start, slope, width in PLAN:
        study.enqueue_trial({"start": start, "slope": slope, "width": width})
    study.optimize(cb.track(_objective), n_trials=len(PLAN), callbacks=[cb])
    return db, study


def test_each_pruned_run_records_optunas_last_step_and_pruner(median_study) -> None:
    db, study = median_study
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) >= 2 and len({t.last_step for t in pruned}) >= 2  # stopped at 2+ steps
    with gp.Ledger(db) as led:
        runs = {r.name: r for r in led.runs(study="median")}
    for t in study.trials:
        run = runs[f"trial-{t.number}"]
        if t.state == optuna.trial.TrialState.PRUNED:
            assert run.status == "pruned"
            assert run.provenance["pruned_at_step"] == str(t.last_step)
            assert t.last_step == max(t.intermediate_values)
            assert run.provenance["pruned_by"] == "Optuna MedianPruner"
        else:
            assert run.status == "finished"
            assert "pruned_at_step" not in run.provenance
            assert "pruned_by" not in run.provenance


def test_report_says_when_pruned_and_what_it_saved_by_hand(median_study) -> None:
    db, study = median_study
    report = build_report(db, "median")
    s = report.pruning
    assert s is not None
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    steps = [t.last_step for t in pruned]
    assert len(s.rows) == len(pruned) and s.finished == len(complete)
    assert s.trials == len(study.trials)
    assert s.by == ("Optuna MedianPruner",)
    assert s.full_steps == max(t.last_step for t in complete) == STEPS - 1
    assert s.from_zero  # range(10): step s is s + 1 steps done
    d = s.to_dict()
    assert d["steps"]["median"] == statistics.median(steps)
    assert (d["steps"]["min"], d["steps"]["max"]) == (min(steps), max(steps))
    # FPO: exact, so the saving is too: each pruned trial ran last_step + 1 of 10 steps
    width = {t.number: t.params["width"] for t in study.trials}
    spent_fpo = sum(width[t.number] * MFPO * (t.last_step + 1) for t in pruned)
    saved_fpo = sum(width[t.number] * MFPO * (STEPS - t.last_step - 1) for t in pruned)
    total_fpo = spent_fpo + sum(width[t.number] * MFPO * STEPS for t in complete)
    assert s.fpo == spent_fpo and d["estimate"]["saved_fpo"] == saved_fpo
    assert d["fpo_share"] == pytest.approx(spent_fpo / total_fpo)
    # energy: each pruned run's measured energy times (10 / (last_step + 1) - 1)
    with gp.Ledger(db) as led:
        runs = {r.name: r for r in led.runs(study="median")}
    by_name = {t.number: runs[f"trial-{t.number}"] for t in pruned}
    saved_kwh = sum(by_name[t.number].energy_kwh * (STEPS / (t.last_step + 1) - 1) for t in pruned)
    assert s.saved_energy_kwh == pytest.approx(saved_kwh, rel=1e-9)
    assert s.energy_kwh == pytest.approx(sum(r.energy_kwh for r in by_name.values()))
    assert d["energy_share"] == pytest.approx(s.energy_kwh / report.price_tag.total.energy_kwh)
    for row in s.rows:
        assert row.step_recorded and row.scale == pytest.approx(STEPS / (row.step + 1))


def test_all_four_formats_say_it(median_study, tmp_path: Path) -> None:
    db, study = median_study
    report = build_report(db, "median")
    files = write_report(report, tmp_path, plots=False)
    n = len(report.pruning.rows)
    head = f"{n} of {len(study.trials)} trials pruned by Optuna MedianPruner."
    for fmt in ("md", "html", "latex"):
        text = files[fmt].read_text(encoding="utf-8")
        assert "Pruned trials" in text
        assert head in text
        assert "a trial run to the end reached step 9 (steps counted from 0)" in text
        assert "pruning saved about" in text and "An estimate" in text
        assert "MFPO" in text  # every number with its unit
    html = files["html"].read_text(encoding="utf-8")
    assert '<a href="#pruned">Pruned trials</a>' in html
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    assert data["pruning"] == json.loads(json.dumps(report.pruning.to_dict()))
    by_id = {r["id"]: r for r in data["runs"]}  # a row's name and cost: its run's
    rows = data["pruning"]["rows"]
    assert [by_id[r["run_id"]]["name"] for r in rows] == [r.name for r in report.pruning.rows]
    assert [by_id[r["run_id"]]["energy_kwh"] for r in rows] == [
        r.energy_kwh for r in report.pruning.rows
    ]


def test_a_study_without_pruned_trials_has_no_section(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="whole", direction="maximize")
    study.optimize(cb.track(lambda t: t.suggest_float("x", 0, 1)), n_trials=2, callbacks=[cb])
    report = build_report(db, "whole")
    assert report.pruning is None
    files = write_report(report, tmp_path / "out", formats=("md", "json"), plots=False)
    assert "Pruned trials" not in files["md"].read_text(encoding="utf-8")
    assert json.loads(files["json"].read_text(encoding="utf-8"))["pruning"] is None


def test_halving_search_records_the_resources_it_eliminated_at(tmp_path: Path) -> None:
    """HalvingGridSearchCV: 8 candidates on 60 examples, 4 on 120, 2 on 240. A candidate is
    fitted again at each iteration it reaches and its run's cost holds them all: one
    eliminated after the iteration on 60 (120) records 60 (60 + 120 = 180) against
    60 + 120 + 240 = 420, and the report's saving is each pruned trial's energy times
    420 / that - 1 (240 / 120 left out the iteration on 60 that a candidate kept to the end
    also ran: 2 where it is 2.33)."""
    need("sklearn", "sklearn")
    from sklearn.datasets import load_digits
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV
    from sklearn.svm import SVC

    from greenprint.integrations.sklearn import track_search

    X, y = load_digits(return_X_y=True)
    db = tmp_path / "g.db"
    grid = {"C": [0.01, 0.1, 1, 10], "gamma": [1e-3, 1e-2]}
    search = HalvingGridSearchCV(SVC(), grid, cv=3, factor=2, random_state=0)
    track_search(search, X[:240], y[:240], ledger=db, study="halving", name="halving", **FAST)
    assert list(search.n_resources_) == [60, 120, 240]
    with gp.Ledger(db) as led:
        trials = [r for r in led.runs(study="halving") if r.role == "trial"]
    pruned = [r for r in trials if r.status == "pruned"]
    assert len(pruned) == 6
    for run in pruned:
        # its params say the iteration it was last scored in, as cv_results_ has it
        resources = search.n_resources_[run.params["iter"]]
        assert run.params["n_resources"] == resources
        done = sum(search.n_resources_[: run.params["iter"] + 1])
        assert run.provenance["pruned_at_step"] == str(done)
        assert run.provenance["full_steps"] == "420"
        assert run.provenance["pruned_by"] == "HalvingGridSearchCV"
        assert run.provenance["step_unit"] == "cumulative resources"
    assert sorted(int(r.provenance["pruned_at_step"]) for r in pruned) == [60] * 4 + [180] * 2
    s = build_report(db, "halving").pruning
    assert s is not None and s.unit == "cumulative resources" and s.full_steps == 420
    assert not s.from_zero
    rows = {r.run_id: r for r in s.rows}
    # a pruned trial's energy holds its earlier iterations' (its parts)
    saved = sum(
        rows[r.id].energy_kwh * (420 / int(r.provenance["pruned_at_step"]) - 1) for r in pruned
    )
    assert s.saved_energy_kwh == pytest.approx(saved, rel=1e-9)
    text = " ".join(s.lines())
    assert "6 of 8 trials pruned by HalvingGridSearchCV." in text
    assert "Stopped at cumulative resources 60 (median; 60 to 180); a trial run to the " in text
    assert "end reached cumulative resources 420." in text
    assert "scaled by cumulative resources of a full trial / cumulative resources it ran" in text
