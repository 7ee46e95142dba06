"""Notebooks: HTML reprs that escape user text, and the %greenprint magics in a real IPython."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

import greenprint as gp

HOSTILE = '<script>alert("x")</script> & <b>'


def _assert_escaped(markup: str) -> None:
    assert "<script>" not in markup and "<b>" not in markup
    assert html.escape(HOSTILE, quote=True) in markup


def _hostile_ledger(tmp_path: Path) -> Path:
    db = tmp_path / "g.db"
    for i, status in enumerate(("finished", "failed")):
        run = gp.track(HOSTILE + str(i), study=HOSTILE, ledger=db, params={HOSTILE: HOSTILE})
        with run:
            run.log(**{"accuracy": 0.5 + i / 10})
            run.set(role="trial")
        if status == "failed":
            gp.Ledger(db).flush(run.id, fields={"status": "failed", "error": HOSTILE})
    return db


def test_run_repr_html_escapes_names_and_shows_figures() -> None:
    run = gp.track(HOSTILE, study=HOSTILE, ledger=False, params={"lr": HOSTILE})
    with run:
        run.log(**{HOSTILE: 1.0})
    markup = run._repr_html_()
    _assert_escaped(markup)
    for label in ("energy", "CO2-eq", "duration", "finished", run.id):
        assert label in markup


def test_price_tag_and_report_repr_html_escape(tmp_path: Path) -> None:
    from greenprint.analysis import price_tag
    from greenprint.report import build_report

    db = _hostile_ledger(tmp_path)
    runs = gp.Ledger(db).runs(study=HOSTILE)
    tag_html = price_tag(runs, metric="accuracy")._repr_html_()
    _assert_escaped(tag_html)
    assert "failed" in tag_html and "total" in tag_html
    report_html = build_report(db, HOSTILE)._repr_html_()
    _assert_escaped(report_html)
    assert "<style" not in report_html and "<html" not in report_html  # a fragment


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


def test_cell_magic_tracks_a_cell_and_keeps_its_value(shell, tmp_path: Path, capsys) -> None:
    result = shell.run_cell(
        "%%greenprint --name 'fit small' --study nb --ledger g.db --role baseline\n"
        "total = sum(range(1000))\ntotal * 2"
    )
    assert result.success and result.result == 999000
    assert shell.user_ns["total"] == 499500
    (run,) = gp.Ledger(tmp_path / "g.db").runs(study="nb")
    assert (run.name, run.status, run.role) == ("fit small", "finished", "baseline")
    assert shell.user_ns["_greenprint_run"].id == run.id
    assert f"run {run.id[:8]}" in capsys.readouterr().out


def test_line_magic_returns_the_value(shell, tmp_path: Path) -> None:
    shell.run_cell("y = %greenprint --name line --study nb --ledger g.db sum(range(5))")
    assert shell.user_ns["y"] == 10
    (run,) = gp.Ledger(tmp_path / "g.db").runs(study="nb")
    assert run.name == "line" and run.status == "finished"


def test_a_failing_cell_is_recorded_and_still_fails(shell, tmp_path: Path) -> None:
    result = shell.run_cell("%%greenprint --study nb --ledger g.db\nraise ValueError('bad data')")
    assert not result.success and isinstance(result.error_in_exec, ValueError)
    (run,) = gp.Ledger(tmp_path / "g.db").runs(study="nb")
    assert run.status == "failed" and "bad data" in (run.error or "")


def test_a_cell_that_awaits_at_top_level_is_measured_while_it_runs(
    shell, tmp_path: Path, capsys
) -> None:
    """A notebook cell may ``await`` at top level (IPython's autoawait); with ``%%greenprint``
    it was a SyntaxError (the magic compiled the cell itself) and a failed run of 0 s."""
    shell.run_cell("import asyncio")
    result = shell.run_cell(
        "%%greenprint --name fetch --study nb --ledger g.db\n"
        "await asyncio.sleep(0.3)\n"
        "answer = 21\n"
        "answer * 2"
    )
    assert result.success and result.result == 42  # its value shown, as without the magic
    failing = shell.run_cell(
        "%%greenprint --name broken --study nb --ledger g.db\nawait asyncio.sleep(0)\n1 / 0"
    )
    assert isinstance(failing.error_in_exec, ZeroDivisionError)
    fetch, broken = gp.Ledger(tmp_path / "g.db").runs(study="nb")
    assert (fetch.name, fetch.status) == ("fetch", "finished")
    assert fetch.duration_s >= 0.3
    assert (broken.status, broken.error) == ("failed", "ZeroDivisionError: division by zero")
    assert shell.user_ns["_greenprint_run"].id == broken.id
    out = capsys.readouterr().out
    assert f"run {fetch.id[:8]}" in out and f"run {broken.id[:8]}" in out
    # loading the extension again does not rewrite the cells twice
    shell.run_line_magic("load_ext", "greenprint.integrations.notebook")
    shell.run_line_magic("reload_ext", "greenprint.integrations.notebook")
    marked = [t for t in shell.input_transformers_cleanup if getattr(t, "greenprint", False)]
    assert len(marked) == 1


def test_bad_options_are_one_line_usage_errors(shell, tmp_path: Path) -> None:
    from IPython.core.error import UsageError

    for cell in (
        "%%greenprint --colour green\n1",
        "%%greenprint --region XX --ledger g.db\n1",
        "%%greenprint --pue 0.2 --ledger g.db\n1",
        "%greenprint --name only-options",
    ):
        result = shell.run_cell(cell)
        assert isinstance(result.error_in_exec, UsageError), cell
    assert not (tmp_path / "g.db").exists()  # refused before anything was written


def test_parse_options() -> None:
    pytest.importorskip("IPython")
    from greenprint.integrations.notebook import parse_options

    assert parse_options("--name 'a b' --study=s -- x = 1") == (
        {"name": "a b", "study": "s"},
        "x = 1",
    )
    assert parse_options("  print(1)") == ({}, "print(1)")


# session 52: a %%greenprint cell hides its value after ';' and names itself in tracebacks
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
