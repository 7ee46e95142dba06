"""Run roles: given or inferred, trial scores from parts, the final-run rule, lower-is-better."""

from __future__ import annotations

import dataclasses
import doctest
import logging
import math

import numpy as np
import pytest

from greenprint import AnalysisError, ConfigError, MetricPoint, RunRecord
from greenprint.analysis import _roles as roles_module
from greenprint.analysis import (
    choose_final,
    evp_by_budget,
    expected_max_performance,
    lower_is_better,
    pareto_runs,
    price_tag,
    resolve_mode,
    resolve_roles,
    roles,
    study_trials,
)


def run(rid, parent=None, role=None, status="finished", kwh=1.0, started=0.0, **metrics):
    return RunRecord(
        id=rid,
        name=rid,
        parent_id=parent,
        role=role,
        status=status,
        started_at=started,
        energy_kwh=kwh,
        emissions_kg=kwh / 2,
        duration_s=kwh * 10,
        metrics=tuple(MetricPoint(k, v) for k, v in metrics.items()),
    )


def test_inference_rules():
    runs = [
        run("lone", acc=0.5),  # a root: trial
        run("cv", acc=0.7),  # a root with a score and children: a trial, its children parts
        run("cv-f0", "cv", acc=0.6),
        run("cv-f0-w", "cv-f0"),  # a part of a part
        run("sweep"),  # a root with children and no score: a sweep
        run("t0", "sweep"),  # a child of a sweep: a trial, even without a score
        run("t0-f0", "t0", acc=0.8),
        run("t1", "sweep", acc=0.9),
        run("empty"),  # a root without children and without a score is still a trial
        run("orphan", "elsewhere", acc=0.1),  # parent not in the set: a root
    ]
    assert roles(runs) == {
        "lone": ("trial", True),
        "cv": ("trial", True),
        "cv-f0": ("part", True),
        "cv-f0-w": ("part", True),
        "sweep": ("sweep", True),
        "t0": ("trial", True),
        "t0-f0": ("part", True),
        "t1": ("trial", True),
        "empty": ("trial", True),
        "orphan": ("trial", True),
    }
    study = resolve_roles(runs)
    assert study.counts == {"trial": 6, "part": 3, "sweep": 1}
    assert [study.runs[p].id for p in study.trials] == ["lone", "cv", "t0", "t1", "empty", "orphan"]
    owners = {study.runs[p].id: study.runs[o].id for p, o in enumerate(study.owners)}
    assert owners["cv-f0-w"] == "cv" and owners["t0-f0"] == "t0" and owners["t0"] == "t0"
    assert study.note is not None and study.note.startswith("roles inferred for every run")
    assert "(6 trials, 3 parts, 1 sweep)" in study.note and "role=" in study.note


def test_given_roles_win_and_the_runs_below_follow_them():
    runs = [
        run("b", role="baseline", acc=0.5),
        run("b-f0", "b", acc=0.4),  # inside a baseline: a part (its cost is the baseline's)
        run("s", role="sweep", acc=0.9),  # a sweep that logs its best score stays a sweep
        run("t", "s", acc=0.9),
        run("x", "s", role="final", acc=0.95),  # explicit roles anywhere
        run("f", role="final"),
        run("f-helper", "f", status="failed"),
        run("lc", role="learning-curve", acc=0.3),
        run("p", role="part"),  # a part whose parent is elsewhere: keeps its role
    ]
    got = roles(runs)
    assert got["b-f0"] == ("part", True) and got["t"] == ("trial", True)
    assert got["s"] == ("sweep", False) and got["x"] == ("final", False)
    assert got["f-helper"] == ("part", True) and got["p"] == ("part", False)
    study = resolve_roles(runs)
    assert study.n_inferred == 3 and study.note is not None and "3 of 9 runs" in study.note
    assert resolve_roles([run("a", role="trial")]).note is None


