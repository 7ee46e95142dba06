"""A ``%%greenprint`` cell hides its value after ``;`` and names itself in tracebacks (session 52).

"The cell runs as it would without them": but ``plt.plot(...);`` under ``%%greenprint`` still
showed its value (IPython hides a cell's value when its last line ends in ``;``), and a
traceback from the cell said ``Cell In[0], line 2`` for the ``raise`` typed on line 3 of cell 5.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, require_component):
    from greenprint._imports import is_available

    require_component(is_available("IPython"), "IPython is not installed (greenprint[notebook])")
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "greenprint.integrations.notebook")
    yield ip
    InteractiveShell.clear_instance()


def test_a_trailing_semicolon_hides_the_cells_value(shell) -> None:
    quiet = shell.run_cell("%%greenprint --ledger g.db\nx = 20\nx + 1;", store_history=True)
    assert quiet.success and quiet.result is None
    assert shell.user_ns["x"] == 20
    shown = shell.run_cell("%%greenprint --ledger g.db\nx + 1", store_history=True)
    assert shown.result == 21
    commented = shell.run_cell("%%greenprint --ledger g.db\nx + 2  # a; b", store_history=True)
    assert commented.result == 22  # a ';' in a comment hides nothing


def test_a_traceback_names_the_cell_and_the_line_as_typed(shell, capsys) -> None:
    shell.run_cell("y = 1", store_history=True)
    failed = shell.run_cell(
        "%%greenprint --ledger g.db\ny = 2\nraise ValueError(y)", store_history=True
    )
    assert not failed.success
    number = failed.execution_count
    shown = capsys.readouterr()
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.out + shown.err)  # IPython's colours
    assert f"In[{number}], line 3" in text, text[-2000:]
    assert "In[0]" not in text
