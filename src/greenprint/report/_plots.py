r"""Drawing the report's figures with matplotlib (the ``report`` extra), imported lazily.

Only the object-oriented API is used (``matplotlib.figure.Figure``, no pyplot state), so drawing
never opens a window, touches a global backend or leaks figures. A :class:`FigureRenderer`
draws each figure once per layout and keeps its output: once for the screen (SVG in the HTML
report, PNG beside the Markdown) and once for print (the PDF a LaTeX report includes), so writing
all formats draws each figure twice.

The two layouts (:data:`_SCREEN`, :data:`_PAPER`): a screen figure is 7.6 in wide (6 in a panel
side by side), 9 pt, its legend right of the axes; a paper figure is drawn at the size a
two-column paper prints it (one panel: a column, 3.3 in; side-by-side panels: the text width,
7 in), all its text 8 pt, each legend under its axes, long entries wrapped, so that
``\includegraphics[width=\linewidth]`` scales it by about 0.9 to 1.1 (a letter or A4 article's
221 to 229.5 pt column, an ACM or IEEE one's 3.33 to 3.5 in): its text prints at 7 pt or more.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import math
import re
import textwrap
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Layout:
    """How big a figure is drawn and where its legends go.

    Attributes:
        panel_in: the width of one panel, inches (a one-panel figure: ``single_in``).
        single_in: the width of a figure of one panel, inches.
        plot_in: the height of the figure without its legends below, inches.
        font_pt: the type size of every text but the legends', points.
        legend_pt: the legends' type size, points.
        legend_below: legends under their axes (paper), else right of them (screen).
        marker_scale: scatter markers' areas times this (a paper figure's points are smaller).
    """

    panel_in: float
    single_in: float
    plot_in: float
    font_pt: float
    legend_pt: float
    legend_below: bool
    marker_scale: float = 1.0

    def width_in(self, panels: int) -> float:
        """The figure's width for ``panels`` panels side by side, inches."""
        return self.single_in if panels == 1 else self.panel_in * panels


#: The HTML's SVG and the Markdown's PNG: wide, the legend right of the axes.
_SCREEN = _Layout(
    panel_in=6.0, single_in=7.6, plot_in=3.6, font_pt=9, legend_pt=7, legend_below=False
)
#: The LaTeX report's PDF, at the size a two-column paper prints it (module docstring).
_PAPER = _Layout(
    panel_in=3.5,
    single_in=3.3,
    plot_in=2.3,
    font_pt=8,
    legend_pt=8,
    legend_below=True,
    marker_scale=0.6,
)
# DejaVu Sans's mean advance width, in ems (for wrapping and columns of a legend below)
_EM_PER_CHAR = 0.6
# The height of a legend's line below the axes, in ems (text, spacing and padding)
_LEGEND_LINE_EM = 1.75


def _layout(ext: str) -> _Layout:
    """The PDF is for print (the LaTeX report); PNG and SVG for the screen."""
    return _PAPER if ext == "pdf" else _SCREEN


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


#: Fonts with glyphs beyond DejaVu Sans's (Chinese, Japanese, Korean...), tried in this order
#: after it where installed: matplotlib falls back to them glyph by glyph.
_FALLBACK_FONTS = (
    "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
    "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "Noto Sans", "Arial Unicode MS",
)  # fmt: skip


#: matplotlib's warning of a character no font of the family has (one per glyph and drawing).
_GLYPH = re.compile(r"Glyph (\d+) .*missing from font")


@functools.cache
def _font_family() -> tuple[str, ...]:
    """DejaVu Sans (matplotlib's own), then the fallback fonts installed here, if any.

    Read once a process (matplotlib's font list is read once too), not at each figure drawn.
    """
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(name for name in _FALLBACK_FONTS if name in installed))


def _import_matplotlib() -> Any:
    matplotlib = require("matplotlib", extra="report", purpose="plots in reports")
    figure = require("matplotlib.figure", extra="report", purpose="plots in reports")
    return matplotlib, figure.Figure


