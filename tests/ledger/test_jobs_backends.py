"""A two-node job writing straight into one ledger, on every backend (PostgreSQL: every rank)."""

from __future__ import annotations

import greenprint as gp
from test_jobs import _exactly_once, _slurm, _start


def test_two_simulated_nodes_write_one_ledger_and_count_once(ledger_url, tmp_path):
    gp.Ledger(ledger_url).close()
    procs = [
        _start(_slurm(ledger_url, f"node-{'ab'[node]}", node, local), tmp_path)
        for node in (0, 1)
        for local in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    with gp.Ledger(ledger_url) as led:
        runs = led.runs(study="jobs")
    assert len(runs) == 4 and sum(bool(r.node_meter) for r in runs) == 2
    assert {r.job_id for r in runs} == {"slurm:4242"}
    _exactly_once(runs)
