"""Efficiency: score per unit of cost (per GFLOP, per kWh, per kg CO2-eq).

These ratios only make sense for a score where higher is better and zero means worthless
(accuracy, F1, BLEU). A ratio is ``None`` when the cost is unknown or zero (an unmeasured run is
not infinitely efficient) or the run has no score.

:func:`efficiencies` reads a set of runs as the price tag and the report read a study
(:class:`~greenprint.analysis._common.RunForest`, :mod:`~greenprint.analysis._roles`): a part
(a cross-validation fold, a Lightning fit inside its trial) is never a point of its own; a
trial's score is its own, else the mean of its parts', and its cost is its own with its parts'
(FPO known only when every run under it counted its own; energy and CO2-eq shared among
children that ran at the same time). :func:`efficiency` of one run reads that run's own fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._records import RunRecord
from greenprint.analysis._common import (
    Mode,
    Reduce,
    RunForest,
    check_logged,
    check_mode,
    check_statuses,
    json_float,
    run_score,
)
from greenprint.analysis._roles import ScoreSource, study_trials

__all__ = ["FPO_PER_GFLOP", "Efficiency", "efficiencies", "efficiency", "score_per_cost"]

#: 1 GFLOP = 1e9 floating-point operations (FPO), each addition and multiplication counted.
FPO_PER_GFLOP = 1e9


@dataclass(frozen=True)
class Efficiency:
    """One run's score against its cost.

    From :func:`efficiencies`, the cost is the run's with its parts' (see the module); from
    :func:`efficiency`, the run's own recorded fields.

    Attributes:
        run_id: the run's id.
        name: the run's name.
        status: the run's status.
        metric: the metric name.
        score: the run's score (``None`` if it has none).
        energy_kwh: IT energy in kWh; NaN (``null`` in JSON) when unknown: no meter
            recorded it (``meters=[]``), never 0.
        emissions_kg: emissions in kg CO2-eq; NaN where ``energy_kwh`` is.
        fpo: floating-point operations (``None`` if unknown).
        score_per_gflop: score per GFLOP (1e9 FPO); each ratio ``None`` as
            :func:`score_per_cost` gives it (an unknown or zero cost, a score below 0).
        score_per_kwh: score per kWh.
        score_per_kg: score per kg CO2-eq.
        role: the run's role in the set (``"trial"``, ``"baseline"``...; never ``"part"``
            from :func:`efficiencies`); a run alone is a ``"trial"`` unless given another.
        score_source: ``"own"`` (its own logged value) or ``"parts"`` (the mean of its parts'
            scores, e.g. its cross-validation folds').
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
    role: str = "trial"
    score_source: ScoreSource = "own"

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
            "role": self.role,
            "score_source": self.score_source,
        }


def score_per_cost(score: float | None, cost: float | None) -> float | None:
    """``score / cost``, or ``None`` when unknown, NaN or infinite, cost <= 0 or score < 0.

    A negative score (a negated error such as scikit-learn's ``neg_mean_squared_error``, an R²
    below 0) per cost falls as the cost falls: the cheaper of two equal scores would read as
    the less efficient, so it is no efficiency.

    Args:
        score: the score (e.g. accuracy), higher is better.
        cost: the cost in any unit (GFLOP, kWh, kg CO2-eq).

    Returns:
        The ratio in score per cost unit, or ``None``.
    """
    if score is None or cost is None:
        return None
    score, cost = float(score), float(cost)
    if not (math.isfinite(score) and math.isfinite(cost)) or cost <= 0 or score < 0:
        return None
    return score / cost


