"""The prediction section of a report: how good the study's cost predictions were.

A run that reported its progress logged its predictions as it went and, if it finished with all
its progress reported, the relative error of its first prediction (see
:mod:`greenprint._prediction` and ``docs/budgets.md``). :func:`prediction_summary` gathers them:
per run, the fraction at which the first prediction was made and its errors for energy, CO2-eq
and time; across the study, the median and mean absolute error, the bias (mean signed error),
and how many of the logged intervals (before the last report, where the interval has closed on
the truth) held the run's final energy. The ``*_section`` functions render it for HTML, Markdown
and LaTeX; the JSON report holds :meth:`PredictionSummary.to_dict` under ``"prediction"``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from greenprint._format import count_of
from greenprint._prediction import DEFAULT_CONFIDENCE, QUANTITIES, metric_name
from greenprint._records import RunRecord
from greenprint.analysis._common import json_float
from greenprint.report._latex_fit import COLUMN_PT, FIT, FOOTNOTESIZE_EM, fit_names

__all__ = [
    "PredictionRow",
    "PredictionSummary",
    "html_section",
    "latex_section",
    "markdown_section",
    "prediction_summary",
]

#: Most runs listed in the section's table (the summary covers them all).
MAX_ROWS = 50

_PROGRESS = metric_name("progress")
_FIRST = metric_name("prediction_first_fraction")
_LOW = metric_name("predicted_energy_kwh_low")
_HIGH = metric_name("predicted_energy_kwh_high")
_ERRORS = {q: metric_name(f"prediction_error_{q}") for q in QUANTITIES}
#: A run predicted when it logged either (one with no energy meter predicts its time only).
_PREDICTED = frozenset(map(metric_name, ("predicted_energy_kwh", "predicted_duration_s")))


@dataclass(frozen=True)
class PredictionRow:
    """One run's first prediction against what it cost.

    Attributes:
        run_id: the run's id.
        name: the run's name.
        first_fraction: the part of the run done when the first prediction was made.
        errors: quantity (``energy_kwh``, ``emissions_kg``, ``duration_s``) -> relative error
            ``(predicted - actual) / actual`` of the first prediction (``None``: not recorded,
            as the energy and CO2-eq of a run with no energy meter, which it did not predict).
        intervals: energy intervals logged before the run's last report (0 for a run with no
            energy meter).
        covered: how many of them held the run's final energy.
    """

    run_id: str
    name: str
    first_fraction: float
    errors: dict[str, float | None]
    intervals: int
    covered: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "first_fraction": json_float(self.first_fraction),
            "errors": {q: None if e is None else json_float(e) for q, e in self.errors.items()},
            "intervals": self.intervals,
            "covered": self.covered,
        }


@dataclass(frozen=True)
class PredictionSummary:
    """How good a study's cost predictions were.

    Attributes:
        predicted_runs: runs that logged a prediction.
        rows: the runs that recorded the error of their first prediction, in start order.
        confidence: the probability the intervals were meant to hold the totals.
    """

    predicted_runs: int
    rows: tuple[PredictionRow, ...]
    confidence: float = DEFAULT_CONFIDENCE

    def absolute_errors(self, quantity: str) -> list[float]:
        """The absolute relative errors of the first predictions of ``quantity``."""
        return [abs(e) for r in self.rows if (e := r.errors.get(quantity)) is not None]

    def stats(self, quantity: str) -> dict[str, float | None]:
        """``median_abs``, ``mean_abs`` and ``bias`` (mean signed) relative error, or ``None``s."""
        signed = [e for r in self.rows if (e := r.errors.get(quantity)) is not None]
        if not signed:
            return {"median_abs": None, "mean_abs": None, "bias": None}
        absolute = [abs(e) for e in signed]
        return {
            "median_abs": statistics.median(absolute),
            "mean_abs": statistics.fmean(absolute),
            "bias": statistics.fmean(signed),
        }

    @property
    def intervals(self) -> int:
        """Energy intervals logged before the last report, over every row."""
        return sum(r.intervals for r in self.rows)

    @property
    def covered(self) -> int:
        """How many of them held their run's final energy."""
        return sum(r.covered for r in self.rows)

    def sentence(self) -> str:
        """The section's summary in one paragraph."""
        n = len(self.rows)
        one = self.predicted_runs == 1
        text = (
            f"{count_of(self.predicted_runs, 'run')} predicted {'its' if one else 'their'} cost "
            f"from {'its' if one else 'their'} progress; {n} finished with all of it reported "
            f"and recorded the error of {'its' if n == 1 else 'their'} first prediction"
        )
        if not n:
            return text + "."
        at = statistics.median(r.first_fraction for r in self.rows)
        parts = []
        for quantity, word in (("energy_kwh", "energy"), ("duration_s", "time")):
            s = self.stats(quantity)
            if s["median_abs"] is not None and s["mean_abs"] is not None and s["bias"] is not None:
                parts.append(
                    f"{word} by a median {_percent(s['median_abs'])} (mean "
                    f"{_percent(s['mean_abs'])}, bias {_percent(s['bias'], sign=True)})"
                )
        text += f". First predictions, made at a median {_percent(at)} of a run, were off: "
        text += "; ".join(parts) + "."
        if self.intervals:
            share = _percent(self.covered / self.intervals)
            text += (
                f" {self.covered} of {self.intervals} {self.confidence:.0%} intervals logged "
                f"before a run's end held its final energy ({share})."
            )
        return text

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and cells of the per-run table (at most :data:`MAX_ROWS` rows)."""
        header = ["run", "first prediction at", "energy error", "CO2-eq error", "time error"]
        header.append("intervals holding the energy")
        rows = []
        for r in self.rows[:MAX_ROWS]:
            cells = [r.name, _percent(r.first_fraction)]
            cells += [
                "-" if (e := r.errors.get(q)) is None else _percent(e, sign=True)
                for q in QUANTITIES
            ]
            cells.append(f"{r.covered} of {r.intervals}" if r.intervals else "-")
            rows.append(cells)
        return header, rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the counts, the statistics per quantity and every row."""
        return {
            "predicted_runs": self.predicted_runs,
            "confidence": self.confidence,
            "intervals": self.intervals,
            "covered": self.covered,
            "stats": {
                q: {k: None if v is None else json_float(v) for k, v in self.stats(q).items()}
                for q in QUANTITIES
            },
            "rows": [r.to_dict() for r in self.rows],
        }


