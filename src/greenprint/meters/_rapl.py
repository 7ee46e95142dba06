"""RAPL energy counters from Linux powercap (``/sys/class/powercap``), Intel and AMD.

Layout read (flat, as the kernel links every zone into the class directory)::

    intel-rapl:0/        name=package-0  energy_uj  max_energy_range_uj
    intel-rapl:0:0/      name=core       (a subzone of package 0: inside it, never added)
    intel-rapl:0:2/      name=dram       (DRAM of socket 0)
    intel-rapl:1/        name=psys       (platform: contains the packages, never added)
    intel-rapl-mmio:0/   name=package-0  (the same package through MMIO: a mirror, counted once)

AMD Zen exposes the same interface (``intel-rapl:N``, sometimes ``amd-rapl:N``); any control
type whose name contains ``rapl`` is read. Components: ``cpu`` = the package domains (one per
socket), ``ram`` = the DRAM domains. ``psys`` (platform energy: the packages plus memory,
chipset and more, Skylake and newer laptops and some desktops) is never added to them; it is
taken for ``cpu`` only when no package domain can be read and nothing else meters the CPU, and
is then labelled as platform energy (``rapl:psys (platform: ...)``). ``energy_uj`` is a
counter in µJ that wraps at ``max_energy_range_uj``. A counter that went down between two reads
has wrapped once when the energy that implies is at most :data:`MAX_PLAUSIBLE_RAPL_W` over the
interval (plus 1 s); otherwise it was reset (firmware, driver reload) and restarted from zero, so
its new value is the energy since the reset when that is plausible too, and a counter that merely
stepped back (neither) adds nothing for that step (at 1 s sampling a counter with a 262 kJ range
would need 262 kW to wrap twice). Since Linux 5.10 ``energy_uj`` is readable by root only; the
status then gives the ``chmod`` that fixes it. Zone ids are hexadecimal (powercap names zones
``"%s:%x"``: the eleventh package zone is ``intel-rapl:a``).

Unreadable files are reported through the ``opener`` used to read them (``open`` by default);
tests inject one that raises :class:`PermissionError`, as root can read any file.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from greenprint._exceptions import MeterError
from greenprint._format import count_of
from greenprint._provenance import Provenance
from greenprint._units import uj_to_j
from greenprint.meters._attribution import ProcessTree
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._counter import (
    MIN_WATCH_PERIOD_S,
    SharedEnergy,
    WrapWatcher,
    counter_step,
    read_int,
    read_text,
)
from greenprint.meters._counter import Opener as Opener  # re-exported: callers pass openers
from greenprint.meters._status import MeterStatus

__all__ = [
    "DEFAULT_RAPL_ROOT",
    "MAX_PLAUSIBLE_RAPL_W",
    "PSYS_SCOPE",
    "RAPL_ROOT_ENV",
    "RaplDomain",
    "RaplMeter",
    "RaplProbe",
    "probe_rapl",
    "resolve_rapl_root",
]

logger = logging.getLogger(__name__)

DEFAULT_RAPL_ROOT = "/sys/class/powercap"
#: What the ``psys`` domain covers, as its provenance says when it meters the CPU.
PSYS_SCOPE = "CPU package, memory, chipset and more, so more than the CPU; RAM inside it"
#: Environment variable overriding the powercap root (tests point it at a fake tree).
RAPL_ROOT_ENV = "GREENPRINT_RAPL_ROOT"
#: Above this, one RAPL domain's step is not believed (W): the largest sockets draw 500 W at TDP
#: and about 1.5 times that in short bursts; a server's psys covers two of them and more.
MAX_PLAUSIBLE_RAPL_W = 3000.0

# zone ids are hexadecimal: powercap names a zone "%s:%x" after its parent
_ZONE = re.compile(r"^(?P<ctl>[a-z0-9_-]*rapl[a-z0-9_-]*):(?P<idx>[0-9a-f]+(?::[0-9a-f]+)*)$")
# "package-0", "psys-1"; "package-0-die-1" on a package of several dies (Intel Cascade Lake-AP,
# and AMD on Linux 6.10, which made a zone per CCD, each reading the one package counter)
_INDEXED = re.compile(r"^(?P<kind>[a-z_]+)-(?P<n>\d+)(?:-die-(?P<die>\d+))?$")


def resolve_rapl_root(rapl_root: str | os.PathLike[str] | None = None) -> Path:
    """The powercap root: ``rapl_root``, else ``$GREENPRINT_RAPL_ROOT``, else the system one."""
    if rapl_root is not None:
        return Path(rapl_root)
    return Path(os.environ.get(RAPL_ROOT_ENV) or DEFAULT_RAPL_ROOT)


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL energy counter.

    Attributes:
        name: ``"package-0"``, ``"dram-0"``, ``"core-0"``, ``"psys"``...; ``"package-0-die-1"``
            on a package of several dies.
        kind: ``"package"``, ``"dram"``, ``"core"``, ``"uncore"``, ``"psys"``...
        socket: the package it belongs to, or ``None`` (psys).
        zone: the zone directory, e.g. ``"intel-rapl:0:2"``.
        path: the ``energy_uj`` file.
        max_energy_range_uj: where the counter wraps, in µJ, or ``None`` if unknown.
        die: the die of its package, or ``None`` (a package of one die, psys).
    """

    name: str
    kind: str
    socket: int | None
    zone: str
    path: Path
    max_energy_range_uj: int | None
    die: int | None = None


