"""The four formats: files, self-containment, escaping, the JSON schema, no-matplotlib fallback."""

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.report import (
    FORMATS,
    PLOTS_HINT,
    build_report,
    render,
    resolve_formats,
    write_report,
)
from greenprint.report._escape import latex_text, markdown_text

from .conftest import HOSTILE, T0, Spec, add_run, make_study

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    make_study(root / "ledger.db")
    report = build_report(root / "ledger.db", "sweep", metric="accuracy")
    return report, write_report(report, root / "out"), root / "out"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    make_study(root / "ledger.db", hostile=True, study=f"study {HOSTILE}")
    report = build_report(root / "ledger.db")
    return report, write_report(report, root / "out"), root / "out"


def test_every_format_is_written_with_its_figures(written):
    report, files, out = written
    assert list(files) == ["html", "md", "latex", "json"] == list(FORMATS)
    assert {p.name for p in files.values()} == {
        "report.html",
        "report.md",
        "report.tex",
        "report.json",
    }
    figures = sorted(p.name for p in (out / "figures").iterdir())
    ids = [f.id.replace("_", "-") for f in report.figures]
    assert figures == sorted([f"{i}.png" for i in ids] + [f"{i}.pdf" for i in ids])
    for name in figures:
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF")
    assert not [p for p in out.rglob(".*")]  # no temporary files left behind


def test_html_is_one_self_contained_file(written):
    report, files, _ = written
    html = files["html"].read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == len(report.figures) == 5
    assert "<script" not in html.lower()
    # nothing to fetch: no external URL in any attribute, no <link>/<img src=http>, no @import
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    for text in (
        "Price tag",
        "Expected best score against trials",
        "co2_eq_emissions",
        "Compute statement",
        report.final.name,
    ):
        assert text in html
    whatif_rows = len(report.whatif.regions) + 1 if report.whatif is not None else 0
    roles = len(report.price_tag.by_role)
    role_rows = roles + 2 if roles > 1 else 0  # the price tag by role: header, roles, total
    assert report.efficiency is not None  # accuracy: a score per kWh means something
    efficiency_rows = len(report.efficiency.rows) + 1
    assert report.pruning is not None  # 2 pruned trials: their table, header and rows
    pruned_rows = len(report.pruning.rows) + 1
    assert (
        html.count("<tr")
        == (len(report.runs) + 1 + len(report.price_tag.by_status) + 2 + whatif_rows + role_rows)
        + efficiency_rows
        + pruned_rows
    )


def test_markdown_links_its_png_figures(written):
    report, files, out = written
    md = files["md"].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(report.figures)
    assert all((out / link).is_file() and link.endswith(".png") for link in links)
    assert "```yaml\nco2_eq_emissions:" in md
    assert "> The study" in md


def _check_latex(tex: str) -> None:
    body = re.sub(r"\\[\\{}%$#&_]", "", tex)  # escaped characters
    depth = 0
    for ch in body:
        depth += ch == "{"
        depth -= ch == "}"
        assert depth >= 0, "a closing brace without an opening one"
    assert depth == 0, "unbalanced braces"
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert sorted(begins) == sorted(ends)
    assert "%" not in re.sub(
        r"\\%", "", "\n".join(line for line in tex.splitlines() if not line.startswith("%"))
    )


def test_latex_has_booktabs_tables_and_pdf_figures(written):
    report, files, out = written
    tex = files["latex"].read_text(encoding="utf-8")
    _check_latex(tex)
    # price tag by status (and by role when the study has several), runs, what-if, efficiency
    tables = 2 + (len(report.price_tag.by_role) > 1) + (report.whatif is not None)
    tables += report.efficiency is not None
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == tables
    assert r"\usepackage{booktabs}" in tex and r"\usepackage{graphicx}" in tex
    graphics = re.findall(r"\\includegraphics\[[^\]]*\]\{([^}]+)\}", tex)
    assert len(graphics) == len(report.figures)
    assert all((out / g).is_file() and g.endswith(".pdf") for g in graphics)
    assert "BEGIN PAPER" in tex and r"$\star$" in tex