def test_a_role_given_inside_a_trial_is_read_as_a_part():
    # a scikit-learn search (track_search) inside an Optuna trial: its sweep, candidate and
    # refit were given roles, but their cost is inside the trial: its parts, not more trials
    runs = [
        run("t", role="trial", acc=0.9),
        run("cv", "t", role="sweep"),
        run("cv-c0", "cv", role="trial", acc=0.8),
        run("cv-c0-f0", "cv-c0", role="part", acc=0.8),
        run("cv-refit", "cv", role="final"),
        run("g", role="greener"),  # a greener comparison keeps its variants' role
        run("g-v", "g", role="greener"),
        run("f", role="final", acc=0.95),
        run("f-g", "f", role="greener"),  # inside the final run: a part of it
        run("f-g-v", "f-g", role="greener"),
        run("bad", role="trial", status="failed"),  # failed: no score from its folds
        run("bad-f0", "bad", role="part", acc=0.99),
    ]
    got = roles(runs)
    for rid in ("cv", "cv-c0", "cv-refit", "f-g", "f-g-v"):
        assert got[rid] == ("part", True), rid
    assert got["cv-c0-f0"] == ("part", False) and got["g-v"] == ("greener", False)
    study = resolve_roles(runs)
    assert study.overridden == 5 and study.n_inferred == 5
    assert study.note == (
        "5 of 12 runs were given a role but ran inside a trial (or a part, baseline, final or "
        "learning-curve run): they are read as its parts, their cost inside its own (e.g. a "
        "scikit-learn search inside an Optuna trial)"
    )
    trials = study_trials(runs, metric="acc")
    assert [r.id for r in trials.runs] == ["t", "bad"]
    assert math.isnan(trials.score_of("bad").score) and trials.score_of("bad").source == "none"
    assert price_tag(runs, metric="acc").final.run_id == "f"


def test_the_sweep_rule_judges_the_score_by_the_ranked_metric():
    runs = [run("s", best_acc=0.9), run("t0", "s", acc=0.8), run("t1", "s", acc=0.9)]
    assert roles(runs)["s"] == ("trial", True)  # logged a metric: a trial with two parts
    by_acc = roles(runs, metric="acc")
    assert by_acc["s"] == ("sweep", True) and by_acc["t0"] == ("trial", True)
    # NaN is no score
    assert roles([run("s", acc=math.nan), run("t", "s")])["s"] == ("sweep", True)


def test_a_root_around_trials_given_that_role_is_a_sweep_even_with_a_score():
    # Optuna trials (role "trial", from the integration) inside gp.track("study") that logs the
    # best score: the wrapper is their sweep, not one trial whose parts they would become
    runs = [
        run("study", acc=0.9),
        run("trial-0", "study", role="trial", acc=0.8),
        run("trial-1", "study", role="trial", acc=0.9),
    ]
    got = roles(runs, metric="acc")
    assert got == {
        "study": ("sweep", True),
        "trial-0": ("trial", False),
        "trial-1": ("trial", False),
    }
    assert [r.id for r in study_trials(runs, metric="acc").runs] == ["trial-0", "trial-1"]


def test_a_root_around_searches_is_their_sweep_unless_it_repeats_one_search():
    """Children given role 'sweep' (track_search inside gp.track): one search, or searches of
    different spaces (one per model family), make the root their sweep, its score or not; the
    same search repeated per outer fold under a root that logs the nested estimate is a
    nested cross-validation: the root is the one trial, the searches its parts."""
    import dataclasses

    def searches(root_score, spaces):
        runs = [run("experiment", acc=0.9) if root_score else run("experiment")]
        for k, space in enumerate(spaces):
            runs.append(run(f"search{k}", "experiment", role="sweep"))
            runs += [
                dataclasses.replace(
                    run(f"s{k}-c{c}", f"search{k}", role="trial", acc=0.5 + c / 10),
                    params={"C": value},
                )
                for c, value in enumerate(space)
            ]
        return roles(runs, metric="acc")

    for root_score in (False, True):
        assert searches(root_score, [[0.1, 1.0]])["experiment"] == ("sweep", True)
        assert searches(root_score, [[0.1, 1.0], [5, 50]])["experiment"] == ("sweep", True)
    assert searches(False, [[0.1, 1.0]] * 3)["experiment"] == ("sweep", True)
    nested = searches(True, [[0.1, 1.0]] * 3)
    assert nested["experiment"] == ("trial", True)
    assert {nested[f"search{k}"][0] for k in range(3)} == {"part"}


def test_an_unknown_stored_role_is_inferred_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert roles([run("a", role="champion", acc=1.0)]) == {"a": ("trial", True)}
    assert "role this greenprint does not know" in caplog.text


