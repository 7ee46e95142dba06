"""The HTML report's tables, built a column at a time, are the cell-by-cell markup exactly.

``_html._table`` escapes each column in one call over its joined text (or not at all when it
holds nothing to escape) and puts each row together from slices: the runs table of a
100,000-run study is a million cells. Every shortcut must give the markup of escaping and
wrapping each cell on its own, for any text (markup, quotes, NULs, non-strings), header and
row classes: ``_reference`` below is that markup, written out plainly.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from greenprint.report._html import _NUMERIC, _table


def _reference(
    header: Sequence[str], rows: Sequence[Sequence[object]], classes: Sequence[str]
) -> str:
    """One cell at a time: each escaped and wrapped as the report's CSS expects."""
    numeric = [h in _NUMERIC for h in header]
    numeric[2] = numeric[2] or list(header[:2]) == ["run", "status"]
    head = "".join(
        f"<th{' class=num' if numeric[k] else ''}>{html.escape(h, quote=True)}</th>"
        for k, h in enumerate(header)
    )
    body = []
    for k, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            text = html.escape(str(cell), quote=True)
            if header[j] == "params":
                cells.append(f'<td class="params">{text}</td>')
            elif header[j] == "status":
                cells.append(f'<td><span class="status s-{text}">{text}</span></td>')
            else:
                cells.append(f"<td{' class=num' if numeric[j] else ''}>{text}</td>")
        name = classes[k] if k < len(classes) else ""
        body.append(
            f"<tr{f' class={chr(34)}{name}{chr(34)}' if name else ''}>{''.join(cells)}</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


#: The runs table's header (``_tables.runs_table``).
_RUNS_HEADER = "run status accuracy energy CO2-eq FPO time examples params id".split()
_HEADERS = st.sampled_from(
    [
        _RUNS_HEADER,
        ["status", "runs", "trials", "energy", "CO2-eq", "FPO", "run time"],
        ["role", "runs", "energy", "energy share"],
        ["run", "status", "score", "params"],
    ]
)
_CELLS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["finished", "pruned", "<b>", "a & b", '"q"', "it's", "\x00", "24.7 Wh", ""]),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.none(),
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[object]], list[str]]:
    header = draw(_HEADERS)
    count = draw(st.integers(0, 40))
    # a column draws from a few values (repeated, as statuses and units are) or many
    pools = [draw(st.lists(_CELLS, min_size=1, max_size=draw(st.integers(1, 12)))) for _ in header]
    rows = [[draw(st.sampled_from(pool)) for pool in pools] for _ in range(count)]
    classes = draw(st.lists(st.sampled_from(["", "final", "total"]), max_size=count + 3))
    return header, rows, classes


@settings(max_examples=300, deadline=None)
@given(tables())
def test_a_table_is_its_cells_escaped_and_wrapped_one_by_one(
    table: tuple[list[str], list[list[object]], list[str]],
) -> None:
    header, rows, classes = table
    assert _table(header, rows, classes=classes) == _reference(header, rows, classes)


def test_a_long_runs_table_with_markup_in_one_column() -> None:
    header = _RUNS_HEADER
    rows = [
        [f"trial-{k}", ("finished", "pruned", "failed")[k % 3], f"0.{k}", "24.7 Wh", "9.39 g",
         "5.88 PFPO", "7m 40s", "50,000", "model=<vit>" if k == 700 else "model=cnn", f"{k:08x}"]
        for k in range(2000)
    ]  # fmt: skip
    classes = ["final" if k == 1234 else "" for k in range(2000)]
    assert _table(header, rows, classes=classes) == _reference(header, rows, classes)


def test_rows_of_no_cells_and_no_rows() -> None:
    header = ["run", "status", "score"]
    for rows in ([], [[], []]):
        assert _table(header, rows) == _reference(header, rows, [])
