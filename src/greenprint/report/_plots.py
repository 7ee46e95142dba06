"""Drawing the report's figures with matplotlib (the ``report`` extra), imported lazily.

Only the object-oriented API is used (``matplotlib.figure.Figure``, no pyplot state), so drawing
never opens a window, touches a global backend or leaks figures. A :class:`FigureRenderer`
draws each figure once and keeps its SVG, PNG and PDF output, so writing all formats draws each
figure once.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
from typing import Any

from greenprint._imports import require
from greenprint.report._model import Figure, Panel, Series

__all__ = ["PLOTS_HINT", "FigureRenderer", "figure_file_name"]

logger = logging.getLogger(__name__)

#: What a report says in place of its plots when matplotlib is missing.
PLOTS_HINT = "plots need matplotlib: pip install 'greenprint[report]'"

# Series with more points than this are rasterised inside vector output (SVG, PDF).
_RASTER_ABOVE = 3000
_STYLE: dict[str, dict[str, Any]] = {
    "mean": {"color": "#1f77b4", "linewidth": 1.8},
    "exact": {"color": "#ff7f0e", "linewidth": 1.4, "linestyle": "--"},
    "std": {"color": "#1f77b4", "alpha": 0.18, "linewidth": 0},
    "finished": {"color": "#1f77b4", "marker": "o", "s": 18, "alpha": 0.8},
    "pruned": {"color": "#7f7f7f", "marker": "x", "s": 18, "alpha": 0.8},
    "front": {"color": "#d62728", "linewidth": 1.4},
    "final": {"color": "#d62728", "marker": "*", "s": 160, "zorder": 5},
    "energy": {"color": "#2ca02c", "linewidth": 1.8},
    "total": {"color": "#222222", "linewidth": 1.4},
    "cpu": {"color": "#1f77b4", "linewidth": 1.0},
    "gpu": {"color": "#9467bd", "linewidth": 1.0},
    "ram": {"color": "#8c564b", "linewidth": 1.0},
    "other": {"color": "#bcbd22", "linewidth": 1.0},
}
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "svg": {"metadata": {"Date": None}},
    "pdf": {"metadata": {"CreationDate": None}},
    "png": {"dpi": 150},
}


def figure_file_name(figure: Figure, ext: str) -> str:
    """The file name of a figure's image: ``"evp-trials.png"``."""
    return f"{figure.id.replace('_', '-')}.{ext}"


def _plain(text: str) -> str:
    """Text for matplotlib: ``$`` would start mathtext, so it is escaped."""
    return text.replace("$", r"\$")


def _import_matplotlib() -> Any:
    matplotlib = require("matplotlib", extra="report", purpose="plots in reports")
    figure = require("matplotlib.figure", extra="report", purpose="plots in reports")
    return matplotlib, figure.Figure


class FigureRenderer:
    """Draws figures with matplotlib and caches their SVG, PNG and PDF bytes.

    Args:
        enabled: ``False`` draws nothing (every figure is reported unavailable).
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self._cache: dict[tuple[str, str], bytes] = {}
        self.unavailable: str | None = None if enabled else "plots were turned off"
        # Whether matplotlib is installed, without importing it (0.7 s): a JSON report never
        # draws. A broken install raises MissingDependencyError when the first figure is drawn.
        if enabled and importlib.util.find_spec("matplotlib") is None:
            self.unavailable = PLOTS_HINT
            logger.info("report without plots: %s", PLOTS_HINT)

    @property
    def available(self) -> bool:
        """Whether figures can be drawn."""
        return self.unavailable is None

    def image(self, figure: Figure, ext: str) -> bytes:
        """The figure drawn as ``ext`` (``"svg"``, ``"png"`` or ``"pdf"``).

        Raises:
            MissingDependencyError: matplotlib is not installed (extra ``report``).
        """
        key = (figure.id, ext)
        if key not in self._cache:
            self._draw(figure, [ext])
        return self._cache[key]

    def svg(self, figure: Figure) -> str:
        """The figure as an inline ``<svg>`` element (no XML prolog), text kept as text."""
        text = self.image(figure, "svg").decode("utf-8")
        return text[text.index("<svg") :]

    def _draw(self, figure: Figure, exts: list[str]) -> None:
        matplotlib, mpl_figure = _import_matplotlib()
        width = 6.4 if len(figure.panels) == 1 else 5.2 * len(figure.panels)
        settings = {
            "svg.fonttype": "none",
            "svg.hashsalt": figure.id,
            "pdf.fonttype": 42,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
        with matplotlib.rc_context(settings):
            fig = mpl_figure(figsize=(width, 3.6), layout="constrained")
            axes = fig.subplots(1, len(figure.panels), squeeze=False)[0]
            for ax, panel in zip(axes, figure.panels, strict=True):
                _draw_panel(ax, panel)
            for ext in exts:
                buffer = io.BytesIO()
                fig.savefig(buffer, format=ext, **_SAVE_OPTIONS.get(ext, {}))
                self._cache[(figure.id, ext)] = buffer.getvalue()


def _finite(values: tuple[float, ...]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _draw_panel(ax: Any, panel: Panel) -> None:
    for series in panel.series:
        _draw_series(ax, series)
    xs = [v for s in panel.series for v in _finite(s.x)]
    if panel.x_scale == "log" and xs and min(xs) > 0:
        ax.set_xscale("log")
    ys = [v for s in panel.series for v in _finite(s.y)]
    if panel.y_scale == "log" and ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel(_plain(panel.x_label))
    ax.set_ylabel(_plain(panel.y_label))
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if sum(1 for s in panel.series if s.label) > 1:
        ax.legend(fontsize=7, frameon=False)


def _draw_series(ax: Any, series: Series) -> None:
    style = dict(_STYLE.get(series.role, {}))
    raster = len(series.x) > _RASTER_ABOVE
    label = _plain(series.label)
    if series.kind == "band":
        ax.fill_between(
            series.x, series.y_low, series.y_high, label=label, rasterized=raster, **style
        )
    elif series.kind == "scatter":
        ax.scatter(series.x, series.y, label=label, rasterized=raster, **style)
    elif series.kind == "step":
        ax.step(series.x, series.y, where="post", label=label, rasterized=raster, **style)
    else:
        if len(series.x) <= 12:
            style.setdefault("marker", "o")
            style.setdefault("markersize", 3.5)
        ax.plot(series.x, series.y, label=label, rasterized=raster, **style)
