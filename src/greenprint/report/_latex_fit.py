r"""Tables of the LaTeX report that stay readable in one column of a two-column paper.

A tabular wider than its column used to be scaled down to fit it (``\resizebox``): a study of
scikit-learn searches, whose runs are named ``RandomizedSearchCV-RandomForestClassifier-c2``,
had its efficiency table set in 5 pt type when pasted into a two-column article. Now a table
keeps its type size (``\footnotesize``, 8 pt, in one column; ``\small``, 9 pt, in a ``table*``)
and, when its names would make it wider than the narrowest common column, its name column wraps
instead: a ``p`` column as wide as the line less the other columns (estimated from Latin
Modern's widths, a little generously), each name breakable after ``-`` ``_`` ``.`` ``/`` ``=``
``:`` and between the words of a CamelCase name (the word never hyphenated: a hyphen would read
as part of the name), its next lines indented. The name is never shortened: every row keeps the
name the other formats show. The scale-down guard (:data:`FIT`) stays for what a name column
cannot absorb (a metric name of 60 characters in a number column); the type is then scaled.

Nothing here needs a package beyond ``booktabs`` and ``graphicx``, which the paste asks for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from greenprint.report._escape import latex_text as esc

__all__ = [
    "COLUMN_PT",
    "FIT",
    "FOOTNOTESIZE_EM",
    "PAGE_PT",
    "SMALL_EM",
    "fit_names",
    "name_cell",
    "stacked",
    "wrap_width",
]

#: A tabular wider than the line is scaled down to it: a safety net, never the layout.
FIT = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{"

#: The narrowest common column and page of a two-column paper, pt: ``article``'s on A4
#: (``twocolumn,a4paper``: 221 pt and 452 pt; on letter paper 229.5 and 469; IEEEtran 252,
#: acmart 241). A table whose names would make it wider wraps them.
COLUMN_PT = 221.0
PAGE_PT = 452.0

#: An em of ``\footnotesize`` and of ``\small`` type in a 10 pt paper, pt: Latin Modern's
#: (``\fontdimen6``; its 8 pt type is 8.5 pt to the em, its 9 pt 9.25), wider than most.
FOOTNOTESIZE_EM = 8.5
SMALL_EM = 9.25

#: The narrowest name column, em: a dozen characters a line.
_MIN_NAME_EM = 6.0

#: The estimates are of Latin Modern, to within a few percent: a table is taken as that much
#: wider than its cells add up to.
_MARGIN = 1.03

#: Latin Modern's (Computer Modern's) advance widths, em, rounded up: a character not listed
#: counts 0.8 em, as do a command (``\textmu{}``) and a formula (``$\dagger$``).
_WIDTH_EM: dict[str, float] = {
    **dict.fromkeys("ijl!'.,:;[]|", 0.28),
    **dict.fromkeys('fjt()rs"', 0.4),
    **dict.fromkeys("-", 0.34),
    **dict.fromkeys("ceIz?", 0.45),
    **dict.fromkeys("0123456789ago*/`{}$", 0.5),
    **dict.fromkeys("bdhknpquvxy^~JS", 0.56),
    **dict.fromkeys("LZ", 0.63),
    **dict.fromkeys("EFPT", 0.69),
    **dict.fromkeys("wABCDGHKNOQRUVXY_", 0.79),
    **dict.fromkeys("m#%&+<=>@", 0.84),
    " ": 0.34,
    "M": 0.92,
    "W": 1.03,
}
_OTHER_EM = 0.8

_STACK_OPEN = r"\begin{tabular}[t]{@{}r@{}}"
_STACK_CLOSE = r"\end{tabular}"


def _width_em(cell: str) -> float:
    """About how wide a LaTeX cell is set, em (the widest line of a :func:`stacked` cell)."""
    if cell.startswith(_STACK_OPEN):
        inner = cell[len(_STACK_OPEN) : cell.rindex(_STACK_CLOSE)]
        return max(_width_em(line) for line in inner.split(r" \\ "))
    text = cell.replace(r"\allowbreak{}", "")
    text = re.sub(r"\$[^$]*\$", "\0", text)  # a formula: a symbol
    text = re.sub(r"\\[A-Za-z]+(\{\})?", "\0", text)  # a command: a character
    text = re.sub(r"\\(.)", r"\1", text).replace("{", "").replace("}", "")
    return sum(_WIDTH_EM.get(ch, _OTHER_EM) for ch in text)


def stacked(first: str, second: str) -> str:
    """Two lines in one right-aligned cell (LaTeX already): a score over its metric's name."""
    return f"{_STACK_OPEN}{first} \\\\ {second}{_STACK_CLOSE}"


def _fits(columns: Sequence[Sequence[str]], *, em_pt: float, sep_pt: float, line_pt: float) -> bool:
    """Whether a table of ``columns`` (LaTeX cells) is narrower than ``line_pt``, pt."""
    widths = [max(map(_width_em, column), default=0.0) for column in columns]
    return sum(widths) * em_pt * _MARGIN + 2 * (len(columns) - 1) * sep_pt <= line_pt


