"""What the GPU vendor meters (NVML, amdsmi) share: opening, GPUs summed, shares, provenance.

Opening (:func:`open_vendor`): load the vendor's module, initialise it, list the visible GPUs it
can meter, and shut it down again when a probe is done or nothing can be metered. The calls differ
by vendor (a :class:`GpuVendor` names them); the shape, and which failure becomes which status,
is the same. A failure is a :class:`GpuVendorUnavailable` carrying the status
``greenprint hardware`` shows; a meter's ``open`` turns it into a :class:`~greenprint.MeterError`.

Provenance (:func:`vendor_origin`): each GPU is read from its ``counter``, by ``power-sampling``,
or ``counter-then-power-sampling`` when its counter was dropped mid-run (stuck, backwards, no
longer readable); the detail says why and after how many seconds, so the label names what was
actually used for the energy recorded, not what was chosen at the start.

A vendor meter reads every visible GPU's energy since its last read (its own counter or sampled
power, by the vendor's rules) and hands the joules of each, with this process tree's share of
that GPU, to :meth:`SummedGpuMeter._add`, which keeps the cumulative figures. The tree's share of
a GPU (:func:`memory_share`) is the memory its processes hold on the GPU over the memory of every
process there, as the vendor lists them; a GPU where any size is unknown (or all are zero) is
shared equally by process. When a GPU cannot attribute (no process list, or process ids from
another PID namespace, as in a container), the meter's ``process_j`` becomes ``None`` for good:
a share that covers only some GPUs would be wrong without saying so. A process list that fails
after one that worked keeps the GPU's last share for up to :data:`HELD_LISTINGS` reads in a row
(a timeout, a list that grew between two calls); one more failure loses the share. Either way the
provenance's detail says which GPU lost it, why and after how many seconds
(``GPU-0 not attributed after 12 s: process list failed 4 times in a row (Unknown Error)``), and
the run (:class:`~greenprint._accounting.CostAccount`) counts the whole GPUs' energy from that
read on, saying what share of the run was attributed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from greenprint._exceptions import MeterError
from greenprint._provenance import Provenance
from greenprint.meters._attribution import ProcessTree, fresh_usage
from greenprint.meters._base import Meter, MeterReading
from greenprint.meters._gpu_lines import (
    _by_memory,
    _not_counted_line,
    failed_gpu,
    lost_gpu,
    memory_share,
    not_counted,
    refused_gpu,
    shared_note,
    without_attribution_note,
)
from greenprint.meters._status import GPUInfo, MeterStatus

__all__ = [
    "COUNTER",
    "COUNTER_THEN_POWER",
    "GpuVendor",
    "GpuVendorUnavailable",
    "HELD_LISTINGS",
    "POWER_SAMPLING",
    "SummedGpuMeter",
    "TDP_ESTIMATE",
    "THEN_MEAN_POWER",
    "VendorSumMeter",
    "failed_gpu",
    "refused_gpu",
    "lost_gpu",
    "memory_share",
    "not_counted",
    "open_vendor",
    "vendor_origin",
    "without_attribution_note",
]

logger = logging.getLogger(__name__)

_Self = TypeVar("_Self", bound="SummedGpuMeter")

#: Where a GPU's energy comes from: its energy counter, sampled power, or the counter until it
#: was dropped mid-run and sampled power after.
COUNTER = "counter"
POWER_SAMPLING = "power-sampling"
COUNTER_THEN_POWER = "counter-then-power-sampling"
#: a GPU that failed mid-run beside GPUs that still read: its mean power so far continues
THEN_MEAN_POWER = "then-mean-power"
#: a GPU that failed at its first read beside GPUs that read: its TDP (full load) for the run
TDP_ESTIMATE = "tdp-estimate"
_SOURCES = (COUNTER, POWER_SAMPLING, COUNTER_THEN_POWER, THEN_MEAN_POWER, TDP_ESTIMATE)

#: Failed process listings in a row for which a GPU keeps the share of its last listing; at the
#: next one the meter cannot attribute for the rest of the run (``process_j`` is ``None``).
HELD_LISTINGS = 3


class GpuVendorUnavailable(Exception):
    """Internal: a GPU vendor library cannot be used; carries the status to report."""

    def __init__(self, status: MeterStatus):
        super().__init__(status.reason)
        self.status = status


@dataclass(frozen=True)
class GpuVendor:
    """The calls that open one vendor's library (they differ; :func:`open_vendor` is shared).

    Attributes:
        load: the module to use from the one given (``None``: import it); raises
            :class:`GpuVendorUnavailable` when it cannot be loaded.
        init: initialises the library.
        error: the library's exception class, from the module.
        listing: ``(gpus, skipped)``: the visible GPUs it can meter, and a line per GPU left out.
        shutdown: releases the library (never raises).
        status_for: the status for one of the library's exceptions.
    """

    load: Callable[[Any], Any]
    init: Callable[[Any], None]
    error: Callable[[Any], type[BaseException]]
    listing: Callable[[Any, Mapping[str, str]], tuple[list[Any], list[str]]]
    shutdown: Callable[[Any], None]
    status_for: Callable[[Any, BaseException], MeterStatus]


def open_vendor(
    vendor: GpuVendor, module: Any, environ: Mapping[str, str], *, keep: bool
) -> tuple[Any, list[Any], list[str]]:
    """Load, initialise and list a vendor's GPUs.

    Args:
        vendor: the vendor's calls.
        module: the vendor module given by the caller, or ``None`` to import it.
        environ: environment for the visible-device variables.
        keep: leave the library initialised for a meter (when it lists a GPU); otherwise (a
            probe) it is shut down before returning.

    Returns:
        ``(module, gpus, skipped)``.

    Raises:
        GpuVendorUnavailable: the library cannot be loaded, initialised or listed.
    """
    loaded = vendor.load(module)
    error = vendor.error(loaded)
    try:
        vendor.init(loaded)
    except error as e:
        raise GpuVendorUnavailable(vendor.status_for(loaded, e)) from e
    try:
        gpus, skipped = vendor.listing(loaded, environ)
    except error as e:
        vendor.shutdown(loaded)
        raise GpuVendorUnavailable(vendor.status_for(loaded, e)) from e
    if not (keep and gpus):
        vendor.shutdown(loaded)
    return loaded, gpus, skipped


def vendor_origin(
    vendor: str, sources: Sequence[tuple[str, str]], notes: Sequence[str]
) -> Provenance:
    """A vendor meter's provenance: its GPUs grouped by where their energy comes from.

    Args:
        vendor: ``"nvml"`` or ``"amdsmi"`` (a measured source for :class:`Provenance`).
        sources: ``(label, source)`` per GPU, ``source`` one of :data:`COUNTER`,
            :data:`POWER_SAMPLING`, :data:`COUNTER_THEN_POWER`, :data:`THEN_MEAN_POWER`,
            :data:`TDP_ESTIMATE`.
        notes: the detail's parts (why a GPU is sampled, since when, its share...).

    Example:
        >>> str(vendor_origin("nvml", [("GPU-0", "counter"), ("GPU-1", "power-sampling")], []))
        'nvml:counter:GPU-0+nvml:power-sampling:GPU-1'
    """
    parts = []
    for source in _SOURCES:
        labels = [label for label, s in sources if s == source]
        if labels:
            parts.append(f"{vendor}:{source}:" + "+".join(labels))
    return Provenance("measured", "+".join(parts), "; ".join(n for n in notes if n))


class SummedGpuMeter(Meter):
    """The energy of several GPUs summed, with this process tree's share (see the module).

    A vendor's meter names its calls in :attr:`_vendor` (opening through :meth:`_open_with`,
    closing in :meth:`close`) and gives each GPU record ``info()`` (its
    :class:`~greenprint.meters._status.GPUInfo`); it defines ``origin``, ``start`` and ``read``.

    Args:
        module: the vendor's module, initialised (shut down by :meth:`close`).
        gpus: the vendor's GPU records, in :attr:`_gpus`.
        tree: process tree for attribution, or ``None`` (``process_j`` is then ``None``).
        clock: monotonic clock in s.
    """

    component = "gpu"
    #: the vendor's calls (set by each vendor's meter)
    _vendor: ClassVar[GpuVendor | None] = None
    #: the error when the vendor lists no GPU it can meter
    _none_visible: ClassVar[str] = "no visible GPU can be metered"

    def __init__(
        self,
        module: Any,
        gpus: Sequence[Any],
        *,
        tree: ProcessTree | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._module = module
        self._gpus = list(gpus)
        self._tree = tree
        self._clock = clock
        self._machine_j = 0.0
        self._process_j: float | None = 0.0 if tree is not None else None
        self._t_start = 0.0
        self._t_last = 0.0
        self._seq = -1
        self._open = True
        #: the tree's share of all the energy so far (``None`` before a read or unattributed)
        self.last_share: float | None = None
        #: which GPU could not be attributed, why, and from when (``""`` while attributed)
        self.unattributed = ""
        #: visible GPUs left out because they report neither energy nor power (see
        #: :func:`not_counted`): their energy is not in the figures, which the provenance says
        self.left_out: list[str] = []
        self._failed_listings: dict[str, int] = {}
        #: GPU label -> (fewest, most other processes seen beside the tree's, share's basis)
        self._sharing: dict[str, tuple[int, int, str]] = {}

    @property
    def shared(self) -> str:
        """Which GPUs the tree shared with other processes and how its share was taken.

        ``"GPU-0 shared with 2 other processes: this process tree's share by GPU memory"`` (by
        ``process count`` where the library does not report each process's memory), one line
        per GPU on which the tree held a share beside other processes; ``""`` when none.
        """
        return "; ".join(shared_note(label, *seen) for label, seen in self._sharing.items())

    @property
    def share_notes(self) -> list[str]:
        """The provenance's notes about the tree's share, which a machine-scope run drops."""
        return [n for n in (self.unattributed, self.shared) if n]

    @classmethod
    def _open_with(
        cls: type[_Self],
        module: Any,
        *,
        environ: Mapping[str, str] | None,
        tree: ProcessTree | None,
        clock: Callable[[], float],
    ) -> _Self:
        """Open the vendor's library and meter every visible GPU (each vendor's ``open``).

        Raises:
            MeterError: the library is unusable or no GPU is visible (the message says why).
        """
        if cls._vendor is None:  # pragma: no cover - a vendor meter always names its calls
            raise TypeError(f"{cls.__name__} names no vendor calls")
        env = os.environ if environ is None else environ
        try:
            loaded, gpus, skipped = open_vendor(cls._vendor, module, env, keep=True)
        except GpuVendorUnavailable as e:
            raise MeterError(e.status.reason) from e
        if not gpus:
            raise MeterError(cls._none_visible)
        meter = cls(loaded, gpus, tree=tree, clock=clock)
        meter.left_out = [line for line in skipped if _not_counted_line(line)]
        return meter

    @property
    def gpus(self) -> tuple[GPUInfo, ...]:
        """The GPUs metered (``has_energy_counter`` False once a counter was dropped)."""
        return tuple(g.info() for g in self._gpus)

    @property
    def provenance(self) -> str:
        """``str(self.origin)``: ``"nvml:counter:GPU-0+GPU-1"``, ``"amdsmi:power-sampling:..."``."""
        return str(self.origin)

    def close(self) -> None:
        """Shut the vendor's library down (once)."""
        if self._open:
            self._open = False
            if self._vendor is not None and self._module is not None:
                self._vendor.shutdown(self._module)

    @property
    def mean_power_w(self) -> float | None:
        """Mean power of all metered GPUs since :meth:`start`, in W (``None`` before 1 ms)."""
        elapsed = self._t_last - self._t_start
        return self._machine_j / elapsed if elapsed > 1e-3 else None

    def _begin(self, now: float) -> None:
        """Zero the figures at ``now`` (the end of :meth:`start`, once the GPUs are read)."""
        if self._tree is not None:
            self._seq = fresh_usage(self._tree, -1).seq
        self._t_start = self._t_last = now
        self._machine_j = 0.0
        self._process_j = 0.0 if self._tree is not None else None
        self.unattributed = ""
        self._failed_listings.clear()
        self._sharing.clear()

    def _tree_share(
        self,
        label: str,
        vendor: str,
        pid_list: Sequence[int],
        memory: Sequence[float | None],
        pids: frozenset[int],
    ) -> float | None:
        """:func:`memory_share`, remembering a GPU the tree shares with other processes."""
        share = memory_share(label, vendor, pid_list, memory, pids)
        others = len({pid for pid in pid_list if pid not in pids})
        if share and others:
            basis = "GPU memory" if _by_memory(memory) else "process count"
            fewest, most, _ = self._sharing.get(label, (others, others, basis))
            self._sharing[label] = (min(fewest, others), max(most, others), basis)
        return share

    def _listed(self, label: str) -> None:
        """A process list of GPU ``label`` was read: its run of failures ends."""
        self._failed_listings.pop(label, None)

    def _listing_failed(self, label: str, last_share: float | None, why: str) -> float | None:
        """GPU ``label``'s share after a failed process list: its last, or ``None`` (lost).

        The last share is kept for :data:`HELD_LISTINGS` failures in a row; the share of a GPU
        that never listed its processes, or failed once more, is lost (:meth:`_no_share`).
        """
        failures = self._failed_listings.get(label, 0) + 1
        self._failed_listings[label] = failures
        if last_share is not None and failures <= HELD_LISTINGS:
            logger.info("%s: process list failed (%s); its last share kept", label, why)
            return last_share
        if last_share is not None:
            why = f"process list failed {failures} times in a row ({why})"
        else:
            why = f"no process list ({why})"
        self._no_share(label, why)
        return None

    def _no_share(self, label: str, why: str) -> None:
        """Record that GPU ``label`` cannot be attributed from this read on, and why."""
        if not self.unattributed and self._process_j is not None:
            since_s = max(self._t_last - self._t_start, 0.0)
            when = f"after {since_s:.0f} s" if self._t_last > self._t_start else "from the start"
            self.unattributed = f"{label} not attributed {when}: {why}"
            logger.info("%s: no per-process attribution %s (%s)", label, when, why)

    def _tree_pids(self) -> frozenset[int] | None:
        """The tree's processes now, or ``None`` when this meter does not attribute."""
        if self._tree is None or self._process_j is None:
            return None
        usage = fresh_usage(self._tree, self._seq)
        self._seq = usage.seq
        return usage.pids

    def _estimated_gpus(self) -> list[Any]:
        """The vendor's GPUs as :class:`~greenprint.meters._gpu_tdp.EstimatedGpu`.

        Names and table TDPs only: no call into the library. Default: none.
        """
        return []

    def estimate_if_unmeasured(self, *, since: float) -> Meter | None:
        """The GPUs' TDP estimate (utilisation unknown: full load) when no read succeeded yet.

        A vendor meter failing at its first read has no mean power to continue at; the TDP of
        each GPU it was to meter (the shipped table, else the default), labelled, is the honest
        figure. ``None`` once a read succeeded (the mean power so far continues).
        """
        if self._t_last > self._t_start:
            return None
        gpus = self._estimated_gpus()
        if not gpus:
            return None
        from greenprint.meters._gpu_tdp import GpuTdpEstimateMeter

        return GpuTdpEstimateMeter(gpus, clock=self._clock, started_at=since)

    def _add(self, now: float, shares: Sequence[tuple[float, float | None]]) -> MeterReading:
        """Add one read: ``(joules, tree's share or None)`` per GPU read, at ``now``.

        Returns:
            The cumulative reading.
        """
        total_j = 0.0
        for joules, _ in shares:
            total_j += joules
        self._t_last = now
        self._machine_j += total_j
        if self._process_j is not None:
            if any(share is None for _, share in shares):
                self._process_j = None
                self.last_share = None
            else:
                self._process_j += sum(j * (s or 0.0) for j, s in shares)
                if self._machine_j > 0:
                    self.last_share = self._process_j / self._machine_j
        return MeterReading(self._machine_j, self._process_j)


