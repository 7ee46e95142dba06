"""Reading processes through /proc directly (Linux): the same figures as psutil, reused pids
told apart, kept descriptors bounded and robust, psutil not imported on the sampling path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from greenprint.meters import _attribution
from greenprint.meters._attribution import ProcessTree, _machine_times, _ProcStat

pytestmark = pytest.mark.skipif(not _attribution._PROCFS, reason="no /proc/<pid>/stat")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


@pytest.fixture
def spawn():
    """Start a process (``SLEEPER`` unless told); each one is killed and reaped after the test."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str] = SLEEPER, **kwargs) -> subprocess.Popen:
        started.append(subprocess.Popen(argv, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


@pytest.fixture
def tree():
    """A process tree of this process (not started); closed after the test."""
    tree = ProcessTree()
    yield tree
    tree.close()


@contextlib.contextmanager
def _child_of_a_new_thread():
    """Start a thread that starts a ``SLEEPER`` child and waits; yield the child once it runs."""
    gate = threading.Event()
    children: list[subprocess.Popen] = []

    def fork_and_wait() -> None:
        children.append(subprocess.Popen(SLEEPER))
        gate.wait()

    thread = threading.Thread(target=fork_and_wait)
    thread.start()
    try:
        while not children:
            time.sleep(0.01)
        yield children[0]
    finally:
        gate.set()
        thread.join()
        for p in children:
            p.kill()
            p.wait()


def _kept_stat_fds(pids: set[int]) -> set[str]:
    """Targets of this process's descriptors that are the /proc stat file of one of ``pids``."""
    return _kept_fds({f"/proc/{pid}/stat" for pid in pids})


def _open_files() -> dict[int, str]:
    """This process's open descriptors and the paths they name."""
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return out


def _kept_fds(wanted: set[str]) -> set[str]:
    """Which of the ``wanted`` paths this process holds open."""
    return set(_open_files().values()) & wanted


def test_a_process_reads_as_psutil_reads_it(spawn):
    proc = spawn(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "with open('/proc/self/comm', 'w') as fh: fh.write('a) b (c')\n"  # a hostile name
            "t = time.process_time()\n"
            "while time.process_time() - t < 0.3: pass\n"
            "print('ok', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
    opened = _ProcStat.open(proc.pid, keep=False)
    assert opened is not None
    _, (ppid, own_s, reaped_s, rss_bytes, started_s, threads) = opened
    ps = psutil.Process(proc.pid)
    times = ps.cpu_times()
    assert ppid == os.getpid()
    assert threads == ps.num_threads() == 1
    assert own_s == pytest.approx(times.user + times.system, abs=0.02)
    assert own_s >= 0.29
    assert reaped_s == pytest.approx(times.children_user + times.children_system, abs=0.02)
    assert rss_bytes == pytest.approx(ps.memory_info().rss, rel=0.1)
    boot_s = psutil.boot_time()
    assert boot_s + started_s == pytest.approx(ps.create_time(), abs=1.0)


def test_the_machine_times_are_psutils():
    busy, total = _machine_times(True)
    ps_busy, ps_total = _attribution._busy_and_total(psutil.cpu_times())
    assert 0 < busy <= total
    assert total == pytest.approx(ps_total, abs=0.5)  # read a moment apart
    assert busy == pytest.approx(ps_busy, abs=0.5)


@pytest.mark.parametrize("keep", [True, False])
def test_a_reaped_process_reads_as_gone(keep, spawn):
    proc = spawn()
    opened = _ProcStat.open(proc.pid, keep=keep)
    assert opened is not None
    handle = opened[0]
    assert handle.kept == int(keep)
    assert handle.read() is not None
    proc.kill()
    proc.wait()
    assert handle.read() is None
    assert handle.kept == 0  # its descriptor is released


def test_a_reused_pid_is_another_process(spawn):
    # a pid is reused once its process is reaped: a handle read by path tells them apart by
    # start time (here the "old" process is a handle whose start time does not match)
    proc = spawn()
    opened = _ProcStat.open(proc.pid, keep=False)
    assert opened is not None
    stale = _ProcStat(proc.pid, opened[1][4] - 5.0, -1)
    assert stale.read() is None
    assert opened[0].read() is not None


def test_a_descriptor_closed_behind_the_trees_back_is_read_by_path(spawn):
    opened = _ProcStat.open(spawn().pid, keep=True)
    assert opened is not None
    handle = opened[0]
    os.close(handle._fd)  # a library that closes every descriptor it did not open
    assert handle.read() is not None
    assert handle.kept == 0


def test_a_descriptor_number_reused_for_another_file_is_not_read_or_closed(tmp_path, spawn):
    opened = _ProcStat.open(spawn().pid, keep=True)
    assert opened is not None
    handle = opened[0]
    fd = handle._fd
    os.close(fd)
    other = tmp_path / "other"
    other.write_bytes(b"not a stat line")
    reused = os.open(other, os.O_RDONLY)
    assert reused == fd  # the lowest free number
    try:
        assert handle.read() is not None  # read by path, with its start time checked
        os.fstat(reused)  # still open: the tree did not close someone else's file
    finally:
        os.close(reused)


def test_a_big_tree_keeps_only_a_few_descriptors_and_counts_every_process(monkeypatch, spawn, tree):
    monkeypatch.setattr(_attribution, "KEPT_OPEN", 3)
    children = [spawn() for _ in range(5)]
    pids = {c.pid for c in children}
    tree.start()
    assert pids <= tree.last.pids
    assert tree._kept() <= 3
    assert len(_kept_stat_fds(pids)) < len(pids)  # the others are read by path
    children[0].kill()
    children[0].wait()
    sample = tree.sample()
    assert children[0].pid not in sample.pids
    assert pids - {children[0].pid} <= sample.pids
    assert tree._kept() <= 3
    tree.close()
    assert _kept_stat_fds(pids) == set()


def test_sampling_does_not_import_psutil():
    code = (
        "import sys, time\n"
        "from greenprint.meters._attribution import ProcessTree\n"
        "tree = ProcessTree()\n"
        "tree.start()\n"
        "time.sleep(0.05)\n"
        "tree.sample()\n"
        "print('psutil' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_new_child_is_timed_from_its_own_start(spawn, tree):
    tree.start()
    time.sleep(0.05)
    child = spawn()
    time.sleep(0.2)
    sample = tree.sample()
    assert child.pid in sample.pids
    entry = tree._procs[child.pid]
    assert entry.base_own == 0.0 and entry.base_reaped == 0.0


def test_a_child_forked_by_a_new_thread_is_found(tree):
    # the root's thread list is kept between walks; a new thread changes the thread count
    # (from the root's stat line), so its children file is read from the next walk on
    tree.start()
    with _child_of_a_new_thread() as child:
        assert child.pid in tree.sample().pids


def test_a_child_of_a_thread_that_replaced_another_is_found_within_a_few_walks(tree):
    # one thread ends and another starts between two walks: same thread count, so the cached
    # list misses the new thread until the list is read again (at most _RELIST_EVERY walks)
    gate = threading.Event()
    first = threading.Thread(target=gate.wait)
    first.start()
    tree.start()
    tree.sample()
    gate.set()
    first.join()
    with _child_of_a_new_thread() as child:
        found_at = None
        for walk in range(1, _attribution._RELIST_EVERY + 2):
            _attribution._PROC_LOADAVG.read()  # a walk happens when a pid was handed out
            tree._walked_at_pid = None
            if child.pid in tree.sample().pids:
                found_at = walk
                break
        assert found_at is not None and found_at <= _attribution._RELIST_EVERY


def test_closing_a_tree_releases_its_children_files():
    """In a process of its own: a tree of a pytest-xdist worker's process shares it with the
    trees and sampler threads other tests left alive there (their files, their descriptors'
    numbers reused), which made the descriptors this tree added unknowable (failed when the
    suite ran its files in another order)."""
    code = (
        "import os\n"
        "from greenprint.meters._attribution import ProcessTree\n"
        "def children_fds():\n"
        "    prefix = f'/proc/{os.getpid()}/task/'\n"
        "    found = set()\n"
        "    for fd in os.listdir('/proc/self/fd'):\n"
        "        try:\n"
        "            target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "        except OSError:\n"
        "            continue\n"
        "        if target.startswith(prefix) and target.endswith('/children'):\n"
        "            found.add(int(fd))\n"
        "    return found\n"
        "before = children_fds()\n"
        "tree = ProcessTree()\n"
        "tree.start()\n"
        "mine = children_fds() - before\n"
        "tree.close()\n"
        "print(len(before), len(mine), len(children_fds() & mine))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, mine, left = (int(v) for v in out.stdout.split())
    assert before == 0 and mine > 0  # the tree opened its children files
    assert left == 0  # and closing it released every one


def test_a_finished_run_keeps_no_proc_descriptor_open():
    code = (
        "import os, greenprint as gp\n"
        "with gp.track('x', ledger=False) as run:  # the run (and its meters) stays alive\n"
        "    pass\n"
        "me = os.getpid()\n"
        "held = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "    except OSError:\n"
        "        continue\n"
        "    if target.startswith(f'/proc/{me}/'):\n"
        "        held.append(target)\n"
        "print(held, run.status)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] finished"


def test_a_closed_tree_still_samples_by_path(tree):
    tree.start()
    tree.close()
    assert tree._kept() == 0
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    sample = tree.sample()
    assert os.getpid() in sample.pids
    assert sample.tree_cpu_s >= 0.15
    tree.close()  # a second close is harmless
