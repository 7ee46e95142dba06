"""The format registry (the one list of report formats), ``render`` and ``write_report``."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from greenprint._exceptions import ReportError
from greenprint._gc import gc_paused
from greenprint.report._html import render_html
from greenprint.report._json import render_json, write_json
from greenprint.report._latex import render_latex
from greenprint.report._markdown import FIGURE_DIR, render_markdown
from greenprint.report._model import Report
from greenprint.report._plots import FigureRenderer, figure_file_name

__all__ = [
    "FORMATS",
    "ReportFormat",
    "check_out_dir",
    "prepare_out_dir",
    "render",
    "resolve_formats",
    "study_slug",
    "write_report",
]


@dataclass(frozen=True)
class ReportFormat:
    """One output format of a report.

    Attributes:
        name: the name used by ``--format`` and ``formats=`` (``"html"``...).
        file_name: the file written in the output directory (``"report.html"``).
        description: one line for help texts.
        figure_ext: the image files written beside it in ``figures/`` (``"png"``, ``"pdf"``),
            or ``None`` when the document holds its figures itself (HTML: inline SVG; JSON: the
            figures' data).
        render: ``render(report, plots) -> str``, the document's text.
        aliases: other accepted names.
        stream: ``stream(report, plots, handle)`` writes the same text to a file piece by
            piece (large documents: JSON), used by :func:`write_report` when given.
        inline_ext: the image format drawn into the document itself (HTML: ``"svg"``).
    """

    name: str
    file_name: str
    description: str
    figure_ext: str | None
    render: Callable[[Report, FigureRenderer], str]
    aliases: tuple[str, ...] = ()
    stream: Callable[[Report, FigureRenderer, TextIO], None] | None = None
    inline_ext: str | None = None


_REGISTRY: dict[str, ReportFormat] = {}


def _register(fmt: ReportFormat) -> None:
    for key in (fmt.name, *fmt.aliases):
        if key in _REGISTRY or any(key in f.aliases for f in _REGISTRY.values()):
            raise ValueError(f"report format name {key!r} registered twice")
    _REGISTRY[fmt.name] = fmt


_register(
    ReportFormat(
        "html",
        "report.html",
        "one self-contained HTML file (inline SVG plots), readable offline",
        None,
        render_html,
        aliases=("htm",),
        inline_ext="svg",
    )
)
_register(
    ReportFormat(
        "md",
        "report.md",
        "Markdown with PNG plots in figures/",
        "png",
        render_markdown,
        aliases=("markdown",),
    )
)
_register(
    ReportFormat(
        "latex",
        "report.tex",
        "LaTeX with booktabs tables and PDF plots in figures/",
        "pdf",
        render_latex,
        aliases=("tex",),
    )
)
_register(
    ReportFormat(
        "json",
        "report.json",
        "every run and figure's data (schema greenprint.report/2)",
        None,
        render_json,
        stream=write_json,
    )
)

#: name -> format, in output order. The single source of truth for the API and the CLI.
FORMATS: Mapping[str, ReportFormat] = MappingProxyType(_REGISTRY)


def resolve_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical format names from names, aliases, ``"all"`` or comma-separated lists.

    Raises:
        ReportError: an unknown format (the message lists the known ones), or none at all.
    """
    items = [formats] if isinstance(formats, str) else list(formats)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ReportError(f"a report format must be a string, not {item!r}")
        for part in item.split(","):
            key = part.strip().lower()
            if not key:
                continue
            if key == "all":
                names.extend(FORMATS)
                continue
            found = next(
                (f.name for f in FORMATS.values() if key == f.name or key in f.aliases), None
            )
            if found is None:
                known = ", ".join([*FORMATS, "all"])
                raise ReportError(f"unknown report format {part.strip()!r}; known: {known}")
            names.append(found)
    if not names:
        raise ReportError(f"no report format given; known: {', '.join([*FORMATS, 'all'])}")
    return tuple(dict.fromkeys(names))


def render(report: Report, fmt: str, *, plots: bool | FigureRenderer = True) -> str:
    """One format's document text (figure files are not written: see :func:`write_report`).

    Args:
        report: the report.
        fmt: a format name or alias (``"html"``, ``"md"``, ``"latex"``, ``"json"``).
        plots: draw plots (needs matplotlib); ``False`` shows a note instead; or a
            :class:`FigureRenderer` to reuse.

    Raises:
        ReportError: an unknown format.
    """
    names = resolve_formats([fmt])
    if len(names) != 1:
        raise ReportError(f"render() takes one format, not {fmt!r}; write_report takes several")
    renderer = plots if isinstance(plots, FigureRenderer) else FigureRenderer(enabled=plots)
    return FORMATS[names[0]].render(report, renderer)


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Check, without creating anything, that ``out_dir`` could be created and written.

    Raises:
        ReportError: it (or its nearest existing parent) is not a writable directory.
    """
    path = Path(out_dir)
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "exists and is not a directory" if existing == path else f"is under file {existing}"
        raise ReportError(f"output path {path} {what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ReportError(f"output directory {path} is not writable ({existing} is read-only)")
    return path


def study_slug(study: str, studies: Iterable[str]) -> str:
    """A study's name as part of a folder's (or an artifact path's) name, apart from the others'.

    ``cifar sweep/2`` -> ``cifar-sweep-2``. When another of ``studies`` (the ledger's) makes the
    same name, in any case (``cifar sweep`` and ``cifar/sweep``; ``Sweep`` and ``sweep`` share
    a folder on a case-insensitive disk), the name ends in 8 hex digits of the study's name's
    SHA-256, so that neither study's report replaces the other's.
    """
    slug = _slug(study)
    if any(_slug(other).lower() == slug.lower() for other in studies if other != study):
        slug += "-" + hashlib.sha256(study.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return slug


def _slug(study: str) -> str:
    return re.sub(r"[^\w.-]+", "-", study).strip("-.")[:80] or "study"


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create the output directory if needed and check that it can be written.

    Raises:
        ReportError: it cannot be created, is not a directory, or is not writable.
    """
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise ReportError(f"output path {path} exists and is not a directory") from e
    except OSError as e:
        raise ReportError(f"cannot create output directory {path}: {e.strerror or e}") from e
    if not path.is_dir():
        raise ReportError(f"output path {path} exists and is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ReportError(f"output directory {path} is not writable")
    return path


def _write(path: Path, data: bytes | str | Callable[[TextIO], None]) -> None:
    """Write atomically: a temporary file in the same folder, then renamed over ``path``.

    Text is written as UTF-8 in chunks (no second, encoded copy of a 75 MB report in memory).
    """
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise ReportError(f"cannot write in {path.parent}: {e.strerror or e}") from e
    try:
        if callable(data):
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as text_handle:
                data(text_handle)
        elif isinstance(data, str):
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as text_handle:
                for start in range(0, len(data), 1 << 20):
                    text_handle.write(data[start : start + (1 << 20)])
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as e:
        Path(temp).unlink(missing_ok=True)
        raise ReportError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:  # a writer that fails leaves no temporary file behind
        Path(temp).unlink(missing_ok=True)
        raise


def write_report(
    report: Report,
    out_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = ("html", "md", "latex", "json"),
    *,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the report in each format into ``out_dir`` (created if needed).

    Files: ``report.html``, ``report.md``, ``report.tex``, ``report.json``, and the plots in
    ``figures/`` (PNG for Markdown, PDF for LaTeX). Existing report files are replaced
    atomically; nothing else in ``out_dir`` is touched. Without matplotlib the documents say
    that plots need ``pip install 'greenprint[report]'`` and no image is written.

    Args:
        report: the report.
        out_dir: the output directory.
        formats: format names or aliases, ``"all"``, or a comma-separated string.
        plots: draw plots (``False`` skips matplotlib entirely).

    Returns:
        Format name -> path of the document written, in the order asked.

    Raises:
        ReportError: an unknown format, or an output directory that cannot be written.
    """
    names = resolve_formats(formats)
    out = prepare_out_dir(out_dir)
    # each figure laid out once for every image format the documents hold
    exts = [e for n in names for e in (FORMATS[n].figure_ext, FORMATS[n].inline_ext) if e]
    renderer = FigureRenderer(enabled=plots, exts=exts)
    written: dict[str, Path] = {}
    for name in names:
        fmt = FORMATS[name]
        if fmt.figure_ext and renderer.available and report.figures:
            figures = out / FIGURE_DIR
            prepare_out_dir(figures)
            for figure in report.figures:
                image = renderer.image(figure, fmt.figure_ext)
                _write(figures / figure_file_name(figure, fmt.figure_ext), image)
        path = out / fmt.file_name
        if fmt.stream is not None:
            _write(path, functools.partial(fmt.stream, report, renderer))
        else:
            with gc_paused():  # a row of strings per run (see gc_paused)
                text = fmt.render(report, renderer)
            _write(path, text)
            del text
        written[name] = path
    return written