class FigureRenderer:
    """Draws figures with matplotlib and caches their SVG, PNG and PDF bytes.

    Args:
        enabled: ``False`` draws nothing (every figure is reported unavailable).
        exts: the image formats the figures will be asked for (a report in several formats):
            each figure is then laid out once per layout (:func:`_layout`: the screen's SVG and
            PNG, the paper's PDF) and saved in all of them when first asked for, instead of
            drawn again per format (its layout is two of a save's three passes). The cache is
            keyed by (figure id, format): a format has one layout.
    """

    def __init__(self, *, enabled: bool = True, exts: Iterable[str] = ()) -> None:
        self._cache: dict[tuple[str, str], bytes] = {}
        self._missing: set[str] = set()  # characters no installed font has, said once each
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
        """Draws ``figure`` once per layout its ``exts`` need, saving each of them."""
        for layout in dict.fromkeys(_layout(ext) for ext in exts):
            self._draw_laid_out(figure, layout, [e for e in exts if _layout(e) is layout])

    def _draw_laid_out(self, figure: Figure, layout: _Layout, exts: list[str]) -> None:
        matplotlib, mpl_figure = _import_matplotlib()
        width = layout.width_in(len(figure.panels))  # screen: + the legend
        settings = {
            "svg.fonttype": "none",
            "svg.hashsalt": figure.id,
            "pdf.fonttype": 42,
            "font.size": layout.font_pt,
            "axes.spines.top": False,
            "axes.spines.right": False,
            # no layout engine from the user's matplotlibrc: set_layout_engine(None) below
            "figure.autolayout": False,
            "figure.constrained_layout.use": False,
            # a run named in Chinese drew boxes (and a warning per glyph and figure) while a
            # font that has its glyphs was installed: those fonts follow DejaVu Sans
            "font.family": list(_font_family()),
        }
        with matplotlib.rc_context(settings), warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", message=r"Glyph \d+ .*missing from font")
            fig = mpl_figure(figsize=(width, layout.plot_in), layout="constrained")
            axes = fig.subplots(1, len(figure.panels), squeeze=False)[0]
            legend_in = 0.0
            for ax, panel in zip(axes, figure.panels, strict=True):
                legend_in = max(legend_in, _draw_panel(ax, panel, layout, width / len(axes)))
            if legend_in:  # the plot keeps its height, the legends below it are added
                fig.set_size_inches(width, layout.plot_in + legend_in)
            # a raster first: the layout is worked out by the renderer that measures the text
            # as it is drawn there (laid out for the SVG, a PNG's legend ran a few pixels past
            # its right edge); the SVG's text is the browser's to draw, the PDF's the same font
            for ext in sorted(exts, key=lambda e: e != "png"):
                buffer = io.BytesIO()
                fig.savefig(buffer, format=ext, **_SAVE_OPTIONS.get(ext, {}))
                self._cache[(figure.id, ext)] = buffer.getvalue()
                # laid out by the first save: the next formats keep that layout (a layout
                # engine makes each save draw the figure once more to lay it out again)
                fig.set_layout_engine(None)
        self._said_missing(caught)

    def _said_missing(self, caught: list[warnings.WarningMessage]) -> None:
        """Say once which characters no installed font has; pass other warnings on."""
        chars: set[str] = set()
        for w in caught:
            found = _GLYPH.match(str(w.message))
            if found is None:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            else:
                chars.add(chr(int(found[1])))
        new = chars - self._missing
        if new:
            self._missing |= new
            logger.warning(
                "greenprint: no installed font has %s, drawn as boxes in the figures' PNG and "
                "PDF (the HTML's SVG leaves them to the browser): install a font that has them "
                "(Noto Sans CJK: fonts-noto-cjk)",
                "".join(sorted(new))[:40],
            )


def _plain_log_ticks(axis: Any) -> None:
    """A log axis's tick labels as plain numbers (``0.1``, ``1``, ``10``; ``1e-05`` past them).

    matplotlib writes them ``10`` with a superscript exponent, drawn at 0.7 of the font size: a
    paper figure's 8 pt text printed its exponents at 5.7 pt (under the 7 pt every other word
    and number of the figure prints at). Which ticks are labelled is matplotlib's, as before.
    """
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=True))
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


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


