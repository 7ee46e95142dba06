"""A report in a notebook: ``Report._repr_html_`` shows the headline, price tag and best runs.

A fragment, not the standalone HTML document: the document's stylesheet would restyle the whole
notebook. Every user string is escaped (the cells go through :func:`greenprint._reprs.table_html`).
"""

from __future__ import annotations

from greenprint._reprs import esc, table_html
from greenprint.report._model import Report
from greenprint.report._tables import final_sentence, headline, price_tag_table, runs_table

__all__ = ["report_html"]

#: Runs listed in a notebook; the HTML report lists them all.
MAX_ROWS = 50


def report_html(report: Report) -> str:
    """The report as an HTML fragment: key figures, price tag, final run, the first runs."""
    header, rows = price_tag_table(report)
    run_header, run_rows = runs_table(report, params_limit=120)
    shown = run_rows[:MAX_ROWS]
    more = len(run_rows) - len(shown)
    parts = [
        f"<div><strong>greenprint report: {esc(report.study)}</strong>, ranked by "
        f"{esc(report.metric)} ({'higher' if report.mode == 'max' else 'lower'} is better)</div>",
        table_html(headline(report)),
        table_html(rows, header=header),
        f"<p>{esc(final_sentence(report))}</p>",
        table_html(shown, header=run_header, caption=f"runs ({len(run_rows)})"),
    ]
    if more:
        parts.append(f"<p>... and {more} more runs (the HTML report lists them all).</p>")
    if report.notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>")
    return "".join(parts)
