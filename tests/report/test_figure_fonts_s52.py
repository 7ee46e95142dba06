"""Figures draw names in scripts DejaVu Sans lacks with the fonts installed, and say once what
no font has (session 52).

A run named in Chinese drew boxes in the PNG and PDF figures, with a matplotlib ``UserWarning``
per glyph and figure on stderr (16-32 lines for a small study), although a font with those
glyphs (Droid Sans Fallback) was installed: the figures named DejaVu Sans alone.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from matplotlib import font_manager

import greenprint as gp
from greenprint.report import build_report, write_report
from greenprint.report._plots import _FALLBACK_FONTS, _font_family

NO_FONT_HAS = "\ue000\ue001"  # the Private Use Area: no font has glyphs there


def test_the_family_is_dejavu_then_the_fallbacks_installed_here() -> None:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    family = _font_family()
    assert family[0] == "DejaVu Sans"
    assert list(family[1:]) == [name for name in _FALLBACK_FONTS if name in installed]


def test_characters_no_font_has_are_said_once_with_no_warning_per_glyph(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = str(tmp_path / "c.db")
    for k in range(3):
        name = f"run-{NO_FONT_HAS}-{k}"
        with gp.track(name, study="c", ledger=ledger, role="trial", params={"lr": k}) as run:
            run.log(val_accuracy=0.6 + 0.1 * k)
    with gp.track(f"base-{NO_FONT_HAS}", study="c", ledger=ledger, role="baseline") as run:
        run.log(val_accuracy=0.65)
    report = build_report(ledger, "c")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        write_report(report, tmp_path / "rep", formats=("html", "md", "latex"))
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []
    said = [r.getMessage() for r in caplog.records if "no installed font has" in r.getMessage()]
    assert len(said) == 1, said
    assert NO_FONT_HAS in said[0]
