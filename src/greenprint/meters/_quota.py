"""The CPU time a container (or any cgroup) may use: its CPU quota, in CPUs.

A container started with ``docker run --cpus=2`` (or a Kubernetes CPU limit, a systemd
``CPUQuota=``) sees every CPU of its host (``os.cpu_count()``, ``/proc/stat``) but may use
only two CPUs' worth of time per second. The kernel's interfaces:

* cgroup v2: ``cpu.max`` in the cgroup's directory, ``"$MAX $PERIOD"`` (µs): the group may run
  ``$MAX`` in each ``$PERIOD``; ``"max"`` is no limit (the default, ``"max 100000"``). The root
  cgroup has no ``cpu.max``; every ancestor's limit applies to its subtree, so the effective
  quota is the smallest along the path. The path is the ``0::<path>`` line of
  ``/proc/self/cgroup``; inside a container with its own cgroup namespace the path is ``/`` and
  the container's cgroup is mounted as ``/sys/fs/cgroup`` itself, ``cpu.max`` included.
* cgroup v1: ``cpu.cfs_quota_us`` (``-1``: no limit) over ``cpu.cfs_period_us`` in the ``cpu``
  hierarchy (``/sys/fs/cgroup/cpu/<path>``, the path from the ``cpu`` line of
  ``/proc/self/cgroup``; in a container, the hierarchy's root is its own cgroup).
* The CPUs the cgroup may run on (``docker run --cpuset-cpus=0,1``): v2
  ``cpuset.cpus.effective``, v1 ``cpuset.effective_cpus`` in the ``cpuset`` hierarchy, a CPU
  list (``"0-3,8"``). Fewer CPUs than the machine has is a limit too.

:func:`cpu_quota` reads them (``/sys/fs/cgroup`` under ``$GREENPRINT_CGROUP_ROOT``); the CPU
estimate uses the quota to share the machine's idle floor (see
:class:`~greenprint.meters._estimate.CpuEstimateMeter`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from greenprint.meters._where import resolve_cgroup_root

__all__ = ["CpuQuota", "cpu_quota", "parse_cpu_list", "parse_cpu_max"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CpuQuota:
    """A cgroup's CPU limit.

    Attributes:
        cpus: CPU-seconds it may use per second (``2.0`` for ``docker run --cpus=2``).
        source: where it was read, e.g. ``"cgroup v2 cpu.max 200000 100000"``.
    """

    cpus: float
    source: str

    @property
    def text(self) -> str:
        """``"2 CPUs (cgroup v2 cpu.max 200000 100000)"``."""
        return f"{self.cpus:.3g} CPU{'' if self.cpus == 1 else 's'} ({self.source})"


def parse_cpu_max(text: str) -> float | None:
    """CPUs from the text of a cgroup v2 ``cpu.max`` (``"200000 100000"`` -> 2.0).

    Returns:
        ``None`` for no limit (``"max ..."``) or text that is not ``"$MAX $PERIOD"``.

    Example:
        >>> parse_cpu_max("150000 100000"), parse_cpu_max("max 100000")
        (1.5, None)
    """
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cpu_list(text: str) -> int | None:
    """How many CPUs a kernel CPU list names (``"0-3,8"`` -> 5), or ``None`` if it is not one.

    Example:
        >>> parse_cpu_list("0-3,8"), parse_cpu_list(""), parse_cpu_list("x")
        (5, None, None)
    """
    count = 0
    for part in text.strip().split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            return None
        if last < first:
            return None
        count += last - first + 1
    return count or None


def _read(path: Path | str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _paths(self_cgroup: str, controller: str | None) -> list[PurePosixPath]:
    """The cgroup paths of this process in the v2 hierarchy (``None``) or a v1 controller's."""
    out = []
    for line in self_cgroup.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        names = controllers.split(",")
        if (controller is None and controllers == "") or (controller in names):
            out.append(PurePosixPath(path.strip() or "/"))
    return out


def _along(base: Path, path: PurePosixPath) -> list[Path]:
    """``base`` joined with ``path`` and each of its ancestors, deepest first, then ``base``."""
    rel = path.relative_to("/") if path.is_absolute() else path
    dirs = [base / rel]
    dirs += [base / p for p in rel.parents if str(p) != "."]
    if base not in dirs:
        dirs.append(base)
    return dirs


def _cpuset(dirs: list[Path], name: str, version: str) -> list[CpuQuota]:
    """The CPUs of the deepest of ``dirs`` that has the file ``name`` (it has its ancestors')."""
    for d in dirs:
        raw = _read(d / name)
        if raw is None:
            continue
        count = parse_cpu_list(raw)
        return [] if count is None else [CpuQuota(float(count), f"{version} {name} {raw.strip()}")]
    return []


def cpu_quota(
    cgroup_root: str | os.PathLike[str] | None = None, self_cgroup: str | None = None
) -> CpuQuota | None:
    """This process's CPU quota, the smallest along its cgroup path, or ``None`` (no limit).

    Never raises: unreadable files count as no limit.

    Args:
        cgroup_root: where cgroups are mounted (default: :func:`resolve_cgroup_root`).
        self_cgroup: the text of ``/proc/self/cgroup`` (default: read it).
    """
    root = resolve_cgroup_root(cgroup_root)
    text = self_cgroup if self_cgroup is not None else (_read("/proc/self/cgroup") or "")
    found: list[CpuQuota] = []
    if (root / "cgroup.controllers").exists():  # v2 (unified)
        for path in _paths(text, None) or [PurePosixPath("/")]:
            for d in _along(root, path):
                raw = _read(d / "cpu.max")
                cpus = parse_cpu_max(raw) if raw is not None else None
                if cpus is not None:
                    found.append(CpuQuota(cpus, f"cgroup v2 cpu.max {raw.strip() if raw else ''}"))
            found += _cpuset(_along(root, path), "cpuset.cpus.effective", "cgroup v2")
    else:  # v1: the cpu controller's hierarchy
        base = root / "cpu"
        for path in _paths(text, "cpu") or [PurePosixPath("/")]:
            for d in _along(base, path):
                raw_q, raw_p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                try:
                    q, p = int((raw_q or "").strip()), int((raw_p or "").strip())
                except ValueError:
                    continue
                if q > 0 and p > 0:
                    found.append(CpuQuota(q / p, f"cgroup v1 cpu.cfs_quota_us {q} / period {p}"))
        for path in _paths(text, "cpuset") or [PurePosixPath("/")]:
            found += _cpuset(_along(root / "cpuset", path), "cpuset.effective_cpus", "cgroup v1")
    if not found:
        return None
    smallest = min(found, key=lambda f: f.cpus)  # a cpu.max wins a tie: found first
    logger.debug("CPU quota: %.3g CPUs (%s)", smallest.cpus, smallest.source)
    return smallest
