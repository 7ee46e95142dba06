"""efficiencies() and learning_curve() read a study as the price tag and the report do.

The rule (docs/analysis.md, "Score against cost" and "Learning curves"): a part (a
cross-validation fold, the fit a learning-curve run ran as a child run) is never a point of its
own; a run's score is its own, else the mean of its finished or pruned parts'; its cost is its
own with its parts': FPO known only when every run under it counted its own or is counted by a
run above it (RunForest.fpo_sums), energy and CO2-eq its own or its children's sum if larger,
children that ran at the same time sharing their parent's measurement (RunForest.shared_sums).
A run alone keeps its own fields.

The studies here are built as users build them (gp.track nesting, the scikit-learn and Optuna
integrations, threads), and random trees are checked against a brute-force reading of the rule
written from those words on a plain parent map, not from the forest.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import AnalysisError, MetricPoint, RunRecord
from greenprint.analysis import efficiencies, efficiency, learning_curve, price_tag

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
SCORED = ("finished", "pruned")


# ------------------------------------------------------------------ brute-force reference
@st.composite
def studies(draw: Any) -> dict[str, Any]:
    """A study of runs nested at random: each root given a role (trial, learning-curve,
    baseline), every run below it a part (some given role 'trial', as a search inside an
    Optuna trial: still parts). Each run has its true work and whether it counted it (a run
    that counted nothing and has children is its children), an own score or none, a status, a
    dataset size or none, and its own energy. No start times: no children judged concurrent."""
    count = draw(st.integers(1, 14))
    parents: list[int | None] = [None]
    for k in range(1, count):
        parents.append(draw(st.one_of(st.none(), st.integers(0, k - 1))))
    n = st.lists
    counted = draw(n(st.booleans(), min_size=count, max_size=count))
    work = draw(n(st.integers(0, 2**40), min_size=count, max_size=count))
    children = {k: [c for c in range(count) if parents[c] == k] for k in range(count)}
    for k in range(count):
        if not counted[k] and children[k]:
            work[k] = 0  # a container that counted nothing is its children
    total = list(work)
    for k in reversed(range(count)):  # children have larger indices than their parents
        if parents[k] is not None:
            total[parents[k]] += total[k]  # type: ignore[index]
    own_score = draw(n(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=count, max_size=count))
    status = draw(
        n(
            st.sampled_from(["finished", "finished", "pruned", "failed"]),
            min_size=count,
            max_size=count,
        )
    )
    size = draw(n(st.sampled_from([None, 100, 200, 400]), min_size=count, max_size=count))
    energy = draw(n(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), min_size=count, max_size=count))
    roles = [
        draw(st.sampled_from(["trial", "learning-curve", "baseline"]))
        if parents[k] is None
        else draw(st.sampled_from([None, None, "trial"]))
        for k in range(count)
    ]
    runs = [
        RunRecord(
            id=f"r{k}",
            name=f"r{k}",
            study="s",
            parent_id=None if parents[k] is None else f"r{parents[k]}",
            role=roles[k],
            status=status[k],
            fpo=total[k] if counted[k] else None,
            energy_kwh=energy[k],
            emissions_kg=energy[k] * 0.4,
            duration_s=energy[k] * 100.0,
            dataset_size=size[k],
            metrics=() if own_score[k] is None else (MetricPoint("acc", own_score[k]),),
        )
        for k in range(count)
    ]
    order = list(range(count))
    random.Random(draw(st.integers(0, 2**32 - 1))).shuffle(order)
    return {
        "runs": [runs[k] for k in order],
        "parents": parents,
        "children": children,
        "counted": counted,
        "work": work,
        "own_score": own_score,
        "status": status,
        "size": size,
        "energy": energy,
    }


def _below(study: dict[str, Any], k: int) -> list[int]:
    """Run ``k`` and every run under it."""
    out = [k]
    for c in out:
        out.extend(study["children"][c])
    return out


def _score(study: dict[str, Any], k: int) -> float:
    """Its own score, else (a finished or pruned run) the mean of its scored parts' scores."""
    own = study["own_score"][k]
    if own is not None:
        return float(own)
    status, kids = study["status"], study["children"][k]
    if not kids or status[k] not in SCORED:
        return math.nan
    values = [_score(study, c) for c in kids if status[c] in SCORED]
    values = [v for v in values if not math.isnan(v)]
    return math.fsum(values) / len(values) if values else math.nan


