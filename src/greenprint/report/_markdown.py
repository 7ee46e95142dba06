"""The Markdown report: CommonMark/GitHub tables, with the plots as PNG files beside it."""

from __future__ import annotations

import time
from collections.abc import Sequence

from greenprint._format import count_of
from greenprint.report._efficiency import markdown_section as efficiency_section
from greenprint.report._escape import markdown_text as esc
from greenprint.report._failure_text import failure_heading, failure_intro, failure_items
from greenprint.report._failures import failures
from greenprint.report._greener import markdown_section
from greenprint.report._model import Report
from greenprint.report._plots import PLOTS_HINT, FigureRenderer, figure_file_name
from greenprint.report._prediction import markdown_section as prediction_section
from greenprint.report._pruned import markdown_section as pruned_section
from greenprint.report._tables import (
    ROLE_MARKS_LEGEND,
    edh_sentence,
    final_sentence,
    headline,
    price_tag_role_table,
    price_tag_table,
    ranking_text,
    runs_table,
)
from greenprint.report._text import energy_provenance
from greenprint.report._whatif import markdown_section as whatif_section

__all__ = ["FIGURE_DIR", "render_markdown"]

#: Folder, beside the report, that holds its figure files.
FIGURE_DIR = "figures"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)
    return lines


def _no_plot(reason: str) -> str:
    if reason == PLOTS_HINT:
        return "*Plots need matplotlib:* `pip install 'greenprint[report]'`"
    return f"*{esc(reason)}*"


def _failures_section(report: Report) -> list[str]:
    """Why runs failed: one item per error (its first line in bold), then the runs it ended."""
    found = failures(report)
    if not found.runs:
        return []
    out = [f"## {failure_heading(found)}", "", esc(failure_intro(found)), ""]
    items, after = failure_items(found)
    for error, note, runs in items:
        head = f"*{esc(note)}*" if error is None else f"**{esc(error)}**"
        out.append(f"- {head}: {esc(runs)}")
    if after is not None:
        out += ["", esc(after)]
    return [*out, ""]


def render_markdown(report: Report, plots: FigureRenderer) -> str:
    """The report as Markdown; figures are ``figures/<id>.png`` (written by write_report)."""
    tag = report.price_tag
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(report.generated_at))
    better = "higher" if report.mode == "max" else "lower"
    ranked = (
        f"ranked by **{esc(report.metric)}** ({better} is better)"
        if report.metric is not None
        else esc(ranking_text(report))
    )
    ledger = report.ledger.replace("`", "")
    out = [
        f"# What did “{esc(report.study)}” cost?",
        "",
        f"Study **{esc(report.study)}**: {count_of(tag.total.trials, 'trial')}, {ranked}. "
        f"Ledger `{ledger}`. "
        f"Generated {when} by greenprint {esc(report.greenprint_version)}.",
        "",
        "## Price tag",
        "",
    ]
    out.extend(f"- **{esc(k)}**: {esc(v)}" for k, v in headline(report))
    out += ["", esc(final_sentence(report)), ""]
    header, rows = price_tag_table(report)
    out += _table(header, rows)
    by_role = price_tag_role_table(report)
    if by_role is not None:
        out += ["", "The same total by role:", ""] + _table(*by_role)
        if tag.final_role is not None:  # the row's cost beside the final run's: why they differ
            out += ["", esc(tag.final_role.text)]
    edh = edh_sentence(report)
    if edh:
        out += ["", esc(edh)]
    out += ["", "Provenance:", ""]
    out += [f"- {esc(line)}" for line in energy_provenance(tag.provenance)]
    out += [f"- hardware: {esc(h)}" for h in report.hardware]
    out += ["", "## Figures", ""]
    if not report.figures:
        out += ["No figure could be drawn.", ""]
    for figure in report.figures:
        out += [f"### {esc(figure.title)}", ""]
        if plots.available:
            out.append(f"![{esc(figure.title)}]({FIGURE_DIR}/{figure_file_name(figure, 'png')})")
        else:
            out.append(_no_plot(plots.unavailable or ""))
        out += ["", esc(figure.caption), "", "Provenance:", ""]
        out += [f"- {esc(line)}" for line in figure.provenance]
        if figure.notes:
            out += ["", "Notes:", ""] + [f"- {esc(n)}" for n in figure.notes]
        out.append("")
    out += efficiency_section(report.efficiency, esc, _table)
    out += markdown_section(report.greener, esc, _table)
    out += pruned_section(report.pruning, esc, _table)
    out += prediction_section(report.prediction, esc, _table)
    out += whatif_section(report.whatif, esc, _table)
    out += _failures_section(report)
    out += [
        f"## Runs ({len(report.runs)})",
        "",
        ROLE_MARKS_LEGEND + ".",
        "",
    ]
    run_header, run_rows = runs_table(report)
    out += _table(run_header, run_rows)
    out += [
        "",
        "## Model card",
        "",
        "The Hugging Face `co2_eq_emissions` block (grams of CO2-eq, whole study):",
        "",
        "```yaml",
        report.model_card.to_yaml().rstrip("\n").replace("```", "'''"),
        "```",
        "",
        "## Compute statement",
        "",
        "> " + esc(report.compute_statement),
        "",
    ]
    if report.notes:
        out += ["## Notes", ""] + [f"- {esc(n)}" for n in report.notes] + [""]
    out.append("*Every number comes from the ledger; `report.json` holds them all.*")
    return "\n".join(out) + "\n"
