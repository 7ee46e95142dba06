"""Outside checks, session 27: runs under the process and thread shapes real training code has.

Scripts written as users write them, run in an empty directory with a clean environment (no
``GREENPRINT_*`` variable), then read back from the ledger:

* **A child forked while a run's thread imports.** A tracked script that forks (``os.fork``,
  ``multiprocessing``'s ``fork`` pool) just after its run started: the run's sampler thread
  imported ``greenprint._environment`` on its first tick, and a child forked then got that
  module's import lock held by a thread it does not have (CPython). The child's own run, at its
  end, imported the module and waited for ever (1 hang in 5 of a plain fork + ``gp.track`` in
  the child, always when the fork falls in that import). Now the run imports it on the thread
  that starts it, and a run's threads import nothing. The sampler thread's ``git`` call (the
  run's environment) ran while the main thread forked: ``with Pool(2) as pool: pool.map(...)``
  in a run (``sample_interval_s=0.05``) hung at the pool's end in 1 of 25-35 scripts of 10
  pools each, a worker never ended (none in 800 pool ends without that call); it runs at the
  run's start now, on the thread that starts it.
* **A signal at any point of a run.** Ctrl-C (``KeyboardInterrupt``) or SIGTERM landing in the
  middle of a run's start or end left it written ``running`` (read ``lost``), current, and the
  parent of every later run of the process; now both are held until the start or end is done.
  A process whose first run was a worker thread's never installed greenprint's SIGTERM
  handler: its main thread's runs read ``lost`` after a scheduler's SIGTERM.
* **An exception whose ``__str__`` raises** came out of the ``with`` as that error, its run
  recorded ``finished``.
* **A ledger directory removed mid-run** said two warnings at every flush.
* **A full disk at a run's start**: ``LedgerError`` as documented, but the run was left
  ``running``, its meters open, and a ``stop()`` saved apart a run the ledger never had.
* **Points logged in ``fork`` workers** to the run they inherited (``gp.current_run().log()``
  in a ``Pool.map`` function) stayed in the worker's copy of the run, lost without a word.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _clean_env import clean_env
from _report_cli import empty_home

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork and POSIX signals")


def _script(home: Path, text: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """``text`` run as ``script.py`` in ``home`` with a new user's environment."""
    (home / "script.py").write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "script.py", *args],
        cwd=home,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _ledger(home: Path) -> dict[str, dict]:
    """The runs of ``home``'s ledger by name: status, parent, containment, energy (J)."""
    import greenprint as gp

    led = gp.Ledger(home / "greenprint.db", create=False)
    try:
        return {
            r.name: {
                "id": r.id,
                "status": r.status,
                "parent_id": r.parent_id,
                "contained": r.contained,
                "energy_j": None if r.energy_kwh is None else r.energy_kwh * 3.6e6,
                "error": r.error,
                "provenance": r.provenance,
            }
            for r in led.runs()
        }
    finally:
        led.close()


#: A run whose thread takes 0.5 s over each module it imports (its import lock held, as a slow
#: disk or a big module holds it); the script forks while that thread imports, and the child
#: runs a ``gp.track`` of its own. Prints the modules the run's threads imported, and whether
#: the child hung (waited 5 s for, then killed).
FORK_WHILE_IMPORTING = """
import importlib.abc, json, os, sys, threading, time

importing = threading.Event()
imported_in_threads = []


class SlowInThreads(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if threading.current_thread() is not threading.main_thread():
            imported_in_threads.append(name)
            importing.set()
            time.sleep(0.5)
        return None


def audit(event, args):
    if event in ("subprocess.Popen", "os.fork", "os.posix_spawn") and (
        threading.current_thread() is not threading.main_thread()
    ):
        started_in_threads.append(event)


started_in_threads = []
sys.addaudithook(audit)
sys.meta_path.insert(0, SlowInThreads())
import greenprint as gp

with gp.track("parent", study="s", ledger="greenprint.db", sample_interval_s=0.05):
    importing.wait(1.0)  # the run's thread is importing: fork now
    pid = os.fork()
    if pid == 0:
        with gp.track("child"):
            pass
        os._exit(0)
    deadline = time.time() + 5
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("child hung")
            break
        time.sleep(0.02)
print(json.dumps([imported_in_threads, started_in_threads]))
"""


