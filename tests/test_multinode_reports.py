"""Studies that ran on several machines read right: merged ledgers and multi-node jobs.

A job spread over two "nodes" is built the way a batch script builds one: on each node,
``greenprint run`` (``GREENPRINT_JOB_ID``, ``GREENPRINT_NODE_RANK`` and ``GREENPRINT_HOST`` in
its environment, as SLURM's would be) around a launcher that starts two local ranks
(``LOCAL_RANK``, ``RANK``, ``WORLD_SIZE`` as ``torchrun`` sets them), each rank a ``gp.track``
run that logs its validation loss. Node 1 is a GPU machine: its ``pynvml`` is
:class:`greenprint.testing.FakeNVML` with two H100s (found through ``PYTHONPATH``, its driver's
``/dev/nvidiactl`` under ``GREENPRINT_DEV_ROOT``); node 0 has no GPU. The nodes write either a
ledger each, joined with ``greenprint ledger merge``, or one shared ledger (as one PostgreSQL
database written from both hosts would be). ``greenprint report`` then writes all four formats.

What a reader relies on:

* every machine is named, with its CPU, memory, GPUs and the runs and ranks it carried, in the
  JSON, Markdown, HTML and LaTeX reports (the provenance list, the model card's
  ``hardware_used`` and the compute statement), not one machine's hardware for the study;
* the job's score, the mean of its ranks', weighs every rank of every node the same (node 1's
  ranks, linked under node 0's run, weighed half).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenprint as gp
from _clean_env import clean_env
from _report_cli import GREENPRINT, run_in
from _report_cli import cli_report as _report
from _report_cli import empty_home as _empty
from _report_cli import report_text as _text
from greenprint.analysis import study_trials
from greenprint.report._escape import html_text, latex_text, markdown_text
from greenprint.report._text import hardware_descriptions

JOB = "exp7"
GPU_NAME = "NVIDIA H100 80GB HBM3"

TRAIN_SCRIPT = """
import os, subprocess, sys
import greenprint as gp

NODE, LOCAL = int(os.environ["GREENPRINT_NODE_RANK"]), 2

if sys.argv[1:] != ["rank"]:  # the node's launcher: its two local ranks, as torchrun starts them
    ranks = []
    for local in range(LOCAL):
        env = dict(os.environ, LOCAL_RANK=str(local), RANK=str(NODE * LOCAL + local),
                   WORLD_SIZE=str(2 * LOCAL))
        ranks.append(subprocess.Popen([sys.executable, __file__, "rank"], env=env))
    sys.exit(max(rank.wait() for rank in ranks))
rank = int(os.environ["RANK"])
with gp.track(f"rank{rank}", params={"model": "linear"}) as run:
    run.add_fpo(1000 * (rank + 1))
    run.log(val_loss=float(rank + 1))  # ranks 0-3: 1, 2, 3, 4
"""

FAKE_PYNVML = f"""
\"\"\"This node's NVML: two H100s (greenprint.testing's fake, standing for pynvml).\"\"\"
import sys

from greenprint.testing import FakeGPU, FakeNVML

sys.modules[__name__] = FakeNVML(
    [FakeGPU(name={GPU_NAME!r}, uuid=f"GPU-{{k:08d}}", memory_gb=80.0) for k in range(2)]
)
"""


def _node_env(home: Path, node: int) -> dict[str, str]:
    """Node ``node``'s environment: the job's variables; node 1 has two GPUs, node 0 none."""
    env = clean_env()
    env.update(GREENPRINT_JOB_ID=JOB, GREENPRINT_NODE_RANK=str(node), GREENPRINT_HOST=f"node{node}",
               GREENPRINT_PROC_DRIVER_ROOT=str(home / "none"),
               GREENPRINT_DRM_ROOT=str(home / "none"))  # fmt: skip
    if node == 1:
        env["GREENPRINT_DEV_ROOT"] = str(home / "gpu-dev")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(home / "gpu-python"), *filter(None, [env.get("PYTHONPATH")])]
        )
    else:
        env["GREENPRINT_DEV_ROOT"] = str(home / "none")
    return env


@pytest.fixture(scope="module", params=["merged", "shared"])
def two_nodes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The job run on two nodes, into a ledger each then merged, or into one shared ledger (a
    SQLite file standing for a PostgreSQL database: the report reads the same records from
    either); the home, the ledger read and its JSON report (all four formats under ``rep``)."""
    home = _empty(tmp_path_factory, f"nodes-{request.param}")
    (home / "train.py").write_text(TRAIN_SCRIPT, encoding="utf-8")
    (home / "gpu-python").mkdir()
    (home / "gpu-python" / "pynvml.py").write_text(FAKE_PYNVML, encoding="utf-8")
    (home / "gpu-dev").mkdir()
    (home / "gpu-dev" / "nvidiactl").touch()
    (home / "none").mkdir()
    merged = request.param == "merged"
    ledgers = ["node0.db", "node1.db"] if merged else ["all.db", "all.db"]
    nodes = []
    for k in (0, 1):
        command = [GREENPRINT, "run", "-q", "--study", "ddp", "--name", f"node{k}",
                   "--ledger", ledgers[k], "--", sys.executable, "train.py"]  # fmt: skip
        env = _node_env(home, k)
        nodes.append(subprocess.Popen(command, cwd=home, env=env, stderr=subprocess.PIPE))
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err.decode()[-3000:]
    if merged:
        done = run_in(home, GREENPRINT, "ledger", "merge", "all.db", *ledgers)
        assert done.returncode == 0, done.stderr
    report = _report(home, "--ledger", "all.db", "--study", "ddp", "--no-plots")
    return home, home / "all.db", report


