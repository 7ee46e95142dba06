"""Is a SQLite ledger on a network filesystem? SQLite's locks are not safe there.

SQLite relies on POSIX advisory locks (and, in WAL mode, on shared memory) that NFS, SMB/CIFS,
Lustre, GPFS, BeeGFS and FUSE filesystems such as sshfs implement partially or not at all across
machines: concurrent writers from several nodes can corrupt the file. On Linux the filesystem
type of the ledger's mount is read from ``/proc/self/mounts`` (the longest mount point that
contains the path) and a warning is logged once per ledger file. Elsewhere nothing is checked.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

__all__ = ["NETWORK_FS_TYPES", "filesystem_type", "is_network_fs", "warn_if_network_fs"]

logger = logging.getLogger(__name__)

#: Filesystem types (as ``/proc/mounts`` names them) on which SQLite's locking is unsafe.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "glusterfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.cephfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "9p",
        "afs",
        "panfs",
        "wekafs",
    }
)

_DEFAULT_MOUNTS = "/proc/self/mounts"
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _unescape(field: str) -> str:
    r"""A mount point as the kernel escapes it in ``/proc/mounts`` (``\040`` for a space...)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(
    path: str | os.PathLike[str], *, mounts: str | os.PathLike[str] | None = None
) -> str | None:
    """The type of the filesystem that holds ``path``, from a ``/proc/mounts``-style table.

    Args:
        path: a file or directory (it need not exist; its nearest existing parent counts).
        mounts: the mount table to read (default ``/proc/self/mounts``; tests pass a fake one).

    Returns:
        The type (``"ext4"``, ``"nfs4"``...), or ``None`` when the table cannot be read (not
        Linux, no ``/proc``).
    """
    table = Path(mounts if mounts is not None else _DEFAULT_MOUNTS)
    try:
        text = table.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    target = os.path.realpath(os.fspath(path))
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        # equal lengths: the later line is the mount on top
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)
    return None if best is None else best[1]


def is_network_fs(fstype: str | None) -> bool:
    """Whether a filesystem type is one on which SQLite's locking is unsafe across machines."""
    if not fstype:
        return False
    return fstype in NETWORK_FS_TYPES or fstype.split(".", 1)[0] in NETWORK_FS_TYPES


def warn_if_network_fs(
    path: str | os.PathLike[str], *, mounts: str | os.PathLike[str] | None = None
) -> bool:
    """Log a warning (once per file) when a SQLite ledger lives on a network filesystem.

    Args:
        path: the ledger file.
        mounts: the mount table to read (default ``/proc/self/mounts``).

    Returns:
        Whether the ledger is on a network filesystem.
    """
    fstype = filesystem_type(path, mounts=mounts)
    if not is_network_fs(fstype):
        return False
    key = os.path.realpath(os.fspath(path))
    with _warned_lock:
        if key in _warned:
            return True
        _warned.add(key)
    logger.warning(
        "greenprint: the SQLite ledger %s is on a %s network filesystem, where SQLite's locks "
        "are not safe for writers on several machines; use one SQLite file per node and "
        "'greenprint ledger merge', or a PostgreSQL ledger (see docs/ledger.md)",
        key,
        fstype,
    )
    return True
