"""What a new user read wrong in the reports of a study of their own (session 17).

A stranger cloned greenprint, ran ``make demo``, then tracked a search of their own the way
issue 12's "Done when" names it: ``greenprint run --study s -- python search.py`` around a
script whose trials are child runs (``gp.track`` inside), each trial with three cross-validation
folds as its children, two baselines, one failed trial and a final retrain scored on a
held-out test split, then ``greenprint report`` in all four formats. Each test is one thing
that read wrong there.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, cli_report, empty_home, pdf_text, report_text, run_in

#: The user's search: 2 baselines, 4 configurations of 3 folds each (the last one fails in
#: its first fold; the odd ones log no score of their own: their folds' mean is theirs), and
#: the best configuration retrained on all the data, scored on a test split the search never
#: saw (a metric of its own, so the report's notes name the metric it ranks by).
SCRIPT = """
import greenprint as gp

for name, score in (("majority", 0.10), ("logreg-default", 0.90)):
    with gp.track(name, role="baseline") as run:
        run.log(val_accuracy=score)

folds = {0.01: [0.80, 0.82, 0.84], 0.1: [0.90, 0.92, 0.94], 1.0: [0.86, 0.88, 0.90], 10.0: []}
for i, (lr, scores) in enumerate(folds.items()):
    try:
        with gp.track(f"trial-{i}", params={"model": "mlp", "lr": lr}, role="trial") as trial:
            for k in range(3):
                with gp.track(f"trial-{i}-fold{k}", params={"fold": k}, role="part") as fold:
                    if not scores:
                        raise FloatingPointError("diverged")
                    fold.log(val_accuracy=scores[k])
            if i % 2 == 0:
                trial.log(val_accuracy=sum(scores) / len(scores))
    except FloatingPointError:
        pass

