"""scikit-learn searches shorter than one meter sample: their fits share the measured search.

``method="apportion"`` shares the search's measured cost out to its candidates, folds and refit
by the fit and score times of ``cv_results_``. It took the reading from the sweep's live record,
before the sweep's final meter read: a search that ended before the first sample (a small grid
on small data, well under the default 1 s interval) gave every trial, fold and refit 0 kWh, and
a longer one left its last interval out of every share. The shares are now of the sweep's
final reading, so they sum to what the sweep measured.

Each run's share, by hand (the rule the docs state): candidate ``i`` gets
``(mean_fit_time[i] + mean_score_time[i]) * n_splits / T``, the refit ``refit_time_ / T``, where
``T`` is the sum of all of these; each fold a third (``1 / n_splits``) of its candidate's. A set
energy meter (``Joules``) on the sweep, sampled every hour, makes every search here shorter than
one sample, with a measured whole known exactly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from _set_energy import Joules
from greenprint.analysis import price_tag
from integrations._frameworks import need_installed, one_blas_thread

need_installed("sklearn", "sklearn")

#: 3600 J: 1e-3 kWh, whatever the search's duration
JOULES = 3600.0
WHOLE_KWH = JOULES / 3.6e6
#: no sample while the search runs: its only readings are the start's and the final one
ONE_SAMPLE_AFTER = {"sample_interval_s": 3600.0, "flush_interval_s": 3600.0}


@pytest.fixture(scope="module", autouse=True)
def _frameworks() -> Iterator[None]:
    """Import scikit-learn when this module's tests run (as test_sklearn.py does)."""
    global load_iris, DecisionTreeClassifier, LogisticRegression, GridSearchCV
    global RandomizedSearchCV, make_pipeline, StandardScaler, track_search, trial_id
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search, trial_id

    with one_blas_thread():
        yield


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


def _shares_by_hand(search: object) -> tuple[list[float], float]:
    """Each candidate's share of the search, and the refit's, from ``cv_results_``."""
    results = search.cv_results_  # type: ignore[attr-defined]
    n_splits = search.n_splits_  # type: ignore[attr-defined]
    times = [
        (fit + score) * n_splits
        for fit, score in zip(results["mean_fit_time"], results["mean_score_time"], strict=True)
    ]
    refit = getattr(search, "refit_time_", 0.0) if search.refit else 0.0  # type: ignore[attr-defined]
    whole = sum(times) + refit
    return [t / whole for t in times], refit / whole


def _search(db: Path, study: str, search: object, X: object, y: object, **options: object):
    """The search tracked with ``method="apportion"`` on a set energy; its ledger's runs."""
    track_search(search, X, y, ledger=db, study=study, method="apportion",
                 meters=Joules(JOULES), **ONE_SAMPLE_AFTER, **options)  # fmt: skip
    return gp.Ledger(db).runs(study=study)


def _check_shares(runs: list[gp.RunRecord], search: object, total_kwh: float = WHOLE_KWH) -> None:
    """Every fit has its share of the sweep's measured energy, to 1e-9, and none is 0; the
    price tag's total is ``total_kwh`` (the sweep's, counted once)."""
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.energy_kwh == pytest.approx(WHOLE_KWH, rel=1e-9)
    shares, refit_share = _shares_by_hand(search)
    n_splits = search.n_splits_  # type: ignore[attr-defined]
    trials = {r.id: r for r in runs if r.role == "trial"}
    assert len(trials) == len(shares)
    for row, share in enumerate(shares):
        trial = trials[trial_id(sweep.id, row)]
        assert trial.energy_kwh > 0
        assert trial.energy_kwh == pytest.approx(share * WHOLE_KWH, rel=1e-9)
        assert trial.emissions_kg == pytest.approx(share * sweep.emissions_kg, rel=1e-9)
        assert trial.duration_s == pytest.approx(share * sweep.duration_s, rel=1e-9)
        assert trial.provenance["trial"].startswith("apportioned: ")
        folds = [r for r in runs if r.parent_id == trial.id]
        assert len(folds) == n_splits
        for fold in folds:
            assert fold.energy_kwh == pytest.approx(share * WHOLE_KWH / n_splits, rel=1e-9)
            assert fold.provenance["trial"].startswith("apportioned: ")
    finals = [r for r in runs if r.role == "final"]
    if search.refit:  # type: ignore[attr-defined]
        (final,) = finals
        assert final.energy_kwh > 0
        assert final.energy_kwh == pytest.approx(refit_share * WHOLE_KWH, rel=1e-9)
        assert final.provenance["trial"].startswith("apportioned: ")
    else:
        assert finals == []
    # the parts sum to the measured whole, and the price tag counts it once
    outside = [*trials.values(), *finals]
    assert sum(r.energy_kwh for r in outside) == pytest.approx(sweep.energy_kwh, rel=1e-9)
    assert sum(r.emissions_kg for r in outside) == pytest.approx(sweep.emissions_kg, rel=1e-9)
    assert price_tag(runs, metric="score").total.energy_kwh == pytest.approx(total_kwh, rel=1e-9)


@pytest.mark.parametrize("kind, n_jobs", [("grid", 1), ("randomized", 1), ("grid", 2)])
def test_a_search_shorter_than_one_sample_shares_its_final_reading(
    tmp_path: Path, iris, kind: str, n_jobs: int
) -> None:
    """Each trial, fold and refit its time share of the sweep's measured 1e-3 kWh, not 0."""
    X, y = iris
    tree = DecisionTreeClassifier(random_state=0)
    if kind == "grid":
        search = GridSearchCV(tree, {"max_depth": [1, 2, 3]}, cv=3, n_jobs=n_jobs)
    else:
        search = RandomizedSearchCV(tree, {"max_depth": [1, 2, 3, 4]}, n_iter=3, cv=3,
                                    n_jobs=n_jobs, random_state=0)  # fmt: skip
    runs = _search(tmp_path / "g.db", "short", search, X, y)
    _check_shares(runs, search)


