"""The HTML report: one self-contained file (inline SVG plots, inline CSS, no script, no URL)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from greenprint._format import count_of
from greenprint.report._efficiency import html_section as efficiency_section
from greenprint.report._escape import html_text as esc
from greenprint.report._failure_text import (
    failure_heading,
    failure_intro,
    failure_items,
    items_html,
)
from greenprint.report._failures import failures
from greenprint.report._greener import html_section
from greenprint.report._model import Figure, Report
from greenprint.report._plots import FigureRenderer
from greenprint.report._prediction import html_section as prediction_section
from greenprint.report._pruned import html_section as pruned_section
from greenprint.report._tables import (
    ROLE_MARKS_LEGEND,
    edh_sentence,
    final_sentence,
    headline,
    price_tag_role_table,
    price_tag_table,
    ranking_text,
    runs_table,
    tree_rows,
)
from greenprint.report._text import energy_provenance
from greenprint.report._whatif import html_section as whatif_section

__all__ = ["render_html"]

_CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d9dee3; --accent: #1f6f43; --bg: #ffffff; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0.2em 0; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 1.08em; margin: 0 0 6px; }
nav a { margin-right: 14px; color: var(--accent); }
.sub, .muted, figcaption { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .v { font-size: 1.35em; font-weight: 600; }
.card .k { color: var(--muted); font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.88em; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #f3f5f7; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--fg); }
tr.final td { background: #fff8e1; }
.scroll { overflow-x: auto; border: 1px solid var(--line); }
@media screen { .scroll.tall { max-height: 75vh; overflow: auto; } }
@media print {
  nav { display: none; }
  .scroll, .scroll.tall { max-height: none; overflow: visible; border: none; }
  th { position: static; }
  tr, figure, blockquote, pre { break-inside: avoid; }
  thead { display: table-header-group; }
  main { max-width: none; padding: 0; }
  body { font-size: 11px; }
  /* no scroll box on paper: a long name without a break point wraps, or the columns after it
     run off the page */
  td:first-child, #runs td:first-child { white-space: normal; overflow-wrap: anywhere; }
}
.status { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 0.85em; }
.s-finished { background: #e3f4e8; } .s-pruned { background: #eceff1; }
.s-failed { background: #fde2e1; } .s-interrupted { background: #fff1d6; }
.s-lost { background: #f3e5f5; } .s-running { background: #e3f2fd; }
figure { margin: 22px 0; padding: 14px; border: 1px solid var(--line); border-radius: 8px; }
figure svg { max-width: 100%; height: auto; display: block; }
.prov { font-size: 0.85em; margin: 6px 0 0; padding-left: 18px; }
.noplot { padding: 18px; background: #f6f7f9; border-radius: 6px; }
pre { background: #f6f7f9; padding: 12px; overflow: auto; font-size: 0.85em;
      white-space: pre-wrap; }
td:first-child { white-space: nowrap; }
td.params { font-size: 0.9em; color: var(--muted); overflow-wrap: anywhere; min-width: 10em; }
#runs td:first-child { white-space: normal; min-width: 12em; }
#greener th, #greener td { padding: 4px 5px; }
blockquote { margin: 0; padding: 10px 16px; border-left: 4px solid var(--accent);
             background: #f6faf7; }
ul.failures li { margin-bottom: 6px; }
ul.failures code { overflow-wrap: anywhere; }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85em; }
"""

# The runs table scrolls in a box of its own on screen above this many rows (never in print).
_SCROLL_ABOVE_ROWS = 200