@pytest.mark.slow
@pytest.mark.parametrize("which", ["written", "hostile"])
def test_latex_compiles_with_pdflatex(which, request, require_component, tmp_path):
    pdflatex = shutil.which("pdflatex")
    require_component(
        pdflatex is not None,
        "pdflatex is not installed (apt-get install texlive-latex-recommended); "
        ".tex structure is tested without it",
    )
    assert pdflatex is not None
    _, files, out = request.getfixturevalue(which)
    work = tmp_path / "tex"
    shutil.copytree(out, work)
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (work / "report.pdf").stat().st_size > 0


def test_json_follows_the_documented_schema(written):
    import jsonschema

    report, files, _ = written
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["schema"] == "greenprint.report/2" == schema["properties"]["schema"]["const"]
    # every field written is documented (readers may rely on the schema's descriptions)
    defs = schema["$defs"]
    assert set(data) == set(schema["properties"])
    assert set(data["runs"][0]) == set(defs["run"]["properties"])
    assert set(data["figures"][0]) == set(defs["figure"]["properties"])
    assert set(data["price_tag"]) == set(defs["price_tag"]["properties"])
    series = [s for f in data["figures"] for p in f["panels"] for s in p["series"]]
    assert {k for s in series for k in s} <= set(defs["series"]["properties"])
    # every run and every figure's data is there
    assert [r["id"] for r in data["runs"]] == [r.id for r in report.runs]
    assert [f["id"] for f in data["figures"]] == [f.id for f in report.figures]
    assert data["price_tag"]["total"]["trials"] == report.price_tag.total.trials
    nan_run = next(r for r in data["runs"] if r["name"] == "trial-6")
    assert nan_run["score"] is None  # NaN is written as null, the JSON stays strict


def test_hostile_strings_are_escaped_everywhere(hostile):
    report, files, _ = hostile
    assert report.study == f"study {HOSTILE}"
    html = files["html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; 50% {a_b}" in html
    tex = files["latex"].read_text(encoding="utf-8")
    _check_latex(tex)
    assert latex_text(HOSTILE) in tex
    assert "<script>" not in tex and "50% {a_b}" not in tex
    md = files["md"].read_text(encoding="utf-8")
    assert markdown_text(HOSTILE) in md
    assert "<script>" not in md
    # every table's rows that hold the name have as many cell bars as its header (a bar in the
    # name escaped): the runs table, the efficiency table and the pruned trials' table
    unescaped = lambda line: len(re.findall(r"(?<!\\)\|", line))  # noqa: E731
    tables = re.findall(r"(?:^\|.*\n)+", md, re.M)
    checked = 0
    for table in tables:
        header, *rows = table.splitlines()
        rows = [line for line in rows if "\\<script" in line]
        assert all(unescaped(line) == unescaped(header) for line in rows)
        checked += bool(rows)
    assert checked == 3  # the runs, the efficiency and the pruned trials
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    assert data["study"] == f"study {HOSTILE}"
    assert data["runs"][0]["params"]["model"] == "majority"


def test_latex_escaping_covers_every_special():
    assert latex_text("a_b & 50% $x$ #1 {y} ~ ^ \\ <>|") == (
        r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} "
        r"\textbackslash{} \textless{}\textgreater{}\textbar{}"
    )
    assert latex_text("naïve 日本\n") == "naïve ?? "
    # what TeX would typeset as quotes: a backtick as an opening quote, "''" as a closing
    # double quote, ",," as a low one (an error "KeyError: ''", code quoted ``x``)
    assert latex_text("``x`` '' a,,b --m") == (
        r"\textasciigrave{}\textasciigrave{}x\textasciigrave{}\textasciigrave{} '{}' a,{},b -{}-m"
    )


