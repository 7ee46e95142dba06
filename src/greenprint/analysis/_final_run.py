"""The final run of a price tag: the run behind the reported result, and its share of the cost.

:class:`FinalRun` (its label and its sentence for the reports, its JSON), and what
:func:`~greenprint.analysis._pricetag.price_tag` says when no run can be the final one: the runs
that logged the metric (:func:`_logged_by`) and the metrics logged (:func:`_logged_metrics`).
The rules that choose it are :func:`~greenprint.analysis._roles.choose_final`'s;
:mod:`greenprint.analysis._pricetag` re-exports :class:`FinalRun`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import format_duration, format_emissions, format_energy, format_share
from greenprint._prediction import is_reserved_metric
from greenprint._records import RunRecord
from greenprint.analysis._common import json_float


@dataclass(frozen=True)
class FinalRun:
    """The run behind the reported result, and its share of the whole study's cost.

    Shares are final / study (``None`` when the study's amount is 0 or the final's is unknown);
    the final run's cost includes its children's.

    Attributes:
        run_id: the run's id.
        name: its name.
        status: its status.
        chosen: ``True`` when the caller named it, ``False`` when a rule chose it.
        metric: the metric it was ranked by (``None`` if chosen without one).
        score: its value of ``metric`` (``None`` if none): its own, else the mean of its parts'.
        energy_kwh: its IT energy in kWh.
        emissions_kg: its emissions in kg CO2-eq.
        fpo: its FPO with its children's (``None`` unless known: its own is known, or every
            child inside it is, recursively; see :mod:`greenprint.analysis._pricetag`).
        duration_s: its duration in s.
        energy_share: its energy / the study's.
        emissions_share: its emissions / the study's.
        fpo_share: its FPO / the study's known FPO.
        duration_share: its duration / the study's summed durations.
        role: its role (``"final"``, ``"trial"``...).
        rule: what chose it: ``"given"`` (the caller), ``"role"`` (the run with role
            ``final``) or ``"best-trial"`` (the best finished trial by ``metric``).
        rule_text: that rule in words, for the report.
        score_source: ``"own"``, ``"parts"`` (the mean of its parts' scores) or ``"none"``.
        fpo_lower_bound: ``True`` when its FPO are a lower bound (it, or a run inside it,
            counted ops with no rule or on complex tensors).
        name_shared: ``True`` when another run of the study has its name (a search run twice
            into one study: two ``trial-3``): the texts name it with its id too.
    """

    run_id: str
    name: str
    status: str
    chosen: bool
    metric: str | None
    score: float | None
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    duration_s: float
    energy_share: float | None
    emissions_share: float | None
    fpo_share: float | None
    duration_share: float | None
    role: str = "trial"
    rule: str = "best-trial"
    rule_text: str = ""
    score_source: str = "own"
    fpo_lower_bound: bool = False
    name_shared: bool = False

    @property
    def study_multiple(self) -> float | None:
        """How many times the final run's energy the whole study cost (``1 / energy_share``)."""
        share = self.energy_share
        return 1.0 / share if share else None

    def label(self) -> str:
        """Its name, with its id when another run has that name, and its score.

        ``"trial-3 (val_acc=0.9312)"``; ``"trial-3 (run 1dc72494, val_acc=0.9312)"`` in a study
        of a search run twice. 4 significant digits, as the reports and ``ledger ls`` write a
        score.
        """
        said = [f"run {self.run_id[:8]}"] if self.name_shared else []
        if self.score is not None:
            said.append(f"{self.metric}={self.score:.4g}")
        return self.name + (f" ({', '.join(said)})" if said else "")

    def describe(self) -> str:
        """One sentence, e.g. ``"the final model cost 1/37 of the study's energy (...)"``."""
        for what, share, shown, own in (
            ("energy", self.energy_share, format_energy, self.energy_kwh),
            ("CO2-eq", self.emissions_share, format_emissions, self.emissions_kg),
            ("time", self.duration_share, None, self.duration_s),
        ):
            if share:
                total = own / share
                # the part in its whole's unit: "0.83 mWh of 25.8 mWh", not "830 µWh of ..."
                part, whole = (
                    (format_duration(own), format_duration(total))
                    if shown is None
                    else (shown(own, unit_of=total), shown(total))
                )
                return (
                    f"the final model cost {format_share(share)} of the study's {what} "
                    f"({part} of {whole})"
                )
        return "the study's cost is zero or unknown, so the final model's share is unknown"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "status": self.status,
            "chosen": self.chosen,
            "metric": self.metric,
            "score": json_float(self.score),
            "energy_kwh": json_float(self.energy_kwh),
            "emissions_kg": json_float(self.emissions_kg),
            "fpo": self.fpo,
            "duration_s": json_float(self.duration_s),
            "energy_share": json_float(self.energy_share),
            "emissions_share": json_float(self.emissions_share),
            "fpo_share": json_float(self.fpo_share),
            "duration_share": json_float(self.duration_share),
            "study_multiple": json_float(self.study_multiple),
            "text": self.describe(),
            "role": self.role,
            "rule": self.rule,
            "rule_text": self.rule_text,
            "score_source": self.score_source,
            "fpo_lower_bound": self.fpo_lower_bound,
        }


def _logged_by(runs: Sequence[RunRecord], metric: str) -> str:
    """The runs that logged a value of ``metric``, with their statuses (``""``: none did).

    ``'trial-3' (interrupted), 'trial-4' (failed)``: the first three, then how many more.
    """
    holders = [r for r in runs if any(p.name == metric and p.value == p.value for p in r.metrics)]
    shown = ", ".join(f"{r.name!r} ({r.status})" for r in holders[:3])
    return shown + (f" and {len(holders) - 3} more" if len(holders) > 3 else "")


def _logged_metrics(runs: Sequence[RunRecord]) -> str:
    """The metrics the runs logged a value of, as ``build_report``'s error lists them.

    In the order first logged, NaN values and greenprint's own metrics (predictions) left out;
    ``"none"`` when there is none.
    """
    names = {
        p.name: None
        for run in runs
        for p in run.metrics
        if p.value == p.value and not is_reserved_metric(p.name)
    }
    return ", ".join(map(repr, names)) or "none"
