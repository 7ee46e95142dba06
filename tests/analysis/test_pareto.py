"""Pareto fronts and hypervolumes against brute force, with the invariants a report relies on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint import AnalysisError, ConfigError, MetricPoint, RunRecord
from greenprint.analysis import _pareto, hypervolume, pareto_front, pareto_runs

DIRS = {
    1: ("minimize",),
    2: ("maximize", "minimize"),
    3: ("maximize", "minimize", "minimize"),
    4: ("minimize", "maximize", "minimize", "maximize"),
}


@st.composite
def point_sets(draw, max_points=12, dims=(1, 2, 3, 4), grid=True):
    d = draw(st.sampled_from(dims))
    n = draw(st.integers(0, max_points))
    coord = st.integers(0, 5).map(float) if grid else st.floats(-100, 100)
    rows = draw(st.lists(st.lists(coord, min_size=d, max_size=d), min_size=n, max_size=n))
    return np.array(rows, dtype=float).reshape(n, d), DIRS[d]


def as_min(points, directions):
    return points * np.array([-1.0 if x.startswith("max") else 1.0 for x in directions])


def brute_front(points, directions):
    p = as_min(points, directions)
    keep = []
    for j in range(len(p)):
        dominated = any(np.all(p[i] <= p[j]) and np.any(p[i] < p[j]) for i in range(len(p)))
        if not dominated:
            keep.append(j)
    return keep


def inclusion_exclusion(points, reference, directions):
    p = as_min(points, directions)
    r = as_min(np.asarray(reference, dtype=float)[None, :], directions)[0]
    p = p[(p < r).all(axis=1)]
    total = 0.0
    for k in range(1, len(p) + 1):
        for subset in itertools.combinations(range(len(p)), k):
            corner = p[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * np.prod(r - corner)
    return total


def grid_count(points, reference, directions):
    """Unit cells of the integer grid dominated by some point (points and reference integer)."""
    p = as_min(points, directions)
    r = as_min(np.asarray(reference, dtype=float)[None, :], directions)[0]
    lows = np.minimum(p.min(axis=0), r) if len(p) else r
    axes = [np.arange(lo, hi) for lo, hi in zip(lows.astype(int), r.astype(int), strict=True)]
    count = 0
    for cell in itertools.product(*axes):
        c = np.array(cell, dtype=float)
        if len(p) and ((p <= c).all(axis=1)).any():
            count += 1
    return float(count)


def reference_for(points, directions, margin=1.0):
    d = len(directions)
    if len(points) == 0:
        return np.zeros(d)
    worst = [
        points[:, k].min() - margin
        if directions[k].startswith("max")
        else points[:, k].max() + margin
        for k in range(d)
    ]
    return np.array(worst)


@settings(max_examples=250, deadline=None)
@given(data=st.one_of(point_sets(), point_sets(max_points=30, grid=False)))
def test_front_equals_brute_force(data):
    points, directions = data
    assert pareto_front(points, directions=directions).tolist() == brute_front(points, directions)


def chunked_brute_front(points, directions):
    minimised = as_min(points, directions)
    dominated = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), 250):
        chunk = minimised[start : start + 250]
        le = (minimised[:, None, :] <= chunk[None, :, :]).all(axis=2)
        lt = (minimised[:, None, :] < chunk[None, :, :]).any(axis=2)
        dominated[start : start + 250] = (le & lt).any(axis=0)
    return np.nonzero(~dominated)[0].tolist()


@pytest.mark.parametrize("d", [3, 4, 5])
@pytest.mark.parametrize("path", ["default", "sweep"])
def test_large_fronts_match_pairwise(d, path, monkeypatch):
    """Past one bitset block (1,024 points) and many 64-bit words, duplicates included; the
    sweep used above the bitsets' memory cap agrees too."""
    if path == "sweep":
        monkeypatch.setattr(_pareto, "_BITSET_MAX_BYTES", 0)
    rng = np.random.default_rng(d)
    sphere = np.abs(rng.normal(size=(2_100, d)))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)  # most points on the front
    # exact duplicates of front points, rounding (ties in single coordinates), dominated points
    points = np.round(np.vstack([sphere, sphere[:150], 0.5 + rng.random((250, d))]), 3)
    directions = ("minimize", "maximize", "minimize", "maximize", "minimize")[:d]
    points[:, 1::2] *= -1  # maximised objectives
    front = pareto_front(points, directions=directions).tolist()
    assert front == chunked_brute_front(points, directions)
    assert len(front) > len(points) // 2


