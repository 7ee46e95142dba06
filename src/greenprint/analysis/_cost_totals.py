"""A set of runs' cost: :class:`CostTotals`, one figure of a price tag.

Its own module, below :mod:`greenprint.analysis._pricetag_model` (which re-exports it) and
:mod:`greenprint.analysis._final_role` (whose split of the ``final`` role's runs holds some),
so that neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from greenprint._format import run_times_text
from greenprint.analysis._common import json_float

__all__ = ["CostTotals"]


@dataclass(frozen=True)
class CostTotals:
    """Cost of a set of runs, without double counting nested runs.

    Attributes:
        runs: number of runs.
        trials: number of trials (runs with role ``trial``).
        energy_kwh: IT energy in kWh (before PUE, as recorded in ``RunRecord.energy_kwh``).
        emissions_kg: emissions in kg CO2-eq (PUE and grid intensity applied).
        fpo: floating-point operations summed over the runs that know theirs.
        fpo_unknown: runs whose FPO is unknown and not in ``fpo``: no FPO of their own, not
            contained in a known parent's FPO, and no child inside them (a container that
            counted none counts as its children; see :mod:`greenprint.analysis._pricetag`).
        duration_s: sum of run durations in s (nested runs not counted twice), of the runs
            whose duration is known.
        duration_unknown: runs whose duration is unknown and not in ``duration_s``: recorded
            none (``RunRecord.duration_s`` 0.0: a run built by hand through the ledger API, or
            imported), not contained in a known parent's time, and no child inside them (a
            container that recorded none counts as its children), as ``fpo_unknown``.
        duration_known: ``False`` when ``duration_s`` is 0 but means unknown: no run of the
            set knows its duration or lies inside a run that does. ``to_dict`` then writes
            ``duration_s`` as ``None``.
        fpo_lower_bound: runs whose FPO, in ``fpo``, are a lower bound: counted with ops that
            have no rule or on complex tensors (their provenance says so,
            :func:`~greenprint._provenance.is_fpo_lower_bound`); ``fpo`` is then "at least".
        fpo_known: ``False`` when ``fpo`` is 0 but means unknown: no run of the set knows its
            FPO or lies inside a run that does: each counted none (they are ``fpo_unknown``;
            10 Optuna trials that counted none) or is a container that counted none over
            children whose FPO is unknown (counted in their own set's ``fpo_unknown``; 5 pruned
            trials over folds that counted none, the folds finished). ``to_dict`` then writes
            ``fpo`` as ``None``.
    """

    runs: int = 0
    trials: int = 0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0
    fpo: int = 0
    fpo_unknown: int = 0
    duration_s: float = 0.0
    fpo_known: bool = True
    fpo_lower_bound: int = 0
    duration_unknown: int = 0
    duration_known: bool = True

    @property
    def gflop(self) -> float:
        """Known FPO in GFLOP (1 GFLOP = 1e9 FPO)."""
        return self.fpo / 1e9

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "runs": self.runs,
            "trials": self.trials,
            "energy_kwh": json_float(self.energy_kwh),
            "emissions_kg": json_float(self.emissions_kg),
            "fpo": self.fpo if self.fpo_known else None,
            "fpo_unknown": self.fpo_unknown,
            "fpo_lower_bound": self.fpo_lower_bound,
            "duration_s": json_float(self.duration_s) if self.duration_known else None,
            "duration_unknown": self.duration_unknown,
        }

    def duration_text(self) -> str:
        """The runs' time as the reports say it: ``"1m 35s + unknown for 2 runs"``.

        :func:`~greenprint._format.run_times_text` of ``duration_s`` and
        ``duration_unknown``: ``"unknown"`` when no run knows its time, never a silent 0.
        """
        if not self.duration_known:
            return "unknown"
        return run_times_text(self.duration_s, self.duration_unknown)
