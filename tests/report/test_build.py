"""build_report: the report model's numbers come from the ledger and the analysis."""

import dataclasses
import math
import time

import numpy as np
import pytest

import greenprint as gp
from greenprint.analysis import expected_max_performance, price_tag
from greenprint.report import SCHEMA, build_report

from .conftest import T0, Spec, add_run, make_study


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("build") / "ledger.db"
    spec = make_study(path)
    return path, spec, build_report(path, "sweep", metric="accuracy")


def test_price_tag_counts_every_trial_once(built):
    _, spec, report = built
    total = report.price_tag.total
    assert report.schema == SCHEMA
    assert total.runs == spec.runs
    assert total.trials == spec.trials  # the cv parent is a container, not a trial
    assert total.energy_kwh == pytest.approx(spec.energy_kwh)  # nested runs counted once
    assert total.emissions_kg == pytest.approx(spec.emissions_kg)
    assert total.fpo == spec.fpo + 2 * 10**11  # the known child FPO inside an unknown parent
    by_status = {k: v.trials for k, v in report.price_tag.by_status.items()}
    assert by_status == spec.statuses
    assert sum(v.energy_kwh for v in report.price_tag.by_status.values()) == pytest.approx(
        total.energy_kwh
    )


def test_final_run_is_the_best_finished_one(built):
    _, spec, report = built
    assert report.final is not None and report.final.id == spec.best_id
    assert report.price_tag.final.run_id == spec.best_id
    assert report.price_tag.final.score == pytest.approx(spec.best_score)
    assert [r.id for r in report.runs if r.is_final] == [spec.best_id]


def test_rows_keep_every_run_with_status_depth_and_missing_scores(built):
    _, spec, report = built
    assert [r.id for r in report.runs] == spec.ids  # start order
    rows = {r.name: r for r in report.runs}
    assert rows["trial-3"].status == "failed" and rows["trial-3"].score is None
    assert rows["trial-6"].score is None  # a NaN score is "no score", not a crash
    assert rows["cv"].is_trial is False and rows["cv"].depth == 0
    assert rows["cv-fold-0"].depth == 1 and rows["cv-fold-0"].parent_id == rows["cv"].id
    assert rows["trial-1"].status == "pruned" and rows["trial-1"].score == 0.40
    assert rows["logreg"].score_per_kwh == pytest.approx(0.9 / rows["logreg"].energy_kwh)
    assert rows["logreg"].score_per_gflop == pytest.approx(0.9)
    assert rows["majority"].energy_source == "estimated"


def test_evp_figures_match_the_analysis(built):
    _, _, report = built
    trials_fig = report.figure("evp_trials")
    energy_fig = report.figure("evp_energy")
    assert trials_fig is not None and energy_fig is not None
    series = {s.role: s for s in trials_fig.panels[0].series}
    n = series["mean"].x
    assert n == tuple(float(k) for k in range(1, 13))  # 12 trials (not the learning curve)
    scored = [
        r.score if r.status in ("finished", "pruned") and r.score is not None else math.nan
        for r in report.runs
        if r.is_trial
    ]
    expected = expected_max_performance(scored, replacement=True)
    np.testing.assert_allclose(series["mean"].y, expected.mean)
    exact = expected_max_performance(scored, replacement=False)
    np.testing.assert_allclose(series["exact"].y, exact.mean)
    assert series["exact"].y[-1] == pytest.approx(max(s for s in scored if not math.isnan(s)))
    assert all(
        lo <= m <= hi
        for lo, m, hi in zip(
            series["std"].y_low, series["mean"].y, series["std"].y_high, strict=True
        )
    )
    # against energy: x = n * mean trial energy, in the panel's unit
    energy = energy_fig.panels[0]
    mean_kwh = np.mean([r.energy_kwh for r in report.runs if r.is_trial])
    factor = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[energy.x_unit]
    np.testing.assert_allclose(energy.series[1].x, np.arange(1, 13) * mean_kwh * factor)
    assert any("worst score" in line for line in trials_fig.provenance)  # 3 trials without score


