"""The figures read a big study's runs as columns: the same points as run by run.

The EVP, Pareto and timeline builders take the trials' and top-level runs' fields as arrays
(read once for all the figures) instead of walking 100,000 runs one at a time. These tests hold
them to the run-by-run definitions on runs that hypothesis makes awkward: no score or a NaN one,
zero, NaN or tied energies, every status, components missing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint.analysis import evp_by_budget, price_tag
from greenprint.analysis._common import RunForest
from greenprint.report._figures import (
    FigureInputs,
    _mean_power_rows,
    _unique_times,
    evp_figures,
    pareto_figure,
    timeline_figure,
)

T0 = 1_700_000_000.0
JOULES_PER_KWH = 3.6e6
STATUSES = ("finished", "pruned", "failed", "running", "interrupted")
_TAG = price_tag((gp.RunRecord(id="tag", name="tag", status="finished", energy_kwh=1e-3),))

energies = st.one_of(
    st.sampled_from([0.0, 1e-4, 2e-4, math.nan]),  # ties, zero and unknown
    st.floats(1e-6, 10.0),
)
scores = st.one_of(st.none(), st.just(math.nan), st.sampled_from([0.5, 0.7]), st.floats(-1, 1))
components = st.one_of(st.none(), st.just(0.0), st.floats(0.0, 5.0))
trial = st.tuples(st.sampled_from(STATUSES), scores, energies)
run_with_time = st.tuples(
    st.floats(-100.0, 100.0),  # start offset, s
    st.one_of(st.sampled_from([0.0, -1.0, 10.0]), st.floats(1e-3, 100.0)),  # duration, s
    energies,
    components,
    components,
    components,
)


def inputs_of(runs: tuple[gp.RunRecord, ...], score: dict[str, float], **options) -> FigureInputs:
    """Figure inputs with every run a trial unless ``trials`` says (roles are tested elsewhere)."""
    return FigureInputs(
        runs=runs,
        forest=RunForest.build(runs),
        scores=score,
        metric="accuracy",
        mode=options.pop("mode", "max"),
        reduce="last",
        price_tag=_TAG,
        final_id=options.pop("final_id", None),
        energy_provenance=(),
        trials=options.pop("trials", tuple(range(len(runs)))),
        **options,
    )


def study(rows: list[tuple[str, float | None, float]]) -> FigureInputs:
    runs = tuple(
        gp.RunRecord(id=f"r{k:03d}", name=f"t{k}", status=status, energy_kwh=energy)
        for k, (status, _, energy) in enumerate(rows)
    )
    score = {r.id: s for r, (_, s, _) in zip(runs, rows, strict=True) if s is not None}
    return inputs_of(runs, score)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(trial, max_size=30))
def test_trial_columns_are_the_runs_fields(rows):
    inputs = study(rows)
    columns = inputs.trial_columns
    runs = inputs.forest.runs
    assert columns.positions.tolist() == list(inputs.trials)
    assert columns.ids == [r.id for r in runs]
    np.testing.assert_array_equal(columns.score, [inputs.scores.get(r.id, math.nan) for r in runs])
    # a run of 0.0 kWh and no component had no meter: unknown (NaN), never 0 (session 41)
    np.testing.assert_array_equal(
        columns.energy_kwh, [r.energy_kwh if r.energy_recorded else math.nan for r in runs]
    )
    for status in ("finished", "pruned", "running"):
        assert getattr(columns, status).tolist() == [r.status == status for r in runs]
    assert inputs.trial_columns is columns  # read once


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(trial, min_size=1, max_size=30))
def test_evp_figures_curve_is_that_of_the_trials_read_one_by_one(rows):
    inputs = study(rows)
    ended = [r for r in inputs.forest.runs if r.status != "running"]
    score = np.array(
        [
            inputs.scores.get(r.id, math.nan) if r.status in ("finished", "pruned") else math.nan
            for r in ended
        ]
    )
    energy = np.array([r.energy_kwh for r in ended])
    if np.isnan(energy).any():
        return  # evp_by_budget refuses unknown costs; a ledger's energies are known
    figures, notes = evp_figures(inputs)
    if not ended or np.isnan(score).all() or len(rows) == 1:  # one trial: no search, no curve
        assert figures == [] and len(notes) == 1
        return
    by_trials = figures[0].panels[0].series
    series = {s.role: s for s in by_trials}
    for replacement, role in ((True, "mean"), (False, "exact")):
        curve = evp_by_budget(score, energy, unit="kWh", replacement=replacement)
        assert series[role].y == tuple(curve.mean.tolist())
    assert series["mean"].x == tuple(float(n) for n in range(1, len(ended) + 1))


def dominated(p: tuple[float, float], q: tuple[float, float]) -> bool:
    """Whether q = (energy, score) dominates p: no more energy, no lower score, one strictly."""
    return q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(trial, max_size=30), final=st.integers(0, 40))
def test_pareto_points_and_front_from_first_principles(rows, final):
    runs = study(rows).runs
    final_id = runs[final].id if final < len(runs) else None
    inputs = inputs_of(runs, study(rows).scores, final_id=final_id)
    points = {
        status: [
            (r.energy_kwh, inputs.scores[r.id], r.id)
            for r in runs
            if r.status == status
            and math.isfinite(inputs.scores.get(r.id, math.nan))
            and math.isfinite(r.energy_kwh)
            and r.energy_recorded  # 0.0 kWh, no component: no meter, unknown (session 41)
        ]
        for status in ("finished", "pruned")
    }
    figure, why = pareto_figure(inputs)
    everything = points["finished"] + points["pruned"]
    if not everything:
        assert figure is None and "no Pareto plot" in (why or "")
        return
    assert figure is not None
    panel = figure.panels[0]
    factor = {"kWh": 1.0, "Wh": 1e3, "mWh": 1e6, "µWh": 1e9, "nWh": 1e12}[panel.x_unit]
    series = {s.role: s for s in panel.series}
    for status, group in points.items():
        if not group:
            assert status not in series
            continue
        assert series[status].run_ids == tuple(p[2] for p in group)  # the trials' order
        assert series[status].x == pytest.approx([p[0] * factor for p in group], rel=1e-12)
        assert series[status].y == tuple(p[1] for p in group)
    finished = points["finished"]
    front = sorted(
        (p for p in finished if not any(dominated(p[:2], q[:2]) for q in finished)),
        key=lambda p: (p[0], p[1]),
    )
    if front:
        assert series["front"].run_ids == tuple(p[2] for p in front)
        assert series["front"].y == tuple(p[1] for p in front)
    else:
        assert "front" not in series
    # the final run is starred where it is, if it has a score and an energy (any status)
    final_run = next((r for r in runs if r.id == final_id), None)
    if (
        final_run is not None
        and math.isfinite(inputs.scores.get(final_run.id, math.nan))
        and math.isfinite(final_run.energy_kwh)
        and final_run.energy_recorded
    ):
        assert series["final"].run_ids == (final_id,)
        assert series["final"].x == (final_run.energy_kwh * factor,)
    else:
        assert "final" not in series  # no twin: these runs have no params
    energies = [p[0] for p in points["finished"] + points["pruned"]]
    log = all(e > 0 for e in energies) and max(energies) > 30 * min(energies)
    assert panel.x_scale == ("log" if log else "linear")


def mean_power_row(run: gp.RunRecord) -> tuple[float, ...] | None:
    """A run drawn at its mean power over its span (the figure's definition), run by run."""
    if run.duration_s <= 0 or run.energy_kwh <= 0:
        return None
    watts = JOULES_PER_KWH / run.duration_s
    cpu, gpu, ram = (
        run.energy_cpu_kwh or 0.0,
        run.energy_gpu_kwh or 0.0,
        run.energy_ram_kwh or 0.0,
    )
    other = max(run.energy_kwh - cpu - gpu - ram, 0.0)
    end = run.started_at + run.duration_s
    return (run.started_at, end, cpu * watts, gpu * watts, ram * watts, other * watts)


def timed_runs(rows) -> tuple[gp.RunRecord, ...]:
    return tuple(
        gp.RunRecord(
            id=f"r{k:03d}",
            name=f"t{k}",
            status="finished",
            started_at=T0 + start,
            duration_s=duration,
            energy_kwh=energy,
            energy_cpu_kwh=cpu,
            energy_gpu_kwh=gpu,
            energy_ram_kwh=ram,
        )
        for k, (start, duration, energy, cpu, gpu, ram) in enumerate(rows)
    )


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(run_with_time, max_size=30))
def test_mean_power_rows_are_the_run_by_run_rows(rows):
    runs = timed_runs(rows)
    table, drawn = _mean_power_rows(runs)
    expected = [mean_power_row(r) for r in runs]
    assert drawn.tolist() == [row is not None for row in expected]
    kept = [row for row in expected if row is not None]
    np.testing.assert_array_equal(table[drawn], np.array(kept, dtype=float).reshape(-1, 6))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(run_with_time, min_size=1, max_size=30))
