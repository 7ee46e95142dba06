"""A run started in a notebook cell, and the same cell run again while that run is open.

``run = gp.track("fit"); run.start()`` in one cell and ``run.stop()`` in a later one is how
a notebook keeps a run open across cells. Running that first cell again (as notebook users
do) rebinds ``run`` to a new run while the first is still measuring: nothing can stop the
first any more, and the new run would nest inside it (its child, the first read as a sweep).
:func:`cell_of_caller` says which cell and line started a run; :func:`is_rerun` tells such a
re-run apart from runs nested on purpose (a sweep started in a cell and the trials of the same
cell run have the same execution count). Nothing here imports IPython: a process where it is
not loaded, or with no shell running, has no cells.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import FrameType
from typing import NamedTuple

__all__ = ["Cell", "cell_of_caller", "is_rerun"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class Cell(NamedTuple):
    """Where a run was started: the cell's source, the line in it, its execution count."""

    source: str
    line: int
    execution: int


def cell_of_caller() -> Cell | None:
    """The notebook cell whose code (outside greenprint) made this call, or ``None``."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    cells = getattr(getattr(shell, "compile", None), "_filename_map", None)
    if not isinstance(cells, dict) or not cells:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename not in cells:
        return None
    count = getattr(shell, "execution_count", None)
    source = "".join(linecache.getlines(frame.f_code.co_filename))
    return Cell(source, frame.f_lineno, count if isinstance(count, int) else 0)


def is_rerun(new: Cell | None, old: Cell | None) -> bool:
    """Whether ``new`` is the line that started ``old``, in a later run of the same cell."""
    return (
        new is not None
        and old is not None
        and (new.source, new.line) == (old.source, old.line)
        and new.execution != old.execution
    )
