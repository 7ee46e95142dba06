"""Review of session 8's changes: reproducers of the defects found, each with its fix.

1. Optuna ``n_jobs > 1``: while trials run at once, a child process started by one trial is
   linked to their common parent (the run around ``study.optimize``, or none), never to
   another trial's run. The trials' own runs did not export themselves (the callback named a
   trial only while it ran alone), so a run nested inside one trial (``gp.track`` in the
   objective, a Lightning or Hugging Face callback's run) was the only leaf the environment
   saw, and a child process of the *other* trial was linked to it.
2. ``fork`` from a thread (a ``multiprocessing`` worker of one thread-pooled trial): only the
   forking thread lives in the child, but the exports of the other threads' runs stayed, so
   the child's own run never became the environment's run: its child processes were linked
   to the sweep around the trials, not to it. And a thread of the parent inside
   ``export_env`` at the fork left the child's exports lock held: its first run hung.
3. Lost at once: the kernel shows a process's start tick shifted by the *reader's* time
   namespace (``unshare --time --boottime``): a live run written in a shifted time namespace
   (or read from one), on the same host, boot and pid namespace, read ``lost`` at once.
4. ``greenprint run --param lr=1e999``: a number too large for a float read as ``inf`` (the
   rewrite of the number rule dropped the finite check that kept ``nan``/``inf`` as text).
5. A forked child ended its parent's live run: ``with multiprocessing.Pool() as pool:`` (fork)
   sends its workers SIGTERM on leaving the block, and each worker's inherited greenprint
   handler stopped the parent's run as ``interrupted`` (``SIGTERM``, an end time) in the
   ledger while the parent went on; a forked child leaving the ``with gp.track`` block
   (``sys.exit`` after ``os.fork``) wrote it ``finished``. A killed parent then read
   ``interrupted`` or ``finished``, never ``lost``.
6. SIGTERM while the main thread is inside the run registry (a run starting or ending): the
   handler took the registry's plain lock again in the same thread and the process hung for
   ever, its run never ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import greenprint as gp
from _clean_env import BIN, clean_env
from greenprint import _lineage

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")

FAST = {"sample_interval_s": 0.05, "flush_interval_s": 0.2}

CHILD = textwrap.dedent(
    """
    import sys
    import greenprint as gp
    with gp.track(sys.argv[1], ledger=sys.argv[2], study=sys.argv[3], role="part",
                  sample_interval_s=0.05, flush_interval_s=0.2):
        pass
    """
)


@pytest.mark.parametrize("sweep", [True, False], ids=["sweep", "no-sweep"])
def test_a_child_of_one_optuna_trial_never_links_to_a_run_nested_in_another(
    tmp_path: Path, sweep: bool
) -> None:
    optuna = pytest.importorskip("optuna")
    from greenprint.integrations.optuna import GreenprintCallback

    db, script = tmp_path / "g.db", tmp_path / "child.py"
    script.write_text(CHILD)
    cb = GreenprintCallback(ledger=db, study="nested", **FAST)
    both, done = threading.Barrier(2, timeout=120), threading.Barrier(2, timeout=120)
    before = {k: os.environ.get(k) for k in _lineage._KEYS}

    def objective(trial: Any) -> float:
        if trial.number == 0:  # a run of its own inside the trial (a training loop's)
            with gp.track("inner", ledger=db, study="nested", **FAST):
                both.wait()
                done.wait()
        else:  # the other trial starts a child process while trial 0's inner run is live
            both.wait()
            cmd = [sys.executable, str(script), "child", str(db), "nested"]
            subprocess.run(cmd, cwd=tmp_path, check=True, timeout=120)
            done.wait()
        return 1.0

    study = optuna.create_study(study_name="nested", direction="maximize")
    with pytest.warns(UserWarning, match="parallel threads"):
        if sweep:
            with gp.track("search", ledger=db, study="nested", role="sweep", **FAST) as run:
                study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
            expected: str | None = run.id
        else:
            study.optimize(cb.track(objective), n_trials=2, n_jobs=2, callbacks=[cb])
            expected = None
    runs = gp.Ledger(db).runs(study="nested")
    names = {r.id: r.name for r in runs}
    (child,) = (r for r in runs if r.name == "child")
    # their common parent (the sweep, or no run): never trial 0's inner run
    assert child.parent_id == expected, names.get(child.parent_id or "")
    assert {k: os.environ.get(k) for k in _lineage._KEYS} == before


def _forked_worker(db: str, script: str) -> None:
    """In a forked child of one trial's thread: a run of its own, which starts a process."""
    with gp.track("worker", ledger=db, **FAST):
        subprocess.run([sys.executable, script, "grandchild", db, "default"], check=True)