def test_a_child_forked_while_the_runs_thread_imports_ends_its_own_run(tmp_path_factory):
    home = empty_home(tmp_path_factory, "fork-importing")
    done = _script(home, FORK_WHILE_IMPORTING)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child hung" not in done.stdout
    # a run's threads import nothing and start no process (its git call, run on the sampler
    # thread while the main thread forked a Pool's workers, hung the pool's end)
    assert json.loads(done.stdout.splitlines()[-1]) == [[], []]
    runs = _ledger(home)
    assert runs["child"]["status"] == "finished"
    assert runs["child"]["parent_id"] == runs["parent"]["id"] and runs["child"]["contained"]
    assert runs["parent"]["status"] == "finished"


#: Short runs (a point logged in each), ``argv[1]`` (SIGINT, or SIGTERM with a handler of the
#: script's own that leaves through ``sys.exit``, as training scripts install) raised at the
#: k-th line greenprint runs in the main thread, for ``argv[2]`` values of k spread over one
#: run's start, logging and end. Prints what each run raised, the run left current after it,
#: the parent-run variables left in the environment and the threads left.
SIGNAL_AT_EVERY_POINT = """
import dis, inspect, json, os, signal, sys, threading, time
import greenprint as gp

signum = getattr(signal, sys.argv[1])
if sys.argv[1] == "SIGTERM":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
from greenprint._lifecycle import status_for

target, count, unheld, ends = None, 0, set(), {}
# Before the first line that holds the signals, a handler's exception leaves the method that
# would hold them (at its start: the with statement's call of __exit__, stop's check of its
# argument): no Python code can hold a signal there. These points are noted, not asserted.
def _held_from(method):  # a Run method's code, and the line its hold starts at
    lines = inspect.getsource(method).splitlines()
    at = next(n for n, text in enumerate(lines) if "interrupts_held()" in text)
    return method.__code__, method.__code__.co_firstlineno + at


_unheld = dict([_held_from(gp.Run.stop), _held_from(gp.Run.__exit__)])


# A real signal's handler runs where the interpreter checks for one: at a function's start,
# after a call returns, at a jump back. The tracer raises the signal there only: at a call
# event, at a return event (the exception then comes out of the call, in the caller; not for
# __enter__, which a with statement calls without a check after it) and before a
# JUMP_BACKWARD. A raise by the tracer anywhere else ('try:' line's NOP, a with statement's
# exit, the instruction after a call) is one no signal can make: it may skip every handler.
JUMP_BACKWARD = dis.opmap["JUMP_BACKWARD"]


def tracer(frame, event, arg):
    global count, target
    if event == "call":
        if "greenprint" not in frame.f_code.co_filename:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
    elif event == "opcode":
        if frame.f_code.co_code[frame.f_lasti] != JUMP_BACKWARD:
            return tracer
    elif event != "return" or frame.f_code.co_name == "__enter__":
        return tracer
    if target is not None:
        count += 1
        if count == target:
            target = None
            if (frame.f_lineno or 0) < _unheld.get(frame.f_code, 0):
                unheld.add(count)
            signal.raise_signal(signum)
    return tracer


def one(name, at):
    global count, target
    count, target = 0, at
    sys.settrace(tracer)
    try:
        with gp.track(name, study="s", ledger="greenprint.db", sample_interval_s=0.05) as run:
            run.log(loss=0.5, step=1)
    except (KeyboardInterrupt, SystemExit) as exc:
        caught = type(exc).__name__
        ends[at] = status_for(exc)
    else:
        caught = None
    finally:
        sys.settrace(None)
    return caught, count


one("warm", 10**9)
_, lines = one("count", 10**9)
seen = {}
for at in range(1, lines + 1, max(lines // int(sys.argv[2]), 1)):
    caught, _ = one(f"at{at}", at)
    left = gp.current_run()
    if target is not None:  # this run had fewer points than the one counted: not reached
        target = None
        continue
    if at in unheld:  # see above: the run still ends (here, or at exit, 'interrupted')
        if left is not None:
            left.stop(*ends[at])
        continue
    seen[at] = [caught, None if left is None else left.name]
time.sleep(0.2)
print(json.dumps({"seen": seen, "threads": [t.name for t in threading.enumerate()],
                  "env": sorted(k for k in os.environ if k.startswith("GREENPRINT_PARENT"))}))
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_at_any_point_of_a_run_leaves_it_ended_and_nothing_behind(
    tmp_path_factory, signame
):
    """Ctrl-C (``KeyboardInterrupt``) or SIGTERM at any line of a run's start, logging or end:
    the run is recorded ``interrupted`` (or ``finished``, once its body was done), or not at
    all when it had not started; no run stays current, none is another's parent, no sampler
    thread or parent-run variable is left. Before: a signal half-way through the start left
    the run written ``running`` (read ``lost``: 13 of 50), current, and the parent of every
    later run."""
    home = empty_home(tmp_path_factory, f"signal-{signame}")
    done = _script(home, SIGNAL_AT_EVERY_POINT, signame, "50")
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    raised = "KeyboardInterrupt" if signame == "SIGINT" else "SystemExit"
    assert all(caught == raised for caught, _ in out["seen"].values()), out["seen"]
    assert [at for at, (_, left) in out["seen"].items() if left] == []
    assert out["threads"] == ["MainThread"] and out["env"] == []
    runs = _ledger(home)
    assert len(runs) > 2 + 25  # most points were inside a run (the rest in gp.track's arguments)
    assert {r["status"] for r in runs.values()} <= {"finished", "interrupted"}
    assert [name for name, r in runs.items() if r["parent_id"]] == []
    interrupted = [r for r in runs.values() if r["status"] == "interrupted"]
    assert interrupted
    assert {r["error"] for r in interrupted} == {signame.replace("SIGINT", "KeyboardInterrupt")}


#: SIGINT at each line of a run's stop up to its work (the hold's set-up: the handlers' swap),
#: each time in a new run; prints the lines after which a run was left running or current.
SIGNAL_IN_THE_HOLDS_SET_UP = """
import inspect, json, linecache, signal, sys, threading
import greenprint as gp
from greenprint import _interrupts, _lifecycle

