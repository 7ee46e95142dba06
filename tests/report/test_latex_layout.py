"""The LaTeX report's paper part in a two-column paper: the tables fit, compiled by pdflatex.

The part between ``BEGIN PAPER`` and ``END PAPER`` is pasted into a ``twocolumn`` article (as a
user would) and compiled; pdflatex's log must have no overfull box in any alignment (a table
wider than its column or page). The tables are checked once as shipped and once without the
scale-to-fit guard, so that the layout itself fits and the guard is only a safety net.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from greenprint.report import build_report, write_report
from greenprint.report._latex import _FIT

from .conftest import make_study

PREAMBLE = (
    "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
    "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
    "\\section{Results}\nSome text of the paper around the tables.\n"
)


def _paper_part(tex: str) -> str:
    start = tex.index("BEGIN PAPER")
    start = tex.index("\n", start) + 1
    return tex[start : tex.index("% ---- END PAPER")]


def _overfull(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "Overfull" in line)


def _compile(pdflatex: str, work, body: str) -> str:
    (work / "paper.tex").write_text(PREAMBLE + body + "\n\\end{document}\n", encoding="utf-8")
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return (work / "paper.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("hostile", [False, True])
def test_tables_fit_a_two_column_paper(tmp_path, require_component, hostile):
    pdflatex = shutil.which("pdflatex")
    require_component(
        pdflatex is not None,
        "pdflatex is not installed (apt-get install texlive-latex-recommended)",
    )
    assert pdflatex is not None
    make_study(tmp_path / "ledger.db", hostile=hostile)
    report = build_report(tmp_path / "ledger.db")
    out = tmp_path / "out"
    tex = write_report(report, out, "latex")["latex"].read_text(encoding="utf-8")
    body = _paper_part(tex)
    # the price tag in one column, the eight-column runs table across both
    assert "\\begin{table}[t]" in body and "\\begin{table*}[t]" in body
    assert "% table*: eight columns span both columns" in body
    work = tmp_path / "paper"
    shutil.copytree(out, work)
    as_shipped = _compile(pdflatex, work, body)
    assert not re.search(r"Overfull \\hbox .* in alignment", as_shipped)
    if hostile:
        return  # 20-character hostile names may need the guard; the plain study must not
    assert "Overfull \\hbox" not in as_shipped, _overfull(as_shipped)
    unguarded = body.replace(_FIT, "").replace("\\end{tabular}}", "\\end{tabular}")
    assert "resizebox" not in unguarded
    log = _compile(pdflatex, work, unguarded)
    assert "Overfull \\hbox" not in log, _overfull(log)
    # and the price tag's natural width is within one column (measured, not only warned)
    measure = (
        "\\newsavebox\\gpbox\n\\begin{lrbox}{\\gpbox}"
        + unguarded[unguarded.index("\\begin{tabular}") : unguarded.index("\\end{tabular}") + 14]
        + "\\end{lrbox}\n\\typeout{GPWIDTH \\the\\wd\\gpbox\\space COLUMN \\the\\columnwidth}\n"
    )
    log = _compile(pdflatex, work, "{\\footnotesize\\setlength{\\tabcolsep}{3pt}" + measure + "}")
    width, column = re.search(r"GPWIDTH ([\d.]+)pt COLUMN ([\d.]+)pt", log).groups()
    assert float(width) <= float(column), (width, column)
