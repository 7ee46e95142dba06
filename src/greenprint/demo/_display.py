"""What the demo shows while it runs: a rich progress display, or plain log lines."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from greenprint._exceptions import MissingDependencyError
from greenprint._imports import require

__all__ = ["Display", "PlainDisplay", "RichDisplay", "make_display"]


class Display:
    """The demo's progress: phases with a number of steps, and one line per finished run."""

    def phase(self, title: str, total: int) -> None:
        """Start a phase of ``total`` steps."""

    def status(self, text: str) -> None:
        """Describe the step going on (e.g. the trial and epoch)."""

    def done(self, line: str) -> None:
        """A step finished: print its one-line result and advance."""

    def message(self, line: str) -> None:
        """Print a line."""

    def close(self) -> None:
        """Stop the display."""


class PlainDisplay(Display):
    """Plain lines with a timestamp (``--quiet``, or when rich is not installed)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._start = time.monotonic()
        self._title = ""
        self._total = 0
        self._count = 0

    def _print(self, line: str) -> None:
        elapsed = time.monotonic() - self._start
        self._stream.write(f"[{elapsed:6.1f}s] {line}\n")
        self._stream.flush()

    def phase(self, title: str, total: int) -> None:
        """Start a phase of ``total`` steps."""
        self._title, self._total, self._count = title, total, 0
        self._print(f"{title} ({total})")

    def done(self, line: str) -> None:
        """A step finished: print its one-line result and advance."""
        self._count += 1
        width = len(str(self._total))
        self._print(f"  {self._count:>{width}}/{self._total} {line}")

    def message(self, line: str) -> None:
        """Print a line."""
        self._print(line)


class RichDisplay(Display):
    """A rich progress bar per phase, with the current trial and epoch, above the log lines."""

    def __init__(self) -> None:
        purpose = "the demo's progress display"
        console = require("rich.console", extra="demo", purpose=purpose)
        progress = require("rich.progress", extra="demo", purpose=purpose)

        self.console = console.Console()
        self._progress = progress.Progress(
            progress.SpinnerColumn(),
            progress.TextColumn("[bold]{task.fields[title]}"),
            progress.BarColumn(),
            progress.MofNCompleteColumn(),
            progress.TimeElapsedColumn(),
            progress.TextColumn("{task.description}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task: Any = None

    def phase(self, title: str, total: int) -> None:
        """Start a phase of ``total`` steps."""
        if self._task is not None:
            self._progress.update(self._task, description="")
        self._task = self._progress.add_task("", total=total, title=title)

    def status(self, text: str) -> None:
        """Describe the step going on (e.g. the trial and epoch)."""
        if self._task is not None:
            self._progress.update(self._task, description=text)

    def done(self, line: str) -> None:
        """A step finished: print its one-line result and advance."""
        self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self._task is not None:
            self._progress.advance(self._task)

    def message(self, line: str) -> None:
        """Print a line."""
        self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the display."""
        if self._task is not None:
            self._progress.update(self._task, description="")
        self._progress.stop()


def make_display(*, quiet: bool) -> Display:
    """Rich progress when possible and not ``quiet``, else plain lines."""
    if not quiet:
        try:
            return RichDisplay()
        except MissingDependencyError:  # no rich: plain lines
            pass
    return PlainDisplay()
