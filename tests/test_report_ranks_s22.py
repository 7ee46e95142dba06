"""A job's report says which node and rank ran each run, and its rows still add up.

A user who trains with ``torchrun`` (or ``srun`` over two nodes) and reads the JSON report of
the study could not tell the ranks of one training apart: the rows had no ``job_id``,
``node_rank`` or ``local_rank`` (the ledger had them), and the root rows of a two-node job
summed to one node's energy (the other node's meter, linked under the job's head, adds to it:
nothing in the row said so). Now each row names its job, node and local rank, whether it
metered its node, and whether its cost is ``contained`` in its parent's; the Markdown and HTML
runs tables get a ``node/local rank`` column for a study with a job's runs, and only then.

The ranks are real processes (``tests/_job_worker.py``, as ``tests/test_jobs.py`` runs them)
with constant meters, so that the sums are exact; the report is ``greenprint report`` run as
a new user runs it (a clean environment, the ledger in the working directory).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import BIN, clean_env
from _report_cli import GREENPRINT, empty_home, run_in

WORKER = str(Path(__file__).parent / "_job_worker.py")
#: The job id of the two-node job (``srun`` sets ``SLURM_JOB_ID``).
SLURM_JOB = "4242"


def _env(ledger: Path, **extra: str) -> dict[str, str]:
    """A new user's environment for a rank, without the test runner's own job variables."""
    env = clean_env()
    for key in list(env):
        if key.startswith(("SLURM_", "TORCHELASTIC_")) or key in ("RANK", "LOCAL_RANK"):
            del env[key]
    env.update(GP_TEST_LEDGER=str(ledger), **extra)
    return env


def _ranks(home: Path, shape: str) -> None:
    """The job's ranks, run to their end, writing ``home/greenprint.db`` (study ``jobs``)."""
    ledger = home / "greenprint.db"
    if shape == "torchrun":
        pytest.importorskip("torch")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
             "--master-port", str(port), WORKER],
            env=_env(ledger, GREENPRINT_SHARED_NODE="0"), cwd=home, capture_output=True,
            text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return
    envs = []
    if shape == "two-nodes":  # srun over two nodes of two tasks: node-b's meter adds
        for node in (0, 1):
            for local in (0, 1):
                envs.append(
                    _env(ledger, GREENPRINT_HOST=f"node-{'ab'[node]}", GREENPRINT_SHARED_NODE="0",
                         SLURM_JOB_ID=SLURM_JOB, SLURM_NTASKS="4", SLURM_NODEID=str(node),
                         SLURM_LOCALID=str(local), SLURM_PROCID=str(2 * node + local))
                )  # fmt: skip
    else:  # two processes named a job by GREENPRINT_JOB_ID on a node shared with others
        for local in (0, 1):
            envs.append(
                _env(ledger, GREENPRINT_JOB_ID="train-7", GREENPRINT_SHARED_NODE="1",
                     WORLD_SIZE="2", RANK=str(local), LOCAL_RANK=str(local))
            )  # fmt: skip
    subprocess.run([sys.executable, "-c", "import greenprint as gp; gp.Ledger('greenprint.db')"],
                   cwd=home, check=True, env=envs[0])  # fmt: skip  # created before the race
    procs = [
        subprocess.Popen([sys.executable, WORKER], env=env, cwd=home, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for env in envs
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]


def _report(home: Path) -> dict:
    """``greenprint report --format json,md,html`` in ``home``: the JSON, parsed."""
    done = run_in(home, GREENPRINT, "report", "--format", "json,md,html", "--no-plots",
                  "--out", "rep")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads((home / "rep" / "report.json").read_text(encoding="utf-8"))


def _adds_up(report: dict) -> None:
    """The rows a user sums give the price tag.

    Energy and CO2-eq: the rows whose cost is not inside their parent's (``contained`` not
    true: a root, a node adding to its job's head). Each of energy, CO2-eq and time: each root
    row, or the rows inside it when they recorded more (a rank that ended after its node's
    meter), plus the rows adding to it. FPO: the root rows (a row's FPO holds its children's).
    """
    rows, total = report["runs"], report["price_tag"]["total"]
    assert len(rows) == total["runs"]
    # a row with no parent has no containment; a row with one says which it is
    assert all((r["parent_id"] is None) == (r["contained"] is None) for r in rows)
    counted = [r for r in rows if r["contained"] is not True]
    for key in ("energy_kwh", "emissions_kg"):
        assert sum(r[key] for r in counted) == pytest.approx(total[key], rel=1e-9), key
    children: dict[str | None, list[dict]] = {}
    for r in rows:
        children.setdefault(r["parent_id"], []).append(r)

    def nested(row: dict, key: str) -> float:
        below = children.get(row["id"], [])
        inside = sum(nested(c, key) for c in below if c["contained"])
        adding = sum(nested(c, key) for c in below if not c["contained"])
        return max(row[key], inside) + adding

    for key in ("energy_kwh", "emissions_kg", "duration_s"):
        roots = sum(nested(r, key) for r in children[None])
        assert roots == pytest.approx(total[key], rel=1e-9), key
    assert sum(r["fpo"] for r in children[None]) == total["fpo"]


def _rank_column(home: Path, rows: dict[str, dict]) -> None:
    """Markdown and HTML: a node/local rank cell on each run's line."""
    md = (home / "rep" / "report.md").read_text(encoding="utf-8")
    html = (home / "rep" / "report.html").read_text(encoding="utf-8")
    runs_md = md[md.index("## Runs") :]
    assert "| node/local rank |" in runs_md
    assert "<th>node/local rank</th>" in html
    for name, row in rows.items():
        node = "?" if row["node_rank"] is None else row["node_rank"]  # no launcher said
        cell = f"{node}/{row['local_rank']}"
        line = next(x for x in runs_md.splitlines() if re.search(rf"\b{name}\b", x))
        assert f"| {cell} |" in line, line
        assert re.search(rf"{name}(?: ★)?</td>.*?<td>{re.escape(cell)}</td>", html), name


@pytest.mark.parametrize("shape", ["two-nodes", "shared-node", "torchrun"])
def test_a_jobs_report_names_each_runs_node_and_rank(tmp_path_factory, shape):
    home = empty_home(tmp_path_factory, f"ranks-{shape}")
    _ranks(home, shape)
    report = _report(home)
    rows = {r["name"]: r for r in report["runs"]}
    assert sorted(rows) == (["rank0", "rank1"] if shape != "two-nodes" else
                            ["rank0", "rank1", "rank2", "rank3"])  # fmt: skip
    # rankN is global rank N: each row says which node and process ran it, and in which job
    if shape == "two-nodes":
        assert {r["job_id"] for r in rows.values()} == {f"slurm:{SLURM_JOB}"}
        where = {name: (int(name[-1]) // 2, int(name[-1]) % 2) for name in rows}
    elif shape == "shared-node":  # no launcher gave a node rank: unknown
        assert {r["job_id"] for r in rows.values()} == {"train-7"}
        where = {name: (None, int(name[-1])) for name in rows}
    else:
        assert len({r["job_id"] for r in rows.values()}) == 1
        assert rows["rank0"]["job_id"].startswith("torchrun:")
        where = {name: (0, int(name[-1])) for name in rows}
    assert {n: (r["node_rank"], r["local_rank"]) for n, r in rows.items()} == where
    # local rank 0 meters its node, unless the node is shared (then every rank its process)
    meters = {n for n, r in rows.items() if r["node_meter"]}
    assert meters == (set() if shape == "shared-node" else {n for n in rows if where[n][1] == 0})
    assert all(r["node_meter"] is False for n, r in rows.items() if n not in meters)
    if shape == "two-nodes":
        # node-b's meter is linked under the job's head and adds to it; each node's second
        # rank is inside its node's meter
        head = rows["rank0"]
        assert head["parent_id"] is None and head["role"] == "trial"
        assert rows["rank2"]["parent_id"] == head["id"] and rows["rank2"]["contained"] is False
        assert rows["rank1"]["parent_id"] == head["id"] and rows["rank1"]["contained"] is True
        assert rows["rank3"]["parent_id"] == rows["rank2"]["id"]
        assert rows["rank3"]["contained"] is True
        # the head's row is its own node: the root rows alone are less than the price tag
        roots = sum(r["energy_kwh"] for r in rows.values() if r["parent_id"] is None)
        assert roots < report["price_tag"]["total"]["energy_kwh"] * 0.75
    _adds_up(report)
    _rank_column(home, rows)
    _export_reads_as_the_report(home, report)
    html = (home / "rep" / "report.html").read_text(encoding="utf-8")
    apart = "save a run measured apart from it (a job's node or rank that measured its own"
    adding = any(r["contained"] is False for r in rows.values())
    assert (apart in html) == adding  # the runs' note says so only where a row adds
    assert adding == (shape != "torchrun")  # torchrun's ranks on one metered node: inside


def _export_reads_as_the_report(home: Path, report: dict) -> None:
    """``greenprint ledger export``: each run's parent and containment are the report's, so
    its rows sum alike (before, a job's ranks kept the parent they recorded, none, and the
    root rows of the two-node job summed to 1.25x the price tag's energy)."""
    done = run_in(home, GREENPRINT, "ledger", "export", "--format", "json")
    assert done.returncode == 0, done.stderr
    exported = {r["id"]: r for r in json.loads(done.stdout)["runs"]}
    for row in report["runs"]:
        run = exported[row["id"]]
        assert (run["parent_id"], run["contained"]) == (row["parent_id"], row["contained"])
    counted = [r for r in exported.values() if r["parent_id"] is None or r["contained"] is False]
    total = report["price_tag"]["total"]
    for key in ("energy_kwh", "emissions_kg"):
        assert sum(r[key] for r in counted) == pytest.approx(total[key], rel=1e-9), key


def test_a_study_of_no_job_has_no_rank_column_and_null_ranks(tmp_path_factory):
    """A plain search: its rows carry the new keys as null, its tables no column of dashes."""
    home = empty_home(tmp_path_factory, "no-job")
    (home / "search.py").write_text(
        "import greenprint as gp\n"
        "with gp.track('search', study='s', role='sweep') as sweep:\n"
        "    for lr in (0.1, 0.01):\n"
        "        with gp.track(f'lr={lr}', params={'lr': lr}) as t:\n"
        "            t.add_fpo(1000)\n"
        "            t.log(accuracy=1 - lr)\n",
        encoding="utf-8",
    )
    done = run_in(home, sys.executable, "search.py")
    assert done.returncode == 0, done.stderr
    report = _report(home)
    for row in report["runs"]:
        assert {k: row[k] for k in ("job_id", "node_rank", "local_rank", "node_meter")} == dict(
            job_id=None, node_rank=None, local_rank=None, node_meter=None
        )
        assert row["contained"] is (None if row["name"] == "search" else True)
    _adds_up(report)
    md = (home / "rep" / "report.md").read_text(encoding="utf-8")
    html = (home / "rep" / "report.html").read_text(encoding="utf-8")
    assert "node/local rank" not in md and "node/local rank" not in html
    assert "| lr=0.1 |" in md or "lr=0.1" in md[md.index("## Runs") :]
