"""Whether the process that writes a run still lives: a killed run reads ``lost`` at once.

A run records the process that writes its rows in its provenance, under ``"writer"``::

    pid 4242 tick 830127 uid 1000 boot 0b6e2f0c-8c2a-4b8e-9a53-7f0c2c1d5e11 pidns 4026531836

the process id, its start time in clock ticks after boot (``/proc/<pid>/stat``'s ``starttime``),
its effective user id, the kernel's boot id (``/proc/sys/kernel/random/boot_id``) and its pid
namespace (the inode of ``/proc/self/ns/pid``: containers on one kernel share the boot id, and
may share a host name, but not a pid namespace). A pid and a start tick name one process of a
boot: a pid used again belongs to a process that started later.

The start time is the kernel's own, in ticks since boot, not the Unix time that
``_run_provenance._process_key`` writes (``"pid N started T"``): that one is the boot time
plus the ticks, and the kernel recomputes the boot time from the clock on each read, so a step
of the clock (NTP, a resumed VM) between the run's start and a reader would name one live
process two ways, and a live run would read ``lost``. The kernel shows the tick shifted by the
*reader's* time namespace (``unshare --time --boottime``, a checkpoint restored): a process
whose boot time is shifted neither records an identity nor checks one (its ticks are not its
neighbours').

A reader on the same host, boot and pid namespace (and with ``/proc`` of its own pid namespace)
looks the pid up once per read (:class:`Processes`): no such process, a zombie, or a process
with another start tick means the writer is gone. Anything it cannot tell (another host,
container or boot, a ledger written before this record existed, ``/proc`` unreadable, a
process it may not see) is "not known to be gone", and the heartbeat rule alone decides
(:func:`greenprint.ledger._base.is_stale`). A reader of another user, unless root, does not
trust a missing ``/proc/<pid>``: ``/proc`` mounted with ``hidepid`` hides other users'
processes.

Everything is read from ``/proc`` (Linux); elsewhere (macOS, Windows, a sandbox without
``/proc``) nothing is recorded and nothing is checked. Never raises.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = [
    "ANCESTORS_KEY",
    "WRITER_KEY",
    "Processes",
    "ancestors",
    "parse_ancestors",
    "writer_identity",
    "writer_place",
]

#: The provenance key of a run's writer process.
WRITER_KEY = "writer"
#: The provenance key of the processes the writer was started under (see :func:`ancestors`).
ANCESTORS_KEY = "ancestors"
#: How many of them: a pool's worker (1), under a fork server (2), and two more.
_ANCESTRY = 4

_GONE = -1  # a start tick no process has: the pid names no live process
_UNKNOWN = -2  # the pid could not be looked up (permission, a format not understood)


class _Place(NamedTuple):
    """Where this process lives: what a reader and a writer compare."""

    boot: str
    pidns: int
    uid: int


class _Writer(NamedTuple):
    pid: int
    tick: int
    uid: int
    boot: str
    pidns: int


def _read_text(path: str) -> str:
    """The text of a small ``/proc`` file (every file this module reads is read here).

    One ``read`` of a raw descriptor: half the cost of ``open()`` (20 us against 36 for a live
    process's ``stat``, 7 against 10 for a missing one).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)


def _place() -> _Place | None:
    """This process's boot id, pid namespace and effective user id; ``None`` if unreadable.

    ``None`` also when ``/proc`` is not the procfs of this process's pid namespace (a container
    that sees its host's ``/proc``): its pids would not be this process's; and in a time
    namespace whose boot time is shifted (``/proc/self/timens_offsets``), where every start
    tick reads shifted. Read once per process (a forked child reads its own).
    """
    global _own_place
    pid = os.getpid()
    if _own_place is not None and _own_place[0] == pid:
        return _own_place[1]
    place = None
    geteuid = getattr(os, "geteuid", None)
    try:
        if geteuid is not None and os.readlink("/proc/self") == str(pid):  # (not Windows)
            boot = _read_text("/proc/sys/kernel/random/boot_id").strip()
            pidns = os.stat("/proc/self/ns/pid").st_ino
            if boot and len(boot.split()) == 1 and not _boottime_shifted():
                place = _Place(boot, pidns, geteuid())
    except (OSError, ValueError):
        pass  # no /proc, or not this process's: nothing is recorded, nothing checked
    _own_place = (pid, place)
    return place


#: This process's pid and place, once read.
_own_place: tuple[int, _Place | None] | None = None


def _boottime_shifted() -> bool:
    """Whether this process's time namespace shifts the boot time (start ticks read shifted).

    No ``timens_offsets`` (a kernel without time namespaces): not shifted.
    """
    try:
        text = _read_text("/proc/self/timens_offsets")
    except FileNotFoundError:
        return False
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["boottime"]:
            return words[1:] != ["0", "0"]
    return False


def _start_tick(pid: int) -> int:
    """The start tick of the process ``pid``: ``_GONE`` if none lives, ``_UNKNOWN`` if unsure.

    A zombie (killed, not yet reaped) is gone, unless other threads of it still run (a main
    thread that ended before the others leaves the leader a zombie).
    """
    try:
        text = _read_text(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return _GONE
    except (OSError, ValueError):
        return _UNKNOWN
    fields = text.rpartition(")")[2].split()  # the command name, in parentheses, may hold spaces
    try:
        state, tick = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return _UNKNOWN
    if state in ("Z", "X", "x"):
        try:
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except (FileNotFoundError, ProcessLookupError):
            return _GONE
        except OSError:
            return _UNKNOWN
        return _GONE if threads <= 1 else tick
    return tick


def writer_identity() -> str | None:
    """This process's ``"writer"`` provenance (see the module doc); ``None`` if unreadable.

    Read once per process (a forked child, with another pid, reads its own): a few ``/proc``
    reads, no import.
    """
    global _own_writer
    pid = os.getpid()
    if _own_writer is not None and _own_writer[0] == pid:
        return _own_writer[1]
    identity = None
    place = _place()
    if place is not None:
        tick = _start_tick(pid)
        if tick >= 0:
            identity = (
                f"pid {pid} tick {tick} uid {place.uid} boot {place.boot} pidns {place.pidns}"
            )
    _own_writer = (pid, identity)
    return identity


#: This process's pid and writer identity, once read.
_own_writer: tuple[int, str | None] | None = None


def ancestors() -> str | None:
    """The processes this one was started under, parent first: ``"pid 4200 tick 830100; ..."``.

    Each as its writer identity names it (pid and start tick; the boot and pid namespace are the
    writer's own), up to four, up to the first with no parent in this pid namespace (pid 1, a
    container's first process, included). A run whose parent is not a run of its own process
    (none, or one named by the environment it was started with) records them
    (:data:`ANCESTORS_KEY`): a worker of a pool made before its parent process's run started
    (``multiprocessing.Pool``) inherited no parent run, or the run around the whole script, yet
    that run's meters read the worker's process tree; the analysis reads such a run inside it
    (``analysis._common``). ``None``
    where the writer has no identity or its parent cannot be read. Read once per process.
    """
    global _own_ancestors
    pid = os.getpid()
    if _own_ancestors is not None and _own_ancestors[0] == pid:
        return _own_ancestors[1]
    found: list[str] = []
    if writer_identity() is not None:
        at = pid
        while len(found) < _ANCESTRY:
            at = _parent_of(at)
            if at <= 0:
                break
            tick = _start_tick(at)
            if tick < 0:
                break
            found.append(f"pid {at} tick {tick}")
    text = "; ".join(found) or None
    _own_ancestors = (pid, text)
    return text


#: This process's pid and ancestors, once read.
_own_ancestors: tuple[int, str | None] | None = None


def _parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (0: none in this pid namespace; -1: unreadable)."""
    try:
        fields = _read_text(f"/proc/{pid}/stat").rpartition(")")[2].split()
        return int(fields[1])
    except (OSError, ValueError, IndexError):
        return -1


def parse_ancestors(text: object) -> tuple[tuple[int, int], ...]:
    """``(pid, start tick)`` of each process :func:`ancestors` names; ``()`` for anything else."""
    if not isinstance(text, str):
        return ()
    found = []
    for item in text.split(";"):
        words = item.split()
        numbers = words[1::2]
        if len(words) != 4 or words[0::2] != ["pid", "tick"]:
            return ()
        if not all(n.isascii() and n.isdigit() for n in numbers):
            return ()  # a hand-edited ledger: no process named
        found.append((int(words[1]), int(words[3])))
    return tuple(found)


def writer_place(text: object) -> tuple[int, int, str, int] | None:
    """``(pid, start tick, boot, pid namespace)`` of a writer identity; ``None`` if not one."""
    parsed = _parse(text)
    return None if parsed is None else (parsed.pid, parsed.tick, parsed.boot, parsed.pidns)


def _parse(text: object) -> _Writer | None:
    """A writer identity from its text; ``None`` for anything else (a hand-edited ledger)."""
    if not isinstance(text, str):
        return None
    words = text.split()
    if len(words) != 10 or words[0::2] != ["pid", "tick", "uid", "boot", "pidns"]:
        return None
    numbers = (words[1], words[3], words[5], words[9])
    if not all(n.isascii() and n.isdigit() for n in numbers) or int(words[1]) <= 0:
        return None  # a pid of 0 or "-1" names no process: never a reason to call a run lost
    return _Writer(int(words[1]), int(words[3]), int(words[5]), words[7], int(words[9]))


class Processes:
    """One read's view of this machine's processes: which run writers are gone.

    Each distinct writer text is parsed once and each pid looked up once, so a read of many
    running runs costs one ``/proc`` read per process that wrote them. Make one per read: a
    process found alive here is not looked up again.
    """

    def __init__(self, host: str | None) -> None:
        """This process's place, and ``host`` as runs record it (``None``: check nothing)."""
        self._host = host
        self._here = _place() if host else None
        self._writers: dict[str, _Writer | None] = {}
        self._ticks: dict[int, int] = {}

    def gone(self, writer: object, host: str | None) -> bool:
        """Whether the process that wrote ``writer`` (a run's provenance) is known to be gone.

        Args:
            writer: the run's ``provenance["writer"]`` (anything else: not known to be gone).
            host: the host the run records.

        Returns:
            ``True`` only on this host, boot and pid namespace, for a pid that names no live
            process or a process that started at another tick; ``False`` otherwise.
        """
        here = self._here
        if here is None or host != self._host or not isinstance(writer, str):
            return False
        if writer in self._writers:
            parsed = self._writers[writer]
        else:
            parsed = self._writers[writer] = _parse(writer)
        if parsed is None or parsed.boot != here.boot or parsed.pidns != here.pidns:
            return False
        tick = self._ticks.get(parsed.pid)
        if tick is None:
            tick = self._ticks[parsed.pid] = _start_tick(parsed.pid)
        if tick == _UNKNOWN:
            return False
        if tick == _GONE:
            # another user's process may only be hidden from this reader (hidepid)
            return parsed.uid == here.uid or here.uid == 0
        return tick != parsed.tick
