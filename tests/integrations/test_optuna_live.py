"""Optuna while trials run: a killed trial keeps what it did; parallel trials' child processes.

1. A trial killed mid-run (SIGKILL, an OOM kill, a node lost) keeps its params and the
   intermediate values it reported: the callback records them on the trial's run at each flush,
   not only once the objective returned. Tested the way it happens: a real study in a
   subprocess, killed with SIGKILL, read back from the ledger and by ``greenprint report``.
2. ``study.optimize(n_jobs=2)`` runs trials in threads of one process, but the environment
   through which a child process links to its run is process-wide: while two trials run at
   once it names their common parent (the run around ``study.optimize``, or none), never one of
   the trials; ``cb.child_env(trial)`` links a child to its own trial explicitly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from integrations._frameworks import need

optuna = need("optuna", "optuna")

import greenprint as gp  # noqa: E402
from greenprint.analysis import price_tag  # noqa: E402
from greenprint.integrations.optuna import GreenprintCallback  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.1}
GREENPRINT = str(Path(sys.executable).parent / "greenprint")

# ------------------------------------------------------------------ 1. a killed trial

STUDY = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import optuna
    from greenprint.integrations.optuna import GreenprintCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ledger, ready = sys.argv[1], Path(sys.argv[2])
    cb = GreenprintCallback(ledger=ledger, sample_interval_s=0.05, flush_interval_s=0.1)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        layers = trial.suggest_int("layers", 1, 4)
        for step in range(2):
            trial.report(lr * (step + 1), step)
        if trial.number == 1:  # the trial that is killed: it waits for the kill
            ready.write_text("reported")
            time.sleep(600)
        return lr * layers

    study = optuna.create_study(study_name="killed")
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    """
)


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _steps(run: gp.RunRecord, name: str = "value") -> list[tuple[int, float]]:
    return sorted((p.step, p.value) for p in run.metrics if p.name == name and p.step is not None)


def test_a_killed_trial_keeps_its_params_and_intermediate_values(tmp_path: Path) -> None:
    db, ready, script = tmp_path / "g.db", tmp_path / "ready", tmp_path / "study.py"
    script.write_text(STUDY)
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(ready)], cwd=tmp_path)
    try:
        assert _wait_for(lambda: ready.exists() or proc.poll() is not None, 120), "no trial 1"
        assert proc.poll() is None, "the study ended before trial 1 waited"

        def trial_1_recorded() -> bool:  # what the user relies on, given a few flushes
            runs = {r.name: r for r in gp.Ledger(db).runs(study="killed")}
            run = runs.get("trial-1")
            return run is not None and bool(run.params) and len(_steps(run)) == 2

        _wait_for(trial_1_recorded, 20)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    runs = {r.name: r for r in gp.Ledger(db).runs(study="killed")}
    killed = runs["trial-1"]
    assert killed.status in ("lost", "running")
    assert set(killed.params) == {"lr", "layers"}
    lr = killed.params["lr"]
    assert _steps(killed) == [(0, pytest.approx(lr)), (1, pytest.approx(2 * lr))]
    # the trial that finished before it is recorded as ever: params, steps once, its value
    done = runs["trial-0"]
    assert done.status == "finished" and set(done.params) == {"lr", "layers"}
    assert _steps(done) == [
        (0, pytest.approx(done.params["lr"])),
        (1, pytest.approx(2 * done.params["lr"])),
    ]
    assert done.metric("value") == pytest.approx(done.params["lr"] * done.params["layers"])

    # greenprint report lists the killed trial with its configuration
    out = tmp_path / "rep"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENPRINT_PARENT")}
    done_cli = subprocess.run(
        [
            GREENPRINT,
            "report",
            "--ledger",
            str(db),
            "--study",
            "killed",
            "--format",
            "json",
            "--out",
            str(out),
            "--no-plots",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done_cli.returncode == 0, done_cli.stderr
    rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())["runs"]}
    assert rows["trial-1"]["status"] in ("lost", "running")
    assert rows["trial-1"]["params"] == killed.params


