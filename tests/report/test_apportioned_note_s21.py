"""The report says which runs' energy is a share of their search's, not metered on its own.

scikit-learn's ``track_search(..., method="apportion")`` meters the search once and gives each
candidate, fold and refit a share of it by fit and score time: their rows read as measured
(their provenance is the search's meters), and nothing in the report said they were shares.
"""

from __future__ import annotations

import pytest

import greenprint as gp
from _set_energy import Joules
from greenprint.report import build_report, write_report

pytest.importorskip("sklearn")


def _study(tmp_path, method):
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    from greenprint.integrations.sklearn import track_search

    X, y = load_iris(return_X_y=True)
    ledger = str(tmp_path / f"{method}.db")
    with gp.track("majority", study="s", ledger=ledger, role="baseline") as run:
        run.log(score=1 / 3)
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2]}, cv=3)
    track_search(
        search, X, y, study="s", ledger=ledger, method=method, meters=Joules(3600.0),
        sample_interval_s=3600.0,
    )  # fmt: skip
    return ledger


def test_apportioned_runs_are_named_in_every_format(tmp_path):
    ledger = _study(tmp_path, "apportion")
    runs = gp.Ledger(ledger).runs(study="s")
    shared = [r for r in runs if str(r.provenance.get("trial", "")).startswith("apportioned:")]
    assert len(shared) == 2 + 2 * 3 + 1  # 2 candidates, their 3 folds each, the refit
    report = build_report(ledger, "s")
    (note,) = [n for n in report.notes if "method='apportion'" in n]
    sweep = next(r for r in runs if r.role == "sweep")
    assert note.startswith(
        f"the energy of 9 runs (the candidates, folds and refit of search {sweep.name!r}"
    )
    assert "each is a share of its search's measured energy by its fit and score times" in note
    files = write_report(report, tmp_path / "out", "md,json", plots=False)
    assert "method='apportion'" in files["md"].read_text(encoding="utf-8")
    assert "method='apportion'" in files["json"].read_text(encoding="utf-8")


def test_a_search_whose_fits_are_metered_has_no_such_note(tmp_path):
    ledger = _study(tmp_path, "callbacks")
    report = build_report(ledger, "s")
    assert not [n for n in report.notes if "apportion" in n]