class VendorSumMeter(Meter):
    """The GPUs of several vendors on one machine (NVIDIA through NVML, AMD through amdsmi), summed.

    ``machine_j`` is the sum of the vendors' figures; ``process_j`` the sum of their shares, or
    ``None`` when any vendor cannot attribute (a share of some GPUs only would be wrong without
    saying so). The provenance names every vendor's GPUs: ``nvml:counter:GPU-0+amdsmi:counter:
    GPU-0`` (each vendor numbers its own GPUs), the details joined, each after its vendor's
    name. Should one vendor's read fail, the whole figure fails (a
    :class:`~greenprint.MeterError`) and the meter set continues at the mean power measured so
    far, labelled ``(nvml+amdsmi failed: ...)``.

    Args:
        meters: one meter per vendor, each measuring ``"gpu"``.
    """

    component = "gpu"

    def __init__(self, meters: Sequence[Meter]) -> None:
        self.meters = list(meters)

    @property
    def origin(self) -> Provenance:
        """Every vendor's GPUs and sources, one measured provenance."""
        origins = [m.origin for m in self.meters]
        return Provenance(
            "measured",
            "+".join(o.source for o in origins),
            # each vendor numbers its own GPUs: its notes say whose GPU-0 they are about
            "; ".join(f"{o.source.split(':', 1)[0]} {o.detail}" for o in origins if o.detail),
        )

    @property
    def provenance(self) -> str:
        """See :attr:`origin`."""
        return str(self.origin)

    @property
    def gpus(self) -> tuple[Any, ...]:
        """The GPUs metered, every vendor's."""
        return tuple(g for m in self.meters for g in getattr(m, "gpus", ()))

    @property
    def mean_power_w(self) -> float | None:
        """Mean power of all the GPUs since :meth:`start`, in W (``None`` before any read)."""
        powers = [getattr(m, "mean_power_w", None) for m in self.meters]
        known = [p for p in powers if p is not None]
        return sum(known) if known else None

    def start(self) -> None:
        """Take every vendor's baseline."""
        for meter in self.meters:
            meter.start()

    def read(self) -> MeterReading:
        """Cumulative energy of all the GPUs since :meth:`start`, in J.

        Raises:
            MeterError: a vendor's read failed.
        """
        readings = [m.read() for m in self.meters]
        machine_j = sum(r.machine_j for r in readings)
        shares = [r.process_j for r in readings]
        process_j = None if any(p is None for p in shares) else sum(p or 0.0 for p in shares)
        return MeterReading(machine_j, process_j)

    def close(self) -> None:
        """Close every vendor's meter (each releases its library once)."""
        for meter in self.meters:
            meter.close()
