"""What a new user found inconsistent in session 36, reading the README and docs/, and left.

* ``greenprint ledger set-role trail ID`` said no "did you mean 'trial'?" (the study names and
  run options had one); in an empty folder it said "no ledger" before naming the typo.
* docs/analysis.md's budget loop printed "1 trials ~ ...".
* The what-if column read "Difference" (Markdown, HTML), "Saved" (LaTeX) and "saving vs
  recorded" (``greenprint whatif``): one name now, the CLI's, the same sign everywhere.
* Prometheus: before a run's first meter sample ``greenprint_energy_joules_total`` had no
  series while ``greenprint_emissions_grams_total`` read 0.0, so docs/prometheus.md's
  ``sum by (study) (greenprint_energy_joules_total{nested="false"})`` missed the run.
* A run recorded without a duration (docs/ledger.md's hand-built merge example) read "0.0 s"
  in ``ledger ls``, ``ledger show`` and every report format: "-" now, "unknown" in sentences.
* The LaTeX report had no E x D x H sentence; docs/report.md's price tag gives it in every
  format (Markdown and HTML had it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, empty_home, run_in
from greenprint import prometheus

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0
ROLES = "trial, part, baseline, final, learning-curve, sweep, greener"


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


# ------------------------------------------------------------------------- set-role typo


def test_set_role_names_the_role_meant_before_looking_for_a_ledger(tmp_path_factory):
    home = empty_home(tmp_path_factory, "set-role-typo")
    line = _one_line_error(run_in(home, GREENPRINT, "ledger", "set-role", "trail", "abcd"))
    assert line == (
        f"greenprint: error: unknown run role 'trail'; did you mean 'trial'? Roles: {ROLES}"
    )
    assert not (home / "greenprint.db").exists()

    with gp.Ledger(home / "greenprint.db") as led:
        led.start_run(gp.RunRecord(id="abcd1234", name="a", status="finished", started_at=T0))
    line = _one_line_error(run_in(home, GREENPRINT, "ledger", "set-role", "trail", "abcd"))
    assert "did you mean 'trial'?" in line and ROLES in line
    line = _one_line_error(run_in(home, GREENPRINT, "ledger", "set-role", "winner", "abcd"))
    assert line == f"greenprint: error: unknown run role 'winner'; roles: {ROLES}"  # none close
    with gp.Ledger(home / "greenprint.db") as led:
        assert led.run("abcd").role is None  # nothing changed
        with pytest.raises(gp.ConfigError, match="did you mean 'baseline'"):
            led.set_role("basline", "abcd")  # the library says the same


# ------------------------------------------------------------------- docs/analysis.md


def test_the_analysis_budget_loop_prints_one_trial_in_the_singular(tmp_path_factory):
    home = empty_home(tmp_path_factory, "analysis-doc")
    text = (ROOT / "docs" / "analysis.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "evp_by_budget(" in b)
    (home / "example.py").write_text(block, encoding="utf-8")
    done = run_in(home, sys.executable, "example.py", env=clean_env())
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if " ~ " in line]
    assert lines[0].startswith("1 trial ~ ") and lines[1].startswith("2 trials ~ ")
    assert "1 trials" not in done.stdout


# ---------------------------------------------------------- a study of hand-built runs


def _study(path: Path, *, durations: bool) -> list[str]:
    """Two trials with a dataset size (one without a duration unless ``durations``)."""
    ids = []
    with gp.Ledger(path) as led:
        for k, kwh in enumerate((0.010, 0.020)):
            run_id = f"{k}abc{k}def"
            ids.append(run_id)
            led.start_run(
                gp.RunRecord(
                    id=run_id, name=f"trial-{k}", study="s", started_at=T0 + 100 * k,
                    dataset_size=1000, intensity_g_per_kwh=380.0, intensity_source="table:DE:2023",
                )
            )  # fmt: skip
            fields = {"status": "finished", "energy_kwh": kwh, "emissions_kg": kwh * 0.38}
            if durations:
                fields.update(duration_s=60.0 * (k + 1), ended_at=T0 + 100 * k + 60 * (k + 1))
            led.flush(run_id, fields=fields, metrics=[gp.MetricPoint("accuracy", 0.8 + k / 10)])
    return ids


def _reports(home: Path) -> dict[str, str]:
    done = run_in(home, GREENPRINT, "report", "--study", "s", "--format", "md,html,latex")
    assert done.returncode == 0, done.stderr
    out = home / "greenprint-report"
    return {f: (out / f"report.{f}").read_text() for f in ("md", "html", "tex")}


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    home = empty_home(tmp_path_factory, "timed-study")
    ids = _study(home / "greenprint.db", durations=True)
    return home, ids, _reports(home)


def test_the_whatif_column_has_one_name_and_one_sign_everywhere(timed):
    home, ids, reports = timed
    md, html, tex = reports["md"], reports["html"], reports["tex"]
    assert "| Region | g CO2-eq/kWh | CO2-eq | Saving vs recorded | Source |" in md
    assert '<th class="num">Saving vs recorded</th>' in html
    assert r"\begin{tabular}[b]{@{}r@{}}Saving vs \\ recorded\end{tabular}" in tex
    for text in (md, html, tex):
        assert "Difference" not in text and "Saved" not in text
        assert "negative one means more CO2-eq there" in text
    done = run_in(home, GREENPRINT, "whatif", "--run", ids[0][:8], "--regions", "DE,FR,PL")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^region .* saving vs recorded  name$", done.stdout, re.M)
    # Poland's grid is dirtier than the recorded 380 g/kWh: negative in the CLI and the reports
    assert re.search(r"^PL .* -\S+ \S*g CO2-eq \(-\d+ %\)", done.stdout, re.M)
    (pl_md,) = [line for line in md.splitlines() if line.startswith("| PL (")]
    assert pl_md.split(" | ")[3].startswith("-")
    (pl_tex,) = [line for line in tex.splitlines() if line.startswith("PL & ")]
    assert pl_tex.split(" & ")[3].startswith("-")


def test_the_latex_report_gives_e_x_d_x_h_as_markdown_does(timed):
    _, _, reports = timed
    (edh,) = [line for line in reports["md"].splitlines() if line.startswith("E x D x H: ")]
    assert "x 1,000 examples per trial x 2 trials = " in edh
    paper = reports["tex"].split("BEGIN PAPER")[1].split("END PAPER")[0]
    (line,) = [line for line in paper.splitlines() if line.startswith("E x D x H: ")]
    assert line.replace(r"\,", "").replace("{,}", ",").startswith(edh[: edh.index(" = ")])
    assert f"<p>{edh.split(' = ')[0]}" in reports["html"]


def test_a_run_without_a_duration_reads_unknown_never_zero(tmp_path_factory):
    home = empty_home(tmp_path_factory, "no-duration")
    ids = _study(home / "greenprint.db", durations=False)
    ls = run_in(home, GREENPRINT, "ledger", "ls")
    assert ls.returncode == 0, ls.stderr
    header, *rows = ls.stdout.splitlines()
    start = header.index("DURATION")
    assert [row[start : start + 8].strip() for row in rows] == ["-", "-"]
    show = run_in(home, GREENPRINT, "ledger", "show", ids[0][:8])
    assert re.search(r"^  duration +-$", show.stdout, re.M), show.stdout
    reports = _reports(home)
    for text in reports.values():
        assert "0.0 s" not in text and "0 s of" not in text
        assert "They ran for an unknown time (no run recorded its duration)" in text
    assert "- **run time**: unknown (no run recorded one)" in reports["md"]
    (row,) = [line for line in reports["md"].splitlines() if line.startswith("| trial-0 | fin")]
    assert row.split(" | ")[6] == "-"  # its time in the runs table


def test_a_timed_run_keeps_its_duration(timed):
    home, ids, reports = timed
    ls = run_in(home, GREENPRINT, "ledger", "ls")
    assert "1m 0s" in ls.stdout and "2m 0s" in ls.stdout
    show = run_in(home, GREENPRINT, "ledger", "show", ids[0][:8])
    assert re.search(r"^  duration +1m 0s \(60\.000 s\)$", show.stdout, re.M), show.stdout
    assert "3m 0s in total" in reports["md"]


# ---------------------------------------------------------------------------- Prometheus


def test_a_runs_energy_series_is_there_from_its_start_as_its_emissions(tmp_path):
    parser = pytest.importorskip("prometheus_client.parser")
    # no meter sample for a minute: the scrape falls before the run's first
    with gp.track("early", study="live", ledger=False, sample_interval_s=60) as run:
        with prometheus.serve(0) as server:
            with urllib.request.urlopen(server.url, timeout=10) as response:
                body = response.read().decode()
        assert run.energy_by_component == {}  # not sampled yet: the case the scrape saw
    families = {f.name: f for f in parser.text_string_to_metric_families(body)}

    def of(name: str, **labels: str) -> dict[str, float]:
        return {
            s.labels.get("component", ""): s.value
            for s in families[name].samples
            if s.labels.get("run_id") == run.id and all(s.labels[k] == v for k, v in labels.items())
        }

    energy = of("greenprint_energy_joules", nested="false", study="live")
    assert energy and set(energy) == set(run.energy_by_component)  # the components it measured
    assert set(energy.values()) == {0.0}
    assert of("greenprint_emissions_grams") == {"": 0.0}
    assert of("greenprint_power_watts") == {}  # no power measured yet: no gauge, not 0 W
    # docs/prometheus.md's sum by (study) over nested="false" has the run from its start
    assert {s.labels["study"] for s in families["greenprint_energy_joules"].samples} == {"live"}
