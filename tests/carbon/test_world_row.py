"""The world row read alone (a run with no region) is the row of the full tables."""

from __future__ import annotations

from greenprint.carbon import _regions


def test_the_world_row_alone_equals_the_full_tables_row():
    alone = _regions._world_only()
    assert alone == _regions._tables().by_code["world"]
    assert _regions.world() == alone and alone.kind == "world"