def test_pareto_front_and_learning_curve(built):
    _, spec, report = built
    pareto = report.figure("pareto")
    roles = {s.role: s for s in pareto.panels[0].series}
    assert set(roles) == {"finished", "pruned", "front", "final"}
    assert roles["final"].run_ids == (spec.best_id,)
    front = roles["front"]
    assert front.run_ids[-1] == spec.best_id  # the best score is on the front
    assert list(front.x) == sorted(front.x) and list(front.y) == sorted(front.y)
    assert len(roles["pruned"].x) == spec.statuses["pruned"]
    curve = report.figure("learning_curve")
    assert curve.panels[0].series[-1].x == (250.0, 500.0, 1000.0)  # only the fraction runs
    assert curve.panels[0].series[-1].y == (0.80, 0.88, 0.94)


def test_timeline_integrates_the_samples(built):
    _, spec, report = built
    timeline = report.figure("timeline")
    energy = timeline.panels[1].series[0]
    factor = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[timeline.panels[1].y_unit]
    # root runs' samples (children have none; the parent's contain them) add up to the total
    assert energy.y[-1] / factor == pytest.approx(spec.energy_kwh, rel=1e-9)
    power = {s.role: s for s in timeline.panels[0].series}
    assert {"total", "cpu", "ram"} <= set(power)
    finite = [v for v in power["total"].y if not math.isnan(v)]
    assert max(finite) == pytest.approx(40.0)  # the cv parent draws 40 W
    assert not any("mean power" in n for n in timeline.notes)


def test_timeline_above_the_sample_limit_uses_mean_power(study_ledger):
    path, spec = study_ledger
    report = build_report(path, "sweep", max_sampled_runs=2)
    timeline = report.figure("timeline")
    assert any("mean power" in n and "more than 2" in n for n in timeline.notes)
    energy = timeline.panels[1].series[0]
    factor = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[timeline.panels[1].y_unit]
    assert energy.y[-1] / factor == pytest.approx(spec.energy_kwh, rel=1e-9)


def test_model_card_and_compute_statement_come_from_the_ledger(built):
    _, spec, report = built
    card = report.model_card
    assert card.emissions_g == pytest.approx(spec.emissions_kg * 1000)
    assert card.geographical_location == "DE"
    assert card.hardware_used == "Test CPU 9000 (8 logical CPUs, 32 GB RAM), no GPU"
    assert card.training_type == "unknown"  # neither given nor set by the study's runs
    assert any("training_type unknown" in n and "--training-type" in n for n in report.notes)
    assert list(card.to_dict()) == [
        "emissions",
        "source",
        "training_type",
        "geographical_location",
        "hardware_used",
    ]  # exactly Hugging Face's keys; greenprint's extras are kept apart
    assert card.extras()["final_emissions_g"] == pytest.approx(card.final_emissions_g)
    assert "estimated" in card.source and "table:DE:2023" in card.source
    yaml = card.to_yaml()
    assert yaml.startswith("co2_eq_emissions:\n  emissions: ")
    assert f"{spec.emissions_kg * 1000:.6g}" in yaml
    text = report.compute_statement
    assert f"{spec.trials} trials" in text
    for status, count in spec.statuses.items():
        assert f"{count} {status}" in text
    assert "Test CPU 9000" in text and "PUE of 1.2" in text and "400 g CO2-eq/kWh" in text
    assert "trial-5" in text  # the final run's own cost


def test_metric_is_picked_when_not_given_and_noted(tmp_path):
    led = gp.Ledger(tmp_path / "l.db")
    spec = Spec()
    add_run(led, spec, name="a", score=0.5, start=T0)
    add_run(led, spec, name="b", score=0.7, start=T0 + 20, metric="loss")
    add_run(led, spec, name="c", score=0.9, start=T0 + 40)
    led.close()
    report = build_report(tmp_path / "l.db")  # the only study
    assert report.study == "sweep" and report.metric == "accuracy"
    assert any("ranked by 'accuracy'" in n for n in report.notes)
    assert build_report(tmp_path / "l.db", metric="loss", mode="min").final.name == "b"


def test_no_finished_score_still_reports_the_cost(tmp_path):
    led = gp.Ledger(tmp_path / "l.db")
    spec = Spec()
    add_run(led, spec, name="a", status="pruned", score=0.5, start=T0)
    add_run(led, spec, name="b", status="failed", start=T0 + 20)
    led.close()
    report = build_report(tmp_path / "l.db", "sweep")
    assert report.final is None and report.price_tag.final is None
    assert report.price_tag.total.trials == 2
    assert any("final run is not identified" in n for n in report.notes)
    assert report.figure("evp_trials") is not None  # the pruned score counts


