"""The HTML report in real headless Chromium: loads offline, without errors, shows its content.

A screenshot is saved in the test's tmp dir and copied to $GREENPRINT_SCREENSHOT_DIR (or the pytest
cache, .pytest_cache/d/greenprint-screenshots); the test prints where.
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from greenprint.report import build_report, write_report

from .conftest import HOSTILE, make_study

pytestmark = pytest.mark.chromium

ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_html_report_renders_in_chromium(chromium_path, require_component, tmp_path, request):
    require_component(
        importlib.util.find_spec("playwright") is not None,
        "the playwright package is not installed (pip install playwright; no browser download)",
    )
    from playwright.sync_api import sync_playwright

    make_study(tmp_path / "ledger.db", hostile=True, study="digits <demo> & co")
    report = build_report(tmp_path / "ledger.db")
    html = write_report(report, tmp_path / "out", "html")["html"]
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri(), wait_until="load")
            assert page.title() == "greenprint report: digits <demo> & co"
            assert page.locator("h1").inner_text() == "What did “digits <demo> & co” cost?"
            for section in ("#price-tag", "#figures", "#runs", "#model-card", "#compute"):
                assert page.locator(section).is_visible(), section
            assert page.locator("figure svg").count() == len(report.figures) == 5
            for k in range(len(report.figures)):
                box = page.locator("figure svg").nth(k).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 150
            text = page.locator("body").inner_text()
            assert f"{HOSTILE} trial-5" in text  # the hostile run name shown literally
            assert page.locator("script").count() == 0
            assert page.locator("#runs tbody tr").count() == len(report.runs)
            # the failed trials' one error, once, linked from the nav, with the runs it ended
            failed = [r for r in report.runs if r.status == "failed"]
            assert len(failed) >= 2 and {r.error for r in failed} == {"boom"}
            assert page.locator("#failed li").count() == 1
            item = page.locator("#failed li").inner_text()
            assert item.startswith(f"boom\n{len(failed)} trials failed: {HOSTILE} trial-")
            assert page.locator('nav a[href="#failed"]').inner_text() == "Failed runs"
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests), requests
    assert shot.stat().st_size > 10_000
    keep = Path(
        os.environ.get("GREENPRINT_SCREENSHOT_DIR")
        or (
            request.config.cache.mkdir("greenprint-screenshots")
            if getattr(request.config, "cache", None) is not None  # None: -p no:cacheprovider
            else tmp_path / "kept"
        )
    )
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep / "report.png")
    print(f"\nscreenshot of the HTML report: {shot} (copy: {keep / 'report.png'})")