def _runs(db: Path) -> list[gp.RunRecord]:
    with gp.Ledger(db, create=False) as led:
        return led.runs(study="ddp")


def _expected_machines(runs: list[gp.RunRecord]) -> list[str]:
    """Each host's line, from the hardware and the job ranks its runs recorded."""
    lines = []
    for host in ("node0", "node1"):
        here = [r for r in runs if r.host == host]
        machine = ("cpu_model", "sockets", "logical_cores", "ram_gb", "gpus")
        (hw,) = {repr([r.hardware[k] for k in machine]): r.hardware for r in here}.values()
        gpus = [g["name"] for g in hw["gpus"]]
        gpu_text = f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU"
        ranks = {(r.node_rank, r.local_rank) for r in here if r.local_rank is not None}
        lines.append(
            f"host {host}: {hw['cpu_model']} ({hw['logical_cores']} logical CPUs, "
            f"{hw['ram_gb']:.0f} GB RAM), {gpu_text} ({len(here)} runs, {len(ranks)} ranks of "
            f"job {JOB})"
        )
    return lines


# ------------------------------------------------------------------- every machine, named
def test_the_nodes_ran_where_the_report_will_say(two_nodes):
    """The study as built: three runs per host (its greenprint run and two ranks), node 1 with
    two GPUs and node 0 none, all of one job."""
    _, db, _ = two_nodes
    runs = _runs(db)
    assert sorted(r.name for r in runs) == ["node0", "node1", "rank0", "rank1", "rank2", "rank3"]
    assert {r.job_id for r in runs} == {JOB}
    by_host = {h: [r for r in runs if r.host == h] for h in ("node0", "node1")}
    assert all(len(here) == 3 for here in by_host.values())
    assert [g["name"] for g in by_host["node1"][0].hardware["gpus"]] == [GPU_NAME] * 2
    assert by_host["node0"][0].hardware["gpus"] == []


def test_every_machine_is_named_with_the_runs_it_carried_in_all_four_formats(two_nodes):
    """Two hosts: the provenance list, the model card's hardware_used and the compute statement
    name both, each with its CPU, memory, GPUs, runs and ranks, in JSON, Markdown, HTML and
    LaTeX (they named one machine's hardware: 'on AMD EPYC (...), no GPU')."""
    home, db, report = two_nodes
    machines = _expected_machines(_runs(db))
    assert report["hardware"] == machines
    used = "; ".join(machines)
    assert report["model_card"]["co2_eq_emissions"]["hardware_used"] == used
    statement = report["compute_statement"]
    assert f"in 6 runs, every one counted in the totals that follow, on 2 machines: {used}." in (
        statement
    )
    md, html = _text(home, "md"), _text(home, "html")
    for line in machines:
        assert f"- hardware: {markdown_text(line)}\n" in md
        assert f"<li>hardware: {html_text(line)}</li>" in html
    assert f'  hardware_used: "{used}"' in md  # the model card block (YAML)
    assert f"  hardware_used: &quot;{html_text(used)}&quot;" in html
    assert markdown_text(statement) in md
    assert html_text(statement) in html
    assert latex_text(statement) in _text(home, "latex")


def test_one_machine_reads_as_before(tmp_path):
    """One host (the usual study): its hardware only, no host name and no count."""
    hw = {"cpu_model": "Test CPU 9000", "logical_cores": 8, "ram_gb": 32.0, "gpus": []}
    runs = [gp.RunRecord(id=f"r{k}", name=f"r{k}", host="laptop", hardware=hw) for k in range(3)]
    assert hardware_descriptions(runs) == ("Test CPU 9000 (8 logical CPUs, 32 GB RAM), no GPU",)


def test_machines_of_the_same_hardware_are_not_one_machine():
    """Two hosts with the same hardware are two machines, each with its runs; a host not
    recorded is said so; CPU packages counted; most runs first."""
    hw = {"cpu_model": "Xeon 6338", "sockets": 2, "logical_cores": 128, "ram_gb": 512.0,
          "gpus": [{"name": "A100"}] * 4}  # fmt: skip
    runs = [
        *(gp.RunRecord(id=f"a{k}", name="a", host="a", hardware=hw) for k in range(2)),
        *(gp.RunRecord(id=f"b{k}", name="b", host="b", hardware=dict(hw)) for k in range(3)),
        gp.RunRecord(id="old", name="old", hardware=hw),
    ]
    what = "2 x Xeon 6338 (128 logical CPUs, 512 GB RAM), 4 x A100"
    assert hardware_descriptions(runs) == (
        f"host b: {what} (3 runs)",
        f"host a: {what} (2 runs)",
        f"an unrecorded host: {what} (1 run)",
    )