def test_bad_input_raises_specific_errors(tmp_path, study_ledger):
    path, _ = study_ledger
    with pytest.raises(gp.LedgerPathError):
        build_report(tmp_path / "missing.db", "sweep")
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(gp.UnknownStudyError, match="its studies: 'sweep'"):
        build_report(path, "nope")
    with pytest.raises(gp.AnalysisError, match="metrics logged: 'accuracy'"):
        build_report(path, "sweep", metric="loss")
    with pytest.raises(gp.ConfigError):
        build_report(path, "sweep", mode="up")
    with pytest.raises(gp.UnknownRunError):
        build_report(path, "sweep", final="ffffffffff")
    empty = gp.Ledger(tmp_path / "empty.db")
    empty.close()
    with pytest.raises(gp.ReportError, match="holds no runs"):
        build_report(tmp_path / "empty.db")
    with pytest.raises(gp.UnknownStudyError, match="ledger is empty"):
        build_report(tmp_path / "empty.db", "sweep")


def test_no_metric_and_infinite_scores(tmp_path):
    led = gp.Ledger(tmp_path / "l.db")
    spec = Spec()
    add_run(led, spec, name="a", start=T0)
    led.close()
    quiet = build_report(tmp_path / "l.db", "sweep")  # no metric: the price tag all the same
    assert quiet.metric is None and quiet.price_tag.total.runs == 1
    assert any("run.log(accuracy=...)" in n for n in quiet.notes)
    assert [f.id for f in quiet.figures] == ["timeline"]
    led = gp.Ledger(tmp_path / "l.db")
    add_run(led, spec, name="diverged", score=math.inf, start=T0 + 20, metric="loss")
    led.close()
    add_run(led := gp.Ledger(tmp_path / "l.db"), spec, name="ok", score=0.4, start=T0 + 40,
            metric="loss")  # fmt: skip
    led.close()
    # the diverged trial (last loss inf) has no score: the worst in EVP, never the final run
    report = build_report(tmp_path / "l.db", "sweep", metric="loss", mode="min")
    assert report.price_tag.final.name == "ok"
    assert any("('diverged') ended with an infinite 'loss'" in n for n in report.notes)
    row = next(r for r in report.runs if r.name == "diverged")
    assert row.score is None


def test_chosen_final_run_and_multiple_studies(tmp_path):
    path = tmp_path / "l.db"
    make_study(path, study="one")
    spec = make_study(path, study="two")
    with pytest.raises(gp.ReportError, match="choose one: 'one', 'two'"):
        build_report(path)
    two = [r for r in gp.Ledger(path, create=False).runs(study="two")]
    chosen = next(r for r in two if r.name == "logreg")
    report = build_report(path, "two", final=chosen.id[:8])
    assert report.final.id == chosen.id and report.price_tag.final.chosen
    assert [r.id for r in report.runs] == spec.ids
    assert price_tag(two, final=chosen.id).total == report.price_tag.total


def test_a_live_tracked_study_reports(tmp_path):
    path = tmp_path / "live.db"
    for k, score in enumerate((0.5, 0.8)):
        with gp.track(
            f"t{k}", study="live", ledger=str(path), sample_interval_s=0.05, flush_interval_s=0.1
        ) as run:
            t_end = time.time() + 0.2
            while time.time() < t_end:
                pass
            run.log(acc=score)
            run.set(fpo=1000 * (k + 1))
    report = build_report(path, "live")
    assert report.price_tag.total.trials == 2 and report.price_tag.total.fpo == 3000
    assert report.final.name == "t1"
    assert report.figure("timeline") is not None
    assert report.price_tag.total.energy_kwh > 0


def test_long_timelines_are_averaged_over_bins_keeping_the_energy():
    from greenprint.analysis._common import RunForest
    from greenprint.report._figures import FigureInputs, timeline_figure

    runs = tuple(
        gp.RunRecord(
            id=f"{k:016x}",
            name=f"t{k}",
            study="s",
            status="finished",
            started_at=T0 + 12 * k,
            duration_s=10.0,
            energy_kwh=(k % 7 + 1) * 1e-3,
            energy_cpu_kwh=(k % 7 + 1) * 1e-3,
        )
        for k in range(1500)
    )
    tag = price_tag(runs)
    inputs = FigureInputs(
        runs=runs,
        forest=RunForest.build(runs),
        scores={},
        metric="m",
        mode="max",
        reduce="last",
        price_tag=tag,
        final_id=None,
        energy_provenance=(),
    )
    figure, why = timeline_figure(inputs, lambda run_id: [], max_sampled_runs=10)
    assert why is None
    total, *_ = figure.panels[0].series
    assert len(total.x) == 1001  # 1000 bins instead of 3000 segments
    energy = figure.panels[1].series[0]
    factor = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[figure.panels[1].y_unit]
    assert energy.y[-1] / factor == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)
    assert any("mean over 1000 equal intervals" in n for n in figure.notes)
    assert any("1500 runs drawn at their mean power" in n for n in figure.notes)