def test_trial_scores_come_from_their_own_metric_else_their_parts():
    runs = [
        run("s"),
        run("own", "s", acc=0.9),
        run("own-f", "own", acc=0.1),  # ignored: the trial logged its own
        run("cv", "s"),
        run("cv-f0", "cv", acc=0.6),
        run("cv-f1", "cv", acc=0.8),
        run("cv-f2", "cv", status="failed", acc=0.0),  # a failed part's score does not count
        run("deep", "s"),
        run("deep-w", "deep"),  # a part scored by its own parts, recursively
        run("deep-w-f", "deep-w", acc=0.4),
        run("none", "s"),
    ]
    trials = study_trials(runs, metric="acc")
    assert [r.id for r in trials.runs] == ["own", "cv", "deep", "none"]
    assert trials.score_of("own").score == 0.9 and trials.score_of("own").source == "own"
    cv = trials.score_of("cv")
    assert cv.source == "parts" and cv.parts == 2 and cv.score == pytest.approx(0.7)
    assert trials.score_of("deep").score == 0.4 and trials.score_of("deep").source == "parts"
    assert math.isnan(trials.score_of("none").score) and trials.score_of("none").source == "none"
    assert math.isnan(trials.score_of("s").score)  # a sweep never takes its trials' scores
    assert trials.from_parts == 2 and trials.score_note.startswith("2 of 4 trials")
    assert trials.to_dict()["scored_by_parts"] == 2
    diverged = study_trials([run("a", acc=math.inf), run("b", acc=0.5)], metric="acc")
    assert math.isnan(diverged.score_of("a").score) and diverged.diverged == (0,)
    assert diverged.diverged_note.startswith("1 run ('a') ended with an infinite 'acc'")
    assert trials.diverged == () and trials.diverged_note is None


def test_the_final_run_rule():
    runs = [
        run("s"),
        run("t0", "s", acc=0.8, started=1),
        run("t1", "s", acc=0.9, started=2),
        run("t1-f", "t1", acc=0.99),  # a part is never the final run
        run("t2", "s", status="failed", acc=0.95, started=3),
        run("t3", "s", acc=0.9, started=4),  # ties: the earliest started wins
    ]
    choice = choose_final(study_trials(runs, metric="acc"))
    assert runs[choice.position].id == "t1" and choice.rule == "best-trial"
    assert "highest acc" in choice.text
    low = choose_final(study_trials(runs, metric="acc", mode="min"))
    assert runs[low.position].id == "t0" and "lowest" in low.text
    assert choose_final(study_trials(runs)).position is None  # no metric, no final role
    finals = [*runs, run("f1", role="final", started=5), run("f2", role="final", started=6)]
    finals.append(run("f3", role="final", status="failed", started=7))
    choice = choose_final(study_trials(finals, metric="acc"))
    assert finals[choice.position].id == "f2" and choice.rule == "role"
    assert "last started of the 3 runs" in choice.text
    named = choose_final(study_trials(runs, metric="acc"), final="s")
    assert runs[named.position].id == "s" and named.rule == "given"
    with pytest.raises(AnalysisError, match="no finished trial.*role 'final'"):
        price_tag([run("s"), run("t", "s", status="failed", acc=1.0)], metric="accuracy")
    # acc logged by a trial that failed: the price tag has no final run, and says why
    tag = price_tag([run("s"), run("t", "s", status="failed", acc=1.0)], metric="acc")
    assert tag.final is None
    assert "final run is not identified (runs that logged it: 't' (failed))" in tag.notes[-1]


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("loss", True),
        ("val_loss", True),
        ("trainLoss", True),
        ("eval/loss", True),
        ("test.error", True),
        ("error_rate", True),
        ("perplexity", True),
        ("ppl", True),
        ("RMSE", True),
        ("mae", True),
        ("mse", True),
        ("wer", True),
        ("cer", True),
        ("mean_squared_error", True),
        ("neg_log_loss", False),  # scikit-learn's negated losses: higher is better
        ("neg_root_mean_squared_error", False),
        ("accuracy", False),
        ("f1", False),
        ("bleu", False),
        ("auc", False),
        ("glossary_score", False),  # a word that merely contains "loss"
    ],
)
def test_names_that_say_lower_is_better(metric, lower):
    assert lower_is_better(metric) is lower
    mode, note = resolve_mode(metric)
    assert mode == ("min" if lower else "max")
    assert (note is not None) is lower
    if note:
        assert note == (
            f"{metric!r} is minimised: its name says lower is better "
            "(to maximise it: --mode max, or mode='max' in Python)"
        )


def test_a_given_mode_always_wins_and_is_checked():
    assert resolve_mode("loss", "max") == ("max", None)
    assert resolve_mode(None) == ("max", None)
    with pytest.raises(ConfigError, match="mode"):
        resolve_mode("loss", "lower")


