"""How a multi-node job is read when a node failed, and when a node is given its trial by id.

1. A job over two nodes (``GREENPRINT_JOB_ID`` shared, a ``gp.track`` run on each node) whose
   head node's run finished while the other node's crashed read as one finished trial: the
   report said "1 trial (1 finished)", chose the head as the final model and listed no failure.
   A job is one training (``torchrun`` and SLURM end such a job failed): its trial now reads
   the job's status (:func:`greenprint._jobs.job_status`), with a note naming the node's run.
2. A node's run given its trial's id (``gp.track(parent=trial_id)`` on another host) carrying a
   job id recorded no containment and was read as nested in the trial (its energy inside the
   trial's reading of another machine): a study whose machines measured 16 kWh read 11. A
   machine's meters measure nothing of another machine: the node's energy now adds, also past
   a sweep around the trial.

The nodes are real processes (``GREENPRINT_HOST`` names each one's host) with constant-power
meters, so the brute-force total is the sum of what each machine's outermost run measured.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _hand_built import measured_run
from greenprint.analysis import price_tag, study_trials
from greenprint.cli import main
from greenprint.ledger._study_cost import study_cost

TRACKING = Path(__file__).resolve().parent / "tracking"

#: One node's process: a run of the job (in a sweep, or given its parent by id), constant power.
NODE = """\
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tracking!r})
from _meters import ConstantPowerMeters
import greenprint as gp

meters = lambda: ConstantPowerMeters(cpu_w=100.0, ram_w=10.0, process_share=0.25)
common = dict(study="mn", ledger=os.environ["LEDGER"], sample_interval_s=0.05,
              flush_interval_s=0.1)
here = Path(os.environ["LEDGER"]).parent
if os.environ.get("SWEEP") == "1":  # node a: a sweep around the trial, one process
    with gp.track("search", role="sweep", meters=meters(), **common):
        time.sleep(0.2)
        with gp.track("lr=0.1", role="trial", params={{"lr": 0.1}}, meters=meters(),
                      **common) as trial:
            (here / "trial.id").write_text(trial.id)
            trial.log(loss=0.5)
            for _ in range(600):  # until node b's run ended
                if (here / "b.done").exists():
                    break
                time.sleep(0.05)
        time.sleep(0.2)
elif os.environ.get("PARENT_FILE"):  # node b: its run given the trial's id
    path = here / os.environ["PARENT_FILE"]
    for _ in range(600):
        if path.exists():
            break
        time.sleep(0.05)
    with gp.track(f"lr=0.1-{{os.environ['GREENPRINT_HOST']}}", parent=path.read_text(),
                  meters=meters(), **common):
        time.sleep(0.6)
    (here / "b.done").write_text("")
else:  # a node of a training: each node's process tracks itself
    with gp.track(f"train-{{os.environ['GREENPRINT_HOST']}}", meters=meters(),
                  **common) as run:
        run.log(loss=0.5)
        time.sleep(0.5)
        if os.environ.get("FAIL") == "1":
            raise RuntimeError("CUDA out of memory on node b")
