"""What a new user of budgets, what-if, carbon, hardware and Prometheus found wrong (session 20).

Each test runs as a new user does (a script in an empty directory with a clean environment, the
CLI as typed) and checks a figure against its derivation from first principles, or the one line
a mistake gets.
"""

from __future__ import annotations

import json
import sys

import pytest

import greenprint as gp
from _report_cli import empty_home, run_in

#: Scrapes the process's own /metrics over loopback while a trial and its fold are open, then
#: writes a textfile once; prints what it read as JSON for the test.
NESTED_SCRAPE = """
import json, time, urllib.request
import greenprint as gp
from greenprint import prometheus
from prometheus_client.parser import text_string_to_metric_families

def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text)
            for s in f.samples]

def busy(seconds):
    t = time.time()
    while time.time() - t < seconds:
        sum(i * i for i in range(2000))

out = {}
with prometheus.serve(0) as server:
    with gp.track("trial", study="cv", region="DE", pue=1.2, sample_interval_s=0.1) as trial:
        busy(0.3)
        with gp.track("fold-0", role="part", sample_interval_s=0.1) as fold:
            busy(0.5)
            out["during"] = scrape(server.url)
            out["trial_j"] = trial.energy_kwh * 3.6e6
            out["fold_j"] = fold.energy_kwh * 3.6e6
        prometheus.write_textfile(".")
        out["last"] = scrape(server.url)
out["ids"] = {"trial": trial.id, "fold": fold.id}
json.dump(out, open("scraped.json", "w"))
"""


def test_prometheus_sums_no_nested_run_twice_and_leaves_no_stale_textfile(
    tmp_path_factory: pytest.TempPathFactory,
):
    """docs/prometheus.md said "`sum by (study)` of the counters gives a study's live total",
    but a fold nested in its trial was exported beside it with nothing to tell them apart: the
    sum counted the fold's energy twice (trial 1.7 J + fold 2.3 J read 4.0 J while the trial,
    which holds the fold, had spent 1.7 J). Now every series has ``nested`` ("true" for the
    fold) and the sum of ``nested="false"`` is the trial's own figure. And the docs' example,
    ``prometheus.write_textfile("textfiles")``, left ``greenprint_<pid>.prom`` behind when the
    script ended: node_exporter reported the ended run, "runs_active 1", for ever. The file a
    process wrote is now removed when it exits."""
    home = empty_home(tmp_path_factory, "s20b-prom")
    (home / "script.py").write_text(NESTED_SCRAPE, encoding="utf-8")
    done = run_in(home, sys.executable, "script.py")
    assert done.returncode == 0, done.stderr
    out = json.loads((home / "scraped.json").read_text())
    ids = out["ids"]
    energy = [
        (labels, v) for name, labels, v in out["during"] if name.startswith("greenprint_energy")
    ]
    nested = {labels["run_id"]: labels["nested"] for labels, _ in energy}
    assert nested == {ids["trial"]: "false", ids["fold"]: "true"}
    top = sum(v for labels, v in energy if labels["nested"] == "false")
    trial_j = sum(v for labels, v in energy if labels["run_id"] == ids["trial"])
    fold_j = sum(v for labels, v in energy if labels["run_id"] == ids["fold"])
    assert top == trial_j
    # the fold's work is inside the trial's figure (read just after the scrape: at least it)
    assert 0 < fold_j <= trial_j <= out["trial_j"]
    # the counters against the ledger: the ledger's final figures are at least the last scrape,
    # and CO2-eq is energy x PUE x Germany's 380.95 g/kWh
    (trial,) = [r for r in gp.Ledger(home / "greenprint.db").runs(study="cv") if r.name == "trial"]
    last = {
        (name, labels.get("component")): v
        for name, labels, v in out["last"]
        if labels.get("run_id") == ids["trial"]
    }
    last_j = sum(v for (name, _), v in last.items() if name.startswith("greenprint_energy"))
    assert 0 < last_j <= trial.energy_kwh * 3.6e6 + 1e-9
    grams = last[("greenprint_emissions_grams_total", None)]
    assert grams == pytest.approx(last_j / 3.6e6 * 1.2 * 380.95, rel=1e-9)
    assert trial.emissions_kg * 1e3 == pytest.approx(trial.energy_kwh * 1.2 * 380.95, rel=1e-9)
    assert list(home.glob("*.prom")) == []  # the textfile went with its process
