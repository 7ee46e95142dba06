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
    """Write the JSON document to a text file, a chunk of runs at a time.

    The runs are encoded and written a thousand at a time, so the whole document never sits in memory
    as dictionaries or as one string (100,000 runs: about 75 MB of text).
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    rows = report.runs
    with gc_paused():  # a dict per run (see gc_paused)
        head = encoder.encode(report.to_dict(with_runs=False))
        handle.write(head[:-1] + ',"runs":[')
        # In chunks: one encoder call per run costs more than the encoding itself (each call
        # sets up the C encoder again); a chunk's dicts and text stay small.
        for start in range(0, len(rows), _CHUNK_ROWS):
            if start:
                handle.write(",")
            chunk = [row.to_dict() for row in rows[start : start + _CHUNK_ROWS]]
            handle.write(encoder.encode(chunk)[1:-1])
        handle.write("]}\n")


#: Runs encoded per encoder call (about 1 MB of text).
_CHUNK_ROWS = 1000
