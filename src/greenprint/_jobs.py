"""Distributed jobs: which job a run belongs to, which process meters its node, containment.

A job (a ``torchrun`` or SLURM job, several processes on one or more nodes) is one price tag.
Each run of a job records:

* ``job_id``, the job key: ``GREENPRINT_JOB_ID``, else SLURM's job id (``<array job>_<task>`` for
  an array task), else ``TORCHELASTIC_RUN_ID`` (``torchrun --rdzv-id``; torchrun's default
  ``none`` becomes ``torchrun:<MASTER_ADDR>:<MASTER_PORT>``), else the Ray job id (only when Ray
  is already imported and initialised), else, in a process of an initialised
  ``torch.distributed`` group of more than one process started without a launcher's id
  (``torch.multiprocessing.spawn``, as in PyTorch's DDP tutorial), ``torch:<id>``, an id the
  first rank to start a run puts in the group's store for all of them (each
  ``init_process_group`` is a new job), whose local rank is their rank in the group when
  ``LOCAL_RANK`` is not set (one host; on several, give ``LOCAL_RANK`` or use a launcher:
  ``GREENPRINT_NODE_RANK`` alone leaves another host's ranks numbered from their group rank,
  none of them 0, so none meters that host). A run gets a job key only in a
  distributed job (more than one process: ``WORLD_SIZE``, ``SLURM_NTASKS`` or ``SLURM_NPROCS``
  above 1, or such a ``torch.distributed`` group) or when ``GREENPRINT_JOB_ID`` is set, so a
  sweep of runs one after another inside one batch job stays a sweep. A SLURM or ``torchrun``
  key names the attempt when the scheduler started the job again (:func:`restart_counts`):
  ``slurm:4242/requeue-1`` after one requeue, ``torchrun:<id>/restart-2`` after two restarts of
  the workers; each attempt is a job of its own, whose runs continue the earlier attempt's
  (:func:`greenprint._resume.link_restarted`);
* ``node_rank`` (``GREENPRINT_NODE_RANK``, ``SLURM_NODEID``, ``GROUP_RANK``, ``NODE_RANK``) and
  ``local_rank`` (``LOCAL_RANK``, ``SLURM_LOCALID``);
* ``node_meter``: whether this run meters its node for the job. On a node the job has to itself,
  local rank 0 meters the whole machine (``scope="machine"``) and the other ranks measure their
  own process only, as *parts* of it: the price tag counts the node once, through the node
  meter, and the other ranks' energy never again (their FPO and metrics are theirs). On a shared
  node (the job's allocation is smaller than the machine: ``SLURM_CPUS_ON_NODE`` or the CPU
  affinity below the machine's CPU count, or ``GREENPRINT_SHARED_NODE=1``) no rank meters the
  machine: each measures its own process tree (and GPUs) and the ranks add up;
* ``contained``: whether the run's measurement is inside its parent's: a run nested in another
  in the same process, or a child process on the same host inside the parent's process tree (or
  under a machine-scope parent) is; a run whose parent is on another host, or in a process
  outside the parent's tree, is not, and the price tag adds its cost to its parent's.

The host a run records is ``GREENPRINT_HOST`` when set (containers that share a host name),
else the kernel's host name.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from greenprint._job_links import EDGE_KINDS, job_notes, job_status, link_jobs

__all__ = [
    "HOST_ENV",
    "EDGE_KINDS",
    "JOB_ENV",
    "PARENT_TREE_ENV",
    "SHARED_NODE_ENV",
    "JobInfo",
    "is_shared_node",
    "job_info",
    "job_key",
    "job_notes",
    "job_status",
    "link_jobs",
    "node_host",
    "parent_tree_value",
    "restart_counts",
    "tree_contains",
]

JOB_ENV = "GREENPRINT_JOB_ID"
HOST_ENV = "GREENPRINT_HOST"
SHARED_NODE_ENV = "GREENPRINT_SHARED_NODE"
#: Exported by a running run with its parent variables: ``"<scope> <pid> <host>"``.
PARENT_TREE_ENV = "GREENPRINT_PARENT_TREE"

#: The key a ``torch.distributed`` group's store holds its job key under (:func:`_torch_job`).
_TORCH_JOB_KEY = "greenprint/job_id"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def node_host(environ: Mapping[str, str] | None = None) -> str:
    """The host a run records: ``GREENPRINT_HOST`` when set, else the kernel's host name."""
    env = os.environ if environ is None else environ
    host = env.get(HOST_ENV)
    if host:
        return host
    if hasattr(os, "uname"):
        # POSIX: the kernel's host name, as socket.gethostname() reads it, without importing
        # socket (a run's first start pays for every import)
        return os.uname().nodename
    import socket

    return socket.gethostname()


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.lstrip("-").isdigit():
            return int(value)
    return None


