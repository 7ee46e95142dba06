r"""The LaTeX report: booktabs tables and PDF figures, ready to paste into a paper.

``report.tex`` compiles on its own (``pdflatex report.tex`` beside the ``figures`` folder); the
part between the ``BEGIN PAPER`` and ``END PAPER`` comments can be pasted into a paper that loads
``booktabs`` and ``graphicx``. Every user string is escaped (:func:`latex_text`).

Layout for a two-column paper: the price tag is a ``table`` that fits one column (units in the
header, bare numbers below, ``\footnotesize``); the best trials (eight columns) are a
``table*`` spanning both columns, as are figures with side-by-side panels. No table is set
smaller than its type size to fit: long run names wrap in their column instead
(:mod:`greenprint.report._latex_fit`); a tabular is scaled down to the line only when what it
cannot wrap would still be wider (a metric name of 60 characters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from greenprint._format import count_out_of
from greenprint.analysis._pricetag import CostTotals
from greenprint.report._efficiency import latex_section as efficiency_section
from greenprint.report._escape import latex_text as esc
from greenprint.report._failure_text import failure_heading, failure_intro, failure_items
from greenprint.report._failures import failures
from greenprint.report._greener import latex_section
from greenprint.report._latex_fit import (
    COLUMN_PT,
    FIT,
    FOOTNOTESIZE_EM,
    PAGE_PT,
    SMALL_EM,
    fit_names,
)
from greenprint.report._markdown import FIGURE_DIR
from greenprint.report._model import Report, RunRow
from greenprint.report._plots import FigureRenderer, figure_file_name
from greenprint.report._prediction import latex_section as prediction_section
from greenprint.report._pruned import latex_section as pruned_section
from greenprint.report._tables import (
    edh_sentence,
    final_score_text,
    final_sentence,
    role_energy_shares,
    role_label,
    score_text,
    scored_by_parts,
    top_runs,
)
from greenprint.report._text import energy_provenance
from greenprint.report._whatif import latex_section as whatif_section

__all__ = ["render_latex"]

_TOP_RUNS = 10

# Column units: (factor to divide by, unit), largest first; a column takes the unit of its
# largest value, so its cells are bare numbers and the header carries the unit.
# A tiny study's columns go on to nWh and ng, as the text does (never "2.62e-06" mg).
_ENERGY_UNITS = (
    (1e3, "MWh"),
    (1.0, "kWh"),
    (1e-3, "Wh"),
    (1e-6, "mWh"),
    (1e-9, r"\textmu{}Wh"),
    (1e-12, "nWh"),
)
_MASS_UNITS = (
    (1e3, "t"),
    (1.0, "kg"),
    (1e-3, "g"),
    (1e-6, "mg"),
    (1e-9, r"\textmu{}g"),
    (1e-12, "ng"),
)
_FPO_UNITS = ((1e18, "EFPO"), (1e15, "PFPO"), (1e12, "TFPO"), (1e9, "GFPO"), (1e6, "MFPO"))
_TIME_UNITS = ((3600.0, "h"), (60.0, "min"), (1.0, "s"))

# A tabular wider than the column (or the page, for table*) is scaled down to fit it: a safety
# net only, as long names wrap (_latex_fit)
_FIT = FIT


def _label(text: str) -> str:
    r"""A \label key: letters, digits and hyphens only."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "-") else "-" for ch in text)


def _unit(
    values: Sequence[float | None], units: tuple[tuple[float, str], ...]
) -> tuple[float, str]:
    known = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    top = max(known, default=0.0)
    return next(((f, u) for f, u in units if top >= f), units[-1])


def _num(value: float | None, factor: float) -> str:
    """A bare number in a column's unit, 3 significant digits; ``-`` when unknown."""
    if value is None or not math.isfinite(value):
        return "-"
    scaled = value / factor
    if scaled == 0:
        return "0"
    if abs(scaled) >= 1000:
        return f"{scaled:,.0f}".replace(",", "{,}")
    return f"{scaled:.3g}"


