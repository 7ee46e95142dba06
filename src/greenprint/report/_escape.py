r"""Escaping user text (run names, parameters, metric names) for each output format.

Every string that comes from the ledger goes through one of these before it is written, so a run
called ``<script>`` or ``50% of {data}\_x`` is shown as written and never interpreted.
"""

from __future__ import annotations

import html

__all__ = ["html_text", "latex_text", "markdown_text"]

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
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
# Characters pdflatex with T1 and utf8 input typesets; others become "?" (no compile error).
_LATEX_MAX_CODEPOINT = 0x17F
_MARKDOWN_SPECIAL = set("\\`*_[]<>|~#&!$()")


def html_text(text: object) -> str:
    """Text for HTML content and attribute values (``<``, ``>``, ``&``, quotes escaped)."""
    return html.escape(str(text), quote=True)


def latex_text(text: object) -> str:
    """Text for LaTeX body text: specials escaped, control and exotic characters replaced.

    Characters beyond Latin Extended-A (which a default pdflatex may lack glyphs for) become
    ``?`` so that the document always compiles.
    """
    out = []
    for ch in str(text):
        if ch in _LATEX:
            out.append(_LATEX[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(" ")
        elif ord(ch) > _LATEX_MAX_CODEPOINT:
            out.append("?")
        else:
            out.append(ch)
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
