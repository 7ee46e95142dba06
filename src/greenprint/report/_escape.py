r"""Escaping user text (run names, parameters, metric names) for each output format.

Every string that comes from the ledger goes through one of these before it is written, so a run
called ``<script>`` or ``50% of {data}\_x`` is shown as written and never interpreted.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

__all__ = ["html_section_table", "html_text", "latex_text", "markdown_text"]

_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    # a backtick is an opening quote to TeX ("``x``" typeset as “x“): the grave itself
    "`": r"\textasciigrave{}",
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
# Common typography beyond Latin-1, as LaTeX commands.
_LATEX_UNICODE = {
    "\u201c": "``",
    "\u201d": "''",
    "\u2018": "`",
    "\u2019": "'",
    "\u2013": "--",
    "\u2014": "---",
    "\u2026": r"\ldots{}",
    "\u00d7": r"$\times$",
    "\u00b1": r"$\pm$",
    "\u00b7": r"$\cdot$",
    "\u2192": r"$\rightarrow$",
    "\u2605": r"$\star$",
    "\u21b3": r"$\hookrightarrow$",
}
# Characters TeX joins with the same next one ("--" an en dash, "''" a closing double quote,
# ",," a low double quote in T1): "{}" after the first keeps them apart.
_LIGATURE_FIRST = frozenset("-',")
# Characters pdflatex with T1 and utf8 input typesets; others become "?" (no compile error).
_LATEX_MAX_CODEPOINT = 0x17F
# Brackets are escaped, so parentheses and "!" can never form a link or an image.
_MARKDOWN_SPECIAL = set("\\`*_[]<>|~#&$")


def html_text(text: object) -> str:
    """Text for HTML content and attribute values (``<``, ``>``, ``&``, quotes escaped)."""
    return html.escape(str(text), quote=True)


def latex_text(text: object, *, first: bool = True) -> str:
    r"""Text for LaTeX body text: specials escaped, control and exotic characters replaced.

    Typographic quotes, dashes and a few symbols become LaTeX commands; other characters beyond
    Latin Extended-A (which a default pdflatex may lack glyphs for) become ``?`` so that the
    document always compiles. Hyphens stay hyphens: ``--metric`` is typeset as two, not as an
    en dash (TeX's ``--`` ligature), so a command the report suggests reads as typed; so do
    quotes and commas (``KeyError: ''`` is two quotes, not TeX's closing double quote, ``,,``
    two commas, not a low quote) and backticks (a grave, not an opening quote). A text that
    starts with ``[`` or ``*`` starts with ``{}``, so that a table row's ``\\`` or rule before
    it does not read it as an argument (``first=False``: not a cell's start, a later piece of
    a text escaped in pieces).
    """
    out = []
    text = str(text)
    for i, ch in enumerate(text):
        if ch in _LIGATURE_FIRST and text[i + 1 : i + 2] == ch:
            out.append(ch + "{}")
        elif ch in _LATEX:
            out.append(_LATEX[ch])
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(" ")
        elif ord(ch) > _LATEX_MAX_CODEPOINT:
            out.append("?")
        else:
            out.append(ch)
    if first and text.lstrip()[:1] in ("[", "*"):
        # a table cell starts after ``\\`` or ``\midrule``, which read a ``[`` that follows (even
        # past spaces) as their optional argument and a ``*`` as their starred form: the run
        # ``[exp1] lr=0.1`` stopped the document ("Missing number"), ``*exp2`` lost its star
        out.insert(0, "{}")
    return "".join(out)


def markdown_text(text: object) -> str:
    """Text for Markdown (CommonMark, GitHub): punctuation that has a meaning is backslashed.

    Line breaks become spaces so that a value cannot end a table row.
    """
    out = []
    for ch in str(text):
        if ch in _MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        elif ch in "\r\n\t":
            out.append(" ")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def html_section_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    esc: Callable[[str], str],
    numeric: Callable[[int], bool],
) -> str:
    """A section's table as HTML in its on-screen scroll box, every cell escaped with ``esc``.

    The columns ``numeric`` says yes to (by position) are right-aligned and never wrapped
    (``class="num"``: "12 mg CO2-" over "eq" misreads a figure); the others are text, which
    may wrap. The what-if and efficiency sections' tables.
    """

    def cell(tag: str, k: int, text: str) -> str:
        num = ' class="num"' if numeric(k) else ""
        return f"<{tag}{num}>{esc(text)}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(header))
    lines = ("".join(cell("td", k, c) for k, c in enumerate(cells)) for cells in rows)
    body = "".join(f"<tr>{line}</tr>" for line in lines)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )
