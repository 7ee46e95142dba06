"""A training SLURM requeued (or ``torchrun --max-restarts`` restarted) reads as one training.

Before: ``SLURM_RESTART_COUNT=1`` changed nothing, so a job killed once and run again to the end
read "2 trials (1 finished, 1 interrupted)" and "the final model cost 50.5% of the study's
energy", where it is one configuration trained once (started twice). Now a run with no parent
started in such a restart finds its earlier attempt (same study, name, job and process, cut
short) and makes it its part (:func:`greenprint._resume.link_restarted`): 1 trial, the final
model costs 100%, the price tag adds the earlier attempt's energy once. A multi-process job's
attempts are jobs of their own (``slurm:4242`` then ``slurm:4242/requeue-1``), each rank's
earlier run a part of its run, and the job reads its last attempt's status.

Every attempt is a real process (``greenprint run`` or a script's ``gp.track``) with the
scheduler's variables set, killed by a signal as SLURM kills a job it requeues.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from greenprint._jobs import job_key

#: A training that checkpoints each epoch and resumes from its checkpoint. ``HANG=1``: after its
#: first epoch it says so (``ready<rank>``) and waits to be killed. ``SCRIPT=1``: run without
#: ``greenprint run``, its ``gp.track`` run the top-level one.
TRAIN = """\
import json, os, pathlib, time
import greenprint as gp

rank = os.environ.get("SLURM_PROCID") or os.environ.get("RANK") or "0"
ck = pathlib.Path(f"ckpt{rank}.json")
start = json.loads(ck.read_text())["epoch"] if ck.exists() else 0
where = dict(study="req", ledger="greenprint.db") if os.environ.get("SCRIPT") else {}
params = json.loads(os.environ.get("PARAMS", "{}"))
with gp.track("fit", params=params, sample_interval_s=0.05, flush_interval_s=0.1, **where) as run:
    for epoch in range(start, 4):
        time.sleep(0.1)
        ck.write_text(json.dumps({"epoch": epoch + 1}))
        run.log("accuracy", 0.5 + epoch / 20, step=epoch)
        if os.environ.get("HANG") == "1":
            pathlib.Path(f"ready{rank}").write_text("")
            time.sleep(120)
"""

SLURM = {
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_NTASKS": "1",
    "SLURM_NNODES": "1",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env()
    for key in list(env):  # the test runner's own scheduler variables, if any
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in (
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "GROUP_RANK",
            "LOCAL_WORLD_SIZE",
        ):
            del env[key]
    env["HOME"] = str(tmp_path)
    env.update(extra)
    return env


def _start(tmp_path: Path, env: dict[str, str], *, script: bool = False) -> subprocess.Popen[str]:
    (tmp_path / "train.py").write_text(TRAIN)
    if script:
        command = [sys.executable, "train.py"]
    else:
        command = [str(BIN / "greenprint"), "run", "-q", "--study", "req", "--param", "lr=0.1"]
        command += ["--", sys.executable, "train.py"]
    return subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _kill_when_ready(tmp_path: Path, procs: dict[str, subprocess.Popen[str]], sig: int) -> None:
    """Wait for each rank's first epoch, then kill them all (as SLURM does before a requeue)."""
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{rank}").exists() for rank in procs):
        assert time.monotonic() < deadline, [p.poll() for p in procs.values()]
        time.sleep(0.05)
    time.sleep(0.3)  # a flush or two of the runs' cost
    for proc in procs.values():
        proc.send_signal(sig)
    for proc in procs.values():
        proc.communicate(timeout=60)
    for rank in procs:
        (tmp_path / f"ready{rank}").unlink()


def _finish(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]


