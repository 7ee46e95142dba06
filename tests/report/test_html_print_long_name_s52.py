"""A run name with no break point still prints with every column of its row (real Chromium).

On screen the runs table scrolls sideways in its box; in print the box is dropped, and a name of
120 characters without a space or hyphen (``t2_xxx...``) kept its column from wrapping
(``white-space: nowrap``): the table ran off the page and its last columns, the run ids among
them, were not printed (session 52, an outside check).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import greenprint as gp
from greenprint.report import build_report, write_report

pytestmark = pytest.mark.chromium

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.mark.slow
def test_a_long_unbroken_name_prints_with_every_column(chromium_path, require_component, tmp_path):
    pdftotext = shutil.which("pdftotext")
    require_component(
        pdftotext is not None, "pdftotext is not installed (apt-get install poppler-utils)"
    )
    assert pdftotext is not None
    ledger = str(tmp_path / "h.db")
    for k in range(3):
        name = f"t{k}_" + "x" * 120 if k == 2 else f"t{k}"
        with gp.track(name, study="s", ledger=ledger, role="trial", params={"lr": k}) as run:
            run.log(accuracy=0.5 + 0.1 * k)
    files = write_report(build_report(ledger, "s"), tmp_path / "out", ("html", "json"), plots=False)
    pdf = tmp_path / "print.pdf"
    done = subprocess.run(
        [chromium_path, *ARGS, "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
         files["html"].as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0 and pdf.stat().st_size > 0, done.stderr[-2000:]
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60
    ).stdout
    ids = [row["id"][:8] for row in json.loads(files["json"].read_text())["runs"]]
    assert [i for i in ids if i not in text] == []
    assert "lr=2" in text.replace(" ", "")  # the params column of the long-named run's row