@needs_fork
def test_a_forked_child_of_one_trial_thread_names_its_own_run_to_its_children(
    tmp_path: Path,
) -> None:
    import multiprocessing

    db, script = tmp_path / "g.db", tmp_path / "child.py"
    script.write_text(CHILD)
    both = threading.Barrier(2, timeout=120)
    exits: list[int | None] = []

    def trial(k: int) -> None:
        with gp.track(f"trial-{k}", ledger=db, role="trial", **FAST):
            both.wait()  # both trials live: the parent's environment names the sweep
            if k == 0:
                process = multiprocessing.get_context("fork").Process(
                    target=_forked_worker, args=(str(db), str(script))
                )
                process.start()
                process.join(120)
                exits.append(process.exitcode)
            both.wait()

    with gp.track("sweep", ledger=db, role="sweep", **FAST) as sweep:
        # plain threads: a child forked from a ThreadPoolExecutor's thread exits 1 (Python's
        # own exit handler of the executor, greenprint or not)
        threads = [threading.Thread(target=trial, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert os.environ[_lineage.PARENT_ENV] == sweep.id
    assert exits == [0]
    runs = gp.Ledger(db).runs()
    names = {r.id: r.name for r in runs}
    parents = {r.name: names.get(r.parent_id or "") for r in runs}
    # the forked worker nests in the trial that forked it; its child process in the worker
    assert parents["worker"] == "trial-0"
    assert parents["grandchild"] == "worker"


@needs_fork
def test_a_fork_while_another_thread_exports_does_not_hang_the_childs_runs() -> None:
    held, release = threading.Event(), threading.Event()

    def exporting() -> None:  # a thread inside export_env/restore_env when the fork happens
        with _lineage._exports_lock:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=exporting)
    thread.start()
    held.wait(60)
    pid = os.fork()
    if pid == 0:  # the child: its first run exports itself
        try:
            with gp.track("after-fork", ledger=False):
                pass
            code = 0
        except BaseException:
            code = 1
        os._exit(code)
    release.set()
    thread.join(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's run hung on the exports lock the parent's thread held")
    assert os.waitstatus_to_exitcode(status) == 0


#: Flushes once (a heartbeat good for 3 x 2 + 5 = 11 s), says its run id in a file, sleeps.
WRITER = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    import greenprint as gp
    flushed = threading.Event()
    with gp.track("shifted", ledger=sys.argv[2], flush_interval_s=2.0) as run:
        run.add_listener(lambda run, event: event == "flush" and flushed.set())
        flushed.wait(60)
        Path(sys.argv[1]).write_text(run.id)
        time.sleep(60)
    """
)

READER = "import sys, greenprint as gp; print([r.status for r in gp.Ledger(sys.argv[1]).runs()])"


def _shifted() -> list[str]:
    """A command prefix that runs a command in a time namespace with its boot time shifted."""
    for prefix in (["unshare", "--time", "--boottime", "1000"], ["unshare", "-Ur", "--time"]):
        if prefix[-1] == "--time":
            prefix = [*prefix, "--boottime", "1000"]
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    pytest.skip("no time namespace here (unshare --time needs Linux 5.6 and the right)")


@pytest.mark.parametrize("shifted", ["writer", "reader"])
def test_a_live_run_reads_running_across_a_shifted_boot_time(tmp_path: Path, shifted: str) -> None:
    prefix = _shifted()
    db, ready = tmp_path / "t.db", tmp_path / "ready"
    writer = [sys.executable, "-c", WRITER, str(ready), str(db)]
    proc = subprocess.Popen([*prefix, *writer] if shifted == "writer" else writer)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not flush"
            time.sleep(0.05)
        reader = [sys.executable, "-c", READER, str(db)]
        if shifted == "reader":
            reader = [*prefix, *reader]
        done = subprocess.run(reader, capture_output=True, text=True, timeout=60, check=True)
        assert done.stdout.strip() == "['running']"  # alive: never lost
    finally:
        proc.kill()
        proc.wait(30)


def test_a_param_too_large_for_a_float_stays_text(tmp_path: Path) -> None:
    command = [str(BIN / "greenprint"), "run", "--param", "lr=1e999", "--param", "wd=1e-4"]
    done = subprocess.run(
        [*command, "--", sys.executable, "-c", "pass"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (run,) = gp.Ledger(tmp_path / "greenprint.db").runs()
    assert run.params == {"lr": "1e999", "wd": 1e-4}


FORKS = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    import greenprint as gp

    def idle(ready):
        ready.set()
        time.sleep(60)

    if __name__ == "__main__":
        db, how = sys.argv[1], sys.argv[2]
        with gp.track("train", ledger=db, flush_interval_s=60) as run:
            if how == "terminate":  # as Pool.terminate() ends its idle workers: SIGTERM
                context = multiprocessing.get_context("fork")
                ready = context.Event()
                worker = context.Process(target=idle, args=(ready,))
                worker.start()
                assert ready.wait(60)
                worker.terminate()
                worker.join(60)
            else:  # a forked helper that ends through the block, as a script does
                pid = os.fork()
                if pid == 0:
                    sys.exit(0)
                os.waitpid(pid, 0)
            time.sleep(0.5)
            live = gp.Ledger(db).run(run.id)
            print(live.status, live.error, live.ended_at)
            sys.stdout.flush()
            os._exit(0)  # the parent is killed: its run must read lost, not ended
    """
)


@needs_fork
@pytest.mark.parametrize("how", ["terminate", "fork"])
def test_a_forked_child_never_ends_its_parents_live_run(tmp_path: Path, how: str) -> None:
    db = tmp_path / "g.db"
    done = subprocess.run(
        [sys.executable, "-c", FORKS, str(db), how],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["running", "None", "None"]  # while the parent runs
    (run,) = gp.Ledger(db).runs()
    assert run.status == "lost" and run.ended_at is None  # its process is gone, unended


SIGTERM_INSIDE = textwrap.dedent(
    """
    import os, signal, sys, time
    import greenprint as gp
    from greenprint._lifecycle import registry

    gp.track("job", ledger=sys.argv[1]).start()
    with registry._lock:  # the main thread inside registry.add/discard as SIGTERM arrives
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_sigterm_while_a_run_starts_or_ends_does_not_hang(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_INSIDE, str(db)], cwd=tmp_path)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        pytest.fail("the process hung in its SIGTERM handler")
    assert code == -signal.SIGTERM  # ended by the signal, as without greenprint
    (run,) = gp.Ledger(db).runs()
    assert (run.status, run.error) == ("interrupted", "SIGTERM")