def test_a_loss_is_never_maximised_silently():
    runs = [run("a", loss=0.2, started=1), run("b", loss=0.9, started=2)]
    tag = price_tag(runs, metric="loss")
    assert tag.final is not None and tag.final.run_id == "a" and tag.mode == "min"
    assert tag.mode_note is not None and tag.mode_note in tag.notes
    assert price_tag(runs, metric="loss", mode="max").final.run_id == "b"
    assert evp_by_budget(runs, "trials", metric="loss").mean[-1] == pytest.approx(
        expected_max_performance([0.2, 0.9], mode="min").mean[-1]
    )
    assert [r.id for r in pareto_runs(runs, metric="loss")] == ["a"]


def test_evp_per_family_is_each_familys_own_curve():
    scores = [0.7, 0.8, 0.6, 0.9, np.nan]
    families = ["mlp", "cnn", "mlp", "cnn", "mlp"]
    curves = expected_max_performance(scores, group_by=families, replacement=False)
    assert list(curves) == ["mlp", "cnn"]
    mlp = expected_max_performance([0.7, 0.6, np.nan], replacement=False)
    assert curves["mlp"].mean.tolist() == pytest.approx(mlp.mean.tolist())
    assert curves["mlp"].n_missing == 1 and curves["mlp"].family == "mlp"
    assert curves["cnn"].n_trials == 2 and curves["cnn"].to_dict()["family"] == "cnn"
    with pytest.raises(AnalysisError, match="one family label per score"):
        expected_max_performance(scores, group_by="params.model")
    with pytest.raises(AnalysisError, match="4 group_by labels for 5 scores"):
        expected_max_performance(scores, group_by=families[:4])


def test_a_failed_trial_counts_as_the_studys_worst_in_its_familys_curve():
    # the cnn family's failed trial is not worth cnn's worst (0.8) but the study's (0.6), as in
    # the whole search's curve: the same failure costs every family alike
    scores = [0.7, 0.8, 0.6, 0.9, np.nan]
    families = ["mlp", "cnn", "mlp", "cnn", "cnn"]
    curves = expected_max_performance(scores, group_by=families)
    cnn = expected_max_performance([0.8, 0.9, 0.6])
    assert curves["cnn"].mean.tolist() == pytest.approx(cnn.mean.tolist(), abs=1e-15)
    assert curves["cnn"].fill_value == 0.6
    by_cost = evp_by_budget(scores, [1.0] * 5, unit="kWh", group_by=families)
    assert by_cost["cnn"].mean.tolist() == pytest.approx(cnn.mean.tolist(), abs=1e-15)
    low = expected_max_performance([0.1, 0.3, np.nan], mode="min", group_by=["a", "b", "b"])
    assert low["b"].fill_value == 0.3 and low["b"].mean.tolist()[0] == pytest.approx(0.3)
    given = expected_max_performance(scores, group_by=families, fill_value=0.0)
    assert given["cnn"].fill_value == 0.0
    # a family of failed trials only is a flat worst curve, not an error
    only = expected_max_performance([0.5, np.nan], group_by=["a", "b"])
    assert only["b"].mean.tolist() == [0.5]


def test_evp_by_budget_groups_runs_by_a_path_or_a_function():
    runs = [run("s")] + [
        RunRecord(
            id=f"t{k}",
            name=f"t{k}",
            parent_id="s",
            status="finished",
            energy_kwh=0.1 * (k + 1),
            params={"model": model} if model else {},
            metrics=(MetricPoint("acc", acc),),
        )
        for k, (model, acc) in enumerate([("mlp", 0.7), ("cnn", 0.8), (None, 0.5), ("mlp", 0.6)])
    ]
    curves = evp_by_budget(runs, "energy_kwh", metric="acc", group_by="params.model")
    assert list(curves) == ["mlp", "cnn", "(no params.model)"]
    assert curves["mlp"].n_trials == 2 and curves["mlp"].budget_unit == "kWh"
    assert curves["mlp"].budget.tolist() == pytest.approx([0.25, 0.5])  # mean of 0.1 and 0.4
    by_fn = evp_by_budget(runs, "trials", metric="acc", group_by=lambda r: r.energy_kwh > 0.2)
    assert sorted(by_fn) == ["False", "True"] and by_fn["True"].n_trials == 2
    with pytest.raises(ConfigError, match="group_by"):
        evp_by_budget(runs, "trials", metric="acc", group_by="")


