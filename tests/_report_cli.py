"""``greenprint`` run as a new user runs it, for the tests that read its reports.

Shared by ``test_new_user_reports.py`` and the outside checks (``test_outside_*.py``): a
command run in a directory with a clean environment, an empty home for a study, the report it
writes, and its exports read against the report.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from _clean_env import BIN, clean_env, configured_above
from _script_fork import run_script

#: The virtual environment's ``greenprint`` command.
GREENPRINT = str(BIN / "greenprint")

#: A script's first lines: ``import greenprint as gp`` and ``hourly.csv`` written, 48 hours from
#: yesterday 00:00 UTC at 150 g/kWh at 00:00 up to 495 at 23:00 (its mean: 322.5 g/kWh), for a
#: run priced hour by hour (``intensity="hourly.csv"``) whose recorded mean must not be the file's.
HOURLY_CSV_SCRIPT = """\
import time

import greenprint as gp

midnight = int(time.time()) // 86400 * 86400 - 86400  # yesterday, 00:00 UTC
with open("hourly.csv", "w") as f:
    f.write("timestamp,g_per_kwh\\n")
    for hour in range(48):  # 150 g/kWh at 00:00 up to 495 at 23:00: the mean is 322.5
        f.write(f"{midnight + 3600 * hour},{150 + 15 * (hour % 24)}\\n")