def _tabular(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str,
    *,
    total: bool = False,
    units: Sequence[str] = (),
    names: Sequence[tuple[str, str]] | None = None,
    wrap: bool = False,
    stack: Sequence[int] = (),
    em_pt: float = FOOTNOTESIZE_EM,
    sep_pt: float = 3.0,
    line_pt: float = COLUMN_PT,
) -> list[str]:
    r"""A booktabs tabular scaled down only if wider than the line; cells are LaTeX already.

    ``units``, if given, is a second header line (the columns' units, under their names).
    ``wrap``: when the table would be wider than ``line_pt`` (an em of its type ``em_pt``, its
    ``\tabcolsep`` ``sep_pt``), its first column wraps, and the cells ``"0.96
    (test\_accuracy)"`` of the columns ``stack`` put the name under the score
    (:func:`fit_names`); ``names`` are that column's names (raw text) and marks (LaTeX), one
    per row, breakable anywhere a name may break (``None``: its cells, which break at spaces).
    """
    if wrap:
        align, rows = fit_names(
            [header, *([units] if units else [])],
            rows,
            align,
            names=names,
            stack=stack,
            em_pt=em_pt,
            sep_pt=sep_pt,
            line_pt=line_pt,
        )
    # one line: a line break inside the resizebox would add a space to its width
    lines = [_FIT + f"\\begin{{tabular}}{{@{{}}{align}@{{}}}}", "\\toprule"]
    lines.append(" & ".join(header) + r" \\")
    if units:
        lines.append(" & ".join(units) + r" \\")
    lines.append("\\midrule")
    for k, row in enumerate(rows):
        if total and k == len(rows) - 1:
            lines.append("\\midrule")
        lines.append(" & ".join(row) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    return lines


def _sentence(text: str) -> str:
    """``text`` with a capital first letter: a note or provenance line after a full stop.

    Unless it opens with a name, a first word not all letters (a greener variant's
    ``dynamic-int8:``, a run's ``trial-3``, ``val_loss``): a name keeps its spelling.
    """
    first = text.split(" ", 1)[0].rstrip(":;,")
    if not first.isalpha():
        return text
    return text[:1].upper() + text[1:]


def _at_least(rows: Sequence[Sequence[str]], total: CostTotals) -> str:
    """What a "≥" before an FPO or time cell of ``rows`` means, for a caption (``""``: none).

    ``rows`` are :func:`_price_tag_table`'s: FPO then time, the last two columns. Each reason
    is given only where a cell of its column has the mark.
    """
    fpo = any(row[-2].startswith(r"$\geq$") for row in rows)
    time = any(row[-1].startswith(r"$\geq$") for row in rows)
    energy = any(cell.startswith(r"$\geq$") for row in rows for cell in row[:-2])
    why = []
    if energy:  # runs with no energy meter (meters=[]): no 0 in the sums
        why.append("energy and CO$_2$-eq of some runs unknown (no energy meter), not counted")
    if fpo and total.fpo_unknown:
        why.append("FPO of some runs unknown, not counted")
    if fpo and total.fpo_lower_bound:
        why.append("some runs counted ops with no FPO rule or on complex tensors")
    if time:
        why.append("time of some runs unknown, not counted")
    if not why:
        return ""
    return r"; $\geq$: a lower bound (" + " and ".join(why) + ")"


def _price_tag_table(
    report: Report, *, by_role: bool = False
) -> tuple[list[str], list[str], list[list[str]]]:
    """The price tag by status (or by role) for one column.

    Units in the header, bare numbers below.
    """
    tag = report.price_tag
    if by_role:
        costs = [(role_label(r, tag), c) for r, c in tag.by_role.items()]
        costs.append(("total", tag.total))
    else:
        costs = [*tag.by_status.items(), ("total", tag.total)]
    energy = _unit([c.energy_kwh for _, c in costs], _ENERGY_UNITS)
    mass = _unit([c.emissions_kg for _, c in costs], _MASS_UNITS)
    fpo = _unit([float(c.fpo) for _, c in costs], _FPO_UNITS)
    time_unit = _unit([c.duration_s for _, c in costs], _TIME_UNITS)
    unknown = [(c.fpo_unknown and c.fpo == 0) or not c.fpo_known for _, c in costs]
    # no unit over a column that says "unknown" in every row (read "(MFPO)")
    fpo_unit = "" if all(unknown) else f"({esc(fpo[1])})"
    header = ["role" if by_role else "status", "runs", "trials", "energy", "CO$_2$-eq", "FPO"]
    header.append("time")
    # by role, only the trials' row has trials (and one column is narrow): no trials column
    keep = [k for k in range(len(header)) if not (by_role and header[k] == "trials")]
    units = ["", "", "", f"({energy[1]})", f"({mass[1]})", fpo_unit, f"({time_unit[1]})"]
    rows = []
    uncounted = set(tag.fpo_uncounted_roles) if by_role else set()
    labels = {role_label(r, tag): r for r in uncounted}
    for (status, cost), fpo_unknown in zip(costs, unknown, strict=True):
        if fpo_unknown:
            fpo_cell = "unknown"
        elif status in labels:  # a sweep's 0 around trials that counted theirs: no count
            fpo_cell = "none counted"
        else:
            at_least = cost.fpo_unknown or cost.fpo_lower_bound  # a lower bound
            fpo_cell = (r"$\geq$" if at_least else "") + _num(float(cost.fpo), fpo[0])
        rows.append(
            [
                esc(status),
                str(cost.runs),
                str(cost.trials),
                _energy_cell(cost, cost.energy_kwh, energy[0]),
                _energy_cell(cost, cost.emissions_kg, mass[0]),
                fpo_cell,
                _time_cell(cost, time_unit[0]),
            ]
        )
    return (
        [header[k] for k in keep],
        [units[k] for k in keep],
        [[row[k] for k in keep] for row in rows],
    )


def _energy_cell(cost: CostTotals, value: float, factor: float) -> str:
    r"""A set's energy or CO2-eq in its column's unit, as :func:`_time_cell` writes its time.

    ``"unknown"`` when no run of the set recorded energy (no meter: never ``"0"``);
    ``$\geq$`` before the sum of those that did when some did not.
    """
    if not cost.energy_known:
        return "unknown"
    return (r"$\geq$" if cost.energy_unknown else "") + _num(value, factor)


def _time_cell(cost: CostTotals, factor: float) -> str:
    r"""A set's run time in its column's unit: ``$\geq$`` when runs of unknown time are left out.

    ``"unknown"`` when no run of the set knows its time (not ``"-"`` nor ``"0"``); ``"-"`` for
    a set of known time 0 (a container's own time around its children).
    """
    if cost.duration_text() == "unknown":
        return "unknown"
    return (r"$\geq$" if cost.duration_unknown else "") + _num(cost.duration_s or None, factor)


def _role_shares(report: Report) -> str:
    r"""Each role's share of the energy, for the caption of the price tag by role.

    The Markdown and HTML tables give it a column; one more column made the LaTeX table wider
    than a paper's column (by 17 pt), so the caption gives them: ``"; shares of the energy:
    trials (the search) 56.5\%, baselines 4.1\%, ..."``, rounded to add up to 100 as in
    the other formats.
    """
    shares = role_energy_shares(report)[:-1]  # the roles', not the total's
    if not shares:
        return ""
    tag = report.price_tag
    return "; shares of the energy: " + ", ".join(
        f"{esc(role_label(role, tag))} {share:.1f}\\%"
        for role, share in zip(tag.by_role, shares, strict=True)
    )


def _runs_table(
    report: Report, rows: Sequence[RunRow]
) -> tuple[list[str], list[str], list[list[str]], list[tuple[str, str]]]:
    """Trials (and baselines) with units in the header; the final run starred.

    Also each row's name and mark, for a name column that wraps (:func:`_tabular`).
    """
    energy = _unit([r.energy_kwh for r in rows], _ENERGY_UNITS)
    mass = _unit([r.emissions_kg for r in rows], _MASS_UNITS)
    fpo = _unit([None if r.fpo is None else float(r.fpo) for r in rows], _FPO_UNITS)
    time_unit = _unit([r.duration_s for r in rows], _TIME_UNITS)
    header = ["run", "status", esc(report.metric or "score"), "energy", "CO$_2$-eq", "FPO"]
    header += ["time", "examples"]
    # no unit over a column none of whose runs knows its FPO (read "(MFPO)" over dashes)
    fpo_unit = "" if all(r.fpo is None for r in rows) else f"({esc(fpo[1])})"
    units = ["", "", "", f"({energy[1]})", f"({mass[1]})", fpo_unit]
    units += [f"({time_unit[1]})", ""]
    out, names = [], []
    for row in rows:
        mark = r" $\star$" if row.is_final else (r" $\dagger$" if row.role == "baseline" else "")
        names.append((row.name, mark))
        out.append(
            [
                esc(row.name) + mark,
                esc(row.status),
                esc(final_score_text(report, row) or score_text(row.score))
                + (r"$^{\circ}$" if scored_by_parts(row) else ""),
                _num(row.energy_kwh, energy[0]),
                _num(row.emissions_kg, mass[0]),
                "unknown"  # not counted, as the price tag writes it (not "-")
                if row.fpo is None
                else (r"$\geq$" if row.fpo_lower_bound else "")  # a lower bound
                + _num(float(row.fpo), fpo[0]),
                _num(row.duration_s or None, time_unit[0]),  # 0: none recorded
                "-" if row.dataset_size is None else f"{row.dataset_size:,}".replace(",", "{,}"),
            ]
        )
    return header, units, out, names


# An error's text is typeset in typewriter type, which TeX never breaks inside a word: a
# long path or identifier may break after this many characters.
_BREAK_EVERY = 30


def _breakable(text: str) -> str:
    r"""``text`` escaped, its words longer than :data:`_BREAK_EVERY` breakable (\allowbreak)."""
    words = []
    for at, word in enumerate(text.split(" ")):
        chunks = [word[k : k + _BREAK_EVERY] for k in range(0, len(word), _BREAK_EVERY)]
        words.append(
            r"\allowbreak{}".join(esc(c, first=not (at or k)) for k, c in enumerate(chunks))
        )
    return " ".join(words)


# Running text outside the paper (notes, the failed-runs section) is set ragged right, so a
# word never has to stretch a line; a word longer than this (an identifier, a path, a URL: no
# hyphenation point TeX knows) may break after _ / . = : or, failing those, every
# :data:`_BREAK_EVERY` characters, so none runs into the margin however long.
_LONG_WORD = 20
_BREAK_AFTER = frozenset("_/.=:")


def _loose(text: str) -> str:
    r"""``text`` escaped, its words longer than :data:`_LONG_WORD` breakable (\allowbreak).

    A break is allowed after each ``_``, ``/``, ``.``, ``=`` or ``:`` inside such a word (not
    at its end), and every :data:`_BREAK_EVERY` characters between those.
    """
    words = []
    for at, word in enumerate(text.split(" ")):
        if len(word) <= _LONG_WORD:
            words.append(esc(word, first=not at))
            continue
        chunks, start = [], 0
        for k, ch in enumerate(word):
            if k + 1 - start >= _BREAK_EVERY or (ch in _BREAK_AFTER and k + 1 < len(word)):
                chunks.append(word[start : k + 1])
                start = k + 1
        chunks.append(word[start:])
        pieces = [c for c in chunks if c]
        words.append(
            r"\allowbreak{}".join(esc(c, first=not (at or k)) for k, c in enumerate(pieces))
        )
    return " ".join(words)


def _failures_section(report: Report) -> list[str]:
    """Why runs failed, one item per error: outside the part pasted into a paper.

    No parameters: the LaTeX report shows none elsewhere.
    """
    found = failures(report)
    if not found.runs:
        return []
    out = [
        r"\section*{" + esc(failure_heading(found)) + "}",
        r"{\raggedright " + _loose(failure_intro(found)) + r"\par}",
        # ragged: typewriter spaces do not stretch, a justified line of them runs over
        r"\begin{itemize}\raggedright",
    ]
    items, after = failure_items(found, with_params=False)
    for error, note, runs in items:
        head = (
            r"\emph{" + esc(note) + "}" if error is None else r"\texttt{" + _breakable(error) + "}"
        )
        out.append(r"\item " + head + r"\newline " + _loose(runs))
    out.append(r"\end{itemize}")
    if after is not None:
        out.append(r"{\raggedright " + _loose(after) + r"\par}")
    return [*out, ""]


def render_latex(report: Report, plots: FigureRenderer) -> str:
    """The report as a LaTeX document; figures are ``figures/<id>.pdf`` (from write_report)."""
    study = esc(report.study)
    key = _label(report.study)[:40] or "study"
    tag = report.price_tag
    header, units, rows = _price_tag_table(report)
    out = [
        "% Generated by greenprint " + esc(report.greenprint_version) + "; compile with pdflatex.",
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        # T1 text in Computer Modern without cm-super is bitmap (Type 3) fonts whose "fi"
        # ligatures a PDF's text loses ('nal run'); Latin Modern is Type 1, where installed
        r"\IfFileExists{lmodern.sty}{\usepackage{lmodern}}{}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        "% ---- BEGIN PAPER: paste from here (needs \\usepackage{booktabs,graphicx}) ----",
        r"\section*{Compute and emissions}",
        # long words (a run's or a host's name, a hardware string) may break: no overfull line
        _loose(report.compute_statement),
        "",
        _loose(final_sentence(report)),
        "",
    ]
    edh = edh_sentence(report)  # Green AI's Cost = E x D x H, as Markdown and HTML give it
    if edh:
        out += [_loose(edh), ""]
    out += [
        "% one column of a two-column paper (scaled down only if it would not fit)",
        r"\begin{table}[t]",
        r"\centering\footnotesize\setlength{\tabcolsep}{3pt}",
        r"\caption{Price tag of the study ``" + study + "'' by run status (runs of any role, "
        r"and the trials among them): every trial counted, nested runs once"
        + _at_least(rows, tag.total)
        + ". "
        + esc(_sentence("; ".join(energy_provenance(tag.provenance))))
        + ".}",
        f"\\label{{tab:gp-price-tag-{key}}}",
    ]
    out += _tabular(header, rows, "l" + "r" * (len(header) - 1), total=True, units=units, wrap=True)
    out += [r"\end{table}", ""]
    if len(tag.by_role) > 1:  # the search alone is not the study: what each role cost
        role_header, role_units, role_rows = _price_tag_table(report, by_role=True)
        out += [
            r"\begin{table}[t]",
            r"\centering\footnotesize\setlength{\tabcolsep}{3pt}",
            r"\caption{The same price tag by role: the search's trials (with their parts), "
            r"and the runs around the search"
            + _role_shares(report)
            + _at_least(role_rows, tag.total)
            + "."
            + ("" if tag.final_role is None else " " + esc(tag.final_role.text))
            + "}",
            f"\\label{{tab:gp-price-tag-roles-{key}}}",
        ]
        out += _tabular(
            role_header,
            role_rows,
            "l" + "r" * (len(role_header) - 1),
            total=True,
            units=role_units,
            wrap=True,  # "trials (the search)" on two lines where a column is narrow
        )
        out += [r"\end{table}", ""]
    best = top_runs(report, _TOP_RUNS)
    better = "higher" if report.mode == "max" else "lower"  # said nowhere else in the LaTeX
    baselines = [r for r in report.runs if r.role == "baseline" and r not in best]
    if best or baselines:
        run_header, run_units, run_rows, run_names = _runs_table(report, [*best, *baselines])
        shown = sum(1 for r in best if r.is_trial)  # the final run is added when not a trial
        what = (
            ("The best trial" if shown == 1 else f"The {shown} best trials")
            + f" by {esc(report.metric or '')} out of {tag.total.trials} ({better} is better); "
            "$\\star$ marks the final run"
            if best
            else "Runs"
        )
        if best and not shown:  # only the final run (read "The 0 best trials ... out of 0")
            what = "The final run ($\\star$); " + (
                "the study has no trial"
                if not tag.total.trials
                else "the study's one trial has no score"
                if tag.total.trials == 1
                else f"none of the {tag.total.trials} trials has a score"
            )
        if best and shown and any(final_score_text(report, r) for r in best):
            what += " (its score is of its own held-out split, named in its row)"
        from_parts = sum(1 for r in report.runs if r.is_trial and r.score_source == "parts")
        if best and from_parts:  # what the Markdown and HTML notes say: fold means
            # "for 5 of 6 trials", "for all 8 trials" (a search's folds: not "8 of the 8")
            which = (
                "the trial, {} is the mean of its"
                if tag.total.trials == 1
                else count_out_of(from_parts, tag.total.trials, "trial")
                + ", {} is the mean of their"
            )
            what += (
                f"; for {which.format(esc(report.metric or ''))} parts' "
                "(e.g. cross-validation folds), marked $^{\\circ}$"
            )
        if baselines:
            what += "; $\\dagger$ marks a baseline (not a trial)"
        out += [
            "% table*: eight columns span both columns of a two-column paper",
            r"\begin{table*}[t]",
            r"\centering\small\setlength{\tabcolsep}{4pt}",
            r"\caption{" + what + ".}",
            f"\\label{{tab:gp-runs-{key}}}",
        ]
        out += _tabular(
            run_header,
            run_rows,
            "ll" + "r" * (len(run_header) - 2),
            units=run_units,
            wrap=True,
            names=run_names,
            stack=(2,),  # the score
            em_pt=SMALL_EM,
            sep_pt=4.0,
            line_pt=PAGE_PT,
        )
        out += [r"\end{table*}", ""]
    for figure in report.figures:
        caption = esc(figure.caption + " Provenance: " + "; ".join(figure.provenance) + ".")
        if figure.notes:
            caption += " " + esc(" ".join(_sentence(n.rstrip(".")) + "." for n in figure.notes))
        if plots.available:
            width = r"\linewidth"
            body = (
                f"\\includegraphics[width={width}]"
                f"{{{FIGURE_DIR}/{figure_file_name(figure, 'pdf')}}}"
            )
        else:
            body = r"\fbox{" + esc(plots.unavailable or "") + "}"
        # side-by-side panels span both columns of a two-column paper (figure*)
        env = "figure*" if len(figure.panels) > 1 else "figure"
        out += [
            f"\\begin{{{env}}}[t]",
            r"\centering",
            body,
            r"\caption{" + esc(figure.title) + ". " + caption + "}",
            f"\\label{{fig:gp-{_label(figure.id)}-{key}}}",
            f"\\end{{{env}}}",
            "",
        ]
    out += efficiency_section(report.efficiency, esc)
    out += latex_section(report.greener, esc)
    out += pruned_section(report.pruning, esc)
    out += prediction_section(report.prediction, esc)
    out += whatif_section(report.whatif, esc)
    out += ["% ---- END PAPER ----"]
    out += _failures_section(report)
    if report.notes:  # how the study was read (roles inferred, the metric, scores), as in
        # the Markdown and HTML reports; outside the part pasted into a paper
        # ragged, long words breakable: identifiers and paths never run into the margin
        out += [r"\section*{Notes}", r"\begin{itemize}\raggedright"]
        out += [r"\item " + _loose(note) for note in report.notes]
        out += [r"\end{itemize}", ""]
    out += [r"\end{document}", ""]
    return "\n".join(out)
