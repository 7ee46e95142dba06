"""A source recorded with a note by some runs is written once, the note said of some runs.

Since ef258e6 a run under 100 ms records its CPU estimate with ``(idle-floor share rough: ...)``
after it. A study of short and long runs (the demo's) then listed the long estimate text twice
in every provenance line of its report, once bare and once with the note.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import greenprint as gp
from _hand_built import measured_run
from greenprint.report import build_report, write_report

BASE = "estimate:default-per-core (4 W/core x 2; 'X' is not in the TDP table)"
NOTE = "idle-floor share rough: machine busy CPU time under 100 ms, read in 10 ms ticks"


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_source_with_a_note_of_some_runs_is_written_once(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "greenprint.db"
    with gp.Ledger(path) as led:
        for k, cpu in enumerate([BASE, f"{BASE} ({NOTE})", BASE, "rapl"]):
            run = measured_run(f"t{k}", None, 1e-6 * (k + 1), (k, k + 1), pid=k + 1, study="s")
            run = dataclasses.replace(run, provenance={**run.provenance, "cpu": cpu})
            led.start_run(run)
            led.flush(run.id, metrics=[gp.MetricPoint("accuracy", 0.5 + k / 10, 1, run.ended_at)])
    out = tmp_path / "out"
    write_report(build_report(str(path), "s", metric="accuracy"), out, fmt)
    text = (out / f"report.{fmt}").read_text()
    shown = BASE.replace("'", "&#x27;") if fmt == "html" else BASE
    line = next(line for line in text.splitlines() if "energy: " in line and "rapl" in line)
    assert line.count(shown) == 1, line
    assert f"(some runs: {NOTE})" in line
