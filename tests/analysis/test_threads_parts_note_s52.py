"""Trials in threads with folds inside: no false "parents recorded less" note (session 52).

An Optuna study with ``n_jobs=2`` whose trials log their cross-validation folds as parts: the two
trials that overlapped in time each read the whole process, and the price tag counts each
stretch of their time once at their mean power. A trial that ran beside a trial of higher power
then counts a little more than it measured, its folds scaled with it; the check that a parent
recorded less than the runs inside it compared those scaled folds with the trial's own reading,
and printed "some parent runs recorded less energy than their children" (and a warning on
stderr) on data where every parent recorded more. The records below are the runs of such a
study as its ledger holds them (an outside check's, 2026-12-07), times from its start.
"""

from __future__ import annotations

import logging

import pytest

import greenprint as gp
from greenprint._forest import RunForest
from greenprint.analysis import price_tag

PROCESS = {"scope": "process", "process": "pid 14985 started 1796622472.71"}
T0 = 1_796_622_473.86
SHORT = "some parent runs recorded less energy than their children"


def _run(
    rid: str,
    parent: str | None,
    role: str,
    span: tuple[float, float],
    uwh: float,
    loss: float | None = None,
) -> gp.RunRecord:
    start, end = span
    return gp.RunRecord(
        id=rid,
        name=rid,
        study="cv",
        parent_id=parent,
        role=role,
        status="finished",
        started_at=T0 + start,
        ended_at=T0 + end,
        duration_s=end - start,
        energy_kwh=uwh * 1e-9,
        emissions_kg=uwh * 0.48e-9,
        provenance=dict(PROCESS),
        metrics=() if loss is None else (gp.MetricPoint("val_loss", loss),),
    )


def _study(fold0_uwh: float = 148.97) -> list[gp.RunRecord]:
    """A sweep; trial-8 (short, high power) overlapping the start of trial-9, each with folds."""
    return [
        _run("search", None, "sweep", (0.0, 7.52), 2549.0),
        _run("trial-8", "search", "trial", (6.721, 6.742), 27.05, 0.20),
        _run("t8-fold0", "trial-8", "part", (6.723, 6.732), 17.82),
        _run("trial-9", "search", "trial", (6.725, 7.448), 212.50, 0.18),
        _run("t9-fold0", "trial-9", "part", (6.728, 7.340), fold0_uwh),
        _run("t9-fold1", "trial-9", "part", (7.342, 7.360), 16.19),
        _run("t9-fold2", "trial-9", "part", (7.362, 7.446), 30.87),
    ]


def test_trials_in_threads_whose_folds_recorded_less_get_no_false_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = _study()
    # the situation: every parent recorded more than its folds, yet sharing the overlap out
    # gives trial-9 more than it measured (trial-8 drew 6x its power), its folds with it
    shared = RunForest.build(runs).shared_sums("energy_kwh")
    assert shared.inclusive[3] > runs[3].energy_kwh * 1.005
    assert shared.inclusive[4] > runs[4].energy_kwh
    with caplog.at_level(logging.WARNING):
        tag = price_tag(runs, metric="val_loss")
    assert not any(SHORT in note for note in tag.notes), tag.notes
    assert "less energy than their children" not in caplog.text
    # the sharing itself is said, and the study counts what the sweep measured
    assert any("ran at the same time in one process" in note for note in tag.notes)
    assert tag.total.energy_kwh == pytest.approx(2549.0e-9, rel=1e-12)


def test_a_fold_that_recorded_more_than_its_trial_is_still_said() -> None:
    """A meter that lagged: trial-9's first fold recorded more than trial-9 did."""
    runs = _study(fold0_uwh=250.0)
    tag = price_tag(runs, metric="val_loss")
    assert any(SHORT in note for note in tag.notes), tag.notes


def test_the_same_trials_one_after_the_other_keep_the_rule() -> None:
    """No run in threads: the check reads the sums the price tag uses, as before."""
    apart = [
        _run("search", None, "sweep", (0.0, 9.0), 2549.0),
        _run("trial-8", "search", "trial", (1.0, 2.0), 27.05, 0.20),
        _run("t8-fold0", "trial-8", "part", (1.1, 1.5), 30.0),  # more than its trial
        _run("trial-9", "search", "trial", (3.0, 4.0), 212.50, 0.18),
        _run("t9-fold0", "trial-9", "part", (3.1, 3.5), 148.97),
    ]
    tag = price_tag(apart, metric="val_loss")
    assert [note for note in tag.notes if SHORT in note] == [SHORT + ": the children's sum is used"]
    apart[2] = _run("t8-fold0", "trial-8", "part", (1.1, 1.5), 17.82)
    assert not any(SHORT in note for note in price_tag(apart, metric="val_loss").notes)