def test_pareto_and_evp_never_take_folds_baselines_or_the_final_run():
    runs = [
        run("b", role="baseline", acc=0.99, kwh=0.01),
        run("f", role="final", acc=0.98, kwh=0.01),
        run("lc", role="learning-curve", acc=0.97, kwh=0.01),
        run("s"),
        run("t0", "s", kwh=3.0),
        run("t0-f0", "t0", acc=0.96, kwh=1.0),
        run("t0-f1", "t0", acc=0.94, kwh=1.0),
        run("t1", "s", acc=0.9, kwh=1.0, started=100.0),  # after t0 (one after another)
    ]
    front = pareto_runs(runs, metric="acc")
    assert [r.id for r in front] == ["t0", "t1"]
    curve = evp_by_budget(runs, "energy_kwh", metric="acc")
    assert curve.n_trials == 2 and curve.scored_by_parts == 1
    assert curve.mean[-1] == pytest.approx(expected_max_performance([0.95, 0.9]).mean[-1])
    assert curve.budget[0] == pytest.approx(2.0)  # (3.0 + 1.0) / 2: a trial's cost has its folds


def test_price_tag_by_role_puts_parts_with_their_run():
    runs = [
        run("b", role="baseline", kwh=1.0),
        run("s", kwh=10.0),
        run("t0", "s", kwh=4.0, acc=0.5),
        run("t0-f", "t0", kwh=3.0, status="failed"),
        run("t1", "s", kwh=5.0, acc=0.6),
        run("f", role="final", kwh=2.0),
        run("f-h", "f", kwh=0.5),
    ]
    tag = price_tag(runs, metric="acc")
    assert {k: v.energy_kwh for k, v in tag.by_role.items()} == pytest.approx(
        {"trial": 9.0, "baseline": 1.0, "final": 2.0, "sweep": 1.0}
    )
    assert tag.total.energy_kwh == pytest.approx(13.0)
    assert tag.by_role["trial"].runs == 3 and tag.by_role["trial"].trials == 2
    # a failed fold of a finished trial stays the cost of a failure
    assert tag.by_status["failed"].energy_kwh == pytest.approx(3.0)
    assert tag.final is not None and tag.final.run_id == "f" and tag.final.rule == "role"
    data = tag.to_dict()
    assert data["by_role"]["sweep"]["energy_kwh"] == pytest.approx(1.0)
    assert data["roles"]["counts"] == {"trial": 2, "part": 2, "baseline": 1, "final": 1, "sweep": 1}
    assert data["final"]["rule_text"] == "the run with role 'final'"


def test_the_docstring_examples_run():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    functions = (resolve_roles, evp_by_budget, expected_max_performance)
    names = {fn.__name__: fn for fn in functions}
    for fn in functions:
        for test in finder.find(fn, fn.__name__, module=roles_module, globs=dict(names)):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_run_learning_curve_runs_have_the_learning_curve_role(tracking, tmp_path):
    from greenprint import Ledger
    from greenprint.analysis import run_learning_curve

    ledger = str(tmp_path / "lc.db")
    run_learning_curve(
        lambda fraction: 0.5 + 0.4 * fraction,
        [0.5, 1.0],
        study="lc",
        ledger=ledger,
        full_size=100,
        metric="acc",
        track_options={"sample_interval_s": 0.05},
    )
    with Ledger(ledger) as led:
        runs = led.runs(study="lc")
    assert [r.role for r in runs] == ["learning-curve", "learning-curve"]
    assert study_trials(runs, metric="acc").positions == ()  # never taken for trials


def test_a_final_run_with_a_tiny_share_is_described_without_overflow():
    runs = [run("search", kwh=1.0, acc=0.5), run("f", role="final", kwh=5e-324, acc=0.9)]
    final = price_tag(runs, metric="acc").final
    assert final is not None and final.describe().startswith(
        "the final model cost less than 1/1,000,000 of the study's energy"
    )


def test_the_final_runs_sentence_says_its_share_as_the_report_does():
    """``FinalRun.describe`` (the JSON price tag's ``final.text``, the price tag's repr) and the
    report's sentences say a share in one form: it said "1/4" for 24.2% beside the report's
    "24.2%"."""
    runs = [run("search", kwh=0.758, acc=0.5), run("f", role="final", kwh=0.242, acc=0.9)]
    final = price_tag(runs, metric="acc").final
    assert final is not None
    assert final.describe().startswith("the final model cost 24.2% of the study's energy")
    runs = [run("search", kwh=129133.0, acc=0.5), run("f", role="final", kwh=1.0, acc=0.9)]
    final = price_tag(runs, metric="acc").final
    assert final is not None
    assert final.describe().startswith("the final model cost 1/129,134 of the study's energy")


