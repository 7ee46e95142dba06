"""A study built the way users build one, read right: trials, their folds, baselines, a sweep, a
final model, a learning curve; in process (nested ``gp.track``) and through ``greenprint run``
around a script whose trials are child runs in child processes (``GREENPRINT_PARENT_RUN``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import sys
import textwrap
import time

import pytest

import greenprint as gp
from greenprint.analysis import (
    evp_by_budget,
    expected_max_performance,
    pareto_runs,
    price_tag,
    resolve_roles,
    study_trials,
)
from greenprint.cli import main
from greenprint.meters._base import MeterReading

STUDY = "optuna-like"
FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}

# fold losses of the 5 trials (lower is better); trial 2 is pruned after its first fold and
# trial 3 fails in its second fold; trials 0 and 1 log their own (cross-validated) loss
FOLDS = {
    0: [0.40, 0.42, 0.44],
    1: [0.30, 0.34, 0.32],
    2: [0.90],
    3: [0.50],
    4: [0.36, 0.38, 0.40],
}
OWN = {0: 0.41, 1: 0.31}
FAMILY = {0: "mlp", 1: "cnn", 2: "mlp", 3: "cnn", 4: "cnn"}


class ClockMeters:
    """Constant CPU power by the clock: a run's energy is its span, so a parent's always
    contains its children's (the price tag then equals the sum of the roots exactly)."""

    components = ("cpu",)
    provenance = {"cpu": "test:constant"}

    def start(self) -> None:
        self.t0 = time.time()

    def read(self) -> dict[str, MeterReading]:
        joules = 50.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self) -> None:
        pass


def build_study(ledger: str) -> dict[str, str]:
    """Baselines, a sweep of 5 trials with 3-fold CV as child runs, a learning curve, a retrain.

    Returns:
        Run name -> run id.
    """
    ids: dict[str, str] = {}

    def track(name: str, **kw: object) -> gp.Run:
        return gp.track(name, meters=ClockMeters(), **FAST, **kw)  # type: ignore[arg-type]

    for name, loss in (("majority-class", 0.69), ("logistic-regression", 0.52)):
        with track(name, study=STUDY, ledger=ledger, role="baseline") as run:
            run.log(loss=loss)
        ids[name] = run.id
    with track("study", study=STUDY, ledger=ledger) as sweep:  # no role, no score: a sweep
        for k, losses in FOLDS.items():
            try:
                with track(f"trial-{k}", params={"model": FAMILY[k]}) as trial:
                    ids[trial.name] = trial.id
                    for fold, loss in enumerate(losses):
                        with track(f"trial-{k}-fold{fold}") as part:
                            ids[part.name] = part.id
                            if k == 3 and fold == 0:
                                part.log(loss=loss)
                                raise FloatingPointError("loss diverged")
                            part.log(loss=loss)
                        if k == 2:
                            trial.prune()  # Optuna's pruner stops it after one fold
                            break
                    if k in OWN:
                        trial.log(loss=OWN[k])
            except FloatingPointError:
                pass
    ids["study"] = sweep.id
    for size in (100, 200):
        with track(f"lc-{size}", study=STUDY, ledger=ledger, role="learning-curve") as run:
            run.set(dataset_size=size)
            run.log(loss=0.6 - size / 1000)
        ids[run.name] = run.id
    with track("retrain", study=STUDY, ledger=ledger) as final:
        final.set(role="final")
        try:
            with track("export-onnx"):  # a failed helper inside the final run: a part
                raise RuntimeError("onnx export failed")
        except RuntimeError:
            pass
        final.log(loss=0.29)
    ids["retrain"] = final.id
    return ids


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("GREENPRINT_")]:
        mp.delenv(key)
    try:
        ledger = str(tmp_path_factory.mktemp("roles") / "study.db")
        return ledger, build_study(ledger)
    finally:
        mp.undo()


def expected_trial_scores() -> list[float]:
    """Trial k's score: its own, else the mean of its finished folds; failed trials have none."""
    return [
        OWN[k] if k in OWN else (math.nan if k == 3 else statistics.fmean(FOLDS[k]))
        for k in range(5)
    ]


