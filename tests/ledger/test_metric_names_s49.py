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
from typing import Any

import pytest

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


def _long_runs(led: gp.Ledger) -> None:
    """Runs of many points a metric (the score read takes the marks), steps not in order."""
    specs = {
        "a": {"acc": [0.5, 0.7, 0.6], "loss": [1.0, 0.4, math.nan, 0.2] * 6},
        "b": {"loss": [2.0, 1.0] * 10, "lr": [0.1] * 8},
        "c": {"acc": [math.inf, math.nan], "val": [0.3] * 20},
        "d": {"acc": [0.9] * 12},
        "e": {},
    }
    for k, (rid, metrics) in enumerate(specs.items()):
        led.start_run(gp.RunRecord(id=rid, name=rid, study="s", started_at=T0 + k))
        points = [
            gp.MetricPoint(name, value, (7 * i + k) % 23 if i % 5 else None, T0 + i)
            for name, values in metrics.items()
            for i, value in enumerate(values)
        ]
        points.append(gp.MetricPoint("greenprint.predicted_energy_kwh", 0.1, 99, T0))
        led.flush(rid, metrics=points)
    led.start_run(gp.RunRecord(id="z", name="z", study="other", started_at=T0))
    led.flush("z", metrics=[gp.MetricPoint("loss", 0.1, 500, T0)] * 30)


def test_a_run_without_the_metric_that_logged_another(ledger_url: str) -> None:
    """Whether a run of the study with no finite value of a metric logged one of some names:
    the runs' points say, on both stores (another study's runs never count)."""
    with gp.Ledger(ledger_url) as led:
        _long_runs(led)
        every = led.runs(study="s")
        for metric in ("acc", "loss", "val", "lr", "nothing"):
            for names in (["val"], ["lr"], ["loss"], ["acc"], ["acc", "lr"], ["nothing"], []):
                expected = any(
                    not any(p.name == metric and math.isfinite(p.value) for p in run.metrics)
                    and any(p.name in names for p in run.metrics)
                    for run in every
                )
                assert led._unscored_logging("s", metric, names) is expected, (metric, names)
        assert led._unscored_logging("s", "acc", ["val"])  # c: infinite and NaN, and val
        assert not led._unscored_logging("s", "acc", ["nothing"])


def _search(led: gp.Ledger) -> None:
    """Trials logging accuracy at 3 steps and a loss at 25 (read through the marks), one
    pruned with its step_metric, one failed."""
    for k, (lr, status) in enumerate(((0.1, "finished"), (0.01, "pruned"), (0.3, "failed"))):
        provenance = {"step_metric": "accuracy"} if status == "pruned" else {}
        led.start_run(
            gp.RunRecord(
                id=f"t{k}",
                name=f"t{k}",
                study="s",
                status=status,
                started_at=T0 + 100 * k,
                ended_at=T0 + 100 * k + 50,
                params={"lr": lr},
                provenance=provenance,
            )
        )
        if status != "failed":
            points = [gp.MetricPoint("loss", 1.0 / (s + k + 1), s, T0 + s) for s in range(25)]
            points += [
                gp.MetricPoint("accuracy", 0.6 + 0.1 * s - k / 10, s, T0 + s) for s in (1, 2, 3)
            ]
            led.flush(f"t{k}", metrics=points)


def _retrain(led: gp.Ledger) -> None:
    """A retrain of the best trial without a role, scored on a test split only."""
    led.start_run(
        gp.RunRecord(
            id="best", name="best", study="s", status="finished", started_at=T0 + 500,
            ended_at=T0 + 550, params={"lr": 0.1},
        )
    )  # fmt: skip
    led.flush("best", metrics=[gp.MetricPoint("test_accuracy", 0.85, None, T0 + 501)])


def test_a_report_given_a_metric_reads_as_read_whole(ledger_url: str) -> None:
    """On both stores: read narrowed (accuracy's points, the loss left in the ledger) where
    that is the same report, whole where a run scored by another metric only is read by the
    role rules (a retrain without its role)."""
    from unittest.mock import patch

    from greenprint.report import _study_read, build_report

    def document(**options: Any) -> dict[str, Any]:
        found = build_report(ledger_url, study="s", **options).to_dict()
        found.pop("generated_at")
        return found

    with gp.Ledger(ledger_url) as led:
        _search(led)
        narrowed = _study_read._narrow_read(led, "s", "accuracy")
        assert narrowed is not None and narrowed.narrowed
        assert {p.name for run in narrowed.runs for p in run.metrics} == {"accuracy"}
    given = document(metric="accuracy")
    with patch.object(_study_read, "_narrow_read", lambda *args: None):
        assert given == document(metric="accuracy")
    with gp.Ledger(ledger_url) as led:
        _retrain(led)
        assert _study_read._narrow_read(led, "s", "accuracy") is None
    given = document(metric="accuracy")
    assert any("retrain" in note or "'best'" in note for note in given["notes"]), given["notes"]
    with patch.object(_study_read, "_narrow_read", lambda *args: None):
        assert given == document(metric="accuracy")


@pytest.mark.postgres
def test_a_role_that_may_not_read_the_marks_checks_the_points(pg_server: Any) -> None:
    """A team's reader granted the tables before schema 5 (not ``metric_marks``): the names
    and the unscored check read the points instead, with the same answers (NaN and infinities
    no finite value: PostgreSQL orders NaN above infinity)."""
    import sqlalchemy as sa

    url = pg_server.new_database()
    with gp.Ledger(url) as led:
        _long_runs(led)
        owner = (
            led._metric_names("s"),
            {m: led._unscored_logging("s", m, ["val", "lr"]) for m in ("acc", "loss", "val")},
        )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE ROLE gp_reader LOGIN"))
        conn.execute(sa.text("GRANT SELECT ON runs, metrics, samples, schema_version TO gp_reader"))
    engine.dispose()
    reader = url.replace("://postgres:", "://gp_reader:", 1)
    assert reader != url
    with gp.Ledger(reader, create=False) as led:
        assert (
            led._metric_names("s"),
            {m: led._unscored_logging("s", m, ["val", "lr"]) for m in ("acc", "loss", "val")},
        ) == owner
        assert owner[1] == {"acc": True, "loss": True, "val": True}
        assert led._unscored_logging("s", "acc", ["loss"])  # b: no acc, a loss
        assert led._unscored_logging("s", "acc", ["val"])  # c: acc infinite and NaN only
        assert not led._unscored_logging("s", "loss", ["lr"])  # b logged lr and a loss