def _distributed(env: Mapping[str, str]) -> bool:
    size = _int(env, "WORLD_SIZE", "SLURM_NTASKS", "SLURM_NPROCS")
    return size is not None and size > 1


def restart_counts(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """How many times this process's job was started again, by SLURM and by ``torchrun``.

    SLURM's requeues of the job (``SLURM_RESTART_COUNT``) and ``torchrun``'s restarts of its
    workers (``TORCHELASTIC_RESTART_COUNT``, ``--max-restarts``); 0 when unset or unreadable.
    """
    env = os.environ if environ is None else environ
    requeues = _int(env, "SLURM_RESTART_COUNT")
    restarts = _int(env, "TORCHELASTIC_RESTART_COUNT")
    return max(requeues or 0, 0), max(restarts or 0, 0)


def _attempt(key: str, env: Mapping[str, str]) -> str:
    """A scheduler's job key naming the attempt when the job was started again."""
    requeues, restarts = restart_counts(env)
    if requeues:
        key += f"/requeue-{requeues}"
    if restarts:
        key += f"/restart-{restarts}"
    return key


def job_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The job key of this process (see the module), or ``None`` outside a distributed job."""
    env = os.environ if environ is None else environ
    explicit = env.get(JOB_ENV, "").strip()
    if explicit:
        return explicit
    if not _distributed(env):
        return _torch_job(env)
    array_job, array_task = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return _attempt(f"slurm:{array_job}_{array_task}", env)
    if env.get("SLURM_JOB_ID"):
        return _attempt(f"slurm:{env['SLURM_JOB_ID']}", env)
    elastic = env.get("TORCHELASTIC_RUN_ID")
    if elastic:
        if elastic != "none":
            return _attempt(f"torchrun:{elastic}", env)
        master = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
        return _attempt(f"torchrun:{master}", env)
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        return f"ray:{ray.get_runtime_context().get_job_id()}"
    return _torch_job(env)


def _torch_job(env: Mapping[str, str]) -> str | None:
    """The key of a ``torch.distributed`` group this process is in, started without a launcher.

    ``torch.multiprocessing.spawn`` sets no ``WORLD_SIZE`` and no job id. The group's store
    (each ``init_process_group`` makes a new one) gives every rank the same key: the first rank
    to ask sets a new one (``compare_set``, which waits for no other rank), so two trainings
    one after another on the same master port are two jobs. Where the store cannot (a store
    without ``compare_set``, or one that is gone: a run started after the rank that served it
    exited, which is then a job apart from the runs before): the ranks that one process started
    on this host, which share its pid and the group's master address and port. ``None`` when
    ``torch.distributed`` is not imported, not initialised, or has one process.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    if dist.get_world_size() < 2:
        return None
    try:
        store = dist.distributed_c10d._get_default_store()
        key = store.compare_set(_TORCH_JOB_KEY, "", uuid.uuid4().hex)
        return f"torch:{bytes(key).decode()}"
    except (AttributeError, RuntimeError, ValueError, UnicodeDecodeError):
        where = f"{env.get('MASTER_ADDR', '')}:{env.get('MASTER_PORT', '')}"
        return f"torch:{node_host(env)}:{os.getppid()}:{where}"


def _from_torch(job: str | None, env: Mapping[str, str]) -> bool:
    """Whether ``job`` is the key :func:`_torch_job` gave (not one set or a launcher's).

    Read from the key, not by asking the group's store again (a second round trip, which
    could fail where the first did not).
    """
    return job is not None and job.startswith("torch:") and not env.get(JOB_ENV, "").strip()


def is_shared_node(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the job has only part of this machine (so no rank meters the whole machine).

    ``GREENPRINT_SHARED_NODE`` (``1``/``0``) decides when set; else SLURM's CPUs on this node
    below the machine's CPU count, else a CPU affinity narrower than the machine.
    """
    env = os.environ if environ is None else environ
    setting = env.get(SHARED_NODE_ENV, "").strip().lower()
    if setting in _TRUE:
        return True
    if setting in _FALSE:
        return False
    machine = os.cpu_count() or 0
    slurm = _int(env, "SLURM_CPUS_ON_NODE")
    if slurm is not None:
        return slurm < machine
    affinity = getattr(os, "sched_getaffinity", None)
    return affinity is not None and len(affinity(0)) < machine


@dataclass(frozen=True)
class JobInfo:
    """What a run records about its job (see the module).

    Attributes:
        job_id: the job key, or ``None`` outside a job.
        node_rank: the node's rank in the job, or ``None``.
        local_rank: this process's rank on its node, or ``None``.
        node_meter: whether the run meters its node (``scope="machine"``).
        shared: whether the node is shared (each rank meters its own process).
    """

    job_id: str | None = None
    node_rank: int | None = None
    local_rank: int | None = None
    node_meter: bool = False
    shared: bool = False


def job_info(
    *,
    node_meter: bool | None = None,
    nested: bool = False,
    environ: Mapping[str, str] | None = None,
) -> JobInfo:
    """This process's job and whether a new run meters the node.

    Args:
        node_meter: an explicit choice (``gp.track(node_meter=...)``); ``None``: local rank 0 of
            a job on a node it has to itself, unless ``nested``.
        nested: the run is inside its parent's measurement (an enclosing run, or a parent
            process on this host): the outermost run of the node meters it.
        environ: the environment (default: ``os.environ``).
    """
    env = os.environ if environ is None else environ
    job = job_key(env)
    local = _int(env, "LOCAL_RANK", "SLURM_LOCALID")
    if local is None and _from_torch(job, env):
        # torch.multiprocessing.spawn sets no LOCAL_RANK: the ranks one process started on
        # this host are numbered from 0 there (else every rank would meter the machine)
        local = sys.modules["torch.distributed"].get_rank()
    node = _int(env, "GREENPRINT_NODE_RANK", "SLURM_NODEID", "GROUP_RANK", "NODE_RANK")
    if job is None:
        return JobInfo(node_meter=bool(node_meter))
    shared = is_shared_node(env)
    if node_meter is None:
        node_meter = not shared and not nested and local in (0, None)
    return JobInfo(job, node, local, bool(node_meter), shared)


def parent_tree_value(scope: str, pid: int, host: str) -> str:
    """The ``GREENPRINT_PARENT_TREE`` value a run exports to its child processes."""
    return f"{scope} {pid} {host}"


def tree_contains(value: str | None, *, host: str, pid: int | None = None) -> bool | None:
    """Whether a parent exported as ``value`` contains process ``pid`` (default: this one).

    Returns:
        ``True`` on the parent's host under a machine-scope parent or inside its process tree,
        ``False`` on another host or outside the tree, ``None`` when ``value`` is missing or
        unreadable.
    """
    parts = (value or "").split(" ", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    scope, root, parent_host = parts[0], int(parts[1]), parts[2]
    if parent_host != host:
        return False
    if scope == "machine":
        return True
    import psutil

    current = os.getpid() if pid is None else pid
    try:
        process = psutil.Process(current)
        if process.pid == root:
            return True
        return any(p.pid == root for p in process.parents())
    except psutil.Error:
        return None
