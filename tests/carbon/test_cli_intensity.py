"""`greenprint intensity`: success, --json, --list, and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from greenprint.carbon import regions
from greenprint.cli import main

GREENPRINT = Path(sys.executable).with_name("greenprint")


def test_region_prints_value_unit_source_and_year(capsys):
    assert main(["intensity", "DE"]) == 0
    out = capsys.readouterr().out
    assert "380.95 g CO2-eq/kWh" in out
    assert "year:      2023" in out
    assert "source:    table:DE:2023 (Our World in Data / Ember)" in out
    assert "Germany" in out


def test_cloud_region_shows_its_grid(capsys):
    assert main(["intensity", "azure:westeurope"]) == 0
    out = capsys.readouterr().out
    assert "grid:      NL (Netherlands)" in out
    assert "g CO2-eq/kWh" in out


def test_json_output(capsys):
    assert main(["intensity", "deu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["region"] == "DE"
    assert data["unit"] == "g CO2-eq/kWh"
    assert (data["g_per_kwh"], data["year"], data["kind"]) == (380.95, 2023, "country")
    assert data["source"].startswith("table:DE:2023")
    assert data["url"].startswith("https://")


def test_list_text_and_json(capsys):
    assert main(["intensity", "--list"]) == 0
    out = capsys.readouterr().out
    assert "US-CA" in out and "aws:us-east-1" in out and "CA-QC" in out
    assert f"{len(regions())} regions" in out
    assert main(["intensity", "--list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == len(regions())
    assert {row["kind"] for row in data} == {"world", "country", "subdivision", "zone", "cloud"}
    assert main(["intensity", "--list", "--kind", "cloud", "--json"]) == 0
    clouds = json.loads(capsys.readouterr().out)
    assert clouds and all(row["kind"] == "cloud" and row["grid"] for row in clouds)


def test_no_region_shows_what_would_apply(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["intensity"]) == 0
    out = capsys.readouterr().out
    assert "default:world:2023" in out and "world average" in out
    monkeypatch.setenv("GREENPRINT_REGION", "FR")
    assert main(["intensity", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["region"] == "FR" and data["is_default"] is False
    assert data["source"].startswith("env:GREENPRINT_REGION -> table:FR:")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["intensity", "Germny"], "did you mean DE (Germany)"),
        (["intensity", "georgia"], "ambiguous"),
        (["intensity", "aws:us-east-9", "--json"], "aws:us-east-1"),
    ],
)
def test_unknown_region_is_one_line_and_exit_2(capsys, argv, fragment):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("greenprint: error: ") and fragment in lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["intensity", "DE", "--list"],
        ["intensity", "--kind", "cloud"],
        ["intensity", "--bogus"],
        ["intensity", "--list", "--kind", "planet"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenprint: error: ") and err.count("\n") == 1
    assert err.rstrip().endswith("(see 'greenprint intensity --help')")


def test_bad_configured_intensity_is_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREENPRINT_INTENSITY", "-1")
    assert main(["intensity"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GREENPRINT_INTENSITY" in err and "0 < x <= 2000" in err


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GREENPRINT), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_real_subprocess(tmp_path):
    assert GREENPRINT.exists(), GREENPRINT
    ok = _run("intensity", "aws:us-east-1", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["region"] == "aws:us-east-1" and data["grid"] == "US-VA"
    assert data["source"] == "table:aws:us-east-1:2023 (grid US-VA; EPA eGRID2023)"

    bad = _run("intensity", "Germny", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "did you mean DE (Germany)" in bad.stderr