@settings(max_examples=150, deadline=None)
@given(
    d=st.integers(3, 6),
    n=st.integers(0, 140),
    seed=st.integers(0, 2**32 - 1),
    grid=st.integers(2, 8),
)
def test_front_in_many_objectives_equals_brute_force(d, n, seed, grid):
    """Sets larger than the small hypothesis sets: several 64-bit words, ties on a grid."""
    rng = np.random.default_rng(seed)
    points = rng.integers(0, grid, size=(n, d)).astype(float)
    directions = ("minimize", "maximize") * 3
    assert pareto_front(points, directions=directions[:d]).tolist() == brute_front(
        points, directions[:d]
    )


@settings(max_examples=150, deadline=None)
@given(data=point_sets(max_points=20), seed=st.integers(0, 2**32 - 1))
def test_front_is_invariant_under_permutation(data, seed):
    points, directions = data
    perm = np.random.default_rng(seed).permutation(len(points))
    front = set(pareto_front(points, directions=directions).tolist())
    permuted = pareto_front(points[perm], directions=directions)
    assert {int(perm[k]) for k in permuted} == front


@settings(max_examples=150, deadline=None)
@given(data=point_sets(max_points=20))
def test_every_point_off_the_front_is_dominated_by_a_front_point(data):
    points, directions = data
    front = pareto_front(points, directions=directions)
    p = as_min(points, directions)
    f = p[front]
    for j in set(range(len(points))) - set(front.tolist()):
        assert ((f <= p[j]).all(axis=1) & (f < p[j]).any(axis=1)).any()
    # and no front point dominates another
    for a, b in itertools.permutations(range(len(f)), 2):
        assert not (np.all(f[a] <= f[b]) and np.any(f[a] < f[b]))


def test_duplicates_on_the_front_are_all_kept_and_directions_matter():
    points = [[0.9, 2.0], [0.9, 2.0], [0.8, 1.0], [0.7, 1.5], [0.8, 1.0]]
    assert pareto_front(points).tolist() == [0, 1, 2, 4]
    assert pareto_front(points, directions=("min", "max")).tolist() == [0, 1, 3]
    assert pareto_front(points, directions=("min", "min")).tolist() == [2, 3, 4]
    assert pareto_front(np.zeros((0, 2))).tolist() == []


