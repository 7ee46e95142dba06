"""``greenprint ledger export --format json`` written a chunk of runs at a time, as it always read.

The JSON export built every run's dictionary (each a deep copy), read each run's samples in a
read of its own, and made the whole document one string: 100,000 runs took 85 s and 3.4 GB of
memory. It now reads the samples in one read and writes a thousand runs at a time. The text
must be what it was: ``json_text`` of the whole document, built here the old way (chunks of two
runs, so that every boundary is crossed), for every study and for one; the runs' dictionaries
must equal ``dataclasses.asdict``'s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from _clean_env import BIN, clean_env
from _export_runs import export_run
from greenprint import PowerSample
from greenprint._format import json_safe
from greenprint.cli import _ledger_export as export
from greenprint.cli import cli
from greenprint.cli._cells import json_text, record_dict, unmetered
from greenprint.cli._ledger_roles import roles_as_read
from greenprint.ledger import Ledger

NAN = float("nan")


_run = export_run


def _ledger(path: Path) -> Path:
    with Ledger(path) as led:
        led.start_run(_run("sweep-1", "a", status="finished", metrics=()))
        for k in range(5):
            led.start_run(_run(f"trial-{k}", "a", parent_id="sweep-1", fpo=3 * 10**21 + k))
            led.flush(f"trial-{k}", samples=[PowerSample(2.0 + k, 3.0 + k, cpu_w=NAN, gpu_w=9.0)])
            led.flush(f"trial-{k}", samples=[PowerSample(1.0, 2.0, cpu_w=1.0)])
        led.start_run(_run("nometer", "a", energy_kwh=0.0, emissions_kg=0.0, duration_s=0.0))
        led.start_run(_run("other", "b", status="failed", error="KeyError: 'x'"))
    return path


def _reference(path: Path, study: str | None) -> str:
    """The export as it was written: every run's dictionary, then the document in one string."""
    with Ledger(path, create=False) as led:
        records = led.runs(study=study)
        resolved = roles_as_read(records, None)
        items = []
        for record in records:
            item = dataclasses.asdict(record)
            item.update(record_dict(record))  # (tested against asdict below)
            item["intensity_g_per_kwh"], item["intensity_source"] = export._priced_at(record)
            role, role_inferred, parent_id, parent_inferred, contained, _ = resolved[record.id]
            item.update(role=role, role_inferred=role_inferred, parent_id=parent_id)
            item["contained"] = contained
            item["parent_inferred"] = parent_inferred
            item["samples"] = [dataclasses.asdict(s) for s in led.samples(record.id)]
            items.append(item)
        document = {"ledger": led.url, "schema_version": led.schema_version, "runs": items}
        # the standard library's text itself (json_text writes it its own way since session 48)
        return json.dumps(json_safe(document), indent=2, allow_nan=False)


@pytest.mark.parametrize("study", [None, "a", "b"])
@pytest.mark.parametrize("chunk", [("_CHUNK_RUNS", 2), ("_CHUNK_VALUES", 3)])
def test_the_json_export_is_the_whole_document_as_written_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, study: str | None, chunk: tuple[str, int]
) -> None:
    """In chunks of two runs, or of runs holding three points and samples (the trials hold
    four: a chunk each, the runs without any together), every boundary crossed."""
    ledger = _ledger(tmp_path / "ledger.db")
    monkeypatch.setattr(export, *chunk)
    out = tmp_path / "runs.json"
    args = ["ledger", "export", "--ledger", str(ledger), "--format", "json", "--out", str(out)]
    done = CliRunner().invoke(cli, args + (["--study", study] if study else []))
    assert done.exit_code == 0, done.output
    assert out.read_text(encoding="utf-8") == _reference(ledger, study) + "\n"
    to_stdout = CliRunner().invoke(cli, args[:-2] + (["--study", study] if study else []))
    assert to_stdout.stdout == _reference(ledger, study) + "\n"


def test_an_empty_ledger_exports_no_runs(tmp_path: Path) -> None:
    ledger = tmp_path / "empty.db"
    Ledger(ledger).close()
    done = CliRunner().invoke(
        cli, ["ledger", "export", "--ledger", str(ledger), "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    assert done.stdout == _reference(ledger, None) + "\n"
    assert json.loads(done.stdout)["runs"] == []


def test_a_runs_dictionary_is_asdicts(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.db")
    with Ledger(ledger, create=False) as led:
        for record in led.runs():
            expected = dataclasses.asdict(record)
            expected["duration_s"] = None if record.duration_s == 0.0 else record.duration_s
            expected.update(unmetered(record))
            assert json_text(record_dict(record)) == json_text(expected)
            assert list(record_dict(record)) == list(expected)


def test_a_new_user_exports_a_study_from_an_empty_directory(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "ledger.db")
    home = tmp_path / "empty"
    home.mkdir()
    done = subprocess.run(
        [str(BIN / "greenprint"), "ledger", "export", "--ledger", str(ledger), "--study", "a",
         "--format", "json", "--out", "runs.json"],
        cwd=home, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "wrote 7 runs to runs.json"
    runs = json.loads((home / "runs.json").read_text(encoding="utf-8"))["runs"]
    trials = [f"trial-{k}" for k in range(5)]
    assert sorted(r["id"] for r in runs) == ["nometer", "sweep-1", *trials]
    trial = next(r for r in runs if r["id"] == "trial-0")
    assert [s["t0"] for s in trial["samples"]] == [1.0, 2.0]
    assert trial["samples"][1]["cpu_w"] == "NaN"
    assert trial["fpo"] == 3 * 10**21 and math.isclose(trial["energy_kwh"], 0.002)
    assert sorted(p.name for p in home.iterdir()) == ["runs.json"]
