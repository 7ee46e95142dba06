"""A new user's first report: ``greenprint run -- python train.py`` logged no metric.

The report still gives the price tag (cost by status and role, power, provenance, model card,
compute statement) in every format and says that ranking, EVP and Pareto need a logged score.
Run as a new user would: a fresh directory, a clean environment, the installed ``greenprint``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from _clean_env import BIN, clean_env, configured_above

GREENPRINT = BIN / "greenprint"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"
TRAIN = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 0.3:\n    pass\n"


def run_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=directory, env=clean_env(), capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
def test_report_without_a_metric_gives_the_price_tag(tmp_path, require_component):
    home = tmp_path / "new-user"
    home.mkdir()
    found = configured_above(home)
    require_component(not found, f"greenprint configuration above the temporary dir: {found}")
    (home / "train.py").write_text(TRAIN)
    done = run_in(home, str(GREENPRINT), "run", "--", sys.executable, "train.py")
    assert done.returncode == 0, done.stderr
    done = run_in(home, str(GREENPRINT), "report", "--no-plots")
    assert done.returncode == 0, done.stderr
    out = home / "greenprint-report"
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert data["study"] == "default" and data["metric"] is None
    total = data["price_tag"]["total"]
    assert total["runs"] == 1 and total["energy_kwh"] > 0 and total["duration_s"] > 0.2
    assert data["price_tag"]["by_status"]["finished"]["runs"] == 1
    assert data["price_tag"]["by_role"]["trial"]["runs"] == 1
    assert data["price_tag"]["final"] is None
    assert data["model_card"]["co2_eq_emissions"]["emissions"] > 0
    assert "1 trial" in data["compute_statement"]
    assert {f["id"] for f in data["figures"]} <= {"timeline"}  # no EVP, Pareto or curve
    assert any("run.log(accuracy=...)" in n for n in data["notes"])
    assert data["runs"][0]["score"] is None
    for name in ("report.html", "report.md", "report.tex"):
        text = (out / name).read_text(encoding="utf-8")
        assert "no run logged a metric" in text, name
        if name != "report.tex":  # the paper's part has no notes section
            assert "run.log(accuracy=...)" in text, name
        assert "None" not in text.replace("NoneType", ""), name