def _fpo(study: dict[str, Any], k: int) -> int | None:
    """All the work done in and under ``k``, when every run there counted its own, is a
    container (its children are its work), or has a run above it (within ``k``) that counted
    its own; else unknown."""
    parents, counted, children = study["parents"], study["counted"], study["children"]

    def counted_above(c: int) -> bool:
        while c != k:
            c = parents[c]
            if counted[c]:
                return True
        return False

    below = _below(study, k)
    if all(counted[c] or children[c] or counted_above(c) for c in below):
        return sum(study["work"][c] for c in below)
    return None


def _energy(study: dict[str, Any], k: int) -> float:
    """Its own energy, or its children's (each with theirs) when they add up to more."""
    kids = study["children"][k]
    return (
        max(study["energy"][k], sum(_energy(study, c) for c in kids))
        if kids
        else (study["energy"][k])
    )


def _timed(study: dict[str, Any], k: int) -> bool:
    """Whether ``k``'s run time with its children's is known: it recorded one (above 0 s), or
    it has children and each of them is timed."""
    kids = study["children"][k]
    return study["energy"][k] > 0 or (bool(kids) and all(_timed(study, c) for c in kids))


def _metered(study: dict[str, Any], k: int) -> bool:
    """Whether ``k``'s energy with its children's is known: it recorded one (a record of 0.0
    kWh and no component had no meter, session 41: unknown, never 0), or it has children and
    each of them is metered."""
    kids = study["children"][k]
    return study["energy"][k] > 0 or (bool(kids) and all(_metered(study, c) for c in kids))


def _roots(study: dict[str, Any]) -> list[int]:
    return [k for k, p in enumerate(study["parents"]) if p is None]


@settings(max_examples=100, deadline=None)
@given(study=studies())
def test_efficiencies_from_first_principles(study: dict[str, Any]) -> None:
    found = {e.run_id: e for e in efficiencies(study["runs"], metric="acc", statuses=None)}
    expected = [k for k in _roots(study) if not math.isnan(_score(study, k))]
    # a part is never an entry; every run above the parts that has a score is one
    assert set(found) == {f"r{k}" for k in expected}
    for k in expected:
        e = found[f"r{k}"]
        score, fpo, kwh = _score(study, k), _fpo(study, k), _energy(study, k)
        assert e.score == pytest.approx(score, abs=1e-12)
        assert e.score_source == ("own" if study["own_score"][k] is not None else "parts")
        assert e.fpo == fpo and (fpo is None or type(e.fpo) is int)
        if not _metered(study, k):  # no meter recorded it: unknown (NaN), no ratio
            assert math.isnan(e.energy_kwh) and math.isnan(e.emissions_kg)
            assert e.score_per_kwh is None
            continue
        assert e.energy_kwh == pytest.approx(kwh)
        assert e.emissions_kg == pytest.approx(kwh * 0.4)
        assert e.score_per_gflop == (
            None if fpo is None or fpo == 0 else pytest.approx(score / (fpo / 1e9))
        )
        assert e.score_per_kwh == (None if kwh == 0 else pytest.approx(score / kwh))
        assert e.role != "part"
    # the default keeps the finished ones only
    finished = efficiencies(study["runs"], metric="acc")
    assert [e.run_id for e in finished] == [
        e.run_id for e in found.values() if e.status == "finished"
    ]


@settings(max_examples=100, deadline=None)
@given(study=studies())
def test_learning_curve_from_first_principles(study: dict[str, Any]) -> None:
    points: dict[int, list[int]] = {}
    skipped = 0
    for k in _roots(study):
        if study["size"][k] is None or math.isnan(_score(study, k)):
            skipped += 1  # a part is never counted here: it is inside its run's point
        else:
            points.setdefault(study["size"][k], []).append(k)
    if not points:
        with pytest.raises(AnalysisError, match="dataset_size"):
            learning_curve(study["runs"], metric="acc", statuses=None)
        return
    curve = learning_curve(study["runs"], metric="acc", statuses=None)
    sizes = sorted(points)
    assert curve.dataset_size.tolist() == sizes
    assert curve.n_runs.tolist() == [len(points[s]) for s in sizes]
    assert curve.n_skipped == skipped
    for i, size in enumerate(sizes):
        members = points[size]
        assert curve.score_mean[i] == pytest.approx(np.mean([_score(study, k) for k in members]))
        # a run with no meter (0.0 kWh, no component): unknown, left out (session 41)
        kwh = [_energy(study, k) for k in members if _metered(study, k)]
        if kwh:
            assert curve.energy_kwh_mean[i] == pytest.approx(np.mean(kwh))
            assert curve.emissions_kg_mean[i] == pytest.approx(np.mean(kwh) * 0.4)
        else:
            assert math.isnan(curve.energy_kwh_mean[i])
        # a run of 0 s recorded no duration: unknown, left out (session 37), as unknown FPO
        timed = [_energy(study, k) * 100.0 for k in members if _timed(study, k)]
        if timed:
            assert curve.duration_s_mean[i] == pytest.approx(np.mean(timed))
        else:
            assert math.isnan(curve.duration_s_mean[i])
        known = [f for f in (_fpo(study, k) for k in members) if f is not None]
        if known:
            assert curve.fpo_mean[i] == pytest.approx(np.mean(known))
        else:
            assert math.isnan(curve.fpo_mean[i])


