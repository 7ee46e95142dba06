"""The world row read alone (a run with no region) is the row of the full tables."""

from __future__ import annotations

from greenprint.carbon import _regions


def test_the_world_row_alone_equals_the_full_tables_row():
    alone = _regions._world_only()
    assert alone == _regions._tables().by_code["world"]
    assert _regions.world() == alone and alone.kind == "world"


def test_every_record_of_the_shipped_tables_is_one_line():
    import csv
    from pathlib import Path

    data = Path(_regions.__file__).with_name("data")
    for name in ("aliases.csv", "regions.csv", "sources.csv"):
        text = (data / name).read_text("utf-8")
        records = list(csv.reader(text.splitlines(keepends=True)))
        assert len(records) == len(text.splitlines()), name