# ------------------------------------------------------------- every rank weighs the same
def test_every_rank_of_every_node_weighs_the_same_in_the_jobs_score(two_nodes):
    """Node 0's run (the job's head, no score of its own) is scored by its ranks' mean: the
    four ranks' (1, 2, 3, 4: 2.5), not its own two ranks' and node 1's mean ((1 + 2 + 3.5) / 3
    = 2.167, node 1's ranks weighing half); in every format."""
    home, db, report = two_nodes
    runs = {r.name: r for r in _runs(db)}
    losses = [runs[f"rank{k}"].metric("val_loss") for k in range(4)]
    assert losses == [1.0, 2.0, 3.0, 4.0]
    rows = {row["name"]: row for row in report["runs"]}
    assert rows["node0"]["is_trial"] and rows["node0"]["score_source"] == "parts"
    assert rows["node0"]["score"] == pytest.approx(math.fsum(losses) / 4) == 2.5
    assert rows["node1"]["score"] == pytest.approx(3.5)  # node 1's own ranks
    final = report["price_tag"]["final"]
    assert (final["name"], final["score"]) == ("node0", pytest.approx(2.5))
    assert "(run “node0”, val_loss = 2.5)" in report["compute_statement"]
    assert "scored val\\_loss = 2.5 and" in _text(home, "md")
    assert "scored val_loss = 2.5 and" in _text(home, "html")
    assert "(run ``node0'', val\\_loss = 2.5)" in _text(home, "latex")


def _job(
    scores: list[list[float]], *, wrapped: bool, head_scored: bool = False
) -> list[gp.RunRecord]:
    """A job's runs: node ``n``'s ranks score ``scores[n]``; ``wrapped``: each node's ranks
    inside a score-less ``greenprint run`` that meters the node, else the ranks are roots and
    each node's local rank 0 meters it (the head, node 0's, scores only if ``head_scored``)."""
    runs = []
    span = {"job_id": JOB, "status": "finished", "started_at": 0.0, "ended_at": 60.0}
    for node, ranks in enumerate(scores):
        parent = None
        if wrapped:
            parent = f"n{node}"
            runs.append(gp.RunRecord(id=parent, name=parent, host=f"h{node}", node_rank=node,
                                     node_meter=True, **span))  # fmt: skip
        for local, value in enumerate(ranks):
            logged = not (node == local == 0 and not wrapped and not head_scored)
            runs.append(
                gp.RunRecord(
                    id=f"r{node}-{local}",
                    name=f"r{node}-{local}",
                    host=f"h{node}",
                    node_rank=node,
                    local_rank=local,
                    node_meter=not wrapped and local == 0,
                    parent_id=parent,
                    contained=True if wrapped else None,
                    metrics=(gp.MetricPoint("val_loss", value),) if logged else (),
                    **span,
                )
            )
    return runs


_SCORES = st.lists(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=4), min_size=2, max_size=4)


@settings(max_examples=60, deadline=None)
@given(scores=_SCORES, wrapped=st.booleans())
def test_a_jobs_score_is_the_plain_mean_of_every_rank_on_every_node(scores, wrapped):
    """From first principles: the head's score is the sum of the ranks' scores over their
    number, whatever the nodes and ranks per node, with each node wrapped in a score-less run
    or its ranks as roots (the head rank logging none); its parts count the ranks."""
    trials = study_trials(_job(scores, wrapped=wrapped), metric="val_loss")
    (head,) = trials.positions
    values = [v for n, ranks in enumerate(scores) for k, v in enumerate(ranks)
              if wrapped or (n, k) != (0, 0)]  # fmt: skip
    got = trials.scores[head]
    if not values:
        assert got.source == "none"
        return
    assert (got.source, got.parts) == ("parts", len(values))
    assert got.score == pytest.approx(math.fsum(values) / len(values), rel=1e-9, abs=1e-6)


def test_a_head_rank_with_its_own_score_keeps_it():
    """A trial's own logged score wins over its parts' (unchanged): the head rank's."""
    trials = study_trials(_job([[1.0, 2.0], [3.0, 4.0]], wrapped=False, head_scored=True),
                          metric="val_loss")  # fmt: skip
    (head,) = trials.positions
    assert (trials.scores[head].score, trials.scores[head].source) == (1.0, "own")


def test_a_nodes_meter_with_a_score_of_its_own_does_not_hide_its_ranks():
    """Ranks as roots, the head logging nothing: node 1's local rank 0 (its node meter, with
    its own score) and its peer rank each count once in the head's mean (its peer was left
    out: node 1 read as its meter's score alone)."""
    trials = study_trials(_job([[0.0, 2.0], [3.0, 7.0]], wrapped=False), metric="val_loss")
    (head,) = trials.positions
    assert trials.scores[head].score == pytest.approx(4.0)  # (2 + 3 + 7) / 3
    assert trials.scores[head].parts == 3