def test_runs_without_samples_draw_the_same_under_and_over_the_sample_limit(rows):
    inputs = inputs_of(timed_runs(rows), {})
    sampled, why = timeline_figure(inputs, lambda run_id: [], max_sampled_runs=len(rows))
    averaged, why_over = timeline_figure(inputs, lambda run_id: [], max_sampled_runs=0)
    assert why == why_over
    if sampled is None or averaged is None:
        assert sampled is None and averaged is None
        return
    assert repr(sampled.panels) == repr(averaged.panels)  # NaN-safe comparison of the series
    reasons = ("they have no power samples", f"more than {0} top-level runs")
    assert any(reasons[0] in n for n in sampled.notes)
    assert any(reasons[1] in n for n in averaged.notes)


times = st.floats(-1e3, 1e3, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(times, st.just(math.nan), st.sampled_from([1.0, 2.0])), max_size=40),
    nearly_sorted=st.booleans(),
)
def test_unique_times_are_numpys_unique(values, nearly_sorted):
    array = np.array(values, dtype=float)
    if nearly_sorted:  # starts, then ends: two sorted runs, as a study's runs give
        array = np.concatenate([np.sort(array), np.sort(array) + 1.0])
    np.testing.assert_array_equal(_unique_times(array), np.unique(array))