@dataclass(frozen=True)
class RaplProbe:
    """What :func:`probe_rapl` found.

    Attributes:
        root: the powercap directory probed.
        package: readable package domains, one per socket (the ``cpu`` component).
        dram: readable DRAM domains, one per socket (the ``ram`` component); may be empty.
        domains: every RAPL domain found, mirrors, subzones and psys included.
        status: usable or not, why, and the fix.
        psys: the readable ``psys`` domain, or ``None`` (see the module docstring).
        psys_status: whether ``psys`` could meter the CPU here, and why.
        dram_status: why the DRAM domains found are not read (unusable, with the fix), or
            ``None`` when they are read or there are none.
    """

    root: Path
    package: tuple[RaplDomain, ...]
    dram: tuple[RaplDomain, ...]
    domains: tuple[RaplDomain, ...]
    status: MeterStatus
    psys: RaplDomain | None = None
    psys_status: MeterStatus | None = None
    dram_status: MeterStatus | None = None

    @property
    def has_psys(self) -> bool:
        """Whether a ``psys`` domain was found (readable or not)."""
        return any(d.kind == "psys" for d in self.domains)

    def not_used(self, component: str) -> str | None:
        """Why RAPL domains found for ``component`` are not read, for an estimate's provenance.

        Where the machine has the counters but they cannot be read (``energy_uj`` root-only
        since Linux 5.10), the estimate that stands in says so, with the fix:
        ``"rapl not used: permission denied reading .../intel-rapl:0/energy_uj; fix: sudo chmod
        a+r .../intel-rapl:*/energy_uj (or run as root)"``. ``None`` where there are no such
        domains (a VM without RAPL: nothing to fix) or they are read.

        Args:
            component: ``"cpu"`` (package domains) or ``"ram"`` (DRAM domains).
        """
        kind = "package" if component == "cpu" else "dram"
        if not any(d.kind == kind for d in self.domains):
            psys = self.psys_status
            if component == "cpu" and psys is not None and not psys.usable and self.has_psys:
                fix = f"; fix: {psys.fix}" if psys.fix else ""  # a platform domain, unread
                return f"rapl psys not used: {psys.reason}{fix}"
            return None
        what = "rapl"  # RAPL as a whole (its package counter) could not be read
        if not self.status.usable:
            status: MeterStatus | None = self.status
        elif component == "ram" and not self.dram:
            status, what = self.dram_status, "rapl dram"
        else:
            return None
        if status is None:
            return None
        fix = f"; fix: {status.fix}" if status.fix else ""
        return f"{what} not used: {status.reason}{fix}"


