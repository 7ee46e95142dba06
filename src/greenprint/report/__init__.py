"""Reports of a study: one model, rendered as HTML, Markdown, LaTeX and JSON.

:func:`build_report` reads a study from the ledger and computes everything with
:mod:`greenprint.analysis` (price tag, expected max performance, Pareto front, learning curve,
power over time, model-card block, compute statement); :func:`write_report` writes it in the
formats of :data:`FORMATS`; :func:`render` returns one format's text. Plots need matplotlib (the
``report`` extra); without it the reports keep their tables and say so.

Example:
    >>> from greenprint.report import build_report, write_report
    >>> report = build_report("greenprint.db", "digits", metric="accuracy")  # doctest: +SKIP
    >>> write_report(report, "greenprint-report")  # doctest: +SKIP
    {'html': PosixPath('greenprint-report/report.html'), ...}
"""

from __future__ import annotations

from greenprint import _public, _reprs
from greenprint.report._build import build_report
from greenprint.report._failure_text import notebook_html as _notebook_html
from greenprint.report._formats import (
    FORMATS,
    ReportFormat,
    render,
    resolve_formats,
    write_report,
)
from greenprint.report._model import (
    SCHEMA,
    Figure,
    ModelCardEmissions,
    Panel,
    Report,
    RunRow,
    Series,
)
from greenprint.report._plots import PLOTS_HINT

__all__ = [
    "FORMATS",
    "Figure",
    "ModelCardEmissions",
    "PLOTS_HINT",
    "Panel",
    "Report",
    "ReportFormat",
    "RunRow",
    "SCHEMA",
    "Series",
    "build_report",
    "render",
    "resolve_formats",
    "write_report",
]

_public.publish(__name__, globals())

# a notebook's view of a report (Report._repr_html_, in greenprint._reprs) lists why runs
# failed with this package's grouping of errors
_reprs.failures_html = _notebook_html
