"""HTML for notebooks: what a cell shows when its last line is a run, a price tag or a report.

Jupyter calls an object's ``_repr_html_``; :class:`~greenprint.Run`,
:class:`~greenprint.analysis.PriceTag` and :class:`~greenprint.report.Report` return
:func:`run_html`, :func:`price_tag_html` and :func:`report_html`. This module sits below all
three (it imports nothing of greenprint but the formatting and provenance helpers, and, when a
report is shown, the report's failed-runs grouping), so it types them as ``Any``. The
HTML is a fragment (no ``<style>`` that would restyle the notebook, no script, no URL), and every
string that comes from the user (names, studies, statuses, provenance, notes) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from greenprint._format import (
    count_of,
    format_duration,
    format_emissions,
    format_energy,
    format_fpo,
    fpo_none_counted,
    run_emissions_text,
    run_energy_text,
    run_time_text,
)
from greenprint._provenance import FPO_ASSUMPTIONS_KEY, is_fpo_lower_bound

__all__ = ["price_tag_html", "report_html", "run_html", "table_html"]

#: A report's failed-runs fragment for :func:`report_html`, set by :mod:`greenprint.report`
#: when it is imported (a Report exists only then): its grouping of errors lives there, and
#: this module, below every other, imports nothing of the report package.
failures_html: Callable[[Any], str] | None = None

#: Runs a report lists in a notebook; the HTML report lists them all.
MAX_REPORT_ROWS = 50

_TABLE = 'style="border-collapse:collapse;text-align:left"'
_CELL = 'style="padding:2px 10px 2px 0;text-align:left"'


def esc(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def table_html(
    rows: Iterable[Sequence[Any]], *, header: Sequence[str] | None = None, caption: str = ""
) -> str:
    """A plain table; every cell escaped."""
    parts = [f'<table class="greenprint" {_TABLE}>']
    if caption:
        parts.append(f'<caption style="text-align:left"><strong>{esc(caption)}</strong></caption>')
    if header:
        parts.append("<tr>" + "".join(f"<th {_CELL}>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td {_CELL}>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def run_html(run: Any) -> str:
    """A run's figures as an HTML table (live while it runs)."""
    rows: list[tuple[str, Any]] = [
        ("study", run.study),
        ("status", run.status),
        ("role", run.role or "(inferred when read)"),
        ("run id", run.id or "(not started)"),
        ("duration", format_duration(run.duration_s)),
        ("energy", format_energy(run.energy_kwh)),
        ("CO2-eq", format_emissions(run.emissions_kg)),
    ]
    if getattr(run, "_unmetered", False):  # meters=[]: unknown, never "0 mWh"
        rows[-2:] = [("energy", "unknown (no energy meter)"), ("CO2-eq", "unknown")]
    elif getattr(run, "_unsampled", False):  # started, its meters not read yet: not "0 mWh"
        rows[-2:] = [("energy", "not sampled yet"), ("CO2-eq", "not sampled yet")]
    for component, kwh in run.energy_by_component.items():
        # a component at 0 in the unit of the whole ('0 µWh' beside '1.2 µWh')
        zero_in = (run.energy_kwh or None) if kwh == 0 else None
        rows.append((f"energy: {component}", format_energy(kwh, unit_of=zero_in)))
    if run.fpo is not None:
        provenance = run.provenance
        least = "at least " if is_fpo_lower_bound(provenance) else ""  # said in provenance
        assumed = provenance.get(FPO_ASSUMPTIONS_KEY)  # FFTs counted as MKL computes them...
        shown = least + format_fpo(run.fpo) + (f" (assuming {assumed})" if assumed else "")
        rows.append(("FPO", shown))
    latest: dict[str, float] = {}
    for point in run.metrics:
        latest[point.name] = point.value
    rows.extend((f"metric: {name}", f"{value:.6g}") for name, value in latest.items())
    if run.params:
        rows.append(("params", _params_text(run.params)))
    rows.extend((f"provenance: {k}", v) for k, v in run.provenance.items())
    return table_html(rows, caption=f"greenprint run {run.name}")