def test_a_short_search_inside_a_tracked_run_counts_once(tmp_path: Path, iris) -> None:
    """Inside ``gp.track``: the sweep is the outer run's child, its fits share its reading, and
    the price tag sums the root (the outer run) once."""
    X, y = iris
    db = tmp_path / "g.db"
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3)
    with gp.track("notebook", ledger=db, study="inside", meters=Joules(2 * JOULES),
                  **ONE_SAMPLE_AFTER) as outer:  # fmt: skip
        sweep = track_search(search, X, y, ledger=db, study="inside", method="apportion",
                             meters=Joules(JOULES), **ONE_SAMPLE_AFTER)  # fmt: skip
    runs = gp.Ledger(db).runs(study="inside")
    assert gp.Ledger(db).run(sweep.id).parent_id == outer.id
    # the outer run measured 2e-3 kWh, the sweep's 1e-3 inside it
    _check_shares(runs, search, total_kwh=2 * WHOLE_KWH)


def test_a_search_of_one_candidate(tmp_path: Path, iris) -> None:
    """One candidate: it and the refit share the whole (neither is 0 nor the whole)."""
    X, y = iris
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2]}, cv=3)
    runs = _search(tmp_path / "g.db", "one", search, X, y)
    _check_shares(runs, search)
    (trial,) = [r for r in runs if r.role == "trial"]
    assert 0 < trial.energy_kwh < WHOLE_KWH


def test_failed_fits_keep_their_share(tmp_path: Path, iris) -> None:
    """cv=2 with ``error_score=np.nan``: the candidate whose fits failed is ``failed`` with the
    share its failed fits took (scikit-learn times them too), its folds failed likewise."""
    X, y = iris
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, -1]}, cv=2,
                          error_score=np.nan)  # fmt: skip
    with pytest.warns(UserWarning):  # scikit-learn's: a fit failed
        runs = _search(tmp_path / "g.db", "errors", search, X, y)
    _check_shares(runs, search)
    failed = [r for r in runs if r.status == "failed"]
    assert sorted(r.role for r in failed) == ["part", "part", "trial"]
    assert all(r.energy_kwh > 0 for r in failed)


def test_a_pipeline_search(tmp_path: Path, iris) -> None:
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    search = GridSearchCV(pipeline, {"logisticregression__C": [0.1, 1.0]}, cv=3)
    runs = _search(tmp_path / "g.db", "pipeline", search, X, y)
    _check_shares(runs, search)
    (sweep,) = [r for r in runs if r.role == "sweep"]
    assert sweep.name == "GridSearchCV-Pipeline"


def test_no_refit_the_candidates_share_the_whole(tmp_path: Path, iris) -> None:
    """``refit=False``: no final run; the candidates' shares sum to the whole."""
    X, y = iris
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3,
                          refit=False)  # fmt: skip
    runs = _search(tmp_path / "g.db", "no-refit", search, X, y)
    _check_shares(runs, search)


def test_a_search_whose_fit_raises_keeps_its_measured_cost(tmp_path: Path, iris) -> None:
    """``error_score="raise"``: scikit-learn gives no times to share by; the sweep ends
    ``failed`` with its final reading (1e-3 kWh), which the price tag counts."""
    X, y = iris
    db = tmp_path / "g.db"
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, -1]}, cv=3,
                          error_score="raise")  # fmt: skip
    with pytest.raises(ValueError, match="max_depth"):
        _search(db, "raises", search, X, y)
    runs = gp.Ledger(db).runs(study="raises")
    (sweep,) = runs
    assert sweep.status == "failed" and "max_depth" in (sweep.error or "")
    assert sweep.energy_kwh == pytest.approx(WHOLE_KWH, rel=1e-9)
    assert price_tag(runs).total.energy_kwh == pytest.approx(WHOLE_KWH, rel=1e-9)


SCRIPT = """
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeClassifier

from greenprint.integrations.sklearn import track_search

X, y = load_iris(return_X_y=True)
search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]}, cv=3)
# a meter sample every 30 s: the search is shorter than one sample however loaded the machine
track_search(search, X, y, study="quick", method="apportion",
             sample_interval_s=30, flush_interval_s=30)
print(search.best_params_)
"""


def test_a_new_users_quick_search_reads_its_cost_in_the_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A quick search in an empty directory: ``greenprint report`` gives every candidate, fold
    and refit its share of the search's cost (was 0 Wh for each), the shares summing to it."""
    home = empty_home(tmp_path_factory, "quick-search")
    (home / "search.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--format", "json,md")
    assert done.returncode == 0, done.stderr
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    runs = report["runs"]
    (sweep,) = [r for r in runs if r["role"] == "sweep"]
    assert sweep["energy_kwh"] > 0
    fits = [r for r in runs if r["role"] != "sweep"]
    assert len(fits) == 3 + 9 + 1  # trials, folds, refit
    assert all(r["energy_kwh"] > 0 for r in fits), [(r["name"], r["energy_kwh"]) for r in fits]
    outside = [r for r in fits if r["role"] in ("trial", "final")]
    assert sum(r["energy_kwh"] for r in outside) == pytest.approx(sweep["energy_kwh"], rel=1e-9)
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(
        sweep["energy_kwh"], rel=1e-9
    )
    markdown = (home / "rep" / "report.md").read_text(encoding="utf-8")
    rows = [
        line for line in markdown.splitlines() if "GridSearchCV-DecisionTreeClassifier-" in line
    ]
    assert rows and not [line for line in rows if "| 0 mWh |" in line or "| 0 Wh |" in line]
