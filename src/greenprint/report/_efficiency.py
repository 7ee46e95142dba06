"""The efficiency section of a report: score per unit of cost of the runs a reader compares.

Green AI (Schwartz et al.) asks a result to report its efficiency beside its score: accuracy
per GFLOP, per kWh. Every run's ratio is in the JSON report's runs (``score_per_kwh``,
``score_per_gflop``); this section puts the ones a reader compares side by side in every
format: the final run, the best trial, the finished trials on the Pareto front of score
against energy (no other finished trial scores higher for less energy) and the baselines.

A trial's energy and FPO are its own with its parts' (``RunForest.cost_sums``, as on the Pareto
plot and in :func:`greenprint.analysis.efficiencies`); the ratios are per a unit chosen for the
rows (``score per mWh``, ``score per GFPO``), so that they read as plain numbers. A score that is
better lower (a loss) per kWh means nothing: such a study has no section, and a note says why.
The ``*_section`` functions render it for HTML, Markdown and LaTeX; the JSON report holds
:meth:`EfficiencySection.to_dict` under ``"efficiency"``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import (
    ENERGY_UNITS,
    FPO_UNITS,
    and_list,
    format_fpo,
    run_energy_text,
)
from greenprint._provenance import FPO_KEY, is_fpo_lower_bound
from greenprint.analysis._common import RunForest, json_float, lower_is_better
from greenprint.analysis._efficiency import FPO_PER_GFLOP, score_per_cost
from greenprint.analysis._roles import StudyTrials
from greenprint.report._escape import html_section_table
from greenprint.report._latex_fit import COLUMN_PT, FIT, FOOTNOTESIZE_EM, fit_names

__all__ = [
    "MAX_FRONT_ROWS",
    "EfficiencyRow",
    "EfficiencySection",
    "efficiency_section",
    "html_section",
    "latex_section",
    "markdown_section",
]

#: At most this many trials of the Pareto front are rows (the cheapest first; the best trial,
#: the front's costliest, is a row too); the section says how many the front has (the plot
#: shows them all).
MAX_FRONT_ROWS = 10

#: Why a run is a row, in the order the rows are listed.
_WHY_ORDER = ("final run", "best trial", "Pareto front", "baseline")

#: A column's unit: mWh at the smallest (the LaTeX tables' units), FPO as the report writes them
_ENERGY_UNITS = tuple(u for u in ENERGY_UNITS if u[0] >= 1e-6)


@dataclass(frozen=True)
class EfficiencyRow:
    """One run of the section.

    Attributes:
        run_id: the run's id.
        name: its name.
        role: its role (``"trial"``, ``"final"``, ``"baseline"``...).
        why: why it is a row: ``"final run"``, ``"best trial"``, ``"Pareto front"``,
            ``"baseline"`` (one or more).
        metric: the metric its score is of (the final run's held-out score may be of another).
        score: its score (``None``: a final run that logged none; it has no ratio).
        energy_kwh: its IT energy with its parts', kWh; NaN (``null``) when unknown (no
            meter recorded it).
        fpo: its FPO with its parts' (``None``: unknown).
        fpo_lower_bound: its FPO are a lower bound (ops with no rule were run).
        score_per_kwh: score per kWh (``None``: no energy).
        score_per_gflop: score per GFLOP, 1e9 FPO (``None``: FPO unknown or 0).
    """

    run_id: str
    name: str
    role: str
    why: tuple[str, ...]
    metric: str
    score: float | None
    energy_kwh: float
    fpo: int | None
    fpo_lower_bound: bool
    score_per_kwh: float | None
    score_per_gflop: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "role": self.role,
            "why": list(self.why),
            "metric": self.metric,
            "score": json_float(self.score),
            "energy_kwh": json_float(self.energy_kwh),
            "fpo": self.fpo,
            "fpo_lower_bound": self.fpo_lower_bound,
            "score_per_kwh": json_float(self.score_per_kwh),
            "score_per_gflop": json_float(self.score_per_gflop),
        }


@dataclass(frozen=True)
class EfficiencySection:
    """Score per unit of cost of the runs a reader compares.

    Attributes:
        metric: the trials' metric (higher is better).
        rows: the runs, in the order of :data:`_WHY_ORDER` (the front by energy).
        energy_unit: the unit of the per-energy column (``"mWh"``: score per mWh).
        energy_unit_kwh: that unit in kWh (``1e-6`` for mWh).
        fpo_unit: the unit of the per-FPO column (``"GFPO"``).
        fpo_unit_fpo: that unit in FPO (``1e9`` for GFPO).
        front_size: finished trials on the Pareto front (:data:`MAX_FRONT_ROWS` of them rows).
    """

    metric: str
    rows: tuple[EfficiencyRow, ...]
    energy_unit: str
    energy_unit_kwh: float
    fpo_unit: str
    fpo_unit_fpo: float
    front_size: int = 0

    def per_energy(self, row: EfficiencyRow) -> float | None:
        """The row's score per :attr:`energy_unit`."""
        ratio = row.score_per_kwh
        return None if ratio is None else ratio * self.energy_unit_kwh

    def per_fpo(self, row: EfficiencyRow) -> float | None:
        """The row's score per :attr:`fpo_unit`."""
        ratio = row.score_per_gflop
        return None if ratio is None else ratio * self.fpo_unit_fpo / FPO_PER_GFLOP

    def caption(self) -> str:
        """What the section shows, in two sentences."""
        why = {w for r in self.rows for w in r.why}
        shown: list[str] = [f"the {w}" for w in ("final run", "best trial") if w in why]
        if "Pareto front" in why:
            on = "on the Pareto front of score against energy"
            listed = sum(1 for r in self.rows if "Pareto front" in r.why)
            if self.front_size > listed > MAX_FRONT_ROWS:  # the best trial, past the cheapest
                shown.append(
                    f"{listed} of the {self.front_size} finished trials {on} (the "
                    f"{MAX_FRONT_ROWS} cheapest and the best)"
                )
            elif self.front_size > MAX_FRONT_ROWS:
                shown.append(
                    f"the {MAX_FRONT_ROWS} cheapest of the {self.front_size} finished trials {on}"
                )
            elif self.front_size == 1:
                shown.append(f"the finished trial {on}")
            else:
                shown.append(f"the {self.front_size} finished trials {on}")
        baselines = sum(1 for r in self.rows if "baseline" in r.why)
        if baselines:
            shown.append("the baseline" if baselines == 1 else "the baselines")
        what = and_list(shown)
        other = sorted({r.metric for r in self.rows if r.metric != self.metric})
        scores = f"Scores are {self.metric}" + (
            f" ({', '.join(other)} for the final run, scored on its own split)" if other else ""
        )
        text = (
            f"Score per unit of cost (Green AI's efficiency) of {what}: a higher number is more "
            f"score for the same cost. {scores}; a run's energy and FPO are its own with its "
            "parts' (as on the Pareto plot)."
        )
        if any(r.score is None for r in self.rows):
            text += f" The final run logged no {self.metric} nor a score of its own: no ratio."
        if loss := next((r.metric for r in self.rows if r.metric in other), None):
            if lower_is_better(loss):  # a held-out loss: no efficiency
                text += f" The final run's {loss} is better lower: no ratio."
        _, cells = self.table()
        if any(c == "-" for row in cells for c in row[5:]):
            text += " A dash: no ratio (the cost is unknown or 0)."
        return text

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows (text, for every format)."""
        header = ["run", "why", "score", "energy", "FPO"]
        header += [f"score per {self.energy_unit}", f"score per {self.fpo_unit}"]
        rows = []
        for row in self.rows:
            score = "no score" if row.score is None else f"{row.score:.4g}"
            if row.score is not None and row.metric != self.metric:
                score += f" ({row.metric})"
            fpo = "unknown" if row.fpo is None else format_fpo(row.fpo)
            if row.fpo is not None and row.fpo_lower_bound:
                fpo = f"at least {fpo}"
            per_fpo = _ratio(self.per_fpo(row))
            if row.fpo_lower_bound and per_fpo != "-":
                per_fpo = f"at most {per_fpo}"  # FPO at least that: score per FPO at most
            rows.append(
                [
                    row.name,
                    ", ".join(row.why),
                    score,
                    # NaN: no meter recorded it: "unknown", as FPO, never "0 mWh"
                    run_energy_text(row.energy_kwh),
                    fpo,
                    _ratio(self.per_energy(row)),
                    per_fpo,
                ]
            )
        return header, rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ratios per kWh and per GFLOP; the units the tables use)."""
        return {
            "metric": self.metric,
            "energy_unit": self.energy_unit,
            "fpo_unit": self.fpo_unit,
            "front_size": self.front_size,
            "rows": [r.to_dict() for r in self.rows],
        }