"""


def _node(tmp_path: Path, host: str, node_rank: int, **extra: str) -> subprocess.Popen[str]:
    script = tmp_path / "node.py"
    if not script.exists():
        script.write_text(NODE.format(tracking=str(TRACKING)))
    env = clean_env()
    for key in list(env):  # the test runner's own scheduler variables, if any
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in ("RANK", "LOCAL_RANK"):
            del env[key]
    env.update(
        LEDGER=str(tmp_path / "mn.db"),
        GREENPRINT_JOB_ID="exp7",
        GREENPRINT_HOST=host,
        GREENPRINT_NODE_RANK=str(node_rank),
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(tmp_path: Path, *procs: subprocess.Popen[str], fails: int = 0) -> list[gp.RunRecord]:
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        if proc.returncode != 0:
            assert "CUDA out of memory on node b" in err, err[-3000:]
    assert sorted(codes) == [0] * (len(procs) - fails) + [1] * fails
    with gp.Ledger(tmp_path / "mn.db") as led:
        return led.runs(study="mn")


@pytest.mark.parametrize("shared", ["0", "1"], ids=["node-meters", "shared-nodes"])
def test_a_job_whose_other_node_failed_reads_as_one_failed_trial(tmp_path, capsys, shared):
    gp.Ledger(tmp_path / "mn.db").close()  # created once, before the nodes race to
    runs = _runs(
        tmp_path,
        _node(tmp_path, "node-a", 0, GREENPRINT_SHARED_NODE=shared),
        _node(tmp_path, "node-b", 1, GREENPRINT_SHARED_NODE=shared, FAIL="1"),
        fails=1,
    )
    by_host = {r.host: r for r in runs}
    assert by_host["node-a"].status == "finished" and by_host["node-b"].status == "failed"
    assert {r.job_id for r in runs} == {"exp7"}

    trials = study_trials(runs, metric="loss")
    assert trials.by_status == {"failed": 1}  # was {"finished": 1}
    tag = price_tag(runs)
    assert tag.total.trials == 1
    assert set(tag.by_status) == {"failed"}  # the failed training's whole cost
    assert tag.by_status["failed"].energy_kwh == pytest.approx(tag.total.energy_kwh)
    assert tag.total.energy_kwh == pytest.approx(sum(r.energy_kwh for r in runs), rel=1e-9)
    assert any(
        "job exp7" in n
        and "'train-node-b'" in n
        and "CUDA out of memory" in n
        and "reads failed" in n
        for n in tag.notes
    ), tag.notes
    assert tag.final is None  # no finished trial: a failed training made no model

    # the CLI, as a user reads it: the summary, the report's table and its failed runs
    out = tmp_path / "report"
    assert main(["report", "--ledger", str(tmp_path / "mn.db"), "--study", "mn", "--format",
                 "md", "--no-plots", "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "1 trial (1 failed) in 2 runs" in printed, printed  # was "(1 finished)"
    md = (out / "report.md").read_text()
    assert "| failed | 2 | 1 |" in md and "| finished |" not in md
    assert "## Failed runs (1)" in md
    assert "CUDA out of memory on node b**: 1 trial failed: train-node-a" in md
    assert "the error of its part train-node-b" in md
    assert main(["report", "--ledger", str(tmp_path / "mn.db"), "--study", "mn", "--format",
                 "json", "--no-plots", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["price_tag"]["by_status"]["failed"]["trials"] == 1
    rows = {row["name"]: row for row in report["runs"]}
    assert rows["train-node-a"]["status"] == "failed" and rows["train-node-a"]["score"] is None


def test_a_job_whose_nodes_all_finished_still_reads_finished(tmp_path):
    gp.Ledger(tmp_path / "mn.db").close()
    runs = _runs(tmp_path, _node(tmp_path, "node-a", 0), _node(tmp_path, "node-b", 1))
    tag = price_tag(runs, metric="loss")
    assert set(tag.by_status) == {"finished"} and tag.total.trials == 1
    assert tag.final is not None and tag.final.name == "train-node-a"
    assert not any("read as" in n for n in tag.notes)


def test_a_node_given_its_trial_by_id_adds_past_the_sweep_on_the_other_host(tmp_path):
    """Node a: ``gp.track("search", role="sweep")`` around the trial in one process; node b: a
    run of the same job given the trial's id. Each machine measured its own: the study's
    energy is the sweep's reading (node a's outermost run) plus node b's."""
    gp.Ledger(tmp_path / "mn.db").close()
    runs = _runs(
        tmp_path,
        _node(tmp_path, "node-a", 0, SWEEP="1", GREENPRINT_SHARED_NODE="1"),
        _node(tmp_path, "node-b", 1, PARENT_FILE="trial.id", GREENPRINT_SHARED_NODE="1"),
    )
    by_name = {r.name: r for r in runs}
    sweep, trial, node_b = by_name["search"], by_name["lr=0.1"], by_name["lr=0.1-node-b"]
    assert node_b.parent_id == trial.id and node_b.contained is None  # given by id: unknown
    assert node_b.job_id == trial.job_id == "exp7" and node_b.host != trial.host
    assert trial.contained is True and trial.parent_id == sweep.id
    assert node_b.energy_kwh > 0 and sweep.energy_kwh >= trial.energy_kwh
    brute = sweep.energy_kwh + node_b.energy_kwh  # each machine's outermost reading, once

    tag = price_tag(runs, metric="loss")
    assert tag.total.energy_kwh == pytest.approx(brute, rel=1e-9)  # was the sweep's alone
    assert tag.final is not None and tag.final.name == "lr=0.1"
    assert tag.final.energy_kwh == pytest.approx(trial.energy_kwh + node_b.energy_kwh, rel=1e-9)
    with gp.Ledger(tmp_path / "mn.db") as led:
        assert study_cost(led, "mn").energy_kwh == pytest.approx(brute, rel=1e-9)  # budget's read

    out = tmp_path / "export.json"
    assert main(["ledger", "export", "--ledger", str(tmp_path / "mn.db"), "--study", "mn",
                 "--format", "json", "--out", str(out)]) == 0  # fmt: skip
    exported = {row["name"]: row for row in json.loads(out.read_text())["runs"]}
    assert exported["lr=0.1-node-b"]["contained"] is False  # read as outside: it adds
    top = [row for row in exported.values() if row["parent_id"] is None]
    outside = [row for row in exported.values() if row["contained"] is False]
    assert math.fsum(r["energy_kwh"] for r in top + outside) == pytest.approx(brute, rel=1e-9)