def _cli_json(tmp_path: Path, *args: str) -> object:
    done = subprocess.run(
        [str(BIN / "greenprint"), *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _report(tmp_path: Path) -> dict:
    out = tmp_path / "rep"
    subprocess.run(
        [str(BIN / "greenprint"), "report", "--study", "req", "--format", "json", "--no-plots"]
        + ["--out", str(out)],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads((out / "report.json").read_text())


def _runs(tmp_path: Path) -> list[gp.RunRecord]:
    with gp.Ledger(tmp_path / "greenprint.db") as led:
        return led.runs(study="req")


def test_a_requeued_job_under_greenprint_run_is_one_trial_costing_both_attempts(tmp_path):
    first = _start(tmp_path, _env(tmp_path, HANG="1", SLURM_RESTART_COUNT="0", **SLURM))
    _kill_when_ready(tmp_path, {"0": first}, signal.SIGTERM)
    _finish(_start(tmp_path, _env(tmp_path, SLURM_RESTART_COUNT="1", **SLURM)))

    runs = {r.id: r for r in _runs(tmp_path)}
    commands = sorted(
        (r for r in runs.values() if r.name == "train.py"), key=lambda r: r.started_at
    )
    earlier, later = commands
    assert (earlier.status, later.status) == ("interrupted", "finished")
    assert earlier.env["SLURM_RESTART_COUNT"] == "0" and later.env["SLURM_RESTART_COUNT"] == "1"
    assert (earlier.parent_id, earlier.role, earlier.contained) == (later.id, "part", False)
    assert later.parent_id is None

    tree = _cli_json(tmp_path, "ledger", "ls", "--tree", "--json")
    by_id = {row["id"]: row for row in tree}
    assert [row["id"] for row in tree if row["depth"] == 0] == [later.id]
    assert by_id[later.id]["role"] == "trial"
    assert (by_id[earlier.id]["depth"], by_id[earlier.id]["role"]) == (1, "part")
    assert by_id[earlier.id]["role_inferred"] is False

    report = _report(tmp_path)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1
    assert tag["by_status"]["finished"]["trials"] == 1
    assert tag["by_status"]["interrupted"]["trials"] == 0
    assert tag["final"]["run_id"] == later.id
    assert tag["final"]["energy_share"] == pytest.approx(1.0)
    # the script's runs are inside their command's: the two commands' energy, each once
    measured = earlier.energy_kwh + later.energy_kwh
    assert earlier.energy_kwh > 0 and later.energy_kwh > 0
    assert math.isclose(tag["total"]["energy_kwh"], measured, rel_tol=1e-9)
    assert "1 trial (1 finished)" in report["compute_statement"]


def test_a_killed_script_run_again_by_slurm_continues_its_lost_run(tmp_path):
    """No ``greenprint run``: the script's run is the top-level one; SIGKILL leaves it lost."""
    lr = '{"lr": 0.1}'
    env = _env(tmp_path, HANG="1", SCRIPT="1", PARAMS=lr, **SLURM)
    _kill_when_ready(tmp_path, {"0": _start(tmp_path, env, script=True)}, signal.SIGKILL)
    assert [r.status for r in _runs(tmp_path)] == ["lost"]
    env = _env(tmp_path, SCRIPT="1", SLURM_RESTART_COUNT="2", PARAMS=lr, **SLURM)
    _finish(_start(tmp_path, env, script=True))

    earlier, later = _runs(tmp_path)
    assert later.status == "finished" and later.parent_id is None
    assert (earlier.parent_id, earlier.role, earlier.contained) == (later.id, "part", False)
    # its process is gone: ended interrupted at its last heartbeat, saying what ran it again
    assert earlier.status == "interrupted"
    assert earlier.ended_at == pytest.approx(earlier.heartbeat_at)
    assert "SLURM requeue (SLURM_RESTART_COUNT=2) ran it again" in (earlier.error or "")
    tag = _report(tmp_path)["price_tag"]
    assert tag["total"]["trials"] == 1
    assert tag["final"]["energy_share"] == pytest.approx(1.0)
    assert math.isclose(
        tag["total"]["energy_kwh"], earlier.energy_kwh + later.energy_kwh, rel_tol=1e-9
    )


def test_workers_torchrun_restarted_continue_their_earlier_attempt(tmp_path):
    elastic = {
        "TORCHELASTIC_RUN_ID": "abc",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "GROUP_RANK": "0",
        "WORLD_SIZE": "1",
        "SCRIPT": "1",
    }
    env = _env(tmp_path, HANG="1", TORCHELASTIC_RESTART_COUNT="0", **elastic)
    _kill_when_ready(tmp_path, {"0": _start(tmp_path, env, script=True)}, signal.SIGTERM)
    env = _env(tmp_path, TORCHELASTIC_RESTART_COUNT="1", **elastic)
    _finish(_start(tmp_path, env, script=True))

    earlier, later = _runs(tmp_path)
    assert (earlier.status, later.status) == ("interrupted", "finished")
    assert (earlier.parent_id, earlier.role, earlier.contained) == (later.id, "part", False)
    assert later.env["TORCHELASTIC_RESTART_COUNT"] == "1"


def test_a_restart_with_no_earlier_attempt_recorded_is_just_a_run(tmp_path):
    env = _env(tmp_path, SCRIPT="1", SLURM_RESTART_COUNT="1", **SLURM)
    _finish(_start(tmp_path, env, script=True))
    (run,) = _runs(tmp_path)
    assert (run.status, run.parent_id, run.role) == ("finished", None, None)
    assert _report(tmp_path)["price_tag"]["total"]["trials"] == 1


def test_another_job_rank_or_configuration_never_continues_an_attempt(tmp_path):
    lr = '{"lr": 0.1}'
    first = _start(tmp_path, _env(tmp_path, HANG="1", SCRIPT="1", PARAMS=lr, **SLURM), script=True)
    _kill_when_ready(tmp_path, {"0": first}, signal.SIGTERM)
    # another job restarted, this job's restart on another node, and its restart's next step
    # (another learning rate): none is its attempt
    restarted = {**SLURM, "SLURM_RESTART_COUNT": "1", "PARAMS": lr}
    for scheduler in (
        {**restarted, "SLURM_JOB_ID": "4343"},
        {**restarted, "SLURM_NODEID": "1"},
        {**restarted, "PARAMS": '{"lr": 0.01}'},
    ):
        (tmp_path / "ckpt0.json").unlink()
        _finish(_start(tmp_path, _env(tmp_path, SCRIPT="1", **scheduler), script=True))

    runs = _runs(tmp_path)
    assert [(r.status, r.parent_id, r.role) for r in runs] == [
        ("interrupted", None, None),
        ("finished", None, None),
        ("finished", None, None),
        ("finished", None, None),
    ]
    tag = _report(tmp_path)["price_tag"]
    assert tag["total"]["trials"] == 4
    assert tag["by_status"]["interrupted"]["trials"] == 1


def test_a_requeued_two_rank_job_reads_its_last_attempt(tmp_path):
    """Each attempt a job of its own; the job reads finished, both attempts' machines counted."""
    ranks = {**SLURM, "SLURM_NTASKS": "2", "GREENPRINT_SHARED_NODE": "0"}

    def attempt(restart: str, **extra: str) -> dict[str, subprocess.Popen[str]]:
        return {
            rank: _start(
                tmp_path,
                _env(
                    tmp_path,
                    **{**ranks, "SLURM_PROCID": rank, "SLURM_LOCALID": rank},
                    SLURM_RESTART_COUNT=restart,
                    **extra,
                ),
            )
            for rank in ("0", "1")
        }

    _kill_when_ready(tmp_path, attempt("0", HANG="1"), signal.SIGTERM)
    _finish(*attempt("1").values())

    commands = [r for r in _runs(tmp_path) if r.name == "train.py"]
    assert sorted(r.job_id for r in commands) == ["slurm:4242"] * 2 + ["slurm:4242/requeue-1"] * 2
    later = {r.local_rank: r for r in commands if r.status == "finished"}
    for run in commands:
        if run.status == "interrupted":  # each rank's earlier run a part of its later one
            assert (run.parent_id, run.role, run.contained) == (
                later[run.local_rank].id,
                "part",
                False,
            )
    assert sorted(r.status for r in commands) == ["finished"] * 2 + ["interrupted"] * 2

    report = _report(tmp_path)
    tag = report["price_tag"]
    assert tag["total"]["trials"] == 1
    assert tag["by_status"]["finished"]["trials"] == 1
    assert tag["final"]["run_id"] == later[0].id
    assert tag["final"]["status"] == "finished"
    assert tag["final"]["energy_share"] == pytest.approx(1.0)
    # rank 0 metered the machine in each attempt; rank 1's energy is inside that
    meters = [r for r in commands if r.node_meter]
    assert len(meters) == 2 and {r.local_rank for r in meters} == {0}
    measured = sum(r.energy_kwh for r in meters)
    assert math.isclose(tag["total"]["energy_kwh"], measured, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({}, "slurm:4242"),
        ({"SLURM_RESTART_COUNT": "0"}, "slurm:4242"),
        ({"SLURM_RESTART_COUNT": "2"}, "slurm:4242/requeue-2"),
        (
            {"SLURM_RESTART_COUNT": "1", "TORCHELASTIC_RESTART_COUNT": "3"},
            "slurm:4242/requeue-1/restart-3",
        ),
        ({"SLURM_RESTART_COUNT": "x"}, "slurm:4242"),
        ({"GREENPRINT_JOB_ID": "exp7", "SLURM_RESTART_COUNT": "1"}, "exp7"),
    ],
)
def test_a_job_key_names_the_attempt(extra, key):
    assert job_key({**SLURM, "SLURM_NTASKS": "2", **extra}) == key


def test_torchrun_job_key_names_the_restart():
    env = {"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "abc", "TORCHELASTIC_RESTART_COUNT": "1"}
    assert job_key(env) == "torchrun:abc/restart-1"