def test_hostile_metric_name_plots(tmp_path):
    metric = "acc$_{x}$ <b>&"
    led = gp.Ledger(tmp_path / "l.db")
    spec = Spec()
    for k in range(3):
        add_run(led, spec, name=f"t{k}", score=0.5 + k / 10, start=T0 + 20 * k, metric=metric)
    led.close()
    report = build_report(tmp_path / "l.db", "sweep")
    assert report.metric == metric
    files = write_report(report, tmp_path / "out", "html,latex")
    html = files["html"].read_text(encoding="utf-8")
    assert "<b>&" not in html and "&lt;b&gt;&amp;" in html
    _check_latex(files["latex"].read_text(encoding="utf-8"))


def test_without_matplotlib_the_tables_remain(study_ledger, tmp_path):
    path, _ = study_ledger
    out = tmp_path / "out"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from greenprint.report import build_report, write_report\n"
        f"write_report(build_report({str(path)!r}, 'sweep'), {str(out)!r})\n"
        "assert 'matplotlib' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert not (out / "figures").exists()
    for name in ("report.html", "report.md", "report.tex"):
        text = (out / name).read_text(encoding="utf-8")
        assert "greenprint[report]" in text
        assert "Price tag" in text or "price tag" in text.lower()
    assert "<svg" not in (out / "report.html").read_text(encoding="utf-8")
    assert PLOTS_HINT.startswith("plots need matplotlib")


def test_format_names_and_bad_output(written, tmp_path):
    report, _, _ = written
    assert resolve_formats("all") == ("html", "md", "latex", "json")
    assert resolve_formats(["markdown", "tex,JSON", "md"]) == ("md", "latex", "json")
    with pytest.raises(gp.ReportError, match="unknown report format 'pdf'; known: html, md"):
        resolve_formats("pdf")
    with pytest.raises(gp.ReportError):
        render(report, "html,md")
    assert json.loads(render(report, "json"))["study"] == "sweep"
    assert "<svg" not in render(report, "html", plots=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(gp.ReportError, match="not a directory"):
        write_report(report, blocker, "json")
    with pytest.raises(gp.ReportError):
        write_report(report, blocker / "sub", "json")
    assert blocker.read_text() == "x"


def test_rewriting_replaces_the_files(written, tmp_path):
    report, _, _ = written
    first = write_report(report, tmp_path, "json")["json"]
    first.write_text("stale")
    again = write_report(report, tmp_path, ["json"])["json"]
    assert again == first and json.loads(again.read_text())["schema"] == "greenprint.report/2"


def test_figures_laid_out_once_for_every_format_look_as_drawn_alone(written, tmp_path):
    """A report in several formats lays each figure out once per layout (the screen's SVG and
    PNG, the paper's PDF) and saves it in each of its image formats (a layout is two of a
    save's three passes); each image keeps the size and the picture of the figure drawn alone
    in that format, also under a matplotlibrc that asks for another layout engine."""
    import matplotlib
    import numpy as np
    from PIL import Image

    from greenprint.report._plots import FigureRenderer, figure_file_name

    report, _, out = written
    for figure in report.figures:
        alone = FigureRenderer()
        png = Image.open(io.BytesIO(alone.image(figure, "png"))).convert("L")
        shared = Image.open(out / "figures" / figure_file_name(figure, "png")).convert("L")
        assert shared.size == png.size, figure.id
        # the layout was found with the SVG's text metrics, not Agg's: a pixel's shift at most
        diff = np.abs(np.asarray(shared, float) - np.asarray(png, float))
        assert diff.mean() < 8.0, figure.id
        assert _pdf_page_size(alone.image(figure, "pdf")) == _pdf_page_size(
            (out / "figures" / figure_file_name(figure, "pdf")).read_bytes()
        )
    with matplotlib.rc_context({"figure.autolayout": True}):
        files = write_report(report, tmp_path / "rc", formats="html,md")
    assert "<svg" in files["html"].read_text(encoding="utf-8")
    first = report.figures[0]
    png = Image.open(tmp_path / "rc" / "figures" / figure_file_name(first, "png"))
    assert png.size == Image.open(out / "figures" / figure_file_name(first, "png")).size


def _pdf_page_size(data: bytes) -> bytes:
    found = re.search(rb"/MediaBox \[([^\]]*)\]", data)
    assert found is not None
    return found.group(1)
