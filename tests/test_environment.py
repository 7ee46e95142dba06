"""Where a run ran: git state from one ``git status`` call, as ``rev-parse`` + ``status`` say."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from greenprint._environment import _git_state_v1, collect_environment, git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args):
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q")
    return path


def test_no_repository_and_no_commit_give_nothing(tmp_path, repo):
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_state(str(outside)) == (None, None)
    assert git_state(str(repo)) == (None, None)  # a repository without commits
    assert _git_state_v1(str(repo), timeout_s=2.0) == (None, None)


def test_commit_and_dirty_flag_match_the_two_call_answer(repo):
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "x")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(str(repo)) == (head, False) == _git_state_v1(str(repo), timeout_s=2.0)
    (repo / "notes.txt").write_text("untracked files do not make a tree dirty\n")
    assert git_state(str(repo)) == (head, False) == _git_state_v1(str(repo), timeout_s=2.0)
    (repo / "train.py").write_text("print(2)\n")
    assert git_state(str(repo)) == (head, True) == _git_state_v1(str(repo), timeout_s=2.0)
    _git(repo, "checkout", "-q", "--detach")
    assert git_state(str(repo)) == (head, True)


def test_collect_environment_records_the_working_directory(repo, monkeypatch):
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "a")
    monkeypatch.chdir(repo)
    env = collect_environment(command="python a.py", environ={"SLURM_JOB_ID": "42", "X": "1"})
    assert (env.git_commit, env.git_dirty) == (_git(repo, "rev-parse", "HEAD"), False)
    assert env.command == "python a.py" and env.env == {"SLURM_JOB_ID": "42"}


def test_python_version_is_what_platform_says():
    import platform

    from greenprint._environment import python_version

    assert python_version() == platform.python_version()


def test_run_environment_compares_and_shows_its_fields():
    from greenprint._environment import RunEnvironment

    a = RunEnvironment("h", "python t.py", "abc", False, "3.11.7", None, {"RANK": "0"})
    b = RunEnvironment("h", "python t.py", "abc", False, "3.11.7", None, {"RANK": "0"})
    assert a == b and a != RunEnvironment("h", "x", None, None, "3.11.7", None, {})
    assert repr(a).startswith("RunEnvironment(host='h', command='python t.py'")
    assert a.env == {"RANK": "0"} and a.git_dirty is False


def test_the_git_state_never_writes_the_index(repo):
    """Before: ``git status`` refreshed the index's stats of a touched file and wrote the index
    back under ``.git/index.lock``; killed at its timeout (a large repository, a loaded
    machine: the suite's own run left a lock in the checkout), the lock stayed and the user's
    next ``git commit`` failed. Now git runs without optional locks: it only reads, the answer
    is the same."""
    import os
    import time

    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "x")
    head = _git(repo, "rev-parse", "HEAD")
    index = repo / ".git" / "index"
    written = index.read_bytes()
    later = time.time() + 5.0  # the same content, other stats: a status would refresh them
    os.utime(repo / "train.py", (later, later))
    stamp = index.stat().st_mtime_ns
    assert git_state(str(repo)) == (head, False) == _git_state_v1(str(repo), timeout_s=2.0)
    assert index.stat().st_mtime_ns == stamp and index.read_bytes() == written
    assert not (repo / ".git" / "index.lock").exists()
    _git(repo, "status", "--porcelain")  # git itself, with its optional locks: it writes
    assert index.read_bytes() != written
