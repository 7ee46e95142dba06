"""What a run records about where it ran: host, command, git state, versions, scheduler ids.

Everything here is local: ``socket.gethostname()`` reads the kernel's host name (no lookup;
``GREENPRINT_HOST`` overrides it), git is
asked about the working directory only, and torch's version is recorded only when torch is already
imported (greenprint never imports it for this).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from greenprint._jobs import node_host

__all__ = [
    "GIT_STATE_TTL_S",
    "SCHEDULER_VARIABLES",
    "RunEnvironment",
    "cached_git_state",
    "collect_environment",
    "git_state",
    "python_version",
]

logger = logging.getLogger(__name__)

#: Environment variables recorded when present: batch schedulers, cluster and device selection.
SCHEDULER_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_PROCID",
    "SLURM_NODEID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "SLURM_CPUS_ON_NODE",
    "SLURM_JOB_NAME",
    "SLURM_CLUSTER_NAME",
    "SLURM_RESTART_COUNT",
    "PBS_JOBID",
    "LSB_JOBID",
    "JOB_ID",
    "SGE_TASK_ID",
    "FLUX_JOB_ID",
    "KUBERNETES_SERVICE_HOST",
    "CUDA_VISIBLE_DEVICES",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "GREENPRINT_JOB_ID",
)


class RunEnvironment:
    """Where and how a run was started.

    A plain slotted class, read-only by convention (defining a frozen dataclass costs about
    0.5 ms of CPU, a run's first start pays it). Compared and shown field by field.
    """

    __slots__ = _FIELDS = (
        "host",
        "command",
        "git_commit",
        "git_dirty",
        "python_version",
        "torch_version",
        "env",
    )

    def __init__(
        self,
        host: str,
        command: str,
        git_commit: str | None,
        git_dirty: bool | None,
        python_version: str,
        torch_version: str | None,
        env: dict[str, str],
    ) -> None:
        self.host = host
        self.command = command
        self.git_commit = git_commit
        self.git_dirty = git_dirty
        self.python_version = python_version
        self.torch_version = torch_version
        self.env = env

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunEnvironment):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # env is a dict

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._FIELDS)
        return f"RunEnvironment({fields})"


def _git_env() -> dict[str, str]:
    """This process's environment with git's optional locks off (``GIT_OPTIONAL_LOCKS=0``).

    ``git status`` refreshes the index's file stats and writes them back under
    ``.git/index.lock``, an optional lock. A status slower than its timeout (a large
    repository, a loaded machine) is killed: a lock it held stays, and the user's next
    ``git commit`` fails on it ("index.lock: File exists"; a report run of the suite left one).
    Without the optional locks git only reads (as editors' background status does); gits
    before 2.15 ignore the variable.
    """
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


def git_state(cwd: str | None = None, *, timeout_s: float = 2.0) -> tuple[str | None, bool | None]:
    """The working directory's git commit and whether the tree has uncommitted changes.

    One ``git status --porcelain=v2 --branch`` call gives both (the commit on its
    ``# branch.oid`` line, a change on any other line); a git older than 2.11, which lacks
    porcelain v2, is asked with ``rev-parse`` and ``status`` instead.

    Returns ``(None, None)`` outside a git checkout, in a repository without commits, or when
    git is missing or slow. Git only reads: it never takes the index's lock (:func:`_git_env`).
    """
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    if status.returncode != 0:
        if "porcelain" in status.stderr:  # git < 2.11
            return _git_state_v1(cwd, timeout_s=timeout_s)
        return None, None
    commit: str | None = None
    dirty = False
    for line in status.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :].strip()
            commit = oid if oid and oid != "(initial)" else None
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None:  # no commit yet: as `git rev-parse HEAD` failing
        return None, None
    return commit, dirty


def _git_state_v1(cwd: str | None, *, timeout_s: float) -> tuple[str | None, bool | None]:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


#: How long a working directory's git state is reused, in s: runs started one after another
#: (a sweep of short trials) ask git once, yet an edit made between runs is seen soon after.
GIT_STATE_TTL_S = 30.0
_git_cache: dict[str, tuple[float, tuple[str | None, bool | None]]] = {}
_git_lock = threading.Lock()


def cached_git_state(cwd: str | None = None) -> tuple[str | None, bool | None]:
    """:func:`git_state` of ``cwd`` (default: the working directory), reused for 30 s.

    ``(None, None)`` when the working directory was deleted (``os.getcwd`` fails): the rest
    of the run's environment is still recorded.
    """
    try:
        key = os.path.abspath(cwd or os.curdir)
    except OSError as e:
        logger.debug("greenprint: git state not recorded: the working directory: %s", e)
        return None, None
    now = time.monotonic()
    with _git_lock:
        hit = _git_cache.get(key)
        if hit is not None and now - hit[0] < GIT_STATE_TTL_S:
            return hit[1]
    state = git_state(key)
    with _git_lock:
        _git_cache[key] = (now, state)
    return state


def python_version() -> str:
    """``platform.python_version()`` without importing ``platform`` (1.3 ms of CPU).

    CPython's version is the first word of ``sys.version``, with ``.0`` added when it has two
    parts, as ``platform`` parses it; other interpreters ask ``platform``.
    """
    if sys.implementation.name != "cpython":
        import platform  # rare path

        return platform.python_version()
    version = sys.version.split()[0]
    return version if version.count(".") >= 2 else version + ".0"


def collect_environment(
    *, command: str | None = None, environ: Mapping[str, str] | None = None
) -> RunEnvironment:
    """Collect the run's environment (cheap: one git call at most, no network)."""
    env = os.environ if environ is None else environ
    torch = sys.modules.get("torch")
    commit, dirty = cached_git_state()
    return RunEnvironment(
        host=node_host(env),
        command=command if command is not None else shlex.join(sys.argv),
        git_commit=commit,
        git_dirty=dirty,
        python_version=python_version(),
        torch_version=getattr(torch, "__version__", None) if torch is not None else None,
        env={k: env[k] for k in SCHEDULER_VARIABLES if k in env},
    )