def _sweep_study(contained: bool | None) -> list[gp.RunRecord]:
    """A sweep (node a's process tree: itself 1 kWh, its trial's 10) and 5 kWh on node b, a
    rank of the trial's job given the trial's id. The machines measured 11 + 5 = 16 kWh."""
    return [
        measured_run("sweep", None, 11.0, (0, 30), pid=1, role="sweep", host="node-a"),
        measured_run("lr0.05", "sweep", 10.0, (1, 11), pid=1, host="node-a", job_id="job-a",
                     node_rank=0, local_rank=0, node_meter=False, contained=True),
        measured_run("lr0.05-node-b", "lr0.05", 5.0, (2, 10), pid=9, host="node-b",
                     job_id="job-a", node_rank=1, local_rank=0, node_meter=False,
                     contained=contained),
    ]  # fmt: skip


@pytest.mark.parametrize("contained", [None, False], ids=["none-recorded", "recorded-false"])
def test_hand_built_a_node_given_its_trial_by_id_adds_16_kwh_not_11(tmp_path, contained):
    runs = _sweep_study(contained)
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(16.0, rel=1e-12)  # was 11 with None
    assert tag.by_role["trial"].energy_kwh == pytest.approx(15.0, rel=1e-12)
    assert tag.by_role["sweep"].energy_kwh == pytest.approx(1.0, rel=1e-12)
    assert tag.provenance.measured_kwh == pytest.approx(16.0, rel=1e-12)
    forest = tag.roles.forest
    node_b = forest.index["id-lr0.05-node-b"]
    assert forest.kinds[node_b] == "remote" and forest.adds_far(node_b)
    assert forest.adds_to_the_total[node_b]
    with gp.Ledger(tmp_path / "greenprint.db") as led:
        for record in runs:
            led.start_run(record)
        assert study_cost(led, "ddp").energy_kwh == pytest.approx(16.0, rel=1e-12)


def test_hand_built_a_node_on_the_trials_own_host_stays_inside_it():
    """The same run on node a (no containment recorded, given the id): inside the sweep's
    process-tree reading, as before: 11 kWh."""
    runs = _sweep_study(None)
    runs[2] = measured_run("lr0.05-node-b", "lr0.05", 5.0, (2, 10), pid=9, host="node-a",
                           job_id="job-a", node_rank=0, local_rank=1, node_meter=False)  # fmt: skip
    assert price_tag(runs).total.energy_kwh == pytest.approx(11.0, rel=1e-12)