FUNCTIONS = {gp.Run.stop.__code__, _interrupts.interrupts_held.__code__}
FUNCTIONS |= {getattr(_interrupts.InterruptsHeld, name).__code__
              for name in ("__init__", "__enter__", "_swap")}
FUNCTIONS.add(_lifecycle.registry.install_sigterm.__func__.__code__)
stop = gp.Run.stop.__code__
held_from = stop.co_firstlineno + next(
    n for n, text in enumerate(inspect.getsource(gp.Run.stop).splitlines())
    if "interrupts_held()" in text
)
target, count, where = None, 0, []


def tracer(frame, event, arg):
    global count, target
    if event == "call":
        return tracer if frame.f_code in FUNCTIONS else None
    if event == "line" and target is not None:
        # a 'try:' line is no point (see SIGNAL_AT_EVERY_POINT)
        if linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip() == "try:":
            return tracer
        count += 1
        if count == target:
            target = None
            where.append((frame.f_code.co_name, frame.f_lineno))
            signal.raise_signal(signal.SIGINT)
    return tracer


def one(at):
    global count, target
    run = gp.track(f"at{at}", study="s", ledger="greenprint.db", sample_interval_s=0.05).start()
    count, target = 0, at
    sys.settrace(tracer)
    try:
        run.stop()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return run