def _zone_domain(root: Path, entry: str, names: dict[str, str], opener: Opener) -> RaplDomain:
    match = _ZONE.match(entry)
    if match is None:  # pragma: no cover - callers filter
        raise ValueError(entry)
    ids = match["idx"].split(":")
    indices = [int(i, 16) for i in ids]
    raw = names[entry]
    indexed = _INDEXED.match(raw)
    kind = indexed["kind"] if indexed else raw
    socket: int | None
    die: int | None = None
    if len(indices) > 1:  # subzone: belongs to its parent package (or die)
        parent = names.get(f"{match['ctl']}:{ids[0]}", "")
        parent_indexed = _INDEXED.match(parent)
        socket = int(parent_indexed["n"]) if parent_indexed else indices[0]
        if parent_indexed and parent_indexed["die"] is not None:
            die = int(parent_indexed["die"])
    elif indexed:
        socket = int(indexed["n"])
        die = None if indexed["die"] is None else int(indexed["die"])
    else:
        socket = None if kind == "psys" else indices[0]
    name = kind if socket is None else f"{kind}-{socket}"
    if die is not None:
        name += f"-die-{die}"
    try:
        max_range: int | None = int(read_text(root / entry / "max_energy_range_uj", opener))
    except (OSError, ValueError):
        max_range = None
    if max_range is not None and max_range <= 0:  # no range to wrap at
        max_range = None
    return RaplDomain(name, kind, socket, entry, root / entry / "energy_uj", max_range, die)


def _fix_for(root: Path, zone: str) -> str:
    ctl = zone.split(":", 1)[0]
    return f"sudo chmod a+r {root}/{ctl}:*/energy_uj (or run as root)"


def probe_rapl(
    rapl_root: str | os.PathLike[str] | None = None, *, opener: Opener = open
) -> RaplProbe:
    """Find the RAPL domains under the powercap root and check they can be read.

    Never raises: problems end up in ``status`` (``usable=False`` with the reason and fix).

    Args:
        rapl_root: powercap directory (default: :func:`resolve_rapl_root`).
        opener: function that opens a file for reading (injectable for tests).

    Returns:
        The probe; ``status.usable`` is True when every package domain can be read;
        ``psys``/``psys_status`` say whether the platform domain could stand in.
    """
    return _with_psys(_probe_rapl(rapl_root, opener), opener)


def _probe_rapl(rapl_root: str | os.PathLike[str] | None, opener: Opener) -> RaplProbe:
    root = resolve_rapl_root(rapl_root)
    empty: tuple[RaplDomain, ...] = ()
    if not root.is_dir():
        reason = f"no {root} (not Linux, or a VM without RAPL passthrough)"
        return RaplProbe(root, empty, empty, empty, MeterStatus("rapl", False, reason, None))
    try:
        entries = sorted(e for e in os.listdir(root) if _ZONE.match(e))
    except OSError as e:
        reason = f"cannot list {root}: {e.strerror or e}"
        return RaplProbe(root, empty, empty, empty, MeterStatus("rapl", False, reason, None))
    names: dict[str, str] = {}
    for entry in entries:
        try:
            names[entry] = read_text(root / entry / "name", opener).strip()
        except OSError:
            logger.debug("RAPL zone %s has no readable name; skipped", entry)
    domains = tuple(_zone_domain(root, e, names, opener) for e in entries if e in names)
    if not domains:
        status = MeterStatus(
            "rapl",
            False,
            f"no RAPL zones under {root} (the powercap RAPL driver is not loaded)",
            "sudo modprobe intel_rapl_msr (Intel and AMD)",
        )
        return RaplProbe(root, empty, empty, domains, status)

    def pick(kind: str) -> tuple[RaplDomain, ...]:
        # mirrored domains (same kind, same socket and die, e.g. via intel-rapl-mmio) counted
        # once, preferring the MSR interface
        chosen: dict[tuple[int, int], RaplDomain] = {}
        for d in sorted(domains, key=lambda d: ("mmio" in d.zone, d.zone)):
            key = (-1 if d.socket is None else d.socket, -1 if d.die is None else d.die)
            if d.kind == kind and key not in chosen:
                chosen[key] = d
        return tuple(chosen[k] for k in sorted(chosen))

    package, dram = pick("package"), pick("dram")
    if not package:
        status = MeterStatus(
            "rapl",
            False,
            f"no package domain under {root} (found: " + ", ".join(d.name for d in domains) + ")",
            None,
        )
        return RaplProbe(root, empty, empty, domains, status)
    for d in package:
        try:
            read_int(d.path, opener)
        except MeterError as e:
            fix = _fix_for(root, d.zone) if "permission denied" in str(e) else None
            return RaplProbe(root, empty, empty, domains, MeterStatus("rapl", False, str(e), fix))
    mirrors = len([d for d in domains if d.kind in ("package", "dram")]) - len(package) - len(dram)
    package, shared = _one_counter_per_package(package, opener)
    readable_dram: list[RaplDomain] = []
    dram_note = "no dram domain: RAM is estimated"
    dram_status: MeterStatus | None = None
    for d in dram:
        try:
            read_int(d.path, opener)
            readable_dram.append(d)
        except MeterError as e:
            dram_note = f"dram unreadable ({e}): RAM is estimated"
            fix = _fix_for(root, d.zone) if "permission denied" in str(e) else None
            dram_status = MeterStatus("rapl", False, str(e), fix)
            readable_dram = []
            break
    ram, shared_dram = _one_counter_per_package(readable_dram, opener)
    parts = [f"cpu from {'+'.join(d.name for d in package)}"]
    parts.append(f"ram from {'+'.join(d.name for d in ram)}" if ram else dram_note)
    if any(d.kind == "psys" for d in domains):
        parts.append("psys ignored (it contains the packages)")
    if mirrors > 0:
        parts.append(f"{count_of(mirrors, 'mirrored domain')} counted once")
    if shared + shared_dram:
        parts.append(
            f"the dies of {', '.join(shared + shared_dram)} read one package counter: counted once"
        )
    # usable for the CPU; a DRAM zone only permissions keep from being read has its fix here
    # (``greenprint hardware`` prints a meter's fix: RAM was estimated, the chmod unsaid)
    dram_fix = dram_status.fix if dram_status is not None else None
    status = MeterStatus("rapl", True, "; ".join(parts), dram_fix)
    return RaplProbe(root, package, ram, domains, status, dram_status=dram_status)


