"""The JSON report: every run and every figure's data, in a versioned layout.

The layout is ``docs/report-schema.json`` (``"schema": "greenprint.report/2"``).

Strict JSON: NaN and infinities are written as ``null`` (figures) or strings (parameters), never
as the non-standard ``NaN`` token. Written compact (no indentation): a study of 10,000 trials
makes a file of a few MB; ``python -m json.tool report.json`` pretty-prints it.
"""

from __future__ import annotations

import json

from greenprint._gc import gc_paused
from greenprint.report._model import Report
from greenprint.report._plots import FigureRenderer

__all__ = ["render_json"]


def render_json(report: Report, plots: FigureRenderer | None = None) -> str:
    """The report as a JSON document (UTF-8 text; ``plots`` is not used)."""
    with gc_paused():  # report.to_dict() builds a dict per run (see gc_paused)
        document = report.to_dict()
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
