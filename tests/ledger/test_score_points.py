"""A report reads a few points of each metric of a run, and reports what all its points give.

A run that logs its loss at every step has thousands of points; ``build_report`` reads, of each
metric of each run, its first point, its first that is not NaN, the first holding its finite
maximum and minimum, its last and the first holding its largest step
(``ledger._rows.score_points_by_run``), and every point of greenprint's reserved metrics.
Proved here twice: on random point sequences (hypothesis), the
kept points give every per-run figure the analyses read; and on a ledger of long series built
through the public API, the report equals the one built from every point, for each choice a
user makes (metric given or chosen, last or best, max or min, families), on both stores.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenprint as gp
from greenprint._prediction import metric_name
from greenprint._pruned import step_bounds
from greenprint.ledger._rows import _BUFFERED_POINTS, score_points_by_run
from greenprint.report import build_report
from greenprint.report._build import _assemble

STUDY = "long"
T0 = 1_700_000_000.0
PREDICTED = metric_name("predicted_energy_kwh")
FIRST = metric_name("prediction_first_fraction")

_values = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 0.5, 1.0, -2.0]),
    st.floats(-10, 10),
)
_points = st.lists(
    st.tuples(st.sampled_from(["acc", "loss", "lr", PREDICTED]), _values),
    max_size=60,
)


def _rows(points: list[tuple[str, float]], run_id: str = "r") -> list[tuple[Any, ...]]:
    """``metrics`` rows as the SQLite store returns them (NaN as its stored text)."""
    return [
        (run_id, name, "NaN" if value != value else value, step, T0 + step)
        for step, (name, value) in enumerate(points)
    ]


@settings(max_examples=100, deadline=None)
@given(_points, _points)
def test_kept_points_give_every_figure_of_all_points(
    points: list[tuple[str, float]], other: list[tuple[str, float]]
) -> None:
    rows = _rows(points, "a") + _rows(other, "b")
    rows.sort(key=lambda row: row[3])  # two runs' points interleaved in logged order
    kept = score_points_by_run(rows, ["a", "b"])
    for run_id, logged in (("a", points), ("b", other)):
        if not logged:
            assert run_id not in kept
            continue
        full = gp.RunRecord(
            id=run_id,
            name=run_id,
            metrics=tuple(gp.MetricPoint(n, v, s, T0 + s) for s, (n, v) in enumerate(logged)),
        )
        few = dataclasses.replace(full, metrics=tuple(kept[run_id]))
        # a subsequence of the logged points, in logged order
        steps = [p.step for p in few.metrics]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        assert [repr(p) for p in few.metrics] == [repr(full.metrics[s]) for s in steps]
        assert few.metric_names == full.metric_names
        for name in full.metric_names:
            for mode in ("last", "max", "min"):
                assert repr(few.metric(name, mode=mode)) == repr(full.metric(name, mode=mode))
            not_nan = [p for p in full.metrics if p.name == name and p.value == p.value]
            assert any(p.name == name and p.value == p.value for p in few.metrics) == bool(not_nan)
        # names in the order their first value that is not NaN was logged
        first = {p.name: None for p in full.metrics if p.value == p.value}
        assert list({p.name: None for p in few.metrics if p.value == p.value}) == list(first)
        # greenprint's reserved metrics are read whole; the others keep at most five points
        assert [repr(p) for p in few.metrics if p.name == PREDICTED] == [
            repr(p) for p in full.metrics if p.name == PREDICTED
        ]
        # a run of few points keeps them all; a longer one at most six a metric
        if len(logged) <= _BUFFERED_POINTS:
            assert len(few.metrics) == len(logged)
        for name in full.metric_names:
            if name != PREDICTED and len(logged) > _BUFFERED_POINTS:
                assert sum(p.name == name for p in few.metrics) <= 6


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["acc", "loss", PREDICTED]),
            _values,
            st.one_of(st.none(), st.integers(0, 40)),
        ),
        max_size=60,
    )
)
def test_kept_points_hold_each_metrics_largest_step(
    logged: list[tuple[str, float, int | None]],
) -> None:
    """Steps in any order, some points without one (a best value logged again at the end, a
    step counter restarted): each metric's largest step, and the run's, are those of all its
    points (where a pruned run stopped: ``_pruned.step_bounds``)."""
    rows = [
        ("r", name, "NaN" if value != value else value, step, T0 + k)
        for k, (name, value, step) in enumerate(logged)
    ]
    kept = score_points_by_run(rows, ["r"]).get("r", [])
    full = gp.RunRecord(
        id="r", name="r", metrics=tuple(gp.MetricPoint(n, v, s, T0) for n, v, s in logged)
    )
    few = dataclasses.replace(full, metrics=tuple(kept))
    for name in full.metric_names:
        assert step_bounds((few,), name)[1] == step_bounds((full,), name)[1]
    assert step_bounds((few,))[1] == step_bounds((full,))[1]


def _series(rng: random.Random, name: str, steps: int, *, top: float, nan: bool) -> list[float]:
    values = [top * (1 - math.exp(-(s + 1) / 4)) + rng.gauss(0, 0.01) for s in range(steps)]
    if nan:
        values[rng.randrange(steps)] = math.nan
    if name == "val_loss":
        values = [1.5 - v for v in values]
        values[rng.randrange(steps)] = math.inf  # an exploding step: never a best value
    return values


def build_long(path: Path | str, *, seed: int = 3) -> None:
    """A study whose runs log three metrics at every one of 12-40 steps, with its roles."""
    rng = random.Random(seed)
    count = 0

    def add(led: gp.Ledger, **fields: Any) -> gp.RunRecord:
        nonlocal count
        count += 1
        steps = rng.randint(12, 40)
        logged = fields.pop("logged", ("accuracy", "val_loss", "lr"))
        series = {
            name: _series(rng, name, steps, top=rng.uniform(0.6, 0.95), nan=rng.random() < 0.3)
            for name in logged
        }
        points = [
            gp.MetricPoint(name, series[name][s], s, T0 + 60 * count + s)
            for s in range(steps)
            for name in logged
        ]
        if fields.pop("predicted", False):
            points += [
                gp.MetricPoint(PREDICTED, 0.01 * k, k, T0 + 60 * count + k) for k in range(6)
            ]
            points.append(gp.MetricPoint(FIRST, 0.25, 6, T0 + 60 * count + 6))
        energy = rng.uniform(1e-4, 1e-2)
        record = gp.RunRecord(
            id=f"{count:04x}{rng.getrandbits(40):010x}",
            name=fields.pop("name", f"run-{count}"),
            study=fields.pop("study", STUDY),
            status=fields.pop("status", "finished"),
            started_at=T0 + 60 * count,
            ended_at=T0 + 60 * count + 50,
            duration_s=50.0,
            energy_kwh=energy,
            energy_cpu_kwh=energy,
            emissions_kg=energy * 0.3,
            provenance={"cpu": "rapl"},
            params={"model": rng.choice(["mlp", "cnn"])} | fields.pop("params", {}),
            dataset_size=fields.pop("dataset_size", 10_000),
            fpo=rng.randrange(10**12, 10**15),
            **fields,
        )
        led.start_run(record)
        led.flush(record.id, metrics=points)
        return record

    with gp.Ledger(path) as led:
        add(led, name="baseline", role="baseline", logged=("accuracy",))
        sweep = add(led, name="sweep", logged=())
        for t in range(10):
            status = rng.choice(["finished", "finished", "pruned", "failed"])
            trial = add(
                led,
                name=f"trial-{t}",
                parent_id=sweep.id,
                status=status,
                predicted=t % 4 == 0,
                logged=("accuracy", "val_loss", "lr") if t % 3 else (),
            )
            for fold in range(3 if t % 3 == 0 else 0):
                add(led, name=f"trial-{t}-fold-{fold}", parent_id=trial.id)
        for fraction in (0.25, 0.5, 1.0):
            add(
                led,
                name=f"curve-{fraction}",
                role="learning-curve",
                params={"fraction": fraction},
                dataset_size=int(40_000 * fraction),
            )
        add(led, name="final", role="final")
        add(led, name="elsewhere", study="other")


def _from_every_point(led: gp.Ledger, **options: Any) -> Any:
    """The report built from records holding every logged point."""
    runs = tuple(led.runs(study=STUDY))
    assert max(len(r.metrics) for r in runs) > 100  # long series: the read trims them
    return _assemble(
        runs,
        study=STUDY,
        ledger_url=led.url,
        metric=options.get("metric"),
        mode=options.get("mode"),
        final=None,
        reduce=options.get("reduce", "last"),
        training_type=None,
        samples_of=led.samples,
        max_sampled_runs=300,
        group_by=options.get("group_by"),
    )


OPTIONS = [
    {"metric": "accuracy"},
    {},  # the metric chosen by counting
    {"metric": "accuracy", "reduce": "best", "group_by": "params.model"},
    {"metric": "val_loss"},  # minimised by its name, an infinity in each series
    {"metric": "val_loss", "mode": "min", "reduce": "best"},
    {"metric": "lr", "mode": "max", "reduce": "best"},
]


def test_report_from_kept_points_equals_report_from_every_point(ledger_url: str) -> None:
    """On SQLite (standard library) and PostgreSQL (SQLAlchemy), for each choice a user makes."""
    build_long(ledger_url)
    with gp.Ledger(ledger_url, create=False) as led:
        for options in OPTIONS:
            reference = _from_every_point(led, **options)
            built = build_report(led, STUDY, **options)
            same_time = dataclasses.replace(reference, generated_at=built.generated_at)
            assert json.dumps(built.to_dict(), sort_keys=True) == json.dumps(
                same_time.to_dict(), sort_keys=True
            ), options
            assert built.prediction is not None  # the reserved metrics were read whole
            assert built.price_tag.final is not None


def test_a_metric_given_by_name_is_the_only_one_read(ledger_url: str) -> None:
    """A report ranked by a metric it was given fetches only that metric's points and the
    reserved ones (the loss and learning rate logged at every step stay in the ledger), and
    the report equals the one from every point (above); a metric no run logged still gets the
    error that lists the metrics logged."""
    build_long(ledger_url)
    with gp.Ledger(ledger_url, create=False) as led:
        every = led.runs(study=STUDY)
        read = led._read(study=STUDY, points="score", metrics=("val_loss",))
        assert [r.id for r in read] == [r.id for r in every]
        names = {p.name for r in read for p in r.metrics}
        assert names == {"val_loss", PREDICTED, FIRST}
        for got, full in zip(read, every, strict=True):
            # of val_loss, the kept points of every point; reserved metrics whole
            assert [repr(p) for p in got.metrics if p.name != "val_loss"] == [
                repr(p) for p in full.metrics if p.name in (PREDICTED, FIRST)
            ]
            for mode in ("last", "max", "min"):
                assert repr(got.metric("val_loss", mode=mode)) == repr(
                    full.metric("val_loss", mode=mode)
                )
        with pytest.raises(gp.AnalysisError, match="metrics logged: 'accuracy', 'val_loss', 'lr'"):
            build_report(led, STUDY, metric="bleu")