@settings(max_examples=100, deadline=None)
@given(study=studies(), pick=st.integers(0, 13))
def test_a_run_alone_keeps_its_own_fields(study: dict[str, Any], pick: int) -> None:
    run = study["runs"][pick % len(study["runs"])]
    alone = replace(run, parent_id=None)
    one = efficiency(alone, metric="acc")
    if run.energy_recorded:
        assert (one.fpo, one.energy_kwh, one.emissions_kg) == (
            run.fpo,
            run.energy_kwh,
            run.emissions_kg,
        )
    else:  # no meter (0.0 kWh, no component): unknown, never 0
        assert one.fpo == run.fpo and math.isnan(one.energy_kwh) and one.score_per_kwh is None
    listed = efficiencies([alone], metric="acc", statuses=None)
    if run.metric("acc") is None:
        assert listed == []
    else:  # NaN != NaN: compared as their repr
        assert repr(listed) == repr([replace(one, role=listed[0].role)])


# --------------------------------------------------------------------- studies as users build
def test_a_cross_validated_study_tracked_with_gp_track(tmp_path: Path) -> None:
    """Each trial (params, nothing logged) runs 3 folds as child runs that count the FPO and
    log the accuracy. Before: efficiencies() listed the 9 folds and none of the trials;
    learning_curve() made each fold a point."""
    import greenprint as gp
    from greenprint.report import build_report, render

    db = tmp_path / "cv.db"
    lrs = (0.1, 0.2, 0.3)
    for lr in lrs:
        with gp.track(f"lr-{lr}", study="cv", ledger=db, params={"lr": lr}, **FAST) as trial:
            trial.set(dataset_size=int(1000 * lr))
            for k in range(3):
                with gp.track(f"lr-{lr}-fold{k}", study="cv", ledger=db, **FAST) as fold:
                    fold.add_fpo(10**9 * (k + 1))
                    fold.set(dataset_size=int(1000 * lr))
                    fold.log(acc=0.5 + lr + k / 100)
    runs = gp.Ledger(db).runs(study="cv")
    assert len(runs) == 12

    found = efficiencies(runs, metric="acc")
    assert [e.name for e in found] == [f"lr-{lr}" for lr in lrs]
    tag = price_tag(runs, metric="acc")
    for lr, e in zip(lrs, found, strict=True):
        assert (e.role, e.score_source) == ("trial", "parts")
        assert e.score == pytest.approx(0.5 + lr + 0.01)
        assert e.fpo == 6 * 10**9  # the folds' 1 + 2 + 3 GFLOP
        assert e.score_per_gflop == pytest.approx((0.5 + lr + 0.01) / 6)
        final = price_tag(runs, metric="acc", final=e.run_id).final
        assert final is not None
        assert e.energy_kwh == final.energy_kwh and e.emissions_kg == final.emissions_kg
        assert e.score_per_kwh == pytest.approx(e.score / e.energy_kwh)
    assert tag.total.fpo == 18 * 10**9

    # the report's rows say the same per GFLOP
    data = json.loads(render(build_report(db, "cv", metric="acc"), "json"))
    rows = {r["name"]: r for r in data["runs"]}
    for e in found:
        assert rows[e.name]["score_per_gflop"] == pytest.approx(e.score_per_gflop)
        assert rows[e.name]["score"] == pytest.approx(e.score)

    curve = learning_curve(runs, metric="acc")
    assert curve.dataset_size.tolist() == [100, 200, 300]
    assert curve.n_runs.tolist() == [1, 1, 1] and curve.n_skipped == 0
    np.testing.assert_allclose(curve.fpo_mean, [6e9] * 3)
    np.testing.assert_allclose(curve.score_mean, [0.5 + lr + 0.01 for lr in lrs])
    np.testing.assert_allclose(curve.energy_kwh_mean, [e.energy_kwh for e in found])


