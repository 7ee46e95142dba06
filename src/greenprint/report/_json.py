"""The JSON report: every run and every figure's data, in a versioned layout.

The layout is ``docs/report-schema.json`` (``"schema": "greenprint.report/2"``).

Strict JSON: NaN and infinities are written as ``null`` (figures) or strings (parameters), never
as the non-standard ``NaN`` token. Written compact (no indentation): a study of 10,000 trials
makes a file of a few MB; ``python -m json.tool report.json`` pretty-prints it.
"""

from __future__ import annotations

import io
import json
from typing import TextIO

from greenprint._gc import gc_paused
from greenprint.report._model import Report
from greenprint.report._plots import FigureRenderer

__all__ = ["render_json", "write_json"]


def render_json(report: Report, plots: FigureRenderer | None = None) -> str:
    """The report as a JSON document (UTF-8 text; ``plots`` is not used)."""
    out = io.StringIO()
    write_json(report, plots, out)
    return out.getvalue()


def write_json(report: Report, plots: FigureRenderer | None, handle: TextIO) -> None:
    """Write the JSON document to a text file, one run at a time.

    The runs are encoded and written one by one, so the whole document never sits in memory
    as dictionaries or as one string (100,000 runs: about 75 MB of text).
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    with gc_paused():  # a dict per run (see gc_paused)
        head = encoder.encode(report.to_dict(with_runs=False))
        handle.write(head[:-1] + ',"runs":[')
        for k, row in enumerate(report.runs):
            if k:
                handle.write(",")
            handle.write(encoder.encode(row.to_dict()))
        handle.write("]}\n")
