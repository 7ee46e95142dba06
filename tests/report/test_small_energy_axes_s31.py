"""The figures' energy axes go down to µWh and nWh, as the report's text does.

A study of short runs (a notebook's, a test's, a tiny model's) read ``10.3 nWh`` in its tables
and ``1e-05 mWh`` on its axes: the axes stopped at mWh.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import greenprint as gp
from _hand_built import measured_run
from greenprint.report import build_report, write_report
from greenprint.report._figures import energy_unit


@pytest.mark.parametrize(
    ("kwh", "unit"),
    [(2.0, "kWh"), (2e-3, "Wh"), (2e-6, "mWh"), (2e-9, "µWh"), (2e-12, "nWh"), (0.0, "mWh")],
)
def test_energy_unit_fits_the_largest_value(kwh: float, unit: str) -> None:
    factor, found = energy_unit(kwh)
    assert found == unit
    if kwh:
        assert 1 <= kwh * factor < 1000  # the largest value reads between 1 and 1000


@pytest.mark.parametrize(("scale", "unit"), [(1e-9, "µWh"), (1e-12, "nWh")])
def test_a_study_of_tiny_runs_plots_in_its_own_unit(tmp_path: Path, scale: float, unit: str):
    path = tmp_path / "greenprint.db"
    with gp.Ledger(path) as led:
        for k in range(4):
            run = measured_run(f"t{k}", None, (k + 2) * scale, (k, k + 1), pid=k + 1, study="tiny")
            led.start_run(run)
            led.flush(run.id, metrics=[gp.MetricPoint("accuracy", 0.5 + k / 10, 1, run.ended_at)])
    out = tmp_path / "out"
    write_report(build_report(str(path), "tiny", metric="accuracy"), out, "json")
    figures = json.loads((out / "report.json").read_text())["figures"]
    pareto = next(f for f in figures if f["id"] == "pareto")
    panel = pareto["panels"][0]
    assert panel["x_unit"] == unit
    xs = sorted(x for series in panel["series"] for x in series["x"])
    assert xs[0] == pytest.approx(2.0) and xs[-1] == pytest.approx(5.0)  # (k + 2) in that unit


def test_a_log_axis_labels_its_ticks_in_the_figure_s_own_font_size() -> None:
    """Energies across decades are drawn on a log axis, whose ticks matplotlib writes ``10``
    with a superscript exponent at 0.7 of the font: a paper figure's 8 pt text printed its
    exponents at 5.7 pt (found on a scikit-learn study's Pareto plot, 0.05 to 5 mWh). The
    ticks now read as plain numbers, every text in the figure's one size."""
    pytest.importorskip("matplotlib")
    import re

    from greenprint.report._model import Figure, Panel, Series
    from greenprint.report._plots import FigureRenderer

    energies, scores = (0.05, 0.3, 2.0, 5.0), (0.7, 0.8, 0.85, 0.9)
    for scale in ("x", "y"):
        x, y = (energies, scores) if scale == "x" else (scores, energies)
        trials = Series("finished", "scatter", x, y)
        panel = Panel(
            "x", "y", "mWh", "mWh", (trials,),
            x_scale="log" if scale == "x" else "linear",
            y_scale="log" if scale == "y" else "linear",
        )  # fmt: skip
        svg = FigureRenderer(exts=("svg",)).svg(Figure("pareto", "t", "c", (panel,)))
        assert set(re.findall(r"font-size: ?([\d.]+)px", svg)) == {"9"}, scale
        texts = re.findall(r">([^<>]+)</text>", svg)
        assert {"0.1", "1"} <= set(texts), (scale, texts)
