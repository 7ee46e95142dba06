"""Runs of unknown duration are said as unknown wherever their time is summed (session 37).

A run recorded without a duration (``RunRecord.duration_s`` 0.0: written by hand through the
ledger API as docs/ledger.md's merge example does, or imported) read ``-`` in ``ledger ls`` and
"unknown" in the headline since session 36, but the sums around it left it out without a word
(``12.3 s`` of run time where two runs had none) and every JSON wrote its ``duration_s: 0.0``.
Now a total says them (``12.3 s + unknown for 2 runs``, ``duration_unknown`` in the JSON),
``unknown`` where no run of a set knows its time, and the JSON writes ``null``: the report's
totals, runs and final run, ``ledger ls --json``, ``ledger export`` (JSON and CSV).

Nesting: a run inside a parent that recorded its time is inside that time, not unknown; a
parent that recorded none counts as the runs inside it (as for FPO, RunForest.known_sums).

The study is built as a user builds it: ``gp.track`` runs in a script, runs with no duration
written through the public Ledger API, then the CLI in an empty folder with a clean env.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint.analysis import price_tag

#: "0.0 s", "0 s" on its own (not the end of "30.0 s")
ZERO = re.compile(r"(?<![\d.])0(\.0)? s\b")
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "report-schema.json"

#: The user's script: gp.track runs (a trial, a sweep over a trial), then runs written by hand
#: with no duration: two root trials (one failed), one inside the tracked trial, and an
#: imported sweep whose own record has no duration over one child that recorded 30 s.
STUDY_SCRIPT = """\
import time

import greenprint as gp

with gp.track("tracked", study="s", ledger="greenprint.db") as run:
    time.sleep(0.05)
    run.log(accuracy=0.80)
tracked_id = run.id
with gp.track("sweep", study="s", ledger="greenprint.db", role="sweep"):
    with gp.track("swept", study="s", ledger="greenprint.db") as inner:
        time.sleep(0.05)
        inner.log(accuracy=0.85)

now = time.time()
with gp.Ledger("greenprint.db") as led:
    def hand(name, status="finished", parent=None, accuracy=None, **fields):
        run_id = f"{name}-{time.time_ns():x}"
        led.start_run(
            gp.RunRecord(id=run_id, name=name, study="s", parent_id=parent, started_at=now)
        )
        points = [] if accuracy is None else [gp.MetricPoint("accuracy", accuracy, time=now)]
        fields.update(status=status, energy_kwh=0.001, emissions_kg=0.0004)
        led.flush(run_id, fields=fields, metrics=points)
        return run_id

    hand("hand-best", accuracy=0.99)        # the best trial: the final run, of unknown time
    hand("hand-failed", status="failed")
    hand("hand-inside", parent=tracked_id)  # inside the tracked trial's time: not unknown
    imported = hand("imported")             # no time of its own: counts as its child
    hand("imported-child", parent=imported, accuracy=0.5, duration_s=30.0, ended_at=now + 30)
