"""Distributed jobs: torchrun and SLURM-like jobs give one price tag, every rank counted once.

The ranks are real processes (``tests/_job_worker.py``) writing to one ledger; their meters are
constant (110 W for the machine, a quarter of it for each process), so the totals are exact: on
a node the job has to itself, the node meter (local rank 0) records the machine and the other
ranks are inside it; on a shared node every rank records its own process and they add up.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from greenprint import RunRecord, _jobs
from greenprint.analysis import price_tag, resolve_roles
from greenprint.ledger import _base as ledger_base

WORKER = str(Path(__file__).parent / "_job_worker.py")


def _env(ledger: Path | str, **extra: str) -> dict[str, str]:
    env = clean_env()
    for key in list(env):  # the test runner's own scheduler variables, if any
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in ("RANK", "LOCAL_RANK"):
            del env[key]
    env.update(GP_TEST_LEDGER=str(ledger), **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exactly_once(runs: list[RunRecord]) -> None:
    """The price tag counts every node meter once and no rank under it again; FPO of all."""
    tag = price_tag(runs)
    meters = [r for r in runs if r.node_meter]
    others = [r for r in runs if not r.node_meter]
    if meters:
        expected = sum(r.energy_kwh for r in meters)
    else:
        expected = sum(r.energy_kwh for r in runs)
    assert tag.total.energy_kwh == pytest.approx(expected, rel=1e-9)
    assert tag.total.emissions_kg == pytest.approx(
        sum(r.emissions_kg for r in (meters or runs)), rel=1e-9
    )
    assert tag.total.fpo == sum(r.fpo or 0 for r in runs)  # every rank's operations
    assert sum(v.energy_kwh for v in tag.by_status.values()) == pytest.approx(expected)
    assert sum(v.energy_kwh for v in tag.by_role.values()) == pytest.approx(expected)
    if meters and others:  # the naive sum would count the ranks under the meter again
        assert tag.total.energy_kwh < sum(r.energy_kwh for r in runs)
    assert tag.total.trials == 1 and tag.total.runs == len(runs)


# ---------------------------------------------------------------------------------- torchrun


@pytest.mark.parametrize("shared", [False, True], ids=["whole-node", "shared-node"])
def test_torchrun_two_processes_give_one_price_tag(tmp_path, shared):
    pytest.importorskip("torch")
    ledger = tmp_path / "jobs.db"
    env = _env(ledger, GP_TEST_GLOO="1", GREENPRINT_SHARED_NODE="1" if shared else "0")
    out = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
            WORKER,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="jobs")
    assert len(runs) == 2
    by_rank = {r.local_rank: r for r in runs}
    assert set(by_rank) == {0, 1}
    assert len({r.job_id for r in runs}) == 1 and runs[0].job_id.startswith("torchrun:")
    assert all(r.status == "finished" for r in runs)
    assert all(r.metric("allreduced") == 12.0 for r in runs)  # (1 + 2) * 2 * 2: 3 sums
    if shared:
        assert not any(r.node_meter for r in runs)
        assert {r.scope for r in runs} == {"process"}
    else:
        assert by_rank[0].node_meter and by_rank[0].scope == "machine"
        assert by_rank[1].node_meter is False and by_rank[1].scope == "process"
        assert "metered by job" in by_rank[1].provenance["job"]
    _exactly_once(runs)
    roles = resolve_roles(runs).as_dict()
    assert roles[by_rank[0].id] == ("trial", True) and roles[by_rank[1].id] == ("part", True)


# ------------------------------------------------------------------------- two simulated nodes


def _slurm(ledger: Path | str, host: str, node: int, local: int, **extra: str) -> dict[str, str]:
    return _env(
        ledger,
        GREENPRINT_HOST=host,
        GREENPRINT_SHARED_NODE="0",
        SLURM_JOB_ID="4242",
        SLURM_NTASKS="4",
        SLURM_NODEID=str(node),
        SLURM_LOCALID=str(local),
        SLURM_PROCID=str(2 * node + local),
        **extra,
    )


def _start(env: dict[str, str], cwd: Path, *cmd: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(cmd) or [sys.executable, WORKER],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_simulated_nodes_sum_once_under_the_job_root(tmp_path):
    ledger = tmp_path / "jobs.db"
    gp.Ledger(ledger).close()  # created once, before the ranks race to create it
    procs = [
        _start(_slurm(ledger, f"node-{'ab'[node]}", node, local), tmp_path)
        for node in (0, 1)
        for local in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="jobs")
    assert len(runs) == 4 and {r.job_id for r in runs} == {"slurm:4242"}
    meters = {r.host: r for r in runs if r.node_meter}
    assert set(meters) == {"node-a", "node-b"}
    assert all(r.scope == "machine" and r.local_rank == 0 for r in meters.values())
    assert {(r.host, r.node_rank) for r in runs} == {("node-a", 0), ("node-b", 1)}
    _exactly_once(runs)
    roles = resolve_roles(runs).as_dict()
    head = meters["node-a"]
    assert roles[head.id] == ("trial", True)
    assert sorted(role for rid, (role, _) in roles.items() if rid != head.id) == ["part"] * 3
    # the job's root sums its nodes: node-b's meter adds to it, node-a's second rank does not
    tag = price_tag(runs, metric="loss")
    assert tag.final is not None and tag.final.run_id == head.id
    assert tag.final.energy_kwh == pytest.approx(
        meters["node-a"].energy_kwh + meters["node-b"].energy_kwh
    )


def test_a_node_that_stops_its_heartbeat_makes_the_job_lost_with_its_cost_so_far(
    tmp_path, monkeypatch
):
    # node-b is another host to this reader (no pid to look up): its run reads lost once its
    # heartbeat is 3 flush intervals and the grace old; a grace of 1 s here, not its 5 s (the
    # length is ledger/test_store's and test_contract's to hold), read by this process
    monkeypatch.setattr(ledger_base, "STALE_GRACE_S", 1.0)
    ledger = tmp_path / "jobs.db"
    gp.Ledger(ledger).close()
    done = [
        _start(_slurm(ledger, "node-a", 0, local), tmp_path, sys.executable, WORKER)
        for local in (0, 1)
    ]
    hung = _start(_slurm(ledger, "node-b", 1, 0, GP_TEST_HANG="1"), tmp_path)
    for proc in done:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    assert hung.stdout is not None and hung.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # a flush or two after the work
    hung.send_signal(signal.SIGKILL)
    hung.wait(timeout=30)
    deadline = time.time() + 30
    while True:  # a heartbeat older than a few flush intervals is lost
        with gp.Ledger(ledger) as led:
            runs = led.runs(study="jobs")
        lost = [r for r in runs if r.status == "lost"]
        if lost or time.time() > deadline:
            break
        time.sleep(0.2)
    assert [r.host for r in lost] == ["node-b"] and lost[0].energy_kwh > 0
    assert _jobs.job_status([r.status for r in runs]) == "lost"
    tag = price_tag(runs)
    # the job is one training, lost with its node: its trial and every node's cost under lost
    assert set(tag.by_status) == {"lost"} and tag.by_status["lost"].trials == 1
    assert tag.by_status["lost"].energy_kwh == pytest.approx(tag.total.energy_kwh)
    _exactly_once(runs)
    assert any("lost" in note and "slurm:4242" in note for note in tag.notes)


# ------------------------------------------------------------------- srun greenprint run --


def test_srun_greenprint_run_two_tasks_on_one_node(tmp_path):
    """``srun greenprint run -- python train.py`` with two tasks: the node once, no rank twice."""
    ledger = tmp_path / "jobs.db"
    gp.Ledger(ledger).close()
    procs = []
    for local in (0, 1):
        env = _slurm(ledger, "node-a", 0, local, GP_TEST_SECONDS="0.2", GP_TEST_REAL_METERS="1")
        env["SLURM_NTASKS"] = "2"
        cmd = [str(BIN / "greenprint"), "run", "--ledger", str(ledger), "--study", "jobs", "-q"]
        cmd += ["--sample-interval", "0.05", "--flush-interval", "0.1", "--"]
        procs.append(_start(env, tmp_path, *cmd, sys.executable, WORKER))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="jobs")
    outer = [r for r in runs if r.parent_id is None]
    inner = [r for r in runs if r.parent_id is not None]
    assert len(outer) == 2 and len(inner) == 2
    # the script's run is inside greenprint run's process tree: contained, never a node meter
    assert all(r.contained is True and not r.node_meter for r in inner)
    assert {r.parent_id for r in inner} == {r.id for r in outer}
    meter = next(r for r in outer if r.local_rank == 0)
    assert meter.node_meter and meter.scope == "machine"
    # real meters here (the machine's estimate for the node meter): the machine counts once,
    # the other task and both scripts' runs inside it
    tag = price_tag(runs)
    assert tag.total.trials == 1
    peer = next(r for r in outer if r.local_rank == 1)
    assert resolve_roles(runs).role_of(peer.id) == "part"  # inside the node meter
    total = tag.total.energy_kwh
    assert meter.energy_kwh * (1 - 1e-9) <= total <= sum(r.energy_kwh for r in runs) * (1 + 1e-9)
    assert tag.total.fpo == sum(r.fpo or 0 for r in inner)


# --------------------------------------------------------------- two node meters on one host


def test_two_node_meters_of_one_job_on_one_host_are_warned_about_and_counted_once(
    tmp_path, monkeypatch, caplog
):
    from tracking._meters import ConstantPowerMeters

    monkeypatch.setenv("GREENPRINT_JOB_ID", "double")
    ledger = str(tmp_path / "jobs.db")
    options = dict(study="jobs", ledger=ledger, node_meter=True, sample_interval_s=0.05)
    second: list[gp.Run] = []

    def other() -> None:
        with gp.track("b", meters=ConstantPowerMeters(), **options) as run:
            second.append(run)
            time.sleep(0.4)

    def first_rank() -> None:
        # both in worker threads: two top-level runs, as two processes of the job have (a
        # worker thread's run nests in the main thread's run, which measures the process)
        with gp.track("a", meters=ConstantPowerMeters(), **options) as run:
            first.append(run)
            time.sleep(0.1)
            thread = threading.Thread(target=other)
            thread.start()
            thread.join()

    caplog.set_level(logging.WARNING, logger="greenprint")
    first: list[gp.Run] = []
    rank = threading.Thread(target=first_rank)
    rank.start()
    rank.join()
    assert any("counted twice" in r.getMessage() for r in caplog.records)
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="jobs")
    assert {r.id for r in runs} == {first[0].id, second[0].id}
    tag = price_tag(runs)
    assert tag.total.energy_kwh == pytest.approx(max(r.energy_kwh for r in runs))
    assert any("counted once" in note for note in tag.notes)


# ------------------------------------------------------------------------------ the rules


def test_the_job_key_prefers_greenprint_then_slurm_array_then_torchrun():
    assert _jobs.job_key({}) is None
    assert _jobs.job_key({"SLURM_JOB_ID": "7"}) is None  # one process: not a distributed job
    assert _jobs.job_key({"GREENPRINT_JOB_ID": "mine", "SLURM_JOB_ID": "7"}) == "mine"
    slurm = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}
    assert _jobs.job_key(slurm) == "slurm:7"
    array = {**slurm, "SLURM_ARRAY_JOB_ID": "6", "SLURM_ARRAY_TASK_ID": "3"}
    assert _jobs.job_key(array) == "slurm:6_3"
    elastic = {"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "abc"}
    assert _jobs.job_key(elastic) == "torchrun:abc"
    default = {
        "WORLD_SIZE": "2",
        "TORCHELASTIC_RUN_ID": "none",
        "MASTER_ADDR": "h",
        "MASTER_PORT": "1",
    }
    assert _jobs.job_key(default) == "torchrun:h:1"


def test_local_rank_zero_meters_a_whole_node_and_nobody_a_shared_one():
    cpus = os.cpu_count() or 1
    base = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_NODEID": "1"}
    whole = {**base, "SLURM_CPUS_ON_NODE": str(cpus)}
    assert _jobs.job_info(environ={**whole, "SLURM_LOCALID": "0"}).node_meter
    assert not _jobs.job_info(environ={**whole, "SLURM_LOCALID": "1"}).node_meter
    assert not _jobs.job_info(environ={**whole, "SLURM_LOCALID": "0"}, nested=True).node_meter
    info = _jobs.job_info(environ={**whole, "SLURM_LOCALID": "1"}, node_meter=True)
    assert info.node_meter and (info.node_rank, info.local_rank) == (1, 1)
    if cpus > 1:
        part = {**base, "SLURM_CPUS_ON_NODE": str(cpus - 1), "SLURM_LOCALID": "0"}
        assert _jobs.is_shared_node(part) and not _jobs.job_info(environ=part).node_meter
    assert _jobs.is_shared_node({**whole, "GREENPRINT_SHARED_NODE": "1"})
    assert not _jobs.is_shared_node({"GREENPRINT_SHARED_NODE": "0"})


def test_a_child_process_knows_whether_it_is_inside_its_parents_tree():
    here = _jobs.node_host()
    mine = _jobs.parent_tree_value("process", os.getppid(), here)
    assert _jobs.tree_contains(mine, host=here) is True
    assert (
        _jobs.tree_contains(_jobs.parent_tree_value("process", os.getpid(), "elsewhere"), host=here)
        is False
    )
    assert _jobs.tree_contains(_jobs.parent_tree_value("machine", 1, here), host=here) is True
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:  # a process that is not an ancestor
        assert (
            _jobs.tree_contains(_jobs.parent_tree_value("process", child.pid, here), host=here)
            is False
        )
    finally:
        child.kill()
        child.wait()
    assert _jobs.tree_contains(None, host=here) is None


def test_a_remote_child_adds_to_its_parent_and_a_nested_one_does_not():
    parent = RunRecord(id="p", name="launch", energy_kwh=1.0, fpo=10)
    nested = RunRecord(id="n", name="inner", parent_id="p", energy_kwh=0.5, fpo=4)
    remote = RunRecord(id="r", name="node-b", parent_id="p", energy_kwh=2.0, fpo=7, contained=False)
    tag = price_tag([parent, nested, remote])
    assert tag.total.energy_kwh == pytest.approx(3.0)
    assert tag.total.fpo == 17
    assert sum(v.energy_kwh for v in tag.by_status.values()) == pytest.approx(3.0)


def test_a_part_rank_linked_by_id_to_its_node_meter_adds_its_fpo_not_its_energy():
    job = dict(job_id="torchrun:x", host="h", started_at=0.0, ended_at=10.0)
    meter = RunRecord(id="m", name="rank0", energy_kwh=1.0, fpo=5, node_meter=True, **job)
    part = RunRecord(
        id="p", name="rank1", parent_id="m", energy_kwh=0.0, fpo=5, node_meter=False, **job
    )
    tag = price_tag([meter, part])
    assert tag.total.energy_kwh == pytest.approx(1.0) and tag.total.fpo == 10


def test_ledger_show_names_the_job_and_a_run_outside_its_parent(tmp_path, capsys):
    from greenprint.cli import main

    ledger = str(tmp_path / "jobs.db")
    with gp.Ledger(ledger) as led:
        led.start_run(
            RunRecord(
                id="a" * 32,
                name="rank0",
                job_id="slurm:9",
                node_rank=1,
                local_rank=0,
                node_meter=True,
                contained=False,
                parent_id="b" * 32,
                status="finished",
            )
        )
    assert main(["ledger", "show", "a" * 8, "--ledger", ledger]) == 0
    out = capsys.readouterr().out
    assert "slurm:9 (node 1, local rank 0; meters its node)" in out
    assert "outside its parent's measurement" in out


def test_a_machine_scope_run_of_a_job_is_a_node_meter_whatever_its_rank(monkeypatch):
    from tracking._meters import ConstantPowerMeters

    monkeypatch.setenv("GREENPRINT_JOB_ID", "j")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with gp.track("r1", ledger=False, meters=ConstantPowerMeters(), sample_interval_s=0.05) as run:
        pass
    assert run.record.job_id == "j" and run.record.local_rank == 1
    assert run.record.node_meter is False and run.record.scope == "process"
    with gp.track("r1m", ledger=False, meters=ConstantPowerMeters(), scope="machine") as run:
        pass
    assert run.record.node_meter is True and run.record.scope == "machine"
    with pytest.raises(gp.ConfigError, match="node meter"):
        gp.track(node_meter=True, scope="process")


def test_ranks_that_log_their_own_local_rank_in_params_stay_one_trainings_ranks():
    """Two ranks of one job (``python -m torch.distributed.launch`` passes ``--local_rank``,
    logged with the script's arguments), each tracking two trainings one after another as
    role 'trial': the ranks of one training ran at once with the same params but their rank,
    so each training reads as one trial with its other rank as its part, not as a search's 4
    trials (they did: params compared whole), nor as 1 trial (they did before the job's
    trainings one after another were told apart)."""

    def rank_run(config: int, rank: int, **params: object) -> RunRecord:
        start = 100.0 * config + 0.1 * rank
        return RunRecord(
            id=f"c{config}r{rank}", name=f"train-{config}", study="ddp", status="finished",
            started_at=start, ended_at=start + 90, role="trial", job_id="slurm:9", host="h",
            node_rank=0, local_rank=rank, node_meter=False,
            params={"lr": 0.1 / (1 + config), **params},
        )  # fmt: skip

    with_rank = [rank_run(c, r, local_rank=r) for c in (0, 1) for r in (0, 1)]
    without = [rank_run(c, r) for c in (0, 1) for r in (0, 1)]
    read = resolve_roles(with_rank)
    assert [read.forest.runs[p].id for p in read.trials] == ["c0r0", "c1r0"]
    assert [read.forest.runs[p].id for p in resolve_roles(without).trials] == ["c0r0", "c1r0"]
    assert read.as_dict()["c0r1"] == read.as_dict()["c1r1"] == ("part", True)
    assert not any("read as the trials of a search" in note for note in read.forest.notes)


def _training_run(
    rid: str, start: float, end: float, lr: float, *, node: int = 0, local: int = 0, **kw: object
) -> RunRecord:
    return RunRecord(
        id=rid, name=rid, study="ddp", status=kw.pop("status", "finished"), started_at=start,
        ended_at=end, job_id="torchrun:h:29500", host=f"h{node}", node_rank=node,
        local_rank=local, node_meter=local == 0, params={"lr": lr},
        metrics=(gp.MetricPoint("acc", lr * 10),), **kw,
    )  # fmt: skip


def test_a_job_that_trains_two_configurations_one_after_another_reads_as_two_trials():
    """A ``torchrun`` script that loops over two learning rates, on two nodes of two ranks:
    each training's node meters and ranks ran at the same time; the second training started
    after the first ended. Before: 1 trial (every run of the job linked under its head) scored
    by the first training alone. Now 2 trials, each with its nodes and ranks as parts, the
    job's cost the same, and a note. A training restarted after a failure (the same params)
    stays one trial, read from its last attempt, the failed one a part adding its cost (it
    was the trial, failed, before)."""
    runs = [
        _training_run(f"lr{lr}-n{n}r{r}", start + 0.01 * n, start + 50 + 0.01 * n, lr,
                      node=n, local=r, energy_kwh=1.0 if r == 0 else 0.25)
        for lr, start in ((0.1, 0.0), (0.01, 60.0))
        for n in (0, 1)
        for r in (0, 1)
    ]  # fmt: skip
    read = resolve_roles(runs)
    trials = [read.forest.runs[p].id for p in read.trials]
    assert trials == ["lr0.1-n0r0", "lr0.01-n0r0"]
    assert sorted(read.counts.items()) == [("part", 6), ("trial", 2)]
    assert any("ran 2 trainings one after another" in n for n in read.forest.notes)
    tag = price_tag(runs, metric="acc")
    assert tag.total.energy_kwh == pytest.approx(4.0)  # each node meter once, ranks inside
    assert tag.final is not None and tag.final.run_id == "lr0.1-n0r0"
    assert tag.final.energy_kwh == pytest.approx(2.0)  # its two nodes
    restarted = [
        _training_run("try1-n0", 0.0, 10.0, 0.1, status="failed", energy_kwh=1.0),
        _training_run("try1-n1", 0.0, 10.0, 0.1, node=1, status="failed", energy_kwh=1.0),
        _training_run("try2-n0", 20.0, 80.0, 0.1, energy_kwh=1.0),
        _training_run("try2-n1", 20.0, 80.0, 0.1, node=1, energy_kwh=1.0),
    ]
    again = resolve_roles(restarted)
    assert [again.forest.runs[p].id for p in again.trials] == ["try2-n0"]
    tag = price_tag(restarted, metric="acc")
    assert tag.total.energy_kwh == pytest.approx(4.0) == tag.final.energy_kwh
    assert tag.total.trials == 1
    # after an attempt that finished, the same params again is a training of its own (a
    # seed repeated, a fit then its test): two trials, as the same two runs outside a job read
    # (they read as one, from the first, before session 22; tests/test_outside_shapes10.py)
    done_twice = [r if r.status == "finished" else dataclasses.replace(r, status="finished")
                  for r in restarted]  # fmt: skip
    assert [
        resolve_roles(done_twice).forest.runs[p].id for p in resolve_roles(done_twice).trials
    ] == ["try1-n0", "try2-n0"]


#: One process of a two-node job (``srun -N 2 python loop.py``): two trainings one after
#: another, the nodes in step (each waits for the other before a training and after it).
LOOP_SCRIPT = """
import os, sys, time
from pathlib import Path
import greenprint as gp

node = os.environ["SLURM_NODEID"]


def barrier(name):
    Path(f"{name}-{node}").touch()
    deadline = time.monotonic() + 60
    while not all(Path(f"{name}-{n}").exists() for n in "01") and time.monotonic() < deadline:
        time.sleep(0.01)


for lr in (0.1, 0.01):
    barrier(f"start-{lr}")
    with gp.track("train", study="loop", params={"lr": lr}) as run:
        time.sleep(0.2)
        run.log(val_acc=0.9 - abs(lr - 0.01))
    barrier(f"end-{lr}")
"""


def test_a_two_node_job_looping_over_two_learning_rates_reads_as_two_trials(tmp_path):
    """The job's four runs (two nodes x two trainings), written by real processes: the report
    reads two trials, each with its other node as its part, the better learning rate the
    final run, and says how it read the job (before: 1 trial, the second training a part)."""
    (tmp_path / "loop.py").write_text(LOOP_SCRIPT, encoding="utf-8")
    ledger = tmp_path / "greenprint.db"
    gp.Ledger(ledger).close()
    procs = [
        _start({**_slurm(ledger, f"node-{'ab'[n]}", n, 0), "SLURM_NTASKS": "2",
                "GREENPRINT_LEDGER": str(ledger)}, tmp_path, sys.executable, "loop.py")
        for n in (0, 1)
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    done = subprocess.run(
        [str(BIN / "greenprint"), "report", "--study", "loop", "--format", "json", "--no-plots"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    report = json.loads((tmp_path / "greenprint-report" / "report.json").read_text())
    rows = report["runs"]
    trials = [r for r in rows if r["role"] == "trial"]
    assert sorted(r["params"]["lr"] for r in trials) == [0.01, 0.1]
    assert all(r["name"] == "train" and r["params"]["lr"] in (0.1, 0.01) for r in rows)
    parts = [r for r in rows if r["role"] == "part"]
    assert len(parts) == 2
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[p["parent_id"]]["params"] == p["params"] for p in parts)
    final = next(r for r in rows if r["is_final"])
    assert final["role"] == "trial" and final["params"] == {"lr": 0.01}
    assert any("ran 2 trainings one after another" in n for n in report["notes"])
    with gp.Ledger(ledger) as led:
        runs = led.runs(study="loop")
    assert report["price_tag"]["total"]["energy_kwh"] == pytest.approx(
        sum(r.energy_kwh for r in runs), rel=1e-9
    )  # two hosts: every node meter adds
