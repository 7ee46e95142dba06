"""A node killed before its first flush reads its job lost, whichever process started first.

A two-node job: node b's meter was killed (out of memory while loading the model, say) before its
first flush, so it recorded its start and nothing else. Started 0.05 s after node a's head, the
job read lost, as docs/distributed.md says; started 0.05 s before it, its zero-length record
overlapped nothing, read as an attempt of its own, and the real attempt as a restart of it that
finished: ``by_status`` said finished beside a note saying the job was lost. And once a rank ran
under that meter, the note that its machine energy is in no total went missing (session 52).
"""

from __future__ import annotations

import pytest

from greenprint import RunRecord
from greenprint.analysis import price_tag

NODE = {"job_id": "exp7", "started_at": 1.0, "ended_at": 60.0, "status": "finished"}
UNFLUSHED = "recorded no cost (killed before its first flush)"


def _job(b_start: float, *, rank_b: bool = True, restart: bool = False) -> list[RunRecord]:
    runs = [
        RunRecord(id="a0", name="train", host="a", node_rank=0, local_rank=0, node_meter=True,
                  energy_kwh=2.0, **NODE),
        RunRecord(id="a1", name="train", host="a", node_rank=0, local_rank=1, node_meter=False,
                  energy_kwh=0.1, **NODE),
        RunRecord(id="b0", name="train", host="b", node_rank=1, local_rank=0, node_meter=True,
                  status="lost", started_at=b_start, heartbeat_at=b_start, job_id="exp7"),
    ]  # fmt: skip
    if rank_b:
        runs.append(
            RunRecord(id="b1", name="train", host="b", node_rank=1, local_rank=1,
                      node_meter=False, energy_kwh=0.1, **NODE)
        )  # fmt: skip
    if restart:  # node b's meter started again in a new process: the lost one was before it
        runs.append(
            RunRecord(id="b0-again", name="train", host="b", node_rank=1, local_rank=0,
                      node_meter=True, energy_kwh=1.5, **NODE)
        )  # fmt: skip
    return runs


@pytest.mark.parametrize("b_start", [0.95, 1.05, 0.2, 5.0])
def test_the_job_reads_lost_whichever_process_started_first(b_start: float) -> None:
    tag = price_tag(_job(b_start))
    assert set(tag.by_status) == {"lost"}, tag.by_status
    lost = tag.by_status["lost"]
    assert (lost.trials, lost.runs) == (1, 4)
    assert lost.energy_kwh == pytest.approx(2.1)  # node a's meter, node b's rank
    assert any("job exp7 is lost: run b0" in note for note in tag.notes)


def test_the_meter_that_recorded_nothing_is_said_with_its_rank_under_it() -> None:
    for rank_b in (False, True):
        tag = price_tag(_job(0.95, rank_b=rank_b))
        assert any(f"1 lost run (b0) {UNFLUSHED}" in note for note in tag.notes), tag.notes


def test_a_node_started_again_in_a_new_process_is_a_restart_that_finished() -> None:
    """The lost meter's process has a new run beside the attempt: that attempt is a restart."""
    tag = price_tag(_job(0.95, restart=True))
    assert "lost" not in {k for k, v in tag.by_status.items() if v.trials}
    assert tag.by_status["finished"].trials == 1
    assert tag.total.energy_kwh == pytest.approx(2.0 + 1.5)  # the two node meters


def test_a_lost_run_long_before_the_attempt_stays_an_attempt_of_its_own() -> None:
    """Killed before its first flush, 10 s by default: a run that started more than that before
    the others could not have run beside them."""
    tag = price_tag(_job(-20.0))
    assert tag.by_status["finished"].trials == 1  # the later attempt, a restart of the lost one
