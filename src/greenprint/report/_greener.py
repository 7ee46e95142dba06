"""The greener section of a report: variants measured side by side, their front and break-even.

:func:`greener_results` reads the comparisons a study recorded (:func:`greenprint.greener.compare`
records a run with role ``greener`` and one child per variant); :func:`greener_figure` draws
score against energy per 1,000 inferences with the Pareto front; the ``*_section`` functions
render the tables for HTML, Markdown and LaTeX. The JSON report holds each result's
:meth:`~greenprint.greener.GreenerResult.to_dict` under ``"greener"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from greenprint._format import format_emissions, format_energy
from greenprint._records import RunRecord
from greenprint.greener._result import (
    PUE_CAVEAT,
    GreenerResult,
    break_even_text,
    noise_caveat,
    table_cells,
)
from greenprint.report._latex_fit import FIT, PAGE_PT, SMALL_EM, fit_names
from greenprint.report._model import Figure, Panel, Series

__all__ = [
    "greener_figure",
    "greener_results",
    "html_section",
    "latex_section",
    "markdown_section",
]

#: What the section says about its table, in every format.
EXPLAIN = (
    "Each variant was made from a copy of the model and measured the same way: score, median "
    "latency of one batch, throughput in inferences per second over the whole timed loop (a "
    "busy machine's pauses lower it, where the median latency leaves them out), energy and "
    "CO2-eq of 1,000 inferences (the tracked measurement loop), FPO of one inference (dense, "
    "and executed: zero weights skipped as a sparse kernel would, which the dense kernels "
    "timed here do not, int8 products as integer operations), parameters (nonzero), size of "
    "the saved state_dict. Break-even: after how "
    "many inferences the variant's extra training energy (distillation, fine-tuning) is paid "
    "back by its saving per inference against the baseline (never: it saves nothing). ◆ marks"
    " the Pareto front (score against energy per inference)."
)


def _explain(result: GreenerResult) -> str:
    """EXPLAIN, with the size of the batch the latency is of ('one batch of 128 inputs')."""
    sizes = {r.batch_size for r in result.rows if r.measured and r.batch_size > 0}
    if len(sizes) != 1:
        return EXPLAIN
    (size,) = sizes
    inputs = "input" if size == 1 else "inputs"
    return EXPLAIN.replace(
        "median latency of one batch,", f"median latency of one batch of {size:,} {inputs},"
    )


def greener_results(runs: Sequence[RunRecord]) -> tuple[GreenerResult, ...]:
    """The comparisons recorded among a study's runs, oldest first."""
    if not any(r.role == "greener" for r in runs):
        return ()
    return tuple(GreenerResult.from_records(runs))


def greener_figure(result: GreenerResult, index: int = 0) -> Figure | None:
    """Score against energy per 1,000 inferences, one point per variant, the front as a line."""
    points = [
        r
        for r in result.rows
        if r.measured and r.score is not None and r.energy_kwh_per_1000 is not None
    ]
    if not points:
        return None
    top_wh = max(r.energy_kwh_per_1000 or 0.0 for r in points) * 1e3
    scale, unit = next(
        ((f, u) for f, u in ((1.0, "Wh"), (1e-3, "mWh"), (1e-6, "µWh")) if top_wh >= f),
        (1e-9, "nWh"),
    )
    series = [
        Series(
            label=r.name,
            kind="scatter",
            x=(r.energy_kwh_per_1000 * 1e3 / scale,),  # type: ignore[operator]
            y=(r.score,),  # type: ignore[arg-type]
            run_ids=(r.run_id,) if r.run_id else (),
        )
        for r in points
    ]
    front = sorted((r for r in points if r.on_front), key=lambda r: r.energy_kwh_per_1000 or 0.0)
    if front:
        series.append(
            Series(
                label="Pareto front",
                kind="line",
                x=tuple(
                    r.energy_kwh_per_1000 * 1e3 / scale  # type: ignore[operator]
                    for r in front
                ),
                y=tuple(r.score for r in front),  # type: ignore[misc]
                role="front",
            )
        )
    better = "higher" if result.mode == "max" else "lower"
    return Figure(
        id="greener" if index == 0 else f"greener_{index + 1}",
        # the run, as its section's title says: a study of two comparisons had two figures
        # of one title
        title=f"{_title(result)}: score against energy per 1,000 inferences",
        caption=(
            f"Each point is a variant of the model ({result.metric}, {better} is better); the "
            "line joins the Pareto front: no other variant scores better for less energy."
        ),
        panels=(
            Panel(
                x_label=f"energy per 1,000 inferences ({unit})",
                y_label=result.metric,
                x_unit=unit,
                y_unit=result.metric,
                series=tuple(series),
            ),
        ),
        provenance=result.provenance,
        notes=result.notes,
    )


def _title(result: GreenerResult) -> str:
    return "Greener variants" + (f" (run {result.run_id[:8]})" if result.run_id else "")


