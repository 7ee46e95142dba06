"""Estimates for when no hardware counter can be read (VMs, most clouds, laptops in VMs).

CPU power model (whole machine, all sockets)::

    power_w = idle_w + (tdp_w - idle_w) * utilisation,    idle_w = IDLE_FRACTION * tdp_w

where ``tdp_w`` is the table TDP of the matched model times the number of sockets, or, when the
model is not in the table, ``DEFAULT_W_PER_CORE`` times the number of logical CPUs, and
``utilisation`` is the busy fraction of all CPUs (psutil). RAM::

    power_w = RAM_W_PER_GB * installed GB

The tracked process tree gets ``share * machine energy`` (CPU: its share of busy CPU time; RAM:
its RSS over installed RAM), see :mod:`greenprint.meters._attribution`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from greenprint._provenance import Provenance
from greenprint._validate import finite_number
from greenprint.meters._attribution import ProcessTree, UsageSample, fresh_usage
from greenprint.meters._base import Meter, MeterReading

if TYPE_CHECKING:  # pragma: no cover
    from greenprint._config import Config

__all__ = [
    "CpuEstimateMeter",
    "DEFAULT_W_PER_CORE",
    "GpuEstimateMeter",
    "IDLE_FRACTION",
    "RAM_W_PER_GB",
    "RamEstimateMeter",
    "MAX_CONFIGURED_TDP_W",
    "UnknownEnergyMeter",
    "configured_cpu_tdp",
    "cpu_power_w",
]

#: Idle floor as a fraction of TDP; measured idle power of servers is typically 10-30 % of TDP.
#: codecarbon 3.3.2's machine-mode curve, ``tdp * (0.1 + 0.9 * load**3)``, starts at the same
#: 10 %; its process mode has no floor (see docs/hardware.md, "How this differs from codecarbon").
IDLE_FRACTION = 0.10
#: W per logical CPU when the model is not in the TDP table: codecarbon's
#: ``DEFAULT_POWER_PER_CORE`` (4 W per thread), in line with server parts (EPYC 7763: 280 W / 128
#: threads = 2.2 W; Xeon Gold 6148: 150 W / 40 = 3.75 W; Core i7-8700: 65 W / 12 = 5.4 W).
DEFAULT_W_PER_CORE = 4.0
#: DRAM power per GB: Green Algorithms' ``power_memory_perGB`` (Lannelongue, Grealey & Inouye,
#: Adv. Sci. 2021, https://www.green-algorithms.org), 0.3725 W/GB.
RAM_W_PER_GB = 0.3725


def cpu_power_w(tdp_w: float, utilisation: float, *, idle_fraction: float = IDLE_FRACTION) -> float:
    """Modelled CPU power in W: ``idle + (tdp - idle) * utilisation``, utilisation in [0, 1]."""
    u = min(max(utilisation, 0.0), 1.0)
    idle_w = idle_fraction * tdp_w
    return idle_w + (tdp_w - idle_w) * u


class _UsageMeter(Meter):
    """Shared plumbing: integrate a power model over a process tree's cumulative usage."""

    def __init__(self, tree: ProcessTree | None) -> None:
        self.tree = tree if tree is not None else ProcessTree()
        self._base: UsageSample | None = None
        self._seen = -1
        #: the sample the last start or read reached: its ``wall`` is when the energy read
        #: then was (:attr:`~greenprint.meters.MeterSet.read_at`), ``None`` before a start
        self.reached: UsageSample | None = None

    def start(self) -> None:
        """Take the baseline usage sample."""
        self._begin()

    def _begin(self) -> UsageSample:
        self._base = self.reached = fresh_usage(self.tree, -1)
        self._seen = self._base.seq
        return self._base

    def _usage(self) -> tuple[UsageSample, UsageSample]:
        base = self._base if self._base is not None else self._begin()
        usage = self.reached = fresh_usage(self.tree, self._seen)
        self._seen = usage.seq
        return base, usage