def price_tag_html(tag: Any) -> str:
    """A price tag as HTML: totals, by status, by role, the final run, provenance, notes."""
    header = ["", "runs", "trials", "energy", "CO2-eq", "FPO", "run time"]
    by_status = [_totals_row(status, t) for status, t in tag.by_status.items()]
    by_status.append(_totals_row("total", tag.total))
    parts = [
        table_html(
            by_status,
            header=header,
            caption=f"greenprint price tag: {', '.join(tag.studies) or '(no runs)'}",
        )
    ]
    if tag.by_role:
        parts.append(
            table_html(
                [
                    _totals_row(role, t, uncounted=tag.uncounted_fpo_text(role))
                    for role, t in tag.by_role.items()
                ],
                header=["role", *header[1:]],
            )
        )
    lines = []
    if tag.final is not None:
        lines.append(f"final run {tag.final.label()}: {tag.final.describe()}")
    if tag.final_role is not None:  # the row of role final holds more than the final run
        lines.append(tag.final_role.text)
    share = tag.provenance.measured_share
    if share is not None:
        lines.append(f"energy measured by hardware counters: {share:.0%}")
    lines.extend(tag.notes)
    if lines:
        parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
    return "".join(parts)


def _totals_row(label: str, t: Any, *, uncounted: str | None = None) -> list[Any]:
    fpo = format_fpo(t.fpo) if t.fpo else "-"
    if uncounted:  # a sweep's 0 around trials that counted theirs: none counted, no count
        fpo = uncounted
    if not t.fpo_known:  # a set none of whose runs counted FPO: said of them all
        fpo = fpo_none_counted(t.runs)
    elif t.fpo_unknown:  # as the report's fpo_text: a count, never a silent zero
        runs = count_of(t.fpo_unknown, "run")
        fpo = f"FPO unknown for {runs}" if not t.fpo else f"{fpo} + unknown for {runs}"
    if t.fpo and t.fpo_lower_bound:  # counted with ops it could not count in full
        fpo = f"at least {fpo}"
    return [
        label,
        t.runs,
        t.trials,
        t.energy_text(),  # "10.3 µWh + unknown for 2 runs": a run with no meter is no 0
        t.emissions_text() if t.energy_known else "unknown",
        fpo,
        t.duration_text(),  # "1m 35s + unknown for 2 runs", "unknown": never a silent 0
    ]


def report_html(report: Any) -> str:
    """A report as an HTML fragment: its price tag, why runs failed, its first runs.

    Failed, interrupted and lost runs are listed as the HTML report lists them (each error's
    first line once, with the runs it ended), without that section's introduction; the runs
    table stars the final run.

    A fragment, not the standalone HTML document: that document's stylesheet would restyle the
    whole notebook.
    """
    better = "higher" if report.mode == "max" else "lower"
    ranking = (
        f", ranked by {esc(report.metric)} ({better} is better)" if report.metric else ", unranked"
    )
    parts = [
        f"<div><strong>greenprint report: {esc(report.study)}</strong>{ranking}</div>",
        price_tag_html(report.price_tag),
        "" if failures_html is None else failures_html(report),
    ]
    metric = report.metric or "score"
    header = ["run", "role", "status", metric, "energy", "CO2-eq", "time", "params"]
    rows = [
        [
            row.name + (" *" if row.is_final else ""),
            row.role,
            row.status,
            "-" if row.score is None else f"{row.score:.6g}",
            # NaN: no energy meter recorded it: "unknown", as the report's runs table
            run_energy_text(row.energy_kwh),
            run_emissions_text(row.emissions_kg),
            run_time_text(row.duration_s),  # "-": it recorded none
            _params_text(row.params, limit=120),
        ]
        for row in report.runs[:MAX_REPORT_ROWS]
    ]
    parts.append(table_html(rows, header=header, caption=f"runs ({len(report.runs)})"))
    if len(report.runs) > MAX_REPORT_ROWS:
        more = len(report.runs) - MAX_REPORT_ROWS
        parts.append(f"<p>... and {more} more runs (the HTML report lists them all).</p>")
    if report.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>")
    return "".join(parts)


def _params_text(params: Mapping[str, Any], limit: int = 300) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."
