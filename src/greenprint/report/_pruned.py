"""The pruned-trials section of a report: when trials were stopped, what they cost and saved.

Each pruned trial records where it stopped (:mod:`greenprint._pruned`: its ``pruned_at_step``,
else its last logged step) and what stopped it (``pruned_by``). :func:`pruned_summary` sets
them against the finished trials: the step a trial run to its end reaches is the furthest
finished trial's last step (its recorded ``last_step``, Optuna's last reported step, else its
last logged step, of the ``step_metric`` the pruned trials recorded if one: Optuna's reported
steps, not a loss logged at each global step), or the ``full_steps`` a stopper recorded (a
halving search's last resources, the furthest Ray Tune trial), whichever is further. The
pruned trials' cost is the price tag's ``pruned`` entry, with its share of the study. What they
would have cost run to the end is an **estimate**: each pruned trial's cost scaled by
``full / done`` (steps are counted from 1; a study whose logged steps start at 0 counts step
``s`` as ``s + 1`` steps done), so
what pruning saved is ``cost * (full / done - 1)`` summed over them. It assumes a step costs
the same throughout a trial (a trial whose later epochs cost more saved more).

The ``*_section`` functions render it for HTML, Markdown and LaTeX; the JSON report holds
:meth:`PrunedSummary.to_dict` under ``"pruning"``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import (
    and_list,
    count_of,
    format_emissions,
    format_energy,
    format_fpo,
    format_share,
    format_step,
    fpo_text,
    unknown_for,
)
from greenprint._frozen import slot_constructor
from greenprint._pruned import (
    LAST_STEP_KEY,
    STEP_METRIC_KEY,
    pruned_at,
    reported_last_step,
    step_bounds,
)
from greenprint._records import RunRecord
from greenprint.analysis import PriceTag
from greenprint.analysis._common import json_float

__all__ = [
    "PrunedRow",
    "PrunedSummary",
    "html_section",
    "latex_section",
    "markdown_section",
    "pruned_summary",
]

#: Most pruned trials listed in the section's table (the JSON lists them all).
MAX_ROWS = 30


@dataclass(frozen=True, slots=True)
class PrunedRow:
    """One pruned trial.

    Attributes:
        run_id: its run's id.
        name: its run's name.
        step: the step it was stopped at (``None``: it recorded and logged no step).
        step_recorded: whether ``step`` was recorded when it was pruned (else: its last
            logged step).
        by: what stopped it (``None``: not recorded).
        energy_kwh: its energy (with its parts'), kWh.
        emissions_kg: its CO2-eq, kg.
        fpo: its FPO (``None``: unknown).
        scale: ``full / done``, what a run to the end would have cost against what it cost
            (``None``: no step to scale by).
    """

    run_id: str
    name: str
    step: float | None
    step_recorded: bool
    by: str | None
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    scale: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: where it stopped; its name and cost are its row's in ``runs``.

        (20,000 pruned trials of a 100,000-trial search: the name, energy, CO2-eq and FPO
        repeated here took 2.1 of the 4.3 MB, and 60% of the encoding time.)
        """
        return {
            "run_id": self.run_id,
            "step": json_float(self.step),
            "step_recorded": self.step_recorded,
            "by": self.by,
            "scale": json_float(self.scale),
        }


#: ``PrunedRow(*fields)`` at half the cost (one per pruned trial; see slot_constructor).
_make_row = slot_constructor(PrunedRow)


@dataclass(frozen=True)
class PrunedSummary:
    """What a study's pruned trials cost, and what stopping them early saved.

    Attributes:
        trials: the study's trials.
        finished: its finished trials.
        rows: the pruned trials, in start order.
        by: what stopped them, each stopper once, most trials first.
        unit: what a step counts, when the stoppers recorded one (``"training_iteration"``,
            ``"cumulative resources"``); ``None``: the logged step.
        full_steps: the step a trial run to its end reaches (``None``: unknown, no finished
            trial logged a step and no stopper recorded one).
        from_zero: whether steps start at 0 (step ``s`` is ``s + 1`` steps done).
        energy_kwh: the pruned trials' energy (the price tag's ``pruned`` entry), kWh.
        emissions_kg: their CO2-eq, kg.
        fpo: their FPO (``None``: unknown).
        study_energy_kwh: the study's energy, kWh.
        study_emissions_kg: the study's CO2-eq, kg.
        study_fpo: the study's FPO (``None``: unknown).
        saved_energy_kwh: estimated energy a run to the end of the pruned trials that have a
            step would have spent beyond what they spent, kWh (``None``: no estimate).
        saved_emissions_kg: the same in CO2-eq, kg.
        saved_fpo: the same in FPO (``None``: unknown, or one of them counted none).
        estimated: how many pruned trials the estimate covers (those with a step).
        fpo_unknown: how many of the pruned runs' FPO is unknown, not in ``fpo`` (the price
            tag's ``fpo_unknown`` of its ``pruned`` entry).
        fpo_lower_bound: how many runs in ``fpo`` counted a lower bound.
        study_fpo_unknown: how many of the study's runs' FPO is unknown, not in ``study_fpo``.
        energy_unknown: how many of the pruned runs recorded no energy (no meter: the price
            tag's ``energy_unknown`` of its ``pruned`` entry), not in ``energy_kwh``.
        energy_known: ``False`` when none of them recorded energy: ``energy_kwh`` and
            ``emissions_kg`` (0) are unknown, written ``null``, never 0.
        study_energy_unknown: how many of the study's runs recorded no energy.
    """

    trials: int
    finished: int
    rows: tuple[PrunedRow, ...]
    by: tuple[str, ...]
    unit: str | None
    full_steps: float | None
    from_zero: bool
    energy_kwh: float
    emissions_kg: float
    fpo: int | None
    study_energy_kwh: float
    study_emissions_kg: float
    study_fpo: int | None
    saved_energy_kwh: float | None
    saved_emissions_kg: float | None
    saved_fpo: int | None
    estimated: int
    fpo_unknown: int = 0
    fpo_lower_bound: int = 0
    study_fpo_unknown: int = 0
    energy_unknown: int = 0
    energy_known: bool = True
    study_energy_unknown: int = 0

    @property
    def energy_share(self) -> float | None:
        """Their share of the study's energy; ``None`` when either is unknown, even in part."""
        if self.energy_unknown or self.study_energy_unknown or not self.study_energy_kwh > 0:
            return None
        return self.energy_kwh / self.study_energy_kwh

    @property
    def fpo_share(self) -> float | None:
        """Their share of the study's FPO; ``None`` when either is unknown, even in part."""
        if self.fpo is None or not self.study_fpo or self.fpo_unknown or self.study_fpo_unknown:
            return None
        return self.fpo / self.study_fpo

    @property
    def steps(self) -> list[float]:
        """The steps the pruned trials were stopped at (those that have one)."""
        return [r.step for r in self.rows if r.step is not None]

    def lines(self) -> list[str]:
        """The section's sentences: when, what it cost, what it saved (every number with a unit)."""
        n = len(self.rows)
        unit = self.unit or "step"
        units = unit if unit.endswith("s") else f"{unit}s"  # not "resourcess"
        by = f" by {', '.join(self.by)}" if self.by else ""
        out = [f"{n} of {count_of(self.trials, 'trial')} pruned{by}."]
        steps = self.steps
        if steps:
            median = statistics.median(steps)
            where = f"Stopped at {unit} {format_step(median)} (median"
            low, high = min(steps), max(steps)
            where += f"; {format_step(low)} to {format_step(high)})" if low < high else ")"
            if self.full_steps is not None:
                where += f"; a trial run to the end reached {unit} {format_step(self.full_steps)}"
            if self.from_zero:
                where += f" ({units} counted from 0)"
            if self.full_steps is not None and high > self.full_steps:
                # a search over the number of epochs: a trial stopped past every finished one
                further = sum(1 for s in steps if s > self.full_steps)
                where += (
                    f"; {count_of(further, 'pruned trial')} went further than any finished "
                    "one and counted as run to the end (no saving)"
                )
            out.append(where + ".")
        else:
            out.append("No pruned trial recorded or logged a step: when they stopped is unknown.")
        of_study = self.energy_share
        spent = f"They spent {unknown_for(format_energy(self.energy_kwh), self.energy_unknown)}"
        if of_study is not None:
            spent += f" ({format_share(of_study)} of the study's energy)"
        # "1 Wh (10%) and 2 g CO2-eq", "1 Wh (10%), 2 g CO2-eq and 3 MFPO (5% of its FPO)"
        emissions = unknown_for(format_emissions(self.emissions_kg), self.energy_unknown)
        if not self.energy_known:  # no meter: unknown, never "0 mWh and 0 mg CO2-eq"
            spent, emissions = "They spent an unknown energy and CO2-eq (no energy meter)", ""
        if not emissions:
            if self.fpo is not None:
                spent += f", and {fpo_text(self.fpo, self.fpo_unknown, self.fpo_lower_bound)}"
        elif self.fpo is None:
            spent += f" and {emissions}"
        else:  # "2 kFPO + unknown for 1 run": a run that counted none is no 0 in a sum
            spent += (
                f", {emissions} and {fpo_text(self.fpo, self.fpo_unknown, self.fpo_lower_bound)}"
            )
            if self.fpo_share is not None:
                spent += f" ({format_share(self.fpo_share)} of its FPO)"
        out.append(spent + ".")
        if self.saved_energy_kwh is None or self.saved_emissions_kg is None:
            if self.full_steps is None:
                out.append(
                    "No estimate of the saving: no finished trial logged a step to compare with."
                )
            return out
        # what the trials the estimate covers would have cost: those with a step
        scaled = [r for r in self.rows if r.scale is not None]
        would = sum(r.energy_kwh for r in scaled) + self.saved_energy_kwh
        # else no meter measured it (meters=[]), or not every pruned trial's: no energy saving
        measured = self.study_energy_kwh > 0 and not self.energy_unknown
        saved_parts, would_parts = [], []
        if measured:
            # a saving of 0 in the unit of what they spent, not "0 mWh" beside "22.9 µWh"
            saved_parts = [
                format_energy(
                    self.saved_energy_kwh,
                    unit_of=(would or None) if not self.saved_energy_kwh else None,
                ),
                format_emissions(
                    self.saved_emissions_kg,
                    unit_of=(self.emissions_kg or None) if not self.saved_emissions_kg else None,
                ),
            ]
            would_parts = [format_energy(would)]
        if self.saved_fpo is not None:
            saved_parts.append(format_fpo(self.saved_fpo))
            would_parts.append(format_fpo(sum(r.fpo or 0 for r in scaled) + self.saved_fpo))
        if not saved_parts:
            out.append(
                "No estimate of the saving: the study recorded no energy (no meter measured "
                "it) and its trials counted no FPO."
            )
            return out
        saved = and_list(saved_parts)  # "1 Wh, 2 g CO2-eq and 3 MFPO"
        would_text = " and ".join(would_parts)
        they = (
            "they"
            if self.estimated == n
            else f"the {self.estimated} of them with steps to scale by"
        )
        without = self.study_energy_kwh + self.saved_energy_kwh
        share = (  # no energy measured (meters=[]): no share of nothing
            f" ({format_share(self.saved_energy_kwh / without)} of the study's energy without "
            "pruning)"
            if without > 0 and not self.study_energy_unknown
            else ""
        )
        out.append(
            f"Run to the end, {they} would have cost about {would_text}: pruning saved "
            f"about {saved}{share}. An estimate: each pruned trial's "
            f"cost scaled by {units} of a full trial / {units} it ran."
        )
        return out

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and cells of the per-trial table (at most :data:`MAX_ROWS` rows)."""
        header = [
            "trial",
            f"stopped at ({self.unit or 'step'})",
            "by",
            "energy",
            "FPO",
            "energy run to the end (estimate)",
        ]
        rows = []
        for r in self.rows[:MAX_ROWS]:
            step = "-" if r.step is None else format_step(r.step)
            step += "" if r.step is None or r.step_recorded else " (logged)"
            full = "-" if r.scale is None else format_energy(r.energy_kwh * r.scale)
            fpo = "-" if r.fpo is None else format_fpo(r.fpo)
            rows.append([r.name, step, r.by or "-", format_energy(r.energy_kwh), fpo, full])
        return header, rows

    def more(self) -> str | None:
        """The line under a cut table, else ``None``."""
        hidden = len(self.rows) - MAX_ROWS
        return f"... and {hidden} more (report.json lists them all)" if hidden > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        steps = self.steps
        return {
            "trials": self.trials,
            "finished": self.finished,
            "pruned": len(self.rows),
            "by": list(self.by),
            "unit": self.unit,
            "steps": {
                "median": json_float(statistics.median(steps)) if steps else None,
                "min": json_float(min(steps)) if steps else None,
                "max": json_float(max(steps)) if steps else None,
                "full": json_float(self.full_steps),
                "from_zero": self.from_zero,
            },
            "energy_kwh": json_float(self.energy_kwh) if self.energy_known else None,
            "emissions_kg": json_float(self.emissions_kg) if self.energy_known else None,
            "energy_unknown": self.energy_unknown,
            "fpo": self.fpo,
            "energy_share": json_float(self.energy_share),
            "fpo_unknown": self.fpo_unknown,
            "fpo_share": json_float(self.fpo_share),
            "estimate": {
                "trials": self.estimated,
                # null: no estimate, or not every pruned trial's energy known (no meter)
                "saved_energy_kwh": None
                if self.energy_unknown
                else json_float(self.saved_energy_kwh),
                "saved_emissions_kg": None
                if self.energy_unknown
                else json_float(self.saved_emissions_kg),
                "saved_fpo": self.saved_fpo,
                "method": "each pruned trial's cost scaled by steps of a full trial / steps it ran",
            },
            "rows": [r.to_dict() for r in self.rows],
        }


def pruned_summary(
    trials: Sequence[RunRecord],
    rows: Mapping[str, Any],
    tag: PriceTag,
    counted: Mapping[str, tuple[float, float]] | None = None,
) -> PrunedSummary | None:
    """The study's pruned trials against its finished ones; ``None`` when none was pruned.

    Args:
        trials: the study's trials (role ``trial``).
        rows: the report's rows (:class:`~greenprint.report.RunRow`) by run id: a trial's
            cost with its parts' (not imported here: the report model imports this module).
        tag: the study's price tag (the pruned trials' cost, the study's).
        counted: a pruned trial's energy (kWh) and CO2-eq (kg) with its parts' as the price
            tag counts them, by run id (``RunForest.known_cost_sums``: trials that ran at the
            same time share what their sweep measured; NaN where unknown). Its row's cost,
            what it measured, where not given. What they spent, what each cost and what
            pruning saved are then read on one footing: the price tag's.
    """
    pruned = [r for r in trials if r.status == "pruned"]
    if not pruned:
        return None
    finished = [r for r in trials if r.status == "finished"]
    # each pruned run's logged steps, in one pass: its last (where it recorded none) and its
    # first (whether steps count from 0)
    bounds = [step_bounds((r,), r.provenance.get(STEP_METRIC_KEY) or None) for r in pruned]
    where = [pruned_at(r, b) for r, b in zip(pruned, bounds, strict=True)]
    # the furthest step of a finished trial, of the metric whose steps the pruned trials count
    # when they recorded one (Optuna's epochs, not a loss logged at each of 10,000s of global
    # steps); its recorded last_step where an integration recorded one, else the furthest of
    # its points read (a read keeps each metric's point of largest step: schema 6). One pass
    # over the points (100,000 trials of a search).
    metrics = {w.metric for w in where if w.metric is not None}
    metric = metrics.pop() if len(metrics) == 1 else None
    recorded_last = None
    recorded, unrecorded = [], []
    for r in finished:
        last = reported_last_step(r) if LAST_STEP_KEY in r.provenance else None
        if last is None:
            unrecorded.append(r)
        else:
            recorded.append(r)
            recorded_last = last if recorded_last is None else max(last, recorded_last)
    first_logged, logged_last = step_bounds(unrecorded, metric)
    finished_last = None if logged_last is None else float(logged_last)
    if recorded_last is not None and (finished_last is None or recorded_last > finished_last):
        finished_last = recorded_last
    fulls = [w.full_steps for w in where if w.full_steps is not None]
    if finished_last is not None:
        fulls.append(float(finished_last))
    full = max(fulls) if fulls else None
    units = {w.unit for w in where}
    unit = units.pop() if len(units) == 1 else None
    # steps counted from 0 (range(epochs)): a trial that logged or stopped at step 0; steps of
    # a recorded unit (Ray Tune's training_iteration, a halving search's resources) are not
    # the logged steps: only theirs say
    # ... say it where they logged steps: a run pruned (run.prune(step=0)) before the first
    # step of a study counted from 1 does not make every other trial's steps count from 0
    first = None
    if unit is None:
        pruned_firsts = [
            b[0] if w.metric == metric else step_bounds((r,), metric)[0]
            for r, w, b in zip(pruned, where, bounds, strict=True)
        ]
        starts = (first_logged, step_bounds(recorded, metric)[0], *pruned_firsts)
        first = min((f for f in starts if f is not None), default=None)
    if first is not None:
        from_zero = first == 0
    else:
        firsts = [w.step for w in where if w.step is not None]
        from_zero = bool(firsts) and min(firsts) == 0
    offset = 1.0 if from_zero else 0.0
    out_rows = []
    for run, w in zip(pruned, where, strict=True):
        row = rows.get(run.id)
        scale = None
        if w.step is not None and full is not None and w.step + offset > 0:
            scale = max((full + offset) / (w.step + offset), 1.0)
        cost = run if row is None else row
        energy_kwh, emissions_kg = (
            (cost.energy_kwh, cost.emissions_kg) if counted is None else counted[run.id]
        )
        out_rows.append(
            _make_row(
                run.id,
                run.name,
                w.step,
                w.recorded,
                w.by,
                energy_kwh,
                emissions_kg,
                cost.fpo,
                scale,
            )
        )
    counts: dict[str, int] = {}
    for w in where:
        if w.by:
            counts[w.by] = counts.get(w.by, 0) + 1
    spent = tag.by_status.get("pruned")
    energy = spent.energy_kwh if spent is not None else sum(r.energy_kwh for r in out_rows)
    emissions = spent.emissions_kg if spent is not None else sum(r.emissions_kg for r in out_rows)
    fpo = (spent.fpo if spent.fpo_known else None) if spent is not None else None
    scaled = [r for r in out_rows if r.scale is not None]
    saved_e = saved_c = None
    saved_f: int | None = None
    if scaled:
        saved_e = sum(r.energy_kwh * (r.scale - 1.0) for r in scaled if r.scale)
        saved_c = sum(r.emissions_kg * (r.scale - 1.0) for r in scaled if r.scale)
        if all(r.fpo is not None for r in scaled):
            saved_f = round(sum((r.fpo or 0) * ((r.scale or 1.0) - 1.0) for r in scaled))
    total = tag.total
    return PrunedSummary(
        trials=len(trials),
        finished=len(finished),
        rows=tuple(out_rows),
        by=tuple(sorted(counts, key=lambda b: (-counts[b], b))),
        unit=unit,
        full_steps=full,
        from_zero=from_zero,
        energy_kwh=energy,
        emissions_kg=emissions,
        fpo=fpo,
        study_energy_kwh=total.energy_kwh,
        study_emissions_kg=total.emissions_kg,
        study_fpo=total.fpo if total.fpo_known else None,
        saved_energy_kwh=saved_e,
        saved_emissions_kg=saved_c,
        saved_fpo=saved_f,
        estimated=len(scaled),
        fpo_unknown=spent.fpo_unknown if spent is not None and fpo is not None else 0,
        fpo_lower_bound=spent.fpo_lower_bound if spent is not None and fpo is not None else 0,
        study_fpo_unknown=total.fpo_unknown,
        energy_unknown=spent.energy_unknown if spent is not None else 0,
        energy_known=spent.energy_known if spent is not None else True,
        study_energy_unknown=total.energy_unknown,
    )


_EXPLAIN = (
    "Trials stopped early (by a pruner, a scheduler, a halving search): where they stopped, "
    "against the furthest finished trial, what they cost, and what running them to the end "
    "would have cost (docs/pruning.md)."
)


def markdown_section(
    summary: PrunedSummary | None,
    esc: Callable[[str], str],
    table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """The section as Markdown lines (``esc`` escapes text, ``table`` draws a table)."""
    if summary is None:
        return []
    out = ["## Pruned trials", "", esc(_EXPLAIN), ""]
    out += [esc(" ".join(summary.lines())), ""]
    header, rows = summary.table()
    out += table(header, rows)
    more = summary.more()
    out += ["", esc(more)] if more else []
    return [*out, ""]


def html_section(summary: PrunedSummary | None, esc: Callable[[str], str]) -> str:
    """The section as HTML (every user string escaped with ``esc``)."""
    if summary is None:
        return ""
    header, rows = summary.table()
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in rows
    )
    more = summary.more()
    return (
        '<section id="pruned"><h2>Pruned trials</h2>'
        f'<p class="muted">{esc(_EXPLAIN)}</p>'
        f"<p>{esc(' '.join(summary.lines()))}</p>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
        + (f'<p class="muted">{esc(more)}</p>' if more else "")
        + "</section>"
    )


def latex_section(summary: PrunedSummary | None, esc: Callable[[str], str]) -> list[str]:
    """The section as LaTeX lines (the sentences; the per-trial table is in the JSON)."""
    if summary is None:
        return []
    return ["\\section*{Pruned trials}", esc(_EXPLAIN), "", esc(" ".join(summary.lines())), ""]