class CpuEstimateMeter(_UsageMeter):
    """CPU energy from a TDP and the machine's utilisation.

    Args:
        tdp_w: power at full load of the whole machine (all sockets), in W.
        provenance: where the TDP came from, e.g.
            ``Provenance("estimate", "tdp:Intel Xeon Gold 6148", "150 W")`` or its display
            string ``"estimate:tdp:Intel Xeon Gold 6148 (150 W)"``.
        tree: process tree for utilisation and attribution (default: this process).
        idle_fraction: idle floor as a fraction of ``tdp_w``.
        max_share: the largest part of the idle floor the tree carries, or ``None`` (no cap).
            A container limited to 2 CPUs' time of a 64-CPU host (a cgroup CPU quota, see
            :mod:`greenprint.meters._quota`) carries at most 2/64 of the host's idle floor, even
            when it is the only busy process there: the host's other CPUs idle without it.
    """

    component = "cpu"

    def __init__(
        self,
        *,
        tdp_w: float,
        provenance: Provenance | str,
        tree: ProcessTree | None = None,
        idle_fraction: float = IDLE_FRACTION,
        max_share: float | None = None,
    ) -> None:
        super().__init__(tree)
        self.tdp_w = float(tdp_w)
        self.idle_w = idle_fraction * self.tdp_w
        self.max_share = None if max_share is None else min(max(float(max_share), 0.0), 1.0)
        self._origin = Provenance.parse(provenance)

    @property
    def origin(self) -> Provenance:
        """Where the TDP came from, as data (``kind="estimate"``)."""
        return self._origin

    @property
    def provenance(self) -> str:
        """Where the TDP came from, e.g. ``"estimate:default-per-core (4 W/core x 2)"``."""
        return str(self._origin)

    def read(self) -> MeterReading:
        """Cumulative modelled energy since :meth:`start`, in J (never raises)."""
        base, u = self._usage()
        dynamic_w = self.tdp_w - self.idle_w
        machine = self.idle_w * (u.elapsed_s - base.elapsed_s) + dynamic_w * (
            u.busy_s - base.busy_s
        )
        idle_share_s = u.share_s - base.share_s
        if self.max_share is not None:  # a quota: never more than its part of the machine
            idle_share_s = min(idle_share_s, self.max_share * (u.elapsed_s - base.elapsed_s))
        process = self.idle_w * idle_share_s + dynamic_w * (u.tree_busy_s - base.tree_busy_s)
        return MeterReading(max(machine, 0.0), max(process, 0.0))


class RamEstimateMeter(_UsageMeter):
    """RAM energy from installed memory: ``w_per_gb * ram_gb`` W, all the time.

    Args:
        ram_gb: installed memory, in GB (2**30 bytes).
        tree: process tree for attribution by RSS share (default: this process).
        w_per_gb: W per GB (default :data:`RAM_W_PER_GB`).
    """

    component = "ram"

    def __init__(
        self, *, ram_gb: float, tree: ProcessTree | None = None, w_per_gb: float = RAM_W_PER_GB
    ) -> None:
        super().__init__(tree)
        self.ram_gb = float(ram_gb)
        self.w_per_gb = float(w_per_gb)
        self.power_w = self.ram_gb * self.w_per_gb

    @property
    def origin(self) -> Provenance:
        """``Provenance("estimate", "ram:0.3725W/GB x 16.0 GB")``."""
        return Provenance("estimate", f"ram:{self.w_per_gb:g}W/GB x {self.ram_gb:.1f} GB")

    @property
    def provenance(self) -> str:
        """``"estimate:ram:0.3725W/GB x 16.0 GB"``."""
        return str(self.origin)

    def read(self) -> MeterReading:
        """Cumulative modelled energy since :meth:`start`, in J (never raises)."""
        base, u = self._usage()
        machine = self.power_w * (u.elapsed_s - base.elapsed_s)
        process = self.power_w * (u.ram_share_s - base.ram_share_s)
        return MeterReading(max(machine, 0.0), max(process, 0.0))


