"""``greenprint whatif --study`` reads its study as the report does (the points a report reads).

A run that logged a metric at many steps is read as a few points (each metric's first, last,
best and furthest), as the report reads it; the what-if prices the study's energy counted once,
as its price tag counts it. Its text and its JSON must be what they were when every point was
read: here two trials logging 40 steps each and a baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from greenprint._records import MetricPoint, RunRecord
from greenprint.cli import main
from greenprint.ledger import Ledger


def _ledger(path: Path) -> Path:
    with Ledger(path) as led:
        for k, (name, role) in enumerate([("a", None), ("b", None), ("base", "baseline")]):
            # a's best is higher, b's last: the final run is b (the last value ranks)
            values = [0.9 if (name == "a" and step == 10) else 0.5 + 0.01 * step * (k + 1) / 2
                      for step in range(40)]  # fmt: skip
            led.start_run(
                RunRecord(
                    id=f"run-{name}",
                    name=name,
                    study="s",
                    status="finished",
                    role=role,
                    started_at=1_700_000_000.0 + 100 * k,
                    ended_at=1_700_000_050.0 + 100 * k,
                    duration_s=50.0,
                    energy_kwh=0.001 * (k + 1),
                    emissions_kg=0.0004 * (k + 1),
                    pue=1.2,
                    intensity_g_per_kwh=333.0,
                    metrics=tuple(
                        MetricPoint("acc", v, step, 1_700_000_000.0 + 100 * k + step)
                        for step, v in enumerate(values)
                    ),
                )
            )
    return path


def test_whatif_of_a_study_is_that_of_every_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _ledger(tmp_path / "l.db")
    args = ["whatif", "--ledger", str(ledger), "--study", "s", "--regions", "FR,PL"]
    read = Ledger._read

    def all_points(self: Ledger, **kwargs: Any) -> Any:  # the read as it was: every point
        return read(self, **{**kwargs, "points": "all"})

    outputs = []
    for every_point in (False, True):
        if every_point:
            monkeypatch.setattr(Ledger, "_read", all_points)
        for extra in ([], ["--json"]):
            assert main([*args, *extra]) == 0
            outputs.append(capsys.readouterr().out)
    assert outputs[:2] == outputs[2:]
    got = json.loads(outputs[1])
    assert got["runs"] == 3 and [r["region"] for r in got["regions"]] == ["FR", "PL"]