def test_a_trial_takes_the_family_its_parts_share():
    """``group_by`` on a trial with no value of its own: the value its parts agree on (the
    script's run inside ``greenprint run --role trial``), else none; its own value wins."""
    import dataclasses

    from greenprint.analysis._common import RunForest
    from greenprint.analysis._families import trial_family_labels

    def with_params(record, **params):
        return dataclasses.replace(record, params=params)

    runs = [
        run("cli", role="trial"),  # its one fit says the model
        with_params(run("fit", parent="cli", loss=0.3), model="cnn", lr=0.1),
        run("cv", role="trial"),  # folds that disagree: no family
        with_params(run("f0", parent="cv", loss=0.2), model="cnn"),
        with_params(run("f1", parent="cv", loss=0.4), model="mlp"),
        with_params(run("own", role="trial", loss=0.5), model="mlp"),  # its own value
        with_params(run("in", parent="own"), model="cnn"),
    ]
    forest = RunForest.build(runs)
    positions = [forest.index[i] for i in ("cli", "cv", "own")]
    labels = trial_family_labels(forest, positions, "params.model")
    assert labels == ["cnn", "(no params.model)", "mlp"]
    curves = evp_by_budget(runs, "trials", metric="loss", group_by="params.model")
    assert sorted(curves) == ["(no params.model)", "cnn", "mlp"]


def _with(rid, parent=None, params=None, **metrics):
    """A finished run with params and each metric's values in logged order (lists)."""
    points = tuple(
        MetricPoint(k, v, step)
        for k, vs in metrics.items()
        for step, v in enumerate(vs if isinstance(vs, list) else [vs])
    )
    return RunRecord(
        id=rid, name=rid, parent_id=parent, status="finished", params=params or {}, metrics=points
    )


def test_a_hand_written_search_that_logs_its_best_trials_score_is_their_sweep():
    # gp.track("search") around trials of their own lr, then search.log(val_acc=best)
    accs = {"t0": [0.5, 0.7], "t1": [0.6, 0.8], "t2": [0.5, 0.6]}
    runs = [_with("search", params={"n_trials": 3}, val_acc=0.8)] + [
        _with(t, "search", {"lr": 10.0**-k}, val_acc=a) for k, (t, a) in enumerate(accs.items())
    ]
    for metric in (None, "val_acc"):
        got = roles(runs, metric=metric)
        assert got["search"] == ("sweep", True)
        assert {got[t] for t in accs} == {("trial", True)}
    trials = study_trials(runs, metric="val_acc")
    assert [r.id for r in trials.runs] == ["t0", "t1", "t2"]
    assert trials.runs[0].id == "t0" and choose_final(trials).position == 2  # t1
    # it logged its best trial's lowest loss: a sweep too, judged by the lower end
    low = [_with("s", val_loss=0.2), _with("a", "s", {"lr": 1}, val_loss=[0.5, 0.2]),
           _with("b", "s", {"lr": 2}, val_loss=0.4)]  # fmt: skip
    assert roles(low)["s"] == ("sweep", True)
    # its best under a name of its own: best_val_acc is the highest val_acc of its trials
    named = [_with("search", params={"n_trials": 3}, best_val_acc=0.8), *runs[1:]]
    assert roles(named)["search"] == ("sweep", True)
    # a training's bookkeeping is never compared: a trial logging the last epoch its
    # early-stopped folds reached stays a trial
    epochs = [_with("t", params={"lr": 0.1}, epoch=5, acc=0.8)] + [
        _with(f"f{k}", "t", {"fold": k}, epoch=list(range(e + 1)), acc=a)
        for k, (e, a) in enumerate([(3, 0.7), (5, 0.9), (4, 0.8)])
    ]
    assert roles(epochs)["t"] == ("trial", True)


