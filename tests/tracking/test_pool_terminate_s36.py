"""Session 36: ``Pool.terminate()`` (``with Pool() as pool:``) hung on a worker that had run runs.

Found by a study whose ledger failed mid-study (its runs in the fallback file): 2 of 10 such
scripts hung at the end of ``with Pool() as pool:``. A worker waits on the pool's queue lock
(``sem_wait``) between tasks, with greenprint's Python SIGTERM handler still set after its
runs; ``terminate()`` takes that lock and sends each worker SIGTERM. A SIGTERM that lands as
the wait is woken without the lock (``futex`` returned 0, not ``EINTR``) is noted by CPython's
C handler (gdb: ``is_tripped`` 1, ``Handlers[15].tripped`` 1), but the wait goes on, and Python
runs its handler only between two instructions of the main thread: never, so the worker lived
and the pool waited for it for good. A healthy ledger hangs too, only less often (its timing).
Now a pool's worker has greenprint's handler only while it has runs of its own to end, and an
idle worker dies of SIGTERM's default action, whatever it waits on. Measured on 2 cores: one
fork pool of 8 fallback runs a script, two scripts at a time: 10 of 90 hung before, 0 of 110
after; 30 such pools in one script: 10 of 10 scripts hung before (fallback or healthy ledger),
0 of 22 after; 10 spawn or forkserver pools: 1 of 3 each before, 0 of 10 each after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import greenprint as gp
from _clean_env import clean_env
from _report_cli import empty_home

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fork, pthread_kill, POSIX signals"
)

#: ``pools`` fork pools, each ended by ``with`` (terminate) after 8 runs of 4 workers, their
#: ledger's folder moved away (``fallback``: the runs go to the fallback file) or not.
POOLS = """
import multiprocessing as mp, os, sys, time
import greenprint as gp

def trial(i):
    with gp.track(f"t{i}", study="s", ledger="runs/gp.db") as run:
        run.log(score=i)
    time.sleep(0.02)
    return i

if __name__ == "__main__":
    pools, fallback = int(sys.argv[1]), sys.argv[2] == "fallback"
    os.mkdir("runs")
    with gp.track("t0", study="s", ledger="runs/gp.db"):
        pass
    if fallback:
        os.rename("runs", "moved")
    for k in range(pools):
        with mp.get_context("fork").Pool(4) as pool:
            pool.map(trial, range(8 * k + 1, 8 * k + 9), chunksize=1)
    print("ended", flush=True)
"""


def _run(
    home: Path, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``home``; a hang fails the test, its workers killed with it.

    In a session of its own: a worker left waiting (its parent killed at the timeout) is
    killed too, by the group's id.
    """
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=home,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{' '.join(args)} hung ({timeout:g} s)")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _names(location: Path) -> list[str]:
    ledger = gp.Ledger(location, create=False)
    try:
        return [r.name for r in ledger.runs()]
    finally:
        ledger.close()


@pytest.mark.parametrize("ledger", ["fallback", "healthy"])
def test_with_pool_ends_its_workers_after_their_runs(tmp_path_factory, ledger):
    home = empty_home(tmp_path_factory, f"pool-terminate-{ledger}")
    temp = home / "tmp"
    temp.mkdir()
    (home / "pools.py").write_text(POOLS, encoding="utf-8")
    env = {**clean_env(), "TMPDIR": str(temp)}
    done = _run(home, "pools.py", "30", ledger, env=env, timeout=90)  # 4 s; before: for good
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "ended\n"
    trials = sorted(f"t{i}" for i in range(1, 241))
    if ledger == "fallback":
        (fallback,) = temp.glob("greenprint-*/greenprint-unsaved-*.db")
        assert sorted(_names(fallback)) == trials  # nothing lost
    else:
        assert sorted(_names(home / "runs" / "gp.db")) == sorted(["t0", *trials])


#: A pool's worker (a process multiprocessing started) that ran a run, then waits in its main
#: thread (as it waits on its queue's lock) while a SIGTERM is noted on another thread of it: the
#: wait is never interrupted.
IDLE = """
import multiprocessing as mp, signal, sys, threading, time
import greenprint as gp

def worker():
    with gp.track("done", study="s", ledger="gp.db"):
        pass
    lock = threading.Lock()
    lock.acquire()

    def other():
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=other).start()
    lock.acquire()

if __name__ == "__main__":
    child = mp.get_context(sys.argv[1]).Process(target=worker)
    child.start()
    child.join(20)
    print(child.exitcode)
    child.kill()
"""


