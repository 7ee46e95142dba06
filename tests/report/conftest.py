"""Ledgers with known contents for the report tests, written through the public Ledger API."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

import greenprint as gp

HOSTILE = "<script>alert('x')</script> & 50% {a_b} \\ $x$ ~^#|`*"
T0 = 1_700_000_000.0


@dataclass
class Spec:
    """What a synthetic study holds, for the tests to compare against."""

    energy_kwh: float = 0.0  # sum over root runs
    emissions_kg: float = 0.0
    fpo: int = 0
    trials: int = 0
    runs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    best_id: str = ""
    best_score: float = -math.inf
    ids: list[str] = field(default_factory=list)


def add_run(
    led,
    spec,
    *,
    name,
    study="sweep",
    status="finished",
    score=None,
    start,
    duration=10.0,
    watts=30.0,
    fpo=None,
    params=None,
    dataset_size=None,
    parent=None,
    metric="accuracy",
    samples=3,
    trial=True,
    provenance=None,
    pue=1.2,
    intensity=400.0,
):
    run_id = f"{len(spec.ids):04x}{random.Random(f'{study}/{len(spec.ids)}').getrandbits(48):012x}"
    energy = watts * duration / 3.6e6
    emissions = energy * pue * intensity / 1000
    metrics = ()
    if score is not None:
        metrics = (
            gp.MetricPoint(metric, score * 0.8, 1, start + duration / 2),
            gp.MetricPoint(metric, score, 2, start + duration),
        )
    led.start_run(
        gp.RunRecord(
            id=run_id,
            name=name,
            study=study,
            parent_id=parent,
            status=status,
            started_at=start,
            ended_at=start + duration,
            duration_s=duration,
            energy_cpu_kwh=energy * 0.8,
            energy_ram_kwh=energy * 0.2,
            energy_kwh=energy,
            emissions_kg=emissions,
            fpo=fpo,
            params=params or {},
            dataset_size=dataset_size,
            pue=pue,
            intensity_g_per_kwh=intensity,
            intensity_source="table:DE:2023 (Our World in Data / Ember)",
            provenance=provenance
            or {
                "cpu": "estimate:tdp (65 W)",
                "ram": "estimate:ram:0.375W/GB",
                "intensity": "table:DE:2023 (Our World in Data / Ember)",
                "pue": "argument",
            },
            hardware={"cpu_model": "Test CPU 9000", "logical_cores": 8, "ram_gb": 32.0, "gpus": []},
            metrics=metrics,
            error="boom" if status == "failed" else None,
        )
    )
    if samples:
        step = duration / samples
        led.flush(
            run_id,
            samples=[
                gp.PowerSample(
                    t0=start + k * step,
                    t1=start + (k + 1) * step,
                    cpu_w=watts * 0.8,
                    ram_w=watts * 0.2,
                    intensity_g_per_kwh=intensity,
                )
                for k in range(samples)
            ],
        )
    spec.ids.append(run_id)
    spec.runs += 1
    if parent is None:
        spec.energy_kwh += energy
        spec.emissions_kg += emissions
        spec.fpo += fpo or 0
    if trial:
        spec.trials += 1
        spec.statuses[status] = spec.statuses.get(status, 0) + 1
    if status == "finished" and score is not None and score > spec.best_score:
        spec.best_score, spec.best_id = score, run_id
    return run_id


def make_study(path, *, hostile=False, study="sweep"):
    """A small study: 2 baselines, 8 search trials (finished, pruned, failed), one parent with
    2 nested trials, 3 learning-curve runs, a NaN score. No run is given a role: the learning
    curve's runs (one configuration at 3 sizes beside the search at one) read as one, not as
    trials (before session 32 they were 3 more trials)."""
    led = gp.Ledger(path)
    spec = Spec()
    t = T0
    name = (lambda n: f"{HOSTILE} {n}") if hostile else (lambda n: n)
    add_run(
        led,
        spec,
        name=name("majority"),
        study=study,
        score=0.10,
        start=t,
        duration=2,
        fpo=0,
        params={"model": "majority"},
        dataset_size=1000,
    )
    t += 3
    add_run(
        led,
        spec,
        name=name("logreg"),
        study=study,
        score=0.90,
        start=t,
        duration=5,
        fpo=10**9,
        params={"model": "logreg", "C": 1.0},
        dataset_size=1000,
    )
    t += 6
    plan = [
        ("finished", 0.93),
        ("pruned", 0.40),
        ("finished", 0.95),
        ("failed", None),
        ("pruned", 0.50),
        ("finished", 0.97),
        ("finished", float("nan")),
        ("finished", 0.91),
    ]
    for k, (status, score) in enumerate(plan):
        params = {"model": "mlp", "lr": 10 ** -(k % 4 + 1), "hidden": 32 * (k + 1)}
        if hostile:
            params[HOSTILE] = HOSTILE
        add_run(
            led,
            spec,
            name=name(f"trial-{k}"),
            study=study,
            status=status,
            score=score,
            start=t,
            duration=10 + 5 * k,
            watts=30 + k,
            fpo=(k + 1) * 10**11,
            params=params,
            dataset_size=1000,
        )
        t += 11 + 5 * k
    parent = add_run(
        led,
        spec,
        name=name("cv"),
        study=study,
        score=None,
        start=t,
        duration=25,
        watts=40,
        fpo=None,
        samples=5,
        trial=False,
    )
    add_run(
        led,
        spec,
        name=name("cv-fold-0"),
        study=study,
        score=0.92,
        start=t + 1,
        duration=10,
        watts=40,
        fpo=2 * 10**11,
        parent=parent,
        samples=0,
    )
    add_run(
        led,
        spec,
        name=name("cv-fold-1"),
        study=study,
        status="failed",
        start=t + 12,
        duration=10,
        watts=40,
        fpo=None,
        parent=parent,
        samples=0,
    )
    t += 26
    for fraction, score in ((0.25, 0.80), (0.5, 0.88), (1.0, 0.94)):
        add_run(
            led,
            spec,
            name=name(f"learning-curve-{fraction:g}"),
            study=study,
            score=score,
            start=t,
            duration=20 * fraction,
            fpo=int(fraction * 10**12),
            params={"fraction": fraction},
            dataset_size=int(1000 * fraction),
            trial=False,  # no role given: one configuration at 3 sizes beside the search
        )
        t += 20 * fraction + 1
    led.close()
    return spec


@pytest.fixture
def study_ledger(tmp_path):
    path = tmp_path / "ledger.db"
    spec = make_study(path)
    return path, spec


@pytest.fixture
def hostile_ledger(tmp_path):
    path = tmp_path / "hostile.db"
    spec = make_study(path, hostile=True, study=f"study {HOSTILE}")
    return path, spec