@pytest.mark.parametrize(
    "case",
    ["mean of folds", "folds that vary no configuration", "one scored child", "all equal"],
)
def test_a_root_whose_score_is_not_a_best_among_configurations_stays_a_trial(case):
    if case == "mean of folds":  # folds carry their index: the trial logs their mean
        kids = [_with(f"f{k}", "t", {"fold": k}, acc=a) for k, a in enumerate([0.8, 0.9, 0.7])]
        root = _with("t", params={"lr": 0.1}, acc=0.8)  # the mean, = fold 0's, not the best
    elif case == "folds that vary no configuration":
        kids = [_with(f"f{k}", "t", {"lr": 0.1}, acc=a) for k, a in enumerate([0.8, 0.9])]
        root = _with("t", params={"lr": 0.1}, acc=0.9)  # its best fold, but one configuration
    elif case == "one scored child":
        kids = [_with("a", "t", {"lr": 1}, acc=0.9), _with("b", "t", {"lr": 2})]
        root = _with("t", acc=0.9)
    else:
        kids = [_with(f"f{k}", "t", {"fold": k}, acc=0.9) for k in range(3)]
        root = _with("t", acc=0.9)
    got = roles([root, *kids])
    assert got["t"] == ("trial", True)
    assert {got[k.id] for k in kids} == {("part", True)}


@pytest.mark.parametrize("params", [{"lr": 0.1}, {}])
@pytest.mark.parametrize("index", ["seed", "fold", "random_state", "data_seed"])
def test_children_that_differ_by_a_seed_or_fold_only_are_the_trials_repeats(params, index):
    """A configuration run over seeds (or folds as params) that logs nothing itself was a sweep
    of one trial per seed: 3 configurations x 3 seeds read as 9 trials, the best seed final."""
    runs = []
    for c, lr in enumerate([0.1, 0.01, 0.001]):
        runs.append(_with(f"c{c}", params=params and {"lr": lr}))
        for s in range(3):
            kid_params = {index: s, **({"lr": lr} if params else {})}
            runs.append(_with(f"c{c}s{s}", f"c{c}", kid_params, acc=0.7 + 0.1 * c + 0.01 * s))
    study = resolve_roles(runs, metric="acc")
    got = study.as_dict()
    assert [got[f"c{c}"] for c in range(3)] == [("trial", True)] * 3
    assert {got[f"c{c}s{s}"] for c in range(3) for s in range(3)} == {("part", True)}
    assert study.repeats == 3 and "3 trials hold child runs that differ only by a seed" in (
        study.note or ""
    )
    trials = study_trials(study, metric="acc")
    assert trials.score_of("c2").score == pytest.approx(0.91)  # the mean of its seeds
    # a configuration that varies besides the seed: a sweep of trials, as before
    swept = [_with("s"), *(_with(f"t{k}", "s", {"lr": k, "seed": 0}, acc=0.8) for k in range(2))]
    assert roles(swept)["s"] == ("sweep", True)
    # seed runs given role 'trial' are ranked each as a trial: their parent is their sweep
    given = [_with("c", params={"lr": 0.1})] + [
        RunRecord(id=f"s{k}", name=f"s{k}", parent_id="c", role="trial", params={"seed": k})
        for k in range(2)
    ]
    assert roles(given)["c"] == ("sweep", True)
    assert resolve_roles(given).repeats == 0


def test_a_sweep_inside_a_sweep_holds_the_trials():
    """A search per model family (no score), each around trials of its own C with their folds,
    was read as 2 trials (the families, scored by the mean over all their C's folds)."""
    runs = [_with("search")]
    for fam, accs in {"svc": (0.9, 0.95), "lin": (0.85, 0.88)}.items():
        runs.append(_with(fam, "search", {"model": fam}))
        for c, acc in enumerate(accs):
            runs.append(_with(f"{fam}{c}", fam, {"model": fam, "C": c}))
            runs += [_with(f"{fam}{c}f{k}", f"{fam}{c}", {"fold": k}, acc=acc) for k in range(3)]
    got = roles(runs, metric="acc")
    assert got["search"] == got["svc"] == got["lin"] == ("sweep", True)
    assert [r for r, (role, _) in got.items() if role == "trial"] == [
        "svc0",
        "svc1",
        "lin0",
        "lin1",
    ]
    trials = study_trials(runs, metric="acc")
    assert choose_final(trials).position == trials.forest.index["svc1"]
    # a trial of a sweep around its own folds (or its fit) stays a trial, with params or not
    for trial_params in ({"C": 1}, {}):
        cv = [_with("s"), _with("t", "s", trial_params)]
        cv += [_with(f"f{k}", "t", {"fold": k}, acc=0.8) for k in range(3)]
        assert roles(cv, metric="acc")["t"] == ("trial", True)
        fit = [_with("s"), _with("t", "s", trial_params), _with("fit", "t", acc=0.8)]
        assert roles(fit, metric="acc")["t"] == ("trial", True)
    # a trial whose children give its own params other values is no sweep of them
    odd = [_with("s"), _with("t", "s", {"lr": 1})]
    odd += [_with(f"k{k}", "t", {"lr": 2 + k}, acc=0.8) for k in range(2)]
    assert roles(odd, metric="acc")["t"] == ("trial", True)
    # one given role 'trial' inside a sweep's child: that child is their sweep (no override)
    given = [
        _with("s"),
        _with("fam", "s"),
        RunRecord(id="o", name="o", parent_id="fam", role="trial"),
    ]
    assert roles(given)["fam"] == ("sweep", True) and roles(given)["o"] == ("trial", False)
    # a trial that logged its own score, around children of other configurations: a trial
    scored = [_with("s"), _with("t", "s", {"C": 1}, acc=0.7)]
    scored += [_with(f"k{k}", "t", {"C": 1, "gamma": k}, acc=0.8 - 0.01 * k) for k in range(2)]
    assert roles(scored, metric="acc")["t"] == ("trial", True)


