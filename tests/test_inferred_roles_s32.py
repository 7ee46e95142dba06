"""Roles inferred for a study given none (outside check, session 32): a learning curve and a
retrain with a helper inside it.

A new user's study, in an empty directory with a clean environment, run as ``greenprint run
--study S -- python study.py VARIANT`` (or ``python study.py``): two baselines, a search of
eight trials with three cross-validation folds each, a learning curve of four runs
(``lc-0.25`` .. ``lc-1.0``: the best configuration with a ``fraction`` of the data, each its
``dataset_size``) and a final retrain ``final-model`` scored on a held-out split, with a child
run (an export helper that fails). No run was given a role. It read:

* the learning-curve runs as four more trials, so that the final run was ``lc-1.0``, a point of
  the curve (its score on the full data beat the search's), with no word: the rule for a
  learning curve written by hand only said so when every trial differed by its size alone;
* ``final-model`` as a trial with no word that it reran the best configuration (only that it is
  named like a final run): the retrain rule took runs with no child only.

Now runs of one configuration that differ only by their size, beside a search at one size, read
as a learning curve (role ``learning-curve``, inferred, with a note that says how to read them
as trials), and a retrain whose parts scored nothing by the ranked metric is named by the
retrain note. A search over the size itself, runs given role trial, and two configurations each
run at several sizes read as before (the last with a note).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from greenprint._study_roles import resolve_roles

SCRIPT = """
import contextlib
import sys

import greenprint as gp
from greenprint._study_roles import resolve_roles

VARIANT = sys.argv[1]
STUDY = sys.argv[2] if len(sys.argv) > 2 else None  # else the one greenprint run gives
N = 1797


def track(name, **options):
    return gp.track(name, study=STUDY, **options)


def work(n=20000):
    return sum(i * i for i in range(n))


def search(size=N, sizes=None, wrap=True):
    # eight configurations, three folds each; the best is the last
    best, best_acc = None, -1.0
    with track("sweep") if wrap else contextlib.nullcontext():
        for i in range(8):
            params = {"model": "svc", "C": round(0.1 * (i + 1), 1), "gamma": 0.001 * (1 + i % 3)}
            n = sizes[i] if sizes else size
            with track(f"trial-{i}", params=params, dataset_size=n):
                accs = []
                for k in range(3):
                    with track(f"fold{k}", params={"fold": k}) as fold:
                        work()
                        accs.append(0.85 + 0.01 * i - 0.002 * k)
                        fold.log(val_acc=accs[-1])
            if sum(accs) / 3 > best_acc:
                best, best_acc = params, sum(accs) / 3
    return best


def curve(best, fractions=(0.25, 0.5, 0.75, 1.0), name="lc", with_fraction=True, role=None):
    for frac in fractions:
        params = {**best, "fraction": frac} if with_fraction else dict(best)
        with track(f"{name}-{frac}", params=params, dataset_size=int(N * frac),
                   role=role) as run:
            work()
            run.log(val_acc=0.80 + 0.15 * frac)


def final(best, evaluate=False):
    with track("final-model", params=best, dataset_size=N) as run:
        work(40000)
        if evaluate:  # scored by an evaluation run inside it
            with track("evaluate") as ev:
                ev.log(test_acc=0.93)
        else:
            run.log(test_acc=0.93)
        try:
            with track("export"):
                raise RuntimeError("onnx export failed")
        except RuntimeError:
            pass


if VARIANT in ("outside", "given", "evaluate"):
    for name, acc in (("baseline-majority", 0.11), ("baseline-logreg", 0.72)):
        role = "baseline" if VARIANT == "given" else None
        with track(name, params={"model": name.split("-")[1]}, dataset_size=N,
                   role=role) as run:
            run.log(val_acc=acc)
    best = search()
    curve(best)
    final(best, evaluate=VARIANT == "evaluate")
elif VARIANT == "flat":  # top-level runs; the curve's params are the best's, no fraction
    best = search(wrap=False)
    curve(best, fractions=(0.25, 0.5, 1.0), with_fraction=False)
elif VARIANT == "size-search":  # the search draws the data size too: one C at two sizes
    best = search(sizes=[449, 898, 1797, 898, 1347, 449, 1797, 898])
    curve(best, fractions=(0.25, 0.5))
elif VARIANT == "two-curves":  # a learning curve of two configurations beside the search
    best = search()
    curve(best)
    curve({"model": "mlp", "alpha": 0.01}, name="mlp-lc")
