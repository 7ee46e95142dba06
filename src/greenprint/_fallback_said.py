"""Which process of a study says that runs fall back to a fallback file: one, not each worker.

The processes of a search share their ledger's fallback file (:mod:`greenprint._run_fallback`),
and each said the same warning (a ``Pool(4)``'s workers: 4 copies of it, and as many lines at
their exit). A marker beside the file (``greenprint-unsaved-<key>.said``, in the user's 0700
folder) is made with ``O_EXCL`` by the process that says it, and holds its process id: another
process stays silent while that one lives in its process group (the workers of one study, which
a shell starts in a group of its own), and says it otherwise (a later study, a study started
beside it from another shell). A pool's worker that said it also leaves its parent's id: the
workers of the study's later pools (the same parent, still alive) stay silent though it has
exited (a study of 30 pools in a row said it 30 times). The process that finds the ledger taking
runs again removes the marker and says so, once. Where no marker can be made, each process says
it, as before.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from greenprint._forks import multiprocessing_child

__all__ = ["first_to_say", "marker", "unmark"]


def marker(path: Path) -> Path:
    """The marker of fallback file ``path``."""
    return path.with_suffix(".said")


def first_to_say(path: Path) -> bool | None:
    """Whether this process says that runs fall back to ``path``, making its marker.

    Returns:
        True: say it (the marker is this process's now); None: say it (no marker could be
        made); False: another live process of this study said it.
    """
    said = marker(path)
    for _ in range(3):
        try:
            fd = os.open(said, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if _said_by_this_study(said):
                return False
            # said by a process gone, or of another study: this one says it, taking the marker
            taken = said.with_name(f"{said.name}.{os.getpid()}")
            try:
                os.replace(said, taken)
            except OSError:  # taken by another process first: tried again
                continue
            if _said_by_this_study(taken):  # another worker's, made meanwhile: put back
                with contextlib.suppress(OSError):
                    os.replace(taken, said)
                return False
            with contextlib.suppress(OSError):
                os.unlink(taken)
            continue
        except OSError:  # a full or read-only folder: nothing to share, said here
            return None
        said_by = f"{os.getpid()} {os.getppid()}" if multiprocessing_child() else str(os.getpid())
        with os.fdopen(fd, "w") as out:  # "pid", or "pid parent-pid" from a pool's worker
            out.write(said_by)
        return True
    return None


def unmark(path: Path) -> bool:
    """Remove the marker of ``path``; whether this process did (and so says it, once)."""
    try:
        os.unlink(marker(path))
    except OSError:
        return False
    return True


def _said_by_this_study(said: Path) -> bool:
    """Whether the process in marker ``said`` lives in this process's group (not this one)."""
    try:
        text = said.read_text().strip()
    except FileNotFoundError:  # removed meanwhile: the ledger took runs again, say it anew
        return False
    except OSError:
        return True
    if not text:  # being written by the process that made it now
        return True
    try:
        pid, *parent = (int(word) for word in text.split())
    except ValueError:
        return False
    if pid == os.getpid() or not hasattr(os, "getpgid"):
        return False
    try:
        return os.getpgid(pid) == os.getpgrp()
    except OSError:  # gone: a worker of an earlier pool of this study, if its parent is ours
        return bool(parent) and multiprocessing_child() and parent[0] == os.getppid() != 1