def _draw_panel(ax: Any, panel: Panel, layout: _Layout, width_in: float) -> float:
    """Draws ``panel`` on ``ax`` (``width_in`` wide); returns the height of its legend below, in."""
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
        _draw_series(
            ax, series, off_axes=off, crowd=crowd, dashes=dashes, marker_scale=layout.marker_scale
        )
    if limits is not None and panel.y_scale != "log":
        ax.set_ylim(*limits)
    xs = [v for s in panel.series for v in _finite(s.x)]
    if panel.x_scale == "log" and xs and min(xs) > 0:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
    elif layout.legend_below:  # a narrow panel: five-digit tick labels would run together
        from matplotlib.ticker import MaxNLocator

        counts = panel.x_unit in ("trials", "examples")
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=counts, steps=[1, 2, 2.5, 5, 10]))
    elif panel.x_unit in ("trials", "examples"):  # counts: whole-number ticks, never "1.5"
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ys = [v for s in panel.series for v in _finite(s.y)]
    if panel.y_scale == "log" and ys and min(ys) > 0:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    x_label, y_label = _plain(panel.x_label), _plain(panel.y_label)
    if layout.legend_below:  # a narrow figure: a label longer than its axis takes two lines
        x_label = _wrap(x_label, width_in * 0.85, layout.font_pt)
        y_label = _wrap(y_label, layout.plot_in * 0.85, layout.font_pt)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if sum(1 for s in panel.series if s.label) <= 1:
        return 0.0
    if layout.legend_below:
        legend, legend_in = _legend_below(ax, layout, width_in)
    else:
        # outside the data area (right of the axes): never hides a point or a line
        legend = ax.legend(
            fontsize=layout.legend_pt, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0)
        )
        legend_in = 0.0
    handles = getattr(legend, "legend_handles", ())
    for handle, text in zip(handles, legend.get_texts(), strict=False):
        # tiny dense markers get a legible key (the final run's star keeps its size)
        if (
            hasattr(handle, "set_sizes")
            and crowd > _SCATTER_FULL_UP_TO
            and not text.get_text().startswith("final")
        ):
            handle.set_sizes([18.0 * layout.marker_scale])
            handle.set_alpha(0.9)
    return legend_in


def _wrap(text: str, width_in: float, size_pt: float) -> str:
    """``text`` broken into lines of at most ``width_in`` (at ``size_pt``), at spaces or dashes."""
    chars = max(12, int(width_in * 72 / (size_pt * _EM_PER_CHAR)))
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=True)) or text


def _columns_in(widths: list[float], columns: int) -> float:
    """The width of a legend of entries ``widths`` (ems) in ``columns`` columns, in ems."""
    rows = math.ceil(len(widths) / columns)
    return sum(max(widths[k : k + rows]) for k in range(0, len(widths), rows))


def _legend_below(ax: Any, layout: _Layout, width_in: float) -> tuple[Any, float]:
    """The panel's legend under its axes (in as many columns as fit), and its height, inches.

    Out of the data area, as on the screen, but below: a paper figure is one column wide, and a
    legend beside its axes would leave them a third of it. A long entry (a run's name) is
    wrapped to the panel's width.
    """
    from matplotlib.transforms import ScaledTranslation

    handles, labels = ax.get_legend_handles_labels()
    em_in = layout.legend_pt / 72
    key_em = 2.0 + 0.8  # the key (handlelength) and the gap after it (handletextpad)
    labels = [_wrap(label, width_in - key_em * em_in, layout.legend_pt) for label in labels]
    widths = [
        key_em + 2.0 + _EM_PER_CHAR * max(len(line) for line in label.split("\n"))
        for label in labels
    ]  # each entry and a column's spacing, ems
    columns = 1  # as many as fit: matplotlib fills a legend's columns first
    while columns < len(labels) and _columns_in(widths, columns + 1) * em_in <= width_in:
        columns += 1
    rows = math.ceil(len(labels) / columns)
    # row r holds entries r, r + rows, ...
    lines = sum(
        max(labels[k].count("\n") + 1 for k in range(r, len(labels), rows)) for r in range(rows)
    )
    # under the tick labels and the x label (two lines of type and their pads)
    below = ScaledTranslation(0, -(2.6 * layout.font_pt + 10) / 72, ax.figure.dpi_scale_trans)
    legend = ax.legend(
        handles,
        labels,
        fontsize=layout.legend_pt,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=ax.transAxes + below,
        ncols=columns,
        borderaxespad=0.0,
    )
    return legend, (lines * _LEGEND_LINE_EM * layout.legend_pt + 4) / 72


def _array(values: tuple[float, ...]) -> Any:
    """Values as a float array (matplotlib converts a tuple item by item: 0.5 s per 100,000)."""
    import numpy as np

    return np.asarray(values, dtype=float)


def _draw_series(
    ax: Any,
    series: Series,
    *,
    off_axes: bool = False,
    crowd: int = 0,
    dashes: Any = None,
    marker_scale: float = 1.0,
) -> None:
    style = dict(_STYLE.get(series.role, {}))
    if marker_scale != 1.0 and "s" in style:  # a scatter's marker area, smaller in print
        style["s"] *= marker_scale
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