def _one_counter_per_package(
    domains: Sequence[RaplDomain], opener: Opener
) -> tuple[tuple[RaplDomain, ...], list[str]]:
    """``domains`` with the dies of a package that read one package counter kept once.

    The dies of an Intel Cascade Lake-AP package count on their own and are summed; on AMD
    Linux 6.10 made a zone per CCD, each reading the one package-scope counter. Such dies read
    the same value at the same moment: a die read between two reads of the package's first die
    lies between them, which two counters of their own practically never do.

    Returns:
        The domains to sum, and the packages whose dies were one counter (``"package-0"``).
    """
    groups: dict[int | None, list[RaplDomain]] = {}
    for d in domains:
        groups.setdefault(d.socket, []).append(d)
    kept: list[RaplDomain] = []
    shared: list[str] = []
    for socket, group in groups.items():
        if len(group) > 1 and None not in {d.die for d in group} and _one_counter(group, opener):
            kept.append(group[0])
            shared.append(f"{group[0].kind}-{socket}")
        else:
            kept.extend(group)
    return tuple(kept), shared


def _one_counter(group: Sequence[RaplDomain], opener: Opener) -> bool:
    """Whether every domain of ``group`` reads the same counter as its first (see above)."""
    first = group[0]
    try:
        for other in group[1:]:
            before = read_int(first.path, opener)
            value = read_int(other.path, opener)
            after = read_int(first.path, opener)
            if not before <= value <= after:
                return False
    except MeterError:
        return False
    return True


def _with_psys(probe: RaplProbe, opener: Opener) -> RaplProbe:
    """``probe`` with its ``psys`` domain (when readable) and the psys status filled in."""
    psys = next((d for d in probe.domains if d.kind == "psys"), None)
    if psys is None:
        where = probe.root if probe.root.is_dir() else f"no {probe.root}"
        status = MeterStatus("psys", False, f"no psys domain ({where})", None)
        return replace(probe, psys_status=status)
    try:
        read_int(psys.path, opener)
    except MeterError as e:
        fix = _fix_for(probe.root, psys.zone) if "permission denied" in str(e) else None
        return replace(probe, psys_status=MeterStatus("psys", False, str(e), fix))
    if probe.package:
        reason = f"{psys.zone} readable, not used: the package domains meter the CPU"
    else:
        reason = (
            f"{psys.zone} readable: used for cpu only if no other CPU counter exists (platform "
            f"energy: {PSYS_SCOPE})"
        )
    return replace(probe, psys=psys, psys_status=MeterStatus("psys", True, reason, None))


