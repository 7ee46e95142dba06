"""The tree walk through /proc children files finds what psutil's walk over every process finds."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil
import pytest

from greenprint.meters import _attribution, _tree_walk
from greenprint.meters._attribution import ProcessTree, _descendant_pids


def _spawn_nested(depth: int) -> subprocess.Popen:
    code = (
        "import subprocess, sys, time\n"
        "depth = int(sys.argv[1])\n"
        "if depth:\n"
        "    subprocess.Popen([sys.executable, '-c', sys.argv[2], str(depth - 1), sys.argv[2]])\n"
        "print('up', flush=True)\n"
        "time.sleep(30)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(depth), code], stdout=subprocess.PIPE, text=True
    )


def _wait_for(n: int, root: psutil.Process) -> None:
    deadline = time.monotonic() + 20
    while len(root.children(recursive=True)) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill_tree(root: psutil.Process) -> None:
    for p in root.children(recursive=True) + [root]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.skipif(not _attribution._PROC_CHILDREN, reason="no /proc/<pid>/task/*/children")
def test_the_children_files_find_every_descendant():
    me = psutil.Process()
    top = _spawn_nested(2)  # child -> grandchild -> great-grandchild
    try:
        root = psutil.Process(top.pid)
        _wait_for(2, root)
        # the spawned tree only: this pytest process may start or reap others meanwhile (a
        # fork server's child of another test in this worker), between two walks of its own
        expected = {p.pid for p in root.children(recursive=True)}
        assert len(expected) == 2
        assert set(_descendant_pids(top.pid)) == expected
        assert expected | {top.pid} <= set(_descendant_pids(me.pid))
    finally:
        _kill_tree(psutil.Process(top.pid))
        top.wait()


@pytest.mark.skipif(not _attribution._PROC_CHILDREN, reason="no /proc/<pid>/task/*/children")
def test_a_child_started_by_another_thread_is_found():
    me = psutil.Process()
    started: list[subprocess.Popen] = []
    thread = threading.Thread(
        target=lambda: started.append(
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        )
    )
    thread.start()
    thread.join()
    try:
        assert started[0].pid in _descendant_pids(me.pid)
    finally:
        started[0].kill()
        started[0].wait()


def test_without_children_files_psutil_walks(monkeypatch):
    # where _descendant_pids looks it up (the walk moved out of _attribution)
    monkeypatch.setattr(_tree_walk, "_PROC_CHILDREN", False)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in _descendant_pids(psutil.Process().pid)
    finally:
        child.kill()
        child.wait()


def test_a_tree_sample_counts_a_new_child_found_by_the_walk():
    tree = ProcessTree()
    tree.start()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.5: pass\nprint('burnt', flush=True)\n"
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # once it has burnt its 0.5 s of CPU, however long that took on a loaded machine
        assert child.stdout is not None and child.stdout.readline().strip() == "burnt"
        sample = tree.sample()
        assert child.pid in sample.pids
        assert sample.tree_cpu_s >= 0.4  # the child's CPU time, counted from its start
    finally:
        child.kill()
        child.wait()