def prediction_summary(runs: Sequence[RunRecord]) -> PredictionSummary | None:
    """How good the predictions of a study's runs were; ``None`` when no run predicted."""
    predicted = 0
    rows = []
    for run in runs:
        for point in run.metrics:  # a loop, not any(): 100,000 runs of a search predict none
            if point.name in _PREDICTED:
                break
        else:
            continue
        predicted += 1
        first = run.metric(_FIRST)
        if first is None:
            continue
        errors = {q: run.metric(name) for q, name in _ERRORS.items()}
        intervals, covered = _coverage(run)
        rows.append(PredictionRow(run.id, run.name, first, errors, intervals, covered))
    if not predicted:
        return None
    return PredictionSummary(predicted, tuple(rows))


def _coverage(run: RunRecord) -> tuple[int, int]:
    """Energy intervals logged before the run's last report, and how many held its energy.

    None for a run with no energy meter (:attr:`~greenprint.RunRecord.energy_recorded`
    false): its energy is unknown, so no interval held it. Such a run predicts its time only;
    until 2026-12-06 it logged 0-wide energy intervals at 0 kWh, which ledgers still hold and
    this read as holding its "0 kWh" (3 of 3).
    """
    if not run.energy_recorded:
        return 0, 0
    lows: dict[Any, float] = {}
    highs: dict[Any, float] = {}
    progress: dict[Any, float] = {}
    for p in run.metrics:
        key = (p.step, p.time)
        if p.name == _LOW:
            lows[key] = p.value
        elif p.name == _HIGH:
            highs[key] = p.value
        elif p.name == _PROGRESS:
            progress[key] = p.value
    intervals = covered = 0
    actual = run.energy_kwh
    for key, low in lows.items():
        high = highs.get(key)
        if high is None or progress.get(key, 1.0) >= 1.0 or not math.isfinite(low + high):
            continue
        intervals += 1
        covered += low <= actual <= high
    return intervals, covered


