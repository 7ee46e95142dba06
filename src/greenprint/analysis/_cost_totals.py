"""A set of runs' cost: :class:`CostTotals`, one figure of a price tag.

Its own module, below :mod:`greenprint.analysis._pricetag_model` (which re-exports it) and
:mod:`greenprint.analysis._final_role` (whose split of the ``final`` role's runs holds some),
so that neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from greenprint._format import (
    energy_none_recorded,
    format_emissions,
    format_energy,
    run_times_text,
    unknown_for,
)
from greenprint.analysis._common import json_float

__all__ = ["CostTotals", "known_sum_text"]


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
        energy_unknown: runs whose energy (and so CO2-eq) is unknown, not in ``energy_kwh``
            nor ``emissions_kg``: tracked with no meter (``meters=[]``, or built through the
            ledger API without an energy: :attr:`RunRecord.energy_recorded` false), not
            contained in a parent that recorded its own, and no child inside them, as
            ``fpo_unknown``.
        energy_known: ``False`` when ``energy_kwh`` and ``emissions_kg`` are 0 but mean
            unknown: no run of the set recorded its energy or lies inside a run that did.
            ``to_dict`` then writes both as ``None``.
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
    energy_unknown: int = 0
    energy_known: bool = True

    @property
    def gflop(self) -> float:
        """Known FPO in GFLOP (1 GFLOP = 1e9 FPO)."""
        return self.fpo / 1e9

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "runs": self.runs,
            "trials": self.trials,
            "energy_kwh": json_float(self.energy_kwh) if self.energy_known else None,
            "emissions_kg": json_float(self.emissions_kg) if self.energy_known else None,
            "energy_unknown": self.energy_unknown,
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

    def energy_text(self) -> str:
        """The runs' energy as the reports say it: ``"10.3 µWh + unknown for 2 runs"``.

        ``"unknown (none of the 3 runs recorded energy)"`` when no run of the set recorded
        its energy (tracked with no meter): never a silent 0 mWh.
        """
        return known_sum_text(format_energy(self.energy_kwh), self)

    def emissions_text(self) -> str:
        """The runs' CO2-eq as :meth:`energy_text` says their energy (unknown where it is)."""
        return known_sum_text(format_emissions(self.emissions_kg), self)


def known_sum_text(text: str, cost: CostTotals) -> str:
    """``text`` (an energy or CO2-eq of ``cost``) with the runs whose energy is unknown.

    ``"10.3 µWh"``; ``"10.3 µWh + unknown for 2 runs"``; ``"unknown (none of the 3 runs
    recorded energy)"`` when no run of ``cost`` recorded its own (``energy_known`` false).
    """
    if not cost.energy_known:
        return energy_none_recorded(cost.runs)
    return unknown_for(text, cost.energy_unknown)
