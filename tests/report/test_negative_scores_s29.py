"""A study whose scores are below 0 has no efficiency figures (session 29).

scikit-learn's negated errors (``neg_mean_squared_error``) are better higher, and now read so
from their names; their ratio to a cost falls as the cost falls: of two trials with the same
score, the cheaper one read as the less efficient (-10 at 0.0018 µWh: -5.5M per µWh, against
-0.55M for a costlier run). The efficiency table is left out with a note, and each run's own
ratios are ``None``; a study of positive scores keeps both.
"""

from __future__ import annotations

import time
from pathlib import Path

import greenprint as gp
from greenprint.analysis import score_per_cost
from greenprint.report import build_report


def _study(ledger: Path, metric: str, scores: dict[str, float]) -> None:
    for name, score in scores.items():
        with gp.track(name, study="s", ledger=ledger) as run:
            started = time.perf_counter()
            while time.perf_counter() - started < 0.02:
                pass
            run.log({metric: score})


def test_negated_errors_have_no_efficiency_table_nor_ratios(tmp_path: Path) -> None:
    ledger = tmp_path / "neg.db"
    metric = "mean_test_neg_mean_squared_error"
    _study(ledger, metric, {"a": -20.0, "b": -5.0, "c": -10.0})
    report = build_report(ledger, "s", metric=metric)
    assert report.mode == "max"  # a negated error: higher is better
    assert report.efficiency is None
    assert any("below 0" in note and "no efficiency table" in note for note in report.notes)
    assert all(row.score_per_kwh is None and row.score_per_gflop is None for row in report.runs)
    assert {row.name: row.score for row in report.runs} == {"a": -20.0, "b": -5.0, "c": -10.0}


def test_positive_scores_keep_their_ratios(tmp_path: Path) -> None:
    ledger = tmp_path / "pos.db"
    _study(ledger, "accuracy", {"a": 0.8, "b": 0.9})
    report = build_report(ledger, "s", metric="accuracy")
    assert report.efficiency is not None
    for row in report.runs:
        assert row.score_per_kwh == row.score / row.energy_kwh


def test_score_per_cost_of_a_negative_score_is_none() -> None:
    assert score_per_cost(-0.5, 2.0) is None
    assert score_per_cost(0.0, 2.0) == 0.0
    assert score_per_cost(0.5, 2.0) == 0.25