print("ok")
"""


def _durations(home: Path) -> dict[str, float]:
    with gp.Ledger(home / "greenprint.db") as led:
        return {r.name: r.duration_s for r in led.runs(study="s")}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    home = empty_home(tmp_path_factory, "unknown-durations")
    (home / "study.py").write_text(STUDY_SCRIPT, encoding="utf-8")
    done = run_in(home, sys.executable, "study.py", env=clean_env())
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    seconds = _durations(home)
    known = seconds["tracked"] + seconds["sweep"] + 30.0  # the swept trial: inside the sweep
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--out", "rep", "--format", "all")
    assert done.returncode == 0, done.stderr
    out = home / "rep"
    texts = {f: (out / f"report.{f}").read_text(encoding="utf-8") for f in ("md", "html", "tex")}
    return home, seconds, known, json.loads((out / "report.json").read_text("utf-8")), texts


def test_the_json_report_writes_null_and_counts_the_runs_of_unknown_time(study):
    import jsonschema

    home, seconds, known, data, _ = study
    assert seconds["hand-best"] == seconds["hand-failed"] == seconds["imported"] == 0.0
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text("utf-8"))).validate(data)
    tag = data["price_tag"]
    total = tag["total"]
    assert total["runs"] == 8
    # hand-best and hand-failed: hand-inside is inside the tracked trial's time, imported
    # counts as its child's 30 s
    assert total["duration_unknown"] == 2
    assert total["duration_s"] == pytest.approx(known, rel=1e-9)
    failed = tag["by_status"]["failed"]
    assert failed["duration_s"] is None and failed["duration_unknown"] == 1
    finished = tag["by_status"]["finished"]
    assert finished["duration_unknown"] == 1
    assert finished["duration_s"] == pytest.approx(known, rel=1e-9)
    rows = {row["name"]: row for row in data["runs"]}
    for name in ("hand-best", "hand-failed", "hand-inside", "imported"):
        assert rows[name]["duration_s"] is None, name  # never 0.0
    assert rows["imported-child"]["duration_s"] == 30.0
    assert rows["tracked"]["duration_s"] == pytest.approx(seconds["tracked"])
    final = tag["final"]
    assert final["name"] == "hand-best"
    assert final["duration_s"] is None and final["duration_share"] is None


def test_markdown_and_html_say_the_runs_of_unknown_time_beside_every_total(study):
    _, _, known, data, texts = study
    time_text = gp_duration(known)
    for fmt in ("md", "html"):
        text = texts[fmt]
        assert f"{time_text} + unknown for 2 runs" in text, fmt  # headline and total row
        assert "not counting 2 runs whose duration is unknown" in text, fmt
        assert "an unknown run time" in text, fmt  # the final run's
        assert not ZERO.search(text), fmt
    md = texts["md"]
    assert f"- **run time**: {time_text} + unknown for 2 runs" in md
    failed = next(line for line in md.splitlines() if line.startswith("| failed "))
    assert failed.rstrip(" |").endswith("unknown"), failed
    total = next(line for line in md.splitlines() if line.startswith("| total "))
    assert f"| {time_text} + unknown for 2 runs |" in total
    assert f"{time_text} + unknown for 1 run" in md  # the finished runs' row
    failed = texts["html"].split('s-failed">failed</span></td>', 1)[1].split("</tr>")[0]
    assert failed.endswith("<td class=num>unknown</td>"), failed  # the failed row's time


def test_latex_marks_a_time_that_leaves_runs_out_and_says_why(study):
    _, _, _, _, texts = study
    tex = texts["tex"]
    total = next(line for line in tex.splitlines() if line.startswith("total &"))
    assert total.split(" & ")[-1].startswith(r"$\geq$"), total
    failed = next(line for line in tex.splitlines() if line.startswith("failed &"))
    assert failed.split(" & ")[-1] == r"unknown \\", failed
    assert "time of some runs unknown, not counted" in tex
    assert "FPO of some runs unknown" not in tex  # no FPO cell reads "at least": all unknown
    assert "not counting 2 runs whose duration is unknown" in tex
    assert not ZERO.search(tex)


def test_ledger_ls_and_export_give_unknown_not_zero(study):
    home, seconds, _, _, _ = study
    ls = run_in(home, GREENPRINT, "ledger", "ls", "--study", "s")
    assert ls.returncode == 0, ls.stderr
    line = next(line for line in ls.stdout.splitlines() if " hand-best " in line)
    assert re.search(r"\s-\s", line) and not ZERO.search(ls.stdout), line
    listed = json.loads(run_in(home, GREENPRINT, "ledger", "ls", "--study", "s", "--json").stdout)
    by_name = {item["name"]: item for item in listed}
    assert by_name["hand-best"]["duration_s"] is None
    assert by_name["tracked"]["duration_s"] == seconds["tracked"]
    done = run_in(home, GREENPRINT, "ledger", "export", "--format", "json", "--study", "s")
    exported = {item["name"]: item for item in json.loads(done.stdout)["runs"]}
    assert exported["hand-failed"]["duration_s"] is None
    assert exported["imported-child"]["duration_s"] == 30.0
    done = run_in(home, GREENPRINT, "ledger", "export", "--format", "csv", "--study", "s")
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(done.stdout))}
    assert rows["hand-failed"]["duration_s"] == ""
    assert float(rows["tracked"]["duration_s"]) == seconds["tracked"]
    show = run_in(home, GREENPRINT, "ledger", "show", "hand-best", "--json")
    assert json.loads(show.stdout)["duration_s"] is None


def test_a_study_whose_runs_all_lack_a_duration_reads_unknown(tmp_path):
    with gp.Ledger(tmp_path / "l.db") as led:
        for k in range(3):
            led.start_run(gp.RunRecord(id=f"run{k}abcd", name=f"r{k}", study="s", started_at=1e9))
            led.flush(f"run{k}abcd", fields={"status": "finished", "energy_kwh": 0.1})
        tag = price_tag(led.runs(study="s"))
    assert tag.total.duration_unknown == 3 and not tag.total.duration_known
    assert tag.to_dict()["total"]["duration_s"] is None
    assert tag.total.duration_text() == "unknown"
    assert "unknown time of runs" in tag.summary()


def _record(name: str, duration: float, parent: str | None = None) -> gp.RunRecord:
    return gp.RunRecord(
        id=name, name=name, study="s", parent_id=parent, status="finished",
        started_at=1e9, duration_s=duration, energy_kwh=0.001,
    )  # fmt: skip


def test_nesting_decides_which_runs_of_unknown_time_count():
    runs = [
        _record("known-parent", 100.0),
        _record("inside-known", 0.0, "known-parent"),  # in its parent's 100 s
        _record("container", 0.0),  # no time of its own: its children's
        _record("known-child", 20.0, "container"),
        _record("unknown-child", 0.0, "container"),  # counted once, not the container too
        _record("alone", 0.0),
    ]
    tag = price_tag(runs)
    assert tag.total.duration_s == 120.0
    assert tag.total.duration_unknown == 2  # unknown-child and alone
    assert tag.total.duration_text() == "2m 0s + unknown for 2 runs"
    assert "2m 0s + unknown for 2 runs of runs" in tag.summary()
    assert ">2m 0s + unknown for 2 runs</td>" in tag._repr_html_()  # a notebook's table
    every_known = price_tag([_record("a", 10.0), _record("b", 5.0, "a")])
    assert every_known.total.duration_unknown == 0
    assert every_known.to_dict()["total"]["duration_s"] == 10.0


def gp_duration(seconds: float) -> str:
    from greenprint._format import format_duration

    return format_duration(seconds)
