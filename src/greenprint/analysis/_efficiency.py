"""Efficiency: score per unit of cost (per GFLOP, per kWh, per kg CO2-eq).

These ratios only make sense for a score where higher is better and zero means worthless
(accuracy, F1, BLEU). A ratio is ``None`` when the cost is unknown or zero (an unmeasured run is
not infinitely efficient) or the run has no score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._records import RunRecord
from greenprint.analysis._common import Mode, Reduce, check_mode, json_float, run_score

__all__ = ["FPO_PER_GFLOP", "Efficiency", "efficiencies", "efficiency", "score_per_cost"]

#: 1 GFLOP = 1e9 floating-point operations (FPO), each addition and multiplication counted.
FPO_PER_GFLOP = 1e9


@dataclass(frozen=True)
class Efficiency:
    """One run's score against its cost.

    Attributes:
        run_id: the run's id.
        name: the run's name.
        status: the run's status.
        metric: the metric name.
        score: the run's score (``None`` if it has none).
        energy_kwh: IT energy in kWh.
        emissions_kg: emissions in kg CO2-eq.
        fpo: floating-point operations (``None`` if unknown).
        score_per_gflop: score per GFLOP (1e9 FPO).
        score_per_kwh: score per kWh.
        score_per_kg: score per kg CO2-eq.
    """

    run_id: str
    name: str
    status: str
    metric: str
    score: float | None
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    score_per_gflop: float | None
    score_per_kwh: float | None
    score_per_kg: float | None

    @property
    def gflop(self) -> float | None:
        """The run's FPO in GFLOP (``None`` if unknown)."""
        return None if self.fpo is None else self.fpo / FPO_PER_GFLOP

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "metric": self.metric,
            "score": json_float(self.score),
            "energy_kwh": json_float(self.energy_kwh),
            "emissions_kg": json_float(self.emissions_kg),
            "fpo": self.fpo,
            "gflop": json_float(self.gflop),
            "score_per_gflop": json_float(self.score_per_gflop),
            "score_per_kwh": json_float(self.score_per_kwh),
            "score_per_kg": json_float(self.score_per_kg),
        }


def score_per_cost(score: float | None, cost: float | None) -> float | None:
    """``score / cost``, or ``None`` when either is unknown, NaN or infinite, or cost <= 0.

    Args:
        score: the score (e.g. accuracy).
        cost: the cost in any unit (GFLOP, kWh, kg CO2-eq).

    Returns:
        The ratio in score per cost unit, or ``None``.
    """
    if score is None or cost is None:
        return None
    score, cost = float(score), float(cost)
    if not (math.isfinite(score) and math.isfinite(cost)) or cost <= 0:
        return None
    return score / cost


def efficiency(
    run: RunRecord, *, metric: str, mode: Mode = "max", reduce: Reduce = "last"
) -> Efficiency:
    """Score per GFLOP, per kWh and per kg CO2-eq of one run (its own recorded cost).

    Args:
        run: the run.
        metric: the score's metric name.
        mode: ``"max"`` or ``"min"`` (only used by ``reduce="best"``).
        reduce: ``"last"`` or ``"best"`` logged value.

    Returns:
        The :class:`Efficiency`.

    Raises:
        AnalysisError: the run's score is infinite.
        ConfigError: an unknown ``mode`` or ``reduce``.
    """
    mode = check_mode(mode)
    value = run_score(run, metric, mode=mode, reduce=reduce)
    score = None if math.isnan(value) else value
    gflop = None if run.fpo is None else run.fpo / FPO_PER_GFLOP
    return Efficiency(
        run_id=run.id,
        name=run.name,
        status=run.status,
        metric=metric,
        score=score,
        energy_kwh=run.energy_kwh,
        emissions_kg=run.emissions_kg,
        fpo=run.fpo,
        score_per_gflop=score_per_cost(score, gflop),
        score_per_kwh=score_per_cost(score, run.energy_kwh),
        score_per_kg=score_per_cost(score, run.emissions_kg),
    )


def efficiencies(
    runs: Iterable[RunRecord],
    *,
    metric: str,
    mode: Mode = "max",
    reduce: Reduce = "last",
    statuses: Sequence[str] | None = ("finished",),
) -> list[Efficiency]:
    """:func:`efficiency` of each run with a status in ``statuses`` and a score, in order.

    Args:
        runs: the runs.
        metric: the score's metric name.
        mode: ``"max"`` or ``"min"``.
        reduce: ``"last"`` or ``"best"`` logged value.
        statuses: statuses to keep (``None`` keeps all).

    Returns:
        One :class:`Efficiency` per kept run that has a score of ``metric``.
    """
    keep = None if statuses is None else set(statuses)
    out = []
    for run in runs:
        if keep is not None and run.status not in keep:
            continue
        item = efficiency(run, metric=metric, mode=mode, reduce=reduce)
        if item.score is not None:
            out.append(item)
    return out
