"""A job read lost for a node's lost run says when that run stopped, not its head (session 52).

Two nodes, one ledger each, merged: node 0's head finished at 12:00:45, node 1's meter was
killed and stopped writing at 12:00:43. The report's failed-runs section listed the job's trial
(its head, read lost) "its process stopped writing at 12:00:45": the head's end, which ended as
it should.
"""

from __future__ import annotations

from pathlib import Path

import greenprint as gp
from greenprint.report import build_report, render

T0 = 1_796_644_800.0  # 2026-12-07 12:00:00 UTC


def _node(path: Path, rid: str, rank: int, end: float, status: str) -> None:
    with gp.Ledger(str(path)) as led:
        led.start_run(
            gp.RunRecord(id=rid, name="train", study="lost", host=f"node{rank}", job_id="exp",
                         node_rank=rank, local_rank=0, node_meter=True, started_at=T0)
        )  # fmt: skip
        fields = {
            "energy_kwh": 0.5,
            "emissions_kg": 0.2,
            "duration_s": end,
            "heartbeat_at": T0 + end,
        }
        if status == "finished":
            fields.update(status="finished", ended_at=T0 + end)
        led.flush(rid, fields=fields)
    if status == "lost":  # its heartbeat long stale: read lost
        with gp.Ledger(str(path)) as led:
            led.flush(rid, fields={"status": "lost"})


def test_the_lost_entry_gives_the_lost_runs_stop(tmp_path: Path) -> None:
    _node(tmp_path / "node0.db", "aaaa0000head", 0, 45.0, "finished")
    _node(tmp_path / "node1.db", "bbbb1111meter", 1, 43.0, "lost")
    merged = tmp_path / "m.db"
    with gp.Ledger(str(merged)) as led:
        led.merge(str(tmp_path / "node0.db"), str(tmp_path / "node1.db"))
    report = build_report(str(merged), "lost")
    assert report.price_tag.by_status["lost"].trials == 1
    markdown = render(report, "md", plots=False)
    (line,) = [line for line in markdown.splitlines() if "stopped writing at" in line]
    assert "12:00:43" in line and "12:00:45" not in line, line
