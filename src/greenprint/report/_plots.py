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
from collections.abc import Iterable
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
    "front": {"color": "#d62728", "linewidth": 1.4, "zorder": 4},
    "final": {"color": "#d62728", "marker": "*", "s": 160, "zorder": 5},
    "energy": {"color": "#2ca02c", "linewidth": 1.8},
    "total": {"color": "#222222", "linewidth": 1.4},
    "cpu": {"color": "#1f77b4", "linewidth": 1.0},
    "gpu": {"color": "#9467bd", "linewidth": 1.0},
    "ram": {"color": "#8c564b", "linewidth": 1.0},
    "other": {"color": "#bcbd22", "linewidth": 1.0},
    "baseline": {"color": "#555555", "linewidth": 1.1, "linestyle": ":", "zorder": 3},
    "family0": {"color": "#9467bd", "linewidth": 1.4},
    "family1": {"color": "#2ca02c", "linewidth": 1.4},
    "family2": {"color": "#8c564b", "linewidth": 1.4},
    "family3": {"color": "#e377c2", "linewidth": 1.4},
    "family4": {"color": "#17becf", "linewidth": 1.4},
    "family5": {"color": "#bcbd22", "linewidth": 1.4},
}
# Baselines' line styles, one per baseline of a panel in turn: two baselines never look alike.
_BASELINE_DASHES: tuple[Any, ...] = (":", "--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
# Scatter markers shrink and fade as points pile up, so that a 100,000-trial cloud stays a
# readable density (and its front and star stay visible on top).
_SCATTER_FULL_UP_TO = 500
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
        exts: the image formats the figures will be asked for (a report in several formats):
            each figure is then laid out once and saved in all of them when first asked for,
            instead of drawn again per format (its layout is two of a save's three passes).
    """

    def __init__(self, *, enabled: bool = True, exts: Iterable[str] = ()) -> None:
        self._cache: dict[tuple[str, str], bytes] = {}
        self._exts = tuple(dict.fromkeys(exts))
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
            self._draw(
                figure,
                [e for e in dict.fromkeys((ext, *self._exts)) if (figure.id, e) not in self._cache],
            )
        return self._cache[key]

    def svg(self, figure: Figure) -> str:
        """The figure as an inline ``<svg>`` element (no XML prolog), text kept as text."""
        text = self.image(figure, "svg").decode("utf-8")
        return text[text.index("<svg") :]

    def _draw(self, figure: Figure, exts: list[str]) -> None:
        matplotlib, mpl_figure = _import_matplotlib()
        width = 7.6 if len(figure.panels) == 1 else 6.0 * len(figure.panels)  # + legend
        settings = {
            "svg.fonttype": "none",
            "svg.hashsalt": figure.id,
            "pdf.fonttype": 42,
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            # no layout engine from the user's matplotlibrc: set_layout_engine(None) below
            "figure.autolayout": False,
            "figure.constrained_layout.use": False,
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
                # laid out by the first save: the next formats keep that layout (a layout
                # engine makes each save draw the figure once more to lay it out again)
                fig.set_layout_engine(None)


def _finite(values: tuple[float, ...]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _reference_range(panel: Panel) -> tuple[float, float] | None:
    """The y range of the data (baselines aside), when the panel has baselines."""
    if not any(s.role == "baseline" for s in panel.series):
        return None
    ys = [
        v
        for s in panel.series
        if s.role != "baseline"
        for v in (*_finite(s.y), *_finite(s.y_low), *_finite(s.y_high))
    ]
    return (min(ys), max(ys)) if ys else None


def _draw_panel(ax: Any, panel: Panel) -> None:
    crowd = sum(len(s.x) for s in panel.series if s.kind == "scatter")
    data_range = _reference_range(panel)
    limits = None
    if data_range is not None:
        low, high = data_range
        span = (high - low) or abs(high) or 1.0
        near = [
            s.y[0]
            for s in panel.series
            if s.role == "baseline" and s.y and low - 0.5 * span <= s.y[0] <= high + 0.5 * span
        ]
        low, high = min([low, *near]), max([high, *near])
        pad = 0.06 * ((high - low) or span)
        limits = (low - pad, high + pad)
    baselines = 0
    for series in panel.series:
        off = (
            limits is not None
            and series.role == "baseline"
            and bool(series.y)
            and not limits[0] <= series.y[0] <= limits[1]
        )
        dashes = None
        if series.role == "baseline":  # each baseline its own dash pattern, told apart
            dashes = _BASELINE_DASHES[baselines % len(_BASELINE_DASHES)]
            baselines += 1
        # a baseline far from the data would squash it: listed in the legend, not drawn
        _draw_series(ax, series, off_axes=off, crowd=crowd, dashes=dashes)
    if limits is not None and panel.y_scale != "log":
        ax.set_ylim(*limits)
    xs = [v for s in panel.series for v in _finite(s.x)]
    if panel.x_scale == "log" and xs and min(xs) > 0:
        ax.set_xscale("log")
    elif panel.x_unit in ("trials", "examples"):  # counts: whole-number ticks, never "1.5"
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ys = [v for s in panel.series for v in _finite(s.y)]
    if panel.y_scale == "log" and ys and min(ys) > 0:
        ax.set_yscale("log")
    ax.set_xlabel(_plain(panel.x_label))
    ax.set_ylabel(_plain(panel.y_label))
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if sum(1 for s in panel.series if s.label) > 1:
        # outside the data area (right of the axes): never hides a point or a line
        legend = ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        handles = getattr(legend, "legend_handles", ())
        for handle, text in zip(handles, legend.get_texts(), strict=False):
            # tiny dense markers get a legible key (the final run's star keeps its size)
            if (
                hasattr(handle, "set_sizes")
                and crowd > _SCATTER_FULL_UP_TO
                and not text.get_text().startswith("final")
            ):
                handle.set_sizes([18.0])
                handle.set_alpha(0.9)


def _array(values: tuple[float, ...]) -> Any:
    """Values as a float array (matplotlib converts a tuple item by item: 0.5 s per 100,000)."""
    import numpy as np

    return np.asarray(values, dtype=float)


def _draw_series(
    ax: Any, series: Series, *, off_axes: bool = False, crowd: int = 0, dashes: Any = None
) -> None:
    style = dict(_STYLE.get(series.role, {}))
    if dashes is not None:
        style["linestyle"] = dashes
    raster = len(series.x) > _RASTER_ABOVE
    label = _plain(series.label)
    if off_axes:
        ax.plot([], [], label=f"{label}: off the axes", **style)
        return
    x, y = _array(series.x), _array(series.y)
    if series.kind == "band":
        ax.fill_between(
            x, _array(series.y_low), _array(series.y_high), label=label, rasterized=raster, **style
        )
    elif series.kind == "scatter":
        count = max(crowd, len(series.x))  # every scatter of the panel shrinks alike
        if count > _SCATTER_FULL_UP_TO and series.role != "final":
            shrink = math.sqrt(_SCATTER_FULL_UP_TO / count)
            style["s"] = max(1.0, style.get("s", 18) * shrink)
            style["alpha"] = max(0.15, style.get("alpha", 0.8) * shrink**0.5)
            if style.get("marker") != "x":  # an x is drawn with lines only
                style["linewidths"] = 0
        ax.scatter(x, y, label=label, rasterized=raster, **style)
    elif series.kind == "step":
        ax.step(x, y, where="post", label=label, rasterized=raster, **style)
    else:
        if len(series.x) <= 12 and series.role != "baseline":
            style.setdefault("marker", "o")
            style.setdefault("markersize", 3.5)
        ax.plot(x, y, label=label, rasterized=raster, **style)