"""


def _study(home: Path, variant: str, *, wrapped: bool = True) -> dict:
    """The variant run as a new user runs it, and its report (JSON, ``--no-plots``)."""
    if wrapped:
        command = [GREENPRINT, "run", "-q", "--study", variant, "--", "python", "study.py"]
        done = run_in(home, *command, variant)
    else:
        done = run_in(home, sys.executable, "study.py", variant, variant)
    assert done.returncode == 0, done.stderr[-3000:]
    return _report(home, "--study", variant, "--no-plots")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = _empty(tmp_path_factory, "s32-roles")
    (home / "study.py").write_text(SCRIPT, encoding="utf-8")
    return home


def _roles_note(report: dict) -> str:
    return next(n for n in report["notes"] if n.startswith("roles inferred"))


def _by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["runs"]}


def _ids(home: Path, study: str, prefix: str) -> list[str]:
    runs = gp.Ledger(home / "greenprint.db").runs(study=study)
    return sorted((r.started_at, r.id[:8]) for r in runs if r.name.startswith(prefix))


def test_the_learning_curve_beside_the_search_is_one_and_the_retrain_is_named(home: Path):
    """Before: 15 trials, the final run lc-1.0 (val_acc 0.95, a point of the learning curve),
    no note on either. Now: 11 trials (the search's 8, the 2 baselines, final-model), the
    four lc runs role learning-curve (inferred), the final run the search's best trial-7, and
    the note names the curve with the command that reads it as trials, and final-model as a
    retrain of trial-7's configuration with the command that makes it final."""
    report = _study(home, "outside")
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 11
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("trial-7", "best-trial")
    assert tag["by_role"]["learning-curve"]["runs"] == 4
    rows = _by_name(report)
    assert [rows[f"lc-{f}"]["role"] for f in (0.25, 0.5, 0.75, 1.0)] == ["learning-curve"] * 4
    assert rows["trial-3"]["role"] == "trial" and rows["final-model"]["role"] == "trial"
    note = _roles_note(report)
    assert "(11 trials, 25 parts, 4 learning-curve runs, 2 sweeps)" in note
    ids = " ".join(i for _, i in _ids(home, "outside", "lc-"))
    said = note[note.index("4 runs ('lc-0.25', 'lc-0.5', 'lc-0.75', 'lc-1.0')") :]
    assert "differ only by their training-set size (dataset_size 449 to 1,797)" in said
    assert f"give them role='trial' (greenprint ledger set-role trial {ids})" in said
    retrain = note[note.index("1 trial ('final-model') logged no 'val_acc' but test_acc") :]
    assert "(e.g. 'trial-7')" in retrain
    final_id = _ids(home, "outside", "final-model")[0][1]
    assert f"greenprint ledger set-role final {final_id}" in retrain
    # as the notes say: the curve read as trials again (a study given roles reads as given),
    # and final-model the final run
    done = run_in(home, GREENPRINT, "ledger", "set-role", "trial", *ids.split())
    assert done.returncode == 0, done.stderr
    done = run_in(home, GREENPRINT, "ledger", "set-role", "final", final_id)
    assert done.returncode == 0, done.stderr
    report = _report(home, "--study", "outside", "--no-plots")
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 14  # 8 + 2 baselines + 4 lc runs given role trial
    assert (tag["final"]["name"], tag["final"]["rule"]) == ("final-model", "role")
    assert "learning-curve" not in tag["by_role"]


def test_a_retrain_scored_by_an_evaluation_inside_it_is_named(home: Path):
    """final-model logs nothing; its 'evaluate' part logs test_acc, its 'export' part fails:
    still a retrain of trial-7's configuration (before: no note, it has children)."""
    report = _study(home, "evaluate")
    note = _roles_note(report)
    assert "1 trial ('final-model') logged no 'val_acc' but test_acc" in note


def test_a_study_given_some_roles_reads_the_curve_given_none(home: Path):
    """The baselines given role='baseline', the rest none: the lc runs, given no role, are the
    learning curve all the same (session 33; before, any role given kept them trials: 13, the
    final run lc-1.0), the final run the search's best trial-7; a role given is kept."""
    report = _study(home, "given")
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 9  # the search's 8 and final-model
    assert tag["final"]["name"] == "trial-7"
    assert tag["by_role"]["learning-curve"]["runs"] == 4
    assert tag["by_role"]["baseline"]["runs"] == 2
    assert "share one configuration" in _roles_note(report)


def test_a_curve_of_the_searchs_params_keeps_the_searchs_trial_at_its_size(home: Path):
    """Every run top-level (plain python, no sweep run): the curve's runs carry the best's
    params with no fraction, so lc-1.0 and the search's trial-7 are one configuration at the
    search's size: both stay trials (nothing tells which is the search's), the smaller two are
    the curve; the search keeps its 8 trials."""
    report = _study(home, "flat", wrapped=False)
    rows = _by_name(report)
    assert (rows["lc-0.25"]["role"], rows["lc-0.5"]["role"]) == ("learning-curve",) * 2
    assert rows["lc-1.0"]["role"] == "trial"
    assert all(rows[f"trial-{i}"]["role"] == "trial" for i in range(8))
    assert report["price_tag"]["total"]["trials"] == 9


def test_a_search_over_the_data_size_stays_trials(home: Path):
    """The search draws dataset_size too (4 sizes over its trials): a configuration run at two
    sizes beside it is read as trials, as before, with no note (10 trials)."""
    report = _study(home, "size-search")
    assert report["price_tag"]["total"]["trials"] == 10
    assert "learning-curve" not in report["price_tag"]["by_role"]
    assert "training-set size" not in _roles_note(report)


def test_two_configurations_at_several_sizes_stay_trials_with_a_note(home: Path):
    """Two learning curves (svc, mlp) beside the search: a grid over the size and the model
    reads the same, so they stay trials (16), and the note says so and how to give the role."""
    report = _study(home, "two-curves")
    assert report["price_tag"]["total"]["trials"] == 16
    note = _roles_note(report)
    assert "8 trials run 2 configurations (a grid over the size and another param" in note
    assert "give them role='learning-curve'" in note


# ------------------------------------------------------------ the rules on records
def _run(rid, parent=None, size=None, params=None, acc=None, **fields):
    fields.setdefault("metrics", (gp.MetricPoint("acc", acc),) if acc is not None else ())
    fields.setdefault("status", "finished")
    return gp.RunRecord(
        id=rid, name=rid, parent_id=parent, dataset_size=size, params=params or {}, **fields
    )


def _search(size=1000):
    """Three trials of a search at one size, ended at 5 s."""
    return [
        _run(f"t{k}", size=size, params={"lr": k}, acc=0.8 + k / 100, ended_at=5.0)
        for k in range(3)
    ]


def test_a_curve_point_around_its_folds_is_no_trial_holding_repeats():
    """Each point of the curve cross-validated (folds as its child runs): the points are the
    learning curve, their folds its parts, and the note counts no trial holding repeats."""
    runs = _search()
    for f in (0.25, 0.5):
        runs.append(_run(f"lc{f}", size=int(1000 * f), params={"lr": 2, "fraction": f}))
        runs += [
            _run(f"lc{f}-fold{k}", parent=f"lc{f}", params={"fold": k}, acc=0.7) for k in range(2)
        ]
    study = resolve_roles(runs, metric="acc")
    assert study.counts == {"trial": 3, "part": 4, "learning-curve": 2}
    assert study.repeat_trials == () and "hold child runs" not in (study.note or "")


def test_the_curve_needs_runs_given_no_role_and_sizes_proportional():
    """A run given a role (a baseline) beside them: the curve all the same; the curve's runs
    given role 'trial' stay trials. A param that varies otherwise than the size (not
    proportional): no curve."""
    curve = [_run(f"lc{f}", size=int(1000 * f), params={"lr": 2, "fraction": f}) for f in (0.5, 1)]
    assert resolve_roles(_search() + curve).counts["learning-curve"] == 2
    given = [*_search(), *curve, gp.RunRecord(id="b", name="b", role="baseline")]
    assert resolve_roles(given).counts["learning-curve"] == 2
    trials = [_run(r.id, size=r.dataset_size, params=r.params, role="trial") for r in curve]
    assert "learning-curve" not in resolve_roles(_search() + trials).counts
    odd = [_run(f"x{k}", size=s, params={"lr": 2, "k": k}) for k, s in ((1, 500), (5, 1000))]
    assert "learning-curve" not in resolve_roles(_search() + odd).counts
    # sizes only on runs named like a baseline or the final run: nothing to read
    named = [_run("baseline-a", size=100), _run("final", size=200), _run("c")]
    assert resolve_roles(named).counts == {"trial": 3}


def test_a_retrain_scored_by_its_parts_by_the_ranked_metric_is_no_retrain():
    """A configuration run again around folds that log the ranked metric: scored, no retrain
    note; around a helper that logged nothing, with test_acc of its own: a retrain."""
    base = [*_search(), _run("again", params={"lr": 2}, started_at=10.0)]
    folds = [_run(f"f{k}", parent="again", params={"fold": k}, acc=0.9) for k in range(2)]
    assert resolve_roles(base + folds, metric="acc").retrained == ()
    again = _run("again", params={"lr": 2}, started_at=10.0, metrics=(gp.MetricPoint("t", 1.0),))
    helper = _run("export", parent="again", status="failed")
    assert resolve_roles([*base[:3], again, helper], metric="acc").retrained == ((3, 2),)


def test_a_search_over_the_size_of_100000_trials_is_read_as_trials_with_no_size_curve():
    """Every trial draws an lr and one of 4 sizes: no group (two scans find a run at another
    size than most and one at that size with no run to share one with), 0.2 s more at most."""
    import random

    draw = random.Random(0)
    runs = [
        _run(f"t{k}", size=draw.choice([250, 500, 750, 1000]), params={"lr": draw.random()})
        for k in range(100_000)
    ]
    study = resolve_roles(runs)  # its CPU time: benchmarks/bench_analysis.py (< 2 s)
    assert len(study.trials) == 100_000 and study.size_curves == ()
