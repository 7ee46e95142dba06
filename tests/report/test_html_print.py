"""The HTML report prints, and is captured full-page, with every run's row (real Chromium).

On screen only a long runs table (over 200 rows) scrolls in a box of its own; printing drops
the box (``@media print``), so a PDF printed by headless Chromium holds every run's name, and a
short table is never boxed, so a full-page capture shows all of it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

import greenprint as gp
from greenprint.report import build_report, write_report

from .conftest import T0, Spec, add_run, make_study

pytestmark = pytest.mark.chromium

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _tall_study(path, count=260):
    led = gp.Ledger(path)
    spec = Spec()
    for k in range(count):
        add_run(
            led, spec, name=f"trial-{k:04d}", score=0.5 + k / 1000, start=T0 + 20 * k, samples=0
        )
    led.close()


def _box_clips(page) -> bool:
    return page.evaluate(
        "() => { const b = document.querySelector('#runs .scroll');"
        " return b.scrollHeight > b.clientHeight + 1; }"
    )


@pytest.mark.slow
def test_print_to_pdf_has_every_row(chromium_path, require_component, tmp_path):
    pdftotext = shutil.which("pdftotext")
    require_component(
        pdftotext is not None, "pdftotext is not installed (apt-get install poppler-utils)"
    )
    assert pdftotext is not None
    _tall_study(tmp_path / "ledger.db")
    html = write_report(build_report(tmp_path / "ledger.db"), tmp_path / "out", "html")["html"]
    assert 'class="scroll tall"' in html.read_text(encoding="utf-8")  # boxed on screen
    pdf = tmp_path / "report.pdf"
    done = subprocess.run(
        [chromium_path, *ARGS, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and pdf.stat().st_size > 0, done.stderr[-2000:]
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60
    ).stdout
    missing = [k for k in range(260) if f"trial-{k:04d}" not in text]
    assert missing == [], f"{len(missing)} runs missing from the printout, e.g. {missing[:5]}"


@pytest.mark.slow
def test_screen_box_only_for_long_tables_and_never_in_print(
    chromium_path, require_component, tmp_path
):
    require_component(
        importlib.util.find_spec("playwright") is not None,
        "the playwright package is not installed (pip install playwright; no browser download)",
    )
    from playwright.sync_api import sync_playwright

    make_study(tmp_path / "short.db")
    short = write_report(build_report(tmp_path / "short.db"), tmp_path / "s", "html")["html"]
    _tall_study(tmp_path / "tall.db")
    tall = write_report(build_report(tmp_path / "tall.db"), tmp_path / "t", "html")["html"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(short.as_uri(), wait_until="load")
            assert not _box_clips(page)  # a full-page capture shows every row
            rows = page.locator("#runs tbody tr")
            last = rows.nth(rows.count() - 1).bounding_box()
            height = page.evaluate("() => document.documentElement.scrollHeight")
            assert last is not None and last["y"] + last["height"] <= height
            page.goto(tall.as_uri(), wait_until="load")
            assert _box_clips(page)  # 260 rows scroll in their box on screen
            page.emulate_media(media="print")
            assert not _box_clips(page)  # ... and not in print
            assert (
                page.evaluate("() => getComputedStyle(document.querySelector('nav')).display")
                == "none"
            )
        finally:
            browser.close()
