"""A run named ``[exp1] lr=0.1`` or ``*exp2`` keeps the LaTeX report compiling (session 52).

A table row starts right after ``\\\\`` or ``\\midrule``, which take a ``[`` that follows (even past
spaces) as their optional argument and a ``*`` as their starred form: the report stopped with
"Missing number, treated as zero", and a leading star vanished from the name.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import greenprint as gp
from conftest import require
from greenprint.report import build_report, write_report
from greenprint.report._escape import latex_text

NAMES = ["[exp1] lr=0.1", "*exp2", " [exp3] padded"]


def test_a_leading_bracket_or_star_is_kept_from_the_row_before() -> None:
    assert latex_text("[exp1] lr=0.1") == "{}[exp1] lr=0.1"
    assert latex_text("*exp2") == "{}*exp2"
    assert latex_text(" [x") == "{} [x"
    assert latex_text("a[b]*") == "a[b]*"  # elsewhere as before


def test_the_report_compiles_and_prints_the_names_as_written(tmp_path: Path) -> None:
    pdflatex, pdftotext = shutil.which("pdflatex"), shutil.which("pdftotext")
    require(pdflatex is not None and pdftotext is not None, "pdflatex and pdftotext not installed")
    ledger = tmp_path / "b.db"
    for k, name in enumerate(NAMES):
        with gp.track(name, study="s", ledger=str(ledger), role="trial", params={"lr": k}) as run:
            run.log(accuracy=0.9 - 0.1 * k)
    out = tmp_path / "out"
    write_report(build_report(str(ledger), "s"), out, formats=("latex",), plots=False)
    done = subprocess.run(
        [str(pdflatex), "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
        cwd=out, capture_output=True, text=True, errors="replace", timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, [line for line in done.stdout.splitlines() if line[:1] == "!"]
    text = subprocess.run(
        [str(pdftotext), "-layout", "report.pdf", "-"], cwd=out, capture_output=True, text=True,
        check=True, timeout=120,
    ).stdout  # fmt: skip
    for name in NAMES:
        assert name.strip() in text
