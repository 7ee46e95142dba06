"""The failed-runs section adds up to what the price tag counts as failed, in every format.

A study tracked as users track one: a failed trial with finished folds, a finished trial whose
fold failed (caught), and a finished final run whose helper ``gp.track("export")`` raised
(caught). The price tag's table by status counts 5 runs as failed (the trial, its 2 folds,
whose cost is its failure's, the failed fold and the export); the section lists the trial and
the 2 parts that failed inside runs that did not, with the run each is in, and its lead says
what the other 2 are. The LaTeX report's notes and section set long identifiers and paths
without an overfull line.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.report import build_report, render, write_report
from greenprint.report._escape import html_text, latex_text
from greenprint.report._failure_text import TALLY_NAMES_SHOWN

SCHEMA_PATH = Path(__file__).parents[2] / "docs" / "report-schema.json"


def _fold(db: str, name: str, exc: Exception | None = None) -> None:
    try:
        with gp.track(name, ledger=db) as fold:  # a child: study and role from its trial
            if exc is not None:
                raise exc
            fold.log(acc=0.5)
    except Exception as e:  # the trial goes on without it
        assert e is exc


def _study(db: str, study: str = "s") -> None:
    for k in (1, 2, 3):
        try:
            with gp.track(f"trial-{k}", study=study, ledger=db, role="trial") as run:
                run.set(params={"lr": 0.1 * k})
                _fold(db, "fold1")
                _fold(db, "fold2", ValueError("fold diverged") if k == 3 else None)
                if k == 2:
                    raise RuntimeError("CUDA out of memory")
                run.log(acc=0.8 + k / 100)
        except RuntimeError:
            pass
    with gp.track("final-model", study=study, ledger=db, role="final") as run:
        run.log(acc=0.9)
        _fold(db, "export", OSError("disk full"))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("failed-parts")
    db = str(root / "gp.db")
    _study(db)
    report = build_report(db, "s", metric="acc")
    return report, write_report(report, root / "out", plots=False)


TALLY = (
    "The price tag counts 5 runs as failed: the 3 listed here, and 2 parts of listed runs, "
    "whose cost counts as their run's failure: fold1, fold2 (in trial-2)."
)


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_markdown_lists_the_failed_parts_and_adds_up_to_the_price_tag(written):
    report, files = written
    md = files["md"].read_text(encoding="utf-8")
    assert re.search(r"^\| failed \| 5 \| 1 \|", md, re.M)  # the price tag by status
    part = _section(md, "## Failed runs (3)", "## Runs")
    assert TALLY in part
    items = [line for line in part.splitlines() if line.startswith("- ")]
    assert len(items) == 3
    assert items[0].startswith("- **RuntimeError: CUDA out of memory**: 1 trial failed: trial-2 (")
    ids = {(r.name, r.parent_id): r.id[:8] for r in report.runs}
    by_name = {r.name: r for r in report.runs if r.role != "part"}
    fold2 = ids["fold2", by_name["trial-3"].id]
    export = ids["export", by_name["final-model"].id]
    assert f"- **ValueError: fold diverged**: 1 part failed: fold2 ({fold2}, in trial-3)" in items
    assert f"- **OSError: disk full**: 1 part failed: export ({export}, in final-model)" in items
    assert "listed with the run it is in" in part  # the lead says what a part's item is


def test_html_and_latex_say_the_same(written):
    _, files = written
    html = files["html"].read_text(encoding="utf-8")
    assert '<a href="#failed">Failed runs</a>' in html
    part = _section(html, '<section id="failed">', "</section>")
    assert "<h2>Failed runs (3)</h2>" in part and html_text(TALLY) in part
    assert part.count("<li>") == 3 and ", in final-model)</li>" in part
    tex = files["latex"].read_text(encoding="utf-8").replace(r"\allowbreak{}", "")
    part = _section(tex, r"\section*{Failed runs (3)}", r"\end{itemize}")
    assert latex_text(TALLY) in part
    assert part.count(r"\item ") == 3 and ", in final-model)" in part


def test_the_notebook_view_says_it_too(written):
    report, _ = written
    markup = report._repr_html_()
    part = markup[markup.index("<strong>Failed runs (3)</strong>") :]
    part = part[: part.index("</ul>")]
    assert html_text(TALLY) in part and part.count("<li>") == 3


def test_json_gives_the_listed_and_counted_runs_by_id(written):
    import jsonschema

    report, files = written
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text("utf-8"))).validate(data)
    found = data["failures"]
    assert found["heading"] == "Failed runs (3)" and found["tally"] == TALLY
    by_status = data["price_tag"]["by_status"]
    assert found["statuses"] == ["failed"]
    assert found["counted"] == by_status["failed"]["runs"] == 5
    listed = [run for group in found["groups"] for run in group["runs"]]
    assert found["runs"] == len(listed) == 3
    # the listed runs and those counted with them: each of the 5 once
    assert len(set(listed) | set(found["with_listed"])) == 5
    runs = {r["id"]: r for r in data["runs"]}
    named = {runs[k]["name"] for k in found["with_listed"]}
    assert named == {"fold1", "fold2"}
    assert {runs[runs[k]["parent_id"]]["name"] for k in found["with_listed"]} == {"trial-2"}
    assert {runs[k]["name"]: runs[v]["name"] for k, v in found["parts"].items()} == {
        "fold2": "trial-3",
        "export": "final-model",
    }
    assert [g["error"] for g in found["groups"]] == [
        "RuntimeError: CUDA out of memory",
        "ValueError: fold diverged",
        "OSError: disk full",
    ]
    assert data == report.to_dict()  # the model's dictionary, as written


def test_a_part_that_failed_in_a_finished_study_is_listed(tmp_path):
    """Every run finished but a helper inside the final run: the price tag counts 1 failed
    run, and the section (which was missing) names it and its error."""
    db = str(tmp_path / "gp.db")
    with gp.track("trial-1", study="ok", ledger=db) as run:
        run.log(acc=0.8)
    with gp.track("final-model", study="ok", ledger=db, role="final") as run:
        run.log(acc=0.9)
        _fold(db, "export", OSError("disk full"))
    report = build_report(db, "ok", metric="acc")
    md = render(report, "md", plots=False)
    assert re.search(r"^\| failed \| 1 \| 0 \|", md, re.M)
    part = _section(md, "## Failed runs (1)", "## Runs")
    assert "- **OSError: disk full**: 1 part failed: export (" in part
    assert ", in final-model)" in part and "The price tag counts" not in part  # 1 is 1
    data = json.loads(render(report, "json", plots=False))
    assert (data["failures"]["runs"], data["failures"]["counted"]) == (1, 1)
    assert data["failures"]["with_listed"] == [] and data["failures"]["tally"] is None


def test_many_failed_parts_are_capped(tmp_path):
    """12 finished trials whose export failed, a failed trial of 8 finished folds: one item
    names 5 exports and counts the rest; the lead names 5 folds and counts the rest."""
    db = str(tmp_path / "gp.db")
    for k in range(12):
        with gp.track(f"trial-{k}", study="many", ledger=db, role="trial") as run:
            run.set(params={"lr": k})
            _fold(db, "export", OSError(f"disk {k} full"))
            run.log(acc=0.5)
    try:
        with gp.track("bad", study="many", ledger=db, role="trial") as run:
            run.set(params={"lr": 99})
            for k in range(8):
                _fold(db, f"fold-{k}")
            raise RuntimeError("NaN loss")
    except RuntimeError:
        pass
    md = render(build_report(db, "many", metric="acc"), "md", plots=False)
    part = _section(md, "## Failed runs (13)", "## Runs")
    item = next(line for line in part.splitlines() if line.startswith("- **OSError"))
    assert item.startswith("- **OSError: disk 0–11 full**: 12 parts failed: export (")
    assert ", in trial-0), export (" in item and item.endswith(" and 7 more")
    names = ", ".join(f"fold-{k}" for k in range(TALLY_NAMES_SHOWN))
    assert (
        "The price tag counts 21 runs as failed: the 13 listed here, and 8 parts of listed "
        f"runs, whose cost counts as their run's failure: {names} (in bad) and 3 more."
    ) in part


def _long_study(db: str) -> None:
    """Metric names, run names, parameters and errors as long identifiers and paths."""
    metric = "validation/top1_accuracy_on_the_heldout_imagenet_subset_version_2"
    loss = "train/cross_entropy_loss_with_label_smoothing_0.1_and_mixup"
    path = "/srv/models/resnet50_imagenet_subset/final_export_directory/model.onnx"
    for k in range(3):
        name = f"/data/experiments/resnet50/configs/sweep_{k}/trial_{k}_learning_rate_search.yaml"
        try:
            with gp.track(name, study="long", ledger=db) as run:
                run.set(params={"lr": 0.1 * k, "data": "/mnt/shared/imagenet_subset_v2/train"})
                _fold(db, "fold_0_of_the_cross_validation_split_number_one")
                _fold(db, f"export_onnx_model_to_{path}", OSError(f"No space left: '{path}'"))
                if k == 1:
                    raise RuntimeError("CUDA_ERROR_OUT_OF_MEMORY_while_allocating_[1024,4096]")
                run.log(**{metric: 0.8 + k / 100, loss: 0.3})
        except RuntimeError:
            pass


def _overfull(pdflatex: str, tex: Path) -> list[tuple[str, int]]:
    """``pdflatex tex`` (it must compile): each overfull line's excess and its paragraph's first
    source line."""
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent,
        capture_output=True,
        text=True,
        errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    log = tex.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    found = re.findall(r"Overfull \\hbox \((.*?)\) in paragraph at lines (\d+)--\d+", log)
    return [(excess, int(line)) for excess, line in found]


@pytest.mark.slow
def test_latex_notes_and_failures_never_run_into_the_margin(require_component, tmp_path):
    """``pdflatex report.tex``: no overfull line after END PAPER (the notes, the failed-runs
    section), with long metric names, run names and paths; the demo's notes had one
    ("training_type", 7 pt)."""
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    db = str(tmp_path / "gp.db")
    _long_study(db)
    files = write_report(build_report(db, "long"), tmp_path / "out", plots=False)
    tex = files["latex"].read_text(encoding="utf-8")
    notes = _section(tex, r"\section*{Notes}", r"\end{itemize}")
    assert "model card training" in notes and "heldout" in notes  # the notes that ran over
    end = tex[: tex.index("END PAPER")].count("\n") + 1
    over = _overfull(pdflatex, files["latex"])
    assert not [o for o in over if o[1] > end], over


@pytest.mark.slow
def test_the_papers_compute_paragraphs_never_run_into_a_columns_margin(require_component, tmp_path):
    """The compute statement and the final-run sentence, pasted into a two-column paper: long
    run names, hardware and metric names ran 79-156 pt into the margin (no hyphenation point
    TeX knows); their long words may now break, and no line of theirs is overfull."""
    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    db = str(tmp_path / "gp.db")
    _long_study(db)
    files = write_report(build_report(db, "long"), tmp_path / "out", plots=False)
    tex = files["latex"].read_text(encoding="utf-8")
    tex = tex.replace(r"\documentclass{article}", r"\documentclass[twocolumn]{article}", 1)
    paper = tmp_path / "out" / "paper.tex"
    paper.write_text(tex, encoding="utf-8")
    over = _overfull(pdflatex, paper)
    lines = tex.splitlines()
    first = lines.index(r"\section*{Compute and emissions}") + 1
    last = next(k for k in range(first, len(lines)) if lines[k].startswith(r"\begin{table"))
    assert "resnet50" in "".join(lines[first:last])  # the long names are there
    assert not [o for o in over if first < o[1] <= last], over