def test_roles_are_given_or_inferred_and_no_fold_is_ever_a_trial(study):
    ledger, ids = study
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
        assert led.run(ids["majority-class"]).role == "baseline"  # stored
        assert led.run(ids["retrain"]).role == "final"  # set with run.set(role=...)
        assert led.run(ids["trial-0"]).role is None  # not given
    roles = resolve_roles(runs, metric="loss").as_dict()
    assert roles[ids["study"]] == ("sweep", True)
    assert roles[ids["majority-class"]] == ("baseline", False)
    assert roles[ids["lc-100"]] == ("learning-curve", False)
    assert roles[ids["retrain"]] == ("final", False)
    assert all(roles[ids[f"trial-{k}"]] == ("trial", True) for k in range(5))
    folds = [run for run in runs if "fold" in run.name]
    assert len(folds) == 11 and all(roles[r.id] == ("part", True) for r in folds)
    helper = next(r for r in runs if r.name == "export-onnx")
    assert helper.status == "failed" and roles[helper.id] == ("part", True)


def test_trials_by_status_scores_from_folds_and_a_minimised_loss(study):
    ledger, ids = study
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
    trials = study_trials(runs, metric="loss")
    assert [r.name for r in trials.runs] == [f"trial-{k}" for k in range(5)]
    assert trials.by_status == {"finished": 3, "pruned": 1, "failed": 1}
    assert trials.mode == "min" and "'loss' is minimised" in (trials.mode_note or "")
    sources = [trials.score_of(ids[f"trial-{k}"]).source for k in range(5)]
    assert sources == ["own", "own", "parts", "none", "parts"]
    got = [trials.score_of(ids[f"trial-{k}"]).score for k in range(5)]
    want = expected_trial_scores()
    assert got[:3] + got[4:] == pytest.approx(want[:3] + want[4:], abs=1e-12)
    assert math.isnan(got[3])  # failed: no usable model, even though its first fold logged
    assert trials.from_parts == 2 and "2 of 5 trials" in (trials.score_note or "")

    tag = price_tag(runs, metric="loss")
    assert tag.total.trials == 5 and tag.mode == "min"
    assert {s: v.trials for s, v in tag.by_status.items() if v.trials} == trials.by_status
    assert tag.mode_note in tag.notes
    assert tag.roles is not None and tag.roles.counts == {
        "trial": 5,
        "part": 12,
        "baseline": 2,
        "final": 1,
        "learning-curve": 2,
        "sweep": 1,
    }


def test_evp_is_built_from_trial_scores_only(study):
    ledger, _ = study
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
    curve = evp_by_budget(runs, "trials", metric="loss")
    assert curve.n_trials == 5 and curve.mode == "min" and curve.scored_by_parts == 2
    reference = expected_max_performance(expected_trial_scores(), mode="min")
    assert curve.mean.tolist() == pytest.approx(reference.mean.tolist(), abs=1e-12)
    assert any("'loss' is minimised" in note for note in curve.notes)
    # per model family, as Dodge et al. draw them
    families = evp_by_budget(runs, "trials", metric="loss", group_by="params.model")
    assert list(families) == ["mlp", "cnn"]
    assert families["mlp"].n_trials == 2 and families["cnn"].n_trials == 3
    scores = expected_trial_scores()
    mlp = expected_max_performance([scores[0], scores[2]], mode="min")
    assert families["mlp"].mean.tolist() == pytest.approx(mlp.mean.tolist(), abs=1e-12)
    assert families["cnn"].family == "cnn"
    # the Pareto front holds trials only: no fold, baseline, learning-curve or final run
    front = pareto_runs(runs, metric="loss", cost="duration_s")
    assert front and all(r.name.startswith("trial-") and "fold" not in r.name for r in front)


def test_final_run_is_the_final_role_else_the_best_trial(study):
    ledger, ids = study
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
    final = price_tag(runs, metric="loss").final
    assert final is not None and final.run_id == ids["retrain"]
    assert final.rule == "role" and final.role == "final" and "role 'final'" in final.rule_text
    assert final.score == 0.29
    # without the retrain, the best finished trial (lowest loss), never a sweep or a part
    rest = [r for r in runs if r.id != ids["retrain"] and r.parent_id != ids["retrain"]]
    best = price_tag(rest, metric="loss").final
    assert best is not None and best.run_id == ids["trial-1"] and best.rule == "best-trial"
    assert best.score == OWN[1] and best.score_source == "own"
    # (a fold of trial-1 has a lower loss, 0.30, but a part is never the final run)
    named = price_tag(rest, metric="loss", final=ids["study"]).final
    assert named is not None and named.rule == "given" and named.chosen


