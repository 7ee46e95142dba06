"""The names of the metrics a study logged, read from the marks (a row per run and metric).

A report ranked by a metric given by name reads that metric's points alone when the study
logged no other it reads; it asks the ledger which names the study logged first. The answer
must be every name with a point in the study (NaN and greenprint's own too), on both stores,
after points were deleted by hand (SQLite then notes the metric stale and removes its marks),
and of every run when no study is named.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import greenprint as gp

T0 = 1_700_000_000.0


def _fill(led: gp.Ledger) -> None:
    for rid, study, names in (
        ("a", "s", ["accuracy", "loss"]),
        ("b", "s", ["nan_only", "greenprint.predicted_energy_kwh"]),
        ("c", "other", ["f1"]),
        ("d", "s", []),
    ):
        led.start_run(gp.RunRecord(id=rid, name=rid, study=study, started_at=T0))
        points = [
            gp.MetricPoint(name, math.nan if name == "nan_only" else 0.1 * k, k, T0 + k)
            for name in names
            for k in range(3)
        ]
        if points:
            led.flush(rid, metrics=points)


def _brute(led: gp.Ledger, study: str | None) -> list[str]:
    runs = led.runs() if study is None else led.runs(study=study)
    return sorted({p.name for run in runs for p in run.metrics})


def test_the_names_of_a_study_and_of_every_run(ledger_url: str) -> None:
    with gp.Ledger(ledger_url) as led:
        _fill(led)
        assert led._metric_names("s") == [
            "accuracy",
            "greenprint.predicted_energy_kwh",
            "loss",
            "nan_only",
        ]
        assert led._metric_names("other") == ["f1"]
        assert led._metric_names("nobody") == []
        for study in ("s", "other", None):
            assert led._metric_names(study) == _brute(led, study)


def test_points_deleted_by_hand_leave_their_names_read(tmp_path: Path) -> None:
    """SQLite notes a metric stale when a point of it is deleted (its marks removed): its
    name is still the study's while a point is left, and gone with its last point."""
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        _fill(led)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM metrics WHERE run_id = 'a' AND name = 'loss' AND step = 0")
            conn.execute("DELETE FROM metrics WHERE name = 'f1'")
        stale = conn.execute("SELECT run_id, name FROM metric_marks_stale").fetchall()
    finally:
        conn.close()
    assert ("a", "loss") in stale
    with gp.Ledger(path) as led:
        assert "loss" in led._metric_names("s")
        for study in ("s", "other", None):
            assert led._metric_names(study) == _brute(led, study)


def test_the_provenances_of_a_studys_pruned_runs(ledger_url: str) -> None:
    """What a report reads of the pruned runs before choosing which metrics to read: their
    ``step_metric``, each distinct provenance once, without reading the runs."""
    with gp.Ledger(ledger_url) as led:
        for rid, study, status, provenance in (
            ("p1", "s", "pruned", {"step_metric": "epoch_acc", "pruned_at_step": 3}),
            ("p2", "s", "pruned", {"step_metric": "epoch_acc", "pruned_at_step": 3}),
            ("p3", "s", "pruned", {}),
            ("f1", "s", "finished", {"step_metric": "loss"}),
            ("p4", "other", "pruned", {"step_metric": "val"}),
        ):
            led.start_run(
                gp.RunRecord(id=rid, name=rid, study=study, status=status, provenance=provenance)
            )
        found = led._provenances("s", "pruned")
        assert sorted(found, key=len) == [{}, {"step_metric": "epoch_acc", "pruned_at_step": 3}]
        assert led._provenances("other", "pruned") == [{"step_metric": "val"}]
        assert led._provenances("s", "failed") == []
        expected = {p.provenance.get("step_metric") for p in led.runs(study="s", status="pruned")}
        assert {p.get("step_metric") for p in found} == expected


def test_a_provenance_that_is_no_json_object_reads_empty(tmp_path: Path) -> None:
    """Hand-edited: ``{}`` here; the read of the run itself names the corrupt value."""
    path = tmp_path / "l.db"
    with gp.Ledger(path) as led:
        led.start_run(gp.RunRecord(id="p", name="p", study="s", status="pruned"))
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE runs SET provenance = '{not json' WHERE id = 'p'")
    finally:
        conn.close()
    with gp.Ledger(path) as led:
        assert led._provenances("s", "pruned") == [{}]
