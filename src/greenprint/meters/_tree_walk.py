"""Finding a process tree's descendants: Linux's children files, else psutil.

The ``/proc/<pid>/task/<tid>/children`` file of each thread, kept open between walks
(:class:`_Children`) or read once (:func:`_descendant_pids`), and whether a parent ignores
SIGCHLD (the kernel then reaps its children: :func:`_ignores_sigchld`). Used by
:class:`~greenprint.meters._attribution.ProcessTree`.
"""

from __future__ import annotations

import os
import signal

from greenprint.meters._process_read import _O_FLAGS, _PROCFS

#: A process's thread list is read again at least every this many walks, even when its thread
#: count has not changed (a thread that ended and one that started between two walks).
_RELIST_EVERY = 10


def _proc_children_supported() -> bool:
    """Whether Linux lists each task's children (``/proc/<pid>/task/<tid>/children``)."""
    try:
        return os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    except OSError:  # pragma: no cover
        return False


_PROC_CHILDREN = _PROCFS and _proc_children_supported()


class _Children:
    """One process's children, from the children files of its threads (Linux), kept open.

    The thread list is read again when the process's thread count (from its stat line) differs
    from the list's, and at least every :data:`_RELIST_EVERY` walks; between those, each walk
    is one ``pread`` per thread.
    """

    __slots__ = ("_fds", "_listed", "_walks", "pid")

    def __init__(self, pid: int) -> None:
        self._fds: list[int] = []
        self.pid = pid
        self._listed = -1  # threads when the list was read
        self._walks = 0

    @property
    def kept(self) -> int:
        """Descriptors kept open (one per thread, or none)."""
        return len(self._fds)

    def read(self, threads: int, budget: int) -> list[int] | None:
        """The children now, or ``None`` when a file that should be there cannot be read.

        Args:
            threads: the process's thread count now (-1: unknown: list the threads).
            budget: descriptors it may keep open.
        """
        self._walks += 1
        if self._fds and threads == self._listed and self._walks % _RELIST_EVERY:
            try:
                return [int(pid) for fd in self._fds for pid in _pread_all(fd).split()]
            except (OSError, ValueError):  # closed behind our back: list again
                pass
        self.close()
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return []
        except OSError:
            return None
        keep = 0 < len(tids) <= budget
        pids: list[int] = []
        for tid in tids:
            try:
                fd = os.open(f"/proc/{self.pid}/task/{tid}/children", _O_FLAGS)
            except FileNotFoundError:  # the thread (or the process) ended meanwhile
                continue
            except OSError:
                self.close()
                return None
            try:
                pids.extend(int(pid) for pid in _pread_all(fd).split())
            except (OSError, ValueError):
                os.close(fd)
                self.close()
                return None
            if keep:
                self._fds.append(fd)
            else:
                os.close(fd)
        self._listed = len(tids) if keep else -1
        return pids

    def close(self) -> None:
        """Release the descriptors. Idempotent; safe on a half-built one (see ``_ProcStat``)."""
        fds = getattr(self, "_fds", None) or []
        self._fds = []
        for fd in fds:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover - closed behind our back
                pass

    def __del__(self) -> None:
        self.close()


def _ignores_sigchld(pid: int) -> bool:
    """Whether ``pid`` ignores SIGCHLD (``SigIgn`` of ``/proc/<pid>/status``; Linux).

    Its children are then reaped by the kernel as they exit (``signal(SIGCHLD, SIG_IGN)``),
    and their CPU time is added to no one's reaped children's times. ``False`` when the file
    cannot be read. (A parent that set ``SA_NOCLDWAIT`` with a handler is reaped for too, but
    ``/proc`` does not show that flag.)
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (_SIGCHLD - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


#: SIGCHLD's number (17 on x86 and ARM Linux; 18 on MIPS, 20 on SPARC)
_SIGCHLD = int(getattr(signal, "SIGCHLD", 17))


def _pread_all(fd: int) -> bytes:
    """The whole content of a ``/proc`` file from offset 0."""
    data = os.pread(fd, 65536, 0)
    while len(data) % 65536 == 0 and data:
        more = os.pread(fd, 65536, len(data))
        if not more:
            break
        data += more
    return data


def _child_pids(pid: int) -> list[int] | None:
    """Direct children of ``pid``, from the children file of each of its threads.

    ``None`` when a file that should be there cannot be read (the caller falls back to psutil);
    an empty list when the process is gone.
    """
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    except OSError:
        return None
    pids: list[int] = []
    for tid in tids:
        try:
            fd = os.open(f"/proc/{pid}/task/{tid}/children", _O_FLAGS)
        except FileNotFoundError:  # the thread (or the process) ended meanwhile
            continue
        except OSError:
            return None
        try:
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
            pids.extend(int(field) for field in data.split())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
    return pids


def _descendant_pids(root: int, procfs: bool = True) -> list[int]:
    """Every descendant of ``root``, as psutil's ``children(recursive=True)`` lists them.

    On Linux the tree is walked through the children files of its own threads (a few small
    reads for a small tree) instead of psutil's read of the stat file of every process on the
    machine (about 1.5 ms with 100 processes, far more on a busy node). A child that exits while
    a sibling is being listed can hide that sibling from one walk (the kernel's list shifts
    under the read); such a process is found at the next walk, with all its CPU time (it counts
    from its own start), and if it ends first its time reaches the tree through its parent's
    ``children_user/children_system``.
    """
    if procfs and _PROC_CHILDREN:
        found: list[int] = []
        seen = {root}
        queue = [root]
        while queue:
            pids = _child_pids(queue.pop())
            if pids is None:
                break  # unreadable: psutil below
            for pid in pids:
                if pid not in seen:
                    seen.add(pid)
                    queue.append(pid)
                    found.append(pid)
        else:
            return found
    import psutil

    try:
        return [p.pid for p in psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return []
