"""What a price tag hands back: :class:`PriceTag` and the figures it holds, with their JSON.

:class:`CostTotals` (a set of runs' cost: defined in :mod:`greenprint.analysis._cost_totals`,
which :mod:`greenprint.analysis._final_role` imports too), :class:`EDH` (Green AI's E x D x H
over the trials), :class:`ProvenanceSummary` (where the energy figures came from) and
:class:`PriceTag` itself (its ``to_dict``, its summary for a terminal); the final run's
:class:`FinalRun` is in :mod:`greenprint.analysis._final_run`.
:func:`~greenprint.analysis._pricetag.price_tag` makes them, and
:mod:`greenprint.analysis._pricetag` re-exports them; how each figure is counted is said there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenprint._format import (
    count_of,
    format_duration,
    format_fpo,
    fpo_none_counted,
)
from greenprint.analysis._common import Mode, json_float
from greenprint.analysis._cost_totals import CostTotals
from greenprint.analysis._final_run import FinalRun
from greenprint.analysis._roles import StudyRoles

if TYPE_CHECKING:  # pragma: no cover
    from greenprint.analysis._final_role import FinalRoleRuns


@dataclass(frozen=True)
class EDH:
    """Green AI's decomposition Cost(R) = E * D * H over the trials that carry a dataset size.

    ``E`` is the cost of processing one training example in one trial (all its epochs), ``D`` the
    mean training-set size and ``H`` the number of trials, so ``E * D * H`` equals the covered
    trials' energy exactly.

    Attributes:
        trials: H, the trials with a ``dataset_size``.
        trials_total: every trial in the set (failed and pruned included).
        dataset_size: D, mean training-set size of those trials (examples).
        dataset_size_min: smallest training-set size.
        dataset_size_max: largest training-set size.
        energy_kwh_per_example: E in kWh per training example per trial.
        emissions_kg_per_example: kg CO2-eq per training example per trial.
        fpo_per_example: FPO per training example per trial, over the trials that know both
            (a trial's FPO with its parts': known when its own is, or all its parts' are;
            ``None`` if none).
        energy_kwh_per_trial: mean energy of one trial in kWh.
        energy_kwh: energy of the covered trials (= E * D * H) in kWh.
        note: why some trials are left out, else ``None``.
    """

    trials: int
    trials_total: int
    dataset_size: float
    dataset_size_min: int
    dataset_size_max: int
    energy_kwh_per_example: float
    emissions_kg_per_example: float
    fpo_per_example: float | None
    energy_kwh_per_trial: float
    energy_kwh: float
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "trials": self.trials,
            "trials_total": self.trials_total,
            "dataset_size": json_float(self.dataset_size),
            "dataset_size_min": self.dataset_size_min,
            "dataset_size_max": self.dataset_size_max,
            "energy_kwh_per_example": json_float(self.energy_kwh_per_example),
            "emissions_kg_per_example": json_float(self.emissions_kg_per_example),
            "fpo_per_example": json_float(self.fpo_per_example),
            "energy_kwh_per_trial": json_float(self.energy_kwh_per_trial),
            "energy_kwh": json_float(self.energy_kwh),
            "note": self.note,
        }


@dataclass(frozen=True)
class ProvenanceSummary:
    """Where the study's figures came from.

    Energy is split by the provenance of each root run's components: *measured* by a hardware
    counter (RAPL, NVML...), *estimated* (a provenance of kind ``"estimate"``, e.g. TDP x
    utilisation), or *unknown* (no provenance, or energy not broken down by component).

    Attributes:
        measured_kwh: energy from hardware counters, kWh.
        estimated_kwh: energy from estimates, kWh.
        unknown_kwh: energy of unknown provenance, kWh.
        sources: component (``"cpu"``, ``"gpu"``, ``"ram"``) -> the distinct provenance strings
            of every run.
        intensity_sources: distinct grid-intensity sources (e.g. ``"table:DE:2023"``).
        pue_values: distinct PUE values applied.
        pue_sources: distinct PUE provenance strings (e.g. ``"default"``).
        counted_sources: as ``sources``, of the runs whose components the shares are made of:
            the runs the total sums (top-level runs; runs of other hosts in a job) and the
            children of one that measured less than they spent. Runs inside others (parts,
            a search's fits inside a trial) are not among them: their energy is inside their
            parents' figures, whatever meter their parents used. ``None``: the same as
            ``sources``.
    """

    measured_kwh: float = 0.0
    estimated_kwh: float = 0.0
    unknown_kwh: float = 0.0
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    intensity_sources: tuple[str, ...] = ()
    pue_values: tuple[float, ...] = ()
    pue_sources: tuple[str, ...] = ()
    counted_sources: Mapping[str, tuple[str, ...]] | None = None

    @property
    def measured_share(self) -> float | None:
        """Share of the energy measured by hardware counters (``None`` if there is none)."""
        return self._share(self.measured_kwh)

    @property
    def estimated_share(self) -> float | None:
        """Share of the energy estimated (``None`` if there is none)."""
        return self._share(self.estimated_kwh)

    @property
    def unknown_share(self) -> float | None:
        """Share of the energy of unknown provenance (``None`` if there is none)."""
        return self._share(self.unknown_kwh)

    def _share(self, part: float) -> float | None:
        total = self.measured_kwh + self.estimated_kwh + self.unknown_kwh
        return part / total if total > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "measured_kwh": json_float(self.measured_kwh),
            "estimated_kwh": json_float(self.estimated_kwh),
            "unknown_kwh": json_float(self.unknown_kwh),
            "measured_share": json_float(self.measured_share),
            "estimated_share": json_float(self.estimated_share),
            "unknown_share": json_float(self.unknown_share),
            "sources": {k: list(v) for k, v in self.sources.items()},
            "intensity_sources": list(self.intensity_sources),
            "pue_values": [json_float(v) for v in self.pue_values],
            "pue_sources": list(self.pue_sources),
            "counted_sources": {
                k: list(v) for k, v in (self.counted_sources or self.sources).items()
            },
        }


@dataclass(frozen=True)
class PriceTag:
    """What a study cost: totals, by status, the final run's share, E·D·H and provenance.

    Attributes:
        studies: the distinct study names of the runs.
        total: the whole set's cost (sum over root runs).
        by_status: status -> the cost of the runs with that status, their parts included: a
            part counts under its run's status or its own, whichever ended worse (lost, failed,
            interrupted, running, pruned, finished: a pruned trial's finished folds are what
            the pruned trial cost, a failed fold of a finished trial is a failure's cost), in
            the order of ``RUN_STATUSES``, only statuses present; the entries add up to
            ``total``. ``runs`` counts the runs in an entry.
        by_role: role -> the cost of the runs with that role, their parts included (see
            :mod:`greenprint.analysis._pricetag`), in the order of ``RUN_ROLES``, only roles
            present; the entries add up to ``total``. ``runs`` counts the runs in an entry
            (parts included).
        elapsed_s: wall-clock span from the first run's start to the last run's end, s.
        started_at: first start, seconds since the Unix epoch.
        ended_at: last end (or last known time of a run still going), seconds since the epoch.
        final: the final run and its share, or ``None`` without ``metric`` and ``final``.
        edh: the E·D·H decomposition, or ``None`` when no trial has a dataset size.
        provenance: where the energy figures came from.
        metric: the metric used to pick the final run.
        mode: ``"max"`` or ``"min"``.
        notes: caveats to show with the figures.
        roles: every run's role (given or inferred); ``roles.note`` says when any was inferred.
        mode_note: why ``mode`` was chosen when it was not given (a ``loss`` is minimised),
            else ``None``; also among ``notes``.
        roles_note: ``roles.note`` with the trials that hold their repeats counted by where
            their score came from (:attr:`StudyTrials.roles_note`): the JSON's ``roles.note``,
            as the report says it.
        final_role: ``by_role["final"]`` split into the final run, the searches' refits and
            the other retrains, when it holds a run of role ``final`` other than the final
            run (:class:`~greenprint.analysis._final_role.FinalRoleRuns`: the row's label and
            a sentence that reconciles it with the final run's cost); else ``None``.
        fpo_uncounted_roles: the roles of ``by_role`` whose 0 FPO is no count: none of their
            runs counted FPO of its own (nor lies inside one that did), and their FPO are the
            runs' inside them, of other roles (a sweep that counted none around trials that
            counted theirs: the sweep's own part, 0, is that rule's). The report writes their
            FPO "none counted", not "0 FPO".
    """

    studies: tuple[str, ...]
    total: CostTotals
    by_status: Mapping[str, CostTotals]
    elapsed_s: float
    started_at: float
    ended_at: float
    final: FinalRun | None
    edh: EDH | None
    provenance: ProvenanceSummary
    metric: str | None = None
    mode: Mode = "max"
    notes: tuple[str, ...] = ()
    by_role: Mapping[str, CostTotals] = field(default_factory=dict)
    roles: StudyRoles | None = None
    mode_note: str | None = None
    roles_note: str | None = None
    final_role: FinalRoleRuns | None = None
    fpo_uncounted_roles: tuple[str, ...] = ()

    def uncounted_fpo_text(self, role: str) -> str | None:
        """What the table by role writes for ``role``'s FPO when its 0 is no count, else ``None``.

        ``"none counted (a sweep's FPO are its trials')"``: see ``fpo_uncounted_roles``.
        """
        if role not in self.fpo_uncounted_roles:
            return None
        if role == "sweep":
            return "none counted (a sweep's FPO are its trials')"
        return "none counted (its FPO are those of the runs inside it)"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure (NaN and infinities become ``None``)."""
        return {
            "studies": list(self.studies),
            "total": self.total.to_dict(),
            "by_status": {k: v.to_dict() for k, v in self.by_status.items()},
            "by_role": {k: v.to_dict() for k, v in self.by_role.items()},
            "final_role": self.final_role.to_dict() if self.final_role else None,
            "fpo_uncounted_roles": list(self.fpo_uncounted_roles),
            "roles": self._roles_dict(),
            "mode_note": self.mode_note,
            "elapsed_s": json_float(self.elapsed_s),
            "started_at": json_float(self.started_at),
            "ended_at": json_float(self.ended_at),
            "final": self.final.to_dict() if self.final else None,
            "edh": self.edh.to_dict() if self.edh else None,
            "provenance": self.provenance.to_dict(),
            "metric": self.metric,
            "mode": self.mode,
            "notes": list(self.notes),
        }

    def _roles_dict(self) -> dict[str, Any] | None:
        """``roles.to_dict()`` with its note as the report says it (``roles_note``)."""
        if self.roles is None:
            return None
        found = self.roles.to_dict()
        if self.roles_note is not None:
            found["note"] = self.roles_note
        return found

    def _repr_html_(self) -> str:
        """The price tag as HTML tables, for notebooks (every name escaped)."""
        from greenprint._reprs import price_tag_html

        return price_tag_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text display (a terminal, a notebook's text/plain): :meth:`summary`.

        ``repr`` (every field, tens of kB for a study) would fill the screen and the notebook.
        """
        printer.text(self.summary())

    def __str__(self) -> str:
        """:meth:`summary`: ``print(tag)`` shows the price tag, ``repr(tag)`` every field."""
        return self.summary()

    def summary(self) -> str:
        """A few lines of plain text for a terminal or a log."""
        t = self.total
        statuses = ", ".join(f"{v.trials} {k}" for k, v in self.by_status.items() if v.trials)
        statuses = f" ({statuses})" if statuses else ""  # no trial: no "()"
        runs = count_of(t.fpo_unknown, "run")
        fpo = format_fpo(t.fpo) + (f" + unknown for {runs}" if t.fpo_unknown else "")
        if not t.fpo_known:  # no run counted any: said of them all, not of the innermost
            fpo = fpo_none_counted(t.runs)
        elif t.fpo_unknown and not t.fpo:
            fpo = f"FPO unknown for {runs}"
        elif t.fpo_lower_bound:
            fpo = f"at least {fpo}"
        lines = [  # the units the reports write (25.8 mWh, not 2.58e-05 kWh)
            f"{count_of(t.trials, 'trial')}{statuses} in {count_of(t.runs, 'run')}",
            f"{_energy_of_runs(t)}, {fpo}, "
            f"{_time_of_runs(t)} of runs over "
            f"{format_duration(self.elapsed_s)} "
            "elapsed",
        ]
        if self.final is not None:
            lines.append(f"final run {self.final.label()}: {self.final.describe()}")
        share = self.provenance.measured_share
        if share is not None:
            lines.append(f"energy measured by hardware counters: {share:.0%}")
        lines.extend(self.notes)
        return "\n".join(lines)


def _energy_of_runs(t: CostTotals) -> str:
    """``"10.3 µWh, 4.93 µg CO2-eq"`` (``+ unknown for 2 runs`` each), for the summary.

    ``"energy and CO2-eq unknown (none of the 3 runs recorded energy)"`` when no run did.
    """
    if not t.energy_known:
        return "energy and CO2-eq " + t.energy_text()
    return f"{t.energy_text()}, {t.emissions_text()}"


def _time_of_runs(t: CostTotals) -> str:
    """``"1m 35s"``, ``"1m 35s + unknown for 2 runs"`` or ``"unknown time"``, for the summary."""
    text = t.duration_text()
    return "unknown time" if text in ("unknown", "-") else text
