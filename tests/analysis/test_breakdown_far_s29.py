"""A sweep's DDP trainings and their remote work: the price tag's breakdown by first principles.

A sweep script (``greenprint run --role sweep``) spawns its trainings' ranks
(``torch.multiprocessing.spawn``): every rank is a contained child of the sweep's run, and the
price tag reads each training as one trial, its rank 1 linked under its rank 0 (outside rank 0's
measurement, inside the sweep's). A trial's rank 0 may also send work to another host (its run
names the rank 0: outside every measurement on the sweep's host). Each process below draws a
constant power, and each run's record holds what its meter read of it (the sweep its process
tree, a rank its own process, a node meter the machine), so every figure is known by first
principles: each process's energy once, in the role and status of the run it belongs to.

Before: the provenance counted a rank 1's measured components again beside the sweep's, which
hold them (16 kWh of study read 22 kWh measured); a sweep that recorded less than its ranks
spent had no note; and where the sweep's two trainings ran at once and their rank 0s metered
the machine, the sweep's measurement was shared out among the rank 0s but not their rank 1s:
the total read 119 kWh of a sweep that measured 100.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import greenprint as gp
from _hand_built import measured_run
from greenprint.analysis import price_tag
from greenprint.ledger._study_cost import study_cost


def _rank(name: str, job: str, local: int, spent: float, span: tuple[int, int], pid: int, **more):
    """A rank of a training spawned by the sweep's process: contained in the sweep's run."""
    return measured_run(name, "sweep", spent, span, pid=pid, job_id=job, node_rank=0,
                        local_rank=local, contained=True, **more)  # fmt: skip


def _read(tmp_path: Path, records: list[gp.RunRecord]) -> tuple[list[gp.RunRecord], float]:
    """The runs as a ledger stores them, and a study budget's read of the ledger (kWh)."""
    with gp.Ledger(tmp_path / "greenprint.db") as led:
        for record in records:
            led.start_run(record)
        return led.runs(study="ddp"), study_cost(led, "ddp").energy_kwh


def _breakdown_adds_up(tag) -> None:
    total = tag.total.energy_kwh
    for groups in (tag.by_role, tag.by_status):
        assert math.fsum(c.energy_kwh for c in groups.values()) == pytest.approx(total, rel=1e-12)
    counted = tag.provenance
    assert counted.measured_kwh + counted.estimated_kwh + counted.unknown_kwh == pytest.approx(
        total, rel=1e-12
    )


def test_ranks_under_rank_0_and_remote_work_count_once_in_their_roles(tmp_path):
    """Two trainings one after another (the second failed); the first's rank 0 sent 5 kWh of
    work to node-b. Sweep process 1 kWh, each rank 0 2 kWh, each rank 1 3 kWh."""
    ranks = [
        _rank("lr0.05-rank0", "job-a", 0, 2.0, (1, 11), 2),
        _rank("lr0.05-rank1", "job-a", 1, 3.0, (1, 11), 3),
        _rank("lr0.01-rank0", "job-b", 0, 2.0, (12, 22), 4, status="failed"),
        _rank("lr0.01-rank1", "job-b", 1, 3.0, (12, 22), 5, status="failed"),
    ]
    remote = measured_run("eval-on-node-b", "lr0.05-rank0", 5.0, (2, 8), pid=9, host="node-b",
                  contained=False)  # fmt: skip
    sweep = measured_run(
        "sweep", None, 1.0 + 10.0, (0, 30), pid=1, role="sweep"
    )  # its process tree
    runs, read = _read(tmp_path, [sweep, *ranks, remote])
    tag = price_tag(runs)
    assert tag.roles.counts == {"sweep": 1, "trial": 2, "part": 3}
    assert tag.total.energy_kwh == pytest.approx(16.0, rel=1e-12)
    assert read == pytest.approx(16.0, rel=1e-12)  # the SQL read
    assert tag.by_role["sweep"].energy_kwh == pytest.approx(1.0, rel=1e-12)  # its own process
    assert tag.by_role["trial"].energy_kwh == pytest.approx(10.0 + 5.0, rel=1e-12)
    assert tag.by_status["failed"].energy_kwh == pytest.approx(5.0, rel=1e-12)
    assert tag.provenance.measured_kwh == pytest.approx(16.0, rel=1e-12)  # was 22
    _breakdown_adds_up(tag)
    assert not any("less energy than their children" in n for n in tag.notes)

    # the sweep's run killed early: its last flush read 4.5 kWh of the 11 its tree spent
    short = measured_run("sweep", None, 4.5, (0, 30), pid=1, role="sweep", status="lost")
    tag = price_tag([short if r.name == "sweep" else r for r in runs])
    assert tag.total.energy_kwh == pytest.approx(10.0 + 5.0, rel=1e-12)  # the ranks' and node-b's
    assert any("less energy than their children" in n for n in tag.notes)  # was none
    _breakdown_adds_up(tag)


def test_two_trainings_at_once_whose_rank_0s_metered_the_machine(tmp_path):
    """Trainings A (1-11 s) and B (5-15 s) at once in a 20 s sweep; the machine runs nothing
    else. The sweep's process draws 1 kWh/s-unit, each rank 2: the sweep's tree read 100; each
    rank 0, a node meter, read the machine over its span (74), each rank 1 its process (20)."""
    machine = {"scope": "machine", "node_meter": True}
    ranks = [
        _rank("a-rank0", "job-a", 0, 10 + 40 + 24, (1, 11), 2, **machine),
        _rank("a-rank1", "job-a", 1, 20.0, (1, 11), 3),
        _rank("b-rank0", "job-b", 0, 10 + 40 + 24, (5, 15), 4, **machine),
        _rank("b-rank1", "job-b", 1, 20.0, (5, 15), 5),
    ]
    sweep = measured_run("sweep", None, 20 + 80, (0, 20), pid=1, role="sweep")
    runs, read = _read(tmp_path, [sweep, *ranks])
    tag = price_tag(runs)
    # the sweep's reading holds every process of the machine: the truth, once (was 118.7)
    assert tag.total.energy_kwh == pytest.approx(100.0, rel=1e-12)
    assert read == pytest.approx(100.0, rel=1e-12)
    assert tag.by_role["trial"].energy_kwh == pytest.approx(100.0, rel=1e-12)
    _breakdown_adds_up(tag)
    # as the note says: the trials' 188 kWh (their rank 1s' with them) scaled to the sweep's
    assert any("scaled to the 100 kWh their parent measured" in n for n in tag.notes)
