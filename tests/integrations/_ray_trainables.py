"""The trainables of ``test_ray.py``, in a module of their own that Ray's workers import.

Ray Tune pickles a trainable defined in a module by reference: each trial's worker process
imports that module to run it. Defined in ``test_ray.py``, each worker (about 20 in the file)
imported the test module with pytest, the test helpers and greenprint's CLI and analysis: about
0.2 s of CPU each, on top of Ray Tune's 1.2 s. Here, only what the trainables use.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import greenprint as gp


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1


#: x -> the score reported at each iteration (times the iteration): ASHA (reduction factor 2)
#: stops a trial below the median of what others recorded at a rung, so the 1s are pruned at
#: the first rung, and the 5s, tied, go on to max_t
SCORE = {1: 5, 2: 5, 3: 5, 4: 1, 5: 1, 6: 5}
#: x -> the iteration (0-based) at which the trial raises: x=1 after its first result, x=3
#: before any
FAIL_AT = {1: 1, 3: 0}


def _train(config: dict[str, Any]) -> None:
    from ray import tune

    x = config["x"]
    for i in range(4):
        _busy(0.05)
        if FAIL_AT.get(x) == i:
            raise ValueError(f"trial x={x} fails at iteration {i}")
        tune.report({"score": float(SCORE[x] * (i + 1)), "pid": os.getpid()})


#: x -> CPU seconds the trial burns before its first report (0: it sleeps as long instead);
#: the busy trial runs first
REUSE_BUSY = {1: 0.6, 2: 0.0, 3: 0.0}


def _train_reused(config: dict[str, Any]) -> None:
    """Also reports in NumPy types (a score computed on float32 data, as many are), and a
    result named as a parameter (``x``): the trial's metrics and params take them as numbers."""
    import numpy as np
    from ray import tune

    x = config["x"]  # an np.int64, as np.arange(...) gives
    if REUSE_BUSY[x]:
        _busy(REUSE_BUSY[x])
    else:
        time.sleep(0.6)  # as long, idle: a run of its own has next to no CPU of this process
    for i in range(x):
        tune.report(
            {
                "score": float(10 * x + i),
                "pid": os.getpid(),
                "accuracy": np.float32(0.25 * (i + 1)),
                "epoch": np.int64(i),
                "x": "a",
            }
        )


def _train_capped(config: dict[str, Any]) -> None:
    from ray import tune

    from greenprint.tracking import active_runs

    run = list(active_runs())[-1]  # the trial's run in this worker
    for i in range(4):
        run.set(fpo=400 * (i + 1))  # recorded; the budget is checked at the next report
        tune.report({"score": float(i + 1)})


def _train_capped_caught(config: dict[str, Any]) -> None:
    """As _train_capped, but the trainable catches the stop and returns (Tune: TERMINATED)."""
    try:
        _train_capped(config)
    except gp.BudgetExceeded:
        return


def _train_capped_either(config: dict[str, Any]) -> None:
    """_train_capped_caught for ``caught``, else _train_capped."""
    (_train_capped_caught if config["caught"] else _train_capped)(config)


def _train_fails_twice(config: dict[str, Any]) -> None:
    """x=1 fails after its first result, its first two times (marker files remember)."""
    from ray import tune

    x = config["x"]
    folder = Path(config["folder"])
    for i in range(2):
        _busy(0.05)
        failed = len(list(folder.glob(f"failed-{x}-*")))
        if x == 1 and i == 1 and failed < 2:
            (folder / f"failed-{x}-{failed}").touch()
            raise ValueError(f"the data loader's worker died ({failed + 1})")
        tune.report({"score": float(x * (i + 1))})


def _train_kills_its_driver(config: dict[str, Any]) -> None:
    """x=2 kills the driver (SIGKILL) after its first result, the first time only, at a moment
    the experiment's state on disk is what the restore needs (:func:`_kill_once_saved`)."""
    from ray import tune

    folder = Path(config["folder"])
    marker = folder / "killed"
    for i in range(2):
        _busy(0.05)
        tune.report({"score": float(config["x"] * (i + 1))})
        if config["x"] == 2 and not marker.exists():
            marker.touch()
            _kill_once_saved(config["driver"], folder / "tune" / "ray-killed", note=marker)
            time.sleep(60)  # until Ray ends this worker with its dead driver's job