def wrap_width(
    columns: Sequence[Sequence[str]], *, em_pt: float, sep_pt: float, line_pt: float
) -> str | None:
    r"""The width of a wrapping first column, or ``None`` when the table fits ``line_pt`` as is.

    Args:
        columns: each column's cells, LaTeX (header and units lines included); the first is the
            names.
        em_pt: an em of the table's type, pt (:data:`FOOTNOTESIZE_EM`, :data:`SMALL_EM`).
        sep_pt: ``\tabcolsep``, pt (the table is ``@{}`` at both ends).
        line_pt: the line it must fit, pt (:data:`COLUMN_PT`, or :data:`PAGE_PT` for a
            ``table*``).

    Returns:
        ``\dimexpr\linewidth-<others>\relax``: the line less the other columns, so that the
        table fills the line it is pasted into; a fixed ``6em`` when the others leave less.
        ``None`` too when the names are not what makes it too wide.
    """
    if _fits(columns, em_pt=em_pt, sep_pt=sep_pt, line_pt=line_pt):
        return None
    widths = [max(map(_width_em, column), default=0.0) for column in columns]
    seps = 2 * (len(columns) - 1)
    others = round(sum(widths[1:]) * _MARGIN + 0.05, 2)
    room_em = (line_pt - seps * sep_pt) / em_pt - others
    if room_em >= widths[0] * _MARGIN:
        return None  # the names are not what is too wide: nothing to wrap (the guard scales)
    if room_em < _MIN_NAME_EM:
        # the guard then scales it, least of all evils; names narrower than that stay as they are
        return f"{_MIN_NAME_EM:g}em" if widths[0] > _MIN_NAME_EM else None
    return f"\\dimexpr\\linewidth-{others}em-{seps}\\tabcolsep\\relax"


# Where a name may break: after a separator, or between a lower-case letter or digit and an
# upper-case one (Randomized|Search, CV-|Logistic); a run of more than _CHUNK characters with
# neither breaks every _CHUNK characters.
_BREAK_AFTER = frozenset("-_/.=:,")
_CHUNK = 10


def _chunks(name: str) -> list[str]:
    out, start = [], 0
    for k, ch in enumerate(name):
        nxt = name[k + 1 : k + 2]
        camel = (ch.islower() or ch.isdigit()) and nxt.isupper()
        long = k + 1 - start >= _CHUNK and nxt not in _BREAK_AFTER  # never before a "-"
        if (ch in _BREAK_AFTER or camel or long) and nxt:
            out.append(name[start : k + 1])
            start = k + 1
    out.append(name[start:])
    return out


# A wrapping cell: ragged right, its next lines indented (one name, not two rows)
_WRAP = r"\raggedright\hangindent=1em "


def name_cell(name: str, mark: str = "", *, wrap: bool, lead: str = "") -> str:
    r"""A name (raw text, escaped here) and its marks (LaTeX) for a table's first column.

    ``mark`` follows the name (``" $\star$"``), ``lead`` comes before it (``"$\diamond$ "``).
    ``wrap``: the cell of a wrapping column (:func:`wrap_width`): set ragged right, breakable
    (``\allowbreak``), its next lines indented by 1 em so that a reader sees one name.
    """
    if not wrap:
        return lead + esc(name) + mark
    parts = r"\allowbreak{}".join(esc(c) for c in _chunks(name) if c)
    return _WRAP + lead + parts + mark


def _stacked(cell: str) -> str:
    r"""``"0.96 (test\_accuracy)"`` as two lines, the metric's name under the score."""
    score, named, rest = cell.partition(" (")
    return stacked(score, "(" + rest) if named else cell


def fit_names(
    heads: Sequence[Sequence[str]],
    rows: Sequence[Sequence[str]],
    align: str,
    *,
    names: Sequence[tuple[str, str] | tuple[str, str, str]] | None,
    stack: Sequence[int] = (),
    em_pt: float,
    sep_pt: float,
    line_pt: float,
) -> tuple[str, list[list[str]]]:
    r"""A table's column types and rows, its names wrapped if it would be wider than ``line_pt``.

    Args:
        heads: its header lines (LaTeX cells).
        rows: its rows (LaTeX cells); the first column is the names.
        align: its column types (``"lrrr"``); the first is replaced by a ``p`` column when the
            names wrap.
        names: each row's name (raw text) and mark (LaTeX: ``" $\star$"``), and the mark
            before it if any (``"$\diamond$ "``): :func:`name_cell`'s. ``None``: the first
            cells as they are (labels such as ``"trials (the search)"``, which wrap at spaces).
        stack: columns whose cells ``"0.96 (test\_accuracy)"`` put what is in parentheses
            under the rest (the metric's name under the score) before the names wrap.
        em_pt: an em of its type, pt (:data:`FOOTNOTESIZE_EM`, :data:`SMALL_EM`).
        sep_pt: its ``\tabcolsep``, pt.
        line_pt: the line it must fit, pt (:data:`COLUMN_PT`; :data:`PAGE_PT` for a ``table*``).

    Returns:
        ``align`` and ``rows`` as they were when the table fits, else the wrapping ones.
    """

    def columns(cells: Sequence[Sequence[str]]) -> list[list[str]]:
        return [list(c) for c in zip(*heads, *cells, strict=True)]

    out = [list(r) for r in rows]
    if not out or _fits(columns(out), em_pt=em_pt, sep_pt=sep_pt, line_pt=line_pt):
        return align, out
    # what is in parentheses under the rest, then the names wrap if still too wide
    out = [[_stacked(c) if k in stack else c for k, c in enumerate(r)] for r in out]
    width = wrap_width(columns(out), em_pt=em_pt, sep_pt=sep_pt, line_pt=line_pt)
    if width is None:
        return align, out
    if names is None:
        return f"p{{{width}}}" + align[1:], [[_WRAP + r[0], *r[1:]] for r in out]
    named = zip(names, out, strict=True)
    wrapped = [[name_cell(n[0], n[1], wrap=True, lead="".join(n[2:])), *r[1:]] for n, r in named]
    return f"p{{{width}}}" + align[1:], wrapped
