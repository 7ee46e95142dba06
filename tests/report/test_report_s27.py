"""Session 27 outside checks of the reports: true notes, zeros in their neighbours' unit."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_multi_objective_optuna_study_is_ranked_by_its_named_objectives(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna", reason="the optuna extra is not installed")
    from greenprint._metric_choice import pick_metric
    from greenprint.integrations.optuna import GreenprintCallback
    from greenprint.ledger import get_ledger

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "gp.db"
    cb = GreenprintCallback(ledger=db, sample_interval_s=0.05, flush_interval_s=0.1)
    study = optuna.create_study(study_name="mo", directions=["maximize", "minimize"])

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        return x, x * x

    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    with get_ledger(db) as ledger:
        runs = ledger.runs(study="mo")
    chosen, note = pick_metric(runs, None, "mo")
    assert chosen == "values_0"
    assert note is not None
    # they are the study's objectives: the note must not say none of them is
    assert "none of them named as a search's objective" not in note
    assert "all of them the search's objectives" in note


def test_whatif_reads_the_recorded_regions_zero_in_its_neighbours_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from greenprint._records import RunRecord
    from greenprint.cli import main
    from greenprint.ledger import Ledger

    # a tiny run (20 µWh at DE's intensity): every row reads in µg; the recorded region's
    # saving read "0 mg CO2-eq (0.0 %)"
    run = RunRecord(
        id="tiny0001ab",
        name="tiny",
        status="finished",
        started_at=1_709_251_200.0,
        duration_s=1.0,
        energy_kwh=2e-8,
        pue=1.0,
        intensity_g_per_kwh=380.95,
        intensity_source="table:DE:2023",
        emissions_kg=2e-8 * 0.38095,
    )
    db = tmp_path / "runs.db"
    with Ledger(db) as led:
        led.start_run(run)
    code = main(["whatif", "--run", run.id, "--ledger", str(db), "--regions", "DE,FR"])
    out = capsys.readouterr().out
    assert code in (0, None), out
    assert " mg " not in out, out
    (de,) = [line for line in out.splitlines() if line.startswith("DE ")]
    (fr,) = [line for line in out.splitlines() if line.startswith("FR ")]
    assert "0 µg CO2-eq (0.0 %)" in de, out
    assert "µg CO2-eq (85 %)" in fr, out
