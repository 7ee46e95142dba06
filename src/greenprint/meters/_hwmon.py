"""Energy and power sensors of the Linux hwmon class, and the CPU meter built on them.

A hwmon device (``/sys/class/hwmon/hwmonN``, also linked under its parent device, e.g.
``/sys/class/drm/card0/device/hwmon/hwmonN``) has a ``name`` file (the driver: ``i915``, ``xe``,
``xgene_hwmon``, ``power_meter``...) and numbered channels. greenprint reads two kinds:

* ``energyN_input``: cumulative energy in µJ (the hwmon sysfs ABI). A decrease between two reads is
  undone as one wrap of a 32-bit counter when the previous value fitted 32 bits and the energy
  that implies is at most :data:`MAX_PLAUSIBLE_W` over the interval plus 1 s (RAPL's slack: a
  driver's value may lag the hardware by a refresh period); otherwise it is a reset
  (driver reload, device reset) and the counter's new value is the energy since the reset, when
  that is plausible too (else the counter merely stepped back, and that step adds nothing).
  64-bit counters (i915 and xe extend the hardware's 32-bit one in the driver) never wrap in
  practice (2**64 µJ is 18 TJ).
* ``powerN_average`` / ``powerN_input``: power in µW, integrated over time by the trapezoid rule
  between reads (the ACPI power meter, ``power_meter``, has only this).

A channel's ``energyN_label`` / ``powerN_label`` (or ``powerN_oem_info``, as NVIDIA Grace's ACPI
power meter has) says what it measures. Reading can be denied (drivers that fear power side
channels make counters root-only, as ``amd_energy`` did); the status then gives the ``chmod``
that opens them.

The CPU meter of this module is for machines without RAPL (Arm servers): see
:func:`probe_hwmon_cpu` for which channels it takes. Intel GPUs use :class:`HwmonMeter` through
:mod:`greenprint.meters._intel_gpu`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from greenprint._exceptions import MeterError
from greenprint._provenance import Provenance
from greenprint._units import uj_to_j
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._counter import Opener as Opener  # re-exported: callers pass openers
from greenprint.meters._counter import (
    SharedEnergy,
    WrapWatcher,
    counter_step,
    read_int,
    read_text,
)
from greenprint.meters._status import MeterStatus
from greenprint.meters._where import (
    DEFAULT_HWMON_ROOT,
    HWMON_ROOT_ENV,
    absent_hwmon,
    resolve_hwmon_root,
)

__all__ = [
    "DEFAULT_HWMON_ROOT",
    "GPU_DRIVERS",
    "HWMON_ROOT_ENV",
    "MAX_PLAUSIBLE_W",
    "HwmonChannel",
    "HwmonDevice",
    "HwmonMeter",
    "HwmonProbe",
    "chmod_fix",
    "label_class",
    "probe_hwmon_cpu",
    "read_hwmon_value",
    "resolve_hwmon_root",
    "scan_hwmon",
    "scan_hwmon_device",
]

logger = logging.getLogger(__name__)

#: Most power one channel can plausibly draw, in W (decides wrap-around against reset): above
#: the largest CPU socket or GPU card (~1 kW), below what a 32-bit µJ wrap in 1 s implies (4.3 kW).
MAX_PLAUSIBLE_W = 2000.0
#: hwmon drivers of GPUs: never taken for the CPU (each has its own meter or none).
GPU_DRIVERS = frozenset({"i915", "xe", "amdgpu", "nouveau", "radeon"})

_CHANNEL = re.compile(r"^(?P<kind>energy|power)(?P<n>\d+)_(?P<attr>input|average)$")
#: Label classes, tried in this order (case-insensitive; see :func:`label_class`).
_CORE = re.compile(r"^e?core\s*\d+$")
_OTHER = re.compile(
    r"(?<![a-z])(gpu|io|sysio|dram|mem|memory|module|board|platform|sys|system)(?![a-z])"
)
_CPU = re.compile(r"(?<![a-z])(cpu|cpus|cluster)(?![a-z])|^a\d{2}(?!\d)")
_SOCKET = re.compile(r"socket|package|(?<![a-z])(pkg|soc)(?![a-z])")


@dataclass(frozen=True)
class HwmonChannel:
    """One energy counter or power sensor of a hwmon device.

    Attributes:
        device: the hwmon directory, e.g. ``/sys/class/hwmon/hwmon3``.
        driver: the device's ``name``: ``"i915"``, ``"xe"``, ``"power_meter"``...
        channel: ``"energy1"``, ``"power2"``...
        kind: ``"energy"`` (a counter in µJ) or ``"power"`` (µW, integrated over time).
        label: the channel's label (``energy1_label``, else ``power1_oem_info``), or ``""``.
        path: the file read: ``energy1_input``, ``power1_average`` or ``power1_input``.
    """

    device: Path
    driver: str
    channel: str
    kind: str
    label: str
    path: Path

    @property
    def name(self) -> str:
        """``"xgene_hwmon:energy1"``: driver and channel."""
        return f"{self.driver}:{self.channel}"


@dataclass(frozen=True)
class HwmonDevice:
    """A hwmon device and its energy and power channels.

    Attributes:
        path: the hwmon directory.
        driver: its ``name``.
        energy: the ``energyN_input`` channels, by channel number.
        power: the ``powerN_average`` (preferred) or ``powerN_input`` channels, by number.
    """

    path: Path
    driver: str
    energy: tuple[HwmonChannel, ...]
    power: tuple[HwmonChannel, ...]


def read_hwmon_value(path: Path, opener: Opener = open) -> int:
    """Read one hwmon value (µJ for energy, µW for power).

    Raises:
        MeterError: the file cannot be read (the message says why) or holds no integer.
    """
    return read_int(path, opener)


def chmod_fix(paths: Sequence[Path]) -> str:
    """The command that makes root-only sensor files readable (until reboot)."""
    return (
        "sudo chmod a+r " + " ".join(str(p) for p in paths) + " (or run as root; a udev rule "
        'with MODE="0444" keeps it after a reboot)'
    )


def _label(device: Path, kind: str, n: str, opener: Opener) -> str:
    for attr in (f"{kind}{n}_label", f"{kind}{n}_oem_info"):
        try:
            return read_text(device / attr, opener).strip()
        except OSError:
            continue
    return ""


def scan_hwmon_device(device: Path, *, opener: Opener = open) -> HwmonDevice | None:
    """The energy and power channels of one hwmon directory, or ``None`` without a ``name``."""
    try:
        driver = read_text(device / "name", opener).strip()
        files = sorted(os.listdir(device))
    except OSError:
        return None
    energy: dict[int, HwmonChannel] = {}
    power: dict[int, HwmonChannel] = {}
    for f in files:
        m = _CHANNEL.match(f)
        if m is None:
            continue
        kind, n, attr = m["kind"], m["n"], m["attr"]
        channel = HwmonChannel(
            device, driver, f"{kind}{n}", kind, _label(device, kind, n, opener), device / f
        )
        if kind == "energy" and attr == "input":
            energy[int(n)] = channel
        elif kind == "power" and (attr == "average" or int(n) not in power):
            power[int(n)] = channel  # an average beats an instantaneous reading
    return HwmonDevice(
        device,
        driver,
        tuple(energy[k] for k in sorted(energy)),
        tuple(power[k] for k in sorted(power)),
    )


def _hwmon_index(name: str) -> int:
    digits = name[len("hwmon") :]
    return int(digits) if digits.isdigit() else 1 << 30


def scan_hwmon(root: Path, *, opener: Opener = open) -> list[HwmonDevice]:
    """Every hwmon device under ``root`` (``hwmon0``, ``hwmon1``...) with its channels."""
    try:
        names = [e for e in os.listdir(root) if e.startswith("hwmon")]
    except OSError:
        return []
    devices = []
    for name in sorted(names, key=_hwmon_index):
        device = scan_hwmon_device(root / name, opener=opener)
        if device is not None:
            devices.append(device)
    return devices


@dataclass(frozen=True)
class HwmonProbe:
    """What :func:`probe_hwmon_cpu` found.

    Attributes:
        root: the hwmon directory probed.
        channels: the channels that meter the CPU (empty when unusable).
        status: usable or not, why, and the fix.
        origin: the provenance the meter will carry.
    """

    root: Path
    channels: tuple[HwmonChannel, ...]
    status: MeterStatus
    origin: Provenance


def _describe(channels: Sequence[HwmonChannel]) -> str:
    parts = []
    for c in channels:
        parts.append(f"{c.name} ({c.label})" if c.label else c.name)
    return ", ".join(parts)


def label_class(label: str) -> str:
    """What a sensor label names: ``"core"``, ``"other"``, ``"cpu"``, ``"socket"`` or ``"plain"``.

    ``core``: one core (``Ecore012``, ``core 3``), inside its socket's figure. ``other``: not the
    CPU (GPU, I/O, memory, module, board, platform, system). ``cpu``: the CPU or a cluster
    (``CPU power``, ``CPU Power Socket 0``, ``a57_energy``). ``socket``: a socket, package or
    SoC (``Esocket0``, ``Grace Power Socket 0``). ``plain``: no label, or none of these.
    """
    text = label.strip().lower()
    if not text:
        return "plain"
    if _CORE.match(text):
        return "core"
    if _CPU.search(text):
        return "cpu"
    if _OTHER.search(text):
        return "other"
    if _SOCKET.search(text):
        return "socket"
    return "plain"


def _pick_cpu(devices: Sequence[HwmonDevice], kind: str) -> list[HwmonChannel]:
    """The CPU channels of one kind (``"energy"`` or ``"power"``) across ``devices``.

    CPU-labelled channels of any device, else socket-level ones, else (energy only) each
    device's unlabelled channels, or its per-core ones when it has nothing else.
    """
    channels = [c for d in devices for c in (d.energy if kind == "energy" else d.power)]
    for wanted in ("cpu", "socket"):
        chosen = [c for c in channels if label_class(c.label) == wanted]
        if chosen:
            return chosen
    if kind != "energy":
        return []
    chosen = []
    for d in devices:
        plain = [c for c in d.energy if label_class(c.label) == "plain"]
        core = [c for c in d.energy if label_class(c.label) == "core"]
        chosen.extend(plain or core)
    return chosen


def _cpu_channels(devices: Sequence[HwmonDevice]) -> tuple[list[HwmonChannel], str]:
    """The CPU channels by the rules of :func:`probe_hwmon_cpu`, and what they cover."""
    candidates = [d for d in devices if d.driver not in GPU_DRIVERS]
    energy = _pick_cpu(candidates, "energy")
    if energy:
        return energy, "energy counters"
    power = _pick_cpu(candidates, "power")
    if power:
        return power, "power sensors, integrated"
    meters = [
        c
        for d in candidates
        if d.driver == "power_meter"
        for c in d.power
        if label_class(c.label) == "plain"
    ]
    if meters:
        return meters, "platform power (ACPI power meter: more than the CPU), integrated"
    return [], ""


def probe_hwmon_cpu(
    hwmon_root: str | os.PathLike[str] | None = None, *, opener: Opener = open
) -> HwmonProbe:
    """Find hwmon sensors that meter the CPU where RAPL does not exist (Arm servers).

    Rules, in order (a GPU's hwmon device is never taken; labels are classed by
    :func:`label_class`):

    1. ``energyN_input`` counters: the CPU-labelled ones if any (``CPU energy``, a cluster),
       else the socket-level ones (``Esocket0``), else each device's unlabelled ones, else its
       per-core ones (``Ecore012``: inside the socket's counter, so only when there is
       none). Channels labelled as something else (GPU, I/O, memory, module, system) are
       never taken.
    2. Otherwise power sensors labelled CPU (``CPU power`` of X-Gene's ``xgene_hwmon``, ``CPU
       Power Socket 0`` of NVIDIA Grace's ACPI power meter), else socket-level, integrated.
    3. Otherwise the unlabelled ACPI power meter (``power_meter``, ``power1_average``),
       integrated and labelled as platform power: it covers more than the CPU.

    Never raises: problems end up in ``status``.

    Args:
        hwmon_root: the hwmon class directory (default: :func:`resolve_hwmon_root`).
        opener: function that opens a file for reading (injectable for tests).
    """
    root = resolve_hwmon_root(hwmon_root)
    none = Provenance("other", "hwmon")
    if not root.is_dir():
        return HwmonProbe(root, (), absent_hwmon(root), none)
    devices = scan_hwmon(root, opener=opener)
    channels, what = _cpu_channels(devices)
    if not channels:
        drivers = ", ".join(sorted({d.driver for d in devices})) or "none"
        status = MeterStatus(
            "hwmon",
            False,
            f"no CPU energy counter or power sensor under {root} (drivers: {drivers})",
            None,
        )
        return HwmonProbe(root, (), status, none)
    denied = []
    for c in channels:
        try:
            read_hwmon_value(c.path, opener)
        except MeterError as e:
            if "permission denied" not in str(e):
                status = MeterStatus("hwmon", False, str(e), None)
                return HwmonProbe(root, (), status, none)
            denied.append(c.path)
    if denied:
        reason = f"permission denied reading {', '.join(str(p) for p in denied)}"
        return HwmonProbe(root, (), MeterStatus("hwmon", False, reason, chmod_fix(denied)), none)
    origin = Provenance("measured", "hwmon:" + "+".join(c.name for c in channels), what)
    status = MeterStatus("hwmon", True, f"cpu from {_describe(channels)}: {what}", None)
    return HwmonProbe(root, tuple(channels), status, origin)


class HwmonMeter(Meter):
    """Energy of one component from hwmon channels, summed: counters read, powers integrated.

    A 32-bit counter wraps every 4.3 kJ (14 s at 300 W): from :meth:`start` to :meth:`close`, when
    an energy counter's value fits 32 bits, a :class:`~greenprint.meters._counter.WrapWatcher`
    reads the channels whenever no read came for a quarter of its wrap time at
    :data:`MAX_PLAUSIBLE_W` (:attr:`watch_period_s`), so that no wrap is lost between reads far
    apart; :attr:`watch_reads` counts its reads.

    Args:
        component: ``"cpu"`` or ``"gpu"``.
        channels: the channels to sum.
        origin: the provenance to carry (``Provenance("measured", "hwmon:...")``).
        tree: process tree for attribution. For ``cpu`` the share is the tree's share of busy
            CPU time, as for RAPL; a ``gpu`` is not attributed (``process_j`` is ``None``).
        opener: function that opens a file for reading (injectable for tests).
        clock: monotonic clock in s (power integration, wrap plausibility).
    """

    def __init__(
        self,
        component: str,
        channels: Sequence[HwmonChannel],
        *,
        origin: Provenance,
        tree: ProcessTree | None = None,
        opener: Opener = open,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not channels:
            raise ValueError("HwmonMeter needs at least one channel")
        self.component = component
        self.channels = tuple(channels)
        self._origin = origin
        self._opener = opener
        self._clock = clock
        self._last: list[int] = []
        self._t_last = 0.0
        self._energy = SharedEnergy(tree if component == "cpu" else None, "cpu")
        self._started = False
        self._lock = threading.Lock()
        self._pending_j = 0.0  # read by the watcher since the last read
        #: seconds between the watcher's wake-ups, ``None`` without an energy channel
        self.watch_period_s: float | None = (
            uj_to_j(2**32) / MAX_PLAUSIBLE_W / 4
            if any(c.kind == "energy" for c in self.channels)
            else None
        )
        #: how many times the watcher read the channels because no read came for a period
        self.watch_reads = 0
        self._watcher: WrapWatcher | None = None

    @property
    def origin(self) -> Provenance:
        """``Provenance("measured", "hwmon:i915:card0")``..."""
        return self._origin

    @property
    def provenance(self) -> str:
        """``"hwmon:i915:card0"``, ``"hwmon:xgene_hwmon:energy1 (energy counters)"``..."""
        return str(self._origin)

    def start(self) -> None:
        """Read the baseline of every channel; watch a counter that may wrap at 32 bits."""
        with self._lock:
            self._last = [read_hwmon_value(c.path, self._opener) for c in self.channels]
            self._t_last = self._clock()
            self._pending_j = 0.0
            self._energy.begin()
            self._started = True
        may_wrap = any(
            c.kind == "energy" and 0 <= v < 2**32
            for c, v in zip(self.channels, self._last, strict=True)
        )
        if may_wrap and self._watcher is None and self.watch_period_s is not None:
            self._watcher = WrapWatcher(self, self.watch_period_s, "greenprint-hwmon-watch")

    def read(self) -> MeterReading:
        """Cumulative energy since :meth:`start`, in J.

        Raises:
            MeterError: a channel could not be read.
        """
        if not self._started:
            self.start()
        with self._lock:
            delta_j = self._pending_j + self._step()
            self._pending_j = 0.0
            return self._energy.add(delta_j)

    def close(self) -> None:
        """Stop the wrap watcher (a later :meth:`start` starts another)."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def watch_read(self, period_s: float) -> None:
        """The watcher's turn: read the channels if no read came for ``period_s``."""
        with self._lock:
            if self._clock() - self._t_last < period_s:
                return
            try:
                self._pending_j += self._step()
            except MeterError as e:  # the next read() fails with it and the set falls back
                logger.debug("hwmon watcher: %s", e)
                return
            self.watch_reads += 1

    def _step(self) -> float:
        """Read every channel now; the energy since the last read, in J (lock held).

        Raises:
            MeterError: a channel could not be read (nothing is changed).
        """
        now = self._clock()
        dt = max(now - self._t_last, 0.0)
        values = [read_hwmon_value(c.path, self._opener) for c in self.channels]
        delta_j = 0.0
        for i, c in enumerate(self.channels):
            if c.kind == "energy":
                delta_j += uj_to_j(energy_delta_uj(self._last[i], values[i], dt, c.name))
            else:  # µW, trapezoid
                delta_j += 0.5 * (max(self._last[i], 0) + max(values[i], 0)) * 1e-6 * dt
        self._last = values
        self._t_last = now
        return delta_j


def energy_delta_uj(last_uj: int, now_uj: int, dt_s: float, name: str = "counter") -> int:
    """Energy between two reads of a µJ counter, undoing a 32-bit wrap or a reset.

    Args:
        last_uj: the previous value, in µJ.
        now_uj: the current value, in µJ.
        dt_s: seconds between the reads.
        name: the counter, for the log.

    Returns:
        The energy in µJ, never negative. A decrease is one wrap of a 32-bit counter when
        ``last_uj`` fitted 32 bits and the wrapped energy implies at most
        :data:`MAX_PLAUSIBLE_W` over ``dt_s`` plus 1 s; otherwise a reset, after which the
        counter's value is the energy since the reset when that is plausible too (the same
        limit); else the counter stepped back without restarting and the step adds nothing.
        The second of slack is RAPL's too: a driver that refreshes its value from the hardware
        or firmware now and then (``amd_energy`` adds the 32-bit MSR, updated every 1 ms, to
        its 64-bit sum; a PMBus or firmware sensor caches its reading) can show, between two
        reads a few ms apart, the energy of a whole refresh period.
    """
    return counter_step(
        last_uj,
        now_uj,
        2**32 if 0 <= last_uj < 2**32 and now_uj >= 0 else None,  # a 32-bit counter's wrap
        MAX_PLAUSIBLE_W * (dt_s + 1.0) * 1e6,
        name=f"hwmon {name}",
        unit="µJ",
    )