def test_finished_trials_are_recorded_as_before_each_step_once(tmp_path: Path) -> None:
    """Flushes during the objective and the end both record steps: each step is logged once."""
    db = tmp_path / "g.db"
    cb = GreenprintCallback(ledger=db, sample_interval_s=0.02, flush_interval_s=0.04)
    study = optuna.create_study(study_name="steps", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1, 1)
        for step in range(4):
            trial.report(x + step, step)
            time.sleep(0.1)  # a few flushes between reports
        trial.suggest_int("late", 0, 9)  # a param suggested after the last flush
        if trial.number == 1:
            raise optuna.TrialPruned()
        return x

    study.optimize(cb.track(objective), n_trials=3, callbacks=[cb])
    runs = {r.name: r for r in gp.Ledger(db).runs(study="steps")}
    assert sorted(runs) == ["trial-0", "trial-1", "trial-2"]
    for trial in study.trials:
        run = runs[f"trial-{trial.number}"]
        assert run.params == trial.params and set(run.params) == {"x", "late"}
        counts = Counter((p.name, p.step) for p in run.metrics)
        assert max(counts.values()) == 1, counts  # no step logged twice
        assert dict(_steps(run)) == pytest.approx(trial.intermediate_values)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert run.metric("value") == pytest.approx(trial.value)
            assert counts[("value", None)] == 1
        else:
            assert run.status == "pruned" and ("value", None) not in counts


# ------------------------------------------------------------------ 2. children of parallel trials

CHILD = textwrap.dedent(
    """
    import sys
    import greenprint as gp
    name, ledger, study, fpo = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with gp.track(name, ledger=ledger, study=study, role="part",
                  sample_interval_s=0.05, flush_interval_s=0.1) as run:
        run.add_fpo(fpo)
    """
)