@settings(max_examples=200, deadline=None)
@given(data=point_sets(max_points=7))
def test_hypervolume_equals_inclusion_exclusion_and_the_grid_count(data):
    points, directions = data
    reference = reference_for(points, directions, margin=1.0)
    hv = hypervolume(points, reference, directions=directions)
    assert hv == pytest.approx(inclusion_exclusion(points, reference, directions), abs=1e-9)
    assert hv == pytest.approx(grid_count(points, reference, directions), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(data=point_sets(max_points=8, grid=False))
def test_hypervolume_real_coordinates_equals_inclusion_exclusion(data):
    points, directions = data
    reference = reference_for(points, directions, margin=0.5)
    reference[0] = np.median(points[:, 0]) if len(points) else 0.0  # some points outside
    hv = hypervolume(points, reference, directions=directions)
    expected = inclusion_exclusion(points, reference, directions)
    assert hv == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(data=point_sets(max_points=25, grid=False), extra=st.data())
def test_hypervolume_never_decreases_when_a_point_is_added(data, extra):
    points, directions = data
    d = len(directions)
    new = extra.draw(st.lists(st.floats(-100, 100), min_size=d, max_size=d))
    reference = reference_for(points, directions, margin=10.0)
    before = hypervolume(points, reference, directions=directions)
    after = hypervolume(np.vstack([points, [new]]), reference, directions=directions)
    assert after >= before - 1e-9 * max(1.0, before)


@settings(max_examples=150, deadline=None)
@given(data=point_sets(max_points=25, grid=False), seed=st.integers(0, 2**32 - 1))
def test_hypervolume_ignores_dominated_points_and_order(data, seed):
    points, directions = data
    reference = reference_for(points, directions, margin=3.0)
    front = pareto_front(points, directions=directions)
    full = hypervolume(points, reference, directions=directions)
    only_front = hypervolume(points[front], reference, directions=directions)
    perm = np.random.default_rng(seed).permutation(len(points))
    shuffled = hypervolume(points[perm], reference, directions=directions)
    assert only_front == pytest.approx(full, rel=1e-12, abs=1e-9)
    assert shuffled == pytest.approx(full, rel=1e-12, abs=1e-9)


def test_hypervolume_known_values():
    # accuracy up, kWh down, reference (0 accuracy, 4 kWh)
    assert hypervolume([[0.9, 2.0], [0.8, 1.0]], [0.0, 4.0]) == pytest.approx(2.6)
    cube = [[1.0, 1.0, 1.0]]
    assert hypervolume(cube, [3, 3, 3], directions=["min"] * 3) == pytest.approx(8.0)
    two = [[0, 0, 1, 1], [1, 1, 0, 0]]
    # two 4-D boxes of volume 2*2*1*1 = 4 overlapping in a 1*1*1*1 box
    assert hypervolume(two, [2, 2, 2, 2], directions=["min"] * 4) == pytest.approx(7.0)
    # a point on the reference boundary or beyond adds nothing
    assert hypervolume([[0.0, 1.0], [0.5, 5.0]], [0.0, 4.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [0.0, 4.0]) == 0.0
    assert hypervolume([[2.0]], [5.0], directions=["min"]) == 3.0


def test_hypervolume_of_a_large_2d_and_3d_front_is_exact():
    t = np.linspace(0.01, 0.99, 2_000)
    front2 = np.column_stack([t, 1 - t])  # minimise both: a straight anti-diagonal front
    hv2 = hypervolume(front2, [1.0, 1.0], directions=["min", "min"])
    expected2 = sum((t[k + 1] - t[k]) * t[k] for k in range(len(t) - 1)) + (1 - t[-1]) * t[-1]
    assert hv2 == pytest.approx(expected2, rel=1e-12)
    rng = np.random.default_rng(5)
    pts = rng.random((120, 3))
    hv3 = hypervolume(pts, [1.0, 1.0, 1.0], directions=["min"] * 3)
    grid = np.linspace(0, 1, 41)[:-1] + 1 / 80  # midpoints: a coarse Riemann estimate
    cells = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    covered = np.zeros(len(cells), dtype=bool)
    for p in pts:
        covered |= (cells >= p).all(axis=1)
    assert hv3 == pytest.approx(covered.mean(), abs=0.02)


@pytest.mark.parametrize(
    "points, reference, directions, error, message",
    [
        ([[1.0, np.nan]], [0, 0], ("max", "min"), AnalysisError, "finite"),
        ([[1.0, np.inf]], [0, 0], ("max", "min"), AnalysisError, "finite"),
        ([[1.0, 2.0, 3.0]], [0, 0], ("max", "min"), AnalysisError, "shape"),
        ([[1.0, 2.0]], [0, 0, 0], ("max", "min"), AnalysisError, "reference"),
        ([[1.0, 2.0]], [0, np.nan], ("max", "min"), AnalysisError, "reference"),
        ([[1.0, 2.0]], [0, 0], ("up", "min"), ConfigError, "direction"),
        ([[1.0, 2.0]], [0, 0], "maximize", ConfigError, "sequence"),
        ([["a", "b"]], [0, 0], ("max", "min"), AnalysisError, "numbers"),
    ],
)
def test_bad_points_raise(points, reference, directions, error, message):
    with pytest.raises(error, match=message):
        hypervolume(points, reference, directions=directions)
    if "reference" not in message:
        with pytest.raises(error, match=message):
            pareto_front(points, directions=directions)


def _run(i, acc, kwh, status="finished"):
    metrics = () if acc is None else (MetricPoint("acc", acc),)
    return RunRecord(id=f"r{i}", name=f"r{i}", status=status, energy_kwh=kwh, metrics=metrics)


def test_pareto_runs_best_score_first_and_skips_runs_without_score():
    runs = [
        _run(0, 0.80, 0.30),
        _run(1, 0.90, 0.50),
        _run(2, 0.85, 0.60),  # dominated by r1
        _run(3, 0.70, 0.10),
        _run(4, None, 0.01),  # no score: left out
        _run(5, 0.60, 0.05, status="pruned"),
    ]
    assert [r.id for r in pareto_runs(runs, metric="acc")] == ["r1", "r0", "r3", "r5"]
    assert [r.id for r in pareto_runs(runs, metric="acc", mode="min")] == ["r5"]
    assert pareto_runs([], metric="acc") == []
    with pytest.raises(ConfigError, match="cost"):
        pareto_runs(runs, metric="acc", cost="watts")
