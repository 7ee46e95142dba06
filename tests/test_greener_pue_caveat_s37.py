"""The greener table says its energy is IT energy before PUE and its CO2-eq includes it (s37).

``greenprint greener``'s table (``GreenerResult.table()``) and the report's greener section put
an energy column (IT energy, as the meters read it) beside a CO2-eq column priced with the PUE;
only the provenance line's ``pue: 1.5 (...)`` told them apart, so a reader took the CO2-eq for
the energy's at the grid's intensity (1.5x off at a PUE of 1.5). The header now reads "IT energy"
(the price tag's "energy (IT)") and a caveat under the table says what each column counts, in
the plain table, Markdown, HTML and LaTeX, and the JSON's ``caveats`` (session 38).
"""

from __future__ import annotations

import html
import json
import sys

from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint.greener._result import GreenerRow, finish

CAVEAT = (
    "IT energy and training: energy as metered, before PUE (as the price tag's energy (IT)); "
    "CO2-eq: that energy times the PUE (the facility's overhead, in the provenance) and the "
    "grid's intensity"
)


def _row(name: str, wh: float, score: float) -> GreenerRow:
    return GreenerRow(
        name=name, technique=name, score=score, energy_kwh_per_1000=wh / 1e3,
        emissions_kg_per_1000=wh / 1e3 * 1.5 * 0.4,  # PUE 1.5 at 400 g/kWh
    )  # fmt: skip


def test_the_plain_table_heads_its_energy_it_energy_and_says_the_co2_eq_includes_pue():
    result = finish(
        [_row("baseline", 2.0, 0.9), _row("int8", 1.0, 0.89)],
        metric="accuracy", mode="max", baseline="baseline",
    )  # fmt: skip
    lines = result.table().splitlines()
    assert "IT energy (Wh/1000)" in lines[0] and "CO2-eq (g/1000)" in lines[0]
    assert f"- {CAVEAT}" in lines
    assert str(result) == result.table()
    assert result.to_dict()["caveats"] == [CAVEAT]  # the JSON says it too (`greener --json`)
    skipped = finish(
        [GreenerRow(name="x", technique="x", status="skipped", reason="no torch")],
        metric="accuracy", mode="max", baseline="x",
    )  # fmt: skip
    assert CAVEAT not in skipped.table()  # nothing measured: no column to explain
    assert skipped.to_dict()["caveats"] == []


STUDY = """\
import time

import greenprint as gp
from greenprint.greener._result import GreenerRow

now = time.time()
rows = [
    GreenerRow(name="baseline", technique="baseline", score=0.9, energy_kwh_per_1000=2e-3,
               emissions_kg_per_1000=1.2e-3),
    GreenerRow(name="int8", technique="dynamic-int8", score=0.89, energy_kwh_per_1000=1e-3,
               emissions_kg_per_1000=0.6e-3),
]
with gp.Ledger("greenprint.db") as led:  # what greener.compare records: a run and its variants
    led.start_run(gp.RunRecord(id="cmp-0001", name="greener", study="s", role="greener",
                               started_at=now, params={"greener.step": "compare",
                                                       "greener.metric": "accuracy"}))
    led.flush("cmp-0001", fields={"status": "finished", "energy_kwh": 0.01, "duration_s": 3.0})
    for k, row in enumerate(rows):
        rid = f"var-000{k}"
        led.start_run(gp.RunRecord(id=rid, name=row.name, study="s", parent_id="cmp-0001",
                                   started_at=now + k, params={"greener.step": "variant",
                                                               "greener.result": row.to_dict()}))
        led.flush(rid, fields={"status": "finished", "energy_kwh": 0.004, "duration_s": 1.0},
                  metrics=[gp.MetricPoint("accuracy", row.score, time=now + k)])
print("ok")
"""


def test_the_report_greener_section_says_it_in_every_format(tmp_path_factory):
    home = empty_home(tmp_path_factory, "greener-pue")
    (home / "study.py").write_text(STUDY, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py", env=clean_env())
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--format", "all")
    assert done.returncode == 0, done.stderr
    out = home / "rep"
    md = (out / "report.md").read_text("utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| variant "))
    assert "| IT energy (Wh/1000) |" in header and "| CO2-eq (g/1000) |" in header
    assert f"- {CAVEAT}" in md
    page = html.unescape((out / "report.html").read_text("utf-8"))
    assert "<th>IT energy (Wh/1000)</th>" in page and f"<li>{CAVEAT}</li>" in page
    tex = (out / "report.tex").read_text("utf-8")
    # the table* puts each unit under its column's name (2d98f04a): the same column of both rows
    lines = tex.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("variant & "))
    names, units = (lines[k].removesuffix(r" \\").split(" & ") for k in (at, at + 1))
    assert units[names.index("IT energy")] == "(Wh/1000)"
    assert f"\\item {CAVEAT}".replace("'", "'") in tex.replace("\n", " ")
    data = json.loads((out / "report.json").read_text("utf-8"))
    assert [r["name"] for r in data["greener"][0]["rows"]] == ["baseline", "int8"]
    assert data["greener"][0]["caveats"] == [CAVEAT]