def _kill_once_saved(driver: int, experiment: Path, *, note: Path, timeout_s: float = 30) -> None:
    """SIGKILL the driver at a moment its experiment's saved state is whole.

    Tune saves its state (trials, searcher, callbacks) to a staging folder at each step and a
    thread of the driver copies it into the experiment's folder, each file emptied first: a
    driver killed during a copy left empty files there (1 run in 8 to 40), and
    ``Tuner.restore`` then started the experiment anew with no config (``KeyError: 'x'`` in
    the trial name). So the driver is stopped (SIGSTOP: its threads, the copy's too, hold
    still), the files are read as the restore reads them, and the driver is killed if they hold
    both trials and a searcher with none left to generate, else let go on and looked at again,
    for up to ``timeout_s`` seconds. ``note`` gets what was found: it starts with "saved".
    """
    import signal

    deadline = time.monotonic() + timeout_s
    looks: list[str] = []
    while True:
        os.kill(driver, signal.SIGSTOP)
        looks.append(_unsaved(experiment) if _stopped(driver) else "the driver did not stop")
        if not looks[-1] or time.monotonic() > deadline:
            break
        os.kill(driver, signal.SIGCONT)
        time.sleep(0.05)
    verdict = "saved" if not looks[-1] else f"not saved: {looks[-1]}"
    note.write_text(f"{verdict} (look {len(looks)}; the first: {looks[0] or 'saved'})")
    os.kill(driver, signal.SIGKILL)


def _stopped(pid: int, timeout_s: float = 5) -> bool:
    """Wait until every thread of the process is stopped (SIGSTOP takes effect later)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():  # no /proc: give the signal time
        time.sleep(0.2)
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = set()
        for stat in tasks.glob("*/stat"):
            try:  # the state follows the name, in parentheses
                states.add(stat.read_text().rpartition(")")[2].split()[0])
            except (OSError, IndexError):  # a thread that ended meanwhile
                continue
        if states and states <= {"T", "t", "Z", "X"}:
            return True
        time.sleep(0.001)
    return False


def _unsaved(experiment: Path) -> str:
    """What ``Tuner.restore`` would miss in the experiment's saved state ('' when nothing).

    The newest file of each kind, as Tune takes it: the trials (JSON), the searcher's and the
    callbacks' states (pickles).
    """
    import json

    import ray.cloudpickle as cloudpickle

    def newest(pattern: str) -> Path:
        return max(experiment.glob(pattern), default=experiment / pattern)

    trials = newest("experiment_state-*.json")
    searcher = newest("basic-variant-state-*.json")
    callbacks = newest("callback-states-*.pkl")
    reading = trials
    try:
        saved = json.loads(trials.read_bytes())["trial_data"]
        xs = sorted(json.loads(state)["config"]["x"] for state, _ in saved)
        if xs != [1, 2]:
            return f"{trials.name}: the trials of x={xs}"
        reading = searcher
        iterators = cloudpickle.loads(searcher.read_bytes())["_iterators"]
        if any(
            it.num_samples_left or it.points_to_evaluate or (it.variants and it.variants.has_next())
            for it in iterators
        ):
            return f"{searcher.name}: variants left to generate"
        reading = callbacks
        if not cloudpickle.loads(callbacks.read_bytes()):
            return f"{callbacks.name}: empty"
    except Exception as e:  # a file caught in a copy fails to load in many ways
        return f"{reading.name}: {type(e).__name__}: {e}"
    return ""


def _train_plateau(config: dict[str, Any]) -> None:
    """x=0 and x=1 climb for 4 iterations; x=2 stays flat (a plateau), and scores less."""
    from ray import tune

    x = config["x"]
    for i in range(4):
        _busy(0.01)
        tune.report({"score": 1.0 if x == 2 else float(10 + x + i)})


def _train_cut(config: dict[str, Any]) -> None:
    from ray import tune

    if config["x"] == 1:  # quick: three results, then it returns
        for i in range(3):
            tune.report({"score": float(i)})
        return
    marks = Path(config["marks"])
    (marks / "x2-started").touch()
    # x=2: a first epoch longer than the experiment lasts. Tune kills a worker that does not
    # stop 10 s after the experiment's end asked it to (the actor's train() call waits on this
    # epoch); the worker is killed at once instead (SIGKILL, as Ray kills it: no result)
    deadline = time.monotonic() + 120
    while not (marks / "experiment-ending").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if (marks / "experiment-ending").exists():
        os.kill(os.getpid(), signal.SIGKILL)
    tune.report({"score": 10.0})


#: x -> (loss, score) each iteration reports, times the iteration: the lowest loss (x=2) is not
#: the best score of an experiment that minimises score (x=4)
LOSS_AND_SCORE = {2: (0.1, 5.0), 4: (0.9, 1.0)}


def _train_loss_and_score(config: dict[str, Any]) -> None:
    """A trial reporting a training loss first, then the score its experiment optimises."""
    from ray import tune

    loss, score = LOSS_AND_SCORE[config["x"]]
    for i in range(4):
        _busy(0.05)
        tune.report({"loss": loss * (i + 1), "score": score * (i + 1)})