def _ratio(value: float | None) -> str:
    """A ratio with 3 significant digits, thousands written out (``"1,410"``, ``"0.0219"``)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _unit(values: Sequence[float], units: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    """The smallest of ``units`` (largest first) that holds the median of positive ``values``.

    A score per that unit then reads about the score or more (a median run of 903 µWh:
    ``score per mWh``, 1.05 for 0.95), never ``0.000183``.
    """
    known = [v for v in values if math.isfinite(v) and v > 0]
    if not known:
        return units[len(units) // 2]
    middle = statistics.median(known)
    return next(((f, u) for f, u in reversed(units) if f >= middle), units[0])


def _counted_in_part(forest: RunForest, position: int) -> bool:
    """Whether the run at ``position``, or a run inside it, counted its FPO in part only."""
    stack = [position]
    while stack:
        p = stack.pop()
        run = forest.runs[p]
        if run.fpo is not None and FPO_KEY in run.provenance and is_fpo_lower_bound(run.provenance):
            return True
        stack.extend(forest.children[p])
    return False


def efficiency_section(
    forest: RunForest,
    trials: StudyTrials,
    *,
    metric: str | None,
    final_id: str | None,
    front_ids: Sequence[str],
    held_out: Sequence[tuple[str, float]] = (),
) -> tuple[EfficiencySection | None, str | None]:
    """The section of a study, or ``None`` and why not (``None`` too when there is no metric).

    Args:
        forest: the study's runs arranged by nesting.
        trials: its trials, roles and scores (``study_trials``).
        metric: the trials' metric.
        final_id: the final run's id.
        front_ids: the finished trials on the Pareto front of score against energy, cheapest
            first (the Pareto figure's front).
        held_out: the final run's own scores when it has none of ``metric`` (name, value).
    """
    if metric is None:
        return None, None
    if trials.mode == "min":
        return None, (
            f"no efficiency table: {metric} is better lower, and a loss, an error or a rank "
            "per kWh or per GFLOP is no efficiency"
        )
    index = forest.index
    scores = trials.scores
    negative = sum(1 for p in trials.positions if scores[p].score < 0)
    if negative:
        return None, (
            f"no efficiency table: {negative} of the trials' {metric} scores are below 0 (a "
            "negated error?), and a negative score per kWh or per GFLOP falls as the cost falls"
        )
    reasons: dict[int, list[str]] = {}

    def add(position: int | None, why: str) -> None:
        if position is not None:
            reasons.setdefault(position, []).append(why)

    energy = forest.known_cost_sums("energy_kwh")  # NaN: no meter recorded it (meters=[])
    final = None if final_id is None else index.get(final_id)
    add(final, "final run")
    # the finished trial with the highest score (a pruned trial's is an intermediate value of a
    # training stopped early, as Optuna's best_trial and the final-run rule leave it out); of
    # a tie, the final run when it is one of them (the best trial the report took as final),
    # else the least energy, then the earliest started (then the first listed), as the
    # final-run rule breaks it (analysis.choose_final): never a costlier twin of a front trial
    started = forest.column("started_at")

    def rank(p: int) -> tuple[float, bool, float, float]:
        kwh = energy[p]  # an unknown energy (NaN) after every known one
        return (scores[p].score, p == final, -kwh if kwh == kwh else -math.inf, -started[p])

    best = None
    for p in trials.positions:
        run, score = forest.runs[p], scores[p].score
        if run.status != "finished" or not math.isfinite(score):
            continue
        if best is None or rank(p) > rank(best):
            best = p
    add(best, "best trial")
    front = [index[i] for i in front_ids if i in index]
    for k, p in enumerate(front):  # the cheapest, and a row past them that is on the front
        if k < MAX_FRONT_ROWS or p in reasons:
            add(p, "Pareto front")
    for p in trials.roles.positions("baseline"):
        if math.isfinite(scores[p].score):
            add(p, "baseline")
    fpo_sums = forest.fpo_sums
    rows = []
    for p, why in reasons.items():
        run = forest.runs[p]
        value: float | None = scores[p].score
        of, ratio = metric, True
        if not math.isfinite(scores[p].score):
            if p != final:
                continue
            if held_out:  # its first held-out score that is better higher (not a test loss)
                usable = [s for s in held_out if not lower_is_better(s[0])]
                of, value = (usable or held_out)[0]
                ratio = bool(usable)  # a test loss alone: shown, with no ratio
            else:  # a final run with no score at all: a row that says so, no ratio
                value = None
        kwh = float(energy[p])
        fpo = int(fpo_sums.inclusive[p]) if fpo_sums.complete[p] else None
        rows.append(
            EfficiencyRow(
                run_id=run.id,
                name=run.name,
                role=trials.roles.roles[p],
                why=tuple(sorted(why, key=_WHY_ORDER.index)),
                metric=of,
                score=value,
                energy_kwh=kwh,
                fpo=fpo,
                fpo_lower_bound=fpo is not None and _counted_in_part(forest, p),
                score_per_kwh=score_per_cost(value, kwh) if ratio else None,
                score_per_gflop=score_per_cost(value, fpo / FPO_PER_GFLOP)
                if ratio and fpo is not None
                else None,
            )
        )
    if not rows:
        return None, None
    if all(r.score_per_kwh is None and r.score_per_gflop is None for r in rows):
        return None, (
            "no efficiency table: none of the runs it would list (final run, best trial, "
            "Pareto front, baselines) measured energy or counted FPO to divide its score by"
        )
    # final run, best trial, the front by energy (as front_ids), baselines; each once
    order = {run_id: k for k, run_id in enumerate(front_ids)}
    rows.sort(key=lambda r: (_WHY_ORDER.index(r.why[0]), order.get(r.run_id, 0)))
    energy_factor, energy_unit = _unit([r.energy_kwh for r in rows], _ENERGY_UNITS)
    fpo_factor, fpo_unit = _unit([float(r.fpo) for r in rows if r.fpo], FPO_UNITS)
    return (
        EfficiencySection(
            metric=metric,
            rows=tuple(rows),
            energy_unit=energy_unit,
            energy_unit_kwh=energy_factor,
            fpo_unit=fpo_unit,
            fpo_unit_fpo=fpo_factor,
            front_size=len(front),
        ),
        None,
    )


_TITLE = "Efficiency: score per unit of cost"


def html_section(section: EfficiencySection | None, esc: Callable[[str], str]) -> str:
    """The section as HTML (every string escaped with ``esc``)."""
    if section is None:
        return ""
    header, rows = section.table()
    # score, energy, FPO and the ratios right-aligned; the run and why it is listed are text
    table = html_section_table(header, rows, esc, numeric=lambda k: k >= 2)
    return (
        f'<section id="efficiency"><h2>{esc(_TITLE)}</h2>'
        f'<p class="muted">{esc(section.caption())}</p>{table}</section>'
    )


def markdown_section(
    section: EfficiencySection | None,
    esc: Callable[[str], str],
    table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """The section as Markdown lines (``table`` renders a header and rows)."""
    if section is None:
        return []
    header, rows = section.table()
    return [f"## {_TITLE}", "", esc(section.caption()), "", *table(header, rows), ""]


#: What each row is, as the LaTeX table marks it (the Markdown and HTML tables have a "why"
#: column, which one paper column has no room for).
#: Each: the row's reason, its mark, what the caption's key calls it.
_LATEX_MARKS = (
    ("final run", r"$\star$", "the final run"),
    ("best trial", r"$\ddagger$", "the best trial"),
    ("Pareto front", r"$\circ$", "a trial on the Pareto front"),
    ("baseline", r"$\dagger$", "a baseline"),
)


def _latex_legend(section: EfficiencySection) -> str:
    r"""The caption's key to the marks its rows have ("$\star$: the final run, ..."), or ""."""
    why = {w for row in section.rows for w in row.why}
    return ", ".join(f"{mark}: {named}" for w, mark, named in _LATEX_MARKS if w in why)


def latex_section(section: EfficiencySection | None, esc: Callable[[str], str]) -> list[str]:
    r"""The section as LaTeX lines: a compact ``booktabs`` table that fits one paper column.

    Its type stays ``\footnotesize`` (8 pt): long run names wrap (:func:`fit_names`), and the
    column per FPO is left out when none of its runs' FPO is known (a scikit-learn study: a
    column of dashes), the caption saying so.
    """
    if section is None:
        return []
    _, rows = section.table()
    # the table has no FPO column to say "at least": the caption says what a bound means
    bound = any(c[6].startswith("at most ") for c in rows)
    per_fpo = any(r.fpo is not None for r in section.rows)
    per = "per unit of energy and of FPO" if per_fpo else "per unit of energy (no run's FPO known)"
    header = ["run", "score", f"per {section.energy_unit}"]
    header += [f"per {section.fpo_unit}"] if per_fpo else []
    cells, names = [], []
    for row, text in zip(section.rows, rows, strict=True):
        mark = "".join(f" {symbol}" for why, symbol, _ in _LATEX_MARKS if why in row.why)
        names.append((text[0], mark))
        line = [esc(text[0]) + mark, esc(text[2]), esc(text[5])]
        if per_fpo:
            fpo = text[6]
            line.append(
                r"$\leq$" + esc(fpo.removeprefix("at most "))
                if fpo.startswith("at most ")
                else esc(fpo)
            )
        cells.append(line)
    head = [esc(h) for h in header]
    align, cells = fit_names(
        [head],
        cells,
        "l" + "r" * (len(header) - 1),
        names=names,
        stack=(1,),  # the score
        em_pt=FOOTNOTESIZE_EM,
        sep_pt=3.0,
        line_pt=COLUMN_PT,
    )
    out = [
        "\\begin{table}[t]\\centering\\footnotesize\\setlength{\\tabcolsep}{3pt}",
        "\\caption{"
        + esc(section.caption())
        + " "
        + "; ".join(filter(None, (_latex_legend(section), per)))
        + ("; $\\leq$: at most, as the run's FPO counted are a lower bound" if bound else "")
        + ".}",
        FIT + f"\\begin{{tabular}}{{@{{}}{align}@{{}}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    out += [" & ".join(line) + " \\\\" for line in cells]
    out += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
    return out