class RaplMeter(Meter):
    """Energy of one component (``cpu`` or ``ram``) from RAPL counters, summed over sockets.

    A counter can wrap only once between two reads that are less than its wrap time apart (its
    range over :data:`MAX_PLAUSIBLE_RAPL_W`: 22 s for AMD's and Intel DRAM's 65.5 kJ, 87 s for
    Intel's 262 kJ); reads further apart could hide several wraps, which no value can tell. So
    from :meth:`start` to :meth:`close` a :class:`~greenprint.meters._counter.WrapWatcher` wakes
    every quarter of the wrap time and reads the counters itself whenever no read came in that
    long (a long ``sample_interval_s``, a stalled sampler); at the usual 1 s reads it only wakes.
    :attr:`watch_reads` counts its reads.

    Args:
        component: ``"cpu"`` (package domains) or ``"ram"`` (DRAM domains).
        domains: the domains to sum (from :func:`probe_rapl`).
        tree: process tree for attribution (``process_j``); ``None`` leaves it unattributed.
            The CPU share is the tree's share of busy CPU time; the RAM share its RSS share.
        opener: function that opens a file for reading (injectable for tests).
        clock: monotonic clock in s (what a step of a counter that went down can be).
    """

    def __init__(
        self,
        component: str,
        domains: Sequence[RaplDomain],
        *,
        tree: ProcessTree | None = None,
        opener: Opener = open,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if component not in ("cpu", "ram"):
            raise ValueError(f"RAPL measures 'cpu' or 'ram', not {component!r}")
        if not domains:
            raise ValueError("RaplMeter needs at least one domain")
        self.component = component
        self.domains = tuple(domains)
        self._opener = opener
        self._clock = clock
        self._t_last = 0.0
        self._t_start = 0.0
        self._last_uj: list[int] = []
        #: domains whose zone disappeared mid-run (a package's last CPU taken offline), and when
        self.gone: list[str] = []
        self._pending_uj = 0  # counted by the watcher since the last read
        self._energy = SharedEnergy(tree, "cpu" if component == "cpu" else "ram")
        self._started = False
        self._lock = threading.Lock()
        ranges = [d.max_energy_range_uj for d in self.domains if d.max_energy_range_uj]
        #: seconds between the watcher's wake-ups (a quarter of the fastest wrap; two counter
        #: reads are then at most half of it apart), ``None``: no range known
        self.watch_period_s: float | None = (
            max(uj_to_j(min(ranges)) / MAX_PLAUSIBLE_RAPL_W / 4, MIN_WATCH_PERIOD_S)
            if ranges
            else None
        )
        #: how many times the watcher read the counters because no read came for a period
        self.watch_reads = 0
        self._watcher: WrapWatcher | None = None

    @property
    def origin(self) -> Provenance:
        """``Provenance("measured", "rapl:package-0+package-1")``; psys says it is the platform.

        A domain whose zone disappeared mid-run is left out of the source and named in the
        detail: ``rapl:package-0 (package-1 gone after 12 s (intel-rapl:1 removed: its CPUs
        taken offline?): not counted after)``.
        """
        source = "rapl:" + "+".join(d.name for d in self.domains)
        notes = [f"platform: {PSYS_SCOPE}"] if any(d.kind == "psys" for d in self.domains) else []
        return Provenance("measured", source, "; ".join(notes + self.gone))

    @property
    def provenance(self) -> str:
        """``"rapl:package-0+package-1"``, ``"rapl:dram-0"``..."""
        return str(self.origin)

    def start(self) -> None:
        """Read the baseline counters and start the wrap watcher."""
        with self._lock:
            self._last_uj = [read_int(d.path, self._opener) for d in self.domains]
            self._t_last = self._t_start = self._clock()
            self._pending_uj = 0
            self._energy.begin()
            self._started = True
        if self._watcher is None and self.watch_period_s is not None:
            self._watcher = WrapWatcher(self, self.watch_period_s, "greenprint-rapl-watch")

    def read(self) -> MeterReading:
        """Cumulative energy since :meth:`start`, in J.

        Raises:
            MeterError: a counter could not be read.
        """
        if not self._started:
            self.start()
        with self._lock:
            delta_uj = self._pending_uj + self._step()
            self._pending_uj = 0
            return self._energy.add(uj_to_j(delta_uj))

    def close(self) -> None:
        """Stop the wrap watcher (a later :meth:`start` starts another)."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def _step(self) -> int:
        """Read every counter now; the energy since the last read, in µJ (lock held).

        Raises:
            MeterError: a counter could not be read (nothing is changed).
        """
        t_now = self._clock()
        limit_uj = MAX_PLAUSIBLE_RAPL_W * (max(t_now - self._t_last, 0.0) + 1.0) * 1e6
        values = self._read_all()
        delta_uj = 0
        for i, d in enumerate(self.domains):
            delta_uj += _step_uj(d, self._last_uj[i], values[i], limit_uj)
        self._last_uj = values
        self._t_last = t_now
        return delta_uj

    def _read_all(self) -> list[int]:
        """Every domain's counter, in µJ; a domain whose zone is gone is dropped (lock held).

        When the last CPU of a package goes offline, the kernel unregisters that package's
        powercap zones: its ``energy_uj`` is gone for good, while the other packages still
        count. Those are kept, the domain that went is named in the provenance, and its energy
        after its last read is not counted (an offline package draws little, but not nothing).

        Raises:
            MeterError: a counter could not be read for another reason (permission, content),
                or every domain is gone (nothing is changed).
        """
        values: list[int | None] = []
        first_gone: MeterError | None = None
        for d in self.domains:
            try:
                values.append(read_int(d.path, self._opener))
            except MeterError as e:
                if not _zone_gone(e):
                    raise
                first_gone = first_gone or e
                values.append(None)
        if first_gone is None:
            return [v for v in values if v is not None]
        if all(v is None for v in values):
            raise first_gone
        kept = [i for i, v in enumerate(values) if v is not None]
        after_s = max(self._t_last - self._t_start, 0.0)  # its last good read
        for i, d in enumerate(self.domains):
            if values[i] is None:
                logger.warning("RAPL %s is gone (%s): the other domains go on", d.name, d.zone)
                self.gone.append(
                    f"{d.name} gone after {after_s:.0f} s ({d.zone} removed: its CPUs taken "
                    "offline?): not counted after"
                )
        self.domains = tuple(self.domains[i] for i in kept)
        self._last_uj = [self._last_uj[i] for i in kept]
        return [v for v in values if v is not None]

    def watch_read(self, period_s: float) -> None:
        """The watcher's turn: read the counters if no read came for ``period_s``."""
        with self._lock:
            if self._clock() - self._t_last < period_s:
                return
            try:
                self._pending_uj += self._step()
            except MeterError as e:  # the next read() fails with it and the set falls back
                logger.debug("RAPL watcher: %s", e)
                return
            self.watch_reads += 1


def _zone_gone(err: MeterError) -> bool:
    """Whether a counter's read failed because its file no longer exists (a removed zone)."""
    cause = err.__cause__
    return isinstance(cause, FileNotFoundError) or (
        isinstance(cause, OSError) and cause.errno == errno.ENODEV
    )


def _step_uj(domain: RaplDomain, last_uj: int, now_uj: int, limit_uj: float) -> int:
    """Energy between two reads of ``domain``'s counter, in µJ, never negative.

    Args:
        domain: the domain (its range and name).
        last_uj: the previous value, in µJ.
        now_uj: the current value, in µJ.
        limit_uj: the largest plausible step, in µJ (:data:`MAX_PLAUSIBLE_RAPL_W` over the
            interval plus 1 s).

    Returns:
        The increase; across one wrap at ``max_energy_range_uj`` when that step is plausible;
        else (a reset) the new value, the energy since the counter restarted from zero, when
        that is plausible; else 0 (the counter stepped back without restarting).
    """
    return counter_step(
        last_uj, now_uj, domain.max_energy_range_uj, limit_uj, name=f"RAPL {domain.name}", unit="µJ"
    )
