"""A PNG figure written beside the HTML report keeps its legend inside the image (session 52).

The figures are drawn once per layout and saved in each format the report needs; the layout was
worked out at the first save, the SVG's, whose text is measured at 72 dpi, and the PNG (150 dpi)
reused it: a baseline's legend entry of 34 to 60 characters ran a few pixels past the PNG's
right edge ("off the axe") when the Markdown report was written with the HTML one, the default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import greenprint as gp
from greenprint.report import build_report, write_report


@pytest.mark.parametrize("length", [34, 50, 60])
def test_the_legend_ends_inside_the_png(tmp_path: Path, length: int) -> None:
    ledger = str(tmp_path / "clip.db")
    name = ("baseline-majority-class-" + "abcdefghij" * 6)[:length]
    with gp.track(name, study="s", ledger=ledger, role="baseline") as run:
        run.log(accuracy=0.1)
    for k in range(4):
        with gp.track(f"t{k}", study="s", ledger=ledger, role="trial", params={"lr": k}) as run:
            run.log(accuracy=0.6 + 0.1 * k)
    report = build_report(ledger, "s", metric="accuracy", mode="max")
    write_report(report, tmp_path / "out", formats=("html", "md"))
    for figure in ("evp-energy.png", "pareto.png"):
        pixels = np.asarray(Image.open(tmp_path / "out" / "figures" / figure).convert("L"))
        assert int((pixels[:, -3:] < 160).sum()) == 0, figure  # nothing drawn at the edge