def test_price_tag_by_role_sums_to_the_root_total(study):
    ledger, ids = study
    with gp.Ledger(ledger) as led:
        runs = led.runs(study=STUDY)
    tag = price_tag(runs, metric="loss")
    present = {r.id for r in runs}
    roots = [r for r in runs if r.parent_id not in present]
    assert len(roots) == 2 + 1 + 2 + 1  # baselines, the sweep, learning curve, retrain
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in roots), rel=1e-12)
    assert list(tag.by_role) == ["trial", "baseline", "final", "learning-curve", "sweep"]
    for field in ("energy_kwh", "emissions_kg", "duration_s"):
        total = getattr(tag.total, field)
        assert sum(getattr(v, field) for v in tag.by_role.values()) == pytest.approx(total)
        assert sum(getattr(v, field) for v in tag.by_status.values()) == pytest.approx(total)
    # the trials' entry holds their folds; the final's holds its failed helper
    assert tag.by_role["trial"].runs == 5 + 11 and tag.by_role["trial"].trials == 5
    assert tag.by_role["final"].runs == 2 and tag.by_role["baseline"].runs == 2
    assert tag.by_role["sweep"].runs == 1


def test_the_report_reads_the_study_right_in_every_format(study, tmp_path):
    from greenprint.report import build_report, write_report

    ledger, ids = study
    report = build_report(ledger, STUDY, metric="loss")
    assert report.mode == "min" and report.price_tag.total.trials == 5
    notes = " | ".join(report.notes)
    assert "'loss' is minimised" in notes
    assert "roles inferred for" in notes and "sweep" in notes
    assert "2 of 5 trials logged no 'loss' of their own" in notes
    assert "final run: retrain, the run with role 'final'" in notes
    assert report.final is not None and report.final.id == ids["retrain"]
    rows = {r.name: r for r in report.runs}
    assert [r.name for r in report.runs if r.is_trial] == [f"trial-{k}" for k in range(5)]
    assert rows["trial-4"].score_source == "parts" and rows["trial-4"].role_inferred
    assert rows["trial-0-fold1"].role == "part" and not rows["trial-0-fold1"].is_trial
    assert rows["majority-class"].role == "baseline" and not rows["majority-class"].role_inferred
    evp = report.figure("evp_trials")
    assert evp is not None and "5 trials" in evp.caption
    pareto = report.figure("pareto")
    assert pareto is not None
    plotted = {i for p in pareto.panels for s in p.series for i in s.run_ids}
    assert plotted and all(rows_by_id(report)[i].is_trial or i == ids["retrain"] for i in plotted)

    files = write_report(report, tmp_path / "out", plots=False)
    assert set(files) == {"html", "md", "latex", "json"}
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    assert data["price_tag"]["by_role"]["trial"]["trials"] == 5
    assert data["price_tag"]["final"]["rule"] == "role"
    assert data["price_tag"]["mode_note"].startswith("'loss' is minimised")
    for fmt in ("html", "md", "latex"):
        text = files[fmt].read_text(encoding="utf-8")
        assert "is minimised: its name says lower is better" in text, fmt
    for fmt in ("html", "md"):  # every run is listed, with its role
        assert "trial-4-fold0" in files[fmt].read_text(encoding="utf-8")
    latex = files["latex"].read_text(encoding="utf-8")
    table = latex[latex.index("best trials by loss") :].split("\\end{tabular}", 1)[0]
    names = [line.split(" & ")[0] for line in table.splitlines() if line.endswith("\\\\")]
    names = [n for n in names if n.startswith(("trial", "retrain", "majority", "lc-", "study"))]
    # the trials, best first, then the final run (starred), then the baselines (daggered);
    # never a fold
    assert names == [
        "trial-1",
        "trial-4",
        "trial-0",
        "trial-2",
        "retrain $\\star$",
        "majority-class $\\dagger$",
    ]