def _details(result: GreenerResult) -> list[str]:
    lines = [PUE_CAVEAT] if any(r.measured for r in result.rows) else []
    lines += [c for c in (noise_caveat(result),) if c]
    for r in result.rows:
        if not r.measured:
            continue
        parts = [r.description]
        if r.fpo_note:
            parts.append(r.fpo_note)
        parts.extend(r.notes)
        if r.training_energy_kwh:
            parts.append(
                f"training {format_energy(r.training_energy_kwh)}, "
                f"{format_emissions(r.training_emissions_kg)} "
                f"(runs {', '.join(i[:8] for i in r.training_run_ids) or '-'}); "
                + (
                    "no saving per inference told apart from noise"
                    if r.within_noise
                    else "never paid back (no saving per inference)"
                    if r.break_even_inferences is None
                    else f"paid back after {break_even_text(r)} inferences"
                )
            )
        lines.append(f"{r.name}: " + "; ".join(p for p in parts if p))
    return lines


def markdown_section(
    results: Sequence[GreenerResult],
    esc: Callable[[str], str],
    table: Callable[[Sequence[str], Sequence[Sequence[str]]], list[str]],
) -> list[str]:
    """The section as Markdown lines (``esc`` escapes text, ``table`` draws a table)."""
    out: list[str] = []
    for result in results:
        header, rows = table_cells(result)
        out += [f"## {esc(_title(result))}", "", esc(_explain(result)), ""]
        out += table(header, rows)
        out += [""] + [f"- {esc(line)}" for line in _details(result)]
        out += ["", "Provenance:", ""] + [f"- {esc(p)}" for p in result.provenance]
        if result.notes:
            out += ["", "Notes:", ""] + [f"- {esc(n)}" for n in result.notes]
        out.append("")
    return out


def html_section(results: Sequence[GreenerResult], esc: Callable[[str], str]) -> str:
    """The section as HTML (every user string escaped with ``esc``)."""
    parts = []
    for k, result in enumerate(results):
        header, rows = table_cells(result)
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join(
            ('<tr class="final">' if r.on_front else "<tr>")  # the report's highlighted row
            + "".join(f"<td>{esc(c)}</td>" for c in cells)
            + "</tr>"
            for r, cells in zip(result.rows, rows, strict=True)
        )
        details = "".join(f"<li>{esc(line)}</li>" for line in _details(result))
        prov = "".join(f"<li>{esc(p)}</li>" for p in result.provenance)
        notes = "".join(f"<li>{esc(n)}</li>" for n in result.notes)
        parts.append(
            f'<section id="greener{"" if k == 0 else f"-{k + 1}"}"><h2>{esc(_title(result))}</h2>'
            f'<p class="muted">{esc(_explain(result))}</p>'
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
            f"<ul>{details}</ul><p><strong>Provenance.</strong></p>"
            f'<ul class="prov">{prov}</ul>'
            + (f'<p><strong>Notes.</strong></p><ul class="prov">{notes}</ul>' if notes else "")
            + "</section>"
        )
    return "\n".join(parts)


def _header_lines(header: str) -> tuple[str, str]:
    """``"IT energy (µWh/1000)"`` as ``("IT energy", "(µWh/1000)")``: the unit on its own line."""
    name, sep, unit = header.partition(" (")
    return (name, "(" + unit) if sep and header.endswith(")") else (header, "")


def latex_section(results: Sequence[GreenerResult], esc: Callable[[str], str]) -> list[str]:
    r"""The section as LaTeX lines (a ``table*`` per comparison, ``booktabs`` rules).

    Eight columns are wider than one column of a two-column paper at a readable size: the
    table spans both (``table*``, as the best trials do), ``\small``, each header's unit on a
    second line; long variant names wrap (:func:`fit_names`), never a smaller type.
    """
    out: list[str] = []
    keep = (0, 1, 4, 6, 7, 8, 9, 11)  # variant, score, energy, FPO, params, size, break-even
    for result in results:
        header, rows = table_cells(result)
        heads = [_header_lines(header[i].replace("◆ ", "")) for i in keep]
        top = [esc(h[0]) for h in heads]
        bottom = [esc(h[1]) for h in heads]
        names, cells = [], []
        for row in rows:
            shown = [row[i] for i in keep]
            name = shown[0].removeprefix("◆ ")
            lead = "$\\diamond$ " if name != shown[0] else ""  # on the Pareto front
            names.append((name, "", lead))
            cells.append([lead + esc(name), *(esc(c) for c in shown[1:])])
        align, cells = fit_names(
            [top, bottom],
            cells,
            "l" + "r" * (len(keep) - 1),
            names=names,
            stack=(4,),  # FPO executed: its int8 ops under it
            em_pt=SMALL_EM,
            sep_pt=4.0,
            line_pt=PAGE_PT,
        )
        out += [
            f"\\section*{{{esc(_title(result))}}}",
            esc(_explain(result).replace("◆", "DIAMOND")).replace("DIAMOND", "$\\diamond$"),
            "",
            "% table*: eight columns span both columns of a two-column paper",
            "\\begin{table*}[t]\\centering\\small\\setlength{\\tabcolsep}{4pt}",
            FIT + f"\\begin{{tabular}}{{@{{}}{align}@{{}}}}",
            "\\toprule",
            " & ".join(top) + " \\\\",
            " & ".join(bottom) + " \\\\",
            "\\midrule",
        ]
        out += [" & ".join(line) + " \\\\" for line in cells]
        out += ["\\bottomrule", "\\end{tabular}}", "\\end{table*}", ""]
        out += ["\\begin{itemize}"] + [f"\\item {esc(line)}" for line in _details(result)]
        out += [f"\\item provenance: {esc(p)}" for p in result.provenance]
        out += ["\\end{itemize}", ""]
    return out
