"""Process-tree attribution with real processes: busy vs idle, children that exit, orphans."""

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from _wait import wait_until
from greenprint.meters import CpuEstimateMeter, ProcessTree, RamEstimateMeter, _attribution

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


@pytest.fixture(
    autouse=True,
    params=[
        pytest.param(
            "procfs",
            marks=pytest.mark.skipif(not _attribution._PROCFS, reason="no /proc/<pid>/stat"),
        ),
        "psutil",
    ],
)
def backend(request, monkeypatch):
    """Every test reads the tree both ways: /proc directly (Linux) and through psutil."""
    monkeypatch.setattr(_attribution, "_PROCFS", request.param == "procfs")
    return request.param


def spawn(code: str, *, stdin: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_busy_child_gets_the_cpu_energy_an_idle_one_does_not():
    # Both children say when they are up: their Python start-up (~0.03 s of CPU, seconds of
    # wall on a loaded machine) is before the meters' baseline, not charged to the idle one.
    busy = spawn("print('up', flush=True)\n" + BURN.format(s=60.0))
    idle = spawn("import time; print('up', flush=True); time.sleep(60)")
    try:
        assert busy.stdout.readline().strip() == idle.stdout.readline().strip() == "up"
        trees = {"busy": ProcessTree(busy.pid), "idle": ProcessTree(idle.pid)}
        meters = {
            k: CpuEstimateMeter(tdp_w=100.0, provenance="estimate:test", tree=t)
            for k, t in trees.items()
        }
        for m in meters.values():
            m.start()
        # until the busy child has had 0.3 s of CPU since the baseline, not a fixed wall time:
        # a third test worker's load or a busier machine only makes this wait longer (it was
        # 1 s of wall, and a loaded machine gave the busy child 0.09 s of CPU in it)
        cpu = psutil.Process(busy.pid)
        base = sum(cpu.cpu_times()[:2])
        wait_until(lambda: sum(cpu.cpu_times()[:2]) - base >= 0.3, 60, every_s=0.05)
        readings = {k: m.read() for k, m in meters.items()}
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    assert trees["busy"].last.tree_cpu_s > 0.1  # a busy loop, even on a loaded machine
    assert trees["idle"].last.tree_cpu_s < 0.05
    assert trees["busy"].last.cpu_share > 0.05
    # both see the same machine; only the busy tree is charged for it
    for r in readings.values():
        assert 0 <= r.process_j <= r.machine_j
    # (the idle child's is 0 or nearly: its start-up is before the baseline)
    assert readings["busy"].process_j > 0
    assert readings["busy"].process_j > 10 * readings["idle"].process_j
    assert readings["idle"].process_j < 0.05 * readings["idle"].machine_j


def test_a_child_reaped_between_samples_keeps_its_cpu_time():
    # the child is never sampled: its time arrives through the parent's children_* times
    root = spawn(
        f"""
        import subprocess, sys, time
        subprocess.run([sys.executable, "-c", {BURN.format(s=0.5)!r}], check=True)
        print("reaped", flush=True)
        time.sleep(30)
        """
    )
    try:
        tree = ProcessTree(root.pid)
        tree.start()
        assert root.stdout.readline().strip() == "reaped"
        sample = tree.sample()
    finally:
        root.kill()
        root.wait()
    # the 0.5 s burnt, less the kernel's rounding of the children's user and system times down
    # to a clock tick each (0.49 read once: 0.5 s and the interpreter's start, both rounded)
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    assert sample.tree_cpu_s >= 0.5 - 2 * tick_s


def test_exited_processes_keep_their_time_and_are_not_counted_twice():
    root = spawn(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {BURN.format(s=0.6)!r}])
        print(child.pid, flush=True)
        child.wait()
        print("reaped", flush=True)
        time.sleep(0.3)
        """
    )
    tree = ProcessTree(root.pid)
    tree.start()
    child_pid = int(root.stdout.readline())
    seen = False
    while True:  # sample while the child runs, as the tracker does every second
        time.sleep(0.1)
        sample = tree.sample()
        seen = seen or child_pid in sample.pids
        if root.poll() is not None or "reaped" in (line := root.stdout.readline()):
            break
    tree.sample()  # the child has been reaped by the root, which is alive
    root.wait()  # the root exits and is reaped by us: outside the tree
    final = tree.sample()
    assert seen
    assert root.pid not in final.pids
    # the child's 0.6 s plus two Python start-ups, but never twice the child's time
    assert 0.6 <= final.tree_cpu_s < 1.15, line


def test_an_orphan_that_was_seen_keeps_its_cpu_time():
    # the root starts a child in a new session and exits: the child is re-parented outside
    # the tree, and still counted, up to its last sample
    root = spawn(
        f"""
        import subprocess, sys, time
        code = "import time; time.sleep(0.5)\\n" + {BURN.format(s=0.4)!r}
        child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(0.3)
        """
    )
    tree = ProcessTree(root.pid)
    tree.start()
    orphan = int(root.stdout.readline())
    seen = orphan in tree.sample().pids  # while the root is alive
    root.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = orphan in tree.sample().pids or seen
        try:
            if psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    final = tree.sample()
    if not seen:
        pytest.skip("the orphan exited before it could be sampled (loaded machine)")
    assert final.tree_cpu_s >= 0.3  # at most one sampling interval of its 0.4 s is lost


def test_ram_share_is_the_trees_rss_over_installed_ram():
    tree = ProcessTree()
    meter = RamEstimateMeter(ram_gb=tree.total_ram_bytes / 2**30, tree=tree)
    meter.start()
    big = bytearray(200 * 2**20)  # 200 MB resident
    big[::4096] = b"x" * len(big[::4096])
    time.sleep(0.2)
    reading = meter.read()
    sample = tree.last
    assert 0 < sample.ram_share < 1
    assert reading.process_j < reading.machine_j
    assert reading.process_j == pytest.approx(meter.power_w * sample.ram_share_s, rel=1e-9)
    del big


def test_a_tree_whose_root_does_not_exist_attributes_nothing():
    proc = spawn("pass")
    proc.wait()
    tree = ProcessTree(proc.pid)
    tree.start()
    time.sleep(0.05)
    sample = tree.sample()
    assert sample.tree_cpu_s == 0 and sample.pids == frozenset()
    assert 0 <= sample.machine_util <= 1


def test_a_child_started_after_quiet_samples_is_found_at_the_next_sample():
    # the walk of the machine's process table is skipped while no process is created; a child
    # forked after many such quiet samples must still join the tree at once
    root = spawn(
        """
        import subprocess, sys
        sys.stdin.readline()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        print(child.pid, flush=True)
        sys.stdin.readline()
        """,
        stdin=subprocess.PIPE,
    )
    tree = ProcessTree(root.pid)
    tree.start()
    try:
        for _ in range(5):
            assert tree.sample().pids == {root.pid}
        assert root.stdin is not None
        root.stdin.write("go\n")
        root.stdin.flush()
        child_pid = int(root.stdout.readline())
        assert tree.sample().pids == {root.pid, child_pid}
    finally:
        for p in psutil.Process(root.pid).children(recursive=True):
            p.kill()
        root.kill()
        root.wait()
