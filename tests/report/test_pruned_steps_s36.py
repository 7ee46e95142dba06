"""A run pruned without a step is read at its furthest step, whatever it logged after it.

A user's early stopping in plain ``gp.track`` runs: ``val_loss`` logged at each epoch, its best
and worst values early (``epoch % 5 + 1``: worst at epoch 4, best at 5), and once more at the
end without a step (or at a lower one), then ``run.prune()`` with no step. A report reads of
each metric only some points (``ledger._rows.score_points_by_run``, the ``metric_marks`` of
schema 5): none of them held the furthest step, so the report said the run stopped at epoch 4
(the step of its worst value) where it stopped at 7 (or 29), and scaled its cost by 8 / 4
(30 / 4) instead of 8 / 7 (30 / 29). Schema 6 keeps the point holding each metric's largest
step as one more mark. Checked on every read: through the marks and of every point (a ledger
holding many single-point runs), on SQLite and on a real PostgreSQL, a short series (held
whole by the read) and a long one (past 16 points: only the kept points are held).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from greenprint.report import build_report

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
STUDY = "plateau"


def _trial(ledger: str, name: str, epochs: int, *, stop_at: int | None, tail: str | None) -> None:
    with gp.track(name, study=STUDY, ledger=ledger, role="trial", **FAST) as run:
        for epoch in range(1, epochs + 1):
            run.add_fpo(1_000)
            run.log(step=epoch, val_loss=epoch % 5 + 1.0)
            if epoch == stop_at or (stop_at is None and epoch == epochs):
                if tail == "no step":  # the best value, logged again at the end
                    run.log(val_loss=0.5)
                elif tail == "a lower step":
                    run.log(step=1, val_loss=0.5)
            if epoch == stop_at:
                run.prune(by="patience")
                break


def _many_single_points(ledger: str) -> None:
    """Runs of another study that log one point each: a read then takes every point."""
    with gp.Ledger(ledger) as led:
        for k in range(150):
            record = gp.RunRecord(id=f"one-{k:03d}", name=f"one-{k}", study="others")
            led.start_run(record)
            led.flush(record.id, metrics=[gp.MetricPoint("acc", 0.5, None, 1.7e9)])


def _marks_read(ledger: str) -> bool:
    from greenprint.ledger import _sql_reads, _sqlite, _sqlite_reads

    with gp.Ledger(ledger) as led:
        store: Any = led._store
        if isinstance(store, _sqlite.SQLiteStore):
            return bool(store.transaction(_sqlite_reads._marks_worth_reading, write=False))
        return bool(store.transaction(_sql_reads._marks_worth_reading, write=False))


READS = [
    pytest.param("sqlite", "marks", id="sqlite-marks"),
    pytest.param("sqlite", "every point", id="sqlite-every-point"),
    pytest.param("postgres", "marks", id="postgres-marks", marks=pytest.mark.postgres),
    pytest.param("postgres", "every point", id="postgres-every-point", marks=pytest.mark.postgres),
]


def _ledger(backend: str, read: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        ledger = str(tmp_path / "g.db")
    else:
        ledger = request.getfixturevalue("pg_server").new_database()
    if read == "every point":
        _many_single_points(ledger)
    return ledger


@pytest.mark.parametrize(("backend", "read"), READS)
@pytest.mark.parametrize("epochs", [8, 30])
@pytest.mark.parametrize("tail", ["no step", "a lower step"])
def test_a_run_pruned_without_a_step_is_read_at_its_furthest_step(
    backend: str,
    read: str,
    epochs: int,
    tail: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    ledger = _ledger(backend, read, tmp_path, request)
    for k in range(2):
        _trial(ledger, f"full-{k}", epochs, stop_at=None, tail=None)
    _trial(ledger, "stopped", epochs, stop_at=epochs - 1, tail=tail)
    assert _marks_read(ledger) == (read == "marks")
    s = build_report(ledger, STUDY).pruning
    assert s is not None and s.full_steps == epochs
    (row,) = s.rows
    assert row.step == epochs - 1 and not row.step_recorded  # was 4: its worst value's epoch
    assert row.scale == pytest.approx(epochs / (epochs - 1))
    assert s.saved_fpo == 1_000  # one epoch of 1,000 FPO short of the end
    _, cells = s.table()
    assert cells[0][1] == f"{epochs - 1} (logged)"


@pytest.mark.parametrize(("backend", "read"), READS)
def test_a_finished_trial_that_logs_its_best_again_without_a_step_reaches_its_last_epoch(
    backend: str, read: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The finished trials log their best ``val_loss`` once more without a step: a trial run
    to the end reached epoch 30, not 4 (the pruned trial then counted as run to the end)."""
    ledger = _ledger(backend, read, tmp_path, request)
    for k in range(2):
        _trial(ledger, f"full-{k}", 30, stop_at=None, tail="no step")
    _trial(ledger, "stopped", 30, stop_at=6, tail=None)
    s = build_report(ledger, STUDY).pruning
    assert s is not None and s.full_steps == 30
    (row,) = s.rows
    assert row.step == 6 and row.scale == 5.0 and s.saved_fpo == 24_000


# ------------------------------------------------------- one form for a step and for a share
def _global_steps(ledger: str, name: str, *, stop_at: int | None, fpo: int) -> Any:
    """A loss logged at each of 8 epochs' global steps (1,000 a epoch), pruned by hand."""
    with gp.track(name, study="global", ledger=ledger, role="trial", **FAST) as run:
        for epoch in range(1, 9):
            run.add_fpo(fpo)
            run.log(step=epoch * 1000, loss=1.0 / epoch)
            if epoch == stop_at:
                run.prune(step=epoch * 1000 - 100, by="patience")
                break
    return run


def test_the_report_and_ledger_show_write_a_step_and_a_share_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The section wrote steps bare (``Stopped at step 6900 ...; reached step 8000``) where
    ``ledger show`` wrote ``at step 6,900``, and its shares with its own ``.1f`` percent: a
    pruned trial of 6 FPO a step beside two of 10,000 read ``(0.0% of its FPO)``, where the
    rest of the report writes a share under a tenth ``1/N`` (``format_share``)."""
    from greenprint.cli import main

    ledger = str(tmp_path / "g.db")
    for k in range(2):
        _global_steps(ledger, f"full-{k}", stop_at=None, fpo=10_000)
    run = _global_steps(ledger, "stopped", stop_at=7, fpo=6)
    s = build_report(ledger, "global").pruning
    assert s is not None
    text = " ".join(s.lines())
    assert "Stopped at step 6,900 (median); a trial run to the end reached step 8,000." in text
    assert "and 42 FPO (1/3,811 of its FPO)." in text  # 42 of 160,042 FPO
    _, cells = s.table()
    assert cells[0][:2] == ["stopped", "6,900"]
    assert main(["ledger", "show", run.id, "--ledger", ledger]) == 0
    assert "pruned (at step 6,900, by patience)" in capsys.readouterr().out