_NUMERIC = {
    "runs",
    "trials",
    "energy",
    "CO2-eq",
    "FPO",
    "run time",
    "time",
    "examples",
    "energy share",
}


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, classes: Sequence[str] = ()
) -> str:
    """An HTML table: ``header``'s cells, then one row per ``rows`` item (cells escaped).

    Built a column at a time (the runs table of 100,000 runs is a million cells: 0.84 s one
    cell at a time): each column's cells are escaped in one call over their joined text, and
    each row's opening, cells and closing go into one list joined once. ``classes``: the
    class of each row, ``""`` for none (rows past its end have none).
    """
    numeric = [h in _NUMERIC for h in header]
    numeric[2] = numeric[2] or header[:2] == ["run", "status"]  # the score column
    head = "".join(
        f"<th{' class=num' if numeric[k] else ''}>{esc(h)}</th>" for k, h in enumerate(header)
    )
    count = len(rows)
    columns = list(zip(*rows, strict=True))  # every row has one cell per column
    if not columns:  # no rows (or rows of no cells)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{'<tr></tr>' * count}</tbody></table>"
    # (the text before each column's cell, its cells' texts), in order
    slots: list[tuple[str, list[str]]] = []
    close = ""  # the previous cell's end
    for j, column in enumerate(columns):
        texts = _escaped(column)
        if header[j] == "params":
            opening, end = '<td class="params">', "</td>"
        elif header[j] == "status":  # the status is in the cell's class: each cell whole
            cells = {t: f'<td><span class="status s-{t}">{t}</span></td>' for t in set(texts)}
            texts = list(map(cells.__getitem__, texts))
            opening, end = "", ""
        else:
            opening, end = f"<td{' class=num' if numeric[j] else ''}>", "</td>"
        slots.append((close + opening, texts))
        close = end
    stride = 2 * len(slots) + 1
    pieces: list[str] = [""] * (stride * count)
    for k, (before, texts) in enumerate(slots):
        pieces[2 * k :: stride] = [before] * count
        pieces[2 * k + 1 :: stride] = texts
    opened = ["<tr>" + slots[0][0]] * count
    for k, name in enumerate(classes[:count]):
        if name:
            opened[k] = f'<tr class="{name}">' + slots[0][0]
    pieces[0::stride] = opened
    pieces[stride - 1 :: stride] = [close + "</tr>"] * count
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(pieces)}</tbody></table>"


def _escaped(cells: Sequence[object]) -> list[str]:
    """Each cell's text escaped (``esc``), the column's in one call over their joined text.

    Escaping is character by character, so the joined text's pieces are the cells'; a cell
    holding the separator (a NUL) has its column escaped cell by cell. A column with nothing
    to escape (most: numbers and units) is returned as it is.
    """
    texts = cast("Sequence[str]", cells) if _STR >= set(map(type, cells)) else list(map(str, cells))
    joined = "\x00".join(texts)
    escaped = esc(joined)
    if escaped == joined:  # nothing to escape (numbers, units...): the cells as they are
        return list(texts)
    if joined.count("\x00") != len(texts) - 1:
        return list(map(esc, texts))
    return escaped.split("\x00")


_STR = frozenset({str})


def _lines(items: Sequence[str], css: str) -> str:
    if not items:
        return ""
    return f'<ul class="{css}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def _figure(figure: Figure, plots: FigureRenderer) -> str:
    if plots.available:
        body = plots.svg(figure)
    else:
        body = f'<p class="noplot">{esc(plots.unavailable or "")}</p>'
    provenance = _lines(list(figure.provenance), "prov")
    notes = _lines(list(figure.notes), "prov")
    return (
        f'<figure id="fig-{esc(figure.id)}"><h3>{esc(figure.title)}</h3>{body}'
        f"<figcaption><p>{esc(figure.caption)}</p>"
        f"<strong>Provenance</strong>{provenance}"
        + (f"<strong>Notes</strong>{notes}" if notes else "")
        + "</figcaption></figure>"
    )


def _failures_section(report: Report) -> tuple[str, str]:
    """Why runs failed, one item per error (its first line as code), and the nav's link text.

    ``("", "")`` when no run failed or was interrupted.
    """
    found = failures(report)
    if not found.runs:
        return "", ""
    heading = failure_heading(found)
    items, after = failure_items(found, with_params=True)
    lines = items_html(items, "<br>")
    return (
        f'<section id="failed"><h2>{esc(heading)}</h2>'
        f'<p class="muted">{esc(failure_intro(found))}</p><ul class="failures">{lines}</ul>'
        + (f'<p class="muted">{esc(after)}</p>' if after else "")
        + "</section>",
        heading.split(" (", 1)[0],
    )


