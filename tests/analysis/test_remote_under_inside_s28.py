"""A run on another host under a run inside its parent adds to the study, at any depth.

A sweep's process runs its trials as nested runs (inside the sweep's measurement), and a trial
sends work to another node whose run names the trial as its parent (``run.child_env()``
passed to the remote launcher). The price tag read each run as ``max(own, inside children's
sum)``, and the remote run's energy came up inside the trial's sum: under a sweep that
measured more than its trial, it was maxed away (10 + 2 inside + 5 remote read 10, not 15).
So was, until session 29, a run given the trial as its parent by id on a third host
(``gp.track(parent=trial_id)``: it records no containment, and adds because its host is not its
parent's), and the price tag's breakdown by role put its energy in the sweep's own part.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from greenprint.analysis import price_tag
from greenprint.ledger._study_cost import study_cost

SWEEP = textwrap.dedent(
    """
    import os, subprocess, sys, time
    import greenprint as gp

    def burn(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    REMOTE = "import greenprint as gp, sys, time\\n" \\
        "with gp.track(sys.argv[1], study='grid', ledger='greenprint.db',\\n" \\
        "              parent=sys.argv[2] or None):\\n" \\
        "    end = time.monotonic() + 0.6\\n" \\
        "    while time.monotonic() < end: pass\\n"
    with gp.track("sweep", study="grid", ledger="greenprint.db", sample_interval_s=0.05):
        burn(0.6)  # the sweep's own work: it measures more than its trial
        with gp.track("trial-0", study="grid", ledger="greenprint.db") as trial:
            env = dict(trial.child_env(), GREENPRINT_HOST="node-b")  # as a launcher to node-b
            subprocess.run([sys.executable, "-c", REMOTE, "remote-worker", ""], env=env, check=True)
            # a job on node-c given the trial's id by hand: no environment of the trial's
            env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRINT_")}
            subprocess.run([sys.executable, "-c", REMOTE, "by-id-worker", trial.id],
                           env=dict(env, GREENPRINT_HOST="node-c"), check=True)
    """
)


def test_a_remote_run_under_a_trial_inside_the_sweep_adds_to_the_price_tag(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", SWEEP], cwd=tmp_path, env=clean_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with gp.Ledger(tmp_path / "greenprint.db", create=False) as led:
        runs = {r.name: r for r in led.runs(study="grid")}
        spent = study_cost(led, "grid")
    sweep, trial, remote = runs["sweep"], runs["trial-0"], runs["remote-worker"]
    by_id = runs["by-id-worker"]
    assert trial.parent_id == sweep.id and trial.contained
    assert remote.parent_id == trial.id and remote.host == "node-b" and not remote.contained
    assert by_id.parent_id == trial.id and by_id.host == "node-c" and by_id.contained is None
    assert sweep.energy_kwh > trial.energy_kwh > 0 and remote.energy_kwh > 0
    tag = price_tag(list(runs.values()))
    # the sweep's measurement holds its trial; the other nodes' runs are in no figure of either
    away = remote.energy_kwh + by_id.energy_kwh
    assert tag.total.energy_kwh == pytest.approx(sweep.energy_kwh + away, rel=1e-9)
    assert spent.energy_kwh == pytest.approx(tag.total.energy_kwh, rel=1e-9)
    assert not any("less energy than their children" in note for note in tag.notes)
    # the breakdown: the sweep's own process apart from its trial, the trial with its workers
    assert tag.by_role["sweep"].energy_kwh == pytest.approx(
        sweep.energy_kwh - trial.energy_kwh, rel=1e-9
    )
    assert tag.by_role["trial"].energy_kwh == pytest.approx(trial.energy_kwh + away, rel=1e-9)