@pytest.mark.parametrize("lc_logs", [True, False], ids=["lc-logs-score", "fit-logs-score"])
def test_learning_curve_runs_whose_fit_is_a_child_run(tmp_path: Path, lc_logs: bool) -> None:
    """Each learning-curve run trains in a child run (as a Lightning fit is) that counts the
    FPO. Before: with both carrying the size and the score, each size had 2 points (the run
    and its fit) and its mean energy was the mean of a run and its own fit; with the score on
    the fit only, the learning-curve runs were 'left out' and the fits were the points."""
    import greenprint as gp
    from greenprint.report import build_report

    db = tmp_path / "lc.db"
    sizes = (100, 200, 400)
    for size in sizes:
        score = 0.5 + size / 1000
        with gp.track(
            f"lc-{size}", study="lc", ledger=db, role="learning-curve", dataset_size=size, **FAST
        ) as lc:
            with gp.track(f"fit-{size}", study="lc", ledger=db, dataset_size=size, **FAST) as fit:
                fit.add_fpo(size * 10**6)
                fit.log(acc=score)
            if lc_logs:
                lc.log(acc=score)
    runs = gp.Ledger(db).runs(study="lc")
    by_name = {r.name: r for r in runs}
    curve = learning_curve(runs, metric="acc")
    assert curve.dataset_size.tolist() == list(sizes)
    assert curve.n_runs.tolist() == [1, 1, 1] and curve.n_skipped == 0
    np.testing.assert_allclose(curve.score_mean, [0.5 + s / 1000 for s in sizes])
    np.testing.assert_allclose(curve.fpo_mean, [s * 1e6 for s in sizes])
    energy = [max(by_name[f"lc-{s}"].energy_kwh, by_name[f"fit-{s}"].energy_kwh) for s in sizes]
    np.testing.assert_allclose(curve.energy_kwh_mean, energy)

    figure = build_report(db, "lc", metric="acc").figure("learning_curve")
    assert figure is not None
    assert "from 3 runs with role 'learning-curve'" in figure.caption
    (drawn,) = figure.panels[1].series
    shown = np.asarray(drawn.y) / np.asarray(drawn.y)[-1]  # the unit's factor cancels
    np.testing.assert_allclose(shown, np.asarray(energy) / energy[-1])


def test_a_scikit_learn_search_lists_its_trials_and_final_not_its_folds(tmp_path: Path) -> None:
    """Before: every fold was an entry of its own beside its trial."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    import greenprint as gp
    from greenprint.integrations.sklearn import track_search

    X, y = load_digits(return_X_y=True)
    db = tmp_path / "sk.db"
    search = GridSearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [2, 4]}, cv=3)
    track_search(search, X[:240], y[:240], ledger=db, study="grid", **FAST)
    runs = gp.Ledger(db).runs(study="grid")
    assert sum(r.role == "part" for r in runs) == 6
    found = efficiencies(runs, metric="score")
    assert sorted(e.role for e in found) == ["final", "trial", "trial"]
    for e in found:
        run = next(r for r in runs if r.id == e.run_id)
        assert e.score == run.metric("score") and e.score_source == "own"
        final = price_tag(runs, metric="score", final=e.run_id).final
        assert final is not None and e.energy_kwh == final.energy_kwh


def test_an_optuna_study_whose_folds_counted_the_fpo(tmp_path: Path) -> None:
    """Before: every trial's fpo and score_per_gflop were None (its folds counted them)."""
    optuna = pytest.importorskip("optuna")
    import greenprint as gp
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    db = tmp_path / "o.db"

    def objective(trial: Any) -> float:
        width = trial.suggest_int("width", 1, 4)
        for k in range(3):
            with gp.track(f"trial-{trial.number}-fold{k}", study="o", ledger=db, **FAST) as f:
                f.add_fpo(width * 10**9)
        return 0.1 * width

    cb = GreenprintCallback(ledger=db, **FAST)
    study = optuna.create_study(study_name="o", direction="maximize")
    study.optimize(cb.track(objective), n_trials=3, callbacks=[cb])
    runs = gp.Ledger(db).runs(study="o")
    found = efficiencies(runs, metric="value")
    assert len(found) == 3 and {e.role for e in found} == {"trial"}
    for e, trial in zip(found, study.trials, strict=True):
        width = trial.params["width"]
        assert e.fpo == 3 * width * 10**9
        assert e.score_per_gflop == pytest.approx(0.1 * width / (3 * width))


