"""The whole machine's figures for process-tree attribution: CPU times, CPUs, RAM, last pid.

On Linux ``/proc/stat`` and ``/proc/loadavg`` are read through descriptors kept open (one per
process, :class:`_SharedFile`) and the RAM from ``sysconf``; elsewhere psutil. Used by
:class:`~greenprint.meters._attribution.ProcessTree` and hardware discovery.
"""

from __future__ import annotations

import logging
import os

from greenprint.meters._process_read import _CLK_TCK, _O_FLAGS, _PROCFS

logger = logging.getLogger(__name__)


class _SharedFile:
    """A ``/proc`` file kept open and read from offset 0 at each call (one per process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    def read(self, size: int = 256) -> bytes | None:
        for _ in range(2):
            if self._fd < 0:
                try:
                    self._fd = os.open(self.path, _O_FLAGS)
                except OSError:
                    return None
            try:
                return os.pread(self._fd, size, 0)
            except OSError:  # closed behind our back: reopen once
                self._fd = -1
        return None


_PROC_STAT = _SharedFile("/proc/stat")
_PROC_LOADAVG = _SharedFile("/proc/loadavg")


def _busy_and_total(times: object) -> tuple[float, float]:
    """Busy and total CPU seconds from ``psutil.cpu_times()`` (guest time is inside user)."""
    fields = dict(times._asdict())  # type: ignore[attr-defined]
    fields.pop("guest", None)
    fields.pop("guest_nice", None)
    total = sum(fields.values())
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0) + fields.get("steal", 0.0)
    return total - idle, total


def _machine_times(procfs: bool) -> tuple[float, float] | None:
    """Busy and total CPU seconds of the whole machine since boot; ``None`` if unreadable.

    Linux: the ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq softirq steal
    guest guest_nice, in clock ticks; guest time is already inside user and nice, idle time is
    idle + iowait + steal), as psutil's ``cpu_times()`` reads it.
    """
    if procfs:
        data = _PROC_STAT.read()
        if data is not None and data.startswith(b"cpu "):
            end = data.find(b"\n")
            line = (data if end < 0 else data[:end]).split()  # the cpu line only
            try:
                ticks = [int(x) for x in line[1:9]]
            except ValueError:
                ticks = []
            if len(ticks) >= 4:
                ticks += [0] * (8 - len(ticks))
                total = sum(ticks) / _CLK_TCK
                return total - (ticks[3] + ticks[4] + ticks[7]) / _CLK_TCK, total
    import psutil

    try:
        return _busy_and_total(psutil.cpu_times())
    except (psutil.Error, OSError) as e:
        logger.debug("machine CPU times unreadable: %s", e)
        return None


def _cpu_count(procfs: bool) -> float:
    """Logical CPUs whose times the machine's CPU times add up; at least 1.

    The ``cpuN`` lines of ``/proc/stat`` (a container's own where lxcfs shows it its CPUs), else
    the online CPUs.
    """
    if procfs:
        try:
            with open("/proc/stat", "rb") as f:
                n = sum(1 for line in f if line[:3] == b"cpu" and line[3:4].isdigit())
            if n:
                return float(n)
        except OSError:
            pass
    try:
        n = os.sysconf("SC_NPROCESSORS_ONLN")
    except (AttributeError, OSError, ValueError):
        n = os.cpu_count() or 1
    return float(max(n, 1))


def _last_pid() -> int | None:
    """The last process id the kernel handed out (Linux ``/proc/loadavg``), else ``None``."""
    data = _PROC_LOADAVG.read()
    try:
        return None if data is None else int(data.split()[-1])
    except (ValueError, IndexError):
        return None


def total_ram_bytes(procfs: bool | None = None) -> float:
    """Installed memory in bytes: Linux ``sysconf`` (``MemTotal``, without psutil), else psutil.

    Args:
        procfs: read it as on Linux (default: when this is Linux with ``/proc``).
    """
    if _PROCFS if procfs is None else procfs:
        try:
            return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (OSError, ValueError):  # pragma: no cover - sysconf names are there on Linux
            pass
    import psutil

    return float(psutil.virtual_memory().total)
