"""Which NVIDIA GPUs this process may open, told without NVML (for the GPU estimate).

The driver's listing (``/proc/driver/nvidia/gpus/*/information``) names every GPU of the
machine; a job may open only some of them. With NVML, a GPU a device cgroup denies answers
``NVML_ERROR_NO_PERMISSION`` (see :func:`greenprint.meters._nvml_devices.open_handles`); without it,
this module reads what the kernel and the container runtime leave readable, GPU by GPU through
its device file ``/dev/nvidiaN`` (character device 195:N, ``N`` the listing's ``Device Minor``):

1. cgroup v1: the ``devices.list`` of this process's cgroup in the ``devices`` hierarchy
   (``/sys/fs/cgroup/devices/<path from /proc/self/cgroup>/devices.list``, else the hierarchy's
   root, which is the container's own cgroup in a container). ``a *:* rwm`` allows every device
   (an unconstrained cgroup); otherwise only the listed ones are allowed: a GPU counts when an
   entry ``c 195:N`` or ``c 195:*`` gives read and write access (Slurm's ``ConstrainDevices``
   writes ``c 195:N rwm`` for each GPU of the job).
2. cgroup v2 keeps its device rules in an eBPF program attached to the cgroup, which no file
   shows. A container runtime, though, creates the device files of the GPUs it passes in and no
   others: when ``/dev`` has some ``nvidiaN`` files and lacks others, the GPUs without one are
   not this container's.
3. Otherwise every GPU the driver lists is counted, and the note says why.

Never raises: what cannot be read is unknown, and unknown means "every GPU".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from greenprint.meters._where import dev_path, resolve_cgroup_root

__all__ = ["NVIDIA_MAJOR", "allowed_minors", "v1_devices_list"]

#: The character-device major of ``/dev/nvidiaN`` (``nvidiactl`` is 195:255).
NVIDIA_MAJOR = 195


def _read(path: Path | str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def v1_devices_list(
    cgroup_root: str | os.PathLike[str] | None = None, self_cgroup: str | None = None
) -> tuple[str, Path] | None:
    """``(content, path)`` of this process's cgroup v1 ``devices.list``, or ``None``.

    Args:
        cgroup_root: where cgroups are mounted (default: :func:`resolve_cgroup_root`).
        self_cgroup: the text of ``/proc/self/cgroup`` (default: read it).
    """
    root = resolve_cgroup_root(cgroup_root) / "devices"
    text = self_cgroup if self_cgroup is not None else _read("/proc/self/cgroup")
    candidates = []
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "devices" in parts[1].split(","):
            candidates.append(root / parts[2].strip().lstrip("/") / "devices.list")
    candidates.append(root / "devices.list")  # a container's own cgroup, mounted as the root
    for path in candidates:
        content = _read(path)
        if content is not None:
            return content, path
    return None


def _v1_allowed(content: str) -> set[int] | None:
    """The NVIDIA minors a ``devices.list`` allows read-write; ``None``: every device."""
    allowed: set[int] = set()
    for line in content.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        kind, numbers, access = fields
        if kind == "a":
            return None  # default allow: the list shows no exceptions
        major, _, minor = numbers.partition(":")
        if kind != "c" or major not in ("*", str(NVIDIA_MAJOR)) or not {"r", "w"} <= set(access):
            continue
        if minor == "*":
            return None
        if minor.isdigit():
            allowed.add(int(minor))
    return allowed


def allowed_minors(
    minors: Sequence[int | None],
    *,
    cgroup_root: str | os.PathLike[str] | None = None,
    self_cgroup: str | None = None,
) -> tuple[set[int] | None, str]:
    """Which of the GPUs' device minors this process may open, and how that is known.

    Args:
        minors: each listed GPU's ``Device Minor`` (``None`` where the listing has none).
        cgroup_root: where cgroups are mounted (default: :func:`resolve_cgroup_root`).
        self_cgroup: the text of ``/proc/self/cgroup`` (default: read it).

    Returns:
        ``(allowed, how)``: the allowed minors, or ``None`` for every GPU; ``how`` says what
        decided it (``"the device cgroup (v1 devices.list) allows /dev/nvidia2"``, ``"/dev has
        nvidia2 only (a container's)"``, ``"device cgroup rules not readable (cgroup v2)"``).
    """
    known = [m for m in minors if m is not None]
    found = v1_devices_list(cgroup_root, self_cgroup)
    if found is not None:
        allowed = _v1_allowed(found[0])
        if allowed is None:
            return None, "the device cgroup (v1 devices.list) allows every GPU"
        allowed &= set(known)
        names = ", ".join(f"/dev/nvidia{m}" for m in sorted(allowed)) or "none of them"
        return allowed, f"the device cgroup (v1 devices.list) allows {names}"
    present = {m for m in known if os.path.exists(dev_path(f"nvidia{m}"))}
    if present and present != set(known):
        names = ", ".join(f"nvidia{m}" for m in sorted(present))
        return present, f"/dev has {names} only (a container's)"
    if (resolve_cgroup_root(cgroup_root) / "cgroup.controllers").exists():
        return None, "device cgroup rules not readable (cgroup v2)"
    return None, "no device cgroup read"