@pytest.mark.parametrize("start", ["fork", "spawn", "forkserver"])
def test_a_worker_whose_runs_ended_dies_of_sigterm_whatever_it_waits_on(tmp_path_factory, start):
    home = empty_home(tmp_path_factory, f"idle-sigterm-{start}")
    (home / "idle.py").write_text(IDLE, encoding="utf-8")
    done = _run(home, "idle.py", start, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    # before: None, greenprint's Python handler never ran and the worker waited for good
    assert done.stdout == "-15\n"
    (run,) = gp.Ledger(home / "gp.db", create=False).runs()
    assert run.status == "finished"


#: In a pool's worker, SIGTERM mid-run still ends the run interrupted (greenprint's handler,
#: then the default action or the user's handler); between runs the handler set before
#: greenprint's is set again, and one the user set after it stays.
HANDLERS = """
import multiprocessing as mp, os, signal, sys, time
import greenprint as gp

def worker(which):
    said = []
    def users(signum, frame):
        said.append(signum)

    if which == "before":
        signal.signal(signal.SIGTERM, users)
    with gp.track("first", study="s", ledger="gp.db"):
        if which == "after":
            signal.signal(signal.SIGTERM, users)
    between = signal.getsignal(signal.SIGTERM)
    print("between", {users: "users", signal.SIG_DFL: "default"}.get(between, "other"), flush=True)
    with gp.track("second", study="s", ledger="gp.db"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
    print("after", "users" if signal.getsignal(signal.SIGTERM) is users else "other", said)

if __name__ == "__main__":
    child = mp.get_context("fork").Process(target=worker, args=(sys.argv[1],))
    child.start()
    child.join(30)
    print(child.exitcode, flush=True)
"""


@pytest.mark.parametrize("which", ["none", "before", "after"])
def test_sigterm_mid_run_ends_it_interrupted_and_the_users_handler_stays(tmp_path_factory, which):
    home = empty_home(tmp_path_factory, f"handlers-{which}")
    (home / "handlers.py").write_text(HANDLERS, encoding="utf-8")
    done = _run(home, "handlers.py", which, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r.name: r for r in gp.Ledger(home / "gp.db", create=False).runs()}
    assert runs["first"].status == "finished"
    if which == "none":  # the default action: the worker dies of it, the run interrupted
        assert done.stdout == "between default\n-15\n"  # before: greenprint's, left set
    elif which == "before":  # greenprint's, then the user's: the worker goes on
        assert done.stdout == "between users\nafter users [15]\n0\n"
    else:  # set after greenprint's: the user's alone, as before (greenprint's not set again)
        assert done.stdout == "between users\nafter users [15]\n0\n"
        assert runs["second"].status == "finished"
        return
    assert (runs["second"].status, runs["second"].error) == ("interrupted", "SIGTERM")


#: Not in a pool's worker: greenprint's handler stays between runs, as before, for the runs of
#: other threads after a main-thread run (only the main thread can install it).
THREADS = """
import concurrent.futures as cf, os, signal, threading, time
import greenprint as gp

with gp.track("first", study="s", ledger="gp.db"):
    pass

def trial(i):
    with gp.track(f"thread{i}", study="s", ledger="gp.db"):
        time.sleep(10)

threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
with cf.ThreadPoolExecutor(2) as pool:
    list(pool.map(trial, range(2)))
"""


def test_sigterm_ends_the_threads_runs_after_a_main_thread_run_interrupted(tmp_path_factory):
    home = empty_home(tmp_path_factory, "threads-sigterm")
    (home / "threads.py").write_text(THREADS, encoding="utf-8")
    done = _run(home, "threads.py", timeout=60)
    assert done.returncode == -15, done.stderr[-3000:]
    runs = sorted((r.name, r.status, r.error) for r in gp.Ledger(home / "gp.db").runs())
    assert runs == [
        ("first", "finished", None),
        ("thread0", "interrupted", "SIGTERM"),
        ("thread1", "interrupted", "SIGTERM"),
    ]
