"""Session 41: the price tag's sweep row says its FPO were not counted, not "0 FPO".

A search written with the API, ``gp.track("search", role="sweep")`` around trials that count
their FPO (``run.add_fpo``), read in the report's table by role as "sweep overhead | 1 |
13.2 µWh | ... | 0 FPO": the sweep counted no FPO of its own (its record's ``fpo`` is
``None``), and the price tag reads a container's FPO as its children's, so its own part is 0
by that rule, not by a count; beside the 72 % of the study's energy the same row showed, "0
FPO" read as "the sweep ran no operations", which nothing measured. The row now says "none
counted (a sweep's FPO are its trials')", and ``PriceTag.fpo_uncounted_roles`` (JSON
``fpo_uncounted_roles``) names the role. A sweep that counted its own keeps its count beyond
its trials'; a sweep around trials that counted none stays "unknown", as before.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint.analysis import price_tag

#: A search as a user writes it: a sweep around three trials that count their FPO; with
#: "counted", the sweep counts its own too (5 MFPO: its trials' 3 and 2 of its own).
SEARCH = """
import sys
import time
import greenprint as gp

with gp.track("search", study="sw", role="sweep") as sweep:
    time.sleep(0.05)  # the sweep's own work: loading data
    for lr in (0.1, 0.01, 0.001):
        with gp.track(f"lr={lr}", study="sw", params={"lr": lr}) as trial:
            if sys.argv[1:] != ["uncounted"]:
                trial.add_fpo(1_000_000)
            trial.log(val_acc=0.9 - lr)
    if sys.argv[1:] == ["counted"]:
        sweep.add_fpo(5_000_000)
"""

NONE_COUNTED = "none counted (a sweep's FPO are its trials')"


def _study(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Path:
    home = empty_home(tmp_path_factory, name)
    (home / "search.py").write_text(SEARCH, encoding="utf-8")
    done = run_in(home, sys.executable, "search.py", *args)
    assert done.returncode == 0, done.stderr
    return home


def _tag(home: Path) -> gp.analysis.PriceTag:
    with gp.Ledger(home / "greenprint.db") as led:
        return price_tag(led.runs(study="sw"), metric="val_acc")


def _row(text: str, label: str) -> str:
    """The row of ``label`` in the Markdown table by role."""
    by_role = text.split("The same total by role:", 1)[1].split("\n\n")[1]
    (row,) = [line for line in by_role.splitlines() if line.startswith(f"| {label} |")]
    return row


def test_a_sweep_that_counted_no_fpo_reads_none_counted_not_zero(tmp_path_factory):
    home = _study(tmp_path_factory, "sweep-fpo")
    tag = _tag(home)
    assert (tag.by_role["sweep"].fpo, tag.by_role["trial"].fpo, tag.total.fpo) == (0, 3e6, 3e6)
    assert tag.fpo_uncounted_roles == ("sweep",)
    assert tag.uncounted_fpo_text("sweep") == NONE_COUNTED
    assert tag.uncounted_fpo_text("trial") is None
    assert f">{NONE_COUNTED.replace(chr(39), '&#x27;')}</td>" in tag._repr_html_()  # notebook

    done = run_in(home, GREENPRINT, "report", "--out", "rep", "--no-plots")
    assert done.returncode == 0, done.stderr
    markdown = (home / "rep" / "report.md").read_text(encoding="utf-8")
    assert f"| {NONE_COUNTED} |" in _row(markdown, "sweep overhead")
    assert "| 3 MFPO |" in _row(markdown, "trials (the search)")
    assert "| 3 MFPO |" in _row(markdown, "total")
    html = (home / "rep" / "report.html").read_text(encoding="utf-8")
    assert NONE_COUNTED.replace("'", "&#x27;") in html
    latex = (home / "rep" / "report.tex").read_text(encoding="utf-8")
    (row,) = [line for line in latex.splitlines() if "sweep overhead &" in line]
    assert "& none counted &" in row
    report = json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))
    assert report["price_tag"]["fpo_uncounted_roles"] == ["sweep"]
    assert report["price_tag"]["by_role"]["sweep"]["fpo"] == 0  # the rule's 0, named above


def test_a_sweep_that_counted_its_own_shows_its_count_and_unknown_stays_unknown(
    tmp_path_factory,
):
    counted = _tag(_study(tmp_path_factory, "sweep-fpo-counted", "counted"))
    assert counted.by_role["sweep"].fpo == 2_000_000  # its 5 MFPO beyond its trials' 3
    assert counted.fpo_uncounted_roles == ()
    assert counted.uncounted_fpo_text("sweep") is None

    # trials that counted none: the sweep's FPO are unknown, as its trials' (no "none counted")
    unknown = _tag(_study(tmp_path_factory, "sweep-fpo-unknown", "uncounted"))
    assert not unknown.by_role["sweep"].fpo_known
    assert unknown.fpo_uncounted_roles == ()