def rows_by_id(report):
    return {r.id: r for r in report.runs}


def test_exports_carry_parent_and_role_and_root_rows_sum_to_the_total(study, capsys):
    ledger, ids = study
    assert main(["ledger", "export", "--ledger", ledger, "--study", STUDY]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by_name = {r["name"]: r for r in rows}
    assert by_name["trial-0-fold0"]["parent_id"] == ids["trial-0"]
    assert by_name["trial-0-fold0"]["role"] == "part"
    assert by_name["trial-0-fold0"]["role_inferred"] == "True"
    assert by_name["majority-class"]["role"] == "baseline"
    assert by_name["majority-class"]["role_inferred"] == "False"
    with gp.Ledger(ledger) as led:
        tag = price_tag(led.runs(study=STUDY), metric="loss")
    roots = [r for r in rows if not r["parent_id"]]
    assert sum(float(r["energy_kwh"]) for r in roots) == pytest.approx(tag.total.energy_kwh)
    assert main(["ledger", "export", "--ledger", ledger, "--study", STUDY, "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)["runs"]
    assert {(i["name"], i["role"], i["role_inferred"]) for i in items} >= {
        ("study", "sweep", True),
        ("retrain", "final", False),
    }
    assert all("parent_id" in i for i in items)


def test_exported_roles_are_the_reports_roles(tmp_path, capsys):
    """A search run that logs its own progress figure, not the ranked metric: a trial to a
    read without a metric, a sweep to a report ranked by accuracy. The export inferred roles
    without the metric and called it a trial (its trials parts) where the report did not."""
    ledger = str(tmp_path / "l.db")
    with gp.track("search", study="s", ledger=ledger, **FAST) as search:
        for k in range(3):
            with gp.track(f"t{k}", params={"lr": 10.0**-k}) as trial:
                trial.log(accuracy=0.5 + k / 10)
        search.log(trials_done=3)
    with gp.track("other", study="o", ledger=ledger, **FAST) as other:  # ranked by its own
        other.log(loss=0.5)

    def exported(*options: str) -> dict[str, tuple[str, str]]:
        assert main(["ledger", "export", "--ledger", ledger, *options]) == 0
        rows = csv.DictReader(io.StringIO(capsys.readouterr().out))
        return {r["name"]: (r["role"], r["role_inferred"]) for r in rows}

    def reported(*options: str) -> dict[str, tuple[str, str]]:
        out = tmp_path / "report"
        assert main(["report", "--ledger", ledger, "--study", "s", "--format", "json",
                     "--out", str(out), *options]) == 0  # fmt: skip
        capsys.readouterr()
        rows = json.loads((out / "report.json").read_text())["runs"]
        return {r["name"]: (r["role"], str(r["role_inferred"])) for r in rows}

    ranked = reported("--metric", "accuracy")
    assert ranked["search"] == ("sweep", "True") and ranked["t0"] == ("trial", "True")
    assert exported("--study", "s", "--metric", "accuracy") == ranked
    assert exported("--study", "s") == reported()  # the metric the report chooses
    # every study at once: each run as its own study's report reads it
    both = exported()
    assert {k: both[k] for k in reported()} == reported() and both["other"] == ("trial", "True")
    assert main(["ledger", "export", "--ledger", ledger, "--study", "s", "--format", "json",
                 "--metric", "accuracy"]) == 0  # fmt: skip
    items = json.loads(capsys.readouterr().out)["runs"]
    assert {i["name"]: (i["role"], str(i["role_inferred"])) for i in items} == ranked


def test_an_unknown_role_is_refused_with_the_list_of_roles(tmp_path):
    ledger = str(tmp_path / "l.db")
    with pytest.raises(gp.ConfigError, match="unknown run role 'winner'; roles: trial, part"):
        gp.track("x", ledger=ledger, role="winner")
    with gp.track("x", ledger=ledger, **FAST) as run:
        with pytest.raises(gp.ConfigError, match="learning-curve, sweep"):
            run.set(role="fold")
        run.set(role="baseline")
        assert run.role == "baseline"
    assert gp.Ledger(ledger).run(run.id).role == "baseline"


SCRIPT = """
import sys
import greenprint as gp

# each trial is a child of the `greenprint run` run (GREENPRINT_PARENT_RUN); its folds are its parts
fold_accuracy = {0: [0.70, 0.74], 1: [0.80, 0.84], 2: [0.60, 0.66]}
for k, folds in fold_accuracy.items():
    with gp.track(f"trial-{k}", params={"lr": 10.0 ** -k}, sample_interval_s=0.05) as trial:
        for fold, accuracy in enumerate(folds):
            with gp.track(f"trial-{k}-fold{fold}", sample_interval_s=0.05) as part:
                part.log(accuracy=accuracy)
"""


@pytest.mark.parametrize("role", [None, "sweep"])
def test_greenprint_run_around_a_script_whose_trials_are_child_runs(tmp_path, role):
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    ledger = str(tmp_path / "l.db")
    args = ["run", "--ledger", ledger, "--study", "cli-search", "--name", "search", "-q"]
    args += [] if role is None else ["--role", role]
    assert main([*args, "--", sys.executable, str(script)]) == 0
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="cli-search")
    assert len(runs) == 1 + 3 + 6
    search = next(r for r in runs if r.name == "search")
    assert search.role == role
    roles = resolve_roles(runs, metric="accuracy").as_dict()
    assert roles[search.id] == ("sweep", role is None)
    assert sorted(r.name for r in runs if roles[r.id][0] == "trial") == [
        "trial-0",
        "trial-1",
        "trial-2",
    ]
    assert all(roles[r.id] == ("part", True) for r in runs if "fold" in r.name)
    trials = [r for r in runs if roles[r.id][0] == "trial"]
    assert all(r.parent_id == search.id for r in trials)  # across processes
    curve = evp_by_budget(runs, "trials", metric="accuracy")
    reference = expected_max_performance([0.72, 0.82, 0.63])
    assert curve.n_trials == 3 and curve.scored_by_parts == 3
    assert curve.mean.tolist() == pytest.approx(reference.mean.tolist(), abs=1e-12)
    tag = price_tag(runs, metric="accuracy")
    assert tag.total.trials == 3 and tag.final is not None
    assert tag.final.name == "trial-1" and tag.final.rule == "best-trial"
    assert tag.final.score == pytest.approx(0.82) and tag.final.score_source == "parts"
    # the root covers its children (measured in other processes: if they add up to more than
    # it recorded, their sum is taken and a note says so; never counted twice)
    assert tag.total.energy_kwh >= search.energy_kwh * (1 - 1e-9)
    if not any("less energy than their children" in note for note in tag.notes):
        assert tag.total.energy_kwh == pytest.approx(search.energy_kwh)
    assert sum(v.energy_kwh for v in tag.by_role.values()) == pytest.approx(tag.total.energy_kwh)


def test_a_nested_run_inherits_its_enclosing_runs_ledger_and_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ledger = str(tmp_path / "given.db")
    with gp.track("outer", study="s", ledger=ledger, **FAST) as outer:
        with gp.track("inner", **FAST) as inner:  # no ledger, no study given
            pass
    with gp.Ledger(ledger) as led:
        assert led.run(inner.id).study == "s" and led.run(inner.id).parent_id == outer.id
    assert not (tmp_path / "greenprint.db").exists()


def test_greenprint_run_refuses_an_unknown_role_in_one_line(tmp_path, capsys):
    ledger = tmp_path / "l.db"
    code = main(["run", "--ledger", str(ledger), "--role", "fold", "--", sys.executable, "-c", ""])
    assert code == 2 and not ledger.exists()
    err = capsys.readouterr().err
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1
    assert "'fold'" in err and "learning-curve" in err


def test_greenprint_report_minimises_a_loss_and_says_so(study, tmp_path, capsys):
    ledger, ids = study
    out = tmp_path / "report"
    args = ["report", "--ledger", ledger, "--study", STUDY, "--metric", "loss", "--format", "json"]
    assert main([*args, "--out", str(out), "--no-plots"]) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["mode"] == "min" and any("is minimised" in n for n in data["notes"])
    assert data["price_tag"]["final"]["run_id"] == ids["retrain"]
    assert main([*args, "--out", str(out), "--no-plots", "--mode", "max"]) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["mode"] == "max" and not any("is minimised" in n for n in data["notes"])
