"""Session 29, helper H5: a scikit-learn search records which way each scorer is better.

scikit-learn's scorers are all greater-is-better (an error is negated:
``neg_root_mean_squared_error``, ``make_scorer(..., greater_is_better=False)``), but the name
a user gives one says otherwise (``"rmse"``, ``"my_error"``). Before, only the search's
objective (``refit``'s scorer) recorded its direction: with ``refit="r2"``, ``greenprint
report --metric mean_test_rmse`` minimised the negated error by its name and ranked the worst
candidate best; with ``refit=False`` each scorer was recorded as one of the search's
objectives, and the report called a grid search a search of several objectives. Now each
trial records every scorer's direction apart from the objectives (``metric_directions``),
and the report ranks by it, with a note naming the scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.cli import main
from integrations._frameworks import need_installed, one_blas_thread

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}


def _search(tmp_path: Path, kind: str, refit: object) -> tuple[Path, object]:
    """A search of Ridge on 120 diabetes samples, three scorers, tracked into a new ledger."""
    need_installed("sklearn", "sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.metrics import make_scorer, mean_absolute_error
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from greenprint.integrations.sklearn import track_search

    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    scoring = {
        "r2": "r2",
        "rmse": "neg_root_mean_squared_error",
        "my_error": make_scorer(mean_absolute_error, greater_is_better=False),
    }
    grid = {"alpha": [0.01, 1.0, 100.0]}
    if kind == "grid":
        search = GridSearchCV(Ridge(), grid, cv=2, scoring=scoring, refit=refit)
    else:
        search = RandomizedSearchCV(
            Ridge(), grid, n_iter=3, cv=2, scoring=scoring, refit=refit, random_state=0
        )
    db = tmp_path / "g.db"
    with one_blas_thread():
        track_search(search, X, y, ledger=db, study="ridge", **FAST)
    return db, search


def _best_mean(search: object, scorer: str) -> float:
    """The mean test score of the candidate scikit-learn ranked first by ``scorer``."""
    results = search.cv_results_  # type: ignore[attr-defined]
    first = list(results[f"rank_test_{scorer}"]).index(1)
    return float(results[f"mean_test_{scorer}"][first])


def test_a_negated_scorer_beside_the_refit_one_ranks_the_best_candidate_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``refit="r2"``: ``--metric mean_test_rmse`` (``neg_root_mean_squared_error``) and
    ``mean_test_my_error`` (``make_scorer(..., greater_is_better=False)``) are maximised, as
    scikit-learn ranks them, with a note naming the scorer; ``r2`` stays the one objective.
    Before: both minimised by their names, the worst candidate's score the best of all."""
    db, search = _search(tmp_path, "grid", "r2")
    runs = gp.Ledger(db).runs(study="ridge")
    trials = [r for r in runs if r.role == "trial"]
    assert {r.provenance.get("objectives") for r in trials} == {"mean_test_r2: maximize"}
    out = tmp_path / "rep"
    args = ["report", "--ledger", str(db), "--study", "ridge", "--metric", "mean_test_rmse"]
    assert main([*args, "--format", "json", "--out", str(out)]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["mode"] == "max"
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    (exact,) = [s["y"] for p in evp["panels"] for s in p["series"] if s.get("role") == "exact"]
    # the expected best of all the trials is the best candidate's score (scikit-learn's rank 1)
    assert exact[-1] == pytest.approx(_best_mean(search, "rmse"))
    notes = report["notes"]
    (note,) = [n for n in notes if "'mean_test_rmse' is maximised" in n]
    assert "neg_root_mean_squared_error" in note and "--mode min" in note
    assert not any("objectives" in n for n in notes), notes

    from greenprint.report import build_report

    built = build_report(db, "ridge", metric="mean_test_my_error")
    assert built.mode == "max"
    (note,) = [n for n in built.notes if "'mean_test_my_error' is maximised" in n]
    assert "make_scorer(mean_absolute_error, greater_is_better=False)" in note
    assert not any("objectives" in n for n in built.notes), built.notes
    # ranked the other way on purpose (--mode min): the report says the search maximised it
    forced = build_report(db, "ridge", metric="mean_test_rmse", mode="min")
    assert forced.mode == "min"
    (note,) = [n for n in forced.notes if "the search maximised 'mean_test_rmse'" in n]
    assert "ranks it lowest first" in note and "--mode max" in note, note
    assert not any("objectives" in n for n in forced.notes), forced.notes


def test_several_scorers_without_refit_are_no_search_of_several_objectives(
    tmp_path: Path,
) -> None:
    """``refit=False``: the search chose no candidate and optimised none of its scorers; each
    keeps its direction, and the report ranks ``mean_test_my_error`` highest first (its final
    run the candidate scikit-learn ranked first by it) without calling the search one of three
    objectives. Before: 'the search optimised 3 objectives' and a Pareto front over them."""
    db, search = _search(tmp_path, "random", False)
    runs = gp.Ledger(db).runs(study="ridge")
    assert not any(r.provenance.get("objectives") for r in runs)

    from greenprint.report import build_report

    report = build_report(db, "ridge", metric="mean_test_my_error")
    assert report.mode == "max"
    assert report.price_tag.final is not None
    assert report.price_tag.final.score == pytest.approx(_best_mean(search, "my_error"))
    assert not any("objectives" in n for n in report.notes), report.notes
    assert any("'mean_test_my_error' is maximised" in n for n in report.notes), report.notes
