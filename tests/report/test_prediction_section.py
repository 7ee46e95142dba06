"""The report's cost-prediction section: per run, the first prediction's recorded error; across
the study, the error statistics and how many logged intervals held the final energy.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest

import greenprint as gp
from greenprint.meters._base import MeterReading
from greenprint.report import build_report, write_report
from greenprint.report._prediction import prediction_summary

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


class ConstantPower:
    """3600 W by the clock: 1e-3 kWh per second, all of it the process's."""

    components = ("cpu",)
    provenance = {"cpu": "test:constant"}

    def start(self):
        self.t0 = time.time()

    def read(self):
        joules = 3600.0 * (time.time() - self.t0)
        return {"cpu": MeterReading(machine_j=joules, process_j=joules)}

    def close(self):
        pass


def track(name, ledger, **kw):
    return gp.track(
        name,
        study="predicted",
        ledger=ledger,
        meters=ConstantPower(),
        sample_interval_s=0.02,
        flush_interval_s=0.05,
        **kw,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    ledger = str(tmp_path_factory.mktemp("prediction") / "l.db")
    for name, pace in (("even", (0.02,) * 10), ("slowing", (0.01,) * 5 + (0.04,) * 5)):
        with track(name, ledger) as run:
            run.expect(total_steps=len(pace))
            for seconds in pace:
                time.sleep(seconds)
                run.step()
            run.log(accuracy=0.9)
    with pytest.raises(KeyboardInterrupt), track("cut", ledger) as run:
        time.sleep(0.05)
        run.progress(0.5)
        raise KeyboardInterrupt
    with track("plain", ledger) as run:
        run.log(accuracy=0.8)
    return ledger


def test_the_summary_takes_the_recorded_errors_and_counts_the_intervals(study):
    runs = gp.Ledger(study).runs(study="predicted")
    summary = prediction_summary(runs)
    assert summary.predicted_runs == 3  # even, slowing, cut; plain never predicted
    assert [r.name for r in summary.rows] == ["even", "slowing"]  # cut did not finish
    by_name = {r.name: r for r in runs}
    for row in summary.rows:
        record = by_name[row.name]
        assert row.errors["energy_kwh"] == record.metric("greenprint.prediction_error_energy_kwh")
        assert row.first_fraction == record.metric("greenprint.prediction_first_fraction")
        # intervals from the metrics, counted by hand: every (low, high) before the last report
        lows = [p for p in record.metrics if p.name == "greenprint.predicted_energy_kwh_low"]
        highs = [p for p in record.metrics if p.name == "greenprint.predicted_energy_kwh_high"]
        pairs = [(lo.value, hi.value) for lo, hi in zip(lows[:-1], highs[:-1], strict=True)]
        assert row.intervals == len(pairs)
        assert row.covered == sum(lo <= record.energy_kwh <= hi for lo, hi in pairs)
    # a run that slows down was predicted too low at first: a negative error
    assert summary.rows[1].errors["duration_s"] < 0
    errors = [r.errors["energy_kwh"] for r in summary.rows]
    stats = summary.stats("energy_kwh")
    assert stats["median_abs"] == pytest.approx(statistics.median(abs(e) for e in errors))
    assert stats["bias"] == pytest.approx(statistics.fmean(errors))
    assert summary.covered <= summary.intervals


def test_no_prediction_no_section(tmp_path):
    ledger = str(tmp_path / "l.db")
    with track("plain", ledger) as run:
        run.log(accuracy=0.8)
    report = build_report(ledger, "predicted")
    assert report.prediction is None
    files = write_report(report, tmp_path / "out", ("md",), plots=False)
    assert "Cost predictions" not in files["md"].read_text(encoding="utf-8")


def test_every_format_shows_the_section_and_the_json_follows_the_schema(study, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    report = build_report(study, "predicted")
    assert report.metric == "accuracy"  # never a greenprint.* metric
    files = write_report(report, tmp_path, ("html", "md", "latex", "json"), plots=False)
    sentence = report.prediction.sentence()
    assert "2 finished with all of it reported" in sentence
    for fmt in ("html", "md", "latex"):
        text = files[fmt].read_text(encoding="utf-8")
        assert "Cost predictions" in text and "slowing" in text
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["prediction"]["predicted_runs"] == 3
    assert [r["name"] for r in data["prediction"]["rows"]] == ["even", "slowing"]


@pytest.mark.slow
def test_the_latex_table_fits_a_column_of_a_two_column_paper(study, tmp_path, require_component):
    """Found as a new user: the table (six columns, one-line headers such as "intervals holding
    the energy") was 78 pt wider than a one-column article's text, and had no scale-to-fit
    guard. It fits one column of a two-column paper now, with and without the guard."""
    import re
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    require_component(pdflatex is not None, "pdflatex is not installed")
    assert pdflatex is not None
    tex = write_report(build_report(study, "predicted"), tmp_path / "out", "latex", plots=False)
    text = tex["latex"].read_text(encoding="utf-8")
    start = text.index("\\section*{Cost predictions}")
    section = text[start : text.index("\\end{table}", start) + len("\\end{table}")]
    assert "\\resizebox{" in section
    fit = "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{"
    unguarded = section.replace(fit, "").replace("\\end{tabular}}", "\\end{tabular}")
    for body in (section, unguarded):
        work = tmp_path / "paper"
        work.mkdir(exist_ok=True)
        (work / "p.tex").write_text(
            "\\documentclass[twocolumn]{article}\n\\usepackage{booktabs,graphicx}\n"
            "\\begin{document}\n" + body + "\n\\end{document}\n",
            encoding="utf-8",
        )
        done = subprocess.run(
            [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "p.tex"],
            cwd=work,
            capture_output=True,
            text=True,
            errors="replace",  # pdflatex echoes T1 bytes (a µ of µWh as 0xb5), not UTF-8
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:]
        log = (work / "p.log").read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"Overfull \\hbox", log), log