def render_html(report: Report, plots: FigureRenderer) -> str:
    """The report as one HTML document (UTF-8), every user string escaped."""
    tag = report.price_tag
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(report.generated_at))
    cards = "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for k, v in headline(report)
    )
    header, rows = price_tag_table(report)
    status_table = _table(header, rows, classes=[""] * (len(rows) - 1) + ["total"])
    by_role = price_tag_role_table(report)
    role_table = (
        ""
        if by_role is None
        else "<p>The same total by role:</p>"
        + _table(*by_role, classes=[""] * (len(by_role[1]) - 1) + ["total"])
        # the row's cost beside the final run's: why they differ
        + ("" if tag.final_role is None else f"<p>{esc(tag.final_role.text)}</p>")
    )
    edh = edh_sentence(report)
    run_header, run_rows = runs_table(report, params_limit=300)
    run_classes = ["final" if r.is_final else "" for r in tree_rows(report.runs)]
    figures = "".join(_figure(f, plots) for f in report.figures)
    # Every row is in the page (prints and full-page captures show them all); only a long
    # table scrolls in its own box, and only on screen.
    scroll = "scroll tall" if len(report.runs) > _SCROLL_ABOVE_ROWS else "scroll"
    failed, heading = _failures_section(report)
    better = "higher" if report.mode == "max" else "lower"
    ranked = (
        f"ranked by <strong>{esc(report.metric)}</strong> ({better} is better)"
        if report.metric is not None
        else esc(ranking_text(report))
    )
    # the sections a study may lack, drawn first: the header's links name those it has
    pruned = pruned_section(report.pruning, esc)
    predictions = prediction_section(report.prediction, esc)
    whatif = whatif_section(report.whatif, esc)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>greenprint report: {esc(report.study)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>What did &ldquo;{esc(report.study)}&rdquo; cost?</h1>",
        f'<p class="sub">Study <strong>{esc(report.study)}</strong>: '
        f"{count_of(tag.total.trials, 'trial')}, "
        f"{ranked}. "
        f"Ledger {esc(report.ledger)}. Generated {esc(when)} by greenprint "
        f"{esc(report.greenprint_version)}.</p>",
        '<nav><a href="#price-tag">Price tag</a><a href="#figures">Figures</a>'
        + ('<a href="#efficiency">Efficiency</a>' if report.efficiency else "")
        + ('<a href="#greener">Greener variants</a>' if report.greener else "")
        + ('<a href="#pruned">Pruned trials</a>' if pruned else "")
        + ('<a href="#predictions">Cost predictions</a>' if predictions else "")
        + ('<a href="#whatif">What if</a>' if whatif else "")
        + (f'<a href="#failed">{esc(heading)}</a>' if heading else "")
        + '<a href="#runs">Runs</a><a href="#model-card">Model card</a>'
        '<a href="#compute">Compute statement</a>'
        + ('<a href="#notes">Notes</a>' if report.notes else "")
        + "</nav></header>",
        '<section id="price-tag"><h2>Price tag</h2>',
        f'<div class="cards">{cards}</div>',
        f"<p>{esc(final_sentence(report))}</p>",
        status_table,
        role_table,
        f"<p>{esc(edh)}</p>" if edh else "",
        "<p><strong>Provenance.</strong></p>",
        _lines(list(_provenance_lines(report)), "prov"),
        "</section>",
        f'<section id="figures"><h2>Figures</h2>{figures or "<p>No figure could be drawn.</p>"}',
        "</section>",
        efficiency_section(report.efficiency, esc),
        html_section(report.greener, esc),
        pruned,
        predictions,
        whatif,
        failed,
        f'<section id="runs"><h2>Runs ({len(report.runs)})</h2>',
        '<p class="muted">Every run of the study, each right under the run it ran in '
        "(top-level runs in start order); "
        f"{esc(ROLE_MARKS_LEGEND)}. A nested run's cost is part of its parent's"
        + (
            ", save a run measured apart from it (a job's node or rank that measured its own, "
            "a part given with set-role --part-of), whose cost adds to it.</p>"
            if any(row.contained is False for row in report.runs)
            else ".</p>"
        ),
        f'<div class="{scroll}">{_table(run_header, run_rows, classes=run_classes)}</div>',
        "</section>",
        '<section id="model-card"><h2>Model card</h2>',
        "<p>The Hugging Face <code>co2_eq_emissions</code> block (emissions in grams of "
        "CO2-eq, for the whole study):</p>",
        f"<pre>{esc(report.model_card.to_yaml())}</pre></section>",
        '<section id="compute"><h2>Compute statement</h2>',
        '<p class="muted">For a paper\'s compute-reporting checklist:</p>',
        f"<blockquote>{esc(report.compute_statement)}</blockquote></section>",
    ]
    if report.notes:
        parts.append(
            f'<section id="notes"><h2>Notes</h2>{_lines(list(report.notes), "")}</section>'
        )
    parts.append(
        "<footer>Every number on this page comes from the ledger; the JSON report holds them "
        "all.</footer></main></body></html>"
    )
    return "\n".join(p for p in parts if p) + "\n"


def _provenance_lines(report: Report) -> list[str]:
    return [
        *energy_provenance(report.price_tag.provenance),
        *(f"hardware: {h}" for h in report.hardware),
    ]