def test_a_retrained_final_run_or_its_twin_is_starred():
    runs = (
        gp.RunRecord(id="a", name="a", status="finished", energy_kwh=1e-3, params={"lr": 1}),
        gp.RunRecord(id="b", name="b", status="finished", energy_kwh=2e-3, params={"lr": 2}),
        gp.RunRecord(id="f", name="final", status="finished", energy_kwh=5.0, params={"lr": 2}),
    )
    retrained = inputs_of(runs, {"a": 0.8, "b": 0.9, "f": 0.95}, final_id="f", trials=(0, 1))
    figure, _ = pareto_figure(retrained)
    assert figure is not None
    series = {s.role: s for s in figure.panels[0].series}
    assert figure.panels[0].x_unit == "kWh"  # rescaled to the final run's 5 kWh
    assert series["final"].x == (5.0,) and series["finished"].x == (1e-3, 2e-3)
    # scored on another split (no score comparable with the trials'): the twin by params
    twin = inputs_of(runs, {"a": 0.8, "b": 0.9}, final_id="f", trials=(0, 1))
    figure, _ = pareto_figure(twin)
    assert figure is not None
    series = {s.role: s for s in figure.panels[0].series}
    assert series["final"].run_ids == ("b",) and series["final"].label.endswith("(b)")
    assert figure.panels[0].x_unit == "Wh"


@pytest.mark.parametrize("mode", ["max", "min"])
def test_pareto_front_follows_the_mode(mode):
    runs = tuple(
        gp.RunRecord(id=f"r{k}", name=f"t{k}", status="finished", energy_kwh=e)
        for k, e in enumerate([1.0, 2.0, 3.0])
    )
    figure, _ = pareto_figure(inputs_of(runs, {"r0": 0.1, "r1": 0.5, "r2": 0.3}, mode=mode))
    assert figure is not None
    front = {s.role: s for s in figure.panels[0].series}["front"]
    assert front.run_ids == (("r0", "r1") if mode == "max" else ("r0",))