"""


def run_in(
    directory: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``args`` run in ``directory`` with a new user's environment (``clean_env``) or ``env``.

    A Lightning or Transformers script (``sys.executable, "script.py", ...``) with the new
    user's environment runs in a child of a fork server that imported those frameworks once
    (:mod:`_script_fork`): what ``python script.py ...`` there would be, without importing them
    again for each script; so does ``greenprint report`` drawing figures (matplotlib imported
    once).
    """
    if env is None:
        done = run_script(directory, list(args), clean_env(), timeout=timeout)
        if done is not None:
            return done
    return subprocess.run(
        list(args),
        cwd=directory,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_ray_script(
    home: Path, name: str, text: str, *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``text`` written to ``home/name`` and run there as a new user runs a Ray Tune script.

    A clean environment with a home of its own (no cloud metadata probe, no usage stats), and
    Ray's temporary folder at a short path (its unix sockets live there), given to the script
    as its first argument and removed after. ``timeout``: the seconds it may take.
    """
    ray_home = home / "ray-home"
    ray_home.mkdir(exist_ok=True)
    (ray_home / "ray_bootstrap_config.yaml").write_text("{}\n")  # no cloud metadata probe
    (home / name).write_text(text, encoding="utf-8")
    env = clean_env()
    env.update(HOME=str(ray_home), RAY_USAGE_STATS_ENABLED="0", RAY_DEDUP_LOGS="0",
               RAY_USAGE_STATS_REPORT_URL="http://127.0.0.1:9/")  # fmt: skip
    ray_tmp = tempfile.mkdtemp(prefix="gp-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        return run_in(home, sys.executable, name, ray_tmp, env=env, timeout=timeout)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def empty_home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new temporary directory with no greenprint configuration above it (else a skip)."""
    home = tmp_path_factory.mktemp(name)
    if configured_above(home):
        pytest.skip(f"greenprint configuration above the temporary dir: {configured_above(home)}")
    return home


def cli_report(home: Path, *args: str) -> dict[str, object]:
    """``greenprint report`` in all four formats into ``home/rep``; the JSON, parsed."""
    done = run_in(home, GREENPRINT, "report", "--out", "rep", *args)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def report_text(home: Path, fmt: str) -> str:
    """The text of the report written in ``fmt`` (``html``, ``md``, ``latex``) under ``home``."""
    name = {"html": "report.html", "md": "report.md", "latex": "report.tex"}[fmt]
    return (home / "rep" / name).read_text(encoding="utf-8")


def export_rows(home: Path, study: str, *args: str) -> tuple[list[dict[str, str]], list[dict]]:
    """``greenprint ledger export`` of ``study``: the CSV rows and the JSON items."""
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", study, *args, "--out", "x.csv")
    assert done.returncode == 0, done.stderr
    with (home / "x.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", study, *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return rows, json.loads(done.stdout)["runs"]


def roots_sum_to_the_price_tag(rows: list[dict], report: dict) -> None:
    """The rows of an export sum to the price tag as docs/ledger.md says: the rows with no
    parent among them and the rows with ``contained`` false (outside every measurement above
    them: their cost adds to the total), each the larger of what it recorded and what the rows
    inside it add up to (a parent that recorded less than its children: the price tag takes
    their sum). Where no row recorded less than the rows inside it, that is the plain sum of
    those rows, which the check asserts too."""
    ids = {r["id"] for r in rows}
    counted = [r for r in rows if r["parent_id"] not in ids or r.get("contained") == "False"]
    inside: dict[str, list[dict]] = {}
    for r in rows:
        if r["parent_id"] in ids and r.get("contained") != "False":
            inside.setdefault(r["parent_id"], []).append(r)
    short: list[str] = []  # rows that recorded less than the rows inside them

    def nested(row: dict, key: str) -> float:
        own = float(row[key] or 0)
        inner = sum(nested(c, key) for c in inside.get(row["id"], ()))
        if inner > own * (1 + 1e-9):
            short.append(row["id"])
        return max(own, inner)

    total = report["price_tag"]["total"]
    assert len(rows) == total["runs"]
    for key in ("energy_kwh", "emissions_kg"):
        assert sum(nested(r, key) for r in counted) == pytest.approx(total[key], rel=1e-9)
        if not short:
            plain = sum(float(r[key] or 0) for r in counted)
            assert plain == pytest.approx(total[key], rel=1e-9)


def export_reads_as_the_report(home: Path, study: str, report: dict, *args: str) -> None:
    """Both exports give every run (by id) the report's role, and their root rows sum to the
    price tag (:func:`roots_sum_to_the_price_tag`)."""
    rows, items = export_rows(home, study, *args)
    roles = {r["id"]: r["role"] for r in report["runs"]}
    assert {r["id"]: r["role"] for r in rows} == roles
    assert {i["id"]: i["role"] for i in items} == roles
    roots_sum_to_the_price_tag(rows, report)


#: A number with a unit in a sentence of the price tag: mWh, mg CO2-eq, s...
_NUMBER = r"\d+(?:\.\d+)?(?:e[+-]?\d+)?"


def price_tag_lines_have_units(md: str) -> None:
    """Each bullet of the Markdown price tag gives its number with a unit (or 'unknown')."""
    block = md[md.index("## Price tag") : md.index("| status |")]
    units = {
        "energy (IT)": r"(?:k|M|m|µ|G)?Wh",
        "emissions": r"(?:k|m|µ|n)?g CO2-eq|t CO2-eq",
        "run time": r"s|min|h|d",
        "FPO": r"(?:k|M|G|T|P|E)?FPO",
        "study / final model": r"x the energy",
    }
    for label, value in re.findall(r"^- \*\*(.+?)\*\*: (.+)$", block, flags=re.M):
        if label in units and "unknown" not in value:
            assert re.fullmatch(rf"{_NUMBER} ?(?:{units[label]})(?: .*)?", value), (label, value)


def evp_curves(report: dict) -> dict[str, list[float]]:
    """The JSON report's EVP-over-trials figure: each curve's label -> its y values."""
    evp = next(f for f in report["figures"] if f["id"] == "evp_trials")
    return {s["label"]: s["y"] for panel in evp["panels"] for s in panel["series"]}


def in_every_format(home: Path, *texts: str) -> None:
    """Each text stands in the Markdown, HTML and LaTeX reports written in ``home``."""
    for fmt in ("md", "html", "latex"):
        page = report_text(home, fmt)
        for text in texts:
            assert text in page, (fmt, text)


def pdf_text(rep: Path, pdflatex: str, pdftotext: str) -> str:
    """``report.tex`` in ``rep`` compiled by ``pdflatex`` (it must compile), and the text
    ``pdftotext`` reads from its PDF (what a reader copies out of the paper)."""
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
        cwd=rep, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    return subprocess.run(
        [pdftotext, "report.pdf", "-"], cwd=rep, capture_output=True, text=True, check=True
    ).stdout


def rows_by_name(report: dict) -> dict[str, dict]:
    """A JSON report's rows by run name."""
    return {row["name"]: row for row in report["runs"]}


def runs_by_name(home: Path, study: str) -> dict[str, object]:
    """The study's runs in ``home/greenprint.db`` by name (RunRecords)."""
    import greenprint as gp

    with gp.Ledger(home / "greenprint.db", create=False) as led:
        return {r.name: r for r in led.runs(study=study)}


def figure_of(report: dict, key: str) -> dict | None:
    """A JSON report's figure by id, or ``None``."""
    return next((f for f in report["figures"] if f["id"] == key), None)


def series_of(figure: dict, role: str) -> list[dict]:
    """A figure's series of ``role``, from every panel."""
    return [s for panel in figure["panels"] for s in panel["series"] if s["role"] == role]


def export_csv(home: Path, study: str) -> list[dict[str, str]]:
    """``greenprint ledger export`` of ``study`` as CSV, its rows."""
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", study, "--out", "runs.csv")
    assert done.returncode == 0, done.stderr
    with (home / "runs.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def at_constant_power(report: dict, names: list[str], watts: float, lag_s: float) -> None:
    """The runs named drew ``watts`` for their run time: energy is power x time (within the
    meter's read lag ``lag_s``: its clock a moment after the run's stamp), CO2-eq that energy
    at the grid intensity."""
    rows = rows_by_name(report)
    for name in names:
        row = rows[name]
        kwh = watts * row["duration_s"] / 3.6e6
        lag = watts * lag_s / 3.6e6
        assert row["energy_kwh"] == pytest.approx(kwh, rel=1e-3, abs=lag), name
        co2 = row["energy_kwh"] * row["pue"] * row["intensity_g_per_kwh"] / 1000
        assert row["emissions_kg"] == pytest.approx(co2, rel=1e-9), name


def without_fit_guard(latex: str) -> str:
    """``latex`` without the report's scale-down guard around each tabular (``_latex._FIT``):
    what is left must fit its column by its own layout."""
    from greenprint.report._latex import _FIT

    return latex.replace(_FIT, "").replace("\\end{tabular}}", "\\end{tabular}")