one(10**9)
lines = count
left_behind, tried = [], 0
for at in range(1, lines + 1):
    where.clear()
    run = one(at)
    if not where or (where[-1][0] == "stop" and where[-1][1] < held_from):
        if run.status == "running":
            run.stop("interrupted", "KeyboardInterrupt")
        continue  # not reached, or before the hold's first line (no code can hold it there)
    tried += 1
    if run.status == "running" or gp.current_run() is not None or _interrupts._holding:
        left_behind.append(where[-1])
        run.stop()
print(json.dumps({"tried": tried, "left_behind": left_behind,
                  "handler": repr(signal.getsignal(signal.SIGINT)),
                  "threads": [t.name for t in threading.enumerate()]}))
"""


def test_ctrl_c_while_a_runs_end_sets_up_its_hold_still_ends_the_run(tmp_path_factory):
    """SIGINT at each line of ``Run.stop`` up to its work: in ``InterruptsHeld.__enter__``
    before the handlers were swapped, its ``KeyboardInterrupt`` came out of the hold's set-up,
    so that the run's end never ran: the run stayed ``running`` and current, its sampler alive
    (a 50-point sweep of a run's lines hit it under load: 10 later runs nested in it). Now the
    exception is kept and raised once the run has ended, or the run is ended before it goes
    on; the handlers are put back each time."""
    home = empty_home(tmp_path_factory, "signal-hold-set-up")
    done = _script(home, SIGNAL_IN_THE_HOLDS_SET_UP)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["tried"] >= 8  # the hold's own lines, each tried
    assert out["left_behind"] == []
    assert out["handler"] == repr(signal.default_int_handler)
    assert out["threads"] == ["MainThread"]


#: A first run in a worker thread, then a run of the main thread that gets SIGTERM.
SIGTERM_AFTER_A_THREADS_RUN = """
import os, signal, threading, time
import greenprint as gp


def trial():
    with gp.track("in-a-thread", study="s", ledger="greenprint.db"):
        pass


thread = threading.Thread(target=trial)
thread.start()
thread.join()
with gp.track("main", study="s", ledger="greenprint.db", sample_interval_s=0.05):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
"""


def test_sigterm_after_a_first_run_in_a_thread_interrupts_the_main_threads_run(
    tmp_path_factory,
):
    """greenprint's SIGTERM handler is installed from the main thread only: a process whose
    first run was a worker thread's never had it, and a scheduler's SIGTERM left the main
    thread's run ``lost`` instead of ``interrupted`` with its cost so far."""
    home = empty_home(tmp_path_factory, "sigterm-thread-first")
    done = _script(home, SIGTERM_AFTER_A_THREADS_RUN)
    assert done.returncode == -15, done.stderr[-3000:]
    runs = _ledger(home)
    assert runs["in-a-thread"]["status"] == "finished"
    assert runs["main"]["status"] == "interrupted" and runs["main"]["error"] == "SIGTERM"


class _UnprintableError(Exception):
    """An exception whose text cannot be made (a library's ``__str__`` with a bug in it)."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ broke")


def test_an_exception_whose_str_raises_fails_its_run_and_reaches_the_user(tmp_path):
    """The run's end read the exception's text: ``RuntimeError('__str__ broke')`` came out of
    the ``with`` instead of the user's exception, and the run, never ended there, was
    recorded ``finished`` at exit. Now the user's exception comes out, the run ``failed`` with
    the text Python's own traceback prints."""
    import greenprint as gp

    with pytest.raises(_UnprintableError):
        with gp.track("unprintable", study="s", ledger=tmp_path / "greenprint.db") as run:
            raise _UnprintableError()
    assert run.status == "failed"
    assert run.record.error == "_UnprintableError: <exception str() failed>"
    assert _ledger(tmp_path)["unprintable"]["status"] == "failed"


#: A run whose ledger's directory is removed mid-run, then made again 0.6 s (six flushes) later.
LEDGER_DIRECTORY_GONE = """
import os, shutil, time
import greenprint as gp

os.makedirs("logs")
with gp.track("gone", study="s", ledger="logs/greenprint.db", sample_interval_s=0.05,
              flush_interval_s=0.1) as run:
    run.log(loss=1.0, step=0)
    time.sleep(0.3)
    shutil.rmtree("logs")
    for step in range(1, 7):
        run.log(loss=1.0 / (step + 1), step=step)
        time.sleep(0.1)
    os.makedirs("logs")
    time.sleep(0.3)
"""


def test_a_ledger_directory_removed_mid_run_is_said_once_and_the_run_kept(tmp_path_factory):
    """The run's ledger directory removed (a cleanup job, ``rm -rf logs``) while the run goes:
    each flush (ten a second here, every 10 s by default: hours of them) said both warnings
    again. Now each is said once, and (session 35) the run goes on in its ledger's fallback
    file, with every point logged, until ``greenprint ledger merge`` puts it back."""
    import greenprint as gp

    home = empty_home(tmp_path_factory, "ledger-gone")
    (home / "tmp").mkdir()
    (home / "script.py").write_text(LEDGER_DIRECTORY_GONE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=home, env={**clean_env(), "TMPDIR": str(home / "tmp")},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    warned = [line for line in done.stderr.splitlines() if line.startswith("greenprint:")]
    assert sum("was deleted or replaced" in line for line in warned) == 1, warned
    assert sum("cannot take runs" in line for line in warned) == 1, warned
    (fallback,) = (home / "tmp").glob("greenprint-*/greenprint-unsaved-*.db")
    (run,) = gp.Ledger(fallback, create=False).runs()
    assert run.status == "finished" and [p.step for p in run.metrics] == list(range(7))


#: A cross-validation whose folds run in ``fork`` workers that log their score to the run they
#: inherited, a ``multiprocessing.Pool`` and a ``ProcessPoolExecutor``.
FORKED_WORKERS_LOG = """
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import greenprint as gp


def fold(i):
    gp.current_run().log(fold_score=i / 10, step=i)
    return i


if __name__ == "__main__":
    fork = mp.get_context("fork")
    with gp.track("cv", study="s", ledger="greenprint.db") as run:
        with fork.Pool(2) as pool:
            pool.map(fold, range(3))
        with ProcessPoolExecutor(2, mp_context=fork) as pool:
            list(pool.map(fold, range(3, 6)))
"""


def test_points_logged_in_forked_workers_to_the_inherited_run_are_recorded(tmp_path_factory):
    """A ``fork`` worker holds a copy of the run that stands still at the fork: what it
    logged stayed in the copy, lost without a word (the run recorded no point). Now each point
    is written to the run's ledger by the worker."""
    import greenprint as gp

    home = empty_home(tmp_path_factory, "forked-log")
    done = _script(home, FORKED_WORKERS_LOG)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "greenprint:" not in done.stderr
    (run,) = gp.Ledger(home / "greenprint.db", create=False).runs()
    assert run.status == "finished"
    assert sorted((p.step, p.value) for p in run.metrics) == [(i, i / 10) for i in range(6)]


#: A process's tree read while a forked child (never exec'd) runs a run of its own, busy for
#: 0.4 s of CPU, then while a second child is killed (SIGKILL) half-way through its 0.4 s: the
#: tree's CPU seconds and the kernel's (``getrusage`` of the process and its reaped children).
#: Each child says on a pipe when it has been busy 0.15 s of CPU, and the tree is read then (a
#: sleep of 0.25 s left the killed child under 0.1 s of CPU on a loaded machine).
FORKED_CHILD_CPU = """
import json, os, resource, signal, time
import greenprint as gp
from greenprint.meters._attribution import ProcessTree


def cpu_s():
    me, kids = (resource.getrusage(who) for who in
                (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def busy(seconds):
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass


found = {}
for how in ("own run", "killed"):
    tree = ProcessTree()
    first, kernel = tree.start(), cpu_s()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        if how == "own run":
            with gp.track("child", study="s", ledger="greenprint.db"):
                busy(0.15)
                os.write(write, b"x")
                busy(0.25)
        else:
            busy(0.15)
            os.write(write, b"x")
            busy(0.25)
        os._exit(0)
    os.read(read, 1)  # the child busy 0.15 s of CPU so far
    tree.sample()  # the child seen alive
    if how == "killed":
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    last = tree.sample()
    found[how] = [last.tree_cpu_s - first.tree_cpu_s, cpu_s() - kernel]
    tree.close()
print(json.dumps(found))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and getrusage's")
def test_a_forked_childs_cpu_is_in_its_parents_tree_once(tmp_path_factory):
    """A child forked by a tracked process that never execs (its own ``gp.track`` run inside,
    or killed half-way) is read while alive, then reaped: its CPU seconds count once in the
    parent's tree (the share of the machine's energy the parent's run gets), not twice (seen
    alive, then again in the parent's reaped-children time) and not zero, as the kernel
    counts them."""
    home = empty_home(tmp_path_factory, "forked-cpu")
    done = _script(home, FORKED_CHILD_CPU)
    assert done.returncode == 0, done.stderr[-3000:]
    for how, (tree_s, kernel_s) in json.loads(done.stdout.splitlines()[-1]).items():
        assert kernel_s > 0.1, how
        assert tree_s == pytest.approx(kernel_s, rel=0.1, abs=0.03), how


#: A run into a ledger on a full disk (a 400 kB tmpfs filled up after a first run), then the
#: run stopped as a user's ``finally`` would; argv[1]: the mount point.
FULL_DISK_START = """
import json, os, sys
import greenprint as gp

ledger = os.path.join(sys.argv[1], "greenprint.db")
with gp.track("first", study="s", ledger=ledger):
    pass
try:
    with open(os.path.join(sys.argv[1], "filler"), "wb") as f:
        while True:
            f.write(b"x" * 4096)
            f.flush()
except OSError:
    pass
run = gp.track("second", study="s", ledger=ledger)
raised = None
try:
    run.start()
except gp.GreenprintError as e:
    raised = type(e).__name__
run.stop()
print(json.dumps([raised, run.status, gp.current_run() is None]))
"""


def test_a_run_the_full_disk_refused_at_its_start_is_not_left_running(tmp_path_factory):
    """A ledger on a full disk refuses a new run: ``start`` raised ``LedgerError`` but left the
    run ``running`` with its meters open; a ``stop()`` in the user's ``finally`` then ended it
    ``finished`` and saved apart a run the ledger never had, with a warning naming 'no run with
    id ...'. Then the run read ``failed``. Since session 35 a ledger the process wrote to that
    fails mid-study is the measurement's failure: the run starts in the ledger's fallback file
    and ends there ``finished``, never a ``LedgerError`` in the user's code. The disk is a
    tmpfs mounted in a user namespace of its own (``unshare``)."""
    import greenprint as gp

    home = empty_home(tmp_path_factory, "full-disk")
    (home / "tmp").mkdir()
    (home / "script.py").write_text(FULL_DISK_START, encoding="utf-8")
    disk = home / "disk"
    disk.mkdir()
    mount = f"mount -t tmpfs -o size=400k tmpfs {disk} && exec {sys.executable} script.py {disk}"
    try:
        done = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount],
            cwd=home, env={**clean_env(), "TMPDIR": str(home / "tmp")}, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no unshare command to mount a small tmpfs")
    if "mount" in done.stderr and done.returncode != 0 and not done.stdout:
        pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [None, "finished", True]
    assert "no run with id" not in done.stderr
    (fallback,) = (home / "tmp").glob("greenprint-*/greenprint-unsaved-*.db")
    assert f"they are saved in {fallback}" in done.stderr
    assert [r.name for r in gp.Ledger(fallback, create=False).runs()] == ["second"]
