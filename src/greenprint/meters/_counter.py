"""What the cumulative-counter meters share: reading a sysfs counter, telling a wrap from a reset.

RAPL (``energy_uj``) and hwmon (``energyN_input``, Intel GPUs' too) are integers in sysfs files
(:func:`read_int`); NVML and amdsmi hand back 64-bit counts. Between two reads a counter that went
down has either wrapped once (at its modulus) or restarted (driver reload, device reset):
:func:`unwrap` takes it for a wrap only when the increase that implies is plausible, because a
reset taken for a wrap would add most of a counter's range (an 18 TJ jump for a 64-bit µJ one).
Each meter sets what is plausible (the most its device can draw over the interval plus 1 s,
for a value that lags its hardware: RAPL, hwmon and NVML alike);
:func:`counter_step` applies the rule for RAPL, hwmon and NVML (a reset counts its new value,
a step back nothing); the AMD meter falls back to power sampling instead (see its module).

Reads further apart than a counter's wrap time (its range over the largest plausible power) could
hide several wraps, which no value can tell; a :class:`WrapWatcher` then reads the counter in
between (a long ``sample_interval_s``, a stalled sampler), as the kernel's perf RAPL driver and
turbostat poll theirs.
"""

from __future__ import annotations

import errno
import logging
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from greenprint._exceptions import MeterError
from greenprint.meters._attribution import ProcessTree, UsageSample, fresh_usage, share_between
from greenprint.meters._base import MeterReading

__all__ = [
    "GPU_COUNTER_MODULUS",
    "SharedEnergy",
    "MAX_PLAUSIBLE_GPU_W",
    "MIN_WATCH_PERIOD_S",
    "Opener",
    "WrapWatcher",
    "counter_step",
    "read_int",
    "read_text",
    "unwrap",
]

logger = logging.getLogger(__name__)

#: A file opener, ``open`` by default (tests inject one that denies some files).
Opener = Callable[[str], IO[Any]]

#: NVML's and amdsmi's energy counters are 64-bit (mJ for NVML, ``counter_resolution`` µJ for
#: amdsmi).
GPU_COUNTER_MODULUS = 2**64
#: Above this, a GPU counter's step is not believed (W per GPU).
MAX_PLAUSIBLE_GPU_W = 5000.0
#: A :class:`WrapWatcher` wakes at most this often, in s.
MIN_WATCH_PERIOD_S = 0.05


def read_text(path: Path, opener: Opener = open) -> str:
    """The whole content of ``path`` as text (sysfs files may be opened in binary mode).

    Bytes that are not UTF-8 (a corrupt or foreign attribute) are an :class:`OSError` too, so
    that every caller's "cannot read" path takes them, never a :class:`UnicodeDecodeError` out
    of a probe that must not raise.

    Raises:
        OSError: as ``opener`` raises it, or the content is not UTF-8 text (``EILSEQ``).
    """
    try:
        with opener(str(path)) as fh:
            data = fh.read()
        return data.decode() if isinstance(data, bytes) else str(data)
    except UnicodeDecodeError as e:
        raise OSError(errno.EILSEQ, f"not UTF-8 text ({e.reason})", str(path)) from e


def read_int(path: Path, opener: Opener = open) -> int:
    """Read one integer sysfs value (a counter in µJ, a power in µW).

    Raises:
        MeterError: the file cannot be read (the message says why) or holds no integer.
    """
    try:
        text = read_text(path, opener)
    except PermissionError as e:
        raise MeterError(f"permission denied reading {path}") from e
    except OSError as e:
        raise MeterError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return int(text.strip())
    except ValueError as e:
        raise MeterError(f"unexpected content in {path}: {text.strip()[:40]!r}") from e


def unwrap(delta: int, modulus: int, limit: float) -> int | None:
    """A counter's step with one wrap undone, when that is plausible.

    Args:
        delta: the new value minus the previous one, in the counter's unit.
        modulus: where the counter wraps to zero.
        limit: the largest plausible step, in the counter's unit.

    Returns:
        ``delta`` when it is not negative; ``delta + modulus`` (one wrap) when that is at most
        ``limit``; else ``None``: the counter went backwards without wrapping (a reset).
    """
    if delta >= 0:
        return delta
    wrapped = delta + modulus
    return wrapped if wrapped <= limit else None


