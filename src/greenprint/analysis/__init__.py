"""Turning runs into answers: the price tag of a study, expected max performance, Pareto fronts.

Everything here is plain numpy over :class:`~greenprint.RunRecord` objects (or arrays), so it
needs no tracker and no ledger; ``ledger.runs(study=...)`` gives the runs.

* :func:`price_tag`: totals (kWh, kg CO2-eq, FPO, s, trials) by status without double counting
  nested runs, the final run's share of the study, the E·D·H decomposition, provenance.
* :func:`expected_max_performance` and :func:`evp_by_budget`: expected best score of n trials
  (Dodge et al., 2019), with or without replacement, against trials, kWh, kg CO2-eq or FPO.
* :func:`pareto_front`, :func:`hypervolume`, :func:`pareto_runs`: score against cost.
* :func:`resolve_roles`, :func:`roles`, :func:`study_trials`, :func:`choose_final`: what each
  run is in its study (trial, part, baseline, final, learning-curve, sweep; given or inferred),
  the trials and their scores (own, or the mean of their parts'), and which run is the final one.
* :func:`efficiency` and :func:`efficiencies`: score per GFLOP, per kWh, per kg CO2-eq.
* :func:`learning_curve` and :func:`run_learning_curve`: score and cost against training-set size.

:func:`run_learning_curve` is the one name here that starts runs: it lives a floor up, in
``greenprint._studies`` (above the tracker), and is loaded on first use, so importing
``greenprint.analysis`` still loads no tracker, meters or ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenprint import _lazy, _public
from greenprint.analysis._common import lower_is_better, resolve_mode, run_score
from greenprint.analysis._curves import LearningCurve, learning_curve
from greenprint.analysis._efficiency import (
    FPO_PER_GFLOP,
    Efficiency,
    efficiencies,
    efficiency,
    score_per_cost,
)
from greenprint.analysis._evp import (
    BUDGET_UNITS,
    EVPCurve,
    evp_by_budget,
    expected_max_performance,
)
from greenprint.analysis._final_run import FinalChoice, choose_final
from greenprint.analysis._pareto import hypervolume, pareto_front, pareto_runs
from greenprint.analysis._pricetag import (
    EDH,
    CostTotals,
    FinalRoleRuns,
    FinalRun,
    PriceTag,
    ProvenanceSummary,
    price_tag,
)
from greenprint.analysis._roles import (
    StudyRoles,
    StudyTrials,
    TrialScore,
    resolve_roles,
    roles,
    study_trials,
)

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._studies import run_learning_curve

# name -> module that defines it, imported on first attribute access (PEP 562): these start runs.
_LAZY = {"run_learning_curve": "greenprint._studies"}

__all__ = [
    "BUDGET_UNITS",
    "CostTotals",
    "EDH",
    "EVPCurve",
    "Efficiency",
    "FPO_PER_GFLOP",
    "FinalChoice",
    "FinalRoleRuns",
    "FinalRun",
    "LearningCurve",
    "PriceTag",
    "ProvenanceSummary",
    "StudyRoles",
    "StudyTrials",
    "TrialScore",
    "choose_final",
    "efficiencies",
    "efficiency",
    "evp_by_budget",
    "expected_max_performance",
    "hypervolume",
    "learning_curve",
    "lower_is_better",
    "pareto_front",
    "pareto_runs",
    "price_tag",
    "resolve_mode",
    "resolve_roles",
    "roles",
    "run_learning_curve",
    "run_score",
    "score_per_cost",
    "study_trials",
]

_public.publish(__name__, globals())


__getattr__, __dir__ = _lazy.exports(__name__, globals(), _LAZY)
