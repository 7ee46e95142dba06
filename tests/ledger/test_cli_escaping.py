"""What a run recorded reaches a terminal and a spreadsheet safely: `ledger ls|show|export`."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from greenprint import MetricPoint
from greenprint.cli import main
from greenprint.ledger import Ledger

from .conftest import make_record

NEWLINE = "evil\ne151758c  forged  row"
ESCAPE = "\x1b[31mred\x1b[0m"
RETURN = "over\rwritten"
LONG = "x" * 500
BIDI = "abc\u202edcba"
FORMULA = '=HYPERLINK("http://example.invalid","click")'
NAMES = (NEWLINE, ESCAPE, RETURN, LONG, BIDI, FORMULA)


@pytest.fixture
def hostile_ledger(tmp_path) -> Path:
    path = tmp_path / "hostile.db"
    now = time.time()
    with Ledger(path) as led:
        for k, name in enumerate(NAMES):
            led.start_run(
                make_record(
                    f"{k:04d}" + "b" * 28,
                    name=name,
                    study="s\nt" if k == 0 else "s",
                    status="finished",
                    started_at=now - 100 + k,
                    duration_s=1.0,
                    energy_kwh=0.5,
                    emissions_kg=0.25,
                    error="boom\x1b[2J" if k == 1 else None,
                    params={
                        "cmd": "-2+3+cmd|' /C calc'!A0",
                        "at": "@SUM(1+1)*cmd|' /C calc'!A0",
                        "plus": "+1+1",
                        "tab": "\t=1+1",
                        "neg": -3.5,
                        "negtext": "-3.5",
                        "plain": "adam",
                    },
                    metrics=(MetricPoint("loss", -0.75, 1, now), MetricPoint("=bad", 1.0, 1, now)),
                )
            )
    return path


def _no_control(text: str) -> None:
    for line in text.splitlines():
        assert "\x1b" not in line and "\r" not in line and "\u202e" not in line, repr(line)


def test_ls_escapes_control_characters_and_shortens_long_names(hostile_ledger, capsys):
    assert main(["ledger", "ls", "--ledger", str(hostile_ledger)]) == 0
    out = capsys.readouterr().out
    _no_control(out)
    lines = out.splitlines()
    assert len(lines) == 1 + len(NAMES)  # a header and one line per run: nothing forged
    assert "evil\\ne151758c  forged  row" in out
    assert "\\x1b[31mred\\x1b[0m" in out
    assert "over\\rwritten" in out
    assert "abc\\u202edcba" in out
    assert "s\\nt" in out
    assert LONG not in out and "x" * 39 + "\u2026" in out
    assert all(len(line) < 250 for line in lines)


def test_show_escapes_every_recorded_text(hostile_ledger, capsys):
    for k, name in enumerate(NAMES):
        assert main(["ledger", "show", f"{k:04d}bbbb", "--ledger", str(hostile_ledger)]) == 0
        out = capsys.readouterr().out
        _no_control(out)
        name_lines = [line for line in out.splitlines() if line.strip().startswith("name ")]
        assert len(name_lines) == 1
        if name == LONG:
            assert LONG in out  # show gives the whole name
    assert main(["ledger", "show", "0001bbbb", "--ledger", str(hostile_ledger)]) == 0
    assert "boom\\x1b[2J" in capsys.readouterr().out


def test_json_output_keeps_names_whole_and_escaped_by_json(hostile_ledger, capsys):
    assert main(["ledger", "ls", "--json", "--ledger", str(hostile_ledger)]) == 0
    out = capsys.readouterr().out
    _no_control(out)
    assert [item["name"] for item in json.loads(out)] == list(NAMES)


def test_csv_export_quotes_formulas_and_keeps_numbers(hostile_ledger, capsys):
    assert main(["ledger", "export", "--ledger", str(hostile_ledger)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(NAMES)
    by_name = {row["name"]: row for row in rows}
    # every name comes back through the csv module; the formula one with a leading quote
    assert set(by_name) == {*(n for n in NAMES if n != FORMULA), "'" + FORMULA}
    row = rows[0]
    assert row["params.cmd"] == "'-2+3+cmd|' /C calc'!A0"
    assert row["params.at"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert row["params.plus"] == "'+1+1"
    assert row["params.tab"] == "'\t=1+1"
    assert row["params.plain"] == "adam"
    # numbers stay numbers, negative ones included, and so does text that is a plain number
    assert float(row["params.neg"]) == -3.5 and row["params.neg"] == "-3.5"
    assert row["params.negtext"] == "-3.5"
    assert float(row["metric.loss"]) == -0.75
    assert float(row["energy_kwh"]) == 0.5
    # no text cell of the export starts a formula
    for row in rows:
        for value in row.values():
            if value and value[0] in "=+-@\t\r":
                float(value)  # only plain numbers may start so


def test_csv_export_to_a_file_round_trips(hostile_ledger, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    argv = ["ledger", "export", "--ledger", str(hostile_ledger), "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["name"] for row in rows][:3] == [NEWLINE, ESCAPE, RETURN]