def test_unknown_fpo_reads_unknown_with_its_count_never_zero(tmp_path):
    """'0 FPO (+26 unknown)' and '... CO2-eq, unknown and 3.4 s' were the wrong readings."""
    from greenprint.report import render
    from greenprint.report._tables import final_sentence, headline, price_tag_table

    led = gp.Ledger(tmp_path / "l.db")
    spec = Spec()
    for k in range(3):
        add_run(led, spec, name=f"t{k}", score=0.5 + k / 10, start=T0 + 20 * k, fpo=None)
    led.close()
    report = build_report(tmp_path / "l.db", "sweep")
    cards = dict(headline(report))
    assert cards["FPO"] == "unknown (none of the 3 runs counted FPO)"  # under FPO, said once
    _, rows = price_tag_table(report)
    assert rows[-1][0] == "total" and rows[-1][5] == "FPO unknown (none of the 3 runs counted FPO)"
    sentence = final_sentence(report)
    assert "FPO unknown" in sentence and " of energy" in sentence and " of run time" in sentence
    assert "0 FPO" not in report.compute_statement
    assert "floating-point operations (FPO) are unknown (none of the 3 counted any)" in (
        report.compute_statement
    )
    for fmt in ("html", "md"):
        text = render(report, fmt, plots=False)
        assert "0 FPO" not in text and "+3 unknown" not in text, fmt
    from greenprint.report._latex import _price_tag_table

    _, units, latex_rows = _price_tag_table(report)  # no unit over "unknown" ("(MFPO)")
    assert units[5] == "" and all(row[5] == "unknown" for row in latex_rows)
    # partly known: the known part with the count of the unknown runs
    led = gp.Ledger(tmp_path / "l.db")
    add_run(led, spec, name="t3", score=0.1, start=T0 + 100, fpo=5 * 10**9)
    led.close()
    cards = dict(headline(build_report(tmp_path / "l.db", "sweep")))
    assert cards["FPO"] == "5 GFPO + unknown for 3 runs"


def test_a_trial_row_counts_the_fpo_of_its_folds_as_the_price_tag_does(tmp_path):
    # a trial counted 1 GFPO of its own, its two folds 1 GFPO each: the price tag counts
    # 2 GFPO (a parent's FPO hold its nested children's, the larger of the two), the trial's
    # row read 1 GFPO and 0.9 per GFLOP
    db = tmp_path / "f.db"
    for name, own in (("small", 10**9), ("large", 5 * 10**9)):
        with gp.track(name, study="f", ledger=db) as trial:
            trial.add_fpo(own)
            for k in range(2):
                with gp.track(f"{name}-fold{k}", study="f", ledger=db) as fold:
                    fold.add_fpo(10**9)
                    fold.log(acc=0.9)
            trial.log(acc=0.9)
    report = build_report(db, "f", metric="acc")
    rows = {r.name: r for r in report.runs}
    assert (rows["small"].fpo, rows["small"].score_per_gflop) == (2 * 10**9, 0.45)
    assert rows["large"].fpo == 5 * 10**9  # its own count holds its folds'
    assert rows["small-fold0"].fpo == 10**9
    roots = sum(r.fpo for r in report.runs if r.parent_id is None)
    assert roots == report.price_tag.total.fpo == 7 * 10**9
    # a worker on another host (contained=False) adds its FPO to its trial's
    led = gp.Ledger(db)
    worker = dataclasses.replace(
        led.run(rows["large-fold0"].id), id="remote-worker", name="worker", contained=False,
        parent_id=rows["large"].id, host="node-2", fpo=3 * 10**9,
    )  # fmt: skip
    led.start_run(worker)
    led.close()
    report = build_report(db, "f", metric="acc")
    rows = {r.name: r for r in report.runs}
    assert rows["large"].fpo == 8 * 10**9
    roots = sum(r.fpo for r in report.runs if r.parent_id is None)
    assert roots == report.price_tag.total.fpo == 10 * 10**9