def _percent(value: float, *, sign: bool = False) -> str:
    return f"{value:+.1%}" if sign else f"{value:.1%}"


_EXPLAIN = (
    "A run that reports its progress (run.progress, or run.expect and run.step) predicts its "
    "total energy, CO2-eq and time with an interval that narrows as it goes; a run that "
    "finishes with all its progress reported records the relative error (predicted - actual) "
    "/ actual of its first prediction. Method and simulated coverage: docs/budgets.md."
)


def _more(summary: PredictionSummary) -> str | None:
    hidden = len(summary.rows) - MAX_ROWS
    more = count_of(hidden, "more run")
    return f"... and {more} (report.json lists them all)" if hidden > 0 else None


def markdown_section(
    summary: PredictionSummary | None,
    esc: Callable[[str], str],
    table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """The section as Markdown lines (``esc`` escapes text, ``table`` draws a table)."""
    if summary is None:
        return []
    out = ["## Cost predictions", "", esc(_EXPLAIN), "", esc(summary.sentence()), ""]
    if summary.rows:
        header, rows = summary.table()
        out += table(header, rows)
        more = _more(summary)
        out += ["", esc(more)] if more else []
        out.append("")
    return out


def html_section(summary: PredictionSummary | None, esc: Callable[[str], str]) -> str:
    """The section as HTML (every user string escaped with ``esc``)."""
    if summary is None:
        return ""
    parts = [
        '<section id="predictions"><h2>Cost predictions</h2>',
        f'<p class="muted">{esc(_EXPLAIN)}</p>',
        f"<p>{esc(summary.sentence())}</p>",
    ]
    if summary.rows:
        header, rows = summary.table()
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>" for cells in rows
        )
        parts.append(
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )
        more = _more(summary)
        if more:
            parts.append(f'<p class="muted">{esc(more)}</p>')
    parts.append("</section>")
    return "".join(parts)


# The LaTeX table's header lines: two, or three where long run names need the room
_HEADS = (
    (
        ("run", "first", "energy", "CO2-eq", "time", "intervals"),
        ("", "predicted at", "error", "error", "error", "held energy"),
    ),
    (
        ("run", "first", "energy", "CO2-eq", "time", "intervals"),
        ("", "predicted", "error", "error", "error", "held"),
        ("", "at", "", "", "", "energy"),
    ),
)


def latex_section(summary: PredictionSummary | None, esc: Callable[[str], str]) -> list[str]:
    """The section as LaTeX lines (a ``booktabs`` table)."""
    if summary is None:
        return []
    out = ["\\section*{Cost predictions}", esc(_EXPLAIN), "", esc(summary.sentence()), ""]
    if summary.rows:
        _, rows = summary.table()
        # two header lines and a box no wider than the column: one column of a two-column paper;
        # long run names wrap in their column (never a smaller type than \footnotesize), and
        # where the numbers leave them too little room, the headers take three lines
        cells = [[esc(c) for c in row] for row in rows]
        names = [(row[0], "") for row in rows]
        for heads in _HEADS:
            align, body = fit_names(
                [[esc(h) for h in line] for line in heads],
                cells,
                "l" + "r" * (len(heads[0]) - 1),
                names=names,
                em_pt=FOOTNOTESIZE_EM,
                sep_pt=2.0,
                line_pt=COLUMN_PT,
            )
            if not align.startswith("p{") or "linewidth" in align:  # room enough for names
                break
        out += [
            "\\begin{table}[h]\\centering\\footnotesize\\setlength{\\tabcolsep}{2pt}",
            FIT + f"\\begin{{tabular}}{{@{{}}{align}@{{}}}}",
            "\\toprule",
            *(" & ".join(esc(h) for h in line) + " \\\\" for line in heads),
            "\\midrule",
        ]
        out += [" & ".join(cells) + " \\\\" for cells in body]
        out += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
        more = _more(summary)
        out += [esc(more), ""] if more else []
    return out
