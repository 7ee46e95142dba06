"""The contract every meter fulfils.

A :class:`Meter` measures one component (``"cpu"``, ``"gpu"`` or ``"ram"``) and reports cumulative
energy in joules since :meth:`Meter.start`. The tracker's sampler thread calls :meth:`Meter.read`
about once a second from one thread; meters need not be thread-safe beyond that.

Contract:
    * ``read()`` returns energy since ``start()``, monotonically non-decreasing, in joules;
      hardware counter wrap-around is handled inside the meter.
    * ``machine_j`` is the energy of the whole measured domain (all sockets, all visible GPUs);
      ``process_j`` is the share attributed to the tracked process tree, or ``None`` when the
      meter cannot attribute.
    * On failure ``read()`` raises :class:`~greenprint.MeterError` (never another exception);
      :class:`MeterSet` then swaps in an estimate and records why in the provenance.
    * ``provenance`` is a short string saying where figures come from, e.g. ``"rapl:package-0"``,
      ``"nvml:counter"``, ``"estimate:tdp:Intel Xeon Gold 6148 (150 W)"``; ``origin`` is the
      same as data (a :class:`~greenprint._provenance.Provenance`: kind, source, detail). A meter
      defines ``provenance``; the default ``origin`` parses it, and greenprint's own meters build
      ``origin`` and display it.
    * ``estimate_if_unmeasured()`` (optional): when a meter fails before it measured anything, the
      estimate to continue with (a GPU's TDP-table estimate, or a labelled "unknown"), since the
      mean power measured so far would be a meaningless 0 W. Default: ``None`` (mean power).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from greenprint._provenance import Provenance

__all__ = ["Meter", "MeterReading"]


@dataclass(frozen=True)
class MeterReading:
    """Cumulative energy since the meter started.

    Attributes:
        machine_j: energy of the whole measured domain, in joules.
        process_j: energy attributed to the tracked process tree, in joules, or ``None``.
    """

    machine_j: float
    process_j: float | None = None


class Meter(ABC):
    """One energy source for one component. See the module docstring for the contract."""

    #: ``"cpu"``, ``"gpu"`` or ``"ram"``.
    component: str = ""

    @property
    @abstractmethod
    def provenance(self) -> str:
        """Where this meter's figures come from (e.g. ``"rapl:package-0"``)."""

    @property
    def origin(self) -> Provenance:
        """Where this meter's figures come from, as data (default: :attr:`provenance` parsed)."""
        return Provenance.parse(self.provenance)

    @property
    def is_estimate(self) -> bool:
        """True when the figures are modelled rather than read from a hardware counter."""
        return self.origin.is_estimate

    @abstractmethod
    def start(self) -> None:
        """Take the baseline reading; energy is counted from here."""

    @abstractmethod
    def read(self) -> MeterReading:
        """Cumulative energy since :meth:`start`.

        Raises:
            MeterError: the source could not be read.
        """

    def estimate_if_unmeasured(self, *, since: float) -> Meter | None:
        """The estimate to continue with should this meter fail before measuring anything.

        Called by the meter set when the meter fails and no estimate runs in its shadow (GPUs).
        Must not call into the hardware (it runs on the sampler thread, without a deadline).

        Args:
            since: clock time (the meter's clock, s) of the last good read: the estimate counts
                from there.

        Returns:
            A meter, not started (its start is the failure), or ``None`` when this meter has
            measured something (its mean power then continues) or has no better estimate.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (NVML, files). Default: nothing to release."""