class GpuEstimateMeter(Meter):
    """Energy at a constant power: the stand-in when NVML fails mid-run.

    Args:
        power_w: assumed power of all visible GPUs together, in W (the mean measured so far).
        share: fraction attributed to the tracked tree, or ``None`` when unknown.
        clock: monotonic clock in s.
        started_at: clock time energy is counted from (default: when :meth:`start` is called).
        component: the component it stands in for (``"gpu"``; any other whose meter failed with
            no estimate to take over).
    """

    def __init__(
        self,
        *,
        power_w: float,
        share: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        started_at: float | None = None,
        component: str = "gpu",
    ) -> None:
        self.component = component
        self.power_w = max(float(power_w), 0.0)
        self.share = share
        self._clock = clock
        self._t0: float | None = started_at

    @property
    def origin(self) -> Provenance:
        """``Provenance("estimate", "gpu:mean-power", "250 W")``."""
        return Provenance("estimate", f"{self.component}:mean-power", f"{self.power_w:.0f} W")

    @property
    def provenance(self) -> str:
        """``"estimate:gpu:mean-power (250 W)"``."""
        return str(self.origin)

    def start(self) -> None:
        """Start the clock (unless ``started_at`` was given)."""
        if self._t0 is None:
            self._t0 = self._clock()

    def read(self) -> MeterReading:
        """``power_w`` times the seconds since :meth:`start`, in J."""
        t0 = self._t0
        if t0 is None:
            t0 = self._t0 = self._clock()
        machine = self.power_w * max(self._clock() - t0, 0.0)
        return MeterReading(machine, None if self.share is None else machine * self.share)


class UnknownEnergyMeter(Meter):
    """A component whose energy cannot be estimated: its figure stays where it was, labelled.

    The stand-in when a meter fails before measuring anything and nothing gives a power to
    estimate from (an Apple GPU: no TDP published). It adds nothing, and its provenance,
    ``estimate:gpu:unknown (<why>)``, says that the figure is not a measurement and why it is
    not counted; a report shows it next to the number.

    Args:
        component: ``"gpu"`` (or any other).
        why: why nothing can be estimated, e.g. ``"no GPU TDP known for Apple M2: not counted"``.
    """

    def __init__(self, component: str, why: str) -> None:
        self.component = component
        self.why = why

    @property
    def origin(self) -> Provenance:
        """``Provenance("estimate", "gpu:unknown", why)``."""
        return Provenance("estimate", f"{self.component}:unknown", self.why)

    @property
    def provenance(self) -> str:
        """``"estimate:gpu:unknown (<why>)"``."""
        return str(self.origin)

    def start(self) -> None:
        """Nothing to start."""

    def read(self) -> MeterReading:
        """Nothing added: 0 J since the failure, not attributed."""
        return MeterReading(0.0, None)


#: Largest accepted ``cpu_tdp_w`` setting, in W (a 16-socket machine of 350 W parts).
MAX_CONFIGURED_TDP_W = 5600.0


def configured_cpu_tdp(config: Config | None = None) -> tuple[float, str] | None:
    """The ``cpu_tdp_w`` setting (``GREENPRINT_CPU_TDP_W`` or a config file), validated.

    Args:
        config: settings to consult; ``None`` reads them with ``load_config()``.

    Returns:
        ``(watts, source)``, e.g. ``(85.0, "env:GREENPRINT_CPU_TDP_W")``, or ``None`` when unset.

    Raises:
        ConfigError: the value is not a finite number in (0, 5600] W.
    """
    from greenprint._config import load_config  # reads files

    cfg = load_config() if config is None else config
    raw = cfg.get("cpu_tdp_w")
    if raw is None:
        return None
    source = cfg.sources.get("cpu_tdp_w", "config")
    watts = finite_number(
        "cpu_tdp_w", raw, low=0.0, high=MAX_CONFIGURED_TDP_W, low_open=True, unit="W", source=source
    )
    return watts, source