def efficiency(
    run: RunRecord, *, metric: str, mode: Mode = "max", reduce: Reduce = "last"
) -> Efficiency:
    """Score per GFLOP, per kWh and per kg CO2-eq of one run (its own recorded cost).

    The run is read alone: its own score and its own ``fpo``, ``energy_kwh`` and
    ``emissions_kg``. A trial whose folds or fit ran as child runs (which counted the FPO, or
    logged the score) is read with them by :func:`efficiencies` over the study's runs.

    Args:
        run: the run.
        metric: the score's metric name.
        mode: ``"max"`` or ``"min"`` (only used by ``reduce="best"``).
        reduce: ``"last"`` or ``"best"`` logged value.

    Returns:
        The :class:`Efficiency`.

    Raises:
        AnalysisError: the run's score is infinite, or it logged other metrics but not
            ``metric`` (a name typed wrong; a run that logged none has no score).
        ConfigError: an unknown ``mode`` or ``reduce``.
    """
    mode = check_mode(mode)
    check_logged([run], metric)
    value = run_score(run, metric, mode=mode, reduce=reduce)
    score = None if math.isnan(value) else value
    gflop = None if run.fpo is None else run.fpo / FPO_PER_GFLOP
    # no meter (meters=[]): its energy and CO2-eq unknown (NaN), no ratio, never a 0 kWh
    kwh, kg = (run.energy_kwh, run.emissions_kg) if run.energy_recorded else (math.nan,) * 2
    return Efficiency(
        run_id=run.id,
        name=run.name,
        status=run.status,
        metric=metric,
        score=score,
        energy_kwh=kwh,
        emissions_kg=kg,
        fpo=run.fpo,
        score_per_gflop=score_per_cost(score, gflop),
        score_per_kwh=score_per_cost(score, kwh),
        score_per_kg=score_per_cost(score, kg),
        role=run.role or "trial",
    )


def efficiencies(
    runs: Iterable[RunRecord],
    *,
    metric: str,
    mode: Mode = "max",
    reduce: Reduce = "last",
    statuses: Sequence[str] | None = ("finished",),
) -> list[Efficiency]:
    """Score per cost of each run of a study that is not a part, with its parts' cost, in order.

    The runs are read as the price tag and the report read them (see the module): a part (a
    fold, a worker, a fit inside its trial) is never an entry of its own; every other run with
    a status in ``statuses`` and a score is one. Its score is its own logged value, else the
    mean of its finished or pruned parts' (``score_source`` says which); its ``fpo`` is its own
    with its parts' (a trial whose folds counted the FPO is known; ``None`` when some run
    under it counted none and no run above that one did); its ``energy_kwh`` and
    ``emissions_kg`` are its own, or its parts' sum if larger, and children that ran at the
    same time share their parent's measurement (as ``price_tag``, ``pareto_runs`` and
    ``evp_by_budget`` count them). A set of runs without nesting reads each run's own fields.
    Give the whole study and choose with ``statuses``: in a set without a run's parent
    (``ledger.runs(study=..., status="finished")``), that run is a root, and the finished
    folds of a pruned trial are entries of their own.

    Args:
        runs: the runs (e.g. ``ledger.runs(study=...)``).
        metric: the score's metric name.
        mode: ``"max"`` or ``"min"`` (used by ``reduce="best"``).
        reduce: ``"last"`` or ``"best"`` logged value.
        statuses: statuses to keep (``None`` keeps all; one status may be a string).

    Returns:
        One :class:`Efficiency` per kept run that has a score of ``metric``.

    Raises:
        AnalysisError: an infinite score, two runs sharing an id or a parent cycle, or
            ``metric`` logged by none of ``runs`` while they logged others (a name typed
            wrong: the message lists them; runs that logged no metric give an empty list).
        ConfigError: an unknown ``mode``, ``reduce`` or status in ``statuses``.
    """
    mode = check_mode(mode)
    keep = check_statuses(statuses)
    runs = list(runs)
    check_logged(runs, metric)
    study = study_trials(RunForest.build(runs), metric=metric, mode=mode, reduce=reduce)
    forest = study.forest
    fpo = forest.fpo_sums  # RunForest's rules, as the price tag's: one reading of a cost
    # NaN where no meter recorded it (meters=[]): no ratio, never a score per 0 kWh
    energy = forest.known_cost_sums("energy_kwh")
    emissions = forest.known_cost_sums("emissions_kg")
    out = []
    for pos, run in enumerate(forest.runs):
        role = study.roles.roles[pos]
        scored = study.scores[pos]
        if role == "part" or scored.source == "none":
            continue  # a part is inside its run's entry
        if keep is not None and run.status not in keep:
            continue
        score = scored.score
        known_fpo = int(fpo.inclusive[pos]) if fpo.complete[pos] else None
        kwh, kg = float(energy[pos]), float(emissions[pos])
        out.append(
            Efficiency(
                run_id=run.id,
                name=run.name,
                status=run.status,
                metric=metric,
                score=score,
                energy_kwh=kwh,
                emissions_kg=kg,
                fpo=known_fpo,
                score_per_gflop=score_per_cost(
                    score, None if known_fpo is None else known_fpo / FPO_PER_GFLOP
                ),
                score_per_kwh=score_per_cost(score, kwh),
                score_per_kg=score_per_cost(score, kg),
                role=role,
                score_source=scored.source,
            )
        )
    return out
