"""A run with no energy meter (``meters=[]``): its energy and CO2-eq are unknown, never 0.

Issue 12's house rule ("unknown FPO is 'unknown' with the count of runs, never 0") for energy:
such a run holds 0.0 kWh and no component (``RunRecord.energy_recorded`` false), and before
session 41 the price tag read "energy (IT): 0 mWh", ``ledger ls`` "0 mWh", the JSON 0.0, the
model card "emissions: 0" and the final run "0% of the study's energy", while its provenance
said "energy: none recorded". Two studies recorded as a new user records them (a script in an
empty directory, a clean environment): every trial with no meter, and one metered trial beside
two with none. Every place that shows energy or CO2-eq is read: ``ledger ls``/``show``/
``export``, the report in four formats, the API's price tag, efficiency, EVP and Pareto front.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint.analysis import efficiencies, evp_by_budget, pareto_runs, price_tag

#: The study script: two studies of three trials each, lr 0.01 (accuracy 0.81), 0.1 (0.9, the
#: best: the final run) and 0.3 (0.7). "unmetered": no trial has a meter; "mixed": the first
#: is metered (the default meters: an estimate at least, on any machine), the others not.
SCRIPT = """\
import greenprint as gp

for study, metered in (("unmetered", ()), ("mixed", (0,))):
    for k, lr in enumerate((0.01, 0.1, 0.3)):
        options = {} if k in metered else {"meters": []}
        with gp.track(f"lr{lr}", study=study, role="trial", **options) as run:
            run.set(params={"lr": lr}, dataset_size=100)
            sum(i * i for i in range(200_000))  # some work for the meter to see
            run.log(accuracy=0.9 - abs(lr - 0.1))
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory where the script ran and each study was reported (all formats)."""
    home = empty_home(tmp_path_factory, "unmetered")
    (home / "study.py").write_text(SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py")
    assert done.returncode == 0, done.stderr
    for study in ("unmetered", "mixed"):
        done = run_in(home, GREENPRINT, "report", "--study", study, "--out", study, "--no-plots")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return home


def _json(home: Path, study: str) -> dict:
    return json.loads((home / study / "report.json").read_text(encoding="utf-8"))


def _page(home: Path, study: str, fmt: str) -> str:
    name = {"html": "report.html", "md": "report.md", "latex": "report.tex"}[fmt]
    return (home / study / name).read_text(encoding="utf-8")


def _ls(home: Path, study: str, *args: str) -> str:
    done = run_in(home, GREENPRINT, "ledger", "ls", "--study", study, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ------------------------------------------------------------------------------ the CLI
def test_ledger_ls_show_and_export_leave_an_unmetered_run_unknown(home: Path) -> None:
    table = _ls(home, "unmetered")
    assert "0 mWh" not in table and "0 mg" not in table
    for line in table.splitlines()[1:]:  # DURATION, ENERGY, CO2-EQ: "- -" where none
        assert re.search(r" s\s+-\s+-\s+accuracy=", line), line
    items = json.loads(_ls(home, "mixed", "--json"))
    by_name = {i["name"]: i for i in items}
    assert by_name["lr0.01"]["energy_kwh"] > 0 and by_name["lr0.01"]["emissions_kg"] > 0
    for name in ("lr0.1", "lr0.3"):
        assert by_name[name]["energy_kwh"] is None and by_name[name]["emissions_kg"] is None
    done = run_in(home, GREENPRINT, "ledger", "show", by_name["lr0.1"]["id"][:8])
    assert done.returncode == 0, done.stderr
    shown = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in done.stdout.splitlines()
        if re.match(r"  (energy|CO2-eq|machine energy)\s", line)
    )
    assert shown["energy"] == shown["CO2-eq"] == "unknown (no energy meter)"
    assert shown["machine energy"] == "-"
    # whatif prices a run's recorded energy: none recorded is bad input, not "0 mWh" anywhere
    done = run_in(home, GREENPRINT, "whatif", "--run", by_name["lr0.1"]["id"][:8])
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.count("\n") == 1
    assert "has no energy to price: it had no energy meter (tracked with meters=[])" in done.stderr
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", "mixed", "--out", "x.csv")
    assert done.returncode == 0, done.stderr
    with (home / "x.csv").open(encoding="utf-8") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert float(rows["lr0.01"]["energy_kwh"]) > 0
    assert rows["lr0.1"]["energy_kwh"] == rows["lr0.1"]["emissions_kg"] == ""
    done = run_in(home, GREENPRINT, "ledger", "export", "--study", "mixed", "--format", "json")
    assert done.returncode == 0, done.stderr
    exported = {r["name"]: r for r in json.loads(done.stdout)["runs"]}
    assert exported["lr0.3"]["energy_kwh"] is None and exported["lr0.3"]["emissions_kg"] is None


def test_a_study_with_no_meter_reads_unknown_in_every_format(home: Path) -> None:
    report = _json(home, "unmetered")
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] is None and total["emissions_kg"] is None
    assert total["energy_unknown"] == 3
    final = report["price_tag"]["final"]
    assert final["name"] == "lr0.1" and final["energy_kwh"] is None
    assert final["energy_share"] is None and final["study_multiple"] is None
    assert all(r["energy_kwh"] is None and r["emissions_kg"] is None for r in report["runs"])
    assert report["model_card"]["co2_eq_emissions"]["emissions"] is None
    # no figure on an energy axis of zeros: the notes say why
    assert {f["id"] for f in report["figures"]} == {"evp_trials"}
    notes = " ".join(report["notes"])
    assert "no Pareto plot: no scored trial recorded its energy" in notes
    assert "no expected-best-score-against-energy figure: no trial recorded its energy" in notes
    assert report["price_tag"]["edh"]["energy_kwh"] is None
    md = _page(home, "unmetered", "md")
    assert "- **energy (IT)**: unknown (none of the 3 runs recorded energy)" in md
    assert "- **emissions**: unknown (none of the 3 runs recorded energy)" in md
    assert "  emissions: null\n" in md
    assert "their IT energy and CO2-eq are unknown (none of the 3 runs recorded energy" in md
    assert "cost an unknown energy and CO2-eq (no meter recorded them)" in md
    for fmt in ("md", "html", "latex"):
        page = _page(home, "unmetered", fmt)
        assert not re.search(r"(?<![\d.])0 (mWh|mg)", page), fmt
        assert "unknown (none of the 3 runs recorded energy" in page, fmt
    latex = _page(home, "unmetered", "latex")
    assert "total & 3 & 3 & unknown & unknown & unknown &" in latex


def test_a_mixed_study_sums_the_metered_run_and_counts_the_others(home: Path) -> None:
    metered = {i["name"]: i for i in json.loads(_ls(home, "mixed", "--json"))}["lr0.01"]
    report = _json(home, "mixed")
    total = report["price_tag"]["total"]
    assert total["energy_kwh"] == pytest.approx(metered["energy_kwh"], rel=1e-9)
    assert total["emissions_kg"] == pytest.approx(metered["emissions_kg"], rel=1e-9)
    assert total["energy_unknown"] == 2
    final = report["price_tag"]["final"]  # lr0.1 had no meter: no share of the study
    assert final["energy_kwh"] is None and final["energy_share"] is None
    # efficiency: no score per kWh of an unknown energy (no division by 0, no infinity)
    rows = {r["name"]: r for r in report["efficiency"]["rows"]}
    assert rows["lr0.1"]["energy_kwh"] is None and rows["lr0.1"]["score_per_kwh"] is None
    assert rows["lr0.01"]["score_per_kwh"] == pytest.approx(0.81 / metered["energy_kwh"])
    pareto = next(f for f in report["figures"] if f["id"] == "pareto")
    points = [r for p in pareto["panels"] for s in p["series"] for r in s.get("run_ids") or ()]
    assert set(points) == {metered["id"]}
    assert "2 scored trials left out: no meter recorded their energy" in " ".join(pareto["notes"])
    evp = next(f for f in report["figures"] if f["id"] == "evp_energy")
    assert "2 of 3 trials recorded no energy (no meter): given the mean trial's" in evp["notes"]
    assert report["whatif"]["energy_unknown"] == 2
    md = _page(home, "mixed", "md")
    energy = re.search(r"- \*\*energy \(IT\)\*\*: (.+)", md)
    assert energy and re.fullmatch(r"[\d.]+ [µnm]?Wh \+ unknown for 2 runs", energy[1])
    assert re.search(r"- \*\*emissions\*\*: [\d.]+ \S*g CO2-eq \+ unknown for 2 runs", md)
    assert "(2 runs with no energy meter are not priced: their energy is unknown)" in md
    assert "not counting 2 runs that recorded no energy" in md  # the compute statement
    assert "not counting 2 runs that recorded none" in md  # the model card's source
    edh = report["price_tag"]["edh"]  # E x D x H of the metered trial alone, and said
    assert edh["trials"] == 1 and edh["energy_kwh"] == pytest.approx(metered["energy_kwh"])
    assert edh["note"] == (
        "2 of 3 trials have a dataset_size but no energy meter and are not in E x D x H"
    )
    assert "| lr0.1 ★ | finished | 0.9 | unknown | unknown |" in md
    for fmt in ("md", "html", "latex"):
        assert not re.search(r"(?<![\d.])0 (mWh|mg)", _page(home, "mixed", fmt)), fmt
    latex = _page(home, "mixed", "latex")
    assert re.search(r"total & 3 & 3 & \$\\geq\$[\d.]+ & \$\\geq\$[\d.]+ &", latex)
    assert "energy and CO$_2$-eq of some runs unknown (no energy meter), not counted" in latex


# ------------------------------------------------------------------------------ the API
def test_the_api_reads_unknown_energy_as_the_reports_do(home: Path) -> None:
    ledger = gp.Ledger(home / "greenprint.db")
    unmetered, mixed = ledger.runs(study="unmetered"), ledger.runs(study="mixed")
    assert not any(r.energy_recorded for r in unmetered)
    tag = price_tag(unmetered, metric="accuracy")
    assert not tag.total.energy_known and tag.total.energy_unknown == 3
    assert tag.total.energy_text() == "unknown (none of the 3 runs recorded energy)"
    assert "energy and CO2-eq unknown (none of the 3 runs recorded energy)" in tag.summary()
    assert tag.final is not None and math.isnan(tag.final.energy_kwh)
    with pytest.raises(gp.AnalysisError, match="no trial has a known energy_kwh"):
        evp_by_budget(unmetered, "energy_kwh", metric="accuracy")
    assert pareto_runs(unmetered, metric="accuracy") == []
    tag = price_tag(mixed, metric="accuracy")
    assert tag.total.energy_unknown == 2 and tag.total.energy_known
    assert tag.total.energy_text().endswith(" + unknown for 2 runs")
    assert tag.total.emissions_text().endswith(" CO2-eq + unknown for 2 runs")
    assert tag.final is not None and tag.final.energy_share is None
    curve = evp_by_budget(mixed, "energy_kwh", metric="accuracy")
    assert "2 of 3 trials had no energy recorded (no energy meter); given the mean" in curve.notes
    [front] = pareto_runs(mixed, metric="accuracy")
    assert front.name == "lr0.01"
    found = {e.name: e for e in efficiencies(mixed, metric="accuracy")}
    assert math.isnan(found["lr0.1"].energy_kwh) and found["lr0.1"].score_per_kwh is None
    assert found["lr0.01"].score_per_kwh == pytest.approx(0.81 / found["lr0.01"].energy_kwh)


def test_a_run_with_no_meter_inside_a_metered_one_is_no_unknown(tmp_path: Path) -> None:
    """A fold with no meter inside a metered trial is inside its trial's reading; a sweep with
    no meter around metered trials is their sum: neither is unknown (the FPO rule)."""
    db = tmp_path / "g.db"
    with gp.track("sweep", study="nested", ledger=db, meters=[], role="sweep"):
        for lr in (0.1, 0.2):
            with gp.track(f"lr{lr}", study="nested", ledger=db, role="trial") as trial:
                trial.log(accuracy=lr)
                with gp.track("fold", study="nested", ledger=db, meters=[], role="part"):
                    sum(i * i for i in range(100_000))
    runs = gp.Ledger(db).runs(study="nested")
    tag = price_tag(runs, metric="accuracy")
    assert tag.total.energy_unknown == 0 and tag.total.energy_known
    assert tag.total.energy_kwh > 0 and tag.final is not None
    assert math.isfinite(tag.final.energy_kwh) and tag.final.energy_share is not None
    assert not any("less energy than their children" in note for note in tag.notes)


def test_the_model_card_block_of_a_run_with_no_meter_has_no_emissions(tmp_path: Path) -> None:
    # greenprint.integrations.transformers' model_card_co2, without its 3 s import of torch
    from greenprint.integrations._hf_model_card import model_card_co2

    with gp.track("alone", ledger=tmp_path / "g.db", meters=[]) as run:
        pass
    assert "finished energy and CO2-eq unknown (no energy meter)," in repr(run)
    assert "<td" in run._repr_html_() and "unknown (no energy meter)" in run._repr_html_()
    block = model_card_co2(run)
    assert block["emissions"] is None
    assert block["source"].endswith("(no energy meter: its energy and CO2-eq are unknown)")