with gp.track("final", params={"model": "mlp", "lr": 0.1}, role="final") as run:
    run.log(test_accuracy=0.93)
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The user's search run under ``greenprint run`` in an empty directory, and its report."""
    home = empty_home(tmp_path_factory, "s17-search")
    (home / "search.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, GREENPRINT, "run", "--study", "s", "--", sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    return home, cli_report(home, "--study", "s")


def test_the_study_reads_as_the_user_built_it(study):
    """The outside check's study itself, as a baseline for what follows: four configurations
    are the trials (not their folds), one failed, two scored by their folds' mean; the final
    run is the one given role 'final'."""
    _, report = study
    total = report["price_tag"]["total"]
    assert total["trials"] == 4
    by_name = {r["name"]: r for r in report["runs"]}
    assert by_name["trial-1"]["score_source"] == "parts"
    assert by_name["trial-1"]["score"] == pytest.approx(0.92)
    assert report["price_tag"]["final"]["name"] == "final"


def test_latex_keeps_the_double_hyphen_of_the_commands_it_suggests(study, require_component):
    """The LaTeX report's notes read 'choose another with –metric' and its what-if section
    'greenprint whatif –run ID [–hourly CSV]': TeX typesets ``--`` as an en dash, so the
    command the report tells the reader to type, read or copied from the PDF, is wrong."""
    home, _ = study
    tex = report_text(home, "latex")
    assert r"-{}-metric" in tex and r"whatif -{}-run ID [-{}-hourly CSV]" in tex
    body = tex[tex.index(r"\begin{document}") :]
    prose = [line for line in body.splitlines() if not line.lstrip().startswith("%")]
    assert not [x for x in prose if re.search(r"(?<![-{}])--[A-Za-z]", x)], prose
    pdflatex, pdftotext = shutil.which("pdflatex"), shutil.which("pdftotext")
    require_component(pdflatex is not None, "pdflatex is not installed")
    require_component(pdftotext is not None, "pdftotext is not installed (poppler-utils)")
    assert pdflatex is not None and pdftotext is not None
    text = pdf_text(home / "rep", pdflatex, pdftotext)
    text = re.sub(r"-\s*\n\s*", "-", text)  # a line may break after a hyphen
    assert "choose another with --metric" in " ".join(text.split()), text
    assert "whatif --run ID [--hourly CSV]" in " ".join(text.split()), text


def test_a_trial_scored_by_its_folds_mean_is_marked_in_the_runs_tables(study):
    """The runs tables gave trial-1 'val_accuracy 0.92' like trial-0's own 0.82, where
    ``greenprint ledger ls`` and ``ledger show`` give trial-1 no score: it logged none, and
    0.92 is its folds' mean. Only a note counted such trials ('1 of 4 trials logged no
    val_accuracy of their own'), never saying which; each such score is marked now."""
    home, report = study
    parts = {r["name"] for r in report["runs"] if r["score_source"] == "parts"}
    own = {r["name"] for r in report["runs"] if r["role"] == "trial"} - parts
    assert parts == {"trial-1"} and own == {"trial-0", "trial-2", "trial-3"}

    def score_cells(rows: list[str]) -> dict[str, str]:
        cells = {}
        for row in rows:
            name, _, score = row[:3]
            cells[re.sub(r"^[\s↳]*|\s*[★$].*$", "", name)] = score
        return cells

    md = report_text(home, "md")
    md_rows = [
        [c.strip() for c in x.strip("|").split(" | ")]
        for x in md[md.index("## Runs") :].splitlines()
        if x.startswith("| ") and "trial-" in x
    ]
    html = report_text(home, "html")
    runs = html[html.index('<section id="runs">') :]
    html_rows = [
        re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", x)
        for x in re.findall(r"<tr>(.*?)</tr>", runs[: runs.index("</section>")], flags=re.S)
        if "trial-" in x
    ]
    for cells in (score_cells(md_rows), score_cells(html_rows)):
        assert cells["trial-1"] == "0.92 (mean of its parts)", cells
        assert cells["trial-0"] == "0.82" and cells["trial-2"] == "0.88", cells
        assert cells["trial-3"] == "-" and cells["trial-1-fold0"] == "0.9", cells
    tex = report_text(home, "latex")
    runs_table = tex[tex.index(r"\begin{table*}") : tex.index(r"\end{table*}")]  # not efficiency
    rows = {
        x.split(" & ")[0]: x.split(" & ")[2]
        for x in runs_table.splitlines()
        if x.startswith("trial-")
    }
    assert rows["trial-1"] == r"0.92$^{\circ}$" and rows["trial-0"] == "0.82", rows
    assert r"is the mean of their parts' (e.g. cross-validation folds), marked $^{\circ}$" in tex


def test_examples_are_written_as_counts_in_the_edh_line_and_the_runs_table(tmp_path):
    """With the README's ``run.set(params=..., dataset_size=50_000)`` on each trial (one on
    60,000), the E x D x H line read '... x 5.333e+04 examples per trial x 3 trials', and the
    runs table '50000' beside the greener table's '46,729': a count, in scientific notation
    and without the separators the rest of the report writes; the mean now says it is one."""
    from greenprint.report import build_report, render

    path = tmp_path / "greenprint.db"
    for i, (size, accuracy) in enumerate(((50_000, 0.90), (50_000, 0.92), (60_000, 0.91))):
        with gp.track(f"resnet-{i}", study="cifar-sweep", ledger=path) as run:
            run.set(params={"lr": 0.1 / 10**i}, dataset_size=size)
            run.log(accuracy=accuracy)
    report = build_report(path, "cifar-sweep", metric="accuracy")
    for fmt in ("md", "html"):
        page = render(report, fmt, plots=False)
        assert "e+04" not in page, fmt
        assert " x 53,333 examples per trial (a mean: 50,000 to 60,000) x 3 trials = " in page, fmt
        # the runs table's row (in HTML the one with the params cell: resnet-0 has a row in the
        # efficiency table too when its energy happens to put it on the Pareto front)
        rows = re.findall(r"resnet-0 \| finished \|.*", page) or [
            row
            for row in re.findall(r"<td>resnet-0</td>.*?</tr>", page, flags=re.S)
            if 'class="params"' in row
        ]
        assert rows and re.search(r"\b50,000\b", rows[0]), (fmt, rows)
