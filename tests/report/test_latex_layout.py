"""The LaTeX report's paper part in a two-column paper: the tables fit, compiled by pdflatex.

The part between ``BEGIN PAPER`` and ``END PAPER`` is pasted into a ``twocolumn`` article (as a
user would) and compiled; pdflatex's log must have no overfull box in any alignment (a table
wider than its column or page). The tables are checked once as shipped and once without the
scale-to-fit guard, so that the layout itself fits and the guard is only a safety net.

Fitting is not enough: a table scaled down to its column can be unreadable. A study of two
scikit-learn searches (``track_search``, whose runs are named
``RandomizedSearchCV-RandomForestClassifier-c2``) had its efficiency table set in 5 pt type in
one column, its best-trials table in 7.5 pt, and a greener comparison (eight columns in one
column) at 6 pt. The type size of every word of the compiled paper is read from the PDF
(``pdftohtml -xml``: the size each font is drawn at, against a 10 pt word's): none may be under
:data:`FLOOR_PT`.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _report_cli import GREENPRINT, empty_home, run_in, without_fit_guard
from greenprint.report import build_report, write_report

from .conftest import make_study

PREAMBLE = (
    "\\documentclass[twocolumn]{article}\n\\usepackage[T1]{fontenc}\n"
    "\\usepackage[utf8]{inputenc}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n"
    "\\section{Results}\nSome text of the paper around the tables.\n"
)

#: The smallest type a reader of a printed paper reads: ``\\scriptsize`` in a 10 pt article.
#: The tables are set in 8 pt (one column) and 9 pt (``table*``): a table scaled down by more
#: than 1/8 fails.
FLOOR_PT = 7.0

#: A word of the paper's own text, at 10 pt: the measure of every other word's size.
REFERENCE = "GPREFERENCE"


def _paper_part(tex: str) -> str:
    start = tex.index("BEGIN PAPER")
    start = tex.index("\n", start) + 1
    return tex[start : tex.index("% ---- END PAPER")]


def _overfull(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "Overfull" in line)


def _compile(pdflatex: str, work, body: str, preamble: str = PREAMBLE) -> str:
    (work / "paper.tex").write_text(preamble + body + "\n\\end{document}\n", encoding="utf-8")
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
    unguarded = without_fit_guard(body)
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


def _readable_paper(options: str) -> str:
    """A two-column article in Latin Modern (Type 1 fonts, as most papers' are)."""
    return (
        PREAMBLE.replace("[twocolumn]", f"[twocolumn{options}]")
        .replace("\\usepackage[utf8]", "\\usepackage{lmodern}\n\\usepackage[utf8]")
        .replace("Some text of", f"{REFERENCE} text of")
    )


def _type_sizes(work: Path, family: str = "") -> list[tuple[float, str]]:
    """Each piece of text of ``paper.pdf`` that has two letters or more, with its type size, pt.

    ``pdftohtml -xml`` gives each font the size its text is drawn at (scaled by a
    ``\\resizebox`` or not), at a zoom it rounds to a pixel: against the reference word's, which
    is 10 pt, a size to within 0.2 pt. Subscripts, stars and daggers (one character) are left
    out. (``pdftotext -bbox`` heights are not sizes: they depend on the font's descriptor, and
    one font embedded twice gave 9 pt type the height of 6 pt.) ``family``: only the text in
    fonts whose name holds it (``"DejaVu"``: the figures').
    """
    done = subprocess.run(
        ["pdftohtml", "-xml", "-i", "-q", "-stdout", "-zoom", "3", "paper.pdf"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    specs = re.findall(r'<fontspec id="(\d+)" size="(\d+)" family="([^"]*)"', done.stdout)
    fonts = {font: (int(size), name) for font, size, name in specs}
    texts = [
        (*fonts[font], html.unescape(re.sub(r"<[^>]*>", "", text)))
        for font, text in re.findall(r'<text [^>]*font="(\d+)"[^>]*>(.*?)</text>', done.stdout)
    ]
    reference = next(size for size, _, text in texts if text.startswith(REFERENCE))
    return sorted(
        (round(10 * size / reference, 2), text)
        for size, name, text in texts
        if sum(ch.isalpha() for ch in text) >= 2 and family in name
    )


def _require_tools(require_component) -> str:
    pdflatex = shutil.which("pdflatex")
    require_component(
        pdflatex is not None and shutil.which("pdftohtml") is not None,
        "pdflatex or pdftohtml is not installed (texlive-latex-recommended, poppler-utils)",
    )
    assert pdflatex is not None
    kpsewhich = subprocess.run(["kpsewhich", "lmodern.sty"], capture_output=True, text=True)
    require_component(bool(kpsewhich.stdout.strip()), "lmodern is not installed (lmodern)")
    return pdflatex


# A paper's study as its author writes it: two scikit-learn searches through the integration
# (default run names, 40-odd characters), two baselines, the best model retrained and scored
# on a held-out split.
SKLEARN_STUDY = """
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV, train_test_split

import greenprint as gp
from greenprint.integrations.sklearn import track_search

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X[:400], y[:400], test_size=0.25, random_state=0)
for strategy in ("most_frequent", "stratified"):
    with gp.track(f"dummy-{strategy}", study="paper", role="baseline") as run:
        run.log(accuracy=DummyClassifier(strategy=strategy, random_state=0).fit(Xtr, ytr)
                .score(Xte, yte))
logreg = RandomizedSearchCV(LogisticRegression(max_iter=500), {"C": [0.01, 0.1, 1.0, 10.0]},
                            n_iter=3, cv=3, random_state=0)
forest = RandomizedSearchCV(RandomForestClassifier(random_state=0),
                            {"n_estimators": [4, 8, 16], "max_depth": [2, 4, 8]},
                            n_iter=3, cv=3, random_state=0)
track_search(logreg, Xtr, ytr, study="paper")
track_search(forest, Xtr, ytr, study="paper")
with gp.track("final", study="paper", role="final") as run:
    run.set(params={"model": "logreg", **logreg.best_params_})
    run.log(test_accuracy=logreg.best_estimator_.score(Xte, yte))
"""


@pytest.fixture(scope="module")
def sklearn_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study recorded once by its script in an empty directory (each test reports it into
    a folder of its own)."""
    pytest.importorskip("sklearn")
    home = empty_home(tmp_path_factory, "latex-sklearn")
    (home / "study.py").write_text(SKLEARN_STUDY, encoding="utf-8")
    made = run_in(home, sys.executable, "study.py")
    assert made.returncode == 0, made.stderr
    return home


@pytest.mark.slow
def test_a_sklearn_study_s_tables_are_readable_in_one_column(sklearn_study, require_component):
    """The user's way: the study recorded by its script, ``greenprint report --format latex``,
    the paper part pasted into a two-column article (US letter and A4: 229.5 and 221 pt
    columns). Every table keeps its type (8 pt, 9 pt in a ``table*``): the long run names wrap
    in their column, each whole and escaped, none shortened."""
    pdflatex = _require_tools(require_component)
    home = sklearn_study
    done = run_in(home, GREENPRINT, "report", "--study", "paper", "--format", "latex",
                  "--no-plots", "--out", "rep-tables")  # fmt: skip
    assert done.returncode == 0, done.stderr
    tex = (home / "rep-tables" / "report.tex").read_text(encoding="utf-8")
    body = _paper_part(tex)
    joined = body.replace("\\allowbreak{}", "")
    for name in ("LogisticRegression-c0", "LogisticRegression-c1", "RandomForestClassifier-c2"):
        assert f"RandomizedSearchCV-{name}".replace("_", "\\_") in joined  # whole, each row
    assert "resizebox" in body  # the guard is still there: the layout, not it, keeps the type
    work = home / "paper-tables"
    shutil.copytree(home / "rep-tables", work)
    for options in ("", ",a4paper"):
        log = _compile(pdflatex, work, body, _readable_paper(options))
        assert not re.search(r"Overfull \\hbox .* in alignment", log), _overfull(log)
        sizes = _type_sizes(work)
        small = [(size, text) for size, text in sizes if size < FLOOR_PT]
        assert not small, (options, small[:10])
        names = [size for size, text in sizes if "RandomizedSearchCV" in text]
        assert names and min(names) >= 8.0, (options, names)  # \footnotesize, not scaled
        # the layout itself fits: without the guard, nothing runs out of its column either
        unguarded = without_fit_guard(body)
        log = _compile(pdflatex, work, unguarded, _readable_paper(options))
        assert not re.search(r"Overfull \\hbox .* in alignment", log), _overfull(log)


GREENER_STUDY = """
import torch
from torch import nn

from greenprint import greener

torch.manual_seed(0)
x = torch.randn(64, 16)
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
greener.compare(model, None, x, [greener.dynamic_int8(), greener.prune_unstructured(0.5)],
                study="greener-demo", min_time_s=0.01, num_threads=1)
"""


@pytest.mark.slow
def test_a_greener_comparison_spans_both_columns_at_a_readable_size(
    tmp_path_factory, require_component
):
    """Eight columns (variant, score, energy, FPO dense and executed, parameters, size,
    break-even) were a one-column ``table`` scaled to 6 pt. It is a ``table*`` now, the comment
    above it saying why, its units under the column names, in 9 pt."""
    pytest.importorskip("torch")
    pdflatex = _require_tools(require_component)
    home = empty_home(tmp_path_factory, "latex-greener")
    (home / "compare.py").write_text(GREENER_STUDY, encoding="utf-8")
    made = run_in(home, sys.executable, "compare.py")
    assert made.returncode == 0, made.stderr
    done = run_in(home, GREENPRINT, "report", "--study", "greener-demo", "--format", "latex",
                  "--no-plots", "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = _paper_part((home / "rep" / "report.tex").read_text(encoding="utf-8"))
    greener = body[body.index("\\section*{Greener") :]
    assert "% table*: eight columns span both columns" in greener
    assert "\\begin{table*}" in greener and "(+" in greener  # the int8 ops, under its FPO
    work = home / "paper"
    shutil.copytree(home / "rep", work)
    log = _compile(pdflatex, work, body, _readable_paper(",a4paper"))
    assert not re.search(r"Overfull \\hbox .* in alignment", log), _overfull(log)
    small = [(size, text) for size, text in _type_sizes(work) if size < FLOOR_PT]
    assert not small, small[:10]
    variants = [size for size, text in _type_sizes(work) if text in ("dynamic-int8", "prune-50%")]
    assert variants and min(variants) >= 9.0, variants  # \small, not scaled


def _figure_texts(pdf: Path) -> tuple[float, float, list[tuple[float, ...]]]:
    """A figure PDF's page width and height and each text's (size, left, top, width, height,
    text), in the figure's own points (``pdfinfo``'s page size; ``pdftohtml -xml``'s sizes and
    boxes, in pixels of its zoom, 3: to within 0.2 pt)."""
    info = subprocess.run(["pdfinfo", pdf.name], cwd=pdf.parent, capture_output=True, text=True)
    width_pt = float(re.search(r"Page size:\s+([\d.]+) x", info.stdout).group(1))
    done = subprocess.run(
        ["pdftohtml", "-xml", "-i", "-q", "-stdout", "-zoom", "3", pdf.name],
        cwd=pdf.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    page = re.search(r'<page [^>]*height="(\d+)" width="(\d+)"', done.stdout)
    assert page is not None
    pt = width_pt / int(page.group(2))  # points a pixel
    fonts = dict(re.findall(r'<fontspec id="(\d+)" size="(\d+)"', done.stdout))
    boxes = re.findall(
        r'<text top="(\d+)" left="(\d+)" width="(\d+)" height="(\d+)" font="(\d+)">'
        r"(.*?)</text>",
        done.stdout,
    )
    texts = [
        (*(pt * int(v) for v in (fonts[font], left, top, w, h)), html.unescape(text))
        for top, left, w, h, font, text in boxes
    ]
    return width_pt, pt * int(page.group(1)), texts


def _lines(texts: list[tuple[float, ...]]) -> list[tuple[float, str]]:
    """The horizontal lines of a figure's text (a ligature is a text of its own), each with
    its bottom, top to bottom."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for _, left, top, width, height, text in texts:
        if width:  # a rotated (y) label's pieces have no width
            rows.setdefault(top + height, []).append((left, str(text)))
    return sorted(
        (bottom, "".join(text for _, text in sorted(row))) for bottom, row in rows.items()
    )


@pytest.mark.slow
def test_a_sklearn_study_s_figures_are_readable_as_printed(sklearn_study, require_component):
    """The figures of a paper's study (two scikit-learn searches, one EVP curve per model
    family, baselines, a final run starred on the Pareto plot), ``greenprint report --format
    latex`` in an empty directory, the paper part pasted into two-column articles (letter and
    A4). The PDF figures were drawn 7.6 in wide (12 in for the timeline's two panels) in 9 pt
    with 7 pt legends and printed at a column's 3.1 in (the text's 6.3 in): their text printed
    at 2.8 to 4.9 pt. A paper figure is drawn at the size it is printed, its text in 8 pt, its
    legend under its axes: every word and number prints at 7 pt or more."""
    pytest.importorskip("matplotlib")
    pdflatex = _require_tools(require_component)
    home = sklearn_study
    done = run_in(home, GREENPRINT, "report", "--study", "paper", "--format", "latex",
                  "--group-by", "params.estimator", "--out", "rep-figures")  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = _paper_part((home / "rep-figures" / "report.tex").read_text(encoding="utf-8"))
    one_column = ["evp-trials", "evp-energy", "pareto"]
    for name in one_column:
        assert f"\\includegraphics[width=\\linewidth]{{figures/{name}.pdf}}" in body
    assert (
        "\\begin{figure*}[t]\n\\centering\n\\includegraphics[width=\\linewidth]{figures/timeline.pdf}"
        in body
    )
    figures = home / "rep-figures" / "figures"
    drawn = {name: _figure_texts(figures / f"{name}.pdf") for name in [*one_column, "timeline"]}
    for name, (width, height, texts) in drawn.items():
        assert min(size for size, *_ in texts) >= 7.8, name  # every text in 8 pt, as drawn
        for _, left, top, w, h, text in texts:  # nothing runs off the figure (a clipped legend)
            assert left >= 0 and top >= 0 and left + w <= width + 1 and top + h <= height + 1, (
                name, text, (width, height))  # fmt: skip
    # the Pareto plot's legend is out of the data: under the x label, its long entries wrapped
    lines = _lines(drawn["pareto"][2])
    x_label = next(bottom for bottom, line in lines if line.startswith("energy per trial"))
    legend = [(bottom, line) for bottom, line in lines if line.startswith(("finished (", "final"))]
    assert len(legend) == 2 and min(bottom for bottom, _ in legend) > x_label, lines
    assert "(RandomizedSearchCV-LogisticRegression-c1)" in [line for _, line in lines]
    # the families' curves are in the EVP legend, under its axes
    lines = _lines(drawn["evp-trials"][2])
    x_label = next(bottom for bottom, line in lines if line == "trials (n)")
    families = [b for b, line in lines if line.startswith(("LogisticRegr", "RandomForest"))]
    assert len(families) == 2 and min(families) > x_label, lines
    work = home / "paper"
    shutil.copytree(home / "rep-figures", work)
    measure = "\\typeout{GPCOLUMN \\the\\columnwidth\\space GPTEXT \\the\\textwidth}\n"
    for options in ("", ",a4paper"):
        log = _compile(pdflatex, work, measure + body, _readable_paper(options))
        column, text_width = map(
            float, re.search(r"GPCOLUMN ([\d.]+)pt GPTEXT ([\d.]+)pt", log).groups()
        )
        # as printed: the figure's own size scaled to the line it is included at
        for name, (width, _, texts) in drawn.items():
            scale = (text_width if name == "timeline" else column) / width
            printed = min(size for size, *_ in texts) * scale
            assert printed >= FLOOR_PT, (options, name, round(printed, 2), width)
        # and read back from the compiled paper: the figures' type (DejaVu Sans) with letters
        sizes = [(size, text) for size, text in _type_sizes(work, family="DejaVu")]
        assert len(sizes) > 20 and min(sizes)[0] >= FLOOR_PT, (options, sizes[:5])


def test_a_caption_note_that_opens_with_a_name_keeps_its_spelling():
    """Each figure note in a LaTeX caption starts as a sentence, but a greener variant's name
    read 'Dynamic-int8: ...' and a metric 'Val_loss ...': a first word not all letters is a name."""
    from greenprint.report._latex import _sentence

    assert _sentence("dynamic-int8: the convolution stays float") == (
        "dynamic-int8: the convolution stays float"
    )
    assert _sentence("val_loss is minimised") == "val_loss is minimised"
    assert _sentence("trial-3 (1f6d7f61) cost most") == "trial-3 (1f6d7f61) cost most"
    assert _sentence("energy: 100% estimated") == "Energy: 100% estimated"
    assert _sentence("the one trial had no score") == "The one trial had no score"