def test_trials_in_threads_share_their_search_runs_energy(tmp_path: Path) -> None:
    """Trials in worker threads nest in the main thread's run and each measures the whole
    process over its span. Before: efficiencies() and learning_curve() divided by, and
    averaged, those overlapping measurements; now each trial costs its share of the search's
    measurement, as the price tag counts it."""
    import greenprint as gp

    db = tmp_path / "t.db"
    started = threading.Barrier(3)

    def trial(k: int) -> None:
        with gp.track(f"trial-{k}", study="t", ledger=db, dataset_size=100 * (k + 1), **FAST) as r:
            started.wait()
            end = time.perf_counter() + 0.4
            while time.perf_counter() < end:  # busy: the estimate reads CPU time
                sum(i * i for i in range(2000))
            r.log(acc=0.5 + k / 10)

    with gp.track("search", study="t", ledger=db, **FAST) as search:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(trial, range(3)))
    runs = gp.Ledger(db).runs(study="t")
    trials = [r for r in runs if r.parent_id == search.id]
    assert len(trials) == 3
    measured = sum(r.energy_kwh for r in trials)
    own = next(r for r in runs if r.id == search.id).energy_kwh
    assert measured > own > 0  # each trial read the whole process over its span
    found = efficiencies(runs, metric="acc")
    assert [e.name for e in found] == [r.name for r in trials]
    # each trial costs what the price tag counts for it, their sum what it counts for trials
    tag = price_tag(runs, metric="acc")
    assert sum(e.energy_kwh for e in found) == pytest.approx(tag.by_role["trial"].energy_kwh)
    assert sum(e.energy_kwh for e in found) < measured
    for e, run in zip(found, trials, strict=True):
        final = price_tag(runs, metric="acc", final=e.run_id).final
        assert final is not None and e.energy_kwh == pytest.approx(final.energy_kwh, rel=1e-12)
        assert e.score_per_kwh == pytest.approx(e.score / e.energy_kwh)
        # threads of one process: each stretch of their time counted once, split among them
        # (tests/analysis/test_threads_share.py): less than the whole process it measured
        assert e.energy_kwh < run.energy_kwh
    curve = learning_curve(runs, metric="acc")
    by_size = {r.dataset_size: e.energy_kwh for r, e in zip(trials, found, strict=True)}
    assert curve.dataset_size.tolist() == [100, 200, 300]
    np.testing.assert_allclose(curve.energy_kwh_mean, [by_size[s] for s in (100, 200, 300)])


@settings(max_examples=100, deadline=None)
@given(
    own=st.floats(0.1, 10.0),
    fractions=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=6),
    offsets=st.lists(st.floats(0.0, 5.0), min_size=6, max_size=6),
)
def test_trials_that_ran_together_share_their_parents_measurement(
    own: float, fractions: list[float], offsets: list[float]
) -> None:
    """Trials whose spans all overlap (threads) inside a search that measured ``own`` (at
    least what any of them measured over its part of the search's span): each measured the
    whole process, so when they add up to more, each costs its measured share of ``own``
    (m_i / sum(m) x own); else each keeps what it measured."""
    measured = [f * own for f in fractions]
    runs = [
        RunRecord(id="search", name="search", status="finished", energy_kwh=own,
                  emissions_kg=own / 2, started_at=100.0, ended_at=200.0, duration_s=100.0),
        *[
            RunRecord(id=f"t{k}", name=f"t{k}", parent_id="search", status="finished",
                      energy_kwh=m, emissions_kg=m / 2, started_at=110.0 + offsets[k],
                      ended_at=150.0 + offsets[k], duration_s=40.0, dataset_size=10 * (k + 1),
                      metrics=(MetricPoint("acc", 0.5),))
            for k, m in enumerate(measured)
        ],
    ]  # fmt: skip
    total = math.fsum(measured)
    share = [m * own / total if total > own else m for m in measured]
    found = efficiencies(runs, metric="acc")
    assert [e.run_id for e in found] == [f"t{k}" for k in range(len(measured))]
    for e, kwh in zip(found, share, strict=True):
        assert e.energy_kwh == pytest.approx(kwh, rel=1e-9)
        assert e.emissions_kg == pytest.approx(kwh / 2, rel=1e-9)
    curve = learning_curve(runs, metric="acc")
    np.testing.assert_allclose(curve.energy_kwh_mean, share, rtol=1e-9)