def _parallel_study(tmp_path: Path, study_name: str, *, explicit: bool = False):
    """A study of 2 trials in 2 threads; each starts children before and while both run.

    Returns the callback's study and the FPO each child counted, by child name. Child
    ``<n>-early`` starts before the trials meet (the other may not have started yet),
    ``<n>-late`` while both trials are surely running; with ``explicit`` the late child is
    given ``env=cb.child_env(trial)``.
    """
    db, script = tmp_path / "g.db", tmp_path / "child.py"
    script.write_text(CHILD)
    cb = GreenprintCallback(ledger=db, **FAST)
    met, spawned = threading.Barrier(2, timeout=120), threading.Barrier(2, timeout=120)
    fpo: dict[str, int] = {}

    def child(name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        fpo[name] = 1000 * (len(fpo) + 1)
        cmd = [sys.executable, str(script), name, str(db), study_name, str(fpo[name])]
        return subprocess.Popen(cmd, cwd=tmp_path, env=env)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        assert child(f"{trial.number}-early").wait(timeout=120) == 0
        met.wait()  # both trials run from here until `spawned`
        late = child(f"{trial.number}-late", cb.child_env(trial) if explicit else None)
        spawned.wait()
        assert late.wait(timeout=120) == 0
        return x

    study = optuna.create_study(study_name=study_name, direction="maximize")
    return cb, study, objective, fpo, db


def _children(db: Path, study: str) -> tuple[dict[str, gp.RunRecord], dict[int, str]]:
    runs = gp.Ledger(db).runs(study=study)
    children = {r.name: r for r in runs if r.role == "part"}
    trials = {int(r.name.split("-")[1]): r.id for r in runs if r.role == "trial"}
    return children, trials


def test_children_of_parallel_trials_link_to_the_sweep_never_the_other_trial(
    tmp_path: Path,
) -> None:
    cb, study, objective, fpo, db = _parallel_study(tmp_path, "par")
    before = {k: v for k, v in os.environ.items() if k.startswith("GREENPRINT_PARENT")}
    with (
        gp.track("search", study="par", ledger=db, role="sweep", **FAST) as sweep,
        warnings.catch_warnings(record=True) as warned,
    ):
        warnings.simplefilter("always")
        study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
    assert {k: v for k, v in os.environ.items() if k.startswith("GREENPRINT_PARENT")} == before
    children, trials = _children(db, "par")
    assert sorted(children) == ["0-early", "0-late", "1-early", "1-late"]
    assert set(trials) == {0, 1}
    for name, run in children.items():
        own = trials[int(name.split("-")[0])]
        assert run.parent_id in (own, sweep.id), name  # never the other trial
        assert run.contained, name  # inside its parent's process tree
    # started while both trials ran: the environment named their common parent
    assert children["0-late"].parent_id == children["1-late"].parent_id == sweep.id

    tag = price_tag(gp.Ledger(db).runs(study="par"))
    assert tag.total.runs == 1 + 2 + 4  # the sweep, its trials, the children: each once
    assert tag.total.fpo == sum(fpo.values())  # each child's operations counted once
    # their energy is inside the sweep's measurement, not added to it (as roots it would be;
    # the price tag's floor may put the total a little above the sweep's own reading)
    sweep_kwh = gp.Ledger(db).run(sweep.id).energy_kwh
    assert 0 < tag.total.energy_kwh < sweep_kwh + sum(r.energy_kwh for r in children.values())
    said = [str(w.message) for w in warned if "child process" in str(w.message)]
    assert len(said) == 1 and "not to a trial" in said[0]


def test_without_a_sweep_children_of_parallel_trials_link_to_no_trial(tmp_path: Path) -> None:
    cb, study, objective, fpo, db = _parallel_study(tmp_path, "bare")
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
    children, trials = _children(db, "bare")
    assert sorted(children) == ["0-early", "0-late", "1-early", "1-late"]
    for name, run in children.items():
        assert run.parent_id in (trials[int(name.split("-")[0])], None), name
    assert children["0-late"].parent_id is None and children["1-late"].parent_id is None
    tag = price_tag(gp.Ledger(db).runs(study="bare"))
    assert tag.total.fpo == sum(fpo.values())
    assert sum("child process" in str(w.message) for w in warned) == 1


def test_child_env_links_a_child_to_its_own_trial_while_trials_run_at_once(
    tmp_path: Path,
) -> None:
    cb, study, objective, fpo, db = _parallel_study(tmp_path, "explicit", explicit=True)
    with gp.track("search", study="explicit", ledger=db, role="sweep", **FAST) as sweep:
        with pytest.warns(UserWarning):
            study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
    children, trials = _children(db, "explicit")
    for n in (0, 1):
        late = children[f"{n}-late"]
        assert late.parent_id == trials[n] and late.contained
        assert children[f"{n}-early"].parent_id in (trials[n], sweep.id)
    tag = price_tag(gp.Ledger(db).runs(study="explicit"))
    assert tag.total.fpo == sum(fpo.values())
    with pytest.raises(gp.GreenprintError, match="not running under this GreenprintCallback"):
        cb.child_env(study.trials[0])


def test_sequential_trials_children_link_to_their_trial(tmp_path: Path) -> None:
    """One trial at a time (n_jobs=1): a child process is its trial's part, as before."""
    db, script = tmp_path / "g.db", tmp_path / "child.py"
    script.write_text(CHILD)
    cb = GreenprintCallback(ledger=db, **FAST)

    def objective(trial: optuna.Trial) -> float:
        cmd = [sys.executable, str(script), f"{trial.number}-c", str(db), "seq", "10"]
        assert subprocess.run(cmd, cwd=tmp_path, timeout=120).returncode == 0
        return trial.suggest_float("x", 0, 1)

    study = optuna.create_study(study_name="seq", direction="maximize")
    study.optimize(cb.track(objective), n_trials=2, callbacks=[cb])
    children, trials = _children(db, "seq")
    assert {n: r.parent_id for n, r in children.items()} == {"0-c": trials[0], "1-c": trials[1]}
    assert all(r.contained for r in children.values())
    assert not any(k.startswith("GREENPRINT_PARENT") for k in os.environ)
