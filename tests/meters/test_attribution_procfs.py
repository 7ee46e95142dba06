"""Reading processes through /proc directly (Linux): the same figures as psutil, reused pids
told apart, kept descriptors bounded and robust, psutil not imported on the sampling path."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from greenprint.meters import _attribution
from greenprint.meters._attribution import ProcessTree, _machine_times, _ProcStat

pytestmark = pytest.mark.skipif(not _attribution._PROCFS, reason="no /proc/<pid>/stat")

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def _kept_stat_fds(pids: set[int]) -> set[str]:
    """Targets of this process's descriptors that are the /proc stat file of one of ``pids``."""
    wanted = {f"/proc/{pid}/stat" for pid in pids}
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target in wanted:
            out.add(target)
    return out


def test_a_process_reads_as_psutil_reads_it():
    proc = subprocess.Popen(
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
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        opened = _ProcStat.open(proc.pid, keep=False)
        assert opened is not None
        _, (ppid, own_s, reaped_s, rss_bytes, started_s) = opened
        ps = psutil.Process(proc.pid)
        times = ps.cpu_times()
        assert ppid == os.getpid()
        assert own_s == pytest.approx(times.user + times.system, abs=0.02)
        assert own_s >= 0.29
        assert reaped_s == pytest.approx(times.children_user + times.children_system, abs=0.02)
        assert rss_bytes == pytest.approx(ps.memory_info().rss, rel=0.1)
        boot_s = psutil.boot_time()
        assert boot_s + started_s == pytest.approx(ps.create_time(), abs=1.0)
    finally:
        proc.kill()
        proc.wait()


def test_the_machine_times_are_psutils():
    busy, total = _machine_times(True)
    ps_busy, ps_total = _attribution._busy_and_total(psutil.cpu_times())
    assert 0 < busy <= total
    assert total == pytest.approx(ps_total, abs=0.5)  # read a moment apart
    assert busy == pytest.approx(ps_busy, abs=0.5)


@pytest.mark.parametrize("keep", [True, False])
def test_a_reaped_process_reads_as_gone(keep):
    proc = subprocess.Popen(SLEEPER)
    opened = _ProcStat.open(proc.pid, keep=keep)
    assert opened is not None
    handle = opened[0]
    assert handle.kept is keep
    assert handle.read() is not None
    proc.kill()
    proc.wait()
    assert handle.read() is None
    assert handle.kept is False  # its descriptor is released


def test_a_reused_pid_is_another_process():
    # a pid is reused once its process is reaped: a handle read by path tells them apart by
    # start time (here the "old" process is a handle whose start time does not match)
    proc = subprocess.Popen(SLEEPER)
    try:
        opened = _ProcStat.open(proc.pid, keep=False)
        assert opened is not None
        stale = _ProcStat(proc.pid, opened[1][4] - 5.0, -1)
        assert stale.read() is None
        assert opened[0].read() is not None
    finally:
        proc.kill()
        proc.wait()


def test_a_descriptor_closed_behind_the_trees_back_is_read_by_path():
    proc = subprocess.Popen(SLEEPER)
    try:
        opened = _ProcStat.open(proc.pid, keep=True)
        assert opened is not None
        handle = opened[0]
        os.close(handle._fd)  # a library that closes every descriptor it did not open
        assert handle.read() is not None
        assert handle.kept is False
    finally:
        proc.kill()
        proc.wait()


def test_a_descriptor_number_reused_for_another_file_is_not_read_or_closed(tmp_path):
    proc = subprocess.Popen(SLEEPER)
    try:
        opened = _ProcStat.open(proc.pid, keep=True)
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
    finally:
        proc.kill()
        proc.wait()


def test_a_big_tree_keeps_only_a_few_descriptors_and_counts_every_process(monkeypatch):
    monkeypatch.setattr(_attribution, "KEPT_OPEN", 2)
    children = [subprocess.Popen(SLEEPER) for _ in range(5)]
    tree = ProcessTree()
    try:
        tree.start()
        pids = {c.pid for c in children}
        assert pids <= tree.last.pids
        assert len(_kept_stat_fds(pids | {os.getpid()})) == 2
        children[0].kill()
        children[0].wait()
        sample = tree.sample()
        assert children[0].pid not in sample.pids
        assert pids - {children[0].pid} <= sample.pids
    finally:
        for c in children:
            c.kill()
            c.wait()
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


def test_a_new_child_is_timed_from_its_own_start():
    tree = ProcessTree()
    tree.start()
    time.sleep(0.05)
    child = subprocess.Popen(SLEEPER)
    try:
        time.sleep(0.2)
        sample = tree.sample()
        assert child.pid in sample.pids
        entry = tree._procs[child.pid]
        assert entry.base_own == 0.0 and entry.base_reaped == 0.0
    finally:
        child.kill()
        child.wait()
        tree.close()
