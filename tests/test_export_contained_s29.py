"""``greenprint ledger export`` and the report's rows: ``contained`` false exactly where a run's
cost adds to the price tag, so the rows' documented sum gives it.

docs/ledger.md: summing the rows with no parent among them and the rows with ``contained``
false gives the price tag's energy and CO2-eq. A sweep script (``greenprint run --role
sweep``) spawning DDP trainings (``torch.multiprocessing.spawn``) records every rank as a
contained child of the sweep; the price tag reads each training as one trial, its rank 1
linked under its rank 0 by the job (outside rank 0's measurement, inside the sweep's). A rank
0 may also send work to another host (``contained`` false: outside every measurement there).
The runs are built by hand as the integrations record them (each process's energy known by
first principles: sweep process 1 kWh, each rank 0 2 kWh, each rank 1 3 kWh, node-b 5 kWh).

Before: the export and the report's rows wrote ``contained`` false for each rank 1 (linked as
adding to its rank 0), so the documented sum read 22 kWh of a 16 kWh study: the rank 1s twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

import greenprint as gp
from _hand_built import measured_run
from _report_cli import roots_sum_to_the_price_tag
from greenprint.analysis import price_tag
from greenprint.cli import main
from greenprint.report import build_report


def _training(prefix: str, job: str, parent: str | None, start: int, pid: int, **more):
    """A DDP training's two ranks (2 and 3 kWh), spawned by ``parent``'s process (contained
    in it) or on their own (``parent`` None: no containment recorded)."""
    inside = {} if parent is None else {"contained": True}
    return [
        measured_run(
            f"{prefix}-rank{k}",
            parent,
            2.0 + k,
            (start, start + 10),
            pid=pid + k,
            job_id=job,
            node_rank=0,
            local_rank=k,
            **inside,
            **more,
        )  # fmt: skip
        for k in (0, 1)
    ]


def _studies(path: Path) -> None:
    """Study "ddp": a sweep (its process tree: 1 + 2 x (2 + 3) kWh) of two trainings, the
    first's rank 0 with 5 kWh of work on node-b. Study "solo": one training on its own."""
    records = [
        measured_run("sweep", None, 11.0, (0, 30), pid=1, role="sweep"),
        *_training("lr0.05", "job-a", "sweep", 1, 2),
        *_training("lr0.01", "job-b", "sweep", 12, 4),
        measured_run(
            "eval-on-node-b", "lr0.05-rank0", 5.0, (2, 8), pid=9, host="node-b", contained=False
        ),  # fmt: skip
        *_training("solo", "job-c", None, 0, 20, study="solo"),
    ]
    with gp.Ledger(path) as led:
        for record in records:
            led.start_run(record)


def _export(path: Path, study: str, fmt: str, capsys) -> str:
    argv = ["ledger", "export", "--ledger", str(path), "--study", study, "--format", fmt]
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("study", "adding", "total"),
    [
        # the rank 1s are inside the sweep's reading; node-b's work is in no figure there
        ("ddp", {"eval-on-node-b"}, 16.0),
        # no run around the training: its rank 1 adds to its rank 0, the root
        ("solo", {"solo-rank1"}, 5.0),
    ],
)
def test_the_rows_sum_to_the_price_tag(tmp_path, capsys, study, adding, total):
    path = tmp_path / "greenprint.db"
    _studies(path)
    with gp.Ledger(path) as led:
        tag = price_tag(led.runs(study=study))
    assert tag.total.energy_kwh == pytest.approx(total, rel=1e-12)

    rows = list(csv.DictReader(io.StringIO(_export(path, study, "csv", capsys))))
    items = json.loads(_export(path, study, "json", capsys))["runs"]
    by_name = {r["name"]: r for r in rows}
    if study == "ddp":  # the report reads each rank 1 under its rank 0 (the trial)
        for lr in ("0.05", "0.01"):
            assert by_name[f"lr{lr}-rank1"]["parent_id"] == f"id-lr{lr}-rank0"
    assert {r["name"] for r in rows if r["contained"] == "False"} == adding  # was + rank 1s
    assert {i["name"] for i in items if i["contained"] is False} == adding
    # the documented sum: the rows with no parent among them and those with contained false
    roots = [r for r in rows if not r["parent_id"] or r["contained"] == "False"]
    for key, factor in (("energy_kwh", 1.0), ("emissions_kg", 0.4)):
        assert math.fsum(float(r[key]) for r in roots) == pytest.approx(total * factor)
    report = {
        "price_tag": {
            "total": {
                "runs": tag.total.runs,
                "energy_kwh": tag.total.energy_kwh,
                "emissions_kg": tag.total.emissions_kg,
            }
        }
    }
    roots_sum_to_the_price_tag(rows, report)

    # the report's JSON rows read alike: false exactly where the cost adds, null for a root
    built = build_report(path, study)
    assert built.price_tag.total.energy_kwh == pytest.approx(total, rel=1e-12)
    contained = {r.name: r.contained for r in built.runs}
    assert {n for n, c in contained.items() if c is False} == adding
    assert {i["name"]: i["contained"] for i in items if i["parent_id"]} == {
        n: c for n, c in contained.items() if c is not None
    }
    assert math.fsum(r.energy_kwh for r in built.runs if r.contained is not True) == (
        pytest.approx(total)
    )