def test_trials_that_differ_by_their_training_set_size_only_say_how_they_were_read():
    """A learning curve written by hand (fractions as params, dataset_size set, no role) read
    as 4 trials of a search with no word: EVP over data sizes, the full-data run final."""

    def sized(rid, size, **params):
        return RunRecord(id=rid, name=rid, status="finished", dataset_size=size, params=params)

    fracs = [
        sized(f"f{k}", int(1797 * f), fraction=f, model="svc") for k, f in enumerate([0.1, 0.5, 1])
    ]
    study = resolve_roles(fracs)
    assert study.trials == (0, 1, 2) and study.sizes_only == (179, 898, 1797)
    assert "the 3 trials differ only by their training-set size (dataset_size 179 to 1,797)" in (
        study.note or ""
    ) and "role='learning-curve'" in (study.note or "")
    # no note: a param that varies otherwise, one size, a size missing, or roles given
    searched = [*fracs[:2], sized("x", 1797, fraction=1.0, model="mlp")]
    same_size = [sized(f"s{k}", 500, lr=k) for k in range(1, 3)]
    missing = [*fracs[:2], sized("m", None, fraction=1.0, model="svc")]
    given = [
        RunRecord(id=r.id, name=r.id, dataset_size=r.dataset_size, role="trial") for r in fracs
    ]
    for runs in (searched, same_size, missing, given):
        assert resolve_roles(runs).sizes_only == ()
        assert "training-set size" not in (resolve_roles(runs).note or "")


def test_trials_named_like_a_baseline_or_the_final_run_say_how_to_give_the_role():
    """A baseline and a retrain tracked without roles were trials with no word (the retrain
    final as the best trial, the baseline's 0.11 in the EVP): they stay trials, with a note."""
    runs = [
        _with("majority-baseline", acc=0.11),
        _with("mlp-lr=0.1", acc=0.8),
        _with("final_retrain", acc=0.9),
        _with("baselines-mlp", acc=0.85),
        RunRecord(id="b", name="dummy", role="baseline"),  # given: no note
        _with("finalize-lr", acc=0.7),  # 'finalize' is no word of the list
    ]
    study = resolve_roles(runs)
    assert study.named_like == {
        "baseline": ["majority-baseline", "baselines-mlp"],
        "final": ["final_retrain"],
    }
    assert len(study.trials) == 5
    assert (
        "2 trials named like a baseline run ('majority-baseline', 'baselines-mlp'), 1 trial "
        "named like a final run ('final_retrain'): read as trials, as no role was given"
    ) in (study.note or "")
    assert resolve_roles(runs[1:2] + runs[4:]).named_like == {}


def test_repeat_trials_with_no_score_are_counted_by_how_they_ended():
    """'it has no score (failed, or no part scored)' said of interrupted and lost trials too:
    the note now counts them by how each ended, as the note on fold-scored trials does."""
    runs = []
    for c, (lr, status) in enumerate([(0.1, "failed"), (0.01, "interrupted"), (0.001, "")]):
        runs.append(
            dataclasses.replace(_with(f"c{c}", params={"lr": lr}), status=status or "finished")
        )
        for s in range(2):
            kid = _with(
                f"c{c}s{s}", f"c{c}", {"seed": s, "lr": lr}, **({} if status else {"acc": 0.8})
            )
            runs.append(dataclasses.replace(kid, status=status or "finished"))
    note = study_trials(resolve_roles(runs, metric="acc"), metric="acc").roles_note or ""
    assert "3 trials hold child runs that differ only by a seed" in note
    assert "1 of them is scored by its parts' mean" in note, note
    assert "2 of them have no score (1 failed, 1 interrupted)" in note, note