def counter_step(
    last: int,
    now: int,
    modulus: int | None,
    limit: float,
    *,
    name: str,
    unit: str,
) -> int:
    """What a cumulative counter counted between two reads, never negative.

    The increase; when the counter went down, one wrap at ``modulus`` when the step that
    implies is at most ``limit`` (:func:`unwrap`); else a reset, whose new value is what was
    counted since it, when that value is plausible too (at most ``limit``); else the counter
    merely stepped back, and the step adds nothing.

    Args:
        last: the previous value, in the counter's unit.
        now: the current value.
        modulus: where the counter wraps to zero (``None`` or 0: it is not taken to wrap).
        limit: the largest plausible step (the most a device can draw over the interval).
        name: the counter, for the log (``"RAPL package-0"``).
        unit: its unit, for the log (``"µJ"``).
    """
    delta = now - last
    if delta >= 0:
        return delta
    if modulus:
        wrapped = unwrap(delta, modulus, limit)
        if wrapped is not None:
            return wrapped
    if 0 <= now <= limit:
        logger.info("%s restarted (%d -> %d %s): a reset", name, last, now, unit)
        return now
    logger.info("%s stepped back (%d -> %d %s): nothing counted", name, last, now, unit)
    return 0


class SharedEnergy:
    """A machine-wide counter's energy so far, and a process tree's share of it, in J.

    Each step is shared out by the tree's share over the same interval (see
    :mod:`greenprint.meters._attribution`): of busy CPU time (``"cpu"``) or of resident memory
    (``"ram"``), from the tree's sample at the previous step to the one at this step (other
    meter sets sharing the tree may have sampled it in between). RAPL and hwmon CPU meters keep
    their figures in one.

    Args:
        tree: the process tree, or ``None`` (``process_j`` is then ``None``).
        share: ``"cpu"`` or ``"ram"``.
    """

    def __init__(self, tree: ProcessTree | None, share: str = "cpu") -> None:
        self.tree = tree
        self.share = share
        self.machine_j = 0.0
        self.process_j = 0.0
        self._usage: UsageSample | None = None

    def begin(self) -> None:
        """Start from zero now (the tree's usage too)."""
        if self.tree is not None:
            self._usage = fresh_usage(self.tree, -1)
        self.machine_j = 0.0
        self.process_j = 0.0

    def add(self, delta_j: float) -> MeterReading:
        """Add one step of the counter, in J.

        Returns:
            The cumulative reading.
        """
        self.machine_j += delta_j
        if self.tree is None:
            return MeterReading(self.machine_j, None)
        prev = self._usage
        usage = fresh_usage(self.tree, -1 if prev is None else prev.seq)
        self._usage = usage
        share = share_between(prev, usage, self.share) if prev is not None else None
        if share is None:
            share = usage.cpu_share if self.share == "cpu" else usage.ram_share
        self.process_j += delta_j * share
        return MeterReading(self.machine_j, self.process_j)


class _Watched(Protocol):
    def watch_read(self, period_s: float) -> None: ...


class WrapWatcher:
    """A daemon thread that has a meter read its counters when no read came for a while.

    Every ``period_s`` it calls ``meter.watch_read(period_s)``; the meter reads its counters if
    its last read is at least ``period_s`` old and keeps the energy for its next ``read()``. At a
    period of a quarter of the fastest wrap, two reads of a counter are at most half its wrap
    time apart, so it wraps at most once between them. The thread holds the meter weakly: it
    ends at :meth:`stop` or when the meter is garbage-collected.

    Args:
        meter: the meter (with ``watch_read``).
        period_s: seconds between wake-ups (at least :data:`MIN_WATCH_PERIOD_S`).
        name: the thread's name.
    """

    def __init__(self, meter: _Watched, period_s: float, name: str) -> None:
        self.period_s = max(float(period_s), MIN_WATCH_PERIOD_S)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_watch,
            args=(weakref.ref(meter), self._stop, self.period_s),
            name=name,
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it ends at its next wake-up)."""
        self._stop.set()


def _watch(ref: weakref.ref[_Watched], stop: threading.Event, period_s: float) -> None:
    while not stop.wait(period_s):
        meter = ref()
        if meter is None:
            return
        meter.watch_read(period_s)
        del meter
